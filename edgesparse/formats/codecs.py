"""The codecs every ``.esb`` payload shares: LEB128 varints, zigzag integers, bitmaps,
Elias-Fano codes of increasing sequences, length-prefixed UTF-8 strings and the provenance
JSON object (spec: ``docs/FORMAT.md``).

Encoders are vectorized with numpy. Decoders check every length and bound before use and fail
with :func:`~edgesparse.formats.container.corrupt` (a :class:`~edgesparse.errors.FormatError`
naming the section and its offset). Imports numpy and the standard library only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from edgesparse.errors import FormatError
from edgesparse.formats.container import corrupt

__all__ = [
    "ENC_BITMAP",
    "ENC_EF",
    "ENC_RAW",
    "ENC_VARINT",
    "MAX_PROVENANCE_KEYS",
    "bitmap_encode",
    "decode_provenance",
    "decode_sorted",
    "ef_low_bits",
    "ef_encode",
    "ef_size",
    "encode_provenance",
    "plain_object",
    "row_gaps",
    "strings_decode",
    "strings_encode",
    "varint_decode",
    "varint_encode",
    "varint_lengths",
    "zigzag_decode",
    "zigzag_encode",
]

# Encoding codes of an increasing sequence (the section table's encoding field).
ENC_RAW, ENC_VARINT, ENC_BITMAP, ENC_EF = 0, 1, 2, 3

_U64 = np.uint64


# ----------------------------------------------------------------------------------------
# LEB128 varints and zigzag
# ----------------------------------------------------------------------------------------
def varint_lengths(v: np.ndarray) -> np.ndarray:
    """Bytes each value of ``v`` takes as an unsigned LEB128 varint."""
    v = np.asarray(v, dtype=_U64)
    n = np.ones(v.shape, dtype=np.int64)
    for k in range(1, 10):
        n += v >= _U64(1 << (7 * k))
    return n


def varint_encode(v: np.ndarray) -> bytes:
    """Unsigned LEB128: 7 bits per byte, least significant group first, high bit = more."""
    v = np.asarray(v, dtype=_U64)
    if v.size == 0:
        return b""
    n = varint_lengths(v)
    owner = np.repeat(np.arange(v.size), n)
    first = np.cumsum(n) - n
    pos = np.arange(owner.size) - first[owner]
    groups = (v[owner] >> (7 * pos).astype(_U64)) & _U64(0x7F)
    more = (pos < n[owner] - 1).astype(_U64) << _U64(7)
    return (groups | more).astype(np.uint8).tobytes()


def varint_decode(b: np.ndarray, count: int, max_bytes: int) -> tuple[np.ndarray, str | None]:
    """Decode exactly ``count`` varints filling all of ``b``; return (values, error or None)."""
    if count == 0:
        return np.zeros(0, _U64), (None if b.size == 0 else "holds data but expects 0 numbers")
    ends = np.flatnonzero(b < 0x80)
    if ends.size != count:
        return np.zeros(0, _U64), f"holds {ends.size} numbers, expected {count}"
    if ends[-1] != b.size - 1:
        return np.zeros(0, _U64), "ends in the middle of a number"
    first = np.empty(count, dtype=np.int64)
    first[0] = 0
    first[1:] = ends[:-1] + 1
    lens = ends - first + 1
    if int(lens.max()) > max_bytes:
        at = int(first[np.argmax(lens > max_bytes)])
        return np.zeros(0, _U64), f"number at byte {at} is longer than {max_bytes} bytes"
    bad = (lens > 1) & (b[ends] == 0)
    if np.any(bad):
        at = int(first[np.argmax(bad)])
        return np.zeros(0, _U64), f"number at byte {at} is not minimally encoded"
    if max_bytes >= 10 and np.any((lens == 10) & (b[ends] > 1)):
        return np.zeros(0, _U64), "a number overflows 64 bits"
    pos = np.arange(b.size) - np.repeat(first, lens)
    parts = (b & 0x7F).astype(_U64) << (7 * pos).astype(_U64)
    return np.add.reduceat(parts, first), None


def row_gaps(sorted_idx: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Delta-code per row: the first index of a row as is, then ``next - previous - 1``."""
    g = sorted_idx.astype(np.int64)
    if g.size == 0:
        return g.astype(_U64)
    out = g.copy()
    out[1:] -= g[:-1] + 1
    out[starts] = g[starts]
    return out.astype(_U64)


