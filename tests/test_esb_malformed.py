"""Malformed ``.esb`` files: every one is a ``FormatError`` naming the field, never a crash.

Most corruptions are caught by a CRC first. :func:`build` is a test-side writer of the layout in
docs/FORMAT.md that takes edited fields and recomputes every checksum, so the structural checks
behind the CRCs are reached too. Each case asserts the exact message (and that the catch-all
"unreadable (...)" path of the decoder, which would mean an unchecked numpy error, is never hit).
"""

from __future__ import annotations

import dataclasses
import os
import struct
import subprocess
import sys
import warnings
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgesparse.errors import FormatError, IRError
from edgesparse.formats import codecs, container, esb, linear
from edgesparse.ir import LinearIR

ROOT = Path(__file__).resolve().parents[1]
SAFETY_NET = "unreadable ("

# ------------------------------------------------------------------------------------------
# A test-side writer: split a blob into fields, edit them, build it again with valid CRCs
# ------------------------------------------------------------------------------------------
HEADER_FIELDS = (
    "magic",
    "version",
    "header_size",
    "n_sections",
    "n_outputs",
    "n_features",
    "nnz",
    "n_columns",
    "n_classes",
    "head",
    "value_dtype",
    "flags",
    "reserved8",
    "reserved32a",
    "file_size",
    "reserved32b",
    "header_crc",
)
HEADER_FMT = "<8sHHIIIQIIBBBBIQII"
# (offset, struct format) of every header field, from docs/FORMAT.md.
FIELD_AT = dict(
    zip(
        HEADER_FIELDS,
        [
            (0, "8s"),
            (8, "H"),
            (10, "H"),
            (12, "I"),
            (16, "I"),
            (20, "I"),
            (24, "Q"),
            (32, "I"),
            (36, "I"),
            (40, "B"),
            (41, "B"),
            (42, "B"),
            (43, "B"),
            (44, "I"),
            (48, "Q"),
            (56, "I"),
            (60, "I"),
        ],
        strict=True,
    )
)
KIND = {name: kind for kind, name in linear.SECTION_NAMES.items()}


@dataclasses.dataclass
class Sec:
    """One section: what its table entry says and the bytes laid out for it."""

    kind: int
    enc: int
    data: bytes
    reserved: int = 0
    offset: int | None = None  # None: where packing puts it
    length: int | None = None  # None: len(data)
    crc: int | None = None  # None: CRC32 of the bytes the entry points at


def split(blob: bytes) -> tuple[dict, list[Sec]]:
    """Header fields and sections of a valid blob."""
    header = dict(zip(HEADER_FIELDS, struct.unpack_from(HEADER_FMT, blob), strict=True))
    secs = []
    for i in range(header["n_sections"]):
        kind, enc, _, off, length, _ = struct.unpack_from("<BBHIII", blob, 64 + 16 * i)
        secs.append(Sec(kind, enc, blob[off : off + length]))
    return header, secs


def build(header: dict, secs: list[Sec], *, tail: bytes = b"", **override: int) -> bytes:
    """Lay the sections out as the spec says and recompute n_sections, file_size and CRCs.

    ``override`` sets header fields after that computation (``header_crc`` included, which
    then is not recomputed); ``tail`` is appended after the last section.
    """
    n = len(secs)
    pos = container.align(64 + 16 * n)
    body = bytearray(pos - (64 + 16 * n))
    placed = []
    for i, s in enumerate(secs):
        placed.append(pos)
        body += s.data
        pos += len(s.data)
        if i < n - 1:
            body += bytes(container.align(pos) - pos)
            pos = container.align(pos)
    body += tail
    total = 64 + 16 * n + len(body)
    fields = {**header, "n_sections": n, "file_size": total, "header_crc": 0, **override}
    out = bytearray(struct.pack(HEADER_FMT, *(fields[k] for k in HEADER_FIELDS)))
    out += bytes(16 * n) + body
    for i, s in enumerate(secs):
        off = placed[i] if s.offset is None else s.offset
        length = len(s.data) if s.length is None else s.length
        crc = s.crc
        if crc is None:
            crc = zlib.crc32(out[off : off + length]) if off + length <= total else 0
        struct.pack_into("<BBHIII", out, 64 + 16 * i, s.kind, s.enc, s.reserved, off, length, crc)
    if "header_crc" not in override:
        table_end = min(64 + 16 * fields["n_sections"], len(out))
        crc = zlib.crc32(bytes(out[64:table_end]), zlib.crc32(bytes(out[:60])))
        struct.pack_into("<I", out, 60, crc)
    return bytes(out)


def reseal(blob: bytes) -> bytes:
    """Recompute the CRCs of an edited blob whose table is still readable."""
    header = dict(zip(HEADER_FIELDS, struct.unpack_from(HEADER_FMT, blob), strict=True))
    b = bytearray(blob)
    n = min(header["n_sections"], (len(b) - 64) // 16)
    for i in range(n):
        off, length = struct.unpack_from("<II", b, 64 + 16 * i + 4)
        if off + length <= len(b):
            struct.pack_into("<I", b, 64 + 16 * i + 12, zlib.crc32(b[off : off + length]))
    struct.pack_into("<I", b, 60, zlib.crc32(bytes(b[64 : 64 + 16 * n]), zlib.crc32(b[:60])))
    return bytes(b)


@dataclasses.dataclass(frozen=True)
class SectionEditor:
    """Edits of one valid blob of a kind whose sections are named by ``section_names``
    (kind -> name): the recommender corpora's helpers."""

    section_names: dict[int, str]
    blob: bytes

    def edit(
        self, change=None, *, blob: bytes | None = None, tail: bytes = b"", **override: int
    ) -> bytes:
        """``blob`` (default: the editor's) split, changed by ``change(header, secs)``, rebuilt
        with ``override`` header fields and ``tail``."""
        header, secs = split(self.blob if blob is None else blob)
        if change is not None:
            change(header, secs)
        return build(header, secs, tail=tail, **override)

    def sec(self, name: str, secs: list[Sec]) -> Sec:
        """The section called ``name``."""
        kind = {v: k for k, v in self.section_names.items()}[name]
        return next(s for s in secs if s.kind == kind)

    def set_data(self, name: str, data: bytes):
        """A change that replaces section ``name``'s bytes."""

        def change(_h, secs):
            self.sec(name, secs).data = data

        return change

    def drop(self, name: str):
        """A change that removes section ``name``."""

        def change(_h, secs):
            secs.remove(self.sec(name, secs))

        return change


def error_of(blob: bytes) -> str:
    """The FormatError message of ``blob`` (anything else fails the test)."""
    with pytest.raises(FormatError) as exc:
        esb.decode(blob)
    msg = str(exc.value)
    assert SAFETY_NET not in msg, f"an unchecked path was reached: {msg}"
    assert "\n" not in msg
    return msg


def section(blob: bytes, name: str) -> tuple[int, int]:
    """(offset, length) of a section, from the table."""
    _, secs = split(blob)
    off = container.align(64 + 16 * len(secs))
    for s in secs:
        if s.kind == KIND[name]:
            return off, len(s.data)
        off = container.align(off + len(s.data))
    raise KeyError(name)


# ------------------------------------------------------------------------------------------
# Models
# ------------------------------------------------------------------------------------------
def ir_from_dense(w: np.ndarray, **kw) -> LinearIR:
    rows, cols = np.nonzero(w)
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=w.shape[0]))])
    kw.setdefault("bias", np.zeros(w.shape[0]))
    return LinearIR(
        indptr=indptr,
        indices=cols.astype(np.int32),
        values=w[rows, cols],
        n_features=w.shape[1],
        **kw,
    )


# Rows: [1, 3], [], [0, 2, 5] over 6 features; int8 per row; 3 string classes; softmax.
Q = np.array([[0, 95, 0, -127, 0, 0], [0, 0, 0, 0, 0, 0], [127, 0, 11, 0, 0, -42]], np.int8)
SCALES = np.array([0.0157, 1.0, 0.0236], np.float32)
INT8_IR = ir_from_dense(
    Q,
    head="softmax",
    classes=np.array(["ant", "bee", "cat"]),
    scales=SCALES,
    bias=np.array([0.5, -1.25, 0.1]),
    provenance={"source": "test"},
)
# The same pattern in float32 values with integer labels, hinge ("hard") head.
F32_IR = ir_from_dense(
    Q.astype(np.float32) / 8, head="hard", classes=np.array([-1, 0, 7]), bias=np.ones(3)
)
# A float64 regressor with two outputs (no classes section).
REG_IR = ir_from_dense(Q.astype(np.float64) / 3, head="identity", bias=np.ones(3), squeeze=False)
# INT8_IR with a power-of-two exponent per column (column 4 has no weights: exponent 0). Its
# 'exponents' section has one byte per feature (6) without a 'columns' section, one per used
# column (5: columns 0, 1, 2, 3, 5) with one.
EXPONENTS = np.array([1, -2, 3, 0, 0, 2], np.int8)
EXP_IR = INT8_IR.replace(col_exponents=EXPONENTS)


def blob_of(ir: LinearIR = INT8_IR, columns: str = "all", indices: str = "raw") -> bytes:
    return esb.encode(ir, columns=columns, indices=indices)


def edit(
    ir: LinearIR = INT8_IR,
    columns: str = "all",
    indices: str = "raw",
    *,
    change: Callable[[dict, list[Sec]], None] | None = None,
    tail: bytes = b"",
    **override: int,
) -> bytes:
    """Encode, apply ``change(header, sections)`` and header overrides, rebuild with CRCs."""
    header, secs = split(blob_of(ir, columns, indices))
    if change is not None:
        change(header, secs)
    return build(header, secs, tail=tail, **override)


