"""The bench for k-NN recommenders (issue 21, item 1): the bundled Surprise model's blob timed
on held-out user,item pairs on the host, on emulated rpi4 (QEMU) and over ssh (a real sshd on
localhost), with Surprise's own ``predict`` as the oracle of every error figure (computed here,
from the pickle and the CSV, independently of the bench); the C runtime's driver on the same
blob (``c:knn.esb``), whose estimates are the numpy runtime's; the report's recommender table;
bad input as one-line errors. No timing is asserted."""

from __future__ import annotations

import csv
import getpass
import importlib.util
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

import edgesparse
from edgesparse.bench import harness
from edgesparse.bench import targets as targets_mod
from edgesparse.bench.engine_c import C_MEMORY_EXACT
from edgesparse.bench.report import render_html, render_markdown, write_report
from edgesparse.bench.results_schema import validate_results
from edgesparse.bench.targets import get_target
from edgesparse.cli import cli
from edgesparse.loader import load_model
from edgesparse.pipeline import CompressOptions, compress_file
from tests.conftest import require_tool
from tests.test_harness import sshd  # noqa: F401  (the fixture: a real sshd on localhost)

MODELS = Path(__file__).resolve().parent.parent / "models"
PKL = MODELS / "knn_means.pkl"
PAIRS = MODELS / "knn_ratings.test.csv"
DIGITS = MODELS / "digits_pipeline.pkl"
DIGITS_DATA = MODELS / "digits_pipeline.test.npz"
HAVE_SURPRISE = importlib.util.find_spec("surprise") is not None


@pytest.fixture(autouse=True)
def _surprise() -> None:
    require_tool(HAVE_SURPRISE, what="scikit-surprise", install="pip install -e '.[surprise]'")


@pytest.fixture(scope="module")
def esb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not HAVE_SURPRISE:
        pytest.skip("scikit-surprise is absent")
    out = tmp_path_factory.mktemp("bench_knn") / "knn.esb"
    compress_file(CompressOptions(source=PKL, output=out))  # the defaults: int8 similarities
    return out


@pytest.fixture(scope="module")
def oracle(esb: Path) -> dict[str, float]:
    """RMSE/MAE of Surprise and of the blob against the ratings, and of the blob against
    Surprise: Surprise's own object (unpickled by the loader, which also reads a numpy 2
    pickle under numpy 1), the CSV read with the csv module."""
    algo = load_model(PKL)
    with open(PAIRS, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))[1:]
    pairs = [(u, i) for u, i, _ in rows]
    truth = np.array([float(r) for _, _, r in rows])
    sur = np.array([algo.predict(u, i).est for u, i in pairs])
    ours = edgesparse.load(esb).predict_many(pairs)

    def rmse(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.sqrt(np.mean((a - b) ** 2)))

    return {
        "n": len(pairs),
        "surprise_rmse": rmse(sur, truth),
        "surprise_mae": float(np.mean(np.abs(sur - truth))),
        "esb_rmse": rmse(ours, truth),
        "esb_mae": float(np.mean(np.abs(ours - truth))),
        "esb_vs_surprise_rmse": rmse(ours, sur),
        "esb_vs_surprise_max": float(np.max(np.abs(ours - sur))),
    }


def _by(results: dict, target: str, artifact: str, batch: int) -> dict:
    (row,) = [
        r
        for r in results["results"]
        if (r["target"], r["artifact"], r["batch_size"]) == (target, artifact, batch)
    ]
    return row


def _check_blob_row(
    row: dict[str, Any], oracle: dict[str, float], *, emulated: bool, engine: str = "esb"
) -> None:
    """A k-NN blob's row: measured, and its errors equal the oracle's (the same int8 blob
    gives the same estimates on x86-64 and aarch64, in numpy and in C, up to float
    rounding)."""
    assert row["status"] == "ok", row["error"]
    assert row["engine"] == engine and row["emulated"] is emulated
    assert row["rmse"] == pytest.approx(oracle["esb_rmse"], rel=1e-9)
    assert row["mae"] == pytest.approx(oracle["esb_mae"], rel=1e-9)
    assert row["reference_rmse"] == pytest.approx(oracle["esb_vs_surprise_rmse"], rel=1e-6)
    assert row["max_abs_diff"] == pytest.approx(oracle["esb_vs_surprise_max"], rel=1e-6)
    assert row["impossible_pairs"] == 0
    assert row["recommend_n"] == 10 and row["recommend_runs"] >= 1
    lat = row["recommend_latency_us"]
    assert set(lat) == {"p50", "p90", "p99", "p999", "mean"}
    assert row["cold_start_method"] == "spawn timestamp" and row["cold_start_ms"] is not None


