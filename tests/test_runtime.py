"""The numpy runtime: heads against hand-computed values, kernels against a dense oracle,
input validation messages, and the numpy-only import guarantee."""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import scipy.sparse as sp

from edgesparse.data import CSRArrays
from edgesparse.errors import InputError
from edgesparse.ir import LinearIR, from_dense
from edgesparse.passes.quantize import quantize_int8
from edgesparse.runtime import Model


def binary(head: str, classes=("neg", "pos")) -> Model:
    # score = 2*x0 - x1 + 0.5
    return Model(from_dense(np.array([[2.0, -1.0]]), bias=[0.5], head=head, classes=classes))


def test_binary_logistic_hand_computed():
    m = binary("logistic")
    X = np.array([[0.0, 0.5], [-1.0, 0.0]])  # scores 0.0 and -1.5
    np.testing.assert_allclose(m.decision_function(X), [0.0, -1.5])
    p = 1 / (1 + np.exp(1.5))
    np.testing.assert_allclose(m.predict_proba(X), [[0.5, 0.5], [1 - p, p]])
    # A score of exactly 0 is the negative class, as in scikit-learn (scores > 0).
    assert m.predict(X).tolist() == ["neg", "neg"]
    assert m.predict([[1.0, 0.0]]).tolist() == ["pos"]


def test_binary_modified_huber_hand_computed():
    m = binary("modified_huber", classes=(3, 7))
    X = np.array([[0.0, 0.0], [1.0, 0.0], [-2.0, 0.0]])  # scores 0.5, 2.5, -3.5
    np.testing.assert_allclose(m.predict_proba(X), [[0.25, 0.75], [0.0, 1.0], [1.0, 0.0]])
    assert m.predict(X).tolist() == [7, 7, 3]


def three_class(head: str) -> Model:
    return Model(from_dense(np.eye(3), bias=np.zeros(3), head=head, classes=np.array([10, 20, 30])))


def test_softmax_hand_computed():
    m = three_class("softmax")
    p = m.predict_proba([[1.0, 2.0, 3.0]])
    e = np.exp([1.0, 2.0, 3.0])
    np.testing.assert_allclose(p, [e / e.sum()])
    assert m.predict([[1.0, 2.0, 3.0], [5.0, 0.0, 0.0]]).tolist() == [30, 10]
    # Large scores must not overflow.
    assert np.isfinite(m.predict_proba([[1000.0, -1000.0, 0.0]])).all()


def test_ovr_logistic_normalises_rows():
    m = three_class("logistic")
    s = 1 / (1 + np.exp(-np.array([0.0, 1.0, -1.0])))
    np.testing.assert_allclose(m.predict_proba([[0.0, 1.0, -1.0]]), [s / s.sum()])


def _softmax_by_hand(row: list[float]) -> list[float]:
    e = [math.exp(v - max(row)) for v in row]
    return [v / sum(e) for v in e]


# Rows whose top score is below -40 (float32 sigmoids are 0 below about -104): the softmax of
# the scores, which equals scikit-learn's float64 normalised sigmoids there; uniform once
# every score is below -ln(DBL_MAX) ~ -709.78, where scikit-learn's sigmoids are all 0 too.
FAR_NEGATIVE_OVR = [
    ([-200.0, -201.0, -203.0], _softmax_by_hand([-200.0, -201.0, -203.0])),
    ([-701.0, -700.0, -703.0], _softmax_by_hand([-701.0, -700.0, -703.0])),
    ([-45.0, -60.0, -41.0], _softmax_by_hand([-45.0, -60.0, -41.0])),
    ([-710.0, -711.0, -713.0], [1 / 3] * 3),
]


