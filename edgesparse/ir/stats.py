"""What is known of a model's raw input columns (:class:`FeatureStats`), and the frozen base
the IR's classes share (:class:`Frozen`): attributes set once, by the constructor.

Imports only numpy and the standard library: the on-device runtime uses this module.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgesparse.errors import IRError

__all__ = ["FeatureStats", "Frozen"]


class Frozen:
    """Attributes set once, by the constructor; assigning or deleting one later raises
    AttributeError (what a frozen dataclass does, without importing dataclasses: about
    0.2 MiB of a device process that only loads a blob, issue 19)."""

    __slots__ = ()

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"cannot assign to field {name!r}: {type(self).__name__} is frozen")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r}: {type(self).__name__} is frozen")


class FeatureStats(Frozen):
    """Centre and spread of each raw input column, and where they come from.

    ``center[j]`` is a typical value of ``x[j]`` (a mean, median or mid-range) and
    ``spread[j] > 0`` its typical distance from the centre (a standard deviation, IQR or range).
    ``source`` says where they come from (``"StandardScaler"``, ``"data"``, ...).
    """

    center: np.ndarray
    spread: np.ndarray
    source: str

    def __init__(self, *, center: Any, spread: Any, source: str) -> None:
        center = np.array(center, dtype=np.float64, copy=True).reshape(-1)
        spread = np.array(spread, dtype=np.float64, copy=True).reshape(-1)
        if center.shape != spread.shape:
            raise IRError("input_stats: center and spread must have the same length")
        if not (np.all(np.isfinite(center)) and np.all(np.isfinite(spread))):
            raise IRError("input_stats: center and spread must be finite")
        if not np.all(spread > 0):
            raise IRError("input_stats: every spread must be > 0")
        center.setflags(write=False)
        spread.setflags(write=False)
        object.__setattr__(self, "center", center)
        object.__setattr__(self, "spread", spread)
        object.__setattr__(self, "source", source)

    def __repr__(self) -> str:
        return f"FeatureStats(source={self.source!r}, columns={self.center.size})"
