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

from tests.cdriver import SANITIZER_ENV

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
    """The `esb` driver with -O2 (-O1 and ASan + UBSan when ``sanitize``), compiled once per
    session (tests/cbuild.py): the same command as tests/cdriver.py's, so the modules share
    it; ``out`` names the program."""
    from tests import cdriver
    from tests.cbuild import build
    from tests.conftest import require_tool

    cc = "clang" if sanitize else "gcc"
    require_tool(shutil.which(cc) is not None, what=cc, install=f"sudo apt-get install {cc}")
    sources = [str(C_DIR / "esb.c"), str(C_DIR / "esb_main.c")]
    exe, res = build(
        [cc, *cdriver.CFLAGS, *(cdriver.SANITIZE if sanitize else []), *sources, "-lm"],
        name=out.name,
    )
    if sanitize and res.returncode != 0 and "sanitizer" in res.stderr.lower():
        pytest.skip("clang's sanitizer runtimes are not installed")
    assert res.returncode == 0, res.stderr
    return [str(exe)]


@pytest.fixture(scope="module")
def esb_c(tmp_path_factory) -> list[str]:
    return _build(tmp_path_factory.mktemp("ctext") / "esb", sanitize=False)


@pytest.fixture(scope="module")
def esb_asan(tmp_path_factory) -> list[str]:
    return _build(tmp_path_factory.mktemp("ctext-asan") / "esb", sanitize=True)


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, **SANITIZER_ENV}
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


# -- the verifier: the same decision and message as the Python reader ----------------------------
def _verify(driver: list[str], blobs: list[bytes], tmp: Path) -> list[str]:
    paths = []
    for i, b in enumerate(blobs):
        (tmp / f"{i}.esb").write_bytes(b)
        paths.append(str(tmp / f"{i}.esb"))
    lines: list[str] = []
    for lo in range(0, len(paths), 400):
        res = _run([*driver, "verify", *paths[lo : lo + 400]])
        err = res.stderr.decode()
        assert "Sanitizer" not in err and "runtime error" not in err, err
        lines += res.stdout.decode().splitlines()
    assert len(lines) == len(blobs)
    return lines


def _python_error(blob: bytes) -> str | None:
    from edgesparse.errors import FormatError
    from edgesparse.formats import esb

    try:
        esb.decode(blob)
    except FormatError as exc:
        return str(exc)
    return None


def _vocab_edits(tf) -> list[bytes]:
    """The vocabulary block's malformed cases of test_text_featurizer, and a signed one."""
    from edgesparse.formats import esb, linear
    from tests.test_esb_malformed import reseal

    blob = esb.encode(tf._vocab_ir(normed=False))
    off = linear.verify(blob)["sections"]["text"]["offset"]

    def edited(tail: bytes) -> bytes:
        b = bytearray(blob[: off + 24]) + tail
        (n_sec,) = struct.unpack_from("<I", b, 12)
        struct.pack_into("<I", b, 64 + 16 * (n_sec - 1) + 8, 24 + len(tail))
        struct.pack_into("<Q", b, 48, len(b))
        return reseal(bytes(b))

    two = struct.pack("<I", 2)
    out = [
        edited(tail)
        for tail in (
            b"\x02\x00",
            struct.pack("<I", 5),
            two + b"\x01",
            two + b"\x01\x02\x04\x03kiwifig",
            two + b"\x01\x01\x04\x03kiwifigs",
            two + b"\x01\x01\x03\x03fig\xfffg",
            two + b"\x01\x01\x03\x03figfig",
            two + b"\x01\x01\x80\x00\x03kiwfig",
        )
    ]
    signed = bytearray(blob)
    signed[off + 3] |= 2  # alternate_sign with a vocabulary: the IR refuses it
    normed = bytearray(esb.encode(tf._vocab_ir(normed=True)))
    n_off = linear.verify(bytes(normed))["sections"]["text"]["offset"]
    struct.pack_into("<I", normed, n_off + 24, 3)
    return [*out, reseal(bytes(signed)), reseal(bytes(normed))]


def test_malformed_text_sections_same_messages_as_python(tf, esb_asan, tmp_path) -> None:
    blobs = [fn() for _, fn, _ in tf.TEXT_CASES] + _vocab_edits(tf)
    lines = _verify(esb_asan, blobs, tmp_path)
    for blob, line in zip(blobs, lines, strict=True):
        expected = _python_error(blob)
        assert expected is not None
        assert line.split(" ", 2)[2] == expected, line


