"""The tabular input stage as ONNX nodes: raw record columns -> the dense feature rows,
exactly as :mod:`edgesparse.runtime.tabular` computes them (issue 20).

Used by :mod:`edgesparse.formats.onnx_featurizers`. One graph input per record column that
some output reads, ``[N]``: ``double`` for numeric columns and numeric categories (an integer
category up to 2^53 is exact in a double; ``1 == 1.0 == True`` as in Python), ``string`` for
string categories. Standard ops plus ``ai.onnx.ml.LabelEncoder`` (string -> category index)::

    numeric:      Where(IsNaN(x) or x == missing, fill, x) * scale + offset      float64
    categorical:  index = LabelEncoder(strings) or ArgMax(x == categories)      (-1: unknown)
                  Where(index == drop, -1, index - (index > drop))            drop
                  Cast(Equal(index, 0..width-1))                             one-hot block
    Concat -> Cast(float)                                          X [N, n_features]

The caller's encoding of cells a typed tensor cannot hold (what
:class:`~edgesparse.runtime.onnx_model.OnnxModel` does with records): a missing (NaN) cell of
a string column is the empty string ``""``; a cell of a type the column has no category of
(``None``, a number in a string column, a string in a numeric one) is :data:`ALIEN_STRING`
or :data:`ALIEN_NUMBER`, which no category equals. Columns fitted with
``handle_unknown="error"`` report unknown categories in the ``unknown`` output (bool
``[N, n_such_columns]``), which the wrapper turns into the numpy runtime's error.
"""

from __future__ import annotations

import math

import numpy as np
from onnx import TensorProto

from edgesparse.errors import InputError
from edgesparse.formats.onnx_graph import Graph
from edgesparse.ir.tabular import TabularColumn, TabularFeaturizer

__all__ = [
    "ALIEN_NUMBER",
    "ALIEN_STRING",
    "UNKNOWN_OUTPUT",
    "check_tabular",
    "input_kinds",
    "tabular_features",
]

ALIEN_STRING = "\x00"
"""What a string column's graph input holds for a cell that is not a string nor NaN."""

ALIEN_NUMBER = math.inf
"""What a numeric column's graph input holds for a cell that is not a number (categories
only: a numeric column's cell must parse as a float)."""

UNKNOWN_OUTPUT = "unknown"
"""Output naming, per ``handle_unknown="error"`` column, the rows whose category is unknown."""

_ML = "ai.onnx.ml"
_EXACT_INT = 1 << 53


def _kind(col: TabularColumn) -> str:
    """How the column's input is fed: ``"number"`` (a numeric column: double, a cell is
    ``float(v)``, None is NaN), ``"double"`` (numeric categories: double, a cell that is not a
    number is :data:`ALIEN_NUMBER`) or ``"string"`` (string categories)."""
    if col.categories is None:
        return "number"
    strings = [c for c in col.categories if isinstance(c, str)]
    return "string" if strings else "double"


def check_tabular(feat: TabularFeaturizer) -> None:
    """Raise :class:`InputError` (one line, naming the column and why) when the graph cannot
    reproduce ``feat`` exactly with ONNX tensors and onnxruntime's operators."""
    input_kinds(feat)


def input_kinds(feat: TabularFeaturizer) -> dict[int, str]:
    """The input columns the outputs read, each with how it is fed (see :func:`_kind`), in
    source order; :class:`InputError` for what cannot be exported."""
    kinds: dict[int, str] = {}
    for i, col in enumerate(feat.columns):
        where = f"tabular featurizer: output column {i} (input {col.source})"
        kind = _kind(col)
        _check_column(col, kind, where)
        if kinds.setdefault(col.source, kind) != kind:
            raise InputError(
                f"{where}: input {col.source} feeds both a {kinds[col.source]} and a {kind} "
                "column, which read its cells differently, and an ONNX input has one type; "
                "write it as .esb"
            )
    return dict(sorted(kinds.items()))


def _check_column(col: TabularColumn, kind: str, where: str) -> None:
    if col.categories is None:
        return
    cats = col.categories
    if any(c is None for c in cats) or (col.impute and col.fill is None):
        raise InputError(
            f"{where}: None as a category is not exported to ONNX: no ONNX tensor holds None; "
            "write it as .esb"
        )
    if kind == "string":
        others = [c for c in cats if not isinstance(c, str) and not _is_nan(c)]
        if others or (col.impute and not isinstance(col.fill, str)):
            raise InputError(
                f"{where}: categories mixing strings and numbers are not exported to ONNX: an "
                "ONNX tensor holds one type; write it as .esb"
            )
        nan_used = any(_is_nan(c) for c in cats) or (col.impute and math.isnan(col.missing))
        if col.impute and not math.isnan(col.missing):
            raise InputError(
                f"{where}: a numeric missing marker ({col.missing!r}) on string categories "
                "is not exported to ONNX: a string tensor holds no number; write it as .esb"
            )
        if (nan_used and "" in cats) or ALIEN_STRING in cats:
            shown = ALIEN_STRING if ALIEN_STRING in cats else ""
            raise InputError(
                f"{where}: the category {shown!r} is not exported to ONNX: the graph's string "
                "input encodes a missing or foreign cell as it; write it as .esb"
            )
        return
    if col.impute and isinstance(col.fill, str):
        raise InputError(
            f"{where}: a string fill value ({col.fill!r}) over numeric categories is not "
            "exported to ONNX: an ONNX tensor holds one type; write it as .esb"
        )
    values = [*cats, *([col.fill] if col.impute else [])]
    for c in values:
        if isinstance(c, int) and abs(c) > _EXACT_INT:
            raise InputError(
                f"{where}: integer category {c} is not exported to ONNX: the graph reads "
                "numeric categories as doubles, exact up to 2**53; write it as .esb"
            )
        if isinstance(c, float) and math.isinf(c):
            raise InputError(
                f"{where}: category {c!r} is not exported to ONNX: the graph's numeric input "
                "encodes a foreign cell as inf; write it as .esb"
            )


