"""The tabular input stage: how raw records (rows of mixed-type cells) become the feature
vector a :class:`LinearIR` sees.

:class:`TabularFeaturizer` describes a fitted scikit-learn ``ColumnTransformer`` whose
transformers are ``SimpleImputer``, ``OneHotEncoder``, the per-feature scalers and pipelines of
them (or a pipeline that starts with a ``SimpleImputer`` / ``OneHotEncoder`` over every column).
It is data only, frozen and validated on construction; the numpy runtime runs it
(:mod:`edgesparse.runtime.tabular`).

A record has ``n_inputs`` cells, addressed by position (and, when ``names`` is set, by the
column names the pipeline was fitted on). The stage is a tuple of :class:`TabularColumn`, in
output order (scikit-learn's ``get_feature_names_out`` order: transformer by transformer, the
remainder last, each transformer's columns in its selection order, a one-hot column's
categories in ``categories_`` order). Each reads one input cell ``v`` (``source``); one input
may feed several.

Numeric contract (scikit-learn 1.x, ``sklearn/impute/_base.py``,
``sklearn/preprocessing/_encoders.py``, ``sklearn/compose/_column_transformer.py``):

*numeric* column (``categories is None``), one output:
    1. ``x = float(v)`` (``None`` is NaN, ``bool`` is 0/1, a ``str`` is parsed as a float
       literal, as numpy's ``astype(float)`` does);
    2. with an imputer (``impute``): when ``x`` is missing, i.e. NaN when ``missing`` is NaN,
       else ``x == missing``, ``x = fill``;
    3. the output is ``x * scale + offset`` (the scalers after the imputer, composed; the
       identity without one), in float64.
*categorical* column (``categories`` a tuple), ``len(categories) - (drop >= 0)`` outputs:
    1. with an imputer: when ``v`` is missing, i.e. a float NaN when ``missing`` is NaN
       (``None`` is not missing: scikit-learn's object-dtype mask is ``v != v``), else
       ``v == missing``, ``v = fill``;
    2. ``v`` is looked up among ``categories`` by Python equality (``1 == 1.0 == True``; a
       NaN category matches a NaN; ``None`` matches ``None``; ``"1"`` does not match ``1``);
    3. the outputs are the one-hot row of that category, with the category at index ``drop``
       (when ``drop >= 0``) left out. A value in no category is an error when ``unknown`` is
       ``"error"``, and gives all zeros when it is ``"ignore"`` (scikit-learn's ``ignore``,
       and ``infrequent_if_exist`` / ``warn`` when no category was found infrequent).

scikit-learn computes in float64 (a ``OneHotEncoder`` with ``dtype=float32`` writes exact 0/1);
the runtime computes in float64 and the linear layer then reads the values in its own
arithmetic.

Imports only numpy and the standard library: the on-device runtime uses this module.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from edgesparse.errors import IRError

__all__ = [
    "MAX_CATEGORIES",
    "MAX_INPUTS",
    "UNKNOWN",
    "Category",
    "TabularColumn",
    "TabularFeaturizer",
    "category_key",
]

Category = str | int | float | None
"""A category (or a categorical fill value): a string, an integer, a float (NaN included) or
``None``."""

UNKNOWN = ("error", "ignore")
"""What an unseen category does, in the order the ``.esb`` format numbers them."""

MAX_INPUTS = 1 << 20
"""Most input columns a record may have (bounds the work per record)."""

MAX_CATEGORIES = 1 << 24
"""Most categories one column may have."""

_INT64 = (-(1 << 63), (1 << 63) - 1)


def category_key(value: Any) -> Any:
    """The dictionary key a category or cell is looked up by: Python equality, except that
    every NaN is one key (``float('nan') != float('nan')``)."""
    if isinstance(value, float) and math.isnan(value):
        return _NAN
    return value


class _NanKey:
    """The one key of every NaN."""

    def __repr__(self) -> str:
        return "nan"


_NAN = _NanKey()


def _check_category(name: str, value: Any) -> Category:
    """``value`` as a :data:`Category` (numpy scalars become Python ones), else IRError."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        if not _INT64[0] <= value <= _INT64[1]:
            raise IRError(f"{name}: integer {value} does not fit in 64 bits")
        return value
    if isinstance(value, float):
        return value
    raise IRError(f"{name}: {type(value).__name__} is not a str, int, float or None")


