"""Frontends: fitted scikit-learn linear estimators -> :class:`~edgesparse.ir.LinearIR`.

An explicit, listable registry keyed by class name (in the style of skl2onnx's converter
registry). :func:`to_ir` walks ``type(estimator).__mro__``, so subclasses of a supported class
are converted as that class. Nothing here imports scikit-learn or scipy: estimators are
recognised by class name (and the module they come from) and read through their fitted
attributes, and sparse ``coef_`` matrices are handled by duck typing.

Every converter reproduces scikit-learn's own outputs: ``predict`` exactly (labels) and
``decision_function`` / ``predict_proba`` to floating-point rounding. The head (how scores turn
into outputs) is chosen the way scikit-learn 1.9 computes ``predict_proba``:

* ``LogisticRegression(CV)``: binary -> ``logistic``; multiclass -> ``softmax`` (scikit-learn
  1.8 removed ``multi_class``; ``predict_proba`` is softmax whenever there are >= 3 classes,
  and liblinear refuses multiclass problems: wrap it in ``OneVsRestClassifier`` instead).
* ``SGDClassifier``: ``log_loss`` -> ``logistic``, ``modified_huber`` -> ``modified_huber``,
  every other loss -> ``hard`` (no ``predict_proba``).
* ``OneVsRestClassifier``: the binary estimators' rows stacked; ``logistic`` when they are
  logistic (scikit-learn's normalisation), ``hard`` when they have no ``predict_proba``.
* ``Pipeline``: StandardScaler / MaxAbsScaler / MinMaxScaler / RobustScaler steps (each a
  per-feature affine ``x*a + o``) are folded into the weights and bias, in float64; weights that
  were zero stay zero. What the scalers know about the raw input (centre, spread) becomes the
  IR's ``input_stats``, which int8 quantization uses to work in the standardized domain.

Adding a model: write ``def _convert(est) -> _Linear`` and decorate it with
``@register("ClassName", ...)``.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from .errors import IRError, UnsupportedModelError
from .ir import PROBA_HEADS, FeatureStats, LinearIR

__all__ = [
    "pickled_by_other_release",
    "register",
    "supported_models",
    "supported_preprocessors",
    "to_ir",
]


@dataclasses.dataclass
class _Linear:
    """What a converter returns: float64 canonical CSR weights over the *raw* input features,
    bias, head and labels. :func:`to_ir` adds provenance and builds the validated IR."""

    indptr: np.ndarray
    indices: np.ndarray
    values: np.ndarray
    n_features: int
    bias: np.ndarray
    head: str
    classes: np.ndarray | None
    squeeze: bool
    source: str
    stats: FeatureStats | None = None

    @property
    def n_outputs(self) -> int:
        return int(self.indptr.size - 1)

    def row_ids(self) -> np.ndarray:
        return np.repeat(np.arange(self.n_outputs, dtype=np.int64), np.diff(self.indptr))


Converter = Callable[[Any], _Linear]

# name -> (module prefix the class must come from, converter)
_REGISTRY: dict[str, tuple[str, Converter]] = {}


def register(*class_names: str, module: str = "sklearn") -> Callable[[Converter], Converter]:
    """Register the decorated converter for the estimator classes named ``class_names``.

    ``module`` is the top-level package the class must live in (``"sklearn"`` by default), so
    an unrelated class that happens to share a name is not mistaken for a scikit-learn one.
    """

    def deco(fn: Converter) -> Converter:
        for name in class_names:
            if name in _REGISTRY:
                raise ValueError(f"a converter for {name} is already registered")
            _REGISTRY[name] = (module, fn)
        return fn

    return deco


def supported_models() -> list[str]:
    """Sorted class names :func:`to_ir` converts (``edgesparse list models``)."""
    return sorted(_REGISTRY)


def supported_preprocessors() -> list[str]:
    """Sorted class names of the pipeline steps that are folded into the weights."""
    return sorted(_SCALERS)


def to_ir(estimator: Any) -> LinearIR:
    """Convert a fitted estimator into a float64 :class:`~edgesparse.ir.LinearIR`.

    Raises:
        UnsupportedModelError: the estimator (or a part of it) is not supported, or not fitted.
        IRError: its weights or intercepts contain NaN or Inf.
    """
    version = _sklearn_version(estimator)
    if version not in ("n/a", "unknown") and _release(version) is None:
        raise UnsupportedModelError(
            f"{_name(estimator)} was pickled by scikit-learn {_shown(version)} (its "
            "_sklearn_version), whose rules edgesparse does not know; load it with that "
            "version and export its weights to .npz (coef, intercept, classes, head)"
        )
    lin = _convert(estimator)
    provenance = {
        "source": lin.source,
        "sklearn_version": version,
        "sklearn_rules": _rules_note(estimator, version, lin),
        "n_features_in": str(lin.n_features),
    }
    try:
        return LinearIR(
            indptr=lin.indptr,
            indices=lin.indices,
            values=lin.values,
            n_features=lin.n_features,
            bias=lin.bias,
            head=lin.head,
            classes=lin.classes,
            squeeze=lin.squeeze,
            provenance=provenance,
            input_stats=lin.stats,
        )
    except IRError as exc:
        raise IRError(f"{lin.source}: {exc}") from None


# -- dispatch --------------------------------------------------------------------------------
def _lookup(estimator: Any) -> Converter | None:
    for klass in type(estimator).__mro__:
        entry = _REGISTRY.get(klass.__name__)
        if entry is None:
            continue
        module, fn = entry
        top = (getattr(klass, "__module__", "") or "").split(".")[0]
        if top == module:
            return fn
    return None


def _convert(estimator: Any) -> _Linear:
    fn = _lookup(estimator)
    if fn is None:
        name = _name(estimator)
        if isinstance(estimator, str):
            name = repr(estimator)
        raise UnsupportedModelError(
            f"{name} is not supported; edgesparse converts: {', '.join(supported_models())} "
            "(run `edgesparse list models`)"
        )
    return fn(estimator)


def _name(obj: Any) -> str:
    return type(obj).__name__


# -- which scikit-learn release's rules apply -------------------------------------------------
# A pickled estimator keeps the release that wrote it in ``_sklearn_version`` (put back by
# edgesparse.loader); an estimator fitted in this process has none and follows the installed
# release. Converters read the estimator by the rules of that release, not of the installed
# one: scikit-learn 1.9 unpickles a 1.3 LogisticRegression(multi_class="ovr") without complaint
# and then computes its predict_proba with softmax.
_VERSION_ATTRIBUTE = "_sklearn_version"
# LogisticRegression.predict_proba has read as in _logistic_head since 0.22 (multi_class
# "auto"); older releases (and those before 0.18, which recorded no version) are refused.
_OLDEST_RULES = (0, 22)


def _shown(text: str) -> str:
    return text if text.isprintable() and len(text) <= 40 else repr(text[:40])


def _installed_sklearn() -> str:
    sklearn = sys.modules.get("sklearn")
    return str(getattr(sklearn, "__version__", "unknown"))


def _sklearn_version(estimator: Any) -> str:
    """The scikit-learn release whose rules apply to ``estimator``: the one that pickled it
    (``_sklearn_version``), else the installed one; ``"n/a"`` for non-scikit-learn objects."""
    modules = {(k.__module__ or "").split(".")[0] for k in type(estimator).__mro__}
    if "sklearn" not in modules:
        return "n/a"
    written = getattr(estimator, "__dict__", {}).get(_VERSION_ATTRIBUTE)
    if isinstance(written, str):
        return written
    return _installed_sklearn()


def _release(version: str) -> tuple[int, int] | None:
    """``(major, minor)`` of a scikit-learn version string, or None when it is not one
    edgesparse knows the rules of (unparseable, "pre-0.18", or older than 0.22)."""
    parts = version.split(".")
    try:
        release = (int(parts[0]), int(parts[1]))
    except (ValueError, IndexError):
        return None
    return release if release >= _OLDEST_RULES else None


def _written_by_other(est: Any) -> bool:
    """Whether ``est`` was pickled by a scikit-learn release other than the installed one."""
    return _sklearn_version(est) not in (_installed_sklearn(), "n/a")


def pickled_by_other_release(estimator: Any) -> str | None:
    """The scikit-learn version that pickled ``estimator`` when it is not the installed one
    (its methods then follow the installed release's rules, not its owner's), else None."""
    return _sklearn_version(estimator) if _written_by_other(estimator) else None


def _rules(est: Any) -> tuple[int, int]:
    release = _release(_sklearn_version(est))
    if release is None:  # to_ir refuses these before converting
        raise UnsupportedModelError(
            f"{_name(est)}: pickled by scikit-learn {_shown(_sklearn_version(est))} (its "
            "_sklearn_version), whose rules edgesparse does not know"
        )
    return release


def _rules_note(estimator: Any, version: str, lin: _Linear) -> str:
    """One line for the compress summary: by which release's rules the model was read."""
    if version == "n/a":
        return "n/a"
    installed = _installed_sklearn()
    which = f"read by the rules of scikit-learn {version}"
    if version != installed:
        which += f" (installed: {installed})"
    notes = [n for n in _rule_notes(estimator) if n]
    return which + (": " + "; ".join(dict.fromkeys(notes)) if notes else "")


