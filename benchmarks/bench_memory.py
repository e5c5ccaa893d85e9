"""Memory of ``edgesparse compress`` on wide sparse models, and of a device process that loads a
blob and predicts (issue 19, goals 3 and 6).

Two tables, every figure the VmHWM (peak RSS) of a fresh child process:

1. **compress**: ``edgesparse compress MODEL -o OUT.esb`` on SGDClassifier-like models with a
   1%-dense ``coef_`` (20 x 2^20 and 20 x 2^22, pickled with protocol 5 and with joblib),
   plus the bundled text model (``models/train.py --large``; 20 x 2^18, ~1% dense, 40 MB
   pickle) when it is there. The peak is shown in MiB and as *dense copies*: (peak - the
   process without the model) / one dense float64 ``coef_``, where "the process without the
   model" is a process that imported the compress program and loaded the model
   (``load_model``: the unpickled model), minus that one copy. The goal
   is ``peak <= unpickled model + 1 dense copy + blob``, i.e. about 2 copies.
2. **process**: ``import edgesparse; m = edgesparse.load(blob); m.predict(X)`` with 1000
   rows, for the iris, digits and (with the large models) text blobs, against the floor: a
   process that imports numpy and builds the same input (CSR input is a duck-typed holder of
   numpy arrays, as on a device without scipy). The goal is ``extra <= 2 MiB + model bytes``.

``--compare-with DIR`` runs every child once more with the ``edgesparse`` package found in
``DIR`` (e.g. ``git archive <old commit> | tar -x -C DIR``), to show before and after.
``--tables process`` (or ``compress``) measures one table only.

Prints Markdown tables and writes JSON (``--out``, default benchmarks/results/memory.json).
Compare within one run: the machines are shared and noisy (peaks are steadier than times).
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _measure import CHILD_ENV, ROOT

sys.path.insert(0, str(ROOT))
import edgesparse
from edgesparse.formats import esb

WIDE_SHAPES = ((20, 1 << 20), (20, 1 << 22))
DENSITY = 0.01
PROCESS_MODELS = (("iris", "iris_l1_logreg"), ("digits", "digits_pipeline"))
MIB = 1 << 20

# The child reports its own VmHWM (getrusage's ru_maxrss would be the largest of all children
# so far) and its current RSS, on the last line.
REPORT = """
def _status(key):
    return int([l.split()[1] for l in open("/proc/self/status") if l.startswith(key)][0])
