"""The C runtime's tabular input stage (runtime/c/esb_tabular.c) against scikit-learn and the
numpy runtime: its verifier, its CSV records and its features, on the tables
tests/test_tabular_featurizer.py generates."""

from __future__ import annotations

import csv
import math
import os
import random
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.cdriver import SANITIZER_ENV

pytest.importorskip("sklearn")

from sklearn import datasets
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import (
    MaxAbsScaler,
    MinMaxScaler,
    OneHotEncoder,
    RobustScaler,
    StandardScaler,
)

from tests import test_tabular_featurizer as tt

ROOT = Path(__file__).resolve().parent.parent
C_DIR = ROOT / "edgesparse/runtime/c"
CFLAGS = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"]
SANITIZE = ["-g", "-O1", "-fsanitize=address,undefined", "-fno-sanitize-recover=all"]


def _build(out: Path, *, sanitize: bool, defines: tuple[str, ...] = ()) -> list[str]:
    """The `esb` driver with -O2 (-O1 and ASan + UBSan when ``sanitize``), compiled once per
    session (tests/cbuild.py): the same command as tests/cdriver.py's, so the modules share
    it; ``out`` names the program."""
    from tests import cdriver
    from tests.cbuild import build
    from tests.conftest import require_tool

    cc = "clang" if sanitize else "gcc"
    require_tool(shutil.which(cc) is not None, what=cc, install=f"sudo apt-get install {cc}")
    sources = [str(C_DIR / "esb.c"), str(C_DIR / "esb_main.c")]
    exe, res = build(
        [cc, *cdriver.CFLAGS, *(cdriver.SANITIZE if sanitize else []), *defines, *sources, "-lm"],
        name=out.name,
    )
    if sanitize and res.returncode != 0 and "sanitizer" in res.stderr.lower():
        pytest.skip("clang's sanitizer runtimes are not installed")
    assert res.returncode == 0, res.stderr
    return [str(exe)]


@pytest.fixture(scope="module")
def esb_c(tmp_path_factory) -> list[str]:
    return _build(tmp_path_factory.mktemp("ctab") / "esb", sanitize=False)


@pytest.fixture(scope="module")
def esb_asan(tmp_path_factory) -> list[str]:
    return _build(tmp_path_factory.mktemp("ctab-asan") / "esb", sanitize=True)


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, **SANITIZER_ENV}
    return subprocess.run(cmd, capture_output=True, timeout=600, env=env, **kw)


def _cell(v: object) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    return str(v)


def write_csv(path: Path, names: list[str], rows: list[list[object]]) -> Path:
    """The records as a CSV with a header, as a user would write them (missing: empty)."""
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(names)
        for r in rows:
            w.writerow([_cell(v) for v in r])
    return path


def c_features(driver: list[str], blob: bytes, rows: Path, tmp: Path) -> np.ndarray:
    """The C featurizer's rows (dense) of the records in ``rows``."""
    (tmp / "m.esb").write_bytes(blob)
    res = _run([*driver, "features", str(tmp / "m.esb"), str(rows)])
    assert res.returncode == 0 and not res.stderr, res.stderr.decode()
    lines = res.stdout.decode().split("\n")[:-1]
    n = struct.unpack_from("<I", blob, 20)[0]
    out = np.zeros((len(lines), n))
    for i, line in enumerate(lines):
        cols = [tuple(item.split(":")) for item in line.split()]
        idx = [int(c) for c, _ in cols]
        assert idx == sorted(set(idx))  # canonical
        out[i, idx] = [float(v) for _, v in cols]
    return out


def c_predict(driver: list[str], blob: bytes, rows: Path, tmp: Path) -> list[str]:
    (tmp / "m.esb").write_bytes(blob)
    res = _run([*driver, "predict", str(tmp / "m.esb"), str(rows)])
    assert res.returncode == 0 and not res.stderr, res.stderr.decode()
    return res.stdout.decode().splitlines()


def _dense(rows: object) -> np.ndarray:
    return rows.toarray() if hasattr(rows, "toarray") else np.asarray(rows, dtype=np.float64)


