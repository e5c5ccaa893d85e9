"""Records read from a text table, as the tabular input stage takes them.

A module of its own, importing nothing, so that the device runtime can recognise such records
(:mod:`edgesparse.runtime.tabular`) without importing the workstation's file readers
(:mod:`edgesparse.data`, which makes them in :func:`~edgesparse.data.read_records`).
"""

from __future__ import annotations

__all__ = ["TableRecords"]


class TableRecords(list):  # type: ignore[type-arg]
    """Records read from a text table (:func:`edgesparse.data.read_records`): lists of strings,
    where an empty cell is missing and a categorical column whose categories are numbers reads
    its cells as numbers (what ``pandas.read_csv`` would have made of them). ``names``: the
    header's column names, which the records' cells follow."""

    names: tuple[str, ...] = ()
