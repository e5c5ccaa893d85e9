"""The numbers of a linear ``.esb`` payload (version 1): the ``values`` section (raw, or int8
rows mixed with int16 rows) and the ``exponents`` section (one power-of-two exponent per
column). Spec: ``docs/FORMAT.md``.

Decoders take ``need(n, what)``, which fails unless their section is exactly ``n`` bytes, and
fail with :func:`~edgesparse.formats.container.corrupt_section`. Numpy and the standard
library only.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable

import numpy as np

from edgesparse.counting import small_int_counts, used_columns
from edgesparse.errors import FormatError
from edgesparse.formats.codecs import ENC_RAW, varint_decode, varint_encode
from edgesparse.formats.container import corrupt_section
from edgesparse.ir import EXPONENT_RANGE, LinearIR

__all__ = [
    "DEFAULT_MAX_EXPONENT_FEATURES",
    "ENC_MIXED",
    "VALUE_DTYPES",
    "VALUE_DTYPE_NAMES",
    "decode_exponents",
    "decode_mixed_values",
    "decode_raw_values",
    "encode_exponents",
    "encode_values",
]

ENC_MIXED = 1
"""Values encoding 1: int8 rows with some int16 ("wide") rows."""
VALUE_DTYPES = (np.dtype("<f8"), np.dtype("<f4"), np.dtype("i1"))
"""Value dtype code (header byte 41) -> stored dtype."""
VALUE_DTYPE_NAMES = ("float64", "float32", "int8")

Need = Callable[[int, str], None]
_U64 = np.uint64


# ----------------------------------------------------------------------------------------
# Values
# ----------------------------------------------------------------------------------------
def encode_values(ir: LinearIR) -> tuple[int, int, bytes]:
    """(value dtype code, values encoding, section bytes): raw, or mixed widths when some rows
    need 16 bits (int16 values whose rows all fit int8 are written as plain int8)."""
    values = ir.values
    if values.dtype == np.int16:
        wide = ir.wide_rows
        if not wide.any():
            return 2, ENC_RAW, values.astype(np.int8).tobytes()
        counts = np.diff(ir.indptr)
        width = np.repeat(np.where(wide, 2, 1), counts)
        bitmap = np.packbits(wide, bitorder="little")
        start = bitmap.size + np.cumsum(width) - width
        out = np.zeros(bitmap.size + int(width.sum()), dtype=np.uint8)
        out[: bitmap.size] = bitmap
        raw = values.astype("<i2").view(np.uint8).reshape(-1, 2)
        out[start] = raw[:, 0]
        out[start[width == 2] + 1] = raw[width == 2, 1]
        return 2, ENC_MIXED, out.tobytes()
    code = VALUE_DTYPE_NAMES.index(str(values.dtype))
    return code, ENC_RAW, values.astype(VALUE_DTYPES[code]).tobytes()


def decode_raw_values(b: np.ndarray, off: int, dtype_code: int, nnz: int, need: Need) -> np.ndarray:
    """Values encoding 0: ``nnz`` values of the header's dtype, none 0, NaN, Inf or -128."""
    vdt = VALUE_DTYPES[dtype_code]
    need(nnz * vdt.itemsize, f"nnz={nnz} {VALUE_DTYPE_NAMES[dtype_code]} values")
    values = np.frombuffer(b, dtype=vdt).astype(vdt.newbyteorder("="))
    if values.size:
        bad = values == 0
        if values.dtype == np.int8:
            bad |= values == -128
        else:
            bad |= ~np.isfinite(values)
        if np.any(bad):
            p = int(np.argmax(bad))
            corrupt_section(
                "values",
                off,
                f"value {values[p].item()!r} at position {p} is not allowed "
                "(stored values are never 0, NaN, Inf or -128)",
            )
    return values


def _wide_row_bitmap(b: np.ndarray, off: int, n_out: int) -> np.ndarray:
    """The bitmap that starts a mixed-width values section: which rows are int16."""
    n_map = (n_out + 7) // 8
    if b.size < n_map:
        corrupt_section(
            "values", off, f"is {b.size} bytes, shorter than its {n_map}-byte wide-row bitmap"
        )
    bits = np.unpackbits(b[:n_map], bitorder="little")
    if bits[n_out:].any():
        corrupt_section("values", off, f"wide-row bitmap has bits set past n_outputs={n_out}")
    wide = bits[:n_out].astype(bool)
    if not wide.any():
        corrupt_section(
            "values", off, "mixed widths with no wide row (such a file uses encoding 0)"
        )
    return wide


