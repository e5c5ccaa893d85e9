"""Tests for the ``.esb`` format (edgesparse/formats/esb.py, spec in docs/FORMAT.md)."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgesparse.errors import FormatError, ModelFileError
from edgesparse.formats import codecs, esb, linear
from edgesparse.ir import HEADS, LinearIR

LAYOUT_COLUMNS = ("auto", "all", "varint", "bitmap", "eliasfano")
LAYOUT_INDICES = ("auto", "raw", "varint", "bitmap", "eliasfano")
SAFETY_NET = "unreadable ("  # text of esb's catch-all: no input may ever reach it


# ------------------------------------------------------------------------------------------
# Helpers
# ------------------------------------------------------------------------------------------
def csr_ir(
    dense: np.ndarray,
    *,
    head: str = "hard",
    classes=None,
    dtype=np.float64,
    scales=None,
    bias=None,
    squeeze: bool = True,
    provenance=None,
) -> LinearIR:
    """An IR from a dense matrix (zeros dropped), values cast to ``dtype``."""
    dense = np.asarray(dense)
    rows, cols = np.nonzero(dense)
    indptr = np.zeros(dense.shape[0] + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=dense.shape[0]), out=indptr[1:])
    return LinearIR(
        indptr=indptr,
        indices=cols.astype(np.int32),
        values=dense[rows, cols].astype(dtype),
        n_features=dense.shape[1],
        bias=np.zeros(dense.shape[0]) if bias is None else bias,
        head=head,
        classes=classes,
        scales=scales,
        squeeze=squeeze,
        provenance=provenance or {},
    )


def quantize_rows(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 per row: q = round(w / (max|w_row| / 127)); entries that become 0 drop."""
    s = np.abs(w).max(axis=1) / 127.0
    s[s == 0] = 1.0
    q = np.round(w / s[:, None]).astype(np.int8)
    return q, s.astype(np.float32)


