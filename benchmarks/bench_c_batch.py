"""C runtime at batch 1000: the batch call vs the per-row loop vs the numpy runtime.

For every model of benchmarks/bench_c.py found in models/ (the large ones after ``python
models/train.py --large``; skipped when absent), compressed with the defaults (int8 per row),
on the same 1000 held-out rows (repeated when there are fewer):

* C batch call: ``esb bench ... --batch 1000`` (edgesparse/runtime/c/esb_main.c, gcc -O2
  -std=c99 -static, baseline x86-64): one ``esb_predict_batch`` call over the 1000 rows
  (esb_decision_batch for regressors; the ``_csr_batch`` calls for CSR rows), each call
  timed on its own, in the default workspace (esb_workspace_size_fast: the dense or
  transposed layout). On a CPU with AVX the dense kernel runs 8 rows per vector (chosen at
  run time, esb.h "Batch calls").
* C batch, no AVX: the same driver built with ``-DESB_NO_AVX`` (the 4-row SSE2 kernel every
  x86-64 CPU runs; NEON on aarch64).
* C batch, -march=native: the same with ``-march=native`` (not the shipped flags; for
  comparison only).
* CSR rows: the default driver builds the CSR column index (esb_use_csr_index, 4 bytes per
  feature, included in ``workspace_bytes``); also timed without it (``--no-csr-index``).
* C per-row loop: ``--one-row``: 1000 ``esb_predict`` calls, what the driver did before the
  batch API.
* numpy: ``Model.predict(X)`` on the same rows in this process (perf_counter_ns), the faster
  of float32 and float64 input (the C runtime reads float32).

``--target rpi4`` (or rpi3, rpi5: a device profile set up with ``edgesparse devices setup``)
measures the dense models on that emulated Pi instead, through ``edgesparse bench MODEL.esb
c:MODEL.esb --target T --batch 1000``: the aarch64 driver (aarch64-linux-gnu-gcc -O2
-std=c99 -static) and the numpy runtime under the target's QEMU (user mode). QEMU has no
timing model: those times are emulated, not device latency; compare only their ratio.

One thread (``OPENBLAS_NUM_THREADS=1`` and friends, set before numpy loads): the C runtime is
single-threaded, and a threaded BLAS on a busy 2-core machine stalls for milliseconds.
Medians of RUNS calls. Goal (issue 19): C batch call <= 1.0x numpy. Prints a Markdown table
and writes JSON (``--out``, default benchmarks/results/c_batch.json, or
c_batch_<target>.json; ``--batch N`` times calls of N rows instead, e.g. 1, written to
c_batch[_<target>]_bN.json). One run on a shared machine: compare ratios, not absolute numbers.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"  # one thread, for numpy and the (single-threaded) C runtime alike

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_c import MODELS, build, load_test, run  # noqa: E402  (this script's folder)

from edgesparse.export_c import c_runtime_dir, write_rows  # noqa: E402
from edgesparse.formats import esb  # noqa: E402
from edgesparse.pipeline import CompressOptions, compress_file  # noqa: E402
from edgesparse.runtime import Model  # noqa: E402

BATCH = 1000
# driver name -> extra gcc flags (besides bench_c.CFLAGS)
DRIVERS = {
    "default": ["-static"],
    "no_avx": ["-static", "-DESB_NO_AVX"],
    "native": ["-static", "-march=native"],
}


def batch_rows(X: Any, n: int = BATCH) -> Any:
    """n rows: X's rows repeated in order."""
    idx = np.arange(n) % X.shape[0]
    return X[idx]


def numpy_batch(model: Model, X: Any, runs: int) -> dict[str, float]:
    """Median ns of model.predict(X), for X as float64 and as float32."""
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


