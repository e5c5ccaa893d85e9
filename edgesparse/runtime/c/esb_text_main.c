/*
 * esb_text_main.c - the text part of the command-line driver: `esb predict` / `esb features`
 * (cmd_text) and `esb bench` (text_cmd_bench) on a model with a text input stage (esb_main.c
 * includes this file and calls them once the blob is loaded and has a text section; never
 * compile it on its own).
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

/* The length of DOCS' longest line (without its '\n'). */
static size_t longest_line(const unsigned char *docs, size_t len)
{
    size_t start, end, longest = 0;
    for (start = 0; start < len; start = end + 1) {
        for (end = start; end < len && docs[end] != '\n'; end++) continue;
        if (end - start > longest) longest = end - start;
    }
    return longest;
}

/* The buffers a text model's document goes through (cmd_text). */
typedef struct text_bufs {
    esb_text_index ix;
    void *ws;
    size_t ws_bytes;
    float *scores, *proba;
} text_bufs;

/* One document's line: its features or print_row's; the status. */
static esb_status text_doc(const loaded *l, const text_bufs *b, const char *doc, size_t doc_len,
                           int features)
{
    const esb_model *m = &l->m;
    esb_status st;
    long cls = -1;
    if (features) {
        uint32_t nnz, j;
        const int32_t *idx;
        const double *val;
        st = esb_text_features_ix(m, &b->ix, doc, doc_len, b->ws, b->ws_bytes, &nnz, &idx, &val);
        if (st == ESB_OK) {
            for (j = 0; j < nnz; j++) printf(j ? " %ld:%.17g" : "%ld:%.17g", (long)idx[j], val[j]);
            printf("\n");
        }
        return st;
    }
    st = esb_decision_text_ix(m, &b->ix, doc, doc_len, b->ws, b->ws_bytes, b->scores);
    if (st == ESB_OK && m->head != ESB_HEAD_IDENTITY) {
        uint32_t k;
        st = esb_predict_text_ix(m, &b->ix, doc, doc_len, b->ws, b->ws_bytes, &k);
        cls = (long)k;
    }
    if (st == ESB_OK && esb_has_proba(m))
        st = esb_predict_proba_text_ix(m, &b->ix, doc, doc_len, b->ws, b->ws_bytes, b->proba);
    if (st == ESB_OK) print_row(m, cls, b->scores, esb_has_proba(m) ? b->proba : NULL);
    return st;
}

/* Every document of DOCS (len bytes) through text_doc; 0, or 1 at a refused one. */
static int text_docs_run(const loaded *l, const text_bufs *b, const unsigned char *docs,
                         size_t len, int features)
{
    size_t start, end, n = 0;
    for (start = 0; start < len; start = end + 1, n++) {
        esb_status st;
        for (end = start; end < len && docs[end] != '\n'; end++) continue;
        st = text_doc(l, b, (const char *)docs + start,
                      end - start - (end > start && docs[end - 1] == '\r'), features);
        if (st != ESB_OK) {
            fprintf(stderr, "esb: document %lu: %s\n", (unsigned long)n, esb_strerror(st));
            return 1;
        }
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
    size_t len = 0, ix_bytes = esb_text_index_size(&l->m);
    unsigned char *docs = read_file(data, &len);
    uint32_t *ix_buf = NULL;
    text_bufs b;
    int rc = 2;
    memset(&b, 0, sizeof b);
    if (!docs) {
        fprintf(stderr, "esb: cannot read %s\n", data);
        return 2;
    }
    b.ws_bytes = esb_text_workspace_size(&l->m, longest_line(docs, len));
    b.ws = malloc(b.ws_bytes ? b.ws_bytes : 8);
    b.scores = (float *)malloc(4 * (size_t)l->m.n_outputs);
    b.proba = (float *)malloc(4 * ((size_t)l->m.n_classes + 1));
    ix_buf = (uint32_t *)malloc(ix_bytes + 4);
    if (!b.ws || !b.scores || !b.proba || !ix_buf) goto done;
    if (esb_text_index_build(&l->m, ix_buf, ix_bytes, &b.ix) != ESB_OK) {
        fprintf(stderr, "esb: building the text index failed\n");
        goto done;
    }
    rc = text_docs_run(l, &b, docs, len, features);
done:
    free(ix_buf);
    free(b.ws);
    free(b.scores);
    free(b.proba);
    free(docs);
    return rc;
}

typedef struct text_docs {
    unsigned char *text;
    size_t *start, *len; /* each document's bytes in text */
    uint32_t n;
    size_t longest;
    esb_text_index ix; /* the model's text index (text_cmd_bench builds it) */
} text_docs;

/* Split DOCS into documents (cmd_text's rules); 0 with a message on failure (text_free
 * frees what it read either way). */
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
            size_t *start, *lens;
            cap = cap ? 2 * cap : 1024;
            start = (size_t *)realloc(d->start, sizeof(size_t) * cap);
            if (start) d->start = start;
            lens = start ? (size_t *)realloc(d->len, sizeof(size_t) * cap) : NULL;
            if (!lens) return 0;
            d->len = lens;
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

/* The refusal of document k on stderr, as a one_row_refusal: 1. */
static int text_item_refused(const void *ctx, uint32_t k, esb_status st)
{
    (void)ctx;
    fprintf(stderr, "esb: document %lu: %s\n", (unsigned long)k, esb_strerror(st));
    return 1;
}

static void text_free(text_docs *d)
{
    free(d->text);
    free(d->start);
    free(d->len);
    memset(d, 0, sizeof *d);
}

static int text_cmd_bench(const loaded *l, const char *data, const bench_opts *o, bench_facts *f)
{
    text_docs d;
    text_items x;
    one_row_items it;
    int op = one_row_op(l, o->op), rc = 2;
    size_t ix_bytes = esb_text_index_size(&l->m);
    void *ws = NULL;
    uint32_t *ix_buf = NULL;
    float *out = NULL;
    if (op < 0) return 2;
    if (!text_read_docs(data, &d)) goto done;
    x.ws_bytes = esb_text_workspace_size(&l->m, d.longest);
    ws = malloc(x.ws_bytes ? x.ws_bytes : 8);
    ix_buf = (uint32_t *)malloc(ix_bytes + 4);
    if (!ix_buf || esb_text_index_build(&l->m, ix_buf, ix_bytes, &d.ix) != ESB_OK) {
        fprintf(stderr, "esb: building the text index failed\n");
        goto done;
    }
    out = (float *)malloc(4 * ((size_t)l->m.n_outputs + l->m.n_classes + 1));
    if (!ws || !out) goto done;
    x.l = l;
    x.d = &d;
    x.ws = ws;
    one_row_items_of(&it, text_item, text_item_refused, &x, d.n, "document", "text");
    rc = one_row_bench(l, o, op, &it, out, f, (unsigned long)(l->ws_bytes + x.ws_bytes + ix_bytes));
done:
    free(out);
    free(ix_buf);
    free(ws);
    text_free(&d);
    return rc;
}
