"""The safe default of ``compress``: int8 unless it measures below the bar, then int16 rows
where they suffice, else float32."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgesparse.formats import esb
from edgesparse.loader import load_model
from edgesparse.pipeline import CompressOptions, compress_file

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "models" / "digits_pipeline.pkl"
DIGITS_TEST = ROOT / "models" / "digits_pipeline.test.npz"
IRIS = ROOT / "models" / "iris_l2_logreg.pkl"


def test_probe_below_the_bar_raises_only_some_rows(tmp_path: Path) -> None:
    # Digits' StandardScaler statistics give probe rows on which int8 agrees on ~99.3%: the
    # default will not stand behind that and raises the rows int8 serves worst to int16.
    report = compress_file(CompressOptions(source=DIGITS, output=tmp_path / "d.esb"))
    assert report.linear.quantization == "int8/int16-per-row"
    assert report.linear.precision_note is not None
    assert "below the 99.9% (probe rows) bar" in report.linear.precision_note
    assert "rows raised to int16" in report.linear.precision_note
    assert "--check-data decides on your own rows" in report.linear.precision_note
    assert report.linear.estimate is not None and report.linear.estimate["basis"] == "probe"
    assert report.linear.estimate["meets_default_bar"]
    ir = esb.read(tmp_path / "d.esb")
    assert 0 < ir.wide_rows.sum() < ir.n_outputs
    assert f"{int(ir.wide_rows.sum())} of 10 rows raised to int16" in report.linear.precision_note
    X = np.load(DIGITS_TEST)["X"]
    from edgesparse.runtime.model import Model

    np.testing.assert_array_equal(Model(ir).predict(X), load_model(DIGITS).predict(X))
    # Cheaper than float32 weights: one byte more per weight of a raised row only.
    f32 = compress_file(
        CompressOptions(source=DIGITS, output=tmp_path / "f.esb", quantize="float32")
    )
    assert report.output_bytes < f32.output_bytes


def test_rows_on_the_boundary_need_float32() -> None:
    # The user's rows sit on the decision boundary, 1e-6 of the score's magnitude away: the
    # error of 16-bit steps (~1e-5 of it) flips them, float32's (~6e-8) does not. The default
    # raises rows first and, when even every row at int16 misses the bar, writes float32.
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from edgesparse.api import compress_quantized
    from edgesparse.runtime.model import Model

    X, y = load_breast_cancer(return_X_y=True)
    est = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)).fit(X, y)
    scaler, clf = est[0], est[-1]
    Z = scaler.transform(X)
    w, b = clf.coef_[0], clf.intercept_[0]
    margin = Z @ w + b
    magnitude = np.abs(Z * w).sum(axis=1)
    sign = np.where(np.arange(len(Z)) % 2 == 0, 1.0, -1.0)
    # Move each row along w until its score is sign * 1e-6 * magnitude.
    Z_edge = Z + ((sign * 1e-6 * magnitude - margin) / (w @ w))[:, None] * w
    X_edge = scaler.inverse_transform(Z_edge)
    done = compress_quantized(est, data=X_edge)
    assert done.ir.quantization == "float32"
    assert done.note is not None and "int16 rows do not reach it" in done.note
    assert done.fidelity is not None and done.fidelity.meets()
    assert np.mean(Model(done.ir).predict(X_edge) == est.predict(X_edge)) >= 0.995
    int8 = compress_quantized(est, data=X_edge, quantize="int8")
    assert int8.ir.quantization == "int8-per-row" and "kept as asked" in (int8.note or "")


def test_user_rows_decide(tmp_path: Path) -> None:
    # On its own 450 held-out rows int8 keeps every label: int8 is written.
    report = compress_file(
        CompressOptions(source=DIGITS, output=tmp_path / "d.esb", check_data=DIGITS_TEST)
    )
    assert report.linear.quantization == "int8-per-row"
    assert report.linear.precision_note is None
    assert report.linear.estimate is not None and report.linear.estimate["basis"] == "data"
    assert report.linear.check is not None and report.linear.check.label_agreement >= 0.995


def test_explicit_int8_stays_int8_with_a_note(tmp_path: Path) -> None:
    report = compress_file(
        CompressOptions(source=DIGITS, output=tmp_path / "d.esb", quantize="int8")
    )
    assert report.linear.quantization == "int8-per-row"
    assert (
        report.linear.precision_note is not None and "kept as asked" in report.linear.precision_note
    )


def test_no_statistics_no_estimate(tmp_path: Path) -> None:
    # A model without a scaler carries nothing to draw probes from: int8, fidelity unknown.
    report = compress_file(CompressOptions(source=IRIS, output=tmp_path / "i.esb"))
    assert report.linear.quantization == "int8-per-row"
    assert report.linear.estimate is None and report.linear.precision_note is None


def test_cli_summary_says_what_the_default_did(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from edgesparse.cli import cli

    res = CliRunner().invoke(cli, ["compress", str(DIGITS), "-o", str(tmp_path / "d.esb")])
    assert res.exit_code == 0, res.output
    lines = dict(line.split(None, 1) for line in res.output.splitlines() if line.strip())
    assert lines["quantization"].startswith("int8/int16-per-row")
    assert "rows raised to int16" in lines["precision"]
    res = CliRunner().invoke(cli, ["compress", str(IRIS), "-o", str(tmp_path / "i.esb")])
    assert res.exit_code == 0, res.output
    assert "estimated fidelity  unknown: the model carries no input statistics" in res.output
