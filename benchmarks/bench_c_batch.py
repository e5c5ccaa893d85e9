"""C runtime at batch 1000: the batch call vs the per-row loop vs the numpy runtime.

For every model of benchmarks/bench_c.py found in models/ (the large ones after ``python
models/train.py --large``; skipped when absent), compressed with the defaults (int8 per row),
on the same 1000 held-out rows (repeated when there are fewer):

* C batch call: ``esb bench ... --batch 1000`` (edgesparse/runtime/c/esb_main.c, gcc -O2
  -static): one ``esb_predict_batch`` call over the 1000 rows (esb_decision_batch for
  regressors), each call timed on its own, in the default workspace (esb_workspace_size_fast:
  the dense or transposed layout). CSR rows have no batch call: one call per row.
* C per-row loop: the same with ``--one-row``: 1000 ``esb_predict`` calls, what the driver
  did before the batch API.
* numpy: ``Model.predict(X)`` on the same rows in this process (perf_counter_ns), the faster
  of float32 and float64 input (the C runtime reads float32).

Medians of RUNS calls. Goal (issue 19): C batch call <= 1.0x numpy. Prints a Markdown table
and writes JSON (``--out``, default benchmarks/results/c_batch.json). One run on a shared
machine: compare ratios, not absolute numbers.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_c import MODELS, build, load_test, run  # noqa: E402  (this script's folder)

from edgesparse.export_c import c_runtime_dir, write_rows  # noqa: E402
from edgesparse.formats import esb  # noqa: E402
from edgesparse.pipeline import CompressOptions, compress_file  # noqa: E402
from edgesparse.runtime import Model  # noqa: E402

BATCH = 1000


def batch_rows(X: Any, n: int = BATCH) -> Any:
    """n rows: X's rows repeated in order."""
    idx = np.arange(n) % X.shape[0]
    return X[idx]


def numpy_batch(model: Model, X: Any, runs: int) -> dict[str, float]:
    """Median ns of model.predict(X), for X as float64 and as float32 (dense rows)."""
    out = {}
    kinds = {"float64": X.astype(np.float64), "float32": X.astype(np.float32)}
    for kind, Xk in kinds.items():
        for _ in range(max(3, runs // 10)):
            model.predict(Xk)
        t = np.empty(runs, dtype=np.int64)
        for i in range(runs):
            a = time.perf_counter_ns()
            model.predict(Xk)
            t[i] = time.perf_counter_ns() - a
        out[f"{kind}_p50_ns"] = float(np.median(t))
    out["p50_ns"] = min(out["float64_p50_ns"], out["float32_p50_ns"])
    return out


def c_batch(driver: Path, blob: Path, rows: Path, runs: int, *, one_row: bool) -> dict:
    """The driver's JSON line for `runs` calls of BATCH rows."""
    cmd = [str(driver), "bench", str(blob), str(rows), str(runs), str(max(3, runs // 10))]
    cmd += ["--batch", str(BATCH), *(["--one-row"] if one_row else [])]
    return json.loads(run(cmd))


def measure(driver: Path, work: Path, name: str, models_dir: Path, runs: int) -> dict | None:
    """One model's three timings, or None when its pickle is absent."""
    pkl, npz = models_dir / f"{name}.pkl", models_dir / f"{name}.test.npz"
    if not pkl.exists():
        print(f"skip {name}: {pkl.name} not found (python models/train.py --large)")
        return None
    blob = work / f"{name}.esb"
    compress_file(CompressOptions(source=pkl, output=blob))
    X = batch_rows(load_test(npz))
    rows = work / f"{name}.rows"
    write_rows(rows, X)
    model = Model(esb.read(blob))
    info = esb.inspect_file(blob)
    batch = c_batch(driver, blob, rows, runs, one_row=False)
    loop = c_batch(driver, blob, rows, runs, one_row=True)
    npy = numpy_batch(model, X, runs)
    return {
        "shape": info["shape"],
        "nnz": info["nnz"],
        "input": "csr" if sp.issparse(X) else "dense",
        "layout": batch["layout"],
        "api": batch["api"],
        "c_batch_p50_ns": batch["p50_ns"],
        "c_loop_p50_ns": loop["p50_ns"],
        "numpy": npy,
        "c_batch_over_numpy": batch["p50_ns"] / npy["p50_ns"],
        "c_loop_over_numpy": loop["p50_ns"] / npy["p50_ns"],
        "loop_over_batch": loop["p50_ns"] / batch["p50_ns"],
    }


def print_table(results: dict[str, Any]) -> None:
    print(
        f"| model | shape | input | layout | C batch call µs | C per-row loop µs | numpy µs | "
        f"C batch / numpy | C loop / numpy | loop / batch |  (batch {BATCH})"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, r in results["models"].items():
        print(
            f"| {name} | {r['shape']} | {r['input']} | {r['layout']} | "
            f"{r['c_batch_p50_ns'] / 1e3:,.1f} | {r['c_loop_p50_ns'] / 1e3:,.1f} | "
            f"{r['numpy']['p50_ns'] / 1e3:,.1f} | {r['c_batch_over_numpy']:.2f} | "
            f"{r['c_loop_over_numpy']:.2f} | {r['loop_over_batch']:.2f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks" / "results" / "c_batch.json"
    )
    parser.add_argument("--models", nargs="*", default=list(MODELS))
    parser.add_argument("--models-dir", type=Path, default=ROOT / "models")
    parser.add_argument("--runs", type=int, default=300)
    args = parser.parse_args()
    c_dir = c_runtime_dir()
    results: dict[str, Any] = {
        "machine": platform.platform(),
        "cc": run(["gcc", "--version"]).splitlines()[0],
        "batch": BATCH,
        "runs": args.runs,
        "models": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        driver = build("gcc", work / "esb", [c_dir / "esb.c", c_dir / "esb_main.c"], ["-static"])
        for name in args.models:
            r = measure(driver, work, name, args.models_dir, args.runs)
            if r is not None:
                results["models"][name] = r
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print_table(results)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
