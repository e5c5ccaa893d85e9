"""The text input stage (issue 20): HashingVectorizer (+ TfidfTransformer) inside the artifact.

Oracle: scikit-learn itself. The featurizer's rows equal ``transform``'s (within 1e-6; they
match to rounding), and a compressed pipeline's labels agree with the pipeline's ``predict``
(100% at float32, >= 99.5% at int8). The corpus is the standard library's own docstrings plus
hand-written hard cases (no downloads).
"""

from __future__ import annotations

import inspect
import random
import warnings

import numpy as np
import pytest

from edgesparse.errors import InputError, IRError
from edgesparse.ir import LinearIR, TextFeaturizer, Tfidf
from edgesparse.runtime.text import featurize, murmurhash3_32

sklearn_text = pytest.importorskip("sklearn.feature_extraction.text")
HashingVectorizer = sklearn_text.HashingVectorizer
TfidfTransformer = sklearn_text.TfidfTransformer

# murmurhash3_32("xwjwfotv3ϝ_".encode(), seed=0) == -2**31: the one hash whose abs() overflows
# int32 (found by inverting MurmurHash3's last block and finalizer).
MIN_HASH_TOKEN = "xwjwfotv3\u03dd_"

HARD_DOCS = [
    "",
    "the and of to",  # only stop words (English)
    "Café naïve façade résumé Ångström",
    "İstanbul ISTANBUL \u0131i İi",  # Turkish dotted / dotless I: str.lower, not casefold
    "STRASSE Straße straße ẞ",  # German sharp s: lower keeps ß
    "東京は日本の首都です 北京 서울",
    "emoji 😀😀 🎉 party👍 a😀b",
    "a  b\t\tc \n\n d   ",
    "x",
    f"{MIN_HASH_TOKEN} and {MIN_HASH_TOKEN}",
    "ﬁnance \uff26\uff35\uff2c\uff2c ①②③ x²",  # compatibility forms: NFKD changes them
]


# Module families whose docstrings a text model can tell apart (the labels).
_FAMILIES = (
    ("string", "textwrap", "re", "difflib", "csv", "json", "html", "email.message"),
    ("os", "pathlib", "shutil", "subprocess", "tempfile", "zipfile", "tarfile", "glob"),
    ("functools", "itertools", "collections", "typing", "contextlib", "dataclasses", "enum"),
    ("decimal", "fractions", "statistics", "random", "datetime", "heapq", "bisect", "math"),
)


def _stdlib_corpus() -> tuple[list[str], np.ndarray]:
    """Docstrings of standard-library modules, their classes and methods (each once), and the
    family of the module each came from."""
    import importlib

    docs: dict[str, int] = {}
    for label, family in enumerate(_FAMILIES):
        for name in family:
            mod = importlib.import_module(name)
            objs = [mod]
            for _, obj in sorted(vars(mod).items()):
                if callable(obj) and getattr(obj, "__module__", None) == mod.__name__:
                    objs.append(obj)
                    if isinstance(obj, type):
                        objs += [m for _, m in sorted(vars(obj).items()) if callable(m)]
            for obj in objs:
                with warnings.catch_warnings():  # typing's deprecated aliases say so
                    warnings.simplefilter("ignore", DeprecationWarning)
                    doc = inspect.getdoc(obj)
                if doc and len(doc) > 20:
                    docs.setdefault(doc, label)
    return list(docs), np.array(list(docs.values()))


DOCS, LABELS = _stdlib_corpus()


def _featurizer_of(hv, tfidf=None) -> TextFeaturizer:
    stop = hv.get_stop_words() if hv.analyzer == "word" else None
    return TextFeaturizer(
        n_features=hv.n_features,
        analyzer=hv.analyzer,
        ngram_range=hv.ngram_range,
        lowercase=hv.lowercase,
        token_pattern=hv.token_pattern,
        strip_accents=hv.strip_accents,
        stop_words=tuple(stop or ()),
        alternate_sign=hv.alternate_sign,
        binary=hv.binary,
        norm=hv.norm,
        tfidf=None
        if tfidf is None
        else Tfidf(
            idf=getattr(tfidf, "idf_", None), sublinear_tf=tfidf.sublinear_tf, norm=tfidf.norm
        ),
    )


def _same_rows(feat: TextFeaturizer, reference, docs: list[str]) -> None:
    got = featurize(feat, docs)
    ref = reference.tocsr()
    np.testing.assert_allclose(got.toarray(), ref.toarray(), rtol=0, atol=1e-6)
    assert got.indptr[-1] == got.indices.size == got.data.size
    assert np.all(got.data != 0)


# -- the hash ------------------------------------------------------------------------------------
def test_murmurhash_equals_scikit_learns_on_random_bytes_and_the_int_min_corner() -> None:
    from sklearn.utils import murmurhash3_32 as reference

    rng = random.Random(7)
    keys = [bytes(rng.randrange(256) for _ in range(rng.randrange(0, 70))) for _ in range(3000)]
    keys += [t.encode() for t in HARD_DOCS] + [MIN_HASH_TOKEN.encode()]
    got = murmurhash3_32(keys)
    assert got.dtype == np.int32
    assert got.tolist() == [reference(k, seed=0) for k in keys]
    assert int(murmurhash3_32([MIN_HASH_TOKEN.encode()])[0]) == -(2**31)


@pytest.mark.parametrize("n_features", [7, 2**10, 2**20, 2**31 - 1, 3])
def test_the_int_min_hash_lands_where_scikit_learn_puts_it(n_features: int) -> None:
    hv = HashingVectorizer(n_features=n_features, norm=None)
    ref = hv.transform([MIN_HASH_TOKEN]).tocsr()
    got = featurize(_featurizer_of(hv), [MIN_HASH_TOKEN])
    assert got.indices.tolist() == ref.indices.tolist() == [2**31 % n_features]
    assert got.data.tolist() == ref.data.tolist() == [-1.0]