def _check_table(
    esb_c, tmp: Path, pipe, X_test: np.ndarray, names: list[str], *, quantize: str = "int8"
) -> None:
    """Features within 1e-6 of the transformer's transform and 1e-12 of the numpy runtime
    (on the same CSV), labels equal to the numpy runtime's."""
    from edgesparse import compress
    from edgesparse.data import read_records
    from edgesparse.formats import esb
    from edgesparse.runtime import loads
    from edgesparse.runtime.tabular import tabular_features

    blob = esb.encode(compress(pipe, quantize=quantize))
    model = loads(blob)
    feat = model.ir.featurizer
    order = names if feat.names is None else list(reversed(names))  # the header decides
    cols = [names.index(n) for n in order]
    path = write_csv(tmp / "rows.csv", order, [[r[j] for j in cols] for r in X_test.tolist()])
    records = read_records(path)
    got = c_features(esb_c, blob, path, tmp)
    want = _dense(pipe[0].transform(X_test))
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
    np.testing.assert_allclose(got, _dense(tabular_features(feat, records)), rtol=0, atol=1e-12)
    lines = c_predict(esb_c, blob, path, tmp)
    if model.ir.head == "identity":
        scores = np.array([float(line.split("\t")[1]) for line in lines])
        np.testing.assert_allclose(scores, model.predict(records), rtol=1e-5, atol=1e-4)
    else:
        labels = np.array([int(line.split("\t")[0]) for line in lines])
        assert np.array_equal(labels, np.searchsorted(model.classes_, model.predict(records)))


_NAMES = list(tt._NAMES)


@pytest.mark.parametrize("drop", [None, "first", "if_binary"])
def test_adult_like_features_and_labels(drop, esb_c, tmp_path) -> None:
    X, y = tt.adult_like(1500, seed=0)
    pipe = make_pipeline(tt.adult_transformer(drop=drop), LogisticRegression(max_iter=300))
    pipe.fit(X[:1000], y[:1000])
    _check_table(esb_c, tmp_path, pipe, X[1000:], _NAMES)


def test_adult_like_by_name_float32(esb_c, tmp_path) -> None:
    X, y = tt.adult_like(1200, seed=11)
    pipe = make_pipeline(tt.adult_transformer(), LogisticRegression(max_iter=300))
    pipe.fit(X[:800], y[:800])
    tt._named(pipe, tt._NAMES)
    _check_table(esb_c, tmp_path, pipe, X[800:], _NAMES, quantize="float32")


def test_int_categories_nan_category_and_missing_marker(esb_c, tmp_path) -> None:
    rng = np.random.default_rng(3)
    n = 600
    X = np.empty((n, 4), dtype=object)
    X[:, 0] = rng.integers(0, 6, n).tolist()
    X[:, 1] = rng.choice(["x", "y", "z"], n)
    X[rng.random(n) < 0.1, 1] = np.nan
    X[:, 2] = rng.normal(5, 2, n)
    X[rng.random(n) < 0.1, 2] = -1.0
    X[:, 3] = rng.integers(0, 3, n).astype(float)
    y = (X[:, 0].astype(float) + (X[:, 1] == "x") * 2 + rng.normal(0, 1, n) > 3).astype(int)
    ct = ColumnTransformer(
        [
            ("i", OneHotEncoder(handle_unknown="infrequent_if_exist"), [0, 1]),
            ("m", make_pipeline(SimpleImputer(missing_values=-1.0), MinMaxScaler()), [2]),
            ("f", make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder()), [3]),
        ]
    )
    pipe = make_pipeline(ct, LogisticRegression(max_iter=1000)).fit(X[:400], y[:400])
    test = X[400:].copy()
    test[:5, 0] = 17  # unseen: ignored
    test[5:10, 0] = 2.0  # "2.0" is the int category 2
    _check_table(esb_c, tmp_path, pipe, test, ["a", "b", "c", "d"])


