"""Surprise k-NN recommenders: conversion, the .esb v2 round trip and the numpy runtime against
Surprise's own ``predict`` (the oracle), plus the CLI and the loader's Surprise allow-list.

The rating tables come from ``models/train_knn.py`` (seeded, generated, no downloads).
"""

from __future__ import annotations

import importlib.util
import json
import math
import pickle
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
from click.testing import CliRunner

from edgesparse.api import compress_knn
from edgesparse.cli import cli
from edgesparse.data import read_pairs
from edgesparse.errors import InputError, ModelFileError, UnsafeModelError, UnsupportedModelError
from edgesparse.formats import esb
from edgesparse.formats import knn as esb_knn
from edgesparse.frontends.surprise import from_surprise
from edgesparse.loader import load_model
from edgesparse.passes.knn import prune_top_k
from edgesparse.pipeline import CompressOptions, compress_file
from edgesparse.runtime import KnnModel, load
from tests.conftest import require_tool

ROOT = Path(__file__).resolve().parents[1]
HAVE_SURPRISE = importlib.util.find_spec("surprise") is not None


@pytest.fixture(autouse=True)
def _surprise() -> None:
    require_tool(HAVE_SURPRISE, what="scikit-surprise", install="pip install -e '.[surprise]'")


def _train_module() -> Any:
    name = "edgesparse_models_train_knn"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "models" / "train_knn.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture(scope="module")
def data() -> dict[str, Any]:
    if not HAVE_SURPRISE:
        pytest.skip("scikit-surprise is absent")
    t = _train_module()
    train, test = t.split(t.make_ratings(half_stars=True))
    pairs = [(u, i) for u, i, _ in test]
    # unknown user, unknown item, both unknown: Surprise's PredictionImpossible paths
    pairs += [("nobody", "i3"), ("u3", "no-such-item"), ("nobody", "nothing")]
    truth = np.array([r for *_, r in test] + [3.0, 3.0, 3.0])
    return {"ts": t.trainset(train), "pairs": pairs, "truth": truth, "train": train}


def _algos() -> list[tuple[str, bool]]:
    return [
        (c, ub)
        for c in ("KNNBasic", "KNNWithMeans", "KNNWithZScore", "KNNBaseline")
        for ub in (True, False)
    ]


def _fit(data: dict[str, Any], cls: str, user_based: bool, *, sim: str = "pearson_baseline") -> Any:
    import surprise

    algo = getattr(surprise, cls)(
        k=10, sim_options={"name": sim, "user_based": user_based}, verbose=False
    )
    return algo.fit(data["ts"])


def _surprise_predictions(algo: Any, pairs: list) -> tuple[np.ndarray, np.ndarray]:
    preds = [algo.predict(u, i) for u, i in pairs]
    return np.array([p.est for p in preds]), np.array([p.details["was_impossible"] for p in preds])


def _rmse(est: np.ndarray, truth: np.ndarray) -> float:
    return math.sqrt(float(np.mean((est - truth) ** 2)))


