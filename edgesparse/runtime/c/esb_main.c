/*
 * esb_main.c - command-line driver for the C runtime: verify blobs, predict rows, benchmark.
 *
 *   esb verify MODEL.esb...                        one line per file: "OK" or
 *                                                  "ERR <code> <message>"; exit 1 if any failed
 *   esb predict MODEL.esb ROWS.bin [--stream|--min-workspace|--layout NAME]
 *               [--one-row] [--pad N] [--no-csr-index]
 *                                                  one line per row:
 *                                                  "<class index or -1>\t<scores>\t<probas>"
 *   esb predict TEXT_MODEL.esb DOCS.txt [options]   a model with a text input stage: one
 *                                                  document per line of DOCS (UTF-8), the
 *                                                  same output line per document
 *   esb features TEXT_MODEL.esb DOCS.txt           one line per document: its feature row,
 *                                                  "col:value ..." (values "%.17g")
 *   esb predict|features TABULAR_MODEL.esb ROWS.csv  a model with a tabular input stage: a
 *                                                  CSV with a header, see esb_tabular_main.c
 *   esb bench MODEL.esb ROWS.bin|DOCS.txt|ROWS.csv RUNS WARMUP [options]   one JSON line:
 *                                                  esb_bench_main.c (rows), esb_text_main.c
 *                                                  (documents), esb_tabular_main.c (records)
 *
 * By default the index sections are decoded once into a workspace of esb_workspace_size_fast
 * bytes (esb_use_workspace: the dense or transposed layout); --min-workspace gives it only
 * esb_workspace_size bytes (dense, else the column list); --stream decodes them on the fly
 * during every call (no workspace); --layout streamed|columns|dense|transposed builds that
 * layout whatever the model qualifies for (esb_use_layout, in esb_layout_size bytes).
 * CSR rows in the transposed layout also get the CSR column index (esb_use_csr_index,
 * esb_csr_index_size bytes, counted in workspace_bytes and load_ns); --no-csr-index leaves it
 * out (the calls then search the used columns; the same outputs).
 *
 * ROWS.bin (written by edgesparse.export_c.write_rows), little-endian:
 *   0  "ESBROWS1"   8 bytes
 *   8  u32 kind     0 dense, 1 CSR
 *   12 u32 n_rows, 16 u32 n_features, 20 u32 nnz (CSR; 0 for dense)
 *   24 dense: n_rows * n_features f32
 *      CSR:   (n_rows + 1) u32 indptr, nnz i32 indices (strictly increasing per row), nnz f32
 *
 * predict: the rows go through the batch calls (esb_decision_batch, esb_predict_batch,
 * esb_predict_proba_batch; their _csr_batch forms for CSR rows) over all rows at once;
 * --one-row sends them one at a time through esb_decision / esb_predict /
 * esb_predict_proba (or the _csr calls) instead (the outputs are the same bits: tests compare
 * the two), --pad N
 * lays the rows out with a stride of n_features + N floats, the N extra ones NaN (which the
 * runtime must not read).
 * bench: see esb_bench_main.c (included below): its JSON line, the timing, --predictions.
 *
 * Errors: a row the runtime refuses (NaN/Inf, a CSR row that is not canonical) stops predict
 * and bench with "esb: row N: <reason>" on stderr and exit 1 (bench checks every timed call's
 * status after its timer has stopped); bad files, unknown options and malformed numbers exit 2.
 *
 * Recommenders (version-2 blobs, k-NN; version-3 blobs, matrix factorization): verify,
 * predict PAIRS.csv, recommend and bench, see esb_rec_main.c (included below).
 *
 * The driver allocates (files, timings) and frees all of it on every exit, success or error
 * (each command has one cleanup path; the sanitizer tests run with leak detection on); the
 * runtime (esb.c) never allocates.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "esb.h"

static unsigned char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    unsigned char *buf = NULL;
    size_t cap = 0, n = 0;
    if (!f) return NULL;
    for (;;) {
        size_t got;
        if (n == cap) {
            unsigned char *nb;
            cap = cap ? cap * 2 : 65536;
            nb = (unsigned char *)realloc(buf, cap);
            if (!nb) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = nb;
        }
        got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) break;
    }
    fclose(f);
    /* An exact-size copy, so a sanitizer sees any read past the end of the blob. */
    {
        unsigned char *exact = (unsigned char *)malloc(n ? n : 1);
        if (exact && n) memcpy(exact, buf, n);
        free(buf);
        *len = n;
        return exact;
    }
}

