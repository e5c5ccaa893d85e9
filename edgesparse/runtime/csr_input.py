"""CSR input to the numpy runtime's linear model: plain functions over explicit arrays.
:class:`~edgesparse.runtime.model.Model` owns the arrays they read (a :class:`CsrWeights`,
built on the first CSR batch) and calls :func:`csr_scores` for a batch and
:func:`one_row_scores` for a scipy CSR matrix of one row.

The weights are a dense block with one row per used input column and a final zero row;
input columns map to block rows directly (every column used), through a lookup table (the
smallest unsigned type that holds the block's row count: 2 bytes a feature on the text
model), or by a binary search (too wide for a table); unused columns map to the zero row.
A sparse-column model gets such a block of its used columns when it takes at most 4 MiB or
no more than its sparse layout; else each input nonzero expands to its column's weights
(:func:`~edgesparse.runtime.csr_sums.expanded_sums`).

A batch is read in pieces of about ``_CSR_RUN_NNZ`` nonzeros (at most twice that): runs of
whole rows, and a row longer than that in pieces of it whose sums are added in order, so
every temporary array is sized by a piece, not by the batch nor by its longest row (issue
19, goal 2: predict needs the input, the output, the model and a bounded workspace). Within
a piece the kernel is chosen by row length (:mod:`edgesparse.runtime.csr_sums`): one gather
and one segment sum for a small run, products added into their cells for rows of a few
nonzeros, rows padded to one length and one batched ``matmul``, or segment sums for a few
long rows among short ones.

NaN/inf: a value in a column with a weight reaches a score (checked by the model); values
are checked here where a kernel could skip them (a BLAS product may skip a zero weight, the
expanding kernel drops unused columns unread).

Imports only numpy and the standard library: this is what runs on the device.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from edgesparse.ir import LinearIR
from edgesparse.runtime.checks import check_finite, fp_quiet, fp_restore
from edgesparse.runtime.csr_sums import expanded_sums, padded_rows, scattered_sums, segment_sums
from edgesparse.runtime.layout import Columns

__all__ = [
    "CsrWeights",
    "column_table",
    "csr_scores",
    "one_row_scores",
    "piece_bounds",
    "positions",
    "used_block",
]

# CSR input is read in pieces of about this many nonzeros (a long row in pieces of it).
_CSR_RUN_NNZ = 1 << 16
# A run of CSR input to a weight block of at most this many rows whose products fit in this
# many cells is one gather and one segment sum (the fewest numpy calls)...
_SEGMENT_ROWS = 128
_SEGMENT_CELLS = 1 << 14
# ...and a bigger run with fewer than this many nonzeros a row adds its products in place,
# this many products at a time.
_SHORT_ROWS = 4
_SCATTER_CELLS = 1 << 12
# Longer rows are summed in runs of about this many gathered weights.
_RUN_CELLS = 1 << 18
# The expanding kernel expands at most about this many (output, weight) pairs at once.
_GATHER_CHUNK = 1 << 15
# Input columns are mapped to block rows by a table when there are at most this many.
_POS_MAP_FEATURES = 1 << 20
# A sparse-column model meets CSR input through a dense block of its used columns when it has
# at most this many cells (4 MiB in float32), or when its bytes are at most this times the
# bytes of the model's sparse layout (so the block at most doubles the model's memory;
# expanding each input nonzero to its column's weights is 3-4x slower).
_CSR_BLOCK_CELLS = 1 << 20
_CSR_BLOCK_LAYOUT = 1.0
# The used-column block is filled from the IR about this many nonzeros at a time.
_FILL_NNZ = 1 << 13


class CsrWeights(NamedTuple):
    """What the CSR kernels read of a model."""

    block: np.ndarray | None  # (n_used + 1, n_outputs), last row 0; None: expand columns
    rows: np.ndarray | None  # block[:-1] when input columns are block rows (every one used)
    table: np.ndarray | None  # input column -> block row (n_used: unused), or None
    used: np.ndarray | None  # the sorted used columns; None when every column is a block row
    columns: Columns | None  # the by-column layout, read when there is no block
    n_outputs: int
    dtype: np.dtype

    def scores(
        self, data: np.ndarray, indices: np.ndarray, indptr: np.ndarray, n_rows: int
    ) -> np.ndarray:
        """:func:`csr_scores` with these weights."""
        return csr_scores(data, indices, indptr, n_rows, weights=self)

    def one_row(
        self, data: np.ndarray, indices: np.ndarray, *, bias: np.ndarray
    ) -> np.ndarray | None:
        """:func:`one_row_scores` with these weights."""
        return one_row_scores(data, indices, weights=self, bias=bias)


def used_block(
    ir: LinearIR, *, used: np.ndarray, dtype: np.dtype, layout_bytes: int
) -> np.ndarray | None:
    """A sparse-column model's dense block of its ``used`` columns (plus the zero row) in
    ``dtype``, when it is small or no bigger than ``layout_bytes``; else None."""
    cells = used.size * ir.n_outputs
    if cells > _CSR_BLOCK_CELLS and cells * dtype.itemsize > _CSR_BLOCK_LAYOUT * layout_bytes:
        return None
    block = np.zeros((used.size + 1, ir.n_outputs), dtype=dtype)
    _fill(block, ir, used=used, values=lambda rows, a, b: ir.real_values(dtype=dtype, rows=rows))
    return block


def _fill(
    block: np.ndarray,
    ir: LinearIR,
    *,
    used: np.ndarray,
    values: Callable[[slice, int, int], np.ndarray],
) -> None:
    """Put ``values(rows, a, b)`` (output ``rows``' stored values, nonzeros ``a:b``) into
    ``block``'s cells (block row: the column's place in ``used``), a run of output rows of
    about _FILL_NNZ nonzeros at a time: no int64 positions or float weights of every nonzero
    at once (0.76 MB of int64 indexing on the text model, beside the block)."""
    indptr = ir.indptr
    r0 = 0
    while r0 < ir.n_outputs:
        r1 = int(np.searchsorted(indptr, indptr[r0] + _FILL_NNZ, side="right")) - 1
        r1 = min(ir.n_outputs, max(r1, r0 + 1))
        a, b = int(indptr[r0]), int(indptr[r1])
        if b > a:
            pos = np.searchsorted(used, ir.indices[a:b])
            cols = np.arange(r0, r1, dtype=np.intp).repeat(np.diff(indptr[r0 : r1 + 1]))
            block[pos, cols] = values(slice(r0, r1), a, b)
        r0 = r1


def column_table(used: np.ndarray, *, n_features: int) -> np.ndarray | None:
    """Input column -> block row (``used.size``, the zero row, for unused columns), in the
    smallest unsigned type that holds ``used.size``; None when too wide for a table."""
    if n_features > _POS_MAP_FEATURES:
        return None
    n_used = used.size
    table = np.full(n_features, n_used, dtype=np.min_scalar_type(n_used))
    table[used] = np.arange(n_used, dtype=table.dtype)
    return table


def positions(indices: np.ndarray, *, table: np.ndarray | None, used: np.ndarray) -> np.ndarray:
    """The block row of each input column: ``table`` if given, else a binary search of the
    sorted ``used`` columns (``used.size``, the zero row, for the others)."""
    if table is not None:
        return table[indices]
    pos = np.searchsorted(used, indices)
    hit = pos < used.size
    hit[hit] = used[pos[hit]] == indices[hit]
    pos[~hit] = used.size
    return pos


def one_row_scores(
    data: np.ndarray, indices: np.ndarray, *, weights: CsrWeights, bias: np.ndarray
) -> np.ndarray | None:
    """One CSR row's ``(n_outputs,)`` scores, bias added, as :func:`csr_scores` gives them; or
    None (no block or table, an index outside the table, or a score not finite or too large:
    the general path then checks it all and says what is wrong). A row longer than a piece
    is summed a piece at a time, as :func:`csr_scores` does.

    ``indices`` index a table of exactly ``n_features`` rows (the block's rows, or the column
    table), so ``take`` raises IndexError outside ``[0, n_features)``; unsigned 32-bit views
    of negative indices are huge. NaN/inf in the values are found by one dot of them with
    themselves, added to the scores' own."""
    if weights.block is None or (weights.rows is None and weights.table is None):
        return None  # no block, or too wide for a table: the general path's binary search
    token = fp_quiet()
    try:
        if data.size > _CSR_RUN_NNZ:  # a long row: its pieces' sums added in order
            s = _long_row_sums(data, indices, weights)
        elif weights.rows is not None:  # inline: at batch 1 every call counts
            s = data.astype(weights.dtype, copy=False).dot(weights.rows.take(indices, axis=0))
        else:
            gathered = weights.block.take(weights.table.take(indices), axis=0)
            s = data.astype(weights.dtype, copy=False).dot(gathered)
        s += bias
        if not math.isfinite(s.dot(s) + data.dot(data)):
            return None
    except IndexError:
        return None
    finally:
        fp_restore(token)
    return s


