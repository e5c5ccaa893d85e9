/*
 * libFuzzer target for the C runtime's verifier (esb_open) and, on every blob it accepts, the
 * kernels in both memory modes.
 *
 * Property: for any bytes, esb_open either returns ESB_OK or an error code with a message,
 * never reading outside the buffer (ASan) or hitting undefined behaviour (UBSan); an accepted
 * model runs decision / predict / proba on dense and CSR rows without a sanitizer report, in
 * every index layout (streamed; columns, dense and transposed built with esb_use_layout in
 * exactly esb_layout_size bytes; and what esb_use_workspace picks for esb_workspace_size),
 * and the batch calls on five rows give the one-row calls' status and bits. The same bytes go
 * to esb_knn_open (k-NN, version 2), and an accepted k-NN model builds its index and predicts
 * and recommends (exercise_knn); likewise esb_factors_open (matrix factorization, version 3;
 * exercise_factors). An accepted model with a text stage builds its text index in exactly
 * esb_text_index_size bytes and featurizes and predicts a few documents with it and without it:
 * the same status and bits (exercise_text). In every layout the CSR column index
 * (esb_use_csr_index, exactly esb_csr_index_size bytes) gives the CSR calls the same status
 * and bits as without it (csr_index_same).
 * Each input is tried twice: as given, and "resealed" (every CRC recomputed where the table
 * allows), so that mutations get past the checksums to the structural checks behind them.
 *
 * Build and run (see fuzz/c/README.md):
 *   clang -g -O1 -std=c99 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
 *     -I edgesparse/runtime/c fuzz/c/fuzz_esb_open.c edgesparse/runtime/c/esb.c -lm \
 *     -o /tmp/fuzz_esb_open
 *   /tmp/fuzz_esb_open -max_len=4096 -seed=1 -runs=1000000 CORPUS_DIR
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "esb.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint32_t crc32_(const uint8_t *p, size_t n, uint32_t crc)
{
    size_t i;
    int k;
    crc = ~crc;
    for (i = 0; i < n; i++) {
        crc ^= p[i];
        for (k = 0; k < 8; k++) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
    }
    return ~crc;
}

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void wr32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static void reseal(uint8_t *b, size_t size)
{
    uint32_t n, i;
    if (size < 64) return;
    n = rd32(b + 12);
    if (n > (size - 64) / 16) n = (uint32_t)((size - 64) / 16);
    for (i = 0; i < n; i++) {
        uint8_t *e = b + 64 + 16 * i;
        uint64_t off = rd32(e + 4), len = rd32(e + 8);
        if (off + len <= size) wr32(e + 12, crc32_(b + off, (size_t)len, 0));
    }
    wr32(b + 60, crc32_(b + 64, 16 * (size_t)n, crc32_(b, 60, 0)));
}

/* The inputs are finite and canonical: ESB_E_INPUT can only mean a score overflowed, which
 * is an error, not a prediction. Anything else but ESB_OK is a bug. */
static int bad_status(esb_status st) { return st != ESB_OK && st != ESB_E_INPUT; }

/* One batch call (BATCH_N copies of x, stride n_features: enough rows for the blocked dense
 * kernel) against the one-row call: same status, the same bits for every row when it is
 * ESB_OK. op: 0 decision, 1 predict, 2 proba. */
#define BATCH_N 5
static void batch_same(const esb_model *m, const float *x, int op)
{
    static float xx[BATCH_N * 4096], one[4096], two[BATCH_N * 4096];
    const uint32_t nf = m->n_features;
    const size_t w = op == 2 ? m->n_classes : m->n_outputs;
    uint32_t k = 0, kk[BATCH_N];
    size_t done = BATCH_N + 1, i;
    esb_status s1, s2;
    for (i = 0; i < BATCH_N; i++) memcpy(xx + i * nf, x, 4 * (size_t)nf);
    if (op == 0) {
        s1 = esb_decision(m, x, one);
        s2 = esb_decision_batch(m, xx, BATCH_N, nf, two, &done);
    } else if (op == 1) {
        s1 = esb_predict(m, x, &k);
        s2 = esb_predict_batch(m, xx, BATCH_N, nf, kk, &done);
    } else {
        s1 = esb_predict_proba(m, x, one);
        s2 = esb_predict_proba_batch(m, xx, BATCH_N, nf, two, &done);
    }
    if (s1 != s2 || done != (s1 == ESB_OK ? (size_t)BATCH_N : 0u)) abort();
    if (s1 != ESB_OK) return;
    for (i = 0; i < BATCH_N; i++) {
        if (op == 1 && kk[i] != k) abort();
        if (op != 1 && memcmp(one, two + i * w, 4 * w) != 0) abort();
    }
}