static uint32_t rd32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

typedef struct rows {
    unsigned char *raw;
    uint32_t kind, n_rows, n_features, nnz;
    float *x;          /* dense */
    uint32_t *indptr;  /* CSR */
    int32_t *indices;
    float *data;
} rows;

/* Frees what read_rows allocated (safe twice, and on rows it failed to read). */
static void free_rows(rows *r)
{
    free(r->raw);
    free(r->x);
    free(r->indptr);
    free(r->indices);
    free(r->data);
    memset(r, 0, sizeof *r);
}

/* The rows file's header checked, its arrays copied out of r->raw; 0 said on stderr. */
static int rows_from_raw(const char *path, size_t len, rows *r)
{
    size_t need, ip;
    uint32_t i;
    r->kind = rd32(r->raw + 8);
    r->n_rows = rd32(r->raw + 12);
    r->n_features = rd32(r->raw + 16);
    r->nnz = rd32(r->raw + 20);
    ip = 4 * ((size_t)r->n_rows + 1);
    need = r->kind == 0 ? 24 + 4 * (size_t)r->n_rows * r->n_features
                        : 24 + ip + 8 * (size_t)r->nnz;
    if (r->kind > 1 || len != need || r->n_rows == 0) {
        fprintf(stderr, "esb: %s: bad rows header or size\n", path);
        return 0;
    }
    /* Copies into typed arrays (the file's bytes are little-endian, like every target). */
    if (r->kind == 0) {
        r->x = (float *)malloc(4 * (size_t)r->n_rows * r->n_features + 4);
        if (!r->x) {
            fprintf(stderr, "esb: %s: out of memory for the rows\n", path);
            return 0;
        }
        memcpy(r->x, r->raw + 24, 4 * (size_t)r->n_rows * r->n_features);
        return 1;
    }
    r->indptr = (uint32_t *)malloc(ip);
    r->indices = (int32_t *)malloc(4 * (size_t)r->nnz + 4);
    r->data = (float *)malloc(4 * (size_t)r->nnz + 4);
    if (!r->indptr || !r->indices || !r->data) {
        fprintf(stderr, "esb: %s: out of memory for the rows\n", path);
        return 0;
    }
    memcpy(r->indptr, r->raw + 24, ip);
    memcpy(r->indices, r->raw + 24 + ip, 4 * (size_t)r->nnz);
    memcpy(r->data, r->raw + 24 + ip + 4 * (size_t)r->nnz, 4 * (size_t)r->nnz);
    for (i = 0; i < r->n_rows; i++)
        if (r->indptr[i] > r->indptr[i + 1] || r->indptr[i + 1] > r->nnz) {
            fprintf(stderr, "esb: %s: bad indptr\n", path);
            return 0;
        }
    return 1;
}

/* ROWS.bin into r (free_rows frees it); 0 said on stderr, with nothing left allocated. */
static int read_rows(const char *path, rows *r)
{
    size_t len = 0;
    memset(r, 0, sizeof *r);
    r->raw = read_file(path, &len);
    if (!r->raw || len < 24 || memcmp(r->raw, "ESBROWS1", 8) != 0) {
        fprintf(stderr, "esb: %s is not a rows file (ESBROWS1)\n", path);
        free_rows(r);
        return 0;
    }
    if (!rows_from_raw(path, len, r)) {
        free_rows(r);
        return 0;
    }
    free(r->raw);
    r->raw = NULL;
    return 1;
}

