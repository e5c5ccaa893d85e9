"""The tabular input stage in numpy: raw records -> the feature rows a linear model reads.

Runs a :class:`~edgesparse.ir.tabular.TabularFeaturizer` exactly as its contract says
(:mod:`edgesparse.ir.tabular`). Records may be a list of dicts (by column name), a list of
lists or tuples (by position), a 2-D numpy array of any dtype (object included), a numpy
structured array (by field name) or anything with ``columns`` and ``to_numpy()`` (a pandas
DataFrame, by name). The rows come out dense (float64), or as CSR rows when the one-hot
outputs make them wide and mostly zero.

Imports only numpy and the standard library: this is what runs on the device.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from edgesparse.errors import InputError
from edgesparse.ir.tabular import TabularColumn, TabularFeaturizer, category_key
from edgesparse.records import TableRecords
from edgesparse.runtime.text import TextRows

__all__ = ["records_cells", "tabular_features"]


_DENSE_MAX = 1024
"""Widest output returned dense; wider rows come out as CSR (one-hot rows are mostly 0)."""


def tabular_features(feat: TabularFeaturizer, X: Any) -> np.ndarray | TextRows:
    """The feature rows of the records ``X`` (see :func:`records_cells`; a
    :class:`TableRecords` is read as the cells of a text table)."""
    text_cells = isinstance(X, TableRecords)
    cells = records_cells(feat, X)
    n = len(cells[0]) if cells else 0
    parts: list[tuple[TabularColumn, np.ndarray]] = []
    for col in feat.columns:
        values = cells[col.source]
        if text_cells:
            values = _from_text(col, values)
        parts.append(
            (col, _numeric(col, values) if col.categories is None else _codes(col, values))
        )
    total = feat.n_features
    if total <= _DENSE_MAX:
        out = np.zeros((n, total))
        at = 0
        for col, part in parts:
            if col.categories is None:
                out[:, at] = part
            else:
                hit = part >= 0
                out[np.flatnonzero(hit), at + part[hit]] = 1.0
            at += col.width
        return out
    return _csr(parts, n, total)


def _csr(parts: list[tuple[TabularColumn, np.ndarray]], n: int, total: int) -> TextRows:
    """CSR rows built from each column's values or one-hot codes, never a dense matrix (a
    one-hot column may have millions of categories)."""
    rows, cols, vals = [], [], []
    at = 0
    for col, part in parts:
        if col.categories is None:
            r = np.flatnonzero(part != 0)
            rows.append(r)
            cols.append(np.full(r.size, at, dtype=np.int64))
            vals.append(part[r])
        else:
            r = np.flatnonzero(part >= 0)
            rows.append(r)
            cols.append(at + part[r])
            vals.append(np.ones(r.size))
        at += col.width
    row, col_idx, val = np.concatenate(rows), np.concatenate(cols), np.concatenate(vals)
    order = np.lexsort((col_idx, row))
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(row, minlength=n), out=indptr[1:])
    return TextRows(val[order], col_idx[order].astype(np.int32), indptr, (n, total))


def records_cells(feat: TabularFeaturizer, X: Any) -> list[list[Any]]:
    """The cells of the records ``X``, column by column (``n_inputs`` lists of equal
    length), or an :class:`InputError` saying what is wrong with them."""
    if hasattr(X, "columns") and hasattr(X, "to_numpy") and not isinstance(X, np.ndarray):
        names = [str(c) for c in X.columns]
        return _by_name(feat, names, [list(c) for c in X.to_numpy(dtype=object).T])
    if isinstance(X, TableRecords) and X.names:
        if len(X.names) > feat.n_inputs:
            raise InputError(
                f"the table has {len(X.names)} columns, but this model reads {feat.n_inputs}"
            )
        columns = [list(c) for c in zip(*X, strict=True)]
        return _by_name(feat, list(X.names), columns)
    if isinstance(X, np.ndarray):
        return _array_cells(feat, X)
    if isinstance(X, (str, bytes, Mapping)) or not isinstance(X, Sequence):
        raise InputError(
            f"this model takes records (a list of dicts or of lists, a 2-D or structured "
            f"array), got {type(X).__name__}; for one record use predict([record])"
        )
    if not X:
        raise InputError("X has 0 records; at least 1 is required")
    if all(isinstance(r, Mapping) for r in X):
        return _dict_cells(feat, X)
    rows = []
    for i, r in enumerate(X):
        if isinstance(r, (str, bytes, Mapping)) or not isinstance(r, (Sequence, np.ndarray)):
            raise InputError(
                f"record {i} is a {type(r).__name__}; give every record as a dict (by column "
                "name) or as a list (by position)"
            )
        if len(r) != feat.n_inputs:
            raise InputError(
                f"record {i} has {len(r)} cells, but this model reads {feat.n_inputs} columns"
            )
        rows.append(r)
    return [list(c) for c in zip(*rows, strict=True)]


def _array_cells(feat: TabularFeaturizer, X: np.ndarray) -> list[list[Any]]:
    if X.dtype.names is not None:
        if X.ndim != 1 or X.size == 0:
            raise InputError(
                f"a structured array of records must be 1-D and not empty, got {X.shape}"
            )
        return _by_name(feat, list(X.dtype.names), [X[n].tolist() for n in X.dtype.names])
    if X.ndim != 2 or X.shape[0] == 0:
        raise InputError(
            f"this model takes records: a 2-D array (one row per record), got shape {X.shape}"
        )
    if X.shape[1] != feat.n_inputs:
        raise InputError(
            f"X has {X.shape[1]} columns, but this model reads {feat.n_inputs} columns"
        )
    return [X[:, j].tolist() for j in range(X.shape[1])]


def _by_name(
    feat: TabularFeaturizer, names: list[str], columns: list[list[Any]]
) -> list[list[Any]]:
    """Columns given with names, put in the model's order (every name known, none missing)."""
    if feat.names is None:
        if len(names) != feat.n_inputs:
            raise InputError(
                f"X has {len(names)} columns, but this model reads {feat.n_inputs} columns "
                "(by position: it was fitted without column names)"
            )
        return columns
    return [columns[i] for i in _positions(feat, names)]