def assert_ir_equal(a: LinearIR, b: LinearIR) -> None:
    for name in ("indptr", "indices", "values", "bias"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype, name
        assert np.array_equal(x, y), name
    assert a.n_features == b.n_features
    assert a.head == b.head
    assert a.squeeze == b.squeeze
    assert dict(a.provenance) == dict(b.provenance)
    if a.scales is None:
        assert b.scales is None
    else:
        assert b.scales is not None and b.scales.dtype == a.scales.dtype
        assert np.array_equal(a.scales, b.scales)
    if a.classes is None:
        assert b.classes is None
    else:
        assert b.classes is not None
        assert a.classes.dtype.kind == b.classes.dtype.kind
        if a.classes.dtype.kind == "f":
            assert np.array_equal(a.classes, b.classes, equal_nan=True)
        else:
            assert a.classes.tolist() == b.classes.tolist()


def roundtrip(ir: LinearIR, **layout: str) -> bytes:
    blob = esb.encode(ir, **layout)
    assert_ir_equal(ir, esb.decode(blob))
    return blob


def table(blob: bytes) -> list[list[int]]:
    """Section table entries as [kind, encoding, reserved, offset, length, crc]."""
    (n,) = struct.unpack_from("<I", blob, 12)
    return [list(struct.unpack_from("<BBHIII", blob, 64 + 16 * i)) for i in range(n)]


def section(blob: bytes, name: str) -> tuple[int, int]:
    """(offset, length) of the named section."""
    kind = {v: k for k, v in linear.SECTION_NAMES.items()}[name]
    for k, _, _, off, length, _ in table(blob):
        if k == kind:
            return off, length
    raise KeyError(name)


def reseal(blob: bytes | bytearray) -> bytes:
    """Recompute every CRC that can be located (a test-side writer of the documented layout).

    Used to get corrupted content past the checksums so the deeper checks are exercised.
    """
    b = bytearray(blob)
    if len(b) < 64:
        return bytes(b)
    (n,) = struct.unpack_from("<I", b, 12)
    end = 64 + 16 * n
    if n > 64 or len(b) < end:
        return bytes(b)
    for i in range(n):
        at = 64 + 16 * i
        off, length = struct.unpack_from("<II", b, at + 4)
        if off + length <= len(b):
            struct.pack_into("<I", b, at + 12, zlib.crc32(b[off : off + length]))
    crc = zlib.crc32(bytes(b[64:end]), zlib.crc32(bytes(b[:60])))
    struct.pack_into("<I", b, 60, crc)
    return bytes(b)


def decode_or_format_error(blob: bytes) -> LinearIR | None:
    """Decode; a FormatError is fine (returns None), anything else fails the test."""
    try:
        return esb.decode(blob)
    except FormatError as exc:
        assert SAFETY_NET not in str(exc), f"an unchecked path was reached: {exc}"
        return None


@pytest.fixture
def small_ir() -> LinearIR:
    w = np.array([[0, 1.5, 0, -2.0, 0, 0], [0, 0, 0, 0, 0, 0], [3.0, 0, 0.25, 0, 0, -1]])
    q, s = quantize_rows(w)
    return csr_ir(
        q,
        head="softmax",
        classes=np.array(["ant", "bee", "cat"]),
        dtype=np.int8,
        scales=s,
        bias=np.array([0.5, -1.25, 0.1]),
        provenance={"source": "test"},
    )


# ------------------------------------------------------------------------------------------
# Round trips
# ------------------------------------------------------------------------------------------
RNG = np.random.default_rng(1234)
W4x9 = np.where(RNG.random((4, 9)) < 0.4, RNG.normal(size=(4, 9)), 0.0)
W4x9[2] = 0.0  # an empty row


@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("quant", ["float64", "float32", "int8-per-row", "int8-per-tensor"])
def test_roundtrip_every_head_and_dtype(head: str, quant: str) -> None:
    w = W4x9 if head != "identity" else W4x9[:1]
    classes = None if head == "identity" else np.array([3, -7, 11, 2**40])
    if head in ("logistic", "modified_huber", "hard") and quant == "float32":
        w, classes = W4x9[:1], np.array([0, 1])  # binary: one output row
    if quant.startswith("int8"):
        q, s = quantize_rows(w)
        scales = s if quant == "int8-per-row" else s[:1]
        ir = csr_ir(q, head=head, classes=classes, dtype=np.int8, scales=scales)
    else:
        ir = csr_ir(w, head=head, classes=classes, dtype=np.dtype(quant))
    ir = ir.replace(bias=np.linspace(-1, 1, ir.n_outputs) / 3)  # not exactly float32
    assert ir.quantization == quant or ir.n_outputs == 1
    roundtrip(ir)


@pytest.mark.parametrize(
    "classes",
    [
        np.array([0, 1]),
        np.array([-(2**63), 2**63 - 1]),
        np.array([0.5, -2.0]),
        np.array([float("inf"), float("-inf")]),  # a NaN label is refused (test_esb_malformed)
        np.array(["no", "yes"]),
        np.array(["", "ünïcødé ✓ 日本語 🚀"]),
        np.array([True, False]),
    ],
)
def test_roundtrip_labels(classes: np.ndarray) -> None:
    blob = roundtrip(csr_ir(W4x9[:1], head="logistic", classes=classes))
    encoding = esb.verify(blob)["sections"]["classes"]["encoding"]
    assert (
        encoding
        == {"i": "int-zigzag-varint", "f": "float64", "U": "utf8", "b": "int-zigzag-varint"}[
            classes.dtype.kind
        ]
    )


def test_roundtrip_bias_float32_and_float64() -> None:
    ir = csr_ir(W4x9[:1], head="identity", bias=np.array([0.25]))
    blob = roundtrip(ir)
    assert esb.verify(blob)["sections"]["bias"]["encoding"] == "float32"
    ir = ir.replace(bias=np.array([0.1]))
    assert esb.verify(roundtrip(ir))["sections"]["bias"]["encoding"] == "float64"
    roundtrip(ir.replace(bias=np.array([-0.0])))


def test_roundtrip_edge_shapes() -> None:
    roundtrip(csr_ir(np.zeros((1, 1)), head="identity"))  # nnz = 0, one feature
    roundtrip(csr_ir(np.array([[2.0]]), head="identity", squeeze=False))
    roundtrip(csr_ir(np.zeros((3, 5)), head="identity", squeeze=False))
    q, s = quantize_rows(np.zeros((3, 7)))
    roundtrip(csr_ir(q, head="hard", classes=np.arange(3), dtype=np.int8, scales=s))
    roundtrip(csr_ir(np.ones((5, 3)), head="softmax", classes=np.arange(5)))  # fully dense
    ir = LinearIR(
        indptr=[0, 1, 2],
        indices=[2**31 - 2, 0],
        values=[1.0, -1.0],
        n_features=2**31 - 1,  # widest allowed; nothing n_features-sized is allocated
        bias=[0.0, 0.0],
        head="identity",
        squeeze=False,
    )
    for cols in ("auto", "all", "varint", "eliasfano"):  # a bitmap would take 256 MiB
        roundtrip(ir, columns=cols, indices="auto")


def test_roundtrip_provenance() -> None:
    prov = {"source": "sklearn.linear_model.SGDClassifier", "ünï": '✓ "quoted"\n', "": ""}
    ir = csr_ir(W4x9[:1], head="identity", provenance=prov)
    blob = roundtrip(ir)
    assert esb.verify(blob)["provenance"] == prov
    assert "provenance" not in esb.verify(esb.encode(ir.replace(provenance={})))["sections"]


@pytest.mark.parametrize("columns", LAYOUT_COLUMNS)
@pytest.mark.parametrize("indices", LAYOUT_INDICES)
def test_every_layout_roundtrips(columns: str, indices: str) -> None:
    rng = np.random.default_rng(7)
    w = np.where(rng.random((6, 300)) < 0.05, rng.normal(size=(6, 300)), 0.0)
    w[:, rng.choice(300, 250, replace=False)] = 0.0  # few used columns
    w[3] = 0.0
    blob = roundtrip(csr_ir(w, head="hard", classes=np.arange(6)), columns=columns, indices=indices)
    layout = esb.verify(blob)["index_layout"]
    if columns != "auto":
        assert layout.startswith(f"columns={columns},")
    if indices != "auto":
        assert layout.endswith(f"indices={indices}")


def test_auto_layout_is_the_smallest() -> None:
    rng = np.random.default_rng(3)
    for density in (0.001, 0.05, 0.5, 1.0):
        w = np.where(rng.random((5, 200)) < density, 1.0, 0.0)
        ir = csr_ir(w, head="hard", classes=np.arange(5))
        sizes = [
            len(esb.encode(ir, columns=c, indices=i))
            for c in LAYOUT_COLUMNS[1:]
            for i in LAYOUT_INDICES[1:]
        ]
        assert len(esb.encode(ir)) == min(sizes)


def test_encode_rejects_non_ir() -> None:
    with pytest.raises(TypeError):
        esb.encode({"indptr": [0]})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown layout"):
        esb.encode(csr_ir(W4x9[:1], head="identity"), indices="zip")


def test_decode_accepts_bytearray_and_memoryview(small_ir: LinearIR) -> None:
    blob = esb.encode(small_ir)
    buf = bytearray(blob)
    ir = esb.decode(buf)
    buf[:] = bytes(len(buf))  # the IR must not alias the caller's buffer
    assert_ir_equal(small_ir, ir)
    assert_ir_equal(small_ir, esb.decode(memoryview(blob)))


# ------------------------------------------------------------------------------------------
# Files and verify
# ------------------------------------------------------------------------------------------
def test_write_read_verify(tmp_path, small_ir: LinearIR) -> None:
    path = tmp_path / "m.esb"
    n = esb.write(small_ir, path)
    assert n == path.stat().st_size
    assert_ir_equal(small_ir, esb.read(path))
    assert [p.name for p in tmp_path.iterdir()] == ["m.esb"]  # no temp file left behind
    info = esb.inspect_file(path)
    assert info["file"] == str(path)
    assert info["format"] == ".esb version 1"
    assert info["bytes"] == n
    assert (info["n_outputs"], info["n_features"], info["nnz"]) == (3, 6, 5)
    assert info["quantization"] == "int8-per-row"
    assert info["head"] == "softmax"
    assert info["classes"] == ["ant", "bee", "cat"]
    assert info["checksums"] == "OK"
    assert info["provenance"] == {"source": "test"}
    assert info["bytes_per_nonzero"] == round(n / 5, 4)
    assert set(info["sections"]) == {"rows", "indices", "values", "scales", "bias", "classes",
                                     "provenance"}  # fmt: skip
    assert sum(s["bytes"] for s in info["sections"].values()) < n


def test_read_errors_name_the_path(tmp_path, small_ir: LinearIR) -> None:
    path = tmp_path / "bad.esb"
    path.write_bytes(esb.encode(small_ir)[:-3])
    with pytest.raises(FormatError, match=r"bad\.esb: corrupt \.esb: section 'provenance'"):
        esb.read(path)
    with pytest.raises(FormatError, match=r"bad\.esb: corrupt"):
        esb.inspect_file(path)
    with pytest.raises(ModelFileError, match="not found"):
        esb.read(tmp_path / "missing.esb")


# ------------------------------------------------------------------------------------------
# Exact error texts
# ------------------------------------------------------------------------------------------
def error_of(blob: bytes) -> str:
    with pytest.raises(FormatError) as exc:
        esb.decode(blob)
    return str(exc.value)


def test_error_bad_magic(small_ir: LinearIR) -> None:
    blob = esb.encode(small_ir)
    assert error_of(b"PK\x03\x04" + blob[4:]) == (
        "not an .esb file: bad magic b'PK\\x03\\x04\\r\\n\\x1a\\n' at offset 0 "
        "(expected b'\\x89ESB\\r\\n\\x1a\\n')"
    )
    assert error_of(b"") == "not an .esb file: the file is empty"


def test_error_unknown_version(small_ir: LinearIR) -> None:
    blob = bytearray(esb.encode(small_ir))
    blob[8:10] = struct.pack("<H", 3)
    assert error_of(bytes(blob)) == (
        "unsupported .esb version 3 at offset 8 (this reader supports version 1; "
        "was the file written by a newer edgesparse?)"
    )


def test_error_truncated_header(small_ir: LinearIR) -> None:
    blob = esb.encode(small_ir)
    assert error_of(blob[:40]) == (
        "corrupt .esb: truncated header at offset 0 (needs 64 bytes, file has 40)"
    )
    assert error_of(blob[:70]) == (
        "corrupt .esb: truncated section table at offset 64 (needs 112 bytes, 6 left)"
    )


def test_error_section_past_end(small_ir: LinearIR) -> None:
    blob = esb.encode(small_ir)
    off, length = section(blob, "values")
    assert error_of(blob[: off + 2]) == (
        f"corrupt .esb: section 'values' at offset {off} runs past the end of the file "
        f"(needs {length} bytes, 2 left)"
    )


def test_error_bad_checksum_names_section(small_ir: LinearIR) -> None:
    blob = bytearray(esb.encode(small_ir))
    off, _ = section(bytes(blob), "bias")
    blob[off] ^= 0x01
    msg = error_of(bytes(blob))
    assert msg.startswith(f"corrupt .esb: checksum mismatch in section 'bias' at offset {off} ")
    blob = bytearray(esb.encode(small_ir))
    blob[20] ^= 0x10  # n_features
    assert error_of(bytes(blob)).startswith("corrupt .esb: header checksum mismatch at offset 60")


def test_error_trailing_bytes(small_ir: LinearIR) -> None:
    blob = esb.encode(small_ir)
    off, length = section(blob, "provenance")
    assert error_of(blob + b"\0\0\0") == (
        f"corrupt .esb: 3 trailing bytes after the last section (which ends at offset "
        f"{off + length})"
    )


def test_error_row_lengths_do_not_match_nnz(small_ir: LinearIR) -> None:
    # The format stores row lengths, so indptr is monotone by construction; the analogous
    # failure is row lengths that disagree with nnz.
    blob = bytearray(esb.encode(small_ir))
    off, _ = section(bytes(blob), "rows")
    assert bytes(blob[off : off + 3]) == b"\x02\x00\x03"
    blob[off + 1] = 1
    assert error_of(reseal(blob)) == (
        f"corrupt .esb: section 'rows' at offset {off}: row lengths sum to 6, header nnz is 5"
    )


def test_error_index_out_of_range(small_ir: LinearIR) -> None:
    blob = bytearray(esb.encode(small_ir, columns="all", indices="raw"))
    off, _ = section(bytes(blob), "indices")
    struct.pack_into("<i", blob, off + 4, 6)
    assert error_of(reseal(blob)) == (
        f"corrupt .esb: section 'indices' at offset {off}: column index 6 at position 1 "
        "is out of range [0, 6)"
    )
    struct.pack_into("<i", blob, off + 4, 1)  # row 0 becomes [1, 1]
    assert error_of(reseal(blob)) == (
        f"corrupt .esb: section 'indices' at offset {off}: column indices are not strictly "
        "increasing within a row at position 1"
    )


def test_error_bad_values_scales_and_labels(small_ir: LinearIR) -> None:
    blob = esb.encode(small_ir)
    off, _ = section(blob, "values")
    for bad, text in ((0, "0"), (0x80, "-128")):
        b = bytearray(blob)
        b[off] = bad
        assert error_of(reseal(b)) == (
            f"corrupt .esb: section 'values' at offset {off}: value {text} at position 0 is "
            "not allowed (stored values are never 0, NaN, Inf or -128)"
        )
    off, _ = section(blob, "scales")
    b = bytearray(blob)
    struct.pack_into("<f", b, off + 4, -1.0)
    assert error_of(reseal(b)) == (
        f"corrupt .esb: section 'scales' at offset {off}: scale -1.0 at position 1 must be "
        "finite and > 0"
    )
    off, _ = section(blob, "classes")
    b = bytearray(blob)
    b[off + 3 + 4] = 0xFF  # inside "bee"
    assert error_of(reseal(b)) == (
        f"corrupt .esb: section 'classes' at offset {off}: label 1 at offset {off + 6} is "
        "not valid UTF-8"
    )


def test_error_unknown_kind_and_encoding(small_ir: LinearIR) -> None:
    blob = bytearray(esb.encode(small_ir))
    blob[64 + 16 * 6] = 12  # provenance -> kind 12 (10 is 'text', 11 'tabular')
    assert error_of(reseal(blob)) == (
        "corrupt .esb: section table entry 6 at offset 160: unknown section kind 12 "
        "(written by a newer edgesparse?)"
    )
    blob = bytearray(esb.encode(small_ir))
    blob[64 + 16 * 1 + 1] = 7  # indices encoding 7
    assert error_of(reseal(blob)) == (
        "corrupt .esb: section table entry 1 at offset 80: section 'indices' has unknown encoding 7"
    )


@pytest.mark.parametrize(
    ("enc", "data", "n", "universe", "message"),
    [
        (codecs.ENC_EF, b"\x05\x05", 2, 8, None),  # [1, 5]
        (codecs.ENC_EF, b"\x01\x03", 2, 8, "nonzeros are not strictly increasing at position 1"),
        (codecs.ENC_EF, b"\x15\x05", 2, 8, "padding bits of the low part are not zero"),
        (codecs.ENC_EF, b"\x05\x21", 2, 8, "padding bits of the high part are not zero"),
        (codecs.ENC_EF, b"\x05\x09", 2, 8, "a nonzero lies outside [0, 8)"),
        (codecs.ENC_EF, b"\x05\x07", 2, 8, "high part has 3 bits set, expected 2 (nonzeros)"),
        (codecs.ENC_EF, b"\x05", 2, 8, "is 1 bytes, expected 2 (Elias-Fano code of 2 nonzeros)"),
        (codecs.ENC_EF, b"\x00", 0, 8, "is 1 bytes, expected 0 (no nonzeros)"),
        (codecs.ENC_BITMAP, b"\x22", 2, 8, None),
        (codecs.ENC_BITMAP, b"\x22\x00", 2, 8, "is 2 bytes, expected 1 (a bitmap of 8 bits)"),
        (codecs.ENC_BITMAP, b"\x42", 2, 6, "padding bits after bit 6 are not zero"),
        (codecs.ENC_BITMAP, b"\x23", 2, 8, "bitmap has 3 bits set, expected 2 (nonzeros)"),
        (codecs.ENC_VARINT, b"\x01\x02", 2, 8, None),  # [1, 4]
        (codecs.ENC_VARINT, b"\x01\x07", 2, 8, "a nonzero lies outside [0, 8)"),
        (codecs.ENC_VARINT, b"\x01\x08", 2, 8, "a nonzero lies outside [0, 8)"),
        (codecs.ENC_VARINT, b"\x01\x82\x00", 2, 8, "number at byte 1 is not minimally encoded"),
        (codecs.ENC_VARINT, b"\x01\x82", 2, 8, "holds 1 numbers, expected 2"),
        (codecs.ENC_VARINT, b"\x01\x02\x82", 2, 8, "ends in the middle of a number"),
        (codecs.ENC_VARINT, b"\x01\x80\x80\x80\x80\x80\x01", 2, 8, "longer than 5 bytes"),
    ],
)
def test_sorted_codecs_reject_malformed_input(enc, data, n, universe, message) -> None:
    b = np.frombuffer(data, dtype=np.uint8)
    if message is None:
        assert codecs.decode_sorted(b, enc, n, universe, 100, "indices", "nonzero").size == n
    else:
        with pytest.raises(FormatError) as exc:
            codecs.decode_sorted(b, enc, n, universe, 100, "indices", "nonzero")
        assert str(exc.value).startswith("corrupt .esb: section 'indices' at offset 100")
        assert message in str(exc.value)


def test_error_pattern_rows_disagree_with_row_lengths(small_ir: LinearIR) -> None:
    blob = bytearray(esb.encode(small_ir, columns="all", indices="bitmap"))
    off, length = section(bytes(blob), "indices")
    bits = np.unpackbits(np.frombuffer(blob, np.uint8, length, off), bitorder="little")
    assert bits[:18].nonzero()[0].tolist() == [1, 3, 12, 14, 17]  # rows: [1, 3], [], [0, 2, 5]
    bits[1], bits[6] = 0, 1  # move a weight from row 0 to row 1
    blob[off : off + length] = np.packbits(bits, bitorder="little").tobytes()
    assert error_of(reseal(blob)) == (
        f"corrupt .esb: section 'indices' at offset {off}: row 0 has 1 entries, "
        "section 'rows' says 2"
    )


def test_error_bad_provenance() -> None:
    ir = csr_ir(W4x9[:1], head="identity", provenance={"a": "1", "b": "2"})
    blob = esb.encode(ir)
    off, length = section(blob, "provenance")
    assert blob[off : off + length] == b'{"a":"1","b":"2"}'
    for text, why in (
        (b'{"a":"1","a":"2"}', "not a valid JSON object (duplicate key 'a')"),
        (b'{"a":"1","b":[2]}', "must be a JSON object of strings"),
        (b'["a","1","b","2"]', "must be a JSON object of strings"),
        (b'{"a":"1","b":"\xff"}', "not valid UTF-8 (invalid start byte)"),
    ):
        b = bytearray(blob)
        b[off : off + length] = text
        assert error_of(reseal(b)) == f"corrupt .esb: section 'provenance' at offset {off}: {why}"


@pytest.mark.parametrize(
    ("field", "fmt", "value", "message"),
    [
        (16, "<I", 2**32 - 1, "n_classes at offset 36 is 3, which does not fit n_outputs=4294"),
        (16, "<I", 2**32 - 1, "section 'rows' at offset 160: holds 3 numbers, expected 4294967295"),
        (20, "<I", 2**31, "n_features at offset 20 is 2147483648, expected 1 to 2147483647"),
        (24, "<Q", 2**64 - 1, "nnz at offset 24 is 18446744073709551615, more than"),
        (32, "<I", 2**32 - 1, "n_columns at offset 32 is 4294967295, more than n_features=6"),
        (36, "<I", 2**32 - 1, "n_classes at offset 36 is 4294967295, which does not fit"),
        (12, "<I", 2**32 - 1, "section count at offset 12 is 4294967295, expected 4 to 10"),
        (48, "<Q", 2**64 - 1, "file size field at offset 48 says 18446744073709551615 bytes"),
        (40, "<B", 5, "unknown head code 5 at offset 40"),
        (41, "<B", 3, "unknown value dtype code 3 at offset 41"),
        (42, "<B", 2, "unknown flag bits 0x02 at offset 42"),
        (44, "<I", 1, "reserved field at offset 44 is 1, expected 0"),
        (10, "<H", 32, "header size field at offset 10 is 32, expected 64"),
    ],
)
def test_crafted_header_fields(small_ir, field, fmt, value, message) -> None:
    import tracemalloc

    if message.startswith("section 'rows'"):  # a regressor: no class count to disagree with
        small_ir = small_ir.replace(head="identity", classes=None, squeeze=False)
    blob = bytearray(esb.encode(small_ir, columns="all"))
    struct.pack_into(fmt, blob, field, value)
    sealed = reseal(blob)
    tracemalloc.start()
    try:
        msg = error_of(sealed)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert msg.startswith("corrupt .esb: " + message), msg
    assert peak < 64 * 1024  # nothing sized by the (huge) header numbers was allocated


# ------------------------------------------------------------------------------------------
# Exhaustive corruption
# ------------------------------------------------------------------------------------------
def test_every_truncation_fails(small_ir: LinearIR) -> None:
    blob = esb.encode(small_ir)
    for n in range(len(blob)):
        with pytest.raises(FormatError):
            esb.decode(blob[:n])
        assert decode_or_format_error(blob[:n]) is None


@pytest.mark.parametrize("layout", [("auto", "auto"), ("varint", "eliasfano"), ("bitmap", "raw")])
def test_every_bit_flip_is_caught(small_ir: LinearIR, layout: tuple[str, str]) -> None:
    blob = esb.encode(small_ir, columns=layout[0], indices=layout[1])
    for pos in range(len(blob)):
        for bit in range(8):
            b = bytearray(blob)
            b[pos] ^= 1 << bit
            assert decode_or_format_error(bytes(b)) is None, (pos, bit)


def test_resealed_byte_changes_never_crash(small_ir: LinearIR) -> None:
    # With the checksums recomputed, every content check is on its own.
    for layout in [("auto", "auto"), ("varint", "varint"), ("eliasfano", "bitmap")]:
        blob = esb.encode(small_ir, columns=layout[0], indices=layout[1])
        for pos in range(len(blob)):
            for value in (0x00, 0x01, 0x7F, 0x80, 0xFF, blob[pos] ^ 0x04):
                b = bytearray(blob)
                b[pos] = value
                ir = decode_or_format_error(reseal(b))
                if ir is not None:
                    assert esb.decode(esb.encode(ir)) is not None


# ------------------------------------------------------------------------------------------
# Hypothesis
# ------------------------------------------------------------------------------------------
@st.composite
def linear_irs(draw) -> LinearIR:
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    head = draw(st.sampled_from(HEADS))
    if head == "identity":
        n_out = draw(st.integers(1, 4))
    elif head == "softmax":
        n_out = draw(st.integers(3, 6))
    else:
        n_out = draw(st.sampled_from([1, 3, 5]))
    n_feat = draw(st.integers(1, 70))
    density = draw(st.sampled_from([0.0, 0.05, 0.3, 1.0]))
    w = np.where(rng.random((n_out, n_feat)) < density, rng.normal(size=(n_out, n_feat)), 0.0)
    quant = draw(st.sampled_from(["float64", "float32", "int8-row", "int8-tensor"]))
    kw: dict = {}
    if quant.startswith("int8"):
        q, s = quantize_rows(w)
        w, kw = q, {"dtype": np.int8, "scales": s if quant == "int8-row" else s[:1]}
    else:
        kw = {"dtype": np.dtype(quant)}
    classes = None
    if head != "identity":
        n_cls = 2 if n_out == 1 else n_out
        kind = draw(st.sampled_from(["int", "float", "str"]))
        if kind == "int":
            classes = rng.integers(-(2**62), 2**62, n_cls)
        elif kind == "float":
            classes = rng.normal(size=n_cls)
        else:
            classes = np.array([draw(st.text(max_size=6)) + str(i) for i in range(n_cls)])
            try:
                [c.encode("utf-8") for c in classes.tolist()]
            except UnicodeEncodeError:
                classes = np.array([f"c{i}" for i in range(n_cls)])
    prov = draw(st.dictionaries(st.text(max_size=5), st.text(max_size=8), max_size=3))
    try:
        [k.encode() + v.encode() for k, v in prov.items()]
    except UnicodeEncodeError:
        prov = {}
    return csr_ir(
        w,
        head=head,
        classes=classes,
        bias=rng.normal(size=n_out),
        squeeze=bool(n_out == 1 and draw(st.booleans())),
        provenance=prov,
        **kw,
    )


FUZZ = settings(
    max_examples=150, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck)
)