static void run_all(const esb_model *m, const float *x, uint32_t n, const int32_t *idx,
                    const float *val)
{
    static float out[4096];
    uint32_t k;
    esb_status st;
    if (bad_status(esb_decision(m, x, out))) abort();
    if (bad_status(esb_decision_csr(m, n, idx, val, out))) abort();
    if (m->head != ESB_HEAD_IDENTITY) {
        esb_label lab;
        st = esb_predict(m, x, &k);
        if (bad_status(st) || (st == ESB_OK && k >= m->n_classes)) abort();
        st = esb_predict_csr(m, n, idx, val, &k);
        if (bad_status(st) || (st == ESB_OK && k >= m->n_classes)) abort();
        if (st == ESB_OK && esb_class_label(m, k, &lab) != ESB_OK) abort();
    }
    if (esb_has_proba(m)) {
        if (bad_status(esb_predict_proba(m, x, out))) abort();
        if (bad_status(esb_predict_proba_csr(m, n, idx, val, out))) abort();
    }
    batch_same(m, x, 0);
    if (m->head != ESB_HEAD_IDENTITY) batch_same(m, x, 1);
    if (esb_has_proba(m)) batch_same(m, x, 2);
}

/* The CSR column index in exactly esb_csr_index_size bytes (one byte short refused): the CSR
 * calls, one-row and batch (the row, then an empty row), give the same status and bits with
 * it as without it; then it is dropped. */
static void csr_index_same(esb_model *m, uint32_t n, const int32_t *idx, const float *val)
{
    static float a[3 * 4096], b[3 * 4096];
    const size_t bytes = esb_csr_index_size(m), no = m->n_outputs;
    const uint32_t ptr[3] = {0, n, n};
    size_t da = 9, db = 9;
    esb_status s1, s2, s3, s4;
    int32_t *ix;
    if (bytes > (1u << 22)) return; /* a model too large to bother */
    ix = (int32_t *)malloc(bytes ? bytes : 4);
    if (!ix) return;
    s1 = esb_decision_csr(m, n, idx, val, a);
    s2 = esb_decision_csr_batch(m, 2, ptr, idx, val, a + no, &da);
    if (bytes && esb_use_csr_index(m, ix, bytes - 1) != ESB_E_ARGUMENT) abort();
    if (esb_use_csr_index(m, ix, bytes) != ESB_OK) abort();
    s3 = esb_decision_csr(m, n, idx, val, b);
    s4 = esb_decision_csr_batch(m, 2, ptr, idx, val, b + no, &db);
    if (s1 != s3 || s2 != s4 || da != db) abort();
    if (s1 == ESB_OK && memcmp(a, b, 4 * no) != 0) abort();
    if (memcmp(a + no, b + no, 4 * no * da) != 0) abort();
    if (esb_use_csr_index(m, NULL, 0) != ESB_OK) abort();
    free(ix);
}

/* Build a layout in a buffer of exactly `bytes` (ASan sees any write past it) and run it. */
static void in_layout(esb_model *m, int layout, size_t bytes, const float *x, uint32_t n,
                      const int32_t *idx, const float *val)
{
    static const char *const NAMES[4] = {"streamed", "columns", "dense", "transposed"};
    int32_t *ws;
    if (bytes > (1u << 20)) return; /* a model too large to bother */
    ws = (int32_t *)malloc(bytes ? bytes : 1);
    if (!ws) return;
    if (layout < 0) {
        if (esb_use_workspace(m, ws, bytes) != ESB_OK) abort();
    } else {
        if (bytes && esb_use_layout(m, layout, ws, bytes - 1) != ESB_E_ARGUMENT) abort();
        if (esb_use_layout(m, layout, ws, bytes) != ESB_OK) abort();
        if (strcmp(esb_layout_name(m), NAMES[layout]) != 0) abort();
    }
    run_all(m, x, n, idx, val);
    csr_index_same(m, n, idx, val);
    if (esb_use_layout(m, ESB_LAYOUT_STREAMED, NULL, 0) != ESB_OK) abort();
    free(ws);
}

