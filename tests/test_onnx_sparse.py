"""The CSR-input ONNX graph (formats/onnx_sparse.py) and the runtime feeding it: standard ops
only, the numpy runtime's numbers and labels on the same IR, scikit-learn's on the exact
weights, every input the numpy runtime refuses refused with the same error, and the choice of
input form in ``compress``."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import scipy.sparse as sp
from click.testing import CliRunner
from onnx import helper

import edgesparse
from edgesparse.cli import cli
from edgesparse.data import CSRArrays
from edgesparse.errors import FormatError, InputError
from edgesparse.formats import onnx as eo
from edgesparse.formats import onnx_sparse
from edgesparse.ir import LinearIR, from_dense
from edgesparse.runtime import Model, OnnxModel, loads

N_FEATURES = 2**18


def csr_checked(ir: LinearIR, **options) -> bytes:
    """Encode the CSR-input graph and check it as a third-party tool would."""
    data = eo.encode(ir, input="csr", **options)
    model = onnx.load_model_from_string(data)
    onnx.checker.check_model(model, full_check=True)
    onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    assert {o.domain for o in model.opset_import} == {""}
    assert {n.domain for n in model.graph.node} == {""}
    assert [i.name for i in model.graph.input] == list(onnx_sparse.INPUTS)
    return data


def hashed_docs(n_docs: int, seed: int) -> tuple[sp.csr_matrix, np.ndarray]:
    """Synthetic text hashed to 2^18 columns: 5 topics, ~20 tokens a document."""
    from sklearn.feature_extraction import FeatureHasher

    rng = np.random.default_rng(seed)
    vocab, n_classes = 5000, 5
    topics = [np.random.default_rng(c).choice(vocab, 100, replace=False) for c in range(n_classes)]
    y = rng.integers(0, n_classes, n_docs)
    docs = []
    for c in y:
        words = np.concatenate([rng.integers(0, vocab, 14), rng.choice(topics[c], 6)])
        docs.append([f"w{i}" for i in words])
    hasher = FeatureHasher(n_features=N_FEATURES, input_type="string", alternate_sign=False)
    return hasher.transform(docs).tocsr(), y


@pytest.fixture(scope="module")
def text():
    """A hashed-text SGD classifier (log loss: it has predict_proba), its held-out CSR rows,
    its int8 IR (the default compress) and the exact one."""
    from sklearn.linear_model import SGDClassifier

    X, y = hashed_docs(1500, 0)
    X_test, _ = hashed_docs(300, 1)
    est = SGDClassifier(
        loss="log_loss", penalty="elasticnet", alpha=1e-4, l1_ratio=0.5, max_iter=15, tol=None,
        random_state=0,
    ).fit(X, y)  # fmt: skip
    return est, X_test, edgesparse.compress(est), edgesparse.compress(est, quantize="none")


@pytest.fixture(scope="module")
def pair(text):
    """The numpy runtime and the CSR-input ONNX model of the int8 IR."""
    ir = text[2]
    return Model(ir), loads(csr_checked(ir))


def assert_same(onnx_model: OnnxModel, numpy_model: Model, X) -> None:
    """Labels identical, scores and probabilities equal to float32 rounding."""
    np.testing.assert_array_equal(onnx_model.predict(X), numpy_model.predict(X))
    np.testing.assert_allclose(
        onnx_model.decision_function(X), numpy_model.decision_function(X), rtol=1e-5, atol=1e-5
    )
    if numpy_model.ir.has_proba:
        np.testing.assert_allclose(
            onnx_model.predict_proba(X), numpy_model.predict_proba(X), rtol=1e-5, atol=1e-6
        )


# -- against the oracles -----------------------------------------------------------------------
def test_exact_weights_match_sklearn(text):
    est, X, _, exact = text
    m = loads(csr_checked(exact))
    assert m.n_features_in_ == N_FEATURES and m.meta["input"] == "csr"
    np.testing.assert_allclose(
        m.decision_function(X), est.decision_function(X), rtol=1e-5, atol=1e-5
    )
    np.testing.assert_allclose(m.predict_proba(X), est.predict_proba(X), rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(m.predict(X), est.predict(X))


def test_int8_matches_the_numpy_runtime_and_mostly_sklearn(text, pair):
    est, X, ir, _ = text
    numpy_model, onnx_model = pair
    assert ir.column_scaling == "pow2"  # the column exponents go through the graph too
    assert_same(onnx_model, numpy_model, X)
    assert np.mean(onnx_model.predict(X) == est.predict(X)) > 0.95


@pytest.mark.parametrize("quantize", ["float32", "none"])
def test_float_weights(text, quantize):
    _, X, _, _ = text
    ir = edgesparse.compress(text[0], quantize=quantize)
    assert_same(loads(csr_checked(ir)), Model(ir), X)


def test_sparse_weight_storage_runs_the_same(text, pair):
    _, X, ir, _ = text
    m = loads(csr_checked(ir, sparse=True))
    np.testing.assert_array_equal(m.decision_function(X), pair[1].decision_function(X))


HEADS = {
    "softmax": ("softmax", 4),
    "logistic-ovr": ("logistic", 4),
    "logistic-binary": ("logistic", 1),
    "modified_huber": ("modified_huber", 3),
    "hard-binary": ("hard", 1),
    "regressor": ("identity", 2),
    "regressor-1d": ("identity", 1),
}


def small_wide_ir(head: str, n_out: int, *, seed: int = 0, int16_row: bool = False) -> LinearIR:
    """A 2^17-feature int8 model with 400 random weights per output."""
    rng = np.random.default_rng(seed)
    n_features = 2**17
    w = np.zeros((n_out, n_features))
    for row in w:
        row[rng.choice(n_features, 400, replace=False)] = rng.integers(-127, 128, 400)
    is_clf = head != "identity"
    classes = (np.arange(max(2, n_out)) * 3 + 1) if is_clf else None
    bias = rng.standard_normal(n_out)
    ir = from_dense(w, bias=bias, head=head, classes=classes, squeeze=n_out == 1)
    dtype = np.int16 if int16_row else np.int8
    values = ir.values.astype(dtype)
    if int16_row:
        values[: ir.indptr[1]] *= 200  # row 0 needs 16 bits
    scales = np.full(n_out, 0.01, dtype=np.float32)
    return ir.replace(values=values, scales=scales)


@pytest.mark.parametrize("name", list(HEADS))
def test_heads_match_the_numpy_runtime(name):
    head, n_out = HEADS[name]
    ir = small_wide_ir(head, n_out)
    X = sp.random(40, ir.n_features, density=0.001, format="csr", random_state=1) * 3
    assert_same(loads(csr_checked(ir)), Model(ir), X)


def test_int16_rows_match_the_numpy_runtime():
    ir = small_wide_ir("softmax", 3, int16_row=True)
    assert ir.wide_rows.tolist() == [True, False, False]
    X = sp.random(30, ir.n_features, density=0.002, format="csr", random_state=2)
    assert_same(loads(csr_checked(ir)), Model(ir), X)


def test_model_without_weights_predicts_the_bias():
    ir = from_dense(np.zeros((3, 2**16)), bias=[0.5, -1.0, 2.0], head="softmax", classes=[7, 8, 9])
    m = loads(csr_checked(ir))
    X = sp.random(5, 2**16, density=0.01, format="csr", random_state=3)
    np.testing.assert_array_equal(m.decision_function(X), np.tile([0.5, -1.0, 2.0], (5, 1)))
    assert m.predict(X).tolist() == [9] * 5


# -- input shapes: empty rows, nothing at all, one row, messy CSR ------------------------------
def test_empty_rows_get_the_bias(text, pair):
    _, X, _, _ = text
    numpy_model, onnx_model = pair
    rows = X[:6].tolil()
    rows[0] = 0  # first, middle and last rows empty
    rows[3] = 0
    rows[5] = 0
    X6 = rows.tocsr()
    X6.eliminate_zeros()
    assert np.diff(X6.indptr).tolist().count(0) == 3
    assert_same(onnx_model, numpy_model, X6)
    np.testing.assert_allclose(
        onnx_model.decision_function(X6)[[0, 3, 5]], np.tile(numpy_model.ir.bias, (3, 1)), rtol=1e-6
    )


def test_batch_without_nonzeros(pair):
    numpy_model, onnx_model = pair
    for n in (1, 7):
        X0 = sp.csr_matrix((n, N_FEATURES))
        assert X0.nnz == 0
        assert_same(onnx_model, numpy_model, X0)


def test_batch_of_one(text, pair):
    _, X, _, _ = text
    numpy_model, onnx_model = pair
    for i in (0, 17):
        assert_same(onnx_model, numpy_model, X[i])
        assert onnx_model.decision_function(X[i]).shape == (1, 5)


def test_unsorted_and_duplicate_indices_are_summed_as_sklearn_does(text):
    est, X, _, exact = text
    m = loads(csr_checked(exact))
    Xc = X[:20].tocsr()
    # Reverse each row's entries and split every value into two equal duplicates.
    rows = np.repeat(np.arange(20), np.diff(Xc.indptr))
    order = np.lexsort((-Xc.indices, rows))
    data = np.repeat(Xc.data[order] / 2, 2)
    indices = np.repeat(Xc.indices[order], 2)
    messy = sp.csr_matrix((data, indices, Xc.indptr * 2), shape=Xc.shape)
    assert not messy.has_sorted_indices and not messy.has_canonical_format
    ref = est.decision_function(messy)
    np.testing.assert_allclose(ref, est.decision_function(Xc), rtol=1e-9)  # sklearn sums them
    np.testing.assert_allclose(m.decision_function(messy), ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(m.predict(messy), est.predict(Xc))


def test_dense_and_duck_typed_inputs_equal_scipy_csr(text, pair):
    _, X, _, _ = text
    numpy_model, onnx_model = pair
    Xs = X[:12]
    ref = onnx_model.decision_function(Xs)
    parts = CSRArrays(data=Xs.data, indices=Xs.indices, indptr=Xs.indptr, shape=Xs.shape)
    np.testing.assert_array_equal(onnx_model.decision_function(parts), ref)
    np.testing.assert_array_equal(onnx_model.decision_function(Xs.astype(np.float32)), ref)
    np.testing.assert_array_equal(onnx_model.decision_function(sp.csc_matrix(Xs)), ref)
    dense = Xs.toarray()
    np.testing.assert_allclose(onnx_model.decision_function(dense), ref, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(
        onnx_model.predict(dense.astype(np.float32)), numpy_model.predict(Xs)
    )


def test_runs_are_bounded_and_the_results_the_same(text, pair, monkeypatch):
    import edgesparse.runtime.onnx_model as om

    _, X, _, _ = text
    onnx_model = pair[1]
    ref, proba = onnx_model.decision_function(X), onnx_model.predict_proba(X)
    monkeypatch.setattr(om, "_CSR_CHUNK_CELLS", 5 * 50)  # ~50 nonzeros a run: ~3 rows
    # Each row's sum is the same whatever the run; the softmax may round by an ulp.
    np.testing.assert_array_equal(onnx_model.decision_function(X), ref)
    np.testing.assert_allclose(onnx_model.predict_proba(X), proba, rtol=1e-6, atol=1e-7)
    dense = X[:9].toarray()
    monkeypatch.setattr(om, "_CSR_CHUNK_CELLS", 2 * N_FEATURES)  # dense: 2 rows at a time
    np.testing.assert_array_equal(onnx_model.decision_function(dense), ref[:9])


# -- errors: the numpy runtime's ---------------------------------------------------------------
def bad_csr(X, **change) -> CSRArrays:
    parts = {"data": X.data.copy(), "indices": X.indices.copy(), "indptr": X.indptr.copy()}
    parts.update(change)
    return CSRArrays(shape=change.pop("shape", X.shape), **parts)


BAD = {
    "index-too-large": lambda X: bad_csr(X, indices=np.where(X.indices == X.indices[0], N_FEATURES, X.indices)),  # noqa: E501
    "negative-index": lambda X: bad_csr(X, indices=-X.indices - 1),
    "nan-value": lambda X: bad_csr(X, data=np.where(np.arange(X.nnz) == 3, np.nan, X.data)),
    "inf-value": lambda X: bad_csr(X, data=np.where(np.arange(X.nnz) == 0, -np.inf, X.data)),
    "complex": lambda X: bad_csr(X, data=X.data.astype(np.complex128)),
    "narrow": lambda X: X[:, :1000],
    "bad-indptr": lambda X: bad_csr(X, indptr=X.indptr[::-1].copy()),
    "short-indptr": lambda X: bad_csr(X, indptr=X.indptr[:-1].copy()),
    "float-indices": lambda X: bad_csr(X, indices=X.indices.astype(np.float64)),
    "no-rows": lambda X: X[:0],
    "dense-nan": lambda X: np.where(X.toarray() > 0, np.nan, 0.0),
    "dense-narrow": lambda X: X[:, :10].toarray(),
    "dense-1d": lambda X: X[0].toarray()[0],
    "strings": lambda X: X.toarray().astype(str),
}  # fmt: skip


@pytest.mark.parametrize("bad", list(BAD))
def test_bad_inputs_raise_the_numpy_runtimes_errors(text, pair, bad):
    _, X, _, _ = text
    numpy_model, onnx_model = pair
    X_bad = BAD[bad](X[:4].tocsr())
    with pytest.raises(InputError) as expected:
        numpy_model.predict(X_bad)
    with pytest.raises(InputError) as got:
        onnx_model.predict(X_bad)
    assert str(got.value) == str(expected.value)


def test_out_of_range_nan_and_overflow_are_named(text, pair):
    _, X, _, _ = text
    onnx_model = pair[1]
    # The numpy runtime reports this one as a score overflow; the graph computes in float32,
    # so the value itself is refused, as the dense-input graph's wrapper does.
    with pytest.raises(InputError, match="contains a value too large for this model's float32"):
        onnx_model.predict(bad_csr(X[:4], data=np.full(X[:4].nnz, 1e300)))
    with pytest.raises(InputError, match=r"column index is outside \[0, 262144\)"):
        onnx_model.predict(BAD["index-too-large"](X[:4]))
    with pytest.raises(InputError, match="NaN or infinity"):
        onnx_model.predict(BAD["nan-value"](X[:4]))


# -- options, metadata, the choice of input form -----------------------------------------------
@pytest.mark.parametrize("opset", range(onnx_sparse.CSR_MIN_OPSET, eo.MAX_OPSET + 1))
def test_every_opset_from_16_runs(pair, opset):
    ir = pair[0].ir
    X = sp.random(3, N_FEATURES, density=1e-4, format="csr", random_state=4)
    m = loads(csr_checked(ir, opset=opset))
    np.testing.assert_allclose(
        m.decision_function(X), pair[0].decision_function(X), rtol=1e-5, atol=1e-6
    )


def test_csr_input_refuses_old_opsets_and_matmulinteger(pair):
    ir = pair[0].ir
    with pytest.raises(InputError, match="needs opset 16 or later"):
        eo.encode(ir, input="csr", opset=15)
    with pytest.raises(InputError, match="dense-input graph only"):
        eo.encode(ir, input="csr", int8_form="matmulinteger")
    with pytest.raises(InputError, match="input must be one of dense, csr"):
        eo.encode(ir, input="coo")


def test_default_input_form():
    wide = small_wide_ir("hard", 1)  # 2^17 features
    narrow = from_dense(
        np.ones((2, eo.CSR_INPUT_FEATURES - 1)), bias=[0, 0], head="identity", squeeze=False
    )
    assert eo.default_input(wide) == "csr"
    assert eo.default_input(narrow) == "dense"
    assert eo.default_input(wide, opset=15) == "dense"
    assert eo.default_input(wide, int8_form="matmulinteger") == "dense"


def test_metadata_says_csr_and_the_feature_count(pair):
    ir = pair[0].ir
    model = onnx.load_model_from_string(eo.encode(ir, input="csr"))
    meta = json.loads({p.key: p.value for p in model.metadata_props}[eo.METADATA_KEY])
    assert meta["input"] == "csr" and meta["n_features"] == N_FEATURES
    dense_meta = json.loads({p.key: p.value for p in eo.build(ir).metadata_props}[eo.METADATA_KEY])
    assert "input" not in dense_meta and "n_features" not in dense_meta  # files as before


def test_metadata_that_contradicts_the_inputs_is_refused(pair):
    ir = pair[0].ir
    csr_model = eo.build(ir, input="csr")
    meta = json.loads({p.key: p.value for p in csr_model.metadata_props}[eo.METADATA_KEY])
    for bad in ({"input": "dense"}, {"n_features": 0}, {"n_features": "many"}):
        helper.set_model_props(csr_model, {eo.METADATA_KEY: json.dumps({**meta, **bad})})
        with pytest.raises(FormatError, match="input"):
            loads(csr_model.SerializeToString())
    dense_model = eo.build(ir)
    helper.set_model_props(dense_model, {eo.METADATA_KEY: json.dumps(meta)})
    with pytest.raises(FormatError, match="CSR-input graph must take indices, values, indptr"):
        loads(dense_model.SerializeToString())


def test_inspect_describes_the_csr_graph(pair, tmp_path):
    path = tmp_path / "m.onnx"
    eo.write(pair[0].ir, path, input="csr")
    info = eo.inspect_file(path)
    assert info["inputs"] == {
        "indices": "int64 [nnz]",
        "values": "float32 [nnz]",
        "indptr": "int64 [N+1]",
    }
    assert info["edgesparse"]["input"] == "csr"
    assert info["ops"]["ScatterND"] == 1 and info["domains"] == ["ai.onnx"]
    assert info["column_exponents"] is not None
    result = CliRunner().invoke(cli, ["inspect", str(path)])
    assert result.exit_code == 0, result.output
    assert "indptr" in result.output and "ScatterND" in result.output


def test_compress_picks_csr_for_wide_models_and_keeps_dense_available(text, tmp_path):
    import pickle

    est, X, _, _ = text
    src = tmp_path / "text.pkl"
    src.write_bytes(pickle.dumps(est))
    auto, dense = tmp_path / "auto.onnx", tmp_path / "dense.onnx"
    runner = CliRunner()
    result = runner.invoke(cli, ["compress", str(src), "-o", str(auto)])
    assert result.exit_code == 0, result.output
    assert "CSR input" in result.output
    result = runner.invoke(cli, ["compress", str(src), "-o", str(dense), "--onnx-input", "dense"])
    assert result.exit_code == 0, result.output
    m_auto, m_dense = edgesparse.load(auto), edgesparse.load(dense)
    assert m_auto.meta.get("input") == "csr" and m_dense.meta.get("input") is None
    rows = X[:20]
    np.testing.assert_array_equal(m_auto.predict(rows), m_dense.predict(rows))
    np.testing.assert_allclose(
        m_auto.decision_function(rows), m_dense.decision_function(rows), rtol=1e-5, atol=1e-6
    )
    result = runner.invoke(
        cli, ["compress", str(src), "-o", str(tmp_path / "x.esb"), "--onnx-input", "csr"]
    )
    assert result.exit_code != 0 and "apply to ONNX output only" in result.output


def test_compress_options_check_the_input_form(tmp_path):
    from edgesparse.options import CompressOptions

    with pytest.raises(InputError, match="onnx_input must be one of auto, dense, csr"):
        CompressOptions(source=tmp_path / "m.pkl", output=tmp_path / "m.onnx", onnx_input="coo")
    esb_out = CompressOptions(
        source=tmp_path / "m.pkl", output=tmp_path / "m.esb", onnx_input="csr"
    )
    with pytest.raises(InputError, match="apply to ONNX output only"):
        esb_out.check_output("esb")
