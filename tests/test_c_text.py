"""The C runtime's text input stage (runtime/c/esb_text.c) against the numpy runtime and
scikit-learn: its Unicode tables, its verifier and its features."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
import unicodedata
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
TABLES = ROOT / "edgesparse/runtime/c/esb_unicode.h"


def test_unicode_tables_are_this_pythons() -> None:
    """The committed tables are what the generator writes from this Python's str methods and
    unicodedata (regenerated and compared, when the Unicode versions agree)."""
    head = TABLES.read_text(encoding="utf-8").splitlines()[1]
    if f'"{unicodedata.unidata_version}"' not in head:
        pytest.skip(f"tables are for another Unicode version ({head}); regenerate to compare")
    res = subprocess.run(
        [sys.executable, str(ROOT / "scripts/gen_unicode_tables.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr


# -- the C featurizer against scikit-learn and the numpy runtime --------------------------------
C_DIR = ROOT / "edgesparse/runtime/c"
CFLAGS = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"]


def _build(out: Path, *, sanitize: bool) -> list[str]:
    from tests.conftest import require_tool

    cc = "clang" if sanitize else "gcc"
    require_tool(shutil.which(cc) is not None, what=cc, install=f"sudo apt-get install {cc}")
    flags = ["-g", "-O1", "-fsanitize=address,undefined", "-fno-sanitize-recover=all"]
    sources = [str(C_DIR / "esb.c"), str(C_DIR / "esb_main.c")]
    res = subprocess.run(
        [cc, *CFLAGS, *(flags if sanitize else ["-O2"]), *sources, "-lm", "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if sanitize and res.returncode != 0 and "sanitizer" in res.stderr.lower():
        pytest.skip("clang's sanitizer runtimes are not installed")
    assert res.returncode == 0, res.stderr
    return [str(out)]


@pytest.fixture(scope="module")
def esb_c(tmp_path_factory) -> list[str]:
    return _build(tmp_path_factory.mktemp("ctext") / "esb", sanitize=False)


@pytest.fixture(scope="module")
def esb_asan(tmp_path_factory) -> list[str]:
    return _build(tmp_path_factory.mktemp("ctext-asan") / "esb", sanitize=True)


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "ASAN_OPTIONS": "detect_leaks=0", "UBSAN_OPTIONS": "print_stacktrace=1"}
    return subprocess.run(cmd, capture_output=True, timeout=600, env=env, **kw)


def _line_safe(docs: list[str]) -> list[str]:
    """The documents as the line-oriented driver can take them: a newline inside one becomes a
    vertical tab (whitespace to both), a carriage return at the end is moved inward."""
    return [d.replace("\n", "\x0b").replace("\r", "\x0c") for d in docs]


def c_features(driver: list[str], blob: bytes, docs: list[str], tmp: Path) -> np.ndarray:
    """The C featurizer's rows (dense) of ``docs`` (no newline in any)."""
    (tmp / "m.esb").write_bytes(blob)
    (tmp / "docs.txt").write_bytes("".join(d + "\n" for d in docs).encode("utf-8"))
    res = _run([*driver, "features", str(tmp / "m.esb"), str(tmp / "docs.txt")])
    assert res.returncode == 0 and not res.stderr, res.stderr.decode()
    lines = res.stdout.decode().split("\n")[:-1]
    assert len(lines) == len(docs)
    n = struct.unpack_from("<I", blob, 20)[0]
    out = np.zeros((len(docs), n))
    for i, line in enumerate(lines):
        cols = [tuple(item.split(":")) for item in line.split()]
        idx = [int(c) for c, _ in cols]
        assert idx == sorted(set(idx))  # canonical CSR
        out[i, idx] = [float(v) for _, v in cols]
        assert np.all(out[i, idx] != 0)
    return out


def _blob(feat, n_outputs: int = 1) -> bytes:
    """A model around ``feat`` that uses every column (so a vocabulary keeps every term)."""
    from edgesparse.formats import esb
    from edgesparse.ir import LinearIR

    n = feat.n_features
    rng = np.random.default_rng(0)
    cols = np.arange(n)
    return esb.encode(
        LinearIR(
            indptr=np.array([0, cols.size]),
            indices=cols,
            values=rng.normal(size=cols.size),
            n_features=n,
            bias=np.array([0.1]),
            head="hard",
            classes=np.array([0, 1]),
            featurizer=feat,
        )
    )


@pytest.fixture(scope="module")
def tf():
    from tests import test_text_featurizer as tf

    return tf


