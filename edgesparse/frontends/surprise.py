"""The Surprise frontend: a fitted Surprise k-NN recommender -> :class:`~edgesparse.ir.KnnIR`.

Surprise is never imported here: the algorithm object comes from the allow-list loader (or the
caller) and only its fitted attributes are read, each checked for type and shape first (a
crafted pickle can set any attribute to anything). The classes are registered in
:mod:`edgesparse.frontends` from :data:`SURPRISE_KNN_CLASSES`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from edgesparse.errors import UnsupportedModelError
from edgesparse.ir.knn import KnnIR

__all__ = [
    "SURPRISE_1_0_NEW",
    "SURPRISE_1_0_OLD",
    "SURPRISE_1_1",
    "SURPRISE_KNN_CLASSES",
    "SURPRISE_MODULE",
    "bad_model",
    "check_rating_lists",
    "finite_number",
    "float_array",
    "from_surprise",
    "id_maps",
    "is_surprise_knn",
    "rules_note",
    "surprise_release",
    "unwrap",
]

SURPRISE_KNN_CLASSES = {
    "KNNBasic": "basic",
    "KNNWithMeans": "means",
    "KNNWithZScore": "zscore",
    "KNNBaseline": "baseline",
}
"""Surprise class name -> variant."""

SURPRISE_MODULE = "surprise.prediction_algorithms.knns"
"""Where Surprise's k-NN classes live."""


def unwrap(obj: Any) -> Any:
    """The algorithm of a ``surprise.dump.dump`` file (``{"predictions": ..., "algo": algo}``);
    any other object as it is."""
    if isinstance(obj, dict) and set(obj) == {"predictions", "algo"}:
        return obj["algo"]
    return obj


def is_surprise_knn(obj: Any) -> bool:
    """True for a Surprise KNNBasic/WithMeans/WithZScore/Baseline (or a ``surprise.dump``)."""
    cls = type(unwrap(obj))
    return cls.__module__ == SURPRISE_MODULE and cls.__name__ in SURPRISE_KNN_CLASSES


def bad_model(what: str) -> UnsupportedModelError:
    """The error for a Surprise object that is not what a fitted model is (says ``what``)."""
    return UnsupportedModelError(
        f"cannot convert this Surprise model: {what} (is it fitted? call algo.fit(trainset) "
        "before pickling it)"
    )


def float_array(obj: Any, name: str, shape: tuple[int, ...]) -> np.ndarray:
    """``obj`` as a finite float64 array of ``shape``, or :func:`bad_model` naming ``name``."""
    if not isinstance(obj, np.ndarray) or obj.dtype.kind not in "fiu" or obj.shape != shape:
        raise bad_model(f"{name} must be a numeric array of shape {shape}")
    a = obj.astype(np.float64)
    if not np.all(np.isfinite(a)):
        raise bad_model(f"{name} holds NaN or infinite values")
    return a


def _int(obj: Any, name: str) -> int:
    if isinstance(obj, bool) or not isinstance(obj, (int, np.integer)) or not 0 <= obj < 2**32:
        shown = repr(obj) if isinstance(obj, (int, np.integer)) and obj.bit_length() < 64 else None
        got = shown or ("a huge number" if isinstance(obj, int) else type(obj).__name__)
        raise bad_model(f"{name} must be a whole number in [0, 2^32), got {got}")
    return int(obj)


def from_surprise(algo: Any) -> KnnIR:
    """Convert a fitted Surprise KNN algorithm exactly (every positive similarity kept).

    Pickles of Surprise 1.0.x are read by their rules: their trainset keeps the ``offset`` its
    Reader added to a rating scale starting at or below 0, taken off here. Provenance records
    which releases the pickle points to (``surprise_version``) and by whose rules it was read.
    """
    algo = unwrap(algo)
    if not is_surprise_knn(algo):
        raise UnsupportedModelError(
            f"{type(algo).__name__} is not a Surprise k-NN model; supported: "
            + ", ".join(SURPRISE_KNN_CLASSES)
        )
    variant, state = SURPRISE_KNN_CLASSES[type(algo).__name__], vars(algo)
    t, sim_options, user_based = _trainset(state)
    user_ids, item_ids, ur, ir_ = id_maps(t)
    n_users, n_items = len(user_ids), len(item_ids)
    n_x = n_users if user_based else n_items
    sim = float_array(state.get("sim"), "sim", (n_x, n_x))
    yr_indptr, yr_x, ratings, gm, scale = _ratings(t, ur, ir_, (n_users, n_items), user_based)
    release, offset = surprise_release(state, t)
    if offset:
        # Surprise 1.0.x stored the ratings shifted up by trainset.offset and took it off each
        # estimate in predict(); shifted back here once, the estimates are the same.
        ratings = ratings - offset
        gm -= offset
    extra = _variant_arrays(state, variant, n_x, n_users, n_items, offset)

    sim_name = sim_options.get("name", "msd")
    if not isinstance(sim_name, str):
        raise bad_model(
            f"sim_options['name'] must be a similarity name, got {type(sim_name).__name__}"
        )
    sim_indptr, sim_indices, sim_values = _positive(sim)
    try:
        return KnnIR(
            variant=variant,
            user_based=user_based,
            k=_int(state.get("k"), "k"),
            min_k=_int(state.get("min_k"), "min_k"),
            sim_indptr=sim_indptr,
            sim_indices=sim_indices,
            sim_values=sim_values,
            yr_indptr=yr_indptr,
            yr_x=yr_x.astype(np.int32),
            ratings=ratings,
            global_mean=gm,
            rating_scale=scale,
            user_ids=user_ids,
            item_ids=item_ids,
            provenance={
                "source": f"surprise.{type(algo).__name__}",
                "similarity": sim_name,
                "user_based": str(user_based),
                "surprise_version": release,
                "surprise_rules": rules_note(release, offset),
            },
            **extra,
        )
    except UnsupportedModelError:
        raise
    except Exception as exc:  # IRError: the object is not what a fitted Surprise model is
        raise bad_model(str(exc)) from None