def set_data(name: str, data: bytes, **entry: int) -> Callable[[dict, list[Sec]], None]:
    def change(header: dict, secs: list[Sec]) -> None:
        for s in secs:
            if s.kind == KIND[name]:
                s.data = data
                for k, v in entry.items():
                    setattr(s, k, v)

    return change


def set_entry(index: int, **entry: int) -> Callable[[dict, list[Sec]], None]:
    def change(header: dict, secs: list[Sec]) -> None:
        for k, v in entry.items():
            setattr(secs[index], k, v)

    return change


def add_exponents(data: bytes) -> Callable[[dict, list[Sec]], None]:
    """Append an 'exponents' section (the last kind) holding ``data``."""

    def change(header: dict, secs: list[Sec]) -> None:
        secs.append(Sec(KIND["exponents"], 0, data))

    return change


def uvarint(n: int) -> bytes:
    """Minimal LEB128."""
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def exceptions(
    default: int, exps: list[int], gaps: bytes | list[int], k: int | None = None
) -> bytes:
    """Encoding 1 of 'exponents': u32 k, i8 default, k i8 exponents, k varint gaps."""
    if not isinstance(gaps, bytes):
        gaps = b"".join(uvarint(g) for g in gaps)
    k = len(exps) if k is None else k
    return struct.pack("<Ib", k, default) + bytes(e & 0xFF for e in exps) + gaps


def set_exceptions(data: bytes) -> Callable[[dict, list[Sec]], None]:
    return set_data("exponents", data, enc=1)


# EXP_IR's exponents as exceptions to 0: columns 0, 1, 2, 5 (positions 0, 1, 2, 5 of all six
# features; 0, 1, 2, 4 of the column list 0, 1, 2, 3, 5).
EXC = exceptions(0, [1, -2, 3, 2], [0, 0, 0, 2])
EXC_COLS = exceptions(0, [1, -2, 3, 2], [0, 0, 0, 1])


def drop(name: str) -> Callable[[dict, list[Sec]], None]:
    def change(header: dict, secs: list[Sec]) -> None:
        secs[:] = [s for s in secs if s.kind != KIND[name]]

    return change


def both(*changes: Callable[[dict, list[Sec]], None]) -> Callable[[dict, list[Sec]], None]:
    def change(header: dict, secs: list[Sec]) -> None:
        for c in changes:
            c(header, secs)

    return change


def test_builder_reproduces_the_encoder_byte_for_byte() -> None:
    # The crafting tool must be a faithful writer, or the cases below test the tool.
    for ir in (INT8_IR, F32_IR, REG_IR):
        for cols, idx in [("all", "raw"), ("varint", "varint"), ("eliasfano", "bitmap")]:
            blob = blob_of(ir, cols, idx)
            assert build(*split(blob)) == blob
            assert reseal(blob) == blob


# Offsets in the INT8_IR blob with columns="all", indices="raw" (7 sections, table ends at 176).
ROWS_AT, INDICES_AT, VALUES_AT, SCALES_AT, BIAS_AT, CLASSES_AT, PROV_AT = (
    176,
    184,
    208,
    216,
    232,
    256,
    272,
)
F32_VALUES_AT = section(blob_of(F32_IR), "values")[0]
EXP_AT = section(blob_of(EXP_IR), "exponents")[0]
EXP_COLS_AT = section(blob_of(EXP_IR, "varint"), "exponents")[0]
F32_CLASSES_AT = section(blob_of(F32_IR), "classes")[0]
REG_VALUES_AT = section(blob_of(REG_IR), "values")[0]
# INT8_IR with row 2 raised to int16 (300 needs 16 bits): values encoding 1, "mixed widths".
MIX_IR = INT8_IR.replace(values=np.array([95, -127, 300, 11, -42], np.int16))
MIX_AT = section(blob_of(MIX_IR), "values")[0]
# Bitmap 0b100 (row 2 wide); row 0: i8 95, -127; row 2: i16 LE 300, 11, -42.
MIX = bytes([0x04, 0x5F, 0x81, 0x2C, 0x01, 0x0B, 0x00, 0xD6, 0xFF])
C = "corrupt .esb: "
MV = C + f"section 'values' at offset {MIX_AT}: "
F = "unsupported .esb version"
XA = C + f"section 'exponents' at offset {EXP_AT}: "
# 4097 classes (one more than linear.MAX_UNSORTED_CLASSES): they must be stored in increasing order.
BIG_IR = ir_from_dense(
    np.eye(4097, 2), head="hard", classes=np.arange(4097) * 3, bias=np.zeros(4097)
)
BIG_CLASSES_AT = section(blob_of(BIG_IR), "classes")[0]
XC = C + f"section 'exponents' at offset {EXP_COLS_AT}: "
U32, U64 = 2**32 - 1, 2**64 - 1
MIX_EXP_IR = MIX_IR.replace(col_exponents=EXPONENTS)


def mixed(bitmap: int, narrow: list[int], wide: list[int]) -> bytes:
    """A values section of encoding 1 for MIX_IR's rows: bitmap, row 0's i8, row 2's i16."""
    return bytes([bitmap]) + np.array(narrow, "i1").tobytes() + np.array(wide, "<i2").tobytes()


BAD_MIX_VALUE = (
    " is not allowed (stored values are never 0, -128 in an int8 row or -32768 in an int16 row)"
)
assert mixed(0b100, [95, -127], [300, 11, -42]) == MIX


def set_encoding(name: str, enc: int) -> Callable[[dict, list[Sec]], None]:
    def change(header: dict, secs: list[Sec]) -> None:
        for s in secs:
            if s.kind == KIND[name]:
                s.enc = enc

    return change


