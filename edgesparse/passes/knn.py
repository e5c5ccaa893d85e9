"""The k-NN passes: pure functions, :class:`~edgesparse.ir.KnnIR` in, a new ``KnnIR`` out.

* :func:`prune_top_k`: each row keeps its ``neighbours`` largest similarities (lossy);
* :func:`prune_unused`: drops only the similarities no prediction can use (lossless);
* :func:`quantize_sims`: 8-bit similarities with one float32 scale per row, or float32.

Each records itself in the provenance's ``passes`` (``top5,uint8/row``...).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from edgesparse.errors import InputError
from edgesparse.ir.knn import KnnIR
from edgesparse.passes.quantize import QUANTIZE_CHOICES

__all__ = ["QUANTIZE_CHOICES", "prune_top_k", "prune_unused", "quantize_sims"]

"""What ``--quantize`` accepts (``auto``, for linear models only, aside)."""


def prune_top_k(ir: KnnIR, neighbours: int) -> KnnIR:
    """Keep each row's ``neighbours`` largest similarities (plus the diagonal, which only
    matters when predicting a rating the user already gave). Ties: lower column first."""
    if neighbours < 0:
        raise InputError(f"neighbours must be >= 0, got {neighbours}")
    sims = ir.sim_float()
    keep = np.zeros(ir.sim_nnz, dtype=bool)
    for x in range(ir.n_x):
        a, b = ir.sim_indptr[x], ir.sim_indptr[x + 1]
        cols = ir.sim_indices[a:b]
        diag = cols == x
        keep[a:b] |= diag
        off = np.flatnonzero(~diag)
        if off.size > neighbours:
            off = off[np.argsort(-sims[a:b][off], kind="stable")[:neighbours]]
        keep[a + off] = True
    return _with_sims(ir, keep, ir.sim_values[keep], ir.sim_scales, f"top{neighbours}")


def prune_unused(ir: KnnIR) -> KnnIR:
    """Drop every similarity no prediction can use: sim(x, x2) is kept only when x2 is among
    the k most similar raters of some y that x2 rated (Surprise's ranking, ties in rating
    order). Every prediction is unchanged, since the ratings are fixed; costs one sort of
    the rated pairs per row (seconds for thousands of rows)."""
    sims = ir.sim_float()
    y_of = np.repeat(np.arange(ir.n_y), np.diff(ir.yr_indptr))
    position = np.arange(ir.yr_x.size)
    keep = np.zeros(ir.sim_nnz, dtype=bool)
    dense = np.zeros(ir.n_x)
    for x in range(ir.n_x):
        a, b = ir.sim_indptr[x], ir.sim_indptr[x + 1]
        cols = ir.sim_indices[a:b]
        dense[cols] = sims[a:b]
        s = dense[ir.yr_x]
        dense[cols] = 0.0
        m = s > 0
        ys, ss, ps, xs = y_of[m], s[m], position[m], ir.yr_x[m]
        order = np.lexsort((ps, -ss, ys))  # per y: by similarity, ties in rating order
        ys_sorted = ys[order]
        rank = np.arange(order.size) - np.searchsorted(ys_sorted, ys_sorted, side="left")
        used = np.unique(xs[order][rank < ir.k])
        keep[a + np.searchsorted(cols, used)] = True
    return _with_sims(ir, keep, ir.sim_values[keep], ir.sim_scales, "unused")


def quantize_sims(ir: KnnIR, how: str) -> KnnIR:
    """``"int8"``: 8-bit similarities, ``q = round(s / scale)`` in 1..255 with one float32
    scale per row (similarities are positive, so the sign bit is spent on precision);
    ``"float32"``; ``"none"``: unchanged."""
    if how not in QUANTIZE_CHOICES:
        raise InputError(f"quantize must be one of {', '.join(QUANTIZE_CHOICES)}, not {how!r}")
    if how == "none":
        return ir
    sims = ir.sim_float()
    keep = np.ones(ir.sim_nnz, dtype=bool)
    if how == "float32":
        s32 = sims.astype(np.float32)
        keep = s32 > 0  # a similarity below float32's range would become 0: drop it
        return _with_sims(ir, keep, s32[keep], None, "float32")
    counts = np.diff(ir.sim_indptr)
    row_max = np.zeros(ir.n_x)
    nonempty = counts > 0
    row_max[nonempty] = np.maximum.reduceat(sims, ir.sim_indptr[:-1][nonempty])
    scales = np.where(row_max > 0, row_max / 255.0, 1.0).astype(np.float32)
    per = np.repeat(scales.astype(np.float64), counts)
    # A tiny similarity still counts as a neighbour in Surprise: keep it at code 1, not 0.
    q = np.clip(np.rint(sims / per), 1, 255).astype(np.uint8)
    return _with_sims(ir, keep, q, scales, "uint8/row")


def _with_sims(
    ir: KnnIR, keep: np.ndarray, values: np.ndarray, scales: np.ndarray | None, step: str
) -> KnnIR:
    rows = np.repeat(np.arange(ir.n_x), np.diff(ir.sim_indptr))[keep]
    indptr = np.zeros(ir.n_x + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=ir.n_x), out=indptr[1:])
    prov = dict(ir.provenance)
    prov["passes"] = f"{prov['passes']},{step}" if prov.get("passes") else step
    return dataclasses.replace(
        ir,
        sim_indptr=indptr,
        sim_indices=ir.sim_indices[keep],
        sim_values=values,
        sim_scales=scales,
        provenance=prov,
    )
