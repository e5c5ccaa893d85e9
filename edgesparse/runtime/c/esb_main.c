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
 *   esb bench MODEL.esb ROWS.bin RUNS WARMUP [--stream|--min-workspace|--layout NAME]
 *             [--op predict|proba|decision]
 *             [--batch N] [--predictions FILE] [--one-row] [--no-csr-index]
 *                                                  one JSON line (see below)
 *   esb bench TEXT_MODEL.esb DOCS.txt RUNS WARMUP [options]   the same JSON line, one call
 *                                                  being N documents, featurization included
 *                                                  (esb_text_main.c, included below)
 *   esb bench TABULAR_MODEL.esb ROWS.csv RUNS WARMUP [options]   the same, one call being N
 *                                                  records from their CSV text
 *                                                  (esb_tabular_main.c, included below)
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
 * bench: one call is N (--batch, default 1) consecutive rows, call i starting at row
 * i * N % n_rows (wrapping): one batch call per contiguous run (one when N <= n_rows and
 * the rows do not wrap; dense or CSR), --one-row one esb_* call per row (the loop before the
 * batch API, to compare). The JSON line's "api" says which: "batch" or "one-row".
 * WARMUP untimed calls, then RUNS calls each timed on its own with
 * clock_gettime(CLOCK_MONOTONIC). Prints
 *   {"engine": "c", "op": ..., "mode": "decoded"|"streamed", "layout": "dense"|"transposed"|
 *    "columns"|"streamed", "batch": .., "runs": ..,
 *    "warmup": .., "rows": .., "p50_ns": .., "p90_ns": .., "p99_ns": .., "p999_ns": ..,
 *    "mean_ns": .., "min_ns": .., "timer_overhead_ns": .., "load_ns": ..,
 *    "cold_start_ns": .. or null, "peak_rss_bytes": .., "model_rss_bytes": .. or null,
 *    "model_bytes": .., "workspace_bytes": .., "checksum": .., "api": "batch"|"one-row"}
 * Percentiles interpolate linearly between order statistics at rank q * (RUNS - 1) (numpy's
 * default, as edgesparse.bench.probe does) and include the timer's own cost, reported as
 * timer_overhead_ns (median of empty intervals). load_ns: reading the blob, esb_open and the
 * workspace. cold_start_ns: from the process-start timestamp in EDGESPARSE_PROBE_T0_NS (on the
 * clock EDGESPARSE_PROBE_T0_CLOCK names: monotonic, the default, or realtime) to the first
 * prediction returned; null without a timestamp. peak_rss_bytes is the VmHWM of this whole
 * process (program, libc, model, rows, the 4 * RUNS bytes of timings; ru_maxrss where /proc is
 * missing); model_rss_bytes the VmRSS growth across the model load. Under qemu-user both are
 * the emulator's own.
 * --predictions FILE: after timing, one line per row of ROWS: the predicted class index
 * (classifiers) or the decision values separated by spaces (regressors, "%.9g").
 *
 * Errors: a row the runtime refuses (NaN/Inf, a CSR row that is not canonical) stops predict
 * and bench with "esb: row N: <reason>" on stderr and exit 1 (bench checks every timed call's
 * status after its timer has stopped); bad files, unknown options and malformed numbers exit 2.
 *
 * Recommenders (version-2 blobs, k-NN; version-3 blobs, matrix factorization): verify,
 * predict PAIRS.csv, recommend and bench, see esb_rec_main.c (included below).
 *
 * The driver allocates (files, timings); the runtime (esb.c) never does.
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

static int read_rows(const char *path, rows *r)
{
    size_t len = 0, need;
    r->raw = read_file(path, &len);
    if (!r->raw || len < 24 || memcmp(r->raw, "ESBROWS1", 8) != 0) {
        fprintf(stderr, "esb: %s is not a rows file (ESBROWS1)\n", path);
        return 0;
    }
    r->kind = rd32(r->raw + 8);
    r->n_rows = rd32(r->raw + 12);
    r->n_features = rd32(r->raw + 16);
    r->nnz = rd32(r->raw + 20);
    if (r->kind == 0) {
        need = 24 + 4 * (size_t)r->n_rows * r->n_features;
    } else {
        need = 24 + 4 * ((size_t)r->n_rows + 1) + 8 * (size_t)r->nnz;
    }
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
    } else {
        size_t ip = 4 * ((size_t)r->n_rows + 1);
        uint32_t i;
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
    size_t ws_bytes;
} loaded;

