/*
 * esb_tabular_main.c - the tabular part of the command-line driver (esb_main.c includes this
 * file, which it dispatches to when the model has a tabular input stage; never compile it on
 * its own).
 *
 *   esb predict TABULAR_MODEL.esb ROWS.csv    one line per record, print_row's line
 *   esb features TABULAR_MODEL.esb ROWS.csv   one line per record: its feature row's nonzero
 *                                             values, "col:value ..." (values "%.17g")
 *
 * ROWS.csv is what edgesparse.data.read_records reads: UTF-8 (a BOM is skipped), a header row
 * naming the columns (the first record that is not blank), then one record per row; blank
 * records are skipped. The header maps the columns to the model's inputs
 * (esb_tabular_header). A record the runtime refuses stops with "esb: line N: <reason>" on
 * stderr and exit 1 (N: the line the record starts on).
 */
#ifndef ESB_TABULAR_MAIN_IN_ESB_MAIN
#error "esb_tabular_main.c is compiled as part of esb_main.c (which includes it)"
#endif

#include "esb_one_row_main.c"

/* Lines (str.splitlines breaks) in text[0..n): the line number after them is base + this. */
static unsigned long tab_lines(const unsigned char *t, size_t n)
{
    unsigned long k = 0;
    size_t i;
    for (i = 0; i < n; i++) {
        unsigned char c = t[i];
        if (c == '\r' && i + 1 < n && t[i + 1] == '\n') continue;
        if (c == '\n' || c == '\r' || c == 0x0B || c == 0x0C || (c >= 0x1C && c <= 0x1E)) k++;
        else if (c == 0xC2 && i + 1 < n && t[i + 1] == 0x85) k++;
        else if (c == 0xE2 && i + 2 < n && t[i + 1] == 0x80 && (t[i + 2] & 0xFE) == 0xA8) k++;
    }
    return k;
}

static int tab_blank(const esb_cell *cells, size_t n) { return n == 0 || (n == 1 && !cells[0].len); }

static const char *const TAB_HEADER_WHY[5] = {
    "", "a column name is repeated in the header", "the header has %lu columns, the model reads %lu",
    "unknown column (header column %lu)", "missing column (the model's input %lu)"};

typedef struct tab_recs {
    unsigned char *text;
    size_t *start, *len;  /* each record's raw bytes in text */
    unsigned long *line;  /* the line each record starts on */
    uint32_t n, *pos;     /* records; pos: header column of each model input */
    size_t n_header, longest;
} tab_recs;

/* The buffers one record goes through: its unquoted cells and the featurizer's workspace. */
typedef struct tab_bufs {
    char *out;
    esb_cell *cells, *fitted;
    void *ws;
    size_t out_bytes, ws_bytes;
} tab_bufs;

/* Frees what cmd_tabular or tab_cmd_bench allocated into r and b (safe twice). */
static void tab_free(tab_recs *r, tab_bufs *b)
{
    free(r->text);
    free(r->start);
    free(r->len);
    free(r->line);
    free(r->pos);
    free(b->out);
    free(b->cells);
    free(b->fitted);
    free(b->ws);
    memset(r, 0, sizeof *r);
    memset(b, 0, sizeof *b);
}

/* esb_csv_record's status for the record on `line` (max cells wanted, n found): 1 when it
 * parsed, else 0 said on stderr. */
static int tab_parsed(const tab_recs *r, esb_status st, size_t n, size_t max, size_t n_in,
                      unsigned long line)
{
    if (st == ESB_E_INPUT && n > max) { /* cells past max were not stored: no mapping */
        if (r->n_header)
            fprintf(stderr, "esb: line %lu: %lu cells, but the header names %lu columns\n",
                    line, (unsigned long)n, (unsigned long)r->n_header);
        else
            fprintf(stderr, "esb: line %lu: the header has %lu columns, the model reads "
                    "%lu\n", line, (unsigned long)n, (unsigned long)n_in);
        return 0;
    }
    if (st != ESB_OK) {
        fprintf(stderr, "esb: line %lu: not a valid CSV row (or not UTF-8, or a NUL byte)\n",
                line);
        return 0;
    }
    return 1;
}

/* Checks a record's cell count against the header (or, for the header, maps it); 0 said on
 * stderr. */
