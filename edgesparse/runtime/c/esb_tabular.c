/*
 * esb_tabular.c - the tabular input stage (section kind 11, `tabular`) of the C runtime: its
 * verifier, a CSV record splitter, the header-to-input mapping and the featurizer (one
 * record's text cells -> the feature row the linear kernels read).
 *
 * NOT a separate translation unit: esb.c includes it (so that the builds, export-c and the
 * bench keep compiling `esb.c esb_main.c`), and it uses esb.c's static helpers (fail, BAD,
 * rdv, utf8_seq, utf8_valid, ld_*). The numeric contract is edgesparse/ir/tabular.py's module
 * docstring; the reference decoder is edgesparse/formats/linear_tabular.py (same checks, same
 * order, same messages); the reference featurizer is edgesparse/runtime/tabular.py on the
 * cells edgesparse/data.py's read_records gives. See esb.h, "Tabular input", for the API, the
 * workspace bound and the gaps vs Python.
 */
#ifdef ESB_NO_TABULAR
/* A build without the tabular stage: a blob with a tabular section is refused by name, the
 * tabular calls give ESB_E_HEAD (and 0 for the sizes). */
static esb_status check_tabular(esb_model *m, const uint8_t *d)
{
    (void)d;
    BAD("section 'tabular' at offset %" PRIu32 ": a tabular input stage, which this build of "
        "the C runtime leaves out (-DESB_NO_TABULAR); run this model with a full build or the "
        "numpy runtime", m->sec_[TABULAR].offset);
}
int esb_has_tabular(const esb_model *m) { return m && m->buf_ && m->sec_[TABULAR].present; }
uint32_t esb_tabular_n_inputs(const esb_model *m)
{
    (void)m;
    return 0;
}
size_t esb_tabular_workspace_size(const esb_model *m, size_t max_cell_bytes)
{
    (void)m, (void)max_cell_bytes;
    return 0;
}
esb_status esb_csv_record(const char *text, size_t len, size_t *used, char *out,
                          size_t out_bytes, esb_cell *cells, size_t max_cells, size_t *n_cells)
{
    (void)text, (void)len, (void)used, (void)out, (void)out_bytes, (void)cells, (void)max_cells;
    (void)n_cells;
    return ESB_E_HEAD;
}
esb_status esb_tabular_header(const esb_model *m, const esb_cell *names, size_t n_names,
                              uint32_t *pos, int *reason, size_t *which)
{
    (void)m, (void)names, (void)n_names, (void)pos, (void)reason, (void)which;
    return ESB_E_HEAD;
}
esb_status esb_tabular_features(const esb_model *m, const esb_cell *cells, void *ws,
                                size_t ws_bytes, esb_tabular_row *row)
{
    (void)m, (void)cells, (void)ws, (void)ws_bytes, (void)row;
    return ESB_E_HEAD;
}
esb_status esb_decision_tabular(const esb_model *m, const esb_cell *cells, void *ws,
                                size_t ws_bytes, float *scores)
{
    (void)m, (void)cells, (void)ws, (void)ws_bytes, (void)scores;
    return ESB_E_HEAD;
}
esb_status esb_predict_tabular(const esb_model *m, const esb_cell *cells, void *ws,
                               size_t ws_bytes, uint32_t *class_index)
{
    (void)m, (void)cells, (void)ws, (void)ws_bytes, (void)class_index;
    return ESB_E_HEAD;
}
esb_status esb_predict_proba_tabular(const esb_model *m, const esb_cell *cells, void *ws,
                                     size_t ws_bytes, float *proba)
{
    (void)m, (void)cells, (void)ws, (void)ws_bytes, (void)proba;
    return ESB_E_HEAD;
}
#else

enum { TB_FIXED = 24, TB_CAT = 1, TB_IMP = 2, TB_IGN = 4, TB_KNOWN_FLAGS = 7 };
/* Value tags (the format's 0..3), and a cell's integer beyond int64 (its digits). */
enum { TB_NONE = 0, TB_INT = 1, TB_FLOAT = 2, TB_STR = 3, TB_BIG = 4 };
#define TB_MAX_INPUTS (1u << 20)
#define TB_MAX_CATS (1u << 24)
#define TB_DENSE_MAX 1024u   /* runtime/tabular.py's _DENSE_MAX */
#define TB_FIELD_LIMIT 131072u /* csv.field_size_limit(), in code points */
#define TB_INT_DIGITS 4300u  /* sys.int_info.default_max_str_digits: int() refuses more */

/* A category, fill value or cell: tag and data (s/n: a string's UTF-8, or a TB_BIG's
 * normalized decimal digits with its sign). */
typedef struct tb_val {
    unsigned tag;
    int64_t i;
    double f;
    const uint8_t *s;
    uint64_t n;
} tb_val;

/* ---------------------------------------------------------------------------------------- */
/* Values: decoding, Python equality (category_key) and a hash consistent with it            */
/* ---------------------------------------------------------------------------------------- */
/* Decode the verified value at *pp. */
static void tb_decode(const uint8_t **pp, tb_val *v)
{
    const uint8_t *p = *pp;
    memset(v, 0, sizeof *v);
    v->tag = *p++;
    if (v->tag == TB_INT) v->i = (int64_t)ld_u64(p), p += 8;
    else if (v->tag == TB_FLOAT) v->f = ld_f64(p), p += 8;
    else if (v->tag == TB_STR) {
        v->n = rdv(&p);
        v->s = p;
        p += v->n;
    }
    *pp = p;
}

/* Whether the double d is exactly the int64 i (Python's int == float). */
static int tb_int_is(int64_t i, double d)
{
    return d == d && d >= -9223372036854775808.0 && d < 9223372036854775808.0 &&
           d == floor(d) && (int64_t)d == i;
}

/* Whether an integer beyond int64 (normalized digits s[0..n), '-' first when negative)
 * exactly equals the double d: d's exact decimal ("%.0f" is exact in glibc, musl, newlib). */
static int tb_big_is(const uint8_t *s, uint64_t n, double d)
{
    char buf[400];
    int k;
    if (d != d || fabs(d) > DBL_MAX || d != floor(d) || fabs(d) < 9223372036854775808.0)
        return 0;
    k = snprintf(buf, sizeof buf, "%.0f", d);
    return k > 0 && (uint64_t)k == n && memcmp(buf, s, (size_t)n) == 0;
}

