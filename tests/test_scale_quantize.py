"""Scale-aware int8 (per-column power-of-two exponents, bias correction), hand-computed."""

from __future__ import annotations

import numpy as np
import pytest

from edgesparse.errors import FormatError, IRError
from edgesparse.formats import esb
from edgesparse.ir import FeatureStats, LinearIR, from_dense
from edgesparse.passes.fidelity import choose_int8, data_stats, measure, probe_rows
from edgesparse.passes.quantize import column_exponents, quantize_int8
from edgesparse.runtime.model import Model

# Column 1 is 250x smaller than column 0: one scale per row would round it to 0 or ±1.
W = np.array([[1.0, 0.004], [0.5, 0.003]])


def make(w: np.ndarray = W, stats: FeatureStats | None = None) -> LinearIR:
    ir = from_dense(w, bias=np.zeros(w.shape[0]), head="identity", squeeze=False)
    return ir if stats is None else ir.replace(input_stats=stats)


def test_data_free_exponents_hand_computed():
    # colmax = [1, 0.004]: log2 = [0, -7.966], centred on their median -3.983 -> [4, -4].
    np.testing.assert_array_equal(column_exponents(make()), [4, -4])
    q = quantize_int8(make(), columns="pow2")
    np.testing.assert_array_equal(q.col_exponents, [4, -4])
    # v = w / 2^e: row 0 [1/16, 0.064] -> r = 0.064/127, q = [0.0625/r = 124.02 -> 124, 127];
    # row 1 [1/32, 0.048] -> r = 0.048/127, q = [0.03125/r = 82.68 -> 83, 127].
    np.testing.assert_array_equal(q.scales, np.float32([0.064 / 127, 0.048 / 127]))
    np.testing.assert_array_equal(q.values, np.int8([124, 127, 83, 127]))
    np.testing.assert_allclose(
        q.real_values(), [124 * 0.064 / 127 * 16, 0.004, 83 * 0.048 / 127 * 16, 0.003], rtol=1e-6
    )
    assert q.column_scaling == "pow2"
    # Without exponents the small column is lost to rounding: 0.004 / (1/127) = 0.51 -> 1.
    plain = quantize_int8(make(), columns="none")
    assert plain.col_exponents is None
    np.testing.assert_array_equal(plain.values, np.int8([127, 1, 127, 1]))


def test_exponents_from_stats_and_bias_correction_hand_computed():
    stats = FeatureStats(center=[2.0, 100.0], spread=[1.0, 1000.0], source="test")
    # -log2(spread) = [0, -9.966], centred on -4.983 -> [4.983, -4.983] -> [5, -5].
    np.testing.assert_array_equal(column_exponents(make(stats=stats)), [5, -5])
    q = quantize_int8(make(stats=stats), columns="pow2")
    # Row 0: v = [1/32, 0.128], r = 0.128/127, q = [31.006 -> 31, 127];
    # row 1: v = [0.5/32 = 0.015625, 0.096], r = 0.096/127, q = [20.67 -> 21, 127].
    np.testing.assert_array_equal(q.values, np.int8([31, 127, 21, 127]))
    # The contract multiplies r * q in float32 (r as stored).
    w0 = float(q.scales[0] * np.float32(31)) * 32
    w1 = float(q.scales[1] * np.float32(21)) * 32
    np.testing.assert_allclose(q.scales, [0.128 / 127, 0.096 / 127], rtol=1e-7)
    v0 = float(q.scales[0] * np.float32(127)) / 32  # q = 127 gives 0.004 up to float32 rounding
    v1 = float(q.scales[1] * np.float32(127)) / 32
    np.testing.assert_allclose([v0, v1], [0.004, 0.003], rtol=1e-7)
    # b' = float32(b + (W - W_q) @ centre): what every runtime adds for an int8 model
    want = [(1.0 - w0) * 2.0 + (0.004 - v0) * 100, (0.5 - w1) * 2.0 + (0.003 - v1) * 100]
    np.testing.assert_array_equal(q.bias, np.float32(want))


def test_error_bound_per_weight():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((6, 40)) * 10.0 ** rng.uniform(-4, 4, 40)
    ir = make(w)
    q = quantize_int8(ir, columns="pow2")
    step = q.scales[q.row_ids()].astype(np.float64) * np.exp2(q.col_exponents[q.indices])
    dense_q = np.zeros_like(w)
    dense_q[q.row_ids(), q.indices] = q.real_values()
    # Every weight, stored or dropped, is within half a step of its own grid.
    full_step = np.zeros_like(w)
    full_step[q.row_ids(), q.indices] = step
    bound = np.broadcast_to(q.scales[:, None], w.shape) * np.exp2(
        column_exponents(ir).astype(float)
    )
    assert np.all(np.abs(w - dense_q) <= bound / 2 * (1 + 1e-6))
    assert np.all(np.abs(q.values) <= 127)


def test_equal_exponents_are_not_stored():
    w = np.array([[1.0, -0.5], [0.25, 2.0]])  # colmax 1 and 2: rint(±0.5) -> 0, 0
    assert quantize_int8(make(w), columns="pow2").col_exponents is None