static int tab_check(const loaded *l, tab_recs *r, const esb_cell *cells, size_t n,
                     unsigned long line)
{
    int reason;
    size_t which;
    if (r->n_header == 0) {
        if (esb_tabular_header(&l->m, cells, n, r->pos, &reason, &which) == ESB_OK) {
            r->n_header = n;
            return 1;
        }
        fprintf(stderr, "esb: line %lu: ", line);
        fprintf(stderr, TAB_HEADER_WHY[reason],
                (unsigned long)(reason == ESB_HEADER_WIDTH ? n : which),
                (unsigned long)esb_tabular_n_inputs(&l->m));
        fprintf(stderr, "\n");
        return 0;
    }
    if (n == r->n_header) return 1;
    fprintf(stderr, "esb: line %lu: %lu cells, but the header names %lu columns\n", line,
            (unsigned long)n, (unsigned long)r->n_header);
    return 0;
}

/* A file that had a header and n_records records: 1, else 0 said on stderr. */
static int tab_found(const tab_recs *r, unsigned long n_records, const char *path)
{
    if (r->n_header && n_records) return 1;
    fprintf(stderr, r->n_header ? "esb: %s has a header but no records\n"
                                : "esb: %s is empty; expected a header row naming the columns\n",
            path);
    return 0;
}

/* The refusal of the record on `line` on stderr; returns 1 (exit status). */
static int tab_refused_line(unsigned long line, esb_status st)
{
    fprintf(stderr, "esb: line %lu: %s\n", line,
            st == ESB_E_INPUT ? "the record is refused (a cell that is not a number, an unknown "
                                "category, NaN/Inf features)"
                              : esb_strerror(st));
    return 1;
}

/* One record: its features or its prediction line; the status. */
static esb_status tab_record(const loaded *l, const esb_cell *fitted, void *ws, size_t bytes,
                             int features, float *scores, float *proba)
{
    const esb_model *m = &l->m;
    esb_status st;
    long cls = -1;
    if (features) {
        esb_tabular_row row;
        uint32_t j, k = 0;
        st = esb_tabular_features(m, fitted, ws, bytes, &row);
        if (st != ESB_OK) return st;
        for (j = 0; j < row.n; j++) {
            long col = row.sparse ? (long)row.indices[j] : (long)j;
            if (row.values[j] == 0.0) continue;
            printf(k++ ? " %ld:%.17g" : "%ld:%.17g", col, row.values[j]);
        }
        printf("\n");
        return ESB_OK;
    }
    st = esb_decision_tabular(m, fitted, ws, bytes, scores);
    if (st == ESB_OK && m->head != ESB_HEAD_IDENTITY) {
        uint32_t k;
        st = esb_predict_tabular(m, fitted, ws, bytes, &k);
        cls = (long)k;
    }
    if (st == ESB_OK && esb_has_proba(m)) st = esb_predict_proba_tabular(m, fitted, ws, bytes, proba);
    if (st == ESB_OK) print_row(m, cls, scores, esb_has_proba(m) ? proba : NULL);
    return st;
}

/* Every record of ROWS.csv (r->text, len bytes) through tab_record as it is read, stopping
 * at the first bad one: 0, or 1 said on stderr. */
static int tab_run(const loaded *l, const char *path, size_t len, tab_recs *r, tab_bufs *b,
                   int features, float *scores, float *proba)
{
    size_t at = 0, used, n, k, n_in = esb_tabular_n_inputs(&l->m);
    unsigned long line = 1, n_records = 0;
    if (len >= 3 && memcmp(r->text, "\xEF\xBB\xBF", 3) == 0) at = 3;
    while (at < len) {
        size_t max = r->n_header ? r->n_header : n_in;
        esb_status st = esb_csv_record((const char *)r->text + at, len - at, &used, b->out,
                                       len + 1, b->cells, max, &n);
        if (!tab_parsed(r, st, n, max, n_in, line)) return 1;
        if (!tab_blank(b->cells, n)) {
            int header = r->n_header == 0;
            if (!tab_check(l, r, b->cells, n, line)) return 1;
            if (!header) {
                n_records++;
                for (k = 0; k < n_in; k++) b->fitted[k] = b->cells[r->pos[k]];
                st = tab_record(l, b->fitted, b->ws, b->ws_bytes, features, scores, proba);
                if (st != ESB_OK) return tab_refused_line(line, st);
            }
        }
        line += tab_lines(r->text + at, used);
        at += used;
    }
    return tab_found(r, n_records, path) ? 0 : 1;
}

