"""``.esb`` version 2: the k-NN recommender model kind (spec: docs/FORMAT.md, "Version 2").

Same container as version 1 (64-byte header, 16-byte section table, 8-byte aligned packed
sections, CRC32s; see :mod:`edgesparse.formats.esb`), with its own header fields and section
kinds. Linear models stay version 1, so every version-1 reader keeps reading them and rejects a
k-NN blob by its version before interpreting anything else.

:func:`decode` checks every count, offset, length and checksum before use and raises
:class:`~edgesparse.errors.FormatError` (and nothing else) naming the field or section and its
offset. Imports numpy and the standard library only.
"""

from __future__ import annotations

import math
import os
import struct
from typing import Any

import numpy as np

from edgesparse.errors import FormatError, IRError
from edgesparse.fileio import atomic_write_bytes
from edgesparse.formats.esb import (
    MAGIC,
    MAX_U32,
    _assemble,
    _check_section_crcs,
    _decode_provenance,
    _encode_provenance,
    _fail,
    _Layout,
    _parse_guarded,
    _read_file,
    _read_header,
    _read_table,
    _section_access,
    _sfail,
    _strings_decode,
    _strings_encode,
    _varint_decode,
    _varint_encode,
    _zigzag_decode,
    _zigzag_encode,
)
from edgesparse.ir.knn import VARIANTS, KnnIR

__all__ = ["MODEL_KIND_KNN", "VERSION", "decode", "encode", "read", "verify", "write"]

VERSION = 2
"""The ``.esb`` version of k-NN blobs."""
MODEL_KIND_KNN = 1
"""Header byte 43 of a version-2 file: the model kind (1 = k-NN recommender)."""

FLAG_USER_BASED = 0x01
_U64 = np.uint64

(
    PARAMS,
    SIM_ROWS,
    SIM_INDICES,
    SIM_VALUES,
    SIM_SCALES,
    YR_ROWS,
    YR_X,
    RATINGS,
    MEANS,
    SIGMAS,
    BASELINES,
    USER_IDS,
    ITEM_IDS,
    PROVENANCE,
) = range(1, 15)
SECTION_NAMES = {
    PARAMS: "params",
    SIM_ROWS: "sim_rows",
    SIM_INDICES: "sim_indices",
    SIM_VALUES: "sim_values",
    SIM_SCALES: "sim_scales",
    YR_ROWS: "yr_rows",
    YR_X: "yr_x",
    RATINGS: "ratings",
    MEANS: "means",
    SIGMAS: "sigmas",
    BASELINES: "baselines",
    USER_IDS: "user_ids",
    ITEM_IDS: "item_ids",
    PROVENANCE: "provenance",
}
_ENCODINGS: dict[int, dict[int, str]] = {
    PARAMS: {0: "float64"},
    SIM_ROWS: {1: "varint"},
    SIM_INDICES: {1: "varint"},
    SIM_VALUES: {0: "raw"},
    SIM_SCALES: {0: "float32"},
    YR_ROWS: {1: "varint"},
    YR_X: {0: "uint32", 1: "uint16"},
    RATINGS: {0: "uint8-coded", 1: "float32", 2: "float64"},
    MEANS: {0: "float64"},
    SIGMAS: {0: "float64"},
    BASELINES: {0: "float64"},
    USER_IDS: {0: "int-zigzag-varint", 1: "float64", 2: "utf8"},
    ITEM_IDS: {0: "int-zigzag-varint", 1: "float64", 2: "utf8"},
    PROVENANCE: {0: "json"},
}
_REQUIRED = (PARAMS, SIM_ROWS, SIM_INDICES, SIM_VALUES, YR_ROWS, YR_X, RATINGS, USER_IDS, ITEM_IDS)
_LAYOUT = _Layout(SECTION_NAMES, _ENCODINGS, _REQUIRED)
_SIM_DTYPES = (np.dtype("<f8"), np.dtype("<f4"), np.dtype("u1"))
_SIM_DTYPE_NAMES = ("float64", "float32", "uint8")
_RATING_STEPS = (1.0, 0.5)  # integer and half-star scales fit a uint8 code exactly
_ID_INT, _ID_FLOAT, _ID_STR = 0, 1, 2


