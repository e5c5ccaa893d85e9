/*
 * esb_text.c - the text input stage (section kind 10, `text`) of the C runtime: its verifier
 * and the featurizer (raw UTF-8 document -> the CSR feature row the linear kernels read).
 *
 * NOT a separate translation unit: esb.c includes it (so that the builds, export-c and the
 * bench keep compiling `esb.c esb_main.c`), and it uses esb.c's static helpers (fail, BAD,
 * varint_check, rdv, utf8_seq, ld_*). The numeric contract is edgesparse/ir/text.py's module
 * docstring; the reference decoder is edgesparse/formats/linear_text.py (same checks, same
 * order, same messages); the reference featurizer is edgesparse/runtime/text.py. See esb.h,
 * "Text input", for the API, the workspace bound and the gaps vs Python.
 */
#ifdef ESB_NO_TEXT
/* A build without the text stage (about 95 KB of code and Unicode tables less): a blob with a
 * text section is refused by name, the text calls give ESB_E_HEAD. */
static esb_status check_text(esb_model *m, const uint8_t *d)
{
    (void)d;
    BAD("section 'text' at offset %" PRIu32 ": a text input stage, which this build of the C "
        "runtime leaves out (-DESB_NO_TEXT); run this model with a full build or the numpy "
        "runtime", m->sec_[TEXT].offset);
}
int esb_has_text(const esb_model *m) { return m && m->buf_ && m->sec_[TEXT].present; }
size_t esb_text_workspace_size(const esb_model *m, size_t max_doc_bytes)
{
    (void)m, (void)max_doc_bytes;
    return 0;
}
esb_status esb_text_features(const esb_model *m, const char *utf8, size_t len, void *ws,
                             size_t ws_bytes, uint32_t *nnz, const int32_t **indices,
                             const double **values)
{
    (void)m, (void)utf8, (void)len, (void)ws, (void)ws_bytes, (void)nnz, (void)indices;
    (void)values;
    return ESB_E_HEAD;
}
esb_status esb_decision_text(const esb_model *m, const char *utf8, size_t len, void *ws,
                             size_t ws_bytes, float *scores)
{
    (void)m, (void)utf8, (void)len, (void)ws, (void)ws_bytes, (void)scores;
    return ESB_E_HEAD;
}
esb_status esb_predict_text(const esb_model *m, const char *utf8, size_t len, void *ws,
                            size_t ws_bytes, uint32_t *class_index)
{
    (void)m, (void)utf8, (void)len, (void)ws, (void)ws_bytes, (void)class_index;
    return ESB_E_HEAD;
}
esb_status esb_predict_proba_text(const esb_model *m, const char *utf8, size_t len, void *ws,
                                  size_t ws_bytes, float *proba)
{
    (void)m, (void)utf8, (void)len, (void)ws, (void)ws_bytes, (void)proba;
    return ESB_E_HEAD;
}
size_t esb_text_index_size(const esb_model *m)
{
    (void)m;
    return 0;
}
esb_status esb_text_index_build(const esb_model *m, uint32_t *buf, size_t bytes,
                                esb_text_index *ix)
{
    (void)m, (void)buf, (void)bytes, (void)ix;
    return ESB_E_HEAD;
}
esb_status esb_text_features_ix(const esb_model *m, const esb_text_index *ix, const char *utf8,
                                size_t len, void *ws, size_t ws_bytes, uint32_t *nnz,
                                const int32_t **indices, const double **values)
{
    (void)ix;
    return esb_text_features(m, utf8, len, ws, ws_bytes, nnz, indices, values);
}
esb_status esb_decision_text_ix(const esb_model *m, const esb_text_index *ix, const char *utf8,
                                size_t len, void *ws, size_t ws_bytes, float *scores)
{
    (void)ix;
    return esb_decision_text(m, utf8, len, ws, ws_bytes, scores);
}
esb_status esb_predict_text_ix(const esb_model *m, const esb_text_index *ix, const char *utf8,
                               size_t len, void *ws, size_t ws_bytes, uint32_t *class_index)
{
    (void)ix;
    return esb_predict_text(m, utf8, len, ws, ws_bytes, class_index);
}
esb_status esb_predict_proba_text_ix(const esb_model *m, const esb_text_index *ix,
                                     const char *utf8, size_t len, void *ws, size_t ws_bytes,
                                     float *proba)
{
    (void)ix;
    return esb_predict_proba_text(m, utf8, len, ws, ws_bytes, proba);
}
#else
#include "esb_unicode.h"

/* esb.h's constant bound must cover the tables' expansion (C99: a negative size fails). */
typedef char esb_text_expand_check[ESB_U_EXPAND <= ESB_TEXT_EXPAND ? 1 : -1];

enum { T_LOWER = 1, T_ALT = 2, T_BINARY = 4, T_TFIDF = 8, T_IDF = 16, T_SUBLINEAR = 32 };
enum { T_FIXED = 24, T_KNOWN_FLAGS = 63, T_MAX_NGRAM = 32 };
static const char *const T_ANALYZERS[3] = {"word", "char", "char_wb"};

/* The parsed fixed fields and block positions of a checked text section. */
typedef struct text_cfg {
    uint8_t an, lo, hi, flags, acc, pat, norm, tnorm;
    uint32_t n_feat, n_stop, n_idf, stop_bytes, n_terms, code_w;
    const uint8_t *stop;      /* stop words: n_stop varint lengths, then the bytes */
    const uint8_t *idf_vals;  /* n_idf float64 */
    const uint8_t *idf_codes; /* n_feat codes of code_w bytes */
    const uint8_t *gaps;      /* vocabulary: n_terms varint column gaps */
    const uint8_t *terms;     /* vocabulary: n_terms varint lengths, then the bytes (NULL
                                 until t_cfg walks the gaps: a call with an index skips that) */
    const esb_text_index *ix; /* the lookups' index, or NULL (walks) */
    int vocab;
} text_cfg;

static unsigned t_code_width(uint32_t n_idf)
{
    return n_idf <= 256u ? 1u : n_idf <= 65536u ? 2u : 4u;
}

static uint32_t t_code(const uint8_t *p, unsigned w, uint32_t j)
{
    return w == 1 ? p[j] : w == 2 ? ld_u16(p + 2u * j) : ld_u32(p + 4u * j);
}

