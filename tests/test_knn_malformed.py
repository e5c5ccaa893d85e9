"""Malformed version-2 (k-NN) ``.esb`` blobs: each is a ``FormatError`` naming the field or
section and its offset, never a crash; and the version-1 readers (Python and C) reject a k-NN
blob by its version with a message that says what it is.

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
from edgesparse.formats import knn as esb_knn
from edgesparse.ir import from_dense
from edgesparse.ir.knn import KnnIR
from edgesparse.runtime import KnnModel, loads
from tests.cdriver import build_driver, run
from tests.test_esb_malformed import SAFETY_NET, Sec, SectionEditor, build, reseal, split

K = esb_knn


def small_ir(**change) -> KnnIR:
    """3 users x 2 items, user-based KNNWithZScore, uint8 similarities."""
    fields = dict(
        variant="zscore",
        user_based=True,
        k=2,
        min_k=1,
        sim_indptr=np.array([0, 2, 3, 5], dtype=np.int64),
        sim_indices=np.array([0, 2, 1, 0, 2], dtype=np.int32),
        sim_values=np.array([255, 100, 255, 100, 255], dtype=np.uint8),
        sim_scales=np.array([0.004, 0.003, 0.002], dtype=np.float32),
        yr_indptr=np.array([0, 2, 4], dtype=np.int64),
        yr_x=np.array([2, 0, 1, 2], dtype=np.int32),
        ratings=np.array([4.0, 3.5, 1.0, 5.0]),
        global_mean=3.375,
        rating_scale=(1.0, 5.0),
        user_ids=("a", "b", "c"),
        item_ids=(10, 20),
        means=np.array([3.5, 1.0, 4.5]),
        sigmas=np.array([1.0, 1.2, 0.5]),
        provenance={"source": "test"},
    )
    fields.update(change)
    return KnnIR(**fields)


BLOB = K.encode(small_ir())


_EDITOR = SectionEditor(K.SECTION_NAMES, BLOB)
edit, sec, set_data, drop = _EDITOR.edit, _EDITOR.sec, _EDITOR.set_data, _EDITOR.drop


def set_enc(name: str, enc: int):
    def change(_h, secs):
        sec(name, secs).enc = enc

    return change


def f64(*v: float) -> bytes:
    return struct.pack(f"<{len(v)}d", *v)


# header field names of the shared writer -> meaning in version 2:
# n_outputs=n_users, n_features=n_items, nnz=n_ratings, n_columns=k, n_classes=min_k,
# head=variant, value_dtype=sim_dtype, reserved8=model_kind, reserved32a=sim_nnz
CASES = [
    ("model-kind-0", lambda: edit(reserved8=0), "unknown model kind 0 at offset 43"),
    ("model-kind-7", lambda: edit(reserved8=7), "unknown model kind 7 at offset 43"),
    ("variant", lambda: edit(head=4), "unknown k-NN variant code 4 at offset 40"),
    ("sim-dtype", lambda: edit(value_dtype=3), "unknown similarity dtype code 3 at offset 41"),
    ("flags", lambda: edit(flags=0x81), "unknown flag bits 0x80 at offset 42"),
    ("reserved", lambda: edit(reserved32b=1), "reserved field at offset 56 is 1"),
    ("no-users", lambda: edit(n_outputs=0), "n_users at offset 16 is 0"),
    ("no-items", lambda: edit(n_features=0), "n_items at offset 20 is 0"),
    ("sim-nnz-over", lambda: edit(reserved32a=10), "sim_nnz at offset 44 is 10, more than 3 x 3"),
    ("sim-nnz-sum", lambda: edit(reserved32a=4), "section 'sim_rows' at offset"),
    ("n-ratings", lambda: edit(nnz=5), "row lengths sum to 4, the header says 5 rating"),
    ("header-crc", lambda: edit(header_crc=1), "header checksum mismatch at offset 60"),
    ("section-count", lambda: edit(n_sections=3), "section count at offset 12 is 3"),
    ("truncated", lambda: BLOB[:-1], "runs past the end of the file"),
    ("trailing", lambda: edit(tail=b"\0" * 8), "8 trailing bytes after the last section"),
    ("truncated-header", lambda: BLOB[:40], "truncated header at offset 0"),
    ("missing-ratings", lambda: edit(drop("ratings")), "required section 'ratings' is missing"),
    ("missing-sigmas", lambda: edit(drop("sigmas")), "section 'sigmas' must be present"),
    (
        "extra-baselines",
        lambda: edit(
            lambda h, s: s.insert(
                [x.kind for x in s].index(K.USER_IDS), Sec(K.BASELINES, 0, f64(*[0.0] * 5))
            )
        ),
        "section 'baselines' must be absent when the variant (offset 40) is 'zscore'",
    ),
    (
        "scales-without-uint8",
        lambda: edit(value_dtype=0),
        "section 'sim_scales' must be absent when similarities are uint8",
    ),
    ("unknown-encoding", lambda: edit(set_enc("yr_x", 5)), "section 'yr_x' has unknown encoding 5"),
    ("out-of-order", lambda: edit(lambda h, s: s.reverse()), "is repeated or out of order"),
    (
        "section-crc",
        lambda: BLOB[:-1] + bytes([BLOB[-1] ^ 1]),
        "checksum mismatch in section 'provenance'",
    ),
    ("params-short", lambda: edit(set_data("params", f64(3, 1, 5))), "24 bytes, expected 32"),
    ("params-nan", lambda: edit(set_data("params", f64(np.nan, 1, 5, 0.5))), "must be finite"),
    ("scale-reversed", lambda: edit(set_data("params", f64(3, 5, 1, 0.5))), "is above high"),
    (
        "rating-step",
        lambda: edit(set_data("params", f64(3, 1, 5, 0.25))),
        "rating step 0.25 does not fit the ratings encoding",
    ),
    ("sim-rows", lambda: edit(set_data("sim_rows", b"\x02\x01")), "holds 2 numbers, expected 3"),
    ("sim-row-long", lambda: edit(set_data("sim_rows", b"\x04\x00\x01")), "more than 3"),
    (
        "sim-index-range",
        lambda: edit(set_data("sim_indices", b"\x00\x05\x01\x00\x01")),
        "column gap 5 at position 1 is >= 3",
    ),
    (
        "sim-index-past",
        lambda: edit(set_data("sim_indices", b"\x00\x02\x01\x00\x01")),
        "column 3 at position 1 is out of [0, 3)",
    ),
    (
        "sim-value-zero",
        lambda: edit(set_data("sim_values", b"\xff\x00\xff\x64\xff")),
        "similarity 0 at position 1 is not allowed",
    ),
    ("sim-values-short", lambda: edit(set_data("sim_values", b"\xff" * 4)), "expected 5"),
    (
        "sim-scale-zero",
        lambda: edit(set_data("sim_scales", struct.pack("<3f", 0.1, 0.0, 0.1))),
        "scale 0.0 at row 1 must be > 0",
    ),
    ("yr-x-range", lambda: edit(set_data("yr_x", b"\x02\x00\x00\x00\x07\x00\x02\x00")), "rater 7"),
    ("yr-x-short", lambda: edit(set_data("yr_x", b"\x02\x00" * 3)), "expected 8"),
    ("ratings-short", lambda: edit(set_data("ratings", b"\x06\x05\x00")), "expected 4"),
    (
        "sigma-zero",
        lambda: edit(set_data("sigmas", f64(1.0, 0.0, 1.0))),
        "value 0.0 at position 1 must be finite and > 0",
    ),
    (
        "ids-duplicate",
        lambda: edit(set_data("user_ids", b"\x01\x01\x01aab")),
        "ids are not distinct",
    ),
    ("ids-utf8", lambda: edit(set_data("user_ids", b"\x01\x01\x01a\xffc")), "not valid UTF-8"),
    (
        "ids-lengths",
        lambda: edit(set_data("user_ids", b"\x01\x01\x02abc")),
        "id lengths add up to 7 bytes, section has 6",
    ),
    ("ids-count", lambda: edit(set_data("item_ids", b"\x14")), "holds 1 numbers, expected 2"),
    ("provenance", lambda: edit(set_data("provenance", b"[1]")), "must be a JSON object"),
]


def test_the_valid_blob_round_trips() -> None:
    ir = K.decode(BLOB)
    assert K.encode(ir) == BLOB
    info = K.verify(BLOB)
    assert info["model_kind"] == "knn" and info["ratings"] == "uint8-coded"
    assert info["similarities"] == 5 and ir.item_ids == (10, 20)
    m = loads(BLOB)
    assert isinstance(m, KnnModel)
    # hand-computed: user c (x=2), item 10 (y=0): raters [c, a]; sim(c, a) = 0.002 * 100,
    # sim(c, c) = 0.002 * 255; zscore: 4.5 + 0.5 * (0.51*(4-4.5)/0.5 + 0.2*(3.5-3.5)/1) / 0.71
    sim_ca, sim_cc = float(np.float32(0.002)) * 100, float(np.float32(0.002)) * 255
    expect = 4.5 + 0.5 * (sim_cc * (4.0 - 4.5) / 0.5 + sim_ca * 0.0) / (sim_cc + sim_ca)
    assert m.predict("c", 10).est == pytest.approx(expect, abs=1e-12)
    assert m.predict("c", 10).details == {"actual_k": 2, "was_impossible": False}
    assert m.predict("z", 10) == ("z", 10, 3.375, m.predict("z", 10).details)
    assert m.predict("z", 10).details["was_impossible"] is True


@pytest.mark.parametrize(("blob_fn", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_malformed_knn_blob(blob_fn, message: str) -> None:
    blob = blob_fn()
    with pytest.raises(FormatError) as info:
        K.decode(blob)
    text = str(info.value)
    assert message in text, text
    assert SAFETY_NET not in text
    assert "at offset" in text or "missing" in text or "must be" in text, text


def test_case_names_are_unique() -> None:
    assert len({c[0] for c in CASES}) == len(CASES) >= 40


def test_knn_reader_rejects_linear_and_other_versions() -> None:
    linear = esb.encode(from_dense(np.eye(2), bias=np.zeros(2), head="identity", squeeze=False))
    with pytest.raises(FormatError, match="version 1 at offset 8 for a k-NN model"):
        K.decode(linear)
    with pytest.raises(FormatError, match=r"not an \.esb file"):
        K.decode(b"hello")


def test_every_variant_and_dtype_round_trips() -> None:
    # item-based: 2 x 2 similarities, yr per user (3 rows)
    shape = dict(
        user_based=False,
        sim_indptr=np.array([0, 2, 3], dtype=np.int64),
        sim_indices=np.array([0, 1, 1], dtype=np.int32),
        sim_scales=None,
        yr_indptr=np.array([0, 1, 3, 4], dtype=np.int64),
        yr_x=np.array([0, 1, 0, 1], dtype=np.int32),
        means=None,
        sigmas=None,
    )
    variants = {
        "basic": {},
        "means": {"means": np.array([3.0, 2.0])},
        "zscore": {"means": np.array([3.0, 2.0]), "sigmas": np.array([1.0, 0.5])},
        "baseline": {"bu": np.array([0.1, -0.2, 0.0]), "bi": np.array([0.3, -0.3])},
    }
    for variant, extra in variants.items():
        for values in (np.array([0.9, 0.5, 1.0]), np.float32([0.9, 0.5, 1])):
            ir = small_ir(variant=variant, sim_values=values, **{**shape, **extra})
            back = K.decode(K.encode(ir))
            assert K.encode(back) == K.encode(ir)
            assert back.sim_dtype == str(values.dtype) and back.variant == variant
            assert not back.user_based


def test_multibyte_column_gaps_round_trip() -> None:
    # 300 users, one item: gaps of 200 and 99 need two-byte varints (the general decoder path)
    n = 300
    ir = KnnIR(
        variant="basic",
        user_based=True,
        k=5,
        min_k=1,
        sim_indptr=np.array([0, 3] + [3] * (n - 1), dtype=np.int64),
        sim_indices=np.array([0, 200, 299], dtype=np.int32),
        sim_values=np.array([1.0, 0.5, 0.25]),
        yr_indptr=np.array([0, 3], dtype=np.int64),
        yr_x=np.array([299, 200, 7], dtype=np.int32),
        ratings=np.array([2.0, 4.0, 5.0]),
        global_mean=3.0,
        rating_scale=(1.0, 5.0),
        user_ids=tuple(range(n)),
        item_ids=("only",),
    )
    blob = K.encode(ir)
    back = K.decode(blob)
    np.testing.assert_array_equal(back.sim_indices, ir.sim_indices)
    # user 0, item "only": raters 299 (0.25 * 2) and 200 (0.5 * 4), 7 is not a neighbour
    assert KnnModel(back).predict(0, "only").est == pytest.approx((0.5 + 2.0) / 0.75)
    header, secs = split(blob)
    sec("sim_indices", secs).data = b"\x00\xc8\x01\xe3"  # 200 then a cut-off varint
    with pytest.raises(FormatError, match="section 'sim_indices' at offset"):
        K.decode(build(header, secs))


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
        K.decode(bytes(blob))
    except FormatError as exc:
        assert SAFETY_NET not in str(exc), str(exc)


def test_c_runtime_verifies_a_knn_blob(tmp_path: Path) -> None:
    """The C driver verifies a k-NN blob with the k-NN verifier (esb_knn.c); its linear API
    (esb_open) still refuses one by its version: tests/test_c_knn.py."""
    exe = build_driver(tmp_path, sanitized=False, name="esb")
    (tmp_path / "knn.esb").write_bytes(BLOB)
    res = run([*exe, "verify", str(tmp_path / "knn.esb")])
    assert res.returncode == 0 and res.stdout == "OK\n", (res.stdout, res.stderr)
