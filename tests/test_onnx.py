"""ONNX export: every graph passes onnx's full check and strict shape inference, runs in
onnxruntime, and matches scikit-learn (bundled models), the numpy runtime (heads) and
hand-computed values (the MatMulInteger arithmetic); the onnxruntime-backed model behaves like
the numpy one, errors included."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import scipy.sparse as sp
from onnx import TensorProto, helper

import edgesparse
from edgesparse.data import CSRArrays, load_dataset
from edgesparse.errors import FormatError, InputError
from edgesparse.formats import onnx as eo
from edgesparse.ir import LinearIR, from_dense
from edgesparse.loader import load_model
from edgesparse.passes.quantize import quantize_int8
from edgesparse.runtime import Model, OnnxModel, loads

MODELS = Path(__file__).resolve().parent.parent / "models"
BUNDLED = sorted(p.stem for p in MODELS.glob("*.pkl") if p.with_suffix(".test.npz").exists())
# (quantize, int8 form)
MODES = [("none", None), ("float32", None), ("int8", "dequantize"), ("int8", "matmulinteger")]


def checked(ir: LinearIR, **options) -> bytes:
    """Encode, then check the bytes the way a third-party tool would."""
    data = eo.encode(ir, **options)
    model = onnx.load_model_from_string(data)
    onnx.checker.check_model(model, full_check=True)
    onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    assert {o.domain for o in model.opset_import} == {""}
    assert {n.domain for n in model.graph.node} == {""}
    return data


def plain_session(data: bytes) -> ort.InferenceSession:
    """onnxruntime with its default settings (not the ones edgesparse.load picks)."""
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])


def load_bundled(name: str):
    # Through our loader: it reads numpy 2 pickles on numpy 1.x too (the lowest-versions run).
    est = load_model(MODELS / f"{name}.pkl")
    X = load_dataset(MODELS / f"{name}.test.npz", n_features=est.n_features_in_).X
    if not isinstance(X, np.ndarray):
        # The hashed-text model's rows are CSR; the graph takes dense rows: 64 of them
        # (64 x 2^18 float64 is 128 MiB).
        X = sp.csr_matrix((X.data, X.indices, X.indptr), shape=X.shape)[:64].toarray()
    return est, X


def assert_scores_close(got, ref, X, ir_exact: LinearIR) -> None:
    """1e-5 relative, plus an absolute term for values near 0.

    The graph computes in float32. Its rounding error is bounded by a few float32 epsilons
    (6e-8) times ``mag = sum_j |x_j w_j| + |b|``, the size of the terms that were summed, not
    times the result: a score that is a small difference of large terms cannot be matched
    relatively. 1e-6 * mag is ~16 epsilons of that bound.
    """
    mag = np.abs(X) @ np.abs(ir_exact.to_dense()).T + np.abs(ir_exact.bias)
    mag = mag.reshape(np.shape(ref))
    err = np.abs(np.asarray(got, dtype=np.float64) - ref)
    bound = 1e-5 * np.abs(ref) + 1e-6 * mag
    assert np.all(err <= bound), f"worst excess {np.max(err - bound):.3g}"


# -- bundled models: every quantize mode against scikit-learn ----------------------------------
@pytest.mark.parametrize(("quantize", "form"), MODES, ids=[f"{q}-{f}" for q, f in MODES])
@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_models_match_sklearn(name, quantize, form):
    est, X = load_bundled(name)
    exact = edgesparse.compress(est, quantize="none")
    ir = edgesparse.compress(est, quantize=quantize)
    data = checked(ir, **({"int8_form": form} if form else {}))
    m = loads(data)
    assert isinstance(m, OnnxModel)
    assert m.n_features_in_ == est.n_features_in_
    is_classifier = hasattr(est, "classes_")
    if is_classifier:
        np.testing.assert_array_equal(m.classes_, est.classes_)
        assert m.has_proba == hasattr(est, "predict_proba")
    if quantize in ("none", "float32"):
        if is_classifier:
            np.testing.assert_array_equal(m.predict(X), est.predict(X))
            assert_scores_close(m.decision_function(X), est.decision_function(X), X, exact)
            if m.has_proba:
                # Probabilities are in [0, 1]: float32 rounding is ~1e-7 absolute there.
                np.testing.assert_allclose(
                    m.predict_proba(X), est.predict_proba(X), rtol=1e-5, atol=1e-6
                )
        else:
            assert_scores_close(m.predict(X), est.predict(X), X, exact)
    elif is_classifier:
        assert np.mean(m.predict(X) == est.predict(X)) >= 0.995
        # A plain onnxruntime session (default graph optimizations) runs the same float32
        # weights: no DequantizeLinear for it to fuse into MatMulNBits (int8 activations).
        plain = plain_session(data).run(["label"], {"X": X.astype(np.float32)})[0]
        assert np.mean(plain == est.predict(X)) >= 0.995
    else:
        pred = m.predict(X)
        # R² of the int8 model stays within 0.01 of the original's (as the .esb check does).
        ref = est.predict(X)
        assert np.max(np.abs(pred - ref)) <= 0.01 * np.max(np.abs(ref))


# -- MatMulInteger arithmetic, by hand ---------------------------------------------------------
def test_matmulinteger_form_hand_computed():
    # w = s * q with q = [[127, -64, 0], [0, 10, -127]] (2 outputs x 3 features).
    q = np.array([[127, -64, 0], [0, 10, -127]], dtype=np.int8)
    scales = np.array([0.01, 0.5], dtype=np.float32)
    ir = LinearIR(
        indptr=[0, 2, 4],
        indices=[0, 1, 1, 2],
        values=np.array([127, -64, 10, -127], dtype=np.int8),
        scales=scales,
        n_features=3,
        bias=[1.0, -2.0],
        head="identity",
        squeeze=False,
    )
    X = np.array([[-1.0, 0.0, 2.0], [0.6, 1.2, -0.2]], dtype=np.float32)
    # DynamicQuantizeLinear on the whole batch: range [min(0, -1), max(0, 2)] = [-1, 2],
    # x_scale = 3/255, zero point round(1 / x_scale) = 85; x_q = round(x / x_scale) + 85
    # (no value lands on a rounding tie).
    x_scale = np.float32(3.0) / np.float32(255.0)
    zp = 85
    xq = np.clip(np.rint(X / x_scale) + zp, 0, 255)
    assert xq.tolist() == [[0.0, 85.0, 255.0], [136.0, 187.0, 68.0]]
    # MatMulInteger subtracts the input zero point: (x_q - 85) @ q.T
    acc = (xq - zp) @ q.T.astype(np.float64)
    assert acc.tolist() == [[-85 * 127, 170 * -127], [51 * 127 + 102 * -64, 102 * 10 + 17 * 127]]
    expected = x_scale * scales * acc + np.array([1.0, -2.0])
    got = plain_session(checked(ir, int8_form="matmulinteger")).run(None, {"X": X})[0]
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    # The same through the wrapper, and close to the exact float result.
    m = loads(checked(ir, int8_form="matmulinteger"))
    np.testing.assert_allclose(m.predict(X), expected, rtol=1e-6)
    np.testing.assert_allclose(m.predict(X), Model(ir).predict(X), atol=0.02 * 127 * 0.5)


def test_matmulinteger_all_zero_input_is_the_bias():
    ir = quantize_int8(from_dense(np.array([[1.0, -2.0]]), bias=[0.25], head="identity"))
    m = loads(checked(ir, int8_form="matmulinteger"))
    np.testing.assert_array_equal(m.predict(np.zeros((3, 2))), [0.25, 0.25, 0.25])


def test_matmulinteger_needs_int8_weights():
    ir = from_dense(np.eye(2), bias=[0.0, 0.0], head="identity", squeeze=False)
    with pytest.raises(InputError, match="needs int8 weights"):
        eo.encode(ir, int8_form="matmulinteger")
    with pytest.raises(InputError, match="int8 form must be one of"):
        eo.encode(quantize_int8(ir), int8_form="int4")


# -- heads against the numpy runtime and hand-computed values ----------------------------------
def binary(head: str, classes=("neg", "pos")) -> LinearIR:
    # score = 2*x0 - x1 + 0.5
    return from_dense(np.array([[2.0, -1.0]]), bias=[0.5], head=head, classes=classes)


def test_binary_logistic_string_labels_hand_computed():
    m = loads(checked(binary("logistic")))
    X = np.array([[0.0, 0.5], [-1.0, 0.0], [1.0, 0.0], [-30.0, 0.0]])  # 0, -1.5, 2.5, -59.5
    np.testing.assert_allclose(m.decision_function(X), [0.0, -1.5, 2.5, -59.5], rtol=1e-6)
    # A score of exactly 0 is the negative class, as in scikit-learn (scores > 0).
    assert m.predict(X).tolist() == ["neg", "neg", "pos", "neg"]
    assert m.predict(X).dtype == np.asarray(["neg", "pos"]).dtype
    p = 1 / (1 + np.exp(-np.array([0.0, -1.5, 2.5, -59.5])))
    expected = np.stack([1 - p, p], axis=1)
    # 1 - p comes from sigmoid(-s): no cancellation, so tiny p is relatively exact as well.
    np.testing.assert_allclose(m.predict_proba(X), expected, rtol=1e-6)


def test_binary_modified_huber_float_labels():
    m = loads(checked(binary("modified_huber", classes=np.array([-1.5, 2.5]))))
    X = np.array([[0.0, 0.0], [1.0, 0.0], [-2.0, 0.0]])  # scores 0.5, 2.5, -3.5
    np.testing.assert_allclose(m.predict_proba(X), [[0.25, 0.75], [0.0, 1.0], [1.0, 0.0]])
    assert m.predict(X).tolist() == [2.5, 2.5, -1.5]
    assert m.classes_.dtype == np.float64


def three_class(head: str) -> LinearIR:
    return from_dense(np.eye(3), bias=np.zeros(3), head=head, classes=np.array([10, 20, 30]))


@pytest.mark.parametrize("head", ["softmax", "logistic", "modified_huber", "hard"])
def test_multiclass_heads_match_numpy_runtime(head):
    ir = three_class(head)
    m, ref = loads(checked(ir)), Model(ir)
    X = np.array([[1.0, 2.0, 3.0], [5.0, 0.0, 0.0], [0.0, 1.0, -1.0], [-0.5, 0.3, 0.2]])
    assert m.predict(X).tolist() == ref.predict(X).tolist() == [30, 10, 20, 20]
    np.testing.assert_allclose(m.decision_function(X), ref.decision_function(X))
    if head == "hard":
        assert not m.has_proba
        with pytest.raises(AttributeError, match="no predict_proba"):
            m.predict_proba(X)
    else:
        np.testing.assert_allclose(m.predict_proba(X), ref.predict_proba(X), rtol=1e-6)


@pytest.mark.parametrize("head", ["logistic", "modified_huber"])
def test_one_vs_rest_all_zero_rows_are_uniform(head):
    # modified_huber: every score <= -1 gives p = 0; logistic: every sigmoid underflows.
    m = loads(checked(three_class(head)))
    p = m.predict_proba([[-1000.0, -2000.0, -1500.0], [0.0, 1.0, -3.0]])
    np.testing.assert_allclose(p[0], [1 / 3] * 3)
    if head == "modified_huber":
        np.testing.assert_allclose(p[1], np.array([0.5, 1.0, 0.0]) / 1.5, rtol=1e-6)


@pytest.mark.parametrize("int8", [False, True], ids=["float", "int8"])
def test_ovr_logistic_far_negative_rows_are_the_softmax_hand_computed(int8: bool) -> None:
    # Top score below -40: the softmax of the scores (scikit-learn's float64 normalised
    # sigmoids there; float32 sigmoids are 0 below about -104); every score below
    # -ln(DBL_MAX) ~ -709.78: uniform, as scikit-learn's all-zero sigmoids.
    ir = three_class("logistic")
    m = loads(checked(quantize_int8(ir) if int8 else ir))
    X = np.array([[-200.0, -201.0, -203.0], [-45.0, -60.0, -41.0], [-710.0, -711.0, -713.0]])
    e = np.exp(X[:2] - X[:2].max(axis=1, keepdims=True))
    expected = np.vstack([e / e.sum(axis=1, keepdims=True), [[1 / 3] * 3]])
    np.testing.assert_allclose(expected[0], [0.70538451, 0.25949646, 0.03511903], atol=1e-8)
    np.testing.assert_allclose(m.predict_proba(X), expected, rtol=1e-4, atol=1e-30)
    np.testing.assert_allclose(m.predict_proba(X), Model(ir).predict_proba(X), rtol=1e-4)


def test_softmax_does_not_overflow():
    m = loads(checked(three_class("softmax")))
    assert np.isfinite(m.predict_proba([[1000.0, -1000.0, 0.0]])).all()


def test_regressor_outputs_like_skl2onnx():
    one = from_dense(np.array([[1.0, 2.0]]), bias=[1.0], head="identity")
    data = checked(one)
    outs = {o.name: o.shape for o in plain_session(data).get_outputs()}
    assert outs == {"variable": ["N", 1]}  # [N, 1], as skl2onnx
    m = loads(data)
    assert m.predict([[1.0, 1.0], [0.0, 0.5]]).tolist() == [4.0, 2.0]  # squeezed, as sklearn
    with pytest.raises(AttributeError):
        _ = m.classes_
    with pytest.raises(AttributeError, match="regressor has no predict_proba"):
        m.predict_proba([[1.0, 1.0]])
    w = np.array([[1.0, 0.0], [0.0, -1.0]])
    multi = from_dense(w, bias=[0, 0], head="identity", squeeze=False)
    assert loads(checked(multi)).predict([[2.0, 3.0]]).tolist() == [[2.0, -3.0]]


def test_classifier_outputs_are_named_and_shaped():
    sess = plain_session(checked(three_class("softmax")))
    assert {o.name: o.shape for o in sess.get_outputs()} == {
        "label": ["N"],
        "probabilities": ["N", 3],
        "scores": ["N", 3],
    }
    assert [(i.name, i.type, i.shape) for i in sess.get_inputs()] == [
        ("X", "tensor(float)", ["N", 3])
    ]
    hard = plain_session(checked(binary("hard")))
    assert {o.name: o.shape for o in hard.get_outputs()} == {"label": ["N"], "scores": ["N", 1]}
    assert hard.get_outputs()[0].type == "tensor(string)"


# -- pruned models, sparse weights, opsets ----------------------------------------------------
def test_pruned_columns_are_gathered_not_multiplied():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(4, 200))
    w[:, 20:] = 0  # 180 of 200 input columns have no weight
    ir = quantize_int8(from_dense(w, bias=np.zeros(4), head="identity", squeeze=False))
    assert eo.gathers_columns(ir)
    data = checked(ir)
    info = eo.describe(data)
    assert info["ops"]["Gather"] == 1
    assert info["initializers"]["W"]["shape"] == [20, 4]
    assert info["initializers"]["used_columns"] == {"dtype": "int32", "shape": [20], "bytes": 80}
    X = rng.normal(size=(5, 200))
    np.testing.assert_allclose(loads(data).predict(X), Model(ir).predict(X), rtol=1e-5)
    # All columns used: no Gather at all.
    w = rng.normal(size=(4, 200))
    full = quantize_int8(from_dense(w, bias=np.zeros(4), head="identity", squeeze=False))
    assert not eo.gathers_columns(full)
    assert "Gather" not in eo.describe(checked(full))["ops"]


def test_one_unused_column_of_four_is_multiplied_by_zero_rather_than_gathered():
    w = np.array([[1.0, 0.0, 2.0, 3.0], [4.0, 0.0, -1.0, 1.0]])
    ir = from_dense(w, bias=[0.0, 0.0], head="identity", squeeze=False)
    assert not eo.gathers_columns(ir)  # saves 8 weight bytes, would cost 12 index bytes
    info = eo.describe(checked(ir))
    assert "Gather" not in info["ops"] and info["initializers"]["W"]["shape"] == [4, 2]


def test_model_without_weights_predicts_the_bias():
    ir = LinearIR(
        indptr=[0, 0, 0, 0],
        indices=np.array([], dtype=np.int32),
        values=np.array([], dtype=np.float32),
        n_features=50,
        bias=[1.0, -1.0, 2.0],
        head="hard",
        classes=[0, 1, 2],
    )
    m = loads(checked(ir))
    assert m.predict(np.ones((2, 50))).tolist() == [2, 2]
    np.testing.assert_array_equal(m.decision_function(np.ones((1, 50))), [[1.0, -1.0, 2.0]])


@pytest.mark.parametrize("quantize", ["int8", "float32"])
def test_sparse_weights_run_and_match_dense(quantize):
    rng = np.random.default_rng(1)
    # 20 outputs, 5% dense: the used columns' block is still ~5% dense, so COO (8-byte
    # indices) beats the dense block.
    w = rng.normal(size=(20, 300)) * (rng.random((20, 300)) < 0.05)
    classes = [f"c{i}" for i in range(20)]
    ir = edgesparse.compress(
        from_dense(w, bias=np.linspace(0, 1, 20), head="softmax", classes=classes),
        quantize=quantize,
    )
    dense, sparse = checked(ir), checked(ir, sparse=True)
    assert len(sparse) < len(dense)
    info = eo.describe(sparse)
    (name, tensor), *_ = info["sparse_tensors"].items()
    assert name == "W" and tensor["nnz"] == ir.nnz and tensor["index_dtype"] == "int64"
    assert "W" not in info["initializers"]
    X = rng.normal(size=(20, 300))
    a, b = loads(dense), loads(sparse)
    np.testing.assert_array_equal(a.predict(X), b.predict(X))
    np.testing.assert_allclose(a.predict_proba(X), b.predict_proba(X), rtol=1e-6)
    # onnxruntime with default settings loads it too (it densifies the sparse tensor).
    plain = plain_session(sparse).run(["label"], {"X": X.astype(np.float32)})[0]
    assert plain.tolist() == a.predict(X).tolist()


@pytest.mark.parametrize("opset", range(eo.MIN_OPSET, eo.MAX_OPSET + 1))
def test_every_supported_opset_checks_and_runs(opset):
    rng = np.random.default_rng(opset)
    ir = quantize_int8(three_class("logistic").replace(values=rng.normal(size=3) + 3))
    X = rng.normal(size=(4, 3))
    for form in eo.INT8_FORMS:
        data = checked(ir, opset=opset, int8_form=form)
        model = onnx.load_model_from_string(data)
        assert [(o.domain, o.version) for o in model.opset_import] == [("", opset)]
        assert model.ir_version == helper.find_min_ir_version_for([helper.make_opsetid("", opset)])
        m = loads(data)
        assert m.predict(X).tolist() == Model(ir).predict(X).tolist()


@pytest.mark.parametrize("bad", [12, 22, 99, "17", 17.0, True])
def test_unsupported_opsets_are_refused(bad):
    with pytest.raises(InputError, match="opset"):
        eo.encode(three_class("hard"), opset=bad)


def test_default_opset_is_17_and_ir_version_8():
    model = onnx.load_model_from_string(checked(three_class("hard")))
    assert [(o.domain, o.version) for o in model.opset_import] == [("", 17)]
    assert model.ir_version == 8
    assert model.producer_name == "edgesparse"


# -- the onnxruntime-backed model ---------------------------------------------------------------
@pytest.fixture(scope="module")
def digits():
    est, X = load_bundled("digits_pipeline")
    ir = edgesparse.compress(est, quantize="int8")
    return ir, X, Model(ir), loads(eo.encode(ir))


BAD_INPUTS = {
    "narrow": lambda X: X[:, :3],
    "nan": lambda X: np.where(np.arange(X.shape[1]) == 2, np.nan, X),
    "inf": lambda X: np.where(np.arange(X.shape[1]) == 2, np.inf, X),
    "1-d": lambda X: X[0],
    "3-d": lambda X: X[None],
    "empty": lambda X: X[:0],
    "strings": lambda X: X.astype(str),
    "ragged": lambda X: [[1.0, 2.0], [3.0]],
    "csr-narrow": lambda X: sp.csr_matrix(X[:, :5]),
    "csr-nan": lambda X: sp.csr_matrix(np.where(X > 0, np.nan, 0.0)),
}


@pytest.mark.parametrize("bad", list(BAD_INPUTS))
def test_bad_input_errors_are_the_numpy_runtimes(digits, bad):
    _, X, numpy_model, onnx_model = digits
    X_bad = BAD_INPUTS[bad](X[:4])
    with pytest.raises(InputError) as expected:
        numpy_model.predict(X_bad)
    with pytest.raises(InputError) as got:
        onnx_model.predict(X_bad)
    assert str(got.value) == str(expected.value)


def test_csr_input_is_densified_in_chunks(digits, monkeypatch):
    import edgesparse.runtime.onnx_model as om

    _, X, _, m = digits
    expected = m.predict_proba(X)
    csr = sp.csr_matrix(X)
    np.testing.assert_array_equal(m.predict_proba(csr), expected)
    np.testing.assert_array_equal(m.predict(sp.csc_matrix(X)), m.predict(X))
    parts = CSRArrays(data=csr.data, indices=csr.indices, indptr=csr.indptr, shape=csr.shape)
    monkeypatch.setattr(om, "_DENSE_CHUNK_CELLS", 64 * 7)  # 7 rows a chunk, uneven tail
    np.testing.assert_array_equal(m.predict_proba(parts), expected)


def test_load_dispatches_on_the_bytes(digits, tmp_path):
    from edgesparse.formats import esb

    ir, X, _, _ = digits
    (tmp_path / "a.onnx").write_bytes(eo.encode(ir))
    (tmp_path / "b.bin").write_bytes(eo.encode(ir))
    (tmp_path / "c.model").write_bytes(esb.encode(ir))
    assert isinstance(edgesparse.load(tmp_path / "a.onnx"), OnnxModel)
    assert isinstance(edgesparse.load(tmp_path / "b.bin", threads=2), OnnxModel)
    assert isinstance(edgesparse.load(tmp_path / "c.model", threads=2), Model)
    m = edgesparse.load(tmp_path / "a.onnx")
    assert m.predict(X).tolist() == Model(ir).predict(X).tolist()
    assert "OnnxModel classifier head=softmax" in repr(m)


@pytest.mark.parametrize("threads", [0, -1, 1.5, True])
def test_bad_thread_counts(digits, threads):
    ir = digits[0]
    with pytest.raises(InputError, match="threads must be an integer >= 1"):
        loads(eo.encode(ir), threads=threads)


def test_foreign_and_corrupt_onnx_files(digits, tmp_path):
    # A valid ONNX model from another producer: onnxruntime loads it, the metadata is missing.
    node = helper.make_node("Identity", ["X"], ["Y"])
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", 3])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["N", 3])],
    )
    foreign = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    foreign.ir_version = 8
    (tmp_path / "foreign.onnx").write_bytes(foreign.SerializeToString())
    with pytest.raises(FormatError, match="not an ONNX model written by edgesparse"):
        edgesparse.load(tmp_path / "foreign.onnx")
    # inspect describes any valid ONNX model.
    info = eo.inspect_file(tmp_path / "foreign.onnx")
    assert info["ops"] == {"Identity": 1} and info["edgesparse"] is None
    good = eo.encode(digits[0])
    for i, bad in enumerate([good[: len(good) // 2], b"garbage" * 20, b""]):
        path = tmp_path / f"bad{i}.onnx"
        path.write_bytes(bad)
        with pytest.raises(FormatError, match=f"bad{i}.onnx: not a .esb blob") as exc:
            edgesparse.load(path)
        assert "\n" not in str(exc.value)
        with pytest.raises(FormatError, match="not a valid ONNX model") as exc:
            eo.inspect_file(path)
        assert "\n" not in str(exc.value)


def test_metadata_is_what_onnxruntime_reads(digits):
    import json

    ir = digits[0]
    meta = plain_session(eo.encode(ir)).get_modelmeta().custom_metadata_map
    assert json.loads(meta[eo.METADATA_KEY]) == {
        "version": 1,
        "head": "softmax",
        "classes": list(range(10)),
        "weights": "int8-per-row dequantize",
        "columns": "pow2",  # compress chose column exponents for this model
    }
    # The rest comes from the graph's signature.
    m = loads(eo.encode(ir))
    assert (m.n_features_in_, m.n_outputs_, m.has_proba) == (64, 10, True)
    assert m.classes_.dtype == np.int64


def test_metadata_that_contradicts_the_graph_is_refused(digits):
    model = eo.build(digits[0])
    helper.set_model_props(
        model, {eo.METADATA_KEY: '{"version":1,"head":"softmax","classes":[1,2]}'}
    )
    with pytest.raises(FormatError, match="classes in the metadata do not match"):
        loads(model.SerializeToString())
    helper.set_model_props(model, {eo.METADATA_KEY: '{"version":1,"head":"identity"}'})
    with pytest.raises(FormatError, match="lacks the score output of a 'identity' model"):
        loads(model.SerializeToString())
    helper.set_model_props(model, {eo.METADATA_KEY: "[1, 2"})
    with pytest.raises(FormatError, match="invalid 'edgesparse' metadata"):
        loads(model.SerializeToString())


def test_runtime_imports_only_numpy_and_onnxruntime(digits, tmp_path):
    """Devices have numpy and onnxruntime, not the onnx package."""
    ir, X, _, _ = digits
    path = tmp_path / "m.onnx"
    eo.write(ir, path)
    np.save(tmp_path / "X.npy", X[:5])
    expected = Model(ir).predict(X[:5])
    code = textwrap.dedent(
        f"""
        import sys
        BLOCKED = ("scipy", "sklearn", "onnx", "click", "joblib", "skops")

        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in BLOCKED:
                    raise ImportError(f"{{name}} is blocked: the runtime must not need it")

        sys.meta_path.insert(0, Block())
        import numpy as np
        import edgesparse
        m = edgesparse.load({str(path)!r})
        print(",".join(str(v) for v in m.predict(np.load({str(tmp_path / "X.npy")!r}))))
        loaded = sorted({{n.split(".")[0] for n in sys.modules}} & set(BLOCKED))
        assert not loaded, loaded
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ",".join(str(v) for v in expected)


def test_writes_are_atomic(digits, tmp_path, monkeypatch):
    import edgesparse.fileio as fileio

    ir = digits[0]
    path = tmp_path / "m.onnx"
    assert eo.write(ir, path) == path.stat().st_size
    before = path.read_bytes()

    def boom(*_a, **_k):
        raise KeyboardInterrupt

    monkeypatch.setattr(fileio.os, "replace", boom)
    with pytest.raises(KeyboardInterrupt):
        eo.write(ir.replace(bias=ir.bias + 1), path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]


def test_onnx_model_is_public_and_import_stays_numpy_only() -> None:
    # The device-side import must not pull onnxruntime in; a fresh interpreter shows it.
    import subprocess
    import sys

    code = (
        "import sys, edgesparse; "
        "assert edgesparse.OnnxModel is edgesparse.runtime.OnnxModel; "
        "print('onnxruntime' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
