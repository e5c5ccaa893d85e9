"""Build the Surprise "models from the wild" fixtures: k-NN pickles written by older releases.

For each scikit-surprise release this script makes a throwaway virtual environment, installs
that release (built from its sdist where PyPI has no wheel for this Python: everything before
1.1.5) with a numpy of its time, and runs :data:`TRAINER` in it. The trainer fits the k-NN
algorithms edgesparse converts on a small seeded rating table and saves, under
``models/wild/surprise/<release>/``:

* ``<name>.pkl``: ``pickle.dump(algo)`` (the default protocol), as most users save a model;
* ``<name>.dump.pkl``: ``surprise.dump.dump(file, algo=algo)`` (for ``DUMPED`` models; one of
  them with a few ``predictions`` too, as Surprise's documentation shows). Surprise lets the
  user name that file anything; edgesparse reads it by its extension, so it ends in .pkl here;
* ``outputs.npz``: the (user, item) pairs asked about (every pair of the table's users and
  items, then unknown users and items) and, per model, what that release's own
  ``algo.predict(uid, iid)`` returned: ``<name>.est`` and ``<name>.impossible``
  (``details["was_impossible"]``);
* ``manifest.json``: the versions installed, and each model's constructor and rating scale.

The tests (``tests/test_wild_knn.py``) compress each file with today's edgesparse and compare
with those outputs. See README.md for the releases covered and why.

Usage::

    python models/wild/make_knn.py              # every release in RELEASES
    python models/wild/make_knn.py 1.0 1.1.3    # some of them
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent / "surprise"

# Built from the sdist: the old setup.py files import numpy and Cython at build time, so they
# are installed first and the build runs without isolation. Cython 3 cannot build 1.1.3 and
# older (their .pyx files need Cython 0.29 semantics); 1.0.x calls np.int, gone in numpy 1.24.
_OLD_BUILD = ["numpy==1.23.5", "Cython<3", "setuptools<70", "wheel"]
_OLD_RUNTIME = ["scipy==1.10.1", "joblib<1.4", "six"]

# release -> (pins installed first, build without isolation?, pins installed after)
RELEASES: dict[str, tuple[list[str], bool, list[str]]] = {
    # 1.0.4 is the last release with the Trainset class in surprise.dataset (and train(), not
    # fit()); 1.0.6 the last 1.0.x, whose trainsets shift a scale starting at <= 0 by an offset.
    "1.0.4": (_OLD_BUILD, True, _OLD_RUNTIME),
    "1.0.6": (_OLD_BUILD, True, _OLD_RUNTIME),
    "1.1.0": (_OLD_BUILD, True, _OLD_RUNTIME),
    "1.1.2": (_OLD_BUILD, True, _OLD_RUNTIME),
    "1.1.3": (_OLD_BUILD, True, _OLD_RUNTIME),
    # 1.1.4 (May 2024) builds against numpy 1.x (its pyproject.toml) and fails to import on
    # numpy 2; 1.1.5 is the first with numpy 2 support and a wheel: run it on numpy 2.0, whose
    # pickles say numpy._core where the others say numpy.core.
    "1.1.4": (["numpy==1.26.4", "scipy==1.11.4", "joblib"], False, []),
    "1.1.5": (["numpy==2.0.2", "scipy==1.14.1", "joblib"], False, []),
}

# Runs inside the release's venv: argv[1] is the output directory.
TRAINER = r"""
import json, os, pickle, sys, tempfile, warnings
from pathlib import Path

import numpy as np
import surprise
from surprise import Dataset, Reader, dump

warnings.simplefilter("ignore")
out = Path(sys.argv[1])
out.mkdir(parents=True, exist_ok=True)

# A seeded table: 15 users x 10 items, about half the pairs rated, whole stars on 1-5.
# RandomState's stream is the same in every numpy release.
rng = np.random.RandomState(0)
N_U, N_I = 15, 10
pu, qi = rng.normal(0, 0.8, (N_U, 2)), rng.normal(0, 0.8, (N_I, 2))
bu, bi = rng.normal(0, 0.5, N_U), rng.normal(0, 0.5, N_I)
rows = []
for u in range(N_U):
    for i in range(N_I):
        if rng.rand() < 0.5:
            r = 3.2 + bu[u] + bi[i] + pu[u] @ qi[i] + rng.normal(0, 0.4)
            rows.append(("u%d" % u, "i%d" % i, float(np.clip(np.round(r), 1, 5))))
rows = [rows[j] for j in rng.permutation(len(rows))]  # Surprise breaks ties in input order


def trainset(shift, scale):
    fd, path = tempfile.mkstemp(suffix=".csv")
    with os.fdopen(fd, "w") as fh:
        fh.write("".join("%s,%s,%g\n" % (u, i, r + shift) for u, i, r in rows))
    try:
        reader = Reader(line_format="user item rating", sep=",", rating_scale=scale)
        return Dataset.load_from_file(path, reader=reader).build_full_trainset()
    finally:
        os.unlink(path)


def fit(algo, ts):
    # fit() arrived in 1.0.5; train() is what older releases have.
    return (algo.fit if hasattr(algo, "fit") else algo.train)(ts) or algo


