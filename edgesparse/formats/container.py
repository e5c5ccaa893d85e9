"""The ``.esb`` container, and the one place that decides what a blob is.

Every ``.esb`` file, whatever model it holds, is the same container (spec: ``docs/FORMAT.md``)::

    header (64 bytes)  magic, version, header size, section count, ten version-specific
                       fields, file size, header CRC32 (over the header and the table)
    section table      one 16-byte entry per section: kind, encoding, offset, length, CRC32
    sections           each starts on an 8-byte boundary; zero padding between them

The version says which model kind the payload holds: 1 a linear model
(:mod:`edgesparse.formats.linear`), 2 a k-NN recommender (:mod:`edgesparse.formats.knn`), 3 a
matrix-factorization recommender (:mod:`edgesparse.formats.factors`).
:func:`kind_of` is the only function that looks at bytes to decide what they are; the
runtime, ``inspect``, ``export-c`` and the bench all ask it.

The checks here raise :class:`~edgesparse.errors.FormatError` naming the field and its byte
offset. Imports numpy and the standard library only: the on-device runtime uses this module.
"""

from __future__ import annotations

import enum
import os
import struct
import zlib
from collections.abc import Callable
from typing import Any, NamedTuple, NoReturn, TypeVar

import numpy as np

from edgesparse.errors import FormatError
from edgesparse.fileio import read_bytes

__all__ = [
    "ALIGN",
    "ENTRY_SIZE",
    "FACTORS_VERSION",
    "HEADER_SIZE",
    "KNN_VERSION",
    "LINEAR_VERSION",
    "MAGIC",
    "MAX_U32",
    "BlobKind",
    "SectionLayout",
    "align",
    "assemble",
    "check_section_crcs",
    "corrupt",
    "corrupt_section",
    "kind_of",
    "kind_of_file",
    "parse_guarded",
    "read_blob_bytes",
    "read_header",
    "read_table",
    "section_access",
    "version_error",
]

MAGIC = b"\x89ESB\r\n\x1a\n"
"""The first 8 bytes of every ``.esb`` file (PNG-style: catches text-mode and 7-bit damage)."""

LINEAR_VERSION = 1
"""Version 1 files hold a linear model."""

KNN_VERSION = 2
"""Version 2 files hold a k-NN recommender, not a linear model."""

FACTORS_VERSION = 3
"""Version 3 files hold a matrix-factorization recommender (SVD, SVDpp, NMF, BaselineOnly)."""

HEADER_SIZE = 64
ENTRY_SIZE = 16
ALIGN = 8
MAX_U32 = 0xFFFFFFFF

# magic, version, header size, n_sections, n_outputs, n_features, nnz, n_columns, n_classes,
# head, value dtype, flags, reserved8, reserved32, file size, reserved32, header crc
# (version 1 names; version 2 gives the ten fields between n_sections and file size its own)
_HEADER = struct.Struct("<8sHHIIIQIIBBBBIQII")
_ENTRY = struct.Struct("<BBHIII")  # kind, encoding, reserved, offset, length, crc32
assert _HEADER.size == HEADER_SIZE and _ENTRY.size == ENTRY_SIZE

_T = TypeVar("_T")
_TOO_BIG = "a .esb file is at most 4 GiB (32-bit offsets), so this is not one"


# ----------------------------------------------------------------------------------------
# What the bytes are
# ----------------------------------------------------------------------------------------
class BlobKind(enum.Enum):
    """What a model file's bytes are, as far as their first 10 bytes tell."""

    ESB_LINEAR = "esb-linear"
    """``.esb`` magic, version 1: a linear model."""
    ESB_KNN = "esb-knn"
    """``.esb`` magic, version 2: a k-NN recommender."""
    ESB_FACTORS = "esb-factors"
    """``.esb`` magic, version 3: a matrix-factorization recommender."""
    ESB_UNKNOWN = "esb-unknown"
    """``.esb`` magic, but a version this reader does not know, or too short to have one: the
    linear reader (the one every version-1 tool has) reports what is wrong."""
    ONNX = "onnx"
    """No ``.esb`` magic: ONNX is the only other kind edgesparse reads, so the ONNX reader
    decides (and says what else it might be)."""

    @property
    def is_esb(self) -> bool:
        """True for every kind that starts with the ``.esb`` magic."""
        return self is not BlobKind.ONNX


