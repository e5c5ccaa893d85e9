"""The C runtime for k-NN recommenders (edgesparse/runtime/c/esb_knn.c) against the numpy
runtime (runtime/knn.py), Surprise, and the Python reader (formats/knn.py).

Oracles: KnnModel.predict / recommend on the same blob (estimates equal bit for bit: the C
code takes the same neighbours in the same order and sums them with numpy's pairwise
summation), Surprise's predict on the exact model (within 1e-6, as tests/test_knn.py), and
knn.decode's decision and message on malformed blobs. Built with gcc (-Werror) and, where
clang has its sanitizer runtimes, under ASan + UBSan.
"""

from __future__ import annotations

import importlib.util
import random
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgesparse.errors import FormatError
from edgesparse.formats import esb as esb_linear
from edgesparse.formats import knn as esb_knn
from edgesparse.formats.container import BlobKind, kind_of
from edgesparse.ir.knn import KnnIR
from edgesparse.runtime import KnnModel
from tests.cdriver import (
    C_DIR,
    CROSS,
    build_cross,
    build_driver,
    build_probe,
    fuzz_seeds,
    make_export,
    run,
    run_driver,
    verify_all,
)
from tests.conftest import require_tool
from tests.test_esb_malformed import reseal
from tests.test_knn_malformed import BLOB as SMALL_BLOB
from tests.test_knn_malformed import CASES as MALFORMED
from tests.test_knn_malformed import small_ir

ROOT = Path(__file__).resolve().parents[1]
HAVE_SURPRISE = importlib.util.find_spec("surprise") is not None
# Messages whose detail is the JSON parser's own wording: compared up to that detail.
JSON_CASES = {"provenance"}
esb = run_driver


@pytest.fixture(scope="module")
def build_dir(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("cknn"))


@pytest.fixture(scope="module")
def host(build_dir) -> list[str]:
    return build_driver(build_dir, sanitized=False, name="esb-knn")


@pytest.fixture(scope="module")
def asan(build_dir) -> list[str]:
    return build_driver(build_dir, sanitized=True, name="esb-knn")


# ------------------------------------------------------------------------------------------
# Models: every variant, user- and item-based, float64 / float32 / uint8 similarities
# ------------------------------------------------------------------------------------------
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
    require_tool(HAVE_SURPRISE, what="scikit-surprise", install="pip install -e '.[surprise]'")
    t = _train_module()
    train, test = t.split(t.make_ratings(half_stars=True))
    pairs = [(u, i) for u, i, _ in test]
    pairs += [("nobody", "i3"), ("u3", "no-such-item"), ("nobody", "nothing")]
    return {"ts": t.trainset(train), "pairs": pairs, "train": train}


def _fit(data: dict[str, Any], cls: str, user_based: bool) -> Any:
    import surprise

    algo = getattr(surprise, cls)(
        k=10,
        min_k=2,
        sim_options={"name": "pearson_baseline", "user_based": user_based},
        verbose=False,
    )
    return algo.fit(data["ts"])


def write_pairs(path: Path, pairs: list[tuple[Any, Any]]) -> Path:
    path.write_text("user,item\n" + "".join(f"{u},{i}\n" for u, i in pairs))
    return path


def c_predict(driver: list[str], blob: Path, pairs: Path) -> list[list[str]]:
    return [line.split("\t") for line in esb(driver, "predict", blob, pairs).splitlines()]


def assert_same_as_numpy(model: KnnModel, pairs: list, lines: list[list[str]]) -> None:
    """Estimates bit for bit (clipped and not), actual_k and was_impossible as predict's."""
    assert len(lines) == len(pairs)
    for (u, i), line in zip(pairs, lines, strict=True):
        ref = model.predict(u, i)
        assert float(line[0]) == ref.est, (u, i, line, ref)
        assert float(line[3]) == model.predict(u, i, clip=False).est, (u, i)
        assert line[1] == str(ref.details.get("actual_k", "-")), (u, i, line, ref)
        assert line[2] == str(int(ref.details["was_impossible"])), (u, i, line, ref)


