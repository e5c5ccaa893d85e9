"""The C runtime (edgesparse/runtime/c/) against the Python reference decoder and numpy runtime.

Built here with the system's compilers: host gcc, aarch64 and armhf cross gcc (run under
qemu user-mode emulation), clang with ASan/UBSan and libFuzzer. Oracles: the numpy runtime's
outputs on the same blob (labels equal, scores within the bound stated in esb.h) and the
Python decoder's accept/reject decision and message on malformed blobs.
"""

from __future__ import annotations

import functools
import json
import os
import random
import shutil
import struct
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from click.testing import CliRunner
from sklearn.datasets import (
    load_breast_cancer,
    load_digits,
    load_iris,
    load_linnerud,
    load_wine,
    make_classification,
)
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, Ridge, SGDClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from edgesparse.api import compress
from edgesparse.cli import cli
from edgesparse.errors import FormatError
from edgesparse.export_c import c_runtime_dir, export_c, write_rows
from edgesparse.formats import esb
from edgesparse.formats import factors as esb_factors
from edgesparse.formats import knn as esb_knn
from edgesparse.formats.container import BlobKind, kind_of
from edgesparse.frontends import to_linear_ir as to_ir
from edgesparse.ir import LinearIR, from_dense
from edgesparse.passes.quantize import quantize_int8, raise_rows
from edgesparse.pipeline import CompressOptions, compress_file
from edgesparse.runtime import Model
from tests import cbuild
from tests.cdriver import FUZZ_BUILD, SANITIZER_ENV
from tests.conftest import require_tool
from tests.test_esb_malformed import CASES, KIND, build, exceptions, reseal, split

ROOT = Path(__file__).resolve().parents[1]
C_DIR = c_runtime_dir()
CFLAGS = ["-O2", "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"]
MODELS = ["iris_l1_logreg", "iris_l2_logreg", "iris_sgd_l1", "digits_pipeline", "diabetes_ridge"]
VARIANTS = {
    "int8": {"quantize": "int8"},
    "none": {"quantize": "none"},
    "pruned": {"quantize": "int8", "sparsity": 0.5},
}
# target -> (compiler, extra flags, emulator or None, how to install)
TARGETS = {
    "host": ("gcc", [], None, "sudo apt-get install gcc"),
    "aarch64": (
        "aarch64-linux-gnu-gcc",
        ["-static"],
        "qemu-aarch64-static",
        "sudo apt-get install gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user-static",
    ),
    "armhf": (
        "arm-linux-gnueabihf-gcc",
        ["-static"],
        "qemu-arm-static",
        "sudo apt-get install gcc-arm-linux-gnueabihf libc6-dev-armhf-cross qemu-user-static",
    ),
}


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, **kw)


@functools.cache
def _clang_sanitizers(build_dir: str) -> bool:
    """clang is here and links ASan/UBSan/libFuzzer programs: the runtimes are a separate
    Debian package (libclang-rt-dev), so clang on PATH alone is not enough."""
    if shutil.which("clang") is None:
        return False
    src = Path(build_dir) / "probe_sanitizers.c"
    src.write_text(
        "#include <stddef.h>\n#include <stdint.h>\n"
        "int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; return (int)n * 0; }\n"
    )
    flags = ["-fsanitize=fuzzer,address,undefined", str(src), "-o", str(src.with_suffix(""))]
    return _run(["clang", *flags]).returncode == 0


def _require_clang_sanitizers(build_dir: str) -> None:
    require_tool(
        _clang_sanitizers(str(build_dir)),
        what="clang with its sanitizer and libFuzzer runtimes",
        install="sudo apt-get install clang libclang-rt-dev",
    )


@functools.cache
def _driver(target: str, build_dir: str) -> list[str]:
    cc, extra, emulator, install = TARGETS[target]
    require_tool(shutil.which(cc) is not None, what=cc, install=install)
    if emulator:
        require_tool(shutil.which(emulator) is not None, what=emulator, install=install)
    sources = [str(C_DIR / "esb.c"), str(C_DIR / "esb_main.c")]
    exe, res = cbuild.build([cc, *CFLAGS, *extra, *sources, "-lm"], name=f"esb-{target}")
    assert res.returncode == 0, res.stderr
    return [emulator, str(exe)] if emulator else [str(exe)]


@pytest.fixture(scope="session")
def build_dir(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("cbuild"))


@pytest.fixture(params=list(TARGETS))
def driver(request, build_dir) -> list[str]:
    return _driver(request.param, build_dir)


@pytest.fixture(scope="session")
def host_driver(build_dir) -> list[str]:
    return _driver("host", build_dir)


# ------------------------------------------------------------------------------------------
# Oracle helpers
# ------------------------------------------------------------------------------------------
def score_bound(ir: LinearIR, X: np.ndarray) -> np.ndarray:
    """The bound of esb.h: (k + 4) * 2^-23 * (sum |w_i x_i| + |b|), per row and output."""
    x32 = np.asarray(X, dtype=np.float32).astype(np.float64)
    W = ir.to_dense()
    k = np.diff(ir.indptr)
    return (k + 4) * 2.0**-23 * (np.abs(x32) @ np.abs(W).T + np.abs(ir.bias))


# Memory modes of the driver: the fastest layout's workspace (dense or transposed), the
# minimal one (4 * nnz: dense, else the column list), none (streamed).
MODES = {"fast": [], "min": ["--min-workspace"], "stream": ["--stream"]}
# Each layout built whatever the model qualifies for (esb_use_layout), in its exact bytes.
C_LAYOUTS = ("streamed", "columns", "dense", "transposed")
FORCED = {layout: ["--layout", layout] for layout in C_LAYOUTS}
DRIVER_ARGS = {**MODES, **FORCED}


def run_predict(driver: list[str], blob: Path, rows: Path, *, mode: str) -> list[list[str]]:
    res = _run([*driver, "predict", str(blob), str(rows), *DRIVER_ARGS[mode]])
    assert res.returncode == 0, res.stderr
    return [line.split("\t") for line in res.stdout.splitlines()]


def assert_parity(model: Model, X: np.ndarray, lines: list[list[str]]) -> None:
    """Labels equal, scores within the esb.h bound, probabilities within 1e-5 + that bound."""
    ir = model.ir
    assert len(lines) == X.shape[0]
    scores = np.array([[float(v) for v in ln[1].split()] for ln in lines])
    ref = model.decision_function(X).reshape(X.shape[0], -1)
    bound = score_bound(ir, X)
    assert np.all(np.abs(scores - ref) <= bound), np.max(np.abs(scores - ref) - bound)
    if ir.is_classifier:
        k = np.array([int(ln[0]) for ln in lines])
        np.testing.assert_array_equal(model.classes_[k], model.predict(X))
    else:
        assert all(ln[0] == "-1" for ln in lines)
    if ir.has_proba:
        proba = np.array([[float(v) for v in ln[2].split()] for ln in lines])
        tol = 1e-5 + bound.max()
        np.testing.assert_allclose(proba, model.predict_proba(X), rtol=0, atol=tol)
        np.testing.assert_allclose(proba.sum(axis=1), 1, atol=1e-5)


def rows_files(tmp_path: Path, X: np.ndarray) -> tuple[Path, Path]:
    dense, csr = tmp_path / "dense.bin", tmp_path / "csr.bin"
    write_rows(dense, X)
    write_rows(csr, sp.csr_matrix(X))
    return dense, csr


# ------------------------------------------------------------------------------------------
# Parity: every bundled model, three variants, dense and CSR rows, both memory modes, 3 CPUs
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", MODELS)
def test_bundled_models_match_numpy_runtime(name: str, driver: list[str], tmp_path: Path) -> None:
    X = np.load(ROOT / "models" / f"{name}.test.npz")["X"]
    dense, csr = rows_files(tmp_path, X)
    for variant, opts in VARIANTS.items():
        blob = tmp_path / f"{name}-{variant}.esb"
        compress_file(CompressOptions(source=ROOT / "models" / f"{name}.pkl", output=blob, **opts))
        model = Model(esb.read(blob))
        for rows in (dense, csr):
            for mode in MODES:
                assert_parity(model, X, run_predict(driver, blob, rows, mode=mode))