def zigzag_encode(v: np.ndarray) -> bytes:
    """int64 -> zigzag (0, -1, 1, -2, ... -> 0, 1, 2, 3, ...) LEB128 varints."""
    return varint_encode((v.view(_U64) << _U64(1)) ^ (v >> 63).view(_U64))


def zigzag_decode(zig: np.ndarray) -> np.ndarray:
    """Zigzag-coded uint64 (as :func:`varint_decode` returns them) -> int64."""
    return ((zig >> _U64(1)) ^ (_U64(0) - (zig & _U64(1)))).view(np.int64)


# ----------------------------------------------------------------------------------------
# Bitmaps and Elias-Fano
# ----------------------------------------------------------------------------------------
def bitmap_encode(positions: np.ndarray, n_bits: int) -> bytes:
    """A little-endian bitmap of ``n_bits`` bits with ``positions`` set."""
    bits = np.zeros(n_bits, dtype=np.uint8)
    bits[positions] = 1
    return np.packbits(bits, bitorder="little").tobytes()


def ef_low_bits(n: int, universe: int) -> int:
    """The number of low bits per value of an Elias-Fano code of ``n`` values."""
    return max(0, (universe // n).bit_length() - 1)


def ef_size(n: int, universe: int) -> int:
    """Bytes of an Elias-Fano code for ``n >= 1`` strictly increasing values in [0, universe)."""
    low = ef_low_bits(n, universe)
    return -(-n * low // 8) + -(-(n + ((universe - 1) >> low) + 1) // 8)


def ef_encode(x: np.ndarray, universe: int) -> bytes:
    """Elias-Fano: ``L`` low bits of each value packed, then the high parts in unary."""
    n = int(x.size)
    if n == 0:
        return b""
    low_bits = ef_low_bits(n, universe)
    bits = np.empty((n, low_bits), dtype=np.uint8)
    for j in range(low_bits):
        bits[:, j] = (x >> _U64(j)) & _U64(1)
    low = np.packbits(bits.ravel(), bitorder="little").tobytes()
    n_high = n + ((universe - 1) >> low_bits) + 1
    hb = np.zeros(n_high, dtype=np.uint8)
    hb[(x >> _U64(low_bits)) + np.arange(n, dtype=_U64)] = 1
    return low + np.packbits(hb, bitorder="little").tobytes()


def decode_sorted(
    b: np.ndarray, enc: int, n: int, universe: int, off: int, name: str, what: str
) -> np.ndarray:
    """Decode ``n`` strictly increasing values in [0, universe) (varint, bitmap or EF)."""
    where = f"section '{name}' at offset {off}"
    if enc == ENC_VARINT:
        return _decode_sorted_varint(b, n, universe, where, what)
    if enc == ENC_BITMAP:
        return _decode_sorted_bitmap(b, n, universe, where, what)
    return _decode_sorted_ef(b, n, universe, where, what)


def _decode_sorted_varint(
    b: np.ndarray, n: int, universe: int, where: str, what: str
) -> np.ndarray:
    gaps, err = varint_decode(b, n, 5)
    if err:
        corrupt(f"{where}: {err} (one gap per {what})")
    if gaps.size and int(gaps.max()) >= universe:
        corrupt(f"{where}: a {what} lies outside [0, {universe})")
    x = np.cumsum(gaps + _U64(1), dtype=_U64) - _U64(1) if n else gaps
    if n and int(x[-1]) >= universe:
        corrupt(f"{where}: a {what} lies outside [0, {universe})")
    return x


def _decode_sorted_bitmap(
    b: np.ndarray, n: int, universe: int, where: str, what: str
) -> np.ndarray:
    n_bytes = -(-universe // 8)
    if b.size != n_bytes:
        corrupt(f"{where} is {b.size} bytes, expected {n_bytes} (a bitmap of {universe} bits)")
    bits = np.unpackbits(b, bitorder="little")
    if np.any(bits[universe:]):
        corrupt(f"{where}: padding bits after bit {universe} are not zero")
    x = np.flatnonzero(bits).astype(_U64)
    if x.size != n:
        corrupt(f"{where}: bitmap has {x.size} bits set, expected {n} ({what}s)")
    return x


def _decode_sorted_ef(b: np.ndarray, n: int, universe: int, where: str, what: str) -> np.ndarray:
    if n == 0:
        if b.size:
            corrupt(f"{where} is {b.size} bytes, expected 0 (no {what}s)")
        return np.zeros(0, _U64)
    low_bits = ef_low_bits(n, universe)
    n_low = -(-n * low_bits // 8)
    n_high_bits = n + ((universe - 1) >> low_bits) + 1
    n_bytes = n_low + -(-n_high_bits // 8)
    if b.size != n_bytes:
        corrupt(f"{where} is {b.size} bytes, expected {n_bytes} (Elias-Fano code of {n} {what}s)")
    low = np.zeros(n, dtype=_U64)
    if low_bits:
        lb = np.unpackbits(b[:n_low], bitorder="little")
        if np.any(lb[n * low_bits :]):
            corrupt(f"{where}: padding bits of the low part are not zero")
        lb = lb[: n * low_bits].reshape(n, low_bits)
        bit = np.empty(n, dtype=_U64)  # one workspace for every bit (load memory, issue 19)
        for j in range(low_bits):
            np.left_shift(lb[:, j], _U64(j), out=bit, dtype=_U64)
            low |= bit
        del lb, bit
    hb = np.unpackbits(b[n_low:], bitorder="little")
    ones = np.flatnonzero(hb)
    del hb
    if ones.size != n:
        corrupt(f"{where}: high part has {ones.size} bits set, expected {n} ({what}s)")
    if int(ones[-1]) >= n_high_bits:
        corrupt(f"{where}: padding bits of the high part are not zero")
    # In place: the i-th set bit lies at or after position i, so the difference is >= 0 and
    # reads the same as uint64.
    high = ones.astype(np.int64, copy=False)
    high -= np.arange(n)
    x = high.view(_U64)
    x <<= _U64(low_bits)
    x |= low
    if int(x[-1]) >= universe:
        corrupt(f"{where}: a {what} lies outside [0, {universe})")
    if n > 1 and np.any(x[1:] <= x[:-1]):
        p = int(np.argmax(x[1:] <= x[:-1])) + 1
        corrupt(f"{where}: {what}s are not strictly increasing at position {p}")
    return x


# ----------------------------------------------------------------------------------------
# Strings and provenance
# ----------------------------------------------------------------------------------------
def strings_encode(raw: list[bytes]) -> bytes:
    """All the lengths as varints, then all the UTF-8 bytes."""
    return varint_encode(np.array([len(r) for r in raw], dtype=_U64)) + b"".join(raw)


def strings_decode(
    b: np.ndarray, n: int, name: str, off: int, what: str, *, nul_ok: bool
) -> list[str]:
    """Decode ``n`` strings written by :func:`strings_encode` (``what`` names one in errors).

    ``nul_ok=False`` rejects a string ending in NUL, which a numpy str array would drop.
    """
    where = f"section '{name}' at offset {off}"
    ends = np.flatnonzero(b < 0x80)[:n]
    if ends.size != n:
        corrupt(f"{where}: holds fewer than {n} {what} lengths")
    head_len = int(ends[-1]) + 1
    lengths, err = varint_decode(b[:head_len], n, 5)
    if err:
        corrupt(f"{where}: {what} lengths: {err}")
    total = int(lengths.sum(dtype=_U64))
    if head_len + total != b.size:
        corrupt(f"{where}: {what} lengths add up to {head_len + total} bytes, section has {b.size}")
    raw = b.tobytes()
    out = []
    pos = head_len
    for i, ln in enumerate(lengths.tolist()):
        try:
            text = raw[pos : pos + ln].decode("utf-8")
        except UnicodeDecodeError:
            corrupt(f"{where}: {what} {i} at offset {off + pos} is not valid UTF-8")
        if not nul_ok and text.endswith("\x00"):
            corrupt(f"{where}: {what} {i} at offset {off + pos} ends with a NUL character")
        out.append(text)
        pos += ln
    return out


MAX_PROVENANCE_KEYS = 1024
"""Most keys the provenance object may hold: a reader without memory to spare checks them for
repeats pairwise (about 10 keys in practice)."""


class _TooManyKeys(Exception):
    pass


def encode_provenance(provenance: Mapping[str, str]) -> bytes:
    """The provenance section: a compact UTF-8 JSON object of strings."""
    if len(provenance) > MAX_PROVENANCE_KEYS:
        raise FormatError(f"cannot encode: provenance has more than {MAX_PROVENANCE_KEYS} keys")
    import json  # here, not at import: a device process reading blobs never encodes

    text = json.dumps(dict(provenance), ensure_ascii=False, separators=(",", ":"))
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise FormatError("cannot encode: provenance is not valid Unicode") from None


def _unique_pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in items:
        if k in out:
            raise ValueError(f"duplicate key {k!r}")
        out[k] = v
    if len(out) > MAX_PROVENANCE_KEYS:
        raise _TooManyKeys
    return out


def plain_object(text: str) -> dict[str, str] | None:
    """``text`` as ``json.loads`` reads it when it is the compact object of plain strings
    :func:`encode_provenance` writes (``{"k":"v",...}``: no whitespace, no escapes, no control
    characters, distinct keys, at most MAX_PROVENANCE_KEYS); else None, and json decides.

    Without a backslash no string holds a quote, so the quotes split the text into its
    tokens exactly: keys, values and the ``:`` and ``,`` between them."""
    if text == "{}":
        return {}
    if len(text) < 7 or text[:2] != '{"' or text[-2:] != '"}' or "\\" in text:
        return None
    if min(text) < " ":  # a control character: json refuses it in a string
        return None
    parts = text[1:-1].split('"')  # '', k, ':', v, ',', k, ':', v, ''
    n = (len(parts) - 1) // 4
    if len(parts) != 4 * n + 1 or parts[0] or parts[-1] or n > MAX_PROVENANCE_KEYS:
        return None
    if any(p != ":" for p in parts[2::4]) or any(p != "," for p in parts[4:-1:4]):
        return None
    out = dict(zip(parts[1::4], parts[3::4], strict=True))
    return out if len(out) == n else None  # a repeated key: json's reader names it


def decode_provenance(raw: bytes, off: int) -> dict[str, str]:
    """Decode and check the provenance section at offset ``off``."""
    where = f"section 'provenance' at offset {off}"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FormatError(f"corrupt .esb: {where}: not valid UTF-8 ({exc.reason})") from None
    plain = plain_object(text)
    if plain is not None:
        return plain
    import json  # only for what the plain reader leaves: the json modules cost a device 0.1 MiB

    try:
        obj = json.loads(text, object_pairs_hook=_unique_pairs)
    except _TooManyKeys:
        raise FormatError(
            f"corrupt .esb: {where}: has more than {MAX_PROVENANCE_KEYS} keys"
        ) from None
    except (ValueError, RecursionError) as exc:
        raise FormatError(f"corrupt .esb: {where}: not a valid JSON object ({exc})") from None
    if not isinstance(obj, dict) or not all(isinstance(v, str) for v in obj.values()):
        corrupt(f"{where}: must be a JSON object of strings")
    return obj
