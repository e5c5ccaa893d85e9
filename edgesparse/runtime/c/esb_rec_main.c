/*
 * esb_rec_main.c - the recommender part of the command-line driver (esb_main.c includes this
 * file, which it dispatches to when the model is a version-2 blob, k-NN, or a version-3 blob,
 * matrix factorization; never compile it on its own). KNN.esb below is either kind.
 *
 *   esb verify KNN.esb...               "OK" or "ERR <code> <message>": esb_knn_open, then
 *                                       esb_knn_use_index (the rest of the checks); for
 *                                       version 3 esb_factors_open, esb_factors_use_index
 *   esb predict KNN.esb PAIRS.csv       one line per pair: "<est>\t<actual_k or ->\t
 *                                       <was_impossible 0|1>\t<unclipped est>" ("%.17g";
 *                                       factor models have no actual_k: always -)
 *   esb recommend KNN.esb USER N [--all]  one line per item: "<raw item id>\t<est>"
 *                                       (--all: do not leave out the items USER rated)
 *   esb bench KNN.esb PAIRS.csv RUNS WARMUP [--op predict|recommend] [--batch N]
 *             [--predictions FILE]      one JSON line, the linear bench's keys (cold_start_ns
 *                                       as there: EDGESPARSE_PROBE_T0_NS to the first
 *                                       prediction); --predictions: after timing, each pair's
 *                                       estimate, one per line ("%.17g")
 *
 * PAIRS.csv: one "user,item" pair of raw ids a line (a tab separates them too; further
 * fields, e.g. a rating, are ignored; a trailing \r is dropped, empty lines are skipped; a
 * first line whose first field is "user" or "uid" is a header). Raw ids are text: decimal for int ids, strtod syntax
 * for float ids, the bytes for string ids (esb_knn_find_user / _item).
 * bench: --op predict (default) times N consecutive pairs per call (ids looked up before
 * timing), --op recommend times esb_knn_recommend (esb_factors_recommend) of the user of pair
 * i, 10 items, per call. The JSON line's "layout" is "knn" or "factors".
 */
#ifndef ESB_REC_MAIN_IN_ESB_MAIN
#error "esb_rec_main.c is compiled as part of esb_main.c (which includes it)"
#endif

/* A recommender blob (version 2, k-NN, or 3, matrix factorization) by its first 10 bytes: its
 * version, else 0. */
static int recommender_version(const unsigned char *b, size_t len)
{
    static const unsigned char magic[8] = {0x89, 'E', 'S', 'B', '\r', '\n', 0x1A, '\n'};
    if (len < 10 || memcmp(b, magic, 8) != 0 || b[9] != 0 || (b[8] != 2 && b[8] != 3)) return 0;
    return b[8];
}

static int is_knn_blob(const unsigned char *b, size_t len)
{
    return recommender_version(b, len) != 0;
}

static int file_is_knn(const char *path)
{
    unsigned char head[10];
    size_t n = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    n = fread(head, 1, sizeof head, f);
    fclose(f);
    return is_knn_blob(head, n);
}

typedef struct knn_loaded {
    unsigned char *blob;
    size_t len;
    int factors;   /* a version-3 blob: f, else m */
    esb_knn m;
    esb_factors f;
    char *message; /* m.message or f.message */
    uint32_t *index;
    size_t index_bytes;
    double *ws;
    size_t ws_bytes;
} knn_loaded;

/* esb_knn_open + esb_knn_use_index (esb_factors_*); 0 with l->message set (status in *st) on
 * failure. */
static int knn_load_blob(unsigned char *blob, size_t len, knn_loaded *l, esb_status *st)
{
    l->blob = blob;
    l->len = len;
    l->index = NULL;
    l->ws = NULL;
    l->factors = recommender_version(blob, len) == 3;
    l->message = l->factors ? l->f.message : l->m.message;
    *st = l->factors ? esb_factors_open(blob, len, &l->f) : esb_knn_open(blob, len, &l->m);
    if (*st != ESB_OK) return 0;
    l->index_bytes = l->factors ? esb_factors_index_size(&l->f) : esb_knn_index_size(&l->m);
    l->ws_bytes = l->factors ? 0 : esb_knn_workspace_size(&l->m);
    l->index = (uint32_t *)malloc(l->index_bytes ? l->index_bytes : 4);
    l->ws = (double *)malloc(l->ws_bytes ? l->ws_bytes : 8);
    if (!l->index || !l->ws) {
        snprintf(l->message, ESB_MESSAGE_SIZE, "out of memory");
        *st = ESB_E_ARGUMENT;
        return 0;
    }
    *st = l->factors ? esb_factors_use_index(&l->f, l->index, l->index_bytes)
                     : esb_knn_use_index(&l->m, l->index, l->index_bytes);
    return *st == ESB_OK;
}

