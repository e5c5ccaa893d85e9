"""Models at the array cap: time and peak memory of ``edgesparse compress`` (issue 16).

The goal is that every model file ends within 60 s and 1.5 GiB of address space; the biggest
files edgesparse accepts by default are those holding just under ``EDGESPARSE_MAX_ARRAY_BYTES``
(64 MiB) of arrays. Each case below is built here (seeded, nothing downloaded) to fill that cap
in a different way, written with joblib, and compressed by the real CLI in a fresh process
under ``RLIMIT_AS`` = 1.5 GiB; the table gives wall time, peak RSS (VmHWM) and the exit code.

    python benchmarks/bench_caps.py [--out benchmarks/results/caps.json] [--only NAME]

Prints a Markdown table and writes JSON. Compare ratios, not absolute numbers: the machines
are shared and noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CAP = 64 << 20
BUDGET_AS = 3 << 29  # 1.5 GiB
BUDGET_SECONDS = 60


def _logreg(rows: int, cols: int) -> Any:
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    est = LogisticRegression()
    est.coef_ = rng.standard_normal((rows, cols))
    est.intercept_ = rng.standard_normal(rows)
    est.classes_ = np.arange(rows) if rows > 1 else np.array([0, 1])
    est.n_features_in_ = cols
    est.n_iter_ = np.array([7], dtype=np.int32)
    return est


def _dense_one_row() -> Any:
    return _logreg(1, (CAP - 4096) // 8)


def _dense_eight_rows() -> Any:
    return _logreg(8, (CAP - 4096) // 64)


def _sparse_coef() -> Any:
    from scipy import sparse

    rows, n = 8, 1 << 20  # 16 bytes a row and a column in the count, 12 a weight
    est = _logreg(rows, 16)
    rng = np.random.default_rng(1)
    nnz = (CAP - 16 * (rows + n) - 4096) // 12
    flat = np.sort(rng.choice(rows * n, size=nnz, replace=False))
    indptr = np.searchsorted(flat // n, np.arange(rows + 1)).astype(np.int32)
    est.coef_ = sparse.csr_matrix(
        (rng.standard_normal(nnz), (flat % n).astype(np.int32), indptr), shape=(rows, n)
    )
    est.n_features_in_ = n
    return est


def _pipeline() -> Any:
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    n = (CAP - 4096) // 32  # coef + mean_, scale_, var_
    rng = np.random.default_rng(2)
    scaler = StandardScaler()
    scaler.mean_ = rng.standard_normal(n)
    scaler.scale_ = rng.uniform(0.5, 2.0, n)
    scaler.var_ = scaler.scale_**2
    scaler.n_features_in_ = n
    scaler.n_samples_seen_ = 100
    return Pipeline([("scale", scaler), ("clf", _logreg(1, n))])


def _many_classes() -> Any:
    return _logreg((CAP - 4096) // 80, 8)  # 8 weights, an intercept and a label per class


def _multi_output() -> Any:
    from sklearn.linear_model import Ridge
    from sklearn.multioutput import MultiOutputRegressor

    rng = np.random.default_rng(3)
    n_out, n = 4096, (CAP - 4096 * 512) // (4096 * 8)
    parts = []
    for _ in range(n_out):
        est = Ridge()
        est.coef_, est.intercept_ = rng.standard_normal(n), 0.5
        est.n_features_in_ = n
        parts.append(est)
    multi = MultiOutputRegressor(Ridge())
    multi.estimators_ = parts
    multi.n_features_in_ = n
    return multi


def _one_vs_rest() -> Any:
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.preprocessing import LabelBinarizer

    n_cls, n = 2048, (CAP - 2048 * 512) // (2048 * 8)
    parts = []
    for k in range(n_cls):
        est = _logreg(1, n)
        est.coef_ = np.random.default_rng(k).standard_normal((1, n))
        parts.append(est)
    ovr = OneVsRestClassifier(_logreg(1, 1))
    ovr.estimators_ = parts
    ovr.label_binarizer_ = LabelBinarizer().fit(np.arange(n_cls))
    ovr.classes_ = np.arange(n_cls)
    ovr.n_features_in_ = n
    return ovr


def _knn_at_cap() -> Any:
    """The committed Surprise example with 2880 users x 40 items rated by each and a dense
    2880 x 2880 similarity matrix (63 MiB; 115 200 ratings, within the opcode cap)."""
    import collections

    from edgesparse.loader import load_model

    algo = load_model(ROOT / "models" / "knn_means.pkl")
    algo = algo["algo"] if isinstance(algo, dict) else algo
    n_u, n_i = 2880, 40
    rng = np.random.default_rng(4)
    ur: Any = collections.defaultdict(list)
    ir: Any = collections.defaultdict(list)
    for u in range(n_u):
        for i in range(n_i):
            r = float(rng.integers(1, 6))
            ur[u].append((i, r))
            ir[i].append((u, r))
    ts = algo.trainset
    ts.ur, ts.ir, ts._global_mean = ur, ir, None
    ts._raw2inner_id_users = {f"u{u}": u for u in range(n_u)}
    ts._raw2inner_id_items = {f"i{i}": i for i in range(n_i)}
    ts.n_users, ts.n_items, ts.n_ratings = n_u, n_i, n_u * n_i
    algo.sim = rng.uniform(0.01, 1.0, (n_u, n_u))
    algo.means = rng.uniform(1.0, 5.0, n_u)
    algo.sim_options = {"name": "cosine", "user_based": True}
    return algo


CASES: dict[str, tuple[Callable[[], Any], list[str]]] = {
    "dense 1 x 8.4M (esb)": (_dense_one_row, []),
    "dense 8 x 1M (esb)": (_dense_eight_rows, []),
    "dense 1 x 8.4M (onnx)": (_dense_one_row, ["--format", "onnx"]),
    "sparse csr 8 x 1M, 4.2M nnz (esb)": (_sparse_coef, []),
    "scaler + logreg 1 x 2.1M (esb)": (_pipeline, []),
    "dense 1 x 8.4M, --sparsity 0.9 (esb)": (_dense_one_row, ["--sparsity", "0.9"]),
    "839k classes x 8 (esb)": (_many_classes, []),
    "MultiOutputRegressor 4096 x 1984 (esb)": (_multi_output, []),
    "OneVsRest 2048 x 4032 (esb)": (_one_vs_rest, []),
    "dense 1 x 8.4M as .skops (esb)": (_dense_one_row, ["skops"]),
    "Surprise k-NN 2880 users (esb v2)": (_knn_at_cap, []),
    "Surprise k-NN 2880 users, --neighbours exact": (_knn_at_cap, ["--neighbours", "exact"]),
}


def _limited() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (BUDGET_AS, BUDGET_AS))


def run_case(name: str, work: Path) -> dict[str, Any]:
    """Build one case, compress it in a fresh limited process, return its figures."""
    import joblib

    make, args = CASES[name]
    if args == ["skops"]:
        import skops.io as sio

        src, args = work / "model.skops", []
        sio.dump(make(), src)
    else:
        src = work / "model.joblib"
        joblib.dump(make(), src)
    out = work / ("out.onnx" if "onnx" in args else "out.esb")
    body = (
        "import sys, runpy\n"
        f"sys.argv = ['edgesparse', 'compress', {str(src)!r}, '-o', {str(out)!r}, *{args!r}]\n"
        "try:\n    runpy.run_module('edgesparse', run_name='__main__')\n"
        "except SystemExit as e:\n    code = e.code\nelse:\n    code = 0\n"
        "hwm = [l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')][0]\n"
        "print('HWM', hwm, code, file=sys.stderr)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OPENBLAS_NUM_THREADS": "1"}
    env.pop("EDGESPARSE_MAX_ARRAY_BYTES", None)
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", body],
        capture_output=True,
        text=True,
        env=env,
        preexec_fn=_limited,
        timeout=600,
    )
    seconds = time.perf_counter() - t0
    hwm = [line.split() for line in proc.stderr.splitlines() if line.startswith("HWM ")]
    error = [line for line in proc.stderr.splitlines() if line.startswith("Error:")]
    result = {
        "case": name,
        "model_bytes": src.stat().st_size,
        "output_bytes": out.stat().st_size if out.exists() else None,
        "seconds": round(seconds, 2),
        "peak_rss_mib": round(int(hwm[-1][1]) / 1024, 1) if hwm else None,
        "exit": int(hwm[-1][2]) if hwm and hwm[-1][2].isdigit() else proc.returncode,
        "error": error[0][:200] if error else None,
    }
    for p in (src, out):
        p.unlink(missing_ok=True)
    return result


def _n(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "caps.json"))
    parser.add_argument("--only", action="append", help="run only cases containing this text")
    opts = parser.parse_args(argv)
    names = [n for n in CASES if not opts.only or any(o in n for o in opts.only)]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            rows.append(run_case(name, Path(tmp)))
            print(f"  {name}: {rows[-1]['seconds']} s", file=sys.stderr, flush=True)
    print(f"| case (cap {CAP >> 20} MiB) | model | output | seconds | peak RSS MiB | exit |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        ok = "" if r["seconds"] <= BUDGET_SECONDS and r["exit"] == 0 else " **over**"
        print(
            f"| {r['case']} | {r['model_bytes']:,} | {_n(r['output_bytes'])} | "
            f"{r['seconds']}{ok} | {r['peak_rss_mib']} | {r['exit']} |"
        )
    out = Path(opts.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"python": platform.python_version(), "numpy": np.__version__, "cpus": os.cpu_count()}
    out.write_text(
        json.dumps({"meta": meta, "budget_seconds": BUDGET_SECONDS, "rows": rows}, indent=1)
    )


if __name__ == "__main__":
    main()