def _rule_notes(est: Any) -> list[str]:
    """What a release's rules changed for ``est`` and the estimators inside it."""
    notes = list(getattr(est, "__dict__", {}).get("_edgesparse_rule_notes", []))
    for attr in ("steps", "estimators_"):
        inner = getattr(est, attr, None)
        if isinstance(inner, list):
            for item in inner:
                step = item[1] if isinstance(item, tuple) and len(item) == 2 else item
                notes.extend(_rule_notes(step))
    return notes


def _require_fitted(est: Any, *attributes: str) -> None:
    missing = [a for a in attributes if getattr(est, a, None) is None]
    if missing:
        raise UnsupportedModelError(
            f"{_name(est)} is not fitted (it has no {', '.join(missing)}); "
            "fit it before compressing"
        )


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
        w = np.asarray(coef)
        if w.dtype.kind not in "fiub":
            raise UnsupportedModelError(f"{owner}: coef_ has dtype {w.dtype}")
        ndim = w.ndim
        if ndim == 1:
            w = w.reshape(1, -1)
        elif ndim != 2:
            raise UnsupportedModelError(f"{owner}: coef_ has shape {w.shape}")
        w = w.astype(np.float64)
        if not np.all(np.isfinite(w)):
            raise IRError(f"{owner}: coef_ contains NaN or Inf")
        rows, cols = np.nonzero(w)
        n_rows, n_features = w.shape
        indptr = np.zeros(n_rows + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=n_rows), out=indptr[1:])
        indices, data = cols, w[rows, cols]
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
    classes = np.asarray(labels)
    if classes.ndim != 1:  # a crafted file may hold a scalar or a dict here
        raise UnsupportedModelError(
            f"{_name(est)}: classes_ must be a 1-D array of labels, got shape {classes.shape}"
        )
    if classes.dtype == object:
        if all(isinstance(c, str) for c in classes):
            classes = classes.astype(str)
        elif all(isinstance(c, (int, np.integer)) and not isinstance(c, bool) for c in classes):
            if not all(-(2**63) <= c < 2**63 for c in classes):
                raise UnsupportedModelError(f"{_name(est)}: class labels must fit 64-bit integers")
            classes = classes.astype(np.int64)
        else:
            raise UnsupportedModelError(
                f"{_name(est)}: class labels must be all strings or all numbers"
            )
    if classes.dtype.kind not in "USiubf" or classes.ndim != 1:
        raise UnsupportedModelError(
            f"{_name(est)}: class labels of dtype {classes.dtype} are not supported"
        )
    return classes


