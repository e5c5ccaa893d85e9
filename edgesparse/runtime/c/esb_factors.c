/*
 * esb_factors.c - the C99 runtime for edgesparse matrix-factorization recommender blobs (.esb
 * version 3: Surprise's SVD, SVDpp, NMF, BaselineOnly). API, memory and numerics: esb.h
 * ("Matrix-factorization recommenders"); format: docs/FORMAT.md, "Version 3".
 *
 * Compiled as part of esb.c, which #includes this file after esb_knn.c: it shares esb.c's
 * helpers (byte loads, CRC32, varints, Python's repr, UTF-8 and JSON checks) and esb_knn.c's
 * rec_* layer (container checks, raw ids and their index, pairwise sums, top-n insertion)
 * without exporting them: build esb.c, never this file on its own.
 *
 * The verifier mirrors edgesparse/formats/factors.py check by check, in the same order and with
 * the same messages (tests/test_c_factors.py compares them on the malformed-blob corpus of
 * tests/test_factors_malformed.py and on mutated blobs). The estimates mirror
 * edgesparse/runtime/factors.py's FactorModel operation by operation.
 */
#ifndef ESB_FACTORS_IN_ESB_C
#error "esb_factors.c is compiled as part of esb.c (which includes it): compile esb.c instead"
#endif

enum {
    F_PARAMS = 1, F_SEEN_ROWS, F_SEEN_ITEMS, F_BIASES, F_USER_FACTORS, F_USER_SCALES,
    F_ITEM_FACTORS, F_ITEM_SCALES, F_USER_IDS, F_ITEM_IDS, F_PROVENANCE
};
enum { F_N_KINDS = F_PROVENANCE, F_N_REQUIRED = 5 };
static const char *const F_NAMES[F_N_KINDS + 1] = {
    "?", "params", "seen_rows", "seen_items", "biases", "user_factors", "user_scales",
    "item_factors", "item_scales", "user_ids", "item_ids", "provenance"};
/* Allowed encodings per kind, as bit masks (formats/factors.py's _ENCODINGS). */
static const unsigned F_ENCODINGS[F_N_KINDS + 1] = {0,   0x1, 0x2, 0x2, 0x1, 0x1,
                                                    0x1, 0x1, 0x1, 0x7, 0x7, 0x1};
static const unsigned F_REQUIRED[F_N_REQUIRED] = {F_PARAMS, F_SEEN_ROWS, F_SEEN_ITEMS,
                                                  F_USER_IDS, F_ITEM_IDS};
static const char *const F_ALGORITHMS[4] = {"svd", "svdpp", "nmf", "baseline"};
static const char *const F_DTYPES[3] = {"float64", "float32", "int8"};
static const unsigned F_WIDTH[3] = {8, 4, 1};

/* The factor blob as the shared checks see it. */
static rec_blob fac_rb(esb_factors *m, const uint8_t *d)
{
    rec_blob r;
    r.buf = d;
    r.sec = m->sec_;
    r.names = F_NAMES;
    r.message = m->message;
    return r;
}

static const uint8_t *fsec(const esb_factors *m, unsigned kind)
{
    return m->buf_ + m->sec_[kind].offset;
}

/* a * k (k <= 8) in decimal, exactly (Python's int: n * f * itemsize may pass 2^64). */
static void fac_u64_times(uint64_t a, unsigned k, char *out, size_t n)
{
    uint32_t limb[3], rem;
    char digits[32];
    int nd = 0, i, nonzero;
    uint64_t lo = (a & 0xFFFFFFFFu) * k, hi = (a >> 32) * k + (lo >> 32);
    limb[0] = (uint32_t)(hi >> 32);
    limb[1] = (uint32_t)hi;
    limb[2] = (uint32_t)lo;
    do {
        for (rem = 0, i = 0, nonzero = 0; i < 3; i++) {
            uint64_t cur = (uint64_t)rem << 32 | limb[i];
            limb[i] = (uint32_t)(cur / 10);
            rem = (uint32_t)(cur % 10);
            nonzero |= limb[i] != 0;
        }
        digits[nd++] = (char)('0' + rem);
    } while (nonzero);
    for (i = 0; i < nd && (size_t)i + 1 < n; i++) out[i] = digits[nd - 1 - i];
    out[i] = '\0';
}

