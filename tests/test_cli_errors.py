"""Files given in the wrong place (issue 14, part 4): each error says what the file is and what
to do, in one ``Error:`` line with exit code 1 and no traceback; plus text-table data (CSV,
whitespace .txt) read by predict, --check-data and --calibration through one reader."""

from __future__ import annotations

import importlib.util
import pickle
from pathlib import Path

import numpy as np
import pytest
import skops.io as sio
from click.testing import CliRunner
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

from edgesparse.cli import cli
from tests.conftest import require_tool

ROOT = Path(__file__).resolve().parents[1]
KNN_PKL = ROOT / "models" / "knn_means.pkl"
FORMATS = (
    ".npy (X), .npz (X and optional y, or CSR parts X_data, X_indices, X_indptr, X_shape) or a "
    ".csv/.tsv/.txt table of numbers (comma- or whitespace-separated, optional header)"
)


def line(values, sep: str = ",") -> str:
    return sep.join(str(float(v)) for v in values) + "\n"


def run(*args: object):
    return CliRunner().invoke(cli, [str(a) for a in args])


def error_line(result) -> str:
    """The one ``Error:`` line of a failed run (exit code 1, no traceback), without "Error: "."""
    assert result.exit_code == 1, (result.exit_code, result.output)
    assert isinstance(result.exception, SystemExit), result.exception  # not an escaped error
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    return lines[0].removeprefix("Error: ")


@pytest.fixture(scope="module")
def iris(tmp_path_factory) -> dict:
    X, y = load_iris(return_X_y=True)
    d = tmp_path_factory.mktemp("iris")
    est = LogisticRegression(max_iter=1000).fit(X, y)
    (d / "model.pkl").write_bytes(pickle.dumps(est))
    np.save(d / "X.npy", X)
    assert run("compress", d / "model.pkl", "-o", d / "model.esb").exit_code == 0
    assert run("compress", d / "model.pkl", "-o", d / "model.onnx").exit_code == 0
    return {"dir": d, "X": X, "y": y, "est": est}


@pytest.fixture(scope="module")
def knn(tmp_path_factory) -> Path:
    require_tool(
        importlib.util.find_spec("surprise") is not None,
        what="scikit-surprise",
        install="pip install -e '.[surprise]'",
    )
    blob = tmp_path_factory.mktemp("knn") / "knn.esb"
    assert run("compress", KNN_PKL, "-o", blob).exit_code == 0
    return blob


# -- text tables as data -----------------------------------------------------------------------
def test_predict_reads_csv_and_whitespace_text(iris, tmp_path):
    d, X = iris["dir"], iris["X"]
    expected = run("predict", d / "model.esb", d / "X.npy").output
    csv = tmp_path / "X.csv"
    csv.write_text("a,b,c,d\n" + "".join(line(r) for r in X))
    txt = tmp_path / "X.txt"
    txt.write_text("# np.savetxt header\n" + "".join(line(r, "\t") for r in X))
    for data in (csv, txt):
        for model in ("model.esb", "model.onnx"):
            r = run("predict", d / model, data)
            assert r.exit_code == 0, r.output
            assert r.output == expected


def test_check_data_csv_with_and_without_labels(iris, tmp_path):
    d, X, y = iris["dir"], iris["X"], iris["y"]
    labelled = tmp_path / "Xy.csv"
    labelled.write_text("".join(line(r)[:-1] + f",{c}\n" for r, c in zip(X, y, strict=True)))
    unlabelled = tmp_path / "X.csv"
    unlabelled.write_text("".join(line(r) for r in X))
    r = run("compress", d / "model.pkl", "-o", tmp_path / "a.esb", "--check-data", labelled)
    assert r.exit_code == 0, r.output
    acc = np.mean(iris["est"].predict(X) == y)
    assert f"accuracy          {acc:.4f} -> " in r.output
    r = run("compress", d / "model.pkl", "-o", tmp_path / "b.esb", "--check-data", unlabelled)
    assert r.exit_code == 0, r.output
    assert "label agreement" in r.output and "accuracy" not in r.output