_CORRUPT = "the model is corrupt or crafted: fit it again and save it again"


def _n_features_in(est: Any) -> int | None:
    """``est.n_features_in_`` as an int (None when absent), refusing anything else."""
    n = getattr(est, "n_features_in_", None)
    if n is None:
        return None
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)) or n < 1:
        raise UnsupportedModelError(
            f"{_name(est)}: n_features_in_ must be a positive whole number, but it is "
            f"{_described(n)}; {_CORRUPT}"
        )
    if n > _MAX_FEATURES:  # and any message that printed it would fail (int-to-str limit)
        raise UnsupportedModelError(
            f"{_name(est)}: n_features_in_ is {_described(n)}, more than the {_MAX_FEATURES} "
            f"inputs a model can have; {_CORRUPT}"
        )
    return int(n)


_MAX_FEATURES = 0x7FFFFFFF
"""Most inputs a model can have (the .esb header's limit)."""


def _described(value: Any) -> str:
    """A short description of a hostile attribute's value (never its full text)."""
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape} and dtype {value.dtype}"
    if isinstance(value, (bool, np.bool_, int, float, np.integer, np.floating)):
        text = repr(value) if not isinstance(value, int) or value.bit_length() < 64 else "huge"
        return f"{_shown(text)} ({type(value).__name__})"
    return f"a {_shown(type(value).__name__)}"


