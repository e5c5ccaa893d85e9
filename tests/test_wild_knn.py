"""Surprise models from the wild (issue 22): k-NN pickles written by older Surprise releases.

``models/wild/surprise/<release>/`` holds what ``models/wild/make_knn.py`` saved in a throwaway
venv of each release: the k-NN algorithms as ``.pkl`` (plain pickle) and some as ``.dump.pkl``
(``surprise.dump.dump``), and what that release's own ``algo.predict`` returned for every
(user, item) pair of the table plus unknown ones (``outputs.npz``). Each file is compressed by
today's edgesparse and must give those estimates and ``was_impossible`` flags.
"""

from __future__ import annotations

import importlib.util
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from edgesparse.api import compress_knn
from edgesparse.errors import UnsupportedModelError
from edgesparse.formats import knn as esb_knn
from edgesparse.frontends.surprise import from_surprise
from edgesparse.loader import load_model
from edgesparse.runtime import KnnModel
from tests.conftest import require_tool

WILD = Path(__file__).resolve().parent.parent / "models" / "wild" / "surprise"
RELEASES = sorted(p.name for p in WILD.iterdir() if (p / "manifest.json").is_file())
HAVE_SURPRISE = importlib.util.find_spec("surprise") is not None


@pytest.fixture(autouse=True)
def _surprise() -> None:
    # The loader resolves the pickles' Surprise classes, so reading them needs Surprise.
    require_tool(HAVE_SURPRISE, what="scikit-surprise", install="pip install -e '.[surprise]'")


def _manifest(release: str) -> dict:
    return json.loads((WILD / release / "manifest.json").read_text())


def _cases() -> list[tuple[str, str, str]]:
    out = []
    for release in RELEASES:
        for name in sorted(_manifest(release)["models"]):
            for suffix in (".pkl", ".dump.pkl"):
                if (WILD / release / f"{name}{suffix}").is_file():
                    out.append((release, name, suffix))
    return out


def _outputs(release: str) -> dict[str, np.ndarray]:
    with np.load(WILD / release / "outputs.npz") as npz:
        return {k: npz[k] for k in npz.files}


def _pairs(expected: dict[str, np.ndarray]) -> list[tuple[str, str]]:
    return list(zip(expected["users"].tolist(), expected["items"].tolist(), strict=True))


def _written_by(release: str) -> str:
    """What edgesparse can tell of the release from the pickle (Surprise records none)."""
    if release.startswith("1.0."):
        return "1.0.4 or older" if release <= "1.0.4" else "1.0.5-1.0.6"
    return "1.1 or newer"


def test_fixtures_cover_the_releases():
    assert {"1.0.4", "1.0.6", "1.1.0", "1.1.4", "1.1.5"} <= set(RELEASES)
    numpys = {_manifest(r)["numpy"].split(".")[0] for r in RELEASES}
    assert numpys == {"1", "2"}  # numpy.core and numpy._core pickles
    total = sum(f.stat().st_size for f in WILD.rglob("*") if f.is_file())
    assert total < 512 * 1024


@pytest.mark.parametrize(("release", "name", "suffix"), _cases())
def test_old_knn_gives_its_own_estimates(release, name, suffix):
    expected = _outputs(release)
    pairs = _pairs(expected)
    algo = load_model(WILD / release / f"{name}{suffix}")
    _, ir = compress_knn(algo, quantize="none")
    assert ir.provenance["surprise_version"] == _written_by(release)
    model = KnnModel(esb_knn.decode(esb_knn.encode(ir)))
    est, flags = model.predict_many(pairs, with_flags=True)
    np.testing.assert_allclose(est, expected[f"{name}.est"], rtol=1e-9, atol=1e-9)
    np.testing.assert_array_equal(flags, expected[f"{name}.impossible"])


# int8 similarities, by the fidelity rules of tests/test_knn.py: every similarity within half
# a step of the original (or at code 1, the smallest a positive similarity keeps), and the
# RMSE on the rated pairs within half a percent of the release's own. One fixture breaks the
# RMSE rule, by what 8 bits do rather than by how the release is read: its cosine similarities
# crowd just under 1, where one step of 1/255 reorders its k=3 neighbours.
INT8_RMSE_EXCEPTIONS = {"basic_cosine_item": 0.03}


@pytest.mark.parametrize(
    ("release", "name"), [(r, n) for r, n, s in _cases() if s == ".pkl" and r in ("1.0.6", "1.1.5")]
)
def test_old_knn_at_int8_keeps_its_fidelity(release, name):
    expected = _outputs(release)
    exact, ir = compress_knn(load_model(WILD / release / f"{name}.pkl"), quantize="int8")
    step = np.repeat(ir.sim_scales.astype(np.float64), np.diff(ir.sim_indptr))
    error = np.abs(ir.sim_float() - exact.sim_float())
    assert np.all(
        (error <= 0.5 * step + 1e-12) | ((ir.sim_values == 1) & (exact.sim_float() < step))
    )
    pairs, truth = _rated(exact)
    ref = dict(zip(_pairs(expected), expected[f"{name}.est"], strict=True))
    before = np.array([ref[p] for p in pairs])
    after = KnnModel(esb_knn.decode(esb_knn.encode(ir))).predict_many(pairs)
    rmse_before = float(np.sqrt(np.mean((before - truth) ** 2)))
    rmse_after = float(np.sqrt(np.mean((after - truth) ** 2)))
    bound = INT8_RMSE_EXCEPTIONS.get(name, 0.005)
    assert abs(rmse_after / rmse_before - 1) <= bound, (rmse_before, rmse_after)