/* Fixed-field faults (formats/linear_text.py _fixed_fault), into msg; 1 when one. */
static int t_fixed_fault(const uint8_t *b, char *msg, size_t sz)
{
    unsigned an = b[0], lo = b[1], hi = b[2], flags = b[3], acc = b[4], pat = b[5];
    unsigned norm = b[6], tnorm = b[7];
    if (an >= 3) return snprintf(msg, sz, "unknown analyzer code %u", an), 1;
    if (!(1 <= lo && lo <= hi && hi <= T_MAX_NGRAM))
        return snprintf(msg, sz, "n-gram range (%u, %u) is not 1 <= min_n <= max_n <= 32", lo,
                        hi), 1;
    if (flags & ~(unsigned)T_KNOWN_FLAGS)
        return snprintf(msg, sz, "unknown flag bits 0x%02x", flags & ~(unsigned)T_KNOWN_FLAGS), 1;
    if ((flags & (T_IDF | T_SUBLINEAR)) && !(flags & T_TFIDF))
        return snprintf(msg, sz, "use_idf or sublinear_tf is set without tf-idf"), 1;
    if ((flags & T_SUBLINEAR) && (flags & T_ALT) && !(flags & T_BINARY))
        return snprintf(msg, sz, "sublinear_tf with alternate_sign needs binary counts (log of "
                                 "a negative count)"), 1;
    if (acc >= 3) return snprintf(msg, sz, "unknown strip_accents code %u", acc), 1;
    if (pat >= 4 || (an != 0 && pat != 0))
        return snprintf(msg, sz, "token pattern code %u is not allowed for analyzer '%s'", pat,
                        T_ANALYZERS[an]), 1;
    if (norm >= 3 || tnorm >= 3)
        return snprintf(msg, sz, "unknown norm code %u", norm > tnorm ? norm : tnorm), 1;
    if (tnorm && !(flags & T_TFIDF))
        return snprintf(msg, sz, "tf-idf norm code %u is set without tf-idf", tnorm), 1;
    return 0;
}

/* Count faults (_count_fault), into msg; 1 when one. */
static int t_count_fault(const text_cfg *c, uint32_t off, char *msg, size_t sz)
{
    if (c->n_stop && c->an != 0)
        return snprintf(msg, sz, "%" PRIu32 " stop words at offset %" PRIu64 ", but only the "
                        "word analyzer has any", c->n_stop, (uint64_t)off + 12), 1;
    if ((c->n_stop == 0) != (c->stop_bytes == 0) || c->stop_bytes < c->n_stop)
        return snprintf(msg, sz, "%" PRIu32 " stop words cannot take %" PRIu32 " bytes (offset %"
                        PRIu64 ")", c->n_stop, c->stop_bytes, (uint64_t)off + 20), 1;
    if (!!(c->flags & T_IDF) != (c->n_idf > 0))
        return snprintf(msg, sz, "%" PRIu32 " idf values at offset %" PRIu64 ", but use_idf is %s",
                        c->n_idf, (uint64_t)off + 16, c->flags & T_IDF ? "True" : "False"), 1;
    if (c->n_idf > c->n_feat)
        return snprintf(msg, sz, "%" PRIu32 " distinct idf values at offset %" PRIu64 ", more "
                        "than n_features=%" PRIu32, c->n_idf, (uint64_t)off + 16, c->n_feat), 1;
    return 0;
}

/* Position just past the first n bytes < 0x80 of b[0..len) (the varint lengths of n
 * strings), or len + 1 when there are fewer. */
static uint64_t t_heads_end(const uint8_t *b, uint64_t len, uint64_t n)
{
    uint64_t i, seen = 0;
    if (n == 0) return 0;
    for (i = 0; i < len; i++)
        if (b[i] < 0x80 && ++seen == n) return i + 1;
    return len + 1;
}

/* _decode_strings: n strings filling block[0..len) at file offset `at`; section offset off. */
static esb_status t_check_strings(esb_model *m, const uint8_t *blk, uint64_t len, uint32_t off,
                                  uint64_t at, uint64_t n, const char *what)
{
    char err[120];
    uint64_t head = t_heads_end(blk, len, n), total, pos, i;
    const uint8_t *p;
    if (head > len)
        BAD("section 'text' at offset %" PRIu32 ": holds fewer than %" PRIu64 " %s lengths", off,
            n, what);
    if (varint_check(blk, head, n, 5, err, sizeof err))
        BAD("section 'text' at offset %" PRIu32 ": %s lengths: %s", off, what, err);
    for (total = head, p = blk, i = 0; i < n; i++) total += rdv(&p);
    if (total != len)
        BAD("section 'text' at offset %" PRIu32 ": %s lengths add up to %" PRIu64 " bytes, the "
            "block at %" PRIu64 " has %" PRIu64, off, what, total, at, len);
    for (pos = head, p = blk, i = 0; i < n; i++) {
        uint64_t l = rdv(&p);
        if (!utf8_valid(blk + pos, l))
            BAD("section 'text' at offset %" PRIu32 ": %s %" PRIu64 " at offset %" PRIu64
                " is not valid UTF-8", off, what, i, at + pos);
        pos += l;
    }
    return ESB_OK;
}

/* String i of a checked strings block: its bytes and length (O(i) walk). */
typedef struct t_strings {
    const uint8_t *lens, *bytes;
} t_strings;

static void t_strings_init(t_strings *s, const uint8_t *blk, uint64_t n)
{
    const uint8_t *p = blk;
    uint64_t i;
    for (i = 0; i < n; i++) (void)rdv(&p);
    s->lens = blk;
    s->bytes = p;
}

static int t_bytes_cmp(const uint8_t *a, uint64_t na, const uint8_t *b, uint64_t nb)
{
    int c = memcmp(a, b, na < nb ? (size_t)na : (size_t)nb);
    return c ? c : (na < nb ? -1 : na > nb);
}

static uint32_t t_murmur(const uint8_t *p, size_t n);

/* Whether two of the n strings of a checked block are equal, with no allocation: passes over
 * the strings, each pass inserting those whose hash falls in its share into an open-addressing
 * table of string offsets on the stack (load <= 1/2). O(n * total bytes / 2048). */
