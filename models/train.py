"""Train the example models that edgesparse's README, tests and benchmarks use.

Run ``python models/train.py [--out DIR] [--large]``. By default the models are written next to
this script. Every model is trained with fixed seeds on a held-out split and written as

* ``<name>.pkl``: the fitted scikit-learn estimator, plain :mod:`pickle`, protocol 5;
* ``<name>.test.npz``: the held-out rows: ``X`` (dense float64) and ``y``, or for sparse
  inputs the CSR parts ``X_data``, ``X_indices``, ``X_indptr``, ``X_shape`` and ``y``;
* ``digits_pipeline.train.npz`` only: the 1347 rows that model was trained on, same layout
  (tests/test_budget.py checks it is that model's training split).

The small models (iris, digits, diabetes; a few KiB each) are committed. ``--large`` also trains
the two big ones (``text_sgd``, ``synthetic_sgd``), which are regenerated on demand and ignored by
git (see ``models/.gitignore``). Only scikit-learn's bundled datasets and synthetic data are
used: nothing is downloaded.

Training runs with ``FutureWarning``, ``DeprecationWarning`` and ``ConvergenceWarning`` turned
into errors, so a model that relies on a deprecated API or does not converge fails loudly
instead of being written.
"""

from __future__ import annotations

import argparse
import contextlib
import pickle
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.datasets import load_diabetes, load_digits, load_iris
from sklearn.exceptions import ConvergenceWarning
from sklearn.feature_extraction import FeatureHasher
from sklearn.linear_model import LogisticRegression, Ridge, SGDClassifier
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler, normalize

HERE = Path(__file__).resolve().parent
SEED = 0
PICKLE_PROTOCOL = 5

SMALL_MODELS = (
    "iris_l1_logreg",
    "iris_l2_logreg",
    "iris_sgd_l1",
    "digits_pipeline",
    "diabetes_ridge",
)
LARGE_MODELS = ("text_sgd", "synthetic_sgd")

TEXT_N_FEATURES = 2**18


@dataclass(frozen=True)
class Trained:
    """A fitted estimator and the held-out rows it is scored on."""

    estimator: Any
    X_test: np.ndarray | sp.csr_matrix
    y_test: np.ndarray
    # The rows the model was fitted on, written as ``<name>.train.npz`` when given: a larger
    # calibration set for accuracy-aware compression whose held-out check stays ``.test.npz``.
    X_train: np.ndarray | None = None
    y_train: np.ndarray | None = None


@dataclass(frozen=True)
class ModelInfo:
    """What was written for one model, for the summary table."""

    name: str
    estimator: str
    n_features: int
    n_classes: int | None
    nnz: int
    density: float
    used_columns: int
    score: float
    score_kind: str
    pickle_bytes: int
    npz_bytes: int
    train_seconds: float


@contextlib.contextmanager
def strict_warnings() -> Iterator[None]:
    """Turn deprecation and convergence warnings into errors for the enclosed block."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        warnings.simplefilter("error", DeprecationWarning)
        warnings.simplefilter("error", ConvergenceWarning)
        yield


def final_estimator(model: Any) -> Any:
    """Return the last step of a :class:`~sklearn.pipeline.Pipeline`, or ``model`` itself."""
    return model[-1] if isinstance(model, Pipeline) else model


def describe(model: Any) -> str:
    """Short class description, e.g. ``StandardScaler+LogisticRegression``."""
    if isinstance(model, Pipeline):
        return "+".join(type(step).__name__ for _, step in model.steps)
    return type(model).__name__


# --------------------------------------------------------------------------- small models


def _iris_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    X, y = load_iris(return_X_y=True)
    return train_test_split(X, y, test_size=0.3, random_state=SEED, stratify=y)


def train_iris_l1_logreg() -> Trained:
    """Multinomial L1 logistic regression on iris (saga; ``l1_ratio=1`` is today's ``'l1'``).

    scikit-learn 1.8 deprecated ``penalty=``; ``l1_ratio=1.0`` selects the L1 penalty. With
    ``C=1`` about half of the 3x4 weights are exactly zero.
    """
    X_tr, X_te, y_tr, y_te = _iris_split()
    model = LogisticRegression(
        l1_ratio=1.0, C=1.0, solver="saga", max_iter=20_000, random_state=SEED
    )
    return Trained(model.fit(X_tr, y_tr), X_te, y_te)


def train_iris_l2_logreg() -> Trained:
    """Multinomial L2 logistic regression on iris (lbfgs, scikit-learn's defaults)."""
    X_tr, X_te, y_tr, y_te = _iris_split()
    model = LogisticRegression(C=1.0, max_iter=1_000)
    return Trained(model.fit(X_tr, y_tr), X_te, y_te)


def train_iris_sgd_l1() -> Trained:
    """One-vs-rest ``SGDClassifier(loss='log_loss', penalty='l1')`` on raw iris features.

    No scaler: with ``alpha=0.01`` plain SGD converges on iris's unscaled features (held-out
    accuracy 0.98-1.0 over 20 seeds). With the default ``alpha=1e-4`` it is erratic on raw
    features (0.53-0.98), which is why ``alpha`` is raised rather than a scaler added.
    """
    X_tr, X_te, y_tr, y_te = _iris_split()
    model = SGDClassifier(
        loss="log_loss", penalty="l1", alpha=0.01, max_iter=1_000, tol=1e-3, random_state=SEED
    )
    return Trained(model.fit(X_tr, y_tr), X_te, y_te)


def _digits_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    X, y = load_digits(return_X_y=True)
    return train_test_split(X, y, test_size=0.25, random_state=SEED, stratify=y)


def train_digits_pipeline() -> Trained:
    """``StandardScaler`` followed by multinomial ``LogisticRegression`` on 8x8 digits."""
    X_tr, X_te, y_tr, y_te = _digits_split()
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1_000))
    return Trained(model.fit(X_tr, y_tr), X_te, y_te, X_train=X_tr, y_train=y_tr)


