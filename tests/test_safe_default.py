"""The safe default of ``compress``: int8 unless it measures below the bar, then float32."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgesparse.api import compress_file
from edgesparse.formats import esb
from edgesparse.loader import load_model

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "models" / "digits_pipeline.pkl"
DIGITS_TEST = ROOT / "models" / "digits_pipeline.test.npz"
IRIS = ROOT / "models" / "iris_l2_logreg.pkl"


def test_probe_below_the_bar_writes_float32(tmp_path: Path) -> None:
    # Digits' StandardScaler statistics give probe rows on which int8 agrees on ~99.3%:
    # the default will not stand behind that and writes float32, saying why.
    report = compress_file(DIGITS, tmp_path / "d.esb")
    assert report.quantization == "float32"
    assert report.precision_note is not None and "below the 99.5% bar" in report.precision_note
    assert "--check-data decides on your own rows" in report.precision_note
    assert report.estimate is not None and report.estimate["basis"] == "probe"
    assert report.estimate["meets_default_bar"]
    ir = esb.read(tmp_path / "d.esb")
    X = np.load(DIGITS_TEST)["X"]
    from edgesparse.runtime.model import Model

    np.testing.assert_array_equal(Model(ir).predict(X), load_model(DIGITS).predict(X))


def test_user_rows_decide(tmp_path: Path) -> None:
    # On its own 450 held-out rows int8 keeps every label: int8 is written.
    report = compress_file(DIGITS, tmp_path / "d.esb", check_data=DIGITS_TEST)
    assert report.quantization == "int8-per-row"
    assert report.precision_note is None
    assert report.estimate is not None and report.estimate["basis"] == "data"
    assert report.check is not None and report.check.label_agreement >= 0.995


def test_explicit_int8_stays_int8_with_a_note(tmp_path: Path) -> None:
    report = compress_file(DIGITS, tmp_path / "d.esb", quantize="int8")
    assert report.quantization == "int8-per-row"
    assert report.precision_note is not None and "kept as asked" in report.precision_note


def test_no_statistics_no_estimate(tmp_path: Path) -> None:
    # A model without a scaler carries nothing to draw probes from: int8, fidelity unknown.
    report = compress_file(IRIS, tmp_path / "i.esb")
    assert report.quantization == "int8-per-row"
    assert report.estimate is None and report.precision_note is None


def test_cli_summary_says_what_the_default_did(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from edgesparse.cli import cli

    res = CliRunner().invoke(cli, ["compress", str(DIGITS), "-o", str(tmp_path / "d.esb")])
    assert res.exit_code == 0, res.output
    lines = dict(line.split(None, 1) for line in res.output.splitlines() if line.strip())
    assert lines["quantization"].strip() == "float32"
    assert "written as float32 instead" in lines["precision"]
    res = CliRunner().invoke(cli, ["compress", str(IRIS), "-o", str(tmp_path / "i.esb")])
    assert res.exit_code == 0, res.output
    assert "estimated fidelity  unknown: the model carries no input statistics" in res.output
