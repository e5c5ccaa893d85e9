"""Accuracy-aware compression benchmark: does the certified budget hold on rows the run never
saw, and how much sparsity does it reach as calibration data grows?

For each dataset a model is trained once on a training part; the rest is split, by a fixed
seed, into a calibration *pool* and a large *test* set that neither training nor any compress
run touches. Each run draws ``n`` calibration rows from the pool (seeds 0-4: a different draw
and a different search/certify split each time), runs :func:`edgesparse.api.
compress_to_budget` (95% confidence) and scores the written model against the original
(scikit-learn's ``predict``) on the whole test set. A run "holds" when its test accuracy drop
is within the budget; a run that certifies nothing writes nothing (counted as 0% sparsity,
and as holding: the tool refused).

Datasets (no network: scikit-learn's bundled sets and generators):

* ``digits``: StandardScaler + LogisticRegression on 8x8 digits (64 x 10), 600 training rows,
  calibration up to 600 rows, 597 test rows;
* ``breast_cancer``: StandardScaler + LogisticRegression (30 x 1), 170 training rows,
  calibration up to 200, 199 test rows;
* ``synthetic``: ``make_classification`` (100 features, 20 informative, 5 classes), 10 000
  training rows, calibration 100 ... 10 000, 15 000 test rows;
* ``synthetic_binary``: ``make_classification`` (300 features, 15 informative, 2 classes,
  LogisticRegression C=0.1), same sizes.

The digits goal (>= 80% sparsity within 0.5 pt, certified at 95%) is answered by the rows it
needs: :func:`digits_rows_needed` takes the certified sequence's candidate at 80% sparsity,
measures how often it turns a right answer wrong on the test rows, and computes the fewest
certify rows with which the exact binomial test would certify 0.5 pt at that rate.

Prints a Markdown table and writes JSON (``--out``, default benchmarks/results/budget.json).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edgesparse.api import compress_to_budget  # noqa: E402
from edgesparse.frontends import to_linear_ir as to_ir  # noqa: E402
from edgesparse.passes import certify  # noqa: E402
from edgesparse.passes.candidates import prune_candidate, quantize_as  # noqa: E402
from edgesparse.runtime.model import Model  # noqa: E402

SEEDS = (0, 1, 2, 3, 4)
CONFIDENCE = 0.95


def datasets() -> dict[str, dict[str, Any]]:
    """Each dataset: the trained estimator, the calibration pool, the test set, the runs."""
    from sklearn.datasets import load_breast_cancer, load_digits, make_classification
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def pipe(C: float = 1.0) -> Any:
        return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2000))

    out: dict[str, dict[str, Any]] = {}
    X, y = load_digits(return_X_y=True)
    out["digits"] = _parts(
        pipe(), X, y, train=600, test=597, sizes=(100, 300, 600), budgets=(0.005, 0.01, 0.02)
    )
    X, y = load_breast_cancer(return_X_y=True)
    out["breast_cancer"] = _parts(
        pipe(), X, y, train=170, test=199, sizes=(100, 200), budgets=(0.02, 0.05)
    )
    X, y = make_classification(
        n_samples=40_000,
        n_features=100,
        n_informative=20,
        n_classes=5,
        n_clusters_per_class=1,
        random_state=0,
    )
    out["synthetic"] = _parts(
        pipe(),
        X,
        y,
        train=10_000,
        test=15_000,
        sizes=(100, 300, 1000, 3000, 10_000),
        budgets=(0.005, 0.01),
    )
    X, y = make_classification(
        n_samples=40_000, n_features=300, n_informative=15, n_redundant=5, random_state=1
    )
    out["synthetic_binary"] = _parts(
        pipe(0.1),
        X,
        y,
        train=10_000,
        test=15_000,
        sizes=(100, 300, 1000, 3000, 10_000),
        budgets=(0.005, 0.01),
    )
    return out


def _parts(
    est: Any,
    X: np.ndarray,
    y: np.ndarray,
    *,
    train: int,
    test: int,
    sizes: tuple[int, ...],
    budgets: tuple[float, ...],
) -> dict[str, Any]:
    order = np.random.default_rng(12345).permutation(len(y))
    tr, te, pool = order[:train], order[train : train + test], order[train + test :]
    est.fit(X[tr], y[tr])
    return {
        "est": est,
        "pool": (X[pool], y[pool]),
        "test": (X[te], y[te]),
        "sizes": tuple(min(s, pool.size) for s in sizes),
        "budgets": budgets,
        "shape": f"{len(np.unique(y))} classes x {X.shape[1]} features",
    }


def one_run(d: dict[str, Any], *, n: int, budget: float, seed: int, refit: bool) -> dict[str, Any]:
    """Compress with ``n`` calibration rows drawn from the pool; score on the test set."""
    Xp, yp = d["pool"]
    Xt, yt = d["test"]
    idx = np.random.default_rng(1000 + seed).choice(yp.size, size=n, replace=False)
    started = time.perf_counter()
    res = compress_to_budget(
        d["est"],
        Xp[idx],
        yp[idx],
        max_accuracy_drop=budget,
        seed=seed,
        refit=refit,
        confidence=CONFIDENCE,
    )
    seconds = time.perf_counter() - started
    ref = d["est"].predict(Xt)
    row: dict[str, Any] = {
        "n": n,
        "budget": budget,
        "seed": seed,
        "refit": refit,
        "certified": res.met,
        "seconds": seconds,
    }
    if not res.met:
        return {**row, "sparsity": 0.0, "test_drop": 0.0, "holds": True}
    new = Model(res.ir).predict(Xt)
    drop = float(np.mean(ref == yt) - np.mean(new == yt))
    return {
        **row,
        "sparsity": res.report["chosen"]["sparsity"],
        "test_drop": drop,
        "holds": drop <= budget + 1e-12,
        "chosen": res.report["chosen"],
    }


def digits_goal(*, budget: float = 0.005, sparsity: float = 0.8) -> dict[str, Any]:
    """The committed digits pipeline at ``sparsity``: how many certify rows would certify
    ``budget``? For each family x importance (and with a refit on its training rows), the
    candidate keeping the most units at that sparsity is built; the one turning the fewest of
    ``digits_pipeline.train.npz``'s right answers wrong is chosen (never on the test rows),
    then its right -> wrong and wrong -> right rates are measured on the 450 unseen rows of
    ``.test.npz`` and the fewest certify rows with which the count or net test certifies
    ``budget`` at those rates are computed (None: not at any count, the measured drop is above
    the budget)."""
    from edgesparse.data import load_dataset
    from edgesparse.loader import load_model
    from edgesparse.passes.candidates import FAMILIES, IMPORTANCES, keep_grid, n_units
    from edgesparse.passes.refit import Penalty, refit

    est = load_model(ROOT / "models" / "digits_pipeline.pkl")
    train = load_dataset(ROOT / "models" / "digits_pipeline.train.npz")
    test = load_dataset(ROOT / "models" / "digits_pipeline.test.npz")
    ir = to_ir(est)
    cells = ir.n_outputs * ir.n_features
    mean, std = train.X.mean(axis=0), train.X.std(axis=0)
    penalty = Penalty(total=1.0 / est.steps[-1][1].C)

    def wrong(model_ir: Any, X: np.ndarray, y: np.ndarray) -> int:
        return int(np.sum((est.predict(X) == y) & (Model(model_ir).predict(X) != y)))

    options = []
    for fam in FAMILIES:
        for imp in IMPORTANCES:
            for k in keep_grid(n_units(ir, family=fam), factor=0.99):
                pruned = prune_candidate(ir, family=fam, importance=imp, keep=k, mean=mean, std=std)
                if 1 - quantize_as(pruned, "int8-per-row").nnz / cells >= sparsity:
                    break
            for refitted in (False, True):
                cand = (
                    refit(pruned, train.X, train.y, penalty=penalty, teacher=ir).ir
                    if (refitted)
                    else pruned
                )
                cand = quantize_as(cand, "int8-per-row")
                options.append((wrong(cand, train.X, train.y), fam, imp, refitted, cand))
    k_train, fam, imp, refitted, cand = min(options, key=lambda o: o[0])
    k = wrong(cand, test.X, test.y)
    j = int(np.sum((est.predict(test.X) != test.y) & (Model(cand).predict(test.X) == test.y)))
    m = test.y.size
    drop = (k - j) / m
    needed = None
    if drop < budget:
        # The fewest certify rows at which the measured rates pass the better exact test.
        n = certify.rows_needed(budget=budget, alpha=1 - CONFIDENCE) or 1
        while n < 10**7:
            kk, jj = math.floor(k / m * n), math.ceil(j / m * n)
            p = min(
                certify.binomial_p_value(events=kk, rows=n, budget=budget),
                certify.net_p_value(worse=kk, better=jj, rows=n, budget=budget),
            )
            if p <= 1 - CONFIDENCE:
                break
            n += max(1, n // 200)
        needed = n
    return {
        "family": f"{fam}/{imp}",
        "refit": refitted,
        "sparsity": 1 - cand.nnz / cells,
        "train_right_to_wrong": k_train,
        "test_rows": m,
        "test_right_to_wrong": k,
        "test_wrong_to_right": j,
        "test_drop": drop,
        "certify_rows_needed": needed,
        "calibration_rows_needed": None if needed is None else math.ceil(needed / 0.7),
    }


def table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| dataset | budget | calibration rows | certified | sparsity, mean (min-max) "
        "| test drop, mean (worst) | within budget | s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    keys = sorted(
        {(r["dataset"], r["budget"], r["refit"], r["n"]) for r in results},
        key=lambda k: (k[0], k[1], k[2], k[3]),
    )
    for name, budget, refit, n in keys:
        rs = [
            r
            for r in results
            if (r["dataset"], r["budget"], r["refit"], r["n"]) == (name, budget, refit, n)
        ]
        sp_ = [r["sparsity"] for r in rs]
        drops = [r["test_drop"] for r in rs if r["certified"]]
        drop = f"{np.mean(drops) * 100:+.2f} pt ({max(drops) * 100:+.2f})" if drops else "-"
        lines.append(
            f"| {name}{' +refit' if refit else ''} | {budget:.1%} | {n} "
            f"| {sum(r['certified'] for r in rs)}/{len(rs)} "
            f"| {np.mean(sp_):.1%} ({min(sp_):.0%}-{max(sp_):.0%}) | {drop} "
            f"| {sum(r['holds'] for r in rs)}/{len(rs)} "
            f"| {np.mean([r['seconds'] for r in rs]):.2f} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "budget.json")
    ap.add_argument("--quick", action="store_true", help="2 seeds, fewer sizes (smoke run)")
    args = ap.parse_args()
    seeds = SEEDS[:2] if args.quick else SEEDS
    results: list[dict[str, Any]] = []
    data = datasets()
    for name, d in data.items():
        sizes = d["sizes"][:2] if args.quick else d["sizes"]
        plans = [(b, False) for b in d["budgets"]]
        if name == "digits":
            plans.append((0.01, True))
        for budget, refit in plans:
            for n in sizes:
                for seed in seeds:
                    r = one_run(d, n=n, budget=budget, seed=seed, refit=refit)
                    results.append({"dataset": name, "shape": d["shape"], **r})
            print(f"{name} budget {budget} refit {refit}: done", file=sys.stderr)
    goal = [digits_goal(sparsity=f) for f in (0.8, 0.7, 0.6)]
    held = sum(r["holds"] for r in results)
    print(table(results))
    print(
        f"\nwithin budget on the test set: {held}/{len(results)} runs "
        f"({held / len(results):.1%}); certified: "
        f"{sum(r['certified'] for r in results)}/{len(results)}"
    )
    for g in goal:
        print(f"digits goal: {json.dumps(g)}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "machine": platform.platform(),
        "python": platform.python_version(),
        "confidence": CONFIDENCE,
        "runs": [{k: v for k, v in r.items() if k != "chosen"} for r in results],
        "within_budget": held / len(results),
        "digits_goal": goal,
    }
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