K = surprise
MODELS = [
    # name, scale shift, constructor
    ("basic_msd_user", 0, lambda: K.KNNBasic(k=4, min_k=2, sim_options={"name": "msd"})),
    ("basic_cosine_item", 0, lambda: K.KNNBasic(
        k=3, sim_options={"name": "cosine", "user_based": False})),
    ("means_pearson_user", 0, lambda: K.KNNWithMeans(
        k=5, min_k=2, sim_options={"name": "pearson", "user_based": True})),
    ("zscore_msd_item", 0, lambda: K.KNNWithZScore(
        k=4, sim_options={"name": "msd", "user_based": False})),
    ("baseline_pb_user", 0, lambda: K.KNNBaseline(
        k=5, sim_options={"name": "pearson_baseline", "shrinkage": 10})),
    ("baseline_sgd_item", 0, lambda: K.KNNBaseline(
        k=4, min_k=2, sim_options={"name": "pearson_baseline", "user_based": False},
        bsl_options={"method": "sgd", "n_epochs": 10, "learning_rate": 0.01})),
    # A scale with a lower bound <= 0: Surprise 1.0.x shifts such ratings by an offset.
    ("means_msd_scale0", -2, lambda: K.KNNWithMeans(k=4, sim_options={"name": "msd"})),
    ("baseline_msd_scale0", -2, lambda: K.KNNBaseline(
        k=4, sim_options={"name": "msd", "user_based": False})),
]
DUMPED = {"means_pearson_user", "means_msd_scale0"}
WITH_PREDICTIONS = "means_pearson_user"

users = ["u%d" % u for u in range(N_U)] + ["nobody"]
items = ["i%d" % i for i in range(N_I)] + ["nothing"]
pairs = [(u, i) for u in users for i in items]
outputs = {"users": np.array([u for u, _ in pairs]), "items": np.array([i for _, i in pairs])}
manifest = {
    "surprise": surprise.__version__,
    "numpy": np.__version__,
    "python": sys.version.split()[0],
    "n_ratings": len(rows),
    "models": {},
    "unpicklable": {},
}
for name, shift, make in MODELS:
    scale = (1 + shift, 5 + shift)
    algo = fit(make(), trainset(shift, scale))
    algo.verbose = False
    try:
        data = pickle.dumps(algo)
    except TypeError as exc:  # 1.1.2's baselines are Cython memoryviews: no pickle at all
        manifest["unpicklable"][name] = "%s: %s" % (type(exc).__name__, exc)
        continue
    (out / f"{name}.pkl").write_bytes(data)
    preds = [algo.predict(u, i) for u, i in pairs]
    if name in DUMPED:
        kept = preds[:6] if name == WITH_PREDICTIONS else None
        dump.dump(str(out / f"{name}.dump.pkl"), predictions=kept, algo=algo)
    outputs[f"{name}.est"] = np.array([p.est for p in preds], dtype=np.float64)
    outputs[f"{name}.impossible"] = np.array([p.details["was_impossible"] for p in preds])
    manifest["models"][name] = {
        "class": type(algo).__name__,
        "k": algo.k,
        "min_k": algo.min_k,
        "sim_options": algo.sim_options,
        "bsl_options": getattr(algo, "bsl_options", {}),
        "rating_scale": list(scale),
        "offset": getattr(algo.trainset, "offset", None),
    }
np.savez_compressed(out / "outputs.npz", **outputs)
(out / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
print(f"surprise {surprise.__version__}: {len(manifest['models'])} models")
"""


def _pip(py: Path, *args: str) -> None:
    subprocess.run([str(py), "-m", "pip", "install", "--quiet", *args], check=True)


def build(release: str, out: Path, *, keep: bool = False) -> None:
    """Train and save the fixtures of one scikit-surprise ``release`` into ``out/<release>``."""
    first, no_isolation, after = RELEASES[release]
    work = Path(tempfile.mkdtemp(prefix=f"wild-surprise-{release}-"))
    try:
        venv = work / "venv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        py = venv / "bin" / "python"
        _pip(py, "--only-binary=:all:", *first)
        if no_isolation:
            _pip(py, "--no-build-isolation", "--no-deps", f"scikit-surprise=={release}")
            _pip(py, "--only-binary=:all:", *after, *first)
        else:
            _pip(py, f"scikit-surprise=={release}", *first)
        target = out / release
        if target.exists():
            shutil.rmtree(target)
        script = work / "trainer.py"
        script.write_text(TRAINER)
        subprocess.run([str(py), str(script), str(target)], check=True, cwd=work)
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    """Command line: build the fixtures of the given releases (default: all of them)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("releases", nargs="*", help="e.g. 1.0 or 1.1.3 (default: all)")
    parser.add_argument("--out", type=Path, default=HERE)
    parser.add_argument("--keep-venvs", action="store_true")
    args = parser.parse_args(argv)
    chosen = [
        r for r in RELEASES if not args.releases or any(r.startswith(a) for a in args.releases)
    ]
    for release in chosen:
        build(release, args.out, keep=args.keep_venvs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
