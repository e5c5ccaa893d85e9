"""Tabular featurizer steps of a pipeline: scikit-learn's ``ColumnTransformer`` (of
``SimpleImputer``, ``OneHotEncoder``, the per-feature scalers, pipelines of them,
``passthrough`` and ``drop``), or leading ``SimpleImputer`` / ``OneHotEncoder`` steps over every
column, become the model's input stage (:class:`~edgesparse.ir.tabular.TabularFeaturizer`).

Within one transformer the steps must come in the order imputer -> one-hot encoder, or
imputer -> scalers; what an artifact cannot carry exactly (``add_indicator``, infrequent
categories, a string or ``None`` ``missing_values``, a scaler after a one-hot encoder inside a
``ColumnTransformer``, a callable step) is refused with one line naming the step and the
parameter. Nothing here imports scikit-learn: the objects are read through their attributes.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from edgesparse.errors import IRError, UnsupportedModelError
from edgesparse.frontends.base import (
    CORRUPT,
    Inner,
    described,
    n_features_in,
    name_of,
    require_fitted,
)
from edgesparse.ir.tabular import MAX_INPUTS, TabularColumn, TabularFeaturizer

__all__ = ["TABULAR_CLASSES", "step_columns", "tabular_stage"]

TABULAR_CLASSES = ("ColumnTransformer", "SimpleImputer", "OneHotEncoder", "FunctionTransformer")
"""The registered classes that start a tabular input stage."""

_IGNORE = ("ignore", "infrequent_if_exist", "warn")


def _refuse(step: Any, where: str, why: str) -> UnsupportedModelError:
    return UnsupportedModelError(f"{name_of(step)} {where}: {why}")


@dataclasses.dataclass
class _Cell:
    """What one transformer has done so far to one input column."""

    source: int
    impute: bool = False
    missing: float = math.nan
    fill: Any = None
    categories: tuple[Any, ...] | None = None
    drop: int = -1
    unknown: str = "error"
    scale: float = 1.0
    offset: float = 0.0

    def column(self) -> TabularColumn:
        fill = self.fill
        if self.categories is None and self.impute:
            fill = _numeric_fill(fill)
        return TabularColumn(
            source=self.source,
            categories=self.categories,
            drop=self.drop,
            unknown=self.unknown,
            impute=self.impute,
            missing=self.missing,
            fill=fill,
            scale=self.scale,
            offset=self.offset,
        )


def _numeric_fill(value: Any) -> float:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UnsupportedModelError(
            f"SimpleImputer: fill value {value!r:.40} of a column read as a number is not a "
            "number (a string fill belongs before a OneHotEncoder)"
        )
    return float(value)


def tabular_stage(
    steps: list[tuple[str, Any]], inner: Inner
) -> tuple[TabularFeaturizer | None, int]:
    """The tabular input stage the leading steps describe, and how many steps they are: a
    ``ColumnTransformer`` (one step), or a run of ``SimpleImputer`` / ``OneHotEncoder`` steps
    over every column. (None, 0) when the pipeline does not start with one."""
    kinds = []
    for _, step in steps:
        entry = inner.featurizer(step)
        if entry is None or entry.name not in TABULAR_CLASSES:
            break
        kinds.append(entry.name)
    if not kinds:
        return None, 0
    step_name, first = steps[0]
    if kinds[0] == "ColumnTransformer":
        return column_transformer(first, inner=inner, step_name=step_name), 1
    if "ColumnTransformer" in kinds:
        i = kinds.index("ColumnTransformer")
        raise _refuse(steps[i][1], f"step {steps[i][0]!r}", "must be the first step")
    run = [s for _, s in steps[: len(kinds)]]
    n = n_features_in(first)
    if n is None:
        raise _refuse(first, f"step {step_name!r}", "is not fitted (no n_features_in_)")
    _check_inputs(first, n)
    names = _names(first, n)
    cols = _chain(run, list(range(n)), inner, f"step {step_name!r}")
    return _featurizer(first, n, cols, names), len(kinds)


def step_columns(step: Any, *args: Any, **kwargs: Any) -> None:
    """The registry's converter for these steps: they are converted only as a pipeline's
    leading steps (:func:`tabular_stage`), never alone."""
    raise UnsupportedModelError(
        f"{name_of(step)} is a pipeline step; compress the pipeline that ends in a linear model"
    )


def column_transformer(ct: Any, *, inner: Inner, step_name: str) -> TabularFeaturizer:
    """A fitted ``ColumnTransformer`` -> its :class:`TabularFeaturizer`, outputs in
    ``get_feature_names_out`` order."""
    where = f"step {step_name!r}"
    require_fitted(ct, "transformers_")
    n = n_features_in(ct)
    if n is None:
        raise _refuse(ct, where, "is not fitted (no n_features_in_)")
    _check_inputs(ct, n)
    names = _names(ct, n)
    transformers = ct.transformers_
    if not isinstance(transformers, list):
        raise _refuse(ct, where, f"transformers_ is {described(transformers)}; {CORRUPT}")
    cols: list[TabularColumn] = []
    for item in transformers:
        if not (isinstance(item, tuple) and len(item) == 3 and isinstance(item[0], str)):
            raise _refuse(ct, where, f"a transformers_ entry is {described(item)}; {CORRUPT}")
        name, trans, spec = item
        at = f"{where}, transformer {name!r}"
        if isinstance(trans, str) and trans == "drop":
            continue
        sources = _selection(ct, name, spec, n, names, at)
        if not sources:
            continue
        if isinstance(trans, str) and trans == "passthrough":
            cols.extend(_Cell(source=s).column() for s in sources)
            continue
        if isinstance(trans, str):
            raise _refuse(ct, at, f"{trans!r:.40} is not a transformer, 'drop' or 'passthrough'")
        run = _steps(trans, inner)
        cols.extend(_chain(run, sources, inner, at))
    if not cols:
        raise _refuse(ct, where, "outputs no columns")
    return _featurizer(ct, n, cols, names)


def _featurizer(
    step: Any, n: int, cols: list[TabularColumn], names: tuple[str, ...] | None
) -> TabularFeaturizer:
    try:
        return TabularFeaturizer(n_inputs=n, columns=tuple(cols), names=names)
    except IRError as exc:
        raise UnsupportedModelError(f"{name_of(step)}: {exc}") from None


def _check_inputs(step: Any, n: int) -> None:
    if n > MAX_INPUTS:
        raise _refuse(step, "", f"reads {n} columns, more than the {MAX_INPUTS} supported")


def _names(step: Any, n: int) -> tuple[str, ...] | None:
    names = getattr(step, "feature_names_in_", None)
    if names is None:
        return None
    if not isinstance(names, np.ndarray) or names.shape != (n,):
        raise _refuse(step, "", f"feature_names_in_ is {described(names)}; {CORRUPT}")
    out = names.tolist()
    if not all(isinstance(s, str) for s in out) or len(set(out)) != n:
        raise _refuse(step, "", f"feature_names_in_ must be {n} distinct strings; {CORRUPT}")
    return tuple(out)


def _steps(trans: Any, inner: Inner) -> list[Any]:
    """A transformer as the list of steps it runs (a pipeline flattened)."""
    if inner.is_pipeline(trans) or type(trans).__name__ == "Pipeline":
        out: list[Any] = []
        for item in getattr(trans, "steps", None) or []:
            if not (isinstance(item, (tuple, list)) and len(item) == 2):
                raise _refuse(trans, "", f"a step is {described(item)}; {CORRUPT}")
            out.extend(_steps(item[1], inner))
        return out
    if trans is None or (isinstance(trans, str) and trans == "passthrough"):
        return []
    return [trans]


def _selection(
    ct: Any, name: str, spec: Any, n: int, names: tuple[str, ...] | None, at: str
) -> list[int]:
    """The input positions a transformer reads, as scikit-learn resolved them."""
    if callable(spec):
        resolved = getattr(ct, "_transformer_to_input_indices", {}).get(name)
        if resolved is None:
            raise _refuse(ct, at, "selects its columns with a callable whose choice is not kept")
        spec = list(resolved)
    if isinstance(spec, (str, int, np.integer)) and not isinstance(spec, bool):
        raise _refuse(
            ct, at, f"selects the single column {spec!r:.40} as a 1-D vector; select it as a list"
        )
    if isinstance(spec, slice):
        return _slice(ct, spec, n, names, at)
    items = spec.tolist() if isinstance(spec, np.ndarray) else spec
    if not isinstance(items, (list, tuple)):
        raise _refuse(ct, at, f"column selection is {described(spec)}; {CORRUPT}")
    if items and all(isinstance(v, bool) for v in items):
        if len(items) != n:
            raise _refuse(ct, at, f"a boolean column mask of {len(items)} for {n} columns")
        return [i for i, v in enumerate(items) if v]
    return [_position(ct, v, n, names, at) for v in items]


def _position(ct: Any, v: Any, n: int, names: tuple[str, ...] | None, at: str) -> int:
    if isinstance(v, str):
        if names is None or v not in names:
            raise _refuse(ct, at, f"selects column {v!r:.40}, which is not a fitted column name")
        return names.index(v)
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool) and -n <= v < n:
        return int(v) % n
    raise _refuse(ct, at, f"selects column {described(v)}, not a position in [0, {n})")


def _slice(ct: Any, spec: slice, n: int, names: tuple[str, ...] | None, at: str) -> list[int]:
    if isinstance(spec.start, str) or isinstance(spec.stop, str):
        lo = 0 if spec.start is None else _position(ct, spec.start, n, names, at)
        hi = n - 1 if spec.stop is None else _position(ct, spec.stop, n, names, at)
        return list(range(lo, hi + 1))  # a slice of names includes its end, as pandas' loc
    return list(range(n))[spec]


def _chain(run: list[Any], sources: list[int], inner: Inner, at: str) -> list[TabularColumn]:
    """One transformer's steps over its input columns -> their output columns, in order."""
    cells = [_Cell(source=s) for s in sources]
    state = "start"  # start -> imputed -> scaled | encoded
    for step in run:
        kind = type(step).__name__
        entry = inner.featurizer(step)
        where = f"{at} ({name_of(step)})"
        n = n_features_in(step)
        if n is not None and n != len(cells) and state != "encoded":
            raise _refuse(step, at, f"reads {n} columns, but it is given {len(cells)}")
        if entry is not None and entry.name == "FunctionTransformer":
            _identity(step, where)  # the identity (a ColumnTransformer's remainder is one)
        elif entry is not None and entry.name == "SimpleImputer":
            if state != "start":
                raise _refuse(step, at, "must come first in its transformer")
            _impute(step, cells, where)
            state = "imputed"
        elif entry is not None and entry.name == "OneHotEncoder":
            if state not in ("start", "imputed"):
                raise _refuse(step, at, "must come before any scaler and after an imputer only")
            _encode(step, cells, where)
            state = "encoded"
        elif inner.scaler(step) is not None and state != "encoded":
            _scale(step, cells, inner)
            state = "scaled"
        elif inner.scaler(step) is not None:
            raise _refuse(
                step, at, "after a OneHotEncoder inside a ColumnTransformer is not supported"
            )
        else:
            raise _refuse(
                step,
                at,
                f"({kind}) is not supported in a tabular input stage; supported: SimpleImputer, "
                "OneHotEncoder, the scalers, 'passthrough' and 'drop'",
            )
    return [c.column() for c in cells]


