"""``KnnModel.recommend`` (scored all at once in numpy) against two oracles: the per-pair
``predict`` of every candidate item sorted stably by estimate (bit for bit: estimates, chosen
items, their order, details), and Surprise's own ``predict`` (the same ranking, estimates within
1e-9, since Surprise sums in Python). ``predict_many`` is checked against ``predict`` too.

The tables are small and built so that top-k truncation and ties happen: k=3, min_k=2, users
with identical rating rows (equal similarities), ratings on a coarse grid; 8-bit similarities
tie further. A tiny ``block_entries`` makes the candidates go through in many blocks.
"""

from __future__ import annotations

import importlib.util
import itertools
from collections import defaultdict
from typing import Any

import numpy as np
import pytest

from edgesparse.api import compress_knn
from edgesparse.formats import knn as esb_knn
from edgesparse.frontends.surprise import from_surprise
from edgesparse.runtime import KnnModel
from tests.conftest import require_tool

HAVE_SURPRISE = importlib.util.find_spec("surprise") is not None
CLASSES = ("KNNBasic", "KNNWithMeans", "KNNWithZScore", "KNNBaseline")


@pytest.fixture(autouse=True)
def _surprise() -> None:
    require_tool(HAVE_SURPRISE, what="scikit-surprise", install="pip install -e '.[surprise]'")


def _rows(n_users: int) -> list[tuple[str, str, float]]:
    rng = np.random.default_rng(7)
    rows = []
    for u in range(n_users):
        twin = u % 8 if u >= 16 else u  # users from 16 on copy users 0..7: equal similarities
        r = np.random.default_rng(100 + twin)
        for i in range(30):
            if r.random() < 0.45:
                rows.append((f"u{u}", f"i{i}", float(r.integers(1, 6))))
    rows += [("u3", f"i{i}", float(rng.integers(1, 6))) for i in range(30, 34)]  # rare items
    rows.append(("loner", "i0", 4.0))  # one rating: few neighbours
    return rows


def _trainset(rows: list[tuple[str, str, float]]) -> Any:
    from surprise import Trainset

    r2u: dict[str, int] = {}
    r2i: dict[str, int] = {}
    ur: defaultdict = defaultdict(list)
    ir: defaultdict = defaultdict(list)
    for u, i, r in rows:
        uu, ii = r2u.setdefault(u, len(r2u)), r2i.setdefault(i, len(r2i))
        ur[uu].append((ii, r))
        ir[ii].append((uu, r))
    return Trainset(ur, ir, len(r2u), len(r2i), len(rows), (1, 5), r2u, r2i)


_FITTED: dict[tuple[str, bool, int], Any] = {}


def _algo(cls: str, user_based: bool, k: int = 3) -> Any:
    """k=3 on 24 users; k=12 on 80 users (sums of 9 and more terms: numpy's pairwise sum)."""
    import surprise

    if (cls, user_based, k) not in _FITTED:
        algo = getattr(surprise, cls)(
            k=k, min_k=2, sim_options={"name": "cosine", "user_based": user_based}, verbose=False
        )
        _FITTED[cls, user_based, k] = algo.fit(_trainset(_rows(24 if k == 3 else 80)))
    return _FITTED[cls, user_based, k]


def _model(cls: str, user_based: bool, eight_bit: bool, *, k: int = 3, block: int = 7) -> KnnModel:
    algo = _algo(cls, user_based, k)
    ir = compress_knn(algo, quantize="int8")[1] if eight_bit else from_surprise(algo)
    model = KnnModel(esb_knn.decode(esb_knn.encode(ir)))
    model.block_entries = block  # 7: many blocks, and items larger than a block
    return model


def _oracle(model: KnnModel, uid: Any, n: int, exclude_seen: bool) -> list:
    """Every candidate through the per-pair ``predict``, sorted stably by estimate."""
    seen: set = set()
    if exclude_seen and uid in model._uid:
        seen = {model.ir.item_ids[i] for i in model._items_of(model._uid[uid]).tolist()}
    preds = [model.predict(uid, iid) for iid in model.ir.item_ids if iid not in seen]
    return sorted(preds, key=lambda p: -p.est)[:n]


USERS = ["u0", "u3", "u16", "u9", "loner", "nobody"]


