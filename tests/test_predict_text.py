"""``edgesparse predict`` on a model with a text input stage: a UTF-8 text file, one document
per line, against the scikit-learn pipeline's own ``predict``; hostile text files get one
``Error:`` line each."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from click.testing import CliRunner
from sklearn.feature_extraction.text import HashingVectorizer
from sklearn.linear_model import SGDClassifier
from sklearn.pipeline import make_pipeline

from edgesparse.cli import cli
from edgesparse.data import read_documents
from edgesparse.errors import InputError

TRAIN = [
    "the cat sat on the mat",
    "dogs chase cats in the park",
    "stocks fell as markets closed lower",
    "the central bank raised interest rates",
    "a kitten played with yarn",
    "bond yields rose on inflation data",
] * 5
LABELS = ["pets", "pets", "money", "money", "pets", "money"] * 5
DOCS = ["the kitten and the cat", "", "interest rates and bond markets", "Ünïcödé çafé", "x"]


@pytest.fixture(scope="module")
def text_blob(tmp_path_factory):
    pipe = make_pipeline(
        HashingVectorizer(n_features=2**12),
        SGDClassifier(loss="log_loss", random_state=0, max_iter=50, tol=None),
    ).fit(TRAIN, LABELS)
    root = tmp_path_factory.mktemp("text")
    src, out = root / "text.pkl", root / "text.esb"
    src.write_bytes(pickle.dumps(pipe))
    res = CliRunner().invoke(cli, ["compress", str(src), "-o", str(out), "--quantize", "float32"])
    assert res.exit_code == 0, res.output
    return pipe, out


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_predict_reads_one_document_per_line(text_blob, tmp_path, newline: str) -> None:
    pipe, blob = text_blob
    docs = tmp_path / "docs.txt"
    docs.write_bytes(newline.join(DOCS).encode("utf-8") + newline.encode())
    res = CliRunner().invoke(cli, ["predict", str(blob), str(docs)])
    assert res.exit_code == 0, res.output
    assert res.output.splitlines() == list(pipe.predict(DOCS))
    res = CliRunner().invoke(cli, ["predict", str(blob), str(docs), "--proba"])
    assert res.exit_code == 0, res.output
    got = np.array([[float(v) for v in line.split()] for line in res.output.splitlines()])
    np.testing.assert_allclose(got, pipe.predict_proba(DOCS), atol=1e-5)


def test_read_documents_keeps_empty_lines_and_drops_a_bom(tmp_path) -> None:
    p = tmp_path / "d.txt"
    p.write_bytes("\ufeffone\n\nthree".encode())
    assert read_documents(p) == ["one", "", "three"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "holds no documents"),
        (b"fine\nbad \xff byte\n", "line 2: not valid UTF-8 (byte 9)"),
        (b"one\ntwo\nnul\x00here\n", "line 3: a NUL byte; this is not a text file"),
        (b"\x93NUMPY\x01\x00", "not text; a text model takes a UTF-8 text file"),
    ],
)
def test_hostile_text_files_get_one_error_line(text_blob, tmp_path, content, message) -> None:
    _, blob = text_blob
    p = tmp_path / ("d.npy" if content.startswith(b"\x93NUMPY") else "d.txt")
    p.write_bytes(content)
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_documents(p)
    res = CliRunner().invoke(cli, ["predict", str(blob), str(p)])
    assert res.exit_code != 0
    assert res.output.startswith("Error: ") and len(res.output.strip().splitlines()) == 1
    assert "Traceback" not in res.output


def test_a_text_file_past_the_limit_is_refused_before_reading(text_blob, tmp_path, monkeypatch):
    _, blob = text_blob
    monkeypatch.setenv("EDGESPARSE_MAX_DATA_BYTES", str(32 * 1000))  # text limit: 1000 bytes
    p = tmp_path / "big.txt"
    p.write_bytes(b"word " * 300)
    res = CliRunner().invoke(cli, ["predict", str(blob), str(p)])
    assert res.exit_code != 0 and "more than the limit of 1000 bytes" in res.output