def _identity(step: Any, where: str) -> None:
    for attr in ("func", "inverse_func"):
        if getattr(step, attr, None) is not None:
            raise _refuse(
                step, where, f"{attr} is set; only the identity FunctionTransformer is supported"
            )


def _impute(step: Any, cells: list[_Cell], where: str) -> None:
    require_fitted(step, "statistics_")
    if getattr(step, "add_indicator", False):
        raise _refuse(step, where, "add_indicator=True is not supported; refit without it")
    missing = getattr(step, "missing_values", math.nan)
    if isinstance(missing, np.generic):
        missing = missing.item()
    if isinstance(missing, bool) or not isinstance(missing, (int, float)):
        raise _refuse(
            step,
            where,
            f"missing_values={missing!r:.40} is not supported (only NaN or a number); refit "
            "with missing_values=np.nan",
        )
    strategy = getattr(step, "strategy", None)
    if strategy not in ("mean", "median", "most_frequent", "constant"):
        raise _refuse(step, where, f"strategy {strategy!r:.40} is not supported")
    stats = step.statistics_
    if not isinstance(stats, np.ndarray) or stats.shape != (len(cells),):
        raise _refuse(step, where, f"statistics_ is {described(stats)}; {CORRUPT}")
    for cell, value in zip(cells, stats.tolist(), strict=True):
        if isinstance(value, float) and math.isnan(value):
            raise _refuse(
                step,
                where,
                "a column had no value at fit time, and the imputer drops it from its output; "
                "refit with keep_empty_features=True or without that column",
            )
        cell.impute, cell.missing, cell.fill = True, float(missing), value


