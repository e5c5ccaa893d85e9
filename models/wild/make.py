"""Build the "models from the wild" fixtures: pickles written by older scikit-learn releases.

For each release this script makes a throwaway virtual environment, installs that
scikit-learn (with a numpy and scipy of its time) and runs :data:`TRAINER` in it. The trainer
fits every estimator family and pipeline edgesparse converts on small bundled data (iris,
wine, diabetes), then saves, under ``models/wild/<release>/``:

* ``<name>.pkl`` (``pickle.dump``, protocol 4) and ``<name>.joblib`` (``joblib.dump``,
  compress=3) of each model;
* ``outputs.npz``: the fixed input rows of each dataset (``X.<dataset>``) and, for each model,
  what the model itself returned on them in that release (``<name>.predict``,
  ``<name>.predict_proba``, ``<name>.decision_function``, whichever it has);
* ``manifest.json``: the versions installed, and each model's dataset and constructor;
* ``<name>.skops`` (``skops.io.dump``) for a few version-sensitive families
  (``SKOPS_MODELS``), when a skops release installs next to that scikit-learn.

The tests (``tests/test_wild.py``) compress each file with today's edgesparse at float64 and
compare with those outputs. Releases covered: every minor release from 1.1 with wheels for
CPython 3.11 (1.0.2 and older have none, so they would need a compiler); the newest patch of
each. The venvs are deleted afterwards; only the small files are kept.

Usage::

    python models/wild/make.py                  # every release in RELEASES
    python models/wild/make.py 1.3 1.5          # some of them
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent

# release -> the pins installed with it (numpy/scipy of its time, so the pickles say what a
# user of that release would have written: numpy.core before numpy 2, numpy._core after).
RELEASES: dict[str, list[str]] = {
    "1.1.3": ["scikit-learn==1.1.3", "numpy==1.23.5", "scipy==1.10.1", "joblib<1.3"],
    "1.2.2": ["scikit-learn==1.2.2", "numpy==1.24.4", "scipy==1.10.1", "joblib<1.4"],
    "1.3.2": ["scikit-learn==1.3.2", "numpy==1.26.4", "scipy==1.11.4", "joblib<1.4"],
    "1.4.2": ["scikit-learn==1.4.2", "numpy==1.26.4", "scipy==1.12.0", "joblib<1.5"],
    "1.5.2": ["scikit-learn==1.5.2", "numpy<2.2", "scipy<1.15", "joblib<1.5"],
    "1.6.1": ["scikit-learn==1.6.1", "numpy<2.3", "scipy<1.16"],
    "1.7.2": ["scikit-learn==1.7.2", "numpy<2.4", "scipy<1.17"],
    "1.8.0": ["scikit-learn==1.8.0"],
}

# Runs inside the release's venv: argv[1] is the output directory.
TRAINER = r"""
import json, os, pickle, sys, warnings
from pathlib import Path

import joblib, numpy as np, scipy, sklearn
from sklearn import datasets, linear_model as lm, svm
from sklearn.multiclass import OneVsRestClassifier
from sklearn.multioutput import MultiOutputRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MaxAbsScaler, MinMaxScaler, RobustScaler, StandardScaler

warnings.simplefilter("ignore")
out = Path(sys.argv[1])
out.mkdir(parents=True, exist_ok=True)
V = tuple(int(p) for p in sklearn.__version__.split(".")[:2])
LOG = "log" if V < (1, 3) else "log_loss"  # "log" was renamed in 1.1, removed in 1.3
HAS_MULTI_CLASS = V < (1, 8)  # LogisticRegression(multi_class=...) removed in 1.8

iris_X, iris_y = datasets.load_iris(return_X_y=True)
wine_X, wine_y = datasets.load_wine(return_X_y=True)
dia_X, dia_y = datasets.load_diabetes(return_X_y=True)
rng = np.random.RandomState(0)
sets = {
    "iris": (iris_X, iris_y),
    "iris2": (iris_X[50:], iris_y[50:]),  # versicolor vs virginica: binary
    "wine": (wine_X, wine_y),
    "diabetes": (dia_X, dia_y),
    "diabetes2": (dia_X, np.c_[dia_y, dia_y * 0.5 + 100 * dia_X[:, 2]]),
}
# Fixed inputs: 20 training rows and 10 perturbed ones per dataset.
inputs = {}
for key, (X, _) in sets.items():
    idx = np.linspace(0, len(X) - 1, 20).astype(int)
    noise = rng.normal(scale=0.1, size=(10, X.shape[1])) * X.std(axis=0)
    inputs[key] = np.vstack([X[idx], X[idx[:10]] + noise])


def lr(**kw):
    return lm.LogisticRegression(max_iter=5000, **kw)


def mc(value):
    return {"multi_class": value} if HAS_MULTI_CLASS else None


def l1_saga():
    return lr(penalty="l1", solver="saga", C=0.5)


