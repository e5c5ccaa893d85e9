/*
 * esb.c - C99 runtime for edgesparse `.esb` linear models (k-NN recommenders: esb_knn.c,
 * matrix-factorization recommenders: esb_factors.c, both included at the end of this file). See esb.h for the API, the memory
 * modes and the numeric bound; docs/FORMAT.md for the format. The verifier mirrors the Python
 * reader check by check and in the same order (edgesparse/formats/: container.py for the header
 * and section table, codecs.py, linear.py, linear_pattern.py and linear_values.py for the
 * version-1 payload), so both reject the same blobs (tests/test_c_runtime.py compares them on
 * mutated blobs).
 */
#include "esb.h"

#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if FLT_RADIX != 2 || FLT_MANT_DIG != 24 || DBL_MANT_DIG != 53
#error "esb.c needs IEEE 754 float and double"
#endif

enum { ROWS = 1, COLUMNS, INDICES, VALUES, SCALES, BIAS, CLASSES, PROVENANCE, EXPONENTS };
enum { N_KINDS = EXPONENTS };
/* Section kind 10 holds a text input stage (formats/linear_text.py): esb_text.c. */
enum { TEXT = N_KINDS + 1 };
enum { TABULAR = TEXT + 1 }; /* kind 11: a tabular input stage (formats/linear_tabular.py): esb_tabular.c */
enum { ENC_RAW = 0, ENC_VARINT = 1, ENC_BITMAP = 2, ENC_EF = 3 };

static const char *const SEC_NAMES[TABULAR + 1] = {
    "?", "rows", "columns", "indices", "values", "scales", "bias", "classes", "provenance",
    "exponents", "text", "tabular"};
/* Allowed encodings per kind, as bit masks (docs/FORMAT.md, "Sections"). */
static const unsigned SEC_ENCODINGS[TABULAR + 1] = {0, 0x2, 0xE, 0xF, 0x3, 0x1, 0x3, 0x7, 0x1,
                                                     0x3, 0x3, 0x1};
enum { ENC_MIXED = 1 }; /* values: int8 rows and a few int16 ("wide") rows */
/* Column exponents (ir.EXPONENT_RANGE): 2^e is a normal float for each. */
#define EXP_MIN (-126)
#define EXP_MAX 127
static const char *const HEAD_NAMES[5] = {"identity", "hard", "logistic", "softmax",
                                          "modified_huber"};
static const char *const DTYPE_NAMES[3] = {"float64", "float32", "int8"};
static const unsigned char MAGIC[8] = {0x89, 'E', 'S', 'B', '\r', '\n', 0x1A, '\n'};

#define HEADER_SIZE 64u
#define ENTRY_SIZE 16u