@pytest.mark.parametrize("scaler", [StandardScaler, MaxAbsScaler, MinMaxScaler, RobustScaler])
def test_bundled_table_every_scaler(scaler, esb_c, tmp_path) -> None:
    X, y = tt._bundled(datasets.load_wine, seed=4)
    k = X.shape[1] - 2
    ct = ColumnTransformer(
        [
            ("num", scaler(), list(range(k))),
            (
                "cat",
                make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder()),
                [k, k + 1],
            ),
        ]
    )
    order = np.random.default_rng(0).permutation(len(y))
    tr, te = order[: len(y) // 2], order[len(y) // 2 :]
    pipe = make_pipeline(ct, LogisticRegression(max_iter=5000)).fit(X[tr], y[tr])
    _check_table(esb_c, tmp_path, pipe, X[te], [f"f{j}" for j in range(X.shape[1])])


def test_leading_imputer_regressor_and_wide_one_hot_csr(esb_c, tmp_path) -> None:
    X, y = datasets.load_diabetes(return_X_y=True)
    X = X * 10.0 ** np.random.default_rng(5).uniform(-3, 4, X.shape[1])
    X[np.random.default_rng(6).random(X.shape) < 0.05] = np.nan
    pipe = make_pipeline(SimpleImputer(strategy="mean"), StandardScaler(), Ridge()).fit(X, y)
    _check_table(esb_c, tmp_path, pipe, X[:100].astype(object), [f"x{j}" for j in range(10)])
    rng = np.random.default_rng(8)
    Xw = np.array([[f"id{k}", float(k % 7)] for k in rng.integers(0, 3000, 4000)], dtype=object)
    yw = rng.integers(0, 2, 4000)
    ct = ColumnTransformer(
        [("id", OneHotEncoder(handle_unknown="ignore"), [0])], remainder="passthrough"
    )
    wide = make_pipeline(ct, LogisticRegression(max_iter=200)).fit(Xw, yw)
    _check_table(esb_c, tmp_path / "", wide, Xw[:300], ["id", "v"])


def test_unknown_category_with_error_and_bad_numbers_are_refused(esb_c, tmp_path) -> None:
    from edgesparse import compress
    from edgesparse.formats import esb

    X, y = tt.adult_like(500, seed=10)
    ct = ColumnTransformer(
        [
            ("num", make_pipeline(SimpleImputer(), StandardScaler()), [0, 4]),
            ("cat", OneHotEncoder(), [3]),
        ]
    )
    pipe = make_pipeline(ct, LogisticRegression(max_iter=1000)).fit(X, y)
    tt._named(pipe, tt._NAMES)
    blob = esb.encode(compress(pipe))
    (tmp_path / "m.esb").write_bytes(blob)
    good = ["40", "Private", "1.5", "HS", "40", "0", "c1", "M", "0.001"]
    cases = {
        "unknown": ([*good[:3], "PhD", *good[4:]], "line 3: the record is refused"),
        "number": (["forty", *good[1:]], "line 3: the record is refused"),
        "ragged": (good[:-1], "line 3: 8 cells, but the header names 9 columns"),
    }
    for name, (bad, message) in cases.items():
        p = tmp_path / f"{name}.csv"
        p.write_text(",".join(_NAMES) + "\n" + ",".join(good) + "\n" + ",".join(bad) + "\n")
        res = _run([*esb_c, "predict", str(tmp_path / "m.esb"), str(p)])
        assert res.returncode == 1, name
        assert res.stderr.decode().startswith(f"esb: {message}"), res.stderr
        assert len(res.stdout.decode().splitlines()) == 1
    header_cases = {
        "age,education,salary\n40,HS,1\n": "line 1: unknown column (header column 2)",
        ",".join(_NAMES[1:]) + "\n" + ",".join(good[1:]) + "\n": "line 1: missing column",
        ",".join([*_NAMES, "x"]) + "\n": "line 1: the header has 10 columns",
        "age,age\n1,2\n": "line 1: a column name is repeated",
        "\n\n": "is empty",
        ",".join(_NAMES) + "\n\n": "has a header but no records",
    }
    for text, message in header_cases.items():
        (tmp_path / "h.csv").write_text(text)
        res = _run([*esb_c, "predict", str(tmp_path / "m.esb"), str(tmp_path / "h.csv")])
        assert res.returncode == 1 and message in res.stderr.decode(), res.stderr


# -- CSV records and numbers: the same cells and values as read_records and Python -------------
_TRICKY = [
    ["1_000", "a"],
    [" 12 ", '"b, c"'],
    ["١٢", 'x"y'],
    ["+inf", '"multi\nline"'],
    ["-NaN", '"say ""hi"""'],
    ["1e-320", "\u00a0spaced\u3000"],
    ["  7.", "ü"],
    [".5e+3", ""],
    ["infinity", '""'],
    ["\u00a01.5\u2009", "z"],
    ["1e400", "\u0085"],
    ["0.1", '" quoted "'],
]


def test_csv_cells_and_numbers_match_python(esb_asan, tmp_path) -> None:
    """One numeric and one categorical (ignore) column: the C rows equal the numpy runtime's
    on read_records' cells, whatever the quoting, spaces, digits and line breaks."""
    from edgesparse.data import read_records
    from edgesparse.formats import esb
    from edgesparse.ir import LinearIR
    from edgesparse.ir.tabular import TabularColumn, TabularFeaturizer
    from edgesparse.runtime.tabular import tabular_features

    cats = ("a", "b, c", 'x"y', "multiline", 'say "hi"', "spaced", "ü", "z", "quoted")
    feat = TabularFeaturizer(
        n_inputs=2,
        columns=(
            TabularColumn(source=0, scale=0.5, offset=1.0),
            TabularColumn(source=1, categories=cats, unknown="ignore"),
        ),
        names=("n", "c"),
    )
    ir = LinearIR(
        indptr=np.array([0, 1 + len(cats)]),
        indices=np.arange(1 + len(cats)),
        values=np.linspace(-1, 1, 1 + len(cats)),
        n_features=1 + len(cats),
        bias=np.array([0.0]),
        head="identity",
        featurizer=feat,
    )
    text = "\ufeff\n  \nc,n\n" + "".join(f"{c},{n}\r\n" for n, c in _TRICKY) + "\n"
    path = tmp_path / "t.csv"
    path.write_bytes(text.encode("utf-8"))
    records = read_records(path)
    want = _dense(tabular_features(feat, records))
    got = c_features(esb_asan, esb.encode(ir), path, tmp_path)
    assert got.shape == want.shape
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got, want, rtol=0, atol=0)