/* Python equality of two values, with every NaN equal (category_key). */
static int tb_eq(const tb_val *a, const tb_val *b)
{
    if (a->tag == TB_NONE || b->tag == TB_NONE) return a->tag == b->tag;
    if (a->tag == TB_STR || b->tag == TB_STR)
        return a->tag == b->tag && a->n == b->n && memcmp(a->s, b->s, (size_t)a->n) == 0;
    if (a->tag == TB_FLOAT && b->tag == TB_FLOAT)
        return a->f == b->f || (a->f != a->f && b->f != b->f);
    if (a->tag == TB_INT && b->tag == TB_INT) return a->i == b->i;
    if (a->tag == TB_BIG || b->tag == TB_BIG) {
        const tb_val *big = a->tag == TB_BIG ? a : b, *o = a->tag == TB_BIG ? b : a;
        return o->tag == TB_FLOAT && tb_big_is(big->s, big->n, o->f);
    }
    return a->tag == TB_INT ? tb_int_is(a->i, b->f) : tb_int_is(b->i, a->f);
}

static uint32_t tb_fnv(const uint8_t *p, uint64_t n, uint32_t h)
{
    uint64_t i;
    for (i = 0; i < n; i++) h = (h ^ p[i]) * 16777619u;
    return h;
}

/* A hash equal for equal values: a number by its double when that is exact. */
static uint32_t tb_hash(const tb_val *v)
{
    uint8_t raw[8];
    double d;
    if (v->tag == TB_NONE) return 0x9E3779B9u;
    if (v->tag == TB_STR) return tb_fnv(v->s, v->n, 2166136261u);
    if (v->tag == TB_FLOAT) {
        if (v->f != v->f) return 0x7FF80000u;
        d = v->f == 0.0 ? 0.0 : v->f;
    } else {
        d = (double)v->i;
        if (!tb_int_is(v->i, d)) {
            uint64_t u = (uint64_t)v->i;
            memcpy(raw, &u, 8);
            return tb_fnv(raw, 8, 84696351u);
        }
    }
    memcpy(raw, &d, 8);
    return tb_fnv(raw, 8, 84696351u);
}

/* ---------------------------------------------------------------------------------------- */
/* Repeats among n items, with no allocation (as esb_text.c's vocabulary check): passes over  */
/* the items, each inserting those whose hash falls in its share into a table on the stack.  */
/* ---------------------------------------------------------------------------------------- */
enum { TB_DUP_SLOTS = 4096 };
enum { TB_SEQ_NAMES, TB_SEQ_VALUES, TB_SEQ_CELLS };

/* A sequence of items: a strings block (varint lengths, then bytes), tagged values, cells. */
typedef struct tb_seq {
    int kind;
    const uint8_t *base, *lens, *p;
    const esb_cell *cells;
    uint64_t k;
} tb_seq;

/* The next item as a value, and a reference to find it again (ref, len). */
static void tb_seq_next(tb_seq *s, tb_val *v, uint32_t *ref, uint32_t *len)
{
    if (s->kind == TB_SEQ_CELLS) {
        memset(v, 0, sizeof *v);
        v->tag = TB_STR;
        v->s = (const uint8_t *)s->cells[s->k].text;
        v->n = s->cells[s->k].len;
        *ref = (uint32_t)s->k++;
    } else if (s->kind == TB_SEQ_NAMES) {
        memset(v, 0, sizeof *v);
        v->tag = TB_STR;
        v->n = rdv(&s->lens);
        v->s = s->p;
        *ref = (uint32_t)(s->p - s->base);
        s->p += v->n;
    } else {
        *ref = (uint32_t)(s->p - s->base);
        tb_decode(&s->p, v);
    }
    *len = (uint32_t)v->n;
}

static void tb_seq_get(const tb_seq *s, uint32_t ref, uint32_t len, tb_val *v)
{
    if (s->kind == TB_SEQ_VALUES) {
        const uint8_t *p = s->base + ref;
        tb_decode(&p, v);
        return;
    }
    memset(v, 0, sizeof *v);
    v->tag = TB_STR;
    v->s = s->kind == TB_SEQ_CELLS ? (const uint8_t *)s->cells[ref].text : s->base + ref;
    v->n = len;
}

/* Whether two of the n items of the sequence *start are equal (Python equality, NaNs equal).
 * O(n * (n / 2048 + 1)) item reads; 32 KiB of stack. */
