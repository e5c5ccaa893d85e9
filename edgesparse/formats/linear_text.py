"""The ``text`` section of a linear ``.esb`` blob: the model's text input stage
(:class:`~edgesparse.ir.text.TextFeaturizer`), as ``docs/FORMAT.md`` specifies it.

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

Imports only numpy and the standard library: the on-device runtime uses this module.
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Callable

import numpy as np

from edgesparse.formats.codecs import strings_encode, varint_decode
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

TEXT_ENCODINGS = {0: "hashing"}
"""Encoding codes of the ``text`` section."""

_FIXED = struct.Struct("<BBBBBBBBIIII")
_LOWER, _ALT, _BINARY, _TFIDF, _IDF, _SUBLINEAR = 1, 2, 4, 8, 16, 32
_KNOWN_FLAGS = 63
_NAME = "text"


def encode_text(feat: TextFeaturizer) -> tuple[int, bytes]:
    """(encoding, bytes) of the ``text`` section for ``feat``."""
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
    return 0, fixed + stop_block + values.astype("<f8").tobytes() + codes.tobytes()


def _code_dtype(n_values: int) -> str:
    return "<u1" if n_values <= 1 << 8 else "<u2" if n_values <= 1 << 16 else "<u4"


def decode_text(
    sec: tuple[int, int, np.ndarray], need: Callable[[int, str], None], *, n_features: int
) -> TextFeaturizer:
    """The featurizer in a ``text`` section, every length and code checked before use."""
    _, off, b = sec
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
    need(
        expected,
        f"24 bytes, {stop_bytes} of stop words, {n_idf} idf values and "
        f"{n_feat if n_idf else 0} idf codes",
    )
    stop: list[str] = []
    if n_stop:
        stop = _decode_stop_words(b[:stop_end], off, n_stop)
    tfidf = None
    if flags & _TFIDF:
        idf = None
        if n_idf:
            idf = _decode_idf(b, off, stop_end, n_idf)
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
    )


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
    """The stop words: ``n_stop`` varint lengths, then their UTF-8 bytes, filling the block
    (section bytes 24 to ``len(b)``) exactly; sorted and distinct."""
    block = b[_FIXED.size :]
    ends = np.flatnonzero(block < 0x80)[:n_stop]
    if ends.size != n_stop:
        corrupt_section(_NAME, off, f"the stop-word block holds fewer than {n_stop} lengths")
    head = int(ends[-1]) + 1
    lengths, err = varint_decode(block[:head], n_stop, 5)
    if err:
        corrupt_section(_NAME, off, f"stop-word lengths: {err}")
    if head + int(lengths.sum()) != block.size:
        corrupt_section(
            _NAME,
            off,
            f"stop-word lengths add up to {head + int(lengths.sum())} bytes, the block has "
            f"{block.size}",
        )
    raw, pos, words = block.tobytes(), head, []
    for i, n in enumerate(lengths.tolist()):
        try:
            words.append(raw[pos : pos + n].decode("utf-8"))
        except UnicodeDecodeError:
            at = off + _FIXED.size + pos
            corrupt_section(_NAME, off, f"stop word {i} at offset {at} is not valid UTF-8")
        pos += n
    if any(a >= z for a, z in itertools.pairwise(words)):
        corrupt_section(_NAME, off, "stop words are not sorted and distinct")
    return words


def _decode_idf(b: np.ndarray, off: int, start: int, n_idf: int) -> np.ndarray:
    """The idf of every column: the value table and one code per column (sizes checked)."""
    values = np.frombuffer(b[start : start + 8 * n_idf].tobytes(), dtype="<f8")
    if not np.all(np.isfinite(values)):
        p = int(np.argmax(~np.isfinite(values)))
        corrupt_section(_NAME, off, f"idf value {p} at offset {off + start + 8 * p} is not finite")
    dtype = np.dtype(_code_dtype(n_idf))
    codes = np.frombuffer(b[start + 8 * n_idf :].tobytes(), dtype=dtype)
    if codes.size and int(codes.max()) >= n_idf:
        p = int(np.argmax(codes >= n_idf))
        at = off + start + 8 * n_idf + dtype.itemsize * p
        corrupt_section(
            _NAME, off, f"idf code {int(codes[p])} at offset {at} (column {p}) is not < {n_idf}"
        )
    return values[codes]
