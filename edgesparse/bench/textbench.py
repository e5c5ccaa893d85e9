"""The host side of a text bench: ``.esb`` blobs whose model starts with a text featurizer
(issue 20), timed from raw documents so the latency includes featurization, next to the
scikit-learn pipeline they came from (host only, the reference).

:func:`prepare` reads the documents once, here (:func:`edgesparse.data.read_documents`: one
UTF-8 document per line), computes the reference labels on the host (the pipeline's own
``predict`` when its pickle is among the artifacts, else the first blob's) and writes what the
probes read: the documents as JSON (``{"documents": [...]}``; the probe's spec says
``"input": "text"``). The probe then times ``model.predict(docs[batch])`` exactly as it times
rows of features (:mod:`edgesparse.bench.probe`). An ``.onnx`` model compressed from the
pipeline (its text stage in the graph) is timed the same way, ``edgesparse.load('text.onnx')``
taking the documents; ``c:text.esb`` runs the C driver on them
(:func:`edgesparse.bench.engine_c.text_context`).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

from edgesparse.bench.engines import Artifact
from edgesparse.data import looks_like_number_table, read_documents
from edgesparse.errors import InputError
from edgesparse.fileio import atomic_write_bytes

#: The text vectorizers a reference pipeline may start with.
_VECTORIZERS = ("HashingVectorizer", "CountVectorizer", "TfidfVectorizer")

__all__ = [
    "Prepared",
    "check_artifacts",
    "is_text_blob",
    "is_text_pipeline",
    "prepare",
    "read_labels",
    "reference_pipeline",
]


@dataclasses.dataclass(frozen=True)
class Prepared:
    """What the probes of a text run share: the documents file (JSON), the reference labels
    with its kind and source, and the task; ``documents`` themselves, for the C driver."""

    data: Path
    n_documents: int
    reference: np.ndarray
    ref_kind: str
    ref_source: str
    task: str
    documents: tuple[str, ...] = ()


def is_text_blob(path: Path) -> bool:
    """Whether the linear ``.esb`` at ``path`` starts with a text featurizer (False for a blob
    that does not load: its probe row then says why)."""
    from edgesparse.errors import EdgesparseError
    from edgesparse.ir.text import TextFeaturizer
    from edgesparse.runtime import load

    try:
        model = load(path)
    except EdgesparseError:
        return False
    return isinstance(getattr(getattr(model, "ir", None), "featurizer", None), TextFeaturizer)


def is_text_pipeline(model: Any) -> bool:
    """Whether ``model`` is a scikit-learn ``Pipeline`` whose first step is a text vectorizer."""
    steps = getattr(model, "steps", None)
    return bool(steps) and type(steps[0][1]).__name__ in _VECTORIZERS


def reference_pipeline(arts: list[Artifact]) -> Any | None:
    """Check a text run's artifacts (:func:`check_artifacts`) and return the scikit-learn
    pipeline of its first pickle, the reference (or None without a pickle)."""
    from edgesparse.bench.probe import load_artifact

    models = {
        a.name: load_artifact("sklearn", str(a.path), 1) for a in arts if a.engine == "sklearn"
    }
    pipelines = {name: m for name, m in models.items() if is_text_pipeline(m)}
    check_artifacts(arts, pipelines=set(pipelines))
    return next(iter(pipelines.values()), None)


def check_artifacts(arts: list[Artifact], *, pipelines: set[str]) -> None:
    """Refuse a text run that mixes kinds of model (``pipelines``: the names of the pickles
    that are text pipelines). ``c:`` rows run the C driver on the documents, ``.onnx`` rows
    the probe (a graph with the text stage).

    Raises:
        InputError: a blob or ONNX model without a text stage, or a pickle that is not a text
            pipeline.
    """
    for art in arts:
        if art.engine in ("esb", "c", "onnx") and not art.text:
            raise InputError(
                f"cannot benchmark {art.name} with text blobs: it takes rows of features, not "
                "documents; bench it in its own run (--data X.npz)"
            )
        if art.engine == "sklearn" and art.name not in pipelines:
            raise InputError(
                f"cannot benchmark {art.name} with text blobs: it is not a scikit-learn "
                "Pipeline starting with a text vectorizer (give the pipeline the blob was "
                "compressed from)"
            )


def prepare(arts: list[Artifact], *, data: Path, workdir: Path, pipeline: Any | None) -> Prepared:
    """Read the documents, compute the reference on the host and write the probes' input into
    ``workdir`` (module docstring). ``pipeline`` is the run's scikit-learn pipeline, or None.

    Raises:
        InputError: ``data`` is not a text file of documents (e.g. a feature matrix).
        ModelFileError: ``data`` is missing.
    """
    from edgesparse.runtime import load

    first = next(a for a in arts if a.text)
    try:
        docs = read_documents(data)
    except InputError as exc:
        raise InputError(
            f"cannot benchmark {first.name} on {data.name}: {exc}; {first.name} starts with "
            "a text featurizer"
        ) from None
    if looks_like_number_table(docs):
        raise InputError(
            f"cannot benchmark {first.name} on {data.name}: it is a table of numbers, but "
            f"{first.name} starts with a text featurizer and takes raw documents: give "
            "--data a UTF-8 text file, one document per line"
        )
    model = pipeline if pipeline is not None else load(first.path)
    reference = np.asarray(model.predict(np.array(docs, dtype=object)))
    if pipeline is not None:
        kind, source = "sklearn", next(a.name for a in arts if a.engine == "sklearn")
    else:
        kind, source = "artifact", f"{first.name} on the host"
    task = "classification" if hasattr(model, "classes_") else "regression"
    path = workdir / "documents.json"
    atomic_write_bytes(path, json.dumps({"documents": docs}).encode("utf-8"))
    if reference.dtype.kind == "O":
        reference = reference.astype(str)  # saved without pickle
    return Prepared(
        data=path,
        n_documents=len(docs),
        reference=reference,
        ref_kind=kind,
        ref_source=source,
        task=task,
        documents=tuple(docs),
    )


def read_labels(path: Path, *, n: int, what: str = "documents") -> np.ndarray:
    """True labels of a text run: a ``.npy`` array, or a text file with one label per line
    (compared as text). ``n`` is the number of documents (``what``: of records, in a
    tabular run).

    Raises:
        InputError: a count that differs from the documents', or an unreadable file.
    """
    from edgesparse.formats.sniff import NPY_MAGIC

    with open(path, "rb") as fh:
        is_npy = fh.read(len(NPY_MAGIC)) == NPY_MAGIC
    if is_npy:
        try:
            y = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise InputError(f"{path} is not a plain .npy array ({exc})") from None
    else:
        try:
            y = np.array(read_documents(path))
        except InputError as exc:
            raise InputError(
                f"--labels: {exc}; a text run's labels are a .npy array or a UTF-8 text file, "
                "one label per line"
            ) from None
    if y.ndim == 0 or y.shape[0] != n:
        raise InputError(
            f"{path}: {y.shape[0] if y.ndim else 0} labels but the data has {n} {what} "
            f"(one label per {what[:-1]}: a .npy array or one label per line)"
        )
    return y
