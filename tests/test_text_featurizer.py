"""The text input stage (issue 20): HashingVectorizer (+ TfidfTransformer) inside the artifact.

Oracle: scikit-learn itself. The featurizer's rows equal ``transform``'s (within 1e-6; they
match to rounding), and a compressed pipeline's labels agree with the pipeline's ``predict``
(100% at float32, >= 99.5% at int8). The corpus is the standard library's own docstrings plus
hand-written hard cases (no downloads).
"""

from __future__ import annotations

import inspect
import itertools
import random

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


def _stdlib_docs() -> list[str]:
    import collections
    import functools
    import json
    import os
    import pathlib
    import re
    import string
    import textwrap

    docs = []
    for mod in (collections, functools, json, os, pathlib, re, string, textwrap, itertools):
        for _, obj in sorted(vars(mod).items()):
            doc = inspect.getdoc(obj) if callable(obj) else None
            if doc:
                docs.append(doc)
    return docs


DOCS = _stdlib_docs()


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
