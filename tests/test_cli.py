"""End-to-end CLI tests: real pickles in, real blobs out, scikit-learn as the oracle, and every
kind of bad input ending in one ``Error:`` line, exit code 1 and no output file."""

from __future__ import annotations

import json
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier

from edgesparse.cli import cli


@pytest.fixture(scope="module")
def iris(tmp_path_factory):
    X, y = load_iris(return_X_y=True)
    labels = np.array(["setosa", "versicolor", "virginica"])[y]
    # Fitted to the optimum (tol 1e-8), not to an lbfgs iterate that moves with scipy: the
    # bars below allow no flipped row of 150 (99.5%) or two (98%).
    est = LogisticRegression(tol=1e-8, max_iter=10_000).fit(X, labels)
    d = tmp_path_factory.mktemp("iris")
    (d / "model.pkl").write_bytes(pickle.dumps(est))
    np.savez(d / "check.npz", X=X, y=labels)
    np.save(d / "X.npy", X)
    return d, est, X, labels


def run(*args: str):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    return result


def assert_one_line_error(result, contains: str) -> None:
    assert result.exit_code == 1, (result.exit_code, result.output, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ")
    assert contains in lines[0], lines[0]
    assert "Traceback" not in result.output


def test_compress_inspect_predict(iris, tmp_path):
    d, est, X, _ = iris
    out = tmp_path / "m.esb"
    r = run("compress", d / "model.pkl", "-o", out, "--check-data", d / "check.npz")
    assert r.exit_code == 0, r.output + r.stderr
    for key in ("original", "output", "ratio", "nonzeros", "int8-per-row", "label agreement"):
        assert key in r.output
    assert out.exists()
    r = run("inspect", out, "--json")
    assert r.exit_code == 0, r.stderr
    json.loads(r.output)
    r = run("predict", out, d / "X.npy")
    assert r.exit_code == 0, r.stderr
    got = np.array(r.output.split())
    assert np.mean(got == est.predict(X)) >= 0.995


def test_lossless_reencoding_matches_sklearn_exactly(iris, tmp_path):
    d, est, X, _ = iris
    out = tmp_path / "m.esb"
    r = run("compress", d / "model.pkl", "-o", out, "--quantize", "none", "--sparsity", "0")
    assert r.exit_code == 0, r.stderr
    run("predict", out, d / "X.npy", "--proba", "-o", tmp_path / "p.npy")
    np.testing.assert_allclose(np.load(tmp_path / "p.npy"), est.predict_proba(X), rtol=1e-9)
    run("predict", out, d / "X.npy", "-o", tmp_path / "y.npy")
    assert (np.load(tmp_path / "y.npy") == est.predict(X)).all()


def test_check_data_json_summary(iris, tmp_path):
    d, _, _, _ = iris
    r = run(
        "compress", d / "model.pkl", "-o", tmp_path / "m.esb", "--sparsity", "0.5", "--json",
        "--check-data", d / "check.npz",
    )  # fmt: skip
    assert r.exit_code == 0, r.stderr
    report = json.loads(r.output)
    assert report["nnz_after"] == 6  # 3 x 4 weights, half kept
    assert 0 <= report["check"]["label_agreement"] <= 1
    assert report["check"]["score_name"] == "accuracy"


def test_default_output_goes_next_to_the_model(iris, tmp_path):
    d, _, _, _ = iris
    src = tmp_path / "copy.pkl"
    src.write_bytes((d / "model.pkl").read_bytes())
    assert run("compress", src).exit_code == 0
    assert (tmp_path / "copy.esb").exists()


class Hostile:
    def __init__(self, canary: Path) -> None:
        self.canary = canary

    def __reduce__(self):
        return (os.system, (f"touch {self.canary}",))


def test_hostile_pickle_is_refused_and_nothing_runs(tmp_path):
    canary = tmp_path / "CANARY"
    src = tmp_path / "evil.pkl"
    src.write_bytes(pickle.dumps(Hostile(canary)))
    out = tmp_path / "evil.esb"
    r = run("compress", src, "-o", out)
    assert_one_line_error(r, "system")
    assert not canary.exists()
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evil.pkl"]


def test_unsupported_model(tmp_path):
    X, y = load_iris(return_X_y=True)
    src = tmp_path / "tree.pkl"
    src.write_bytes(pickle.dumps(DecisionTreeClassifier().fit(X, y)))
    assert_one_line_error(
        run("compress", src, "-o", tmp_path / "t.esb"),
        "DecisionTreeClassifier, which is not a supported model; `edgesparse list models`",
    )
    assert not (tmp_path / "t.esb").exists()


@pytest.mark.parametrize(
    "mutate",
    [
        lambda b: b[: len(b) // 2],  # truncated
        lambda b: b[:40] + bytes([b[40] ^ 0x10]) + b[41:],  # bit flip in the header
        lambda b: b[:-9] + bytes([b[-9] ^ 0x01]) + b[-8:],  # bit flip near the end
        lambda b: b"garbage" * 20,
        lambda b: b"",
        lambda b: b + b"\0" * 8,  # trailing bytes
    ],
    ids=["truncated", "header-flip", "tail-flip", "garbage", "empty", "trailing"],
)
def test_corrupt_blobs(iris, tmp_path, mutate):
    d, _, _, _ = iris
    good = tmp_path / "good.esb"
    assert run("compress", d / "model.pkl", "-o", good).exit_code == 0
    bad = tmp_path / "bad.esb"
    bad.write_bytes(mutate(good.read_bytes()))
    assert_one_line_error(run("inspect", bad), "")
    out = tmp_path / "pred.npy"
    assert_one_line_error(run("predict", bad, d / "X.npy", "-o", out), "")
    assert not out.exists()


def test_bad_prediction_inputs(iris, tmp_path):
    d, _, X, _ = iris
    blob = tmp_path / "m.esb"
    assert run("compress", d / "model.pkl", "-o", blob).exit_code == 0
    np.save(tmp_path / "narrow.npy", X[:, :3])
    out = tmp_path / "out.npy"
    r = run("predict", blob, tmp_path / "narrow.npy", "-o", out)
    assert_one_line_error(r, "X has 3 features, but the model expects 4 features as input")
    bad = X.copy()
    bad[0, 0] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    assert_one_line_error(run("predict", blob, tmp_path / "nan.npy", "-o", out), "NaN")
    assert_one_line_error(run("predict", blob, tmp_path / "nope.npy"), "not found")
    (tmp_path / "text.npy").write_text("hello")
    assert_one_line_error(run("predict", blob, tmp_path / "text.npy"), "text.npy")
    assert not out.exists()


def test_bad_compress_inputs(iris, tmp_path):
    d, _, _, _ = iris
    assert_one_line_error(run("compress", tmp_path / "missing.pkl"), "not found")
    (tmp_path / "notes.pkl").write_text("not a pickle at all")
    assert_one_line_error(run("compress", tmp_path / "notes.pkl"), "notes.pkl")
    r = run("compress", d / "model.pkl", "-o", tmp_path / "m.txt")
    assert_one_line_error(r, "unknown output format")
    np.savez(tmp_path / "narrow.npz", X=np.zeros((3, 2)))
    out = tmp_path / "m.esb"
    r = run("compress", d / "model.pkl", "-o", out, "--check-data", tmp_path / "narrow.npz")
    assert_one_line_error(r, "X has 2 features")
    assert not out.exists()


def test_usage_errors_exit_2(iris, tmp_path):
    d, _, _, _ = iris
    assert run("compress", d / "model.pkl", "--sparsity", "2").exit_code == 2
    assert run("compress", d / "model.pkl", "--quantize", "int4").exit_code == 2
    assert run("frobnicate").exit_code == 2
    r = run("compress", d / "model.pkl", "--sparsity", "0.5", "--threshold", "0.1")
    assert r.exit_code == 2


def test_list_models_names_supported_estimators():
    r = run("list", "models")
    assert r.exit_code == 0
    names = r.output.split()
    for name in ("LogisticRegression", "SGDClassifier", "Ridge", "LinearSVC", "Pipeline"):
        assert name in names
    for name in ("KNNBasic", "KNNWithMeans", "KNNWithZScore", "KNNBaseline"):
        assert f"surprise.{name}" in names
    assert run("list", "heads").output.split()[0] == "identity"


def test_console_script_and_module_agree(iris, tmp_path):
    d, _, _, _ = iris
    blob = tmp_path / "m.esb"
    exe = Path(sys.executable).parent / "edgesparse"
    a = subprocess.run(
        [exe, "compress", d / "model.pkl", "-o", blob], capture_output=True, text=True
    )
    assert a.returncode == 0, a.stderr
    b = subprocess.run(
        [sys.executable, "-m", "edgesparse", "inspect", blob], capture_output=True, text=True
    )
    assert b.returncode == 0, b.stderr
    c = subprocess.run(
        [sys.executable, "-m", "edgesparse", "inspect", tmp_path / "none.esb"],
        capture_output=True,
        text=True,
    )
    assert c.returncode == 1
    assert c.stderr.startswith("Error: ") and len(c.stderr.strip().splitlines()) == 1


# -- ONNX output -------------------------------------------------------------------------------
def test_onnx_compress_inspect_predict(iris, tmp_path):
    d, est, X, _ = iris
    src = tmp_path / "model.pkl"
    src.write_bytes((d / "model.pkl").read_bytes())
    r = run(
        "compress", src, "--format", "onnx", "--quantize", "none", "--check-data", d / "check.npz"
    )
    assert r.exit_code == 0, r.output + r.stderr
    assert "ONNX opset 17" in r.output
    assert re.search(r"label agreement +100.00%", r.output)
    out = tmp_path / "model.onnx"  # default output: next to the model, the format's suffix
    r = run("inspect", out, "--json")
    assert r.exit_code == 0, r.stderr
    info = json.loads(r.output)
    assert info["opset"] == {"ai.onnx": 17} and info["domains"] == ["ai.onnx"]
    assert info["ops"]["MatMul"] == 1 and info["ops"]["Softmax"] == 1
    assert info["outputs"]["label"] == "string [N]"
    assert info["initializers"]["W"] == {"dtype": "float32", "shape": [4, 3], "bytes": 48}
    assert info["bytes"] == out.stat().st_size
    r = run("inspect", out)
    assert r.exit_code == 0 and "checker" in r.output and "DequantizeLinear" not in r.output
    r = run("predict", out, d / "X.npy")
    assert r.exit_code == 0, r.stderr
    assert r.output.split() == est.predict(X).tolist()
    r = run("predict", out, d / "X.npy", "--proba", "-o", tmp_path / "p.npy")
    assert r.exit_code == 0, r.stderr
    np.testing.assert_allclose(np.load(tmp_path / "p.npy"), est.predict_proba(X), atol=1e-6)


def test_onnx_int8_forms_and_sparse_weights(iris, tmp_path):
    d, est, X, _ = iris
    for args in (["--onnx-int8", "matmulinteger"], ["--onnx-sparse"], ["--opset", "21"]):
        out = tmp_path / "m.onnx"
        r = run("compress", d / "model.pkl", "-o", out, *args)
        assert r.exit_code == 0, r.output + r.stderr
        r = run("predict", out, d / "X.npy")
        assert np.mean(np.array(r.output.split()) == est.predict(X)) >= 0.98, args


def test_onnx_inspect_shows_column_exponents(iris, tmp_path):
    d, est, X, _ = iris
    for scale in ("pow2", "none"):
        out = tmp_path / f"{scale}.onnx"
        r = run("compress", d / "model.pkl", "-o", out, "--column-scale", scale)
        assert r.exit_code == 0, r.output + r.stderr
        r = run("inspect", out)
        assert r.exit_code == 0, r.stderr
        assert re.search(rf"^ +columns +{scale}$", r.output, re.MULTILINE), r.output
        info = json.loads(run("inspect", out, "--json").output)
        assert info["edgesparse"]["columns"] == scale
        assert (info["column_exponents"] is None) == (scale == "none")
        r = run("predict", out, d / "X.npy")
        assert np.mean(np.array(r.output.split()) == est.predict(X)) >= 0.98


def test_onnx_predict_proba_missing(tmp_path):
    X, y = load_iris(return_X_y=True)
    from sklearn.svm import LinearSVC

    (tmp_path / "svc.pkl").write_bytes(pickle.dumps(LinearSVC().fit(X, y)))
    np.save(tmp_path / "X.npy", X)
    assert run("compress", tmp_path / "svc.pkl", "-o", tmp_path / "s.onnx").exit_code == 0
    r = run("predict", tmp_path / "s.onnx", tmp_path / "X.npy", "--proba")
    assert_one_line_error(r, "no predict_proba")
    r = run("predict", tmp_path / "s.onnx", tmp_path / "X.npy", "--decision")
    assert r.exit_code == 0 and len(r.output.splitlines()) == 150


def test_onnx_option_errors(iris, tmp_path):
    d, _, _, _ = iris
    m = d / "model.pkl"
    assert_one_line_error(run("compress", m, "-o", tmp_path / "a.esb", "--onnx-sparse"), "ONNX")
    assert_one_line_error(run("compress", m, "-o", tmp_path / "a.esb", "--opset", "17"), "ONNX")
    r = run("compress", m, "-o", tmp_path / "a.onnx", "--opset", "99")
    assert_one_line_error(r, "opset 99 is not supported: use 13..21")
    r = run(
        "compress",
        m,
        "-o",
        tmp_path / "a.onnx",
        "--quantize",
        "none",
        "--onnx-int8",
        "matmulinteger",
    )
    assert_one_line_error(r, "needs int8 weights")
    r = run("compress", m, "-o", tmp_path / "a.esb", "--format", "onnx")
    assert_one_line_error(r, "ends in .esb but the format is onnx")
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    assert run("list", "formats").output.split() == ["esb", "onnx"]


@pytest.mark.parametrize(
    "content", [b"", b"garbage" * 20, b"\x08\x08\x12\x03abc"], ids=["empty", "garbage", "proto"]
)
def test_corrupt_onnx_files(iris, tmp_path, content):
    d, _, _, _ = iris
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(content)
    assert_one_line_error(run("inspect", bad), "bad.onnx: not a valid ONNX model")
    out = tmp_path / "pred.npy"
    assert_one_line_error(run("predict", bad, d / "X.npy", "-o", out), "bad.onnx")
    assert not out.exists()


def test_compress_progress_on_a_terminal_only(iris, tmp_path, monkeypatch, capfd):
    from edgesparse import cli as cli_module
    from edgesparse.pipeline import CompressOptions, compress_file

    d, _, _, _ = iris
    # the library reports its steps to a callback, and prints nothing itself
    calls: list[tuple[str, int, int]] = []
    compress_file(
        CompressOptions(
            source=d / "model.pkl", output=tmp_path / "m.onnx", check_data=d / "check.npz"
        ),
        progress=lambda *a: calls.append(a),
    )
    assert calls == [
        ("loading model.pkl", 0, 5),
        ("pruning and quantizing", 1, 5),
        ("building the ONNX graph", 2, 5),
        ("checking against the original on check.npz", 3, 5),
        (f"writing {tmp_path / 'm.onnx'}", 4, 5),
    ]
    compress_file(CompressOptions(source=d / "model.pkl", output=tmp_path / "m2.esb"))
    assert capfd.readouterr() == ("", "")
    # the CLI passes a callback only when stderr is a terminal
    quiet = run("compress", d / "model.pkl", "-o", tmp_path / "q.esb")
    assert quiet.exit_code == 0 and quiet.stderr == ""
    monkeypatch.setattr(cli_module, "_stderr_is_tty", lambda: True)
    shown = run("compress", d / "model.pkl", "-o", tmp_path / "t.esb", "--json")
    assert shown.exit_code == 0, shown.stderr
    assert shown.stderr.splitlines() == [
        "[1/4] loading model.pkl ...",
        "[2/4] pruning and quantizing ...",
        "[3/4] encoding the .esb blob ...",
        f"[4/4] writing {tmp_path / 't.esb'} ...",
    ]
    json.loads(shown.stdout)  # stdout stays pure JSON


# ------------------------------------------------------------------------------------------
# Output from a file never reaches the terminal raw (issue 16)
# ------------------------------------------------------------------------------------------
def _cli_process(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}  # strict: a lone surrogate would fail
    return subprocess.run(
        [sys.executable, "-m", "edgesparse", *map(str, args)],
        capture_output=True,
        text=True,
        encoding="utf-8",
        env=env,
        timeout=120,
    )


def test_control_characters_in_labels_and_provenance_are_escaped(tmp_path):
    from edgesparse.formats import esb
    from edgesparse.ir import from_dense
    from tests.test_esb_malformed import edit, set_data

    ir = from_dense(
        np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]),
        bias=np.zeros(3),
        head="hard",
        classes=np.array(["\x1b[2Jwiped", "ok\rFAKE", "bell\x07\nError: fake"]),
        provenance={"note": "x"},
    )
    # a lone surrogate ("\ud800" in the JSON) cannot be written by the encoder: edit it in
    prov = b'{"note":"\\ud800\\u001b]0;title\\u0007","k\\u000d":"v"}'
    blob = tmp_path / "m.esb"
    blob.write_bytes(edit(ir, change=set_data("provenance", prov)))
    res = _cli_process("inspect", blob)
    assert res.returncode == 0, res.stderr
    assert "\\ud800\\x1b]0;title\\x07" in res.stdout
    assert "k\\x0d" in res.stdout
    assert not any(c in res.stdout for c in "\x1b\x07\r")
    as_json = _cli_process("inspect", blob, "--json")
    assert as_json.returncode == 0 and json.loads(as_json.stdout)["provenance"]["k\r"] == "v"
    X = tmp_path / "X.npy"
    np.save(X, np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))
    res = _cli_process("predict", blob, X)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == ["\\x1b[2Jwiped", "ok\\x0dFAKE", "bell\\x07\\x0aError: fake"]
    assert esb.read(blob).classes[2] == "bell\x07\nError: fake"  # the model itself is unchanged
