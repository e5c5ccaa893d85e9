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

from .knn import KnnModel
from .model import Model
from .onnx_model import OnnxModel

__all__ = ["KnnModel", "Model", "OnnxModel", "load", "loads"]


def loads(buf: bytes | bytearray | memoryview, *, threads: int = 1) -> Model | KnnModel | OnnxModel:
    """Decode a model held in memory: ``.esb`` bytes (fully verified; a version-2 blob is a
    k-NN recommender, :class:`KnnModel`) or edgesparse ONNX.

    ``threads`` is onnxruntime's ``intra_op_num_threads`` (ignored for ``.esb``).
    """
    from edgesparse.formats import esb

    if bytes(buf[: len(esb.MAGIC)]) == esb.MAGIC:
        return _blob_model(buf)
    return OnnxModel.from_bytes(buf, threads=threads)


def _blob_model(buf: bytes | bytearray | memoryview) -> Model | KnnModel:
    """The model in ``.esb`` bytes: version 2 is a k-NN recommender, anything else linear."""
    from edgesparse.formats import esb, esb_knn

    if esb_knn.is_knn_blob(buf):
        return KnnModel(esb_knn.decode(buf))
    return Model(esb.decode(buf))


def load(path: str | os.PathLike[str], *, threads: int = 1) -> Model | KnnModel | OnnxModel:
    """Read a ``.esb`` or edgesparse ``.onnx`` file and return a model ready to predict
    (a :class:`KnnModel` for a k-NN recommender blob).

    ``threads`` is onnxruntime's ``intra_op_num_threads`` (ignored for ``.esb``). Errors name
    the path.
    """
    from edgesparse.errors import FormatError
    from edgesparse.fileio import read_bytes
    from edgesparse.formats import esb

    if Path(path).suffix.lower() == ".esb":
        # A damaged .esb must say what is wrong with it, not that it is not ONNX either.
        return esb._read_file(path, _blob_model)
    data = read_bytes(path, what="model file")
    if data[: len(esb.MAGIC)] == esb.MAGIC:
        try:
            return _blob_model(data)
        except FormatError as exc:
            raise FormatError(f"{os.fspath(path)}: {exc}") from None
    from edgesparse.sniff import not_a_compressed_model

    wrong = not_a_compressed_model(path)  # a pickle, a data file: say so, not "bad ONNX"
    if wrong is not None:
        raise wrong
    try:
        return OnnxModel.from_bytes(data, threads=threads)
    except FormatError as exc:
        raise FormatError(
            f"{os.fspath(path)}: not a .esb blob (no ESB magic) and not an edgesparse ONNX "
            f"model: {exc}"
        ) from None