/* Names of ESB_LAYOUT_* (what esb_layout_name returns for each). */
static const char *layout_name_of(int layout)
{
    static const char *const NAMES[4] = {"streamed", "columns", "dense", "transposed"};
    return layout >= 0 && layout < 4 ? NAMES[layout] : "?";
}

typedef struct loaded {
    unsigned char *blob;
    size_t len;
    esb_model m;
    int32_t *ws;
    int32_t *csr_ix; /* the CSR column index (use_csr_index), or NULL */
    size_t ws_bytes; /* ws's and csr_ix's */
} loaded;

/* Frees what load_model and use_csr_index allocated (safe twice, and on a failed load). */
static void free_loaded(loaded *l)
{
    free(l->csr_ix);
    free(l->ws);
    free(l->blob);
    l->csr_ix = l->ws = NULL;
    l->blob = NULL;
}

/* stream: 1 streamed, 2 the minimal workspace, 0 the fastest layout's workspace,
 * FORCED + ESB_LAYOUT_* that layout (esb_use_layout). */
enum { FORCED = 16 };

/* The model's workspace for `stream` (none when streamed); 0 said on stderr. */
static int load_workspace(loaded *l, int stream)
{
    if (stream >= FORCED) {
        l->ws_bytes = esb_layout_size(&l->m, stream - FORCED);
        l->ws = (int32_t *)malloc(l->ws_bytes ? l->ws_bytes : 4);
        if (!l->ws || esb_use_layout(&l->m, stream - FORCED, l->ws, l->ws_bytes) != ESB_OK) {
            fprintf(stderr, "esb: cannot set up the %s layout\n",
                    layout_name_of(stream - FORCED));
            return 0;
        }
    } else if (stream != 1) {
        l->ws_bytes = stream == 2 ? esb_workspace_size(&l->m) : esb_workspace_size_fast(&l->m);
        l->ws = (int32_t *)malloc(l->ws_bytes ? l->ws_bytes : 4);
        if (!l->ws || esb_use_workspace(&l->m, l->ws, l->ws_bytes) != ESB_OK) {
            fprintf(stderr, "esb: cannot set up the workspace\n");
            return 0;
        }
    }
    return 1;
}

/* The blob read and opened, its workspace set up (free_loaded frees them); 0 said on stderr,
 * with nothing left allocated. */
static int load_model(const char *path, int stream, loaded *l)
{
    l->ws = l->csr_ix = NULL;
    l->ws_bytes = 0;
    l->blob = read_file(path, &l->len);
    if (!l->blob) {
        fprintf(stderr, "esb: cannot read %s\n", path);
        return 0;
    }
    if (esb_open(l->blob, l->len, &l->m) != ESB_OK) {
        fprintf(stderr, "esb: %s: %s\n", path, l->m.message);
        free_loaded(l);
        return 0;
    }
    if (!load_workspace(l, stream)) {
        free_loaded(l);
        return 0;
    }
    return 1;
}

/* CSR rows in the transposed layout: build the CSR column index (esb_use_csr_index, 4 bytes
 * per feature) in a second buffer, l->csr_ix, counted in ws_bytes; nothing otherwise or with
 * --no-csr-index (the calls then search the used columns). */
static int use_csr_index(loaded *l, const rows *r, int no_index)
{
    size_t bytes;
    if (no_index || r->kind != 1 || strcmp(esb_layout_name(&l->m), "transposed") != 0) return 1;
    bytes = esb_csr_index_size(&l->m);
    l->csr_ix = (int32_t *)malloc(bytes ? bytes : 4);
    if (!l->csr_ix || esb_use_csr_index(&l->m, l->csr_ix, bytes) != ESB_OK) {
        fprintf(stderr, "esb: cannot set up the CSR column index\n");
        return 0;
    }
    l->ws_bytes += bytes;
    return 1;
}

/* The rows have the model's feature count; 0 said on stderr. */
static int rows_fit(const loaded *l, const rows *r)
{
    if (r->n_features == l->m.n_features) return 1;
    fprintf(stderr, "esb: rows have %u features, the model expects %u\n",
            (unsigned)r->n_features, (unsigned)l->m.n_features);
    return 0;
}

