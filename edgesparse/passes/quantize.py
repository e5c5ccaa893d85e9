"""Weight quantization passes.

Contract of :func:`quantize_int8` (symmetric, weight-only, scale-aware):

* the real weight is ``w[i, j] ≈ r[i] * q[i, j] * 2^e[j]``, i.e. ``W ≈ diag(r) · Q · diag(2^e)``,
  with ``q`` an int8 in ``[-127, 127]`` (never -128, so ``-q`` always exists), ``r`` a float32
  scale > 0 per output row (``granularity="row"``, the default) or one for the whole matrix
  (``"tensor"``), and ``e`` an integer exponent per input column (``columns="pow2"``) or 0
  (``columns="none"``);
* with ``v[i, j] = w[i, j] / 2^e[j]`` (the weights in equalized units), ``r = max|v| / 127``
  over the row (or matrix), so the largest equalized weight maps to ±127, and
  ``q = clip(round_half_even(v / r), -127, 127)``; hence ``|w - r*q*2^e| <= r * 2^e / 2``;
* exact zeros stay exactly zero (they are not stored in CSR at all), and weights that round to
  ``q = 0`` become zeros too and are dropped from the CSR structure;
* a row (or matrix) with no nonzero weights gets ``r = 1.0``, a valid scale.

Why column exponents: one scale per row is set by the row's largest weight. When input columns
have different magnitudes (amounts beside ratios), a column of large raw values has small
weights, which round to 0 or ±1 while ``|x[j]|`` is large: the per-term error
``(r/2)·|x[j]|`` swamps the signal. Quantizing ``v = w * 2^-e`` instead puts every column on
a grid that fits it. The exponents come from (:func:`column_exponents`):

* a scale part from the model's input statistics when it has them (``ir.input_stats``: a
  scaler's centre and spread, or statistics of the user's data): ``round(-log2 spread[j])``,
  so ``v`` are the weights in standardized units (``w[j] * spread[j]``, up to a factor of √2);
  0 without statistics;
* plus a lift for the *outlier* columns: those whose largest weight in
  standardized units (``max_i |w[i, j]| * spread[j]``; without statistics spread is 1) is far
  above the others' get ``round(log2(that / median))`` more, the largest first, at most
  max(:data:`EXPONENT_BUDGET_MIN`, :data:`EXPONENT_BUDGET_SHARE` of nnz) of them without
  statistics and :data:`OUTLIER_SHARE` of the used columns with them. The outliers are what
  set a row's scale, so lifting them onto their own grid refines the row's grid for all the
  rest. Without statistics a small column may simply be unimportant (hashed text), which is
  why only outliers, not every column, get an exponent there: few exponents, few bytes. With
  no statistics and few columns (within the budget) every column keeps its own: data-free
  equalization, which assumes every column's largest contribution is of similar size.

The scale part is centred (its median over used columns is 0); exponents are stored only when
they are not all equal. Powers of two are exact to apply in float; the blob stores one byte
per column, or only the exceptions to the most common exponent, whichever is smaller.

Bias correction: where the input centre ``μ`` is known (``ir.input_stats``), the mean error
the quantized weights make is moved into the bias, ``b' = b + (W - W_q) @ μ``, so the error
left is ``(W - W_q) @ (x - μ)``: centred, and small even when columns have large offsets.

Bias in float32: every quantized model (int8, int8/int16 rows, float32 weights) stores its bias
rounded to the nearest float32, ``b' = float32(b + (W - W_q) @ μ)`` (``float32(b)`` without
statistics, and for float32 weights, which get no bias correction). Every runtime adds the bias
in float32 for such models (the numpy runtime, the C runtime, the ONNX graph), so their outputs
do not change, and ``.esb`` then stores 4 bytes per output instead of 8 (its ``bias`` encoding
1: a 10 x 200 int8 blob went from 3,000 to 2,960 bytes).

Raised rows (:func:`raise_rows`): where int8 measures too coarse, chosen rows are quantized
again from the unquantized weights with 16-bit steps, ``r[i] = max|v| / 32767`` and
``q = clip(round_half_even(v / r), -32767, 32767)`` (int16, never -32768), with the same column
exponents; every other row keeps its int8 ``q`` and ``r`` exactly. The bias correction is then
recomputed for the whole model. A raised row costs one byte more per stored weight; its error
bound ``r * 2^e / 2`` shrinks by 32767/127 = 258x.

Measured and not adopted (10 classes x 200 mixed-scale columns, StandardScaler +
LogisticRegression, ``benchmarks/bench_fidelity.py``; label agreement of int8 on 40,000 probe
rows / 2,000 held-out rows): nearest rounding 99.51% / 99.30%. Error feedback (GPTQ/OBQ order,
each rounding error spread over the row's not-yet-quantized columns through
``H = E[(x - μ)(x - μ)ᵀ]`` in the weights' units) is nearest rounding exactly when ``H`` is
diagonal, as it is from a scaler's statistics; with ``H`` from the fit rows it moved the RMS score
error by 4% (99.30% -> 99.35% held out). Penalizing errors shared by every row of a column at
a tenth (they move every class's score alike: no argmax changes): 99.54% / 99.45%.
Weighting rows by how close their top two scores are: up to 100% on the rows it was fitted on,
99.0-99.45% held out (overfits). A local search of the column exponents for the least score
error: 99.51% / 99.40%; with both: 99.58% / 99.55% (2,000 rows cannot tell 99.55% from
99.3%: 9 against 14 rows). None comes near the 99.9% probe bar of the safe default, which needs
9 of these 10 rows at int16 (0.60x the float32 bytes).

Inputs are not quantized: runtimes dequantize weights and compute in float32, which is why
label agreement stays high where onnxruntime's dynamic quantization (int8 activations) loses it.
"""

