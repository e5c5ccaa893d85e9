"""The numpy runtime: scikit-learn's ``predict`` / ``decision_function`` / ``predict_proba`` for a
:class:`~edgesparse.ir.LinearIR`, on dense or CSR input, with no Python loop over rows or
nonzeros.

Everything that does not depend on the input is done once, in the constructor: weights are
dequantized (``w = s*q`` in float32, the IR's contract), restricted to the input columns that
any output uses, and laid out for one of two kernels:

*dense block*
    the used columns as a dense ``(n_used, n_outputs)`` matrix, so a batch is one BLAS call
    (``X[:, used] @ block``). Chosen when the block is small or well filled. A full-width
    one with few outputs also has a one-row path (:mod:`edgesparse.runtime.one_row`): one
    ``dot``, then the bias, the checks and the labels or probabilities on the few scores as
    Python floats (at batch 1 each numpy call costs about as much as the product); and any
    full-width one a batch path (:mod:`edgesparse.runtime.dense_batch`): the product, one
    check of the scores, one of the unused columns, the cast and the bias, in front of the
    general path, which recomputes and reports whatever it finds not finite.
*sparse columns*
    the weights transposed to compressed columns (CSC), for big, thin models such as hashed
    text (2^18 features, 1% density) where a dense block would cost many times the model's
    own bytes. Dense input:
    each output sums its own nonzeros off the input (thin models, or a row or two), else
    dense slices of the weights meet the input one BLAS product at a time. At load such a
    model keeps only its used columns (int32); each layout (the CSC arrays, the block and
    its column map, the list of weightless columns) is built by the first kernel that reads
    it, so a device that sends only CSR never holds the CSC arrays (process memory, issue 19).

CSR input (:mod:`edgesparse.runtime.csr_input`) gathers the weight rows of its nonzeros'
columns out of a dense block (a sparse-column model's block of its used columns, when small)
and sums them per row, a bounded piece of nonzeros at a time; one CSR row has a fast path.

Every temporary array is sized by a bounded run of rows (or of CSR nonzeros), not by the
batch: predict needs the input, the output, the model and a bounded workspace.

Models with float64 weights (lossless re-encoding) compute in float64, so their outputs match
scikit-learn's to rounding; float32 and int8 models compute in float32.

NaN/inf in the input is found on the scores, not by a pass over the input: every weight is
finite (the IR checks it, and int8/int16 weights with their scales and column exponents are
checked to dequantize to finite float32), so a NaN or inf in an input column with a nonzero
weight makes that output NaN or inf (``nan*w = nan``, ``inf*w = ±inf``, ``inf - inf = nan``,
``inf*0 = nan``), and a finite score proves the columns it read were finite. Columns no output
reads are checked on their own (a BLAS may skip a zero weight). A non-finite score then
decides between the two errors: the input's NaN/inf, or an overflow of the arithmetic.

Imports only numpy and the standard library: this is what runs on the device.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from edgesparse.errors import InputError
from edgesparse.ir import LinearIR
from edgesparse.runtime.checks import (
    CsrParts,
    cast_to,
    check_finite,
    check_shape,
    csr_parts,
    fp_quiet,
    fp_restore,
    is_sparse,
    one_csr_row,
    read_dense,
)
from edgesparse.runtime.dense_batch import BatchForm, batch_form, batch_scores, bias_tile
from edgesparse.runtime.dense_kernels import checked_runs, gathered_block, row_sums, sliced_sums
from edgesparse.runtime.heads import proba, proba_row
from edgesparse.runtime.layout import Columns, complement, sparse_columns, unused_columns
from edgesparse.runtime.one_row import RowForm, row_form, row_scores

if TYPE_CHECKING:  # the CSR path's module is imported by the first CSR input (_csr_weights)
    from edgesparse.runtime.csr_input import CsrWeights

__all__ = ["CsrParts", "Model", "cast_to", "is_sparse", "stage_features"]

# A dense block is used when it holds at most this many cells, whatever its fill...
_DENSE_BLOCK_CELLS = 1 << 16
# ...or when at least this fraction of its cells are nonzero weights.
_DENSE_BLOCK_FILL = 0.25
# A full-width dense model with at most this many outputs has a one-row path (one_row.py).
_ROW_OUTPUTS = 64
# Dense input to a sparse-column model: the weights are expanded to dense column slices of at
# most this many cells, one at a time (a bounded workspace), each one BLAS call.
_SLICE_CELLS = 1 << 18
# Dense input of at most this many rows to a sparse-column model: per-output sums, no slices;
# and any number of rows when at most this fraction of its cells are weights (the slices'
# dense product would mostly multiply zeros).
_ROW_KERNEL_ROWS = 2
_ROW_KERNEL_FILL = 0.125
# A dense input of more than twice this many bytes to a full-width block is multiplied a run
# of rows of about this many bytes at a time, each run's unused columns checked while it is
# in cache (three quarters of a core's 1 MiB L2 where measured).
_CHECK_RUN_BYTES = 3 << 18
# NaN/inf checks that cannot ride on the scores test this many cells at a time.
_FINITE_CHUNK = 1 << 16
# Unused columns are checked for NaN/inf by gathering them when they are at most this
# fraction of the input's columns; otherwise the whole input is checked in one pass.
_UNUSED_GATHER = 0.125
_F32 = np.dtype(np.float32)
_F64 = np.dtype(np.float64)


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
        self._is_classifier = ir.is_classifier
        self._dtype = _F64 if ir.values.dtype == np.float64 else _F32
        self._bias = ir.bias.astype(self._dtype)
        # scikit-learn returns 1-D scores for binary classifiers and 1-D-coef_ regressors;
        # the IR's squeeze flag says exactly that (it is always true for classifiers).
        self._one_column = ir.squeeze and ir.n_outputs == 1
        # A text input stage: raw documents in, never a feature matrix (no fast paths).
        self._raw_input = ir.featurizer is not None

        # Used columns (sorted): a mark per feature (1 byte each, for the moment) and a scan.
        marked = np.zeros(ir.n_features, dtype=bool)
        marked[ir.indices] = True
        used = np.flatnonzero(marked)
        del marked
        self._all_used = used.size == ir.n_features
        n_used = used.size
        cells = n_used * ir.n_outputs
        self._dense = cells <= _DENSE_BLOCK_CELLS or ir.nnz >= _DENSE_BLOCK_FILL * cells
        self._csr: CsrWeights | None = None  # what CSR input reads, built on first use
        self._row_form: RowForm | None = None
        self._row_shape: tuple[int, int] | None = None
        self._batch: BatchForm | None = None
        self._bias_tile: np.ndarray | None = None
        self._unused_cols: np.ndarray | None = None
        if not self._dense:
            # Everything else a sparse-column model needs is built by the first kernel that
            # reads it (_layout): CSR input through the used-column block never does. Its
            # used columns are int32 (half the bytes); only the CSR kernels' lookups read them.
            self._used = used.astype(np.int32)
            self._columns: Columns | None = None
            return
        if 2 * n_used >= ir.n_features:
            # Most columns are used: a full-width block (zero rows for the rest) beats
            # gathering the used columns out of every input batch.
            used = np.arange(ir.n_features, dtype=np.intp)
            self._all_used = True
            n_used = ir.n_features
        self._used = used  # intp: the fast path of take / fancy indexing
        weights = ir.real_values(dtype=self._dtype)
        self._unused_cols = unused_columns(ir.indices, weights, n_features=ir.n_features)
        # One extra zero row: input columns no output uses are pointed at it.
        block = np.zeros((n_used + 1, ir.n_outputs), dtype=self._dtype)
        pos = ir.indices if self._all_used else np.searchsorted(used, ir.indices)
        block[pos, ir.row_ids()] = weights
        self._block = block
        self._block64: np.ndarray | None = None
        if self._all_used and ir.n_outputs <= _ROW_OUTPUTS:
            self._row_shape = (1, ir.n_features)
            self._row_form = row_form(block[:-1], unused=self._unused, bias=self._bias)
        if self._all_used and not self._raw_input:
            self._batch = batch_form(
                block[:-1], unused=self._unused, bias=self._bias, max_bytes=2 * _CHECK_RUN_BYTES
            )

    def _layout(self) -> Columns:
        # A sparse-column model's by-column arrays, built by the first kernel that reads them.
        if self._columns is None:
            self._columns = sparse_columns(
                self.ir, dtype=self._dtype, used=self._used, slice_cells=_SLICE_CELLS
            )
        return self._columns

    # What the kernels read of it, under the names they use.
    _col_ptr = property(lambda self: self._layout().col_ptr)
    _col_rows = property(lambda self: self._layout().col_rows)
    _col_vals = property(lambda self: self._layout().col_vals)
    _row_vals = property(lambda self: self._layout().row_vals)
    _row_idx = property(lambda self: self._layout().row_idx)
    _slice_width = property(lambda self: self._layout().slice_width)
    _slice_ptr = property(lambda self: self._layout().slice_ptr)
    _slice_flat = property(lambda self: self._layout().slice_flat)

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
        if type(X) is not np.ndarray:
            s = self._one_csr_row(X)
            if s is not None:
                return s if self._one_column else s.reshape(1, -1)
        elif (shape := X.shape) == self._row_shape:
            row = self._one_row(X)
            if row is not None:
                # ndmin: a 2-D array of a flat list is cheaper than of a nested one
                return np.array(row, dtype=self._dtype, ndmin=1 if self._one_column else 2)
        elif (
            self._batch is not None
            and len(shape) == 2
            and shape[1] == self.n_features_in_
            and shape[0]
            and (s := batch_scores(X, self._batch)) is not None
        ):
            if s.ndim == 1 and not self._one_column:  # one output, kept 2-D
                return s.reshape(-1, 1)
            return s
        scores = self._scores(X)
        return scores[:, 0] if self._one_column else scores

    def predict(self, X: Any) -> np.ndarray:
        """Class labels for classifiers; predicted values for regressors."""
        if self._is_classifier:
            row = self._row_floats(X)
            if row is not None:  # the label straight from the Python scores
                i = int(row[0] > 0) if len(row) == 1 else row.index(max(row))
                return self._classes[i : i + 1].copy()
        scores = self._scores(X)
        if not self._is_classifier:
            return scores[:, 0] if self._one_column else scores
        assert self._classes is not None
        if self.n_outputs_ == 1:
            return self._classes.take(scores[:, 0] > 0)
        return self._classes.take(scores.argmax(axis=1))

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, for models whose scikit-learn original has ``predict_proba``."""
        if not self.ir.has_proba:
            kind = "regressor" if not self._is_classifier else f"{self._head!r} classifier"
            raise AttributeError(
                f"this {kind} has no predict_proba (the original model has none either)"
            )
        row = self._row_floats(X)
        if row is not None:
            p = proba_row(self._head, row)
            if p is not None:
                return np.array([p], dtype=self._dtype)
            return proba(self._head, np.array([row], dtype=self._dtype))
        return proba(self._head, self._scores(X))

    def __repr__(self) -> str:
        kind = "classifier" if self._is_classifier else "regressor"
        return (
            f"<edgesparse.Model {kind} head={self._head} shape={self.ir.shape} "
            f"nnz={self.ir.nnz} {self.ir.quantization}>"
        )

    # -- kernels -----------------------------------------------------------------------------
    def _one_row(self, X: np.ndarray) -> list[float] | None:
        # A (1, n_features) array of a model with a one-row form.
        assert self._row_form is not None
        return row_scores(X, self._row_form)

    def _row_floats(self, X: Any) -> list[float] | None:
        """One row's scores as Python floats (dense or CSR), or None: the general path."""
        if type(X) is np.ndarray:
            return self._one_row(X) if X.shape == self._row_shape else None
        s = self._one_csr_row(X)
        return None if s is None else s.tolist()

    def _one_csr_row(self, X: Any) -> np.ndarray | None:
        """The ``(n_outputs,)`` scores of a scipy CSR matrix of one row, bias added, as the
        general path computes them; or None (not one, or a score not finite or too large:
        the general path then checks it all and says what is wrong).

        Its structure is checked in a few Python comparisons, the column range by the gather
        itself (unsigned indices into a table of exactly ``n_features`` rows raise
        IndexError outside it), NaN/inf in the values by one dot of them with themselves
        added to the scores' own."""
        if self._raw_input or getattr(X, "format", None) != "csr":
            return None
        parts = one_csr_row(X, n_features=self.n_features_in_)
        if parts is None:
            return None
        return self._csr_weights().one_row(*parts, bias=self._bias)

    def _batch_scores(self, X: np.ndarray) -> np.ndarray | None:
        """A 2-D float array's ``(n_rows, n_outputs)`` scores by the batch path, or None."""
        shape = X.shape
        if self._batch is None or len(shape) != 2 or shape[1] != self.n_features_in_:
            return None
        if not shape[0] or shape == self._row_shape:
            return None
        s = batch_scores(X, self._batch)
        return s.reshape(-1, 1) if s is not None and s.ndim == 1 else s

    def _scores(self, X: Any) -> np.ndarray:
        """``(n_rows, n_outputs)`` scores in the model's dtype, every input check made."""
        if type(X) is np.ndarray and (s := self._batch_scores(X)) is not None:
            return s
        token = fp_quiet()
        try:
            if self._raw_input:
                feats: np.ndarray | CsrParts = self._features(X)
            elif type(X) is not np.ndarray:
                s = self._one_csr_row(X)
                if s is not None:
                    return s.reshape(1, -1)
                feats = self._features(X)
            elif X.shape == self._row_shape:
                row = self._one_row(X)
                if row is not None:
                    return np.array([row], dtype=self._dtype)
                feats = self._features(X)
            # A float array of the right width is its own feature matrix: no call to find out.
            elif (
                type(X) is np.ndarray
                and (X.dtype is _F64 or X.dtype is _F32)
                and X.ndim == 2
                and X.shape[1] == self.n_features_in_
                and X.shape[0]
            ):
                feats = X
            else:
                feats = self._features(X)
            if type(feats) is CsrParts:
                out = self._sparse_input_scores(*feats)
            else:
                out = self._dense_input_scores(feats)
            return self._finish(out, feats)
        finally:
            fp_restore(token)

    def _features(self, X: Any) -> np.ndarray | CsrParts:
        """The feature matrix the kernels read: a checked 2-D float array, or CSR parts.

        The one place where the input becomes features (anything but NaN/inf, which the
        kernels find on the scores, is checked here)."""
        if self._raw_input:  # the input stage: raw documents or records -> feature rows
            X = stage_features(self.ir.featurizer, X)
        if type(X) is not np.ndarray and is_sparse(X):
            return self._check_csr(X, finite=False)
        return self._read_dense(X)

    def _finish(self, out: np.ndarray, feats: np.ndarray | CsrParts) -> np.ndarray:
        """Scores plus bias in the model's dtype, each checked to be finite."""
        # Cast first, then add in place: a ufunc that casts as it adds is 3x slower.
        res = out if out.dtype is self._dtype else out.astype(self._dtype)
        tile = self._bias_tile
        if tile is None and res.shape[0] > 1:  # built on the first batch
            tile = self._bias_tile = bias_tile(self._bias)
        if tile is None or tile.shape[0] == 1:
            res += self._bias
        elif res.shape[0] <= tile.shape[0]:
            res += tile[: res.shape[0]]
        else:
            step = tile.shape[0]
            for lo in range(0, res.shape[0], step):
                part = res[lo : lo + step]
                part += tile[: part.shape[0]]
        # One BLAS dot of the scores with themselves is non-finite if any score is (or,
        # rarely, if finite scores overflow it: then the exact test decides). Squares cannot
        # cancel an inf, as a plain sum could.
        flat = res.reshape(-1)
        if not math.isfinite(flat.dot(flat)) and not np.isfinite(res).all():
            self._not_finite(feats)
        return res

    def _not_finite(self, feats: np.ndarray | CsrParts) -> None:
        """Raise the error a non-finite score means: NaN/inf in the input, or an overflow."""
        if type(feats) is CsrParts:
            check_finite(feats.data)
        else:
            # Every column the kernel read has a nonzero weight, so a NaN/inf there
            # reached a score: report it as the input's fault, as a full check would.
            check_finite(feats)
            if feats.dtype != self._dtype and not self._dense:
                # The sliced kernel computes float64 input in float64: an input value
                # beyond the model's float32 range is reported as it was when cast first.
                cast_to(feats, self._dtype)
        # Finite input, finite weights: only an overflow gets here. A NaN/Inf score is
        # not a prediction (argmax would pick an arbitrary class).
        raise InputError(
            "Input X makes a score overflow this model's "
            f"{self._dtype} arithmetic; scale the input down"
        )

    def _dense_input_scores(self, Xd: np.ndarray) -> np.ndarray:
        # NaN/inf in a column the kernel reads propagates to a score (checked after, in
        # _scores); the columns no output reads are checked here.
        if self._dense and self._all_used:
            block = self._block_for(Xd.dtype)[:-1]
            if self._unused.size:
                if Xd.nbytes > 2 * _CHECK_RUN_BYTES:
                    return checked_runs(
                        Xd, block=block, unused=self._unused, run_bytes=_CHECK_RUN_BYTES
                    )
                self._check_unused(Xd)
            # ndarray.dot has the least overhead at batch 1 but copies a strided input;
            # matmul reads any strides in place.
            return Xd.dot(block) if Xd.flags.c_contiguous else np.matmul(Xd, block)
        if self._dense:
            check_finite(Xd)  # the gather below skips most columns: check them all
            block = self._block_for(Xd.dtype)[:-1]
            return gathered_block(Xd, used=self._used, block=block, cells=_SLICE_CELLS)
        self._check_unused(Xd)
        thin = self.ir.nnz <= _ROW_KERNEL_FILL * self.n_features_in_ * self.n_outputs_
        if thin or Xd.shape[0] <= _ROW_KERNEL_ROWS:
            return row_sums(
                Xd,
                indptr=self.ir.indptr,
                idx=self._row_idx,
                vals=self._row_vals,
                cells=_SLICE_CELLS,
            )
        return sliced_sums(
            Xd,
            slice_ptr=self._slice_ptr,
            slice_flat=self._slice_flat,
            col_vals=self._col_vals,
            width=self._slice_width,
            n_outputs=self.n_outputs_,
            # float64 input is computed in float64 (as the dense block does)
            dtype=Xd.dtype if Xd.dtype == np.float64 else self._dtype,
        )

    @property
    def _unused(self) -> np.ndarray:
        # The columns no output reads (intp, for take). A sparse model lists them only when
        # asked: _check_unused asks only when it gathers them (few), and on a wide model they
        # are most of the columns (8 bytes each; 1.9 MB on the text model). Their count is
        # _n_unused.
        if self._unused_cols is None:
            self._unused_cols = complement(self._layout().weighted, n=self.n_features_in_)
        return self._unused_cols

    @property
    def _n_unused(self) -> int:
        if self._unused_cols is not None:
            return int(self._unused_cols.size)
        return self.n_features_in_ - int(self._layout().weighted.size)

    def _check_unused(self, Xd: np.ndarray) -> None:
        n_unused = self._n_unused
        if n_unused == 0 or Xd.dtype.kind != "f":
            return
        if Xd.shape[0] * n_unused <= _FINITE_CHUNK:
            check_finite(Xd.take(self._unused, axis=1))  # small: one gather, no loop
        elif n_unused <= _UNUSED_GATHER * Xd.shape[1]:
            # Gathered a run of rows at a time: a bounded copy, not a fraction of the input.
            step = max(1, _FINITE_CHUNK // self._unused.size)
            for lo in range(0, Xd.shape[0], step):
                check_finite(Xd[lo : lo + step, self._unused])
        else:
            check_finite(Xd)

    def _block_for(self, dtype: np.dtype) -> np.ndarray:
        # float64 input meets a float32 block: upcasting the (small) block once is far cheaper
        # than casting every large input batch down.
        if dtype == self._block.dtype:
            return self._block
        if self._block64 is None:
            self._block64 = self._block.astype(np.float64)
            form = self._row_form
            if form is not None and _F64 not in form.weights:  # the wide one-row path
                form.weights[_F64] = self._block64[:-1]
            if self._batch is not None:
                self._batch.add_weights(self._block64[:-1])
        return self._block64

    def _sparse_input_scores(
        self, data: np.ndarray, indices: np.ndarray, indptr: np.ndarray, n_rows: int
    ) -> np.ndarray:
        return self._csr_weights().scores(data, indices, indptr, n_rows)

    def _csr_weights(self) -> CsrWeights:
        """What the CSR kernels read, built on the first CSR input: the dense block (a
        sparse-column model's block of its used columns, when small; else its by-column
        layout) and the input column -> block row table. Dense-input users never pay for it;
        the used-column block is built from the IR, not from the by-column layout."""
        if self._csr is not None:
            return self._csr
        # Imported here: a process that sends only dense rows never loads the CSR kernels.
        from edgesparse.runtime.csr_input import CsrWeights, column_table, used_block

        used: np.ndarray | None = None if self._dense and self._all_used else self._used
        if self._dense:
            block: np.ndarray | None = self._block
        else:
            block = used_block(
                self.ir, used=self._used, dtype=self._dtype, layout_bytes=self._layout_bytes()
            )
        self._csr = CsrWeights(
            block=block,
            rows=None if used is not None or block is None else block[:-1],
            table=None if used is None else column_table(used, n_features=self.n_features_in_),
            used=used,
            columns=self._layout() if block is None else None,
            n_outputs=self.n_outputs_,
            dtype=self._dtype,
        )
        return self._csr

    def _layout_bytes(self) -> int:
        # The bytes of the arrays a sparse-column model's by-column layout holds for its
        # kernels (beyond the IR's own), built or not: intp column starts; per nonzero an
        # int32 output, two copies of the weight, an intp column and an int32 slice cell.
        per_nonzero = 4 + 2 * self._dtype.itemsize + 8 + 4
        return (self._used.size + 1) * 8 + self.ir.nnz * per_nonzero

    # -- input validation (scikit-learn's messages, one pass over the input) -----------------
    def _check_dense(self, X: Any) -> np.ndarray:
        """Read, check (NaN/inf included) and cast a dense input, as a separate pass."""
        Xd = self._read_dense(X, cast=False)
        check_finite(Xd)
        if Xd.dtype != self._dtype and not (self._dense and Xd.dtype == np.float64):
            Xd = cast_to(Xd, self._dtype)
        return Xd

    def _read_dense(self, X: Any, *, cast: bool = True) -> np.ndarray:
        # Everything but NaN/inf, which the kernels check on what they read.
        return read_dense(X, n_features=self.n_features_in_, dtype=self._dtype, cast=cast)

    def _check_csr(self, X: Any, *, finite: bool = True) -> CsrParts:
        """A CSR input's arrays, checked; NaN/inf in ``data`` too, and the indices as intp,
        unless ``finite`` is false (the model's own kernels, which find NaN/inf on the scores
        and read the indices a bounded run of rows at a time)."""
        parts = csr_parts(X, n_features=self.n_features_in_)
        if not finite:
            return parts
        check_finite(parts.data)
        return parts._replace(indices=parts.indices.astype(np.intp, copy=False))

    def _check_shape(self, shape: tuple[int, ...]) -> None:
        check_shape(shape, n_features=self.n_features_in_)


def stage_features(featurizer: Any, X: Any) -> Any:
    """The feature rows an input stage (``featurizer``, a text or tabular one) makes of raw
    documents or records ``X``, exactly as :class:`Model` makes them. Its runtime is
    imported here, on the first raw batch: a model without a stage never loads it (process
    memory on the device, issue 19)."""
    from edgesparse.ir.text import TextFeaturizer

    if isinstance(featurizer, TextFeaturizer):
        from edgesparse.runtime.text import text_features

        return text_features(featurizer, X)
    from edgesparse.runtime.tabular import tabular_features

    return tabular_features(featurizer, X)
