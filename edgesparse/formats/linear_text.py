"""The ``text`` section of a linear ``.esb`` blob: the model's text input stage
(:class:`~edgesparse.ir.text.TextFeaturizer`), as ``docs/FORMAT.md`` specifies it. A
vocabulary keeps only the terms whose columns the weights use, unless a norm reads every
column (then dropping a term would change the norm).

Encoding 0 (``hashing``), little-endian::

    0   u8   analyzer        0 word, 1 char, 2 char_wb
    1   u8   min_n, 2 u8 max_n   1 <= min_n <= max_n <= 32
    3   u8   flags           1 lowercase, 2 alternate_sign, 4 binary, 8 tf-idf,
                             16 use_idf (needs tf-idf), 32 sublinear_tf (needs tf-idf)
    4   u8   strip_accents   0 none, 1 ascii, 2 unicode
    5   u8   token_pattern   index into TOKEN_PATTERNS (0 for the char analyzers)
    6   u8   norm            0 none, 1 l1, 2 l2
    7   u8   tf-idf norm     the same codes (0 without tf-idf)
    8   u32  n_features      equal to the header's
    12  u32  n_stop_words    0 for the char analyzers
    16  u32  n_idf_values    distinct idf values (0 exactly without use_idf)
    20  u32  stop_bytes      bytes of the stop-word block
    24  stop words           strings (varint lengths, then UTF-8), sorted, distinct
        idf values           n_idf_values float64, each finite
        idf codes            n_features unsigned codes, each < n_idf_values, of
                             1 byte (n_idf_values <= 256), 2 (<= 65536) or 4

Encoding 1 (``vocabulary``, a ``CountVectorizer``'s terms instead of hashing) appends::

        u32  n_terms         n_features exactly when a norm reads every column, else at most
        columns              n_terms varint gaps (first column, then column - previous - 1)
        terms                n_terms varint lengths, then UTF-8, distinct; filling the section

Imports only numpy and the standard library: the on-device runtime uses this module.
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Callable

import numpy as np

from edgesparse.formats.codecs import strings_encode, varint_decode, varint_encode
from edgesparse.formats.container import corrupt_section
from edgesparse.ir.text import (
    ANALYZERS,
    NORMS,
    STRIP_ACCENTS,
    TOKEN_PATTERNS,
    TextFeaturizer,
    Tfidf,
)

__all__ = ["TEXT_ENCODINGS", "decode_text", "encode_text"]

TEXT_ENCODINGS = {0: "hashing", 1: "vocabulary"}
"""Encoding codes of the ``text`` section."""

_FIXED = struct.Struct("<BBBBBBBBIIII")
_LOWER, _ALT, _BINARY, _TFIDF, _IDF, _SUBLINEAR = 1, 2, 4, 8, 16, 32
_KNOWN_FLAGS = 63
_NAME = "text"


def encode_text(feat: TextFeaturizer, *, used: np.ndarray) -> tuple[int, bytes]:
    """(encoding, bytes) of the ``text`` section for ``feat``; ``used``: the sorted columns the
    model's weights use (a vocabulary keeps only their terms when no norm reads the others)."""
    tfidf = feat.tfidf
    flags = (
        (_LOWER if feat.lowercase else 0)
        | (_ALT if feat.alternate_sign else 0)
        | (_BINARY if feat.binary else 0)
    )
    values, codes = np.zeros(0), np.zeros(0, dtype=np.uint8)
    if tfidf is not None:
        flags |= _TFIDF | (_SUBLINEAR if tfidf.sublinear_tf else 0)
        if tfidf.idf is not None:
            flags |= _IDF
            values, inverse = np.unique(tfidf.idf, return_inverse=True)
            codes = inverse.astype(_code_dtype(values.size))
    stop = strings_encode([w.encode("utf-8") for w in feat.stop_words])
    fixed = _FIXED.pack(
        ANALYZERS.index(feat.analyzer),
        *feat.ngram_range,
        flags,
        STRIP_ACCENTS.index(feat.strip_accents),
        TOKEN_PATTERNS.index(feat.token_pattern) if feat.analyzer == "word" else 0,
        NORMS.index(feat.norm),
        0 if tfidf is None else NORMS.index(tfidf.norm),
        feat.n_features,
        len(feat.stop_words),
        values.size,
        len(stop) if feat.stop_words else 0,
    )
    stop_block = stop if feat.stop_words else b""
    data = fixed + stop_block + values.astype("<f8").tobytes() + codes.tobytes()
    if feat.vocabulary is None:
        return 0, data
    return 1, data + _encode_vocabulary(feat, used)


def _encode_vocabulary(feat: TextFeaturizer, used: np.ndarray) -> bytes:
    """u32 count, the columns as varint gaps, then the terms (varint lengths, UTF-8)."""
    assert feat.vocabulary is not None
    items = sorted((col, term) for term, col in feat.vocabulary.items())
    if not _normed(feat):
        # Without a norm a term whose column no weight uses changes no score: drop it.
        keep = set(used.tolist())
        items = [(c, t) for c, t in items if c in keep]
    cols = np.array([c for c, _ in items], dtype=np.uint64)
    gaps = np.diff(cols, prepend=np.uint64(0)) if cols.size else cols
    if cols.size:
        gaps[1:] -= np.uint64(1)
    raw = [t.encode("utf-8") for _, t in items]
    return struct.pack("<I", len(items)) + varint_encode(gaps) + strings_encode(raw)