@FUZZ
@given(
    ir=linear_irs(),
    columns=st.sampled_from(LAYOUT_COLUMNS),
    indices=st.sampled_from(LAYOUT_INDICES),
)
def test_hypothesis_roundtrip(ir: LinearIR, columns: str, indices: str) -> None:
    roundtrip(ir, columns=columns, indices=indices)


@FUZZ
@given(data=st.binary(max_size=400), prefix=st.booleans())
def test_hypothesis_random_bytes(data: bytes, prefix: bool) -> None:
    if prefix:  # get past the magic and version checks
        data = esb.MAGIC + b"\x01\x00" + data
    assert decode_or_format_error(data) is None or prefix


@FUZZ
@given(
    ir=linear_irs(),
    edits=st.lists(
        st.tuples(st.integers(0, 10**6), st.integers(0, 255), st.integers(0, 3)),
        min_size=1,
        max_size=4,
    ),
    seal=st.booleans(),
)
def test_hypothesis_mutations(ir: LinearIR, edits: list, seal: bool) -> None:
    b = bytearray(esb.encode(ir))
    for pos, value, op in edits:
        pos %= len(b) + 1
        if op == 0 and pos < len(b):
            b[pos] = value
        elif op == 1:
            b.insert(pos, value)
        elif op == 2 and pos < len(b):
            del b[pos]
        elif op == 3 and pos < len(b):
            b[pos] ^= 1 << (value % 8)
    decode_or_format_error(reseal(b) if seal else bytes(b))


