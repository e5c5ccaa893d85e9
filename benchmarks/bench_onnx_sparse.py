"""CSR-input ONNX against the numpy runtime on the hashed-text model (issue 19, goal 5).

The text model (``models/train.py --large``'s ``text_sgd``: ``SGDClassifier``, 20 classes x
2^18 hashed features, ~1% of ``coef_`` nonzero), compressed with the defaults (int8, column
exponents), predicting labels for batch 1 and batch 1000 of its held-out CSR rows, one thread:

* ``numpy runtime``: ``edgesparse.Model.predict`` (every input check);
* ``onnx csr input``: ``edgesparse.load`` of the CSR-input graph (``compress --onnx-input csr``,
  the default for this model), ``OnnxModel.predict`` (the same checks);
* ``onnx csr input, session only``: its ``session.run`` on ready int64/float32 arrays;
* ``onnx dense input``: the dense-input graph (``--onnx-input dense``) through
  ``OnnxModel.predict``, which densifies the CSR rows for it;
* ``contrib SparseToDenseMatMul``: onnxruntime's ``com.microsoft.SparseToDenseMatMul`` on a
  CSR ``SparseTensor`` (columns mapped to the used ones in numpy first, as that op cannot) times
  the same float32 weights, the same head; no input checks.

Times are medians of calls interleaved round by round (load drift hits every engine alike);
the ratio is to the numpy runtime in the same run. Every engine's labels are checked against
the numpy runtime's (and the scores' largest difference recorded). Prints a Markdown table and
writes JSON (``--out``, default benchmarks/results/onnx_sparse.json). Compare ratios, not
absolute numbers: the machines are shared and noisy.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"  # one thread, for numpy and onnxruntime alike

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
import scipy.sparse as sp  # noqa: E402
from onnx import TensorProto, helper  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _measure import ROOT  # noqa: E402

sys.path.insert(0, str(ROOT))
import edgesparse  # noqa: E402
from edgesparse.formats import onnx as eo  # noqa: E402
from edgesparse.formats.onnx_graph import Graph, classifier_head, real_weights  # noqa: E402
from edgesparse.ir import LinearIR  # noqa: E402
from edgesparse.loader import load_model  # noqa: E402
from edgesparse.runtime import loads  # noqa: E402

BATCHES = (1, 1000)


def text_model(large_dir: Path | None) -> tuple[Any, sp.csr_matrix]:
    """The text model and its held-out rows: from ``large_dir`` (or models/), else trained
    here with ``models/train.py``'s recipe (about 30 s)."""
    for folder in (large_dir, ROOT / "models"):
        if folder is not None and (folder / "text_sgd.pkl").exists():
            d = np.load(folder / "text_sgd.test.npz")
            X = sp.csr_matrix(
                (d["X_data"], d["X_indices"], d["X_indptr"]), shape=tuple(d["X_shape"])
            )
            return load_model(folder / "text_sgd.pkl"), X
    sys.path.insert(0, str(ROOT / "models"))
    import train  # models/train.py

    print("text_sgd.pkl not found (--large-dir): training it", file=sys.stderr)
    trained = train.train_text_sgd()
    return trained.model, sp.csr_matrix(trained.X_test)


def session(data: bytes) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.log_severity_level = 3
    return ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])


def contrib_engine(ir: LinearIR) -> Any:
    """``predict`` through ``com.microsoft.SparseToDenseMatMul``: the CSR rows, their columns
    mapped to the used ones (a zero weight row for the rest), as a ``SparseTensor`` input."""
    used = np.unique(ir.indices)
    pos = np.searchsorted(used, ir.indices)
    g = Graph()
    w = real_weights(g, ir, used, pos, n_rows=used.size + 1, sparse=False)
    product = g.node("SparseToDenseMatMul", ["A", w], domain="com.microsoft")
    scores = g.node("Add", [product, g.const("B", ir.bias.astype(np.float32))], out="scores")
    outputs = classifier_head(g, ir, scores)
    graph = helper.make_graph(
        g.nodes,
        "contrib",
        [helper.make_sparse_tensor_value_info("A", TensorProto.FLOAT, ["N", used.size + 1])],
        [helper.make_tensor_value_info(n, t, s) for n, t, s in outputs],
        initializer=g.initializers,
    )
    opsets = [helper.make_opsetid("", eo.DEFAULT_OPSET), helper.make_opsetid("com.microsoft", 1)]
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 8
    sess = session(model.SerializeToString())
    table = np.full(ir.n_features, used.size, dtype=np.int64)
    table[used] = np.arange(used.size)
    shape_cols = used.size + 1
    device = ort.OrtDevice.make("cpu", 0)

    def predict(X: sp.csr_matrix) -> np.ndarray:
        a = ort.SparseTensor.sparse_csr_from_numpy(
            np.array([X.shape[0], shape_cols], dtype=np.int64),
            X.data.astype(np.float32),
            table[X.indices],
            X.indptr.astype(np.int64),
            device,
        )
        feed = {"A": ort.OrtValue.ort_value_from_sparse_tensor(a)}
        return sess.run_with_ort_values(["label"], feed)[0].numpy()

    return predict


