"""The ``tabular`` section of a linear ``.esb`` blob: the model's tabular input stage
(:class:`~edgesparse.ir.tabular.TabularFeaturizer`), as ``docs/FORMAT.md`` specifies it.

Encoding 0 (``columns``), little-endian::

    0   u32  n_inputs        cells per record, 1 <= n_inputs <= 2^20
    4   u32  n_columns       output column records, >= 1
    8   u32  n_features      equal to the header's (the records' widths add up to it)
    12  u32  names_bytes     bytes of the name block (0: records are read by position only)
    16  u32  body_bytes      bytes of the column records
    20  u32  reserved        0
    24  names                n_inputs varint lengths, then UTF-8, distinct; names_bytes exactly
        column records       n_columns records filling body_bytes exactly; the section ends there

A column record is a flags byte (1 categorical, 2 imputed, 4 unknown categories ignored; 4 only
with 1), the input position (varint, < n_inputs), then with flag 2 the missing marker (f64, NaN
or finite) and the fill value (f64, finite, for a numeric column; a value, see below, for a
categorical one); then a numeric column's scale and offset (f64 each, finite), or a categorical
column's category count (varint, >= 1), ``drop + 1`` (varint, 0 for none, at most the count;
not 1 of 1) and its categories (values, pairwise unequal). A value is a tag byte and its data:
0 None; 1 an integer (i64); 2 a float (f64); 3 a string (varint length, then UTF-8).

Imports only numpy and the standard library: the on-device runtime uses this module.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from typing import Any, NoReturn

import numpy as np

from edgesparse.errors import IRError
from edgesparse.formats.container import corrupt_section
from edgesparse.ir.tabular import MAX_INPUTS, TabularColumn, TabularFeaturizer

__all__ = ["TABULAR_ENCODINGS", "decode_tabular", "encode_tabular"]

TABULAR_ENCODINGS = {0: "columns"}
"""Encoding codes of the ``tabular`` section."""

_FIXED = struct.Struct("<IIIIII")
_CATEGORICAL, _IMPUTED, _IGNORE = 1, 2, 4
_KNOWN_FLAGS = 7
_NONE, _INT, _FLOAT, _STR = 0, 1, 2, 3
_NAME = "tabular"
_F64 = struct.Struct("<d")
_I64 = struct.Struct("<q")


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _value(v: Any) -> bytes:
    if v is None:
        return bytes([_NONE])
    if isinstance(v, str):
        raw = v.encode("utf-8")
        return bytes([_STR]) + _varint(len(raw)) + raw
    if isinstance(v, int):
        return bytes([_INT]) + _I64.pack(v)
    return bytes([_FLOAT]) + _F64.pack(v)


def _strings(items: list[str]) -> bytes:
    raw = [s.encode("utf-8") for s in items]
    return b"".join(_varint(len(r)) for r in raw) + b"".join(raw)


def _record(col: TabularColumn) -> bytes:
    flags = (_CATEGORICAL if col.categories is not None else 0) | (_IMPUTED if col.impute else 0)
    flags |= _IGNORE if col.unknown == "ignore" else 0
    out = bytearray([flags]) + _varint(col.source)
    if col.impute:
        out += _F64.pack(col.missing)
        out += _F64.pack(col.fill) if col.categories is None else _value(col.fill)
    if col.categories is None:
        out += _F64.pack(col.scale) + _F64.pack(col.offset)
        return bytes(out)
    out += _varint(len(col.categories)) + _varint(col.drop + 1)
    out += b"".join(_value(c) for c in col.categories)
    return bytes(out)


def encode_tabular(feat: TabularFeaturizer) -> tuple[int, bytes]:
    """(encoding, bytes) of the ``tabular`` section for ``feat``."""
    names = _strings(list(feat.names)) if feat.names is not None else b""
    body = b"".join(_record(c) for c in feat.columns)
    fixed = _FIXED.pack(feat.n_inputs, len(feat.columns), feat.n_features, len(names), len(body), 0)
    return 0, fixed + names + body


class _Reader:
    """A cursor over the section's bytes: every read checks the bytes are there first."""

    def __init__(self, data: bytes, off: int, start: int, end: int) -> None:
        self.data, self.off, self.pos, self.end = data, off, start, end

    def fail(self, msg: str) -> NoReturn:
        corrupt_section(_NAME, self.off, msg)

    def take(self, n: int, what: str) -> bytes:
        if n > self.end - self.pos:
            self.fail(
                f"{what} at offset {self.off + self.pos} needs {n} bytes, "
                f"{self.end - self.pos} left"
            )
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def varint(self, what: str) -> int:
        at, value = self.off + self.pos, 0
        for i in range(5):
            (byte,) = self.take(1, what)
            value |= (byte & 0x7F) << (7 * i)
            if not byte & 0x80:
                if i and byte == 0:
                    self.fail(f"{what} at offset {at} is not a minimal varint")
                if value > 0xFFFFFFFF:
                    break
                return value
        self.fail(f"{what} at offset {at} is not a varint below 2^32")

    def f64(self, what: str) -> float:
        at = self.off + self.pos
        (v,) = _F64.unpack(self.take(8, what))
        return self._finite(v, what, at)

    def _finite(self, v: float, what: str, at: int) -> float:
        if not math.isfinite(v):
            self.fail(f"{what} at offset {at} is not finite")
        return float(v)

    def marker(self, what: str) -> float:
        at = self.off + self.pos
        (v,) = _F64.unpack(self.take(8, what))
        return v if math.isnan(v) else self._finite(v, what, at)

    def text(self, what: str) -> str:
        at = self.off + self.pos
        n = self.varint(what + " length")
        try:
            return self.take(n, what).decode("utf-8")
        except UnicodeDecodeError:
            self.fail(f"{what} at offset {at} is not valid UTF-8")

    def value(self, what: str) -> Any:
        at = self.off + self.pos
        (tag,) = self.take(1, what)
        if tag == _NONE:
            return None
        if tag == _INT:
            return _I64.unpack(self.take(8, what))[0]
        if tag == _FLOAT:
            return _F64.unpack(self.take(8, what))[0]
        if tag == _STR:
            return self.text(what)
        self.fail(f"{what} at offset {at} has unknown tag {tag}")


