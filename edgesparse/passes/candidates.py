"""Candidates of the accuracy budget: pruned supports and their stored (quantized) forms.

Pruning families, each a nested sequence of supports indexed by ``keep``:

* ``global``: keep the ``keep`` most important weights of the whole matrix;
* ``row``: keep the ``keep`` most important weights of every output row;
* ``feature``: keep the ``keep`` most important input columns (a column's importance is its
  largest weight over all outputs), dropping whole features;

each with two importances: ``magnitude`` (``|w|``) and ``scaled`` (``|w| * std(x_j)`` on the
search rows: the weight in standardized units, which undoes a folded scaler). Pruned weights'
mean contribution on the search rows (``w_ij * mean(x_j)``) is moved into the bias, so
pruning does not shift the scores on average.

:func:`keep_grid` is the fixed sequence of ``keep`` values a family is certified along: from
every unit to none, each step keeping at most :data:`GRID_FACTOR` of the previous one's
units. It depends on the model's shape only, never on data.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import scipy.sparse as sp

from edgesparse.errors import InputError
from edgesparse.ir import LinearIR
from edgesparse.passes.prune import select
from edgesparse.passes.quantize import quantize_int8, to_float32

FAMILIES = ("global", "row", "feature")
IMPORTANCES = ("magnitude", "scaled")
QUANTIZATIONS = ("int8-per-row", "int8-per-tensor", "float32", "float64")
GRID_FACTOR = 0.9
"""Each candidate of a certified sequence keeps at most this fraction of the previous one's
units (and at least one unit fewer)."""


def keep_grid(n_units: int, *, factor: float = GRID_FACTOR) -> list[int]:
    """``n_units``, then geometric steps down to 0: ``ceil(k * factor)``, at least 1 fewer."""
    if not 0.0 < factor < 1.0:
        raise InputError(f"grid factor must be between 0 and 1, got {factor}")
    grid = [int(n_units)]
    k = float(n_units)
    while grid[-1] > 0:
        k *= factor
        grid.append(max(min(grid[-1] - 1, math.ceil(k) if k >= 1 else 0), 0))
    return grid


def fit_statistics(X_fit: Any) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and standard deviation of the fit rows (dense or sparse)."""
    X = as_sparse_or_dense(X_fit)
    if sp.issparse(X):
        mean = np.asarray(X.mean(axis=0)).ravel()
        sq = np.asarray(X.multiply(X).mean(axis=0)).ravel()
    else:
        mean = X.mean(axis=0)
        sq = np.mean(X * X, axis=0)
    return mean, np.sqrt(np.maximum(sq - mean * mean, 0.0))


def prune_candidate(
    ir: LinearIR,
    *,
    family: str,
    importance: str,
    keep: int,
    mean: np.ndarray | None = None,
    std: np.ndarray | None = None,
) -> LinearIR:
    """One candidate of a family: the support that keeps ``keep`` units, bias compensated.

    ``std`` is needed for ``importance="scaled"``; with ``mean``, the pruned weights' mean
    contribution ``w_ij * mean_j`` moves into the bias. Values stay unquantized.
    """
    if family not in FAMILIES or importance not in IMPORTANCES:
        raise InputError(f"unknown pruning family {family!r} / importance {importance!r}")
    w = ir.real_values()
    imp = np.abs(w)
    if importance == "scaled":
        if std is None:
            raise InputError("importance 'scaled' needs the feature standard deviations")
        imp = imp * std[ir.indices]
    mask = keep_mask(ir, imp, family=family, keep=keep)
    out = select(
        ir,
        mask,
        note=f"prune {family}/{importance} keep={keep}",
        values=w if ir.values.dtype == np.int8 else None,
    )
    if mean is not None and not mask.all():
        gone = ~mask
        shift = np.bincount(
            ir.row_ids()[gone], weights=w[gone] * mean[ir.indices[gone]], minlength=ir.n_outputs
        )
        out = out.replace(bias=out.bias + shift)
    return out


def quantize_as(ir: LinearIR, quantization: str) -> LinearIR:
    """Store ``ir``'s weights as one of :data:`QUANTIZATIONS`."""
    # Column exponents where the columns' scales differ (they drop out when all are equal).
    if quantization == "int8-per-row":
        return quantize_int8(ir, granularity="row", columns="pow2")
    if quantization == "int8-per-tensor":
        return quantize_int8(ir, granularity="tensor", columns="pow2")
    if quantization == "float32":
        return to_float32(ir)
    if quantization == "float64":
        return ir
    raise InputError(f"quantization must be one of {', '.join(QUANTIZATIONS)}")


def keep_mask(ir: LinearIR, imp: np.ndarray, *, family: str, keep: int) -> np.ndarray:
    """Which stored weights of ``ir`` one family keeps at ``keep`` units, by importance."""
    if keep < 0:
        raise InputError(f"keep must be >= 0, got {keep}")
    if family == "global":
        mask = np.zeros(ir.nnz, dtype=bool)
        mask[np.argsort(-imp, kind="stable")[:keep]] = True
        return mask
    if family == "row":
        rows = ir.row_ids()
        order = np.lexsort((-imp, rows))
        rank = np.arange(ir.nnz) - ir.indptr[rows[order]]
        mask = np.zeros(ir.nnz, dtype=bool)
        mask[order[rank < keep]] = True
        return mask
    used, col_pos = np.unique(ir.indices, return_inverse=True)
    col_imp = np.zeros(used.size)
    np.maximum.at(col_imp, col_pos, imp)
    col_keep = np.zeros(used.size, dtype=bool)
    col_keep[np.argsort(-col_imp, kind="stable")[:keep]] = True
    return col_keep[col_pos]


def n_units(ir: LinearIR, *, family: str) -> int:
    """How many units (weights, row slots, input columns) a family can keep in ``ir``."""
    if family == "global":
        return ir.nnz
    if family == "row":
        return int(np.diff(ir.indptr).max(initial=0))
    return int(np.unique(ir.indices).size)


def as_sparse_or_dense(X: Any) -> Any:
    """Calibration rows as a float64 CSR matrix or a finite 2-D array."""
    if sp.issparse(X):
        return sp.csr_matrix(X, dtype=np.float64)
    if hasattr(X, "indptr") and hasattr(X, "data"):  # edgesparse.data.CSRArrays
        return sp.csr_matrix((X.data, X.indices, X.indptr), shape=X.shape, dtype=np.float64)
    arr = np.asarray(X, dtype=np.float64)
    if arr.ndim != 2:
        raise InputError(f"calibration X must be 2-D, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise InputError("calibration X contains NaN or infinity; impute or drop those rows")
    return arr
