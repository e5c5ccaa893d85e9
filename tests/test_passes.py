"""Pruning and quantization passes, against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from edgesparse.errors import InputError
from edgesparse.ir import from_dense
from edgesparse.passes.prune import prune
from edgesparse.passes.quantize import int8_scales, quantize_int8, to_float32

W = np.array(
    [
        [0.0, 1.27, -0.635, 0.004],
        [0.0, 0.0, 0.0, 0.0],
        [2.54, -2.54, 1.0, 0.0],
    ]
)


def make(w: np.ndarray = W):
    return from_dense(w, bias=np.zeros(w.shape[0]), head="identity", squeeze=False)


def test_int8_per_row_hand_computed():
    q = quantize_int8(make())
    # Row 0: s = 1.27/127 = 0.01; -0.635/0.01 = -63.5 rounds half to even -> -64;
    # 0.004/0.01 = 0.4 -> 0, so it is dropped. Row 1 is empty: s = 1. Row 2: s = 0.02.
    np.testing.assert_array_equal(q.scales, np.float32([0.01, 1.0, 0.02]))
    np.testing.assert_array_equal(q.values, np.int8([127, -64, 127, -127, 50]))
    np.testing.assert_array_equal(q.indices, [1, 2, 0, 1, 2])
    np.testing.assert_array_equal(q.indptr, [0, 2, 2, 5])
    assert q.quantization == "int8-per-row"


def test_int8_per_tensor_hand_computed():
    q = quantize_int8(make(), granularity="tensor")
    # s = 2.54/127 = 0.02; 1.27/0.02 = 63.5 -> 64 (half to even); -0.635/0.02 = -31.75 -> -32.
    np.testing.assert_array_equal(q.scales, np.float32([0.02]))
    np.testing.assert_array_equal(q.values, np.int8([64, -32, 127, -127, 50]))
    assert q.quantization == "int8-per-tensor"


def test_int8_error_bound_and_zeros():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(6, 50)) * rng.uniform(0.01, 100, size=(6, 1))
    w[rng.random(w.shape) < 0.3] = 0.0
    ir = make(w)
    q = quantize_int8(ir)
    back = q.to_dense()
    s = q.scales.astype(np.float64)[:, None]
    assert np.all(np.abs(back - w) <= s / 2 + 1e-6 * np.abs(w))
    assert np.all(back[w == 0] == 0)  # exact zeros stay exactly zero
    assert np.all(np.abs(q.values) <= 127)
    # The largest weight of each row maps to +-127.
    peak = np.abs(q.values).max()
    assert peak == 127


def test_all_zero_model_gets_valid_scales():
    q = quantize_int8(make(np.zeros((2, 3))))
    assert q.nnz == 0
    np.testing.assert_array_equal(q.scales, np.float32([1.0, 1.0]))
    assert int8_scales(make(np.zeros((2, 3))), granularity="tensor").tolist() == [1.0]


def test_requantizing_int8_is_stable():
    q = quantize_int8(make())
    again = quantize_int8(q)
    np.testing.assert_array_equal(again.values, q.values)
    np.testing.assert_array_equal(again.scales, q.scales)


def test_float32_pass():
    w = np.array([[1e-60, 1.0, 1 / 3]])
    f = to_float32(make(w))
    assert f.values.dtype == np.float32
    np.testing.assert_array_equal(f.indices, [1, 2])  # 1e-60 underflows to 0 and is dropped
    assert f.values[1] == np.float32(1 / 3)


def test_prune_global_sparsity_counts_existing_zeros():
    ir = make()
    # 12 cells, 6 nonzeros: sparsity 0.5 keeps 6, i.e. everything.
    assert prune(ir, sparsity=0.5).nnz == 6
    # Sparsity 0.75 keeps 3: the three largest magnitudes 2.54, -2.54, 1.27.
    p = prune(ir, sparsity=0.75)
    np.testing.assert_array_equal(
        p.to_dense(),
        [[0, 1.27, 0, 0], [0, 0, 0, 0], [2.54, -2.54, 0, 0]],
    )
    assert prune(ir, sparsity=1.0).nnz == 0
    assert "prune sparsity=0.75 scope=global" in p.provenance["passes"]


def test_prune_per_row():
    # Per row, sparsity 0.5 of 4 features keeps the 2 largest of each row.
    p = prune(make(), sparsity=0.5, scope="row")
    np.testing.assert_array_equal(
        p.to_dense(), [[0, 1.27, -0.635, 0], [0, 0, 0, 0], [2.54, -2.54, 0, 0]]
    )


def test_prune_ties_keep_exact_count():
    ir = make(np.ones((2, 5)))
    assert prune(ir, sparsity=0.3).nnz == 7
    assert prune(ir, sparsity=0.4, scope="row").nnz == 6


def test_prune_threshold_on_int8_keeps_scales():
    q = quantize_int8(make())
    p = prune(q, threshold=1.0)  # real values: 1.27, -0.64, 2.54, -2.54, 1.0
    np.testing.assert_array_equal(p.values, np.int8([127, 127, -127, 50]))
    np.testing.assert_array_equal(p.scales, q.scales)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sparsity": 1.5}, "sparsity must be between 0 and 1, got 1.5"),
        ({"sparsity": float("nan")}, "sparsity must be between 0 and 1, got nan"),
        ({"threshold": -1.0}, "threshold must be a finite number >= 0, got -1.0"),
        ({}, "prune needs exactly one of sparsity or threshold"),
        ({"sparsity": 0.5, "scope": "col"}, "prune scope must be one of global, row, got 'col'"),
    ],
)
def test_prune_rejects_bad_arguments(kwargs, message):
    with pytest.raises(InputError) as err:
        prune(make(), **kwargs)
    assert str(err.value) == message


def test_quantize_rejects_bad_granularity():
    with pytest.raises(InputError, match="granularity must be one of row, tensor"):
        quantize_int8(make(), granularity="column")