/* ---------------------------------------------------------------------------------------- */
/* Header, table, presence (factors.py's _check_header, read_table, _check_presence)         */
/* ---------------------------------------------------------------------------------------- */
static esb_status fac_header(esb_factors *m, const rec_blob *r, size_t size, uint32_t *n_sec,
                             uint64_t *file_size)
{
    static const unsigned res_at[4] = {36, 43, 44, 56};
    const uint8_t *d = r->buf;
    uint64_t n_seen, res[4];
    uint8_t algo, dtype, flags;
    unsigned j;
    RTRY(rec_header(r, size, ESB_FACTORS_FORMAT_VERSION, "a matrix-factorization model",
                    "matrix-factorization recommenders are version 3; version 1 holds a linear "
                    "model, version 2 a k-NN recommender", F_N_REQUIRED, F_N_KINDS, n_sec));
    m->n_users = ld_u32(d + 16);
    m->n_items = ld_u32(d + 20);
    n_seen = ld_u64(d + 24);
    m->n_factors = ld_u32(d + 32);
    res[0] = ld_u32(d + 36);
    algo = d[40];
    dtype = d[41];
    flags = d[42];
    res[1] = d[43];
    res[2] = ld_u32(d + 44);
    *file_size = ld_u64(d + 48);
    res[3] = ld_u32(d + 56);
    if (m->n_users < 1) RBAD("n_users at offset 16 is 0");
    if (m->n_items < 1) RBAD("n_items at offset 20 is 0");
    if (n_seen > (uint64_t)m->n_users * m->n_items)
        RBAD("n_seen at offset 24 is %" PRIu64 ", more than %" PRIu32 " x %" PRIu32, n_seen,
             m->n_users, m->n_items);
    for (j = 0; j < 4; j++)
        if (res[j])
            RBAD("reserved field at offset %u is %" PRIu64 ", expected 0", res_at[j], res[j]);
    if (algo >= 4) RBAD("unknown algorithm code %u at offset 40", algo);
    if (dtype >= 3) RBAD("unknown factor dtype code %u at offset 41", dtype);
    if (flags & ~1u) RBAD("unknown flag bits 0x%02x at offset 42", flags & ~1u);
    if ((m->n_factors == 0) != (algo == ESB_MF_BASELINE))
        RBAD("n_factors at offset 32 is %" PRIu32 ", but the algorithm (offset 40) is '%s'%s",
             m->n_factors, F_ALGORITHMS[algo],
             algo == ESB_MF_BASELINE ? " (which has no factors)" : "");
    if (algo == ESB_MF_BASELINE && dtype)
        RBAD("factor dtype code at offset 41 is %u, expected 0 (no factors)", dtype);
    m->biased = flags & 1u;
    if ((algo == ESB_MF_SVDPP || algo == ESB_MF_BASELINE) && !m->biased)
        RBAD("flag 'biased' (offset 42) must be set for '%s'", F_ALGORITHMS[algo]);
    m->algorithm = algo;
    m->factor_dtype = dtype;
    /* n_seen is checked against the seen sections, which hold at most 2^32 varints */
    m->n_seen = n_seen > UINT32_MAX ? UINT32_MAX : (uint32_t)n_seen;
    return ESB_OK;
}

