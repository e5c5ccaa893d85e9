"""The numpy runtime's batch path for dense input to a full-width dense block: the product, the
checks, the cast to the model's dtype and the bias in the fewest numpy calls (a small model's
product of 1000 rows costs 2-4 us, about as much as five numpy calls of fixed cost).
:class:`~edgesparse.runtime.model.Model` builds a :class:`BatchForm` at load for a full-width
dense model and calls :func:`batch_scores` on a 2-D array of its width before its general
path.

The scores are the general path's, bit for bit: the same weights (the model's block, or its
float64 copy for a float64 batch), the same product call (a one-output model's one column is
multiplied as a vector, as numpy multiplies a one-column block), the same cast, the same bias.
Every input check is kept. The shape is checked by the caller, the dtype here (anything
unusual goes to the general path). NaN/inf in a column with a weight reaches a score (a value
beyond the model's float32 range becomes inf in the cast): one dot of the scores with
themselves, before the bias, must be at most a limit that proves every score finite and so
far inside the model's range that the bias cannot overflow it. The columns no output reads
are checked as one more product, with a "check vector" of their values times 2^-e (2^e > 2 x
their count, so its values stay below max|x| and cannot overflow), where each unused column
has a nonzero weight: a NaN/inf there makes its value non-finite whatever a BLAS skips (it
may skip a zero weight, never a nonzero one). That reads the input once more (a
matrix-vector product, a fraction of the cost of gathering a few columns out of every row);
it is used when the unused columns are at least 1/32 of the columns (fewer are cheaper to
gather, in the general path) and the input is small enough to stay in cache. Anything not
finite or too large returns None: the general path then computes it all again and says what
is wrong, with its own messages and attribution (or lets huge finite scores through after
its exact test).

Imports only numpy and the standard library: this is what runs on the device.
"""

from __future__ import annotations

import math

import numpy as np

from edgesparse.runtime.checks import fp_quiet, fp_restore

__all__ = ["BatchForm", "batch_form", "batch_scores"]

# The bias is added to a batch through a tile of it (rows x n_outputs): numpy broadcasts a
# short row slowly (1000 x 10: 4x a plain add of two arrays of the same shape). The general
# path's tile has at most BIAS_TILE_CELLS cells (16 KiB in float32, built on the first batch);
# the batch path's grows to the largest batch seen, up to _BATCH_TILE_CELLS (64 KiB in
# float32): one add of 1000 x 10 costs half of three adds of a 409-row tile.
BIAS_TILE_CELLS = 1 << 12
_BATCH_TILE_CELLS = 1 << 14
# Unused columns are checked by a product with a check vector when they are at least this
# fraction of the columns (else the general path gathers them, a cost per gathered value)...
_CHECK_VECTOR_FRACTION = 1 / 32
_F32 = np.dtype(np.float32)
_F64 = np.dtype(np.float64)


class BatchForm:
    """What the batch path reads of a model: the weights per input dtype (the block the
    general path multiplies by, without its extra zero row; its one column as a vector when
    the model has one output), the check vector per input dtype (or None: no unused column),
    the bias and its tile, the limit on the scores' squares and the largest input it takes."""

    __slots__ = (
        "bias",
        "checks",
        "dtype",
        "last",
        "limit",
        "max_bytes",
        "tile",
        "vector",
        "weights",
    )

    def __init__(
        self,
        block: np.ndarray,
        checks: dict[np.dtype, np.ndarray] | None,
        bias: np.ndarray,
        max_bytes: int,
    ) -> None:
        # One output: a matrix-vector product straight into a vector (numpy multiplies a
        # one-column block with the same BLAS call), the bias added as a scalar.
        self.vector = block.shape[1] == 1
        self.weights: dict[np.dtype, np.ndarray] = {}
        self.add_weights(block)
        if block.dtype == _F64:
            self.weights[_F32] = self.weights[_F64]  # float32 input meets float64 weights
        self.checks = checks
        self.bias = bias
        self.dtype = bias.dtype
        # The largest sum of the scores' squares (before the bias) that proves each of them
        # within a quarter of what the model's dtype holds beyond the largest bias (a margin
        # for the sum's rounding), so that adding the bias cannot overflow.
        room = (float(np.finfo(bias.dtype).max) - float(np.abs(bias).max(initial=0))) / 4
        self.limit = min(room * room, float(np.finfo(bias.dtype).max)) if room > 0 else -1.0
        self.max_bytes = max_bytes
        self.tile: np.ndarray | None = None  # built on the first batch (bias_tile)
        # The bias to add to the last batch's scores, for its row count: (rows, view), set
        # in one store (concurrent callers see one pair or the other).
        self.last: tuple[int, np.ndarray] = (-1, bias)

    def add_weights(self, block: np.ndarray) -> None:
        """The weights for input of ``block``'s dtype (a full-width block without its zero
        row): the model's own, or its float64 copy once the general path has made one."""
        self.weights[block.dtype] = block[:, 0] if self.vector else block


