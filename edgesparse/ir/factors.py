"""``FactorIR``: the validated description of a compressed matrix-factorization recommender
(Surprise's SVD, SVDpp, NMF and BaselineOnly).

The second recommender kind beside :class:`~edgesparse.ir.KnnIR`, on the same floors: the
frontend (``frontends/surprise_factors.py``) builds it, ``passes/factors.py`` quantizes it,
``formats/factors.py`` writes and reads it, ``runtime/factors.py`` predicts with it. Imports
numpy and the standard library only (the on-device runtime uses it).

The model keeps the global mean, the rating scale, the raw user and item ids in inner-id
order, each user's rated items (sorted; ``recommend`` leaves them out), and what the
algorithm needs:

* ``bu``, ``bi``: user and item biases (float64), present exactly when ``biased``;
* ``p`` (users x f), ``q`` (items x f): the factors, absent for BaselineOnly. For SVDpp,
  ``p`` already holds ``p_u + |N(u)|^-1/2 * sum of y_j over the items u rated`` (Surprise's
  own sum, in its rating order, so the same float64 bits): its estimate for a known user is
  ``q_i . (p_u + that)`` plus biases, so the y_j are not needed after training.

Numeric contract (what every reader computes, ``est`` before clipping to the rating scale):

* float64 or float32 factors: ``dot(u, i) = sum_f q[i, f] * p[u, f]`` in float64 (float32
  factors widened first);
* int8 factors, one float32 scale per row (``P = diag(p_scales) . p``, likewise ``q``):
  ``dot(u, i) = (float64(p_scales[u]) * float64(q_scales[i])) * D`` where ``D`` is the exact
  integer ``sum_f p[u, f] * q[i, f]`` (|D| <= f * 127^2);
* biased: ``est = global_mean (+ bu[u] if u is known) (+ bi[i] if i is known)
  (+ dot(u, i) if both are)``, added left to right as Surprise does; never impossible;
* not biased: ``est = dot(u, i)`` when both are known, else *impossible*: the global mean.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgesparse.errors import IRError
from edgesparse.ir.csr import indices_fault, indptr_fault

__all__ = ["ALGORITHMS", "FACTOR_DTYPES", "FactorIR"]

ALGORITHMS = ("svd", "svdpp", "nmf", "baseline")
"""Surprise's SVD, SVDpp, NMF and BaselineOnly (in format code order)."""

FACTOR_DTYPES = ("float64", "float32", "int8")
"""How the factors are stored (in format code order)."""


def _fail(msg: str) -> None:
    raise IRError(f"invalid FactorIR: {msg}")


