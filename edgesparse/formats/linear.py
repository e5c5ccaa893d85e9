"""The linear-model payload of the ``.esb`` container (version 1): a :class:`LinearIR`.

The byte layout is specified in ``docs/FORMAT.md``; this module is its reference implementation
(the container itself is :mod:`edgesparse.formats.container`). In short::

    header fields      counts, head, value dtype, flags
    sections           rows, columns?, indices, values, scales?, bias, classes?, provenance?,
                       exponents?, text? (the text input stage: formats/linear_text.py),
                       tabular? (the tabular input stage: formats/linear_tabular.py)

Column indices are stored in whichever of a few layouts is smallest for the model at hand
(:mod:`edgesparse.formats.linear_pattern`). Values always stay in canonical CSR order, so a
reader can use the values array in place.

:func:`decode` checks every count, offset, length, checksum and CSR invariant against the
buffer before it uses it, never allocates more than a small multiple of the file size, and
raises :class:`~edgesparse.errors.FormatError` (and nothing else) for any malformed input.

Imports only numpy and the standard library: the on-device runtime uses this module.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from edgesparse.errors import FormatError, IRError
from edgesparse.formats.codecs import (
    decode_provenance,
    decode_sorted,
    encode_provenance,
    strings_decode,
    strings_encode,
    varint_decode,
    varint_encode,
    zigzag_decode,
    zigzag_encode,
)
from edgesparse.formats.container import (
    LINEAR_VERSION,
    MAX_U32,
    BlobKind,
    SectionLayout,
    assemble,
    check_section_crcs,
    corrupt,
    corrupt_section,
    parse_guarded,
    read_header,
    read_table,
    section_access,
)
from edgesparse.formats.linear_pattern import (
    COLUMN_ENCODINGS,
    INDEX_ENCODINGS,
    decode_indices,
    encode_pattern,
)
from edgesparse.formats.linear_values import (
    ENC_MIXED,
    VALUE_DTYPE_NAMES,
    VALUE_DTYPES,
    decode_exponents,
    decode_mixed_values,
    decode_raw_values,
    encode_exponents,
    encode_values,
)
from edgesparse.ir import HEADS, LinearIR

if TYPE_CHECKING:
    from edgesparse.ir.tabular import TabularFeaturizer
    from edgesparse.ir.text import TextFeaturizer

# The input stages' codecs (and IR) are imported when a model has one: loading a blob without
# one needs neither (process memory on the device, issue 19). Their encoding codes, as
# linear_text.TEXT_ENCODINGS and linear_tabular.TABULAR_ENCODINGS say (a test checks).
_TEXT_ENCODINGS = {0: "hashing", 1: "vocabulary"}
_TABULAR_ENCODINGS = {0: "columns"}

__all__ = [
    "COLUMN_ENCODINGS",
    "INDEX_ENCODINGS",
    "MAX_UNSORTED_CLASSES",
    "SECTION_NAMES",
    "VERSION",
    "decode",
    "encode",
    "verify",
]

VERSION = LINEAR_VERSION
"""The format version of linear models (the only one this module writes and reads)."""

FLAG_SQUEEZE = 0x01

# Section kinds, in the order they must appear in the table.
ROWS, COLUMNS, INDICES, VALUES, SCALES, BIAS, CLASSES, PROVENANCE, EXPONENTS, TEXT = range(1, 11)
TABULAR = 11
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
    TEXT: "text",
    TABULAR: "tabular",
}
_REQUIRED = (ROWS, INDICES, VALUES, BIAS)

ENCODINGS: dict[int, dict[int, str]] = {
    ROWS: {1: "varint"},
    COLUMNS: COLUMN_ENCODINGS,
    INDICES: INDEX_ENCODINGS,
    VALUES: {0: "raw", ENC_MIXED: "mixed-int8-int16"},
    SCALES: {0: "float32"},
    BIAS: {0: "float64", 1: "float32"},
    CLASSES: {0: "int-zigzag-varint", 1: "float64", 2: "utf8"},
    PROVENANCE: {0: "json"},
    EXPONENTS: {0: "int8", 1: "exceptions"},
    TEXT: _TEXT_ENCODINGS,
    TABULAR: _TABULAR_ENCODINGS,
}
"""Encoding codes per section kind (code -> name)."""

# 'text' and 'tabular' exclude each other (a model has one input stage): at most 10 sections.
_LAYOUT = SectionLayout(SECTION_NAMES, ENCODINGS, _REQUIRED, max_sections=len(SECTION_NAMES) - 1)
_CLS_INT, _CLS_FLOAT, _CLS_STR = 0, 1, 2
_U64 = np.uint64


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
    col_enc, col_bytes, n_cols, idx_enc, idx_bytes = encode_pattern(
        ir, columns=columns, indices=indices
    )
    sections: list[tuple[int, int, bytes]] = [(ROWS, 1, varint_encode(counts))]
    if col_enc is not None:
        sections.append((COLUMNS, col_enc, col_bytes))
    sections.append((INDICES, idx_enc, idx_bytes))
    dtype_code, values_enc, values_bytes = encode_values(ir)
    sections.append((VALUES, values_enc, values_bytes))
    if ir.scales is not None:
        sections.append((SCALES, 0, ir.scales.astype("<f4").tobytes()))
    sections.append((BIAS, *_encode_bias(ir.bias)))
    n_classes = 0
    if ir.classes is not None:
        n_classes = int(ir.classes.size)
        sections.append((CLASSES, *_encode_classes(ir.classes)))
    if ir.provenance:
        sections.append((PROVENANCE, 0, encode_provenance(ir.provenance)))
    if ir.col_exponents is not None:
        sections.append((EXPONENTS, *encode_exponents(ir, listed=col_enc is not None)))
    if ir.featurizer is not None:
        sections.append(_stage_section(ir))

    flags = FLAG_SQUEEZE if ir.squeeze else 0
    head_code = HEADS.index(ir.head)
    fields = (n_out, n_feat, nnz, n_cols, n_classes, head_code, dtype_code, flags, 0, 0)
    return assemble(VERSION, sections, fields)


def _stage_section(ir: LinearIR) -> tuple[int, int, bytes]:
    """The ``text`` or ``tabular`` section of a model with an input stage."""
    from edgesparse.ir.text import TextFeaturizer

    if isinstance(ir.featurizer, TextFeaturizer):
        from edgesparse.formats.linear_text import encode_text

        return (TEXT, *encode_text(ir.featurizer, used=np.unique(ir.indices)))
    from edgesparse.formats.linear_tabular import encode_tabular

    return (TABULAR, *encode_tabular(ir.featurizer))


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
    total = hdr.file_size
    classes = None if ir.classes is None else ir.classes.tolist()
    info: dict[str, Any] = {
        "format": f".esb version {hdr.version}",
        "bytes": total,
        "shape": f"{ir.n_outputs} x {ir.n_features}",
        "n_outputs": ir.n_outputs,
        "n_features": ir.n_features,
        "nnz": ir.nnz,
        "density": round(ir.nnz / (ir.n_outputs * ir.n_features), 6),
        "bytes_per_nonzero": round(total / ir.nnz, 4) if ir.nnz else None,
        # As stored: a mixed-width blob holds int8 values with some int16 rows.
        "values": "int8" if ir.values.dtype == np.int16 else str(ir.values.dtype),
        "quantization": ir.quantization,
        **({"int16_rows": int(ir.wide_rows.sum())} if ir.values.dtype == np.int16 else {}),
        "head": ir.head,
        "n_classes": 0 if ir.classes is None else int(ir.classes.size),
        "classes": classes if classes is None or len(classes) <= 20 else [*classes[:20], "..."],
        "used_columns": hdr.n_cols,
        "index_layout": (
            f"columns={secs['columns']['encoding'] if 'columns' in secs else 'all'}, "
            f"indices={secs['indices']['encoding']}"
        ),
        "sections": secs,
        "checksums": "OK",
        "provenance": dict(ir.provenance),
    }
    if ir.featurizer is not None:
        info["featurizer"] = ir.featurizer.describe()
    return info


def _encode_bias(bias: np.ndarray) -> tuple[int, bytes]:
    """float32 (encoding 1) when that is exact, else float64 (0)."""
    with np.errstate(over="ignore"):
        bias32 = bias.astype(np.float32)
    if np.array_equal(bias32.astype(np.float64), bias):
        return 1, bias32.astype("<f4").tobytes()
    return 0, bias.astype("<f8").tobytes()


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
        return _CLS_INT, zigzag_encode(classes.astype(np.int64))
    if classes.dtype.kind == "f":
        return _CLS_FLOAT, classes.astype("<f8").tobytes()
    try:
        raw = [str(s).encode("utf-8") for s in classes.tolist()]
    except UnicodeEncodeError:
        raise FormatError("cannot encode: a class label is not valid Unicode") from None
    return _CLS_STR, strings_encode(raw)


def _decode_classes(sec: tuple[int, int, np.ndarray], n: int, need: Any) -> np.ndarray:
    enc, off, b = sec
    where = f"section 'classes' at offset {off}"
    labels: Any
    if enc == _CLS_FLOAT:
        need(CLASSES, 8 * n, f"{n} float64 labels")
        labels = np.frombuffer(b, dtype="<f8").astype(np.float64)
    elif enc == _CLS_INT:
        zig, err = varint_decode(b, n, 10)
        if err:
            corrupt(f"{where}: {err} (one label per class)")
        labels = zigzag_decode(zig)
    else:
        # numpy's str arrays drop trailing NULs: "a\0" would silently become "a"
        labels = strings_decode(b, n, "classes", off, "label", nul_ok=False)
    if n > MAX_UNSORTED_CLASSES:
        i = _labels_increasing(labels if isinstance(labels, list) else labels.tolist())
        if i:
            corrupt(
                f"{where}: label {i} is not greater than label {i - 1} (more than "
                f"{MAX_UNSORTED_CLASSES} labels must be in increasing order)"
            )
    return labels if not isinstance(labels, list) else np.array(labels, dtype=str)


# ----------------------------------------------------------------------------------------
# Decoding
# ----------------------------------------------------------------------------------------
class _Header(NamedTuple):
    """The version-1 header fields, checked."""

    version: int
    n_sec: int
    n_out: int
    n_feat: int
    nnz: int
    n_cols: int
    n_classes: int
    head: str
    dtype_code: int
    flags: int
    file_size: int

    @property
    def is_int8(self) -> bool:
        return self.dtype_code == 2


def _parse(buf: bytes | bytearray | memoryview) -> tuple[LinearIR, _Header, dict]:
    return parse_guarded(_parse_bytes, buf)


def _check_header(fields: tuple) -> _Header:
    """Check the version-1 header fields, in byte order, then how they fit together."""
    _, version, _, n_sec, n_out, n_feat, nnz, n_cols, n_classes = fields[:9]
    head_code, dtype_code, flags, res8, res32a, file_size, res32b = fields[9:16]
    if head_code >= len(HEADS):
        corrupt(f"unknown head code {head_code} at offset 40")
    if dtype_code >= len(VALUE_DTYPES):
        corrupt(f"unknown value dtype code {dtype_code} at offset 41")
    if flags & ~FLAG_SQUEEZE:
        corrupt(f"unknown flag bits 0x{flags & ~FLAG_SQUEEZE:02x} at offset 42")
    for off, val in ((43, res8), (44, res32a), (56, res32b)):
        if val:
            corrupt(f"reserved field at offset {off} is {val}, expected 0")
    if n_out < 1:
        corrupt("n_outputs at offset 16 is 0")
    if not 1 <= n_feat <= 0x7FFFFFFF:
        corrupt(f"n_features at offset 20 is {n_feat}, expected 1 to 2147483647")
    if n_cols > n_feat:
        corrupt(f"n_columns at offset 32 is {n_cols}, more than n_features={n_feat}")
    if nnz > n_out * n_cols:
        corrupt(f"nnz at offset 24 is {nnz}, more than n_outputs x n_columns = {n_out * n_cols}")
    head = HEADS[head_code]
    _check_head(head, n_out, n_classes, flags)
    return _Header(
        version, n_sec, n_out, n_feat, nnz, n_cols, n_classes, head, dtype_code, flags, file_size
    )


def _check_head(head: str, n_out: int, n_classes: int, flags: int) -> None:
    """The class count and squeeze flag a head allows."""
    if head == "identity":
        if n_classes:
            corrupt(f"n_classes at offset 36 is {n_classes}, but a regressor has none")
        if flags & FLAG_SQUEEZE and n_out != 1:
            corrupt(f"flags at offset 42: squeeze (1-D output) needs 1 output row, not {n_out}")
        return
    # Classifiers always have 1-D scores for one output row; the writer always sets the
    # bit, and accepting it clear would give one model two encodings.
    if not flags & FLAG_SQUEEZE:
        corrupt(f"flags at offset 42: squeeze must be set for a classifier (head {head!r})")
    expected_rows = 1 if n_classes == 2 else n_classes
    if n_classes < 2 or n_out != expected_rows:
        corrupt(
            f"n_classes at offset 36 is {n_classes}, which does not fit "
            f"n_outputs={n_out} for head {head!r}"
        )


def _check_presence(secs: dict[int, Any], hdr: _Header) -> None:
    """The optional sections the header fields call for, and no others."""
    dtype_name = VALUE_DTYPE_NAMES[hdr.dtype_code]
    if (SCALES in secs) != hdr.is_int8:
        corrupt(
            "section 'scales' must be present exactly when values are int8 (value dtype at "
            f"offset 41 is {dtype_name}, 'scales' is "
            f"{'present' if SCALES in secs else 'missing'})"
        )
    if (CLASSES in secs) != (hdr.head != "identity"):
        corrupt(
            "section 'classes' must be present exactly when the head is a classifier (head at "
            f"offset 40 is {hdr.head!r}, 'classes' is "
            f"{'present' if CLASSES in secs else 'missing'})"
        )
    if TEXT in secs and TABULAR in secs:
        corrupt("sections 'text' and 'tabular' are both present; a model has one input stage")
    if EXPONENTS in secs and not hdr.is_int8:
        corrupt(
            "section 'exponents' is only allowed with int8 values (value dtype at offset 41 "
            f"is {dtype_name})"
        )
    if COLUMNS not in secs and hdr.n_cols != hdr.n_feat:
        corrupt(
            f"n_columns at offset 32 is {hdr.n_cols}, but without a 'columns' section it "
            f"must equal n_features={hdr.n_feat}"
        )


def _decode_rows(sec: tuple[int, int, np.ndarray], hdr: _Header) -> np.ndarray:
    """Row lengths: one varint per output row, each at most n_columns, summing to nnz."""
    _, off, b = sec
    n_cols = hdr.n_cols
    counts, err = varint_decode(b, hdr.n_out, 5)
    if err:
        corrupt_section("rows", off, f"{err} (one row length per output row)")
    if counts.size and int(counts.max()) > n_cols:
        r = int(np.argmax(counts > n_cols))
        corrupt_section(
            "rows",
            off,
            f"row {r} has {int(counts[r])} entries, but there are only {n_cols} columns",
        )
    total = int(counts.sum(dtype=_U64))
    if total != hdr.nnz:
        corrupt_section("rows", off, f"row lengths sum to {total}, header nnz is {hdr.nnz}")
    return counts


def _decode_scales(sec: tuple[int, int, np.ndarray], need: Callable, n_out: int) -> np.ndarray:
    """One float32 scale per row, or one for the tensor; each finite and > 0."""
    _, off, b = sec
    if len(b) not in (4, 4 * n_out):
        need(SCALES, 4 * n_out, f"{n_out} per-row or 1 per-tensor float32 scales")
    scales = np.frombuffer(b, dtype="<f4").astype(np.float32)
    bad = ~(np.isfinite(scales) & (scales > 0))
    if np.any(bad):
        p = int(np.argmax(bad))
        corrupt_section(
            "scales", off, f"scale {float(scales[p])!r} at position {p} must be finite and > 0"
        )
    return scales


def _decode_bias(sec: tuple[int, int, np.ndarray], need: Callable, n_out: int) -> np.ndarray:
    enc, off, b = sec
    width = 8 if enc == 0 else 4
    need(BIAS, width * n_out, f"{n_out} {ENCODINGS[BIAS][enc]} biases")
    raw = np.frombuffer(b, dtype="<f8" if enc == 0 else "<f4")
    # Checked before widening: a float32 signalling NaN raises numpy's "invalid" in the cast.
    finite = np.isfinite(raw)
    if not finite.all():
        p = int(np.argmax(~finite))
        shown = "nan" if np.isnan(raw[p]) else "inf" if raw[p] > 0 else "-inf"
        corrupt_section("bias", off, f"bias {shown} at position {p} is not finite")
    return raw.astype(np.float64)


def _decode_weights(
    section: Callable, need: Callable, hdr: _Header, counts: np.ndarray
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Values, scales (int8 only) and bias."""
    values_enc, values_off, b = section(VALUES)
    if values_enc == ENC_MIXED:
        if not hdr.is_int8:
            corrupt_section("values", values_off, "mixed int8/int16 widths need value dtype int8")
        values = decode_mixed_values(b, values_off, counts, partial(need, VALUES))
    else:
        values = decode_raw_values(b, values_off, hdr.dtype_code, hdr.nnz, partial(need, VALUES))
    scales = _decode_scales(section(SCALES), need, hdr.n_out) if hdr.is_int8 else None
    if values_enc == ENC_MIXED and scales is not None and scales.size != hdr.n_out:
        corrupt_section(
            "values", values_off, f"int16 rows need one scale per row, 'scales' has {scales.size}"
        )
    return values, scales, _decode_bias(section(BIAS), need, hdr.n_out)


