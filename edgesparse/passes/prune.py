"""Magnitude pruning of a :class:`~edgesparse.ir.LinearIR`.

Sparsity is the fraction of zero weights in the whole ``n_outputs x n_features`` matrix,
counting the zeros the model already has: ``--sparsity 0.9`` on a model that is already 95%
zero changes nothing. Magnitudes are those of the real weights (``s*q`` for int8); pruning an
int8 model keeps its values and scales.

Note for folded pipelines: a StandardScaler folded into the weights makes magnitudes depend on
the input's units, so ``|w|`` is ``|w_scaled| / sigma``; accuracy-aware pruning (calibration data)
is the remedy, plain magnitude pruning does not correct for it.
"""

from __future__ import annotations

import numpy as np

from edgesparse.errors import InputError
from edgesparse.ir import QUANTIZED_DTYPES, LinearIR

SCOPES = ("global", "row")


def prune(
    ir: LinearIR,
    *,
    sparsity: float | None = None,
    threshold: float | None = None,
    scope: str = "global",
) -> LinearIR:
    """Zero the smallest-magnitude weights.

    Args:
        ir: the model to prune.
        sparsity: target fraction of zero weights in ``[0, 1]``. With ``scope="global"`` the
            ``round((1 - sparsity) * n_outputs * n_features)`` largest weights of the whole
            matrix are kept; with ``scope="row"`` each row keeps its
            ``round((1 - sparsity) * n_features)`` largest. Ties at the cut keep the earlier
            weight (stable order), so the count is exact.
        threshold: alternatively, zero every weight with ``|w| < threshold``.
        scope: ``"global"`` or ``"row"`` (only used with ``sparsity``).

    Returns:
        A new IR with the kept weights only (no stored zeros); provenance records the pass.
    """
    if (sparsity is None) == (threshold is None):
        raise InputError("prune needs exactly one of sparsity or threshold")
    if scope not in SCOPES:
        raise InputError(f"prune scope must be one of {', '.join(SCOPES)}, got {scope!r}")
    magnitude = np.abs(ir.real_values())
    if threshold is not None:
        if not np.isfinite(threshold) or threshold < 0:
            raise InputError(f"threshold must be a finite number >= 0, got {threshold}")
        keep = magnitude >= threshold
        note = f"threshold={threshold:g}"
    else:
        assert sparsity is not None
        if not np.isfinite(sparsity) or not 0.0 <= sparsity <= 1.0:
            raise InputError(f"sparsity must be between 0 and 1, got {sparsity}")
        if scope == "global":
            budget = round((1.0 - sparsity) * ir.n_outputs * ir.n_features)
            keep = _top_k_mask(magnitude, budget)
        else:
            budget = round((1.0 - sparsity) * ir.n_features)
            keep = np.zeros(ir.nnz, dtype=bool)
            # Rank within each row at once: sort by (row, -|w|), then position inside the row.
            rows = ir.row_ids()
            order = np.lexsort((-magnitude, rows))
            rank = np.arange(ir.nnz) - ir.indptr[rows[order]]
            keep[order[rank < budget]] = True
        note = f"sparsity={sparsity:g} scope={scope}"
    return select(ir, keep, note=f"prune {note}", scales=ir.scales, col_exponents=ir.col_exponents)


def select(
    ir: LinearIR,
    keep: np.ndarray,
    *,
    note: str,
    values: np.ndarray | None = None,
    scales: np.ndarray | None = None,
    col_exponents: np.ndarray | None = None,
) -> LinearIR:
    """The IR restricted to the stored weights where ``keep`` (a boolean mask of nnz) is true.

    ``values`` (and ``scales``, ``col_exponents``) replace the IR's own before selection, so a
    pass can change the value dtype and drop the weights that became zero in one validated step.
    """
    values = ir.values if values is None else values
    rows = ir.row_ids()[keep]
    indptr = np.zeros(ir.n_outputs + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=ir.n_outputs), out=indptr[1:])
    return ir.replace(
        indptr=indptr,
        indices=ir.indices[keep],
        values=values[keep],
        scales=scales if values.dtype in QUANTIZED_DTYPES else None,
        col_exponents=col_exponents if values.dtype in QUANTIZED_DTYPES else None,
        provenance=_append(ir, "passes", note),
    )


def _top_k_mask(magnitude: np.ndarray, k: int) -> np.ndarray:
    keep = np.zeros(magnitude.size, dtype=bool)
    if k >= magnitude.size:
        keep[:] = True
    elif k > 0:
        keep[np.argsort(-magnitude, kind="stable")[:k]] = True
    return keep


def _append(ir: LinearIR, key: str, note: str) -> dict[str, str]:
    prov = dict(ir.provenance)
    prov[key] = f"{prov[key]}; {note}" if prov.get(key) else note
    return prov
