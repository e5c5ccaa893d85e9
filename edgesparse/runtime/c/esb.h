/*
 * esb.h - C99 runtime for edgesparse `.esb` linear models (format version 1), k-NN
 * recommenders (version 2: see "k-NN recommenders" at the end; esb_knn.c) and
 * matrix-factorization recommenders (version 3: "Matrix-factorization recommenders";
 * esb_factors.c).
 *
 * The blob format is specified in docs/FORMAT.md; the reference reader is
 * edgesparse/formats/ (esb.py's decode) and the reference runtime edgesparse/runtime/model.py. This reader
 * makes the same checks as the reference decoder, in the same order, and computes the same
 * outputs (scikit-learn's decision_function / predict / predict_proba).
 *
 * Dependencies: the C99 standard library only (<string.h>; <stdio.h> snprintf and <stdlib.h>
 * strtod for esb_open's messages; <math.h> expf for the probability heads: link with -lm).
 * Portable: loads are byte-wise little-endian (the format's byte order), so the blob needs no
 * alignment and the host may be of either endianness; float and double must be IEEE 754.
 *
 * ---------------------------------------------------------------------------------------------
 * Usage
 *
 *     esb_model m;
 *     if (esb_open(blob, blob_len, &m) != ESB_OK) { puts(m.message); return 1; }
 *     uint32_t k;
 *     esb_predict(&m, x, &k);                     // x: m.n_features floats
 *     esb_label lab; esb_class_label(&m, k, &lab);
 *     esb_predict_batch(&m, rows, n, m.n_features, ks, NULL);  // n rows, row-major; n uint32
 *
 * esb_open verifies the whole blob in place (it is never copied; it may live in flash) and
 * keeps pointers into it: the blob must stay valid and unchanged while the model is used.
 * The model is read-only after esb_open (and esb_use_workspace or esb_use_layout), so several
 * threads may run inferences on one model at the same time.
 *
 * ---------------------------------------------------------------------------------------------
 * Memory: no function allocates. Exact RAM needs:
 *
 *   - the esb_model struct: sizeof(esb_model) bytes (the caller's, static or on the stack);
 *   - outputs: esb_decision writes n_outputs floats, esb_predict_proba n_classes floats, both
 *     into caller buffers; esb_predict needs no buffer; the batch calls n_rows times those
 *     (esb_predict_batch n_rows uint32_t), and about 17 KiB of stack (see "Batch calls";
 *     the CSR batch calls 10 KiB);
 *   - esb_open's stack frame: a few hundred bytes of locals; with column exponents about
 *     1700 more (a 512-byte bitmap for the check that unused columns have exponent 0, 64
 *     column positions, an index walker and the exception index below);
 *   - column indices, in one of four layouts (esb_layout_name tells which one is in use).
 *     Below, E is 1 when the model has column exponents (the `exponents` section, int8 models
 *     only; see "Column exponents") and 0 otherwise:
 *       streamed (default, no esb_use_workspace): the packed index sections (varint gaps,
 *         bitmaps, Elias-Fano, or raw int32 read byte-wise) are decoded on the fly during
 *         every call. Extra RAM: 0 bytes outside the call's stack frame, which holds ESB_CHUNK
 *         (64) int32 column numbers (256 bytes; with column exponents also their 64 positions
 *         in the column list and 64 exponents, 320 bytes; with exponents stored as exceptions,
 *         see "Column exponents", an index of 64 marks into them, about 800 bytes) and a few
 *         dozen bytes of iterator state. Cost: with a `columns` section, each row also
 *         re-walks the used-column list up to its last used column, so a call costs
 *         O(nnz + n_outputs * n_columns), not O(nnz).
 *       esb_use_workspace(&m, ws, bytes) builds one of the other three once, in a caller
 *       buffer (int32_t aligned) that must outlive the model; calls then only read it. It
 *       takes the first of these that `bytes` allows (esb_layout_size gives each one's bytes):
 *       dense: int8 models with n_outputs * n_features <= 4 * nnz (at least 1/4 of the weights
 *         stored), in (n_outputs + W) * n_features + 4 * E * n_features bytes of ws (any bytes
 *         >= that; W: the int16 rows, see "Raised rows", 0 without): with exponents, first the
 *         factor 2^e of every feature (a float; 1 where no weight is), then the weight matrix,
 *         row-major, zeros included: n_features int8 per row, n_features int16 (host byte
 *         order) per int16 row. A dense row is one contiguous int8 x float dot product that -O2
 *         vectorizes; a CSR row reads its weights directly.
 *       transposed: when bytes >= 8 * nnz + 8 * n_columns + 4: column pointers
 *         (4 * (n_columns + 1)), the used columns' numbers (4 * n_columns), and per stored
 *         weight its output row (4) and its dequantized float value, 2^e included (4; float64
 *         models: its position in the values section). A CSR row costs
 *         O(row nnz * log n_columns + weights in its columns), independent of the model's
 *         width; a dense row skips the columns where it is zero. Partial sums of up to
 *         ESB_CHUNK outputs at a time live on the stack (512 bytes).
 *       columns: otherwise, with bytes >= (4 + E) * nnz: the global column of every stored
 *         weight (int32_t, CSR order), read directly, then (with exponents) every stored
 *         weight's exponent (int8, CSR order).
 *     esb_workspace_size(m) is enough for the layout that gives the smallest workspace: for
 *     models that qualify for dense, max(4 * nnz, the dense bytes) (4 * nnz without exponents
 *     and int16 rows);
 *     for the others the column list's (4 + E) * nnz. esb_workspace_size_fast(m) is that for
 *     dense models, else the transposed layout's bytes. esb_use_layout builds a given layout
 *     whatever the model qualifies for (to compare them; dense needs int8 weights).
 *   - optionally, the CSR column index (esb_use_csr_index): 4 * n_features bytes in a caller
 *     buffer, built once; the transposed layout's CSR calls then find each nonzero's used
 *     column with one load (see "CSR column index" below).
 *
 * ---------------------------------------------------------------------------------------------
 * Column exponents
 *
 * An int8 model may carry one power-of-two exponent e[j] in [-126, 127] per input column
 * (section 9, `exponents`): the real weight is w[i, j] = scale[i] * q[i, j] * 2^e[j]
 * (ir.LinearIR.col_exponents). esb_open checks them as the reference decoder does, including
 * that every stored weight's step scale[i] * 2^e[j] is a normal float and 127 steps are
 * finite. Since 2^e is a power of two, scaling by it is exact, so each layout applies it where
 * it costs least and still computes the reference's weights:
 *   streamed, columns: per stored weight, (scale * q rounded to float) * 2^e, the exponent
 *     read from the blob (streamed) or the workspace (columns, one byte per weight);
 *   transposed: folded into the dequantized float weights when the layout is built (no cost
 *     per call);
 *   dense: per element of the dot product, (q * 2^e[j]) * x[j], then the row's scale once;
 *     the factors 2^e[j] are floats in the workspace (one multiply more per element, still
 *     vectorized).
 * The input is never scaled (x[j] * 2^e[j] could overflow or lose bits to underflow where the
 * weight times x does not).
 * The section has two encodings: one i8 per listed column (0), or the k exceptions to a
 * default exponent, their column positions gap-coded (1). For encoding 1, the verifier, the
 * streamed kernels and the layout builders look exponents up with no allocation: one O(k)
 * pass marks every ceil(k/64)-th exception (position and place in the gaps; 64 marks on the
 * stack), then a lookup binary-searches the marks when it jumps ahead or back (a new row) and
 * otherwise walks forward: a lookup costs O(log 64 + k/64), and a row's in-order lookups
 * walk at most k exceptions in all, so a streamed call costs
 * O(k + nnz * log 64 + min(n_outputs * k, nnz * k / 64)) more than with encoding 0.
 *
 * ---------------------------------------------------------------------------------------------
 * Raised rows
 *
 * An int8 model with one scale per row may store a few rows with 16-bit values (values
 * encoding 1, "mixed widths"; ir.LinearIR.wide_rows, quantize.raise_rows): the section starts
 * with a bitmap of those wide rows, then each narrow row's values are one i8, each wide row's
 * one little-endian i16 in [-32767, 32767]. The weight is scale[i] * q[i, j] * 2^e[j] for both.
 * esb_open checks the section as the reference decoder does (bitmap length and padding, at least
 * one wide row, exact length, no 0, no -128 in a narrow row, no -32768 in a wide one, every wide
 * row with a value outside [-127, 127], one scale per row, and 32767 steps finite in a wide
 * row). Every layout and API handles them: the streamed and column-list kernels walk the rows
 * with a running byte pointer (1 byte per narrow value, 2 per wide one, read byte-wise: no
 * unaligned loads), choosing the row's loop once per row (int8 rows run exactly the int8
 * loops); transposed folds them into its float weights; dense stores a wide row as n_features
 * int16 (see "Memory"). esb_model.value_dtype stays ESB_VALUES_I8 for these models.
 *
 * ---------------------------------------------------------------------------------------------
 * Numerics and the parity bound with the numpy runtime
 *
 * float32 and int8 models compute in float (w = scale * q rounded to float first, exactly as
 * LinearIR.real_values does, then times 2^e, exact; products and the row sum in float, in any
 * order; then + (float)bias), except the dense layout, which sums (q * 2^e) * x in float and
 * multiplies by the row's scale once (its weights scale * q * 2^e are exact; the numpy
 * runtime's are rounded to float). float64 models accumulate in double from the float inputs
 * and round the score to float at the end. For every score of a row with k stored weights w_i
 * (dequantized) and bias b, with x the input (rounded to float, as this API takes it), and no
 * overflow or underflow in between:
 *
 *     |score_c - score_numpy| <= (k + 4) * 2^-23 * (sum_i |w_i * x_i| + |b|)
 *
 * In units of 2^-24 times that sum, it covers: the C products and sum (k), the dense
 * layout's scale (1), the numpy runtime's own float32 or float64 sum in another order (k) and
 * its weights rounded to float where the dense layout's are exact (1), the rounding of float64
 * inputs to float (1), the bias and the final rounding of the score (2): 2k + 5 <= 2k + 8.
 * q * x (or q * 2^e * x) can overflow where w * x does not (|q| <= 127, 32767 in a wide row):
 * when a score comes out NaN/Inf the dense layout recomputes the row weight by weight, as the
 * other layouts do.
 * Labels are equal except where two scores (or a binary score and 0) lie within that bound of
 * each other. Probabilities follow through the head: logistic and softmax change by at most
 * half the largest score difference plus a few float ulps (expf vs numpy's exp);
 * modified_huber with several outputs divides by the row sum and can amplify a difference
 * when every output is near -1.
 *
 * ---------------------------------------------------------------------------------------------
 * Batch calls
 *
 * esb_decision_batch, esb_predict_batch and esb_predict_proba_batch take n_rows dense rows
 * (row-major, any row stride) and give every row exactly the bits the one-row call gives it.
 * In the dense layout, for models of up to 512 features, they run a blocked kernel: input
 * rows go 4 at a time, one per vector lane (their features transposed on the stack), against
 * up to 7 outputs per pass held in registers, whose weights are converted to float once
 * (exact: q, or q * 2^e; once per call when they all fit in the kernel's 16 KiB buffer, else
 * once per block of 32 rows). Each score is summed in the one-row kernel's order (16 lanes
 * over the features, lane j taking j, j + 16, ...; the leftover features in order; then the
 * leftover sum plus lane 0, 1, ..., 15; then scale, then bias), in its own vector lane, so
 * nothing is reordered. On x86 with GCC or clang, a CPU with AVX (checked at run time) runs
 * the same kernel 8 rows per vector, for models with n_outputs * n_features >= 64: a function
 * attribute, the build flags stay baseline x86-64 (-DESB_NO_AVX leaves it out). The vector
 * types are GCC/clang's vector extension (SSE2, NEON); other compilers (or
 * -DESB_NO_VECTOR_EXT) get plain C loops with the same operations. Same bits needs no -ffast-math and no FMA contraction: gcc's C99
 * mode has -ffp-contract=off; where FMA is enabled (-mfma, -march=native) in a GNU mode or
 * with clang, add -ffp-contract=off to keep the batch and one-row calls bit-identical.
 * Stack: the 16 KiB buffer and 32 rows' running argmaxes (about 17 KiB in all). Models with
 * more than 512 features run a streaming kernel instead: 2 rows at a time (4 with AVX), each
 * output's weights converted to float once per pass over those rows, the same 16 lane sums
 * per row in vector registers, the rows prefetched ahead (a few hundred bytes of stack). A
 * row whose score comes out NaN/Inf is handed to the one-row call (input check, exact
 * recompute), which decides. Other layouts and batches of fewer than 4 rows (for which
 * converting the weights costs more than it saves) loop over the one-row calls (same outputs
 * and errors, without the per-call overhead of the caller's loop).
 *
 * Inputs must be finite: a dense row is checked in full (n_features values; in the dense
 * layout only when a score comes out NaN/Inf, since every input value is then multiplied in),
 * a CSR row's values and indices always; a CSR row must be canonical (indices strictly
 * increasing, in [0, n_features)), unlike scipy matrices which may be unsorted. Violations return
 * ESB_E_INPUT (the numpy runtime raises InputError for non-finite values). So does a finite
 * row whose score overflows to NaN/Inf: such a score is not a prediction.
 */
