"""The on-device runtime: load a ``.esb`` blob and predict, with numpy and nothing else.

>>> import edgesparse
>>> m = edgesparse.load("model.esb")            # doctest: +SKIP
>>> m.predict(X); m.predict_proba(X)             # doctest: +SKIP
"""

from __future__ import annotations

import os

from .model import Model

__all__ = ["Model", "load", "loads"]


def loads(buf: bytes | bytearray | memoryview) -> Model:
    """Decode a ``.esb`` blob held in memory (every field is verified) into a :class:`Model`."""
    from edgesparse.formats import esb

    return Model(esb.decode(buf))


def load(path: str | os.PathLike[str]) -> Model:
    """Read and verify a ``.esb`` file and return a :class:`Model` ready to predict."""
    from edgesparse.formats import esb

    return Model(esb.read(path))