# -- rows equal scikit-learn's transform ---------------------------------------------------------
@pytest.mark.parametrize(
    ("analyzer", "ngram_range"),
    [
        *[("word", (1, 1)), ("word", (1, 2)), ("word", (2, 3))],
        *[("char", (1, 3)), ("char", (3, 5))],
        *[("char_wb", (1, 1)), ("char_wb", (2, 4)), ("char_wb", (4, 6))],
    ],
)
@pytest.mark.parametrize("alternate_sign", [True, False])
def test_rows_equal_hashing_vectorizer(analyzer: str, ngram_range, alternate_sign: bool) -> None:
    docs = DOCS[:80] + HARD_DOCS
    hv = HashingVectorizer(
        n_features=2**12, analyzer=analyzer, ngram_range=ngram_range, alternate_sign=alternate_sign
    )
    _same_rows(_featurizer_of(hv), hv.transform(docs), docs)


@pytest.mark.parametrize("norm", [None, "l1", "l2"])
@pytest.mark.parametrize("binary", [True, False])
@pytest.mark.parametrize("strip_accents", [None, "ascii", "unicode"])
@pytest.mark.parametrize("lowercase", [True, False])
def test_rows_equal_for_every_norm_binary_accent_and_case(norm, binary, strip_accents, lowercase):
    docs = HARD_DOCS + DOCS[:20]
    hv = HashingVectorizer(
        n_features=64,  # many collisions: explicit zeros, binary over them
        norm=norm,
        binary=binary,
        strip_accents=strip_accents,
        lowercase=lowercase,
        stop_words="english",
    )
    _same_rows(_featurizer_of(hv), hv.transform(docs), docs)


@pytest.mark.parametrize("pattern", [r"(?u)\b\w+\b", r"\b\w\w+\b", r"\b\w+\b"])
def test_rows_equal_for_the_other_supported_token_patterns(pattern: str) -> None:
    hv = HashingVectorizer(n_features=2**10, token_pattern=pattern, stop_words=["x", "and"])
    _same_rows(_featurizer_of(hv), hv.transform(HARD_DOCS), HARD_DOCS)


@pytest.mark.parametrize("sublinear_tf", [False, True])
@pytest.mark.parametrize("norm", [None, "l1", "l2"])
@pytest.mark.parametrize("use_idf", [True, False])
@pytest.mark.parametrize("smooth_idf", [True, False])
def test_rows_equal_hashing_then_tfidf(sublinear_tf, norm, use_idf, smooth_idf) -> None:
    hv = HashingVectorizer(n_features=2**11, alternate_sign=False, norm=None)
    fit = hv.transform(DOCS + HARD_DOCS)
    if not smooth_idf and use_idf:
        hv = HashingVectorizer(n_features=2**4, alternate_sign=False, norm=None)  # no empty df
        fit = hv.transform(DOCS + HARD_DOCS)
    tf = TfidfTransformer(sublinear_tf=sublinear_tf, norm=norm, use_idf=use_idf)
    tf.set_params(smooth_idf=smooth_idf).fit(fit)
    docs = HARD_DOCS + DOCS[::7]
    _same_rows(_featurizer_of(hv, tf), tf.transform(hv.transform(docs)), docs)


def test_very_long_documents_and_tokens() -> None:
    rng = random.Random(3)
    words = " ".join(rng.choice(DOCS).split()[0] for _ in range(20000))
    docs = [words, "x" * 50000, ("abc😀" * 3000) + " end", " ".join(DOCS)]
    for hv in (
        HashingVectorizer(n_features=2**18, ngram_range=(1, 2)),
        HashingVectorizer(n_features=2**10, analyzer="char_wb", ngram_range=(2, 4)),
    ):
        _same_rows(_featurizer_of(hv), hv.transform(docs), docs)


def test_empty_documents_give_empty_rows() -> None:
    hv = HashingVectorizer(n_features=32, stop_words="english")
    got = featurize(_featurizer_of(hv), ["", "the of and", ""])
    assert got.shape == (3, 32) and got.nnz == 0 and got.indptr.tolist() == [0, 0, 0, 0]


# -- the IR refuses what it cannot describe exactly ----------------------------------------------
@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"analyzer": "chars"}, "featurizer.analyzer: 'chars' is not one of 'word'"),
        ({"ngram_range": (2, 1)}, r"featurizer.ngram_range: must be \(min_n, max_n\)"),
        ({"ngram_range": (1, 33)}, r"max_n <= 32"),
        ({"token_pattern": r"\S+"}, r"featurizer.token_pattern: '\\\\S\+' is not supported"),
        ({"strip_accents": "latin"}, "featurizer.strip_accents: 'latin' is not one of"),
        ({"norm": "max"}, "featurizer.norm: 'max' is not one of None, 'l1', 'l2'"),
        ({"n_features": 0}, r"featurizer.n_features: 0 is out of range"),
        ({"binary": 1}, "featurizer.binary: must be True or False"),
        ({"stop_words": "english"}, "featurizer.stop_words: must be a collection of strings"),
        (
            {"analyzer": "char", "stop_words": ("a",)},
            "featurizer.stop_words: analyzer 'char' uses no stop words",
        ),
        (
            {"tfidf": Tfidf(idf=np.ones(8), sublinear_tf=True)},
            "tfidf.sublinear_tf: needs non-negative counts",
        ),
        ({"tfidf": Tfidf(idf=np.ones(9))}, "tfidf.idf: has 9 entries, expected n_features=8"),
    ],
)
def test_featurizer_validation(changes, message) -> None:
    args = {"n_features": 8, **changes}
    with pytest.raises(IRError, match=message):
        TextFeaturizer(**args)