def test_exponents_fall_back_when_out_of_float32_range():
    # Weights of 1e-60 next to 1e30: exponents that far apart cannot be stored; per-row
    # scales still can (the tiny weight rounds to 0 and is dropped).
    q = quantize_int8(make(np.array([[1e30, 1e-60]])), columns="pow2")
    assert q.col_exponents is None
    np.testing.assert_array_equal(q.values, np.int8([127]))


@pytest.mark.parametrize(
    ("exps", "message"),
    [
        ([0, 0, 1], "col_exponents: has 3 entries, expected n_features=2"),
        ([127, -127], r"col_exponents: every exponent must lie in \[-126, 127\]"),
        ([-126, 0], "col_exponents: scale \\* 2\\^exponent leaves the float32 range"),
        ([0.5, 1.0], "col_exponents: must hold integers"),
    ],
)
def test_ir_checks_exponents(exps, message):
    q = quantize_int8(make(), columns="none")
    with pytest.raises(IRError, match=message):
        q.replace(col_exponents=np.array(exps))


def test_ir_rejects_exponents_on_float_values():
    with pytest.raises(IRError, match="only int8 values have column exponents"):
        make().replace(col_exponents=np.array([1, 0]))


def test_unused_columns_exponents_are_normalised_to_zero():
    w = np.array([[1.0, 0.0, 0.004]])
    q = quantize_int8(make(w), columns="none").replace(col_exponents=np.array([3, 9, -3]))
    np.testing.assert_array_equal(q.col_exponents, [3, 0, -3])


@pytest.mark.parametrize("columns", ["all", "varint", "bitmap", "eliasfano"])
def test_esb_round_trip_with_exponents(columns):
    rng = np.random.default_rng(1)
    w = rng.standard_normal((3, 30)) * 10.0 ** rng.uniform(-3, 3, 30)
    w[:, ::4] = 0.0  # unused columns: the column list is shorter than n_features
    q = quantize_int8(make(w), columns="pow2")
    assert q.col_exponents is not None
    back = esb.decode(esb.encode(q, columns=columns))
    np.testing.assert_array_equal(back.col_exponents, q.col_exponents)
    np.testing.assert_array_equal(back.real_values(), q.real_values())
    x = rng.standard_normal((5, 30))
    np.testing.assert_array_equal(Model(back).predict(x), Model(q).predict(x))


def test_esb_rejects_exponent_on_unused_column():
    w = np.array([[1.0, 0.0, 0.004]])
    q = quantize_int8(make(w), columns="pow2")
    blob = bytearray(esb.encode(q, columns="all"))
    info = esb.verify(bytes(blob))
    blob[info["sections"]["exponents"]["offset"] + 1] = 5  # column 1 has no weights
    with pytest.raises(FormatError, match="column 1 has no weights but a nonzero exponent"):
        esb.decode(_reseal(blob))


def _reseal(blob: bytearray) -> bytes:
    """Recompute every CRC after an edit (the tests' corruption is then semantic only)."""
    from tests.test_esb import reseal

    return reseal(blob)


def test_data_stats_dense_and_csr():
    import scipy.sparse as sp

    from edgesparse.data import CSRArrays

    X = np.array([[1.0, 0.0, 5.0], [3.0, 0.0, 5.0], [5.0, 4.0, 5.0]])
    st = data_stats(X)
    assert st is not None
    np.testing.assert_allclose(st.center, [3.0, 4.0 / 3.0, 5.0])
    std1 = np.std([0.0, 0.0, 4.0])
    # The constant column takes the median of the others' spreads.
    np.testing.assert_allclose(st.spread, [np.sqrt(8 / 3), std1, np.median([np.sqrt(8 / 3), std1])])
    # CSR rows: the spread is the RMS of the stored values (column 1 is 4 when present).
    m = sp.csr_matrix(X)
    for data in (m, CSRArrays(m.data, m.indices, m.indptr, m.shape)):
        st = data_stats(data)
        assert st is not None
        np.testing.assert_allclose(st.center, [3.0, 4.0 / 3.0, 5.0])
        np.testing.assert_allclose(st.spread, [np.sqrt(35 / 3), 4.0, 5.0])
    assert data_stats(np.zeros((0, 3))) is None


def test_choose_int8_prefers_exponents_on_mixed_scales_and_measures():
    rng = np.random.default_rng(2)
    scale = 10.0 ** rng.uniform(-3, 4, 20)
    w = rng.standard_normal((4, 20)) / scale  # weights in raw units of very different columns
    ir = from_dense(w, bias=np.zeros(4), head="hard", classes=np.arange(4))
    stats = FeatureStats(center=np.zeros(20), spread=scale, source="test")
    chosen, fid = choose_int8(ir.replace(input_stats=stats))
    assert chosen.col_exponents is not None
    assert fid is not None and fid.basis == "probe" and fid.metric == "agreement"
    X = probe_rows(stats, n=2000, seed=5)
    # The measurement is the runtime's: recompute it independently.
    want = np.mean(Model(ir).predict(X) == Model(chosen).predict(X))
    assert measure(ir, chosen, X, basis="data").value == pytest.approx(want)
    plain = quantize_int8(ir, columns="none")
    assert want >= 0.995 > np.mean(Model(ir).predict(X) == Model(plain).predict(X))


