"""Safe model loading: the only module in edgesparse that unpickles.

A pickle is a program: every global it names is imported and may be called. So ``.pkl``,
``.pickle`` and ``.joblib`` files go through an allow-list unpickler that checks each
``(module, name)`` pair against :data:`ALLOWED_GLOBALS` *before* importing anything, and refuses
the other ways a pickle can reach code (persistent ids, the copyreg extension registry).
``.skops`` files are audited against the same list (every type in the file, not only the ones
skops itself distrusts), and ``.npz`` files are read with ``allow_pickle=False`` into a
:class:`RawLinearModel`.

The whole file is read once into memory and every check and the load itself use those bytes,
so the file cannot change between being checked and being loaded.
"""

from __future__ import annotations

import codecs
import importlib
import io
import json
import math
import os
import pickle
import re
import warnings
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from .errors import (
    InputError,
    ModelFileError,
    ToolMissingError,
    UnsafeModelError,
    UnsupportedModelError,
)
from .fileio import read_bytes

__all__ = [
    "ALLOWED_GLOBALS",
    "SUPPORTED_SUFFIXES",
    "RawLinearModel",
    "allowed_globals",
    "SKLEARN_VERSION_ATTRIBUTE",
    "load_model",
]

# ---------------------------------------------------------------------------------------------
# The allow-list. Found empirically: every supported estimator was fitted with scikit-learn
# 1.9.1 / numpy 2.4, pickled with protocols 2-5 and with joblib (plain and compressed), and the
# globals its pickle names were recorded. Nothing else is here; exact (module, qualname) pairs.
# ---------------------------------------------------------------------------------------------

# numpy arrays, dtypes and scalars. numpy 2 pickles say ``numpy._core``; numpy 1.x pickles say
# ``numpy.core`` (both spellings are resolved to whichever module this numpy has, see _ALIASES).
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

# SGD/Perceptron/PassiveAggressive keep their loss object (_loss_function_, and before 1.3
# loss_function_ too). Up to scikit-learn 1.5 every loss was one of these Cython classes; Log,
# SquaredLoss and Huber are gone since 1.6, so today's scikit-learn cannot unpickle them. None
# of them is ever imported: each resolves to a stand-in that records the class name only (see
# _OldSGDLoss); edgesparse reads the loss from the estimator's ``loss`` string.
_SGD_FAST_LOSSES: tuple[str, ...] = (
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
        *(("sklearn.linear_model._sgd_fast", name) for name in _SGD_FAST_LOSSES),
        ("sklearn._loss._loss", "CyHalfBinomialLoss"),
        ("sklearn._loss._loss", "CyHalfSquaredError"),
        ("sklearn._loss._loss", "CyHuberLoss"),
        # The same classes as scikit-learn 1.8.0's build named them (see _RENAMED).
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
    | _SKLEARN_HELPERS
    | _JOBLIB
    | _PICKLE_PROTOCOL
    | _SURPRISE
)
"""Every ``(module, qualname)`` a ``.pkl``/``.joblib`` file may reference; nothing else loads."""

