"""k-NN recommender benchmark: Surprise's pickle vs the ``.esb`` v2 blob + numpy runtime.

Two generated rating tables (``models/train_knn.py``, seeded; nothing downloaded): the committed
example (120 users x 80 items) and a larger one (1500 users x 800 items, 5 % rated), each with
``KNNWithMeans(k=20, cosine, user-based)``. For each compression setting it measures, in one
run on this machine:

* bytes: the Surprise pickle vs the ``.esb`` blob;
* accuracy: RMSE on the held-out ratings, Surprise's own ``predict`` vs the blob's runtime;
* latency: median single-pair ``predict`` and a batch of 1000 pairs (``predict_many``) vs a
  loop of Surprise's ``predict`` (Surprise has no batch call);
* memory: peak RSS (VmHWM) of a fresh process that loads the model and predicts 1000 pairs,
  the blob with numpy only vs the unpickled Surprise model.

Prints a Markdown table and writes JSON (``--out``, default benchmarks/results/knn.json).
Compare ratios, not absolute numbers: the machines are shared and noisy.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import pickle
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _measure import peak_rss_kib  # noqa: E402  (benchmarks/, this script's folder)

import edgesparse  # noqa: E402
from edgesparse.api import compress_knn  # noqa: E402
from edgesparse.formats import knn as esb_knn  # noqa: E402

_spec = importlib.util.spec_from_file_location("train_knn", ROOT / "models" / "train_knn.py")
assert _spec is not None and _spec.loader is not None
train_knn = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(train_knn)

DATASETS = {
    "example 120x80": dict(),
    "large 1500x800": dict(n_users=1500, n_items=800, density=0.05),
}
# name -> (neighbours per row, similarity storage)
SETTINGS = {
    "exact (all, f64)": ("all", "none"),
    "default (all, 8-bit)": ("all", "int8"),
    "exact, 8-bit": ("exact", "int8"),
    "top-4k, 8-bit": (80, "int8"),
    "top-k, 8-bit": (20, "int8"),
}


def median_us(fn: Any, *, min_time: float = 0.3, max_runs: int = 3000) -> float:
    fn()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < max_runs and (time.perf_counter() - start < min_time or len(times) < 5):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times) * 1e6)


def rmse(est: np.ndarray, truth: np.ndarray) -> float:
    return math.sqrt(float(np.mean((est - truth) ** 2)))


def bench_dataset(name: str, params: dict[str, Any], work: Path) -> list[dict[str, Any]]:
    from surprise import KNNWithMeans

    train, test = train_knn.split(train_knn.make_ratings(**params))
    ts = train_knn.trainset(train)
    algo = KNNWithMeans(k=20, sim_options={"name": "cosine", "user_based": True}, verbose=False)
    algo.fit(ts)
    pkl = work / "knn.pkl"
    pkl.write_bytes(pickle.dumps(algo, protocol=5))
    pairs = [(u, i) for u, i, _ in test]
    truth = np.array([r for *_, r in test])
    batch = [pairs[j % len(pairs)] for j in range(1000)]
    ref = np.array([algo.predict(u, i).est for u, i in pairs])
    s_single = median_us(lambda: algo.predict(*pairs[0]))
    s_batch = median_us(lambda: [algo.predict(u, i).est for u, i in batch], min_time=1.0)
    pairs_file = work / "pairs.json"
    pairs_file.write_text(json.dumps(batch))
    s_rss = peak_rss_kib(
        f"import json, pickle\nalgo = pickle.load(open({str(pkl)!r}, 'rb'))\n"
        f"e = [algo.predict(u, i).est for u, i in json.load(open({str(pairs_file)!r}))]"
    )
    floor = peak_rss_kib("")
    rows = []
    for setting, (neighbours, quantize) in SETTINGS.items():
        _, ir = compress_knn(algo, neighbours=neighbours, quantize=quantize)
        blob = work / "knn.esb"
        n_bytes = esb_knn.write(ir, blob)
        model = edgesparse.load(blob)
        est = model.predict_many(pairs)
        rows.append(
            {
                "dataset": name,
                "setting": setting,
                "n_users": ir.n_users,
                "n_items": ir.n_items,
                "n_ratings": ir.n_ratings,
                "similarities": ir.sim_nnz,
                "pickle_bytes": pkl.stat().st_size,
                "esb_bytes": n_bytes,
                "size_ratio": pkl.stat().st_size / n_bytes,
                "test_pairs": len(pairs),
                "rmse_surprise": rmse(ref, truth),
                "rmse_esb": rmse(est, truth),
                "rmse_change": rmse(est, truth) / rmse(ref, truth) - 1,
                "max_abs_delta": float(np.max(np.abs(est - ref))),
                "single_us_esb": median_us(lambda m=model: m.predict(*pairs[0])),
                "single_us_surprise": s_single,
                "batch1000_us_esb": median_us(lambda m=model: m.predict_many(batch), min_time=1.0),
                "batch1000_us_surprise": s_batch,
                "peak_rss_kib_esb": peak_rss_kib(
                    f"import json, edgesparse\nm = edgesparse.load({str(blob)!r})\n"
                    f"e = m.predict_many([tuple(p) for p in json.load(open({str(pairs_file)!r}))])"
                ),
                "peak_rss_kib_surprise": s_rss,
                "peak_rss_kib_numpy_floor": floor,
            }
        )
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| data | setting | pickle KiB | .esb KiB | ratio | RMSE Surprise -> .esb | "
        "1 pair µs .esb / Surprise | 1000 pairs ms .esb / Surprise | peak RSS MiB .esb / Surprise |"
    )
    lines = [head, "|" + "---|" * 9]
    for r in rows:
        lines.append(
            f"| {r['dataset']} | {r['setting']} | {r['pickle_bytes'] / 1024:,.0f} | "
            f"{r['esb_bytes'] / 1024:,.1f} | {r['size_ratio']:.1f}x | "
            f"{r['rmse_surprise']:.4f} -> {r['rmse_esb']:.4f} ({r['rmse_change']:+.2%}) | "
            f"{r['single_us_esb']:.0f} / {r['single_us_surprise']:.0f} | "
            f"{r['batch1000_us_esb'] / 1000:.1f} / {r['batch1000_us_surprise'] / 1000:.1f} | "
            f"{r['peak_rss_kib_esb'] / 1024:.0f} / {r['peak_rss_kib_surprise'] / 1024:.0f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "knn.json")
    args = ap.parse_args(argv)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, params in DATASETS.items():
            rows += bench_dataset(name, params, Path(tmp))
    print(table(rows))
    import surprise

    result = {
        "machine": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "surprise": surprise.__version__,
            "cpu": platform.processor() or platform.machine(),
        },
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