def decode_tabular(
    sec: tuple[int, int, np.ndarray], need: Callable[[int, str], None], *, n_features: int
) -> TabularFeaturizer:
    """The featurizer in a ``tabular`` section, every length and code checked before use."""
    _, off, b = sec
    if b.size < _FIXED.size:
        need(_FIXED.size, "the tabular stage's 24-byte fixed fields")
    n_in, n_cols, n_feat, names_bytes, body_bytes, reserved = _FIXED.unpack_from(
        b[: _FIXED.size].tobytes()
    )
    bad = None
    if reserved:
        bad = f"reserved field at offset {off + 20} is {reserved}, expected 0"
    elif not 1 <= n_in <= MAX_INPUTS:
        bad = f"n_inputs {n_in} at offset {off} is not in [1, {MAX_INPUTS}]"
    elif n_feat != n_features:
        bad = f"n_features {n_feat} at offset {off + 8} differs from the header's {n_features}"
    elif n_cols < 1 or 2 * n_cols > body_bytes:
        bad = f"{n_cols} column records at offset {off + 4} cannot take {body_bytes} bytes"
    elif names_bytes and names_bytes < n_in:
        bad = f"{n_in} names cannot take {names_bytes} bytes (offset {off + 12})"
    if bad is not None:
        corrupt_section(_NAME, off, bad)
    need(
        _FIXED.size + names_bytes + body_bytes,
        f"24 bytes, {names_bytes} of names and {body_bytes} of column records",
    )
    data = b.tobytes()
    names = None
    if names_bytes:
        names = _names(_Reader(data, off, _FIXED.size, _FIXED.size + names_bytes), n_in)
    reader = _Reader(data, off, _FIXED.size + names_bytes, len(data))
    cols = [_column(reader, i, n_in) for i in range(n_cols)]
    if reader.pos != reader.end:
        reader.fail(f"{reader.end - reader.pos} bytes follow the last column record")
    try:
        feat = TabularFeaturizer(n_inputs=n_in, columns=tuple(cols), names=names)
    except IRError as exc:
        corrupt_section(_NAME, off, str(exc))
    if feat.n_features != n_feat:
        corrupt_section(
            _NAME, off, f"the column records make {feat.n_features} features, not {n_feat}"
        )
    return feat


def _names(reader: _Reader, n: int) -> tuple[str, ...]:
    lengths = [reader.varint(f"name {i} length") for i in range(n)]
    names = []
    for i, length in enumerate(lengths):
        at = reader.off + reader.pos
        try:
            names.append(reader.take(length, f"name {i}").decode("utf-8"))
        except UnicodeDecodeError:
            reader.fail(f"name {i} at offset {at} is not valid UTF-8")
    if reader.pos != reader.end:
        reader.fail(f"the names take {reader.pos - _FIXED.size} bytes, not names_bytes")
    if len(set(names)) != n:
        reader.fail("a column name is repeated")
    return tuple(names)


def _column(r: _Reader, i: int, n_in: int) -> TabularColumn:
    at = r.off + r.pos
    what = f"column record {i}"
    (flags,) = r.take(1, what)
    if flags & ~_KNOWN_FLAGS or (flags & _IGNORE and not flags & _CATEGORICAL):
        r.fail(f"{what} at offset {at} has flags 0x{flags:02x}")
    source = r.varint(f"{what}'s input position")
    if source >= n_in:
        r.fail(f"{what} at offset {at} reads input {source}, not below n_inputs={n_in}")
    fields: dict[str, Any] = {"source": source}
    categorical = bool(flags & _CATEGORICAL)
    if flags & _IMPUTED:
        fields.update(impute=True, missing=r.marker(f"{what}'s missing marker"))
        fields["fill"] = r.value(f"{what}'s fill") if categorical else r.f64(f"{what}'s fill")
    if not categorical:
        fields.update(scale=r.f64(f"{what}'s scale"), offset=r.f64(f"{what}'s offset"))
    else:
        n_cat = r.varint(f"{what}'s category count")
        if not 1 <= n_cat <= r.end - r.pos:
            r.fail(f"{what} at offset {at}: {n_cat} categories cannot fit in the bytes left")
        drop = r.varint(f"{what}'s drop") - 1
        if drop >= n_cat:
            r.fail(f"{what} at offset {at} drops category {drop} of {n_cat}")
        cats = tuple(r.value(f"{what}'s category {k}") for k in range(n_cat))
        fields.update(categories=cats, drop=drop, unknown="ignore" if flags & _IGNORE else "error")
    try:
        return TabularColumn(**fields)
    except IRError as exc:
        r.fail(f"{what} at offset {at}: {exc}")