def batch_form(
    block: np.ndarray, *, unused: np.ndarray, bias: np.ndarray, max_bytes: int
) -> BatchForm | None:
    """The batch form of a full-width ``(n_features, n_outputs)`` weight ``block`` (the
    model's dtype), its columns no output reads (``unused``) and its ``bias`` (the model's
    dtype); None where the general path is cheaper (a few unused columns of many). An input
    of more than ``max_bytes`` bytes to a block with unused columns goes to the general path,
    which checks them a cached run of rows at a time."""
    n = block.shape[0]
    if not unused.size:
        return BatchForm(block, None, bias, max_bytes=-1)
    if unused.size < _CHECK_VECTOR_FRACTION * n:
        return None
    check = np.zeros(n)
    check[unused] = 2.0 ** -(int(unused.size).bit_length() + 1)
    # The float32 one is made from it on the first float32 batch (most callers send one).
    return BatchForm(block, {_F64: check}, bias, max_bytes=max_bytes)


def bias_tile(bias: np.ndarray, *, cells: int = BIAS_TILE_CELLS) -> np.ndarray:
    """``bias`` repeated over rows (at most ``cells`` cells); one row where adding the row
    itself is as fast: one output (a scalar per row) or long rows."""
    k = bias.size
    if k == 1 or 2 * k > cells:
        return bias.reshape(1, -1)  # a tile of one row: the plain broadcast
    return np.tile(bias, (cells // k, 1))


def _bias_for(form: BatchForm, rows: int) -> np.ndarray | None:
    """What to add to ``rows`` rows of scores (remembered in ``form.last``), or None: more
    rows than the tile (the caller adds it a tile at a time)."""
    if form.vector:
        view = form.bias
    else:
        tile = form.tile
        k = form.bias.size
        if tile is None or (tile.shape[0] < rows and tile.size + k <= _BATCH_TILE_CELLS):
            # built to the batch's rows (but at least the general path's), up to the cap
            cells = min(max(rows * k, BIAS_TILE_CELLS), _BATCH_TILE_CELLS)
            tile = form.tile = bias_tile(form.bias, cells=cells)
        if tile.shape[0] == 1:
            view = tile
        elif rows <= tile.shape[0]:
            view = tile[:rows]
        else:
            return None
    form.last = (rows, view)
    return view


def batch_scores(X: np.ndarray, form: BatchForm) -> np.ndarray | None:
    """The scores of a 2-D array ``X`` of the model's width with at least one row, bias
    added, in the model's dtype: ``(n_rows, n_outputs)``, or ``(n_rows,)`` for a model with
    one output. None: not float32/float64, too large for the check vector, or a score or
    check not finite or too large (the general path then says what is wrong)."""
    w = form.weights.get(X.dtype)  # float32 / float64 only
    if w is None:
        return None
    checks = form.checks
    if checks is not None and X.nbytes > form.max_bytes:
        return None
    token = fp_quiet()  # numpy's products warn of the NaN/inf they meet unless told not to
    try:
        # ndarray.dot has the least overhead but copies a strided input; matmul reads any
        # strides in place (as the general path).
        out = X.dot(w) if X.flags.c_contiguous else np.matmul(X, w)
        if out.dtype is not form.dtype:
            out = out.astype(form.dtype)  # beyond the model's range: inf, refused below
        # The squares sum to at most the limit: each score is finite and so far inside the
        # model's range that adding the bias cannot overflow. NaN fails the test; so do
        # scores too large, which the general path then checks exactly.
        if not float(np.vdot(out, out)) <= form.limit:
            return None
        if checks is not None:
            check = checks.get(X.dtype)
            if check is None:
                check = checks[X.dtype] = checks[_F64].astype(X.dtype)
            v = X.dot(check)
            if not math.isfinite(v.dot(v)):
                return None
    finally:
        fp_restore(token)
    rows, view = form.last
    if rows != out.shape[0]:
        view = _bias_for(form, out.shape[0])
        if view is None:
            tile = form.tile
            assert tile is not None
            for lo in range(0, out.shape[0], tile.shape[0]):
                part = out[lo : lo + tile.shape[0]]
                part += tile[: part.shape[0]]
            return out
    out += view
    return out
