"""Raised rows: int8 with chosen rows at 16 bits (``quantize.raise_rows``), hand-computed, and
how the safe default picks them (``fidelity.raise_precision``)."""

from __future__ import annotations

import numpy as np
import pytest

from edgesparse.errors import InputError, IRError
from edgesparse.formats import esb
from edgesparse.formats import onnx as eo
from edgesparse.ir import FeatureStats, LinearIR, from_dense
from edgesparse.passes.fidelity import measure, raise_precision
from edgesparse.passes.quantize import quantize_int8, raise_rows
from edgesparse.runtime import loads
from edgesparse.runtime.model import Model

# Row 0's second weight is 1/333 of its first: int8 rounds it to 0, int16 keeps it.
W = np.array([[1.0, 0.003], [0.5, 0.2]])


def make(w: np.ndarray = W) -> LinearIR:
    return from_dense(w, bias=np.zeros(w.shape[0]), head="identity", squeeze=False)


def test_raise_rows_hand_computed() -> None:
    ref = make()
    q8 = quantize_int8(ref)
    # int8: row 0 r = 1/127, q = [127, 0.381 -> 0] (dropped); row 1 r = 0.5/127,
    # q = [127, 50.8 -> 51].
    np.testing.assert_array_equal(q8.values, np.int8([127, 127, 51]))
    raised = raise_rows(ref, q8, [0])
    # Row 0 at 16 bits: r = 1/32767, q = [32767, 98.301 -> 98]; row 1 exactly as int8.
    assert raised.values.dtype == np.int16
    np.testing.assert_array_equal(raised.values, [32767, 98, 127, 51])
    np.testing.assert_array_equal(raised.indptr, [0, 2, 4])
    np.testing.assert_array_equal(raised.scales, np.float32([1 / 32767, 0.5 / 127]))
    np.testing.assert_array_equal(raised.wide_rows, [True, False])
    assert raised.quantization == "int8/int16-per-row"
    # |w - r*q| <= r/2 per weight
    err = np.abs(raised.to_dense() - W)
    assert err[0].max() <= 0.5 / 32767 + 1e-12 and err[1].max() <= 0.25 / 127 + 1e-12
    assert "1 of 2 rows raised to int16" in raised.provenance["passes"]
    assert raise_rows(ref, q8, []) is q8


def test_raise_rows_keeps_exponents_and_corrects_the_bias() -> None:
    stats = FeatureStats(center=[2.0, 100.0], spread=[1.0, 1000.0], source="test")
    ref = make().replace(input_stats=stats)
    q8 = quantize_int8(ref, columns="pow2")
    assert q8.col_exponents is not None
    raised = raise_rows(ref, q8, [1])
    np.testing.assert_array_equal(raised.col_exponents, q8.col_exponents)
    # Row 0 untouched (steps, scale and bias), row 1 at 16 bits with b' = b + (w - w_q) @ mu.
    np.testing.assert_array_equal(raised.to_dense()[0], q8.to_dense()[0])
    assert raised.bias[0] == q8.bias[0]
    want = (W[1] - raised.to_dense()[1]) @ np.array([2.0, 100.0])
    assert raised.bias[1] == np.float32(want)


def test_raise_rows_refuses() -> None:
    ref = make()
    with pytest.raises(InputError, match="one int8 scale per row"):
        raise_rows(ref, quantize_int8(ref, granularity="tensor"), [0])
    with pytest.raises(InputError, match="needs an int8 model"):
        raise_rows(ref, ref, [0])
    with pytest.raises(InputError, match=r"rows must lie in \[0, 2\)"):
        raise_rows(ref, quantize_int8(ref), [2])