def test_tfidf_validation_and_the_ir_field() -> None:
    with pytest.raises(IRError, match=r"tfidf\.idf: contains NaN or Inf"):
        Tfidf(idf=np.array([1.0, np.inf]))
    with pytest.raises(IRError, match=r"tfidf\.norm: 'l3' is not one of"):
        Tfidf(idf=None, norm="l3")
    feat = TextFeaturizer(n_features=4, stop_words=["b", "a", "b"])
    assert feat.stop_words == ("a", "b")
    ir = LinearIR(
        indptr=np.array([0, 1]),
        indices=np.array([2]),
        values=np.array([1.5]),
        n_features=4,
        bias=np.zeros(1),
        head="hard",
        classes=np.array([0, 1]),
        featurizer=feat,
    )
    assert ir.replace(values=np.array([2.0])).featurizer is feat
    with pytest.raises(IRError, match="featurizer: produces 4 features, expected n_features=5"):
        ir.replace(n_features=5)
    with pytest.raises(IRError, match="featurizer: must be a TextFeaturizer"):
        ir.replace(featurizer="word")


def test_runtime_input_errors() -> None:
    from edgesparse.runtime.model import Model

    feat = TextFeaturizer(n_features=4)
    ir = LinearIR(
        indptr=np.array([0, 1]),
        indices=np.array([2]),
        values=np.array([1.5]),
        n_features=4,
        bias=np.zeros(1),
        head="hard",
        classes=np.array([0, 1]),
        featurizer=feat,
    )
    model = Model(ir)
    assert model.predict(["a b", "cc dd", ""]).shape == (3,)
    assert model.predict(np.array(["a b", "cc"], dtype=object)).shape == (2,)
    assert model.predict(("cc",)).shape == (1,)
    for bad, message in [
        (np.zeros((2, 4)), r"this model takes raw text \(a list or 1-D array of str\), got an "),
        ("one doc", r"X is one string; this model takes a list of documents: predict\(\[text\]\)"),
        (["ok", b"bytes"], "document 1 is a bytes, not a str; this model takes raw text"),
        ([], "X has 0 documents; at least 1 is required"),
        (5, "this model takes raw text .* got int"),
    ]:
        with pytest.raises(InputError, match=message):
            model.predict(bad)
    plain = Model(ir.replace(featurizer=None))
    with pytest.raises(InputError, match="X must be numeric"):
        plain.predict(["a b"])


# -- pipelines: frontend, passes, .esb, numpy runtime --------------------------------------------
def _fit(*steps):
    from sklearn.pipeline import make_pipeline

    return make_pipeline(*steps).fit(DOCS, LABELS)


def _sgd():
    from sklearn.linear_model import SGDClassifier

    return SGDClassifier(random_state=0, max_iter=50, tol=None)


def _logistic():
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=300)


TEST_DOCS = DOCS + HARD_DOCS


def _pipelines():
    return {
        "hashing-sgd": lambda: _fit(HashingVectorizer(n_features=2**14), _sgd()),
        "hashing-tfidf-logistic": lambda: _fit(
            HashingVectorizer(n_features=2**12, alternate_sign=False, norm=None),
            TfidfTransformer(sublinear_tf=True),
            _logistic(),
        ),
        "char-wb-binary-l1": lambda: _fit(
            HashingVectorizer(
                n_features=2**12, analyzer="char_wb", ngram_range=(2, 4), binary=True, norm="l1"
            ),
            _sgd(),
        ),
        "bigram-stop-words-no-idf": lambda: _fit(
            HashingVectorizer(n_features=2**13, ngram_range=(1, 2), stop_words="english"),
            TfidfTransformer(use_idf=False, norm="l2"),
            _logistic(),
        ),
    }


@pytest.fixture(scope="module", params=sorted(_pipelines()))
def fitted(request):
    return request.param, _pipelines()[request.param]()


def test_the_frontend_reads_the_whole_text_stage(fitted) -> None:
    from edgesparse import frontends

    _, pipe = fitted
    ir = frontends.to_linear_ir(pipe)
    feat = ir.featurizer
    hv = pipe.steps[0][1]
    tfidf = pipe.steps[1][1] if len(pipe.steps) == 3 else None
    assert feat is not None and ir.n_features == hv.n_features
    expected = _featurizer_of(hv, tfidf)
    assert feat.describe() == expected.describe()
    assert feat.stop_words == expected.stop_words
    if tfidf is not None and tfidf.use_idf:
        np.testing.assert_array_equal(feat.tfidf.idf, tfidf.idf_)
    assert ir.input_stats is None  # a text stage has no scaler statistics
    assert ir.provenance["source"].startswith("Pipeline(HashingVectorizer, ")


@pytest.mark.parametrize("quantize", ["float32", "int8", "none"])
def test_compressed_pipelines_predict_like_scikit_learn(fitted, quantize: str) -> None:
    from edgesparse import compress
    from edgesparse.formats import esb
    from edgesparse.runtime import loads

    _, pipe = fitted
    ir = compress(pipe, quantize=quantize)
    blob = esb.encode(ir)
    model = loads(blob)
    assert model.ir.featurizer is not None
    want = pipe.predict(TEST_DOCS)
    got = model.predict(TEST_DOCS)
    agree = float(np.mean(got == want))
    assert agree >= (0.995 if quantize == "int8" else 1.0), agree
    # The runtime's rows are the pipeline's rows, so the scores match to the arithmetic.
    ref = pipe.decision_function(TEST_DOCS)
    tol = 1e-9 if quantize == "none" else 1e-4 if quantize == "float32" else None
    if tol is not None:
        np.testing.assert_allclose(model.decision_function(TEST_DOCS), ref, atol=tol, rtol=0)
    if hasattr(pipe, "predict_proba"):
        np.testing.assert_allclose(
            model.predict_proba(TEST_DOCS), pipe.predict_proba(TEST_DOCS), atol=0.05
        )


