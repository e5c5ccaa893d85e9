"""The `esb` driver frees everything it allocates on every exit, success or error: each command
(predict, features, bench, recommend, verify) on each input kind (dense and CSR rows, documents,
CSV records, k-NN and factor pairs), run under ASan + UBSan with leak detection on
(tests/cdriver.py's SANITIZER_ENV: a leak fails the run). Oracles: the numpy runtime's labels and
estimates on the same blob for the runs that succeed; the documented exit status (1: a refused
row, document or record; 2: a bad file or option) and the driver's one `esb: ...` line for the
others.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from edgesparse.export_c import write_rows
from edgesparse.formats import esb
from edgesparse.pipeline import CompressOptions, compress_file
from edgesparse.runtime import Model, loads
from tests.cdriver import SANITIZER_ENV, build_driver, run

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def asan(tmp_path_factory) -> list[str]:
    return build_driver(tmp_path_factory.mktemp("cclean"), sanitized=True, name="esb")


def sanitized(driver: list[str], *args: object) -> subprocess.CompletedProcess:
    """One driver run with leak detection on: no sanitizer report, whatever the status."""
    res = run([*driver, *map(str, args)], env={**os.environ, **SANITIZER_ENV})
    assert "Sanitizer" not in res.stderr and "runtime error" not in res.stderr, res.stderr
    return res


def ok(driver: list[str], *args: object) -> str:
    res = sanitized(driver, *args)
    assert res.returncode == 0 and not res.stderr, res.stderr
    return res.stdout


def fails(driver: list[str], status: int, says: str, *args: object) -> str:
    """The run exits with ``status`` and says ``says`` in its one `esb: ` line."""
    res = sanitized(driver, *args)
    assert res.returncode == status, res.stderr
    assert res.stderr.startswith("esb: ") and says in res.stderr, res.stderr
    return res.stdout


def labels(lines: str) -> list[int]:
    return [int(line.split("\t")[0]) for line in lines.splitlines()]


@pytest.fixture(scope="module")
def linear(tmp_path_factory) -> tuple[Path, np.ndarray, list[int]]:
    """digits (int8), 30 held-out rows, the numpy runtime's class indices."""
    blob = tmp_path_factory.mktemp("clean-linear") / "digits.esb"
    source = ROOT / "models" / "digits_pipeline.pkl"
    compress_file(CompressOptions(source=source, output=blob, quantize="int8"))
    X = np.load(ROOT / "models" / "digits_pipeline.test.npz")["X"][:30]
    model = Model(esb.read(blob))
    return blob, X, np.searchsorted(model.classes_, model.predict(X)).tolist()


def test_rows_predict_and_bench_free_everything(asan, linear, tmp_path: Path) -> None:
    blob, X, want = linear
    for name, rows_x in (("dense", X), ("csr", sp.csr_matrix(X))):
        rows = tmp_path / f"{name}.bin"
        write_rows(rows, rows_x)
        modes = [[], ["--one-row"], ["--stream"], ["--min-workspace"], ["--no-csr-index"]]
        modes += [["--layout", "transposed"], ["--layout", "columns"], ["--pad", "3"]]
        for mode in modes:
            assert labels(ok(asan, "predict", blob, rows, *mode)) == want, mode
        for mode in ([], ["--batch", "7"], ["--batch", "50", "--op", "proba"], ["--one-row"]):
            pred = tmp_path / "pred.txt"
            line = json.loads(ok(asan, "bench", blob, rows, 20, 3, *mode, "--predictions", pred))
            assert line["rows"] == len(want) and line["api"] in ("batch", "one-row")
            assert [int(v) for v in pred.read_text().split()] == want, mode


