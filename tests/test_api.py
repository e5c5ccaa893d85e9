"""The public Python API: names, compress() against scikit-learn, compress_file() edges."""

from __future__ import annotations

import importlib
import pickle
import pkgutil
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_diabetes, load_digits
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import edgesparse
from edgesparse.errors import InputError
from edgesparse.pipeline import CompressOptions, compress_file


def test_public_functions_survive_importing_every_submodule():
    # A submodule named like a public function would replace it on import (load, compress).
    for mod in pkgutil.walk_packages(edgesparse.__path__, "edgesparse."):
        if mod.name != "edgesparse.__main__":
            importlib.import_module(mod.name)
    assert callable(edgesparse.load)
    assert callable(edgesparse.compress)
    assert callable(edgesparse.to_ir)


def test_compress_defaults_are_int8_without_pruning():
    X, y = load_digits(return_X_y=True)
    # Fitted to the optimum (tol 1e-8): at the default tol lbfgs stops at an iterate that
    # moves with scipy, and with it which rows sit near a boundary, what the bars below see.
    clf = LogisticRegression(tol=1e-8, max_iter=10_000)
    est = make_pipeline(StandardScaler(), clf).fit(X, y)
    # On its own rows int8 keeps the labels: plain int8 per row.
    ir = edgesparse.compress(est, data=X)
    assert ir.quantization == "int8-per-row"
    assert "prune" not in ir.provenance["passes"]
    m = edgesparse.Model(ir)
    assert np.mean(m.predict(X) == est.predict(X)) >= 0.995
    # Without rows, the scaler's probes are harder than the data: rows go to int16, and
    # those that stay int8 keep exactly int8's steps.
    default = edgesparse.compress(est)
    int8 = edgesparse.compress(est, quantize="int8")
    assert default.quantization == "int8/int16-per-row"
    narrow = ~default.wide_rows
    assert default.wide_rows.any()
    np.testing.assert_array_equal(default.scales[narrow], int8.scales[narrow])
    np.testing.assert_array_equal(default.to_dense()[narrow], int8.to_dense()[narrow])
    assert np.mean(edgesparse.Model(default).predict(X) == est.predict(X)) >= 0.995


def test_compress_lossless_equals_sklearn():
    X, y = load_diabetes(return_X_y=True)
    est = Ridge().fit(X, y)
    m = edgesparse.Model(edgesparse.compress(est, quantize="none"))
    np.testing.assert_allclose(m.predict(X), est.predict(X), rtol=1e-12)


def test_compress_rejects_unknown_quantization():
    X, y = load_diabetes(return_X_y=True)
    with pytest.raises(InputError, match="quantize must be one of int8, float32, none"):
        edgesparse.compress(Ridge().fit(X, y), quantize="int4")


def test_compress_file_check_regressor_r2(tmp_path):
    X, y = load_diabetes(return_X_y=True)
    est = Ridge().fit(X, y)
    (tmp_path / "r.pkl").write_bytes(pickle.dumps(est))
    np.savez(tmp_path / "check.npz", X=X, y=y)
    report = compress_file(
        CompressOptions(
            source=tmp_path / "r.pkl", output=tmp_path / "r.esb", check_data=tmp_path / "check.npz"
        )
    )
    c = report.linear.check
    assert c is not None and c.label_agreement is None
    assert c.score_name == "r2"
    expected = 1 - np.sum((y - est.predict(X)) ** 2) / np.sum((y - y.mean()) ** 2)
    assert c.score_before == pytest.approx(expected)
    assert abs(c.score_after - c.score_before) < 0.01
    assert report.output_bytes == (tmp_path / "r.esb").stat().st_size
    assert report.to_dict()["ratio"] == pytest.approx(report.source_bytes / report.output_bytes)


def test_compress_file_refuses_to_overwrite_its_input(tmp_path):
    X, y = load_diabetes(return_X_y=True)
    src = tmp_path / "r.esb"
    src.write_bytes(pickle.dumps(Ridge().fit(X, y)))
    with pytest.raises(InputError, match="would overwrite the input model"):
        compress_file(CompressOptions(source=src, output=src))


