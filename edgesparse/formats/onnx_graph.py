"""Building blocks of edgesparse's ONNX graphs: a node/initializer collector, the weights
(int8, int8/int16 rows, float) as constants onnxruntime folds at load, and the classifier
heads.

Shared by the dense-input graph (:mod:`edgesparse.formats.onnx`) and the CSR-input one
(:mod:`edgesparse.formats.onnx_sparse`); the module docstring of the first says why the
weights are ``Cast -> Mul`` and not ``DequantizeLinear``, and what the heads compute.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgesparse.ir import LinearIR

__all__ = ["Graph", "classifier_head", "column_pow2", "matmulinteger_product", "real_weights"]


class Graph:
    """Collects nodes and initializers, giving every intermediate a unique short name."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        # Types of the outputs of non-default-domain ops, which onnx's shape inference
        # cannot derive (it then crashes on the ai.onnx.ml nodes that read them).
        self.value_info: list[onnx.ValueInfoProto] = []
        self._count = 0

    def const(self, name: str, value: np.ndarray) -> str:
        """Add ``value`` as an initializer named ``name``; return the name."""
        self.initializers.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def weight(self, name: str, dense: np.ndarray, *, sparse: bool) -> str:
        """Add a weight matrix, as an initializer or (``sparse``) a COO sparse constant."""
        if not sparse:
            return self.const(name, dense)
        flat = dense.reshape(-1)
        nz = np.flatnonzero(flat)
        # The spec requires int64 indices; linearized ([nnz]) is the compact one of its forms.
        values = numpy_helper.from_array(flat[nz], f"{name}_values")
        indices = numpy_helper.from_array(nz.astype(np.int64), f"{name}_indices")
        value = helper.make_sparse_tensor(values, indices, list(dense.shape))
        # A Constant with sparse_value, not a graph sparse_initializer: onnx's shape inference
        # types a sparse_initializer as a sparse tensor, which MatMul rejects in strict mode;
        # the Constant's output is a dense tensor. onnxruntime densifies both alike at load.
        return self.node("Constant", [], out=name, sparse_value=value)

    def node(
        self,
        op: str,
        inputs: list[str],
        *,
        out: str | None = None,
        n_outputs: int = 1,
        **attrs: Any,
    ) -> Any:
        """Add a default-domain node; return its output name (a list when ``n_outputs > 1``)."""
        # Short names and no node names: on tiny models names are a large share of the bytes.
        outs = [out] if out is not None else []
        while len(outs) < n_outputs:
            outs.append(f"t{self._count}")
            self._count += 1
        self.nodes.append(helper.make_node(op, inputs, outs, **attrs))
        return outs[0] if n_outputs == 1 else outs


def column_pow2(ir: LinearIR, used: np.ndarray, *, n_rows: int) -> np.ndarray | None:
    """``2^e`` of each used column (``None`` without column exponents), float32, padded with
    ones to ``n_rows`` (padding rows of the weights are zero anyway)."""
    if ir.col_exponents is None:
        return None
    pow2 = np.ones(n_rows, dtype=np.float32)
    # Exact: 2^e for e in [-126, 127] is a normal float32.
    pow2[: used.size] = np.ldexp(np.float32(1.0), ir.col_exponents[used].astype(np.int32))
    return pow2


def real_weights(
    g: Graph, ir: LinearIR, used: np.ndarray, pos: np.ndarray, *, n_rows: int, sparse: bool
) -> str:
    """Float32 weights ``[n_rows, n_outputs]`` from constants only (folded at load): row
    ``pos[k]`` holds nonzero ``k`` of the IR (``pos`` = its column's index in ``used``), rows
    past ``used.size`` are zero.

    int8: ``Cast(q) * s``, times ``2^e`` per row when the IR has column exponents: bit for
    bit the numpy runtime's weights (``s * q`` in float32; a power of two is exact). Mixed
    int8/int16 rows: see :func:`_mixed_weights`. Float weights: stored as float32.
    """
    if ir.wide_rows.any():
        return _mixed_weights(g, ir, used, pos, n_rows=n_rows, sparse=sparse)
    n_out = ir.n_outputs
    if not ir.is_quantized:
        dense = np.zeros((n_rows, n_out), dtype=np.float32)
        dense[pos, ir.row_ids()] = ir.values.astype(np.float32)
        return g.weight("W", dense, sparse=sparse)
    assert ir.scales is not None
    dense = np.zeros((n_rows, n_out), dtype=np.int8)
    dense[pos, ir.row_ids()] = ir.values
    w = g.weight("W", dense, sparse=sparse)
    # One output (or one scale for all): a scalar scale, per-tensor; else one per column.
    scales = ir.scales.astype(np.float32)
    w_scale = g.const("W_scale", scales.reshape(1, -1) if scales.size > 1 else scales.reshape(()))
    w_real = g.node("Mul", [g.node("Cast", [w], to=TensorProto.FLOAT), w_scale])
    pow2 = column_pow2(ir, used, n_rows=n_rows)
    if pow2 is not None:
        w_real = g.node("Mul", [w_real, g.const("col_pow2", pow2.reshape(-1, 1))])
    return w_real


