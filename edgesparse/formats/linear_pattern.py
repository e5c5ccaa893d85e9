"""The sparsity pattern of a linear ``.esb`` payload (version 1): the ``columns`` and
``indices`` sections. Spec: ``docs/FORMAT.md``.

Column indices are stored in whichever of a few layouts is smallest for the model at hand
(chosen at write time and recorded in the section's encoding field): an optional list of the
*used* columns (LEB128 gaps, a bitmap, or Elias-Fano), then the sparsity pattern over those
columns (raw int32, LEB128 gaps per row, a row-major bitmap, or one Elias-Fano sequence).

Numpy and the standard library only.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from edgesparse.counting import used_columns
from edgesparse.formats.codecs import (
    ENC_BITMAP,
    ENC_EF,
    ENC_RAW,
    ENC_VARINT,
    bitmap_encode,
    decode_sorted,
    ef_encode,
    ef_size,
    row_gaps,
    varint_decode,
    varint_encode,
    varint_lengths,
)
from edgesparse.formats.container import ENTRY_SIZE, align, corrupt_section
from edgesparse.formats.linear_values import encode_exponents
from edgesparse.ir import LinearIR

__all__ = ["COLUMN_ENCODINGS", "INDEX_ENCODINGS", "decode_indices", "encode_pattern"]

COLUMN_ENCODINGS = {ENC_VARINT: "varint", ENC_BITMAP: "bitmap", ENC_EF: "eliasfano"}
"""Layouts of the list of used columns (encoding code -> name)."""
INDEX_ENCODINGS = {
    ENC_RAW: "raw",
    ENC_VARINT: "varint",
    ENC_BITMAP: "bitmap",
    ENC_EF: "eliasfano",
}
"""Layouts of the pattern over the listed columns (encoding code -> name)."""

_U64 = np.uint64


# ----------------------------------------------------------------------------------------
# Encoding
# ----------------------------------------------------------------------------------------
def _index_sizes(ir: LinearIR, local: np.ndarray, n_cols: int, starts: np.ndarray) -> dict:
    """Bytes of the indices section in each layout, over ``n_cols`` listed columns."""
    n_out, nnz = ir.n_outputs, ir.nnz
    sizes = {ENC_RAW: 4 * nnz, ENC_VARINT: int(varint_lengths(row_gaps(local, starts)).sum())}
    if n_out * n_cols < 1 << 62:  # the decoder's limit for flat positions
        sizes[ENC_BITMAP] = -(-n_out * n_cols // 8)
        sizes[ENC_EF] = ef_size(nnz, n_out * n_cols) if nnz else 0
    return sizes


def _choose_layout(
    ir: LinearIR, columns: str, indices: str, cols: np.ndarray, starts: np.ndarray
) -> tuple[int | None, int, int, np.ndarray | None]:
    """(column encoding or None, index encoding, listed columns, the used columns): the
    smallest layout allowed by ``columns`` / ``indices``, ties to the first candidate."""
    n_feat = ir.n_features
    # Candidate A: no column list; candidate B: list of used columns + local indices.
    # Column exponents (one byte per listed column) count with the layout that lists them.
    exp_costs: dict[bool, int] = {}

    def exp_cost(listed: bool) -> int:
        if ir.col_exponents is None:
            return 0
        if listed not in exp_costs:
            exp_costs[listed] = ENTRY_SIZE + align(len(encode_exponents(ir, listed=listed)[1]))
        return exp_costs[listed]

    cands: list[tuple[int, int, int | None, int, int]] = []  # (total, order, col_enc, idx_enc, n)
    want_idx = [k for k, v in INDEX_ENCODINGS.items() if indices in ("auto", v)]
    if columns in ("auto", "all"):
        sizes = _index_sizes(ir, cols, n_feat, starts)
        for k in want_idx:
            if k in sizes:
                cands.append((align(sizes[k]) + exp_cost(False), len(cands), None, k, n_feat))
    used = None
    if columns != "all":
        used = used_columns(cols, n_features=n_feat)
        csizes = {
            ENC_VARINT: int(varint_lengths(row_gaps(used, np.zeros(1, np.int64))).sum()),
            ENC_BITMAP: -(-n_feat // 8),
        }
        csizes[ENC_EF] = ef_size(used.size, n_feat) if used.size else 0
        sizes = _index_sizes(ir, np.searchsorted(used, cols), used.size, starts)
        for ck, csize in csizes.items():
            if columns not in ("auto", COLUMN_ENCODINGS[ck]):
                continue
            for k in want_idx:
                if k in sizes:
                    total = ENTRY_SIZE + align(csize) + align(sizes[k])
                    total += exp_cost(True)
                    cands.append((total, len(cands), ck, k, int(used.size)))
    if not cands:
        raise ValueError(f"layout columns={columns!r}, indices={indices!r} cannot hold this model")
    _, _, col_enc, idx_enc, n_cols = min(cands)
    return col_enc, idx_enc, n_cols, used


def encode_pattern(
    ir: LinearIR, *, columns: str, indices: str
) -> tuple[int | None, bytes, int, int, bytes]:
    """Pick (or apply the forced) column/index layout of ``ir``'s pattern.

    Returns (column encoding or None for no column list, its bytes, the number of listed
    columns, the index encoding, its bytes).
    """
    n_out, n_feat = ir.n_outputs, ir.n_features
    cols = ir.indices.astype(np.int64)
    starts = ir.indptr[:-1][np.diff(ir.indptr) > 0]
    col_enc, idx_enc, n_cols, used = _choose_layout(ir, columns, indices, cols, starts)

    col_bytes = b""
    if col_enc is None:
        pattern = cols
    else:
        assert used is not None
        pattern = np.searchsorted(used, cols)
        if col_enc == ENC_VARINT:
            col_bytes = varint_encode(row_gaps(used, np.zeros(1, np.int64)))
        elif col_enc == ENC_BITMAP:
            col_bytes = bitmap_encode(used, n_feat)
        else:
            col_bytes = ef_encode(used.astype(_U64), n_feat)
    if idx_enc == ENC_RAW:
        idx_bytes = pattern.astype("<i4").tobytes()
    elif idx_enc == ENC_VARINT:
        idx_bytes = varint_encode(row_gaps(pattern, starts))
    else:
        flat = ir.row_ids() * n_cols + pattern
        if idx_enc == ENC_BITMAP:
            idx_bytes = bitmap_encode(flat, n_out * n_cols)
        else:
            idx_bytes = ef_encode(flat.astype(_U64), n_out * n_cols)
    return col_enc, col_bytes, n_cols, idx_enc, idx_bytes


# ----------------------------------------------------------------------------------------
# Decoding
# ----------------------------------------------------------------------------------------
def decode_indices(
    sec: tuple[int, int, np.ndarray],
    need: Callable[[int, str], None],
    *,
    counts: np.ndarray,
    indptr: np.ndarray,
    n_cols: int,
    nnz: int,
) -> np.ndarray:
    """The ``indices`` section: each nonzero's position among the listed columns (int64),
    strictly increasing within a row. ``need(n, what)`` fails unless the section is ``n``
    bytes; ``counts`` are the checked row lengths."""
    enc, off, b = sec
    starts = indptr[:-1][counts > 0]
    if enc == ENC_RAW:
        need(4 * nnz, f"nnz={nnz} int32 column indices")
        return _raw_indices(b, off, n_cols, starts)
    if enc == ENC_VARINT:
        return _varint_indices(b, off, n_cols, nnz, counts, starts)
    return _flat_indices(b, off, enc, n_cols, nnz, counts)


def _raw_indices(b: np.ndarray, off: int, n_cols: int, starts: np.ndarray) -> np.ndarray:
    local = np.frombuffer(b, dtype="<i4").astype(np.int64)
    if local.size:
        bad = (local < 0) | (local >= n_cols)
        if np.any(bad):
            p = int(np.argmax(bad))
            corrupt_section(
                "indices",
                off,
                f"column index {int(local[p])} at position {p} is out of range [0, {n_cols})",
            )
        step = np.diff(local) <= 0
        step[starts[1:] - 1] = False
        if np.any(step):
            p = int(np.argmax(step)) + 1
            corrupt_section(
                "indices",
                off,
                f"column indices are not strictly increasing within a row at position {p}",
            )
    return local


def _varint_indices(
    b: np.ndarray, off: int, n_cols: int, nnz: int, counts: np.ndarray, starts: np.ndarray
) -> np.ndarray:
    gaps, err = varint_decode(b, nnz, 5)
    if err:
        corrupt_section("indices", off, f"{err} (one column gap per nonzero)")
    if gaps.size and int(gaps.max()) >= n_cols:
        p = int(np.argmax(gaps >= n_cols))
        corrupt_section(
            "indices",
            off,
            f"column gap {int(gaps[p])} at position {p} is out of range [0, {n_cols})",
        )
    # In place, in the gaps' own array (the load's peak memory): steps, then running sums,
    # then each row's running sum minus the sum before the row.
    first_gaps = gaps[starts]
    local_u = gaps
    local_u += _U64(1)
    local_u[starts] = first_gaps
    np.cumsum(local_u, out=local_u)
    base = np.zeros(counts.size, dtype=_U64)
    base[counts > 0] = local_u[starts] - first_gaps
    local_u -= np.repeat(base, counts.astype(np.int64))
    if local_u.size and int(local_u.max()) >= n_cols:
        p = int(np.argmax(local_u >= n_cols))
        corrupt_section(
            "indices",
            off,
            f"column index {int(local_u[p])} at position {p} is out of range [0, {n_cols})",
        )
    # Below n_cols < 2^63: the same bits read as int64, no copy.
    return local_u.view(np.int64)


def _flat_indices(
    b: np.ndarray, off: int, enc: int, n_cols: int, nnz: int, counts: np.ndarray
) -> np.ndarray:
    """Bitmap or Elias-Fano: one increasing sequence of row-major flat positions."""
    n_out = counts.size
    universe = n_out * n_cols
    if universe >= 1 << 62:
        corrupt_section("indices", off, f"n_outputs x n_columns is too large for encoding {enc}")
    flat = decode_sorted(b, enc, nnz, universe, off, "indices", "nonzero")
    if n_cols:
        # Row and column of each position, the column in place of the position (the load's
        # peak memory). divmod, not // and a multiply: numpy's floor-division loops are 1 MiB
        # of code a device process maps for nothing else (issue 19).
        rows_of = np.empty_like(flat)  # below n_out: the same bits as int64
        np.divmod(flat, _U64(n_cols), out=(rows_of, flat))
        got = np.bincount(rows_of.view(np.int64), minlength=n_out)
    else:
        got = np.zeros(n_out, dtype=np.int64)
    if not np.array_equal(got, counts.astype(np.int64)):
        r = int(np.argmax(got != counts.astype(np.int64)))
        corrupt_section(
            "indices",
            off,
            f"row {r} has {int(got[r])} entries, section 'rows' says {int(counts[r])}",
        )
    if not n_cols:
        return flat.astype(np.int64)
    return flat.view(np.int64)  # below n_cols
