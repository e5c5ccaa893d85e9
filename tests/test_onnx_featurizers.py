"""ONNX export of the input stages (issue 20, item 3): text and tabular featurizers as
onnxruntime operators in front of the linear graph.

Oracle: scikit-learn. The stage's features (the graph cut after the featurizer) equal the
pipeline's ``transform`` within 1e-6; a compressed model's labels agree with the pipeline's
``predict`` (100% at float32, >= 99.5% at int8) and with the numpy runtime's on the same
model. Text: the standard library's docstrings (tests/test_text_featurizer.py's corpus) plus
accents, Greek, CJK, emoji and empty documents; tables: tests/test_tabular_featurizer.py's
adult-like table. Each refusal's one-line message is checked.
"""

from __future__ import annotations

import csv
import pickle
import warnings

import numpy as np
import pytest

pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("sklearn")

from click.testing import CliRunner  # noqa: E402
from scipy import sparse as scipy_sparse  # noqa: E402
from sklearn.compose import ColumnTransformer  # noqa: E402
from sklearn.feature_extraction.text import (  # noqa: E402
    CountVectorizer,
    HashingVectorizer,
    TfidfTransformer,
    TfidfVectorizer,
)
from sklearn.impute import SimpleImputer  # noqa: E402
from sklearn.linear_model import LogisticRegression, SGDClassifier  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import MinMaxScaler, OneHotEncoder  # noqa: E402

import edgesparse  # noqa: E402
from edgesparse import compress  # noqa: E402
from edgesparse.cli import cli  # noqa: E402
from edgesparse.errors import InputError  # noqa: E402
from edgesparse.formats import onnx as onnx_format  # noqa: E402
from edgesparse.formats.onnx_featurizers import features_model  # noqa: E402
from edgesparse.frontends import to_linear_ir  # noqa: E402
from edgesparse.runtime.model import Model  # noqa: E402
from edgesparse.runtime.onnx_model import OnnxModel  # noqa: E402
from tests.test_tabular_featurizer import (  # noqa: E402
    _is_missing,
    _tab_ir,
    adult_like,
    adult_transformer,
)
from tests.test_text_featurizer import DOCS, HARD_DOCS, LABELS  # noqa: E402

# Text nobody here designed (docstrings) plus scripts and edge cases: accents, Greek with its
# final sigma already lowercase, a capital sigma that is not word-final, CJK, emoji, empties.
EXTRA_DOCS = [
    "",
    "   ",
    "Ελληνικά: η οδός και η ΣΟΦΙΑ του ΣΩΚΡΑΤΗ, άνθρωπος",
    "naïve café — Ångström façade, Œuvre ÆSIR",
    "日本語のテキスト 中文文本 한국어 텍스트",
    "Привет, МИР! Ёлка",
    "snake_case CamelCase x2 ²³ ½ ٣٤ १२",
    "\u200bzero\u200bwidth\ufeffbom",
]
TRAIN = DOCS[::2]
TEST = DOCS[1::2] + HARD_DOCS + EXTRA_DOCS
Y_TRAIN = LABELS[::2]
# Documents onnxruntime lowercases unlike Python (İ; a word-final capital sigma).


def _char_lower(doc: str) -> str:
    return "".join(c.lower() for c in doc)


DIVERGENT = [d for d in TEST if "\u0130" in d or ("\u03a3" in d and d.lower() != _char_lower(d))]
LOWER_TEST = [d for d in TEST if d not in DIVERGENT]


def _session(model: object) -> object:
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(
        model.SerializeToString(), sess_options=opts, providers=["CPUExecutionProvider"]
    )


def _sgd() -> SGDClassifier:
    return SGDClassifier(random_state=0, max_iter=50, tol=None)