def _long_row_sums(data: np.ndarray, indices: np.ndarray, weights: CsrWeights) -> np.ndarray:
    """One row's ``data @ W[indices]`` off the block in pieces of _CSR_RUN_NNZ nonzeros (a
    bounded gather), their sums added in order as :func:`csr_scores` adds them."""
    rows, table = weights.rows, weights.table
    if rows is None:
        assert weights.block is not None and table is not None
        rows = weights.block
    s = np.zeros(weights.n_outputs, dtype=weights.dtype)
    for a in range(0, data.size, _CSR_RUN_NNZ):
        idx = indices[a : a + _CSR_RUN_NNZ]
        pos = idx if table is None else table.take(idx)
        x = data[a : a + _CSR_RUN_NNZ].astype(weights.dtype, copy=False)
        s += x.dot(rows.take(pos, axis=0))  # a piece's gathered weights freed before the next
    return s


def csr_scores(
    data: np.ndarray, indices: np.ndarray, indptr: np.ndarray, n_rows: int, *, weights: CsrWeights
) -> np.ndarray:
    """``(n_rows, n_outputs)`` sums of each CSR row's values times its columns' weights (no
    bias), in ``weights.dtype`` (``indptr`` intp, from 0), a bounded piece at a time."""
    nnz = int(indptr[-1])
    if nnz <= _CSR_RUN_NNZ:
        return _run(data, indices, indptr, n_rows, weights)
    out = np.empty((n_rows, weights.n_outputs), dtype=weights.dtype)
    for r0, r1, a, b in piece_bounds(indptr, n_rows=n_rows, piece_nnz=_CSR_RUN_NNZ):
        ptr = indptr[r0 : r1 + 1] - a
        ptr[0], ptr[-1] = 0, b - a  # a row cut at a piece's edge: its part in the piece
        sums = _run(data[a:b], indices[a:b], ptr, r1 - r0, weights)
        if a > indptr[r0]:  # the piece starts inside a row: add to its earlier pieces' sums
            out[r0] += sums[0]
            out[r0 + 1 : r1] = sums[1:]
        else:
            out[r0:r1] = sums
    return out


