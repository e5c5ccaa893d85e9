"""The C runtime's batch calls (esb_decision_batch, esb_predict_batch, esb_predict_proba_batch).

Oracles: the one-row calls on the same blob and layout (the batch calls promise the same bits:
the driver's `predict` prints every score with %.9g, which round-trips a float, so equal text
is equal bits), and the numpy runtime (labels, scores within the esb.h bound). The driver's
`predict` takes the batch calls for dense rows, so every parity test in test_c_runtime.py
(bundled models, fidelity suite, every layout and value encoding, ASan/UBSan) runs them too;
here `--one-row` and `--pad` compare the two paths directly, and a small C program checks the
API's edges (0 and 1 rows, strides, NULLs, refused rows and *n_done).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from edgesparse.export_c import c_runtime_dir, export_c, write_rows
from edgesparse.formats import esb
from edgesparse.ir import from_dense
from edgesparse.passes.quantize import quantize_int8, raise_rows
from edgesparse.pipeline import CompressOptions, compress_file
from edgesparse.runtime import Model
from tests import cbuild
from tests.cdriver import SANITIZER_ENV
from tests.conftest import require_tool
from tests.test_c_runtime import (
    CFLAGS,
    DRIVER_ARGS,
    MODELS,
    RAISED,
    SYNTHETIC,
    VARIANTS,
    assert_parity,
    outlier_ir,
    outlier_rows,
    overflowing_raised_ir,
    raised_case,
    synthetic_rows,
    wide_ir,
    wide_rows,
)

ROOT = Path(__file__).resolve().parents[1]
C_DIR = c_runtime_dir()


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, **kw)


@pytest.fixture(scope="module")
def esb_exe() -> str:
    sources = [str(C_DIR / "esb.c"), str(C_DIR / "esb_main.c")]
    exe, res = cbuild.build(["gcc", *CFLAGS, *sources, "-lm"], name="esb")
    assert res.returncode == 0, res.stderr
    return str(exe)


@pytest.fixture(scope="module")
def esb_exe_4rows() -> str:
    """The driver without the x86 AVX kernels (-DESB_NO_AVX): every CPU's 4-row path."""
    sources = [str(C_DIR / "esb.c"), str(C_DIR / "esb_main.c")]
    exe, res = cbuild.build(["gcc", *CFLAGS, "-DESB_NO_AVX", *sources, "-lm"], name="esb")
    assert res.returncode == 0, res.stderr
    return str(exe)


@pytest.fixture(scope="module")
def esb_exe_plain() -> str:
    """The driver with plain C in place of the vector extension (-DESB_NO_VECTOR_EXT): what
    other compilers build."""
    sources = [str(C_DIR / "esb.c"), str(C_DIR / "esb_main.c")]
    exe, res = cbuild.build(["gcc", *CFLAGS, "-DESB_NO_VECTOR_EXT", *sources, "-lm"], name="esb")
    assert res.returncode == 0, res.stderr
    return str(exe)


def _predict(exe: str, blob: Path, rows: Path, mode: str, *extra: str):
    return _run([exe, "predict", str(blob), str(rows), *DRIVER_ARGS[mode], *extra])


def assert_batch_is_one_row(exe: str, blob: Path, X: np.ndarray, tmp_path: Path) -> None:
    """In every layout the model can have: batch output (plain and with a padded stride whose
    padding is NaN; for CSR rows also without the CSR column index, batch and one-row) is the
    one-row output, byte for byte, and so is the exit status and the message of a refused row;
    where it succeeds it matches the numpy runtime."""
    rows = tmp_path / "rows.bin"
    write_rows(rows, X)
    model = Model(esb.read(blob))
    for mode in DRIVER_ARGS:
        if mode == "dense" and not model.ir.is_quantized:
            continue
        one = _predict(exe, blob, rows, mode, "--one-row")
        # CSR rows: the driver's CSR column index (transposed layout) against no index
        no_index = (["--no-csr-index"], ["--one-row", "--no-csr-index"]) if sp.issparse(X) else ()
        for extra in ([], ["--pad", "3"], *no_index):
            got = _predict(exe, blob, rows, mode, *extra)
            assert (got.returncode, got.stdout, got.stderr) == (
                one.returncode,
                one.stdout,
                one.stderr,
            ), (mode, extra)
        if one.returncode == 0:
            Xd = X.toarray() if sp.issparse(X) else X  # the numpy runtime's dense results
            assert_parity(model, Xd, [ln.split("\t") for ln in got.stdout.splitlines()])


@pytest.mark.parametrize("name", MODELS)
def test_bundled_models_batch_same_bits_as_one_row(name: str, esb_exe: str, tmp_path: Path):
    X = np.load(ROOT / "models" / f"{name}.test.npz")["X"]
    for variant, opts in VARIANTS.items():
        blob = tmp_path / f"{variant}.esb"
        compress_file(CompressOptions(source=ROOT / "models" / f"{name}.pkl", output=blob, **opts))
        assert_batch_is_one_row(esb_exe, blob, X, tmp_path)


