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

``recommend`` (and ``predict_many`` for a user-based model's users with many pairs) scores
many items at once in numpy, with the per-pair path's neighbour selection and sums (segments
of one length summed as matrix rows, which numpy adds in the same pairwise order as a 1-D
``np.sum``), so its estimates equal ``predict``'s bit for bit.

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
# predict_many scores a user's pairs together from this many on, user-based only: measured on
# a 1 910 x 1 172 model, 16 pairs of a user took 0.65x the time of one by one, 8 about 1x;
# item-based, gathering each asked item's whole similarity row never paid off (50 pairs: 1x).
_MIN_GROUP = 12
_KEY_LIMIT = 1 << 62  # _top_k's one int64 sort key must stay below this


class Prediction(NamedTuple):
    """One estimate, shaped like Surprise's ``Prediction`` (without the true rating)."""

    uid: Any
    iid: Any
    est: float
    details: dict[str, Any]


class KnnModel:
    """A k-NN recommender read from a version-2 ``.esb`` blob (semantics: module docstring)."""

    block_entries: int = 1 << 18
    """How many neighbour entries :meth:`recommend` gathers at a time (bounds its memory)."""

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
        ``was_impossible`` flags (bool array).

        User-based, the pairs of a user who has many are scored together as :meth:`recommend`
        scores items (the same estimates as :meth:`predict`, bit for bit); others one by one.
        """
        us, its = [], []
        for n, pair in enumerate(pairs):
            try:
                uid, iid = pair
            except (TypeError, ValueError):
                raise InputError(f"pair {n} is {pair!r}: give (user_id, item_id) pairs") from None
            us.append(self._uid.get(uid, -1))
            its.append(self._iid.get(iid, -1))
        u, i = np.array(us, dtype=np.int64), np.array(its, dtype=np.int64)
        out = np.empty(u.size)
        flags = np.zeros(u.size, dtype=bool)
        known = np.flatnonzero((u >= 0) & (i >= 0))
        known = known[np.argsort(u[known], kind="stable")]
        alone = np.ones(u.size, dtype=bool)
        for grp in np.split(known, np.flatnonzero(np.diff(u[known])) + 1):
            if self.ir.user_based and grp.size >= _MIN_GROUP:
                items, back = np.unique(i[grp], return_inverse=True)
                est, _, impossible = self._score(int(u[grp[0]]), items)
                out[grp], flags[grp], alone[grp] = est[back], impossible[back], False
        for j in np.flatnonzero(alone).tolist():
            e, details = self._estimate(
                None if u[j] < 0 else int(u[j]), None if i[j] < 0 else int(i[j])
            )
            out[j], flags[j] = e, details["was_impossible"]
        if clip:
            np.clip(out, self._lo, self._hi, out=out)
        if with_flags:
            return out, flags
        return out

    def recommend(self, uid: Any, n: int = 10, *, exclude_seen: bool = True) -> list[Prediction]:
        """The ``n`` items with the highest estimates for ``uid`` (ties: training order),
        leaving out items the user rated in training unless ``exclude_seen=False``.

        An unknown user gets the fallback estimates (flagged impossible, except KNNBaseline's
        item baselines), as Surprise would give. All candidates are scored at once in numpy,
        with the same estimates as :meth:`predict` gives each of them.
        """
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise InputError(f"n must be a whole number >= 0, got {n!r}")
        u = self._uid.get(uid)
        candidates = np.arange(self.ir.n_items)
        if exclude_seen and u is not None:
            candidates = np.setdiff1d(candidates, self._items_of(u), assume_unique=True)
        if u is None:
            ests = np.full(candidates.size, self.ir.global_mean)
            if self.ir.variant == "baseline":  # the item baselines, as _estimate adds them
                ests = self.ir.global_mean + self.ir.bi[candidates]  # type: ignore[index]
            actual_k = impossible = None
        else:
            ests, actual_k, impossible = self._score(u, candidates)
        np.clip(ests, self._lo, self._hi, out=ests)
        order = np.argsort(-ests, kind="stable")[: int(n)]  # stable: ties keep training order
        out = []
        for j in order.tolist():
            if actual_k is None:
                details = self._estimate(None, int(candidates[j]))[1]
            elif impossible[j]:  # type: ignore[index]
                details = {"actual_k": int(actual_k[j]), "was_impossible": True, "reason": _TOO_FEW}
            else:
                details = {"actual_k": int(actual_k[j]), "was_impossible": False}
            out.append(Prediction(uid, self.ir.item_ids[candidates[j]], float(ests[j]), details))
        return out

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

    def _score(self, u: int, items: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(unclipped estimates, actual_k, was_impossible) of known user ``u`` for the known
        ``items`` (ascending, unique): :meth:`_estimate` of each pair, bit for bit, vectorized.

        The items go in blocks whose stored entries (ratings user-based, similarity rows
        item-based) span at most ``block_entries`` (or one item), so the workspace stays
        bounded however large the model is.
        """
        ir = self.ir
        ptr = ir.yr_indptr if ir.user_based else ir.sim_indptr
        ends = ptr[items + 1]
        est = np.empty(items.size)
        actual_k = np.empty(items.size, dtype=np.int64)
        impossible = np.zeros(items.size, dtype=bool)
        lookup = self._user_lookup(u)
        entries = self._entries_user if ir.user_based else self._entries_item
        start = 0
        while start < items.size:
            limit = ptr[items[start]] + self.block_entries
            stop = max(start + 1, int(np.searchsorted(ends, limit, side="right")))
            blk = items[start:stop]
            grp, nbrs, rs, sims, raw, rank = entries(u, blk, lookup)
            sel, counts = _top_k(grp, raw, rank, blk.size, ir.k)
            part = est[start:stop], actual_k[start:stop], impossible[start:stop]
            self._aggregate(u, blk, grp[sel], nbrs[sel], rs[sel], sims[sel], counts, part)
            start = stop
        return est, actual_k, impossible

    def _user_lookup(self, u: int) -> tuple[np.ndarray, ...]:
        """Per-user tables over all x: user-based, u's scaled similarity to each user and
        whether it is stored; item-based, where each item occurs in u's ratings."""
        ir = self.ir
        if ir.user_based:
            s0, s1 = ir.sim_indptr[u], ir.sim_indptr[u + 1]
            cols = ir.sim_indices[s0:s1]
            raw = np.zeros(ir.n_x, dtype=ir.sim_values.dtype)
            raw[cols] = ir.sim_values[s0:s1]
            row = raw.astype(np.float64)
            if self._scales is not None:
                row[cols] *= self._scales[u]
            stored = np.zeros(ir.n_x, dtype=bool)
            stored[cols] = True
            return row, raw, stored
        lo, hi = ir.yr_indptr[u], ir.yr_indptr[u + 1]
        rated = ir.yr_x[lo:hi]
        # an item rated twice is two neighbours, as in _estimate: keep every occurrence
        by_item = np.argsort(rated, kind="stable") + lo
        count = np.bincount(rated, minlength=ir.n_x)
        first = np.zeros(ir.n_x + 1, dtype=np.int64)
        np.cumsum(count, out=first[1:])
        return by_item, count, first, count > 0

    def _entries_user(
        self, u: int, blk: np.ndarray, lookup: tuple[np.ndarray, ...]
    ) -> tuple[np.ndarray, ...]:
        """(group, neighbour, rating, similarity, stored similarity, rating order) of the
        raters of the items ``blk`` that have a stored similarity to ``u``, grouped by item."""
        ir = self.ir
        row, raw, stored = lookup
        pos, grp = _hits(ir.yr_indptr, ir.yr_x, stored, blk)
        raters = ir.yr_x[pos]
        return grp, raters, ir.ratings[pos], row[raters], raw[raters], pos

    def _entries_item(
        self, u: int, blk: np.ndarray, lookup: tuple[np.ndarray, ...]
    ) -> tuple[np.ndarray, ...]:
        """(group, neighbour, rating, similarity, stored similarity, rating order) of the
        items ``u`` rated that are in the similarity rows of the items ``blk``."""
        ir = self.ir
        by_item, count, first, rated = lookup
        idx, grp = _hits(ir.sim_indptr, ir.sim_indices, rated, blk)
        cols = ir.sim_indices[idx]
        occ, rep = _ranges(first[cols], first[cols] + count[cols])
        if rep.size != idx.size:  # some item rated twice: one neighbour per rating
            idx, grp = idx[rep], grp[rep]
        where = by_item[occ]  # the position of each neighbour in ratings (yr order)
        raw = ir.sim_values[idx]
        sims = raw.astype(np.float64)
        if self._scales is not None:
            sims *= self._scales[blk[grp]]
        return grp, ir.yr_x[where], ir.ratings[where], sims, raw, where

    def _aggregate(
        self,
        u: int,
        blk: np.ndarray,
        grp: np.ndarray,
        nbrs: np.ndarray,
        rs: np.ndarray,
        sims: np.ndarray,
        counts: np.ndarray,
        out: tuple[np.ndarray, np.ndarray, np.ndarray],
    ) -> None:
        """The estimates of _estimate from the selected neighbours (grouped, in its order)."""
        ir = self.ir
        est, actual_k, impossible = out
        actual_k[:] = counts
        starts = np.zeros(blk.size, dtype=np.int64)
        np.cumsum(counts[:-1], out=starts[1:])
        sum_sim = _segment_sums(sims, starts, counts)
        if ir.variant == "basic":
            impossible[:] = (counts < ir.min_k) | (counts == 0)
            num = _segment_sums(sims * rs, starts, counts)
            est[:] = ir.global_mean
            ok = ~impossible
            est[ok] = num[ok] / sum_sim[ok]
            return
        xs = np.full(blk.size, u) if ir.user_based else blk  # x of each item's pair
        if ir.variant == "baseline":
            est[:] = ir.global_mean + float(ir.bu[u]) + ir.bi[blk]  # type: ignore[index]
            bx, by = (ir.bu, ir.bi[blk[grp]]) if ir.user_based else (ir.bi, ir.bu[u])  # type: ignore[index]
            dev = rs - (ir.global_mean + bx[nbrs] + by)  # type: ignore[index]
        else:
            est[:] = ir.means[xs]  # type: ignore[index]
            dev = rs - ir.means[nbrs]  # type: ignore[index]
            if ir.variant == "zscore":
                dev /= ir.sigmas[nbrs]  # type: ignore[index]
        sum_dev = _segment_sums(sims * dev, starts, counts)
        sum_dev[counts < ir.min_k] = 0.0
        ok = sum_sim > 0
        agg = sum_dev[ok] / sum_sim[ok]
        if ir.variant == "zscore":
            agg *= ir.sigmas[xs[ok]]  # type: ignore[index]
        est[ok] += agg

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


