"""Reading input arrays for ``predict`` and ``--check-data`` (numpy only, so it works on a device).

Accepted files:

* ``.npy``: a 2-D numeric array ``X``;
* ``.npz``: ``X`` (dense), or a CSR matrix as ``X_data``, ``X_indices``, ``X_indptr``,
  ``X_shape`` (what ``scipy.sparse.save_npz`` would need, spelled out so no pickle is involved);
  optional ``y`` (labels or targets).

Arrays are read with ``allow_pickle=False``: a data file can never run code.
"""

from __future__ import annotations

import dataclasses
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from edgesparse.errors import InputError, ModelFileError


@dataclasses.dataclass(frozen=True)
class CSRArrays:
    """A CSR matrix as four arrays; duck-types the parts of ``scipy.sparse.csr_matrix`` the
    runtime uses, so CSR input works on a device without scipy."""

    data: np.ndarray
    indices: np.ndarray
    indptr: np.ndarray
    shape: tuple[int, int]
    format: str = "csr"

    @property
    def nnz(self) -> int:
        """Number of stored entries."""
        return int(self.data.size)

    def tocsr(self) -> CSRArrays:
        """Itself (it already is CSR)."""
        return self

    def toarray(self) -> np.ndarray:
        """The matrix as a dense float64 array."""
        out = np.zeros(self.shape, dtype=np.float64)
        rows = np.repeat(np.arange(self.shape[0]), np.diff(self.indptr))
        np.add.at(out, (rows, self.indices), self.data)
        return out


@dataclasses.dataclass(frozen=True)
class Dataset:
    """Inputs ``X`` (dense array or CSR) and optional targets ``y`` read from a file."""

    X: Any
    y: np.ndarray | None


def load_dataset(path: str | os.PathLike[str]) -> Dataset:
    """Read ``X`` (and ``y`` if present) from a ``.npy`` or ``.npz`` file, validating shapes."""
    p = Path(path)
    if not p.exists():
        raise ModelFileError(f"data file not found: {p} (check the path)")
    if p.is_dir():
        raise ModelFileError(f"data file is a directory: {p}")
    try:
        loaded = np.load(p, allow_pickle=False)
    except ValueError as exc:
        if "pickle" in str(exc):
            raise InputError(f"{p} holds Python objects; save plain numeric arrays") from None
        raise InputError(f"{p} is not a .npy/.npz array file: {exc}") from None
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise InputError(f"{p} is not a readable .npy/.npz array file ({exc})") from None
    if isinstance(loaded, np.ndarray):
        return Dataset(X=_check_2d(loaded, p, "X"), y=None)
    with loaded as npz:
        try:
            keys = set(npz.files)
            y = np.asarray(npz["y"]) if "y" in keys else None
            if "X" in keys:
                X: Any = _check_2d(np.asarray(npz["X"]), p, "X")
            elif {"X_data", "X_indices", "X_indptr", "X_shape"} <= keys:
                X = _csr_from(npz, p)
            else:
                raise InputError(
                    f"{p} has no 'X' array (found: {', '.join(sorted(keys)) or 'none'}); save "
                    "it with np.savez(path, X=X, y=y) or the CSR parts X_data, X_indices, "
                    "X_indptr, X_shape"
                )
        except ValueError as exc:
            if isinstance(exc, InputError):
                raise
            raise InputError(f"{p}: cannot read arrays ({exc})") from None
    if y is not None:
        if y.ndim == 0 or y.shape[0] != X.shape[0]:
            raise InputError(f"{p}: y has shape {y.shape} but X has {X.shape[0]} rows")
    return Dataset(X=X, y=y)


def load_calibration(path: str | os.PathLike[str]) -> Dataset:
    """Calibration rows with their labels or targets: a ``.npz`` as :func:`load_dataset` reads
    it (``y`` required), or a ``.csv`` with the label in the last column.

    CSV: comma-separated numbers, an optional header line (skipped when its cells are not all
    numbers); labels that are all numbers become numbers (integers when whole), others stay
    strings.
    """
    p = Path(path)
    if p.suffix.lower() != ".csv":
        data = load_dataset(p)
        if data.y is None:
            raise InputError(
                f"{p} has no 'y' array: calibration needs the true labels (or targets); save "
                "it with np.savez(path, X=X, y=y)"
            )
        return data
    return _read_labelled_csv(p)