enum { OP_PREDICT, OP_PROBA, OP_DECISION, OP_RECOMMEND }; /* recommend: k-NN only */

/* One call on row i; returns the status, accumulates a checksum. */
static esb_status call(const loaded *l, const rows *r, uint32_t i, int op, float *buf,
                       double *checksum)
{
    const esb_model *m = &l->m;
    esb_status st;
    uint32_t k = 0;
    if (r->kind == 0) {
        const float *x = r->x + (size_t)i * r->n_features;
        if (op == OP_PREDICT) st = esb_predict(m, x, &k);
        else if (op == OP_PROBA) st = esb_predict_proba(m, x, buf);
        else st = esb_decision(m, x, buf);
    } else {
        uint32_t a = r->indptr[i], n = r->indptr[i + 1] - a;
        const int32_t *ix = r->indices + a;
        const float *v = r->data + a;
        if (op == OP_PREDICT) st = esb_predict_csr(m, n, ix, v, &k);
        else if (op == OP_PROBA) st = esb_predict_proba_csr(m, n, ix, v, buf);
        else st = esb_decision_csr(m, n, ix, v, buf);
    }
    *checksum += op == OP_PREDICT ? (double)k : (double)buf[0];
    return st;
}

/* Row i's class index (esb_predict, esb_predict_csr) into *k. */
static esb_status predict_row(const loaded *l, const rows *r, uint32_t i, uint32_t *k)
{
    if (r->kind == 0) return esb_predict(&l->m, r->x + (size_t)i * r->n_features, k);
    return esb_predict_csr(&l->m, r->indptr[i + 1] - r->indptr[i], r->indices + r->indptr[i],
                           r->data + r->indptr[i], k);
}

static int is_knn_blob(const unsigned char *b, size_t len);
static int knn_verify_blob(unsigned char *blob, size_t len);

static int cmd_verify(int argc, char **argv)
{
    int i, bad = 0;
    for (i = 0; i < argc; i++) {
        size_t len = 0;
        esb_model m;
        esb_status st;
        unsigned char *blob = read_file(argv[i], &len);
        if (!blob) {
            printf("ERR -1 cannot read %s\n", argv[i]);
            bad = 1;
            continue;
        }
        if (is_knn_blob(blob, len)) { /* versions 2 and 3: esb_rec_main.c */
            bad |= knn_verify_blob(blob, len);
            continue;
        }
        st = esb_open(blob, len, &m);
        if (st == ESB_OK) printf("OK\n");
        else {
            printf("ERR %d %s\n", (int)st, m.message);
            bad = 1;
        }
        free(blob);
    }
    return bad;
}

/* One output line; cls < 0 for regressors, proba NULL without predict_proba. */
static void print_row(const esb_model *m, long cls, const float *scores, const float *proba)
{
    uint32_t j;
    printf("%ld\t", cls);
    for (j = 0; j < m->n_outputs; j++) printf(j ? " %.9g" : "%.9g", (double)scores[j]);
    printf("\t");
    if (proba)
        for (j = 0; j < m->n_classes; j++) printf(j ? " %.9g" : "%.9g", (double)proba[j]);
    printf("\n");
}

/* The rows with a stride of n_features + pad floats, the pad NaN (pad 0: r->x itself). */
static float *strided_rows(const rows *r, size_t pad)
{
    size_t i, j, stride = (size_t)r->n_features + pad;
    float *x, nan;
    uint32_t bits = 0x7FC00000u;
    if (pad == 0) return r->x;
    memcpy(&nan, &bits, 4);
    x = (float *)malloc(4 * stride * r->n_rows);
    if (!x) return NULL;
    for (i = 0; i < r->n_rows; i++) {
        memcpy(x + i * stride, r->x + i * r->n_features, 4 * (size_t)r->n_features);
        for (j = r->n_features; j < stride; j++) x[i * stride + j] = nan;
    }
    return x;
}

