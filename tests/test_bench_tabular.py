"""The bench of blobs with a tabular input stage: timed from raw records (a CSV with a header
row), featurization included, on the host and on emulated rpi4 (QEMU), with the scikit-learn
pipeline's own ``predict`` on ``pandas.read_csv`` of the same file as the oracle of every
agreement figure (computed here, independently of the bench); the C runtime's driver on the
same blob and records (``c:tab.esb``: CSV split and featurization in C) and the ONNX model
compressed from the same pipeline (its tabular stage in the graph) on the same records, at the
numpy runtime's agreement; mixed, wrong or hostile inputs as one-line errors. No timing is
asserted."""

from __future__ import annotations

import csv
import json
import math
import pickle
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

import edgesparse
from edgesparse.bench import harness
from edgesparse.bench import targets as targets_mod
from edgesparse.bench.engine_c import C_MEMORY_EXACT
from edgesparse.bench.report import render_markdown
from edgesparse.bench.results_schema import validate_results
from edgesparse.bench.targets import get_target
from edgesparse.cli import cli
from edgesparse.data import read_records
from edgesparse.export_c import c_runtime_dir
from tests import cbuild
from tests.conftest import require_tool, run_cli_limited
from tests.test_tabular_featurizer import _NAMES, adult_like

pd = pytest.importorskip("pandas")

MODELS = Path(__file__).resolve().parent.parent / "models"


def _cell(v: object) -> object:
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else v


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A pipeline fitted on a DataFrame (columns by name), its int8 blob, held-out records as
    a CSV, their labels, and the oracle's figures."""
    X, y = adult_like(1600, seed=21)
    df = pd.DataFrame(X, columns=list(_NAMES))
    ct = ColumnTransformer(
        [
            ("num", make_pipeline(SimpleImputer(), StandardScaler()), ["age", "fnlwgt", "hours"]),
            (
                "cat",
                make_pipeline(
                    SimpleImputer(strategy="constant", fill_value="missing"),
                    OneHotEncoder(handle_unknown="ignore"),
                ),
                ["workclass", "education", "country", "sex"],
            ),
        ]
    )
    pipe = make_pipeline(ct, LogisticRegression(max_iter=500)).fit(df[:1200], y[:1200])
    root = tmp_path_factory.mktemp("bench_tabular")
    pkl, esb, onnx = root / "tab.pkl", root / "tab.esb", root / "tab.onnx"
    pkl.write_bytes(pickle.dumps(pipe))
    for out in (esb, onnx):
        res = CliRunner().invoke(cli, ["compress", str(pkl), "-o", str(out)])
        assert res.exit_code == 0, res.output
    rows, labels = root / "rows.csv", root / "y.npy"
    with rows.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(_NAMES)
        w.writerows([_cell(v) for v in r] for r in X[1200:].tolist())
    truth = y[1200:]
    np.save(labels, truth)
    # The oracle: the pipeline on pandas' reading of the CSV; the blob on the runtime's.
    sk = pipe.predict(pd.read_csv(rows))
    ours = edgesparse.load(esb).predict(read_records(rows))
    graph = edgesparse.load(onnx).predict(read_records(rows))
    return {
        "pkl": pkl,
        "esb": esb,
        "onnx": onnx,
        "onnx_vs_sklearn": float(np.mean(graph == sk)),
        "onnx_accuracy": float(np.mean(graph == truth)),
        "rows": rows,
        "labels": labels,
        "n": len(truth),
        "esb_vs_sklearn": float(np.mean(ours == sk)),
        "esb_accuracy": float(np.mean(ours == truth)),
        "sklearn_accuracy": float(np.mean(sk == truth)),
    }


def _by(results: dict, target: str, artifact: str, batch: int) -> dict[str, Any]:
    (row,) = [
        r
        for r in results["results"]
        if (r["target"], r["artifact"], r["batch_size"]) == (target, artifact, batch)
    ]
    return row


