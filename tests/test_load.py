"""Tests for edgesparse.loader: round trips against scikit-learn, hostile files, bad files."""

from __future__ import annotations

import _compat_pickle
import copyreg
import gzip
import importlib
import io
import os
import pickle
import random
import re
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
import skops.io as sio
from sklearn import linear_model as lm
from sklearn import svm
from sklearn.datasets import load_iris, make_regression
from sklearn.model_selection import GridSearchCV
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MaxAbsScaler, MinMaxScaler, StandardScaler
from sklearn.tree import DecisionTreeClassifier

from edgesparse.errors import (
    EdgesparseError,
    InputError,
    ModelFileError,
    UnsafeModelError,
    UnsupportedModelError,
)
from edgesparse.loader import ALLOWED_GLOBALS, RawLinearModel, allowed_globals, load_model

L = importlib.import_module("edgesparse.loader")
CRAFTED_FIX = (
    "no file numpy, scikit-learn or joblib writes does that: it is crafted or corrupt; "
    "re-save the model with joblib.dump or pickle.dump"
)

# PassiveAggressive* are deprecated in scikit-learn 1.8 but still supported by edgesparse.
pytestmark = pytest.mark.filterwarnings("ignore:Class PassiveAggressive:FutureWarning")

SGD_LOSSES = [
    "hinge",
    "log_loss",
    "modified_huber",
    "squared_hinge",
    "perceptron",
    "squared_error",
    "huber",
    "epsilon_insensitive",
    "squared_epsilon_insensitive",
]

MODEL_NAMES = [
    "lr",
    "lr_binary",
    "lr_str_labels",
    "lr_object_labels",
    "lr_cv",
    "ovr_lr",
    "ovr_linear_svc",
    *(f"sgd_{loss}" for loss in SGD_LOSSES),
    "sgd_random_state_object",
    "sgd_regressor",
    "linear_svc",
    "linear_svr",
    "ridge_classifier",
    "ridge_classifier_cv",
    "ridge",
    "ridge_cv",
    "lasso",
    "lasso_cv",
    "elastic_net",
    "elastic_net_cv",
    "linear_regression",
    "linear_regression_multi",
    "perceptron",
    "passive_aggressive_classifier",
    "passive_aggressive_regressor",
    "huber",
    "multi_task_lasso",
    "multi_task_elastic_net",
    "multi_task_lasso_cv",
    "multi_task_elastic_net_cv",
    "sparsified_lr",
    "sparsified_sgd_regressor",
    "pipe_standard",
    "pipe_maxabs",
    "pipe_minmax",
]


def _fit_models() -> dict[str, tuple[Any, np.ndarray]]:
    X, y = load_iris(return_X_y=True)
    y_bin = (y == 0).astype(int)
    y_str = np.array(["setosa", "versicolor", "virginica"])[y]
    y_obj = y_str.astype(object)
    Xr, yr = make_regression(n_samples=60, n_features=5, random_state=0)
    Xm, ym = make_regression(n_samples=60, n_features=5, n_targets=3, random_state=0)
    m: dict[str, tuple[Any, np.ndarray]] = {
        "lr": (lm.LogisticRegression(max_iter=500).fit(X, y), X),
        "lr_binary": (lm.LogisticRegression().fit(X, y_bin), X),
        "lr_str_labels": (lm.LogisticRegression(max_iter=500).fit(X, y_str), X),
        "lr_object_labels": (lm.LogisticRegression(max_iter=500).fit(X, y_obj), X),
        "lr_cv": (lm.LogisticRegressionCV(cv=3, max_iter=500).fit(X, y), X),
        "ovr_lr": (OneVsRestClassifier(lm.LogisticRegression()).fit(X, y_str), X),
        "ovr_linear_svc": (OneVsRestClassifier(svm.LinearSVC()).fit(X, y), X),
        "sgd_random_state_object": (
            lm.SGDClassifier(random_state=np.random.RandomState(0)).fit(X, y),
            X,
        ),
        "sgd_regressor": (lm.SGDRegressor(random_state=0).fit(Xr, yr), Xr),
        "linear_svc": (svm.LinearSVC().fit(X, y), X),
        "linear_svr": (svm.LinearSVR().fit(Xr, yr), Xr),
        "ridge_classifier": (lm.RidgeClassifier().fit(X, y_str), X),
        "ridge_classifier_cv": (lm.RidgeClassifierCV().fit(X, y), X),
        "ridge": (lm.Ridge().fit(Xr, yr), Xr),
        "ridge_cv": (lm.RidgeCV().fit(Xr, yr), Xr),
        "lasso": (lm.Lasso().fit(Xr, yr), Xr),
        "lasso_cv": (lm.LassoCV(cv=3).fit(Xr, yr), Xr),
        "elastic_net": (lm.ElasticNet().fit(Xr, yr), Xr),
        "elastic_net_cv": (lm.ElasticNetCV(cv=3, l1_ratio=[0.2, 0.8]).fit(Xr, yr), Xr),
        "linear_regression": (lm.LinearRegression().fit(Xr, yr), Xr),
        "linear_regression_multi": (lm.LinearRegression().fit(Xm, ym), Xm),
        "perceptron": (lm.Perceptron().fit(X, y), X),
        "passive_aggressive_classifier": (lm.PassiveAggressiveClassifier().fit(X, y), X),
        "passive_aggressive_regressor": (lm.PassiveAggressiveRegressor().fit(Xr, yr), Xr),
        "huber": (lm.HuberRegressor().fit(Xr, yr), Xr),
        "multi_task_lasso": (lm.MultiTaskLasso().fit(Xm, ym), Xm),
        "multi_task_elastic_net": (lm.MultiTaskElasticNet().fit(Xm, ym), Xm),
        "multi_task_lasso_cv": (lm.MultiTaskLassoCV(cv=3).fit(Xm, ym), Xm),
        "multi_task_elastic_net_cv": (lm.MultiTaskElasticNetCV(cv=3).fit(Xm, ym), Xm),
        "pipe_standard": (make_pipeline(StandardScaler(), lm.LogisticRegression()).fit(X, y), X),
        "pipe_maxabs": (make_pipeline(MaxAbsScaler(), lm.LogisticRegression()).fit(X, y_str), X),
        "pipe_minmax": (make_pipeline(MinMaxScaler(), lm.RidgeClassifier()).fit(X, y), X),
    }
    for loss in SGD_LOSSES:
        m[f"sgd_{loss}"] = (lm.SGDClassifier(loss=loss, random_state=0).fit(X, y), X)
    sparse_lr = lm.LogisticRegression(max_iter=500).fit(X, y)
    sparse_lr.sparsify()
    m["sparsified_lr"] = (sparse_lr, X)
    sparse_sgd = lm.SGDRegressor(random_state=0).fit(Xr, yr)
    sparse_sgd.sparsify()
    m["sparsified_sgd_regressor"] = (sparse_sgd, Xr)
    assert sorted(m) == sorted(MODEL_NAMES)
    return m


