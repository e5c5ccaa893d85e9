"""The numpy runtime against its floor, and its memory.

Two tables (issue 19, goals 1 and 6), one thread (``OPENBLAS_NUM_THREADS=1`` and friends
are set before numpy is imported); goal 2's sweep over batch size x width x density is
``bench_sweep.py``:

1. **floor**: median time of ``Model.decision_function`` (every input check included) against
   the floor: the best of numpy's dense ``X @ W`` and scipy's CSR products on the same
   float weights, in the input's dtype, timed interleaved in the same run. Cases: the bundled
   iris / digits / diabetes models, a 20 000-feature dense model, the text CSR model
   (20 x 2^18; ``--large-dir`` pointing at ``models/train.py --large``'s output, skipped
   without it) and a 50 x 200 000 model with 80% zeros predicting dense rows, with the peak
   RSS of a process that loads it and predicts 200 rows.
2. **memory**: peak RSS of fresh processes: numpy alone, numpy + a 1000-row input and one BLAS
   product (the floor), then ``import edgesparse``, ``load`` and ``predict`` 1000 rows.

Prints Markdown tables and writes JSON (``--out``, default benchmarks/results/runtime.json).
Compare ratios, not absolute numbers: the machines are shared and noisy.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"  # one thread, for the floor and the runtime alike

import argparse  # noqa: E402
import json  # noqa: E402
import pickle  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _measure import ROOT, peak_rss_kib  # noqa: E402

sys.path.insert(0, str(ROOT))
import edgesparse  # noqa: E402
from edgesparse.formats import esb  # noqa: E402
from edgesparse.ir import from_dense  # noqa: E402

BUNDLED = ("iris_l1_logreg", "digits_pipeline", "diabetes_ridge")
WIDE_SHAPE, WIDE_ROWS = (50, 200_000), 200


def median_times(funcs: dict[str, Any], budget: float) -> dict[str, float]:
    """Median seconds per call of each function, calls interleaved so load hits all alike."""
    for f in funcs.values():
        f()  # warm up (lazy tables, BLAS buffers)
    start = time.perf_counter()
    for f in funcs.values():
        f()
    once = max(time.perf_counter() - start, 1e-7)
    repeat = int(min(2000, max(3, budget / once)))
    times: dict[str, list[float]] = {name: [] for name in funcs}
    for _ in range(repeat):
        for name, f in funcs.items():
            t = time.perf_counter()
            f()
            times[name].append(time.perf_counter() - t)
    return {name: float(np.median(ts)) for name, ts in times.items()}


def floor_funcs(model: edgesparse.Model, X: Any) -> dict[str, Any]:
    """The floor's candidates on the model's float weights, in the input's dtype."""
    dtype = X.dtype if X.dtype == np.float64 else np.float32
    W = np.ascontiguousarray(model.ir.to_dense(dtype=dtype).T)  # (n_features, n_outputs)
    W_csr = sp.csr_matrix(W.T)
    W_csc = sp.csc_matrix(W)
    if sp.issparse(X):
        return {
            "scipy X@W(dense)": lambda: X @ W,
            "scipy X@W(csc)": lambda: X @ W_csc,
        }
    return {"numpy X@W": lambda: X @ W, "scipy W@X.T": lambda: (W_csr @ X.T).T}


def floor_row(name: str, model: edgesparse.Model, X: Any, budget: float) -> dict[str, Any]:
    """One case of table 1: the runtime, each floor candidate and the ratio to the best."""
    floors = floor_funcs(model, X)
    t = median_times({"runtime": lambda: model.decision_function(X), **floors}, budget)
    best = min(t[k] for k in floors)
    return {
        "case": name,
        "batch": X.shape[0],
        "input": ("csr " if sp.issparse(X) else "dense ") + str(X.dtype),
        "runtime_ms": t["runtime"] * 1e3,
        "floor_ms": best * 1e3,
        "floor": min(floors, key=t.get),
        "ratio": t["runtime"] / best,
    }


def bundled(name: str) -> tuple[edgesparse.Model, np.ndarray]:
    with open(ROOT / "models" / f"{name}.pkl", "rb") as f:
        estimator = pickle.load(f)
    X = np.load(ROOT / "models" / f"{name}.test.npz")["X"]
    return edgesparse.Model.from_ir(edgesparse.compress(estimator)), X