def test_pruned_int8_text_model_keeps_the_stage_and_the_bar(fitted) -> None:
    from edgesparse import compress
    from edgesparse.formats import esb
    from edgesparse.runtime import loads

    _, pipe = fitted
    ir = compress(pipe, sparsity=0.3, quantize="int8")
    model = loads(esb.encode(ir))
    assert model.ir.featurizer.describe() == compress(pipe).featurizer.describe()
    assert model.ir.nnz < compress(pipe, quantize="none").nnz


def test_blob_round_trip_is_byte_identical_and_inspect_shows_the_stage(fitted) -> None:
    from edgesparse import compress
    from edgesparse.formats import esb, linear

    _, pipe = fitted
    ir = compress(pipe, quantize="int8")
    blob = esb.encode(ir)
    again = linear.decode(blob)
    assert esb.encode(again) == blob
    info = linear.verify(blob)
    assert info["featurizer"] == ir.featurizer.describe()
    assert info["sections"]["text"]["encoding"] == "hashing"
    plain = esb.encode(ir.replace(featurizer=None))
    assert (
        "featurizer" not in linear.verify(plain) and "text" not in linear.verify(plain)["sections"]
    )
    assert esb.encode(linear.decode(plain)) == plain


def test_cli_compress_and_inspect_a_text_pipeline(tmp_path) -> None:
    import json
    import pickle

    from click.testing import CliRunner

    import edgesparse
    from edgesparse.cli import cli

    pipe = _pipelines()["hashing-tfidf-logistic"]()
    src = tmp_path / "text.pkl"
    src.write_bytes(pickle.dumps(pipe))
    out = tmp_path / "text.esb"
    res = CliRunner().invoke(cli, ["compress", str(src), "-o", str(out)])
    assert res.exit_code == 0, res.output
    model = edgesparse.load(out)
    agree = np.mean(model.predict(TEST_DOCS) == pipe.predict(TEST_DOCS))
    assert agree >= 0.995
    res = CliRunner().invoke(cli, ["inspect", "--json", str(out)])
    assert res.exit_code == 0, res.output
    feat = json.loads(res.output)["featurizer"]
    assert feat["kind"] == "HashingVectorizer" and feat["tfidf"]["sublinear_tf"] is True
    res = CliRunner().invoke(cli, ["inspect", str(out)])
    assert "featurizer" in res.output and "HashingVectorizer" in res.output
    # ONNX writes this stage too (issue 20, item 3: tests/test_onnx_featurizers.py).
    res = CliRunner().invoke(cli, ["compress", str(src), "-o", str(tmp_path / "t.onnx")])
    assert res.exit_code == 0, res.output
    for args, message in [
        (["-o", str(out), "--check-data", str(src)], "not text; a text model takes a UTF-8"),
    ]:
        res = CliRunner().invoke(cli, ["compress", str(src), *args])
        assert res.exit_code != 0 and message in res.output, res.output


@pytest.mark.parametrize("suffix", [".pkl", ".joblib", ".skops"])
def test_text_pipelines_load_through_the_allow_list(tmp_path, suffix: str) -> None:
    import pickle

    from edgesparse import frontends
    from edgesparse.loader import load_model

    pipe = _fit(
        HashingVectorizer(n_features=2**10, stop_words="english"), TfidfTransformer(), _sgd()
    )
    path = tmp_path / f"text{suffix}"
    if suffix == ".skops":
        skops_io = pytest.importorskip("skops.io")
        skops_io.dump(pipe, path)
    elif suffix == ".joblib":
        joblib = pytest.importorskip("joblib")
        joblib.dump(pipe, path, compress=3)
    else:
        path.write_bytes(pickle.dumps(pipe, protocol=2))
    loaded = load_model(path)
    ir = frontends.to_linear_ir(loaded)
    assert ir.featurizer is not None and len(ir.featurizer.stop_words) > 300


# -- refusals: one line naming the step and the parameter ----------------------------------------
def _lower(text: str) -> str:
    return text.lower()


@pytest.mark.parametrize(
    ("vectorizer", "message"),
    [
        (
            lambda: HashingVectorizer(preprocessor=_lower),
            "HashingVectorizer step 'hashingvectorizer': preprocessor is a callable",
        ),
        (
            lambda: HashingVectorizer(tokenizer=str.split),
            "HashingVectorizer step 'hashingvectorizer': tokenizer is a callable",
        ),
        (
            lambda: HashingVectorizer(analyzer=str.split),
            "HashingVectorizer step 'hashingvectorizer': analyzer is a callable",
        ),
        (
            lambda: HashingVectorizer(strip_accents=_lower),
            "HashingVectorizer step 'hashingvectorizer': strip_accents is a callable",
        ),
        (
            lambda: HashingVectorizer(token_pattern=r"\S+"),
            r"HashingVectorizer step 'hashingvectorizer': token_pattern is '\\\\S\+'; "
            "edgesparse supports",
        ),
        (
            lambda: HashingVectorizer(input="filename"),
            "HashingVectorizer step 'hashingvectorizer': input must be 'content'",
        ),
    ],
)
def test_what_an_artifact_cannot_carry_is_refused(vectorizer, message) -> None:
    from sklearn.pipeline import make_pipeline

    from edgesparse import frontends
    from edgesparse.errors import UnsupportedModelError

    hv = vectorizer()
    pipe = make_pipeline(hv, _sgd())
    # Fitted on rows the vectorizer can read; the refusal is about the object, not the fit.
    clf = _sgd().fit(HashingVectorizer(n_features=hv.n_features).transform(DOCS), LABELS)
    pipe.steps[-1] = (pipe.steps[-1][0], clf)
    with pytest.raises(UnsupportedModelError, match=message) as info:
        frontends.to_linear_ir(pipe)
    assert "\n" not in str(info.value)


