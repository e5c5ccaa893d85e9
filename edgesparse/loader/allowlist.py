"""The allow-list: every global a model file may name, and the errors for those it may not."""

from __future__ import annotations

import pickle
import re
from collections.abc import Iterable

from edgesparse.errors import (
    ModelFileError,
    UnsafeModelError,
    UnsupportedModelError,
)

# ---------------------------------------------------------------------------------------------
# The allow-list. Found empirically: every supported estimator was fitted with scikit-learn
# 1.9.1 / numpy 2.4, pickled with protocols 2-5 and with joblib (plain and compressed), and the
# globals its pickle names were recorded. Nothing else is here; exact (module, qualname) pairs.
# ---------------------------------------------------------------------------------------------

# numpy arrays, dtypes and scalars. numpy 2 pickles say ``numpy._core``; numpy 1.x pickles say
# ``numpy.core`` (both spellings are resolved to whichever module this numpy has, see ALIASES).
_NUMPY: frozenset[tuple[str, str]] = frozenset(
    {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy._core.numeric", "_frombuffer"),  # protocol 5 out-of-band-capable arrays
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"),
    }
)

# ``random_state=np.random.RandomState(...)`` is stored as the RandomState itself. These helpers
# only build a bit generator chosen by name from numpy's fixed table.
_NUMPY_RANDOM_STATE: frozenset[tuple[str, str]] = frozenset(
    {
        ("numpy.random._pickle", "__randomstate_ctor"),
        ("numpy.random._pickle", "__bit_generator_ctor"),
        ("numpy.random._mt19937", "MT19937"),
    }
)

# ``.sparsify()`` turns coef_ into a CSR matrix; CSC and the sparse-array classes are the same
# data in another layout. ``scipy.sparse.csr``/``csc`` are the pre-1.8 module names.
_SCIPY_SPARSE: frozenset[tuple[str, str]] = frozenset(
    {
        ("scipy.sparse._csr", "csr_matrix"),
        ("scipy.sparse._csr", "csr_array"),
        ("scipy.sparse._csc", "csc_matrix"),
        ("scipy.sparse._csc", "csc_array"),
        ("scipy.sparse.csr", "csr_matrix"),
        ("scipy.sparse.csc", "csc_matrix"),
    }
)

# The estimators the frontend converts (the CV variants are the fitted linear model itself,
# not a search object: GridSearchCV & co. are deliberately absent).
_SKLEARN_ESTIMATORS: frozenset[tuple[str, str]] = frozenset(
    {
        ("sklearn.linear_model._base", "LinearRegression"),
        ("sklearn.linear_model._coordinate_descent", "ElasticNet"),
        ("sklearn.linear_model._coordinate_descent", "ElasticNetCV"),
        ("sklearn.linear_model._coordinate_descent", "Lasso"),
        ("sklearn.linear_model._coordinate_descent", "LassoCV"),
        ("sklearn.linear_model._coordinate_descent", "MultiTaskElasticNet"),
        ("sklearn.linear_model._coordinate_descent", "MultiTaskElasticNetCV"),
        ("sklearn.linear_model._coordinate_descent", "MultiTaskLasso"),
        ("sklearn.linear_model._coordinate_descent", "MultiTaskLassoCV"),
        ("sklearn.linear_model._huber", "HuberRegressor"),
        ("sklearn.linear_model._logistic", "LogisticRegression"),
        ("sklearn.linear_model._logistic", "LogisticRegressionCV"),
        ("sklearn.linear_model._passive_aggressive", "PassiveAggressiveClassifier"),
        ("sklearn.linear_model._passive_aggressive", "PassiveAggressiveRegressor"),
        ("sklearn.linear_model._perceptron", "Perceptron"),
        ("sklearn.linear_model._ridge", "Ridge"),
        ("sklearn.linear_model._ridge", "RidgeCV"),
        ("sklearn.linear_model._ridge", "RidgeClassifier"),
        ("sklearn.linear_model._ridge", "RidgeClassifierCV"),
        ("sklearn.linear_model._stochastic_gradient", "SGDClassifier"),
        ("sklearn.linear_model._stochastic_gradient", "SGDRegressor"),
        ("sklearn.svm._classes", "LinearSVC"),
        ("sklearn.svm._classes", "LinearSVR"),
        ("sklearn.multiclass", "OneVsRestClassifier"),
        # Further linear regressors the frontend converts exactly (plain coef_/intercept_).
        ("sklearn.linear_model._least_angle", "Lars"),
        ("sklearn.linear_model._least_angle", "LarsCV"),
        ("sklearn.linear_model._least_angle", "LassoLars"),
        ("sklearn.linear_model._least_angle", "LassoLarsCV"),
        ("sklearn.linear_model._least_angle", "LassoLarsIC"),
        ("sklearn.linear_model._omp", "OrthogonalMatchingPursuit"),
        ("sklearn.linear_model._omp", "OrthogonalMatchingPursuitCV"),
        ("sklearn.linear_model._bayes", "BayesianRidge"),
        ("sklearn.linear_model._bayes", "ARDRegression"),
        ("sklearn.linear_model._quantile", "QuantileRegressor"),
        ("sklearn.linear_model._theil_sen", "TheilSenRegressor"),
        ("sklearn.multioutput", "MultiOutputRegressor"),
    }
)