def lrcv(**kw):
    return lm.LogisticRegressionCV(cv=3, max_iter=5000, **kw)


def linear_svc():
    return svm.LinearSVC(max_iter=20000, random_state=0)


def sgd(loss, **kw):
    return lm.SGDClassifier(loss=loss, random_state=0, max_iter=2000, tol=1e-4, **kw)


MODELS = [
    ("logreg_default", "iris", lambda: lr()),
    ("logreg_binary", "iris2", lambda: lr()),
    ("logreg_ovr", "iris", lambda: mc("ovr") and lr(**mc("ovr"))),
    ("logreg_multinomial", "iris", lambda: mc("multinomial") and lr(**mc("multinomial"))),
    ("logreg_multinomial_binary", "iris2", lambda: mc("multinomial") and lr(**mc("multinomial"))),
    ("logreg_liblinear", "iris", lambda: lr(solver="liblinear") if V < (1, 8) else None),
    ("logreg_liblinear_binary", "iris2", lambda: lr(solver="liblinear")),
    ("logreg_l1_saga", "wine", lambda: make_pipeline(StandardScaler(), l1_saga())),
    ("logreg_cv_ovr", "iris", lambda: mc("ovr") and lrcv(**mc("ovr"))),
    ("logreg_cv", "iris", lambda: lm.LogisticRegressionCV(cv=3, Cs=4, max_iter=5000)),
    ("sgd_log_l1", "iris", lambda: sgd(LOG, penalty="l1", alpha=0.01)),
    ("sgd_log_binary", "iris2", lambda: sgd(LOG)),
    ("sgd_hinge", "iris", lambda: sgd("hinge")),
    ("sgd_modified_huber", "iris", lambda: sgd("modified_huber")),
    ("sgd_squared_hinge", "iris", lambda: sgd("squared_hinge", alpha=0.01)),
    ("sgd_perceptron", "iris", lambda: sgd("perceptron")),
    ("perceptron", "iris", lambda: lm.Perceptron(random_state=0)),
    ("passive_aggressive", "iris", lambda: lm.PassiveAggressiveClassifier(random_state=0)),
    ("ridge_classifier", "wine", lambda: lm.RidgeClassifier()),
    ("ridge_classifier_cv", "iris2", lambda: lm.RidgeClassifierCV()),
    ("linear_svc", "iris", lambda: linear_svc()),
    ("ovr_logreg", "iris", lambda: OneVsRestClassifier(lr())),
    ("pipe_std_sgd_log", "wine", lambda: make_pipeline(StandardScaler(), sgd(LOG))),
    ("pipe_minmax_logreg", "wine", lambda: make_pipeline(MinMaxScaler(), lr())),
    ("pipe_maxabs_svc", "wine", lambda: make_pipeline(MaxAbsScaler(), linear_svc())),
    ("pipe_robust_ridge", "diabetes", lambda: make_pipeline(RobustScaler(), lm.Ridge())),
    ("linear_regression", "diabetes", lambda: lm.LinearRegression()),
    ("ridge", "diabetes", lambda: lm.Ridge(alpha=0.1)),
    ("ridge_cv", "diabetes2", lambda: lm.RidgeCV()),
    ("lasso", "diabetes", lambda: lm.Lasso(alpha=0.1)),
    ("lasso_cv", "diabetes", lambda: lm.LassoCV(cv=3, n_alphas=10)),
    ("elastic_net", "diabetes", lambda: lm.ElasticNet(alpha=0.01)),
    ("multitask_lasso", "diabetes2", lambda: lm.MultiTaskLasso(alpha=0.1)),
    ("multitask_elastic_net", "diabetes2", lambda: lm.MultiTaskElasticNet(alpha=0.01)),
    ("lars", "diabetes", lambda: lm.Lars()),
    ("lasso_lars_ic", "diabetes", lambda: lm.LassoLarsIC()),
    ("omp", "diabetes", lambda: lm.OrthogonalMatchingPursuit(n_nonzero_coefs=4)),
    ("bayesian_ridge", "diabetes", lambda: lm.BayesianRidge()),
    ("ard", "diabetes", lambda: lm.ARDRegression()),
    ("huber", "diabetes", lambda: lm.HuberRegressor(max_iter=1000)),
    ("quantile", "diabetes", lambda: lm.QuantileRegressor(alpha=0.01, solver="highs")),
    ("theil_sen", "diabetes", lambda: lm.TheilSenRegressor(random_state=0, max_subpopulation=200)),
    ("sgd_regressor", "diabetes", lambda: lm.SGDRegressor(random_state=0, max_iter=5000)),
    ("sgd_regressor_huber", "diabetes", lambda: lm.SGDRegressor(loss="huber", random_state=0)),
    ("pa_regressor", "diabetes", lambda: lm.PassiveAggressiveRegressor(random_state=0)),
    ("linear_svr", "diabetes", lambda: svm.LinearSVR(max_iter=20000, random_state=0)),
    ("multioutput_ridge", "diabetes2", lambda: MultiOutputRegressor(lm.Ridge())),
]

