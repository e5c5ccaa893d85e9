/*
 * esb_bench_main.c - `esb bench` on rows, and the timing helpers every bench command shares
 * (esb_main.c includes this file before esb_rec_main.c, esb_tabular_main.c and
 * esb_text_main.c, which use them; never compile it on its own).
 *
 *   esb bench MODEL.esb ROWS.bin RUNS WARMUP [--stream|--min-workspace|--layout NAME]
 *             [--op predict|proba|decision]
 *             [--batch N] [--predictions FILE] [--one-row] [--no-csr-index]
 *
 * One call is N (--batch, default 1) consecutive rows, call i starting at row i * N % n_rows
 * (wrapping): one batch call per contiguous run (one when N <= n_rows and the rows do not
 * wrap; dense or CSR), --one-row one esb_* call per row (the loop before the batch API, to
 * compare). The JSON line's "api" says which: "batch" or "one-row".
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
 * A refused row stops with "esb: row N: <reason>" and exit 1 (every timed call's status is
 * checked after its timer has stopped).
 */
#ifndef ESB_BENCH_MAIN_IN_ESB_MAIN
#error "esb_bench_main.c is compiled as part of esb_main.c (which includes it)"
#endif

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

typedef struct bench_opts {
    long runs, warmup, batch, pad;
    int stream, op, one_row, no_index;
    const char *predictions;
} bench_opts;

/* RUNS, WARMUP and --batch in range (every bench command); 0 said on stderr. */
static int bench_opts_ok(const bench_opts *o)
{
    if (o->runs < 1 || o->warmup < 0 || o->runs > 100000000L || o->batch < 1 ||
        o->batch > 1000000L) {
        fprintf(stderr, "esb: RUNS and --batch must be >= 1 and WARMUP >= 0\n");
        return 0;
    }
    return 1;
}

/* What a bench run measured besides its calls: the load's time and VmRSS growth, the cold
 * start ("null" where unknown). */
typedef struct bench_facts {
    uint64_t load_ns;
    char model_rss[32], cold[32];
} bench_facts;

/* The cold start (EDGESPARSE_PROBE_T0_NS to now, the first prediction just made) into
 * f->cold, or "null" without a usable start time: a clock mismatch gives nonsense, so null
 * rather than a made-up number. */
static void bench_cold_start(bench_facts *f)
{
    const char *t0_env = getenv("EDGESPARSE_PROBE_T0_NS");
    uint64_t done = t0_clock_ns();
    strcpy(f->cold, "null");
    if (t0_env && *t0_env) {
        uint64_t t0 = (uint64_t)strtoull(t0_env, NULL, 10);
        if (t0 > 0 && done > t0 && done - t0 < 3600ull * 1000000000ull)
            sprintf(f->cold, "%.0f", (double)(done - t0));
    }
}

/* f->model_rss from the VmRSS before and after the load ("null" without /proc). */
static void bench_model_rss(bench_facts *f, long rss_before, long rss_after)
{
    strcpy(f->model_rss, "null");
    if (rss_before >= 0 && rss_after >= 0) sprintf(f->model_rss, "%ld", rss_after - rss_before);
}

/* The timings of one bench run: t[runs] timed calls (sum: their total), empty[n_empty] empty
 * intervals (the timer's own cost). */
typedef struct bench_times {
    uint32_t *t, *empty;
    uint32_t runs, n_empty;
    double sum;
} bench_times;

/* 0 when out of memory; times_free is safe either way. */
static int times_alloc(bench_times *tm, long runs)
{
    tm->runs = (uint32_t)runs;
    tm->n_empty = tm->runs < 10000 ? tm->runs : 10000;
    tm->sum = 0;
    tm->t = (uint32_t *)malloc(4 * (size_t)tm->runs);
    tm->empty = (uint32_t *)malloc(4 * (size_t)tm->n_empty);
    return tm->t && tm->empty;
}

static void times_free(bench_times *tm)
{
    free(tm->t);
    free(tm->empty);
    tm->t = tm->empty = NULL;
}

/* Timed call i took ns. */
static void times_put(bench_times *tm, uint32_t i, uint64_t ns)
{
    tm->t[i] = (uint32_t)ns;
    tm->sum += (double)ns;
}

/* n_empty back-to-back timer reads: the timer's own overhead. */
static void times_overhead(bench_times *tm)
{
    uint32_t i;
    for (i = 0; i < tm->n_empty; i++) {
        uint64_t a = now_ns();
        tm->empty[i] = (uint32_t)(now_ns() - a);
    }
}

/* Sorts both arrays, for pct. */
static void times_sort(bench_times *tm)
{
    qsort(tm->t, tm->runs, 4, cmp_u32);
    qsort(tm->empty, tm->n_empty, 4, cmp_u32);
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
            if (predict_row(l, r, i, &k) != ESB_OK) break;
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
                          bench_facts *f); /* esb_text_main.c */
static int tab_cmd_bench(const loaded *l, const char *data, const bench_opts *o,
                         bench_facts *f); /* esb_tabular_main.c */

/* The op to time on rows (--op predict on a regressor: decision), or -1, said on stderr. */
static int rows_op(const loaded *l, int op)
{
    if (op == OP_RECOMMEND) {
        fprintf(stderr, "esb: --op recommend is for k-NN models\n");
        return -1;
    }
    if (op == OP_PREDICT && l->m.head == ESB_HEAD_IDENTITY) op = OP_DECISION;
    if (op == OP_PROBA && !esb_has_proba(&l->m)) {
        fprintf(stderr, "esb: this model has no predict_proba\n");
        return -1;
    }
    return op;
}