TEXT_PIPELINES = {
    "hashing-l2-signed": lambda: (HashingVectorizer(n_features=2**18), _sgd()),
    "hashing-binary-l1-stop-tfidf": lambda: (
        HashingVectorizer(
            n_features=2**12, alternate_sign=False, binary=True, norm="l1", stop_words="english"
        ),
        TfidfTransformer(sublinear_tf=True),
        LogisticRegression(max_iter=300),
    ),
    "hashing-bigrams-stop-words": lambda: (
        HashingVectorizer(n_features=2**16, ngram_range=(1, 2), stop_words="english"),
        TfidfTransformer(use_idf=False),
        LogisticRegression(max_iter=300),
    ),
    "hashing-trigrams-only-unsigned": lambda: (
        HashingVectorizer(n_features=2**14, ngram_range=(3, 3), alternate_sign=False),
        _sgd(),
    ),
    "count-bigrams-min-df": lambda: (
        CountVectorizer(ngram_range=(1, 2), min_df=2),
        LogisticRegression(max_iter=300),
    ),
    "tfidf-trigrams-stop-sublinear": lambda: (
        TfidfVectorizer(ngram_range=(1, 3), stop_words="english", sublinear_tf=True),
        LogisticRegression(max_iter=300),
    ),
    "tfidf-cased-one-char-tokens-l1": lambda: (
        TfidfVectorizer(token_pattern=r"(?u)\b\w+\b", lowercase=False, norm="l1", use_idf=False),
        _sgd(),
    ),
}


@pytest.fixture(scope="module", params=sorted(TEXT_PIPELINES))
def text_pipe(request: pytest.FixtureRequest) -> object:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return make_pipeline(*TEXT_PIPELINES[request.param]()).fit(TRAIN, Y_TRAIN)


def _test_docs(pipe: object) -> list[str]:
    # At the default opset (20 for these) the graph lowercases exactly as str.lower.
    return TEST


def test_divergent_documents_are_the_two_known_characters() -> None:
    assert len(DIVERGENT) == 1 and "İstanbul" in DIVERGENT[0]
    assert len(LOWER_TEST) > 600 and "" in LOWER_TEST


def test_text_features_equal_transform(text_pipe: object) -> None:
    ir = to_linear_ir(text_pipe)
    sess = _session(features_model(ir.featurizer))
    docs = _test_docs(text_pipe)
    rows, cols, values = sess.run(None, {"documents": np.array(docs, dtype=object)})
    got = scipy_sparse.csr_matrix((values, (rows, cols)), shape=(len(docs), ir.n_features))
    want = text_pipe[:-1].transform(docs)
    assert abs(got - want).max() <= 1e-6
    # Sorted by row then column, one entry per nonzero column, as the product expects.
    keys = rows * ir.n_features + cols
    assert np.all(np.diff(keys) > 0)


@pytest.mark.parametrize("quantize", ["float32", "int8"])
def test_text_labels_agree_with_scikit_learn(text_pipe: object, quantize: str) -> None:
    ir = compress(text_pipe, quantize=quantize)
    model = OnnxModel.from_bytes(onnx_format.encode(ir, opset=onnx_format.default_opset(ir)))
    docs = _test_docs(text_pipe)
    want = text_pipe.predict(docs)
    got = model.predict(docs)
    agree = float(np.mean(got == want))
    assert agree >= (0.995 if quantize == "int8" else 1.0), agree
    assert np.array_equal(got, Model(ir).predict(docs))
    # Scores to rounding, scaled by the fitted weights (an absolute bar would depend on how
    # large they came out: raw counts, lbfgs's iterate): the graph's features are within 1e-6
    # of the runtime's (test_text_features_equal_transform), times sum |w| over the row's
    # features, plus float32 rounding of the sum, a few epsilons of sum |x w| + |b|.
    want_scores = Model(ir).decision_function(docs).reshape(len(docs), -1)
    feats = abs(text_pipe[:-1].transform(docs))
    W = np.abs(ir.to_dense()).T
    size = np.asarray(feats @ W) + np.abs(ir.bias)
    bound = 1e-6 * (np.asarray((feats != 0).astype(np.float64) @ W) + size)
    diff = np.abs(model.decision_function(docs).reshape(want_scores.shape) - want_scores)
    assert np.all(diff <= bound), np.max(diff - bound)


