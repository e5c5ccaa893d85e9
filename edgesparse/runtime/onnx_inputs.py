"""Raw input for an ONNX model with an input stage (issue 20): documents or records -> the
graph's typed input tensors, as :mod:`edgesparse.formats.onnx_text` and
:mod:`edgesparse.formats.onnx_tabular` define them.

Imports only numpy, the standard library and the numpy runtime (no ``onnx``): it runs on the
device, inside :class:`~edgesparse.runtime.onnx_model.OnnxModel`. The input checks are the
numpy runtime's, with its messages.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from edgesparse.errors import InputError
from edgesparse.ir.tabular import TabularColumn, TabularFeaturizer
from edgesparse.records import TableRecords
from edgesparse.runtime.tabular import records_cells
from edgesparse.runtime.text import text_documents

__all__ = ["RecordFeeds", "document_feeds"]

# Same values as edgesparse.formats.onnx_tabular's (which imports onnx).
_ALIEN_STRING = "\x00"
_ALIEN_NUMBER = math.inf
_DOCS_PER_RUN = 1024


def document_feeds(X: Any, *, lowercase: bool) -> list[dict[str, np.ndarray]]:
    """The ``documents`` feeds of ``X`` (runs of at most 1024 documents), checked as the
    numpy runtime checks them. ``lowercase``: the graph lowercases with ``StringNormalizer``
    alone (opset < 20), so documents it would lowercase differently from Python's
    ``str.lower`` are refused (see :mod:`edgesparse.formats.onnx_text`)."""
    docs = text_documents(X)
    if lowercase:
        for i, doc in enumerate(docs):
            _check_lowercase(i, doc)
    return [
        {"documents": np.array(docs[lo : lo + _DOCS_PER_RUN], dtype=object)}
        for lo in range(0, len(docs), _DOCS_PER_RUN)
    ]


def _check_lowercase(i: int, doc: str) -> None:
    if "\u0130" in doc:
        raise InputError(
            f"document {i} contains 'İ' (U+0130), which Python lowercases to 'i' + U+0307 and "
            "onnxruntime's StringNormalizer to 'i': this ONNX model cannot reproduce its "
            "features (the .esb model can)"
        )
    if "\u03a3" in doc and doc.lower() != "".join([c.lower() for c in doc]):
        raise InputError(
            f"document {i} has a word-final 'Σ', which Python lowercases to 'ς' and "
            "onnxruntime's StringNormalizer to '\u03c3': this ONNX model cannot reproduce "
            "its features (the .esb model can)"
        )


class RecordFeeds:
    """Records -> the tabular graph's input tensors (one per record column it reads), from
    the exporter's metadata: ``inputs`` ([name, source, kind] each), ``n_inputs``,
    ``names``, ``unknown`` (sources of ``handle_unknown="error"`` columns, in output
    order), ``empty`` (string inputs where ``""`` is a category)."""

    def __init__(self, meta: dict[str, Any]) -> None:
        names = meta.get("names")
        self._shape = TabularFeaturizer(
            n_inputs=int(meta["n_inputs"]),
            columns=(TabularColumn(source=0),),
            names=None if names is None else tuple(names),
        )
        self.inputs = [(str(n), int(s), str(k)) for n, s, k in meta["inputs"]]
        self.unknown = [int(s) for s in meta.get("unknown", [])]
        self._empty = {int(s) for s in meta.get("empty", [])}

    def feeds(self, X: Any) -> tuple[dict[str, np.ndarray], list[list[Any]]]:
        """The input tensors of the records ``X`` and their cells (column by column, for
        the error messages)."""
        table = isinstance(X, TableRecords)
        cells = records_cells(self._shape, X)
        feeds = {}
        for name, source, kind in self.inputs:
            column = cells[source]
            if kind == "string":
                feeds[name] = _strings(column, table=table, empty=source in self._empty)
            elif kind == "double":
                feeds[name] = _category_numbers(column, table=table)
            else:
                feeds[name] = _numbers(source, column, table=table)
        return feeds, cells

    def check_unknown(self, flags: np.ndarray, cells: list[list[Any]]) -> None:
        """The numpy runtime's error for the first column with an unknown category."""
        for j, source in enumerate(self.unknown):
            hit = np.flatnonzero(flags[:, j])
            if hit.size:
                bad = cells[source][int(hit[0])]
                raise InputError(
                    f"input column {source}: unknown category {_shown(bad)} (the encoder was "
                    "fitted with handle_unknown='error')"
                )


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_nan(v: Any) -> bool:
    return isinstance(v, (float, np.floating)) and math.isnan(v)


def _strings(column: list[Any], *, table: bool, empty: bool) -> np.ndarray:
    """A string input: NaN (and an empty table cell) is ``""``; a literal ``""`` stays when
    it is a category, else it is foreign like any cell that is not a string."""
    out = []
    for v in column:
        if isinstance(v, str) and (v or empty):
            out.append(v)
        elif _is_nan(v) or (table and v == ""):
            out.append("")
        else:
            out.append(_ALIEN_STRING)
    return np.array(out, dtype=object)


def _category_numbers(column: list[Any], *, table: bool) -> np.ndarray:
    """A numeric-category input: numbers (bool is 0/1), NaN; a text table's numbers are
    parsed and its empty cells are NaN; anything else is foreign."""
    out = np.empty(len(column))
    for i, v in enumerate(column):
        if isinstance(v, np.generic):
            v = v.item()
        if table and isinstance(v, str):
            v = math.nan if v == "" else _parsed(v)
        out[i] = _ALIEN_NUMBER
        if isinstance(v, (bool, int, float)):
            try:
                out[i] = float(v)
            except OverflowError:  # an int beyond any double: no category equals it
                pass
    return out


def _parsed(text: str) -> Any:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return None


def _numbers(source: int, column: list[Any], *, table: bool) -> np.ndarray:
    """A numeric input: ``float(v)``, None (and an empty table cell) is NaN."""
    values = [math.nan if v is None or (table and v == "") else v for v in column]
    try:
        return np.array(values, dtype=object).astype(np.float64)
    except (TypeError, ValueError):
        bad = next(v for v in values if not _floats(v))
        raise InputError(
            f"input column {source}: {_shown(bad)} is not a number (the model reads a number there)"
        ) from None


def _floats(v: Any) -> bool:
    try:
        float(v)
    except (TypeError, ValueError):
        return False
    return True