# Pipelines of a scaler followed by one of the estimators above.
_SKLEARN_PIPELINE: frozenset[tuple[str, str]] = frozenset(
    {
        ("sklearn.pipeline", "Pipeline"),
        ("sklearn.preprocessing._data", "StandardScaler"),
        ("sklearn.preprocessing._data", "MaxAbsScaler"),
        ("sklearn.preprocessing._data", "MinMaxScaler"),
        ("sklearn.preprocessing._data", "RobustScaler"),
    }
)

# Text pipelines (issue 20): the vectorizer and tf-idf steps that become the model's input stage,
# and the dtype class each vectorizer keeps (``dtype=numpy.float64``: a class named, never
# called by any file scikit-learn writes; calling it only makes a number).
_SKLEARN_TEXT: frozenset[tuple[str, str]] = frozenset(
    {
        ("sklearn.feature_extraction.text", "HashingVectorizer"),
        ("sklearn.feature_extraction.text", "TfidfTransformer"),
        ("sklearn.feature_extraction.text", "CountVectorizer"),
        ("sklearn.feature_extraction.text", "TfidfVectorizer"),
        ("numpy", "int64"),
        ("numpy", "float64"),
        ("numpy", "float32"),
    }
)

# Tabular pipelines (issue 20): the steps that become a tabular input stage, and the slices a
# fitted ColumnTransformer keeps (output_indices_; calling slice only makes a slice).
_SKLEARN_TABULAR: frozenset[tuple[str, str]] = frozenset(
    {
        ("sklearn.compose._column_transformer", "ColumnTransformer"),
        ("sklearn.impute._base", "SimpleImputer"),
        ("sklearn.preprocessing._encoders", "OneHotEncoder"),
        ("sklearn.preprocessing._function_transformer", "FunctionTransformer"),
        ("builtins", "slice"),
    }
)

# SGD/Perceptron/PassiveAggressive keep their loss object (_loss_function_, and before 1.3
# loss_function_ too). Up to scikit-learn 1.5 every loss was one of these Cython classes; Log,
# SquaredLoss and Huber are gone since 1.6, so today's scikit-learn cannot unpickle them. None
# of them is ever imported: each resolves to a stand-in that records the class name only (see
# OldSGDLoss); edgesparse reads the loss from the estimator's ``loss`` string.
SGD_FAST_LOSSES: tuple[str, ...] = (
    "Hinge",
    "SquaredHinge",
    "ModifiedHuber",
    "Log",
    "SquaredLoss",
    "Huber",
    "EpsilonInsensitive",
    "SquaredEpsilonInsensitive",
)

