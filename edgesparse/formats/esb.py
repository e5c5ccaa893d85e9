"""The ``.esb`` blob: a compact, checksummed, 8-byte-aligned container for a :class:`LinearIR`.

The byte layout is specified in ``docs/FORMAT.md``; this module is its reference implementation.
In short::

    header (64 bytes)  magic, version, counts, head, value dtype, flags, file size, header CRC
    section table      one 16-byte entry per section: kind, encoding, offset, length, CRC32
    sections           rows, columns?, indices, values, scales?, bias, classes?, provenance?
                       each starts on an 8-byte boundary; zero padding between them

Column indices are stored in whichever of a few layouts is smallest for the model at hand
(chosen at write time and recorded in the section's encoding field): an optional list of the
*used* columns (LEB128 gaps, a bitmap, or Elias-Fano), then the sparsity pattern over those
columns (raw int32, LEB128 gaps per row, a row-major bitmap, or one Elias-Fano sequence).
Values always stay in canonical CSR order, so a reader can use the values array in place.

:func:`decode` checks every count, offset, length, checksum and CSR invariant against the
buffer before it uses it, never allocates more than a small multiple of the file size, and
raises :class:`~edgesparse.errors.FormatError` (and nothing else) for any malformed input.

Imports only numpy and the standard library: the on-device runtime uses this module.
"""

from __future__ import annotations

import json
import os
import struct
import zlib
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple, TypeVar

import numpy as np

from edgesparse.counting import small_int_counts, used_columns
from edgesparse.errors import FormatError, IRError
from edgesparse.fileio import atomic_write_bytes, read_bytes
from edgesparse.ir import EXPONENT_RANGE, HEADS, LinearIR

__all__ = [
    "COLUMN_ENCODINGS",
    "INDEX_ENCODINGS",
    "MAGIC",
    "VERSION",
    "decode",
    "encode",
    "inspect_file",
    "read",
    "verify",
    "write",
]

MAGIC = b"\x89ESB\r\n\x1a\n"
"""The first 8 bytes of every ``.esb`` file (PNG-style: catches text-mode and 7-bit damage)."""

VERSION = 1
"""The format version this module writes and the only one it reads."""

KNN_VERSION = 2
"""Version 2 files hold a k-NN recommender (``formats/esb_knn.py``), not a linear model."""

HEADER_SIZE = 64
ENTRY_SIZE = 16
ALIGN = 8
MAX_U32 = 0xFFFFFFFF

# magic, version, header size, n_sections, n_outputs, n_features, nnz, n_columns, n_classes,
# head, value dtype, flags, reserved8, reserved32, file size, reserved32, header crc
_HEADER = struct.Struct("<8sHHIIIQIIBBBBIQII")
_ENTRY = struct.Struct("<BBHIII")  # kind, encoding, reserved, offset, length, crc32
assert _HEADER.size == HEADER_SIZE and _ENTRY.size == ENTRY_SIZE

FLAG_SQUEEZE = 0x01

# Section kinds, in the order they must appear in the table.
ROWS, COLUMNS, INDICES, VALUES, SCALES, BIAS, CLASSES, PROVENANCE, EXPONENTS = range(1, 10)
SECTION_NAMES = {
    ROWS: "rows",
    COLUMNS: "columns",
    INDICES: "indices",
    VALUES: "values",
    SCALES: "scales",
    BIAS: "bias",
    CLASSES: "classes",
    PROVENANCE: "provenance",
    EXPONENTS: "exponents",
}
_REQUIRED = (ROWS, INDICES, VALUES, BIAS)

# Encoding codes per section kind (code -> name).
ENC_RAW, ENC_VARINT, ENC_BITMAP, ENC_EF = 0, 1, 2, 3
ENC_MIXED = 1  # values: int8 rows with some int16 ("wide") rows
COLUMN_ENCODINGS = {ENC_VARINT: "varint", ENC_BITMAP: "bitmap", ENC_EF: "eliasfano"}
INDEX_ENCODINGS = {
    ENC_RAW: "raw",
    ENC_VARINT: "varint",
    ENC_BITMAP: "bitmap",
    ENC_EF: "eliasfano",
}
_ENCODINGS: dict[int, dict[int, str]] = {
    ROWS: {ENC_VARINT: "varint"},
    COLUMNS: COLUMN_ENCODINGS,
    INDICES: INDEX_ENCODINGS,
    VALUES: {0: "raw", ENC_MIXED: "mixed-int8-int16"},
    SCALES: {0: "float32"},
    BIAS: {0: "float64", 1: "float32"},
    CLASSES: {0: "int-zigzag-varint", 1: "float64", 2: "utf8"},
    PROVENANCE: {0: "json"},
    EXPONENTS: {0: "int8", 1: "exceptions"},
}


class _Layout(NamedTuple):
    """What one version puts in the container: section kinds, their encodings, the required."""

    names: dict[int, str]  # kind -> name, kinds in table order
    encodings: dict[int, dict[int, str]]  # kind -> (code -> name)
    required: tuple[int, ...]


_LAYOUT = _Layout(SECTION_NAMES, _ENCODINGS, _REQUIRED)
_VALUE_DTYPES = (np.dtype("<f8"), np.dtype("<f4"), np.dtype("i1"))
_VALUE_DTYPE_NAMES = ("float64", "float32", "int8")
_CLS_INT, _CLS_FLOAT, _CLS_STR = 0, 1, 2

_U64 = np.uint64
_T = TypeVar("_T")
_TOO_BIG = "a .esb file is at most 4 GiB (32-bit offsets), so this is not one"


# ----------------------------------------------------------------------------------------
# Public API
# ----------------------------------------------------------------------------------------
def encode(ir: LinearIR, *, columns: str = "auto", indices: str = "auto") -> bytes:
    """Serialize ``ir`` into ``.esb`` bytes.

    ``columns`` (``"auto"``, ``"all"``, ``"varint"``, ``"bitmap"``, ``"eliasfano"``) and
    ``indices`` (``"auto"``, ``"raw"``, ``"varint"``, ``"bitmap"``, ``"eliasfano"``) force a
    layout for the column-index data; ``"auto"`` picks the smallest. ``"all"`` means no list of
    used columns (pattern indices are global column numbers). Every layout decodes to the same
    IR. Raises :class:`FormatError` when the model exceeds the format's limits (32-bit
    offsets and row counts) or a label / provenance string is not valid Unicode.
    """
    if not isinstance(ir, LinearIR):
        raise TypeError(f"encode() needs a LinearIR, got {type(ir).__name__}")
    if columns not in ("auto", "all", *COLUMN_ENCODINGS.values()):
        raise ValueError(f"columns: unknown layout {columns!r}")
    if indices not in ("auto", *INDEX_ENCODINGS.values()):
        raise ValueError(f"indices: unknown layout {indices!r}")
    n_out, n_feat, nnz = ir.n_outputs, ir.n_features, ir.nnz
    if n_out > MAX_U32:
        raise FormatError(f"cannot encode: {n_out} output rows exceed the .esb v1 limit")

    counts = np.diff(ir.indptr).astype(np.uint64)
    col_enc, col_bytes, n_cols, idx_enc, idx_bytes = _encode_pattern(ir, columns, indices)

    sections: list[tuple[int, int, bytes]] = [(ROWS, ENC_VARINT, _varint_encode(counts))]
    if col_enc is not None:
        sections.append((COLUMNS, col_enc, col_bytes))
    sections.append((INDICES, idx_enc, idx_bytes))
    dtype_code, values_enc, values_bytes = _encode_values(ir)
    sections.append((VALUES, values_enc, values_bytes))
    if ir.scales is not None:
        sections.append((SCALES, 0, ir.scales.astype("<f4").tobytes()))
    with np.errstate(over="ignore"):
        bias32 = ir.bias.astype(np.float32)
    if np.array_equal(bias32.astype(np.float64), ir.bias):
        sections.append((BIAS, 1, bias32.astype("<f4").tobytes()))
    else:
        sections.append((BIAS, 0, ir.bias.astype("<f8").tobytes()))
    n_classes = 0
    if ir.classes is not None:
        n_classes = int(ir.classes.size)
        sections.append((CLASSES, *_encode_classes(ir.classes)))
    if ir.provenance:
        sections.append((PROVENANCE, 0, _encode_provenance(ir.provenance)))
    if ir.col_exponents is not None:
        sections.append((EXPONENTS, *_encode_exponents(ir, listed=col_enc is not None)))

    flags = FLAG_SQUEEZE if ir.squeeze else 0
    head_code = HEADS.index(ir.head)
    fields = (n_out, n_feat, nnz, n_cols, n_classes, head_code, dtype_code, flags, 0, 0)
    return _assemble(VERSION, sections, fields)


