"""Train the example Surprise k-NN recommender on a rating table generated here (no downloads).

Run ``python models/train_knn.py [--out DIR]`` (needs ``pip install 'edgesparse[surprise]'``,
nothing more: the ratings reach Surprise as a CSV file, not a pandas DataFrame).
Writes, next to this script by default:

* ``knn_means.pkl``: a fitted ``KNNWithMeans(k=20, sim_options={"name": "cosine",
  "user_based": True})``, plain :mod:`pickle`, protocol 5;
* ``knn_ratings.test.csv``: the held-out ``user,item,rating`` rows (for ``--check-data`` and
  ``edgesparse predict``).

``--movielens-1m`` instead writes recommenders at real size into ``out/ml1m/`` (git-ignored):
a generated table of MovieLens-1M's shape (:func:`make_movielens_1m`, ~1 M ratings), 2 % held
out (``ml1m.test.csv``), and item-based ``KNNWithMeans`` (cosine) and ``KNNBaseline``
(pearson_baseline), k=40, pickled (``--user-based`` adds the user-based pair: ~2 GiB and
~2 minutes each in Surprise). ``--scale`` shrinks the table (0.02: 20 000 ratings).

The table (:func:`make_ratings`) is a seeded latent-factor model: 120 users, 80 items, about
30 % of the pairs rated on a 1-5 star scale (``half_stars=True`` gives 0.5 steps). Surprise's
own datasets are fetched from the internet at run time, which users behind firewalls and the
tests cannot do.
"""

from __future__ import annotations

import argparse
import math
import os
import pickle
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
SEED = 0
N_USERS, N_ITEMS, DENSITY = 120, 80, 0.3
TEST_FRACTION = 0.2


def make_ratings(
    *,
    n_users: int = N_USERS,
    n_items: int = N_ITEMS,
    density: float = DENSITY,
    half_stars: bool = False,
    seed: int = SEED,
) -> list[tuple[str, str, float]]:
    """A deterministic ``(user, item, rating)`` table: ratings on [1, 5] from user and item
    biases, three latent factors and noise, rounded to whole (or half) stars."""
    rng = np.random.default_rng(seed)
    p = rng.normal(0.0, 0.8, (n_users, 3))
    q = rng.normal(0.0, 0.8, (n_items, 3))
    bu = rng.normal(0.0, 0.5, n_users)
    bi = rng.normal(0.0, 0.5, n_items)
    rated = rng.random((n_users, n_items)) < density
    step = 0.5 if half_stars else 1.0
    rows = []
    for u, i in zip(*np.nonzero(rated), strict=True):
        r = 3.4 + bu[u] + bi[i] + p[u] @ q[i] + rng.normal(0.0, 0.4)
        r = float(np.clip(np.round(r / step) * step, 1.0, 5.0))
        rows.append((f"u{u}", f"i{i}", r))
    order = rng.permutation(len(rows))  # Surprise's ties follow the input order: shuffle it
    return [rows[j] for j in order]


# MovieLens-1M's published shape (README of the GroupLens release): 6 040 users, 3 706 rated
# movies, 1 000 209 ratings, every user with at least 20; the share of each star 1..5.
ML1M_USERS, ML1M_ITEMS, ML1M_RATINGS, ML1M_MIN_PER_USER = 6040, 3706, 1_000_209, 20
ML1M_STAR_SHARES = (0.0562, 0.1075, 0.2611, 0.3489, 0.2263)


