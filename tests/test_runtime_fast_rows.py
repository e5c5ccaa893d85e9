"""The numpy runtime's one-row CSR path against scipy's ``X @ W.T + b`` and against the general
path's checks.

A scipy CSR matrix of one row is scored with a few Python comparisons of its structure, the
column range checked by the gather itself (unsigned indices into a table of exactly
``n_features`` rows) and NaN/inf by one dot of the values with themselves. These tests pin
that it gives the general path's results and refuses the same inputs with the same messages:
unsorted and duplicate indices, an empty row, out-of-range and negative indices, NaN/inf in a
column with a weight and in one without.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.sparse as sp

from edgesparse.data import CSRArrays
from edgesparse.errors import InputError
from edgesparse.ir import from_dense
from edgesparse.runtime import checks, csr_input
from edgesparse.runtime import model as model_module
from edgesparse.runtime.model import Model

NAN_MESSAGE = "Input X contains NaN or infinity; impute or drop those values first"
CLASSES = np.array(["a", "b", "c", "d"])


def weights(n_features: int, used: int, seed: int) -> np.ndarray:
    # 4 outputs; only the first `used` columns have weights (the rest are weightless).
    rng = np.random.default_rng(seed)
    w = np.zeros((4, n_features))
    w[:, :used] = rng.standard_normal((4, used))
    return w


def classifier(w: np.ndarray, *, dtype=np.float32) -> Model:
    ir = from_dense(w, bias=[0.5, -0.25, 1.0, 0.0], head="softmax", classes=CLASSES)
    return Model(ir.replace(values=ir.values.astype(dtype)))


@pytest.fixture(params=["full-width", "gathered", "sparse-columns", "no-table"])
def model(request, monkeypatch) -> Model:
    """Each layout the one-row path reads: a full-width dense block, a block of the used
    columns, the sparse-column model's CSR block, and one too wide for a lookup table (the
    general path's binary search)."""
    if request.param in ("sparse-columns", "no-table"):
        monkeypatch.setattr(model_module, "_DENSE_BLOCK_CELLS", 0)
        monkeypatch.setattr(model_module, "_DENSE_BLOCK_FILL", 2.0)
    if request.param == "no-table":
        monkeypatch.setattr(csr_input, "_POS_MAP_FEATURES", 0)
    used = 20 if request.param == "full-width" else 6
    m = classifier(weights(24, used, seed=3))
    assert m._dense == (request.param in ("full-width", "gathered"))
    assert m._all_used == (request.param == "full-width")
    return m


def oracle(m: Model, X: sp.csr_matrix) -> np.ndarray:
    # scipy sums duplicate indices and does not care about their order.
    return (X @ m.ir.to_dense().T + m.ir.bias).reshape(1, -1)


def raw_row(data, indices, n_features: int = 24, idx_dtype=np.int32) -> sp.csr_matrix:
    # Built from its arrays as given: scipy neither sorts nor sums them.
    data = np.asarray(data, dtype=np.float64)
    indptr = np.array([0, data.size], dtype=idx_dtype)
    return sp.csr_matrix(
        (data, np.asarray(indices, dtype=idx_dtype), indptr), shape=(1, n_features)
    )


ROWS = {
    "sorted": ([1.5, -2.0, 0.25], [0, 3, 5]),
    "unsorted": ([0.25, 1.5, -2.0], [5, 0, 3]),
    "duplicates": ([1.0, 2.0, -0.5, 3.0], [4, 1, 4, 1]),
    "weightless": ([1.0, 7.0], [2, 22]),
    "empty": ([], []),
}


@pytest.mark.parametrize("row", ROWS)
@pytest.mark.parametrize("idx_dtype", [np.int32, np.int64])
def test_one_csr_row_matches_scipy_and_the_batch_path(model: Model, row, idx_dtype) -> None:
    X = raw_row(*ROWS[row], idx_dtype=idx_dtype)
    expected = oracle(model, X)
    got = model.decision_function(X)
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
    # The same row inside a batch goes through the general kernels.
    batch = sp.vstack([X, X, sp.csr_matrix((1, 24))], format="csr")
    np.testing.assert_allclose(got, model.decision_function(batch)[:1], rtol=1e-6, atol=1e-6)
    assert model.predict(X).tolist() == [CLASSES[expected.argmax()]]
    p = np.exp(expected - expected.max())
    np.testing.assert_allclose(model.predict_proba(X), p / p.sum(), rtol=1e-5)


def test_the_fast_path_scores_a_row_by_hand(monkeypatch) -> None:
    # w = [[1, 2, 0], [0, -1, 3]], b = [0.5, -0.25]; x = [x0=2, x2=4, x1=1 (unsorted), x0=1
    # (a duplicate)]: x = [3, 1, 4] -> [3 + 2, -1 + 12] + b = [5.5, 10.75].
    ir = from_dense(
        [[1.0, 2.0, 0.0], [0.0, -1.0, 3.0]], bias=[0.5, -0.25], head="identity", squeeze=False
    )
    m = Model(ir)

    def general_path(*args):
        raise AssertionError("the one-row path was not taken")

    monkeypatch.setattr(m, "_sparse_input_scores", general_path)
    X = raw_row([2.0, 4.0, 1.0, 1.0], [0, 2, 1, 0], n_features=3)
    np.testing.assert_array_equal(m.decision_function(X), [[5.5, 10.75]])
    np.testing.assert_array_equal(m.predict(X), [[5.5, 10.75]])
    np.testing.assert_array_equal(m.decision_function(raw_row([], [], 3)), [[0.5, -0.25]])


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("col", [1, 22])  # a column with weights, a weightless one
def test_nan_or_inf_in_any_column_is_refused_without_a_warning(model: Model, bad, col) -> None:
    X = raw_row([1.0, bad], [0, col])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for method in (model.decision_function, model.predict, model.predict_proba):
            with pytest.raises(InputError) as info:
                method(X)
            assert str(info.value) == NAN_MESSAGE