/* factors.py's _check_presence: the optional sections the header calls for, and no others. */
static esb_status fac_presence(const esb_factors *m, const rec_blob *r)
{
    static const unsigned kinds[5] = {F_BIASES, F_USER_FACTORS, F_USER_SCALES, F_ITEM_FACTORS,
                                      F_ITEM_SCALES};
    int has = m->algorithm != ESB_MF_BASELINE, int8 = m->factor_dtype == ESB_MF_I8;
    int needed[5];
    unsigned j;
    needed[0] = m->biased;
    needed[1] = needed[3] = has;
    needed[2] = needed[4] = has && int8;
    for (j = 0; j < 5; j++) {
        const char *state = needed[j] ? "present" : "absent", *name = F_NAMES[kinds[j]];
        if (m->sec_[kinds[j]].present == needed[j]) continue;
        if (j == 0)
            RBAD("section '%s' must be %s when the 'biased' flag (offset 42) is %s", name, state,
                 m->biased ? "set" : "clear");
        if (j == 1 || j == 3)
            RBAD("section '%s' must be %s when the algorithm (offset 40) is '%s'", name, state,
                 F_ALGORITHMS[m->algorithm]);
        RBAD("section '%s' must be %s when the factors (offset 41) are %s", name, state,
             needed[j] ? "int8" : "not int8");
    }
    return ESB_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* Sections (factors.py's decoders, in _parse_bytes' order)                                  */
/* ---------------------------------------------------------------------------------------- */
/* factors.py's _floats: n finite float64 values. */
static esb_status fac_floats(const rec_blob *r, unsigned kind, uint64_t n, const char *what)
{
    char desc[96], txt[40];
    const uint8_t *b = rsec(r, kind);
    uint64_t i;
    snprintf(desc, sizeof desc, "%" PRIu64 " float64 %s", n, what);
    RTRY(rec_need(r, kind, 8u * n, desc));
    for (i = 0; i < n; i++) {
        if (finite_f64(ld_u64(b + 8u * i))) continue;
        py_repr(ld_f64(b + 8u * i), txt, sizeof txt);
        RBAD("section '%s' at offset %" PRIu32 ": value %s at position %" PRIu64
             " must be finite", r->names[kind], r->sec[kind].offset, txt, i);
    }
    return ESB_OK;
}

static esb_status fac_params(esb_factors *m, const rec_blob *r)
{
    const uint8_t *b = rsec(r, F_PARAMS);
    char a[40], c[40];
    RTRY(fac_floats(r, F_PARAMS, 3, "(global mean, rating low, rating high)"));
    m->global_mean = ld_f64(b);
    m->rating_low = ld_f64(b + 8);
    m->rating_high = ld_f64(b + 16);
    if (m->rating_low > m->rating_high) {
        py_repr(m->rating_low, a, sizeof a);
        py_repr(m->rating_high, c, sizeof c);
        RBAD("section 'params' at offset %" PRIu32 ": rating scale low %s is above high %s",
             r->sec[F_PARAMS].offset, a, c);
    }
    return ESB_OK;
}

/* factors.py's _decode_seen: per-user counts (each <= n_items, summing to n_seen), then the
 * item gaps (each < n_items) and the items they make (< n_items). */
static esb_status fac_seen(esb_factors *m, const rec_blob *r, uint64_t n_seen)
{
    char err[120];
    const uint8_t *rows = rsec(r, F_SEEN_ROWS), *b = rsec(r, F_SEEN_ITEMS), *p;
    uint32_t off = r->sec[F_SEEN_ROWS].offset, u;
    uint64_t sum = 0, pos;
    if (varint_check(rows, r->sec[F_SEEN_ROWS].length, m->n_users, 5, err, sizeof err))
        RBAD("section 'seen_rows' at offset %" PRIu32 ": %s (one count per user)", off, err);
    for (p = rows, u = 0; u < m->n_users; u++) {
        uint64_t c = rdv(&p);
        if (c > m->n_items)
            RBAD("section 'seen_rows' at offset %" PRIu32 ": user %" PRIu32 " has %" PRIu64
                 " items, more than %" PRIu32, off, u, c, m->n_items);
        sum += c;
    }
    if (sum != n_seen)
        RBAD("section 'seen_rows' at offset %" PRIu32 ": counts sum to %" PRIu64
             ", the header says %" PRIu64 " pairs", off, sum, n_seen);
    off = r->sec[F_SEEN_ITEMS].offset;
    if (varint_check(b, r->sec[F_SEEN_ITEMS].length, n_seen, 5, err, sizeof err))
        RBAD("section 'seen_items' at offset %" PRIu32 ": %s (one item gap per pair)", off, err);
    for (p = b, pos = 0; pos < n_seen; pos++) {
        uint64_t g = rdv(&p);
        if (g >= m->n_items)
            RBAD("section 'seen_items' at offset %" PRIu32 ": item gap %" PRIu64
                 " at position %" PRIu64 " is >= %" PRIu32, off, g, pos, m->n_items);
    }
    for (p = b, pos = 0, rows = rsec(r, F_SEEN_ROWS), u = 0; u < m->n_users; u++) {
        uint64_t c = rdv(&rows), j, item = 0;
        for (j = 0; j < c; j++, pos++) {
            uint64_t g = rdv(&p);
            item = j ? item + g + 1 : g;
            if (item >= m->n_items)
                RBAD("section 'seen_items' at offset %" PRIu32 ": item %" PRIu64
                     " at position %" PRIu64 " is out of [0, %" PRIu32 ")", off, item, pos,
                     m->n_items);
        }
    }
    m->n_seen = (uint32_t)n_seen; /* n_seen varints fit the section: < 2^32 */
    return ESB_OK;
}

/* factors.py's _decode_factors: user factors, their scales (int8), item factors, theirs. */
static esb_status fac_factors(esb_factors *m, const rec_blob *r)
{
    static const unsigned kinds[2] = {F_USER_FACTORS, F_ITEM_FACTORS};
    unsigned s, width = F_WIDTH[m->factor_dtype];
    char desc[120], want[32], txt[40];
    if (!r->sec[F_USER_FACTORS].present) return ESB_OK;
    for (s = 0; s < 2; s++) {
        unsigned kind = kinds[s];
        uint32_t n = s ? m->n_items : m->n_users, off = r->sec[kind].offset, row;
        uint64_t cells = (uint64_t)n * m->n_factors, i;
        const uint8_t *b = rsec(r, kind);
        fac_u64_times(cells, width, want, sizeof want);
        snprintf(desc, sizeof desc, "%" PRIu32 " x n_factors=%" PRIu32 " %s", n, m->n_factors,
                 F_DTYPES[m->factor_dtype]);
        if (cells > UINT32_MAX || r->sec[kind].length != cells * width)
            RBAD("section '%s' at offset %" PRIu32 " is %" PRIu32 " bytes, expected %s (%s)",
                 F_NAMES[kind], off, r->sec[kind].length, want, desc);
        for (i = 0; i < cells; i++) {
            int bad;
            double v;
            if (m->factor_dtype == ESB_MF_I8) {
                bad = b[i] == 0x80;
                v = -128.0;
            } else if (m->factor_dtype == ESB_MF_F32) {
                bad = !finite_f32(ld_u32(b + 4u * i));
                v = (double)ld_f32(b + 4u * i);
            } else {
                bad = !finite_f64(ld_u64(b + 8u * i));
                v = ld_f64(b + 8u * i);
            }
            if (!bad) continue;
            if (m->factor_dtype == ESB_MF_I8)
                RBAD("section '%s' at offset %" PRIu32 ": value -128 at position %" PRIu64
                     " is not allowed (int8 factors lie in [-127, 127])", F_NAMES[kind], off, i);
            py_repr(v, txt, sizeof txt);
            RBAD("section '%s' at offset %" PRIu32 ": value %s at position %" PRIu64
                 " is not allowed (not finite)", F_NAMES[kind], off, txt, i);
        }
        if (m->factor_dtype != ESB_MF_I8) continue;
        snprintf(desc, sizeof desc, "%" PRIu32 " per-row float32 scales", n);
        RTRY(rec_need(r, kind + 1, 4u * (uint64_t)n, desc));
        for (row = 0; row < n; row++) {
            float sc = ld_f32(rsec(r, kind + 1) + 4u * row);
            if (finite_float(sc) && sc > 0) continue;
            py_repr((double)sc, txt, sizeof txt);
            RBAD("section '%s' at offset %" PRIu32 ": scale %s at row %" PRIu32 " must be > 0",
                 F_NAMES[kind + 1], r->sec[kind + 1].offset, txt, row);
        }
    }
    return ESB_OK;
}

static esb_status fac_contents(esb_factors *m, const rec_blob *r, uint64_t n_seen)
{
    RTRY(fac_params(m, r));
    RTRY(fac_seen(m, r, n_seen));
    RTRY(fac_factors(m, r));
    if (m->sec_[F_BIASES].present)
        RTRY(fac_floats(r, F_BIASES, (uint64_t)m->n_users + m->n_items,
                        "biases (users, then items)"));
    RTRY(rec_ids_check(r, F_USER_IDS, m->n_users));
    RTRY(rec_ids_check(r, F_ITEM_IDS, m->n_items));
    m->user_id_kind = m->sec_[F_USER_IDS].encoding;
    m->item_id_kind = m->sec_[F_ITEM_IDS].encoding;
    if (m->sec_[F_PROVENANCE].present) RTRY(rec_provenance(r, F_PROVENANCE));
    return ESB_OK;
}

esb_status esb_factors_open(const void *buf, size_t len, esb_factors *m)
{
    const uint8_t *d = (const uint8_t *)buf;
    uint32_t n_sec = 0;
    uint64_t file_size = 0;
    esb_status st;
    rec_blob r;
    if (!m) return ESB_E_ARGUMENT;
    memset(m, 0, sizeof *m);
    r = fac_rb(m, d);
    if (!buf && len) return rfail(&r, ESB_E_ARGUMENT, "esb_factors_open: buf is NULL");
    st = fac_header(m, &r, len, &n_sec, &file_size);
    if (st == ESB_OK)
        st = rec_table(&r, len, n_sec, file_size, F_N_KINDS, F_ENCODINGS, F_REQUIRED,
                       F_N_REQUIRED);
    if (st == ESB_OK) st = fac_presence(m, &r);
    if (st == ESB_OK) st = rec_crcs(&r, n_sec);
    if (st == ESB_OK) {
        m->buf_ = d;
        m->size_ = len;
        st = fac_contents(m, &r, ld_u64(d + 24));
    }
    if (st != ESB_OK) {
        m->buf_ = NULL; /* the model must not be used */
        m->size_ = 0;
    }
    return st;
}

/* ---------------------------------------------------------------------------------------- */
/* The index: where each user's rated items start, id offsets, ids sorted                    */
/* ---------------------------------------------------------------------------------------- */
/* Layout (uint32_t): seen_byte[n_users + 1] (where user u's gaps start in seen_items; the
 * counts come from seen_rows), user_off[n_users + 1], item_off[n_items + 1] (where each id
 * starts in its section), user_sorted[n_users], item_sorted[n_items] (inner ids in raw id
 * order). */
typedef struct {
    const uint32_t *seen_byte, *off[2], *sorted[2];
} fac_index;

static fac_index fac_index_of(const esb_factors *m, const uint32_t *base)
{
    fac_index ix;
    ix.seen_byte = base;
    ix.off[0] = ix.seen_byte + m->n_users + 1;
    ix.off[1] = ix.off[0] + m->n_users + 1;
    ix.sorted[0] = ix.off[1] + m->n_items + 1;
    ix.sorted[1] = ix.sorted[0] + m->n_users;
    return ix;
}

size_t esb_factors_index_size(const esb_factors *m)
{
    if (!m || !m->buf_) return 0;
    return clamp_size(4 * (3 * (uint64_t)m->n_users + 2 * (uint64_t)m->n_items + 3));
}

esb_status esb_factors_use_index(esb_factors *m, uint32_t *idx, size_t bytes)
{
    fac_index ix;
    rec_blob r;
    const uint8_t *rows, *gaps, *p;
    uint32_t u;
    if (!m || !m->buf_ || !idx || bytes < esb_factors_index_size(m) ||
        (uintptr_t)idx % sizeof(uint32_t))
        return ESB_E_ARGUMENT;
    ix = fac_index_of(m, idx);
    rows = fsec(m, F_SEEN_ROWS);
    gaps = p = fsec(m, F_SEEN_ITEMS);
    for (u = 0; u < m->n_users; u++) {
        uint64_t c = rdv(&rows), j;
        idx[u] = (uint32_t)(p - gaps);
        for (j = 0; j < c; j++) (void)rdv(&p);
    }
    idx[m->n_users] = (uint32_t)(p - gaps);
    r = fac_rb(m, m->buf_);
    RTRY(rec_index_ids(&r, F_USER_IDS, m->n_users, (uint32_t *)ix.off[0],
                       (uint32_t *)ix.sorted[0]));
    RTRY(rec_index_ids(&r, F_ITEM_IDS, m->n_items, (uint32_t *)ix.off[1],
                       (uint32_t *)ix.sorted[1]));
    m->idx_ = idx;
    return ESB_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* Raw ids <-> inner ids (esb_knn.c's code, through rec_ids_ref)                             */
/* ---------------------------------------------------------------------------------------- */
static rec_ids_ref fac_ids_ref(const esb_factors *m, int s)
{
    fac_index ix = fac_index_of(m, m->idx_);
    return rec_ids_of(m->buf_, &m->sec_[s ? F_ITEM_IDS : F_USER_IDS],
                      s ? m->n_items : m->n_users, ix.off[s], ix.sorted[s]);
}

static uint32_t fac_find(const esb_factors *m, int s, const char *text, size_t len)
{
    rec_ids_ref ids;
    if (!m || !m->idx_) return ESB_KNN_UNKNOWN;
    ids = fac_ids_ref(m, s);
    return rec_find(&ids, text, len);
}

uint32_t esb_factors_find_user(const esb_factors *m, const char *text, size_t len)
{
    return fac_find(m, 0, text, len);
}

uint32_t esb_factors_find_item(const esb_factors *m, const char *text, size_t len)
{
    return fac_find(m, 1, text, len);
}

static esb_status fac_raw_id(const esb_factors *m, int s, uint32_t i, esb_label *out)
{
    rec_ids_ref ids;
    if (!m || !m->idx_) return ESB_E_ARGUMENT;
    ids = fac_ids_ref(m, s);
    return rec_raw_id(&ids, i, out);
}

esb_status esb_factors_user_id(const esb_factors *m, uint32_t user, esb_label *id)
{
    return fac_raw_id(m, 0, user, id);
}

esb_status esb_factors_item_id(const esb_factors *m, uint32_t item, esb_label *id)
{
    return fac_raw_id(m, 1, item, id);
}

/* ---------------------------------------------------------------------------------------- */
/* Estimates (runtime/factors.py's FactorModel._estimates)                                  */
/* ---------------------------------------------------------------------------------------- */
/* numpy's row sum of q[i, lo:lo + n] * p[u, lo:lo + n] (float64 or float32 factors widened):
 * its pairwise summation, splitting as it does until blocks of at most 128 products, each
 * summed by rec_pairwise from a stack buffer (1 KiB). */
static double fac_float_dot(const esb_factors *m, const uint8_t *pu, const uint8_t *qi,
                            uint32_t lo, uint32_t n)
{
    double t[128];
    uint32_t j;
    if (n > 128) {
        uint32_t n2 = n / 2;
        n2 -= n2 % 8;
        return fac_float_dot(m, pu, qi, lo, n2) + fac_float_dot(m, pu, qi, lo + n2, n - n2);
    }
    if (m->factor_dtype == ESB_MF_F64)
        for (j = 0; j < n; j++) t[j] = ld_f64(qi + 8u * (lo + j)) * ld_f64(pu + 8u * (lo + j));
    else
        for (j = 0; j < n; j++)
            t[j] = (double)ld_f32(qi + 4u * (lo + j)) * (double)ld_f32(pu + 4u * (lo + j));
    return rec_pairwise(t, n);
}

/* dot(u, i) of the numeric contract (ir/factors.py), both ids known. */
static double fac_dot(const esb_factors *m, uint32_t u, uint32_t i)
{
    uint64_t f = m->n_factors, w = F_WIDTH[m->factor_dtype];
    const uint8_t *pu = fsec(m, F_USER_FACTORS) + u * f * w;
    const uint8_t *qi = fsec(m, F_ITEM_FACTORS) + i * f * w;
    if (m->factor_dtype == ESB_MF_I8) {
        /* the exact integer sum: |D| <= f * 127^2 < 2^46, exact in a double too */
        int64_t sum = 0;
        uint64_t j;
        double ps = (double)ld_f32(fsec(m, F_USER_SCALES) + 4u * (size_t)u);
        double qs = (double)ld_f32(fsec(m, F_ITEM_SCALES) + 4u * (size_t)i);
        for (j = 0; j < f; j++) sum += (int64_t)(int8_t)pu[j] * (int8_t)qi[j];
        return (ps * qs) * (double)sum;
    }
    return fac_float_dot(m, pu, qi, 0, m->n_factors);
}

/* The unclipped estimate and the impossible flag (unknown ids: any value >= n). */
static double fac_estimate(const esb_factors *m, uint32_t u, uint32_t i, int *impossible)
{
    int ku = u < m->n_users, ki = i < m->n_items;
    double est, dot = 0.0;
    const uint8_t *bias = m->biased ? fsec(m, F_BIASES) : NULL;
    if (ku && ki && m->algorithm != ESB_MF_BASELINE) dot = fac_dot(m, u, i);
    *impossible = 0;
    if (!m->biased) {
        *impossible = !(ku && ki);
        return *impossible ? m->global_mean : dot;
    }
    est = m->global_mean;
    if (ku) est += ld_f64(bias + 8u * (size_t)u);
    if (ki) est += ld_f64(bias + 8u * ((size_t)m->n_users + i));
    if (ku && ki) est += dot; /* + 0.0 for BaselineOnly, as numpy adds its zero dots */
    return est;
}

esb_status esb_factors_predict(const esb_factors *m, uint32_t user, uint32_t item,
                               esb_factors_prediction *out)
{
    int impossible;
    if (!m || !m->idx_ || !out) return ESB_E_ARGUMENT;
    memset(out, 0, sizeof *out);
    out->est_unclipped = fac_estimate(m, user, item, &impossible);
    out->est = rec_clip(m->rating_low, m->rating_high, out->est_unclipped);
    out->was_impossible = (uint8_t)impossible;
    return ESB_OK;
}

esb_status esb_factors_recommend(const esb_factors *m, uint32_t user, uint32_t n,
                                 int exclude_seen, uint32_t *items, double *est,
                                 uint32_t *n_out)
{
    const uint8_t *gaps = NULL, *end = NULL;
    uint64_t next = 0;
    uint32_t it, got = 0;
    int known, impossible, more = 0;
    if (n_out) *n_out = 0;
    if (!m || !m->idx_ || !n_out || (n && (!items || !est))) return ESB_E_ARGUMENT;
    known = user < m->n_users;
    if (exclude_seen && known) { /* walk the user's rated items (increasing) beside the items */
        gaps = fsec(m, F_SEEN_ITEMS) + m->idx_[user];
        end = fsec(m, F_SEEN_ITEMS) + m->idx_[user + 1];
        if ((more = gaps < end)) next = rdv(&gaps);
    }
    for (it = 0; it < m->n_items && n; it++) {
        if (more && it == next) {
            if ((more = gaps < end)) next += rdv(&gaps) + 1;
            continue;
        }
        rec_top_insert(items, est, n, &got, it,
                       rec_clip(m->rating_low, m->rating_high,
                                fac_estimate(m, known ? user : ESB_KNN_UNKNOWN, it,
                                             &impossible)));
    }
    *n_out = got;
    return ESB_OK;
}