def test_numeric_categories_compare_as_numbers(esb_asan, tmp_path) -> None:
    from edgesparse.data import read_records
    from edgesparse.formats import esb
    from edgesparse.ir import LinearIR
    from edgesparse.ir.tabular import TabularColumn, TabularFeaturizer
    from edgesparse.runtime.tabular import tabular_features

    cats = (2, 2.5, -1, float("nan"), 1e20, 9007199254740993, float(2**63), None)
    feat = TabularFeaturizer(
        n_inputs=1,
        columns=(
            TabularColumn(
                source=0, categories=cats, unknown="ignore", impute=True, fill=2.5, missing=-7.0
            ),
        ),
    )
    ir = LinearIR(
        indptr=np.array([0, len(cats)]),
        indices=np.arange(len(cats)),
        values=np.ones(len(cats)),
        n_features=len(cats),
        bias=np.array([0.0]),
        head="identity",
        featurizer=feat,
    )
    cells = [
        "2",
        "2.0",
        "+2_0",
        "02",
        "2.5",
        "-1",
        "-1.0",
        "",
        "nan",
        "100000000000000000000",
        "1e20",
        "9007199254740993",
        "9007199254740992",
        "9223372036854775808",
        "-7",
        "-7.0",
        "None",
        "x",
        "1" * 5000,
        "٢",
        "3",
    ]
    path = tmp_path / "n.csv"
    path.write_text("v\n" + "".join(f"{c}\n" for c in cells))
    want = _dense(tabular_features(feat, read_records(path)))
    got = c_features(esb_asan, esb.encode(ir), path, tmp_path)
    np.testing.assert_array_equal(got, want)


# -- the verifier: the same decision and message as the Python reader ------------------------
def _verify(driver: list[str], blobs: list[bytes], tmp: Path) -> list[str]:
    paths = []
    for i, b in enumerate(blobs):
        (tmp / f"{i}.esb").write_bytes(b)
        paths.append(str(tmp / f"{i}.esb"))
    lines: list[str] = []
    for lo in range(0, len(paths), 400):
        res = _run([*driver, "verify", *paths[lo : lo + 400]])
        err = res.stderr.decode()
        assert "Sanitizer" not in err and "runtime error" not in err, err
        lines += res.stdout.decode().splitlines()
    assert len(lines) == len(blobs)
    return lines


def _python_error(blob: bytes) -> str | None:
    from edgesparse.errors import FormatError
    from edgesparse.formats import esb

    try:
        esb.decode(blob)
    except FormatError as exc:
        return str(exc)
    return None