# Legacy spellings resolved to their modern home, so numpy 1.x pickles load on numpy 2 without
# going through numpy's deprecated ``numpy.core`` shim (and vice versa on numpy 1.x).
_ALIASES: dict[tuple[str, str], tuple[str, str]] = {
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
_RENAMED: dict[tuple[str, str], tuple[str, str]] = {
    ("_loss", name): ("sklearn._loss._loss", name)
    for name in ("CyHalfBinomialLoss", "CyHalfSquaredError", "CyHuberLoss")
}
# The other way round, tried last: numpy 1.x has no numpy._core (1.26.1+ has a partial shim
# without ``numeric``), so a numpy 2 pickle, such as the bundled models, needs numpy.core there.
_LEGACY: dict[tuple[str, str], tuple[str, str]] = {
    modern: legacy for legacy, modern in _ALIASES.items() if legacy[0].startswith("numpy.")
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
_SKOPS_ALLOWED_TYPES: frozenset[str] = (
    frozenset(
        f"{m}.{n}"
        for m, n in _SCIPY_SPARSE | _SKLEARN_ESTIMATORS | _SKLEARN_PIPELINE | _SKLEARN_HELPERS
    )
    | _SKOPS_EXTRA_TYPES
)

_PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib")
SUPPORTED_SUFFIXES: tuple[str, ...] = (*_PICKLE_SUFFIXES, ".skops", ".npz")
"""File suffixes :func:`load_model` understands."""

# Size caps. A model file is read whole into memory, and a compressed pickle can unpack to far
# more than its own size; both are bounded, with a documented way to raise the bound.
DEFAULT_MAX_FILE_BYTES = 1 << 30
"""Largest model file :func:`load_model` reads (1 GiB); ``EDGESPARSE_MAX_MODEL_BYTES`` overrides."""
DEFAULT_MAX_UNPACKED_BYTES = 2 << 30
"""Most bytes a model may unpack to (2 GiB: decompressed pickle stream, zip members);
``EDGESPARSE_MAX_UNPACKED_BYTES`` overrides."""
MAX_PICKLE_OPCODES = 2_000_000
"""Most pickle opcodes one file may execute (a scikit-learn linear model needs thousands)."""
_ENV_MAX_FILE = "EDGESPARSE_MAX_MODEL_BYTES"
_ENV_MAX_UNPACKED = "EDGESPARSE_MAX_UNPACKED_BYTES"

_ZIP_MAGIC = b"PK\x03\x04"
_PICKLE_PROTO_OPCODE = pickle.PROTO  # b"\x80": first byte of every protocol >= 2 pickle


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


def _shown(text: str) -> str:
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


def _refused(
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
    shown = [_shown(n) for n in names]
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


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if len(text) > 200:
        text = text[:197] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# ---------------------------------------------------------------------------------------------
# The allow-list unpickler
# ---------------------------------------------------------------------------------------------
def _latin1_encode(obj: Any, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """Stand-in for ``_codecs.encode`` that does only what pickle protocol 2 needs."""
    # codecs.encode can reach every registered codec; a pickle only ever needs latin-1.
    if type(obj) is not str or encoding not in ("latin1", "latin-1") or errors != "strict":
        raise pickle.UnpicklingError("_codecs.encode is allowed only as str -> latin1 bytes")
    return codecs.encode(obj, "latin1")


def _empty_array_reconstruct(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
    """Stand-in for ``numpy._core.multiarray._reconstruct`` that cannot allocate."""
    # numpy pickles every array as _reconstruct(ndarray, (0,), b"b") plus BUILD(state); a
    # hostile pickle could ask for any shape and make numpy allocate it before anything else.
    if subtype is not np.ndarray or type(shape) is not tuple or shape != (0,):
        raise pickle.UnpicklingError(
            "numpy _reconstruct called with arguments numpy never writes "
            f"(subtype {getattr(subtype, '__name__', type(subtype).__name__)}, shape "
            f"{_shown(repr(shape))})"
        )
    return np.ndarray.__new__(np.ndarray, (0,), dtype)


MAX_SCALAR_BYTES = 1 << 20
"""Largest numpy scalar a model file may build (a label or a number needs a few bytes)."""


def _checked_scalar(dtype: Any, obj: Any = None) -> Any:
    """Stand-in for ``numpy._core.multiarray.scalar`` that cannot allocate more than it read.

    numpy pickles a scalar as ``scalar(dtype, raw_bytes)`` (``scalar(dtype('O'), obj)`` for
    objects); without bytes, numpy allocates ``dtype.itemsize`` zeros, and a void dtype can
    declare a GiB in a few characters."""
    if not isinstance(dtype, np.dtype):
        raise pickle.UnpicklingError("numpy scalar built without a dtype")
    if dtype.itemsize > MAX_SCALAR_BYTES:
        raise pickle.UnpicklingError(
            f"a numpy scalar of dtype {_shown(str(dtype))} ({dtype.itemsize} bytes; at most "
            f"{MAX_SCALAR_BYTES} are allowed)"
        )
    if not dtype.hasobject and not (type(obj) is bytes and len(obj) == dtype.itemsize):
        raise pickle.UnpicklingError(
            "numpy scalar called with arguments numpy never writes (its bytes must match its dtype)"
        )
    try:
        from numpy._core.multiarray import scalar
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import scalar  # type: ignore[no-redef]
    return scalar(dtype, obj) if obj is not None else scalar(dtype)


def _mt19937_class() -> Any:
    from numpy.random import MT19937

    return MT19937


def _bit_generator_ctor(bit_generator: Any = "MT19937") -> Any:
    """Stand-in for ``numpy.random._pickle.__bit_generator_ctor``: only an unseeded MT19937
    (its state comes next, from the pickle's BUILD), named by string or by class."""
    mt = _mt19937_class()
    if bit_generator is not mt and not (type(bit_generator) is str and bit_generator == "MT19937"):
        raise pickle.UnpicklingError(
            "numpy bit generator constructor called with arguments numpy never writes"
        )
    return mt()


def _randomstate_ctor(bit_generator_name: Any = "MT19937", bit_generator_ctor: Any = None) -> Any:
    """Stand-in for ``numpy.random._pickle.__randomstate_ctor``: a RandomState around an
    MT19937 (given, or named), never a call of whatever the pickle passes as constructor."""
    mt = _mt19937_class()
    if bit_generator_ctor not in (None, _bit_generator_ctor):
        raise pickle.UnpicklingError(
            "numpy RandomState constructor called with arguments numpy never writes"
        )
    if type(bit_generator_name) is not mt:
        bit_generator_name = _bit_generator_ctor(bit_generator_name)
    return np.random.RandomState(bit_generator_name)


class _ListFactoryToken:
    """What ``builtins.list`` resolves to: a token only _defaultdict_of_list accepts, so a
    pickle can never call ``list`` itself."""

    __slots__ = ()


_LIST_FACTORY = _ListFactoryToken()


def _defaultdict_of_list(factory: Any = None) -> Any:
    """Stand-in for ``collections.defaultdict`` that builds only ``defaultdict(list)``."""
    import collections

    # Any other factory would be called later, on a missing key, with no check at all.
    if factory is not _LIST_FACTORY:
        raise pickle.UnpicklingError("collections.defaultdict is allowed only as defaultdict(list)")
    return collections.defaultdict(list)


class _OldSGDLoss:
    """What an ``sklearn.linear_model._sgd_fast`` loss object becomes: its class name, nothing
    else. The pickle calls ``Log()`` or ``Hinge(1.0)``; the stand-in accepts at most two plain
    numbers (the loss parameters scikit-learn wrote) and keeps none of them."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<scikit-learn loss {self.name} (read as a name only)>"

    def __setstate__(self, state: Any) -> None:
        # Cython classes may add a state; it is data we never use.
        if state is not None and not isinstance(state, (dict, tuple)):
            raise pickle.UnpicklingError(f"unexpected state for loss {self.name}")


class _OldSGDLossFactory:
    """The callable an allow-listed ``_sgd_fast.<Loss>`` global resolves to."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __call__(self, *args: Any) -> _OldSGDLoss:
        if len(args) > 2 or not all(type(a) in (float, int) for a in args):
            raise pickle.UnpicklingError(
                f"_sgd_fast.{self.name} called with arguments scikit-learn never writes"
            )
        return _OldSGDLoss(self.name)


class _SurprisePrediction(NamedTuple):
    """What Surprise's ``Prediction`` in a ``surprise.dump`` file becomes: a plain tuple of its
    five fields (Surprise's own class is not imported; edgesparse reads only the ``algo``)."""

    uid: Any
    iid: Any
    r_ui: Any
    est: Any
    details: Any


_SUBSTITUTES: dict[tuple[str, str], Any] = {
    ("surprise.prediction_algorithms.predictions", "Prediction"): _SurprisePrediction,
    **{
        ("sklearn.linear_model._sgd_fast", name): _OldSGDLossFactory(name)
        for name in _SGD_FAST_LOSSES
    },
    ("collections", "defaultdict"): _defaultdict_of_list,
    ("builtins", "list"): _LIST_FACTORY,
    ("__builtin__", "list"): _LIST_FACTORY,
    ("_codecs", "encode"): _latin1_encode,
    ("numpy._core.multiarray", "_reconstruct"): _empty_array_reconstruct,
    ("numpy.core.multiarray", "_reconstruct"): _empty_array_reconstruct,
    ("numpy._core.multiarray", "scalar"): _checked_scalar,
    ("numpy.core.multiarray", "scalar"): _checked_scalar,
    ("numpy.random._pickle", "__bit_generator_ctor"): _bit_generator_ctor,
    ("numpy.random._pickle", "__randomstate_ctor"): _randomstate_ctor,
}


class _LimitExceeded(Exception):
    """A size or opcode cap was hit (see _limit_error for the message the user sees)."""

    def __init__(self, what: str, *, raisable: bool = True) -> None:
        super().__init__(what)
        self.raisable = raisable


def _limit_error(source: str, exc: _LimitExceeded) -> ModelFileError:
    if not exc.raisable:
        return ModelFileError(
            f"cannot load {source}: {exc}; a pickle this long is not a model edgesparse can "
            "read (export its weights to .npz instead)"
        )
    return ModelFileError(
        f"cannot load {source}: {exc}, more than edgesparse allows by default; if you trust "
        f"the file, raise the limit with {_ENV_MAX_UNPACKED}=<bytes> "
        "(or load_model(..., max_unpacked_bytes=...))"
    )


class _CappedStream:
    """File object the unpicklers read from: counts bytes and opcodes against the caps.

    ``limit`` is the most bytes the stream may deliver: the file size for a plain pickle, the
    decompressed-size cap for a compressed one. A read asking for more than is left (a pickle
    declaring a 1 TiB bytes object) is refused before anything is allocated.
    """

    def __init__(self, raw: Any, limit: int, *, compressed: bool) -> None:
        self._raw = raw
        self.limit = limit
        self.compressed = compressed
        self.used = 0
        self.opcodes = 0

    def left(self) -> int:
        """Bytes the stream may still deliver."""
        return self.limit - self.used

    def _refuse(self, n: int) -> None:
        if self.compressed:
            raise _LimitExceeded(f"it unpacks to more than {self.limit} bytes")
        raise pickle.UnpicklingError(
            f"pickle data was truncated (it needs {n} more bytes, {self.left()} are left)"
        )

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = self.left()
        if n > self.left():
            self._refuse(n)
        data = self._raw.read(n)
        self.used += len(data)
        return data

    def readline(self, size: int = -1) -> bytes:
        # Only GLOBAL/INST read lines (module and class names): bounded by the cap too.
        limit = self.left() if size is None or size < 0 else min(size, self.left())
        line = self._raw.readline(limit)
        self.used += len(line)
        return line

    def tick(self) -> None:
        self.opcodes += 1
        if self.opcodes > MAX_PICKLE_OPCODES:
            raise _LimitExceeded(
                f"it runs more than {MAX_PICKLE_OPCODES} pickle opcodes (a scikit-learn linear "
                "model needs a few thousand)",
                raisable=False,
            )


def _guard_call(unpickler: Any, func: Any, args: Any = (), *, new: bool = False) -> None:
    # ndarray's constructor allocates the shape it is given; numpy pickles never call it (they
    # go through _reconstruct), so a pickle that does is crafted.
    if func is np.ndarray:
        raise _refused(unpickler._source, ["numpy.ndarray called as a constructor"])
    if not isinstance(func, type):
        return
    module = func.__module__ or ""
    # scipy sparse matrices are pickled as an empty object plus its arrays (NEWOBJ, BUILD);
    # calling the class allocates whatever shape the arguments give. A seeded MT19937 converts
    # its seed in quadratic time; numpy pickles an unseeded one and then its state.
    sparse = module.startswith("scipy.sparse")
    seeded = module.startswith("numpy.random") and func.__name__ == "MT19937"
    if (sparse and (not new or args)) or (seeded and args):
        raise pickle.UnpicklingError(
            f"{_shown(func.__name__)} called with arguments its pickles never have"
        )


def _resolve_global(module: str, name: str, source: str) -> Any:
    """Return the object for an allow-listed global; refuse anything else before importing."""
    key = (module, name)
    # Exact pair match: a dotted name such as "LogisticRegression.__init__.__globals__" is not
    # on the list, so it is never walked attribute by attribute.
    if key not in ALLOWED_GLOBALS:
        raise _refused(source, [f"{module}.{name}"])
    if key in _SUBSTITUTES:
        return _SUBSTITUTES[key]
    if key in _RENAMED:
        candidates: tuple[tuple[str, str], ...] = (_RENAMED[key],)
    else:
        candidates = (_ALIASES.get(key, key), key, _LEGACY.get(key, key))
    for mod_name, attr in candidates:
        try:
            mod = importlib.import_module(mod_name)
        except ImportError:
            continue
        return getattr(mod, attr)
    if module.startswith("surprise."):
        raise ToolMissingError(
            f"cannot load {source}: it is a Surprise model ({name}), and reading it needs "
            "scikit-surprise (pip install 'edgesparse[surprise]')"
        )
    raise ModelFileError(
        f"cannot load {source}: it needs {module}.{name}, which cannot be imported here "
        "(is the library that wrote it installed?)"
    )


class _AllowListMixin:
    """``find_class``/``persistent_load`` shared by both unpicklers below."""

    _source: str = "<model>"

    def find_class(self, module: str, name: str) -> Any:
        return _resolve_global(module, name, self._source)

    def persistent_load(self, pid: Any) -> Any:
        # Persistent ids hand arbitrary data to a callback; no model file needs one.
        raise _refused(self._source, ["a persistent id (pickle persistent_load)"])

    def _refuse_extension(self) -> None:
        # EXT1/2/4 look globals up in copyreg's process-wide extension registry and its cache,
        # which can bypass find_class; sklearn never writes them, so refuse them outright.
        raise _refused(self._source, ["the copyreg extension registry (EXT1/EXT2/EXT4 opcodes)"])

    def _instantiate(self, klass: Any, args: Any) -> None:  # INST and OBJ
        _guard_call(self, klass, args)
        super()._instantiate(klass, args)  # type: ignore[misc]

    def _load_reduce(self) -> None:
        _guard_call(self, self.stack[-2], self.stack[-1])  # type: ignore[attr-defined]
        pickle._Unpickler.load_reduce(self)  # type: ignore[attr-defined]

    def _load_newobj(self) -> None:
        _guard_call(self, self.stack[-2], self.stack[-1], new=True)  # type: ignore[attr-defined]
        pickle._Unpickler.load_newobj(self)  # type: ignore[attr-defined]

    def _load_newobj_ex(self) -> None:
        stack = self.stack  # type: ignore[attr-defined]
        _guard_call(self, stack[-3], (*stack[-2], *stack[-1]), new=True)
        pickle._Unpickler.load_newobj_ex(self)  # type: ignore[attr-defined]

    def _load_global(self) -> None:
        # The stdlib drops the last character of each line without checking it is a newline,
        # so a cut-off GLOBAL would ask for a clipped name; call it what it is: truncation.
        module, name = self.readline(), self.readline()  # type: ignore[attr-defined]
        if not (module.endswith(b"\n") and name.endswith(b"\n")):
            raise pickle.UnpicklingError("pickle data was truncated")
        self.append(self.find_class(module[:-1].decode(), name[:-1].decode()))  # type: ignore[attr-defined]


def _counted(func: Any) -> Any:
    def op(self: Any) -> None:
        self._stream.tick()
        func(self)

    return op


def _restricted_dispatch(dispatch: dict[int, Any]) -> dict[int, Any]:
    table = dict(dispatch)
    for op in (pickle.EXT1, pickle.EXT2, pickle.EXT4):
        table[op[0]] = _AllowListMixin._refuse_extension
    table[pickle.GLOBAL[0]] = _AllowListMixin._load_global
    table[pickle.REDUCE[0]] = _AllowListMixin._load_reduce
    table[pickle.NEWOBJ[0]] = _AllowListMixin._load_newobj
    table[pickle.NEWOBJ_EX[0]] = _AllowListMixin._load_newobj_ex
    # Every opcode counts against MAX_PICKLE_OPCODES: bounded time for any stream.
    return {code: _counted(func) for code, func in table.items()}


class _SafeObjectArrayUnpickler(_AllowListMixin, pickle._Unpickler):  # type: ignore[misc]
    """Reads the nested pickle joblib writes for object-dtype arrays, with the same checks."""

    dispatch = _restricted_dispatch(pickle._Unpickler.dispatch)  # type: ignore[attr-defined]

    def __init__(self, file: _CappedStream, source: str) -> None:
        super().__init__(file)
        self._source = source
        self._stream = file


def _make_joblib_unpickler() -> type:
    # Built on first use so that importing this module does not import joblib.
    from joblib.numpy_pickle import NumpyArrayWrapper, NumpyUnpickler

    class _SafeJoblibUnpickler(_AllowListMixin, NumpyUnpickler):  # type: ignore[misc,valid-type]
        """joblib's unpickler (a ``pickle._Unpickler``) restricted to :data:`ALLOWED_GLOBALS`.

        It reads plain pickles too, so every pickle-based file goes through it: users often
        ``joblib.dump`` to a ``.pkl`` name.
        """

        def __init__(self, file_handle: _CappedStream, source: str) -> None:
            super().__init__("", file_handle, True)
            self._source = source
            self._stream = file_handle
            self._array_bytes = 0
            self._max_array_bytes = _limit(None, _ENV_MAX_ARRAYS, DEFAULT_MAX_ARRAY_BYTES)

        def load_build(self) -> None:
            # joblib's load_build, but the array is read by us: object arrays through our
            # restricted unpickler (not whatever this joblib version uses) and with the
            # wrapper's fields validated first.
            state = self.stack[-1]
            written_by = _written_by(state)
            pickle._Unpickler.load_build(self)  # type: ignore[attr-defined]
            top = self.stack[-1]
            if written_by is not None:
                _record_version(top, written_by)
            if type(top) is NumpyArrayWrapper:
                self.stack[-1] = self._read_wrapped_array(top)

        dispatch = _restricted_dispatch({**NumpyUnpickler.dispatch, pickle.BUILD[0]: load_build})

        def _read_wrapped_array(self, wrapper: Any) -> np.ndarray:
            fields = vars(wrapper)
            dtype, shape, order = fields.get("dtype"), fields.get("shape"), fields.get("order")
            if (
                fields.get("subclass") is not np.ndarray
                or not isinstance(dtype, np.dtype)
                or order not in ("C", "F")
                or not isinstance(shape, tuple)
                or not all(type(n) is int and n >= 0 for n in shape)
            ):
                raise pickle.UnpicklingError("malformed joblib array header")
            if dtype.hasobject:
                array = _SafeObjectArrayUnpickler(self._stream, self._source).load()
                if not isinstance(array, np.ndarray):
                    raise pickle.UnpicklingError("joblib object array is not an array")
                return array
            # joblib allocates the declared shape before reading: check it fits what is left,
            # and that the arrays read so far stay within the array cap (checked again, per
            # use, once the pickle is loaded).
            nbytes = math.prod(shape) * dtype.itemsize
            if nbytes > self._stream.left():
                if self._stream.compressed:
                    raise _LimitExceeded(f"it declares an array of {nbytes} bytes")
                raise pickle.UnpicklingError(
                    f"joblib array header declares {nbytes} bytes, but only "
                    f"{self._stream.left()} bytes are left in the file"
                )
            self._array_bytes += nbytes
            if self._array_bytes > self._max_array_bytes:
                raise _array_limit_error(self._source, self._array_bytes, self._max_array_bytes)
            return NumpyArrayWrapper.read_array(wrapper, self, True)

    return _SafeJoblibUnpickler


# ---------------------------------------------------------------------------------------------
# The public entry point and one loader per file kind
# ---------------------------------------------------------------------------------------------
def load_model(
    path: str | os.PathLike[str],
    *,
    max_file_bytes: int | None = None,
    max_unpacked_bytes: int | None = None,
) -> Any:
    """Load a trained model from ``path`` without running anything outside the allow-list.

    ``.pkl``/``.pickle``/``.joblib`` (pickle or joblib, plain or compressed) are unpickled by
    an allow-list unpickler; ``.skops`` files are audited against the same list and loaded by
    skops; ``.npz`` weight files (``coef``, ``intercept``, optional ``classes``, ``head``) give a
    :class:`RawLinearModel`.

    ``max_file_bytes`` (default :data:`DEFAULT_MAX_FILE_BYTES`, or the environment variable
    ``EDGESPARSE_MAX_MODEL_BYTES``) caps the file size; ``max_unpacked_bytes`` (default
    :data:`DEFAULT_MAX_UNPACKED_BYTES`, or ``EDGESPARSE_MAX_UNPACKED_BYTES``) caps what a
    compressed pickle or a zip archive may unpack to.

    Raises:
        UnsafeModelError: the file references something not on :data:`ALLOWED_GLOBALS`.
        ModelFileError: missing, unreadable, empty, truncated, too large, or the wrong kind of
            file.
        ToolMissingError: the file needs an optional library (skops, lz4) that is absent.
        InputError: a size cap (argument or environment variable) is not a positive integer.
    """
    p = Path(path)
    source = str(path)
    suffix = p.suffix.lower()
    if p.is_dir():
        raise ModelFileError(
            f"cannot load {source}: it is a directory, not a model file; give the model file "
            f"({', '.join(SUPPORTED_SUFFIXES)}), e.g. one inside it"
        )
    if suffix not in SUPPORTED_SUFFIXES:
        raise _unknown_suffix(p, source, suffix)
    max_file = _limit(max_file_bytes, _ENV_MAX_FILE, DEFAULT_MAX_FILE_BYTES)
    max_unpacked = _limit(max_unpacked_bytes, _ENV_MAX_UNPACKED, DEFAULT_MAX_UNPACKED_BYTES)
    data = read_bytes(
        p,
        what="model file",
        max_bytes=max_file,
        how_to_raise=(
            f"if you trust it, raise the limit with {_ENV_MAX_FILE}=<bytes> "
            "(or load_model(..., max_file_bytes=...))"
        ),
    )
    if not data:
        raise ModelFileError(
            f"cannot load {source}: the file is empty (save the model again with joblib.dump, "
            "pickle.dump, skops.io.dump or numpy.savez)"
        )
    if suffix == ".npz":
        return _load_npz(data, source, max_unpacked)
    if suffix == ".skops":
        return _load_skops(data, source, max_unpacked)
    return _load_pickle(data, source, max_unpacked)


def _unknown_suffix(p: Path, source: str, suffix: str) -> ModelFileError:
    """The error for a name load_model does not know, saying what the file is when it can."""
    from .sniff import sniff

    supported = ", ".join(SUPPORTED_SUFFIXES)
    kind = sniff(p)
    if kind is not None and kind.role == "compressed":
        return ModelFileError(
            f"cannot load {source}: it is {kind.what}, already compressed; compress reads the "
            f"trained model ({supported}); to see what it holds: edgesparse inspect {source}"
        )
    if kind is not None and kind.role == "data":
        return ModelFileError(
            f"cannot load {source}: it is {kind.what}, a data file, not a model; compress "
            f"reads the trained model ({supported}); data goes to --check-data or --calibration"
        )
    shown = f"'{suffix}'" if suffix else "no suffix"
    looks = f"; it looks like {kind.what}" if kind is not None else ""
    return ModelFileError(
        f"cannot load {source}: unknown model file type ({shown}){looks}; supported: "
        f"{supported} (rename it to match how it was saved)"
    )


def _limit(value: int | None, env: str, default: int) -> int:
    """A size cap: the argument, else the environment variable, else the default."""
    origin = {_ENV_MAX_FILE: "max_file_bytes", _ENV_MAX_UNPACKED: "max_unpacked_bytes"}.get(
        env, env
    )
    if value is None:
        text = os.environ.get(env, "").strip()
        if not text:
            return default
        origin = env
        try:
            value = int(text)
        except ValueError:
            raise InputError(f"{env}={text!r} is not a whole number of bytes") from None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(f"{origin} must be a positive number of bytes, got {value!r}")
    return value


def _check_zip(data: bytes, source: str, max_unpacked: int) -> None:
    """Refuse a zip archive (npz, skops) whose members unpack to more than the cap.

    ``zipfile`` never inflates a member past its declared size, so the declared sizes bound
    the real work; for ``.npy`` members the array header must also fit the member, since numpy
    allocates the declared shape before reading the data.
    """
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        members = zf.infolist()
        total = sum(m.file_size for m in members)
        if total > max_unpacked:
            raise _LimitExceeded(f"its {len(members)} archive members unpack to {total} bytes")
        for m in members:
            if not m.filename.endswith(".npy"):
                continue
            with zf.open(m) as fh:
                version = np.lib.format.read_magic(fh)
                if version == (1, 0):
                    shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
                else:
                    shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
                nbytes = math.prod(shape) * dtype.itemsize
                if not dtype.hasobject and nbytes > m.file_size:
                    raise pickle.UnpicklingError(
                        f"array {_shown(m.filename)!r} declares {nbytes} bytes, but its "
                        f"archive member holds {m.file_size}"
                    )


def _zip_guarded(source: str, kind: str, fix: str, data: bytes, max_unpacked: int) -> None:
    try:
        _guarded(source, kind, fix, _check_zip, data, source, max_unpacked)
    except _LimitExceeded as exc:
        raise _limit_error(source, exc) from None


def _guarded(source: str, kind: str, fix: str, func: Any, *args: Any) -> Any:
    """Run a loader; any exception that is not ours becomes one ModelFileError line."""
    try:
        return func(*args)
    except (
        UnsafeModelError,
        UnsupportedModelError,
        ModelFileError,
        ToolMissingError,
        InputError,
        _LimitExceeded,
    ):
        raise
    except Exception as exc:  # a hostile or corrupt file can make any library raise anything
        raise ModelFileError(
            f"cannot load {source}: not a valid {kind} file, or it is truncated "
            f"({_one_line(exc)}); {fix}"
        ) from exc


# -- pickle / joblib -------------------------------------------------------------------------
_PICKLE_FIX = "re-save the model with joblib.dump or pickle.dump"


def _load_pickle(data: bytes, source: str, max_unpacked: int) -> Any:
    if data.startswith(_ZIP_MAGIC):
        raise ModelFileError(
            f"cannot load {source}: it is a zip archive, not a pickle (a skops or npz file? "
            "give it a .skops or .npz suffix)"
        )
    try:
        from joblib.compressor import _COMPRESSORS, _ZFILE_PREFIX
        from joblib.numpy_pickle_utils import _detect_compressor
    except ImportError as exc:  # joblib is a dependency, and scikit-learn's too
        raise ToolMissingError(
            f"cannot load {source}: reading pickles needs joblib (pip install joblib)"
        ) from exc

    if data.startswith(_ZFILE_PREFIX):
        # joblib < 0.10 kept arrays in companion files and used its own loader: not supported.
        raise ModelFileError(
            f"cannot load {source}: it was written by joblib older than 0.10; "
            "load it with that joblib version and save it again"
        )
    compressor = _detect_compressor(io.BytesIO(data))
    if compressor == "lz4":
        try:
            import lz4  # noqa: F401
        except ImportError:
            raise ToolMissingError(
                f"cannot load {source}: it is lz4-compressed and lz4 is not installed "
                "(pip install lz4)"
            ) from None
    if compressor == "not-compressed" and not data.startswith(_PICKLE_PROTO_OPCODE):
        # Every pickle of protocol 2+ starts with PROTO; scikit-learn models are never saved
        # with 0/1. This also turns a text file named .pkl into a clear message.
        raise ModelFileError(
            f"cannot load {source}: not a pickle or joblib file (it does not start like a "
            f"pickle of protocol 2 or newer); {_PICKLE_FIX}"
        )
    obj = _guarded(
        source,
        "pickle/joblib",
        _PICKLE_FIX,
        _unpickle,
        data,
        compressor,
        _COMPRESSORS,
        source,
        max_unpacked,
    )
    _audit_objects(obj, source)
    return obj


MAX_NESTING = 100
"""Deepest chain of containers a loaded model may have (a Pipeline of a one-vs-rest model is
about 8 deep); deeper structures, and reference cycles, are refused."""

MAX_TREE_SIZE = 10_000_000
"""Most objects a loaded model may hold when shared references are counted once per use."""

DEFAULT_MAX_ARRAY_BYTES = 64 << 20
"""Most bytes of arrays a loaded model may hold (64 MiB: 8 million float64 weights, which
compress in about 0.9 GiB), counted as the frontends
materialize them: a shared array once per reference, a scipy sparse matrix also by the
per-row and per-column arrays its shape implies. ``EDGESPARSE_MAX_ARRAY_BYTES`` overrides."""
_ENV_MAX_ARRAYS = "EDGESPARSE_MAX_ARRAY_BYTES"


def _own_bytes(obj: Any) -> int:
    """Bytes ``obj`` itself makes the frontends hold, beyond its children."""
    if isinstance(obj, (np.ndarray, np.generic)):
        return int(obj.nbytes)
    if isinstance(obj, (str, bytes, bytearray)):
        return len(obj)
    if hasattr(obj, "check_format") and type(obj).__module__.startswith("scipy.sparse"):
        # Converting it builds an index (and a bias) per row and per column of its shape.
        shape = getattr(obj, "_shape", None) or ()
        return 16 * sum(int(n) for n in shape if isinstance(n, (int, np.integer)))
    return 0


_ATOMS = (str, bytes, bytearray, int, float, complex, bool, type(None), np.generic, type)


def _children(obj: Any) -> list[Any] | None:
    """What ``obj`` refers to, or None for a leaf."""
    if isinstance(obj, _ATOMS):
        return None
    if isinstance(obj, np.ndarray):
        return list(obj.ravel()) if obj.dtype.hasobject else None
    if isinstance(obj, dict):
        return [*obj.keys(), *obj.values()]
    if isinstance(obj, (list, tuple, set, frozenset)):
        return list(obj)
    attrs = getattr(obj, "__dict__", None)
    return list(attrs.values()) if isinstance(attrs, dict) else None


def _audit_objects(root: Any, source: str) -> None:
    """Walk what a pickle built, once per object, before anything else touches it.

    A pickle can build shapes no scikit-learn model has: reference cycles and very deep
    nesting (which send recursive code into RecursionError), and scipy.sparse matrices whose
    arrays disagree (BUILD sets them without scipy's checks). Refuse those here, with one line.
    """
    max_bytes = _limit(None, _ENV_MAX_ARRAYS, DEFAULT_MAX_ARRAY_BYTES)
    on_path, done = 1, 2
    state: dict[int, int] = {}
    # Bytes under each object, shared references counted once per use, like ``tree``.
    weight: dict[int, int] = {}
    # Size of each container as a tree: shared references count once per path, so a DAG of
    # 12 lists of 100 references each ("billion laughs") is 100**11, which recursive code
    # such as numpy.asarray would try to materialize.
    tree: dict[int, int] = {}
    stack: list[tuple[Any, int, list[Any] | None]] = [(root, 0, None)]
    while stack:
        obj, depth, leaving = stack.pop()
        if leaving is not None:
            state[id(obj)] = done
            size = 1 + sum(tree.get(id(c), 1) for c in leaving)
            if size > MAX_TREE_SIZE:
                raise ModelFileError(
                    f"cannot load {source}: its objects, walked as a tree, number more than "
                    f"{MAX_TREE_SIZE} (shared references repeated many times; no scikit-learn "
                    "model does that, the file is crafted or corrupt)"
                )
            tree[id(obj)] = size
            total = _own_bytes(obj) + sum(
                weight[id(c)] if id(c) in weight else _own_bytes(c) for c in leaving
            )
            if total > max_bytes:
                raise _array_limit_error(source, total, max_bytes)
            weight[id(obj)] = total
            continue
        children = _children(obj)
        if children is None:
            if obj is root and _own_bytes(obj) > max_bytes:
                raise _array_limit_error(source, _own_bytes(obj), max_bytes)
            continue
        seen = state.get(id(obj))
        if seen == done:
            continue
        if seen == on_path:
            raise ModelFileError(
                f"cannot load {source}: a {_shown(type(obj).__name__)} in it contains itself "
                "(a reference cycle, which no scikit-learn model has; the file is crafted or "
                "corrupt)"
            )
        if depth > MAX_NESTING:
            raise ModelFileError(
                f"cannot load {source}: its objects nest more than {MAX_NESTING} levels deep "
                "(no scikit-learn model does; the file is crafted or corrupt)"
            )
        if hasattr(obj, "check_format") and type(obj).__module__.startswith("scipy.sparse"):
            try:
                obj.check_format(full_check=True)
            except Exception as exc:  # scipy raises ValueError, TypeError, IndexError...
                raise ModelFileError(
                    f"cannot load {source}: a sparse matrix in it is inconsistent "
                    f"({_one_line(exc)}); {_PICKLE_FIX}"
                ) from None
        state[id(obj)] = on_path
        stack.append((obj, depth, children))
        stack.extend((child, depth + 1, None) for child in children)


def _array_limit_error(source: str, total: int, max_bytes: int) -> ModelFileError:
    return ModelFileError(
        f"cannot load {source}: its arrays hold more than {max_bytes} bytes (at least "
        f"{total} bytes, shared arrays counted once per use), more than edgesparse allows by "
        f"default; if you trust the file, raise the limit with {_ENV_MAX_ARRAYS}=<bytes>"
    )


SKLEARN_VERSION_ATTRIBUTE = "_sklearn_version"
"""The attribute where a loaded scikit-learn object keeps the version that pickled it.

scikit-learn writes ``_sklearn_version`` into every estimator's pickled state and drops it
again on loading (after warning when it differs from the installed version); the loader puts
it back, so that the frontend reads the estimator by the rules of the release that wrote it."""


def _written_by(state: Any) -> str | None:
    """The version an object's pickled state records: "pre-0.18" when a state dict has none
    (as scikit-learn says of such pickles), "<not a version>" when it is not a short string;
    None for states that are not dicts."""
    if not isinstance(state, dict):
        return None
    version = state.get(SKLEARN_VERSION_ATTRIBUTE, "pre-0.18")
    if isinstance(version, str) and len(version) <= 40 and version.isprintable():
        return version
    return "<not a version>"


def _record_version(obj: Any, version: str) -> None:
    # Only scikit-learn's own estimators carry a version (BaseEstimator.__getstate__).
    attrs = getattr(obj, "__dict__", None)
    if not isinstance(attrs, dict) or not (type(obj).__module__ or "").startswith("sklearn."):
        return
    if not any(k.__name__ == "BaseEstimator" for k in type(obj).__mro__):
        return
    attrs[SKLEARN_VERSION_ATTRIBUTE] = version


def _unpickle(
    data: bytes, compressor: str, compressors: dict[str, Any], source: str, max_unpacked: int
) -> Any:
    # scikit-learn warns (InconsistentVersionWarning) on every estimator pickled by another
    # release. edgesparse records that version instead and reads the model by its rules (the
    # compress summary says so), so the raw warning is not shown.
    with warnings.catch_warnings():
        _hide_version_warning()
        return _unpickle_quietly(data, compressor, compressors, source, max_unpacked)


def _hide_version_warning() -> None:
    """Inside ``warnings.catch_warnings()``: ignore scikit-learn's InconsistentVersionWarning."""
    try:
        from sklearn.exceptions import InconsistentVersionWarning
    except ImportError:  # scikit-learn < 1.3, or absent
        return
    warnings.simplefilter("ignore", InconsistentVersionWarning)


def _unpickle_quietly(
    data: bytes, compressor: str, compressors: dict[str, Any], source: str, max_unpacked: int
) -> Any:
    raw: Any = io.BytesIO(data)
    compressed = compressor != "not-compressed"
    if compressed:
        # joblib's own decompressor file objects (zlib, gzip, bz2, lzma, xz, lz4).
        raw = io.BufferedReader(compressors[compressor].decompressor_file(raw))
    stream = _CappedStream(raw, max_unpacked if compressed else len(data), compressed=compressed)
    try:
        obj = _make_joblib_unpickler()(stream, source).load()
        # Reading on to the end makes the decompressor check its end marker and checksum, so
        # a cut-off compressed file is caught even when the cut falls after the pickle's STOP.
        if raw.read(1):
            raise pickle.UnpicklingError("unexpected data after the end of the pickle")
    except _LimitExceeded as exc:
        raise _limit_error(source, exc) from None
    # joblib's zlib/gzip reader takes a missing end-of-stream marker (and checksum) for a
    # normal end; the stdlib decompressor knows better.
    decompressor = getattr(getattr(raw, "raw", None), "_decompressor", None)
    if getattr(decompressor, "eof", True) is False:
        raise EOFError("compressed data ended before its end-of-stream marker")
    return obj


# -- skops -----------------------------------------------------------------------------------
def _schema_types(node: Any, out: set[str]) -> None:
    # Every node in a skops schema is a dict with __class__ and __module__; collect them all,
    # including the types skops trusts by default (it trusts every sklearn estimator).
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            cls, mod = item.get("__class__"), item.get("__module__")
            if cls is not None or mod is not None:
                out.add(f"{mod}.{cls}")
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _load_skops(data: bytes, source: str, max_unpacked: int) -> Any:
    try:
        import skops.io as sio
    except ImportError as exc:
        raise ToolMissingError(
            f"cannot load {source}: reading .skops files needs skops (pip install skops)"
        ) from exc
    if not data.startswith(_ZIP_MAGIC):
        raise ModelFileError(
            f"cannot load {source}: not a skops file (a .skops file is a zip archive); "
            "save the model with skops.io.dump"
        )
    fix = "save the model again with skops.io.dump"
    _zip_guarded(source, "skops", fix, data, max_unpacked)

    def audit() -> None:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            schema = json.loads(zf.read("schema.json"))
        types: set[str] = set()
        _schema_types(schema, types)
        refused = sorted(t for t in types if t not in _SKOPS_ALLOWED_TYPES)
        if refused:
            root = (
                f"{schema.get('__module__')}.{schema.get('__class__')}"
                if isinstance(schema, dict)
                else None
            )
            raise _refused(source, refused, skops=True, root=root)

    _guarded(source, "skops", fix, audit)
    # Old loss objects are rewritten as data before skops sees them (see _skops_as_data); then
    # trust exactly the types skops flags, all of which are on our list.
    readable = _guarded(source, "skops", fix, _skops_as_data, data)
    untrusted = _guarded(source, "skops", fix, lambda: sio.get_untrusted_types(data=readable))
    refused = sorted(t for t in untrusted if t not in _SKOPS_ALLOWED_TYPES)
    if refused:
        raise _refused(source, refused, skops=True)
    with warnings.catch_warnings():
        _hide_version_warning()
        obj = _guarded(source, "skops", fix, sio.loads, readable, untrusted)
    _record_skops_version(obj, data)
    return obj


def _skops_as_data(data: bytes) -> bytes:
    """The skops file with its SGD loss objects made readable without their classes.

    ``sklearn.linear_model._sgd_fast`` losses (``Log`` is gone from today's scikit-learn)
    become a string naming the class, as the pickle loader's stand-in does; ``_loss.Cy*`` (the
    module name scikit-learn 1.6-1.8 builds gave those classes) is renamed to its real home.
    Decided by module and name only; nothing is imported.
    """
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        members = {info.filename: zf.read(info) for info in zf.infolist()}
    schema = json.loads(members["schema.json"])
    changed = False
    stack: list[Any] = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
            continue
        if not isinstance(node, dict):
            continue
        key = (node.get("__module__"), node.get("__class__"))
        if key[0] == "sklearn.linear_model._sgd_fast" and key[1] in _SGD_FAST_LOSSES:
            text = repr(_OldSGDLoss(str(key[1])))
            node.clear()
            node.update(
                __class__="str",
                __module__="builtins",
                __loader__="JsonNode",
                content=json.dumps(text),
                is_json=True,
                __id__=id(text),
            )
            changed = True
            continue
        if key in _RENAMED:
            node["__module__"] = _RENAMED[key][0]  # type: ignore[index]
            changed = True
        stack.extend(node.values())
    if not changed:
        return data
    members["schema.json"] = json.dumps(schema).encode()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, payload in members.items():
            zf.writestr(name, payload)
    return out.getvalue()


def _record_skops_version(root: Any, data: bytes) -> None:
    """Put the version a skops file records for its top object back on every scikit-learn
    estimator in it (one file is written by one release), as the pickle loader does."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        schema = json.loads(zf.read("schema.json"))
    version: str | None = None
    content = schema.get("content") if isinstance(schema, dict) else None
    state = content.get("content") if isinstance(content, dict) else None
    node = state.get(SKLEARN_VERSION_ATTRIBUTE) if isinstance(state, dict) else None
    if isinstance(node, dict) and isinstance(node.get("content"), str):
        try:
            version = _written_by({SKLEARN_VERSION_ATTRIBUTE: json.loads(node["content"])})
        except ValueError:
            version = "<not a version>"
    elif isinstance(state, dict):
        version = "pre-0.18"
    if version is None:
        return
    seen: set[int] = set()
    stack = [root]
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, (np.ndarray, *_ATOMS)):
            continue
        seen.add(id(obj))
        _record_version(obj, version)
        children = _children(obj)
        if children:
            stack.extend(children)


# -- npz weights -----------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class RawLinearModel:
    """A plain weights file: ``scores = X @ coef.T + intercept``, then ``head``.

    ``coef`` is ``(n_outputs, n_features)`` or ``(n_features,)``; ``intercept`` a scalar or one
    value per output; ``classes`` the labels of a classifier (one per output, or two for a
    single-output binary classifier); ``head`` the name of the output function, if given.
    The frontend converts it (by the class name ``RawLinearModel``).
    """

    coef: np.ndarray
    intercept: np.ndarray
    classes: np.ndarray | None = None
    head: str | None = None

    def __post_init__(self) -> None:
        problem = _raw_problem(self.coef, self.intercept, self.classes, self.head)
        if problem:
            raise InputError(f"invalid RawLinearModel: {problem}")


_NPZ_EXPECTED = (
    "expected 'coef' (n_outputs x n_features or n_features), 'intercept' (a scalar or one per "
    "output), optional 'classes' (one label per output) and 'head' (a 0-d string array)"
)
_NPZ_KEYS = ("coef", "intercept", "classes", "head")


def _raw_problem(coef: Any, intercept: Any, classes: Any, head: Any) -> str | None:
    """Return what is wrong with these weights, or None."""
    if not isinstance(coef, np.ndarray) or coef.dtype.kind not in "fiu":
        return "'coef' must be a numeric (float or int) array"
    if coef.ndim not in (1, 2) or coef.size == 0:
        return f"'coef' must be 1-D or 2-D and non-empty, got shape {coef.shape}"
    n_outputs = 1 if coef.ndim == 1 else coef.shape[0]
    if not isinstance(intercept, np.ndarray) or intercept.dtype.kind not in "fiu":
        return "'intercept' must be a numeric (float or int) array"
    if intercept.ndim > 1 or (intercept.ndim == 1 and intercept.shape[0] != n_outputs):
        return (
            f"'intercept' has shape {intercept.shape} but 'coef' {coef.shape} has "
            f"{n_outputs} output(s): give a scalar or {n_outputs} value(s)"
        )
    if classes is not None:
        if not isinstance(classes, np.ndarray) or classes.dtype.kind not in "biufU":
            return "'classes' must be an array of numbers or strings"
        if classes.ndim != 1 or classes.shape[0] < 2:
            return f"'classes' must be 1-D with at least 2 labels, got shape {classes.shape}"
        if np.unique(classes).shape[0] != classes.shape[0]:
            return "'classes' has repeated labels"
        n = classes.shape[0]
        if n != n_outputs and not (n == 2 and n_outputs == 1):
            return (
                f"'classes' has {n} labels but 'coef' has {n_outputs} output(s) "
                "(one output per class, or one output for 2 classes)"
            )
    if head is not None and (not isinstance(head, str) or not head):
        return "'head' must be a non-empty string"
    return None


def _load_npz(data: bytes, source: str, max_unpacked: int) -> RawLinearModel:
    if not data.startswith(_ZIP_MAGIC):
        raise ModelFileError(
            f"cannot load {source}: not an npz file (an .npz file is a zip archive); "
            "save the weights with numpy.savez(path, coef=..., intercept=...)"
        )

    _zip_guarded(source, "npz", "save it with numpy.savez", data, max_unpacked)

    def read() -> dict[str, np.ndarray]:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            names = list(npz.files)
            unexpected = [n for n in names if n not in _NPZ_KEYS]
            if "coef" not in names and ("X" in names or "X_data" in names):
                raise ModelFileError(
                    f"cannot load {source}: it is a data file (X, y), not a weights file; "
                    "compress reads the trained model (or an .npz with coef and intercept); "
                    "data goes to --check-data or --calibration"
                )
            if unexpected:
                raise ModelFileError(
                    f"cannot load {source}: unexpected array(s) "
                    f"{', '.join(map(repr, map(_shown, unexpected)))}; {_NPZ_EXPECTED}"
                )
            for key in ("coef", "intercept"):
                if key not in names:
                    raise ModelFileError(
                        f"cannot load {source}: it has no array '{key}'; {_NPZ_EXPECTED}"
                    )
            arrays = {}
            for key in names:
                try:
                    arrays[key] = npz[key]
                except ValueError as exc:
                    if "allow_pickle" not in str(exc):
                        raise
                    raise UnsafeModelError(
                        f"refused to load {source}: array '{key}' holds Python objects, "
                        "which would need unpickling; store numbers or fixed-width strings "
                        "(e.g. np.asarray(labels, dtype=str))"
                    ) from None
            return arrays

    arrays = _guarded(source, "npz", "save it with numpy.savez", read)
    head: Any = arrays.get("head")
    if head is not None:
        if head.ndim != 0 or head.dtype.kind != "U":
            raise ModelFileError(
                f"cannot load {source}: 'head' must be a 0-d string array "
                f"(np.array('softmax')), got dtype {head.dtype} shape {head.shape}"
            )
        head = str(head[()])
    classes = arrays.get("classes")
    problem = _raw_problem(arrays["coef"], arrays["intercept"], classes, head)
    if problem:
        raise ModelFileError(f"cannot load {source}: {problem}")
    return RawLinearModel(
        coef=arrays["coef"], intercept=arrays["intercept"], classes=classes, head=head
    )
