"""The matrix-factorization quantization pass: its contract on hand-computed rows, and the
int8 model's accuracy against Surprise (RMSE within 0.5 % of the float model's)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from edgesparse.errors import InputError
from edgesparse.frontends.surprise_factors import from_surprise_factors
from edgesparse.ir.factors import FactorIR
from edgesparse.passes.factors import quantize_factors, quantize_rows
from edgesparse.runtime.factors import FactorModel
from tests.test_factors import ALGOS, IDS, brute_force, data, fit  # noqa: F401 (data: the fixture)


def test_rows_by_hand() -> None:
    rows = np.array([[63.5, -31.75, 0.0], [0.0, 0.0, 0.0], [-127.0, 50.4, 0.5]])
    codes, scales = quantize_rows(rows)
    # row 0: r = 63.5/127 = 0.5 -> 127, -63.5 -> -64 (half to even), 0
    # row 1: all zero -> r = 1, codes 0
    # row 2: r = 1 -> -127, 50, 0.5 -> 0 (half to even)
    np.testing.assert_array_equal(codes, [[127, -64, 0], [0, 0, 0], [-127, 50, 0]])
    assert codes.dtype == np.int8 and scales.dtype == np.float32
    np.testing.assert_array_equal(scales, np.array([0.5, 1.0, 1.0], dtype=np.float32))


def test_the_error_bound_holds_and_minus_128_never_appears() -> None:
    rng = np.random.default_rng(3)
    a = rng.normal(size=(200, 17)) * rng.lognormal(size=(200, 1))
    codes, scales = quantize_rows(a)
    assert int(codes.min()) >= -127 and int(codes.max()) <= 127
    assert np.all(np.abs(codes).max(axis=1) == 127)
    r = scales.astype(np.float64)[:, None]
    assert np.all(np.abs(a - r * codes) <= r / 2 * (1 + 1e-12))


def _tiny() -> FactorIR:
    return FactorIR(
        algorithm="svd",
        biased=True,
        global_mean=3.0,
        rating_scale=(1.0, 5.0),
        user_ids=(10, 20),
        item_ids=(1, 2),
        seen_indptr=np.array([0, 1, 1], dtype=np.int64),
        seen_items=np.array([1], dtype=np.int32),
        bu=np.array([0.25, -0.5]),
        bi=np.array([0.125, 0.0]),
        p=np.array([[127, -63.5], [0.0, 0.0]]) / 64,  # r = 1/64, exact
        q=np.array([[127, 63.5], [-127, 0.0]]) / 512,  # r = 1/512
        provenance={"passes": "x"},
    )


def test_int8_estimate_by_hand() -> None:
    ir = quantize_factors(_tiny(), "int8")
    assert ir.factor_dtype == "int8" and ir.provenance["passes"] == "x,int8/row"
    np.testing.assert_array_equal(ir.p, [[127, -64], [0, 0]])
    np.testing.assert_array_equal(ir.q, [[127, 64], [-127, 0]])  # +-63.5 -> +-64 (even)
    # est(10, 1) = 3 + 0.25 + 0.125 + (1/64 * 1/512) * (127*127 - 64*64)
    r = 1 / 64 / 512
    want = ((3.0 + 0.25) + 0.125) + r * (127 * 127 - 64 * 64)
    assert FactorModel(ir).predict(10, 1, clip=False).est == want
    # unchanged: biases; a user of zeros keeps scale 1
    assert FactorModel(ir).predict(20, 2).est == 3.0 - 0.5 + 0.0
    assert ir.p_scales is not None and ir.p_scales[1] == 1.0


def test_float32_and_none_and_refusals() -> None:
    ir = _tiny()
    assert quantize_factors(ir, "none") is ir
    f32 = quantize_factors(ir, "float32")
    assert f32.factor_dtype == "float32" and f32.provenance["passes"] == "x,float32"
    got = FactorModel(f32).predict(10, 1, clip=False).est
    p, q = ir.p.astype(np.float32).astype(np.float64), ir.q.astype(np.float32).astype(np.float64)
    assert got == ((3.0 + 0.25) + 0.125) + (q[0] * p[0]).sum()
    with pytest.raises(InputError, match="already int8"):
        quantize_factors(quantize_factors(ir, "int8"), "int8")
    with pytest.raises(InputError, match="quantize must be one of"):
        quantize_factors(ir, "int4")


def _rmse(est: np.ndarray, truth: np.ndarray) -> float:
    return math.sqrt(float(np.mean((est - truth) ** 2)))


@pytest.mark.parametrize(("cls", "options"), ALGOS, ids=IDS)
def test_int8_rmse_is_within_half_a_percent_of_surprise(data, cls: str, options: Any) -> None:  # noqa: F811
    algo = fit(data, cls, options)
    n = data["truth"].size
    pairs = data["pairs"][:n]
    ref = np.array([algo.predict(u, i).est for u, i in pairs])
    ir = from_surprise_factors(algo)
    for how in ("int8", "float32"):
        est = FactorModel(quantize_factors(ir, how)).predict_many(pairs)
        assert abs(_rmse(est, data["truth"]) - _rmse(ref, data["truth"])) <= 0.005 * _rmse(
            ref, data["truth"]
        )


@pytest.mark.parametrize("how", ["int8", "float32"])
def test_quantized_recommend_equals_brute_force(data, how: str) -> None:  # noqa: F811
    model = FactorModel(quantize_factors(from_surprise_factors(fit(data, *ALGOS[0])), how))
    for uid in ("u0", "u9", "nobody"):
        got = model.recommend(uid, 20)
        assert [p.iid for p in got] == brute_force(model, uid, 20, exclude_seen=True)