@pytest.fixture(scope="session")
def fitted() -> dict[str, tuple[Any, np.ndarray]]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence warnings of tiny fits are irrelevant here
        return _fit_models()


def _save(est: Any, fmt: str, folder: Path) -> Path:
    if fmt.startswith("pickle"):
        path = folder / "model.pkl"
        path.write_bytes(pickle.dumps(est, protocol=int(fmt[-1])))
    elif fmt == "skops":
        path = folder / "model.skops"
        sio.dump(est, path)
    else:
        compress: Any = {
            "joblib": 0,
            "joblib-3": 3,
            "joblib-lzma": ("lzma", 3),
            "joblib-gzip": ("gzip", 3),
            "joblib-bz2": ("bz2", 3),
            "joblib-xz": ("xz", 3),
        }[fmt]
        path = folder / "model.joblib"
        joblib.dump(est, path, compress=compress)
    return path


FORMATS = [
    "pickle2",
    "pickle3",
    "pickle4",
    "pickle5",
    "joblib",
    "joblib-3",
    "joblib-lzma",
    "joblib-gzip",
    "joblib-bz2",
    "joblib-xz",
    "skops",
]


# -- round trips: scikit-learn itself is the oracle --------------------------------------------
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_round_trip_predicts_like_the_original(fitted, name, fmt, tmp_path):
    est, X = fitted[name]
    path = _save(est, fmt, tmp_path)
    if name == "sparsified_sgd_regressor" and fmt == "skops":
        # skops 0.16 cannot rebuild this 1-row CSR coef_ itself; we must still say so cleanly.
        try:
            loaded = load_model(path)
        except ModelFileError as exc:
            assert str(exc).startswith(f"cannot load {path}: not a valid skops file")
            return
    else:
        loaded = load_model(path)
    assert type(loaded) is type(est)
    np.testing.assert_array_equal(loaded.predict(X), est.predict(X))
    if hasattr(est, "decision_function"):
        np.testing.assert_array_equal(loaded.decision_function(X), est.decision_function(X))


def test_object_labels_are_an_object_array_through_joblib(fitted, tmp_path):
    # Object arrays take joblib's nested-pickle path: make sure it is really exercised.
    est, _ = fitted["lr_object_labels"]
    assert est.classes_.dtype == object
    loaded = load_model(_save(est, "joblib", tmp_path))
    assert loaded.classes_.dtype == object
    assert list(loaded.classes_) == ["setosa", "versicolor", "virginica"]


def test_joblib_written_to_a_pkl_name_and_pickle_suffix(fitted, tmp_path):
    est, X = fitted["pipe_standard"]
    for name, compress in (("a.pkl", 0), ("b.pkl", 3), ("c.pickle", ("gzip", 3))):
        joblib.dump(est, tmp_path / name, compress=compress)
        np.testing.assert_array_equal(load_model(tmp_path / name).predict(X), est.predict(X))
    (tmp_path / "D.PKL").write_bytes(pickle.dumps(est))
    np.testing.assert_array_equal(load_model(str(tmp_path / "D.PKL")).predict(X), est.predict(X))


