"""LinearIR invariants: every broken field is refused, naming the field."""

from __future__ import annotations

import numpy as np
import pytest

from edgesparse.errors import IRError
from edgesparse.ir import LinearIR, from_dense

BASE = {
    "indptr": [0, 2, 3],
    "indices": [0, 2, 1],
    "values": [1.0, -2.0, 3.0],
    "n_features": 3,
    "bias": [0.5, -0.5],
    "head": "identity",
    "squeeze": False,
}


def test_valid_ir_and_derived_facts():
    ir = LinearIR(**BASE)
    assert ir.shape == (2, 3)
    assert ir.nnz == 3
    assert not ir.is_classifier
    np.testing.assert_array_equal(ir.to_dense(), [[1, 0, -2], [0, 3, 0]])
    with pytest.raises(ValueError):
        ir.values[0] = 5.0  # arrays are frozen


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"indptr": [1, 2, 3]}, "indptr: must start at 0, starts at 1"),
        ({"indptr": [0, 3, 2]}, "indptr: decreases at row 1"),
        ({"indptr": [0, 2, 4]}, "indptr: ends at 4 but there are 3 indices and 3 values"),
        ({"indices": [0, 3, 1]}, "indices: a column index is outside [0, 3)"),
        ({"indices": [2, 0, 1]}, "indices: not strictly increasing within a row at position 1"),
        ({"indices": [1, 1, 1]}, "indices: not strictly increasing within a row at position 1"),
        ({"values": [1.0, 0.0, 3.0]}, "values: explicit zeros must not be stored"),
        ({"values": [1.0, np.nan, 3.0]}, "values: weights contain NaN or Inf"),
        ({"bias": [0.5]}, "bias: has 1 entries, expected n_outputs=2"),
        ({"bias": [0.5, np.inf]}, "bias: contains NaN or Inf"),
        ({"head": "tanh"}, "head: 'tanh' is not one of identity, hard, logistic, softmax"),
        ({"squeeze": True}, "squeeze: only a single-output regressor can return 1-D output"),
        ({"classes": [0, 1]}, "classes: a regressor (head 'identity') has no classes"),
        ({"values": np.int8([1, 2, 3])}, "scales: int8 values need scales"),
        ({"scales": [1.0]}, "scales: only int8 values have scales"),
        ({"head": "hard"}, "classes: a classifier (head 'hard') needs class labels"),
        (
            {"head": "hard", "classes": [0, 1]},
            "classes: 2 classes need 1 output row(s), weights have 2",
        ),
    ],
)
def test_invariants(change, message):
    with pytest.raises(IRError) as err:
        LinearIR(**{**BASE, **change})
    assert str(err.value).startswith(message)


def test_int8_invariants():
    ok = {**BASE, "values": np.int8([1, -2, 3]), "scales": np.float32([0.5, 0.25])}
    assert LinearIR(**ok).quantization == "int8-per-row"
    with pytest.raises(IRError, match=r"scales: every scale must be finite and > 0"):
        LinearIR(**{**ok, "scales": [0.5, 0.0]})
    with pytest.raises(IRError, match=r"scales: has 3 entries"):
        LinearIR(**{**ok, "scales": [1.0, 1.0, 1.0]})
    with pytest.raises(IRError, match=r"int8 values must lie in \[-127, 127\]"):
        LinearIR(**{**ok, "values": np.int8([1, -128, 3])})
    np.testing.assert_allclose(LinearIR(**ok).to_dense(), [[0.5, 0, -1], [0, 0.75, 0]])


def test_from_dense_drops_zeros_and_keeps_labels():
    ir = from_dense(
        np.array([[0.0, 2.0, 0.0, -1.0]]), bias=[0.1], head="logistic", classes=["no", "yes"]
    )
    assert ir.nnz == 2
    assert ir.classes.tolist() == ["no", "yes"]
    assert ir.has_proba


def _random_irs(rng: np.random.Generator) -> list[LinearIR]:
    """IRs of every value kind: float64, float32, int8 per row and per tensor, with and
    without column exponents, int16 rows; empty rows included."""
    n_out, n_feat = 6, 40
    dense = rng.standard_normal((n_out, n_feat)) * (rng.random((n_out, n_feat)) < 0.3)
    dense[2] = 0.0  # an empty row
    base = from_dense(dense, bias=rng.standard_normal(n_out), head="identity", squeeze=False)
    q = np.clip(np.round(base.values * 40), -127, 127).astype(np.int8)
    q[q == 0] = 1
    exps = rng.integers(-3, 4, n_feat).astype(np.int8)
    q16 = q.astype(np.int16)
    q16[: base.indptr[2]] *= 200  # rows 0 and 1 wide
    scales = (rng.random(n_out) + 0.5).astype(np.float32) / 64
    return [
        base,
        base.replace(values=base.values.astype(np.float32)),
        base.replace(values=q, scales=scales),
        base.replace(values=q, scales=scales[:1]),
        base.replace(values=q, scales=scales, col_exponents=exps),
        base.replace(values=q16, scales=scales),
    ]


def test_real_values_of_some_rows_are_those_of_all_rows():
    # Oracle: the whole-matrix real_values, sliced at the rows' nonzeros (the same bits).
    rng = np.random.default_rng(6)
    for ir in _random_irs(rng):
        for dtype in (np.float64, np.float32):
            whole = ir.real_values(dtype=dtype)
            for r0 in range(ir.n_outputs + 1):
                for r1 in range(r0, ir.n_outputs + 1):
                    got = ir.real_values(dtype=dtype, rows=slice(r0, r1))
                    want = whole[ir.indptr[r0] : ir.indptr[r1]]
                    assert got.dtype == want.dtype
                    assert got.tobytes() == want.tobytes(), (ir.quantization, r0, r1)


def test_an_ir_is_frozen_and_replace_validates_again():
    ir = LinearIR(**BASE, provenance={"source": "test"})
    for name, value in (("head", "hard"), ("n_features", 4), ("new_field", 1)):
        with pytest.raises(AttributeError, match="frozen"):
            setattr(ir, name, value)
    with pytest.raises(AttributeError, match="frozen"):
        del ir.head
    changed = ir.replace(bias=[1.0, 2.0])
    assert changed.bias.tolist() == [1.0, 2.0] and ir.bias.tolist() == [0.5, -0.5]
    assert dict(changed.provenance) == {"source": "test"}
    np.testing.assert_array_equal(changed.to_dense(), ir.to_dense())
    with pytest.raises(IRError, match="bias: has 1 entries, expected n_outputs=2"):
        ir.replace(bias=[1.0])
    with pytest.raises(TypeError, match="no field 'bais'"):
        ir.replace(bais=[1.0, 2.0])
    with pytest.raises(TypeError):
        LinearIR(BASE["indptr"], **{k: v for k, v in BASE.items() if k != "indptr"})  # type: ignore[misc]