# Fitted attributes of the estimators above: OneVsRestClassifier and RidgeClassifier(CV) keep a
# LabelBinarizer; SGD/Perceptron/PassiveAggressive keep their loss object (_loss_function_),
# rebuilt from a float parameter by these Cython classes.
_SKLEARN_HELPERS: frozenset[tuple[str, str]] = frozenset(
    {
        ("sklearn.preprocessing._label", "LabelBinarizer"),
        *(("sklearn.linear_model._sgd_fast", name) for name in SGD_FAST_LOSSES),
        ("sklearn._loss._loss", "CyHalfBinomialLoss"),
        ("sklearn._loss._loss", "CyHalfSquaredError"),
        ("sklearn._loss._loss", "CyHuberLoss"),
        # The same classes as scikit-learn 1.8.0's build named them (see RENAMED).
        ("_loss", "CyHalfBinomialLoss"),
        ("_loss", "CyHalfSquaredError"),
        ("_loss", "CyHuberLoss"),
    }
)

# joblib writes each array as a NumpyArrayWrapper header followed by the raw bytes; the wrapper
# is a plain record that our unpickler turns into the array (see _SafeJoblibUnpickler).
_JOBLIB: frozenset[tuple[str, str]] = frozenset({("joblib.numpy_pickle", "NumpyArrayWrapper")})

# Surprise's k-NN recommenders (issue 8): the four algorithm classes and their Trainset. The
# trainset keeps its ratings in ``defaultdict(list)``; ``collections.defaultdict`` resolves to a
# stand-in that builds exactly that (see _defaultdict_of_list), and ``builtins.list`` (spelled
# ``__builtin__.list`` by protocol 2) to a token that is only ever its argument, never called.
_SURPRISE: frozenset[tuple[str, str]] = frozenset(
    {
        ("surprise.prediction_algorithms.knns", "KNNBasic"),
        ("surprise.prediction_algorithms.knns", "KNNWithMeans"),
        ("surprise.prediction_algorithms.knns", "KNNWithZScore"),
        ("surprise.prediction_algorithms.knns", "KNNBaseline"),
        # The matrix-factorization recommenders (issue 21): their state is the same kinds of
        # data (numpy arrays, numbers, dicts) as the k-NN models'.
        ("surprise.prediction_algorithms.matrix_factorization", "SVD"),
        ("surprise.prediction_algorithms.matrix_factorization", "SVDpp"),
        ("surprise.prediction_algorithms.matrix_factorization", "NMF"),
        ("surprise.prediction_algorithms.baseline_only", "BaselineOnly"),
        ("surprise.trainset", "Trainset"),
        ("surprise.dataset", "Trainset"),  # where Surprise 1.0.4 and older kept it
        # surprise.dump.dump(file, predictions=..., algo=...) keeps Prediction tuples too
        ("surprise.prediction_algorithms.predictions", "Prediction"),
        ("collections", "defaultdict"),
        ("builtins", "list"),
        ("__builtin__", "list"),
    }
)

# Protocol 2 spells every bytes object as ``_codecs.encode(text, "latin1")``. It is resolved to
# a stand-in that accepts only that encoding (see _latin1_encode), never to codecs.encode.
_PICKLE_PROTOCOL: frozenset[tuple[str, str]] = frozenset({("_codecs", "encode")})

ALLOWED_GLOBALS: frozenset[tuple[str, str]] = (
    _NUMPY
    | _NUMPY_RANDOM_STATE
    | _SCIPY_SPARSE
    | _SKLEARN_ESTIMATORS
    | _SKLEARN_PIPELINE
    | _SKLEARN_TEXT
    | _SKLEARN_TABULAR
    | _SKLEARN_HELPERS
    | _JOBLIB
    | _PICKLE_PROTOCOL
    | _SURPRISE
)
"""Every ``(module, qualname)`` a ``.pkl``/``.joblib`` file may reference; nothing else loads."""

