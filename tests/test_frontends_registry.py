"""The frontends' registry is the one list of supported classes: the loader's allow-list, the
classes themselves and `edgesparse list models` are checked against it."""

from __future__ import annotations

import importlib
import importlib.util
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from edgesparse import frontends
from edgesparse.cli import cli
from edgesparse.errors import UnsupportedModelError
from edgesparse.ir import KnnIR, LinearIR
from edgesparse.loader.allowlist import ALLOWED_GLOBALS, SGD_FAST_LOSSES
from tests.conftest import require_tool

# What the allow-list lets a model file name besides the registered classes: the parts of a
# model, never a model itself. Each is listed, not matched by pattern, so a new estimator in
# the allow-list cannot hide here.
_NOT_MODELS: frozenset[tuple[str, str]] = frozenset(
    {
        # numpy arrays, dtypes, scalars (numpy 2 and numpy 1.x spellings) and RandomState
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy._core.numeric", "_frombuffer"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy.random._pickle", "__randomstate_ctor"),
        ("numpy.random._pickle", "__bit_generator_ctor"),
        ("numpy.random._mt19937", "MT19937"),
        # a .sparsify()-ed coef_ (and the pre-1.8 module names)
        ("scipy.sparse._csr", "csr_matrix"),
        ("scipy.sparse._csr", "csr_array"),
        ("scipy.sparse._csc", "csc_matrix"),
        ("scipy.sparse._csc", "csc_array"),
        ("scipy.sparse.csr", "csr_matrix"),
        ("scipy.sparse.csc", "csc_matrix"),
        # the dtype class a text vectorizer keeps
        ("numpy", "int64"),
        ("numpy", "float64"),
        ("numpy", "float32"),
        # the output slices a fitted ColumnTransformer keeps (output_indices_)
        ("builtins", "slice"),
        # joblib's array record; protocol 2's bytes
        ("joblib.numpy_pickle", "NumpyArrayWrapper"),
        ("_codecs", "encode"),
        # fitted attributes of scikit-learn estimators: the label binarizer of
        # OneVsRestClassifier and RidgeClassifier(CV), the loss objects of SGD & co.
        ("sklearn.preprocessing._label", "LabelBinarizer"),
        *(("sklearn.linear_model._sgd_fast", name) for name in SGD_FAST_LOSSES),
        *(
            (module, name)
            for module in ("sklearn._loss._loss", "_loss")  # "_loss": scikit-learn 1.8.0's build
            for name in ("CyHalfBinomialLoss", "CyHalfSquaredError", "CyHuberLoss")
        ),
        # a Surprise algorithm's trainset (and where Surprise <= 1.0.4 kept it), the
        # predictions surprise.dump keeps next to it, and the defaultdict(list) of its ratings
        ("surprise.trainset", "Trainset"),
        ("surprise.dataset", "Trainset"),
        ("surprise.prediction_algorithms.predictions", "Prediction"),
        ("collections", "defaultdict"),
        ("builtins", "list"),
        ("__builtin__", "list"),
    }
)

# Registered but never in a model file: edgesparse.loader builds it from an .npz file.
_NOT_PICKLED = frozenset({("edgesparse.loader.npz_reader", "RawLinearModel")})

# `edgesparse list models` before the registry (edgesparse 0.1.0): the output stays this.
_LISTED_BEFORE = [
    "ARDRegression",
    "BayesianRidge",
    "ElasticNet",
    "ElasticNetCV",
    "HuberRegressor",
    "Lars",
    "LarsCV",
    "Lasso",
    "LassoCV",
    "LassoLars",
    "LassoLarsCV",
    "LassoLarsIC",
    "LinearRegression",
    "LinearSVC",
    "LinearSVR",
    "LogisticRegression",
    "LogisticRegressionCV",
    "MultiOutputRegressor",
    "MultiTaskElasticNet",
    "MultiTaskElasticNetCV",
    "MultiTaskLasso",
    "MultiTaskLassoCV",
    "OneVsRestClassifier",
    "OrthogonalMatchingPursuit",
    "OrthogonalMatchingPursuitCV",
    "PassiveAggressiveClassifier",
    "PassiveAggressiveRegressor",
    "Perceptron",
    "Pipeline",
    "QuantileRegressor",
    "RawLinearModel",
    "Ridge",
    "RidgeCV",
    "RidgeClassifier",
    "RidgeClassifierCV",
    "SGDClassifier",
    "SGDRegressor",
    "TheilSenRegressor",
    "surprise.KNNBasic",
    "surprise.KNNWithMeans",
    "surprise.KNNWithZScore",
    "surprise.KNNBaseline",
    "surprise.SVD",
    "surprise.SVDpp",
    "surprise.NMF",
    "surprise.BaselineOnly",
]


