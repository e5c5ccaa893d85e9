"""Bench engine ``c`` (artifacts spelled ``c:model.esb``): the C runtime's driver built and run
by the harness on the host, on emulated rpi4 (aarch64 cross build under QEMU) and over ssh to a
real sshd on localhost. Oracles: scikit-learn's own predictions and labels (agreement and
accuracy must equal the numpy runtime's on the same blob), the blob's size, and ``size``."""

from __future__ import annotations

import getpass
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import edgesparse
from edgesparse.bench import engine_c, harness
from edgesparse.bench import targets as targets_mod
from edgesparse.bench.report import render_markdown
from edgesparse.bench.results_schema import validate_results
from edgesparse.cli import cli
from edgesparse.errors import InputError
from edgesparse.loader import load_model
from edgesparse.pipeline import CompressOptions, compress_file
from tests.conftest import require_tool
from tests.test_harness import (
    DATA,
    MODELS,
    PKL,
    _by,
    sshd,  # noqa: F401  (the localhost sshd fixture)
)


@pytest.fixture(scope="module")
def esb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("harness_c") / "digits.esb"
    compress_file(CompressOptions(source=PKL, output=out, quantize="int8"))
    return out


@pytest.fixture(scope="module")
def oracle(esb: Path) -> dict[str, float]:
    """The numpy runtime's agreement with scikit-learn and accuracy, computed here."""
    data = np.load(DATA)
    X, y = data["X"], data["y"]
    sk = load_model(PKL).predict(X)
    ours = edgesparse.load(esb).predict(X)
    return {"agreement": float(np.mean(ours == sk)), "accuracy": float(np.mean(ours == y))}


def _require_cc() -> None:
    require_tool(shutil.which("cc") is not None, what="cc", install="apt-get install gcc")


def _check_program(row: dict, esb: Path) -> None:
    p = row["c_program"]
    assert p["text"] > 0 and p["data"] >= 0 and p["bss"] >= 0
    assert p["size_total"] == p["text"] + p["data"] + p["bss"]
    assert p["size_plus_model_bytes"] == p["size_total"] + esb.stat().st_size
    assert p["file_bytes"] >= p["text"] + p["data"]
    assert p["cflags"].startswith("-O2 -std=c99")
    assert p["mode"] == "decoded"
    assert p["api"] == "batch"  # dense rows: the runtime's batch calls
    # The decoded index workspace holds one int32 per stored weight (esb.h).
    assert p["workspace_bytes"] == 4 * edgesparse.load(esb).ir.nnz


def test_host_c_next_to_numpy_and_sklearn(esb: Path, oracle: dict[str, float]) -> None:
    _require_cc()
    results = harness.run_bench(
        artifacts=[esb, f"c:{esb}", PKL],
        targets=["host"],
        data=DATA,
        batch_sizes=(1, 4),
        runs=30,
        warmup=3,
    )
    validate_results(results)
    assert results["reference"] == {"kind": "sklearn", "source": "digits_pipeline.pkl"}
    assert [a["artifact"] for a in results["artifacts"]] == [
        "digits.esb",
        "c:digits.esb",
        "digits_pipeline.pkl",
    ]
    assert results["artifacts"][1]["engine"] == "c"
    assert results["artifacts"][1]["sha256"] == results["artifacts"][0]["sha256"]
    for batch in (1, 4):
        row = _by(results, "host", "c:digits.esb", batch)
        assert row["status"] == "ok", row["error"]
        assert row["engine"] == "c" and row["emulated"] is False
        # Labels from the C driver agree with scikit-learn exactly as the numpy runtime's do.
        assert row["agreement"] == pytest.approx(oracle["agreement"])
        assert row["accuracy"] == pytest.approx(oracle["accuracy"])
        assert row["agreement"] == _by(results, "host", "digits.esb", batch)["agreement"]
        assert row["runs"] == 30 and row["model_bytes"] == esb.stat().st_size
        lat = row["latency_us"]
        assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["p999"]
        assert row["throughput_rows_per_s"] > 0
        assert row["memory_method"] == "VmHWM/VmRSS" and row["peak_rss_bytes"] > 0
        assert row["cold_start_method"] == "spawn timestamp"
        assert row["cold_start_ms"] > row["load_ms"] > 0
        _check_program(row, esb)
        assert row["c_program"]["linkage"] in ("static", "dynamic")
    # The Python probe's environment (versions) describes the target, not the C driver's.
    assert results["targets"][0]["environment"]["python"]
    md = render_markdown(results)
    assert "## C programs" in md and "| `c:digits.esb` | c |" in md


