/*
 * esb_knn.c - the C99 runtime for edgesparse k-NN recommender blobs (.esb version 2). API,
 * memory and numerics: esb.h ("k-NN recommenders"); format: docs/FORMAT.md, "Version 2".
 *
 * Compiled as part of esb.c, which #includes this file at its end, so that both share the
 * container's helpers (byte loads, CRC32, varints, Python's repr, UTF-8 and JSON checks)
 * without exporting them: build esb.c as before, never this file on its own. Its first part
 * (rec_*: the container checks, raw ids and their index, pairwise sums, top-n insertion) is
 * shared with esb_factors.c, the matrix-factorization runtime, which esb.c includes after it.
 *
 * The verifier mirrors edgesparse/formats/knn.py (and container.py, codecs.py) check by
 * check, in the same order and with the same messages (tests/test_c_knn.py compares them on
 * the malformed-blob corpus of tests/test_knn_malformed.py and on mutated blobs). The
 * predictions mirror edgesparse/runtime/knn.py's KnnModel._estimate operation by operation.
 */
#ifndef ESB_KNN_IN_ESB_C
#error "esb_knn.c is compiled as part of esb.c (which includes it): compile esb.c instead"
#endif

#include <errno.h>

enum {
    K_PARAMS = 1, K_SIM_ROWS, K_SIM_INDICES, K_SIM_VALUES, K_SIM_SCALES, K_YR_ROWS, K_YR_X,
    K_RATINGS, K_MEANS, K_SIGMAS, K_BASELINES, K_USER_IDS, K_ITEM_IDS, K_PROVENANCE
};
enum { K_N_KINDS = K_PROVENANCE, K_N_REQUIRED = 9 };
static const char *const K_NAMES[K_N_KINDS + 1] = {
    "?", "params", "sim_rows", "sim_indices", "sim_values", "sim_scales", "yr_rows", "yr_x",
    "ratings", "means", "sigmas", "baselines", "user_ids", "item_ids", "provenance"};
/* Allowed encodings per kind, as bit masks (formats/knn.py's _ENCODINGS). */
static const unsigned K_ENCODINGS[K_N_KINDS + 1] = {0,   0x1, 0x2, 0x2, 0x1, 0x1, 0x2, 0x3,
                                                    0x7, 0x1, 0x1, 0x1, 0x7, 0x7, 0x1};
static const unsigned K_REQUIRED[K_N_REQUIRED] = {K_PARAMS,  K_SIM_ROWS, K_SIM_INDICES,
                                                  K_SIM_VALUES, K_YR_ROWS, K_YR_X,
                                                  K_RATINGS, K_USER_IDS, K_ITEM_IDS};
static const char *const K_VARIANTS[4] = {"basic", "means", "zscore", "baseline"};
static const char *const K_SIM_DTYPES[3] = {"float64", "float32", "uint8"};
static const char *const K_RATING_ENCS[3] = {"uint8-coded", "float32", "float64"};

/* ---------------------------------------------------------------------------------------- */
/* Shared by the recommender kinds (this file and esb_factors.c, which esb.c includes after  */
/* it): the container checks of formats/container.py, raw ids (formats/ids.py) and the      */
/* id index, on a blob described by its section table and message buffer.                  */
/* ---------------------------------------------------------------------------------------- */
typedef struct {
    const uint8_t *buf;
    esb_section_ref *sec; /* indexed by section kind */
    const char *const *names;
    char *message;        /* ESB_MESSAGE_SIZE bytes */
} rec_blob;

static esb_status rec_vfail(char *message, esb_status code, const char *fmt, va_list ap)
{
    size_t at = 0;
    if (code == ESB_E_CORRUPT) {
        memcpy(message, "corrupt .esb: ", 14);
        at = 14;
    }
    vsnprintf(message + at, ESB_MESSAGE_SIZE - at, fmt, ap);
    return code;
}

static esb_status rfail(const rec_blob *r, esb_status code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    code = rec_vfail(r->message, code, fmt, ap);
    va_end(ap);
    return code;
}

#define RBAD(...) return rfail(r, ESB_E_CORRUPT, __VA_ARGS__)
/* A failing sub-check: return its status. */
#define RTRY(call)                                                                            \
    do {                                                                                      \
        esb_status st_ = (call);                                                              \
        if (st_ != ESB_OK) return st_;                                                        \
    } while (0)

static int rec_finite(double v) { return v == v && v != HUGE_VAL && v != -HUGE_VAL; }
static const uint8_t *rsec(const rec_blob *r, unsigned kind)
{
    return r->buf + r->sec[kind].offset;
}

/* container.py's read_header: magic, version (`what`, `versions`: the reader's words, see
 * version_error), header size, section count, table bounds, header CRC. */
static esb_status rec_header(const rec_blob *r, size_t size, uint32_t version,
                             const char *what, const char *versions, uint32_t n_required,
                             uint32_t n_kinds, uint32_t *n_sec)
{
    const uint8_t *d = r->buf;
    uint32_t got, header_size, crc;
    uint64_t table_end;
    if (size == 0) return rfail(r, ESB_E_NOT_ESB, "not an .esb file: the file is empty");
    if (memcmp(d, MAGIC, size < 8 ? size : 8) != 0) {
        char bad[40], want[40];
        py_bytes_repr(d, size < 8 ? size : 8, bad, sizeof bad);
        py_bytes_repr(MAGIC, 8, want, sizeof want);
        return rfail(r, ESB_E_NOT_ESB, "not an .esb file: bad magic %s at offset 0 (expected %s)",
                     bad, want);
    }
    if (size >= 10 && (got = ld_u16(d + 8)) != version)
        return rfail(r, ESB_E_VERSION, "unsupported .esb version %" PRIu32 " at offset 8 for %s "
                     "(%s)", got, what, versions);
    if (size < HEADER_SIZE)
        RBAD("truncated header at offset 0 (needs %u bytes, file has %zu)", HEADER_SIZE, size);
    header_size = ld_u16(d + 10);
    *n_sec = ld_u32(d + 12);
    if (header_size != HEADER_SIZE)
        RBAD("header size field at offset 10 is %" PRIu32 ", expected %u", header_size,
             HEADER_SIZE);
    if (*n_sec < n_required || *n_sec > n_kinds)
        RBAD("section count at offset 12 is %" PRIu32 ", expected %" PRIu32 " to %" PRIu32,
             *n_sec, n_required, n_kinds);
    table_end = HEADER_SIZE + (uint64_t)ENTRY_SIZE * *n_sec;
    if (size < table_end)
        RBAD("truncated section table at offset %u (needs %" PRIu64 " bytes, %zu left)",
             HEADER_SIZE, table_end - HEADER_SIZE, size - HEADER_SIZE);
    crc = crc32_update(crc32_update(0, d, 60), d + HEADER_SIZE, table_end - HEADER_SIZE);
    if (crc != ld_u32(d + 60))
        RBAD("header checksum mismatch at offset 60 (stored 0x%08" PRIx32 ", computed 0x%08"
             PRIx32 " over the header and section table)", ld_u32(d + 60), crc);
    return ESB_OK;
}

/* container.py's read_table: kinds in order (1..n_kinds), their encodings (bit masks), packing,
 * padding, bounds, trailing bytes, the file size field, the required sections. */