# ------------------------------------------------------------------------------------------
# The cases: (id, blob, exact message). Each builds its blob lazily (parametrize ids only).
# ------------------------------------------------------------------------------------------
CASES: list[tuple[str, Callable[[], bytes], str]] = [
    # -- header ------------------------------------------------------------------------------
    ("empty", lambda: b"", "not an .esb file: the file is empty"),
    (
        "magic-zip",
        lambda: b"PK\x03\x04" + blob_of()[4:],
        "not an .esb file: bad magic b'PK\\x03\\x04\\r\\n\\x1a\\n' at offset 0 "
        "(expected b'\\x89ESB\\r\\n\\x1a\\n')",
    ),
    (
        "magic-text-mode-crlf",
        lambda: blob_of().replace(b"\r\n", b"\n", 1),
        "not an .esb file: bad magic b'\\x89ESB\\n\\x1a\\n\\x01' at offset 0 "
        "(expected b'\\x89ESB\\r\\n\\x1a\\n')",
    ),
    (
        "version-2",
        lambda: edit(version=2),
        "unsupported .esb version 2 at offset 8 (this reader supports version 1, linear "
        "models; version 2 holds a k-NN recommender: load it with edgesparse.load)",
    ),
    (
        "version-3",
        lambda: edit(version=3),
        "unsupported .esb version 3 at offset 8 (this reader supports version 1; "
        "was the file written by a newer edgesparse?)",
    ),
    (
        "version-0-unsealed",
        lambda: blob_of()[:8] + b"\x00\x00" + blob_of()[10:],
        "unsupported .esb version 0 at offset 8 (this reader supports version 1; "
        "was the file written by a newer edgesparse?)",
    ),
    (
        "version-ffff",
        lambda: edit(version=0xFFFF),
        "unsupported .esb version 65535 at offset 8 (this reader supports version 1; "
        "was the file written by a newer edgesparse?)",
    ),
    (
        "header-truncated",
        lambda: blob_of()[:63],
        C + "truncated header at offset 0 (needs 64 bytes, file has 63)",
    ),
    (
        "header-size-128",
        lambda: edit(header_size=128),
        C + "header size field at offset 10 is 128, expected 64",
    ),
    (
        "n-sections-3",
        lambda: edit(n_sections=3),
        C + "section count at offset 12 is 3, expected 4 to 10",
    ),
    (
        "n-sections-11",
        lambda: edit(n_sections=11),
        C + "section count at offset 12 is 11, expected 4 to 10",
    ),
    (
        "n-sections-u32-max",
        lambda: edit(n_sections=U32),
        C + "section count at offset 12 is 4294967295, expected 4 to 10",
    ),
    (
        "table-truncated",
        lambda: blob_of()[:100],
        C + "truncated section table at offset 64 (needs 112 bytes, 36 left)",
    ),
    (
        "header-crc",
        lambda: edit(header_crc=0xDEADBEEF),
        C + "header checksum mismatch at offset 60 (stored 0xdeadbeef, computed "
        f"0x{zlib.crc32(blob_of()[64:176], zlib.crc32(blob_of()[:60])):08x} "
        "over the header and section table)",
    ),
    ("head-5", lambda: edit(head=5), C + "unknown head code 5 at offset 40"),
    ("head-255", lambda: edit(head=255), C + "unknown head code 255 at offset 40"),
    ("dtype-3", lambda: edit(value_dtype=3), C + "unknown value dtype code 3 at offset 41"),
    ("flags-0x80", lambda: edit(flags=0x81), C + "unknown flag bits 0x80 at offset 42"),
    (
        "flags-squeeze-clear-classifier",
        lambda: edit(flags=0),
        C + "flags at offset 42: squeeze must be set for a classifier (head 'softmax')",
    ),
    (
        "flags-squeeze-multi-output-regressor",
        lambda: edit(REG_IR, flags=1),
        C + "flags at offset 42: squeeze (1-D output) needs 1 output row, not 3",
    ),
    ("reserved-43", lambda: edit(reserved8=1), C + "reserved field at offset 43 is 1, expected 0"),
    (
        "reserved-44",
        lambda: edit(reserved32a=U32),
        C + "reserved field at offset 44 is 4294967295, expected 0",
    ),
    (
        "reserved-56",
        lambda: edit(reserved32b=7),
        C + "reserved field at offset 56 is 7, expected 0",
    ),
    ("n-outputs-0", lambda: edit(n_outputs=0), C + "n_outputs at offset 16 is 0"),
    (
        "n-features-0",
        lambda: edit(n_features=0),
        C + "n_features at offset 20 is 0, expected 1 to 2147483647",
    ),
    (
        "n-features-2^31",
        lambda: edit(n_features=2**31, n_columns=2**31),
        C + "n_features at offset 20 is 2147483648, expected 1 to 2147483647",
    ),
    (
        "n-columns-over-n-features",
        lambda: edit(n_columns=7),
        C + "n_columns at offset 32 is 7, more than n_features=6",
    ),
    (
        "nnz-u64-max",
        lambda: edit(nnz=U64),
        C + "nnz at offset 24 is 18446744073709551615, more than n_outputs x n_columns = 18",
    ),
    (
        # in 64-bit arithmetic 2^32-1 outputs x 2^32+1 ... wraps; Python ints do not
        "nnz-product-wraps-u64",
        lambda: edit(REG_IR, n_outputs=U32, n_features=2**31 - 1, n_columns=2**31 - 1, nnz=U64),
        C + "nnz at offset 24 is 18446744073709551615, more than n_outputs x n_columns = "
        f"{U32 * (2**31 - 1)}",
    ),
    (
        "n-classes-for-regressor",
        lambda: edit(REG_IR, n_classes=2),
        C + "n_classes at offset 36 is 2, but a regressor has none",
    ),
    (
        "n-classes-do-not-fit-outputs",
        lambda: edit(n_classes=2),
        C + "n_classes at offset 36 is 2, which does not fit n_outputs=3 for head 'softmax'",
    ),
    (
        "n-classes-1",
        lambda: edit(F32_IR, n_outputs=1, n_classes=1),
        C + "n_classes at offset 36 is 1, which does not fit n_outputs=1 for head 'hard'",
    ),
    # -- section table -----------------------------------------------------------------------
    (
        "kind-0",
        lambda: edit(change=set_entry(0, kind=0)),
        C + "section table entry 0 at offset 64: unknown section kind 0 "
        "(written by a newer edgesparse?)",
    ),
    (
        # 10 is 'text' and 11 'tabular', which the C runtime refuses by name (their tests)
        "kind-12",
        lambda: edit(change=set_entry(6, kind=12)),
        C + "section table entry 6 at offset 160: unknown section kind 12 "
        "(written by a newer edgesparse?)",
    ),
    (
        "kinds-out-of-order",
        lambda: edit(change=set_entry(2, kind=KIND["rows"])),
        C + "section table entry 2 at offset 96: section 'rows' is repeated or out of order",
    ),
    (
        "kind-repeated",
        lambda: edit(change=set_entry(2, kind=KIND["indices"])),
        C + "section table entry 2 at offset 96: section 'indices' is repeated or out of order",
    ),
    (
        "unknown-encoding",
        lambda: edit(change=set_entry(3, enc=1)),
        C + "section table entry 3 at offset 112: section 'scales' has unknown encoding 1",
    ),
    (
        "entry-reserved",
        lambda: edit(change=set_entry(1, reserved=0xFFFF)),
        C + "section table entry 1 at offset 80: reserved field is 65535, expected 0",
    ),
    (
        "section-unaligned",
        lambda: edit(change=set_entry(1, offset=INDICES_AT - 4)),
        C + f"section 'indices' at offset {INDICES_AT - 4} is not 8-byte aligned",
    ),
    (
        "sections-overlap",
        lambda: edit(change=set_entry(1, offset=ROWS_AT)),
        C + f"section 'indices' at offset {ROWS_AT} should start at offset {INDICES_AT} "
        "(sections are packed in table order, each 8-byte aligned)",
    ),
    (
        "section-hole",
        lambda: edit(change=set_entry(1, offset=INDICES_AT + 8)),
        C + f"section 'indices' at offset {INDICES_AT + 8} should start at offset {INDICES_AT} "
        "(sections are packed in table order, each 8-byte aligned)",
    ),
    (
        "section-inside-header",
        lambda: edit(change=set_entry(0, offset=0)),
        C + "section 'rows' at offset 0 should start at offset 176 "
        "(sections are packed in table order, each 8-byte aligned)",
    ),
    (
        "offset-u32-wraps",
        lambda: edit(change=set_entry(0, offset=0xFFFFFFF8)),
        C + "section 'rows' at offset 4294967288 should start at offset 176 "
        "(sections are packed in table order, each 8-byte aligned)",
    ),
    (
        # offset + length wraps to 4 in 32-bit arithmetic
        "length-u32-wraps",
        lambda: edit(change=set_entry(6, length=2**32 - PROV_AT + 4)),
        C + f"section 'provenance' at offset {PROV_AT} runs past the end of the file "
        f"(needs {2**32 - PROV_AT + 4} bytes, 17 left)",
    ),
    (
        "length-past-end",
        lambda: edit(change=set_entry(6, length=18)),
        C + f"section 'provenance' at offset {PROV_AT} runs past the end of the file "
        "(needs 18 bytes, 17 left)",
    ),
    (
        "length-shrunk",  # leaves the last byte of the file outside every section
        lambda: edit(change=set_entry(6, length=16)),
        C + f"1 trailing bytes after the last section (which ends at offset {PROV_AT + 16})",
    ),
    (
        "padding-nonzero",
        lambda: edit(change=set_data("rows", b"\x02\x00\x03\x00\x00\x00\x00\x01", length=3)),
        C + f"nonzero padding before section 'indices' at offset {ROWS_AT + 3}",
    ),
    (
        "trailing-bytes",
        lambda: edit(tail=b"\x00" * 8),
        C + f"8 trailing bytes after the last section (which ends at offset {PROV_AT + 17})",
    ),
    (
        "file-size-field",
        lambda: edit(file_size=289 + 2**32),
        C + "file size field at offset 48 says 4294967585 bytes, the file has 289",
    ),
    ("missing-bias", lambda: edit(change=drop("bias")), C + "required section 'bias' is missing"),
    (
        "missing-scales",
        lambda: edit(change=drop("scales")),
        C + "section 'scales' must be present exactly when values are int8 (value dtype at "
        "offset 41 is int8, 'scales' is missing)",
    ),
    (
        "scales-with-float-values",
        lambda: edit(value_dtype=1),
        C + "section 'scales' must be present exactly when values are int8 (value dtype at "
        "offset 41 is float32, 'scales' is present)",
    ),
    (
        "classes-missing",
        lambda: edit(change=drop("classes")),
        C + "section 'classes' must be present exactly when the head is a classifier (head at "
        "offset 40 is 'softmax', 'classes' is missing)",
    ),
    (
        "columns-missing",
        lambda: edit(n_columns=5),
        C + "n_columns at offset 32 is 5, but without a 'columns' section it must equal "
        "n_features=6",
    ),
    (
        "section-crc",
        lambda: edit(change=set_entry(4, crc=0)),
        C + f"checksum mismatch in section 'bias' at offset {BIAS_AT} (stored 0x00000000, "
        f"computed 0x{zlib.crc32(np.array([0.5, -1.25, 0.1]).tobytes()):08x})",
    ),
    # -- rows --------------------------------------------------------------------------------
    (
        "rows-too-few",
        lambda: edit(change=set_data("rows", b"\x02\x03")),
        C + f"section 'rows' at offset {ROWS_AT}: holds 2 numbers, expected 3 "
        "(one row length per output row)",
    ),
    (
        "rows-non-minimal-varint",
        lambda: edit(change=set_data("rows", b"\x82\x00\x00\x03")),
        C + f"section 'rows' at offset {ROWS_AT}: number at byte 0 is not minimally encoded "
        "(one row length per output row)",
    ),
    (
        "rows-varint-too-long",
        lambda: edit(change=set_data("rows", b"\x80\x80\x80\x80\x80\x01\x00\x03")),
        C + f"section 'rows' at offset {ROWS_AT}: number at byte 0 is longer than 5 bytes "
        "(one row length per output row)",
    ),
    (
        "rows-ends-mid-number",
        lambda: edit(change=set_data("rows", b"\x02\x00\x03\x80")),
        C + f"section 'rows' at offset {ROWS_AT}: ends in the middle of a number "
        "(one row length per output row)",
    ),
    (
        # indptr is the running sum of these counts, so it is monotone by construction; the
        # nearest corruption is a count that could not fit the row.
        "rows-count-over-columns",
        lambda: edit(change=set_data("rows", b"\x07\x00\x03")),
        C + f"section 'rows' at offset {ROWS_AT}: row 0 has 7 entries, but there are only "
        "6 columns",
    ),
    (
        "rows-sum-not-nnz",
        lambda: edit(change=set_data("rows", b"\x02\x01\x03")),
        C + f"section 'rows' at offset {ROWS_AT}: row lengths sum to 6, header nnz is 5",
    ),
    # -- indices -----------------------------------------------------------------------------
    (
        "indices-raw-short",
        lambda: edit(change=set_data("indices", struct.pack("<4i", 1, 3, 0, 2))),
        C + f"section 'indices' at offset {INDICES_AT} is 16 bytes, expected 20 "
        "(nnz=5 int32 column indices)",
    ),
    (
        "indices-negative",
        lambda: edit(change=set_data("indices", struct.pack("<5i", 1, 3, -1, 2, 5))),
        C + f"section 'indices' at offset {INDICES_AT}: column index -1 at position 2 is "
        "out of range [0, 6)",
    ),
    (
        "indices-int32-min",
        lambda: edit(change=set_data("indices", struct.pack("<5i", 1, 3, -(2**31), 2, 5))),
        C + f"section 'indices' at offset {INDICES_AT}: column index -2147483648 at position "
        "2 is out of range [0, 6)",
    ),
    (
        "indices-past-n-features",
        lambda: edit(change=set_data("indices", struct.pack("<5i", 1, 6, 0, 2, 5))),
        C + f"section 'indices' at offset {INDICES_AT}: column index 6 at position 1 is "
        "out of range [0, 6)",
    ),
    (
        "indices-unsorted",
        lambda: edit(change=set_data("indices", struct.pack("<5i", 3, 1, 0, 2, 5))),
        C + f"section 'indices' at offset {INDICES_AT}: column indices are not strictly "
        "increasing within a row at position 1",
    ),
    (
        "indices-duplicate",
        lambda: edit(change=set_data("indices", struct.pack("<5i", 1, 3, 0, 2, 2))),
        C + f"section 'indices' at offset {INDICES_AT}: column indices are not strictly "
        "increasing within a row at position 4",
    ),
    (
        "indices-varint-gap-out-of-range",
        lambda: edit(indices="varint", change=set_data("indices", b"\x01\x01\x00\x01\x06")),
        C + f"section 'indices' at offset {INDICES_AT}: column gap 6 at position 4 is out of "
        "range [0, 6)",
    ),
    (
        "indices-varint-sum-out-of-range",
        lambda: edit(indices="varint", change=set_data("indices", b"\x01\x01\x00\x01\x03")),
        C + f"section 'indices' at offset {INDICES_AT}: column index 6 at position 4 is out of "
        "range [0, 6)",
    ),
    (
        "indices-bitmap-rows-disagree",
        lambda: edit(indices="bitmap", change=set_data("indices", b"\x0a\x41\x02")),
        C + f"section 'indices' at offset {INDICES_AT}: row 1 has 1 entries, section 'rows' says 0",
    ),
    (
        "indices-bitmap-padding",
        lambda: edit(indices="bitmap", change=set_data("indices", b"\x0a\x50\x06")),
        C + f"section 'indices' at offset {INDICES_AT}: padding bits after bit 18 are not zero",
    ),
    (
        "columns-varint-out-of-range",
        lambda: edit(
            columns="varint", indices="raw", change=set_data("columns", b"\x00\x00\x00\x00\x02")
        ),
        C + "section 'columns' at offset 200: a used column lies outside [0, 6)",
    ),
    (
        "columns-eliasfano-duplicate",
        lambda: edit(
            columns="eliasfano",
            change=set_data("columns", codecs.ef_encode(np.array([0, 1, 2, 3, 3], np.uint64), 6)),
        ),
        C + "section 'columns' at offset 200: used columns are not strictly increasing at "
        "position 4",
    ),
    # -- values, scales, bias ----------------------------------------------------------------
    (
        "values-zero",
        lambda: edit(change=set_data("values", b"\x5f\x81\x00\x0b\xd6")),
        C + f"section 'values' at offset {VALUES_AT}: value 0 at position 2 is not allowed "
        "(stored values are never 0, NaN, Inf or -128)",
    ),
    (
        "values-minus-128",
        lambda: edit(change=set_data("values", b"\x5f\x80\x7f\x0b\xd6")),
        C + f"section 'values' at offset {VALUES_AT}: value -128 at position 1 is not allowed "
        "(stored values are never 0, NaN, Inf or -128)",
    ),
    (
        "values-nan",
        lambda: edit(
            F32_IR, change=set_data("values", np.array([1, 2, np.nan, 4, 5], "<f4").tobytes())
        ),
        C + f"section 'values' at offset {F32_VALUES_AT}: value nan at position 2 is not allowed "
        "(stored values are never 0, NaN, Inf or -128)",
    ),
    (
        "values-inf",
        lambda: edit(
            REG_IR, change=set_data("values", np.array([1, 2, 3, -np.inf, 5], "<f8").tobytes())
        ),
        C + f"section 'values' at offset {REG_VALUES_AT}: value -inf at position 3 is not allowed "
        "(stored values are never 0, NaN, Inf or -128)",
    ),
    (
        "values-length",
        lambda: edit(change=set_data("values", b"\x01" * 6)),
        C + f"section 'values' at offset {VALUES_AT} is 6 bytes, expected 5 (nnz=5 int8 values)",
    ),
    (
        "scales-nan",
        lambda: edit(change=set_data("scales", np.array([1, np.nan, 1], "<f4").tobytes())),
        C + f"section 'scales' at offset {SCALES_AT}: scale nan at position 1 must be finite "
        "and > 0",
    ),
    (
        "scales-inf",
        lambda: edit(change=set_data("scales", np.array([1, 1, np.inf], "<f4").tobytes())),
        C + f"section 'scales' at offset {SCALES_AT}: scale inf at position 2 must be finite "
        "and > 0",
    ),
    (
        "scales-zero",
        lambda: edit(change=set_data("scales", np.array([0, 1, 1], "<f4").tobytes())),
        C + f"section 'scales' at offset {SCALES_AT}: scale 0.0 at position 0 must be finite "
        "and > 0",
    ),
    (
        "scales-negative",
        lambda: edit(change=set_data("scales", np.array([1, -0.5, 1], "<f4").tobytes())),
        C + f"section 'scales' at offset {SCALES_AT}: scale -0.5 at position 1 must be finite "
        "and > 0",
    ),
    (
        "scales-negative-zero",
        lambda: edit(change=set_data("scales", np.array([1, -0.0, 1], "<f4").tobytes())),
        C + f"section 'scales' at offset {SCALES_AT}: scale -0.0 at position 1 must be finite "
        "and > 0",
    ),
    (
        "scales-count",
        lambda: edit(change=set_data("scales", np.ones(2, "<f4").tobytes())),
        C + f"section 'scales' at offset {SCALES_AT} is 8 bytes, expected 12 "
        "(3 per-row or 1 per-tensor float32 scales)",
    ),
    (
        "bias-nan",
        lambda: edit(change=set_data("bias", np.array([0, np.nan, 0], "<f8").tobytes())),
        C + f"section 'bias' at offset {BIAS_AT}: bias nan at position 1 is not finite",
    ),
    (
        # a signalling NaN: widening it to float64 raises numpy's "invalid" (no warning leaks)
        "bias-float32-signalling-nan",
        lambda: edit(change=set_data("bias", np.array([0, 0x7F800001, 0], "<u4").tobytes(), enc=1)),
        C + f"section 'bias' at offset {BIAS_AT}: bias nan at position 1 is not finite",
    ),
    (
        "bias-length",
        lambda: edit(change=set_data("bias", np.zeros(2, "<f8").tobytes())),
        C + f"section 'bias' at offset {BIAS_AT} is 16 bytes, expected 24 (3 float64 biases)",
    ),
    # -- classes, provenance -----------------------------------------------------------------
    (
        "classes-lengths-overrun",
        lambda: edit(change=set_data("classes", b"\x03\x03\x09antbeecat")),
        C + f"section 'classes' at offset {CLASSES_AT}: label lengths add up to 18 bytes, "
        "section has 12",
    ),
    (
        "classes-utf8",
        lambda: edit(change=set_data("classes", b"\x03\x03\x03ant\xffeecat")),
        C + f"section 'classes' at offset {CLASSES_AT}: label 1 at offset {CLASSES_AT + 6} is "
        "not valid UTF-8",
    ),
    (
        "classes-trailing-nul",  # numpy str arrays cannot hold it: "a\0" would become "a"
        lambda: edit(change=set_data("classes", b"\x03\x03\x03antbe\x00cat")),
        C + f"section 'classes' at offset {CLASSES_AT}: label 1 at offset {CLASSES_AT + 6} "
        "ends with a NUL character",
    ),
    (
        "classes-int-overflows-u64",
        lambda: edit(F32_IR, change=set_data("classes", b"\x01\x00" + b"\xff" * 9 + b"\x02")),
        f"{C}section 'classes' at offset {F32_CLASSES_AT}: a number overflows 64 bits "
        "(one label per class)",
    ),
    (
        "classes-float-length",
        lambda: edit(
            F32_IR,
            change=set_data("classes", np.zeros(2, "<f8").tobytes(), enc=1),
        ),
        f"{C}section 'classes' at offset {F32_CLASSES_AT} is 16 bytes, expected 24 "
        "(3 float64 labels)",
    ),
    (
        "provenance-not-json",
        lambda: edit(change=set_data("provenance", b'{"source":')),
        C + f"section 'provenance' at offset {PROV_AT}: not a valid JSON object (Expecting "
        "value: line 1 column 11 (char 10))",
    ),
    (
        "provenance-deep-nesting",
        lambda: edit(change=set_data("provenance", b"[" * 100_000 + b"]" * 100_000)),
        C + f"section 'provenance' at offset {PROV_AT}: not a valid JSON object "
        "(maximum recursion depth exceeded while decoding a JSON array from a unicode string)",
    ),
    (
        "provenance-60000-keys",  # the C verifier compares keys pairwise: their number is capped
        lambda: edit(
            change=set_data(
                "provenance",
                ("{" + ",".join(f'"k{i}":"v"' for i in range(60_000)) + "}").encode(),
            )
        ),
        C + f"section 'provenance' at offset {PROV_AT}: has more than 1024 keys",
    ),
    (
        "provenance-non-string",
        lambda: edit(change=set_data("provenance", b'{"source":1e999}')),
        C + f"section 'provenance' at offset {PROV_AT}: must be a JSON object of strings",
    ),
    # -- exponents ---------------------------------------------------------------------------
    (
        "exponents-with-float32-values",
        lambda: edit(F32_IR, change=add_exponents(bytes(6))),
        C + "section 'exponents' is only allowed with int8 values (value dtype at offset 41 "
        "is float32)",
    ),
    (
        "exponents-with-float64-values",
        lambda: edit(REG_IR, change=add_exponents(bytes(6))),
        C + "section 'exponents' is only allowed with int8 values (value dtype at offset 41 "
        "is float64)",
    ),
    (
        "exponents-unknown-encoding",
        lambda: edit(EXP_IR, change=set_entry(7, enc=2)),
        C + "section table entry 7 at offset 176: section 'exponents' has unknown encoding 2",
    ),
    (
        "exponents-one-per-used-column-without-columns",
        lambda: edit(EXP_IR, change=set_data("exponents", bytes([1, 254, 3, 0, 2]))),
        C + f"section 'exponents' at offset {EXP_AT} is 5 bytes, expected 6 "
        "(6 int8 column exponents (one per used column))",
    ),
    (
        "exponents-one-per-feature-with-columns",
        lambda: edit(EXP_IR, "varint", change=set_data("exponents", bytes([1, 254, 3, 0, 0, 2]))),
        C + f"section 'exponents' at offset {EXP_COLS_AT} is 6 bytes, expected 5 "
        "(5 int8 column exponents (one per used column))",
    ),
    (
        "exponents-empty",
        lambda: edit(EXP_IR, change=set_data("exponents", b"")),
        C + f"section 'exponents' at offset {EXP_AT} is 0 bytes, expected 6 "
        "(6 int8 column exponents (one per used column))",
    ),
    (
        "exponent-minus-127",
        lambda: edit(EXP_IR, change=set_data("exponents", bytes([1, 254, 0x81, 0, 0, 2]))),
        C + f"section 'exponents' at offset {EXP_AT}: exponent -127 at position 2 is outside "
        "[-126, 127]",
    ),
    (
        "exponent-minus-128-with-columns",
        lambda: edit(EXP_IR, "varint", change=set_data("exponents", bytes([1, 254, 3, 0, 0x80]))),
        C + f"section 'exponents' at offset {EXP_COLS_AT}: exponent -128 at position 4 is "
        "outside [-126, 127]",
    ),
    (
        "exponent-of-a-column-without-weights",
        lambda: edit(EXP_IR, change=set_data("exponents", bytes([1, 254, 3, 0, 5, 2]))),
        C + f"section 'exponents' at offset {EXP_AT}: column 4 has no weights but a nonzero "
        "exponent",
    ),
    (
        # the column list names 0, 1, 2, 3, 5; the indices stop using position 4 (column 5)
        "exponent-of-a-listed-column-without-weights",
        lambda: edit(
            EXP_IR,
            "varint",
            "raw",
            change=set_data("indices", np.array([1, 3, 0, 2, 3], "<i4").tobytes()),
        ),
        C + f"section 'exponents' at offset {EXP_COLS_AT}: column 5 has no weights but a "
        "nonzero exponent",
    ),
    (
        "exponent-of-an-empty-model",
        lambda: edit(
            EXP_IR,
            change=both(
                set_data("rows", b"\x00\x00\x00"),
                set_data("indices", b""),
                set_data("values", b""),
            ),
            nnz=0,
        ),
        # (the indices' 24 bytes and the values' 8 are gone)
        C + f"section 'exponents' at offset {EXP_AT - 32}: column 0 has no weights but a "
        "nonzero exponent",
    ),
    (
        # scale 0.0236 of row 2 (column 0) * 2^-126 is below float32's smallest normal
        "exponent-step-below-float32-normal",
        lambda: edit(EXP_IR, change=set_data("exponents", bytes([0x82, 254, 3, 0, 0, 2]))),
        C + "col_exponents: scale * 2^exponent leaves the float32 range for some weight",
    ),
    (
        # 127 * 0.0236 * 2^127 (row 2, column 0) is above float32's largest value
        "exponent-step-above-float32-max",
        lambda: edit(EXP_IR, change=set_data("exponents", bytes([127, 254, 3, 0, 0, 2]))),
        C + "col_exponents: scale * 2^exponent leaves the float32 range for some weight",
    ),
    (
        "exponent-step-per-tensor-scale",
        lambda: edit(
            EXP_IR,
            change=both(
                set_data("scales", np.array([1e-30], "<f4").tobytes()),
                set_data("exponents", bytes([1, 254, 3, 0xA0, 0, 2])),
            ),
        ),
        C + "col_exponents: scale * 2^exponent leaves the float32 range for some weight",
    ),
    (
        "exceptions-empty",
        lambda: edit(EXP_IR, change=set_exceptions(b"")),
        XA + "is 0 bytes, too short for its 5-byte count and default",
    ),
    (
        "exceptions-too-short-for-the-default",
        lambda: edit(EXP_IR, change=set_exceptions(bytes(4))),
        XA + "is 4 bytes, too short for its 5-byte count and default",
    ),
    (
        "exceptions-default-minus-127",
        lambda: edit(EXP_IR, change=set_exceptions(exceptions(-127, [], []))),
        XA + "default exponent -127 is outside [-126, 127]",
    ),
    (
        "exceptions-default-minus-128-with-columns",
        lambda: edit(EXP_IR, "varint", change=set_exceptions(exceptions(-128, [], []))),
        XC + "default exponent -128 is outside [-126, 127]",
    ),
    (
        "exceptions-more-than-columns",
        lambda: edit(EXP_IR, change=set_exceptions(exceptions(0, [1] * 7, [0] * 7))),
        XA + "lists 7 exceptions, but there are only 6 listed columns",
    ),
    (
        "exceptions-more-than-listed-columns",
        lambda: edit(EXP_IR, "varint", change=set_exceptions(exceptions(0, [1] * 6, [0] * 6))),
        XC + "lists 6 exceptions, but there are only 5 listed columns",
    ),
    (
        "exceptions-count-2-32-minus-1",
        lambda: edit(EXP_IR, change=set_exceptions(exceptions(0, [], [], k=U32))),
        XA + "lists 4294967295 exceptions, but there are only 6 listed columns",
    ),
    (
        "exceptions-too-short-for-the-exponents",
        lambda: edit(EXP_IR, change=set_exceptions(exceptions(0, [1, -2, 3], b"", k=4))),
        XA + "is 8 bytes, too short for 4 exception exponents",
    ),
    (
        "exceptions-too-short-for-the-exponents-with-columns",
        lambda: edit(EXP_IR, "varint", change=set_exceptions(exceptions(0, [], b"", k=5))),
        XC + "is 5 bytes, too short for 5 exception exponents",
    ),
    (
        "exceptions-missing-gap",
        lambda: edit(EXP_IR, change=set_exceptions(exceptions(0, [1, -2, 3, 2], [0, 0, 0]))),
        XA + "holds 3 numbers, expected 4 (one column gap per exception)",
    ),
    (
        "exceptions-gap-without-exceptions",
        lambda: edit(EXP_IR, change=set_exceptions(exceptions(0, [], [0]))),
        XA + "holds data but expects 0 numbers (one column gap per exception)",
    ),
    (
        "exceptions-gap-unterminated",
        lambda: edit(
            EXP_IR, change=set_exceptions(exceptions(0, [1, -2, 3, 2], bytes([0, 0, 0, 0, 0x80])))
        ),
        XA + "ends in the middle of a number (one column gap per exception)",
    ),
    (
        "exceptions-gap-not-minimal",
        lambda: edit(
            EXP_IR, change=set_exceptions(exceptions(0, [1, -2, 3, 2], bytes([0, 0, 0, 0x82, 0])))
        ),
        XA + "number at byte 3 is not minimally encoded (one column gap per exception)",
    ),
    (
        "exceptions-gap-longer-than-5-bytes",
        lambda: edit(
            EXP_IR,
            change=set_exceptions(
                exceptions(0, [1, -2, 3, 2], bytes([0, 0, 0, 0x80, 0x80, 0x80, 0x80, 0x80, 1]))
            ),
        ),
        XA + "number at byte 3 is longer than 5 bytes (one column gap per exception)",
    ),
    (
        "exceptions-position-beyond-the-features",
        lambda: edit(EXP_IR, change=set_exceptions(exceptions(0, [1, -2, 3, 2], [0, 0, 0, 3]))),
        XA + "exception 3 names column position 6, beyond the 6 listed",
    ),
    (
        "exceptions-position-beyond-the-column-list",
        lambda: edit(
            EXP_IR, "varint", change=set_exceptions(exceptions(0, [1, -2, 3, 2], [0, 0, 0, 2]))
        ),
        XC + "exception 3 names column position 5, beyond the 5 listed",
    ),
    (
        "exceptions-gap-overflow",
        lambda: edit(EXP_IR, change=set_exceptions(exceptions(0, [1, -2], [2**35 - 1, 2**35 - 1]))),
        XA + "exception 0 names column position 34359738367, beyond the 6 listed",
    ),
    (
        "exceptions-gaps-add-up-beyond",
        lambda: edit(EXP_IR, change=set_exceptions(exceptions(0, [1, -2, 3], [1, 1, 2]))),
        XA + "exception 2 names column position 6, beyond the 6 listed",
    ),
    (
        "exceptions-equal-to-the-default",
        lambda: edit(EXP_IR, change=set_exceptions(exceptions(-2, [1, -2, 3, 2], [0, 0, 0, 2]))),
        XA + "exception 1 has exponent -2: outside [-126, 127] or equal to the default -2",
    ),
    (
        "exceptions-minus-127",
        lambda: edit(EXP_IR, change=set_exceptions(exceptions(0, [1, -2, -127, 2], [0, 0, 0, 2]))),
        XA + "exception 2 has exponent -127: outside [-126, 127] or equal to the default 0",
    ),
    (
        "exceptions-minus-128-with-columns",
        lambda: edit(
            EXP_IR, "varint", change=set_exceptions(exceptions(0, [1, -2, 3, -128], [0, 0, 0, 1]))
        ),
        XC + "exception 3 has exponent -128: outside [-126, 127] or equal to the default 0",
    ),
    (
        "exceptions-on-a-column-without-weights",
        lambda: edit(
            EXP_IR, change=set_exceptions(exceptions(0, [1, -2, 3, 5, 2], [0, 0, 0, 1, 0]))
        ),
        XA + "column 4 has no weights but an exception exponent",
    ),
    (
        "exceptions-on-a-listed-column-without-weights",
        lambda: edit(
            EXP_IR,
            "varint",
            "raw",
            change=both(
                set_data("indices", np.array([1, 3, 0, 2, 3], "<i4").tobytes()),
                set_exceptions(EXC_COLS),
            ),
        ),
        XC + "column 5 has no weights but an exception exponent",
    ),
    (
        "exceptions-default-step-above-float32-max",
        lambda: edit(EXP_IR, change=set_exceptions(exceptions(127, [], []))),
        C + "col_exponents: scale * 2^exponent leaves the float32 range for some weight",
    ),
    (
        "exceptions-step-below-float32-normal-with-columns",
        lambda: edit(EXP_IR, "varint", change=set_exceptions(exceptions(0, [-126], [0]))),
        C + "col_exponents: scale * 2^exponent leaves the float32 range for some weight",
    ),
    # -- the arithmetic the fields feed: finite and > 0 is not enough --------------------------
    (
        "scale-at-float32-max-per-row",
        lambda: edit(change=set_data("scales", np.array([0.0157, 3.4e38, 1], "<f4").tobytes())),
        C + "scales: some scale * 127 overflows float32 (largest int8 weight)",
    ),
    (
        "scale-just-above-float32-max-over-127-per-tensor",
        lambda: edit(change=set_data("scales", np.array([2.7e36], "<f4").tobytes())),
        C + "scales: some scale * 127 overflows float32 (largest int8 weight)",
    ),
    (
        "scale-times-127-overflows-where-scale-times-2e-times-127-does-not",
        lambda: edit(
            EXP_IR,
            change=both(
                set_data("scales", np.array([3e36, 1, 0.0236], "<f4").tobytes()),
                set_data("exponents", np.array([1, -2, 3, -1, 0, 2], "i1").tobytes()),
            ),
        ),
        C + "scales: some scale * 127 overflows float32 (largest int8 weight)",
    ),
    (
        "float64-bias-beyond-float32-in-an-int8-model",
        lambda: edit(change=set_data("bias", np.array([0, 1e39, 0], "<f8").tobytes(), enc=0)),
        C + "bias: some bias overflows float32 (the arithmetic of this model)",
    ),
    (
        "float64-bias-beyond-float32-in-a-float32-model",
        lambda: edit(
            F32_IR, change=set_data("bias", np.array([-1e300, 0, 0], "<f8").tobytes(), enc=0)
        ),
        C + "bias: some bias overflows float32 (the arithmetic of this model)",
    ),
    # -- values encoding 1: int8 rows and a few int16 ("wide") rows --------------------------
    (
        "mixed-section-one-byte-long",
        lambda: edit(MIX_IR, change=set_data("values", MIX + b"\x01")),
        C + f"section 'values' at offset {MIX_AT} is 10 bytes, expected 9 (1-byte wide-row "
        "bitmap, then nnz=5 values of which 3 are int16)",
    ),
    (
        "mixed-int8-row-sized-as-int16",  # row 0 marked wide too: 2 more bytes expected
        lambda: edit(MIX_IR, change=set_data("values", mixed(0b101, [95, -127], [300, 11, -42]))),
        C + f"section 'values' at offset {MIX_AT} is 9 bytes, expected 11 (1-byte wide-row "
        "bitmap, then nnz=5 values of which 5 are int16)",
    ),
    (
        "mixed-zero-in-an-int8-row-before-a-bad-int16",
        lambda: edit(
            MIX_IR, change=set_data("values", mixed(0b100, [0, -127], [300, -32768, -42]))
        ),
        MV + "value 0 at position 0" + BAD_MIX_VALUE,
    ),
    (
        "mixed-empty-row-marked-int16",  # same length: the empty row 1 adds no bytes
        lambda: edit(MIX_IR, change=set_data("values", mixed(0b110, [95, -127], [300, 11, -42]))),
        MV + "row 1 is marked int16 but all its values fit int8",
    ),
    (
        # row 0 (int8) overflows at 127 steps, row 2 (int16) at 32767: the int8 check first
        "mixed-int8-row-scale-overflow-reported-before-int16",
        lambda: edit(MIX_IR, change=set_data("scales", np.array([3e36, 1, 1e35], "<f4").tobytes())),
        C + "scales: some scale * 127 overflows float32 (largest int8 weight)",
    ),
    (
        # 0.0236 * 2^120 * 127 is a float32, * 32767 is not (row 2, column 0)
        "mixed-step-times-32767-overflows-with-exponents",
        lambda: edit(MIX_EXP_IR, change=set_data("exponents", bytes([120, 254, 3, 0, 0, 2]))),
        C + "col_exponents: scale * 2^exponent leaves the float32 range for some weight",
    ),
    # -- labels that would make every prediction wrong ------------------------------------------
    (
        "classes-nan-label",
        lambda: edit(
            F32_IR, change=set_data("classes", np.array([-1, np.nan, 7], "<f8").tobytes(), enc=1)
        ),
        C + "classes: label 1 is NaN",
    ),
    (
        "classes-minus-zero-repeats-zero",
        lambda: edit(
            F32_IR, change=set_data("classes", np.array([0.0, 1, -0.0], "<f8").tobytes(), enc=1)
        ),
        C + "classes: label 2 repeats label 0 (labels must be distinct)",
    ),
    (
        "classes-repeated-int",
        lambda: edit(
            F32_IR, change=set_data("classes", codecs.zigzag_encode(np.array([-1, 7, 7])))
        ),
        C + "classes: label 2 repeats label 1 (labels must be distinct)",
    ),
    (
        "classes-repeated-string",
        lambda: edit(change=set_data("classes", codecs.strings_encode([b"ant", b"bee", b"ant"]))),
        C + "classes: label 2 repeats label 0 (labels must be distinct)",
    ),
    (
        "classes-many-not-increasing",
        lambda: edit(
            BIG_IR,
            change=set_data(
                "classes", codecs.zigzag_encode(np.r_[np.arange(4000), 3999, np.arange(4001, 4097)])
            ),
        ),
        C + f"section 'classes' at offset {BIG_CLASSES_AT}: label 4000 is not greater than "
        "label 3999 (more than 4096 labels must be in increasing order)",
    ),
    (
        "classes-many-strings-not-increasing",
        lambda: edit(
            BIG_IR,
            change=set_data(
                "classes",
                codecs.strings_encode([b"b", b"a", *(b"c%05d" % i for i in range(4095))]),
                enc=2,
            ),
        ),
        C + f"section 'classes' at offset {BIG_CLASSES_AT}: label 1 is not greater than "
        "label 0 (more than 4096 labels must be in increasing order)",
    ),
    # -- values encoding 1: mixed int8 / int16 rows ---------------------------------------
    (
        "mixed-bitmap-padding",
        lambda: edit(MIX_IR, change=set_data("values", b"\x0c" + MIX[1:])),
        C + f"section 'values' at offset {MIX_AT}: wide-row bitmap has bits set past n_outputs=3",
    ),
    (
        "mixed-no-wide-row",
        lambda: edit(MIX_IR, change=set_data("values", b"\x00" + MIX[1:])),
        MV + "mixed widths with no wide row (such a file uses encoding 0)",
    ),
    (
        "mixed-shorter-than-bitmap",
        lambda: edit(MIX_IR, change=set_data("values", b"")),
        MV + "is 0 bytes, shorter than its 1-byte wide-row bitmap",
    ),
    (
        "mixed-short",
        lambda: edit(MIX_IR, change=set_data("values", MIX[:-1])),
        C + f"section 'values' at offset {MIX_AT} is 8 bytes, expected 9 (1-byte wide-row "
        "bitmap, then nnz=5 values of which 3 are int16)",
    ),
    (
        "mixed-minus-128-in-int8-row",
        lambda: edit(MIX_IR, change=set_data("values", MIX[:2] + b"\x80" + MIX[3:])),
        MV + "value -128 at position 1 is not allowed (stored values are never 0, "
        "-128 in an int8 row or -32768 in an int16 row)",
    ),
    (
        "mixed-minus-32768",
        lambda: edit(MIX_IR, change=set_data("values", MIX[:3] + b"\x00\x80" + MIX[5:])),
        MV + "value -32768 at position 2 is not allowed (stored values are never 0, "
        "-128 in an int8 row or -32768 in an int16 row)",
    ),
    (
        "mixed-zero-in-int16-row",
        lambda: edit(MIX_IR, change=set_data("values", MIX[:5] + b"\x00\x00" + MIX[7:])),
        MV + "value 0 at position 3 is not allowed (stored values are never 0, "
        "-128 in an int8 row or -32768 in an int16 row)",
    ),
    (
        "mixed-int16-row-fits-int8",
        lambda: edit(MIX_IR, change=set_data("values", MIX[:3] + b"\x64\x00" + MIX[5:])),
        MV + "row 2 is marked int16 but all its values fit int8",
    ),
    (
        "mixed-on-float-values",
        lambda: edit(F32_IR, change=set_data("values", MIX, enc=1)),
        C + f"section 'values' at offset {F32_VALUES_AT}: mixed int8/int16 widths need value "
        "dtype int8",
    ),
    (
        "mixed-tensor-scale",
        lambda: edit(MIX_IR, change=set_data("scales", np.float32([0.5]).tobytes())),
        MV + "int16 rows need one scale per row, 'scales' has 1",
    ),
    (
        "mixed-scale-times-32767-overflows",
        lambda: edit(MIX_IR, change=set_data("scales", np.float32([0.0157, 1.0, 1e35]).tobytes())),
        C + "scales: some scale * 32767 overflows float32 (largest int16 weight)",
    ),
]


