"""``.esb`` files: the public entry to the format (spec: ``docs/FORMAT.md``).

The bytes API of the linear model kind (version 1) is re-exported here under its historic
names (:func:`encode`, :func:`decode`, :func:`verify`); the file API reads and writes blobs
and describes a blob of any kind (:func:`inspect_file`). The pieces live below:

    container.py       header, section table, CRCs, alignment; what a blob is (kind_of)
    codecs.py          varints, zigzag, bitmaps, Elias-Fano, strings, provenance
    linear.py          version 1: a LinearIR (linear_pattern.py, linear_values.py)
    knn.py             version 2: a KnnIR
    factors.py         version 3: a FactorIR (ids.py: the raw ids both recommenders share)

Imports only numpy and the standard library: the on-device runtime uses this module.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

from edgesparse.errors import FormatError
from edgesparse.fileio import atomic_write_bytes
from edgesparse.formats.container import MAGIC, BlobKind, kind_of, read_blob_bytes
from edgesparse.formats.linear import (
    COLUMN_ENCODINGS,
    INDEX_ENCODINGS,
    VERSION,
    decode,
    encode,
    verify,
)
from edgesparse.ir import LinearIR

__all__ = [
    "COLUMN_ENCODINGS",
    "INDEX_ENCODINGS",
    "MAGIC",
    "VERSION",
    "decode",
    "encode",
    "inspect_file",
    "read",
    "read_blob_file",
    "verify",
    "write",
]

_T = TypeVar("_T")


def write(ir: LinearIR, path: str | os.PathLike[str], **layout: str) -> int:
    """Encode ``ir`` and write it to ``path`` atomically; return the number of bytes written.

    ``layout`` is passed to :func:`encode` (``columns=``, ``indices=``).
    """
    data = encode(ir, **layout)
    atomic_write_bytes(path, data)
    return len(data)


def read(path: str | os.PathLike[str]) -> LinearIR:
    """Read and fully verify a ``.esb`` file; errors name the path."""
    return read_blob_file(path, decode)


def inspect_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """:func:`verify` for a file (or the k-NN verifier for a version-2 one, the
    matrix-factorization one for version 3); errors name the path."""

    def describe(data: bytes) -> dict[str, Any]:
        if kind_of(data) is BlobKind.ESB_KNN:
            from edgesparse.formats import knn  # on first use: the device loads one kind

            return knn.verify(data)
        if kind_of(data) is BlobKind.ESB_FACTORS:
            from edgesparse.formats import factors

            return factors.verify(data)
        return {"file": os.fspath(path), **verify(data)}

    return read_blob_file(path, describe)


def read_blob_file(path: str | os.PathLike[str], parse: Callable[[bytes], _T]) -> _T:
    """``parse`` the bytes of the blob at ``path``; a FormatError names the path, and a file
    that is recognisably something else (a pickle, a data file) is called what it is."""
    data = read_blob_bytes(path)
    try:
        return parse(data)
    except FormatError as exc:
        if not kind_of(data).is_esb:  # a pickle or data file named .esb: say which
            from edgesparse.formats.sniff import not_a_compressed_model

            wrong = not_a_compressed_model(path)
            if wrong is not None:
                raise wrong from None
        raise FormatError(f"{os.fspath(path)}: {exc}") from None
