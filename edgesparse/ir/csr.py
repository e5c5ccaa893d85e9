"""The canonical-CSR checks every IR shares: one implementation, each IR its own words.

A canonical CSR matrix has ``indptr`` starting at 0, never decreasing and ending at the number
of stored entries, every column index in ``[0, n_cols)`` and, where rows must be sorted,
strictly increasing column indices within each row (so no duplicates).

The checks return what is wrong (a :class:`CsrFault`) instead of raising, because
:class:`~edgesparse.ir.LinearIR` and :class:`~edgesparse.ir.KnnIR` word their errors
differently (and users and tests rely on those words). Imports numpy only.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import numpy as np

__all__ = ["CsrFault", "indices_fault", "indptr_fault"]

FaultKind = Literal["start", "decreases", "end", "range", "unsorted"]


class CsrFault(NamedTuple):
    """The first thing wrong with a CSR matrix.

    ``kind``: ``start`` (indptr does not start at 0), ``decreases`` (at row ``at``), ``end``
    (indptr does not end at the number of entries), ``range`` (a column index outside
    ``[0, n_cols)``), ``unsorted`` (the index at position ``at`` does not increase within its
    row).
    """

    kind: FaultKind
    at: int = 0


def indptr_fault(indptr: np.ndarray, *, nnz: int) -> CsrFault | None:
    """What is wrong with a 1-D, non-empty integer ``indptr`` for ``nnz`` entries, or None."""
    if indptr[0] != 0:
        return CsrFault("start")
    steps = np.diff(indptr)
    if np.any(steps < 0):
        return CsrFault("decreases", int(np.argmax(steps < 0)))
    if indptr[-1] != nnz:
        return CsrFault("end")
    return None


def indices_fault(
    indptr: np.ndarray, indices: np.ndarray, *, n_cols: int, sorted_rows: bool = True
) -> CsrFault | None:
    """What is wrong with the 1-D integer column ``indices`` of a CSR matrix whose ``indptr``
    already passed :func:`indptr_fault`, or None. ``sorted_rows``: each row's indices must be
    strictly increasing."""
    if indices.size == 0:
        return None
    if int(indices.min()) < 0 or int(indices.max()) >= n_cols:
        return CsrFault("range")
    if not sorted_rows:
        return None
    # A non-positive step is only allowed where a row starts.
    bad = np.diff(indices) <= 0
    starts = indptr[1:-1]
    starts = starts[(starts > 0) & (starts < indices.size)]
    bad[starts - 1] = False
    if np.any(bad):
        return CsrFault("unsorted", int(np.argmax(bad)) + 1)
    return None