def _is_nan(v: object) -> bool:
    return isinstance(v, float) and math.isnan(v)


def tabular_features(
    g: Graph, feat: TabularFeaturizer, names: dict[int, str]
) -> tuple[str, list[str]]:
    """Add the nodes from the record inputs (``names``: source -> input name) to the float64
    feature rows; return their name (``[N, n_features]``) and the names of the per-column
    unknown flags (``handle_unknown="error"`` columns, ``[N, 1]`` bool each)."""
    parts, unknown = [], []
    for col in feat.columns:
        x = names[col.source]
        if col.categories is None:
            parts.append(g.node("Unsqueeze", [_numeric(g, col, x), _axes1(g)]))
            continue
        kind = _kind(col)
        index = _string_index(g, col, x) if kind == "string" else _number_index(g, col, x)
        if col.unknown == "error":
            unknown.append(g.node("Unsqueeze", [g.node("Less", [index, _zero(g)]), _axes1(g)]))
        if col.drop >= 0:
            drop = g.const(f"drop{len(g.initializers)}", np.array(col.drop, dtype=np.int64))
            after = g.node("Cast", [g.node("Greater", [index, drop])], to=TensorProto.INT64)
            shifted = g.node("Sub", [index, after])
            index = g.node("Where", [g.node("Equal", [index, drop]), _minus_one(g), shifted])
        span = g.const(f"span{len(g.initializers)}", np.arange(col.width, dtype=np.int64))
        hot = g.node("Equal", [g.node("Unsqueeze", [index, _axes1(g)]), span])
        parts.append(g.node("Cast", [hot], to=TensorProto.DOUBLE))
    rows = parts[0] if len(parts) == 1 else g.node("Concat", parts, axis=1)
    return rows, unknown


def _numeric(g: Graph, col: TabularColumn, x: str) -> str:
    """Imputed, scaled float64 values of a numeric column."""
    if col.impute:
        x = g.node("Where", [_missing(g, col, x), _f64(g, "fill", col.fill), x])
    if col.scale != 1.0:
        x = g.node("Mul", [x, _f64(g, "scale", col.scale)])
    if col.offset != 0.0:
        x = g.node("Add", [x, _f64(g, "offset", col.offset)])
    return x


def _missing(g: Graph, col: TabularColumn, x: str) -> str:
    if math.isnan(col.missing):
        return g.node("IsNaN", [x])
    return g.node("Equal", [x, _f64(g, "missing", col.missing)])


def _string_index(g: Graph, col: TabularColumn, x: str) -> str:
    """Category index of each string cell (-1: none); ``""`` is a NaN cell."""
    assert col.categories is not None
    table: dict[str, int] = {}
    for i, c in enumerate(col.categories):
        table["" if _is_nan(c) else str(c)] = i
    if col.impute:  # NaN cells (given as "") take the fill value's index
        table[""] = table.get(str(col.fill), -1)
    return g.node(
        "LabelEncoder",
        [x],
        domain=_ML,
        keys_strings=list(table),
        values_int64s=list(table.values()),
        default_int64=-1,
    )


def _number_index(g: Graph, col: TabularColumn, x: str) -> str:
    """Category index of each numeric cell (-1: none): ``x == category`` (NaN: ``IsNaN``)."""
    assert col.categories is not None
    if col.impute:
        fill = float(col.fill)  # type: ignore[arg-type]
        x = g.node("Where", [_missing(g, col, x), _f64(g, "fill", fill), x])
    cats = np.array([float(c) for c in col.categories])  # type: ignore[arg-type]
    column = g.node("Unsqueeze", [x, _axes1(g)])
    hit = g.node("Equal", [column, g.const(f"cats{len(g.initializers)}", cats)])
    if np.isnan(cats).any():
        nan_at = np.isnan(cats)
        is_nan = g.node("IsNaN", [column])
        hit = g.node(
            "Or", [hit, g.node("And", [is_nan, g.const(f"nan{len(g.initializers)}", nan_at)])]
        )
    # A last column that always hits: ArgMax (first maximum) lands there when no category does.
    always = g.node(
        "Expand", [_named(g, "tab_true", np.array([[True]])), g.node("Shape", [column])]
    )
    hit_i = g.node("Cast", [g.node("Concat", [hit, always], axis=1)], to=TensorProto.INT32)
    first = g.node("ArgMax", [hit_i], axis=1, keepdims=0)
    none = g.const(f"ncat{len(g.initializers)}", np.array(len(cats), dtype=np.int64))
    return g.node("Where", [g.node("Equal", [first, none]), _minus_one(g), first])


def _f64(g: Graph, what: str, value: float) -> str:
    return g.const(f"{what}{len(g.initializers)}", np.array(value, dtype=np.float64))


def _named(g: Graph, name: str, value: np.ndarray) -> str:
    if not any(t.name == name for t in g.initializers):
        g.const(name, value)
    return name


def _axes1(g: Graph) -> str:
    return _named(g, "tab_axes1", np.array([1], dtype=np.int64))


def _zero(g: Graph) -> str:
    return _named(g, "tab_zero", np.array(0, dtype=np.int64))


def _minus_one(g: Graph) -> str:
    return _named(g, "tab_minus_one", np.array(-1, dtype=np.int64))