# Legacy spellings resolved to their modern home, so numpy 1.x pickles load on numpy 2 without
# going through numpy's deprecated ``numpy.core`` shim (and vice versa on numpy 1.x).
ALIASES: dict[tuple[str, str], tuple[str, str]] = {
    ("numpy.core.multiarray", "_reconstruct"): ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"): ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"): ("numpy._core.numeric", "_frombuffer"),
    ("scipy.sparse.csr", "csr_matrix"): ("scipy.sparse._csr", "csr_matrix"),
    ("scipy.sparse.csc", "csc_matrix"): ("scipy.sparse._csc", "csc_matrix"),
    ("surprise.dataset", "Trainset"): ("surprise.trainset", "Trainset"),
}
# scikit-learn 1.8.0's build gave its Cython loss classes the module name "_loss", so its SGD
# pickles say "_loss.CyHalfBinomialLoss". They resolve to scikit-learn's module and nothing
# else: a top-level module named "_loss" is never imported.
RENAMED: dict[tuple[str, str], tuple[str, str]] = {
    ("_loss", name): ("sklearn._loss._loss", name)
    for name in ("CyHalfBinomialLoss", "CyHalfSquaredError", "CyHuberLoss")
}
# The other way round, tried last: numpy 1.x has no numpy._core (1.26.1+ has a partial shim
# without ``numeric``), so a numpy 2 pickle, such as the bundled models, needs numpy.core there.
LEGACY: dict[tuple[str, str], tuple[str, str]] = {
    modern: legacy for legacy, modern in ALIASES.items() if legacy[0].startswith("numpy.")
}

# skops describes containers, primitives and numpy scalars by type name instead of by pickle
# globals; these types are data, never called with file-controlled arguments.
_SKOPS_EXTRA_TYPES: frozenset[str] = frozenset(
    {
        "builtins.dict",
        "builtins.list",
        "builtins.tuple",
        "builtins.str",
        "builtins.int",
        "builtins.float",
        "builtins.bool",
        "numpy.ndarray",
        "numpy.random.mtrand.RandomState",
        *(
            f"numpy.{t}"
            for t in (
                "bool",
                "bool_",
                "str_",
                "float16",
                "float32",
                "float64",
                "int8",
                "int16",
                "int32",
                "int64",
                "uint8",
                "uint16",
                "uint32",
                "uint64",
            )
        ),
    }
)
SKOPS_ALLOWED_TYPES: frozenset[str] = (
    frozenset(
        f"{m}.{n}"
        for m, n in _SCIPY_SPARSE
        | _SKLEARN_ESTIMATORS
        | _SKLEARN_PIPELINE
        | _SKLEARN_TEXT
        | _SKLEARN_TABULAR
        | _SKLEARN_HELPERS
    )
    | _SKOPS_EXTRA_TYPES
)

_PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib")
SUPPORTED_SUFFIXES: tuple[str, ...] = (*_PICKLE_SUFFIXES, ".skops", ".npz")
"""File suffixes :func:`load_model` understands."""
ZIP_MAGIC = b"PK\x03\x04"
PICKLE_PROTO_OPCODE = pickle.PROTO  # b"\x80": first byte of every protocol >= 2 pickle


def allowed_globals() -> list[str]:
    """Return the allow-list as sorted ``module.qualname`` strings, for display."""
    return sorted(f"{m}.{n}" for m, n in ALLOWED_GLOBALS)


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------
_ALLOWED_SUMMARY = (
    "(only scikit-learn linear models, scalers, pipelines, Surprise k-NN recommenders, numpy "
    "and scipy.sparse arrays are allowed)"
)
_PICKLE_ADVICE = (
    "Load it only if you trust it, re-save it with skops, or export its weights to .npz"
)
_SKOPS_ADVICE = "If it is a linear model, export its weights to .npz (coef, intercept)"

