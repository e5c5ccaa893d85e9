"""Export a ``.esb`` model as C sources: the C99 runtime plus the model as a ``const`` byte array.

``export_c(blob, out_dir)`` writes a self-contained folder that builds with any C99 compiler
and nothing but libc (and libm for ``expf``)::

    esb.h, esb.c        the runtime (edgesparse/runtime/c/): verifier and kernels, no malloc
    esb_knn.c           its k-NN recommender part (esb.c includes it)
    esb_factors.c       its matrix-factorization recommender part (esb.c includes it)
    esb_text.c, esb_unicode.h  its text input stage (included by esb.c) and Unicode tables
    esb_tabular.c       its tabular input stage (included by esb.c)
    model_data.h/.c     the blob as an 8-byte-aligned ``const unsigned char`` array (flash on
                        a microcontroller), its length and shape constants
    main.c              an example: reads rows of numbers (whitespace- or comma-separated)
                        from stdin, prints predictions; names the line of any bad input
    Makefile, README.txt

The blob is verified with the Python reference decoder before anything is written, and the C
runtime verifies it again at start-up (``esb_open``). A k-NN recommender blob (version 2)
gets the same folder with its own ``main.c``, which predicts ``user,item`` pairs read from
stdin (:mod:`edgesparse.export_c_knn`; ``esb_knn_open`` verifies it at start-up); so does a
matrix-factorization blob (version 3; :mod:`edgesparse.export_c_factors`, ``esb_factors_open``).

:func:`write_rows` writes the small binary row file that the runtime's driver program
(``edgesparse/runtime/c/esb_main.c``: ``esb predict`` / ``esb bench``) reads.
"""

from __future__ import annotations

import os
import re
import string
import struct
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from edgesparse.errors import FormatError, InputError
from edgesparse.export_c_factors import (
    factors_main_source,
    factors_model_header,
    factors_readme,
)
from edgesparse.export_c_knn import knn_main_source, knn_model_header, knn_readme
from edgesparse.export_c_tabular import (
    tabular_header_lines,
    tabular_main_source,
    tabular_readme,
)
from edgesparse.export_c_text import text_header_lines, text_main_source, text_readme
from edgesparse.fileio import atomic_write_bytes, read_bytes
from edgesparse.formats import esb
from edgesparse.formats import factors as esb_factors
from edgesparse.formats import knn as esb_knn
from edgesparse.formats.container import BlobKind, kind_of

__all__ = ["RUNTIME_FILES", "c_runtime_dir", "export_c", "fast_workspace", "write_rows"]

RUNTIME_FILES = (
    "esb.h",
    "esb.c",
    "esb_knn.c",
    "esb_factors.c",
    "esb_text.c",
    "esb_unicode.h",
    "esb_tabular.c",
    "esb_main.c",
    "esb_bench_main.c",
    "esb_rec_main.c",
    "esb_tabular_main.c",
    "esb_text_main.c",
    "esb_one_row_main.c",
)
"""The C runtime's files in ``edgesparse/runtime/c/`` (esb.c includes esb_knn.c, the k-NN
runtime, esb_factors.c, the matrix-factorization runtime, esb_text.c and esb_tabular.c, the
input stages; esb_main.c includes esb_bench_main.c (`esb bench` on rows and the timing
helpers every bench shares), esb_rec_main.c (the recommenders' commands), esb_tabular_main.c
and esb_text_main.c, which both include esb_one_row_main.c, their shared bench loop: each
builds as one file, ``cc esb.c esb_main.c -lm``)."""

_LIBRARY_FILES = (
    *("esb.h", "esb.c", "esb_knn.c", "esb_factors.c"),
    *("esb_text.c", "esb_unicode.h", "esb_tabular.c"),
)
"""What an exported folder compiles: esb.c and the files it includes."""

ROWS_MAGIC = b"ESBROWS1"
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def c_runtime_dir() -> Path:
    """The folder holding the C runtime sources (package data, or the source tree)."""
    return Path(str(resources.files("edgesparse.runtime").joinpath("c")))