#ifndef ESB_H
#define ESB_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ESB_FORMAT_VERSION 1
#define ESB_MESSAGE_SIZE 200
/* Column numbers decoded per step in streamed mode (stack: 4 * ESB_CHUNK bytes, 9 * ESB_CHUNK
 * with column exponents); outputs per block in the transposed layout. */
#define ESB_CHUNK 64

typedef enum esb_status {
    ESB_OK = 0,
    ESB_E_ARGUMENT = 1,  /* NULL pointer, or a buffer that is too small */
    ESB_E_NOT_ESB = 2,   /* empty buffer or wrong magic */
    ESB_E_VERSION = 3,   /* a format version this reader does not know */
    ESB_E_CORRUPT = 4,   /* any malformed field, section or length; see esb_model.message */
    ESB_E_CHECKSUM = 5,  /* a header or section CRC32 does not match */
    ESB_E_INPUT = 6,     /* NaN/Inf input, a CSR row that is not canonical, score overflow */
    ESB_E_HEAD = 7       /* not available for this model (predict on a regressor, proba ...) */
} esb_status;

/* Heads, in the format's numbering (ir.HEADS). */
enum { ESB_HEAD_IDENTITY = 0, ESB_HEAD_HARD, ESB_HEAD_LOGISTIC, ESB_HEAD_SOFTMAX,
       ESB_HEAD_MODIFIED_HUBER };
