/*
 * esb_main.c - command-line driver for the C runtime: verify blobs, predict rows, benchmark.
 *
 *   esb verify MODEL.esb...                        one line per file: "OK" or
 *                                                  "ERR <code> <message>"; exit 1 if any failed
 *   esb predict MODEL.esb ROWS.bin [--stream]       one line per row:
 *                                                  "<class index or -1>\t<scores>\t<probas>"
 *   esb bench MODEL.esb ROWS.bin RUNS WARMUP [--stream] [--op predict|proba|decision]
 *                                                  one JSON line (see below)
 *
 * Without --stream the index sections are decoded once into a workspace (esb_use_workspace);
 * with it every call decodes them on the fly (no workspace).
 *
 * ROWS.bin (written by edgesparse.export_c.write_rows), little-endian:
 *   0  "ESBROWS1"   8 bytes
 *   8  u32 kind     0 dense, 1 CSR
 *   12 u32 n_rows, 16 u32 n_features, 20 u32 nnz (CSR; 0 for dense)
 *   24 dense: n_rows * n_features f32
 *      CSR:   (n_rows + 1) u32 indptr, nnz i32 indices (strictly increasing per row), nnz f32
 *
 * bench: batch-1 calls, row i % n_rows for call i; WARMUP untimed calls, then RUNS calls each
 * timed on its own with clock_gettime(CLOCK_MONOTONIC). Prints
 *   {"engine": "c", "op": ..., "mode": "decoded"|"streamed", "runs": .., "warmup": ..,
 *    "rows": .., "p50_ns": .., "p90_ns": .., "p99_ns": .., "p999_ns": .., "mean_ns": ..,
 *    "min_ns": .., "timer_overhead_ns": .., "peak_rss_bytes": .., "model_bytes": ..,
 *    "workspace_bytes": .., "checksum": ..}
 * Percentiles include the timer's own cost, reported as timer_overhead_ns (median of empty
 * intervals). peak_rss_bytes is the VmHWM of this whole process (program, libc, model, rows,
 * the 4 * RUNS bytes of timings; ru_maxrss where /proc is missing); under qemu-user it is the
 * emulator's own.
 *
 * The driver allocates (files, timings); the runtime (esb.c) never does.
 */
#define _POSIX_C_SOURCE 200809L

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
        memcpy(r->x, r->raw + 24, 4 * (size_t)r->n_rows * r->n_features);
    } else {
        size_t ip = 4 * ((size_t)r->n_rows + 1);
        uint32_t i;
        r->indptr = (uint32_t *)malloc(ip);
        r->indices = (int32_t *)malloc(4 * (size_t)r->nnz + 4);
        r->data = (float *)malloc(4 * (size_t)r->nnz + 4);
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

typedef struct loaded {
    unsigned char *blob;
    size_t len;
    esb_model m;
    int32_t *ws;
    size_t ws_bytes;
} loaded;

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
    if (!stream) {
        l->ws_bytes = esb_workspace_size(&l->m);
        l->ws = (int32_t *)malloc(l->ws_bytes ? l->ws_bytes : 4);
        if (!l->ws || esb_use_workspace(&l->m, l->ws, l->ws_bytes) != ESB_OK) {
            fprintf(stderr, "esb: cannot set up the workspace\n");
            return 0;
        }
    }
    return 1;
}

enum { OP_PREDICT, OP_PROBA, OP_DECISION };

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

static int cmd_predict(const char *model, const char *data, int stream)
{
    loaded l;
    rows r;
    float *scores, *proba;
    uint32_t i, j;
    memset(&r, 0, sizeof r);
    if (!load_model(model, stream, &l) || !read_rows(data, &r)) return 2;
    if (r.n_features != l.m.n_features) {
        fprintf(stderr, "esb: rows have %u features, the model expects %u\n",
                (unsigned)r.n_features, (unsigned)l.m.n_features);
        return 2;
    }
    scores = (float *)malloc(4 * (size_t)l.m.n_outputs);
    proba = (float *)malloc(4 * ((size_t)l.m.n_classes + 1));
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
        printf("%ld\t", cls);
        for (j = 0; j < l.m.n_outputs; j++) printf(j ? " %.9g" : "%.9g", (double)scores[j]);
        printf("\t");
        if (esb_has_proba(&l.m))
            for (j = 0; j < l.m.n_classes; j++) printf(j ? " %.9g" : "%.9g", (double)proba[j]);
        printf("\n");
    }
    return 0;
}

static uint64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* Peak RSS in bytes: VmHWM from /proc/self/status (Linux; reset by execve), else ru_maxrss
 * (which Linux carries across execve, so it would include the parent that forked us). */