def _synthetic_irs() -> dict[str, LinearIR]:
    """One IR per head / label kind / value dtype / output shape the bundled models lack."""
    rng = np.random.default_rng(6)

    def weights(n_out: int, n_feat: int = 40, density: float = 0.3) -> np.ndarray:
        w = rng.normal(size=(n_out, n_feat)) * (rng.random((n_out, n_feat)) < density)
        w[:, 0] = -1.0  # feature 0 drives every score down: the all-zero probability rows
        return w

    def int8(ir: LinearIR, per_row: bool = True) -> LinearIR:
        w = ir.real_values()
        rows = ir.row_ids()
        if per_row:
            s = np.array([np.abs(w[rows == r]).max() / 127 for r in range(ir.n_outputs)])
            q = np.round(w / s[rows])
        else:
            s = np.array([np.abs(w).max() / 127])
            q = np.round(w / s[0])
        keep = q != 0
        indptr = np.concatenate([[0], np.cumsum(np.bincount(rows[keep], minlength=ir.n_outputs))])
        return ir.replace(
            indptr=indptr,
            indices=ir.indices[keep],
            values=q[keep].astype(np.int8),
            scales=s.astype(np.float32),
        )

    def f32(ir: LinearIR) -> LinearIR:
        return ir.replace(values=ir.values.astype(np.float32))

    def pow2(ir: LinearIR, granularity: str = "row") -> LinearIR:
        # int8 with column exponents: columns (but the first) spread over 10^-3 .. 10^3 first
        w = ir.to_dense() * 10.0 ** np.r_[0, rng.integers(-3, 4, ir.n_features - 1)]
        out = quantize_int8(ir.replace(**_csr(w)), granularity=granularity, columns="pow2")
        assert out.col_exponents is not None and np.ptp(out.col_exponents) >= 10
        return out

    b = rng.normal(size=4)
    return {
        "hard-multi-int": int8(
            from_dense(weights(4), bias=b, head="hard", classes=np.array([10, 20, 30, 40]))
        ),
        "hard-binary-str": f32(
            from_dense(weights(1), bias=b[:1], head="hard", classes=np.array(["no", "yes"]))
        ),
        "logistic-binary-float": from_dense(
            weights(1), bias=b[:1], head="logistic", classes=np.array([-1.0, 1.0])
        ),
        "logistic-ovr-tensor-int8": int8(
            from_dense(weights(3), bias=b[:3], head="logistic", classes=np.arange(3)),
            per_row=False,
        ),
        "softmax-unicode": f32(
            from_dense(
                weights(4), bias=b, head="softmax", classes=np.array(["é", "日本", "a b", "z"])
            )
        ),
        "huber-binary": int8(
            from_dense(weights(1), bias=b[:1], head="modified_huber", classes=np.array([0, 1]))
        ),
        "huber-multi": from_dense(
            weights(3), bias=b[:3], head="modified_huber", classes=np.array([-5, 0, 5])
        ),
        "identity-multi": f32(from_dense(weights(3), bias=b[:3], head="identity", squeeze=False)),
        "identity-single-f64": from_dense(weights(1), bias=b[:1], head="identity"),
        "hard-multi-int-pow2": pow2(
            from_dense(weights(4), bias=b, head="hard", classes=np.array([10, 20, 30, 40]))
        ),
        "logistic-ovr-tensor-int8-pow2": pow2(
            from_dense(weights(3), bias=b[:3], head="logistic", classes=np.arange(3)), "tensor"
        ),
        "logistic-binary-int8-pow2": pow2(
            from_dense(weights(1), bias=b[:1], head="logistic", classes=np.array([0, 1]))
        ),
    }


def _csr(w: np.ndarray) -> dict:
    """The CSR fields of a dense weight matrix (for LinearIR.replace)."""
    rows, cols = np.nonzero(w)
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=w.shape[0]))])
    return {"indptr": indptr, "indices": cols.astype(np.int32), "values": w[rows, cols]}


SYNTHETIC = _synthetic_irs()


def synthetic_rows() -> np.ndarray:
    rng = np.random.default_rng(7)
    X = rng.normal(size=(24, 40)) * (rng.random((24, 40)) < 0.5)
    X[0] = 0.0  # empty CSR row
    X[1, 0] = 500.0  # every score far below 0: sigmoid underflows, huber clips at -1
    X[2, 0] = 3.0
    return X


@pytest.mark.parametrize("case", list(SYNTHETIC))
def test_every_head_and_label_kind_matches(case: str, driver: list[str], tmp_path: Path) -> None:
    ir = SYNTHETIC[case]
    X = synthetic_rows()
    dense, csr = rows_files(tmp_path, X)
    blob = tmp_path / "m.esb"
    esb.write(ir, blob)
    model = Model(esb.read(blob))
    for rows in (dense, csr):
        for mode in MODES:
            assert_parity(model, X, run_predict(driver, blob, rows, mode=mode))
    if ir.head == "modified_huber" and ir.n_outputs > 1:
        # the row of all-zero one-vs-rest probabilities really is the uniform special case
        np.testing.assert_allclose(model.predict_proba(X[1:2]), 1 / ir.n_outputs)
    if ir.head == "logistic" and ir.n_outputs > 1:
        # every score far below 0 (float32 sigmoids all 0): scikit-learn's float64 answer
        oracle = SGDClassifier(loss="log_loss")
        oracle.coef_, oracle.intercept_, oracle.classes_ = ir.to_dense(), ir.bias, ir.classes
        expected = oracle.predict_proba(X[1:2])
        assert np.all(oracle.decision_function(X[1:2]) < -104) and np.ptp(expected) > 0.5
        np.testing.assert_allclose(model.predict_proba(X[1:2]), expected, rtol=0, atol=1e-5)


LAYOUTS = [
    (cols, idx)
    for cols in ("all", *esb.COLUMN_ENCODINGS.values())
    for idx in esb.INDEX_ENCODINGS.values()
]


@pytest.mark.parametrize("case", ["hard-multi-int", "hard-multi-int-pow2"])
@pytest.mark.parametrize(("cols", "idx"), LAYOUTS, ids=[f"{c}-{i}" for c, i in LAYOUTS])
def test_every_index_layout_matches(
    cols: str, idx: str, case: str, driver: list[str], tmp_path: Path
) -> None:
    ir = SYNTHETIC[case]
    X = synthetic_rows()
    dense, csr = rows_files(tmp_path, X)
    blob = tmp_path / "m.esb"
    esb.write(ir, blob, columns=cols, indices=idx)
    info = esb.inspect_file(blob)
    assert info["index_layout"] == f"columns={cols}, indices={idx}"
    model = Model(esb.read(blob))
    assert_parity(model, X, run_predict(driver, blob, dense, mode="stream"))
    assert_parity(model, X, run_predict(driver, blob, dense, mode="fast"))
    assert_parity(model, X, run_predict(driver, blob, csr, mode="min"))
    assert_parity(model, X, run_predict(driver, blob, csr, mode="fast"))


def wide_ir(*, n_out: int, dtype: str) -> LinearIR:
    """A text-like model: many features, few used (a `columns` section), sparse rows; more
    outputs than the transposed kernel's block of 64 when n_out > 64. dtype "int8-pow2":
    columns spread over 10^-3 .. 10^3, quantized with column exponents."""
    rng = np.random.default_rng(61)
    w = rng.normal(size=(n_out, 3000)) * (rng.random((n_out, 3000)) < 0.004)
    w[:, 7] = 0.0  # a column no output uses, hit by the rows below
    ir = from_dense(w, bias=rng.normal(size=n_out), head="hard", classes=np.arange(n_out))
    if dtype == "int8-pow2":
        w *= 10.0 ** rng.integers(-3, 4, 3000)
        ir = quantize_int8(ir.replace(**_csr(w)), columns="pow2")
        assert ir.col_exponents is not None
    elif dtype == "int8":
        s = np.abs(w).max(axis=1) / 127
        q = np.round(w / s[:, None]).astype(np.int8)
        ir = from_dense(q, bias=ir.bias, head="hard", classes=np.arange(n_out))
        ir = ir.replace(values=ir.values.astype(np.int8), scales=s.astype(np.float32))
    return ir


def wide_rows(n_rows: int = 30) -> np.ndarray:
    rng = np.random.default_rng(62)
    X = rng.normal(size=(n_rows, 3000)) * (rng.random((n_rows, 3000)) < 0.01)
    X[:, 7] = 1.0
    X[0] = 0.0
    return X


def bench_json(driver: list[str], blob: Path, rows: Path, mode: str) -> dict:
    res = _run([*driver, "bench", str(blob), str(rows), "3", "1", *DRIVER_ARGS[mode]])
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