enum { T_DUP_SLOTS = 4096 };
static int t_has_duplicate(const uint8_t *blk, uint64_t n)
{
    uint32_t table[T_DUP_SLOTS]; /* offset + 1 of the string in its bytes; 0 empty */
    uint32_t lens[T_DUP_SLOTS];
    uint64_t passes = n / (T_DUP_SLOTS / 2) + 1, pass, i;
    t_strings s;
    t_strings_init(&s, blk, n);
    for (pass = 0; pass < passes; pass++) {
        const uint8_t *lp = s.lens;
        uint64_t pos = 0;
        memset(table, 0, sizeof table);
        for (i = 0; i < n; i++) {
            uint64_t l = rdv(&lp);
            uint32_t h = t_murmur(s.bytes + pos, (size_t)l), slot;
            if (h % passes == pass) {
                for (slot = (h / (uint32_t)passes) % T_DUP_SLOTS; table[slot];
                     slot = (slot + 1) % T_DUP_SLOTS) {
                    const uint8_t *o = s.bytes + table[slot] - 1;
                    if (lens[slot] == l && memcmp(o, s.bytes + pos, (size_t)l) == 0) return 1;
                }
                table[slot] = (uint32_t)pos + 1;
                lens[slot] = (uint32_t)l;
            }
            pos += l;
        }
    }
    return 0;
}

/* _decode_vocabulary, the block at section byte `start`. */
static esb_status t_check_vocab(esb_model *m, const uint8_t *b, uint64_t len, uint32_t off,
                                uint64_t start, text_cfg *c)
{
    char err[120];
    uint32_t n = ld_u32(b + start), n_feat = c->n_feat;
    int normed = c->norm != 0 || c->tnorm != 0;
    const uint8_t *blk = b + start + 4, *p;
    uint64_t blen = len - start - 4, head, col, i;
    if (n > n_feat || (normed && n != n_feat)) {
        char rule[80];
        if (normed)
            snprintf(rule, sizeof rule, "exactly n_features=%" PRIu32 " (a norm reads every "
                     "column)", n_feat);
        else
            snprintf(rule, sizeof rule, "at most n_features=%" PRIu32, n_feat);
        BAD("section 'text' at offset %" PRIu32 ": %" PRIu32 " vocabulary terms at offset %"
            PRIu64 ", expected %s", off, n, (uint64_t)off + start, rule);
    }
    head = t_heads_end(blk, blen, n);
    if (head > blen)
        BAD("section 'text' at offset %" PRIu32 ": the vocabulary holds fewer than %" PRIu32
            " columns", off, n);
    if (varint_check(blk, head, n, 5, err, sizeof err))
        BAD("section 'text' at offset %" PRIu32 ": vocabulary columns: %s", off, err);
    for (col = 0, p = blk, i = 0; i < n; i++) col += rdv(&p) + 1;
    if (n && col - 1 >= n_feat)
        BAD("section 'text' at offset %" PRIu32 ": a vocabulary column is not below "
            "n_features=%" PRIu32, off, n_feat);
    {
        esb_status st = t_check_strings(m, blk + head, blen - head, off,
                                        (uint64_t)off + start + 4 + head, n, "term");
        if (st != ESB_OK) return st;
    }
    if (t_has_duplicate(blk + head, n))
        BAD("section 'text' at offset %" PRIu32 ": a vocabulary term is repeated", off);
    c->n_terms = n;
    c->gaps = blk;
    c->terms = blk + head;
    return ESB_OK;
}

/* Parse a text section (checked or not: `check` says whether to verify it). */
static esb_status t_parse(esb_model *m, const uint8_t *b, uint64_t len, uint32_t off, int enc,
                          text_cfg *c, int check)
{
    char msg[160];
    uint64_t stop_end, expected, i;
    memset(c, 0, sizeof *c);
    if (len < T_FIXED)
        BAD("section 'text' at offset %" PRIu32 " is %" PRIu64 " bytes, expected 24 (the text "
            "stage's 24-byte fixed fields)", off, len);
    c->an = b[0], c->lo = b[1], c->hi = b[2], c->flags = b[3], c->acc = b[4], c->pat = b[5];
    c->norm = b[6], c->tnorm = b[7];
    c->n_feat = ld_u32(b + 8), c->n_stop = ld_u32(b + 12), c->n_idf = ld_u32(b + 16);
    c->stop_bytes = ld_u32(b + 20);
    c->vocab = enc == 1;
    if (check) {
        int bad = t_fixed_fault(b, msg, sizeof msg);
        if (!bad && c->n_feat != m->n_features) {
            snprintf(msg, sizeof msg, "n_features %" PRIu32 " at offset %" PRIu64 " differs from "
                     "the header's %" PRIu32, c->n_feat, (uint64_t)off + 8, m->n_features);
            bad = 1;
        }
        if (!bad) bad = t_count_fault(c, off, msg, sizeof msg);
        if (bad) BAD("section 'text' at offset %" PRIu32 ": %s", off, msg);
    }
    c->code_w = c->n_idf ? t_code_width(c->n_idf) : 0;
    stop_end = T_FIXED + (uint64_t)c->stop_bytes;
    expected = stop_end + 8ull * c->n_idf + (uint64_t)c->code_w * c->n_feat * (c->n_idf > 0);
    c->stop = b + T_FIXED;
    c->idf_vals = b + stop_end;
    c->idf_codes = b + stop_end + 8ull * c->n_idf;
    if (!check) { /* a checked blob: the terms block is found when needed (t_cfg) */
        if (c->vocab) {
            c->n_terms = ld_u32(b + expected);
            c->gaps = b + expected + 4;
        }
        return ESB_OK;
    }
    snprintf(msg, sizeof msg, "24 bytes, %" PRIu32 " of stop words, %" PRIu32 " idf values and %"
             PRIu32 " idf codes", c->stop_bytes, c->n_idf, c->n_idf ? c->n_feat : 0);
    if (c->vocab) {
        esb_status st;
        if (len < expected + 4)
            BAD("section 'text' at offset %" PRIu32 " is %" PRIu64 " bytes, expected %" PRIu64
                " (%s and a vocabulary's term count)", off, len, expected + 4, msg);
        st = t_check_vocab(m, b, len, off, expected, c);
        if (st != ESB_OK) return st;
    } else if (len != expected) {
        BAD("section 'text' at offset %" PRIu32 " is %" PRIu64 " bytes, expected %" PRIu64
            " (%s)", off, len, expected, msg);
    }
    if (c->n_stop) {
        esb_status st = t_check_strings(m, c->stop, c->stop_bytes, off, (uint64_t)off + T_FIXED,
                                        c->n_stop, "stop word");
        const uint8_t *lp = c->stop, *prev = NULL, *bytes;
        uint64_t prev_len = 0;
        t_strings s;
        if (st != ESB_OK) return st;
        t_strings_init(&s, c->stop, c->n_stop);
        for (bytes = s.bytes, i = 0; i < c->n_stop; i++) {
            uint64_t l = rdv(&lp);
            if (prev && t_bytes_cmp(prev, prev_len, bytes, l) >= 0)
                BAD("section 'text' at offset %" PRIu32 ": stop words are not sorted and "
                    "distinct", off);
            prev = bytes, prev_len = l, bytes += l;
        }
    }
    if (c->n_idf) {
        for (i = 0; i < c->n_idf; i++)
            if (!isfinite(ld_f64(c->idf_vals + 8 * i)))
                BAD("section 'text' at offset %" PRIu32 ": idf value %" PRIu64 " at offset %" PRIu64
                    " is not finite", off, i, (uint64_t)off + stop_end + 8 * i);
        for (i = 0; i < c->n_feat; i++) {
            uint32_t code = t_code(c->idf_codes, c->code_w, (uint32_t)i);
            if (code >= c->n_idf)
                BAD("section 'text' at offset %" PRIu32 ": idf code %" PRIu32 " at offset %"
                    PRIu64 " (column %" PRIu64 ") is not < %" PRIu32, off, code,
                    (uint64_t)off + stop_end + 8ull * c->n_idf + (uint64_t)c->code_w * i, i,
                    c->n_idf);
        }
    }
    /* TextFeaturizer's own rule (ir/text.py), raised while the reader builds it. */
    if (c->vocab && ((c->flags & T_ALT) || c->norm))
        BAD("unreadable (IRError: featurizer.vocabulary: a vocabulary's counts have no sign "
            "and no norm "
            "(alternate_sign=False, norm=None))");
    return ESB_OK;
}

