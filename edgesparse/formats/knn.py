"""``.esb`` version 2: the k-NN recommender model kind (spec: docs/FORMAT.md, "Version 2").

Same container as version 1 (64-byte header, 16-byte section table, 8-byte aligned packed
sections, CRC32s; see :mod:`edgesparse.formats.container`), with its own header fields and section
kinds. Linear models stay version 1, so every version-1 reader keeps reading them and rejects a
k-NN blob by its version before interpreting anything else.

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
    varint_decode,
    varint_encode,
)
from edgesparse.formats.container import (
    KNN_VERSION,
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
from edgesparse.ir.knn import VARIANTS, KnnIR

__all__ = ["MODEL_KIND_KNN", "SECTION_NAMES", "VERSION", "decode", "encode", "verify", "write"]

VERSION = KNN_VERSION
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
    USER_IDS: ID_ENCODINGS,
    ITEM_IDS: ID_ENCODINGS,
    PROVENANCE: {0: "json"},
}
_REQUIRED = (PARAMS, SIM_ROWS, SIM_INDICES, SIM_VALUES, YR_ROWS, YR_X, RATINGS, USER_IDS, ITEM_IDS)
_LAYOUT = SectionLayout(SECTION_NAMES, _ENCODINGS, _REQUIRED)
_SIM_DTYPES = (np.dtype("<f8"), np.dtype("<f4"), np.dtype("u1"))
_SIM_DTYPE_NAMES = ("float64", "float32", "uint8")
_RATING_STEPS = (1.0, 0.5)  # integer and half-star scales fit a uint8 code exactly


# ----------------------------------------------------------------------------------------
# Public API
# ----------------------------------------------------------------------------------------
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
        (SIM_ROWS, 1, varint_encode(sim_counts.astype(_U64))),
        (SIM_INDICES, 1, varint_encode(gaps.astype(_U64))),
        (SIM_VALUES, 0, ir.sim_values.astype(_SIM_DTYPES[dtype_code]).tobytes()),
    ]
    if ir.sim_scales is not None:
        sections.append((SIM_SCALES, 0, ir.sim_scales.astype("<f4").tobytes()))
    sections.append((YR_ROWS, 1, varint_encode(np.diff(ir.yr_indptr).astype(_U64))))
    narrow = ir.n_x <= 1 << 16
    sections.append((YR_X, int(narrow), ir.yr_x.astype("<u2" if narrow else "<u4").tobytes()))
    sections.append((RATINGS, rating_enc, rating_bytes))
    if ir.means is not None:
        sections.append((MEANS, 0, ir.means.astype("<f8").tobytes()))
    if ir.sigmas is not None:
        sections.append((SIGMAS, 0, ir.sigmas.astype("<f8").tobytes()))
    if ir.bu is not None and ir.bi is not None:
        sections.append((BASELINES, 0, np.concatenate([ir.bu, ir.bi]).astype("<f8").tobytes()))
    sections.append((USER_IDS, *encode_ids(ir.user_ids, "user")))
    sections.append((ITEM_IDS, *encode_ids(ir.item_ids, "item")))
    if ir.provenance:
        sections.append((PROVENANCE, 0, encode_provenance(ir.provenance)))

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
    return assemble(VERSION, sections, fields)


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


# ----------------------------------------------------------------------------------------
# Decoding
# ----------------------------------------------------------------------------------------
def _parse(buf: bytes | bytearray | memoryview) -> tuple[KnnIR, int, dict[str, Any]]:
    return parse_guarded(_parse_bytes, buf)


class _Header(NamedTuple):
    """The version-2 header fields, checked."""

    n_sec: int
    n_users: int
    n_items: int
    n_ratings: int
    k: int
    min_k: int
    variant: str
    dtype_code: int
    user_based: bool
    sim_nnz: int
    file_size: int

    @property
    def n_x(self) -> int:
        """Rows of the similarity matrix: users when user-based, else items."""
        return self.n_users if self.user_based else self.n_items

    @property
    def n_y(self) -> int:
        """Rows of the ratings table: the other side."""
        return self.n_items if self.user_based else self.n_users


def _check_header(fields: tuple) -> _Header:
    """Check the version-2 header fields, in byte order."""
    _, _, _, n_sec, n_users, n_items, n_ratings, k, min_k = fields[:9]
    variant_code, dtype_code, flags, kind_code, sim_nnz, file_size, res32 = fields[9:16]
    if kind_code != MODEL_KIND_KNN:
        corrupt(
            f"unknown model kind {kind_code} at offset 43 (version {VERSION} defines kind "
            f"{MODEL_KIND_KNN}, k-NN; was the file written by a newer edgesparse?)"
        )
    if variant_code >= len(VARIANTS):
        corrupt(f"unknown k-NN variant code {variant_code} at offset 40")
    if dtype_code >= len(_SIM_DTYPES):
        corrupt(f"unknown similarity dtype code {dtype_code} at offset 41")
    if flags & ~FLAG_USER_BASED:
        corrupt(f"unknown flag bits 0x{flags & ~FLAG_USER_BASED:02x} at offset 42")
    if res32:
        corrupt(f"reserved field at offset 56 is {res32}, expected 0")
    if n_users < 1:
        corrupt("n_users at offset 16 is 0")
    if n_items < 1:
        corrupt("n_items at offset 20 is 0")
    hdr = _Header(
        n_sec,
        n_users,
        n_items,
        n_ratings,
        k,
        min_k,
        VARIANTS[variant_code],
        dtype_code,
        bool(flags & FLAG_USER_BASED),
        sim_nnz,
        file_size,
    )
    if sim_nnz > hdr.n_x * hdr.n_x:
        corrupt(f"sim_nnz at offset 44 is {sim_nnz}, more than {hdr.n_x} x {hdr.n_x}")
    return hdr


def _check_presence(secs: dict[int, Any], hdr: _Header) -> None:
    """The optional sections the header fields call for, and no others."""
    variant = hdr.variant
    wanted = {
        SIM_SCALES: (hdr.dtype_code == 2, "similarities are uint8 (offset 41)"),
        MEANS: (variant in ("means", "zscore"), f"the variant (offset 40) is {variant!r}"),
        SIGMAS: (variant == "zscore", f"the variant (offset 40) is {variant!r}"),
        BASELINES: (variant == "baseline", f"the variant (offset 40) is {variant!r}"),
    }
    for kind, (needed, why) in wanted.items():
        if (kind in secs) != needed:
            corrupt(
                f"section '{SECTION_NAMES[kind]}' must be "
                f"{'present' if needed else 'absent'} when {why}"
            )


def _floats(
    section: Callable, need: Callable, kind: int, n: int, what: str, *, positive: bool = False
) -> np.ndarray:
    """``n`` float64 values, finite (and > 0 when ``positive``)."""
    _, off, b = section(kind)
    need(kind, 8 * n, f"{n} float64 {what}")
    a = np.frombuffer(b, dtype="<f8").astype(np.float64)
    bad = ~np.isfinite(a) if not positive else ~(np.isfinite(a) & (a > 0))
    if np.any(bad):
        p = int(np.argmax(bad))
        corrupt_section(
            SECTION_NAMES[kind],
            off,
            f"value {float(a[p])!r} at position {p} must be finite"
            + (" and > 0" if positive else ""),
        )
    return a


def _decode_params(section: Callable, need: Callable) -> list[float]:
    """(global mean, rating low, rating high, step), the step fitting the ratings encoding."""
    rating_enc, _, _ = section(RATINGS)
    params = _floats(section, need, PARAMS, 4, "(global mean, rating low, rating high, step)")
    _, lo, hi, step = params.tolist()
    _, p_off, _ = section(PARAMS)
    if lo > hi:
        corrupt_section("params", p_off, f"rating scale low {lo!r} is above high {hi!r}")
    if (rating_enc == 0) != (step > 0) or (rating_enc == 0 and step not in _RATING_STEPS):
        corrupt_section(
            "params",
            p_off,
            f"rating step {step!r} does not fit the ratings encoding "
            f"({_ENCODINGS[RATINGS][rating_enc]}: step must be "
            f"{'1 or 0.5' if rating_enc == 0 else '0'})",
        )
    return params.tolist()


def _sim_columns(
    sec: tuple[int, int, np.ndarray], sim_indptr: np.ndarray, counts: np.ndarray, n_x: int
) -> np.ndarray:
    """Similarity columns from per-row gaps, each in [0, n_x)."""
    _, off, b = sec
    sim_nnz = int(sim_indptr[-1])
    if b.size == sim_nnz and (b.size == 0 or int(b.max()) < 0x80):
        gaps: np.ndarray = b  # every gap fits one byte (dense rows): no varint temporaries
    else:
        gaps, err = varint_decode(b, sim_nnz, 5)
        if err:
            corrupt_section("sim_indices", off, f"{err} (one column gap per similarity)")
    if gaps.size and int(gaps.max()) >= n_x:
        p = int(np.argmax(gaps >= n_x))
        corrupt_section(
            "sim_indices", off, f"column gap {int(gaps[p])} at position {p} is >= {n_x}"
        )
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
        corrupt_section(
            "sim_indices", off, f"column {int(cols[p])} at position {p} is out of [0, {n_x})"
        )
    return cols


def _sim_values(
    section: Callable, need: Callable, hdr: _Header
) -> tuple[np.ndarray, np.ndarray | None]:
    """Similarity values (finite, > 0) and, for uint8 ones, the per-row scales."""
    dtype_code, sim_nnz, n_x = hdr.dtype_code, hdr.sim_nnz, hdr.n_x
    _, off, b = section(SIM_VALUES)
    vdt = _SIM_DTYPES[dtype_code]
    need(SIM_VALUES, sim_nnz * vdt.itemsize, f"sim_nnz={sim_nnz} {_SIM_DTYPE_NAMES[dtype_code]}")
    values = np.frombuffer(b, dtype=vdt).astype(vdt.newbyteorder("="))
    bad = values == 0 if dtype_code == 2 else ~(np.isfinite(values) & (values > 0))
    if np.any(bad):
        p = int(np.argmax(bad))
        corrupt_section(
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
            corrupt_section("sim_scales", off, f"scale {float(scales[p])!r} at row {p} must be > 0")
    return values, scales


def _decode_ratings(
    section: Callable, need: Callable, hdr: _Header, lo: float, step: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(yr_indptr, yr_x, ratings): who rated what, and how."""
    n_ratings, n_x = hdr.n_ratings, hdr.n_x
    yr_indptr, _ = _rows(section(YR_ROWS), hdr.n_y, n_ratings, None, "yr_rows", "rating")
    enc, off, b = section(YR_X)
    width = 2 if enc == 1 else 4
    need(YR_X, width * n_ratings, f"n_ratings={n_ratings} {_ENCODINGS[YR_X][enc]} rater ids")
    yr_x = np.frombuffer(b, dtype="<u2" if enc == 1 else "<u4").astype(np.int64)
    if yr_x.size and int(yr_x.max()) >= n_x:
        p = int(np.argmax(yr_x >= n_x))
        corrupt_section("yr_x", off, f"rater {int(yr_x[p])} at position {p} is out of [0, {n_x})")
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
        corrupt_section(
            "ratings", off, f"rating {float(ratings[p])!r} at position {p} is not finite"
        )
    return yr_indptr, yr_x, ratings