CLASSES = ("KNNBasic", "KNNWithMeans", "KNNWithZScore", "KNNBaseline")


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("user_based", [True, False], ids=["user", "item"])
def test_every_variant_matches_numpy_and_surprise(data, host, cls, user_based, tmp_path) -> None:
    from edgesparse.frontends.surprise import from_surprise
    from edgesparse.passes.knn import quantize_sims

    algo = _fit(data, cls, user_based)
    pairs = data["pairs"]
    csv = write_pairs(tmp_path / "pairs.csv", pairs)
    for quantize in ("none", "float32", "int8"):
        ir = quantize_sims(from_surprise(algo), quantize)
        blob = tmp_path / f"{quantize}.esb"
        blob.write_bytes(esb_knn.encode(ir))
        model = KnnModel(esb_knn.decode(blob.read_bytes()))
        lines = c_predict(host, blob, csv)
        assert_same_as_numpy(model, pairs, lines)
        if quantize == "none":  # the exact model: Surprise's own estimates and flags
            for (u, i), line in zip(pairs, lines, strict=True):
                ref = algo.predict(u, i)
                assert float(line[0]) == pytest.approx(ref.est, abs=1e-6)
                assert line[2] == str(int(ref.details["was_impossible"]))
                assert line[1] == str(ref.details.get("actual_k", "-"))


def test_bundled_model_matches_surprise(host, tmp_path) -> None:
    require_tool(HAVE_SURPRISE, what="scikit-surprise", install="pip install -e '.[surprise]'")
    from edgesparse.api import compress_knn
    from edgesparse.loader import load_model

    # The loader, not joblib: the bundled pickle was written under numpy 2, and the loader
    # also reads it under the lowest numpy 1.x.
    algo = load_model(ROOT / "models" / "knn_means.pkl")
    csv = ROOT / "models" / "knn_ratings.test.csv"
    rows = [ln.split(",") for ln in csv.read_text().splitlines()[1:] if ln.strip()]
    pairs = [(u, i) for u, i, _ in rows]
    for quantize in ("none", "int8"):
        _, ir = compress_knn(algo, quantize=quantize)
        blob = tmp_path / f"means-{quantize}.esb"
        blob.write_bytes(esb_knn.encode(ir))
        lines = c_predict(host, blob, csv)  # the rating column is ignored
        assert_same_as_numpy(KnnModel(esb_knn.decode(blob.read_bytes())), pairs, lines)
        if quantize == "none":
            ref = np.array([algo.predict(u, i).est for u, i in pairs])
            got = np.array([float(ln[0]) for ln in lines])
            np.testing.assert_allclose(got, ref, rtol=0, atol=1e-6)


def c_recommend(driver: list[str], blob: Path, user: Any, n: int, *, all_items: bool = False):
    out = esb(driver, "recommend", blob, str(user), str(n), *(["--all"] if all_items else []))
    return [(ln.split("\t")[0], float(ln.split("\t")[1])) for ln in out.splitlines()]


@pytest.mark.parametrize("cls", ["KNNWithMeans", "KNNBaseline"])
@pytest.mark.parametrize("user_based", [True, False], ids=["user", "item"])
def test_recommend_is_exact_top_n(data, host, cls, user_based, tmp_path) -> None:
    """Equal to KnnModel.recommend, and to a brute force over the C estimates of every
    candidate item (best first, ties in training order)."""
    from edgesparse.api import compress_knn

    algo = _fit(data, cls, user_based)
    _, ir = compress_knn(algo, quantize="int8")  # 8-bit similarities tie often
    blob = tmp_path / "knn.esb"
    blob.write_bytes(esb_knn.encode(ir))
    model = KnnModel(esb_knn.decode(blob.read_bytes()))
    items = list(model.ir.item_ids)
    users = [data["train"][j][0] for j in (0, 5, 17)] + ["nobody"]
    for user in users:
        for n, all_items in ((10, False), (10_000, False), (7, True)):
            got = c_recommend(host, blob, user, n, all_items=all_items)
            ref = model.recommend(user, n=n, exclude_seen=not all_items)
            assert [g[0] for g in got] == [str(p.iid) for p in ref], (user, n)
            assert [g[1] for g in got] == [p.est for p in ref], (user, n)
        # brute force: every item the user did not rate, scored by the C predict
        csv = write_pairs(tmp_path / "all.csv", [(user, i) for i in items])
        est = np.array([float(ln[0]) for ln in c_predict(host, blob, csv)])
        seen = set() if user == "nobody" else {p for p in _seen(model, user)}
        cand = [j for j in range(len(items)) if j not in seen]
        order = sorted(cand, key=lambda j: -est[j])  # stable: ties keep training order
        got = c_recommend(host, blob, user, 25)
        assert [g[0] for g in got] == [str(items[j]) for j in order[:25]]