def _diabetes_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    X, y = load_diabetes(return_X_y=True)
    return train_test_split(X, y, test_size=0.25, random_state=SEED)


def train_diabetes_ridge() -> Trained:
    """``Ridge(alpha=0.1)`` regression on the diabetes dataset (10 features)."""
    X_tr, X_te, y_tr, y_te = _diabetes_split()
    model = Ridge(alpha=0.1)
    return Trained(model.fit(X_tr, y_tr), X_te, y_te)


_SPLITS = {
    "iris_l1_logreg": _iris_split,
    "iris_l2_logreg": _iris_split,
    "iris_sgd_l1": _iris_split,
    "digits_pipeline": _digits_split,
    "diabetes_ridge": _diabetes_split,
}


def training_rows(name: str) -> tuple[np.ndarray, np.ndarray]:
    """The rows a small model is fitted on (tests compare training objectives on them)."""
    X_tr, _, y_tr, _ = _SPLITS[name]()
    return X_tr, y_tr


# --------------------------------------------------------------------------- large models


def synth_text_corpus(
    n_docs: int,
    rng: np.random.Generator,
    *,
    n_classes: int = 20,
    vocab_size: int = 100_000,
    topic_size: int = 2_000,
    n_groups: int = 5,
    mean_tokens: float = 30.0,
    p_topic: float = 0.10,
    p_group: float = 0.08,
    zipf_s: float = 1.05,
) -> tuple[list[np.ndarray], np.ndarray]:
    """Synthesize a bag-of-words corpus that looks like topical text.

    Each document has a class ``y`` and draws about ``mean_tokens`` tokens (Poisson), of which
    a fraction ``p_topic`` comes from its class's own topic words, ``p_group`` from words shared
    by a group of ``n_classes / n_groups`` related classes (like the ``comp.*`` newsgroups) and
    the rest from a Zipf(``zipf_s``) distribution over the whole vocabulary (common words).
    Topic and group words are Zipf(1)-distributed within their lists and drawn from outside
    the 100 most common words. Repeated tokens are dropped, leaving about 27 distinct tokens
    per document.

    Returns ``(docs, y)``: one array of token strings (``"w123"``) per document, and the labels.
    """
    ranks = np.arange(1, vocab_size + 1, dtype=np.float64)
    common_cdf = np.cumsum(ranks**-zipf_s)
    common_cdf /= common_cdf[-1]
    topic_cdf = np.cumsum(1.0 / np.arange(1, topic_size + 1))
    topic_cdf /= topic_cdf[-1]
    pool = np.arange(100, vocab_size)
    topics = np.stack([rng.choice(pool, topic_size, replace=False) for _ in range(n_classes)])
    groups = np.stack([rng.choice(pool, topic_size, replace=False) for _ in range(n_groups)])

    y = rng.integers(0, n_classes, size=n_docs)
    doc = np.repeat(np.arange(n_docs), rng.poisson(mean_tokens, size=n_docs))
    source = rng.random(doc.size)
    u = rng.random(doc.size)
    tokens = np.minimum(np.searchsorted(common_cdf, u), vocab_size - 1)
    rank_in_topic = np.minimum(np.searchsorted(topic_cdf, u), topic_size - 1)
    is_topic = source < p_topic
    is_group = (source >= p_topic) & (source < p_topic + p_group)
    tokens[is_topic] = topics[y[doc[is_topic]], rank_in_topic[is_topic]]
    tokens[is_group] = groups[y[doc[is_group]] % n_groups, rank_in_topic[is_group]]

    # Distinct tokens per document, in document order.
    key = np.unique(doc.astype(np.int64) * vocab_size + tokens)
    doc_of, token_of = np.divmod(key, vocab_size)
    vocab = np.array([f"w{i}" for i in range(vocab_size)], dtype=object)
    docs = np.split(vocab[token_of], np.searchsorted(doc_of, np.arange(1, n_docs)))
    return docs, y


