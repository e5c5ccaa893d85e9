"""The numpy runtime's kernels for dense input (:mod:`edgesparse.runtime.model` picks one by
the model's layout and the batch): each gives the ``(n_rows, n_outputs)`` products of a
dense float input with the model's weights, before the bias, reading the input in bounded
runs of rows, so that the workspace does not grow with the batch.

NaN/inf in an input column with a weight reaches a score, which the caller checks; columns no
output reads are the caller's to check, except in :func:`checked_runs`, which checks them
itself, run by run.

Imports only numpy and the standard library: this is what runs on the device.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from edgesparse.runtime.checks import check_finite

__all__ = ["checked_runs", "gathered_block", "row_sums", "sliced_sums"]


def checked_runs(
    Xd: np.ndarray, *, block: np.ndarray, unused: np.ndarray, run_bytes: int
) -> np.ndarray:
    """``Xd @ block`` (a full-width block), a run of about ``run_bytes`` of rows at a time,
    each run's ``unused`` columns checked for NaN/inf while the run is still in cache:
    gathering them after the product has streamed the whole input through costs a cache miss
    a value (half the product's time on a 1000 x 20000 batch with 246 unused columns)."""
    out = np.empty((Xd.shape[0], block.shape[1]), dtype=np.result_type(Xd, block))
    product = np.dot if Xd.flags.c_contiguous else np.matmul  # matmul reads any strides
    step = max(1, run_bytes // (Xd.shape[1] * Xd.itemsize))
    for lo in range(0, Xd.shape[0], step):
        run = Xd[lo : lo + step]
        product(run, block, out=out[lo : lo + step])
        values = run.take(unused, axis=1).reshape(-1)
        # Squares cannot cancel an inf (a sum could); a huge finite value may overflow
        # them: then the exact test decides.
        if not math.isfinite(values.dot(values)):
            check_finite(values)
    return out


def gathered_block(
    Xd: np.ndarray, *, used: np.ndarray, block: np.ndarray, cells: int
) -> np.ndarray:
    """``Xd[:, used] @ block``: few used columns, gathered a run of rows (about ``cells``
    values) at a time (a bounded copy)."""
    step = max(1, cells // max(1, used.size))
    if Xd.shape[0] <= step:
        return Xd[:, used].dot(block)
    out = np.empty((Xd.shape[0], block.shape[1]), dtype=np.result_type(Xd, block))
    for lo in range(0, Xd.shape[0], step):
        out[lo : lo + step] = Xd[lo : lo + step, used].dot(block)
    return out


def row_sums(
    Xd: np.ndarray, *, indptr: np.ndarray, idx: np.ndarray, vals: np.ndarray, cells: int
) -> np.ndarray:
    """Each output (a CSR row ``indptr`` of the weights: columns ``idx`` as intp, ``vals``)
    sums its own nonzeros straight off the input: time in proportion to the model's nonzeros,
    not its width x outputs (a row or two, or a thin model). Runs of rows of about ``cells``
    products at a time."""
    rows = indptr[1:] > indptr[:-1]
    firsts = indptr[:-1][rows]
    out = np.zeros((Xd.shape[0], indptr.size - 1), dtype=np.result_type(Xd.dtype, vals.dtype))
    if not firsts.size:
        return out
    step = max(1, cells // idx.size)
    for lo in range(0, Xd.shape[0], step):
        prod = Xd[lo : lo + step].take(idx, axis=1)  # intp: take's fast path
        prod *= vals
        out[lo : lo + step, rows] = np.add.reduceat(prod, firsts, axis=1)
    return out


def sliced_sums(
    Xd: np.ndarray,
    *,
    slice_ptr: np.ndarray,
    slice_flat: np.ndarray,
    col_vals: np.ndarray,
    width: int,
    n_outputs: int,
    dtype: np.dtype,
) -> np.ndarray:
    """The weights (CSC order: ``col_vals``) as consecutive ``(width, n_outputs)`` dense
    slices, one at a time: the slice's nonzeros (``slice_ptr[k]:slice_ptr[k+1]``, at flat
    cells ``slice_flat``) scattered in, one BLAS product with the matching input columns (a
    view, no copy), then cleared. Time is one pass over the model plus the dense product;
    workspace is one slice."""
    block = np.zeros((width, n_outputs), dtype=dtype)
    flat = block.reshape(-1)
    out = np.zeros((Xd.shape[0], n_outputs), dtype=dtype)
    for k, (lo, hi) in enumerate(itertools.pairwise(slice_ptr.tolist())):
        if lo == hi:
            continue
        cells = slice_flat[lo:hi]
        flat[cells] = col_vals[lo:hi]
        first = k * width
        cols = Xd[:, first : first + width]
        out += np.matmul(cols, block[: cols.shape[1]])  # strided view, no copy
        flat[cells] = 0
    return out
