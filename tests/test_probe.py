"""The on-target probe, run in this process on the host, against hand-checked facts and
scikit-learn as the oracle."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import edgesparse
from edgesparse.bench import probe
from edgesparse.loader import load_model
from edgesparse.pipeline import CompressOptions, compress_file

MODELS = Path(__file__).resolve().parent.parent / "models"
PKL = MODELS / "digits_pipeline.pkl"
DATA = MODELS / "digits_pipeline.test.npz"


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("probe")
    esb = d / "digits.esb"
    # Pruned a little, so that the oracle has something to find (int8 alone, with the scaler's
    # statistics, now agrees with scikit-learn on all 450 rows).
    compress_file(CompressOptions(source=PKL, output=esb, sparsity=0.3))
    data = np.load(DATA)
    np.save(d / "ref.npy", load_model(PKL).predict(data["X"]))
    np.save(d / "y.npy", data["y"])
    return {"dir": d, "esb": esb, "ref": d / "ref.npy", "y": d / "y.npy"}


def _spec(digits: dict[str, Path], **over: object) -> dict[str, object]:
    spec: dict[str, object] = {
        "artifact": str(digits["esb"]),
        "engine": "esb",
        "data": str(DATA),
        "reference": str(digits["ref"]),
        "labels": str(digits["y"]),
        "task": "classification",
        "batch_sizes": [1, 16],
        "runs": 25,
        "warmup": 3,
        "threads": 1,
        "memory": "proc",
    }
    spec.update(over)
    return spec


def test_percentiles_hand_computed() -> None:
    # Samples 1..10 us: rank q*(n-1) = 4.5 / 8.1 / 8.91 / 8.991 -> linear interpolation.
    lat = probe.percentiles([k * 1000 for k in (3, 1, 4, 10, 5, 9, 2, 6, 8, 7)])
    assert lat["p50"] == pytest.approx(5.5)
    assert lat["p90"] == pytest.approx(9.1)
    assert lat["p99"] == pytest.approx(9.91)
    assert lat["p999"] == pytest.approx(9.991)
    assert lat["mean"] == pytest.approx(5.5)
    one = probe.percentiles([7000])
    assert one == {"p50": 7.0, "p90": 7.0, "p99": 7.0, "p999": 7.0, "mean": 7.0}


def test_percentiles_match_numpy_linear() -> None:
    rng = np.random.default_rng(0)
    sample = rng.integers(1_000, 90_000, size=1234)
    lat = probe.percentiles(sample)
    for name, q in (("p50", 50), ("p90", 90), ("p99", 99), ("p999", 99.9)):
        assert lat[name] == pytest.approx(np.percentile(sample, q) / 1000, rel=1e-12)
    with pytest.raises(ValueError):
        probe.percentiles([])


def test_agreement_hand_computed() -> None:
    assert probe.agreement(np.array([1, 2, 3, 4]), np.array([1, 2, 0, 4])) == 0.75
    # String labels compare by text whatever the dtype (object vs fixed-width unicode).
    labels = np.array(["a", "b", "c"], dtype=object)
    assert probe.agreement(labels, np.array(["a", "x", "c"])) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="3 predictions but 2"):
        probe.agreement(labels, np.array(["a", "b"]))


def test_r2_matches_sklearn() -> None:
    from sklearn.metrics import r2_score

    rng = np.random.default_rng(1)
    y, p = rng.normal(size=50), rng.normal(size=50)
    assert probe.r2_score(y, p) == pytest.approx(r2_score(y, p))


def test_probe_esb_against_sklearn_oracle(digits: dict[str, Path]) -> None:
    X, y = np.load(DATA)["X"], np.load(DATA)["y"]
    sk = load_model(PKL).predict(X)
    ours = edgesparse.load(digits["esb"]).predict(X)
    t0 = time.monotonic_ns()
    result = probe.run_probe(_spec(digits), t0_ns=t0, t0_clock="monotonic")
    assert result["status"] == "ok"
    assert result["agreement"] == pytest.approx(np.mean(ours == sk))
    assert result["accuracy"] == pytest.approx(np.mean(ours == y))
    assert result["agreement"] < 1.0  # the oracle says 3 of 450 labels differ
    assert [r["batch_size"] for r in result["rows"]] == [1, 16]
    for row in result["rows"]:
        lat = row["latency_us"]
        assert row["runs"] == 25
        assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["p999"]
        # throughput is rows over the summed call times: batch / mean latency.
        assert row["throughput_rows_per_s"] == pytest.approx(
            row["batch_size"] / (lat["mean"] / 1e6), rel=1e-9
        )
    # Cold start spans from t0 (before the call) through load and the first prediction.
    assert result["cold_start_ms"] >= result["load_ms"] > 0
    assert result["cold_start_method"] == "spawn timestamp"
    assert result["memory_method"] == probe.MEMORY_PROC
    assert result["peak_rss_bytes"] > 10 * 2**20  # numpy alone is more than 10 MiB
    env = result["environment"]
    assert env["machine"] == platform.machine()
    assert env["numpy"] == np.__version__
    assert env["python"] == platform.python_version()
    assert env["threads"] == 1


def test_probe_sklearn_engine_agrees_with_itself(digits: dict[str, Path]) -> None:
    result = probe.run_probe(
        _spec(digits, artifact=str(PKL), engine="sklearn", batch_sizes=[4], runs=5, warmup=1),
        t0_ns=None,
        t0_clock="monotonic",
    )
    X, y = np.load(DATA)["X"], np.load(DATA)["y"]
    assert result["agreement"] == 1.0
    assert result["accuracy"] == pytest.approx(np.mean(load_model(PKL).predict(X) == y))
    # No timestamp from a launcher: the kernel's process start time is used instead.
    assert result["cold_start_method"].startswith("/proc start time")


def test_probe_guest_heap_memory(digits: dict[str, Path]) -> None:
    result = probe.run_probe(
        _spec(digits, memory="guest-heap", batch_sizes=[1], runs=3, warmup=0),
        t0_ns=None,
        t0_clock="monotonic",
    )
    assert result["memory_method"] == probe.MEMORY_GUEST_HEAP
    assert result["peak_rss_bytes"] is None
    detail = result["memory_detail"]
    # The loaded model holds at least its dense 64x10 float32 block.
    assert detail["malloc_bytes"] is not None
    assert result["model_rss_bytes"] == detail["malloc_bytes"] + detail["pymalloc_bytes"]
    assert detail["tracemalloc_bytes"] >= 64 * 10 * 4


def test_main_writes_failure_result(tmp_path: Path, digits: dict[str, Path]) -> None:
    spec = _spec(digits, artifact=str(tmp_path / "missing.esb"), result=str(tmp_path / "r.json"))
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    assert probe.main([str(tmp_path / "spec.json")]) == 1
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["status"] == "failed"
    assert "missing.esb" in result["error"] and "\n" not in result["error"]


def test_process_age_from_proc() -> None:
    code = (
        "import time; time.sleep(0.4); "
        "from edgesparse.bench.probe import process_age_ns; print(process_age_ns())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    age_s = int(out) / 1e9
    assert 0.4 <= age_s < 10