def test_malformed_tabular_sections_same_messages_as_python(esb_asan, tmp_path) -> None:
    blob, off, size = tt._tab_section()
    sec = blob[off : off + size]
    blobs = [tt._with_section(edit(sec)) for _, edit, _ in tt.TABULAR_CASES]
    lines = _verify(esb_asan, [blob, *blobs], tmp_path)
    assert lines[0] == "OK"
    for b, line in zip(blobs, lines[1:], strict=True):
        expected = _python_error(b)
        assert expected is not None
        assert line.split(" ", 2)[2] == expected, line


def test_mutated_tabular_sections_same_decision_as_python(esb_asan, tmp_path) -> None:
    from tests.test_esb_malformed import reseal

    rng = random.Random(7)
    blob, off, size = tt._tab_section()
    blobs = []
    for _ in range(600):
        b = bytearray(blob)
        for _ in range(rng.randint(1, 3)):
            b[off + rng.randrange(size)] = rng.choice((0, 1, 0x7F, 0x80, 0xFF, rng.randrange(256)))
        blobs.append(reseal(bytes(b)))
    blobs += [tt._with_section(blob[off : off + n]) for n in range(size)]
    blobs += [
        tt._with_section(bytes(rng.randrange(256) for _ in range(n))) for n in range(0, 200, 3)
    ]
    lines = _verify(esb_asan, blobs, tmp_path)
    accepted = 0
    for b, line in zip(blobs, lines, strict=True):
        expected = _python_error(b)
        if expected is None:
            accepted += 1
            assert line == "OK"
        else:
            assert line.startswith("ERR "), f"C accepted what Python rejects: {expected}"
            assert line.split(" ", 2)[2] == expected
    assert accepted > 20


# -- sanitizers, hostile records, the build without the stage ---------------------------------
def test_features_clean_under_sanitizers(esb_asan, tmp_path) -> None:
    from edgesparse import compress
    from edgesparse.data import read_records
    from edgesparse.formats import esb
    from edgesparse.runtime.tabular import tabular_features

    X, y = tt.adult_like(700, seed=2)
    pipe = make_pipeline(tt.adult_transformer(drop="first"), LogisticRegression(max_iter=300))
    pipe.fit(X[:500], y[:500])
    blob = esb.encode(compress(pipe))
    path = write_csv(tmp_path / "r.csv", _NAMES, X[500:].tolist())
    got = c_features(esb_asan, blob, path, tmp_path)
    feat = esb.decode(blob).featurizer
    np.testing.assert_allclose(got, _dense(tabular_features(feat, read_records(path))), atol=0)


def test_hostile_records_get_a_clean_status(esb_asan, tmp_path) -> None:
    blob, _, _ = tt._tab_section()
    (tmp_path / "m.esb").write_bytes(blob)
    cases = {
        "wide": b"x,y,z\n" + b"1," * 999_999 + b"1\n",
        "utf8": b"x,y,z\n1,\xff,a\n",
        "quote": b'x,y,z\n1,2,"a\n',
        "after-quote": b'x,y,z\n1,"2"x,a\n',
        "nul": b"x,y,z\n1,\x002,a\n",
        "wide-header": b",".join(b"c%d" % i for i in range(1_000_000)) + b"\n1\n",
        "long-cell": b"x,y,z\n" + b"1" * 200_000 + b",2,a\n",
    }
    for name, data in cases.items():
        (tmp_path / "h.csv").write_bytes(data)
        res = _run([*esb_asan, "predict", str(tmp_path / "m.esb"), str(tmp_path / "h.csv")])
        err = res.stderr.decode()
        assert res.returncode == 1 and err.startswith("esb: line "), (name, err)
        assert "Sanitizer" not in err and "runtime error" not in err, (name, err)


_WS_PROBE = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "esb.h"

/* argv: blob, max_cell, then cells in threes: each record's status with a workspace of exactly
 * esb_tabular_workspace_size(m, max_cell) bytes (malloc'd: a sanitizer sees any overflow). */