def _positive(sim: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(indptr, indices, values) of the positive similarities: only they matter (Surprise
    skips neighbours whose similarity is <= 0), so only they are kept."""
    mask = sim > 0
    indptr = np.zeros(sim.shape[0] + 1, dtype=np.int64)
    np.cumsum(mask.sum(axis=1), out=indptr[1:])
    rows, cols = np.nonzero(mask)
    return indptr, cols.astype(np.int32), sim[rows, cols]


def _trainset(state: dict[str, Any]) -> tuple[dict[str, Any], dict[Any, Any], bool]:
    """(the trainset's attributes, sim_options, user_based) of an algorithm's state."""
    ts = state.get("trainset")
    sim_options = state.get("sim_options")
    if type(ts).__name__ != "Trainset" or not isinstance(sim_options, dict):
        raise bad_model("it has no trainset")
    user_based = sim_options.get("user_based", True)
    if not isinstance(user_based, bool):
        raise bad_model("sim_options['user_based'] must be True or False")
    return vars(ts), sim_options, user_based


def id_maps(
    t: dict[str, Any],
) -> tuple[tuple[Any, ...], tuple[Any, ...], dict[Any, Any], dict[Any, Any]]:
    """(raw user ids, raw item ids, in inner-id order; the ``ur`` and ``ir`` rating lists)."""
    r2u, r2i, ur, ir_ = (
        t.get("_raw2inner_id_users"),
        t.get("_raw2inner_id_items"),
        t.get("ur"),
        t.get("ir"),
    )
    if not (
        isinstance(r2u, dict)
        and isinstance(r2i, dict)
        and isinstance(ur, dict)
        and isinstance(ir_, dict)
    ):
        raise bad_model("its trainset lacks ur/ir/raw id maps")
    return _ids_in_inner_order(r2u, "user"), _ids_in_inner_order(r2i, "item"), ur, ir_


def _ratings(
    t: dict[str, Any],
    ur: dict[Any, Any],
    ir_: dict[Any, Any],
    sizes: tuple[int, int],
    user_based: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, tuple[float, float]]:
    """(yr indptr, yr x ids, ratings, global mean, rating scale) of a trainset, checked;
    ``sizes`` is (users, items) as the raw id maps count them."""
    n_users, n_items = sizes
    check_rating_lists(ur, n_users, n_items, "ur")
    check_rating_lists(ir_, n_items, n_users, "ir")
    yr_indptr, yr_x, ratings = _flatten(
        ir_ if user_based else ur, n_items if user_based else n_users
    )
    gm = t.get("_global_mean")
    if gm is None:
        # Surprise's own formula and order (all_ratings walks ur), so equal to the last bit.
        gm = np.mean([r for ratings_u in ur.values() for (_, r) in ratings_u])
    scale = t.get("rating_scale")
    if not (isinstance(scale, tuple) and len(scale) == 2):
        raise bad_model("trainset.rating_scale must be a (low, high) pair")
    lo, hi = (
        finite_number(scale[0], "trainset.rating_scale"),
        finite_number(scale[1], "trainset.rating_scale"),
    )
    return yr_indptr, yr_x, ratings, finite_number(gm, "the trainset's global mean"), (lo, hi)


def _variant_arrays(
    state: dict[str, Any], variant: str, n_x: int, n_users: int, n_items: int, offset: float
) -> dict[str, Any]:
    """What the variant needs beyond the similarities: means, sigmas, baselines."""
    extra: dict[str, Any] = {}
    if variant in ("means", "zscore"):
        extra["means"] = float_array(state.get("means"), "means", (n_x,)) - offset
    if variant == "zscore":
        extra["sigmas"] = float_array(state.get("sigmas"), "sigmas", (n_x,))
    if variant == "baseline":
        extra["bu"] = float_array(state.get("bu"), "bu", (n_users,))
        extra["bi"] = float_array(state.get("bi"), "bi", (n_items,))
    return extra


def finite_number(obj: Any, name: str) -> float:
    """A finite real number (a bool or a number too large for a float is not one)."""
    if isinstance(obj, bool) or not isinstance(obj, (int, float, np.integer, np.floating)):
        raise bad_model(f"{name} must be numbers, got {type(obj).__name__}")
    try:
        value = float(obj)
    except OverflowError:
        value = math.inf
    if not math.isfinite(value):
        raise bad_model(f"{name} must be finite numbers")
    return value


def check_rating_lists(lists: dict[Any, Any], n: int, n_other: int, name: str) -> None:
    """Check ``trainset.ur``/``ir``: keys exactly the inner ids 0..n-1, each value a list of
    (inner id of the other side, finite rating) pairs. Both are checked, though one is
    converted: Surprise walks ``ur`` for the global mean, and keys that are not the inner
    ids would make every list look empty and the model predict only the mean."""
    if len(lists) != n or any(
        isinstance(k, bool) or not isinstance(k, int) or not 0 <= k < n for k in lists
    ):
        raise bad_model(f"trainset.{name} must map each inner id 0..{n - 1} to its ratings")
    for key, row in lists.items():
        if not isinstance(row, list):
            raise bad_model(f"trainset rating list {key} is not a list")
        for entry in row:
            if not (isinstance(entry, tuple) and len(entry) == 2):
                raise bad_model(
                    f"trainset rating list {key} holds {type(entry).__name__}, not pairs"
                )
            other, rating = entry
            if isinstance(other, bool) or not isinstance(other, (int, np.integer)):
                raise bad_model("trainset ratings are not (inner id, number) pairs")
            if not 0 <= other < n_other:
                raise bad_model("trainset ratings name inner ids out of range")
            finite_number(rating, "trainset ratings")


def _flatten(lists: dict[int, list[Any]], n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(indptr, ids, ratings) of checked rating lists, rows in inner-id order and each row in
    Surprise's order (it breaks ties between equal similarities)."""
    counts = np.array([len(lists[y]) for y in range(n)], dtype=np.int64)
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    ids = np.array([int(x) for y in range(n) for x, _ in lists[y]], dtype=np.int64)
    ratings = np.array([float(r) for y in range(n) for _, r in lists[y]], dtype=np.float64)
    return indptr, ids, ratings


# Surprise writes no version into its pickles; what the state holds tells the releases apart.
# 1.0.x trainsets keep the offset their Reader added to a rating scale starting at or below 0
# (gone in 1.1.0); 1.0.5 and 1.0.6 algorithms keep skip_train (the train() -> fit() bridge).
SURPRISE_1_0_OLD = "1.0.4 or older"
SURPRISE_1_0_NEW = "1.0.5-1.0.6"
SURPRISE_1_1 = "1.1 or newer"


def surprise_release(state: dict[str, Any], trainset: dict[str, Any]) -> tuple[str, float]:
    """(the Surprise releases whose pickle this is, the trainset's rating offset)."""
    if "offset" not in trainset:
        return SURPRISE_1_1, 0.0
    release = SURPRISE_1_0_NEW if "skip_train" in state else SURPRISE_1_0_OLD
    offset = trainset["offset"]
    if (
        isinstance(offset, bool)
        or not isinstance(offset, (int, float, np.integer, np.floating))
        or not math.isfinite(offset)
    ):
        raise UnsupportedModelError(
            f"cannot convert this Surprise model: written by Surprise {release}, whose "
            f"trainset.offset must be a number, got {offset!r}"
        )
    return release, float(offset)


def rules_note(release: str, offset: float) -> str:
    """The provenance note saying by which release's rules a pickle was read."""
    if release == SURPRISE_1_1:
        return "read by the rules of Surprise 1.1 (its pickles record no version)"
    shift = f"ratings shifted back by trainset.offset={offset:g}" if offset else "offset 0"
    return f"read by the rules of Surprise 1.0.x ({shift})"


def _ids_in_inner_order(raw2inner: dict[Any, Any], what: str) -> tuple[Any, ...]:
    n = len(raw2inner)
    out: list[Any] = [None] * n
    for raw, inner in raw2inner.items():
        if isinstance(inner, bool) or not isinstance(inner, int) or not 0 <= inner < n:
            raise bad_model(f"the {what} id map has inner id {inner!r}")
        if out[inner] is not None:
            raise bad_model(f"the {what} id map gives inner id {inner} twice")
        if isinstance(raw, np.generic):
            raw = raw.item()
        out[inner] = raw
    return tuple(out)
