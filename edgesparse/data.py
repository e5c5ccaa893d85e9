"""Reading input arrays for ``predict``, ``--check-data``, ``--calibration`` and ``bench --data``,
and the ``user,item[,rating]`` CSVs of k-NN recommenders (:func:`read_pairs`); numpy only, so
it works on a device.

Accepted files (:data:`edgesparse.sniff.DATA_FORMATS`):

* ``.npy``: a 2-D numeric array ``X``;
* ``.npz``: ``X`` (dense), or a CSR matrix as ``X_data``, ``X_indices``, ``X_indptr``,
  ``X_shape`` (what ``scipy.sparse.save_npz`` would need, spelled out so no pickle is involved);
  optional ``y`` (labels or targets);
* ``.csv``, ``.tsv``, ``.txt``: a table of numbers, one row per line, separated by commas (or,
  when the first line has none, by whitespace); an optional header line (skipped when its
  feature cells are not all numbers) and ``#`` comment lines. Features come first; a label
  column goes last (:func:`load_calibration` always, :func:`load_dataset` when told the
  model's feature count and the table has one column more).

Arrays are read with ``allow_pickle=False``: a data file can never run code. Nor can it make
the process allocate without bound: before anything is loaded, the arrays a ``.npy``/``.npz``
declares (shape x itemsize, read from each ``.npy`` header) and a text table's size must fit
:data:`DEFAULT_MAX_DATA_BYTES` (``EDGESPARSE_MAX_DATA_BYTES`` overrides), and an ``.npz``
member's array must fit the member's declared unpacked size.
"""

from __future__ import annotations

import csv
import dataclasses
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from edgesparse.errors import InputError, ModelFileError
from edgesparse.formats.sniff import DATA_FORMATS, NPY_MAGIC, TEXT_SUFFIXES, ZIP_MAGIC, sniff
from edgesparse.records import TableRecords

DEFAULT_MAX_DATA_BYTES = 2 << 30
"""Most memory the arrays of one data file may declare (2 GiB); ``EDGESPARSE_MAX_DATA_BYTES``
overrides (as ``EDGESPARSE_MAX_MODEL_BYTES`` does for model files)."""
_ENV_MAX_DATA = "EDGESPARSE_MAX_DATA_BYTES"


def max_data_bytes() -> int:
    """The data-file cap: ``EDGESPARSE_MAX_DATA_BYTES``, else :data:`DEFAULT_MAX_DATA_BYTES`."""
    text = os.environ.get(_ENV_MAX_DATA, "").strip()
    if not text:
        return DEFAULT_MAX_DATA_BYTES
    try:
        value = int(text)
    except ValueError:
        raise InputError(f"{_ENV_MAX_DATA}={text!r} is not a whole number of bytes") from None
    if value < 1:
        raise InputError(f"{_ENV_MAX_DATA} must be a positive number of bytes, got {value}")
    return value


def _too_big(p: Path, what: str, n: int, cap: int) -> InputError:
    return InputError(
        f"{p}: {what} {n} bytes, more than the data-file limit of {cap}; split the data, or "
        f"if you trust it raise the limit with {_ENV_MAX_DATA}=<bytes>"
    )


def _npy_declared_bytes(fh: Any, p: Path, name: str) -> int:
    """Bytes the ``.npy`` array at ``fh`` declares (shape x itemsize), from its header only."""
    from numpy.lib import format as npy_format

    try:
        version = npy_format.read_magic(fh)
        if version == (1, 0):
            shape, _, dtype = npy_format.read_array_header_1_0(fh)
        elif version in ((2, 0), (3, 0)):
            shape, _, dtype = npy_format.read_array_header_2_0(fh)
        else:
            raise ValueError(f"unsupported .npy version {version}")
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise InputError(f"{p}: {name} is not a readable .npy array ({exc})") from None
    n = int(dtype.itemsize)
    for d in shape:
        n *= int(d)
    return n