def test_ir_checks_int16_values() -> None:
    base = dict(indptr=[0, 2], indices=[0, 1], n_features=2, bias=[0.0], head="identity")
    LinearIR(values=np.int16([300, -32767]), scales=[0.5], **base)
    with pytest.raises(IRError, match=r"int16 values must lie in \[-32767, 32767\]"):
        LinearIR(values=np.int16([300, -32768]), scales=[0.5], **base)
    two = dict(base, indptr=[0, 1, 2], bias=[0.0, 0.0], squeeze=False)
    with pytest.raises(IRError, match="int16 rows need one scale per row"):
        LinearIR(values=np.int16([300, 5]), scales=[0.5], **two)
    # 1e35 * 127 fits float32, 1e35 * 32767 does not: only a wide row overflows.
    LinearIR(values=np.int16([100, 5]), scales=[1e35, 1e35], **two)
    with pytest.raises(IRError, match=r"scale \* 32767 overflows float32"):
        LinearIR(values=np.int16([300, 5]), scales=[1e35, 1e35], **two)
    # -128 is an ordinary 16-bit step (it makes its row wide).
    assert LinearIR(values=np.int16([-128, 5]), scales=[1.0, 1.0], **two).wide_rows.tolist() == [
        True,
        False,
    ]


def test_mixed_widths_layout_is_as_specified() -> None:
    raised = raise_rows(make(), quantize_int8(make()), [0])
    blob = esb.encode(raised)
    info = esb.verify(blob)
    assert info["sections"]["values"]["encoding"] == "mixed-int8-int16"
    assert info["int16_rows"] == 1
    assert (info["values"], info["quantization"]) == ("int8", "int8/int16-per-row")
    off = info["sections"]["values"]["offset"]
    # bitmap 0b01; row 0: i16 LE 32767, 98; row 1: i8 127, 51
    want = bytes([0x01, 0xFF, 0x7F, 0x62, 0x00, 0x7F, 0x33])
    assert blob[off : off + len(want)] == want
    assert info["sections"]["values"]["bytes"] == len(want)
    got = esb.decode(blob)
    np.testing.assert_array_equal(got.values, raised.values)
    assert esb.encode(got) == blob


def test_int16_rows_that_fit_int8_are_written_as_int8() -> None:
    q8 = quantize_int8(make())
    same = q8.replace(values=q8.values.astype(np.int16))
    assert not same.wide_rows.any()
    assert esb.encode(same) == esb.encode(q8)


@pytest.mark.parametrize("sparse", [False, True])
def test_onnx_of_raised_rows_equals_the_numpy_runtime(sparse: bool) -> None:
    rng = np.random.default_rng(3)
    w = rng.normal(size=(4, 30)) * 10.0 ** rng.uniform(-3, 1, size=(1, 30))
    ref = from_dense(w, bias=rng.normal(size=4), head="softmax", classes=np.arange(4))
    raised = raise_rows(ref, quantize_int8(ref, columns="pow2"), [1, 3])
    X = rng.normal(size=(200, 30))
    onnx_model = loads(eo.encode(raised, sparse=sparse))
    numpy_model = Model(raised)
    np.testing.assert_allclose(
        onnx_model.decision_function(X), numpy_model.decision_function(X), rtol=1e-5, atol=1e-5
    )
    np.testing.assert_array_equal(onnx_model.predict(X), numpy_model.predict(X))
    with pytest.raises(InputError, match="in every row"):
        eo.encode(raised, int8_form="matmulinteger")


def test_raise_precision_raises_the_worst_rows_first() -> None:
    # Row 2 has the coarsest int8 grid for its important small weights; on these rows it is
    # the only one whose scores int8 moves much, so one raised row meets the bar.
    rng = np.random.default_rng(0)
    w = rng.normal(size=(3, 8))
    w[2] = [40.0, 0.3, -0.25, 0.2, 0.3, -0.2, 0.25, 0.3]
    ref = from_dense(w, bias=np.zeros(3), head="identity", squeeze=False)
    q8 = quantize_int8(ref)
    X = rng.normal(size=(500, 8))
    X[:, 0] *= 1e-3  # the large weight's input is tiny: the small ones carry row 2
    assert not measure(ref, q8, X, basis="data").meets()
    raised, fid, k = raise_precision(ref, q8, X, basis="data")
    assert (k, fid.meets()) == (1, True)
    assert raised.wide_rows.tolist() == [False, False, True]