def _large_vocabulary_blob(tf, *, repeat: bool) -> bytes:
    """A 6000-term vocabulary (more than one pass of the duplicate check), optionally with the
    last term equal to the first."""
    from edgesparse.formats import esb
    from edgesparse.ir import LinearIR, TextFeaturizer

    terms = {f"t{i}": i for i in range(6000)}
    feat = TextFeaturizer(n_features=6000, alternate_sign=False, norm=None, vocabulary=terms)
    ir = LinearIR(
        indptr=np.array([0, 6000]),
        indices=np.arange(6000),
        values=np.ones(6000),
        n_features=6000,
        bias=np.array([0.0]),
        head="identity",
        featurizer=feat,
    )
    blob = esb.encode(ir)
    if repeat:  # "t5999" -> "t0" would change lengths: rename "t5999"'s twin instead
        blob = blob.replace(b"t5999", b"t5998")
        from tests.test_esb_malformed import reseal

        blob = reseal(blob)
    return blob


def test_large_vocabulary_duplicates_found(tf, esb_asan, tmp_path) -> None:
    blobs = [_large_vocabulary_blob(tf, repeat=False), _large_vocabulary_blob(tf, repeat=True)]
    lines = _verify(esb_asan, blobs, tmp_path)
    assert lines[0] == "OK"
    assert lines[1].split(" ", 2)[2] == _python_error(blobs[1])
    assert lines[1].endswith(": a vocabulary term is repeated")


def test_mutated_text_sections_same_decision_as_python(tf, esb_asan, tmp_path) -> None:
    import random

    from edgesparse.formats import esb, linear
    from tests.test_esb_malformed import reseal

    rng = random.Random(5)
    blobs = []
    for ir in (tf._text_ir(), tf._vocab_ir(normed=False), tf._vocab_ir(normed=True)):
        blob = esb.encode(ir)
        sec = linear.verify(blob)["sections"]["text"]
        off, size = sec["offset"], sec["bytes"]
        for _ in range(300):
            b = bytearray(blob)
            for _ in range(rng.randint(1, 3)):
                b[off + rng.randrange(size)] = rng.choice(
                    (0, 1, 0x7F, 0x80, 0xFF, rng.randrange(256))
                )
            blobs.append(reseal(bytes(b)))
        blobs += [reseal(blob[:n]) for n in rng.sample(range(off, off + size), 20)]
    lines = _verify(esb_asan, blobs, tmp_path)
    accepted = 0
    for blob, line in zip(blobs, lines, strict=True):
        expected = _python_error(blob)
        if expected is None:
            accepted += 1
            assert line == "OK"
        else:
            assert line.startswith("ERR "), f"C accepted what Python rejects: {expected}"
            assert line.split(" ", 2)[2] == expected
    assert accepted > 20


# -- labels, sanitizers, hostile input ---------------------------------------------------------
PIPELINES = (
    "hashing-sgd",
    "hashing-tfidf-logistic",
    "char-wb-binary-l1",
    "bigram-stop-words-no-idf",
)


def _predict_lines(driver: list[str], blob: bytes, docs: list[str], tmp: Path) -> list[str]:
    (tmp / "m.esb").write_bytes(blob)
    (tmp / "docs.txt").write_bytes("".join(d + "\n" for d in docs).encode("utf-8"))
    res = _run([*driver, "predict", str(tmp / "m.esb"), str(tmp / "docs.txt")])
    assert res.returncode == 0 and not res.stderr, res.stderr.decode()
    return res.stdout.decode().splitlines()


@pytest.mark.parametrize("name", PIPELINES)
def test_c_labels_equal_the_numpy_runtimes(name, tf, esb_c, tmp_path) -> None:
    from edgesparse import compress
    from edgesparse.formats import esb
    from edgesparse.runtime import loads

    pipe = tf._pipelines()[name]()
    docs = _line_safe(tf.TEST_DOCS)
    blob = esb.encode(compress(pipe, quantize="int8"))
    model = loads(blob)
    lines = _predict_lines(esb_c, blob, docs, tmp_path)
    got = np.array([int(line.split("\t")[0]) for line in lines])
    want = np.searchsorted(model.classes_, model.predict(docs))
    assert np.array_equal(got, want)
    scores = np.array([[float(v) for v in line.split("\t")[1].split()] for line in lines])
    np.testing.assert_allclose(scores.ravel(), model.decision_function(docs).ravel(), atol=1e-4)