def _positions(feat: TabularFeaturizer, names: Sequence[str]) -> list[int]:
    """Where each of the model's columns is among ``names``."""
    assert feat.names is not None
    known = set(feat.names)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise InputError(
            f"unknown column {_shown(unknown[0])} ({len(unknown)} unknown); this model reads "
            f"{_listed(feat.names)}"
        )
    at = {n: i for i, n in enumerate(names)}
    missing = [n for n in feat.names if n not in at]
    if missing:
        raise InputError(f"missing column {_shown(missing[0])} ({len(missing)} missing)")
    return [at[n] for n in feat.names]


def _dict_cells(feat: TabularFeaturizer, X: Sequence[Mapping[Any, Any]]) -> list[list[Any]]:
    if feat.names is None:
        raise InputError(
            "this model was fitted without column names: give records as lists (by position)"
        )
    names = feat.names
    first = X[0]
    _positions(feat, [str(k) for k in first])
    out: list[list[Any]] = [[] for _ in names]
    for i, rec in enumerate(X):
        if len(rec) != len(names):
            raise InputError(
                f"record {i} has {len(rec)} columns, but this model reads {len(names)}"
            )
        try:
            for col, name in zip(out, names, strict=True):
                col.append(rec[name])
        except KeyError:
            _positions(feat, [str(k) for k in rec])
            raise
    return out


def _shown(name: Any) -> str:
    text = repr(name)
    return text if len(text) <= 60 else text[:57] + "..."


def _listed(names: Sequence[str]) -> str:
    shown = ", ".join(_shown(n) for n in names[:8])
    return shown + (f", ... ({len(names)} columns)" if len(names) > 8 else "")


def _from_text(col: TabularColumn, values: list[Any]) -> list[Any]:
    """Cells of a text table: an empty cell is missing (NaN, as ``pandas.read_csv`` reads it);
    numbers are parsed where the column holds numbers."""
    if col.categories is None:
        return [math.nan if v == "" else v for v in values]
    numeric = not any(isinstance(c, str) for c in col.categories)
    out: list[Any] = []
    for v in values:
        if v == "":
            out.append(math.nan)
        elif numeric and isinstance(v, str):
            out.append(_number(v))
        else:
            out.append(v)
    return out


def _number(text: str) -> Any:
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text  # an unknown category (or an error, as the column says)


def _numeric(col: TabularColumn, values: list[Any]) -> np.ndarray:
    try:
        x = np.array([math.nan if v is None else v for v in values], dtype=object).astype(
            np.float64
        )
    except (TypeError, ValueError):
        bad = next(v for v in values if not _is_float(v))
        raise InputError(
            f"input column {col.source}: {_shown(bad)} is not a number (the model reads a "
            "number there)"
        ) from None
    if col.impute:
        mask = np.isnan(x) if math.isnan(col.missing) else x == col.missing
        x[mask] = col.fill
    if col.scale != 1.0 or col.offset != 0.0:
        x = x * col.scale + col.offset
    return x


def _is_float(v: Any) -> bool:
    try:
        float(v)
    except (TypeError, ValueError):
        return False
    return True


_TABLES: weakref.WeakKeyDictionary[TabularColumn, dict[Any, int]] = weakref.WeakKeyDictionary()


def _table(col: TabularColumn) -> dict[Any, int]:
    """Category -> index, built once per column (a column may have many categories)."""
    table = _TABLES.get(col)
    if table is None:
        assert col.categories is not None
        table = _TABLES[col] = {category_key(c): i for i, c in enumerate(col.categories)}
    return table


def _codes(col: TabularColumn, values: list[Any]) -> np.ndarray:
    """Each value's output index within the column's one-hot block, -1 for none (an ignored
    unknown category, or the dropped one)."""
    assert col.categories is not None
    table = _table(col)
    n_cat = len(col.categories)
    codes = np.empty(len(values), dtype=np.int64)
    for i, v in enumerate(values):
        if isinstance(v, np.generic):
            v = v.item()
        if col.impute and _missing(v, col.missing):
            v = col.fill
        try:
            codes[i] = table.get(category_key(v), n_cat)
        except TypeError:  # an unhashable cell (a list...) is in no category
            codes[i] = n_cat
    unknown = codes == n_cat
    if col.unknown == "error" and unknown.any():
        bad = values[int(np.argmax(unknown))]
        raise InputError(
            f"input column {col.source}: unknown category {_shown(bad)} (the encoder was "
            "fitted with handle_unknown='error')"
        )
    codes[unknown] = -1
    if col.drop >= 0:
        codes[codes == col.drop] = -1
        codes[codes > col.drop] -= 1
    return codes


def _missing(v: Any, marker: float) -> bool:
    if math.isnan(marker):
        return isinstance(v, float) and math.isnan(v)
    return v is not None and not isinstance(v, str) and v == marker
