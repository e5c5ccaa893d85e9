"""Malformed version-3 (matrix-factorization) ``.esb`` blobs: each is a ``FormatError`` with
the exact text naming the field or section and its offset, never a crash; the other readers
(linear, k-NN, the C runtime) reject a version-3 blob by its version.

Blobs are edited with the test-side writer of tests/test_esb_malformed.py (same container:
header, table, packed sections, CRCs recomputed after each edit). Needs no Surprise.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgesparse.errors import FormatError
from edgesparse.formats import esb
from edgesparse.formats import factors as F
from edgesparse.formats import knn as esb_knn
from edgesparse.formats.container import BlobKind, kind_of
from edgesparse.ir import from_dense
from edgesparse.ir.factors import FactorIR
from edgesparse.passes.factors import quantize_factors
from edgesparse.runtime import FactorModel, loads
from tests.cdriver import build_driver, run
from tests.test_esb_malformed import SAFETY_NET, SectionEditor, reseal, split


def small_ir(**change) -> FactorIR:
    """3 users x 4 items, biased SVD with 2 int8 factors."""
    fields = dict(
        algorithm="svd",
        biased=True,
        global_mean=3.5,
        rating_scale=(1.0, 5.0),
        user_ids=("a", "b", "c"),
        item_ids=(10, 20, 30, 40),
        seen_indptr=np.array([0, 2, 2, 5], dtype=np.int64),
        seen_items=np.array([1, 3, 0, 2, 3], dtype=np.int32),
        bu=np.array([0.25, -0.5, 0.0]),
        bi=np.array([0.125, 0.0, -0.25, 0.5]),
        p=np.array([[127, -64], [0, 0], [10, 127]], dtype=np.int8),
        q=np.array([[127, 64], [-127, 0], [1, -1], [0, 127]], dtype=np.int8),
        p_scales=np.array([1 / 64, 1.0, 0.5], dtype=np.float32),
        q_scales=np.array([1 / 512, 0.25, 1.0, 0.125], dtype=np.float32),
        provenance={"source": "test"},
    )
    fields.update(change)
    return FactorIR(**fields)


BLOB = F.encode(small_ir())
C = "corrupt .esb: "


_EDITOR = SectionEditor(F.SECTION_NAMES, BLOB)
edit, sec, set_data, drop = _EDITOR.edit, _EDITOR.sec, _EDITOR.set_data, _EDITOR.drop


def f64(*v: float) -> bytes:
    return struct.pack(f"<{len(v)}d", *v)


def offset_of(name: str, blob: bytes = BLOB) -> int:
    kind = {v: k for k, v in F.SECTION_NAMES.items()}[name]
    header, _ = split(blob)
    for i in range(header["n_sections"]):
        k, _, _, off, _, _ = struct.unpack_from("<BBHIII", blob, 64 + 16 * i)
        if k == kind:
            return off
    raise KeyError(name)


def at(name: str, msg: str) -> str:
    return f"{C}section '{name}' at offset {offset_of(name)}: {msg}"


# header field names of the shared writer -> meaning in version 3:
# n_outputs=n_users, n_features=n_items, nnz=n_seen, n_columns=n_factors, n_classes=reserved
# (36), head=algorithm, value_dtype=factor dtype, flags, reserved8 (43), reserved32a (44)
CASES = [
    ("no-users", lambda: edit(n_outputs=0), C + "n_users at offset 16 is 0"),
    ("no-items", lambda: edit(n_features=0), C + "n_items at offset 20 is 0"),
    ("n-seen-over", lambda: edit(nnz=13), C + "n_seen at offset 24 is 13, more than 3 x 4"),
    ("reserved-36", lambda: edit(n_classes=2), C + "reserved field at offset 36 is 2, expected 0"),
    ("reserved-43", lambda: edit(reserved8=1), C + "reserved field at offset 43 is 1, expected 0"),
    (
        "reserved-44",
        lambda: edit(reserved32a=9),
        C + "reserved field at offset 44 is 9, expected 0",
    ),
    (
        "reserved-56",
        lambda: edit(reserved32b=1),
        C + "reserved field at offset 56 is 1, expected 0",
    ),
    ("algorithm", lambda: edit(head=4), C + "unknown algorithm code 4 at offset 40"),
    ("dtype", lambda: edit(value_dtype=3), C + "unknown factor dtype code 3 at offset 41"),
    ("flags", lambda: edit(flags=0x81), C + "unknown flag bits 0x80 at offset 42"),
    (
        "no-factors",
        lambda: edit(n_columns=0),
        C + "n_factors at offset 32 is 0, but the algorithm (offset 40) is 'svd'",
    ),
    (
        "baseline-with-factors",
        lambda: edit(head=3),
        C + "n_factors at offset 32 is 2, but the algorithm (offset 40) is 'baseline' (which "
        "has no factors)",
    ),
    (
        "svdpp-unbiased",
        lambda: edit(head=1, flags=0),
        C + "flag 'biased' (offset 42) must be set for 'svdpp'",
    ),
    (
        "biases-extra",
        lambda: edit(flags=0),
        C + "section 'biases' must be absent when the 'biased' flag (offset 42) is clear",
    ),
    (
        "biases-missing",
        lambda: edit(drop("biases")),
        C + "section 'biases' must be present when the 'biased' flag (offset 42) is set",
    ),
    (
        "scales-without-int8",
        lambda: edit(value_dtype=0),
        C + "section 'user_scales' must be absent when the factors (offset 41) are not int8",
    ),
    (
        "scales-missing",
        lambda: edit(drop("item_scales")),
        C + "section 'item_scales' must be present when the factors (offset 41) are int8",
    ),
    (
        "required-missing",
        lambda: edit(drop("seen_items")),
        C + "required section 'seen_items' is missing",
    ),
    (
        "section-count",
        lambda: edit(n_sections=3),
        C + "section count at offset 12 is 3, expected 5 to 11",
    ),
    (
        "header-crc",
        lambda: edit(header_crc=1),
        C + "header checksum mismatch at offset 60 (stored 0x00000001, computed ...",
    ),
    (
        "trailing",
        lambda: edit(tail=b"\0" * 8),
        C + f"8 trailing bytes after the last section (which ends at offset {len(BLOB)})",
    ),
    (
        "params-short",
        lambda: edit(set_data("params", f64(3, 1))),
        f"{C}section 'params' at offset {offset_of('params')} is 16 bytes, expected 24 (3 "
        "float64 (global mean, rating low, rating high))",
    ),
    (
        "params-nan",
        lambda: edit(set_data("params", f64(np.nan, 1, 5))),
        at("params", "value nan at position 0 must be finite"),
    ),
    (
        "scale-reversed",
        lambda: edit(set_data("params", f64(3, 5, 1))),
        at("params", "rating scale low 5.0 is above high 1.0"),
    ),
    (
        "seen-rows-count",
        lambda: edit(set_data("seen_rows", b"\x02\x00")),
        at("seen_rows", "holds 2 numbers, expected 3 (one count per user)"),
    ),
    (
        "seen-row-long",
        lambda: edit(set_data("seen_rows", b"\x05\x00\x00")),
        at("seen_rows", "user 0 has 5 items, more than 4"),
    ),
    (
        "seen-sum",
        lambda: edit(set_data("seen_rows", b"\x02\x01\x03")),
        at("seen_rows", "counts sum to 6, the header says 5 pairs"),
    ),
    (
        "seen-gap-range",
        lambda: edit(set_data("seen_items", b"\x01\x04\x00\x01\x00")),
        at("seen_items", "item gap 4 at position 1 is >= 4"),
    ),
    (
        "seen-item-past",
        lambda: edit(set_data("seen_items", b"\x01\x02\x00\x01\x00")),
        at("seen_items", "item 4 at position 1 is out of [0, 4)"),
    ),
    (
        "biases-short",
        lambda: edit(set_data("biases", f64(*[0.0] * 6))),
        f"{C}section 'biases' at offset {offset_of('biases')} is 48 bytes, expected 56 (7 "
        "float64 biases (users, then items))",
    ),
    (
        "biases-inf",
        lambda: edit(set_data("biases", f64(0, 0, np.inf, 0, 0, 0, 0))),
        at("biases", "value inf at position 2 must be finite"),
    ),
    (
        "factor-minus-128",
        lambda: edit(set_data("user_factors", bytes([127, 192, 0, 0, 10, 128]))),
        at(
            "user_factors",
            "value -128 at position 5 is not allowed (int8 factors lie in [-127, 127])",
        ),
    ),
    (
        "factors-short",
        lambda: edit(set_data("item_factors", bytes(6))),
        f"{C}section 'item_factors' at offset {offset_of('item_factors')} is 6 bytes, "
        "expected 8 (4 x n_factors=2 int8)",
    ),
    (
        "scale-zero",
        lambda: edit(set_data("user_scales", struct.pack("<3f", 0.5, 0.0, 0.5))),
        at("user_scales", "scale 0.0 at row 1 must be > 0"),
    ),
    (
        "ids-duplicate",
        lambda: edit(set_data("user_ids", b"\x01\x01\x01aab")),
        f"{C}section 'user_ids' at offset {offset_of('user_ids')}: ids are not distinct "
        "(each raw id maps to one inner id)",
    ),
    (
        "provenance",
        lambda: edit(set_data("provenance", b"[1]")),
        at("provenance", "must be a JSON object of strings"),
    ),
]


def test_case_names_are_unique() -> None:
    assert len({c[0] for c in CASES}) == len(CASES) >= 30


@pytest.mark.parametrize(("blob_fn", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_malformed_factor_blob(blob_fn, message: str) -> None:
    with pytest.raises(FormatError) as info:
        F.decode(blob_fn())
    text = str(info.value)
    if message.endswith("..."):
        assert text.startswith(message[:-3]), text
    else:
        assert text == message
    assert SAFETY_NET not in text


def test_the_valid_blob_round_trips_and_predicts_by_hand() -> None:
    ir = F.decode(BLOB)
    assert F.encode(ir) == BLOB and kind_of(BLOB) is BlobKind.ESB_FACTORS
    info = F.verify(BLOB)
    assert info["model_kind"] == "factors" and info["factor_dtype"] == "int8"
    assert (info["n_users"], info["n_items"], info["n_factors"], info["seen_pairs"]) == (3, 4, 2, 5)
    m = loads(BLOB)
    assert isinstance(m, FactorModel)
    # user a, item 10: 3.5 + 0.25 + 0.125 + (1/64 * 1/512) * (127*127 - 64*64)
    want = ((3.5 + 0.25) + 0.125) + (1 / 64 / 512) * (127 * 127 - 64 * 64)
    assert m.predict("a", 10, clip=False).est == want
    # user c, item 30: 3.5 + 0 - 0.25 + (0.5 * 1.0) * (10 - 127)
    assert m.predict("c", 30, clip=False).est == 3.25 + 0.5 * -117
    assert m.predict("c", 30).est == 1.0  # clipped
    # unknown user: global mean + item bias, not impossible (biased)
    assert m.predict("zz", 40).est == 4.0 and not m.predict("zz", 40).details["was_impossible"]
    # recommend leaves out what user a rated (20, 40): 30 scores 3.5 + (1/64) * 191 -> 5
    # (clipped), 10 scores 4.24
    assert [(p.iid, p.est) for p in m.recommend("a", 10)] == [
        (30, 5.0),
        (10, m.predict("a", 10).est),
    ]


@pytest.mark.parametrize("algorithm", ["svd", "svdpp", "nmf", "baseline"])
@pytest.mark.parametrize("how", ["none", "float32", "int8"])
def test_every_algorithm_and_dtype_round_trips(algorithm: str, how: str) -> None:
    rng = np.random.default_rng(1)
    biased = algorithm != "nmf"
    ir = small_ir(
        algorithm=algorithm,
        biased=biased,
        bu=np.array([0.25, -0.5, 0.0]) if biased else None,
        bi=np.array([0.125, 0.0, -0.25, 0.5]) if biased else None,
        p=None if algorithm == "baseline" else rng.normal(size=(3, 5)),
        q=None if algorithm == "baseline" else rng.normal(size=(4, 5)),
        p_scales=None,
        q_scales=None,
        user_ids=(1.5, 2.5, -3.0),
        provenance={},
    )
    ir = quantize_factors(ir, how)
    blob = F.encode(ir)
    back = F.decode(blob)
    assert F.encode(back) == blob and back.factor_dtype == ir.factor_dtype
    assert back.user_ids == ir.user_ids and back.algorithm == algorithm
    pairs = [(u, i) for u in (*ir.user_ids, 9.0) for i in (*ir.item_ids, 99)]
    np.testing.assert_array_equal(
        FactorModel(back).predict_many(pairs), FactorModel(ir).predict_many(pairs)
    )


def test_multibyte_item_gaps_round_trip() -> None:
    n = 300
    ir = small_ir(
        item_ids=tuple(range(n)),
        seen_indptr=np.array([0, 3, 3, 4], dtype=np.int64),
        seen_items=np.array([0, 200, 299, 150], dtype=np.int32),
        bi=np.zeros(n),
        q=np.ones((n, 2), dtype=np.int8),
        q_scales=np.ones(n, dtype=np.float32),
    )
    back = F.decode(F.encode(ir))
    np.testing.assert_array_equal(back.seen_items, ir.seen_items)
    np.testing.assert_array_equal(back.seen_indptr, ir.seen_indptr)


def test_other_readers_reject_a_factor_blob_by_its_version() -> None:
    with pytest.raises(FormatError, match=r"unsupported \.esb version 3 at offset 8 for a k-NN"):
        esb_knn.decode(BLOB)
    with pytest.raises(FormatError, match=r"^unsupported .esb version 3 at offset 8 \(this"):
        esb.decode(BLOB)
    knn_blob = esb_knn.encode(esb_knn.decode(_knn_blob()))
    with pytest.raises(FormatError) as info:
        F.decode(knn_blob)
    assert str(info.value) == (
        "unsupported .esb version 2 at offset 8 for a matrix-factorization model "
        "(matrix-factorization recommenders are version 3; version 1 holds a linear model, "
        "version 2 a k-NN recommender)"
    )
    linear = esb.encode(from_dense(np.eye(2), bias=np.zeros(2), head="identity", squeeze=False))
    with pytest.raises(FormatError, match="version 1 at offset 8 for a matrix-factorization"):
        F.decode(linear)


def _knn_blob() -> bytes:
    from tests.test_knn_malformed import BLOB as KNN_BLOB

    return KNN_BLOB


@settings(
    max_examples=300, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
)
@given(st.data())
def test_random_edits_are_format_errors_never_crashes(data) -> None:
    blob = bytearray(BLOB)
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(blob) - 1))
        blob[pos] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        blob = bytearray(reseal(bytes(blob)))
    try:
        F.decode(bytes(blob))
    except FormatError as exc:
        assert SAFETY_NET not in str(exc), str(exc)


def test_c_driver_routes_a_factor_blob_by_its_version(tmp_path: Path) -> None:
    """`esb verify` takes a version-3 blob to the factor verifier (esb_factors.c): OK for a
    good one, factors.decode's message for a bad one (tests/test_c_factors.py checks the
    whole corpus, and that the linear API esb_open still refuses version 3)."""
    exe = build_driver(tmp_path, sanitized=False, name="esb")
    bad = edit(n_outputs=0)
    (tmp_path / "mf.esb").write_bytes(BLOB)
    (tmp_path / "bad.esb").write_bytes(bad)
    res = run([*exe, "verify", str(tmp_path / "mf.esb"), str(tmp_path / "bad.esb")])
    lines = res.stdout.splitlines()
    assert res.returncode == 1 and lines[0] == "OK", (res.stdout, res.stderr)
    with pytest.raises(FormatError) as info:
        F.decode(bad)
    assert lines[1] == f"ERR 4 {info.value}"
