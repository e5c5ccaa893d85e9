"""Surprise matrix-factorization recommenders (SVD, SVDpp, NMF, BaselineOnly): conversion
through the allow-list loader, the numpy runtime against Surprise's own ``predict`` (the
oracle), and ``recommend`` against a brute-force ranking of the same model's scores.

The rating table comes from ``models/train_knn.py`` (seeded, generated, no downloads).
"""

from __future__ import annotations

import importlib.util
import json
import pickle
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from edgesparse.cli import cli
from edgesparse.data import read_pairs
from edgesparse.errors import IRError, UnsupportedModelError
from edgesparse.frontends import to_ir
from edgesparse.frontends.surprise_factors import from_surprise_factors
from edgesparse.ir.factors import FactorIR
from edgesparse.loader import load_model
from edgesparse.runtime import load
from edgesparse.runtime.factors import FactorModel
from tests.conftest import require_tool

ROOT = Path(__file__).resolve().parents[1]
HAVE_SURPRISE = importlib.util.find_spec("surprise") is not None

# (class, constructor options): every algorithm, and each biased/unbiased choice Surprise has.
ALGOS = [
    ("SVD", {"n_factors": 12, "n_epochs": 8}),
    ("SVD", {"n_factors": 6, "n_epochs": 5, "biased": False}),
    ("SVDpp", {"n_factors": 6, "n_epochs": 4}),
    ("NMF", {"n_factors": 5, "n_epochs": 10}),
    ("NMF", {"n_factors": 5, "n_epochs": 10, "biased": True}),
    ("BaselineOnly", {}),
]
IDS = ["svd", "svd-unbiased", "svdpp", "nmf", "nmf-biased", "baseline"]


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
    train, test = t.split(t.make_ratings())
    pairs = [(u, i) for u, i, _ in test]
    # unknown user, unknown item, both unknown: Surprise's fallbacks
    pairs += [("nobody", "i3"), ("u3", "no-such-item"), ("nobody", "nothing")]
    return {"ts": t.trainset(train), "pairs": pairs, "truth": np.array([r for *_, r in test])}


def fit(data: dict[str, Any], cls: str, options: dict[str, Any]) -> Any:
    """A fitted Surprise algorithm (seeded)."""
    import surprise

    kw = {"verbose": False} if cls == "BaselineOnly" else {"random_state": 0, **options}
    algo = getattr(surprise, cls)(**kw).fit(data["ts"])
    return algo


def loaded(algo: Any, tmp_path: Path) -> Any:
    path = tmp_path / "algo.pkl"
    path.write_bytes(pickle.dumps(algo))
    return load_model(path)


def surprise_predictions(algo: Any, pairs: list) -> tuple[np.ndarray, np.ndarray]:
    preds = [algo.predict(u, i) for u, i in pairs]
    return np.array([p.est for p in preds]), np.array([p.details["was_impossible"] for p in preds])