def test_every_head_encoding_and_layout_batch_same_bits(esb_exe: str, tmp_path: Path) -> None:
    """Every head, label kind and value dtype (SYNTHETIC: float64, float32, int8, column
    exponents), int16 rows with and without exponents, exception-coded exponents, wide
    models (more than 64 outputs, more than the fast path's 512 features), and the dense
    layout's overflow fallback."""
    cases: list[tuple[object, np.ndarray]] = [(ir, synthetic_rows()) for ir in SYNTHETIC.values()]
    for case in RAISED:
        for exps in ("none", "pow2"):
            ir, X = raised_case(case, exps)
            cases.append((ir, X[:40]))
    cases.append((outlier_ir(), outlier_rows()))
    for n_out, dtype in ((5, "int8"), (70, "int8"), (70, "float64"), (5, "int8-pow2")):
        cases.append((wide_ir(n_out=n_out, dtype=dtype), wide_rows(8)))
    rng = np.random.default_rng(3)
    X = rng.normal(size=(40, 5)) * 10.0 ** rng.integers(-2, 3, (40, 5))
    X[:6, :4] *= 1e34  # q * x overflows in the dense kernel: the one-row call recomputes
    cases.append((overflowing_raised_ir(), X))
    for i, (ir, X) in enumerate(cases):
        blob = tmp_path / f"m{i}.esb"
        esb.write(ir, blob)
        assert_batch_is_one_row(esb_exe, blob, X, tmp_path)


def test_fidelity_suite_batch_same_bits_as_one_row(esb_exe: str, tmp_path: Path) -> None:
    from tests import fidelity_suite as fs

    for name in fs.case_names():
        case, ir = fs.case(name), fs.default_compressed(name)
        blob = tmp_path / "m.esb"
        esb.write(ir, blob)
        rows = tmp_path / "rows.bin"
        write_rows(rows, case.X_test)
        for mode in ("fast", "dense") if ir.is_quantized else ("fast",):
            one = _predict(esb_exe, blob, rows, mode, "--one-row")
            got = _predict(esb_exe, blob, rows, mode)
            assert one.returncode == 0 and got.stdout == one.stdout, (name, mode)


def test_refused_rows_stop_the_batch_where_the_one_row_call_does(esb_exe, tmp_path: Path):
    """NaN, +Inf, -Inf in a row (after a block of 32 rows, and in the first row), and a finite
    row whose score overflows: the same rows before it printed, the same row named."""
    blob = tmp_path / "m.esb"
    ir = SYNTHETIC["hard-multi-int"]
    esb.write(ir, blob)
    X = np.tile(synthetic_rows(), (3, 1))  # 72 rows: more than one block
    for row in (0, 37):
        for bad in (np.nan, np.inf, -np.inf):
            Xb = X.copy()
            Xb[row, 5] = bad
            assert_batch_is_one_row(esb_exe, blob, Xb, tmp_path)
            got = _predict(esb_exe, blob, tmp_path / "rows.bin", "fast")
            assert got.returncode == 1 and f"row {row}: invalid input row" in got.stderr
            assert len(got.stdout.splitlines()) == row
    Xb = X.copy()
    Xb[40] = 0.0
    Xb[40, 0] = 3e38
    Xb[40, 1:] = np.sign(ir.to_dense()[0, 1:]) * -3e38
    assert_batch_is_one_row(esb_exe, blob, Xb, tmp_path)
    got = _predict(esb_exe, blob, tmp_path / "rows.bin", "fast")
    assert got.returncode == 1 and "row 40: invalid input row" in got.stderr