def test_bad_csv_names_the_line(iris, tmp_path):
    d = iris["dir"]
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("a,b,c,d\n1,2,3,4\n\n1,2,3\n")
    assert error_line(run("predict", d / "model.esb", ragged)) == (
        f"{ragged}, line 4: 3 columns, but line 2 has 4; every row needs the same columns"
    )
    word = tmp_path / "word.csv"
    word.write_text("1,2,3,4\n1,2,x,4\n")
    assert error_line(run("predict", d / "model.esb", word)) == (
        f"{word}, line 2, column 3: 'x' is not a number (every column is a feature)"
    )
    out = tmp_path / "c.esb"
    r = run("compress", d / "model.pkl", "-o", out, "--check-data", word)
    assert error_line(r) == (
        f"{word}, line 2, column 3: 'x' is not a number (the model takes 4 numeric features, "
        "then optionally a label column)"
    )
    r = run(
        "compress", d / "model.pkl", "-o", out, "--calibration", ragged, "--max-accuracy-drop", 0.1
    )
    assert error_line(r) == (
        f"{ragged}, line 4: 3 columns, but line 2 has 4; every row needs the same columns"
    )
    assert not out.exists()


def test_data_in_another_format_says_which_formats_are_read(iris, tmp_path):
    d = iris["dir"]
    dat = tmp_path / "X.dat"
    dat.write_text("1 2 3 4\n")
    assert error_line(run("predict", d / "model.esb", dat)) == (
        f"{dat} is not a data file edgesparse reads: it is read from {FORMATS}; a text table "
        "needs one of those suffixes"
    )
    assert error_line(run("predict", d / "model.esb", d / "model.pkl")) == (
        f"{d / 'model.pkl'} is a pickle (a saved model), not a data file; data is read from "
        f"{FORMATS}"
    )


def test_check_data_labels_of_another_kind_than_the_classes(iris, tmp_path):
    d, X = iris["dir"], iris["X"]
    named = tmp_path / "named.csv"
    named.write_text("".join(line(r)[:-1] + ",setosa\n" for r in X))
    r = run("compress", d / "model.pkl", "-o", tmp_path / "n.esb", "--check-data", named)
    assert error_line(r) == (
        "the check data's labels (y) are text but the model's classes are numbers (0, 1, 2); "
        "give y with the labels the model predicts, or no labels"
    )


# -- models that edgesparse does not support ------------------------------------------------
@pytest.mark.parametrize("fmt", ["pkl", "skops"])
def test_random_forest_is_an_unsupported_model(iris, tmp_path, fmt):
    rf = RandomForestClassifier(n_estimators=2, random_state=0).fit(iris["X"], iris["y"])
    src = tmp_path / f"rf.{fmt}"
    if fmt == "pkl":
        src.write_bytes(pickle.dumps(rf))
    else:
        sio.dump(rf, src)
    out = tmp_path / "rf.esb"
    assert error_line(run("compress", src, "-o", out)) == (
        f"cannot load {src}: it holds scikit-learn's RandomForestClassifier, which is not a "
        "supported model; `edgesparse list models` lists the supported ones"
    )
    assert not out.exists()


# -- a model where a compressed one belongs, data where a model belongs, and back -----------
def test_predict_with_a_model_to_compress(iris):
    d = iris["dir"]
    pkl = d / "model.pkl"
    for command in (("predict", pkl, d / "X.npy"), ("inspect", pkl)):
        assert error_line(run(*command)) == (
            f"{pkl} is a pickle (a saved model), not a compressed model; compress it first: "
            f"edgesparse compress {pkl} -o model.esb"
        )
    assert error_line(run("export-c", pkl, "-o", d / "c")) == (
        f"{pkl} is a pickle (a saved model), not a compressed model; compress it first: "
        f"edgesparse compress {pkl} -o model.esb"
    )


