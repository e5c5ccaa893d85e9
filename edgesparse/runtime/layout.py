"""The numpy runtime's load-time layouts of a sparse-column model (issue 19, goal 6: a device
process holds what its kernels read, nothing more): the by-column (CSC) arrays that dense
input and the expanding CSR kernel read, built by :class:`~edgesparse.runtime.model.Model` on
first use, and the columns no output reads, kept as a sorted int32 list of the weighted ones
(their complement is listed only when a check gathers them).

Imports only numpy: this is what runs on the device.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from edgesparse.ir import LinearIR

__all__ = ["Columns", "complement", "sparse_columns", "unused_columns", "weighted_columns"]


def unused_columns(indices: np.ndarray, weights: np.ndarray, *, n_features: int) -> np.ndarray:
    """Columns with no nonzero weight (a float64 weight may round to 0 in float32). A BLAS
    may skip a zero weight, and a NaN with it, so the NaN/inf check reads these itself."""
    return complement(weighted_columns(indices, weights, n_features=n_features), n=n_features)


def weighted_columns(indices: np.ndarray, weights: np.ndarray, *, n_features: int) -> np.ndarray:
    """The sorted distinct columns with a nonzero weight, as int32."""
    marked = np.zeros(n_features, dtype=bool)
    marked[indices[weights != 0]] = True
    return np.flatnonzero(marked).astype(np.int32)


def complement(cols: np.ndarray, *, n: int) -> np.ndarray:
    """The integers of ``[0, n)`` not in ``cols``, sorted, as intp (take's fast path)."""
    keep = np.ones(n, dtype=bool)
    keep[cols] = False
    return np.flatnonzero(keep)


class Columns(NamedTuple):
    """A sparse-column model's arrays for the kernels that read its weights by column (dense
    input, and CSR input without the used-column block)."""

    col_ptr: np.ndarray  # intp, n_used + 1: each used column's first nonzero in CSC order
    col_rows: np.ndarray  # int32: each nonzero's output, CSC order
    col_vals: np.ndarray  # the weights, CSC order
    row_vals: np.ndarray  # the weights in the IR's (row-major) order
    row_idx: np.ndarray  # intp: their columns
    # Dense input meets the model as consecutive column slices of slice_width columns;
    # slice_ptr[k] is the first nonzero (CSC order) of slice k, slice_flat each nonzero's
    # cell in its slice's (width, n_outputs) block.
    slice_width: int
    slice_ptr: np.ndarray
    slice_flat: np.ndarray
    weighted: np.ndarray  # int32: the columns with a nonzero weight (the rest are unused)


def sparse_columns(ir: LinearIR, *, dtype: np.dtype, used: np.ndarray, slice_cells: int) -> Columns:
    """The by-column layout of ``ir``'s weights in ``dtype``; ``used``: its sorted columns;
    ``slice_cells``: the most cells of one dense slice of the weights."""
    weights = ir.real_values(dtype=dtype)
    # The IR's nonzeros are row-major, so a stable sort by column gives the CSC order
    # (by column, then by row), as a lexsort by both would.
    order = np.argsort(ir.indices, kind="stable")
    cols_sorted = ir.indices[order]
    col_ptr = np.empty(used.size + 1, dtype=np.intp)
    col_ptr[:-1] = np.searchsorted(cols_sorted, used)
    col_ptr[-1] = cols_sorted.size
    col_rows = ir.row_ids()[order].astype(np.int32)
    n_out, n_features = ir.n_outputs, ir.n_features
    width = max(1, min(n_features, slice_cells // n_out))
    bounds = np.arange(0, n_features + width, width)
    weighted = weighted_columns(ir.indices, weights, n_features=n_features)
    return Columns(
        col_ptr=col_ptr,
        col_rows=col_rows,
        col_vals=weights[order],
        row_vals=weights,
        row_idx=ir.indices.astype(np.intp),
        slice_width=width,
        slice_ptr=np.searchsorted(cols_sorted, bounds).astype(np.intp),
        slice_flat=((cols_sorted % width) * n_out + col_rows).astype(np.int32),
        weighted=used if weighted.size == used.size else weighted,
    )