/* Value dtypes (ESB_VALUES_I8 also for int8 models with int16 rows: see "Raised rows"). */
enum { ESB_VALUES_F64 = 0, ESB_VALUES_F32 = 1, ESB_VALUES_I8 = 2 };
/* Index layouts (esb_layout_name): streamed without a workspace, the others built by
 * esb_use_workspace. */
enum { ESB_LAYOUT_STREAMED = 0, ESB_LAYOUT_COLUMNS, ESB_LAYOUT_DENSE, ESB_LAYOUT_TRANSPOSED };
/* Kinds of class labels (the encoding of the `classes` section). */
enum { ESB_LABEL_INT = 0, ESB_LABEL_FLOAT = 1, ESB_LABEL_STRING = 2 };

typedef struct esb_label {
    int kind;          /* ESB_LABEL_INT, ESB_LABEL_FLOAT or ESB_LABEL_STRING */
    int64_t i;         /* ESB_LABEL_INT */
    double f;          /* ESB_LABEL_FLOAT */
    const char *s;     /* ESB_LABEL_STRING: UTF-8 bytes inside the blob, NOT NUL-terminated */
    uint32_t len;      /* ESB_LABEL_STRING: byte length of s */
} esb_label;

typedef struct esb_section_ref {
    uint32_t offset, length;
    uint8_t encoding, present;
} esb_section_ref;

typedef struct esb_model {
    /* Public, read-only after esb_open. */
    uint32_t n_outputs;   /* scores per row (1 for binary classifiers and 1-D regressors) */
    uint32_t n_features;  /* input width */
    uint32_t n_columns;   /* used columns */
    uint32_t n_classes;   /* 0 for a regressor */
    uint32_t nnz;         /* stored weights */
    uint8_t head;         /* ESB_HEAD_* */
    uint8_t value_dtype;  /* ESB_VALUES_* */
    uint8_t squeeze;      /* 1-D output (the format's flag bit 0) */
    char message[ESB_MESSAGE_SIZE]; /* esb_open's error message, naming field and offset */
    /* Private. */
    const unsigned char *buf_;
    size_t size_;
    esb_section_ref sec_[12];  /* indexed by section kind 1..11 */
    uint32_t n_scales_;        /* 0, 1 (per tensor) or n_outputs (per row) */
    uint32_t n_wide_;          /* int16 ("wide") rows: values encoding 1 (mixed widths) */
    uint8_t mixed_;            /* values encoding 1: a wide-row bitmap precedes the values */
    uint8_t layout_;           /* ESB_LAYOUT_* (esb_use_workspace) */
    const int32_t *cols_;      /* columns: global column of every stored weight */
    const int8_t *wexp_;       /* columns, with exponents: every stored weight's exponent */
    const int8_t *dense_;      /* dense: n_outputs x n_features int8 weights */
    const int32_t *dfac_;      /* dense, with exponents: 2^e of every feature (float bits) */
    const int32_t *tptr_, *tcol_, *trow_, *tval_; /* transposed: see esb_use_workspace */
    const int32_t *cpos_;      /* CSR column index (esb_use_csr_index), or NULL */
} esb_model;

/* Verify `buf` (len bytes) completely and describe it in *m. On failure returns the error
 * code and m->message says what is wrong and where, e.g.
 * "corrupt .esb: section 'indices' at offset 96: column index 9 at position 3 is out of range
 * [0, 4)"; the model must then not be used. */
esb_status esb_open(const void *buf, size_t len, esb_model *m);

/* A short static description of a status code. */
const char *esb_strerror(esb_status code);

/* The smallest workspace for a decoded layout (see "Memory" above): for models that qualify
 * for the dense layout max(4 * nnz, its bytes), else the column list's (4 + E) * nnz; without
 * column exponents (E = 0) and int16 rows, 4 * nnz. */
size_t esb_workspace_size(const esb_model *m);

/* Workspace for this model's fastest layout: esb_workspace_size(m) when it gets the dense
 * layout (which uses only n_outputs * n_features + 4 * E * n_features of those bytes), else
 * the transposed layout's 8 * nnz + 8 * n_columns + 4. */
size_t esb_workspace_size_fast(const esb_model *m);

/* Build an index layout in ws (int32_t aligned; bytes decides the layout, see "Memory"
 * above) and use it from now on; ESB_E_ARGUMENT when bytes is too small for any. ws must
 * stay valid and unchanged while the model is used. */
esb_status esb_use_workspace(esb_model *m, int32_t *ws, size_t bytes);

/* Workspace bytes of one layout (ESB_LAYOUT_*) for this model: 0 for streamed, and for dense
 * when the values are not int8 (with or without int16 rows). */
size_t esb_layout_size(const esb_model *m, int layout);

/* Build the given layout (ESB_LAYOUT_STREAMED: drop the workspace) whether or not the model
 * qualifies for it, e.g. to compare layouts; ESB_E_ARGUMENT when bytes <
 * esb_layout_size(m, layout) or for dense without int8 values. Same rules for ws as
 * esb_use_workspace. */
esb_status esb_use_layout(esb_model *m, int layout, int32_t *ws, size_t bytes);

/* CSR column index (optional): n_features int32_t, built once per model into a caller buffer
 * by esb_use_csr_index: for every input column, its position among the used columns, or -1.
 * The CSR calls (one-row and batch) in the transposed layout then find each nonzero's used
 * column with one load instead of a search (the batch calls also skip their per-call column
 * table and its 8 KiB of stack): O(row nnz + weights in its columns) a row. Same outputs, bit
 * for bit: the same weights are added in the same order. The other layouts ignore it (the
 * dense layout already reads a CSR row's weights directly). esb_csr_index_size(m) is its
 * bytes, 4 * n_features (1 MiB for 2^18 hashed features); 0 for a model that is not open. */
size_t esb_csr_index_size(const esb_model *m);