def _seen(model: KnnModel, user: Any) -> set[int]:
    """Inner ids of the items ``user`` rated in training (from the blob's ratings)."""
    ir = model.ir
    u = ir.user_ids.index(user)
    if not ir.user_based:
        return set(ir.yr_x[ir.yr_indptr[u] : ir.yr_indptr[u + 1]].tolist())
    return {y for y in range(ir.n_y) if u in ir.yr_x[ir.yr_indptr[y] : ir.yr_indptr[y + 1]]}


# ------------------------------------------------------------------------------------------
# Edge cases without Surprise: ids of every kind, k and min_k, ties, ASan + UBSan
# ------------------------------------------------------------------------------------------
def _tie_irs() -> dict[str, KnnIR]:
    """Small hand-made models: ties in similarity (rating order decides), k = 0, min_k above
    every neighbour count, float and int ids, a rater who rated an item twice."""
    base = small_ir()
    out = {"zscore-u8": base}
    out["k0"] = small_ir(k=0)
    out["k1-ties"] = small_ir(k=1, sim_values=np.array([200, 200, 255, 200, 200], np.uint8))
    out["min-k-high"] = small_ir(min_k=5)
    for variant in ("basic", "means", "baseline"):
        extra: dict[str, Any] = {"means": None, "sigmas": None}
        if variant == "means":
            extra["means"] = np.array([3.5, 1.0, 4.5])
        if variant == "baseline":
            extra.update(bu=np.array([0.2, -0.4, 0.1]), bi=np.array([-0.3, 0.25]))
        for min_k in (0, 1, 3):
            out[f"{variant}-min{min_k}"] = small_ir(variant=variant, min_k=min_k, **extra)
    out["float-ids"] = small_ir(user_ids=(1.5, -0.0, 2.25), item_ids=(10.0, 7.5))
    out["int-ids"] = small_ir(user_ids=(-5, 2**62, 0), item_ids=(3, -1))
    out["item-based-twice"] = KnnIR(
        variant="basic",
        user_based=False,
        k=3,
        min_k=1,
        sim_indptr=np.array([0, 2, 3], dtype=np.int64),
        sim_indices=np.array([0, 1, 1], dtype=np.int32),
        sim_values=np.array([0.9, 0.5, 1.0]),
        yr_indptr=np.array([0, 1, 4, 5], dtype=np.int64),
        yr_x=np.array([0, 1, 0, 1], dtype=np.int32)[[0, 1, 0, 1, 1]],
        ratings=np.array([4.0, 3.0, 2.0, 5.0, 1.0]),
        global_mean=3.0,
        rating_scale=(1.0, 5.0),
        user_ids=("a", "b", "c"),
        item_ids=("x", "y"),
    )
    return out


def _all_pairs(ir: KnnIR) -> list[tuple[Any, Any]]:
    users = [*ir.user_ids, "nobody" if isinstance(ir.user_ids[0], str) else 999]
    items = [*ir.item_ids, "nothing" if isinstance(ir.item_ids[0], str) else 999]
    return [(u, i) for u in users for i in items]