_VERSION_KINDS = {
    LINEAR_VERSION: BlobKind.ESB_LINEAR,
    KNN_VERSION: BlobKind.ESB_KNN,
    FACTORS_VERSION: BlobKind.ESB_FACTORS,
}


def kind_of(data: bytes | bytearray | memoryview) -> BlobKind:
    """What ``data`` (a whole blob, or at least its first 10 bytes) is: decided by the magic
    and the version field, never by a file name."""
    head = bytes(data[:10])
    if head[:8] != MAGIC:
        return BlobKind.ONNX
    if len(head) < 10:
        return BlobKind.ESB_UNKNOWN
    return _VERSION_KINDS.get(struct.unpack("<H", head[8:])[0], BlobKind.ESB_UNKNOWN)


def kind_of_file(path: str | os.PathLike[str]) -> BlobKind | None:
    """:func:`kind_of` the first bytes of the file at ``path``; None when it cannot be read
    (the reader meant for it then reports the problem)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(10)
    except OSError:
        return None
    return kind_of(head)


def version_error(version: int, *, reader: BlobKind) -> str | None:
    """The message for a version the ``reader`` (ESB_LINEAR, ESB_KNN or ESB_FACTORS) does not
    take; None when it takes it."""
    if reader is BlobKind.ESB_FACTORS:
        if version == FACTORS_VERSION:
            return None
        return (
            f"unsupported .esb version {version} at offset 8 for a matrix-factorization model "
            f"(matrix-factorization recommenders are version {FACTORS_VERSION}; version 1 "
            "holds a linear model, version 2 a k-NN recommender)"
        )
    if reader is BlobKind.ESB_KNN:
        if version == KNN_VERSION:
            return None
        return (
            f"unsupported .esb version {version} at offset 8 for a k-NN model (k-NN "
            f"recommenders are version {KNN_VERSION}; version 1 holds a linear model)"
        )
    if version == KNN_VERSION:
        # Same words in the C runtime (esb.c): a k-NN blob is a known kind, not a mystery.
        return (
            f"unsupported .esb version {version} at offset 8 (this reader supports "
            f"version {LINEAR_VERSION}, linear models; version {KNN_VERSION} holds a k-NN "
            "recommender: load it with edgesparse.load)"
        )
    if version != LINEAR_VERSION:
        return (
            f"unsupported .esb version {version} at offset 8 (this reader supports "
            f"version {LINEAR_VERSION}; was the file written by a newer edgesparse?)"
        )
    return None


# ----------------------------------------------------------------------------------------
# Failing
# ----------------------------------------------------------------------------------------
def corrupt(msg: str) -> NoReturn:
    """Raise the FormatError for a malformed blob: ``corrupt .esb: <msg>``."""
    raise FormatError(f"corrupt .esb: {msg}")


def corrupt_section(name: str, off: int, msg: str) -> NoReturn:
    """:func:`corrupt`, naming the section and its offset."""
    corrupt(f"section '{name}' at offset {off}: {msg}")


def align(n: int) -> int:
    """``n`` rounded up to the container's alignment (8 bytes)."""
    return (n + ALIGN - 1) // ALIGN * ALIGN


# ----------------------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------------------
class SectionLayout(NamedTuple):
    """What one version puts in the container: section kinds, their encodings, the required."""

    names: dict[int, str]  # kind -> name, kinds in table order
    encodings: dict[int, dict[int, str]]  # kind -> (code -> name)
    required: tuple[int, ...]
    max_sections: int = 0  # most sections a blob holds (0: one of every kind)


def assemble(version: int, sections: list[tuple[int, int, bytes]], fields: tuple) -> bytes:
    """Header + section table + packed sections, with every CRC32.

    ``sections`` are (kind, encoding, data) in table order; ``fields`` are the ten
    version-specific header fields between the section count and the file size.
    """
    table_end = HEADER_SIZE + ENTRY_SIZE * len(sections)
    entries = []
    body = bytearray()
    pos = align(table_end)
    body += bytes(pos - table_end)
    for kind, enc, data in sections:
        if pos + len(data) > MAX_U32:
            raise FormatError(
                f"cannot encode: the model exceeds the .esb v{version} limit of 4 GiB"
            )
        entries.append(_ENTRY.pack(kind, enc, 0, pos, len(data), zlib.crc32(data)))
        body += data
        pos += len(data)
        if kind != sections[-1][0]:
            pad = align(pos) - pos
            body += bytes(pad)
            pos += pad
    table = b"".join(entries)
    header = _HEADER.pack(MAGIC, version, HEADER_SIZE, len(sections), *fields, pos, 0, 0)[:60]
    crc = zlib.crc32(table, zlib.crc32(header))
    return header + struct.pack("<I", crc) + table + bytes(body)