/* Build the CSR column index in buf (int32_t aligned, at least esb_csr_index_size(m) bytes)
 * and use it from now on; buf NULL drops it (ESB_OK). ESB_E_ARGUMENT, with the index dropped
 * and nothing written, for a NULL or unopened model, a misaligned buf or bytes too small.
 * Independent of the layout (it may come before or after esb_use_workspace); buf must stay
 * valid and unchanged while the model uses it, and the model is read-only afterwards as
 * after esb_use_workspace. */
esb_status esb_use_csr_index(esb_model *m, int32_t *buf, size_t bytes);

/* "streamed", "columns", "dense" or "transposed": the layout the calls use. */
const char *esb_layout_name(const esb_model *m);

/* Raw scores X @ W.T + b: writes n_outputs floats to scores. */
esb_status esb_decision(const esb_model *m, const float *x, float *scores);
esb_status esb_decision_csr(const esb_model *m, uint32_t nnz, const int32_t *indices,
                            const float *values, float *scores);

/* Index of the predicted class (classifiers only; see esb_class_label). Regressors: use
 * esb_decision (their predict equals their scores), this returns ESB_E_HEAD. */
esb_status esb_predict(const esb_model *m, const float *x, uint32_t *class_index);
esb_status esb_predict_csr(const esb_model *m, uint32_t nnz, const int32_t *indices,
                           const float *values, uint32_t *class_index);

/* Class probabilities: writes n_classes floats (heads logistic, softmax, modified_huber). */
esb_status esb_predict_proba(const esb_model *m, const float *x, float *proba);
esb_status esb_predict_proba_csr(const esb_model *m, uint32_t nnz, const int32_t *indices,
                                 const float *values, float *proba);

/* Batches of dense rows: n_rows rows, row i at x + i * stride (stride >= n_features when
 * n_rows > 1; any value, e.g. 0, when n_rows <= 1), into caller-owned outputs:
 *   esb_decision_batch:      n_rows * n_outputs floats, row i's scores at scores + i * n_outputs
 *   esb_predict_batch:       n_rows class indices
 *   esb_predict_proba_batch: n_rows * n_classes floats, row i's at proba + i * n_classes.
 * Row i's outputs are bit for bit those of the one-row call on x + i * stride (esb_decision,
 * esb_predict, esb_predict_proba) with the same layout: the same operations in the same order
 * (see "Batch calls" above). No allocation and no workspace beyond esb_use_workspace's; stack
 * as described there.
 * Errors: ESB_E_ARGUMENT for a NULL model, x or output when n_rows > 0, or a stride below
 * n_features with n_rows > 1; ESB_E_HEAD as the one-row call; otherwise the rows are done in
 * order and the call stops at the first row the one-row call refuses (ESB_E_INPUT: NaN/Inf
 * input, score overflow) and returns its status. *n_done (if n_done is not NULL) is then the
 * number of rows whose outputs are written, i.e. the index of the refused row (n_rows on
 * success, 0 on an argument or head error); outputs of later rows are unspecified.
 * n_rows == 0 writes nothing and returns ESB_OK (or the head error: it comes first). */
esb_status esb_decision_batch(const esb_model *m, const float *x, size_t n_rows, size_t stride,
                              float *scores, size_t *n_done);
esb_status esb_predict_batch(const esb_model *m, const float *x, size_t n_rows, size_t stride,
                             uint32_t *class_index, size_t *n_done);
esb_status esb_predict_proba_batch(const esb_model *m, const float *x, size_t n_rows,
                                   size_t stride, float *proba, size_t *n_done);

/* Batches of CSR rows: row i is the nonzeros indptr[i] .. indptr[i + 1] - 1 of indices and
 * values (n_rows + 1 offsets, each row canonical as for esb_decision_csr; indptr[0] need not
 * be 0), outputs as for the dense batch calls. Row i's outputs are bit for bit those of the
 * one-row CSR call on its nonzeros: its kernel runs row by row, in the transposed layout with
 * a table built once per call (8 KiB of stack: where each of up to 2048 blocks of input
 * columns starts among the used columns), so that finding a nonzero's column is a lookup and
 * a short search (with the CSR column index, esb_use_csr_index: one load, and no table); for
 * models of up to 64 outputs the columns of up to 128 nonzeros (several rows) are found before
 * their weights are read (2 KiB more stack), each row's weights still added in its own order. Errors as for the dense batch calls; a row with
 * indptr[i + 1] < indptr[i] is ESB_E_INPUT. indices and values may be NULL when every row is
 * empty. */
esb_status esb_decision_csr_batch(const esb_model *m, size_t n_rows, const uint32_t *indptr,
                                  const int32_t *indices, const float *values, float *scores,
                                  size_t *n_done);
esb_status esb_predict_csr_batch(const esb_model *m, size_t n_rows, const uint32_t *indptr,
                                 const int32_t *indices, const float *values,
                                 uint32_t *class_index, size_t *n_done);
esb_status esb_predict_proba_csr_batch(const esb_model *m, size_t n_rows, const uint32_t *indptr,
                                       const int32_t *indices, const float *values,
                                       float *proba, size_t *n_done);

/* 1 when the model has predict_proba. */
int esb_has_proba(const esb_model *m);

/* Label of class k (0 <= k < n_classes). Takes O(k) for int and string labels. */
esb_status esb_class_label(const esb_model *m, uint32_t k, esb_label *label);

/* =============================================================================================
 * k-NN recommenders (format version 2): esb_knn.c, compiled as part of esb.c
 *
 * The reference reader is edgesparse/formats/knn.py, the reference runtime
 * edgesparse/runtime/knn.py (KnnModel, Surprise 1.1's KNNBasic / KNNWithMeans /
 * KNNWithZScore / KNNBaseline; its module docstring states the semantics).
 *
 *     esb_knn m;
 *     if (esb_knn_open(blob, len, &m) != ESB_OK) { puts(m.message); return 1; }
 *     static uint32_t index[...];   // esb_knn_index_size(&m) bytes, once per model
 *     if (esb_knn_use_index(&m, index, sizeof index) != ESB_OK) { puts(m.message); ... }
 *     static double ws[...];        // esb_knn_workspace_size(&m) bytes, one per thread
 *     uint32_t u = esb_knn_find_user(&m, "196", 3), i = esb_knn_find_item(&m, "302", 3);
 *     esb_knn_prediction p;
 *     esb_knn_predict(&m, u, i, ws, sizeof ws, &p);   // p.est, p.actual_k, p.was_impossible
 *
 * Verification: esb_knn_open makes every check knn.decode makes, in its order and with its
 * messages, on the blob in place, except that the raw ids of a side with more than
 * ESB_KNN_PAIRWISE_IDS ids are checked for repeats by esb_knn_use_index (which sorts them;
 * without allocation open could only compare every pair). A model is verified, and usable,
 * once esb_knn_use_index has succeeded.
 *
 * Ids: the calls take inner ids (0 .. n_users - 1, 0 .. n_items - 1: training order) or
 * ESB_KNN_UNKNOWN (any value >= n is unknown too), which gets Surprise's fallbacks. Raw ids,
 * the ids of the training data, are int64, float64 or UTF-8 strings in the blob (the kind is
 * esb_knn.user_id_kind / item_id_kind, ESB_LABEL_*); esb_knn_find_user / _item map the raw id
 * as text (decimal for int ids, any strtod syntax for float ids, the bytes for strings) to
 * its inner id in O(log n) through the index, ESB_KNN_UNKNOWN when there is none;
 * esb_knn_user_id / _item_id give the raw id of an inner id in O(1).
 *
 * Memory: no function allocates. The index (esb_knn_index_size: 4 * (2 n_x + n_y +
 * 2 n_users + 2 n_items + 5) bytes, uint32_t aligned; n_x is n_users for a user-based model,
 * else n_items, n_y the other side) holds the row starts of the varint-coded rows and the
 * sorted ids; it is read-only after esb_knn_use_index, so threads may share the model. Each
 * call needs its own workspace (esb_knn_workspace_size: 32 bytes per rating of the most rated
 * y, 4 per similarity of the longest similarity row, n_items / 8 for recommend; 8-byte
 * aligned).
 *
 * Numerics: the neighbours, their order (the k largest similarities, ties in the training
 * data's rating order, else all in rating order) and every product are those of
 * KnnModel.predict, and the sums are numpy's pairwise summation in that order, so estimates
 * equal the numpy runtime's bit for bit (8-bit similarities too: raw * (double)scale). Same
 * bits needs no FMA contraction: gcc's -std=c99 has -ffp-contract=off; with clang, or where
 * FMA is enabled (-mfma, -march=native, aarch64 clang), add -ffp-contract=off.
 * ============================================================================================= */
