"""Engine ``c`` on k-NN recommender blobs (``c:knn.esb``): the C driver's k-NN commands
(``edgesparse/runtime/c/esb_rec_main.c``) measuring what :mod:`edgesparse.bench.probe_knn`
measures with the numpy runtime, on the same pairs.

- Per batch size ``N``: ``esb bench KNN.esb pairs.csv RUNS WARMUP --batch N``, one timed call
  being N consecutive pairs through ``esb_knn_predict`` (ids looked up before timing; the C
  runtime has no batch call, so ``api`` is ``one-row``).
- ``recommend``: ``esb bench KNN.esb users.csv R W --op recommend``, where ``users.csv`` holds
  one pair per user of the pairs file, in the file's order, so call k recommends 10 items to
  user k, as the probe does; ``R`` and ``W`` are the probe's (:data:`RECOMMEND_MAX_RUNS`).
- Estimates: ``esb predict KNN.esb pairs.csv`` (estimate and was-impossible flag per pair),
  scored against the ratings and the reference like the probe's.

The pairs are written with a header line and the ids as the driver parses them (decimal ints,
``repr`` of floats, the text of strings). An id holding a comma, tab or line break cannot be
written so; the artifact's rows then fail with that reason.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgesparse.bench.engine_c import INPUT_NAMES, DriverContext, DriverSession, driver_result
from edgesparse.bench.engines import Artifact
from edgesparse.bench.probe_knn import RECOMMEND_MAX_RUNS, RECOMMEND_N, knn_quality
from edgesparse.bench.results_build import Outcome
from edgesparse.bench.transports import failure
from edgesparse.fileio import atomic_write_bytes

__all__ = ["measure", "pairs_context"]

_SEPARATORS = (",", "\t", "\n", "\r")


def pairs_context(
    *,
    workdir: Path,
    pairs: list[tuple[Any, Any]],
    ref: np.ndarray | None,
    ratings: np.ndarray | None,
    common: dict[str, Any],
) -> DriverContext:
    """The driver's context of a recommender run: ``pairs.csv`` and ``users.csv`` written in
    ``workdir`` (module docstring), the reference estimates and the ratings."""
    path, users = workdir / INPUT_NAMES["pairs"], workdir / "users.csv"
    texts = [(_id_text(u), _id_text(i)) for u, i in pairs]
    bad = next((p for p in texts if any(s in t for t in p for s in _SEPARATORS)), None)
    first: dict[str, str] = {}
    for u, i in texts:
        first.setdefault(u, i)
    _write_pairs(path, texts)
    _write_pairs(users, list(first.items()))
    refusal = None
    if bad is not None:
        refusal = (
            f"the id {bad[0] if any(s in bad[0] for s in _SEPARATORS) else bad[1]!r} holds a "
            "comma, tab or line break, which esb's pairs file cannot carry"
        )
    return DriverContext(
        workdir=workdir,
        rows=path,
        n_rows=len(pairs),
        classes={},
        ref=ref,
        y=ratings,
        task="recommendation",
        runs=int(common["runs"]),
        warmup=int(common["warmup"]),
        batch_sizes=list(common["batch_sizes"]),
        input="pairs",
        users=users,
        refusal=refusal,
    )


def _id_text(value: Any) -> str:
    """A raw id as ``esb`` parses it (``repr`` keeps every bit of a float)."""
    return repr(value) if isinstance(value, float) else str(value)


def _write_pairs(path: Path, pairs: list[tuple[str, str]]) -> None:
    # The header line is always there, so that an id "user" on line 1 stays a pair.
    body = "".join(f"{u},{i}\n" for u, i in pairs)
    atomic_write_bytes(path, ("user,item\n" + body).encode("utf-8"))


def measure(session: DriverSession, index: int, art: Artifact) -> Outcome:
    """Time the ``index``-th k-NN blob per batch size and ``recommend``, read its estimates,
    and make the probe-like result (:mod:`edgesparse.bench.probe_knn`'s fields)."""
    ctx, t = session.engine.context(), session.transport
    if ctx.refusal is not None:
        return Outcome(error=session.engine.failure(ctx.refusal))
    runs: list[dict[str, Any]] = []
    for j, batch in enumerate(ctx.batch_sizes):
        args = [session.rows, str(ctx.runs), str(ctx.warmup), "--batch", str(batch)]
        parsed = session.bench(index, args, log=f"c{index}-{j}")
        if isinstance(parsed, str):
            return Outcome(error=parsed)
        runs.append(parsed)
    rec_runs = min(ctx.runs, RECOMMEND_MAX_RUNS)
    args = [str(session.users), str(rec_runs), str(min(ctx.warmup, rec_runs // 10))]
    rec = session.bench(index, [*args, "--op", "recommend"], log=f"c{index}-rec")
    if isinstance(rec, str):
        return Outcome(error=rec)
    argv = [*session.native.argv, session.exe, "predict", session.blobs[index], session.rows]
    res = t.run(argv, env=session.native.env, log=f"c{index}-pred")
    if res.rc != 0:
        why = failure(res.rc, res.stderr, t.timeout_s)
        return Outcome(error=session.engine.failure(f"esb predict: {why}"))
    try:
        est, impossible = _estimates(res.stdout(), ctx.n_rows)
    except (ValueError, IndexError) as exc:
        return Outcome(error=session.engine.failure(f"unreadable estimates ({exc})"))
    result = driver_result(
        t.target, art, ctx, runs, facts=session.facts, environment=session.environment
    )
    result.update(knn_quality(est, ctx.y, ctx.ref))
    result.update(
        agreement=None,
        accuracy=None,
        r2=None,
        impossible_pairs=int(np.count_nonzero(impossible)),
        recommend_latency_us={
            p: float(rec[f"{p}_ns"]) / 1000.0 for p in ("p50", "p90", "p99", "p999", "mean")
        },
        recommend_n=RECOMMEND_N,
        recommend_runs=rec_runs,
    )
    return Outcome(status="ok", result=result)


def _estimates(text: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``esb predict``'s lines (estimate, k, was_impossible, unclipped) -> estimates, flags.

    Raises:
        ValueError: a line count other than ``n``, or a malformed line.
    """
    lines = text.splitlines()
    if len(lines) != n:
        raise ValueError(f"{len(lines)} estimates for {n} pairs")
    fields = [ln.split("\t") for ln in lines]
    est = np.array([float(f[0]) for f in fields], dtype=np.float64)
    return est, np.array([f[2] == "1" for f in fields])
