"""The on-target benchmark of a k-NN recommender (a version-2 ``.esb`` blob on the numpy
runtime, or, on the host only, the Surprise pickle it came from): run by
:func:`edgesparse.bench.probe.main` when the spec's ``task`` is ``"recommendation"``. Standard
library + numpy on the target, like the rest of the probe.

The spec is the probe's (:mod:`edgesparse.bench.probe`) with ``data`` a JSON file written by
the harness: ``{"pairs": [[user, item], ...], "users": [user, ...]}`` (ids as the model knows
them: JSON keeps ints and strings apart), ``reference`` the reference's estimates of every
pair (``.npy``) and ``labels`` the true ratings (``.npy``), each optional.

What is measured: cold start (process start -> model loaded -> first ``predict(user, item)``
returned), the load time and memory exactly as for linear models; per batch size ``N``, one
timed call is ``predict(user, item)`` for N = 1 and ``predict_many`` of N consecutive pairs
(wrapping around) otherwise (for Surprise, which has no batch call, N ``predict`` calls);
``recommend(user, n=10)`` over the file's users in turn, :data:`RECOMMEND_MAX_RUNS` calls at
most (one call scores every item the user has not rated); and the estimates of every pair,
scored against the ratings (RMSE, MAE) and the reference (RMSE, MAE, largest difference).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edgesparse.bench.probe import (
    PROBE_VERSION,
    cold_start_since,
    environment,
    percentiles,
    started_ns,
    timed_load,
)

#: How many items ``recommend`` returns in the bench.
RECOMMEND_N = 10
#: At most this many timed ``recommend`` calls (and a tenth of it warm-up): each one scores
#: every unseen item, hundreds of predictions, which under QEMU takes a good part of a second.
RECOMMEND_MAX_RUNS = 100

__all__ = [
    "RECOMMEND_MAX_RUNS",
    "RECOMMEND_N",
    "SurpriseRecommender",
    "knn_quality",
    "run_knn_probe",
    "scores",
]


class SurpriseRecommender:
    """A Surprise algorithm behind the k-NN runtime's interface (``predict``,
    ``predict_many``, ``recommend``), so both are timed by the same loop. ``recommend`` is
    Surprise's FAQ recipe (``get_top_n``): ``predict`` on every item the user did not rate,
    best first, ties in the trainset's item order."""

    def __init__(self, algo: Any) -> None:
        self.algo = algo
        trainset = algo.trainset
        self._items = [trainset.to_raw_iid(i) for i in trainset.all_items()]
        self._seen = {u: {i for i, _ in trainset.ur[u]} for u in trainset.all_users()}
        self._inner = trainset.to_inner_uid

    def predict(self, uid: Any, iid: Any) -> Any:
        """Surprise's own ``predict``."""
        return self.algo.predict(uid, iid)

    def predict_many(
        self, pairs: list[Any], *, with_flags: bool = False
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Estimates (and ``was_impossible`` flags) of ``pairs``: one ``predict`` each."""
        preds = [self.algo.predict(u, i) for u, i in pairs]
        est = np.array([p.est for p in preds], dtype=np.float64)
        if not with_flags:
            return est
        return est, np.array([bool(p.details.get("was_impossible")) for p in preds])

    def recommend(self, uid: Any, n: int = RECOMMEND_N) -> list[Any]:
        """The ``n`` best items ``uid`` has not rated (all items for an unknown user)."""
        try:
            seen = self._seen[self._inner(uid)]
        except ValueError:  # Surprise's "not part of the trainset"
            seen = set()
        preds = [
            self.algo.predict(uid, iid)
            for inner, iid in enumerate(self._items)
            if inner not in seen
        ]
        order = sorted(range(len(preds)), key=lambda j: -preds[j].est)  # stable for ties
        return [preds[j] for j in order[:n]]


def scores(est: Any, truth: Any) -> dict[str, float]:
    """RMSE, MAE and the largest absolute difference of ``est`` against ``truth``."""
    diff = np.asarray(est, dtype=np.float64) - np.asarray(truth, dtype=np.float64)
    if diff.size == 0:
        raise ValueError("no pairs to score")
    return {
        "rmse": float(np.sqrt(np.mean(diff**2))),
        "mae": float(np.mean(np.abs(diff))),
        "max_abs_diff": float(np.max(np.abs(diff))),
    }


def run_knn_probe(spec: dict[str, Any], *, t0_ns: int | None, t0_clock: str) -> dict[str, Any]:
    """Measure one recommender as ``spec`` says (module docstring); the result dict has the
    probe's fields (``rows`` one per batch size) plus the recommender's."""
    engine = spec["engine"]
    threads = int(spec.get("threads", 1))
    runs, warmup = int(spec["runs"]), int(spec["warmup"])
    guest = spec.get("memory") == "guest-heap"
    clock = time.time_ns if t0_clock == "realtime" else time.monotonic_ns
    started = started_ns(t0_clock)  # raises ValueError for an unknown clock name
    data = json.loads(Path(spec["data"]).read_text(encoding="utf-8"))
    pairs = [(u, i) for u, i in data["pairs"]]
    users = list(data["users"])
    ref = np.load(spec["reference"], allow_pickle=False) if spec.get("reference") else None
    ratings = np.load(spec["labels"], allow_pickle=False) if spec.get("labels") else None

    loaded = timed_load(engine, spec["artifact"], threads, guest_heap=guest)
    model, load_ns = loaded.model, loaded.load_ns
    if engine == "surprise":
        # Its index of rated items (for recommend) is the bench's, not Surprise's load.
        model = SurpriseRecommender(model)
    model.predict(*pairs[0])
    cold_start_ms, cold_method = cold_start_since(clock(), t0_ns, guest)

    est, impossible = model.predict_many(pairs, with_flags=True)
    quality = knn_quality(est, ratings, ref)
    quality["impossible_pairs"] = int(np.count_nonzero(impossible))
    rows = [_latency_row(model, pairs, int(b), runs, warmup) for b in spec["batch_sizes"]]
    rec_runs = min(runs, RECOMMEND_MAX_RUNS)
    rec = _timed(
        lambda k: model.recommend(users[k % len(users)], n=RECOMMEND_N),
        rec_runs,
        min(warmup, rec_runs // 10),
    )
    memory = loaded.memory(spec, threads)
    return {
        "probe_version": PROBE_VERSION,
        "status": "ok",
        "error": None,
        "engine": engine,
        "task": "recommendation",
        "n_rows": len(pairs),
        "load_ms": load_ns / 1e6,
        "cold_start_ms": cold_start_ms,
        "cold_start_method": cold_method,
        "startup_ms": (started - t0_ns) / 1e6 if cold_method == "spawn timestamp" else None,
        "agreement": None,
        "accuracy": None,
        "r2": None,
        **quality,
        "recommend_latency_us": percentiles(rec),
        "recommend_n": RECOMMEND_N,
        "recommend_runs": rec_runs,
        **memory,
        "rows": rows,
        "environment": environment(threads=threads, emulated=guest),
    }


def knn_quality(est: np.ndarray, ratings: Any, ref: Any) -> dict[str, Any]:
    """RMSE/MAE against the true ratings; RMSE/MAE/largest difference against the reference."""
    out: dict[str, Any] = dict.fromkeys(
        ("rmse", "mae", "reference_rmse", "reference_mae", "max_abs_diff")
    )
    if ratings is not None:
        s = scores(est, ratings)
        out["rmse"], out["mae"] = s["rmse"], s["mae"]
    if ref is not None:
        s = scores(est, ref)
        out["reference_rmse"], out["reference_mae"] = s["rmse"], s["mae"]
        out["max_abs_diff"] = s["max_abs_diff"]
    return out


def _timed(call: Callable[[int], Any], runs: int, warmup: int) -> list[int]:
    """Nanoseconds of ``call(k)`` for k in 0..runs-1, after ``warmup`` untimed calls."""
    for k in range(warmup):
        call(k)
    timer = time.perf_counter_ns
    samples = [0] * runs
    for k in range(runs):
        t = timer()
        call(k)
        samples[k] = timer() - t
    return samples


def _latency_row(
    model: Any, pairs: list[Any], batch_size: int, runs: int, warmup: int
) -> dict[str, Any]:
    """Percentiles of ``predict(user, item)`` (batch 1) or ``predict_many`` of ``batch_size``
    pairs, the batches built before timing."""
    n = len(pairs)
    if batch_size == 1:
        predict = model.predict
        samples = _timed(lambda k: predict(*pairs[k % n]), runs, warmup)
    else:
        count = max(1, min(runs + warmup, -(-n // batch_size)))
        batches = [
            [pairs[(s * batch_size + j) % n] for j in range(batch_size)] for s in range(count)
        ]
        many = model.predict_many
        samples = _timed(lambda k: many(batches[k % count]), runs, warmup)
    total_s = sum(samples) / 1e9
    return {
        "batch_size": batch_size,
        "latency_us": percentiles(samples),
        "throughput_rows_per_s": batch_size * runs / total_s if total_s > 0 else None,
        "runs": runs,
    }