def _flag(est: Any, attr: str, default: bool) -> bool:
    """A boolean hyper-parameter (``with_mean``, ``clip``...), refusing anything else."""
    value = getattr(est, attr, default)
    if not isinstance(value, (bool, np.bool_)):
        raise UnsupportedModelError(
            f"{_name(est)}: {attr} must be True or False, but it is {_described(value)}; {_CORRUPT}"
        )
    return bool(value)


def _check_n_features(est: Any, lin: _Linear) -> None:
    n = _n_features_in(est)
    if n is not None and n != lin.n_features:
        raise UnsupportedModelError(
            f"{_name(est)}: n_features_in_ is {n} but coef_ has {lin.n_features} columns"
        )


# -- linear classifiers ----------------------------------------------------------------------
def _linear_classifier(est: Any, head_for: Callable[[Any, int], str]) -> _Linear:
    name = _name(est)
    lb = getattr(est, "_label_binarizer", None)
    if getattr(est, "classes_", None) is None and getattr(lb, "classes_", None) is not None:
        # RidgeClassifier(CV) before 1.9 kept its labels only in _label_binarizer (classes_
        # was a property reading them); today's class looks for its own attribute.
        est.__dict__["classes_"] = lb.classes_
        _note(est, f"{name} classes_ read from _label_binarizer")
    _require_fitted(est, "coef_", "classes_")
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
    if not (_written_by_other(est) or _evidently_old(est)) and (head in PROBA_HEADS) != hasattr(
        est, "predict_proba"
    ):
        raise UnsupportedModelError(
            f"{name}: cannot tell how it computes predict_proba; not converting it"
        )
    lin = _Linear(indptr, indices, values, n_features, bias, head, classes, True, name)
    _check_n_features(est, lin)
    return lin


def _note(est: Any, text: str) -> None:
    """Record what a release's rules changed, for the compress summary."""
    attrs = getattr(est, "__dict__", None)
    if isinstance(attrs, dict):
        attrs.setdefault("_edgesparse_rule_notes", [])
        if text not in attrs["_edgesparse_rule_notes"]:
            attrs["_edgesparse_rule_notes"].append(text)


def _logistic_head(est: Any, n_classes: int) -> str:
    """How ``LogisticRegression(CV).predict_proba`` turns scores into probabilities, by the
    rules of the release that wrote ``est``.

    scikit-learn 1.8 removed ``multi_class``: binary -> expit, multiclass -> softmax. From 0.22
    to 1.7 ``predict_proba`` reads (1.5-1.7 also accept the default "deprecated" as "auto")::

        ovr = multi_class in ("ovr", "warn") or (
            multi_class in ("auto", "deprecated") and (n_classes <= 2 or solver == "liblinear"))

    one-vs-rest is expit per class, normalised to sum to 1 (``_predict_proba_lr``); otherwise
    softmax, which for a binary model is softmax([-d, d]), i.e. expit(2 d).
    """
    release = _rules(est)
    attrs = getattr(est, "__dict__", {})
    if release >= (1, 8) and "multi_class" in attrs:
        # Only releases up to 1.7 have multi_class: a model unpickled without edgesparse's
        # loader (which keeps _sklearn_version) still says where it comes from.
        _note(est, f"{_name(est)} has multi_class, so it was written by scikit-learn <= 1.7")
        release = (1, 7)
    if release >= (1, 8):
        return "logistic" if n_classes == 2 else "softmax"
    multi_class = attrs.get("multi_class", "auto")
    solver = getattr(est, "solver", "lbfgs")
    version = _sklearn_version(est)
    if multi_class in ("ovr", "warn") or (
        multi_class in ("auto", "deprecated") and (n_classes <= 2 or solver == "liblinear")
    ):
        if n_classes > 2:
            why = f"multi_class={multi_class!r}" + (
                f", solver={solver!r}" if multi_class != "ovr" else ""
            )
            _note(est, f"{_name(est)} predict_proba one-vs-rest normalised ({why})")
        return "logistic"
    if multi_class not in ("multinomial", "auto", "deprecated"):
        raise UnsupportedModelError(
            f"{_name(est)}: pickled by scikit-learn {version} with multi_class="
            f"{_shown(str(multi_class))}, which edgesparse cannot read by that version's rules"
        )
    if n_classes == 2:
        raise UnsupportedModelError(
            f"{_name(est)}: pickled by scikit-learn {version} with multi_class='multinomial' "
            "on two classes; that version's predict_proba is softmax([-d, d]) = expit(2 d), "
            "which edgesparse cannot reproduce next to its decision_function d; refit it with "
            "multi_class='auto' (or with this scikit-learn)"
        )
    return "softmax"