def test_c_first_without_labels_uses_numpy_runtime_as_reference(esb: Path, tmp_path: Path) -> None:
    _require_cc()
    X = np.load(DATA)["X"]
    np.save(tmp_path / "X.npy", X)
    results = harness.run_bench(
        artifacts=[f"c:{esb}"], targets=["host"], data=tmp_path / "X.npy", runs=5, warmup=0
    )
    validate_results(results)
    assert results["reference"] == {
        "kind": "artifact",
        "source": "c:digits.esb on the host (numpy runtime)",
    }
    (row,) = results["results"]
    # Same blob, same labels: the C runtime reproduces the numpy runtime on every row.
    assert row["status"] == "ok" and row["agreement"] == 1.0 and row["accuracy"] is None
    assert results["targets"][0]["environment"]["c_compiler"]


def test_c_regressor_matches_numpy_runtime(tmp_path: Path) -> None:
    _require_cc()
    pkl, data = MODELS / "diabetes_ridge.pkl", MODELS / "diabetes_ridge.test.npz"
    blob = tmp_path / "ridge.esb"
    compress_file(CompressOptions(source=pkl, output=blob, quantize="int8"))
    d = np.load(data)
    ours = edgesparse.load(blob).predict(d["X"])
    sk = load_model(pkl).predict(d["X"])
    results = harness.run_bench(
        artifacts=[pkl, f"c:{blob}"], targets=["host"], data=data, runs=5, warmup=0
    )
    validate_results(results)
    row = _by(results, "host", "c:ridge.esb", 1)
    assert row["status"] == "ok", row["error"]
    assert row["agreement"] is None and row["accuracy"] is None
    # Within float32 rounding of the numpy runtime's distance from scikit-learn.
    assert row["max_abs_diff"] == pytest.approx(float(np.max(np.abs(ours - sk))), rel=1e-3)
    r2 = 1 - np.sum((d["y"] - ours) ** 2) / np.sum((d["y"] - d["y"].mean()) ** 2)
    assert row["r2"] == pytest.approx(r2, rel=1e-5)


