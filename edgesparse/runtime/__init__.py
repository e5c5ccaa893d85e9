"""The on-device runtime: load a ``.esb`` blob (numpy only) or an edgesparse ``.onnx`` model
(onnxruntime) and predict with scikit-learn's methods.

>>> import edgesparse
>>> m = edgesparse.load("model.esb")            # doctest: +SKIP
>>> m.predict(X); m.predict_proba(X)             # doctest: +SKIP

The kind is decided by the bytes, not the name
(:func:`edgesparse.formats.container.kind_of`): a file that starts with the ``.esb`` magic is
a blob; anything else is handed to onnxruntime (imported only then).

Each kind's decoder and runtime are imported when a model of that kind is loaded (and
``Model``, ``KnnModel``, ``FactorModel``, ``OnnxModel`` on first use): a device process that
loads one linear blob holds the modules of that one kind only (issue 19, goal 6).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgesparse.errors import FormatError
from edgesparse.fileio import read_bytes
from edgesparse.formats.container import BlobKind, kind_of

if TYPE_CHECKING:
    from .factors import FactorModel
    from .knn import KnnModel
    from .model import Model
    from .onnx_model import OnnxModel

__all__ = ["FactorModel", "KnnModel", "Model", "OnnxModel", "load", "loads"]

_LAZY = {
    "FactorModel": ".factors",
    "KnnModel": ".knn",
    "Model": ".model",
    "OnnxModel": ".onnx_model",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


def loads(
    buf: bytes | bytearray | memoryview, *, threads: int = 1
) -> Model | KnnModel | FactorModel | OnnxModel:
    """Decode a model held in memory: ``.esb`` bytes (fully verified; a version-2 blob is a
    k-NN recommender, :class:`KnnModel`, a version-3 one a matrix-factorization recommender,
    :class:`FactorModel`) or edgesparse ONNX.

    ``threads`` is onnxruntime's ``intra_op_num_threads`` (ignored for ``.esb``).
    """
    if kind_of(buf).is_esb:
        return _blob_model(buf)
    return _onnx_model(buf, threads)


def _onnx_model(data: bytes | bytearray | memoryview, threads: int) -> OnnxModel:
    from .onnx_model import OnnxModel

    return OnnxModel.from_bytes(data, threads=threads)


def _blob_model(buf: bytes | bytearray | memoryview) -> Model | KnnModel | FactorModel:
    """The model in ``.esb`` bytes: version 2 is a k-NN recommender, version 3 a
    matrix-factorization one, anything else linear (whose reader names what is wrong with an
    unknown version)."""
    kind = kind_of(buf)
    if kind is BlobKind.ESB_KNN:
        from edgesparse.formats import knn as knn_format

        from .knn import KnnModel

        return KnnModel(knn_format.decode(buf))
    if kind is BlobKind.ESB_FACTORS:
        from edgesparse.formats import factors as factors_format

        from .factors import FactorModel

        return FactorModel(factors_format.decode(buf))
    from edgesparse.formats import linear as linear_format

    from .model import Model

    return Model(linear_format.decode(buf))


def load(
    path: str | os.PathLike[str], *, threads: int = 1
) -> Model | KnnModel | FactorModel | OnnxModel:
    """Read a ``.esb`` or edgesparse ``.onnx`` file and return a model ready to predict
    (a :class:`KnnModel` for a k-NN recommender blob, a :class:`FactorModel` for a
    matrix-factorization one).

    ``threads`` is onnxruntime's ``intra_op_num_threads`` (ignored for ``.esb``). Errors name
    the path.
    """
    if Path(path).suffix.lower() == ".esb":
        from edgesparse.formats.esb import read_blob_file

        # A damaged .esb must say what is wrong with it, not that it is not ONNX either.
        return read_blob_file(path, _blob_model)
    data = read_bytes(path, what="model file")
    if kind_of(data).is_esb:
        try:
            return _blob_model(data)
        except FormatError as exc:
            raise FormatError(f"{os.fspath(path)}: {exc}") from None
    from edgesparse.formats.sniff import not_a_compressed_model

    wrong = not_a_compressed_model(path)  # a pickle, a data file: say so, not "bad ONNX"
    if wrong is not None:
        raise wrong
    try:
        return _onnx_model(data, threads)
    except FormatError as exc:
        raise FormatError(
            f"{os.fspath(path)}: not a .esb blob (no ESB magic) and not an edgesparse ONNX "
            f"model: {exc}"
        ) from None
