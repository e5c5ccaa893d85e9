"""Frontends for scikit-learn's linear estimators, one-vs-rest and multi-output models, and
edgesparse's own weights file: each returns :class:`~edgesparse.frontends.base.LinearParts`.

Every converter reproduces scikit-learn's own outputs: ``predict`` exactly (labels) and
``decision_function`` / ``predict_proba`` to floating-point rounding. The head (how scores turn
into outputs) is chosen the way scikit-learn 1.9 computes ``predict_proba``:

* ``LogisticRegression(CV)``: binary -> ``logistic``; multiclass -> ``softmax`` (scikit-learn
  1.8 removed ``multi_class``; ``predict_proba`` is softmax whenever there are >= 3 classes,
  and liblinear refuses multiclass problems: wrap it in ``OneVsRestClassifier`` instead).
  Older releases by their own rules (:mod:`edgesparse.frontends.sklearn_rules`).
* ``SGDClassifier``: ``log_loss`` -> ``logistic``, ``modified_huber`` -> ``modified_huber``,
  every other loss -> ``hard`` (no ``predict_proba``).
* ``OneVsRestClassifier``: the binary estimators' rows stacked; ``logistic`` when they are
  logistic (scikit-learn's normalisation), ``hard`` when they have no ``predict_proba``.

Nothing here imports scikit-learn or scipy: estimators are read through their fitted
attributes, and sparse ``coef_`` matrices are handled by duck typing. Which classes each
converter serves is written in the registry (:mod:`edgesparse.frontends`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from edgesparse.errors import IRError, UnsupportedModelError
from edgesparse.frontends.base import (
    Inner,
    LinearParts,
    n_features_in,
    name_of,
    require_fitted,
)
from edgesparse.frontends.sklearn_rules import (
    evidently_old,
    logistic_head,
    note,
    sgd_head,
    written_by_other,
)
from edgesparse.ir.linear import PROBA_HEADS

__all__ = [
    "hard_classifier",
    "logistic_regression",
    "multi_output_regressor",
    "one_vs_rest",
    "raw_linear_model",
    "regressor",
    "sgd_classifier",
    "sgd_regressor",
]


# -- weights ---------------------------------------------------------------------------------
def _is_sparse(a: Any) -> bool:
    return hasattr(a, "tocsr") and hasattr(a, "nnz")


def _weights(
    coef: Any, intercept: Any, owner: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, np.ndarray, int]:
    """``coef``/``intercept`` -> (indptr, indices, values, n_features, bias, coef ndim).

    Dense ``coef`` is converted by dropping zeros; scipy sparse ``coef`` (a ``.sparsify()``-ed
    model) is canonicalised without densifying it.
    """
    if _is_sparse(coef):
        indptr, indices, data, n_rows, n_features, ndim = _sparse_to_csr(coef, owner)
    else:
        indptr, indices, data, n_rows, n_features, ndim = _dense_to_csr(coef, owner)
    if n_rows < 1 or n_features < 1:
        raise UnsupportedModelError(f"{owner}: coef_ is empty (shape {(n_rows, n_features)})")

    b = np.asarray(0.0 if intercept is None else intercept)
    if b.dtype.kind not in "fiub":
        raise UnsupportedModelError(f"{owner}: intercept_ has dtype {b.dtype}")
    b = b.astype(np.float64).reshape(-1)
    if b.size == 1 and n_rows > 1:
        b = np.full(n_rows, b[0])
    if b.size != n_rows:
        raise UnsupportedModelError(
            f"{owner}: intercept_ has {b.size} entries but coef_ has {n_rows} row(s)"
        )
    if not np.all(np.isfinite(b)):
        raise IRError(f"{owner}: intercept_ contains NaN or Inf")
    return indptr, indices.astype(np.int32), data, n_features, b, ndim


def _dense_to_csr(
    coef: Any, owner: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int, int]:
    """CSR of a dense ``coef`` (zeros dropped, float64 values), holding nothing of its size:
    a wide model's ``coef_`` is the largest thing compress holds, so no float64 or boolean copy
    of it is made, only arrays as long as its nonzeros (issue 19)."""
    w = np.asarray(coef)
    if w.dtype.kind not in "fiub":
        raise UnsupportedModelError(f"{owner}: coef_ has dtype {w.dtype}")
    ndim = w.ndim
    if ndim == 1:
        w = w.reshape(1, -1)
    elif ndim != 2:
        raise UnsupportedModelError(f"{owner}: coef_ has shape {w.shape}")
    # Converting to float64 keeps every nonzero nonzero and every zero finite, so the nonzeros
    # of ``w`` and the finiteness of the converted nonzeros are those of ``w.astype(float64)``.
    rows, cols = np.nonzero(w)
    data = w[rows, cols].astype(np.float64, copy=False)  # the gather made it private
    if not np.all(np.isfinite(data)):
        raise IRError(f"{owner}: coef_ contains NaN or Inf")
    n_rows, n_features = w.shape
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n_rows), out=indptr[1:])
    return indptr, cols, data, n_rows, n_features, ndim


def _sparse_to_csr(
    coef: Any, owner: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int, int]:
    """Canonical CSR (sorted, duplicates summed, zeros dropped) from any scipy sparse ``coef``,
    without densifying it. Handles the 1-D sparse matrix ``SGDRegressor.sparsify()`` makes
    with scipy >= 1.15 (which cannot even be converted to COO)."""
    shape = tuple(int(d) for d in coef.shape)
    ndim = len(shape)
    if ndim == 1 and hasattr(coef, "indices") and hasattr(coef, "data"):
        cols = np.asarray(coef.indices)
        rows = np.zeros(cols.size, dtype=np.int64)
        data = np.asarray(coef.data)
    elif ndim in (1, 2):
        coo = coef.tocoo()
        coords = getattr(coo, "coords", None) or ((coo.col,) if ndim == 1 else (coo.row, coo.col))
        cols = np.asarray(coords[-1])
        rows = np.asarray(coords[0]) if ndim == 2 else np.zeros(cols.size, dtype=np.int64)
        data = np.asarray(coo.data)
    else:
        raise UnsupportedModelError(f"{owner}: coef_ has shape {shape}")
    n_rows, n_features = (1, shape[0]) if ndim == 1 else shape
    if data.dtype.kind not in "fiub":
        raise UnsupportedModelError(f"{owner}: coef_ has dtype {data.dtype}")
    data = data.astype(np.float64)
    if not np.all(np.isfinite(data)):
        raise IRError(f"{owner}: coef_ contains NaN or Inf")
    keys = rows.astype(np.int64) * n_features + cols.astype(np.int64)
    uniq, inverse = np.unique(keys, return_inverse=True)  # sorted by (row, column)
    # float64 even when empty (np.bincount of no weights returns int64).
    sums = np.bincount(inverse.reshape(-1), weights=data, minlength=uniq.size).astype(
        np.float64, copy=False
    )
    keep = sums != 0
    uniq, sums = uniq[keep], sums[keep]
    out_rows = uniq // n_features
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(np.bincount(out_rows, minlength=n_rows), out=indptr[1:])
    return indptr, uniq % n_features, sums, n_rows, n_features, ndim


def _classes(est: Any, labels: Any) -> np.ndarray:
    """``labels`` as a 1-D array of strings, 64-bit integers or floats, refusing the rest."""
    classes = np.asarray(labels)
    if classes.ndim != 1:  # a crafted file may hold a scalar or a dict here
        raise UnsupportedModelError(
            f"{name_of(est)}: classes_ must be a 1-D array of labels, got shape {classes.shape}"
        )
    if classes.dtype == object:
        if all(isinstance(c, str) for c in classes):
            classes = classes.astype(str)
        elif all(isinstance(c, (int, np.integer)) and not isinstance(c, bool) for c in classes):
            if not all(-(2**63) <= c < 2**63 for c in classes):
                raise UnsupportedModelError(
                    f"{name_of(est)}: class labels must fit 64-bit integers"
                )
            classes = classes.astype(np.int64)
        else:
            raise UnsupportedModelError(
                f"{name_of(est)}: class labels must be all strings or all numbers"
            )
    if classes.dtype.kind not in "USiubf" or classes.ndim != 1:
        raise UnsupportedModelError(
            f"{name_of(est)}: class labels of dtype {classes.dtype} are not supported"
        )
    return classes


def _check_n_features(est: Any, lin: LinearParts) -> None:
    n = n_features_in(est)
    if n is not None and n != lin.n_features:
        raise UnsupportedModelError(
            f"{name_of(est)}: n_features_in_ is {n} but coef_ has {lin.n_features} columns"
        )


# -- linear classifiers ----------------------------------------------------------------------
def _linear_classifier(est: Any, head_for: Callable[[Any, int], str]) -> LinearParts:
    name = name_of(est)
    lb = getattr(est, "_label_binarizer", None)
    if getattr(est, "classes_", None) is None and getattr(lb, "classes_", None) is not None:
        # RidgeClassifier(CV) before 1.9 kept its labels only in _label_binarizer (classes_
        # was a property reading them); today's class looks for its own attribute.
        est.__dict__["classes_"] = lb.classes_
        note(est, f"{name} classes_ read from _label_binarizer")
    require_fitted(est, "coef_", "classes_")
    if lb is not None and str(getattr(lb, "y_type_", "")).startswith("multilabel"):
        raise UnsupportedModelError(
            f"{name} was fitted on multilabel targets; only binary and multiclass "
            "classifiers are supported"
        )
    classes = _classes(est, est.classes_)
    indptr, indices, values, n_features, bias, _ = _weights(est.coef_, est.intercept_, name)
    n_rows = indptr.size - 1
    expected = 1 if classes.size == 2 else classes.size
    if classes.size < 2 or n_rows != expected:
        raise UnsupportedModelError(
            f"{name}: {classes.size} classes with {n_rows} coefficient row(s) is not a "
            "layout edgesparse can reproduce"
        )
    head = head_for(est, classes.size)
    # Safety net: the head must agree with whether scikit-learn offers predict_proba. Only
    # the installed release can be asked; a model it did not write follows the rules above.
    if not (written_by_other(est) or evidently_old(est)) and (head in PROBA_HEADS) != hasattr(
        est, "predict_proba"
    ):
        raise UnsupportedModelError(
            f"{name}: cannot tell how it computes predict_proba; not converting it"
        )
    lin = LinearParts(indptr, indices, values, n_features, bias, head, classes, True, name)
    _check_n_features(est, lin)
    return lin


def logistic_regression(est: Any) -> LinearParts:
    """LogisticRegression(CV): the head by the rules of the release that wrote it."""
    return _linear_classifier(est, logistic_head)


def sgd_classifier(est: Any) -> LinearParts:
    """SGDClassifier, Perceptron, PassiveAggressiveClassifier: the head from the loss."""
    return _linear_classifier(est, sgd_head)


def hard_classifier(est: Any) -> LinearParts:
    """LinearSVC, RidgeClassifier(CV): no ``predict_proba`` (head ``hard``)."""
    return _linear_classifier(est, lambda e, n: "hard")


# -- linear regressors -----------------------------------------------------------------------
def _linear_regressor(est: Any, *, always_1d: bool = False) -> LinearParts:
    name = name_of(est)
    require_fitted(est, "coef_")
    indptr, indices, values, n_features, bias, ndim = _weights(
        est.coef_, getattr(est, "intercept_", 0.0), name
    )
    n_rows = indptr.size - 1
    squeeze = ndim == 1 or (always_1d and n_rows == 1)
    lin = LinearParts(indptr, indices, values, n_features, bias, "identity", None, squeeze, name)
    _check_n_features(est, lin)
    return lin


def regressor(est: Any) -> LinearParts:
    """A linear regressor read from ``coef_``/``intercept_`` (1-D output when ``coef_`` is)."""
    return _linear_regressor(est)


def sgd_regressor(est: Any) -> LinearParts:
    """SGDRegressor, PassiveAggressiveRegressor, LinearSVR."""
    # Their predict always returns 1-D, even after .sparsify() made coef_ a 2-D matrix.
    return _linear_regressor(est, always_1d=True)


# -- the plain weights file (edgesparse.loader.RawLinearModel) --------------------------------
def raw_linear_model(model: Any) -> LinearParts:
    """edgesparse.loader's RawLinearModel (a weights file): its arrays as they are."""
    name = name_of(model)
    classes = None if model.classes is None else _classes(model, model.classes)
    head = model.head or ("hard" if classes is not None else "identity")
    indptr, indices, values, n_features, bias, ndim = _weights(model.coef, model.intercept, name)
    squeeze = ndim == 1 if classes is None else True
    return LinearParts(indptr, indices, values, n_features, bias, str(head), classes, squeeze, name)


