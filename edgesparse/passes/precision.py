"""The safe default: int8 where it keeps the model's answers, more bits only where it does not.

:func:`safe_quantize` is what ``edgesparse compress`` does without ``--quantize``:

1. int8 with one scale per row, with or without per-column exponents, whichever measures
   better (:func:`edgesparse.passes.fidelity.choose_int8`);
2. measured against the unquantized model on the user's rows or, without them, on probe rows
   drawn from the model's input statistics (:func:`edgesparse.passes.fidelity.evaluation_rows`);
   with neither, nothing can be measured and int8 is kept (the summary says so);
3. below the bar (99.5% label agreement on the user's rows, 99.9% on probe rows, whose
   agreement predicts the data's only loosely; regressors 1% of each output's range), the rows int8
   serves worst are raised to int16, 1, 2, 4, ... of them, until the bar is met
   (:func:`edgesparse.passes.fidelity.raise_precision`): a raised row costs one byte more per
   weight, float32 three;
4. only when every row at int16 still misses the bar (or 16-bit steps leave float32's range),
   float32 weights.

An explicit ``quantize="int8"`` keeps int8 and says what it measured. Pure: returns new
objects, writes nothing.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from edgesparse.errors import IRError
from edgesparse.ir import LinearIR
from edgesparse.passes.fidelity import (
    Fidelity,
    choose_int8,
    evaluation_rows,
    measure,
    raise_precision,
)
from edgesparse.passes.quantize import quantize_int8, to_float32


@dataclasses.dataclass(frozen=True)
class Quantized:
    """A quantized model, its measured fidelity (None: nothing to measure on) and, when the
    default had to act or an explicit int8 misses the bar, a note saying what happened."""

    ir: LinearIR
    fidelity: Fidelity | None
    note: str | None


def safe_quantize(
    ir: LinearIR,
    *,
    explicit_int8: bool = False,
    granularity: str = "row",
    columns: str = "auto",
    data: Any | None = None,
) -> Quantized:
    """Quantize ``ir`` (already pruned, with the input statistics to use) as the module says.

    Args:
        ir: the reference: every fidelity figure compares against it.
        explicit_int8: the user asked for int8 (``--quantize int8``): never raise precision.
        granularity: int8 scales per ``"row"`` or per ``"tensor"`` (per-tensor models can only
            fall back to float32).
        columns: ``"auto"``, ``"pow2"`` or ``"none"`` (see :mod:`edgesparse.passes.quantize`).
        data: the user's rows, when given (feature rows: for a model with an input stage,
            what the stage makes of the user's documents or records).
    """
    stage = ir.featurizer
    if stage is not None:
        # The measurements run on feature rows (probe rows from the statistics, or the
        # featurized data): quantize the linear part, then give the input stage back.
        done = safe_quantize(
            ir.replace(featurizer=None),
            explicit_int8=explicit_int8,
            granularity=granularity,
            columns=columns,
            data=data,
        )
        return dataclasses.replace(done, ir=done.ir.replace(featurizer=stage))
    if columns == "auto":
        compressed, _ = choose_int8(ir, granularity=granularity, X=data)
    else:
        compressed = quantize_int8(ir, granularity=granularity, columns=columns)
    rows = evaluation_rows(ir, data)
    if rows is None:
        return Quantized(compressed, None, None)
    fid = measure(ir, compressed, rows[0], basis=rows[1])
    if fid.meets():
        return Quantized(compressed, fid, None)
    if explicit_int8:
        note = (
            f"int8 kept as asked (--quantize int8) although it is below the {fid.bar} bar "
            "here; --quantize float32 keeps the model's labels"
        )
        return Quantized(compressed, fid, note)
    hint = "; --check-data decides on your own rows" if fid.basis == "probe" else ""
    assert compressed.scales is not None
    if compressed.scales.size == compressed.n_outputs:
        try:
            raised, raised_fid, k = raise_precision(ir, compressed, rows[0], basis=rows[1])
        except IRError:
            # A 258x finer step can underflow float32 for weights near its smallest normal.
            raised_fid, k = fid, 0
        if k and raised_fid.meets():
            note = (
                f"int8 gave {fid.describe()}, below the {fid.bar} bar: {k} of "
                f"{compressed.n_outputs} rows raised to int16 (--quantize int8 keeps int8{hint})"
            )
            return Quantized(raised, raised_fid, note)
    wide = to_float32(ir)
    note = (
        f"int8 gave {fid.describe()}, below the {fid.bar} bar, and int16 rows do not reach it: "
        f"written as float32 instead (--quantize int8 keeps int8{hint})"
    )
    return Quantized(wide, measure(ir, wide, rows[0], basis=rows[1]), note)