# ----------------------------------------------------------------------------------------
# Public API
# ----------------------------------------------------------------------------------------
def is_knn_blob(buf: bytes | bytearray | memoryview) -> bool:
    """True when ``buf`` starts with the ``.esb`` magic and says version 2 (k-NN)."""
    head = bytes(buf[:10])
    return head[:8] == MAGIC and len(head) == 10 and struct.unpack("<H", head[8:])[0] == VERSION


def encode(ir: KnnIR) -> bytes:
    """Serialize ``ir`` into version-2 ``.esb`` bytes (lossless for what ``ir`` holds).

    Ratings are written as uint8 codes ``low + code * step`` when that is exact for every
    rating with a step of 1 or 0.5 (integer or half-star scales), else as float32 when exact,
    else as float64. Raises :class:`FormatError` when the model exceeds the format's limits.
    """
    if not isinstance(ir, KnnIR):
        raise TypeError(f"encode() needs a KnnIR, got {type(ir).__name__}")
    if ir.sim_nnz > MAX_U32 or ir.n_users > MAX_U32 or ir.n_items > MAX_U32:
        raise FormatError("cannot encode: the model exceeds the .esb v2 limit of 2^32 entries")
    lo, hi = ir.rating_scale
    rating_enc, step, rating_bytes = _encode_ratings(ir.ratings, lo)
    sim_counts = np.diff(ir.sim_indptr)
    idx = ir.sim_indices.astype(np.int64)
    gaps = np.diff(idx, prepend=0) - 1
    starts = ir.sim_indptr[:-1][sim_counts > 0]
    gaps[starts] = idx[starts]
    dtype_code = _SIM_DTYPE_NAMES.index(ir.sim_dtype)
    sections: list[tuple[int, int, bytes]] = [
        (PARAMS, 0, struct.pack("<4d", ir.global_mean, lo, hi, step)),
        (SIM_ROWS, 1, _varint_encode(sim_counts.astype(_U64))),
        (SIM_INDICES, 1, _varint_encode(gaps.astype(_U64))),
        (SIM_VALUES, 0, ir.sim_values.astype(_SIM_DTYPES[dtype_code]).tobytes()),
    ]
    if ir.sim_scales is not None:
        sections.append((SIM_SCALES, 0, ir.sim_scales.astype("<f4").tobytes()))
    sections.append((YR_ROWS, 1, _varint_encode(np.diff(ir.yr_indptr).astype(_U64))))
    narrow = ir.n_x <= 1 << 16
    sections.append((YR_X, int(narrow), ir.yr_x.astype("<u2" if narrow else "<u4").tobytes()))
    sections.append((RATINGS, rating_enc, rating_bytes))
    if ir.means is not None:
        sections.append((MEANS, 0, ir.means.astype("<f8").tobytes()))
    if ir.sigmas is not None:
        sections.append((SIGMAS, 0, ir.sigmas.astype("<f8").tobytes()))
    if ir.bu is not None and ir.bi is not None:
        sections.append((BASELINES, 0, np.concatenate([ir.bu, ir.bi]).astype("<f8").tobytes()))
    sections.append((USER_IDS, *_encode_ids(ir.user_ids, "user")))
    sections.append((ITEM_IDS, *_encode_ids(ir.item_ids, "item")))
    if ir.provenance:
        sections.append((PROVENANCE, 0, _encode_provenance(ir.provenance)))

    fields = (
        ir.n_users,
        ir.n_items,
        ir.n_ratings,
        ir.k,
        ir.min_k,
        VARIANTS.index(ir.variant),
        dtype_code,
        FLAG_USER_BASED if ir.user_based else 0,
        MODEL_KIND_KNN,
        ir.sim_nnz,
    )
    return _assemble(VERSION, sections, fields)


