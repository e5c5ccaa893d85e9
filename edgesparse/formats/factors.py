"""``.esb`` version 3: the matrix-factorization recommender kind (spec: docs/FORMAT.md,
"Version 3").

Same container as versions 1 and 2 (64-byte header, 16-byte section table, 8-byte aligned
packed sections, CRC32s; see :mod:`edgesparse.formats.container`), with its own header fields
and section kinds; raw ids are encoded as in version 2 (:mod:`edgesparse.formats.ids`). Every
older reader rejects a version-3 blob by its version before interpreting anything else.

:func:`decode` checks every count, offset, length and checksum before use and raises
:class:`~edgesparse.errors.FormatError` (and nothing else) naming the field or section and its
offset. Imports numpy and the standard library only.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from edgesparse.errors import FormatError, IRError
from edgesparse.fileio import atomic_write_bytes
from edgesparse.formats.codecs import (
    decode_provenance,
    encode_provenance,
    row_gaps,
    varint_decode,
    varint_encode,
)
from edgesparse.formats.container import (
    FACTORS_VERSION,
    MAX_U32,
    BlobKind,
    SectionLayout,
    assemble,
    check_section_crcs,
    corrupt,
    corrupt_section,
    parse_guarded,
    read_header,
    read_table,
    section_access,
)
from edgesparse.formats.ids import ID_ENCODINGS, decode_ids, encode_ids
from edgesparse.ir.factors import ALGORITHMS, FACTOR_DTYPES, FactorIR

__all__ = ["SECTION_NAMES", "VERSION", "decode", "encode", "verify", "write"]

VERSION = FACTORS_VERSION
"""The ``.esb`` version of matrix-factorization blobs."""

FLAG_BIASED = 0x01
_U64 = np.uint64
_FACTOR_DT = (np.dtype("<f8"), np.dtype("<f4"), np.dtype("i1"))

(
    PARAMS,
    SEEN_ROWS,
    SEEN_ITEMS,
    BIASES,
    USER_FACTORS,
    USER_SCALES,
    ITEM_FACTORS,
    ITEM_SCALES,
    USER_IDS,
    ITEM_IDS,
    PROVENANCE,
) = range(1, 12)
SECTION_NAMES = {
    PARAMS: "params",
    SEEN_ROWS: "seen_rows",
    SEEN_ITEMS: "seen_items",
    BIASES: "biases",
    USER_FACTORS: "user_factors",
    USER_SCALES: "user_scales",
    ITEM_FACTORS: "item_factors",
    ITEM_SCALES: "item_scales",
    USER_IDS: "user_ids",
    ITEM_IDS: "item_ids",
    PROVENANCE: "provenance",
}
_ENCODINGS: dict[int, dict[int, str]] = {
    PARAMS: {0: "float64"},
    SEEN_ROWS: {1: "varint"},
    SEEN_ITEMS: {1: "varint"},
    BIASES: {0: "float64"},
    USER_FACTORS: {0: "raw"},
    USER_SCALES: {0: "float32"},
    ITEM_FACTORS: {0: "raw"},
    ITEM_SCALES: {0: "float32"},
    USER_IDS: ID_ENCODINGS,
    ITEM_IDS: ID_ENCODINGS,
    PROVENANCE: {0: "json"},
}
_REQUIRED = (PARAMS, SEEN_ROWS, SEEN_ITEMS, USER_IDS, ITEM_IDS)
_LAYOUT = SectionLayout(SECTION_NAMES, _ENCODINGS, _REQUIRED)


# ----------------------------------------------------------------------------------------
# Public API
# ----------------------------------------------------------------------------------------
def encode(ir: FactorIR) -> bytes:
    """Serialize ``ir`` into version-3 ``.esb`` bytes (lossless for what ``ir`` holds).

    Raises :class:`FormatError` when the model exceeds the format's limits.
    """
    if not isinstance(ir, FactorIR):
        raise TypeError(f"encode() needs a FactorIR, got {type(ir).__name__}")
    if max(ir.n_users, ir.n_items, ir.n_factors) > MAX_U32:
        raise FormatError("cannot encode: the model exceeds the .esb v3 limit of 2^32 entries")
    lo, hi = ir.rating_scale
    counts = np.diff(ir.seen_indptr)
    starts = ir.seen_indptr[:-1][counts > 0]
    sections: list[tuple[int, int, bytes]] = [
        (PARAMS, 0, struct.pack("<3d", ir.global_mean, lo, hi)),
        (SEEN_ROWS, 1, varint_encode(counts.astype(_U64))),
        (SEEN_ITEMS, 1, varint_encode(row_gaps(ir.seen_items, starts))),
    ]
    if ir.bu is not None and ir.bi is not None:
        sections.append((BIASES, 0, np.concatenate([ir.bu, ir.bi]).astype("<f8").tobytes()))
    dt = _FACTOR_DT[FACTOR_DTYPES.index(ir.factor_dtype)]
    for kind, a, s in (
        (USER_FACTORS, ir.p, ir.p_scales),
        (ITEM_FACTORS, ir.q, ir.q_scales),
    ):
        if a is not None:
            sections.append((kind, 0, np.ascontiguousarray(a, dtype=dt).tobytes()))
        if s is not None:
            sections.append((kind + 1, 0, s.astype("<f4").tobytes()))
    sections.append((USER_IDS, *encode_ids(ir.user_ids, "user")))
    sections.append((ITEM_IDS, *encode_ids(ir.item_ids, "item")))
    if ir.provenance:
        sections.append((PROVENANCE, 0, encode_provenance(ir.provenance)))
    fields = (
        ir.n_users,
        ir.n_items,
        ir.n_seen,
        ir.n_factors,
        0,
        ALGORITHMS.index(ir.algorithm),
        FACTOR_DTYPES.index(ir.factor_dtype),
        FLAG_BIASED if ir.biased else 0,
        0,
        0,
    )
    return assemble(VERSION, sections, fields)


def decode(buf: bytes | bytearray | memoryview) -> FactorIR:
    """Parse and fully verify version-3 ``.esb`` bytes; return the :class:`FactorIR`."""
    return _parse(buf)[0]


def verify(buf: bytes | bytearray | memoryview) -> dict[str, Any]:
    """Fully verify version-3 ``.esb`` bytes and describe them (``edgesparse inspect``)."""
    ir, size, secs = _parse(buf)
    return {
        "format": f".esb version {VERSION}",
        "model_kind": "factors",
        "bytes": size,
        "algorithm": ir.algorithm,
        "biased": ir.biased,
        "n_users": ir.n_users,
        "n_items": ir.n_items,
        "n_factors": ir.n_factors,
        "factor_dtype": ir.factor_dtype,
        "seen_pairs": ir.n_seen,
        "rating_scale": list(ir.rating_scale),
        "global_mean": ir.global_mean,
        "sections": secs,
        "checksums": "OK",
        "provenance": dict(ir.provenance),
    }


def write(ir: FactorIR, path: str | os.PathLike[str]) -> int:
    """Encode ``ir`` and write it atomically; return the number of bytes written."""
    data = encode(ir)
    atomic_write_bytes(path, data)
    return len(data)


# ----------------------------------------------------------------------------------------
# Decoding
# ----------------------------------------------------------------------------------------
def _parse(buf: bytes | bytearray | memoryview) -> tuple[FactorIR, int, dict[str, Any]]:
    return parse_guarded(_parse_bytes, buf)


class _Header(NamedTuple):
    """The version-3 header fields, checked."""

    n_sec: int
    n_users: int
    n_items: int
    n_seen: int
    n_factors: int
    algorithm: str
    dtype_code: int
    biased: bool
    file_size: int


def _check_header(fields: tuple) -> _Header:
    """Check the version-3 header fields, in byte order."""
    _, _, _, n_sec, n_users, n_items, n_seen, n_factors, res36 = fields[:9]
    algo_code, dtype_code, flags, res43, res44, file_size, res56 = fields[9:16]
    if n_users < 1:
        corrupt("n_users at offset 16 is 0")
    if n_items < 1:
        corrupt("n_items at offset 20 is 0")
    if n_seen > n_users * n_items:
        corrupt(f"n_seen at offset 24 is {n_seen}, more than {n_users} x {n_items}")
    for value, off in ((res36, 36), (res43, 43), (res44, 44), (res56, 56)):
        if value:
            corrupt(f"reserved field at offset {off} is {value}, expected 0")
    if algo_code >= len(ALGORITHMS):
        corrupt(f"unknown algorithm code {algo_code} at offset 40")
    if dtype_code >= len(FACTOR_DTYPES):
        corrupt(f"unknown factor dtype code {dtype_code} at offset 41")
    if flags & ~FLAG_BIASED:
        corrupt(f"unknown flag bits 0x{flags & ~FLAG_BIASED:02x} at offset 42")
    algorithm = ALGORITHMS[algo_code]
    if (n_factors == 0) != (algorithm == "baseline"):
        corrupt(
            f"n_factors at offset 32 is {n_factors}, but the algorithm (offset 40) is "
            f"{algorithm!r}" + (" (which has no factors)" if algorithm == "baseline" else "")
        )
    if algorithm == "baseline" and dtype_code:
        corrupt(f"factor dtype code at offset 41 is {dtype_code}, expected 0 (no factors)")
    biased = bool(flags & FLAG_BIASED)
    if algorithm in ("svdpp", "baseline") and not biased:
        corrupt(f"flag 'biased' (offset 42) must be set for {algorithm!r}")
    return _Header(
        n_sec, n_users, n_items, n_seen, n_factors, algorithm, dtype_code, biased, file_size
    )


def _check_presence(secs: dict[int, Any], hdr: _Header) -> None:
    """The optional sections the header fields call for, and no others."""
    has_factors = hdr.algorithm != "baseline"
    int8 = FACTOR_DTYPES[hdr.dtype_code] == "int8"
    algo = f"the algorithm (offset 40) is {hdr.algorithm!r}"
    wanted = {
        BIASES: (
            hdr.biased,
            "the 'biased' flag (offset 42) is " + ("set" if hdr.biased else "clear"),
        ),
        USER_FACTORS: (has_factors, algo),
        USER_SCALES: (has_factors and int8, "the factors (offset 41) are int8"),
        ITEM_FACTORS: (has_factors, algo),
        ITEM_SCALES: (has_factors and int8, "the factors (offset 41) are int8"),
    }
    for kind, (needed, why) in wanted.items():
        if (kind in secs) != needed:
            if not needed and kind in (USER_SCALES, ITEM_SCALES):
                why = "the factors (offset 41) are not int8"
            corrupt(
                f"section '{SECTION_NAMES[kind]}' must be "
                f"{'present' if needed else 'absent'} when {why}"
            )


def _floats(section: Callable, need: Callable, kind: int, n: int, what: str) -> np.ndarray:
    """``n`` finite float64 values."""
    _, off, b = section(kind)
    need(kind, 8 * n, f"{n} float64 {what}")
    a = np.frombuffer(b, dtype="<f8").astype(np.float64)
    bad = ~np.isfinite(a)
    if np.any(bad):
        p = int(np.argmax(bad))
        corrupt_section(
            SECTION_NAMES[kind], off, f"value {float(a[p])!r} at position {p} must be finite"
        )
    return a


def _decode_params(section: Callable, need: Callable) -> tuple[float, float, float]:
    gm, lo, hi = _floats(
        section, need, PARAMS, 3, "(global mean, rating low, rating high)"
    ).tolist()
    if lo > hi:
        _, off, _ = section(PARAMS)
        corrupt_section("params", off, f"rating scale low {lo!r} is above high {hi!r}")
    return float(gm), float(lo), float(hi)


def _decode_seen(section: Callable, hdr: _Header) -> tuple[np.ndarray, np.ndarray]:
    """(indptr, items): each user's rated items, strictly increasing, in [0, n_items)."""
    n_users, n_items, n_seen = hdr.n_users, hdr.n_items, hdr.n_seen
    _, off, b = section(SEEN_ROWS)
    counts, err = varint_decode(b, n_users, 5)
    if err:
        corrupt_section("seen_rows", off, f"{err} (one count per user)")
    if counts.size and int(counts.max()) > n_items:
        r = int(np.argmax(counts > n_items))
        corrupt_section(
            "seen_rows", off, f"user {r} has {int(counts[r])} items, more than {n_items}"
        )
    got = int(counts.sum(dtype=_U64))
    if got != n_seen:
        corrupt_section("seen_rows", off, f"counts sum to {got}, the header says {n_seen} pairs")
    indptr = np.zeros(n_users + 1, dtype=np.int64)
    np.cumsum(counts.astype(np.int64), out=indptr[1:])
    _, off, b = section(SEEN_ITEMS)
    gaps, err = varint_decode(b, n_seen, 5)
    if err:
        corrupt_section("seen_items", off, f"{err} (one item gap per pair)")
    if gaps.size and int(gaps.max()) >= n_items:
        p = int(np.argmax(gaps >= n_items))
        corrupt_section(
            "seen_items", off, f"item gap {int(gaps[p])} at position {p} is >= {n_items}"
        )
    # Within a row: item = (sum of gap + 1 over the row so far) - 1.
    steps = np.cumsum(gaps.astype(np.int64) + 1)
    before = np.concatenate([[0], steps])[indptr[:-1]]
    items = steps - np.repeat(before, np.diff(indptr)) - 1
    if items.size and int(items.max()) >= n_items:
        p = int(np.argmax(items >= n_items))
        corrupt_section(
            "seen_items", off, f"item {int(items[p])} at position {p} is out of [0, {n_items})"
        )
    return indptr, items.astype(np.int32)