_EDGES = r"""
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "esb.h"
#include "model_data.h"
#define NF MODEL_N_FEATURES
#define NO MODEL_N_OUTPUTS
#define NC MODEL_N_CLASSES
static int32_t ws[(MODEL_WORKSPACE_BYTES + 3) / 4];
static float x[5][NF + 2], out[6 * (NO + NC + 1)], one[NO + NC + 1];
static uint32_t cls[6];
#define CHECK(c) \
    do { if (!(c)) { printf("FAIL line %d: %s\n", __LINE__, #c); return 1; } } while (0)
/* CSR batches: rows {0: 1, NF-1: -2}, {}, {1: 0.5} (offsets from 1) against the one-row
 * CSR call; NULL arguments; a row ending before it starts. */
static int csr_edges(const esb_model *m)
{
    uint32_t ptr[4] = {1, 3, 3, 4}, bad[4] = {1, 3, 2, 4}, k;
    int32_t ix[4] = {-7, 0, NF - 1, 1};
    float v[4] = {NAN, 1.0f, -2.0f, 0.5f};
    size_t done = 99, i;
    CHECK(esb_decision_csr_batch(m, 3, ptr, ix, v, out, &done) == ESB_OK && done == 3);
    for (i = 0; i < 3; i++) {
        CHECK(esb_decision_csr(m, ptr[i + 1] - ptr[i], ix + ptr[i], v + ptr[i], one) == ESB_OK);
        CHECK(memcmp(one, out + i * NO, 4 * NO) == 0);
    }
    if (m->head != ESB_HEAD_IDENTITY) {
        CHECK(esb_predict_csr_batch(m, 3, ptr, ix, v, cls, &done) == ESB_OK && done == 3);
        for (i = 0; i < 3; i++)
            CHECK(esb_predict_csr(m, ptr[i + 1] - ptr[i], ix + ptr[i], v + ptr[i], &k) ==
                      ESB_OK && k == cls[i]);
    } else {
        CHECK(esb_predict_csr_batch(m, 3, ptr, ix, v, cls, &done) == ESB_E_HEAD && done == 0);
    }
    if (esb_has_proba(m)) {
        CHECK(esb_predict_proba_csr_batch(m, 3, ptr, ix, v, out, &done) == ESB_OK);
        CHECK(esb_predict_proba_csr(m, 2, ix + 1, v + 1, one) == ESB_OK);
        CHECK(memcmp(one, out, 4 * NC) == 0);
    }
    CHECK(esb_decision_csr_batch(m, 0, NULL, NULL, NULL, NULL, &done) == ESB_OK && done == 0);
    CHECK(esb_decision_csr_batch(m, 1, NULL, ix, v, out, &done) == ESB_E_ARGUMENT);
    CHECK(esb_decision_csr_batch(NULL, 1, ptr, ix, v, out, &done) == ESB_E_ARGUMENT);
    CHECK(esb_decision_csr_batch(m, 3, bad, ix, v, out, &done) == ESB_E_INPUT && done == 1);
    return 0;
}
static int edges(const esb_model *m)
{
    size_t done = 99, i;
    uint32_t k;
    const float canary = -12345.0f;
    for (i = 0; i < 6 * (NO + NC + 1); i++) out[i] = canary;
    /* 0 rows: OK, nothing written, x and outputs may be NULL */
    CHECK(esb_decision_batch(m, NULL, 0, 0, NULL, &done) == ESB_OK && done == 0);
    /* ... unless the model lacks the head: that error first */
    CHECK(esb_predict_batch(m, x[0], 0, 0, cls, NULL) ==
          (m->head != ESB_HEAD_IDENTITY ? ESB_OK : ESB_E_HEAD));
    CHECK(esb_predict_proba_batch(m, x[0], 0, 0, out, &done) ==
              (esb_has_proba(m) ? ESB_OK : ESB_E_HEAD) && done == 0);
    CHECK(out[0] == canary);
    /* 1 row: any stride; the one-row call's bits */
    CHECK(esb_decision_batch(m, x[1], 1, 0, out, &done) == ESB_OK && done == 1);
    CHECK(esb_decision(m, x[1], one) == ESB_OK && memcmp(one, out, 4 * NO) == 0);
    CHECK(out[NO] == canary);
    /* arguments */
    CHECK(esb_decision_batch(NULL, x[0], 1, NF, out, &done) == ESB_E_ARGUMENT && done == 0);
    CHECK(esb_decision_batch(m, NULL, 1, NF, out, &done) == ESB_E_ARGUMENT);
    CHECK(esb_decision_batch(m, x[0], 1, NF, NULL, &done) == ESB_E_ARGUMENT);
    CHECK(esb_decision_batch(m, x[0], 2, NF - 1, out, &done) == ESB_E_ARGUMENT && done == 0);
    CHECK(esb_proba_status);
    /* 5 rows with stride NF + 2; row 3 NaN: rows 0..2 done and equal to the one-row call */
    x[3][NF - 1] = NAN;
    CHECK(esb_decision_batch(m, x[0], 5, NF + 2, out, &done) == ESB_E_INPUT && done == 3);
    for (i = 0; i < 3; i++)
        CHECK(esb_decision(m, x[i], one) == ESB_OK && memcmp(one, out + i * NO, 4 * NO) == 0);
    if (m->head != ESB_HEAD_IDENTITY) {
        CHECK(esb_predict_batch(m, x[0], 5, NF + 2, cls, &done) == ESB_E_INPUT && done == 3);
        for (i = 0; i < 3; i++) CHECK(esb_predict(m, x[i], &k) == ESB_OK && k == cls[i]);
    } else {
        CHECK(esb_predict_batch(m, x[0], 5, NF + 2, cls, &done) == ESB_E_HEAD && done == 0);
    }
    x[3][NF - 1] = INFINITY;
    CHECK(esb_decision_batch(m, x[0], 5, NF + 2, out, &done) == ESB_E_INPUT && done == 3);
    x[3][NF - 1] = 0.5f;
    CHECK(esb_decision_batch(m, x[0], 5, NF + 2, out, &done) == ESB_OK && done == 5);
    return csr_edges(m);
}
/* The CSR column index (esb_use_csr_index): its size; a NULL or unopened model, a buffer one
 * byte short or misaligned refused with nothing written; in the transposed layout the CSR
 * calls' bits with it are those without it (and edges() still holds); NULL drops it. */
static int32_t cix[NF + 2], tws[1 << 15];
static float ref[3 * NO];
static int index_edges(esb_model *m)
{
    uint32_t ptr[4] = {0, 2, 2, 3};
    int32_t ix[3] = {0, NF - 1, 1};
    float v[3] = {1.0f, -2.0f, 0.5f};
    esb_model closed;
    size_t done = 0, i;
    memset(&closed, 0, sizeof closed);
    for (i = 0; i < NF + 2; i++) cix[i] = 77;
    CHECK(esb_csr_index_size(m) == 4u * NF && esb_csr_index_size(NULL) == 0);
    CHECK(esb_use_csr_index(NULL, cix, sizeof cix) == ESB_E_ARGUMENT);
    CHECK(esb_use_csr_index(&closed, cix, sizeof cix) == ESB_E_ARGUMENT);
    CHECK(esb_use_csr_index(m, cix, 4u * NF - 1u) == ESB_E_ARGUMENT);
    CHECK(esb_use_csr_index(m, (int32_t *)(void *)((char *)cix + 1), 4u * NF + 4u) ==
          ESB_E_ARGUMENT);
    for (i = 0; i < NF + 2; i++) CHECK(cix[i] == 77);
    CHECK(esb_layout_size(m, ESB_LAYOUT_TRANSPOSED) <= sizeof tws);
    CHECK(esb_use_layout(m, ESB_LAYOUT_TRANSPOSED, tws, sizeof tws) == ESB_OK);
    CHECK(esb_decision_csr_batch(m, 3, ptr, ix, v, ref, &done) == ESB_OK && done == 3);
    CHECK(esb_use_csr_index(m, cix, 4u * NF) == ESB_OK && cix[NF] == 77);
    CHECK(esb_decision_csr_batch(m, 3, ptr, ix, v, out, &done) == ESB_OK && done == 3);
    CHECK(memcmp(ref, out, sizeof ref) == 0);
    CHECK(esb_decision_csr(m, 2, ix, v, out) == ESB_OK && memcmp(ref, out, 4 * NO) == 0);
    if (edges(m)) return 1;
    CHECK(esb_use_csr_index(m, NULL, 0) == ESB_OK);
    CHECK(esb_decision_csr_batch(m, 3, ptr, ix, v, out, &done) == ESB_OK);
    CHECK(memcmp(ref, out, sizeof ref) == 0);
    return 0;
}
int main(void)
{
    esb_model m;
    size_t i, j;
    for (i = 0; i < 5; i++)
        for (j = 0; j < NF + 2; j++) x[i][j] = j < NF ? (float)((int)((i * 7 + j) % 5) - 2) : NAN;
    if (esb_open(model_esb, model_esb_len, &m) != ESB_OK) return 2;
    if (edges(&m)) return 1;
    if (esb_use_workspace(&m, ws, sizeof ws) != ESB_OK) return 3;
    if (edges(&m)) return 1;
    printf("ok %s\n", esb_layout_name(&m));
    if (index_edges(&m)) return 1;
    return 0;
}
"""
_PROBA_STATUS = {
    True: "esb_predict_proba_batch(m, x[0], 1, NF, out, &done) == ESB_OK && done == 1",
    False: "esb_predict_proba_batch(m, x[0], 1, NF, out, &done) == ESB_E_HEAD && done == 0",
}


