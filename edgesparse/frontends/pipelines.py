"""The pipeline frontend: scikit-learn scalers folded into the linear model that ends a
``Pipeline``.

Every scaler is a per-feature affine ``z = x*a + o`` (StandardScaler, MaxAbsScaler,
MinMaxScaler, RobustScaler; one ``affine_*`` function each, registered in
:mod:`edgesparse.frontends`). It is folded into the float64 weights exactly (``W' = W*a``,
``b' = b + W@o``; weights that were zero stay zero); what each scaler knows about its input's
distribution (centre, spread) becomes the parts' ``stats``, so that int8 quantization can work
in the standardized domain instead of on the folded weights (ARCHITECTURE v2).

A text pipeline starts with its featurizer steps (``HashingVectorizer``, then optionally a
``TfidfTransformer``; :mod:`edgesparse.frontends.sklearn_text`): they become the model's input
stage (``LinearParts.featurizer``), and any scaler after them is folded as above. A tabular
pipeline starts with a ``ColumnTransformer`` or with ``SimpleImputer`` / ``OneHotEncoder``
steps (:mod:`edgesparse.frontends.sklearn_tabular`), which become its input stage the same way.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from edgesparse.errors import IRError, UnsupportedModelError
from edgesparse.frontends import sklearn_tabular
from edgesparse.frontends.base import (
    CORRUPT,
    Inner,
    LinearParts,
    described,
    n_features_in,
    name_of,
    require_fitted,
)
from edgesparse.ir.linear import FeatureStats
from edgesparse.ir.tabular import TabularFeaturizer
from edgesparse.ir.text import TextFeaturizer

__all__ = [
    "Affine",
    "affine_maxabs",
    "affine_minmax",
    "affine_robust",
    "affine_standard",
    "pipeline",
]


def _flag(est: Any, attr: str, default: bool) -> bool:
    """A boolean hyper-parameter (``with_mean``, ``clip``...), refusing anything else."""
    value = getattr(est, attr, default)
    if not isinstance(value, (bool, np.bool_)):
        raise UnsupportedModelError(
            f"{name_of(est)}: {attr} must be True or False, but it is {described(value)}; {CORRUPT}"
        )
    return bool(value)


@dataclasses.dataclass
class Affine:
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
            f"{name_of(step)}: {attr} must be {n} {what} (one per feature of the model it "
            f"feeds), but it is {described(value)}; {CORRUPT}"
        )
    return np.asarray(value, dtype=np.float64)


def _vec(value: np.ndarray | None, n: int, default: float) -> np.ndarray:
    return np.full(n, default) if value is None else value.copy()


def affine_standard(step: Any, n: int) -> Affine:
    """StandardScaler: ``z = (x - mean) / scale``, for each of with_mean / with_std on or off."""
    mean_ = _stat(step, "mean_", n)
    mean = mean_ if _flag(step, "with_mean", True) else None
    scale = _stat(step, "scale_", n, nonzero=True) if _flag(step, "with_std", True) else None
    a = 1.0 / _vec(scale, n, 1.0)
    var = _stat(step, "var_", n)
    if var is not None and bool(np.any(var < 0)):
        raise UnsupportedModelError(f"{name_of(step)}: var_ has negative entries; {CORRUPT}")
    return Affine(
        scale=a,
        offset=-_vec(mean, n, 0.0) * a,
        spread=None if var is None else np.sqrt(var),
        center=None if mean_ is None else mean_,
    )


def affine_maxabs(step: Any, n: int) -> Affine:
    """MaxAbsScaler: ``z = x / scale`` (scale = max|x|, 1 where that is 0); the centre is
    unknown."""
    scale = _vec(_stat(step, "scale_", n, nonzero=True), n, 1.0)
    return Affine(scale=1.0 / scale, offset=np.zeros(n), spread=scale / 2.0, center=None)


def affine_minmax(step: Any, n: int) -> Affine:
    """MinMaxScaler: ``z = x * scale + min``."""
    if _flag(step, "clip", False):
        raise UnsupportedModelError(
            "MinMaxScaler(clip=True) cannot be folded into a linear model (clipping is not "
            "linear); refit the pipeline with clip=False"
        )
    lo, hi = _stat(step, "data_min_", n), _stat(step, "data_max_", n)
    known = lo is not None and hi is not None
    return Affine(
        scale=_vec(_stat(step, "scale_", n), n, 1.0),
        offset=_vec(_stat(step, "min_", n), n, 0.0),
        # The spread of a uniform variable over [min, max] is (max - min) / sqrt(12).
        spread=(_vec(hi, n, 0.0) - _vec(lo, n, 0.0)) / np.sqrt(12.0) if known else None,
        center=(_vec(hi, n, 0.0) + _vec(lo, n, 0.0)) / 2.0 if known else None,
    )


def affine_robust(step: Any, n: int) -> Affine:
    """RobustScaler: ``z = (x - center) / scale``, for each of with_centering / with_scaling
    on or off."""
    center = _stat(step, "center_", n) if _flag(step, "with_centering", True) else None
    scale = _stat(step, "scale_", n, nonzero=True) if _flag(step, "with_scaling", True) else None
    a = 1.0 / _vec(scale, n, 1.0)
    return Affine(
        scale=a,
        offset=-_vec(center, n, 0.0) * a,
        spread=None if scale is None else _vec(scale, n, 1.0),
        center=None if center is None else _vec(center, n, 0.0),
    )


def _fold(lin: LinearParts, affine: Affine) -> None:
    """``W @ (x*a + o) + b`` as ``(W*a) @ x + (b + W @ o)``, in float64."""
    contrib = lin.values * affine.offset[lin.indices]
    folded = np.bincount(lin.row_ids(), weights=contrib, minlength=lin.n_outputs)
    lin.bias = lin.bias + folded.astype(np.float64, copy=False)
    lin.values = lin.values * affine.scale[lin.indices]


def _raw_stats(affines: list[Affine], source: str) -> FeatureStats | None:
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


def _flat_steps(pipe: Any, inner: Inner) -> list[tuple[str, Any]]:
    steps = getattr(pipe, "steps", None)
    if steps is None or (isinstance(steps, (list, tuple)) and not steps):
        raise UnsupportedModelError(f"{name_of(pipe)} has no steps")
    if not isinstance(steps, (list, tuple)) or not all(
        isinstance(s, (list, tuple)) and len(s) == 2 and isinstance(s[0], str) for s in steps
    ):
        raise UnsupportedModelError(
            f"{name_of(pipe)}: steps must be a list of (name, step) pairs, but it is "
            f"{described(steps)}; {CORRUPT}"
        )
    out: list[tuple[str, Any]] = []
    for step_name, step in steps:
        if inner.is_pipeline(step):
            out.extend(_flat_steps(step, inner))
        else:
            out.append((str(step_name), step))
    return out


def _is_passthrough(step: Any) -> bool:
    return step is None or (isinstance(step, str) and step == "passthrough")


def pipeline(pipe: Any, *, inner: Inner) -> LinearParts:
    """Pipeline: its scalers (each a per-feature affine) folded into the linear model that
    ends it, in float64; what they know of the raw input becomes ``stats``."""
    name = name_of(pipe)
    steps = [(n, s) for n, s in _flat_steps(pipe, inner) if not _is_passthrough(s)]
    if not steps:
        raise UnsupportedModelError(f"{name} has only 'passthrough' steps; nothing to convert")
    final_name, final = steps[-1]
    if inner.scaler(final) is not None:
        raise UnsupportedModelError(
            f"{name} ends in step {final_name!r} ({name_of(final)}), not a model; "
            "edgesparse converts pipelines that end in a linear model"
        )
    lin = inner.convert(final)
    featurizer, n_text = _input_stage(steps[:-1], inner)
    scalers = steps[n_text:-1]
    affines: list[Affine] = []
    for step_name, step in reversed(scalers):
        entry = inner.scaler(step)
        stage = inner.featurizer(step)
        if entry is None and stage is not None and stage.name in sklearn_tabular.TABULAR_CLASSES:
            raise UnsupportedModelError(
                f"{name} step {step_name!r} ({name_of(step)}) comes after a step that is not "
                "an imputer or encoder; a tabular pipeline starts with its ColumnTransformer "
                "(or its SimpleImputer / OneHotEncoder steps)"
            )
        if entry is None and stage is not None:
            raise UnsupportedModelError(
                f"{name} step {step_name!r} ({name_of(step)}) is a text step after a scaler; "
                "a text pipeline starts with its vectorizer (and TfidfTransformer)"
            )
        if entry is None:
            raise UnsupportedModelError(
                f"{name} step {step_name!r} ({name_of(step)}) is not supported; edgesparse "
                f"folds only {', '.join(inner.preprocessors())} (and 'passthrough') "
                "into the linear model that ends the pipeline"
            )
        require_fitted(step, *entry.fitted)
        n = n_features_in(step)
        if n is not None and n != lin.n_features:
            raise UnsupportedModelError(
                f"{name} step {step_name!r} ({name_of(step)}) outputs {n} features but the "
                f"next step expects {lin.n_features}"
            )
        affine = entry.convert(step, lin.n_features)
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
    names = [name_of(s) for _, s in steps[:-1]]
    lin.source = f"{name}({', '.join([*names, lin.source])})"
    lin.stats = _raw_stats(affines, ", ".join(name_of(s) for _, s in scalers))
    if featurizer is not None:
        if featurizer.n_features != lin.n_features:
            raise UnsupportedModelError(
                f"{name}: the input steps make {featurizer.n_features} features but the model "
                f"after them expects {lin.n_features}"
            )
        lin.featurizer = featurizer
    return lin


def _input_stage(
    steps: list[tuple[str, Any]], inner: Inner
) -> tuple[TextFeaturizer | TabularFeaturizer | None, int]:
    """The input stage the leading steps describe (tabular or text), and how many steps."""
    tabular, count = sklearn_tabular.tabular_stage(steps, inner)
    if tabular is not None:
        return tabular, count
    return _text_stage(steps, inner)


def _text_stage(steps: list[tuple[str, Any]], inner: Inner) -> tuple[TextFeaturizer | None, int]:
    """The input stage the leading text steps describe, and how many steps they are."""
    featurizer: TextFeaturizer | None = None
    count = 0
    for step_name, step in steps:
        entry = inner.featurizer(step)
        if entry is None:
            break
        featurizer = entry.convert(step, featurizer, step_name=step_name)
        count += 1
    return featurizer, count