def piece_bounds(
    indptr: np.ndarray, *, n_rows: int, piece_nnz: int
) -> list[tuple[int, int, int, int]]:
    """``(r0, r1, a, b)`` per piece: nonzeros ``[a, b)`` of rows ``[r0, r1)``, in order,
    together covering every row and nonzero once; each piece is under ``2 * piece_nnz``
    nonzeros. Pieces are cut at the start of the row holding each multiple ``m`` of
    ``piece_nnz``, or at ``m`` itself when that row started ``piece_nnz`` or more before
    ``m`` (a long row: it is cut inside, and its first row ``r0`` of the next piece is the
    same as the last row ``r1 - 1`` of the one before). Empty rows go with the piece before
    them (leading ones with the first)."""
    nnz = int(indptr[-1])
    marks = np.arange(0, nnz, piece_nnz, dtype=np.intp)
    rows = np.searchsorted(indptr, marks, side="right") - 1  # the row holding each mark
    starts = indptr[rows]
    inside = starts <= marks - piece_nnz  # cut inside a long row
    cuts = np.where(inside, marks, starts)
    rows[0], cuts[0] = 0, 0
    ends = rows + inside  # a row cut inside is in the pieces on both sides
    r0s, cut_list = rows.tolist(), cuts.tolist()
    r1s = [*ends[1:].tolist(), n_rows]
    return list(zip(r0s, r1s, cut_list, [*cut_list[1:], nnz], strict=True))