def make_movielens_1m(
    *, scale: float = 1.0, seed: int = SEED, factors: int = 8
) -> list[tuple[str, str, float]]:
    """A seeded ``(user, item, rating)`` table of MovieLens-1M's shape, nothing downloaded.

    ``scale`` multiplies the number of ratings, and users and items by its square root, so the
    density stays (1.0: 6 040 x 3 706, ~1 M ratings, density ~4.5 %). Users rate a log-normal
    number of movies (at least 20, median ~4/7 of the mean, as in ML-1M); which movies follows
    a Zipf-like popularity (weight ``(rank + 50)**-1.2``: median ~120 and most ~3 400 ratings
    per movie, as in ML-1M), drawn without replacement per user (Gumbel top-k). Stars come
    from user and item biases, ``factors`` latent factors and noise, cut at the quantiles that
    give ML-1M's share of each star."""
    rng = np.random.default_rng(seed)
    side = math.sqrt(scale)
    n_users, n_items = max(8, round(ML1M_USERS * side)), max(8, round(ML1M_ITEMS * side))
    low = min(ML1M_MIN_PER_USER, n_items // 4)
    # Activity: 20 + log-normal, rescaled to ML-1M's total and capped at 60 % of the movies.
    extra = rng.lognormal(4.33, 1.14, n_users)
    extra *= (ML1M_RATINGS * scale - low * n_users) / extra.sum()
    counts = np.minimum(low + np.round(extra).astype(np.int64), int(0.6 * n_items))
    log_pop = -1.2 * np.log(rng.permutation(n_items) + max(50.0 * side, 2.0))
    users, items = [], []
    for start in range(0, n_users, 512):  # Gumbel top-k, 512 users at a time
        stop = min(start + 512, n_users)
        keys = log_pop + rng.gumbel(size=(stop - start, n_items))
        for row, u in enumerate(range(start, stop)):
            chosen = np.argpartition(-keys[row], counts[u] - 1)[: counts[u]]
            users.append(np.full(counts[u], u))
            items.append(chosen)
    u_of, i_of = np.concatenate(users), np.concatenate(items)
    p = rng.normal(0.0, 0.5, (n_users, factors))
    q = rng.normal(0.0, 0.5, (n_items, factors))
    score = (
        rng.normal(0.0, 0.45, n_users)[u_of]
        + rng.normal(0.0, 0.55, n_items)[i_of]
        + np.einsum("nf,nf->n", p[u_of], q[i_of])
        + rng.normal(0.0, 0.6, u_of.size)
    )
    cuts = np.quantile(score, np.cumsum(ML1M_STAR_SHARES)[:-1])
    stars = 1.0 + np.searchsorted(cuts, score).astype(np.float64)
    order = rng.permutation(u_of.size)  # Surprise's ties follow the input order: shuffle it
    return [(f"u{u_of[j]}", f"i{i_of[j]}", float(stars[j])) for j in order]


def split(
    rows: list[tuple[str, str, float]], *, test_fraction: float = TEST_FRACTION, seed: int = SEED
) -> tuple[list[tuple[str, str, float]], list[tuple[str, str, float]]]:
    """A seeded train/test split of the rows (test rows may name users/items unseen in train)."""
    rng = np.random.default_rng(seed + 1)
    is_test = rng.random(len(rows)) < test_fraction
    train = [r for r, t in zip(rows, is_test, strict=True) if not t]
    test = [r for r, t in zip(rows, is_test, strict=True) if t]
    return train, test


def trainset(rows: list[tuple[str, str, float]], *, scale: tuple[float, float] = (1, 5)) -> Any:
    """A Surprise ``Trainset`` of ``rows`` (ids stay strings, as when loading a file)."""
    from surprise import Dataset, Reader

    fd, path = tempfile.mkstemp(suffix=".csv")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write("".join(f"{u},{i},{r}\n" for u, i, r in rows))
        reader = Reader(line_format="user item rating", sep=",", rating_scale=scale)
        return Dataset.load_from_file(path, reader=reader).build_full_trainset()
    finally:
        os.unlink(path)


def train_example() -> tuple[Any, list[tuple[str, str, float]]]:
    """The committed example: (fitted KNNWithMeans, held-out rows)."""
    from surprise import KNNWithMeans

    train, test = split(make_ratings())
    algo = KNNWithMeans(k=20, sim_options={"name": "cosine", "user_based": True}, verbose=False)
    return algo.fit(trainset(train)), test


ML1M_OUT = HERE.parent / "out" / "ml1m"
ML1M_TEST_FRACTION = 0.02
ML1M_MODELS = {
    "knn_means_item": ("KNNWithMeans", "cosine", False),
    "knn_baseline_item": ("KNNBaseline", "pearson_baseline", False),
    "knn_means_user": ("KNNWithMeans", "cosine", True),
    "knn_baseline_user": ("KNNBaseline", "pearson_baseline", True),
}
"""File stem -> (Surprise class, similarity, user-based) of the MovieLens-1M-shape models."""


def fit_movielens_1m(
    train: list[tuple[str, str, float]], name: str, *, k: int = 40
) -> tuple[Any, float]:
    """(fitted model ``name`` of :data:`ML1M_MODELS` on ``train``, seconds Surprise took)."""
    import surprise

    cls, sim, user_based = ML1M_MODELS[name]
    ts = trainset(train)
    algo = getattr(surprise, cls)(
        k=k, sim_options={"name": sim, "user_based": user_based}, verbose=False
    )
    start = time.perf_counter()
    algo.fit(ts)
    return algo, time.perf_counter() - start


def write_movielens_1m(
    out: Path, *, scale: float = 1.0, user_based: bool = False
) -> dict[str, float]:
    """Write the MovieLens-1M-shape models and held-out rows into ``out``; returns the seconds
    each fit took."""
    out.mkdir(parents=True, exist_ok=True)
    train, test = split(make_movielens_1m(scale=scale), test_fraction=ML1M_TEST_FRACTION)
    with open(out / "ml1m.test.csv", "w") as fh:
        fh.write("user,item,rating\n" + "".join(f"{u},{i},{r:g}\n" for u, i, r in test))
    seconds = {}
    for name, (_, _, ub) in ML1M_MODELS.items():
        if ub and not user_based:
            continue
        algo, seconds[name] = fit_movielens_1m(train, name)
        with open(out / f"{name}.pkl", "wb") as fh:
            pickle.dump(algo, fh, protocol=5)
        del algo  # a user-based model holds ~1 GiB; one at a time
    return seconds


def main(argv: list[str] | None = None) -> None:
    """Write the example model and its held-out rows (or the MovieLens-1M-shape models)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--movielens-1m", action="store_true", help="real-size models into out/ml1m")
    ap.add_argument("--scale", type=float, default=1.0, help="with --movielens-1m: table size")
    ap.add_argument("--user-based", action="store_true", help="with --movielens-1m: also these")
    args = ap.parse_args(argv)
    if args.movielens_1m:
        out = args.out or ML1M_OUT
        for name, secs in write_movielens_1m(
            out, scale=args.scale, user_based=args.user_based
        ).items():
            print(f"wrote {out / name}.pkl (Surprise fit {secs:.1f} s)")
        return
    args.out = args.out or HERE
    algo, test = train_example()
    with open(args.out / "knn_means.pkl", "wb") as fh:
        pickle.dump(algo, fh, protocol=5)
    with open(args.out / "knn_ratings.test.csv", "w") as fh:
        fh.write("user,item,rating\n" + "".join(f"{u},{i},{r:g}\n" for u, i, r in test))
    print(f"wrote {args.out / 'knn_means.pkl'} and {args.out / 'knn_ratings.test.csv'}")


if __name__ == "__main__":
    main()