@pytest.mark.parametrize("case", ["logistic-binary-int8-pow2", "softmax-unicode", "identity-multi"])
def test_batch_api_edges(case: str, tmp_path: Path) -> None:
    """0 rows, 1 row with stride 0, NULL arguments, a stride below the width, a NaN / Inf row
    in the middle (*n_done, earlier rows' bits), a head the model lacks; streamed and with
    the fastest workspace; the padding (NaN) between rows is never read. The CSR batch calls
    likewise (offsets not from 0, an empty row, a row that ends before it starts)."""
    ir = SYNTHETIC[case]
    blob = tmp_path / "m.esb"
    esb.write(ir, blob)
    out = tmp_path / "c"
    export_c(blob, out, name="model")
    src = _EDGES.replace("esb_proba_status", _PROBA_STATUS[ir.has_proba])
    (out / "edges.c").write_text(src)
    exe = out / "edges"
    obj = cbuild.runtime_object("gcc", CFLAGS)  # esb.c, compiled once per session
    cmd = ["gcc", *CFLAGS, "-o", str(exe), "edges.c", str(obj), "model_data.c", "-lm"]
    res = _run(cmd, cwd=out)
    assert res.returncode == 0, res.stderr
    res = _run([str(exe)])
    assert res.returncode == 0 and res.stdout.startswith("ok "), res.stdout + res.stderr


