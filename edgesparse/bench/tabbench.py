"""The host side of a tabular bench: ``.esb`` blobs whose model starts with a tabular input
stage (section ``tabular``), timed from raw records (a CSV with a header row,
:func:`edgesparse.data.read_records`) so the latency includes featurization, next to the
scikit-learn pipeline they came from (host only, the reference).

:func:`prepare` reads the records once, here, computes the reference on the host (the
pipeline's own ``predict`` when its pickle is among the artifacts, else the first blob's) and
writes what the probes read: ``{"names": [...], "records": [[cell, ...], ...]}`` as JSON (the
cells as the CSV's text; the probe's spec says ``"input": "records"``). On the target the
probe rebuilds them as :class:`RecordRows` and times ``model.predict(records[batch])``, the
runtime turning the text cells into features inside the timed call, as
``edgesparse predict tab.esb rows.csv`` does. The scikit-learn pipeline gets the same cells
typed the way ``pandas.read_csv`` types them (:func:`sklearn_input`), outside its timed calls:
that is the frame its user would hand it.

The same records feed the other engines: an ``.onnx`` model compressed from the pipeline
(its tabular stage in the graph) through the same probe, ``edgesparse.load('rows.onnx')``
turning the cells into its input tensors inside the timed call; ``c:tab.esb`` through the C
driver (:func:`edgesparse.bench.engine_c.records_context`), which splits each record from its
CSV text and featurizes it in C inside the timed call.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from edgesparse.bench.engines import Artifact
from edgesparse.data import TableRecords, read_records
from edgesparse.errors import InputError
from edgesparse.fileio import atomic_write_bytes

#: The scikit-learn steps a tabular pipeline may start with (its input stage).
_FIRST_STEPS = ("ColumnTransformer", "SimpleImputer", "OneHotEncoder", "FunctionTransformer")

__all__ = [
    "Prepared",
    "RecordRows",
    "check_artifacts",
    "is_tabular_blob",
    "prepare",
    "read_records_json",
    "reference_pipeline",
    "sklearn_input",
    "tile_rows",
]


class RecordRows(TableRecords):
    """Records read from a CSV (:class:`TableRecords`) that also have a ``shape`` and keep
    their header's names when sliced, so the probe batches them like rows."""

    @property
    def shape(self) -> tuple[int, int]:
        """(records, columns)."""
        return (len(self), len(self.names))

    def __getitem__(self, key: Any) -> Any:
        got = super().__getitem__(key)
        if isinstance(key, slice):
            return self.of(got, names=self.names)
        return got

    @classmethod
    def of(cls, records: list[list[str]], *, names: tuple[str, ...]) -> RecordRows:
        """``records`` with the header ``names``."""
        out = cls(records)
        out.names = tuple(names)
        return out