def _normed(feat: TextFeaturizer) -> bool:
    """Whether a norm reads every column of a row (so every term must stay)."""
    return feat.norm is not None or (feat.tfidf is not None and feat.tfidf.norm is not None)


def _code_dtype(n_values: int) -> str:
    return "<u1" if n_values <= 1 << 8 else "<u2" if n_values <= 1 << 16 else "<u4"


def decode_text(
    sec: tuple[int, int, np.ndarray], need: Callable[[int, str], None], *, n_features: int
) -> TextFeaturizer:
    """The featurizer in a ``text`` section, every length and code checked before use."""
    enc, off, b = sec
    if b.size < _FIXED.size:
        need(_FIXED.size, "the text stage's 24-byte fixed fields")
    (an, lo, hi, flags, acc, pat, norm, tnorm, n_feat, n_stop, n_idf, stop_bytes) = (
        _FIXED.unpack_from(b.tobytes()[: _FIXED.size])
    )
    bad = _fixed_fault(an, lo, hi, flags, acc, pat, norm, tnorm)
    if bad is None and n_feat != n_features:
        bad = f"n_features {n_feat} at offset {off + 8} differs from the header's {n_features}"
    if bad is None:
        bad = _count_fault(an, flags, n_stop, n_idf, stop_bytes, n_feat, off)
    if bad is not None:
        corrupt_section(_NAME, off, bad)
    width = np.dtype(_code_dtype(n_idf)).itemsize if n_idf else 0
    stop_end = _FIXED.size + stop_bytes
    expected = stop_end + 8 * n_idf + width * n_feat * (n_idf > 0)
    what = (
        f"24 bytes, {stop_bytes} of stop words, {n_idf} idf values and "
        f"{n_feat if n_idf else 0} idf codes"
    )
    vocabulary = None
    if enc == 1:
        if b.size < expected + 4:
            need(expected + 4, what + " and a vocabulary's term count")
        normed = norm != 0 or tnorm != 0
        vocabulary = _decode_vocabulary(b, off, expected, n_feat, normed=normed)
    else:
        need(expected, what)
    stop: list[str] = []
    if n_stop:
        stop = _decode_stop_words(b[:stop_end], off, n_stop)
    tfidf = None
    if flags & _TFIDF:
        idf = None
        if n_idf:
            idf = _decode_idf(b, off, stop_end, n_idf, n_feat)
        tfidf = Tfidf(idf=idf, sublinear_tf=bool(flags & _SUBLINEAR), norm=NORMS[tnorm])
    return TextFeaturizer(
        n_features=n_feat,
        analyzer=ANALYZERS[an],
        ngram_range=(lo, hi),
        lowercase=bool(flags & _LOWER),
        token_pattern=TOKEN_PATTERNS[pat],
        strip_accents=STRIP_ACCENTS[acc],
        stop_words=tuple(stop),
        alternate_sign=bool(flags & _ALT),
        binary=bool(flags & _BINARY),
        norm=NORMS[norm],
        tfidf=tfidf,
        vocabulary=vocabulary,
    )


def _decode_vocabulary(
    b: np.ndarray, off: int, start: int, n_feat: int, *, normed: bool
) -> dict[str, int]:
    """The vocabulary block at ``start``: a u32 count ``n`` (``n_features`` exactly when a
    norm reads every column, else at most it), ``n`` varint column gaps, then ``n`` terms;
    the block fills the rest of the section."""
    (n,) = struct.unpack("<I", b[start : start + 4].tobytes())
    if n > n_feat or (normed and n != n_feat):
        rule = (
            f"exactly n_features={n_feat} (a norm reads every column)"
            if normed
            else (f"at most n_features={n_feat}")
        )
        corrupt_section(
            _NAME, off, f"{n} vocabulary terms at offset {off + start}, expected {rule}"
        )
    block = b[start + 4 :]
    ends = np.flatnonzero(block < 0x80)[:n]
    if ends.size != n:
        corrupt_section(_NAME, off, f"the vocabulary holds fewer than {n} columns")
    head = int(ends[-1]) + 1 if n else 0
    gaps, err = varint_decode(block[:head], n, 5)
    if err:
        corrupt_section(_NAME, off, f"vocabulary columns: {err}")
    cols = np.cumsum(gaps.astype(np.int64) + 1) - 1
    if n and int(cols[-1]) >= n_feat:
        corrupt_section(_NAME, off, f"a vocabulary column is not below n_features={n_feat}")
    terms = _decode_strings(block[head:], off, off + start + 4 + head, n, "term")
    if len(set(terms)) != n:
        corrupt_section(_NAME, off, "a vocabulary term is repeated")
    return dict(zip(terms, cols.tolist(), strict=True))


