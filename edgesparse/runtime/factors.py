"""The on-device matrix-factorization recommender: predicts as Surprise's SVD, SVDpp, NMF and
BaselineOnly do (numeric contract: :mod:`edgesparse.ir.factors`).

>>> import edgesparse
>>> m = edgesparse.load("svd.esb")                    # doctest: +SKIP
>>> m.predict("196", "302").est                        # doctest: +SKIP
>>> m.recommend("196", n=10)                           # doctest: +SKIP

Every estimate, one pair or a user's whole catalogue, comes from the same arithmetic: the
factor dot products of one user with many items are one matrix-vector product whose result
does not depend on how many items it covers (int8 factors: exact integer sums, done in
float32 or float64 wide enough to hold them exactly; float64 factors: each item's products
summed as a row, which numpy adds in the same order for one row or many). So ``recommend``
ranks exactly the scores ``predict`` gives, ties in training (inner id) order.

Imports numpy and the standard library only.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from edgesparse.errors import InputError
from edgesparse.ir.factors import FactorIR
from edgesparse.runtime.knn import Prediction

__all__ = ["FactorModel", "Prediction"]

_UNKNOWN = "User and item are unknown."
_EXACT_F32 = 1 << 24  # integers up to this are exact in float32


class FactorModel:
    """A matrix-factorization recommender read from a ``.esb`` blob (module docstring)."""

    block_items: int = 1 << 14
    """How many items a float64 model scores at a time (bounds the temporary's memory)."""

    def __init__(self, ir: FactorIR) -> None:
        if not isinstance(ir, FactorIR):
            raise TypeError(f"FactorModel needs a FactorIR, got {type(ir).__name__}")
        self.ir = ir
        self._uid = {raw: inner for inner, raw in enumerate(ir.user_ids)}
        self._iid = {raw: inner for inner, raw in enumerate(ir.item_ids)}
        self._lo, self._hi = ir.rating_scale
        self._q: np.ndarray | None = None
        self._p: np.ndarray | None = None
        if ir.p is not None and ir.q is not None and ir.factor_dtype == "int8":
            assert ir.p_scales is not None and ir.q_scales is not None
            # int8: |sum| <= f * 127^2, exact in float32 while that stays below 2^24.
            wide = np.float32 if ir.n_factors * 127 * 127 < _EXACT_F32 else np.float64
            self._p, self._q = ir.p.astype(wide), ir.q.astype(wide)
            self._ps = ir.p_scales.astype(np.float64)
            self._qs = ir.q_scales.astype(np.float64)

    def __repr__(self) -> str:
        ir = self.ir
        return (
            f"FactorModel({ir.algorithm}, {ir.n_users} users x {ir.n_items} items, "
            f"{ir.n_factors} factors {ir.factor_dtype})"
        )

    # -- public -------------------------------------------------------------------------
    def predict(self, uid: Any, iid: Any, *, clip: bool = True) -> Prediction:
        """Estimate the rating of user ``uid`` for item ``iid`` (raw ids, as in training)."""
        u, i = self._uid.get(uid, -1), self._iid.get(iid, -1)
        e, impossible = self._estimate(u, i)
        details: dict[str, Any] = {"was_impossible": impossible}
        if impossible:
            details["reason"] = _UNKNOWN
        return Prediction(uid, iid, min(self._hi, max(self._lo, e)) if clip else e, details)

    def predict_many(
        self,
        pairs: Iterable[tuple[Any, Any]],
        *,
        clip: bool = True,
        with_flags: bool = False,
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Estimates (float64) for ``(uid, iid)`` pairs, equal to :meth:`predict`'s; with
        ``with_flags`` also the ``was_impossible`` flags (bool array)."""
        us, its = [], []
        for n, pair in enumerate(pairs):
            try:
                uid, iid = pair
            except (TypeError, ValueError):
                raise InputError(f"pair {n} is {pair!r}: give (user_id, item_id) pairs") from None
            us.append(self._uid.get(uid, -1))
            its.append(self._iid.get(iid, -1))
        est, impossible = self._estimates(
            np.array(us, dtype=np.int64), np.array(its, dtype=np.int64)
        )
        if clip:
            np.clip(est, self._lo, self._hi, out=est)
        return (est, impossible) if with_flags else est

    def scores(self, uid: Any) -> np.ndarray:
        """Unclipped estimates of ``uid`` for every item, in inner-id order (what
        :meth:`recommend` ranks; an unknown user gets the fallback estimates)."""
        u = self._uid.get(uid, -1)
        items = np.arange(self.ir.n_items)
        return self._estimates(np.full(items.size, u), items)[0]

    def recommend(self, uid: Any, n: int = 10, *, exclude_seen: bool = True) -> list[Prediction]:
        """The ``n`` items with the highest estimates for ``uid`` (ties: training order),
        leaving out the items the user rated in training unless ``exclude_seen=False``.

        All items are scored at once (one matrix-vector product) with the same estimates as
        :meth:`predict`; ranked on the clipped estimates, as Surprise users rank predictions.
        """
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise InputError(f"n must be a whole number >= 0, got {n!r}")
        ir = self.ir
        u = self._uid.get(uid, -1)
        est = np.clip(self.scores(uid), self._lo, self._hi)
        candidates = np.arange(ir.n_items)
        if exclude_seen and u >= 0:
            keep = np.ones(ir.n_items, dtype=bool)
            keep[ir.seen_items[ir.seen_indptr[u] : ir.seen_indptr[u + 1]]] = False
            candidates = candidates[keep]
        order = candidates[np.argsort(-est[candidates], kind="stable")[: int(n)]]
        impossible = u < 0 and not ir.biased
        details: dict[str, Any] = {"was_impossible": impossible}
        if impossible:
            details["reason"] = _UNKNOWN
        return [Prediction(uid, ir.item_ids[i], float(est[i]), dict(details)) for i in order]

    # -- arithmetic ---------------------------------------------------------------------
    def _estimates(self, u: np.ndarray, i: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(unclipped estimates, impossible flags) for inner ids (-1: unknown)."""
        ir = self.ir
        ku, ki = u >= 0, i >= 0
        both = ku & ki
        dots = np.zeros(u.size)
        if ir.p is not None:
            dots[both] = self._dots(u[both], i[both])
        if not ir.biased:
            return np.where(both, dots, ir.global_mean), ~both
        assert ir.bu is not None and ir.bi is not None
        est = np.full(u.size, ir.global_mean)
        est[ku] += ir.bu[u[ku]]
        est[ki] += ir.bi[i[ki]]
        est[both] += dots[both]
        return est, np.zeros(u.size, dtype=bool)

    def _estimate(self, u: int, i: int) -> tuple[float, bool]:
        """:meth:`_estimates` of one pair, on Python floats in the same order of operations
        (equal bit for bit; a dozen numpy calls on one-element arrays cost more than the
        arithmetic)."""
        ir = self.ir
        both = u >= 0 and i >= 0
        dot = 0.0
        if both and self._q is not None and self._p is not None:
            d = float(self._q[i] @ self._p[u])  # an exact integer, as in _user_dots
            dot = (float(self._ps[u]) * float(self._qs[i])) * d
        elif both and ir.p is not None and ir.q is not None:
            dot = float((ir.q[i].astype(np.float64) * ir.p[u].astype(np.float64)).sum())
        if not ir.biased:
            return (dot if both else ir.global_mean), not both
        assert ir.bu is not None and ir.bi is not None
        est = ir.global_mean
        if u >= 0:
            est += float(ir.bu[u])
        if i >= 0:
            est += float(ir.bi[i])
        return (est + dot if both else est), False

    def _dots(self, u: np.ndarray, i: np.ndarray) -> np.ndarray:
        """``dot(u, i)`` per pair (numeric contract), grouped by user: one matrix-vector
        product per user."""
        out = np.empty(u.size)
        order = np.argsort(u, kind="stable")
        bounds = np.flatnonzero(np.diff(u[order])) + 1
        for grp in np.split(order, bounds):
            if grp.size:
                out[grp] = self._user_dots(int(u[grp[0]]), i[grp])
        return out

    def _user_dots(self, u: int, items: np.ndarray) -> np.ndarray:
        ir = self.ir
        if self._q is not None and self._p is not None:
            d = (self._q[items] @ self._p[u]).astype(np.float64)  # exact integers
            return (self._ps[u] * self._qs[items]) * d
        assert ir.p is not None and ir.q is not None
        pu = ir.p[u].astype(np.float64)
        out = np.empty(items.size)
        step = self.block_items
        for a in range(0, items.size, step):
            out[a : a + step] = (ir.q[items[a : a + step]].astype(np.float64) * pu).sum(axis=1)
        return out