/* One batch call over all rows: dense (x, with that stride) or CSR. */
static esb_status batch_call(const esb_model *m, const rows *r, const float *x, size_t stride,
                             int op, void *out, size_t *done)
{
    size_t n = r->n_rows;
    if (r->kind == 1) {
        if (op == OP_PREDICT)
            return esb_predict_csr_batch(m, n, r->indptr, r->indices, r->data, out, done);
        if (op == OP_PROBA)
            return esb_predict_proba_csr_batch(m, n, r->indptr, r->indices, r->data, out, done);
        return esb_decision_csr_batch(m, n, r->indptr, r->indices, r->data, out, done);
    }
    if (op == OP_PREDICT) return esb_predict_batch(m, x, n, stride, out, done);
    if (op == OP_PROBA) return esb_predict_proba_batch(m, x, n, stride, out, done);
    return esb_decision_batch(m, x, n, stride, out, done);
}

/* Every row's scores, class and probabilities through the batch calls, then the lines of the
 * rows before the first refused one (said on stderr: exit 1). */
static int predict_batch_print(const esb_model *m, const rows *r, const float *x, size_t stride,
                               float *scores, float *proba, uint32_t *cls)
{
    size_t done = r->n_rows, d, i;
    esb_status st, first = ESB_OK;
    st = batch_call(m, r, x, stride, OP_DECISION, scores, &done);
    if (st != ESB_OK) first = st;
    if (m->head != ESB_HEAD_IDENTITY) {
        st = batch_call(m, r, x, stride, OP_PREDICT, cls, &d);
        if (st != ESB_OK && d <= done) first = st, done = d;
    }
    if (esb_has_proba(m)) {
        st = batch_call(m, r, x, stride, OP_PROBA, proba, &d);
        if (st != ESB_OK && d <= done) first = st, done = d;
    }
    for (i = 0; i < done; i++)
        print_row(m, m->head != ESB_HEAD_IDENTITY ? (long)cls[i] : -1,
                  scores + i * m->n_outputs,
                  esb_has_proba(m) ? proba + i * m->n_classes : NULL);
    if (first != ESB_OK) {
        fprintf(stderr, "esb: row %u: %s\n", (unsigned)done, esb_strerror(first));
        return 1;
    }
    return 0;
}

/* predict through the batch calls (dense rows laid out with `pad`, or CSR). */
static int predict_batch(const esb_model *m, const rows *r, size_t pad)
{
    size_t n = r->n_rows, stride = (size_t)r->n_features + pad;
    float *x = r->kind == 0 ? strided_rows(r, pad) : NULL;
    float *scores = (float *)malloc(4 * n * m->n_outputs + 4);
    float *proba = (float *)malloc(4 * n * ((size_t)m->n_classes + 1));
    uint32_t *cls = (uint32_t *)malloc(4 * n + 4);
    int rc = 2;
    if ((r->kind == 1 || x) && scores && proba && cls)
        rc = predict_batch_print(m, r, x, stride, scores, proba, cls);
    if (x != r->x) free(x);
    free(scores);
    free(proba);
    free(cls);
    return rc;
}

/* predict --one-row: each row through esb_decision, esb_predict and esb_predict_proba (or
 * their _csr forms) on its own. */
static int predict_one_row(const loaded *l, const rows *r)
{
    float *scores = (float *)malloc(4 * (size_t)l->m.n_outputs);
    float *proba = (float *)malloc(4 * ((size_t)l->m.n_classes + 1));
    uint32_t i;
    int rc = scores && proba ? 0 : 2;
    for (i = 0; rc == 0 && i < r->n_rows; i++) {
        double ck = 0;
        long cls = -1;
        esb_status st = call(l, r, i, OP_DECISION, scores, &ck);
        if (st == ESB_OK && l->m.head != ESB_HEAD_IDENTITY) {
            uint32_t k;
            st = predict_row(l, r, i, &k);
            cls = (long)k;
        }
        if (st == ESB_OK && esb_has_proba(&l->m)) st = call(l, r, i, OP_PROBA, proba, &ck);
        if (st != ESB_OK) {
            fprintf(stderr, "esb: row %u: %s\n", (unsigned)i, esb_strerror(st));
            rc = 1;
        } else {
            print_row(&l->m, cls, scores, esb_has_proba(&l->m) ? proba : NULL);
        }
    }
    free(scores);
    free(proba);
    return rc;
}