@pytest.mark.parametrize(("k", "block"), [(3, 7), (3, 1 << 17), (12, 50)])
@pytest.mark.parametrize("eight_bit", [False, True], ids=["float", "8bit"])
@pytest.mark.parametrize("user_based", [True, False], ids=["user", "item"])
@pytest.mark.parametrize("cls", CLASSES)
def test_recommend_equals_sorted_per_pair_predict(cls, user_based, eight_bit, k, block) -> None:
    model = _model(cls, user_based, eight_bit, k=k, block=block)
    truncated = 0
    for uid in USERS:
        for exclude_seen in (True, False):
            for n in (0, 1, 5, 10_000):
                got = model.recommend(uid, n=n, exclude_seen=exclude_seen)
                ref = _oracle(model, uid, n, exclude_seen)
                assert [p.iid for p in got] == [p.iid for p in ref], (uid, n, exclude_seen)
                assert [p.est for p in got] == [p.est for p in ref]  # bit for bit
                assert [p.details for p in got] == [p.details for p in ref]
                assert all(p.uid == uid for p in got)
                truncated += sum(p.details.get("actual_k") == k for p in got)
    assert truncated  # k cut some neighbour lists


@pytest.mark.parametrize("k", [3, 12])
@pytest.mark.parametrize("user_based", [True, False], ids=["user", "item"])
@pytest.mark.parametrize("cls", CLASSES)
def test_recommend_ranks_as_surprise_predict(cls, user_based, k) -> None:
    algo = _algo(cls, user_based, k)
    model = _model(cls, user_based, False, k=k)
    ts = algo.trainset
    for uid in USERS:
        try:
            seen = {ts.to_raw_iid(i) for i, _ in ts.ur[ts.to_inner_uid(uid)]}
        except ValueError:  # an unknown user has seen nothing
            seen = set()
        items = [ts.to_raw_iid(i) for i in range(ts.n_items) if ts.to_raw_iid(i) not in seen]
        ref = sorted((algo.predict(uid, i) for i in items), key=lambda p: -p.est)
        got = model.recommend(uid, n=10_000)
        assert len(got) == len(ref)
        # the same sequence of estimates, each the one Surprise gives that item; so the
        # ranking is Surprise's up to estimates equal within 1e-9
        np.testing.assert_allclose([p.est for p in got], [p.est for p in ref], rtol=0, atol=1e-9)
        by_item = {p.iid: p for p in ref}
        for p in got:
            s = by_item[p.iid]
            assert p.est == pytest.approx(s.est, abs=1e-9)
            assert p.details["was_impossible"] == s.details["was_impossible"]
            if "actual_k" in s.details:
                assert p.details["actual_k"] == s.details["actual_k"]


def test_ties_are_broken_in_training_order() -> None:
    model = _model("KNNBasic", True, True)
    got = model.recommend("u0", n=10_000, exclude_seen=False)
    ests = [p.est for p in got]
    assert len(set(ests)) < len(ests)  # the table does produce tied estimates
    pos = {iid: j for j, iid in enumerate(model.ir.item_ids)}
    for a, b in itertools.pairwise(got):
        assert a.est > b.est or (a.est == b.est and pos[a.iid] < pos[b.iid])


@pytest.mark.parametrize("k", [3, 12])
@pytest.mark.parametrize("eight_bit", [False, True], ids=["float", "8bit"])
@pytest.mark.parametrize("user_based", [True, False], ids=["user", "item"])
@pytest.mark.parametrize("cls", CLASSES)
def test_predict_many_equals_predict(cls, user_based, eight_bit, k) -> None:
    model = _model(cls, user_based, eight_bit, k=k)
    users = [*model.ir.user_ids, "nobody"]
    items = [*model.ir.item_ids, "nothing"]
    rng = np.random.default_rng(3)
    pairs = [(users[a], items[b]) for a, b in rng.integers(0, [len(users), len(items)], (400, 2))]
    pairs += [("u0", iid) for iid in items]  # one user with many pairs: scored together
    for clip in (True, False):
        est, flags = model.predict_many(pairs, clip=clip, with_flags=True)
        ref = [model.predict(u, i, clip=clip) for u, i in pairs]
        assert est.tolist() == [float(p.est) for p in ref]
        assert flags.tolist() == [p.details["was_impossible"] for p in ref]


@pytest.mark.parametrize("user_based", [True, False], ids=["user", "item"])
def test_recommend_without_the_int64_sort_key(user_based, monkeypatch) -> None:
    """The fallback for keys that would overflow int64 (np.lexsort) ranks the same."""
    from edgesparse.runtime import knn as runtime_knn

    for eight_bit in (False, True):
        model = _model("KNNWithZScore", user_based, eight_bit, k=12, block=1 << 17)
        want = {uid: model.recommend(uid, n=10_000) for uid in USERS}
        monkeypatch.setattr(runtime_knn, "_KEY_LIMIT", 0)
        for uid in USERS:
            assert model.recommend(uid, n=10_000) == want[uid] == _oracle(model, uid, 10_000, True)
        monkeypatch.undo()