def test_host_end_to_end(esb: Path, oracle: dict[str, float]) -> None:
    results = harness.run_bench(
        artifacts=[esb, f"c:{esb}", PKL],
        targets=["host"],
        data=PAIRS,
        batch_sizes=(1, 16),
        runs=30,
        warmup=3,
    )
    validate_results(results)
    assert results["reference"] == {"kind": "surprise", "source": "knn_means.pkl"}
    assert results["settings"]["task"] == "recommendation"
    assert results["settings"]["pairs"] == oracle["n"]
    engines = {a["artifact"]: a["engine"] for a in results["artifacts"]}
    assert engines == {"knn.esb": "esb", "c:knn.esb": "c", "knn_means.pkl": "surprise"}
    assert len(results["results"]) == 6
    for batch in (1, 16):
        ours = _by(results, "host", "knn.esb", batch)
        _check_blob_row(ours, oracle, emulated=False)
        assert ours["runs"] == 30 and ours["model_bytes"] == esb.stat().st_size
        assert ours["memory_method"] == "VmHWM/VmRSS" and ours["peak_rss_bytes"] > 0
        # The 8-bit similarities keep RMSE within 0.5% of Surprise's (README, "Parity").
        assert abs(ours["rmse"] / oracle["surprise_rmse"] - 1) < 0.005
        sur = _by(results, "host", "knn_means.pkl", batch)
        assert sur["status"] == "ok" and sur["engine"] == "surprise"
        assert sur["rmse"] == pytest.approx(oracle["surprise_rmse"], rel=1e-12)
        assert sur["mae"] == pytest.approx(oracle["surprise_mae"], rel=1e-12)
        assert sur["reference_rmse"] == 0.0 and sur["max_abs_diff"] == 0.0
        # The C driver on the same blob: the same estimates, its own timings and memory.
        c = _by(results, "host", "c:knn.esb", batch)
        _check_blob_row(c, oracle, emulated=False, engine="c")
        assert c["runs"] == 30 and c["latency_us"]["p50"] > 0
        assert c["memory_method"] == "VmHWM/VmRSS" and c["peak_rss_bytes"] > 0
        assert c["c_program"]["api"] == "one-row" and c["c_program"]["workspace_bytes"] > 0


def test_report_has_the_recommender_table(esb: Path, tmp_path: Path) -> None:
    results = harness.run_bench(
        artifacts=[esb, f"c:{esb}", PKL], targets=["host"], data=PAIRS, runs=5, warmup=1
    )
    md = render_markdown(results)
    header = next(line for line in md.splitlines() if line.startswith("| batch | artifact"))
    for column in (
        "timed call",
        "p50 µs",
        "pairs/s at p50",
        "recommend(n=10) p50 ms",
        "cold start ms",
        "peak RSS",
        "RMSE vs ratings",
        "MAE vs ratings",
        "RMSE vs Surprise",
        "max abs diff vs Surprise",
    ):
        assert f"| {column} |" in header, column
    assert "agreement" not in header  # label agreement is the linear models' column
    row = next(line for line in md.splitlines() if line.startswith("| 1 | `knn.esb`"))
    assert "`predict(user, item)`" in row and f"{results['results'][0]['rmse']:.4f}" in row
    c_row = next(line for line in md.splitlines() if line.startswith("| 1 | `c:knn.esb`"))
    assert "`esb_knn_predict`" in c_row and c_row.rstrip().endswith("| ok |")
    assert "None: every target and every measurement succeeded." in md and "## C programs" in md
    html = render_html(results, images={})
    assert "RMSE vs Surprise" in html and "recommend(n=10)" in html
    written = write_report(results, tmp_path / "report")
    assert {p.name for p in written} >= {"results.json", "report.md", "report.html"}


def test_cli_bench_pairs(esb: Path, tmp_path: Path, oracle: dict[str, float]) -> None:
    out = tmp_path / "report"
    args = ["bench", str(esb), str(PKL), "--data", str(PAIRS), "--batch", "1", "--batch", "8"]
    res = CliRunner().invoke(cli, [*args, "--runs", "5", "--warmup", "1", "-o", str(out)])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    header = next(i for i, ln in enumerate(lines) if ln.startswith("target"))
    assert "RMSE vs ratings" in lines[header]
    row = lines[header + 1].split()
    assert row[:3] == ["host", "knn.esb", "1"] and row[-1] == "ok"
    assert f"{oracle['esb_rmse']:.4f}" in lines[header + 1]
    assert (out / "report.md").is_file()