def matmulinteger_product(
    g: Graph, ir: LinearIR, x: str, used: np.ndarray, pos: np.ndarray, *, sparse: bool
) -> str:
    """``x @ W`` for int8 ``W`` kept int8: ``DynamicQuantizeLinear -> MatMulInteger``.

    The weights stay int8, so the column exponents go on the input instead (``x[j] * 2^e[j]``,
    exact in float32, one ``Mul``): the per-tensor uint8 quantization of
    ``DynamicQuantizeLinear`` then sees columns of similar size.
    """
    assert ir.scales is not None
    dense = np.zeros((used.size, ir.n_outputs), dtype=np.int8)
    dense[pos, ir.row_ids()] = ir.values
    w = g.weight("W", dense, sparse=sparse)
    scales = ir.scales.astype(np.float32)
    pow2 = column_pow2(ir, used, n_rows=used.size)
    if pow2 is not None:
        x = g.node("Mul", [x, g.const("col_pow2", pow2)])
    w_scale = g.const("W_scale", scales if scales.size > 1 else scales.reshape(()))
    # x ~ x_scale * (x_q - x_zero) (uint8, asymmetric, per batch); w = w_scale * w_q
    # (int8, zero point 0), so x @ w = x_scale * w_scale * ((x_q - x_zero) @ w_q).
    x_q, x_scale, x_zero = g.node("DynamicQuantizeLinear", [x], n_outputs=3)
    acc = g.node("MatMulInteger", [x_q, w, x_zero])
    acc_f = g.node("Cast", [acc], to=TensorProto.FLOAT)
    return g.node("Mul", [acc_f, g.node("Mul", [x_scale, w_scale])])


def _mixed_weights(
    g: Graph, ir: LinearIR, used: np.ndarray, pos: np.ndarray, *, n_rows: int, sparse: bool
) -> str:
    """Float32 ``[n_rows, n_outputs]`` weights of a model with int16 rows, from constants only
    (folded at load): ``Cast(q) * s * 2^e`` of an int8 matrix of the narrow outputs and of an
    int16 matrix of the wide ones, concatenated and put back in output order by a ``Gather``
    (moves, no arithmetic: bit for bit the numpy runtime's weights)."""
    assert ir.scales is not None
    wide = ir.wide_rows
    rows = ir.row_ids()
    parts = []
    for name, dtype, mask in (("W", np.int8, ~wide), ("W_int16", np.int16, wide)):
        outputs = np.flatnonzero(mask)
        if outputs.size == 0:
            continue
        dense = np.zeros((n_rows, outputs.size), dtype=dtype)
        keep = mask[rows]
        dense[pos[keep], np.searchsorted(outputs, rows[keep])] = ir.values[keep]
        w = g.weight(name, dense, sparse=sparse)
        scale = g.const(f"{name}_scale", ir.scales[outputs].astype(np.float32).reshape(1, -1))
        parts.append(g.node("Mul", [g.node("Cast", [w], to=TensorProto.FLOAT), scale]))
    order = np.argsort(np.concatenate([np.flatnonzero(~wide), np.flatnonzero(wide)]))
    w_real = g.node("Concat", parts, axis=1) if len(parts) > 1 else parts[0]
    w_real = g.node("Gather", [w_real, g.const("W_order", order.astype(np.int64))], axis=1)
    pow2 = column_pow2(ir, used, n_rows=n_rows)
    if pow2 is not None:
        w_real = g.node("Mul", [w_real, g.const("col_pow2", pow2.reshape(-1, 1))])
    return w_real


