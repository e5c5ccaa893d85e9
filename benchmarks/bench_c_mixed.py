"""C runtime benchmark for raised rows ('values' encoding 1: int8 rows and a few int16 rows).

Two questions, each answered by ratios of ``esb bench`` medians (edgesparse/runtime/c/esb_main.c,
gcc -O2), per index layout, dense rows:

* int8 models: does the mixed-width support cost the int8-only kernels anything? The driver
  built from this tree against the driver built from ``--baseline`` (a git revision whose C
  runtime has no encoding 1; default ``6a85652^``), on the same blobs. Goal: ratio ~1.
* mixed models: what do the wide rows cost? The same model with ``--raise`` of its rows raised
  to int16 (quantize.raise_rows) against its int8 version, both with this tree's driver.

Models: the bundled digits pipeline (10 x 64, dense), wine with a StandardScaler (3 x 13,
dense), and a sparse text-like model (20 x 3000, 1 % stored), int8 with column exponents
(quantize_int8(columns="pow2")). Each configuration is timed ``--repeats`` times, interleaved
(baseline, this tree, ...), one call = ``--batch`` rows; the median of the per-repeat p50s is
reported. One run on a shared machine: compare ratios, not absolute numbers.

Code placement: on the machine this was written on (AMD EPYC, gcc -O2) a kernel whose machine
code did not change (same instructions, same count under ``valgrind --tool=callgrind``) timed
1.37x slower after an edit elsewhere in esb.c (the verifier), and equal again with
``-falign-loops=32``, ``-falign-jumps=32`` or ``-falign-functions=64``. When an unchanged
kernel's ratio is far from 1, compare instruction counts before concluding anything.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edgesparse.export_c import c_runtime_dir, write_rows  # noqa: E402
from edgesparse.formats import esb  # noqa: E402
from edgesparse.frontends import to_linear_ir as to_ir  # noqa: E402
from edgesparse.ir import from_dense  # noqa: E402
from edgesparse.loader import load_model  # noqa: E402
from edgesparse.passes.quantize import quantize_int8, raise_rows  # noqa: E402

CFLAGS = ["-O2", "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"]
LAYOUTS = ("dense", "transposed", "columns", "streamed")


def run(cmd: list[str], **kw) -> str:
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kw)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {res.stderr.strip()}")
    return res.stdout


def build(src: Path, exe: Path) -> Path:
    run(["gcc", *CFLAGS, str(src / "esb.c"), str(src / "esb_main.c"), "-lm", "-o", str(exe)])
    return exe


def baseline_sources(rev: str, out: Path) -> Path:
    """Every C source of the runtime at ``rev``: esb_main.c includes other mains of its tree."""
    out.mkdir(parents=True, exist_ok=True)
    folder = "edgesparse/runtime/c/"
    names = run(["git", "-C", str(ROOT), "ls-tree", "--name-only", rev, folder]).split()
    for path in names:
        if path.endswith((".c", ".h")):
            text = run(["git", "-C", str(ROOT), "show", f"{rev}:{path}"])
            (out / Path(path).name).write_text(text)
    return out


def models(n_raise: int) -> dict[str, tuple[object, object, np.ndarray]]:
    """name -> (int8 IR, the same with rows raised, rows)."""
    from sklearn.datasets import load_wine
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    out = {}
    pkl = ROOT / "models" / "digits_pipeline.pkl"
    X_digits = np.load(ROOT / "models" / "digits_pipeline.test.npz")["X"]
    irs = {"digits-pipeline": (to_ir(load_model(pkl)), X_digits)}
    X, y = load_wine(return_X_y=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)).fit(X, y)
    irs["wine-pipeline"] = (to_ir(est), X)
    rng = np.random.default_rng(5)
    w = rng.normal(size=(20, 3000)) * (rng.random((20, 3000)) < 0.01)
    w *= 10.0 ** rng.integers(-2, 3, 3000)
    Xs = rng.normal(size=(200, 3000)) * (rng.random((200, 3000)) < 0.05)
    irs["sparse-20x3000"] = (
        from_dense(w, bias=rng.normal(size=20), head="hard", classes=np.arange(20)),
        Xs,
    )
    for name, (ir, X) in irs.items():
        q = quantize_int8(ir, columns="pow2")
        rows = np.linspace(0, ir.n_outputs - 1, min(n_raise, ir.n_outputs)).astype(int)
        out[name] = (q, raise_rows(ir, q, rows), X)
    return out


def p50(exe: Path, blob: Path, rows: Path, layout: str, args: argparse.Namespace) -> float:
    cmd = [str(exe), "bench", str(blob), str(rows), str(args.runs), str(args.warmup)]
    cmd += ["--layout", layout, "--batch", str(args.batch)]
    return float(json.loads(run(cmd))["p50_ns"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--baseline",
        default="6a85652^",
        help="git revision (default: the commit before values encoding 1)",
    )
    parser.add_argument("--raise", dest="n_raise", type=int, default=1, help="rows to raise")
    parser.add_argument("--runs", type=int, default=3000)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None, help="JSON results")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        base = build(baseline_sources(args.baseline, work / "base"), work / "esb-base")
        cur = build(c_runtime_dir(), work / "esb-cur")
        for name, (q, r, X) in models(args.n_raise).items():
            b8, b16, rows = work / f"{name}.esb", work / f"{name}-mixed.esb", work / f"{name}.bin"
            esb.write(q, b8)
            esb.write(r, b16)
            write_rows(rows, X)
            dense_ok = q.n_outputs * q.n_features <= 4 * q.nnz
            for layout in LAYOUTS:
                if layout == "dense" and not dense_ok:
                    continue
                t: dict[str, list[float]] = {"base": [], "int8": [], "mixed": []}
                for _ in range(args.repeats):
                    t["base"].append(p50(base, b8, rows, layout, args))
                    t["int8"].append(p50(cur, b8, rows, layout, args))
                    t["mixed"].append(p50(cur, b16, rows, layout, args))
                med = {k: float(np.median(v)) for k, v in t.items()}
                results.append(
                    {
                        "model": name,
                        "layout": layout,
                        "wide_rows": int(r.wide_rows.sum()),
                        "n_outputs": r.n_outputs,
                        "p50_ns": med,
                        "int8_vs_baseline": med["int8"] / med["base"],
                        "mixed_vs_int8": med["mixed"] / med["int8"],
                    }
                )
    print(f"batch {args.batch} rows per call, median of {args.repeats} p50s (ns per call)\n")
    print(
        "| model | layout | wide rows | baseline int8 | int8 | int8 / baseline | mixed "
        "| mixed / int8 |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for x in results:
        m = x["p50_ns"]
        print(
            f"| {x['model']} | {x['layout']} | {x['wide_rows']}/{x['n_outputs']} "
            f"| {m['base']:.0f} | {m['int8']:.0f} | {x['int8_vs_baseline']:.3f} "
            f"| {m['mixed']:.0f} | {x['mixed_vs_int8']:.3f} |"
        )
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