static int cmd_text(const loaded *l, const char *data, int features); /* esb_text_main.c */
static int cmd_tabular(const loaded *l, const char *data, int features); /* esb_tabular_main.c */

static int cmd_predict(const char *model, const char *data, int stream, int one_row, long pad,
                       int no_index)
{
    loaded l;
    rows r;
    int rc = 2;
    memset(&r, 0, sizeof r);
    if (!load_model(model, stream, &l)) return 2;
    if (esb_has_text(&l.m)) rc = cmd_text(&l, data, 0);
    else if (esb_has_tabular(&l.m)) rc = cmd_tabular(&l, data, 0);
    else if (read_rows(data, &r) && rows_fit(&l, &r) && use_csr_index(&l, &r, no_index))
        rc = one_row ? predict_one_row(&l, &r)
                     : predict_batch(&l.m, &r, r.kind == 0 ? (size_t)pad : 0);
    free_rows(&r);
    free_loaded(&l);
    return rc;
}

static int usage(void)
{
    fprintf(stderr, "usage: esb verify MODEL.esb...\n"
                    "       esb features TEXT_MODEL.esb DOCS.txt\n"
                    "       esb predict|features TABULAR_MODEL.esb ROWS.csv\n"
                    "       esb predict MODEL.esb ROWS.bin [--stream|--min-workspace|--layout L] "
                    "[--one-row] [--pad N] [--no-csr-index]\n"
                    "       esb bench MODEL.esb ROWS.bin RUNS WARMUP "
                    "[--stream|--min-workspace|--layout L] "
                    "[--op predict|proba|decision] [--batch N] [--predictions FILE] [--one-row]\n"
                    "             [--no-csr-index]\n"
                    "       esb bench TEXT_MODEL.esb DOCS.txt RUNS WARMUP [--op predict|proba|decision] "
                    "[--batch N] [--predictions FILE]\n"
                    "       esb bench TABULAR_MODEL.esb ROWS.csv RUNS WARMUP "
                    "[--op predict|proba|decision] [--batch N] [--predictions FILE]\n"
                    "       esb predict KNN.esb PAIRS.csv\n"
                    "       esb recommend KNN.esb USER N [--all]\n"
                    "       esb bench KNN.esb PAIRS.csv RUNS WARMUP [--op predict|recommend] "
                    "[--batch N]\n"
                    "       (L: streamed, columns, dense or transposed; KNN.esb: a k-NN or "
                    "matrix-factorization recommender, version 2 or 3)\n");
    return 2;
}

/* A whole number argument, or a message and 0. */
static int parse_count(const char *what, const char *text, long *out)
{
    char *end;
    errno = 0;
    *out = strtol(text, &end, 10);
    if (end == text || *end != '\0' || errno == ERANGE) {
        fprintf(stderr, "esb: %s must be a whole number, got \"%s\"\n", what, text);
        return 0;
    }
    return 1;
}

#define ESB_BENCH_MAIN_IN_ESB_MAIN 1
#include "esb_bench_main.c"
#define ESB_REC_MAIN_IN_ESB_MAIN 1
#include "esb_rec_main.c"
#define ESB_TABULAR_MAIN_IN_ESB_MAIN 1
#include "esb_tabular_main.c"
#include "esb_text_main.c"

/* esb features MODEL DOCS|ROWS.csv: a text or tabular model's feature rows. */
static int cmd_features(const char *model, const char *data)
{
    loaded l;
    int rc;
    if (!load_model(model, 1, &l)) return 2;
    if (esb_has_tabular(&l.m)) rc = cmd_tabular(&l, data, 1);
    else if (esb_has_text(&l.m)) rc = cmd_text(&l, data, 1);
    else {
        fprintf(stderr, "esb: %s has no text or tabular input stage\n", model);
        rc = 2;
    }
    free_loaded(&l);
    return rc;
}