def _decode_per_entity(
    section: Callable, need: Callable, secs: dict[int, Any], hdr: _Header
) -> dict[str, Any]:
    """The optional means, sigmas and baselines, the ids and the provenance (KnnIR fields)."""
    n_x, n_users, n_items = hdr.n_x, hdr.n_users, hdr.n_items
    out: dict[str, Any] = {"means": None, "sigmas": None, "bu": None, "bi": None}
    if MEANS in secs:
        out["means"] = _floats(section, need, MEANS, n_x, "means")
    if SIGMAS in secs:
        out["sigmas"] = _floats(section, need, SIGMAS, n_x, "sigmas", positive=True)
    if BASELINES in secs:
        both = _floats(section, need, BASELINES, n_users + n_items, "baselines (users, then items)")
        out["bu"], out["bi"] = both[:n_users], both[n_users:]
    out["user_ids"] = decode_ids(section(USER_IDS), n_users, "user_ids", need, USER_IDS)
    out["item_ids"] = decode_ids(section(ITEM_IDS), n_items, "item_ids", need, ITEM_IDS)
    out["provenance"] = {}
    if PROVENANCE in secs:
        _, off, b = section(PROVENANCE)
        out["provenance"] = decode_provenance(b.tobytes(), off)
    return out


def _parse_bytes(data: bytes) -> tuple[KnnIR, int, dict[str, Any]]:
    size = len(data)
    hdr = _check_header(read_header(data, reader=BlobKind.ESB_KNN, layout=_LAYOUT))
    secs, info = read_table(data, n_sec=hdr.n_sec, file_size=hdr.file_size, layout=_LAYOUT)
    _check_presence(secs, hdr)
    check_section_crcs(data, hdr.n_sec, SECTION_NAMES)
    section, need = section_access(data, secs, SECTION_NAMES)

    gm, lo, hi, step = _decode_params(section, need)
    n_x = hdr.n_x
    sim_indptr, counts = _rows(section(SIM_ROWS), n_x, hdr.sim_nnz, n_x, "sim_rows", "similarity")
    cols = _sim_columns(section(SIM_INDICES), sim_indptr, counts, n_x)
    values, scales = _sim_values(section, need, hdr)
    yr_indptr, yr_x, ratings = _decode_ratings(section, need, hdr, lo, step)
    rest = _decode_per_entity(section, need, secs, hdr)
    try:
        ir = KnnIR(
            variant=hdr.variant,
            user_based=hdr.user_based,
            k=hdr.k,
            min_k=hdr.min_k,
            sim_indptr=sim_indptr,
            sim_indices=cols.astype(np.int32),
            sim_values=values,
            sim_scales=scales,
            yr_indptr=yr_indptr,
            yr_x=yr_x.astype(np.int32),
            ratings=ratings,
            global_mean=float(gm),
            rating_scale=(float(lo), float(hi)),
            **rest,
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
    counts, err = varint_decode(b, n_rows, 5)
    if err:
        corrupt_section(name, off, f"{err} (one row length per row)")
    if cap is not None and counts.size and int(counts.max()) > cap:
        r = int(np.argmax(counts > cap))
        corrupt_section(name, off, f"row {r} has {int(counts[r])} entries, more than {cap}")
    got = int(counts.sum(dtype=_U64))
    if got != total:
        corrupt_section(
            name, off, f"row lengths sum to {got}, the header says {total} {what} entries"
        )
    counts = counts.astype(np.int64)
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    return indptr, counts