def _runtime_source(name: str) -> bytes:
    path = c_runtime_dir() / name
    return read_bytes(path, what="C runtime source")


def _check_esb_blob(path: str | os.PathLike[str], blob: bytes) -> None:
    """Refuse, saying what it is, a file export-c cannot take: an ONNX model, a model still to
    compress, a data file (a damaged .esb is the verifier's to describe)."""
    from edgesparse.formats.sniff import not_a_compressed_model

    shown = os.fspath(path)
    if kind_of(blob).is_esb:
        return
    wrong = not_a_compressed_model(path, data_hint="export-c reads a .esb model")
    if wrong is not None:
        raise wrong
    if Path(path).suffix.lower() == ".onnx":
        raise InputError(
            f"{shown} is an ONNX model; export-c needs the .esb blob of the same model: "
            "edgesparse compress MODEL -o model.esb"
        )


def export_c(
    blob_path: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    name: str = "model",
) -> list[Path]:
    """Write the C runtime and the model in ``blob_path`` as C sources into ``out_dir``.

    ``name`` prefixes the generated C symbols (``<name>_esb``, ``<NAME>_N_FEATURES``, ...) and
    must be a C identifier. Returns the files written (each atomically). Raises
    :class:`~edgesparse.errors.FormatError` for a damaged blob and
    :class:`~edgesparse.errors.InputError` for a bad name or an output path that is a file.
    """
    if not _IDENT.match(name):
        raise InputError(f"--name {name!r} is not a C identifier; use letters, digits and _")
    blob = read_bytes(blob_path, what=".esb file")
    _check_esb_blob(blob_path, blob)
    out = Path(out_dir)
    if kind_of(blob) is BlobKind.ESB_KNN:
        return _write(out, _knn_files(blob_path, blob, name))
    if kind_of(blob) is BlobKind.ESB_FACTORS:
        return _write(out, _factors_files(blob_path, blob, name))
    try:
        info = esb.verify(blob)
    except FormatError as exc:
        raise FormatError(f"{os.fspath(blob_path)}: {exc}") from None
    layout, ws_bytes = fast_workspace(info)
    info = {**info, "ws_layout": layout, "ws_bytes": ws_bytes}
    files: dict[str, bytes] = {
        **_library_files(),
        "model_data.h": _model_header(info, name).encode(),
        "model_data.c": _model_source(blob, name).encode(),
        "main.c": _stage_main(info, name).encode(),
        "Makefile": _MAKEFILE.encode(),
        "README.txt": _stage_readme(info, name, len(blob)).encode(),
    }
    return _write(out, files)


def _stage(info: dict[str, Any]) -> str | None:
    """The model's input stage: "tabular", "text" or None (it reads feature rows)."""
    if "featurizer" not in info:
        return None
    return "tabular" if info["featurizer"].get("kind") == "ColumnTransformer" else "text"


def _stage_main(info: dict[str, Any], name: str) -> str:
    stage = _stage(info)
    if stage == "tabular":
        return tabular_main_source(name)
    return text_main_source(name) if stage == "text" else _main_source(info, name)


def _stage_readme(info: dict[str, Any], name: str, n_bytes: int) -> str:
    stage = _stage(info)
    if stage == "tabular":
        return tabular_readme(info, name, n_bytes)
    return text_readme(info, name, n_bytes) if stage == "text" else _readme(info, name, n_bytes)


def _library_files() -> dict[str, bytes]:
    """esb.h, esb.c and the runtime files esb.c includes, byte for byte."""
    return {fname: _runtime_source(fname) for fname in _LIBRARY_FILES}


def _write(out: Path, files: dict[str, bytes]) -> list[Path]:
    """Write ``files`` into the folder ``out`` (made if missing), each atomically."""
    if out.exists() and not out.is_dir():
        raise InputError(f"output {out} exists and is not a folder; pass a folder with -o")
    out.mkdir(parents=True, exist_ok=True)
    return [atomic_write_bytes(out / fname, data) for fname, data in files.items()]