# The version-sensitive families, also as .skops files (kept few: the fixtures stay small).
SKOPS_MODELS = {"logreg_ovr", "logreg_liblinear", "sgd_log_l1", "ridge_classifier"}
# A skops-only run (make.py --skops): just these families, as .skops files only.
SKOPS_ONLY = os.environ.get("WILD_SKOPS_ONLY")
if SKOPS_ONLY:
    SKOPS_MODELS = set(SKOPS_ONLY.split(","))
    MODELS = [m for m in MODELS if m[0] in SKOPS_MODELS]
try:
    import skops
    import skops.io as sio
except ImportError:
    sio = None

outputs = {f"X.{k}": v for k, v in inputs.items()}
manifest = {
    "sklearn": sklearn.__version__,
    "numpy": np.__version__,
    "scipy": scipy.__version__,
    "joblib": joblib.__version__,
    "python": sys.version.split()[0],
    "skops": None if sio is None else skops.__version__,
    "models": {},
}
for name, data, make in MODELS:
    model = make()
    if model is None:  # not expressible in this release
        continue
    X, y = sets[data]
    model.fit(X, y)
    if not SKOPS_ONLY:
        with open(out / f"{name}.pkl", "wb") as fh:
            pickle.dump(model, fh, protocol=4)
        joblib.dump(model, out / f"{name}.joblib", compress=3)
    if sio is not None and name in SKOPS_MODELS:
        sio.dump(model, out / f"{name}.skops")
    Xf = inputs[data]
    for method in ("predict", "predict_proba", "decision_function"):
        if hasattr(model, method):
            outputs[f"{name}.{method}"] = np.asarray(getattr(model, method)(Xf))
    manifest["models"][name] = {"data": data, "model": repr(model)}
np.savez_compressed(out / "outputs.npz", **outputs)
(out / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
print(f"{sklearn.__version__}: {len(manifest['models'])} models")
"""


# skops-only fixtures (models/wild/skops/<skops release>/): every skops release from the
# pyproject floor (0.11) that the sklearn fixtures above do not already use (0.11 with 1.1-1.2,
# 0.16 after), each with a scikit-learn of its time, and the families below as .skops only.
SKOPS_RELEASES: dict[str, list[str]] = {
    "0.12.0": ["skops==0.12.0", *RELEASES["1.5.2"]],
    "0.13.0": ["skops==0.13.0", *RELEASES["1.5.2"]],
    "0.14.0": ["skops==0.14.0", *RELEASES["1.6.1"]],
    "0.15.0": ["skops==0.15.0", *RELEASES["1.7.2"]],
}
SKOPS_FAMILIES = "logreg_ovr,sgd_log_l1,ridge_classifier,linear_regression"


def build(
    release: str,
    pins: list[str],
    out: Path,
    *,
    keep: bool = False,
    skops_only: bool = False,
) -> None:
    """Train and save the fixtures of one scikit-learn ``release`` into ``out/<release>``
    (``skops_only``: ``release`` is a skops release, ``pins`` already name it)."""
    work = Path(tempfile.mkdtemp(prefix=f"wild-{release}-"))
    try:
        venv = work / "venv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        py = venv / "bin" / "python"
        subprocess.run(
            [str(py), "-m", "pip", "install", "--quiet", "--only-binary=:all:", *pins],
            check=True,
        )
        if not skops_only:
            # skops is optional: whichever release pip finds compatible, if any.
            subprocess.run(
                [str(py), "-m", "pip", "install", "--quiet", "--only-binary=:all:", "skops", *pins],
                check=False,
            )
        target = out / release
        if target.exists():
            shutil.rmtree(target)
        script = work / "trainer.py"
        script.write_text(TRAINER)
        env = dict(os.environ, WILD_SKOPS_ONLY=SKOPS_FAMILIES) if skops_only else None
        subprocess.run([str(py), str(script), str(target)], check=True, cwd=work, env=env)
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    """Command line: build the fixtures of the given releases (default: all of them)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("releases", nargs="*", help="e.g. 1.3 or 1.3.2 (default: all)")
    parser.add_argument("--out", type=Path, default=HERE)
    parser.add_argument("--keep-venvs", action="store_true")
    parser.add_argument(
        "--skops", action="store_true", help="the skops-only fixtures (releases: skops releases)"
    )
    args = parser.parse_args(argv)
    table = SKOPS_RELEASES if args.skops else RELEASES
    out = args.out / "skops" if args.skops else args.out
    chosen = [r for r in table if not args.releases or any(r.startswith(a) for a in args.releases)]
    for release in chosen:
        build(release, table[release], out, keep=args.keep_venvs, skops_only=args.skops)
    return 0


if __name__ == "__main__":
    sys.exit(main())
