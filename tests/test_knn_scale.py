"""Surprise k-NN models at real size: the MovieLens-1M-shape generator, and the loader's caps,
which count what a pickle builds (so a million-rating model loads by default) rather than its
opcodes, and say what to do for a k-NN model that exceeds them.

The models are built as ``models/train_knn.py --movielens-1m`` builds them, at 2 % of the size
(20 000 ratings): the full size takes minutes and GiBs (``benchmarks/bench_knn_scale.py``).
"""

from __future__ import annotations

import importlib.util
import pickle
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgesparse.frontends.surprise import SURPRISE_MODULE, from_surprise
from edgesparse.loader import accounting, load_model
from edgesparse.pipeline import CompressOptions, compress_file
from edgesparse.runtime import KnnModel, load
from tests.conftest import require_tool

ROOT = Path(__file__).resolve().parents[1]
HAVE_SURPRISE = importlib.util.find_spec("surprise") is not None


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
def medium(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """An item-based KNNWithMeans on a 20 000-rating MovieLens-1M-shape table, pickled."""
    require_tool(HAVE_SURPRISE, what="scikit-surprise", install="pip install -e '.[surprise]'")
    t = _train_module()
    train, test = t.split(t.make_movielens_1m(scale=0.02), test_fraction=0.1)
    algo, _ = t.fit_movielens_1m(train, "knn_means_item")
    path = tmp_path_factory.mktemp("medium") / "knn_means_item.pkl"
    path.write_bytes(pickle.dumps(algo, protocol=5))
    return {"algo": algo, "path": path, "pairs": [(u, i) for u, i, _ in test], "test": test}


def _opcodes(data: bytes) -> int:
    import pickletools

    return sum(1 for _ in pickletools.genops(data))


# ------------------------------------------------------------------------------------------
# The generated table
# ------------------------------------------------------------------------------------------
def test_movielens_1m_shape_is_reproduced() -> None:
    t = _train_module()
    rows = t.make_movielens_1m(scale=0.02)
    assert rows == t.make_movielens_1m(scale=0.02)  # seeded
    assert rows != t.make_movielens_1m(scale=0.02, seed=1)
    users = Counter(u for u, _, _ in rows)
    items = Counter(i for _, i, _ in rows)
    assert len(rows) == pytest.approx(0.02 * t.ML1M_RATINGS, rel=0.02)
    assert len(users) == round(t.ML1M_USERS * 0.02**0.5)
    assert len(set((u, i) for u, i, _ in rows)) == len(rows)  # no pair rated twice
    assert min(users.values()) >= t.ML1M_MIN_PER_USER
    # density as ML-1M's (1 000 209 / (6 040 x 3 706) = 4.47 %)
    assert len(rows) / (len(users) * len(items)) == pytest.approx(0.0447, abs=0.005)
    shares = np.bincount([int(r) for _, _, r in rows], minlength=6)[1:] / len(rows)
    np.testing.assert_allclose(shares, t.ML1M_STAR_SHARES, atol=0.002)
    # the long tail: the most popular item has many times the median item's ratings
    counts = np.array(sorted(items.values()))
    assert counts[-1] > 10 * np.median(counts)


# ------------------------------------------------------------------------------------------
# The caps count what is built
# ------------------------------------------------------------------------------------------
def test_real_model_loads_by_what_it_builds_not_its_opcode_count(medium, monkeypatch) -> None:
    data = medium["path"].read_bytes()
    n = _opcodes(data)
    assert n > 100_000  # about 4 per rating and per rating list
    # With the opcode cap at a quarter of what the pickle runs, it still loads: what it builds
    # pays for its opcodes.
    monkeypatch.setattr(accounting, "MAX_PICKLE_OPCODES", n // 4)
    loaded = load_model(medium["path"])
    est = KnnModel(from_surprise(loaded)).predict_many(medium["pairs"])
    ref = np.array([medium["algo"].predict(u, i).est for u, i in medium["pairs"]])
    np.testing.assert_allclose(est, ref, rtol=0, atol=1e-6)
    # The same number of opcodes that build nothing is refused.
    flood = medium["path"].with_name("flood.pkl")
    flood.write_bytes(b"\x80\x02" + b"(1" * n + b"N.")
    with pytest.raises(Exception, match="pickle opcodes beyond one per 48 bytes") as info:
        load_model(flood)
    assert "export its weights to .npz" in str(info.value)  # no k-NN class: a linear model


def test_knn_model_is_held_to_its_own_cap(medium, monkeypatch) -> None:
    path = medium["path"]
    # The array cap of linear models does not apply to a k-NN model ...
    monkeypatch.setenv("EDGESPARSE_MAX_ARRAY_BYTES", "1024")
    load_model(path)
    # ... its own does, with the variable that raises it.
    monkeypatch.setenv("EDGESPARSE_MAX_KNN_BYTES", str(1 << 20))
    with pytest.raises(Exception) as info:
        load_model(path)
    assert type(info.value).__name__ == "ModelFileError"
    assert str(info.value) == (
        f"cannot load {path}: it builds more than 1048576 bytes of arrays and objects, more "
        "than edgesparse allows for a Surprise k-NN model by default (one of MovieLens-1M size "
        "builds about 0.5 GiB); if you trust the file, raise the limit with "
        "EDGESPARSE_MAX_KNN_BYTES=<bytes>"
    )
    monkeypatch.setenv("EDGESPARSE_MAX_KNN_BYTES", str(64 << 20))
    load_model(path)


def test_idle_opcodes_in_a_knn_pickle_are_refused_without_npz_advice(
    tmp_path: Path, monkeypatch
) -> None:
    require_tool(HAVE_SURPRISE, what="scikit-surprise", install="pip install -e '.[surprise]'")
    monkeypatch.setattr(accounting, "MAX_PICKLE_OPCODES", 1000)
    path = tmp_path / "idle.pkl"
    head = b"\x80\x02c" + SURPRISE_MODULE.encode() + b"\nKNNBasic\n0"  # GLOBAL, POP
    path.write_bytes(head + b"(1" * 1000 + b"N.")
    with pytest.raises(Exception) as info:
        load_model(path)
    # PROTO reads 1 byte, GLOBAL 45 (+ 8 for its reference): 54 bytes built pay for one
    # opcode past the cap; the 1002nd is refused
    assert str(info.value) == (
        f"cannot load {path}: it runs more than 1000 pickle opcodes beyond one per 48 bytes "
        "they build (1002 opcodes for 54 bytes; a Surprise k-NN model runs about 8 per "
        "rating, each building some 70 bytes); no Surprise model is written so; the file is "
        "crafted or corrupt"
    )


def test_medium_model_compresses_and_agrees_with_surprise(medium, tmp_path: Path) -> None:
    out = tmp_path / "m.esb"
    report = compress_file(CompressOptions(source=medium["path"], output=out))
    assert report.output_bytes < report.source_bytes / 2
    model = load(out)
    assert isinstance(model, KnnModel)
    algo = medium["algo"]
    truth = np.array([r for *_, r in medium["test"]])
    est = model.predict_many(medium["pairs"])
    ref = np.array([algo.predict(u, i).est for u, i in medium["pairs"]])
    rmse = float(np.sqrt(np.mean((est - truth) ** 2)))
    rmse_ref = float(np.sqrt(np.mean((ref - truth) ** 2)))
    assert abs(rmse / rmse_ref - 1) < 0.005  # 8-bit similarities, as in test_knn
    top = model.recommend(medium["pairs"][0][0], n=10)
    assert len(top) == 10 and [p.est for p in top] == sorted((p.est for p in top), reverse=True)