def _run(
    data: np.ndarray, indices: np.ndarray, indptr: np.ndarray, n_rows: int, w: CsrWeights
) -> np.ndarray:
    """One piece's sums (:func:`csr_scores` without the pieces)."""
    if w.block is None:
        return _expanded_run(data, indices, indptr, n_rows, w)
    # Each input nonzero scales its column's weight row (unused columns: the zero row).
    pos = indices if w.used is None else positions(indices, table=w.table, used=w.used)
    # A BLAS product could skip a zero weight and a NaN with it: check the values here
    # (as given: a finite value beyond float32 is an overflow, found on the scores).
    if data.dtype.kind == "f" and not math.isfinite(data.dot(data)):
        check_finite(data)
    x = data.astype(w.dtype, copy=False)
    if n_rows == 1:
        return x.dot(w.block.take(pos, axis=0)).reshape(1, -1)
    nnz = int(indptr[-1])
    if n_rows <= _SEGMENT_ROWS and nnz * w.n_outputs <= _SEGMENT_CELLS:  # one gather, one sum
        return segment_sums(w.block, pos=pos, x=x, ptr=indptr)
    return _row_runs(w.block, pos=pos, x=x, indptr=indptr, n_rows=n_rows)


def _row_runs(
    block: np.ndarray, *, pos: np.ndarray, x: np.ndarray, indptr: np.ndarray, n_rows: int
) -> np.ndarray:
    """A piece's sums in runs of rows, each about _RUN_CELLS gathered weights (a bounded
    workspace); rows of a few nonzeros in runs of about _SCATTER_CELLS products (a scatter's
    index arrays take 3x the bytes of its products)."""
    n_out = block.shape[1]
    nnz = int(indptr[-1])
    lens = np.diff(indptr)
    out = np.empty((n_rows, n_out), dtype=block.dtype)
    if nnz < _SHORT_ROWS * n_rows:
        step = max(1, min(_RUN_CELLS // n_out, _SCATTER_CELLS * n_rows // (n_out * max(1, nnz))))
    else:
        step = max(1, _RUN_CELLS // (n_out * max(1, 2 * nnz // n_rows)))
    for r0 in range(0, n_rows, step):
        r1 = min(n_rows, r0 + step)
        a, b = int(indptr[r0]), int(indptr[r1])
        rows = r1 - r0
        if a == b:
            out[r0:r1] = 0
        elif b - a < _SHORT_ROWS * rows:  # mostly 0-3 nonzeros a row: add them in place
            scattered_sums(block, pos=pos[a:b], x=x[a:b], lens=lens[r0:r1], out=out[r0:r1])
        elif rows * (width := int(lens[r0:r1].max())) <= 2 * (b - a) + rows:
            out[r0:r1] = padded_rows(block, pos=pos[a:b], x=x[a:b], lens=lens[r0:r1], width=width)
        else:  # a few long rows: padding them all would multiply zeros
            out[r0:r1] = segment_sums(block, pos=pos[a:b], x=x[a:b], ptr=indptr[r0 : r1 + 1] - a)
    return out


def _expanded_run(
    data: np.ndarray, indices: np.ndarray, indptr: np.ndarray, n_rows: int, w: CsrWeights
) -> np.ndarray:
    """One piece's sums off the by-column layout: no block (a model too big for one)."""
    assert w.columns is not None and w.used is not None
    # Entries in columns no output uses are dropped below, unread: check them all.
    check_finite(data)
    pos = positions(indices, table=w.table, used=w.used)
    hit = pos < w.used.size
    row_ids = np.repeat(np.arange(n_rows, dtype=np.intp), np.diff(indptr))
    return expanded_sums(
        data[hit],
        pos=pos[hit],
        row_ids=row_ids[hit],
        n_rows=n_rows,
        n_outputs=w.n_outputs,
        col_ptr=w.columns.col_ptr,
        col_rows=w.columns.col_rows,
        col_vals=w.columns.col_vals,
        dtype=w.dtype,
        chunk=_GATHER_CHUNK,
    )