static esb_status rec_table(const rec_blob *r, size_t size, uint32_t n_sec, uint64_t file_size,
                            unsigned n_kinds, const unsigned *encodings,
                            const unsigned *required, unsigned n_required)
{
    const uint8_t *d = r->buf;
    uint64_t pad_from = HEADER_SIZE + (uint64_t)ENTRY_SIZE * n_sec, expect;
    unsigned prev_kind = 0;
    uint32_t i;
    size_t p;
    for (i = 0; i < n_sec; i++) {
        uint64_t at = HEADER_SIZE + (uint64_t)ENTRY_SIZE * i;
        const uint8_t *e = d + at;
        unsigned kind = e[0], enc = e[1];
        uint32_t res = ld_u16(e + 2), off = ld_u32(e + 4), length = ld_u32(e + 8);
        const char *name;
        if (kind < 1 || kind > n_kinds)
            RBAD("section table entry %" PRIu32 " at offset %" PRIu64
                 ": unknown section kind %u (written by a newer edgesparse?)", i, at, kind);
        name = r->names[kind];
        if (kind <= prev_kind)
            RBAD("section table entry %" PRIu32 " at offset %" PRIu64
                 ": section '%s' is repeated or out of order", i, at, name);
        prev_kind = kind;
        if (enc > 7 || !(encodings[kind] >> enc & 1u))
            RBAD("section table entry %" PRIu32 " at offset %" PRIu64
                 ": section '%s' has unknown encoding %u", i, at, name, enc);
        if (res)
            RBAD("section table entry %" PRIu32 " at offset %" PRIu64
                 ": reserved field is %" PRIu32 ", expected 0", i, at, res);
        expect = align8(pad_from);
        if (off % 8u) RBAD("section '%s' at offset %" PRIu32 " is not 8-byte aligned", name, off);
        if (off != expect)
            RBAD("section '%s' at offset %" PRIu32 " should start at offset %" PRIu64
                 " (sections are packed in table order, each 8-byte aligned)", name, off, expect);
        if ((uint64_t)off + length > size)
            RBAD("section '%s' at offset %" PRIu32 " runs past the end of the file (needs %"
                 PRIu32 " bytes, %" PRIu64 " left)", name, off, length,
                 size > off ? (uint64_t)(size - off) : 0);
        for (p = (size_t)pad_from; p < off; p++)
            if (d[p]) RBAD("nonzero padding before section '%s' at offset %" PRIu64, name,
                           pad_from);
        r->sec[kind].offset = off;
        r->sec[kind].length = length;
        r->sec[kind].encoding = (uint8_t)enc;
        r->sec[kind].present = 1;
        pad_from = (uint64_t)off + length;
    }
    if (pad_from < size)
        RBAD("%" PRIu64 " trailing bytes after the last section (which ends at offset %" PRIu64
             ")", (uint64_t)size - pad_from, pad_from);
    if (file_size != size)
        RBAD("file size field at offset 48 says %" PRIu64 " bytes, the file has %zu", file_size,
             size);
    for (i = 0; i < n_required; i++)
        if (!r->sec[required[i]].present)
            RBAD("required section '%s' is missing", r->names[required[i]]);
    return ESB_OK;
}

/* container.py's check_section_crcs. */
static esb_status rec_crcs(const rec_blob *r, uint32_t n_sec)
{
    const uint8_t *d = r->buf;
    uint32_t i;
    for (i = 0; i < n_sec; i++) {
        const uint8_t *e = d + HEADER_SIZE + ENTRY_SIZE * i;
        uint32_t off = ld_u32(e + 4), length = ld_u32(e + 8), stored = ld_u32(e + 12);
        uint32_t crc = crc32_update(0, d + off, length);
        if (crc != stored)
            RBAD("checksum mismatch in section '%s' at offset %" PRIu32 " (stored 0x%08" PRIx32
                 ", computed 0x%08" PRIx32 ")", r->names[e[0]], off, stored, crc);
    }
    return ESB_OK;
}

/* section_access's need(): the section is exactly `expected` bytes. */
static esb_status rec_need(const rec_blob *r, unsigned kind, uint64_t expected, const char *what)
{
    if (r->sec[kind].length != expected)
        RBAD("section '%s' at offset %" PRIu32 " is %" PRIu32 " bytes, expected %" PRIu64
             " (%s)", r->names[kind], r->sec[kind].offset, r->sec[kind].length, expected, what);
    return ESB_OK;
}

/* codecs.py's decode_provenance (the JSON parser's detail in its own words). */
static esb_status rec_provenance(const rec_blob *r, unsigned kind)
{
    const uint8_t *b = rsec(r, kind);
    uint32_t off = r->sec[kind].offset, len = r->sec[kind].length;
    const char *why;
    if (!utf8_valid(b, len))
        RBAD("section 'provenance' at offset %" PRIu32 ": not valid UTF-8", off);
    why = json_check(b, len);
    if (why == TOO_MANY_KEYS)
        RBAD("section 'provenance' at offset %" PRIu32 ": has more than %u keys", off,
             MAX_PROVENANCE_KEYS);
    if (why)
        RBAD("section 'provenance' at offset %" PRIu32 ": not a valid JSON object of strings "
             "(%s)", off, why);
    return ESB_OK;
}

/* Raw ids (ids.py's decode_ids) ------------------------------------------------------------ */
typedef struct {
    uint8_t kind;
    int64_t i;
    double f;
    const uint8_t *s;
    uint64_t len;
} rec_id;

static int rec_id_eq(const rec_id *a, const rec_id *b)
{
    if (a->kind == ESB_LABEL_FLOAT) return a->f == b->f;
    if (a->kind == ESB_LABEL_INT) return a->i == b->i;
    return a->len == b->len && (!a->len || memcmp(a->s, b->s, a->len) == 0);
}

/* <0, 0, >0 as Python orders the ids (UTF-8 byte order is code point order). */
static int rec_id_cmp(const rec_id *a, const rec_id *b)
{
    if (a->kind == ESB_LABEL_FLOAT) return (a->f > b->f) - (a->f < b->f);
    if (a->kind == ESB_LABEL_INT) return (a->i > b->i) - (a->i < b->i);
    {
        uint64_t k = a->len < b->len ? a->len : b->len;
        int c = k ? memcmp(a->s, b->s, k) : 0;
        return c ? c : (a->len > b->len) - (a->len < b->len);
    }
}

/* Sequential reader of a checked ids section. */
typedef struct {
    rec_id id;
    const uint8_t *next, *data;
} rec_ids_cursor;

static void rec_ids_start(rec_ids_cursor *c, const uint8_t *b, uint8_t kind, uint32_t n)
{
    uint32_t found = 0;
    const uint8_t *p = b;
    memset(c, 0, sizeof *c);
    c->id.kind = kind;
    c->next = b;
    if (kind == ESB_LABEL_STRING) {
        while (found < n) found += *p++ < 0x80;
        c->data = p;
    }
}

static void rec_ids_next(rec_ids_cursor *c)
{
    if (c->id.kind == ESB_LABEL_FLOAT) {
        c->id.f = ld_f64(c->next);
        c->next += 8;
    } else if (c->id.kind == ESB_LABEL_INT) {
        uint64_t z = rdv(&c->next);
        z = (z >> 1) ^ (0u - (z & 1u));
        memcpy(&c->id.i, &z, 8);
    } else {
        c->id.len = rdv(&c->next);
        c->id.s = c->data;
        c->data += c->id.len;
    }
}

static esb_status rec_dup_error(const rec_blob *r, unsigned kind)
{
    RBAD("section '%s' at offset %" PRIu32 ": ids are not distinct (each raw id maps to one "
         "inner id)", r->names[kind], r->sec[kind].offset);
}

/* ids.py's decode_ids: n ids of the section's encoding; repeats compared pairwise up to
 * ESB_KNN_PAIRWISE_IDS ids (larger sides: when the index sorts them). */