def hash_docs(docs: Sequence[Sequence[str]], n_features: int = TEXT_N_FEATURES) -> sp.csr_matrix:
    """Hash token lists to an L2-normalized float64 CSR matrix (as ``HashingVectorizer`` does)."""
    hasher = FeatureHasher(n_features=n_features, input_type="string", alternate_sign=False)
    X = normalize(hasher.transform(docs), norm="l2").tocsr()
    X.sort_indices()
    return X


def train_text_sgd(n_train: int = 40_000, n_test: int = 2_000) -> Trained:
    """GOALS M4: 20-class hinge/elasticnet ``SGDClassifier`` on 2**18 hashed text features.

    ``alpha`` and ``l1_ratio`` are tuned so that about 1% of ``coef_`` is nonzero. The 20
    one-vs-rest fits are independent and each gets its own seed drawn up front, so running them
    on two threads (``n_jobs=2``) does not change the result.
    """
    rng = np.random.default_rng(SEED)
    docs, y = synth_text_corpus(n_train + n_test, rng)
    X = hash_docs(docs)
    model = SGDClassifier(
        loss="hinge",
        penalty="elasticnet",
        alpha=1e-5,
        l1_ratio=0.5,
        max_iter=100,
        tol=1e-4,
        random_state=SEED,
        n_jobs=2,
    )
    model.fit(X[:n_train], y[:n_train])
    return Trained(model, X[n_train:], y[n_train:])


def synth_dense_binary(
    n_samples: int,
    n_features: int,
    rng: np.random.Generator,
    *,
    n_informative: int = 100,
    shift: float = 0.2,
) -> tuple[np.ndarray, np.ndarray]:
    """Dense Gaussian float32 features where only ``n_informative`` columns carry the label.

    Class ``y`` shifts each informative column's mean by ``±shift`` (a random sign per column);
    all other columns are pure noise. Built in float32 to halve the memory (1.6 GB at
    20000x20000); scikit-learn's SGD keeps float32, so ``coef_`` is float32 too.
    """
    X = rng.standard_normal((n_samples, n_features), dtype=np.float32)
    y = rng.integers(0, 2, size=n_samples)
    informative = np.sort(rng.choice(n_features, n_informative, replace=False))
    signs = rng.choice(np.array([-1.0, 1.0], dtype=np.float32), n_informative)
    X[:, informative] += np.float32(shift) * (2 * y[:, None] - 1).astype(np.float32) * signs
    return X, y


def train_synthetic_sgd(
    n_samples: int = 20_000, n_features: int = 20_000, n_test: int = 1_000
) -> Trained:
    """GOALS M3: binary ``SGDClassifier(loss='log_loss')`` (L2) on a dense synthetic dataset.

    ``n_samples`` rows in total, of which ``n_test`` are held out. 1000 held-out rows are
    already 160 MB as float64, so the test file stays at that.
    """
    rng = np.random.default_rng(SEED)
    X, y = synth_dense_binary(n_samples, n_features, rng)
    n_train = n_samples - n_test
    model = SGDClassifier(loss="log_loss", alpha=0.1, max_iter=100, tol=1e-3, random_state=SEED)
    model.fit(X[:n_train], y[:n_train])
    return Trained(model, X[n_train:].astype(np.float64), y[n_train:])


# --------------------------------------------------------------------------- writing


# Above this many bytes of X, zlib costs seconds and gains nothing (Gaussian noise).
COMPRESS_LIMIT = 64 * 2**20


def save_test_data(path: Path, X: np.ndarray | sp.spmatrix, y: np.ndarray) -> None:
    """Write held-out rows: dense ``X`` as float64, sparse ``X`` as CSR parts.

    Small files are zip-compressed (digits' integer pixels shrink ~10x); ``np.load`` reads
    both kinds the same way.
    """
    arrays: dict[str, np.ndarray]
    if sp.issparse(X):
        csr = sp.csr_matrix(X, dtype=np.float64)
        arrays = {
            "X_data": csr.data,
            "X_indices": csr.indices,
            "X_indptr": csr.indptr,
            "X_shape": np.asarray(csr.shape, dtype=np.int64),
        }
    else:
        arrays = {"X": np.ascontiguousarray(X, dtype=np.float64)}
    arrays["y"] = np.asarray(y)
    size = sum(a.nbytes for a in arrays.values())
    (np.savez_compressed if size <= COMPRESS_LIMIT else np.savez)(path, **arrays)