/* Called by check_contents for a blob with a text section. */
static esb_status check_text(esb_model *m, const uint8_t *d)
{
    const esb_section_ref *s = &m->sec_[TEXT];
    text_cfg c;
    return t_parse(m, d + s->offset, s->length, s->offset, s->encoding, &c, 1);
}

/* ---------------------------------------------------------------------------------------- */
/* MurmurHash3 x86_32, seed 0 (scikit-learn's murmurhash3_32).                               */
/* ---------------------------------------------------------------------------------------- */
static uint32_t t_rotl(uint32_t x, unsigned r) { return x << r | x >> (32u - r); }

static uint32_t t_murmur(const uint8_t *p, size_t n)
{
    const uint32_t c1 = 0xCC9E2D51u, c2 = 0x1B873593u;
    uint32_t h = 0, k;
    size_t i, blocks = n / 4;
    for (i = 0; i < blocks; i++) {
        k = ld_u32(p + 4 * i) * c1;
        k = t_rotl(k, 15) * c2;
        h ^= k;
        h = t_rotl(h, 13) * 5u + 0xE6546B64u;
    }
    k = 0;
    switch (n & 3u) {
    case 3: k ^= (uint32_t)p[4 * blocks + 2] << 16; /* fall through */
    case 2: k ^= (uint32_t)p[4 * blocks + 1] << 8;  /* fall through */
    case 1:
        k ^= p[4 * blocks];
        k *= c1;
        k = t_rotl(k, 15) * c2;
        h ^= k;
    }
    h ^= (uint32_t)n;
    h ^= h >> 16;
    h *= 0x85EBCA6Bu;
    h ^= h >> 13;
    h *= 0xC2B2AE35u;
    h ^= h >> 16;
    return h;
}

/* ---------------------------------------------------------------------------------------- */
/* Unicode: the generated tables (esb_unicode.h).                                            */
/* ---------------------------------------------------------------------------------------- */
static int t_in_ranges(const uint32_t *r, uint32_t n, uint32_t cp)
{
    uint32_t lo = 0, hi = n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (cp < r[2 * mid]) hi = mid;
        else if (cp > r[2 * mid + 1]) lo = mid + 1;
        else return 1;
    }
    return 0;
}

static int t_is_word(uint32_t cp)
{
    if (cp < 0x80)
        return (cp >= '0' && cp <= '9') || (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') ||
               cp == '_';
    return t_in_ranges(U_WORD, ESB_U_WORD_N, cp);
}

static int t_is_space(uint32_t cp) { return t_in_ranges(U_SPACE, ESB_U_SPACE_N, cp); }

/* str.lower of one character with a one-character result. */
static uint32_t t_lower1(uint32_t cp)
{
    uint32_t lo = 0, hi = ESB_U_LOWER_N;
    if (cp < 0x80) return cp >= 'A' && cp <= 'Z' ? cp + 32 : cp;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        const uint32_t *r = U_LOWER + 4 * mid;
        if (cp < r[0]) hi = mid;
        else if (cp > r[1]) lo = mid + 1;
        else return (cp - r[0]) % r[2] ? cp : cp + r[3]; /* delta: two's complement */
    }
    return cp;
}

/* Final sigma (CPython's handle_capital_sigma): s[i] is U+03A3 in s[0..n). */
static uint32_t t_sigma(const uint32_t *s, size_t n, size_t i)
{
    size_t j = i;
    int final_sigma;
    while (j > 0 && t_in_ranges(U_IGNORABLE, ESB_U_IGNORABLE_N, s[j - 1])) j--;
    final_sigma = j > 0 && t_in_ranges(U_CASED, ESB_U_CASED_N, s[j - 1]);
    if (final_sigma && i + 1 < n) {
        for (j = i + 1; j < n && t_in_ranges(U_IGNORABLE, ESB_U_IGNORABLE_N, s[j]); j++) {}
        final_sigma = j == n || !t_in_ranges(U_CASED, ESB_U_CASED_N, s[j]);
    }
    return final_sigma ? 0x3C2 : 0x3C3;
}

/* The NFKD form of cp without combining characters: *out and its length; 0 length for a
 * character that is dropped; the character itself (out = NULL, length 1) when unchanged. */
static uint32_t t_decomp(uint32_t cp, const uint32_t **out, uint32_t hangul[3])
{
    uint32_t lo = 0, hi = ESB_U_DECOMP_N;
    *out = NULL;
    if (cp < 0xC0) {
        if (cp < 0xA0) return 1;
    }
    if (cp >= 0xAC00 && cp <= 0xD7A3) { /* Hangul syllable: L V (T) jamo */
        uint32_t s = cp - 0xAC00, t = s % 28;
        hangul[0] = 0x1100 + s / 588;
        hangul[1] = 0x1161 + (s % 588) / 28;
        hangul[2] = 0x11A7 + t;
        *out = hangul;
        return t ? 3 : 2;
    }
    if (t_in_ranges(U_STRIPPED, ESB_U_STRIPPED_N, cp)) return 0;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (cp < U_DECOMP_CP[mid]) hi = mid;
        else if (cp > U_DECOMP_CP[mid]) lo = mid + 1;
        else {
            *out = U_DECOMP_POOL + U_DECOMP_AT[mid];
            return (uint32_t)U_DECOMP_AT[mid + 1] - U_DECOMP_AT[mid];
        }
    }
    return 1;
}