static esb_status rec_ids_check(const rec_blob *r, unsigned kind, uint32_t n)
{
    char err[120], desc[60];
    const uint8_t *b = rsec(r, kind);
    uint32_t off = r->sec[kind].offset, len = r->sec[kind].length, i, j;
    unsigned enc = r->sec[kind].encoding;
    const char *name = r->names[kind];
    if (enc == ESB_LABEL_FLOAT) {
        snprintf(desc, sizeof desc, "%" PRIu32 " float64 ids", n);
        RTRY(rec_need(r, kind, 8u * (uint64_t)n, desc));
        for (i = 0; i < n; i++)
            if (!finite_f64(ld_u64(b + 8u * i)))
                RBAD("section '%s' at offset %" PRIu32 ": an id is not finite", name, off);
    } else if (enc == ESB_LABEL_INT) {
        if (varint_check(b, len, n, 10, err, sizeof err))
            RBAD("section '%s' at offset %" PRIu32 ": %s (one id per entry)", name, off, err);
    } else {
        uint64_t found = 0, head = 0, total = 0, pos;
        const uint8_t *p;
        while (head < len && found < n) found += b[head++] < 0x80;
        if (found < n)
            RBAD("section '%s' at offset %" PRIu32 ": holds fewer than %" PRIu32 " id lengths",
                 name, off, n);
        if (varint_check(b, head, n, 5, err, sizeof err))
            RBAD("section '%s' at offset %" PRIu32 ": id lengths: %s", name, off, err);
        for (p = b, i = 0; i < n; i++) total += rdv(&p);
        if (head + total != len)
            RBAD("section '%s' at offset %" PRIu32 ": id lengths add up to %" PRIu64
                 " bytes, section has %" PRIu32, name, off, head + total, len);
        for (p = b, pos = head, i = 0; i < n; i++) {
            uint64_t l = rdv(&p);
            if (!utf8_valid(b + pos, l))
                RBAD("section '%s' at offset %" PRIu32 ": id %" PRIu32 " at offset %" PRIu64
                     " is not valid UTF-8", name, off, i, off + pos);
            pos += l;
        }
    }
    if (n <= ESB_KNN_PAIRWISE_IDS) { /* larger sides: rec_index_ids, sorted */
        rec_ids_cursor a, c;
        rec_ids_start(&a, b, (uint8_t)enc, n);
        for (i = 0; i < n; i++) {
            rec_ids_next(&a);
            rec_ids_start(&c, b, (uint8_t)enc, n);
            for (j = 0; j < i; j++) {
                rec_ids_next(&c);
                if (rec_id_eq(&a.id, &c.id)) return rec_dup_error(r, kind);
            }
        }
    }
    return ESB_OK;
}

/* One side's ids through the index: where each id starts in its section (its varint, its 8
 * bytes, or its UTF-8 bytes; n + 1 offsets) and the inner ids in raw id order. */
typedef struct {
    const uint8_t *b; /* the ids section */
    uint8_t kind;     /* ESB_LABEL_* */
    uint32_t n;
    const uint32_t *off, *sorted;
} rec_ids_ref;

static rec_ids_ref rec_ids_of(const uint8_t *buf, const esb_section_ref *sec, uint32_t n,
                              const uint32_t *off, const uint32_t *sorted)
{
    rec_ids_ref s;
    s.b = buf + sec->offset;
    s.kind = sec->encoding;
    s.n = n;
    s.off = off;
    s.sorted = sorted;
    return s;
}

/* The raw id of inner id i. */
static rec_id rec_id_at(const rec_ids_ref *s, uint32_t i)
{
    const uint8_t *p = s->b + s->off[i];
    rec_id id;
    memset(&id, 0, sizeof id);
    id.kind = s->kind;
    if (id.kind == ESB_LABEL_FLOAT) {
        id.f = ld_f64(p);
    } else if (id.kind == ESB_LABEL_INT) {
        uint64_t z = rdv(&p);
        z = (z >> 1) ^ (0u - (z & 1u));
        memcpy(&id.i, &z, 8);
    } else {
        id.s = p;
        id.len = s->off[i + 1] - s->off[i];
    }
    return id;
}

static int rec_sorted_lt(const rec_ids_ref *s, uint32_t a, uint32_t b)
{
    rec_id x = rec_id_at(s, a), y = rec_id_at(s, b);
    int c = rec_id_cmp(&x, &y);
    return c < 0 || (c == 0 && a < b);
}

/* In-place heapsort of inner ids by raw id (no allocation, O(n log n)). */
static void rec_sort_ids(const rec_ids_ref *s, uint32_t *a, uint32_t n)
{
    uint32_t start = n / 2, end = n;
    while (end > 1) {
        uint32_t root, child, t;
        if (start > 0) {
            root = --start;
        } else {
            end--;
            t = a[end];
            a[end] = a[0];
            a[0] = t;
            root = 0;
        }
        while ((child = 2 * root + 1) < end) {
            if (child + 1 < end && rec_sorted_lt(s, a[child], a[child + 1])) child++;
            if (!rec_sorted_lt(s, a[root], a[child])) break;
            t = a[root];
            a[root] = a[child];
            a[child] = t;
            root = child;
        }
    }
}

/* Fill one side's index part (off: n + 1 words, sorted: n) for the checked ids section
 * `kind`; ESB_E_CORRUPT (ids.py's message) for a repeated id. */
static esb_status rec_index_ids(const rec_blob *r, unsigned kind, uint32_t n, uint32_t *off,
                                uint32_t *sorted)
{
    const uint8_t *b = rsec(r, kind), *p = b;
    unsigned enc = r->sec[kind].encoding;
    rec_ids_ref s;
    uint32_t i;
    uint64_t pos;
    if (enc == ESB_LABEL_FLOAT) {
        for (i = 0; i <= n; i++) off[i] = 8u * i;
    } else if (enc == ESB_LABEL_INT) {
        for (i = 0; i < n; i++) {
            off[i] = (uint32_t)(p - b);
            (void)rdv(&p);
        }
        off[n] = (uint32_t)(p - b);
    } else {
        uint32_t found = 0;
        const uint8_t *q = b;
        while (found < n) found += *q++ < 0x80;
        pos = (uint64_t)(q - b);
        for (i = 0; i < n; i++) {
            off[i] = (uint32_t)pos;
            pos += rdv(&p);
        }
        off[n] = (uint32_t)pos;
    }
    s = rec_ids_of(r->buf, &r->sec[kind], n, off, sorted);
    for (i = 0; i < n; i++) sorted[i] = i;
    rec_sort_ids(&s, sorted, n);
    for (i = 1; i < n; i++) {
        rec_id x = rec_id_at(&s, sorted[i - 1]), y = rec_id_at(&s, sorted[i]);
        if (rec_id_eq(&x, &y)) return rec_dup_error(r, kind);
    }
    return ESB_OK;
}

/* The text as a raw id of the given kind; 0 when it cannot be one. */
static int rec_parse_id(uint8_t kind, const char *text, size_t len, rec_id *id)
{
    char buf[64], *end;
    memset(id, 0, sizeof *id);
    id->kind = kind;
    if (kind == ESB_LABEL_STRING) {
        id->s = (const uint8_t *)text;
        id->len = len;
        return 1;
    }
    if (len == 0 || len >= sizeof buf) return 0;
    memcpy(buf, text, len);
    buf[len] = '\0';
    errno = 0;
    if (kind == ESB_LABEL_INT) {
        long long v;
        if (!(buf[0] == '-' || (buf[0] >= '0' && buf[0] <= '9'))) return 0;
        v = strtoll(buf, &end, 10);
        id->i = (int64_t)v;
    } else {
        id->f = strtod(buf, &end);
        if (!rec_finite(id->f)) return 0; /* ids are finite; a NaN would compare equal */
    }
    return *end == '\0' && errno == 0;
}