# -- emulated Raspberry Pi 4 ---------------------------------------------------------------------
def test_emulated_rpi4(esb: Path, oracle: dict[str, float]) -> None:
    require_tool(
        targets_mod.qemu_binary("aarch64") is not None,
        what="qemu-aarch64-static",
        install="apt-get install qemu-user-static",
    )
    from edgesparse.bench.provision import provision

    rpi4 = get_target("rpi4")
    provision(rpi4)
    results = harness.run_bench(
        artifacts=[esb, f"c:{esb}", PKL],
        targets=[rpi4],
        data=PAIRS,
        batch_sizes=(1, 16),
        runs=10,
        warmup=2,
    )
    validate_results(results)
    (target,) = results["targets"]
    assert target["emulated"] is True and target["status"] == "ok"
    assert target["environment"]["machine"] == "aarch64"
    for batch in (1, 16):
        row = _by(results, "rpi4", "knn.esb", batch)
        _check_blob_row(row, oracle, emulated=True)
        assert row["peak_rss_bytes"] is None  # QEMU's RSS is not the guest's
        assert row["memory_method"] == "guest heap (mallinfo2 + tracemalloc)"
        assert row["model_rss_bytes"] > 0
        sur = _by(results, "rpi4", "knn_means.pkl", batch)
        assert sur["status"] == "skipped" and "host only" in sur["error"]
        c = _by(results, "rpi4", "c:knn.esb", batch)
        _check_blob_row(c, oracle, emulated=True, engine="c")
        assert c["memory_method"] == C_MEMORY_EXACT and c["peak_rss_bytes"] is None
        # Exact guest bytes: the blob plus the index and one workspace.
        assert c["model_rss_bytes"] == esb.stat().st_size + c["c_program"]["workspace_bytes"]
    md = render_markdown(results)
    assert "### rpi4 (emulated)" in md
    assert "recommend(n=10) p50 ms (emulated)" in md and "p50 µs (emulated)" in md


# -- a real board over ssh (a real sshd on localhost) -------------------------------------------
def test_ssh_target(esb: Path, sshd: dict[str, object], oracle: dict[str, float]) -> None:  # noqa: F811
    url = f"ssh://{getpass.getuser()}@127.0.0.1:{sshd['port']}?python={sys.executable}"
    results = harness.run_bench(
        artifacts=[esb, f"c:{esb}", PKL],
        targets=[url],
        data=PAIRS,
        batch_sizes=(1, 4),
        runs=5,
        warmup=1,
        ssh_options=sshd["options"],  # type: ignore[arg-type]
    )
    validate_results(results)
    for batch in (1, 4):
        row = _by(results, url, "knn.esb", batch)
        _check_blob_row(row, oracle, emulated=False)
        assert row["memory_method"] == "VmHWM/VmRSS" and row["peak_rss_bytes"] > 0
        assert _by(results, url, "knn_means.pkl", batch)["status"] == "skipped"
        # The driver built on the board with its cc, run there on the same pairs.
        c = _by(results, url, "c:knn.esb", batch)
        _check_blob_row(c, oracle, emulated=False, engine="c")
        assert c["c_program"]["compiler"] is not None


# -- bad input: one Error: line each ------------------------------------------------------------
def _error_line(args: list[str]) -> str:
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 1, res.output
    assert isinstance(res.exception, SystemExit), res.exception  # not an escaped error
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), res.stderr
    return lines[0].removeprefix("Error: ")


def test_bad_input_is_one_line(esb: Path, tmp_path: Path) -> None:
    out = ["-o", str(tmp_path / "report")]
    unknown = tmp_path / "unknown.csv"
    unknown.write_text("user,item,rating\nnobody,i27,3\nu32,nothing,4\n")
    assert _error_line(["bench", str(esb), "--data", str(unknown), *out]) == (
        f"{unknown}: none of its 2 pairs names a user and an item that knn.esb knows; the "
        "bench times the model on held-out pairs of known users and items"
    )
    linear = tmp_path / "digits.esb"
    compress_file(CompressOptions(source=DIGITS, output=linear))
    assert _error_line(["bench", str(linear), "--data", str(PAIRS), *out]) == (
        "knn_ratings.test.csv holds user,item pairs, the data of a recommender blob (.esb "
        "compressed from a Surprise model), and none of digits.esb is one; linear models "
        "take rows of features (--data X.npz, .npy or a CSV of numbers)"
    )
    assert _error_line(["bench", str(esb), "--data", str(DIGITS_DATA), *out]) == (
        f"cannot benchmark knn.esb on digits_pipeline.test.npz: {DIGITS_DATA} is an .npz data "
        "file, not a CSV of user,item[,rating] rows; a k-NN recommender takes a CSV of "
        "user,item[,rating] rows, one per line (header optional)"
    )
    assert _error_line(["bench", str(esb), str(linear), "--data", str(PAIRS), *out]) == (
        "cannot benchmark digits.esb with recommender blobs: it is a linear model, which "
        "takes rows of features; bench it in its own run (--data X.npz)"
    )
    assert _error_line(["bench", str(esb), str(DIGITS), "--data", str(PAIRS), *out]) == (
        "cannot benchmark digits_pipeline.pkl with recommender blobs: it is not a "
        "Surprise recommender (give the pickle the blob was compressed from)"
    )
    assert not (tmp_path / "report").exists()  # nothing written on a refused run


