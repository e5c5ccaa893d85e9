"""The bench's inputs, checked before anything runs: the targets, the counts, the artifacts
(with their engine, from the suffix or a ``c:`` prefix, and what kind of model each blob
holds), the labels of a run on rows, and the reference its ``agreement`` compares with
(computed on the host). Used by :mod:`edgesparse.bench.harness`.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgesparse.bench import tabbench, textbench
from edgesparse.bench.engines import Artifact
from edgesparse.bench.probe import load_artifact, prepare_input
from edgesparse.bench.targets import get_target
from edgesparse.errors import EdgesparseError, InputError, ModelFileError
from edgesparse.formats.container import BlobKind, kind_of
from edgesparse.formats.sniff import NPY_MAGIC, sniff

ENGINE_BY_SUFFIX = {
    ".esb": "esb",
    ".onnx": "onnx",
    ".pkl": "sklearn",
    ".pickle": "sklearn",
    ".joblib": "sklearn",
    ".skops": "sklearn",
}
#: ``ENGINE:PATH`` artifact prefixes that pick an engine other than the suffix's, and the
#: suffixes each accepts: ``c:model.esb`` times the C runtime on the same blob.
ENGINE_PREFIXES = {"c": (".esb",)}

__all__ = [
    "ENGINE_BY_SUFFIX",
    "ENGINE_PREFIXES",
    "artifacts_of",
    "check_counts",
    "input_stage",
    "labels_of",
    "linear_reference",
    "savable",
    "split_engine",
    "targets_of",
]


# ---------------------------------------------------------------------------------------------
def targets_of(targets: Sequence[Any]) -> list[Any]:
    """The targets (specs resolved with :func:`get_target`), at least one, each once."""
    tgts = [t if not isinstance(t, str) else get_target(t) for t in targets]
    if not tgts:
        raise InputError("give at least one target (e.g. --target host)")
    names = [t.name for t in tgts]
    if len(set(names)) != len(names):
        raise InputError(f"each target may be given once; got {', '.join(names)}")
    return tgts


def check_counts(*, batch_sizes: Sequence[int], runs: int, warmup: int, threads: int) -> None:
    """Refuse (InputError) batch sizes, runs, warmup or threads out of range."""
    if not batch_sizes:
        raise InputError("give at least one batch size (e.g. --batch 1)")
    if any(int(b) < 1 for b in batch_sizes) or len(set(batch_sizes)) != len(batch_sizes):
        raise InputError(f"batch sizes must be distinct and >= 1, got {list(batch_sizes)}")
    if runs < 1:
        raise InputError(f"runs must be >= 1, got {runs}")
    if warmup < 0:
        raise InputError(f"warmup must be >= 0, got {warmup}")
    if threads < 1:
        raise InputError(f"threads must be >= 1, got {threads}")


def artifacts_of(paths: Iterable[str | os.PathLike[str]]) -> list[Artifact]:
    """The artifacts of ``paths``: engine, size, hash, and the kind of model each blob holds
    (k-NN, text or tabular input stage); unknown suffixes, missing files and repeated names
    are refused."""
    out: list[Artifact] = []
    for raw in paths:
        forced, p = split_engine(raw)
        engine = forced or ENGINE_BY_SUFFIX.get(p.suffix.lower())
        if engine is None:
            raise InputError(
                f"cannot benchmark {p.name!r}: unknown artifact type {p.suffix or '(none)'!r}; "
                f"use one of: {', '.join(ENGINE_BY_SUFFIX)}"
            )
        if not p.is_file():
            raise ModelFileError(f"artifact not found: {p} (check the path)")
        blob = p.read_bytes()
        name = f"{forced}:{p.name}" if forced else p.name
        if any(a.name == name for a in out):
            raise InputError(f"two artifacts are named {name!r}; rename one (names label rows)")
        stage = input_stage(engine, p, blob)
        out.append(
            Artifact(
                name=name,
                path=p.resolve(),
                engine=engine,
                model_bytes=len(blob),
                sha256=hashlib.sha256(blob).hexdigest(),
                knn=engine in ("esb", "c")
                and kind_of(blob) in (BlobKind.ESB_KNN, BlobKind.ESB_FACTORS),
                text=stage == "text",
                tabular=stage == "tabular",
            )
        )
    if not out:
        raise InputError("give at least one artifact to benchmark")
    return out


def input_stage(engine: str, path: Path, blob: bytes) -> str | None:
    """What raw input the artifact at ``path`` (its bytes ``blob``) reads through its input
    stage: ``"text"`` (documents), ``"tabular"`` (records) or None (feature rows, or not a
    linear ``.esb``/``.onnx`` model; one that does not load is None too, its row then says
    why). An ``.onnx`` model's is read off its metadata and graph inputs
    (:func:`edgesparse.formats.onnx.input_stage`), without starting onnxruntime."""
    if engine in ("esb", "c"):
        if kind_of(blob) is not BlobKind.ESB_LINEAR:
            return None
        if textbench.is_text_blob(path):
            return "text"
        return "tabular" if tabbench.is_tabular_blob(path) else None
    if engine == "onnx":
        # Imported here: onnx is large, and only a run with .onnx artifacts needs it.
        from edgesparse.formats import onnx as onnx_format

        try:
            return onnx_format.input_stage(blob)
        except EdgesparseError:
            return None
    return None


def split_engine(raw: str | os.PathLike[str]) -> tuple[str | None, Path]:
    """``"c:m.esb"`` -> ("c", Path("m.esb")); anything else -> (None, Path(raw))."""
    text = os.fspath(raw)
    prefix, sep, rest = text.partition(":")
    if not sep or prefix not in ENGINE_PREFIXES:
        return None, Path(text)
    p = Path(rest)
    if p.suffix.lower() not in ENGINE_PREFIXES[prefix]:
        raise InputError(
            f"engine {prefix!r} runs {', '.join(ENGINE_PREFIXES[prefix])} files, not {p.name!r}; "
            f"compress the model first (edgesparse compress MODEL -o m.esb) and pass {prefix}:m.esb"
        )
    return prefix, p


def labels_of(labels: str | os.PathLike[str] | None, dataset: Any) -> np.ndarray | None:
    """The true labels of a run on rows: the ``--labels`` ``.npy``, else the data's ``y``."""
    if labels is None:
        return dataset.y
    p = Path(labels)
    if not p.is_file():
        raise ModelFileError(f"labels file not found: {p} (check the path)")
    with open(p, "rb") as fh:
        is_npy = fh.read(len(NPY_MAGIC)) == NPY_MAGIC
    if not is_npy:
        kind = sniff(p)
        raise InputError(
            f"{p} is {kind.what if kind else 'not a .npy array'}; --labels reads a .npy array "
            "(numpy.save('y.npy', y)), or give --data an .npz with X and y"
        )
    try:
        y = np.load(p, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise InputError(f"{p} is not a plain .npy array ({exc})") from None
    if not isinstance(y, np.ndarray) or y.ndim == 0 or y.shape[0] != dataset.X.shape[0]:
        shape = getattr(y, "shape", None)
        raise InputError(
            f"{p}: labels have shape {shape} but the data has {dataset.X.shape[0]} rows"
        )
    return y


def linear_reference(
    arts: list[Artifact], X: Any, y: np.ndarray | None
) -> tuple[str | None, str | None, np.ndarray | None, str]:
    """(kind, source, predictions, task): what each probe's ``agreement`` compares with,
    computed here on the host. scikit-learn's own predictions when a scikit-learn model is
    among the artifacts; else the labels; else the first artifact's host predictions (kind
    "artifact": a cross-target consistency check, not an external reference)."""
    first = next(
        (a for a in arts if a.engine == "sklearn"),
        next((a for a in arts if a.engine != "c"), arts[0]),
    )
    # A C artifact's blob is read with the numpy runtime (same file, same predictions).
    model = load_artifact("esb" if first.engine == "c" else first.engine, str(first.path), 1)
    task = "classification" if hasattr(model, "classes_") else "regression"
    if first.engine == "sklearn":
        pred = np.asarray(model.predict(prepare_input("sklearn", X)))
        return "sklearn", first.name, savable(pred), task
    if y is not None:
        return "labels", "labels", savable(y), task
    pred = np.asarray(model.predict(X))
    how = " (numpy runtime)" if first.engine == "c" else ""
    return "artifact", f"{first.name} on the host{how}", savable(pred), task


def savable(a: np.ndarray) -> np.ndarray:
    """``a`` as an array ``numpy.save`` writes without pickle."""
    # Object arrays (string labels from some estimators) cannot be saved without pickle.
    return a.astype(str) if a.dtype.kind == "O" else a