def test_unknown_settings_are_named_with_their_value() -> None:
    from sklearn.pipeline import make_pipeline

    from edgesparse import frontends
    from edgesparse.errors import UnsupportedModelError

    hv = HashingVectorizer(n_features=2**10)
    pipe = make_pipeline(hv, _sgd().fit(hv.transform(DOCS), LABELS))
    hv.strip_accents = "latin"  # set after fitting: scikit-learn would refuse it when called
    with pytest.raises(
        UnsupportedModelError,
        match=r"HashingVectorizer step 'hashingvectorizer': strip_accents is 'latin'; "
        r"supported: None, 'ascii', 'unicode'$",
    ):
        frontends.to_linear_ir(pipe)
    hv.strip_accents, hv.analyzer = None, 3
    with pytest.raises(UnsupportedModelError, match=r"analyzer is 3 \(int\); supported: 'word'"):
        frontends.to_linear_ir(pipe)


def test_text_steps_out_of_place_and_infinite_idf_are_refused() -> None:
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import MaxAbsScaler

    from edgesparse import frontends
    from edgesparse.errors import UnsupportedModelError

    hv = HashingVectorizer(n_features=2**10, alternate_sign=False)
    X = hv.transform(DOCS)
    tf = TfidfTransformer().fit(X)
    clf = _sgd().fit(X, LABELS)
    scaled = make_pipeline(hv, MaxAbsScaler().fit(X), tf, clf)
    with pytest.raises(UnsupportedModelError, match="is a text step after a scaler"):
        frontends.to_linear_ir(scaled)
    twice = make_pipeline(hv, tf, TfidfTransformer().fit(X), clf)
    with pytest.raises(UnsupportedModelError, match="must come right after a HashingVectorizer"):
        frontends.to_linear_ir(twice)
    few = HashingVectorizer(n_features=2**16, alternate_sign=False)
    with warnings.catch_warnings():  # scikit-learn divides by the zero document frequencies
        warnings.simplefilter("ignore", RuntimeWarning)
        raw = TfidfTransformer(smooth_idf=False).fit(few.transform(DOCS[:5]))
    with pytest.raises(UnsupportedModelError, match="idf_ has infinite entries"):
        frontends.to_linear_ir(make_pipeline(few, raw, _sgd().fit(few.transform(DOCS), LABELS)))
    sub = make_pipeline(
        HashingVectorizer(n_features=2**10), TfidfTransformer(sublinear_tf=True).fit(X), clf
    )
    with pytest.raises(UnsupportedModelError, match=r"tfidf\.sublinear_tf: needs non-negative"):
        frontends.to_linear_ir(sub)
    # A scaler after the text stage is folded as in any pipeline.
    folded = frontends.to_linear_ir(make_pipeline(hv, MaxAbsScaler().fit(X), clf))
    assert folded.featurizer is not None


# -- the C runtime verifies a text blob (tests/test_c_text.py runs its featurizer) -------------
def test_the_c_runtime_verifies_a_blob_with_a_text_stage(tmp_path) -> None:
    import shutil
    import subprocess

    from edgesparse import compress
    from edgesparse.export_c import c_runtime_dir
    from edgesparse.formats import esb
    from tests.cbuild import build
    from tests.cdriver import CFLAGS
    from tests.conftest import require_tool

    require_tool(shutil.which("gcc") is not None, what="gcc", install="sudo apt-get install gcc")
    src = c_runtime_dir()
    sources = [str(src / "esb.c"), str(src / "esb_main.c")]
    # the host driver of the C runtime's tests (gcc -O2 -Werror), built once per session
    exe, built = build(["gcc", *CFLAGS, *sources, "-lm"], name="esb")
    assert built.returncode == 0, built.stderr
    pipe = _pipelines()["hashing-tfidf-logistic"]()
    ir = compress(pipe, quantize="int8")
    text_blob, plain_blob = tmp_path / "text.esb", tmp_path / "plain.esb"
    text_blob.write_bytes(esb.encode(ir))
    plain_blob.write_bytes(esb.encode(ir.replace(featurizer=None)))
    res = subprocess.run(
        [str(exe), "verify", str(text_blob), str(plain_blob)], capture_output=True, text=True
    )
    lines = res.stdout.splitlines()
    assert res.returncode == 0 and lines == ["OK", "OK"], res.stdout + res.stderr


def esb_sections(ir: LinearIR) -> list[str]:
    """Names of the sections ``ir``'s blob holds, in table order."""
    from edgesparse.formats import esb, linear

    return list(linear.verify(esb.encode(ir))["sections"])


# -- the .esb 'text' section: every length checked before use, exact messages ---------------------
def _text_ir() -> LinearIR:
    idf = np.array([1.5, 2.0, 1.5, 3.0, 2.0, 1.5, 1.5, 2.0])
    feat = TextFeaturizer(
        n_features=8,
        stop_words=("and", "the"),
        alternate_sign=False,
        tfidf=Tfidf(idf=idf, sublinear_tf=True, norm="l1"),
    )
    return LinearIR(
        indptr=np.array([0, 2]),
        indices=np.array([1, 5]),
        values=np.array([0.5, -2.0]),
        n_features=8,
        bias=np.array([0.25]),
        head="logistic",
        classes=np.array(["ham", "spam"]),
        featurizer=feat,
    )