def synthetic(shape: tuple[int, int], zeros: float, seed: int) -> edgesparse.Model:
    """A softmax model with int8 weights (as ``compress`` writes them), ``zeros`` of them 0."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal(shape)
    w[rng.random(shape) < zeros] = 0
    q = np.round(w / np.abs(w).max(axis=1, keepdims=True) * 127)
    ir = from_dense(q, bias=np.zeros(shape[0]), head="identity", squeeze=shape[0] == 1)
    scales = (np.abs(w).max(axis=1) / 127).astype(np.float32)
    return edgesparse.Model(ir.replace(values=ir.values.astype(np.int8), scales=scales))


def sample_rows(X: Any, n: int, rng: np.random.Generator) -> Any:
    return X[rng.integers(0, X.shape[0], n)]


def floor_cases(args: argparse.Namespace) -> list[tuple[str, edgesparse.Model, Any]]:
    """(name, model, input) for table 1."""
    rng = np.random.default_rng(0)
    cases = []
    for name in BUNDLED:
        model, X = bundled(name)
        for n in (1, 1000):
            cases.append((name, model, sample_rows(X, n, rng)))
    dense = synthetic((1, 20_000), 0.0, 1)
    large = args.large_dir
    if large is not None and (large / "synthetic_sgd.pkl").exists():
        with open(large / "synthetic_sgd.pkl", "rb") as f:
            dense = edgesparse.Model.from_ir(edgesparse.compress(pickle.load(f)))
    for n in (1, 1000):
        X = rng.standard_normal((n, 20_000))
        cases += [("dense 20000", dense, X.astype(np.float32)), ("dense 20000", dense, X)]
    if large is not None and (large / "text_sgd.pkl").exists():
        with open(large / "text_sgd.pkl", "rb") as f:
            text = edgesparse.Model.from_ir(edgesparse.compress(pickle.load(f)))
        d = np.load(large / "text_sgd.test.npz")
        Xt = sp.csr_matrix((d["X_data"], d["X_indices"], d["X_indptr"]), shape=tuple(d["X_shape"]))
        cases += [("text 20x2^18", text, sample_rows(Xt, n, rng)) for n in (1, 1000)]
    if not args.quick:
        wide = synthetic(WIDE_SHAPE, 0.8, 2)
        for n in (1, WIDE_ROWS):
            cases.append(("wide 50x200000", wide, rng.standard_normal((n, WIDE_SHAPE[1]))))
    return cases


def wide_rss(tmp: Path) -> dict[str, Any]:
    """Peak RSS of loading the wide model and predicting 200 dense float64 rows, against a
    process that only builds the same input."""
    path = tmp / "wide.esb"
    esb.write(synthetic(WIDE_SHAPE, 0.8, 2).ir, path)
    make_x = f"X = np.random.default_rng(0).standard_normal(({WIDE_ROWS}, {WIDE_SHAPE[1]}))"
    base = peak_rss_kib(make_x)
    t = time.perf_counter()
    full = peak_rss_kib(
        f"import edgesparse\nm = edgesparse.load({str(path)!r})\n{make_x}\nm.predict(X)"
    )
    return {
        "input_mib": WIDE_ROWS * WIDE_SHAPE[1] * 8 / 2**20,
        "model_file_mib": path.stat().st_size / 2**20,
        "input_only_peak_mib": base / 1024,
        "load_predict_peak_mib": full / 1024,
        "extra_mib": (full - base) / 1024,
        "process_s": time.perf_counter() - t,
    }


def memory(tmp: Path) -> dict[str, int]:
    """Table 3: peak RSS (KiB) of fresh processes, one step more each."""
    model_path = tmp / "digits.esb"
    model, X = bundled("digits_pipeline")
    esb.write(model.ir, model_path)
    x_path = tmp / "X.npy"
    np.save(x_path, X[np.arange(1000) % X.shape[0]])
    load_x = f"X = np.load({str(x_path)!r})"
    load_m = f"import edgesparse\nm = edgesparse.load({str(model_path)!r})"
    bodies = {
        "numpy": "pass",
        "numpy + X + one X@W": f"{load_x}\nW = np.ones((64, 10))\nX @ W",
        "import edgesparse": "import edgesparse",
        "+ load": load_m,
        "+ load + predict 1000": f"{load_m}\n{load_x}\nm.predict(X)",
    }
    out = {name: min(peak_rss_kib(body) for _ in range(3)) for name, body in bodies.items()}
    out["model_file_bytes"] = model_path.stat().st_size
    return out


def print_tables(result: dict[str, Any]) -> None:
    print("\n| case | batch | input | runtime | floor (best) | ratio |")
    print("|---|---:|---|---:|---:|---:|")
    for r in result["floor"]:
        print(
            f"| {r['case']} | {r['batch']} | {r['input']} | {r['runtime_ms']:.4g} ms | "
            f"{r['floor_ms']:.4g} ms ({r['floor']}) | {r['ratio']:.2f}x |"
        )
    if "wide_rss" in result:
        w = result["wide_rss"]
        print(
            f"\nwide 50x200000, {WIDE_ROWS} dense rows in a fresh process: peak RSS "
            f"{w['load_predict_peak_mib']:.0f} MiB, of which input {w['input_mib']:.0f} MiB "
            f"(a process building only the input: {w['input_only_peak_mib']:.0f} MiB; "
            f"extra {w['extra_mib']:.0f} MiB; whole process {w['process_s']:.2f} s)"
        )
    m = result["memory"]
    print("\n| process | peak RSS | over numpy |")
    print("|---|---:|---:|")
    for name, kib in m.items():
        if name != "model_file_bytes":
            print(f"| {name} | {kib / 1024:.1f} MiB | {(kib - m['numpy']) / 1024:+.2f} MiB |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--large-dir", type=Path, help="models/train.py --large output dir")
    parser.add_argument("--quick", action="store_true", help="skip the wide model, fewer runs")
    parser.add_argument("--budget", type=float, default=0.5, help="seconds per floor case")
    parser.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks" / "results" / "runtime.json"
    )
    args = parser.parse_args(argv)
    budget = 0.1 if args.quick else args.budget
    result: dict[str, Any] = {
        "meta": {"python": platform.python_version(), "numpy": np.__version__, "threads": 1},
        "floor": [floor_row(n, m, X, budget) for n, m, X in floor_cases(args)],
    }
    with tempfile.TemporaryDirectory() as tmp:
        if not args.quick:
            result["wide_rss"] = wide_rss(Path(tmp))
        result["memory"] = memory(Path(tmp))
    print_tables(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