def test_bench_batch_checksum_equals_one_row_loop(esb_exe: str, tmp_path: Path) -> None:
    """`esb bench --batch` through the batch calls (wrapping around the rows) sums the same
    outputs as the one-row loop."""
    X = np.load(ROOT / "models" / "digits_pipeline.test.npz")["X"][:70]
    blob = tmp_path / "m.esb"
    compress_file(CompressOptions(source=ROOT / "models" / "digits_pipeline.pkl", output=blob))
    rows = tmp_path / "rows.bin"
    write_rows(rows, X)
    for op in ("predict", "proba", "decision"):
        got = {}
        for api in ("batch", "one-row"):
            extra = ["--one-row"] if api == "one-row" else []
            cmd = [esb_exe, "bench", str(blob), str(rows), "3", "1", "--batch", "100", "--op", op]
            res = _run([*cmd, *extra])
            assert res.returncode == 0, res.stderr
            got[api] = json.loads(res.stdout)
            assert got[api]["api"] == api
        assert got["batch"]["checksum"] == got["one-row"]["checksum"], op


def test_batch_kernels_same_bits_for_every_row_count(
    esb_exe: str, esb_exe_4rows: str, esb_exe_plain: str, tmp_path: Path
) -> None:
    """Every kernel (8 rows per AVX vector where the CPU has it, 4 rows per vector everywhere,
    and the plain-C build of the latter) on row counts that leave every remainder of a 4-
    and 8-row step and of a 32-row block, with int16 rows and column exponents (digits'
    defaults), more outputs than one pass takes and models whose weights do not fit the
    kernel's buffer at once: the one-row call's bits."""
    X = np.load(ROOT / "models" / "digits_pipeline.test.npz")["X"]
    digits = tmp_path / "digits.esb"
    compress_file(CompressOptions(source=ROOT / "models" / "digits_pipeline.pkl", output=digits))
    blobs = [(digits, X)]
    rng = np.random.default_rng(5)
    # (outputs, features): 9 passes that fit the buffer at once; 40 x 100 and 3 x 400 do not
    for n_out, n_feat in ((70, 10), (40, 100), (3, 400), (9, 33)):
        w = rng.normal(size=(n_out, n_feat)) * 10.0 ** rng.integers(-3, 4, n_feat)
        ir = from_dense(w, bias=rng.normal(size=n_out), head="hard", classes=np.arange(n_out))
        blob = tmp_path / f"dense{n_out}x{n_feat}.esb"
        esb.write(quantize_int8(ir, columns="pow2"), blob)
        blobs.append((blob, rng.normal(size=(45, n_feat))))
    for blob, rows_all in blobs:
        for n in (1, 3, 5, 7, 9, 13, 33, 38, 45):
            for exe in (esb_exe, esb_exe_4rows, esb_exe_plain):
                assert_batch_is_one_row(exe, blob, rows_all[:n], tmp_path)


def _assert_dense_batch_is_one_row(exe: str, blob: Path, X: np.ndarray, tmp_path: Path) -> None:
    """assert_batch_is_one_row in the dense layout only (the one the batch kernels take)."""
    rows = tmp_path / "rows.bin"
    write_rows(rows, X)
    one = _predict(exe, blob, rows, "dense", "--one-row")
    for extra in ([], ["--pad", "3"]):
        got = _predict(exe, blob, rows, "dense", *extra)
        assert (got.returncode, got.stdout, got.stderr) == (one.returncode, one.stdout, one.stderr)


def _wide_dense_cases() -> list[tuple[str, object, np.ndarray]]:
    """Dense-layout models wider than the blocked kernel's 512 features (the tiled kernel):
    20 001 features (16 * 1250 + 1: one leftover feature after the 16 lanes, several tiles)
    with one output (logistic), 6 outputs x 1037 features (two passes of 3 outputs, a tile
    boundary inside the lanes, 13 leftover features) in int8, int8 with column exponents and
    with int16 rows (raised) plus exponents; rows with zeros, large and tiny values."""
    rng = np.random.default_rng(19)
    cases = []
    w1 = rng.normal(size=(1, 20001)) * 10.0 ** rng.integers(-2, 3, 20001)
    ir1 = from_dense(w1, bias=[0.25], head="logistic", classes=np.array([0, 1]))
    X1 = rng.normal(size=(33, 20001)) * (rng.random((33, 20001)) < 0.9)
    cases.append(("1x20001-int8", quantize_int8(ir1), X1))
    cases.append(("1x20001-pow2", quantize_int8(ir1, columns="pow2"), X1))
    w6 = rng.normal(size=(6, 1037)) * 10.0 ** rng.integers(-3, 4, 1037)
    ir6 = from_dense(w6, bias=rng.normal(size=6), head="softmax", classes=np.arange(6))
    X6 = rng.normal(size=(33, 1037)) * 10.0 ** rng.integers(-2, 3, (33, 1037))
    cases.append(("6x1037-int8", quantize_int8(ir6), X6))
    pow2 = quantize_int8(ir6, columns="pow2")
    assert pow2.col_exponents is not None
    cases.append(("6x1037-pow2", pow2, X6))
    raised = raise_rows(ir6, pow2, np.array([1, 4]))
    assert raised.wide_rows is not None and raised.wide_rows.sum() == 2
    cases.append(("6x1037-int16-pow2", raised, X6))
    return cases


