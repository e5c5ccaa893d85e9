"""The accuracy budget of models with an input stage: how sparse a certified text or tabular
pipeline gets, and whether the certified drop holds on rows no run touched.

Two pipelines, trained once; the rest of their data split (fixed seed) into a calibration part
and a test part that neither training nor any compress run sees:

* ``text``: ``TfidfVectorizer`` + ``LogisticRegression(C=10)`` on standard-library docstrings
  (the corpus of benchmarks/bench_text.py, four module families as string labels), a third
  each for training, calibration and test;
* ``tabular``: a ``ColumnTransformer`` (imputed and scaled age/hours, one-hot workclass,
  education, sex and country with unseen categories, unscaled passthrough fnlwgt ~10^5, gain
  up to ~10^4 and grade ~10^-3) + ``LogisticRegression`` on tests' adult-like table: 2 000
  training, 2 000 calibration, 4 000 test records.

Each run writes the calibration file as the CLI reads it (JSON lines; a CSV with the label
last), runs ``edgesparse compress --calibration ... --max-accuracy-drop B`` in-process
(:func:`edgesparse.pipeline.compress_file`) with split seeds 0-4, loads the written ``.esb``
with :func:`edgesparse.load` and scores it on the test part against the pipeline's own
``predict``. A run "holds" when its test drop is within the budget.

Prints a Markdown table and writes JSON (``--out``, default benchmarks/results/raw_budget.json).
"""

from __future__ import annotations

import argparse
import json
import pickle
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import edgesparse  # noqa: E402
from benchmarks.bench_text import corpus  # noqa: E402
from edgesparse.pipeline import CompressOptions, compress_file  # noqa: E402
from tests.test_tabular_featurizer import ADULT_NAMES, adult_like  # noqa: E402

SEEDS = (0, 1, 2, 3, 4)
FAMILY = np.array(["text", "files", "functional", "numbers"])


def text_case() -> dict[str, Any]:
    """The text pipeline, its calibration documents (JSON lines) and test documents."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    docs, labels = corpus()
    order = np.random.default_rng(0).permutation(len(docs))
    train, cal, test = np.array_split(order, 3)
    y = FAMILY[labels]
    pipe = make_pipeline(TfidfVectorizer(), LogisticRegression(C=10.0, max_iter=1000))
    pipe.fit([docs[i] for i in train], y[train])
    lines = [json.dumps({"text": docs[i], "label": str(y[i])}) for i in cal]
    return {
        "pipe": pipe,
        "suffix": ".jsonl",
        "calibration": "\n".join(lines) + "\n",
        "cal_rows": len(cal),
        "test_X": [docs[i] for i in test],
        "test_y": y[test],
        "budgets": (0.02, 0.05),
    }


def tabular_case() -> dict[str, Any]:
    """The tabular pipeline, its calibration records (a CSV, label last) and test records."""
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    X, y = adult_like(8000, seed=11)
    df = pd.DataFrame(X, columns=list(ADULT_NAMES))
    for name in ("age", "fnlwgt", "hours", "gain", "grade"):
        df[name] = pd.to_numeric(df[name])
    cats = ["workclass", "education", "sex", "country"]
    ct = ColumnTransformer(
        [
            ("num", make_pipeline(SimpleImputer(), StandardScaler()), ["age", "hours"]),
            ("cat", OneHotEncoder(handle_unknown="ignore"), cats),
            ("raw", SimpleImputer(), ["fnlwgt", "gain", "grade"]),
        ]
    )
    pipe = make_pipeline(ct, LogisticRegression(solver="newton-cholesky"))
    pipe.fit(df[:2000], y[:2000])
    return {
        "pipe": pipe,
        "suffix": ".csv",
        "calibration": df[2000:4000].assign(income=y[2000:4000]).to_csv(index=False),
        "cal_rows": 2000,
        "test_X": df[4000:],
        "test_y": y[4000:],
        "budgets": (0.01, 0.03),
    }


def run(name: str, case: dict[str, Any], budget: float, seed: int, tmp: Path) -> dict[str, Any]:
    """One compress run and its test-set figures."""
    src, cal = tmp / f"{name}.pkl", tmp / f"{name}_cal{case['suffix']}"
    out = tmp / f"{name}.esb"
    src.write_bytes(pickle.dumps(case["pipe"]))
    cal.write_text(case["calibration"], encoding="utf-8")
    started = time.perf_counter()
    report = compress_file(
        CompressOptions(
            source=src, output=out, calibration=cal, max_accuracy_drop=budget, seed=seed
        )
    )
    seconds = time.perf_counter() - started
    assert report.linear is not None and report.linear.budget is not None
    written = edgesparse.load(out)
    X, y = case["test_X"], case["test_y"]
    ref_ok = case["pipe"].predict(X) == y
    ok = np.asarray(written.predict(X)) == y
    b = report.linear.budget
    return {
        "model": name,
        "budget": budget,
        "seed": seed,
        "calibration_rows": case["cal_rows"],
        "certified": b["met"],
        "sparsity": report.linear.sparsity_after,
        "pickle_bytes": report.source_bytes,
        "esb_bytes": report.output_bytes,
        "test_rows": int(y.size),
        "test_accuracy_before": float(ref_ok.mean()),
        "test_accuracy_after": float(ok.mean()),
        "test_drop": float(ref_ok.mean() - ok.mean()),
        "holds": bool(ref_ok.mean() - ok.mean() <= budget),
        "written_agreement": b["input_stage"]["written_agreement"],
        "sklearn_agreement": b["input_stage"]["sklearn_agreement"],
        "seconds": seconds,
    }


def table(rows: list[dict[str, Any]]) -> str:
    """Markdown: per model and budget, over the seeds."""
    out = [
        "| model | budget | cal rows | certified | sparsity (min-max) | .esb bytes (median) "
        "| test drop (max) | holds | compress s (median) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    keys = sorted({(r["model"], r["budget"]) for r in rows}, key=lambda k: (k[0] != "text", k))
    for model, budget in keys:
        rs = [r for r in rows if r["model"] == model and r["budget"] == budget]
        sp = [r["sparsity"] for r in rs]
        out.append(
            f"| {model} | {budget:.0%} | {rs[0]['calibration_rows']} | "
            f"{sum(r['certified'] for r in rs)}/{len(rs)} | {min(sp):.1%}-{max(sp):.1%} | "
            f"{int(np.median([r['esb_bytes'] for r in rs])):,} | "
            f"{max(r['test_drop'] for r in rs):+.2%} | {sum(r['holds'] for r in rs)}/{len(rs)} | "
            f"{np.median([r['seconds'] for r in rs]):.2f} |"
        )
    return "\n".join(out)


def main() -> None:
    """Run every model x budget x seed, print the table, write the JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/raw_budget.json")
    args = ap.parse_args()
    cases = {"text": text_case(), "tabular": tabular_case()}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, case in cases.items():
            for budget in case["budgets"]:
                for seed in SEEDS:
                    rows.append(run(name, case, budget, seed, Path(tmp)))
    print(table(rows))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    doc = {"python": platform.python_version(), "machine": platform.machine(), "runs": rows}
    args.out.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