static int cmd_tabular(const loaded *l, const char *data, int features)
{
    tab_recs r;
    tab_bufs b;
    size_t len = 0, n_in = esb_tabular_n_inputs(&l->m);
    float *scores, *proba;
    int rc = 2;
    memset(&r, 0, sizeof r);
    memset(&b, 0, sizeof b);
    r.text = read_file(data, &len);
    if (!r.text) {
        fprintf(stderr, "esb: cannot read %s\n", data);
        return 2;
    }
    b.ws_bytes = esb_tabular_workspace_size(&l->m, len);
    b.out = (char *)malloc(len + 1);
    b.cells = (esb_cell *)malloc(sizeof(esb_cell) * (n_in + 1));
    b.fitted = (esb_cell *)malloc(sizeof(esb_cell) * (n_in + 1));
    r.pos = (uint32_t *)malloc(4 * (n_in + 1));
    b.ws = malloc(b.ws_bytes ? b.ws_bytes : 8);
    scores = (float *)malloc(4 * (size_t)l->m.n_outputs);
    proba = (float *)malloc(4 * ((size_t)l->m.n_classes + 1));
    if (b.out && b.cells && b.fitted && r.pos && b.ws && scores && proba)
        rc = tab_run(l, data, len, &r, &b, features, scores, proba);
    free(scores);
    free(proba);
    tab_free(&r, &b);
    return rc;
}

/*
 *   esb bench TABULAR_MODEL.esb ROWS.csv RUNS WARMUP [--op predict|proba|decision] [--batch N]
 *             [--predictions FILE]
 *
 * ROWS.csv is read as `esb predict` reads it (above); the header is mapped once, before the
 * clock starts, and each record's bytes are found (its raw CSV line(s)). One timed call is N
 * (--batch, default 1) consecutive records from record i * N % n_records (wrapping), each
 * split from its raw CSV text (esb_csv_record) and through esb_predict_tabular /
 * esb_predict_proba_tabular / esb_decision_tabular: CSV parsing and featurization included,
 * as the numpy runtime's predict(records) types and featurizes text cells. There is no batch
 * call for records, so "api" is "one-row". Cold start ends with record 0's prediction. The
 * JSON line has cmd_bench's keys and "input": "records"; "workspace_bytes" is the model's
 * workspace plus the tabular workspace (esb_tabular_workspace_size for the longest record)
 * and the CSV buffers. --predictions FILE: after timing, one line per record as cmd_bench
 * writes them (class index, or the decision values "%.9g").
 */
/* One record's span, appended (0 when out of memory). */
static int tab_push(tab_recs *r, size_t *cap, size_t at, size_t used, unsigned long line)
{
    if (r->n == *cap) {
        size_t c = *cap ? 2 * *cap : 1024;
        size_t *s = (size_t *)realloc(r->start, sizeof(size_t) * c);
        size_t *n = s ? (size_t *)realloc(r->len, sizeof(size_t) * c) : NULL;
        unsigned long *ln = n ? (unsigned long *)realloc(r->line, sizeof(unsigned long) * c) : NULL;
        if (s) r->start = s;
        if (n) r->len = n;
        if (!ln) return 0;
        r->line = ln, *cap = c;
    }
    r->start[r->n] = at, r->len[r->n] = used, r->line[r->n] = line;
    if (used > r->longest) r->longest = used;
    r->n++;
    return 1;
}

/* Reads ROWS.csv: maps its header and finds every record's bytes (cmd_tabular's rules and
 * messages); 0 on failure (tab_free frees what it read). Uses b's cell arrays, which hold
 * n_inputs + 1 cells. */
static int tab_read_records(const loaded *l, const char *path, tab_recs *r, tab_bufs *b)
{
    size_t len = 0, at = 0, used, n, cap = 0, n_in = esb_tabular_n_inputs(&l->m);
    unsigned long line = 1;
    r->text = read_file(path, &len);
    r->pos = (uint32_t *)malloc(4 * (n_in + 1));
    b->out = (char *)malloc(len + 1);
    if (!r->text || !r->pos || !b->out) {
        fprintf(stderr, "esb: cannot read %s\n", path);
        return 0;
    }
    if (len >= 3 && memcmp(r->text, "\xEF\xBB\xBF", 3) == 0) at = 3;
    while (at < len) {
        size_t max = r->n_header ? r->n_header : n_in;
        esb_status st = esb_csv_record((const char *)r->text + at, len - at, &used, b->out,
                                       len + 1, b->cells, max, &n);
        if (!tab_parsed(r, st, n, max, n_in, line)) return 0;
        if (!tab_blank(b->cells, n)) {
            int header = r->n_header == 0;
            if (!tab_check(l, r, b->cells, n, line)) return 0;
            if (!header && !tab_push(r, &cap, at, used, line)) {
                fprintf(stderr, "esb: out of memory reading %s\n", path);
                return 0;
            }
        }
        line += tab_lines(r->text + at, used);
        at += used;
    }
    return tab_found(r, r->n, path);
}