def _check_declared_size(p: Path, head: bytes) -> None:
    """Refuse a ``.npy``/``.npz`` whose arrays would take more memory than the cap, before
    numpy allocates anything (it allocates a declared shape before reading the data)."""
    cap = max_data_bytes()
    try:
        if head.startswith(NPY_MAGIC):
            with open(p, "rb") as fh:
                n = _npy_declared_bytes(fh, p, "the array")
            if n > cap:
                raise _too_big(p, "its array would take", n, cap)
            return
        with zipfile.ZipFile(p) as zf:
            total = 0
            for info in zf.infolist():
                if info.file_size > cap:
                    raise _too_big(p, f"member {info.filename!r} unpacks to", info.file_size, cap)
                with zf.open(info) as fh:
                    if fh.read(len(NPY_MAGIC)) != NPY_MAGIC:
                        continue  # numpy reads such a member as its raw bytes (<= file_size)
                with zf.open(info) as fh:  # numpy reads an .npy by content, whatever its name
                    n = _npy_declared_bytes(fh, p, repr(info.filename))
                if n > info.file_size:
                    raise InputError(
                        f"{p}: member {info.filename!r} declares a {n}-byte array in "
                        f"{info.file_size} bytes; the file is corrupt"
                    )
                total += n
                if total > cap:
                    raise _too_big(p, "its arrays would take", total, cap)
    except (OSError, EOFError, zipfile.BadZipFile, zipfile.LargeZipFile) as exc:
        raise InputError(f"{p} is not a readable .npy/.npz array file ({exc})") from None


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