static int tb_has_repeat(const tb_seq *start, uint64_t n)
{
    uint32_t refs[TB_DUP_SLOTS], lens[TB_DUP_SLOTS];
    unsigned char used[TB_DUP_SLOTS];
    uint64_t passes = n / (TB_DUP_SLOTS / 2) + 1, pass, i;
    for (pass = 0; pass < passes; pass++) {
        tb_seq s = *start;
        memset(used, 0, sizeof used);
        for (i = 0; i < n; i++) {
            tb_val v, o;
            uint32_t ref, len, h, slot;
            tb_seq_next(&s, &v, &ref, &len);
            h = tb_hash(&v);
            if (h % passes != pass) continue;
            for (slot = (uint32_t)(h / passes) % TB_DUP_SLOTS; used[slot];
                 slot = (slot + 1) % TB_DUP_SLOTS) {
                tb_seq_get(&s, refs[slot], lens[slot], &o);
                if (tb_eq(&v, &o)) return 1;
            }
            used[slot] = 1, refs[slot] = ref, lens[slot] = len;
        }
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* The verifier: formats/linear_tabular.py's decode_tabular, check by check                  */
/* ---------------------------------------------------------------------------------------- */
/* A cursor over the section (linear_tabular._Reader); st is set by the first failure. */
typedef struct tb_rd {
    esb_model *m;
    const uint8_t *b;
    uint32_t off;
    uint64_t pos, end;
    esb_status st;
} tb_rd;

static esb_status tb_fail(tb_rd *r, const char *fmt, ...)
{
    char msg[ESB_MESSAGE_SIZE];
    va_list ap;
    if (r->st) return r->st;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    r->st = fail(r->m, ESB_E_CORRUPT, "section 'tabular' at offset %" PRIu32 ": %s", r->off, msg);
    return r->st;
}

static const uint8_t *tb_take(tb_rd *r, uint64_t n, const char *what)
{
    const uint8_t *p = r->b + r->pos;
    if (r->st) return NULL;
    if (n > r->end - r->pos) {
        tb_fail(r, "%s at offset %" PRIu64 " needs %" PRIu64 " bytes, %" PRIu64 " left", what,
                r->off + r->pos, n, r->end - r->pos);
        return NULL;
    }
    r->pos += n;
    return p;
}

static uint64_t tb_varint(tb_rd *r, const char *what)
{
    uint64_t at = r->off + r->pos, value = 0;
    unsigned i;
    for (i = 0; i < 5; i++) {
        const uint8_t *p = tb_take(r, 1, what);
        if (!p) return 0;
        value |= (uint64_t)(*p & 0x7F) << (7 * i);
        if (!(*p & 0x80)) {
            if (i && *p == 0) {
                tb_fail(r, "%s at offset %" PRIu64 " is not a minimal varint", what, at);
                return 0;
            }
            if (value > 0xFFFFFFFFu) break;
            return value;
        }
    }
    tb_fail(r, "%s at offset %" PRIu64 " is not a varint below 2^32", what, at);
    return 0;
}

/* An f64: any (raw), NaN or finite (marker), or finite. */
enum { TB_F_FINITE, TB_F_MARKER };
static double tb_f64(tb_rd *r, const char *what, int kind)
{
    uint64_t at = r->off + r->pos;
    const uint8_t *p = tb_take(r, 8, what);
    double v;
    if (!p) return 0.0;
    v = ld_f64(p);
    if (kind == TB_F_MARKER && v != v) return v;
    if (!finite_f64(ld_u64(p))) tb_fail(r, "%s at offset %" PRIu64 " is not finite", what, at);
    return v;
}

static void tb_value(tb_rd *r, const char *what, tb_val *v)
{
    uint64_t at = r->off + r->pos;
    const uint8_t *p = tb_take(r, 1, what);
    memset(v, 0, sizeof *v);
    if (!p) return;
    v->tag = *p;
    if (v->tag == TB_NONE) return;
    if (v->tag == TB_INT || v->tag == TB_FLOAT) {
        p = tb_take(r, 8, what);
        if (p) v->i = (int64_t)ld_u64(p), v->f = ld_f64(p);
        return;
    }
    if (v->tag == TB_STR) {
        char lw[96];
        uint64_t at2 = r->off + r->pos;
        snprintf(lw, sizeof lw, "%s length", what);
        v->n = tb_varint(r, lw);
        if (r->st) return;
        v->s = tb_take(r, v->n, what);
        if (v->s && !utf8_valid(v->s, v->n))
            tb_fail(r, "%s at offset %" PRIu64 " is not valid UTF-8", what, at2);
        return;
    }
    tb_fail(r, "%s at offset %" PRIu64 " has unknown tag %u", what, at, v->tag);
}

/* _names: n varint lengths, then UTF-8 names filling [pos, end) exactly, distinct. */
static esb_status tb_check_names(tb_rd *r, uint32_t n)
{
    char what[64];
    uint64_t i, start = r->pos, heads;
    tb_seq s;
    for (i = 0; i < n && !r->st; i++) {
        snprintf(what, sizeof what, "name %" PRIu64 " length", i);
        (void)tb_varint(r, what);
    }
    heads = r->pos;
    {
        const uint8_t *lp = r->b + start;
        for (i = 0; i < n && !r->st; i++) {
            uint64_t len = rdv(&lp), at = r->off + r->pos;
            const uint8_t *p;
            snprintf(what, sizeof what, "name %" PRIu64, i);
            p = tb_take(r, len, what);
            if (p && !utf8_valid(p, len))
                tb_fail(r, "name %" PRIu64 " at offset %" PRIu64 " is not valid UTF-8", i, at);
        }
    }
    if (r->st) return r->st;
    if (r->pos != r->end)
        return tb_fail(r, "the names take %" PRIu64 " bytes, not names_bytes",
                       r->pos - TB_FIXED);
    s.kind = TB_SEQ_NAMES, s.base = r->b, s.lens = r->b + start, s.p = r->b + heads;
    return tb_has_repeat(&s, n) ? tb_fail(r, "a column name is repeated") : ESB_OK;
}

/* _column: one column record; its width (output features) in *width. */
static esb_status tb_check_column(tb_rd *r, uint32_t i, uint32_t n_in, uint64_t *width)
{
    char what[48], w2[80];
    uint64_t at = r->off + r->pos, source, n_cat, drop, k;
    const uint8_t *p;
    unsigned flags;
    tb_val fill;
    snprintf(what, sizeof what, "column record %" PRIu32, i);
    p = tb_take(r, 1, what);
    if (!p) return r->st;
    flags = *p;
    if ((flags & ~(unsigned)TB_KNOWN_FLAGS) || ((flags & TB_IGN) && !(flags & TB_CAT)))
        return tb_fail(r, "%s at offset %" PRIu64 " has flags 0x%02x", what, at, flags);
    snprintf(w2, sizeof w2, "%s's input position", what);
    source = tb_varint(r, w2);
    if (r->st) return r->st;
    if (source >= n_in)
        return tb_fail(r, "%s at offset %" PRIu64 " reads input %" PRIu64 ", not below "
                       "n_inputs=%" PRIu32, what, at, source, n_in);
    if (flags & TB_IMP) {
        snprintf(w2, sizeof w2, "%s's missing marker", what);
        (void)tb_f64(r, w2, TB_F_MARKER);
        snprintf(w2, sizeof w2, "%s's fill", what);
        if (flags & TB_CAT) tb_value(r, w2, &fill);
        else (void)tb_f64(r, w2, TB_F_FINITE);
    }
    if (!(flags & TB_CAT)) {
        snprintf(w2, sizeof w2, "%s's scale", what);
        (void)tb_f64(r, w2, TB_F_FINITE);
        snprintf(w2, sizeof w2, "%s's offset", what);
        (void)tb_f64(r, w2, TB_F_FINITE);
        *width = 1;
        return r->st;
    }
    snprintf(w2, sizeof w2, "%s's category count", what);
    n_cat = tb_varint(r, w2);
    if (r->st) return r->st;
    if (!(1 <= n_cat && n_cat <= r->end - r->pos))
        return tb_fail(r, "%s at offset %" PRIu64 ": %" PRIu64 " categories cannot fit in the "
                       "bytes left", what, at, n_cat);
    snprintf(w2, sizeof w2, "%s's drop", what);
    drop = tb_varint(r, w2); /* drop + 1 */
    if (r->st) return r->st;
    if (drop != 0 && drop - 1 >= n_cat)
        return tb_fail(r, "%s at offset %" PRIu64 " drops category %" PRIu64 " of %" PRIu64,
                       what, at, drop - 1, n_cat);
    {
        tb_seq s;
        s.kind = TB_SEQ_VALUES, s.base = r->b, s.p = r->b + r->pos;
        for (k = 0; k < n_cat && !r->st; k++) {
            tb_val v;
            snprintf(w2, sizeof w2, "%s's category %" PRIu64, what, k);
            tb_value(r, w2, &v);
        }
        if (r->st) return r->st;
        /* TabularColumn's own rules (ir/tabular.py), raised while the reader builds it. */
        if (n_cat > TB_MAX_CATS)
            return tb_fail(r, "%s at offset %" PRIu64 ": column.categories: must be 1 to %u "
                           "categories", what, at, TB_MAX_CATS);
        if (tb_has_repeat(&s, n_cat))
            return tb_fail(r, "%s at offset %" PRIu64 ": column.categories: two categories are "
                           "equal", what, at);
    }
    if (drop == 1 && n_cat < 2)
        return tb_fail(r, "%s at offset %" PRIu64 ": column.drop: 0 is not -1 or a category "
                       "index of several", what, at);
    *width = n_cat - (drop != 0);
    return ESB_OK;
}

/* Called by check_contents for a blob with a tabular section. */
static esb_status check_tabular(esb_model *m, const uint8_t *d)
{
    const esb_section_ref *sec = &m->sec_[TABULAR];
    const uint8_t *b = d + sec->offset;
    const uint64_t len = sec->length;
    const uint32_t off = sec->offset;
    uint32_t n_in, n_cols, n_feat, names_bytes, body_bytes, res, i;
    uint64_t total = 0, need;
    tb_rd r;
    if (len < TB_FIXED)
        BAD("section 'tabular' at offset %" PRIu32 " is %" PRIu64 " bytes, expected 24 (the "
            "tabular stage's 24-byte fixed fields)", off, len);
    n_in = ld_u32(b), n_cols = ld_u32(b + 4), n_feat = ld_u32(b + 8);
    names_bytes = ld_u32(b + 12), body_bytes = ld_u32(b + 16), res = ld_u32(b + 20);
    if (res)
        BAD("section 'tabular' at offset %" PRIu32 ": reserved field at offset %" PRIu64 " is %"
            PRIu32 ", expected 0", off, (uint64_t)off + 20, res);
    if (n_in < 1 || n_in > TB_MAX_INPUTS)
        BAD("section 'tabular' at offset %" PRIu32 ": n_inputs %" PRIu32 " at offset %" PRIu32
            " is not in [1, %u]", off, n_in, off, TB_MAX_INPUTS);
    if (n_feat != m->n_features)
        BAD("section 'tabular' at offset %" PRIu32 ": n_features %" PRIu32 " at offset %" PRIu64
            " differs from the header's %" PRIu32, off, n_feat, (uint64_t)off + 8,
            m->n_features);
    if (n_cols < 1 || 2ull * n_cols > body_bytes)
        BAD("section 'tabular' at offset %" PRIu32 ": %" PRIu32 " column records at offset %"
            PRIu64 " cannot take %" PRIu32 " bytes", off, n_cols, (uint64_t)off + 4, body_bytes);
    if (names_bytes && names_bytes < n_in)
        BAD("section 'tabular' at offset %" PRIu32 ": %" PRIu32 " names cannot take %" PRIu32
            " bytes (offset %" PRIu64 ")", off, n_in, names_bytes, (uint64_t)off + 12);
    need = (uint64_t)TB_FIXED + names_bytes + body_bytes;
    if (len != need)
        BAD("section 'tabular' at offset %" PRIu32 " is %" PRIu64 " bytes, expected %" PRIu64
            " (24 bytes, %" PRIu32 " of names and %" PRIu32 " of column records)", off, len,
            need, names_bytes, body_bytes);
    r.m = m, r.b = b, r.off = off, r.st = ESB_OK;
    if (names_bytes) {
        r.pos = TB_FIXED, r.end = TB_FIXED + (uint64_t)names_bytes;
        tb_check_names(&r, n_in);
        if (r.st) return r.st;
    }
    r.pos = TB_FIXED + (uint64_t)names_bytes, r.end = len;
    for (i = 0; i < n_cols; i++) {
        uint64_t width = 0;
        tb_check_column(&r, i, n_in, &width);
        if (r.st) return r.st;
        total += width;
    }
    if (r.pos != r.end)
        BAD("section 'tabular' at offset %" PRIu32 ": %" PRIu64 " bytes follow the last column "
            "record", off, r.end - r.pos);
    if (total > 0x7FFFFFFFu)
        BAD("section 'tabular' at offset %" PRIu32 ": featurizer: produces more features than a "
            "model can have", off);
    if (total != n_feat)
        BAD("section 'tabular' at offset %" PRIu32 ": the column records make %" PRIu64
            " features, not %" PRIu32, off, total, n_feat);
    return ESB_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* Python's str.isspace / str.splitlines characters, and decimal digits (str -> int, float)  */
/* ---------------------------------------------------------------------------------------- */
/* Code point at p (valid UTF-8, n > 0 bytes); its length in *l. */
static uint32_t tb_cp(const uint8_t *p, uint64_t n, unsigned *l)
{
    unsigned k = utf8_seq(p, n);
    uint32_t cp = p[0];
    *l = k ? k : 1;
    if (k == 2) cp = (cp & 0x1Fu) << 6 | (p[1] & 0x3Fu);
    if (k == 3) cp = (cp & 0x0Fu) << 12 | (p[1] & 0x3Fu) << 6 | (p[2] & 0x3Fu);
    if (k == 4)
        cp = (cp & 0x07u) << 18 | (p[1] & 0x3Fu) << 12 | (p[2] & 0x3Fu) << 6 | (p[3] & 0x3Fu);
    return cp;
}

/* str.isspace (Python's Py_UNICODE_ISSPACE; unchanged since Unicode 6.3). */
static int tb_space(uint32_t cp)
{
    return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20) || cp == 0x85 ||
           cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 ||
           cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

/* Bytes of the str.splitlines line break at p (n > 0 bytes left), or 0. */
static unsigned tb_break(const uint8_t *p, uint64_t n)
{
    if (*p == '\r') return n > 1 && p[1] == '\n' ? 2 : 1;
    if (*p == '\n' || *p == 0x0B || *p == 0x0C || (*p >= 0x1C && *p <= 0x1E)) return 1;
    if (n > 1 && p[0] == 0xC2 && p[1] == 0x85) return 2;
    if (n > 2 && p[0] == 0xE2 && p[1] == 0x80 && (p[2] == 0xA8 || p[2] == 0xA9)) return 3;
    return 0;
}

/* The zero of every run of ten decimal digits (Unicode category Nd) above ASCII: Python's
 * int() and float() read them as 0..9 (Unicode 14.0, generated from unicodedata.decimal;
 * the set rarely changes). */
static const uint32_t TB_ZEROS[] = {
    0x660,   0x6f0,   0x7c0,   0x966,   0x9e6,   0xa66,   0xae6,   0xb66,   0xbe6,   0xc66,
    0xce6,   0xd66,   0xde6,   0xe50,   0xed0,   0xf20,   0x1040,  0x1090,  0x17e0,  0x1810,
    0x1946,  0x19d0,  0x1a80,  0x1a90,  0x1b50,  0x1bb0,  0x1c40,  0x1c50,  0xa620,  0xa8d0,
    0xa900,  0xa9d0,  0xa9f0,  0xaa50,  0xabf0,  0xff10,  0x104a0, 0x10d30, 0x11066, 0x110f0,
    0x11136, 0x111d0, 0x112f0, 0x11450, 0x114d0, 0x11650, 0x116c0, 0x11730, 0x118e0, 0x11950,
    0x11c50, 0x11d50, 0x11da0, 0x16a60, 0x16ac0, 0x16b50, 0x1d7ce, 0x1d7d8, 0x1d7e2, 0x1d7ec,
    0x1d7f6, 0x1e140, 0x1e2f0, 0x1e950, 0x1fbf0};

static int tb_digit(uint32_t cp)
{
    size_t lo = 0, hi = sizeof TB_ZEROS / sizeof TB_ZEROS[0];
    while (lo < hi) { /* the last zero <= cp */
        size_t mid = (lo + hi) / 2;
        if (TB_ZEROS[mid] <= cp) lo = mid + 1;
        else hi = mid;
    }
    return lo && cp - TB_ZEROS[lo - 1] < 10 ? (int)(cp - TB_ZEROS[lo - 1]) : -1;
}

/* _PyUnicode_TransformDecimalAndSpaceToASCII: ASCII as is, other whitespace ' ', other
 * decimal digits '0'..'9'; 0 when another character makes the number invalid. The result is
 * NUL-terminated in o (at least n + 1 bytes). */
static int tb_to_ascii(const uint8_t *s, uint64_t n, char *o, uint64_t *on)
{
    uint64_t i = 0, k = 0;
    while (i < n) {
        unsigned l;
        uint32_t cp = tb_cp(s + i, n - i, &l);
        int dg;
        if (cp < 127) o[k++] = (char)cp;
        else if (tb_space(cp)) o[k++] = ' ';
        else if ((dg = tb_digit(cp)) >= 0) o[k++] = (char)('0' + dg);
        else return 0;
        i += l;
    }
    o[k] = '\0';
    *on = k;
    return 1;
}

static int tb_isspace_ascii(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

static int tb_isdigit(char c) { return c >= '0' && c <= '9'; }

/* int(text) (base 10, after tb_to_ascii): ws [+-] digit (_? digit)* ws, at most 4300 digits.
 * 1 with an int64 in v->i (TB_INT) or the normalized digits in s (TB_BIG, in place). */
static int tb_parse_int(char *s, uint64_t n, tb_val *v)
{
    uint64_t i = 0, k = 0, mag = 0, lead = 0;
    int neg = 0, over = 0;
    char *digits;
    while (i < n && tb_isspace_ascii(s[i])) i++;
    if (i < n && (s[i] == '+' || s[i] == '-')) neg = s[i++] == '-';
    if (i >= n || !tb_isdigit(s[i])) return 0;
    digits = s + i;
    for (; i < n; i++) { /* the digits, underscores left out, moved down in place */
        if (s[i] == '_') {
            if (i + 1 >= n || !tb_isdigit(s[i + 1])) return 0;
            continue;
        }
        if (!tb_isdigit(s[i])) break;
        digits[k++] = s[i];
        if (mag > (UINT64_MAX - 9) / 10) over = 1;
        else mag = mag * 10 + (uint64_t)(s[i] - '0');
    }
    while (i < n && tb_isspace_ascii(s[i])) i++;
    if (i != n || k > TB_INT_DIGITS) return 0;
    memset(v, 0, sizeof *v);
    if (!over && mag <= (neg ? 9223372036854775808ull : 9223372036854775807ull)) {
        v->tag = TB_INT;
        v->i = neg ? (mag == 9223372036854775808ull ? INT64_MIN : -(int64_t)mag) : (int64_t)mag;
        return 1;
    }
    while (lead + 1 < k && digits[lead] == '0') lead++;
    digits += lead, k -= lead;
    if (neg) { /* room before the digits: the sign itself, or a leading zero */
        *--digits = '-';
        k++;
    }
    v->tag = TB_BIG;
    v->s = (const uint8_t *)digits;
    v->n = k;
    return 1;
}

static int tb_word(const char *s, uint64_t n, const char *w)
{
    uint64_t i;
    for (i = 0; i < n; i++)
        if (!w[i] || (s[i] | 0x20) != w[i]) return 0;
    return w[n] == '\0';
}

/* float(text) (after tb_to_ascii, s NUL-terminated): underscores between digits removed
 * (in place), whitespace stripped, then [+-] decimal literal or inf / infinity / nan in any
 * case; the value correctly rounded (strtod). 1 on success. */
static int tb_parse_float(char *s, uint64_t n, double *out)
{
    uint64_t i, k = 0, a, e;
    char prev = '\0', *t;
    int neg = 0, digits = 0;
    for (i = 0; i < n; i++) { /* _Py_string_to_number_with_underscores */
        if (s[i] == '_') {
            if (!tb_isdigit(prev)) return 0;
        } else {
            if (prev == '_' && !tb_isdigit(s[i])) return 0;
            s[k++] = s[i];
        }
        prev = s[i];
    }
    if (prev == '_') return 0;
    for (a = 0; a < k && tb_isspace_ascii(s[a]); a++) continue;
    for (e = k; e > a && tb_isspace_ascii(s[e - 1]); e--) continue;
    s[e] = '\0';
    t = s + a, n = e - a;
    i = 0;
    if (i < n && (t[i] == '+' || t[i] == '-')) neg = t[i++] == '-';
    if (tb_word(t + i, n - i, "inf") || tb_word(t + i, n - i, "infinity")) {
        *out = neg ? -HUGE_VAL : HUGE_VAL;
        return 1;
    }
    if (tb_word(t + i, n - i, "nan")) {
        *out = neg ? -NAN : NAN;
        return 1;
    }
    for (; i < n && tb_isdigit(t[i]); i++) digits++;
    if (i < n && t[i] == '.')
        for (i++; i < n && tb_isdigit(t[i]); i++) digits++;
    if (!digits) return 0;
    if (i < n && (t[i] == 'e' || t[i] == 'E')) {
        i++;
        if (i < n && (t[i] == '+' || t[i] == '-')) i++;
        if (i >= n || !tb_isdigit(t[i])) return 0;
        while (i < n && tb_isdigit(t[i])) i++;
    }
    if (i != n) return 0;
    *out = strtod(t, NULL);
    return 1;
}

/* ---------------------------------------------------------------------------------------- */
/* CSV records (csv.reader(strict=True) on read_records' str.splitlines lines)               */
/* ---------------------------------------------------------------------------------------- */
enum { CSV_START_RECORD, CSV_START_FIELD, CSV_IN_FIELD, CSV_IN_QUOTED, CSV_QUOTE_IN_QUOTED };

/* Stores the field out[from, *at), stripped (str.strip), as cell *n (if below max). */
static void tb_save(char *out, size_t from, size_t at, esb_cell *cells, size_t max,
                    size_t *n)
{
    const uint8_t *p = (const uint8_t *)out;
    size_t a = from, e = at;
    unsigned l;
    while (a < e && tb_space(tb_cp(p + a, e - a, &l))) a += l;
    while (e > a) { /* the last code point's start */
        size_t s = e - 1;
        while (s > a && (p[s] & 0xC0) == 0x80) s--;
        if (!tb_space(tb_cp(p + s, e - s, &l))) break;
        e = s;
    }
    if (*n < max) cells[*n].text = out + a, cells[*n].len = e - a;
    (*n)++;
}

/* Appends one byte to the field (csv's parse_add_char: at most field_size_limit characters). */
#define CSV_ADD(ch)                                                                            \
    do {                                                                                       \
        if (at >= out_bytes) return ESB_E_ARGUMENT;                                            \
        if (((ch) & 0xC0) != 0x80 && ++field_cps > TB_FIELD_LIMIT) return ESB_E_INPUT;        \
        out[at++] = (char)(ch);                                                                \
    } while (0)

esb_status esb_csv_record(const char *text, size_t len, size_t *used, char *out,
                          size_t out_bytes, esb_cell *cells, size_t max_cells, size_t *n_cells)
{
    const uint8_t *p = (const uint8_t *)text;
    size_t i = 0, at = 0, from = 0, n = 0, field_cps = 0;
    int state = CSV_START_RECORD;
    if ((!text && len) || !used || !out || !n_cells || (!cells && max_cells)) return ESB_E_ARGUMENT;
    *n_cells = 0, *used = 0;
    for (;;) { /* one physical line per pass */
        size_t end = i;
        unsigned brk = 0;
        while (end < len && !(brk = tb_break(p + end, len - end))) end++;
        if (end > i && (!utf8_valid(p + i, end - i) || memchr(p + i, 0, end - i)))
            return ESB_E_INPUT;
        for (; i <= end; i++) {
            int eol = i == end;
            uint8_t c = eol ? 0 : p[i];
            if (state == CSV_START_RECORD) {
                if (eol) break; /* an empty line: a record of no cells */
                state = CSV_START_FIELD;
            }
            if (state == CSV_START_FIELD) {
                if (eol || c == ',') {
                    tb_save(out, from, at, cells, max_cells, &n);
                    from = at, field_cps = 0;
                    if (eol) state = CSV_START_RECORD;
                } else if (c == '"') {
                    state = CSV_IN_QUOTED;
                } else {
                    CSV_ADD(c);
                    state = CSV_IN_FIELD;
                }
            } else if (state == CSV_IN_FIELD) {
                if (eol || c == ',') {
                    tb_save(out, from, at, cells, max_cells, &n);
                    from = at, field_cps = 0;
                    state = eol ? CSV_START_RECORD : CSV_START_FIELD;
                } else {
                    CSV_ADD(c);
                }
            } else if (state == CSV_IN_QUOTED) {
                if (eol) break; /* the record goes on on the next line, the break dropped */
                if (c == '"') {
                    state = CSV_QUOTE_IN_QUOTED;
                } else {
                    CSV_ADD(c);
                }
            } else { /* CSV_QUOTE_IN_QUOTED */
                if (!eol && c == '"') {
                    CSV_ADD('"');
                    state = CSV_IN_QUOTED;
                } else if (eol || c == ',') {
                    tb_save(out, from, at, cells, max_cells, &n);
                    from = at, field_cps = 0;
                    state = eol ? CSV_START_RECORD : CSV_START_FIELD;
                } else {
                    return ESB_E_INPUT; /* "',' expected after '\"'" */
                }
            }
        }
        i = end + brk;
        if (state == CSV_START_RECORD) break;
        if (end >= len) return ESB_E_INPUT; /* "unexpected end of data" */
    }
    *used = i;
    *n_cells = n;
    return n > max_cells ? ESB_E_INPUT : ESB_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* The stage's layout, the header and the featurizer                                          */
/* ---------------------------------------------------------------------------------------- */
typedef struct tb_cfg {
    uint32_t n_in, n_cols, n_feat, names_bytes;
    const uint8_t *names; /* n_in varint lengths, then the bytes; NULL without names */
    const uint8_t *body;
} tb_cfg;

static const tb_cfg *tb_get(const esb_model *m, tb_cfg *c)
{
    const uint8_t *b;
    if (!m || !m->buf_ || !m->sec_[TABULAR].present) return NULL;
    b = m->buf_ + m->sec_[TABULAR].offset;
    c->n_in = ld_u32(b), c->n_cols = ld_u32(b + 4), c->n_feat = ld_u32(b + 8);
    c->names_bytes = ld_u32(b + 12);
    c->names = c->names_bytes ? b + TB_FIXED : NULL;
    c->body = b + TB_FIXED + c->names_bytes;
    return c;
}

int esb_has_tabular(const esb_model *m) { return m && m->buf_ && m->sec_[TABULAR].present; }

uint32_t esb_tabular_n_inputs(const esb_model *m)
{
    tb_cfg c;
    return tb_get(m, &c) ? c.n_in : 0;
}

/* Floats (and CSR entries) of a row: n_features dense, else at most one per column. */
static uint64_t tb_width(const tb_cfg *c)
{
    return c->n_feat <= TB_DENSE_MAX ? c->n_feat : c->n_cols;
}

size_t esb_tabular_workspace_size(const esb_model *m, size_t max_cell_bytes)
{
    tb_cfg c;
    uint64_t bytes;
    if (!tb_get(m, &c)) return 0;
    bytes = ESB_TABULAR_WORKSPACE_BYTES(tb_width(&c), (uint64_t)max_cell_bytes);
    return bytes > (uint64_t)SIZE_MAX ? SIZE_MAX : (size_t)bytes;
}

static int tb_cell_eq(const esb_cell *a, const uint8_t *s, uint64_t n)
{
    return a->len == n && (n == 0 || memcmp(a->text, s, (size_t)n) == 0);
}

esb_status esb_tabular_header(const esb_model *m, const esb_cell *names, size_t n_names,
                              uint32_t *pos, int *reason, size_t *which)
{
    tb_cfg c;
    tb_seq s;
    const uint8_t *lp, *bp;
    size_t i, j;
    if (!m || (!names && n_names) || !pos || !reason || !which) return ESB_E_ARGUMENT;
    *reason = ESB_HEADER_OK, *which = 0;
    if (!tb_get(m, &c)) return ESB_E_HEAD;
    if (n_names > c.n_in) return *reason = ESB_HEADER_WIDTH, ESB_E_INPUT;
    s.kind = TB_SEQ_CELLS, s.cells = names, s.k = 0;
    if (tb_has_repeat(&s, n_names)) { /* which one: the first repeated name */
        for (i = 0; i < n_names; i++)
            for (j = 0; j < i; j++)
                if (tb_cell_eq(names + j, (const uint8_t *)names[i].text, names[i].len))
                    return *reason = ESB_HEADER_REPEATED, *which = i, ESB_E_INPUT;
    }
    if (!c.names) {
        if (n_names != c.n_in) return *reason = ESB_HEADER_WIDTH, ESB_E_INPUT;
        for (i = 0; i < c.n_in; i++) pos[i] = (uint32_t)i;
        return ESB_OK;
    }
    /* pos[k]: the header column of the model's name k (n_names when none); O(n_in * n_names) */
    lp = c.names, bp = c.names;
    for (i = 0; i < c.n_in; i++) (void)rdv(&bp);
    for (i = 0; i < c.n_in; i++) {
        uint64_t l = rdv(&lp);
        for (j = 0; j < n_names && !tb_cell_eq(names + j, bp, l); j++) continue;
        pos[i] = (uint32_t)j;
        bp += l;
    }
    for (j = 0; j < n_names; j++) { /* unknown names first, as runtime/tabular.py */
        for (i = 0; i < c.n_in && pos[i] != j; i++) continue;
        if (i == c.n_in) return *reason = ESB_HEADER_UNKNOWN, *which = j, ESB_E_INPUT;
    }
    for (i = 0; i < c.n_in; i++)
        if (pos[i] == n_names) return *reason = ESB_HEADER_MISSING, *which = i, ESB_E_INPUT;
    return ESB_OK;
}

/* One column record of a verified section, from *pp (categories left at cats). */
typedef struct tb_col {
    unsigned flags;
    uint32_t source, n_cat;
    int64_t drop;
    double missing, scale, offset;
    tb_val fill;
    const uint8_t *cats;
} tb_col;

static void tb_read_col(const uint8_t **pp, tb_col *c)
{
    const uint8_t *p = *pp;
    memset(c, 0, sizeof *c);
    c->flags = *p++;
    c->source = (uint32_t)rdv(&p);
    c->scale = 1.0, c->drop = -1;
    if (c->flags & TB_IMP) {
        c->missing = ld_f64(p), p += 8;
        if (c->flags & TB_CAT) tb_decode(&p, &c->fill);
        else c->fill.tag = TB_FLOAT, c->fill.f = ld_f64(p), p += 8;
    }
    if (!(c->flags & TB_CAT)) {
        c->scale = ld_f64(p), c->offset = ld_f64(p + 8), p += 16;
    } else {
        c->n_cat = (uint32_t)rdv(&p);
        c->drop = (int64_t)rdv(&p) - 1;
        c->cats = p;
    }
    *pp = p;
}

/* A numeric cell: float(cell), "" is NaN. 0 not a number, -1 the scratch is too small. */
static int tb_number(const esb_cell *cell, char *scratch, size_t cap, double *x)
{
    uint64_t n;
    if (cell->len == 0) return *x = NAN, 1;
    if (cell->len >= cap) return -1;
    if (!tb_to_ascii((const uint8_t *)cell->text, cell->len, scratch, &n)) return 0;
    return tb_parse_float(scratch, n, x);
}

/* _from_text for a categorical column: "" is NaN; with no string category a cell is read as
 * int(), else float(), else kept as a string (in no category). */
static int tb_cat_cell(const esb_cell *cell, int numeric, char *scratch, size_t cap, tb_val *v)
{
    uint64_t n;
    memset(v, 0, sizeof *v);
    if (cell->len == 0) return v->tag = TB_FLOAT, v->f = NAN, 1;
    v->tag = TB_STR, v->s = (const uint8_t *)cell->text, v->n = cell->len;
    if (!numeric) return 1;
    if (cell->len >= cap) return -1;
    if (!tb_to_ascii((const uint8_t *)cell->text, cell->len, scratch, &n)) return 1;
    if (tb_parse_int(scratch, n, v)) return 1;
    if (!tb_to_ascii((const uint8_t *)cell->text, cell->len, scratch, &n)) return 1;
    if (tb_parse_float(scratch, n, &v->f)) v->tag = TB_FLOAT;
    return 1;
}

/* _missing: a float NaN for a NaN marker, else a number (not None, not a string) == marker. */
static int tb_is_missing(const tb_val *v, double marker)
{
    if (marker != marker) return v->tag == TB_FLOAT && v->f != v->f;
    if (v->tag == TB_FLOAT) return v->f == marker;
    if (v->tag == TB_INT) return tb_int_is(v->i, marker);
    if (v->tag == TB_BIG) return tb_big_is(v->s, v->n, marker);
    return 0;
}

/* The workspace: W doubles (values), W int32 (indices), W floats, then the scratch. */
typedef struct tb_ws {
    double *values;
    int32_t *indices;
    float *fvalues;
    char *scratch;
    size_t cap;
} tb_ws;

static int tb_ws_init(const tb_cfg *c, tb_ws *w, void *ws, size_t bytes)
{
    uint64_t width = tb_width(c), fixed = ESB_TABULAR_WORKSPACE_BYTES(width, 0);
    uint8_t *p = (uint8_t *)ws;
    if (!ws || bytes < fixed) return 0;
    w->values = (double *)(void *)p;
    w->indices = (int32_t *)(void *)(p + 8 * width);
    w->fvalues = (float *)(void *)(p + 12 * width);
    w->scratch = (char *)(p + 16 * width);
    w->cap = (size_t)(bytes - 16 * width);
    return 1;
}

/* One categorical column: its output (0-based within its block) in *k, -1 for none. */
static esb_status tb_categorical(const tb_col *col, const esb_cell *cell, tb_ws *w,
                                 const uint8_t **end, int64_t *k)
{
    const uint8_t *p = col->cats;
    int numeric = 1, got;
    uint32_t j, found = col->n_cat;
    tb_val v, cat;
    for (j = 0; j < col->n_cat; j++) {
        tb_decode(&p, &cat);
        if (cat.tag == TB_STR) numeric = 0;
    }
    *end = p;
    got = tb_cat_cell(cell, numeric, w->scratch, w->cap, &v);
    if (got < 0) return ESB_E_ARGUMENT;
    if ((col->flags & TB_IMP) && tb_is_missing(&v, col->missing)) v = col->fill;
    for (p = col->cats, j = 0; j < col->n_cat && found == col->n_cat; j++) {
        tb_decode(&p, &cat);
        if (tb_eq(&v, &cat)) found = j;
    }
    if (found == col->n_cat) {
        if (!(col->flags & TB_IGN)) return ESB_E_INPUT; /* handle_unknown='error' */
        *k = -1;
        return ESB_OK;
    }
    *k = (int64_t)found == col->drop ? -1 : (int64_t)found - ((int64_t)found > col->drop &&
                                                                col->drop >= 0);
    return ESB_OK;
}

esb_status esb_tabular_features(const esb_model *m, const esb_cell *cells, void *ws,
                                size_t ws_bytes, esb_tabular_row *row)
{
    tb_cfg c;
    tb_ws w;
    const uint8_t *p;
    uint32_t i, nnz = 0, at = 0;
    int dense;
    if (!m || !cells || !row) return ESB_E_ARGUMENT;
    if (!tb_get(m, &c)) return ESB_E_HEAD;
    if (!tb_ws_init(&c, &w, ws, ws_bytes)) return ESB_E_ARGUMENT;
    for (i = 0; i < c.n_in; i++) {
        if (!cells[i].text && cells[i].len) return ESB_E_ARGUMENT;
        if (!utf8_valid((const uint8_t *)cells[i].text, cells[i].len)) return ESB_E_INPUT;
    }
    dense = c.n_feat <= TB_DENSE_MAX;
    if (dense) memset(w.values, 0, 8 * (size_t)c.n_feat);
    for (p = c.body, i = 0; i < c.n_cols; i++) {
        tb_col col;
        tb_read_col(&p, &col);
        if (!(col.flags & TB_CAT)) {
            double x;
            int got = tb_number(&cells[col.source], w.scratch, w.cap, &x);
            if (got < 0) return ESB_E_ARGUMENT;
            if (!got) return ESB_E_INPUT; /* not a number */
            if ((col.flags & TB_IMP) && (col.missing != col.missing ? x != x : x == col.missing))
                x = col.fill.f;
            if (col.scale != 1.0 || col.offset != 0.0) x = x * col.scale + col.offset;
            if (dense) w.values[at] = x;
            else if (x != 0.0) w.indices[nnz] = (int32_t)at, w.values[nnz++] = x;
            at++;
        } else {
            int64_t k;
            esb_status st = tb_categorical(&col, &cells[col.source], &w, &p, &k);
            if (st != ESB_OK) return st;
            if (k >= 0 && dense) w.values[at + k] = 1.0;
            else if (k >= 0) w.indices[nnz] = (int32_t)(at + k), w.values[nnz++] = 1.0;
            at += col.n_cat - (col.drop >= 0);
        }
    }
    row->sparse = !dense;
    row->n = dense ? c.n_feat : nnz;
    row->indices = dense ? NULL : w.indices;
    row->values = w.values;
    return ESB_OK;
}

/* Featurize, then the dense or CSR call `what` (0 decision, 1 predict, 2 proba) on the row
 * rounded to float (the workspace's float area). */
static esb_status tb_run(const esb_model *m, const esb_cell *cells, void *ws, size_t bytes,
                         int what, void *out)
{
    esb_tabular_row row;
    tb_cfg c;
    tb_ws w;
    uint32_t i;
    esb_status st = esb_tabular_features(m, cells, ws, bytes, &row);
    if (st != ESB_OK) return st;
    if (!tb_get(m, &c) || !tb_ws_init(&c, &w, ws, bytes)) return ESB_E_ARGUMENT;
    for (i = 0; i < row.n; i++) w.fvalues[i] = (float)row.values[i];
    if (!row.sparse) {
        if (what == 0) return esb_decision(m, w.fvalues, (float *)out);
        if (what == 1) return esb_predict(m, w.fvalues, (uint32_t *)out);
        return esb_predict_proba(m, w.fvalues, (float *)out);
    }
    if (what == 0) return esb_decision_csr(m, row.n, row.indices, w.fvalues, (float *)out);
    if (what == 1) return esb_predict_csr(m, row.n, row.indices, w.fvalues, (uint32_t *)out);
    return esb_predict_proba_csr(m, row.n, row.indices, w.fvalues, (float *)out);
}

esb_status esb_decision_tabular(const esb_model *m, const esb_cell *cells, void *ws,
                                size_t ws_bytes, float *scores)
{
    return tb_run(m, cells, ws, ws_bytes, 0, scores);
}

esb_status esb_predict_tabular(const esb_model *m, const esb_cell *cells, void *ws,
                               size_t ws_bytes, uint32_t *class_index)
{
    return tb_run(m, cells, ws, ws_bytes, 1, class_index);
}

esb_status esb_predict_proba_tabular(const esb_model *m, const esb_cell *cells, void *ws,
                                     size_t ws_bytes, float *proba)
{
    return tb_run(m, cells, ws, ws_bytes, 2, proba);
}
#endif /* ESB_NO_TABULAR */