/* The warm-up, then RUNS timed calls into tm (the checksum over the timed ones); 0, or
 * bad_row's exit status at the first refused call. */
static int bench_rows_time(const loaded *l, const rows *r, const bench_opts *o, int op,
                           float *buf, bench_times *tm, double *checksum)
{
    uint32_t i;
    for (i = 0; i < (uint32_t)o->warmup; i++)
        if (call_batch(l, r, (uint32_t)((uint64_t)i * o->batch % r->n_rows), o->batch, op,
                       o->one_row, buf, checksum) != ESB_OK)
            return bad_row(l, r, op, buf);
    *checksum = 0;
    for (i = 0; i < tm->runs; i++) {
        uint32_t start = (uint32_t)((uint64_t)i * o->batch % r->n_rows);
        uint64_t a = now_ns(), b;
        esb_status st = call_batch(l, r, start, o->batch, op, o->one_row, buf, checksum);
        b = now_ns();
        times_put(tm, i, b - a);
        /* A refused row would time an early return: name it instead of reporting that. */
        if (st != ESB_OK) return bad_row(l, r, op, buf);
    }
    return 0;
}

/* The bench's JSON line on rows (sorts tm). */
static void bench_rows_print(const loaded *l, const rows *r, const bench_opts *o, int op,
                             bench_times *tm, const bench_facts *f, double checksum)
{
    static const char *const OPS[3] = {"predict", "proba", "decision"};
    uint32_t runs = tm->runs, *t = tm->t;
    times_sort(tm);
    printf("{\"engine\": \"c\", \"op\": \"%s\", \"mode\": \"%s\", \"layout\": \"%s\", "
           "\"batch\": %ld, \"runs\": %ld, \"warmup\": %ld, \"rows\": %u, \"p50_ns\": %.1f, "
           "\"p90_ns\": %.1f, \"p99_ns\": %.1f, \"p999_ns\": %.1f, \"mean_ns\": %.1f, "
           "\"min_ns\": %u, \"timer_overhead_ns\": %.1f, \"load_ns\": %.0f, \"cold_start_ns\": %s, "
           "\"peak_rss_bytes\": %ld, \"model_rss_bytes\": %s, \"model_bytes\": %lu, "
           "\"workspace_bytes\": %lu, \"checksum\": %.9g, \"api\": \"%s\"}\n",
           OPS[op], o->stream == 1 ? "streamed" : "decoded", esb_layout_name(&l->m), o->batch,
           o->runs, o->warmup, (unsigned)r->n_rows, pct(t, runs, 0.5), pct(t, runs, 0.9),
           pct(t, runs, 0.99), pct(t, runs, 0.999), tm->sum / (double)runs, (unsigned)t[0],
           pct(tm->empty, tm->n_empty, 0.5), (double)f->load_ns, f->cold, peak_rss_bytes(),
           f->model_rss, (unsigned long)l->len, (unsigned long)l->ws_bytes, checksum,
           !o->one_row ? "batch" : "one-row");
}

/* Times op on the rows and prints the JSON line; the exit status. */
static int bench_rows(const loaded *l, const rows *r, const bench_opts *o, int op,
                      bench_facts *f)
{
    bench_times tm;
    double checksum = 0;
    int rc = 2;
    /* outputs of up to min(batch, rows) rows: the batch calls write them all */
    float *buf = (float *)malloc(4 * ((size_t)l->m.n_outputs + l->m.n_classes + 1) *
                                 ((size_t)o->batch < r->n_rows ? (size_t)o->batch : r->n_rows));
    if (!times_alloc(&tm, o->runs) || !buf) goto done;
    /* Cold start ends with the first prediction (one row), as in the Python probe. */
    if (call(l, r, 0, op, buf, &checksum) != ESB_OK) {
        rc = bad_row(l, r, op, buf);
        goto done;
    }
    bench_cold_start(f);
    rc = bench_rows_time(l, r, o, op, buf, &tm, &checksum);
    if (rc != 0) goto done;
    times_overhead(&tm);
    if (o->predictions && !write_predictions(o->predictions, l, r, buf)) rc = 1;
    else bench_rows_print(l, r, o, op, &tm, f, checksum);
done:
    times_free(&tm);
    free(buf);
    return rc;
}

/* load_model, timed (f->load_ns) and its VmRSS growth measured (f->model_rss). */
static int bench_load(const char *model, int stream, loaded *l, bench_facts *f)
{
    long rss_before = proc_status_bytes("VmRSS");
    uint64_t start = now_ns();
    if (!load_model(model, stream, l)) return 0;
    f->load_ns = now_ns() - start;
    bench_model_rss(f, rss_before, proc_status_bytes("VmRSS"));
    return 1;
}

static int cmd_bench(const char *model, const char *data, const bench_opts *o)
{
    loaded l;
    rows r;
    bench_facts f;
    uint64_t start;
    int op, rc = 2;
    if (!bench_opts_ok(o) || !bench_load(model, o->stream, &l, &f)) return 2;
    memset(&r, 0, sizeof r);
    if (esb_has_text(&l.m)) rc = text_cmd_bench(&l, data, o, &f);
    else if (esb_has_tabular(&l.m)) rc = tab_cmd_bench(&l, data, o, &f);
    else if (read_rows(data, &r) && rows_fit(&l, &r)) {
        start = now_ns();
        if (use_csr_index(&l, &r, o->no_index)) {
            f.load_ns += now_ns() - start;
            op = rows_op(&l, o->op);
            if (op >= 0) rc = bench_rows(&l, &r, o, op, &f);
        }
    }
    free_rows(&r);
    free_loaded(&l);
    return rc;
}
