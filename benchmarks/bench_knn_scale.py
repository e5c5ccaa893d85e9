"""k-NN recommenders at MovieLens-1M size: Surprise's pickle vs the ``.esb`` blob.

A generated table of MovieLens-1M's shape (``models/train_knn.py``: 6 040 users x 3 706 items,
~1 M ratings, density ~4.5 %, seeded; nothing downloaded), 2 % held out. Models: item-based
``KNNWithMeans`` (cosine) and ``KNNBaseline`` (pearson_baseline), k=40; ``--user-based`` adds
the user-based pair (~2 GiB and ~2 minutes each in Surprise). For each, in one run:

* Surprise: fit time, pickle bytes, its own ``predict`` on the held-out pairs (RMSE, MAE);
* ``edgesparse compress`` (defaults: every similarity, 8-bit) in a fresh process: wall time
  and peak RSS (VmHWM), and the blob's bytes;
* the numpy runtime: load time, ``predict(user, item)`` (batch 1), ``predict_many`` of 1000
  pairs, ``recommend(user, n=10)``, and RMSE/MAE on the held-out pairs against Surprise's.

Prints a Markdown table and writes JSON (``--out``, default benchmarks/results/knn_scale.json).
Compare ratios, not absolute numbers: the machines are shared and noisy.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import math
import pickle
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _measure import CHILD_ENV, ROOT

sys.path.insert(0, str(ROOT))
import edgesparse

_spec = importlib.util.spec_from_file_location("train_knn", ROOT / "models" / "train_knn.py")
assert _spec is not None and _spec.loader is not None
train_knn = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(train_knn)

# Compress in a fresh process: its wall time and peak RSS are the figures.
COMPRESS = """
import sys, time
from edgesparse.pipeline import CompressOptions, compress_file
start = time.perf_counter()
compress_file(CompressOptions(source=sys.argv[1], output=sys.argv[2]))
secs = time.perf_counter() - start
rss = [l.split()[1] for l in open("/proc/self/status") if l.startswith("VmHWM")][0]
print(secs, rss)
"""


def median_us(fn: Any, *, min_time: float = 0.3, max_runs: int = 2000) -> float:
    fn()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < max_runs and (time.perf_counter() - start < min_time or len(times) < 5):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times) * 1e6)


def errors(est: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """(RMSE, MAE)."""
    d = est - truth
    return math.sqrt(float(np.mean(d**2))), float(np.mean(np.abs(d)))


def compress_child(pkl: Path, blob: Path) -> tuple[float, int]:
    """(seconds, peak RSS KiB) of ``compress_file`` in a fresh process."""
    out = subprocess.run(
        [sys.executable, "-c", COMPRESS, str(pkl), str(blob)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env=CHILD_ENV,
    )
    secs, rss = out.stdout.split()[-2:]
    return float(secs), int(rss)


def surprise_side(algo: Any, pairs: list) -> tuple[np.ndarray, float]:
    """(Surprise's estimates of ``pairs``, its median single-pair predict in µs)."""
    ref = np.array([algo.predict(u, i).est for u, i in pairs])
    return ref, median_us(lambda: algo.predict(*pairs[0]))


def bench_model(name: str, train: list, test: list, work: Path) -> dict[str, Any]:
    algo, fit_s = train_knn.fit_movielens_1m(train, name)
    pkl = work / f"{name}.pkl"
    pkl.write_bytes(pickle.dumps(algo, protocol=5))
    pairs = [(u, i) for u, i, _ in test]
    truth = np.array([r for *_, r in test])
    ref, s_single = surprise_side(algo, pairs)
    del algo  # a user-based model holds ~1 GiB
    gc.collect()
    blob = work / f"{name}.esb"
    compress_s, compress_kib = compress_child(pkl, blob)
    start = time.perf_counter()
    model = edgesparse.load(blob)
    load_s = time.perf_counter() - start
    est = model.predict_many(pairs)
    batch = [pairs[j % len(pairs)] for j in range(1000)]
    users = [u for u, _ in pairs[:50]]
    nxt = iter(range(10**9))
    rmse_s, mae_s = errors(ref, truth)
    rmse_e, mae_e = errors(est, truth)
    row = {
        "model": name,
        "n_users": model.ir.n_users,
        "n_items": model.ir.n_items,
        "similarities": model.ir.sim_nnz,
        "train_ratings": len(train),
        "test_pairs": len(pairs),
        "surprise_fit_s": fit_s,
        "pickle_bytes": pkl.stat().st_size,
        "esb_bytes": blob.stat().st_size,
        "compress_s": compress_s,
        "compress_peak_rss_kib": compress_kib,
        "load_s": load_s,
        "predict1_us": median_us(lambda: model.predict(*pairs[0])),
        "predict1_us_surprise": s_single,
        "predict1000_us": median_us(lambda: model.predict_many(batch), min_time=1.0),
        "recommend10_us": median_us(
            lambda: model.recommend(users[next(nxt) % len(users)], n=10), min_time=1.0
        ),
        "rmse_surprise": rmse_s,
        "mae_surprise": mae_s,
        "rmse_esb": rmse_e,
        "mae_esb": mae_e,
        "max_abs_delta": float(np.max(np.abs(est - ref))),
    }
    pkl.unlink()
    return row


def table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| model | Surprise fit s | pickle MiB | .esb MiB | ratio | compress s / peak MiB | "
        "RMSE Surprise -> .esb | MAE Surprise -> .esb | predict µs (1) | 1000 pairs ms | "
        "recommend n=10 ms |"
    )
    lines = [head, "|" + "---|" * 11]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['surprise_fit_s']:.0f} | {r['pickle_bytes'] / 2**20:,.1f} | "
            f"{r['esb_bytes'] / 2**20:,.1f} | {r['pickle_bytes'] / r['esb_bytes']:.1f}x | "
            f"{r['compress_s']:.0f} / {r['compress_peak_rss_kib'] / 1024:,.0f} | "
            f"{r['rmse_surprise']:.4f} -> {r['rmse_esb']:.4f} | "
            f"{r['mae_surprise']:.4f} -> {r['mae_esb']:.4f} | "
            f"{r['predict1_us']:.0f} (Surprise {r['predict1_us_surprise']:.0f}) | "
            f"{r['predict1000_us'] / 1000:.1f} | {r['recommend10_us'] / 1000:.1f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=1.0, help="table size (1.0: ~1 M ratings)")
    ap.add_argument("--user-based", action="store_true", help="also the user-based models")
    ap.add_argument("--work", type=Path, default=train_knn.ML1M_OUT, help="where files go")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "knn_scale.json")
    args = ap.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    rows_all = train_knn.make_movielens_1m(scale=args.scale)
    gen_s = time.perf_counter() - start
    train, test = train_knn.split(rows_all, test_fraction=train_knn.ML1M_TEST_FRACTION)
    del rows_all
    rows = []
    for name, (_, _, user_based) in train_knn.ML1M_MODELS.items():
        if user_based and not args.user_based:
            continue
        rows.append(bench_model(name, train, test, args.work))
        print(table(rows[-1:]).splitlines()[-1], flush=True)
    print(table(rows))
    import surprise

    result = {
        "machine": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "surprise": surprise.__version__,
            "cpu": platform.processor() or platform.machine(),
        },
        "table": {"scale": args.scale, "ratings": len(train) + len(test), "generate_s": gen_s},
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