def decode(buf: bytes | bytearray | memoryview) -> KnnIR:
    """Parse and fully verify version-2 ``.esb`` bytes; return the :class:`KnnIR`."""
    return _parse(buf)[0]


def verify(buf: bytes | bytearray | memoryview) -> dict[str, Any]:
    """Fully verify version-2 ``.esb`` bytes and describe them (``edgesparse inspect``)."""
    ir, size, secs = _parse(buf)
    return {
        "format": f".esb version {VERSION}",
        "model_kind": "knn",
        "bytes": size,
        "variant": ir.variant,
        "user_based": ir.user_based,
        "n_users": ir.n_users,
        "n_items": ir.n_items,
        "n_ratings": ir.n_ratings,
        "k": ir.k,
        "min_k": ir.min_k,
        "similarities": ir.sim_nnz,
        "similarity_dtype": ir.sim_dtype,
        "ratings": secs["ratings"]["encoding"],
        "rating_scale": list(ir.rating_scale),
        "global_mean": ir.global_mean,
        "sections": secs,
        "checksums": "OK",
        "provenance": dict(ir.provenance),
    }


def write(ir: KnnIR, path: str | os.PathLike[str]) -> int:
    """Encode ``ir`` and write it atomically; return the number of bytes written."""
    data = encode(ir)
    atomic_write_bytes(path, data)
    return len(data)


def read(path: str | os.PathLike[str]) -> KnnIR:
    """Read and fully verify a k-NN ``.esb`` file; errors name the path."""
    return _read_file(path, decode)


# ----------------------------------------------------------------------------------------
# Encoding helpers
# ----------------------------------------------------------------------------------------
def _encode_ratings(r: np.ndarray, lo: float) -> tuple[int, float, bytes]:
    """(encoding, step, bytes): uint8 codes when exact, else float32 when exact, else f64."""
    with np.errstate(all="ignore"):
        for step in _RATING_STEPS:
            codes = np.rint((r - lo) / step)
            if (
                r.size
                and codes.min() >= 0
                and codes.max() <= 255
                and np.array_equal(lo + codes * step, r)
            ):
                return 0, step, codes.astype(np.uint8).tobytes()
        r32 = r.astype(np.float32)
    if np.array_equal(r32.astype(np.float64), r):
        return 1, 0.0, r32.astype("<f4").tobytes()
    return 2, 0.0, r.astype("<f8").tobytes()


def _encode_ids(ids: tuple[Any, ...], what: str) -> tuple[int, bytes]:
    if all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in ids):
        try:
            v = np.array([int(i) for i in ids], dtype=np.int64)
        except OverflowError:
            raise FormatError(f"cannot encode: a {what} id does not fit 64 bits") from None
        return _ID_INT, _zigzag_encode(v)
    if all(isinstance(v, (float, np.floating)) for v in ids):
        return _ID_FLOAT, np.array(ids, dtype="<f8").tobytes()
    if all(isinstance(v, str) for v in ids):
        try:
            raw = [s.encode("utf-8") for s in ids]
        except UnicodeEncodeError:
            raise FormatError(f"cannot encode: a {what} id is not valid Unicode") from None
        return _ID_STR, _strings_encode(raw)
    kinds = sorted({type(v).__name__ for v in ids})
    raise FormatError(
        f"cannot encode: {what} ids must be all integers, all floats or all strings, got "
        f"{', '.join(kinds)} (convert the raw ids to one type before training)"
    )


# ----------------------------------------------------------------------------------------
# Decoding
# ----------------------------------------------------------------------------------------
def _parse(buf: bytes | bytearray | memoryview) -> tuple[KnnIR, int, dict[str, Any]]:
    return _parse_guarded(_parse_bytes, buf)


def _version_error(version: int) -> str | None:
    if version == VERSION:
        return None
    return (
        f"unsupported .esb version {version} at offset 8 for a k-NN model (k-NN "
        f"recommenders are version {VERSION}; version 1 holds a linear model)"
    )


