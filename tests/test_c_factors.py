"""The C runtime for matrix-factorization recommenders (edgesparse/runtime/c/esb_factors.c)
against the numpy runtime (runtime/factors.py), Surprise, and the Python reader
(formats/factors.py).

Oracles: FactorModel.predict / recommend on the same blob (estimates equal bit for bit: the C
code sums float factors with numpy's pairwise summation in factor order, int8 factors as exact
integers), Surprise's predict on the exact model (within 1e-6, as tests/test_factors.py: it
sums with BLAS's dot), a brute-force ranking of the C estimates for recommend, and
factors.decode's decision and message on malformed blobs. Built with gcc (-Werror) and, where
clang has its sanitizer runtimes, under ASan + UBSan.
"""

from __future__ import annotations

import importlib.util
import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgesparse.errors import FormatError
from edgesparse.formats import esb as esb_linear
from edgesparse.formats import factors as F
from edgesparse.formats import knn as esb_knn
from edgesparse.formats.container import BlobKind, kind_of
from edgesparse.frontends.surprise_factors import from_surprise_factors
from edgesparse.ir.factors import FactorIR
from edgesparse.passes.factors import quantize_factors
from edgesparse.runtime import FactorModel
from tests.cdriver import (
    C_DIR,
    CROSS,
    build_cross,
    build_driver,
    build_probe,
    fuzz_seeds,
    make_export,
    run,
    verify_all,
)
from tests.cdriver import run_driver as esb
from tests.test_c_knn import write_pairs
from tests.test_esb_malformed import reseal
from tests.test_factors import ALGOS, IDS, data, fit  # noqa: F401 (data: the fixture)
from tests.test_factors_malformed import BLOB as SMALL_BLOB
from tests.test_factors_malformed import CASES as MALFORMED
from tests.test_factors_malformed import small_ir

ROOT = Path(__file__).resolve().parents[1]
HAVE_SURPRISE = importlib.util.find_spec("surprise") is not None
QUANTIZE = ("none", "float32", "int8")


@pytest.fixture(scope="module")
def build_dir(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("cmf"))


@pytest.fixture(scope="module")
def host(build_dir) -> list[str]:
    return build_driver(build_dir, sanitized=False, name="esb-mf")


@pytest.fixture(scope="module")
def asan(build_dir) -> list[str]:
    return build_driver(build_dir, sanitized=True, name="esb-mf")


def text_of(raw: Any) -> str:
    """How a raw id is written for the driver, and how it prints one (floats as %.17g)."""
    return f"{raw:.17g}" if isinstance(raw, float) else str(raw)


def c_predict(driver: list[str], blob: Path, pairs: Path) -> list[list[str]]:
    return [line.split("\t") for line in esb(driver, "predict", blob, pairs).splitlines()]


def c_recommend(driver: list[str], blob: Path, user: Any, n: int, *, all_items: bool = False):
    args = ["recommend", blob, text_of(user), str(n), *(["--all"] if all_items else [])]
    return [(ln.split("\t")[0], float(ln.split("\t")[1])) for ln in esb(driver, *args).splitlines()]


def write_text_pairs(path: Path, pairs: list[tuple[Any, Any]]) -> Path:
    return write_pairs(path, [(text_of(u), text_of(i)) for u, i in pairs])


def assert_same_as_numpy(model: FactorModel, pairs: list, lines: list[list[str]]) -> None:
    """Estimates bit for bit (clipped and not) and was_impossible as predict's."""
    assert len(lines) == len(pairs)
    for (u, i), line in zip(pairs, lines, strict=True):
        ref = model.predict(u, i)
        assert float(line[0]) == ref.est, (u, i, line, ref)
        assert float(line[3]) == model.predict(u, i, clip=False).est, (u, i, line)
        assert line[1] == "-"
        assert line[2] == str(int(ref.details["was_impossible"])), (u, i, line, ref)


def all_pairs(ir: FactorIR) -> list[tuple[Any, Any]]:
    users = [*ir.user_ids, "nobody" if isinstance(ir.user_ids[0], str) else 999]
    items = [*ir.item_ids, "nothing" if isinstance(ir.item_ids[0], str) else 999]
    return [(u, i) for u in users for i in items]