# ------------------------------------------------------------------------------------------
# Size and speed goals (GOALS.md)
# ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def text_model() -> LinearIR:
    """M4-like: 20 classes x 2^18 hashed text features, SGD hinge/elasticnet, ~1% dense.

    Synthetic documents: ~27 tokens each, 70% drawn from a shared Zipf(1.1) vocabulary of
    30 000 words and 30% from a 300-word topic list of the document's class; hashed with
    FeatureHasher(2^18, alternate_sign=False). alpha/l1_ratio are tuned so coef_ is ~1% dense
    (about 57k nonzeros, 12.6k used columns, 4.5 nonzeros per used column after int8). Kept
    small (4000 documents, 20 epochs) so the fixture builds in about 3 seconds.
    """
    pytest.importorskip("sklearn")
    from sklearn.feature_extraction import FeatureHasher
    from sklearn.linear_model import SGDClassifier

    rng = np.random.default_rng(0)
    n_docs, n_classes, vocab, topic, tokens = 4000, 20, 30_000, 300, 27
    p = 1.0 / np.arange(1, vocab + 1) ** 1.1
    p /= p.sum()
    topics = [rng.choice(vocab, topic, replace=False) for _ in range(n_classes)]
    y = rng.integers(0, n_classes, n_docs)
    docs = []
    for c in y:
        background = rng.choice(vocab, rng.poisson(tokens * 0.7), p=p)
        topical = rng.choice(topics[c], max(1, rng.poisson(tokens * 0.3)))
        docs.append([f"w{i}" for i in np.concatenate([background, topical])])
    hasher = FeatureHasher(n_features=2**18, input_type="string", alternate_sign=False)
    x = hasher.transform(docs)
    clf = SGDClassifier(
        loss="hinge", penalty="elasticnet", alpha=3e-5, l1_ratio=0.5, max_iter=20, tol=None,
        random_state=0,
    )  # fmt: skip
    clf.fit(x, y)
    q, s = quantize_rows(clf.coef_)
    return csr_ir(
        q,
        head="hard",
        classes=clf.classes_,
        dtype=np.int8,
        scales=s,
        bias=clf.intercept_,
        provenance={"source": "sklearn.linear_model.SGDClassifier", "quantize": "int8-per-row"},
    )