def test_refused_rows_and_bad_files_free_everything(asan, linear, tmp_path: Path) -> None:
    blob, X, want = linear
    nan = X.astype(np.float32)
    nan[3, 5] = np.nan
    for name, rows_x in (("dense", nan), ("csr", sp.csr_matrix(nan))):
        rows = tmp_path / f"nan-{name}.bin"
        write_rows(rows, rows_x)
        for mode in ([], ["--one-row"], *([["--pad", "2"]] if name == "dense" else [])):
            out = fails(asan, 1, "esb: row 3: ", "predict", blob, rows, *mode)
            assert labels(out) == want[:3]  # the rows before the refused one
        for mode in ([], ["--batch", "4"], ["--one-row"]):
            fails(asan, 1, "esb: row 3: ", "bench", blob, rows, 10, 2, *mode)
    good = tmp_path / "good.bin"
    write_rows(good, X)
    raw = good.read_bytes()
    (tmp_path / "garbage.bin").write_bytes(b"not rows at all, not at all")
    (tmp_path / "short.bin").write_bytes(raw[:-4])
    narrow = tmp_path / "narrow.bin"
    write_rows(narrow, X[:, :10])
    csr = tmp_path / "csr.bin"
    write_rows(csr, sp.csr_matrix(X))
    bad_ptr = bytearray(csr.read_bytes())
    bad_ptr[28:32] = (2**31).to_bytes(4, "little")  # indptr[1] past nnz
    (tmp_path / "bad-indptr.bin").write_bytes(bytes(bad_ptr))
    for command in (["predict"], ["bench"]):
        tail = [10, 2] if command == ["bench"] else []
        for rows, says in (
            ("garbage.bin", "is not a rows file"),
            ("short.bin", "bad rows header or size"),
            ("bad-indptr.bin", "bad indptr"),
            ("narrow.bin", "rows have 10 features, the model expects 64"),
            ("missing.bin", "is not a rows file"),
        ):
            fails(asan, 2, says, *command, blob, tmp_path / rows, *tail)
    damaged = tmp_path / "damaged.esb"
    damaged.write_bytes(blob.read_bytes()[:-1] + bytes([blob.read_bytes()[-1] ^ 0xFF]))
    fails(asan, 2, "esb: ", "predict", damaged, good)
    fails(asan, 2, "cannot read", "predict", tmp_path / "none.esb", good)
    fails(asan, 2, "has no text or tabular input stage", "features", blob, good)
    fails(
        asan, 2, "--op recommend is for k-NN models", "bench", blob, good, 5, 1, "--op", "recommend"
    )
    fails(asan, 2, "must be >= 1", "bench", blob, good, 0, 1)
    fails(asan, 1, "cannot write", "bench", blob, good, 5, 1, "--predictions", tmp_path / "no/p")


def test_text_commands_free_everything(asan, tmp_path: Path) -> None:
    from edgesparse import compress
    from tests import test_text_featurizer as tf

    blob_bytes = esb.encode(compress(tf._pipelines()["hashing-tfidf-logistic"](), quantize="int8"))
    model = loads(blob_bytes)
    blob = tmp_path / "text.esb"
    blob.write_bytes(blob_bytes)
    docs = [d for d in tf.DOCS[:25] if "\n" not in d and "\r" not in d]
    path = tmp_path / "docs.txt"
    path.write_text("".join(d + "\n" for d in docs), encoding="utf-8")
    want = np.searchsorted(model.classes_, model.predict(docs)).tolist()
    assert labels(ok(asan, "predict", blob, path)) == want
    assert len(ok(asan, "features", blob, path).splitlines()) == len(docs)
    pred = tmp_path / "pred.txt"
    line = json.loads(ok(asan, "bench", blob, path, 10, 2, "--batch", 3, "--predictions", pred))
    assert line["input"] == "text" and [int(v) for v in pred.read_text().split()] == want
    bad = tmp_path / "bad.txt"
    bad.write_bytes(docs[0].encode() + b"\n\xff\xfe not UTF-8\n")
    assert labels(fails(asan, 1, "esb: document 1: ", "predict", blob, bad)) == want[:1]
    fails(asan, 1, "esb: document 1: ", "features", blob, bad)
    for mode in ([], ["--op", "proba"], ["--predictions", pred]):
        fails(asan, 1, "esb: document 1: ", "bench", blob, bad, 5, 1, *mode)
    (tmp_path / "first-bad.txt").write_bytes(b"\xff\n")
    fails(asan, 1, "esb: document 0: ", "bench", blob, tmp_path / "first-bad.txt", 5, 1)
    (tmp_path / "empty.txt").write_bytes(b"")
    fails(asan, 2, "has no documents", "bench", blob, tmp_path / "empty.txt", 5, 1)
    fails(asan, 2, "cannot read", "predict", blob, tmp_path / "none.txt")
    fails(asan, 2, "cannot read", "bench", blob, tmp_path / "none.txt", 5, 1)
    fails(asan, 2, "has no recommend", "bench", blob, path, 5, 1, "--op", "recommend")