def test_wide_dense_batch_same_bits_as_one_row(
    esb_exe: str, esb_exe_4rows: str, esb_exe_plain: str, tmp_path: Path
) -> None:
    """The tiled kernel of models wider than 512 features (AVX where the CPU has it, the
    2-row vector kernel, plain C) on 1, 3, 4, 5 and 33 rows: the one-row call's bits in every
    layout, the numpy runtime's scores within the esb.h bound; a NaN, +Inf or -Inf in a row
    (in the lanes, and in the leftover features) stops the batch at that row with the
    one-row call's message."""
    for name, ir, X in _wide_dense_cases():
        blob = tmp_path / f"{name}.esb"
        esb.write(ir, blob)
        assert Model(esb.read(blob)).ir.is_quantized
        for n in (1, 3, 4, 5, 33):
            assert_batch_is_one_row(esb_exe, blob, X[:n], tmp_path)
            for exe in (esb_exe_4rows, esb_exe_plain):
                _assert_dense_batch_is_one_row(exe, blob, X[:n], tmp_path)
        for row, col, bad in ((0, 5, np.nan), (6, X.shape[1] - 1, np.inf), (31, 700, -np.inf)):
            Xb = X[:33].copy()
            Xb[row, col] = bad
            assert_batch_is_one_row(esb_exe, blob, Xb, tmp_path)
            _assert_dense_batch_is_one_row(esb_exe_4rows, blob, Xb, tmp_path)
            got = _predict(esb_exe, blob, tmp_path / "rows.bin", "dense")
            assert got.returncode == 1 and f"row {row}: invalid input row" in got.stderr, name
            assert len(got.stdout.splitlines()) == row


def test_4row_kernel_every_head_encoding_and_layout(esb_exe_4rows: str, tmp_path: Path) -> None:
    """The 4-row kernel alone (no AVX) on every head, label kind and value dtype and on the
    raised (int16) rows: the one-row call's bits."""
    cases: list[tuple[object, np.ndarray]] = [(ir, synthetic_rows()) for ir in SYNTHETIC.values()]
    for case in RAISED:
        ir, X = raised_case(case, "pow2")
        cases.append((ir, X[:40]))
    for i, (ir, X) in enumerate(cases):
        blob = tmp_path / f"m{i}.esb"
        esb.write(ir, blob)
        assert_batch_is_one_row(esb_exe_4rows, blob, X, tmp_path)


def test_csr_batch_same_bits_as_one_row(esb_exe: str, tmp_path: Path) -> None:
    """The CSR batch calls (esb_*_csr_batch, the driver's path for CSR rows) on text-like
    models in every layout: the one-row CSR calls' bits, and where a row has a NaN or is not
    canonical, the same rows printed and the same row named; `esb bench --batch` over CSR
    rows sums the same outputs as the one-row loop."""
    for n_out, dtype in ((5, "int8"), (70, "int8"), (70, "float64"), (5, "int8-pow2")):
        blob = tmp_path / f"wide{n_out}{dtype}.esb"
        esb.write(wide_ir(n_out=n_out, dtype=dtype), blob)
        X = sp.csr_matrix(wide_rows(30))
        assert_batch_is_one_row(esb_exe, blob, X, tmp_path)
    Xb = sp.csr_matrix(wide_rows(30))
    Xb.data[Xb.indptr[12] + 1] = np.nan
    assert_batch_is_one_row(esb_exe, blob, Xb, tmp_path)
    got = _predict(esb_exe, blob, tmp_path / "rows.bin", "fast")
    assert got.returncode == 1 and "row 12: invalid input row" in got.stderr
    assert len(got.stdout.splitlines()) == 12
    rows = tmp_path / "rows.bin"
    write_rows(rows, sp.csr_matrix(wide_rows(30)))
    for op in ("predict", "decision"):
        got = {}
        for api in ("batch", "one-row"):
            extra = ["--one-row"] if api == "one-row" else []
            cmd = [esb_exe, "bench", str(blob), str(rows), "3", "1", "--batch", "50", "--op", op]
            res = _run([*cmd, *extra])
            assert res.returncode == 0, res.stderr
            got[api] = json.loads(res.stdout)
            assert got[api]["api"] == api
        assert got["batch"]["checksum"] == got["one-row"]["checksum"], op