/* Record k from its raw CSV text through the op; out holds its class index (as a float's bits)
 * or outputs. */
static esb_status tab_call(const loaded *l, const tab_recs *r, uint32_t k, int op,
                           const tab_bufs *b, float *out, double *checksum)
{
    size_t used, n, j, n_in = esb_tabular_n_inputs(&l->m);
    uint32_t cls = 0;
    esb_status st = esb_csv_record((const char *)r->text + r->start[k], r->len[k], &used, b->out,
                                   b->out_bytes, b->cells, r->n_header, &n);
    if (st != ESB_OK) return st;
    for (j = 0; j < n_in; j++) b->fitted[j] = b->cells[r->pos[j]];
    if (op == OP_PREDICT) st = esb_predict_tabular(&l->m, b->fitted, b->ws, b->ws_bytes, &cls);
    else if (op == OP_PROBA) st = esb_predict_proba_tabular(&l->m, b->fitted, b->ws, b->ws_bytes, out);
    else st = esb_decision_tabular(&l->m, b->fitted, b->ws, b->ws_bytes, out);
    *checksum += op == OP_PREDICT ? (double)cls : (double)out[0];
    if (op == OP_PREDICT) memcpy(out, &cls, 4);
    return st;
}

/* tab_call as a one_row_call (esb_one_row_main.c). */
typedef struct {
    const loaded *l;
    const tab_recs *r;
    const tab_bufs *b;
} tab_items;

static esb_status tab_item(const void *ctx, uint32_t k, int op, float *out, double *checksum)
{
    const tab_items *x = (const tab_items *)ctx;
    return tab_call(x->l, x->r, k, op, x->b, out, checksum);
}

/* The refusal of record k on stderr (cmd_tabular's words), as a one_row_refusal: 1. */
static int tab_item_refused(const void *ctx, uint32_t k, esb_status st)
{
    return tab_refused_line(((const tab_items *)ctx)->r->line[k], st);
}

/* The buffers for records of up to r->longest bytes (the cell arrays were made before). */
static int tab_alloc(const loaded *l, const tab_recs *r, tab_bufs *b)
{
    b->out_bytes = r->longest + 1;
    b->ws_bytes = esb_tabular_workspace_size(&l->m, r->longest);
    b->ws = malloc(b->ws_bytes ? b->ws_bytes : 8);
    return b->ws != NULL;
}

static int tab_cmd_bench(const loaded *l, const char *data, const bench_opts *o, bench_facts *f)
{
    tab_recs r;
    tab_bufs b;
    tab_items x;
    one_row_items it;
    size_t cells_bytes = sizeof(esb_cell) * (esb_tabular_n_inputs(&l->m) + 1);
    int op = one_row_op(l, o->op), rc = 2;
    float *out = NULL;
    if (op < 0) return 2;
    memset(&r, 0, sizeof r);
    memset(&b, 0, sizeof b);
    b.cells = (esb_cell *)malloc(cells_bytes);
    b.fitted = (esb_cell *)malloc(cells_bytes);
    if (!b.cells || !b.fitted || !tab_read_records(l, data, &r, &b)) goto done;
    out = (float *)malloc(4 * ((size_t)l->m.n_outputs + l->m.n_classes + 1));
    if (!tab_alloc(l, &r, &b) || !out) goto done;
    x.l = l;
    x.r = &r;
    x.b = &b;
    one_row_items_of(&it, tab_item, tab_item_refused, &x, r.n, "record", "records");
    rc = one_row_bench(l, o, op, &it, out, f,
                       (unsigned long)(l->ws_bytes + b.ws_bytes + b.out_bytes + 2 * cells_bytes));
done:
    free(out);
    tab_free(&r, &b);
    return rc;
}