def test_numpy_scalars_and_arrays_of_every_protocol(tmp_path):
    obj = {"a": np.float32(1.5), "b": np.arange(6).reshape(2, 3).T, "c": np.array(["x", "yy"])}
    for proto in range(2, 6):
        path = tmp_path / f"p{proto}.pkl"
        path.write_bytes(pickle.dumps(obj, protocol=proto))
        got = load_model(path)
        assert got["a"] == np.float32(1.5) and got["a"].dtype == np.float32
        np.testing.assert_array_equal(got["b"], obj["b"])
        np.testing.assert_array_equal(got["c"], obj["c"])


# -- the allow-list itself ---------------------------------------------------------------------
def test_every_allowed_global_resolves():
    # Catches typos in the list: each pair must import to a real object here.
    for module, name in ALLOWED_GLOBALS:
        assert L.resolve_global(module, name, "x") is not None, (module, name)


def test_allow_list_has_nothing_dangerous():
    names = allowed_globals()
    assert names == sorted(names) and len(names) == len(ALLOWED_GLOBALS)
    # builtins.list is the one builtin: it resolves to a token only defaultdict(list) takes.
    assert L.resolve_global("builtins", "list", "x") is not list
    # builtins.slice resolves to a stand-in that builds only slices of whole numbers.
    assert L.resolve_global("builtins", "slice", "x") is not slice
    names = [n for n in names if n not in ("builtins.list", "__builtin__.list", "builtins.slice")]
    assert not any(n.startswith(("builtins.", "os.", "posix.", "subprocess.")) for n in names)
    assert "copyreg._reconstructor" not in names
    assert not any("model_selection" in n or "GridSearch" in n for n in names)
    assert all("." not in name for _, name in ALLOWED_GLOBALS)  # no dotted qualnames


def test_codecs_encode_stand_in_accepts_only_latin1(tmp_path):
    path = tmp_path / "m.pkl"
    # _codecs.encode("abc", "rot13"): the global is allowed (protocol 2 needs it), the use not.
    path.write_bytes(b"\x80\x02c_codecs\nencode\nX\x03\x00\x00\x00abcX\x05\x00\x00\x00rot13\x86R.")
    with pytest.raises(ModelFileError) as info:
        load_model(path)
    assert str(info.value) == (
        f"cannot load {path}: it calls _codecs.encode other than as text to latin-1 bytes; "
        f"{CRAFTED_FIX}"
    )


# -- hostile pickles ---------------------------------------------------------------------------
class _Reduce:
    """Pickles as ``func(*args)``: what an attacker's object looks like."""

    def __init__(self, func: Any, args: tuple) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple:
        return self.func, self.args


def _stack_global(module: str, name: str) -> bytes:
    def s(text: str) -> bytes:
        raw = text.encode()
        return pickle.SHORT_BINUNICODE + bytes([len(raw)]) + raw

    return b"\x80\x04" + s(module) + s(name) + pickle.STACK_GLOBAL + pickle.STOP


def _expected_refusal(path: Path, name: str) -> str:
    return (
        f"refused to load {path}: it references {name}, which is not on edgesparse's "
        "allow-list (only scikit-learn linear models, scalers, pipelines, Surprise k-NN "
        "recommenders, numpy and scipy.sparse arrays are allowed). Load it only if you trust "
        "it, re-save it with "
        "skops, or export its weights to .npz"
    )


def test_os_system_is_refused_with_nothing_executed(tmp_path):
    canary = tmp_path / "CANARY"
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(_Reduce(os.system, (f"touch {canary}",))))
    with pytest.raises(UnsafeModelError) as info:
        load_model(path)
    assert str(info.value) == _expected_refusal(path, f"{os.system.__module__}.system")
    assert not canary.exists()


@pytest.mark.parametrize(
    ("func", "args_of", "shown"),
    [
        (subprocess.Popen, lambda c: (["touch", str(c)],), "subprocess.Popen"),
        (eval, lambda c: (f"open({str(c)!r}, 'w')",), "builtins.eval"),
        (exec, lambda c: (f"open({str(c)!r}, 'w')",), "builtins.exec"),
        (getattr, lambda c: ("x", "upper"), "builtins.getattr"),
        (open, lambda c: (str(c), "w"), "io.open"),
    ],
)
@pytest.mark.parametrize("fmt", ["pickle2", "pickle5", "joblib", "joblib-3", "joblib-lzma"])
def test_hostile_callables_are_refused(tmp_path, func, args_of, shown, fmt):
    canary = tmp_path / "CANARY"
    path = _save(_Reduce(func, args_of(canary)), fmt, tmp_path)
    if fmt == "pickle2":
        # Protocol 2 writes Python 2 spellings (__builtin__.eval); the refusal names what the
        # file says, and the Python 2 name is refused just the same.
        module, _, name = shown.rpartition(".")
        module, name = _compat_pickle.REVERSE_NAME_MAPPING.get((module, name), (module, name))
        shown = f"{_compat_pickle.REVERSE_IMPORT_MAPPING.get(module, module)}.{name}"
    with pytest.raises(UnsafeModelError) as info:
        load_model(path)
    assert str(info.value) == _expected_refusal(path, shown)
    assert not canary.exists()