def load_test_data(path: Path) -> tuple[np.ndarray | sp.csr_matrix, np.ndarray]:
    """Read a ``<name>.test.npz`` file written by :func:`save_test_data`."""
    with np.load(path, allow_pickle=False) as npz:
        y = npz["y"]
        if "X" in npz.files:
            return npz["X"], y
        shape = tuple(int(v) for v in npz["X_shape"])
        X = sp.csr_matrix((npz["X_data"], npz["X_indices"], npz["X_indptr"]), shape=shape)
        return X, y


def model_info(name: str, trained: Trained, out_dir: Path, seconds: float) -> ModelInfo:
    """Summarize a written model: coefficient sparsity, held-out score and file sizes."""
    est = final_estimator(trained.estimator)
    coef = np.atleast_2d(est.coef_)
    coef = coef.toarray() if sp.issparse(coef) else np.asarray(coef)
    nonzero = coef != 0
    classes = getattr(est, "classes_", None)
    return ModelInfo(
        name=name,
        estimator=describe(trained.estimator),
        n_features=int(coef.shape[1]),
        n_classes=None if classes is None else len(classes),
        nnz=int(nonzero.sum()),
        density=float(nonzero.mean()),
        used_columns=int(nonzero.any(axis=0).sum()),
        score=float(trained.estimator.score(trained.X_test, trained.y_test)),
        score_kind="accuracy" if classes is not None else "R2",
        pickle_bytes=(out_dir / f"{name}.pkl").stat().st_size,
        npz_bytes=(out_dir / f"{name}.test.npz").stat().st_size,
        train_seconds=seconds,
    )


def train_and_save(name: str, train: Callable[[], Trained], out_dir: Path) -> ModelInfo:
    """Train one model (failing on deprecation/convergence warnings) and write its two files."""
    out_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with strict_warnings():
        trained = train()
    seconds = time.perf_counter() - start
    with open(out_dir / f"{name}.pkl", "wb") as f:
        pickle.dump(trained.estimator, f, protocol=PICKLE_PROTOCOL)
    save_test_data(out_dir / f"{name}.test.npz", trained.X_test, trained.y_test)
    if trained.X_train is not None and trained.y_train is not None:
        save_test_data(out_dir / f"{name}.train.npz", trained.X_train, trained.y_train)
    return model_info(name, trained, out_dir, seconds)


TRAINERS: dict[str, Callable[[], Trained]] = {
    "iris_l1_logreg": train_iris_l1_logreg,
    "iris_l2_logreg": train_iris_l2_logreg,
    "iris_sgd_l1": train_iris_sgd_l1,
    "digits_pipeline": train_digits_pipeline,
    "diabetes_ridge": train_diabetes_ridge,
    "text_sgd": train_text_sgd,
    "synthetic_sgd": train_synthetic_sgd,
}


def train_small(out_dir: Path = HERE) -> list[ModelInfo]:
    """Train and write the small, committed models into ``out_dir``."""
    return [train_and_save(name, TRAINERS[name], Path(out_dir)) for name in SMALL_MODELS]


def train_large(out_dir: Path = HERE) -> list[ModelInfo]:
    """Train and write the large models (``text_sgd``, ``synthetic_sgd``) into ``out_dir``."""
    return [train_and_save(name, TRAINERS[name], Path(out_dir)) for name in LARGE_MODELS]


def format_table(infos: Sequence[ModelInfo]) -> str:
    """Render the summary table as aligned plain text."""
    header = (
        "name",
        "estimator",
        "n_features",
        "n_classes",
        "nnz(coef_)",
        "density",
        "used cols",
        "held-out",
        "pickle bytes",
        "npz bytes",
        "train s",
    )
    rows = [
        (
            i.name,
            i.estimator,
            str(i.n_features),
            "-" if i.n_classes is None else str(i.n_classes),
            str(i.nnz),
            f"{i.density:.4f}",
            str(i.used_columns),
            f"{i.score_kind} {i.score:.4f}",
            str(i.pickle_bytes),
            str(i.npz_bytes),
            f"{i.train_seconds:.1f}",
        )
        for i in infos
    ]
    widths = [max(len(r[c]) for r in (header, *rows)) for c in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)) for r in rows]
    top = "  ".join(cell.ljust(w) for cell, w in zip(header, widths, strict=True))
    return "\n".join([top, "  ".join("-" * w for w in widths), *lines])


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point: train, write, print the summary table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=HERE, help="output folder (default: %(default)s)"
    )
    parser.add_argument(
        "--large",
        action="store_true",
        help="also train text_sgd and synthetic_sgd (about 1 minute, ~2 GB of RAM)",
    )
    args = parser.parse_args(argv)
    infos = train_small(args.out)
    if args.large:
        infos += train_large(args.out)
    print(format_table(infos))
    return 0


if __name__ == "__main__":
    sys.exit(main())