def test_features_clean_under_sanitizers(tf, esb_asan, tmp_path) -> None:
    from edgesparse.runtime.text import featurize

    docs = _corpus(tf)[:200] + _corpus(tf)[-15:]
    for kw in (HASHING["char-wb-2-5-unicode"], HASHING["bigrams-stop-accents-ascii"]):
        hv = tf.HashingVectorizer(**kw)
        feat = tf._featurizer_of(hv)
        got = c_features(esb_asan, _blob(feat), docs, tmp_path)
        np.testing.assert_allclose(got, featurize(feat, docs).toarray(), rtol=0, atol=1e-12)


def test_hostile_documents_get_error_codes(tf, esb_asan, tmp_path) -> None:
    feat = tf._featurizer_of(tf.HashingVectorizer(n_features=2**10))
    (tmp_path / "m.esb").write_bytes(_blob(feat))
    cases = {
        b"ok \xff bad\n": "document 0: ",  # not UTF-8
        b"fine\n\xed\xa0\x80\n": "document 1: ",  # a surrogate
        b"\xc0\xaf\n": "document 0: ",  # overlong
        b"abc\xe2\x82\n": "document 0: ",  # truncated
    }
    for data, where in cases.items():
        (tmp_path / "d.txt").write_bytes(data)
        res = _run([*esb_asan, "features", str(tmp_path / "m.esb"), str(tmp_path / "d.txt")])
        err = res.stderr.decode()
        assert res.returncode == 1 and err.startswith(f"esb: {where}"), err
        assert "Sanitizer" not in err and "runtime error" not in err
    # NUL bytes are characters: same row as the numpy runtime's
    from edgesparse.runtime.text import featurize

    docs = ["a\x00b nul\x00\x00word", "\x00"]
    np.testing.assert_allclose(
        c_features(esb_asan, _blob(feat), docs, tmp_path), featurize(feat, docs).toarray()
    )


_WS_PROBE = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "esb.h"

/* argv: blob, max_len, then documents: prints each one's status with a workspace of exactly
 * esb_text_workspace_size(m, max_len) bytes (malloc'd: a sanitizer sees any overflow). */