@pytest.mark.parametrize("case", list(_tie_irs()))
def test_edge_cases_match_numpy_under_sanitizers(asan, case, tmp_path) -> None:
    ir = _tie_irs()[case]
    blob = tmp_path / "m.esb"
    blob.write_bytes(esb_knn.encode(ir))
    model = KnnModel(esb_knn.decode(blob.read_bytes()))
    pairs = _all_pairs(ir)
    assert_same_as_numpy(model, pairs, c_predict(asan, blob, write_pairs(tmp_path / "p", pairs)))
    for user in [*ir.user_ids[:2], pairs[-1][0]]:
        got = c_recommend(asan, blob, user, 5)
        ref = model.recommend(user, n=5)
        assert [g[1] for g in got] == [p.est for p in ref]
        assert [g[0] for g in got] == [_text(p.iid) for p in ref]


def _text(raw: Any) -> str:
    """How the driver prints a raw id (floats as %.17g)."""
    return f"{raw:.17g}" if isinstance(raw, float) else str(raw)


# ------------------------------------------------------------------------------------------
# The verifier: same decision and message as knn.decode
# ------------------------------------------------------------------------------------------
def python_error(blob: bytes) -> str | None:
    """knn.decode's message, or the linear reader's for what is not a version-2 blob (as
    edgesparse.load and the C driver dispatch: container.kind_of)."""
    decode = esb_knn.decode if kind_of(blob) is BlobKind.ESB_KNN else esb_linear.decode
    try:
        decode(blob)
    except FormatError as exc:
        return str(exc)
    return None


def test_malformed_corpus_same_messages_as_python(asan, tmp_path) -> None:
    blobs = [fn() for _, fn, _ in MALFORMED]
    lines = verify_all(asan, blobs, tmp_path)
    for (case, _, _), blob, line in zip(MALFORMED, blobs, lines, strict=True):
        expected = python_error(blob)
        assert expected is not None and line.startswith("ERR "), (case, line)
        got = line.split(" ", 2)[2]
        if case in JSON_CASES:
            assert got.split(":")[:2] == expected.split(":")[:2], (case, got, expected)
        else:
            assert got == expected, case


def _bases() -> list[bytes]:
    irs = _tie_irs()
    return (
        [SMALL_BLOB]
        + [esb_knn.encode(irs[c]) for c in ("float-ids", "int-ids")]
        + [esb_knn.encode(irs[c]) for c in ("baseline-min1", "item-based-twice")]
    )


def test_mutated_blobs_same_decision_as_python(asan, tmp_path) -> None:
    rnd = random.Random(21)
    blobs: list[bytes] = []
    for base in _bases():
        blobs += [base[:n] for n in rnd.sample(range(len(base)), min(40, len(base)))]
        for _ in range(150):
            b = bytearray(base)
            for _ in range(rnd.choice((1, 1, 2))):
                pos = rnd.randrange(64, len(b)) if rnd.random() < 0.8 else rnd.randrange(64)
                if rnd.random() < 0.5:
                    b[pos] ^= 1 << rnd.randrange(8)
                else:
                    b[pos] = rnd.choice((0, 1, 2, 0x7F, 0x80, 0xFF, rnd.randrange(256)))
            blobs.append(reseal(bytes(b)) if rnd.random() < 0.9 else bytes(b))
    lines = verify_all(asan, blobs, tmp_path)
    accepted = 0
    for blob, line in zip(blobs, lines, strict=True):
        expected = python_error(blob)
        if expected is None:
            accepted += 1
            assert line == "OK", line
        else:
            assert line.startswith("ERR "), f"C accepted what Python rejects: {expected}"
            got = line.split(" ", 2)[2]
            if "section 'provenance'" in expected:  # Python's codec/JSON words in detail
                assert got.split(":")[:2] == expected.split(":")[:2], (got, expected)
            else:
                assert got == expected
    assert accepted > 20