# ----------------------------------------------------------------------------------------
# Reading
# ----------------------------------------------------------------------------------------
def read_blob_bytes(path: str | os.PathLike[str]) -> bytes:
    """The bytes of the blob at ``path``, refusing files over the format's 4 GiB limit."""
    return read_bytes(path, what=".esb file", max_bytes=MAX_U32, how_to_raise=_TOO_BIG)


def parse_guarded(parse_bytes: Callable[[bytes], _T], buf: bytes | bytearray | memoryview) -> _T:
    """Run ``parse_bytes`` on ``buf`` so that malformed input raises FormatError only."""
    if isinstance(buf, bytes):
        data = buf
    elif isinstance(buf, (bytearray, memoryview)):
        data = bytes(buf)
    else:
        raise TypeError(f"expected bytes, bytearray or memoryview, got {type(buf).__name__}")
    try:
        return parse_bytes(data)
    except FormatError:
        raise
    except (
        ValueError,
        IndexError,
        TypeError,
        OverflowError,
        ArithmeticError,
        MemoryError,
        RecursionError,
        UnicodeError,
        KeyError,
    ) as exc:
        # Defence in depth: every check in the parser should have caught the problem first.
        raise FormatError(f"corrupt .esb: unreadable ({type(exc).__name__}: {exc})") from None


def read_header(data: bytes, *, reader: BlobKind, layout: SectionLayout) -> tuple:
    """Check magic, version (the ``reader``'s, see :func:`version_error`), header size,
    section count and the header CRC. Returns the unpacked header fields."""
    size = len(data)
    if size == 0:
        raise FormatError("not an .esb file: the file is empty")
    if data[:8] != MAGIC[: min(8, size)]:
        raise FormatError(
            f"not an .esb file: bad magic {data[:8]!r} at offset 0 (expected {MAGIC!r})"
        )
    if size >= 10:
        msg = version_error(struct.unpack_from("<H", data, 8)[0], reader=reader)
        if msg:
            raise FormatError(msg)
    if size < HEADER_SIZE:
        corrupt(f"truncated header at offset 0 (needs {HEADER_SIZE} bytes, file has {size})")
    fields = _HEADER.unpack_from(data)
    header_size, n_sec, header_crc = fields[2], fields[3], fields[-1]
    if header_size != HEADER_SIZE:
        corrupt(f"header size field at offset 10 is {header_size}, expected {HEADER_SIZE}")
    n_required, n_kinds = len(layout.required), layout.max_sections or len(layout.names)
    if not n_required <= n_sec <= n_kinds:
        corrupt(f"section count at offset 12 is {n_sec}, expected {n_required} to {n_kinds}")
    table_end = HEADER_SIZE + ENTRY_SIZE * n_sec
    if size < table_end:
        corrupt(
            f"truncated section table at offset {HEADER_SIZE} (needs {table_end - HEADER_SIZE}"
            f" bytes, {size - HEADER_SIZE} left)"
        )
    crc = zlib.crc32(data[HEADER_SIZE:table_end], zlib.crc32(data[:60]))
    if crc != header_crc:
        corrupt(
            f"header checksum mismatch at offset 60 (stored 0x{header_crc:08x}, computed "
            f"0x{crc:08x} over the header and section table)"
        )
    return fields


