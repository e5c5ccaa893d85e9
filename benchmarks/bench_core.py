"""Core benchmark: size, latency and memory of the .esb + numpy runtime vs scikit-learn.

For every bundled model in models/ (and the large ones when they have been generated with
``python models/train.py --large``) it measures, in one run on this machine:

* bytes: the pickle vs the int8 ``.esb`` blob (and bytes per nonzero);
* latency: median batch-1 and batch-1000 ``predict`` of the numpy runtime vs scikit-learn's;
* memory: peak RSS of a fresh process that loads the ``.esb`` and predicts 1000 rows (numpy
  only) vs one that unpickles the scikit-learn model and does the same, next to the floor of a
  process that only imports numpy;
* fidelity: label agreement (or max |delta|) of the int8 model with scikit-learn.

Prints a Markdown table and writes JSON (``--out``, default benchmarks/results/core.json).
Compare the ratios, not the absolute numbers: the machines are shared and noisy.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _measure import CHILD_ENV, peak_rss_kib  # noqa: E402  (benchmarks/, this script's folder)
from _measure import MODELS as BUNDLED  # noqa: E402

import edgesparse  # noqa: E402
from edgesparse.formats import esb  # noqa: E402
from edgesparse.loader import load_model  # noqa: E402

MODELS = list(BUNDLED)


def load_test(path: Path) -> Any:
    with np.load(path, allow_pickle=False) as npz:
        if "X" in npz.files:
            return npz["X"]
        shape = tuple(int(v) for v in npz["X_shape"])
        return sp.csr_matrix((npz["X_data"], npz["X_indices"], npz["X_indptr"]), shape=shape)


def median_us(fn, X, *, min_time: float = 0.3, max_runs: int = 2000) -> float:
    fn(X)  # warm up
    times = []
    start = time.perf_counter()
    while len(times) < max_runs and (time.perf_counter() - start < min_time or len(times) < 7):
        t = time.perf_counter()
        fn(X)
        times.append(time.perf_counter() - t)
    return float(np.median(times) * 1e6)


LOAD_DATA = """
with np.load({data!r}, allow_pickle=False) as z:
    if "X" in z.files:
        X = z["X"]
    else:
        from edgesparse.data import CSRArrays
        X = CSRArrays(data=z["X_data"], indices=z["X_indices"], indptr=z["X_indptr"],
                      shape=tuple(int(v) for v in z["X_shape"]))
idx = np.arange(1000) % X.shape[0]
X = X[idx] if hasattr(X, "ndim") else X
"""


def bench_model(name: str, work: Path) -> dict[str, Any] | None:
    pkl = ROOT / "models" / f"{name}.pkl"
    data = ROOT / "models" / f"{name}.test.npz"
    if not pkl.exists() or not data.exists():
        return None
    est = load_model(pkl)
    ir = edgesparse.compress(est, quantize="int8")  # int8 per row, no pruning
    blob = work / f"{name}.esb"
    n_bytes = esb.write(ir, blob)
    model = edgesparse.load(blob)
    X = load_test(data)
    X1000 = X[np.arange(1000) % X.shape[0]]
    x1 = X[:1]
    ref = est.predict(X)
    got = model.predict(X)
    if ir.is_classifier:
        fidelity = {"label_agreement": float(np.mean(got == ref))}
    else:
        fidelity = {"max_abs_delta": float(np.max(np.abs(got - ref)))}
    row = {
        "model": name,
        "estimator": ir.provenance.get("source", type(est).__name__),
        "shape": list(ir.shape),
        "nnz": ir.nnz,
        "input": "csr" if sp.issparse(X) else "dense",
        "pickle_bytes": pkl.stat().st_size,
        "esb_bytes": int(n_bytes),
        "esb_bytes_per_nnz": n_bytes / max(ir.nnz, 1),
        "batch1_us": {
            "sklearn": median_us(est.predict, x1),
            "esb_numpy": median_us(model.predict, x1),
        },
        "batch1000_us": {
            "sklearn": median_us(est.predict, X1000, max_runs=200),
            "esb_numpy": median_us(model.predict, X1000, max_runs=200),
        },
        **fidelity,
    }
    load_data = LOAD_DATA.format(data=str(data))
    row["peak_rss_kib"] = {
        "numpy_import_floor": peak_rss_kib(""),
        "esb_numpy": peak_rss_kib(
            "import edgesparse\n"
            f"m = edgesparse.load({str(blob)!r})\n{load_data}\nm.predict(X)\n"
            "assert 'sklearn' not in sys.modules and 'scipy' not in sys.modules"
        ),
        "sklearn_pickle": peak_rss_kib(
            f"import pickle\nest = pickle.loads(open({str(pkl)!r}, 'rb').read())\n"
            f"{load_data}\n"
            "import scipy.sparse as sp\n"
            "X = X if hasattr(X, 'ndim') else sp.csr_matrix((X.data, X.indices, X.indptr), "
            "shape=X.shape)\nest.predict(X)"
        ),
    }
    return row


def markdown(rows: list[dict[str, Any]]) -> str:
    head = (
        "| model | shape | nnz | pickle | .esb | B/nnz | batch-1 sklearn / esb (µs) | "
        "speed-up | batch-1000 sklearn / esb (µs) | peak RSS numpy floor / esb / sklearn (MiB) "
        "| int8 fidelity |\n|---|---|---|---|---|---|---|---|---|---|---|"
    )
    lines = [head]
    for r in rows:
        b1, bk, rss = r["batch1_us"], r["batch1000_us"], r["peak_rss_kib"]
        fid = (
            f"{r['label_agreement']:.2%} agree"
            if "label_agreement" in r
            else f"max Δ {r['max_abs_delta']:.3g}"
        )
        lines.append(
            f"| {r['model']} | {r['shape'][0]}x{r['shape'][1]} | {r['nnz']} | "
            f"{r['pickle_bytes']:,} B | {r['esb_bytes']:,} B | {r['esb_bytes_per_nnz']:.2f} | "
            f"{b1['sklearn']:.1f} / {b1['esb_numpy']:.1f} | "
            f"{b1['sklearn'] / b1['esb_numpy']:.1f}x | "
            f"{bk['sklearn']:.0f} / {bk['esb_numpy']:.0f} | "
            f"{rss['numpy_import_floor'] / 1024:.1f} / {rss['esb_numpy'] / 1024:.1f} / "
            f"{rss['sklearn_pickle'] / 1024:.1f} | {fid} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "core.json")
    parser.add_argument("--models", nargs="*", default=MODELS)
    args = parser.parse_args()
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(ROOT / "edgesparse")],
        check=True,
        env=CHILD_ENV,
    )
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            row = bench_model(name, Path(tmp))
            if row is None:
                print(f"skipped {name}: models/{name}.pkl not found", file=sys.stderr)
                continue
            rows.append(row)
    table = markdown(rows)
    print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "numpy": np.__version__,
        "edgesparse": edgesparse.__version__,
    }
    args.out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    print(f"\nwrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