def test_hostile_object_hidden_inside_an_allowed_model(fitted, tmp_path):
    canary = tmp_path / "CANARY"
    est, _ = fitted["lr"]
    evil = pickle.loads(pickle.dumps(est))
    evil.note_ = _Reduce(os.system, (f"touch {canary}",))
    for fmt in ("pickle4", "joblib", "joblib-gzip"):
        with pytest.raises(UnsafeModelError, match=r"\.system, which is not"):
            load_model(_save(evil, fmt, tmp_path))
    assert not canary.exists()


def test_hostile_object_inside_a_joblib_object_array(tmp_path):
    # joblib pickles object arrays in a nested stream: it must get the same checks.
    canary = tmp_path / "CANARY"
    arr = np.array([_Reduce(os.system, (f"touch {canary}",)), 1], dtype=object)
    for compress in (0, 3):
        path = tmp_path / f"m{compress}.joblib"
        joblib.dump({"classes_": arr}, path, compress=compress)
        with pytest.raises(UnsafeModelError, match=r"\.system, which is not"):
            load_model(path)
    assert not canary.exists()


def test_dotted_name_is_not_walked(tmp_path):
    path = tmp_path / "model.pkl"
    path.write_bytes(
        _stack_global("sklearn.linear_model._logistic", "LogisticRegression.__init__.__globals__")
    )
    with pytest.raises(UnsafeModelError) as info:
        load_model(path)
    assert str(info.value) == _expected_refusal(
        path, "sklearn.linear_model._logistic.LogisticRegression.__init__.__globals__"
    )


@pytest.mark.parametrize("module", ["antigravity", "this"])
def test_refused_module_is_never_imported(tmp_path, module):
    if module in sys.modules:
        pytest.skip(f"{module} was imported by something else")
    for i, data in enumerate(
        (_stack_global(module, "main"), b"\x80\x02c" + module.encode() + b"\nmain\n.")
    ):
        path = tmp_path / f"m{i}.pkl"
        path.write_bytes(data)
        with pytest.raises(UnsafeModelError, match=f"references {module}.main, which is not"):
            load_model(path)
        assert module not in sys.modules


def _expected_unsupported(path: Path, name: str) -> str:
    return (
        f"cannot load {path}: it holds scikit-learn's {name}, which is not a supported model; "
        "`edgesparse list models` lists the supported ones"
    )


def test_unsupported_estimator_is_refused_at_load(tmp_path):
    # A scikit-learn class off the list is an unsupported model, not an attack: it is refused
    # the same way (before its module is imported), with a message that says so.
    X, y = load_iris(return_X_y=True)
    tree = DecisionTreeClassifier(max_depth=2).fit(X, y)
    for fmt in ("pickle5", "joblib", "skops"):
        path = _save(tree, fmt, tmp_path)
        with pytest.raises(UnsupportedModelError) as info:
            load_model(path)
        assert str(info.value) == _expected_unsupported(path, "DecisionTreeClassifier")


def test_unsupported_model_is_decided_without_importing_it(tmp_path):
    path = tmp_path / "m.pkl"
    module = "sklearn.edgesparse_never_imported._mod"
    path.write_bytes(b"\x80\x02c" + module.encode() + b"\nSomeForest\n)\x81.")
    with pytest.raises(UnsupportedModelError) as info:
        load_model(path)
    assert str(info.value) == _expected_unsupported(path, "SomeForest")
    assert module not in sys.modules and "sklearn.edgesparse_never_imported" not in sys.modules


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("sklearn.utils", "_print_elapsed_time"),  # a function, not a class
        ("sklearn.linear_model._logistic", "LogisticRegression.__init__"),  # attribute walk
        ("sklearn", "Pipeline"),  # no package path
        ("posix", "System"),  # not a model library
    ],
)
def test_other_globals_stay_a_security_refusal(tmp_path, module, name):
    path = tmp_path / "m.pkl"
    path.write_bytes(b"\x80\x02c" + module.encode() + b"\n" + name.encode() + b"\n)\x81.")
    with pytest.raises(UnsafeModelError) as info:
        load_model(path)
    assert str(info.value) == _expected_refusal(path, f"{module}.{name}")