def _decode_factors(
    section: Callable, need: Callable, secs: dict[int, Any], hdr: _Header
) -> dict[str, Any]:
    """``p``, ``q`` and, for int8, their scales (FactorIR fields); empty for BaselineOnly."""
    if USER_FACTORS not in secs:
        return {}
    out: dict[str, Any] = {}
    dt = _FACTOR_DT[hdr.dtype_code]
    f = hdr.n_factors
    for kind, n, name in ((USER_FACTORS, hdr.n_users, "p"), (ITEM_FACTORS, hdr.n_items, "q")):
        _, off, b = section(kind)
        need(kind, n * f * dt.itemsize, f"{n} x n_factors={f} {FACTOR_DTYPES[hdr.dtype_code]}")
        a = np.frombuffer(b, dtype=dt).astype(dt.newbyteorder("=")).reshape(n, f)
        bad = (a == -128) if dt.kind == "i" else ~np.isfinite(a)
        if np.any(bad):
            p = int(np.argmax(bad.ravel()))
            corrupt_section(
                SECTION_NAMES[kind],
                off,
                f"value {a.ravel()[p].item()!r} at position {p} is not allowed "
                + ("(int8 factors lie in [-127, 127])" if dt.kind == "i" else "(not finite)"),
            )
        out[name] = a
        if dt.kind == "i":
            _, soff, sb = section(kind + 1)
            need(kind + 1, 4 * n, f"{n} per-row float32 scales")
            s = np.frombuffer(sb, dtype="<f4").astype(np.float32)
            bad = ~(np.isfinite(s) & (s > 0))
            if np.any(bad):
                r = int(np.argmax(bad))
                corrupt_section(
                    SECTION_NAMES[kind + 1], soff, f"scale {float(s[r])!r} at row {r} must be > 0"
                )
            out[f"{name}_scales"] = s
    return out


