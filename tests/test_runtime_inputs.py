"""Bad prediction inputs: every one an ``InputError`` (a ``ValueError``, as scikit-learn raises)
with a scikit-learn-style message, never a crash or a numpy exception, in both runtimes.

scikit-learn is the oracle for *whether* an input is refused (its estimator raises
``ValueError`` on the same input) and for the results on unusual-but-valid CSR input
(unsorted and duplicate column indices within a row, which scipy sums).
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.linear_model import LogisticRegression

import edgesparse
from edgesparse.data import CSRArrays
from edgesparse.errors import InputError
from edgesparse.runtime import Model

N_FEATURES = 5
RNG = np.random.default_rng(0)
X_TRAIN = RNG.normal(size=(60, N_FEATURES))
Y_TRAIN = np.array(["a", "b", "c"])[RNG.integers(0, 3, 60)]
SKLEARN = LogisticRegression(max_iter=500).fit(X_TRAIN, Y_TRAIN)
IR = edgesparse.compress(SKLEARN, quantize="float32")


def numpy_model() -> Model:
    return Model(IR)


def onnx_model():
    from edgesparse.formats import onnx as onnx_format
    from edgesparse.runtime.onnx_model import OnnxModel

    return OnnxModel.from_bytes(onnx_format.encode(IR))


RUNTIMES = {"numpy": numpy_model, "onnx": onnx_model}


def csr(data, indices, indptr, shape=(2, N_FEATURES)) -> CSRArrays:
    return CSRArrays(np.asarray(data), np.asarray(indices), np.asarray(indptr), shape)


def tampered_scipy() -> sp.csr_matrix:
    m = sp.csr_matrix(np.eye(2, N_FEATURES))
    m.indices = np.array([0, 7], dtype=m.indices.dtype)  # attribute set after scipy's checks
    return m


DENSE_CASES = {
    "wrong-n-features": (np.zeros((2, 4)), "X has 4 features, but the model expects 5"),
    "one-dimensional": (np.zeros(N_FEATURES), "Expected a 2-D array, got a 1-D array instead"),
    "three-dimensional": (np.zeros((1, 2, 5)), "Expected a 2-D array, got a 3-D array instead"),
    "scalar": (np.float64(1.0), "Expected a 2-D array, got a 0-D array instead"),
    "empty-batch": (np.zeros((0, N_FEATURES)), "X has 0 samples (shape=(0, 5))"),
    "no-features": (np.zeros((3, 0)), "X has 0 features, but the model expects 5"),
    "nan": (np.full((1, N_FEATURES), np.nan), "Input X contains NaN or infinity"),
    "inf": (np.array([[0, 0, np.inf, 0, 0]]), "Input X contains NaN or infinity"),
    "minus-inf": (np.array([[0, 0, -np.inf, 0, 0]], np.float32), "Input X contains NaN"),
    "object-dtype": (
        np.zeros((1, N_FEATURES), dtype=object),
        "X must be numeric, got dtype object",
    ),
    "string-dtype": (np.full((1, N_FEATURES), "1.0"), "X must be numeric, got dtype <U3"),
    "bytes-dtype": (np.full((1, N_FEATURES), b"1"), "X must be numeric, got dtype |S1"),
    "complex-dtype": (np.ones((1, N_FEATURES), np.complex128), "Complex data not supported"),
    "datetime-dtype": (np.zeros((1, N_FEATURES), "M8[s]"), "X must be numeric, got dtype"),
    "ragged-list": ([[1, 2, 3, 4, 5], [1, 2]], "X cannot be read as a numeric array"),
    "none": (None, "X must be numeric, got dtype object"),
}

CSR_CASES = {
    "csr-wrong-n-features": (sp.csr_matrix((2, 4)), "X has 4 features, but the model expects 5"),
    "csr-empty-batch": (sp.csr_matrix((0, N_FEATURES)), "X has 0 samples"),
    "csr-nan": (sp.csr_matrix(np.array([[0, np.nan, 0, 0, 0]])), "Input X contains NaN"),
    "csr-object-data": (csr(np.array([1.0], object), [0], [0, 1, 1]), "X must be numeric"),
    "csr-complex-data": (csr(np.array([1j]), [0], [0, 1, 1]), "Complex data not supported"),
    "indptr-non-monotone": (csr([1.0, 2.0], [0, 1], [0, 2, 1]), "X is not a valid CSR matrix"),
    "indptr-too-short": (csr([1.0], [0], [0, 1]), "X is not a valid CSR matrix"),
    "indptr-too-long": (csr([1.0], [0], [0, 1, 1, 1]), "X is not a valid CSR matrix"),
    "indptr-not-from-zero": (csr([1.0, 2.0], [0, 1], [1, 1, 2]), "X is not a valid CSR matrix"),
    "indptr-past-nnz": (csr([1.0], [0], [0, 1, 5]), "X is not a valid CSR matrix"),
    "indptr-negative": (csr([1.0], [0], [0, -3, 1]), "X is not a valid CSR matrix"),
    "indptr-float": (csr([1.0], [0], [0.0, 1.0, 1.0]), "X is not a valid CSR matrix"),
    "index-too-large": (csr([1.0], [5], [0, 1, 1]), "X is not a valid CSR matrix"),
    "index-negative": (csr([1.0], [-1], [0, 1, 1]), "X is not a valid CSR matrix"),
    "index-float": (csr([1.0], [0.5], [0, 1, 1]), "X is not a valid CSR matrix"),
    "data-indices-length": (csr([1.0, 2.0], [0], [0, 1, 1]), "X is not a valid CSR matrix"),
    "data-two-dimensional": (csr([[1.0]], [0], [0, 1, 1]), "X is not a valid CSR matrix"),
    "tampered-scipy-matrix": (tampered_scipy(), "X is not a valid CSR matrix"),
}

CASES = {**DENSE_CASES, **CSR_CASES}


def params() -> list:
    return [
        pytest.param(runtime, name, id=f"{runtime}-{name}")
        for runtime in RUNTIMES
        for name in CASES
    ]


@pytest.fixture(scope="module")
def models() -> dict:
    return {name: make() for name, make in RUNTIMES.items()}


@pytest.mark.parametrize(("runtime", "case"), params())
def test_bad_input_is_one_input_error(models, runtime: str, case: str) -> None:
    X, message = CASES[case]
    model = models[runtime]
    for method in ("predict", "decision_function", "predict_proba"):
        with pytest.raises(InputError) as info:
            getattr(model, method)(X)
        text = str(info.value)
        assert message in text, (method, text)
        assert "\n" not in text


@pytest.mark.parametrize("case", sorted(DENSE_CASES))
def test_scikit_learn_refuses_the_same_dense_inputs(case: str) -> None:
    X, _ = DENSE_CASES[case]
    if case == "object-dtype":
        X = np.full((1, N_FEATURES), object())  # sklearn converts numeric object arrays
    with pytest.raises((ValueError, TypeError)):
        SKLEARN.predict(X)


@pytest.mark.parametrize("runtime", sorted(RUNTIMES))
def test_unsorted_and_duplicate_csr_indices_match_scikit_learn(models, runtime: str) -> None:
    # Valid CSR that is not canonical: scipy (and so scikit-learn) sums duplicates.
    data = np.array([1.0, 2.0, 0.5, -1.0, 3.0])
    indices = np.array([3, 1, 3, 4, 0])
    indptr = np.array([0, 3, 3, 5])
    X = sp.csr_matrix((data, indices, indptr), shape=(3, N_FEATURES))
    assert not X.has_canonical_format
    model = models[runtime]
    got = model.decision_function(CSRArrays(data, indices, indptr, (3, N_FEATURES)))
    np.testing.assert_allclose(got, SKLEARN.decision_function(X), rtol=1e-5, atol=1e-5)
    assert model.predict(X).tolist() == SKLEARN.predict(X).tolist()


def test_float64_values_beyond_float32_are_refused_by_the_sparse_kernel() -> None:
    # A big, thin float32 model gathers the used columns in float32: 1e300 cannot be cast.
    from edgesparse.ir import from_dense

    w = np.zeros((8, 1 << 17))
    w[np.arange(10_000) % 8, np.arange(10_000) * 13] = 1.0  # 10 000 used columns, 1/8 full
    ir = from_dense(w, bias=np.zeros(8), head="identity", squeeze=False)
    model = Model(ir.replace(values=ir.values.astype(np.float32)))
    assert not model._dense  # the kernel that casts its input
    X = np.zeros((1, 1 << 17))
    X[0, 13] = 1e300
    with pytest.raises(InputError, match="contains a value too large for this model's float32"):
        model.predict(X)
    X[0, 13] = 1e30  # representable: fine
    assert model.predict(X)[0, 1] == np.float32(1e30)
