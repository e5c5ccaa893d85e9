/*
 * esb_one_row_main.c - the bench loop that esb_tabular_main.c (records) and esb_text_main.c
 * (documents) share: inputs the runtime has no batch call for, each timed as one call per
 * item ("api": "one-row"). Each of them includes this file (the guard below keeps one copy);
 * esb_main.c includes them, so never compile it on its own.
 *
 * An input kind gives one function, one_row_call: item k through the op (predict, proba or
 * decision), out holding its class index (as a float's bits) or its outputs. The loop, the
 * --predictions file and the JSON line (engine_c.py parses its keys) are written once here.
 * Nothing here allocates: the callers own every buffer.
 */
#ifndef ESB_ONE_ROW_MAIN_C
#define ESB_ONE_ROW_MAIN_C

#if !defined(ESB_TABULAR_MAIN_IN_ESB_MAIN) && !defined(ESB_REC_MAIN_IN_ESB_MAIN)
#error "esb_one_row_main.c is compiled as part of esb_main.c (through the files it includes)"
#endif

/* Item k through op (out, checksum: as tab_call / text_call). */
typedef esb_status (*one_row_call)(const void *ctx, uint32_t k, int op, float *out,
                                   double *checksum);

/* The items of a run: n of them, reached through call(ctx, k, ...). */
typedef struct {
    one_row_call call;
    const void *ctx;
    uint32_t n;
} one_row_items;

/* Every item's prediction, one line each (write_predictions' format); 0 on failure, said on
 * stderr naming the `unit` ("record", "document") it stopped at. */
static int one_row_write_predictions(const char *path, const loaded *l, const one_row_items *it,
                                     const char *unit, float *out)
{
    int op = l->m.head == ESB_HEAD_IDENTITY ? OP_DECISION : OP_PREDICT;
    uint32_t k, j, cls;
    double ck = 0;
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "esb: cannot write %s\n", path);
        return 0;
    }
    for (k = 0; k < it->n && it->call(it->ctx, k, op, out, &ck) == ESB_OK; k++) {
        if (op == OP_PREDICT) {
            memcpy(&cls, out, 4);
            fprintf(f, "%u\n", (unsigned)cls);
            continue;
        }
        for (j = 0; j < l->m.n_outputs; j++) fprintf(f, j ? " %.9g" : "%.9g", (double)out[j]);
        fprintf(f, "\n");
    }
    if (fclose(f) != 0 || k < it->n) {
        fprintf(stderr, "esb: writing predictions to %s failed at %s %u\n", path, unit,
                (unsigned)k);
        return 0;
    }
    return 1;
}

/* Warm-up, then RUNS timed calls of `batch` consecutive items (wrapping around), into t[] and
 * *sum. 1, or 0 at the first refused item: its index in *failed, the status in *failed_st (the
 * caller says why: each input kind words it its own way). */
static int one_row_time(const one_row_items *it, const bench_opts *o, int op, float *out,
                        uint32_t *t, double *sum, uint32_t *failed, esb_status *failed_st)
{
    double ck = 0;
    long i, j;
    for (i = 0; i < o->warmup + o->runs; i++) {
        uint64_t a = now_ns();
        esb_status st = ESB_OK;
        uint32_t k = 0;
        for (j = 0; j < o->batch && st == ESB_OK; j++) {
            k = (uint32_t)(((uint64_t)i * o->batch + j) % it->n);
            st = it->call(it->ctx, k, op, out, &ck);
        }
        if (i >= o->warmup) {
            t[i - o->warmup] = (uint32_t)(now_ns() - a);
            *sum += (double)t[i - o->warmup];
        }
        if (st != ESB_OK) {
            *failed = k;
            *failed_st = st;
            return 0;
        }
    }
    return 1;
}

/* The cold start as cmd_bench measures it (EDGESPARSE_PROBE_T0_NS to now, the first item's
 * prediction just made) into cold[32], or "null" without a usable start time. */
static void one_row_cold_start(char *cold)
{
    const char *t0_env = getenv("EDGESPARSE_PROBE_T0_NS");
    strcpy(cold, "null");
    if (t0_env && *t0_env) {
        uint64_t t0 = (uint64_t)strtoull(t0_env, NULL, 10), done = t0_clock_ns();
        if (t0 > 0 && done > t0 && done - t0 < 3600ull * 1000000000ull)
            sprintf(cold, "%.0f", (double)(done - t0));
    }
}

/* n_empty back-to-back timer reads into empty[]: the timer's own overhead. */
static void one_row_timer_overhead(uint32_t *empty, uint32_t n_empty)
{
    uint32_t i;
    for (i = 0; i < n_empty; i++) {
        uint64_t a = now_ns();
        empty[i] = (uint32_t)(now_ns() - a);
    }
}

/* What one run measured, for the JSON line. */
typedef struct {
    const char *input;       /* "records", "text" */
    uint32_t rows;           /* items read */
    uint32_t *t, *empty;     /* timed calls (runs of them), timer reads (n_empty) */
    uint32_t n_empty;
    double sum;              /* of t[] */
    uint64_t load_ns;
    const char *cold;        /* one_row_cold_start's */
    const char *model_rss;
    unsigned long workspace; /* bytes: the model's and the input kind's buffers */
} one_row_run;

/* Sort the timings and print the bench's one JSON line (cmd_bench's keys, "api": "one-row"). */
static void one_row_print(const loaded *l, const bench_opts *o, int op, const one_row_run *m)
{
    static const char *const OPS[3] = {"predict", "proba", "decision"};
    uint32_t runs = (uint32_t)o->runs, *t = m->t;
    qsort(t, runs, 4, cmp_u32);
    qsort(m->empty, m->n_empty, 4, cmp_u32);
    printf("{\"engine\": \"c\", \"op\": \"%s\", \"mode\": \"%s\", \"layout\": \"%s\", "
           "\"input\": \"%s\", \"batch\": %ld, \"runs\": %ld, \"warmup\": %ld, \"rows\": %u, "
           "\"p50_ns\": %.1f, \"p90_ns\": %.1f, \"p99_ns\": %.1f, \"p999_ns\": %.1f, "
           "\"mean_ns\": %.1f, \"min_ns\": %u, \"timer_overhead_ns\": %.1f, \"load_ns\": %.0f, "
           "\"cold_start_ns\": %s, \"peak_rss_bytes\": %ld, \"model_rss_bytes\": %s, "
           "\"model_bytes\": %lu, \"workspace_bytes\": %lu, \"api\": \"one-row\"}\n",
           OPS[op], o->stream == 1 ? "streamed" : "decoded", esb_layout_name(&l->m), m->input,
           o->batch, o->runs, o->warmup, (unsigned)m->rows, pct(t, runs, 0.5),
           pct(t, runs, 0.9), pct(t, runs, 0.99), pct(t, runs, 0.999), m->sum / (double)runs,
           (unsigned)t[0], pct(m->empty, m->n_empty, 0.5), (double)m->load_ns, m->cold,
           peak_rss_bytes(), m->model_rss, (unsigned long)l->len, m->workspace);
}

#endif /* ESB_ONE_ROW_MAIN_C */