# ------------------------------------------------------------------------------------------
# Surprise's models: every algorithm, float64 / float32 / int8 factors
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("cls", "options"), ALGOS, ids=IDS)
def test_every_model_matches_numpy_and_surprise(data, host, cls, options, tmp_path) -> None:  # noqa: F811
    algo = fit(data, cls, options)
    exact = from_surprise_factors(algo)
    pairs = data["pairs"]
    csv = write_pairs(tmp_path / "pairs.csv", pairs)
    for how in QUANTIZE:
        ir = quantize_factors(exact, how)
        blob = tmp_path / f"{how}.esb"
        blob.write_bytes(F.encode(ir))
        lines = c_predict(host, blob, csv)
        assert_same_as_numpy(FactorModel(F.decode(blob.read_bytes())), pairs, lines)
        if how == "none":  # the exact model: Surprise's own estimates and flags
            got = np.array([float(ln[0]) for ln in lines])
            ref = np.array([algo.predict(u, i).est for u, i in pairs])
            np.testing.assert_allclose(got, ref, rtol=0, atol=1e-6)
            flags = [ln[2] == "1" for ln in lines]
            assert flags == [algo.predict(u, i).details["was_impossible"] for u, i in pairs]


@pytest.mark.parametrize(("cls", "options"), ALGOS, ids=IDS)
def test_recommend_is_exact_top_n(data, host, cls, options, tmp_path) -> None:  # noqa: F811
    """Equal to FactorModel.recommend, and to a brute force over the C estimates of every
    candidate item (best first, ties in training order)."""
    ir = quantize_factors(from_surprise_factors(fit(data, cls, options)), "int8")
    blob = tmp_path / "mf.esb"
    blob.write_bytes(F.encode(ir))
    model = FactorModel(ir)
    for user in ("u0", "u5", "u77", "nobody"):
        for n, all_items in ((10, False), (10_000, False), (7, True)):
            got = c_recommend(host, blob, user, n, all_items=all_items)
            ref = model.recommend(user, n=n, exclude_seen=not all_items)
            assert [g[0] for g in got] == [str(p.iid) for p in ref], (user, n)
            assert [g[1] for g in got] == [p.est for p in ref], (user, n)
        est = [float(ln[0]) for ln in c_predict(host, blob, _every_item(tmp_path, ir, user))]
        order = sorted(
            (j for j in range(ir.n_items) if j not in _seen(ir, user)), key=lambda j: -est[j]
        )  # stable: ties keep training order
        got = c_recommend(host, blob, user, 25)
        assert [g[0] for g in got] == [str(ir.item_ids[j]) for j in order[:25]]


def _every_item(tmp_path: Path, ir: FactorIR, user: Any) -> Path:
    return write_text_pairs(tmp_path / "all.csv", [(user, i) for i in ir.item_ids])


def _seen(ir: FactorIR, user: Any) -> set[int]:
    if user not in ir.user_ids:
        return set()
    u = ir.user_ids.index(user)
    return set(ir.seen_items[ir.seen_indptr[u] : ir.seen_indptr[u + 1]].tolist())