def c_batch(
    driver: Path,
    blob: Path,
    rows: Path,
    runs: int,
    *,
    one_row: bool,
    batch: int = BATCH,
    csr_index: bool = True,
) -> dict:
    """The driver's JSON line for `runs` calls of `batch` rows (csr_index False: without the
    CSR column index, the driver's --no-csr-index)."""
    cmd = [str(driver), "bench", str(blob), str(rows), str(runs), str(max(3, runs // 10))]
    cmd += ["--batch", str(batch), *(["--one-row"] if one_row else [])]
    cmd += [] if csr_index else ["--no-csr-index"]
    return json.loads(run(cmd))


def prepare(work: Path, name: str, models_dir: Path, batch: int = BATCH) -> tuple[Path, Any] | None:
    """The model's default blob and its `batch` rows, or None when its pickle is absent."""
    pkl, npz = models_dir / f"{name}.pkl", models_dir / f"{name}.test.npz"
    if not pkl.exists():
        print(f"skip {name}: {pkl.name} not found (python models/train.py --large)")
        return None
    blob = work / f"{name}.esb"
    compress_file(CompressOptions(source=pkl, output=blob))
    return blob, batch_rows(load_test(npz), batch)


def measure(
    drivers: dict[str, Path], work: Path, name: str, models_dir: Path, runs: int, batch: int
):
    """One model's timings on the host, or None when its pickle is absent."""
    prepared = prepare(work, name, models_dir, batch)
    if prepared is None:
        return None
    blob, X = prepared
    rows = work / f"{name}.rows"
    write_rows(rows, X)
    info = esb.inspect_file(blob)
    timed = {
        k: c_batch(d, blob, rows, runs, one_row=False, batch=batch) for k, d in drivers.items()
    }
    loop = c_batch(drivers["default"], blob, rows, runs, one_row=True, batch=batch)
    if sp.issparse(X):  # the same driver without the CSR column index, to compare
        timed["no_index"] = c_batch(
            drivers["default"], blob, rows, runs, one_row=False, batch=batch, csr_index=False
        )
    npy = numpy_batch(Model(esb.read(blob)), X, runs)
    out = {
        "shape": info["shape"],
        "nnz": info["nnz"],
        "input": "csr" if sp.issparse(X) else "dense",
        "layout": timed["default"]["layout"],
        "api": timed["default"]["api"],
        "workspace_bytes": timed["default"]["workspace_bytes"],
        "c_loop_p50_ns": loop["p50_ns"],
        "numpy": npy,
        "c_loop_over_numpy": loop["p50_ns"] / npy["p50_ns"],
        "loop_over_batch": loop["p50_ns"] / timed["default"]["p50_ns"],
    }
    for k, r in timed.items():
        key = "c_batch" if k == "default" else f"c_batch_{k}"
        out[f"{key}_p50_ns"] = r["p50_ns"]
        out[f"{key}_over_numpy"] = r["p50_ns"] / npy["p50_ns"]
    return out


def measure_target(target: str, work: Path, name: str, models_dir: Path, runs: int, batch: int):
    """One dense model on an emulated target through `edgesparse bench` (C batch call and
    numpy runtime, `batch` rows a call), or None when absent or CSR."""
    prepared = prepare(work, name, models_dir, batch)
    if prepared is None:
        return None
    blob, X = prepared
    if sp.issparse(X):
        print(f"skip {name}: CSR rows (this table takes dense models)")
        return None
    data = work / f"{name}.batch.npz"
    np.savez(data, X=np.asarray(X, dtype=np.float32))
    report = work / f"{name}-{target}"
    cmd = [sys.executable, "-m", "edgesparse", "bench", str(blob), f"c:{blob}"]
    cmd += ["--target", target, "--data", str(data), "--batch", str(batch)]
    cmd += ["--runs", str(runs), "--warmup", str(max(3, runs // 10)), "--strict", "-o", str(report)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=3600)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {res.stderr.strip()[-2000:]}")
    found = json.loads((report / "results.json").read_text())["results"]
    got = {r["engine"]: r for r in found if r["target"] == target}
    c, npy = got["c"], got["esb"]
    return {
        "shape": esb.inspect_file(blob)["shape"],
        "emulated": bool(c["emulated"]),
        "c_batch_p50_us": c["latency_us"]["p50"],
        "numpy_p50_us": npy["latency_us"]["p50"],
        "c_batch_over_numpy": c["latency_us"]["p50"] / npy["latency_us"]["p50"],
    }


def print_table(results: dict[str, Any]) -> None:
    print(
        f"| model | shape | input | layout | C batch call µs | C batch, no AVX µs | "
        f"C batch, -march=native µs | C per-row loop µs | numpy µs | C batch / numpy | "
        f"no AVX / numpy | C loop / numpy | loop / batch |  (batch {results['batch']})"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name, r in results["models"].items():
        print(
            f"| {name} | {r['shape']} | {r['input']} | {r['layout']} | "
            f"{r['c_batch_p50_ns'] / 1e3:,.1f} | {r['c_batch_no_avx_p50_ns'] / 1e3:,.1f} | "
            f"{r['c_batch_native_p50_ns'] / 1e3:,.1f} | {r['c_loop_p50_ns'] / 1e3:,.1f} | "
            f"{r['numpy']['p50_ns'] / 1e3:,.1f} | {r['c_batch_over_numpy']:.2f} | "
            f"{r['c_batch_no_avx_over_numpy']:.2f} | {r['c_loop_over_numpy']:.2f} | "
            f"{r['loop_over_batch']:.2f} |"
        )
    for name, r in results["models"].items():
        if "c_batch_no_index_p50_ns" in r:
            print(
                f"{name}: without the CSR column index {r['c_batch_no_index_p50_ns'] / 1e3:,.1f} "
                f"µs ({r['c_batch_no_index_over_numpy']:.2f}x numpy); workspace "
                f"{r['workspace_bytes']:,} bytes with it"
            )


def print_target_table(results: dict[str, Any]) -> None:
    target = results["target"]
    batch = results["batch"]
    print(
        f"| model | shape | C batch call µs | numpy µs | C batch / numpy |  "
        f"({target}, emulated, batch {batch})"
    )
    print("|---|---|---|---|---|")
    for name, r in results["models"].items():
        print(
            f"| {name} | {r['shape']} | {r['c_batch_p50_us']:,.1f} | {r['numpy_p50_us']:,.1f} | "
            f"{r['c_batch_over_numpy']:.2f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--models", nargs="*", default=list(MODELS))
    parser.add_argument("--models-dir", type=Path, default=ROOT / "models")
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--target", default="host", help="host, or an emulated Pi: rpi3/4/5")
    parser.add_argument("--batch", type=int, default=BATCH, help="rows per call (e.g. 1)")
    args = parser.parse_args()
    suffix = "" if args.target == "host" else f"_{args.target}"
    suffix += "" if args.batch == BATCH else f"_b{args.batch}"
    out = args.out or ROOT / "benchmarks" / "results" / f"c_batch{suffix}.json"
    results: dict[str, Any] = {
        "machine": platform.platform(),
        "target": args.target,
        "batch": args.batch,
        "runs": args.runs,
        "models": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.target == "host":
            results["cc"] = run(["gcc", "--version"]).splitlines()[0]
            c_dir = c_runtime_dir()
            sources = [c_dir / "esb.c", c_dir / "esb_main.c"]
            drivers = {k: build("gcc", work / f"esb_{k}", sources, f) for k, f in DRIVERS.items()}
        for name in args.models:
            if args.target == "host":
                r = measure(drivers, work, name, args.models_dir, args.runs, args.batch)
            else:
                r = measure_target(args.target, work, name, args.models_dir, args.runs, args.batch)
            if r is not None:
                results["models"][name] = r
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    if args.target == "host":
        print_table(results)
    else:
        print_target_table(results)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