/* The two kinds behind one set of calls. */
static uint32_t rec_find(const knn_loaded *l, int item, const char *text, size_t len)
{
    if (l->factors)
        return item ? esb_factors_find_item(&l->f, text, len)
                    : esb_factors_find_user(&l->f, text, len);
    return item ? esb_knn_find_item(&l->m, text, len) : esb_knn_find_user(&l->m, text, len);
}

/* One pair as esb_knn_predict reports it (a factor model has no actual_k). */
static esb_status rec_predict(const knn_loaded *l, uint32_t u, uint32_t i, esb_knn_prediction *r)
{
    esb_factors_prediction p;
    esb_status st;
    if (!l->factors) return esb_knn_predict(&l->m, u, i, l->ws, l->ws_bytes, r);
    st = esb_factors_predict(&l->f, u, i, &p);
    memset(r, 0, sizeof *r);
    r->est = p.est;
    r->est_unclipped = p.est_unclipped;
    r->was_impossible = p.was_impossible;
    return st;
}

static esb_status rec_recommend(const knn_loaded *l, uint32_t u, uint32_t n, int exclude_seen,
                                uint32_t *items, double *est, uint32_t *got)
{
    if (l->factors) return esb_factors_recommend(&l->f, u, n, exclude_seen, items, est, got);
    return esb_knn_recommend(&l->m, u, n, exclude_seen, items, est, got, l->ws, l->ws_bytes);
}

static void knn_unload(knn_loaded *l)
{
    free(l->index);
    free(l->ws);
    free(l->blob);
}

/* The blob read, opened and indexed (knn_unload frees it); 0 said on stderr, with nothing
 * left allocated. */
static int knn_load(const char *path, knn_loaded *l)
{
    size_t len = 0;
    esb_status st;
    unsigned char *blob = read_file(path, &len);
    if (!blob) {
        fprintf(stderr, "esb: cannot read %s\n", path);
        return 0;
    }
    if (!knn_load_blob(blob, len, l, &st)) {
        fprintf(stderr, "esb: %s: %s\n", path, l->message);
        knn_unload(l);
        return 0;
    }
    return 1;
}

/* verify of one k-NN blob (takes the blob); returns 1 when it is bad. */
static int knn_verify_blob(unsigned char *blob, size_t len)
{
    knn_loaded l;
    esb_status st;
    int bad = !knn_load_blob(blob, len, &l, &st);
    if (bad) printf("ERR %d %s\n", (int)st, l.message);
    else printf("OK\n");
    knn_unload(&l);
    return bad;
}

typedef struct knn_pairs {
    char *text;
    uint32_t n;
    uint32_t *user, *item; /* inner ids (ESB_KNN_UNKNOWN for unknown ones) */
} knn_pairs;

/* The line's first two fields (separated by ',' or tab; more fields, e.g. a rating, are
 * ignored); 0 when it has one only. */
static int split_pair(char *line, char **a, size_t *na, char **b, size_t *nb)
{
    size_t n = strlen(line), k, e;
    if (n && line[n - 1] == '\r') line[--n] = '\0';
    for (k = 0; k < n && line[k] != ',' && line[k] != '\t'; k++) continue;
    if (k == n) return 0;
    for (e = k + 1; e < n && line[e] != ',' && line[e] != '\t'; e++) continue;
    *a = line;
    *na = k;
    *b = line + k + 1;
    *nb = e - k - 1;
    return 1;
}

/* Room for twice as many pairs; 0 when out of memory (free_pairs frees either way). */
static int grow_pairs(knn_pairs *p, size_t *cap)
{
    size_t c = *cap ? 2 * *cap : 1024;
    uint32_t *user = (uint32_t *)realloc(p->user, 4 * c), *item;
    if (user) p->user = user;
    item = user ? (uint32_t *)realloc(p->item, 4 * c) : NULL;
    if (!item) return 0;
    p->item = item;
    *cap = c;
    return 1;
}

/* PAIRS.csv into p, each id looked up; 0 said on stderr (free_pairs frees what it read
 * either way). */
