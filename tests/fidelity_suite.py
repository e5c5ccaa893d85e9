"""The fidelity suite: models on data nobody here designed, for tests and benchmarks.

Every supported estimator family x {no scaler, each scikit-learn scaler} on a table whose
columns are rescaled by random powers of ten (10^-3 … 10^4) with random offsets, plus
scikit-learn's bundled real tables. ``tests/test_fidelity_suite.py`` asserts on it and
``benchmarks/bench_fidelity.py`` prints it as a table. Each case is fitted on one half of its
rows and judged on the other half (rows the model never saw), against scikit-learn's own
``predict``.
"""

from __future__ import annotations

import dataclasses
import functools
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn import datasets
from sklearn import linear_model as lm
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MaxAbsScaler, MinMaxScaler, RobustScaler, StandardScaler
from sklearn.svm import LinearSVC

MIN_AGREEMENT = 0.995
"""Classifiers: label agreement with scikit-learn on held-out rows."""
MAX_RELATIVE_ERROR = 0.01
"""Regressors: max |Δ| over held-out rows as a fraction of scikit-learn's output range."""

SCALERS: dict[str, Callable[[], Any] | None] = {
    "raw": None,
    "standard": StandardScaler,
    "minmax": MinMaxScaler,
    "maxabs": MaxAbsScaler,
    "robust": RobustScaler,
}

CLASSIFIERS: dict[str, Callable[[], Any]] = {
    "logreg": lambda: lm.LogisticRegression(max_iter=5000),
    "ovr-logreg": lambda: OneVsRestClassifier(lm.LogisticRegression(max_iter=5000)),
    "sgd-log": lambda: lm.SGDClassifier(loss="log_loss", random_state=0),
    "sgd-modified-huber": lambda: lm.SGDClassifier(loss="modified_huber", random_state=0),
    "linearsvc": lambda: LinearSVC(max_iter=20000),
    "ridgeclf": lambda: lm.RidgeClassifier(),
    "perceptron": lambda: lm.Perceptron(random_state=0),
}
REGRESSORS: dict[str, Callable[[], Any]] = {
    "ridge": lambda: lm.Ridge(),
    "linreg": lambda: lm.LinearRegression(),
    "lasso": lambda: lm.Lasso(alpha=0.01, max_iter=20000),
    "sgd-reg": lambda: lm.SGDRegressor(random_state=0),
    "huber": lambda: lm.HuberRegressor(max_iter=2000),
}
# Models that do not converge on unscaled columns spanning 10^7 (SGD, Huber) are meaningless
# there: nobody ships them. They run with every scaler.
NEEDS_SCALING = {"sgd-log", "sgd-modified-huber", "perceptron", "sgd-reg", "huber", "linearsvc"}


@dataclasses.dataclass(frozen=True)
class Case:
    """One model of the suite: a name, a fitted estimator and held-out rows."""

    name: str
    estimator: Any
    X_test: np.ndarray
    is_classifier: bool


def mixed_scale(X: np.ndarray, *, seed: int) -> np.ndarray:
    """Each column times a random power of ten in [10^-3, 10^4], after a random offset of
    up to ±50 of its own spreads (amounts beside ratios beside counts)."""
    rng = np.random.default_rng(seed)
    offset = rng.uniform(-50, 50, X.shape[1]) * X.std(axis=0)
    return (X + offset) * 10.0 ** rng.uniform(-3, 4, X.shape[1])


@functools.cache
def _tables() -> dict[str, tuple[np.ndarray, np.ndarray, bool]]:
    Xc, yc = datasets.make_classification(
        n_samples=1200, n_features=40, n_informative=20, n_classes=4, random_state=0
    )
    Xr, yr = datasets.make_regression(n_samples=1200, n_features=40, noise=5.0, random_state=0)
    wine = datasets.load_wine()
    linnerud = datasets.load_linnerud()
    return {
        "mixed-4class": (mixed_scale(Xc, seed=1), yc, True),
        "mixed-binary": (mixed_scale(Xc, seed=2), (yc >= 2).astype(int), True),
        "mixed-regression": (mixed_scale(Xr, seed=3), yr, False),
        "wine": (wine.data, wine.target_names[wine.target], True),  # string labels
        "breast-cancer": (*datasets.load_breast_cancer(return_X_y=True), True),
        "iris": (*datasets.load_iris(return_X_y=True), True),
        "digits": (*datasets.load_digits(return_X_y=True), True),
        "diabetes": (*datasets.load_diabetes(return_X_y=True), False),
        "linnerud": (linnerud.data, linnerud.target[:, 0], False),
    }


def _split(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, ...]:
    order = np.random.default_rng(0).permutation(len(X))
    half = len(X) // 2
    tr, te = order[:half], order[half:]
    return X[tr], y[tr], X[te]


def case_names() -> list[str]:
    """Every case, as ``table/scaler/model``."""
    names = []
    for table, (_, _, is_clf) in _tables().items():
        models = CLASSIFIERS if is_clf else REGRESSORS
        for scaler in SCALERS:
            for model in models:
                if scaler == "raw" and model in NEEDS_SCALING:
                    continue
                names.append(f"{table}/{scaler}/{model}")
    return names


@functools.cache
def case(name: str) -> Case:
    """Fit one case (cached)."""
    table, scaler, model = name.split("/")
    X, y, is_clf = _tables()[table]
    Xtr, ytr, Xte = _split(X, y)
    est = (CLASSIFIERS if is_clf else REGRESSORS)[model]()
    make_scaler = SCALERS[scaler]
    if make_scaler is not None:
        est = make_pipeline(make_scaler(), est)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence warnings: the fitted model is the input
        est.fit(Xtr, ytr)
    return Case(name=name, estimator=est, X_test=Xte, is_classifier=is_clf)


def score(case: Case, predicted: np.ndarray) -> float:
    """Agreement with scikit-learn (classifiers) or max error relative to its output range."""
    ref = np.asarray(case.estimator.predict(case.X_test))
    got = np.asarray(predicted)
    if case.is_classifier:
        return float(np.mean(got.astype(str) == ref.astype(str)))
    span = float(ref.max() - ref.min()) or 1.0
    return float(np.abs(got.astype(np.float64) - ref).max() / span)


def passes(case: Case, value: float) -> bool:
    """The suite's bar for ``value`` from :func:`score`."""
    return value >= MIN_AGREEMENT if case.is_classifier else value <= MAX_RELATIVE_ERROR


def needs_data(name: str) -> bool:
    """Cases whose model knows no input centre (no scaler, or MaxAbsScaler, which keeps only
    max |x|): int8 fidelity there needs statistics of the user's rows (``--check-data`` /
    ``--calibration``), which the suite gives as the training half."""
    return name.split("/")[1] in ("raw", "maxabs")


def training_rows(name: str) -> np.ndarray:
    """The rows the case's model was fitted on (the user's own data)."""
    table = name.split("/")[0]
    X, y, _ = _tables()[table]
    return _split(X, y)[0]


@functools.cache
def default_compressed(name: str) -> Any:
    """What ``compress`` writes by default for the case (a ``LinearIR``; the training rows
    stand in for --check-data where the model knows no input centre). Cached."""
    from edgesparse.api import compress

    case_ = case(name)
    return compress(case_.estimator, data=training_rows(name) if needs_data(name) else None)
