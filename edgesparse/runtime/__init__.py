"""The on-device runtime: load a ``.esb`` blob (numpy only) or an edgesparse ``.onnx`` model
(onnxruntime) and predict with scikit-learn's methods.

>>> import edgesparse
>>> m = edgesparse.load("model.esb")            # doctest: +SKIP
>>> m.predict(X); m.predict_proba(X)             # doctest: +SKIP

The kind is decided by the bytes, not the name: a file that starts with the ``.esb`` magic is
a blob; anything else is handed to onnxruntime (imported only then).
"""

from __future__ import annotations

import os
from pathlib import Path

from .model import Model
from .onnx_model import OnnxModel

__all__ = ["Model", "OnnxModel", "load", "loads"]


def loads(buf: bytes | bytearray | memoryview, *, threads: int = 1) -> Model | OnnxModel:
    """Decode a model held in memory: ``.esb`` bytes (fully verified) or edgesparse ONNX.

    ``threads`` is onnxruntime's ``intra_op_num_threads`` (ignored for ``.esb``).
    """
    from edgesparse.formats import esb

    if bytes(buf[: len(esb.MAGIC)]) == esb.MAGIC:
        return Model(esb.decode(buf))
    return OnnxModel.from_bytes(buf, threads=threads)


def load(path: str | os.PathLike[str], *, threads: int = 1) -> Model | OnnxModel:
    """Read a ``.esb`` or edgesparse ``.onnx`` file and return a model ready to predict.

    ``threads`` is onnxruntime's ``intra_op_num_threads`` (ignored for ``.esb``). Errors name
    the path.
    """
    from edgesparse.errors import FormatError
    from edgesparse.fileio import read_bytes
    from edgesparse.formats import esb

    if Path(path).suffix.lower() == ".esb":
        # A damaged .esb must say what is wrong with it, not that it is not ONNX either.
        return Model(esb.read(path))
    data = read_bytes(path, what="model file")
    if data[: len(esb.MAGIC)] == esb.MAGIC:
        try:
            return Model(esb.decode(data))
        except FormatError as exc:
            raise FormatError(f"{os.fspath(path)}: {exc}") from None
    try:
        return OnnxModel.from_bytes(data, threads=threads)
    except FormatError as exc:
        raise FormatError(
            f"{os.fspath(path)}: not a .esb blob (no ESB magic) and not an edgesparse ONNX "
            f"model: {exc}"
        ) from None
