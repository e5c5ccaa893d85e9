"""The matrix-factorization pass: :class:`~edgesparse.ir.factors.FactorIR` in, a new one out.

Contract of :func:`quantize_factors` with ``"int8"`` (symmetric, one scale per row, the same
for the user factors ``p`` and the item factors ``q``):

* each row is stored as ``row ≈ r * c`` (``P ≈ diag(r_p) · C_p``, ``Q ≈ diag(r_q) · C_q``) with
  ``c`` an int8 in ``[-127, 127]`` (never -128) and ``r`` a float32 scale > 0;
* ``r = float32(max|row| / 127)``, and ``c = clip(round_half_even(row / r), -127, 127)`` with
  ``r`` as stored (so the largest entry maps to ±127: float32 moves ``r`` by 2^-24 at most);
  hence ``|row - r*c| <= r / 2`` entrywise;
* a row of zeros gets ``r = 1.0`` and ``c = 0``;
* biases, the global mean and the id maps are unchanged (float64): they cost a few bytes per
  user and item, where the factors cost ``f``.

The dot product of two int8 rows is then exact (an integer), and the estimate's only error is
the rounding of the factors (numeric contract: :mod:`edgesparse.ir.factors`).

``"float32"`` stores the factors as float32 (round to nearest); ``"none"`` keeps them. Each
records itself in the provenance's ``passes``. BaselineOnly has no factors: unchanged.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from edgesparse.errors import InputError
from edgesparse.ir.factors import FactorIR
from edgesparse.passes.quantize import QUANTIZE_CHOICES

__all__ = ["QUANTIZE_CHOICES", "quantize_factors", "quantize_rows"]


def quantize_rows(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(int8 codes, float32 scales) of the rows of the float matrix ``a`` (module contract)."""
    v = np.asarray(a, dtype=np.float64)
    top = np.max(np.abs(v), axis=1) if v.shape[1] else np.zeros(v.shape[0])
    scales = np.where(top > 0, top / 127.0, 1.0).astype(np.float32)
    codes = np.clip(np.rint(v / scales.astype(np.float64)[:, None]), -127, 127)
    return codes.astype(np.int8), scales


def quantize_factors(ir: FactorIR, how: str) -> FactorIR:
    """``"int8"``: int8 factors with one float32 scale per row; ``"float32"``; ``"none"``:
    unchanged (module contract). Only float64 factors are quantized."""
    if how not in QUANTIZE_CHOICES:
        raise InputError(f"quantize must be one of {', '.join(QUANTIZE_CHOICES)}, not {how!r}")
    if how == "none" or ir.p is None or ir.q is None:
        return ir
    if ir.factor_dtype != "float64":
        raise InputError(f"the factors are already {ir.factor_dtype}")
    prov = dict(ir.provenance)
    step = "int8/row" if how == "int8" else "float32"
    prov["passes"] = f"{prov['passes']},{step}" if prov.get("passes") else step
    if how == "float32":
        return dataclasses.replace(
            ir, p=ir.p.astype(np.float32), q=ir.q.astype(np.float32), provenance=prov
        )
    p, p_scales = quantize_rows(ir.p)
    q, q_scales = quantize_rows(ir.q)
    return dataclasses.replace(ir, p=p, q=q, p_scales=p_scales, q_scales=q_scales, provenance=prov)
