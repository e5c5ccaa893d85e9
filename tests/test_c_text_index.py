"""The C text stage's index (esb_text_index_build and the _ix calls, runtime/c/esb_text.c):
features and predictions equal the calls without it (the vocabulary walk) bit for bit, and the
numpy runtime's features, on vocabularies whose terms share hash buckets (long probe runs that
wrap around the table), empty and pruned vocabularies, unicode terms and stop words; a buffer
too small, misaligned or NULL is refused, an index of another blob too; the probe runs under
ASan/UBSan with a buffer of exactly esb_text_index_size bytes, so a read past it is caught."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.cdriver import SANITIZER_ENV

ROOT = Path(__file__).resolve().parent.parent
C_DIR = ROOT / "edgesparse/runtime/c"

_PROBE = r"""
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "esb.h"

static unsigned char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    unsigned char *b;
    long len;
    if (!f || fseek(f, 0, SEEK_END) != 0 || (len = ftell(f)) < 0) exit(3);
    rewind(f);
    b = (unsigned char *)malloc((size_t)len + 1);
    if (!b || fread(b, 1, (size_t)len, f) != (size_t)len) exit(3);
    fclose(f);
    *n = (size_t)len;
    return b;
}

/* The document through one path: status, then the row (copied out of the workspace) and the
 * three predictions' bits. */
typedef struct row {
    int st, st_dec, st_pred, st_proba;
    uint32_t nnz, cls;
    int32_t idx[4096];
    double val[4096];
    float dec[64], proba[64];
} row;

static void run(const esb_model *m, const esb_text_index *ix, const char *doc, size_t len,
                void *ws, size_t bytes, row *r)
{
    const int32_t *idx;
    const double *val;
    memset(r, 0, sizeof *r);
    r->st = ix ? esb_text_features_ix(m, ix, doc, len, ws, bytes, &r->nnz, &idx, &val)
               : esb_text_features(m, doc, len, ws, bytes, &r->nnz, &idx, &val);
    if (r->st == ESB_OK && r->nnz <= 4096) {
        memcpy(r->idx, idx, 4 * (size_t)r->nnz);
        memcpy(r->val, val, 8 * (size_t)r->nnz);
    }
    r->st_dec = ix ? esb_decision_text_ix(m, ix, doc, len, ws, bytes, r->dec)
                   : esb_decision_text(m, doc, len, ws, bytes, r->dec);
    r->st_pred = ix ? esb_predict_text_ix(m, ix, doc, len, ws, bytes, &r->cls)
                    : esb_predict_text(m, doc, len, ws, bytes, &r->cls);
    r->st_proba = ix ? esb_predict_proba_text_ix(m, ix, doc, len, ws, bytes, r->proba)
                     : esb_predict_proba_text(m, doc, len, ws, bytes, r->proba);
}

