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
from edgesparse.runtime import checks as checks_module
from edgesparse.runtime import csr_input, one_row
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
    # Small slices so that one call goes through many of them; a model this thin would sum
    # each output's nonzeros instead (the "rows" kernel) unless told otherwise.
    monkeypatch.setattr(model_module, "_SLICE_CELLS", 40)
    monkeypatch.setattr(model_module, "_ROW_KERNEL_FILL", 0.0)
    force_sparse_columns(monkeypatch)
    w = sparse_weights(np.random.default_rng(1), 4, 300, 0.1)
    model = make_model(w)
    assert not model._dense and model._slice_ptr.size > 5
    return model


@pytest.fixture
def rows(monkeypatch) -> Model:
    # A thin sparse-column model: each output sums its nonzeros, a few input rows at a time.
    monkeypatch.setattr(model_module, "_SLICE_CELLS", 200)
    force_sparse_columns(monkeypatch)
    w = sparse_weights(np.random.default_rng(8), 4, 300, 0.1)
    model = make_model(w)
    assert not model._dense and model.ir.nnz <= model_module._ROW_KERNEL_FILL * w.size
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


@pytest.mark.parametrize("kernel", ["small_dense", "sliced", "rows", "gathered"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_rows", [1, 2, 37])  # sparse-column models: per-output sums, slices
def test_dense_input_matches_the_oracle(request, kernel: str, dtype, n_rows: int) -> None:
    model = request.getfixturevalue(kernel)
    X = np.random.default_rng(2).standard_normal((n_rows, model.n_features_in_)).astype(dtype)
    np.testing.assert_allclose(model.decision_function(X), oracle(model, X), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("kernel", ["small_dense", "sliced", "rows", "gathered"])
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
        monkeypatch.setattr(checks_module, "FINITE_CHUNK", 2)
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
    monkeypatch.setattr(csr_input, "_CSR_BLOCK_CELLS", block_cells)
    monkeypatch.setattr(csr_input, "_CSR_BLOCK_LAYOUT", 1.0 if block_cells else 0.0)
    monkeypatch.setattr(csr_input, "_GATHER_CHUNK", 64)  # many chunks, many row ranges
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
    monkeypatch.setattr(csr_input, "_POS_MAP_FEATURES", 0)  # binary search instead
    force_sparse_columns(monkeypatch)
    model = make_model(sparse_weights(np.random.default_rng(5), 6, 5000, 0.01))
    X = sp.random(50, 5000, density=0.05, format="csr", random_state=6)
    np.testing.assert_allclose(model.decision_function(X), oracle(model, X), rtol=1e-4, atol=1e-4)


def test_csr_nan_is_refused_on_every_kernel(sliced: Model) -> None:
    X = sp.csr_matrix(np.eye(2, sliced.n_features_in_) * np.nan)
    with pytest.raises(InputError) as info:
        sliced.predict(X)
    assert str(info.value) == NAN_MESSAGE


# -- the one-row path, the batch path and CSR runs, against scikit-learn ----------------------
def sklearn_models() -> dict[str, object]:
    from sklearn.linear_model import LogisticRegression, Ridge

    rng = np.random.default_rng(11)
    X = rng.normal(size=(120, 9))
    X[:, 4] = 0  # an L1 model leaves this column unused: the one-row path's check column
    y3 = rng.integers(0, 3, 120)
    return {
        "multiclass-l1": LogisticRegression(l1_ratio=1, solver="saga", C=0.5, max_iter=3000).fit(
            X, y3
        ),
        "binary": LogisticRegression().fit(X, y3 == 1),
        "ridge": Ridge().fit(X, X @ rng.normal(size=9)),
    }


SKLEARN_MODELS = sklearn_models()


def layouts(X: np.ndarray) -> dict[str, object]:
    wide = np.zeros((X.shape[0], 2 * X.shape[1]))
    wide[:, ::2] = X
    return {
        "float64": X,
        "float32": X.astype(np.float32),
        "int": np.round(X * 3).astype(np.int64),
        "fortran": np.asfortranarray(X),
        "strided": wide[:, ::2],
        "list": X.tolist(),
    }


@pytest.mark.parametrize("name", SKLEARN_MODELS)
@pytest.mark.parametrize("quantize", ["none", "float32"])
@pytest.mark.parametrize("n_rows", [1, 2, 700])  # the one-row path; batches; a bias tile run
@pytest.mark.parametrize("layout", ["float64", "float32", "int", "fortran", "strided", "list"])
@pytest.mark.parametrize("row_cells", [1 << 12, 0])  # one-row path: own copy, or the block
def test_dense_paths_match_scikit_learn(monkeypatch, name, quantize, n_rows, layout, row_cells):
    import edgesparse

    monkeypatch.setattr(one_row, "_ROW_CELLS", row_cells)
    est = SKLEARN_MODELS[name]
    model = Model(edgesparse.compress(est, quantize=quantize))
    X = np.random.default_rng(n_rows).normal(size=(n_rows, 9))
    if n_rows == 1:
        assert model._row_form  # the one-row path exists for this model
    X_in = layouts(X)[layout]
    X_ref = np.asarray(X_in, dtype=np.float64)
    tol = 1e-10 if quantize == "none" else 2e-5
    got = model.decision_function(X_in)
    scores = est.decision_function(X_ref) if hasattr(est, "decision_function") else None
    if scores is None:  # a regressor: its predictions are the scores
        scores = est.predict(X_ref)
        np.testing.assert_allclose(model.predict(X_in), scores, rtol=tol, atol=tol)
    np.testing.assert_allclose(got, scores, rtol=tol, atol=tol)
    assert got.dtype == (np.float64 if quantize == "none" else np.float32)
    if hasattr(est, "predict_proba"):
        want = est.predict_proba(X_ref)
        np.testing.assert_allclose(model.predict_proba(X_in), want, rtol=tol, atol=tol)
        top = np.sort(scores.reshape(n_rows, -1), axis=1)  # rows far from a tie
        margin = (top[:, -1] - top[:, -2] if top.shape[1] > 1 else np.abs(top[:, 0])) > 1e-4
        np.testing.assert_array_equal(model.predict(X_in)[margin], est.predict(X_ref)[margin])


@pytest.fixture(params=["own-copy", "block"])
def one_row_model(request, monkeypatch) -> Model:
    # The one-row path with its check column (a copy of the weights), or reading the dense
    # block and gathering the unused columns.
    import edgesparse

    if request.param == "block":
        monkeypatch.setattr(one_row, "_ROW_CELLS", 0)
    model = Model(edgesparse.compress(SKLEARN_MODELS["multiclass-l1"], quantize="float32"))
    assert model._row_form and model._unused.size
    assert (model._row_form.check is not None) == (request.param == "block")
    return model


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("where", ["used", "unused"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_one_row_nan_or_inf_is_refused_without_a_warning(one_row_model, bad, where, dtype):
    import warnings

    model = one_row_model
    used = np.setdiff1d(np.arange(9), model._unused)
    x = np.ones((1, 9), dtype=dtype)
    x[0, (model._unused if where == "unused" else used)[0]] = bad
    before = np.geterr()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's own overflow/invalid warnings stay silent
        for method in ("predict", "decision_function", "predict_proba"):
            with pytest.raises(InputError) as info:
                getattr(model, method)(x)
            assert str(info.value) == NAN_MESSAGE
    assert np.geterr() == before  # the error state is restored on the way out


def test_one_row_overflow_and_huge_unused_values(one_row_model) -> None:
    model = one_row_model
    x = np.zeros((1, 9))
    x[0, model._unused[0]] = 1e300  # finite, read by no output: the check column must not care
    np.testing.assert_allclose(model.decision_function(x), oracle(model, x), rtol=1e-6)
    used = np.setdiff1d(np.arange(9), model._unused)
    x[0, used] = 1e300  # scores beyond float32
    with pytest.raises(InputError, match="makes a score overflow this model's float32"):
        model.decision_function(x)


def test_one_row_refuses_one_dimensional_input_as_before(one_row_model) -> None:
    model = one_row_model
    with pytest.raises(InputError, match="Expected a 2-D array, got a 1-D array instead"):
        model.predict(np.zeros(9))
    with pytest.raises(InputError, match="X has 8 features, but the model expects 9"):
        model.predict(np.zeros((1, 8)))


@pytest.mark.parametrize("run_nnz", [1 << 16, 40])  # one run, or many runs of rows
@pytest.mark.parametrize("long_row", [False, True])  # padded rows, or segment sums
@pytest.mark.parametrize("quantize", ["none", "float32"])
def test_csr_runs_match_scikit_learn(monkeypatch, run_nnz, long_row, quantize) -> None:
    import edgesparse

    monkeypatch.setattr(csr_input, "_CSR_RUN_NNZ", run_nnz)
    monkeypatch.setattr(csr_input, "_RUN_CELLS", 64)  # several padded chunks a run
    est = SKLEARN_MODELS["multiclass-l1"]
    model = Model(edgesparse.compress(est, quantize=quantize))
    X = sp.random(300, 9, density=0.3, format="lil", random_state=12)
    X[5] = 0  # an empty row
    if long_row:
        X[7] = np.arange(1, 10)  # one full row among short ones: too much padding
    X = X.tocsr()
    tol = 1e-10 if quantize == "none" else 2e-5
    want = est.decision_function(X)
    np.testing.assert_allclose(model.decision_function(X), want, rtol=tol, atol=tol)
    np.testing.assert_allclose(model.decision_function(X[3]), want[3:4], rtol=tol, atol=tol)
    np.testing.assert_allclose(model.predict_proba(X), est.predict_proba(X), rtol=tol, atol=tol)


@pytest.mark.parametrize("where", ["used", "unused"])
@pytest.mark.parametrize("n_rows", [1, 50])
def test_csr_nan_in_any_column_is_refused(monkeypatch, one_row_model, where, n_rows) -> None:
    import warnings

    monkeypatch.setattr(csr_input, "_CSR_RUN_NNZ", 16)
    model = one_row_model
    col = (model._unused if where == "unused" else np.setdiff1d(np.arange(9), model._unused))[0]
    X = sp.lil_matrix((n_rows, 9))
    X[:, 0] = 1.0
    X[n_rows - 1, col] = np.inf
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(InputError) as info:
            model.predict(X.tocsr())
    assert str(info.value) == NAN_MESSAGE


@pytest.mark.parametrize("head", ["softmax", "logistic", "modified_huber"])
@pytest.mark.parametrize("n_outputs", [1, 3])
@pytest.mark.parametrize(
    "x",
    [
        [0.3, -1.2, 2.0],  # ordinary
        [1000.0, -1000.0, 0.0],  # large
        [-2000.0, -1500.0, -1000.0],  # every sigmoid underflows: a uniform row
        [-500.0, -400.0, -300.0],  # ... in float32 only
        [-5.0, -5.0, -5.0],  # every modified-huber probability 0: a uniform row
    ],
)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_one_row_probabilities_match_the_batch_heads(head, n_outputs, x, dtype) -> None:
    if head == "softmax" and n_outputs == 1:
        pytest.skip("softmax has two or more outputs")
    w = np.eye(3)[:n_outputs] + 0.01  # every column used: the one-row path
    classes = np.array([10, 20, 30][: max(2, n_outputs)])
    ir = from_dense(w, bias=np.zeros(n_outputs), head=head, classes=classes)
    model = Model(ir.replace(values=ir.values.astype(dtype)))
    X = np.array([x])
    assert model._row_form
    one = model.predict_proba(X)  # the one-row path (Python floats)
    batch = model.predict_proba(np.vstack([X, X]))  # the array path
    np.testing.assert_allclose(one, batch[:1], rtol=1e-6, atol=1e-12)
    assert one.dtype == batch.dtype and one.shape == (1, classes.size)
    np.testing.assert_array_equal(model.predict(X), model.predict(np.vstack([X, X]))[:1])


def test_csr_value_beyond_float32_is_an_overflow_not_a_nan() -> None:
    import edgesparse

    model = Model(edgesparse.compress(SKLEARN_MODELS["multiclass-l1"], quantize="float32"))
    X = sp.csr_matrix(np.full((2, 9), 1e300))  # finite, but not in float32
    with pytest.raises(InputError, match="makes a score overflow this model's float32"):
        model.decision_function(X)


# -- CSR input to a weight block: every kernel on the batches that break segment sums ---------
CSR_KERNELS = {
    # (_SEGMENT_ROWS, _SEGMENT_CELLS, _SHORT_ROWS): which kernel a run of rows takes
    "segment": (1 << 30, 1 << 30, 0),  # one gather, one reduceat over the whole batch
    "scattered": (0, 0, 1 << 30),  # products added into their (row, output) cells
    "padded": (0, 0, 0),  # rows padded to one length, one batched matmul (or long-row sums)
}


def edge_batch(n_features: int, dtype) -> sp.csr_matrix:
    """Empty rows (first, inside, last), one-nonzero rows, full rows, a run of long rows,
    duplicate and unsorted column indices in one row."""
    rng = np.random.default_rng(21)
    rows: list[list[tuple[int, float]]] = [[], [(3, 1.5)], [], [(0, -2.0)]]
    rows += [[(j, float(v)) for j, v in enumerate(rng.normal(size=n_features))] for _ in range(9)]
    rows += [[(int(rng.integers(n_features)), float(rng.normal()))] for _ in range(40)]
    rows += [[(5, 1.0), (2, 0.5), (5, 2.0), (5, -0.25)], [(n_features - 1, 3.0)], [], []]
    data = [v for row in rows for _, v in row]
    indices = [j for row in rows for j, _ in row]
    indptr = np.cumsum([0] + [len(row) for row in rows])
    shape = (len(rows), n_features)
    return sp.csr_matrix((np.array(data, dtype=dtype), indices, indptr), shape=shape)


@pytest.mark.parametrize("kernel", CSR_KERNELS)
@pytest.mark.parametrize("quantize", ["none", "float32", "int8"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", ["dense block", "sparse columns"])
@pytest.mark.parametrize("slice_cells", [1 << 18, 30])  # one run of rows, or many small ones
def test_csr_kernels_match_a_dense_reference(
    monkeypatch, kernel, quantize, dtype, layout, slice_cells
) -> None:
    import edgesparse

    seg_rows, seg_cells, short = CSR_KERNELS[kernel]
    monkeypatch.setattr(csr_input, "_SEGMENT_ROWS", seg_rows)
    monkeypatch.setattr(csr_input, "_SEGMENT_CELLS", seg_cells)
    monkeypatch.setattr(csr_input, "_SHORT_ROWS", short)
    monkeypatch.setattr(model_module, "_SLICE_CELLS", slice_cells)
    monkeypatch.setattr(csr_input, "_RUN_CELLS", slice_cells)
    monkeypatch.setattr(csr_input, "_CSR_RUN_NNZ", 1 << 16 if slice_cells > 30 else 25)
    if layout == "sparse columns":
        force_sparse_columns(monkeypatch)
    est = SKLEARN_MODELS["multiclass-l1"]
    model = Model(edgesparse.compress(est, quantize=quantize))
    assert model._dense == (layout == "dense block")
    X = edge_batch(9, dtype)
    assert X.has_canonical_format is False  # duplicates and unsorted indices reach the kernels
    dense = X.toarray()  # duplicates summed, as scikit-learn's (scipy's) product sums them
    got = model.decision_function(X)
    # Against the model's own weights in float64 (int8: the dequantized ones), and against
    # scikit-learn for the unquantized forms.
    want = dense.astype(np.float64) @ model.ir.to_dense().T + model.ir.bias
    tol = 1e-10 if quantize == "none" and dtype == np.float64 else 2e-5
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)
    if quantize != "int8":
        skl = est.decision_function(X.astype(np.float64))
        np.testing.assert_allclose(got, skl, rtol=max(tol, 1e-5 if dtype == np.float32 else 0))
    empty = np.diff(X.indptr) == 0
    np.testing.assert_array_equal(got[empty], np.broadcast_to(model.ir.bias, got[empty].shape))
    np.testing.assert_array_equal(model.predict(X), model.predict(dense))


@pytest.mark.parametrize("kernel", CSR_KERNELS)
@pytest.mark.parametrize("n_rows", [2, 300])
def test_an_all_empty_csr_batch_scores_the_bias(monkeypatch, kernel, n_rows) -> None:
    import edgesparse

    seg_rows, seg_cells, short = CSR_KERNELS[kernel]
    monkeypatch.setattr(csr_input, "_SEGMENT_ROWS", seg_rows)
    monkeypatch.setattr(csr_input, "_SEGMENT_CELLS", seg_cells)
    monkeypatch.setattr(csr_input, "_SHORT_ROWS", short)
    est = SKLEARN_MODELS["multiclass-l1"]
    model = Model(edgesparse.compress(est, quantize="none"))
    X = sp.csr_matrix((n_rows, 9))
    np.testing.assert_array_equal(model.decision_function(X), est.decision_function(X))
    np.testing.assert_array_equal(model.predict(X), est.predict(X))


@pytest.mark.parametrize("kernel", CSR_KERNELS)
@pytest.mark.parametrize("where", ["first row", "empty row's neighbour", "last row"])
def test_csr_kernels_refuse_nan_wherever_it_is(monkeypatch, kernel, where) -> None:
    import edgesparse

    seg_rows, seg_cells, short = CSR_KERNELS[kernel]
    monkeypatch.setattr(csr_input, "_SEGMENT_ROWS", seg_rows)
    monkeypatch.setattr(csr_input, "_SEGMENT_CELLS", seg_cells)
    monkeypatch.setattr(csr_input, "_SHORT_ROWS", short)
    model = Model(edgesparse.compress(SKLEARN_MODELS["multiclass-l1"], quantize="float32"))
    X = edge_batch(9, np.float64)
    k = {"first row": 1, "empty row's neighbour": 3, "last row": X.nnz - 1}[where]
    X.data[k if where != "first row" else 0] = np.nan
    with pytest.raises(InputError) as info:
        model.predict(X)
    assert str(info.value) == NAN_MESSAGE


def test_csr_sums_by_hand() -> None:
    """The three CSR sums on a hand-computed case: rows (2·w0 + 1·w1), (), (-1·w1), with the
    block's last row the zero row."""
    from edgesparse.runtime.csr_sums import padded_rows, scattered_sums, segment_sums

    block = np.array([[1.0, 2.0], [3.0, 4.0], [0.0, 0.0]])
    pos, x = np.array([0, 1, 1]), np.array([2.0, 1.0, -1.0])
    ptr, lens = np.array([0, 2, 2, 3]), np.array([2, 0, 1])
    want = np.array([[5.0, 8.0], [0.0, 0.0], [-3.0, -4.0]])
    np.testing.assert_array_equal(segment_sums(block, pos=pos, x=x, ptr=ptr), want)
    out = np.full((3, 2), np.nan)
    scattered_sums(block, pos=pos, x=x, lens=lens, out=out)
    np.testing.assert_array_equal(out, want)
    np.testing.assert_array_equal(padded_rows(block, pos=pos, x=x, lens=lens, width=2), want)
