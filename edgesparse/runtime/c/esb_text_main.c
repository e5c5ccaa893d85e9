/*
 * esb_text_main.c - `esb bench` on a model with a text input stage (esb_main.c includes this
 * file and calls text_cmd_bench once the blob is loaded and has a text section; never compile
 * it on its own).
 *
 *   esb bench TEXT_MODEL.esb DOCS.txt RUNS WARMUP [--op predict|proba|decision] [--batch N]
 *             [--predictions FILE]
 *
 * DOCS.txt is read as `esb predict` reads it (cmd_text: UTF-8, one document per line, a '\r'
 * before the '\n' dropped, no document after a final '\n'). One timed call is N (--batch,
 * default 1) consecutive documents from document i * N % n_docs (wrapping), each through
 * esb_predict_text_ix / esb_predict_proba_text_ix / esb_decision_text_ix with the model's text
 * index (built once, before the clock starts, as a program would at start-up): featurization
 * included, as the numpy runtime's predict(documents) does it. There is no batch call for
 * documents, so "api" is "one-row" (one call per document). Cold start ends with document 0's
 * prediction (the index built before it).
 * The JSON line has cmd_bench's keys; "layout" is the model's, "workspace_bytes" the model's
 * workspace plus the text workspace (esb_text_workspace_size for the longest document) plus the
 * text index (esb_text_index_size).
 * --predictions FILE: after timing, one line per document as cmd_bench writes them (class
 * index, or the decision values "%.9g").
 */
#ifndef ESB_REC_MAIN_IN_ESB_MAIN
#error "esb_text_main.c is compiled as part of esb_main.c (which includes it)"
#endif

#include "esb_one_row_main.c"

typedef struct text_docs {
    unsigned char *text;
    size_t *start, *len; /* each document's bytes in text */
    uint32_t n;
    size_t longest;
    esb_text_index ix; /* the model's text index (text_cmd_bench builds it) */
} text_docs;

/* Split DOCS into documents (cmd_text's rules); 0 with a message on failure. */
static int text_read_docs(const char *path, text_docs *d)
{
    size_t len = 0, at, end, cap = 0;
    memset(d, 0, sizeof *d);
    d->text = read_file(path, &len);
    if (!d->text) {
        fprintf(stderr, "esb: cannot read %s\n", path);
        return 0;
    }
    for (at = 0; at < len; at = end + 1) {
        for (end = at; end < len && d->text[end] != '\n'; end++) continue;
        if (d->n == cap) {
            cap = cap ? 2 * cap : 1024;
            d->start = (size_t *)realloc(d->start, sizeof(size_t) * cap);
            d->len = (size_t *)realloc(d->len, sizeof(size_t) * cap);
            if (!d->start || !d->len) return 0;
        }
        d->start[d->n] = at;
        d->len[d->n] = end - at - (end > at && d->text[end - 1] == '\r');
        if (d->len[d->n] > d->longest) d->longest = d->len[d->n];
        d->n++;
    }
    if (d->n == 0) fprintf(stderr, "esb: %s has no documents\n", path);
    return d->n > 0;
}

/* Document k through the op; out holds its class index (as a float's bits) or outputs. */
static esb_status text_call(const loaded *l, const text_docs *d, uint32_t k, int op, void *ws,
                            size_t ws_bytes, float *out, double *checksum)
{
    const char *doc = (const char *)d->text + d->start[k];
    const esb_text_index *ix = &d->ix;
    esb_status st;
    uint32_t cls = 0;
    if (op == OP_PREDICT) st = esb_predict_text_ix(&l->m, ix, doc, d->len[k], ws, ws_bytes, &cls);
    else if (op == OP_PROBA)
        st = esb_predict_proba_text_ix(&l->m, ix, doc, d->len[k], ws, ws_bytes, out);
    else st = esb_decision_text_ix(&l->m, ix, doc, d->len[k], ws, ws_bytes, out);
    *checksum += op == OP_PREDICT ? (double)cls : (double)out[0];
    if (op == OP_PREDICT) memcpy(out, &cls, 4);
    return st;
}

/* text_call as a one_row_call (esb_one_row_main.c). */
typedef struct {
    const loaded *l;
    const text_docs *d;
    void *ws;
    size_t ws_bytes;
} text_items;

static esb_status text_item(const void *ctx, uint32_t k, int op, float *out, double *checksum)
{
    const text_items *x = (const text_items *)ctx;
    return text_call(x->l, x->d, k, op, x->ws, x->ws_bytes, out, checksum);
}

static int text_cmd_bench(const loaded *l, const char *data, const bench_opts *o,
                          uint64_t load_ns, const char *model_rss)
{
    text_docs d;
    text_items x;
    one_row_items it;
    one_row_run m;
    uint32_t *t, *empty, n_empty, runs = (uint32_t)o->runs, failed = 0;
    int op = o->op;
    size_t ws_bytes, ix_bytes;
    void *ws;
    uint32_t *ix_buf;
    float *out;
    double sum = 0, ck = 0;
    char cold[32];
    esb_status st;
    if (op == OP_PREDICT && l->m.head == ESB_HEAD_IDENTITY) op = OP_DECISION;
    if (op == OP_RECOMMEND || (op == OP_PROBA && !esb_has_proba(&l->m))) {
        fprintf(stderr, "esb: this model has no %s\n",
                op == OP_PROBA ? "predict_proba" : "recommend");
        return 2;
    }
    if (!text_read_docs(data, &d)) return 2;
    ws_bytes = esb_text_workspace_size(&l->m, d.longest);
    ix_bytes = esb_text_index_size(&l->m);
    ws = malloc(ws_bytes ? ws_bytes : 8);
    ix_buf = (uint32_t *)malloc(ix_bytes + 4);
    if (!ix_buf || esb_text_index_build(&l->m, ix_buf, ix_bytes, &d.ix) != ESB_OK) {
        fprintf(stderr, "esb: building the text index failed\n");
        return 2;
    }
    out = (float *)malloc(4 * ((size_t)l->m.n_outputs + l->m.n_classes + 1));
    t = (uint32_t *)malloc(4 * (size_t)runs);
    n_empty = runs < 10000 ? runs : 10000;
    empty = (uint32_t *)malloc(4 * (size_t)n_empty);
    if (!ws || !out || !t || !empty) return 2;
    x.l = l;
    x.d = &d;
    x.ws = ws;
    x.ws_bytes = ws_bytes;
    it.call = text_item;
    it.ctx = &x;
    it.n = d.n;
    st = text_call(l, &d, 0, op, ws, ws_bytes, out, &ck);
    if (st != ESB_OK) {
        fprintf(stderr, "esb: document 0: %s\n", esb_strerror(st));
        return 1;
    }
    one_row_cold_start(cold); /* to document 0's prediction */
    if (!one_row_time(&it, o, op, out, t, &sum, &failed, &st)) {
        fprintf(stderr, "esb: document %lu: %s\n", (unsigned long)failed, esb_strerror(st));
        return 1;
    }
    one_row_timer_overhead(empty, n_empty);
    if (o->predictions && !one_row_write_predictions(o->predictions, l, &it, "document", out))
        return 1;
    m.input = "text";
    m.rows = d.n;
    m.t = t;
    m.empty = empty;
    m.n_empty = n_empty;
    m.sum = sum;
    m.load_ns = load_ns;
    m.cold = cold;
    m.model_rss = model_rss;
    m.workspace = (unsigned long)(l->ws_bytes + ws_bytes + ix_bytes);
    one_row_print(l, o, op, &m);
    return 0;
}
