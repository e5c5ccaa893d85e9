"""The numpy runtime: scikit-learn's ``predict`` / ``decision_function`` / ``predict_proba`` for a
:class:`~edgesparse.ir.LinearIR`, on dense or CSR input, with no Python loop over rows or
nonzeros.

Everything that does not depend on the input is done once, in the constructor: weights are
dequantized (``w = s*q`` in float32, the IR's contract), restricted to the input columns that
any output uses, and laid out for one of two kernels:

*dense block*
    the used columns as a dense ``(n_used, n_outputs)`` matrix, so a batch is one BLAS call
    (``X[:, used] @ block``). Chosen when the block is small or well filled.
*sparse columns*
    the weights transposed to compressed columns (CSC), for big, thin models such as hashed
    text (2^18 features, 1% density) where a dense block would cost many times the model's
    own bytes. Each input nonzero expands to its column's weights; a ``bincount`` sums them.

Models with float64 weights (lossless re-encoding) compute in float64, so their outputs match
scikit-learn's to rounding; float32 and int8 models compute in float32.

Imports only numpy and the standard library: this is what runs on the device.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np

from edgesparse.counting import column_counts
from edgesparse.errors import InputError
from edgesparse.ir import LinearIR
from edgesparse.runtime.text import text_features

# A dense block is used when it holds at most this many cells, whatever its fill...
_DENSE_BLOCK_CELLS = 1 << 16
# ...or when at least this fraction of its cells are nonzero weights.
_DENSE_BLOCK_FILL = 0.25
# The sparse-column kernel expands at most about this many (output, weight) pairs at once.
_GATHER_CHUNK = 1 << 15
# Dense input to a sparse-column model: the weights are expanded to dense column slices of at
# most this many cells, one at a time (a bounded workspace), each one BLAS call.
_SLICE_CELLS = 1 << 18
# CSR input to a sparse-column model goes through a dense block of the used columns when it
# has at most this many cells (4 MiB in float32)...
_CSR_BLOCK_CELLS = 1 << 20
# ...and input columns are mapped to block rows by a table when there are at most this many.
_POS_MAP_FEATURES = 1 << 20
# Dense input of at most this many rows to a sparse-column model: per-output sums, no slices.
_ROW_KERNEL_ROWS = 2
_NAN_MESSAGE = "Input X contains NaN or infinity; impute or drop those values first"
# NaN/inf checks that cannot ride on the scores test this many cells at a time.
_FINITE_CHUNK = 1 << 16
# Unused columns are checked for NaN/inf by gathering them when they are at most this
# fraction of the input's columns; otherwise the whole input is checked in one pass.
_UNUSED_GATHER = 0.125


class Model:
    """A loaded linear model with scikit-learn's prediction methods.

    Build it with :func:`edgesparse.load` (from a ``.esb`` file) or :meth:`from_ir`.

    Attributes:
        classes_: class labels (classifiers only), in scikit-learn's order.
        n_features_in_: number of input features the model expects.
        n_outputs_: number of score columns (1 for binary classifiers and single regressors).
        ir: the :class:`~edgesparse.ir.LinearIR` this model runs.
    """

    def __init__(self, ir: LinearIR) -> None:
        self.ir = ir
        self.n_features_in_ = ir.n_features
        self.n_outputs_ = ir.n_outputs
        self._head = ir.head
        self._classes = ir.classes
        self._dtype = np.dtype(np.float64 if ir.values.dtype == np.float64 else np.float32)
        self._bias = ir.bias.astype(self._dtype)
        # scikit-learn returns 1-D scores for binary classifiers and 1-D-coef_ regressors;
        # the IR's squeeze flag says exactly that (it is always true for classifiers).
        self._one_column = ir.squeeze and ir.n_outputs == 1

        weights = ir.real_values(dtype=self._dtype)
        rows = ir.row_ids()
        # Column-major order of the nonzeros gives both the used-column list and the CSC layout.
        order = np.lexsort((rows, ir.indices))
        cols_sorted = ir.indices[order]
        self._used, col_counts = column_counts(cols_sorted, n_features=ir.n_features)
        self._used = self._used.astype(np.intp)
        self._all_used = self._used.size == ir.n_features
        n_used = self._used.size
        cells = n_used * ir.n_outputs
        self._dense = cells <= _DENSE_BLOCK_CELLS or ir.nnz >= _DENSE_BLOCK_FILL * cells
        if self._dense and 2 * n_used >= ir.n_features:
            # Most columns are used: a full-width block (zero rows for the rest) beats
            # gathering the used columns out of every input batch.
            self._used = np.arange(ir.n_features, dtype=np.intp)
            self._all_used = True
            n_used = ir.n_features
        self._csr_block: np.ndarray | None = None
        self._pos_map: np.ndarray | None = None
        # Columns with no nonzero weight: a BLAS may skip a zero weight (and a NaN with it),
        # so the NaN/inf check reads these columns itself.
        has_weight = np.zeros(ir.n_features, dtype=bool)
        has_weight[ir.indices[weights != 0]] = True
        self._unused = np.flatnonzero(~has_weight)
        if self._dense:
            # One extra zero row: input columns no output uses are pointed at it.
            block = np.zeros((n_used + 1, ir.n_outputs), dtype=self._dtype)
            pos = np.searchsorted(self._used, ir.indices)
            block[pos, rows] = weights
            self._block = block
            self._block64: np.ndarray | None = None
        else:
            self._col_ptr = np.zeros(n_used + 1, dtype=np.intp)
            np.cumsum(col_counts, out=self._col_ptr[1:])
            self._col_rows = rows[order].astype(np.int32)
            self._col_vals = weights[order]
            self._row_vals = weights
            self._row_idx = ir.indices.astype(np.intp)
            self._init_slices(cols_sorted)

    def _init_slices(self, cols_sorted: np.ndarray) -> None:
        # Dense input meets this model as consecutive column slices of _slice_width columns;
        # _slice_ptr[k] is the first nonzero (in CSC order) of slice k, _slice_flat each
        # nonzero's cell in its slice's (width, n_outputs) block.
        n_out = self.n_outputs_
        width = max(1, min(self.n_features_in_, _SLICE_CELLS // n_out))
        self._slice_width = width
        bounds = np.arange(0, self.n_features_in_ + width, width)
        self._slice_ptr = np.searchsorted(cols_sorted, bounds).astype(np.intp)
        self._slice_flat = ((cols_sorted % width) * n_out + self._col_rows).astype(np.int32)

    @classmethod
    def from_ir(cls, ir: LinearIR) -> Model:
        """Build a runtime model from a validated :class:`~edgesparse.ir.LinearIR`."""
        return cls(ir)

    # -- public API, scikit-learn semantics ---------------------------------------------------
    @property
    def classes_(self) -> np.ndarray:
        """Class labels, as the original classifier's ``classes_``."""
        if self._classes is None:
            raise AttributeError("a regressor has no classes_")
        return self._classes

    def decision_function(self, X: Any) -> np.ndarray:
        """Raw scores ``X @ W.T + b``; 1-D for binary classifiers, as scikit-learn returns."""
        scores = self._scores(X)
        return scores[:, 0] if self._one_column else scores

    def predict(self, X: Any) -> np.ndarray:
        """Class labels for classifiers; predicted values for regressors."""
        scores = self._scores(X)
        if not self.ir.is_classifier:
            return scores[:, 0] if self._one_column else scores
        assert self._classes is not None
        if self.n_outputs_ == 1:
            return self._classes[(scores[:, 0] > 0).astype(np.intp)]
        return self._classes[scores.argmax(axis=1)]

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, for models whose scikit-learn original has ``predict_proba``."""
        if not self.ir.has_proba:
            kind = "regressor" if not self.ir.is_classifier else f"{self._head!r} classifier"
            raise AttributeError(
                f"this {kind} has no predict_proba (the original model has none either)"
            )
        return _proba(self._head, self._scores(X))

    def __repr__(self) -> str:
        kind = "classifier" if self.ir.is_classifier else "regressor"
        return (
            f"<edgesparse.Model {kind} head={self._head} shape={self.ir.shape} "
            f"nnz={self.ir.nnz} {self.ir.quantization}>"
        )

    # -- kernels -----------------------------------------------------------------------------
    def _scores(self, X: Any) -> np.ndarray:
        if self.ir.featurizer is not None:  # the input stage: raw documents -> CSR rows
            X = text_features(self.ir.featurizer, X)
        if type(X) is not np.ndarray and is_sparse(X):
            data, indices, indptr, n_rows = self._check_csr(X)
            out = self._sparse_input_scores(data, indices, indptr, n_rows)
            Xd = None
        else:
            Xd = self._read_dense(X)
        # NaN/inf in the input (and overflow) is checked on the scores, right below: one
        # errstate for the whole call (entering it costs as much as a batch-1 product).
        with np.errstate(over="ignore", invalid="ignore"):
            if Xd is not None:
                out = self._dense_input_scores(Xd)
            out = out.astype(self._dtype, copy=False)
            out += self._bias
            # One sum is non-finite if any score is (or, rarely, if finite scores overflow
            # it: then the exact test decides). Cheaper than isfinite on each score.
            total = out.sum()
        if not math.isfinite(total) and not np.isfinite(out).all():
            if Xd is not None:
                # Every column the kernel read has a nonzero weight, so a NaN/inf there
                # reached a score: report it as the input's fault, as a full check would.
                _check_finite(Xd)
                if Xd.dtype != self._dtype and not self._dense:
                    # The sliced kernel computes float64 input in float64: an input value
                    # beyond the model's float32 range is reported as it was when cast first.
                    cast_to(Xd, self._dtype)
            # Finite input, finite weights: only an overflow gets here. A NaN/Inf score is
            # not a prediction (argmax would pick an arbitrary class).
            raise InputError(
                "Input X makes a score overflow this model's "
                f"{self._dtype} arithmetic; scale the input down"
            )
        return out

    def _dense_input_scores(self, Xd: np.ndarray) -> np.ndarray:
        # NaN/inf in a column the kernel reads propagates to a score (checked after, in
        # _scores); the columns no output reads are checked here.
        if self._dense and self._all_used:
            self._check_unused(Xd)
            block = self._block_for(Xd.dtype)[:-1]
            # ndarray.dot has the least overhead at batch 1 but copies a strided input;
            # matmul reads any strides in place.
            return Xd.dot(block) if Xd.flags.c_contiguous else np.matmul(Xd, block)
        if self._dense:
            _check_finite(Xd)  # the gather below skips most columns: check them all
            return self._gathered_block_scores(Xd)
        self._check_unused(Xd)
        if Xd.shape[0] <= _ROW_KERNEL_ROWS:
            return self._row_scores(Xd)
        return self._sliced_scores(Xd)

    def _row_scores(self, Xd: np.ndarray) -> np.ndarray:
        # A row or two: rebuilding dense slices would cost more than the product, so each
        # output sums its own nonzeros (the IR's row-major order) straight off the input.
        ptr = self.ir.indptr
        prod = Xd.take(self._row_idx, axis=1)  # intp indices: take's fast path
        prod *= self._row_vals
        out = np.zeros((Xd.shape[0], self.n_outputs_), dtype=prod.dtype)
        rows = ptr[1:] > ptr[:-1]
        if prod.shape[1]:
            out[:, rows] = np.add.reduceat(prod, ptr[:-1][rows], axis=1)
        return out

    def _gathered_block_scores(self, Xd: np.ndarray) -> np.ndarray:
        # Few used columns: gather them, a run of rows at a time (a bounded copy).
        block = self._block_for(Xd.dtype)[:-1]
        step = max(1, _SLICE_CELLS // max(1, self._used.size))
        if Xd.shape[0] <= step:
            return Xd[:, self._used].dot(block)
        out = np.empty((Xd.shape[0], self.n_outputs_), dtype=np.result_type(Xd, block))
        for lo in range(0, Xd.shape[0], step):
            out[lo : lo + step] = Xd[lo : lo + step, self._used].dot(block)
        return out

    def _check_unused(self, Xd: np.ndarray) -> None:
        if self._unused.size == 0 or Xd.dtype.kind != "f":
            return
        if Xd.shape[0] * self._unused.size <= _FINITE_CHUNK:
            _check_finite(Xd.take(self._unused, axis=1))  # small: one gather, no loop
        elif self._unused.size <= _UNUSED_GATHER * Xd.shape[1]:
            # Gathered a run of rows at a time: a bounded copy, not a fraction of the input.
            step = max(1, _FINITE_CHUNK // self._unused.size)
            for lo in range(0, Xd.shape[0], step):
                _check_finite(Xd[lo : lo + step, self._unused])
        else:
            _check_finite(Xd)

    def _sliced_scores(self, Xd: np.ndarray) -> np.ndarray:
        # One (width, n_outputs) block of weights at a time: scatter the slice's nonzeros in,
        # one BLAS product with the matching input columns (a view, no copy), clear them out.
        # Time is one pass over the model plus the dense product; workspace is one block.
        n_out = self.n_outputs_
        width = self._slice_width
        dtype = Xd.dtype if Xd.dtype == np.float64 else self._dtype
        block = np.zeros((width, n_out), dtype=dtype)
        flat = block.reshape(-1)
        out = np.zeros((Xd.shape[0], n_out), dtype=dtype)
        ptr = self._slice_ptr.tolist()
        for k, (lo, hi) in enumerate(itertools.pairwise(ptr)):
            if lo == hi:
                continue
            cells = self._slice_flat[lo:hi]
            flat[cells] = self._col_vals[lo:hi]
            first = k * width
            cols = Xd[:, first : first + width]
            out += np.matmul(cols, block[: cols.shape[1]])  # strided view, no copy
            flat[cells] = 0
        return out

    def _block_for(self, dtype: np.dtype) -> np.ndarray:
        # float64 input meets a float32 block: upcasting the (small) block once is far cheaper
        # than casting every large input batch down.
        if dtype == self._block.dtype:
            return self._block
        if self._block64 is None:
            self._block64 = self._block.astype(np.float64)
        return self._block64

    def _sparse_input_scores(
        self, data: np.ndarray, indices: np.ndarray, indptr: np.ndarray, n_rows: int
    ) -> np.ndarray:
        block = self._block if self._dense else self._sparse_input_block()
        if block is None:
            # Position of each input column among the used columns; unused ones hit nothing.
            pos = np.searchsorted(self._used, indices)
            hit = pos < self._used.size
            hit[hit] = self._used[pos[hit]] == indices[hit]
            row_ids = np.repeat(np.arange(n_rows, dtype=np.intp), np.diff(indptr))
            return self._gathered_scores(data[hit], pos[hit], row_ids[hit], n_rows)
        # Each input nonzero scales its column's weight row (unused columns: the zero row);
        # CSR rows are contiguous segments, so one reduceat sums a run of rows. Runs of rows
        # of about _SLICE_CELLS products at a time keep the workspace bounded.
        pos = self._positions(indices)
        n_out = self.n_outputs_
        out = np.zeros((n_rows, n_out), dtype=self._dtype)
        step = max(1, _SLICE_CELLS // n_out)
        starts = np.searchsorted(indptr, np.arange(0, int(indptr[-1]), step), side="right") - 1
        bounds = [*np.unique(starts).tolist(), n_rows]
        for r0, r1 in itertools.pairwise(bounds):
            a, b = int(indptr[r0]), int(indptr[r1])
            firsts = indptr[r0:r1]
            rows = indptr[r0 + 1 : r1 + 1] > firsts
            x = data[a:b].astype(self._dtype, copy=False)
            contrib = x[:, None] * block[pos[a:b]]
            out[r0:r1][rows] = np.add.reduceat(contrib, firsts[rows] - a, axis=0)
        return out

    def _sparse_input_block(self) -> np.ndarray | None:
        # A sparse-column model meets CSR input through a dense block of its used columns
        # when that block is small (built on first use, so dense-input users never pay for
        # it); gathering rows of it is many times faster than expanding column lists.
        if self._csr_block is None and self._used.size * self.n_outputs_ <= _CSR_BLOCK_CELLS:
            block = np.zeros((self._used.size + 1, self.n_outputs_), dtype=self._dtype)
            pos = np.repeat(np.arange(self._used.size), np.diff(self._col_ptr))
            block[pos, self._col_rows] = self._col_vals
            self._csr_block = block
        return self._csr_block

    def _positions(self, indices: np.ndarray) -> np.ndarray:
        # Input column -> row of the block (n_used, the zero row, for unused columns). A
        # lookup table (4 bytes a feature, built once) when affordable; else a binary search.
        if self._pos_map is None and self.n_features_in_ <= _POS_MAP_FEATURES:
            pos_map = np.full(self.n_features_in_, self._used.size, dtype=np.int32)
            pos_map[self._used] = np.arange(self._used.size, dtype=np.int32)
            self._pos_map = pos_map
        if self._pos_map is not None:
            return self._pos_map[indices]
        pos = np.searchsorted(self._used, indices)
        hit = pos < self._used.size
        hit[hit] = self._used[pos[hit]] == indices[hit]
        pos[~hit] = self._used.size
        return pos

    def _gathered_scores(
        self, data: np.ndarray, pos: np.ndarray, row_ids: np.ndarray, n_rows: int
    ) -> np.ndarray:
        # Expand each input nonzero (x, used column p) into that column's (output, weight) list,
        # a bounded number of expanded entries at a time so big batches stay small in RAM.
        starts = self._col_ptr[pos]
        counts = self._col_ptr[pos + 1] - starts
        ends = np.cumsum(counts)
        expanded = int(ends[-1]) if ends.size else 0
        bounds = [0, pos.size]
        if expanded > _GATHER_CHUNK:  # batch-1 never gets here: no chunking overhead
            cuts = np.searchsorted(ends, np.arange(_GATHER_CHUNK, expanded, _GATHER_CHUNK))
            bounds[1:1] = cuts.tolist()
        n_out = self.n_outputs_
        sums = np.zeros(n_rows * n_out)
        for lo, hi in itertools.pairwise(bounds):
            if lo == hi:
                continue
            c = counts[lo:hi]
            total = int(c.sum())
            first = np.cumsum(c) - c
            gather = np.repeat(starts[lo:hi] - first, c) + np.arange(total, dtype=np.intp)
            # Row ids are non-decreasing: a chunk covers rows r0..r1 only, and summing into
            # just those keeps the time linear in the batch (not chunks x batch).
            r0, r1 = int(row_ids[lo]), int(row_ids[hi - 1]) + 1
            keys = np.repeat((row_ids[lo:hi] - r0) * n_out, c) + self._col_rows[gather]
            x = data[lo:hi].astype(self._dtype, copy=False)
            vals = np.repeat(x, c) * self._col_vals[gather]
            sums[r0 * n_out : r1 * n_out] += np.bincount(
                keys, weights=vals, minlength=(r1 - r0) * n_out
            )
        return sums.astype(self._dtype, copy=False).reshape(n_rows, self.n_outputs_)

    # -- input validation (scikit-learn's messages, one pass over the input) -----------------
    def _check_dense(self, X: Any) -> np.ndarray:
        """Read, check (NaN/inf included) and cast a dense input, as a separate pass."""
        Xd = self._read_dense(X, cast=False)
        _check_finite(Xd)
        if Xd.dtype != self._dtype and not (self._dense and Xd.dtype == np.float64):
            Xd = cast_to(Xd, self._dtype)
        return Xd

    def _read_dense(self, X: Any, *, cast: bool = True) -> np.ndarray:
        # Everything but NaN/inf, which the kernels check on what they read.
        if type(X) is np.ndarray and X.ndim == 2 and X.dtype.kind == "f":
            # The common case, without the general path's calls (a third of a batch-1 call).
            if X.shape[1] != self.n_features_in_ or X.shape[0] < 1:
                self._check_shape(X.shape)
            if X.dtype.itemsize >= 4 and X.dtype.itemsize <= 8:  # float32/float64: no cast
                return X
        try:
            Xd = np.asarray(X)
        except (TypeError, ValueError) as exc:
            raise InputError(f"X cannot be read as a numeric array: {exc}") from None
        _check_numeric(Xd.dtype)
        if Xd.ndim != 2:
            from edgesparse.data import reshape_advice  # only on this error: keeps imports lean

            raise InputError(
                f"Expected a 2-D array, got a {Xd.ndim}-D array instead: "
                + reshape_advice(Xd.shape)
            )
        self._check_shape(Xd.shape)
        if cast and Xd.dtype not in (np.float32, np.float64):
            # Integers, booleans, float16/longdouble: cast (ints are finite; a longdouble too
            # large for the model's arithmetic is refused by cast_to, NaN/inf by the kernels).
            Xd = cast_to(Xd, self._dtype)
        return Xd

    def _check_csr(self, X: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        if getattr(X, "format", None) != "csr":
            X = X.tocsr()
        try:
            shape = tuple(int(n) for n in X.shape)
        except (TypeError, ValueError):
            raise InputError(f"X has an invalid shape {X.shape!r}") from None
        if len(shape) != 2:
            raise InputError(f"Expected a 2-D sparse matrix, got shape {shape}")
        self._check_shape(shape)
        data = np.asarray(X.data)
        indices = np.asarray(X.indices)
        indptr = np.asarray(X.indptr)
        _check_numeric(data.dtype)
        # scipy checks these when it builds a matrix, but its attributes (and a CSRArrays) can
        # be anything: a bad indptr would make numpy fail deep in a kernel, or read wrong rows.
        bad = None
        if data.ndim != 1 or indices.ndim != 1 or indptr.ndim != 1:
            bad = "data, indices and indptr must be 1-D"
        elif indices.dtype.kind not in "iu" or indptr.dtype.kind not in "iu":
            bad = f"indices ({indices.dtype}) and indptr ({indptr.dtype}) must be integer arrays"
        elif indptr.size != shape[0] + 1:
            bad = f"indptr has {indptr.size} entries, expected n_rows + 1 = {shape[0] + 1}"
        elif data.size != indices.size:
            bad = f"data has {data.size} entries and indices {indices.size}; they must match"
        elif int(indptr[0]) != 0 or int(indptr[-1]) != indices.size:
            bad = (
                f"indptr must start at 0 and end at nnz = {indices.size}, got "
                f"{int(indptr[0])} and {int(indptr[-1])}"
            )
        elif np.any(indptr[1:] < indptr[:-1]):
            bad = "indptr must be non-decreasing"
        elif indices.size and (int(indices.min()) < 0 or int(indices.max()) >= shape[1]):
            bad = f"a column index is outside [0, {shape[1]})"
        if bad:
            raise InputError(f"X is not a valid CSR matrix: {bad}")
        _check_finite(data)
        return data, indices.astype(np.intp, copy=False), indptr.astype(np.intp), shape[0]

    def _check_shape(self, shape: tuple[int, ...]) -> None:
        if shape[1] != self.n_features_in_:
            raise InputError(
                f"X has {shape[1]} features, but the model expects {self.n_features_in_} "
                "features as input"
            )
        if shape[0] < 1:
            raise InputError(f"X has 0 samples (shape={shape}); at least 1 is required")


def _check_numeric(dtype: np.dtype) -> None:
    if dtype.kind == "c":
        raise InputError("Complex data not supported: X must be real numbers")
    if dtype.kind not in "fiub":
        raise InputError(f"X must be numeric, got dtype {dtype}")


def _check_finite(a: np.ndarray) -> None:
    if a.dtype.kind != "f":
        return
    if a.size <= _FINITE_CHUNK:
        if not np.isfinite(a).all():
            raise InputError(_NAN_MESSAGE)
        return
    # Runs of rows of about _FINITE_CHUNK cells: a bounded mask, not one the input's size.
    rows = a.reshape(-1, 1) if a.ndim < 2 else a
    step = max(1, _FINITE_CHUNK // max(1, rows.shape[1]))
    for lo in range(0, rows.shape[0], step):
        if not np.isfinite(rows[lo : lo + step]).all():
            raise InputError(_NAN_MESSAGE)


def cast_to(X: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``X`` as ``dtype``; a finite float that overflows the narrower type is an InputError."""
    with np.errstate(over="ignore", invalid="ignore"):
        out = X.astype(dtype)
    if out.dtype.kind == "f" and X.dtype.kind == "f" and not np.isfinite(out).all():
        raise InputError(
            f"Input X contains a value too large for this model's {dtype} arithmetic "
            f"(largest allowed magnitude {np.finfo(dtype).max:.3g})"
        )
    return out