@pytest.mark.parametrize("weights", ["float64", "float32", "int8"])
def test_ovr_logistic_far_negative_rows_are_the_softmax_hand_computed(weights: str) -> None:
    ir = from_dense(np.eye(3), bias=np.zeros(3), head="logistic", classes=np.array([10, 20, 30]))
    if weights == "float32":
        ir = ir.replace(values=ir.values.astype(np.float32))
    elif weights == "int8":
        ir = quantize_int8(ir)
    m = Model(ir)
    X = np.array([row for row, _ in FAR_NEGATIVE_OVR])
    expected = np.array([p for _, p in FAR_NEGATIVE_OVR])
    # 1 / (1 + e^-1 + e^-3), e^-1 / (...), e^-3 / (...)
    assert expected[0] == pytest.approx([0.70538451, 0.25949646, 0.03511903], abs=1e-8)
    rtol = 1e-4 if weights == "int8" else 1e-6  # int8: scores off by ~1e-7 relative
    np.testing.assert_allclose(m.predict_proba(X), expected, rtol=rtol, atol=1e-30)
    for row, p in FAR_NEGATIVE_OVR:  # the one-row path
        np.testing.assert_allclose(m.predict_proba([row]), [p], rtol=rtol, atol=1e-30)


def test_multiclass_modified_huber_all_zero_row_is_uniform():
    m = three_class("modified_huber")
    p = m.predict_proba([[-5.0, -2.0, -1.0], [0.0, 1.0, -3.0]])
    np.testing.assert_allclose(p[0], [1 / 3] * 3)
    np.testing.assert_allclose(p[1], [0.5, 1.0, 0.0] / np.float64(1.5))


def test_hard_and_regressor_have_no_proba():
    with pytest.raises(AttributeError, match="no predict_proba"):
        three_class("hard").predict_proba([[0.0, 0.0, 0.0]])
    reg = Model(from_dense(np.array([[1.0, 2.0]]), bias=[1.0], head="identity"))
    assert reg.predict([[1.0, 1.0]]).tolist() == [4.0]  # squeeze -> 1-D
    with pytest.raises(AttributeError):
        reg.predict_proba([[1.0, 1.0]])
    with pytest.raises(AttributeError):
        _ = reg.classes_


def test_multi_output_regressor_is_2d():
    m = Model(
        from_dense(np.array([[1.0, 0.0], [0.0, 2.0]]), bias=[0, 1], head="identity", squeeze=False)
    )
    np.testing.assert_array_equal(m.predict([[3.0, 4.0]]), [[3.0, 9.0]])


def random_ir(n_out: int, n_feat: int, density: float, seed: int = 0) -> LinearIR:
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(n_out, n_feat)) * (rng.random((n_out, n_feat)) < density)
    classes = np.arange(n_out) if n_out > 1 else np.array([0, 1])
    return from_dense(w, bias=rng.normal(size=n_out), head="hard", classes=classes)


@pytest.mark.parametrize(
    ("n_out", "n_feat", "density"),
    [
        (1, 5, 1.0),  # tiny, every column used
        (10, 64, 0.5),  # dense block with unused columns
        (20, 200000, 0.001),  # big and thin: the sparse-column kernel
    ],
)
def test_kernels_match_dense_oracle(n_out, n_feat, density):
    ir = random_ir(n_out, n_feat, density)
    m = Model(ir)
    W = ir.to_dense()
    X = sp.random(50, n_feat, density=min(1.0, 30 / n_feat), format="csr", random_state=1)
    keep = np.ones(50)
    keep[3] = 0  # an empty row
    X = (sp.diags(keep) @ X).tocsr()
    X.eliminate_zeros()
    expected = X @ W.T + ir.bias
    scores = m.decision_function(X).reshape(expected.shape)
    np.testing.assert_allclose(scores, expected, rtol=1e-12, atol=1e-12)
    for variant in (X.toarray(), X.toarray().astype(np.float32), X.tocsc()):
        got = m.decision_function(variant).reshape(expected.shape)
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
    own = CSRArrays(data=X.data, indices=X.indices, indptr=X.indptr, shape=X.shape)
    np.testing.assert_allclose(
        m.decision_function(own).reshape(expected.shape), expected, rtol=1e-12
    )
    assert (m.predict(X) == m.predict(X.toarray())).all()