def decode(buf: bytes | bytearray | memoryview) -> LinearIR:
    """Parse and fully verify ``.esb`` bytes; return the :class:`LinearIR` they describe.

    Raises :class:`FormatError` naming the field and byte offset for any malformed input.
    """
    return _parse(buf)[0]


def verify(buf: bytes | bytearray | memoryview) -> dict[str, Any]:
    """Fully verify ``.esb`` bytes and describe them (what ``edgesparse inspect`` shows).

    Returns a JSON-serializable dict: version, shapes, nnz, density, value dtype and
    quantization, head, classes, the index layout, every section's encoding, offset, byte size
    and CRC32, bytes per nonzero, ``checksums: "OK"`` and the provenance. Raises
    :class:`FormatError` exactly as :func:`decode` does.
    """
    ir, hdr, secs = _parse(buf)
    total = int(hdr["file_size"])
    classes = None if ir.classes is None else ir.classes.tolist()
    info: dict[str, Any] = {
        "format": f".esb version {hdr['version']}",
        "bytes": total,
        "shape": f"{ir.n_outputs} x {ir.n_features}",
        "n_outputs": ir.n_outputs,
        "n_features": ir.n_features,
        "nnz": ir.nnz,
        "density": round(ir.nnz / (ir.n_outputs * ir.n_features), 6),
        "bytes_per_nonzero": round(total / ir.nnz, 4) if ir.nnz else None,
        "values": str(ir.values.dtype),
        "quantization": ir.quantization,
        **({"int16_rows": int(ir.wide_rows.sum())} if ir.values.dtype == np.int16 else {}),
        "head": ir.head,
        "n_classes": 0 if ir.classes is None else int(ir.classes.size),
        "classes": classes if classes is None or len(classes) <= 20 else [*classes[:20], "..."],
        "used_columns": int(hdr["n_columns"]),
        "index_layout": (
            f"columns={secs['columns']['encoding'] if 'columns' in secs else 'all'}, "
            f"indices={secs['indices']['encoding']}"
        ),
        "sections": secs,
        "checksums": "OK",
        "provenance": dict(ir.provenance),
    }
    return info


def write(ir: LinearIR, path: str | os.PathLike[str], **layout: str) -> int:
    """Encode ``ir`` and write it to ``path`` atomically; return the number of bytes written.

    ``layout`` is passed to :func:`encode` (``columns=``, ``indices=``).
    """
    data = encode(ir, **layout)
    atomic_write_bytes(path, data)
    return len(data)


def read(path: str | os.PathLike[str]) -> LinearIR:
    """Read and fully verify a ``.esb`` file; errors name the path."""
    return _read_file(path, decode)


def inspect_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """:func:`verify` for a file (or the k-NN verifier for a version-2 one); errors name the
    path."""

    def describe(data: bytes) -> dict[str, Any]:
        if data[:8] == MAGIC and data[8:10] == struct.pack("<H", KNN_VERSION):
            from edgesparse.formats import esb_knn

            return esb_knn.verify(data)
        return {"file": os.fspath(path), **verify(data)}

    return _read_file(path, describe)