def _corpus(tf) -> list[str]:
    long_doc = " ".join(tf.DOCS[:60])  # tens of kilobytes
    return _line_safe(tf.DOCS[::7] + tf.HARD_DOCS + [long_doc, "ǅemal Σ ΣΑΣ ὈΔΥΣΣΕΎΣ aΣ.b"])


def _check(tf, esb_c, tmp_path, vec, docs) -> None:
    from edgesparse.runtime.text import featurize

    if isinstance(vec, tf.HashingVectorizer):
        feat = tf._featurizer_of(vec)
        ref = vec.transform(docs)
    else:
        from edgesparse.frontends.sklearn_text import count_vectorizer, tfidf_vectorizer

        vec.fit(tf.DOCS[:400])
        convert = tfidf_vectorizer if isinstance(vec, tf.TfidfVectorizer) else count_vectorizer
        feat = convert(vec, None, step_name="v")
        ref = vec.transform(docs)
    got = c_features(esb_c, _blob(feat), docs, tmp_path)
    np.testing.assert_allclose(got, ref.toarray(), rtol=0, atol=1e-6)
    np.testing.assert_allclose(got, featurize(feat, docs).toarray(), rtol=0, atol=1e-12)


HASHING = {
    "default-words": dict(n_features=2**12),
    "bigrams-stop-accents-ascii": dict(
        n_features=2**12, ngram_range=(1, 2), stop_words="english", strip_accents="ascii"
    ),
    "words-unicode-accents-l1-binary": dict(
        n_features=2**10, strip_accents="unicode", norm="l1", binary=True
    ),
    "one-char-tokens-no-lower": dict(
        n_features=2**11, token_pattern=r"(?u)\b\w+\b", lowercase=False, norm=None
    ),
    "ascii-pattern-trigrams": dict(
        n_features=2**11, token_pattern=r"\b\w\w+\b", ngram_range=(2, 3), alternate_sign=False
    ),
    "char-1-3": dict(n_features=2**12, analyzer="char", ngram_range=(1, 3)),
    "char-wb-2-5-unicode": dict(
        n_features=2**12, analyzer="char_wb", ngram_range=(2, 5), strip_accents="unicode"
    ),
    "char-wb-1-1": dict(n_features=2**8, analyzer="char_wb", norm=None),
    "int-min-hash": dict(n_features=3, norm=None, token_pattern=r"(?u)\b\w+\b"),
}


@pytest.mark.parametrize("name", sorted(HASHING))
def test_hashing_rows_equal_scikit_learn_and_numpy(name, tf, esb_c, tmp_path) -> None:
    docs = _corpus(tf)
    _check(tf, esb_c, tmp_path, tf.HashingVectorizer(**HASHING[name]), docs)


VOCABULARY = {
    "count": lambda tf: tf.CountVectorizer(),
    "count-ngrams-stop-binary": lambda tf: tf.CountVectorizer(
        ngram_range=(1, 3), stop_words="english", binary=True
    ),
    "count-char-wb-unicode": lambda tf: tf.CountVectorizer(
        analyzer="char_wb", ngram_range=(2, 4), strip_accents="unicode"
    ),
    "tfidf": lambda tf: tf.TfidfVectorizer(),
    "tfidf-char-sublinear": lambda tf: tf.TfidfVectorizer(
        analyzer="char", ngram_range=(1, 3), sublinear_tf=True
    ),
    "tfidf-no-idf-l1-case": lambda tf: tf.TfidfVectorizer(
        use_idf=False, norm="l1", lowercase=False
    ),
}


@pytest.mark.parametrize("name", sorted(VOCABULARY))
def test_vocabulary_rows_equal_scikit_learn_and_numpy(name, tf, esb_c, tmp_path) -> None:
    _check(tf, esb_c, tmp_path, VOCABULARY[name](tf), _corpus(tf))


def test_hashing_then_tfidf_rows_equal_scikit_learn(tf, esb_c, tmp_path) -> None:
    from edgesparse.runtime.text import featurize

    docs = _corpus(tf)
    hv = tf.HashingVectorizer(n_features=2**12, alternate_sign=False, norm=None)
    tfidf = tf.TfidfTransformer(sublinear_tf=True).fit(hv.transform(tf.DOCS))
    feat = tf._featurizer_of(hv, tfidf)
    got = c_features(esb_c, _blob(feat), docs, tmp_path)
    np.testing.assert_allclose(got, tfidf.transform(hv.transform(docs)).toarray(), atol=1e-6)
    np.testing.assert_allclose(got, featurize(feat, docs).toarray(), rtol=0, atol=1e-12)