def test_surprise_recommend_matches_the_runtime(tmp_path: Path) -> None:
    """The Surprise side of ``recommend`` (the FAQ recipe the bench times) and the runtime's
    ``recommend`` on an unquantized blob give the same top 10 with the same estimates."""
    from edgesparse.bench.probe_knn import SurpriseRecommender

    exact = tmp_path / "exact.esb"
    compress_file(CompressOptions(source=PKL, output=exact, quantize="none"))
    sur = SurpriseRecommender(load_model(PKL))
    ours = edgesparse.load(exact)
    for user in ("u32", "u69", "u0"):
        a, b = sur.recommend(user, n=10), ours.recommend(user, n=10)
        assert [p.iid for p in a] == [p.iid for p in b]
        assert [p.est for p in a] == pytest.approx([p.est for p in b], abs=1e-9)


def test_cold_start_pairs_are_left_out_and_counted(esb: Path, tmp_path: Path) -> None:
    """A held-out file with pairs of unknown users or items (cold start, which a real file
    has) is timed and scored on its known pairs; the left-out ones are counted."""
    mixed = tmp_path / "mixed.csv"
    mixed.write_text("user,item,rating\nu32,i27,2\nnobody,i27,3\nu32,nothing,4\nu69,i3,5\n")
    results = harness.run_bench(
        artifacts=[esb], targets=["host"], data=mixed, batch_sizes=(1,), runs=5, warmup=1
    )
    validate_results(results)
    assert results["settings"]["pairs"] == 2
    assert results["settings"]["unknown_pairs_left_out"] == 2
    row = _by(results, "host", "knn.esb", 1)
    model = edgesparse.load(esb)
    want = model.predict_many([("u32", "i27"), ("u69", "i3")])
    assert row["rmse"] == pytest.approx(float(np.sqrt(np.mean((want - [2, 5]) ** 2))))
    assert row["impossible_pairs"] == 0
    assert "leaving out 2 whose user or item" in render_markdown(results)


@pytest.mark.parametrize("algorithm", ["SVD", "NMF", "BaselineOnly"])
def test_factor_models_are_benched_against_surprise(tmp_path: Path, algorithm: str) -> None:
    """A matrix-factorization blob (version 3) runs in the same recommender bench, with its
    Surprise pickle as the oracle (computed here from the pickle and the CSV)."""
    import pickle

    import surprise

    spec = importlib.util.spec_from_file_location("train_knn", MODELS / "train_knn.py")
    assert spec is not None and spec.loader is not None
    train_knn = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(train_knn)
    train, _ = train_knn.split(train_knn.make_ratings())
    options = {"verbose": False} if algorithm == "BaselineOnly" else {"random_state": 0}
    algo = getattr(surprise, algorithm)(**options).fit(train_knn.trainset(train))
    pkl = tmp_path / f"{algorithm}.pkl"
    pkl.write_bytes(pickle.dumps(algo))
    blob = tmp_path / f"{algorithm}.esb"
    compress_file(CompressOptions(source=pkl, output=blob))
    results = harness.run_bench(
        artifacts=[blob, pkl], targets=["host"], data=PAIRS, batch_sizes=(1, 8), runs=5, warmup=1
    )
    validate_results(results)
    assert results["reference"] == {"kind": "surprise", "source": pkl.name}
    with open(PAIRS, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))[1:]
    pairs, truth = [(u, i) for u, i, _ in rows], np.array([float(r) for *_, r in rows])
    sur = np.array([algo.predict(u, i).est for u, i in pairs])
    ours = edgesparse.load(blob).predict_many(pairs)
    for batch in (1, 8):
        row = _by(results, "host", blob.name, batch)
        assert row["status"] == "ok", row["error"]
        assert row["rmse"] == pytest.approx(float(np.sqrt(np.mean((ours - truth) ** 2))))
        assert row["max_abs_diff"] == pytest.approx(float(np.max(np.abs(ours - sur))))
        assert row["recommend_latency_us"]["p50"] > 0
        sur_row = _by(results, "host", pkl.name, batch)
        assert sur_row["engine"] == "surprise" and sur_row["max_abs_diff"] == 0