def test_a_pickle_named_esb(iris, tmp_path):
    fake = tmp_path / "fake.esb"
    fake.write_bytes((iris["dir"] / "model.pkl").read_bytes())
    for command in (("inspect", fake), ("predict", fake, iris["dir"] / "X.npy")):
        assert error_line(run(*command)) == (
            f"{fake} is a pickle (a saved model), not a compressed model; compress it first: "
            f"edgesparse compress {fake} -o model.esb"
        )


def test_data_and_model_swapped(iris):
    d = iris["dir"]
    x = d / "X.npy"
    assert error_line(run("predict", x, d / "model.esb")) == (
        f"{x} is a .npy array, a data file, not a model; give the .esb or .onnx model first, "
        "the data after it (edgesparse predict MODEL DATA)"
    )
    assert error_line(run("inspect", x)) == (
        f"{x} is a .npy array, a data file, not a model; inspect reads .esb and .onnx models "
        "(edgesparse inspect MODEL)"
    )
    assert error_line(run("compress", x, "-o", d / "x.esb")) == (
        f"cannot load {x}: it is a .npy array, a data file, not a model; compress reads the "
        "trained model (.pkl, .pickle, .joblib, .skops, .npz); data goes to --check-data or "
        "--calibration"
    )
    npz = d / "data.npz"
    np.savez(npz, X=iris["X"], y=iris["y"])
    assert error_line(run("compress", npz, "-o", d / "x.esb")) == (
        f"cannot load {npz}: it is a data file (X, y), not a weights file; compress reads the "
        "trained model (or an .npz with coef and intercept); data goes to --check-data or "
        "--calibration"
    )


@pytest.mark.parametrize(("name", "what"), [("model.esb", "an edgesparse .esb model")])
def test_compress_an_already_compressed_model(iris, name, what):
    d = iris["dir"]
    for src, shown in ((d / name, what), (d / "model.onnx", "an ONNX model")):
        assert error_line(run("compress", src, "-o", d / "again.esb")) == (
            f"cannot load {src}: it is {shown}, already compressed; compress reads the trained "
            f"model (.pkl, .pickle, .joblib, .skops, .npz); to see what it holds: edgesparse "
            f"inspect {src}"
        )


def test_export_c_of_an_onnx_model(iris):
    d = iris["dir"]
    assert error_line(run("export-c", d / "model.onnx", "-o", d / "c")) == (
        f"{d / 'model.onnx'} is an ONNX model; export-c needs the .esb blob of the same model: "
        "edgesparse compress MODEL -o model.esb"
    )


def test_directories(iris, tmp_path):
    d = iris["dir"]
    folder = tmp_path / "models"
    folder.mkdir()
    assert error_line(run("compress", folder, "-o", tmp_path / "m.esb")) == (
        f"cannot load {folder}: it is a directory, not a model file; give the model file "
        "(.pkl, .pickle, .joblib, .skops, .npz), e.g. one inside it"
    )
    assert error_line(run("compress", d / "model.pkl", "-o", folder)) == (
        f"output {folder} is a directory; give a file name, e.g. -o {folder / 'model.esb'}"
    )


@pytest.mark.parametrize(
    ("shape", "advice"),
    [
        (
            (2, 2, 4),
            "flatten each sample's features into one row, e.g. X.reshape(2, -1) when "
            "the first axis is the samples",
        ),
        (
            (4,),
            "reshape your data with X.reshape(1, -1) for a single sample or "
            "X.reshape(-1, 1) for a single feature",
        ),
        ((), "it is a single number; give rows of features, e.g. X.reshape(1, 1)"),
    ],
    ids=["3-D", "1-D", "0-D"],
)
def test_array_of_the_wrong_ndim(iris, tmp_path, shape, advice):
    x = tmp_path / "X.npy"
    np.save(x, np.ones(shape))
    assert error_line(run("predict", iris["dir"] / "model.esb", x)) == (
        f"{x}: X must be 2-D (rows x features), got shape {shape}; {advice}"
    )