# ------------------------------------------------------------------------------------------
# Hand-made models without Surprise, under ASan + UBSan
# ------------------------------------------------------------------------------------------
def _edge_irs() -> dict[str, FactorIR]:
    """Every algorithm x factor dtype, ids of every kind, ties, clipping, and more than 128
    factors (numpy's pairwise summation splits the row)."""
    rng = np.random.default_rng(5)
    out = {"int8-small": small_ir()}
    for algorithm in ("svd", "svdpp", "nmf", "baseline"):
        biased = algorithm != "nmf"
        base = small_ir(
            algorithm=algorithm,
            biased=biased,
            bu=np.array([0.25, -0.5, 0.0]) if biased else None,
            bi=np.array([0.125, 0.0, -0.25, 0.5]) if biased else None,
            p=None if algorithm == "baseline" else rng.normal(size=(3, 9)),
            q=None if algorithm == "baseline" else rng.normal(size=(4, 9)),
            p_scales=None,
            q_scales=None,
            provenance={},
        )
        for how in QUANTIZE if algorithm != "baseline" else ("none",):
            out[f"{algorithm}-{how}"] = quantize_factors(base, how)
    ties = np.array([[1.0, 2.0], [1.0, 2.0], [0.5, 0.25], [1.0, 2.0]])  # items 0, 1, 3 tie
    out["ties-float-ids"] = small_ir(
        algorithm="nmf",
        biased=False,
        bu=None,
        bi=None,
        p=np.abs(rng.normal(size=(3, 2))),
        q=ties,
        p_scales=None,
        q_scales=None,
        user_ids=(1.5, -0.0, 2.25),
        item_ids=(10.0, 7.5, -3.0, 1e300),
    )
    out["int-ids-wide"] = small_ir(
        user_ids=(-5, 2**62, 0),
        item_ids=(3, -1, 2**40, -(2**63)),
        p=rng.normal(size=(3, 300)) * 0.2,
        q=rng.normal(size=(4, 300)) * 0.2,
        p_scales=None,
        q_scales=None,
    )
    out["int-ids-wide-int8"] = quantize_factors(out["int-ids-wide"], "int8")
    return out


@pytest.mark.parametrize("case", list(_edge_irs()))
def test_edge_cases_match_numpy_under_sanitizers(asan, case, tmp_path) -> None:
    ir = _edge_irs()[case]
    blob = tmp_path / "m.esb"
    blob.write_bytes(F.encode(ir))
    model = FactorModel(F.decode(blob.read_bytes()))
    pairs = all_pairs(ir)
    lines = c_predict(asan, blob, write_text_pairs(tmp_path / "p.csv", pairs))
    assert_same_as_numpy(model, pairs, lines)
    for user in [*ir.user_ids, pairs[-1][0]]:
        for n, all_items in ((5, False), (2, True), (0, False)):
            got = c_recommend(asan, blob, user, n, all_items=all_items)
            ref = model.recommend(user, n=n, exclude_seen=not all_items)
            assert [g[1] for g in got] == [p.est for p in ref], (user, n)
            assert [g[0] for g in got] == [text_of(p.iid) for p in ref], (user, n)


def test_clipping_and_fallbacks_by_hand(host, tmp_path) -> None:
    """The small model's hand-computed estimates (tests/test_factors_malformed.py)."""
    blob = tmp_path / "s.esb"
    blob.write_bytes(SMALL_BLOB)
    lines = c_predict(
        host, blob, write_pairs(tmp_path / "p.csv", [("a", 10), ("c", 30), ("zz", 40)])
    )
    want = ((3.5 + 0.25) + 0.125) + (1 / 64 / 512) * (127 * 127 - 64 * 64)
    assert float(lines[0][3]) == want and float(lines[0][0]) == want
    assert float(lines[1][3]) == 3.25 + 0.5 * -117 and float(lines[1][0]) == 1.0
    assert lines[2] == ["4", "-", "0", "4"]
    assert c_recommend(host, blob, "a", 10) == [("30", 5.0), ("10", want)]


# ------------------------------------------------------------------------------------------
# The verifier: same decision and message as factors.decode
# ------------------------------------------------------------------------------------------
def python_error(blob: bytes) -> str | None:
    """The message of the reader the C driver dispatches to (container.kind_of)."""
    decode = {BlobKind.ESB_FACTORS: F.decode, BlobKind.ESB_KNN: esb_knn.decode}.get(
        kind_of(blob), esb_linear.decode
    )
    try:
        decode(blob)
    except FormatError as exc:
        return str(exc)
    return None


def _same_message(got: str, expected: str) -> bool:
    """Equal, or for provenance equal up to the JSON parser's own wording (as for k-NN)."""
    if "section 'provenance'" in expected:
        return got.split(":")[:2] == expected.split(":")[:2]
    return got == expected