def _registered() -> set[tuple[str, str]]:
    return {e.key for e in frontends.registered()}


def test_every_registered_class_is_allowed_by_the_loader() -> None:
    assert sorted(_registered() - _NOT_PICKLED - ALLOWED_GLOBALS) == []


def test_every_class_the_loader_allows_is_registered_or_a_part() -> None:
    assert sorted(ALLOWED_GLOBALS - _registered() - _NOT_MODELS) == []
    # ... and the list of parts names nothing that is registered or no longer allowed.
    assert sorted(_NOT_MODELS & _registered()) == []
    assert sorted(_NOT_MODELS - ALLOWED_GLOBALS) == []


def test_every_registered_class_is_where_the_registry_says() -> None:
    # The key is what type(obj).__module__ and __name__ say of the installed class (the MRO
    # walk matches on it): a class moved by a new release would never be found.
    for entry in frontends.registered():
        if entry.module.startswith("surprise") and importlib.util.find_spec("surprise") is None:
            continue
        klass = getattr(importlib.import_module(entry.module), entry.name)
        assert (klass.__module__, klass.__name__) == entry.key


def test_class_names_are_registered_once() -> None:
    names = [e.name for e in frontends.registered()]
    assert len(names) == len(set(names))


def test_list_models_is_the_registry() -> None:
    result = CliRunner().invoke(cli, ["list", "models"])
    assert result.exit_code == 0, result.output
    listed = result.output.splitlines()
    assert listed == _LISTED_BEFORE
    assert listed == frontends.listed_models()
    kinds = {e.name: e.kind for e in frontends.registered()}
    assert {n.removeprefix("surprise.") for n in listed} == {
        n for n, k in kinds.items() if k not in ("scaler", "featurizer")
    }


def test_registering_needs_the_module_and_a_new_name() -> None:
    with pytest.raises(ValueError, match="a converter for Ridge is already registered"):
        frontends.register("mylib.models.Ridge")(lambda est: None)
    with pytest.raises(ValueError, match=r"give the class with its module: 'module\.Brand'"):
        frontends.register("Brand")(lambda est: None)
    assert "Brand" not in {e.name for e in frontends.registered()}


def test_import_needs_no_model_library() -> None:
    code = (
        "import sys, edgesparse.frontends as f; f.registered(); f.listed_models(); "
        "bad = [m for m in ('sklearn', 'scipy', 'surprise') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_to_ir_gives_the_ir_of_each_kind(tmp_path) -> None:
    from sklearn.linear_model import Ridge

    X = np.arange(12.0).reshape(4, 3)
    ir = frontends.to_ir(Ridge().fit(X, [0.0, 1.0, 2.0, 4.0]))
    assert isinstance(ir, LinearIR) and ir.shape == (1, 3)

    require_tool(
        importlib.util.find_spec("surprise") is not None,
        what="scikit-surprise",
        install="pip install -e '.[surprise]'",
    )
    import surprise

    rows = "u1,i1,4\nu1,i2,2\nu2,i1,5\nu2,i2,1\n"
    path = tmp_path / "ratings.csv"
    path.write_text(rows)
    reader = surprise.Reader(line_format="user item rating", sep=",", rating_scale=(1, 5))
    trainset = surprise.Dataset.load_from_file(str(path), reader=reader).build_full_trainset()
    algo = surprise.KNNBasic(k=2, verbose=False).fit(trainset)
    knn = frontends.to_ir(algo)
    assert isinstance(knn, KnnIR) and (knn.n_users, knn.n_items) == (2, 2)
    assert frontends.to_ir({"predictions": [], "algo": algo}).n_ratings == 4
    with pytest.raises(
        UnsupportedModelError, match="KNNBasic is not supported; edgesparse converts: "
    ):
        frontends.to_linear_ir(algo)