#define ESB_KNN_FORMAT_VERSION 2
#define ESB_KNN_UNKNOWN 0xFFFFFFFFu
/* Ids per side up to which esb_knn_open compares every pair for repeats. */
#define ESB_KNN_PAIRWISE_IDS 4096u
enum { ESB_KNN_BASIC = 0, ESB_KNN_MEANS, ESB_KNN_ZSCORE, ESB_KNN_BASELINE };
enum { ESB_SIM_F64 = 0, ESB_SIM_F32, ESB_SIM_U8 };
/* esb_knn_prediction.reason */
enum { ESB_KNN_REASON_NONE = 0, ESB_KNN_REASON_UNKNOWN, ESB_KNN_REASON_TOO_FEW };

typedef struct esb_knn {
    /* Public, read-only after esb_knn_open. */
    uint32_t n_users, n_items, k, min_k, sim_nnz, n_ratings;
    uint8_t variant;       /* ESB_KNN_BASIC .. ESB_KNN_BASELINE */
    uint8_t sim_dtype;     /* ESB_SIM_F64, ESB_SIM_F32, ESB_SIM_U8 (per-row float32 scales) */
    uint8_t user_based;    /* similarities between users (1) or items (0) */
    uint8_t user_id_kind;  /* ESB_LABEL_INT, ESB_LABEL_FLOAT or ESB_LABEL_STRING */
    uint8_t item_id_kind;
    double global_mean, rating_low, rating_high;
    char message[ESB_MESSAGE_SIZE]; /* the error message of esb_knn_open / _use_index */
    /* Private. */
    const unsigned char *buf_;
    size_t size_;
    esb_section_ref sec_[15]; /* indexed by section kind 1..14 */
    double step_;
    uint32_t max_sim_row_, max_yr_row_;
    const uint32_t *idx_;     /* esb_knn_use_index */
} esb_knn;

typedef struct esb_knn_prediction {
    double est;           /* clipped to [rating_low, rating_high] */
    double est_unclipped;
    uint32_t actual_k;    /* neighbours used; 0 with has_actual_k == 0 for unknown ids */
    uint8_t has_actual_k; /* Surprise's details carry actual_k */
    uint8_t was_impossible;
    uint8_t reason;       /* ESB_KNN_REASON_*: why it was impossible */
} esb_knn_prediction;

/* Verify a version-2 blob in place (see above); on failure m->message says what and where,
 * in the Python reader's words. */
esb_status esb_knn_open(const void *buf, size_t len, esb_knn *m);
/* Bytes of the index, and building it (ESB_E_ARGUMENT when too small or not uint32_t
 * aligned; ESB_E_CORRUPT, with m->message, for repeated raw ids). idx must stay valid and
 * unchanged while the model is used. */
size_t esb_knn_index_size(const esb_knn *m);
esb_status esb_knn_use_index(esb_knn *m, uint32_t *idx, size_t bytes);
/* Bytes of one call's workspace (predict and recommend). */
size_t esb_knn_workspace_size(const esb_knn *m);
/* Inner id of a raw id given as text (len bytes), or ESB_KNN_UNKNOWN. Needs the index. */
uint32_t esb_knn_find_user(const esb_knn *m, const char *text, size_t len);
uint32_t esb_knn_find_item(const esb_knn *m, const char *text, size_t len);
/* Raw id of an inner id (strings point into the blob, not NUL-terminated). */
esb_status esb_knn_user_id(const esb_knn *m, uint32_t user, esb_label *id);
esb_status esb_knn_item_id(const esb_knn *m, uint32_t item, esb_label *id);
/* KnnModel.predict(user, item): Surprise's estimate, fallbacks and details. */
esb_status esb_knn_predict(const esb_knn *m, uint32_t user, uint32_t item, void *ws,
                           size_t ws_bytes, esb_knn_prediction *out);
/* KnnModel.recommend(user, n, exclude_seen): the min(n, candidates) items with the highest
 * clipped estimates, best first, ties in training (inner id) order; items the user rated in
 * training are left out when exclude_seen. Writes *n_out inner ids and clipped estimates. */
esb_status esb_knn_recommend(const esb_knn *m, uint32_t user, uint32_t n, int exclude_seen,
                             uint32_t *items, double *est, uint32_t *n_out, void *ws,
                             size_t ws_bytes);