@pytest.mark.parametrize(
    "vectorizer",
    [CountVectorizer(), HashingVectorizer(n_features=2**12), TfidfVectorizer(ngram_range=(1, 2))],
    ids=["count", "hashing", "tfidf-bigrams"],
)
def test_binary_text_classifiers_export(vectorizer: object) -> None:
    """Two classes: the logistic head's own constants (``one``, ``zero``) must not clash with
    the names inside the lowercasing loop's body (a subgraph may not redefine them): this
    failed strict shape inference, a traceback from ``compress -o x.onnx``."""
    y = (np.asarray(Y_TRAIN) == Y_TRAIN[0]).astype(int)
    pipe = make_pipeline(vectorizer, LogisticRegression(max_iter=1000)).fit(TRAIN, y)
    ir = compress(pipe, quantize="float32")
    model = OnnxModel.from_bytes(onnx_format.encode(ir, opset=onnx_format.default_opset(ir)))
    assert np.array_equal(model.predict(TEST), pipe.predict(TEST))


def test_lowercase_is_str_lower_at_opset_20_and_refuses_what_differs_below() -> None:
    pipe = make_pipeline(CountVectorizer(), _sgd()).fit(TRAIN, Y_TRAIN)
    ir = to_linear_ir(pipe)
    assert onnx_format.default_opset(ir) == 20
    exact = OnnxModel.from_bytes(onnx_format.encode(ir, opset=20))
    assert exact.meta["lowercase"] == "python"
    hard = [*DIVERGENT, "ΟΔΟΣ", "ΣΟΦΙΑ", "\u0391'Σ' \u0391Σ.\u0392 ΣΣ"]
    assert exact.predict(hard).tolist() == pipe.predict(hard).tolist()
    # Below opset 20, StringNormalizer alone: the two characters it gets wrong are refused.
    simple = OnnxModel.from_bytes(onnx_format.encode(ir, opset=17))
    assert simple.meta["lowercase"] == "simple"
    with pytest.raises(InputError, match=r"^document 1 contains 'İ' \(U\+0130\), which Python"):
        simple.predict(["fine", "İstanbul"])
    with pytest.raises(InputError, match=r"^document 0 has a word-final 'Σ', which Python"):
        simple.predict(["ΟΔΟΣ"])
    # A capital sigma that is not word-final lowercases alike: accepted, as scikit-learn.
    assert simple.predict(["ΣΟΦΙΑ"]).tolist() == pipe.predict(["ΣΟΦΙΑ"]).tolist()
    assert simple.predict(LOWER_TEST).tolist() == pipe.predict(LOWER_TEST).tolist()
    # Without lowercasing there is nothing to differ: every document is accepted.
    cased = make_pipeline(CountVectorizer(lowercase=False), _sgd()).fit(TRAIN, Y_TRAIN)
    cased_ir = to_linear_ir(cased)
    assert onnx_format.default_opset(cased_ir) == onnx_format.DEFAULT_OPSET
    cased_model = OnnxModel.from_bytes(onnx_format.encode(cased_ir))
    assert cased_model.predict(DIVERGENT).tolist() == cased.predict(DIVERGENT).tolist()