def test_malformed_corpus_same_messages_as_python(asan, tmp_path) -> None:
    blobs = [fn() for _, fn, _ in MALFORMED]
    lines = verify_all(asan, blobs, tmp_path)
    for (case, _, _), blob, line in zip(MALFORMED, blobs, lines, strict=True):
        expected = python_error(blob)
        assert expected is not None and line.startswith("ERR "), (case, line)
        assert _same_message(line.split(" ", 2)[2], expected), (case, line, expected)


def test_mutated_blobs_same_decision_as_python(asan, tmp_path) -> None:
    rnd = random.Random(33)
    irs = _edge_irs()
    bases = [SMALL_BLOB] + [
        F.encode(irs[c]) for c in ("svd-float32", "baseline-none", "ties-float-ids", "svdpp-int8")
    ]
    blobs: list[bytes] = []
    for base in bases:
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
            assert _same_message(line.split(" ", 2)[2], expected), (line, expected)
    assert accepted > 20


def test_many_ids_repeats_found_by_the_index(host, tmp_path) -> None:
    """Over ESB_KNN_PAIRWISE_IDS ids a side, repeats are found when the index sorts them."""
    n = 5000

    def model_with(user_ids: tuple) -> FactorIR:
        return FactorIR(
            algorithm="baseline",
            biased=True,
            global_mean=3.0,
            rating_scale=(1.0, 5.0),
            user_ids=user_ids,
            item_ids=("only",),
            seen_indptr=np.array([0, 1] + [1] * (n - 1), dtype=np.int64),
            seen_items=np.array([0], dtype=np.int32),
            bu=np.linspace(-1, 1, n),
            bi=np.array([0.5]),
        )

    users = [f"user{j}" for j in range(n)]
    good = model_with(tuple(users))
    blob = F.encode(good)
    dup = reseal(blob.replace(b"user4999", b"user1234"))
    lines = verify_all(host, [blob, dup, F.encode(model_with(tuple(range(n))))], tmp_path)
    assert lines[0] == "OK" and lines[2] == "OK"
    assert lines[1].split(" ", 2)[2] == python_error(dup)
    path = tmp_path / "many.esb"
    path.write_bytes(blob)
    pairs = [(users[j], "only") for j in (0, 1, 4999, 2500)] + [("user5000", "only")]
    lines_p = c_predict(host, path, write_pairs(tmp_path / "p.csv", pairs))
    assert_same_as_numpy(FactorModel(good), pairs, lines_p)
    assert c_recommend(host, path, "user0", 3) == []  # user0 rated the only item


def test_linear_api_still_refuses_factor_blobs(host, tmp_path) -> None:
    """esb_open (the linear API) refuses a version-3 blob in the linear reader's words."""
    exe = build_probe(
        '#include <stdio.h>\n#include "esb.h"\n'
        "int main(int argc, char **argv) {\n"
        "  static unsigned char b[1 << 16]; esb_model m; esb_knn k; size_t n;\n"
        '  FILE *f = fopen(argv[1], "rb"); (void)argc; n = fread(b, 1, sizeof b, f);\n'
        "  fclose(f); esb_knn_open(b, n, &k);\n"
        '  printf("%d %s\\n%s", (int)esb_open(b, n, &m), m.message, k.message); return 0; }\n',
        tmp_path,
    )
    (tmp_path / "f.esb").write_bytes(SMALL_BLOB)
    linear, knn = run([str(exe), str(tmp_path / "f.esb")]).stdout.split("\n")
    assert linear == f"3 {python_error_of(esb_linear.decode)}"
    assert knn == python_error_of(esb_knn.decode)


def python_error_of(decode: Any) -> str:
    with pytest.raises(FormatError) as info:
        decode(SMALL_BLOB)
    return str(info.value)


