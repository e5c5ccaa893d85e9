"""Calibration rows for a model with an input stage: ``compress --calibration`` of a text or
tabular pipeline, read as the labelled documents or records the model reads on the device.

File forms (every malformed case is one :class:`~edgesparse.errors.InputError` line naming the
file and, where there is one, the line):

* **text** (a model whose stage is a :class:`~edgesparse.ir.text.TextFeaturizer`): JSON lines,
  UTF-8, one object per line, ``{"text": "...", "label": ...}``; JSON escapes let a document
  hold any text (line breaks, commas, quotes). Blank lines are skipped. ``label`` is a string
  or a number, as the model's classes are (a number for a regressor); it is on every line or
  on none (unlabelled: ``--max-agreement-loss`` only). No other keys. A line may hold at most
  :data:`MAX_LINE_BYTES` bytes, the file the text-table limit
  (:func:`edgesparse.data.check_text_size`), so reading is bounded in time and memory.
* **tabular** (a :class:`~edgesparse.ir.tabular.TabularFeaturizer`): the CSV of ``--check-data``
  (:func:`edgesparse.data.read_records`: a header naming the columns, then records), with the
  label in the last column, as a numeric ``cal.csv`` has it. Without a label column (the header
  names only the model's columns, or, for a model fitted without names, as many columns as it
  reads) the rows are unlabelled. A label cell is read as the model's classes are: a number
  when they are numbers, else the cell's text.

:func:`read_raw_calibration` reads the file once, runs the model's own input stage over the
rows (the numpy runtime's, which the ``.esb`` stores: what the device will run) so that a row
the stage cannot read is refused here with the file's name, and keeps what the scikit-learn
pipeline, the oracle, takes (see :mod:`edgesparse.rawcheck`). :func:`stage_agreement` then
measures, on every calibration row, the written artifact against the model the search
certified and the original against the scikit-learn pipeline's own ``predict``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from edgesparse.data import check_text_size, read_records
from edgesparse.errors import InputError
from edgesparse.formats.sniff import sniff
from edgesparse.ir import LinearIR
from edgesparse.ir.tabular import TabularFeaturizer
from edgesparse.ir.text import TextFeaturizer
from edgesparse.rawcheck import table_for_sklearn
from edgesparse.records import TableRecords
from edgesparse.runtime.model import Model
from edgesparse.runtime.tabular import tabular_features
from edgesparse.runtime.text import text_features

__all__ = [
    "MAX_LINE_BYTES",
    "RECORDS_FORM",
    "TEXT_FORM",
    "RawCalibration",
    "read_raw_calibration",
    "stage_agreement",
]

MAX_LINE_BYTES = 1 << 20
"""Most bytes one line (one document) of a text calibration file may hold (1 MiB)."""

TEXT_FORM = (
    'a text model\'s --calibration is JSON lines: one {"text": "...", "label": ...} object '
    "per line (UTF-8)"
)
RECORDS_FORM = (
    "a tabular model's --calibration is a CSV with a header: the model's columns, then the "
    "label in the last column"
)


@dataclasses.dataclass(frozen=True)
class RawCalibration:
    """Labelled documents or records, in the forms the module lists.

    Attributes:
        raw: what the compressed model is fed: a list of documents, or
            :class:`~edgesparse.records.TableRecords` without the label column.
        features: the feature rows the model's own input stage makes of ``raw``.
        y: the labels (class labels as the model's classes are, or regression targets), or
            None when the file has none.
        reference_input: what the scikit-learn pipeline is fed (None without pandas, for
            records).
        kind: ``"documents"`` or ``"records"``.
    """

    raw: Any
    features: Any
    y: np.ndarray | None
    reference_input: Any | None
    kind: str

    @property
    def n_rows(self) -> int:
        """How many documents or records."""
        return len(self.raw)


def read_raw_calibration(path: str | os.PathLike[str], *, ir: LinearIR) -> RawCalibration:
    """Read the calibration file ``path`` of the model ``ir``, which has an input stage (see
    the module doc for the forms and the refusals)."""
    p = Path(path)
    featurizer = ir.featurizer
    if featurizer is None:
        raise InputError(f"{p}: the model has no input stage; its calibration is feature rows")
    if isinstance(featurizer, TextFeaturizer):
        docs, labels = _read_json_lines(p)
        y = None if labels is None else _labels(p, labels, ir, typed=True)
        features = _staged(p, lambda: text_features(featurizer, docs))
        return RawCalibration(docs, features, y, docs, "documents")
    records, cells = _split_label(p, read_records(p), featurizer)
    y = None if cells is None else _labels(p, cells, ir, typed=False)
    features = _staged(p, lambda: tabular_features(featurizer, records))
    reference = table_for_sklearn(p, featurizer=featurizer, drop_last=cells is not None)
    return RawCalibration(records, features, y, reference, "records")


def _staged(p: Path, run: Any) -> Any:
    try:
        return run()
    except InputError as exc:
        raise InputError(f"{p}: {exc}") from None


# -- text: JSON lines --------------------------------------------------------------------


def _read_json_lines(p: Path) -> tuple[list[str], list[tuple[int, Any]] | None]:
    """The documents and, when the file has them, the labels with their line numbers."""
    from edgesparse.fileio import read_bytes

    kind = sniff(p)
    if kind is not None and not kind.text:
        raise InputError(f"{p} is {kind.what}, not JSON lines; {TEXT_FORM}")
    check_text_size(p, what="calibration file")
    raw = read_bytes(p, what="calibration file")
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    docs: list[str] = []
    labels: list[tuple[int, Any]] = []
    first_labelled: bool | None = None
    offset = 0
    for n, line in enumerate(raw.split(b"\n"), start=1):
        at, offset = offset, offset + len(line) + 1
        if not line.strip():
            continue
        obj = _json_object(p, n, line, at)
        labelled = "label" in obj
        if first_labelled is None:
            first_labelled, first_line = labelled, n
        elif labelled != first_labelled:
            has, lacks = (n, first_line) if labelled else (first_line, n)
            raise InputError(
                f'{p}, line {lacks}: no "label", but line {has} has one; give every line a '
                "label (or none, for --max-agreement-loss alone)"
            )
        docs.append(obj["text"])
        if labelled:
            labels.append((n, obj["label"]))
    if not docs:
        raise InputError(f"{p} holds no documents; {TEXT_FORM}")
    return docs, labels if first_labelled else None


def _json_object(p: Path, n: int, line: bytes, at: int) -> dict[str, Any]:
    """Line ``n`` (at byte ``at`` of the file) as a checked ``{"text": str[, "label": ...]}``
    object."""
    where = f"{p}, line {n}"
    if len(line) > MAX_LINE_BYTES:
        raise InputError(
            f"{where}: {len(line)} bytes, more than the {MAX_LINE_BYTES} one calibration "
            "document may hold; shorten or split the document"
        )
    if b"\0" in line:
        raise InputError(f"{where}: a NUL byte; this is not text ({TEXT_FORM})")
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{where}: not valid UTF-8 (byte {at + exc.start}); {TEXT_FORM}") from None
    try:
        obj = json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"{where}: not valid JSON ({exc.msg} at column {exc.colno}); {TEXT_FORM}"
        ) from None
    except RecursionError:
        raise InputError(f"{where}: not valid JSON (nested too deeply); {TEXT_FORM}") from None
    except ValueError as exc:  # NaN/Infinity, an integer of more than 4300 digits
        why = "a number of more than 4300 digits" if "digits" in str(exc) else str(exc)[:80]
        raise InputError(f"{where}: not valid JSON ({why}); {TEXT_FORM}") from None
    if not isinstance(obj, dict):
        raise InputError(f"{where}: a JSON {_json_type(obj)}, not an object; {TEXT_FORM}")
    extra = sorted(k for k in obj if k not in ("text", "label"))
    if extra:
        raise InputError(
            f'{where}: unknown key {json.dumps(extra[0])}; a line holds "text" and "label" only'
        )
    if not isinstance(obj.get("text"), str):
        what = "no" if "text" not in obj else f"a {_json_type(obj['text'])} as its"
        raise InputError(f'{where}: {what} "text"; the document must be a JSON string')
    return obj


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    return "list" if isinstance(value, list) else "object"


# -- records: the label column -----------------------------------------------------------


def _split_label(
    p: Path, records: TableRecords, featurizer: TabularFeaturizer
) -> tuple[TableRecords, list[tuple[int, Any]] | None]:
    """The records without their label column, and the label cells (None: no label column)."""
    names = records.names
    if featurizer.names is not None:
        reads = set(featurizer.names)
        others = [i for i, name in enumerate(names) if name not in reads]
        if not others:
            return records, None
        if others != [len(names) - 1]:
            name = names[others[0]]
            raise InputError(
                f"{p}, header: column {name!r} is not one the model reads; {RECORDS_FORM}"
            )
    elif len(names) == featurizer.n_inputs:
        return records, None
    elif len(names) != featurizer.n_inputs + 1:
        raise InputError(
            f"{p}, header: {len(names)} columns, but the model reads {featurizer.n_inputs} (by "
            f"position: it was fitted without column names) and the label makes "
            f"{featurizer.n_inputs + 1}; {RECORDS_FORM}"
        )
    out = TableRecords(r[:-1] for r in records)
    out.names = names[:-1]
    # read_records skips blank lines: the label's line is not known, its record number is.
    return out, [(i + 1, r[-1]) for i, r in enumerate(records)]


# -- labels --------------------------------------------------------------------------------


def _labels(p: Path, labels: list[tuple[int, Any]], ir: LinearIR, *, typed: bool) -> np.ndarray:
    """Labels checked against the model: each a class (as the classes are typed) or, for a
    regressor, a finite number. ``typed``: JSON values (else CSV cells, read as the classes
    are). The first bad one is refused naming its line (JSON) or record (CSV)."""
    where = "line" if typed else "record"
    classes = ir.classes
    numeric = classes is None or classes.dtype.kind in "iufb"
    shown = "" if classes is None else _shown_classes(classes)
    values: list[Any] = []
    for n, v in labels:
        at = f"{p}, {where} {n}"
        if typed and (isinstance(v, bool) or not isinstance(v, (str, int, float))):
            raise InputError(f'{at}: "label" is a {_json_type(v)}; give a string or a number')
        if numeric:
            v = _number_label(at, v, typed=typed, shown=shown, regressor=classes is None)
        elif not isinstance(v, str):
            raise InputError(
                f"{at}: label {_shown(v)} is a number, but the model's classes are text ({shown}); "
                f'write it as a string, "{v}"'
            )
        elif v == "":
            raise InputError(f"{at}: the label is empty; the model's classes are {shown}")
        values.append(v)
    y = np.array(values) if not numeric else _numbers(values)
    if classes is not None:
        known = np.isin(y, classes)
        if not known.all():
            i = int(np.flatnonzero(~known)[0])
            raise InputError(
                f"{p}, {where} {labels[i][0]}: label {_shown(y[i].item())} is not one of the "
                f"model's classes ({shown}); give the labels the model predicts"
            )
    return y


def _number_label(at: str, v: Any, *, typed: bool, shown: str, regressor: bool) -> float:
    """A label or target that must be a number (numeric classes, a regressor's target)."""
    what = "target" if regressor else "label"
    why = "this model is a regressor" if regressor else f"the model's classes are numbers ({shown})"
    if isinstance(v, str):
        if typed:
            raise InputError(f"{at}: {what} {_shown(v)} is text, but {why}; give a JSON number")
        if v == "":
            raise InputError(f"{at}: the {what} is empty; {why}")
        try:
            v = float(v)
        except ValueError:
            raise InputError(f"{at}: {what} {_shown(v)} is not a number, but {why}") from None
    value = float(v)
    if not math.isfinite(value):
        raise InputError(f"{at}: {what} {_shown(v)} is not a finite number")
    return value


def _numbers(values: list[float]) -> np.ndarray:
    y = np.array(values, dtype=np.float64)
    if y.size and np.all(y == np.round(y)) and np.all(np.abs(y) < 2**53):
        return y.astype(np.int64)
    return y


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _shown_classes(classes: np.ndarray) -> str:
    items = classes[:10].tolist()
    text = ", ".join(_shown(c) if isinstance(c, str) else str(c) for c in items)
    return text + (f", ... ({classes.size} classes)" if classes.size > 10 else "")


# -- the written model and the oracle on the calibration rows -------------------------------


def stage_agreement(
    *,
    estimator: Any,
    original: LinearIR,
    certified: LinearIR,
    runner: Any,
    calibration: RawCalibration,
) -> dict[str, Any]:
    """What the certificate rests on, measured on every calibration row: the share of labels
    (or predictions) the written artifact (``runner``, fed the raw rows) shares with the model
    the search certified (``certified``'s linear part on the stage's feature rows), and the
    share the original (float64, read by edgesparse) shares with the scikit-learn pipeline's
    own ``predict`` (None when it cannot be fed the rows: a table without pandas)."""
    feats = calibration.features
    plain = Model(certified.replace(featurizer=None)).predict(feats)
    written = np.asarray(runner.predict(calibration.raw))
    reference = Model(original.replace(featurizer=None)).predict(feats)
    oracle: float | None = None
    if calibration.reference_input is not None and hasattr(estimator, "predict"):
        theirs = np.asarray(estimator.predict(calibration.reference_input))
        oracle = _share(theirs, reference, regressor=not original.is_classifier)
    return {
        "kind": calibration.kind,
        "features": "made by the model's own input stage (the numpy runtime's, stored in the "
        "artifact): the certificate is about what the device runs on these " + calibration.kind,
        "written_agreement": _share(written, plain, regressor=not original.is_classifier),
        "sklearn_agreement": oracle,
    }


def _share(a: np.ndarray, b: np.ndarray, *, regressor: bool) -> float:
    a, b = np.asarray(a), np.asarray(b)
    if regressor:
        a, b = a.astype(np.float64).reshape(b.shape), b.astype(np.float64)
        same = np.isclose(a, b, rtol=1e-5, atol=1e-6)
        return float(np.mean(same.reshape(same.shape[0], -1).all(axis=1)))
    return float(np.mean(a.reshape(-1) == b.reshape(-1)))