def test_the_lowercase_graph_is_str_lower_on_random_hard_text() -> None:
    """Random strings over the characters the final-sigma rule and StringNormalizer care
    about: capital sigmas, İ, cased and uncased letters, case-ignorable marks and
    punctuation, a cased symbol that is no word character, digits, spaces, emoji."""
    from onnx import TensorProto, helper

    from edgesparse.formats import onnx_lower, onnx_text
    from edgesparse.formats.onnx_graph import Graph

    g = Graph()
    lowered = onnx_lower.python_lower(g, "documents")
    g.node("StringNormalizer", [lowered], out="y", case_change_action="LOWER", locale="C.UTF-8")
    graph = helper.make_graph(
        g.nodes,
        "lower",
        [helper.make_tensor_value_info("documents", TensorProto.STRING, ["N"])],
        [helper.make_tensor_value_info("y", TensorProto.STRING, ["N"])],
        initializer=g.initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
    model.ir_version = 9
    # capital sigma thrice, small and final sigma, Greek capital and small alpha, dotted I,
    # I, i, A, a, digit, _, space, period, apostrophe, middle dot, colon, ypogegrammeni
    # (cased and case-ignorable), combining acute, modifier h, circled A (cased, not \w),
    # roman numeral one, soft hyphen, newline, emoji, ß, capital sharp s.
    codes = [0x3A3] * 3 + [0x3C3, 0x3C2, 0x391, 0x3B1, 0x130, 73, 105, 65, 97, 49, 95, 32]
    codes += [46, 39, 0xB7, 58, 0x345, 0x301, 0x2B0, 0x24B6, 0x2160, 0xAD, 10, 0x1F600]
    alphabet = [chr(c) for c in [*codes, 0xDF, 0x1E9E]]
    rng = np.random.default_rng(0)
    docs = ["".join(rng.choice(alphabet, size=int(rng.integers(0, 12)))) for _ in range(4000)]
    got = _session(model).run(None, {"documents": np.array(docs, dtype=object)})[0]
    assert [str(d) for d in got] == [d.lower() for d in docs]
    assert onnx_text.LOCALE == "C.UTF-8"


def test_text_input_errors_are_the_numpy_runtimes() -> None:
    pipe = make_pipeline(HashingVectorizer(n_features=2**10), _sgd()).fit(TRAIN, Y_TRAIN)
    ir = to_linear_ir(pipe)
    model = OnnxModel.from_bytes(onnx_format.encode(ir))
    for bad in ("one string", [b"bytes"], [], np.zeros((2, 2))):
        with pytest.raises(InputError) as onnx_err:
            model.predict(bad)
        with pytest.raises(InputError) as numpy_err:
            Model(ir).predict(bad)
        assert str(onnx_err.value) == str(numpy_err.value)


@pytest.mark.parametrize(
    ("vectorizer", "message"),
    [
        (
            HashingVectorizer(analyzer="char_wb", ngram_range=(2, 4)),
            "text featurizer: analyzer 'char_wb' is not exported to ONNX: scikit-learn first "
            "replaces every whitespace run by one space (re.sub), and no onnxruntime operator "
            "replaces text; write it as .esb",
        ),
        (
            CountVectorizer(analyzer="char"),
            "text featurizer: analyzer 'char' is not exported to ONNX",
        ),
        (
            TfidfVectorizer(strip_accents="unicode"),
            "text featurizer: strip_accents='unicode' is not exported to ONNX: it needs Unicode "
            "NFKD normalization, which no onnxruntime operator does; write it as .esb",
        ),
        (
            HashingVectorizer(ngram_range=(1, 2)),
            "text featurizer: HashingVectorizer ngram_range=(1, 2) needs opset 20 or later in "
            "ONNX, not 17: an n-gram's hash is MurmurHash3 of its tokens joined by a space, and "
            "StringConcat (opset 20) joins them",
        ),
    ],
)
def test_text_refusals_name_the_parameter_and_why(vectorizer: object, message: str) -> None:
    pipe = make_pipeline(vectorizer, _sgd()).fit(TRAIN[:300], Y_TRAIN[:300])
    with pytest.raises(InputError) as info:
        onnx_format.encode(to_linear_ir(pipe))
    assert str(info.value).startswith(message) and "\n" not in str(info.value)


def test_hashed_ngrams_raise_the_default_opset_to_20() -> None:
    pipe = make_pipeline(HashingVectorizer(ngram_range=(1, 2)), _sgd()).fit(TRAIN, Y_TRAIN)
    ir = to_linear_ir(pipe)
    assert onnx_format.default_opset(ir) == 20
    unigrams = make_pipeline(HashingVectorizer(lowercase=False), _sgd())
    unigrams.fit(TRAIN[:300], Y_TRAIN[:300])
    assert onnx_format.default_opset(to_linear_ir(unigrams)) == onnx_format.DEFAULT_OPSET
    info = onnx_format.describe(onnx_format.encode(ir, opset=20))
    assert info["opset"]["ai.onnx"] == 20 and info["ops"]["StringConcat"] == 2


def test_text_needs_opset_16_and_its_own_input_form() -> None:
    pipe = make_pipeline(HashingVectorizer(n_features=2**10), _sgd()).fit(TRAIN, Y_TRAIN)
    ir = to_linear_ir(pipe)
    with pytest.raises(InputError, match=r"needs opset 16 or later \(its scatter adds\), not 15"):
        onnx_format.encode(ir, opset=15)
    with pytest.raises(InputError, match=r"^a model with an input stage takes raw input"):
        onnx_format.encode(ir, input="csr")
    assert onnx_format.default_input(ir) == "dense"
    info = onnx_format.describe(onnx_format.encode(ir, opset=21))
    assert info["domains"] == ["ai.onnx", "ai.onnx.ml", "com.microsoft"]
    assert info["inputs"] == {"documents": "string [N]"}
    assert info["edgesparse"]["input"] == "text"


def _plain_ir() -> object:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 5))
    return compress(LogisticRegression().fit(X, X[:, 0] > 0))


