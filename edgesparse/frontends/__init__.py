"""Frontends: a fitted model object -> its IR (:class:`~edgesparse.ir.LinearIR` or
:class:`~edgesparse.ir.KnnIR`), through ONE registry keyed by class.

The registry names each supported class by its module and class name, as a pickle names it
(``sklearn.linear_model._ridge.Ridge``), so nothing is imported to name it: neither this package
nor its converters import scikit-learn, scipy or Surprise. The loader's allow-list is checked
against it (``tests/test_frontends_registry.py``), and ``edgesparse list models`` lists it.

:func:`to_ir` walks ``type(obj).__mro__``, so a subclass of a supported class is converted as
that class. Kinds of entries:

* ``linear``: scikit-learn linear estimators, one-vs-rest and multi-output models
  (:mod:`~edgesparse.frontends.sklearn_linear`), pipelines
  (:mod:`~edgesparse.frontends.pipelines`) and edgesparse's weights file -> LinearIR;
* ``scaler``: pipeline steps folded into the linear model after them (never converted alone);
* ``featurizer``: text steps that start a pipeline and become the model's input stage
  (:mod:`~edgesparse.frontends.sklearn_text`; never converted alone);
* ``knn``: Surprise's k-NN recommenders (:mod:`~edgesparse.frontends.surprise`) -> KnnIR;
* ``factors``: Surprise's SVD, SVDpp, NMF and BaselineOnly
  (:mod:`~edgesparse.frontends.surprise_factors`) -> FactorIR.

Adding a model: write ``def convert(est) -> LinearParts`` in the module of its kind and add
its class to :data:`_FRONTENDS` (or, at run time, decorate it with :func:`register`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from edgesparse.errors import IRError, UnsupportedModelError
from edgesparse.frontends import (
    pipelines,
    sklearn_linear,
    sklearn_tabular,
    sklearn_text,
    surprise,
    surprise_factors,
)
from edgesparse.frontends.base import Frontend, Inner, Kind, LinearParts, name_of, shown
from edgesparse.frontends.sklearn_rules import (
    pickled_by_other_release,
    release,
    rules_note,
    sklearn_version,
)
from edgesparse.frontends.surprise import SURPRISE_KNN_CLASSES, from_surprise, is_surprise_knn
from edgesparse.ir import KnnIR, LinearIR
from edgesparse.ir.factors import FactorIR

__all__ = [
    "SURPRISE_KNN_CLASSES",
    "Frontend",
    "from_surprise",
    "is_surprise_knn",
    "listed_models",
    "pickled_by_other_release",
    "register",
    "registered",
    "supported_models",
    "supported_preprocessors",
    "to_ir",
    "to_linear_ir",
]

_LM = "sklearn.linear_model."


def _entries(
    kind: Kind, convert: Callable[..., Any], *classes: str, **options: Any
) -> list[Frontend]:
    """Entries for ``classes`` given as ``module.ClassName``."""
    out = []
    for spec in classes:
        module, _, name = spec.rpartition(".")
        out.append(Frontend(module, name, kind, convert, **options))
    return out


_FRONTENDS: tuple[Frontend, ...] = (
    *_entries(
        "linear",
        sklearn_linear.logistic_regression,
        f"{_LM}_logistic.LogisticRegression",
        f"{_LM}_logistic.LogisticRegressionCV",
    ),
    *_entries(
        "linear",
        sklearn_linear.sgd_classifier,
        f"{_LM}_stochastic_gradient.SGDClassifier",
        f"{_LM}_perceptron.Perceptron",
        f"{_LM}_passive_aggressive.PassiveAggressiveClassifier",
    ),
    *_entries(
        "linear",
        sklearn_linear.hard_classifier,
        "sklearn.svm._classes.LinearSVC",
        f"{_LM}_ridge.RidgeClassifier",
        f"{_LM}_ridge.RidgeClassifierCV",
    ),
    *_entries(
        "linear",
        sklearn_linear.regressor,
        f"{_LM}_base.LinearRegression",
        f"{_LM}_ridge.Ridge",
        f"{_LM}_ridge.RidgeCV",
        *(
            f"{_LM}_coordinate_descent.{name}"
            for name in (
                "Lasso",
                "LassoCV",
                "ElasticNet",
                "ElasticNetCV",
                "MultiTaskLasso",
                "MultiTaskLassoCV",
                "MultiTaskElasticNet",
                "MultiTaskElasticNetCV",
            )
        ),
        *(
            f"{_LM}_least_angle.{name}"
            for name in ("Lars", "LarsCV", "LassoLars", "LassoLarsCV", "LassoLarsIC")
        ),
        f"{_LM}_omp.OrthogonalMatchingPursuit",
        f"{_LM}_omp.OrthogonalMatchingPursuitCV",
        f"{_LM}_bayes.BayesianRidge",
        f"{_LM}_bayes.ARDRegression",
        f"{_LM}_huber.HuberRegressor",
        f"{_LM}_quantile.QuantileRegressor",
        f"{_LM}_theil_sen.TheilSenRegressor",
    ),
    *_entries(
        "linear",
        sklearn_linear.sgd_regressor,
        f"{_LM}_stochastic_gradient.SGDRegressor",
        f"{_LM}_passive_aggressive.PassiveAggressiveRegressor",
        "sklearn.svm._classes.LinearSVR",
    ),
    # The plain weights file (edgesparse.loader reads .npz into it).
    *_entries(
        "linear", sklearn_linear.raw_linear_model, "edgesparse.loader.npz_reader.RawLinearModel"
    ),
    # Containers: what they hold is converted through the registry again.
    *_entries(
        "linear", sklearn_linear.one_vs_rest, "sklearn.multiclass.OneVsRestClassifier", nested=True
    ),
    *_entries(
        "linear",
        sklearn_linear.multi_output_regressor,
        "sklearn.multioutput.MultiOutputRegressor",
        nested=True,
    ),
    *_entries("linear", pipelines.pipeline, "sklearn.pipeline.Pipeline", nested=True),
    # Pipeline steps: each a per-feature affine, with the attributes a fitted one has.
    *_entries(
        "scaler",
        pipelines.affine_standard,
        "sklearn.preprocessing._data.StandardScaler",
        fitted=("n_features_in_",),
    ),
    *_entries(
        "scaler",
        pipelines.affine_maxabs,
        "sklearn.preprocessing._data.MaxAbsScaler",
        fitted=("scale_",),
    ),
    *_entries(
        "scaler",
        pipelines.affine_minmax,
        "sklearn.preprocessing._data.MinMaxScaler",
        fitted=("scale_", "min_"),
    ),
    *_entries(
        "scaler",
        pipelines.affine_robust,
        "sklearn.preprocessing._data.RobustScaler",
        fitted=("n_features_in_",),
    ),
    # Text steps that start a pipeline: its input stage.
    *_entries(
        "featurizer",
        sklearn_text.hashing_vectorizer,
        "sklearn.feature_extraction.text.HashingVectorizer",
    ),
    *_entries(
        "featurizer",
        sklearn_text.count_vectorizer,
        "sklearn.feature_extraction.text.CountVectorizer",
    ),
    *_entries(
        "featurizer",
        sklearn_text.tfidf_vectorizer,
        "sklearn.feature_extraction.text.TfidfVectorizer",
    ),
    *_entries(
        "featurizer",
        sklearn_text.tfidf_transformer,
        "sklearn.feature_extraction.text.TfidfTransformer",
    ),
    # Tabular steps that start a pipeline: its input stage (sklearn_tabular.tabular_stage).
    *_entries(
        "featurizer",
        sklearn_tabular.step_columns,
        "sklearn.compose._column_transformer.ColumnTransformer",
        "sklearn.impute._base.SimpleImputer",
        "sklearn.preprocessing._encoders.OneHotEncoder",
        "sklearn.preprocessing._function_transformer.FunctionTransformer",
    ),
    # Surprise's k-NN recommenders, in the order `edgesparse list models` shows them.
    *_entries(
        "knn",
        from_surprise,
        *(f"{surprise.SURPRISE_MODULE}.{name}" for name in SURPRISE_KNN_CLASSES),
    ),
    # Surprise's matrix-factorization recommenders (and BaselineOnly), after the k-NN ones.
    *_entries(
        "factors",
        surprise_factors.from_surprise_factors,
        *surprise_factors.SURPRISE_FACTOR_CLASSES,
    ),
)

# (module, class name) -> entry; register() adds to it at run time.
_REGISTRY: dict[tuple[str, str], Frontend] = {e.key: e for e in _FRONTENDS}

_Fn = TypeVar("_Fn", bound=Callable[..., Any])


def register(*classes: str, kind: Kind = "linear", nested: bool = False) -> Callable[[_Fn], _Fn]:
    """Register the decorated converter for ``classes``, each given as ``module.ClassName``
    (the module the class is defined in, as ``type(obj).__module__`` says).

    A class name is registered once (``edgesparse list models`` lists names). ``nested``: the
    converter takes ``inner=`` (:class:`~edgesparse.frontends.base.Inner`) to convert what
    the object holds.
    """

    def deco(fn: _Fn) -> _Fn:
        for spec in classes:
            module, _, name = spec.rpartition(".")
            if any(e.name == name for e in _REGISTRY.values()):
                raise ValueError(f"a converter for {name} is already registered")
            if not module:
                raise ValueError(f"give the class with its module: 'module.{name}'")
            _REGISTRY[(module, name)] = Frontend(module, name, kind, fn, nested=nested)
        return fn

    return deco


def registered() -> tuple[Frontend, ...]:
    """Every registry entry, in registration order."""
    return tuple(_REGISTRY.values())


def supported_models() -> list[str]:
    """Sorted class names :func:`to_linear_ir` converts."""
    return sorted(e.name for e in _REGISTRY.values() if e.kind == "linear")


def supported_preprocessors() -> list[str]:
    """Sorted class names of the pipeline steps that are folded into the weights."""
    return sorted(e.name for e in _REGISTRY.values() if e.kind == "scaler")


def listed_models() -> list[str]:
    """What ``edgesparse list models`` prints: the linear models' class names, sorted, then the
    recommenders (k-NN, then matrix factorization) as ``library.ClassName`` in registration
    order."""
    knn = [
        f"{e.module.split('.')[0]}.{e.name}"
        for e in _REGISTRY.values()
        if e.kind in ("knn", "factors")
    ]
    return [*supported_models(), *knn]


def to_ir(obj: Any) -> LinearIR | KnnIR | FactorIR:
    """Convert a fitted model into its IR: a Surprise k-NN recommender (or a
    ``surprise.dump`` of one) into a :class:`~edgesparse.ir.KnnIR`, a Surprise SVD, SVDpp,
    NMF or BaselineOnly into a :class:`~edgesparse.ir.factors.FactorIR`, anything else as
    :func:`to_linear_ir` does.

    Raises:
        UnsupportedModelError: the model (or a part of it) is not supported, or not fitted.
        IRError: its weights or intercepts contain NaN or Inf.
    """
    entry = _find(surprise.unwrap(obj), ("knn", "factors"))
    if entry is not None:
        return entry.convert(obj)  # type: ignore[no-any-return]
    return to_linear_ir(obj)


def to_linear_ir(estimator: Any) -> LinearIR:
    """Convert a fitted linear estimator into a float64 :class:`~edgesparse.ir.LinearIR`.

    Raises:
        UnsupportedModelError: the estimator (or a part of it) is not supported, or not fitted.
        IRError: its weights or intercepts contain NaN or Inf.
    """
    version = sklearn_version(estimator)
    if version not in ("n/a", "unknown") and release(version) is None:
        raise UnsupportedModelError(
            f"{name_of(estimator)} was pickled by scikit-learn {shown(version)} (its "
            "_sklearn_version), whose rules edgesparse does not know; load it with that "
            "version and export its weights to .npz (coef, intercept, classes, head)"
        )
    lin = _linear_parts(estimator)
    provenance = {
        "source": lin.source,
        "sklearn_version": version,
        "sklearn_rules": rules_note(estimator, version),
        "n_features_in": str(lin.n_features),
    }
    if getattr(lin.featurizer, "vocabulary", None) is not None:
        # The artifact may keep fewer terms (those its weights use): say how many were fitted.
        provenance["vocabulary_fitted"] = str(len(lin.featurizer.vocabulary))
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
            featurizer=lin.featurizer,
        )
    except IRError as exc:
        raise IRError(f"{lin.source}: {exc}") from None


# -- dispatch --------------------------------------------------------------------------------
def _find(obj: Any, kinds: tuple[Kind, ...]) -> Frontend | None:
    for klass in type(obj).__mro__:
        key = (getattr(klass, "__module__", "") or "", klass.__name__)
        entry = _REGISTRY.get(key)
        if entry is not None and entry.kind in kinds:
            return entry
    return None


def _linear_parts(obj: Any) -> LinearParts:
    entry = _find(obj, ("linear",))
    if entry is None:
        name = repr(obj) if isinstance(obj, str) else name_of(obj)
        raise UnsupportedModelError(
            f"{name} is not supported; edgesparse converts: {', '.join(supported_models())} "
            "(run `edgesparse list models`)"
        )
    parts = entry.convert(obj, inner=_INNER) if entry.nested else entry.convert(obj)
    return parts  # type: ignore[no-any-return]


def _scaler(obj: Any) -> Frontend | None:
    return _find(obj, ("scaler",))


def _is_pipeline(obj: Any) -> bool:
    entry = _find(obj, ("linear",))
    return entry is not None and entry.convert is pipelines.pipeline


def _featurizer(obj: Any) -> Frontend | None:
    return _find(obj, ("featurizer",))


_INNER = Inner(
    convert=_linear_parts,
    scaler=_scaler,
    is_pipeline=_is_pipeline,
    preprocessors=supported_preprocessors,
    featurizer=_featurizer,
)