# ------------------------------------------------------------------------------------------
# Parity with Surprise
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("cls", "options"), ALGOS, ids=IDS)
def test_float_model_equals_surprise_predict(data, tmp_path, cls: str, options: dict) -> None:
    algo = fit(data, cls, options)
    ir = to_ir(loaded(algo, tmp_path))
    assert isinstance(ir, FactorIR) and ir.provenance["source"] == f"surprise.{cls}"
    model = FactorModel(ir)
    ref, ref_flags = surprise_predictions(algo, data["pairs"])
    est, flags = model.predict_many(data["pairs"], with_flags=True)
    np.testing.assert_allclose(est, ref, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(flags, ref_flags)
    # Only an unbiased model has no fallback for an unknown user or item.
    assert bool(ref_flags[-3:].all()) == (not ir.biased)
    for u, i in data["pairs"][:20] + data["pairs"][-3:]:
        mine, theirs = model.predict(u, i), algo.predict(u, i)
        assert mine.est == pytest.approx(theirs.est, abs=1e-6)
        assert mine.details["was_impossible"] == theirs.details["was_impossible"]
        assert mine.est == est[data["pairs"].index((u, i))]
    u, i = data["pairs"][0]
    assert model.predict(u, i, clip=False).est == pytest.approx(
        algo.predict(u, i, clip=False).est, abs=1e-6
    )


@pytest.mark.parametrize(("cls", "options"), ALGOS, ids=IDS)
def test_one_pair_equals_the_batch_bit_for_bit(data, cls: str, options: dict) -> None:
    """``predict`` (one pair, on Python floats) and ``predict_many`` (arrays) give the same
    bits for every factor type, known and unknown ids, clipped or not."""
    from edgesparse.passes.factors import quantize_factors

    exact = from_surprise_factors(fit(data, cls, options))
    for how in ("none", "float32", "int8"):
        model = FactorModel(quantize_factors(exact, how))
        for clip in (True, False):
            est, flags = model.predict_many(data["pairs"], clip=clip, with_flags=True)
            one = [model.predict(u, i, clip=clip) for u, i in data["pairs"]]
            assert [p.est for p in one] == est.tolist(), (how, clip)
            assert [p.details["was_impossible"] for p in one] == flags.tolist()


def test_svdpp_implicit_term_is_folded_into_the_user_factors(data) -> None:
    algo = fit(data, "SVDpp", {"n_factors": 4, "n_epochs": 2})
    ir = from_surprise_factors(algo)
    ts = algo.trainset
    for u in (0, 7, ts.n_users - 1):
        js = [j for j, _ in ts.ur[u]]
        want = algo.pu[u] + sum(algo.yj[j] for j in js) / np.sqrt(len(js))
        np.testing.assert_array_equal(ir.p[u], want)  # Surprise's own sum: the same bits


# ------------------------------------------------------------------------------------------
# recommend
# ------------------------------------------------------------------------------------------
def brute_force(model: FactorModel, uid: Any, n: int, *, exclude_seen: bool) -> list[Any]:
    """Items by predict()'s estimate, highest first, ties in training order."""
    ir = model.ir
    seen: set[Any] = set()
    if exclude_seen and uid in ir.user_ids:
        u = ir.user_ids.index(uid)
        seen = {ir.item_ids[j] for j in ir.seen_items[ir.seen_indptr[u] : ir.seen_indptr[u + 1]]}
    scored = [(-model.predict(uid, iid).est, k, iid) for k, iid in enumerate(ir.item_ids)]
    return [iid for _, _, iid in sorted(scored) if iid not in seen][:n]


@pytest.mark.parametrize(("cls", "options"), ALGOS, ids=IDS)
def test_recommend_equals_brute_force(data, cls: str, options: dict) -> None:
    model = FactorModel(from_surprise_factors(fit(data, cls, options)))
    for uid in ("u0", "u5", "u77", "nobody"):
        for exclude in (True, False):
            got = model.recommend(uid, 15, exclude_seen=exclude)
            assert [p.iid for p in got] == brute_force(model, uid, 15, exclude_seen=exclude)
            assert [p.est for p in got] == [model.predict(uid, p.iid).est for p in got]
    everything = model.recommend("u0", model.ir.n_items, exclude_seen=False)
    assert len(everything) == model.ir.n_items


def test_recommend_rejects_a_bad_count(data) -> None:
    model = FactorModel(from_surprise_factors(fit(data, "BaselineOnly", {})))
    assert model.recommend("u0", 0) == []
    for bad in (-1, 2.5, True):
        with pytest.raises(Exception, match="n must be a whole number"):
            model.recommend("u0", bad)


# ------------------------------------------------------------------------------------------
# What is refused
# ------------------------------------------------------------------------------------------
def test_a_crafted_model_is_refused_by_name(data) -> None:
    algo = fit(data, "SVD", {"n_factors": 3, "n_epochs": 1})
    algo.qi = algo.qi[:, :2]
    with pytest.raises(UnsupportedModelError, match=r"qi must be a numeric array of shape"):
        from_surprise_factors(algo)
    algo = fit(data, "NMF", {"n_factors": 3, "n_epochs": 1})
    algo.biased = "yes"
    with pytest.raises(UnsupportedModelError, match="biased must be True or False"):
        from_surprise_factors(algo)
    with pytest.raises(UnsupportedModelError, match="not a Surprise matrix-factorization model"):
        from_surprise_factors(object())


def _tiny(**changes: Any) -> FactorIR:
    fields: dict[str, Any] = {
        "algorithm": "svd",
        "biased": True,
        "global_mean": 3.0,
        "rating_scale": (1.0, 5.0),
        "user_ids": ("a", "b"),
        "item_ids": ("x", "y", "z"),
        "seen_indptr": np.array([0, 1, 3], dtype=np.int64),
        "seen_items": np.array([2, 0, 1], dtype=np.int32),
        "bu": np.array([0.5, -0.5]),
        "bi": np.array([0.1, 0.2, 0.3]),
        "p": np.ones((2, 2)),
        "q": np.ones((3, 2)),
    }
    fields.update(changes)
    return FactorIR(**fields)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"algorithm": "als"}, "algorithm 'als' is not one of"),
        ({"algorithm": "svdpp", "biased": False, "bu": None, "bi": None}, "always biased"),
        ({"bu": None}, "bu must be given when biased=True"),
        ({"bi": np.zeros(2)}, r"bi must be float64 of shape \(3,\)"),
        ({"p": np.ones((2, 3))}, "the same number"),
        ({"q": np.full((3, 2), np.nan)}, "p and q must be finite"),
        ({"seen_items": np.array([2, 1, 0], dtype=np.int32)}, "strictly increasing"),
        ({"seen_items": np.array([3, 0, 1], dtype=np.int32)}, r"must lie in \[0, 3\)"),
        ({"user_ids": ("a", "a")}, "user_ids has repeated ids"),
        ({"p_scales": np.ones(2, dtype=np.float32)}, "scales are only for int8 factors"),
        (
            {"p": np.ones((2, 2), dtype=np.int8), "q": np.ones((3, 2), dtype=np.int8)},
            "int8 factors need float32 p_scales",
        ),
        ({"algorithm": "baseline"}, "p and q must be None for 'baseline'"),
    ],
)
def test_the_ir_refuses_what_is_not_a_model(changes: dict, message: str) -> None:
    _tiny()  # the base is valid
    with pytest.raises(IRError, match=message):
        _tiny(**changes)


