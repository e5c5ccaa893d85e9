"""The on-device k-NN recommender: predicts exactly as Surprise's KNN algorithms do.

>>> import edgesparse
>>> m = edgesparse.load("knn.esb")                   # doctest: +SKIP
>>> m.predict("196", "302").est                       # doctest: +SKIP
>>> m.predict_many([("196", "302"), ("22", "377")])   # doctest: +SKIP
>>> m.recommend("196", n=10)                          # doctest: +SKIP

Semantics (Surprise 1.1's ``AlgoBase.predict`` and ``knns.py``): the neighbours of (x, y) are
the x2 that rated y, ranked by sim(x, x2), the first ``k`` kept (ties in Surprise's rating
order), and of those only the ones with sim > 0 count (``actual_k``). An unknown user or item,
or fewer than ``min_k`` neighbours for KNNBasic, makes the prediction *impossible*: the
estimate is the global mean and ``details["was_impossible"]`` is True. KNNWithMeans/ZScore fall
back to the mean of x when there are too few neighbours; KNNBaseline to the baseline, also for
unknown users/items (Surprise does not flag those as impossible either). Estimates are clipped
to the rating scale unless ``clip=False``. One difference: Surprise's KNNBasic with
``min_k=0`` and no neighbour divides by zero; here that prediction is impossible.

Imports numpy and the standard library only.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple

import numpy as np

from edgesparse.errors import InputError
from edgesparse.ir.knn import KnnIR

__all__ = ["KnnModel", "Prediction"]

_UNKNOWN = "User and/or item is unknown."
_TOO_FEW = "Not enough neighbors."


class Prediction(NamedTuple):
    """One estimate, shaped like Surprise's ``Prediction`` (without the true rating)."""

    uid: Any
    iid: Any
    est: float
    details: dict[str, Any]