def _parse_bytes(data: bytes) -> tuple[KnnIR, int, dict[str, Any]]:
    size = len(data)
    fields = _read_header(data, _version_error, _LAYOUT)
    (
        _,
        _,
        _,
        n_sec,
        n_users,
        n_items,
        n_ratings,
        k,
        min_k,
        variant_code,
        dtype_code,
        flags,
        kind_code,
        sim_nnz,
        file_size,
        res32,
        _,
    ) = fields
    if kind_code != MODEL_KIND_KNN:
        _fail(
            f"unknown model kind {kind_code} at offset 43 (version {VERSION} defines kind "
            f"{MODEL_KIND_KNN}, k-NN; was the file written by a newer edgesparse?)"
        )
    if variant_code >= len(VARIANTS):
        _fail(f"unknown k-NN variant code {variant_code} at offset 40")
    if dtype_code >= len(_SIM_DTYPES):
        _fail(f"unknown similarity dtype code {dtype_code} at offset 41")
    if flags & ~FLAG_USER_BASED:
        _fail(f"unknown flag bits 0x{flags & ~FLAG_USER_BASED:02x} at offset 42")
    if res32:
        _fail(f"reserved field at offset 56 is {res32}, expected 0")
    if n_users < 1:
        _fail("n_users at offset 16 is 0")
    if n_items < 1:
        _fail("n_items at offset 20 is 0")
    user_based = bool(flags & FLAG_USER_BASED)
    n_x, n_y = (n_users, n_items) if user_based else (n_items, n_users)
    if sim_nnz > n_x * n_x:
        _fail(f"sim_nnz at offset 44 is {sim_nnz}, more than {n_x} x {n_x}")
    variant = VARIANTS[variant_code]

    # -- section table ------------------------------------------------------------------
    secs, info = _read_table(data, n_sec, file_size, _LAYOUT)
    wanted = {
        SIM_SCALES: (dtype_code == 2, "similarities are uint8 (offset 41)"),
        MEANS: (variant in ("means", "zscore"), f"the variant (offset 40) is {variant!r}"),
        SIGMAS: (variant == "zscore", f"the variant (offset 40) is {variant!r}"),
        BASELINES: (variant == "baseline", f"the variant (offset 40) is {variant!r}"),
    }
    for kind, (needed, why) in wanted.items():
        if (kind in secs) != needed:
            _fail(
                f"section '{SECTION_NAMES[kind]}' must be "
                f"{'present' if needed else 'absent'} when {why}"
            )
    _check_section_crcs(data, n_sec, SECTION_NAMES)
    section, need = _section_access(data, secs, SECTION_NAMES)

    def floats(kind: int, n: int, what: str, *, positive: bool = False) -> np.ndarray:
        _, off, b = section(kind)
        need(kind, 8 * n, f"{n} float64 {what}")
        a = np.frombuffer(b, dtype="<f8").astype(np.float64)
        bad = ~np.isfinite(a) if not positive else ~(np.isfinite(a) & (a > 0))
        if np.any(bad):
            p = int(np.argmax(bad))
            _sfail(
                SECTION_NAMES[kind],
                off,
                f"value {float(a[p])!r} at position {p} must be finite"
                + (" and > 0" if positive else ""),
            )
        return a

    # -- params -------------------------------------------------------------------------
    rating_enc, off, _ = section(RATINGS)
    gm, lo, hi, step = floats(PARAMS, 4, "(global mean, rating low, rating high, step)").tolist()
    _, p_off, _ = section(PARAMS)
    if lo > hi:
        _sfail("params", p_off, f"rating scale low {lo!r} is above high {hi!r}")
    if (rating_enc == 0) != (step > 0) or (rating_enc == 0 and step not in _RATING_STEPS):
        _sfail(
            "params",
            p_off,
            f"rating step {step!r} does not fit the ratings encoding "
            f"({_ENCODINGS[RATINGS][rating_enc]}: step must be "
            f"{'1 or 0.5' if rating_enc == 0 else '0'})",
        )

    # -- similarities -------------------------------------------------------------------
    sim_indptr, counts = _rows(section(SIM_ROWS), n_x, sim_nnz, n_x, "sim_rows", "similarity")
    enc, off, b = section(SIM_INDICES)
    if b.size == sim_nnz and (b.size == 0 or int(b.max()) < 0x80):
        gaps: np.ndarray = b  # every gap fits one byte (dense rows): no varint temporaries
    else:
        gaps, err = _varint_decode(b, sim_nnz, 5)
        if err:
            _sfail("sim_indices", off, f"{err} (one column gap per similarity)")
    if gaps.size and int(gaps.max()) >= n_x:
        p = int(np.argmax(gaps >= n_x))
        _sfail("sim_indices", off, f"column gap {int(gaps[p])} at position {p} is >= {n_x}")
    # Columns from gaps in place, one array of sim_nnz int64 plus one temporary: a large
    # dense model must not cost many times its file size to read.
    starts = sim_indptr[:-1][counts > 0]
    first = gaps[starts].astype(np.int64)
    cols = gaps.astype(np.int64)
    del gaps
    cols += 1
    cols[starts] -= 1
    np.cumsum(cols, out=cols)
    base = cols[starts] - first  # running total before each non-empty row
    shift = np.zeros(sim_nnz, dtype=np.int64)
    shift[starts] = np.diff(base, prepend=0)
    np.cumsum(shift, out=shift)
    cols -= shift
    del shift
    if cols.size and int(cols.max()) >= n_x:
        p = int(np.argmax(cols >= n_x))
        _sfail("sim_indices", off, f"column {int(cols[p])} at position {p} is out of [0, {n_x})")
    _, off, b = section(SIM_VALUES)
    vdt = _SIM_DTYPES[dtype_code]
    need(SIM_VALUES, sim_nnz * vdt.itemsize, f"sim_nnz={sim_nnz} {_SIM_DTYPE_NAMES[dtype_code]}")
    values = np.frombuffer(b, dtype=vdt).astype(vdt.newbyteorder("="))
    bad = values == 0 if dtype_code == 2 else ~(np.isfinite(values) & (values > 0))
    if np.any(bad):
        p = int(np.argmax(bad))
        _sfail(
            "sim_values",
            off,
            f"similarity {values[p].item()!r} at position {p} is not allowed (only finite "
            "positive similarities are stored)",
        )
    scales = None
    if dtype_code == 2:
        _, off, b = section(SIM_SCALES)
        need(SIM_SCALES, 4 * n_x, f"{n_x} per-row float32 scales")
        scales = np.frombuffer(b, dtype="<f4").astype(np.float32)
        bad = ~(np.isfinite(scales) & (scales > 0))
        if np.any(bad):
            p = int(np.argmax(bad))
            _sfail("sim_scales", off, f"scale {float(scales[p])!r} at row {p} must be > 0")

    # -- ratings ------------------------------------------------------------------------
    yr_indptr, _ = _rows(section(YR_ROWS), n_y, n_ratings, None, "yr_rows", "rating")
    enc, off, b = section(YR_X)
    width = 2 if enc == 1 else 4
    need(YR_X, width * n_ratings, f"n_ratings={n_ratings} {_ENCODINGS[YR_X][enc]} rater ids")
    yr_x = np.frombuffer(b, dtype="<u2" if enc == 1 else "<u4").astype(np.int64)
    if yr_x.size and int(yr_x.max()) >= n_x:
        p = int(np.argmax(yr_x >= n_x))
        _sfail("yr_x", off, f"rater {int(yr_x[p])} at position {p} is out of [0, {n_x})")
    enc, off, b = section(RATINGS)
    if enc == 0:
        need(RATINGS, n_ratings, f"n_ratings={n_ratings} uint8 codes")
        ratings = lo + b.astype(np.float64) * step
    else:
        width = 4 if enc == 1 else 8
        need(RATINGS, width * n_ratings, f"n_ratings={n_ratings} {_ENCODINGS[RATINGS][enc]}")
        ratings = np.frombuffer(b, dtype="<f4" if enc == 1 else "<f8").astype(np.float64)
    if not np.all(np.isfinite(ratings)):
        p = int(np.argmax(~np.isfinite(ratings)))
        _sfail("ratings", off, f"rating {float(ratings[p])!r} at position {p} is not finite")

    means = floats(MEANS, n_x, "means") if MEANS in secs else None
    sigmas = floats(SIGMAS, n_x, "sigmas", positive=True) if SIGMAS in secs else None
    bu = bi = None
    if BASELINES in secs:
        both = floats(BASELINES, n_users + n_items, "baselines (users, then items)")
        bu, bi = both[:n_users], both[n_users:]
    user_ids = _decode_ids(section(USER_IDS), n_users, "user_ids", need, USER_IDS)
    item_ids = _decode_ids(section(ITEM_IDS), n_items, "item_ids", need, ITEM_IDS)
    provenance: dict[str, str] = {}
    if PROVENANCE in secs:
        _, off, b = section(PROVENANCE)
        provenance = _decode_provenance(b.tobytes(), off)
    try:
        ir = KnnIR(
            variant=variant,
            user_based=user_based,
            k=k,
            min_k=min_k,
            sim_indptr=sim_indptr,
            sim_indices=cols.astype(np.int32),
            sim_values=values,
            sim_scales=scales,
            yr_indptr=yr_indptr,
            yr_x=yr_x.astype(np.int32),
            ratings=ratings,
            global_mean=float(gm),
            rating_scale=(float(lo), float(hi)),
            user_ids=user_ids,
            item_ids=item_ids,
            means=means,
            sigmas=sigmas,
            bu=bu,
            bi=bi,
            provenance=provenance,
        )
    except IRError as exc:
        raise FormatError(f"corrupt .esb: {exc}") from None
    return ir, size, info


