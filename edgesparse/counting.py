"""Linear-time replacements for ``np.unique`` on column indices and small integers.

``np.unique`` sorts (or, since numpy 2.3, hashes) its input: on the 8 million indices of a model
at the array cap that took 3.5 s a call, and compressing such a model called it some 40 times
(issue 16: 102 s for one 64 MiB model). Column indices are bounded by the feature count and
exponents by int8, so counting them (``np.bincount``) gives the same sorted answers in one pass.

Imports only numpy: the on-device runtime uses this module.
"""

from __future__ import annotations

import numpy as np

__all__ = ["column_counts", "small_int_counts", "used_columns"]

# Counting allocates one cell per feature: past this many features per index (and a floor
# below which counting is always cheap) the indices are sorted instead, so that a model of
# 2^31 - 1 features and a handful of weights costs its weights, not 16 GiB of counts.
_FEATURES_PER_INDEX = 8
_ALWAYS_COUNT = 1 << 20


def _counted(idx: np.ndarray, n_features: int) -> bool:
    return int(n_features) <= max(_ALWAYS_COUNT, _FEATURES_PER_INDEX * idx.size)


def _sorted_counts(idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct values of ``idx`` in increasing order and how often each occurs (int64),
    by one sort: memory and time bounded by ``idx.size``, whatever the values' range."""
    s = np.sort(idx.astype(np.int64).ravel())
    first = np.empty(s.size, dtype=bool)
    first[0] = True
    np.not_equal(s[1:], s[:-1], out=first[1:])
    starts = np.flatnonzero(first)
    return s[starts], np.diff(np.append(starts, s.size))


def used_columns(indices: np.ndarray, *, n_features: int) -> np.ndarray:
    """The sorted distinct values of ``indices`` (column indices in ``[0, n_features)``), as
    ``np.unique(indices)`` gives them (int64): counted in time linear in both sizes, or sorted
    when the features far outnumber the indices."""
    idx = np.asarray(indices)
    if idx.size == 0:
        return np.zeros(0, dtype=np.int64)
    if not _counted(idx, n_features):
        return _sorted_counts(idx)[0]
    counts = np.bincount(idx.astype(np.intp, copy=False), minlength=int(n_features))
    return np.flatnonzero(counts).astype(np.int64, copy=False)


def column_counts(indices: np.ndarray, *, n_features: int) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(indices, return_counts=True)`` for column indices in ``[0, n_features)``."""
    idx = np.asarray(indices)
    if idx.size == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    if not _counted(idx, n_features):
        return _sorted_counts(idx)
    counts = np.bincount(idx.astype(np.intp, copy=False), minlength=int(n_features))
    used = np.flatnonzero(counts)
    return used.astype(np.int64, copy=False), counts[used].astype(np.int64, copy=False)


def small_int_counts(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(values, return_counts=True)`` for int8 values (e.g. column exponents):
    the distinct values in increasing order (int64) and how often each occurs."""
    v = np.asarray(values)
    if v.size == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    counts = np.bincount(v.astype(np.int64) + 128, minlength=256)
    present = np.flatnonzero(counts)
    return present.astype(np.int64) - 128, counts[present].astype(np.int64)