def _check_entry(data: bytes, i: int, prev_kind: int, layout: SectionLayout) -> tuple:
    """Check table entry ``i``'s kind (known, in order), encoding and reserved field."""
    at = HEADER_SIZE + ENTRY_SIZE * i
    entry = _ENTRY.unpack_from(data, at)
    kind, enc, res = entry[:3]
    where = f"section table entry {i} at offset {at}"
    if kind not in layout.names:
        corrupt(f"{where}: unknown section kind {kind} (written by a newer edgesparse?)")
    name = layout.names[kind]
    if kind <= prev_kind:
        corrupt(f"{where}: section '{name}' is repeated or out of order")
    if enc not in layout.encodings[kind]:
        corrupt(f"{where}: section '{name}' has unknown encoding {enc}")
    if res:
        corrupt(f"{where}: reserved field is {res}, expected 0")
    return entry


def _check_placement(data: bytes, name: str, off: int, length: int, pad_from: int) -> None:
    """Check that a section starts where packing puts it and fits in the file."""
    size = len(data)
    expect = align(pad_from)
    if off % ALIGN:
        corrupt(f"section '{name}' at offset {off} is not {ALIGN}-byte aligned")
    if off != expect:
        corrupt(
            f"section '{name}' at offset {off} should start at offset {expect} "
            "(sections are packed in table order, each 8-byte aligned)"
        )
    if off + length > size:
        corrupt(
            f"section '{name}' at offset {off} runs past the end of the file "
            f"(needs {length} bytes, {max(0, size - off)} left)"
        )
    if any(data[pad_from:off]):
        corrupt(f"nonzero padding before section '{name}' at offset {pad_from}")


def read_table(
    data: bytes, *, n_sec: int, file_size: int, layout: SectionLayout
) -> tuple[dict[int, tuple[int, int, int]], dict[str, dict[str, Any]]]:
    """Check the section table: kinds in order, known encodings, packing, padding, bounds,
    no trailing bytes, the file size field and the required sections (not yet the CRCs).

    Returns kind -> (encoding, offset, length) and the per-section description for verify().
    """
    size = len(data)
    secs: dict[int, tuple[int, int, int]] = {}
    info: dict[str, dict[str, Any]] = {}
    prev_kind = 0
    pad_from = HEADER_SIZE + ENTRY_SIZE * n_sec
    for i in range(n_sec):
        kind, enc, _, off, length, scrc = _check_entry(data, i, prev_kind, layout)
        prev_kind = kind
        name = layout.names[kind]
        _check_placement(data, name, off, length, pad_from)
        secs[kind] = (enc, off, length)
        info[name] = {
            "encoding": layout.encodings[kind][enc],
            "offset": off,
            "bytes": length,
            "crc32": f"0x{scrc:08x}",
        }
        pad_from = off + length
    end = pad_from
    if end < size:
        corrupt(f"{size - end} trailing bytes after the last section (which ends at offset {end})")
    if file_size != size:
        corrupt(f"file size field at offset 48 says {file_size} bytes, the file has {size}")
    for kind in layout.required:
        if kind not in secs:
            corrupt(f"required section '{layout.names[kind]}' is missing")
    return secs, info


def check_section_crcs(data: bytes, n_sec: int, names: dict[int, str]) -> None:
    """Check every section's CRC32 (after :func:`read_table` has checked the bounds)."""
    for i in range(n_sec):
        kind, _, _, off, length, scrc = _ENTRY.unpack_from(data, HEADER_SIZE + ENTRY_SIZE * i)
        crc = zlib.crc32(data[off : off + length])
        if crc != scrc:
            corrupt(
                f"checksum mismatch in section '{names[kind]}' at offset {off} "
                f"(stored 0x{scrc:08x}, computed 0x{crc:08x})"
            )


def section_access(
    data: bytes, secs: dict[int, tuple[int, int, int]], names: dict[int, str]
) -> tuple[Callable[[int], tuple[int, int, np.ndarray]], Callable[[int, int, str], None]]:
    """``section(kind)`` -> (encoding, offset, bytes view) and ``need(kind, n, what)``, which
    fails unless the section is exactly ``n`` bytes."""

    def section(kind: int) -> tuple[int, int, np.ndarray]:
        enc, off, length = secs[kind]
        return enc, off, np.frombuffer(data, dtype=np.uint8, count=length, offset=off)

    def need(kind: int, expected: int, what: str) -> None:
        _, off, length = secs[kind]
        if length != expected:
            corrupt(
                f"section '{names[kind]}' at offset {off} is {length} bytes, "
                f"expected {expected} ({what})"
            )

    return section, need
