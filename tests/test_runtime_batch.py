"""The numpy runtime's batch path for dense input (runtime/dense_batch.py) against the general
path it stands in front of, against a float64 oracle, and where it checks NaN/inf.

The batch path multiplies, checks the scores with one dot (a limit that also proves the bias
cannot overflow them), checks the columns no output reads with one product by a check vector,
then casts and adds the bias; anything not finite goes to the general path. These tests pin
that its scores are the general path's bit for bit (every bundled model, float32/float64,
C/F/strided input, batches below, at and above a bias tile), that every NaN/inf is refused
with the same message and no numpy warning wherever it is, that overflow is reported as one
and that huge finite values and scores pass as they did.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

import edgesparse
from edgesparse.errors import InputError
from edgesparse.ir import from_dense
from edgesparse.loader import load_model
from edgesparse.runtime import dense_batch
from edgesparse.runtime.model import Model

NAN_MESSAGE = "Input X contains NaN or infinity; impute or drop those values first"
MODELS = Path(__file__).resolve().parent.parent / "models"
BUNDLED = ["iris_l1_logreg", "iris_l2_logreg", "iris_sgd_l1", "digits_pipeline", "diabetes_ridge"]


def make_model(w: np.ndarray, *, bias=None, dtype=np.float32, squeeze=False) -> Model:
    bias = np.arange(w.shape[0], dtype=float) if bias is None else bias
    ir = from_dense(w, bias=bias, head="identity", squeeze=squeeze)
    return Model(ir.replace(values=ir.values.astype(dtype)))


def oracle(model: Model, X) -> np.ndarray:
    return np.asarray(X, dtype=np.float64) @ model.ir.to_dense().T + model.ir.bias


def general(model: Model) -> Model:
    """The same model without its batch path: what it computed before."""
    twin = Model(model.ir)
    twin._batch = None
    return twin


def with_unused(n_features: int = 40, n_outputs: int = 5, seed: int = 0) -> Model:
    # A tenth of the columns read by no output: the check vector checks them.
    w = np.random.default_rng(seed).standard_normal((n_outputs, n_features))
    w[:, ::10] = 0
    model = make_model(w)
    assert model._batch is not None and model._batch.checks is not None
    return model


def layouts(X: np.ndarray) -> dict[str, np.ndarray]:
    wide = np.zeros((X.shape[0], 2 * X.shape[1]), dtype=X.dtype)
    wide[:, ::2] = X
    return {"C": X, "F": np.asfortranarray(X), "strided": wide[:, ::2]}


@pytest.mark.parametrize("name", BUNDLED)
@pytest.mark.parametrize("quantize", [None, "float32", "none"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_bundled_models_score_as_the_general_path_bit_for_bit(name, quantize, dtype) -> None:
    est = load_model(MODELS / f"{name}.pkl")  # numpy 1.x reads numpy 2's pickles through it
    X = np.load(MODELS / f"{name}.test.npz")["X"]
    model = Model(edgesparse.compress(est, quantize=quantize))
    assert model._batch is not None
    before = general(model)
    rng = np.random.default_rng(1)
    for n in (2, 7, 1000, 5000):  # a tile's rows; more than the largest tile
        rows = X[rng.integers(0, X.shape[0], n)] * rng.uniform(0.5, 2, (n, X.shape[1]))
        for layout, Xi in layouts(rows.astype(dtype)).items():
            for method in ("decision_function", "predict", "predict_proba"):
                if method == "predict_proba" and not model.ir.has_proba:
                    continue
                got = getattr(model, method)(Xi)
                want = getattr(before, method)(Xi)
                assert got.dtype == want.dtype and got.shape == want.shape, (n, layout, method)
                assert got.tobytes() == want.tobytes(), (n, layout, method)
                # (a one-output model's general path returns a view of a column)
                assert got.flags.c_contiguous and want.flags.c_contiguous
            scores = model.decision_function(Xi)
            want = oracle(model, Xi).reshape(scores.shape)
            tol = (1e-9 if quantize == "none" else 1e-5) * np.abs(want).max()
            np.testing.assert_allclose(scores, want, rtol=0, atol=tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("squeeze", [True, False])
def test_one_output_scores_as_a_vector(dtype, squeeze) -> None:
    # One output: the column is multiplied as a vector and the bias added as a scalar; the
    # shape is the general path's (1-D when squeezed, else one column).
    w = np.random.default_rng(3).standard_normal((1, 6))
    model = make_model(w, bias=[0.75], dtype=dtype, squeeze=squeeze)
    assert model._batch is not None and model._batch.vector
    X = np.random.default_rng(4).standard_normal((50, 6))
    got, want = model.decision_function(X), general(model).decision_function(X)
    assert got.shape == want.shape == ((50,) if squeeze else (50, 1))
    assert got.tobytes() == want.tobytes()
    np.testing.assert_allclose(got, oracle(model, X).reshape(got.shape), rtol=1e-6)
    assert model.predict(X).tobytes() == general(model).predict(X).tobytes()


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("where", ["used", "unused"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", ["C", "F", "strided"])
def test_nan_or_inf_anywhere_is_refused_without_a_warning(bad, where, dtype, layout) -> None:
    model = with_unused()
    unused = model._unused
    used = np.setdiff1d(np.arange(model.n_features_in_), unused)
    for n_rows in (2, 300):
        X = np.ones((n_rows, model.n_features_in_), dtype=dtype)
        X[n_rows // 2, (unused if where == "unused" else used)[1]] = bad
        Xi = layouts(X)[layout]
        before = np.geterr()
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # numpy's overflow/invalid warnings stay silent
            for method in ("predict", "decision_function"):
                with pytest.raises(InputError) as info:
                    getattr(model, method)(Xi)
                assert str(info.value) == NAN_MESSAGE
        assert np.geterr() == before


def test_the_check_vector_reads_only_the_unused_columns() -> None:
    model = with_unused()
    form = model._batch
    assert form is not None and form.checks is not None
    model.decision_function(np.ones((2, model.n_features_in_), dtype=np.float32))
    assert set(form.checks) == {np.dtype(np.float32), np.dtype(np.float64)}
    for check in form.checks.values():
        assert np.flatnonzero(check).tolist() == model._unused.tolist()
        # 2^-e with 2^e > 2 x their count: the check value of finite input cannot overflow
        assert check.max() * model._unused.size < 0.5
    # Whatever the BLAS does with the zero weights, a NaN/inf in an unused column makes its
    # row's check value non-finite (a nonzero weight is never skipped), and the largest
    # finite input leaves it finite.
    for dtype in (np.float32, np.float64):
        top = np.finfo(dtype).max
        for col in model._unused:
            for bad in (np.nan, np.inf, -np.inf):
                X = np.ones((3, model.n_features_in_), dtype=dtype)
                X[1, col] = bad
                assert not np.isfinite(X.dot(form.checks[np.dtype(dtype)])[1])
        X = np.full((3, model.n_features_in_), top, dtype=dtype)
        assert np.isfinite(X.dot(form.checks[np.dtype(dtype)])).all()


def test_huge_finite_unused_values_and_scores_pass_as_before() -> None:
    model = with_unused()
    X = np.zeros((4, model.n_features_in_))
    X[:, model._unused] = 1e300  # finite, read by no output; their squares overflow
    got = model.decision_function(X)
    assert got.tobytes() == general(model).decision_function(X).tobytes()
    np.testing.assert_allclose(got, oracle(model, X), rtol=1e-6)
    # Finite float32 scores whose squares overflow the check: the general path lets them by.
    big = make_model(np.ones((2, 3)))
    Xb = np.full((5, 3), 1e37, dtype=np.float32)
    got = big.decision_function(Xb)
    assert np.isfinite(got).all()
    assert got.tobytes() == general(big).decision_function(Xb).tobytes()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_score_overflow_is_still_reported_as_one(dtype) -> None:
    model = make_model(np.abs(np.random.default_rng(5).standard_normal((3, 8))) + 1)
    X = np.full((3, 8), 1e38, dtype=dtype)
    with pytest.raises(InputError, match="makes a score overflow this model's float32"):
        model.decision_function(X)
    X = np.full((3, 8), 1e300)  # float64 input: products beyond float32 become inf in the cast
    with pytest.raises(InputError, match="makes a score overflow this model's float32"):
        model.decision_function(X)


def test_a_bias_near_the_largest_float_leaves_it_to_the_general_path() -> None:
    # No room for the limit: every batch goes to the general path, with its results.
    top = float(np.finfo(np.float32).max)
    model = make_model(np.ones((2, 3)), bias=[top, -top])
    assert model._batch is not None and model._batch.limit < 0
    X = np.ones((4, 3), dtype=np.float32)
    np.testing.assert_allclose(model.decision_function(X), oracle(model, X), rtol=1e-6)


def test_few_unused_columns_of_many_keep_the_general_path() -> None:
    # Fewer than 1/32 of the columns unused: gathering them is cheaper than a second product.
    w = np.random.default_rng(6).standard_normal((2, 100))
    w[:, 7] = 0
    model = make_model(w)
    assert model._unused.tolist() == [7] and model._batch is None
    X = np.random.default_rng(7).standard_normal((10, 100))
    np.testing.assert_allclose(model.decision_function(X), oracle(model, X), rtol=1e-5)


def test_the_bias_tile_grows_to_the_batch_up_to_its_cap() -> None:
    model = make_model(np.random.default_rng(8).standard_normal((10, 4)))
    form = model._batch
    assert form is not None
    X = np.random.default_rng(9).standard_normal((3000, 4))
    for n in (2, 1000, 3000, 5):
        got = model.decision_function(X[:n])
        assert got.tobytes() == general(model).decision_function(X[:n]).tobytes()
    assert form.tile is not None and form.tile.size <= dense_batch._BATCH_TILE_CELLS
    assert form.tile.shape[0] >= 1000