def _knn_files(blob_path: str | os.PathLike[str], blob: bytes, name: str) -> dict[str, bytes]:
    """The exported folder of a k-NN recommender: main.c predicts user,item pairs."""
    try:
        info = esb_knn.verify(blob)
        ir = esb_knn.decode(blob)
    except FormatError as exc:
        raise FormatError(f"{os.fspath(blob_path)}: {exc}") from None
    return {
        **_library_files(),
        "model_data.h": knn_model_header(ir, name).encode(),
        "model_data.c": _model_source(blob, name).encode(),
        "main.c": knn_main_source(name).encode(),
        "Makefile": _MAKEFILE.encode(),
        "README.txt": knn_readme(info, name, len(blob)).encode(),
    }


def _factors_files(blob_path: str | os.PathLike[str], blob: bytes, name: str) -> dict[str, bytes]:
    """The exported folder of a matrix-factorization recommender: main.c predicts user,item
    pairs."""
    try:
        info = esb_factors.verify(blob)
        ir = esb_factors.decode(blob)
    except FormatError as exc:
        raise FormatError(f"{os.fspath(blob_path)}: {exc}") from None
    return {
        **_library_files(),
        "model_data.h": factors_model_header(ir, name).encode(),
        "model_data.c": _model_source(blob, name).encode(),
        "main.c": factors_main_source(name).encode(),
        "Makefile": _MAKEFILE.encode(),
        "README.txt": factors_readme(info, name, len(blob)).encode(),
    }


def fast_workspace(info: dict[str, Any]) -> tuple[str, int]:
    """The layout and bytes ``esb_workspace_size_fast`` gives the model ``esb.verify`` described.

    Mirrors the C runtime's rule (``esb.h``): int8 models storing at least a quarter of their
    weights get the dense layout in max(4 * nnz, its own bytes) bytes (n_outputs * n_features
    int8 weights, n_features more per int16 row of a mixed-width model (``info["int16_rows"]``),
    plus 4 * n_features for the columns' 2^e factors when the model has column exponents), the
    others the transposed layout in 8 * nnz + 8 * used columns + 4 bytes.
    """
    nnz = int(info["nnz"])
    n_out, n_feat = int(info["n_outputs"]), int(info["n_features"])
    if info["values"] in ("int8", "int16") and n_out * n_feat <= 4 * nnz:
        factors = 4 * n_feat if "exponents" in info["sections"] else 0
        rows = n_out + int(info.get("int16_rows", 0))
        return "dense", max(4 * nnz, rows * n_feat + factors)
    return "transposed", 8 * nnz + 8 * int(info["used_columns"]) + 4


def write_rows(path: str | os.PathLike[str], X: Any) -> int:
    """Write rows for the C driver (``esb predict`` / ``esb bench``); return bytes written.

    ``X`` is a dense 2-D array or a CSR matrix (scipy or :class:`edgesparse.data.CSRArrays`);
    values are stored as float32, CSR rows canonicalized (indices sorted, duplicates summed),
    as the C runtime requires. Layout: see ``edgesparse/runtime/c/esb_main.c``.
    """
    if hasattr(X, "tocsr") and hasattr(X, "nnz"):
        X = X.tocsr()
        n_rows, n_feat = (int(v) for v in X.shape)
        indptr, indices, data = _canonical_csr(
            np.asarray(X.indptr), np.asarray(X.indices), np.asarray(X.data)
        )
        head = ROWS_MAGIC + struct.pack("<IIII", 1, n_rows, n_feat, int(indices.size))
        payload = (
            indptr.astype("<u4").tobytes()
            + indices.astype("<i4").tobytes()
            + data.astype("<f4").tobytes()
        )
    else:
        Xd = np.asarray(X)
        if Xd.ndim != 2 or Xd.dtype.kind not in "fiub":
            raise InputError(f"rows must be a numeric 2-D array, got shape {Xd.shape}")
        n_rows, n_feat = Xd.shape
        head = ROWS_MAGIC + struct.pack("<IIII", 0, n_rows, n_feat, 0)
        payload = np.ascontiguousarray(Xd, dtype="<f4").tobytes()
    if n_rows < 1:
        raise InputError("rows: at least one row is needed")
    data_bytes = head + payload
    atomic_write_bytes(path, data_bytes)
    return len(data_bytes)


