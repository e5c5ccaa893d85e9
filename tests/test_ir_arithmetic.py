"""The arithmetic LinearIR checks on construction (and so on every ``.esb`` load): each stored
weight's step ``scale * 2^e`` must be a normal float32 and ``scale * 2^e * q_max`` a finite one,
``scale * q_max`` must fit float32 and, without float64 values, so must every bias.

The loader checks the steps per row (the smallest and largest exponent of each row) and compares
magnitudes on their bits (issue 19: load memory). These tests hold it to the plain definition,
one weight at a time in Python floats (float64, in which every product here is exact), on
hand-computed boundary cases and on random models built around the boundaries.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from edgesparse.errors import IRError
from edgesparse.ir import LinearIR

F32_MAX = float(np.finfo(np.float32).max)  # (2 - 2^-23) * 2^127
F32_TINY = float(np.finfo(np.float32).tiny)  # 2^-126
STEP = "col_exponents: scale * 2^exponent leaves the float32 range for some weight"
RANGE = "col_exponents: every exponent must lie in [-126, 127]"
SCALE8 = "scales: some scale * 127 overflows float32 (largest int8 weight)"
SCALE16 = "scales: some scale * 32767 overflows float32 (largest int16 weight)"
BIAS = "bias: some bias overflows float32 (the arithmetic of this model)"


def build(indptr, indices, values, scales, exps=None, bias=None, n_features=4):
    n_out = len(indptr) - 1
    return LinearIR(
        indptr=np.array(indptr, dtype=np.int64),
        indices=np.array(indices, dtype=np.int32),
        values=np.asarray(values),
        n_features=n_features,
        bias=np.zeros(n_out) if bias is None else np.array(bias, dtype=np.float64),
        head="identity",
        squeeze=False,
        scales=np.array(scales, dtype=np.float32),
        col_exponents=None if exps is None else np.array(exps, dtype=np.int64),
    )


def refusal(indptr, indices, values, scales, exps=None, bias=None, n_features=4):
    """What the IR must refuse, by definition: per weight, in Python floats."""
    scales = [float(np.float32(s)) for s in scales]
    values = [int(v) for v in values]
    n_out = len(indptr) - 1
    rows = [range(indptr[r], indptr[r + 1]) for r in range(n_out)]
    wide = [any(abs(values[k]) > 127 for k in ks) for ks in rows]
    q_max = [32767 if w else 127 for w in wide]
    scale = [scales[r] if len(scales) > 1 else scales[0] for r in range(n_out)]
    if exps is not None:
        used = set(indices)
        e = [int(x) if j in used else 0 for j, x in enumerate(exps)]
        if min(e) < -126 or max(e) > 127:
            return RANGE
        for r, ks in enumerate(rows):
            for k in ks:
                step = scale[r] * 2.0 ** e[indices[k]]
                if step < F32_TINY or step * q_max[r] > F32_MAX:
                    return STEP
    for r in range(n_out):
        top = scale[r] * (q_max[r] if len(scales) > 1 else 127)
        if top > F32_MAX:
            return SCALE8 if q_max[r] == 127 else SCALE16
    if bias is not None and any(abs(b) > F32_MAX for b in bias):
        return BIAS
    return None


def outcome(*args, **kwargs):
    try:
        build(*args, **kwargs)
    except IRError as exc:
        return str(exc)
    return None


def check(*args, expect, **kwargs):
    assert refusal(*args, **kwargs) == expect  # the hand-computed answer is the definition's
    assert outcome(*args, **kwargs) == expect


# Two rows, per-row scales; row 0 uses columns 0 and 2, row 1 uses column 1.
ROWS = ([0, 2, 3], [0, 2, 1], np.int8([5, -7, 3]))


@pytest.mark.parametrize(
    ("scales", "exps", "expect"),
    [
        # The smallest step: 1.0 * 2^-126 is float32's tiny, allowed; half of it is not.
        ([1.0, 1.0], [-126, 0, 0, 0], None),
        ([0.5, 1.0], [-126, 0, 0, 0], STEP),  # row 0's scale with column 0
        ([1.0, 0.5], [-126, 0, 0, 0], None),  # row 1 does not use column 0
        ([1.0, 0.5], [0, -126, 0, 0], STEP),  # it uses column 1
        ([1.0, 0.5], [0, -125, 0, 0], None),  # 0.5 * 2^-125 = 2^-126
        # The largest weight: 127 * 2^121 = 1.98 * 2^127 fits, 127 * 2^122 does not.
        ([1.0, 1.0], [0, 0, 121, 0], None),
        ([1.0, 1.0], [0, 0, 122, 0], STEP),
        ([1.0, 2.0], [0, 121, 0, 0], STEP),  # row 1: 2 * 127 * 2^121
        ([2.0, 1.0], [0, 121, 0, 0], None),  # row 0 does not use column 1
        # A column no weight uses: its exponent is not checked, and reads 0.
        ([1.0, 1.0], [0, 0, 0, -127], None),
        ([1.0, 1.0], [0, 0, 0, 127], None),
        ([1.0, 1.0], [0, 0, -127, 0], RANGE),
        ([1.0, 1.0], [-128, 0, 0, 0], RANGE),
        # Both ends in one row: the smallest exponent with the scale, and the largest.
        ([2.0**-60, 1.0], [-66, 0, 60, 0], None),
        ([2.0**-60, 1.0], [-67, 0, 60, 0], STEP),
    ],
)
def test_steps_per_row_and_per_column(scales, exps, expect):
    check(*ROWS, scales, exps, expect=expect)


def test_unused_exponents_are_zero():
    ir = build(*ROWS, [1.0, 1.0], [3, -2, 5, -127])
    assert ir.col_exponents.tolist() == [3, -2, 5, 0]
    assert not ir.col_exponents.flags.writeable


@pytest.mark.parametrize(
    ("indptr", "indices", "exps", "expect"),
    [
        # Empty rows between, before and after rows with weights; scales 2^-2, 1, 2^2.
        ([0, 1, 1, 2], [0, 1], [-124, 119, 0, 0], None),  # 2^-126; 4 * 127 * 2^119 < max
        ([0, 1, 1, 2], [0, 1], [-125, 119, 0, 0], STEP),  # row 0: 2^-127
        ([0, 1, 1, 2], [0, 1], [-124, 120, 0, 0], STEP),  # row 2: 4 * 127 * 2^120 > max
        ([0, 1, 1, 2], [1, 0], [-124, 120, 0, 0], None),  # the rows swap columns
        ([0, 0, 0, 2], [0, 1], [-126, 119, 0, 0], None),  # row 2 alone
        ([0, 2, 2, 2], [0, 1], [-126, 0, 0, 0], STEP),  # row 0 alone: 2^-128
        ([0, 0, 0, 0], [], [-126, 127, 0, 0], None),  # no weights: nothing to check
    ],
)
def test_steps_with_empty_rows(indptr, indices, exps, expect):
    values = np.int8([3] * len(indices))
    check(indptr, indices, values, [0.25, 1.0, 4.0], exps, expect=expect)


def test_wide_rows_allow_less_headroom():
    # Row 0 holds a 16-bit step (|q| > 127): its largest weight is 32767 steps, not 127.
    wide = ([0, 1, 2], [0, 1], np.int16([300, 5]))
    check(*wide, [1.0, 1.0], [113, 113, 0, 0], expect=None)  # 32767 * 2^113 = 2^128 - 2^113
    check(*wide, [1.0, 1.0], [114, 0, 0, 0], expect=STEP)  # 2^129 - 2^114 > 2^128 - 2^104
    check(*wide, [1.0, 1.0], [0, 121, 0, 0], expect=None)  # row 1 is int8: 127 * 2^121
    check(*wide, [1.0, 1.0], [0, 122, 0, 0], expect=STEP)
    check(*wide, [1.0, 1.0], [0, 0, 0, 0], expect=None)


def test_per_tensor_scale():
    check(*ROWS, [0.5], [-126, 0, 0, 0], expect=STEP)
    check(*ROWS, [0.5], [-125, -125, -125, 0], expect=None)
    check(*ROWS, [0.5], [0, 0, 123, 0], expect=STEP)  # 0.5 * 127 * 2^123 = 1.98 * 2^129
    check(*ROWS, [0.5], [0, 0, 122, 0], expect=None)


def test_one_float32_step_either_side_of_the_largest_weight():
    # The smallest float32 scale whose largest weight (127 * 2^100 of it) exceeds float32's
    # max is refused; the scale one float32 step below is not.
    s = np.float32(F32_MAX / 127 / 2.0**100)
    while float(s) * 127 * 2.0**100 <= F32_MAX:
        s = np.nextafter(s, np.float32(np.inf))
    below = np.nextafter(s, np.float32(0))
    while float(below) * 127 * 2.0**100 > F32_MAX:
        s, below = below, np.nextafter(below, np.float32(0))
    check(*ROWS, [1.0, float(s)], [0, 100, 0, 0], expect=STEP)
    check(*ROWS, [1.0, float(below)], [0, 100, 0, 0], expect=None)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, 0.0, -1.0, -0.0])
def test_scales_must_be_finite_and_positive(bad):
    with pytest.raises(IRError, match=r"^scales: every scale must be finite and > 0$"):
        build(*ROWS, [1.0, bad], [0, 0, 0, 0])
    with pytest.raises(IRError, match=r"^scales: every scale must be finite and > 0$"):
        build(*ROWS, [bad], None)


@pytest.mark.parametrize("q_max", [127, 32767])
def test_scale_times_largest_step(q_max):
    # The largest float32 scale whose largest weight fits, and the next one.
    s = np.float32(F32_MAX / q_max)
    while float(s) * q_max > F32_MAX:
        s = np.nextafter(s, np.float32(0))
    up = float(np.nextafter(s, np.float32(np.inf)))
    if q_max == 127:
        check(*ROWS, [float(s), 1.0], expect=None)
        check(*ROWS, [up, 1.0], expect=SCALE8)
        check(*ROWS, [up], expect=SCALE8)  # per tensor
    else:
        wide = ([0, 2, 3], [0, 2, 1], np.int16([5, -7, 300]))  # row 1 is wide
        check(*wide, [1.0, float(s)], expect=None)
        check(*wide, [1.0, up], expect=SCALE16)
        check(*wide, [up, 1.0], expect=None)  # row 0 is int8: 127 of its steps fit


def test_bias_must_fit_float32_with_integer_weights():
    above = math.nextafter(F32_MAX, math.inf)
    for bias, expect in (([F32_MAX, -F32_MAX], None), ([0.0, above], BIAS), ([-above, -0.0], BIAS)):
        check(*ROWS, [1.0, 1.0], bias=bias, expect=expect)
    # float64 weights compute in float64: a large bias is fine there.
    LinearIR(indptr=[0, 1], indices=[0], values=[1.0], n_features=1, bias=[1e300], head="identity")


def test_random_models_around_the_boundaries():
    """Random int8/int16 models whose scales and exponents sit near both ends of the range:
    the IR refuses exactly the models the per-weight definition refuses."""
    rng = np.random.default_rng(19)
    seen = set()
    for _ in range(400):
        n_out, n_feat = int(rng.integers(1, 5)), int(rng.integers(1, 7))
        mask = rng.random((n_out, n_feat)) < 0.5
        indptr = np.concatenate([[0], np.cumsum(mask.sum(axis=1))]).tolist()
        indices = np.nonzero(mask)[1].tolist()
        nnz = len(indices)
        if rng.random() < 0.3:
            values = rng.choice([-300, 9, 127, 32767], nnz).astype(np.int16)
            scales = 2.0 ** rng.integers(-30, 30, n_out) * rng.uniform(0.5, 1, n_out)
        else:
            values = rng.choice([-127, -3, 1, 127], nnz).astype(np.int8)
            n_scales = 1 if rng.random() < 0.3 else n_out
            scales = 2.0 ** rng.integers(-30, 30, n_scales) * rng.uniform(0.5, 1, n_scales)
        low = rng.integers(-128, -90, n_feat)
        high = rng.integers(90, 128, n_feat)
        exps = np.where(rng.random(n_feat) < 0.5, low, high)
        exps[rng.random(n_feat) < 0.3] = 0
        expect = refusal(indptr, indices, values, scales.tolist(), exps.tolist(), n_features=n_feat)
        got = outcome(indptr, indices, values, scales, exps, n_features=n_feat)
        assert got == expect, (indptr, indices, values, scales, exps)
        seen.add(expect)
    assert seen == {None, STEP, RANGE}