def test_int8_model_computes_in_float32_with_dequantized_weights():
    ir = quantize_int8(random_ir(4, 30, 0.5))
    m = Model(ir)
    X = np.random.default_rng(2).normal(size=(7, 30))
    out = m.decision_function(X)
    assert out.dtype == np.float32
    expected = X @ ir.to_dense().T + ir.bias
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("X", "message"),
    [
        (np.zeros((2, 10)), "X has 10 features, but the model expects 64 features as input"),
        (np.zeros(64), "Expected a 2-D array, got a 1-D array instead"),
        (np.zeros((0, 64)), "X has 0 samples"),
        (np.full((1, 64), np.nan), "Input X contains NaN or infinity"),
        (np.full((1, 64), "a"), "X must be numeric, got dtype <U1"),
        (sp.csr_matrix((1, 63)), "X has 63 features, but the model expects 64"),
        (sp.csr_matrix(np.full((1, 64), np.inf)), "Input X contains NaN or infinity"),
    ],
)
def test_input_validation_messages(X, message):
    m = Model(random_ir(10, 64, 0.5))
    with pytest.raises(InputError) as err:
        m.predict(X)
    assert str(err.value).startswith(message)


def test_integer_and_list_input():
    m = Model(random_ir(3, 4, 1.0))
    X = [[1, 2, 3, 4], [0, 0, 1, 0]]
    np.testing.assert_allclose(
        m.decision_function(X), m.decision_function(np.array(X, dtype=float))
    )


def test_runtime_imports_only_numpy(tmp_path):
    """A device has numpy only: loading a blob and predicting must not import anything else."""
    from edgesparse.formats import esb

    ir = quantize_int8(random_ir(3, 8, 0.7))
    path = tmp_path / "m.esb"
    esb.write(ir, path)
    expected = Model(ir).predict(np.ones((2, 8)))
    code = textwrap.dedent(
        f"""
        import sys
        BLOCKED = ("scipy", "sklearn", "onnx", "onnxruntime", "click", "joblib", "skops")

        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in BLOCKED:
                    raise ImportError(f"{{name}} is blocked: the runtime must not need it")

        sys.meta_path.insert(0, Block())
        import numpy as np
        import edgesparse
        m = edgesparse.load({str(path)!r})
        print(",".join(str(v) for v in m.predict(np.ones((2, 8)))))
        loaded = sorted({{n.split(".")[0] for n in sys.modules}} & set(BLOCKED))
        assert not loaded, loaded
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ",".join(str(v) for v in expected)


def test_ovr_logistic_all_underflow_row_is_uniform():
    # Every sigmoid underflows to 0; scikit-learn's _predict_proba_lr returns 1/n_classes.
    m = three_class("logistic")
    np.testing.assert_allclose(m.predict_proba([[-1000.0, -2000.0, -1500.0]]), [[1 / 3] * 3])


def test_sparse_kernel_chunks_match_dense_oracle(monkeypatch):
    # Force many chunks (and chunk boundaries inside rows) in the sparse-column kernel.
    from edgesparse.runtime import csr_input

    monkeypatch.setattr(csr_input, "_GATHER_CHUNK", 7)
    ir = random_ir(20, 200000, 0.001, seed=3)
    m = Model(ir)
    assert not m._dense
    X = sp.random(300, 200000, density=0.0002, format="csr", random_state=4)
    expected = X @ ir.to_dense().T + ir.bias
    np.testing.assert_allclose(m.decision_function(X), expected, rtol=1e-12, atol=1e-12)
    empty = sp.csr_matrix((2, 200000))
    np.testing.assert_allclose(m.decision_function(empty), np.tile(ir.bias, (2, 1)))
