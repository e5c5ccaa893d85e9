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

static int cmd_tabular(const loaded *l, const char *data, int features)
{
    size_t len = 0, at = 0, used, n, n_header = 0, which, bytes, k;
    unsigned char *text = read_file(data, &len);
    uint32_t n_in = esb_tabular_n_inputs(&l->m), *pos;
    unsigned long line = 1;
    char *out;
    esb_cell *cells, *fitted;
    void *ws;
    float *scores, *proba;
    int have_header = 0, reason;
    unsigned long n_records = 0;
    if (!text) {
        fprintf(stderr, "esb: cannot read %s\n", data);
        return 2;
    }
    if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) at = 3;
    bytes = esb_tabular_workspace_size(&l->m, len);
    out = (char *)malloc(len + 1);
    cells = (esb_cell *)malloc(sizeof(esb_cell) * ((size_t)n_in + 1));
    fitted = (esb_cell *)malloc(sizeof(esb_cell) * ((size_t)n_in + 1));
    pos = (uint32_t *)malloc(4 * ((size_t)n_in + 1));
    ws = malloc(bytes);
    scores = (float *)malloc(4 * (size_t)l->m.n_outputs);
    proba = (float *)malloc(4 * ((size_t)l->m.n_classes + 1));
    if (!out || !cells || !fitted || !pos || !ws || !scores || !proba) return 2;
    while (at < len) {
        size_t max = have_header ? n_header : n_in;
        esb_status st = esb_csv_record((const char *)text + at, len - at, &used, out, len + 1,
                                       cells, max, &n);
        if (st == ESB_E_INPUT && n > max) {
            if (have_header)
                fprintf(stderr, "esb: line %lu: %lu cells, but the header names %lu columns\n",
                        line, (unsigned long)n, (unsigned long)n_header);
            else
                fprintf(stderr, "esb: line %lu: the header has %lu columns, the model reads "
                        "%lu\n", line, (unsigned long)n, (unsigned long)n_in);
            return 1;
        }
        if (st != ESB_OK) {
            fprintf(stderr, "esb: line %lu: not a valid CSV row (or not UTF-8, or a NUL byte)\n",
                    line);
            return 1;
        }
        if (!tab_blank(cells, n)) {
            if (!have_header) {
                if (esb_tabular_header(&l->m, cells, n, pos, &reason, &which) != ESB_OK) {
                    fprintf(stderr, "esb: line %lu: ", line);
                    fprintf(stderr, TAB_HEADER_WHY[reason], (unsigned long)(reason ==
                            ESB_HEADER_WIDTH ? n : which), (unsigned long)n_in);
                    fprintf(stderr, "\n");
                    return 1;
                }
                have_header = 1, n_header = n;
            } else if (n != n_header) {
                fprintf(stderr, "esb: line %lu: %lu cells, but the header names %lu columns\n",
                        line, (unsigned long)n, (unsigned long)n_header);
                return 1;
            } else {
                esb_status rs;
                n_records++;
                for (k = 0; k < n_in; k++) fitted[k] = cells[pos[k]];
                rs = tab_record(l, fitted, ws, bytes, features, scores, proba);
                if (rs != ESB_OK) {
                    fprintf(stderr, "esb: line %lu: %s\n", line,
                            rs == ESB_E_INPUT ? "the record is refused (a cell that is not a "
                                                "number, an unknown category, NaN/Inf features)"
                                              : esb_strerror(rs));
                    return 1;
                }
            }
        }
        line += tab_lines(text + at, used);
        at += used;
    }
    if (!have_header) {
        fprintf(stderr, "esb: %s is empty; expected a header row naming the columns\n", data);
        return 1;
    }
    if (!n_records) {
        fprintf(stderr, "esb: %s has a header but no records\n", data);
        return 1;
    }
    return 0;
}
