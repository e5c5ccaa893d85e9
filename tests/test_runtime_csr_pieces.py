"""The numpy runtime's CSR input in bounded pieces of nonzeros (issue 19, goal 2): a row longer
than a piece is summed in pieces and their sums added. Against hand-computed piece bounds, a
float64 ``np.add.at`` reference of the same sums, and scipy's ``X @ W.T + b`` through the
model, on every weight layout the CSR path reads.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.sparse as sp

from edgesparse.ir import from_dense
from edgesparse.runtime import csr_input
from edgesparse.runtime import model as model_module
from edgesparse.runtime.csr_input import CsrWeights, csr_scores, piece_bounds
from edgesparse.runtime.layout import sparse_columns
from edgesparse.runtime.model import Model

N_FEATURES, N_OUTPUTS = 7, 3


def test_piece_bounds_by_hand() -> None:
    # Rows: empty, 10 nonzeros, empty, 2, 3, empty; pieces of 4: the 10-long row is cut at
    # nonzeros 4 and 8, the run after it at the start of the row holding nonzero 12.
    indptr = np.array([0, 0, 10, 10, 12, 15, 15])
    assert piece_bounds(indptr, n_rows=6, piece_nnz=4) == [
        (0, 2, 0, 4),  # the leading empty row, row 1's first 4
        (1, 2, 4, 8),  # row 1's next 4
        (1, 4, 8, 12),  # row 1's last 2, the empty row 2, row 3
        (4, 6, 12, 15),  # row 4 and the trailing empty row
    ]


@pytest.mark.parametrize("piece", [1, 2, 3, 5, 8])
def test_piece_bounds_cover_every_nonzero_and_row_once(piece: int) -> None:
    rng = np.random.default_rng(piece)
    lens = rng.choice([0, 1, 2, 9, 30], size=40)
    indptr = np.concatenate([[0], np.cumsum(lens)])
    bounds = piece_bounds(indptr, n_rows=lens.size, piece_nnz=piece)
    assert bounds[0][0] == 0 and bounds[0][2] == 0
    assert bounds[-1][1] == lens.size and bounds[-1][3] == indptr[-1]
    for (r0, r1, a, b), (s0, _, c, _) in itertools.pairwise(bounds):
        assert b == c and 0 < b - a < 2 * piece  # contiguous, bounded
        assert indptr[r0] <= a and b <= indptr[r1]  # the rows hold the nonzeros
        # the next piece starts on a row boundary (a new row), or inside this piece's last
        assert s0 == r1 if b == indptr[s0] else s0 == r1 - 1


def weights(layout: str, dtype: type) -> tuple[CsrWeights, np.ndarray]:
    """CsrWeights of a small model in one of the CSR path's layouts, and its dense weights."""
    rng = np.random.default_rng(2)
    w = rng.standard_normal((N_FEATURES, N_OUTPUTS))
    w[[1, 4]] = 0  # columns no output uses
    dt = np.dtype(dtype)
    used = np.flatnonzero(w.any(axis=1))
    block = np.zeros((used.size + 1, N_OUTPUTS), dtype=dt)
    block[:-1] = w[used]
    if layout == "all columns":
        full = np.zeros((N_FEATURES + 1, N_OUTPUTS), dtype=dt)
        full[:-1] = w
        cw = CsrWeights(full, full[:-1], None, None, None, N_OUTPUTS, dt)
    elif layout == "table":
        table = csr_input.column_table(used, n_features=N_FEATURES)
        cw = CsrWeights(block, None, table, used, None, N_OUTPUTS, dt)
    elif layout == "binary search":
        cw = CsrWeights(block, None, None, used, None, N_OUTPUTS, dt)
    else:  # no block: each nonzero expands to its column's weights
        ir = from_dense(w.T, bias=np.zeros(N_OUTPUTS), head="identity", squeeze=False)
        ir = ir.replace(values=ir.values.astype(dt))
        used32 = used.astype(np.int32)
        columns = sparse_columns(ir, dtype=dt, used=used32, slice_cells=64)
        table = csr_input.column_table(used32, n_features=N_FEATURES)
        cw = CsrWeights(None, None, table, used32, columns, N_OUTPUTS, dt)
    return cw, w.astype(dt).astype(np.float64)


def reference(rows: list[list[tuple[int, float]]], w: np.ndarray) -> np.ndarray:
    """Each row's sum of value x weight row, in float64, one product at a time."""
    out = np.zeros((len(rows), w.shape[1]))
    for i, row in enumerate(rows):
        for j, v in row:
            out[i] += v * w[j]
    return out


def csr(rows: list[list[tuple[int, float]]], dtype: type) -> tuple[np.ndarray, ...]:
    data = np.array([v for row in rows for _, v in row], dtype=dtype)
    indices = np.array([j for row in rows for j, _ in row], dtype=np.int32)
    indptr = np.concatenate([[0], np.cumsum([len(row) for row in rows])]).astype(np.intp)
    return data, indices, indptr