def _with_text(text: bytes) -> bytes:
    """The blob of :func:`_text_ir` with its (last) 'text' section replaced by ``text``."""
    import struct

    from edgesparse.formats import esb
    from tests.test_esb_malformed import reseal

    blob = bytearray(esb.encode(_text_ir()))
    (n_sec,) = struct.unpack_from("<I", blob, 12)
    entry = 64 + 16 * (n_sec - 1)
    assert blob[entry] == 10  # the text section is the last one
    (off,) = struct.unpack_from("<I", blob, entry + 4)
    out = bytearray(blob[:off]) + text
    struct.pack_into("<I", out, entry + 8, len(text))
    struct.pack_into("<Q", out, 48, len(out))
    return reseal(bytes(out))


def _text_section() -> tuple[int, bytes]:
    from edgesparse.formats import esb, linear

    blob = esb.encode(_text_ir())
    info = linear.verify(blob)["sections"]["text"]
    return info["offset"], blob[info["offset"] : info["offset"] + info["bytes"]]


def _patched(at: int, raw: bytes) -> bytes:
    """The text blob with ``raw`` written at byte ``at`` of its 'text' section."""
    _, text = _text_section()
    return _with_text(text[:at] + raw + text[at + len(raw) :])


def test_the_text_section_layout_is_the_documented_one() -> None:
    import struct

    _, text = _text_section()
    fields = struct.unpack_from("<BBBBBBBBIIII", text)
    # word, (1, 1), lowercase + tf-idf + use_idf + sublinear, no accents, default pattern, l2,
    # l1; 8 features, 2 stop words, 3 distinct idf values, 8 bytes of stop words
    assert fields == (0, 1, 1, 1 | 8 | 16 | 32, 0, 0, 2, 1, 8, 2, 3, 8)
    assert text[24:32] == b"\x03\x03andthe"
    assert np.frombuffer(text[32:56], "<f8").tolist() == [1.5, 2.0, 3.0]
    assert list(text[56:]) == [0, 1, 0, 2, 1, 0, 0, 1]


def _u8(v: int) -> bytes:
    return bytes([v])


def _u32(v: int) -> bytes:
    return v.to_bytes(4, "little")


TEXT_CASES = [
    (
        "short",
        lambda: _with_text(_text_section()[1][:10]),
        " is 10 bytes, expected 24 (the text stage's 24-byte fixed fields)",
    ),
    ("analyzer", lambda: _patched(0, _u8(3)), ": unknown analyzer code 3"),
    (
        "ngram-0",
        lambda: _patched(1, _u8(0)),
        ": n-gram range (0, 1) is not 1 <= min_n <= max_n <= 32",
    ),
    (
        "ngram-33",
        lambda: _patched(2, _u8(33)),
        ": n-gram range (1, 33) is not 1 <= min_n <= max_n <= 32",
    ),
    ("flags", lambda: _patched(3, _u8(0x79)), ": unknown flag bits 0x40"),
    (
        "idf-without-tfidf",
        lambda: _patched(3, _u8(1 | 16)),
        ": use_idf or sublinear_tf is set without tf-idf",
    ),
    (
        "sublinear-signed",
        lambda: _patched(3, _u8(59)),
        ": sublinear_tf with alternate_sign needs binary counts (log of a negative count)",
    ),
    ("accents", lambda: _patched(4, _u8(3)), ": unknown strip_accents code 3"),
    (
        "pattern",
        lambda: _patched(5, _u8(4)),
        ": token pattern code 4 is not allowed for analyzer 'word'",
    ),
    (
        "pattern-char",
        lambda: _patched(0, _u8(1) + b"\1\1\x09\0\1"),
        ": token pattern code 1 is not allowed for analyzer 'char'",
    ),
    ("norm", lambda: _patched(6, _u8(3)), ": unknown norm code 3"),
    (
        "tfidf-norm",
        lambda: _patched(3, _u8(1) + b"\0\0\0\2"),
        ": tf-idf norm code 2 is set without tf-idf",
    ),
    (
        "n-features",
        lambda: _patched(8, _u32(9)),
        ": n_features 9 at offset {at8} differs from the header's 8",
    ),
    (
        "stop-words-char",
        lambda: _patched(0, _u8(2)),
        ": 2 stop words at offset {at12}, but only the word analyzer has any",
    ),
    (
        "stop-count",
        lambda: _patched(12, _u32(9)),
        ": 9 stop words cannot take 8 bytes (offset {at20})",
    ),
    (
        "idf-count",
        lambda: _patched(16, _u32(0)),
        ": 0 idf values at offset {at16}, but use_idf is True",
    ),
    (
        "idf-too-many",
        lambda: _patched(16, _u32(9)),
        ": 9 distinct idf values at offset {at16}, more than n_features=8",
    ),
    (
        "length",
        lambda: _with_text(_text_section()[1] + b"\0"),
        " is 65 bytes, expected 64 (24 bytes, 8 of stop words, 3 idf values and 8 idf codes)",
    ),
    ("stop-order", lambda: _patched(26, b"theand"), ": stop words are not sorted and distinct"),
    (
        "stop-utf8",
        lambda: _patched(26, b"\xff"),
        ": stop word 0 at offset {at26} is not valid UTF-8",
    ),
    (
        "idf-nan",
        lambda: _patched(40, np.array([np.nan]).tobytes()),
        ": idf value 1 at offset {at40} is not finite",
    ),
    (
        "idf-code",
        lambda: _patched(57, _u8(3)),
        ": idf code 3 at offset {at57} (column 1) is not < 3",
    ),
]