@register("LogisticRegression", "LogisticRegressionCV")
def _logistic_regression(est: Any) -> _Linear:
    return _linear_classifier(est, _logistic_head)


# Loss names by release: "log" was renamed "log_loss" in 1.1 and removed in 1.3.
_SGD_HEADS = {"log_loss": "logistic", "log": "logistic", "modified_huber": "modified_huber"}


def _sgd_head(est: Any, n_classes: int) -> str:
    loss = getattr(est, "loss", "")
    if not isinstance(loss, str):  # it decides the output function: never guess it
        raise UnsupportedModelError(
            f"{_name(est)}: loss must be a name such as 'hinge' or 'log_loss', but it is a "
            f"{type(loss).__name__}; {_CORRUPT}"
        )
    if loss == "log":
        # Only releases up to 1.2 accept "log" (the name of log_loss before 1.1).
        _note(est, f"{_name(est)} loss='log' read as 'log_loss' (scikit-learn <= 1.2)")
    return _SGD_HEADS.get(loss, "hard")


def _evidently_old(est: Any) -> bool:
    """Whether ``est`` holds a parameter only older releases have, whatever version it
    claims (``multi_class``, removed in 1.8; ``loss="log"``, removed in 1.3)."""
    attrs = getattr(est, "__dict__", {})
    loss = attrs.get("loss")  # a crafted file may hold anything here, even an array
    return "multi_class" in attrs or (isinstance(loss, str) and loss == "log")


@register("SGDClassifier", "Perceptron", "PassiveAggressiveClassifier")
def _sgd_classifier(est: Any) -> _Linear:
    return _linear_classifier(est, _sgd_head)


@register("LinearSVC", "RidgeClassifier", "RidgeClassifierCV")
def _hard_classifier(est: Any) -> _Linear:
    return _linear_classifier(est, lambda e, n: "hard")


# -- linear regressors -----------------------------------------------------------------------
def _linear_regressor(est: Any, *, always_1d: bool = False) -> _Linear:
    name = _name(est)
    _require_fitted(est, "coef_")
    indptr, indices, values, n_features, bias, ndim = _weights(
        est.coef_, getattr(est, "intercept_", 0.0), name
    )
    n_rows = indptr.size - 1
    squeeze = ndim == 1 or (always_1d and n_rows == 1)
    lin = _Linear(indptr, indices, values, n_features, bias, "identity", None, squeeze, name)
    _check_n_features(est, lin)
    return lin


@register(
    "LinearRegression",
    "Ridge",
    "RidgeCV",
    "Lasso",
    "LassoCV",
    "ElasticNet",
    "ElasticNetCV",
    "MultiTaskLasso",
    "MultiTaskLassoCV",
    "MultiTaskElasticNet",
    "MultiTaskElasticNetCV",
    "Lars",
    "LarsCV",
    "LassoLars",
    "LassoLarsCV",
    "LassoLarsIC",
    "OrthogonalMatchingPursuit",
    "OrthogonalMatchingPursuitCV",
    "BayesianRidge",
    "ARDRegression",
    "HuberRegressor",
    "QuantileRegressor",
    "TheilSenRegressor",
)
def _regressor(est: Any) -> _Linear:
    return _linear_regressor(est)


@register("SGDRegressor", "PassiveAggressiveRegressor", "LinearSVR")
def _sgd_regressor(est: Any) -> _Linear:
    # Their predict always returns 1-D, even after .sparsify() made coef_ a 2-D matrix.
    return _linear_regressor(est, always_1d=True)


# -- the plain weights file (edgesparse.loader.RawLinearModel) --------------------------------
@register("RawLinearModel", module="edgesparse")
def _raw(model: Any) -> _Linear:
    name = _name(model)
    classes = None if model.classes is None else _classes(model, model.classes)
    head = model.head or ("hard" if classes is not None else "identity")
    indptr, indices, values, n_features, bias, ndim = _weights(model.coef, model.intercept, name)
    squeeze = ndim == 1 if classes is None else True
    return _Linear(indptr, indices, values, n_features, bias, str(head), classes, squeeze, name)