/* ---------------------------------------------------------------------------------------- */
/* Byte-wise little-endian loads: no alignment needed, any host byte order.                */
/* ---------------------------------------------------------------------------------------- */
static uint32_t ld_u16(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8; }
/* A little-endian i16, byte by byte (no unaligned load, no implementation-defined cast). */
static int32_t ld_i16(const uint8_t *p) { return (int32_t)ld_u16(p) - (p[1] & 0x80 ? 65536 : 0); }
static uint32_t ld_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t ld_u64(const uint8_t *p) { return ld_u32(p) | (uint64_t)ld_u32(p + 4) << 32; }
static float ld_f32(const uint8_t *p)
{
    uint32_t u = ld_u32(p);
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static double ld_f64(const uint8_t *p)
{
    uint64_t u = ld_u64(p);
    double d;
    memcpy(&d, &u, 8);
    return d;
}
/* Finiteness by bit pattern: immune to -ffast-math and needs no libm. */
static int finite_f32(uint32_t bits) { return (bits & 0x7F800000u) != 0x7F800000u; }
static int finite_f64(uint64_t bits) { return ((bits >> 52) & 0x7FF) != 0x7FF; }
static int finite_float(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return finite_f32(u);
}

static uint64_t align8(uint64_t x) { return (x + 7u) & ~(uint64_t)7u; }
static uint64_t ceil8(uint64_t bits) { return bits / 8u + (bits % 8u != 0); }

static unsigned popcount8(unsigned b)
{
    unsigned n = 0;
    for (; b; b &= b - 1u) n++;
    return n;
}

static unsigned popcount64(uint64_t x)
{
    x -= (x >> 1) & 0x5555555555555555u;
    x = (x & 0x3333333333333333u) + ((x >> 2) & 0x3333333333333333u);
    x = (x + (x >> 4)) & 0x0F0F0F0F0F0F0F0Fu;
    return (unsigned)((x * 0x0101010101010101u) >> 56);
}

static const uint32_t CRC_TABLE[256] = {
    0x00000000u, 0x77073096u, 0xee0e612cu, 0x990951bau, 0x076dc419u, 0x706af48fu,
    0xe963a535u, 0x9e6495a3u, 0x0edb8832u, 0x79dcb8a4u, 0xe0d5e91eu, 0x97d2d988u,
    0x09b64c2bu, 0x7eb17cbdu, 0xe7b82d07u, 0x90bf1d91u, 0x1db71064u, 0x6ab020f2u,
    0xf3b97148u, 0x84be41deu, 0x1adad47du, 0x6ddde4ebu, 0xf4d4b551u, 0x83d385c7u,
    0x136c9856u, 0x646ba8c0u, 0xfd62f97au, 0x8a65c9ecu, 0x14015c4fu, 0x63066cd9u,
    0xfa0f3d63u, 0x8d080df5u, 0x3b6e20c8u, 0x4c69105eu, 0xd56041e4u, 0xa2677172u,
    0x3c03e4d1u, 0x4b04d447u, 0xd20d85fdu, 0xa50ab56bu, 0x35b5a8fau, 0x42b2986cu,
    0xdbbbc9d6u, 0xacbcf940u, 0x32d86ce3u, 0x45df5c75u, 0xdcd60dcfu, 0xabd13d59u,
    0x26d930acu, 0x51de003au, 0xc8d75180u, 0xbfd06116u, 0x21b4f4b5u, 0x56b3c423u,
    0xcfba9599u, 0xb8bda50fu, 0x2802b89eu, 0x5f058808u, 0xc60cd9b2u, 0xb10be924u,
    0x2f6f7c87u, 0x58684c11u, 0xc1611dabu, 0xb6662d3du, 0x76dc4190u, 0x01db7106u,
    0x98d220bcu, 0xefd5102au, 0x71b18589u, 0x06b6b51fu, 0x9fbfe4a5u, 0xe8b8d433u,
    0x7807c9a2u, 0x0f00f934u, 0x9609a88eu, 0xe10e9818u, 0x7f6a0dbbu, 0x086d3d2du,
    0x91646c97u, 0xe6635c01u, 0x6b6b51f4u, 0x1c6c6162u, 0x856530d8u, 0xf262004eu,
    0x6c0695edu, 0x1b01a57bu, 0x8208f4c1u, 0xf50fc457u, 0x65b0d9c6u, 0x12b7e950u,
    0x8bbeb8eau, 0xfcb9887cu, 0x62dd1ddfu, 0x15da2d49u, 0x8cd37cf3u, 0xfbd44c65u,
    0x4db26158u, 0x3ab551ceu, 0xa3bc0074u, 0xd4bb30e2u, 0x4adfa541u, 0x3dd895d7u,
    0xa4d1c46du, 0xd3d6f4fbu, 0x4369e96au, 0x346ed9fcu, 0xad678846u, 0xda60b8d0u,
    0x44042d73u, 0x33031de5u, 0xaa0a4c5fu, 0xdd0d7cc9u, 0x5005713cu, 0x270241aau,
    0xbe0b1010u, 0xc90c2086u, 0x5768b525u, 0x206f85b3u, 0xb966d409u, 0xce61e49fu,
    0x5edef90eu, 0x29d9c998u, 0xb0d09822u, 0xc7d7a8b4u, 0x59b33d17u, 0x2eb40d81u,
    0xb7bd5c3bu, 0xc0ba6cadu, 0xedb88320u, 0x9abfb3b6u, 0x03b6e20cu, 0x74b1d29au,
    0xead54739u, 0x9dd277afu, 0x04db2615u, 0x73dc1683u, 0xe3630b12u, 0x94643b84u,
    0x0d6d6a3eu, 0x7a6a5aa8u, 0xe40ecf0bu, 0x9309ff9du, 0x0a00ae27u, 0x7d079eb1u,
    0xf00f9344u, 0x8708a3d2u, 0x1e01f268u, 0x6906c2feu, 0xf762575du, 0x806567cbu,
    0x196c3671u, 0x6e6b06e7u, 0xfed41b76u, 0x89d32be0u, 0x10da7a5au, 0x67dd4accu,
    0xf9b9df6fu, 0x8ebeeff9u, 0x17b7be43u, 0x60b08ed5u, 0xd6d6a3e8u, 0xa1d1937eu,
    0x38d8c2c4u, 0x4fdff252u, 0xd1bb67f1u, 0xa6bc5767u, 0x3fb506ddu, 0x48b2364bu,
    0xd80d2bdau, 0xaf0a1b4cu, 0x36034af6u, 0x41047a60u, 0xdf60efc3u, 0xa867df55u,
    0x316e8eefu, 0x4669be79u, 0xcb61b38cu, 0xbc66831au, 0x256fd2a0u, 0x5268e236u,
    0xcc0c7795u, 0xbb0b4703u, 0x220216b9u, 0x5505262fu, 0xc5ba3bbeu, 0xb2bd0b28u,
    0x2bb45a92u, 0x5cb36a04u, 0xc2d7ffa7u, 0xb5d0cf31u, 0x2cd99e8bu, 0x5bdeae1du,
    0x9b64c2b0u, 0xec63f226u, 0x756aa39cu, 0x026d930au, 0x9c0906a9u, 0xeb0e363fu,
    0x72076785u, 0x05005713u, 0x95bf4a82u, 0xe2b87a14u, 0x7bb12baeu, 0x0cb61b38u,
    0x92d28e9bu, 0xe5d5be0du, 0x7cdcefb7u, 0x0bdbdf21u, 0x86d3d2d4u, 0xf1d4e242u,
    0x68ddb3f8u, 0x1fda836eu, 0x81be16cdu, 0xf6b9265bu, 0x6fb077e1u, 0x18b74777u,
    0x88085ae6u, 0xff0f6a70u, 0x66063bcau, 0x11010b5cu, 0x8f659effu, 0xf862ae69u,
    0x616bffd3u, 0x166ccf45u, 0xa00ae278u, 0xd70dd2eeu, 0x4e048354u, 0x3903b3c2u,
    0xa7672661u, 0xd06016f7u, 0x4969474du, 0x3e6e77dbu, 0xaed16a4au, 0xd9d65adcu,
    0x40df0b66u, 0x37d83bf0u, 0xa9bcae53u, 0xdebb9ec5u, 0x47b2cf7fu, 0x30b5ffe9u,
    0xbdbdf21cu, 0xcabac28au, 0x53b39330u, 0x24b4a3a6u, 0xbad03605u, 0xcdd70693u,
    0x54de5729u, 0x23d967bfu, 0xb3667a2eu, 0xc4614ab8u, 0x5d681b02u, 0x2a6f2b94u,
    0xb40bbe37u, 0xc30c8ea1u, 0x5a05df1bu, 0x2d02ef8du,
};

static uint32_t crc32_update(uint32_t crc, const uint8_t *p, uint64_t n)
{
    crc = ~crc;
    while (n--) crc = CRC_TABLE[(crc ^ *p++) & 0xFFu] ^ (crc >> 8);
    return ~crc;
}

/* ---------------------------------------------------------------------------------------- */
/* Errors                                                                                    */
/* ---------------------------------------------------------------------------------------- */
const char *esb_strerror(esb_status code)
{
    switch (code) {
    case ESB_OK: return "ok";
    case ESB_E_ARGUMENT: return "invalid argument (NULL pointer or buffer too small)";
    case ESB_E_NOT_ESB: return "not an .esb file";
    case ESB_E_VERSION: return "unsupported .esb version";
    case ESB_E_CORRUPT: return "corrupt .esb";
    case ESB_E_CHECKSUM: return "corrupt .esb: checksum mismatch";
    case ESB_E_INPUT: return "invalid input row (NaN/Inf, CSR indices not strictly "
                             "increasing in [0, n_features), or a score overflows)";
    case ESB_E_HEAD: return "not available for this model's head";
    }
    return "unknown status";
}

static esb_status fail(esb_model *m, esb_status code, const char *fmt, ...)
{
    size_t at = 0;
    va_list ap;
    if (code == ESB_E_CORRUPT || code == ESB_E_CHECKSUM) {
        memcpy(m->message, "corrupt .esb: ", 14);
        at = 14;
    }
    va_start(ap, fmt);
    vsnprintf(m->message + at, sizeof m->message - at, fmt, ap);
    va_end(ap);
    return code;
}

#define BAD(...) return fail(m, ESB_E_CORRUPT, __VA_ARGS__)

/* Python's repr() of a double (shortest round-trip digits, Python's choice of notation), so
 * that messages read exactly like the reference decoder's. */
static void py_repr(double v, char *out, size_t n)
{
    char buf[40], digits[24];
    int prec, e, nd = 0, neg, k;
    size_t at = 0;
    const char *q;
    if (v != v) {
        snprintf(out, n, "nan");
        return;
    }
    if (v == HUGE_VAL || v == -HUGE_VAL) {
        snprintf(out, n, v < 0 ? "-inf" : "inf");
        return;
    }
    if (v == 0.0) {
        snprintf(out, n, signbit(v) ? "-0.0" : "0.0");
        return;
    }
    for (prec = 1; prec < 17; prec++) {
        snprintf(buf, sizeof buf, "%.*e", prec - 1, v);
        if (strtod(buf, NULL) == v) break;
    }
    snprintf(buf, sizeof buf, "%.*e", prec - 1, v);
    neg = buf[0] == '-';
    for (q = buf + neg; *q != 'e'; q++)
        if (*q != '.') digits[nd++] = *q;
    e = (int)strtol(q + 1, NULL, 10);
    while (nd > 1 && digits[nd - 1] == '0') nd--;
    digits[nd] = '\0';
#define PUT(c) (at + 1 < n ? (void)(out[at++] = (c)) : (void)0)
    if (neg) PUT('-');
    if (e < -4 || e >= 16) {
        PUT(digits[0]);
        if (nd > 1) PUT('.');
        for (k = 1; k < nd; k++) PUT(digits[k]);
        snprintf(buf, sizeof buf, "e%c%02d", e < 0 ? '-' : '+', e < 0 ? -e : e);
        for (q = buf; *q; q++) PUT(*q);
    } else if (e >= 0) {
        for (k = 0; k <= e; k++) PUT(k < nd ? digits[k] : '0');
        PUT('.');
        if (nd > e + 1)
            for (k = e + 1; k < nd; k++) PUT(digits[k]);
        else
            PUT('0');
    } else {
        PUT('0');
        PUT('.');
        for (k = 0; k < -e - 1; k++) PUT('0');
        for (k = 0; k < nd; k++) PUT(digits[k]);
    }
#undef PUT
    out[at] = '\0';
}

/* Python's repr() of a short bytes object (the magic). */
static void py_bytes_repr(const uint8_t *p, size_t len, char *out, size_t n)
{
    size_t i, at = 0;
    int dq = 0, sq = 0;
    char quote;
    for (i = 0; i < len; i++) {
        sq |= p[i] == '\'';
        dq |= p[i] == '"';
    }
    quote = sq && !dq ? '"' : '\'';
    at += (size_t)snprintf(out + at, n - at, "b%c", quote);
    for (i = 0; i < len && at < n; i++) {
        uint8_t c = p[i];
        if (c == '\\' || c == (uint8_t)quote) at += (size_t)snprintf(out + at, n - at, "\\%c", c);
        else if (c == '\t') at += (size_t)snprintf(out + at, n - at, "\\t");
        else if (c == '\n') at += (size_t)snprintf(out + at, n - at, "\\n");
        else if (c == '\r') at += (size_t)snprintf(out + at, n - at, "\\r");
        else if (c < 0x20 || c >= 0x7F) at += (size_t)snprintf(out + at, n - at, "\\x%02x", c);
        else at += (size_t)snprintf(out + at, n - at, "%c", c);
    }
    if (at < n) snprintf(out + at, n - at, "%c", quote);
}

/* ---------------------------------------------------------------------------------------- */
/* LEB128 varints                                                                            */
/* ---------------------------------------------------------------------------------------- */
/* The structure check of codecs.py's varint_decode: exactly `count` minimal varints of at
 * most `max_bytes` bytes filling `b`. Writes a description of the first problem to err. */
static int varint_check(const uint8_t *b, uint64_t len, uint64_t count, unsigned max_bytes,
                        char *err, size_t errsz)
{
    uint64_t i, ends = 0, start = 0, too_long = UINT64_MAX, not_min = UINT64_MAX;
    int overflow = 0;
    if (count == 0) {
        if (len) {
            snprintf(err, errsz, "holds data but expects 0 numbers");
            return 1;
        }
        return 0;
    }
    for (i = 0; i < len; i++) ends += b[i] < 0x80;
    if (ends != count) {
        snprintf(err, errsz, "holds %" PRIu64 " numbers, expected %" PRIu64, ends, count);
        return 1;
    }
    if (b[len - 1] >= 0x80) {
        snprintf(err, errsz, "ends in the middle of a number");
        return 1;
    }
    for (i = 0; i < len; i++) {
        if (b[i] >= 0x80) continue;
        {
            uint64_t n = i - start + 1;
            if (n > max_bytes && too_long == UINT64_MAX) too_long = start;
            if (n > 1 && b[i] == 0 && not_min == UINT64_MAX) not_min = start;
            if (max_bytes >= 10 && n == 10 && b[i] > 1) overflow = 1;
        }
        start = i + 1;
    }
    if (too_long != UINT64_MAX) {
        snprintf(err, errsz, "number at byte %" PRIu64 " is longer than %u bytes", too_long,
                 max_bytes);
        return 1;
    }
    if (not_min != UINT64_MAX) {
        snprintf(err, errsz, "number at byte %" PRIu64 " is not minimally encoded", not_min);
        return 1;
    }
    if (overflow) {
        snprintf(err, errsz, "a number overflows 64 bits");
        return 1;
    }
    return 0;
}

/* Read one varint of a checked section. */
static uint64_t rdv(const uint8_t **pp)
{
    const uint8_t *p = *pp;
    uint64_t v = 0;
    unsigned shift = 0;
    for (;;) {
        uint8_t b = *p++;
        v |= (uint64_t)(b & 0x7Fu) << shift;
        if (b < 0x80) break;
        shift += 7;
    }
    *pp = p;
    return v;
}

/* ---------------------------------------------------------------------------------------- */
/* Sorted sequences: varint gaps, bitmaps, Elias-Fano (iterators over checked data)         */
/* ---------------------------------------------------------------------------------------- */
static unsigned ef_low_bits(uint64_t n, uint64_t universe)
{
    /* max(0, floor(log2(universe // n))) */
    uint64_t q = universe / n;
    unsigned l = 0;
    while (q > 1) {
        q >>= 1;
        l++;
    }
    return l;
}

/* Position of the first set bit at or after `bit`; one must exist. */
static uint64_t next_bit(const uint8_t *p, uint64_t bit)
{
    uint64_t byte = bit >> 3;
    unsigned b = (unsigned)p[byte] >> (bit & 7u);
    if (!b) {
        bit = (byte + 1) * 8;
        for (byte++; !p[byte]; byte++) bit += 8;
        b = p[byte];
    }
    while (!(b & 1u)) {
        b >>= 1;
        bit++;
    }
    return bit;
}

static uint64_t read_bits(const uint8_t *p, uint64_t pos, unsigned nbits)
{
    uint64_t v = 0, byte = pos >> 3;
    unsigned got = 0, sh = (unsigned)(pos & 7u);
    while (got < nbits) {
        v |= (uint64_t)((unsigned)p[byte++] >> sh) << got;
        got += 8u - sh;
        sh = 0;
    }
    return nbits >= 64 ? v : v & (((uint64_t)1 << nbits) - 1u);
}

typedef struct seq {
    const uint8_t *p, *high;
    uint64_t bit, i, prev;
    unsigned low_bits;
    uint8_t enc;
} seq;

static void seq_init(seq *s, const uint8_t *p, uint8_t enc, uint64_t n, uint64_t universe)
{
    s->p = p;
    s->enc = enc;
    s->bit = s->i = s->prev = 0;
    s->low_bits = 0;
    s->high = p;
    if (enc == ENC_EF && n) {
        s->low_bits = ef_low_bits(n, universe);
        s->high = p + ceil8(n * s->low_bits);
    }
}

static uint64_t seq_next(seq *s)
{
    uint64_t v;
    if (s->enc == ENC_VARINT) {
        uint64_t g = rdv(&s->p);
        v = s->i ? s->prev + g + 1u : g;
    } else if (s->enc == ENC_BITMAP) {
        v = next_bit(s->p, s->bit);
        s->bit = v + 1;
    } else {
        uint64_t pos = next_bit(s->high, s->bit);
        s->bit = pos + 1;
        v = ((pos - s->i) << s->low_bits) | read_bits(s->p, s->i * s->low_bits, s->low_bits);
    }
    s->i++;
    s->prev = v;
    return v;
}

/* codecs.py's decode_sorted checks: n strictly increasing values in [0, universe). */
static esb_status check_sorted(esb_model *m, const uint8_t *b, uint64_t len, uint8_t enc,
                               uint64_t n, uint64_t universe, uint32_t off, const char *name,
                               const char *what)
{
    char err[120];
    uint64_t i;
    if (enc == ENC_VARINT) {
        const uint8_t *p = b;
        uint64_t x = 0;
        int outside = 0;
        if (varint_check(b, len, n, 5, err, sizeof err))
            BAD("section '%s' at offset %" PRIu32 ": %s (one gap per %s)", name, off, err, what);
        for (i = 0; i < n; i++) {
            uint64_t g = rdv(&p);
            if (g >= universe) outside = 1;
            x = i ? x + g + 1u : g;
        }
        if (outside || (n && x >= universe))
            BAD("section '%s' at offset %" PRIu32 ": a %s lies outside [0, %" PRIu64 ")", name,
                off, what, universe);
        return ESB_OK;
    }
    if (enc == ENC_BITMAP) {
        uint64_t n_bytes = ceil8(universe), ones = 0;
        if (len != n_bytes)
            BAD("section '%s' at offset %" PRIu32 " is %" PRIu64 " bytes, expected %" PRIu64
                " (a bitmap of %" PRIu64 " bits)", name, off, len, n_bytes, universe);
        if (universe % 8u && (b[len - 1] >> (universe % 8u)))
            BAD("section '%s' at offset %" PRIu32 ": padding bits after bit %" PRIu64
                " are not zero", name, off, universe);
        for (i = 0; i < len; i++) ones += popcount8(b[i]);
        if (ones != n)
            BAD("section '%s' at offset %" PRIu32 ": bitmap has %" PRIu64 " bits set, expected %"
                PRIu64 " (%ss)", name, off, ones, n, what);
        return ESB_OK;
    }
    /* Elias-Fano */
    {
        unsigned low_bits;
        uint64_t n_low, n_high_bits, n_bytes, ones = 0, last = 0, bad_pos = 0;
        const uint8_t *high;
        seq s;
        if (n == 0) {
            if (len)
                BAD("section '%s' at offset %" PRIu32 " is %" PRIu64 " bytes, expected 0 (no %ss)",
                    name, off, len, what);
            return ESB_OK;
        }
        low_bits = ef_low_bits(n, universe);
        n_low = ceil8(n * low_bits);
        n_high_bits = n + ((universe - 1u) >> low_bits) + 1u;
        n_bytes = n_low + ceil8(n_high_bits);
        if (len != n_bytes)
            BAD("section '%s' at offset %" PRIu32 " is %" PRIu64 " bytes, expected %" PRIu64
                " (Elias-Fano code of %" PRIu64 " %ss)", name, off, len, n_bytes, n, what);
        if (low_bits && (n * low_bits) % 8u && (b[n_low - 1] >> ((n * low_bits) % 8u)))
            BAD("section '%s' at offset %" PRIu32 ": padding bits of the low part are not zero",
                name, off);
        high = b + n_low;
        for (i = 0; i < len - n_low; i++) ones += popcount8(high[i]);
        if (ones != n)
            BAD("section '%s' at offset %" PRIu32 ": high part has %" PRIu64
                " bits set, expected %" PRIu64 " (%ss)", name, off, ones, n, what);
        if (n_high_bits % 8u && (high[len - n_low - 1] >> (n_high_bits % 8u)))
            BAD("section '%s' at offset %" PRIu32 ": padding bits of the high part are not zero",
                name, off);
        seq_init(&s, b, ENC_EF, n, universe);
        for (i = 0; i < n; i++) {
            uint64_t x = seq_next(&s);
            if (i && x <= last && !bad_pos) bad_pos = i;
            last = x;
        }
        if (last >= universe)
            BAD("section '%s' at offset %" PRIu32 ": a %s lies outside [0, %" PRIu64 ")", name,
                off, what, universe);
        if (bad_pos)
            BAD("section '%s' at offset %" PRIu32 ": %ss are not strictly increasing at position %"
                PRIu64, name, off, what, bad_pos);
        return ESB_OK;
    }
}

/* ---------------------------------------------------------------------------------------- */
/* UTF-8 and the provenance JSON (Python's strict utf-8 codec and json.loads)               */
/* ---------------------------------------------------------------------------------------- */
/* Length of the valid UTF-8 sequence at p (n bytes left), or 0. */
static unsigned utf8_seq(const uint8_t *p, uint64_t n)
{
    uint8_t c = p[0];
    unsigned len, k;
    uint8_t lo = 0x80, hi = 0xBF;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) len = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F; /* no surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else
        return 0;
    if (n < len) return 0;
    if (p[1] < lo || p[1] > hi) return 0;
    for (k = 2; k < len; k++)
        if (p[k] < 0x80 || p[k] > 0xBF) return 0;
    return len;
}

static int utf8_valid(const uint8_t *p, uint64_t n)
{
    uint64_t i = 0;
    while (i < n) {
        unsigned l = utf8_seq(p + i, n - i);
        if (!l) return 0;
        i += l;
    }
    return 1;
}

static uint64_t json_ws(const uint8_t *p, uint64_t n, uint64_t i)
{
    while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r')) i++;
    return i;
}

static int hexval(uint8_t c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static uint32_t hex4(const uint8_t *p)
{
    return (uint32_t)(hexval(p[0]) << 12 | hexval(p[1]) << 8 | hexval(p[2]) << 4 | hexval(p[3]));
}

/* A JSON string token at p[i] == '"' (UTF-8 already checked): index after it, or 0. */
static uint64_t json_string(const uint8_t *p, uint64_t n, uint64_t i)
{
    for (i++; i < n; i++) {
        uint8_t c = p[i];
        if (c == '"') return i + 1;
        if (c < 0x20) return 0; /* strict mode: no raw control characters */
        if (c != '\\') continue;
        if (i + 1 >= n) return 0;
        c = p[i + 1];
        if (c == 'u') {
            int k;
            if (i + 6 > n) return 0;
            for (k = 2; k < 6; k++)
                if (hexval(p[i + k]) < 0) return 0;
            i += 5;
        } else if (c == '"' || c == '\\' || c == '/' || c == 'b' || c == 'f' || c == 'n' ||
                   c == 'r' || c == 't') {
            i += 1;
        } else
            return 0;
    }
    return 0;
}

/* Next code point of a checked string token (escapes and surrogate pairs decoded as Python
 * does); UINT32_MAX at the closing quote. */
static uint32_t json_cp(const uint8_t *p, uint64_t *i)
{
    uint8_t c = p[*i];
    uint32_t u;
    unsigned len, k;
    if (c == '"') return UINT32_MAX;
    if (c == '\\') {
        uint8_t e = p[*i + 1];
        *i += 2;
        switch (e) {
        case 'b': return 8;
        case 'f': return 12;
        case 'n': return 10;
        case 'r': return 13;
        case 't': return 9;
        case 'u':
            u = hex4(p + *i);
            *i += 4;
            if (u >= 0xD800 && u <= 0xDBFF && p[*i] == '\\' && p[*i + 1] == 'u') {
                uint32_t u2 = hex4(p + *i + 2);
                if (u2 >= 0xDC00 && u2 <= 0xDFFF) {
                    u = 0x10000u + ((u - 0xD800u) << 10) + (u2 - 0xDC00u);
                    *i += 6;
                }
            }
            return u;
        default: return e; /* " \ / */
        }
    }
    if (c < 0x80) {
        *i += 1;
        return c;
    }
    len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
    u = c & (0x7Fu >> len);
    for (k = 1; k < len; k++) u = u << 6 | (p[*i + k] & 0x3Fu);
    *i += len;
    return u;
}

static int json_same_key(const uint8_t *p, uint64_t a, uint64_t b)
{
    a++, b++; /* past the quotes */
    for (;;) {
        uint32_t x = json_cp(p, &a), y = json_cp(p, &b);
        if (x != y) return 0;
        if (x == UINT32_MAX) return 1;
    }
}

/* codecs.py's MAX_PROVENANCE_KEYS: duplicate keys are found pairwise, so their number is capped
 * (about 10 in practice; 1024 keys take milliseconds). */
#define MAX_PROVENANCE_KEYS 1024u
static const char TOO_MANY_KEYS[] = "too many keys";

/* 0 when p[0..n) is one JSON object whose values are all strings, with no duplicate keys and
 * at most MAX_PROVENANCE_KEYS keys (else TOO_MANY_KEYS). */
static const char *json_check(const uint8_t *p, uint64_t n)
{
    uint64_t i = json_ws(p, n, 0), open, keys = 0;
    if (i >= n || p[i] != '{') return "not a JSON object";
    open = i;
    i = json_ws(p, n, i + 1);
    if (i < n && p[i] == '}') {
        i++;
    } else {
        for (;;) {
            uint64_t key = i, j, e, t;
            if (i >= n || p[i] != '"') return "expected a string key";
            i = json_string(p, n, i);
            if (!i) return "invalid string";
            if (keys == MAX_PROVENANCE_KEYS) return TOO_MANY_KEYS;
            /* duplicate keys: compare with every earlier key (O(keys^2), keys capped) */
            for (j = json_ws(p, n, open + 1), t = 0; t < keys; t++) {
                if (json_same_key(p, j, key)) return "duplicate key";
                e = json_ws(p, n, json_string(p, n, j)) + 1;     /* past ':' */
                e = json_ws(p, n, json_string(p, n, json_ws(p, n, e))) + 1; /* past ',' */
                j = json_ws(p, n, e);
            }
            keys++;
            i = json_ws(p, n, i);
            if (i >= n || p[i] != ':') return "expected ':'";
            i = json_ws(p, n, i + 1);
            if (i >= n || p[i] != '"') return "values must be strings";
            i = json_string(p, n, i);
            if (!i) return "invalid string";
            i = json_ws(p, n, i);
            if (i < n && p[i] == '}') {
                i++;
                break;
            }
            if (i >= n || p[i] != ',') return "expected ',' or '}'";
            i = json_ws(p, n, i + 1);
        }
    }
    if (json_ws(p, n, i) != n) return "extra data after the object";
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* esb_open: the verifier                                                                    */
/* ---------------------------------------------------------------------------------------- */
/* ---------------------------------------------------------------------------------------- */
/* Class labels of a checked 'classes' section, one after another (no allocation)            */
/* ---------------------------------------------------------------------------------------- */
/* linear.py's MAX_UNSORTED_CLASSES: more labels than this must be strictly increasing, so that
 * repeats are found in linear time; up to this many every pair is compared. */
#define MAX_UNSORTED_CLASSES 4096u

typedef struct {
    uint8_t enc;
    const uint8_t *next; /* int: next varint; float: next f64; string: next length varint */
    const uint8_t *data; /* string: the next label's bytes */
    int64_t i;
    double f;
    const uint8_t *s;
    uint64_t len;
} label_cursor;

static void labels_start(label_cursor *c, const uint8_t *b, uint8_t enc, uint32_t n)
{
    uint32_t found = 0;
    const uint8_t *p = b;
    c->enc = enc;
    c->next = b;
    c->data = b;
    if (enc == ESB_LABEL_STRING) {
        while (found < n) found += *p++ < 0x80; /* the checked section holds n lengths */
        c->data = p;
    }
}

static void labels_next(label_cursor *c)
{
    if (c->enc == ESB_LABEL_FLOAT) {
        c->f = ld_f64(c->next);
        c->next += 8;
    } else if (c->enc == ESB_LABEL_INT) {
        uint64_t z = rdv(&c->next);
        c->i = (int64_t)((z >> 1) ^ (0u - (z & 1u)));
    } else {
        c->len = rdv(&c->next);
        c->s = c->data;
        c->data += c->len;
    }
}

static int label_eq(const label_cursor *a, const label_cursor *b)
{
    if (a->enc == ESB_LABEL_FLOAT) return a->f == b->f;
    if (a->enc == ESB_LABEL_INT) return a->i == b->i;
    return a->len == b->len && (!a->len || memcmp(a->s, b->s, a->len) == 0);
}

/* a < b; UTF-8 byte order is code point order, as Python compares str. */
static int label_lt(const label_cursor *a, const label_cursor *b)
{
    if (a->enc == ESB_LABEL_FLOAT) return a->f < b->f;
    if (a->enc == ESB_LABEL_INT) return a->i < b->i;
    {
        uint64_t k = a->len < b->len ? a->len : b->len;
        int c = k ? memcmp(a->s, b->s, k) : 0;
        return c < 0 || (c == 0 && a->len < b->len);
    }
}

static esb_status check_header_and_table(esb_model *m, const uint8_t *d, size_t size);
static esb_status check_contents(esb_model *m, const uint8_t *d);
static esb_status check_exponents(esb_model *m, uint32_t off, const uint8_t *exps);
static float scale_of(const esb_model *m, uint32_t r);
static double bias_of(const esb_model *m, uint32_t r);

esb_status esb_open(const void *buf, size_t len, esb_model *m)
{
    esb_status st;
    if (!m) return ESB_E_ARGUMENT;
    memset(m, 0, sizeof *m);
    if (!buf && len) return fail(m, ESB_E_ARGUMENT, "esb_open: buf is NULL");
    st = check_header_and_table(m, (const uint8_t *)buf, len);
    if (st != ESB_OK) return st;
    /* The exponent checks walk the stored weights with the kernels' own decoder. */
    m->buf_ = (const unsigned char *)buf;
    m->size_ = len;
    st = check_contents(m, (const uint8_t *)buf);
    if (st != ESB_OK) {
        m->buf_ = NULL; /* the model must not be used */
        m->size_ = 0;
    }
    return st;
}

static esb_status check_header_and_table(esb_model *m, const uint8_t *d, size_t size)
{
    uint32_t version, header_size, n_sec, n_out, n_feat, n_cols, n_classes, file_crc, crc;
    uint32_t res32a, res32b, i;
    uint64_t nnz, file_size, table_end, expect, pad_from;
    uint8_t head, dtype, flags, res8;
    unsigned prev_kind = 0;
    size_t k;

    if (size == 0) return fail(m, ESB_E_NOT_ESB, "not an .esb file: the file is empty");
    if (memcmp(d, MAGIC, size < 8 ? size : 8) != 0) {
        char got[40], want[40];
        py_bytes_repr(d, size < 8 ? size : 8, got, sizeof got);
        py_bytes_repr(MAGIC, 8, want, sizeof want);
        return fail(m, ESB_E_NOT_ESB, "not an .esb file: bad magic %s at offset 0 (expected %s)",
                    got, want);
    }
    /* Version 2 is the k-NN recommender kind (docs/FORMAT.md), which this runtime does not
     * run; same words as formats/container.py. */
    if (size >= 10 && ld_u16(d + 8) == 2)
        return fail(m, ESB_E_VERSION,
                    "unsupported .esb version 2 at offset 8 (this reader supports version %d, "
                    "linear models; version 2 holds a k-NN recommender: load it with "
                    "edgesparse.load)",
                    ESB_FORMAT_VERSION);
    if (size >= 10 && (version = ld_u16(d + 8)) != ESB_FORMAT_VERSION)
        return fail(m, ESB_E_VERSION,
                    "unsupported .esb version %" PRIu32 " at offset 8 (this reader supports "
                    "version %d; was the file written by a newer edgesparse?)",
                    version, ESB_FORMAT_VERSION);
    if (size < HEADER_SIZE)
        BAD("truncated header at offset 0 (needs %u bytes, file has %zu)", HEADER_SIZE, size);
    header_size = ld_u16(d + 10);
    n_sec = ld_u32(d + 12);
    n_out = ld_u32(d + 16);
    n_feat = ld_u32(d + 20);
    nnz = ld_u64(d + 24);
    n_cols = ld_u32(d + 32);
    n_classes = ld_u32(d + 36);
    head = d[40];
    dtype = d[41];
    flags = d[42];
    res8 = d[43];
    res32a = ld_u32(d + 44);
    file_size = ld_u64(d + 48);
    res32b = ld_u32(d + 56);
    file_crc = ld_u32(d + 60);
    if (header_size != HEADER_SIZE)
        BAD("header size field at offset 10 is %" PRIu32 ", expected %u", header_size,
            HEADER_SIZE);
    if (n_sec < 4 || n_sec > TEXT)
        BAD("section count at offset 12 is %" PRIu32 ", expected 4 to %d", n_sec, TEXT);
    table_end = HEADER_SIZE + (uint64_t)ENTRY_SIZE * n_sec;
    if (size < table_end)
        BAD("truncated section table at offset %u (needs %" PRIu64 " bytes, %zu left)",
            HEADER_SIZE, table_end - HEADER_SIZE, size - HEADER_SIZE);
    crc = crc32_update(crc32_update(0, d, 60), d + HEADER_SIZE, table_end - HEADER_SIZE);
    if (crc != file_crc)
        return fail(m, ESB_E_CHECKSUM,
                    "header checksum mismatch at offset 60 (stored 0x%08" PRIx32
                    ", computed 0x%08" PRIx32 " over the header and section table)",
                    file_crc, crc);

    /* -- header fields -- */
    if (head >= 5) BAD("unknown head code %u at offset 40", head);
    if (dtype >= 3) BAD("unknown value dtype code %u at offset 41", dtype);
    if (flags & ~1u) BAD("unknown flag bits 0x%02x at offset 42", flags & ~1u);
    if (res8) BAD("reserved field at offset 43 is %u, expected 0", res8);
    if (res32a) BAD("reserved field at offset 44 is %" PRIu32 ", expected 0", res32a);
    if (res32b) BAD("reserved field at offset 56 is %" PRIu32 ", expected 0", res32b);
    if (n_out < 1) BAD("n_outputs at offset 16 is 0");
    if (n_feat < 1 || n_feat > 0x7FFFFFFFu)
        BAD("n_features at offset 20 is %" PRIu32 ", expected 1 to 2147483647", n_feat);
    if (n_cols > n_feat)
        BAD("n_columns at offset 32 is %" PRIu32 ", more than n_features=%" PRIu32, n_cols,
            n_feat);
    if (nnz > (uint64_t)n_out * n_cols)
        BAD("nnz at offset 24 is %" PRIu64 ", more than n_outputs x n_columns = %" PRIu64, nnz,
            (uint64_t)n_out * n_cols);
    if (head == ESB_HEAD_IDENTITY) {
        if (n_classes)
            BAD("n_classes at offset 36 is %" PRIu32 ", but a regressor has none", n_classes);
        if ((flags & 1u) && n_out != 1)
            BAD("flags at offset 42: squeeze (1-D output) needs 1 output row, not %" PRIu32,
                n_out);
    } else {
        uint32_t expected_rows = n_classes == 2 ? 1 : n_classes;
        if (!(flags & 1u))
            BAD("flags at offset 42: squeeze must be set for a classifier (head '%s')",
                HEAD_NAMES[head]);
        if (n_classes < 2 || n_out != expected_rows)
            BAD("n_classes at offset 36 is %" PRIu32 ", which does not fit n_outputs=%" PRIu32
                " for head '%s'", n_classes, n_out, HEAD_NAMES[head]);
    }

    /* -- section table -- */
    expect = align8(table_end);
    pad_from = table_end;
    for (i = 0; i < n_sec; i++) {
        uint64_t at = HEADER_SIZE + (uint64_t)ENTRY_SIZE * i;
        const uint8_t *e = d + at;
        unsigned kind = e[0], enc = e[1];
        uint32_t res = ld_u16(e + 2), off = ld_u32(e + 4), length = ld_u32(e + 8);
        const char *name;
        if (kind < 1 || kind > TABULAR)
            BAD("section table entry %" PRIu32 " at offset %" PRIu64
                ": unknown section kind %u (written by a newer edgesparse?)", i, at, kind);
        name = SEC_NAMES[kind];
        if (kind <= prev_kind)
            BAD("section table entry %" PRIu32 " at offset %" PRIu64
                ": section '%s' is repeated or out of order", i, at, name);
        prev_kind = kind;
        if (enc > 7 || !(SEC_ENCODINGS[kind] >> enc & 1u))
            BAD("section table entry %" PRIu32 " at offset %" PRIu64
                ": section '%s' has unknown encoding %u", i, at, name, enc);
        if (res)
            BAD("section table entry %" PRIu32 " at offset %" PRIu64
                ": reserved field is %" PRIu32 ", expected 0", i, at, res);
        if (off % 8u) BAD("section '%s' at offset %" PRIu32 " is not 8-byte aligned", name, off);
        if (off != expect)
            BAD("section '%s' at offset %" PRIu32 " should start at offset %" PRIu64
                " (sections are packed in table order, each 8-byte aligned)", name, off, expect);
        if ((uint64_t)off + length > size)
            BAD("section '%s' at offset %" PRIu32 " runs past the end of the file (needs %"
                PRIu32 " bytes, %" PRIu64 " left)", name, off, length,
                size > off ? (uint64_t)(size - off) : 0);
        for (k = (size_t)pad_from; k < off; k++)
            if (d[k]) BAD("nonzero padding before section '%s' at offset %" PRIu64, name, pad_from);
        m->sec_[kind].offset = off;
        m->sec_[kind].length = length;
        m->sec_[kind].encoding = (uint8_t)enc;
        m->sec_[kind].present = 1;
        pad_from = (uint64_t)off + length;
        expect = align8(pad_from);
    }
    if (pad_from < size)
        BAD("%" PRIu64 " trailing bytes after the last section (which ends at offset %" PRIu64
            ")", (uint64_t)size - pad_from, pad_from);
    if (file_size != size)
        BAD("file size field at offset 48 says %" PRIu64 " bytes, the file has %zu", file_size,
            size);
    {
        static const unsigned required[4] = {ROWS, INDICES, VALUES, BIAS};
        for (i = 0; i < 4; i++)
            if (!m->sec_[required[i]].present)
                BAD("required section '%s' is missing", SEC_NAMES[required[i]]);
    }
    if (m->sec_[SCALES].present != (dtype == ESB_VALUES_I8))
        BAD("section 'scales' must be present exactly when values are int8 (value dtype at "
            "offset 41 is %s, 'scales' is %s)", DTYPE_NAMES[dtype],
            m->sec_[SCALES].present ? "present" : "missing");
    if (m->sec_[CLASSES].present != (head != ESB_HEAD_IDENTITY))
        BAD("section 'classes' must be present exactly when the head is a classifier (head at "
            "offset 40 is '%s', 'classes' is %s)", HEAD_NAMES[head],
            m->sec_[CLASSES].present ? "present" : "missing");
    if (m->sec_[TEXT].present && m->sec_[TABULAR].present)
        BAD("sections 'text' and 'tabular' are both present; a model has one input stage");
    if (m->sec_[EXPONENTS].present && dtype != ESB_VALUES_I8)
        BAD("section 'exponents' is only allowed with int8 values (value dtype at offset 41 "
            "is %s)", DTYPE_NAMES[dtype]);
    if (!m->sec_[COLUMNS].present && n_cols != n_feat)
        BAD("n_columns at offset 32 is %" PRIu32 ", but without a 'columns' section it must "
            "equal n_features=%" PRIu32, n_cols, n_feat);
    for (i = 0; i < n_sec; i++) {
        const uint8_t *e = d + HEADER_SIZE + ENTRY_SIZE * i;
        uint32_t off = ld_u32(e + 4), length = ld_u32(e + 8), stored = ld_u32(e + 12);
        crc = crc32_update(0, d + off, length);
        if (crc != stored)
            return fail(m, ESB_E_CHECKSUM,
                        "checksum mismatch in section '%s' at offset %" PRIu32
                        " (stored 0x%08" PRIx32 ", computed 0x%08" PRIx32 ")",
                        SEC_NAMES[e[0]], off, stored, crc);
    }
    m->n_outputs = n_out;
    m->n_features = n_feat;
    m->n_columns = n_cols;
    m->n_classes = n_classes;
    /* nnz is set once 'values' has shown that it fits 32 bits (check_contents). */
    m->head = head;
    m->value_dtype = dtype;
    m->squeeze = flags & 1u;
    return ESB_OK;
}

/* Row r is stored with 16-bit values (values encoding 1, bit r of the wide-row bitmap). */
static int is_wide(const esb_model *m, uint32_t r)
{
    return m->mixed_ && (m->buf_[m->sec_[VALUES].offset + (r >> 3)] >> (r & 7u) & 1u);
}

/* The largest |q| of row r's values: 32767 in a wide row, 127 in every other. */
static double q_max(const esb_model *m, uint32_t r) { return is_wide(m, r) ? 32767.0 : 127.0; }

/* The stored values themselves: after the wide-row bitmap with values encoding 1. */
static const uint8_t *values_of(const esb_model *m)
{
    return m->buf_ + m->sec_[VALUES].offset + (m->mixed_ ? ceil8(m->n_outputs) : 0);
}

/* Bytes of each stored value of row r. */
static unsigned value_width(const esb_model *m, uint32_t r)
{
    static const unsigned itemsize[3] = {8, 4, 1};
    return itemsize[m->value_dtype] + (unsigned)is_wide(m, r);
}

/* linear_values.py's decode_mixed_values (values encoding 1): a bitmap of wide rows, then i8 (narrow
 * rows) or i16 LE (wide rows) values in CSR order. Same checks, order and messages. */
static esb_status check_mixed_values(esb_model *m, uint32_t off, uint64_t len, const uint8_t *b,
                                     uint64_t nnz)
{
    const uint32_t n_out = m->n_outputs;
    const uint64_t n_map = ceil8(n_out);
    const uint8_t *p = m->buf_ + m->sec_[ROWS].offset, *v;
    uint64_t nnz_wide = 0, pos = 0;
    uint32_t r, n_wide = 0;
    if (m->value_dtype != ESB_VALUES_I8)
        BAD("section 'values' at offset %" PRIu32 ": mixed int8/int16 widths need value dtype "
            "int8", off);
    if (len < n_map)
        BAD("section 'values' at offset %" PRIu32 ": is %" PRIu64 " bytes, shorter than its %"
            PRIu64 "-byte wide-row bitmap", off, len, n_map);
    if (n_out % 8u && b[n_map - 1] >> (n_out % 8u))
        BAD("section 'values' at offset %" PRIu32 ": wide-row bitmap has bits set past "
            "n_outputs=%" PRIu32, off, n_out);
    m->mixed_ = 1; /* is_wide reads the bitmap from now on */
    for (r = 0; r < n_out; r++) {
        uint64_t c = rdv(&p);
        if (is_wide(m, r)) {
            n_wide++;
            nnz_wide += c;
        }
    }
    if (!n_wide)
        BAD("section 'values' at offset %" PRIu32 ": mixed widths with no wide row (such a file "
            "uses encoding 0)", off);
    if (len != n_map + nnz + nnz_wide)
        BAD("section 'values' at offset %" PRIu32 " is %" PRIu64 " bytes, expected %" PRIu64
            " (%" PRIu64 "-byte wide-row bitmap, then nnz=%" PRIu64 " values of which %" PRIu64
            " are int16)", off, len, n_map + nnz + nnz_wide, n_map, nnz, nnz_wide);
    /* First the forbidden values (in CSR order), then the wide rows that fit int8. */
    for (v = b + n_map, p = m->buf_ + m->sec_[ROWS].offset, r = 0; r < n_out; r++) {
        uint64_t c = rdv(&p), k;
        const int wide = is_wide(m, r);
        for (k = 0; k < c; k++, pos++) {
            int32_t q = wide ? ld_i16(v + 2 * k) : (int8_t)v[k];
            if (q == 0 || q == (wide ? -32768 : -128))
                BAD("section 'values' at offset %" PRIu32 ": value %" PRId32 " at position %"
                    PRIu64 " is not allowed (stored values are never 0, -128 in an int8 row or "
                    "-32768 in an int16 row)", off, q, pos);
        }
        v += c * (wide ? 2u : 1u);
    }
    for (v = b + n_map, p = m->buf_ + m->sec_[ROWS].offset, r = 0; r < n_out; r++) {
        uint64_t c = rdv(&p), k;
        const int wide = is_wide(m, r);
        int fits = 1;
        for (k = 0; wide && k < c; k++) {
            int32_t q = ld_i16(v + 2 * k);
            if (q > 127 || q < -127) fits = 0;
        }
        if (wide && fits)
            BAD("section 'values' at offset %" PRIu32 ": row %" PRIu32 " is marked int16 but all "
                "its values fit int8", off, r);
        v += c * (wide ? 2u : 1u);
    }
    m->n_wide_ = n_wide;
    return ESB_OK;
}

/* The text input stage (section kind 10): its verifier and featurizer, in their own file. */
#include "esb_text.c"
/* The tabular input stage (section kind 11): its verifier, CSV splitter and featurizer. */
#include "esb_tabular.c"

static esb_status check_contents(esb_model *m, const uint8_t *d)
{
    const uint32_t n_out = m->n_outputs, n_cols = m->n_columns, n_feat = m->n_features;
    const uint64_t nnz = ld_u64(d + 24);
    char err[120];
    uint32_t off, r;
    uint64_t len, i, total = 0;
    const uint8_t *b, *p;
#define SEC(kind) (off = m->sec_[kind].offset, len = m->sec_[kind].length, b = d + off)

    /* -- rows -- */
    SEC(ROWS);
    if (varint_check(b, len, n_out, 5, err, sizeof err))
        BAD("section 'rows' at offset %" PRIu32 ": %s (one row length per output row)", off, err);
    for (p = b, r = 0; r < n_out; r++) {
        uint64_t c = rdv(&p);
        if (c > n_cols)
            BAD("section 'rows' at offset %" PRIu32 ": row %" PRIu32 " has %" PRIu64
                " entries, but there are only %" PRIu32 " columns", off, r, c, n_cols);
    }
    for (p = b, r = 0; r < n_out; r++) total += rdv(&p);
    if (total != nnz)
        BAD("section 'rows' at offset %" PRIu32 ": row lengths sum to %" PRIu64
            ", header nnz is %" PRIu64, off, total, nnz);

    /* -- columns -- */
    if (m->sec_[COLUMNS].present) {
        esb_status st;
        SEC(COLUMNS);
        st = check_sorted(m, b, len, m->sec_[COLUMNS].encoding, n_cols, n_feat, off, "columns",
                          "used column");
        if (st != ESB_OK) return st;
    }

    /* -- indices -- */
    SEC(INDICES);
    {
        const uint8_t *rows = d + m->sec_[ROWS].offset;
        uint8_t enc = m->sec_[INDICES].encoding;
        if (enc == ENC_RAW) {
            uint64_t pos = 0;
            if (len != 4 * nnz)
                BAD("section 'indices' at offset %" PRIu32 " is %" PRIu64 " bytes, expected %"
                    PRIu64 " (nnz=%" PRIu64 " int32 column indices)", off, len, 4 * nnz, nnz);
            for (i = 0; i < nnz; i++) {
                int32_t c = (int32_t)ld_u32(b + 4 * i);
                if (c < 0 || (uint32_t)c >= n_cols)
                    BAD("section 'indices' at offset %" PRIu32 ": column index %" PRId32
                        " at position %" PRIu64 " is out of range [0, %" PRIu32 ")", off, c, i,
                        n_cols);
            }
            for (p = rows, r = 0; r < n_out; r++) {
                uint64_t c = rdv(&p), k;
                for (k = 1; k < c; k++)
                    if ((int32_t)ld_u32(b + 4 * (pos + k)) <= (int32_t)ld_u32(b + 4 * (pos + k - 1)))
                        BAD("section 'indices' at offset %" PRIu32 ": column indices are not "
                            "strictly increasing within a row at position %" PRIu64, off, pos + k);
                pos += c;
            }
        } else if (enc == ENC_VARINT) {
            const uint8_t *q = b;
            if (varint_check(b, len, nnz, 5, err, sizeof err))
                BAD("section 'indices' at offset %" PRIu32 ": %s (one column gap per nonzero)", off,
                    err);
            for (i = 0; i < nnz; i++) {
                uint64_t g = rdv(&q);
                if (g >= n_cols)
                    BAD("section 'indices' at offset %" PRIu32 ": column gap %" PRIu64
                        " at position %" PRIu64 " is out of range [0, %" PRIu32 ")", off, g, i,
                        n_cols);
            }
            for (q = b, p = rows, i = 0, r = 0; r < n_out; r++) {
                uint64_t c = rdv(&p), k, local = 0;
                for (k = 0; k < c; k++, i++) {
                    uint64_t g = rdv(&q);
                    local = k ? local + g + 1u : g;
                    if (local >= n_cols)
                        BAD("section 'indices' at offset %" PRIu32 ": column index %" PRIu64
                            " at position %" PRIu64 " is out of range [0, %" PRIu32 ")", off,
                            local, i, n_cols);
                }
            }
        } else {
            uint64_t universe = (uint64_t)n_out * n_cols;
            esb_status st;
            seq s;
            if (universe >= (uint64_t)1 << 62)
                BAD("section 'indices' at offset %" PRIu32 ": n_outputs x n_columns is too large "
                    "for encoding %u", off, enc);
            st = check_sorted(m, b, len, enc, nnz, universe, off, "indices", "nonzero");
            if (st != ESB_OK) return st;
            /* rows of the flat positions must match 'rows' (both are in increasing order) */
            seq_init(&s, b, enc, nnz, universe);
            {
                uint64_t done = 0, pending = 0, have = 0;
                for (p = rows, r = 0; r < n_out; r++) {
                    uint64_t c = rdv(&p), got = 0, row_end = (uint64_t)(r + 1) * n_cols;
                    if (!have && done < nnz) {
                        pending = seq_next(&s);
                        have = 1;
                    }
                    while (have && pending < row_end) {
                        got++;
                        done++;
                        have = 0;
                        if (done < nnz) {
                            pending = seq_next(&s);
                            have = 1;
                        }
                    }
                    if (got != c)
                        BAD("section 'indices' at offset %" PRIu32 ": row %" PRIu32 " has %"
                            PRIu64 " entries, section 'rows' says %" PRIu64, off, r, got, c);
                }
            }
        }
    }

    /* -- values, scales, bias -- */
    SEC(VALUES);
    if (m->sec_[VALUES].encoding == ENC_MIXED) {
        esb_status st = check_mixed_values(m, off, len, b, nnz);
        if (st != ESB_OK) return st;
    } else {
        static const unsigned itemsize[3] = {8, 4, 1};
        unsigned w = itemsize[m->value_dtype];
        if (len != nnz * w)
            BAD("section 'values' at offset %" PRIu32 " is %" PRIu64 " bytes, expected %" PRIu64
                " (nnz=%" PRIu64 " %s values)", off, len, nnz * w, nnz,
                DTYPE_NAMES[m->value_dtype]);
        for (i = 0; i < nnz; i++) {
            int bad;
            double shown;
            char txt[40];
            if (m->value_dtype == ESB_VALUES_I8) {
                int8_t q = (int8_t)b[i];
                bad = q == 0 || q == -128;
                shown = q;
            } else if (m->value_dtype == ESB_VALUES_F32) {
                uint32_t u = ld_u32(b + 4 * i);
                bad = !(u & 0x7FFFFFFFu) || !finite_f32(u);
                shown = ld_f32(b + 4 * i);
            } else {
                uint64_t u = ld_u64(b + 8 * i);
                bad = !(u & 0x7FFFFFFFFFFFFFFFu) || !finite_f64(u);
                shown = ld_f64(b + 8 * i);
            }
            if (!bad) continue;
            if (m->value_dtype == ESB_VALUES_I8) snprintf(txt, sizeof txt, "%d", (int)shown);
            else py_repr(shown, txt, sizeof txt);
            BAD("section 'values' at offset %" PRIu32 ": value %s at position %" PRIu64
                " is not allowed (stored values are never 0, NaN, Inf or -128)", off, txt, i);
        }
    }
    m->nnz = (uint32_t)nnz;
    if (m->value_dtype == ESB_VALUES_I8) {
        SEC(SCALES);
        if (len != 4 && len != 4 * (uint64_t)n_out)
            BAD("section 'scales' at offset %" PRIu32 " is %" PRIu64 " bytes, expected %" PRIu64
                " (%" PRIu32 " per-row or 1 per-tensor float32 scales)", off, len,
                4 * (uint64_t)n_out, n_out);
        for (i = 0; i < len / 4; i++) {
            uint32_t u = ld_u32(b + 4 * i);
            if (!finite_f32(u) || (u & 0x80000000u) || !(u & 0x7FFFFFFFu)) {
                char txt[40];
                py_repr((double)ld_f32(b + 4 * i), txt, sizeof txt);
                BAD("section 'scales' at offset %" PRIu32 ": scale %s at position %" PRIu64
                    " must be finite and > 0", off, txt, i);
            }
        }
        m->n_scales_ = (uint32_t)(len / 4);
        if (m->mixed_ && m->n_scales_ != n_out)
            BAD("section 'values' at offset %" PRIu32 ": int16 rows need one scale per row, "
                "'scales' has %" PRIu32, m->sec_[VALUES].offset, m->n_scales_);
    }
    SEC(BIAS);
    {
        unsigned w = m->sec_[BIAS].encoding == 0 ? 8 : 4;
        if (len != (uint64_t)w * n_out)
            BAD("section 'bias' at offset %" PRIu32 " is %" PRIu64 " bytes, expected %" PRIu64
                " (%" PRIu32 " %s biases)", off, len, (uint64_t)w * n_out, n_out,
                w == 8 ? "float64" : "float32");
        for (i = 0; i < n_out; i++) {
            int ok = w == 8 ? finite_f64(ld_u64(b + 8 * i)) : finite_f32(ld_u32(b + 4 * i));
            if (!ok) {
                char txt[40];
                py_repr(w == 8 ? ld_f64(b + 8 * i) : (double)ld_f32(b + 4 * i), txt, sizeof txt);
                BAD("section 'bias' at offset %" PRIu32 ": bias %s at position %" PRIu64
                    " is not finite", off, txt, i);
            }
        }
    }

    /* -- classes, provenance -- */
    if (m->sec_[CLASSES].present) {
        const uint32_t n = m->n_classes;
        SEC(CLASSES);
        switch (m->sec_[CLASSES].encoding) {
        case ESB_LABEL_FLOAT:
            if (len != 8 * (uint64_t)n)
                BAD("section 'classes' at offset %" PRIu32 " is %" PRIu64 " bytes, expected %"
                    PRIu64 " (%" PRIu32 " float64 labels)", off, len, 8 * (uint64_t)n, n);
            break;
        case ESB_LABEL_INT:
            if (varint_check(b, len, n, 10, err, sizeof err))
                BAD("section 'classes' at offset %" PRIu32 ": %s (one label per class)", off, err);
            break;
        default: {
            uint64_t found = 0, head_len = 0, sum = 0, pos;
            int overflow = 0;
            for (i = 0; i < len && found < n; i++)
                if (b[i] < 0x80) {
                    found++;
                    head_len = i + 1;
                }
            if (found != n)
                BAD("section 'classes' at offset %" PRIu32 ": holds fewer than %" PRIu32
                    " label lengths", off, n);
            if (varint_check(b, head_len, n, 5, err, sizeof err))
                BAD("section 'classes' at offset %" PRIu32 ": label lengths: %s", off, err);
            for (p = b, i = 0; i < n; i++) {
                uint64_t l = rdv(&p);
                if (sum + l < sum) overflow = 1;
                sum += l;
            }
            if (overflow || head_len + sum != len)
                BAD("section 'classes' at offset %" PRIu32 ": label lengths add up to %" PRIu64
                    " bytes, section has %" PRIu64, off, head_len + sum, len);
            for (p = b, pos = head_len, i = 0; i < n; i++) {
                uint64_t l = rdv(&p);
                if (!utf8_valid(b + pos, l))
                    BAD("section 'classes' at offset %" PRIu32 ": label %" PRIu64
                        " at offset %" PRIu64 " is not valid UTF-8", off, i, off + pos);
                if (l && b[pos + l - 1] == 0)
                    BAD("section 'classes' at offset %" PRIu32 ": label %" PRIu64
                        " at offset %" PRIu64 " ends with a NUL character", off, i, off + pos);
                pos += l;
            }
        }
        }
        if (n > MAX_UNSORTED_CLASSES) {
            label_cursor prev, cur;
            labels_start(&cur, b, m->sec_[CLASSES].encoding, n);
            labels_next(&cur);
            for (i = 1; i < n; i++) {
                prev = cur;
                labels_next(&cur);
                if (!label_lt(&prev, &cur))
                    BAD("section 'classes' at offset %" PRIu32 ": label %" PRIu64 " is not "
                        "greater than label %" PRIu64 " (more than %u labels must be in "
                        "increasing order)", off, i, i - 1, MAX_UNSORTED_CLASSES);
            }
        }
    }
    if (m->sec_[PROVENANCE].present) {
        const char *why;
        SEC(PROVENANCE);
        if (!utf8_valid(b, len))
            BAD("section 'provenance' at offset %" PRIu32 ": not valid UTF-8", off);
        why = json_check(b, len);
        if (why == TOO_MANY_KEYS)
            BAD("section 'provenance' at offset %" PRIu32 ": has more than %u keys", off,
                MAX_PROVENANCE_KEYS);
        if (why)
            BAD("section 'provenance' at offset %" PRIu32 ": not a valid JSON object of "
                "strings (%s)", off, why);
    }
    if (m->sec_[EXPONENTS].present) {
        esb_status st;
        SEC(EXPONENTS);
        st = check_exponents(m, off, b);
        if (st != ESB_OK) return st;
    }
    if (m->sec_[TEXT].present) {
        esb_status st = check_text(m, d);
        if (st != ESB_OK) return st;
    }
    if (m->sec_[TABULAR].present) {
        esb_status st = check_tabular(m, d);
        if (st != ESB_OK) return st;
    }
    /* LinearIR: the arithmetic the fields feed. The largest int8 weight (scale * 127, or
     * scale * 32767 in a wide row) and,
     * without float64 values, every bias must be finite floats: otherwise every score is
     * NaN/Inf and every prediction one arbitrary class. */
    if (m->value_dtype == ESB_VALUES_I8) {
        for (i = 0; i < m->n_scales_; i++) /* int8 rows first, then int16 ones */
            if (!is_wide(m, (uint32_t)i) && (double)scale_of(m, (uint32_t)i) * 127.0 > FLT_MAX)
                BAD("scales: some scale * 127 overflows float32 (largest int8 weight)");
        for (i = 0; i < m->n_scales_; i++)
            if (is_wide(m, (uint32_t)i) && (double)scale_of(m, (uint32_t)i) * 32767.0 > FLT_MAX)
                BAD("scales: some scale * 32767 overflows float32 (largest int16 weight)");
    }
    if (m->value_dtype != ESB_VALUES_F64) {
        for (i = 0; i < n_out; i++)
            if (fabs(bias_of(m, (uint32_t)i)) > FLT_MAX)
                BAD("bias: some bias overflows float32 (the arithmetic of this model)");
    }
    /* LinearIR: no NaN label, no label twice (a repeated label is predicted for both of its
     * outputs). Sorted labels (checked above when there are many) cannot repeat. */
    if (m->sec_[CLASSES].present && m->n_classes <= MAX_UNSORTED_CLASSES) {
        const uint8_t *cb = d + m->sec_[CLASSES].offset;
        const uint8_t enc = m->sec_[CLASSES].encoding;
        label_cursor a, c;
        uint64_t j;
        labels_start(&a, cb, enc, m->n_classes);
        for (i = 0; i < m->n_classes; i++) {
            labels_next(&a);
            if (enc == ESB_LABEL_FLOAT && a.f != a.f) BAD("classes: label %" PRIu64 " is NaN", i);
            labels_start(&c, cb, enc, m->n_classes);
            for (j = 0; j < i; j++) {
                labels_next(&c);
                if (label_eq(&a, &c))
                    BAD("classes: label %" PRIu64 " repeats label %" PRIu64
                        " (labels must be distinct)", i, j);
            }
        }
    }
    /* LinearIR's own invariant, the one the header checks above do not imply. */
    if (m->head == ESB_HEAD_SOFTMAX && n_out < 2)
        BAD("head: 'softmax' needs at least 3 classes (binary is 'logistic')");
#undef SEC
    return ESB_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* Column walker: the global column of every stored weight, in CSR order, decoded on the fly */
/* ---------------------------------------------------------------------------------------- */
typedef struct walker {
    const esb_model *m;
    const uint8_t *raw, *vp;  /* raw int32 indices / varint gaps */
    seq iseq;                 /* bitmap / Elias-Fano indices */
    seq cseq;                 /* used-column list */
    uint64_t k, row_base, cpos;
    uint32_t prev, ccur, first;
    uint8_t enc, has_cols;
} walker;

static void walker_init(walker *w, const esb_model *m)
{
    const esb_section_ref *si = &m->sec_[INDICES];
    w->m = m;
    w->enc = si->encoding;
    w->raw = w->vp = m->buf_ + si->offset;
    w->k = 0;
    if (w->enc == ENC_BITMAP || w->enc == ENC_EF)
        seq_init(&w->iseq, w->raw, w->enc, m->nnz, (uint64_t)m->n_outputs * m->n_columns);
    w->has_cols = m->sec_[COLUMNS].present;
}

static void walker_row(walker *w, uint32_t r)
{
    const esb_model *m = w->m;
    w->row_base = (uint64_t)r * m->n_columns;
    w->first = 1;
    if (w->has_cols) {
        seq_init(&w->cseq, m->buf_ + m->sec_[COLUMNS].offset, m->sec_[COLUMNS].encoding,
                 m->n_columns, m->n_features);
        w->cpos = 0;
    }
}

/* The next n stored weights' global columns into out and, if local is not NULL, their
 * positions in the used-column list (the indices section's own numbers) into local. */
static void walker_fill(walker *w, int32_t *out, int32_t *local_out, uint32_t n)
{
    uint32_t i;
    for (i = 0; i < n; i++) {
        uint32_t local;
        switch (w->enc) {
        case ENC_RAW: local = ld_u32(w->raw + 4 * w->k); break;
        case ENC_VARINT: {
            uint32_t g = (uint32_t)rdv(&w->vp);
            local = w->first ? g : w->prev + g + 1u;
            break;
        }
        default: local = (uint32_t)(seq_next(&w->iseq) - w->row_base);
        }
        w->first = 0;
        w->prev = local;
        w->k++;
        if (local_out) local_out[i] = (int32_t)local;
        if (w->has_cols) {
            while (w->cpos <= local) {
                w->ccur = (uint32_t)seq_next(&w->cseq);
                w->cpos++;
            }
            local = w->ccur;
        }
        out[i] = (int32_t)local;
    }
}

/* ---------------------------------------------------------------------------------------- */
/* The exponents section (linear_values.py's decode_exponents, then LinearIR's check of the products) */
/* ---------------------------------------------------------------------------------------- */
/* Used-column marks per window of the stray-exponent search (a bitmap on the stack). */
#define STRAY_WINDOW 4096u

/* Set bit p - lo of seen for position p of the column list. */
static void mark(uint8_t *seen, uint32_t lo, uint64_t p)
{
    uint32_t bit = (uint32_t)(p - lo);
    seen[bit >> 3] |= (uint8_t)(1u << (bit & 7u));
}

/* Mark, in seen, the positions in [lo, hi) of the column list that some stored weight uses
 * (the indices section's own numbers), reading only what lies in the window where the
 * encoding allows: a binary search per row (raw), the window's slice of every row (bitmap),
 * a forward skip over the high bits (Elias-Fano); varint gaps are summed from each row's
 * start, and the rest of the row skipped byte-wise. */
static void mark_window(const esb_model *m, uint32_t lo, uint32_t hi, uint8_t *seen)
{
    const uint8_t *b = m->buf_ + m->sec_[INDICES].offset;
    const uint8_t *rows = m->buf_ + m->sec_[ROWS].offset;
    const uint64_t n_cols = m->n_columns, nnz = m->nnz;
    const uint8_t enc = m->sec_[INDICES].encoding;
    uint32_t r;
    if (enc == ENC_RAW || enc == ENC_VARINT) {
        uint64_t start = 0;
        const uint8_t *vp = b;
        for (r = 0; r < m->n_outputs; r++) {
            uint64_t cnt = rdv(&rows), k;
            if (enc == ENC_RAW) {
                uint64_t a = start, z = start + cnt;
                while (a < z) { /* first stored weight of the row at a position >= lo */
                    uint64_t mid = a + (z - a) / 2u;
                    if (ld_u32(b + 4u * mid) < lo) a = mid + 1u;
                    else z = mid;
                }
                for (; a < start + cnt && ld_u32(b + 4u * a) < hi; a++)
                    mark(seen, lo, ld_u32(b + 4u * a));
            } else {
                uint64_t local = 0;
                for (k = 0; k < cnt; k++) {
                    uint64_t g = rdv(&vp);
                    local = k ? local + g + 1u : g;
                    if (local >= hi) { /* skip the rest of the row: one end byte per number */
                        for (k++; k < cnt; vp++) k += *vp < 0x80;
                        break;
                    }
                    if (local >= lo) mark(seen, lo, local);
                }
            }
            start += cnt;
        }
    } else if (enc == ENC_BITMAP) {
        for (r = 0; r < m->n_outputs; r++) {
            uint64_t bit = r * n_cols + lo, end = r * n_cols + hi;
            while (bit < end) {
                unsigned byte = b[bit >> 3] >> (bit & 7u);
                if (!byte) {
                    bit = (bit | 7u) + 1u;
                    continue;
                }
                while (!(byte & 1u)) byte >>= 1, bit++;
                if (bit < end) mark(seen, lo, bit - r * n_cols);
                bit++;
            }
        }
    } else { /* Elias-Fano: element i is ((h_i - i) << L) | low_i, h_i the i-th set high bit */
        const unsigned L = nnz ? ef_low_bits(nnz, (uint64_t)m->n_outputs * n_cols) : 0;
        const uint8_t *high = b + ceil8(nnz * L);
        const uint64_t high_len = m->sec_[INDICES].length - ceil8(nnz * L);
        uint64_t i = 0, bit = 0;
        for (r = 0; r < m->n_outputs && i < nnz; r++) {
            const uint64_t from = r * n_cols + lo, to = r * n_cols + hi;
            /* skip whole high words (or bytes) whose elements all lie in buckets below from's:
             * the last one in [bit, stop) has bucket <= stop - (ones up to stop) */
            for (;;) {
                uint64_t y = bit >> 3, ones, stop;
                if (!(bit & 63u) && y + 8u <= high_len) {
                    ones = popcount64(ld_u64(high + y));
                    stop = bit + 64u;
                } else {
                    ones = popcount8((unsigned)high[y] >> (bit & 7u));
                    stop = (y + 1u) * 8u;
                }
                if (stop - (i + ones) >= (from >> L) || i + ones >= nnz) break;
                i += ones;
                bit = stop;
            }
            while (i < nnz) {
                uint64_t pos = next_bit(high, bit), v;
                v = ((pos - i) << L) | read_bits(b, i * L, L);
                if (v >= to) break;
                bit = pos + 1u;
                i++;
                if (v >= from) mark(seen, lo, v - r * n_cols);
            }
        }
    }
}

/* The first listed column with a nonzero exponent that no stored weight uses, or n_columns.
 * No allocation: the columns from the next nonzero exponent on are marked STRAY_WINDOW at a
 * time (a bitmap on the stack), one window holding any nonzero exponent after another. */
static uint32_t first_stray(const esb_model *m, const uint8_t *exps)
{
    uint8_t seen[STRAY_WINDOW / 8u];
    const uint32_t n_cols = m->n_columns;
    uint32_t lo = 0, hi, c;
    for (;;) {
        while (lo < n_cols && !exps[lo]) lo++;
        if (lo == n_cols) return n_cols;
        hi = n_cols - lo < STRAY_WINDOW ? n_cols : lo + STRAY_WINDOW;
        memset(seen, 0, sizeof seen);
        mark_window(m, lo, hi, seen);
        for (c = lo; c < hi; c++)
            if (exps[c] && !(seen[(c - lo) >> 3] >> ((c - lo) & 7u) & 1u)) return c;
        lo = hi;
    }
}

/* The global column of position c in the used-column list. */
static uint32_t listed_column(const esb_model *m, uint32_t c)
{
    seq s;
    uint32_t i, col = c;
    if (!m->sec_[COLUMNS].present) return c;
    seq_init(&s, m->buf_ + m->sec_[COLUMNS].offset, m->sec_[COLUMNS].encoding, m->n_columns,
             m->n_features);
    for (i = 0; i <= c; i++) col = (uint32_t)seq_next(&s);
    return col;
}

/* Column exponents by listed-column position, for either encoding of a checked section:
 * encoding 0 holds one per listed column; encoding 1 (exceptions) a default and k exceptions,
 * their positions gap-coded. Queries at increasing positions walk the gaps forward; EXC_MARKS
 * marks (every stride-th exception, taken in one O(k) pass at init) let a query jump ahead or
 * back (a new row) by a binary search, so one costs O(log EXC_MARKS + stride), stride =
 * ceil(k / EXC_MARKS), and a row's in-order queries together walk at most k exceptions. */
#define EXC_MARKS 64u
typedef struct exp_reader {
    const uint8_t *e;     /* encoding 0: n_columns exponents; 1: the k exceptions' */
    const uint8_t *p;     /* 1: just after exception i's gap */
    uint32_t k, i, stride, n_marks, pos, last;
    int dense, def;       /* encoding 0; encoding 1's default */
    uint32_t mpos[EXC_MARKS];       /* position of exception j * stride */
    const uint8_t *mp[EXC_MARKS];   /* just after its gap */
} exp_reader;

static void exp_reader_init(exp_reader *er, const uint8_t *b, uint8_t encoding)
{
    memset(er, 0, sizeof *er);
    if (encoding == 0) {
        er->dense = 1;
        er->e = b;
        return;
    }
    er->k = ld_u32(b);
    er->def = (int8_t)b[4];
    er->e = b + 5;
    if (er->k) {
        const uint8_t *p = b + 5 + er->k;
        uint64_t pos = 0;
        uint32_t i;
        er->stride = er->k / EXC_MARKS + (er->k % EXC_MARKS != 0);
        for (i = 0; i < er->k; i++) {
            pos = i ? pos + rdv(&p) + 1u : rdv(&p);
            if (i % er->stride == 0) {
                er->mpos[er->n_marks] = (uint32_t)pos;
                er->mp[er->n_marks++] = p;
            }
        }
        er->pos = er->mpos[0];
        er->p = er->mp[0];
    }
}

/* The exponent of listed column t (for a column no weight uses: unspecified). */
static int exp_at(exp_reader *er, uint32_t t)
{
    uint32_t next;
    if (er->dense) return (int8_t)er->e[t];
    if (!er->k) return er->def;
    next = er->i / er->stride + 1u;
    if (t < er->last || (next < er->n_marks && er->mpos[next] <= t)) {
        uint32_t lo = 0, hi = er->n_marks; /* the last mark at or before t, else the first */
        while (hi - lo > 1u) {
            uint32_t mid = lo + (hi - lo) / 2u;
            if (er->mpos[mid] <= t) lo = mid;
            else hi = mid;
        }
        er->i = lo * er->stride;
        er->pos = er->mpos[lo];
        er->p = er->mp[lo];
    }
    er->last = t;
    while (er->pos < t && er->i + 1u < er->k) {
        er->pos += (uint32_t)rdv(&er->p) + 1u;
        er->i++;
    }
    return er->pos == t ? (int8_t)er->e[er->i] : er->def;
}

/* Encoding 1: the first exception (in order) on a listed column no stored weight uses, or k;
 * *where gets its position. The positions are checked (increasing, < n_columns); windows of
 * STRAY_WINDOW positions from each next exception on are marked as in first_stray. */
static uint32_t first_stray_exception(const esb_model *m, const uint8_t *gaps, uint32_t k,
                                      uint32_t *where)
{
    uint8_t seen[STRAY_WINDOW / 8u];
    const uint32_t n_cols = m->n_columns;
    const uint8_t *p = gaps;
    uint32_t i, lo = 0, hi = 0, pos = 0;
    for (i = 0; i < k; i++) {
        pos = i ? pos + (uint32_t)rdv(&p) + 1u : (uint32_t)rdv(&p);
        if (!i || pos >= hi) {
            lo = pos;
            hi = n_cols - lo < STRAY_WINDOW ? n_cols : lo + STRAY_WINDOW;
            memset(seen, 0, sizeof seen);
            mark_window(m, lo, hi, seen);
        }
        if (!(seen[(pos - lo) >> 3] >> ((pos - lo) & 7u) & 1u)) {
            *where = pos;
            return i;
        }
    }
    return k;
}

/* linear_values.py's _decode_exception_exponents, check by check. */
static esb_status check_exception_exponents(esb_model *m, uint32_t off, const uint8_t *b)
{
    const uint32_t n_cols = m->n_columns;
    const uint64_t len = m->sec_[EXPONENTS].length;
    uint32_t k, i, where = 0;
    uint64_t pos = 0;
    int def;
    char err[96];
    const uint8_t *p;
    if (len < 5)
        BAD("section 'exponents' at offset %" PRIu32 ": is %" PRIu64 " bytes, too short for its "
            "5-byte count and default", off, len);
    k = ld_u32(b);
    def = (int8_t)b[4];
    if (def < EXP_MIN || def > EXP_MAX)
        BAD("section 'exponents' at offset %" PRIu32 ": default exponent %d is outside [%d, %d]",
            off, def, EXP_MIN, EXP_MAX);
    if (k > n_cols)
        BAD("section 'exponents' at offset %" PRIu32 ": lists %" PRIu32 " exceptions, but there "
            "are only %" PRIu32 " listed columns", off, k, n_cols);
    if (5u + (uint64_t)k > len)
        BAD("section 'exponents' at offset %" PRIu32 ": is %" PRIu64 " bytes, too short for %"
            PRIu32 " exception exponents", off, len, k);
    if (varint_check(b + 5 + k, len - 5u - k, k, 5, err, sizeof err))
        BAD("section 'exponents' at offset %" PRIu32 ": %s (one column gap per exception)", off,
            err);
    /* strictly increasing by construction; the first one at or beyond n_columns (a sum of
     * at most n_columns + 1 gaps of < 2^35 each: no overflow) */
    for (p = b + 5 + k, i = 0; i < k; i++) {
        pos = i ? pos + rdv(&p) + 1u : rdv(&p);
        if (pos >= n_cols)
            BAD("section 'exponents' at offset %" PRIu32 ": exception %" PRIu32 " names column "
                "position %" PRIu64 ", beyond the %" PRIu32 " listed", off, i, pos, n_cols);
    }
    for (i = 0; i < k; i++) {
        int e = (int8_t)b[5 + i];
        if (e < EXP_MIN || e > EXP_MAX || e == def)
            BAD("section 'exponents' at offset %" PRIu32 ": exception %" PRIu32 " has exponent "
                "%d: outside [%d, %d] or equal to the default %d", off, i, e, EXP_MIN, EXP_MAX,
                def);
    }
    if (first_stray_exception(m, b + 5 + k, k, &where) < k)
        BAD("section 'exponents' at offset %" PRIu32 ": column %" PRIu32
            " has no weights but an exception exponent", off, listed_column(m, where));
    return ESB_OK;
}

static esb_status check_exponents(esb_model *m, uint32_t off, const uint8_t *exps)
{
    const uint32_t n_cols = m->n_columns;
    const uint64_t len = m->sec_[EXPONENTS].length;
    const uint8_t *rows = m->buf_ + m->sec_[ROWS].offset;
    int32_t pos[ESB_CHUNK];
    uint32_t c, r, n_scales = m->n_scales_;
    walker w;
    exp_reader er;
    if (m->sec_[EXPONENTS].encoding == 1) {
        esb_status st = check_exception_exponents(m, off, exps);
        if (st != ESB_OK) return st;
    } else {
        if (len != n_cols)
            BAD("section 'exponents' at offset %" PRIu32 " is %" PRIu64 " bytes, expected %"
                PRIu32 " (%" PRIu32 " int8 column exponents (one per used column))", off, len,
                n_cols, n_cols);
        for (c = 0; c < n_cols; c++) {
            int e = (int8_t)exps[c];
            if (e < EXP_MIN || e > EXP_MAX)
                BAD("section 'exponents' at offset %" PRIu32 ": exponent %d at position %"
                    PRIu32 " is outside [%d, %d]", off, e, c, EXP_MIN, EXP_MAX);
        }
        c = first_stray(m, exps);
        if (c < n_cols)
            BAD("section 'exponents' at offset %" PRIu32 ": column %" PRIu32
                " has no weights but a nonzero exponent", off, listed_column(m, c));
    }
    exp_reader_init(&er, exps, m->sec_[EXPONENTS].encoding);
    /* LinearIR: every stored weight's step scale * 2^e (and 127 of them) is a normal, finite
     * float. Per row (per tensor: over all rows), the smallest and largest exponent decide;
     * computed in double, exactly as the reference does. */
    {
        int lo = EXP_MAX, hi = EXP_MIN;
        walker_init(&w, m);
        w.has_cols = 0;
        for (r = 0; r < m->n_outputs; r++) {
            uint32_t cnt = (uint32_t)rdv(&rows), done = 0, i;
            walker_row(&w, r);
            if (n_scales != 1) lo = EXP_MAX, hi = EXP_MIN;
            while (done < cnt) {
                uint32_t n = cnt - done < ESB_CHUNK ? cnt - done : ESB_CHUNK;
                walker_fill(&w, pos, NULL, n);
                for (i = 0; i < n; i++) {
                    int e = exp_at(&er, (uint32_t)pos[i]);
                    if (e < lo) lo = e;
                    if (e > hi) hi = e;
                }
                done += n;
            }
            if (lo <= hi && (n_scales != 1 || r + 1 == m->n_outputs)) {
                double s = (double)scale_of(m, r);
                if (s * ldexp(1.0, lo) < FLT_MIN || s * ldexp(1.0, hi) * q_max(m, r) > FLT_MAX)
                    BAD("col_exponents: scale * 2^exponent leaves the float32 range for some "
                        "weight");
            }
        }
    }
    return ESB_OK;
}

/* 2^e as a float, exactly (e in [EXP_MIN, EXP_MAX]: a normal float). */
static float pow2f(int e)
{
    uint32_t u = (uint32_t)(e + 127) << 23;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static int has_exponents(const esb_model *m) { return m->sec_[EXPONENTS].present; }

/* The dense layout: int8 weights (with or without int16 rows) whose dense matrix is no larger
 * than the column list. */
static int dense_eligible(const esb_model *m)
{
    return m && m->buf_ && m->value_dtype == ESB_VALUES_I8 &&
           (uint64_t)m->n_outputs * m->n_features <= 4u * (uint64_t)m->nnz;
}

/* Workspace bytes of the dense layout: with exponents, 2^e of every feature (float bits)
 * first, then the int8 matrix, row by row (a wide row: n_features int16, 2 bytes each). */
static uint64_t dense_bytes(const esb_model *m)
{
    return ((uint64_t)m->n_outputs + m->n_wide_) * m->n_features +
           (has_exponents(m) ? 4u * (uint64_t)m->n_features : 0u);
}

/* Workspace bytes of the column list: each stored weight's column and, with exponents, its
 * column's exponent (one byte). */
static uint64_t list_bytes(const esb_model *m)
{
    return (4u + (has_exponents(m) ? 1u : 0u)) * (uint64_t)m->nnz;
}

static uint64_t transposed_bytes(const esb_model *m)
{
    return 8u * (uint64_t)m->nnz + 8u * (uint64_t)m->n_columns + 4u;
}

static size_t clamp_size(uint64_t t) { return t > (uint64_t)SIZE_MAX ? SIZE_MAX : (size_t)t; }

size_t esb_workspace_size(const esb_model *m)
{
    uint64_t t;
    if (!m || !m->buf_) return 0;
    if (!dense_eligible(m)) return clamp_size(list_bytes(m));
    t = 4u * (uint64_t)m->nnz; /* without exponents or int16 rows the dense matrix fits */
    return clamp_size(dense_bytes(m) > t ? dense_bytes(m) : t);
}

size_t esb_workspace_size_fast(const esb_model *m)
{
    if (!m || !m->buf_) return 0;
    if (dense_eligible(m)) return esb_workspace_size(m);
    return clamp_size(transposed_bytes(m));
}

const char *esb_layout_name(const esb_model *m)
{
    static const char *const NAMES[4] = {"streamed", "columns", "dense", "transposed"};
    return m && m->layout_ < 4 ? NAMES[m->layout_] : "streamed";
}

/* Calls f(ctx, r, k, global column, local column, its value's bytes) for every stored
 * weight, in CSR order. */
typedef void (*weight_fn)(void *ctx, uint32_t r, uint32_t k, int32_t col, int32_t local,
                          const uint8_t *v);

static void for_each_weight(const esb_model *m, weight_fn f, void *ctx)
{
    walker w;
    int32_t cols[ESB_CHUNK], locs[ESB_CHUNK];
    const uint8_t *rows = m->buf_ + m->sec_[ROWS].offset, *v = values_of(m);
    uint32_t r, k = 0;
    walker_init(&w, m);
    for (r = 0; r < m->n_outputs; r++) {
        uint32_t cnt = (uint32_t)rdv(&rows), done = 0, i;
        const unsigned vw = value_width(m, r);
        walker_row(&w, r);
        while (done < cnt) {
            uint32_t n = cnt - done < ESB_CHUNK ? cnt - done : ESB_CHUNK;
            walker_fill(&w, cols, locs, n);
            for (i = 0; i < n; i++, v += vw) f(ctx, r, k + i, cols[i], locs[i], v);
            done += n;
            k += n;
        }
    }
}

typedef struct build_ctx {
    const esb_model *m;
    int32_t *a, *b, *c, *d;
    int8_t *e; /* a character type: may alias the int32_t buffer */
    exp_reader *er; /* with exponents */
    uint32_t row;   /* dense: the row whose first byte is at e + row_at */
    size_t row_at;
} build_ctx;

static const uint8_t *exps_of(const esb_model *m)
{
    return m->buf_ + m->sec_[EXPONENTS].offset;
}

static void put_column(void *ctx, uint32_t r, uint32_t k, int32_t col, int32_t local,
                       const uint8_t *v)
{
    build_ctx *b = (build_ctx *)ctx;
    (void)r;
    (void)v;
    b->a[k] = col;
    if (b->e) b->e[k] = (int8_t)exp_at(b->er, (uint32_t)local);
}

static void put_dense(void *ctx, uint32_t r, uint32_t k, int32_t col, int32_t local,
                      const uint8_t *v)
{
    build_ctx *b = (build_ctx *)ctx;
    const size_t nf = b->m->n_features;
    (void)k;
    for (; b->row < r; b->row++) b->row_at += is_wide(b->m, b->row) ? 2 * nf : nf;
    if (is_wide(b->m, r)) { /* an int16, in the host's byte order */
        int16_t h = (int16_t)ld_i16(v);
        memcpy(b->e + b->row_at + 2 * (uint32_t)col, &h, 2);
    } else {
        b->e[b->row_at + (uint32_t)col] = (int8_t)v[0];
    }
    if (b->er) { /* the factor 2^e of a used column */
        float f = pow2f(exp_at(b->er, (uint32_t)local));
        memcpy(&b->a[col], &f, 4); /* float bits: the buffer's declared type is int32_t */
    }
}

static void count_column(void *ctx, uint32_t r, uint32_t k, int32_t col, int32_t local,
                         const uint8_t *v)
{
    (void)r;
    (void)v;
    (void)k;
    (void)col;
    ((build_ctx *)ctx)->a[local + 1]++;
}

static float weight_of(const esb_model *m, uint32_t r, const uint8_t *v);

static void put_transposed(void *ctx, uint32_t r, uint32_t k, int32_t col, int32_t local,
                           const uint8_t *v)
{
    build_ctx *b = (build_ctx *)ctx;
    int32_t e = b->a[local]++;
    (void)col;
    b->c[e] = (int32_t)r;
    if (b->m->value_dtype == ESB_VALUES_F64) {
        b->d[e] = (int32_t)k;
    } else {
        float w = weight_of(b->m, r, v);
        if (b->er) w *= pow2f(exp_at(b->er, (uint32_t)local)); /* exact */
        memcpy(&b->d[e], &w, 4); /* float bits: the buffer's declared type is int32_t */
    }
}

/* The used columns' global numbers, in order, into out[0 .. n_columns). */
static void listed_columns(const esb_model *m, int32_t *out)
{
    uint32_t c, nc = m->n_columns;
    if (m->sec_[COLUMNS].present) {
        seq cs;
        seq_init(&cs, m->buf_ + m->sec_[COLUMNS].offset, m->sec_[COLUMNS].encoding, nc,
                 m->n_features);
        for (c = 0; c < nc; c++) out[c] = (int32_t)seq_next(&cs);
    } else {
        for (c = 0; c < nc; c++) out[c] = (int32_t)c;
    }
}

size_t esb_csr_index_size(const esb_model *m)
{
    if (!m || !m->buf_) return 0;
    return clamp_size(4u * (uint64_t)m->n_features);
}

esb_status esb_use_csr_index(esb_model *m, int32_t *buf, size_t bytes)
{
    uint32_t c, f;
    if (!m || !m->buf_) return ESB_E_ARGUMENT;
    m->cpos_ = NULL;
    if (!buf) return ESB_OK; /* drop the index */
    if ((uintptr_t)(const void *)buf % sizeof(int32_t) != 0u ||
        (uint64_t)bytes < 4u * (uint64_t)m->n_features)
        return ESB_E_ARGUMENT;
    for (f = 0; f < m->n_features; f++) buf[f] = -1; /* no used column there */
    if (m->sec_[COLUMNS].present) {
        seq cs;
        seq_init(&cs, m->buf_ + m->sec_[COLUMNS].offset, m->sec_[COLUMNS].encoding,
                 m->n_columns, m->n_features);
        for (c = 0; c < m->n_columns; c++) buf[(uint32_t)seq_next(&cs)] = (int32_t)c;
    } else {
        for (c = 0; c < m->n_columns; c++) buf[c] = (int32_t)c;
    }
    m->cpos_ = buf;
    return ESB_OK;
}

size_t esb_layout_size(const esb_model *m, int layout)
{
    if (!m || !m->buf_) return 0;
    switch (layout) {
    case ESB_LAYOUT_COLUMNS: return clamp_size(list_bytes(m));
    case ESB_LAYOUT_DENSE:
        return m->value_dtype == ESB_VALUES_I8 ? clamp_size(dense_bytes(m)) : 0;
    case ESB_LAYOUT_TRANSPOSED: return clamp_size(transposed_bytes(m));
    default: return 0;
    }
}

esb_status esb_use_workspace(esb_model *m, int32_t *ws, size_t bytes)
{
    int layout;
    if (!m || !m->buf_) return ESB_E_ARGUMENT;
    if (ws && dense_eligible(m) && bytes >= dense_bytes(m)) layout = ESB_LAYOUT_DENSE;
    else if (ws && bytes >= transposed_bytes(m)) layout = ESB_LAYOUT_TRANSPOSED;
    else if ((ws || !m->nnz) && bytes >= list_bytes(m)) layout = ESB_LAYOUT_COLUMNS;
    else return ESB_E_ARGUMENT;
    return esb_use_layout(m, layout, ws, bytes);
}

esb_status esb_use_layout(esb_model *m, int layout, int32_t *ws, size_t bytes)
{
    build_ctx b;
    exp_reader er;
    if (!m || !m->buf_) return ESB_E_ARGUMENT;
    switch (layout) {
    case ESB_LAYOUT_STREAMED: break;
    case ESB_LAYOUT_COLUMNS:
        if ((!ws && m->nnz) || bytes < list_bytes(m)) return ESB_E_ARGUMENT;
        break;
    case ESB_LAYOUT_DENSE:
        if (!ws || m->value_dtype != ESB_VALUES_I8 || bytes < dense_bytes(m))
            return ESB_E_ARGUMENT;
        break;
    case ESB_LAYOUT_TRANSPOSED:
        if (!ws || bytes < transposed_bytes(m)) return ESB_E_ARGUMENT;
        break;
    default: return ESB_E_ARGUMENT;
    }
    memset(&b, 0, sizeof b);
    b.m = m;
    b.a = ws;
    if (has_exponents(m)) {
        exp_reader_init(&er, exps_of(m), m->sec_[EXPONENTS].encoding);
        b.er = &er;
    }
    m->cols_ = NULL;
    m->wexp_ = NULL;
    m->dense_ = NULL;
    m->dfac_ = NULL;
    m->tptr_ = m->tcol_ = m->trow_ = m->tval_ = NULL;
    if (layout == ESB_LAYOUT_DENSE) {
        /* With exponents: 2^e of every feature (float bits; 1 where no weight is), then the
         * int8 matrix, row-major. */
        const size_t nf = m->n_features, nfac = has_exponents(m) ? nf : 0;
        const float one = 1.0f;
        size_t c;
        for (c = 0; c < nfac; c++) memcpy(&ws[c], &one, 4);
        b.e = (int8_t *)(ws + nfac);
        memset(b.e, 0, ((size_t)m->n_outputs + m->n_wide_) * nf);
        for_each_weight(m, put_dense, &b); /* with exponents, also 2^e of each used column */
        m->dense_ = b.e;
        if (nfac) m->dfac_ = ws;
    } else if (layout == ESB_LAYOUT_TRANSPOSED) {
        /* Column pointers, then the used columns' global numbers, then per stored weight its
         * output row and its value (float bits, 2^e included, or its CSR position for
         * float64 models). */
        uint32_t c, nc = m->n_columns;
        b.b = ws + nc + 1u;
        b.c = b.b + nc;
        b.d = b.c + m->nnz;
        memset(ws, 0, 4u * ((size_t)nc + 1u));
        listed_columns(m, b.b);
        for_each_weight(m, count_column, &b);
        for (c = 0; c < nc; c++) b.a[c + 1] += b.a[c];
        for_each_weight(m, put_transposed, &b); /* advances b.a[c] to the end of column c */
        for (c = nc; c > 0; c--) b.a[c] = b.a[c - 1];
        b.a[0] = 0;
        m->tptr_ = b.a;
        m->tcol_ = b.b;
        m->trow_ = b.c;
        m->tval_ = b.d;
    } else if (layout == ESB_LAYOUT_COLUMNS) {
        /* Each stored weight's column, then (with exponents) its column's exponent. */
        if (has_exponents(m) && ws) b.e = (int8_t *)(ws + m->nnz);
        for_each_weight(m, put_column, &b);
        m->cols_ = ws;
        m->wexp_ = b.e;
    }
    m->layout_ = (uint8_t)layout;
    return ESB_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* Kernels                                                                                   */
/* ---------------------------------------------------------------------------------------- */
/* Where each bucket of 2^shift consecutive input columns starts among the used columns
 * (transposed layout): a table a CSR batch builds once on its stack (8 KiB), so that finding
 * an input column is one lookup and a search in its bucket, not one over all used columns. */
#define ESB_COL_BUCKETS 2048u
typedef struct col_marks {
    uint32_t shift;
    uint32_t first[ESB_COL_BUCKETS + 1]; /* first used column of bucket b; then n_columns */
} col_marks;

typedef struct input {
    const float *x;                 /* dense row, or NULL */
    uint32_t nnz;                   /* CSR row */
    const int32_t *idx;
    const float *val;
    const col_marks *marks;         /* CSR batches in the transposed layout, or NULL */
} input;

static float scale_of(const esb_model *m, uint32_t r)
{
    const uint8_t *s = m->buf_ + m->sec_[SCALES].offset;
    return ld_f32(s + 4 * (m->n_scales_ == 1 ? 0 : r));
}

static double bias_of(const esb_model *m, uint32_t r)
{
    const uint8_t *b = m->buf_ + m->sec_[BIAS].offset;
    return m->sec_[BIAS].encoding == 0 ? ld_f64(b + 8 * r) : (double)ld_f32(b + 4 * r);
}

/* Dense input: acc += w[k + i] * x[cols[i]] for i < n. Four partial sums: one float add
 * chain would cap the loop at one weight per add latency; the bound in esb.h holds for any
 * summation order. */
#define DOT4(T, ACC, W)                                                                        \
    do {                                                                                       \
        T a0 = 0, a1 = 0, a2 = 0, a3 = 0;                                                      \
        for (i = 0; i + 4 <= n; i += 4) {                                                      \
            a0 += W(i) * X(i);                                                                 \
            a1 += W(i + 1) * X(i + 1);                                                         \
            a2 += W(i + 2) * X(i + 2);                                                         \
            a3 += W(i + 3) * X(i + 3);                                                         \
        }                                                                                      \
        for (; i < n; i++) a0 += W(i) * X(i);                                                  \
        *ACC += (a0 + a1) + (a2 + a3);                                                         \
    } while (0)

/* v: the n weights' values; wide: they are int16 (a wide row of an int8 model). ex: the
 * exponents of their columns (int8 models with exponents), else NULL. */
static void dense_chunk(const esb_model *m, const int32_t *cols, const int8_t *ex, uint32_t n,
                        const uint8_t *v, int wide, float scale, const float *x, float *facc,
                        double *dacc)
{
    uint32_t i;
#define X(i) x[cols[i]]
#define W_F32(i) ld_f32(v + 4 * (i))
#define W_I8(i) (scale * (float)(int8_t)v[i]) /* rounded to float first: the IR contract */
#define W_I8E(i) (W_I8(i) * pow2f(ex[i]))    /* then 2^e: exact */
#define W_I16(i) (scale * (float)ld_i16(v + 2 * (i)))
#define W_I16E(i) (W_I16(i) * pow2f(ex[i]))
#define W_F64(i) ld_f64(v + 8 * (i))
#define XD(i) (double)x[cols[i]]
    if (m->value_dtype == ESB_VALUES_F32) {
        DOT4(float, facc, W_F32);
    } else if (m->value_dtype == ESB_VALUES_I8) {
        if (wide) { /* a branch per chunk: the int8 loops below are today's */
            if (ex) DOT4(float, facc, W_I16E);
            else DOT4(float, facc, W_I16);
        } else if (ex) DOT4(float, facc, W_I8E);
        else DOT4(float, facc, W_I8);
    } else {
#undef X
#define X(i) XD(i)
        DOT4(double, dacc, W_F64);
    }
#undef X
#undef XD
#undef W_F32
#undef W_I8
#undef W_I8E
#undef W_I16
#undef W_I16E
#undef W_F64
}

static uint32_t lower_bound(const int32_t *a, uint32_t lo, uint32_t hi, int32_t key)
{
    /* The first i in [lo, hi) with a[i] >= key, else hi. Branch-free halving (a conditional
     * move, no mispredicted jumps): the answer stays in [b, b + n]. */
    const int32_t *b = a + lo;
    uint32_t n = hi - lo;
    while (n > 1u) {
        const uint32_t half = n / 2u;
        b = b[half] < key ? b + half : b;
        n -= half;
    }
    return (uint32_t)(b - a) + (n && *b < key);
}

/* CSR input: intersect the sorted columns of this chunk with the input row from *jp on. */
static void csr_chunk(const esb_model *m, const int32_t *cols, const int8_t *ex, uint32_t n,
                      const uint8_t *v, int wide, float scale, const input *in, uint32_t *jp,
                      float *facc, double *dacc)
{
    uint32_t i = 0, j = *jp;
    float fa = *facc;
    double da = *dacc;
    while (i < n && j < in->nnz) {
        int32_t a = cols[i], b = in->idx[j];
        if (a < b) {
            i = lower_bound(cols, i + 1u, n, b); /* skip weights the input does not touch */
        } else if (a > b) {
            j = lower_bound(in->idx, j + 1u, in->nnz, a);
        } else {
            if (m->value_dtype == ESB_VALUES_F32) {
                fa += ld_f32(v + 4 * i) * in->val[j];
            } else if (m->value_dtype == ESB_VALUES_I8) {
                float w = scale * (float)(wide ? ld_i16(v + 2 * i) : (int8_t)v[i]);
                fa += (ex ? w * pow2f(ex[i]) : w) * in->val[j];
            } else {
                da += ld_f64(v + 8 * i) * (double)in->val[j];
            }
            i++;
            j++;
        }
    }
    *jp = j;
    *facc = fa;
    *dacc = da;
}

/* The weight whose value is at v (float32 and int8 models). */
static float weight_of(const esb_model *m, uint32_t r, const uint8_t *v)
{
    if (m->value_dtype == ESB_VALUES_F32) return ld_f32(v);
    /* rounded to float first: the IR contract */
    return scale_of(m, r) * (float)(is_wide(m, r) ? ld_i16(v) : (int8_t)v[0]);
}

typedef struct pick {
    float *out;   /* scores, or NULL */
    float best_s; /* the running maximum and its row */
    uint32_t best;
    int bad;      /* a score was NaN or infinite */
} pick;

/* Output row r's score s: into p->out (if not NULL) and the running argmax. */
static void take(float s, uint32_t r, pick *p)
{
    if (p->out) p->out[r] = s;
    p->bad |= !finite_float(s);
    if (r == 0 || s > p->best_s) { /* first maximum, like numpy's argmax */
        p->best_s = s;
        p->best = r;
    }
}

/* Streamed and column-list layouts: one output row at a time, walking its stored weights.
 * mixed: the model has int16 rows (a constant at each call site, so a compiler may drop the
 * per-row width test from the int8-only instance; either way the loops over a row's weights
 * are chosen once per row). */
static void compute_rows_(const esb_model *m, const input *in, pick *p, const int mixed)
{
    static const unsigned itemsize[3] = {8, 4, 1};
    const unsigned width = itemsize[m->value_dtype];
    const uint8_t *rows = m->buf_ + m->sec_[ROWS].offset, *v = values_of(m);
    const int streamed = m->cols_ == NULL;
    const int exps = has_exponents(m);
    exp_reader er;
    int32_t chunk[ESB_CHUNK], local[ESB_CHUNK];
    int8_t echunk[ESB_CHUNK];
    walker w;
    uint64_t k = 0;
    uint32_t r;
    if (streamed) walker_init(&w, m);
    if (streamed && exps) exp_reader_init(&er, exps_of(m), m->sec_[EXPONENTS].encoding);
    for (r = 0; r < m->n_outputs; r++) {
        uint32_t cnt = (uint32_t)rdv(&rows), done = 0, j = 0;
        float facc = 0.0f, s;
        double dacc = 0.0;
        float scale = m->value_dtype == ESB_VALUES_I8 ? scale_of(m, r) : 0.0f;
        const int wide = mixed && is_wide(m, r);
        const unsigned vw = width + (unsigned)wide; /* bytes per value: 2 in a wide row */
        if (streamed) walker_row(&w, r);
        while (done < cnt) {
            uint32_t n;
            const int32_t *cols;
            const int8_t *ex = NULL;
            if (streamed) {
                n = cnt - done < ESB_CHUNK ? cnt - done : ESB_CHUNK;
                walker_fill(&w, chunk, exps ? local : NULL, n);
                cols = chunk;
                if (exps) {
                    uint32_t i;
                    for (i = 0; i < n; i++) echunk[i] = (int8_t)exp_at(&er, (uint32_t)local[i]);
                    ex = echunk;
                }
            } else {
                n = cnt - done;
                cols = m->cols_ + k;
                if (m->wexp_) ex = m->wexp_ + k;
            }
            if (in->x) dense_chunk(m, cols, ex, n, v, wide, scale, in->x, &facc, &dacc);
            else csr_chunk(m, cols, ex, n, v, wide, scale, in, &j, &facc, &dacc);
            done += n;
            k += n;
            v += (size_t)n * vw;
        }
        if (m->value_dtype == ESB_VALUES_F64) s = (float)(dacc + bias_of(m, r));
        else s = facc + (float)bias_of(m, r);
        take(s, r, p);
    }
}

static void compute_rows(const esb_model *m, const input *in, pick *p)
{
    if (m->mixed_) compute_rows_(m, in, p, 1);
    else compute_rows_(m, in, p, 0);
}

#define LANES 16
/* sum_i q[i] * x[i] in float. LANES independent partial sums in a fixed-size inner loop: gcc
 * -O2's very-cheap vectorizer turns it into SIMD (the trip count is a known multiple of the
 * vector width, and each lane is its own sum, so no reassociation is needed). */
static inline float dot_i8(const int8_t *restrict q, const float *restrict x, size_t n)
{
    float a[LANES] = {0}, s = 0.0f;
    size_t j;
    for (; n >= LANES; n -= LANES, q += LANES, x += LANES)
        for (j = 0; j < LANES; j++) a[j] += (float)q[j] * x[j];
    for (j = 0; j < n; j++) s += (float)q[j] * x[j];
    for (j = 0; j < LANES; j++) s += a[j];
    return s;
}
/* The same with each q[i] scaled by its column's 2^e first (exact: q * 2^e is a normal float,
 * or an overflow, which the caller's NaN/Inf fallback handles). f: float bits. */
static inline float dot_i8_pow2(const int8_t *restrict q, const int32_t *restrict f,
                                const float *restrict x, size_t n)
{
    float a[LANES] = {0}, s = 0.0f, g;
    size_t j;
    for (; n >= LANES; n -= LANES, q += LANES, f += LANES, x += LANES)
        for (j = 0; j < LANES; j++) {
            memcpy(&g, f + j, 4);
            a[j] += ((float)q[j] * g) * x[j];
        }
    for (j = 0; j < n; j++) {
        memcpy(&g, f + j, 4);
        s += ((float)q[j] * g) * x[j];
    }
    for (j = 0; j < LANES; j++) s += a[j];
    return s;
}

/* Element c of a dense row: int8, or int16 (host byte order, maybe unaligned) in a wide row. */
static float dense_q(const int8_t *q, size_t c, int wide)
{
    int16_t h;
    if (!wide) return (float)q[c];
    memcpy(&h, q + 2 * c, 2);
    return (float)h;
}

/* dot_i8 and dot_i8_pow2 over a wide row: q holds n int16 (host byte order, maybe unaligned:
 * copied LANES at a time, which -O2 turns into plain vector loads). f: float bits, or NULL. */
static float dot_i16(const int8_t *restrict q, const int32_t *restrict f,
                     const float *restrict x, size_t n)
{
    float a[LANES] = {0}, s = 0.0f, g[LANES];
    int16_t h[LANES];
    size_t j;
    for (; n >= LANES; n -= LANES, q += 2 * LANES, x += LANES) {
        memcpy(h, q, sizeof h);
        if (f) {
            memcpy(g, f, sizeof g);
            f += LANES;
            for (j = 0; j < LANES; j++) a[j] += ((float)h[j] * g[j]) * x[j];
        } else {
            for (j = 0; j < LANES; j++) a[j] += (float)h[j] * x[j];
        }
    }
    for (j = 0; j < n; j++) {
        float gj = 1.0f;
        if (f) memcpy(&gj, f + j, 4);
        s += (dense_q(q, j, 1) * gj) * x[j];
    }
    for (j = 0; j < LANES; j++) s += a[j];
    return s;
}
#undef LANES

/* Dense layout: sum q * x over the whole row (dense input) or the input's nonzeros (CSR), then
 * the row scale once. q * x can overflow where (scale * q) * x does not (|q| <= 127, 32767 in
 * a wide row): with `exact`, each weight is dequantized first, as in the other layouts (the
 * fallback when a score comes out NaN/Inf). */
static void compute_dense(const esb_model *m, const input *in, pick *p, int exact)
{
    const size_t nf = m->n_features;
    const int32_t *fac = m->dfac_; /* 2^e per feature (float bits), or NULL */
    size_t i;
    uint32_t r, j;
    float f = 1.0f;
    for (r = 0; r < m->n_outputs; r++) {
        const int8_t *q = m->dense_ + r * nf;
        const float scale = scale_of(m, r);
        float acc = 0.0f;
        if (exact) {
            for (i = 0, j = 0; in->x ? i < nf : j < in->nnz; i++, j++) {
                size_t c = in->x ? i : (size_t)in->idx[j];
                if (!q[c]) continue;
                if (fac) memcpy(&f, &fac[c], 4);
                acc += ((scale * (float)q[c]) * f) * (in->x ? in->x[c] : in->val[j]);
            }
            take(acc + (float)bias_of(m, r), r, p);
            continue;
        }
        if (in->x) {
            acc = fac ? dot_i8_pow2(q, fac, in->x, nf) : dot_i8(q, in->x, nf);
        } else if (fac) {
            for (j = 0; j < in->nnz; j++) {
                memcpy(&f, &fac[in->idx[j]], 4);
                acc += ((float)q[in->idx[j]] * f) * in->val[j];
            }
        } else {
            for (j = 0; j < in->nnz; j++) acc += (float)q[in->idx[j]] * in->val[j];
        }
        take(scale * acc + (float)bias_of(m, r), r, p);
    }
}

/* compute_dense for a model with int16 rows (the int8-only kernel stays as it was). */
static void compute_dense_mixed(const esb_model *m, const input *in, pick *p, int exact)
{
    const size_t nf = m->n_features;
    const int32_t *fac = m->dfac_; /* 2^e per feature (float bits), or NULL */
    const int8_t *next = m->dense_; /* row by row; a wide row takes 2 * nf bytes */
    size_t i;
    uint32_t r, j;
    float f = 1.0f;
    for (r = 0; r < m->n_outputs; r++) {
        const int wide = is_wide(m, r);
        const int8_t *q = next;
        const float scale = scale_of(m, r);
        float acc = 0.0f;
        next += wide ? 2 * nf : nf;
        if (exact) {
            for (i = 0, j = 0; in->x ? i < nf : j < in->nnz; i++, j++) {
                size_t c = in->x ? i : (size_t)in->idx[j];
                float qc = dense_q(q, c, wide);
                if (qc == 0.0f) continue;
                if (fac) memcpy(&f, &fac[c], 4);
                acc += ((scale * qc) * f) * (in->x ? in->x[c] : in->val[j]);
            }
            take(acc + (float)bias_of(m, r), r, p);
            continue;
        }
        if (wide) {
            if (in->x) {
                acc = dot_i16(q, fac, in->x, nf);
            } else {
                for (j = 0; j < in->nnz; j++) {
                    if (fac) memcpy(&f, &fac[in->idx[j]], 4);
                    acc += (dense_q(q, (size_t)in->idx[j], 1) * f) * in->val[j];
                }
            }
        } else if (in->x) {
            acc = fac ? dot_i8_pow2(q, fac, in->x, nf) : dot_i8(q, in->x, nf);
        } else if (fac) {
            for (j = 0; j < in->nnz; j++) {
                memcpy(&f, &fac[in->idx[j]], 4);
                acc += ((float)q[in->idx[j]] * f) * in->val[j];
            }
        } else {
            for (j = 0; j < in->nnz; j++) acc += (float)q[in->idx[j]] * in->val[j];
        }
        take(scale * acc + (float)bias_of(m, r), r, p);
    }
}

/* lower_bound(a, lo, hi, key) for a = the used columns (key in [0, n_features)), searched in
 * the key's bucket only: the same index. */
static uint32_t lower_bound_marked(const int32_t *a, const col_marks *mk, uint32_t lo,
                                   int32_t key)
{
    const uint32_t b = (uint32_t)key >> mk->shift, first = mk->first[b];
    return lower_bound(a, first > lo ? first : lo, mk->first[b + 1u], key);
}

/* Build the buckets of the transposed layout's used columns. */
static void col_marks_build(const esb_model *m, col_marks *mk)
{
    const uint32_t nc = m->n_columns;
    uint32_t b, nb, c = 0;
    mk->shift = 0;
    while (m->n_features && (m->n_features - 1u) >> mk->shift >= ESB_COL_BUCKETS) mk->shift++;
    nb = m->n_features ? ((m->n_features - 1u) >> mk->shift) + 1u : 0u;
    for (b = 0; b < nb; b++) {
        while (c < nc && ((uint32_t)m->tcol_[c] >> mk->shift) < b) c++;
        mk->first[b] = c;
    }
    mk->first[nb] = nc;
}

/* Transposed layout: for each input nonzero, the stored weights of its column. Outputs in
 * blocks of ESB_CHUNK so that the partial sums live on the stack (the model stays read-only). */
static void compute_transposed(const esb_model *m, const input *in, pick *p)
{
    const uint8_t *v = m->buf_ + m->sec_[VALUES].offset;
    const int f64 = m->value_dtype == ESB_VALUES_F64;
    const uint32_t nc = m->n_columns;
    union {
        float f[ESB_CHUNK];
        double d[ESB_CHUNK];
    } acc;
    uint32_t b0, b1, r;
    for (b0 = 0; b0 < m->n_outputs; b0 = b1) {
        uint32_t c = 0, j = 0, lo = 0;
        b1 = m->n_outputs - b0 < ESB_CHUNK ? m->n_outputs : b0 + ESB_CHUNK;
        for (r = 0; r < b1 - b0; r++) {
            if (f64) acc.d[r] = 0.0;
            else acc.f[r] = 0.0f;
        }
        for (;;) {
            float xv;
            int32_t e, end;
            if (in->x) { /* dense input: every used column */
                if (c >= nc) break;
                xv = in->x[m->tcol_[c]];
            } else { /* CSR input: the used column of each nonzero, if any */
                if (j >= in->nnz) break;
                if (m->cpos_) { /* the index: its position, or -1 (adds nothing) */
                    const int32_t pc = m->cpos_[in->idx[j]];
                    xv = pc >= 0 ? in->val[j] : 0.0f;
                    c = pc >= 0 ? (uint32_t)pc : 0u;
                    j++;
                    goto add;
                }
                c = in->marks ? lower_bound_marked(m->tcol_, in->marks, lo, in->idx[j])
                              : lower_bound(m->tcol_, lo, nc, in->idx[j]);
                if (c >= nc) break;
                lo = c;
                xv = m->tcol_[c] == in->idx[j] ? in->val[j] : 0.0f;
                j++;
            }
        add: /* a zero input adds exact zeros: skip its column */
            for (e = xv != 0.0f ? m->tptr_[c] : 0, end = xv != 0.0f ? m->tptr_[c + 1] : 0;
                 e < end; e++) {
                uint32_t row = (uint32_t)m->trow_[e];
                if (row < b0) continue;
                if (row >= b1) break;
                if (f64) {
                    acc.d[row - b0] += ld_f64(v + 8u * (uint32_t)m->tval_[e]) * (double)xv;
                } else {
                    float w;
                    memcpy(&w, &m->tval_[e], 4);
                    acc.f[row - b0] += w * xv;
                }
            }
            if (in->x) c++;
        }
        for (r = b0; r < b1; r++) {
            float s = f64 ? (float)(acc.d[r - b0] + bias_of(m, r))
                          : acc.f[r - b0] + (float)bias_of(m, r);
            take(s, r, p);
        }
    }
}

/* Scores of every output row into out (if not NULL); the argmax into *best. Returns 1 when a
 * score is NaN or infinite. */
static int compute(const esb_model *m, const input *in, float *out, uint32_t *best, int exact)
{
    pick p;
    p.out = out;
    p.best_s = 0.0f;
    p.best = 0;
    p.bad = 0;
    if (m->layout_ == ESB_LAYOUT_DENSE && m->mixed_) compute_dense_mixed(m, in, &p, exact);
    else if (m->layout_ == ESB_LAYOUT_DENSE) compute_dense(m, in, &p, exact);
    else if (m->layout_ == ESB_LAYOUT_TRANSPOSED) compute_transposed(m, in, &p);
    else compute_rows(m, in, &p);
    *best = m->n_outputs == 1 ? p.best_s > 0.0f : p.best; /* binary: classes[score > 0] */
    return p.bad;
}

static esb_status check_dense(const esb_model *m, const float *x)
{
    /* A float is NaN/Inf iff its exponent is all ones iff (bits & 0x7FFFFFFF) + 0x00800000
     * carries into bit 31. Two floats per 64-bit word (no carry crosses the lanes), no early
     * exit: several times faster than a branchy loop at -O2 on wide rows. */
    const uint64_t abs_mask = 0x7FFFFFFF7FFFFFFFu, one_exp = 0x0080000000800000u;
    uint64_t bad = 0, u;
    uint32_t i, n;
    if (!m || !m->buf_ || !x) return ESB_E_ARGUMENT;
    n = m->n_features;
    for (i = 0; i + 2 <= n; i += 2) {
        memcpy(&u, x + i, 8);
        bad |= (u & abs_mask) + one_exp;
    }
    if (i < n) {
        uint32_t w;
        memcpy(&w, x + i, 4);
        bad |= ((uint64_t)(w & 0x7FFFFFFFu) + 0x00800000u) & 0x80000000u;
    }
    return bad & 0x8000000080000000u ? ESB_E_INPUT : ESB_OK;
}

static esb_status check_csr(const esb_model *m, uint32_t nnz, const int32_t *idx,
                            const float *val)
{
    uint32_t i;
    if (!m || !m->buf_ || (nnz && (!idx || !val))) return ESB_E_ARGUMENT;
    for (i = 0; i < nnz; i++) {
        if (idx[i] < 0 || (uint32_t)idx[i] >= m->n_features) return ESB_E_INPUT;
        if (i && idx[i] <= idx[i - 1]) return ESB_E_INPUT;
        if (!finite_float(val[i])) return ESB_E_INPUT;
    }
    return ESB_OK;
}

static float sigmoidf_(float z)
{
    if (z >= 0.0f) return 1.0f / (1.0f + expf(-z));
    {
        float e = expf(z);
        return e / (1.0f + e);
    }
}

/* scikit-learn's probability heads, in place: scores (n_outputs) -> proba (n_classes). */
/* One-vs-rest logistic rows (>= 2 outputs) whose top score m is below OVR_SOFTMAX_BELOW
 * are the softmax of their scores, and uniform below OVR_UNIFORM_BELOW (-ln(DBL_MAX), where
 * scikit-learn's float64 sigmoids are all 0 and it makes the row uniform): the contract of
 * every engine, justified in edgesparse/runtime/heads.py. Sigmoids in float are 0 below
 * about -104; the softmax agrees with the normalised sigmoids to within e^-40 relative. */
#define OVR_SOFTMAX_BELOW (-40.0f)
#define OVR_UNIFORM_BELOW (-709.782712893384f)

static void proba_head(const esb_model *m, float *p)
{
    uint32_t i, n = m->n_outputs;
    float sum = 0.0f, mx = p[0];
    for (i = 1; i < n; i++)
        if (p[i] > mx) mx = p[i];
    if (m->head == ESB_HEAD_LOGISTIC && n > 1 && mx < OVR_UNIFORM_BELOW) {
        for (i = 0; i < n; i++) p[i] = 1.0f / (float)n;
        return;
    }
    if (m->head == ESB_HEAD_SOFTMAX ||
        (m->head == ESB_HEAD_LOGISTIC && n > 1 && mx < OVR_SOFTMAX_BELOW)) {
        for (i = 0; i < n; i++) {
            p[i] = expf(p[i] - mx);
            sum += p[i];
        }
        for (i = 0; i < n; i++) p[i] /= sum;
        return;
    }
    for (i = 0; i < n; i++) {
        if (m->head == ESB_HEAD_LOGISTIC) p[i] = sigmoidf_(p[i]);
        else {
            float s = p[i] < -1.0f ? -1.0f : p[i] > 1.0f ? 1.0f : p[i];
            p[i] = (s + 1.0f) / 2.0f;
        }
    }
    if (n == 1) {
        p[1] = p[0];
        p[0] = 1.0f - p[1];
        return;
    }
    /* one-vs-rest rows sum to 1; a row of zeros becomes uniform (scikit-learn) */
    for (i = 0; i < n; i++) sum += p[i];
    if (sum == 0.0f) {
        for (i = 0; i < n; i++) p[i] = 1.0f / (float)n;
        return;
    }
    for (i = 0; i < n; i++) p[i] /= sum;
}

int esb_has_proba(const esb_model *m)
{
    return m && (m->head == ESB_HEAD_LOGISTIC || m->head == ESB_HEAD_SOFTMAX ||
                 m->head == ESB_HEAD_MODIFIED_HUBER);
}

/* Scores via compute. The dense layout multiplies every input value (zeros included), so a
 * NaN/Inf input makes every score NaN/Inf: for it the dense input check runs only then, and
 * a finite input is recomputed weight by weight (an overflow of q * x alone goes away; a
 * genuine one is ESB_E_INPUT, as in the other layouts). */
static esb_status scores_of(const esb_model *m, const input *in, float *out, uint32_t *best)
{
    int bad = compute(m, in, out, best, 0);
    if (bad && m->layout_ == ESB_LAYOUT_DENSE) {
        if (in->x && check_dense(m, in->x) != ESB_OK) return ESB_E_INPUT;
        bad = compute(m, in, out, best, 1);
    }
    /* Finite input and weights: a NaN/Inf score is an overflow, not a prediction (the numpy
     * runtime raises InputError too). */
    return bad ? ESB_E_INPUT : ESB_OK;
}

static esb_status run_decision(const esb_model *m, const input *in, float *scores)
{
    uint32_t best;
    if (!scores) return ESB_E_ARGUMENT;
    return scores_of(m, in, scores, &best);
}

static esb_status run_predict(const esb_model *m, const input *in, uint32_t *cls)
{
    if (!cls) return ESB_E_ARGUMENT;
    if (m->head == ESB_HEAD_IDENTITY) return ESB_E_HEAD;
    return scores_of(m, in, NULL, cls);
}

static esb_status run_proba(const esb_model *m, const input *in, float *proba)
{
    uint32_t best;
    esb_status st;
    if (!proba) return ESB_E_ARGUMENT;
    if (!esb_has_proba(m)) return ESB_E_HEAD;
    st = scores_of(m, in, proba, &best);
    if (st == ESB_OK) proba_head(m, proba);
    return st;
}

/* The dense input check, or only the argument check where scores_of checks afterwards. */
static esb_status dense_input(const esb_model *m, const float *x)
{
    if (m && m->buf_ && x && m->layout_ == ESB_LAYOUT_DENSE) return ESB_OK;
    return check_dense(m, x);
}

esb_status esb_decision(const esb_model *m, const float *x, float *scores)
{
    input in = {0, 0, 0, 0, 0};
    esb_status st = dense_input(m, x);
    in.x = x;
    return st != ESB_OK ? st : run_decision(m, &in, scores);
}

esb_status esb_predict(const esb_model *m, const float *x, uint32_t *class_index)
{
    input in = {0, 0, 0, 0, 0};
    esb_status st = dense_input(m, x);
    in.x = x;
    return st != ESB_OK ? st : run_predict(m, &in, class_index);
}

esb_status esb_predict_proba(const esb_model *m, const float *x, float *proba)
{
    input in = {0, 0, 0, 0, 0};
    esb_status st = dense_input(m, x);
    in.x = x;
    return st != ESB_OK ? st : run_proba(m, &in, proba);
}

#define CSR_INPUT(in) input in = {0, 0, 0, 0, 0}; in.nnz = nnz; in.idx = indices; in.val = values

esb_status esb_decision_csr(const esb_model *m, uint32_t nnz, const int32_t *indices,
                            const float *values, float *scores)
{
    esb_status st = check_csr(m, nnz, indices, values);
    CSR_INPUT(in);
    return st != ESB_OK ? st : run_decision(m, &in, scores);
}

esb_status esb_predict_csr(const esb_model *m, uint32_t nnz, const int32_t *indices,
                           const float *values, uint32_t *class_index)
{
    esb_status st = check_csr(m, nnz, indices, values);
    CSR_INPUT(in);
    return st != ESB_OK ? st : run_predict(m, &in, class_index);
}

esb_status esb_predict_proba_csr(const esb_model *m, uint32_t nnz, const int32_t *indices,
                                 const float *values, float *proba)
{
    esb_status st = check_csr(m, nnz, indices, values);
    CSR_INPUT(in);
    return st != ESB_OK ? st : run_proba(m, &in, proba);
}

/* ---------------------------------------------------------------------------------------- */
/* Batch calls                                                                               */
/* ---------------------------------------------------------------------------------------- */
enum { BATCH_DECISION, BATCH_PREDICT, BATCH_PROBA };
/* Dense layout, fast path. Input rows go 4 at a time (8 with the AVX kernels), one row per
 * vector lane: their features transposed into xt (xt[c] = feature c of rows 0..3; with AVX
 * rows 0..3 then 4..7, two vectors per feature). The weights are converted to float once
 * (exact: q, or q * 2^e), each repeated in the 4 lanes, feature-major by groups of at most
 * BATCH_GROUP outputs (w[c * P + p]: feature c of the group's output p), each group followed
 * by its P scales and P biases. One stack buffer of BATCH_V4 vectors holds xt (wofs vectors)
 * and as many groups as fit (all of them, converted once per call, when n_outputs *
 * (n_features + 2) <= BATCH_V4 - wofs; otherwise re-converted per block of BATCH_ROWS rows).
 * Models with more than 512 features take wide_rows below; batches of fewer than 4 rows the
 * one-row calls. */
#define BATCH_V4 1026u
#define BATCH_ROWS 32u
#define BATCH_GROUP 7u /* outputs per kernel pass: 2 * 7 accumulators + xt in 16 SSE registers */
#define LANES 16

/* 4 floats. GCC and clang get their vector extension (SSE2 / NEON, elementwise IEEE operations
 * in the lanes, so the same bits as the scalar code); other compilers, or -DESB_NO_VECTOR_EXT,
 * the plain struct (and no AVX kernels). */
#if (defined(__GNUC__) || defined(__clang__)) && !defined(ESB_NO_VECTOR_EXT)
#define ESB_VECTOR_EXT 1
#endif
#ifdef ESB_VECTOR_EXT
typedef float v4 __attribute__((vector_size(16)));
#define V4_ADD(a, b) ((a) + (b))
#define V4_MUL(a, b) ((a) * (b))
#define V4_LANE(v, k) ((v)[k])
static v4 v4_set(float a, float b, float c, float d)
{
    v4 v = {a, b, c, d};
    return v;
}
#else
typedef struct v4 { float f[4]; } v4;
static v4 v4_add(v4 a, v4 b)
{
    int k;
    for (k = 0; k < 4; k++) a.f[k] += b.f[k];
    return a;
}
static v4 v4_mul(v4 a, v4 b)
{
    int k;
    for (k = 0; k < 4; k++) a.f[k] *= b.f[k];
    return a;
}
#define V4_ADD(a, b) v4_add(a, b)
#define V4_MUL(a, b) v4_mul(a, b)
#define V4_LANE(v, k) ((v).f[k])
static v4 v4_set(float a, float b, float c, float d)
{
    v4 v;
    v.f[0] = a, v.f[1] = b, v.f[2] = c, v.f[3] = d;
    return v;
}
#endif

/* take() for 4 rows at once, on output r (> 0) with scores s: where s > *best (NaN never is),
 * *best = s and *idx = r (a float: exact, as the fast path takes n_outputs < 2^24 only). */
static void v4_take(v4 s, float r, v4 *best, v4 *idx)
{
#ifdef ESB_VECTOR_EXT
    typedef int32_t v4i __attribute__((vector_size(16)));
    const v4i gt = (v4i)(s > *best);
    const v4 rv = v4_set(r, r, r, r);
    *best = (v4)((gt & (v4i)s) | (~gt & (v4i)*best));
    *idx = (v4)((gt & (v4i)rv) | (~gt & (v4i)*idx));
#else
    int k;
    for (k = 0; k < 4; k++)
        if (s.f[k] > best->f[k]) best->f[k] = s.f[k], idx->f[k] = r;
#endif
}

/* The sums of P outputs (weights w, see above) for the 4 rows in xt, in s[0 .. P): for each,
 * the operations of dot_i8 / dot_i8_pow2 / dot_i16 in the same order (the tail features in
 * order from 0; lane j sums features j, j + 16, ... from 0; then the tail plus lane 0, 1, ...,
 * 15), so the same bits, one row per vector lane. Each instance has a constant P and its
 * accumulators as named variables (BATCH_REP), which compilers keep in registers where an
 * array indexed in a loop would stay in memory at -O2. */
#define BATCH_REP(M) M(0) M(1) M(2) M(3) M(4) M(5) M(6)
#define BATCH_DECL(k) v4 t##k = zero, a##k = zero;
#define BATCH_TAIL(k) if (NP > k) t##k = V4_ADD(t##k, V4_MUL(w[c * NP + k], xc));
#define BATCH_ZERO(k) a##k = zero;
#define BATCH_LANE(k) if (NP > k) a##k = V4_ADD(a##k, V4_MUL(w[c * NP + k], xc));
#define BATCH_FOLD(k) t##k = V4_ADD(t##k, a##k);
#define BATCH_OUT(k) if (NP > k) s[k] = full ? t##k : V4_ADD(t##k, zero);
#define BATCH_KERNEL(P)                                                                        \
    static void batch_kernel_##P(const v4 *restrict w, const v4 *restrict xt, size_t n,      \
                                 v4 *restrict s)                                             \
    {                                                                                          \
        enum { NP = P };                                                                       \
        const v4 zero = v4_set(0.0f, 0.0f, 0.0f, 0.0f);                                        \
        size_t c, j, full = n / LANES * LANES;                                                 \
        BATCH_REP(BATCH_DECL)                                                                  \
        for (c = full; c < n; c++) {                                                           \
            const v4 xc = xt[c];                                                               \
            BATCH_REP(BATCH_TAIL)                                                              \
        }                                                                                      \
        for (j = 0; j < (full ? LANES : 0); j++) {                                             \
            BATCH_REP(BATCH_ZERO)                                                              \
            for (c = j; c < full; c += LANES) {                                                \
                const v4 xc = xt[c];                                                           \
                BATCH_REP(BATCH_LANE)                                                          \
            }                                                                                  \
            BATCH_REP(BATCH_FOLD)                                                              \
        }                                                                                      \
        /* no lanes: adding their 16 zeros is adding +0 once */                               \
        BATCH_REP(BATCH_OUT)                                                                   \
    }
BATCH_KERNEL(1)
BATCH_KERNEL(2)
BATCH_KERNEL(3)
BATCH_KERNEL(4)
BATCH_KERNEL(5)
BATCH_KERNEL(6)
BATCH_KERNEL(7)
#undef BATCH_KERNEL
#undef BATCH_DECL
#undef BATCH_TAIL
#undef BATCH_ZERO
#undef BATCH_LANE
#undef BATCH_FOLD
#undef BATCH_OUT

typedef void (*batch_kernel_fn)(const v4 *, const v4 *, size_t, v4 *);
static const batch_kernel_fn BATCH_KERNELS[BATCH_GROUP + 1] = {
    NULL, batch_kernel_1, batch_kernel_2, batch_kernel_3, batch_kernel_4,
    batch_kernel_5, batch_kernel_6, batch_kernel_7};

/* x86 with GCC or clang: the same kernels 8 rows at a time in AVX registers (a function
 * attribute, chosen at run time when the CPU has AVX; the build flags stay baseline x86-64).
 * Same operations on each lane in the same order, no FMA: the same bits. -DESB_NO_AVX drops
 * it (the 4-row kernels run everywhere). */
#if defined(ESB_VECTOR_EXT) && (defined(__x86_64__) || defined(__i386__)) && \
    !defined(ESB_NO_AVX)
#define ESB_BATCH_AVX 1
typedef float v8 __attribute__((vector_size(32)));
/* xt: 8 rows per feature (2 vectors of 4); w as above (lane 0 broadcast); s: 8 floats per
 * output. */
#define BATCH_DECL8(k) v8 t##k = zero, a##k = zero;
#define BATCH_W8(k) ((v8){w[c * NP + k][0], w[c * NP + k][0], w[c * NP + k][0],            \
                          w[c * NP + k][0], w[c * NP + k][0], w[c * NP + k][0],            \
                          w[c * NP + k][0], w[c * NP + k][0]})
#define BATCH_TAIL8(k) if (NP > k) t##k = t##k + BATCH_W8(k) * xc;
#define BATCH_ZERO8(k) a##k = zero;
#define BATCH_LANE8(k) if (NP > k) a##k = a##k + BATCH_W8(k) * xc;
#define BATCH_FOLD8(k) t##k = t##k + a##k;
#define BATCH_OUT8(k)                                                                          \
    if (NP > k) {                                                                              \
        if (!full) t##k = t##k + zero;                                                         \
        memcpy(s + 8 * k, &t##k, 32);                                                          \
    }
#define BATCH_KERNEL8(P)                                                                       \
    __attribute__((target("avx"))) static void batch_kernel8_##P(                             \
        const v4 *restrict w, const v4 *restrict xt, size_t n, float *restrict s)            \
    {                                                                                          \
        enum { NP = P };                                                                       \
        const v8 zero = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};                      \
        size_t c, j, full = n / LANES * LANES;                                                 \
        v8 xc;                                                                                 \
        BATCH_REP(BATCH_DECL8)                                                                 \
        for (c = full; c < n; c++) {                                                           \
            memcpy(&xc, xt + 2 * c, 32);                                                       \
            BATCH_REP(BATCH_TAIL8)                                                             \
        }                                                                                      \
        for (j = 0; j < (full ? LANES : 0); j++) {                                             \
            BATCH_REP(BATCH_ZERO8)                                                             \
            for (c = j; c < full; c += LANES) {                                                \
                memcpy(&xc, xt + 2 * c, 32);                                                   \
                BATCH_REP(BATCH_LANE8)                                                         \
            }                                                                                  \
            BATCH_REP(BATCH_FOLD8)                                                             \
        }                                                                                      \
        BATCH_REP(BATCH_OUT8)                                                                  \
    }
BATCH_KERNEL8(1)
BATCH_KERNEL8(2)
BATCH_KERNEL8(3)
BATCH_KERNEL8(4)
BATCH_KERNEL8(5)
BATCH_KERNEL8(6)
BATCH_KERNEL8(7)
#undef BATCH_KERNEL8
#undef BATCH_DECL8
#undef BATCH_W8
#undef BATCH_TAIL8
#undef BATCH_ZERO8
#undef BATCH_LANE8
#undef BATCH_FOLD8
#undef BATCH_OUT8

typedef void (*batch_kernel8_fn)(const v4 *, const v4 *, size_t, float *);
static const batch_kernel8_fn BATCH_KERNELS8[BATCH_GROUP + 1] = {
    NULL, batch_kernel8_1, batch_kernel8_2, batch_kernel8_3, batch_kernel8_4,
    batch_kernel8_5, batch_kernel8_6, batch_kernel8_7};

static int batch_avx(void)
{
    __builtin_cpu_init(); /* idempotent; needed where this runs before constructors */
    return __builtin_cpu_supports("avx");
}
#else
static int batch_avx(void) { return 0; }
#endif
#undef BATCH_REP

/* Row i's output slot: scores (decision, proba) or NULL (predict). */
static float *batch_slot(const esb_model *m, int op, void *out, size_t i)
{
    if (op == BATCH_DECISION) return (float *)out + i * m->n_outputs;
    if (op == BATCH_PROBA) return (float *)out + i * m->n_classes;
    return NULL;
}

/* Output rows [r0, r1) of the dense layout as one group into w (P = r1 - r0): the weights,
 * then the P scales, then the P biases (as floats), each in the 4 lanes; *next: row r0's
 * weights, advanced past row r1 - 1's. Returns the vectors written, P * (n_features + 2). */
static size_t load_group(const esb_model *m, uint32_t r0, uint32_t r1, const int8_t **next,
                         v4 *w)
{
    const size_t nf = m->n_features, np = r1 - r0;
    size_t c;
    uint32_t r;
    float f = 1.0f, q;
    for (r = r0; r < r1; r++) {
        const int wide = m->mixed_ && is_wide(m, r);
        const float sc = scale_of(m, r), bi = (float)bias_of(m, r);
        for (c = 0; c < nf; c++) {
            if (m->dfac_) memcpy(&f, &m->dfac_[c], 4);
            q = m->dfac_ ? dense_q(*next, c, wide) * f : dense_q(*next, c, wide);
            w[c * np + (r - r0)] = v4_set(q, q, q, q);
        }
        w[nf * np + (r - r0)] = v4_set(sc, sc, sc, sc);
        w[(nf + 1) * np + (r - r0)] = v4_set(bi, bi, bi, bi);
        *next += wide ? 2 * nf : nf;
    }
    return np * (nf + 2);
}

/* Outputs per group: as even as possible, at most BATCH_GROUP (and `cap`). */
static uint32_t group_size(uint32_t n_outputs, uint32_t cap)
{
    uint32_t g, most = cap < BATCH_GROUP ? cap : BATCH_GROUP;
    g = (n_outputs + most - 1) / most;
    return (n_outputs + g - 1) / g;
}

typedef struct batch_state {
    v4 buf[BATCH_V4];   /* xt, then the converted groups (from buf + wofs on) */
    size_t wofs;        /* n_features, 2 * n_features with the 8-row kernels */
    int eight;          /* rows go 8 at a time (AVX kernels) */
    uint32_t gsize;     /* outputs per group */
    uint32_t r_begin;   /* outputs converted into buf: [r_begin, r_end) */
    uint32_t r_end;
    const int8_t *next; /* dense weights of output r_end */
    /* per 4 rows of the block: take()'s running maximum and its output, and the sum of
     * s - s over the scores (0, or NaN once a score is NaN/Inf) */
    v4 best_s[BATCH_ROWS / 4], best[BATCH_ROWS / 4], bad[BATCH_ROWS / 4];
} batch_state;

/* Convert the groups from output r0 on that fit into the buffer (after xt). */
static void load_groups(const esb_model *m, batch_state *b, uint32_t r0)
{
    const size_t nf = m->n_features, room = BATCH_V4 - b->wofs;
    size_t used = 0;
    uint32_t r1, e;
    if (r0 == 0) b->next = m->dense_;
    for (b->r_begin = r1 = r0; r1 < m->n_outputs; r1 = e) {
        e = m->n_outputs - r1 < b->gsize ? m->n_outputs : r1 + b->gsize;
        if (used + (e - r1) * (nf + 2) > room) break;
        used += load_group(m, r1, e, &b->next, b->buf + b->wofs + used);
    }
    b->r_end = r1;
}

/* Rows i .. i + 3 (row nb - 1 in place of those past it) into xt[0], xt[step], ...:
 * transposed 4 features at a time where the compiler has vector shuffles. */
static inline void load_rows(const esb_model *m, const float *x, size_t stride, size_t i,
                             size_t nb, v4 *xt, size_t step)
{
    const size_t nf = m->n_features;
    const float *x0 = x + (i < nb ? i : nb - 1) * stride;
    const float *x1 = i + 1 < nb ? x0 + stride : x0;
    const float *x2 = i + 2 < nb ? x1 + stride : x1;
    const float *x3 = i + 3 < nb ? x2 + stride : x2;
    size_t c = 0;
#if defined(ESB_VECTOR_EXT) && (defined(__clang__) || __GNUC__ >= 12)
#define SHUF(a, b, i, j, k, l) __builtin_shufflevector(a, b, i, j, k, l)
#elif defined(ESB_VECTOR_EXT)
    typedef int32_t v4i __attribute__((vector_size(16)));
#define SHUF(a, b, i, j, k, l) __builtin_shuffle(a, b, (v4i){i, j, k, l})
#endif
#ifdef SHUF
    for (; c + 4 <= nf; c += 4) {
        v4 r0, r1, r2, r3, lo01, hi01, lo23, hi23;
        memcpy(&r0, x0 + c, 16); /* unaligned loads */
        memcpy(&r1, x1 + c, 16);
        memcpy(&r2, x2 + c, 16);
        memcpy(&r3, x3 + c, 16);
        lo01 = SHUF(r0, r1, 0, 4, 1, 5);
        hi01 = SHUF(r0, r1, 2, 6, 3, 7);
        lo23 = SHUF(r2, r3, 0, 4, 1, 5);
        hi23 = SHUF(r2, r3, 2, 6, 3, 7);
        xt[c * step] = SHUF(lo01, lo23, 0, 1, 4, 5);
        xt[(c + 1) * step] = SHUF(lo01, lo23, 2, 3, 6, 7);
        xt[(c + 2) * step] = SHUF(hi01, hi23, 0, 1, 4, 5);
        xt[(c + 3) * step] = SHUF(hi01, hi23, 2, 3, 6, 7);
    }
#undef SHUF
#endif
    for (; c < nf; c++) xt[c * step] = v4_set(x0[c], x1[c], x2[c], x3[c]);
}

/* A group's scores s (np outputs from r0; sb: their scales, then their biases) for 4 rows:
 * times scale, plus bias, taken as take() does, output by output, into the rows' running
 * maximum, argmax and NaN/Inf sum; out (if not NULL): the first row's output slot, the next
 * row's `step` floats on, n_row rows. */
static inline void finish_quad(const v4 *sb, uint32_t np, uint32_t r0, const v4 *s, v4 *best_s,
                               v4 *best, v4 *bad, float *out, size_t step, size_t n_row)
{
    const v4 minus1 = v4_set(-1.0f, -1.0f, -1.0f, -1.0f);
    uint32_t k;
    size_t row;
    for (k = 0; k < np; k++) {
        const uint32_t r = r0 + k;
        const v4 z = V4_ADD(V4_MUL(sb[k], s[k]), sb[np + k]);
        *bad = V4_ADD(*bad, V4_ADD(z, V4_MUL(z, minus1))); /* z - z: 0, or NaN */
        if (r == 0) {
            *best_s = z;
            *best = v4_set(0.0f, 0.0f, 0.0f, 0.0f);
        } else {
            v4_take(z, (float)r, best_s, best);
        }
        if (out)
            for (row = 0; row < n_row; row++) out[row * step + r] = V4_LANE(z, row);
    }
}

/* The converted groups' scores for rows [i, i + 4) of the block (out: row i's output slot, or
 * NULL; the next row's `step` floats on) through finish_quad. */
static void run_groups(const esb_model *m, batch_state *b, size_t i, size_t nb, float *out,
                       size_t step)
{
    const size_t nf = m->n_features, q = i / 4, n_row = nb - i < 4 ? nb - i : 4;
    const v4 *w = b->buf + b->wofs;
    v4 best_s = b->best_s[q], best = b->best[q], bad = b->bad[q];
    uint32_t r0;
    for (r0 = b->r_begin; r0 < b->r_end; r0 += b->gsize) {
        const uint32_t np = b->r_end - r0 < b->gsize ? b->r_end - r0 : b->gsize;
        v4 s[BATCH_GROUP];
        BATCH_KERNELS[np](w, b->buf, nf, s);
        w += (size_t)np * nf;
        finish_quad(w, np, r0, s, &best_s, &best, &bad, out, step, n_row);
        w += 2 * (size_t)np;
    }
    b->best_s[q] = best_s;
    b->best[q] = best;
    b->bad[q] = bad;
}

#ifdef ESB_BATCH_AVX
/* run_groups for rows [i, i + 8) with the 8-row kernels (rows past nb computed, not taken). */
static void run_groups8(const esb_model *m, batch_state *b, size_t i, size_t nb, float *out,
                        size_t step)
{
    const size_t nf = m->n_features, q = i / 4;
    const size_t n_lo = nb - i < 4 ? nb - i : 4;
    const size_t n_hi = nb - i <= 4 ? 0 : nb - i - 4 < 4 ? nb - i - 4 : 4;
    const v4 *w = b->buf + b->wofs;
    v4 best_s0 = b->best_s[q], best0 = b->best[q], bad0 = b->bad[q];
    v4 best_s1 = b->best_s[q + 1], best1 = b->best[q + 1], bad1 = b->bad[q + 1];
    uint32_t r0, k;
    for (r0 = b->r_begin; r0 < b->r_end; r0 += b->gsize) {
        const uint32_t np = b->r_end - r0 < b->gsize ? b->r_end - r0 : b->gsize;
        float s8[8 * BATCH_GROUP];
        v4 lo[BATCH_GROUP], hi[BATCH_GROUP];
        BATCH_KERNELS8[np](w, b->buf, nf, s8);
        for (k = 0; k < np; k++) {
            memcpy(&lo[k], s8 + 8 * k, 16);
            memcpy(&hi[k], s8 + 8 * k + 4, 16);
        }
        w += (size_t)np * nf;
        finish_quad(w, np, r0, lo, &best_s0, &best0, &bad0, out, step, n_lo);
        if (n_hi)
            finish_quad(w, np, r0, hi, &best_s1, &best1, &bad1, out ? out + 4 * step : NULL,
                        step, n_hi);
        w += 2 * (size_t)np;
    }
    b->best_s[q] = best_s0;
    b->best[q] = best0;
    b->bad[q] = bad0;
    if (n_hi) {
        b->best_s[q + 1] = best_s1;
        b->best[q + 1] = best1;
        b->bad[q + 1] = bad1;
    }
}
#endif

/* One row through the one-row entry points (every layout; the fallback of the fast path). */
static esb_status batch_row(const esb_model *m, const float *x, int op, void *out, size_t i)
{
    if (op == BATCH_PREDICT) return esb_predict(m, x, (uint32_t *)out + i);
    if (op == BATCH_PROBA) return esb_predict_proba(m, x, batch_slot(m, op, out, i));
    return esb_decision(m, x, batch_slot(m, op, out, i));
}

/* Rows [i0, i0 + nb) of a dense-layout model (nb <= BATCH_ROWS): the scores of compute_dense /
 * compute_dense_mixed without `exact`, then each row's output as the one-row call makes it
 * from them; a row with a NaN/Inf score goes to the one-row call (input check, exact
 * recompute), which decides. Stops at the first row that call refuses, as run_batch says. */
static esb_status dense_block(const esb_model *m, const float *x, size_t stride, int op,
                              void *out, size_t i0, size_t nb, batch_state *b, size_t *n_done)
{
    const size_t step = op == BATCH_PROBA ? m->n_classes : m->n_outputs;
    size_t i;
    uint32_t r0;
    esb_status st;
    for (i = 0; i < nb; i += 4) b->bad[i / 4] = v4_set(0.0f, 0.0f, 0.0f, 0.0f);
    for (r0 = 0; r0 < m->n_outputs; r0 = b->r_end) {
        if (b->r_begin != r0 || b->r_end == 0) load_groups(m, b, r0);
#ifdef ESB_BATCH_AVX
        if (b->eight) {
            for (i = 0; i < nb; i += 8) {
                load_rows(m, x + i0 * stride, stride, i, nb, b->buf, 2);
                load_rows(m, x + i0 * stride, stride, i + 4, nb, b->buf + 1, 2);
                run_groups8(m, b, i, nb, batch_slot(m, op, out, i0 + i), step);
            }
            continue;
        }
#endif
        for (i = 0; i < nb; i += 4) {
            load_rows(m, x + i0 * stride, stride, i, nb, b->buf, 1);
            run_groups(m, b, i, nb, batch_slot(m, op, out, i0 + i), step);
        }
    }
    for (i = 0; i < nb; i++) {
        const size_t q = i / 4, k = i % 4;
        if (V4_LANE(b->bad[q], k) != 0.0f) {
            st = batch_row(m, x + (i0 + i) * stride, op, out, i0 + i);
            if (st != ESB_OK) {
                if (n_done) *n_done = i0 + i;
                return st;
            }
        } else if (op == BATCH_PREDICT) {
            ((uint32_t *)out)[i0 + i] = m->n_outputs == 1 ? V4_LANE(b->best_s[q], k) > 0.0f
                                                          : (uint32_t)V4_LANE(b->best[q], k);
        } else if (op == BATCH_PROBA) {
            proba_head(m, batch_slot(m, op, out, i0 + i));
        }
    }
    if (n_done) *n_done = i0 + nb;
    return ESB_OK;
}

static esb_status batch_finish(const esb_model *m, int op, void *out, size_t i, const pick *p);

/* Dense layout, models wider than the blocked kernel's 512 features: rows go 2 at a time (4
 * with the AVX kernel), each output's dot products over all their features in one pass that
 * converts each weight to float once for those rows (exact: q, or q * 2^e; int16 rows too).
 * Each row keeps the 16 lane sums of dot_i8 / dot_i8_pow2 / dot_i16 (lane l: features l,
 * l + 16, ... in order) in vector registers; then its score is finished as the one-row kernel
 * does (the leftover features in order, plus lane 0, 1, ..., 15; times scale, plus bias), so
 * the same bits. The rows stream through in order, a few at a time, prefetched ahead (a
 * tiled loop that jumped between rows was 2x slower); with several outputs the later passes
 * read them from cache. Stack: a few hundred bytes. */
#define WIDE_LANES 16u
/* Each row is prefetched WIDE_AHEAD floats (4 KiB) ahead of the kernel, one cache line per 16
 * features: measured 1.5x faster at 20 000 features, where the rows come from memory. An
 * address computed as an integer (a hint past a row's end is never dereferenced). */
#define WIDE_AHEAD 1024u
#if defined(__GNUC__) || defined(__clang__)
#define WIDE_PREFETCH(p) __builtin_prefetch((const void *)((uintptr_t)(p) + 4u * WIDE_AHEAD))
#else
#define WIDE_PREFETCH(p) ((void)0)
#endif

/* Weights c .. c + 3 of a dense row (int16 when wide) as the one-row kernels multiply them:
 * q, or q * 2^e (f: the factors 2^e, float bits, or NULL). Converted in vector registers
 * where the compiler has __builtin_convertvector (int8 and int16 to float are exact). */
#if defined(ESB_VECTOR_EXT) && (defined(__clang__) || __GNUC__ >= 9)
#define ESB_WIDE_CONVERT 1
#endif
static inline v4 wide_w4(const int8_t *q, const int32_t *f, size_t c, int wide)
{
    v4 w, g;
#ifdef ESB_WIDE_CONVERT
    typedef int8_t c4 __attribute__((vector_size(4)));
    typedef int16_t h4 __attribute__((vector_size(8)));
    typedef int32_t i4v __attribute__((vector_size(16)));
    if (wide) { /* through int32 lanes: a vector conversion (directly, gcc goes lane by lane) */
        h4 h;
        memcpy(&h, q + 2 * c, 8);
        w = __builtin_convertvector(__builtin_convertvector(h, i4v), v4);
    } else {
        c4 b;
        memcpy(&b, q + c, 4);
        w = __builtin_convertvector(__builtin_convertvector(b, i4v), v4);
    }
#else
    w = v4_set(dense_q(q, c, wide), dense_q(q, c + 1, wide), dense_q(q, c + 2, wide),
               dense_q(q, c + 3, wide));
#endif
    if (!f) return w;
    memcpy(&g, f + c, 16);
    return V4_MUL(w, g);
}

/* The lane sums of rows x0 and x1 (a0, a1: 16 floats each) over features [0, full) (a
 * multiple of 16) with the dense row q (wide: int16; f as wide_w4):
 * a[l] = sum of w[c] * x[c] for c = l, l + 16, ..., in order, from +0. */
static void wide_lanes2(const int8_t *q, const int32_t *f, int wide, const float *x0,
                        const float *x1, size_t full, float *a0, float *a1)
{
    const v4 zero = v4_set(0.0f, 0.0f, 0.0f, 0.0f);
    v4 s0 = zero, s1 = zero, s2 = zero, s3 = zero, t0 = zero, t1 = zero, t2 = zero, t3 = zero;
    v4 w0, w1, w2, w3, xv;
    size_t c;
    for (c = 0; c < full; c += WIDE_LANES) {
        w0 = wide_w4(q, f, c, wide);
        w1 = wide_w4(q, f, c + 4, wide);
        w2 = wide_w4(q, f, c + 8, wide);
        w3 = wide_w4(q, f, c + 12, wide);
        WIDE_PREFETCH(x0 + c);
        WIDE_PREFETCH(x1 + c);
        memcpy(&xv, x0 + c, 16), s0 = V4_ADD(s0, V4_MUL(w0, xv));
        memcpy(&xv, x0 + c + 4, 16), s1 = V4_ADD(s1, V4_MUL(w1, xv));
        memcpy(&xv, x0 + c + 8, 16), s2 = V4_ADD(s2, V4_MUL(w2, xv));
        memcpy(&xv, x0 + c + 12, 16), s3 = V4_ADD(s3, V4_MUL(w3, xv));
        memcpy(&xv, x1 + c, 16), t0 = V4_ADD(t0, V4_MUL(w0, xv));
        memcpy(&xv, x1 + c + 4, 16), t1 = V4_ADD(t1, V4_MUL(w1, xv));
        memcpy(&xv, x1 + c + 8, 16), t2 = V4_ADD(t2, V4_MUL(w2, xv));
        memcpy(&xv, x1 + c + 12, 16), t3 = V4_ADD(t3, V4_MUL(w3, xv));
    }
    memcpy(a0, &s0, 16), memcpy(a0 + 4, &s1, 16), memcpy(a0 + 8, &s2, 16);
    memcpy(a0 + 12, &s3, 16), memcpy(a1, &t0, 16), memcpy(a1 + 4, &t1, 16);
    memcpy(a1 + 8, &t2, 16), memcpy(a1 + 12, &t3, 16);
}

#ifdef ESB_BATCH_AVX
/* wide_w4 for weights c .. c + 7, in an AVX vector. */
__attribute__((target("avx"))) static inline v8 wide_w8(const int8_t *q, const int32_t *f,
                                                         size_t c, int wide)
{
    v8 w, g;
#ifdef ESB_WIDE_CONVERT
    typedef int8_t c8 __attribute__((vector_size(8)));
    typedef int16_t h8 __attribute__((vector_size(16)));
    typedef int32_t i8v __attribute__((vector_size(32)));
    if (wide) {
        h8 h;
        memcpy(&h, q + 2 * c, 16);
        w = __builtin_convertvector(__builtin_convertvector(h, i8v), v8);
    } else {
        c8 b;
        memcpy(&b, q + c, 8);
        w = __builtin_convertvector(__builtin_convertvector(b, i8v), v8);
    }
#else
    const v4 lo = wide_w4(q, NULL, c, wide), hi = wide_w4(q, NULL, c + 4, wide);
    w = (v8){lo[0], lo[1], lo[2], lo[3], hi[0], hi[1], hi[2], hi[3]};
#endif
    if (!f) return w;
    memcpy(&g, f + c, 32);
    return w * g;
}

/* wide_lanes2 for 4 rows x[0..3] (sums a: 16 floats per row), lanes 0-7 and 8-15 in AVX
 * vectors. */
__attribute__((target("avx"))) static void wide_lanes4(const int8_t *q, const int32_t *f,
                                                        int wide, const float *const *x,
                                                        size_t full, float *a)
{
    const v8 zero = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
    v8 s0 = zero, s1 = zero, s2 = zero, s3 = zero, s4 = zero, s5 = zero, s6 = zero, s7 = zero;
    v8 w0, w1, xv;
    const float *x0 = x[0], *x1 = x[1], *x2 = x[2], *x3 = x[3];
    size_t c;
    for (c = 0; c < full; c += WIDE_LANES) {
        w0 = wide_w8(q, f, c, wide);
        w1 = wide_w8(q, f, c + 8, wide);
        WIDE_PREFETCH(x0 + c);
        WIDE_PREFETCH(x1 + c);
        WIDE_PREFETCH(x2 + c);
        WIDE_PREFETCH(x3 + c);
        memcpy(&xv, x0 + c, 32), s0 = s0 + w0 * xv;
        memcpy(&xv, x0 + c + 8, 32), s1 = s1 + w1 * xv;
        memcpy(&xv, x1 + c, 32), s2 = s2 + w0 * xv;
        memcpy(&xv, x1 + c + 8, 32), s3 = s3 + w1 * xv;
        memcpy(&xv, x2 + c, 32), s4 = s4 + w0 * xv;
        memcpy(&xv, x2 + c + 8, 32), s5 = s5 + w1 * xv;
        memcpy(&xv, x3 + c, 32), s6 = s6 + w0 * xv;
        memcpy(&xv, x3 + c + 8, 32), s7 = s7 + w1 * xv;
    }
    memcpy(a, &s0, 32), memcpy(a + 8, &s1, 32), memcpy(a + 16, &s2, 32);
    memcpy(a + 24, &s3, 32), memcpy(a + 32, &s4, 32), memcpy(a + 40, &s5, 32);
    memcpy(a + 48, &s6, 32), memcpy(a + 56, &s7, 32);
}
#endif

/* Rows [i0, i0 + nr) (nr <= 4; rows past them computed from the last one, not taken) of a
 * wide dense-layout model: the scores of compute_dense / compute_dense_mixed without
 * `exact`, then each row's output as dense_block makes it (a NaN/Inf score: the one-row call
 * decides). Stops at the first row that call refuses, as run_batch says. */
static esb_status wide_rows(const esb_model *m, const float *x, size_t stride, int op,
                            void *out, size_t i0, size_t nr, int eight, size_t *n_done)
{
    const size_t nf = m->n_features, full = nf / WIDE_LANES * WIDE_LANES;
    const int32_t *fac = m->dfac_;
    const int8_t *next = m->dense_;
    const float *xr[4];
    float lanes[4 * WIDE_LANES], g = 1.0f;
    pick p[4];
    uint32_t r;
    size_t i, c, l;
    esb_status st;
    for (i = 0; i < 4; i++) {
        xr[i] = x + (i0 + (i < nr ? i : nr - 1)) * stride;
        p[i].out = i < nr ? batch_slot(m, op, out, i0 + i) : NULL;
        p[i].best_s = 0.0f;
        p[i].best = 0;
        p[i].bad = 0;
    }
    for (r = 0; r < m->n_outputs; r++) {
        const int wide = m->mixed_ && is_wide(m, r);
        const int8_t *q = next;
        const float scale = scale_of(m, r), bias = (float)bias_of(m, r);
        next += wide ? 2 * nf : nf;
#ifdef ESB_BATCH_AVX
        if (eight)
            wide_lanes4(q, fac, wide, xr, full, lanes);
        else
#endif
        {
            (void)eight;
            wide_lanes2(q, fac, wide, xr[0], xr[1], full, lanes, lanes + WIDE_LANES);
            if (nr > 2)
                wide_lanes2(q, fac, wide, xr[2], xr[3], full, lanes + 2 * WIDE_LANES,
                            lanes + 3 * WIDE_LANES);
        }
        for (i = 0; i < nr; i++) {
            float s = 0.0f;
            for (c = full; c < nf; c++) {
                if (fac) memcpy(&g, &fac[c], 4);
                s += (dense_q(q, c, wide) * g) * xr[i][c]; /* * 1.0f: exact */
            }
            for (l = 0; l < WIDE_LANES; l++) s += lanes[i * WIDE_LANES + l];
            take(scale * s + bias, r, &p[i]);
        }
    }
    for (i = 0; i < nr; i++) {
        if (p[i].bad) { /* the one-row call: input check, exact recompute */
            st = batch_row(m, xr[i], op, out, i0 + i);
            if (st != ESB_OK) {
                if (n_done) *n_done = i0 + i;
                return st;
            }
        } else {
            batch_finish(m, op, out, i0 + i, &p[i]);
        }
    }
    if (n_done) *n_done = i0 + nr;
    return ESB_OK;
}

static esb_status run_batch(const esb_model *m, const float *x, size_t n_rows, size_t stride,
                            int op, void *out, size_t *n_done)
{
    batch_state b;
    size_t i0, i;
    esb_status st = ESB_OK;
    if (n_done) *n_done = 0;
    if (!m || !m->buf_ || (n_rows && (!x || !out)) || (n_rows > 1 && stride < m->n_features))
        return ESB_E_ARGUMENT;
    if (op == BATCH_PREDICT && m->head == ESB_HEAD_IDENTITY) return ESB_E_HEAD;
    if (op == BATCH_PROBA && !esb_has_proba(m)) return ESB_E_HEAD;
    if (m->layout_ == ESB_LAYOUT_DENSE && m->n_features > (BATCH_V4 - 2) / 2 && n_rows >= 4) {
        const int eight = batch_avx();
        for (i0 = 0; i0 < n_rows && st == ESB_OK; i0 += 4)
            st = wide_rows(m, x, stride, op, out, i0, n_rows - i0 < 4 ? n_rows - i0 : 4, eight,
                           n_done);
        return st;
    }
    /* fewer than 4 rows: converting the weights costs more than the kernel saves */
    if (m->layout_ != ESB_LAYOUT_DENSE || m->n_features > (BATCH_V4 - 2) / 2 ||
        m->n_outputs >= 1u << 24 || n_rows < 4) {
        for (i = 0; i < n_rows && st == ESB_OK; i++) {
            st = batch_row(m, x + i * stride, op, out, i);
            if (st == ESB_OK && n_done) *n_done = i + 1;
        }
        return st;
    }
    /* 8 rows at a time where the kernel's work outweighs the per-block costs (measured: the
     * 4-row path is faster on 3 x 4 and 1 x 10 models) */
    b.eight = (uint64_t)m->n_features * m->n_outputs >= 64 &&
              3 * (size_t)m->n_features + 2 <= BATCH_V4 && batch_avx();
    b.wofs = (b.eight ? 2 : 1) * (size_t)m->n_features;
    b.gsize = group_size(m->n_outputs, (uint32_t)((BATCH_V4 - b.wofs) / (m->n_features + 2)));
    b.r_begin = b.r_end = 0;
    for (i0 = 0; i0 < n_rows && st == ESB_OK; i0 += BATCH_ROWS)
        st = dense_block(m, x, stride, op, out, i0,
                         n_rows - i0 < BATCH_ROWS ? n_rows - i0 : BATCH_ROWS, &b, n_done);
    return st;
}
#undef LANES

esb_status esb_decision_batch(const esb_model *m, const float *x, size_t n_rows, size_t stride,
                              float *scores, size_t *n_done)
{
    return run_batch(m, x, n_rows, stride, BATCH_DECISION, scores, n_done);
}

esb_status esb_predict_batch(const esb_model *m, const float *x, size_t n_rows, size_t stride,
                             uint32_t *class_index, size_t *n_done)
{
    return run_batch(m, x, n_rows, stride, BATCH_PREDICT, class_index, n_done);
}

esb_status esb_predict_proba_batch(const esb_model *m, const float *x, size_t n_rows,
                                   size_t stride, float *proba, size_t *n_done)
{
    return run_batch(m, x, n_rows, stride, BATCH_PROBA, proba, n_done);
}

/* CSR batches in the transposed layout, models of at most ESB_CHUNK outputs: the one-row
 * kernel (compute_transposed) searches for each nonzero's used column from the previous
 * one's, then reads its weights: a chain of dependent loads per nonzero. Here the nonzeros of
 * a group of rows (at most CSR_LOOKUPS in all; a longer row alone, in pieces) go through
 * stages whose loads are independent of each other, so that their cache misses overlap:
 * every used column is searched (in its key's bucket only: the same column, since every
 * used column before the previous one's is below this key too), then every hit's range of
 * weights read, then each row adds its weights in its nonzeros' order, exactly as
 * compute_transposed does: the same bits (measured 1.8x faster than the one-row kernel on a
 * 20 x 2^18 text model, 27 nonzeros a row). Stack: 1 KiB of ranges besides the buckets. */
#define CSR_LOOKUPS 128u

/* Halving steps that lower_bound takes on the largest bucket of mk (n columns: ceil(log2 n)). */
static unsigned bucket_steps(const esb_model *m, const col_marks *mk)
{
    const uint32_t nb = m->n_features ? ((m->n_features - 1u) >> mk->shift) + 1u : 0u;
    uint32_t b, most = 0;
    unsigned steps = 0;
    for (b = 0; b < nb; b++)
        if (mk->first[b + 1] - mk->first[b] > most) most = mk->first[b + 1] - mk->first[b];
    while (most > 1u) {
        most -= most / 2u;
        steps++;
    }
    return steps;
}

/* lower_bound_marked(a, mk, 0, key) in exactly `steps` halvings (bucket_steps): the same trip
 * count for every lookup (a predictable loop); the halvings past the bucket's own count leave
 * n at 1 and b in place, so the same index. */
static uint32_t bucket_search(const int32_t *a, const col_marks *mk, int32_t key,
                              unsigned steps)
{
    const uint32_t bk = (uint32_t)key >> mk->shift, lo = mk->first[bk];
    const int32_t *b = a + lo;
    uint32_t n = mk->first[bk + 1u] - lo;
    unsigned s;
    if (!n) return lo;
    for (s = 0; s < steps; s++) {
        const uint32_t half = n / 2u;
        b = b[half] < key ? b + half : b;
        n -= half;
    }
    return (uint32_t)(b - a) + (*b < key);
}

/* Stages 1 and 2 for n nonzeros (columns idx, values val): beg[j] .. fin[j], the stored
 * weights that nonzero j adds (none past the last used column, in a column no output uses,
 * or for a zero value: compute_transposed skips those too). */
static void csr_lookups(const esb_model *m, const col_marks *mk, unsigned steps,
                        const int32_t *idx, const float *val, uint32_t n, int32_t *beg,
                        int32_t *fin)
{
    const uint32_t nc = m->n_columns;
    uint32_t j;
    if (!nc) { /* no used column: nothing to add */
        for (j = 0; j < n; j++) beg[j] = fin[j] = 0;
        return;
    }
    if (m->cpos_) { /* the index: one load per nonzero, no search */
        for (j = 0; j < n; j++) {
            const int32_t pc = m->cpos_[idx[j]];
            const int hit = pc >= 0 && val[j] != 0.0f;
            const uint32_t c = hit ? (uint32_t)pc : 0u;
            beg[j] = hit ? m->tptr_[c] : 0;
            fin[j] = hit ? m->tptr_[c + 1u] : 0;
        }
        return;
    }
    for (j = 0; j < n; j++) {
        const uint32_t c = bucket_search(m->tcol_, mk, idx[j], steps);
        fin[j] = (int32_t)c;
    }
    for (j = 0; j < n; j++) {
        const uint32_t c = (uint32_t)fin[j];
        const int hit = c < nc && m->tcol_[c] == idx[j] && val[j] != 0.0f;
        beg[j] = hit ? m->tptr_[c] : 0; /* 0 .. 0: adds nothing */
        fin[j] = hit ? m->tptr_[c + 1] : 0;
    }
}

typedef union csr_acc {
    float f[ESB_CHUNK];
    double d[ESB_CHUNK];
} csr_acc;

/* Stage 3: the weights of n nonzeros (values val, ranges beg/fin) into acc, in order. */
static void csr_weights(const esb_model *m, const float *val, uint32_t n, const int32_t *beg,
                        const int32_t *fin, csr_acc *acc)
{
    const uint8_t *v = m->buf_ + m->sec_[VALUES].offset;
    const int32_t *row = m->trow_, *wv = m->tval_;
    uint32_t j;
    int32_t e;
    if (m->value_dtype == ESB_VALUES_F64) {
        for (j = 0; j < n; j++)
            for (e = beg[j]; e < fin[j]; e++)
                acc->d[row[e]] += ld_f64(v + 8u * (uint32_t)wv[e]) * (double)val[j];
        return;
    }
    for (j = 0; j < n; j++) {
        const float xv = val[j];
        const int32_t end = fin[j];
        for (e = beg[j]; e < end; e++) {
            float w;
            memcpy(&w, &wv[e], 4);
            acc->f[row[e]] += w * xv;
        }
    }
}

static void csr_acc_zero(const esb_model *m, csr_acc *acc)
{
    uint32_t r;
    if (m->value_dtype == ESB_VALUES_F64)
        for (r = 0; r < m->n_outputs; r++) acc->d[r] = 0.0;
    else
        for (r = 0; r < m->n_outputs; r++) acc->f[r] = 0.0f;
}

/* A row's scores from acc as compute_transposed ends (plus bias, rounded), into *p as take()
 * puts them (the running argmax without a branch: which output wins is unpredictable). */
static void csr_acc_take(const esb_model *m, const csr_acc *acc, const double *bias, pick *p)
{
    const int f64 = m->value_dtype == ESB_VALUES_F64;
    float best_s = f64 ? (float)(acc->d[0] + bias[0]) : acc->f[0] + (float)bias[0];
    uint32_t r, best = 0;
    int bad = !finite_float(best_s);
    if (p->out) p->out[0] = best_s;
    for (r = 1; r < m->n_outputs; r++) {
        const float s = f64 ? (float)(acc->d[r] + bias[r]) : acc->f[r] + (float)bias[r];
        const int more = s > best_s; /* first maximum; never for NaN */
        if (p->out) p->out[r] = s;
        bad |= !finite_float(s);
        best = more ? r : best;
        best_s = more ? s : best_s;
    }
    p->best_s = best_s;
    p->best = best;
    p->bad = bad;
}

/* check_csr for a batch row (model and arguments already checked): the same status, with
 * the tests of every nonzero or-ed together rather than branched on. */
static esb_status csr_row_check(const esb_model *m, uint32_t nnz, const int32_t *idx,
                                const float *val)
{
    uint32_t i, bits, bad = 0;
    int32_t prev = -1;
    if (nnz && (!idx || !val)) return ESB_E_ARGUMENT;
    for (i = 0; i < nnz; i++) {
        memcpy(&bits, val + i, 4);
        bad |= (uint32_t)(idx[i] <= prev) | (uint32_t)(idx[i] < 0) |
               (uint32_t)((uint32_t)idx[i] >= m->n_features) | (uint32_t)!finite_f32(bits);
        prev = idx[i];
    }
    return bad ? ESB_E_INPUT : ESB_OK;
}

/* Row i's outputs from its scores and argmax in *p, as scores_of and the run_* calls make
 * them (a NaN/Inf score: ESB_E_INPUT; not the dense layout, so no exact recompute). */
static esb_status batch_finish(const esb_model *m, int op, void *out, size_t i, const pick *p)
{
    if (p->bad) return ESB_E_INPUT;
    if (op == BATCH_PREDICT)
        ((uint32_t *)out)[i] = m->n_outputs == 1 ? p->best_s > 0.0f : p->best;
    else if (op == BATCH_PROBA)
        proba_head(m, batch_slot(m, op, out, i));
    return ESB_OK;
}

/* run_csr_batch in the transposed layout with at most ESB_CHUNK outputs (see "CSR batches in
 * the transposed layout"): rows in groups, every row of a group checked before any is
 * computed, outputs in row order; a refused row ends the call after the rows before it. */
static esb_status run_csr_fast(const esb_model *m, size_t n_rows, const uint32_t *indptr,
                               const int32_t *indices, const float *values, int op, void *out,
                               size_t *n_done, const col_marks *mk)
{
    double bias[ESB_CHUNK];
    int32_t beg[CSR_LOOKUPS], fin[CSR_LOOKUPS];
    const unsigned steps = mk ? bucket_steps(m, mk) : 0u; /* no mk: the index (cpos_) */
    csr_acc acc;
    pick p;
    size_t i = 0, i2, k;
    uint32_t r, total, a, n, j0;
    esb_status st = ESB_OK, st2;
    for (r = 0; r < m->n_outputs; r++) bias[r] = bias_of(m, r);
    while (i < n_rows) {
        /* rows i .. i2 - 1, checked: at most CSR_LOOKUPS nonzeros, or one longer row */
        for (i2 = i, total = 0; i2 < n_rows; i2++) {
            if (indptr[i2 + 1] < indptr[i2]) { /* a row cannot end before it starts */
                st = ESB_E_INPUT;
                break;
            }
            n = indptr[i2 + 1] - indptr[i2];
            if (i2 > i && total + n > CSR_LOOKUPS) break;
            st = csr_row_check(m, n, indices ? indices + indptr[i2] : NULL,
                               values ? values + indptr[i2] : NULL);
            if (st != ESB_OK) break;
            total += n;
        }
        a = indptr[i];
        if (total && total <= CSR_LOOKUPS)
            csr_lookups(m, mk, steps, indices + a, values + a, total, beg, fin);
        for (k = i; k < i2; k++) {
            const uint32_t ka = indptr[k], kn = indptr[k + 1] - ka;
            csr_acc_zero(m, &acc);
            if (kn && total <= CSR_LOOKUPS) {
                csr_weights(m, values + ka, kn, beg + (ka - a), fin + (ka - a), &acc);
            } else { /* one longer row, in pieces */
                for (j0 = 0; j0 < kn; j0 += n) {
                    n = kn - j0 < CSR_LOOKUPS ? kn - j0 : CSR_LOOKUPS;
                    csr_lookups(m, mk, steps, indices + ka + j0, values + ka + j0, n, beg, fin);
                    csr_weights(m, values + ka + j0, n, beg, fin, &acc);
                }
            }
            p.out = batch_slot(m, op, out, k);
            csr_acc_take(m, &acc, bias, &p);
            st2 = batch_finish(m, op, out, k, &p);
            if (st2 != ESB_OK) {
                if (n_done) *n_done = k;
                return st2;
            }
        }
        if (n_done) *n_done = i2;
        if (st != ESB_OK) return st;
        i = i2;
    }
    return ESB_OK;
}

/* CSR batches: each row as the one-row CSR call runs it (check, kernel, head), in order. In
 * the transposed layout the column buckets are built once for the batch (8 KiB of stack): the
 * same used column found for each nonzero, faster, so the same bits; with at most ESB_CHUNK
 * outputs the rows go through run_csr_fast (about 2 KiB of stack more). */
static esb_status run_csr_batch(const esb_model *m, size_t n_rows, const uint32_t *indptr,
                                const int32_t *indices, const float *values, int op, void *out,
                                size_t *n_done)
{
    col_marks mk;
    size_t i;
    int use;
    esb_status st;
    if (n_done) *n_done = 0;
    if (!m || !m->buf_ || (n_rows && (!indptr || !out))) return ESB_E_ARGUMENT;
    if (op == BATCH_PREDICT && m->head == ESB_HEAD_IDENTITY) return ESB_E_HEAD;
    if (op == BATCH_PROBA && !esb_has_proba(m)) return ESB_E_HEAD;
    /* the table costs a pass over the used columns: worth it when the batch's nonzeros, each
     * saving a search of ~log2(n_columns) steps, outnumber them (measured: ~1/16) */
    use = m->layout_ == ESB_LAYOUT_TRANSPOSED && n_rows && !m->cpos_ &&
          (uint64_t)16 * (indptr[n_rows] - indptr[0]) >= (uint64_t)m->n_columns + ESB_COL_BUCKETS;
    if (use) col_marks_build(m, &mk);
    if ((use || (m->cpos_ && m->layout_ == ESB_LAYOUT_TRANSPOSED)) && m->n_outputs <= ESB_CHUNK)
        return run_csr_fast(m, n_rows, indptr, indices, values, op, out, n_done,
                            use ? &mk : NULL);
    for (i = 0; i < n_rows; i++) {
        input in = {0, 0, 0, 0, 0};
        const uint32_t a = indptr[i];
        if (indptr[i + 1] < a) return ESB_E_INPUT; /* a row cannot end before it starts */
        in.nnz = indptr[i + 1] - a;
        in.idx = indices ? indices + a : NULL;
        in.val = values ? values + a : NULL;
        in.marks = use ? &mk : NULL;
        st = check_csr(m, in.nnz, in.idx, in.val);
        if (st == ESB_OK && op == BATCH_PREDICT) st = run_predict(m, &in, (uint32_t *)out + i);
        else if (st == ESB_OK && op == BATCH_PROBA)
            st = run_proba(m, &in, batch_slot(m, op, out, i));
        else if (st == ESB_OK) st = run_decision(m, &in, batch_slot(m, op, out, i));
        if (st != ESB_OK) return st;
        if (n_done) *n_done = i + 1;
    }
    return ESB_OK;
}

esb_status esb_decision_csr_batch(const esb_model *m, size_t n_rows, const uint32_t *indptr,
                                  const int32_t *indices, const float *values, float *scores,
                                  size_t *n_done)
{
    return run_csr_batch(m, n_rows, indptr, indices, values, BATCH_DECISION, scores, n_done);
}

esb_status esb_predict_csr_batch(const esb_model *m, size_t n_rows, const uint32_t *indptr,
                                 const int32_t *indices, const float *values,
                                 uint32_t *class_index, size_t *n_done)
{
    return run_csr_batch(m, n_rows, indptr, indices, values, BATCH_PREDICT, class_index,
                         n_done);
}

esb_status esb_predict_proba_csr_batch(const esb_model *m, size_t n_rows, const uint32_t *indptr,
                                       const int32_t *indices, const float *values,
                                       float *proba, size_t *n_done)
{
    return run_csr_batch(m, n_rows, indptr, indices, values, BATCH_PROBA, proba, n_done);
}

esb_status esb_class_label(const esb_model *m, uint32_t k, esb_label *label)
{
    const uint8_t *b, *p;
    uint32_t i;
    if (!m || !m->buf_ || !label || k >= m->n_classes) return ESB_E_ARGUMENT;
    b = m->buf_ + m->sec_[CLASSES].offset;
    memset(label, 0, sizeof *label);
    label->kind = m->sec_[CLASSES].encoding;
    if (label->kind == ESB_LABEL_FLOAT) {
        label->f = ld_f64(b + 8u * k);
    } else if (label->kind == ESB_LABEL_INT) {
        uint64_t z = 0;
        for (p = b, i = 0; i <= k; i++) z = rdv(&p);
        z = (z >> 1) ^ (0u - (z & 1u)); /* zigzag */
        memcpy(&label->i, &z, 8);
    } else {
        uint64_t pos = 0, l = 0;
        for (p = b, i = 0; i < m->n_classes; i++) {
            uint64_t li = rdv(&p);
            if (i < k) pos += li;
            if (i == k) l = li;
        }
        label->s = (const char *)(p + pos); /* p is now past the length header */
        label->len = (uint32_t)l;
    }
    return ESB_OK;
}

/* The k-NN recommender runtime (format version 2) shares this file's static helpers. */
#define ESB_KNN_IN_ESB_C 1
#include "esb_knn.c"
/* The matrix-factorization runtime (format version 3) shares them and esb_knn.c's rec_*. */
#define ESB_FACTORS_IN_ESB_C 1
#include "esb_factors.c"
