"""Raw input end to end (issue 20, item 6): text and mixed-type tabular pipelines trained here
(nothing downloaded), compressed by ``edgesparse compress`` and timed from raw input,
featurization included, by ``edgesparse bench`` itself on the host and emulated Pis.

Text: bench_text.py's standard-library docstrings (a quarter held out, whitespace folded to one
line each: ``docs.txt``) through its tf-idf and hashed pipelines. Tabular: the tests'
adult-census-like table (numbers from 10^-3 to 10^5, unseen string categories, NaN and None
cells) as CSV, read back by ``pandas.read_csv``: median imputer + StandardScaler on the numeric
columns, constant imputer + ``OneHotEncoder(handle_unknown="ignore")`` on the string ones, then
a logistic regression; held-out records: ``rows.csv``.

Per pipeline: bytes of the pickle, of ``compress``'s ``.esb`` and ``.onnx`` (defaults: int8,
safe checks) and of skl2onnx's graph (or why it does not convert); vocabulary terms fitted and
kept; agreement with the pipeline's ``predict`` on the held-out raw input, computed here (numpy
runtime, ``.onnx`` via ``edgesparse.load``, skl2onnx in onnxruntime) and by the bench per target
and engine; the batch-1 p50 of ``edgesparse bench m.esb c:m.esb m.onnx m.pkl --data
docs.txt|rows.csv`` per target, as ratios to the pipeline's batch-1 ``predict`` on the host and
to the numpy runtime on that target. Rows the bench skips are printed with its reason. Prints
Markdown tables, writes JSON (``--out``). Emulated targets are QEMU user mode on the host, not
device latency, and the machine is shared: compare ratios within a target.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import pickle
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))

from bench_text import corpus  # noqa: E402  (this script's folder; sets one BLAS thread)
from bench_text import pipelines as text_pipelines  # noqa: E402

import edgesparse  # noqa: E402
from edgesparse.data import read_records  # noqa: E402
from tests.test_tabular_featurizer import ADULT_NAMES, adult_like  # noqa: E402

TEXT = {"tfidf": "TfidfVectorizer + logistic", "hashing": "hashing 2^18 + SGD (hinge)"}
TABULAR = "ColumnTransformer(imputer + scaler, imputer + one-hot) + logistic"
NUMERIC = ["age", "fnlwgt", "hours", "gain", "grade"]
CATEGORIES = ["workclass", "education", "country", "sex"]
ENGINES = {"esb": "numpy", "c": "C", "onnx": "ONNX", "sklearn": "scikit-learn"}


def text_cases(*, quick: bool, workdir: Path) -> list[dict[str, Any]]:
    """The two text pipelines fitted on the docstrings; the held-out ones as ``docs.txt``."""
    docs, y = corpus()
    docs = [" ".join(d.split()) for d in docs]  # one document per line of docs.txt
    held = np.random.default_rng(0).random(len(docs)) < 0.25
    train = [d for d, h in zip(docs, held, strict=True) if not h]
    test = [d for d, h in zip(docs, held, strict=True) if h][: 60 if quick else None]
    path = workdir / "docs.txt"
    path.write_text("\n".join(test) + "\n", encoding="utf-8")
    made = text_pipelines()
    for name in TEXT.values():
        made[name].fit(train, y[~held])
    return [
        {"slug": slug, "name": n, "kind": "text", "data": path, "X": test, "pipe": made[n]}
        for slug, n in TEXT.items()
    ]


def _cell(v: object) -> object:
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else v


def tabular_case(*, quick: bool, workdir: Path) -> dict[str, Any]:
    """The tabular pipeline fitted on ``pandas.read_csv`` of the training records (as its user
    would), the held-out records as ``rows.csv``."""
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    n_train, n_test = (1200, 300) if quick else (4000, 2000)
    X, y = adult_like(n_train + n_test, seed=20)
    paths = {}
    for part, rows in (("train", X[:n_train]), ("rows", X[n_train:])):
        paths[part] = workdir / f"{part}.csv"
        with paths[part].open("w", newline="", encoding="utf-8") as fh:
            out = csv.writer(fh)
            out.writerow(ADULT_NAMES)
            out.writerows([_cell(v) for v in r] for r in rows.tolist())
    num = make_pipeline(SimpleImputer(strategy="median"), StandardScaler())
    cat = make_pipeline(
        SimpleImputer(strategy="constant", fill_value="missing"),
        OneHotEncoder(handle_unknown="ignore"),
    )
    ct = ColumnTransformer([("num", num, NUMERIC), ("cat", cat, CATEGORIES)])
    pipe = make_pipeline(ct, LogisticRegression(max_iter=1000))
    pipe.fit(pd.read_csv(paths["train"]), y[:n_train])
    test = pd.read_csv(paths["rows"])
    return {
        "slug": "tab",
        "name": TABULAR,
        "kind": "tabular",
        "pipe": pipe,
        "data": paths["rows"],
        "X": test,
    }


def _edgesparse(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "edgesparse", *args], capture_output=True, text=True, cwd=ROOT
    )


def _line(text: str, index: int) -> str:
    """One line of a message (the first of an exception's, the last of a CLI's stderr)."""
    return (text.strip().splitlines() or ["(no message)"])[index][:160]


def skl2onnx_graph(case: dict[str, Any]) -> tuple[bytes | None, str | None]:
    """skl2onnx's conversion of the pipeline (serialized), or None and why it does not."""
    try:
        from skl2onnx import convert_sklearn
        from skl2onnx.common.data_types import FloatTensorType, StringTensorType
    except ImportError as exc:
        return None, f"skl2onnx is not installed ({exc})"
    if case["kind"] == "text":
        types = [("input", StringTensorType([None, 1]))]
    else:
        types = [(c, FloatTensorType([None, 1])) for c in NUMERIC]
        types += [(c, StringTensorType([None, 1])) for c in CATEGORIES]
    steps = case["pipe"].steps
    options: dict[int, dict[str, Any]] = {id(steps[-1][1]): {"zipmap": False}}
    if case["kind"] == "text":  # its default en_US.UTF-8 fails to load where not installed
        options[id(steps[0][1])] = {"locale": "C.UTF-8"}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            onx = convert_sklearn(case["pipe"], initial_types=types, options=options)
    except Exception as exc:  # any refusal is the figure: reported, not raised
        return None, f"does not convert: {type(exc).__name__}: {_line(str(exc), 0)}"
    return onx.SerializeToString(), None