def load_dataset(path: str | os.PathLike[str], *, n_features: int | None = None) -> Dataset:
    """Read ``X`` (and ``y`` if present) from a ``.npy``, ``.npz`` or text table, validating
    shapes. A text table is all features, unless ``n_features`` is given and it has one column
    more: then the last column is ``y`` (as in :func:`load_calibration`)."""
    p = _existing(path)
    if p.suffix.lower() in TEXT_SUFFIXES:
        table = _read_table(p, what="data file")
        if n_features is None:
            return Dataset(X=table.features(table.width, rule="every column is a feature"), y=None)
        rule = f"the model takes {n_features} numeric features, then optionally a label column"
        if table.width == n_features + 1:
            return table.labelled(rule=rule)
        return Dataset(X=table.features(table.width, rule=rule), y=None)
    head = _head(p)
    if not head.startswith((NPY_MAGIC, ZIP_MAGIC)):
        raise InputError(_not_data(p))
    _check_declared_size(p, head)
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
                what = sniff(p)
                if what is not None and what.role == "model":
                    raise InputError(_not_data(p))
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
    it (``y`` required), or a text table (``.csv``, ``.tsv``, ``.txt``) with the label in the
    last column.

    Labels that are all numbers become numbers (integers when whole), others stay strings.
    """
    p = _existing(path)
    if p.suffix.lower() in TEXT_SUFFIXES:
        table = _read_table(p, what="calibration file")
        if table.width < 2:
            raise InputError(
                f"{p}: each line needs at least one feature and the label (2 columns), "
                f"line {table.lines[0]} has 1"
            )
        return table.labelled()
    data = load_dataset(p)
    if data.y is None:
        raise InputError(
            f"{p} has no 'y' array: calibration needs the true labels (or targets); save "
            "it with np.savez(path, X=X, y=y), or a .csv with the label in the last column"
        )
    return data


def _existing(path: str | os.PathLike[str]) -> Path:
    p = Path(path)
    if not p.exists():
        raise ModelFileError(f"data file not found: {p} (check the path)")
    if p.is_dir():
        raise ModelFileError(f"data file is a directory: {p}; give a file ({DATA_FORMATS})")
    return p


def _head(p: Path) -> bytes:
    try:
        with open(p, "rb") as fh:
            return fh.read(8)
    except OSError as exc:
        raise ModelFileError(f"cannot read data file {p}: {exc.strerror or exc}") from None


def _not_data(p: Path) -> str:
    """Why ``p`` (not .npy, .npz or a text table by name) is not data: what it is, if known."""
    kind = sniff(p)
    if kind is not None and kind.role != "data":
        return f"{p} is {kind.what}, not a data file; data is read from {DATA_FORMATS}"
    return (
        f"{p} is not a data file edgesparse reads: it is read from {DATA_FORMATS}; "
        "a text table needs one of those suffixes"
    )


_LABEL_LAST = "features must be numbers; the label goes in the last column"


@dataclasses.dataclass(frozen=True)
class _Table:
    """A text table: the cells of each data row and its line number in the file."""

    path: Path
    rows: list[list[str]]
    lines: list[int]

    @property
    def width(self) -> int:
        return len(self.rows[0])

    def features(self, n: int, *, rule: str) -> np.ndarray:
        """The first ``n`` columns as float64; a cell that is not a number names its line, its
        column and the ``rule`` the columns follow."""
        out = np.empty((len(self.rows), n), dtype=np.float64)
        for i, row in enumerate(self.rows):
            try:
                out[i] = [float(c) for c in row[:n]]
            except ValueError:
                col = next(j for j, c in enumerate(row[:n]) if not _is_number(c))
                raise InputError(
                    f"{self.path}, line {self.lines[i]}, column {col + 1}: {row[col]!r} is not "
                    f"a number ({rule})"
                ) from None
        return out

    def labelled(self, *, rule: str = _LABEL_LAST) -> Dataset:
        """Features, then the label in the last column."""
        X = self.features(self.width - 1, rule=rule)
        labels = [r[-1] for r in self.rows]
        y: np.ndarray
        if _all_numbers(labels):
            y = np.array([float(v) for v in labels])
            if np.all(y == np.round(y)) and np.all(np.abs(y) < 2**53):
                y = y.astype(np.int64)
        else:
            y = np.array(labels)
        return Dataset(X=X, y=y)


TEXT_MEMORY_PER_BYTE = 32
"""Memory a text table takes per byte of file while it is read (cells become Python strings:
measured 21x for a table of ``0.5`` cells, issue 16); a text table may therefore be at most
this fraction of the data-file cap (64 MiB by default), so that reading one stays within it."""


def check_text_size(p: Path, *, what: str) -> None:
    """Refuse a text file (a table, a CSV of k-NN pairs) larger than the text-table limit
    (1/:data:`TEXT_MEMORY_PER_BYTE` of the data-file cap) before it is read."""
    try:
        size = p.stat().st_size
    except OSError:
        return  # the reader says what is wrong with the path
    cap = max(1, max_data_bytes() // TEXT_MEMORY_PER_BYTE)
    if size > cap:
        raise InputError(
            f"{what} {p} is {size} bytes, more than the limit of {cap} bytes; a text table may "
            f"be 1/{TEXT_MEMORY_PER_BYTE} of the data-file limit (reading text takes up to "
            f"{TEXT_MEMORY_PER_BYTE} bytes of memory per byte): split it, or raise the limit "
            f"with {_ENV_MAX_DATA}=<bytes>"
        )


def _read_table(p: Path, *, what: str) -> _Table:
    """The one reader of text tables (comma- or whitespace-separated, see the module doc)."""
    from edgesparse.fileio import read_bytes

    cap = max_data_bytes() // TEXT_MEMORY_PER_BYTE
    raw = read_bytes(
        p,
        what=what,
        max_bytes=max(1, cap),
        how_to_raise=(
            f"a text table may be 1/{TEXT_MEMORY_PER_BYTE} of the data-file limit (reading text "
            f"takes up to {TEXT_MEMORY_PER_BYTE} bytes of memory per byte): save the data as "
            f".npy or .npz, or raise the limit with {_ENV_MAX_DATA}=<bytes>"
        ),
    )
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(
            f"{p} is not a text table (not UTF-8 text); data is read from {DATA_FORMATS}"
        ) from None
    numbered = [
        (n, line)
        for n, line in enumerate(text.splitlines(), start=1)
        if line.strip() and not line.lstrip().startswith("#")
    ]
    if not numbered:
        raise InputError(f"{p} has no data rows; expected one row of numbers per line")
    if "," in numbered[0][1]:
        cells = csv.reader([line for _, line in numbered])
        rows = [[c.strip() for c in r] for r in cells]
    else:
        rows = [line.split() for _, line in numbered]
    lines = [n for n, _ in numbered]
    if not _all_numbers(rows[0][:-1] or rows[0]):
        rows, lines = rows[1:], lines[1:]  # a header line
    if not rows:
        raise InputError(f"{p} has a header but no data rows")
    width = len(rows[0])
    for row, n in zip(rows, lines, strict=True):
        if len(row) != width:
            raise InputError(
                f"{p}, line {n}: {len(row)} columns, but line {lines[0]} has {width}; "
                "every row needs the same columns"
            )
    return _Table(path=p, rows=rows, lines=lines)


def _all_numbers(cells: list[str]) -> bool:
    return all(_is_number(c) for c in cells)


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _check_2d(X: np.ndarray, path: Path, name: str) -> np.ndarray:
    if X.dtype.kind not in "fiub":
        raise InputError(f"{path}: {name} must be numeric, got dtype {X.dtype}")
    if X.ndim != 2:
        raise InputError(
            f"{path}: {name} must be 2-D (rows x features), got shape {X.shape}; "
            + reshape_advice(X.shape)
        )
    return X


def reshape_advice(shape: tuple[int, ...]) -> str:
    """What to do with an array of ``shape`` that should be 2-D (rows x features): the
    reshape that fits its number of dimensions."""
    if len(shape) == 0:
        return "it is a single number; give rows of features, e.g. X.reshape(1, 1)"
    if len(shape) == 1:
        return (
            "reshape your data with X.reshape(1, -1) for a single sample or X.reshape(-1, 1) "
            "for a single feature"
        )
    return (
        f"flatten each sample's features into one row, e.g. X.reshape({shape[0]}, -1) when "
        "the first axis is the samples"
    )


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


def for_sklearn(X: Any) -> Any:
    """``X`` as scikit-learn takes it: a :class:`CSRArrays` becomes a scipy CSR matrix (scipy
    imported only then), anything else is returned as is."""
    if isinstance(X, CSRArrays):
        import scipy.sparse

        return scipy.sparse.csr_matrix((X.data, X.indices, X.indptr), shape=X.shape)
    return X


def read_pairs(
    path: str | os.PathLike[str],
    *,
    user_ids: tuple[Any, ...] = (),
    item_ids: tuple[Any, ...] = (),
    columns: str = "user,item",
) -> tuple[list[tuple[Any, Any]], np.ndarray | None]:
    """Read ``user,item[,rating]`` rows from a CSV file (a header row is skipped when its
    rating column is not a number). Ids are read as text and turned into ints or floats when
    the model's ids (``user_ids``/``item_ids``) are numbers. Returns (pairs, ratings or None).
    ``columns`` is what the caller needs, for the message when the file is not such a CSV.
    """
    p = Path(path)
    expected = f"a k-NN recommender takes a CSV of {columns} rows, one per line (header optional)"
    kind = sniff(p)
    if kind is not None and not kind.text:
        raise InputError(f"{p} is {kind.what}, not a CSV of {columns} rows; {expected}")
    check_text_size(p, what="pairs file")
    try:
        with open(p, newline="", encoding="utf-8") as fh:
            rows = [r for r in csv.reader(fh) if r and any(c.strip() for c in r)]
    except FileNotFoundError:
        raise ModelFileError(f"pairs file not found: {p} (check the path)") from None
    except IsADirectoryError:
        raise ModelFileError(f"pairs file is a directory: {p}; {expected}") from None
    except UnicodeDecodeError:
        raise InputError(f"{p} is not a text file; {expected}") from None
    except (OSError, csv.Error) as exc:
        raise InputError(f"cannot read pairs file {p}: {exc}") from None
    if rows and len(rows[0]) >= 2 and rows[0][0].strip().lower() in ("user", "uid", "user_id"):
        rows = rows[1:]
    if not rows:
        raise InputError(f"{p} holds no pairs: give one 'user,item[,rating]' row per line")
    width = len(rows[0])
    to_u, to_i = _id_parser(user_ids), _id_parser(item_ids)
    pairs, ratings = [], []
    for n, row in enumerate(rows, start=1):
        if len(row) != width or width not in (2, 3):
            raise InputError(
                f"{p}, row {n}: expected 'user,item' or 'user,item,rating' on every row, "
                f"got {len(row)} fields"
            )
        pairs.append((to_u(row[0].strip()), to_i(row[1].strip())))
        if width == 3:
            try:
                ratings.append(float(row[2]))
            except ValueError:
                raise InputError(f"{p}, row {n}: rating {row[2]!r} is not a number") from None
    return pairs, (np.array(ratings) if width == 3 else None)


def read_documents(path: str | os.PathLike[str]) -> list[str]:
    """Documents for a model with a text input stage: a UTF-8 text file, one document per
    line (``\n`` or ``\r\n``; a document cannot hold a line break). Empty lines are empty
    documents, as scikit-learn reads ``""``; a final line break ends the last document.

    Refused with one line each: a binary file (a known data or model format, invalid UTF-8,
    a NUL byte: this is not text), a file past the text limit (:func:`check_text_size`), and
    a file with no documents.
    """
    from edgesparse.fileio import read_bytes

    p = Path(path)
    expected = "a text model takes a UTF-8 text file, one document per line"
    kind = sniff(p)
    if kind is not None and not kind.text:
        raise InputError(f"{p} is {kind.what}, not text; {expected}")
    check_text_size(p, what="text file")
    raw = read_bytes(p, what="text file")
    nul = raw.find(b"\0")
    if nul >= 0:
        line = raw.count(b"\n", 0, nul) + 1
        raise InputError(f"{p}, line {line}: a NUL byte; this is not a text file ({expected})")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise InputError(
            f"{p}, line {line}: not valid UTF-8 (byte {exc.start}); {expected}"
        ) from None
    if text.startswith("\ufeff"):  # a byte-order mark is not part of the first document
        text = text[1:]
    if not text:
        raise InputError(f"{p} holds no documents; {expected}")
    docs = text.split("\n")
    if docs[-1] == "":
        docs.pop()  # the line break that ends the last document
    return [d[:-1] if d.endswith("\r") else d for d in docs]


def _id_parser(ids: tuple[Any, ...]) -> Any:
    if ids and all(isinstance(v, int) for v in ids):
        return lambda s: int(s) if s.lstrip("-").isdigit() else s
    if ids and all(isinstance(v, float) for v in ids):

        def num(s: str) -> Any:
            try:
                return float(s)
            except ValueError:
                return s

        return num
    return lambda s: s


def save_npy(path: str | os.PathLike[str], array: np.ndarray) -> None:
    """Save ``array`` as a ``.npy`` file, atomically (no pickled objects)."""
    import io

    from edgesparse.fileio import atomic_write_bytes

    buf = io.BytesIO()
    np.save(buf, np.asarray(array), allow_pickle=False)
    atomic_write_bytes(path, buf.getvalue())


def looks_like_number_table(docs: list[str]) -> bool:
    """Whether documents read from a file are rather a table of numbers: every non-empty
    line is comma- or tab-separated numbers (the rows of features a linear model takes), past
    an optional header line. A text model's bench refuses such a file instead of timing it."""
    lines = [d for d in docs if d.strip()]
    if lines and not _all_numbers(lines[0].replace("\t", ",").split(",")):
        lines = lines[1:]  # a header
    return bool(lines) and all(_all_numbers(d.replace("\t", ",").split(",")) for d in lines)


