"""The Surprise frontend for matrix-factorization recommenders: a fitted SVD, SVDpp, NMF or
BaselineOnly -> :class:`~edgesparse.ir.factors.FactorIR`.

As for the k-NN models (:mod:`edgesparse.frontends.surprise`, whose checks this module
shares), Surprise is never imported: only the fitted attributes are read, each checked for
type and shape first. The classes are registered in :mod:`edgesparse.frontends` from
:data:`SURPRISE_FACTOR_CLASSES`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgesparse.errors import UnsupportedModelError
from edgesparse.frontends.surprise import (
    bad_model,
    check_rating_lists,
    finite_number,
    float_array,
    id_maps,
    rules_note,
    surprise_release,
    unwrap,
)
from edgesparse.ir.factors import FactorIR

__all__ = ["SURPRISE_FACTOR_CLASSES", "from_surprise_factors", "is_surprise_factors"]

SURPRISE_FACTOR_CLASSES = {
    "surprise.prediction_algorithms.matrix_factorization.SVD": "svd",
    "surprise.prediction_algorithms.matrix_factorization.SVDpp": "svdpp",
    "surprise.prediction_algorithms.matrix_factorization.NMF": "nmf",
    "surprise.prediction_algorithms.baseline_only.BaselineOnly": "baseline",
}
"""``module.ClassName`` -> algorithm."""


def _key(obj: Any) -> str:
    cls = type(obj)
    return f"{cls.__module__}.{cls.__name__}"


def is_surprise_factors(obj: Any) -> bool:
    """True for a Surprise SVD/SVDpp/NMF/BaselineOnly (or a ``surprise.dump`` of one)."""
    return _key(unwrap(obj)) in SURPRISE_FACTOR_CLASSES


def from_surprise_factors(algo: Any) -> FactorIR:
    """Convert a fitted Surprise SVD, SVDpp, NMF or BaselineOnly exactly (float64).

    SVDpp's implicit-feedback term is folded into each user's factors here (Surprise's own
    sum, so the estimates are the same). Pickles of Surprise 1.0.x are read by their rules
    (the trainset's ``offset`` is taken off the global mean).
    """
    algo = unwrap(algo)
    if not is_surprise_factors(algo):
        names = ", ".join(k.rpartition(".")[2] for k in SURPRISE_FACTOR_CLASSES)
        raise UnsupportedModelError(
            f"{type(algo).__name__} is not a Surprise matrix-factorization model; supported: "
            + names
        )
    algorithm, state = SURPRISE_FACTOR_CLASSES[_key(algo)], vars(algo)
    ts = state.get("trainset")
    if type(ts).__name__ != "Trainset":
        raise bad_model("it has no trainset")
    t = vars(ts)
    user_ids, item_ids, ur, ir_ = id_maps(t)
    n_users, n_items = len(user_ids), len(item_ids)
    check_rating_lists(ur, n_users, n_items, "ur")
    check_rating_lists(ir_, n_items, n_users, "ir")
    gm, scale = _mean_and_scale(t, ur)
    release, offset = surprise_release(state, t)
    biased = algorithm in ("svdpp", "baseline") or state.get("biased") is True
    if algorithm in ("svd", "nmf") and not isinstance(state.get("biased"), bool):
        raise bad_model("biased must be True or False")
    if offset and not biased:
        raise bad_model(
            f"written by Surprise {release} with a rating offset of {offset:g}, which an "
            "unbiased model's estimates cannot carry"
        )
    parts: dict[str, Any] = {}
    if biased:
        parts["bu"] = float_array(state.get("bu"), "bu", (n_users,))
        parts["bi"] = float_array(state.get("bi"), "bi", (n_items,))
    if algorithm != "baseline":
        parts.update(_factors(state, algorithm, ur, n_users, n_items))
    seen_indptr, seen_items = _seen(ur, n_users)
    try:
        return FactorIR(
            algorithm=algorithm,
            biased=biased,
            global_mean=gm - offset,
            rating_scale=scale,
            user_ids=user_ids,
            item_ids=item_ids,
            seen_indptr=seen_indptr,
            seen_items=seen_items,
            provenance={
                "source": f"surprise.{type(algo).__name__}",
                "surprise_version": release,
                "surprise_rules": rules_note(release, offset),
            },
            **parts,
        )
    except UnsupportedModelError:
        raise
    except Exception as exc:  # IRError: the object is not what a fitted Surprise model is
        raise bad_model(str(exc)) from None


def _mean_and_scale(t: dict[str, Any], ur: dict[Any, Any]) -> tuple[float, tuple[float, float]]:
    gm = t.get("_global_mean")
    if gm is None:
        # Surprise's own formula and order (all_ratings walks ur), so equal to the last bit.
        gm = np.mean([r for ratings_u in ur.values() for (_, r) in ratings_u])
    scale = t.get("rating_scale")
    if not (isinstance(scale, tuple) and len(scale) == 2):
        raise bad_model("trainset.rating_scale must be a (low, high) pair")
    lo = finite_number(scale[0], "trainset.rating_scale")
    hi = finite_number(scale[1], "trainset.rating_scale")
    return finite_number(gm, "the trainset's global mean"), (lo, hi)


def _factors(
    state: dict[str, Any], algorithm: str, ur: dict[Any, Any], n_users: int, n_items: int
) -> dict[str, np.ndarray]:
    """``p`` and ``q`` (float64); for SVDpp ``p`` with the implicit term folded in."""
    pu = state.get("pu")
    f = pu.shape[1] if isinstance(pu, np.ndarray) and pu.ndim == 2 else -1
    if f < 1:
        raise bad_model("pu must be a 2-D array of factors")
    p = float_array(pu, "pu", (n_users, f))
    q = float_array(state.get("qi"), "qi", (n_items, f))
    if algorithm == "svdpp":
        yj = float_array(state.get("yj"), "yj", (n_items, f))
        p = p.copy()
        for u in range(n_users):
            js = [int(j) for j, _ in ur[u]]
            if not js:
                continue
            # Surprise: sum(yj[j] for (j, _) in ur[u]) / np.sqrt(|I_u|), then pu[u] + that.
            # cumsum adds left to right as Python's sum() does (0 + a is a exactly).
            impl = np.cumsum(yj[js], axis=0)[-1] / np.sqrt(len(js))
            p[u] = p[u] + impl
    return {"p": np.ascontiguousarray(p), "q": np.ascontiguousarray(q)}


def _seen(ur: dict[Any, Any], n_users: int) -> tuple[np.ndarray, np.ndarray]:
    """(indptr, sorted item ids) of each user's rated items."""
    rows = [np.unique(np.array([int(i) for i, _ in ur[u]], dtype=np.int64)) for u in range(n_users)]
    indptr = np.zeros(n_users + 1, dtype=np.int64)
    np.cumsum([r.size for r in rows], out=indptr[1:])
    items = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
    return indptr, items.astype(np.int32)