static void exercise(const esb_model *m0)
{
    static float x[4096];
    static int32_t idx[8];
    float val[8] = {1.0f, -2.0f, 0.5f, 3.0f, -1.0f, 2.0f, 0.25f, -4.0f};
    esb_model m = *m0;
    uint32_t i, n = 0;
    int layout;
    if (m.n_features > 4096 || m.n_outputs + m.n_classes > 4096) return; /* rows too large */
    for (i = 0; i < m.n_features; i++) x[i] = (float)((int)(i % 7) - 3);
    for (i = 0; i < 8 && i * 3 < m.n_features; i++) idx[n++] = (int32_t)(i * 3);
    run_all(&m, x, n, idx, val);
    for (layout = ESB_LAYOUT_COLUMNS; layout <= ESB_LAYOUT_TRANSPOSED; layout++) {
        if (layout == ESB_LAYOUT_DENSE && m.value_dtype != ESB_VALUES_I8) {
            if (esb_use_layout(&m, layout, idx, sizeof idx) != ESB_E_ARGUMENT) abort();
            continue;
        }
        in_layout(&m, layout, esb_layout_size(&m, layout), x, n, idx, val);
    }
    in_layout(&m, -1, esb_workspace_size(&m), x, n, idx, val);
    in_layout(&m, -1, esb_workspace_size_fast(&m), x, n, idx, val);
}

/* A k-NN model esb_knn_open accepted: the index (exact bytes), then predictions of a few
 * pairs (known, unknown, out of range) and recommendations, in an exact-size workspace.
 * Estimates must lie in the rating scale; recommendations best first, no more than asked. */
static void exercise_knn(esb_knn *m)
{
    size_t ib = esb_knn_index_size(m), wb = esb_knn_workspace_size(m);
    uint32_t *idx = (uint32_t *)malloc(ib ? ib : 4);
    double *ws = (double *)malloc(wb ? wb : 8), est[4];
    uint32_t items[4], got, j, p;
    esb_status st;
    if (!idx || !ws) abort();
    st = esb_knn_use_index(m, idx, ib);
    if (st != ESB_OK && (st != ESB_E_CORRUPT || m->message[0] == '\0')) abort();
    for (p = 0; st == ESB_OK && p < 6; p++) {
        static const uint32_t U[6] = {0, 1, 0xFFFFFFFFu, 0, 7, 0xFFFFFFFEu};
        static const uint32_t I[6] = {0, 1, 0, 0xFFFFFFFFu, 3, 2};
        uint32_t u = p == 1 ? m->n_users - 1 : U[p], i = p == 1 ? m->n_items - 1 : I[p];
        esb_knn_prediction r;
        if (esb_knn_predict(m, u, i, ws, wb, &r) != ESB_OK) abort();
        if (!(r.est >= m->rating_low && r.est <= m->rating_high)) abort();
        if (esb_knn_recommend(m, u, 3, (int)(p & 1), items, est, &got, ws, wb) != ESB_OK)
            abort();
        if (got > 3 || got > m->n_items) abort();
        for (j = 1; j < got; j++)
            if (est[j] > est[j - 1]) abort();
    }
    if (st == ESB_OK && m->n_users) {
        esb_label id;
        if (esb_knn_user_id(m, m->n_users - 1, &id) != ESB_OK) abort();
        if (id.kind == ESB_LABEL_STRING &&
            esb_knn_find_user(m, id.s, id.len) == ESB_KNN_UNKNOWN) abort();
    }
    free(idx);
    free(ws);
}

/* A factor model esb_factors_open accepted: the index (exact bytes), predictions of a few
 * pairs (known, unknown, out of range) and recommendations, checked as for k-NN. */