def _canonical_csr(
    indptr: np.ndarray, indices: np.ndarray, data: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n_rows = indptr.size - 1
    rows = np.repeat(np.arange(n_rows, dtype=np.int64), np.diff(indptr))
    order = np.lexsort((indices, rows))
    rows, cols, vals = rows[order], indices[order].astype(np.int64), data[order]
    if cols.size:
        first = np.ones(cols.size, dtype=bool)
        first[1:] = (rows[1:] != rows[:-1]) | (cols[1:] != cols[:-1])
        starts = np.flatnonzero(first)
        vals = np.add.reduceat(vals.astype(np.float64), starts)
        rows, cols = rows[starts], cols[starts]
    out_ptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n_rows), out=out_ptr[1:])
    return out_ptr, cols, vals


# ----------------------------------------------------------------------------------------
# Generated sources
# ----------------------------------------------------------------------------------------
def _model_header(info: dict[str, Any], name: str) -> str:
    up = name.upper()
    csr_index = 4 * int(info["n_features"]) if info["ws_layout"] == "transposed" else 0
    return f"""/* Generated by `edgesparse export-c`: the model's bytes and shape. */
#ifndef {up}_DATA_H
#define {up}_DATA_H

#include <stddef.h>

#define {up}_N_FEATURES {info["n_features"]}u
#define {up}_N_OUTPUTS {info["n_outputs"]}u
#define {up}_N_CLASSES {info["n_classes"]}u
#define {up}_NNZ {info["nnz"]}u
/* Bytes of this model's fastest workspace layout ({info["ws_layout"]}): esb_workspace_size_fast. */
#define {up}_WORKSPACE_BYTES {info["ws_bytes"]}u
/* Bytes of the CSR column index for the CSR calls (esb_use_csr_index, 4 per feature): in the
 * transposed layout only (0: not used). */
#define {up}_CSR_INDEX_BYTES {csr_index}u
{_stage_header_lines(info, name)}
extern const unsigned char *const {name}_esb; /* the .esb blob, 8-byte aligned */
extern const size_t {name}_esb_len;

#endif
"""


def _stage_header_lines(info: dict[str, Any], name: str) -> str:
    stage = _stage(info)
    if stage == "tabular":
        return tabular_header_lines(info, name)
    return text_header_lines(info, name) if stage == "text" else ""


def _model_source(blob: bytes, name: str) -> str:
    lines = []
    for i in range(0, len(blob), 16):
        lines.append("    " + ", ".join(f"0x{b:02x}" for b in blob[i : i + 16]) + ",")
    body = "\n".join(lines)
    return f"""/* Generated by `edgesparse export-c`: {len(blob)} bytes of .esb (docs/FORMAT.md). */
#include <stdint.h>

#include "model_data.h"

/* The union aligns the bytes to 8 (C99 has no alignas); const, so it can stay in flash. */
static const union {{
    uint64_t align;
    unsigned char bytes[{len(blob)}];
}} blob = {{.bytes = {{
{body}
}}}};

const unsigned char *const {name}_esb = blob.bytes;
const size_t {name}_esb_len = {len(blob)};
"""


# Rows the example program buffers per batch call: up to 64, in at most 16 KiB of floats.
MAIN_BATCH_FLOATS = 4096
MAIN_BATCH_ROWS = 64