# Libraries whose classes a model file may name: a refused class of theirs is an unsupported
# model, not an attack (the name alone decides; nothing is imported).
_MODEL_LIBRARIES = {"sklearn": "scikit-learn", "surprise": "Surprise"}
_MODULE_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+\Z")
_CLASS_RE = re.compile(r"_*[A-Z][A-Za-z0-9_]*\Z")


def shown_text(text: str) -> str:
    # A hostile file chooses these names: keep the message one short, printable line.
    if text.isprintable() and len(text) <= 200:
        return text
    return repr(text[:200])


def _library_class(name: str) -> tuple[str, str, str] | None:
    """``(library, module, class)`` when ``module.Class`` is spelled like a class of scikit-learn
    or Surprise (a dotted package path, a CamelCase name); None otherwise. Decided by the
    spelling alone: the module is never imported."""
    module, _, cls = name.rpartition(".")
    library = _MODEL_LIBRARIES.get(module.split(".")[0])
    if library is None or not _MODULE_RE.match(module) or not _CLASS_RE.match(cls):
        return None
    return library, module, cls


def refused_error(
    source: str, names: Iterable[str], *, skops: bool = False, root: str | None = None
) -> UnsafeModelError | UnsupportedModelError | ModelFileError:
    """The error for a file that names globals (or types) outside the allow-list: an
    unsupported model (or one saved by another version of its library) when the refused
    object at the ``root`` of the file, or every refused name, is a class of a model library;
    anything else is refused as unsafe. Either way nothing of it is imported."""
    names = list(names)
    top = _library_class(root) if root is not None and root in names else None
    if top is not None:
        return _unsupported(source, [top])
    classes = [_library_class(n) for n in names]
    if classes and all(c is not None for c in classes):
        return _unsupported(source, [c for c in classes if c is not None])
    shown = [shown_text(n) for n in names]
    if len(shown) == 1:
        what = f"{shown[0]}, which is"
    else:
        what = f"{', '.join(shown)}, which are"
    return UnsafeModelError(
        f"refused to load {source}: it references {what} not on edgesparse's allow-list "
        f"{_ALLOWED_SUMMARY}. {_SKOPS_ADVICE if skops else _PICKLE_ADVICE}"
    )


def _unsupported(
    source: str, classes: list[tuple[str, str, str]]
) -> UnsupportedModelError | ModelFileError:
    library = classes[0][0]
    known = {n for m, n in ALLOWED_GLOBALS if m.split(".")[0] == classes[0][1].split(".")[0]}
    moved = [(m, c) for _, m, c in classes if c in known]
    if moved:
        module, cls = moved[0]
        return ModelFileError(
            f"cannot load {source}: it names {library}'s {cls} as {module}.{cls}, where the "
            f"installed {library} does not keep it: it was saved by another {library} "
            "version; load it with that version and export its weights to .npz (coef, "
            "intercept, classes), or train it again with this one"
        )
    names = list(dict.fromkeys(c for _, _, c in classes))
    what = (
        f"{library}'s {names[0]}, which is not a supported model"
        if len(names) == 1
        else f"{library} classes that are not a supported model ({', '.join(names)})"
    )
    return UnsupportedModelError(
        f"cannot load {source}: it holds {what}; `edgesparse list models` lists the supported ones"
    )


class Crafted(pickle.UnpicklingError):
    """What edgesparse itself found wrong inside a model file, in its own words: the part of
    the message after ``cannot load <file>: ``; the reader adds what to do."""


CRAFTED = "no file numpy, scikit-learn or joblib writes does that: it is crafted or corrupt"
"""The end of a :class:`Crafted` message for structures only a hand-made file has."""


def one_line_error(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if len(text) > 200:
        text = text[:197] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