def test_many_ids_repeats_found_by_the_index(host, tmp_path) -> None:
    """Over ESB_KNN_PAIRWISE_IDS ids a side, repeats are found when the index sorts them."""
    n = 5000
    users = [f"user{j}" for j in range(n)]

    def model_with(user_ids: tuple) -> KnnIR:  # item-based: one item, rated by user 0 only
        return KnnIR(
            variant="basic",
            user_based=False,
            k=2,
            min_k=1,
            sim_indptr=np.array([0, 1], dtype=np.int64),
            sim_indices=np.array([0], dtype=np.int32),
            sim_values=np.array([1.0]),
            yr_indptr=np.array([0] + [1] * n, dtype=np.int64),
            yr_x=np.array([0], dtype=np.int32),
            ratings=np.array([4.0]),
            global_mean=4.0,
            rating_scale=(1.0, 5.0),
            user_ids=user_ids,
            item_ids=("only",),
        )

    good = model_with(tuple(users))
    blob = esb_knn.encode(good)
    dup = blob.replace(b"user4999", b"user1234")
    dup_int = esb_knn.encode(model_with(tuple(range(n))))
    lines = verify_all(host, [blob, reseal(dup), dup_int], tmp_path)
    assert lines[0] == "OK" and lines[2] == "OK"
    assert lines[1].split(" ", 2)[2] == python_error(reseal(dup))
    blob_path = tmp_path / "many.esb"
    blob_path.write_bytes(blob)
    model = KnnModel(good)
    pairs = [(users[j], "only") for j in (0, 1, 4999, 2500)] + [("user5000", "only")]
    assert_same_as_numpy(
        model, pairs, c_predict(host, blob_path, write_pairs(tmp_path / "p", pairs))
    )


def test_linear_api_still_refuses_knn_blobs(host, tmp_path) -> None:
    """esb_open (the linear API) refuses a k-NN blob in the linear reader's words."""
    exe = build_probe(
        '#include <stdio.h>\n#include "esb.h"\n'
        "int main(int argc, char **argv) {\n"
        "  static unsigned char b[1 << 16]; esb_model m; size_t n;\n"
        '  FILE *f = fopen(argv[1], "rb"); (void)argc; n = fread(b, 1, sizeof b, f);\n'
        '  fclose(f); printf("%d %s", (int)esb_open(b, n, &m), m.message); return 0; }\n',
        tmp_path,
    )
    (tmp_path / "k.esb").write_bytes(SMALL_BLOB)
    out = run([str(exe), str(tmp_path / "k.esb")]).stdout
    with pytest.raises(FormatError) as info:
        esb_linear.decode(SMALL_BLOB)
    assert out == f"3 {info.value}"
    assert "version 2 holds a k-NN recommender" in out


def test_libfuzzer_target_on_knn_seeds(build_dir, tmp_path) -> None:
    """fuzz/c/fuzz_esb_open.c builds and runs 20 000 fixed-seed inputs from k-NN seeds (the
    k-NN verifier, the index, predict and recommend on what it accepts)."""
    seeds = [SMALL_BLOB, *(esb_knn.encode(ir) for ir in _tie_irs().values())]
    fuzz_seeds(seeds, tmp_path)


@pytest.mark.parametrize("case", ["zscore-u8", "float-ids", "int-ids", "item-based-twice"])
def test_export_c_builds_and_predicts_pairs_like_python(case, tmp_path) -> None:
    from edgesparse.export_c import export_c

    ir = _tie_irs()[case]
    blob = tmp_path / "knn.esb"
    blob.write_bytes(esb_knn.encode(ir))
    out = tmp_path / "out"
    written = export_c(blob, out, name="recs")
    assert sorted(p.name for p in written) == sorted(
        [
            "esb.h",
            "esb.c",
            "esb_knn.c",
            "esb_factors.c",
            "esb_text.c",
            "esb_unicode.h",
            "esb_tabular.c",
            "model_data.h",
            "model_data.c",
            "main.c",
            "Makefile",
            "README.txt",
        ]
    )
    assert (out / "esb_knn.c").read_bytes() == (C_DIR / "esb_knn.c").read_bytes()
    make_export(out)
    model = KnnModel(ir)
    pairs = _all_pairs(ir)
    text = "user,item\r\n" + "".join(f"{_text(u)},{_text(i)},4\n" for u, i in pairs)
    res = run([str(out / "model_main")], input=text + "no-separator\n")
    assert res.returncode == 1 and res.stderr == f'line {len(pairs) + 2}: expected "user,item"\n'
    lines = [ln.split("\t") for ln in res.stdout.splitlines()]
    for (u, i), line in zip(pairs, lines, strict=True):
        ref = model.predict(u, i)
        assert float(line[0]) == ref.est, (u, i, line)
        assert line[1:] == [
            str(ref.details.get("actual_k", "-")),
            str(int(ref.details["was_impossible"])),
        ]
    assert len(lines) == len(pairs)


