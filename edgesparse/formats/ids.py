"""Raw user and item ids in ``.esb`` recommender blobs (k-NN, version 2, and matrix
factorization, version 3): one encoding, shared.

Encodings: 0 zigzag varint int64, 1 float64, 2 UTF-8 strings (as ``classes`` in version 1);
ids are distinct (each raw id maps to one inner id). Imports numpy and the standard library
only.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from edgesparse.errors import FormatError
from edgesparse.formats.codecs import (
    strings_decode,
    strings_encode,
    varint_decode,
    zigzag_decode,
    zigzag_encode,
)
from edgesparse.formats.container import corrupt

__all__ = ["ID_ENCODINGS", "decode_ids", "encode_ids"]

ID_ENCODINGS = {0: "int-zigzag-varint", 1: "float64", 2: "utf8"}
"""Encoding code -> name of an id section."""

_ID_INT, _ID_FLOAT, _ID_STR = 0, 1, 2


def encode_ids(ids: tuple[Any, ...], what: str) -> tuple[int, bytes]:
    """(encoding, bytes) of raw ids: all integers (zigzag varints), all floats (float64) or
    all strings (UTF-8); ``what`` (``user``, ``item``) names them in errors."""
    if all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in ids):
        try:
            v = np.array([int(i) for i in ids], dtype=np.int64)
        except OverflowError:
            raise FormatError(f"cannot encode: a {what} id does not fit 64 bits") from None
        return _ID_INT, zigzag_encode(v)
    if all(isinstance(v, (float, np.floating)) for v in ids):
        return _ID_FLOAT, np.array(ids, dtype="<f8").tobytes()
    if all(isinstance(v, str) for v in ids):
        try:
            raw = [s.encode("utf-8") for s in ids]
        except UnicodeEncodeError:
            raise FormatError(f"cannot encode: a {what} id is not valid Unicode") from None
        return _ID_STR, strings_encode(raw)
    kinds = sorted({type(v).__name__ for v in ids})
    raise FormatError(
        f"cannot encode: {what} ids must be all integers, all floats or all strings, got "
        f"{', '.join(kinds)} (convert the raw ids to one type before training)"
    )


def decode_ids(
    sec: tuple[int, int, np.ndarray], n: int, name: str, need: Any, kind: int
) -> tuple[Any, ...]:
    """The ``n`` distinct raw ids of section ``sec`` (encoding, offset, bytes), checked;
    ``need`` is :func:`~edgesparse.formats.container.section_access`'s length check."""
    enc, off, b = sec
    where = f"section '{name}' at offset {off}"
    if enc == _ID_FLOAT:
        need(kind, 8 * n, f"{n} float64 ids")
        ids: list[Any] = np.frombuffer(b, dtype="<f8").astype(np.float64).tolist()
        if not all(math.isfinite(v) for v in ids):
            corrupt(f"{where}: an id is not finite")
    elif enc == _ID_INT:
        zig, err = varint_decode(b, n, 10)
        if err:
            corrupt(f"{where}: {err} (one id per entry)")
        ids = zigzag_decode(zig).tolist()
    else:
        # ids stay Python strings (a tuple, not a numpy array), so a trailing NUL survives
        ids = strings_decode(b, n, name, off, "id", nul_ok=True)
    if len(set(ids)) != n:
        corrupt(f"{where}: ids are not distinct (each raw id maps to one inner id)")
    return tuple(ids)