def _text_ir() -> object:
    return compress(make_pipeline(HashingVectorizer(n_features=2**10), _sgd()).fit(TRAIN, Y_TRAIN))


def _table_ir() -> object:
    X, y = adult_like(300, seed=3)
    pipe = make_pipeline(adult_transformer(), LogisticRegression(max_iter=300))
    return compress(_fit_quiet(pipe, X, y))


@pytest.mark.parametrize(
    ("make", "stage"), [(_text_ir, "text"), (_table_ir, "tabular"), (_plain_ir, None)]
)
def test_input_stage_is_the_runtimes_without_a_session(make: object, stage: str | None) -> None:
    # Oracle: the onnxruntime wrapper's own reading (OnnxModel.input_stage).
    data = onnx_format.encode(make())
    assert onnx_format.input_stage(data) == stage
    assert OnnxModel.from_bytes(data).input_stage == stage


def test_input_stage_of_metadata_that_does_not_match_the_graph() -> None:
    import json

    import onnx

    from edgesparse.errors import FormatError

    model = onnx.load_model_from_string(onnx_format.encode(_text_ir()))
    (prop,) = [p for p in model.metadata_props if p.key == onnx_format.METADATA_KEY]
    meta = json.loads(prop.value)
    for bad in (
        json.dumps({**meta, "input": "tabular", "inputs": [["x0", 0, "number"]]}),
        json.dumps({**meta, "input": "tabular", "inputs": 7}),
        "{not json",
    ):
        prop.value = bad
        data = model.SerializeToString()
        assert onnx_format.input_stage(data) is None
        with pytest.raises(FormatError):  # the runtime refuses these files too
            OnnxModel.from_bytes(data)
    for junk in (b"", b"\x08\x07\x12", b"\xff" * 64):
        if junk:  # b"" is an empty (valid) ModelProto: no metadata, no stage
            with pytest.raises(FormatError, match=r"^not a valid ONNX model"):
                onnx_format.input_stage(junk)
        else:
            assert onnx_format.input_stage(junk) is None


def test_cli_compresses_text_to_onnx_and_load_predicts_documents(tmp_path) -> None:
    pipe = make_pipeline(TfidfVectorizer(min_df=2), LogisticRegression(max_iter=300))
    pipe.fit(TRAIN, Y_TRAIN)
    src, out = tmp_path / "text.pkl", tmp_path / "text.onnx"
    src.write_bytes(pickle.dumps(pipe))
    res = CliRunner().invoke(cli, ["compress", str(src), "-o", str(out)])
    assert res.exit_code == 0, res.output
    model = edgesparse.load(out)
    assert isinstance(model, OnnxModel)
    assert float(np.mean(model.predict(LOWER_TEST) == pipe.predict(LOWER_TEST))) >= 0.995
    lines = [d.replace("\n", " ") for d in LOWER_TEST[:100] if d.strip()]
    docs = tmp_path / "docs.txt"
    docs.write_text("\n".join(lines) + "\n", encoding="utf-8")
    res = CliRunner().invoke(cli, ["predict", str(out), str(docs)])
    assert res.exit_code == 0, res.output
    assert res.output.split() == [str(v) for v in model.predict(lines)]
    bad = make_pipeline(HashingVectorizer(analyzer="char"), _sgd()).fit(TRAIN[:200], Y_TRAIN[:200])
    src.write_bytes(pickle.dumps(bad))
    res = CliRunner().invoke(cli, ["compress", str(src), "-o", str(out)])
    assert res.exit_code != 0
    assert "text featurizer: analyzer 'char' is not exported to ONNX" in res.output


# -- tabular -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def adult() -> tuple[np.ndarray, np.ndarray]:
    return adult_like(3000, seed=12)


def _fit_quiet(pipe: object, X: np.ndarray, y: np.ndarray) -> object:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pipe.fit(X, y)