def test_bench_knn_json_line(host, tmp_path) -> None:
    """`esb bench KNN.esb PAIRS.csv`: one JSON line; the checksum is the sum of the timed
    estimates (pairs in turn), so it says the timed calls predicted what predict does."""
    import json

    ir = _tie_irs()["zscore-u8"]
    blob = tmp_path / "knn.esb"
    blob.write_bytes(esb_knn.encode(ir))
    pairs = _all_pairs(ir)
    csv = write_pairs(tmp_path / "pairs.csv", pairs)
    model = KnnModel(ir)
    est = [model.predict(u, i).est for u, i in pairs]
    for op, batch in (("predict", 1), ("predict", 3), ("recommend", 1)):
        out = esb(host, "bench", blob, csv, "50", "5", "--op", op, "--batch", str(batch))
        rec = json.loads(out)
        assert rec["engine"] == "c" and rec["op"] == op and rec["runs"] == 50
        assert rec["rows"] == len(pairs) and 0 < rec["min_ns"] <= rec["p50_ns"] <= rec["p99_ns"]
        assert rec["model_bytes"] == blob.stat().st_size
        if op == "predict":
            ref = sum(est[j % len(pairs)] for j in range(50 * batch))
            assert rec["checksum"] == pytest.approx(ref, rel=1e-12)
    pred = tmp_path / "pred.txt"
    esb(host, "bench", blob, csv, "3", "0", "--predictions", pred)
    assert [float(v) for v in pred.read_text().split()] == est


@pytest.mark.parametrize("arch", list(CROSS))
def test_cross_targets_match_numpy(arch, tmp_path) -> None:
    """The same bits on the Pis' CPUs (cross-built, run under QEMU user mode)."""
    driver = build_cross(arch, tmp_path)
    for case in ("zscore-u8", "baseline-min1", "int-ids", "item-based-twice"):
        ir = _tie_irs()[case]
        blob = tmp_path / f"{case}.esb"
        blob.write_bytes(esb_knn.encode(ir))
        pairs = _all_pairs(ir)
        lines = c_predict(driver, blob, write_pairs(tmp_path / "p.csv", pairs))
        assert_same_as_numpy(KnnModel(ir), pairs, lines)


def test_raw_ids_that_match_nothing_are_unknown(host, tmp_path) -> None:
    """Text that is no id of the kind (NaN, not a number, an int out of range) is unknown."""
    ir = _tie_irs()["float-ids"]
    blob = tmp_path / "f.esb"
    blob.write_bytes(esb_knn.encode(ir))
    (tmp_path / "p.csv").write_text("nan,10\n1.5,inf\nx,7.5\n1.5,7.5\n")
    lines = c_predict(host, blob, tmp_path / "p.csv")
    assert [ln[2] for ln in lines] == ["1", "1", "1", "0"]
    ir = _tie_irs()["int-ids"]
    blob.write_bytes(esb_knn.encode(ir))
    (tmp_path / "p.csv").write_text("99999999999999999999,3\n-5,3.0\n-5, 3\n-5,3\n")
    lines = c_predict(host, blob, tmp_path / "p.csv")
    assert [ln[2] for ln in lines] == ["1", "1", "1", "0"]