def _rated(ir) -> tuple[list[tuple[str, str]], np.ndarray]:
    """The training (user, item) pairs and ratings, on the original scale."""
    y = np.repeat(np.arange(ir.n_y), np.diff(ir.yr_indptr))
    x = ir.yr_x
    users, items = (x, y) if ir.user_based else (y, x)
    pairs = [(ir.user_ids[u], ir.item_ids[i]) for u, i in zip(users, items, strict=True)]
    return pairs, np.asarray(ir.ratings, dtype=np.float64)


def test_offset_of_surprise_1_0_is_taken_off():
    # Surprise 1.0.x shifted a rating scale starting at or below 0 (here -1..3) by an offset
    # and took it off each estimate in predict(); read without that rule, every estimate of
    # the model would be 2 stars too high.
    path = WILD / "1.0.6" / "means_msd_scale0.pkl"
    assert _manifest("1.0.6")["models"]["means_msd_scale0"]["offset"] == 2
    algo = load_model(path)
    ir = from_surprise(algo)
    assert "trainset.offset=2" in ir.provenance["surprise_rules"]
    expected = _outputs("1.0.6")
    est = KnnModel(ir).predict_many(_pairs(expected), clip=False)
    assert est.min() < 0  # the original scale, not the shifted one
    del algo.trainset.offset
    naive = KnnModel(from_surprise(algo)).predict_many(_pairs(expected))
    assert np.max(np.abs(naive - expected["means_msd_scale0.est"])) > 1.0


def test_bad_offset_is_refused_naming_the_release_and_attribute():
    algo = load_model(WILD / "1.0.6" / "basic_msd_user.pkl")
    algo.trainset.offset = "2"
    with pytest.raises(UnsupportedModelError, match=r"Surprise 1\.0\.5-1\.0\.6.*trainset\.offset"):
        from_surprise(algo)


def test_dump_with_predictions_is_read():
    # surprise.dump.dump(file, predictions=..., algo=...) as Surprise's documentation shows.
    # Its Prediction tuples load as plain tuples; only the algorithm is read.
    from edgesparse.frontends.surprise import is_surprise_knn

    dumps = sorted(WILD.glob("*/means_pearson_user.dump.pkl"))
    assert len(dumps) == len(RELEASES) - 1  # all but 1.1.2 (see the test below)
    for path in dumps:
        dumped = load_model(path)
        assert is_surprise_knn(dumped) and len(dumped["predictions"]) == 6
        assert dumped["predictions"][0].details["was_impossible"] is False


def test_summary_names_the_release_and_its_rules(tmp_path):
    from edgesparse.cli import cli

    for release, want in (
        (
            "1.0.6",
            "written by        Surprise 1.0.5-1.0.6; read by the rules of Surprise 1.0.x "
            "(ratings shifted back by trainset.offset=2)",
        ),
        ("1.1.5", "written by        Surprise 1.1 or newer; read by the rules of Surprise 1.1"),
    ):
        model = WILD / release / "means_msd_scale0.pkl"
        result = CliRunner().invoke(cli, ["compress", str(model), "-o", str(tmp_path / "m.esb")])
        assert result.exit_code == 0, result.output
        line = next(x for x in result.output.splitlines() if x.startswith("written by"))
        assert line.startswith(want), line


def test_surprise_1_1_2_could_pickle_no_knn_model():
    # Its similarity functions return a Cython memoryview, which pickle refuses: there are no
    # 1.1.2 k-NN pickles in the wild, so there are no fixtures either (README.md).
    manifest = _manifest("1.1.2")
    assert manifest["models"] == {}
    assert len(manifest["unpicklable"]) == 8
    assert all("__reduce__" in why for why in manifest["unpicklable"].values())


@pytest.mark.parametrize("args", [("u",), ("u", "i", None, 3.0, {}, "extra")], ids=["1", "6"])
def test_prediction_stand_in_refuses_other_shapes(tmp_path, args):
    # Prediction resolves to a plain five-field tuple: other arities are a bad file, not a crash.
    from edgesparse.errors import ModelFileError

    body = pickle.dumps(args, protocol=2)[2:-1]  # the tuple, without PROTO and STOP
    data = b"\x80\x02csurprise.prediction_algorithms.predictions\nPrediction\n" + body + b"R."
    (tmp_path / "p.pkl").write_bytes(data)
    with pytest.raises(ModelFileError, match="not a valid pickle"):
        load_model(tmp_path / "p.pkl")