def _transform(ct: object, X: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unknown categories in the test split
        out = ct.transform(X)
    return out.toarray() if hasattr(out, "toarray") else np.asarray(out, dtype=np.float64)


def _records_feed(feat: object, X: np.ndarray) -> dict[str, np.ndarray]:
    from edgesparse.formats.onnx_featurizers import stage
    from edgesparse.formats.onnx_graph import Graph
    from edgesparse.runtime.onnx_inputs import RecordFeeds

    return RecordFeeds(stage(Graph(), feat, opset=17).meta).feeds(X)[0]


@pytest.mark.parametrize("drop", [None, "first", "if_binary"])
def test_tabular_features_equal_transform(adult, drop: str | None) -> None:
    X, y = adult
    pipe = _fit_quiet(
        make_pipeline(adult_transformer(drop=drop), LogisticRegression(max_iter=300)),
        X[:2000],
        y[:2000],
    )
    feat = to_linear_ir(pipe).featurizer
    test = X[2000:]
    got = _session(features_model(feat)).run(["X"], _records_feed(feat, test))[0]
    np.testing.assert_allclose(got, _transform(pipe[0], test), rtol=0, atol=1e-6)


@pytest.mark.parametrize("quantize", ["float32", "int8"])
def test_tabular_labels_agree_with_scikit_learn(adult, quantize: str) -> None:
    X, y = adult
    pipe = _fit_quiet(
        make_pipeline(adult_transformer(), LogisticRegression(max_iter=300)), X[:2000], y[:2000]
    )
    ir = compress(pipe, quantize=quantize)
    model = OnnxModel.from_bytes(onnx_format.encode(ir))
    test = X[2000:]
    want = pipe.predict(test)
    got = model.predict(test)
    agree = float(np.mean(got == want))
    assert agree >= (0.995 if quantize == "int8" else 1.0), agree
    assert np.array_equal(got, Model(ir).predict(test))
    np.testing.assert_allclose(model.predict_proba(test), Model(ir).predict_proba(test), atol=1e-6)


def test_int_and_nan_categories_missing_markers_and_unseen_values() -> None:
    rng = np.random.default_rng(3)
    n = 600
    X = np.empty((n, 4), dtype=object)
    X[:, 0] = rng.integers(0, 6, n).tolist()  # int categories
    X[:, 1] = rng.choice(["x", "y", "z"], n)
    X[rng.random(n) < 0.1, 1] = np.nan  # NaN as a category of its own (no imputer)
    X[:, 2] = rng.normal(5, 2, n)
    X[rng.random(n) < 0.1, 2] = -1.0  # a numeric missing marker
    X[:, 3] = rng.integers(0, 3, n).astype(float)
    y = (X[:, 0].astype(float) + (X[:, 1] == "x") * 2 + rng.normal(0, 1, n) > 3).astype(int)
    ct = ColumnTransformer(
        [
            ("i", OneHotEncoder(handle_unknown="infrequent_if_exist"), [0, 1]),
            ("m", make_pipeline(SimpleImputer(missing_values=-1.0), MinMaxScaler()), [2]),
            ("f", make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder()), [3]),
        ]
    )
    pipe = _fit_quiet(make_pipeline(ct, LogisticRegression(max_iter=1000)), X[:400], y[:400])
    ir = to_linear_ir(pipe)
    test = X[400:].copy()
    test[:5, 0] = 17  # unseen int category: ignored
    test[5:10, 0] = 2.0  # a float equal to a fitted int category matches it
    test[10:12, 0] = "2"  # a string is no int category: ignored, as in scikit-learn
    test[12:14, 1] = None  # not NaN: an unknown category, ignored
    test[14, 0] = 10**400  # an int no double holds: ignored
    feat = ir.featurizer
    got = _session(features_model(feat)).run(["X"], _records_feed(feat, test))[0]
    np.testing.assert_allclose(got, _transform(ct, test), rtol=0, atol=1e-6)
    model = OnnxModel.from_bytes(onnx_format.encode(ir))
    assert np.array_equal(model.predict(test), pipe.predict(test))