/* =============================================================================================
 * Matrix-factorization recommenders (format version 3): esb_factors.c, compiled as part of esb.c
 *
 * Surprise 1.1's SVD, SVDpp, NMF and BaselineOnly. The reference reader is
 * edgesparse/formats/factors.py, the reference runtime edgesparse/runtime/factors.py
 * (FactorModel; the numeric contract is edgesparse/ir/factors.py's module docstring).
 *
 *     esb_factors m;
 *     if (esb_factors_open(blob, len, &m) != ESB_OK) { puts(m.message); return 1; }
 *     static uint32_t index[...];   // esb_factors_index_size(&m) bytes, once per model
 *     if (esb_factors_use_index(&m, index, sizeof index) != ESB_OK) { puts(m.message); ... }
 *     uint32_t u = esb_factors_find_user(&m, "196", 3), i = esb_factors_find_item(&m, "302", 3);
 *     esb_factors_prediction p;
 *     esb_factors_predict(&m, u, i, &p);           // p.est, p.was_impossible
 *
 * Verification: esb_factors_open makes every check factors.decode makes, in its order and with
 * its messages, on the blob in place; as for k-NN, the raw ids of a side with more than
 * ESB_KNN_PAIRWISE_IDS ids are checked for repeats by esb_factors_use_index (which sorts them).
 * A model is verified, and usable, once esb_factors_use_index has succeeded.
 *
 * Ids: as for k-NN (the same code): inner ids 0 .. n - 1 (training order) or ESB_KNN_UNKNOWN
 * (any value >= n), which gets Surprise's fallbacks; esb_factors_find_user / _item map a raw
 * id given as text to its inner id in O(log n), esb_factors_user_id / _item_id the other way.
 *
 * Memory: no function allocates and no call needs a workspace. The index
 * (esb_factors_index_size: 4 * (3 n_users + 2 n_items + 3) bytes, uint32_t aligned) holds where
 * each user's rated items start in the varint-coded `seen_items` section and the sorted ids;
 * it is read-only after esb_factors_use_index, so threads may share the model.
 *
 * Numerics: FactorModel.predict's, bit for bit. float64 / float32 factors: the products
 * q[i, f] * p[u, f] in double, summed with numpy's pairwise summation in factor order (as
 * numpy's row sum does); int8 factors: the exact integer sum D of p[u, f] * q[i, f], then
 * ((double)p_scale[u] * (double)q_scale[i]) * D. Then global mean (+ bu) (+ bi) (+ dot) left to
 * right (biased), or the dot (unbiased; the global mean, was_impossible, when the user or the
 * item is unknown). Same bits needs no FMA contraction (see "k-NN recommenders").
 * ============================================================================================= */
#define ESB_FACTORS_FORMAT_VERSION 3
enum { ESB_MF_SVD = 0, ESB_MF_SVDPP, ESB_MF_NMF, ESB_MF_BASELINE };
/* esb_factors.factor_dtype (ESB_MF_F64 also for BaselineOnly, which has no factors) */
enum { ESB_MF_F64 = 0, ESB_MF_F32, ESB_MF_I8 };

typedef struct esb_factors {
    /* Public, read-only after esb_factors_open. */
    uint32_t n_users, n_items, n_factors, n_seen; /* n_seen: stored (user, rated item) pairs */
    uint8_t algorithm;     /* ESB_MF_SVD .. ESB_MF_BASELINE */
    uint8_t factor_dtype;  /* ESB_MF_F64, ESB_MF_F32, ESB_MF_I8 (per-row float32 scales) */
    uint8_t biased;        /* user and item biases */
    uint8_t user_id_kind;  /* ESB_LABEL_INT, ESB_LABEL_FLOAT or ESB_LABEL_STRING */
    uint8_t item_id_kind;
    double global_mean, rating_low, rating_high;
    char message[ESB_MESSAGE_SIZE]; /* the error message of esb_factors_open / _use_index */
    /* Private. */
    const unsigned char *buf_;
    size_t size_;
    esb_section_ref sec_[12]; /* indexed by section kind 1..11 */
    const uint32_t *idx_;     /* esb_factors_use_index */
} esb_factors;

typedef struct esb_factors_prediction {
    double est;           /* clipped to [rating_low, rating_high] */
    double est_unclipped;
    uint8_t was_impossible; /* unbiased model, unknown user or item: the global mean */
} esb_factors_prediction;

/* Verify a version-3 blob in place; on failure m->message says what and where, in the Python
 * reader's words. */
esb_status esb_factors_open(const void *buf, size_t len, esb_factors *m);
/* Bytes of the index, and building it (ESB_E_ARGUMENT when too small or not uint32_t aligned;
 * ESB_E_CORRUPT, with m->message, for repeated raw ids). idx must stay valid and unchanged
 * while the model is used. */
size_t esb_factors_index_size(const esb_factors *m);
esb_status esb_factors_use_index(esb_factors *m, uint32_t *idx, size_t bytes);
/* Inner id of a raw id given as text (len bytes), or ESB_KNN_UNKNOWN. Needs the index. */
uint32_t esb_factors_find_user(const esb_factors *m, const char *text, size_t len);
uint32_t esb_factors_find_item(const esb_factors *m, const char *text, size_t len);
/* Raw id of an inner id (strings point into the blob, not NUL-terminated). */
esb_status esb_factors_user_id(const esb_factors *m, uint32_t user, esb_label *id);
esb_status esb_factors_item_id(const esb_factors *m, uint32_t item, esb_label *id);
/* FactorModel.predict(user, item): Surprise's estimate and fallbacks. O(n_factors). */
esb_status esb_factors_predict(const esb_factors *m, uint32_t user, uint32_t item,
                               esb_factors_prediction *out);
/* FactorModel.recommend(user, n, exclude_seen): the min(n, candidates) items with the highest
 * clipped estimates, best first, ties in training (inner id) order; items the user rated in
 * training are left out when exclude_seen. Writes *n_out inner ids and clipped estimates.
 * O(n_items * (n_factors + n)). */
esb_status esb_factors_recommend(const esb_factors *m, uint32_t user, uint32_t n,
                                 int exclude_seen, uint32_t *items, double *est,
                                 uint32_t *n_out);

/* ---------------------------------------------------------------------------------------------
 * Text input (a blob with a `text` section: HashingVectorizer / CountVectorizer /
 * TfidfVectorizer [+ TfidfTransformer]; esb_text.c, which esb.c includes)
 *
 * The featurizer computes what edgesparse/ir/text.py's contract says, as the numpy runtime
 * (runtime/text.py) and scikit-learn's transform do: decode the UTF-8 document; str.lower
 * (final sigma and U+0130 included); strip_accents ascii / unicode (NFKD without combining
 * characters); the word analyzer's tokens (runs of \w, Unicode alphanumerics and '_', of 2
 * (or 1) or more: the four supported token patterns), stop words and word n-grams, or the
 * char / char_wb n-grams (runs of whitespace, str.isspace, collapsed); MurmurHash3 x86_32 of
 * each term's UTF-8 (columns abs(h) % n_features, sign with alternate_sign) or the vocabulary's
 * column; sums, binary, norm, tf-idf (sublinear_tf, idf, norm), in double. The Unicode tables
 * (esb_unicode.h) are generated from Python's own str methods and unicodedata by
 * scripts/gen_unicode_tables.py (ESB_UNICODE_VERSION): text that only a newer Unicode
 * version classifies may tokenize differently from a Python with that version.
 *
 * Memory: no allocation. A caller workspace of esb_text_workspace_size(m, L) bytes (8-byte
 * aligned) featurizes any document of at most L bytes: with N = L code points (6 L with
 * strip_accents: one UTF-8 byte can become up to ESB_U_EXPAND code points) and
 * K = max_n - min_n + 1, it is 16 K (2N + 2) + 24 N + 160 bytes (term columns and values,
 * two code point buffers, token bounds, one term's UTF-8). A workspace that is too small for
 * a document (longer text or more terms than it holds) gives ESB_E_ARGUMENT, never an overflow;
 * invalid UTF-8 (what Python's bytes.decode rejects: overlong forms, surrogates, > U+10FFFF,
 * truncated sequences) gives ESB_E_INPUT. NUL bytes are characters like any other.
 * Time: O(document * (max_n - min_n + 1) * max_n) plus a sort of the terms. A vocabulary
 * term or a stop word is found in O(1) expected (one MurmurHash3 of the term, then a probe or
 * two) through a text index (esb_text_index_build, below: built once per model into a caller
 * buffer, passed to the _ix calls); the calls without one walk the vocabulary (O(terms x
 * vocabulary bytes)) and the stop list. esb_open checks that vocabulary terms are distinct in
 * O(V * vocabulary bytes / 2048), with 32 KiB of stack (a hash table of 4096 term offsets and
 * lengths) for that check. Measured (x86-64, a 24 508-term bigram tf-idf vocabulary of
 * standard-library docstrings): about 0.8 ms per docstring walking the vocabulary, a few
 * microseconds with the index, as a hashed model takes.
 * Build with -DESB_NO_TEXT to leave the text stage out (about 95 KB of code and tables at -O2
 * on x86-64): esb_open then refuses a blob with a text section by name, the calls below give
 * ESB_E_HEAD.
 */