int main(int argc, char **argv)
{
    static unsigned char blob[1 << 20];
    esb_model m;
    FILE *f = fopen(argv[1], "rb");
    size_t n = fread(blob, 1, sizeof blob, f), bytes;
    int i;
    void *ws;
    fclose(f);
    if (esb_open(blob, n, &m) != ESB_OK) return 3;
    bytes = esb_text_workspace_size(&m, (size_t)atol(argv[2]));
    ws = malloc(bytes);
    for (i = 3; i < argc; i++) {
        uint32_t nnz, k;
        const int32_t *idx;
        const double *val;
        esb_status st = esb_text_features(&m, argv[i], strlen(argv[i]), ws, bytes, &nnz, &idx,
                                          &val);
        esb_status sp = esb_predict_text(&m, argv[i], strlen(argv[i]), ws, bytes, &k);
        printf("%d %d\n", (int)st, (int)sp);
    }
    {
        uint32_t nnz;
        const int32_t *idx;
        const double *val;
        printf("%d\n", (int)esb_text_features(&m, "ab", 2, ws, 8, &nnz, &idx, &val));
    }
    free(ws);
    return 0;
}
"""


@pytest.mark.parametrize("accents", [None, "unicode"])
def test_documents_past_the_workspace_are_refused(accents, tf, esb_asan, tmp_path) -> None:
    """A workspace of esb_text_workspace_size(m, L) takes every document of L bytes, even the
    most expanding (U+FDFA becomes 18 code points), and refuses a longer one that does not fit
    with ESB_E_ARGUMENT (1), with no write past it (the probe runs under ASan)."""
    src = tmp_path / "probe.c"
    src.write_text(_WS_PROBE)
    exe = tmp_path / "probe"
    flags = ["-g", "-O1", "-fsanitize=address,undefined", "-fno-sanitize-recover=all"]
    res = subprocess.run(
        [
            "clang",
            "-std=c99",
            *flags,
            f"-I{C_DIR}",
            str(src),
            str(C_DIR / "esb.c"),
            "-lm",
            "-o",
            str(exe),
        ],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr
    hv = tf.HashingVectorizer(
        n_features=2**8, analyzer="char_wb", ngram_range=(1, 4), strip_accents=accents
    )
    (tmp_path / "m.esb").write_bytes(_blob(tf._featurizer_of(hv)))
    fits = ["\ufdfa" * 10, "a b c d e f g h i j k l m n o", "İİİİİİİİİİİİİİİ", "x" * 30]
    too_long = ["a b " * 200, "\ufdfa" * 100]
    res = _run([str(exe), str(tmp_path / "m.esb"), "30", *fits, *too_long])
    assert res.returncode == 0, res.stderr.decode()
    lines = res.stdout.decode().split("\n")
    assert lines[: len(fits)] == ["0 0"] * len(fits)
    assert lines[len(fits) : len(fits) + len(too_long)] == ["1 1"] * len(too_long)
    assert lines[len(fits) + len(too_long)] == "1"  # an 8-byte workspace holds nothing


# -- export-c: a text model's C program reads documents from stdin -------------------------------
@pytest.mark.parametrize("name", ["hashing-tfidf-logistic", "char-wb-binary-l1", "count-sgd"])
def test_export_c_text_model_predicts_like_the_numpy_runtime(name, tf, tmp_path) -> None:
    from edgesparse import compress
    from edgesparse.export_c import export_c
    from edgesparse.formats import esb
    from edgesparse.runtime import loads

    pipes = {**tf._pipelines(), **tf._vocab_pipelines()}
    blob = tmp_path / "m.esb"
    blob.write_bytes(esb.encode(compress(pipes[name](), quantize="int8")))
    model = loads(blob.read_bytes())
    out = tmp_path / "out"
    export_c(blob, out, name="model")
    docs = _line_safe(tf.TEST_DOCS)
    for streamed in (False, True):
        flags = "-O2 -std=c99 -Wall -Wextra -Werror -pedantic" + (" -DESB_STREAMED" * streamed)
        res = subprocess.run(
            ["make", "-C", str(out), "CC=gcc", f"CFLAGS={flags}"], capture_output=True, text=True
        )
        assert res.returncode == 0, res.stdout + res.stderr
        text = "".join(d + ("\r\n" if i % 3 == 0 else "\n") for i, d in enumerate(docs))
        res = _run([str(out / "model_main")], input=text.encode("utf-8"))
        assert res.returncode == 0, res.stderr.decode()
        labels = [line.split("\t")[0] for line in res.stdout.decode().splitlines()]
        assert labels == [str(v) for v in model.predict(docs)]
        (out / "model_main").unlink()
    # bad lines: named, the rest checked, exit 1
    bad = b"fine\n\xff\n" + b"x" * 20000 + b"\nok\n"
    subprocess.run(["make", "-C", str(out), "CC=gcc"], capture_output=True, check=True)
    res = _run([str(out / "model_main")], input=bad)
    assert res.returncode == 1
    assert res.stderr.decode().splitlines() == [
        "line 2: not valid UTF-8 (or the score overflows)",
        "line 3: the document is longer than 16384 bytes (build with -DMAX_DOC_BYTES=N for "
        "longer ones)",
    ]
    assert len(res.stdout.decode().splitlines()) == 1


def test_a_build_without_the_text_stage_refuses_text_blobs_by_name(tf, tmp_path) -> None:
    exe = tmp_path / "esb"
    sources = [str(C_DIR / "esb.c"), str(C_DIR / "esb_main.c")]
    res = subprocess.run(
        ["gcc", *CFLAGS, "-O1", "-DESB_NO_TEXT", *sources, "-lm", "-o", str(exe)],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr
    from edgesparse.formats import esb

    text_ir = tf._text_ir()
    blobs = [esb.encode(text_ir), esb.encode(text_ir.replace(featurizer=None))]
    lines = _verify([str(exe)], blobs, tmp_path)
    off = struct.unpack_from(
        "<I", blobs[0], 64 + 16 * (struct.unpack_from("<I", blobs[0], 12)[0] - 1) + 4
    )[0]
    assert lines == [
        f"ERR 4 corrupt .esb: section 'text' at offset {off}: a text input stage, which this "
        "build of the C runtime leaves out (-DESB_NO_TEXT); run this model with a full build or "
        "the numpy runtime",
        "OK",
    ]