int main(int argc, char **argv)
{
    static unsigned char blob[1 << 16];
    esb_model m;
    FILE *f = fopen(argv[1], "rb");
    size_t n = fread(blob, 1, sizeof blob, f), bytes;
    int i, k;
    void *ws;
    fclose(f);
    if (esb_open(blob, n, &m) != ESB_OK) return 3;
    bytes = esb_tabular_workspace_size(&m, (size_t)atol(argv[2]));
    ws = malloc(bytes);
    for (i = 3; i + 2 < argc; i += 3) {
        esb_cell cells[3];
        esb_tabular_row row;
        float proba[2];
        for (k = 0; k < 3; k++) cells[k].text = argv[i + k], cells[k].len = strlen(argv[i + k]);
        printf("%d %d\n", (int)esb_tabular_features(&m, cells, ws, bytes, &row),
               (int)esb_predict_proba_tabular(&m, cells, ws, bytes, proba));
    }
    free(ws);
    return 0;
}
"""


def test_cells_past_the_workspace_are_refused(esb_asan, tmp_path) -> None:
    src = tmp_path / "probe.c"
    src.write_text(_WS_PROBE)
    exe = tmp_path / "probe"
    res = subprocess.run(
        [
            "clang",
            "-std=c99",
            *SANITIZE,
            f"-I{C_DIR}",
            str(src),
            str(C_DIR / "esb.c"),
            "-lm",
            "-o",
            str(exe),
        ],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr
    blob, _, _ = tt._tab_section()
    (tmp_path / "m.esb").write_bytes(blob)
    args = ["1.5", "q", "a", "", "", "", "1" * 9, "q", "7", "x", "q", "a", "1" * 40, "q", "zz"]
    res = _run([str(exe), str(tmp_path / "m.esb"), "10", *args])
    assert res.returncode == 0, res.stderr.decode()
    assert res.stdout.decode().splitlines() == ["0 0", "0 0", "0 0", "6 6", "1 1"]


def test_a_build_without_the_tabular_stage_refuses_tabular_blobs_by_name(tmp_path) -> None:
    exe = _build(tmp_path / "esb", sanitize=False, defines=("-DESB_NO_TABULAR",))
    from edgesparse.formats import esb

    ir = tt._tab_ir()
    blob, off, _ = tt._tab_section()
    lines = _verify(exe, [blob, esb.encode(ir.replace(featurizer=None))], tmp_path)
    assert lines == [
        f"ERR 4 corrupt .esb: section 'tabular' at offset {off}: a tabular input stage, which "
        "this build of the C runtime leaves out (-DESB_NO_TABULAR); run this model with a full "
        "build or the numpy runtime",
        "OK",
    ]


# -- export-c: a tabular model's C program reads a CSV from stdin --------------------------------
def test_export_c_tabular_model_predicts_like_the_numpy_runtime(tmp_path) -> None:
    from edgesparse import compress
    from edgesparse.data import read_records
    from edgesparse.export_c import export_c
    from edgesparse.formats import esb
    from edgesparse.runtime import loads

    X, y = tt.adult_like(1500, seed=0)
    pipe = make_pipeline(tt.adult_transformer(), LogisticRegression(max_iter=300))
    pipe.fit(X[:1000], y[:1000])
    tt._named(pipe, tt._NAMES)
    blob = tmp_path / "m.esb"
    blob.write_bytes(esb.encode(compress(pipe, quantize="int8")))
    model = loads(blob.read_bytes())
    out = tmp_path / "out"
    export_c(blob, out, name="model")
    order = list(reversed(_NAMES))
    cols = [_NAMES.index(n) for n in order]
    path = write_csv(tmp_path / "r.csv", order, [[r[j] for j in cols] for r in X[1000:].tolist()])
    want = [str(v) for v in model.predict(read_records(path))]
    for streamed in (False, True):
        flags = "-O2 -std=c99 -Wall -Wextra -Werror -pedantic" + (" -DESB_STREAMED" * streamed)
        res = subprocess.run(
            ["make", "-C", str(out), "CC=gcc", f"CFLAGS={flags}"], capture_output=True, text=True
        )
        assert res.returncode == 0, res.stdout + res.stderr
        res = _run([str(out / "model_main")], input=path.read_bytes())
        assert res.returncode == 0, res.stderr.decode()
        labels = [line.split("\t")[0] for line in res.stdout.decode().splitlines()]
        assert labels == want
        (out / "model_main").unlink()
    subprocess.run(["make", "-C", str(out), "CC=gcc"], capture_output=True, check=True)
    good = [_cell(v) for v in X[1000].tolist()]
    sex = _NAMES.index("sex")  # OneHotEncoder(drop="if_binary"): handle_unknown='error'
    unknown = ",".join([*good[:sex], "X", *good[sex + 1 :]])
    cases = {
        f"{unknown}\n1,2\n": "line 3: the record is refused (a cell that is not a number where "
        "the model reads one, a category the encoder refuses, or NaN/Inf features)",
        "1,2\n": "line 3: 2 cells, but the header names 9 columns",
        '"open\n': "line 3: not a valid CSV record (a quote left open, a character after a "
        "closing quote), not UTF-8, or a NUL byte",
        "x" * 70000 + "\n": "line 3: not a valid CSV record, or one longer than 65536 bytes "
        "(build with -DMAX_RECORD_BYTES=N for longer ones)",
    }
    for tail, message in cases.items():
        text = ",".join(_NAMES) + "\n" + ",".join(good) + "\n" + tail
        res = _run([str(out / "model_main")], input=text.encode())
        assert res.returncode == 1, res.stderr.decode()
        assert res.stderr.decode().splitlines() == [message]
        assert len(res.stdout.decode().splitlines()) == 1


_CSV_PROBE = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "esb.h"

/* Each argv file: its records as esb_csv_record splits them, one line each: the cells in hex,
 * separated by ',' ("-" for a record of no cells); "E" for a refused record (then stop). */
int main(int argc, char **argv)
{
    static char text[1 << 16], out[1 << 16];
    static esb_cell cells[4096];
    int f;
    for (f = 1; f < argc; f++) {
        FILE *fp = fopen(argv[f], "rb");
        size_t len = fread(text, 1, sizeof text, fp), at = 0, used, n, i, k;
        fclose(fp);
        while (at < len) {
            if (esb_csv_record(text + at, len - at, &used, out, sizeof out, cells, 4096, &n)) {
                printf("E");
                break;
            }
            if (n == 0) printf("-");
            for (i = 0; i < n; i++) {
                if (i) printf(",");
                for (k = 0; k < cells[i].len; k++) printf("%02x", (unsigned char)cells[i].text[k]);
            }
            printf("|");
            at += used;
        }
        printf("\n");
    }
    return 0;
}
"""


