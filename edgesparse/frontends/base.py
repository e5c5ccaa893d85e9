"""What every frontend shares: the registry entry, what a linear converter returns, and the
checks of hostile attributes that every converter makes before using a value.

Nothing here imports scikit-learn, scipy or Surprise: objects are read through their attributes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, Literal

import numpy as np

from edgesparse.errors import UnsupportedModelError
from edgesparse.ir.linear import FeatureStats
from edgesparse.ir.tabular import TabularFeaturizer
from edgesparse.ir.text import TextFeaturizer

__all__ = [
    "CORRUPT",
    "MAX_FEATURES",
    "Frontend",
    "Inner",
    "Kind",
    "LinearParts",
    "described",
    "n_features_in",
    "name_of",
    "require_fitted",
    "shown",
]

Kind = Literal["linear", "knn", "factors", "scaler", "featurizer"]
"""``linear``: a model that becomes a LinearIR; ``knn``: a KnnIR; ``factors``: a FactorIR;
``scaler``: a pipeline step
folded into the linear model after it; ``featurizer``: a text step that becomes the model's
input stage."""


@dataclasses.dataclass(frozen=True)
class Frontend:
    """One registry entry: the class (by module and name, so nothing is imported to name it)
    and how an instance of it is converted.

    ``convert`` takes the object and returns :class:`LinearParts` (``linear``), a
    :class:`~edgesparse.ir.KnnIR` (``knn``), the scaler's per-feature affine (``scaler``, see
    :mod:`edgesparse.frontends.pipelines`) or, given the text stage so far and ``step_name=``,
    the :class:`~edgesparse.ir.text.TextFeaturizer` with this step added (``featurizer``, see
    :mod:`edgesparse.frontends.sklearn_text`). ``nested``: the object holds other objects (a
    one-vs-rest, a pipeline), and ``convert`` takes ``inner=`` (an :class:`Inner`) to convert
    them. ``fitted``: attributes a fitted instance has (checked before ``convert`` for scalers).
    """

    module: str
    name: str
    kind: Kind
    convert: Callable[..., Any]
    nested: bool = False
    fitted: tuple[str, ...] = ()

    @property
    def key(self) -> tuple[str, str]:
        """``(module, class name)``, as a pickle names the class."""
        return (self.module, self.name)


@dataclasses.dataclass
class LinearParts:
    """What a linear converter returns: float64 canonical CSR weights over the *raw* input
    features, bias, head and labels. The registry adds provenance and builds the validated
    :class:`~edgesparse.ir.LinearIR`; the pipeline converter folds scalers into it in place."""

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
    featurizer: TextFeaturizer | TabularFeaturizer | None = None

    @property
    def n_outputs(self) -> int:
        """Number of weight rows."""
        return int(self.indptr.size - 1)

    def row_ids(self) -> np.ndarray:
        """Row index of every stored weight."""
        return np.repeat(np.arange(self.n_outputs, dtype=np.int64), np.diff(self.indptr))


@dataclasses.dataclass(frozen=True)
class Inner:
    """The registry as the converters of containers (one-vs-rest, multi-output, pipelines) see
    it: what is inside a container is converted by whatever frontend is registered for it.
    (Passed in rather than imported, so that the registry can name the converters.)"""

    convert: Callable[[Any], LinearParts]
    """Any registered linear model -> its parts (refuses everything else)."""
    scaler: Callable[[Any], Frontend | None]
    """The scaler entry for a pipeline step, or None when the step is not a known scaler."""
    is_pipeline: Callable[[Any], bool]
    """Whether an object is converted as a pipeline (nested pipelines are flattened)."""
    preprocessors: Callable[[], list[str]]
    """Names of the registered scalers, for messages."""
    featurizer: Callable[[Any], Frontend | None] = lambda step: None
    """The featurizer entry for a pipeline step (a text vectorizer), or None."""


# -- checks of hostile attributes ------------------------------------------------------------
CORRUPT = "the model is corrupt or crafted: fit it again and save it again"
"""The end of a message about an attribute no fitted model holds."""

MAX_FEATURES = 0x7FFFFFFF
"""Most inputs a model can have (the .esb header's limit)."""


def name_of(obj: Any) -> str:
    """The class name of ``obj``, as messages show it."""
    return type(obj).__name__


def shown(text: str) -> str:
    """``text`` when it is short and printable, else a short repr (a file chose it)."""
    return text if text.isprintable() and len(text) <= 40 else repr(text[:40])


def described(value: Any) -> str:
    """A short description of a hostile attribute's value (never its full text)."""
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape} and dtype {value.dtype}"
    if isinstance(value, (bool, np.bool_, int, float, np.integer, np.floating)):
        text = repr(value) if not isinstance(value, int) or value.bit_length() < 64 else "huge"
        return f"{shown(text)} ({type(value).__name__})"
    return f"a {shown(type(value).__name__)}"


def require_fitted(est: Any, *attributes: str) -> None:
    """Refuse ``est`` unless every one of ``attributes`` is set (it is fitted)."""
    missing = [a for a in attributes if getattr(est, a, None) is None]
    if missing:
        raise UnsupportedModelError(
            f"{name_of(est)} is not fitted (it has no {', '.join(missing)}); "
            "fit it before compressing"
        )


def n_features_in(est: Any) -> int | None:
    """``est.n_features_in_`` as an int (None when absent), refusing anything else."""
    n = getattr(est, "n_features_in_", None)
    if n is None:
        return None
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)) or n < 1:
        raise UnsupportedModelError(
            f"{name_of(est)}: n_features_in_ must be a positive whole number, but it is "
            f"{described(n)}; {CORRUPT}"
        )
    if n > MAX_FEATURES:  # and any message that printed it would fail (int-to-str limit)
        raise UnsupportedModelError(
            f"{name_of(est)}: n_features_in_ is {described(n)}, more than the {MAX_FEATURES} "
            f"inputs a model can have; {CORRUPT}"
        )
    return int(n)
