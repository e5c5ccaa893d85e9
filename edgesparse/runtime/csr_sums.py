"""The numpy runtime's CSR sums (:mod:`edgesparse.runtime.model` picks one per run of rows):
each gives, per CSR row, the sum of ``x * block[pos]`` over the row's nonzeros, where
``block`` holds one weight row per used input column plus a final zero row, ``pos`` each
nonzero's row of it and ``x`` its value. They differ in how many numpy calls they cost for a
given row length; the results are the same sums. :func:`expanded_sums` is the sparse-column
layout's kernel, for models whose dense block would be too big.
"""

from __future__ import annotations

import itertools

import numpy as np

__all__ = ["expanded_sums", "padded_rows", "scattered_sums", "segment_sums"]


def segment_sums(
    block: np.ndarray, *, pos: np.ndarray, x: np.ndarray, ptr: np.ndarray
) -> np.ndarray:
    """Per CSR row (``ptr`` from 0), the sum of ``x * block[pos]`` over its nonzeros: one
    gather and one ``reduceat`` (few numpy calls: the small runs' kernel)."""
    nnz = pos.size
    # One more gathered row, the block's zero row, so that every row's start (an empty last
    # row's is nnz) is a valid reduceat index; the last row's sum adds that 0.
    idx = np.empty(nnz + 1, dtype=np.intp)
    idx[:nnz] = pos
    idx[nnz] = block.shape[0] - 1
    contrib = block.take(idx, axis=0)
    contrib[:nnz] *= x[:, None]
    out = np.add.reduceat(contrib, ptr[:-1], axis=0)
    empty = ptr[1:] == ptr[:-1]
    if empty.any():  # reduceat gives an empty row the next row's first product, not 0
        out[empty] = 0
    return out


def scattered_sums(
    block: np.ndarray, *, pos: np.ndarray, x: np.ndarray, lens: np.ndarray, out: np.ndarray
) -> None:
    """Into ``out`` (C-contiguous rows), per row (``lens`` nonzeros each, in order) the sum of
    ``x * block[pos]``, each product added into its (row, output) cell: for rows of a few
    nonzeros, where a segment sum or a padded product costs a numpy loop step per row."""
    n, n_out = lens.size, block.shape[1]
    contrib = block.take(pos, axis=0)
    contrib *= x[:, None]
    # int32 cells: a run of rows of a few nonzeros has far fewer than 2^31 cells.
    row_cells = np.arange(0, n * n_out, n_out, dtype=np.int32)
    cells = np.repeat(row_cells, lens)[:, None] + np.arange(n_out, dtype=np.int32)
    flat = out.reshape(-1)  # a view: the rows of a C-contiguous array
    flat[:] = 0
    np.add.at(flat, cells.reshape(-1), contrib.reshape(-1))


def padded_rows(
    block: np.ndarray, *, pos: np.ndarray, x: np.ndarray, lens: np.ndarray, width: int
) -> np.ndarray:
    # Rows padded to one length ("ELL": empty slots hold 0 times the zero row), so that
    # one batched matmul multiplies and sums them: several times faster than a segment
    # sum (reduceat) of the products.
    n = lens.size
    starts = np.cumsum(lens) - lens
    cell = np.arange(pos.size) + np.repeat(np.arange(0, n * width, width) - starts, lens)
    slots = np.full(n * width, block.shape[0] - 1, dtype=np.intp)
    slots[cell] = pos
    vals = np.zeros(n * width, dtype=x.dtype)
    vals[cell] = x
    gathered = block.take(slots, axis=0).reshape(n, width, -1)
    return np.matmul(vals.reshape(n, 1, width), gathered).reshape(n, -1)


def expanded_sums(
    data: np.ndarray,
    *,
    pos: np.ndarray,
    row_ids: np.ndarray,
    n_rows: int,
    n_outputs: int,
    col_ptr: np.ndarray,
    col_rows: np.ndarray,
    col_vals: np.ndarray,
    dtype: np.dtype,
    chunk: int,
) -> np.ndarray:
    """Per row (``row_ids``, non-decreasing) the sums of ``data * w`` over the weights of each
    nonzero's used column ``pos`` in a CSC layout (``col_ptr``, ``col_rows``, ``col_vals``):
    each input nonzero expands to its column's (output, weight) list and a ``bincount`` sums
    them, about ``chunk`` expanded entries at a time so big batches stay small in RAM (for
    models too big for a dense block)."""
    starts = col_ptr[pos]
    counts = col_ptr[pos + 1] - starts
    ends = np.cumsum(counts)
    expanded = int(ends[-1]) if ends.size else 0
    bounds = [0, pos.size]
    if expanded > chunk:  # batch-1 never gets here: no chunking overhead
        bounds[1:1] = np.searchsorted(ends, np.arange(chunk, expanded, chunk)).tolist()
    sums = np.zeros(n_rows * n_outputs)
    for lo, hi in itertools.pairwise(bounds):
        if lo == hi:
            continue
        c = counts[lo:hi]
        total = int(c.sum())
        first = np.cumsum(c) - c
        gather = np.repeat(starts[lo:hi] - first, c) + np.arange(total, dtype=np.intp)
        # Row ids are non-decreasing: a chunk covers rows r0..r1 only, and summing into
        # just those keeps the time linear in the batch (not chunks x batch).
        r0, r1 = int(row_ids[lo]), int(row_ids[hi - 1]) + 1
        keys = np.repeat((row_ids[lo:hi] - r0) * n_outputs, c) + col_rows[gather]
        x = data[lo:hi].astype(dtype, copy=False)
        vals = np.repeat(x, c) * col_vals[gather]
        sums[r0 * n_outputs : r1 * n_outputs] += np.bincount(
            keys, weights=vals, minlength=(r1 - r0) * n_outputs
        )
    return sums.astype(dtype, copy=False).reshape(n_rows, n_outputs)