@dataclass(frozen=True, eq=False)
class FactorIR:
    """A matrix-factorization recommender, validated on construction (every failure names the
    field; semantics and numeric contract: module docstring)."""

    algorithm: str
    biased: bool
    global_mean: float
    rating_scale: tuple[float, float]
    user_ids: tuple[Any, ...]
    item_ids: tuple[Any, ...]
    seen_indptr: np.ndarray
    seen_items: np.ndarray
    bu: np.ndarray | None = None
    bi: np.ndarray | None = None
    p: np.ndarray | None = None
    q: np.ndarray | None = None
    p_scales: np.ndarray | None = None
    q_scales: np.ndarray | None = None
    provenance: dict[str, str] = field(default_factory=dict)

    # -- derived ------------------------------------------------------------------------
    @property
    def n_users(self) -> int:
        """Users the model was trained on."""
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        """Items the model was trained on."""
        return len(self.item_ids)

    @property
    def n_factors(self) -> int:
        """Factors per user and item (0 for BaselineOnly)."""
        return 0 if self.p is None else int(self.p.shape[1])

    @property
    def n_seen(self) -> int:
        """Stored (user, rated item) pairs."""
        return int(self.seen_items.size)

    @property
    def factor_dtype(self) -> str:
        """``float64``, ``float32`` or ``int8`` (``float64`` when there are no factors)."""
        return "float64" if self.p is None else str(self.p.dtype)

    # -- invariants ---------------------------------------------------------------------
    def __post_init__(self) -> None:
        if self.algorithm not in ALGORITHMS:
            _fail(f"algorithm {self.algorithm!r} is not one of {', '.join(ALGORITHMS)}")
        if not isinstance(self.biased, bool):
            _fail("biased must be True or False")
        if self.algorithm in ("svdpp", "baseline") and not self.biased:
            _fail(f"{self.algorithm!r} is always biased")
        if self.n_users < 1 or self.n_items < 1:
            _fail("a model needs at least one user and one item")
        for name in ("user_ids", "item_ids"):
            ids = getattr(self, name)
            if len(set(ids)) != len(ids):
                _fail(f"{name} has repeated ids")
        lo, hi = self.rating_scale
        if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
            _fail(f"rating_scale {self.rating_scale!r} must be finite with low <= high")
        if not math.isfinite(self.global_mean):
            _fail("global_mean must be finite")
        self._check_seen()
        self._check_biases()
        self._check_factors()
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in self.provenance.items()):
            _fail("provenance must map strings to strings")

    def _check_seen(self) -> None:
        indptr, items = self.seen_indptr, self.seen_items
        if indptr.dtype != np.int64 or indptr.shape != (self.n_users + 1,):
            _fail(f"seen_indptr must be int64 of shape ({self.n_users + 1},)")
        if indptr_fault(indptr, nnz=items.size) is not None:
            _fail(f"seen_indptr must start at 0, not decrease and end at {items.size}")
        if items.dtype != np.int32 or items.ndim != 1:
            _fail("seen_items must be 1-D int32")
        fault = indices_fault(indptr, items, n_cols=self.n_items, sorted_rows=True)
        if fault is not None and fault.kind == "range":
            _fail(f"seen_items must lie in [0, {self.n_items})")
        if fault is not None:
            _fail("seen_items must be strictly increasing within each user")

    def _check_biases(self) -> None:
        for name, n in (("bu", self.n_users), ("bi", self.n_items)):
            a = getattr(self, name)
            if (a is not None) != self.biased:
                _fail(
                    f"{name} must be {'given' if self.biased else 'None'} when biased={self.biased}"
                )
            if a is None:
                continue
            if a.dtype != np.float64 or a.shape != (n,):
                _fail(f"{name} must be float64 of shape ({n},), got {a.dtype} {a.shape}")
            if not np.all(np.isfinite(a)):
                _fail(f"{name} must be finite")

    def _check_factors(self) -> None:
        has = self.algorithm != "baseline"
        if (self.p is not None) != has or (self.q is not None) != has:
            _fail(f"p and q must be {'given' if has else 'None'} for {self.algorithm!r}")
        if self.p is None or self.q is None:
            if self.p_scales is not None or self.q_scales is not None:
                _fail("scales are only for int8 factors")
            return
        p, q = self.p, self.q
        if p.ndim != 2 or q.ndim != 2 or p.shape[0] != self.n_users or q.shape[0] != self.n_items:
            _fail(f"p must be ({self.n_users}, f) and q ({self.n_items}, f)")
        if p.shape[1] != q.shape[1] or p.shape[1] < 1:
            _fail(f"p and q need the same number (>= 1) of factors, got {p.shape[1]}, {q.shape[1]}")
        if p.dtype != q.dtype or str(p.dtype) not in FACTOR_DTYPES:
            _fail(
                f"p and q must both be one of {', '.join(FACTOR_DTYPES)}, got {p.dtype}, {q.dtype}"
            )
        if p.dtype != np.int8:
            if self.p_scales is not None or self.q_scales is not None:
                _fail("scales are only for int8 factors")
            if not (np.all(np.isfinite(p)) and np.all(np.isfinite(q))):
                _fail("p and q must be finite")
            return
        if (p.size and int(p.min()) == -128) or (q.size and int(q.min()) == -128):
            _fail("int8 factors lie in [-127, 127] (symmetric quantization)")
        for name, n in (("p_scales", self.n_users), ("q_scales", self.n_items)):
            s = getattr(self, name)
            if s is None or s.dtype != np.float32 or s.shape != (n,):
                _fail(f"int8 factors need float32 {name} of shape ({n},)")
            if not np.all(np.isfinite(s) & (s > 0)):
                _fail(f"{name} must be finite and > 0")