def classifier_head(g: Graph, ir: LinearIR, scores: str) -> list[tuple[str, int, list]]:
    """Add the ``label`` (and ``probabilities``) outputs computed from ``scores``; return
    ``(name, element type, shape)`` of each output added."""
    assert ir.classes is not None
    n_classes = int(ir.classes.size)
    if ir.n_outputs == 1:
        # Binary: [-s, s]; argmax is classes[s > 0], elementwise heads give [1 - p, p].
        scores = g.node("Concat", [g.node("Neg", [scores]), scores], axis=1)
    index = g.node("ArgMax", [scores], axis=1, keepdims=0)
    labels = _label_constant(ir.classes)
    g.initializers.append(labels)
    g.node("Gather", [labels.name, index], out="label", axis=0)
    outputs: list[tuple[str, int, list]] = [("label", labels.data_type, ["N"])]
    if not ir.has_proba:
        return outputs
    if ir.head == "softmax":
        g.node("Softmax", [scores], out="probabilities", axis=1)
    else:
        _elementwise_proba(g, ir, scores, n_classes)
    outputs.append(("probabilities", TensorProto.FLOAT, ["N", n_classes]))
    return outputs


def _elementwise_proba(g: Graph, ir: LinearIR, scores: str, n_classes: int) -> None:
    one = g.const("one", np.array(1.0, dtype=np.float32))
    if ir.head == "logistic":
        # 1 / (1 + exp(-s)), not Sigmoid: onnxruntime's Sigmoid is a fast approximation
        # that is off by up to 4x (relative) for s < -17; this form stays within 2e-7
        # and is safe in float32 (exp overflows to inf, and 1 / inf = 0).
        exp = g.node("Exp", [g.node("Neg", [scores])])
        p = g.node("Reciprocal", [g.node("Add", [exp, one])])
    else:  # modified_huber: (clip(s, -1, 1) + 1) / 2
        minus_one = g.const("minus_one", np.array(-1.0, dtype=np.float32))
        clipped = g.node("Clip", [scores, minus_one, one])
        half = g.const("half", np.array(0.5, dtype=np.float32))
        p = g.node("Mul", [g.node("Add", [clipped, one]), half])
    if ir.n_outputs == 1:
        g.node("Identity", [p], out="probabilities")
        return
    if ir.head == "logistic":
        # The contract of every engine (runtime.heads.OVR_SOFTMAX_BELOW, which formats may
        # not import, says why): a row whose top score m is below -40 gets exp(s - m), a
        # softmax once normalised (float32 sigmoids are 0 below about -104), and 0, uniform
        # once normalised, below -ln(DBL_MAX) as in scikit-learn. m is the argmax's element:
        # ReduceMax changes form at opset 18, ArgMax and GatherElements do not.
        argmax = g.node("ArgMax", [scores], axis=1, keepdims=1)
        top = g.node("GatherElements", [scores, argmax], axis=1)
        shifted = g.node("Exp", [g.node("Sub", [scores, top])])
        below = g.const("ovr_softmax_below", np.array(-40.0, dtype=np.float32))
        p = g.node("Where", [g.node("Less", [top, below]), shifted, p])
        below = g.const("ovr_uniform_below", np.array(-709.782712893384, dtype=np.float32))
        zero_p = g.const("zero_p", np.array(0.0, dtype=np.float32))
        p = g.node("Where", [g.node("Less", [top, below]), zero_p, p])
    # One-vs-rest: rows scaled to sum to 1; rows where every p is 0 become uniform
    # (scikit-learn's rule, as in runtime.heads._normalise_ovr).
    axes = g.const("axes_1", np.array([1], dtype=np.int64))
    total = g.node("ReduceSum", [p, axes], keepdims=1)
    zero = g.node("Equal", [total, g.const("zero", np.array(0.0, dtype=np.float32))])
    n = g.const("n_classes", np.array(float(n_classes), dtype=np.float32))
    g.node(
        "Div",
        [g.node("Where", [zero, one, p]), g.node("Where", [zero, n, total])],
        out="probabilities",
    )


def _label_constant(classes: np.ndarray) -> onnx.TensorProto:
    if classes.dtype.kind == "U":
        return numpy_helper.from_array(np.array(classes.tolist(), dtype=object), "classes")
    kind = "int64" if classes.dtype.kind in "iub" else "float64"
    return numpy_helper.from_array(classes.astype(kind), "classes")