def skl2onnx_labels(graph: bytes, case: dict[str, Any]) -> np.ndarray:
    """skl2onnx's labels on the held-out input (a missing string cell fed as ``""``: a string
    tensor holds no NaN)."""
    import onnxruntime as ort

    quiet = ort.SessionOptions()
    quiet.log_severity_level = 4
    sess = ort.InferenceSession(graph, quiet, providers=["CPUExecutionProvider"])
    if case["kind"] == "text":
        feeds = {"input": np.array(case["X"], dtype=object).reshape(-1, 1)}
    else:
        frame = case["X"]
        feeds = {c: frame[c].to_numpy(np.float32).reshape(-1, 1) for c in NUMERIC}
        feeds |= {c: frame[c].fillna("").to_numpy(object).reshape(-1, 1) for c in CATEGORIES}
    return np.asarray(sess.run(None, feeds)[0]).ravel()


def artifacts(case: dict[str, Any], *, workdir: Path) -> dict[str, Any]:
    """Pickle, ``.esb``, ``.onnx`` (via the CLI) and skl2onnx: bytes, vocabulary, agreement."""
    stem = workdir / case["slug"] / case["slug"]
    stem.parent.mkdir()
    pkl, esb, onnx = (stem.with_suffix(s) for s in (".pkl", ".esb", ".onnx"))
    pkl.write_bytes(pickle.dumps(case["pipe"]))
    done = _edgesparse("compress", str(pkl), "-o", str(esb))
    if done.returncode != 0:
        raise SystemExit(f"{case['name']}: compress failed: {done.stderr.strip()}")
    raw = case["X"] if case["kind"] == "text" else read_records(case["data"])
    want = np.asarray(case["pipe"].predict(case["X"]))
    model = edgesparse.load(esb)
    out: dict[str, Any] = {"pickle_bytes": pkl.stat().st_size, "esb_bytes": esb.stat().st_size}
    out["agree_numpy"] = float(np.mean(np.asarray(model.predict(raw)) == want))
    vocabulary = getattr(case["pipe"].steps[0][1], "vocabulary_", None)
    kept = getattr(model.ir.featurizer, "vocabulary", None)
    out["vocabulary_fitted"] = None if vocabulary is None else len(vocabulary)
    out["vocabulary_kept"] = None if kept is None or vocabulary is None else len(kept)
    done = _edgesparse("compress", str(pkl), "-o", str(onnx))
    if done.returncode == 0:
        out["onnx_bytes"] = onnx.stat().st_size
        got = np.asarray(edgesparse.load(onnx).predict(raw))
        out["agree_onnx"] = float(np.mean(got == want))
    else:
        out["onnx_error"] = f"does not export: {_line(done.stderr, -1)}"
    graph, why = skl2onnx_graph(case)
    if graph is None:
        out["skl2onnx_error"] = why
    else:
        out["skl2onnx_bytes"] = len(graph)
        try:
            got = skl2onnx_labels(graph, case).astype(want.dtype)
            out["agree_skl2onnx"] = float(np.mean(got == want))
        except Exception as exc:  # its runtime's refusal is a finding too
            out["skl2onnx_error"] = f"converts, does not run: {_line(str(exc), 0)}"
    out["files"] = [str(esb), f"c:{esb}", *([str(onnx)] if "onnx_bytes" in out else []), str(pkl)]
    return out