/* The options from argv[first] on into o (predict takes --pad): -1, or the exit status when
 * one is wrong (usage or a message said). */
static int parse_options(int argc, char **argv, int first, bench_opts *o)
{
    int i;
    for (i = first; i < argc; i++) {
        if (strcmp(argv[i], "--stream") == 0) o->stream = 1;
        else if (strcmp(argv[i], "--min-workspace") == 0) o->stream = 2;
        else if (strcmp(argv[i], "--layout") == 0 && i + 1 < argc) {
            int k;
            for (k = 0; k < 4 && strcmp(argv[i + 1], layout_name_of(k)) != 0; k++) continue;
            if (k == 4) return usage();
            o->stream = k == ESB_LAYOUT_STREAMED ? 1 : FORCED + k;
            i++;
        }
        else if (strcmp(argv[i], "--op") == 0 && i + 1 < argc) {
            const char *op = argv[++i];
            if (strcmp(op, "predict") == 0) o->op = OP_PREDICT;
            else if (strcmp(op, "proba") == 0) o->op = OP_PROBA;
            else if (strcmp(op, "decision") == 0) o->op = OP_DECISION;
            else if (strcmp(op, "recommend") == 0) o->op = OP_RECOMMEND;
            else return usage();
        } else if (strcmp(argv[i], "--batch") == 0 && i + 1 < argc) {
            if (!parse_count("--batch", argv[++i], &o->batch)) return 2;
        } else if (strcmp(argv[i], "--one-row") == 0) {
            o->one_row = 1;
        } else if (strcmp(argv[i], "--no-csr-index") == 0) {
            o->no_index = 1;
        } else if (strcmp(argv[i], "--pad") == 0 && i + 1 < argc && first == 4) {
            if (!parse_count("--pad", argv[++i], &o->pad) || o->pad < 0 || o->pad > 1024) {
                fprintf(stderr, "esb: --pad must be 0..1024\n");
                return 2;
            }
        } else if (strcmp(argv[i], "--predictions") == 0 && i + 1 < argc) {
            o->predictions = argv[++i];
        } else {
            fprintf(stderr, "esb: unknown option or missing value: %s\n", argv[i]);
            return usage();
        }
    }
    return -1;
}

int main(int argc, char **argv)
{
    int first_option, rc;
    bench_opts o;
    memset(&o, 0, sizeof o);
    o.op = OP_PREDICT;
    o.batch = 1;
    if (argc < 2) return usage();
    if (strcmp(argv[1], "verify") == 0) return argc < 3 ? usage() : cmd_verify(argc - 2, argv + 2);
    if (strcmp(argv[1], "recommend") == 0 && argc >= 5) return knn_cmd_recommend(argc - 2, argv + 2);
    if (strcmp(argv[1], "features") == 0)
        return argc != 4 ? usage() : cmd_features(argv[2], argv[3]);
    if (strcmp(argv[1], "predict") == 0 && argc >= 4) first_option = 4;
    else if (strcmp(argv[1], "bench") == 0 && argc >= 6) first_option = 6;
    else return usage();
    rc = parse_options(argc, argv, first_option, &o);
    if (rc >= 0) return rc;
    if (first_option == 4 && file_is_knn(argv[2])) return knn_cmd_predict(argv[2], argv[3]);
    if (first_option == 4) return cmd_predict(argv[2], argv[3], o.stream, o.one_row, o.pad,
                                               o.no_index);
    if (!parse_count("RUNS", argv[4], &o.runs) || !parse_count("WARMUP", argv[5], &o.warmup))
        return 2;
    if (file_is_knn(argv[2])) return knn_cmd_bench(argv[2], argv[3], &o);
    return cmd_bench(argv[2], argv[3], &o);
}