print(_status("VmHWM"), _status("VmRSS"), _status("RssAnon"))
"""


def child(body: str, tree: Path, *, env: dict[str, str] | None = None) -> dict[str, float]:
    """Run ``body`` in a fresh Python whose ``edgesparse`` is the one in ``tree``: its peak
    RSS, final RSS and final private (anonymous) RSS in KiB, and its wall time (s)."""
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", "import sys\n" + body + REPORT],
        capture_output=True,
        text=True,
        cwd=tree,
        env={**CHILD_ENV, **(env or {})},
    )
    seconds = time.perf_counter() - start
    if out.returncode != 0:
        raise RuntimeError(f"child failed ({tree}):\n{out.stderr[-2000:]}")
    peak, rss, anon = (int(v) for v in out.stdout.strip().splitlines()[-1].split())
    return {"peak_kib": peak, "rss_kib": rss, "anon_kib": anon, "seconds": seconds}


# -- table 1: compress -----------------------------------------------------------------------
def wide_model(shape: tuple[int, int], seed: int) -> Any:
    """An SGDClassifier fitted on a toy problem, then given a 1%-dense ``coef_`` of ``shape``
    (a hashed-text model's layout), built row by row."""
    from sklearn.linear_model import SGDClassifier

    rng = np.random.default_rng(seed)
    n_rows, n_cols = shape
    model = SGDClassifier(max_iter=5, tol=None, random_state=0)
    model.fit(rng.standard_normal((4 * n_rows, 4)), np.arange(4 * n_rows) % n_rows)
    coef = np.zeros(shape)
    per_row = int(DENSITY * n_cols)
    for row in coef:
        row[rng.choice(n_cols, per_row, replace=False)] = rng.standard_normal(per_row)
    model.coef_, model.intercept_ = coef, rng.standard_normal(n_rows)
    model.n_features_in_ = n_cols
    return model


def write_model(model: Any, path: Path, how: str) -> None:
    if how == "joblib":
        import joblib

        joblib.dump(model, path)
    else:
        with open(path, "wb") as f:
            pickle.dump(model, f, protocol=5)


def compress_row(
    name: str, path: Path, dense_bytes: int, trees: dict[str, Path], tmp: Path
) -> dict[str, Any]:
    """Peak RSS of compressing ``path`` (into ``tmp``) with each tree, and the RSS of a
    process holding the unpickled model."""
    env = {"EDGESPARSE_MAX_ARRAY_BYTES": str(4 * dense_bytes + (256 << 20))}
    src = str(path)
    # The compress program's own modules, then the model: what compress must hold anyway.
    loaded = child(
        f"import edgesparse.cli, edgesparse.pipeline\nm = edgesparse.pipeline.load_model({src!r})",
        trees["now"],
        env=env,
    )
    row: dict[str, Any] = {
        "model": name,
        "pickle_mib": path.stat().st_size / MIB,
        "dense_mib": dense_bytes / MIB,
        "unpickled_rss_mib": loaded["rss_kib"] / 1024,
    }
    floor_kib = loaded["rss_kib"] - dense_bytes / 1024  # the process without the model
    for label, tree in trees.items():
        out = tmp / f"{path.stem}.{label}.esb"
        argv = ["edgesparse", "compress", src, "-o", str(out)]
        body = (
            f"sys.argv = {argv!r}\nfrom edgesparse.cli import main\n"
            "try:\n    main()\nexcept SystemExit as exc:\n    assert not exc.code, exc.code"
        )
        run = child(body, tree, env=env)
        blob = out.stat().st_size
        row[label] = {
            "peak_mib": run["peak_kib"] / 1024,
            "dense_copies": (run["peak_kib"] - floor_kib) * 1024 / dense_bytes,
            "over_goal_mib": (
                run["peak_kib"] * 1024 - loaded["rss_kib"] * 1024 - dense_bytes - blob
            )
            / MIB,
            "seconds": run["seconds"],
            "blob_bytes": blob,
        }
    if "before" in row:
        now, before = (tmp / f"{path.stem}.{label}.esb" for label in ("now", "before"))
        row["blobs_identical"] = now.read_bytes() == before.read_bytes()
    return row


def compress_table(tmp: Path, trees: dict[str, Path], args: argparse.Namespace) -> list[dict]:
    rows = []
    shapes = WIDE_SHAPES[:1] if args.quick else WIDE_SHAPES
    for i, shape in enumerate(shapes):
        model = wide_model(shape, i)
        dense_bytes = model.coef_.nbytes
        for how in ("pickle-5", "joblib"):
            path = tmp / f"wide{i}.{'joblib' if how == 'joblib' else 'pkl'}"
            write_model(model, path, how)
            name = f"{shape[0]} x 2^{shape[1].bit_length() - 1}, 1% ({how})"
            rows.append(compress_row(name, path, dense_bytes, trees, tmp))
            path.unlink()
        del model
    text = args.large_dir / "text_sgd.pkl"
    if text.exists():
        from edgesparse.loader import load_model

        dense_bytes = np.asarray(load_model(text).coef_, dtype=np.float64).nbytes
        rows.append(compress_row("text_sgd 20 x 2^18 (bundled)", text, dense_bytes, trees, tmp))
    return rows


# -- table 2: a device process ---------------------------------------------------------------
LOAD_DENSE = "import numpy as np\nX = np.load({x!r})"
LOAD_CSR = """import numpy as np
class CSR:  # what the runtime reads of a CSR matrix, without scipy
    format = "csr"
    def tocsr(self):
        return self
d = np.load({x!r})
X = CSR()
X.data, X.indices, X.indptr = d["data"], d["indices"], d["indptr"]
X.shape, X.nnz = (int(d["n_rows"]), int(d["n_cols"])), int(d["data"].size)"""


def process_inputs(tmp: Path, args: argparse.Namespace) -> list[tuple[str, Path, str]]:
    """(name, blob, code that builds X) for each model of table 2; the blobs are what
    ``edgesparse compress`` writes by default."""
    cases = []
    for short, name in PROCESS_MODELS:
        with open(ROOT / "models" / f"{name}.pkl", "rb") as f:
            ir = edgesparse.compress(pickle.load(f))
        blob = tmp / f"{short}.esb"
        esb.write(ir, blob)
        X = np.load(ROOT / "models" / f"{name}.test.npz")["X"]
        x_path = tmp / f"{short}_X.npy"
        np.save(x_path, X[np.arange(1000) % X.shape[0]])
        cases.append((short, blob, LOAD_DENSE.format(x=str(x_path))))
    text = args.large_dir / "text_sgd.pkl"
    if text.exists():
        with open(text, "rb") as f:
            ir = edgesparse.compress(pickle.load(f))
        blob = tmp / "text.esb"
        esb.write(ir, blob)
        d = np.load(args.large_dir / "text_sgd.test.npz")
        rows = np.arange(1000) % (d["X_indptr"].size - 1)
        indptr, indices, data = d["X_indptr"], d["X_indices"], d["X_data"]
        parts = [np.arange(indptr[r], indptr[r + 1]) for r in rows]
        take = np.concatenate(parts)
        x_path = tmp / "text_X.npz"
        np.savez(
            x_path,
            data=data[take],
            indices=indices[take],
            indptr=np.concatenate([[0], np.cumsum([p.size for p in parts])]),
            n_rows=1000,
            n_cols=int(d["X_shape"][1]),
        )
        cases.append(("text", blob, LOAD_CSR.format(x=str(x_path))))
    return cases


def process_row(name: str, blob: Path, make_x: str, tree: Path, repeat: int) -> dict[str, Any]:
    """Peak RSS (min of ``repeat`` runs) of: numpy, numpy + X (the floor), + load, + predict."""
    load = f"import edgesparse\nm = edgesparse.load({str(blob)!r})"
    bodies = {
        "numpy": "import numpy",
        "floor": make_x,
        "load": f"{make_x}\n{load}",
        "predict": f"{make_x}\n{load}\nm.predict(X)",
    }
    runs = {k: [child(b, tree) for _ in range(repeat)] for k, b in bodies.items()}
    kib = {k: min(r["peak_kib"] for r in rs) for k, rs in runs.items()}
    anon = {k: min(r["anon_kib"] for r in rs) for k, rs in runs.items()}
    model_bytes = blob.stat().st_size
    extra = (kib["predict"] - kib["floor"]) / 1024
    return {
        "model": name,
        "model_bytes": model_bytes,
        "numpy_mib": kib["numpy"] / 1024,
        "floor_over_numpy_mib": (kib["floor"] - kib["numpy"]) / 1024,
        "load_mib": (kib["load"] - kib["floor"]) / 1024,
        "load_predict_mib": extra,
        # What of it is private memory (the rest: pages of numpy's and Python's own code,
        # touched for the first time, shared with every other process that maps them).
        "load_predict_private_mib": (anon["predict"] - anon["floor"]) / 1024,
        "goal_mib": 2 + model_bytes / MIB,
        "met": extra <= 2 + model_bytes / MIB,
    }


def process_table(tmp: Path, trees: dict[str, Path], args: argparse.Namespace) -> list[dict]:
    rows = []
    for name, blob, make_x in process_inputs(tmp, args):
        row: dict[str, Any] = {"model": name}
        for label, tree in trees.items():
            row[label] = process_row(name, blob, make_x, tree, 2 if args.quick else 5)
        rows.append(row)
    return rows


# -- output ----------------------------------------------------------------------------------
def print_tables(result: dict[str, Any], labels: list[str]) -> None:
    print(
        "\n| compress | pickle | dense coef_ | "
        + " | ".join(f"peak RSS {lb} (dense copies) | over goal {lb} | time {lb}" for lb in labels)
        + " |"
    )
    print("|---|---:|---:|" + "---:|---:|---:|" * len(labels))
    for r in result["compress"]:
        cells = [
            f"{r[lb]['peak_mib']:.0f} MiB ({r[lb]['dense_copies']:.2f}) | "
            f"{r[lb]['over_goal_mib']:+.0f} MiB | {r[lb]['seconds']:.2f} s"
            for lb in labels
        ]
        print(
            f"| {r['model']} | {r['pickle_mib']:.0f} MiB | {r['dense_mib']:.0f} MiB | "
            + " | ".join(cells)
            + " |"
        )
    print(
        "\n| load + predict 1000 | model bytes | goal | "
        + " | ".join(f"load {lb} | load + predict {lb} (private)" for lb in labels)
        + " |"
    )
    print("|---|---:|---:|" + "---:|---:|" * len(labels))
    for r in result["process"]:
        first = r[labels[0]]
        cells = [
            f"+{r[lb]['load_mib']:.2f} MiB | +{r[lb]['load_predict_mib']:.2f} MiB "
            f"(+{r[lb]['load_predict_private_mib']:.2f})"
            for lb in labels
        ]
        print(
            f"| {r['model']} | {first['model_bytes']:,} | +{first['goal_mib']:.2f} MiB | "
            + " | ".join(cells)
            + " |"
        )
    print(
        "\n(process figures: peak RSS over a process that imports numpy and builds X; private:"
        " anonymous RSS at exit over the same, the rest is code pages shared with other"
        " processes)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--large-dir", type=Path, default=ROOT / "models", help="models/train.py --large output"
    )
    parser.add_argument("--compare-with", type=Path, help="a directory holding an older edgesparse")
    parser.add_argument("--quick", action="store_true", help="only 20 x 2^20, fewer repeats")
    parser.add_argument(
        "--tables",
        choices=("both", "compress", "process"),
        default="both",
        help="which table(s) to measure (default both)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "memory.json")
    args = parser.parse_args(argv)
    trees = {"now": ROOT}
    if args.compare_with is not None:
        trees = {"before": args.compare_with.resolve(), "now": ROOT}
    result: dict[str, Any] = {
        "meta": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "trees": {k: str(v) for k, v in trees.items()},
            "cpus": os.cpu_count(),
        }
    }
    with tempfile.TemporaryDirectory() as tmp:
        result["compress"] = (
            compress_table(Path(tmp), trees, args) if args.tables != "process" else []
        )
        result["process"] = (
            process_table(Path(tmp), trees, args) if args.tables != "compress" else []
        )
    print_tables(result, list(trees))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
