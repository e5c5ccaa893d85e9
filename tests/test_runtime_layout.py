"""The numpy runtime's load-time layout (issue 19, goal 6): what a model keeps after loading,
and the compact structures behind it, against hand-computed answers."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from edgesparse.ir import from_dense
from edgesparse.runtime import csr_input
from edgesparse.runtime import layout as layout_module
from edgesparse.runtime import model as model_module
from edgesparse.runtime.csr_input import positions
from edgesparse.runtime.model import Model
from tests.test_ir import _random_irs


def test_complement_lists_the_columns_not_given() -> None:
    cases = [
        (np.array([0, 3, 4]), 5, [1, 2]),  # both edges given
        (np.array([1, 2]), 4, [0, 3]),  # both edges missing
        (np.array([], dtype=np.int32), 3, [0, 1, 2]),  # empty set: every column
        (np.arange(4, dtype=np.int32), 4, []),  # all given: none
    ]
    for cols, n, want in cases:
        got = layout_module.complement(cols, n=n)
        assert got.dtype == np.intp
        assert got.tolist() == want


def test_weighted_columns_skip_zero_weights() -> None:
    indices = np.array([0, 2, 2, 6, 6], dtype=np.int32)
    weights = np.array([1.0, 0.0, 0.0, 0.0, -2.0], dtype=np.float32)
    got = layout_module.weighted_columns(indices, weights, n_features=7)
    assert got.dtype == np.int32
    assert got.tolist() == [0, 6]  # column 2 holds only zero weights; 6 is the last one
    assert layout_module.unused_columns(indices, weights, n_features=7).tolist() == [1, 2, 3, 4, 5]


def sparse_model(monkeypatch) -> Model:
    # A sparse-column model of 3 outputs over 10 features; columns 0, 4 and 9 carry weights.
    monkeypatch.setattr(model_module, "_DENSE_BLOCK_CELLS", 0)
    monkeypatch.setattr(model_module, "_DENSE_BLOCK_FILL", 2.0)
    w = np.zeros((3, 10))
    w[0, 0], w[1, 9], w[2, 4], w[2, 9] = 1.0, 2.0, 3.0, 4.0
    return Model(from_dense(w, bias=np.zeros(3), head="identity", squeeze=False))


def test_a_sparse_model_keeps_only_its_used_columns_until_a_kernel_needs_more(
    monkeypatch,
) -> None:
    model = sparse_model(monkeypatch)
    assert not model._dense
    assert model._used.dtype == np.int32 and model._used.tolist() == [0, 4, 9]
    assert model._columns is None and model._unused_cols is None
    # CSR input goes through the used-column block: still no by-column layout.
    X = sp.csr_matrix(np.arange(20.0).reshape(2, 10))
    w = model.ir.to_dense()
    np.testing.assert_allclose(model.decision_function(X), X.toarray() @ w.T)
    assert model._columns is None
    # The column map: smallest type holding n_used (3, its zero row), unused columns at 3.
    assert model._csr.table.dtype == np.uint8
    assert model._csr.table.tolist() == [0, 3, 3, 3, 1, 3, 3, 3, 3, 2]
    # Dense input builds the layout: CSC order (column, then output), and the unused count.
    np.testing.assert_allclose(model.decision_function(X.toarray()), X.toarray() @ w.T)
    layout = model._columns
    assert layout.col_ptr.tolist() == [0, 1, 2, 4]
    assert layout.col_rows.tolist() == [0, 2, 1, 2]
    assert layout.col_vals.tolist() == [1.0, 3.0, 2.0, 4.0]
    assert model._n_unused == 7
    assert model._unused.tolist() == [1, 2, 3, 5, 6, 7, 8]


def test_layout_bytes_are_known_before_the_layout_is_built(monkeypatch) -> None:
    model = sparse_model(monkeypatch)
    before = model._layout_bytes()
    layout = model._layout()
    arrays = (layout.col_ptr, layout.col_rows, layout.col_vals, layout.row_vals, layout.row_idx)
    assert before == sum(a.nbytes for a in arrays) + layout.slice_flat.nbytes


@pytest.mark.parametrize("n_used", [255, 256, 65535, 65536])
def test_column_map_type_holds_the_zero_row(monkeypatch, n_used: int) -> None:
    monkeypatch.setattr(model_module, "_DENSE_BLOCK_CELLS", 0)
    monkeypatch.setattr(model_module, "_DENSE_BLOCK_FILL", 2.0)
    n = 2 * n_used
    w = np.zeros((1, n))
    w[0, 1::2] = 1.0  # odd columns used, the last one (n - 1) among them
    model = Model(from_dense(w, bias=np.zeros(1), head="identity", squeeze=False))
    model.predict(sp.csr_matrix((1, n)))  # builds the column map
    pos = positions(
        np.array([0, 1, n - 2, n - 1], dtype=np.int32), table=model._csr.table, used=model._used
    )
    assert pos.tolist() == [n_used, 0, n_used, n_used - 1]
    assert np.iinfo(model._csr.table.dtype).max >= n_used
    assert model._csr.table.itemsize == (1 if n_used < 256 else 2 if n_used < 65536 else 4)


def test_stage_encodings_match_their_codecs() -> None:
    from edgesparse.formats import linear, linear_tabular, linear_text

    assert linear.ENCODINGS[linear.TEXT] == linear_text.TEXT_ENCODINGS
    assert linear.ENCODINGS[linear.TABULAR] == linear_tabular.TABULAR_ENCODINGS


def test_a_linear_blob_without_a_stage_loads_no_stage_or_knn_ir(tmp_path) -> None:
    import subprocess
    import sys
    from pathlib import Path

    from edgesparse.formats import esb

    blob = tmp_path / "m.esb"
    esb.write(from_dense(np.eye(2, 5), bias=np.zeros(2), head="identity", squeeze=False), blob)
    code = (
        "import sys, numpy as np, edgesparse\n"
        f"m = edgesparse.load({str(blob)!r})\n"
        "m.predict(np.ones((2, 5)))\n"
        "print(' '.join(m for m in sys.modules if 'edgesparse' in m))"
    )
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root)
    loaded = set(out.stdout.split())
    assert "edgesparse.runtime.model" in loaded, out.stderr
    lazy = {
        "edgesparse.ir.knn",
        "edgesparse.ir.text",
        "edgesparse.ir.tabular",
        "edgesparse.formats.linear_text",
        "edgesparse.formats.linear_tabular",
    }
    assert loaded.isdisjoint(lazy), sorted(loaded & lazy)
    # ...and they still resolve from the package, as before.
    from edgesparse.ir import VARIANTS, KnnIR, TextFeaturizer, Tfidf

    assert KnnIR.__name__ == "KnnIR" and TextFeaturizer.__name__ == "TextFeaturizer"
    assert Tfidf.__name__ == "Tfidf" and VARIANTS


@pytest.mark.parametrize("fill_nnz", [1, 2, 5, 1 << 13])
def test_the_used_column_block_is_filled_a_few_rows_at_a_time(monkeypatch, fill_nnz) -> None:
    # Oracle: the block built in one step from the whole IR (every nonzero's place and
    # weight); filled a run of output rows at a time, its bytes are the same.
    monkeypatch.setattr(csr_input, "_FILL_NNZ", fill_nnz)
    for ir in _random_irs(np.random.default_rng(7)):
        used = np.unique(ir.indices).astype(np.int32)
        for dtype in (np.dtype(np.float32), np.dtype(np.float64)):
            want = np.zeros((used.size + 1, ir.n_outputs), dtype=dtype)
            want[np.searchsorted(used, ir.indices), ir.row_ids()] = ir.real_values(dtype=dtype)
            got = csr_input.used_block(ir, used=used, dtype=dtype, layout_bytes=1 << 30)
            assert got is not None and got.dtype == dtype
            assert got.tobytes() == want.tobytes(), (ir.quantization, dtype)