def _python_records(text: str) -> str:
    """read_records' rows of ``text`` (splitlines, csv.reader(strict=True), cells stripped),
    in the probe's notation."""
    out = []
    try:
        for row in csv.reader(text.splitlines(), strict=True):
            cells = [c.strip().encode("utf-8").hex() for c in row]
            out.append(",".join(cells) if row else "-")
    except csv.Error:
        return "|".join(out) + ("|" if out else "") + "E"
    return "".join(r + "|" for r in out)


def test_csv_records_split_as_pythons_csv_module(tmp_path) -> None:
    """Random texts over the characters that matter (quotes, commas, every line break,
    spaces): the same records and cells as read_records, or a refusal where csv refuses."""
    src = tmp_path / "probe.c"
    src.write_text(_CSV_PROBE)
    exe = tmp_path / "probe"
    cmd = ["clang", "-std=c99", *SANITIZE, f"-I{C_DIR}", str(src), str(C_DIR / "esb.c")]
    res = subprocess.run(
        [*cmd, "-lm", "-o", str(exe)],
        capture_output=True,
        text=True,
    )
    if res.returncode != 0 and "sanitizer" in res.stderr.lower():
        pytest.skip("clang's sanitizer runtimes are not installed")
    assert res.returncode == 0, res.stderr
    rng = random.Random(3)
    alphabet = ["a", "b", ",", '"', "\n", "\r", " ", "\t", "é", "\x0b", "\x1c", "\u2028", "\x85"]
    alphabet += ["\u3000", "\x1f"]
    texts = []
    for i in range(1500):
        n = rng.randint(0, 40)
        texts.append("".join(rng.choice(alphabet) for _ in range(n)))
        (tmp_path / f"{i}.csv").write_bytes(texts[-1].encode("utf-8"))
    res = _run([str(exe), *(str(tmp_path / f"{i}.csv") for i in range(len(texts)))])
    assert res.returncode == 0, res.stderr.decode()
    lines = res.stdout.decode().split("\n")[:-1]
    assert len(lines) == len(texts)
    refused = 0
    for text, line in zip(texts, lines, strict=True):
        want = _python_records(text)
        refused += want.endswith("E")
        assert line == want, repr(text)
    assert 100 < refused < 1400