/* ---------------------------------------------------------------------------------------- */
/* The featurizer                                                                            */
/* ---------------------------------------------------------------------------------------- */
/* Workspace, for a capacity of N code points and K = max_n - min_n + 1, T = K * (2N + 2)
 * terms: T doubles (values), T uint32 (terms, then the row's indices), T floats, 2 x N code
 * points, 2N token bounds, 4N + 160 bytes of term scratch. */
static uint64_t t_terms_cap(uint64_t cap_n, unsigned k) { return (uint64_t)k * (2 * cap_n + 2); }

static uint64_t t_ws_bytes(uint64_t cap_n, unsigned k)
{
    return 16 * t_terms_cap(cap_n, k) + 24 * cap_n + 160;
}

typedef struct t_ws {
    double *values;
    uint32_t *terms;
    float *fvalues;
    uint32_t *a, *b, *tok;
    uint8_t *scratch;
    uint64_t cap_n, cap_t;
} t_ws;

static int t_ws_init(t_ws *w, void *ws, size_t bytes, unsigned k)
{
    uint64_t cap_n;
    uint8_t *p = (uint8_t *)ws;
    if (bytes < t_ws_bytes(1, k)) return 0;
    cap_n = ((uint64_t)bytes - 160 - 32ull * k) / (32ull * k + 24);
    while (cap_n && t_ws_bytes(cap_n, k) > bytes) cap_n--;
    if (!cap_n) return 0;
    w->cap_n = cap_n;
    w->cap_t = t_terms_cap(cap_n, k);
    w->values = (double *)(void *)p;
    w->terms = (uint32_t *)(void *)(p + 8 * w->cap_t);
    w->fvalues = (float *)(void *)(p + 12 * w->cap_t);
    w->a = (uint32_t *)(void *)(p + 16 * w->cap_t);
    w->b = w->a + cap_n;
    w->tok = w->b + cap_n;
    w->scratch = (uint8_t *)(w->tok + 2 * cap_n);
    return 1;
}

static unsigned t_put_utf8(uint32_t cp, uint8_t *o)
{
    if (cp < 0x80) return o[0] = (uint8_t)cp, 1;
    if (cp < 0x800) return o[0] = (uint8_t)(0xC0 | cp >> 6), o[1] = (uint8_t)(0x80 | (cp & 63)), 2;
    if (cp < 0x10000) {
        o[0] = (uint8_t)(0xE0 | cp >> 12), o[1] = (uint8_t)(0x80 | (cp >> 6 & 63));
        o[2] = (uint8_t)(0x80 | (cp & 63));
        return 3;
    }
    o[0] = (uint8_t)(0xF0 | cp >> 18), o[1] = (uint8_t)(0x80 | (cp >> 12 & 63));
    o[2] = (uint8_t)(0x80 | (cp >> 6 & 63)), o[3] = (uint8_t)(0x80 | (cp & 63));
    return 4;
}

/* The UTF-8 of cps[0..n) into o; its length. */
static size_t t_encode(const uint32_t *cps, size_t n, uint8_t *o)
{
    size_t i, at = 0;
    for (i = 0; i < n; i++) at += t_put_utf8(cps[i], o + at);
    return at;
}

/* Decode, lowercase and strip accents: the preprocessed text in *out (w->a or w->b), its
 * length in *n. ESB_E_INPUT for invalid UTF-8, ESB_E_ARGUMENT past the workspace. */
static esb_status t_preprocess(const text_cfg *c, const uint8_t *doc, size_t len, t_ws *w,
                               uint32_t **out, size_t *n)
{
    uint32_t *src = w->a, *dst = w->b, hangul[3];
    size_t i = 0, k = 0, m;
    while (i < len) {
        unsigned l = utf8_seq(doc + i, len - i);
        uint32_t cp;
        if (!l) return ESB_E_INPUT;
        if (k == w->cap_n) return ESB_E_ARGUMENT;
        cp = doc[i];
        if (l == 2) cp = (cp & 0x1Fu) << 6 | (doc[i + 1] & 0x3Fu);
        if (l == 3) cp = (cp & 0x0Fu) << 12 | (doc[i + 1] & 0x3Fu) << 6 | (doc[i + 2] & 0x3Fu);
        if (l == 4)
            cp = (cp & 0x07u) << 18 | (doc[i + 1] & 0x3Fu) << 12 | (doc[i + 2] & 0x3Fu) << 6 |
                 (doc[i + 3] & 0x3Fu);
        src[k++] = cp;
        i += l;
    }
    if (c->flags & T_LOWER) {
        for (i = 0, m = 0; i < k; i++) {
            uint32_t cp = src[i];
            if (m + 2 > w->cap_n && (cp == 0x130 || m == w->cap_n)) return ESB_E_ARGUMENT;
            if (cp == 0x130) { /* str.lower: U+0130 -> "i" + U+0307 */
                dst[m++] = 'i';
                dst[m++] = 0x307;
            } else {
                dst[m++] = cp == 0x3A3 ? t_sigma(src, k, i) : t_lower1(cp);
            }
        }
        k = m;
        src = dst, dst = src == w->a ? w->b : w->a;
    }
    if (c->acc) {
        int ascii = c->acc == 1, all_ascii = 1;
        for (i = 0; i < k; i++) all_ascii &= src[i] < 0x80;
        if (!all_ascii) {
            for (i = 0, m = 0; i < k; i++) {
                const uint32_t *form;
                uint32_t fl = t_decomp(src[i], &form, hangul), j;
                for (j = 0; j < fl; j++) {
                    uint32_t cp = form ? form[j] : src[i];
                    if (ascii && cp >= 0x80) continue;
                    if (m == w->cap_n) return ESB_E_ARGUMENT;
                    dst[m++] = cp;
                }
            }
            k = m;
            src = dst;
        }
    }
    *out = src;
    *n = k;
    return ESB_OK;
}

/* The index entry in [lo, hi) whose bytes are t[0..n), or 0xFFFFFFFF. Entries: stop word i is
 * i, term j is n_stop + 1 + j (off_[n_stop] ends the stop words: no entry has that number). */