def _text_like_ir(n_out: int, dtype: str, rng: np.random.Generator) -> object:
    """n_out outputs over 2^18 features: 300 used columns crowded into a few of the CSR
    batch's 2048 column buckets, 400 spread over all of them; dtype float64, float32, int8
    or int8-pow2 (column exponents)."""
    n_feat = 2**18
    cols = np.unique(np.r_[np.arange(5000, 5300), rng.integers(0, n_feat, 400)])
    w = rng.normal(size=(n_out, cols.size)) * (rng.random((n_out, cols.size)) < 0.5)
    w[:, 3] = 0.0  # a column no output uses
    if dtype == "int8-pow2":
        w *= 10.0 ** rng.integers(-3, 4, cols.size)
    small = from_dense(w, bias=rng.normal(size=n_out), head="hard", classes=np.arange(n_out))
    ir = small.replace(indices=cols[small.indices].astype(np.int32), n_features=n_feat)
    if dtype == "float32":
        return ir.replace(values=ir.values.astype(np.float32))
    if dtype.startswith("int8"):
        return quantize_int8(ir, columns="pow2" if dtype == "int8-pow2" else "none")
    return ir


def test_csr_batch_transposed_kernel_same_bits(esb_exe: str, tmp_path: Path) -> None:
    """The CSR batch kernel of the transposed layout (models of up to 64 outputs, batches
    that build the column buckets): 2^18 features with used columns crowded into a few
    buckets, rows of more than 64 nonzeros (several look-up rounds), explicit zeros, columns
    no output uses and columns past the last used one; float64, float32, int8, int8 with
    column exponents, 64 outputs: the one-row CSR calls' bits, the numpy runtime's scores;
    the same with the driver's CSR column index and without (rows with indices 0 and
    n_features - 1, NaN/Inf rows refused alike; the index's 4 * n_features bytes counted in
    the bench's workspace_bytes)."""
    rng = np.random.default_rng(23)
    for n_out, dtype in ((20, "float64"), (20, "float32"), (64, "int8"), (3, "int8-pow2")):
        ir = _text_like_ir(n_out, dtype, rng)
        blob = tmp_path / f"text{n_out}{dtype}.esb"
        esb.write(ir, blob)
        used = np.unique(ir.indices)
        rows = []
        for i in range(24):
            k = (5, 40, 150)[i % 3]
            pick = np.r_[rng.choice(used, k), rng.integers(0, 2**18, k), used[3], 0, 2**18 - 1]
            rows.append(np.unique(pick))
        indptr = np.r_[0, np.cumsum([r.size for r in rows])]
        data = rng.normal(size=indptr[-1]) * (rng.random(indptr[-1]) < 0.9)  # explicit zeros
        X = sp.csr_matrix((data, np.concatenate(rows), indptr), shape=(24, 2**18))
        assert X.nnz == indptr[-1] and (X.data == 0).any()
        assert_batch_is_one_row(esb_exe, blob, X, tmp_path)
        cmd = [esb_exe, "bench", str(blob), str(tmp_path / "rows.bin"), "1", "0", "--batch", "24"]
        res = _run(cmd)
        assert res.returncode == 0 and json.loads(res.stdout)["layout"] == "transposed", dtype
        plain = _run([*cmd, "--no-csr-index"])
        assert plain.returncode == 0, plain.stderr
        got, base = json.loads(res.stdout), json.loads(plain.stdout)
        assert got["checksum"] == base["checksum"]
        assert got["workspace_bytes"] - base["workspace_bytes"] == 4 * 2**18  # the index
        for bad in (np.nan, np.inf, -np.inf):  # a refused row: the same with and without
            Xb = X.copy()
            Xb.data[Xb.indptr[17] + 2] = bad
            assert_batch_is_one_row(esb_exe, blob, Xb, tmp_path)


def test_batch_kernels_clean_under_sanitizers(tmp_path: Path) -> None:
    """Both batch kernels (AVX where the CPU has it, and -DESB_NO_AVX) under ASan + UBSan on
    row counts that end a block mid-step, dense and CSR rows; likewise the kernel of models
    wider than 512 features (int16 rows, column exponents, a NaN row) and the CSR kernel of
    the transposed layout (rows longer than one look-up round)."""
    flags = ["-g", "-O1", "-fsanitize=address,undefined", "-fno-sanitize-recover=all"]
    probe = tmp_path / "probe.c"
    probe.write_text("int main(void) { return 0; }\n")
    require_tool(
        shutil.which("clang") is not None
        and _run(["clang", *flags, str(probe), "-o", str(tmp_path / "probe")]).returncode == 0,
        what="clang with its sanitizer runtimes",
        install="sudo apt-get install clang libclang-rt-dev",
    )
    sources = [str(C_DIR / "esb.c"), str(C_DIR / "esb_main.c")]
    X = np.load(ROOT / "models" / "digits_pipeline.test.npz")["X"]
    blob = tmp_path / "digits.esb"
    compress_file(CompressOptions(source=ROOT / "models" / "digits_pipeline.pkl", output=blob))
    env = {**os.environ, **SANITIZER_ENV}
    for extra in ([], ["-DESB_NO_AVX"]):
        exe, res = cbuild.build(
            ["clang", *CFLAGS, *flags, *extra, *sources, "-lm"], name="esb-asan"
        )
        assert res.returncode == 0, res.stderr
        for n in (45, 39):
            for rows_x in (X[:n], sp.csr_matrix(X[:n])):
                rows = tmp_path / "rows.bin"
                write_rows(rows, rows_x)
                res = _run([str(exe), "predict", str(blob), str(rows)], env=env)
                assert "Sanitizer" not in res.stderr and "runtime error" not in res.stderr
                assert res.returncode == 0 and len(res.stdout.splitlines()) == n, res.stderr
        _sanitized_wide_and_csr(exe, env, tmp_path)