# -- k-NN recommenders --------------------------------------------------------------------------
def test_knn_blob_takes_pairs(iris, knn, tmp_path):
    x = iris["dir"] / "X.npy"
    assert error_line(run("predict", knn, x)) == (
        f"{x} is a .npy array, not a CSV of user,item rows; a k-NN recommender takes a CSV of "
        "user,item rows, one per line (header optional)"
    )
    binary = tmp_path / "pairs.csv"
    binary.write_bytes(b"\x93\xff\xfe")
    assert error_line(run("predict", knn, binary)) == (
        f"{binary} is not a text file; a k-NN recommender takes a CSV of user,item rows, one "
        "per line (header optional)"
    )
    r = run("compress", KNN_PKL, "-o", tmp_path / "k.esb", "--check-data", x)
    assert error_line(r) == (
        f"{x} is a .npy array, not a CSV of user,item,rating rows; a k-NN recommender takes a "
        "CSV of user,item,rating rows, one per line (header optional)"
    )


def test_knn_to_onnx_names_what_the_user_asked(knn, tmp_path):
    out = tmp_path / "knn.onnx"
    assert error_line(run("compress", KNN_PKL, "-o", out)) == (
        f"{KNN_PKL} is a Surprise k-NN recommender, which compresses to .esb only, not ONNX "
        "(asked for by -o knn.onnx); use -o knn.esb"
    )
    r = run("compress", KNN_PKL, "-o", tmp_path / "k.bin", "--format", "onnx")
    assert error_line(r) == (
        f"{KNN_PKL} is a Surprise k-NN recommender, which compresses to .esb only, not ONNX "
        "(asked for by --format onnx); use -o k.esb"
    )
    assert not out.exists()


def test_knn_blob_in_export_c_and_bench(iris, knn, tmp_path):
    # export-c writes a k-NN folder whose main.c predicts pairs (tests/test_c_knn.py)
    r = run("export-c", knn, "-o", tmp_path / "c")
    assert r.exit_code == 0 and (tmp_path / "c" / "esb_knn.c").is_file(), r.output
    # The bench times k-NN blobs on user,item pairs (tests/test_bench_knn.py), not on rows.
    x = iris["dir"] / "X.npy"
    r = run("bench", knn, "--data", x, "-o", tmp_path / "report")
    assert error_line(r) == (
        f"cannot benchmark knn.esb on X.npy: {x} is a .npy array, not a CSV of "
        "user,item[,rating] rows; a k-NN recommender takes a CSV of user,item[,rating] rows, "
        "one per line (header optional)"
    )


def test_bench_labels_must_be_npy(iris, tmp_path):
    d = iris["dir"]
    labels = tmp_path / "y.csv"
    labels.write_text("0\n1\n")
    r = run("bench", d / "model.esb", "--data", d / "X.npy", "--labels", labels, "-o", tmp_path)
    assert error_line(r) == (
        f"{labels} is a .csv table; --labels reads a .npy array (numpy.save('y.npy', y)), or "
        "give --data an .npz with X and y"
    )


def test_sniff_knows_the_esb_magic():
    from edgesparse.formats import esb, sniff

    assert sniff.ESB_MAGIC == esb.MAGIC


def test_out_of_memory_is_one_error_line(tmp_path, monkeypatch) -> None:
    # A model too large for the memory the process may use (RLIMIT_AS) ends like any error.
    from edgesparse import frontends

    def too_big(model: object) -> None:
        raise MemoryError

    path = tmp_path / "m.pkl"
    path.write_bytes(pickle.dumps(LogisticRegression().fit(np.eye(3), [0, 1, 2])))
    monkeypatch.setattr(frontends, "to_linear_ir", too_big)
    message = error_line(run("compress", path, "-o", tmp_path / "m.esb"))
    assert message.startswith("out of memory: ")
    assert "EDGESPARSE_MAX_ARRAY_BYTES" in message
    assert not (tmp_path / "m.esb").exists()