def test_host_end_to_end(case: dict[str, Any]) -> None:
    esb = case["esb"]
    results = harness.run_bench(
        artifacts=[esb, f"c:{esb}", case["pkl"], case["onnx"]],
        targets=["host"],
        data=case["rows"],
        labels=case["labels"],
        batch_sizes=(1, 16, 1000),  # 1000 > the 400 records: the batch is tiled
        runs=10,
        warmup=1,
    )
    validate_results(results)
    assert results["reference"] == {"kind": "sklearn", "source": "tab.pkl"}
    assert results["settings"]["records"] == case["n"]
    assert case["esb_vs_sklearn"] >= 0.99
    for batch in (1, 16, 1000):
        ours = _by(results, "host", "tab.esb", batch)
        assert ours["status"] == "ok", ours["error"]
        assert ours["agreement"] == pytest.approx(case["esb_vs_sklearn"], abs=1e-12)
        assert ours["accuracy"] == pytest.approx(case["esb_accuracy"], abs=1e-12)
        assert ours["cold_start_ms"] is not None and ours["peak_rss_bytes"] > 0
        assert set(ours["latency_us"]) == {"p50", "p90", "p99", "p999", "mean"}
        sk = _by(results, "host", "tab.pkl", batch)
        assert sk["status"] == "ok" and sk["agreement"] == 1.0
        assert sk["accuracy"] == pytest.approx(case["sklearn_accuracy"], abs=1e-12)
        # The C driver splits and featurizes the same records: the numpy runtime's labels.
        c = _by(results, "host", "c:tab.esb", batch)
        assert c["status"] == "ok", c["error"]
        assert c["engine"] == "c" and c["runs"] == 10 and c["latency_us"]["p50"] > 0
        assert c["agreement"] == pytest.approx(case["esb_vs_sklearn"], abs=1e-12)
        assert c["accuracy"] == pytest.approx(case["esb_accuracy"], abs=1e-12)
        assert c["cold_start_method"] == "spawn timestamp" and c["peak_rss_bytes"] > 0
        assert c["c_program"]["api"] == "one-row"
        # The graph's tabular stage on the same records, in onnxruntime.
        row = _by(results, "host", "tab.onnx", batch)
        assert row["status"] == "ok", row["error"]
        assert row["engine"] == "onnx" and row["latency_us"]["p50"] > 0
        assert case["onnx_vs_sklearn"] == pytest.approx(case["esb_vs_sklearn"], abs=0.01)
        assert row["agreement"] == pytest.approx(case["onnx_vs_sklearn"], abs=1e-12)
        assert row["accuracy"] == pytest.approx(case["onnx_accuracy"], abs=1e-12)
    md = render_markdown(results)
    assert "each split from its CSV text and through esb_predict_tabular" in md
    assert {r["status"] for r in results["results"]} == {"ok"}


def test_without_the_pickle_the_blob_is_the_reference(case: dict[str, Any]) -> None:
    results = harness.run_bench(
        artifacts=[case["esb"]], targets=["host"], data=case["rows"], runs=3, warmup=0
    )
    validate_results(results)
    assert results["reference"] == {"kind": "artifact", "source": "tab.esb on the host"}
    row = _by(results, "host", "tab.esb", 1)
    assert row["status"] == "ok" and row["agreement"] == 1.0 and row["accuracy"] is None


def test_prepared_reads_back_the_records_it_wrote(case: dict[str, Any], tmp_path: Path) -> None:
    # The records are kept once, in the probes' JSON file; the C driver's CSV is made from
    # what Prepared.records() reads back, which must be read_records' own cells and header.
    from edgesparse.bench import tabbench
    from edgesparse.bench.engines import Artifact

    art = Artifact(
        name="tab.esb", path=case["esb"], engine="esb", model_bytes=0, sha256="", tabular=True
    )
    prep = tabbench.prepare([art], data=case["rows"], workdir=tmp_path, pipeline=None)
    want = read_records(case["rows"])
    got = prep.records()
    assert got.names == want.names and len(got) == prep.n_records == case["n"]
    assert [list(r) for r in got] == [list(r) for r in want]


def test_cli_bench_records(case: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "report"
    args = ["bench", str(case["esb"]), str(case["pkl"]), "--data", str(case["rows"])]
    res = CliRunner().invoke(cli, [*args, "--runs", "5", "--warmup", "1", "-o", str(out)])
    assert res.exit_code == 0, res.output
    line = next(ln for ln in res.output.splitlines() if ln.startswith("host") and "tab.esb" in ln)
    assert line.split()[-1] == "ok"
    assert (out / "report.md").is_file()


def _error(args: list[str], out: Path) -> str:
    res = CliRunner().invoke(cli, ["bench", *args, "-o", str(out)])
    assert res.exit_code == 1, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), res.stderr
    return lines[0]