@pytest.mark.parametrize(
    ("n_out", "dtype", "cols"),
    [
        (5, "int8", "eliasfano"),
        (70, "int8", "varint"),
        (70, "float64", "all"),
        (70, "int8-pow2", "bitmap"),
        (5, "int8-pow2", "all"),
    ],
)
def test_wide_sparse_models_every_mode(
    n_out: int, dtype: str, cols: str, driver: list[str], tmp_path: Path
) -> None:
    ir = wide_ir(n_out=n_out, dtype=dtype)
    X = wide_rows()
    dense, csr = rows_files(tmp_path, X)
    blob = tmp_path / "wide.esb"
    esb.write(ir, blob, columns=cols)
    model = Model(esb.read(blob))
    assert esb.inspect_file(blob)["index_layout"].startswith(f"columns={cols},")
    for rows in (dense, csr):
        for mode in MODES:
            assert_parity(model, X, run_predict(driver, blob, rows, mode=mode))


def outlier_ir(seed: int = 63) -> LinearIR:
    """A wide text-like model: 3 x 2000, sparse, 40 columns ~1000x larger than the rest;
    data-free pow2 exponents (no input_stats) keep only the outliers' own: 'exponents'
    encoding 1 (exceptions to the common exponent)."""
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(3, 2000)) * (rng.random((3, 2000)) < 0.3)
    big = rng.choice(2000, 40, replace=False)
    w[:, big] *= 1000.0
    w[:, 11] = 0.0  # a column no output uses
    ir = from_dense(w, bias=rng.normal(size=3), head="softmax", classes=np.arange(3))
    assert ir.input_stats is None
    return quantize_int8(ir, columns="pow2")


def outlier_rows() -> np.ndarray:
    rng = np.random.default_rng(64)
    X = rng.normal(size=(25, 2000)) * (rng.random((25, 2000)) < 0.2)
    X[:, 11] = 1.0
    X[0] = 0.0
    return X


def _exponents_encoding(blob: bytes) -> tuple[int, int]:
    """(encoding, k: exceptions, or bytes for encoding 0) of a blob's 'exponents' section."""
    (sec,) = [x for x in split(blob)[1] if x.kind == KIND["exponents"]]
    return sec.enc, struct.unpack_from("<I", sec.data)[0] if sec.enc == 1 else len(sec.data)


@pytest.mark.parametrize("cols", ["all", "varint", "bitmap"])
def test_exception_exponents_every_layout(cols: str, driver: list[str], tmp_path: Path) -> None:
    """Encoding 1 of the column exponents: the C runtime's predictions equal the numpy
    runtime's in every layout (forced, and the memory modes), dense and CSR rows."""
    ir = outlier_ir()
    blob = tmp_path / "outliers.esb"
    esb.write(ir, blob, columns=cols)
    enc, k = _exponents_encoding(blob.read_bytes())
    assert enc == 1 and 40 <= k < 200, (enc, k)
    X = outlier_rows()
    dense, csr = rows_files(tmp_path, X)
    model = Model(esb.read(blob))
    np.testing.assert_array_equal(model.ir.col_exponents, ir.col_exponents)
    for rows in (dense, csr):
        for mode in DRIVER_ARGS:
            assert_parity(model, X, run_predict(driver, blob, rows, mode=mode))


def layout_bytes(ir: LinearIR, n_columns: int) -> dict[str, int]:
    """esb.h's workspace bytes of each layout; E = 1 with column exponents."""
    e = int(ir.col_exponents is not None)
    n_out, n_feat, nnz = ir.n_outputs, ir.n_features, ir.nnz
    return {
        "streamed": 0,
        "columns": (4 + e) * nnz,
        "dense": (n_out + int(ir.wide_rows.sum())) * n_feat + 4 * e * n_feat
        if ir.is_quantized
        else 0,
        "transposed": 8 * nnz + 8 * n_columns + 4,
    }


def test_layout_choice_and_exact_workspace_bytes(host_driver: list[str], tmp_path: Path) -> None:
    """esb.h's rule: int8 with n_outputs * n_features <= 4 * nnz -> dense in
    max(4 * nnz, (n_outputs + W) * n_features + 4 * E * n_features) bytes (W: int16 rows of a
    mixed-width model); else transposed in
    8 * nnz + 8 * n_columns + 4 bytes, or the column list in (4 + E) * nnz. Every layout can
    be forced (esb_use_layout) in its own bytes, and all compute the same predictions. For CSR
    rows in the transposed layout the driver's workspace_bytes also counts its CSR column index
    (4 * n_features)."""
    digits_pkl = ROOT / "models" / "digits_pipeline.pkl"
    blobs = {name: tmp_path / f"{name}.esb" for name in ("digits", "digits-e0", "digits64")}
    compress_file(CompressOptions(source=digits_pkl, output=blobs["digits"], quantize="int8"))
    compress_file(
        CompressOptions(
            source=digits_pkl, output=blobs["digits-e0"], columns="none", quantize="int8"
        )
    )
    compress_file(CompressOptions(source=digits_pkl, output=blobs["digits64"], quantize="none"))
    blobs["diabetes"] = tmp_path / "diabetes.esb"
    compress_file(
        CompressOptions(
            source=ROOT / "models" / "diabetes_ridge.pkl", output=blobs["diabetes"], quantize="int8"
        )
    )
    for name, dtype in (("wide", "int8"), ("wide-e", "int8-pow2")):
        blobs[name] = tmp_path / f"{name}.esb"
        esb.write(wide_ir(n_out=70, dtype=dtype), blobs[name], columns="eliasfano")
    for name, exps in (("raised", "pow2"), ("raised-e0", "none")):  # 13 features, 1 row int16
        blobs[name] = tmp_path / f"{name}.esb"
        esb.write(raised_case("wine-pipeline", exps)[0], blobs[name])
    X = np.load(ROOT / "models" / "digits_pipeline.test.npz")["X"][:5]
    rows = {
        "digits": tmp_path / "d.bin",
        "diabetes": tmp_path / "b.bin",
        "wide": tmp_path / "w.bin",
    }
    write_rows(rows["digits"], X)
    write_rows(rows["diabetes"], np.load(ROOT / "models" / "diabetes_ridge.test.npz")["X"][:5])
    write_rows(rows["wide"], sp.csr_matrix(wide_rows(5)))
    rows["raised"] = tmp_path / "r.bin"
    write_rows(rows["raised"], raised_case("wine-pipeline", "none")[1][:5])
    expected = {
        "digits": ("dense", "dense"),
        "digits-e0": ("dense", "dense"),
        "digits64": ("transposed", "columns"),
        "diabetes": ("dense", "dense"),
        "wide": ("transposed", "columns"),
        "wide-e": ("transposed", "columns"),
        "raised": ("dense", "dense"),
        "raised-e0": ("dense", "dense"),
    }
    for name, (fast, small) in expected.items():
        blob = blobs[name]
        ir = esb.read(blob)
        with_exps = ("digits", "diabetes", "wide-e", "raised")
        assert (ir.col_exponents is not None) == (name in with_exps), name
        sizes = layout_bytes(ir, esb.inspect_file(blob)["used_columns"])
        r = rows[name.split("-")[0].removesuffix("64")]
        got = {mode: bench_json(host_driver, blob, r, mode) for mode in MODES}
        assert (got["fast"]["layout"], got["min"]["layout"]) == (fast, small), name
        assert got["stream"]["layout"] == "streamed" and got["stream"]["workspace_bytes"] == 0
        smallest = max(4 * ir.nnz, sizes["dense"]) if small == "dense" else sizes["columns"]
        assert got["min"]["workspace_bytes"] == smallest, name
        # CSR rows in the transposed layout: plus the driver's CSR column index, 4 per feature
        index = 4 * ir.n_features if r == rows["wide"] else 0
        fast_bytes = smallest if fast == "dense" else sizes["transposed"] + index
        assert got["fast"]["workspace_bytes"] == fast_bytes, name
        assert got["fast"]["mode"] == got["min"]["mode"] == "decoded"  # the harness contract
        for layout in C_LAYOUTS:
            if layout == "dense" and not ir.is_quantized:
                res = _run([*host_driver, "predict", str(blob), str(r), "--layout", "dense"])
                assert res.returncode != 0 and "cannot set up the dense layout" in res.stderr
                continue
            got[layout] = bench_json(host_driver, blob, r, layout)
            assert got[layout]["layout"] == layout
            extra = index if layout == "transposed" else 0
            assert got[layout]["workspace_bytes"] == sizes[layout] + extra, (name, layout)
        # every mode and layout computes the same predictions (a regressor's: to rounding)
        sums = np.array([g["checksum"] for g in got.values()])
        if ir.is_classifier:
            assert np.all(sums == sums[0]), name
        else:
            np.testing.assert_allclose(sums, sums[0], rtol=1e-6)