def test_compress_file_onnx_checks_the_written_artifact(tmp_path):
    """--check-data runs the ONNX file in onnxruntime, not the numpy runtime."""
    X, y = load_digits(return_X_y=True)
    clf = LogisticRegression(tol=1e-8, max_iter=10_000)  # the optimum: see above
    est = make_pipeline(StandardScaler(), clf).fit(X, y)
    (tmp_path / "d.pkl").write_bytes(pickle.dumps(est))
    np.savez(tmp_path / "check.npz", X=X, y=y)
    out = tmp_path / "model.bin"  # no known suffix: the explicit format decides
    report = compress_file(
        CompressOptions(
            source=tmp_path / "d.pkl",
            output=out,
            format="onnx",
            onnx_int8="matmulinteger",
            check_data=tmp_path / "check.npz",
        )
    )
    assert report.format == "onnx"
    assert report.linear.format_detail == "ONNX opset 17, int8 via MatMulInteger"
    assert report.output_bytes == out.stat().st_size
    onnx_delta = np.max(
        np.abs(edgesparse.load(out).decision_function(X) - est.decision_function(X))
    )
    numpy_delta = np.max(
        np.abs(
            edgesparse.Model(edgesparse.compress(est)).decision_function(X)
            - est.decision_function(X)
        )
    )
    assert report.linear.check.max_abs_decision_delta == pytest.approx(onnx_delta, rel=1e-6)
    assert report.linear.check.max_abs_decision_delta != pytest.approx(numpy_delta, rel=1e-3)
    assert report.linear.check.label_agreement >= 0.995


def test_compress_file_format_errors(tmp_path):
    X, y = load_diabetes(return_X_y=True)
    (tmp_path / "r.pkl").write_bytes(pickle.dumps(Ridge().fit(X, y)))
    with pytest.raises(InputError, match="format must be one of esb, onnx"):
        compress_file(
            CompressOptions(source=tmp_path / "r.pkl", output=tmp_path / "r.out", format="tflite")
        )
    with pytest.raises(InputError, match="apply to ONNX output only"):
        compress_file(
            CompressOptions(source=tmp_path / "r.pkl", output=tmp_path / "r.esb", onnx_sparse=True)
        )
    with pytest.raises(InputError, match="opset 12 is not supported"):
        compress_file(
            CompressOptions(source=tmp_path / "r.pkl", output=tmp_path / "r.onnx", opset=12)
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.pkl"]


def test_options_are_frozen_validated_and_shared(tmp_path):
    """One options object per job: validated on construction with the library's error texts,
    frozen, and compress() takes it or its fields as keywords (the same model either way)."""
    import dataclasses

    from edgesparse.api import QuantizeOptions

    opts = CompressOptions(source=tmp_path / "m.pkl", output=tmp_path / "m.esb")
    with pytest.raises(dataclasses.FrozenInstanceError):
        opts.sparsity = 0.5  # type: ignore[misc]
    with pytest.raises(InputError, match="columns must be one of auto, none, pow2"):
        CompressOptions(source="m.pkl", output="m.esb", columns="pow3")
    with pytest.raises(InputError, match="neighbours must be a whole number >= 1"):
        CompressOptions(source="m.pkl", output="m.esb", neighbours=0)
    with pytest.raises(InputError, match="quantize must be one of int8, float32, none, auto"):
        CompressOptions(source="m.pkl", output="m.esb", quantize="int4")
    X, y = load_diabetes(return_X_y=True)
    est = Ridge().fit(X, y)
    by_object = edgesparse.compress(est, options=QuantizeOptions(sparsity=0.5, quantize="none"))
    by_keywords = edgesparse.compress(est, sparsity=0.5, quantize="none")
    np.testing.assert_array_equal(by_object.to_dense(), by_keywords.to_dense())
    with pytest.raises(TypeError, match="not both"):
        edgesparse.compress(est, options=QuantizeOptions(), quantize="none")


def test_one_report_type_keeps_the_json_of_each_kind(tmp_path):
    """--json stays what it was: the same keys, in the same order, for a linear model."""
    X, y = load_diabetes(return_X_y=True)
    (tmp_path / "r.pkl").write_bytes(pickle.dumps(Ridge().fit(X, y)))
    report = compress_file(CompressOptions(source=tmp_path / "r.pkl", output=tmp_path / "r.esb"))
    assert report.knn is None and report.linear is not None
    assert list(report.to_dict()) == [
        "source", "source_bytes", "output", "output_bytes", "estimator", "shape",
        "nnz_before", "nnz_after", "quantization", "passes", "check", "format",
        "format_detail", "column_scaling", "estimate", "precision_note", "budget",
        "sklearn_version", "sklearn_rules", "input_kind", "ratio", "sparsity_before",
        "sparsity_after",
    ]  # fmt: skip
    assert report.to_dict()["shape"] == [1, 10]
    # ... and for a Surprise k-NN recommender (its details instead of the linear ones)
    root = Path(__file__).resolve().parents[1] / "models"
    knn = compress_file(
        CompressOptions(
            source=root / "knn_means.pkl",
            output=tmp_path / "k.esb",
            check_data=root / "knn_ratings.test.csv",
        )
    )
    assert knn.linear is None and knn.knn is not None
    assert list(knn.to_dict()) == [
        "source", "source_bytes", "output", "output_bytes", "estimator", "n_users", "n_items",
        "n_ratings", "k", "sims_before", "sims_after", "sim_dtype", "check_rows",
        "rmse_before", "rmse_after", "mae_before", "mae_after", "max_abs_delta", "format",
        "surprise_version", "surprise_rules", "ratio",
    ]  # fmt: skip
