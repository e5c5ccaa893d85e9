"""Input checks the numpy runtime shares with the ONNX runtime, and the floating-point state
its kernels run in.

Imports only numpy and the standard library: this is what runs on the device.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from edgesparse.errors import InputError

NAN_MESSAGE = "Input X contains NaN or infinity; impute or drop those values first"
# NaN/inf checks over an input test this many cells at a time (a bounded mask).
FINITE_CHUNK = 1 << 16


def quiet_fp_state() -> tuple[Any, Any]:
    """``(set, reset)`` for a state where float overflow and invalid operations are silent.

    The kernels meet NaN/inf input and overflow by design (they are found on the scores and
    reported as InputError), so numpy must not warn about them. ``np.errstate`` costs about a
    microsecond a call, as much as a whole batch-1 product; numpy >= 2 keeps the same state in
    a context variable, which a prebuilt state sets in a tenth of that. Older numpy: seterr.
    """
    try:
        from numpy._core.umath import _extobj_contextvar, _make_extobj

        quiet = _make_extobj(over="ignore", invalid="ignore")
        return (lambda: _extobj_contextvar.set(quiet)), _extobj_contextvar.reset
    except (ImportError, TypeError):  # numpy 1.x: the same state through seterr
        return (lambda: np.seterr(over="ignore", invalid="ignore")), (lambda old: np.seterr(**old))


fp_quiet, fp_restore = quiet_fp_state()


class CsrParts(NamedTuple):
    """A validated CSR input: its arrays and its row count."""

    data: np.ndarray
    indices: np.ndarray
    indptr: np.ndarray
    n_rows: int


def check_numeric(dtype: np.dtype) -> None:
    """Refuse complex and non-numeric input dtypes, with scikit-learn's messages."""
    if dtype.kind == "c":
        raise InputError("Complex data not supported: X must be real numbers")
    if dtype.kind not in "fiub":
        raise InputError(f"X must be numeric, got dtype {dtype}")


def check_finite(a: np.ndarray) -> None:
    """Refuse NaN/inf in ``a`` (a float array; others pass), a bounded run at a time."""
    if a.dtype.kind != "f":
        return
    if a.size <= FINITE_CHUNK:
        if not np.isfinite(a).all():
            raise InputError(NAN_MESSAGE)
        return
    # Runs of rows of about FINITE_CHUNK cells: a bounded mask, not one the input's size.
    rows = a.reshape(-1, 1) if a.ndim < 2 else a
    step = max(1, FINITE_CHUNK // max(1, rows.shape[1]))
    for lo in range(0, rows.shape[0], step):
        if not np.isfinite(rows[lo : lo + step]).all():
            raise InputError(NAN_MESSAGE)


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


def check_shape(shape: tuple[int, ...], *, n_features: int) -> None:
    """Refuse an input whose width is not ``n_features``, or that has no rows."""
    if shape[1] != n_features:
        raise InputError(
            f"X has {shape[1]} features, but the model expects {n_features} features as input"
        )
    if shape[0] < 1:
        raise InputError(f"X has 0 samples (shape={shape}); at least 1 is required")


def csr_parts(X: Any, *, n_features: int) -> CsrParts:
    """A sparse input's CSR arrays (``indptr`` as intp), its structure checked; NaN/inf in
    ``data`` are not looked for here."""
    if getattr(X, "format", None) != "csr":
        X = X.tocsr()
    try:
        shape = tuple(int(n) for n in X.shape)
    except (TypeError, ValueError):
        raise InputError(f"X has an invalid shape {X.shape!r}") from None
    if len(shape) != 2:
        raise InputError(f"Expected a 2-D sparse matrix, got shape {shape}")
    check_shape(shape, n_features=n_features)
    data = np.asarray(X.data)
    indices = np.asarray(X.indices)
    indptr = np.asarray(X.indptr)
    check_numeric(data.dtype)
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
    return CsrParts(data, indices, indptr.astype(np.intp), shape[0])


# 32-bit index dtypes: viewed as uint32, a negative index is huge, and a gather with it raises
# IndexError. (A 64-bit one is cast to intp by the gather, so uint64 would wrap around: it is
# checked with one max.)
_U32 = np.dtype(np.uint32)
_U64 = np.dtype(np.uint64)
_INDEX_32 = (np.dtype(np.int32), _U32)
_INDEX_64 = (np.dtype(np.int64), _U64)


def one_csr_row(X: Any, *, n_features: int) -> tuple[np.ndarray, np.ndarray] | None:
    """``(data, indices)`` of a scipy CSR matrix of shape ``(1, n_features)`` with float
    values, made of plain arrays whose structure :func:`csr_parts` would accept, in the fewest
    calls (at batch 1 each numpy call costs about as much as the product); None for anything
    else (the general path).

    The range of 32-bit indices is left to the caller's gather: they come back viewed as
    uint32 (a negative index is then huge), so a gather from an ``n_features``-row table with
    ``take`` (mode "raise") raises IndexError exactly when one is outside
    ``[0, n_features)``; 64-bit ones are checked here (one ``max``). NaN/inf in ``data`` are
    not looked for here."""
    data, indices, indptr, shape = X.data, X.indices, X.indptr, X.shape
    if not (
        type(data) is np.ndarray
        and type(indices) is np.ndarray
        and type(indptr) is np.ndarray
        and type(shape) is tuple
        and shape == (1, n_features)
        and data.ndim == 1
        and indices.ndim == 1
        and indptr.ndim == 1
        and data.dtype.kind == "f"
        and indptr.dtype.kind in "iu"
        and data.size == indices.size
        and indptr.size == 2
        and indptr.tolist() == [0, indices.size]  # two entries: 0 and nnz are in order
    ):
        return None
    if indices.dtype in _INDEX_32:
        return data, indices.view(_U32)
    if indices.dtype not in _INDEX_64:
        return None
    if indices.size and int(indices.view(_U64).max()) >= n_features:
        return None
    return data, indices


def read_dense(X: Any, *, n_features: int, dtype: np.dtype, cast: bool = True) -> np.ndarray:
    """A dense input as a 2-D numeric array of width ``n_features``, cast to ``dtype`` unless
    it is float32/float64 (or ``cast`` is false); NaN/inf are not looked for here."""
    if type(X) is np.ndarray and X.ndim == 2 and X.dtype.kind == "f":
        # The common case, without the general path's calls (a third of a batch-1 call).
        if X.shape[1] != n_features or X.shape[0] < 1:
            check_shape(X.shape, n_features=n_features)
        if X.dtype.itemsize >= 4 and X.dtype.itemsize <= 8:  # float32/float64: no cast
            return X
    try:
        Xd = np.asarray(X)
    except (TypeError, ValueError) as exc:
        raise InputError(f"X cannot be read as a numeric array: {exc}") from None
    check_numeric(Xd.dtype)
    if Xd.ndim != 2:
        from edgesparse.data import reshape_advice  # only on this error: keeps imports lean

        raise InputError(
            f"Expected a 2-D array, got a {Xd.ndim}-D array instead: " + reshape_advice(Xd.shape)
        )
    check_shape(Xd.shape, n_features=n_features)
    if cast and Xd.dtype not in (np.float32, np.float64):
        # Integers, booleans, float16/longdouble: cast (ints are finite; a longdouble too
        # large for the model's arithmetic is refused by cast_to, NaN/inf by the kernels).
        Xd = cast_to(Xd, dtype)
    return Xd