static void exercise_factors(esb_factors *m)
{
    size_t ib = esb_factors_index_size(m);
    uint32_t *idx = (uint32_t *)malloc(ib ? ib : 4), items[4], got, j, p;
    double est[4];
    esb_status st;
    if (!idx) abort();
    st = esb_factors_use_index(m, idx, ib);
    if (st != ESB_OK && (st != ESB_E_CORRUPT || m->message[0] == '\0')) abort();
    for (p = 0; st == ESB_OK && p < 6; p++) {
        static const uint32_t U[6] = {0, 1, 0xFFFFFFFFu, 0, 7, 0xFFFFFFFEu};
        static const uint32_t I[6] = {0, 1, 0, 0xFFFFFFFFu, 3, 2};
        uint32_t u = p == 1 ? m->n_users - 1 : U[p], i = p == 1 ? m->n_items - 1 : I[p];
        esb_factors_prediction r;
        if (esb_factors_predict(m, u, i, &r) != ESB_OK) abort();
        if (!(r.est >= m->rating_low && r.est <= m->rating_high)) abort();
        if (esb_factors_recommend(m, u, 3, (int)(p & 1), items, est, &got) != ESB_OK) abort();
        if (got > 3 || got > m->n_items) abort();
        for (j = 1; j < got; j++)
            if (est[j] > est[j - 1]) abort();
    }
    if (st == ESB_OK) {
        esb_label id;
        if (esb_factors_item_id(m, m->n_items - 1, &id) != ESB_OK) abort();
        if (id.kind == ESB_LABEL_STRING &&
            esb_factors_find_item(m, id.s, id.len) != m->n_items - 1) abort();
    }
    free(idx);
}

/* A model with a text stage: a few documents through the walk and through the index (exact
 * bytes, and one word short: refused); the same status, row and prediction, bit for bit. */
static void exercise_text(const esb_model *m)
{
    static const char *const DOCS[4] = {"the quick brown fox", "a b ab ab cd", "",
                                        "\xc3\x9c ber Stra\xc3\x9f e \xe6\x97\xa5\xe6\x9c\xac"};
    size_t ib = esb_text_index_size(m), wb = esb_text_workspace_size(m, 64), d;
    uint32_t *idx = (uint32_t *)malloc(ib ? ib : 4);
    double *ws = (double *)malloc(wb ? wb : 8);
    esb_text_index ix;
    if (!idx || !ws) abort();
    if (ib < 4 || esb_text_index_build(m, idx, ib - 4, &ix) != ESB_E_ARGUMENT) abort();
    if (esb_text_index_build(m, idx, ib, &ix) != ESB_OK) abort();
    for (d = 0; d < 4; d++) {
        size_t len = strlen(DOCS[d]);
        uint32_t n1 = 0, n2 = 0, c1 = 0, c2 = 0;
        const int32_t *i1, *i2;
        const double *v1, *v2;
        int32_t cols[64];
        double vals[64];
        esb_status s1 = esb_text_features(m, DOCS[d], len, ws, wb, &n1, &i1, &v1), s2;
        if (s1 == ESB_OK) {
            if (n1 > 64) abort();
            memcpy(cols, i1, 4 * (size_t)n1);
            memcpy(vals, v1, 8 * (size_t)n1);
        }
        s2 = esb_text_features_ix(m, &ix, DOCS[d], len, ws, wb, &n2, &i2, &v2);
        if (s1 != s2 || n1 != n2) abort();
        if (s1 == ESB_OK &&
            (memcmp(cols, i2, 4 * (size_t)n1) != 0 || memcmp(vals, v2, 8 * (size_t)n1) != 0))
            abort();
        if (bad_status(s1)) abort();
        s1 = esb_predict_text(m, DOCS[d], len, ws, wb, &c1);
        s2 = esb_predict_text_ix(m, &ix, DOCS[d], len, ws, wb, &c2);
        if (s1 != s2 || (s1 == ESB_OK && c1 != c2)) abort();
    }
    free(idx);
    free(ws);
}

static void one(const uint8_t *data, size_t size)
{
    esb_model m;
    esb_knn k;
    esb_factors f;
    esb_status st = esb_open(data, size, &m);
    if (st == ESB_OK) exercise(&m);
    else if (m.message[0] == '\0') abort(); /* every error names what is wrong */
    if (st == ESB_OK && esb_has_text(&m)) exercise_text(&m);
    st = esb_knn_open(data, size, &k); /* version 2: the k-NN verifier */
    if (st == ESB_OK) exercise_knn(&k);
    else if (k.message[0] == '\0') abort();
    st = esb_factors_open(data, size, &f); /* version 3: the factor verifier */
    if (st == ESB_OK) exercise_factors(&f);
    else if (f.message[0] == '\0') abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* exact-size copies: ASan flags any read past the end */
    uint8_t *b = (uint8_t *)malloc(size ? size : 1);
    if (!b) return 0;
    if (size) memcpy(b, data, size);
    one(b, size);
    reseal(b, size);
    one(b, size);
    free(b);
    return 0;
}
