"""Train the example Surprise k-NN recommender on a rating table generated here (no downloads).

Run ``python models/train_knn.py [--out DIR]`` (needs ``pip install 'edgesparse[surprise]'``,
nothing more: the ratings reach Surprise as a CSV file, not a pandas DataFrame).
Writes, next to this script by default:

* ``knn_means.pkl``: a fitted ``KNNWithMeans(k=20, sim_options={"name": "cosine",
  "user_based": True})``, plain :mod:`pickle`, protocol 5;
* ``knn_ratings.test.csv``: the held-out ``user,item,rating`` rows (for ``--check-data`` and
  ``edgesparse predict``).

The table (:func:`make_ratings`) is a seeded latent-factor model: 120 users, 80 items, about
30 % of the pairs rated on a 1-5 star scale (``half_stars=True`` gives 0.5 steps). Surprise's
own datasets are fetched from the internet at run time, which users behind firewalls and the
tests cannot do.
"""

from __future__ import annotations

import argparse
import os
import pickle
import tempfile
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


def main(argv: list[str] | None = None) -> None:
    """Write the example model and its held-out rows."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=HERE)
    args = ap.parse_args(argv)
    algo, test = train_example()
    with open(args.out / "knn_means.pkl", "wb") as fh:
        pickle.dump(algo, fh, protocol=5)
    with open(args.out / "knn_ratings.test.csv", "w") as fh:
        fh.write("user,item,rating\n" + "".join(f"{u},{i},{r:g}\n" for u, i, r in test))
    print(f"wrote {args.out / 'knn_means.pkl'} and {args.out / 'knn_ratings.test.csv'}")


if __name__ == "__main__":
    main()