def _sanitized_wide_and_csr(exe: Path, env: dict, tmp_path: Path) -> None:
    """The wide dense kernel and the transposed CSR kernel under a sanitized driver: clean,
    the same output as its one-row calls, the NaN row refused."""
    name, ir, X = _wide_dense_cases()[-1]  # 6 x 1037, int16 rows and column exponents
    Xb = X[:7].copy()
    Xb[5, 1030] = np.nan
    text = _text_like_ir(20, "float32", np.random.default_rng(29))
    rng = np.random.default_rng(30)
    used = np.unique(text.indices)
    lens = [200, 3, 0, 40, 150, 9]
    cols = [np.unique(np.r_[rng.choice(used, k), rng.integers(0, 2**18, k)]) for k in lens]
    indptr = np.r_[0, np.cumsum([c.size for c in cols])]
    Xc = sp.csr_matrix(
        (rng.normal(size=indptr[-1]), np.concatenate(cols), indptr), shape=(len(lens), 2**18)
    )
    for model, rows_x, ok in ((ir, X[:7], 7), (ir, Xb, 5), (text, Xc, len(lens))):
        blob = tmp_path / "m.esb"
        esb.write(model, blob)
        rows = tmp_path / "rows.bin"
        write_rows(rows, rows_x)
        res = _run([str(exe), "predict", str(blob), str(rows)], env=env)
        one = _run([str(exe), "predict", str(blob), str(rows), "--one-row"], env=env)
        assert "Sanitizer" not in res.stderr and "runtime error" not in res.stderr, name
        assert (res.returncode, res.stdout) == (one.returncode, one.stdout)
        for extra in (["--no-csr-index"], ["--no-csr-index", "--one-row"]):
            plain = _run([str(exe), "predict", str(blob), str(rows), *extra], env=env)
            assert "Sanitizer" not in plain.stderr and "runtime error" not in plain.stderr
            assert (plain.returncode, plain.stdout) == (res.returncode, res.stdout)
        assert len(res.stdout.splitlines()) == ok and res.returncode == (ok < rows_x.shape[0])


def test_export_c_text_program_uses_the_csr_index(tmp_path: Path) -> None:
    """A hashed text model (2^18 features, transposed layout): export-c's program builds the
    CSR column index (MODEL_CSR_INDEX_BYTES = 4 * n_features in model_data.h) and predicts
    every document as with -DESB_NO_CSR_INDEX and as the numpy runtime does."""
    from sklearn.feature_extraction.text import HashingVectorizer
    from sklearn.linear_model import SGDClassifier
    from sklearn.pipeline import make_pipeline

    from edgesparse import compress
    from edgesparse.runtime import loads

    rng = np.random.default_rng(5)
    words = [f"w{i}" for i in range(400)]
    docs = [" ".join(rng.choice(words, 12)) for _ in range(120)]
    y = np.array([int("w1" in d) + 2 * int("w7" in d) for d in docs])
    pipe = make_pipeline(HashingVectorizer(n_features=2**18), SGDClassifier(random_state=0))
    pipe.fit(docs, y)
    blob = tmp_path / "m.esb"
    blob.write_bytes(esb.encode(compress(pipe, quantize="int8")))
    out = tmp_path / "out"
    export_c(blob, out, name="model")
    assert f"#define MODEL_CSR_INDEX_BYTES {4 * 2**18}u" in (out / "model_data.h").read_text()
    text = "".join(d + "\n" for d in docs).encode()
    got = []
    for extra in ("", " -DESB_NO_CSR_INDEX"):
        flags = "-O2 -std=c99 -Wall -Wextra -Werror -pedantic" + extra
        res = _run(["make", "-B", "-C", str(out), "CC=gcc", f"CFLAGS={flags}"])
        assert res.returncode == 0, res.stdout + res.stderr
        res = subprocess.run([str(out / "model_main")], input=text, capture_output=True)
        assert res.returncode == 0, res.stderr
        got.append(res.stdout)
    assert got[0] == got[1]
    labels = [ln.split(b"\t")[0].decode() for ln in got[0].splitlines()]
    assert labels == [str(v) for v in loads(blob.read_bytes()).predict(docs)]
