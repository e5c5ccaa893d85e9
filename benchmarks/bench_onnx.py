"""ONNX benchmark: edgesparse's ONNX export vs skl2onnx (+ onnxruntime's dynamic quantization).

For every bundled model (and the large ones when ``python models/train.py --large`` has made
them) it builds, in one run on this machine:

* ``skl2onnx fp32``: ``skl2onnx.to_onnx`` with its defaults (failures recorded verbatim);
* ``skl2onnx + quantize_dynamic``: that graph through
  ``onnxruntime.quantization.quantize_dynamic(weight_type=QInt8)`` (failures recorded; "quantized
  nothing" when it ran but left every op in float);
* ``edgesparse fp32`` (``--quantize float32``), ``int8 dequantize`` (the default),
  ``int8 matmulinteger``, ``int8, half pruned`` (half of the nonzero weights; dequantize) and
  the same with ``--onnx-sparse``;

and measures file bytes, onnxruntime batch-1 latency (median and p99 over many runs) and
batch-1000 throughput, one thread, and label agreement with scikit-learn (max |delta| for
regressors). Every artifact runs in a session with one intra-op and one inter-op thread,
sequential execution, errors-only logging; edgesparse's in the session ``edgesparse.load``
creates (``session.disable_quant_qdq = 1``), plus one ``int8 dequantize, plain session`` row
with onnxruntime's default graph settings (where ``DequantizeLinear -> MatMul`` becomes
``MatMulNBits`` with int8 activations). Latency is ``session.run`` on a ready float32 array:
the graphs, not the Python wrappers, fetching what skl2onnx's default graph returns (label
and probabilities, or label and scores; edgesparse's extra ``scores`` output is not fetched).
``digits_pipeline_sparsified`` is digits_pipeline after ``.sparsify()`` (CSR ``coef_``).

Prints a Markdown table and writes JSON (``--out``, default benchmarks/results/onnx.json).
Compare ratios, not absolute numbers: the machines are shared and noisy.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import scipy.sparse as sp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _measure import MODELS as BUNDLED  # noqa: E402  (benchmarks/, this script's folder)

import edgesparse  # noqa: E402
from edgesparse.formats import onnx as eo  # noqa: E402
from edgesparse.loader import load_model  # noqa: E402

# skl2onnx fails on the sparsified one, which is the point of showing it.
MODELS = [*BUNDLED[:4], "digits_pipeline_sparsified", *BUNDLED[4:]]
LARGE = {"synthetic_sgd", "text_sgd"}
# The graphs take dense float32 input: a batch is capped at this many cells (text_sgd has
# 2^18 features, so 1000 dense rows would be 1 GiB); throughput is still rows per second.
MAX_BATCH_CELLS = 1 << 26


def load_test(path: Path) -> Any:
    with np.load(path, allow_pickle=False) as npz:
        if "X" in npz.files:
            return npz["X"]
        shape = tuple(int(v) for v in npz["X_shape"])
        return sp.csr_matrix((npz["X_data"], npz["X_indices"], npz["X_indptr"]), shape=shape)


def dense_rows(X: Any, rows: np.ndarray) -> np.ndarray:
    part = X[rows]
    part = part.toarray() if sp.issparse(part) else part
    return np.ascontiguousarray(part, dtype=np.float32)


def session(data: bytes, *, edgesparse_options: bool) -> ort.InferenceSession:
    if edgesparse_options:
        return edgesparse.runtime.loads(data, threads=1).session
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.log_severity_level = 3
    return ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])


def latencies(
    sessions: list[ort.InferenceSession], x1: np.ndarray, *, runs: int, rounds: int = 10
) -> list[dict]:
    """Batch-1 median and p99 per session, interleaved (each round runs every session a
    while) so that drift on a shared machine hits all variants alike."""
    feeds = [{s.get_inputs()[0].name: x1} for s in sessions]
    fetch = [timed_outputs(s) for s in sessions]
    times: list[list[int]] = [[] for _ in sessions]
    per_round = max(1, runs // rounds)
    for _ in range(rounds):
        for sess, names, feed, out in zip(sessions, fetch, feeds, times, strict=True):
            for _ in range(max(10, per_round // 10)):  # warm-up
                sess.run(names, feed)
            for _ in range(per_round):
                t = time.perf_counter_ns()
                sess.run(names, feed)
                out.append(time.perf_counter_ns() - t)
    return [
        {"median_us": float(np.median(t) / 1e3), "p99_us": float(np.percentile(t, 99) / 1e3)}
        for t in times
    ]


def timed_outputs(sess: ort.InferenceSession) -> list[str] | None:
    """What skl2onnx's default graph returns: label + probabilities (or + scores when there
    are none) for edgesparse classifiers, which also have ``scores``; everything otherwise."""
    names = [o.name for o in sess.get_outputs()]
    if "label" in names and "scores" in names:
        return ["label", "probabilities" if "probabilities" in names else "scores"]
    return None


def throughput(sess: ort.InferenceSession, xb: np.ndarray, *, min_time: float = 1.0) -> float:
    feed = {sess.get_inputs()[0].name: xb}
    names = timed_outputs(sess)
    sess.run(names, feed)
    times = []
    start = time.perf_counter()
    while len(times) < 5 or time.perf_counter() - start < min_time:
        t = time.perf_counter()
        sess.run(names, feed)
        times.append(time.perf_counter() - t)
    return float(xb.shape[0] / np.median(times))


def fidelity(sess: ort.InferenceSession, X: Any, ref: np.ndarray, is_classifier: bool) -> dict:
    names = [o.name for o in sess.get_outputs()]
    # skl2onnx names them output_label / variable, edgesparse label / variable.
    out = next(i for i, n in enumerate(names) if "label" in n) if is_classifier else 0
    step = max(1, MAX_BATCH_CELLS // X.shape[1])
    preds = []
    for lo in range(0, X.shape[0], step):
        rows = np.arange(lo, min(X.shape[0], lo + step))
        preds.append(sess.run(None, {sess.get_inputs()[0].name: dense_rows(X, rows)})[out])
    pred = np.concatenate(preds)
    if is_classifier:
        return {"label_agreement": float(np.mean(pred.reshape(-1) == ref))}
    return {"max_abs_delta": float(np.max(np.abs(pred.reshape(ref.shape) - ref)))}


def first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return f"{type(exc).__name__}: {text.splitlines()[0].strip()}"


def skl2onnx_variants(est: Any, X: Any, work: Path) -> list[tuple[str, bytes | None, str]]:
    """(variant, model bytes or None, note) for skl2onnx's default conversion and its
    dynamically quantized version."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from skl2onnx import to_onnx

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = to_onnx(est, dense_rows(X, np.arange(1)))
    except Exception as exc:  # record whatever skl2onnx raises, verbatim
        note = f"fails: {first_line(exc)}"
        return [("skl2onnx fp32", None, note), ("skl2onnx + quantize_dynamic", None, note)]
    fp32 = model.SerializeToString()
    ops = sorted({f"{n.domain + ':' if n.domain else ''}{n.op_type}" for n in model.graph.node})
    out = [("skl2onnx fp32", fp32, "ops: " + ", ".join(ops))]
    src, dst = work / "skl2onnx.onnx", work / "skl2onnx.int8.onnx"
    src.write_bytes(fp32)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quantize_dynamic(src, dst, weight_type=QuantType.QInt8)
        q = dst.read_bytes()
        q_ops = {n.op_type for n in onnx.load_model_from_string(q).graph.node}
        quantized = q_ops & {"MatMulInteger", "DynamicQuantizeLinear", "DynamicQuantizeMatMul"}
        out.append(
            ("skl2onnx + quantize_dynamic", q, "" if quantized else "ran, quantized nothing")
        )
    except Exception as exc:
        out.append(("skl2onnx + quantize_dynamic", None, f"fails: {first_line(exc)}"))
    return out


