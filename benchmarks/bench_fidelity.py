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
from edgesparse.frontend import to_ir
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
        "column_scaling": new.column_scaling,
        "with_training_stats": data is not None,
        "esb_bytes": len(blob),
        "float32_weight_bytes": 4 * int(to_ir(case.estimator).nnz),
        **scores,
        "passes": {k: fs.passes(case, v) for k, v in scores.items()},
    }


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
    args.out.parent.mkdir(parents=True, exist_ok=True)
    doc = {"seconds": time.perf_counter() - start, "cases": rows}
    args.out.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