def test_unknown_categories_raise_the_numpy_runtimes_error(adult) -> None:
    X, y = adult
    pipe = _fit_quiet(
        make_pipeline(
            ColumnTransformer([("c", OneHotEncoder(), [1, 6]), ("n", "passthrough", [8])]),
            LogisticRegression(max_iter=300),
        ),
        np.where(X == X, X, "gap")[:2000],  # NaN cells as a category of their own
        y[:2000],
    )
    ir = to_linear_ir(pipe)
    model = OnnxModel.from_bytes(onnx_format.encode(ir))
    test = np.where(X == X, X, "gap")[:50].copy()
    assert np.array_equal(model.predict(test), pipe.predict(test))
    test[7, 6] = "nowhere"
    with pytest.raises(InputError) as onnx_err:
        model.predict(test)
    with pytest.raises(InputError) as numpy_err:
        Model(ir).predict(test)
    assert str(onnx_err.value) == str(numpy_err.value)
    assert "unknown category 'nowhere'" in str(onnx_err.value)


def test_tabular_refusals_name_the_column_and_why() -> None:
    ir = _tab_ir()  # categories ("a", 7, 1.5, None)
    with pytest.raises(InputError) as info:
        onnx_format.encode(ir)
    assert str(info.value) == (
        "tabular featurizer: output column 1 (input 2): None as a category is not exported to "
        "ONNX: no ONNX tensor holds None; write it as .esb"
    )
    cols = list(ir.featurizer.columns)
    cols[1] = type(cols[1])(source=2, categories=("a", 7, 1.5), unknown="ignore")
    feat = type(ir.featurizer)(n_inputs=3, columns=tuple(cols), names=ir.featurizer.names)
    with pytest.raises(InputError) as info:
        onnx_format.encode(ir.replace(featurizer=feat, indices=np.array([0, 2])))
    assert str(info.value) == (
        "tabular featurizer: output column 1 (input 2): categories mixing strings and numbers "
        "are not exported to ONNX: an ONNX tensor holds one type; write it as .esb"
    )
    cols[1] = type(cols[1])(source=2, categories=(7, 1.5), impute=True, fill="a")
    feat = type(ir.featurizer)(n_inputs=3, columns=tuple(cols), names=ir.featurizer.names)
    with pytest.raises(InputError) as info:
        onnx_format.encode(ir.replace(featurizer=feat, indices=np.array([0, 2]), n_features=3))
    assert str(info.value) == (
        "tabular featurizer: output column 1 (input 2): a string fill value ('a') over numeric "
        "categories is not exported to ONNX: an ONNX tensor holds one type; write it as .esb"
    )


def test_cli_compresses_a_table_to_onnx_and_load_predicts_records(tmp_path, adult) -> None:
    import pandas as pd

    X, y = adult
    names = ["age", "workclass", "fnlwgt", "education", "hours", "gain", "country", "sex", "g"]
    frame = pd.DataFrame(X, columns=names)
    ct = adult_transformer()
    ct.transformers = [(n, t, [names[c] for c in cols]) for n, t, cols in ct.transformers]
    pipe = _fit_quiet(make_pipeline(ct, LogisticRegression(max_iter=300)), frame[:2000], y[:2000])
    src, out = tmp_path / "adult.pkl", tmp_path / "adult.onnx"
    src.write_bytes(pickle.dumps(pipe))
    res = CliRunner().invoke(cli, ["compress", str(src), "-o", str(out), "--quantize", "float32"])
    assert res.exit_code == 0, res.output
    model = edgesparse.load(out)
    test = frame[2000:]
    assert np.array_equal(model.predict(test), pipe.predict(test))
    records = test[::-1].to_dict("records")  # dicts, by name, in any key order
    assert np.array_equal(model.predict(records), pipe.predict(test[::-1]))
    info = onnx_format.inspect_file(out)
    assert info["inputs"]["in_workclass"] == "string [N]"
    assert info["inputs"]["in_age"] == "float64 [N]"
    # edgesparse predict reads a CSV of records (empty cells missing) for it, as for .esb.
    rows = tmp_path / "rows.csv"
    order = list(reversed(names))
    with rows.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(order)
        for rec in test[:200].to_dict("records"):
            w.writerow(["" if _is_missing(rec[n]) else rec[n] for n in order])
    res = CliRunner().invoke(cli, ["predict", str(out), str(rows)])
    assert res.exit_code == 0, res.output
    assert [int(v) for v in res.output.split()] == pipe.predict(test[:200]).tolist()