def engines(ir: LinearIR) -> dict[str, Any]:
    """name -> prepare(X), which returns a zero-argument call giving the labels of ``X``."""
    csr_model = loads(eo.encode(ir, input="csr"), threads=1)
    dense_model = loads(eo.encode(ir, input="dense"), threads=1)
    numpy_model = edgesparse.Model(ir)

    def session_only(X: sp.csr_matrix) -> Any:
        feed = {
            "indices": X.indices.astype(np.int64),
            "values": X.data.astype(np.float32),
            "indptr": X.indptr.astype(np.int64),
        }
        return lambda: csr_model.session.run(["label"], feed)[0]

    out = {
        "numpy runtime": lambda X: lambda: numpy_model.predict(X),
        "onnx csr input": lambda X: lambda: csr_model.predict(X),
        "onnx csr input, session only": session_only,
        "onnx dense input": lambda X: lambda: dense_model.predict(X),
    }
    try:
        contrib = contrib_engine(ir)
        out["contrib SparseToDenseMatMul"] = lambda X: lambda: contrib(X)
    except Exception as exc:  # an onnxruntime build without the contrib ops
        print(f"contrib op unusable: {str(exc).splitlines()[0]}", file=sys.stderr)
    return out


def measure(funcs: dict[str, Any], budget: float, rounds: int = 10) -> dict[str, float]:
    """Median seconds per call, interleaved: each round runs every function about
    ``budget / rounds`` seconds (at least once)."""
    once = {}
    for name, f in funcs.items():
        f()
        t = time.perf_counter()
        f()
        once[name] = max(time.perf_counter() - t, 1e-7)
    times: dict[str, list[float]] = {name: [] for name in funcs}
    for _ in range(rounds):
        for name, f in funcs.items():
            for _ in range(max(1, int(budget / rounds / once[name]))):
                t = time.perf_counter()
                f()
                times[name].append(time.perf_counter() - t)
    return {name: float(np.median(ts)) for name, ts in times.items()}


def batch_rows(ir: LinearIR, X: sp.csr_matrix, eng: dict[str, Any], budget: float) -> list:
    """One table row per batch size and engine; labels checked against the numpy runtime."""
    rng = np.random.default_rng(0)
    rows = []
    for n in BATCHES:
        Xb = sp.csr_matrix(X[rng.integers(0, X.shape[0], n)])
        funcs = {name: prepare(Xb) for name, prepare in eng.items()}
        ref = funcs["numpy runtime"]()
        agree = {name: bool(np.array_equal(f(), ref)) for name, f in funcs.items()}
        t = measure(funcs, budget if n == 1 else 4 * budget)
        for name in funcs:
            rows.append(
                {
                    "batch": n,
                    "nnz": int(Xb.nnz),
                    "engine": name,
                    "ms": t[name] * 1e3,
                    "ratio": t[name] / t["numpy runtime"],
                    "labels_equal_numpy": agree[name],
                }
            )
    return rows


def score_deltas(ir: LinearIR, X: sp.csr_matrix) -> dict[str, float]:
    """Largest |score difference| to the numpy runtime over the held-out rows."""
    ref = edgesparse.Model(ir).decision_function(X)
    csr = loads(eo.encode(ir, input="csr")).decision_function(X)
    dense = loads(eo.encode(ir, input="dense")).decision_function(X[:200])
    return {
        "onnx csr input": float(np.abs(csr - ref).max()),
        "onnx dense input (200 rows)": float(np.abs(dense - ref[:200]).max()),
    }


def print_table(result: dict[str, Any]) -> None:
    print(f"\ntext model {result['model']}: ratio = time / numpy runtime's, one thread\n")
    print("| batch | nnz | engine | ms | ratio | labels = numpy |")
    print("|---:|---:|---|---:|---:|---|")
    for r in result["rows"]:
        print(
            f"| {r['batch']} | {r['nnz']} | {r['engine']} | {r['ms']:.3f} | "
            f"{r['ratio']:.2f}x | {'yes' if r['labels_equal_numpy'] else 'NO'} |"
        )
    print(f"\nmax |score - numpy runtime's|: {result['score_deltas']}")
    print(f"file bytes: {result['bytes']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--large-dir", type=Path, help="models/train.py --large output dir")
    parser.add_argument("--budget", type=float, default=1.0, help="seconds per engine, batch 1")
    parser.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks" / "results" / "onnx_sparse.json"
    )
    args = parser.parse_args(argv)
    est, X = text_model(args.large_dir)
    ir = edgesparse.compress(est)
    result: dict[str, Any] = {
        "meta": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "onnx": onnx.__version__,
            "onnxruntime": ort.__version__,
            "machine": platform.machine(),
            "threads": 1,
        },
        "model": f"{ir.shape[0]} x {ir.shape[1]}, nnz {ir.nnz}, {ir.quantization}, "
        f"columns {ir.column_scaling}",
        "bytes": {
            "onnx csr input": len(eo.encode(ir, input="csr")),
            "onnx dense input": len(eo.encode(ir, input="dense")),
        },
        "rows": batch_rows(ir, X, engines(ir), args.budget),
        "score_deltas": score_deltas(ir, X),
    }
    print_table(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