/* The inner id of a raw id given as text, or ESB_KNN_UNKNOWN: a binary search. */
static uint32_t rec_find(const rec_ids_ref *s, const char *text, size_t len)
{
    rec_id want;
    uint32_t lo = 0, hi = s->n;
    if (!text && len) return ESB_KNN_UNKNOWN;
    if (!rec_parse_id(s->kind, text ? text : "", len, &want)) return ESB_KNN_UNKNOWN;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        rec_id got = rec_id_at(s, s->sorted[mid]);
        int c = rec_id_cmp(&got, &want);
        if (c == 0) return s->sorted[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return ESB_KNN_UNKNOWN;
}

static esb_status rec_raw_id(const rec_ids_ref *s, uint32_t i, esb_label *out)
{
    rec_id id;
    if (!out || i >= s->n) return ESB_E_ARGUMENT;
    id = rec_id_at(s, i);
    memset(out, 0, sizeof *out);
    out->kind = id.kind;
    out->i = id.i;
    out->f = id.f;
    out->s = (const char *)id.s;
    out->len = (uint32_t)id.len;
    return ESB_OK;
}

/* Python's min(hi, max(lo, e)) (a NaN from an overflow gives lo). */
static double rec_clip(double lo, double hi, double e)
{
    double v = e > lo ? e : lo;
    return v < hi ? v : hi;
}

/* numpy's pairwise summation of a float64 array (np.sum), bit for bit. */
static double rec_pairwise(const double *a, uint32_t n)
{
    if (n < 8) {
        double res = 0.;
        uint32_t i;
        for (i = 0; i < n; i++) res += a[i];
        return res;
    }
    if (n <= 128) {
        double r[8], res;
        uint32_t i, j;
        for (j = 0; j < 8; j++) r[j] = a[j];
        for (i = 8; i < n - (n % 8); i += 8)
            for (j = 0; j < 8; j++) r[j] += a[i + j];
        res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for (; i < n; i++) res += a[i];
        return res;
    } else {
        uint32_t n2 = n / 2;
        n2 -= n2 % 8;
        return rec_pairwise(a, n2) + rec_pairwise(a + n2, n - n2);
    }
}

/* Insert (item, e) into the top-n list (est descending, ties: earlier items first); *got
 * entries so far. */
static void rec_top_insert(uint32_t *items, double *est, uint32_t n, uint32_t *got,
                           uint32_t item, double e)
{
    uint32_t at;
    if (*got == n && !(e > est[n - 1])) return; /* ties keep the earlier item */
    at = *got < n ? *got : n - 1;
    while (at > 0 && e > est[at - 1]) { /* insert after every estimate >= e */
        est[at] = est[at - 1];
        items[at] = items[at - 1];
        at--;
    }
    est[at] = e;
    items[at] = item;
    if (*got < n) (*got)++;
}

static esb_status kfail(esb_knn *m, esb_status code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    code = rec_vfail(m->message, code, fmt, ap);
    va_end(ap);
    return code;
}

#define KBAD(...) return kfail(m, ESB_E_CORRUPT, __VA_ARGS__)
#define KTRY RTRY

/* The k-NN blob as the shared checks see it. */
static rec_blob knn_rb(esb_knn *m, const uint8_t *d)
{
    rec_blob r;
    r.buf = d;
    r.sec = m->sec_;
    r.names = K_NAMES;
    r.message = m->message;
    return r;
}

static uint32_t knn_n_x(const esb_knn *m) { return m->user_based ? m->n_users : m->n_items; }
static uint32_t knn_n_y(const esb_knn *m) { return m->user_based ? m->n_items : m->n_users; }
static const uint8_t *ksec(const esb_knn *m, unsigned kind)
{
    return m->buf_ + m->sec_[kind].offset;
}

/* ---------------------------------------------------------------------------------------- */
/* Header and section table (container.py's read_header, read_table; knn.py's checks)       */
/* ---------------------------------------------------------------------------------------- */
static esb_status knn_header(esb_knn *m, const uint8_t *d, size_t size, uint32_t *n_sec,
                             uint64_t *file_size)
{
    uint32_t kind_code, res32, n_x;
    uint64_t n_ratings;
    uint8_t variant, dtype, flags;
    rec_blob r = knn_rb(m, d);
    KTRY(rec_header(&r, size, ESB_KNN_FORMAT_VERSION, "a k-NN model",
                    "k-NN recommenders are version 2; version 1 holds a linear model",
                    K_N_REQUIRED, K_N_KINDS, n_sec));
    /* knn.py's _check_header, in its order */
    m->n_users = ld_u32(d + 16);
    m->n_items = ld_u32(d + 20);
    n_ratings = ld_u64(d + 24);
    m->k = ld_u32(d + 32);
    m->min_k = ld_u32(d + 36);
    variant = d[40];
    dtype = d[41];
    flags = d[42];
    kind_code = d[43];
    m->sim_nnz = ld_u32(d + 44);
    *file_size = ld_u64(d + 48);
    res32 = ld_u32(d + 56);
    if (kind_code != 1)
        KBAD("unknown model kind %" PRIu32 " at offset 43 (version 2 defines kind 1, k-NN; was "
             "the file written by a newer edgesparse?)", kind_code);
    if (variant >= 4) KBAD("unknown k-NN variant code %u at offset 40", variant);
    if (dtype >= 3) KBAD("unknown similarity dtype code %u at offset 41", dtype);
    if (flags & ~1u) KBAD("unknown flag bits 0x%02x at offset 42", flags & ~1u);
    if (res32) KBAD("reserved field at offset 56 is %" PRIu32 ", expected 0", res32);
    if (m->n_users < 1) KBAD("n_users at offset 16 is 0");
    if (m->n_items < 1) KBAD("n_items at offset 20 is 0");
    m->variant = variant;
    m->sim_dtype = dtype;
    m->user_based = flags & 1u;
    n_x = knn_n_x(m);
    if ((uint64_t)m->sim_nnz > (uint64_t)n_x * n_x)
        KBAD("sim_nnz at offset 44 is %" PRIu32 ", more than %" PRIu32 " x %" PRIu32,
             m->sim_nnz, n_x, n_x);
    /* n_ratings must equal the rating rows' sum, and 2 or 4 bytes each fit 32-bit sections. */
    m->n_ratings = n_ratings > UINT32_MAX ? UINT32_MAX : (uint32_t)n_ratings;
    return ESB_OK;
}

static esb_status knn_table(esb_knn *m, const uint8_t *d, size_t size, uint32_t n_sec,
                            uint64_t file_size)
{
    rec_blob r = knn_rb(m, d);
    return rec_table(&r, size, n_sec, file_size, K_N_KINDS, K_ENCODINGS, K_REQUIRED,
                     K_N_REQUIRED);
}

/* knn.py's _check_presence: the optional sections the header calls for, and no others. */
static esb_status knn_presence(esb_knn *m)
{
    const char *variant = K_VARIANTS[m->variant];
    int needed[4];
    unsigned kinds[4] = {K_SIM_SCALES, K_MEANS, K_SIGMAS, K_BASELINES}, j;
    needed[0] = m->sim_dtype == ESB_SIM_U8;
    needed[1] = m->variant == ESB_KNN_MEANS || m->variant == ESB_KNN_ZSCORE;
    needed[2] = m->variant == ESB_KNN_ZSCORE;
    needed[3] = m->variant == ESB_KNN_BASELINE;
    for (j = 0; j < 4; j++) {
        if (m->sec_[kinds[j]].present == needed[j]) continue;
        if (j == 0)
            KBAD("section 'sim_scales' must be %s when similarities are uint8 (offset 41)",
                 needed[j] ? "present" : "absent");
        KBAD("section '%s' must be %s when the variant (offset 40) is '%s'", K_NAMES[kinds[j]],
             needed[j] ? "present" : "absent", variant);
    }
    return ESB_OK;
}

static esb_status knn_crcs(esb_knn *m, const uint8_t *d, uint32_t n_sec)
{
    rec_blob r = knn_rb(m, d);
    return rec_crcs(&r, n_sec);
}

/* ---------------------------------------------------------------------------------------- */
/* Sections (knn.py's decoders, in _parse_bytes' order)                                      */
/* ---------------------------------------------------------------------------------------- */
/* section_access's need(): the section is exactly `expected` bytes. */
static esb_status knn_need(esb_knn *m, unsigned kind, uint64_t expected, const char *what)
{
    rec_blob r = knn_rb(m, m->buf_);
    return rec_need(&r, kind, expected, what);
}

/* knn.py's _floats: n float64 values, finite (and > 0 when positive). */
static esb_status knn_floats(esb_knn *m, unsigned kind, uint32_t n, const char *what,
                             int positive)
{
    char desc[96], r[40];
    const uint8_t *b = ksec(m, kind);
    uint32_t i;
    snprintf(desc, sizeof desc, "%" PRIu32 " float64 %s", n, what);
    KTRY(knn_need(m, kind, 8u * (uint64_t)n, desc));
    for (i = 0; i < n; i++) {
        double v = ld_f64(b + 8u * i);
        if (finite_f64(ld_u64(b + 8u * i)) && (!positive || v > 0)) continue;
        py_repr(v, r, sizeof r);
        KBAD("section '%s' at offset %" PRIu32 ": value %s at position %" PRIu32
             " must be finite%s", K_NAMES[kind], m->sec_[kind].offset, r, i,
             positive ? " and > 0" : "");
    }
    return ESB_OK;
}

static esb_status knn_params(esb_knn *m)
{
    const uint8_t *b = ksec(m, K_PARAMS);
    unsigned enc = m->sec_[K_RATINGS].encoding;
    double lo, hi, step;
    char a[40], c[40];
    KTRY(knn_floats(m, K_PARAMS, 4, "(global mean, rating low, rating high, step)", 0));
    m->global_mean = ld_f64(b);
    lo = ld_f64(b + 8);
    hi = ld_f64(b + 16);
    step = ld_f64(b + 24);
    if (lo > hi) {
        py_repr(lo, a, sizeof a);
        py_repr(hi, c, sizeof c);
        KBAD("section 'params' at offset %" PRIu32 ": rating scale low %s is above high %s",
             m->sec_[K_PARAMS].offset, a, c);
    }
    if ((enc == 0) != (step > 0) || (enc == 0 && step != 1.0 && step != 0.5)) {
        py_repr(step, a, sizeof a);
        KBAD("section 'params' at offset %" PRIu32 ": rating step %s does not fit the ratings "
             "encoding (%s: step must be %s)", m->sec_[K_PARAMS].offset, a, K_RATING_ENCS[enc],
             enc == 0 ? "1 or 0.5" : "0");
    }
    m->rating_low = lo;
    m->rating_high = hi;
    m->step_ = step;
    return ESB_OK;
}

/* knn.py's _rows: n_rows varint row lengths summing to total, each <= cap (cap 0: none). */
static esb_status knn_rows(esb_knn *m, unsigned kind, uint32_t n_rows, uint64_t total,
                           uint32_t cap, const char *what, uint32_t *max_row)
{
    char err[120];
    const uint8_t *b = ksec(m, kind), *p = b;
    uint32_t off = m->sec_[kind].offset, r;
    uint64_t sum = 0;
    if (varint_check(b, m->sec_[kind].length, n_rows, 5, err, sizeof err))
        KBAD("section '%s' at offset %" PRIu32 ": %s (one row length per row)", K_NAMES[kind],
             off, err);
    *max_row = 0;
    for (r = 0; r < n_rows; r++) {
        uint64_t c = rdv(&p);
        if (cap && c > cap)
            KBAD("section '%s' at offset %" PRIu32 ": row %" PRIu32 " has %" PRIu64
                 " entries, more than %" PRIu32, K_NAMES[kind], off, r, c, cap);
        sum += c;
        if (c > *max_row) *max_row = c > UINT32_MAX ? UINT32_MAX : (uint32_t)c;
    }
    if (sum != total)
        KBAD("section '%s' at offset %" PRIu32 ": row lengths sum to %" PRIu64 ", the header "
             "says %" PRIu64 " %s entries", K_NAMES[kind], off, sum, total, what);
    return ESB_OK;
}

/* knn.py's _sim_columns: per-row gaps, each < n_x, and the columns they make < n_x. */
static esb_status knn_sim_columns(esb_knn *m)
{
    char err[120];
    const uint8_t *b = ksec(m, K_SIM_INDICES), *p, *rows = ksec(m, K_SIM_ROWS);
    uint32_t off = m->sec_[K_SIM_INDICES].offset, n_x = knn_n_x(m), pos = 0, r;
    if (varint_check(b, m->sec_[K_SIM_INDICES].length, m->sim_nnz, 5, err, sizeof err))
        KBAD("section 'sim_indices' at offset %" PRIu32 ": %s (one column gap per similarity)",
             off, err);
    for (p = b, pos = 0; pos < m->sim_nnz; pos++) {
        uint64_t g = rdv(&p);
        if (g >= n_x)
            KBAD("section 'sim_indices' at offset %" PRIu32 ": column gap %" PRIu64
                 " at position %" PRIu32 " is >= %" PRIu32, off, g, pos, n_x);
    }
    for (p = b, pos = 0, r = 0; r < n_x; r++) {
        uint64_t c, col = 0, j;
        c = rdv(&rows);
        for (j = 0; j < c; j++, pos++) {
            uint64_t g = rdv(&p);
            col = j ? col + g + 1 : g;
            if (col >= n_x)
                KBAD("section 'sim_indices' at offset %" PRIu32 ": column %" PRIu64
                     " at position %" PRIu32 " is out of [0, %" PRIu32 ")", off, col, pos, n_x);
        }
    }
    return ESB_OK;
}

static double knn_sim_raw(const esb_knn *m, uint32_t pos)
{
    const uint8_t *v = ksec(m, K_SIM_VALUES);
    if (m->sim_dtype == ESB_SIM_F64) return ld_f64(v + 8u * pos);
    if (m->sim_dtype == ESB_SIM_F32) return (double)ld_f32(v + 4u * pos);
    return (double)v[pos];
}

static esb_status knn_sim_values(esb_knn *m)
{
    static const unsigned width[3] = {8, 4, 1};
    char desc[80], r[40];
    uint32_t i, n_x = knn_n_x(m);
    snprintf(desc, sizeof desc, "sim_nnz=%" PRIu32 " %s", m->sim_nnz, K_SIM_DTYPES[m->sim_dtype]);
    KTRY(knn_need(m, K_SIM_VALUES, (uint64_t)m->sim_nnz * width[m->sim_dtype], desc));
    for (i = 0; i < m->sim_nnz; i++) {
        double v = knn_sim_raw(m, i);
        int bad = m->sim_dtype == ESB_SIM_U8 ? v == 0 : !(rec_finite(v) && v > 0);
        if (!bad) continue;
        if (m->sim_dtype == ESB_SIM_U8) snprintf(r, sizeof r, "0");
        else py_repr(v, r, sizeof r);
        KBAD("section 'sim_values' at offset %" PRIu32 ": similarity %s at position %" PRIu32
             " is not allowed (only finite positive similarities are stored)",
             m->sec_[K_SIM_VALUES].offset, r, i);
    }
    if (m->sim_dtype != ESB_SIM_U8) return ESB_OK;
    snprintf(desc, sizeof desc, "%" PRIu32 " per-row float32 scales", n_x);
    KTRY(knn_need(m, K_SIM_SCALES, 4u * (uint64_t)n_x, desc));
    for (i = 0; i < n_x; i++) {
        float s = ld_f32(ksec(m, K_SIM_SCALES) + 4u * i);
        if (finite_float(s) && s > 0) continue;
        py_repr((double)s, r, sizeof r);
        KBAD("section 'sim_scales' at offset %" PRIu32 ": scale %s at row %" PRIu32
             " must be > 0", m->sec_[K_SIM_SCALES].offset, r, i);
    }
    return ESB_OK;
}

static uint32_t knn_rater(const esb_knn *m, uint32_t pos)
{
    const uint8_t *b = ksec(m, K_YR_X);
    return m->sec_[K_YR_X].encoding == 1 ? ld_u16(b + 2u * pos) : ld_u32(b + 4u * pos);
}

static double knn_rating(const esb_knn *m, uint32_t pos)
{
    const uint8_t *b = ksec(m, K_RATINGS);
    unsigned enc = m->sec_[K_RATINGS].encoding;
    if (enc == 0) return m->rating_low + (double)b[pos] * m->step_;
    if (enc == 1) return (double)ld_f32(b + 4u * pos);
    return ld_f64(b + 8u * pos);
}

static esb_status knn_ratings(esb_knn *m, uint64_t n_ratings)
{
    char desc[80], r[40];
    unsigned enc = m->sec_[K_YR_X].encoding, width = enc == 1 ? 2 : 4;
    uint32_t i, n_x = knn_n_x(m);
    KTRY(knn_rows(m, K_YR_ROWS, knn_n_y(m), n_ratings, 0, "rating", &m->max_yr_row_));
    snprintf(desc, sizeof desc, "n_ratings=%" PRIu64 " %s rater ids", n_ratings,
             enc == 1 ? "uint16" : "uint32");
    KTRY(knn_need(m, K_YR_X, width * n_ratings, desc));
    m->n_ratings = (uint32_t)n_ratings; /* the section holds 2 or 4 bytes per rating */
    for (i = 0; i < m->n_ratings; i++)
        if (knn_rater(m, i) >= n_x)
            KBAD("section 'yr_x' at offset %" PRIu32 ": rater %" PRIu32 " at position %" PRIu32
                 " is out of [0, %" PRIu32 ")", m->sec_[K_YR_X].offset, knn_rater(m, i), i, n_x);
    enc = m->sec_[K_RATINGS].encoding;
    width = enc == 0 ? 1 : enc == 1 ? 4 : 8;
    snprintf(desc, sizeof desc, "n_ratings=%" PRIu64 " %s", n_ratings,
             enc == 0 ? "uint8 codes" : K_RATING_ENCS[enc]);
    KTRY(knn_need(m, K_RATINGS, (uint64_t)width * n_ratings, desc));
    for (i = 0; i < m->n_ratings; i++) {
        double v = knn_rating(m, i);
        if (rec_finite(v)) continue;
        py_repr(v, r, sizeof r);
        KBAD("section 'ratings' at offset %" PRIu32 ": rating %s at position %" PRIu32
             " is not finite", m->sec_[K_RATINGS].offset, r, i);
    }
    return ESB_OK;
}

static esb_status knn_contents(esb_knn *m)
{
    uint32_t n_x = knn_n_x(m);
    KTRY(knn_params(m));
    KTRY(knn_rows(m, K_SIM_ROWS, n_x, m->sim_nnz, n_x, "similarity", &m->max_sim_row_));
    KTRY(knn_sim_columns(m));
    KTRY(knn_sim_values(m));
    KTRY(knn_ratings(m, ld_u64(m->buf_ + 24)));
    if (m->sec_[K_MEANS].present) KTRY(knn_floats(m, K_MEANS, n_x, "means", 0));
    if (m->sec_[K_SIGMAS].present) KTRY(knn_floats(m, K_SIGMAS, n_x, "sigmas", 1));
    if (m->sec_[K_BASELINES].present)
        KTRY(knn_floats(m, K_BASELINES, m->n_users + m->n_items,
                        "baselines (users, then items)", 0));
    {
        rec_blob r = knn_rb(m, m->buf_);
        KTRY(rec_ids_check(&r, K_USER_IDS, m->n_users));
        KTRY(rec_ids_check(&r, K_ITEM_IDS, m->n_items));
        m->user_id_kind = m->sec_[K_USER_IDS].encoding;
        m->item_id_kind = m->sec_[K_ITEM_IDS].encoding;
        if (m->sec_[K_PROVENANCE].present) KTRY(rec_provenance(&r, K_PROVENANCE));
    }
    return ESB_OK;
}

esb_status esb_knn_open(const void *buf, size_t len, esb_knn *m)
{
    const uint8_t *d = (const uint8_t *)buf;
    uint32_t n_sec = 0;
    uint64_t file_size = 0;
    esb_status st;
    if (!m) return ESB_E_ARGUMENT;
    memset(m, 0, sizeof *m);
    if (!buf && len) return kfail(m, ESB_E_ARGUMENT, "esb_knn_open: buf is NULL");
    st = knn_header(m, d, len, &n_sec, &file_size);
    if (st == ESB_OK) st = knn_table(m, d, len, n_sec, file_size);
    if (st == ESB_OK) st = knn_presence(m);
    if (st == ESB_OK) st = knn_crcs(m, d, n_sec);
    if (st == ESB_OK) {
        m->buf_ = d;
        m->size_ = len;
        st = knn_contents(m);
    }
    if (st != ESB_OK) {
        m->buf_ = NULL; /* the model must not be used */
        m->size_ = 0;
    }
    return st;
}

/* ---------------------------------------------------------------------------------------- */
/* The index: row starts of the varint rows, id offsets, ids sorted                          */
/* ---------------------------------------------------------------------------------------- */
/* Layout (uint32_t): sim_ptr[n_x + 1], sim_byte[n_x + 1] (where row x's gaps start in
 * sim_indices), yr_ptr[n_y + 1], user_off[n_users + 1], item_off[n_items + 1] (where each id
 * starts in its section: its varint, its 8 bytes, or its UTF-8 bytes), user_sorted[n_users],
 * item_sorted[n_items] (inner ids in raw id order). */
typedef struct {
    const uint32_t *sim_ptr, *sim_byte, *yr_ptr, *off[2], *sorted[2];
} knn_index;

static knn_index knn_index_of(const esb_knn *m, const uint32_t *base)
{
    knn_index ix;
    uint32_t n_x = knn_n_x(m), n_y = knn_n_y(m);
    ix.sim_ptr = base;
    ix.sim_byte = ix.sim_ptr + n_x + 1;
    ix.yr_ptr = ix.sim_byte + n_x + 1;
    ix.off[0] = ix.yr_ptr + n_y + 1;
    ix.off[1] = ix.off[0] + m->n_users + 1;
    ix.sorted[0] = ix.off[1] + m->n_items + 1;
    ix.sorted[1] = ix.sorted[0] + m->n_users;
    return ix;
}

size_t esb_knn_index_size(const esb_knn *m)
{
    uint64_t words;
    if (!m || !m->buf_) return 0;
    words = 2 * (uint64_t)knn_n_x(m) + knn_n_y(m) + 2 * (uint64_t)m->n_users +
            2 * (uint64_t)m->n_items + 5;
    return clamp_size(4 * words);
}

static void knn_fill_rows(const uint8_t *rows, uint32_t n, uint32_t *ptr, uint32_t *byte,
                          const uint8_t *gaps)
{
    const uint8_t *p = gaps;
    uint32_t r;
    uint64_t j, c;
    ptr[0] = 0;
    for (r = 0; r < n; r++) {
        c = rdv(&rows);
        ptr[r + 1] = ptr[r] + (uint32_t)c;
        if (!byte) continue;
        byte[r] = (uint32_t)(p - gaps);
        for (j = 0; j < c; j++) (void)rdv(&p);
    }
    if (byte) byte[n] = (uint32_t)(p - gaps);
}

esb_status esb_knn_use_index(esb_knn *m, uint32_t *idx, size_t bytes)
{
    uint32_t *w[7], n_x, n_y;
    if (!m || !m->buf_ || !idx || bytes < esb_knn_index_size(m) ||
        (uintptr_t)idx % sizeof(uint32_t))
        return ESB_E_ARGUMENT;
    n_x = knn_n_x(m);
    n_y = knn_n_y(m);
    w[0] = idx;
    w[1] = w[0] + n_x + 1;
    w[2] = w[1] + n_x + 1;
    w[3] = w[2] + n_y + 1;
    w[4] = w[3] + m->n_users + 1;
    w[5] = w[4] + m->n_items + 1;
    w[6] = w[5] + m->n_users;
    knn_fill_rows(ksec(m, K_SIM_ROWS), n_x, w[0], w[1], ksec(m, K_SIM_INDICES));
    knn_fill_rows(ksec(m, K_YR_ROWS), n_y, w[2], NULL, NULL);
    {
        rec_blob r = knn_rb(m, m->buf_);
        KTRY(rec_index_ids(&r, K_USER_IDS, m->n_users, w[3], w[5]));
        KTRY(rec_index_ids(&r, K_ITEM_IDS, m->n_items, w[4], w[6]));
    }
    m->idx_ = idx;
    return ESB_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* Raw ids <-> inner ids                                                                     */
/* ---------------------------------------------------------------------------------------- */
/* One side's ids (0 users, 1 items) through the index. */
static rec_ids_ref knn_ids_ref(const esb_knn *m, int s)
{
    knn_index ix = knn_index_of(m, m->idx_);
    return rec_ids_of(m->buf_, &m->sec_[s ? K_ITEM_IDS : K_USER_IDS],
                      s ? m->n_items : m->n_users, ix.off[s], ix.sorted[s]);
}

static uint32_t knn_find(const esb_knn *m, int s, const char *text, size_t len)
{
    rec_ids_ref ids;
    if (!m || !m->idx_) return ESB_KNN_UNKNOWN;
    ids = knn_ids_ref(m, s);
    return rec_find(&ids, text, len);
}

uint32_t esb_knn_find_user(const esb_knn *m, const char *text, size_t len)
{
    return knn_find(m, 0, text, len);
}

uint32_t esb_knn_find_item(const esb_knn *m, const char *text, size_t len)
{
    return knn_find(m, 1, text, len);
}

static esb_status knn_raw_id(const esb_knn *m, int s, uint32_t i, esb_label *out)
{
    rec_ids_ref ids;
    if (!m || !m->idx_) return ESB_E_ARGUMENT;
    ids = knn_ids_ref(m, s);
    return rec_raw_id(&ids, i, out);
}

esb_status esb_knn_user_id(const esb_knn *m, uint32_t user, esb_label *id)
{
    return knn_raw_id(m, 0, user, id);
}

esb_status esb_knn_item_id(const esb_knn *m, uint32_t item, esb_label *id)
{
    return knn_raw_id(m, 1, item, id);
}

/* ---------------------------------------------------------------------------------------- */
/* Predictions (runtime/knn.py's KnnModel._estimate)                                         */
/* ---------------------------------------------------------------------------------------- */
typedef struct {
    double sim, r;
    uint32_t nbr, pos; /* the neighbour x2, its place among y's ratings (rating order) */
} knn_cand;
/* esb_knn_workspace_size counts 24 bytes per candidate (and 8 for its term). */
typedef char knn_cand_is_24_bytes[sizeof(knn_cand) == 24 ? 1 : -1];

typedef struct {
    knn_cand *cand;   /* max_yr_row_ */
    double *terms;    /* max_yr_row_ */
    uint32_t *cols;   /* max_sim_row_: the decoded similarity row of x */
    uint8_t *seen;    /* recommend: n_items bits */
    uint32_t row_x;   /* the row in cols (ESB_KNN_UNKNOWN: none yet) */
    uint32_t row_n;
} knn_ws;

static uint64_t knn_ws_cand_bytes(const esb_knn *m) { return 32 * (uint64_t)m->max_yr_row_; }

size_t esb_knn_workspace_size(const esb_knn *m)
{
    if (!m || !m->buf_) return 0;
    return clamp_size(knn_ws_cand_bytes(m) + 4 * (uint64_t)m->max_sim_row_ +
                      ((uint64_t)m->n_items + 7) / 8);
}

static int knn_ws_init(const esb_knn *m, void *ws, size_t bytes, knn_ws *w)
{
    uint8_t *p = (uint8_t *)ws;
    if (!ws || bytes < esb_knn_workspace_size(m) || (uintptr_t)ws % 8) return 0;
    w->cand = (knn_cand *)(void *)p;
    w->terms = (double *)(void *)(p + sizeof(knn_cand) * (size_t)m->max_yr_row_);
    w->cols = (uint32_t *)(void *)(p + knn_ws_cand_bytes(m));
    w->seen = p + knn_ws_cand_bytes(m) + 4 * (size_t)m->max_sim_row_;
    w->row_x = ESB_KNN_UNKNOWN;
    w->row_n = 0;
    return 1;
}

/* a before b: the larger similarity, ties in rating order (a stable sort of -sim). */
static int knn_before(const knn_cand *a, const knn_cand *b)
{
    return a->sim > b->sim || (a->sim == b->sim && a->pos < b->pos);
}

static void knn_sort_cands(knn_cand *a, uint32_t n)
{
    uint32_t start = n / 2, end = n;
    knn_cand t;
    while (end > 1) {
        uint32_t root, child;
        if (start > 0) {
            root = --start;
        } else {
            end--;
            t = a[end];
            a[end] = a[0];
            a[0] = t;
            root = 0;
        }
        /* a max-heap of "after": the root is the last in order, moved to the end */
        while ((child = 2 * root + 1) < end) {
            if (child + 1 < end && knn_before(&a[child], &a[child + 1])) child++;
            if (!knn_before(&a[root], &a[child])) break;
            t = a[root];
            a[root] = a[child];
            a[child] = t;
            root = child;
        }
    }
}

static void knn_load_row(const esb_knn *m, const knn_index *ix, uint32_t x, knn_ws *w)
{
    const uint8_t *p = ksec(m, K_SIM_INDICES) + ix->sim_byte[x];
    uint32_t n = ix->sim_ptr[x + 1] - ix->sim_ptr[x], j, col = 0;
    for (j = 0; j < n; j++) {
        uint32_t g = (uint32_t)rdv(&p);
        col = j ? col + g + 1 : g;
        w->cols[j] = col;
    }
    w->row_x = x;
    w->row_n = n;
}

static double knn_f64(const esb_knn *m, unsigned kind, uint32_t i)
{
    return ld_f64(ksec(m, kind) + 8u * (size_t)i);
}

/* The neighbours of (x, y) kept for the estimate, in the order the sums take them. */
static uint32_t knn_neighbours(const esb_knn *m, const knn_index *ix, uint32_t x, uint32_t y,
                               knn_ws *w)
{
    uint32_t lo = ix->yr_ptr[y], hi = ix->yr_ptr[y + 1], p, n = 0, s0 = ix->sim_ptr[x];
    double scale = 1.0;
    int scaled = m->sim_dtype == ESB_SIM_U8;
    if (w->row_x != x) knn_load_row(m, ix, x, w);
    if (scaled) scale = (double)ld_f32(ksec(m, K_SIM_SCALES) + 4u * x);
    for (p = lo; p < hi; p++) {
        uint32_t rater = knn_rater(m, p), a = 0, b = w->row_n;
        while (a < b) { /* lower bound of rater in the row's columns */
            uint32_t mid = a + (b - a) / 2;
            if (w->cols[mid] < rater) a = mid + 1;
            else b = mid;
        }
        if (a == w->row_n || w->cols[a] != rater) continue;
        w->cand[n].sim = knn_sim_raw(m, s0 + a);
        if (scaled) w->cand[n].sim *= scale;
        w->cand[n].r = knn_rating(m, p);
        w->cand[n].nbr = rater;
        w->cand[n].pos = p - lo;
        n++;
    }
    if (n > m->k) {
        knn_sort_cands(w->cand, n);
        n = m->k;
    }
    return n;
}

static void knn_estimate(const esb_knn *m, const knn_index *ix, uint32_t u, uint32_t i,
                         knn_ws *w, esb_knn_prediction *out)
{
    int known = u < m->n_users && i < m->n_items;
    uint32_t x, y, n, j;
    double est = 0, sum_sim, sum_dev;
    const knn_cand *c = w->cand;
    memset(out, 0, sizeof *out);
    if (m->variant == ESB_KNN_BASELINE) {
        est = m->global_mean;
        if (u < m->n_users) est += knn_f64(m, K_BASELINES, u);
        if (i < m->n_items) est += knn_f64(m, K_BASELINES, m->n_users + i);
        if (!known) {
            out->est_unclipped = est;
            return;
        }
    } else if (!known) {
        out->est_unclipped = m->global_mean;
        out->was_impossible = 1;
        out->reason = ESB_KNN_REASON_UNKNOWN;
        return;
    }
    x = m->user_based ? u : i;
    y = m->user_based ? i : u;
    n = knn_neighbours(m, ix, x, y, w);
    out->actual_k = n;
    out->has_actual_k = 1;
    for (j = 0; j < n; j++) w->terms[j] = c[j].sim;
    sum_sim = rec_pairwise(w->terms, n);
    if (m->variant == ESB_KNN_BASIC) {
        if (n < m->min_k || n == 0) {
            out->est_unclipped = m->global_mean;
            out->was_impossible = 1;
            out->reason = ESB_KNN_REASON_TOO_FEW;
            return;
        }
        for (j = 0; j < n; j++) w->terms[j] = c[j].sim * c[j].r;
        out->est_unclipped = rec_pairwise(w->terms, n) / sum_sim;
        return;
    }
    if (m->variant == ESB_KNN_BASELINE) {
        /* bx, by: (bu, bi) user-based, else (bi, bu); dev = r - (gm + bx[nbr] + by[y]) */
        uint32_t bx0 = m->user_based ? 0 : m->n_users, by0 = m->user_based ? m->n_users : 0;
        double by = knn_f64(m, K_BASELINES, by0 + y);
        for (j = 0; j < n; j++)
            w->terms[j] =
                c[j].sim * (c[j].r - (m->global_mean + knn_f64(m, K_BASELINES, bx0 + c[j].nbr) +
                                      by));
    } else {
        est = knn_f64(m, K_MEANS, x);
        for (j = 0; j < n; j++) {
            double dev = c[j].r - knn_f64(m, K_MEANS, c[j].nbr);
            if (m->variant == ESB_KNN_ZSCORE) dev /= knn_f64(m, K_SIGMAS, c[j].nbr);
            w->terms[j] = c[j].sim * dev;
        }
    }
    sum_dev = n >= m->min_k ? rec_pairwise(w->terms, n) : 0.0;
    if (sum_sim > 0) {
        double agg = sum_dev / sum_sim;
        if (m->variant == ESB_KNN_ZSCORE) agg *= knn_f64(m, K_SIGMAS, x);
        est += agg;
    }
    out->est_unclipped = est;
}

static double knn_clip(const esb_knn *m, double e)
{
    /* as KnnModel._clip */
    return rec_clip(m->rating_low, m->rating_high, e);
}

esb_status esb_knn_predict(const esb_knn *m, uint32_t user, uint32_t item, void *ws,
                           size_t ws_bytes, esb_knn_prediction *out)
{
    knn_ws w;
    knn_index ix;
    if (!m || !m->idx_ || !out || !knn_ws_init(m, ws, ws_bytes, &w)) return ESB_E_ARGUMENT;
    ix = knn_index_of(m, m->idx_);
    knn_estimate(m, &ix, user, item, &w, out);
    out->est = knn_clip(m, out->est_unclipped);
    return ESB_OK;
}

/* Mark the items user u rated in training. */
static void knn_mark_seen(const esb_knn *m, const knn_index *ix, uint32_t u, uint8_t *seen)
{
    uint32_t p, y;
    memset(seen, 0, ((size_t)m->n_items + 7) / 8);
    if (!m->user_based) {
        for (p = ix->yr_ptr[u]; p < ix->yr_ptr[u + 1]; p++) {
            uint32_t it = knn_rater(m, p);
            seen[it / 8] |= (uint8_t)(1u << (it % 8));
        }
        return;
    }
    for (y = 0; y < m->n_items; y++)
        for (p = ix->yr_ptr[y]; p < ix->yr_ptr[y + 1]; p++)
            if (knn_rater(m, p) == u) {
                seen[y / 8] |= (uint8_t)(1u << (y % 8));
                break;
            }
}

esb_status esb_knn_recommend(const esb_knn *m, uint32_t user, uint32_t n, int exclude_seen,
                             uint32_t *items, double *est, uint32_t *n_out, void *ws,
                             size_t ws_bytes)
{
    knn_ws w;
    knn_index ix;
    uint32_t it, got = 0;
    int known;
    if (n_out) *n_out = 0;
    if (!m || !m->idx_ || !n_out || (n && (!items || !est)) || !knn_ws_init(m, ws, ws_bytes, &w))
        return ESB_E_ARGUMENT;
    ix = knn_index_of(m, m->idx_);
    known = user < m->n_users;
    if (exclude_seen && known) knn_mark_seen(m, &ix, user, w.seen);
    for (it = 0; it < m->n_items && n; it++) {
        esb_knn_prediction p;
        double e;
        if (exclude_seen && known && (w.seen[it / 8] >> (it % 8) & 1u)) continue;
        knn_estimate(m, &ix, known ? user : ESB_KNN_UNKNOWN, it, &w, &p);
        e = knn_clip(m, p.est_unclipped);
        rec_top_insert(items, est, n, &got, it, e);
    }
    *n_out = got;
    return ESB_OK;
}

#undef KBAD
#undef KTRY
/* RBAD, RTRY and the rec_* helpers stay: esb_factors.c uses them. */
