"""Matrix-factorization recommender benchmark: Surprise's pickle vs the ``.esb`` v3 blob.

Generated rating tables (``models/train_knn.py``, seeded; nothing downloaded): the committed
example (120 users x 80 items) and one of MovieLens-100k size (``make_movielens_1m`` at scale
0.1). For each of SVD, SVDpp, NMF and BaselineOnly (Surprise defaults, SVDpp 5 epochs) it
measures bytes (pickle vs blob, float64 and int8 factors), RMSE on the held-out ratings
(Surprise's own ``predict`` vs the blob's runtime), the largest difference from Surprise's
estimate, and that ``recommend`` equals a brute-force ranking of the blob's own scores.

Prints a Markdown table and writes JSON (``--out``, default benchmarks/results/factors.json).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import pickle
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edgesparse.formats import factors as factors_format  # noqa: E402
from edgesparse.frontends.surprise_factors import from_surprise_factors  # noqa: E402
from edgesparse.passes.factors import quantize_factors  # noqa: E402
from edgesparse.runtime.factors import FactorModel  # noqa: E402

MODELS = {
    "SVD": {},
    "SVDpp": {"n_epochs": 5},
    "NMF": {},
    "BaselineOnly": {},
}


def _train_module() -> Any:
    spec = importlib.util.spec_from_file_location("train_knn", ROOT / "models" / "train_knn.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _rmse(est: np.ndarray, truth: np.ndarray) -> float:
    return math.sqrt(float(np.mean((est - truth) ** 2)))


def _recommend_is_exact(model: FactorModel, users: list[Any]) -> bool:
    for uid in users:
        scores = np.clip(model.scores(uid), *model.ir.rating_scale)
        want = [model.ir.item_ids[i] for i in np.argsort(-scores, kind="stable")[:10]]
        if [p.iid for p in model.recommend(uid, 10, exclude_seen=False)] != want:
            return False
    return True


def measure(name: str, rows: list, cls: str) -> dict[str, Any]:
    """One table row: a model trained on ``rows`` (split as the tests split them)."""
    import surprise

    t = _train_module()
    train, test = t.split(rows)
    options = {"verbose": False} if cls == "BaselineOnly" else {"random_state": 0}
    algo = getattr(surprise, cls)(**options, **MODELS[cls]).fit(t.trainset(train))
    pairs, truth = [(u, i) for u, i, _ in test], np.array([r for *_, r in test])
    ref = np.array([algo.predict(u, i).est for u, i in pairs])
    exact = from_surprise_factors(algo)
    out: dict[str, Any] = {
        "data": name,
        "model": cls,
        "pickle_bytes": len(pickle.dumps(algo)),
        "rmse_surprise": _rmse(ref, truth),
    }
    for how in ("none", "int8"):
        blob = factors_format.encode(quantize_factors(exact, how))
        model = FactorModel(factors_format.decode(blob))
        est = model.predict_many(pairs)
        out[f"esb_bytes_{how}"] = len(blob)
        out[f"rmse_{how}"] = _rmse(est, truth)
        out[f"max_abs_delta_{how}"] = float(np.max(np.abs(est - ref)))
        out[f"recommend_exact_{how}"] = _recommend_is_exact(model, list(exact.user_ids[:20]))
    return out


def main() -> None:
    """Run every model on both tables, print the Markdown table, write the JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "factors.json")
    args = ap.parse_args()
    t = _train_module()
    tables = {
        "example 120x80": t.make_ratings(),
        "ML-100k size": t.make_movielens_1m(scale=0.1),
    }
    results = [measure(name, rows, cls) for name, rows in tables.items() for cls in MODELS]
    print(
        "| data | model | pickle KiB | .esb KiB f64 / int8 | ratio (int8) | RMSE Surprise → "
        "int8 .esb | max |Δ est| f64 / int8 | recommend exact |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        kib = lambda n: f"{n / 1024:.1f}"  # noqa: E731
        change = (r["rmse_int8"] / r["rmse_surprise"] - 1) * 100
        print(
            f"| {r['data']} | {r['model']} | {kib(r['pickle_bytes'])} | "
            f"{kib(r['esb_bytes_none'])} / {kib(r['esb_bytes_int8'])} | "
            f"{r['pickle_bytes'] / r['esb_bytes_int8']:.1f}x | {r['rmse_surprise']:.4f} → "
            f"{r['rmse_int8']:.4f} ({change:+.2f}%) | {r['max_abs_delta_none']:.1g} / "
            f"{r['max_abs_delta_int8']:.2g} | "
            f"{'yes' if r['recommend_exact_none'] and r['recommend_exact_int8'] else 'NO'} |"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
