"""An attack pass on the prediction paths: inputs nobody designed, against scikit-learn.

Every engine (the numpy runtime, the ONNX graph in onnxruntime with dense and CSR inputs, the
C runtime through its `esb predict` driver, and the `edgesparse predict` CLI) runs models
fitted here (several families, binary and multiclass, string labels, float32 weights) on
input shapes chosen to cross the kernels' thresholds (128 rows, 2^14 gathered cells, 2^16
nonzeros, empty rows at either end of a run) and on input forms scikit-learn accepts
(non-canonical CSR, CSC/COO, strided and Fortran views, odd dtypes, memmaps, DataFrames).
The oracle is scikit-learn's own ``predict`` / ``decision_function`` / ``predict_proba``
(and scipy for what CSR means). Expected: the same answers (float32 models to float32
rounding, int8 on >= 99.5% of labels), or one clear edgesparse error; never a silent wrong
answer, a crash or a non-finite result.
"""

from __future__ import annotations

import copy
import functools
import warnings
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, Ridge, SGDClassifier
from sklearn.multiclass import OneVsRestClassifier
from sklearn.svm import LinearSVC

import edgesparse
from edgesparse.data import CSRArrays
from edgesparse.errors import InputError
from edgesparse.formats import onnx as onnx_format
from edgesparse.runtime import Model
from edgesparse.runtime.onnx_model import OnnxModel

RNG_SEED = 20261205


def _data(n_rows: int, n_features: int, n_classes: int, seed: int) -> tuple[np.ndarray, ...]:
    """Well-conditioned rows: one unit-variance blob a class, the class centres drawn once
    (the same for every ``seed``, which draws the rows), so few rows lie near a boundary."""
    shape = (max(8, n_classes), n_features)
    centres = np.random.default_rng(7).normal(scale=2.5 / np.sqrt(n_features), size=shape)
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, n_rows)
    if n_rows < 40 * n_classes:  # few rows a class: every class at least once
        y[:n_classes] = np.arange(n_classes)
    return centres[y] + rng.normal(size=(n_rows, n_features)) / np.sqrt(n_features) * 2, y


def _logreg() -> LogisticRegression:
    """Fitted to its optimum (gradient below 1e-8, about 20-35 lbfgs steps here): at the
    default tol lbfgs stops after 8-13 steps, at an iterate that moves with the scipy release
    (its weights 1% from the optimum), and which rows lie near a boundary, so whether int8 keeps
    99.5% of labels, would move with it."""
    return LogisticRegression(tol=1e-8, max_iter=10_000)