from __future__ import annotations

import numpy as np

from edgesparse.counting import small_int_counts, used_columns
from edgesparse.errors import InputError, IRError
from edgesparse.ir import EXPONENT_RANGE, INT16_MAX, LinearIR
from edgesparse.passes.prune import select

QUANTIZE_CHOICES = ("int8", "float32", "none")
"""Storage a caller may ask for, for every model kind (None: the safe default of
:mod:`edgesparse.passes.precision`; ``"auto"``: the accuracy budget only)."""

GRANULARITIES = ("row", "tensor")
OUTLIER_SHARE = 0.05
"""With input statistics, at most this share of the used columns lift off their scale's
exponent as outliers (measured on the fidelity suite: 0 -> 15 cases below the bar, 0.05 -> 10,
0.2 -> 9)."""
EXPONENT_BUDGET_MIN = 256
"""Data-free exponents: at least this many columns may keep their own exponent..."""
EXPONENT_BUDGET_SHARE = 0.01
"""...or this share of the stored weights, if more (the hashed-text model: ~1% of nnz buys
99.0% -> 99.5% label agreement for 4% more bytes)."""
COLUMN_SCALINGS = ("none", "pow2")


def _one_exponent(exps: np.ndarray, ir: LinearIR) -> bool:
    """True when every column ``ir`` uses has the same exponent (or it uses none)."""
    values, _ = small_int_counts(exps[used_columns(ir.indices, n_features=ir.n_features)])
    return values.size <= 1