def decode_mixed_values(b: np.ndarray, off: int, counts: np.ndarray, need: Need) -> np.ndarray:
    """Values encoding 1: a bitmap of wide rows, then i8 (narrow) or i16 LE (wide) values."""
    n_out = counts.size
    n_map = (n_out + 7) // 8
    wide = _wide_row_bitmap(b, off, n_out)
    lengths = counts.astype(np.int64)
    nnz, nnz_wide = int(lengths.sum()), int(lengths[wide].sum())
    need(
        n_map + nnz + nnz_wide,
        f"{n_map}-byte wide-row bitmap, then nnz={nnz} values of which {nnz_wide} are int16",
    )
    width = np.repeat(np.where(wide, 2, 1), lengths)
    start = n_map + np.cumsum(width) - width
    values = b[start].view(np.int8).astype(np.int16)
    two = width == 2
    hi = b[start[two] + 1].astype(np.uint16) << 8
    values[two] = (b[start[two]].astype(np.uint16) | hi).view(np.int16)
    bad = (values == 0) | (values == (np.where(two, -32768, -128)))
    if np.any(bad):
        p = int(np.argmax(bad))
        corrupt_section(
            "values",
            off,
            f"value {int(values[p])} at position {p} is not allowed (stored values are never 0, "
            f"-128 in an int8 row or -32768 in an int16 row)",
        )
    rows = np.repeat(np.arange(n_out), lengths)
    fits = np.bincount(rows[np.abs(values.astype(np.int32)) > 127], minlength=n_out) == 0
    if np.any(wide & fits):
        r = int(np.argmax(wide & fits))
        corrupt_section("values", off, f"row {r} is marked int16 but all its values fit int8")
    return values


# ----------------------------------------------------------------------------------------
# Column exponents
# ----------------------------------------------------------------------------------------
def encode_exponents(ir: LinearIR, *, listed: bool) -> tuple[int, bytes]:
    """The smaller of the two encodings of ``ir.col_exponents`` over the listed columns (the
    used ones when the blob has a column list, else every feature): one i8 each (0), or the
    exceptions to the most common exponent of the used columns (1)."""
    assert ir.col_exponents is not None
    used = used_columns(ir.indices, n_features=ir.n_features)
    per_listed = ir.col_exponents[used] if listed else ir.col_exponents
    dense = per_listed.astype("i1").tobytes()
    values, counts = small_int_counts(ir.col_exponents[used])
    # The most common; ties: the smallest, so the choice is unique (no weights at all: 0).
    default = int(values[np.argmax(counts)]) if used.size else 0
    pos_in_listed = np.arange(used.size) if listed else used
    exc = ir.col_exponents[used] != default
    positions = pos_in_listed[exc].astype(np.int64)
    gaps = np.diff(positions, prepend=-1) - 1
    sparse = (
        struct.pack("<Ib", int(positions.size), default)
        + ir.col_exponents[used][exc].astype("i1").tobytes()
        + varint_encode(gaps.astype(_U64))
    )
    return (0, dense) if len(dense) <= len(sparse) else (1, sparse)


DEFAULT_MAX_EXPONENT_FEATURES = 64 << 20
"""Most features a blob with column exponents may declare to this reader (default: the model
array cap, 64 MiB, since it holds one exponent byte per feature, unused ones included): a
290-byte blob declaring 2**31 - 1 features took 23 s and 4.2 GB to inspect (issue 16).
``EDGESPARSE_MAX_ARRAY_BYTES`` overrides, as for models."""