static uint32_t t_ix_find(const esb_text_index *ix, const uint8_t *t, size_t n, uint32_t lo,
                          uint32_t hi)
{
    uint32_t slot = t_murmur(t, n) % ix->n_slots_, e;
    while ((e = ix->slots_[slot]) != 0) {
        e--;
        if (e >= lo && e < hi && ix->off_[e + 1] - ix->off_[e] == n &&
            memcmp(ix->sec_ + ix->off_[e], t, n) == 0)
            return e;
        if (++slot == ix->n_slots_) slot = 0;
    }
    return 0xFFFFFFFFu;
}

/* The column of a term's UTF-8 (with its sign in bit 31), or 0xFFFFFFFF when a vocabulary
 * does not have it. */
static uint32_t t_column(const text_cfg *c, const uint8_t *t, size_t n)
{
    if (c->vocab && c->ix) {
        uint32_t first = c->n_stop + 1u, e = t_ix_find(c->ix, t, n, first, first + c->n_terms);
        return e == 0xFFFFFFFFu ? e : c->ix->col_[e - first];
    }
    if (c->vocab) {
        const uint8_t *gp = c->gaps, *lp = c->terms, *bytes;
        uint64_t col = 0, i;
        t_strings s;
        s.lens = c->terms;
        for (bytes = c->terms, i = 0; i < c->n_terms; i++) (void)rdv(&bytes);
        for (i = 0; i < c->n_terms; i++) {
            uint64_t l = rdv(&lp);
            col += rdv(&gp) + (i > 0);
            if (l == n && memcmp(bytes, t, n) == 0) return (uint32_t)col;
            bytes += l;
        }
        (void)s;
        return 0xFFFFFFFFu;
    }
    {
        uint32_t h = t_murmur(t, n);
        /* abs(h) % n_features as scikit-learn computes it, h = -2^31 included: 2^31 % n. */
        uint32_t mag = h & 0x80000000u ? (uint32_t)(0u - h) : h;
        uint32_t col = mag % c->n_feat;
        return col | ((c->flags & T_ALT) && (h & 0x80000000u) ? 0x80000000u : 0u);
    }
}

static int t_is_stop(const text_cfg *c, const uint8_t *t, size_t n)
{
    const uint8_t *lp = c->stop, *bytes = c->stop;
    uint32_t i;
    if (c->ix) return t_ix_find(c->ix, t, n, 0, c->n_stop) != 0xFFFFFFFFu;
    for (i = 0; i < c->n_stop; i++) (void)rdv(&bytes);
    for (i = 0; i < c->n_stop; i++) {
        uint64_t l = rdv(&lp);
        if (l == n && memcmp(bytes, t, n) == 0) return 1;
        bytes += l;
    }
    return 0;
}

/* Append a term's column (unless a vocabulary lacks it). */
static esb_status t_add(const text_cfg *c, t_ws *w, uint64_t *nt, const uint8_t *t, size_t n)
{
    uint32_t col = t_column(c, t, n);
    if (col == 0xFFFFFFFFu) return ESB_OK;
    if (*nt == w->cap_t) return ESB_E_ARGUMENT;
    w->terms[(*nt)++] = col;
    return ESB_OK;
}

static esb_status t_words(const text_cfg *c, t_ws *w, const uint32_t *s, size_t k, uint64_t *nt)
{
    size_t i = 0, n_tok = 0, min_len = (c->pat & 1u) ? 1 : 2, n, j;
    uint8_t *sc = w->scratch;
    while (i < k) {
        size_t start;
        if (!t_is_word(s[i])) {
            i++;
            continue;
        }
        for (start = i; i < k && t_is_word(s[i]); i++) {}
        if (i - start < min_len) continue;
        if (c->n_stop && t_is_stop(c, sc, t_encode(s + start, i - start, sc))) continue;
        w->tok[2 * n_tok] = (uint32_t)start;
        w->tok[2 * n_tok + 1] = (uint32_t)(i - start);
        n_tok++;
    }
    for (n = c->lo; n <= c->hi && n <= n_tok; n++) {
        for (i = 0; i + n <= n_tok; i++) {
            size_t at = 0;
            esb_status st;
            for (j = 0; j < n; j++) {
                if (j) sc[at++] = ' ';
                at += t_encode(s + w->tok[2 * (i + j)], w->tok[2 * (i + j) + 1], sc + at);
            }
            st = t_add(c, w, nt, sc, at);
            if (st != ESB_OK) return st;
        }
    }
    return ESB_OK;
}

/* Collapse runs of 2+ whitespace characters to one space, in place; the new length. */
static size_t t_collapse(uint32_t *s, size_t k)
{
    size_t i = 0, m = 0;
    while (i < k) {
        if (t_is_space(s[i]) && i + 1 < k && t_is_space(s[i + 1])) {
            while (i < k && t_is_space(s[i])) i++;
            s[m++] = ' ';
        } else {
            s[m++] = s[i++];
        }
    }
    return m;
}

static esb_status t_chars(const text_cfg *c, t_ws *w, uint32_t *s, size_t k, uint64_t *nt)
{
    size_t n, i;
    k = t_collapse(s, k);
    for (n = c->lo; n <= c->hi && n <= k; n++)
        for (i = 0; i + n <= k; i++) {
            esb_status st = t_add(c, w, nt, w->scratch, t_encode(s + i, n, w->scratch));
            if (st != ESB_OK) return st;
        }
    return ESB_OK;
}

/* One n-gram of the padded word " s[0..k) ": its positions [from, from + n) in the padding. */
static size_t t_padded(const uint32_t *s, size_t k, size_t from, size_t n, uint8_t *o)
{
    size_t at = 0, p;
    for (p = from; p < from + n && p < k + 2; p++)
        at += (p == 0 || p == k + 1) ? (o[at] = ' ', 1u) : t_put_utf8(s[p - 1], o + at);
    return at;
}