def _rows(
    sec: tuple[int, int, np.ndarray],
    n_rows: int,
    total: int,
    cap: int | None,
    name: str,
    what: str,
) -> tuple[np.ndarray, np.ndarray]:
    """Row lengths (varints) -> (indptr, counts), checked against ``total`` and ``cap``."""
    _, off, b = sec
    counts, err = _varint_decode(b, n_rows, 5)
    if err:
        _sfail(name, off, f"{err} (one row length per row)")
    if cap is not None and counts.size and int(counts.max()) > cap:
        r = int(np.argmax(counts > cap))
        _sfail(name, off, f"row {r} has {int(counts[r])} entries, more than {cap}")
    got = int(counts.sum(dtype=_U64))
    if got != total:
        _sfail(name, off, f"row lengths sum to {got}, the header says {total} {what} entries")
    counts = counts.astype(np.int64)
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    return indptr, counts


def _decode_ids(
    sec: tuple[int, int, np.ndarray], n: int, name: str, need: Any, kind: int
) -> tuple[Any, ...]:
    enc, off, b = sec
    where = f"section '{name}' at offset {off}"
    if enc == _ID_FLOAT:
        need(kind, 8 * n, f"{n} float64 ids")
        ids: list[Any] = np.frombuffer(b, dtype="<f8").astype(np.float64).tolist()
        if not all(math.isfinite(v) for v in ids):
            _fail(f"{where}: an id is not finite")
    elif enc == _ID_INT:
        zig, err = _varint_decode(b, n, 10)
        if err:
            _fail(f"{where}: {err} (one id per entry)")
        ids = _zigzag_decode(zig).tolist()
    else:
        # ids stay Python strings (a tuple, not a numpy array), so a trailing NUL survives
        ids = _strings_decode(b, n, name, off, "id", nul_ok=True)
    if len(set(ids)) != n:
        _fail(f"{where}: ids are not distinct (each raw id maps to one inner id)")
    return tuple(ids)