@pytest.mark.parametrize(
    ("blob_fn", "message"), [c[1:] for c in TEXT_CASES], ids=[c[0] for c in TEXT_CASES]
)
def test_malformed_text_section_exact_message(blob_fn, message: str) -> None:
    from edgesparse.errors import FormatError
    from edgesparse.formats import esb

    off, _ = _text_section()
    where = {f"at{k}": off + k for k in (8, 12, 16, 20, 26, 40, 57)}
    with pytest.raises(FormatError) as info:
        esb.decode(blob_fn())
    assert str(info.value) == f"corrupt .esb: section 'text' at offset {off}" + message.format(
        **where
    )


# -- CountVectorizer / TfidfVectorizer: a vocabulary, kept only where the weights use it ----------
CountVectorizer = sklearn_text.CountVectorizer
TfidfVectorizer = sklearn_text.TfidfVectorizer


@pytest.mark.parametrize(
    "vectorizer",
    [
        lambda: CountVectorizer(),
        lambda: CountVectorizer(ngram_range=(1, 3), stop_words="english", binary=True),
        lambda: CountVectorizer(analyzer="char_wb", ngram_range=(2, 4), strip_accents="unicode"),
        lambda: TfidfVectorizer(),
        lambda: TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True),
        lambda: TfidfVectorizer(use_idf=False, norm="l1", lowercase=False),
        lambda: TfidfVectorizer(smooth_idf=False, norm=None, min_df=2, max_features=500),
    ],
)
def test_vocabulary_rows_equal_scikit_learns(vectorizer) -> None:
    from edgesparse.frontends.sklearn_text import count_vectorizer, tfidf_vectorizer

    vec = vectorizer().fit(DOCS[:400])
    convert = tfidf_vectorizer if isinstance(vec, TfidfVectorizer) else count_vectorizer
    feat = convert(vec, None, step_name="v")
    assert dict(feat.vocabulary) == vec.vocabulary_
    docs = DOCS[300:500] + HARD_DOCS
    _same_rows(feat, vec.transform(docs), docs)


def _vocab_pipelines():
    return {
        "count-sgd": lambda: _fit(CountVectorizer(min_df=2), _sgd()),
        "count-tfidf-no-norm": lambda: _fit(
            CountVectorizer(ngram_range=(1, 2)), TfidfTransformer(norm=None), _sgd()
        ),
        "tfidf-logistic": lambda: _fit(TfidfVectorizer(min_df=2), _logistic()),
    }


@pytest.mark.parametrize("name", sorted(_vocab_pipelines()))
def test_vocabulary_pipelines_predict_like_scikit_learn_and_prune_their_vocabulary(name) -> None:
    from edgesparse import compress
    from edgesparse.formats import esb, linear
    from edgesparse.runtime import loads

    pipe = _vocab_pipelines()[name]()
    fitted = len(pipe.steps[0][1].vocabulary_)
    want = pipe.predict(TEST_DOCS)
    for quantize in ("none", "float32", "int8"):
        blob = esb.encode(compress(pipe, quantize=quantize))
        agree = float(np.mean(loads(blob).predict(TEST_DOCS) == want))
        assert agree >= (0.995 if quantize == "int8" else 1.0), (quantize, agree)
    pruned = compress(pipe, quantize="int8", sparsity=0.995)
    blob = esb.encode(pruned)
    model = loads(blob)
    info = linear.verify(blob)
    kept = info["featurizer"]["vocabulary"]
    assert info["provenance"]["vocabulary_fitted"] == str(fitted)
    normed = name == "tfidf-logistic"  # its l2 norm reads every term: all of them stay
    used = np.unique(pruned.indices).size
    assert kept == (fitted if normed else used) and (normed or kept < fitted)
    # Dropping the unused terms changes nothing: the full-vocabulary IR scores the same (to
    # float32 rounding: its rows also hold the zero-weight terms, summed in another order).
    from edgesparse.runtime.model import Model

    np.testing.assert_allclose(
        model.decision_function(TEST_DOCS),
        Model(pruned).decision_function(TEST_DOCS),
        rtol=1e-5,
        atol=1e-4,
    )
    assert np.array_equal(model.predict(TEST_DOCS), Model(pruned).predict(TEST_DOCS))
    assert esb.encode(linear.decode(blob)) == blob


def test_vocabulary_validation() -> None:
    with pytest.raises(IRError, match="a vocabulary's counts have no sign and no norm"):
        TextFeaturizer(n_features=2, vocabulary={"a": 0, "b": 1})
    base = {"n_features": 2, "alternate_sign": False, "norm": None}
    with pytest.raises(IRError, match=r"column 2 of term 'b' is outside \[0, 2\)"):
        TextFeaturizer(**base, vocabulary={"a": 0, "b": 2})
    with pytest.raises(IRError, match="two terms share one column"):
        TextFeaturizer(**base, vocabulary={"a": 0, "b": 0})
    with pytest.raises(IRError, match="terms must be strings, columns integers"):
        TextFeaturizer(**base, vocabulary={"a": 0, "b": True})
    feat = TextFeaturizer(**base, vocabulary={"b": 1, "a": 0})
    assert list(feat.vocabulary.items()) == [("a", 0), ("b", 1)]
    with pytest.raises(TypeError):
        feat.vocabulary["c"] = 1  # read-only


def _vocab_ir(*, normed: bool) -> LinearIR:
    tfidf = Tfidf(idf=None, norm="l2") if normed else None
    feat = TextFeaturizer(
        n_features=4,
        alternate_sign=False,
        norm=None,
        tfidf=tfidf,
        vocabulary={"apple": 0, "kiwi": 1, "pear": 2, "fig": 3},
    )
    return LinearIR(
        indptr=np.array([0, 2]),
        indices=np.array([1, 3]),
        values=np.array([0.5, -2.0]),
        n_features=4,
        bias=np.array([0.25]),
        head="hard",
        classes=np.array([0, 1]),
        featurizer=feat,
    )


