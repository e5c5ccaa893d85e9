"""Weight quantization passes.

Contract of :func:`quantize_int8` (symmetric, weight-only):

* the real weight is ``w ≈ s * q`` with ``q`` an int8 in ``[-127, 127]`` (never -128, so the
  range is symmetric and ``-q`` always exists) and ``s`` a float32 scale > 0;
* ``s = max|w| / 127`` over a row (``granularity="row"``, the default: one scale per output)
  or over the whole matrix (``"tensor"``); the largest weight maps to ±127;
* ``q = clip(round_half_even(w / s), -127, 127)``, so ``|w - s*q| <= s/2``;
* exact zeros stay exactly zero (they are not stored in CSR at all), and weights that round to
  ``q = 0`` become zeros too and are dropped from the CSR structure;
* a row (or matrix) with no nonzero weights gets ``s = 1.0``, a valid scale.

Inputs are not quantized: runtimes dequantize weights once and compute in float32, which is
why label agreement stays high where onnxruntime's dynamic quantization (int8 activations)
loses it.
"""

from __future__ import annotations

import numpy as np

from edgesparse.errors import InputError
from edgesparse.ir import LinearIR
from edgesparse.passes.prune import select

GRANULARITIES = ("row", "tensor")


def int8_scales(ir: LinearIR, *, granularity: str = "row") -> np.ndarray:
    """The float32 scales :func:`quantize_int8` uses: ``max|w| / 127`` per row or per tensor."""
    if granularity not in GRANULARITIES:
        raise InputError(
            f"granularity must be one of {', '.join(GRANULARITIES)}, got {granularity!r}"
        )
    magnitude = np.abs(ir.real_values())
    if granularity == "tensor":
        peak = np.array([magnitude.max() if magnitude.size else 0.0])
    else:
        peak = np.zeros(ir.n_outputs)
        np.maximum.at(peak, ir.row_ids(), magnitude)
    scales = (peak / 127.0).astype(np.float32)
    # A scale that is 0 (no weights) or underflows float32 would make q undefined.
    scales[~(scales > 0)] = 1.0
    return scales


def quantize_int8(ir: LinearIR, *, granularity: str = "row") -> LinearIR:
    """Symmetric int8 quantization of the weights (see the module contract)."""
    scales = int8_scales(ir, granularity=granularity)
    w = ir.real_values()
    s = scales.astype(np.float64)
    per_value = s if scales.size == 1 else s[ir.row_ids()]
    q = np.clip(np.rint(w / per_value), -127, 127).astype(np.int8)
    return select(ir, q != 0, note=f"int8 per {granularity}", values=q, scales=scales)


def to_float32(ir: LinearIR) -> LinearIR:
    """Store the real weights as float32 (halves the value bytes; ~7 significant digits)."""
    w = ir.real_values(dtype=np.float32)
    # A tiny float64 weight can underflow to 0 in float32: drop it to keep CSR canonical.
    return select(ir, w != 0, note="float32", values=w)