# ------------------------------------------------------------------------------------------
# Parity with Surprise
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("cls", "user_based"), _algos())
@pytest.mark.parametrize("sim", ["cosine", "pearson_baseline"])
def test_exact_model_equals_surprise_predict(data, cls: str, user_based: bool, sim: str) -> None:
    algo = _fit(data, cls, user_based, sim=sim)
    ref, ref_flags = _surprise_predictions(algo, data["pairs"])
    ir = esb_knn.decode(esb_knn.encode(from_surprise(algo)))
    model = KnnModel(ir)
    est, flags = model.predict_many(data["pairs"], with_flags=True)
    np.testing.assert_allclose(est, ref, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(flags, ref_flags)
    assert ref_flags[-3:].all() != (cls == "KNNBaseline")  # baseline never flags unknowns
    for u, i in data["pairs"][:40] + data["pairs"][-3:]:
        mine, theirs = model.predict(u, i), algo.predict(u, i)
        assert mine.est == pytest.approx(theirs.est, abs=1e-6)
        assert mine.details.get("actual_k") == theirs.details.get("actual_k")
        assert mine.details["was_impossible"] == theirs.details["was_impossible"]
        assert ("reason" in mine.details) == ("reason" in theirs.details)
    unclipped = model.predict(*data["pairs"][0], clip=False).est
    assert unclipped == pytest.approx(algo.predict(*data["pairs"][0], clip=False).est, abs=1e-6)


@pytest.mark.parametrize(("cls", "user_based"), _algos())
@pytest.mark.parametrize("sim", ["cosine", "pearson"])
def test_exact_pruning_drops_only_unused_similarities(data, cls, user_based, sim) -> None:
    algo = _fit(data, cls, user_based, sim=sim)
    ref, ref_flags = _surprise_predictions(algo, data["pairs"])
    full, ir = compress_knn(algo, neighbours="exact", quantize="none")
    assert ir.sim_nnz < full.sim_nnz
    est, flags = KnnModel(esb_knn.decode(esb_knn.encode(ir))).predict_many(
        data["pairs"], with_flags=True
    )
    np.testing.assert_allclose(est, ref, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(flags, ref_flags)
    # and on every training pair too (where the rater itself is a neighbour)
    train_pairs = [(u, i) for u, i, _ in data["train"][:300]]
    ref_train, _ = _surprise_predictions(algo, train_pairs)
    np.testing.assert_allclose(KnnModel(ir).predict_many(train_pairs), ref_train, atol=1e-6)


@pytest.mark.parametrize(("cls", "user_based"), _algos())
def test_pruned_model_equals_surprise_on_the_pruned_similarities(data, cls, user_based) -> None:
    # Surprise's k picks among the raters of the item, not a row's overall top k, so pruning
    # rows to k changes predictions; the oracle is Surprise run on the same pruned matrix.
    algo = _fit(data, cls, user_based)
    pruned = prune_top_k(from_surprise(algo), algo.k)
    assert np.all(np.diff(pruned.sim_indptr) <= algo.k + 1)  # + the diagonal
    dense = np.zeros_like(algo.sim)
    rows = np.repeat(np.arange(pruned.n_x), np.diff(pruned.sim_indptr))
    dense[rows, pruned.sim_indices] = pruned.sim_values
    algo.sim = dense
    ref, ref_flags = _surprise_predictions(algo, data["pairs"])
    est, flags = KnnModel(esb_knn.decode(esb_knn.encode(pruned))).predict_many(
        data["pairs"], with_flags=True
    )
    np.testing.assert_allclose(est, ref, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(flags, ref_flags)


@pytest.mark.parametrize(("cls", "user_based"), _algos())
def test_int8_similarities_keep_rmse_within_half_a_percent(data, cls, user_based) -> None:
    algo = _fit(data, cls, user_based, sim="cosine")
    ref, _ = _surprise_predictions(algo, data["pairs"])
    exact, ir = compress_knn(algo, quantize="int8")
    assert ir.sim_dtype == "uint8" and ir.sim_nnz == exact.sim_nnz
    est = KnnModel(esb_knn.decode(esb_knn.encode(ir))).predict_many(data["pairs"])
    before, after = _rmse(ref, data["truth"]), _rmse(est, data["truth"])
    assert abs(after / before - 1) <= 0.005, (before, after)
    # and each similarity is within half a quantization step of the original
    step = np.repeat(ir.sim_scales.astype(np.float64), np.diff(ir.sim_indptr))
    assert np.all(np.abs(ir.sim_float() - exact.sim_float()) <= 0.5 * step + 1e-12)


def test_recommend_matches_surprise_ranking(data) -> None:
    algo = _fit(data, "KNNWithMeans", True)
    model = KnnModel(from_surprise(algo))
    ts = algo.trainset
    user = data["train"][0][0]
    seen = {ts.to_raw_iid(i) for i, _ in ts.ur[ts.to_inner_uid(user)]}
    unseen = [ts.to_raw_iid(i) for i in range(ts.n_items) if ts.to_raw_iid(i) not in seen]
    ref = sorted(((algo.predict(user, i).est, i) for i in unseen), key=lambda t: -t[0])
    got = model.recommend(user, n=10)
    assert len(got) == 10 and not {p.iid for p in got} & seen
    np.testing.assert_allclose([p.est for p in got], [e for e, _ in ref[:10]], atol=1e-6)
    assert [p.iid for p in got] == [i for _, i in ref[:10]]  # ties in training order too
    assert len(model.recommend(user, n=10_000)) == len(unseen)
    assert len(model.recommend(user, n=5, exclude_seen=False)) == 5
    stranger = model.recommend("nobody", n=3)
    assert [p.est for p in stranger] == [ts.global_mean] * 3
    assert all(p.details["was_impossible"] for p in stranger)
    with pytest.raises(InputError, match="n must be"):
        model.recommend(user, n=-1)


def test_item_based_recommend_excludes_seen(data) -> None:
    algo = _fit(data, "KNNBaseline", False)
    model = KnnModel(from_surprise(algo))
    ts = algo.trainset
    user = data["train"][5][0]
    seen = {ts.to_raw_iid(i) for i, _ in ts.ur[ts.to_inner_uid(user)]}
    got = model.recommend(user, n=1000)
    assert len(got) == ts.n_items - len(seen) and not {p.iid for p in got} & seen
    for p in got[:5]:
        assert p.est == pytest.approx(algo.predict(user, p.iid).est, abs=1e-6)


# ------------------------------------------------------------------------------------------
# Ratings storage, ids, edge cases
# ------------------------------------------------------------------------------------------
def _trainset(rows: list[tuple[Any, Any, float]], scale=(1.0, 5.0)) -> Any:
    """A Trainset built directly (Surprise's own constructor), so ids can be any type."""
    from collections import defaultdict

    from surprise import Trainset

    r2u: dict[Any, int] = {}
    r2i: dict[Any, int] = {}
    ur: defaultdict = defaultdict(list)
    ir: defaultdict = defaultdict(list)
    for u, i, r in rows:
        uu = r2u.setdefault(u, len(r2u))
        ii = r2i.setdefault(i, len(r2i))
        ur[uu].append((ii, r))
        ir[ii].append((uu, r))
    return Trainset(ur, ir, len(r2u), len(r2i), len(rows), scale, r2u, r2i)


@pytest.mark.parametrize(
    ("step", "encoding"), [(1.0, "uint8-coded"), (0.5, "uint8-coded"), (0.1, "float32")]
)
def test_ratings_are_stored_exactly(step: float, encoding: str) -> None:
    from surprise import KNNWithMeans

    rng = np.random.default_rng(1)
    rows = [
        (int(u), int(i), float(np.float32(1 + step * rng.integers(0, int(4 / step) + 1))))
        for u in range(30)
        for i in range(20)
        if rng.random() < 0.4
    ]
    algo = KNNWithMeans(verbose=False).fit(_trainset(rows))
    ir = from_surprise(algo)
    blob = esb_knn.encode(ir)
    assert esb_knn.verify(blob)["ratings"] == encoding
    back = esb_knn.decode(blob)
    np.testing.assert_array_equal(back.ratings, ir.ratings)
    assert back.user_ids == tuple(range(30)) or set(back.user_ids) <= set(range(30))
    assert all(type(u) is int for u in back.user_ids)
    m = KnnModel(back)
    for u, i, _ in rows[:20]:
        assert m.predict(u, i).est == pytest.approx(algo.predict(u, i).est, abs=1e-6)


def test_ratings_outside_any_grid_use_float64() -> None:
    from surprise import KNNBasic

    rows = [(f"u{u}", f"i{i}", 1 + (u * 7 + i) / 3) for u in range(8) for i in range(6)]
    ir = from_surprise(KNNBasic(verbose=False).fit(_trainset(rows, scale=(1.0, 20.0))))
    blob = esb_knn.encode(ir)
    assert esb_knn.verify(blob)["ratings"] == "float64"
    np.testing.assert_array_equal(esb_knn.decode(blob).ratings, ir.ratings)


def test_min_k_and_k_edge_cases(data) -> None:
    import surprise

    for cls in ("KNNBasic", "KNNWithMeans"):
        algo = getattr(surprise, cls)(k=3, min_k=3, verbose=False).fit(data["ts"])
        ref, ref_flags = _surprise_predictions(algo, data["pairs"])
        est, flags = KnnModel(from_surprise(algo)).predict_many(data["pairs"], with_flags=True)
        np.testing.assert_allclose(est, ref, atol=1e-6)
        np.testing.assert_array_equal(flags, ref_flags)
    assert ref_flags.any()


def test_unsupported_objects_are_refused(data) -> None:
    algo = _fit(data, "KNNBasic", True)
    with pytest.raises(UnsupportedModelError, match="not a Surprise k-NN model"):
        from_surprise(object())
    algo.sim = algo.sim[:-1]
    with pytest.raises(UnsupportedModelError, match=r"sim must be a numeric array of shape"):
        from_surprise(algo)
    algo.sim = None
    with pytest.raises(UnsupportedModelError, match="is it fitted"):
        from_surprise(algo)


def test_read_pairs(tmp_path: Path) -> None:
    p = tmp_path / "pairs.csv"
    p.write_text("user,item,rating\n1,10,4\n2,x,3.5\n")
    pairs, ratings = read_pairs(p, user_ids=(1, 2), item_ids=(10, 11))
    assert pairs == [(1, 10), (2, "x")] and ratings.tolist() == [4.0, 3.5]
    p.write_text("1,10\n2\n")
    with pytest.raises(InputError, match="row 2: expected"):
        read_pairs(p)
    p.write_text("")
    with pytest.raises(InputError, match="holds no pairs"):
        read_pairs(p)


# ------------------------------------------------------------------------------------------
# Loading (allow-list), files, CLI
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("how", ["pickle2", "pickle5", "joblib-zlib", "surprise-dump"])
def test_pickled_models_load_through_the_allow_list(data, tmp_path: Path, how: str) -> None:
    algo = _fit(data, "KNNBaseline", False)
    path = tmp_path / "m.pkl"
    if how.startswith("pickle"):
        path.write_bytes(pickle.dumps(algo, protocol=int(how[-1])))
    elif how == "joblib-zlib":
        joblib.dump(algo, path, compress=3)
    else:
        from surprise import dump

        dump.dump(str(path), algo=algo)
    loaded = load_model(path)
    est = KnnModel(from_surprise(loaded)).predict_many(data["pairs"][:50])
    ref, _ = _surprise_predictions(algo, data["pairs"][:50])
    np.testing.assert_allclose(est, ref, atol=1e-6)


def test_compress_file_and_load(data, tmp_path: Path) -> None:
    algo = _fit(data, "KNNWithZScore", True)
    src = tmp_path / "knn.pkl"
    src.write_bytes(pickle.dumps(algo, protocol=5))
    csv = tmp_path / "test.csv"
    csv.write_text(
        "".join(f"{u},{i},{r}\n" for (u, i), r in zip(data["pairs"], data["truth"], strict=True))
    )
    report = compress_file(
        CompressOptions(source=src, output=tmp_path / "knn.esb", check_data=csv, neighbours="all")
    )
    assert report.knn.sims_after == report.knn.sims_before and report.knn.sim_dtype == "uint8"
    assert report.output_bytes < report.source_bytes / 4
    assert abs(report.knn.rmse_after / report.knn.rmse_before - 1) < 0.005
    ref, _ = _surprise_predictions(algo, data["pairs"])
    assert report.knn.rmse_before == pytest.approx(_rmse(ref, data["truth"]), abs=1e-9)
    model = load(tmp_path / "knn.esb")
    assert isinstance(model, KnnModel) and "zscore" in repr(model)
    with pytest.raises(InputError, match=r"compresses to \.esb with --neighbours and --quantize"):
        compress_file(CompressOptions(source=src, output=tmp_path / "x.esb", sparsity=0.5))
    with pytest.raises(InputError, match="--refit"):
        compress_file(CompressOptions(source=src, output=tmp_path / "x.esb", refit=True))
    with pytest.raises(InputError, match="Surprise k-NN models only"):
        compress_file(
            CompressOptions(
                source=ROOT / "models" / "iris_l1_logreg.pkl",
                output=tmp_path / "x.esb",
                neighbours=3,
            )
        )
    assert not (tmp_path / "x.esb").exists()


def test_linear_reader_rejects_knn_blob_clearly(data) -> None:
    blob = esb_knn.encode(from_surprise(_fit(data, "KNNBasic", True)))
    with pytest.raises(Exception, match="version 2 holds a k-NN recommender"):
        esb.decode(blob)


def test_cli_compress_predict_inspect(tmp_path: Path) -> None:
    runner = CliRunner()
    model, test_csv = ROOT / "models" / "knn_means.pkl", ROOT / "models" / "knn_ratings.test.csv"
    out = tmp_path / "knn.esb"
    res = runner.invoke(
        cli, ["compress", str(model), "-o", str(out), "--check-data", str(test_csv)]
    )
    assert res.exit_code == 0, res.output
    assert "RMSE" in res.output and "uint8" in res.output
    res = runner.invoke(
        cli, ["compress", str(model), "-o", str(out), "--neighbours", "20", "--json"]
    )
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["sims_after"] <= 120 * 21
    res = runner.invoke(
        cli, ["compress", str(model), "-o", str(out), "--neighbours", "exact", "--json"]
    )
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["sims_after"] < json.loads(res.output)["sims_before"]
    res = runner.invoke(cli, ["compress", str(model), "-o", str(out), "--neighbours", "0"])
    assert res.exit_code == 2 and "--neighbours must be" in res.output
    res = runner.invoke(cli, ["predict", str(out), str(test_csv)])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    pairs, _ = read_pairs(test_csv)
    assert len(lines) == len(pairs)
    m = load(out)
    u, i, est, flag = lines[0].split(",")
    assert (u, i) == pairs[0] and float(est) == pytest.approx(m.predict(u, i).est, abs=1e-5)
    assert flag == str(int(m.predict(u, i).details["was_impossible"]))
    res = runner.invoke(cli, ["inspect", str(out), "--json"])
    assert res.exit_code == 0, res.output
    info = json.loads(res.output)
    assert info["model_kind"] == "knn" and info["variant"] == "means" and info["checksums"] == "OK"
    res = runner.invoke(cli, ["predict", str(out), str(test_csv), "--proba"])
    assert res.exit_code == 2


def test_committed_example_matches_the_training_script() -> None:
    t = _train_module()
    algo, test = t.train_example()
    committed = load_model(ROOT / "models" / "knn_means.pkl")
    pairs = [(u, i) for u, i, _ in test]
    ref, _ = _surprise_predictions(algo, pairs)
    np.testing.assert_allclose(
        KnnModel(from_surprise(committed)).predict_many(pairs), ref, atol=1e-12
    )
    assert read_pairs(ROOT / "models" / "knn_ratings.test.csv")[0] == pairs


_NO_PANDAS = "import sys; sys.modules['pandas'] = None  # any import of pandas now fails\n"


def _readme_training_snippet() -> str:
    """The README's "your own ratings" example (the Python block that trains from a CSV)."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Collaborative filtering") :]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    return next(b for b in blocks if "Dataset.load_from_file" in b)


def test_examples_need_nothing_beyond_the_surprise_extra(tmp_path: Path) -> None:
    # pip install '.[surprise]' brings scikit-surprise, not pandas: the training script and
    # the README's own-ratings example must run without it, and their pickles must compress.
    train = ROOT / "models" / "train_knn.py"
    script = _NO_PANDAS + (
        "import runpy\n"
        f"sys.argv = ['train_knn.py', '--out', {str(tmp_path)!r}]\n"
        f"runpy.run_path({str(train)!r}, run_name='__main__')\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, capture_output=True)
    (tmp_path / "ratings.csv").write_bytes((tmp_path / "knn_ratings.test.csv").read_bytes())
    snippet = _NO_PANDAS + _readme_training_snippet()
    subprocess.run([sys.executable, "-c", snippet], check=True, cwd=tmp_path, capture_output=True)
    for pkl in ("knn_means.pkl", "knn.pkl"):
        out = tmp_path / f"{pkl}.esb"
        res = CliRunner().invoke(cli, ["compress", str(tmp_path / pkl), "-o", str(out)])
        assert res.exit_code == 0, res.output
        assert load(out).predict("u32", "i27").est > 0


def test_hostile_defaultdict_factory_is_refused(tmp_path: Path) -> None:
    # defaultdict(os.system) would call the factory on the first missing key, long after
    # loading; only defaultdict(list) is built.
    payload = (
        b"\x80\x04\x8c\x0bcollections\x8c\x0bdefaultdict\x93\x8c\x08builtins\x8c\x05print\x93\x85R."
    )
    p = tmp_path / "evil.pkl"
    p.write_bytes(payload)
    with pytest.raises(UnsafeModelError, match=r"builtins\.print"):
        load_model(p)
    # the allowed factory token itself cannot be called to build anything
    payload = b"\x80\x04\x8c\x08builtins\x8c\x04list\x93\x8c\x03abc\x85R."
    p.write_bytes(payload)
    with pytest.raises(Exception, match="not a valid pickle/joblib file"):
        load_model(p)
    payload = b"\x80\x04\x8c\x0bcollections\x8c\x0bdefaultdict\x93\x8c\x03abc\x85R."
    p.write_bytes(payload)
    with pytest.raises(ModelFileError) as info:
        load_model(p)
    assert str(info.value) == (
        f"cannot load {p}: it builds a collections.defaultdict other than defaultdict(list); "
        "no file numpy, scikit-learn or joblib writes does that: it is crafted or corrupt; "
        "re-save the model with joblib.dump or pickle.dump"
    )


@pytest.mark.parametrize(
    ("module", "name", "error"),
    [
        ("surprise.dump", "load", UnsafeModelError),
        # Surprise classes off the list: unsupported models, refused the same way.
        ("surprise.dataset", "Dataset", UnsupportedModelError),
        # (SVD became a supported model with issue 21; SlopeOne stays off the list)
        ("surprise.prediction_algorithms.slope_one", "SlopeOne", UnsupportedModelError),
        ("surprise.prediction_algorithms.knns", "SymmetricAlgo", UnsupportedModelError),
        ("collections", "OrderedDict", UnsafeModelError),
        ("builtins", "dict", UnsafeModelError),
    ],
)
def test_other_surprise_and_builtin_globals_are_refused(
    tmp_path: Path, module, name, error
) -> None:
    def s(text: str) -> bytes:
        raw = text.encode()
        return b"\x8c" + bytes([len(raw)]) + raw

    p = tmp_path / "x.pkl"
    p.write_bytes(b"\x80\x04" + s(module) + s(name) + b"\x93.")
    with pytest.raises(error) as info:
        load_model(p)
    if error is UnsafeModelError:
        assert f"it references {module}.{name}, which is not on edgesparse's allow-list" in str(
            info.value
        )
    else:
        assert str(info.value) == (
            f"cannot load {p}: it holds Surprise's {name}, which is not a supported model; "
            "`edgesparse list models` lists the supported ones"
        )