static esb_status t_chars_wb(const text_cfg *c, t_ws *w, uint32_t *s, size_t k, uint64_t *nt)
{
    size_t i = 0, n, start;
    k = t_collapse(s, k);
    while (i < k) {
        size_t wl, pl;
        if (t_is_space(s[i])) {
            i++;
            continue;
        }
        for (start = i; i < k && !t_is_space(s[i]); i++) {}
        wl = i - start, pl = wl + 2;
        for (n = c->lo; n <= c->hi; n++) {
            size_t off = 0;
            esb_status st = t_add(c, w, nt, w->scratch, t_padded(s + start, wl, 0, n, w->scratch));
            if (st != ESB_OK) return st;
            while (off + n < pl) {
                off++;
                st = t_add(c, w, nt, w->scratch, t_padded(s + start, wl, off, n, w->scratch));
                if (st != ESB_OK) return st;
            }
            if (off == 0) break; /* a padded word shorter than n: larger n are skipped */
        }
    }
    return ESB_OK;
}

/* Heapsort of the terms by column (bit 31, the sign, ignored): no recursion, no memory. */
static void t_sift(uint32_t *a, size_t root, size_t n)
{
    for (;;) {
        size_t child = 2 * root + 1;
        uint32_t tmp;
        if (child >= n) return;
        if (child + 1 < n && (a[child + 1] & 0x7FFFFFFFu) > (a[child] & 0x7FFFFFFFu)) child++;
        if ((a[root] & 0x7FFFFFFFu) >= (a[child] & 0x7FFFFFFFu)) return;
        tmp = a[root], a[root] = a[child], a[child] = tmp;
        root = child;
    }
}

static void t_sort(uint32_t *a, size_t n)
{
    size_t i;
    uint32_t tmp;
    for (i = n / 2; i-- > 0;) t_sift(a, i, n);
    for (i = n; i-- > 1;) {
        tmp = a[0], a[0] = a[i], a[i] = tmp;
        t_sift(a, 0, i);
    }
}

static void t_normalize(double *v, size_t n, unsigned norm)
{
    double sum = 0.0;
    size_t i;
    if (!norm) return;
    for (i = 0; i < n; i++) sum += norm == 1 ? fabs(v[i]) : v[i] * v[i];
    if (norm == 2) sum = sqrt(sum);
    if (sum == 0.0) return;
    for (i = 0; i < n; i++) v[i] /= sum;
}

/* The checked section's fields; with walk, also where a vocabulary's terms start (O(V): the
 * gaps before them are varints). */
static const text_cfg *t_cfg(const esb_model *m, text_cfg *c, int walk)
{
    const esb_section_ref *s;
    if (!m || !m->buf_ || !m->sec_[TEXT].present) return NULL;
    s = &m->sec_[TEXT];
    t_parse((esb_model *)(uintptr_t)m, m->buf_ + s->offset, s->length, s->offset, s->encoding,
            c, 0);
    if (walk && c->vocab) {
        const uint8_t *p = c->gaps;
        uint32_t i;
        for (i = 0; i < c->n_terms; i++) (void)rdv(&p);
        c->terms = p;
    }
    return c;
}

int esb_has_text(const esb_model *m)
{
    return m && m->buf_ && m->sec_[TEXT].present;
}

size_t esb_text_workspace_size(const esb_model *m, size_t max_doc_bytes)
{
    text_cfg c;
    uint64_t cap_n, bytes;
    if (!t_cfg(m, &c, 0)) return 0;
    cap_n = (uint64_t)max_doc_bytes * (c.acc ? ESB_TEXT_EXPAND : 1u) + 1;
    bytes = t_ws_bytes(cap_n, c.hi - c.lo + 1u);
    return bytes > (uint64_t)SIZE_MAX ? SIZE_MAX : (size_t)bytes;
}

/* ---------------------------------------------------------------------------------------- */
/* The text index (esb.h): terms and stop words by MurmurHash3, open addressing.             */
/* ---------------------------------------------------------------------------------------- */
static uint64_t t_ix_bytes(const text_cfg *c)
{
    uint64_t e = (uint64_t)c->n_terms + c->n_stop;
    return 4 * (3 * e + c->n_terms + 3);
}

size_t esb_text_index_size(const esb_model *m)
{
    text_cfg c;
    uint64_t bytes;
    if (!t_cfg(m, &c, 0)) return 0;
    bytes = t_ix_bytes(&c);
    return bytes > (uint64_t)SIZE_MAX ? SIZE_MAX : (size_t)bytes;
}

/* Offsets (from the section start sec) of n strings of a checked block into off[0..n]. */
static void t_ix_offsets(const uint8_t *sec, const uint8_t *blk, uint32_t n, uint32_t *off)
{
    t_strings s;
    const uint8_t *lp = blk;
    uint32_t pos, i;
    t_strings_init(&s, blk, n);
    pos = (uint32_t)(s.bytes - sec);
    for (i = 0; i < n; i++) {
        off[i] = pos;
        pos += (uint32_t)rdv(&lp);
    }
    off[n] = pos;
}

esb_status esb_text_index_build(const esb_model *m, uint32_t *buf, size_t bytes,
                                esb_text_index *ix)
{
    text_cfg c;
    const uint8_t *sec, *gp;
    uint32_t n_slots, n_ent, e, *off, *col, slot, at;
    if (!m || !buf || !ix) return ESB_E_ARGUMENT;
    if (!t_cfg(m, &c, 1)) return ESB_E_HEAD;
    /* 2 E + 1 slots fit a uint32 whenever the buffer can exist (a section is < 4 GiB). */
    if ((uintptr_t)buf % 4 != 0 || (uint64_t)bytes < t_ix_bytes(&c) ||
        2ull * ((uint64_t)c.n_terms + c.n_stop) + 1 > 0xFFFFFFFFull)
        return ESB_E_ARGUMENT;
    sec = m->buf_ + m->sec_[TEXT].offset;
    n_ent = c.n_stop + 1 + c.n_terms; /* entry n_stop is no string: the stop words' end */
    n_slots = 2 * (c.n_terms + c.n_stop) + 1;
    off = buf + n_slots;
    col = off + n_ent + 1;
    memset(buf, 0, 4 * (size_t)n_slots);
    t_ix_offsets(sec, c.stop, c.n_stop, off);
    if (c.vocab) t_ix_offsets(sec, c.terms, c.n_terms, off + c.n_stop + 1);
    else off[c.n_stop + 1] = off[c.n_stop];
    for (gp = c.gaps, at = 0, e = 0; e < c.n_terms; e++) {
        at += (uint32_t)rdv(&gp) + (e > 0);
        col[e] = at;
    }
    for (e = 0; e < n_ent; e++) {
        if (e == c.n_stop) continue;
        slot = t_murmur(sec + off[e], off[e + 1] - off[e]) % n_slots;
        while (buf[slot]) slot = slot + 1 == n_slots ? 0 : slot + 1;
        buf[slot] = e + 1;
    }
    ix->sec_ = sec;
    ix->slots_ = buf;
    ix->off_ = off;
    ix->col_ = col;
    ix->n_slots_ = n_slots;
    ix->n_terms_ = c.n_terms;
    ix->n_stop_ = c.n_stop;
    return ESB_OK;
}