def test_model_saved_by_another_sklearn_version(tmp_path):
    path = tmp_path / "old.pkl"
    path.write_bytes(b"\x80\x02csklearn.linear_model.logistic\nLogisticRegression\n)\x81.")
    with pytest.raises(ModelFileError) as info:
        load_model(path)
    assert str(info.value) == (
        f"cannot load {path}: it names scikit-learn's LogisticRegression as "
        "sklearn.linear_model.logistic.LogisticRegression, where the installed scikit-learn "
        "does not keep it: it was saved by another scikit-learn version; load it with that "
        "version and export its weights to .npz (coef, intercept, classes), or train it again "
        "with this one"
    )


def test_grid_search_is_refused(tmp_path):
    X, y = load_iris(return_X_y=True)
    gs = GridSearchCV(lm.LogisticRegression(max_iter=300), {"C": [1.0, 2.0]}, cv=2).fit(X, y)
    for fmt in ("pickle5", "skops"):
        # skops also lists numpy.ma.MaskedArray and private scorer classes: the file's root
        # object decides what it is.
        path = _save(gs, fmt, tmp_path)
        with pytest.raises(UnsupportedModelError) as info:
            load_model(path)
        assert str(info.value) == _expected_unsupported(path, "GridSearchCV")


def test_persistent_id_is_refused(tmp_path):
    class P(pickle.Pickler):
        def persistent_id(self, obj: Any) -> Any:
            return "ext-ref" if obj == "secret" else None

    buf = io.BytesIO()
    P(buf, protocol=4).dump(["secret"])
    path = tmp_path / "model.pkl"
    path.write_bytes(buf.getvalue())
    with pytest.raises(UnsafeModelError, match="persistent id"):
        load_model(path)


@pytest.mark.parametrize(("code", "op"), [(0x7B, b"\x82\x7b"), (0x1234, b"\x83\x34\x12")])
def test_copyreg_extension_codes_are_refused(tmp_path, code, op):
    canary = tmp_path / "CANARY"
    # Even with os.system registered and already in copyreg's cache (which the stdlib
    # unpickler consults before find_class), EXT opcodes must be refused.
    copyreg.add_extension("posix", "system", code)
    copyreg._extension_cache[code] = os.system  # type: ignore[attr-defined]
    try:
        path = tmp_path / "model.pkl"
        cmd = f"touch {canary}".encode()
        path.write_bytes(
            b"\x80\x02"
            + op
            + pickle.BINUNICODE
            + len(cmd).to_bytes(4, "little")
            + cmd
            + pickle.TUPLE1
            + pickle.REDUCE
            + pickle.STOP
        )
        with pytest.raises(UnsafeModelError, match="extension registry"):
            load_model(path)
    finally:
        copyreg.remove_extension("posix", "system", code)
    assert not canary.exists()


# -- hostile skops files -----------------------------------------------------------------------
def test_skops_refuses_types_skops_itself_trusts(tmp_path):
    # skops trusts every sklearn estimator by default; we do not. Inside a supported Pipeline
    # (the root is allowed), every refused name is a scikit-learn class: an unsupported model.
    X, y = load_iris(return_X_y=True)
    path = tmp_path / "tree.skops"
    model = make_pipeline(StandardScaler(), DecisionTreeClassifier(max_depth=2))
    sio.dump(model.fit(X, y), path)
    with pytest.raises(UnsupportedModelError) as info:
        load_model(path)
    assert str(info.value) == (
        f"cannot load {path}: it holds scikit-learn classes that are not a supported model "
        "(DecisionTreeClassifier, Tree); `edgesparse list models` lists the supported ones"
    )


def test_skops_refuses_a_function_reference(fitted, tmp_path):
    est, _ = fitted["ridge"]
    evil = pickle.loads(pickle.dumps(est))
    evil.hook_ = os.system
    path = tmp_path / "evil.skops"
    sio.dump(evil, path)
    with pytest.raises(UnsafeModelError) as info:
        load_model(path)
    # The advice for a .skops file is not "re-save it with skops".
    assert str(info.value) == (
        f"refused to load {path}: it references posix.system, which is not on edgesparse's "
        "allow-list (only scikit-learn linear models, scalers, pipelines, Surprise k-NN "
        "recommenders, numpy and scipy.sparse arrays are allowed). If it is a linear model, "
        "export its weights to .npz (coef, intercept)"
    )


# -- bad files ---------------------------------------------------------------------------------
def test_missing_file(tmp_path):
    path = tmp_path / "nope.pkl"
    with pytest.raises(ModelFileError) as info:
        load_model(path)
    assert str(info.value) == f"model file not found: {path} (check the path)"