/* argv: blob, documents (one a line), n_terms, n_stop. */
int main(int argc, char **argv)
{
    size_t n, dn, size, ws_bytes, start, end, longest = 0, i;
    unsigned char *blob, *docs, *copy, *small;
    uint32_t *buf, k;
    esb_model m, m2;
    esb_text_index ix;
    static row a, b;
    void *ws;
    int untouched = 1, doc_no = 0;
    if (argc != 5) return 3;
    blob = slurp(argv[1], &n);
    docs = slurp(argv[2], &dn);
    if (esb_open(blob, n, &m) != ESB_OK) {
        printf("open %s\n", m.message);
        return 3;
    }
    size = esb_text_index_size(&m);
    printf("size %lu %lu\n", (unsigned long)size,
           (unsigned long)ESB_TEXT_INDEX_BYTES((size_t)atol(argv[3]), (size_t)atol(argv[4])));
    /* refused: one word short (and left as it was), misaligned, NULL buffer, NULL index */
    small = (unsigned char *)malloc(size);
    memset(small, 0xAB, size);
    printf("refused %d", (int)esb_text_index_build(&m, (uint32_t *)(void *)small, size - 4, &ix));
    for (i = 0; i < size; i++) untouched &= small[i] == 0xAB;
    printf(" %d", (int)esb_text_index_build(&m, (uint32_t *)(void *)(small + 2), size - 4, &ix));
    printf(" %d", (int)esb_text_index_build(&m, NULL, size, &ix));
    printf(" %d untouched %d\n", (int)esb_text_index_build(&m, (uint32_t *)(void *)small, size,
                                                          NULL), untouched);
    free(small);
    buf = (uint32_t *)malloc(size); /* exactly: ASan sees a read past it */
    printf("built %d\n", (int)esb_text_index_build(&m, buf, size, &ix));
    printf("slots");
    for (k = 0; k < ix.n_slots_; k++) printf(" %u", (unsigned)ix.slots_[k]);
    printf("\n");
    for (start = 0; start < dn; start = end + 1) {
        for (end = start; end < dn && docs[end] != '\n'; end++) continue;
        if (end - start > longest) longest = end - start;
    }
    ws_bytes = esb_text_workspace_size(&m, longest);
    ws = malloc(ws_bytes);
    /* another blob (the same bytes elsewhere): its calls refuse this index */
    copy = (unsigned char *)malloc(n);
    memcpy(copy, blob, n);
    if (esb_open(copy, n, &m2) != ESB_OK) return 3;
    run(&m2, &ix, "ab", 2, ws, ws_bytes, &a);
    printf("foreign %d %d %d %d\n", a.st, a.st_dec, a.st_pred, a.st_proba);
    for (start = 0; start < dn; start = end + 1, doc_no++) {
        const char *doc = (const char *)docs + start;
        for (end = start; end < dn && docs[end] != '\n'; end++) continue;
        run(&m, NULL, doc, end - start, ws, ws_bytes, &a);
        run(&m, &ix, doc, end - start, ws, ws_bytes, &b);
        if (memcmp(&a, &b, sizeof a) != 0 || a.st != ESB_OK || a.nnz > 4096) {
            printf("MISMATCH %d: %d %d\n", doc_no, a.st, b.st);
            continue;
        }
        for (k = 0; k < b.nnz; k++)
            printf(k ? " %ld:%.17g" : "%ld:%.17g", (long)b.idx[k], b.val[k]);
        printf("\n");
    }
    free(ws), free(buf), free(copy), free(blob), free(docs);
    return 0;
}
"""


@pytest.fixture(scope="module")
def probe(tmp_path_factory) -> str:
    from tests.conftest import require_tool

    require_tool(shutil.which("clang") is not None, what="clang", install="apt-get install clang")
    tmp = tmp_path_factory.mktemp("ctext-index")
    (tmp / "probe.c").write_text(_PROBE)
    flags = ["-g", "-O1", "-fsanitize=address,undefined", "-fno-sanitize-recover=all"]
    cmd = ["clang", "-std=c99", "-Wall", "-Wextra", "-Werror", *flags, f"-I{C_DIR}"]
    res = subprocess.run(
        [*cmd, str(tmp / "probe.c"), str(C_DIR / "esb.c"), "-lm", "-o", str(tmp / "probe")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if res.returncode != 0 and "sanitizer" in res.stderr.lower():
        pytest.skip("clang's sanitizer runtimes are not installed")
    assert res.returncode == 0, res.stderr
    return str(tmp / "probe")


@pytest.fixture(scope="module")
def tf():
    from tests import test_text_featurizer as tf

    return tf


def murmur_u32(term: str) -> int:
    """scikit-learn's MurmurHash3 x86_32 (seed 0) of the term's UTF-8, unsigned."""
    from sklearn.utils import murmurhash3_32

    return int(murmurhash3_32(term.encode("utf-8"), seed=0, positive=True))


def blob_of(feat, *, used=None) -> bytes:
    """A classifier around ``feat`` whose weights use the columns ``used`` (default all: the
    writer keeps the vocabulary terms of used columns only)."""
    from edgesparse.formats import esb
    from edgesparse.ir import LinearIR

    cols = np.arange(feat.n_features) if used is None else np.asarray(used)
    rng = np.random.default_rng(1)
    return esb.encode(
        LinearIR(
            indptr=np.arange(4) * cols.size,
            indices=np.concatenate([cols, cols, cols]),
            values=rng.normal(size=3 * cols.size),
            n_features=feat.n_features,
            bias=np.array([0.1, -0.2, 0.0]),
            head="softmax",
            classes=np.array([0, 1, 2]),
            featurizer=feat,
        )
    )


def line_safe(docs: list[str]) -> list[str]:
    """The documents with no line break in any (a newline becomes a vertical tab, a carriage
    return a form feed: whitespace to both runtimes)."""
    return [d.replace("\n", "\x0b").replace("\r", "\x0c") for d in docs]


def run_probe(probe: str, blob: bytes, docs: list[str], tmp: Path) -> dict:
    """The probe's report on ``blob``: sizes, refusals, slots and the index path's rows (it
    has already compared them with the walk's, bit for bit). Checks the statuses."""
    from edgesparse.formats import esb

    assert docs == line_safe(docs)
    feat = esb.decode(blob).featurizer
    n_terms = len(feat.vocabulary) if feat.vocabulary is not None else 0
    (tmp / "m.esb").write_bytes(blob)
    (tmp / "docs.txt").write_bytes("".join(d + "\n" for d in docs).encode("utf-8"))
    env = {**os.environ, **SANITIZER_ENV}
    res = subprocess.run(
        [probe, str(tmp / "m.esb"), str(tmp / "docs.txt"), str(n_terms), str(len(feat.stop_words))],
        capture_output=True,
        timeout=600,
        env=env,
    )
    assert res.returncode == 0 and not res.stderr, res.stderr.decode() + res.stdout.decode()
    lines = res.stdout.decode().split("\n")[:-1]
    size = [int(v) for v in lines[0].split()[1:]]
    e = n_terms + len(feat.stop_words)
    assert size == [4 * (3 * e + n_terms + 3)] * 2  # esb.h's formula, the function, the macro
    # one word short -> ESB_E_ARGUMENT (1), untouched; misaligned, NULLs -> 1
    assert lines[1] == "refused 1 1 1 1 untouched 1"
    assert lines[2] == "built 0"
    slots = [int(v) for v in lines[3].split()[1:]]
    assert len(slots) == 2 * e + 1
    assert lines[4] == "foreign 1 1 1 1"  # another blob's index: ESB_E_ARGUMENT
    rows = lines[5:]
    assert not [r for r in rows if r.startswith("MISMATCH")], rows
    assert len(rows) == len(docs)
    dense = np.zeros((len(docs), feat.n_features))
    for i, line in enumerate(rows):
        for item in line.split():
            col, val = item.split(":")
            dense[i, int(col)] = float(val)
    return {"feat": feat, "slots": slots, "rows": dense}


def same_as_numpy(got: dict, docs: list[str]) -> None:
    """The numpy runtime's rows: equal, or within 1e-12 after a norm (C and numpy sum the
    squares in different orders; test_c_text's tolerance)."""
    from edgesparse.runtime.text import featurize

    want = featurize(got["feat"], docs).toarray()
    feat = got["feat"]
    if feat.norm is None and (feat.tfidf is None or feat.tfidf.norm is None):
        np.testing.assert_array_equal(got["rows"], want)
    else:
        np.testing.assert_allclose(got["rows"], want, rtol=0, atol=1e-12)


def expected_slots(stop: list[str], terms: list[str]) -> list[int]:
    """The table esb_text_index_build fills, computed here: entry i for stop word i, n_stop + 1
    + j for term j (in column order), inserted in that order at murmur % n_slots, linear
    probing (wrapping), a slot holding entry + 1."""
    n_slots = 2 * (len(stop) + len(terms)) + 1
    slots = [0] * n_slots
    entries = [(i, s) for i, s in enumerate(stop)]
    entries += [(len(stop) + 1 + j, t) for j, t in enumerate(terms)]
    for e, s in entries:
        at = murmur_u32(s) % n_slots
        while slots[at]:
            at = (at + 1) % n_slots
        slots[at] = e + 1
    return slots


def test_a_tiny_index_by_hand(probe, tmp_path) -> None:
    """A stop word and three terms, 9 slots: "on" and "ab" hash to slot 8 (the last), so "ab",
    inserted after the stop word, wraps to slot 0; "cd" and "xyz" hash to slot 0 and probe on
    to 1 and 2. Documents look up words of those buckets that are in neither list ("of",
    "as", "go", "he": slot 0, a miss after walking the run)."""
    from sklearn.feature_extraction.text import CountVectorizer

    from edgesparse.frontends.sklearn_text import count_vectorizer

    stop, terms = ["on"], ["ab", "cd", "xyz"]
    hashes = {t: murmur_u32(t) for t in [*stop, *terms, "of", "as", "go", "he"]}
    assert hashes["on"] == 4112202185 and hashes["ab"] == 2613040991  # 8 mod 9
    assert hashes["cd"] == 2158755732 and hashes["xyz"] == 709566417  # 0 mod 9
    assert {h % 9 for t, h in hashes.items() if t not in ("on", "ab")} == {0}
    # entries: "on" 0, (1: end of the stop words), "ab" 2, "cd" 3, "xyz" 4; a slot: entry + 1
    want = [3, 4, 5, 0, 0, 0, 0, 0, 1]
    assert expected_slots(stop, terms) == want
    vec = CountVectorizer(vocabulary=terms, stop_words=stop)
    feat = count_vectorizer(vec.fit(["ab"]), None, step_name="v")
    docs = ["ab cd xyz on", "on on", "ab ab zz cd", "", "xyz-xyz AB", "of as go he xyz"]
    got = run_probe(probe, blob_of(feat), docs, tmp_path)
    assert got["slots"] == want
    np.testing.assert_array_equal(got["rows"], vec.transform(docs).toarray())
    same_as_numpy(got, docs)


def _bucket_words(n_slots: int, bucket: int, count: int, skip: set[str]) -> list[str]:
    out = []
    i = 0
    while len(out) < count:
        w = f"w{i}q"
        if murmur_u32(w) % n_slots == bucket and w not in skip:
            out.append(w)
        i += 1
    return out


def test_colliding_terms_wrapping_runs_and_stop_words(probe, tmp_path) -> None:
    """64 terms and 16 stop words in 161 slots, 40 terms hashing to the last slot and 20 to
    the first (one run of 60+ that wraps around the table), the stop words to the last slot
    too, one word both a term and a stop word (stop words go first: never counted), and
    documents full of words of the same buckets that are in neither list (lookups that walk
    the whole run and miss)."""
    from sklearn.feature_extraction.text import CountVectorizer

    from edgesparse.frontends.sklearn_text import count_vectorizer

    n_terms, n_stop = 64, 16
    n_slots = 2 * (n_terms + n_stop) + 1
    last = _bucket_words(n_slots, n_slots - 1, 40 + 15 + 10, set())
    first = _bucket_words(n_slots, 0, 20 + 10, set())
    terms = last[:40] + first[:20] + ["ünïcode", "straße", "日本語", "ǆemal"]
    stop = sorted([*last[40:55], terms[3]])
    absent = last[55:] + first[20:]
    rng = np.random.default_rng(7)
    vocab = {t: int(c) for t, c in zip(terms, rng.permutation(n_terms), strict=True)}
    vec = CountVectorizer(vocabulary=vocab, stop_words=stop, ngram_range=(1, 1))
    feat = count_vectorizer(vec.fit(["x"]), None, step_name="v")
    pool = terms + stop + absent + ["ÜNÏCODE", "STRASSE", "Ǆemal"]
    docs = [" ".join(rng.choice(pool, size=int(rng.integers(0, 60)))) for _ in range(80)]
    got = run_probe(probe, blob_of(feat), docs, tmp_path)
    assert got["slots"] == expected_slots(sorted(stop), sorted(terms, key=vocab.__getitem__))
    run = 0  # the longest run of occupied slots, wrapping: every term of the two buckets
    for start in range(n_slots):
        k = 0
        while k < n_slots and got["slots"][(start + k) % n_slots]:
            k += 1
        run = max(run, k)
    assert run >= 75
    np.testing.assert_array_equal(got["rows"], vec.transform(docs).toarray())
    same_as_numpy(got, docs)


def test_empty_and_pruned_vocabularies(probe, tf, tmp_path) -> None:
    """No term at all (12 bytes of index, every document an empty row), and a vocabulary the
    writer pruned to the columns some weight uses (gaps > 0: the index's columns are the
    kept terms' own)."""
    from edgesparse.formats import esb
    from edgesparse.frontends.sklearn_text import count_vectorizer
    from edgesparse.ir import TextFeaturizer

    docs = line_safe(tf.DOCS[::11][:60])
    empty = TextFeaturizer(n_features=4, alternate_sign=False, norm=None, vocabulary={})
    got = run_probe(probe, blob_of(empty, used=[1]), docs, tmp_path)
    assert got["slots"] == [0] and not got["rows"].any()
    vec = tf.CountVectorizer(ngram_range=(1, 2)).fit(tf.DOCS[:300])
    feat = count_vectorizer(vec, None, step_name="v")
    used = np.arange(0, feat.n_features, 3)
    blob = blob_of(feat, used=used)
    kept = esb.decode(blob).featurizer.vocabulary
    assert len(kept) == used.size and set(kept.values()) == set(used.tolist())
    got = run_probe(probe, blob, docs, tmp_path)
    same_as_numpy(got, docs)
    np.testing.assert_array_equal(got["rows"][:, used], vec.transform(docs).toarray()[:, used])
    assert got["rows"][:, used].sum() > 100


VECTORIZERS = {
    "tfidf-bigrams-english-stop": lambda tf: tf.TfidfVectorizer(
        ngram_range=(1, 2), stop_words="english"
    ),
    "count-char-wb-unicode-accents": lambda tf: tf.CountVectorizer(
        analyzer="char_wb", ngram_range=(1, 4), strip_accents="unicode"
    ),
    "count-char-no-lower": lambda tf: tf.CountVectorizer(
        analyzer="char", ngram_range=(2, 3), lowercase=False
    ),
    "hashing-english-stop": lambda tf: tf.HashingVectorizer(
        n_features=2**10, ngram_range=(1, 2), stop_words="english"
    ),
}


@pytest.mark.parametrize("name", sorted(VECTORIZERS))
def test_fitted_vocabularies_unicode_and_stop_words(name, probe, tf, tmp_path) -> None:
    """Vocabularies fitted on the stdlib docstrings and the hard (unicode) documents, and a
    hashing model whose index holds only its 318 stop words: the index path equals the walk
    (the probe), the numpy runtime and scikit-learn."""
    from edgesparse.frontends.sklearn_text import count_vectorizer, tfidf_vectorizer

    docs = line_safe(tf.DOCS[::9][:80] + tf.HARD_DOCS)
    vec = VECTORIZERS[name](tf)
    if isinstance(vec, tf.HashingVectorizer):
        feat = tf._featurizer_of(vec)
    else:
        vec.fit(tf.DOCS[:400] + docs[-len(tf.HARD_DOCS) :])
        convert = tfidf_vectorizer if isinstance(vec, tf.TfidfVectorizer) else count_vectorizer
        feat = convert(vec, None, step_name="v")
    got = run_probe(probe, blob_of(feat), docs, tmp_path)
    same_as_numpy(got, docs)
    np.testing.assert_allclose(got["rows"], vec.transform(docs).toarray(), rtol=0, atol=1e-6)
    if feat.vocabulary is not None:
        assert any(ord(c) > 127 for t in feat.vocabulary for c in t)


def test_index_sizes_in_the_exported_header(tf, tmp_path) -> None:
    """export-c writes the term and stop-word counts that ESB_TEXT_INDEX_BYTES needs."""
    from edgesparse.export_c import export_c
    from edgesparse.frontends.sklearn_text import count_vectorizer

    vec = tf.CountVectorizer(stop_words=["the", "a", "of"]).fit(tf.DOCS[:50])
    feat = count_vectorizer(vec, None, step_name="v")
    (tmp_path / "m.esb").write_bytes(blob_of(feat))
    export_c(tmp_path / "m.esb", tmp_path / "out", name="model")
    header = (tmp_path / "out" / "model_data.h").read_text()
    assert f"#define MODEL_TEXT_TERMS {len(feat.vocabulary)}u\n" in header
    assert "#define MODEL_TEXT_STOP_WORDS 3u\n" in header
    assert "esb_text_index_build(" in (tmp_path / "out" / "main.c").read_text()


def test_libfuzzer_target_on_text_blobs(tf, tmp_path) -> None:
    """The fuzz target from text seeds: every mutated blob esb_open accepts builds its index
    in exact bytes (one word short refused) and featurizes and predicts as the walk does."""
    from edgesparse.frontends.sklearn_text import count_vectorizer, tfidf_vectorizer
    from tests.cbuild import build
    from tests.cdriver import FUZZ_BUILD
    from tests.conftest import require_tool

    require_tool(shutil.which("clang") is not None, what="clang", install="apt-get install clang")
    exe, res = build(FUZZ_BUILD, name="fuzz_esb_open")  # once per session
    if res.returncode != 0 and "sanitizer" in res.stderr.lower():
        pytest.skip("clang's fuzzer/sanitizer runtimes are not installed")
    assert res.returncode == 0, res.stderr
    docs = tf.DOCS[:40]
    feats = [
        tf._featurizer_of(tf.HashingVectorizer(n_features=64, stop_words=["ab", "the", "fox"])),
        count_vectorizer(
            tf.CountVectorizer(stop_words=["a", "the"]).fit(docs), None, step_name="v"
        ),
        tfidf_vectorizer(tf.TfidfVectorizer(analyzer="char_wb").fit(docs), None, step_name="v"),
    ]
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i, feat in enumerate(feats):
        (corpus / f"text{i}.esb").write_bytes(blob_of(feat))
    small = count_vectorizer(
        tf.CountVectorizer().fit(["ab cd the fox", "ab ber"]), None, step_name="v"
    )
    (corpus / "small.esb").write_bytes(blob_of(small))
    env = {**os.environ, **SANITIZER_ENV}
    res = subprocess.run(
        [str(exe), "-seed=1", "-runs=4000", "-max_len=65536", str(corpus)],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert "Done 4000 runs" in res.stderr