# ------------------------------------------------------------------------------------------
# The CLI
# ------------------------------------------------------------------------------------------
def test_cli_compress_predict_inspect(data, tmp_path: Path) -> None:
    runner = CliRunner()
    algo = fit(data, "SVDpp", {"n_factors": 8, "n_epochs": 4})
    model, test_csv = tmp_path / "svdpp.pkl", ROOT / "models" / "knn_ratings.test.csv"
    model.write_bytes(pickle.dumps(algo))
    out = tmp_path / "svdpp.esb"
    res = runner.invoke(
        cli, ["compress", str(model), "-o", str(out), "--check-data", str(test_csv), "--json"]
    )
    assert res.exit_code == 0, res.output
    report = json.loads(res.output)
    assert report["estimator"] == "surprise.SVDpp" and report["factor_dtype"] == "int8"
    pairs, truth = read_pairs(test_csv, columns="user,item,rating")
    ref = np.array([algo.predict(u, i).est for u, i in pairs])
    assert report["rmse_before"] == pytest.approx(np.sqrt(np.mean((ref - truth) ** 2)), abs=1e-9)
    assert abs(report["rmse_after"] - report["rmse_before"]) <= 0.005 * report["rmse_before"]
    assert report["output_bytes"] == out.stat().st_size < report["source_bytes"]
    res = runner.invoke(cli, ["compress", str(model), "-o", str(out), "--quantize", "none"])
    assert res.exit_code == 0 and "factor dtype" in res.output and "float64" in res.output
    m = load(out)
    assert isinstance(m, FactorModel)
    res = runner.invoke(cli, ["predict", str(out), str(test_csv)])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert len(lines) == len(pairs)
    for line, (u, i) in zip(lines[:30], pairs[:30], strict=True):
        uu, ii, est, flag = line.split(",")
        assert (uu, ii) == (u, i) and float(est) == pytest.approx(algo.predict(u, i).est, abs=1e-5)
        assert flag == "0"
    res = runner.invoke(cli, ["inspect", str(out), "--json"])
    assert res.exit_code == 0, res.output
    info = json.loads(res.output)
    assert info["model_kind"] == "factors" and info["algorithm"] == "svdpp"
    assert info["checksums"] == "OK" and info["n_factors"] == 8
    res = runner.invoke(cli, ["predict", str(out), str(test_csv), "--proba"])
    assert res.exit_code == 2 and "matrix-factorization recommender" in res.output
    res = runner.invoke(cli, ["compress", str(model), "-o", str(out), "--neighbours", "5"])
    assert res.exit_code != 0 and "--quantize only (not --neighbours)" in res.output
    res = runner.invoke(cli, ["compress", str(model), "-o", str(tmp_path / "m.onnx")])
    assert res.exit_code != 0 and "compresses to .esb only" in res.output
    # export-c writes the C runtime's factor part too (tests/test_c_factors.py builds it)
    res = runner.invoke(cli, ["export-c", str(out), "-o", str(tmp_path / "c")])
    assert res.exit_code == 0 and (tmp_path / "c" / "esb_factors.c").is_file(), res.output


def test_a_factor_pickle_is_held_to_the_recommender_cap(data) -> None:
    # Its trainset holds every rating twice as tuples, as a k-NN model's does: the array cap
    # for linear models would refuse one of a few hundred thousand ratings.
    from edgesparse.loader.accounting import is_knn_pickle

    for cls, options in ALGOS:
        assert is_knn_pickle(fit(data, cls, {**options, "n_epochs": 1}))