def test_size_goal_text_model(text_model: LinearIR) -> None:
    ir = text_model
    density = ir.nnz / (ir.n_outputs * ir.n_features)
    assert ir.shape == (20, 2**18)
    assert 0.007 < density < 0.015
    blob = roundtrip(ir)
    info = esb.verify(blob)
    print(
        f"\ntext model: nnz={ir.nnz} used columns={info['used_columns']} "
        f"bytes={len(blob)} bytes/nnz={len(blob) / ir.nnz:.3f} layout={info['index_layout']}"
    )
    assert len(blob) / ir.nnz <= 2.0  # GOALS.md: <= 2.0 bytes per nonzero, all included
    plain = esb.encode(ir, columns="all", indices="raw")
    assert len(plain) / ir.nnz > 4.9  # what a u32 index costs


def test_size_goal_digits() -> None:
    pytest.importorskip("sklearn")
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = load_digits(return_X_y=True)
    pipe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(x, y)
    scaler, lr = pipe[0], pipe[1]
    w = lr.coef_ / scaler.scale_
    b = lr.intercept_ - w @ scaler.mean_
    q, s = quantize_rows(w)
    prov = {
        "source": "sklearn.pipeline.Pipeline(StandardScaler, LogisticRegression)",
        "sklearn_version": "1.9.1",
        "numpy_version": "2.4.6",
        "edgesparse_version": "0.1.0",
        "quantize": "int8-per-row",
        "sparsity": "0.0",
    }
    ir = csr_ir(q, head="softmax", classes=lr.classes_, dtype=np.int8, scales=s, bias=b,
                provenance=prov)  # fmt: skip
    blob = roundtrip(ir)
    print(f"\ndigits: nnz={ir.nnz} bytes={len(blob)}")
    assert len(blob) <= 1536  # GOALS.md: <= 1.5 KiB


def test_large_model_round_trips() -> None:
    """~500k nonzeros survive encode -> decode. Its speed is benchmarks/bench_esb.py's job:
    a timing depends on the machine's load, so it is measured there, not asserted here."""
    rng = np.random.default_rng(0)
    n_out, n_feat, nnz = 20, 2**18, 500_000
    flat = np.unique(rng.integers(0, n_out * n_feat, nnz))
    rows, cols = flat // n_feat, flat % n_feat
    indptr = np.zeros(n_out + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n_out), out=indptr[1:])
    values = (rng.integers(1, 128, flat.size) * rng.choice([-1, 1], flat.size)).astype(np.int8)
    ir = LinearIR(
        indptr=indptr, indices=cols.astype(np.int32), values=values, n_features=n_feat,
        bias=np.zeros(n_out), head="hard", classes=np.arange(n_out),
        scales=np.ones(n_out, np.float32),
    )  # fmt: skip
    out = esb.decode(esb.encode(ir))
    np.testing.assert_array_equal(out.indptr, ir.indptr)
    np.testing.assert_array_equal(out.indices, ir.indices)
    np.testing.assert_array_equal(out.values, ir.values)