def _encode(step: Any, cells: list[_Cell], where: str) -> None:
    require_fitted(step, "categories_")
    if getattr(step, "min_frequency", None) is not None or (
        getattr(step, "max_categories", None) is not None
    ):
        raise _refuse(
            step, where, "infrequent categories (min_frequency / max_categories) are not supported"
        )
    unknown = getattr(step, "handle_unknown", "error")
    if unknown not in ("error", *_IGNORE):
        raise _refuse(step, where, f"handle_unknown={unknown!r:.40} is not supported")
    cats = step.categories_
    if not isinstance(cats, list) or len(cats) != len(cells):
        raise _refuse(step, where, f"categories_ is {described(cats)}; {CORRUPT}")
    drops = getattr(step, "drop_idx_", None)
    if drops is not None and (not isinstance(drops, np.ndarray) or drops.shape != (len(cells),)):
        raise _refuse(step, where, f"drop_idx_ is {described(drops)}; {CORRUPT}")
    for j, (cell, values) in enumerate(zip(cells, cats, strict=True)):
        if not isinstance(values, np.ndarray) or values.ndim != 1:
            raise _refuse(step, where, f"categories_[{j}] is {described(values)}; {CORRUPT}")
        d = None if drops is None else drops[j]
        cell.categories = tuple(values.tolist())
        cell.drop = -1 if d is None else int(d)
        cell.unknown = "error" if unknown == "error" else "ignore"


def _scale(step: Any, cells: list[_Cell], inner: Inner) -> None:
    entry = inner.scaler(step)
    assert entry is not None
    require_fitted(step, *entry.fitted)
    affine = entry.convert(step, len(cells))
    for cell, a, o in zip(cells, affine.scale.tolist(), affine.offset.tolist(), strict=True):
        cell.scale, cell.offset = cell.scale * a, cell.offset * a + o