def test_the_vocabulary_block_layout_and_its_malformed_cases() -> None:
    import struct

    from edgesparse.errors import FormatError
    from edgesparse.formats import esb, linear

    ir = _vocab_ir(normed=False)
    blob = esb.encode(ir)
    sec = linear.verify(blob)["sections"]["text"]
    off, size = sec["offset"], sec["bytes"]
    assert sec["encoding"] == "vocabulary"
    text = blob[off : off + size]
    # 24 fixed bytes, no stop words, no idf; 2 kept terms (columns 1 and 3: gaps 1, 1)
    assert text[24:] == struct.pack("<I", 2) + b"\x01\x01" + b"\x04\x03kiwifig"
    assert dict(linear.decode(blob).featurizer.vocabulary) == {"kiwi": 1, "fig": 3}
    assert linear.decode(esb.encode(_vocab_ir(normed=True))).featurizer.vocabulary == (
        _vocab_ir(normed=True).featurizer.vocabulary
    )

    def edited(new_tail: bytes) -> str:
        from tests.test_esb_malformed import reseal

        b = bytearray(blob[: off + 24]) + new_tail
        (n_sec,) = struct.unpack_from("<I", b, 12)
        struct.pack_into("<I", b, 64 + 16 * (n_sec - 1) + 8, 24 + len(new_tail))
        struct.pack_into("<Q", b, 48, len(b))
        with pytest.raises(FormatError) as info:
            esb.decode(reseal(bytes(b)))
        return str(info.value)

    S = f"corrupt .esb: section 'text' at offset {off}"
    assert edited(b"\x02\x00") == (
        S + " is 26 bytes, expected 28 (24 bytes, 0 of stop words, 0 idf values and 0 idf "
        "codes and a vocabulary's term count)"
    )
    assert edited(struct.pack("<I", 5)) == (
        S + f": 5 vocabulary terms at offset {off + 24}, expected at most n_features=4"
    )
    assert edited(struct.pack("<I", 2) + b"\x01") == (
        S + ": the vocabulary holds fewer than 2 columns"
    )
    assert edited(struct.pack("<I", 2) + b"\x01\x02\x04\x03kiwifig") == (
        S + ": a vocabulary column is not below n_features=4"
    )
    assert edited(struct.pack("<I", 2) + b"\x01\x01\x04\x03kiwifigs") == (
        S + f": term lengths add up to 9 bytes, the block at {off + 30} has 10"
    )
    assert edited(struct.pack("<I", 2) + b"\x01\x01\x03\x03fig\xfffg") == (
        S + f": term 1 at offset {off + 35} is not valid UTF-8"
    )
    assert edited(struct.pack("<I", 2) + b"\x01\x01\x03\x03figfig") == (
        S + ": a vocabulary term is repeated"
    )
    normed = esb.encode(_vocab_ir(normed=True))
    n_off = linear.verify(normed)["sections"]["text"]["offset"]
    b = bytearray(normed)
    struct.pack_into("<I", b, n_off + 24, 3)
    from tests.test_esb_malformed import reseal

    with pytest.raises(FormatError) as info:
        esb.decode(reseal(bytes(b)))
    assert str(info.value) == (
        f"corrupt .esb: section 'text' at offset {n_off}: 3 vocabulary terms at offset "
        f"{n_off + 24}, expected exactly n_features=4 (a norm reads every column)"
    )


def test_any_bytes_in_the_text_section_give_a_format_error_or_a_model() -> None:
    from edgesparse.errors import FormatError
    from edgesparse.formats import esb, linear
    from tests.test_esb_malformed import reseal

    rng = random.Random(11)
    for ir in (_text_ir(), _vocab_ir(normed=False), _vocab_ir(normed=True)):
        blob = esb.encode(ir)
        sec = linear.verify(blob)["sections"]["text"]
        off, size = sec["offset"], sec["bytes"]
        for _ in range(600):
            b = bytearray(blob)
            for _ in range(rng.randint(1, 4)):
                b[off + rng.randrange(size)] = rng.randrange(256)
            try:
                esb.decode(reseal(bytes(b)))
            except FormatError as exc:
                assert "\n" not in str(exc)


def test_onnx_encoder_writes_the_text_stage_instead_of_dropping_it() -> None:
    """Called directly (not through compress), the exporter must not write a graph that starts
    at the feature vector and so ignores the model's text stage: the graph reads documents
    (issue 20, item 3), and a feature-row input form is refused."""
    pytest.importorskip("onnx")
    from edgesparse.errors import InputError
    from edgesparse.formats import onnx as onnx_format

    ir = _text_ir()
    assert onnx_format.describe(onnx_format.encode(ir))["inputs"] == {"documents": "string [N]"}
    with pytest.raises(InputError, match="a model with an input stage takes raw input"):
        onnx_format.encode(ir, input="csr")
    assert onnx_format.encode(ir.replace(featurizer=None))  # the same model without the stage


@pytest.mark.parametrize("rows", [1, 3])
def test_a_small_text_model_refuses_a_feature_matrix_of_its_width(rows: int) -> None:
    """A text model small enough for the runtime's dense one-row and batch fast paths still
    reads raw documents only: a float matrix of the featurizer's width is not text."""
    from edgesparse.errors import InputError
    from edgesparse.runtime.model import Model

    model = Model(_text_ir())
    for X in (np.zeros((rows, 8)), np.zeros((rows, 8), dtype=np.float32)):
        with pytest.raises(InputError):
            model.predict(X)
    assert model.predict(["the spam and ham"] * rows).shape == (rows,)