def test_missing_compiler_is_a_failed_row_and_the_rest_is_written(
    esb: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("EDGESPARSE_CC", str(tmp_path / "no-such-cc"))
    out = tmp_path / "report"
    res = CliRunner().invoke(
        cli,
        [*("bench", str(esb), f"c:{esb}", "--data", str(DATA)), "--runs", "5", "-o", str(out)],
    )
    assert res.exit_code == 0, res.output
    results = json.loads((out / "results.json").read_text())
    validate_results(results)
    row = _by(results, "host", "c:digits.esb", 1)
    assert row["status"] == "failed" and row["latency_us"] is None
    assert "no-such-cc (from $EDGESPARSE_CC) not found" in row["error"]
    assert "apt-get install gcc" in row["error"]
    assert _by(results, "host", "digits.esb", 1)["status"] == "ok"
    assert "c:digits.esb" in (out / "report.md").read_text()
    assert "failed: engine c: C compiler" in res.output


def test_c_prefix_needs_an_esb_file(tmp_path: Path) -> None:
    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(b"x")
    with pytest.raises(InputError, match=r"engine 'c' runs \.esb files"):
        harness.run_bench(artifacts=[f"c:{onnx}"], targets=["host"], data=DATA)


def test_emulated_rpi4_c(esb: Path, oracle: dict[str, float]) -> None:
    require_tool(
        targets_mod.qemu_binary("aarch64") is not None,
        what="qemu-aarch64-static",
        install="apt-get install qemu-user-static",
    )
    require_tool(
        shutil.which("aarch64-linux-gnu-gcc") is not None,
        what="aarch64-linux-gnu-gcc",
        install="apt-get install gcc-aarch64-linux-gnu libc6-dev-arm64-cross",
    )
    from edgesparse.bench.provision import provision

    rpi4 = targets_mod.get_target("rpi4")
    provision(rpi4)
    results = harness.run_bench(
        artifacts=[f"c:{esb}", esb, PKL],  # scikit-learn: the reference, computed on the host
        targets=[rpi4],
        data=DATA,
        batch_sizes=(1, 8),
        runs=20,
        warmup=2,
    )
    validate_results(results)
    assert results["reference"]["kind"] == "sklearn"
    (target,) = results["targets"]
    assert target["emulated"] is True and target["status"] == "ok"
    assert target["environment"]["machine"] == "aarch64"  # from the Python probe
    for batch in (1, 8):
        row = _by(results, "rpi4", "c:digits.esb", batch)
        assert row["status"] == "ok", row["error"]
        assert row["emulated"] is True and row["engine"] == "c"
        # The aarch64 build on the emulated Cortex-A72 predicts the same labels.
        assert row["agreement"] == pytest.approx(oracle["agreement"])
        assert row["accuracy"] == pytest.approx(oracle["accuracy"])
        assert row["agreement"] == _by(results, "rpi4", "digits.esb", batch)["agreement"]
        # QEMU's RSS is not the guest's: no peak RSS; the exact blob + workspace bytes instead.
        assert row["peak_rss_bytes"] is None
        assert row["memory_method"] == engine_c.C_MEMORY_EXACT
        p = row["c_program"]
        assert row["model_rss_bytes"] == esb.stat().st_size + p["workspace_bytes"]
        assert p["compiler"].startswith("aarch64-linux-gnu-gcc") and p["linkage"] == "static"
        _check_program(row, esb)
        assert row["cold_start_ms"] > 0


def test_ssh_c_builds_on_the_board(
    esb: Path,
    sshd: dict[str, object],  # noqa: F811
    oracle: dict[str, float],
) -> None:
    _require_cc()
    url = f"ssh://{getpass.getuser()}@127.0.0.1:{sshd['port']}?python={sys.executable}"
    results = harness.run_bench(
        artifacts=[f"c:{esb}", PKL],
        targets=[url],
        data=DATA,
        batch_sizes=(1, 2),
        runs=10,
        warmup=1,
        ssh_options=sshd["options"],  # type: ignore[arg-type]
    )
    validate_results(results)
    for batch in (1, 2):
        row = _by(results, url, "c:digits.esb", batch)
        assert row["status"] == "ok", row["error"]
        assert row["emulated"] is False
        assert row["agreement"] == pytest.approx(oracle["agreement"])
        assert row["peak_rss_bytes"] > 0
        # Measured on the board from the wrapper's `date +%s%N` timestamp.
        assert row["cold_start_method"] == "spawn timestamp" and row["cold_start_ms"] > 0
        _check_program(row, esb)
    assert not any(Path(sshd["board_tmp"]).iterdir())  # type: ignore[arg-type]  # removed


def test_emulated_rpi4_c_raised_rows(tmp_path: Path) -> None:
    """A model with a row raised to int16 ('values' encoding 1) on the emulated rpi4: the
    aarch64 build's labels are the numpy runtime's on every row."""
    from edgesparse.bench.provision import provision
    from edgesparse.formats import esb as esb_format
    from tests.test_c_runtime import raised_case

    require_tool(
        targets_mod.qemu_binary("aarch64") is not None,
        what="qemu-aarch64-static",
        install="apt-get install qemu-user-static",
    )
    require_tool(
        shutil.which("aarch64-linux-gnu-gcc") is not None,
        what="aarch64-linux-gnu-gcc",
        install="apt-get install gcc-aarch64-linux-gnu libc6-dev-arm64-cross",
    )
    ir, X = raised_case("wine-pipeline", "pow2")
    assert ir.wide_rows.tolist() == [False, True, False]
    blob = tmp_path / "wine-raised.esb"
    esb_format.write(ir, blob)
    np.save(tmp_path / "X.npy", X)
    rpi4 = targets_mod.get_target("rpi4")
    provision(rpi4)
    results = harness.run_bench(
        artifacts=[f"c:{blob}"], targets=[rpi4], data=tmp_path / "X.npy", runs=5, warmup=0
    )
    validate_results(results)
    assert results["reference"]["kind"] == "artifact"
    (row,) = results["results"]
    assert row["status"] == "ok", row["error"]
    assert row["emulated"] is True and row["engine"] == "c"
    assert row["agreement"] == 1.0 and row["accuracy"] is None