def tile_rows(X: Any, size: int) -> Any:
    """The first ``size`` rows of ``X`` repeated (a batch larger than the data): records or a
    pandas frame, whose names a numpy concatenation would drop."""
    reps = -(-size // len(X))
    if isinstance(X, RecordRows):
        return RecordRows.of(list(X) * reps, names=X.names)[:size]
    import pandas as pd

    return pd.concat([X] * reps, ignore_index=True).iloc[:size]


def read_records_json(path: str | Path) -> RecordRows:
    """The records the harness wrote for the probe (module docstring)."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    return RecordRows.of(data["records"], names=tuple(data["names"]))


def sklearn_input(records: TableRecords) -> Any:
    """The records as a scikit-learn pipeline takes them: each column typed as
    ``pandas.read_csv`` types it (all-integer cells to int, numbers to float, else strings; an
    empty cell is missing, NaN), as a DataFrame with the header's names when pandas is
    installed, else a 2-D object array in the CSV's column order."""
    columns = [_typed([r[j] for r in records]) for j in range(len(records.names))]
    try:
        import pandas as pd
    except ImportError:
        return np.array(list(zip(*columns, strict=True)), dtype=object)
    return pd.DataFrame(dict(zip(records.names, columns, strict=True)))


def _typed(cells: list[str]) -> list[Any]:
    present = [c for c in cells if c != ""]
    for kind in (int, float):
        try:
            values = {c: kind(c) for c in present}
        except ValueError:
            continue
        if kind is int and len(present) < len(cells):
            kind = float  # pandas: an int column with a hole is float
        return [kind(values[c]) if c != "" else math.nan for c in cells]
    return [c if c != "" else math.nan for c in cells]


@dataclasses.dataclass(frozen=True)
class Prepared:
    """What the probes of a tabular run share: the records file (JSON), the reference
    predictions with its kind and source, and the task. The records themselves are kept once,
    in ``data``; the C driver reads them back from there (:meth:`records`) when it runs."""

    data: Path
    n_records: int
    reference: np.ndarray
    ref_kind: str
    ref_source: str
    task: str

    def records(self) -> RecordRows:
        """The records under their header's names, read back from ``data``."""
        return read_records_json(self.data)


def is_tabular_blob(path: Path) -> bool:
    """Whether the linear ``.esb`` at ``path`` starts with a tabular input stage (False for a
    blob that does not load: its probe row then says why)."""
    from edgesparse.errors import EdgesparseError
    from edgesparse.ir.tabular import TabularFeaturizer
    from edgesparse.runtime import load

    try:
        model = load(path)
    except EdgesparseError:
        return False
    return isinstance(getattr(getattr(model, "ir", None), "featurizer", None), TabularFeaturizer)


def reference_pipeline(arts: list[Artifact]) -> Any | None:
    """Check a tabular run's artifacts (:func:`check_artifacts`) and return the scikit-learn
    pipeline of its first pickle, the reference (or None without a pickle)."""
    from edgesparse.bench.probe import load_artifact

    models = {
        a.name: load_artifact("sklearn", str(a.path), 1) for a in arts if a.engine == "sklearn"
    }
    pipelines = {name: m for name, m in models.items() if _is_tabular_pipeline(m)}
    check_artifacts(arts, pipelines=set(pipelines))
    return next(iter(pipelines.values()), None)


def _is_tabular_pipeline(model: Any) -> bool:
    steps = getattr(model, "steps", None)
    return bool(steps) and type(steps[0][1]).__name__ in _FIRST_STEPS


def check_artifacts(arts: list[Artifact], *, pipelines: set[str]) -> None:
    """Refuse a tabular run that mixes kinds of model (``pipelines``: the names of the pickles
    that are tabular pipelines). ``c:`` rows run the C driver on the records, ``.onnx`` rows
    the probe (a graph with the tabular stage).

    Raises:
        InputError: a blob or ONNX model without a tabular stage, or a pickle that is not
            such a pipeline.
    """
    for art in arts:
        if art.engine in ("esb", "c", "onnx") and not art.tabular:
            raise InputError(
                f"cannot benchmark {art.name} with tabular blobs: it does not read records "
                "(a CSV with a header); bench it in its own run"
            )
        if art.engine == "sklearn" and art.name not in pipelines:
            raise InputError(
                f"cannot benchmark {art.name} with tabular blobs: it is not a scikit-learn "
                f"Pipeline starting with one of {', '.join(_FIRST_STEPS)} (give the pipeline "
                "the blob was compressed from)"
            )


def prepare(arts: list[Artifact], *, data: Path, workdir: Path, pipeline: Any | None) -> Prepared:
    """Read the records, compute the reference on the host and write the probes' input into
    ``workdir`` (module docstring). ``pipeline`` is the run's scikit-learn pipeline, or None.

    Raises:
        InputError: ``data`` is not a CSV of records the blobs read.
        ModelFileError: ``data`` is missing.
    """
    from edgesparse.runtime import load

    first = next(a for a in arts if a.tabular)
    try:
        records = read_records(data)
        blob = load(first.path)
        ours = np.asarray(blob.predict(records))
    except InputError as exc:
        raise InputError(
            f"cannot benchmark {first.name} on {data.name}: {exc}; {first.name} starts with "
            "a tabular input stage and reads records: a CSV whose header names its columns"
        ) from None
    if pipeline is not None:
        reference = np.asarray(pipeline.predict(sklearn_input(records)))
        kind, source = "sklearn", next(a.name for a in arts if a.engine == "sklearn")
    else:
        reference, kind, source = ours, "artifact", f"{first.name} on the host"
    model = pipeline if pipeline is not None else blob
    task = "classification" if hasattr(model, "classes_") else "regression"
    path = workdir / "records.json"
    payload = {"names": list(records.names), "records": [list(r) for r in records]}
    atomic_write_bytes(path, json.dumps(payload).encode("utf-8"))
    if reference.dtype.kind == "O":
        reference = reference.astype(str)  # saved without pickle
    return Prepared(
        data=path,
        n_records=len(records),
        reference=reference,
        ref_kind=kind,
        ref_source=source,
        task=task,
    )