def _decode_extras(
    section: Callable,
    need: Callable,
    secs: dict[int, Any],
    hdr: _Header,
    used: np.ndarray | None,
    indices: np.ndarray,
) -> tuple[np.ndarray | None, dict[str, str], np.ndarray | None]:
    """The optional classes, provenance and column exponents, in table order."""
    classes = None
    if CLASSES in secs:
        classes = _decode_classes(section(CLASSES), hdr.n_classes, need)
    provenance: dict[str, str] = {}
    if PROVENANCE in secs:
        _, off, b = section(PROVENANCE)
        provenance = decode_provenance(b.tobytes(), off)
    exponents = None
    if EXPONENTS in secs:
        exponents = decode_exponents(
            section(EXPONENTS),
            partial(need, EXPONENTS),
            used=used,
            n_cols=hdr.n_cols,
            n_feat=hdr.n_feat,
            indices=indices,
        )
    return classes, provenance, exponents


def _parse_bytes(data: bytes) -> tuple[LinearIR, _Header, dict]:
    hdr = _check_header(read_header(data, reader=BlobKind.ESB_LINEAR, layout=_LAYOUT))
    secs, info = read_table(data, n_sec=hdr.n_sec, file_size=hdr.file_size, layout=_LAYOUT)
    _check_presence(secs, hdr)
    check_section_crcs(data, hdr.n_sec, SECTION_NAMES)
    section, need = section_access(data, secs, SECTION_NAMES)

    counts = _decode_rows(section(ROWS), hdr)
    indptr = np.zeros(hdr.n_out + 1, dtype=np.int64)
    np.cumsum(counts.astype(np.int64), out=indptr[1:])
    used: np.ndarray | None = None
    if COLUMNS in secs:
        enc, off, b = section(COLUMNS)
        used = decode_sorted(b, enc, hdr.n_cols, hdr.n_feat, off, "columns", "used column")
    local = decode_indices(
        section(INDICES),
        partial(need, INDICES),
        counts=counts,
        indptr=indptr,
        n_cols=hdr.n_cols,
        nnz=hdr.nnz,
    )
    # int32 from here (the IR's type): a column below n_features < 2^31.
    indices = local.astype(np.int32) if used is None else used.astype(np.int32)[local]
    del local
    values, scales, bias = _decode_weights(section, need, hdr, counts)

    classes, provenance, exponents = _decode_extras(section, need, secs, hdr, used, indices)
    featurizer: TextFeaturizer | TabularFeaturizer | None = None
    if TEXT in secs:
        from edgesparse.formats.linear_text import decode_text

        featurizer = decode_text(section(TEXT), partial(need, TEXT), n_features=hdr.n_feat)
    if TABULAR in secs:
        from edgesparse.formats.linear_tabular import decode_tabular

        featurizer = decode_tabular(section(TABULAR), partial(need, TABULAR), n_features=hdr.n_feat)
    try:
        ir = LinearIR(
            indptr=indptr,
            indices=indices,
            values=values,
            n_features=hdr.n_feat,
            bias=bias,
            head=hdr.head,
            classes=classes,
            scales=scales,
            squeeze=bool(hdr.flags & FLAG_SQUEEZE),
            provenance=provenance,
            col_exponents=exponents,
            featurizer=featurizer,
        )
    except IRError as exc:
        raise FormatError(f"corrupt .esb: {exc}") from None
    return ir, hdr, info
