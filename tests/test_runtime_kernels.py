"""The numpy runtime's kernels against a float64 oracle, and where they check NaN/inf.

The runtime checks NaN/inf on what its kernels read: a NaN/inf in a column some output uses
reaches a score (checked once per call), and the columns no output uses are checked
separately. These tests pin that the same inputs are refused with the same messages as a
check over the whole input would give, on every kernel.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from edgesparse.errors import InputError
from edgesparse.ir import from_dense
from edgesparse.runtime import model as model_module
from edgesparse.runtime.model import Model

NAN_MESSAGE = "Input X contains NaN or infinity; impute or drop those values first"


def make_model(w: np.ndarray, *, dtype=np.float32) -> Model:
    ir = from_dense(w, bias=np.arange(w.shape[0], dtype=float), head="identity", squeeze=False)
    return Model(ir.replace(values=ir.values.astype(dtype)))


def oracle(model: Model, X) -> np.ndarray:
    dense = X.toarray() if sp.issparse(X) else np.asarray(X, dtype=np.float64)
    return dense @ model.ir.to_dense().T + model.ir.bias


def sparse_weights(rng, n_outputs: int, n_features: int, fill: float) -> np.ndarray:
    w = rng.standard_normal((n_outputs, n_features))
    w[rng.random(w.shape) >= fill] = 0
    w[:, ::7] = 0  # columns no output uses
    return w


@pytest.fixture
def small_dense() -> Model:
    w = sparse_weights(np.random.default_rng(0), 3, 12, 0.9)
    model = make_model(w)
    assert model._dense and model._all_used and model._unused.size
    return model


def force_sparse_columns(monkeypatch) -> None:
    # The sparse-column layout, whatever the model's size and fill.
    monkeypatch.setattr(model_module, "_DENSE_BLOCK_CELLS", 0)
    monkeypatch.setattr(model_module, "_DENSE_BLOCK_FILL", 2.0)


@pytest.fixture
def sliced(monkeypatch) -> Model:
    # Small slices so that one call goes through many of them.
    monkeypatch.setattr(model_module, "_SLICE_CELLS", 40)
    force_sparse_columns(monkeypatch)
    w = sparse_weights(np.random.default_rng(1), 4, 300, 0.1)
    model = make_model(w)
    assert not model._dense and model._slice_ptr.size > 5
    return model


@pytest.fixture
def gathered(monkeypatch) -> Model:
    # A dense block of few used columns, gathered a few rows at a time.
    monkeypatch.setattr(model_module, "_SLICE_CELLS", 40)
    w = np.zeros((3, 400))
    w[:, [5, 17, 200, 399]] = np.random.default_rng(7).standard_normal((3, 4))
    model = make_model(w)
    assert model._dense and not model._all_used
    return model


@pytest.mark.parametrize("kernel", ["small_dense", "sliced", "gathered"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_rows", [1, 2, 37])  # sparse-column models: per-output sums, slices
def test_dense_input_matches_the_oracle(request, kernel: str, dtype, n_rows: int) -> None:
    model = request.getfixturevalue(kernel)
    X = np.random.default_rng(2).standard_normal((n_rows, model.n_features_in_)).astype(dtype)
    np.testing.assert_allclose(model.decision_function(X), oracle(model, X), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("kernel", ["small_dense", "sliced", "gathered"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("where", ["used", "unused"])
@pytest.mark.parametrize("check", ["one-gather", "gathered-runs", "whole-input"])
@pytest.mark.parametrize("n_rows", [1, 5])
def test_nan_or_inf_anywhere_is_refused_with_the_same_message(
    request, monkeypatch, kernel: str, bad: float, where: str, check: str, n_rows: int
) -> None:
    # Unused columns are checked by one gather (small inputs), by gathering them a run of
    # rows at a time (few columns) or by a chunked pass over X (many): all three.
    if check != "one-gather":
        monkeypatch.setattr(model_module, "_FINITE_CHUNK", 2)
        monkeypatch.setattr(model_module, "_UNUSED_GATHER", 1.0 if check == "gathered-runs" else 0)
    model = request.getfixturevalue(kernel)
    X = np.ones((n_rows, model.n_features_in_))
    used = np.setdiff1d(np.arange(model.n_features_in_), model._unused)
    column = (model._unused if where == "unused" else used)[1]
    X[-1, column] = bad
    for method in ("predict", "decision_function"):
        with pytest.raises(InputError) as info:
            getattr(model, method)(X)
        assert str(info.value) == NAN_MESSAGE


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_score_overflow_is_still_reported_as_one(small_dense: Model, dtype) -> None:
    model = make_model(np.abs(small_dense.ir.to_dense()) + 1)
    X = np.full((2, model.n_features_in_), 1e38, dtype=dtype)
    with pytest.raises(InputError, match="makes a score overflow this model's float32"):
        model.decision_function(X)


def test_finite_scores_whose_sum_overflows_are_not_refused() -> None:
    # The cheap test sums the scores; an overflow of that sum alone is not an error.
    model = make_model(np.array([[1.0], [1.0], [1.0]]))
    X = np.array([[3e38]], dtype=np.float32)
    got = model.decision_function(X)
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, oracle(model, X), rtol=1e-6)


@pytest.mark.parametrize("block_cells", [1 << 20, 0])  # dense block of used columns, or not
def test_csr_input_to_a_sparse_column_model_matches_the_oracle(monkeypatch, block_cells) -> None:
    monkeypatch.setattr(model_module, "_CSR_BLOCK_CELLS", block_cells)
    monkeypatch.setattr(model_module, "_GATHER_CHUNK", 64)  # many chunks, many row ranges
    force_sparse_columns(monkeypatch)
    rng = np.random.default_rng(3)
    model = make_model(sparse_weights(rng, 6, 5000, 0.01))
    assert not model._dense
    X = sp.random(200, 5000, density=0.02, format="lil", random_state=4)
    X[7] = 0  # an empty row
    X = X.tocsr()
    got = model.decision_function(X)
    np.testing.assert_allclose(got, oracle(model, X), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(model.decision_function(X.toarray()), got, rtol=1e-4, atol=1e-4)


def test_csr_block_lookup_without_a_table(monkeypatch) -> None:
    monkeypatch.setattr(model_module, "_POS_MAP_FEATURES", 0)  # binary search instead
    force_sparse_columns(monkeypatch)
    model = make_model(sparse_weights(np.random.default_rng(5), 6, 5000, 0.01))
    X = sp.random(50, 5000, density=0.05, format="csr", random_state=6)
    np.testing.assert_allclose(model.decision_function(X), oracle(model, X), rtol=1e-4, atol=1e-4)


def test_csr_nan_is_refused_on_every_kernel(sliced: Model) -> None:
    X = sp.csr_matrix(np.eye(2, sliced.n_features_in_) * np.nan)
    with pytest.raises(InputError) as info:
        sliced.predict(X)
    assert str(info.value) == NAN_MESSAGE