def column_exponents(ir: LinearIR, *, use_stats: bool = True) -> np.ndarray:
    """Per-column power-of-two exponents (int8, ``n_features`` long) for :func:`quantize_int8`.

    From ``ir.input_stats`` when present (and ``use_stats``), else from the weights alone (see
    the module contract). Unused columns get 0; the median over used columns is 0.
    """
    used = used_columns(ir.indices, n_features=ir.n_features)
    exps = np.zeros(ir.n_features, dtype=np.int8)
    if used.size == 0:
        return exps
    stats = ir.input_stats if use_stats else None
    spread = stats.spread[used] if stats is not None else np.ones(used.size)
    base = -np.log2(spread)
    e = np.rint(base - np.median(base))
    # Outlier columns, by their largest weight in standardized units, lift off the floor.
    colmax = np.zeros(ir.n_features)
    np.maximum.at(colmax, ir.indices, np.abs(ir.real_values()))
    lift = np.log2(colmax[used] * spread)
    lift = np.rint(lift - np.median(lift))
    budget = max(EXPONENT_BUDGET_MIN, EXPONENT_BUDGET_SHARE * ir.nnz)
    if stats is not None:
        budget = min(budget, OUTLIER_SHARE * used.size)
    e = e + _outliers_within_budget(lift, budget)
    lo, hi = EXPONENT_RANGE
    # Keep well inside float32 so that r * 2^e stays normal for any sane weight magnitude.
    exps[used] = np.clip(e, lo // 2, hi // 2).astype(np.int8)
    return exps


def _outliers_within_budget(e: np.ndarray, budget: float) -> np.ndarray:
    """Keep the exponents of at most ``budget`` columns, those of the largest exponents, as
    lifts above the floor (the largest exponent not kept); every other column gets 0. When
    every column fits the budget, all keep their (centred) exponents."""
    if e.size <= budget:
        return e
    floor = np.sort(e)[::-1][int(budget)]
    return np.maximum(e, floor) - floor


def int8_scales(
    ir: LinearIR, *, granularity: str = "row", exponents: np.ndarray | None = None
) -> np.ndarray:
    """The float32 scales ``r`` :func:`quantize_int8` uses: ``max|v| / 127`` per row or tensor,
    with ``v = w / 2^e`` (``exponents`` ``e`` per column, or none)."""
    if granularity not in GRANULARITIES:
        raise InputError(
            f"granularity must be one of {', '.join(GRANULARITIES)}, got {granularity!r}"
        )
    magnitude = np.abs(_equalized(ir, exponents))
    if granularity == "tensor":
        peak = np.array([magnitude.max() if magnitude.size else 0.0])
    else:
        peak = np.zeros(ir.n_outputs)
        np.maximum.at(peak, ir.row_ids(), magnitude)
    scales = (peak / 127.0).astype(np.float32)
    # A scale that is 0 (no weights) or underflows float32 would make q undefined.
    scales[~(scales > 0)] = 1.0
    return scales


def quantize_int8(
    ir: LinearIR, *, granularity: str = "row", columns: str = "none", stats_exponents: bool = True
) -> LinearIR:
    """Symmetric int8 quantization of the weights (see the module contract).

    Args:
        ir: the model to quantize (its weights are read as real numbers, whatever their dtype).
        granularity: one scale per output ``"row"`` (default) or per ``"tensor"``.
        columns: ``"none"`` (every ``e`` is 0) or ``"pow2"`` (per-column exponents from
            :func:`column_exponents`; dropped again when they are all equal, or when the
            model's weight magnitudes would leave float32's range with them).
        stats_exponents: with ``"pow2"``, derive the exponents from ``ir.input_stats`` when
            there are some (default), or from the weights alone (the bias correction still
            uses the statistics).
    """
    if columns not in COLUMN_SCALINGS:
        raise InputError(f"columns must be one of {', '.join(COLUMN_SCALINGS)}, got {columns!r}")
    exps = column_exponents(ir, use_stats=stats_exponents) if columns == "pow2" else None
    if exps is not None and _one_exponent(exps, ir):
        exps = None
    try:
        out = _quantize(ir, granularity, exps)
    except IRError:
        if exps is None:
            raise
        # Extreme weight magnitudes: per-row scales alone are always representable.
        out = _quantize(ir, granularity, None)
    return _correct_bias(ir, out)


def float32_bias(ir: LinearIR) -> LinearIR:
    """``ir`` with its bias rounded to the nearest float32 (kept as float64 numbers).

    What every runtime adds for a model without float64 weights, so the outputs do not change;
    a blob then stores the bias in 4 bytes per output (see the module contract).
    """
    return ir.replace(bias=ir.bias.astype(np.float32).astype(np.float64))


def raise_rows(reference: LinearIR, quantized: LinearIR, rows: np.ndarray) -> LinearIR:
    """``quantized`` with the ``rows`` re-quantized from ``reference`` at 16 bits (int16 values).

    ``quantized`` must be :func:`quantize_int8` of ``reference`` with one scale per row; rows
    not listed keep their int8 steps and scales exactly (see "Raised rows" in the module
    contract). With no rows listed, ``quantized`` is returned unchanged.
    """
    rows = np.unique(np.asarray(rows, dtype=np.int64))
    if rows.size == 0:
        return quantized
    if quantized.values.dtype != np.int8 or quantized.scales is None:
        raise InputError("raise_rows needs an int8 model")
    if quantized.scales.size != quantized.n_outputs:
        raise InputError("raise_rows needs one int8 scale per row (granularity 'row')")
    if rows[0] < 0 or rows[-1] >= reference.n_outputs:
        raise InputError(f"raise_rows: rows must lie in [0, {reference.n_outputs})")
    exps = quantized.col_exponents
    ref_rows = reference.row_ids()
    raised = np.zeros(reference.n_outputs, dtype=bool)
    raised[rows] = True
    # Every stored int8 weight sits at a position the reference stores too (quantization only
    # drops weights), so keys in canonical CSR order locate them.
    keys = ref_rows * reference.n_features + reference.indices
    q_keys = quantized.row_ids() * quantized.n_features + quantized.indices
    values = np.zeros(reference.nnz, dtype=np.int16)
    values[np.searchsorted(keys, q_keys)] = quantized.values
    v = _equalized(reference, exps)
    peak = np.zeros(reference.n_outputs)
    np.maximum.at(peak, ref_rows, np.abs(v))
    scales = quantized.scales.copy()
    wide = (peak / INT16_MAX).astype(np.float32)
    scales[raised & (wide > 0)] = wide[raised & (wide > 0)]
    in_raised = raised[ref_rows]
    q16 = np.rint(v[in_raised] / scales[ref_rows[in_raised]].astype(np.float64))
    values[in_raised] = np.clip(q16, -INT16_MAX, INT16_MAX).astype(np.int16)
    note = f"{rows.size} of {reference.n_outputs} rows raised to int16"
    out = select(
        reference, values != 0, note=note, values=values, scales=scales, col_exponents=exps
    )
    out = out.replace(provenance={**out.provenance, "passes": _passes_note(quantized, note)})
    return _correct_bias(reference, out)


def _passes_note(quantized: LinearIR, note: str) -> str:
    """The quantized model's pass history plus ``note`` (the reference's history lacks the
    int8 step)."""
    done = quantized.provenance.get("passes", "")
    return f"{done}; {note}" if done else note


def _equalized(ir: LinearIR, exponents: np.ndarray | None) -> np.ndarray:
    w = ir.real_values()
    if exponents is None:
        return w
    return np.ldexp(w, -exponents[ir.indices].astype(np.int32))


def _quantize(ir: LinearIR, granularity: str, exps: np.ndarray | None) -> LinearIR:
    scales = int8_scales(ir, granularity=granularity, exponents=exps)
    v = _equalized(ir, exps)
    s = scales.astype(np.float64)
    per_value = s if scales.size == 1 else s[ir.row_ids()]
    q = np.clip(np.rint(v / per_value), -127, 127).astype(np.int8)
    note = f"int8 per {granularity}" + ("" if exps is None else " + pow2 per column")
    out = select(ir, q != 0, note=note, values=q, scales=scales, col_exponents=exps)
    if exps is not None and _one_exponent(exps, out):
        # Rounding dropped every column but those of one exponent: it fits in the scales.
        common = int(exps[out.indices[0]]) if out.nnz else 0
        out = out.replace(col_exponents=None, scales=np.ldexp(out.scales, common))
    return out


def _correct_bias(original: LinearIR, quantized: LinearIR) -> LinearIR:
    """``b' = float32(b + (W - W_q) @ μ)`` where the input centre ``μ`` is known, else
    ``float32(b)``."""
    stats = original.input_stats
    if stats is None:
        return float32_bias(quantized)
    center = stats.center
    shift = np.bincount(
        original.row_ids(),
        weights=original.real_values() * center[original.indices],
        minlength=original.n_outputs,
    ) - np.bincount(
        quantized.row_ids(),
        weights=quantized.real_values() * center[quantized.indices],
        minlength=quantized.n_outputs,
    )
    return float32_bias(quantized.replace(bias=quantized.bias + shift))


def to_float32(ir: LinearIR) -> LinearIR:
    """Store the real weights as float32 (halves the value bytes; ~7 significant digits)."""
    w = ir.real_values(dtype=np.float32)
    # A tiny float64 weight can underflow to 0 in float32: drop it to keep CSR canonical.
    return float32_bias(select(ir, w != 0, note="float32", values=w))
