"""Check rows for a model with an input stage: ``compress --check-data`` on raw documents or
records.

A model that starts with a text or tabular featurizer is checked on what it reads on the
device: the documents of a text file (one per line, :func:`edgesparse.data.read_documents`) or
the records of a CSV with a header (:func:`edgesparse.data.read_records`). :func:`read_raw_check`
reads them once and gives three views of the same rows:

* ``raw``: what the compressed model is fed (the numpy runtime runs the stage itself);
* ``features``: the rows the float64 reference stage makes of them, which the safe default
  measures int8 on (its passes work on feature rows);
* ``reference_input``: what the scikit-learn pipeline, the oracle, is fed: the documents; or
  the table as ``pandas.read_csv`` reads it, which is how a tabular pipeline is usually fitted.
  None when scikit-learn cannot be fed the rows here (pandas is not installed): then the
  original model read by edgesparse (float64, its stage tested against scikit-learn's
  ``transform``) is the reference, and the check says so.

Such check files hold no labels: the check reports agreement with the pipeline's own answers.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from edgesparse.data import read_documents, read_records
from edgesparse.ir.tabular import TabularFeaturizer
from edgesparse.ir.text import TextFeaturizer
from edgesparse.runtime.tabular import tabular_features
from edgesparse.runtime.text import text_features

__all__ = ["RawCheck", "read_raw_check", "table_for_sklearn"]


@dataclasses.dataclass(frozen=True)
class RawCheck:
    """The check rows of a model with an input stage, in the three forms the module lists."""

    raw: Any
    features: Any
    reference_input: Any | None
    n_rows: int


def read_raw_check(
    path: str | os.PathLike[str], *, featurizer: TextFeaturizer | TabularFeaturizer
) -> RawCheck:
    """Read the check rows in ``path`` for a model whose input stage is ``featurizer``.

    Raises :class:`~edgesparse.errors.InputError` (naming the file and line) for what
    :func:`~edgesparse.data.read_documents` / :func:`~edgesparse.data.read_records` refuse,
    and for records the stage cannot read (unknown column names, an unknown category where
    the encoder refuses them, a cell that is not a number)."""
    if isinstance(featurizer, TextFeaturizer):
        docs = read_documents(path)
        return RawCheck(docs, text_features(featurizer, docs), docs, len(docs))
    records = read_records(path)
    features = tabular_features(featurizer, records)
    return RawCheck(records, features, table_for_sklearn(path, featurizer=featurizer), len(records))


def table_for_sklearn(
    path: str | os.PathLike[str], *, featurizer: TabularFeaturizer, drop_last: bool = False
) -> Any:
    """The CSV as scikit-learn's pipeline takes it (a DataFrame when it was fitted on named
    columns, else its values in file order, without the last column when ``drop_last``: a
    label), or None without pandas."""
    try:
        import pandas as pd
    except ImportError:
        return None

    # read_records has bounded and checked the file already (size, columns, encoding).
    frame = pd.read_csv(path, skipinitialspace=True)
    if featurizer.names is None:
        values = frame.to_numpy(dtype=object)
        return values[:, :-1] if drop_last else values
    return frame[list(featurizer.names)]