def edgesparse_variants(est: Any) -> list[tuple[str, bytes, bool, str]]:
    """(variant, model bytes, run with edgesparse.load's session options, note)."""
    fp32 = edgesparse.compress(est, quantize="float32")
    int8 = edgesparse.compress(est, quantize="int8")
    # Half of the nonzero weights pruned (sparsity counts existing zeros: text_sgd is ~99%
    # zeros already, so a plain 0.5 would prune nothing there).
    exact = edgesparse.compress(est, quantize="none")
    n_cells = exact.n_outputs * exact.n_features
    pruned = edgesparse.compress(est, sparsity=1 - 0.5 * exact.nnz / n_cells, quantize="int8")
    dq = eo.encode(int8)
    return [
        ("edgesparse fp32", eo.encode(fp32), True, ""),
        ("edgesparse int8 dequantize", dq, True, "default"),
        ("edgesparse int8 dequantize, plain session", dq, False, "MatMulNBits, int8 activations"),
        ("edgesparse int8 matmulinteger", eo.encode(int8, int8_form="matmulinteger"), True, ""),
        ("edgesparse int8, half pruned", eo.encode(pruned), True, f"nnz {pruned.nnz}"),
        ("edgesparse int8, half pruned, --onnx-sparse", eo.encode(pruned, sparse=True), True, ""),
    ]


def sparsified(est: Any) -> Any:
    """A copy whose (final) linear model stores ``coef_`` as a scipy CSR matrix."""
    est = copy.deepcopy(est)
    (est.steps[-1][1] if hasattr(est, "steps") else est).sparsify()
    return est


# name -> (bundled model it is made from, how)
DERIVED = {"digits_pipeline_sparsified": ("digits_pipeline", sparsified)}