def bench(
    case: dict[str, Any], files: list[str], *, targets: list[str], runs: int
) -> dict[str, Any]:
    """``edgesparse bench`` of the artifacts at batch 1: its rows, or its error line."""
    report = Path(files[0]).parent / "report"
    args = ["bench", *files, "--data", str(case["data"]), "--batch", "1"]
    args += ["--runs", str(runs), "--warmup", str(max(1, runs // 10)), "-o", str(report)]
    for target in targets:
        args += ["--target", target]
    done = _edgesparse(*args)
    if done.returncode != 0:
        return {"rows": [], "error": _line(done.stderr, -1)}
    return {"rows": json.loads((report / "results.json").read_text())["results"]}


def latency_rows(measured: dict[str, Any]) -> list[dict[str, Any]]:
    """One entry per target and engine: p50, its ratios, agreement, status and reason."""
    rows = measured["bench"]["rows"]
    p50 = {(r["target"], r["engine"]): r["latency_us"]["p50"] for r in rows if r["status"] == "ok"}
    sk = p50.get(("host", "sklearn"))
    out = []
    for r in rows:
        if r["engine"] == "sklearn" and r["target"] != "host":
            continue  # skipped by design: scikit-learn is the host-only reference
        us, numpy_us = p50.get((r["target"], r["engine"])), p50.get((r["target"], "esb"))
        out.append(
            {
                "target": r["target"] + (" (emulated)" if r["emulated"] else ""),
                "engine": ENGINES.get(r["engine"], r["engine"]),
                "p50_us": us,
                "vs_sklearn_host": None if us is None or sk is None else us / sk,
                "vs_numpy": None if us is None or numpy_us is None else us / numpy_us,
                "agreement": None if r["engine"] == "sklearn" else r.get("agreement"),
                "status": r["status"] if r["status"] == "ok" else f"{r['status']}: {r['error']}",
            }
        )
    return out


def _fmt(value: float | None, spec: str, suffix: str = "") -> str:
    return "—" if value is None else f"{value:{spec}}{suffix}"


def tables(measured: list[dict[str, Any]]) -> list[str]:
    """The two Markdown tables: artifacts (bytes, vocabulary, agreement) and batch-1 latency."""
    lines = [
        "| pipeline | pickle | .esb | .onnx | skl2onnx .onnx | vocabulary fitted → kept "
        "| agree: numpy / ONNX / skl2onnx |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for m in measured:
        a = m["artifacts"]
        vocab = "—" if a["vocabulary_fitted"] is None else f"{a['vocabulary_fitted']:,} → "
        vocab += "" if a["vocabulary_kept"] is None else f"{a['vocabulary_kept']:,}"
        onnx = _fmt(a.get("onnx_bytes"), ",") if "onnx_error" not in a else a["onnx_error"]
        sk2 = a.get("skl2onnx_error") or _fmt(a.get("skl2onnx_bytes"), ",")
        agree = " / ".join(
            _fmt(a.get(k), ".2%") for k in ("agree_numpy", "agree_onnx", "agree_skl2onnx")
        )
        lines.append(
            f"| {m['pipeline']} | {a['pickle_bytes']:,} | {a['esb_bytes']:,} | {onnx} | {sk2} "
            f"| {vocab} | {agree} |"
        )
    lines += [
        "",
        "| pipeline | target | engine | batch-1 p50 | x scikit-learn on host | x numpy "
        "| agree (bench) | status |",
        "|---|---|---|---:|---:|---:|---:|---|",
    ]
    for m in measured:
        if m["bench"].get("error"):
            lines.append(
                f"| {m['pipeline']} | — | — | | | | | bench failed: {m['bench']['error']} |"
            )
        for r in m["latency"]:
            agree = _fmt(r["agreement"], ".2%")
            lines.append(
                f"| {m['pipeline']} | {r['target']} | {r['engine']} "
                f"| {_fmt(r['p50_us'], ',.1f', ' µs')} "
                f"| {_fmt(r['vs_sklearn_host'], '.3g', 'x')} | {_fmt(r['vs_numpy'], '.3g', 'x')} "
                f"| {'— (reference)' if r['engine'] == 'scikit-learn' else agree} "
                f"| {r['status'].split(' (')[0]} |"
            )
    return lines


def main() -> None:
    """Build, compress and bench every pipeline; print the tables, write the JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", action="append", help="bench targets (default: host, rpi4)")
    ap.add_argument("--quick", action="store_true", help="small data, 30 timed calls, host only")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "raw.json")
    args = ap.parse_args()
    targets = args.target or (["host"] if args.quick else ["host", "rpi4"])
    runs = 30 if args.quick else 300
    measured = []
    with tempfile.TemporaryDirectory(prefix="edgesparse-raw-") as tmp:
        work = Path(tmp)
        cases = [
            *text_cases(quick=args.quick, workdir=work),
            tabular_case(quick=args.quick, workdir=work),
        ]
        for case in cases:
            arts = artifacts(case, workdir=work)
            done = bench(case, arts.pop("files"), targets=targets, runs=runs)
            m = {"pipeline": case["name"], "kind": case["kind"], "held_out": len(case["X"])}
            m.update(artifacts=arts, bench=done)
            m["latency"] = latency_rows(m)
            measured.append(m)
    print("\n".join(tables(measured)))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(measured, indent=2) + "\n")


if __name__ == "__main__":
    main()