def _check_exponent_memory(n_feat: int) -> None:
    text = os.environ.get("EDGESPARSE_MAX_ARRAY_BYTES", "").strip()
    cap = int(text) if text.isdigit() and int(text) > 0 else DEFAULT_MAX_EXPONENT_FEATURES
    if n_feat > cap:
        raise FormatError(
            f"cannot read it here: it has column exponents and n_features={n_feat}, and this "
            f"reader holds one exponent byte per feature, more than the {cap} bytes of arrays "
            "edgesparse allows by default; if you trust the file, raise the limit with "
            "EDGESPARSE_MAX_ARRAY_BYTES=<bytes>"
        )


def decode_exponents(
    sec: tuple[int, int, np.ndarray],
    need: Need,
    *,
    used: np.ndarray | None,
    n_cols: int,
    n_feat: int,
    indices: np.ndarray,
) -> np.ndarray:
    """One int8 exponent per listed column, in [-126, 127]; 0 for every column no weight
    uses (one encoding per model). The IR checks the products ``scale * 2^e`` next."""
    enc, off, b = sec
    lo, hi = EXPONENT_RANGE
    _check_exponent_memory(n_feat)
    columns = np.arange(n_feat) if used is None else used
    if enc == 1:
        return _decode_exception_exponents(b, off, n_cols, columns, n_feat, indices)
    need(n_cols, f"{n_cols} int8 column exponents (one per used column)")
    exps = np.frombuffer(b, dtype="i1").astype(np.int8)
    bad = (exps < lo) | (exps > hi)
    if np.any(bad):
        p = int(np.argmax(bad))
        corrupt_section(
            "exponents", off, f"exponent {int(exps[p])} at position {p} is outside [{lo}, {hi}]"
        )
    full = np.zeros(n_feat, dtype=np.int8)
    full[columns] = exps
    stray = full.astype(bool)
    stray[indices] = False
    if np.any(stray):
        corrupt_section(
            "exponents",
            off,
            f"column {int(np.argmax(stray))} has no weights but a nonzero exponent",
        )
    return full


def _decode_exception_exponents(
    b: np.ndarray, off: int, n_cols: int, columns: np.ndarray, n_feat: int, indices: np.ndarray
) -> np.ndarray:
    """Encoding 1: u32 count k, i8 default, k i8 exponents, k varint gaps of listed-column
    positions. Used columns take the default unless listed; unused columns are 0 and may not
    be listed; a listed exponent differs from the default (one encoding per model)."""
    lo, hi = EXPONENT_RANGE

    def fail(msg: str) -> None:
        corrupt_section("exponents", off, msg)

    if b.size < 5:
        fail(f"is {b.size} bytes, too short for its 5-byte count and default")
    k = int(np.frombuffer(b[:4].tobytes(), dtype="<u4")[0])
    default = int(np.frombuffer(b[4:5].tobytes(), dtype="i1")[0])
    if not lo <= default <= hi:
        fail(f"default exponent {default} is outside [{lo}, {hi}]")
    if k > n_cols:
        fail(f"lists {k} exceptions, but there are only {n_cols} listed columns")
    if 5 + k > b.size:
        fail(f"is {b.size} bytes, too short for {k} exception exponents")
    exps = np.frombuffer(b[5 : 5 + k].tobytes(), dtype="i1").astype(np.int8)
    gaps, err = varint_decode(b[5 + k :], k, 5)
    if err:
        fail(f"{err} (one column gap per exception)")
    pos = np.cumsum(gaps.astype(np.int64) + 1) - 1
    if k and int(pos[-1]) >= n_cols:
        p = int(np.argmax(pos >= n_cols))
        fail(f"exception {p} names column position {int(pos[p])}, beyond the {n_cols} listed")
    bad = (exps < lo) | (exps > hi) | (exps == default)
    if np.any(bad):
        p = int(np.argmax(bad))
        fail(
            f"exception {p} has exponent {int(exps[p])}: outside [{lo}, {hi}] or equal to the "
            f"default {default}"
        )
    used = np.zeros(n_feat, dtype=bool)
    used[indices] = True
    listed_cols = columns[pos]
    if np.any(~used[listed_cols]):
        p = int(np.argmax(~used[listed_cols]))
        fail(f"column {int(listed_cols[p])} has no weights but an exception exponent")
    full = np.zeros(n_feat, dtype=np.int8)
    full[used] = default
    full[listed_cols] = exps
    return full