def test_wrong_inputs_are_one_line(case: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "report"
    line = _error([str(case["esb"]), "--data", str(MODELS / "iris_l2_logreg.test.npz")], out)
    assert "cannot benchmark tab.esb on iris_l2_logreg.test.npz" in line
    assert "a CSV whose header names its columns" in line
    iris = tmp_path / "iris.esb"
    res = CliRunner().invoke(cli, ["compress", str(MODELS / "iris_l2_logreg.pkl"), "-o", str(iris)])
    assert res.exit_code == 0, res.output
    line = _error([str(case["esb"]), str(iris), "--data", str(case["rows"])], out)
    assert "cannot benchmark iris.esb with tabular blobs" in line and "its own run" in line
    pkl = str(MODELS / "iris_l2_logreg.pkl")
    line = _error([str(case["esb"]), pkl, "--data", str(case["rows"])], out)
    assert "iris_l2_logreg.pkl" in line and "not a scikit-learn Pipeline starting with" in line
    short = tmp_path / "short.npy"
    np.save(short, np.zeros(3))
    line = _error([str(case["esb"]), "--data", str(case["rows"]), "--labels", str(short)], out)
    assert f"3 labels but the data has {case['n']} records (one label per record" in line
    assert not out.exists()  # nothing written on a refused run


# -- emulated Raspberry Pi 4 ---------------------------------------------------------------------
def test_emulated_rpi4(case: dict[str, Any]) -> None:
    require_tool(
        targets_mod.qemu_binary("aarch64") is not None,
        what="qemu-aarch64-static",
        install="apt-get install qemu-user-static",
    )
    from edgesparse.bench.provision import provision

    rpi4 = get_target("rpi4")
    provision(rpi4)
    esb = case["esb"]
    results = harness.run_bench(
        artifacts=[esb, f"c:{esb}", case["pkl"], case["onnx"]],
        targets=[rpi4],
        data=case["rows"],
        batch_sizes=(1, 16),
        runs=5,
        warmup=1,
    )
    validate_results(results)
    (target,) = results["targets"]
    assert target["emulated"] is True and target["status"] == "ok"
    assert target["environment"]["machine"] == "aarch64"
    for batch in (1, 16):
        row = _by(results, "rpi4", "tab.esb", batch)
        assert row["status"] == "ok", row["error"]
        # The same blob gives the same labels on aarch64 as on the host.
        assert row["agreement"] == pytest.approx(case["esb_vs_sklearn"], abs=1e-12)
        assert row["memory_method"] == "guest heap (mallinfo2 + tracemalloc)"
        assert row["model_rss_bytes"] > 0
        sk = _by(results, "rpi4", "tab.pkl", batch)
        assert sk["status"] == "skipped" and "host only" in sk["error"]
        # The C driver cross-built for aarch64, on the same records: the same labels.
        c = _by(results, "rpi4", "c:tab.esb", batch)
        assert c["status"] == "ok", c["error"]
        assert c["agreement"] == pytest.approx(case["esb_vs_sklearn"], abs=1e-12)
        assert c["memory_method"] == C_MEMORY_EXACT and c["peak_rss_bytes"] is None
        # Exact guest bytes: the blob, the model's workspace, the tabular workspace and the
        # CSV buffers.
        assert c["model_rss_bytes"] == esb.stat().st_size + c["c_program"]["workspace_bytes"]
        assert c["c_program"]["workspace_bytes"] > 0 and c["c_program"]["api"] == "one-row"
        # The ONNX graph's tabular stage in the guest's onnxruntime: the host's labels.
        graph = _by(results, "rpi4", "tab.onnx", batch)
        assert graph["status"] == "ok", graph["error"]
        assert graph["agreement"] == pytest.approx(case["onnx_vs_sklearn"], abs=1e-12)


# -- hostile rows files ---------------------------------------------------------------------------
def _hostile(kind: str, root: Path, header: str, record: list[str]) -> Path:
    """A rows file the bench must refuse quickly: a huge line, a NUL byte, a million columns."""
    path = root / f"{kind}.csv"
    if kind == "huge-line":  # one 4 MB cell: past csv's field limit
        cells = [record[0], "x" * 4_000_000, *record[2:]]
        path.write_text(f"{header}\n{','.join(cells)}\n", encoding="utf-8")
    elif kind == "nul":
        path.write_bytes(f"{header}\n{','.join(record)}\n".encode() + b"53,Priv\x00ate\n")
    else:  # a million columns in the header and in a record
        path.write_text(",".join(f"c{k}" for k in range(10**6)) + "\n" + "1," * (10**6 - 1) + "1\n")
    return path


@pytest.mark.parametrize(
    ("kind", "why"),
    [
        ("huge-line", "field larger than field limit"),
        ("nul", "holds NUL bytes"),
        ("million-columns", "the header has 1000000 columns, more than the 65536"),
    ],
)
def test_hostile_rows_are_one_line_errors(
    case: dict[str, Any], tmp_path: Path, kind: str, why: str
) -> None:
    """With every engine in the run (numpy, C, ONNX), a hostile file is refused on the host
    under the hostile-input budget (1.5 GiB, 60 s): one ``Error:`` line, nothing written."""
    lines = case["rows"].read_text(encoding="utf-8").splitlines()
    data = _hostile(kind, tmp_path, lines[0], lines[1].split(","))
    esb, out = case["esb"], tmp_path / "report"
    args = ["bench", str(esb), f"c:{esb}", str(case["onnx"]), "--data", str(data)]
    res = run_cli_limited([*args, "--runs", "2", "-o", str(out)])
    assert res.returncode == 1, res.stderr
    err = res.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("Error: "), res.stderr
    assert f"cannot benchmark tab.esb on {data.name}" in err[0] and why in err[0]
    assert not out.exists()


def _driver() -> Path:
    """The C driver ``esb`` built for the host (``esb bench`` on records: esb_tabular_main.c),
    once per session (tests/cbuild.py)."""
    require_tool(shutil.which("cc") is not None, what="cc", install="apt-get install gcc")
    src = c_runtime_dir()
    cmd = ["cc", "-O2", "-std=c99", f"-I{src}", str(src / "esb.c"), str(src / "esb_main.c")]
    exe, res = cbuild.build([*cmd, "-lm"], name="esb")  # once per session
    assert res.returncode == 0, res.stderr
    return exe


def test_the_c_driver_refuses_hostile_rows_itself(case: dict[str, Any], tmp_path: Path) -> None:
    """``esb bench`` on records as the C engine runs it: the predictions of ``esb predict``
    (one line per record), and each hostile file refused with its line, quickly."""
    exe = _driver()
    esb, rows, pred = str(case["esb"]), str(case["rows"]), tmp_path / "pred.txt"
    run = [str(exe), "bench", esb, rows, "5", "1", "--batch", "7", "--predictions", str(pred)]
    res = subprocess.run(run, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    line = json.loads(res.stdout.strip().splitlines()[-1])
    assert line["input"] == "records" and line["rows"] == case["n"] and line["batch"] == 7
    predict = subprocess.run([str(exe), "predict", esb, rows], capture_output=True, text=True)
    assert predict.returncode == 0, predict.stderr
    classes = [ln.split("\t")[0] for ln in predict.stdout.splitlines()]
    assert pred.read_text().splitlines() == classes and len(classes) == case["n"]
    lines = case["rows"].read_text(encoding="utf-8").splitlines()
    wants = {
        "huge-line": "esb: line 2: not a valid CSV row",
        "nul": "esb: line 3: not a valid CSV row",
        "million-columns": "esb: line 1: the header has 1000000 columns, the model reads 9",
    }
    for kind, want in wants.items():
        data = _hostile(kind, tmp_path, lines[0], lines[1].split(","))
        res = subprocess.run(
            [str(exe), "bench", esb, str(data), "5", "1"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        err = res.stderr.strip().splitlines()
        assert res.returncode == 2 and len(err) == 1 and err[0].startswith(want), (kind, err)


def test_a_tabular_regressor_in_c_and_onnx(tmp_path: Path) -> None:
    """A tabular regressor's C and ONNX rows carry its values (not class indices): their
    differences from the pipeline and R² are the numpy runtime's, up to float32 output."""
    from sklearn.linear_model import Ridge

    X, _ = adult_like(600, seed=5)
    df = pd.DataFrame(X, columns=list(_NAMES))
    hours = pd.to_numeric(df["hours"]).fillna(40.0).to_numpy()
    y = hours + 2.0 * (df["sex"] == "M").to_numpy()
    ct = ColumnTransformer(
        [
            ("num", make_pipeline(SimpleImputer(), StandardScaler()), ["age", "hours"]),
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["sex", "education"]),
        ]
    )
    pipe = make_pipeline(ct, Ridge(alpha=1.0)).fit(df[:400], y[:400])
    pkl, esb, onnx = tmp_path / "reg.pkl", tmp_path / "reg.esb", tmp_path / "reg.onnx"
    pkl.write_bytes(pickle.dumps(pipe))
    for out in (esb, onnx):
        res = CliRunner().invoke(cli, ["compress", str(pkl), "-o", str(out)])
        assert res.exit_code == 0, res.output
    rows, truth = tmp_path / "rows.csv", tmp_path / "y.npy"
    with rows.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(_NAMES)
        w.writerows([_cell(v) for v in r] for r in X[400:].tolist())
    np.save(truth, y[400:])
    results = harness.run_bench(
        artifacts=[esb, f"c:{esb}", onnx, pkl],
        targets=["host"],
        data=rows,
        labels=truth,
        batch_sizes=(1, 8),
        runs=5,
        warmup=1,
    )
    validate_results(results)
    sk = pipe.predict(pd.read_csv(rows))
    want = np.abs(edgesparse.load(esb).predict(read_records(rows)) - sk).max()
    for batch in (1, 8):
        ours = _by(results, "host", "reg.esb", batch)
        assert ours["status"] == "ok" and ours["max_abs_diff"] == pytest.approx(want, abs=1e-12)
        for name in ("c:reg.esb", "reg.onnx"):
            row = _by(results, "host", name, batch)
            assert row["status"] == "ok", row["error"]
            assert row["max_abs_diff"] == pytest.approx(want, abs=1e-4)
            assert row["r2"] == pytest.approx(ours["r2"], abs=1e-5)