/* Most code points one UTF-8 byte can become (lowercasing, then stripping accents: U+FDFA,
 * 3 bytes, is 18 code points); esb_unicode.h's ESB_U_EXPAND, checked at compile time. */
#define ESB_TEXT_EXPAND 6u
/* esb_text_workspace_size as a constant expression, for static buffers: documents of up to
 * max_doc bytes, k = max_n - min_n + 1, expand = ESB_TEXT_EXPAND with strip_accents, else 1. */
#define ESB_TEXT_WORKSPACE_BYTES(max_doc, k, expand)                                          \
    (16u * (k) * (2u * ((max_doc) * (expand) + 1u) + 2u) + 24u * ((max_doc) * (expand) + 1u) + \
     160u)

/* 1 when the model has a text input stage (its input is a document, not a feature row). */
int esb_has_text(const esb_model *m);

/* Workspace bytes that featurize any document of up to max_doc_bytes bytes (0 without a text
 * stage). */
size_t esb_text_workspace_size(const esb_model *m, size_t max_doc_bytes);

/* The feature row of one UTF-8 document (len bytes, NUL bytes allowed): *nnz columns, strictly
 * increasing, and their double values, both inside ws (valid until ws is reused). ESB_E_HEAD
 * without a text stage, ESB_E_INPUT for invalid UTF-8, ESB_E_ARGUMENT for NULL pointers or a
 * workspace too small for this document. */
esb_status esb_text_features(const esb_model *m, const char *utf8, size_t len, void *ws,
                             size_t ws_bytes, uint32_t *nnz, const int32_t **indices,
                             const double **values);

/* esb_decision_csr / esb_predict_csr / esb_predict_proba_csr on a document's feature row
 * (its values rounded to float, as the numpy runtime's linear layer reads them). */
esb_status esb_decision_text(const esb_model *m, const char *utf8, size_t len, void *ws,
                             size_t ws_bytes, float *scores);
esb_status esb_predict_text(const esb_model *m, const char *utf8, size_t len, void *ws,
                            size_t ws_bytes, uint32_t *class_index);
esb_status esb_predict_proba_text(const esb_model *m, const char *utf8, size_t len, void *ws,
                                  size_t ws_bytes, float *proba);

/* The text index: the vocabulary's terms and the stop words in an open-addressing hash table
 * (MurmurHash3 x86_32 of the UTF-8, linear probing, at most half full), so that a lookup costs
 * O(1) expected instead of a walk. Nothing in the blob changes (every blob has what it needs);
 * the index is built once per model, in O(vocabulary bytes), into a caller buffer:
 *
 *     static uint32_t buf[(ESB_TEXT_INDEX_BYTES(n_terms, n_stop) + 3) / 4];
 *     esb_text_index ix;
 *     if (esb_text_index_build(&m, buf, sizeof buf, &ix) != ESB_OK) { ... }
 *     esb_predict_text_ix(&m, &ix, doc, len, ws, ws_bytes, &k);
 *
 * With E = n_terms + n_stop it takes 4 (3 E + n_terms + 3) bytes, uint32_t aligned: 2 E + 1
 * slots (an entry number + 1, 0 empty), E + 2 byte offsets into the text section (each
 * entry's start and, from the next one, its length), n_terms columns. A hashing model without
 * stop words needs 12 bytes (nothing to index), and its index changes nothing. buf must stay
 * valid and unchanged while ix is used; ix and buf are read-only afterwards (threads may share
 * them). An index belongs to the blob bytes it was built from: build it again after loading
 * another blob, even at the same address. Features and predictions equal the calls without an
 * index, bit for bit. */
typedef struct esb_text_index {
    /* Private: set by esb_text_index_build. */
    const unsigned char *sec_;   /* the text section indexed (its model's blob) */
    const uint32_t *slots_;      /* n_slots_ entry numbers + 1, 0 empty */
    const uint32_t *off_;        /* stop words 0..n_stop_, then terms: offsets in sec_ */
    const uint32_t *col_;        /* n_terms_ columns */
    uint32_t n_slots_, n_terms_, n_stop_;
} esb_text_index;

/* esb_text_index_size as a constant expression, for static buffers: the model's vocabulary
 * terms (0 for a hashing model) and stop words, known when the blob is written. */
#define ESB_TEXT_INDEX_BYTES(n_terms, n_stop) \
    (4u * (3u * ((n_terms) + (n_stop)) + (n_terms) + 3u))

/* Bytes of this model's text index (0 without a text stage). */
size_t esb_text_index_size(const esb_model *m);

/* Build the text index of m into buf (bytes long) and describe it in *ix. ESB_E_HEAD without
 * a text stage; ESB_E_ARGUMENT for NULL pointers, a buf not uint32_t aligned or smaller than
 * esb_text_index_size(m) (nothing is written then). */
esb_status esb_text_index_build(const esb_model *m, uint32_t *buf, size_t bytes,
                                esb_text_index *ix);

/* The calls above through an index built for this model's blob (ix NULL: without one, as
 * above). ESB_E_ARGUMENT when ix indexes another blob's text section. */
esb_status esb_text_features_ix(const esb_model *m, const esb_text_index *ix, const char *utf8,
                                size_t len, void *ws, size_t ws_bytes, uint32_t *nnz,
                                const int32_t **indices, const double **values);
esb_status esb_decision_text_ix(const esb_model *m, const esb_text_index *ix, const char *utf8,
                                size_t len, void *ws, size_t ws_bytes, float *scores);
esb_status esb_predict_text_ix(const esb_model *m, const esb_text_index *ix, const char *utf8,
                               size_t len, void *ws, size_t ws_bytes, uint32_t *class_index);