def test_labels_repeated_or_nan_are_refused_by_the_ir() -> None:
    with pytest.raises(IRError, match=r"^classes: label 1 repeats label 0 \(labels must be"):
        INT8_IR.replace(classes=np.array(["ant", "ant", "cat"]))
    with pytest.raises(IRError, match=r"^classes: label 0 is NaN$"):
        F32_IR.replace(classes=np.array([np.nan, 0.0, 1.0]))


def test_provenance_key_cap_in_the_encoder_and_at_the_limit() -> None:
    at_limit = {f"k{i}": "v" for i in range(1024)}
    assert dict(esb.decode(blob_of(INT8_IR.replace(provenance=at_limit))).provenance) == at_limit
    with pytest.raises(FormatError, match=r"^cannot encode: provenance has more than 1024 keys$"):
        esb.encode(INT8_IR.replace(provenance={**at_limit, "one more": "v"}))


def test_many_unsorted_labels_cannot_be_encoded() -> None:
    with pytest.raises(FormatError, match="more than 4096 class labels must be in increasing"):
        esb.encode(BIG_IR.replace(classes=np.arange(4097)[::-1]))
    assert esb.decode(blob_of(BIG_IR)).classes.tolist() == (np.arange(4097) * 3).tolist()


@pytest.mark.parametrize(("blob_fn", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_malformed_case_exact_message(blob_fn: Callable[[], bytes], message: str) -> None:
    blob = blob_fn()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the error is the whole answer: no warning besides it
        assert error_of(blob) == message


def test_exceptions_decode_like_one_exponent_per_column() -> None:
    # encoding 1 of the same exponents, with and without a column list: the same model
    for columns, data in (("all", EXC), ("varint", EXC_COLS)):
        ir = esb.decode(edit(EXP_IR, columns, change=set_exceptions(data)))
        np.testing.assert_array_equal(ir.col_exponents, EXPONENTS)


def test_there_are_at_least_40_distinct_cases() -> None:
    assert len({c[0] for c in CASES}) == len(CASES) >= 40
    assert len({c[2] for c in CASES}) >= 40  # distinct messages, not one check 40 times


# ------------------------------------------------------------------------------------------
# Exhaustive families
# ------------------------------------------------------------------------------------------
LAYOUTS = [
    (INT8_IR, "all", "raw"),
    (INT8_IR, "varint", "varint"),
    (INT8_IR, "eliasfano", "eliasfano"),
    (F32_IR, "bitmap", "bitmap"),
    (REG_IR, "auto", "auto"),
    (EXP_IR, "all", "raw"),
    (EXP_IR, "varint", "bitmap"),
]


@pytest.mark.parametrize(("ir", "cols", "idx"), LAYOUTS)
def test_every_truncation_prefix_names_what_is_missing(ir, cols, idx) -> None:
    blob = blob_of(ir, cols, idx)
    _, secs = split(blob)
    table_end = 64 + 16 * len(secs)
    for n in range(len(blob)):
        msg = error_of(blob[:n])
        if n == 0:
            assert msg == "not an .esb file: the file is empty"
        elif n < 64:
            assert msg == f"{C}truncated header at offset 0 (needs 64 bytes, file has {n})"
        elif n < table_end:
            assert msg.startswith(f"{C}truncated section table at offset 64 (needs ")
        else:  # a section runs past the end, or the last one now ends short
            assert "runs past the end of the file" in msg, (n, msg)


@pytest.mark.parametrize("field", [f for f in HEADER_FIELDS if f not in ("magic", "header_crc")])
def test_bit_flips_in_every_header_field_are_named(field: str) -> None:
    """Flip each bit of the field and reseal: the error must name an offset (of the field, or
    of a section whose size the field determines), never slip through or crash. A flip that
    still describes a valid model (more features than the used-column list mentions) must
    decode to a model whose own encoding is exactly these bytes."""
    blob = blob_of(INT8_IR, "varint", "varint")
    at, fmt = FIELD_AT[field]
    size = struct.calcsize(fmt)
    accepted = []
    for bit in range(8 * size):
        b = bytearray(blob)
        b[at + bit // 8] ^= 1 << (bit % 8)
        sealed = reseal(bytes(b))
        try:
            ir = esb.decode(sealed)
        except FormatError as exc:
            msg = str(exc)
            assert SAFETY_NET not in msg and ("at offset" in msg or "version" in msg), msg
            continue
        assert esb.encode(ir, columns="varint", indices="varint") == sealed
        accepted.append(bit)
    # Only these can be valid: a wider n_features (the used-column list still says which
    # ones have weights) and another classifier head (softmax 3 -> logistic 2 or hard 1).
    if field == "n_features":
        assert accepted and all(6 ^ (1 << bit) > 6 for bit in accepted)
    elif field == "head":
        assert accepted == [0, 1]
    else:
        assert accepted == [], (field, accepted)


def test_bit_flips_everywhere_without_reseal_are_caught() -> None:
    """Every single-bit flip anywhere in the file is rejected (CRCs or the structure)."""
    for ir, cols, idx in LAYOUTS:
        blob = blob_of(ir, cols, idx)
        for pos in range(len(blob)):
            for bit in range(8):
                b = bytearray(blob)
                b[pos] ^= 1 << bit
                error_of(bytes(b))


# ------------------------------------------------------------------------------------------
# Hypothesis properties
# ------------------------------------------------------------------------------------------
PROPS = settings(
    max_examples=200, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck)
)


@st.composite
def irs(draw) -> LinearIR:
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    head = draw(st.sampled_from(["identity", "hard", "logistic", "softmax", "modified_huber"]))
    if head == "identity":
        n_out = draw(st.integers(1, 5))
    else:  # binary (one row) or 3-4 classes; softmax is multiclass only
        n_out = draw(st.sampled_from([3, 4] if head == "softmax" else [1, 3, 4]))
    # Up to the format's limit: a huge, empty feature space must still round-trip cheaply.
    n_feat = draw(st.sampled_from([1, 2, 7, 64, 1000, 2**20, 2**31 - 1]))
    nnz_row = draw(st.integers(0, min(n_feat, 12)))
    dtype = draw(st.sampled_from(["float64", "float32", "int8", "int16"]))
    indptr = [0]
    cols: list[np.ndarray] = []
    for _ in range(n_out):
        k = int(rng.integers(0, nnz_row + 1))
        c = np.unique(rng.integers(0, n_feat, size=k))
        cols.append(c)
        indptr.append(indptr[-1] + c.size)
    nnz = indptr[-1]
    kw: dict = {}
    if dtype == "int16":
        # Some rows wide (each with one value past the int8 range), the others int8-sized.
        rows = np.repeat(np.arange(n_out), np.diff(indptr))
        wide = rng.random(n_out) < 0.5
        top = np.where(wide[rows], 32768, 128)
        values = (rng.integers(1, top) * rng.choice([-1, 1], nnz)).astype(np.int16)
        for r in np.flatnonzero(wide & (np.diff(indptr) > 0)):
            values[indptr[r]] = 1000 + r
        kw["scales"] = rng.uniform(1e-6, 10, n_out).astype(np.float32)
    elif dtype == "int8":
        values = rng.integers(1, 128, nnz) * rng.choice([-1, 1], nnz)
        values = values.astype(np.int8)
        per_row = draw(st.booleans())
        kw["scales"] = rng.uniform(1e-6, 10, n_out if per_row else 1).astype(np.float32)
        if n_feat <= 1000 and draw(st.booleans()):  # one exponent per feature
            kw["col_exponents"] = rng.integers(-40, 41, n_feat).astype(np.int8)
    else:
        values = rng.normal(size=nnz).astype(dtype)
        values[values == 0] = 1
    if head != "identity":
        n_cls = 2 if n_out == 1 else n_out
        kind = draw(st.sampled_from(["int", "float", "str"]))
        if kind == "int":
            kw["classes"] = rng.choice([-(2**63), -1, 0, 2**63 - 1, 5, 99], n_cls, replace=False)
        elif kind == "float":
            kw["classes"] = np.array([-np.inf, -0.5, 1e300, 3.0][:n_cls] + [9.0] * (n_cls - 4))
        else:
            labels = draw(st.lists(st.text(min_size=1, max_size=4), min_size=n_cls, max_size=n_cls))
            kw["classes"] = np.array([f"{t}\x01{i}" for i, t in enumerate(labels)])
    else:
        kw["squeeze"] = n_out == 1 and draw(st.booleans())
    try:
        return LinearIR(
            indptr=np.array(indptr),
            indices=(np.concatenate(cols) if cols else np.zeros(0)).astype(np.int32),
            values=values,
            n_features=n_feat,
            bias=rng.normal(size=n_out),
            head=head,
            provenance={"k": draw(st.text(max_size=5))},
            **kw,
        )
    except UnicodeEncodeError:  # pragma: no cover - surrogates in labels are filtered below
        raise


def _encodable(ir: LinearIR) -> bool:
    texts = [*dict(ir.provenance).values()]
    if ir.classes is not None and ir.classes.dtype.kind == "U":
        texts += ir.classes.tolist()
    try:
        for t in texts:
            t.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@PROPS
@given(
    ir=irs(),
    cols=st.sampled_from(["auto", "all", "varint", "eliasfano"]),
    idx=st.sampled_from(["auto", "raw", "varint", "eliasfano"]),
)
def test_property_encode_decode_round_trip(ir: LinearIR, cols: str, idx: str) -> None:
    if not _encodable(ir):
        with pytest.raises(FormatError, match="not valid Unicode"):
            esb.encode(ir)
        return
    blob = esb.encode(ir, columns=cols, indices=idx)
    got = esb.decode(blob)
    for name in ("indptr", "indices", "values", "bias"):
        assert np.array_equal(getattr(got, name), getattr(ir, name)), name
        want = getattr(ir, name).dtype
        if name == "values" and want == np.int16 and not ir.wide_rows.any():
            want = np.dtype(np.int8)  # int16 rows that all fit int8 are written as int8
        assert getattr(got, name).dtype == want, name
    assert (got.n_features, got.head, got.squeeze) == (ir.n_features, ir.head, ir.squeeze)
    assert dict(got.provenance) == dict(ir.provenance)
    if ir.scales is not None:
        assert np.array_equal(got.scales, ir.scales)
    if ir.col_exponents is None:
        assert got.col_exponents is None
    else:
        assert np.array_equal(got.col_exponents, ir.col_exponents)
    if ir.classes is not None:
        assert got.classes.tolist() == ir.classes.tolist()
    assert esb.encode(got, columns=cols, indices=idx) == blob  # canonical: one file per model
    assert len(blob) <= 2000 + 12 * ir.nnz  # no size blow-up from the feature count


@PROPS
@given(data=st.binary(max_size=600))
def test_property_any_bytes_only_format_error(data: bytes) -> None:
    for candidate in (data, esb.MAGIC + b"\x01\x00" + data):
        try:
            esb.decode(candidate)
        except FormatError as exc:
            assert SAFETY_NET not in str(exc)


INTERESTING = [0, 1, 2, 3, 7, 8, 63, 64, 255, 2**15, 2**31 - 1, 2**31, 2**32 - 1]


@PROPS
@given(
    layout=st.sampled_from(LAYOUTS),
    fields=st.dictionaries(
        st.sampled_from(["n_outputs", "n_features", "nnz", "n_columns", "n_classes"]),
        st.sampled_from(INTERESTING),
        max_size=3,
    ),
    entry=st.tuples(
        st.integers(0, 7),
        st.sampled_from(["offset", "length", "enc", "kind"]),
        st.sampled_from(INTERESTING),
    ),
    junk=st.binary(max_size=24),
    where=st.integers(0, 10**6),
)
def test_property_resealed_field_edits_only_format_error(layout, fields, entry, junk, where):
    """Structured corruption with valid CRCs: header counts, table entries and section bytes
    take boundary values (0, 2^31, 2^32-1...), so the decoder's own checks must catch it."""
    ir, cols, idx = layout
    header, secs = split(blob_of(ir, cols, idx))
    i, key, value = entry
    if i < len(secs):
        if key in ("enc", "kind"):
            value &= 0xFF
        setattr(secs[i], key, value)
        if junk:
            d = bytearray(secs[i].data)
            pos = where % (len(d) + 1)
            d[pos : pos + len(junk)] = junk
            secs[i].data = bytes(d)
    override = {k: v for k, v in fields.items()}
    blob = build(header, secs, **override)
    try:
        got = esb.decode(blob)
    except FormatError as exc:
        assert SAFETY_NET not in str(exc)
        return
    assert esb.decode(esb.encode(got)).nnz == got.nnz


# ------------------------------------------------------------------------------------------
# Memory: header counts never size an allocation
# ------------------------------------------------------------------------------------------
def test_huge_counts_allocate_nothing() -> None:
    import tracemalloc

    blobs = [
        edit(REG_IR, n_outputs=U32, n_features=2**31 - 1, n_columns=2**31 - 1, nnz=2**40),
        edit(REG_IR, indices="bitmap", n_features=2**31 - 1, n_columns=2**31 - 1),
        edit(REG_IR, indices="eliasfano", n_features=2**31 - 1, n_columns=2**31 - 1),
        edit(columns="bitmap", n_features=2**31 - 1),
        edit(change=set_data("provenance", b" " * 10 + b'"' + b"a" * 100)),
    ]
    tracemalloc.start()
    try:
        for blob in blobs:
            error_of(blob)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 256 * 1024


# ------------------------------------------------------------------------------------------
# The atheris target, briefly and deterministically (the long run is documented in SECURITY.md)
# ------------------------------------------------------------------------------------------
# libFuzzer ends the process with C exit(), so Python's atexit never runs: the driver writes
# the count of inputs the target checked after each one, and the test reads that instead of
# libFuzzer's own summary line (its wording is not ours to pin).
ATHERIS_DRIVER = """
import importlib.util, os, sys
spec = importlib.util.spec_from_file_location("fuzz_esb", sys.argv[1])
fuzz = importlib.util.module_from_spec(spec)
spec.loader.exec_module(fuzz)
fd, n, check = os.open(sys.argv[2], os.O_WRONLY | os.O_CREAT), 0, fuzz.test_one_input
def counted(data):
    global n
    check(data)
    n += 1
    os.pwrite(fd, b"%d\\n" % n, 0)
fuzz.test_one_input = counted
fuzz.main([sys.argv[1], *sys.argv[3:]])
"""


def test_atheris_short_run(tmp_path: Path) -> None:
    try:
        import atheris  # noqa: F401
    except ImportError:
        pytest.skip("atheris has wheels for x86_64 Linux only (pyproject dev extra)")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    count = tmp_path / "checked"
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            ATHERIS_DRIVER,
            str(ROOT / "fuzz" / "fuzz_esb.py"),
            str(count),
            "-runs=20000",
            "-seed=12345",
            "-rss_limit_mb=2048",
            "-timeout=10",
            str(tmp_path / "corpus"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert int(count.read_text()) >= 20000, proc.stderr[-3000:]


def test_file_larger_than_the_format_allows_is_not_read(tmp_path: Path) -> None:
    from edgesparse.errors import ModelFileError

    big = tmp_path / "huge.esb"
    with open(big, "wb") as fh:
        fh.truncate(5 << 30)  # sparse: no disk space, and never read
    with pytest.raises(ModelFileError) as info:
        esb.read(big)
    assert str(info.value) == (
        f".esb file {big} is {5 << 30} bytes, more than the limit of 4294967295 bytes; a .esb "
        "file is at most 4 GiB (32-bit offsets), so this is not one"
    )


def test_mixed_widths_base_blob_and_its_valid_edge_cases() -> None:
    """The mixed-width cases above edit a blob laid out as they assume; the same edits just
    inside the limits are valid: -128 in an int16 row (it does not fit int8: that row is
    rightly wide), a scale that only an int8 row can hold, the exponent step an int8 row can
    hold."""
    _, secs = split(blob_of(MIX_IR))
    (values,) = [s for s in secs if s.kind == KIND["values"]]
    assert (values.enc, values.data) == (1, MIX)
    ir = esb.decode(blob_of(MIX_IR))
    np.testing.assert_array_equal(ir.values, MIX_IR.values)
    np.testing.assert_array_equal(ir.wide_rows, [False, False, True])
    edge = esb.decode(
        edit(MIX_IR, change=set_data("values", mixed(4, [95, -127], [-128, 11, 200])))
    )
    assert edge.values.tolist() == [95, -127, -128, 11, 200]
    big = np.array([1.1e34, 1, 0.0236], "<f4")
    assert esb.decode(edit(MIX_IR, change=set_data("scales", big.tobytes()))).scales[0] == big[0]
    exps = esb.decode(edit(MIX_EXP_IR, change=set_data("exponents", bytes([3, 120, 3, 0, 0, 2]))))
    assert exps.col_exponents[1] == 120
