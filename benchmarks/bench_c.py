"""C runtime benchmark: batch-1 latency of the C runtime vs the numpy runtime, peak RSS of the
C process, and the size of the linked program + model.

For every bundled model in models/ (and the large ones after ``python models/train.py
--large``), compressed with the defaults (int8 per row), on this machine:

* latency: batch-1 ``predict`` over the held-out rows, p50 / p99 per call. C: the driver
  ``esb bench`` (edgesparse/runtime/c/esb_main.c, gcc -O2 -static), each call timed on its
  own, in three memory modes (esb.h): the default workspace of ``esb_workspace_size_fast``
  bytes (the dense or transposed layout), the minimal ``--min-workspace`` of
  ``esb_workspace_size`` bytes (4*nnz without column exponents: dense, else the column list)
  and ``--stream`` (no workspace); numpy:
  ``Model.predict(X[i:i+1])`` in this process, each call timed with perf_counter_ns.
  Goal: C (default mode) <= 1/4 of numpy.
* memory: peak RSS (VmHWM) of the C driver process (statically linked), which holds the
  program, libc, the blob, the rows and its 4 * RUNS-byte timing array. Goal: <= 2 MiB.
* size: ``size`` (text + data + bss) of the program ``edgesparse export-c`` generates
  (runtime + example main + the model as a const array, dynamically linked against libc), and
  of the runtime alone (esb.o) for the host, aarch64 and armhf at -O2 and -Os.

``--emulated`` adds the C timings under qemu-aarch64 / qemu-arm (static builds); those are
emulator numbers, useful only as a smoke test of the cross builds, not as device latency.

Prints a Markdown table and writes JSON (``--out``, default benchmarks/results/c.json). One run
on a shared machine: compare ratios, not absolute numbers. Batch 1000 (the batch calls vs the
per-row loop vs numpy): benchmarks/bench_c_batch.py.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
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

from _measure import MODELS as BUNDLED  # noqa: E402  (benchmarks/, this script's folder)

from edgesparse.export_c import c_runtime_dir, export_c, write_rows  # noqa: E402
from edgesparse.formats import esb  # noqa: E402
from edgesparse.pipeline import CompressOptions, compress_file  # noqa: E402
from edgesparse.runtime import Model  # noqa: E402

MODELS = list(BUNDLED)
CFLAGS = ["-O2", "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"]
CROSS = {
    "aarch64": ("aarch64-linux-gnu-gcc", "aarch64-linux-gnu-size", "qemu-aarch64-static"),
    "armhf": ("arm-linux-gnueabihf-gcc", "arm-linux-gnueabihf-size", "qemu-arm-static"),
}


def load_test(path: Path) -> Any:
    with np.load(path, allow_pickle=False) as npz:
        if "X" in npz.files:
            return npz["X"]
        shape = tuple(int(v) for v in npz["X_shape"])
        return sp.csr_matrix((npz["X_data"], npz["X_indices"], npz["X_indptr"]), shape=shape)


def run(cmd: list[str]) -> str:
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {res.stderr.strip()}")
    return res.stdout


def size_of(tool: str, path: Path) -> dict[str, int]:
    """text, data, bss and their sum (dec) from Berkeley-format ``size``."""
    fields = run([tool, str(path)]).splitlines()[1].split()
    text, data, bss, dec = (int(v) for v in fields[:4])
    return {"text": text, "data": data, "bss": bss, "total": dec}


def build(cc: str, out: Path, sources: list[Path], extra: list[str] = ()) -> Path:
    run([cc, *CFLAGS, *extra, *map(str, sources), "-lm", "-o", str(out)])
    return out


def numpy_batch1(model: Model, X: Any, runs: int, warmup: int) -> dict[str, float]:
    n = X.shape[0]
    rows = [X[i : i + 1] for i in range(n)]
    for i in range(warmup):
        model.predict(rows[i % n])
    t = np.empty(runs, dtype=np.int64)
    for i in range(runs):
        a = time.perf_counter_ns()
        model.predict(rows[i % n])
        t[i] = time.perf_counter_ns() - a
    return {"p50_ns": float(np.percentile(t, 50)), "p99_ns": float(np.percentile(t, 99))}


def runtime_sizes(work: Path) -> dict[str, dict[str, int]]:
    """``size`` of esb.o (the runtime alone) per architecture and optimization level."""
    out: dict[str, dict[str, int]] = {}
    src = c_runtime_dir() / "esb.c"
    tools = {"host": ("gcc", "size")} | {k: v[:2] for k, v in CROSS.items()}
    for arch, (cc, size_tool) in tools.items():
        if not shutil.which(cc):
            continue
        for opt in ("-O2", "-Os"):
            obj = work / f"esb-{arch}{opt}.o"
            run([cc, *CFLAGS, opt, "-c", str(src), "-o", str(obj)])
            out[f"{arch} {opt}"] = size_of(size_tool, obj)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "c.json")
    parser.add_argument("--models", nargs="*", default=MODELS)
    parser.add_argument(
        "--models-dir", type=Path, default=ROOT / "models", help="Where <name>.pkl live."
    )
    parser.add_argument("--runs", type=int, default=20000)
    parser.add_argument("--warmup", type=int, default=1000)
    parser.add_argument("--emulated", action="store_true", help="Also time under qemu.")
    args = parser.parse_args()

    c_dir = c_runtime_dir()
    results: dict[str, Any] = {
        "machine": platform.platform(),
        "cpu": platform.processor() or platform.machine(),
        "cc": run(["gcc", "--version"]).splitlines()[0],
        "runs": args.runs,
        "models": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        # Static, as on a device without a dynamic loader: an empty dynamically linked program
        # already has ~1.2 MiB of VmHWM here (ld.so + libc pages), a static one ~0.7 MiB.
        driver = build("gcc", work / "esb", [c_dir / "esb.c", c_dir / "esb_main.c"], ["-static"])
        cross = {}
        if args.emulated:
            for arch, (cc, _, emu) in CROSS.items():
                if shutil.which(cc) and shutil.which(emu):
                    exe = build(
                        cc,
                        work / f"esb-{arch}",
                        [c_dir / "esb.c", c_dir / "esb_main.c"],
                        ["-static"],
                    )
                    cross[arch] = [emu, str(exe)]
        results["driver_size"] = size_of("size", driver)
        results["runtime_object_size"] = runtime_sizes(work)
        for name in args.models:
            pkl, npz = args.models_dir / f"{name}.pkl", args.models_dir / f"{name}.test.npz"
            if not pkl.exists():
                print(f"skip {name}: {pkl.name} not found (python models/train.py --large)")
                continue
            blob = work / f"{name}.esb"
            compress_file(CompressOptions(source=pkl, output=blob))
            X = load_test(npz)
            # Rows held by the C process count in its RSS: keep them to ~256 KiB (a dense
            # 20000-feature row is 80 KB) or 200 rows; both runtimes cycle through the same rows.
            per_row = 4 * X.shape[1] if not sp.issparse(X) else 8 * X.nnz / X.shape[0]
            X = X[: max(1, min(200, X.shape[0], int(262144 // per_row)))]
            rows = work / f"{name}.rows"
            write_rows(rows, X)
            model = Model(esb.read(blob))
            info = esb.inspect_file(blob)
            c = {}
            for mode, flags in (
                ("decoded", []),
                ("min", ["--min-workspace"]),
                ("streamed", ["--stream"]),
            ):
                out = run(
                    [
                        str(driver),
                        "bench",
                        str(blob),
                        str(rows),
                        str(args.runs),
                        str(args.warmup),
                        *flags,
                    ]
                )
                c[mode] = json.loads(out)
            for arch, prefix in cross.items():
                out = run(
                    [
                        *prefix,
                        "bench",
                        str(blob),
                        str(rows),
                        str(args.runs // 10),
                        str(args.warmup // 10),
                    ]
                )
                c[f"qemu-{arch}"] = json.loads(out)
            export_dir = work / f"{name}-c"
            export_c(blob, export_dir)
            program = build(
                "gcc",
                export_dir / "model_main",
                [export_dir / "main.c", export_dir / "esb.c", export_dir / "model_data.c"],
            )
            npy = numpy_batch1(model, X, min(args.runs, 5000), min(args.warmup, 500))
            results["models"][name] = {
                "shape": info["shape"],
                "nnz": info["nnz"],
                "index_layout": info["index_layout"],
                "esb_bytes": info["bytes"],
                "rows": int(X.shape[0]),
                "input": "csr" if sp.issparse(X) else "dense",
                "c": c,
                "numpy": npy,
                "c_over_numpy_p50": c["decoded"]["p50_ns"] / npy["p50_ns"],
                "exported_program_size": size_of("size", program),
            }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")

    print(
        "| model | shape | nnz | .esb B | layout, workspace B | C p50/p99 ns | "
        "C p50 ns (min workspace) | C p50 ns (streamed) | "
        "numpy p50/p99 ns | C/numpy p50 | C peak RSS KiB | program text+data+bss B |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name, r in results["models"].items():
        d, mn, s, n = r["c"]["decoded"], r["c"]["min"], r["c"]["streamed"], r["numpy"]
        print(
            f"| {name} | {r['shape']} | {r['nnz']} | {r['esb_bytes']:,} | "
            f"{d['layout']}, {d['workspace_bytes']:,} | "
            f"{d['p50_ns']:,.0f} / {d['p99_ns']:,.0f} | "
            f"{mn['p50_ns']:,.0f} ({mn['layout']}) | {s['p50_ns']:,.0f} | "
            f"{n['p50_ns']:,.0f} / {n['p99_ns']:,.0f} | {r['c_over_numpy_p50']:.3f} | "
            f"{d['peak_rss_bytes'] // 1024:,} | {r['exported_program_size']['total']:,} |"
        )
    print(f"\ntimer overhead per call (included above): {d['timer_overhead_ns']} ns")
    print("runtime alone (esb.o, text+data+bss bytes):")
    for k, v in results["runtime_object_size"].items():
        print(f"  {k:<14} {v['total']:>7,}  (text {v['text']:,})")
    for name, r in results["models"].items():
        for k, v in r["c"].items():
            if k.startswith("qemu"):
                print(f"  {name} {k} (emulated, not device latency): p50 {v['p50_ns']:,} ns")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