static int read_pairs(const char *path, const knn_loaded *l, knn_pairs *p)
{
    size_t len = 0, cap = 0;
    char *line, *save = NULL, *a, *b;
    size_t na, nb;
    uint32_t lineno = 0;
    memset(p, 0, sizeof p[0]);
    p->text = (char *)read_file(path, &len);
    if (!p->text) {
        fprintf(stderr, "esb: cannot read %s\n", path);
        return 0;
    }
    {
        char *text = (char *)realloc(p->text, len + 1);
        if (!text) return 0;
        p->text = text;
    }
    p->text[len] = '\0';
    for (line = strtok_r(p->text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        lineno++;
        if (line[0] == '\0' || (line[0] == '\r' && line[1] == '\0')) continue;
        if (!split_pair(line, &a, &na, &b, &nb)) {
            fprintf(stderr, "esb: %s line %u: expected \"user,item\"\n", path, (unsigned)lineno);
            return 0;
        }
        if (lineno == 1 && ((na == 4 && memcmp(a, "user", 4) == 0) ||
                            (na == 3 && memcmp(a, "uid", 3) == 0)))
            continue; /* a header line */
        if (p->n == cap && !grow_pairs(p, &cap)) return 0;
        p->user[p->n] = rec_find(l, 0, a, na);
        p->item[p->n] = rec_find(l, 1, b, nb);
        p->n++;
    }
    return 1;
}

static void free_pairs(knn_pairs *p)
{
    free(p->text);
    free(p->user);
    free(p->item);
}

static int knn_cmd_predict(const char *model, const char *data)
{
    knn_loaded l;
    knn_pairs p;
    uint32_t i;
    int rc = 0;
    if (!knn_load(model, &l)) return 2;
    if (!read_pairs(data, &l, &p)) rc = 2;
    for (i = 0; rc == 0 && i < p.n; i++) {
        esb_knn_prediction r;
        if (rec_predict(&l, p.user[i], p.item[i], &r) != ESB_OK) {
            fprintf(stderr, "esb: pair %u: prediction failed\n", (unsigned)i);
            rc = 1;
        } else if (r.has_actual_k) {
            printf("%.17g\t%u\t%d\t%.17g\n", r.est, (unsigned)r.actual_k, r.was_impossible,
                   r.est_unclipped);
        } else {
            printf("%.17g\t-\t%d\t%.17g\n", r.est, r.was_impossible, r.est_unclipped);
        }
    }
    free_pairs(&p);
    knn_unload(&l);
    return rc;
}

static void print_raw_id(const esb_label *id)
{
    if (id->kind == ESB_LABEL_INT) printf("%lld", (long long)id->i);
    else if (id->kind == ESB_LABEL_FLOAT) printf("%.17g", id->f);
    else fwrite(id->s, 1, id->len, stdout);
}

static int knn_cmd_recommend(int argc, char **argv)
{
    knn_loaded l;
    long n;
    uint32_t u, got = 0, j, *items;
    double *est;
    int all = argc == 4 && strcmp(argv[3], "--all") == 0, rc = 2;
    if (argc != 3 && !all) return usage();
    if (!parse_count("N", argv[2], &n) || n < 0 || n > 100000000L) return 2;
    if (!knn_load(argv[0], &l)) return 2;
    u = rec_find(&l, 0, argv[1], strlen(argv[1]));
    items = (uint32_t *)malloc(4 * (size_t)(n ? n : 1));
    est = (double *)malloc(8 * (size_t)(n ? n : 1));
    if (items && est) rc = rec_recommend(&l, u, (uint32_t)n, !all, items, est, &got) != ESB_OK;
    for (j = 0; rc == 0 && j < got; j++) {
        esb_label id;
        if (l.factors) esb_factors_item_id(&l.f, items[j], &id);
        else esb_knn_item_id(&l.m, items[j], &id);
        print_raw_id(&id);
        printf("\t%.17g\n", est[j]);
    }
    free(items);
    free(est);
    knn_unload(&l);
    return rc;
}

/* One timed call: `batch` pairs from pair `start` (predict) or one recommendation. */
static double knn_call(const knn_loaded *l, const knn_pairs *p, uint32_t start, long batch,
                       int recommend, uint32_t *items, double *est)
{
    double ck = 0;
    long j;
    if (recommend) {
        uint32_t got = 0;
        rec_recommend(l, p->user[start], 10, 1, items, est, &got);
        return got ? est[0] : 0;
    }
    for (j = 0; j < batch; j++) {
        esb_knn_prediction r;
        uint32_t i = (uint32_t)((start + (uint64_t)j) % p->n);
        rec_predict(l, p->user[i], p->item[i], &r);
        ck += r.est;
    }
    return ck;
}

/* Each pair's estimate, one per line. */
static int knn_write_predictions(const char *path, const knn_loaded *l, const knn_pairs *p)
{
    FILE *f = fopen(path, "w");
    uint32_t i;
    if (!f) {
        fprintf(stderr, "esb: cannot write %s\n", path);
        return 0;
    }
    for (i = 0; i < p->n; i++) {
        esb_knn_prediction r;
        rec_predict(l, p->user[i], p->item[i], &r);
        fprintf(f, "%.17g\n", r.est);
    }
    if (fclose(f) != 0) {
        fprintf(stderr, "esb: cannot write %s\n", path);
        return 0;
    }
    return 1;
}

/* The warm-up, then RUNS timed calls into tm; the checksum over the timed ones. */
static double knn_time(const knn_loaded *l, const knn_pairs *p, const bench_opts *o,
                       int recommend, bench_times *tm)
{
    uint32_t i, items[10];
    double checksum = 0, est[10];
    for (i = 0; i < (uint32_t)o->warmup; i++)
        checksum += knn_call(l, p, (uint32_t)((uint64_t)i * o->batch % p->n), o->batch,
                             recommend, items, est);
    checksum = 0;
    for (i = 0; i < tm->runs; i++) {
        uint32_t start = (uint32_t)((uint64_t)i * (recommend ? 1 : o->batch) % p->n);
        uint64_t a = now_ns(), b;
        checksum += knn_call(l, p, start, o->batch, recommend, items, est);
        b = now_ns();
        times_put(tm, i, b - a);
    }
    return checksum;
}

/* The bench's JSON line for a recommender (sorts tm). */
static void knn_print(const knn_loaded *l, const knn_pairs *p, const bench_opts *o,
                      int recommend, bench_times *tm, const bench_facts *f, double checksum)
{
    uint32_t runs = tm->runs, *t = tm->t;
    times_sort(tm);
    printf("{\"engine\": \"c\", \"op\": \"%s\", \"mode\": \"decoded\", \"layout\": \"%s\", "
           "\"batch\": %ld, \"runs\": %ld, \"warmup\": %ld, \"rows\": %u, \"p50_ns\": %.1f, "
           "\"p90_ns\": %.1f, \"p99_ns\": %.1f, \"p999_ns\": %.1f, \"mean_ns\": %.1f, "
           "\"min_ns\": %u, \"timer_overhead_ns\": %.1f, \"load_ns\": %.0f, \"cold_start_ns\": "
           "%s, \"peak_rss_bytes\": %ld, \"model_rss_bytes\": %s, \"model_bytes\": %lu, "
           "\"workspace_bytes\": %lu, \"checksum\": %.17g, \"api\": \"one-row\"}\n",
           recommend ? "recommend" : "predict", l->factors ? "factors" : "knn",
           recommend ? 1L : o->batch, o->runs, o->warmup,
           (unsigned)p->n, pct(t, runs, 0.5), pct(t, runs, 0.9), pct(t, runs, 0.99),
           pct(t, runs, 0.999), tm->sum / (double)runs, (unsigned)t[0],
           pct(tm->empty, tm->n_empty, 0.5), (double)f->load_ns, f->cold, peak_rss_bytes(),
           f->model_rss, (unsigned long)l->len, (unsigned long)(l->index_bytes + l->ws_bytes),
           checksum);
}

static int knn_cmd_bench(const char *model, const char *data, const bench_opts *o)
{
    knn_loaded l;
    knn_pairs p;
    bench_times tm;
    bench_facts f;
    uint32_t items[10];
    double checksum, est[10];
    uint64_t load_start;
    long rss_before, rss_after;
    int recommend = o->op == OP_RECOMMEND, rc = 2;
    if (!bench_opts_ok(o)) return 2;
    rss_before = proc_status_bytes("VmRSS");
    load_start = now_ns();
    if (!knn_load(model, &l)) return 2;
    f.load_ns = now_ns() - load_start;
    rss_after = proc_status_bytes("VmRSS");
    memset(&tm, 0, sizeof tm);
    if (!read_pairs(data, &l, &p)) goto done;
    if (p.n == 0) {
        fprintf(stderr, "esb: %s has no pairs\n", data);
        goto done;
    }
    (void)knn_call(&l, &p, 0, 1, 0, items, est); /* cold start ends with one prediction */
    bench_cold_start(&f);
    bench_model_rss(&f, rss_before, rss_after);
    if (!times_alloc(&tm, o->runs)) goto done;
    checksum = knn_time(&l, &p, o, recommend, &tm);
    times_overhead(&tm);
    rc = 1;
    if (o->predictions && !knn_write_predictions(o->predictions, &l, &p)) goto done;
    knn_print(&l, &p, o, recommend, &tm, &f, checksum);
    rc = 0;
done:
    times_free(&tm);
    free_pairs(&p);
    knn_unload(&l);
    return rc;
}
