"""The numpy runtime over batch size x width x density: time and memory must not grow faster
than the work (issue 19, goal 2).

For each width (100, 10^4, 2·10^5 features) and density (100%, 10%, 1% nonzero weights), a
generated 10-class ``LogisticRegression`` is compressed with the library (``compress``, int8)
and written as ``.esb``; ``edgesparse.load`` reads it back. Each model then predicts batches of
1, 10, 100 and 1000 rows, dense float32 and CSR (1% of the input filled), one thread, and
the same CSR nonzeros as ONE row ("csr 1 row": a batch's worth of nonzeros in a single row,
random columns with repeats; its "batch" is the number of 1%-filled rows it stands for, and
its us/row is per such row). Per cell:

* ``us/row``: median seconds of ``predict`` per row, and its ratio to bench_runtime's floor
  (the best of numpy's ``X @ W`` and scipy's CSR products on the same float32 weights);
* ``peak``: the peak of numpy's allocations during one ``predict`` call (tracemalloc, after a
  warm-up call, so lazily built tables are not counted), the output included;
* ``ws/(in+out+model)``: the workspace (peak minus the output) over the bytes of the input,
  the output and the loaded model's arrays: goal 2 is that this stays bounded.

A cell is flagged when its time or peak per row grows with the batch: time against the floor
(more than 1.5x the best ratio of the smaller batches, and above 1.3x: a cache the input
outgrows slows the floor alike), peak per row more than 1.25x the previous batch's (above
64 KiB of noise). Dense input of 1000 x 2·10^5 (800 MB) is skipped.

Prints a Markdown table and writes JSON (``--out``, default benchmarks/results/sweep.json).
Compare ratios, not absolute numbers: the machines are shared and noisy.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"  # one thread, as bench_runtime

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _measure import ROOT  # noqa: E402

sys.path.insert(0, str(ROOT))
import edgesparse  # noqa: E402
from edgesparse.formats import esb  # noqa: E402

WIDTHS = (100, 10_000, 200_000)
DENSITIES = (1.0, 0.1, 0.01)
BATCHES = (1, 10, 100, 1000)
N_CLASSES = 10
INPUT_FILL = 0.01  # CSR input
MAX_DENSE_CELLS = 2 * 10**7  # larger dense inputs are skipped (80 MB in float32)
TIME_GROWTH = 1.5  # flag: time / floor above this x the best of the smaller batches...
FLOOR_OK = 1.3  # ...and above this (issue 19's goal 1)
MEMORY_GROWTH = 1.25  # flag: peak per row above this x the previous batch's
MEMORY_FLOOR = 64 * 1024  # peaks below this are noise (numpy's small-object pools)


def generated_model(width: int, density: float, tmp: Path, seed: int) -> edgesparse.Model:
    """A generated scikit-learn classifier, compressed by the library, written as .esb and
    loaded back."""
    rng = np.random.default_rng(seed)
    coef = rng.standard_normal((N_CLASSES, width))
    coef[rng.random(coef.shape) >= density] = 0
    est = LogisticRegression()
    est.coef_ = coef
    est.intercept_ = rng.standard_normal(N_CLASSES)
    est.classes_ = np.arange(N_CLASSES)
    est.n_features_in_ = width
    path = tmp / f"sweep_{width}_{density}.esb"
    esb.write(edgesparse.compress(est), path)
    model = edgesparse.load(path)
    assert isinstance(model, edgesparse.Model)
    return model


def model_bytes(model: edgesparse.Model) -> int:
    """Bytes of the numpy arrays a loaded model holds (its IR and its kernel's layout)."""
    seen: dict[int, int] = {}
    for owner in (model, model.ir):
        for value in vars(owner).values():
            arrays = value.values() if isinstance(value, dict) else [value]
            for a in arrays:
                if isinstance(a, np.ndarray):
                    seen[id(a)] = a.nbytes
    return sum(seen.values())


def median_seconds(f: Any, budget: float) -> float:
    """Median seconds of ``f()``, repeated for about ``budget`` seconds (at least 3 times)."""
    f()
    start = time.perf_counter()
    f()
    once = max(time.perf_counter() - start, 1e-7)
    times = []
    for _ in range(int(min(1000, max(3, budget / once)))):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def peak_alloc(f: Any) -> int:
    """Peak bytes numpy allocates during one ``f()`` (after a warm-up call)."""
    f()
    tracemalloc.start()
    try:
        f()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def input_bytes(X: Any) -> int:
    if sp.issparse(X):
        return X.data.nbytes + X.indices.nbytes + X.indptr.nbytes
    return X.nbytes


def one_long_row(batch: int, width: int, rng: np.random.Generator) -> Any:
    """The nonzeros of ``batch`` rows at INPUT_FILL, as one CSR row (random columns, repeats
    allowed, as given: scipy neither sorts nor sums them)."""
    nnz = max(1, round(batch * width * INPUT_FILL))
    data = rng.standard_normal(nnz)
    cols = rng.integers(0, width, nnz, dtype=np.int32)
    return sp.csr_matrix((data, cols, np.array([0, nnz], dtype=np.int32)), shape=(1, width))


def floor_seconds(W: np.ndarray, W_csr: Any, X: Any, budget: float) -> float:
    """The floor of bench_runtime: the best of numpy's dense and scipy's CSR products on the
    same float32 weights (no checks, no bias, no labels)."""
    if sp.issparse(X):
        return min(
            median_seconds(lambda: X @ W, budget), median_seconds(lambda: X @ W_csr.T, budget)
        )
    return min(
        median_seconds(lambda: X @ W, budget), median_seconds(lambda: (W_csr @ X.T).T, budget)
    )


def cell(
    model: edgesparse.Model,
    X: Any,
    weights: tuple[np.ndarray, Any],
    mbytes: int,
    budget: float,
    batch: int | None = None,
) -> dict[str, Any]:
    """Time and memory of ``model.predict(X)`` for one batch (``batch`` rows' worth of work,
    default its row count), and the floor's time."""
    batch = X.shape[0] if batch is None else batch
    seconds = median_seconds(lambda: model.predict(X), budget)
    floor = floor_seconds(*weights, X, budget)
    peak = peak_alloc(lambda: model.predict(X))
    rows = X.shape[0]
    out = rows * N_CLASSES * 4 + rows * 8  # the float32 scores and the int64 labels
    inp = input_bytes(X)
    return {
        "batch": batch,
        "us_per_row": seconds * 1e6 / batch,
        "floor_ratio": seconds / floor,
        "peak_kib": peak / 1024,
        "input_kib": inp / 1024,
        "workspace_ratio": max(0, peak - out) / (inp + out + mbytes),
    }


def flag(rows: list[dict[str, Any]]) -> None:
    """Mark cells whose time or memory per row grows with the batch (same model, input)."""
    for i, r in enumerate(rows):
        smaller = rows[:i]
        r["flag"] = ""
        # Time against the floor's time on the same batch: a cache that the input outgrows
        # slows the floor as much, and is no flaw of the runtime.
        best = min((s["floor_ratio"] for s in smaller), default=np.inf)
        if r["floor_ratio"] > max(FLOOR_OK, TIME_GROWTH * best):
            r["flag"] += "time "
        prev = smaller[-1] if smaller else None
        if (
            prev is not None
            and r["peak_kib"] * 1024 > MEMORY_FLOOR
            and r["peak_kib"] / r["batch"] > MEMORY_GROWTH * prev["peak_kib"] / prev["batch"]
        ):
            r["flag"] += "memory"
        r["flag"] = r["flag"].strip()


def sweep(args: argparse.Namespace, tmp: Path) -> list[dict[str, Any]]:
    """Every (width, density, input) with its cells over the batch sizes."""
    rng = np.random.default_rng(0)
    groups = []
    for width in args.widths:
        for density in args.densities:
            t = time.perf_counter()
            model = generated_model(width, density, tmp, seed=width + int(density * 100))
            mbytes = model_bytes(model)
            W = np.ascontiguousarray(model.ir.to_dense(dtype=np.float32).T)
            weights = (W, sp.csr_matrix(W.T))
            for kind in ("dense f32", "csr 1%", "csr 1 row"):
                rows = []
                for batch in args.batches:
                    if kind == "csr 1%":
                        X = sp.random(batch, width, density=INPUT_FILL, format="csr", rng=rng)
                    elif kind == "csr 1 row":
                        X = one_long_row(batch, width, rng)
                    elif batch * width <= MAX_DENSE_CELLS:
                        X = rng.standard_normal((batch, width), dtype=np.float32)
                    else:
                        continue
                    rows.append(cell(model, X, weights, mbytes, args.budget, batch=batch))
                flag(rows)
                groups.append(
                    {
                        "width": width,
                        "density": density,
                        "nnz": int(model.ir.nnz),
                        "model_kib": mbytes / 1024,
                        "input": kind,
                        "cells": rows,
                    }
                )
            print(f"width {width} density {density}: {time.perf_counter() - t:.1f} s", flush=True)
    return groups


def print_table(groups: list[dict[str, Any]]) -> None:
    batches = sorted({c["batch"] for g in groups for c in g["cells"]})
    head = " | ".join(f"b={b}" for b in batches)
    print(f"\nus/row (x floor), peak KiB, ws/(in+out+model) for batch sizes {head}")
    print("\n| width | density | model | input | " + " | ".join(f"batch {b}" for b in batches))
    print("|---:|---:|---:|---|" + "---:|" * len(batches))
    for g in groups:
        by_batch = {c["batch"]: c for c in g["cells"]}
        parts = []
        for b in batches:
            c = by_batch.get(b)
            if c is None:
                parts.append("-")
                continue
            mark = f" **{c['flag']}**" if c["flag"] else ""
            parts.append(
                f"{c['us_per_row']:.3g} us ({c['floor_ratio']:.2f}x), {c['peak_kib']:.0f} KiB, "
                f"{c['workspace_ratio']:.2f}{mark}"
            )
        print(
            f"| {g['width']} | {g['density']:.0%} | {g['model_kib']:.0f} KiB | {g['input']} | "
            + " | ".join(parts)
            + " |"
        )
    worst = max(c["workspace_ratio"] for g in groups for c in g["cells"])
    flagged = sum(1 for g in groups for c in g["cells"] if c["flag"])
    print(f"\nlargest ws/(in+out+model): {worst:.2f}; flagged cells: {flagged}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", type=float, default=0.15, help="seconds of timing a cell")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "sweep.json")
    parser.add_argument("--widths", type=int, nargs="+", default=list(WIDTHS))
    parser.add_argument("--densities", type=float, nargs="+", default=list(DENSITIES))
    parser.add_argument("--batches", type=int, nargs="+", default=list(BATCHES))
    args = parser.parse_args(argv)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        groups = sweep(args, Path(tmp))
    print_table(groups)
    result = {
        "meta": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "threads": 1,
            "seconds": time.perf_counter() - start,
        },
        "sweep": groups,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
