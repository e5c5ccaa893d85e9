"""The host side of a recommender bench: recommender ``.esb`` blobs (version 2, k-NN;
version 3, matrix factorization) timed on every target on held-out ``user,item[,rating]``
pairs, next to the Surprise pickle they came from (host only, the reference). The on-target
side is :mod:`edgesparse.bench.probe_knn`.

:func:`prepare` reads and checks the pairs once, here. A pair whose user or item some blob does
not know is left out of the run, and counted (``Prepared.unknown_pairs``, the report says how
many): it would be answered by the global-mean fallback, which times and scores something else
than the model, and a real held-out file has such cold-start pairs. A file with no known pair is
refused. The reference estimates are computed on the host: Surprise's own ``predict`` when the
pickle is among the artifacts (as the linear bench takes scikit-learn's), else the first
blob's (a cross-target check; the ratings are scored on their own, never as the reference). It
writes what the probes read: the pairs as JSON (ints and strings stay apart), the ratings and
the reference as ``.npy``.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

from edgesparse.bench.engines import Artifact
from edgesparse.data import read_pairs
from edgesparse.errors import InputError
from edgesparse.fileio import atomic_write_bytes

#: Why the Surprise pickle is not timed off the host.
SURPRISE_HOST_ONLY = (
    "Surprise models run on the host only (the reference; Surprise is never installed on a target)"
)
#: Header names of a pairs file's first column (as :func:`edgesparse.data.read_pairs` skips).
_PAIR_HEADERS = ("user", "uid", "user_id")

__all__ = [
    "SURPRISE_HOST_ONLY",
    "Prepared",
    "check_artifacts",
    "looks_like_pairs",
    "prepare",
]


@dataclasses.dataclass(frozen=True)
class Prepared:
    """What the probes of a recommender run share: the pairs file (JSON) and the reference
    and ratings (None where absent), with the reference's kind and source for the results;
    ``pairs`` themselves, for the C driver."""

    data: Path
    n_pairs: int
    ratings: np.ndarray | None
    reference: np.ndarray | None
    ref_kind: str | None
    ref_source: str | None
    unknown_pairs: int = 0
    """Pairs of the file left out: a user or item some blob does not know."""
    pairs: tuple[tuple[Any, Any], ...] = ()


def looks_like_pairs(path: Path) -> bool:
    """Whether ``path`` is a text table whose header names a user column (``user,item...``),
    the way recommender pairs files start; a binary or unreadable file is not."""
    if path.suffix.lower() not in (".csv", ".tsv", ".txt"):
        return False
    try:
        with open(path, encoding="utf-8", errors="strict") as fh:
            first = fh.readline(4096)
    except (OSError, UnicodeDecodeError):
        return False
    return first.replace("\t", ",").split(",")[0].strip().lower() in _PAIR_HEADERS


def check_artifacts(arts: list[Artifact], *, surprise: set[str]) -> list[Artifact]:
    """The artifacts of a recommender run, each pickle re-tagged with engine ``surprise``
    (``surprise`` holds the names of the pickles that are Surprise recommenders).

    Raises:
        InputError: a linear or ONNX artifact, or a pickle that is not a Surprise recommender,
            among recommender blobs (one run times one kind of model on one kind of data).
    """
    out: list[Artifact] = []
    for art in arts:
        if art.engine in ("esb", "c") and not art.knn:
            raise InputError(
                f"cannot benchmark {art.name} with recommender blobs: it is a linear "
                "model, which takes rows of features; bench it in its own run (--data X.npz)"
            )
        if art.engine == "onnx":
            raise InputError(
                f"cannot benchmark {art.name} with recommender blobs: ONNX artifacts are "
                "linear models; bench it in its own run (--data X.npz)"
            )
        if art.engine == "sklearn":
            if art.name not in surprise:
                raise InputError(
                    f"cannot benchmark {art.name} with recommender blobs: it is not a "
                    "Surprise recommender (give the pickle the blob was compressed from)"
                )
            art = dataclasses.replace(art, engine="surprise")
        out.append(art)
    return out


def prepare(
    arts: list[Artifact], *, data: Path, workdir: Path, surprise_model: Any | None
) -> Prepared:
    """Read and check the pairs, compute the reference on the host and write the probes'
    inputs into ``workdir`` (module docstring). ``surprise_model`` is the Surprise algorithm
    of the run's pickle, or None.

    Raises:
        InputError: ``data`` is not a pairs CSV (e.g. a feature matrix), or none of its
            pairs names a user and an item every blob knows.
        ModelFileError: ``data`` is missing.
    """
    from edgesparse.runtime import load

    blobs = [a for a in arts if a.knn and a.engine == "esb"] or [a for a in arts if a.knn]
    models = {a.path: load(a.path) for a in blobs}
    first = models[blobs[0].path]
    try:
        pairs, ratings = read_pairs(
            data,
            user_ids=first.ir.user_ids,
            item_ids=first.ir.item_ids,
            columns="user,item[,rating]",
        )
    except InputError as exc:
        raise InputError(f"cannot benchmark {blobs[0].name} on {data.name}: {exc}") from None
    pairs, ratings, unknown = _known_pairs(pairs, ratings, [models[a.path] for a in blobs])
    if not pairs:
        raise InputError(
            f"{data}: none of its {unknown} pairs names a user and an item that "
            f"{blobs[0].name} knows; the bench times the model on held-out pairs of known "
            "users and items"
        )
    if surprise_model is not None:
        from edgesparse.bench.probe_knn import SurpriseRecommender

        ref = SurpriseRecommender(surprise_model).predict_many(pairs)
        source = next(a.name for a in arts if a.engine == "surprise")
        kind, reference = "surprise", np.asarray(ref, dtype=np.float64)
    else:
        kind, source = "artifact", f"{blobs[0].name} on the host"
        reference = np.asarray(first.predict_many(pairs), dtype=np.float64)
    users = list(dict.fromkeys(u for u, _ in pairs))  # each once, in the file's order
    path = workdir / "pairs.json"
    payload = {"pairs": [list(p) for p in pairs], "users": users}
    atomic_write_bytes(path, json.dumps(payload).encode("utf-8"))
    return Prepared(
        data=path,
        n_pairs=len(pairs),
        ratings=ratings,
        reference=reference,
        ref_kind=kind,
        ref_source=source,
        unknown_pairs=unknown,
        pairs=tuple(pairs),
    )


def _known_pairs(
    pairs: list[tuple[Any, Any]], ratings: np.ndarray | None, models: list[Any]
) -> tuple[list[tuple[Any, Any]], np.ndarray | None, int]:
    """The pairs (and their ratings) whose user and item every model knows, and how many
    were left out (module docstring says why)."""
    keep = np.ones(len(pairs), dtype=bool)
    for model in models:
        users, items = set(model.ir.user_ids), set(model.ir.item_ids)
        keep &= np.array([u in users and i in items for u, i in pairs], dtype=bool)
    kept = [p for p, k in zip(pairs, keep.tolist(), strict=True) if k]
    return kept, None if ratings is None else ratings[keep], int(np.count_nonzero(~keep))