def is_sparse(X: Any) -> bool:
    """Whether ``X`` is a scipy sparse matrix or array."""
    # Duck-typed so that the runtime never imports scipy.
    return hasattr(X, "tocsr") and hasattr(X, "nnz")


def _sigmoid(z: np.ndarray) -> np.ndarray:
    # exp(-log(1 + exp(-z))) never overflows, unlike 1 / (1 + exp(-z)).
    return np.exp(-np.logaddexp(0, -z))


def _proba(head: str, scores: np.ndarray) -> np.ndarray:
    """scikit-learn's probability heads, on a ``(n_rows, n_outputs)`` score matrix."""
    if head == "softmax":
        z = scores - scores.max(axis=1, keepdims=True)
        np.exp(z, out=z)
        z /= z.sum(axis=1, keepdims=True)
        return z
    if head == "logistic":
        p = _sigmoid(scores)
    elif head == "modified_huber":
        p = (np.clip(scores, -1, 1) + 1) / 2
    else:
        raise AssertionError(f"no probability head {head!r}")  # guarded by has_proba
    if p.shape[1] == 1:
        return np.hstack([1 - p, p])
    return _normalise_ovr(p)


def _normalise_ovr(p: np.ndarray) -> np.ndarray:
    # One-vs-rest rows are scaled to sum to 1; scikit-learn makes rows where every class
    # has probability 0 uniform (both in _predict_proba_lr and for modified_huber).
    total = p.sum(axis=1, keepdims=True)
    zero = total[:, 0] == 0
    if zero.any():
        p[zero] = 1
        total[zero] = p.shape[1]
    p /= total
    return p