@dataclasses.dataclass(frozen=True, eq=False)
class TabularColumn:
    """One input cell's outputs: numeric (``categories is None``, one output) or one-hot
    categorical, as the module's contract says."""

    source: int
    categories: tuple[Category, ...] | None = None
    drop: int = -1
    unknown: str = "error"
    impute: bool = False
    missing: float = math.nan
    fill: Category = None
    scale: float = 1.0
    offset: float = 0.0

    def __post_init__(self) -> None:
        src = self.source
        if isinstance(src, bool) or not isinstance(src, (int, np.integer)) or src < 0:
            raise IRError(f"column.source: must be a non-negative whole number, got {src!r}")
        object.__setattr__(self, "source", int(src))
        if not isinstance(self.impute, (bool, np.bool_)):
            raise IRError("column.impute: must be True or False")
        object.__setattr__(self, "impute", bool(self.impute))
        missing = self.missing
        if isinstance(missing, bool) or not isinstance(missing, (int, float, np.number)):
            raise IRError(f"column.missing: must be a number or NaN, got {missing!r}")
        if math.isinf(float(missing)):
            raise IRError("column.missing: must be NaN or a finite number")
        object.__setattr__(self, "missing", float(missing))
        if self.categories is None:
            self._check_numeric()
        else:
            self._check_categorical()

    def _check_numeric(self) -> None:
        for name in ("scale", "offset"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float, np.number)):
                raise IRError(f"column.{name}: must be a number")
            if not math.isfinite(float(v)):
                raise IRError(f"column.{name}: {v!r} is not finite")
            object.__setattr__(self, name, float(v))
        fill = self.fill
        if self.impute:
            if isinstance(fill, bool) or not isinstance(fill, (int, float, np.number)):
                raise IRError("column.fill: a numeric column's fill value must be a number")
            if not math.isfinite(float(fill)):
                raise IRError(f"column.fill: {fill!r} is not finite")
            object.__setattr__(self, "fill", float(fill))
        elif fill is not None:
            raise IRError("column.fill: only an imputed column has a fill value")
        if self.drop != -1 or self.unknown != "error":
            raise IRError("column: a numeric column has no drop and no unknown handling")

    def _check_categorical(self) -> None:
        cats = self.categories
        if not isinstance(cats, (tuple, list)) or not 1 <= len(cats) <= MAX_CATEGORIES:
            raise IRError(f"column.categories: must be 1 to {MAX_CATEGORIES} categories")
        checked = tuple(_check_category("column.categories", c) for c in cats)
        if len({category_key(c) for c in checked}) != len(checked):
            raise IRError("column.categories: two categories are equal")
        object.__setattr__(self, "categories", checked)
        drop = self.drop
        if isinstance(drop, bool) or not isinstance(drop, (int, np.integer)):
            raise IRError("column.drop: must be a whole number")
        if not -1 <= int(drop) < len(checked) or (drop >= 0 and len(checked) < 2):
            raise IRError(f"column.drop: {drop} is not -1 or a category index of several")
        object.__setattr__(self, "drop", int(drop))
        if self.unknown not in UNKNOWN:
            raise IRError(f"column.unknown: {self.unknown!r} is not one of 'error', 'ignore'")
        object.__setattr__(self, "unknown", str(self.unknown))
        if self.impute:
            object.__setattr__(self, "fill", _check_category("column.fill", self.fill))
        elif self.fill is not None:
            raise IRError("column.fill: only an imputed column has a fill value")
        if self.scale != 1.0 or self.offset != 0.0:
            raise IRError("column: a categorical column has no scale or offset")

    @property
    def width(self) -> int:
        """Number of output features."""
        if self.categories is None:
            return 1
        return len(self.categories) - (self.drop >= 0)


@dataclasses.dataclass(frozen=True, eq=False)
class TabularFeaturizer:
    """A fitted ``ColumnTransformer`` (or leading imputer / one-hot steps): records of
    ``n_inputs`` cells -> ``n_features`` outputs, as the module docstring's contract says.

    ``names``: the column names the pipeline was fitted on (``feature_names_in_``), distinct
    strings, one per input; None when it was fitted on an array (records are then read by
    position only).
    """

    n_inputs: int
    columns: tuple[TabularColumn, ...]
    names: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        n = self.n_inputs
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
            raise IRError("featurizer.n_inputs: must be a whole number")
        if not 1 <= int(n) <= MAX_INPUTS:
            raise IRError(f"featurizer.n_inputs: {n} is out of range [1, {MAX_INPUTS}]")
        object.__setattr__(self, "n_inputs", int(n))
        cols = self.columns
        if not isinstance(cols, (tuple, list)) or not cols:
            raise IRError("featurizer.columns: needs at least one output column")
        if not all(isinstance(c, TabularColumn) for c in cols):
            raise IRError("featurizer.columns: every column must be a TabularColumn")
        for i, c in enumerate(cols):
            if c.source >= self.n_inputs:
                raise IRError(
                    f"featurizer.columns: column {i} reads input {c.source}, but records have "
                    f"{self.n_inputs} cells"
                )
        object.__setattr__(self, "columns", tuple(cols))
        if self.n_features > 0x7FFFFFFF:
            raise IRError("featurizer: produces more features than a model can have")
        if self.names is not None:
            names = self.names
            if not isinstance(names, (tuple, list)) or not all(isinstance(s, str) for s in names):
                raise IRError("featurizer.names: must be a tuple of strings")
            if len(names) != self.n_inputs or len(set(names)) != len(names):
                raise IRError(
                    f"featurizer.names: must be {self.n_inputs} distinct names (one per input)"
                )
            object.__setattr__(self, "names", tuple(names))

    @property
    def n_features(self) -> int:
        """Number of output features (the linear model's inputs)."""
        return sum(c.width for c in self.columns)

    def describe(self) -> dict[str, Any]:
        """A JSON-serializable summary (what ``edgesparse inspect`` shows)."""
        cat = [c for c in self.columns if c.categories is not None]
        num = [c for c in self.columns if c.categories is None]
        return {
            "kind": "ColumnTransformer",
            "n_inputs": self.n_inputs,
            "named": self.names is not None,
            "n_features": self.n_features,
            "numeric": len(num),
            "imputed": sum(c.impute for c in self.columns),
            "scaled": sum(c.scale != 1.0 or c.offset != 0.0 for c in num),
            "categorical": len(cat),
            "categories": sum(len(c.categories or ()) for c in cat),
            "unknown": sorted({c.unknown for c in cat}),
        }