# ------------------------------------------------------------------------------------------
# export-c, the driver's bench, other CPUs, fuzzing
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", ["int8-small", "svdpp-float32", "ties-float-ids", "int-ids-wide"])
def test_export_c_builds_and_predicts_pairs_like_python(case, tmp_path) -> None:
    from edgesparse.export_c import export_c

    ir = _edge_irs()[case]
    blob = tmp_path / "mf.esb"
    blob.write_bytes(F.encode(ir))
    out = tmp_path / "out"
    written = export_c(blob, out, name="recs")
    assert sorted(p.name for p in written) == sorted(
        [
            *("esb.h", "esb.c", "esb_knn.c", "esb_factors.c", "esb_text.c", "esb_unicode.h"),
            "esb_tabular.c",
            *("model_data.h", "model_data.c", "main.c", "Makefile", "README.txt"),
        ]
    )
    assert (out / "esb_factors.c").read_bytes() == (C_DIR / "esb_factors.c").read_bytes()
    make_export(out)
    model = FactorModel(ir)
    pairs = all_pairs(ir)
    text = "user,item\r\n" + "".join(f"{text_of(u)},{text_of(i)},4\n" for u, i in pairs)
    res = run([str(out / "model_main")], input=text + "no-separator\n")
    assert res.returncode == 1 and res.stderr == f'line {len(pairs) + 2}: expected "user,item"\n'
    lines = [ln.split("\t") for ln in res.stdout.splitlines()]
    assert len(lines) == len(pairs)
    for (u, i), line in zip(pairs, lines, strict=True):
        ref = model.predict(u, i)
        assert float(line[0]) == ref.est and line[1] == str(int(ref.details["was_impossible"]))


def test_bench_factors_json_line(host, tmp_path) -> None:
    """`esb bench MF.esb PAIRS.csv`: one JSON line whose checksum is the sum of the timed
    estimates (pairs in turn)."""
    ir = _edge_irs()["svd-int8"]
    blob = tmp_path / "mf.esb"
    blob.write_bytes(F.encode(ir))
    pairs = all_pairs(ir)
    csv = write_text_pairs(tmp_path / "pairs.csv", pairs)
    model = FactorModel(ir)
    est = [model.predict(u, i).est for u, i in pairs]
    for op, batch in (("predict", 1), ("predict", 3), ("recommend", 1)):
        rec = json.loads(
            esb(host, "bench", blob, csv, "50", "5", "--op", op, "--batch", str(batch))
        )
        assert rec["engine"] == "c" and rec["op"] == op and rec["layout"] == "factors"
        assert rec["rows"] == len(pairs) and 0 < rec["min_ns"] <= rec["p50_ns"] <= rec["p99_ns"]
        assert rec["model_bytes"] == blob.stat().st_size and rec["runs"] == 50
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
    for case in ("int8-small", "svdpp-none", "nmf-float32", "int-ids-wide", "ties-float-ids"):
        ir = _edge_irs()[case]
        blob = tmp_path / f"{case}.esb"
        blob.write_bytes(F.encode(ir))
        pairs = all_pairs(ir)
        lines = c_predict(driver, blob, write_text_pairs(tmp_path / "p.csv", pairs))
        assert_same_as_numpy(FactorModel(ir), pairs, lines)
        user = ir.user_ids[0]
        got = c_recommend(driver, blob, user, 3)
        assert [g[1] for g in got] == [p.est for p in FactorModel(ir).recommend(user, n=3)]


def test_libfuzzer_target_on_factor_seeds(tmp_path) -> None:
    """fuzz/c/fuzz_esb_open.c builds and runs 20 000 fixed-seed inputs from factor seeds (the
    factor verifier, the index, predict and recommend on what it accepts)."""
    fuzz_seeds([F.encode(ir) for ir in _edge_irs().values()], tmp_path)


def test_raw_ids_that_match_nothing_are_unknown(host, tmp_path) -> None:
    """Text that is no id of the kind (NaN, not a number, an int out of range) is unknown."""
    ir = _edge_irs()["ties-float-ids"]  # unbiased: an unknown id is impossible
    blob = tmp_path / "f.esb"
    blob.write_bytes(F.encode(ir))
    (tmp_path / "p.csv").write_text("nan,10\n1.5,inf\nx,7.5\n1.5,7.5\n")
    assert [ln[2] for ln in c_predict(host, blob, tmp_path / "p.csv")] == ["1", "1", "1", "0"]
