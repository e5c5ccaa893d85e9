"""Fidelity benchmark: default int8 on the fidelity suite (tests/fidelity_suite.py).

For every case (estimator family x scaler x table; mixed-scale synthetic tables and
scikit-learn's bundled real ones), fitted on half the rows and judged on the other half against
scikit-learn's own ``predict``:

* ``old``: the previous default, int8 with one scale per row and the scalers folded into the
  weights (``columns="none"``, no statistics, no bias correction);
* ``.esb``: today's default ``compress`` (column exponents where they measure better, bias
  correction from the scaler's statistics; for models with no scaler or a MaxAbsScaler, which
  know no input centre, statistics of the training rows, as a user gives with --check-data);
* ``onnx``: the same IR as a standard-op ONNX graph in onnxruntime (DequantizeLinear form);
* bytes of the ``.esb`` blob and of the float32 weights.

Classifiers: label agreement (bar 99.5%); regressors: max |error| / scikit-learn's output
range (bar 1%). Prints a Markdown summary per table and scaler plus every case below the bar,
and writes JSON (``--out``, default benchmarks/results/fidelity.json).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edgesparse.api import compress
from edgesparse.formats import esb
from edgesparse.frontends import to_linear_ir as to_ir
from edgesparse.runtime.model import Model
from tests import fidelity_suite as fs


def _onnx_predict(ir: Any, X: Any) -> Any:
    from edgesparse.formats import onnx as onnx_format
    from edgesparse.runtime import loads

    return loads(onnx_format.encode(ir)).predict(X)


def run_case(name: str) -> dict[str, Any]:
    """Measure one case of the suite."""
    case = fs.case(name)
    data = fs.training_rows(name) if fs.needs_data(name) else None
    old = compress(to_ir(case.estimator).replace(input_stats=None), columns="none", quantize="int8")
    new = compress(case.estimator, data=data)
    blob = esb.encode(new)
    scores = {
        "old": fs.score(case, Model(old).predict(case.X_test)),
        "esb": fs.score(case, Model(esb.decode(blob)).predict(case.X_test)),
        "onnx": fs.score(case, _onnx_predict(new, case.X_test)),
    }
    return {
        "case": name,
        "classifier": case.is_classifier,
        "test_rows": int(case.X_test.shape[0]),
        "quantization": new.quantization,
        "int16_rows": int(new.wide_rows.sum()),
        "column_scaling": new.column_scaling,
        "with_training_stats": data is not None,
        "esb_bytes": len(blob),
        "float32_weight_bytes": 4 * int(to_ir(case.estimator).nnz),
        **scores,
        "passes": {k: fs.passes(case, v) for k, v in scores.items()},
    }


def size_cases() -> list[dict[str, Any]]:
    """Bytes against fidelity: a 10-class x 200-feature StandardScaler + LogisticRegression on
    mixed-scale columns, and the hashed-text model when ``models/train.py --large`` made it."""
    import numpy as np
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from edgesparse.api import compress_quantized

    X, y = make_classification(
        n_samples=4000, n_features=200, n_informative=60, n_classes=10, random_state=0
    )
    X = fs.mixed_scale(X, seed=5)
    est = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000)).fit(X[:2000], y[:2000])
    out = []
    for layout, quantize, data in (
        ("default (probe rows)", None, None),
        ("default + --check-data (fit rows)", None, X[:2000]),
        ("--quantize int8", "int8", None),
        ("--quantize float32", "float32", None),
    ):
        ir = compress_quantized(est, quantize=quantize, data=data).ir
        blob = esb.encode(ir)
        agree = float(np.mean(Model(ir).predict(X[2000:]) == est.predict(X[2000:])))
        out.append(
            {
                "model": "10 x 200 mixed-scale",
                "layout": f"{layout}: {ir.quantization}, {int(ir.wide_rows.sum())} int16 rows",
                "bytes": len(blob),
                "vs_float32": len(blob) / (4 * 2000),
                "agreement": agree,
                "sections": section_bytes(blob),
            }
        )
    return out + _text_sizes()


def section_bytes(blob: bytes) -> dict[str, int]:
    """Where a blob's bytes go: header and section table, each section (name[encoding]),
    and the alignment padding between sections."""
    secs = esb.verify(blob)["sections"]
    first = min(v["offset"] for v in secs.values())
    out = {"header+table": first}
    out.update({f"{k}[{v['encoding']}]": v["bytes"] for k, v in secs.items()})
    out["padding"] = len(blob) - sum(out.values())
    return out


def _text_sizes() -> list[dict[str, Any]]:
    import numpy as np

    from edgesparse.api import compress_quantized
    from edgesparse.data import load_dataset
    from edgesparse.loader import load_model

    models = Path(__file__).resolve().parents[1] / "models"
    if not (models / "text_sgd.pkl").exists():
        print("(text model absent: python models/train.py --large makes it)")
        return []
    est = load_model(models / "text_sgd.pkl")
    import scipy.sparse as sp

    X = load_dataset(models / "text_sgd.test.npz", n_features=est.n_features_in_).X
    X = sp.csr_matrix((X.data, X.indices, X.indptr), shape=X.shape)
    out = []
    for layout, data in (("default (no statistics)", None), ("default + --check-data", X)):
        ir = compress_quantized(est, data=data).ir
        n = len(esb.encode(ir))
        agree = float(np.mean(Model(ir).predict(X) == est.predict(X)))
        out.append(
            {
                "model": f"text 20 x 2^18 ({n / ir.nnz:.2f} B/nnz)",
                "layout": f"{layout}: {ir.quantization}, {int(ir.wide_rows.sum())} int16 rows",
                "bytes": n,
                "vs_float32": n / (4 * ir.nnz),
                "agreement": agree,
            }
        )
    return out


def _fmt(row: dict[str, Any], key: str) -> str:
    v = row[key]
    return f"{v:.2%}" if row["classifier"] else f"{v:.2%} err"


def main() -> None:
    """Run the suite, print the tables, write the JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results/fidelity.json")
    args = ap.parse_args()
    start = time.perf_counter()
    rows = [run_case(n) for n in fs.case_names()]
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        table, scaler, _ = r["case"].split("/")
        groups.setdefault((table, scaler), []).append(r)
    print(
        "| table | scaler | models | old default: worst / below bar | .esb: worst / below bar "
        "| ONNX: worst / below bar |"
    )
    print("|---|---|---|---|---|---|")
    for (table, scaler), rs in groups.items():
        cells = []
        for key in ("old", "esb", "onnx"):
            worst = (min if rs[0]["classifier"] else max)(rs, key=lambda r, k=key: r[k])
            below = sum(not r["passes"][key] for r in rs)
            cells.append(f"{_fmt(worst, key)} / {below}")
        print(f"| {table} | {scaler} | {len(rs)} | " + " | ".join(cells) + " |")
    fails = [r for r in rows if not r["passes"]["esb"]]
    print(
        f"\n{len(rows)} cases; below the bar: old {sum(not r['passes']['old'] for r in rows)}, "
        f".esb {len(fails)}, ONNX {sum(not r['passes']['onnx'] for r in rows)}"
    )
    for r in fails:
        print(f"  {r['case']}: .esb {_fmt(r, 'esb')} on {r['test_rows']} rows")
    raised = [r for r in rows if r["int16_rows"]]
    print(
        f"default precision: {len(rows) - len(raised)} int8, {len(raised)} with int16 rows "
        f"({sum(r['int16_rows'] for r in raised)} rows), "
        f"{sum(r['quantization'] == 'float32' for r in rows)} float32"
    )
    sizes = size_cases()
    print("\n| model | layout | bytes | vs float32 weights | agreement on held-out rows |")
    print("|---|---|---|---|---|")
    for z in sizes:
        print(
            f"| {z['model']} | {z['layout']} | {z['bytes']:,} | {z['vs_float32']:.2f}x | "
            f"{z['agreement']:.2%} |"
        )
    print("\nwhere the 10 x 200 blobs' bytes go:")
    for z in sizes:
        if "sections" in z:
            parts = ", ".join(f"{k} {v}" for k, v in z["sections"].items())
            print(f"  {z['layout']} ({z['bytes']:,} B): {parts}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    doc = {"seconds": time.perf_counter() - start, "cases": rows, "sizes": sizes}
    args.out.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
