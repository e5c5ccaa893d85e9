"""Quantized models store their bias rounded to float32: the runtimes' own arithmetic, so no
output changes, and the blob stores 4 bytes per output (quantize module contract)."""

from __future__ import annotations

import numpy as np
import pytest

from edgesparse.formats import esb
from edgesparse.ir import FeatureStats, from_dense
from edgesparse.passes.quantize import quantize_int8, raise_rows, to_float32
from edgesparse.runtime.model import Model

# Not float32 numbers: float32(0.1) = 0.100000001490116..., float32(1/3) = 0.3333333432674408.
BIAS = np.array([0.1, -1.0 / 3.0, 1e-9 + 2.0])


def _ref(stats: bool):
    rng = np.random.default_rng(3)
    w = rng.standard_normal((3, 5)) * [1.0, 10.0, 0.01, 100.0, 1.0]
    ir = from_dense(w, bias=BIAS, head="softmax", classes=np.arange(3))
    if stats:
        ir = ir.replace(
            input_stats=FeatureStats(center=rng.normal(size=5), spread=np.ones(5), source="t")
        )
    return ir


def test_bias_is_float32_without_statistics() -> None:
    ref = _ref(stats=False)
    for q in (quantize_int8(ref), quantize_int8(ref, columns="pow2"), to_float32(ref)):
        np.testing.assert_array_equal(q.bias, [np.float32(0.1), np.float32(-1 / 3), 2.0])


@pytest.mark.parametrize("stats", [False, True])
def test_float32_bias_changes_no_output(stats: bool) -> None:
    ref = _ref(stats=stats)
    X = np.random.default_rng(4).standard_normal((50, 5)) * 10
    q8 = quantize_int8(ref, columns="pow2")
    for q in (q8, raise_rows(ref, q8, [1]), to_float32(ref)):
        assert np.all(q.bias == q.bias.astype(np.float32))
        # The unrounded bias: the original's, plus (W - W_q) @ mu where the centre is known
        # (int8 steps; float32 weights are not bias-corrected).
        want = ref.bias.copy()
        if stats and q.is_quantized:
            want += (ref.to_dense() - q.to_dense()) @ ref.input_stats.center
        assert not np.all(want == want.astype(np.float32))
        # Nearest float32 (to half a float32 step; the sum's float64 order may differ here).
        half_step = np.spacing(np.abs(q.bias).astype(np.float32)).astype(np.float64) / 2
        assert np.all(np.abs(q.bias - want) <= half_step * (1 + 1e-6))
        # Any float64 bias that rounds to the same float32 gives the same outputs.
        nearby = q.bias + half_step / 2
        got = Model(q).decision_function(X)
        np.testing.assert_array_equal(got, Model(q.replace(bias=nearby)).decision_function(X))
        if not (stats and q.is_quantized):
            np.testing.assert_array_equal(got, Model(q.replace(bias=want)).decision_function(X))


def test_blob_stores_the_bias_in_four_bytes_per_output() -> None:
    q = quantize_int8(_ref(stats=True), columns="pow2")
    info = esb.verify(esb.encode(q))
    assert info["sections"]["bias"]["bytes"] == 4 * 3
    np.testing.assert_array_equal(esb.decode(esb.encode(q)).bias, q.bias)
