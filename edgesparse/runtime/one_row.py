"""The numpy runtime's one-row path for dense input: one ``dot``, then the bias and the checks
on the few scores as Python floats (at batch 1 each numpy call costs about as much as the
product). :class:`~edgesparse.runtime.model.Model` builds a :class:`RowForm` at load for a
full-width dense model with few outputs and calls :func:`row_scores` on a ``(1, n)`` array.

float64 input meets float64 weights (as a batch does). Columns no output uses are checked as
one more score: a small model gets a "check column" of weights, their values times 2^-e
(with 2^e > 2 x their count, so the sum stays below max|x| and cannot overflow), so a NaN/inf
there makes that score non-finite; a wide one (no copy of its block) gathers them and adds
the sum of their squares.

Imports only numpy and the standard library: this is what runs on the device.
"""

from __future__ import annotations

import math
import operator
from typing import NamedTuple

import numpy as np

from edgesparse.runtime.checks import fp_quiet, fp_restore

__all__ = ["RowForm", "row_form", "row_scores"]

# A model with at most this many weight cells (and a check column) keeps its own copy of the
# weights in float32 and float64 (at most 48 KiB a model); larger ones read the dense block.
_ROW_CELLS = 1 << 12
_F32 = np.dtype(np.float32)
_F64 = np.dtype(np.float64)


class RowForm(NamedTuple):
    """What the one-row path reads of a model."""

    weights: dict[np.dtype, np.ndarray]  # per input dtype (float32, float64): (n, k [+ 1])
    check: np.ndarray | None  # the columns no output reads, gathered (wide models)
    bias: list[float]  # the bias (and a 0 for the check column)
    largest: float  # the model dtype's largest finite value
    n_outputs: int


def row_form(block: np.ndarray, *, unused: np.ndarray, bias: np.ndarray) -> RowForm:
    """The one-row form of a full-width ``(n_features, n_outputs)`` weight ``block`` (the
    model's dtype), its columns no output reads (``unused``) and its ``bias``. A wide model's
    form reads ``block`` itself (a float32 model's float64 entry is added by its owner when it
    upcasts the block for a float64 batch)."""
    n, k = block.shape
    bias_list = bias.tolist()
    largest = float(np.finfo(block.dtype).max)
    if n * (k + 1) > _ROW_CELLS:
        weights = {block.dtype: block}
        if block.dtype == _F64:
            weights[_F32] = block
        return RowForm(weights, unused if unused.size else None, bias_list, largest, k)
    extra = 1 if unused.size else 0
    w = np.zeros((n, k + extra))
    w[:, :k] = block
    if extra:
        w[unused, k] = 2.0 ** -(int(unused.size).bit_length() + 1)
        bias_list.append(0.0)
    return RowForm({_F32: w.astype(block.dtype), _F64: w}, None, bias_list, largest, k)


def row_scores(X: np.ndarray, form: RowForm) -> list[float] | None:
    """The scores of a ``(1, n_features)`` array as Python floats, or None: no one-row path
    for its dtype, or a score not finite or too large (the general path then says what is
    wrong)."""
    w = form.weights.get(X.dtype)  # float32 / float64 only
    if w is None:
        return None
    # The product, then the bias and the check on a few Python floats: hypot is inf or
    # NaN if any of them is, and bounds them all.
    token = fp_quiet()
    try:
        s = list(map(operator.add, X.dot(w).tolist()[0], form.bias))
        if form.check is not None:
            unused = X.take(form.check)  # one row: flat = column indices
            s.append(float(unused.dot(unused)))
    finally:
        fp_restore(token)
    if not math.hypot(*s) <= form.largest:
        return None
    if len(s) > form.n_outputs:
        s.pop()  # the check column
    return s