# -- meta-estimators -------------------------------------------------------------------------
def _stack(parts: list[_Linear]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    counts = [p.values.size for p in parts]
    indptr = np.zeros(len(parts) + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    indices = np.concatenate([p.indices for p in parts]).astype(np.int32)
    values = np.concatenate([p.values for p in parts])
    bias = np.concatenate([p.bias for p in parts])
    return indptr, indices, values, bias


def _single_row_parts(meta: Any, estimators: Iterable[Any], what: str) -> list[_Linear]:
    parts = [_convert(e) for e in estimators]
    if not parts:
        raise UnsupportedModelError(f"{_name(meta)} has no fitted estimators")
    n_features = {p.n_features for p in parts}
    if len(n_features) != 1:
        raise UnsupportedModelError(f"{_name(meta)}: its estimators disagree on n_features")
    for p in parts:
        if p.n_outputs != 1:
            raise UnsupportedModelError(f"{_name(meta)}: every estimator must be {what}")
    return parts


@register("OneVsRestClassifier")
def _one_vs_rest(est: Any) -> _Linear:
    name = _name(est)
    _require_fitted(est, "estimators_", "label_binarizer_")
    y_type = str(getattr(est.label_binarizer_, "y_type_", ""))
    if y_type.startswith("multilabel"):
        raise UnsupportedModelError(
            f"{name} was fitted on multilabel targets; only binary and multiclass "
            "classifiers are supported"
        )
    parts = _single_row_parts(est, est.estimators_, "a binary linear classifier")
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
    inner_old = any(_evidently_old(e) for e in est.estimators_) or _evidently_old(
        getattr(est, "estimator", None)
    )
    if not (_written_by_other(est) or inner_old) and (head in PROBA_HEADS) != hasattr(
        est, "predict_proba"
    ):
        raise UnsupportedModelError(
            f"{name}({base}): cannot tell how it computes predict_proba; not converting it"
        )
    classes = _classes(est, est.classes_)
    if classes.size != (2 if len(parts) == 1 else len(parts)):
        raise UnsupportedModelError(f"{name}: {classes.size} classes but {len(parts)} estimators")
    indptr, indices, values, bias = _stack(parts)
    lin = _Linear(
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


@register("MultiOutputRegressor")
def _multi_output_regressor(est: Any) -> _Linear:
    _require_fitted(est, "estimators_")
    parts = _single_row_parts(est, est.estimators_, "a single-output linear regressor")
    if any(p.head != "identity" for p in parts):
        raise UnsupportedModelError(f"{_name(est)}: every estimator must be a linear regressor")
    indptr, indices, values, bias = _stack(parts)
    source = f"{_name(est)}({parts[0].source})"
    lin = _Linear(
        indptr, indices, values, parts[0].n_features, bias, "identity", None, False, source
    )
    _check_n_features(est, lin)
    return lin


# -- pipelines: every scaler is a per-feature affine x*a + o ----------------------------------
# Folded into the float64 weights exactly (W' = W*a, b' = b + W@o); what each scaler knows
# about its input's distribution becomes the IR's input_stats, so that int8 quantization can
# work in the standardized domain instead of on the folded weights (ARCHITECTURE v2).
@dataclasses.dataclass
class _Affine:
    """One scaler as ``z = x * scale + offset`` plus what it knows of its input's spread and
    centre (in its own input's units; None when it does not know)."""

    scale: np.ndarray
    offset: np.ndarray
    spread: np.ndarray | None
    center: np.ndarray | None


def _stat(step: Any, attr: str, n: int, *, nonzero: bool = False) -> np.ndarray | None:
    """A scaler's per-feature statistic (``scale_``, ``mean_``...): None when absent, else
    exactly ``n`` finite numbers (``nonzero``: none of them 0, for what is divided by)."""
    value = getattr(step, attr, None)
    if value is None:
        return None
    ok = (
        isinstance(value, np.ndarray)
        and value.dtype.kind in "fiub"
        and value.shape == (n,)
        and bool(np.all(np.isfinite(value)))
    )
    if ok and nonzero and bool(np.any(value == 0)):
        ok = False
    if not ok:
        what = "finite nonzero numbers" if nonzero else "finite numbers"
        raise UnsupportedModelError(
            f"{_name(step)}: {attr} must be {n} {what} (one per feature of the model it "
            f"feeds), but it is {_described(value)}; {_CORRUPT}"
        )
    return np.asarray(value, dtype=np.float64)


def _vec(value: np.ndarray | None, n: int, default: float) -> np.ndarray:
    return np.full(n, default) if value is None else value.copy()


def _affine_standard(step: Any, n: int) -> _Affine:
    # z = (x - mean) / scale, for each of with_mean / with_std on or off.
    mean_ = _stat(step, "mean_", n)
    mean = mean_ if _flag(step, "with_mean", True) else None
    scale = _stat(step, "scale_", n, nonzero=True) if _flag(step, "with_std", True) else None
    a = 1.0 / _vec(scale, n, 1.0)
    var = _stat(step, "var_", n)
    if var is not None and bool(np.any(var < 0)):
        raise UnsupportedModelError(f"{_name(step)}: var_ has negative entries; {_CORRUPT}")
    return _Affine(
        scale=a,
        offset=-_vec(mean, n, 0.0) * a,
        spread=None if var is None else np.sqrt(var),
        center=None if mean_ is None else mean_,
    )


def _affine_maxabs(step: Any, n: int) -> _Affine:
    # z = x / scale (scale = max|x|, 1 where that is 0); the centre is unknown.
    scale = _vec(_stat(step, "scale_", n, nonzero=True), n, 1.0)
    return _Affine(scale=1.0 / scale, offset=np.zeros(n), spread=scale / 2.0, center=None)


def _affine_minmax(step: Any, n: int) -> _Affine:
    # z = x * scale + min
    if _flag(step, "clip", False):
        raise UnsupportedModelError(
            "MinMaxScaler(clip=True) cannot be folded into a linear model (clipping is not "
            "linear); refit the pipeline with clip=False"
        )
    lo, hi = _stat(step, "data_min_", n), _stat(step, "data_max_", n)
    known = lo is not None and hi is not None
    return _Affine(
        scale=_vec(_stat(step, "scale_", n), n, 1.0),
        offset=_vec(_stat(step, "min_", n), n, 0.0),
        # The spread of a uniform variable over [min, max] is (max - min) / sqrt(12).
        spread=(_vec(hi, n, 0.0) - _vec(lo, n, 0.0)) / np.sqrt(12.0) if known else None,
        center=(_vec(hi, n, 0.0) + _vec(lo, n, 0.0)) / 2.0 if known else None,
    )


def _affine_robust(step: Any, n: int) -> _Affine:
    # z = (x - center) / scale, for each of with_centering / with_scaling on or off.
    center = _stat(step, "center_", n) if _flag(step, "with_centering", True) else None
    scale = _stat(step, "scale_", n, nonzero=True) if _flag(step, "with_scaling", True) else None
    a = 1.0 / _vec(scale, n, 1.0)
    return _Affine(
        scale=a,
        offset=-_vec(center, n, 0.0) * a,
        spread=None if scale is None else _vec(scale, n, 1.0),
        center=None if center is None else _vec(center, n, 0.0),
    )


_SCALERS: dict[str, tuple[tuple[str, ...], Callable[[Any, int], _Affine]]] = {
    "StandardScaler": (("n_features_in_",), _affine_standard),
    "MaxAbsScaler": (("scale_",), _affine_maxabs),
    "MinMaxScaler": (("scale_", "min_"), _affine_minmax),
    "RobustScaler": (("n_features_in_",), _affine_robust),
}


def _fold(lin: _Linear, affine: _Affine) -> None:
    """``W @ (x*a + o) + b`` as ``(W*a) @ x + (b + W @ o)``, in float64."""
    contrib = lin.values * affine.offset[lin.indices]
    folded = np.bincount(lin.row_ids(), weights=contrib, minlength=lin.n_outputs)
    lin.bias = lin.bias + folded.astype(np.float64, copy=False)
    lin.values = lin.values * affine.scale[lin.indices]


def _raw_stats(affines: list[_Affine], source: str) -> FeatureStats | None:
    """The raw input's centre and spread, from the first scaler that knows its input's spread
    (mapped back through the scalers before it); None when no scaler knows one."""
    n = affines[0].scale.size if affines else 0
    scale, offset = np.ones(n), np.zeros(n)  # z_k = x * scale + offset before step k
    for affine in affines:
        if affine.spread is not None:
            with np.errstate(divide="ignore", invalid="ignore"):
                spread = affine.spread / np.abs(scale)
                center = ((affine.center if affine.center is not None else 0.0) - offset) / scale
            # A constant column (spread 0) or a degenerate scale gives no usable spread: its
            # exponent then follows the weights (any value quantizes a constant well).
            bad = ~(np.isfinite(spread) & (spread > 0))
            spread[bad] = np.nan
            center[~np.isfinite(center)] = 0.0
            if np.all(bad):
                return None
            spread[bad] = np.nanmedian(spread)
            return FeatureStats(center=center, spread=spread, source=source)
        offset = offset * affine.scale + affine.offset
        scale = scale * affine.scale
    return None


def _scaler_for(step: Any) -> tuple[tuple[str, ...], Callable[[Any, int], _Affine]] | None:
    for klass in type(step).__mro__:
        entry = _SCALERS.get(klass.__name__)
        if entry is not None and (klass.__module__ or "").split(".")[0] == "sklearn":
            return entry
    return None


def _flat_steps(pipe: Any) -> list[tuple[str, Any]]:
    steps = getattr(pipe, "steps", None)
    if steps is None or (isinstance(steps, (list, tuple)) and not steps):
        raise UnsupportedModelError(f"{_name(pipe)} has no steps")
    if not isinstance(steps, (list, tuple)) or not all(
        isinstance(s, (list, tuple)) and len(s) == 2 and isinstance(s[0], str) for s in steps
    ):
        raise UnsupportedModelError(
            f"{_name(pipe)}: steps must be a list of (name, step) pairs, but it is "
            f"{_described(steps)}; {_CORRUPT}"
        )
    out: list[tuple[str, Any]] = []
    for step_name, step in steps:
        if _lookup(step) is _pipeline:
            out.extend(_flat_steps(step))
        else:
            out.append((str(step_name), step))
    return out


def _is_passthrough(step: Any) -> bool:
    return step is None or (isinstance(step, str) and step == "passthrough")


@register("Pipeline")
def _pipeline(pipe: Any) -> _Linear:
    name = _name(pipe)
    steps = [(n, s) for n, s in _flat_steps(pipe) if not _is_passthrough(s)]
    if not steps:
        raise UnsupportedModelError(f"{name} has only 'passthrough' steps; nothing to convert")
    final_name, final = steps[-1]
    if _scaler_for(final) is not None:
        raise UnsupportedModelError(
            f"{name} ends in step {final_name!r} ({_name(final)}), not a model; "
            "edgesparse converts pipelines that end in a linear model"
        )
    lin = _convert(final)
    scalers = steps[:-1]
    affines: list[_Affine] = []
    for step_name, step in reversed(scalers):
        entry = _scaler_for(step)
        if entry is None:
            raise UnsupportedModelError(
                f"{name} step {step_name!r} ({_name(step)}) is not supported; edgesparse "
                f"folds only {', '.join(supported_preprocessors())} (and 'passthrough') "
                "into the linear model that ends the pipeline"
            )
        required, affine_of = entry
        _require_fitted(step, *required)
        n = _n_features_in(step)
        if n is not None and n != lin.n_features:
            raise UnsupportedModelError(
                f"{name} step {step_name!r} ({_name(step)}) outputs {n} features but the "
                f"next step expects {lin.n_features}"
            )
        affine = affine_of(step, lin.n_features)
        _fold(lin, affine)
        affines.insert(0, affine)
    # Folding never creates nonzeros; drop any weight that underflowed to zero.
    keep = lin.values != 0
    if not keep.all():
        rows = lin.row_ids()[keep]
        lin.indptr = np.zeros_like(lin.indptr)
        np.cumsum(np.bincount(rows, minlength=lin.n_outputs), out=lin.indptr[1:])
        lin.indices, lin.values = lin.indices[keep], lin.values[keep]
    if not (np.all(np.isfinite(lin.values)) and np.all(np.isfinite(lin.bias))):
        raise IRError(f"{name}: folding the scalers into the weights overflowed (NaN or Inf)")
    lin.source = f"{name}({', '.join([_name(s) for _, s in scalers] + [lin.source])})"
    lin.stats = _raw_stats(affines, ", ".join(_name(s) for _, s in scalers))
    return lin