/* stream: 1 streamed, 2 the minimal workspace, 0 the fastest layout's workspace,
 * FORCED + ESB_LAYOUT_* that layout (esb_use_layout). */
enum { FORCED = 16 };

static int load_model(const char *path, int stream, loaded *l)
{
    esb_status st;
    l->ws = NULL;
    l->ws_bytes = 0;
    l->blob = read_file(path, &l->len);
    if (!l->blob) {
        fprintf(stderr, "esb: cannot read %s\n", path);
        return 0;
    }
    st = esb_open(l->blob, l->len, &l->m);
    if (st != ESB_OK) {
        fprintf(stderr, "esb: %s: %s\n", path, l->m.message);
        return 0;
    }
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

/* CSR rows in the transposed layout: build the CSR column index (esb_use_csr_index, 4 bytes
 * per feature) in a second buffer, counted in ws_bytes; nothing otherwise or with
 * --no-csr-index (the calls then search the used columns). */
static int use_csr_index(loaded *l, const rows *r, int no_index)
{
    size_t bytes;
    int32_t *ix;
    if (no_index || r->kind != 1 || strcmp(esb_layout_name(&l->m), "transposed") != 0) return 1;
    bytes = esb_csr_index_size(&l->m);
    ix = (int32_t *)malloc(bytes ? bytes : 4);
    if (!ix || esb_use_csr_index(&l->m, ix, bytes) != ESB_OK) {
        fprintf(stderr, "esb: cannot set up the CSR column index\n");
        return 0;
    }
    l->ws_bytes += bytes;
    return 1;
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

/* predict through the batch calls (dense or CSR rows): every row's scores, class and
 * probabilities, then the lines of the rows before the first refused one. */
static int predict_batch(const esb_model *m, const rows *r, size_t pad)
{
    size_t n = r->n_rows, stride = (size_t)r->n_features + pad, done = n, d, i;
    const float *x = r->kind == 0 ? strided_rows(r, pad) : NULL;
    float *scores = (float *)malloc(4 * n * m->n_outputs + 4);
    float *proba = (float *)malloc(4 * n * ((size_t)m->n_classes + 1));
    uint32_t *cls = (uint32_t *)malloc(4 * n + 4);
    esb_status st, first = ESB_OK;
    if ((r->kind == 0 && !x) || !scores || !proba || !cls) return 2;
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

/* A text model's documents: DOCS is UTF-8, one document per line ('\n'; a '\r' before it is
 * dropped; no document after a final '\n'). Each line goes through esb_text_features (features:
 * "col:value ..." with %.17g values) or esb_decision_text / esb_predict_text /
 * esb_predict_proba_text (predict: print_row's line), with a workspace sized for the longest
 * line and the model's text index. A refused document stops with "esb: document N: <reason>"
 * and exit 1. */
static int cmd_text(const loaded *l, const char *data, int features)
{
    size_t len = 0, start, end, longest = 0, n = 0, bytes;
    unsigned char *docs = read_file(data, &len);
    void *ws;
    float *scores, *proba;
    esb_text_index ix;
    uint32_t *ix_buf = (uint32_t *)malloc(esb_text_index_size(&l->m) + 4);
    if (!docs) {
        fprintf(stderr, "esb: cannot read %s\n", data);
        return 2;
    }
    for (start = 0; start < len; start = end + 1) {
        for (end = start; end < len && docs[end] != '\n'; end++) continue;
        if (end - start > longest) longest = end - start;
    }
    bytes = esb_text_workspace_size(&l->m, longest);
    ws = malloc(bytes ? bytes : 8);
    scores = (float *)malloc(4 * (size_t)l->m.n_outputs);
    proba = (float *)malloc(4 * ((size_t)l->m.n_classes + 1));
    if (!ws || !scores || !proba || !ix_buf) return 2;
    if (esb_text_index_build(&l->m, ix_buf, esb_text_index_size(&l->m), &ix) != ESB_OK) {
        fprintf(stderr, "esb: building the text index failed\n");
        return 2;
    }
    for (start = 0; start < len; start = end + 1, n++) {
        size_t doc_len;
        esb_status st;
        long cls = -1;
        for (end = start; end < len && docs[end] != '\n'; end++) continue;
        doc_len = end - start - (end > start && docs[end - 1] == '\r');
        if (features) {
            uint32_t nnz, j;
            const int32_t *idx;
            const double *val;
            st = esb_text_features_ix(&l->m, &ix, (const char *)docs + start, doc_len, ws, bytes,
                                      &nnz, &idx, &val);
            if (st == ESB_OK) {
                for (j = 0; j < nnz; j++)
                    printf(j ? " %ld:%.17g" : "%ld:%.17g", (long)idx[j], val[j]);
                printf("\n");
            }
        } else {
            const char *doc = (const char *)docs + start;
            st = esb_decision_text_ix(&l->m, &ix, doc, doc_len, ws, bytes, scores);
            if (st == ESB_OK && l->m.head != ESB_HEAD_IDENTITY) {
                uint32_t k;
                st = esb_predict_text_ix(&l->m, &ix, doc, doc_len, ws, bytes, &k);
                cls = (long)k;
            }
            if (st == ESB_OK && esb_has_proba(&l->m))
                st = esb_predict_proba_text_ix(&l->m, &ix, doc, doc_len, ws, bytes, proba);
            if (st == ESB_OK) print_row(&l->m, cls, scores, esb_has_proba(&l->m) ? proba : NULL);
        }
        if (st != ESB_OK) {
            fprintf(stderr, "esb: document %lu: %s\n", (unsigned long)n, esb_strerror(st));
            return 1;
        }
    }
    return 0;
}

static int cmd_tabular(const loaded *l, const char *data, int features); /* esb_tabular_main.c */

static int cmd_predict(const char *model, const char *data, int stream, int one_row, long pad,
                       int no_index)
{
    loaded l;
    rows r;
    float *scores, *proba;
    uint32_t i;
    memset(&r, 0, sizeof r);
    if (!load_model(model, stream, &l)) return 2;
    if (esb_has_text(&l.m)) return cmd_text(&l, data, 0);
    if (esb_has_tabular(&l.m)) return cmd_tabular(&l, data, 0);
    if (!read_rows(data, &r)) return 2;
    if (r.n_features != l.m.n_features) {
        fprintf(stderr, "esb: rows have %u features, the model expects %u\n",
                (unsigned)r.n_features, (unsigned)l.m.n_features);
        return 2;
    }
    if (!use_csr_index(&l, &r, no_index)) return 2;
    if (!one_row) return predict_batch(&l.m, &r, r.kind == 0 ? (size_t)pad : 0);
    scores = (float *)malloc(4 * (size_t)l.m.n_outputs);
    proba = (float *)malloc(4 * ((size_t)l.m.n_classes + 1));
    if (!scores || !proba) return 2;
    for (i = 0; i < r.n_rows; i++) {
        double ck = 0;
        long cls = -1;
        esb_status st = call(&l, &r, i, OP_DECISION, scores, &ck);
        if (st == ESB_OK && l.m.head != ESB_HEAD_IDENTITY) {
            uint32_t k;
            if (r.kind == 0) st = esb_predict(&l.m, r.x + (size_t)i * r.n_features, &k);
            else
                st = esb_predict_csr(&l.m, r.indptr[i + 1] - r.indptr[i],
                                     r.indices + r.indptr[i], r.data + r.indptr[i], &k);
            cls = (long)k;
        }
        if (st == ESB_OK && esb_has_proba(&l.m)) st = call(&l, &r, i, OP_PROBA, proba, &ck);
        if (st != ESB_OK) {
            fprintf(stderr, "esb: row %u: %s\n", (unsigned)i, esb_strerror(st));
            return 1;
        }
        print_row(&l.m, cls, scores, esb_has_proba(&l.m) ? proba : NULL);
    }
    return 0;
}

static uint64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* A "Vm...:" line of /proc/self/status in bytes, or -1 (no /proc). */
static long proc_status_bytes(const char *key)
{
    char line[128];
    long kib = -1;
    size_t n = strlen(key);
    FILE *f = fopen("/proc/self/status", "r");
    if (f) {
        while (fgets(line, sizeof line, f))
            if (strncmp(line, key, n) == 0 && line[n] == ':') {
                kib = strtol(line + n + 1, NULL, 10);
                break;
            }
        fclose(f);
    }
    return kib < 0 ? -1 : kib * 1024L;
}

/* Peak RSS in bytes: VmHWM from /proc/self/status (Linux; reset by execve), else ru_maxrss
 * (which Linux carries across execve, so it would include the parent that forked us). */
static long peak_rss_bytes(void)
{
    long b = proc_status_bytes("VmHWM");
    if (b < 0) {
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        b = (long)ru.ru_maxrss * 1024L;
    }
    return b;
}

/* Nanoseconds on the clock the launcher took its process-start timestamp with. */
static uint64_t t0_clock_ns(void)
{
    const char *name = getenv("EDGESPARSE_PROBE_T0_CLOCK");
    struct timespec t;
    clock_gettime(name && strcmp(name, "realtime") == 0 ? CLOCK_REALTIME : CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* Linear interpolation between order statistics at rank q * (n - 1) (numpy's default). */
static double pct(const uint32_t *sorted, uint32_t n, double q)
{
    double rank = q * (double)(n - 1);
    uint32_t lo = (uint32_t)rank, hi = lo + 1 < n ? lo + 1 : n - 1;
    return (double)sorted[lo] + (rank - (double)lo) * ((double)sorted[hi] - (double)sorted[lo]);
}

/* One line per row: class index (classifiers) or decision values (regressors). */
static int write_predictions(const char *path, const loaded *l, const rows *r, float *buf)
{
    uint32_t i, j;
    double ck = 0;
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "esb: cannot write %s\n", path);
        return 0;
    }
    for (i = 0; i < r->n_rows; i++) {
        int op = l->m.head == ESB_HEAD_IDENTITY ? OP_DECISION : OP_PREDICT;
        if (op == OP_PREDICT) {
            uint32_t k = 0;
            esb_status st = r->kind == 0
                ? esb_predict(&l->m, r->x + (size_t)i * r->n_features, &k)
                : esb_predict_csr(&l->m, r->indptr[i + 1] - r->indptr[i],
                                  r->indices + r->indptr[i], r->data + r->indptr[i], &k);
            if (st != ESB_OK) break;
            fprintf(f, "%u\n", (unsigned)k);
        } else {
            if (call(l, r, i, op, buf, &ck) != ESB_OK) break;
            for (j = 0; j < l->m.n_outputs; j++)
                fprintf(f, j ? " %.9g" : "%.9g", (double)buf[j]);
            fprintf(f, "\n");
        }
    }
    if (fclose(f) != 0 || i < r->n_rows) {
        fprintf(stderr, "esb: writing predictions to %s failed at row %u\n", path, (unsigned)i);
        return 0;
    }
    return 1;
}

typedef struct bench_opts {
    long runs, warmup, batch, pad;
    int stream, op, one_row, no_index;
    const char *predictions;
} bench_opts;

/* n consecutive rows from row i through one batch call (dense or CSR); out holds n rows'
 * outputs. */
static esb_status call_rows(const loaded *l, const rows *r, uint32_t i, size_t n, int op,
                            float *out, double *checksum)
{
    const esb_model *m = &l->m;
    size_t j, width = op == OP_PROBA ? m->n_classes : m->n_outputs;
    esb_status st;
    if (r->kind == 1) {
        const uint32_t *ptr = r->indptr + i;
        if (op == OP_PREDICT)
            st = esb_predict_csr_batch(m, n, ptr, r->indices, r->data, (uint32_t *)out, NULL);
        else if (op == OP_PROBA)
            st = esb_predict_proba_csr_batch(m, n, ptr, r->indices, r->data, out, NULL);
        else st = esb_decision_csr_batch(m, n, ptr, r->indices, r->data, out, NULL);
    } else {
        const float *x = r->x + (size_t)i * r->n_features;
        if (op == OP_PREDICT)
            st = esb_predict_batch(m, x, n, r->n_features, (uint32_t *)out, NULL);
        else if (op == OP_PROBA) st = esb_predict_proba_batch(m, x, n, r->n_features, out, NULL);
        else st = esb_decision_batch(m, x, n, r->n_features, out, NULL);
    }
    for (j = 0; st == ESB_OK && j < n; j++)
        *checksum += op == OP_PREDICT ? (double)((uint32_t *)out)[j] : (double)out[j * width];
    return st;
}

/* One timed unit: `batch` consecutive rows from row `start` (wrapping): one batch call per
 * contiguous run, or (one_row) one call per row. */
static esb_status call_batch(const loaded *l, const rows *r, uint32_t start, long batch, int op,
                             int one_row, float *buf, double *checksum)
{
    long j;
    esb_status st = ESB_OK;
    if (!one_row) {
        for (j = 0; j < batch && st == ESB_OK;) {
            uint32_t i = (uint32_t)((start + (uint64_t)j) % r->n_rows);
            size_t n = (size_t)(batch - j) < r->n_rows - i ? (size_t)(batch - j) : r->n_rows - i;
            st = call_rows(l, r, i, n, op, buf, checksum);
            j += (long)n;
        }
        return st;
    }
    for (j = 0; j < batch && st == ESB_OK; j++)
        st = call(l, r, (uint32_t)((start + (uint32_t)j) % r->n_rows), op, buf, checksum);
    return st;
}

/* Names the first row the runtime refuses (exit 1): called once a call has failed. */
static int bad_row(const loaded *l, const rows *r, int op, float *buf)
{
    uint32_t i;
    double ck = 0;
    for (i = 0; i < r->n_rows; i++) {
        esb_status st = call(l, r, i, op, buf, &ck);
        if (st != ESB_OK) {
            fprintf(stderr, "esb: row %u: %s\n", (unsigned)i, esb_strerror(st));
            return 1;
        }
    }
    fprintf(stderr, "esb: a call failed but no row does on its own\n");
    return 1;
}

static int text_cmd_bench(const loaded *l, const char *data, const bench_opts *o,
                          uint64_t load_ns, const char *model_rss);
static int tab_cmd_bench(const loaded *l, const char *data, const bench_opts *o,
                         uint64_t load_ns, const char *model_rss); /* esb_tabular_main.c */

static int cmd_bench(const char *model, const char *data, const bench_opts *o)
{
    loaded l;
    rows r;
    uint32_t *t, *empty, i, n_empty, runs = (uint32_t)o->runs;
    float *buf;
    double checksum = 0, sum = 0;
    uint64_t load_start, load_ns, first_done;
    long rss_before, rss_after;
    const char *t0_env = getenv("EDGESPARSE_PROBE_T0_NS");
    char cold[32] = "null", model_rss[32] = "null";
    int op = o->op;
    static const char *const OPS[3] = {"predict", "proba", "decision"};
    memset(&r, 0, sizeof r);
    if (o->runs < 1 || o->warmup < 0 || o->runs > 100000000L || o->batch < 1 ||
        o->batch > 1000000L) {
        fprintf(stderr, "esb: RUNS and --batch must be >= 1 and WARMUP >= 0\n");
        return 2;
    }
    rss_before = proc_status_bytes("VmRSS");
    load_start = now_ns();
    if (!load_model(model, o->stream, &l)) return 2;
    load_ns = now_ns() - load_start;
    rss_after = proc_status_bytes("VmRSS");
    if (rss_before >= 0 && rss_after >= 0) sprintf(model_rss, "%ld", rss_after - rss_before);
    if (esb_has_text(&l.m)) return text_cmd_bench(&l, data, o, load_ns, model_rss);
    if (esb_has_tabular(&l.m)) return tab_cmd_bench(&l, data, o, load_ns, model_rss);
    if (!read_rows(data, &r)) return 2;
    if (r.n_features != l.m.n_features) {
        fprintf(stderr, "esb: rows have %u features, the model expects %u\n",
                (unsigned)r.n_features, (unsigned)l.m.n_features);
        return 2;
    }
    load_start = now_ns();
    if (!use_csr_index(&l, &r, o->no_index)) return 2;
    load_ns += now_ns() - load_start;
    if (op == OP_RECOMMEND) {
        fprintf(stderr, "esb: --op recommend is for k-NN models\n");
        return 2;
    }
    if (op == OP_PREDICT && l.m.head == ESB_HEAD_IDENTITY) op = OP_DECISION;
    if (op == OP_PROBA && !esb_has_proba(&l.m)) {
        fprintf(stderr, "esb: this model has no predict_proba\n");
        return 2;
    }
    /* outputs of up to min(batch, rows) rows: the batch calls write them all */
    buf = (float *)malloc(4 * ((size_t)l.m.n_outputs + l.m.n_classes + 1) *
                          ((size_t)o->batch < r.n_rows ? (size_t)o->batch : r.n_rows));
    t = (uint32_t *)malloc(4 * (size_t)runs);
    n_empty = runs < 10000 ? runs : 10000;
    empty = (uint32_t *)malloc(4 * (size_t)n_empty);
    if (!buf || !t || !empty) return 2;
    /* Cold start ends with the first prediction (one row), as in the Python probe. */
    if (call(&l, &r, 0, op, buf, &checksum) != ESB_OK) return bad_row(&l, &r, op, buf);
    first_done = t0_clock_ns();
    if (t0_env && *t0_env) {
        uint64_t t0 = (uint64_t)strtoull(t0_env, NULL, 10);
        /* A clock mismatch gives nonsense: report null rather than a made-up number. */
        if (t0 > 0 && first_done > t0 && first_done - t0 < 3600ull * 1000000000ull)
            sprintf(cold, "%.0f", (double)(first_done - t0));
    }
    for (i = 0; i < (uint32_t)o->warmup; i++)
        if (call_batch(&l, &r, (uint32_t)((uint64_t)i * o->batch % r.n_rows), o->batch, op,
                       o->one_row, buf, &checksum) != ESB_OK)
            return bad_row(&l, &r, op, buf);
    checksum = 0;
    for (i = 0; i < runs; i++) {
        uint32_t start = (uint32_t)((uint64_t)i * o->batch % r.n_rows);
        uint64_t a = now_ns(), b;
        esb_status st = call_batch(&l, &r, start, o->batch, op, o->one_row, buf, &checksum);
        b = now_ns();
        t[i] = (uint32_t)(b - a);
        sum += (double)(b - a);
        /* A refused row would time an early return: name it instead of reporting that. */
        if (st != ESB_OK) return bad_row(&l, &r, op, buf);
    }
    for (i = 0; i < n_empty; i++) {
        uint64_t a = now_ns();
        empty[i] = (uint32_t)(now_ns() - a);
    }
    if (o->predictions && !write_predictions(o->predictions, &l, &r, buf)) return 1;
    qsort(t, runs, 4, cmp_u32);
    qsort(empty, n_empty, 4, cmp_u32);
    printf("{\"engine\": \"c\", \"op\": \"%s\", \"mode\": \"%s\", \"layout\": \"%s\", "
           "\"batch\": %ld, \"runs\": %ld, \"warmup\": %ld, \"rows\": %u, \"p50_ns\": %.1f, "
           "\"p90_ns\": %.1f, \"p99_ns\": %.1f, \"p999_ns\": %.1f, \"mean_ns\": %.1f, "
           "\"min_ns\": %u, \"timer_overhead_ns\": %.1f, \"load_ns\": %.0f, \"cold_start_ns\": %s, "
           "\"peak_rss_bytes\": %ld, \"model_rss_bytes\": %s, \"model_bytes\": %lu, "
           "\"workspace_bytes\": %lu, \"checksum\": %.9g, \"api\": \"%s\"}\n",
           OPS[op], o->stream == 1 ? "streamed" : "decoded", esb_layout_name(&l.m), o->batch,
           o->runs, o->warmup, (unsigned)r.n_rows, pct(t, runs, 0.5), pct(t, runs, 0.9),
           pct(t, runs, 0.99), pct(t, runs, 0.999), sum / (double)runs, (unsigned)t[0],
           pct(empty, n_empty, 0.5), (double)load_ns, cold, peak_rss_bytes(), model_rss,
           (unsigned long)l.len, (unsigned long)l.ws_bytes, checksum,
           !o->one_row ? "batch" : "one-row");
    return 0;
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

#define ESB_REC_MAIN_IN_ESB_MAIN 1
#include "esb_rec_main.c"
#define ESB_TABULAR_MAIN_IN_ESB_MAIN 1
#include "esb_tabular_main.c"
#include "esb_text_main.c"

int main(int argc, char **argv)
{
    int i, first_option;
    bench_opts o;
    memset(&o, 0, sizeof o);
    o.op = OP_PREDICT;
    o.batch = 1;
    if (argc < 2) return usage();
    if (strcmp(argv[1], "verify") == 0) return argc < 3 ? usage() : cmd_verify(argc - 2, argv + 2);
    if (strcmp(argv[1], "recommend") == 0 && argc >= 5) return knn_cmd_recommend(argc - 2, argv + 2);
    if (strcmp(argv[1], "features") == 0) {
        loaded l;
        if (argc != 4) return usage();
        if (!load_model(argv[2], 1, &l)) return 2;
        if (esb_has_tabular(&l.m)) return cmd_tabular(&l, argv[3], 1);
        if (!esb_has_text(&l.m)) {
            fprintf(stderr, "esb: %s has no text or tabular input stage\n", argv[2]);
            return 2;
        }
        return cmd_text(&l, argv[3], 1);
    }
    if (strcmp(argv[1], "predict") == 0 && argc >= 4) first_option = 4;
    else if (strcmp(argv[1], "bench") == 0 && argc >= 6) first_option = 6;
    else return usage();
    for (i = first_option; i < argc; i++) {
        if (strcmp(argv[i], "--stream") == 0) o.stream = 1;
        else if (strcmp(argv[i], "--min-workspace") == 0) o.stream = 2;
        else if (strcmp(argv[i], "--layout") == 0 && i + 1 < argc) {
            int k;
            for (k = 0; k < 4 && strcmp(argv[i + 1], layout_name_of(k)) != 0; k++) continue;
            if (k == 4) return usage();
            o.stream = k == ESB_LAYOUT_STREAMED ? 1 : FORCED + k;
            i++;
        }
        else if (strcmp(argv[i], "--op") == 0 && i + 1 < argc) {
            const char *op = argv[++i];
            if (strcmp(op, "predict") == 0) o.op = OP_PREDICT;
            else if (strcmp(op, "proba") == 0) o.op = OP_PROBA;
            else if (strcmp(op, "decision") == 0) o.op = OP_DECISION;
            else if (strcmp(op, "recommend") == 0) o.op = OP_RECOMMEND;
            else return usage();
        } else if (strcmp(argv[i], "--batch") == 0 && i + 1 < argc) {
            if (!parse_count("--batch", argv[++i], &o.batch)) return 2;
        } else if (strcmp(argv[i], "--one-row") == 0) {
            o.one_row = 1;
        } else if (strcmp(argv[i], "--no-csr-index") == 0) {
            o.no_index = 1;
        } else if (strcmp(argv[i], "--pad") == 0 && i + 1 < argc && first_option == 4) {
            if (!parse_count("--pad", argv[++i], &o.pad) || o.pad < 0 || o.pad > 1024) {
                fprintf(stderr, "esb: --pad must be 0..1024\n");
                return 2;
            }
        } else if (strcmp(argv[i], "--predictions") == 0 && i + 1 < argc) {
            o.predictions = argv[++i];
        } else {
            fprintf(stderr, "esb: unknown option or missing value: %s\n", argv[i]);
            return usage();
        }
    }
    if (first_option == 4 && file_is_knn(argv[2])) return knn_cmd_predict(argv[2], argv[3]);
    if (first_option == 4) return cmd_predict(argv[2], argv[3], o.stream, o.one_row, o.pad,
                                               o.no_index);
    if (!parse_count("RUNS", argv[4], &o.runs) || !parse_count("WARMUP", argv[5], &o.warmup))
        return 2;
    if (file_is_knn(argv[2])) return knn_cmd_bench(argv[2], argv[3], &o);
    return cmd_bench(argv[2], argv[3], &o);
}