static long peak_rss_bytes(void)
{
    char line[128];
    long kib = -1;
    FILE *f = fopen("/proc/self/status", "r");
    if (f) {
        while (fgets(line, sizeof line, f))
            if (strncmp(line, "VmHWM:", 6) == 0) {
                kib = strtol(line + 6, NULL, 10);
                break;
            }
        fclose(f);
    }
    if (kib < 0) {
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        kib = (long)ru.ru_maxrss;
    }
    return kib * 1024L;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static uint32_t pct(const uint32_t *sorted, uint32_t n, double q)
{
    /* nearest rank */
    uint32_t k = (uint32_t)(q * n + 0.999999);
    if (k < 1) k = 1;
    if (k > n) k = n;
    return sorted[k - 1];
}

static int cmd_bench(const char *model, const char *data, long runs, long warmup, int stream,
                     int op)
{
    loaded l;
    rows r;
    uint32_t *t, *empty, i, n_empty;
    float *buf;
    double checksum = 0, sum = 0;
    static const char *const OPS[3] = {"predict", "proba", "decision"};
    memset(&r, 0, sizeof r);
    if (runs < 1 || warmup < 0 || runs > 100000000L) {
        fprintf(stderr, "esb: RUNS must be >= 1 and WARMUP >= 0\n");
        return 2;
    }
    if (!load_model(model, stream, &l) || !read_rows(data, &r)) return 2;
    if (r.n_features != l.m.n_features) {
        fprintf(stderr, "esb: rows have %u features, the model expects %u\n",
                (unsigned)r.n_features, (unsigned)l.m.n_features);
        return 2;
    }
    if (op == OP_PREDICT && l.m.head == ESB_HEAD_IDENTITY) op = OP_DECISION;
    if (op == OP_PROBA && !esb_has_proba(&l.m)) {
        fprintf(stderr, "esb: this model has no predict_proba\n");
        return 2;
    }
    buf = (float *)malloc(4 * ((size_t)l.m.n_outputs + l.m.n_classes + 1));
    t = (uint32_t *)malloc(4 * (size_t)runs);
    n_empty = runs < 10000 ? (uint32_t)runs : 10000;
    empty = (uint32_t *)malloc(4 * (size_t)n_empty);
    if (!buf || !t || !empty) return 2;
    for (i = 0; i < (uint32_t)warmup; i++)
        if (call(&l, &r, i % r.n_rows, op, buf, &checksum) != ESB_OK) {
            fprintf(stderr, "esb: row %u: invalid input\n", (unsigned)(i % r.n_rows));
            return 1;
        }
    checksum = 0;
    for (i = 0; i < (uint32_t)runs; i++) {
        uint64_t a = now_ns(), b;
        call(&l, &r, i % r.n_rows, op, buf, &checksum);
        b = now_ns();
        t[i] = (uint32_t)(b - a);
        sum += (double)(b - a);
    }
    for (i = 0; i < n_empty; i++) {
        uint64_t a = now_ns();
        empty[i] = (uint32_t)(now_ns() - a);
    }
    qsort(t, (size_t)runs, 4, cmp_u32);
    qsort(empty, n_empty, 4, cmp_u32);
    printf("{\"engine\": \"c\", \"op\": \"%s\", \"mode\": \"%s\", \"runs\": %ld, \"warmup\": %ld, "
           "\"rows\": %u, \"p50_ns\": %u, \"p90_ns\": %u, \"p99_ns\": %u, \"p999_ns\": %u, "
           "\"mean_ns\": %.1f, \"min_ns\": %u, \"timer_overhead_ns\": %u, "
           "\"peak_rss_bytes\": %ld, \"model_bytes\": %lu, \"workspace_bytes\": %lu, "
           "\"checksum\": %.9g}\n",
           OPS[op], stream ? "streamed" : "decoded", runs, warmup, (unsigned)r.n_rows,
           (unsigned)pct(t, (uint32_t)runs, 0.5), (unsigned)pct(t, (uint32_t)runs, 0.9),
           (unsigned)pct(t, (uint32_t)runs, 0.99), (unsigned)pct(t, (uint32_t)runs, 0.999),
           sum / (double)runs, (unsigned)t[0], (unsigned)pct(empty, n_empty, 0.5),
           peak_rss_bytes(), (unsigned long)l.len, (unsigned long)l.ws_bytes,
           checksum);
    return 0;
}

static int usage(void)
{
    fprintf(stderr, "usage: esb verify MODEL.esb...\n"
                    "       esb predict MODEL.esb ROWS.bin [--stream]\n"
                    "       esb bench MODEL.esb ROWS.bin RUNS WARMUP [--stream] "
                    "[--op predict|proba|decision]\n");
    return 2;
}

int main(int argc, char **argv)
{
    int i, stream = 0, op = OP_PREDICT;
    if (argc < 2) return usage();
    if (strcmp(argv[1], "verify") == 0) return argc < 3 ? usage() : cmd_verify(argc - 2, argv + 2);
    for (i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--stream") == 0) stream = 1;
        else if (strcmp(argv[i], "--op") == 0 && i + 1 < argc) {
            const char *o = argv[++i];
            if (strcmp(o, "predict") == 0) op = OP_PREDICT;
            else if (strcmp(o, "proba") == 0) op = OP_PROBA;
            else if (strcmp(o, "decision") == 0) op = OP_DECISION;
            else return usage();
        }
    }
    if (strcmp(argv[1], "predict") == 0 && argc >= 4) return cmd_predict(argv[2], argv[3], stream);
    if (strcmp(argv[1], "bench") == 0 && argc >= 6)
        return cmd_bench(argv[2], argv[3], strtol(argv[4], NULL, 10), strtol(argv[5], NULL, 10),
                         stream, op);
    return usage();
}