def _main_source(info: dict[str, Any], name: str) -> str:
    batch = max(1, min(MAIN_BATCH_ROWS, MAIN_BATCH_FLOATS // max(1, info["n_features"])))
    return _MAIN_C.substitute(
        name=name, NAME=name.upper(), n_features=info["n_features"], batch=batch
    )


# A Template, not an f-string: the C braces stay readable. No allocation here either.
_MAIN_C = string.Template(
    r"""/* Generated by `edgesparse export-c`: an example program for the model.
 *
 * Input (stdin): one row per line, ${n_features} numbers separated by spaces, tabs or commas
 * (a CSV without a header line works; so do CRLF line ends). Each number is what C's strtof
 * reads (e.g. 1, -2.5, 3e-4) and must be finite.
 * Output (stdout): one line per row: the predicted label (classifiers; then a tab and the class
 * probabilities when the model has them) or the predicted values (regressors).
 * A bad line gets one message on stderr, "line N: what is wrong" (wrong number of values, an
 * empty value, not a number, NaN/Inf, beyond float's range, a value over 127 characters).
 * Output stops at the first bad line, so output line k is always input line k; the rest of the
 * input is still checked and each bad line reported (up to 20).
 * Exit status: 0 every line predicted, 1 bad input, 2 the model or the output failed.
 * Rows are predicted ${batch} at a time through the runtime's batch calls (esb_predict_batch,
 * esb_predict_proba_batch, esb_decision_batch: the same numbers as one call per row), and
 * whenever the input ends or a bad line comes: output appears in batches of ${batch} lines.
 * Build: make   (or: cc -O2 -std=c99 -Wall -Wextra -Werror -o model_main main.c esb.c
 * model_data.c -lm). Define ESB_STREAMED to run without the decoded-index workspace.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "esb.h"
#include "model_data.h"

#define MAX_VALUE_CHARS 127 /* a float needs far fewer; longer is garbage, not a number */
#define MAX_REPORTED 20     /* bad lines reported before giving up on the input */

enum { ROW_OK, ROW_BAD, ROW_EOF };

#define BATCH ${batch}u /* rows per batch call */

static float rows[BATCH][${NAME}_N_FEATURES];
static float *row = rows[0]; /* where read_row puts the next row */
static size_t n_pending;      /* rows read and not yet predicted */
static float out[BATCH * (${NAME}_N_OUTPUTS + ${NAME}_N_CLASSES + 1)];
static uint32_t classes[BATCH];
#ifndef ESB_STREAMED
static int32_t workspace[(${NAME}_WORKSPACE_BYTES + 3) / 4];
#endif
static unsigned long line_no;

static void bad_line(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "line %lu: ", line_no);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* A value as quoted in a message: its first 24 characters, control bytes as '?'. */
static const char *shown(const char *s, size_t len)
{
    static char buf[32];
    size_t i;
    for (i = 0; i < len && i < 24; i++) buf[i] = s[i] >= 32 && s[i] < 127 ? s[i] : '?';
    if (i < len) {
        buf[i++] = '.';
        buf[i++] = '.';
        buf[i++] = '.';
    }
    buf[i] = '\0';
    return buf;
}

/* Value k (from 1) of the current line; 0 with a message when it is not a finite float. */
static int parse_value(char *text, size_t len, int too_long, unsigned k, float *v)
{
    char *end;
    if (too_long) {
        bad_line("value %u is longer than %d characters", k, MAX_VALUE_CHARS);
        return 0;
    }
    text[len] = '\0';
    errno = 0;
    *v = strtof(text, &end);
    /* end, not *end: a NUL byte inside the value must not cut it short */
    if (end != text + len) {
        bad_line("value %u \"%s\" is not a number (separate values with spaces, tabs or commas)",
                 k, shown(text, len));
        return 0;
    }
    if (isnan(*v) || isinf(*v)) {
        if (errno == ERANGE)
            bad_line("value %u \"%s\" is beyond float's range (about 3.4e38)", k,
                     shown(text, len));
        else
            bad_line("value %u \"%s\" is not finite; the model needs finite numbers", k,
                     shown(text, len));
        return 0;
    }
    return 1;
}

/* Reads the next line of stdin into row[], character by character (no line-length limit). */
static int read_row(void)
{
    char text[MAX_VALUE_CHARS + 1];
    size_t len = 0;
    unsigned count = 0; /* values seen on this line */
    int c, too_long = 0, ok = 1, started = 0, after_comma = 0;
    line_no++;
    for (;;) {
        c = getchar();
        if (c == EOF && !started) return ROW_EOF;
        started = 1;
        if (c == ',' || c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == EOF ||
            c == '\f' || c == '\v') {
            if (len > 0 || too_long) {
                float v = 0;
                count++;
                if (ok) ok = parse_value(text, len, too_long, count, &v);
                if (ok && count <= ${NAME}_N_FEATURES) row[count - 1] = v;
                len = 0;
                too_long = after_comma = 0;
            }
            if (c == ',') {
                if (ok && (after_comma || count == 0)) {
                    bad_line("value %u is empty (nothing before this comma)", count + 1);
                    ok = 0;
                }
                after_comma = 1;
            }
            if (c == '\n' || c == EOF) break;
        } else if (len < MAX_VALUE_CHARS) {
            text[len++] = (char)c;
        } else {
            too_long = 1;
        }
    }
    if (ok && after_comma) {
        bad_line("the line ends with a comma; expected %u values, nothing after the last",
                 (unsigned)${NAME}_N_FEATURES);
        ok = 0;
    }
    if (ok && count == 0) {
        bad_line("empty line; expected %u values", (unsigned)${NAME}_N_FEATURES);
        ok = 0;
    } else if (ok && count != ${NAME}_N_FEATURES) {
        bad_line("expected %u values, got %u", (unsigned)${NAME}_N_FEATURES, count);
        ok = 0;
    }
    return ok ? ROW_OK : ROW_BAD;
}

static void print_label(const esb_model *m, uint32_t k)
{
    esb_label lab;
    esb_class_label(m, k, &lab);
    if (lab.kind == ESB_LABEL_INT) printf("%" PRId64, lab.i);
    else if (lab.kind == ESB_LABEL_FLOAT) printf("%.17g", lab.f);
    else fwrite(lab.s, 1, lab.len, stdout);
}

/* Predicts and prints the pending rows, the lines up to line_no - back (back 1 after a bad
 * line or the end of the input); a row the model refuses is named by its line. 0 on a model
 * error (the rows before it printed). */
static int flush_rows(const esb_model *m, unsigned long back)
{
    const size_t n = n_pending;
    size_t done = 0, d = 0, i;
    uint32_t j;
    esb_status st;
    n_pending = 0;
    row = rows[0];
    if (m->head == ESB_HEAD_IDENTITY) {
        st = esb_decision_batch(m, rows[0], n, ${NAME}_N_FEATURES, out, &done);
    } else {
        st = esb_predict_batch(m, rows[0], n, ${NAME}_N_FEATURES, classes, &done);
        if (done > 0 && esb_has_proba(m)) {
            esb_status sp = esb_predict_proba_batch(m, rows[0], done, ${NAME}_N_FEATURES, out, &d);
            if (sp != ESB_OK) st = sp, done = d;
        }
    }
    for (i = 0; i < done; i++) {
        if (m->head == ESB_HEAD_IDENTITY) {
            for (j = 0; j < m->n_outputs; j++)
                printf(j ? " %.9g" : "%.9g", (double)out[i * m->n_outputs + j]);
        } else {
            print_label(m, classes[i]);
            for (j = 0; esb_has_proba(m) && j < m->n_classes; j++)
                printf(j ? " %.9g" : "\t%.9g", (double)out[i * m->n_classes + j]);
        }
        printf("\n");
    }
    if (st != ESB_OK) {
        fprintf(stderr, "line %lu: model: %s\n", line_no - back - (n - done) + 1,
                esb_strerror(st));
        return 0;
    }
    return 1;
}

int main(void)
{
    esb_model m;
    esb_status st = esb_open(${name}_esb, ${name}_esb_len, &m);
    unsigned long n_bad = 0;
    int r;
    if (st != ESB_OK) {
        fprintf(stderr, "model: %s\n", m.message);
        return 2;
    }
#ifndef ESB_STREAMED
    if (esb_use_workspace(&m, workspace, sizeof workspace) != ESB_OK) {
        fprintf(stderr, "model: the workspace is too small\n");
        return 2;
    }
#endif
    while ((r = read_row()) != ROW_EOF) {
        if (r == ROW_BAD) {
            /* the rows before the first bad line are still predicted */
            if (n_bad == 0 && n_pending && !flush_rows(&m, 1)) return 2;
            if (++n_bad == MAX_REPORTED) {
                fprintf(stderr, "stopping after %d bad lines\n", MAX_REPORTED);
                break;
            }
        } else if (n_bad == 0) {
            row = rows[++n_pending % BATCH];
            if (n_pending == BATCH && !flush_rows(&m, 0)) return 2;
        }
    }
    /* at the end of the input line_no counts the line that was not there */
    if (n_bad == 0 && n_pending && !flush_rows(&m, 1)) return 2;
    if (ferror(stdin)) {
        fprintf(stderr, "line %lu: reading stdin failed\n", line_no);
        return 2;
    }
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "writing the predictions failed\n");
        return 2;
    }
    return n_bad ? 1 : 0;
}
"""
)


_MAKEFILE = """# Generated by `edgesparse export-c`.
CC ?= cc
CFLAGS ?= -O2 -std=c99 -Wall -Wextra -Werror -pedantic

model_main: main.c esb.c esb_knn.c esb_factors.c esb_text.c esb_tabular.c model_data.c \\
            esb.h esb_unicode.h \\
            model_data.h
\t$(CC) $(CFLAGS) -o $@ main.c esb.c model_data.c -lm

clean:
\trm -f model_main

.PHONY: clean
"""


def _readme(info: dict[str, Any], name: str, n_bytes: int) -> str:
    up = name.upper()
    exps = " + a power-of-two exponent per column" if "exponents" in info["sections"] else ""
    return f"""C export of an edgesparse model (generated by `edgesparse export-c`).

Model: {info["shape"]} ({info["head"]} head), {info["nnz"]} stored weights, {info["values"]}
values ({info["quantization"]}{exps}), index layout {info["index_layout"]}; {n_bytes} bytes of
.esb.

Build and run (C99, libc + libm only):

    make                      # or: cc -O2 -std=c99 -Wall -Wextra -Werror -o model_main \\
                              #         main.c esb.c model_data.c -lm
    echo "<{info["n_features"]} numbers>" | ./model_main
    ./model_main < rows.csv   # one row per line; values separated by spaces, tabs or commas

Input: one row of {info["n_features"]} finite numbers per line (no header line). A bad line
(wrong count, empty value, not a number, NaN/Inf, out of float range) is reported on stderr
as "line N: ..."; output stops at the first one, the rest is still checked (up to 20 bad
lines reported). Exit status: 0 all predicted, 1 bad input, 2 the model or output failed.

Cross-compile, e.g. for a 64-bit Raspberry Pi:

    make CC=aarch64-linux-gnu-gcc CFLAGS="-O2 -std=c99 -static"

Files: esb.h / esb.c (the runtime; API and the numeric bound in esb.h; esb.c includes
esb_text.c and esb_unicode.h, the text input stage, and esb_tabular.c), model_data.c (the
blob as `{name}_esb`, {name}_esb_len bytes, 8-byte aligned, const), model_data.h (shape
constants {up}_N_FEATURES, ...), main.c (example: stdin rows -> predictions).

RAM: the model is used in place (no copy). main.c decodes the column indices once into a
{up}_WORKSPACE_BYTES-byte static workspace, the fastest layout for this model
({info["ws_layout"]}, see esb.h); build with -DESB_STREAMED to skip it and decode on the fly
instead (0 bytes).
"""