@pytest.mark.parametrize("index", [24, 25, 1 << 20, -1, -24])
@pytest.mark.parametrize("idx_dtype", [np.int32, np.int64])
def test_a_column_index_out_of_range_is_refused(model: Model, index, idx_dtype) -> None:
    X = sp.csr_matrix(np.eye(1, 24))
    X.indices = np.array([index], dtype=idx_dtype)  # set after scipy's own checks
    X.indptr = X.indptr.astype(idx_dtype)
    for method in (model.decision_function, model.predict, model.predict_proba):
        with pytest.raises(InputError, match="X is not a valid CSR matrix: a column index is"):
            method(X)


def test_a_value_beyond_float32_is_an_overflow_as_before(model: Model) -> None:
    X = raw_row([1e300], [1])
    messages = []
    for batch in (X, sp.vstack([X, X], format="csr")):
        with pytest.raises(InputError) as info:
            model.decision_function(batch)
        messages.append(str(info.value))
    assert messages[0] == messages[1]
    assert messages[0].startswith("Input X makes a score overflow this model's float32")


def test_one_csr_row_accepts_only_plain_one_row_matrices() -> None:
    X = raw_row([1.0, 2.0], [3, 1], n_features=5)
    data, indices = checks.one_csr_row(X, n_features=5)
    assert indices.dtype == np.uint32 and indices.tolist() == [3, 1]
    assert data is X.data
    negative = raw_row([1.0], [0], n_features=5)
    negative.indices[0] = -1
    assert checks.one_csr_row(negative, n_features=5)[1].tolist() == [2**32 - 1]
    not_one_row = [
        sp.csr_matrix((2, 5)),  # two rows
        sp.csr_matrix((1, 4)),  # wrong width
        CSRArrays(np.ones(1), np.zeros(1, np.int32), np.array([0, 2]), (1, 5)),  # bad indptr
        CSRArrays(np.ones(1), np.zeros(1, np.int32), np.array([1, 1]), (1, 5)),
        CSRArrays(np.ones(2), np.zeros(1, np.int32), np.array([0, 1]), (1, 5)),  # lengths
        CSRArrays(np.ones((1, 1)), np.zeros(1, np.int32), np.array([0, 1]), (1, 5)),
        CSRArrays(np.ones(1), np.zeros(1), np.array([0, 1]), (1, 5)),  # float indices
        CSRArrays(np.ones(1, object), np.zeros(1, np.int32), np.array([0, 1]), (1, 5)),
    ]
    for X in not_one_row:
        assert checks.one_csr_row(X, n_features=5) is None


@pytest.fixture
def run_checked(monkeypatch) -> Model:
    # Runs of 2 rows of 24 float32 values (3 float64): a batch goes through many of them.
    monkeypatch.setattr(model_module, "_CHECK_RUN_BYTES", 2 * 24 * 4)
    m = classifier(weights(24, 20, seed=5))
    assert m._dense and m._all_used and m._unused.size == 4
    return m


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", ["C", "F", "strided"])
def test_checked_runs_match_the_oracle(run_checked: Model, dtype, layout) -> None:
    X = np.random.default_rng(6).standard_normal((41, 48)).astype(dtype)
    X = X[:, ::2] if layout == "strided" else np.asarray(X[:, :24], order=layout)
    expected = X.astype(np.float64) @ run_checked.ir.to_dense().T + run_checked.ir.bias
    np.testing.assert_allclose(run_checked.decision_function(X), expected, rtol=2e-5, atol=1e-5)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("col", [3, 22])  # a column with weights, a weightless one
@pytest.mark.parametrize("row", [0, 19, 40])  # the first run, a middle one, the last (short)
def test_checked_runs_refuse_nan_wherever_it_is(run_checked: Model, bad, col, row) -> None:
    X = np.ones((41, 24))
    X[row, col] = bad
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(InputError) as info:
            run_checked.predict(X)
    assert str(info.value) == NAN_MESSAGE


def test_checked_runs_let_huge_finite_unused_values_through(run_checked: Model) -> None:
    # Their squares overflow; the exact test then finds them finite (weightless: no effect).
    X = np.ones((41, 24))
    X[:, 22] = 1e200
    expected = np.ones((41, 24)) @ run_checked.ir.to_dense().T + run_checked.ir.bias
    np.testing.assert_allclose(run_checked.decision_function(X), expected, rtol=1e-6)


def test_an_unpickled_row_takes_the_fast_path(monkeypatch) -> None:
    # Its arrays' dtypes are equal to numpy's builtin ones, not the same objects.
    import pickle

    m = classifier(weights(24, 20, seed=7))
    X = pickle.loads(pickle.dumps(raw_row([1.0, -2.0], [3, 11])))
    expected = oracle(m, X)
    monkeypatch.setattr(m, "_sparse_input_scores", None)  # the general path would fail
    np.testing.assert_allclose(m.decision_function(X), expected, rtol=1e-6)