def _hits(
    ptr: np.ndarray, index: np.ndarray, flagged: np.ndarray, blk: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(positions p, their item's number in ``blk``) of the entries of the CSR rows ``blk``
    (ascending) whose ``index[p]`` is ``flagged``, in row then position order."""
    lo, hi = int(ptr[blk[0]]), int(ptr[blk[-1] + 1])
    if 2 * int(np.sum(ptr[blk + 1] - ptr[blk])) >= hi - lo:
        # the rows cover most of their span (recommend): one pass over the span is cheaper
        # than gathering each row, and rows not asked for are dropped after the lookup
        r0 = int(blk[0])
        pos = np.flatnonzero(flagged[index[lo:hi]]) + lo
        row = np.searchsorted(ptr[r0 : blk[-1] + 2], pos, side="right") - 1
        slot = np.full(int(blk[-1]) - r0 + 1, -1, dtype=np.int64)
        slot[blk - r0] = np.arange(blk.size)
        grp = slot[row]
        keep = grp >= 0
        return pos[keep], grp[keep]
    idx, grp = _ranges(ptr[blk], ptr[blk + 1])
    hit = flagged[index[idx]]
    return idx[hit], grp[hit]


def _ranges(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The indices of the ranges ``lo[j]:hi[j]`` one after another, and each one's ``j``."""
    lens = hi - lo
    grp = np.repeat(np.arange(lens.size), lens)
    starts = np.cumsum(lens) - lens
    return np.arange(grp.size) - starts[grp] + lo[grp], grp


def _top_k(
    grp: np.ndarray, raw: np.ndarray, rank: np.ndarray, n_groups: int, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """(selection, kept per group) of neighbours: in each group, in rating order (``rank``)
    if it has at most ``k``, else its ``k`` largest similarities by similarity, ties in rating
    order (Surprise's heapq.nlargest, _estimate's stable argsort). Within a group all
    similarities share one scale, so the stored values ``raw`` order them as the floats do.

    One argsort of a unique int64 key (group, similarity's rank, rating order): several times
    faster than np.lexsort on these keys.
    """
    counts = np.bincount(grp, minlength=n_groups)
    big = counts[grp] > k
    if raw.dtype == np.uint8:
        n_sim, desc = 256, 255 - raw.astype(np.int64)
    else:
        uniq, inv = np.unique(raw, return_inverse=True)
        n_sim, desc = uniq.size, uniq.size - 1 - inv.astype(np.int64)
    desc[~big] = 0  # a group within k keeps rating order
    first = int(rank.min()) if rank.size else 0
    n_rank = int(rank.max()) - first + 1 if rank.size else 1
    if n_groups * n_sim * n_rank < _KEY_LIMIT:
        key = (grp.astype(np.int64) * n_sim + desc) * n_rank + (rank - first)
        order = np.argsort(key)  # keys are unique: no need for a stable sort
    else:  # the key would overflow int64 (a huge block_entries): the same order, slower
        order = np.lexsort((rank, desc, grp))
    if big.any():
        starts = np.cumsum(counts) - counts
        order = order[np.arange(order.size) - starts[grp[order]] < k]
    return order, np.minimum(counts, k)


def _segment_sums(values: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """``np.sum`` of each segment ``values[starts[j]:starts[j] + lengths[j]]``, bit for bit:
    segments of one length are summed as rows of a C-contiguous matrix along the last axis,
    which numpy reduces with the same pairwise summation as a 1-D ``np.sum``."""
    out = np.zeros(lengths.size)
    for n in np.unique(lengths).tolist():
        if n:
            rows = np.flatnonzero(lengths == n)
            out[rows] = values[starts[rows, None] + np.arange(n)].sum(axis=1)
    return out