@pytest.mark.filterwarnings("ignore:lbfgs failed to converge")  # the blob is the oracle's too
def test_tabular_commands_free_everything(asan, tmp_path: Path) -> None:
    pytest.importorskip("sklearn")
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    from edgesparse import compress
    from edgesparse.data import read_records
    from tests import test_tabular_featurizer as tt
    from tests.test_c_tabular import write_csv

    X, y = tt.adult_like(300, seed=5)
    pipe = make_pipeline(tt.adult_transformer(), LogisticRegression(max_iter=300))
    pipe.fit(X[:250], y[:250])
    blob = tmp_path / "tab.esb"
    blob.write_bytes(esb.encode(compress(pipe)))
    model = loads(blob.read_bytes())
    names = list(tt._NAMES)
    path = write_csv(tmp_path / "rows.csv", names, X[250:].tolist())
    want = np.searchsorted(model.classes_, model.predict(read_records(path))).tolist()
    assert labels(ok(asan, "predict", blob, path)) == want
    assert len(ok(asan, "features", blob, path).splitlines()) == len(want)
    pred = tmp_path / "pred.txt"
    line = json.loads(ok(asan, "bench", blob, path, 10, 2, "--batch", 4, "--predictions", pred))
    assert line["input"] == "records" and [int(v) for v in pred.read_text().split()] == want
    head = ",".join(names) + "\n"
    row = path.read_text().splitlines()[1] + "\n"
    cases = {  # file -> (exit status of predict, of bench, what it says)
        "refused.csv": (head + row + "abc" + row[row.index(",") :], 1, 1, "line 3: the record"),
        "quote.csv": (head + row + '1,"x\n', 1, 2, "line 3: not a valid CSV row"),
        "cells.csv": (head + row + "1,2\n", 1, 2, "line 3: 2 cells, but the header names 9"),
        "header.csv": ("a,b\n" + row, 1, 2, "line 1: "),
        "empty.csv": ("", 1, 2, "is empty; expected a header row"),
        "no-records.csv": (head, 1, 2, "has a header but no records"),
    }
    for name, (text, predict_status, bench_status, says) in cases.items():
        (tmp_path / name).write_text(text)
        out = fails(asan, predict_status, says, "predict", blob, tmp_path / name)
        assert labels(out) == want[: len(labels(out))]
        fails(asan, bench_status, says, "bench", blob, tmp_path / name, 5, 1)
    fails(asan, 2, "cannot read", "features", blob, tmp_path / "none.csv")
    fails(asan, 2, "cannot read", "bench", blob, tmp_path / "none.csv", 5, 1)


@pytest.mark.parametrize("kind", ["knn", "factors"])
def test_recommender_commands_free_everything(asan, kind: str, tmp_path: Path) -> None:
    from tests import test_factors_malformed, test_knn_malformed

    small = test_knn_malformed if kind == "knn" else test_factors_malformed
    blob = tmp_path / f"{kind}.esb"
    blob.write_bytes(small.BLOB)
    model = loads(small.BLOB)
    ir = small.small_ir()
    pairs = [(u, i) for u in ir.user_ids for i in ir.item_ids] + [("nobody", ir.item_ids[0])]
    path = tmp_path / "pairs.csv"
    path.write_text("user,item\n" + "".join(f"{u},{i}\n" for u, i in pairs))
    want = [model.predict(u, i).est for u, i in pairs]
    got = [float(line.split("\t")[0]) for line in ok(asan, "predict", blob, path).splitlines()]
    assert got == want
    pred = tmp_path / "pred.txt"
    for op in ("predict", "recommend"):
        json.loads(ok(asan, "bench", blob, path, 10, 2, "--op", op, "--predictions", pred))
        assert [float(v) for v in pred.read_text().split()] == want
    top = [
        line.split("\t")[0] for line in ok(asan, "recommend", blob, "a", 2, "--all").splitlines()
    ]
    assert top == [str(p.iid) for p in model.recommend("a", n=2, exclude_seen=False)]
    (tmp_path / "bad.csv").write_text("a,10\njust-one-field\n")
    (tmp_path / "header-only.csv").write_text("user,item\n")
    fails(asan, 2, 'line 2: expected "user,item"', "predict", blob, tmp_path / "bad.csv")
    fails(asan, 2, 'line 2: expected "user,item"', "bench", blob, tmp_path / "bad.csv", 5, 1)
    fails(asan, 2, "has no pairs", "bench", blob, tmp_path / "header-only.csv", 5, 1)
    fails(asan, 2, "cannot read", "bench", blob, tmp_path / "none.csv", 5, 1)
    fails(asan, 2, "must be >= 1", "bench", blob, path, 5, -1)
    fails(asan, 1, "cannot write", "bench", blob, path, 5, 1, "--predictions", tmp_path / "no/p")
    fails(asan, 2, "N must be a whole number", "recommend", blob, "a", "x")
    damaged = tmp_path / "damaged.esb"
    damaged.write_bytes(small.BLOB[:-1] + bytes([small.BLOB[-1] ^ 0xFF]))
    fails(asan, 2, "esb: ", "predict", damaged, path)
    fails(asan, 2, "esb: ", "recommend", damaged, "a", 2)
    fails(asan, 2, "esb: ", "bench", damaged, path, 5, 1)


def test_verify_frees_every_blob(asan, linear, tmp_path: Path) -> None:
    from tests import test_factors_malformed, test_knn_malformed

    blob = linear[0]
    knn, factors, bad = (tmp_path / n for n in ("knn.esb", "mf.esb", "bad.esb"))
    knn.write_bytes(test_knn_malformed.BLOB)
    factors.write_bytes(test_factors_malformed.BLOB)
    bad.write_bytes(test_knn_malformed.BLOB[:-3])
    res = sanitized(asan, "verify", blob, knn, factors, bad, tmp_path / "none.esb")
    assert res.returncode == 1
    lines = res.stdout.splitlines()
    assert lines[:3] == ["OK"] * 3 and lines[3].startswith("ERR ") and lines[4].startswith("ERR -1")
