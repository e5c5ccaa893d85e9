"""The text input stage in numpy: raw documents -> the CSR feature rows a linear model reads.

Runs a :class:`~edgesparse.ir.text.TextFeaturizer` exactly as its contract says
(:mod:`edgesparse.ir.text`): Python's ``str.lower``, ``unicodedata`` and ``re`` for the text,
a numpy MurmurHash3 (x86, 32-bit) over the batch's distinct terms, numpy for the sums, tf-idf
and norms. The tokenizing is a Python loop over documents and terms (it is what scikit-learn
does too); every term is hashed once per batch.

Imports only numpy and the standard library: this is what runs on the device.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from edgesparse.errors import InputError
from edgesparse.ir.text import TextFeaturizer

__all__ = [
    "TextRows",
    "analyzer_for",
    "featurize",
    "murmurhash3_32",
    "text_documents",
    "text_features",
]

_C1, _C2 = np.uint32(0xCC9E2D51), np.uint32(0x1B873593)
_WHITE_SPACES = re.compile(r"\s\s+")


class TextRows:
    """CSR feature rows (the ``data``/``indices``/``indptr``/``shape`` a scipy CSR matrix
    has, duck-typed so that the runtime never imports scipy)."""

    format = "csr"

    def __init__(
        self, data: np.ndarray, indices: np.ndarray, indptr: np.ndarray, shape: tuple[int, int]
    ) -> None:
        self.data, self.indices, self.indptr, self.shape = data, indices, indptr, shape

    @property
    def nnz(self) -> int:
        """Number of stored values."""
        return int(self.data.size)

    def tocsr(self) -> TextRows:
        """Itself (it is CSR already)."""
        return self

    def toarray(self) -> np.ndarray:
        """The rows as a dense float64 array (for tests and small batches)."""
        out = np.zeros(self.shape)
        rows = np.repeat(np.arange(self.shape[0]), np.diff(self.indptr))
        out[rows, self.indices] = self.data
        return out


def text_features(feat: TextFeaturizer, X: Any) -> TextRows:
    """The feature rows of the documents ``X`` (see :func:`text_documents`)."""
    return featurize(feat, text_documents(X))


def text_documents(X: Any) -> list[str]:
    """``X`` as a list of documents, or an :class:`InputError` saying what it is instead."""
    if isinstance(X, str):
        raise InputError("X is one string; this model takes a list of documents: predict([text])")
    if isinstance(X, np.ndarray):
        if X.dtype.kind not in "UO" or X.ndim != 1:
            raise InputError(
                f"this model takes raw text (a list or 1-D array of str), got an array of "
                f"shape {X.shape} and dtype {X.dtype}"
            )
        docs = X.tolist()
    elif isinstance(X, (list, tuple)):
        docs = list(X)
    else:
        raise InputError(
            f"this model takes raw text (a list or 1-D array of str), got {type(X).__name__}"
        )
    if not docs:
        raise InputError("X has 0 documents; at least 1 is required")
    for i, doc in enumerate(docs):
        if not isinstance(doc, str):
            raise InputError(
                f"document {i} is a {type(doc).__name__}, not a str; this model takes raw "
                "text (decode bytes first)"
            )
    return docs


# -- MurmurHash3 x86_32 ------------------------------------------------------------------------
def _rotl(x: np.ndarray, r: int) -> np.ndarray:
    return (x << np.uint32(r)) | (x >> np.uint32(32 - r))


def _mix_k(k: np.ndarray) -> np.ndarray:
    k = k * _C1
    k = _rotl(k, 15)
    return k * _C2


def murmurhash3_32(keys: Sequence[bytes]) -> np.ndarray:
    """MurmurHash3 x86_32 of each key with seed 0, as signed int32 (scikit-learn's
    ``murmurhash3_32(key, seed=0)``), all keys at once.

    Keys are processed together block by block (longest first), so the Python-level loop
    runs once per 4-byte block of the longest key, not once per key.
    """
    n = len(keys)
    lengths = np.fromiter((len(k) for k in keys), dtype=np.int64, count=n)
    buf = np.frombuffer(b"".join(keys) + b"\0\0\0\0", dtype=np.uint8)
    starts = np.cumsum(lengths) - lengths
    order = np.argsort(-(lengths // 4), kind="stable")
    s_starts, s_len = starts[order], lengths[order]
    n_blocks = s_len // 4
    h = np.zeros(n, dtype=np.uint32)
    # Number of keys with more than j blocks, for every j (keys are sorted longest first).
    active = np.searchsorted(-n_blocks, -np.arange(int(n_blocks.max(initial=0))), side="left")
    for j, count in enumerate(active.tolist()):
        at = s_starts[:count] + 4 * j
        k = _word(buf, at)
        hj = h[:count] ^ _mix_k(k)
        hj = _rotl(hj, 13)
        h[:count] = hj * np.uint32(5) + np.uint32(0xE6546B64)
    # Tail: the last length % 4 bytes, little-endian.
    rem = s_len & 3
    at = s_starts + 4 * n_blocks
    k = np.zeros(n, dtype=np.uint32)
    for i in (2, 1, 0):
        k ^= np.where(rem > i, buf[np.minimum(at + i, buf.size - 1)], 0).astype(np.uint32) << (
            np.uint32(8 * i)
        )
    h ^= _mix_k(k)
    h ^= s_len.astype(np.uint32)
    h ^= h >> np.uint32(16)
    h *= np.uint32(0x85EBCA6B)
    h ^= h >> np.uint32(13)
    h *= np.uint32(0xC2B2AE35)
    h ^= h >> np.uint32(16)
    out = np.empty(n, dtype=np.uint32)
    out[order] = h
    return out.view(np.int32)


def _word(buf: np.ndarray, at: np.ndarray) -> np.ndarray:
    """The little-endian uint32 at each byte offset ``at``."""
    w = buf[at].astype(np.uint32)
    w |= buf[at + 1].astype(np.uint32) << np.uint32(8)
    w |= buf[at + 2].astype(np.uint32) << np.uint32(16)
    w |= buf[at + 3].astype(np.uint32) << np.uint32(24)
    return w


# -- analyzers ---------------------------------------------------------------------------------
def _strip_accents_ascii(s: str) -> str:
    return unicodedata.normalize("NFKD", s).encode("ASCII", "ignore").decode("ASCII")


def _strip_accents_unicode(s: str) -> str:
    if s.isascii():
        return s
    normalized = unicodedata.normalize("NFKD", s)
    return "".join([c for c in normalized if not unicodedata.combining(c)])


def _word_ngrams(tokens: list[str], lo: int, hi: int) -> list[str]:
    if hi == 1:
        return tokens
    out = list(tokens) if lo == 1 else []
    n_tok = len(tokens)
    for n in range(max(lo, 2), min(hi, n_tok) + 1):
        out.extend(" ".join(tokens[i : i + n]) for i in range(n_tok - n + 1))
    return out


def _char_ngrams(text: str, lo: int, hi: int) -> list[str]:
    text = _WHITE_SPACES.sub(" ", text)
    n_chr = len(text)
    out = list(text) if lo == 1 else []
    for n in range(max(lo, 2), min(hi, n_chr) + 1):
        out.extend(text[i : i + n] for i in range(n_chr - n + 1))
    return out


def _char_wb_ngrams(text: str, lo: int, hi: int) -> list[str]:
    text = _WHITE_SPACES.sub(" ", text)
    out: list[str] = []
    for w in text.split():
        w = " " + w + " "
        w_len = len(w)
        for n in range(lo, hi + 1):
            out.append(w[0:n])
            offset = 0
            while offset + n < w_len:
                offset += 1
                out.append(w[offset : offset + n])
            if offset == 0:  # a padded word shorter than n: counted once, larger n skipped
                break
    return out


def analyzer_for(feat: TextFeaturizer) -> Callable[[str], list[str]]:
    """The function ``doc -> terms`` of ``feat`` (steps 1 and 2 of the contract)."""
    lower = feat.lowercase
    accents = {None: None, "ascii": _strip_accents_ascii, "unicode": _strip_accents_unicode}[
        feat.strip_accents
    ]
    lo, hi = feat.ngram_range
    if feat.analyzer == "word":
        findall = re.compile(feat.token_pattern).findall
        stop = frozenset(feat.stop_words)

        def terms(doc: str) -> list[str]:
            tokens = findall(_preprocess(doc, lower, accents))
            if stop:
                tokens = [t for t in tokens if t not in stop]
            return _word_ngrams(tokens, lo, hi)

        return terms
    ngrams = _char_ngrams if feat.analyzer == "char" else _char_wb_ngrams
    return lambda doc: ngrams(_preprocess(doc, lower, accents), lo, hi)


def _preprocess(doc: str, lower: bool, accents: Callable[[str], str] | None) -> str:
    if lower:
        doc = doc.lower()
    return doc if accents is None else accents(doc)


# -- the feature rows --------------------------------------------------------------------------
def featurize(feat: TextFeaturizer, docs: list[str]) -> TextRows:
    """The feature rows of ``docs`` (float64 CSR, sorted columns, no stored zeros), exactly
    as the contract in :mod:`edgesparse.ir.text` computes them."""
    analyze = analyzer_for(feat)
    ids: dict[str, int] = {}
    term_ids: list[int] = []
    lengths: list[int] = []
    for doc in docs:
        terms = analyze(doc)
        lengths.append(len(terms))
        setdefault = ids.setdefault
        term_ids.extend([setdefault(t, len(ids)) for t in terms])
    n_rows, n = len(docs), feat.n_features
    term = np.asarray(term_ids, dtype=np.intp)
    rows = np.repeat(np.arange(n_rows, dtype=np.int64), lengths)
    if feat.vocabulary is not None:
        get = feat.vocabulary.get
        col_of = np.fromiter((get(t, -1) for t in ids), dtype=np.int64, count=len(ids))
        h = np.zeros(len(ids), dtype=np.int64)  # every value +1: no sign
        known = col_of[term] >= 0  # out-of-vocabulary terms are dropped
        term, rows = term[known], rows[known]
    else:
        h = murmurhash3_32([t.encode("utf-8") for t in ids]).astype(np.int64)
        # abs() in int64: h = -2**31 gives 2**31 % n, which is what scikit-learn computes.
        col_of = np.abs(h) % n
    keys, inverse = np.unique(rows * n + col_of[term], return_inverse=True)
    if feat.binary:
        data = np.ones(keys.size)
    else:
        sign = np.where(h >= 0, 1.0, -1.0) if feat.alternate_sign else np.ones(h.size)
        data = np.bincount(inverse.reshape(-1), weights=sign[term], minlength=keys.size)
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(np.bincount(keys // n, minlength=n_rows), out=indptr[1:])
    indices = keys % n
    _normalize(data, indptr, feat.norm)
    if feat.tfidf is not None:
        if feat.tfidf.sublinear_tf:
            with np.errstate(divide="ignore", invalid="ignore"):
                data = np.log(data) + 1.0
        if feat.tfidf.idf is not None:
            data = data * feat.tfidf.idf[indices]
        _normalize(data, indptr, feat.tfidf.norm)
    keep = data != 0
    if not keep.all():  # an explicit zero (a +1 and a -1 in one column) changes no score
        np.cumsum(np.bincount(keys[keep] // n, minlength=n_rows), out=indptr[1:])
        data, indices = data[keep], indices[keep]
    return TextRows(data, indices.astype(np.int32), indptr, (n_rows, n))


def _normalize(data: np.ndarray, indptr: np.ndarray, norm: str | None) -> None:
    """Divide each row by its l1 or l2 norm, in place; all-zero rows stay."""
    if norm is None or data.size == 0:
        return
    starts = indptr[:-1]
    nonempty = indptr[1:] > starts
    per = np.abs(data) if norm == "l1" else data * data
    sums = np.zeros(starts.size)
    sums[nonempty] = np.add.reduceat(per, starts[nonempty])
    if norm == "l2":
        sums = np.sqrt(sums)
    sums[sums == 0] = 1.0
    data /= np.repeat(sums, np.diff(indptr))