# ----------------------------------------------------------------------------------------
# Encoding the sparsity pattern
# ----------------------------------------------------------------------------------------
def _encode_pattern(
    ir: LinearIR, columns: str, indices: str
) -> tuple[int | None, bytes, int, int, bytes]:
    """Pick (or apply the forced) column/index layout; return the encoded sections."""
    n_out, n_feat, nnz = ir.n_outputs, ir.n_features, ir.nnz
    cols = ir.indices.astype(np.int64)
    starts = ir.indptr[:-1][np.diff(ir.indptr) > 0]

    def idx_sizes(local: np.ndarray, n_cols: int) -> dict[int, int]:
        sizes = {ENC_RAW: 4 * nnz, ENC_VARINT: int(_varint_lengths(_row_gaps(local, starts)).sum())}
        if n_out * n_cols < 1 << 62:  # the decoder's limit for flat positions
            sizes[ENC_BITMAP] = -(-n_out * n_cols // 8)
            sizes[ENC_EF] = _ef_size(nnz, n_out * n_cols) if nnz else 0
        return sizes

    # Candidate A: no column list; candidate B: list of used columns + local indices.
    # Column exponents (one byte per listed column) count with the layout that lists them.
    exp_costs: dict[bool, int] = {}

    def exp_cost(listed: bool) -> int:
        if ir.col_exponents is None:
            return 0
        if listed not in exp_costs:
            exp_costs[listed] = ENTRY_SIZE + _align(len(_encode_exponents(ir, listed=listed)[1]))
        return exp_costs[listed]

    cands: list[tuple[int, int, int | None, int, int]] = []  # (total, order, col_enc, idx_enc, n)
    want_idx = [k for k, v in INDEX_ENCODINGS.items() if indices in ("auto", v)]
    if columns in ("auto", "all"):
        sizes = idx_sizes(cols, n_feat)
        for k in want_idx:
            if k in sizes:
                cands.append((_align(sizes[k]) + exp_cost(False), len(cands), None, k, n_feat))
    used = local = None
    if columns != "all":
        used = used_columns(cols, n_features=n_feat)
        local = np.searchsorted(used, cols)
        csizes = {
            ENC_VARINT: int(_varint_lengths(_row_gaps(used, np.zeros(1, np.int64))).sum()),
            ENC_BITMAP: -(-n_feat // 8),
        }
        csizes[ENC_EF] = _ef_size(used.size, n_feat) if used.size else 0
        sizes = idx_sizes(local, used.size)
        for ck, csize in csizes.items():
            if columns not in ("auto", COLUMN_ENCODINGS[ck]):
                continue
            for k in want_idx:
                if k in sizes:
                    total = ENTRY_SIZE + _align(csize) + _align(sizes[k])
                    total += exp_cost(True)
                    cands.append((total, len(cands), ck, k, int(used.size)))
    if not cands:
        raise ValueError(f"layout columns={columns!r}, indices={indices!r} cannot hold this model")
    _, _, col_enc, idx_enc, n_cols = min(cands)

    col_bytes = b""
    if col_enc is None:
        pattern = cols
    else:
        assert used is not None and local is not None
        pattern = local
        if col_enc == ENC_VARINT:
            col_bytes = _varint_encode(_row_gaps(used, np.zeros(1, np.int64)))
        elif col_enc == ENC_BITMAP:
            col_bytes = _bitmap_encode(used, n_feat)
        else:
            col_bytes = _ef_encode(used.astype(_U64), n_feat)
    if idx_enc == ENC_RAW:
        idx_bytes = pattern.astype("<i4").tobytes()
    elif idx_enc == ENC_VARINT:
        idx_bytes = _varint_encode(_row_gaps(pattern, starts))
    else:
        flat = ir.row_ids() * n_cols + pattern
        if idx_enc == ENC_BITMAP:
            idx_bytes = _bitmap_encode(flat, n_out * n_cols)
        else:
            idx_bytes = _ef_encode(flat.astype(_U64), n_out * n_cols)
    return col_enc, col_bytes, n_cols, idx_enc, idx_bytes


def _row_gaps(sorted_idx: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Delta-code per row: the first index of a row as is, then ``next - previous - 1``."""
    g = sorted_idx.astype(np.int64)
    if g.size == 0:
        return g.astype(_U64)
    out = g.copy()
    out[1:] -= g[:-1] + 1
    out[starts] = g[starts]
    return out.astype(_U64)


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


# ----------------------------------------------------------------------------------------
# The container, shared with esb_knn.py (version 2): header, section table, packing, CRCs
# ----------------------------------------------------------------------------------------
def _assemble(version: int, sections: list[tuple[int, int, bytes]], fields: tuple) -> bytes:
    """Header + section table + packed sections, with every CRC32.

    ``sections`` are (kind, encoding, data) in table order; ``fields`` are the ten
    version-specific header fields between the section count and the file size.
    """
    table_end = HEADER_SIZE + ENTRY_SIZE * len(sections)
    entries = []
    body = bytearray()
    pos = _align(table_end)
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
            pad = _align(pos) - pos
            body += bytes(pad)
            pos += pad
    table = b"".join(entries)
    header = _HEADER.pack(MAGIC, version, HEADER_SIZE, len(sections), *fields, pos, 0, 0)[:60]
    crc = zlib.crc32(table, zlib.crc32(header))
    return header + struct.pack("<I", crc) + table + bytes(body)


def _read_file(path: str | os.PathLike[str], parse: Callable[[bytes], _T]) -> _T:
    """``parse`` the bytes of the blob at ``path``; a FormatError names the path."""
    data = read_bytes(path, what=".esb file", max_bytes=MAX_U32, how_to_raise=_TOO_BIG)
    try:
        return parse(data)
    except FormatError as exc:
        if not data.startswith(MAGIC):  # a pickle or data file named .esb: say which
            from edgesparse.sniff import not_a_compressed_model

            wrong = not_a_compressed_model(path)
            if wrong is not None:
                raise wrong from None
        raise FormatError(f"{os.fspath(path)}: {exc}") from None


def _parse_guarded(parse_bytes: Callable[[bytes], _T], buf: bytes | bytearray | memoryview) -> _T:
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


def _read_header(data: bytes, version_error: Callable[[int], str | None], layout: _Layout) -> tuple:
    """Check magic, version, header size, section count and the header CRC.

    ``version_error`` gives the message for a version this reader does not take (None: fine).
    Returns the unpacked header fields.
    """
    size = len(data)
    if size == 0:
        raise FormatError("not an .esb file: the file is empty")
    if data[:8] != MAGIC[: min(8, size)]:
        raise FormatError(
            f"not an .esb file: bad magic {data[:8]!r} at offset 0 (expected {MAGIC!r})"
        )
    if size >= 10:
        msg = version_error(struct.unpack_from("<H", data, 8)[0])
        if msg:
            raise FormatError(msg)
    if size < HEADER_SIZE:
        _fail(f"truncated header at offset 0 (needs {HEADER_SIZE} bytes, file has {size})")
    fields = _HEADER.unpack_from(data)
    header_size, n_sec, header_crc = fields[2], fields[3], fields[-1]
    if header_size != HEADER_SIZE:
        _fail(f"header size field at offset 10 is {header_size}, expected {HEADER_SIZE}")
    n_required, n_kinds = len(layout.required), len(layout.names)
    if not n_required <= n_sec <= n_kinds:
        _fail(f"section count at offset 12 is {n_sec}, expected {n_required} to {n_kinds}")
    table_end = HEADER_SIZE + ENTRY_SIZE * n_sec
    if size < table_end:
        _fail(
            f"truncated section table at offset {HEADER_SIZE} (needs {table_end - HEADER_SIZE}"
            f" bytes, {size - HEADER_SIZE} left)"
        )
    crc = zlib.crc32(data[HEADER_SIZE:table_end], zlib.crc32(data[:60]))
    if crc != header_crc:
        _fail(
            f"header checksum mismatch at offset 60 (stored 0x{header_crc:08x}, computed "
            f"0x{crc:08x} over the header and section table)"
        )
    return fields


def _read_table(
    data: bytes, n_sec: int, file_size: int, layout: _Layout
) -> tuple[dict[int, tuple[int, int, int]], dict[str, dict[str, Any]]]:
    """Check the section table: kinds in order, known encodings, packing, padding, bounds,
    no trailing bytes, the file size field and the required sections (not yet the CRCs).

    Returns kind -> (encoding, offset, length) and the per-section description for verify().
    """
    names, encodings, required = layout
    size = len(data)
    table_end = HEADER_SIZE + ENTRY_SIZE * n_sec
    secs: dict[int, tuple[int, int, int]] = {}
    info: dict[str, dict[str, Any]] = {}
    prev_kind = 0
    expect = _align(table_end)
    pad_from = table_end
    for i in range(n_sec):
        at = HEADER_SIZE + ENTRY_SIZE * i
        kind, enc, res, off, length, scrc = _ENTRY.unpack_from(data, at)
        where = f"section table entry {i} at offset {at}"
        if kind not in names:
            _fail(f"{where}: unknown section kind {kind} (written by a newer edgesparse?)")
        name = names[kind]
        if kind <= prev_kind:
            _fail(f"{where}: section '{name}' is repeated or out of order")
        prev_kind = kind
        if enc not in encodings[kind]:
            _fail(f"{where}: section '{name}' has unknown encoding {enc}")
        if res:
            _fail(f"{where}: reserved field is {res}, expected 0")
        if off % ALIGN:
            _fail(f"section '{name}' at offset {off} is not {ALIGN}-byte aligned")
        if off != expect:
            _fail(
                f"section '{name}' at offset {off} should start at offset {expect} "
                "(sections are packed in table order, each 8-byte aligned)"
            )
        if off + length > size:
            _fail(
                f"section '{name}' at offset {off} runs past the end of the file "
                f"(needs {length} bytes, {max(0, size - off)} left)"
            )
        if any(data[pad_from:off]):
            _fail(f"nonzero padding before section '{name}' at offset {pad_from}")
        secs[kind] = (enc, off, length)
        info[name] = {
            "encoding": encodings[kind][enc],
            "offset": off,
            "bytes": length,
            "crc32": f"0x{scrc:08x}",
        }
        pad_from = off + length
        expect = _align(pad_from)
    end = pad_from
    if end < size:
        _fail(f"{size - end} trailing bytes after the last section (which ends at offset {end})")
    if file_size != size:
        _fail(f"file size field at offset 48 says {file_size} bytes, the file has {size}")
    for kind in required:
        if kind not in secs:
            _fail(f"required section '{names[kind]}' is missing")
    return secs, info


def _check_section_crcs(data: bytes, n_sec: int, names: dict[int, str]) -> None:
    for i in range(n_sec):
        kind, _, _, off, length, scrc = _ENTRY.unpack_from(data, HEADER_SIZE + ENTRY_SIZE * i)
        crc = zlib.crc32(data[off : off + length])
        if crc != scrc:
            _fail(
                f"checksum mismatch in section '{names[kind]}' at offset {off} "
                f"(stored 0x{scrc:08x}, computed 0x{crc:08x})"
            )


def _section_access(
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
            _fail(
                f"section '{names[kind]}' at offset {off} is {length} bytes, "
                f"expected {expected} ({what})"
            )

    return section, need


# ----------------------------------------------------------------------------------------
# Vectorized codecs: LEB128 varints, bitmaps, Elias-Fano
# ----------------------------------------------------------------------------------------
def _varint_lengths(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=_U64)
    n = np.ones(v.shape, dtype=np.int64)
    for k in range(1, 10):
        n += v >= _U64(1 << (7 * k))
    return n


def _varint_encode(v: np.ndarray) -> bytes:
    """Unsigned LEB128: 7 bits per byte, least significant group first, high bit = more."""
    v = np.asarray(v, dtype=_U64)
    if v.size == 0:
        return b""
    n = _varint_lengths(v)
    owner = np.repeat(np.arange(v.size), n)
    first = np.cumsum(n) - n
    pos = np.arange(owner.size) - first[owner]
    groups = (v[owner] >> (7 * pos).astype(_U64)) & _U64(0x7F)
    more = (pos < n[owner] - 1).astype(_U64) << _U64(7)
    return (groups | more).astype(np.uint8).tobytes()


def _varint_decode(b: np.ndarray, count: int, max_bytes: int) -> tuple[np.ndarray, str | None]:
    """Decode exactly ``count`` varints filling all of ``b``; return (values, error or None)."""
    if count == 0:
        return np.zeros(0, _U64), (None if b.size == 0 else "holds data but expects 0 numbers")
    ends = np.flatnonzero(b < 0x80)
    if ends.size != count:
        return np.zeros(0, _U64), f"holds {ends.size} numbers, expected {count}"
    if ends[-1] != b.size - 1:
        return np.zeros(0, _U64), "ends in the middle of a number"
    first = np.empty(count, dtype=np.int64)
    first[0] = 0
    first[1:] = ends[:-1] + 1
    lens = ends - first + 1
    if int(lens.max()) > max_bytes:
        at = int(first[np.argmax(lens > max_bytes)])
        return np.zeros(0, _U64), f"number at byte {at} is longer than {max_bytes} bytes"
    bad = (lens > 1) & (b[ends] == 0)
    if np.any(bad):
        at = int(first[np.argmax(bad)])
        return np.zeros(0, _U64), f"number at byte {at} is not minimally encoded"
    if max_bytes >= 10 and np.any((lens == 10) & (b[ends] > 1)):
        return np.zeros(0, _U64), "a number overflows 64 bits"
    pos = np.arange(b.size) - np.repeat(first, lens)
    parts = (b & 0x7F).astype(_U64) << (7 * pos).astype(_U64)
    return np.add.reduceat(parts, first), None


def _bitmap_encode(positions: np.ndarray, n_bits: int) -> bytes:
    bits = np.zeros(n_bits, dtype=np.uint8)
    bits[positions] = 1
    return np.packbits(bits, bitorder="little").tobytes()


def _ef_low_bits(n: int, universe: int) -> int:
    return max(0, (universe // n).bit_length() - 1)


def _ef_size(n: int, universe: int) -> int:
    """Bytes of an Elias-Fano code for ``n >= 1`` strictly increasing values in [0, universe)."""
    low = _ef_low_bits(n, universe)
    return -(-n * low // 8) + -(-(n + ((universe - 1) >> low) + 1) // 8)


def _ef_encode(x: np.ndarray, universe: int) -> bytes:
    """Elias-Fano: ``L`` low bits of each value packed, then the high parts in unary."""
    n = int(x.size)
    if n == 0:
        return b""
    low_bits = _ef_low_bits(n, universe)
    bits = np.empty((n, low_bits), dtype=np.uint8)
    for j in range(low_bits):
        bits[:, j] = (x >> _U64(j)) & _U64(1)
    low = np.packbits(bits.ravel(), bitorder="little").tobytes()
    n_high = n + ((universe - 1) >> low_bits) + 1
    hb = np.zeros(n_high, dtype=np.uint8)
    hb[(x >> _U64(low_bits)) + np.arange(n, dtype=_U64)] = 1
    return low + np.packbits(hb, bitorder="little").tobytes()


# ----------------------------------------------------------------------------------------
# Classes
# ----------------------------------------------------------------------------------------
MAX_UNSORTED_CLASSES = 4096
"""More class labels than this must be stored in strictly increasing order (scikit-learn's
``classes_`` always are): then a reader without memory to spare checks them for repeats in
linear time; up to this many it compares every pair."""


def _labels_increasing(labels: list[Any]) -> int:
    """The first position whose label is not greater than the one before, or 0."""
    for i in range(1, len(labels)):
        if not labels[i - 1] < labels[i]:
            return i
    return 0


def _encode_classes(classes: np.ndarray) -> tuple[int, bytes]:
    if classes.size > MAX_UNSORTED_CLASSES and _labels_increasing(classes.tolist()):
        raise FormatError(
            f"cannot encode: more than {MAX_UNSORTED_CLASSES} class labels must be in "
            "increasing order"
        )
    if classes.dtype.kind == "i":
        return _CLS_INT, _zigzag_encode(classes.astype(np.int64))
    if classes.dtype.kind == "f":
        return _CLS_FLOAT, classes.astype("<f8").tobytes()
    try:
        raw = [str(s).encode("utf-8") for s in classes.tolist()]
    except UnicodeEncodeError:
        raise FormatError("cannot encode: a class label is not valid Unicode") from None
    return _CLS_STR, _strings_encode(raw)


# Label codecs, shared with esb_knn.py (its user and item ids use the same three encodings).
def _zigzag_encode(v: np.ndarray) -> bytes:
    """int64 -> zigzag (0, -1, 1, -2, ... -> 0, 1, 2, 3, ...) LEB128 varints."""
    return _varint_encode((v.view(_U64) << _U64(1)) ^ (v >> 63).view(_U64))


def _zigzag_decode(zig: np.ndarray) -> np.ndarray:
    return ((zig >> _U64(1)) ^ (_U64(0) - (zig & _U64(1)))).view(np.int64)


def _strings_encode(raw: list[bytes]) -> bytes:
    """All the lengths as varints, then all the UTF-8 bytes."""
    return _varint_encode(np.array([len(r) for r in raw], dtype=_U64)) + b"".join(raw)


def _strings_decode(
    b: np.ndarray, n: int, name: str, off: int, what: str, *, nul_ok: bool
) -> list[str]:
    """Decode ``n`` strings written by :func:`_strings_encode` (``what`` names one in errors).

    ``nul_ok=False`` rejects a string ending in NUL, which a numpy str array would drop.
    """
    where = f"section '{name}' at offset {off}"
    ends = np.flatnonzero(b < 0x80)[:n]
    if ends.size != n:
        _fail(f"{where}: holds fewer than {n} {what} lengths")
    head_len = int(ends[-1]) + 1
    lengths, err = _varint_decode(b[:head_len], n, 5)
    if err:
        _fail(f"{where}: {what} lengths: {err}")
    total = int(lengths.sum(dtype=_U64))
    if head_len + total != b.size:
        _fail(f"{where}: {what} lengths add up to {head_len + total} bytes, section has {b.size}")
    raw = b.tobytes()
    out = []
    pos = head_len
    for i, ln in enumerate(lengths.tolist()):
        try:
            text = raw[pos : pos + ln].decode("utf-8")
        except UnicodeDecodeError:
            _fail(f"{where}: {what} {i} at offset {off + pos} is not valid UTF-8")
        if not nul_ok and text.endswith("\x00"):
            _fail(f"{where}: {what} {i} at offset {off + pos} ends with a NUL character")
        out.append(text)
        pos += ln
    return out


# ----------------------------------------------------------------------------------------
# Decoding
# ----------------------------------------------------------------------------------------
def _fail(msg: str) -> None:
    raise FormatError(f"corrupt .esb: {msg}")


def _sfail(name: str, off: int, msg: str) -> None:
    _fail(f"section '{name}' at offset {off}: {msg}")


def _parse(buf: bytes | bytearray | memoryview) -> tuple[LinearIR, dict[str, Any], dict]:
    return _parse_guarded(_parse_bytes, buf)


def _version_error(version: int) -> str | None:
    if version == KNN_VERSION:
        # Same words in the C runtime (esb.c): a k-NN blob is a known kind, not a mystery.
        return (
            f"unsupported .esb version {version} at offset 8 (this reader supports "
            f"version {VERSION}, linear models; version {KNN_VERSION} holds a k-NN "
            "recommender: load it with edgesparse.load)"
        )
    if version != VERSION:
        return (
            f"unsupported .esb version {version} at offset 8 (this reader supports "
            f"version {VERSION}; was the file written by a newer edgesparse?)"
        )
    return None


def _parse_bytes(data: bytes) -> tuple[LinearIR, dict[str, Any], dict]:
    fields = _read_header(data, _version_error, _LAYOUT)
    (
        _,
        version,
        _,
        n_sec,
        n_out,
        n_feat,
        nnz,
        n_cols,
        n_classes,
        head_code,
        dtype_code,
        flags,
        res8,
        res32a,
        file_size,
        res32b,
        _,
    ) = fields

    # -- header fields ------------------------------------------------------------------
    if head_code >= len(HEADS):
        _fail(f"unknown head code {head_code} at offset 40")
    if dtype_code >= len(_VALUE_DTYPES):
        _fail(f"unknown value dtype code {dtype_code} at offset 41")
    if flags & ~FLAG_SQUEEZE:
        _fail(f"unknown flag bits 0x{flags & ~FLAG_SQUEEZE:02x} at offset 42")
    for off, val in ((43, res8), (44, res32a), (56, res32b)):
        if val:
            _fail(f"reserved field at offset {off} is {val}, expected 0")
    if n_out < 1:
        _fail("n_outputs at offset 16 is 0")
    if not 1 <= n_feat <= 0x7FFFFFFF:
        _fail(f"n_features at offset 20 is {n_feat}, expected 1 to 2147483647")
    if n_cols > n_feat:
        _fail(f"n_columns at offset 32 is {n_cols}, more than n_features={n_feat}")
    if nnz > n_out * n_cols:
        _fail(f"nnz at offset 24 is {nnz}, more than n_outputs x n_columns = {n_out * n_cols}")
    head = HEADS[head_code]
    if head == "identity":
        if n_classes:
            _fail(f"n_classes at offset 36 is {n_classes}, but a regressor has none")
        if flags & FLAG_SQUEEZE and n_out != 1:
            _fail(f"flags at offset 42: squeeze (1-D output) needs 1 output row, not {n_out}")
    else:
        # Classifiers always have 1-D scores for one output row; the writer always sets the
        # bit, and accepting it clear would give one model two encodings.
        if not flags & FLAG_SQUEEZE:
            _fail(f"flags at offset 42: squeeze must be set for a classifier (head {head!r})")
        expected_rows = 1 if n_classes == 2 else n_classes
        if n_classes < 2 or n_out != expected_rows:
            _fail(
                f"n_classes at offset 36 is {n_classes}, which does not fit "
                f"n_outputs={n_out} for head {head!r}"
            )

    # -- section table ------------------------------------------------------------------
    secs, info = _read_table(data, n_sec, file_size, _LAYOUT)
    is_int8 = dtype_code == 2
    if (SCALES in secs) != is_int8:
        _fail(
            "section 'scales' must be present exactly when values are int8 (value dtype at "
            f"offset 41 is {_VALUE_DTYPE_NAMES[dtype_code]}, 'scales' is "
            f"{'present' if SCALES in secs else 'missing'})"
        )
    if (CLASSES in secs) != (head != "identity"):
        _fail(
            "section 'classes' must be present exactly when the head is a classifier (head at "
            f"offset 40 is {head!r}, 'classes' is {'present' if CLASSES in secs else 'missing'})"
        )
    if EXPONENTS in secs and not is_int8:
        _fail(
            "section 'exponents' is only allowed with int8 values (value dtype at offset 41 "
            f"is {_VALUE_DTYPE_NAMES[dtype_code]})"
        )
    if COLUMNS not in secs and n_cols != n_feat:
        _fail(
            f"n_columns at offset 32 is {n_cols}, but without a 'columns' section it "
            f"must equal n_features={n_feat}"
        )
    _check_section_crcs(data, n_sec, SECTION_NAMES)
    section, need = _section_access(data, secs, SECTION_NAMES)

    # -- rows ---------------------------------------------------------------------------
    _, off, b = section(ROWS)
    counts, err = _varint_decode(b, n_out, 5)
    if err:
        _sfail("rows", off, f"{err} (one row length per output row)")
    if counts.size and int(counts.max()) > n_cols:
        r = int(np.argmax(counts > n_cols))
        _sfail(
            "rows",
            off,
            f"row {r} has {int(counts[r])} entries, but there are only {n_cols} columns",
        )
    total = int(counts.sum(dtype=_U64))
    if total != nnz:
        _sfail("rows", off, f"row lengths sum to {total}, header nnz is {nnz}")
    indptr = np.zeros(n_out + 1, dtype=np.int64)
    np.cumsum(counts.astype(np.int64), out=indptr[1:])

    # -- columns ------------------------------------------------------------------------
    used: np.ndarray | None = None
    if COLUMNS in secs:
        enc, off, b = section(COLUMNS)
        used = _decode_sorted(b, enc, n_cols, n_feat, off, "columns", "used column")

    # -- indices ------------------------------------------------------------------------
    enc, off, b = section(INDICES)
    starts = indptr[:-1][counts > 0]
    if enc == ENC_RAW:
        need(INDICES, 4 * nnz, f"nnz={nnz} int32 column indices")
        local = np.frombuffer(b, dtype="<i4").astype(np.int64)
        if local.size:
            bad = (local < 0) | (local >= n_cols)
            if np.any(bad):
                p = int(np.argmax(bad))
                _sfail(
                    "indices",
                    off,
                    f"column index {int(local[p])} at position {p} is out of range [0, {n_cols})",
                )
            step = np.diff(local) <= 0
            step[starts[1:] - 1] = False
            if np.any(step):
                p = int(np.argmax(step)) + 1
                _sfail(
                    "indices",
                    off,
                    f"column indices are not strictly increasing within a row at position {p}",
                )
    elif enc == ENC_VARINT:
        gaps, err = _varint_decode(b, nnz, 5)
        if err:
            _sfail("indices", off, f"{err} (one column gap per nonzero)")
        if gaps.size and int(gaps.max()) >= n_cols:
            p = int(np.argmax(gaps >= n_cols))
            _sfail(
                "indices",
                off,
                f"column gap {int(gaps[p])} at position {p} is out of range [0, {n_cols})",
            )
        steps = gaps + _U64(1)
        steps[starts] = gaps[starts]
        cums = np.cumsum(steps, dtype=_U64)
        base = np.zeros(n_out, dtype=_U64)
        nonempty = counts > 0
        base[nonempty] = cums[starts] - gaps[starts]
        local_u = cums - np.repeat(base, counts.astype(np.int64))
        if local_u.size and int(local_u.max()) >= n_cols:
            p = int(np.argmax(local_u >= n_cols))
            _sfail(
                "indices",
                off,
                f"column index {int(local_u[p])} at position {p} is out of range [0, {n_cols})",
            )
        local = local_u.astype(np.int64)
    else:
        universe = n_out * n_cols
        if universe >= 1 << 62:
            _sfail("indices", off, f"n_outputs x n_columns is too large for encoding {enc}")
        flat = _decode_sorted(b, enc, nnz, universe, off, "indices", "nonzero")
        if n_cols:
            rows_of = flat // _U64(n_cols)
            got = np.bincount(rows_of.astype(np.int64), minlength=n_out)
        else:
            got = np.zeros(n_out, dtype=np.int64)
        if not np.array_equal(got, counts.astype(np.int64)):
            r = int(np.argmax(got != counts.astype(np.int64)))
            _sfail(
                "indices",
                off,
                f"row {r} has {int(got[r])} entries, section 'rows' says {int(counts[r])}",
            )
        local = (
            (flat - rows_of * _U64(n_cols)).astype(np.int64) if n_cols else flat.astype(np.int64)
        )
    indices = local if used is None else used[local]

    # -- values, scales, bias -----------------------------------------------------------
    values_enc, values_off, b = section(VALUES)
    if values_enc == ENC_MIXED:
        if not is_int8:
            _sfail("values", values_off, "mixed int8/int16 widths need value dtype int8")
        values = _decode_mixed_values(b, values_off, counts, need)
    else:
        values = _decode_raw_values(b, values_off, dtype_code, nnz, need)
    scales = None
    if is_int8:
        _, off, b = section(SCALES)
        if len(b) not in (4, 4 * n_out):
            need(SCALES, 4 * n_out, f"{n_out} per-row or 1 per-tensor float32 scales")
        scales = np.frombuffer(b, dtype="<f4").astype(np.float32)
        bad = ~(np.isfinite(scales) & (scales > 0))
        if np.any(bad):
            p = int(np.argmax(bad))
            _sfail(
                "scales", off, f"scale {float(scales[p])!r} at position {p} must be finite and > 0"
            )
    if values_enc == ENC_MIXED and scales is not None and scales.size != n_out:
        _sfail(
            "values", values_off, f"int16 rows need one scale per row, 'scales' has {scales.size}"
        )
    enc, off, b = section(BIAS)
    width = 8 if enc == 0 else 4
    need(BIAS, width * n_out, f"{n_out} {_ENCODINGS[BIAS][enc]} biases")
    bias = np.frombuffer(b, dtype="<f8" if enc == 0 else "<f4").astype(np.float64)
    if not np.all(np.isfinite(bias)):
        p = int(np.argmax(~np.isfinite(bias)))
        _sfail("bias", off, f"bias {float(bias[p])!r} at position {p} is not finite")

    # -- classes, provenance ------------------------------------------------------------
    classes = None
    if CLASSES in secs:
        classes = _decode_classes(section(CLASSES), n_classes, need)
    provenance: dict[str, str] = {}
    if PROVENANCE in secs:
        _, off, b = section(PROVENANCE)
        provenance = _decode_provenance(b.tobytes(), off)
    exponents = None
    if EXPONENTS in secs:
        exponents = _decode_exponents(section(EXPONENTS), need, used, n_cols, n_feat, indices)

    try:
        ir = LinearIR(
            indptr=indptr,
            indices=indices.astype(np.int32),
            values=values,
            n_features=n_feat,
            bias=bias,
            head=head,
            classes=classes,
            scales=scales,
            squeeze=bool(flags & FLAG_SQUEEZE),
            provenance=provenance,
            col_exponents=exponents,
        )
    except IRError as exc:
        raise FormatError(f"corrupt .esb: {exc}") from None
    hdr = {"version": version, "file_size": file_size, "n_columns": n_cols}
    return ir, hdr, info


def _encode_values(ir: LinearIR) -> tuple[int, int, bytes]:
    """(value dtype code, values encoding, section bytes): raw, or mixed widths when some rows
    need 16 bits (int16 values whose rows all fit int8 are written as plain int8)."""
    values = ir.values
    if values.dtype == np.int16:
        wide = ir.wide_rows
        if not wide.any():
            return 2, ENC_RAW, values.astype(np.int8).tobytes()
        counts = np.diff(ir.indptr)
        width = np.repeat(np.where(wide, 2, 1), counts)
        bitmap = np.packbits(wide, bitorder="little")
        start = bitmap.size + np.cumsum(width) - width
        out = np.zeros(bitmap.size + int(width.sum()), dtype=np.uint8)
        out[: bitmap.size] = bitmap
        raw = values.astype("<i2").view(np.uint8).reshape(-1, 2)
        out[start] = raw[:, 0]
        out[start[width == 2] + 1] = raw[width == 2, 1]
        return 2, ENC_MIXED, out.tobytes()
    code = _VALUE_DTYPE_NAMES.index(str(values.dtype))
    return code, ENC_RAW, values.astype(_VALUE_DTYPES[code]).tobytes()


def _decode_raw_values(
    b: np.ndarray, off: int, dtype_code: int, nnz: int, need: Callable[[int, int, str], None]
) -> np.ndarray:
    vdt = _VALUE_DTYPES[dtype_code]
    need(VALUES, nnz * vdt.itemsize, f"nnz={nnz} {_VALUE_DTYPE_NAMES[dtype_code]} values")
    values = np.frombuffer(b, dtype=vdt).astype(vdt.newbyteorder("="))
    if values.size:
        bad = values == 0
        if values.dtype == np.int8:
            bad |= values == -128
        else:
            bad |= ~np.isfinite(values)
        if np.any(bad):
            p = int(np.argmax(bad))
            _sfail(
                "values",
                off,
                f"value {values[p].item()!r} at position {p} is not allowed "
                "(stored values are never 0, NaN, Inf or -128)",
            )
    return values


def _decode_mixed_values(
    b: np.ndarray, off: int, counts: np.ndarray, need: Callable[[int, int, str], None]
) -> np.ndarray:
    """Values encoding 1: a bitmap of wide rows, then i8 (narrow) or i16 LE (wide) values."""
    n_out = counts.size
    n_map = (n_out + 7) // 8
    if b.size < n_map:
        _sfail("values", off, f"is {b.size} bytes, shorter than its {n_map}-byte wide-row bitmap")
    bits = np.unpackbits(b[:n_map], bitorder="little")
    if bits[n_out:].any():
        _sfail("values", off, f"wide-row bitmap has bits set past n_outputs={n_out}")
    wide = bits[:n_out].astype(bool)
    if not wide.any():
        _sfail("values", off, "mixed widths with no wide row (such a file uses encoding 0)")
    lengths = counts.astype(np.int64)
    nnz, nnz_wide = int(lengths.sum()), int(lengths[wide].sum())
    need(
        VALUES,
        n_map + nnz + nnz_wide,
        f"{n_map}-byte wide-row bitmap, then nnz={nnz} values of which {nnz_wide} are int16",
    )
    width = np.repeat(np.where(wide, 2, 1), lengths)
    start = n_map + np.cumsum(width) - width
    values = b[start].view(np.int8).astype(np.int16)
    two = width == 2
    hi = b[start[two] + 1].astype(np.uint16) << 8
    values[two] = (b[start[two]].astype(np.uint16) | hi).view(np.int16)
    bad = (values == 0) | (values == (np.where(two, -32768, -128)))
    if np.any(bad):
        p = int(np.argmax(bad))
        _sfail(
            "values",
            off,
            f"value {int(values[p])} at position {p} is not allowed (stored values are never 0, "
            f"-128 in an int8 row or -32768 in an int16 row)",
        )
    rows = np.repeat(np.arange(n_out), lengths)
    fits = np.bincount(rows[np.abs(values.astype(np.int32)) > 127], minlength=n_out) == 0
    if np.any(wide & fits):
        r = int(np.argmax(wide & fits))
        _sfail("values", off, f"row {r} is marked int16 but all its values fit int8")
    return values


def _encode_exponents(ir: LinearIR, *, listed: bool) -> tuple[int, bytes]:
    """The smaller of the two encodings of ``ir.col_exponents`` over the listed columns (the
    used ones when the blob has a column list, else every feature): one i8 each (0), or the
    exceptions to the most common exponent of the used columns (1)."""
    assert ir.col_exponents is not None
    used = used_columns(ir.indices, n_features=ir.n_features)
    per_listed = ir.col_exponents[used] if listed else ir.col_exponents
    dense = per_listed.astype("i1").tobytes()
    values, counts = small_int_counts(ir.col_exponents[used])
    # The most common; ties: the smallest, so the choice is unique (no weights at all: 0).
    default = int(values[np.argmax(counts)]) if used.size else 0
    pos_in_listed = np.arange(used.size) if listed else used
    exc = ir.col_exponents[used] != default
    positions = pos_in_listed[exc].astype(np.int64)
    gaps = np.diff(positions, prepend=-1) - 1
    sparse = (
        struct.pack("<Ib", int(positions.size), default)
        + ir.col_exponents[used][exc].astype("i1").tobytes()
        + _varint_encode(gaps.astype(_U64))
    )
    return (0, dense) if len(dense) <= len(sparse) else (1, sparse)


DEFAULT_MAX_EXPONENT_FEATURES = 64 << 20
"""Most features a blob with column exponents may declare to this reader (default: the model
array cap, 64 MiB, since it holds one exponent byte per feature, unused ones included): a
290-byte blob declaring 2**31 - 1 features took 23 s and 4.2 GB to inspect (issue 16).
``EDGESPARSE_MAX_ARRAY_BYTES`` overrides, as for models."""


def _check_exponent_memory(n_feat: int) -> None:
    text = os.environ.get("EDGESPARSE_MAX_ARRAY_BYTES", "").strip()
    cap = int(text) if text.isdigit() and int(text) > 0 else DEFAULT_MAX_EXPONENT_FEATURES
    if n_feat > cap:
        raise FormatError(
            f"cannot read it here: it has column exponents and n_features={n_feat}, and this "
            f"reader holds one exponent byte per feature, more than the {cap} bytes of arrays "
            "edgesparse allows by default; if you trust the file, raise the limit with "
            "EDGESPARSE_MAX_ARRAY_BYTES=<bytes>"
        )


def _decode_exponents(
    sec: tuple[int, int, np.ndarray],
    need: Any,
    used: np.ndarray | None,
    n_cols: int,
    n_feat: int,
    indices: np.ndarray,
) -> np.ndarray:
    """One int8 exponent per listed column, in [-126, 127]; 0 for every column no weight
    uses (one encoding per model). The IR checks the products ``scale * 2^e`` next."""
    enc, off, b = sec
    lo, hi = EXPONENT_RANGE
    _check_exponent_memory(n_feat)
    columns = np.arange(n_feat) if used is None else used
    if enc == 1:
        return _decode_exception_exponents(b, off, n_cols, columns, n_feat, indices)
    need(EXPONENTS, n_cols, f"{n_cols} int8 column exponents (one per used column)")
    exps = np.frombuffer(b, dtype="i1").astype(np.int8)
    bad = (exps < lo) | (exps > hi)
    if np.any(bad):
        p = int(np.argmax(bad))
        _sfail("exponents", off, f"exponent {int(exps[p])} at position {p} is outside [{lo}, {hi}]")
    full = np.zeros(n_feat, dtype=np.int8)
    full[columns] = exps
    stray = full.astype(bool)
    stray[indices] = False
    if np.any(stray):
        _sfail(
            "exponents",
            off,
            f"column {int(np.argmax(stray))} has no weights but a nonzero exponent",
        )
    return full


def _decode_exception_exponents(
    b: np.ndarray, off: int, n_cols: int, columns: np.ndarray, n_feat: int, indices: np.ndarray
) -> np.ndarray:
    """Encoding 1: u32 count k, i8 default, k i8 exponents, k varint gaps of listed-column
    positions. Used columns take the default unless listed; unused columns are 0 and may not
    be listed; a listed exponent differs from the default (one encoding per model)."""
    lo, hi = EXPONENT_RANGE

    def fail(msg: str) -> None:
        _sfail("exponents", off, msg)

    if b.size < 5:
        fail(f"is {b.size} bytes, too short for its 5-byte count and default")
    k = int(np.frombuffer(b[:4].tobytes(), dtype="<u4")[0])
    default = int(np.frombuffer(b[4:5].tobytes(), dtype="i1")[0])
    if not lo <= default <= hi:
        fail(f"default exponent {default} is outside [{lo}, {hi}]")
    if k > n_cols:
        fail(f"lists {k} exceptions, but there are only {n_cols} listed columns")
    if 5 + k > b.size:
        fail(f"is {b.size} bytes, too short for {k} exception exponents")
    exps = np.frombuffer(b[5 : 5 + k].tobytes(), dtype="i1").astype(np.int8)
    gaps, err = _varint_decode(b[5 + k :], k, 5)
    if err:
        fail(f"{err} (one column gap per exception)")
    pos = np.cumsum(gaps.astype(np.int64) + 1) - 1
    if k and int(pos[-1]) >= n_cols:
        p = int(np.argmax(pos >= n_cols))
        fail(f"exception {p} names column position {int(pos[p])}, beyond the {n_cols} listed")
    bad = (exps < lo) | (exps > hi) | (exps == default)
    if np.any(bad):
        p = int(np.argmax(bad))
        fail(
            f"exception {p} has exponent {int(exps[p])}: outside [{lo}, {hi}] or equal to the "
            f"default {default}"
        )
    used = np.zeros(n_feat, dtype=bool)
    used[indices] = True
    listed_cols = columns[pos]
    if np.any(~used[listed_cols]):
        p = int(np.argmax(~used[listed_cols]))
        fail(f"column {int(listed_cols[p])} has no weights but an exception exponent")
    full = np.zeros(n_feat, dtype=np.int8)
    full[used] = default
    full[listed_cols] = exps
    return full


def _decode_sorted(
    b: np.ndarray, enc: int, n: int, universe: int, off: int, name: str, what: str
) -> np.ndarray:
    """Decode ``n`` strictly increasing values in [0, universe) (varint, bitmap or EF)."""
    where = f"section '{name}' at offset {off}"
    if enc == ENC_VARINT:
        gaps, err = _varint_decode(b, n, 5)
        if err:
            _fail(f"{where}: {err} (one gap per {what})")
        if gaps.size and int(gaps.max()) >= universe:
            _fail(f"{where}: a {what} lies outside [0, {universe})")
        x = np.cumsum(gaps + _U64(1), dtype=_U64) - _U64(1) if n else gaps
        if n and int(x[-1]) >= universe:
            _fail(f"{where}: a {what} lies outside [0, {universe})")
        return x
    if enc == ENC_BITMAP:
        n_bytes = -(-universe // 8)
        if b.size != n_bytes:
            _fail(f"{where} is {b.size} bytes, expected {n_bytes} (a bitmap of {universe} bits)")
        bits = np.unpackbits(b, bitorder="little")
        if np.any(bits[universe:]):
            _fail(f"{where}: padding bits after bit {universe} are not zero")
        x = np.flatnonzero(bits).astype(_U64)
        if x.size != n:
            _fail(f"{where}: bitmap has {x.size} bits set, expected {n} ({what}s)")
        return x
    # Elias-Fano
    if n == 0:
        if b.size:
            _fail(f"{where} is {b.size} bytes, expected 0 (no {what}s)")
        return np.zeros(0, _U64)
    low_bits = _ef_low_bits(n, universe)
    n_low = -(-n * low_bits // 8)
    n_high_bits = n + ((universe - 1) >> low_bits) + 1
    n_bytes = n_low + -(-n_high_bits // 8)
    if b.size != n_bytes:
        _fail(f"{where} is {b.size} bytes, expected {n_bytes} (Elias-Fano code of {n} {what}s)")
    low = np.zeros(n, dtype=_U64)
    if low_bits:
        lb = np.unpackbits(b[:n_low], bitorder="little")
        if np.any(lb[n * low_bits :]):
            _fail(f"{where}: padding bits of the low part are not zero")
        lb = lb[: n * low_bits].reshape(n, low_bits)
        for j in range(low_bits):
            low |= lb[:, j].astype(_U64) << _U64(j)
    hb = np.unpackbits(b[n_low:], bitorder="little")
    ones = np.flatnonzero(hb)
    if ones.size != n:
        _fail(f"{where}: high part has {ones.size} bits set, expected {n} ({what}s)")
    if int(ones[-1]) >= n_high_bits:
        _fail(f"{where}: padding bits of the high part are not zero")
    x = ((ones - np.arange(n)).astype(_U64) << _U64(low_bits)) | low
    if int(x[-1]) >= universe:
        _fail(f"{where}: a {what} lies outside [0, {universe})")
    if n > 1 and np.any(x[1:] <= x[:-1]):
        p = int(np.argmax(x[1:] <= x[:-1])) + 1
        _fail(f"{where}: {what}s are not strictly increasing at position {p}")
    return x


def _decode_classes(sec: tuple[int, int, np.ndarray], n: int, need: Any) -> np.ndarray:
    enc, off, b = sec
    where = f"section 'classes' at offset {off}"
    labels: Any
    if enc == _CLS_FLOAT:
        need(CLASSES, 8 * n, f"{n} float64 labels")
        labels = np.frombuffer(b, dtype="<f8").astype(np.float64)
    elif enc == _CLS_INT:
        zig, err = _varint_decode(b, n, 10)
        if err:
            _fail(f"{where}: {err} (one label per class)")
        labels = _zigzag_decode(zig)
    else:
        # numpy's str arrays drop trailing NULs: "a\0" would silently become "a"
        labels = _strings_decode(b, n, "classes", off, "label", nul_ok=False)
    if n > MAX_UNSORTED_CLASSES:
        i = _labels_increasing(labels if isinstance(labels, list) else labels.tolist())
        if i:
            _fail(
                f"{where}: label {i} is not greater than label {i - 1} (more than "
                f"{MAX_UNSORTED_CLASSES} labels must be in increasing order)"
            )
    return labels if not isinstance(labels, list) else np.array(labels, dtype=str)


MAX_PROVENANCE_KEYS = 1024
"""Most keys the provenance object may hold: a reader without memory to spare checks them for
repeats pairwise (about 10 keys in practice)."""


class _TooManyKeys(Exception):
    pass


def _encode_provenance(provenance: Mapping[str, str]) -> bytes:
    if len(provenance) > MAX_PROVENANCE_KEYS:
        raise FormatError(f"cannot encode: provenance has more than {MAX_PROVENANCE_KEYS} keys")
    text = json.dumps(dict(provenance), ensure_ascii=False, separators=(",", ":"))
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise FormatError("cannot encode: provenance is not valid Unicode") from None


def _decode_provenance(raw: bytes, off: int) -> dict[str, str]:
    where = f"section 'provenance' at offset {off}"

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in items:
            if k in out:
                raise ValueError(f"duplicate key {k!r}")
            out[k] = v
        if len(out) > MAX_PROVENANCE_KEYS:
            raise _TooManyKeys
        return out

    try:
        obj = json.loads(raw.decode("utf-8"), object_pairs_hook=pairs)
    except UnicodeDecodeError as exc:
        raise FormatError(f"corrupt .esb: {where}: not valid UTF-8 ({exc.reason})") from None
    except _TooManyKeys:
        raise FormatError(
            f"corrupt .esb: {where}: has more than {MAX_PROVENANCE_KEYS} keys"
        ) from None
    except (ValueError, RecursionError) as exc:
        raise FormatError(f"corrupt .esb: {where}: not a valid JSON object ({exc})") from None
    if not isinstance(obj, dict) or not all(isinstance(v, str) for v in obj.values()):
        _fail(f"{where}: must be a JSON object of strings")
    return obj