class KnnModel:
    """A k-NN recommender read from a version-2 ``.esb`` blob (semantics: module docstring)."""

    def __init__(self, ir: KnnIR) -> None:
        if not isinstance(ir, KnnIR):
            raise TypeError(f"KnnModel needs a KnnIR, got {type(ir).__name__}")
        self.ir = ir
        self._uid = {raw: inner for inner, raw in enumerate(ir.user_ids)}
        self._iid = {raw: inner for inner, raw in enumerate(ir.item_ids)}
        # Similarities stay as stored (8-bit ones are scaled per row when used): a float64
        # copy would cost 8 bytes per similarity on a device.
        self._scales = None if ir.sim_scales is None else ir.sim_scales.astype(np.float64)
        self._lo, self._hi = ir.rating_scale
        self._seen: tuple[np.ndarray, np.ndarray] | None = None

    def __repr__(self) -> str:
        ir = self.ir
        side = "user" if ir.user_based else "item"
        return (
            f"KnnModel({ir.variant}, {side}-based, k={ir.k}, {ir.n_users} users x "
            f"{ir.n_items} items, {ir.sim_nnz} similarities {ir.sim_dtype})"
        )

    # -- public -------------------------------------------------------------------------
    def predict(self, uid: Any, iid: Any, *, clip: bool = True) -> Prediction:
        """Estimate the rating of user ``uid`` for item ``iid`` (raw ids, as in training)."""
        u, i = self._uid.get(uid), self._iid.get(iid)
        est, details = self._estimate(u, i)
        return Prediction(uid, iid, self._clip(est) if clip else est, details)

    def predict_many(
        self,
        pairs: Iterable[tuple[Any, Any]],
        *,
        clip: bool = True,
        with_flags: bool = False,
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Estimates (float64) for ``(uid, iid)`` pairs; ``with_flags`` also returns the
        ``was_impossible`` flags (bool array)."""
        est, flags = [], []
        for n, pair in enumerate(pairs):
            try:
                uid, iid = pair
            except (TypeError, ValueError):
                raise InputError(f"pair {n} is {pair!r}: give (user_id, item_id) pairs") from None
            e, details = self._estimate(self._uid.get(uid), self._iid.get(iid))
            est.append(e)
            flags.append(details["was_impossible"])
        out = np.array(est, dtype=np.float64)
        if clip:
            np.clip(out, self._lo, self._hi, out=out)
        if with_flags:
            return out, np.array(flags, dtype=bool)
        return out

    def recommend(self, uid: Any, n: int = 10, *, exclude_seen: bool = True) -> list[Prediction]:
        """The ``n`` items with the highest estimates for ``uid`` (ties: training order),
        leaving out items the user rated in training unless ``exclude_seen=False``.

        An unknown user gets the fallback estimates (flagged impossible, except KNNBaseline's
        item baselines), as Surprise would give.
        """
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise InputError(f"n must be a whole number >= 0, got {n!r}")
        u = self._uid.get(uid)
        candidates = np.arange(self.ir.n_items)
        if exclude_seen and u is not None:
            candidates = np.setdiff1d(candidates, self._items_of(u), assume_unique=True)
        preds = []
        for i in candidates.tolist():
            est, details = self._estimate(u, i)
            preds.append(Prediction(uid, self.ir.item_ids[i], self._clip(est), details))
        order = sorted(range(len(preds)), key=lambda j: -preds[j].est)  # stable: ties keep order
        return [preds[j] for j in order[: int(n)]]

    # -- internals ----------------------------------------------------------------------
    def _clip(self, est: float) -> float:
        return min(self._hi, max(self._lo, est))

    def _items_of(self, u: int) -> np.ndarray:
        """Inner ids of the items user ``u`` rated in training."""
        ir = self.ir
        if not ir.user_based:
            return np.unique(ir.yr_x[ir.yr_indptr[u] : ir.yr_indptr[u + 1]])
        if self._seen is None:
            # yr lists raters per item; invert it once into items per user.
            owners = np.repeat(np.arange(ir.n_y), np.diff(ir.yr_indptr))
            order = np.argsort(ir.yr_x, kind="stable")
            ptr = np.zeros(ir.n_x + 1, dtype=np.int64)
            np.cumsum(np.bincount(ir.yr_x, minlength=ir.n_x), out=ptr[1:])
            self._seen = (ptr, owners[order])
        ptr, items = self._seen
        return np.unique(items[ptr[u] : ptr[u + 1]])

    def _estimate(self, u: int | None, i: int | None) -> tuple[float, dict[str, Any]]:
        ir = self.ir
        if ir.variant == "baseline":
            est = ir.global_mean
            if u is not None:
                est += float(ir.bu[u])  # type: ignore[index]
            if i is not None:
                est += float(ir.bi[i])  # type: ignore[index]
            if u is None or i is None:
                return est, {"was_impossible": False}
        elif u is None or i is None:
            return ir.global_mean, {"was_impossible": True, "reason": _UNKNOWN}
        x, y = (u, i) if ir.user_based else (i, u)
        lo, hi = ir.yr_indptr[y], ir.yr_indptr[y + 1]
        raters, ratings = ir.yr_x[lo:hi], ir.ratings[lo:hi]
        s0, s1 = ir.sim_indptr[x], ir.sim_indptr[x + 1]
        cols = ir.sim_indices[s0:s1]
        pos = np.searchsorted(cols, raters)
        pos[pos >= cols.size] = 0
        hit = cols[pos] == raters if cols.size else np.zeros(raters.size, dtype=bool)
        sims = ir.sim_values[s0:s1][pos[hit]].astype(np.float64) if cols.size else np.zeros(0)
        if self._scales is not None:
            sims *= self._scales[x]
        nbrs, rs = raters[hit], ratings[hit]
        if sims.size > ir.k:
            # Surprise: heapq.nlargest(k, ..., key=sim), stable for ties (rating order).
            keep = np.argsort(-sims, kind="stable")[: ir.k]
            sims, nbrs, rs = sims[keep], nbrs[keep], rs[keep]
        actual_k = int(sims.size)
        sum_sim = float(np.sum(sims))
        if ir.variant == "basic":
            if actual_k < ir.min_k or actual_k == 0:
                return ir.global_mean, {
                    "actual_k": actual_k,
                    "was_impossible": True,
                    "reason": _TOO_FEW,
                }
            return float(np.sum(sims * rs)) / sum_sim, {
                "actual_k": actual_k,
                "was_impossible": False,
            }
        if ir.variant == "means":
            est = float(ir.means[x])  # type: ignore[index]
            dev = rs - ir.means[nbrs]  # type: ignore[index]
        elif ir.variant == "zscore":
            est = float(ir.means[x])  # type: ignore[index]
            dev = (rs - ir.means[nbrs]) / ir.sigmas[nbrs]  # type: ignore[index]
        else:
            bx, by = (ir.bu, ir.bi) if ir.user_based else (ir.bi, ir.bu)
            dev = rs - (ir.global_mean + bx[nbrs] + by[y])  # type: ignore[index]
        sum_dev = float(np.sum(sims * dev)) if actual_k >= ir.min_k else 0.0
        if sum_sim > 0:
            agg = sum_dev / sum_sim
            if ir.variant == "zscore":
                agg *= float(ir.sigmas[x])  # type: ignore[index]
            est += agg
        return est, {"actual_k": actual_k, "was_impossible": False}