def _read_labelled_csv(p: Path) -> Dataset:
    import csv

    from edgesparse.fileio import read_bytes

    text = read_bytes(p, what="calibration file").decode("utf-8-sig", errors="replace")
    rows = [r for r in csv.reader(text.splitlines()) if r and any(c.strip() for c in r)]
    if rows and not _all_numbers(rows[0][:-1] or rows[0]):
        rows = rows[1:]  # a header line
    if not rows:
        raise InputError(f"{p} has no data rows; expected features then the label, per line")
    width = len(rows[0])
    if width < 2:
        raise InputError(f"{p}: each line needs at least one feature and the label (2 columns)")
    bad = next((i for i, r in enumerate(rows) if len(r) != width), None)
    if bad is not None:
        raise InputError(
            f"{p}: data line {bad + 1} has {len(rows[bad])} columns, the first has {width}"
        )
    try:
        X = np.array([[float(c) for c in r[:-1]] for r in rows], dtype=np.float64)
    except ValueError as exc:
        raise InputError(f"{p}: a feature is not a number ({exc}); labels go last") from None
    labels = [r[-1].strip() for r in rows]
    y: np.ndarray
    if _all_numbers(labels):
        y = np.array([float(v) for v in labels])
        if np.all(y == np.round(y)) and np.all(np.abs(y) < 2**53):
            y = y.astype(np.int64)
    else:
        y = np.array(labels)
    return Dataset(X=X, y=y)


def _all_numbers(cells: list[str]) -> bool:
    try:
        for c in cells:
            float(c)
    except ValueError:
        return False
    return True


def _check_2d(X: np.ndarray, path: Path, name: str) -> np.ndarray:
    if X.dtype.kind not in "fiub":
        raise InputError(f"{path}: {name} must be numeric, got dtype {X.dtype}")
    if X.ndim != 2:
        raise InputError(
            f"{path}: {name} must be 2-D (rows x features), got shape {X.shape}; "
            "use X.reshape(1, -1) for a single sample"
        )
    return X


def _csr_from(npz: Any, path: Path) -> CSRArrays:
    data = np.asarray(npz["X_data"])
    indices = np.asarray(npz["X_indices"])
    indptr = np.asarray(npz["X_indptr"])
    shape_arr = np.asarray(npz["X_shape"])
    if shape_arr.shape != (2,) or shape_arr.dtype.kind not in "iu":
        raise InputError(f"{path}: X_shape must be two integers, got {shape_arr!r}")
    n_rows, n_cols = (int(v) for v in shape_arr)
    if data.dtype.kind not in "fiub" or indices.dtype.kind not in "iu":
        raise InputError(f"{path}: X_data must be numeric and X_indices integer")
    if indptr.dtype.kind not in "iu" or indptr.shape != (n_rows + 1,):
        raise InputError(f"{path}: X_indptr must hold {n_rows + 1} integers")
    if data.shape != indices.shape or data.ndim != 1:
        raise InputError(f"{path}: X_data and X_indices must be 1-D of equal length")
    if indptr[0] != 0 or indptr[-1] != data.size or np.any(np.diff(indptr) < 0):
        raise InputError(f"{path}: X_indptr is not a valid CSR row pointer")
    if indices.size and (indices.min() < 0 or indices.max() >= n_cols):
        raise InputError(f"{path}: X_indices has a column outside [0, {n_cols})")
    return CSRArrays(data=data, indices=indices, indptr=indptr, shape=(n_rows, n_cols))


def save_npy(path: str | os.PathLike[str], array: np.ndarray) -> None:
    """Save ``array`` as a ``.npy`` file, atomically (no pickled objects)."""
    import io

    from edgesparse.fileio import atomic_write_bytes

    buf = io.BytesIO()
    np.save(buf, np.asarray(array), allow_pickle=False)
    atomic_write_bytes(path, buf.getvalue())