def test_invalid_input_rows_are_refused(host_driver: list[str], tmp_path: Path) -> None:
    blob = tmp_path / "m.esb"
    esb.write(SYNTHETIC["hard-multi-int"], blob)
    X = synthetic_rows()
    ok_rows = tmp_path / "ok.bin"
    write_rows(ok_rows, X)
    # the dense layout checks a dense row only when a score comes out NaN/Inf: cover it
    assert bench_json(host_driver, blob, ok_rows, "fast")["layout"] == "dense"
    for bad in (np.nan, np.inf, -np.inf):
        X[3, 5] = bad
        rows = tmp_path / "bad.bin"
        write_rows(rows, X)
        for mode in MODES:
            res = _run([*host_driver, "predict", str(blob), str(rows), *MODES[mode]])
            assert res.returncode == 1, (bad, mode)
            assert "row 3: invalid input row (NaN/Inf" in res.stderr
            # bench names the row too, also when no warm-up call reached it
            cmd = [*host_driver, "bench", str(blob), str(rows), "10", "0", *MODES[mode]]
            res = _run(cmd)
            assert res.returncode == 1 and res.stdout == "", (bad, mode)
            assert "row 3: invalid input row (NaN/Inf" in res.stderr
    # Near float's limit: q * x overflows where (scale * q) * x does not (row 3: the dense
    # layout recomputes it weight by weight); a genuine overflow (row 4) is an error in both
    # runtimes, not a prediction.
    X[3] = 0.0
    X[3, 0] = 3e38
    for rows_x in (X[:4], sp.csr_matrix(X[:4])):
        write_rows(rows, rows_x)
        for mode in MODES:
            lines = run_predict(host_driver, blob, rows, mode=mode)
            assert_parity(Model(esb.read(blob)), X[3:4], lines[3:4])
    X[4] = 0.0
    X[4, 0] = 3e38
    X[4, 1:] = np.sign(SYNTHETIC["hard-multi-int"].to_dense()[0, 1:]) * -3e38
    for rows_x in (X[:5], sp.csr_matrix(X[:5])):
        write_rows(rows, rows_x)
        for mode in MODES:
            res = _run([*host_driver, "predict", str(blob), str(rows), *MODES[mode]])
            assert res.returncode == 1, mode
            assert "row 4: invalid input row (NaN/Inf, CSR" in res.stderr
            assert "or a score overflows)" in res.stderr
    with pytest.raises(ValueError, match="makes a score overflow"):
        Model(esb.read(blob)).predict(X[4:5])
    X[3, 5] = np.nan
    # the numpy runtime refuses the same row
    with pytest.raises(ValueError, match="NaN or infinity"):
        Model(esb.read(blob)).predict(X[3:4])


def test_driver_refuses_bad_arguments(host_driver: list[str], tmp_path: Path) -> None:
    blob, rows = tmp_path / "m.esb", tmp_path / "rows.bin"
    esb.write(SYNTHETIC["hard-multi-int"], blob)
    write_rows(rows, synthetic_rows())
    bench = [*host_driver, "bench", str(blob), str(rows)]
    for argv, message in (
        ([*bench, "10", "1", "--bacth", "4"], "unknown option or missing value: --bacth"),
        ([*bench, "10", "1", "--batch"], "unknown option or missing value: --batch"),
        ([*bench, "10", "1", "--batch", "4x"], '--batch must be a whole number, got "4x"'),
        ([*bench, "ten", "1"], 'RUNS must be a whole number, got "ten"'),
        ([*bench, "10", ""], 'WARMUP must be a whole number, got ""'),
        ([*host_driver, "predict", str(blob), str(rows), "--fast"], "unknown option"),
    ):
        res = _run(argv)
        assert res.returncode == 2 and message in res.stderr, (argv, res.stderr)
        assert res.stdout == ""
    assert _run([*bench, "10", "1", "--batch", "4"]).returncode == 0