/* The section's fields for a featurizing call: with an index (checked to be this blob's), no
 * walk; without, where the terms start. 0 when ix is another blob's. */
static int t_cfg_ix(const esb_model *m, const esb_text_index *ix, text_cfg *c)
{
    (void)t_cfg(m, c, ix == NULL);
    if (!ix) return 1;
    if (ix->sec_ != m->buf_ + m->sec_[TEXT].offset || ix->n_terms_ != c->n_terms ||
        ix->n_stop_ != c->n_stop || !ix->slots_ || !ix->n_slots_)
        return 0;
    c->ix = ix;
    return 1;
}

esb_status esb_text_features_ix(const esb_model *m, const esb_text_index *ix, const char *doc,
                                size_t len, void *ws, size_t ws_bytes, uint32_t *nnz,
                                const int32_t **indices, const double **values)
{
    text_cfg c;
    t_ws w;
    uint32_t *s;
    size_t k, i, out;
    uint64_t nt = 0;
    esb_status st;
    if (!m || (!doc && len) || !ws || !nnz || !indices || !values) return ESB_E_ARGUMENT;
    if (!esb_has_text(m)) return ESB_E_HEAD;
    if (!t_cfg_ix(m, ix, &c)) return ESB_E_ARGUMENT;
    if (!t_ws_init(&w, ws, ws_bytes, c.hi - c.lo + 1u)) return ESB_E_ARGUMENT;
    st = t_preprocess(&c, (const uint8_t *)doc, len, &w, &s, &k);
    if (st != ESB_OK) return st;
    st = c.an == 0 ? t_words(&c, &w, s, k, &nt) : c.an == 1 ? t_chars(&c, &w, s, k, &nt)
                                                          : t_chars_wb(&c, &w, s, k, &nt);
    if (st != ESB_OK) return st;
    t_sort(w.terms, (size_t)nt);
    for (i = 0, out = 0; i < nt;) { /* sum the +1 / -1 of each column */
        uint32_t col = w.terms[i] & 0x7FFFFFFFu;
        double v = 0.0;
        for (; i < nt && (w.terms[i] & 0x7FFFFFFFu) == col; i++)
            v += w.terms[i] & 0x80000000u ? -1.0 : 1.0;
        w.terms[out] = col;
        w.values[out++] = (c.flags & T_BINARY) ? 1.0 : v;
    }
    t_normalize(w.values, out, c.norm);
    if (c.flags & T_TFIDF) {
        for (i = 0; i < out; i++) {
            if (c.flags & T_SUBLINEAR) w.values[i] = log(w.values[i]) + 1.0;
            if (c.n_idf)
                w.values[i] *= ld_f64(c.idf_vals + 8u * t_code(c.idf_codes, c.code_w, w.terms[i]));
        }
        t_normalize(w.values, out, c.tnorm);
    }
    for (i = 0, k = 0; i < out; i++) /* an explicit zero changes no score: dropped */
        if (w.values[i] != 0.0) w.terms[k] = w.terms[i], w.values[k++] = w.values[i];
    *nnz = (uint32_t)k;
    *indices = (const int32_t *)(const void *)w.terms;
    *values = w.values;
    return ESB_OK;
}

esb_status esb_text_features(const esb_model *m, const char *doc, size_t len, void *ws,
                             size_t ws_bytes, uint32_t *nnz, const int32_t **indices,
                             const double **values)
{
    return esb_text_features_ix(m, NULL, doc, len, ws, ws_bytes, nnz, indices, values);
}

/* Featurize, then the CSR call `what` (0 decision, 1 predict, 2 proba) on the float row
 * (the workspace's float area). */
static esb_status t_run(const esb_model *m, const esb_text_index *ix, const char *doc,
                        size_t len, void *ws, size_t bytes, int what, void *out)
{
    uint32_t nnz, i;
    const int32_t *idx;
    const double *val;
    text_cfg c;
    t_ws w;
    esb_status st = esb_text_features_ix(m, ix, doc, len, ws, bytes, &nnz, &idx, &val);
    if (st != ESB_OK) return st;
    (void)t_cfg(m, &c, 0);
    (void)t_ws_init(&w, ws, bytes, c.hi - c.lo + 1u);
    for (i = 0; i < nnz; i++) w.fvalues[i] = (float)val[i];
    if (what == 0) return esb_decision_csr(m, nnz, idx, w.fvalues, (float *)out);
    if (what == 1) return esb_predict_csr(m, nnz, idx, w.fvalues, (uint32_t *)out);
    return esb_predict_proba_csr(m, nnz, idx, w.fvalues, (float *)out);
}

esb_status esb_decision_text_ix(const esb_model *m, const esb_text_index *ix, const char *doc,
                                size_t len, void *ws, size_t ws_bytes, float *scores)
{
    return t_run(m, ix, doc, len, ws, ws_bytes, 0, scores);
}

esb_status esb_predict_text_ix(const esb_model *m, const esb_text_index *ix, const char *doc,
                               size_t len, void *ws, size_t ws_bytes, uint32_t *class_index)
{
    return t_run(m, ix, doc, len, ws, ws_bytes, 1, class_index);
}

esb_status esb_predict_proba_text_ix(const esb_model *m, const esb_text_index *ix,
                                     const char *doc, size_t len, void *ws, size_t ws_bytes,
                                     float *proba)
{
    return t_run(m, ix, doc, len, ws, ws_bytes, 2, proba);
}

esb_status esb_decision_text(const esb_model *m, const char *doc, size_t len, void *ws,
                             size_t ws_bytes, float *scores)
{
    return t_run(m, NULL, doc, len, ws, ws_bytes, 0, scores);
}

esb_status esb_predict_text(const esb_model *m, const char *doc, size_t len, void *ws,
                            size_t ws_bytes, uint32_t *class_index)
{
    return t_run(m, NULL, doc, len, ws, ws_bytes, 1, class_index);
}

esb_status esb_predict_proba_text(const esb_model *m, const char *doc, size_t len, void *ws,
                                  size_t ws_bytes, float *proba)
{
    return t_run(m, NULL, doc, len, ws, ws_bytes, 2, proba);
}
#endif /* ESB_NO_TEXT */