def test_data_free_exponents_keep_only_the_outliers_within_budget():
    # 600 columns, no statistics: at most max(256, 1% of nnz) columns keep their own exponent,
    # those of the largest exponents; the others share the floor (0 after centring).
    rng = np.random.default_rng(3)
    w = rng.standard_normal((2, 600)) * 2.0 ** rng.integers(-6, 7, 600)
    ir = make(w)
    e = column_exponents(ir)
    raw = np.log2(np.abs(w).max(axis=0))
    full = np.rint(raw - np.median(raw))
    kept = np.sort(full)[::-1]
    floor = kept[256]
    np.testing.assert_array_equal(e, np.maximum(full, floor) - floor)
    assert np.count_nonzero(e) <= 256
    # With statistics every column keeps its exponent: the scales are known to matter.
    stats = FeatureStats(center=np.zeros(600), spread=2.0 ** rng.integers(-6, 7, 600), source="t")
    assert np.count_nonzero(column_exponents(make(w, stats))) > 256


@pytest.mark.parametrize("columns", ["all", "eliasfano"])
def test_esb_exceptions_encoding_round_trip(columns):
    # Few distinct exponents: the exceptions encoding is the smaller one and decodes exactly.
    rng = np.random.default_rng(4)
    w = rng.standard_normal((3, 2000)) * 0.01
    w[:, rng.choice(2000, 1500, replace=False)] = 0.0
    w[0, :40] = rng.standard_normal(40) * 50.0  # 40 outlier columns
    q = quantize_int8(make(w), columns="pow2")
    assert q.col_exponents is not None
    blob = esb.encode(q, columns=columns)
    info = esb.verify(blob)
    assert info["sections"]["exponents"]["encoding"] == "exceptions"
    back = esb.decode(blob)
    np.testing.assert_array_equal(back.col_exponents, q.col_exponents)
    np.testing.assert_array_equal(back.real_values(), q.real_values())


def _exceptions_blob() -> tuple[bytearray, int, LinearIR]:
    w = np.zeros((1, 300))
    w[0, :200] = 0.01
    w[0, 200:203] = 100.0
    q = quantize_int8(make(w), columns="pow2")
    blob = bytearray(esb.encode(q, columns="all"))
    info = esb.verify(bytes(blob))
    assert info["sections"]["exponents"]["encoding"] == "exceptions"
    return blob, info["sections"]["exponents"]["offset"], q


def test_exceptions_encoding_layout_is_as_specified():
    blob, off, q = _exceptions_blob()
    # u32 count 3, i8 default 0, the three exponents, then gaps 200, 0, 0.
    k = int.from_bytes(blob[off : off + 4], "little")
    assert k == 3 and blob[off + 4] == 0
    assert bytes(blob[off + 5 : off + 8]) == q.col_exponents[200:203].astype("i1").tobytes()
    assert bytes(blob[off + 8 : off + 12]) == bytes([0xC8, 0x01, 0x00, 0x00])


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda b, o: b.__setitem__(slice(o, o + 4), (301).to_bytes(4, "little")),
            "lists 301 exceptions, but there are only 300 listed columns",
        ),
        (
            lambda b, o: b.__setitem__(o + 4, 0x81),  # default -127
            r"default exponent -127 is outside \[-126, 127\]",
        ),
        (lambda b, o: b.__setitem__(o + 5, 0), "exception 0 has exponent 0: outside"),
        (lambda b, o: b.__setitem__(o + 11, 0x80), "holds 2 numbers, expected 3"),
        (
            lambda b, o: b.__setitem__(slice(o + 8, o + 10), bytes([0xAB, 0x02])),
            "exception 1 names column position 300, beyond the 300 listed",
        ),
        (
            lambda b, o: b.__setitem__(slice(o + 8, o + 10), bytes([0xFA, 0x01])),
            "column 250 has no weights but an exception exponent",
        ),
    ],
)
def test_exceptions_encoding_rejects(edit, message):
    blob, off, _ = _exceptions_blob()
    edit(blob, off)
    with pytest.raises(FormatError, match=message):
        esb.decode(_reseal(blob))


def test_outlier_columns_lift_with_statistics():
    # 100 columns of one scale; column 0's standardized weight is 64x the others': it is one
    # of at most 5% outliers and gets its own exponent, log2(64) = 6 above the rest.
    w = np.full((2, 100), 0.01)
    w[0, 0] = 0.64
    stats = FeatureStats(center=np.zeros(100), spread=np.ones(100), source="t")
    e = column_exponents(make(w, stats))
    assert e[0] == 6 and np.all(e[1:] == 0)