def bench_model(name: str, models_dir: Path, work: Path, runs: int) -> list[dict] | None:
    source, derive = DERIVED.get(name, (name, None))
    pkl, data = models_dir / f"{source}.pkl", models_dir / f"{source}.test.npz"
    if not pkl.exists() or not data.exists():
        return None
    est = load_model(pkl)
    if derive is not None:
        est = derive(est)
    X = load_test(data)
    ref = est.predict(X)
    is_classifier = hasattr(est, "classes_")
    x1 = dense_rows(X, np.arange(1))
    n_batch = min(1000, max(1, MAX_BATCH_CELLS // X.shape[1]))
    xb = dense_rows(X, np.arange(n_batch) % X.shape[0])
    ir = edgesparse.compress(est, quantize="none")
    base = {"model": name, "shape": list(ir.shape), "nnz": ir.nnz, "batch": n_batch}
    variants = [(v, b, False, note) for v, b, note in skl2onnx_variants(est, X, work)]
    variants += edgesparse_variants(est)
    rows, timed = [], []
    for variant, blob, own, note in variants:
        row: dict[str, Any] = {**base, "variant": variant, "note": note}
        rows.append(row)
        if blob is None:
            continue
        row["bytes"] = len(blob)
        try:
            sess = session(blob, edgesparse_options=own)
        except Exception as exc:
            row["note"] = f"onnxruntime fails: {first_line(exc)}"
            continue
        row.update(fidelity(sess, X, ref, is_classifier))
        row["throughput_rows_per_s"] = throughput(sess, xb)
        timed.append((row, sess))
        print(f"  {name}: {variant} built and checked", file=sys.stderr)
    for (row, _), lat in zip(timed, latencies([s for _, s in timed], x1, runs=runs), strict=True):
        row["batch1"] = lat
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| model | variant | bytes | batch-1 median / p99 (µs) | batch throughput (rows/s) "
        "| agreement | note |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "bytes" not in r:
            lines.append(f"| {r['model']} | {r['variant']} | - | - | - | - | {r['note']} |")
            continue
        if "batch1" not in r:
            lines.append(
                f"| {r['model']} | {r['variant']} | {r['bytes']:,} | - | - | - | {r['note']} |"
            )
            continue
        fid = (
            f"{r['label_agreement']:.2%}"
            if "label_agreement" in r
            else f"max Δ {r['max_abs_delta']:.3g}"
        )
        batch = "" if r["batch"] == 1000 else f" (batch {r['batch']})"
        lines.append(
            f"| {r['model']} | {r['variant']} | {r['bytes']:,} | "
            f"{r['batch1']['median_us']:.1f} / {r['batch1']['p99_us']:.1f} | "
            f"{r['throughput_rows_per_s']:,.0f}{batch} | {fid} | {r['note']} |"
        )
    return "\n".join(lines)


def goals(rows: list[dict[str, Any]]) -> list[str]:
    """The issue's goals, per model: int8 smaller than skl2onnx fp32, >= 99.5% agreement,
    batch-1 latency no worse than skl2onnx fp32."""
    out = []
    for name in dict.fromkeys(r["model"] for r in rows):
        by = {r["variant"]: r for r in rows if r["model"] == name}
        ours, theirs = by["edgesparse int8 dequantize"], by["skl2onnx fp32"]
        if "bytes" not in theirs:
            out.append(f"{name}: skl2onnx fp32 has no model ({theirs['note']})")
            continue
        smaller = ours["bytes"] < theirs["bytes"]
        agree = ours.get("label_agreement", 1.0) >= 0.995
        t_ours, t_theirs = ours["batch1"]["median_us"], theirs["batch1"]["median_us"]
        out.append(
            f"{name}: int8 {ours['bytes']:,} B vs skl2onnx fp32 {theirs['bytes']:,} B "
            f"({'smaller' if smaller else 'NOT smaller'}); agreement "
            f"{'ok' if agree else 'BELOW 99.5%'}; batch-1 {t_ours:.1f} vs {t_theirs:.1f} µs "
            f"({'no worse' if t_ours <= t_theirs * 1.05 else 'SLOWER'})"
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "onnx.json")
    parser.add_argument("--models", nargs="*", default=MODELS)
    parser.add_argument(
        "--models-dir", type=Path, default=ROOT / "models", help="where <name>.pkl files live"
    )
    parser.add_argument("--runs", type=int, default=5000, help="batch-1 runs per artifact")
    args = parser.parse_args()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            got = bench_model(name, args.models_dir, Path(tmp), args.runs)
            if got is None:
                hint = " (python models/train.py --large makes it)" if name in LARGE else ""
                print(f"skipped {name}: {args.models_dir / name}.pkl not found{hint}")
                continue
            rows.extend(got)
    print(markdown(rows))
    print()
    print("\n".join(goals(rows)))
    meta = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "numpy": np.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": ort.__version__,
        "edgesparse": edgesparse.__version__,
    }
    try:
        import skl2onnx
        import sklearn

        meta.update(skl2onnx=skl2onnx.__version__, sklearn=sklearn.__version__)
    except ImportError:
        pass
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    print(f"\nwrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
