"""Tests for ``models/train.py``: the example models train, score well, and match the committed
files in ``models/``."""

from __future__ import annotations

import importlib.util
import pickle
import sys
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.exceptions import InconsistentVersionWarning

MODELS_DIR = Path(__file__).resolve().parent.parent / "models"


def _import_train() -> ModuleType:
    """Import ``models/train.py`` (not a package) as a module."""
    name = "edgesparse_models_train"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, MODELS_DIR / "train.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


train = _import_train()

# Held-out score floors: accuracy for classifiers, R² for the regressor.
FLOORS = {
    "iris_l1_logreg": 0.85,
    "iris_l2_logreg": 0.85,
    "iris_sgd_l1": 0.85,
    "digits_pipeline": 0.93,
    "diabetes_ridge": 0.30,
}
# (n_test_rows, n_features)
SHAPES = {
    "iris_l1_logreg": (45, 4),
    "iris_l2_logreg": (45, 4),
    "iris_sgd_l1": (45, 4),
    "digits_pipeline": (450, 64),
    "diabetes_ridge": (111, 10),
}


def _load_pickle(path: Path) -> Any:
    with open(path, "rb") as f:
        return pickle.load(f)


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """Train the small models once into a temporary folder, with warnings as errors."""
    out = tmp_path_factory.mktemp("models")
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        warnings.simplefilter("error", DeprecationWarning)
        infos = train.train_small(out)
    return out, {info.name: info for info in infos}


def test_small_model_names_match_the_readme() -> None:
    assert tuple(FLOORS) == train.SMALL_MODELS
    assert set(train.TRAINERS) == set(train.SMALL_MODELS) | set(train.LARGE_MODELS)


@pytest.mark.parametrize("name", list(FLOORS))
def test_fresh_model_loads_and_scores(name: str, fresh: tuple[Path, dict[str, Any]]) -> None:
    out, infos = fresh
    model = _load_pickle(out / f"{name}.pkl")
    X, y = train.load_test_data(out / f"{name}.test.npz")
    assert isinstance(X, np.ndarray) and X.dtype == np.float64
    assert X.shape == SHAPES[name]
    assert y.shape == (X.shape[0],)
    assert model.n_features_in_ == X.shape[1]
    score = model.score(X, y)
    assert score >= FLOORS[name], f"{name}: held-out score {score:.3f} < {FLOORS[name]}"
    assert score == pytest.approx(infos[name].score)
    # Pickles are plain pickle protocol 5 (starts with PROTO 5).
    assert (out / f"{name}.pkl").read_bytes()[:2] == b"\x80\x05"


def test_l1_models_are_sparse(fresh: tuple[Path, dict[str, Any]]) -> None:
    _, infos = fresh
    assert infos["iris_l1_logreg"].nnz < 12  # some of the 3x4 weights are exactly zero
    assert infos["iris_l2_logreg"].nnz == 12


@pytest.mark.parametrize("name", list(FLOORS))
def test_committed_model_matches_fresh(name: str, fresh: tuple[Path, dict[str, Any]]) -> None:
    """The committed files are what the script produces (it is deterministic).

    Labels must agree exactly and values to 1e-6 relative. Weights are not compared bit for
    bit: lbfgs/saga on another BLAS or CPU may differ in the last bits, which must not fail
    the test as long as predictions agree. If the committed pickles were written by another
    scikit-learn version, the comparison is skipped (regenerate with ``models/train.py``).
    """
    out, _ = fresh
    committed_pkl = MODELS_DIR / f"{name}.pkl"
    committed_npz = MODELS_DIR / f"{name}.test.npz"
    assert committed_pkl.exists() and committed_npz.exists(), (
        f"models/{name}.pkl or .test.npz missing: run python models/train.py"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", InconsistentVersionWarning)
        try:
            committed = _load_pickle(committed_pkl)
        except InconsistentVersionWarning as exc:
            pytest.skip(f"committed {name}.pkl is from another scikit-learn version: {exc}")
    fresh_model = _load_pickle(out / f"{name}.pkl")
    X, y = train.load_test_data(committed_npz)
    X_new, y_new = train.load_test_data(out / f"{name}.test.npz")
    np.testing.assert_array_equal(X, X_new)
    np.testing.assert_array_equal(y, y_new)
    if hasattr(fresh_model, "classes_"):
        np.testing.assert_array_equal(committed.predict(X), fresh_model.predict(X))
        np.testing.assert_allclose(
            committed.decision_function(X), fresh_model.decision_function(X), rtol=1e-6, atol=1e-9
        )
    else:
        np.testing.assert_allclose(committed.predict(X), fresh_model.predict(X), rtol=1e-6)


def test_csr_test_data_round_trip(tmp_path: Path) -> None:
    X = sp.random(7, 50, density=0.2, format="csr", random_state=0)
    y = np.arange(7)
    path = tmp_path / "t.test.npz"
    train.save_test_data(path, X, y)
    with np.load(path, allow_pickle=False) as npz:
        assert set(npz.files) == {"X_data", "X_indices", "X_indptr", "X_shape", "y"}
        assert npz["X_shape"].tolist() == [7, 50]
    X2, y2 = train.load_test_data(path)
    assert sp.issparse(X2) and X2.dtype == np.float64
    np.testing.assert_array_equal(X2.toarray(), X.toarray())
    np.testing.assert_array_equal(y2, y)


def test_text_corpus_looks_like_text() -> None:
    """A small corpus from the M4 generator: ~27 distinct tokens a document, hashed to CSR."""
    rng = np.random.default_rng(0)
    docs, y = train.synth_text_corpus(500, rng)
    assert len(docs) == 500 and y.shape == (500,)
    assert set(np.unique(y)) == set(range(20))
    X = train.hash_docs(docs)
    assert X.shape == (500, 2**18) and X.format == "csr"
    assert 24 <= X.nnz / X.shape[0] <= 30
    np.testing.assert_allclose(sp.linalg.norm(X, axis=1), 1.0)
    docs2, y2 = train.synth_text_corpus(500, np.random.default_rng(0))
    assert all(list(a) == list(b) for a, b in zip(docs, docs2, strict=True))
    np.testing.assert_array_equal(y, y2)


def test_large_trainers_at_small_scale(tmp_path: Path) -> None:
    """The large trainers' code paths, on small sizes so the test stays fast."""
    text = train.train_text_sgd(n_train=2_000, n_test=200)
    assert sp.issparse(text.X_test) and text.X_test.shape == (200, 2**18)
    assert text.estimator.score(text.X_test, text.y_test) > 0.3  # chance is 0.05
    dense = train.train_synthetic_sgd(n_samples=1_200, n_features=500, n_test=200)
    assert dense.X_test.shape == (200, 500) and dense.X_test.dtype == np.float64
    assert list(dense.estimator.classes_) == [0, 1]
    assert dense.estimator.score(dense.X_test, dense.y_test) > 0.8
