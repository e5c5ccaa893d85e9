"""The IR: what every frontend produces and every pass, format and runtime consumes.

* :mod:`edgesparse.ir.linear`: :class:`LinearIR` (sparse linear layer, head, classes) and
  :class:`FeatureStats` (what is known of the raw input columns);
* :mod:`edgesparse.ir.knn`: :class:`KnnIR`, the k-NN recommender, a second model kind;
* :mod:`edgesparse.ir.text`: :class:`TextFeaturizer` (and :class:`Tfidf`), the text input
  stage a :class:`LinearIR` may carry;
* :mod:`edgesparse.ir.csr`: the canonical-CSR checks both share;
* :mod:`edgesparse.ir.stats`: :class:`FeatureStats`, and the frozen base of the IR classes.

Every IR is frozen and validated on construction. Imports numpy and the standard library only:
the on-device runtime uses it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from edgesparse.ir.linear import (
    EXPONENT_RANGE,
    HEADS,
    INT8_MAX,
    INT16_MAX,
    PROBA_HEADS,
    QUANTIZED_DTYPES,
    VALUE_DTYPES,
    FeatureStats,
    LinearIR,
    from_dense,
)

if TYPE_CHECKING:
    from edgesparse.ir.knn import VARIANTS, KnnIR
    from edgesparse.ir.text import TextFeaturizer, Tfidf

# The k-NN IR and the text stage are imported on first use: loading a linear blob needs
# neither (process memory on the device, issue 19).
_LAZY = {"VARIANTS": "knn", "KnnIR": "knn", "TextFeaturizer": "text", "Tfidf": "text"}

__all__ = [
    "EXPONENT_RANGE",
    "HEADS",
    "INT8_MAX",
    "INT16_MAX",
    "PROBA_HEADS",
    "QUANTIZED_DTYPES",
    "VALUE_DTYPES",
    "VARIANTS",
    "FeatureStats",
    "KnnIR",
    "LinearIR",
    "TextFeaturizer",
    "Tfidf",
    "from_dense",
]


def __getattr__(name: str) -> Any:
    """``KnnIR``, ``VARIANTS``, ``TextFeaturizer`` and ``Tfidf``, from their modules."""
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