MAX_RECORD_COLUMNS = 1 << 16
"""Most columns a table of records (:func:`read_records`) may have."""


def read_records(
    path: str | os.PathLike[str], *, max_columns: int = MAX_RECORD_COLUMNS
) -> TableRecords:
    """The records of a CSV with a header row naming the columns (for a model with a tabular
    input stage): every cell kept as a string, the header's names on the result.

    Refuses, with an :class:`InputError` naming the file and line, a file larger than the
    text-table limit, one that is not UTF-8 or holds NUL bytes, a header of more than
    ``max_columns`` columns (counted before any cell is made), repeated column names and rows
    whose width differs from the header's."""
    from edgesparse.fileio import read_bytes

    p = _existing(path)
    check_text_size(p, what="table of records")
    raw = read_bytes(p, what="table of records", max_bytes=max(1, max_data_bytes() // 32))
    if b"\0" in raw:
        raise InputError(f"{p} holds NUL bytes; a table of records is UTF-8 text")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{p} is not UTF-8 text (byte {exc.start}); records are read from a CSV"
        ) from None
    lines = text.splitlines()
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    if first is None:
        raise InputError(f"{p} is empty; expected a header row naming the columns, then records")
    width = lines[first].count(",") + 1
    if width > max_columns:
        raise InputError(
            f"{p}, line {first + 1}: the header has {width} columns, more than the "
            f"{max_columns} a table of records may have"
        )
    reader = csv.reader(lines[first:], strict=True)
    try:
        header = [c.strip() for c in next(reader)]
        if len(set(header)) != len(header):
            raise InputError(f"{p}, line {first + 1}: a column name is repeated in the header")
        out = TableRecords()
        for row in reader:
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            if len(row) != len(header):
                raise InputError(
                    f"{p}, line {first + reader.line_num}: {len(row)} cells, but the header "
                    f"names {len(header)} columns"
                )
            out.append([c.strip() for c in row])
    except csv.Error as exc:
        raise InputError(
            f"{p}, line {first + reader.line_num}: not a valid CSV row ({exc})"
        ) from None
    if not out:
        raise InputError(f"{p} has a header but no records")
    out.names = tuple(header)
    return out