# ------------------------------------------------------------------------------------------
# Column exponents: mixed-scale models, scikit-learn as the oracle, every C layout
# ------------------------------------------------------------------------------------------
def _mixed_scale(n_classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A classification table whose columns are in units of 10^-3 .. 10^4 (random powers of
    ten), each shifted by up to 50 of its own units."""
    rng = np.random.default_rng(seed)
    X, y = make_classification(
        n_samples=3000,
        n_features=12,
        n_informative=8,
        n_redundant=2,
        n_classes=n_classes,
        random_state=seed,
    )
    unit = 10.0 ** rng.integers(-3, 5, X.shape[1])
    return X * unit + unit * rng.uniform(-50, 50, X.shape[1]), y


@functools.cache
def _oracle(case: str) -> tuple[object, np.ndarray]:
    """A fitted scikit-learn model and the rows it is compared on (held out, except wine's)."""
    if case == "wine-raw-logreg":
        X, y = load_wine(return_X_y=True)
        # Unscaled, lbfgs stops at an iterate that differs between scipy releases and CPUs (one
        # row of 178 flipped under the lowest versions); Newton reaches the optimum itself.
        est = LogisticRegression(solver="newton-cholesky", tol=1e-10, max_iter=1000)
        return est.fit(X, y), X
    X, y = _mixed_scale(3 if case == "mixed-scale-pipeline-3" else 2, seed=3)
    est = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    return est.fit(X[:2000], y[:2000]), X[2000:]


@pytest.mark.parametrize(
    "case", ["mixed-scale-pipeline-3", "mixed-scale-pipeline-binary", "wine-raw-logreg"]
)
def test_mixed_scale_models_match_numpy_and_sklearn_in_every_layout(
    case: str, driver: list[str], tmp_path: Path
) -> None:
    est, X = _oracle(case)
    ir = compress(est)  # the default picks column exponents for these
    assert ir.col_exponents is not None and np.ptp(ir.col_exponents) >= 5
    blob = tmp_path / "m.esb"
    esb.write(ir, blob)
    model = Model(esb.read(blob))
    sk = est.predict(X)
    assert np.mean(model.predict(X) == sk) >= 0.995
    dense, csr = rows_files(tmp_path, X)
    for rows in (dense, csr):
        for mode in (*MODES, *FORCED):
            lines = run_predict(driver, blob, rows, mode=mode)
            assert_parity(model, X, lines)  # labels equal to the numpy runtime's
            labels = model.classes_[[int(ln[0]) for ln in lines]]
            assert np.mean(labels == sk) >= 0.995, mode


# ------------------------------------------------------------------------------------------
# Raised rows: int8 models with a few rows at 16 bits ('values' encoding 1, mixed widths)
# ------------------------------------------------------------------------------------------
# case -> the rows raised to int16 (quantize.raise_rows), on scikit-learn's bundled tables
RAISED = {
    "wine-pipeline": [1],
    "breast-cancer-binary": [0],  # one output row, and it is the wide one
    "linnerud-ridge": [0, 2],  # a multi-output regressor
    "iris-l1": [0, 1, 2],  # row 1 is empty: raising it keeps it int8 (an empty row is not wide)
    "digits-l1": [0, 4, 8, 9],  # sparse, 10 rows, row 8 empty
}


@functools.cache
def raised_case(case: str, columns: str) -> tuple[LinearIR, np.ndarray]:
    """(quantize_int8(columns=columns) of a fitted model with RAISED[case] raised to int16,
    the rows to compare on)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        if case == "wine-pipeline":
            X, y = load_wine(return_X_y=True)
            est = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)).fit(X, y)
        elif case == "breast-cancer-binary":
            X, y = load_breast_cancer(return_X_y=True)
            est = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)).fit(X, y)
        elif case == "linnerud-ridge":
            X, y = load_linnerud(return_X_y=True)
            est = make_pipeline(StandardScaler(), Ridge()).fit(X, y)
        else:
            X, y = (load_iris if case == "iris-l1" else load_digits)(return_X_y=True)
            c = 0.03 if case == "iris-l1" else 0.001
            est = LogisticRegression(l1_ratio=1, solver="saga", C=c, max_iter=3000).fit(X, y)
    ir = to_ir(est)
    return raise_rows(ir, quantize_int8(ir, columns=columns), RAISED[case]), X


def write_raised(case: str, exps: str, blob: Path, **kw: str) -> Model:
    """Write raised_case(case, exps) to blob (esb.write's keywords: kw); its numpy model."""
    ir, _ = raised_case(case, exps)
    esb.write(ir, blob, **kw)
    (sec,) = [x for x in split(blob.read_bytes())[1] if x.kind == KIND["values"]]
    assert sec.enc == 1  # mixed widths
    model = Model(esb.read(blob))
    wide = model.ir.wide_rows
    np.testing.assert_array_equal(wide, ir.wide_rows)
    counts = np.diff(ir.indptr)
    assert wide.any() and not np.any(wide & (counts == 0))
    assert set(np.flatnonzero(wide)) == {r for r in RAISED[case] if counts[r]}
    if exps == "none":  # pow2 drops exponents that are all equal (iris-l1)
        assert ir.col_exponents is None
    return model


@pytest.mark.parametrize("columns", ["none", "pow2"])
@pytest.mark.parametrize("case", list(RAISED))
def test_raised_rows_match_numpy_in_every_layout(
    case: str, columns: str, host_driver: list[str], tmp_path: Path
) -> None:
    """Every memory mode and forced layout (dense included: its int16 rows), dense and CSR
    rows: the C runtime's scores, labels and probabilities are the numpy runtime's."""
    blob = tmp_path / "m.esb"
    model = write_raised(case, columns, blob)
    X = raised_case(case, columns)[1]
    dense, csr = rows_files(tmp_path, X)
    for rows in (dense, csr):
        for mode in DRIVER_ARGS:
            assert_parity(model, X, run_predict(host_driver, blob, rows, mode=mode))


@pytest.mark.parametrize(("cols", "idx"), LAYOUTS, ids=[f"{c}-{i}" for c, i in LAYOUTS])
def test_raised_rows_every_index_encoding(
    cols: str, idx: str, host_driver: list[str], tmp_path: Path
) -> None:
    blob = tmp_path / "m.esb"
    model = write_raised("digits-l1", "pow2", blob, columns=cols, indices=idx)
    assert esb.inspect_file(blob)["index_layout"] == f"columns={cols}, indices={idx}"
    X = raised_case("digits-l1", "pow2")[1][::4]
    dense, csr = rows_files(tmp_path, X)
    for rows, modes in ((dense, ("stream", "fast", "columns")), (csr, ("stream", "transposed"))):
        for mode in modes:
            assert_parity(model, X, run_predict(host_driver, blob, rows, mode=mode))


def test_raised_rows_on_every_target(driver: list[str], tmp_path: Path) -> None:
    """The same mixed-width model on the host and the emulated aarch64 and armhf builds."""
    blob = tmp_path / "m.esb"
    model = write_raised("wine-pipeline", "pow2", blob)
    X = raised_case("wine-pipeline", "pow2")[1]
    dense, csr = rows_files(tmp_path, X)
    for rows in (dense, csr):
        for mode in DRIVER_ARGS:
            assert_parity(model, X, run_predict(driver, blob, rows, mode=mode))


def overflowing_raised_ir() -> LinearIR:
    """2 x 5, row 0 wide with a tiny scale: q * x overflows float where scale * q * x does not
    (the dense layout's exact fallback), row 1 int8."""
    q = np.array([[30000, -20000, 0, 32767, 1], [5, 0, -127, 0, 9]], np.int16)
    rows, cols = np.nonzero(q)
    return LinearIR(
        indptr=np.array([0, 4, 7]),
        indices=cols.astype(np.int32),
        values=q[rows, cols],
        n_features=5,
        bias=np.array([0.5, -0.25]),
        head="identity",
        squeeze=False,
        scales=np.array([1e-30, 0.01], np.float32),
    )


def test_raised_rows_dense_layout_overflow_falls_back(host_driver: list[str], tmp_path: Path):
    ir = overflowing_raised_ir()
    assert ir.wide_rows.tolist() == [True, False]
    blob = tmp_path / "m.esb"
    esb.write(ir, blob)
    model = Model(esb.read(blob))
    rng = np.random.default_rng(3)
    X = rng.normal(size=(12, 5)) * 10.0 ** rng.integers(-2, 3, (12, 5))
    X[:6, :4] *= 1e34  # 32767 * 1e34 overflows float; 1e-30 * 32767 * 1e34 does not
    dense, csr = rows_files(tmp_path, X)
    for rows in (dense, csr):
        for mode in DRIVER_ARGS:
            assert_parity(model, X, run_predict(host_driver, blob, rows, mode=mode))


# ------------------------------------------------------------------------------------------
# The verifier: malformed blobs under ASan + UBSan, message and decision parity with Python
# ------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def asan_driver(build_dir) -> list[str]:
    _require_clang_sanitizers(build_dir)
    flags = ["-g", "-O1", "-fsanitize=address,undefined", "-fno-sanitize-recover=all"]
    sources = [str(C_DIR / "esb.c"), str(C_DIR / "esb_main.c")]
    exe, res = cbuild.build(["clang", *CFLAGS, *flags, *sources, "-lm"], name="esb-asan")
    assert res.returncode == 0, res.stderr
    return [str(exe)]


def verify_all(driver: list[str], blobs: list[bytes], tmp_path: Path) -> list[str]:
    """`esb verify` on every blob (exact-size buffers); returns one line per blob."""
    paths = []
    for i, b in enumerate(blobs):
        p = tmp_path / f"{i}.esb"
        p.write_bytes(b)
        paths.append(str(p))
    lines: list[str] = []
    env = {**os.environ, **SANITIZER_ENV}
    for lo in range(0, len(paths), 500):
        res = _run([*driver, "verify", *paths[lo : lo + 500]], env=env)
        assert "Sanitizer" not in res.stderr and "runtime error" not in res.stderr, res.stderr
        assert res.returncode in (0, 1), res.stderr
        lines += res.stdout.splitlines()
    assert len(lines) == len(blobs)
    return lines


def python_error(blob: bytes) -> str | None:
    """The message of the reader `esb verify` (and edgesparse.load) dispatches to by version:
    a mutated version field can make a linear blob a recommender one."""
    decode = {BlobKind.ESB_KNN: esb_knn.decode, BlobKind.ESB_FACTORS: esb_factors.decode}.get(
        kind_of(blob), esb.decode
    )
    try:
        decode(blob)
    except FormatError as exc:
        return str(exc)
    return None


# Cases of the hardening corpus whose message differs only in the JSON parser's own wording.
FORMATTING_ONLY = {"provenance-not-json", "provenance-deep-nesting", "provenance-non-string"}


def test_hardening_corpus_rejected_with_same_messages(asan_driver, tmp_path: Path) -> None:
    blobs = [fn() for _, fn, _ in CASES]
    lines = verify_all(asan_driver, blobs, tmp_path)
    for case, blob, (_, _, message), line in zip(
        [c[0] for c in CASES], blobs, CASES, lines, strict=True
    ):
        assert line.startswith("ERR "), f"{case}: C accepted it"
        c_message = line.split(" ", 2)[2]
        if kind_of(blob) in (BlobKind.ESB_KNN, BlobKind.ESB_FACTORS):
            # `esb verify` dispatches a version-2 (3) blob to the k-NN (factor) verifier, as
            # edgesparse.load does (esb_open's own refusal: tests/test_c_knn.py, test_c_factors.py)
            assert c_message == python_error(blob), case
        elif case in FORMATTING_ONLY:
            # same field, same place: everything up to the detail
            assert c_message.split(":")[:2] == message.split(":")[:2], (case, c_message)
        else:
            assert c_message == message, case


def _base_blobs() -> list[bytes]:
    out = []
    for cols, idx in LAYOUTS:
        out.append(esb.encode(SYNTHETIC["hard-multi-int"], columns=cols, indices=idx))
    for case in ("softmax-unicode", "logistic-binary-float", "identity-single-f64"):
        out.append(esb.encode(SYNTHETIC[case]))
    # column exponents, one per feature and one per listed column, per-row and per-tensor
    out.append(esb.encode(SYNTHETIC["hard-multi-int-pow2"], columns="all", indices="varint"))
    out.append(esb.encode(SYNTHETIC["hard-multi-int-pow2"], columns="varint", indices="raw"))
    out.append(esb.encode(SYNTHETIC["logistic-ovr-tensor-int8-pow2"], columns="eliasfano"))
    # ... and as exceptions to a common exponent ('exponents' encoding 1)
    out.append(esb.encode(SYNTHETIC["logistic-binary-int8-pow2"], columns="all"))
    out.append(esb.encode(outlier_ir(), columns="varint"))
    # mixed int8/int16 rows ('values' encoding 1), with and without exponents, empty rows
    out.append(esb.encode(raised_case("iris-l1", "none")[0], columns="varint", indices="bitmap"))
    out.append(esb.encode(raised_case("wine-pipeline", "pow2")[0]))
    out.append(esb.encode(raised_case("linnerud-ridge", "pow2")[0], indices="eliasfano"))
    out.append(esb.encode(overflowing_raised_ir()))
    return out


def _mutations(seed: int) -> tuple[list[bytes], list[bytes]]:
    """(always malformed, maybe valid): truncations and bad table entries; resealed edits."""
    rnd = random.Random(seed)
    bad, maybe = [], []
    for blob in _base_blobs():
        n_sec = struct.unpack_from("<I", blob, 12)[0]
        bad += [blob[:n] for n in rnd.sample(range(len(blob)), min(60, len(blob)))]
        for i in range(n_sec):
            at = 64 + 16 * i
            off, length = struct.unpack_from("<II", blob, at + 4)
            for new_off, new_len in (
                (off + 8, length),
                (off - 8, length),
                (0, length),
                (2**32 - 8, length),
                (off, length + 1 + 8 * (i + 1 == n_sec)),
                (off, 2**32 - 1),
                (len(blob), 0),
            ):
                b = bytearray(blob)
                struct.pack_into("<II", b, at + 4, new_off % 2**32, new_len)
                bad.append(reseal(bytes(b)))
        for _ in range(120):
            b = bytearray(blob)
            for _ in range(rnd.choice((1, 1, 2, 3))):
                pos = rnd.randrange(len(b))
                if rnd.random() < 0.5:
                    b[pos] ^= 1 << rnd.randrange(8)
                else:
                    b[pos] = rnd.choice((0, 1, 0x7F, 0x80, 0xFF, rnd.randrange(256)))
            maybe.append(reseal(bytes(b)))
    return bad, maybe


def _listed_exponents(enc: int, data: bytes, n_cols: int) -> tuple[np.ndarray, int]:
    """An 'exponents' section as one exponent per listed column (encoding 1: every listed
    column not an exception takes the default, unused ones too), and the default (0 for
    encoding 0)."""
    if enc == 0:
        return np.frombuffer(data, np.int8).copy(), 0
    k, default = struct.unpack_from("<Ib", data)
    out = np.full(n_cols, default, np.int8)
    gaps, at = [], 5 + k
    while at < len(data):
        g = shift = 0
        while True:
            g |= (data[at] & 0x7F) << shift
            shift += 7
            at += 1
            if data[at - 1] < 0x80:
                break
        gaps.append(g)
    out[np.cumsum(np.array(gaps, np.int64) + 1) - 1] = np.frombuffer(data[5 : 5 + k], np.int8)
    return out, default


def _with_exponents(enc: int, listed: np.ndarray, default: int, *, only: np.ndarray) -> bytes:
    """Encode per-listed exponents back (encoding 1: every position in ``only`` whose exponent
    differs from the default is an exception)."""
    if enc == 0:
        return listed.astype(np.int8).tobytes()
    pos = only[listed[only] != default]
    return exceptions(
        default, [int(e) for e in listed[pos]], [int(g) for g in np.diff(pos, prepend=-1) - 1]
    )


def _exponent_blobs() -> list[bytes]:
    """Valid blobs with column exponents in every index layout, over several windows of the C
    verifier's unused-column search (4096 listed columns), and the same with nonzero
    exponents (encoding 0) or exceptions (encoding 1) put on unused columns: in each window,
    at its edges, and two at once. Encoding 1 is what these data-free exponents use; each
    blob is also rewritten in the other encoding, so both are covered."""
    rng = np.random.default_rng(15)
    out = []
    sizes = [(1, 9000, 0.05), (3, 12289, 0.02), (7, 20000, 0.004), (2, 30000, 0.01)]
    sizes += [(int(rng.integers(1, 12)), int(rng.integers(4000, 40000)), 0.01) for _ in range(4)]
    for n_out, n_feat, density in sizes:
        w = rng.normal(size=(n_out, n_feat)) * (rng.random((n_out, n_feat)) < density)
        w *= 10.0 ** rng.integers(-3, 4, n_feat)
        ir = from_dense(w, bias=np.zeros(n_out), head="identity", squeeze=n_out == 1)
        ir = quantize_int8(ir, columns="pow2")
        assert ir.col_exponents is not None
        unused = np.setdiff1d(np.arange(n_feat), ir.indices)
        picks = {int(unused[0]), int(unused[-1])}
        for edge in (4095, 4096, 8191, 8192, 12288):  # spread over the windows
            picks.add(int(unused[np.searchsorted(unused, min(edge, n_feat - 1))]))
        for cols, idx in LAYOUTS:
            blob = esb.encode(ir, columns=cols, indices=idx)
            out.append(blob)
            if cols != "all":
                continue  # with a column list, every listed column is used
            header, secs = split(blob)
            (sec,) = [x for x in secs if x.kind == KIND["exponents"]]
            listed, default = _listed_exponents(sec.enc, sec.data, n_feat)
            used = np.unique(ir.indices)
            listed[np.setdiff1d(np.arange(n_feat), used)] = 0
            np.testing.assert_array_equal(listed, ir.col_exponents)
            for enc in (sec.enc, 1 - sec.enc):
                if enc != sec.enc:  # the same model in the other encoding
                    mode = np.bincount(listed[used].astype(np.int64) + 128).argmax()
                    sec.enc, default = enc, (int(mode) - 128 if enc == 1 else 0)
                    sec.data = _with_exponents(enc, listed, default, only=used)
                    out.append(build(header, secs))
                base = listed.copy()
                for group in [[p] for p in sorted(picks)] + [sorted(picks)[-2:]]:
                    data = base.copy()
                    for p in group:
                        data[p] = default + int(rng.choice([1, 5, -3, 63, -126 - default]))
                    data = np.clip(data.astype(np.int64), -126, 127).astype(np.int8)
                    data[[p for p in group if data[p] == default]] = default + 1
                    sec.data = _with_exponents(enc, data, default, only=np.union1d(used, group))
                    out.append(build(header, secs))
    return out


def test_exponent_checks_same_as_python_in_every_index_layout(asan_driver, tmp_path) -> None:
    blobs = _exponent_blobs()
    lines = verify_all(asan_driver, blobs, tmp_path)
    rejected = 0
    for blob, line in zip(blobs, lines, strict=True):
        expected = python_error(blob)
        if expected is None:
            assert line == "OK", line
        else:
            rejected += 1
            assert "has no weights but a" in expected
            assert line.split(" ", 2)[2] == expected
    assert rejected >= 2 * 3 * 4 * 6


def test_mutated_blobs_same_decision_as_python_under_sanitizers(asan_driver, tmp_path) -> None:
    bad, maybe = _mutations(seed=6)
    lines = verify_all(asan_driver, bad + maybe, tmp_path)
    for blob, line in zip(bad, lines[: len(bad)], strict=True):
        assert python_error(blob) is not None
        assert line.startswith("ERR "), "C accepted a malformed blob"
    accepted = 0
    for blob, line in zip(maybe, lines[len(bad) :], strict=True):
        expected = python_error(blob)
        if expected is None:
            accepted += 1
            assert line == "OK"
        else:
            assert line.startswith("ERR "), f"C accepted what Python rejects: {expected}"
            # the same check fires: the field named up to the first detail is the same
            assert line.split(" ", 2)[2].split(":")[:2] == expected.split(":")[:2], (
                line,
                expected,
            )
    assert accepted > 20  # edits of provenance text and values keep some blobs valid


def test_kernels_clean_under_sanitizers_in_every_layout(asan_driver, tmp_path: Path) -> None:
    """Dense, transposed (one and two output blocks, float64), column-list and streamed
    kernels on dense and CSR rows, with exact-size buffers, under ASan + UBSan; with column
    exponents too, and every layout forced on every model (dense: int8 ones)."""
    blobs = []
    wide = [(5, "int8"), (70, "int8"), (70, "float64"), (70, "int8-pow2"), (5, "int8-pow2")]
    for i, (n_out, dtype) in enumerate(wide):
        blobs.append((tmp_path / f"w{i}.esb", wide_rows(8)))
        esb.write(wide_ir(n_out=n_out, dtype=dtype), blobs[-1][0], columns="eliasfano")
    digits = tmp_path / "digits.esb"
    compress_file(
        CompressOptions(
            source=ROOT / "models" / "digits_pipeline.pkl", output=digits, quantize="int8"
        )
    )
    blobs.append((digits, np.load(ROOT / "models" / "digits_pipeline.test.npz")["X"][:20]))
    blobs.append((tmp_path / "pow2.esb", synthetic_rows()))
    esb.write(SYNTHETIC["logistic-binary-int8-pow2"], blobs[-1][0], columns="varint")
    for case, cols in (("digits-l1", "bitmap"), ("breast-cancer-binary", "all")):
        ir, X = raised_case(case, "pow2")
        blobs.append((tmp_path / f"{case}.esb", X[:10]))
        esb.write(ir, blobs[-1][0], columns=cols)
    env = {**os.environ, **SANITIZER_ENV}
    for blob, X in blobs:
        model = Model(esb.read(blob))
        modes = [m for m in DRIVER_ARGS if m != "dense" or model.ir.is_quantized]
        for rows_x in (X, sp.csr_matrix(X)):
            rows = tmp_path / "rows.bin"
            write_rows(rows, rows_x)
            for mode in modes:
                res = _run(
                    [*asan_driver, "predict", str(blob), str(rows), *DRIVER_ARGS[mode]], env=env
                )
                assert "Sanitizer" not in res.stderr and "runtime error" not in res.stderr
                assert res.returncode == 0, res.stderr
                assert_parity(model, X, [ln.split("\t") for ln in res.stdout.splitlines()])


def test_libfuzzer_target_short_run(build_dir, tmp_path: Path) -> None:
    _require_clang_sanitizers(build_dir)
    exe, res = cbuild.build(FUZZ_BUILD, name="fuzz_esb_open")
    assert res.returncode == 0, res.stderr
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i, blob in enumerate(_base_blobs()):
        (corpus / f"seed{i}.esb").write_bytes(blob)
    res = _run([str(exe), "-seed=1", "-runs=20000", "-max_len=4096", str(corpus)])
    assert res.returncode == 0, res.stderr[-3000:]
    assert "Done 20000 runs" in res.stderr


# ------------------------------------------------------------------------------------------
# export-c: generated folder builds with -Werror and prints what the Python runtime predicts
# ------------------------------------------------------------------------------------------
def _build_export(out: Path) -> Path:
    """The export folder built by its own Makefile (make, gcc -Werror), as its README says."""
    require_tool(shutil.which("make") is not None, what="make", install="sudo apt-get install make")
    res = _run(["make", "-C", str(out), "CC=gcc", f"CFLAGS={' '.join(CFLAGS)}"])
    assert res.returncode == 0, res.stdout + res.stderr
    return out / "model_main"


def _build_export_streamed(out: Path) -> Path:
    """The export folder's program built with -DESB_STREAMED, as its README says: the same
    command as its Makefile's, except that esb.c, which that define does not reach (main.c
    alone reads it) and which is the runtime's own file byte for byte, comes as one object
    compiled once per session with the same flags (tests/cbuild.runtime_object)."""
    obj = cbuild.runtime_object("gcc", CFLAGS)
    reads_it = {f.name for f in out.glob("*.[ch]") if "ESB_STREAMED" in f.read_text()}
    assert reads_it == {"main.c"}
    exe = out / "model_main_streamed"
    flags = [*CFLAGS, "-DESB_STREAMED"]
    res = _run(["gcc", *flags, "-o", str(exe), "main.c", str(obj), "model_data.c", "-lm"], cwd=out)
    assert res.returncode == 0, res.stdout + res.stderr
    return exe


def _check_main_output(stdout: str, model: Model, X: np.ndarray) -> None:
    lines = stdout.splitlines()
    assert len(lines) == X.shape[0]
    if not model.ir.is_classifier:
        got = np.array([[float(v) for v in ln.split()] for ln in lines])
        ref = model.predict(X).reshape(X.shape[0], -1)
        assert np.all(np.abs(got - ref) <= score_bound(model.ir, X))
        return
    labels = [ln.split("\t")[0] for ln in lines]
    assert labels == [str(v) for v in model.predict(X).tolist()]
    if model.ir.has_proba:
        proba = np.array([[float(v) for v in ln.split("\t")[1].split()] for ln in lines])
        np.testing.assert_allclose(proba, model.predict_proba(X), rtol=0, atol=1e-5)


def _stdin_rows(X: np.ndarray) -> str:
    # repr of float32 round-trips through scanf("%f")
    return "\n".join(" ".join(repr(float(v)) for v in row.astype(np.float32)) for row in X) + "\n"


@pytest.mark.parametrize(
    "case",
    [
        "digits_pipeline",
        "softmax-unicode",
        "identity-multi",
        "outlier-exponents",
        "raised-wine-pipeline",
        "raised-digits-l1",
        "raised-linnerud-ridge",
    ],
)
def test_export_c_builds_and_predicts_like_python(case: str, tmp_path: Path) -> None:
    blob = tmp_path / "m.esb"
    if case.startswith("raised-"):  # mixed int8/int16 rows ('values' encoding 1)
        write_raised(case.removeprefix("raised-"), "pow2", blob)
        X = raised_case(case.removeprefix("raised-"), "pow2")[1]
    elif case == "outlier-exponents":  # 'exponents' encoding 1
        esb.write(outlier_ir(), blob)
        assert _exponents_encoding(blob.read_bytes())[0] == 1
        X = outlier_rows()
    elif case in SYNTHETIC:
        esb.write(SYNTHETIC[case], blob)
        X = synthetic_rows()
    else:
        compress_file(
            CompressOptions(source=ROOT / "models" / f"{case}.pkl", output=blob, quantize="int8")
        )
        X = np.load(ROOT / "models" / f"{case}.test.npz")["X"]
    model = Model(esb.read(blob))
    out = tmp_path / "out"
    written = export_c(blob, out, name="model")
    assert sorted(p.name for p in written) == sorted(
        [
            *("esb.h", "esb.c", "esb_knn.c", "esb_factors.c", "esb_text.c", "esb_unicode.h"),
            "esb_tabular.c",
            *("model_data.h", "model_data.c", "main.c", "Makefile", "README.txt"),
        ]
    )
    # byte-identical runtime, and the array holds the blob
    assert (out / "esb.c").read_bytes() == (C_DIR / "esb.c").read_bytes()
    assert f"model_esb_len = {blob.stat().st_size};" in (out / "model_data.c").read_text()
    for exe in (_build_export(out), _build_export_streamed(out)):
        res = _run([str(exe)], input=_stdin_rows(X))
        assert res.returncode == 0, res.stderr
        _check_main_output(res.stdout, model, X)


@pytest.fixture(scope="module")
def digits_main(tmp_path_factory) -> tuple[Path, Model, np.ndarray]:
    """The export-c program of digits_pipeline (64 features), its numpy model and test rows."""
    root = tmp_path_factory.mktemp("digits-main")
    blob = root / "m.esb"
    compress_file(
        CompressOptions(
            source=ROOT / "models" / "digits_pipeline.pkl", output=blob, quantize="int8"
        )
    )
    export_c(blob, root / "out", name="model")
    exe = _build_export(root / "out")
    return exe, Model(esb.read(blob)), np.load(ROOT / "models" / "digits_pipeline.test.npz")["X"]


def _rows_text(X: np.ndarray, sep: str, *, eol: str = "\n") -> str:
    return "".join(sep.join(repr(float(v)) for v in r.astype(np.float32)) + eol for r in X)


def test_export_c_accepts_comma_separated_rows(digits_main) -> None:
    exe, model, X = digits_main
    X = X[:40]
    plain = _run([str(exe)], input=_rows_text(X, " "))
    assert plain.returncode == 0, plain.stderr
    _check_main_output(plain.stdout, model, X)
    # CSV as spreadsheets write it (CRLF), with spaces after commas, and tabs
    for text in (_rows_text(X, ",", eol="\r\n"), _rows_text(X, ", "), _rows_text(X, "\t")):
        res = _run([str(exe)], input=text)
        assert res.returncode == 0, res.stderr
        assert res.stdout == plain.stdout and res.stderr == ""
    # the last line may lack its newline
    res = _run([str(exe)], input=_rows_text(X, ",").rstrip("\n"))
    assert res.returncode == 0 and res.stdout == plain.stdout


def _line(values: list[str], sep: str = " ") -> str:
    return sep.join(values) + "\n"


ONES = ["1"] * 64
# case -> (the bad line's text, what its message says); it is line 3, after two good rows
BAD_LINES = {
    "too-few": (_line(ONES[:12]), "expected 64 values, got 12"),
    "too-many": (_line([*ONES, "2", "3"]), "expected 64 values, got 66"),
    "empty": ("\n", "empty line; expected 64 values"),
    "blank": (" \t\r\n", "empty line; expected 64 values"),
    "not-a-number": (_line(["1"] * 5 + ["abc"] + ONES[6:]), 'value 6 "abc" is not a number'),
    "header": (_line([f"pixel{i}" for i in range(64)], ","), 'value 1 "pixel0" is not a number'),
    "semicolons": (_line(ONES, ";"), "separate values with spaces, tabs or commas"),
    "number-then-junk": (_line(["1.5x", *ONES[1:]]), 'value 1 "1.5x" is not a number'),
    "nul-byte": (_line(["1\x00", *ONES[1:]]), 'value 1 "1?" is not a number'),
    "nan": (_line([*ONES[:9], "nan", *ONES[10:]]), 'value 10 "nan" is not finite'),
    "inf": (_line(["-inf", *ONES[1:]]), 'value 1 "-inf" is not finite'),
    "infinity": (_line([*ONES[:63], "Infinity"]), 'value 64 "Infinity" is not finite'),
    "overflow": (_line(["1e39", *ONES[1:]]), 'value 1 "1e39" is beyond float\'s range'),
    "double-comma": ("1,," + ",".join(ONES[2:]) + "\n", "value 2 is empty"),
    "leading-comma": ("," + ",".join(ONES) + "\n", "value 1 is empty"),
    "trailing-comma": (",".join(ONES) + ",\n", "the line ends with a comma"),
    "overlong-value": (_line(["1" * 5000, *ONES[1:]]), "value 1 is longer than 127 characters"),
    "overlong-line": (_line(ONES * 1000), "expected 64 values, got 64000"),
}


@pytest.mark.parametrize("case", list(BAD_LINES))
def test_export_c_bad_line_is_named_and_fails(case: str, digits_main) -> None:
    exe, model, X = digits_main
    bad, message = BAD_LINES[case]
    text = _rows_text(X[:2], " ") + bad + _rows_text(X[2:4], " ")
    res = _run([str(exe)], input=text)
    assert res.returncode == 1
    # one message, naming the line
    assert len(res.stderr.splitlines()) == 1, res.stderr
    assert res.stderr.startswith("line 3: ") and message in res.stderr, res.stderr
    # output stops at the bad line: what came before is predicted, nothing after
    _check_main_output(res.stdout, model, X[:2])


def test_export_c_reports_every_bad_line_then_stops(digits_main) -> None:
    exe, model, X = digits_main
    good = _rows_text(X[:1], " ")
    text = good + _line(ONES[:3]) + good + _line(["x", *ONES[1:]]) + good
    res = _run([str(exe)], input=text)
    assert res.returncode == 1
    lines = res.stderr.splitlines()
    assert lines == [
        "line 2: expected 64 values, got 3",
        'line 4: value 1 "x" is not a number (separate values with spaces, tabs or commas)',
    ]
    _check_main_output(res.stdout, model, X[:1])
    # endless garbage: the first 20 bad lines are reported, then it gives up
    res = _run([str(exe)], input="x\n" * 1000)
    assert res.returncode == 1 and res.stdout == ""
    lines = res.stderr.splitlines()
    assert [ln.split(":")[0] for ln in lines[:-1]] == [f"line {i}" for i in range(1, 21)]
    assert lines[-1] == "stopping after 20 bad lines"
    # no input at all is no error: nothing to predict
    res = _run([str(exe)], input="")
    assert (res.returncode, res.stdout, res.stderr) == (0, "", "")


def test_export_c_input_parsing_clean_under_sanitizers(digits_main, tmp_path: Path) -> None:
    require_tool(
        shutil.which("clang") is not None, what="clang", install="sudo apt-get install clang"
    )
    exe, _model, X = digits_main
    out = exe.parent
    asan = tmp_path / "main-asan"
    flags = ["-g", "-O1", "-fsanitize=address,undefined", "-fno-sanitize-recover=all"]
    sources = ["main.c", "esb.c", "model_data.c"]
    res = _run(["clang", *CFLAGS, *flags, *sources, "-lm", "-o", str(asan)], cwd=out)
    assert res.returncode == 0, res.stderr
    random_bytes = bytes(random.Random(7).randrange(256) for _ in range(20000))
    inputs = [_rows_text(X[:5], ","), *(bad for bad, _ in BAD_LINES.values())]
    for data in [*(t.encode() for t in inputs), random_bytes]:
        res = subprocess.run([str(asan)], input=data, capture_output=True, timeout=120)
        err = res.stderr.decode("utf-8", "replace")
        assert "Sanitizer" not in err and "runtime error" not in err, err
        assert res.returncode in (0, 1), err


def test_export_c_cli_and_errors(tmp_path: Path) -> None:
    blob = tmp_path / "iris.esb"
    compress_file(
        CompressOptions(source=ROOT / "models" / "iris_l2_logreg.pkl", output=blob, quantize="int8")
    )
    runner = CliRunner()
    res = runner.invoke(cli, ["export-c", str(blob), "-o", str(tmp_path / "c"), "--name", "iris"])
    assert res.exit_code == 0, res.output
    assert "model_data.c" in res.output and "make -C" in res.output
    assert "iris_esb" in (tmp_path / "c" / "model_data.h").read_text()
    res = runner.invoke(cli, ["export-c", str(blob), "-o", str(tmp_path / "d"), "--name", "9x"])
    assert res.exit_code == 1 and "not a C identifier" in res.output
    damaged = tmp_path / "bad.esb"
    data = bytearray(blob.read_bytes())
    data[-1] ^= 0xFF
    damaged.write_bytes(bytes(data))
    res = runner.invoke(cli, ["export-c", str(damaged), "-o", str(tmp_path / "e")])
    assert res.exit_code == 1 and "checksum mismatch" in res.output
    assert not (tmp_path / "e").exists()


_WORKSPACE_PROBE = r"""
#include <stdio.h>
#include "esb.h"
#include "model_data.h"
static int32_t ws[(MODEL_WORKSPACE_BYTES + 3) / 4];
int main(void)
{
    esb_model m;
    if (esb_open(model_esb, model_esb_len, &m) != ESB_OK) return 2;
    if (esb_use_workspace(&m, ws, sizeof ws) != ESB_OK) return 3;
    printf("%zu %s\n", esb_workspace_size_fast(&m), esb_layout_name(&m));
    return 0;
}
"""


@pytest.mark.parametrize(
    "case",
    ["digits", "wide-int8", "wide-float32", "wide-int8-pow2", "raised-wine", "raised-digits"],
)
def test_export_c_workspace_is_the_fastest_layout(case: str, tmp_path: Path) -> None:
    # Oracle: the C runtime's own esb_workspace_size_fast and the layout it then picks.
    require_tool(shutil.which("gcc") is not None, what="gcc", install="sudo apt-get install gcc")
    blob = tmp_path / "m.esb"
    if case == "digits":
        compress_file(
            CompressOptions(
                source=ROOT / "models" / "digits_pipeline.pkl", output=blob, quantize="int8"
            )
        )
        expected = "dense"
    elif case == "raised-wine":  # dense, with one int16 row
        write_raised("wine-pipeline", "pow2", blob)
        expected = "dense"
    elif case == "raised-digits":  # 2.8 % of the weights stored
        write_raised("digits-l1", "none", blob)
        expected = "transposed"
    else:
        ir = wide_ir(n_out=5, dtype=case.removeprefix("wide-"))
        esb.write(ir, blob, columns="eliasfano")
        expected = "transposed"
    out = tmp_path / "out"
    export_c(blob, out, name="model")
    (out / "probe.c").write_text(_WORKSPACE_PROBE)
    exe = tmp_path / "probe"
    obj = cbuild.runtime_object("gcc", CFLAGS)  # esb.c, compiled once per session
    cmd = ["gcc", *CFLAGS, "-o", str(exe), "probe.c", str(obj), "model_data.c", "-lm"]
    res = _run(cmd, cwd=out)
    assert res.returncode == 0, res.stderr
    res = _run([str(exe)])
    assert res.returncode == 0, res.stderr
    size, layout = res.stdout.split()
    header = (out / "model_data.h").read_text()
    assert f"#define MODEL_WORKSPACE_BYTES {size}u" in header
    assert layout == expected and f"({expected})" in header


def test_fidelity_suite_in_c_matches_the_numpy_runtime(host_driver: list[str], tmp_path: Path):
    """Every model of the fidelity suite (tests/fidelity_suite.py), as the default writes it
    (int8, int16 rows where raised, column exponents), run by the C driver on its held-out
    rows: the numpy runtime's labels on every row and scores within the esb.h bound, so the C
    runtime meets the suite's bar exactly where .esb does."""
    from tests import fidelity_suite as fs

    for name in fs.case_names():
        case, ir = fs.case(name), fs.default_compressed(name)
        blob = tmp_path / "m.esb"
        esb.write(ir, blob)
        rows = tmp_path / "rows.bin"
        write_rows(rows, case.X_test)
        assert_parity(
            Model(esb.read(blob)), case.X_test, run_predict(host_driver, blob, rows, mode="fast")
        )
