"""The numpy runtime's CSR sums (:mod:`edgesparse.runtime.model` picks one per run of rows):
each gives, per CSR row, the sum of ``x * block[pos]`` over the row's nonzeros, where
``block`` holds one weight row per used input column plus a final zero row, ``pos`` each
nonzero's row of it and ``x`` its value. They differ in how many numpy calls they cost for a
given row length; the results are the same sums.
"""

from __future__ import annotations

import numpy as np

__all__ = ["padded_rows", "scattered_sums", "segment_sums"]


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