def _parse_bytes(data: bytes) -> tuple[FactorIR, int, dict[str, Any]]:
    hdr = _check_header(read_header(data, reader=BlobKind.ESB_FACTORS, layout=_LAYOUT))
    secs, info = read_table(data, n_sec=hdr.n_sec, file_size=hdr.file_size, layout=_LAYOUT)
    _check_presence(secs, hdr)
    check_section_crcs(data, hdr.n_sec, SECTION_NAMES)
    section, need = section_access(data, secs, SECTION_NAMES)
    gm, lo, hi = _decode_params(section, need)
    seen_indptr, seen_items = _decode_seen(section, hdr)
    parts = _decode_factors(section, need, secs, hdr)
    if BIASES in secs:
        both = _floats(
            section, need, BIASES, hdr.n_users + hdr.n_items, "biases (users, then items)"
        )
        parts["bu"], parts["bi"] = both[: hdr.n_users], both[hdr.n_users :]
    user_ids = decode_ids(section(USER_IDS), hdr.n_users, "user_ids", need, USER_IDS)
    item_ids = decode_ids(section(ITEM_IDS), hdr.n_items, "item_ids", need, ITEM_IDS)
    provenance: dict[str, str] = {}
    if PROVENANCE in secs:
        _, off, b = section(PROVENANCE)
        provenance = decode_provenance(b.tobytes(), off)
    try:
        ir = FactorIR(
            algorithm=hdr.algorithm,
            biased=hdr.biased,
            global_mean=gm,
            rating_scale=(lo, hi),
            user_ids=user_ids,
            item_ids=item_ids,
            seen_indptr=seen_indptr,
            seen_items=seen_items,
            provenance=provenance,
            **parts,
        )
    except IRError as exc:
        raise FormatError(f"corrupt .esb: {exc}") from None
    return ir, len(data), info