esb_status esb_predict_proba_text_ix(const esb_model *m, const esb_text_index *ix,
                                     const char *utf8, size_t len, void *ws, size_t ws_bytes,
                                     float *proba);

/* ---------------------------------------------------------------------------------------------
 * Tabular input (a blob with a `tabular` section: a fitted ColumnTransformer of
 * SimpleImputer / OneHotEncoder / scalers; esb_tabular.c, which esb.c includes)
 *
 * The featurizer computes what edgesparse/ir/tabular.py's contract says for records read from
 * a CSV, as the numpy runtime (runtime/tabular.py) does on what data.read_records gives: every
 * cell is text; an empty cell is missing (NaN); a numeric column reads Python's float() of the
 * cell (whitespace, '_' between digits, inf / infinity / nan in any case, any Unicode decimal
 * digit; strtod rounds it, so the C locale's '.' must be in force); a categorical column whose
 * categories are all numbers reads int() of the cell, else float(), else keeps it as a string
 * (in no category); other categorical columns compare the cell's bytes with the string
 * categories. Then the imputer (NaN, or a numeric marker compared as a number), the one-hot
 * lookup by Python equality (2 == 2.0, every NaN equal; O(categories) per cell), drop, and
 * handle_unknown ('error': ESB_E_INPUT; 'ignore': all zeros), and for numeric columns
 * x * scale + offset, in double. Rows of at most 1024 features come out dense, wider ones as
 * CSR (as the numpy runtime's), and the predict calls round them to float for the linear
 * layer. esb_open verifies the section as formats/linear_tabular.py does, message for message.
 *
 * CSV: esb_csv_record splits one record as read_records does (csv.reader(strict=True) on
 * str.splitlines lines): ',' separates, '"' quotes ("" is a quote inside), a quoted field may
 * span lines (the line break is dropped), line breaks are \n, \r\n, \r, \v, \f, \x1c-\x1e,
 * U+0085, U+2028, U+2029; each cell is stripped of str.isspace characters. The caller skips a
 * UTF-8 BOM before the header, and records of 0 cells or one empty cell (blank lines).
 * esb_tabular_header maps the header's names to the model's inputs once (by name when the
 * model was fitted with names, else by position), O(n_inputs x header columns).
 *
 * Memory: no allocation. A caller workspace of esb_tabular_workspace_size(m, L) bytes (8-byte
 * aligned) featurizes a record whose cells have at most L bytes: 16 W + L + 8 bytes, W the
 * row's width (n_features when n_features <= 1024, else the stage's column count: at most one
 * nonzero per column). A longer cell that must be parsed as a number gives ESB_E_ARGUMENT.
 * Build with -DESB_NO_TABULAR to leave the stage out (about 17 KB of code at -O2 on x86-64):
 * esb_open then refuses a blob with a tabular section by name, the calls below give ESB_E_HEAD.
 *
 * Gaps vs Python: a quoted empty header line ("") is skipped as blank here, taken as a
 * one-column header there (an error either way); the header's width is checked before its
 * repeats (Python: repeats first). Same bits for x * scale + offset needs no FMA contraction
 * (gcc's -std=c99 has -ffp-contract=off; elsewhere add it).
 */

/* A cell of text: len bytes at text (not NUL-terminated; text may be NULL when len is 0). */
typedef struct esb_cell {
    const char *text;
    size_t len;
} esb_cell;

/* A featurized record: dense (sparse 0: n = n_features values) or CSR (n nonzeros at
 * strictly increasing indices); both point into the workspace. */
typedef struct esb_tabular_row {
    int sparse;
    uint32_t n;
    const int32_t *indices;
    const double *values;
} esb_tabular_row;

/* esb_tabular_header's reasons. */
enum { ESB_HEADER_OK = 0, ESB_HEADER_REPEATED, ESB_HEADER_WIDTH, ESB_HEADER_UNKNOWN,
       ESB_HEADER_MISSING };

/* esb_tabular_workspace_size as a constant expression: width W (see above), cells of up to
 * max_cell bytes. */
#define ESB_TABULAR_WORKSPACE_BYTES(width, max_cell) (16u * (width) + (max_cell) + 8u)

/* 1 when the model has a tabular input stage (its input is a record, not a feature row). */
int esb_has_tabular(const esb_model *m);
/* Cells per record (0 without a tabular stage). */
uint32_t esb_tabular_n_inputs(const esb_model *m);
/* Workspace bytes for records whose cells have at most max_cell_bytes bytes (0 without). */
size_t esb_tabular_workspace_size(const esb_model *m, size_t max_cell_bytes);

/* One CSV record from text[0..len): *used bytes read (through its last line break), its cells
 * (unquoted, stripped, pointing into out, which needs as many bytes as the record) in
 * cells[0..*n_cells). ESB_E_INPUT for a record csv refuses (a character after a closing quote,
 * a quote left open at the end of the text, a field of more than 131072 characters), invalid
 * UTF-8 or a NUL byte, or more than max_cells cells (*n_cells then says how many); ESB_E_ARGUMENT
 * for NULL pointers or out too small. */
esb_status esb_csv_record(const char *text, size_t len, size_t *used, char *out,
                          size_t out_bytes, esb_cell *cells, size_t max_cells, size_t *n_cells);

/* The header's n_names column names -> pos[k], the header column of the model's input k
 * (esb_tabular_n_inputs entries). ESB_E_INPUT with *reason ESB_HEADER_* and *which (the
 * header column, or the model input for ESB_HEADER_MISSING): more columns than the model
 * reads, a repeated name, an unknown name, a name missing, or (model fitted without names)
 * not exactly n_inputs columns. */
esb_status esb_tabular_header(const esb_model *m, const esb_cell *names, size_t n_names,
                              uint32_t *pos, int *reason, size_t *which);

/* The feature row of one record, cells[k] being the model's input k. ESB_E_INPUT for invalid
 * UTF-8, a numeric cell that is not a number, an unknown category with handle_unknown='error';
 * ESB_E_ARGUMENT for NULL pointers or a workspace too small; ESB_E_HEAD without the stage. */
esb_status esb_tabular_features(const esb_model *m, const esb_cell *cells, void *ws,
                                size_t ws_bytes, esb_tabular_row *row);

/* esb_decision / esb_predict / esb_predict_proba (or their CSR forms) on a record's feature
 * row rounded to float; NaN/Inf features (a missing value without an imputer) give
 * ESB_E_INPUT, as the numpy runtime's InputError. */
esb_status esb_decision_tabular(const esb_model *m, const esb_cell *cells, void *ws,
                                size_t ws_bytes, float *scores);
esb_status esb_predict_tabular(const esb_model *m, const esb_cell *cells, void *ws,
                               size_t ws_bytes, uint32_t *class_index);
esb_status esb_predict_proba_tabular(const esb_model *m, const esb_cell *cells, void *ws,
                                     size_t ws_bytes, float *proba);

#ifdef __cplusplus
}
#endif

#endif /* ESB_H */