def test_directory(tmp_path):
    path = tmp_path / "dir.joblib"
    path.mkdir()
    with pytest.raises(ModelFileError, match="is a directory"):
        load_model(path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.pkl"
    path.write_bytes(b"")
    with pytest.raises(ModelFileError) as info:
        load_model(path)
    assert str(info.value) == (
        f"cannot load {path}: the file is empty (save the model again with joblib.dump, "
        "pickle.dump, skops.io.dump or numpy.savez)"
    )


def test_text_file_named_pkl(tmp_path):
    path = tmp_path / "notes.pkl"
    path.write_text("class Foo:\n    pass\n")
    with pytest.raises(ModelFileError) as info:
        load_model(path)
    assert str(info.value) == (
        f"cannot load {path}: not a pickle or joblib file (it does not start like a pickle "
        "of protocol 2 or newer); re-save the model with joblib.dump or pickle.dump"
    )


def test_unknown_suffix(tmp_path):
    path = tmp_path / "model.bin"
    path.write_bytes(pickle.dumps([1]))
    with pytest.raises(ModelFileError) as info:
        load_model(path)
    assert str(info.value) == (
        f"cannot load {path}: unknown model file type ('.bin'); it looks like a pickle (a "
        "saved model); supported: .pkl, .pickle, .joblib, .skops, .npz (rename it to match "
        "how it was saved)"
    )
    (tmp_path / "model").write_bytes(b"\x00\x01")
    with pytest.raises(ModelFileError) as info:
        load_model(tmp_path / "model")
    assert str(info.value) == (
        f"cannot load {tmp_path / 'model'}: unknown model file type (no suffix); supported: "
        ".pkl, .pickle, .joblib, .skops, .npz (rename it to match how it was saved)"
    )


def test_zip_named_pkl_and_non_zip_skops_and_npz(tmp_path):
    zipped = tmp_path / "m.pkl"
    np.savez(tmp_path / "w.npz", coef=np.ones(3), intercept=np.zeros(()))
    zipped.write_bytes((tmp_path / "w.npz").read_bytes())
    with pytest.raises(ModelFileError, match="zip archive, not a pickle"):
        load_model(zipped)
    for name in ("m.skops", "m.npz"):
        (tmp_path / name).write_bytes(pickle.dumps([1]))
        with pytest.raises(ModelFileError, match="is a zip archive"):
            load_model(tmp_path / name)


def test_old_joblib_format(tmp_path):
    path = tmp_path / "old.joblib"
    path.write_bytes(b"ZF0x00000000000000a1" + b"\x00" * 20)
    with pytest.raises(ModelFileError, match=r"older than 0\.10"):
        load_model(path)


def test_trailing_data_and_a_cut_zlib_checksum(fitted, tmp_path):
    est, _ = fitted["lr"]
    path = tmp_path / "m.pkl"
    path.write_bytes(pickle.dumps(est) + b"extra")
    with pytest.raises(ModelFileError) as info:
        load_model(path)
    assert str(info.value) == (
        f"cannot load {path}: the file goes on after the end of its pickle (two files joined, "
        "or a damaged one); re-save the model with joblib.dump or pickle.dump"
    )
    # joblib itself loads a zlib file whose last bytes (the adler32 checksum) are missing.
    path = _save(est, "joblib-3", tmp_path)
    path.write_bytes(path.read_bytes()[:-2])
    joblib.load(path)
    with pytest.raises(ModelFileError) as info:
        load_model(path)
    assert str(info.value) == (
        f"cannot load {path}: the file is truncated: its compressed data ends before the "
        "end-of-stream marker; re-save the model with joblib.dump or pickle.dump"
    )


def _truncations(data: bytes) -> list[bytes]:
    cuts = sorted({*range(1, min(len(data), 64)), *range(64, len(data), max(1, len(data) // 97))})
    return [data[:n] for n in cuts]


@pytest.mark.parametrize("fmt", ["pickle2", "pickle5", "joblib", "joblib-3", "joblib-xz"])
def test_every_truncation_is_a_model_file_error(fitted, tmp_path, fmt):
    est, _ = fitted["pipe_standard"]
    good = _save(est, fmt, tmp_path)
    full = good.read_bytes()
    path = tmp_path / f"cut{good.suffix}"
    for part in _truncations(full):
        path.write_bytes(part)
        with pytest.raises(ModelFileError) as info:
            load_model(path)
        assert str(info.value).startswith(f"cannot load {path}: ")
        assert "\n" not in str(info.value)


def test_truncated_pickle_message(tmp_path):
    path = tmp_path / "cut.pkl"
    path.write_bytes(pickle.dumps(np.arange(10), protocol=4)[:-10])
    with pytest.raises(ModelFileError) as info:
        load_model(path)
    assert re.fullmatch(
        f"cannot load {re.escape(str(path))}: the file is truncated: its pickle needs \\d+ more "
        "bytes and \\d+ are left; re-save the model with joblib.dump or pickle.dump",
        str(info.value),
    )


@pytest.mark.parametrize("fmt", ["pickle2", "pickle5", "joblib", "joblib-gzip", "skops"])
def test_corrupted_files_never_leak_other_exceptions(fitted, tmp_path, fmt):
    # Random byte flips: loading either works or raises one of our errors, nothing else.
    est, _ = fitted["sgd_log_loss"]
    good = _save(est, fmt, tmp_path)
    data = good.read_bytes()
    rng = random.Random(1234)
    bad = tmp_path / f"bad{good.suffix}"
    for _ in range(150):
        buf = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            buf[rng.randrange(len(buf))] = rng.randrange(256)
        bad.write_bytes(bytes(buf))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                load_model(bad)
            except EdgesparseError as exc:
                # a flipped byte in a class name makes it an unsupported model
                assert isinstance(exc, (ModelFileError, UnsafeModelError, UnsupportedModelError)), (
                    exc
                )
                assert "\n" not in str(exc)


def test_garbage_bytes(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(50):
        path = tmp_path / f"g{i}.joblib"
        path.write_bytes(b"\x80" + rng.integers(0, 256, size=200, dtype=np.uint8).tobytes())
        with pytest.raises((ModelFileError, UnsafeModelError)):
            load_model(path)


def test_truncated_gzip_joblib_message(fitted, tmp_path):
    est, _ = fitted["lr"]
    path = _save(est, "joblib-gzip", tmp_path)
    data = path.read_bytes()
    assert gzip.decompress(data)  # it really is gzip
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError) as info:
        load_model(path)
    # Which exception the cut produces inside gzip/pickle is theirs to word (EOFError or
    # UnpicklingError, by Python version); ours is the rest of the line.
    msg = str(info.value)
    assert msg.startswith(
        f"cannot load {path}: not a valid pickle/joblib file, or it is truncated; re-save the "
        "model with joblib.dump or pickle.dump (where reading stopped: "
    )
    assert msg.endswith(")")


# -- npz weight files --------------------------------------------------------------------------
def test_npz_round_trip(tmp_path):
    path = tmp_path / "w.npz"
    coef = np.arange(12, dtype=np.float32).reshape(3, 4)
    np.savez(
        path,
        coef=coef,
        intercept=np.array([1.0, 2.0, 3.0]),
        classes=np.array(["a", "b", "c"]),
        head=np.array("softmax"),
    )
    raw = load_model(path)
    assert isinstance(raw, RawLinearModel)
    np.testing.assert_array_equal(raw.coef, coef)
    assert raw.coef.dtype == np.float32
    np.testing.assert_array_equal(raw.intercept, [1.0, 2.0, 3.0])
    assert list(raw.classes) == ["a", "b", "c"]
    assert raw.head == "softmax" and type(raw.head) is str
    with pytest.raises(AttributeError):
        raw.head = "x"  # type: ignore[misc]


def test_npz_minimal_binary_and_regression(tmp_path):
    path = tmp_path / "w.npz"
    np.savez(path, coef=np.ones(5), intercept=np.array(0.5))
    raw = load_model(path)
    assert raw.classes is None and raw.head is None and raw.coef.shape == (5,)
    np.savez(path, coef=np.ones((1, 5)), intercept=np.zeros(1), classes=np.array([3, 7]))
    assert list(load_model(path).classes) == [3, 7]


def test_npz_missing_coef(tmp_path):
    path = tmp_path / "w.npz"
    np.savez(path, intercept=np.zeros(2))
    with pytest.raises(ModelFileError) as info:
        load_model(path)
    assert str(info.value) == (
        f"cannot load {path}: it has no array 'coef'; expected 'coef' (n_outputs x n_features "
        "or n_features), 'intercept' (a scalar or one per output), optional 'classes' (one "
        "label per output) and 'head' (a 0-d string array)"
    )


def test_npz_object_array_is_refused_without_unpickling(tmp_path):
    canary = tmp_path / "CANARY"
    path = tmp_path / "w.npz"
    np.savez(
        path,
        coef=np.ones((2, 3)),
        intercept=np.zeros(2),
        classes=np.array([_Reduce(os.system, (f"touch {canary}",)), "b"], dtype=object),
    )
    with pytest.raises(UnsafeModelError) as info:
        load_model(path)
    assert str(info.value) == (
        f"refused to load {path}: array 'classes' holds Python objects, which would need "
        "unpickling; store numbers or fixed-width strings (e.g. np.asarray(labels, dtype=str))"
    )
    assert not canary.exists()


@pytest.mark.parametrize(
    ("arrays", "fragment"),
    [
        ({"coef": np.ones((2, 3)), "intercept": np.zeros(3)}, "'intercept' has shape (3,)"),
        ({"coef": np.ones((2, 3)), "intercept": np.zeros((2, 1))}, "'intercept' has shape"),
        ({"coef": np.ones((2, 3, 4)), "intercept": np.zeros(2)}, "must be 1-D or 2-D"),
        ({"coef": np.zeros((0, 3)), "intercept": np.zeros(0)}, "non-empty"),
        ({"coef": np.array(["a", "b"]), "intercept": np.zeros(1)}, "'coef' must be a numeric"),
        ({"coef": np.ones(3), "intercept": np.array("x")}, "'intercept' must be a numeric"),
        (
            {"coef": np.ones((3, 2)), "intercept": np.zeros(3), "classes": np.array([1, 2])},
            "'classes' has 2 labels but 'coef' has 3 output(s)",
        ),
        (
            {"coef": np.ones((2, 2)), "intercept": np.zeros(2), "classes": np.array([1, 1])},
            "repeated labels",
        ),
        ({"coef": np.ones(3), "intercept": np.zeros(()), "head": np.array(["a"])}, "0-d string"),
        ({"coef": np.ones(3), "intercept": np.zeros(()), "bias": np.zeros(1)}, "unexpected"),
    ],
)
def test_npz_validation(tmp_path, arrays, fragment):
    path = tmp_path / "w.npz"
    np.savez(path, **arrays)
    with pytest.raises(ModelFileError) as info:
        load_model(path)
    msg = str(info.value)
    assert msg.startswith(f"cannot load {path}: ")
    assert fragment in msg


def test_npz_corrupt_member(tmp_path):
    path = tmp_path / "w.npz"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("coef.npy", b"\x93NUMPY garbage")
        zf.writestr("intercept.npy", b"")
    with pytest.raises(ModelFileError, match="not a valid npz file"):
        load_model(path)


def test_raw_linear_model_validates_on_construction():
    RawLinearModel(coef=np.ones((2, 3)), intercept=np.zeros(2), classes=np.array(["a", "b"]))
    with pytest.raises(InputError, match="'intercept' has shape"):
        RawLinearModel(coef=np.ones((2, 3)), intercept=np.zeros(5))


def test_allow_list_covers_every_supported_model():
    """Every estimator the frontend converts can be loaded from a pickle, and nothing else."""
    from edgesparse.frontends import supported_models

    allowed_names = {name for _, name in ALLOWED_GLOBALS}
    missing = [m for m in supported_models() if m != "RawLinearModel" and m not in allowed_names]
    assert missing == []


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize(
    "name",
    [
        "Lars", "LarsCV", "LassoLars", "LassoLarsCV", "LassoLarsIC", "OrthogonalMatchingPursuit",
        "OrthogonalMatchingPursuitCV", "BayesianRidge", "ARDRegression", "QuantileRegressor",
        "TheilSenRegressor",
    ],
)  # fmt: skip
def test_extra_regressors_round_trip(tmp_path, name):
    import sklearn.linear_model as lm
    from sklearn.datasets import make_regression

    X, y = make_regression(n_samples=60, n_features=5, random_state=0)
    est = getattr(lm, name)().fit(X, y)
    path = tmp_path / "m.pkl"
    path.write_bytes(pickle.dumps(est))
    np.testing.assert_array_equal(load_model(path).predict(X), est.predict(X))


# -- the stream budget: a pickle is bounded against the array cap as it streams (issue 16) ----
def _budget_message(path: Path, cap: int) -> str:
    return (
        f"cannot load {path}: its pickle data runs past {cap + (32 << 20)} bytes, more than a "
        f"model within the array cap holds ({cap} bytes of arrays plus {32 << 20} for the "
        "pickle itself); if you trust the file, raise the limit with "
        "EDGESPARSE_MAX_ARRAY_BYTES=<bytes>"
    )


@pytest.mark.parametrize("compress", [None, gzip.compress])
def test_pickle_stream_is_bounded_by_the_array_cap(tmp_path, monkeypatch, compress):
    # 40 MiB of bytes objects and no array: the stream budget (1 MiB of arrays + 32 MiB) stops
    # it at the read that would pass the budget, not after the unpacked-size cap (2 GiB).
    payload = pickle.dumps([bytes(1 << 20) for _ in range(40)], protocol=4)
    path = tmp_path / "m.pkl"
    path.write_bytes(compress(payload) if compress else payload)
    monkeypatch.setenv("EDGESPARSE_MAX_ARRAY_BYTES", str(1 << 20))
    with pytest.raises(ModelFileError) as info:
        load_model(path)
    assert str(info.value) == _budget_message(path, 1 << 20)
    monkeypatch.setenv("EDGESPARSE_MAX_ARRAY_BYTES", str(16 << 20))
    with pytest.raises(ModelFileError) as info:  # read whole, then counted by the audit
        load_model(path)
    assert str(info.value).startswith(f"cannot load {path}: its arrays hold more than ")


def test_bytearray8_is_read_before_it_is_allocated(tmp_path):
    path = tmp_path / "m.pkl"
    path.write_bytes(b"\x80\x05\x96" + (1 << 30).to_bytes(8, "little") + b".")
    with pytest.raises(ModelFileError) as info:
        load_model(path)
    assert str(info.value) == (
        f"cannot load {path}: the file is truncated: its pickle needs 1073741824 more bytes "
        "and 1 are left; re-save the model with joblib.dump or pickle.dump"
    )
    path.write_bytes(pickle.dumps(bytearray(b"abc"), protocol=5))
    assert load_model(path) == bytearray(b"abc")