def _fit(family: str, n_features: int, n_classes: int, *, seed: int = 0):
    X, y = _data(min(600, (1 << 21) // n_features), n_features, n_classes, seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        if family == "logreg":  # multinomial, string labels
            return _logreg().fit(X, np.array(list("pqrstuvw"))[y])
        if family == "logreg-f32":  # fitted on float32 rows: float32 coef_
            return _logreg().fit(X.astype(np.float32), y)
        if family == "ovr":
            return OneVsRestClassifier(_logreg()).fit(X, y)
        if family == "sgd-wide":  # a few epochs: 16 one-vs-rest fits over 120000 features
            return SGDClassifier(max_iter=5, tol=None, random_state=0).fit(X, y)
        if family == "sgd":
            return SGDClassifier(loss="modified_huber", random_state=0).fit(X, y)
        if family == "svc":
            return LinearSVC().fit(X, y)
        if family == "ridge-1out":  # a 1-D target: 1-D predictions
            return Ridge(alpha=1.0).fit(X, X @ np.linspace(-1, 1, n_features))
        if family == "ridge":
            return Ridge(alpha=1.0).fit(X, X @ np.arange(1.0, 3 * n_features + 1).reshape(-1, 3))
    raise AssertionError(family)


@pytest.fixture(scope="module", autouse=True)
def _release_caches():
    """The fitted models, engines and inputs are cached for this module only (some inputs
    take tens of MB): the rest of the session does not carry them."""
    yield
    for cached in (make_input, compiled, fitted):
        cached.cache_clear()


def _engine(ir, engine: str):
    if engine == "numpy":
        return Model(ir)
    return OnnxModel.from_bytes(onnx_format.encode(ir, input=engine.split("-")[1]))


ENGINES = ["numpy", "onnx-dense", "onnx-csr"]

# name -> (family, n_features, n_classes or outputs, fraction of weights zeroed afterwards)
MODELS = {
    "logreg-5cls-str": ("logreg", 40, 5, 0.0),  # full-width block, one-row copy of its weights
    "logreg-binary-wide": ("logreg", 3000, 2, 0.0),  # one-row path on the block, no copy
    "ovr-4cls": ("ovr", 300, 4, 0.0),
    "sgd-huber-3cls": ("sgd", 300, 3, 0.0),
    "svc-binary": ("svc", 300, 2, 0.0),
    "ridge-3out": ("ridge", 40, 3, 0.0),
    "ridge-1out": ("ridge-1out", 130, 1, 0.0),
    "logreg-f32": ("logreg-f32", 60, 3, 0.0),
    "logreg-gathered-cols": ("logreg", 3000, 4, 0.97),  # a dense block of the used columns
    "sgd-sparse-cols": ("sgd", 20000, 6, 0.995),  # CSC layout, CSR through a used-column block
}


# Too wide for dense inputs here: CSR inputs only. 16 outputs over 75000 used columns, few
# weights each: no dense block of them (it would take 4.8 MB, more than the sparse layout), so
# CSR rows expand each nonzero to its column's weights.
WIDE_MODELS = {"sgd-wide-expanded": ("sgd-wide", 120000, 16, 0.94)}
MODELS_ALL = {**MODELS, **WIDE_MODELS}


@functools.cache
def fitted(name: str):
    """The scikit-learn model ``name`` (weights zeroed after the fit where asked: it is still
    scikit-learn's estimator, so its own predict stays the oracle)."""
    family, n_features, n_out, zeroed = MODELS_ALL[name]
    est = _fit(family, n_features, n_out, seed=len(name))
    if zeroed:
        lin = est.estimators_ if hasattr(est, "estimators_") else [est]
        for e in lin:
            mask = np.random.default_rng(1).random(e.coef_.shape) < zeroed
            e.coef_[mask] = 0
    return est


@functools.cache
def compiled(name: str, quantize: str, engine: str):
    """``fitted(name)`` compressed to ``quantize`` and loaded into ``engine``."""
    return _engine(edgesparse.compress(fitted(name), quantize=quantize, sparsity=0), engine)


def _coef(est) -> tuple[np.ndarray, np.ndarray]:
    if hasattr(est, "estimators_"):
        W = np.vstack([e.coef_.reshape(1, -1) for e in est.estimators_])
        return W, np.concatenate([np.ravel(e.intercept_) for e in est.estimators_])
    coef = np.asarray(est.coef_, dtype=np.float64)
    return coef.reshape(-1, coef.shape[-1]), np.ravel(est.intercept_)


def _oracle(est, X: Any, method: str) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # feature names absent / different
        return getattr(est, method)(X)


def _as_scipy(X: Any) -> Any:
    """What scikit-learn is given for ``X``: a copy (scipy sums a matrix's duplicates in place
    on some operations, e.g. ``abs``), CSRArrays as scipy CSR."""
    if isinstance(X, CSRArrays):
        return sp.csr_matrix((X.data.copy(), X.indices.copy(), X.indptr.copy()), shape=X.shape)
    if sp.issparse(X):
        return X.copy()
    if isinstance(X, np.ndarray) and X.dtype in (np.float16, np.longdouble):
        return X.astype(np.float64)  # scikit-learn refuses float16 / longdouble itself
    return X


def _abs_product(est, X: Any) -> np.ndarray:
    """sum |w x| + |b| per row and output: the scale of float32 rounding in each score."""
    W, b = _coef(est)
    Xs = _as_scipy(X)
    A = abs(Xs).astype(np.float64) if sp.issparse(Xs) else np.abs(np.asarray(Xs, np.float64))
    return np.asarray(A @ np.abs(W).T) + np.abs(b)


def assert_matches(est, m, X: Any, *, exact_labels: bool = True) -> None:
    """``m`` (a float32 or float64 model) gives scikit-learn's answers on ``X``: scores to
    float32 rounding of the sums, labels equal except where the top two scores are within
    it, probabilities to 1e-5 of the model's head applied to those scores (_proba_at)."""
    Xo = _as_scipy(X)
    before = _snapshot(X)
    # esb.h's bound: (k + 4) * 2^-23 * (sum |w x| + |b|) for a row of k stored values
    k = np.diff(before[2]) if len(before) == 3 else np.full(len(before[0]), before[0].shape[1])
    bound = (k[:, None] + 4) * 2.0**-23 * _abs_product(est, X) + 1e-6
    classifier = hasattr(est, "classes_")
    ref = _oracle(est, Xo, "decision_function" if classifier else "predict")
    got = m.decision_function(X)
    assert got.shape == ref.shape and np.isfinite(got).all()
    ref2, got2 = ref.reshape(got.shape[0], -1), got.reshape(got.shape[0], -1)
    assert np.all(np.abs(got2 - ref2) <= bound), np.max(np.abs(got2 - ref2) - bound)
    if classifier:
        labels = m.predict(X)
        ref_labels = _oracle(est, Xo, "predict")
        assert labels.dtype == ref_labels.dtype and labels.shape == ref_labels.shape
        differ = labels != ref_labels
        if ref2.shape[1] == 1:
            near = np.abs(ref2[:, 0]) <= bound[:, 0]
        else:
            top2 = np.sort(ref2, axis=1)[:, -2:]
            near = top2[:, 1] - top2[:, 0] <= 2 * bound.max(axis=1)
        assert not np.any(differ & ~near), np.flatnonzero(differ & ~near)
    if hasattr(est, "predict_proba"):
        np.testing.assert_allclose(m.predict_proba(X), _proba_at(est, Xo, got2), rtol=0, atol=1e-5)
    after = _snapshot(X)  # the engine left the caller's input as it was
    assert len(after) == len(before) and all(map(np.array_equal, before, after))


def _proba_at(est, X: Any, scores: np.ndarray) -> np.ndarray:
    """scikit-learn's own ``predict_proba`` of ``X`` with ``scores`` (a row of the model's
    scores per row of ``X``) as its decision function: the probabilities its head makes of
    those scores. Compared with an engine's probabilities, this holds the head to float32
    rounding whatever the scores' size (the scores themselves are held to their own bound), so
    the bar does not depend on how large the fitted weights came out."""

    def twin(e, s: np.ndarray):
        e = copy.copy(e)
        e.decision_function = lambda _X: s.copy()  # some heads clip it in place
        return e

    if isinstance(est, OneVsRestClassifier):
        est = copy.copy(est)
        est.estimators_ = [twin(e, scores[:, i]) for i, e in enumerate(est.estimators_)]
    else:
        est = twin(est, scores[:, 0] if scores.shape[1] == 1 else scores)
    return _oracle(est, X, "predict_proba")


def _snapshot(X: Any) -> list[np.ndarray]:
    if sp.issparse(X) or isinstance(X, CSRArrays):
        if not isinstance(X, CSRArrays) and X.format != "csr":
            X = X.tocsr()
        return [np.array(X.data), np.array(X.indices), np.array(X.indptr)]
    return [np.array(X)]


# -- inputs: each a function of (n_features, n_outputs, rng) --------------------------------
def _csr_rows(lens: list[int] | np.ndarray, n_features: int, rng, *, dups: bool = True):
    """A CSR matrix with rows of the given lengths, random columns (repeats allowed: scipy
    keeps them, unsorted, and sums them where it matters)."""
    lens = np.asarray(lens, dtype=np.int64)
    indptr = np.concatenate([[0], np.cumsum(lens)])
    nnz = int(indptr[-1])
    if dups:
        cols = rng.integers(0, n_features, nnz)
    else:  # distinct columns in each row, unsorted
        cols = np.concatenate([rng.permutation(n_features)[:k] for k in lens] or [[]])
    vals = rng.normal(size=nnz)
    return sp.csr_matrix((vals, cols.astype(np.int32), indptr), shape=(lens.size, n_features))


def _noncanonical(n: int, nf: int, rng) -> sp.csr_matrix:
    X = _csr_rows(rng.integers(0, 12, n), nf, rng, dups=True)
    X.data[::5] = 0.0  # explicit zeros too
    return X


def _memmap(n: int, nf: int, rng, tmp: Path) -> np.memmap:
    mm = np.memmap(tmp / f"rows{n}x{nf}.dat", dtype=np.float64, mode="w+", shape=(n, nf))
    mm[:] = rng.normal(size=(n, nf))
    return mm


def _csr_input_cases() -> dict[str, Callable]:
    seg = 1 << 14  # gathered cells of the one-gather-one-sum kernel
    return {
        "csr-1row": lambda nf, k, r: _csr_rows([min(nf, 30)], nf, r),
        "csr-1row-empty": lambda nf, k, r: sp.csr_matrix((1, nf)),
        "csr-2rows-first-empty": lambda nf, k, r: _csr_rows([0, 5], nf, r),
        "csr-128rows-at-cells": lambda nf, k, r: _csr_rows(
            np.full(128, max(1, seg // (k * 128))), nf, r
        ),
        "csr-128rows-over-cells": lambda nf, k, r: _csr_rows(
            np.full(128, seg // (k * 128) + 1), nf, r
        ),
        "csr-129rows": lambda nf, k, r: _csr_rows(r.integers(0, 6, 129), nf, r),
        "csr-short-rows": lambda nf, k, r: _csr_rows(r.integers(0, 4, 3000), nf, r),
        "csr-long-rows": lambda nf, k, r: _csr_rows(np.full(300, 50), nf, r),
        "csr-few-long-rows": lambda nf, k, r: _csr_rows([1] * 190 + [600] * 10, nf, r),
        "csr-over-2^16-nnz-empty-ends": lambda nf, k, r: _csr_rows(
            [0] * 7 + list(r.integers(10, 30, 4000)) + [0] * 3000 + [25] * 200 + [0] * 9, nf, r
        ),
        "csr-one-row-over-2^16": lambda nf, k, r: _csr_rows([3, 70000, 0, 2], nf, r),
        "csr-all-empty-many": lambda nf, k, r: sp.csr_matrix((5000, nf)),
        "csr-noncanonical": lambda nf, k, r: _noncanonical(60, nf, r),
        "csr-unsorted-no-dups": lambda nf, k, r: _csr_rows(
            r.integers(0, min(nf, 20), 50), nf, r, dups=False
        ),
        "csr-int64-indices": lambda nf, k, r: _int64(_noncanonical(40, nf, r)),
        "csr_array": lambda nf, k, r: sp.csr_array(_noncanonical(40, nf, r)),
        "csc": lambda nf, k, r: sp.random(50, nf, density=0.05, format="csc", random_state=r),
        "coo-with-dups": lambda nf, k, r: sp.coo_matrix(
            (r.normal(size=400), (r.integers(0, 20, 400), r.integers(0, nf, 400))),
            shape=(20, nf),
        ),
        "csr-float32": lambda nf, k, r: _noncanonical(40, nf, r).astype(np.float32),
        "csr-int-values": lambda nf, k, r: _int_values(_noncanonical(40, nf, r)),
        "CSRArrays-noncanonical": lambda nf, k, r: _csr_arrays(_noncanonical(40, nf, r)),
        "lil": lambda nf, k, r: sp.lil_matrix(_noncanonical(20, nf, r)),
        "bsr": lambda nf, k, r: sp.bsr_matrix(_noncanonical(20, nf, r)),
        "dia-array": lambda nf, k, r: sp.dia_array(np.eye(6, nf) * 3.0),
    }


def _int64(X: sp.csr_matrix) -> sp.csr_matrix:
    X.indices, X.indptr = X.indices.astype(np.int64), X.indptr.astype(np.int64)
    return X


def _int_values(X: sp.csr_matrix) -> sp.csr_matrix:
    X.data = np.round(X.data * 3).astype(np.int64)
    return X


def _csr_arrays(X: sp.csr_matrix) -> CSRArrays:
    return CSRArrays(X.data, X.indices, X.indptr, X.shape)


def _dense_input_cases() -> dict[str, Callable]:
    def n(rows: int) -> Callable:
        return lambda nf, k, r: r.normal(size=(rows, nf))

    return {
        "dense-1row": n(1),
        "dense-1row-f32": lambda nf, k, r: r.normal(size=(1, nf)).astype(np.float32),
        "dense-1row-fortran": lambda nf, k, r: np.asfortranarray(r.normal(size=(1, nf))),
        "dense-1row-column-stride": lambda nf, k, r: r.normal(size=(1, 2 * nf))[:, ::2],
        "dense-1row-of-a-batch": lambda nf, k, r: r.normal(size=(nf, 3)).T[1:2],
        "dense-1row-big-endian": lambda nf, k, r: r.normal(size=(1, nf)).astype(">f8"),
        "dense-2rows": n(2),
        "dense-128rows": n(128),
        "dense-129rows": n(129),
        "dense-fortran": lambda nf, k, r: np.asfortranarray(r.normal(size=(70, nf))),
        "dense-column-stride": lambda nf, k, r: r.normal(size=(30, 2 * nf))[:, 1::2],
        "dense-row-stride": lambda nf, k, r: r.normal(size=(90, nf))[::3],
        "dense-reversed": lambda nf, k, r: r.normal(size=(20, nf))[::-1, ::-1],
        "dense-float16": lambda nf, k, r: r.normal(size=(20, nf)).astype(np.float16),
        "dense-float32": lambda nf, k, r: r.normal(size=(20, nf)).astype(np.float32),
        "dense-int": lambda nf, k, r: r.integers(-3, 4, size=(20, nf)),
        "dense-uint8": lambda nf, k, r: r.integers(0, 255, size=(20, nf), dtype=np.uint8),
        "dense-bool": lambda nf, k, r: r.random((20, nf)) < 0.3,
        "dense-longdouble": lambda nf, k, r: r.normal(size=(5, nf)).astype(np.longdouble),
        "dense-big-endian": lambda nf, k, r: r.normal(size=(20, nf)).astype(">f4"),
        "dense-readonly": lambda nf, k, r: _readonly(r.normal(size=(20, nf))),
        "dense-broadcast-rows": lambda nf, k, r: np.broadcast_to(r.normal(size=(1, nf)), (130, nf)),
        "dataframe-named": lambda nf, k, r: pd.DataFrame(
            r.normal(size=(6, nf)), columns=[f"f{i}" for i in range(nf)]
        ),
        "dataframe-unnamed": lambda nf, k, r: pd.DataFrame(r.normal(size=(6, nf))),
        "dataframe-1row-float32": lambda nf, k, r: pd.DataFrame(
            r.normal(size=(1, nf)).astype(np.float32)
        ),
        "list-of-lists": lambda nf, k, r: r.normal(size=(3, nf)).tolist(),
    }


def _readonly(X: np.ndarray) -> np.ndarray:
    X.setflags(write=False)
    return X


INPUTS = {**_dense_input_cases(), **_csr_input_cases()}


@functools.cache
def make_input(model: str, case: str) -> Any:
    _, nf, n_out, _ = MODELS_ALL[model]
    k = 1 if n_out == 2 else n_out
    rng = np.random.default_rng(zlib.crc32(f"{model}|{case}".encode()))
    return INPUTS[case](nf, k, rng)


FLOAT_MODELS = [m for m in MODELS if m != "logreg-f32"]


@pytest.mark.parametrize("case", list(INPUTS))
@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("model", list(MODELS))
def test_float32_model_matches_sklearn(model: str, engine: str, case: str) -> None:
    """float32 weights, every input shape and form, every Python engine: scikit-learn's
    answers to float32 rounding."""
    est = fitted(model)
    assert_matches(est, compiled(model, "float32", engine), make_input(model, case))


@pytest.mark.parametrize("case", list(_csr_input_cases()))
@pytest.mark.parametrize("engine", ["numpy", "onnx-csr"])  # the dense graph: slow, not new
@pytest.mark.parametrize("model", list(WIDE_MODELS))
def test_wide_model_csr_inputs_match_sklearn(model: str, engine: str, case: str) -> None:
    est = fitted(model)
    assert_matches(est, compiled(model, "float32", engine), make_input(model, case))


def test_onnx_runs_of_rows_match_sklearn() -> None:
    """The ONNX wrapper's runs: CSR input over 2^22 / n_outputs nonzeros (several session
    runs of the CSR graph, and CSR densified a run of rows at a time for the dense graph),
    dense rows over 2^22 / n_features cells (converted to CSR a run at a time)."""
    rng = np.random.default_rng(3)
    # 5 outputs: 838861 nonzeros a run; leading empty rows belong to the first run
    X = _csr_rows([0, 0, 0, *rng.integers(0, 80, 23000), 0], 40, rng)
    assert X.nnz > (1 << 22) // 5
    for engine in ("onnx-csr", "onnx-dense"):
        assert_matches(fitted("logreg-5cls-str"), compiled("logreg-5cls-str", "float32", engine), X)
    Xd = rng.normal(size=(230, 20000)).astype(np.float32)  # 209 rows a run
    Xd[[0, 100, 229]] = 0
    assert_matches(
        fitted("sgd-sparse-cols"), compiled("sgd-sparse-cols", "float32", "onnx-csr"), Xd
    )


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("model", ["logreg-5cls-str", "ridge-3out", "sgd-sparse-cols"])
def test_lossless_model_matches_sklearn(model: str, engine: str) -> None:
    """float64 weights (``--quantize none``) on a few of the inputs."""
    est = fitted(model)
    for case in ("dense-1row", "dense-129rows", "csr-noncanonical", "csr-over-2^16-nnz-empty-ends"):
        assert_matches(est, compiled(model, "none", engine), make_input(model, case))


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("model", [m for m in MODELS if not MODELS[m][0].startswith("ridge")])
def test_int8_labels_agree_with_sklearn(model: str, engine: str) -> None:
    """int8 on well-conditioned rows (the training distribution): >= 99.5% of labels, on one
    dense batch, the same rows as CSR, one row at a time, and in runs over 2^16 nonzeros."""
    est = fitted(model)
    _, nf, n_out, _ = MODELS[model]
    n = min(4000, (1 << 21) // nf)
    X, _ = _data(n, nf, n_out, seed=99)
    m = compiled(model, "int8", engine)
    ref = _oracle(est, X, "predict")
    labels = m.predict(X)
    assert np.mean(labels == ref) >= 0.995
    np.testing.assert_array_equal(m.predict(sp.csr_matrix(X)), labels)
    one = np.concatenate([m.predict(X[i : i + 1]) for i in range(0, n, 37)])
    np.testing.assert_array_equal(one, labels[::37])
    if nf * n < (1 << 16):
        big = np.tile(X, ((1 << 16) // (nf * n) + 2, 1))
        np.testing.assert_array_equal(m.predict(sp.csr_matrix(big))[:n], labels)


# -- a score that overflows float32 is an error in every engine, never inf/NaN scores -------
def _overflow_model():
    X, y = _data(300, 6, 3, seed=1)
    est = LogisticRegression(max_iter=300).fit(X, y)
    return est, edgesparse.compress(est, quantize="float32")


@pytest.mark.parametrize("form", ["dense", "dense-1row", "csr", "csr-1row"])
@pytest.mark.parametrize("engine", ENGINES)
def test_score_overflow_is_an_error_not_inf(engine: str, form: str) -> None:
    """Finite float32 input whose products pass float32's range: scikit-learn (float64) has
    finite scores; a float32 engine must refuse the row, not return inf/NaN scores (whose
    argmax is an arbitrary class) or probabilities."""
    est, ir = _overflow_model()
    n = 1 if form.endswith("1row") else 4
    X = np.random.default_rng(0).normal(size=(n, 6)).astype(np.float32)
    X[0, :] = np.sign(est.coef_[0]) * 3e38  # every product of output 0 near float32's max
    assert np.isfinite(est.decision_function(X)).all()  # the oracle: finite, float64
    Xin = sp.csr_matrix(X) if form.startswith("csr") else X
    m = _engine(ir, engine)
    for method in ("decision_function", "predict", "predict_proba"):
        with pytest.raises(InputError, match="makes a score overflow this model's float32"):
            getattr(m, method)(Xin)


# -- inputs scikit-learn refuses: one clear edgesparse error in every engine ------------------
def _unused_column(model: str) -> int:
    W, _ = _coef(fitted(model))
    unused = np.flatnonzero(~np.any(W != 0, axis=0))
    return int(unused[0]) if unused.size else 0


def _with_value(model: str, value: float, *, rows: int, column: str, sparse: bool) -> Any:
    _, nf, _, _ = MODELS[model]
    X = np.random.default_rng(5).normal(size=(rows, nf))
    col = (
        _unused_column(model)
        if column == "unused"
        else int(np.argmax(np.abs(_coef(fitted(model))[0]).sum(0)))
    )
    X[rows - 1, col] = value
    return sp.csr_matrix(X) if sparse else X


def _sparse_vector(n: int) -> Any:
    x = sp.coo_array(np.ones(n))
    if x.ndim != 1:  # scipy < 1.13 (the lowest versions CI pins 1.11) makes it (1, n)
        pytest.skip("this scipy has no 1-D sparse arrays: coo_array of a vector is 2-D")
    return x


BAD_INPUTS: dict[str, Callable[[str, int], Any]] = {
    "dense-0-rows": lambda m, nf: np.zeros((0, nf)),
    "csr-0-rows": lambda m, nf: sp.csr_matrix((0, nf)),
    "dataframe-0-rows": lambda m, nf: pd.DataFrame(np.zeros((0, nf))),
    "dense-1row-one-feature-short": lambda m, nf: np.zeros((1, nf - 1)),
    "dense-1row-one-feature-long": lambda m, nf: np.zeros((1, nf + 1)),
    "dense-one-feature-short": lambda m, nf: np.zeros((3, nf - 1)),
    "dense-one-feature-long": lambda m, nf: np.zeros((3, nf + 1)),
    "csr-one-feature-short": lambda m, nf: sp.csr_matrix((3, nf - 1)),
    "csr-one-feature-long": lambda m, nf: sp.csr_matrix(np.eye(3, nf + 1)),
    "dense-1-d": lambda m, nf: np.zeros(nf),
    "dense-3-d": lambda m, nf: np.zeros((1, 1, nf)),
    "dense-complex": lambda m, nf: np.zeros((2, nf), dtype=complex),
    "csr-complex": lambda m, nf: sp.csr_matrix(np.eye(2, nf, dtype=complex)),
    "sparse-1-d-array": lambda m, nf: _sparse_vector(nf),
}
for _value in ("nan", "inf", "-inf"):
    for _column in ("used", "unused"):
        for _rows in (1, 3):
            for _sparse in (False, True):
                _name = f"{'csr' if _sparse else 'dense'}-{_rows}row-{_value}-{_column}"
                BAD_INPUTS[_name] = functools.partial(
                    lambda m, nf, **kw: _with_value(m, **kw),
                    value=float(_value),
                    rows=_rows,
                    column=_column,
                    sparse=_sparse,
                )
ERROR_MODELS = ["logreg-5cls-str", "logreg-binary-wide", "logreg-gathered-cols", "sgd-sparse-cols"]


@pytest.mark.parametrize("case", list(BAD_INPUTS))
@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("model", ERROR_MODELS)
def test_inputs_sklearn_refuses_are_one_clear_error(model: str, engine: str, case: str) -> None:
    est = fitted(model)
    X = BAD_INPUTS[case](model, MODELS[model][1])
    with pytest.raises(ValueError), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.predict(_as_scipy(X))
    m = compiled(model, "float32", engine)
    for method in ("predict", "decision_function", "predict_proba"):
        if hasattr(est, method):
            with pytest.raises(InputError):
                getattr(m, method)(X)


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
@pytest.mark.parametrize("rows", [1, 3])
@pytest.mark.parametrize("column", ["used", "unused"])
@pytest.mark.parametrize("value", [3e38, -1e39, 1e300])
@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("model", ["logreg-5cls-str", "logreg-gathered-cols", "sgd-sparse-cols"])
def test_huge_finite_values_match_or_are_refused(
    model: str, engine: str, value: float, column: str, rows: int, sparse: bool
) -> None:
    """A finite value beyond float32's range (scikit-learn computes it in float64): the same
    answers, or an InputError; never an inf/NaN score or a label taken from one."""
    X = _with_value(model, value, rows=rows, column=column, sparse=sparse)
    m = compiled(model, "float32", engine)
    try:
        assert_matches(fitted(model), m, X)
    except InputError as exc:
        assert "too large" in str(exc) or "overflow" in str(exc)


# -- one-vs-rest logistic probabilities where every score is far below 0 --------------------
def _far_negative_rows() -> tuple[Any, np.ndarray]:
    """Rows whose one-vs-rest scores are all below -104 (a float32 sigmoid is 0 there; a
    float64 one is not), and one row with a score near 0 for contrast."""
    est = fitted("ovr-4cls")
    W, b = _coef(est)
    target = np.array([[-150.0, -160, -200, -130], [-120, -300, -110, -140], [-30, -300, -110, -9]])
    return est, (target - b) @ np.linalg.pinv(W).T


@pytest.mark.parametrize("engine", ENGINES)
def test_ovr_logistic_probabilities_of_far_negative_rows(engine: str) -> None:
    """scikit-learn (float64) still ranks the classes of a row whose every one-vs-rest score
    is below -104 (probabilities ~[0, 0, 0, 1]); a float32 head made it uniform [0.25, ...],
    disagreeing with the row's own predicted label."""
    est, X = _far_negative_rows()
    assert np.all(est.decision_function(X)[:2] < -104)
    for quantize in ("float32", "int8"):
        m = compiled("ovr-4cls", quantize, engine)
        proba = m.predict_proba(X)
        np.testing.assert_array_equal(m.classes_[proba.argmax(axis=1)], m.predict(X))
        if quantize == "float32":
            np.testing.assert_allclose(proba, est.predict_proba(X), rtol=0, atol=1e-5)


# -- the C runtime (the `esb predict` driver: batch calls, every layout) ---------------------
C_MODES = {
    "fast": [],
    "no-csr-index": ["--no-csr-index"],
    "one-row": ["--one-row"],
    "streamed": ["--layout", "streamed"],
    "transposed": ["--layout", "transposed"],
}
C_MODELS = ["logreg-5cls-str", "logreg-binary-wide", "ovr-4cls", "ridge-3out", "sgd-sparse-cols"]


def _c_inputs(nf: int) -> dict[str, Any]:
    rng = np.random.default_rng(nf)
    # 1, 3, 5 and 130 rows: the blocked (4/8 rows) and streaming (2/4 rows) kernels' tails
    out: dict[str, Any] = {f"dense-{n}rows": rng.normal(size=(n, nf)) for n in (1, 3, 5, 130)}
    out["csr-rows-over-128-nnz"] = _csr_rows([0, 300, 5, 129, 0, 700, 0], nf, rng)
    out["csr-short-rows-empty-ends"] = _csr_rows([0, 0, *rng.integers(0, 4, 300), 0, 0], nf, rng)
    out["csr-all-empty"] = sp.csr_matrix((9, nf))
    edges = sp.lil_matrix((4, nf))
    edges[1, nf - 1], edges[2, 0], edges[3, 0], edges[3, nf - 1] = 2.0, -1.0, 0.5, 1.5
    out["csr-first-and-last-columns"] = edges.tocsr()
    out["csr-noncanonical"] = _noncanonical(50, nf, rng)
    return out


@pytest.fixture(scope="module")
def esb_driver(tmp_path_factory) -> list[str]:
    from tests.cdriver import build_driver

    return build_driver(tmp_path_factory.mktemp("attack-c"), sanitized=False, name="esb")


def _c_predict(driver: list[str], blob: Path, X: Any, tmp: Path, *args: str):
    import subprocess

    from edgesparse.export_c import write_rows

    rows = tmp / "rows.bin"
    write_rows(rows, X)
    cmd = [*driver, "predict", str(blob), str(rows), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("quantize", ["float32", "int8"])
@pytest.mark.parametrize("model", C_MODELS)
def test_c_runtime_matches_sklearn(model: str, quantize: str, esb_driver, tmp_path) -> None:
    """Every layout and path of the C runtime (dense rows through the blocked and streaming
    kernels, CSR rows through the staged kernel with and without the CSR column index, one
    row at a time) on float32 rows: scikit-learn's answers (float32: within esb.h's bound;
    int8: >= 99.5% of labels over all inputs)."""
    from edgesparse.formats import esb

    est = fitted(model)
    blob = tmp_path / "m.esb"
    blob.write_bytes(esb.encode(edgesparse.compress(est, quantize=quantize, sparsity=0)))
    classifier = hasattr(est, "classes_")
    agree, total = 0, 0
    for case, X in _c_inputs(MODELS[model][1]).items():
        X32 = X.astype(np.float32)
        Xo = X32.astype(np.float64)  # the rows the driver reads, exactly
        ref = _oracle(est, Xo, "decision_function" if classifier else "predict")
        ref = ref.reshape(X.shape[0], -1)
        k = np.diff(X32.tocsr().indptr) if sp.issparse(X32) else np.full(X.shape[0], X.shape[1])
        bound = (k[:, None] + 4) * 2.0**-23 * _abs_product(est, Xo) + 1e-6
        for mode, args in C_MODES.items():
            res = _c_predict(esb_driver, blob, X32, tmp_path, *args)
            assert res.returncode == 0 and not res.stderr, (case, mode, res.stderr)
            lines = [ln.split("\t") for ln in res.stdout.splitlines()]
            assert len(lines) == X.shape[0], (case, mode)
            scores = np.array([[float(v) for v in ln[1].split()] for ln in lines])
            if quantize == "float32":
                assert np.all(np.abs(scores - ref) <= bound), (case, mode)
            if not classifier:
                continue
            labels = est.classes_[[int(ln[0]) for ln in lines]]
            agree += int(np.sum(labels == _oracle(est, Xo, "predict")))
            total += len(labels)
            if hasattr(est, "predict_proba") and quantize == "float32":
                proba = np.array([[float(v) for v in ln[2].split()] for ln in lines])
                np.testing.assert_allclose(proba, _proba_at(est, Xo, scores), atol=1e-5)
    assert not classifier or agree >= 0.995 * total


def _raw_csr_rows(path: Path, indptr, indices, data, n_features: int) -> None:
    """A CSR rows file as given (write_rows would canonicalize it)."""
    import struct

    from edgesparse.export_c import ROWS_MAGIC

    head = ROWS_MAGIC + struct.pack("<IIII", 1, len(indptr) - 1, n_features, len(indices))
    body = np.asarray(indptr, "<u4").tobytes() + np.asarray(indices, "<i4").tobytes()
    path.write_bytes(head + body + np.asarray(data, "<f4").tobytes())


@pytest.mark.parametrize(
    "case",
    ["duplicate-index", "unsorted-indices", "nan-value", "inf-value", "overflow", "nf-plus-one"],
)
def test_c_runtime_refuses_with_one_message(case: str, esb_driver, tmp_path) -> None:
    """Rows the C runtime must refuse: one `esb:` line naming the row, a non-zero exit, the
    rows before it printed; never a wrong answer or a crash."""
    est = fitted("sgd-sparse-cols")
    nf = MODELS["sgd-sparse-cols"][1]
    from edgesparse.formats import esb

    blob = tmp_path / "m.esb"
    blob.write_bytes(esb.encode(edgesparse.compress(est, quantize="float32", sparsity=0)))
    used = int(np.flatnonzero(np.any(_coef(est)[0] != 0, axis=0))[0])
    indptr, indices, data, n = [0, 2, 4], [1, 5, used, used + 1], [1.0, 2.0, 1.0, 1.0], nf
    bad_row = 1
    if case == "duplicate-index":
        indices = [1, 5, used, used]
    elif case == "unsorted-indices":
        indices = [1, 5, used + 1, used]
    elif case in ("nan-value", "inf-value"):
        data = [1.0, 2.0, float(case[:3]), 1.0]
    elif case == "overflow":  # every column of output 0 at 3.3e38, signed as its weight
        w0 = _coef(est)[0][0]
        cols = np.flatnonzero(w0)
        assert np.abs(w0).sum() > 1.1  # so the float32 sum passes 3.4e38
        indptr, indices = [0, 2, 2 + cols.size], [1, 5, *cols.tolist()]
        data = [1.0, 2.0, *(np.sign(w0[cols]) * 3.3e38).tolist()]
    else:
        n, bad_row = nf + 1, None
    rows = tmp_path / "rows.bin"
    _raw_csr_rows(rows, indptr, indices, data, n)
    for args in C_MODES.values():
        import subprocess

        res = subprocess.run(
            [*esb_driver, "predict", str(blob), str(rows), *args],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert res.returncode in (1, 2) and len(res.stderr.strip().splitlines()) == 1, res.stderr
        assert res.stderr.startswith("esb: ")
        if bad_row is not None:
            assert f"row {bad_row}:" in res.stderr and len(res.stdout.splitlines()) == bad_row


# -- the CLI: `edgesparse predict` on every model file kind ----------------------------------
@pytest.fixture(scope="module")
def cli_models(tmp_path_factory) -> dict[str, Path]:
    from edgesparse.formats import esb

    d = tmp_path_factory.mktemp("attack-cli")
    ir = edgesparse.compress(fitted("logreg-5cls-str"), quantize="float32", sparsity=0)
    (d / "m.esb").write_bytes(esb.encode(ir))
    (d / "dense.onnx").write_bytes(onnx_format.encode(ir))
    (d / "csr.onnx").write_bytes(onnx_format.encode(ir, input="csr"))
    return {"esb": d / "m.esb", "onnx-dense": d / "dense.onnx", "onnx-csr": d / "csr.onnx"}


def _cli(*args: Any):
    from click.testing import CliRunner

    from edgesparse.cli import cli

    return CliRunner().invoke(cli, [str(a) for a in args])


def _save_csr(path: Path, X: sp.csr_matrix) -> Path:
    np.savez(path, X_data=X.data, X_indices=X.indices, X_indptr=X.indptr, X_shape=X.shape)
    return path


@pytest.mark.parametrize("kind", ["esb", "onnx-dense", "onnx-csr"])
def test_cli_predict_matches_sklearn_on_odd_files(kind: str, cli_models, tmp_path) -> None:
    est, nf = fitted("logreg-5cls-str"), MODELS["logreg-5cls-str"][1]
    rng = np.random.default_rng(11)
    files: dict[str, tuple[Path, Any]] = {}
    X = _noncanonical(40, nf, rng)
    files["noncanonical"] = (_save_csr(tmp_path / "nc.npz", X), X)
    X64 = _int64(_noncanonical(30, nf, rng))
    files["int64"] = (_save_csr(tmp_path / "i64.npz", X64), X64)
    Xf = np.asfortranarray(rng.normal(size=(5, nf)).astype(np.float16))
    np.save(tmp_path / "f16.npy", Xf)
    files["float16-fortran"] = (tmp_path / "f16.npy", Xf.astype(np.float64))
    for name, (path, X) in files.items():
        res = _cli("predict", cli_models[kind], path)
        assert res.exit_code == 0, (name, res.output)
        assert res.stdout.split() == _oracle(est, X.copy(), "predict").tolist(), name


@pytest.mark.parametrize("kind", ["esb", "onnx-dense", "onnx-csr"])
def test_cli_predict_bad_rows_are_one_error_line(kind: str, cli_models, tmp_path) -> None:
    est, nf = fitted("logreg-5cls-str"), MODELS["logreg-5cls-str"][1]
    rng = np.random.default_rng(12)
    bad: dict[str, Path] = {}
    np.save(tmp_path / "zero.npy", np.zeros((0, nf)))
    bad["0 samples"] = tmp_path / "zero.npy"
    bad["0 samples "] = _save_csr(tmp_path / "zero.npz", sp.csr_matrix((0, nf)))
    for d in (-1, 1):
        np.save(tmp_path / f"nf{d}.npy", rng.normal(size=(2, nf + d)))
        bad[f"X has {nf + d} features"] = tmp_path / f"nf{d}.npy"
    X = rng.normal(size=(3, nf))
    X[2, 4] = np.nan
    np.save(tmp_path / "nan.npy", X)
    bad["NaN or infinity"] = tmp_path / "nan.npy"
    Xo = np.zeros((2, nf), dtype=np.float32)
    Xo[1] = np.sign(_coef(est)[0][0]) * 3e38  # float32 rows; output 0's score overflows
    np.save(tmp_path / "overflow.npy", Xo)
    bad["score overflow"] = tmp_path / "overflow.npy"
    for message, path in bad.items():
        res = _cli("predict", cli_models[kind], path)
        assert res.exit_code == 1 and isinstance(res.exception, SystemExit), res.output
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: "), res.stderr
        assert message.strip() in lines[0] and not res.stdout


@pytest.mark.parametrize("quantize", ["float32", "int8"])
def test_c_ovr_logistic_probabilities_of_far_negative_rows(
    quantize: str, esb_driver, tmp_path
) -> None:
    """The C runtime's one-vs-rest logistic head on rows whose scores are all below -104:
    scikit-learn's probabilities, the label's class the most probable; and on a row whose
    scores are all below -ln(DBL_MAX) ~ -709.78, where scikit-learn's float64 sigmoids are all
    0: uniform, scikit-learn's own rule for such rows (SGDClassifier's _predict_proba_lr;
    OneVsRestClassifier leaves them all 0, which is no distribution)."""
    from edgesparse.formats import esb

    est, X = _far_negative_rows()
    X = np.vstack([X, X[0] * 6]).astype(np.float32)  # scores near -900: all sigmoids 0
    blob = tmp_path / "m.esb"
    blob.write_bytes(esb.encode(edgesparse.compress(est, quantize=quantize, sparsity=0)))
    res = _c_predict(esb_driver, blob, X, tmp_path)
    assert res.returncode == 0, res.stderr
    lines = [ln.split("\t") for ln in res.stdout.splitlines()]
    proba = np.array([[float(v) for v in ln[2].split()] for ln in lines])
    np.testing.assert_array_equal(proba.argmax(axis=1)[:3], [int(ln[0]) for ln in lines][:3])
    if quantize == "float32":
        Xo = X.astype(np.float64)
        assert np.all(est.decision_function(Xo)[3] < -745)
        expected = est.predict_proba(Xo)
        np.testing.assert_array_equal(expected.sum(axis=1) == 0, [False] * 3 + [True])
        expected[3] = 1 / expected.shape[1]
        np.testing.assert_allclose(proba, expected, rtol=0, atol=1e-5)


def test_concurrent_first_calls_agree(tmp_path) -> None:
    """Fresh models (their lazily built blocks, tables and tiles not yet there) called from
    several threads at once, dense and CSR: every thread gets scikit-learn's labels."""
    from concurrent.futures import ThreadPoolExecutor

    inputs = [
        make_input(m, c) for m in ("sgd-sparse-cols",) for c in ("csr-long-rows", "dense-129rows")
    ]
    est = fitted("sgd-sparse-cols")
    refs = [_oracle(est, _as_scipy(X), "predict") for X in inputs]
    for _ in range(3):
        m = Model(edgesparse.compress(est, quantize="float32", sparsity=0))
        with ThreadPoolExecutor(max_workers=6) as pool:
            jobs = [pool.submit(m.predict, inputs[i % 2]) for i in range(12)]
            for i, job in enumerate(jobs):
                np.testing.assert_array_equal(job.result(), refs[i % 2])


@pytest.mark.parametrize("rows", [20, 1])
def test_csr_workspace_is_bounded_by_a_run_not_the_input(rows: int) -> None:
    """2^20 nonzeros in rows of ``rows``: the numpy runtime's peak Python allocation stays
    below the input's own bytes (the kernels work a bounded piece of nonzeros at a time, a
    long row in pieces)."""
    import tracemalloc

    m = compiled("logreg-5cls-str", "float32", "numpy")
    nnz, nf = 1 << 20, MODELS["logreg-5cls-str"][1]
    rng = np.random.default_rng(4)
    data, cols = rng.normal(size=nnz).astype(np.float32), rng.integers(0, nf, nnz, np.int32)
    X = sp.csr_matrix((data, cols, np.arange(0, nnz + 1, nnz // rows)), shape=(rows, nf))
    m.predict(X[:1])  # built on first use: the used-column block, the bias tile
    tracemalloc.start()
    try:
        m.predict(X)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < data.nbytes + cols.nbytes