# -- meta-estimators -------------------------------------------------------------------------
def _stack(parts: list[LinearParts]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    counts = [p.values.size for p in parts]
    indptr = np.zeros(len(parts) + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    indices = np.concatenate([p.indices for p in parts]).astype(np.int32)
    values = np.concatenate([p.values for p in parts])
    bias = np.concatenate([p.bias for p in parts])
    return indptr, indices, values, bias


def _single_row_parts(
    meta: Any, estimators: Iterable[Any], what: str, inner: Inner
) -> list[LinearParts]:
    parts = [inner.convert(e) for e in estimators]
    if not parts:
        raise UnsupportedModelError(f"{name_of(meta)} has no fitted estimators")
    n_features = {p.n_features for p in parts}
    if len(n_features) != 1:
        raise UnsupportedModelError(f"{name_of(meta)}: its estimators disagree on n_features")
    for p in parts:
        if p.n_outputs != 1:
            raise UnsupportedModelError(f"{name_of(meta)}: every estimator must be {what}")
    return parts


def one_vs_rest(est: Any, *, inner: Inner) -> LinearParts:
    """OneVsRestClassifier: its binary estimators' rows stacked; ``logistic`` when they are
    logistic (scikit-learn's normalisation), ``hard`` when they have no ``predict_proba``."""
    name = name_of(est)
    require_fitted(est, "estimators_", "label_binarizer_")
    y_type = str(getattr(est.label_binarizer_, "y_type_", ""))
    if y_type.startswith("multilabel"):
        raise UnsupportedModelError(
            f"{name} was fitted on multilabel targets; only binary and multiclass "
            "classifiers are supported"
        )
    parts = _single_row_parts(est, est.estimators_, "a binary linear classifier", inner)
    heads = {p.head for p in parts}
    base = parts[0].source
    if len(heads) != 1 or "identity" in heads or "softmax" in heads:
        raise UnsupportedModelError(f"{name}: its estimators must be binary linear classifiers")
    (head,) = heads
    if head == "modified_huber" and len(parts) > 1:
        # OneVsRest leaves rows whose binary probabilities are all 0 at zero where
        # SGDClassifier itself makes them uniform: not one of edgesparse's heads.
        raise UnsupportedModelError(
            f"{name}({base}): one-vs-rest over loss='modified_huber' normalises "
            "probabilities differently from SGDClassifier; use SGDClassifier("
            "loss='modified_huber') directly, which is one-vs-rest already"
        )
    inner_old = any(evidently_old(e) for e in est.estimators_) or evidently_old(
        getattr(est, "estimator", None)
    )
    if not (written_by_other(est) or inner_old) and (head in PROBA_HEADS) != hasattr(
        est, "predict_proba"
    ):
        raise UnsupportedModelError(
            f"{name}({base}): cannot tell how it computes predict_proba; not converting it"
        )
    classes = _classes(est, est.classes_)
    if classes.size != (2 if len(parts) == 1 else len(parts)):
        raise UnsupportedModelError(f"{name}: {classes.size} classes but {len(parts)} estimators")
    indptr, indices, values, bias = _stack(parts)
    lin = LinearParts(
        indptr,
        indices,
        values,
        parts[0].n_features,
        bias,
        head,
        classes,
        True,
        f"{name}({base})",
    )
    _check_n_features(est, lin)
    return lin


def multi_output_regressor(est: Any, *, inner: Inner) -> LinearParts:
    """MultiOutputRegressor: its single-output linear regressors' rows stacked."""
    require_fitted(est, "estimators_")
    parts = _single_row_parts(est, est.estimators_, "a single-output linear regressor", inner)
    if any(p.head != "identity" for p in parts):
        raise UnsupportedModelError(f"{name_of(est)}: every estimator must be a linear regressor")
    indptr, indices, values, bias = _stack(parts)
    source = f"{name_of(est)}({parts[0].source})"
    lin = LinearParts(
        indptr, indices, values, parts[0].n_features, bias, "identity", None, False, source
    )
    _check_n_features(est, lin)
    return lin
