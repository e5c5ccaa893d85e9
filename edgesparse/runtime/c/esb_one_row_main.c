/*
 * esb_one_row_main.c - the bench loop that esb_tabular_main.c (records) and esb_text_main.c
 * (documents) share: inputs the runtime has no batch call for, each timed as one call per
 * item ("api": "one-row"). Each of them includes this file (the guard below keeps one copy);
 * esb_main.c includes them, so never compile it on its own.
 *
 * An input kind gives two functions, one_row_call: item k through the op (predict, proba or
 * decision), out holding its class index (as a float's bits) or its outputs, and
 * one_row_refusal: why item k was refused, on stderr. The op check, the first call (the cold
 * start), the loop, the --predictions file and the JSON line (engine_c.py parses its keys)
 * are written once here (one_row_bench). Only the timings are allocated here (and freed
 * before one_row_bench returns): the callers own every other buffer.
 */
#ifndef ESB_ONE_ROW_MAIN_C
#define ESB_ONE_ROW_MAIN_C

#if !defined(ESB_TABULAR_MAIN_IN_ESB_MAIN) && !defined(ESB_REC_MAIN_IN_ESB_MAIN)
#error "esb_one_row_main.c is compiled as part of esb_main.c (through the files it includes)"
#endif

/* Item k through op (out, checksum: as tab_call / text_call). */
typedef esb_status (*one_row_call)(const void *ctx, uint32_t k, int op, float *out,
                                   double *checksum);
/* Says on stderr why item k was refused (status st); returns the exit status, 1. */
typedef int (*one_row_refusal)(const void *ctx, uint32_t k, esb_status st);

/* The items of a run: n of them, reached through call(ctx, k, ...). */
typedef struct {
    one_row_call call;
    one_row_refusal refused;
    const void *ctx;
    uint32_t n;
    const char *unit;  /* one item, in --predictions' failure message: "record", "document" */
    const char *input; /* the JSON line's "input": "records", "text" */
} one_row_items;

static void one_row_items_of(one_row_items *it, one_row_call fn, one_row_refusal refused,
                             const void *ctx, uint32_t n, const char *unit, const char *input)
{
    it->call = fn;
    it->refused = refused;
    it->ctx = ctx;
    it->n = n;
    it->unit = unit;
    it->input = input;
}

/* The op to time (--op predict on a regressor: decision), or -1 said on stderr. */
static int one_row_op(const loaded *l, int op)
{
    if (op == OP_PREDICT && l->m.head == ESB_HEAD_IDENTITY) op = OP_DECISION;
    if (op == OP_RECOMMEND || (op == OP_PROBA && !esb_has_proba(&l->m))) {
        fprintf(stderr, "esb: this model has no %s\n",
                op == OP_PROBA ? "predict_proba" : "recommend");
        return -1;
    }
    return op;
}

/* Every item's prediction, one line each (write_predictions' format); 0 on failure, said on
 * stderr naming the item (it->unit) it stopped at. */
static int one_row_write_predictions(const char *path, const loaded *l, const one_row_items *it,
                                     float *out)
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
        fprintf(stderr, "esb: writing predictions to %s failed at %s %u\n", path, it->unit,
                (unsigned)k);
        return 0;
    }
    return 1;
}

/* Warm-up, then RUNS timed calls of `batch` consecutive items (wrapping around), into tm. 0,
 * or the refusal's exit status at the first refused item. */
static int one_row_time(const one_row_items *it, const bench_opts *o, int op, float *out,
                        bench_times *tm)
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
        if (i >= o->warmup) times_put(tm, (uint32_t)(i - o->warmup), now_ns() - a);
        if (st != ESB_OK) return it->refused(it->ctx, k, st);
    }
    return 0;
}

/* Sort the timings and print the bench's one JSON line (cmd_bench's keys, "api": "one-row");
 * workspace: the bytes of the model's and the input kind's buffers. */
static void one_row_print(const loaded *l, const bench_opts *o, int op, const one_row_items *it,
                          bench_times *tm, const bench_facts *f, unsigned long workspace)
{
    static const char *const OPS[3] = {"predict", "proba", "decision"};
    uint32_t runs = tm->runs, *t = tm->t;
    times_sort(tm);
    printf("{\"engine\": \"c\", \"op\": \"%s\", \"mode\": \"%s\", \"layout\": \"%s\", "
           "\"input\": \"%s\", \"batch\": %ld, \"runs\": %ld, \"warmup\": %ld, \"rows\": %u, "
           "\"p50_ns\": %.1f, \"p90_ns\": %.1f, \"p99_ns\": %.1f, \"p999_ns\": %.1f, "
           "\"mean_ns\": %.1f, \"min_ns\": %u, \"timer_overhead_ns\": %.1f, \"load_ns\": %.0f, "
           "\"cold_start_ns\": %s, \"peak_rss_bytes\": %ld, \"model_rss_bytes\": %s, "
           "\"model_bytes\": %lu, \"workspace_bytes\": %lu, \"api\": \"one-row\"}\n",
           OPS[op], o->stream == 1 ? "streamed" : "decoded", esb_layout_name(&l->m), it->input,
           o->batch, o->runs, o->warmup, (unsigned)it->n, pct(t, runs, 0.5),
           pct(t, runs, 0.9), pct(t, runs, 0.99), pct(t, runs, 0.999), tm->sum / (double)runs,
           (unsigned)t[0], pct(tm->empty, tm->n_empty, 0.5), (double)f->load_ns, f->cold,
           peak_rss_bytes(), f->model_rss, (unsigned long)l->len, workspace);
}

/* The bench of items: item 0 (the cold start ends with its prediction), the warm-up and
 * timed calls, the timer's overhead, --predictions, the JSON line. out holds one item's
 * outputs; workspace is reported as "workspace_bytes". The exit status. */
static int one_row_bench(const loaded *l, const bench_opts *o, int op, const one_row_items *it,
                         float *out, bench_facts *f, unsigned long workspace)
{
    bench_times tm;
    double ck = 0;
    esb_status st;
    int rc = 2;
    if (!times_alloc(&tm, o->runs)) goto done;
    st = it->call(it->ctx, 0, op, out, &ck);
    if (st != ESB_OK) {
        rc = it->refused(it->ctx, 0, st);
        goto done;
    }
    bench_cold_start(f);
    rc = one_row_time(it, o, op, out, &tm);
    if (rc != 0) goto done;
    times_overhead(&tm);
    if (o->predictions && !one_row_write_predictions(o->predictions, l, it, out)) rc = 1;
    else one_row_print(l, o, op, it, &tm, f, workspace);
done:
    times_free(&tm);
    return rc;
}

#endif /* ESB_ONE_ROW_MAIN_C */