def long_row(n: int, seed: int) -> list[tuple[int, float]]:
    # Every column, repeats (duplicates) included, in no order.
    rng = np.random.default_rng(seed)
    cols, vals = rng.integers(0, N_FEATURES, n), rng.normal(size=n)
    return [(int(j), float(v)) for j, v in zip(cols, vals, strict=True)]


LAYOUTS = ["all columns", "table", "binary search", "expanded"]


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_long_row_cut_at_every_boundary_sums_as_the_reference(
    monkeypatch, layout: str, dtype: type
) -> None:
    cw, w = weights(layout, dtype)
    tol = 1e-12 if dtype == np.float64 else 1e-5
    row = long_row(13, seed=1)
    for piece in range(1, 14):
        monkeypatch.setattr(csr_input, "_CSR_RUN_NNZ", piece)
        for lead in range(piece):  # a short row before it shifts the cuts by one each time
            rows = [long_row(lead, seed=2), row]
            got = csr_scores(*csr(rows, dtype), len(rows), weights=cw)
            assert got.dtype == dtype and got.shape == (2, N_OUTPUTS)
            np.testing.assert_allclose(got, reference(rows, w), rtol=tol, atol=tol)


BATCHES = {
    "empty rows around it": [[], [], "long", [], []],
    "at the start": ["long", [(0, 1.0)], [(2, -2.0), (3, 0.5)]],
    "in the middle": [[(6, 3.0)], "long", [(0, 1.0)]],
    "at the end": [[(6, 3.0)], [], "long"],
    "two, back to back": ["long", "long"],
    "mixed": [[(1, 2.0)], "long", [], [(0, 1.0), (0, 1.0)], "long", [(5, -1.0)] * 3, []],
    "only duplicates": [[(3, 0.25)] * 50],
}


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_long_rows_anywhere_in_a_batch(monkeypatch, batch: str, layout: str, dtype: type) -> None:
    monkeypatch.setattr(csr_input, "_CSR_RUN_NNZ", 8)
    cw, w = weights(layout, dtype)
    rows = [long_row(45, seed=i) if r == "long" else r for i, r in enumerate(BATCHES[batch])]
    got = csr_scores(*csr(rows, dtype), len(rows), weights=cw)
    tol = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(got, reference(rows, w), rtol=tol, atol=tol)
    empty = [i for i, r in enumerate(rows) if not r]
    np.testing.assert_array_equal(got[empty], 0)


@pytest.mark.parametrize("layout", ["full width", "gathered", "sparse block", "expanded"])
def test_the_model_sums_long_rows_in_pieces_as_scipy(monkeypatch, layout: str) -> None:
    monkeypatch.setattr(csr_input, "_CSR_RUN_NNZ", 16)
    if layout in ("sparse block", "expanded"):
        monkeypatch.setattr(model_module, "_DENSE_BLOCK_CELLS", 0)
        monkeypatch.setattr(model_module, "_DENSE_BLOCK_FILL", 2.0)
    if layout == "expanded":
        monkeypatch.setattr(csr_input, "_CSR_BLOCK_CELLS", 0)
        monkeypatch.setattr(csr_input, "_CSR_BLOCK_LAYOUT", 0.0)
    rng = np.random.default_rng(5)
    n_features = 40
    w = rng.standard_normal((4, n_features))
    w[:, 30 if layout == "full width" else 8 :] = 0
    ir = from_dense(w, bias=[0.5, -1.0, 2.0, 0.0], head="identity", squeeze=False)
    model = Model(ir)
    assert model._dense == (layout in ("full width", "gathered"))
    X = sp.random(30, n_features, density=0.2, format="lil", random_state=6)
    X[3] = rng.normal(size=n_features)  # 40 nonzeros: three pieces of 16
    X[17] = rng.normal(size=n_features)
    X = X.tocsr()
    one = sp.csr_matrix(  # one row of 100 nonzeros, repeats included, given as is
        (rng.normal(size=100), rng.integers(0, n_features, 100), [0, 100]), shape=(1, n_features)
    )
    for batch in (X, one):
        want = batch @ w.T + ir.bias
        np.testing.assert_allclose(model.decision_function(batch), want, rtol=1e-12, atol=1e-12)
    cw = model._csr
    assert cw is not None and (cw.block is None) == (layout == "expanded")
    # The one-row path sums a long row in the same pieces, in the same order, as a batch.
    fast = csr_input.one_row_scores(one.data, one.indices, weights=cw, bias=model._bias)
    if layout == "expanded":
        assert fast is None  # no block: the general path
    else:
        batch = csr_scores(one.data, one.indices, one.indptr.astype(np.intp), 1, weights=cw)
        np.testing.assert_array_equal(fast, batch[0] + model._bias)
