"""What kind of file a user gave, by its first bytes (by its name only where bytes cannot
tell), so that a file given in the wrong place gets an error that says what it is and what to
do, instead of the complaint of whichever reader tried it last.

Only consulted after the reader that was meant for the file has failed (or for a name the
reader does not know). Whether bytes are an ``.esb`` blob is the container's to say
(:func:`edgesparse.formats.container.kind_of`). Numpy and the standard library only: the
on-device runtime uses it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from edgesparse.errors import ModelFileError
from edgesparse.formats.container import MAGIC, kind_of

__all__ = ["DATA_FORMATS", "TEXT_SUFFIXES", "FileKind", "not_a_compressed_model", "sniff"]

ESB_MAGIC = MAGIC
"""The first bytes of every ``.esb`` blob (the container's :data:`MAGIC`)."""
NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGIC = b"PK\x03\x04"
PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib")
TEXT_SUFFIXES = (".csv", ".tsv", ".txt")
"""Names of the text tables edgesparse reads as data."""
DATA_FORMATS = (
    ".npy (X), .npz (X and optional y, or CSR parts X_data, X_indices, X_indptr, X_shape) "
    "or a .csv/.tsv/.txt table of numbers (comma- or whitespace-separated, optional header)"
)
"""The data files edgesparse reads, for messages."""

# joblib.dump(..., compress=...) output: zlib, gzip, bz2, xz, lzma, lz4 (recognised by name too).
_COMPRESSED_PREFIXES = (
    b"\x78",
    b"\x1f\x8b",
    b"BZh",
    b"\xfd7zXZ",
    b"\x5d\x00\x00",
    b"\x04\x22M\x18",
)


@dataclass(frozen=True)
class FileKind:
    """What a file is: ``role`` says where it belongs, ``what`` names it for a message."""

    role: str  # "model" (to compress), "compressed" (.esb / .onnx), "data"
    what: str  # e.g. "a pickle", "a .npy array"
    text: bool = False  # a text table (known by its name only)


def sniff(path: str | os.PathLike[str]) -> FileKind | None:
    """The kind of the file at ``path`` when it is recognisably one edgesparse knows (a model
    before compression, a compressed model, a data file); None otherwise or when unreadable."""
    p = Path(path)
    suffix = p.suffix.lower()
    try:
        with open(p, "rb") as fh:
            head = fh.read(16)
    except OSError:
        return None
    if kind_of(head).is_esb:
        return FileKind("compressed", "an edgesparse .esb model")
    if head.startswith(NPY_MAGIC):
        return FileKind("data", "a .npy array")
    if head.startswith(ZIP_MAGIC):
        return _zip_kind(p, suffix)
    if head.startswith(b"\x80"):  # every pickle of protocol 2 or newer
        return FileKind("model", "a pickle (a saved model)")
    if suffix in PICKLE_SUFFIXES and head.startswith(_COMPRESSED_PREFIXES):
        return FileKind("model", "a compressed joblib file (a saved model)")
    if suffix == ".onnx":
        return FileKind("compressed", "an ONNX model")
    if suffix in TEXT_SUFFIXES:
        return FileKind("data", f"a {suffix} table", text=True)
    return None


def _zip_kind(p: Path, suffix: str) -> FileKind | None:
    import zipfile

    try:
        with zipfile.ZipFile(p) as zf:
            names = set(zf.namelist())
    except (OSError, zipfile.BadZipFile, ValueError):
        return None
    if "schema.json" in names or suffix == ".skops":
        return FileKind("model", "a skops file (a saved model)")
    arrays = {n[:-4] for n in names if n.endswith(".npy")}
    if "coef" in arrays:
        return FileKind("model", "an .npz weights file (coef, intercept)")
    if "X" in arrays or "X_data" in arrays:
        return FileKind("data", "an .npz data file")
    return None


def not_a_compressed_model(
    path: str | os.PathLike[str],
    *,
    data_hint: str = "give the .esb or .onnx model first, the data after it "
    "(edgesparse predict MODEL DATA)",
) -> ModelFileError | None:
    """The error for a file given where a compressed model (``.esb``/``.onnx``) belongs when it
    is recognisably something else: a model still to compress (the advice: the compress
    command), or a data file (the advice: ``data_hint``); None otherwise."""
    kind = sniff(path)
    if kind is None or kind.role == "compressed":
        return None
    shown = os.fspath(path)
    if kind.role == "model":
        return ModelFileError(
            f"{shown} is {kind.what}, not a compressed model; compress it first: "
            f"edgesparse compress {shown} -o model.esb"
        )
    return ModelFileError(f"{shown} is {kind.what}, a data file, not a model; {data_hint}")