def _fixed_fault(
    an: int, lo: int, hi: int, flags: int, acc: int, pat: int, norm: int, tnorm: int
) -> str | None:
    """What is wrong with the fixed one-byte fields (offsets 0-7), or None."""
    if an >= len(ANALYZERS):
        return f"unknown analyzer code {an}"
    if not 1 <= lo <= hi <= 32:
        return f"n-gram range ({lo}, {hi}) is not 1 <= min_n <= max_n <= 32"
    if flags & ~_KNOWN_FLAGS:
        return f"unknown flag bits 0x{flags & ~_KNOWN_FLAGS:02x}"
    if flags & (_IDF | _SUBLINEAR) and not flags & _TFIDF:
        return "use_idf or sublinear_tf is set without tf-idf"
    if flags & _SUBLINEAR and flags & _ALT and not flags & _BINARY:
        return "sublinear_tf with alternate_sign needs binary counts (log of a negative count)"
    if acc >= len(STRIP_ACCENTS):
        return f"unknown strip_accents code {acc}"
    if pat >= len(TOKEN_PATTERNS) or (an != 0 and pat != 0):
        return f"token pattern code {pat} is not allowed for analyzer {ANALYZERS[an]!r}"
    if norm >= len(NORMS) or tnorm >= len(NORMS):
        return f"unknown norm code {max(norm, tnorm)}"
    if tnorm and not flags & _TFIDF:
        return f"tf-idf norm code {tnorm} is set without tf-idf"
    return None


def _count_fault(
    an: int, flags: int, n_stop: int, n_idf: int, stop_bytes: int, n_feat: int, off: int
) -> str | None:
    """What is wrong with the counts (offsets 12-23), or None."""
    if n_stop and an != 0:
        return f"{n_stop} stop words at offset {off + 12}, but only the word analyzer has any"
    if (n_stop == 0) != (stop_bytes == 0) or stop_bytes < n_stop:
        return f"{n_stop} stop words cannot take {stop_bytes} bytes (offset {off + 20})"
    if bool(flags & _IDF) != (n_idf > 0):
        return f"{n_idf} idf values at offset {off + 16}, but use_idf is {bool(flags & _IDF)}"
    if n_idf > n_feat:
        return f"{n_idf} distinct idf values at offset {off + 16}, more than n_features={n_feat}"
    return None


def _decode_stop_words(b: np.ndarray, off: int, n_stop: int) -> list[str]:
    """The stop words (section bytes 24 to ``len(b)``), sorted and distinct."""
    words = _decode_strings(b[_FIXED.size :], off, off + _FIXED.size, n_stop, "stop word")
    if any(a >= z for a, z in itertools.pairwise(words)):
        corrupt_section(_NAME, off, "stop words are not sorted and distinct")
    return words


def _decode_strings(block: np.ndarray, off: int, at: int, n: int, what: str) -> list[str]:
    """``n`` strings (varint lengths, then UTF-8) filling ``block`` (at file offset ``at``)
    exactly; errors name the section at ``off``."""
    ends = np.flatnonzero(block < 0x80)[:n]
    if ends.size != n:
        corrupt_section(_NAME, off, f"holds fewer than {n} {what} lengths")
    head = int(ends[-1]) + 1 if n else 0
    lengths, err = varint_decode(block[:head], n, 5)
    if err:
        corrupt_section(_NAME, off, f"{what} lengths: {err}")
    total = head + int(lengths.sum())
    if total != block.size:
        corrupt_section(
            _NAME,
            off,
            f"{what} lengths add up to {total} bytes, the block at {at} has {block.size}",
        )
    raw, pos, out = block.tobytes(), head, []
    for i, length in enumerate(lengths.tolist()):
        try:
            out.append(raw[pos : pos + length].decode("utf-8"))
        except UnicodeDecodeError:
            corrupt_section(_NAME, off, f"{what} {i} at offset {at + pos} is not valid UTF-8")
        pos += length
    return out


def _decode_idf(b: np.ndarray, off: int, start: int, n_idf: int, n_feat: int) -> np.ndarray:
    """The idf of every column: the value table and one code per column (sizes checked)."""
    values = np.frombuffer(b[start : start + 8 * n_idf].tobytes(), dtype="<f8")
    if not np.all(np.isfinite(values)):
        p = int(np.argmax(~np.isfinite(values)))
        corrupt_section(_NAME, off, f"idf value {p} at offset {off + start + 8 * p} is not finite")
    dtype = np.dtype(_code_dtype(n_idf))
    first = start + 8 * n_idf
    codes = np.frombuffer(b[first : first + dtype.itemsize * n_feat].tobytes(), dtype=dtype)
    if codes.size and int(codes.max()) >= n_idf:
        p = int(np.argmax(codes >= n_idf))
        at = off + start + 8 * n_idf + dtype.itemsize * p
        corrupt_section(
            _NAME, off, f"idf code {int(codes[p])} at offset {at} (column {p}) is not < {n_idf}"
        )
    return values[codes]
