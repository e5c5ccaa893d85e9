"""ONNX export: a :class:`~edgesparse.ir.LinearIR` as a standard-op ONNX graph.

The only module that imports ``onnx``. The graph uses the default ONNX domain only, so every
ONNX tool understands it, and reproduces :mod:`edgesparse.runtime.model` (scikit-learn's
semantics)::

    X float32 [N, n_features]
      -> Gather(axis=1, used columns)   when many input columns have no weight (gathers_columns)
      -> weights                        int8 q [n_used, n_outputs], float32 scale s per output,
                                        optional column exponents e (w = s * q * 2^e):
           dequantize:    MatMul(X, Cast(q) * s [* 2^e per row])  (default: exact weights,
                          a constant subgraph onnxruntime folds into float32 weights at load)
           matmulinteger: [Mul(2^e) ->] DynamicQuantizeLinear -> MatMulInteger(X zero point)
                          -> Cast -> Mul(x_scale * s)              (uint8 activations)
           float weights: MatMul
      -> Add(bias)                      scores [N, n_outputs]
      -> head

Outputs, named and shaped as skl2onnx's with ``zipmap=False``: regressors ``variable``
[N, n_outputs]; classifiers ``label`` [N] (``ArgMax`` + ``Gather`` into a label constant,
int64, string or double), ``probabilities`` [N, n_classes] when the scikit-learn model has
``predict_proba``, and always ``scores`` [N, n_outputs] (the decision function). A binary
model has one score row ``s``; the graph works on ``[-s, s]``, so ``ArgMax`` gives
``classes[s > 0]`` (a tie picks the first index, as ``s > 0`` does) and the elementwise heads
give ``[1 - p, p]`` without cancellation.

Why ``Cast -> Mul`` and not ``DequantizeLinear`` for the default form: onnxruntime (1.32, in
a plain session) fuses ``DequantizeLinear -> MatMul`` into
``com.microsoft.MatMulNBits`` with ``accuracy_level`` 4, which quantizes each input row to
int8, one scale per block of 32 columns set by the block's largest value: on inputs whose
columns differ in magnitude (raw features, amounts beside ratios) the small columns round to
nothing (one-vs-rest logistic regression on scikit-learn's raw wine table: 59.6% of labels
agreed with scikit-learn, where the numpy runtime agrees on 98.9%). onnxruntime folds ``Cast``
and ``Mul`` of constants at load (basic optimization level and up), into exactly the numpy
runtime's float32 weights (with optimizations off it computes the same values every call).

What the on-device wrapper (:mod:`edgesparse.runtime.onnx_model`, which cannot import ``onnx``)
needs is stored as JSON in the model's ``metadata_props`` under :data:`METADATA_KEY`; it also
says whether the weights carry column exponents (``"columns": "pow2"`` or ``"none"``, int8
only).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgesparse.errors import FormatError, InputError
from edgesparse.fileio import atomic_write_bytes, read_bytes
from edgesparse.ir import LinearIR
from edgesparse.version import __version__

__all__ = [
    "DEFAULT_OPSET",
    "INT8_FORMS",
    "MAX_OPSET",
    "METADATA_KEY",
    "MIN_OPSET",
    "build",
    "check_opset",
    "describe",
    "gathers_columns",
    "encode",
    "inspect_file",
    "write",
]

DEFAULT_OPSET = 17
"""Default ONNX opset. Everything the graph uses exists in this form since opset 13
(``ReduceSum`` with ``axes`` as an input); 17 needs only
IR version 8, which every onnxruntime since 1.13 (2022) loads, including all current aarch64
wheels for Raspberry Pi OS. Newer opsets add nothing this graph uses."""

MIN_OPSET = 13
MAX_OPSET = 21
"""Highest opset tested (tests/test_onnx.py runs every opset in range in onnxruntime)."""

INT8_FORMS = ("dequantize", "matmulinteger")
"""How int8 weights are applied: dequantized to float32 once (``Cast -> Mul``, folded at load)
for a float32 ``MatMul`` (float32 activations, the default: predictions equal the numpy
runtime's to float32 rounding), or ``DynamicQuantizeLinear -> MatMulInteger`` (uint8
activations with one scale and zero point per batch: faster on some CPUs, but lossy on inputs
whose columns differ in magnitude; column exponents equalize them first)."""

METADATA_KEY = "edgesparse"
"""``metadata_props`` key of the JSON the runtime wrapper reads."""

METADATA_VERSION = 1
INPUT_NAME = "X"


def check_opset(opset: Any) -> int:
    """Return ``opset`` as an int if this exporter supports it, else raise :class:`InputError`."""
    if isinstance(opset, bool) or not isinstance(opset, (int, np.integer)):
        raise InputError(f"opset must be an integer, got {opset!r}")
    if not MIN_OPSET <= int(opset) <= MAX_OPSET:
        raise InputError(
            f"opset {opset} is not supported: use {MIN_OPSET}..{MAX_OPSET} "
            f"(default {DEFAULT_OPSET})"
        )
    return int(opset)


def gathers_columns(ir: LinearIR) -> bool:
    """Whether the graph first gathers the input columns that some output uses.

    Only when that pays: the weight bytes the unused columns would take exceed the 4 bytes
    per used column of the int32 index list (a 4-feature model with one unused column
    multiplies it by zero rather than store and run a gather; a pruned 2^18-feature text
    model gathers its few thousand used columns).
    """
    n_used = int(np.unique(ir.indices).size)
    itemsize = {1: 1, 2: 2}.get(ir.values.dtype.itemsize, 4) if ir.is_quantized else 4
    return (ir.n_features - n_used) * ir.n_outputs * itemsize > 4 * max(n_used, 1)


def build(
    ir: LinearIR,
    *,
    opset: int = DEFAULT_OPSET,
    sparse: bool = False,
    int8_form: str = "dequantize",
) -> onnx.ModelProto:
    """Build the ONNX model for ``ir`` (see the module docstring for the graph).

    Args:
        ir: the model; float64 weights are stored as float32 (the graph computes in float32).
        opset: default-domain opset, :data:`MIN_OPSET`..:data:`MAX_OPSET`.
        sparse: store the weight matrix as a COO sparse tensor (int64 linear indices, so
            smaller only below ~1/9 density for int8, ~1/3 for float32); onnxruntime
            densifies it when it loads the model, so it saves file bytes, not RAM or time.
        int8_form: one of :data:`INT8_FORMS`; only for int8 weights.
    """
    opset = check_opset(opset)
    if int8_form not in INT8_FORMS:
        raise InputError(f"int8 form must be one of {', '.join(INT8_FORMS)}, not {int8_form!r}")
    is_int8 = ir.is_quantized
    if int8_form != "dequantize" and ir.values.dtype != np.int8:
        raise InputError(
            f"int8 form {int8_form!r} needs int8 weights"
            + (" in every row (this model has int16 rows)" if is_int8 else "")
            + " (use --quantize int8)"
        )

    g = _Graph()
    n_out = ir.n_outputs
    used = np.unique(ir.indices)
    if used.size == 0:
        # No weight at all: keep one (all-zero) column so the graph keeps its shape.
        used = np.zeros(1, dtype=np.int32)
    x = INPUT_NAME
    if gathers_columns(ir):
        x = g.node("Gather", [x, g.const("used_columns", used.astype(np.int32))], axis=1)
    else:
        used = np.arange(ir.n_features)  # full width: unused columns get zero weights

    # Dense [n_used, n_outputs] weights: X @ W, so each output's scale runs along axis 1.
    pos = np.searchsorted(used, ir.indices)
    if ir.wide_rows.any():
        product = g.node("MatMul", [x, _mixed_weights(g, ir, used, pos, sparse=sparse)])
    else:
        dense = np.zeros((used.size, n_out), dtype=np.int8 if is_int8 else np.float32)
        dense[pos, ir.row_ids()] = ir.values if is_int8 else ir.values.astype(np.float32)
        w = g.weight("W", dense, sparse=sparse)
        if is_int8:
            product = _int8_product(g, ir, x, w, used, int8_form)
        else:
            product = g.node("MatMul", [x, w])
    bias = g.const("B", ir.bias.astype(np.float32))
    score_name = "variable" if not ir.is_classifier else "scores"
    scores = g.node("Add", [product, bias], out=score_name)

    outputs = [(score_name, TensorProto.FLOAT, ["N", n_out])]
    if ir.is_classifier:
        assert ir.classes is not None
        outputs = _classifier_head(g, ir, scores) + outputs

    graph = helper.make_graph(
        g.nodes,
        "edgesparse",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["N", ir.n_features])],
        [helper.make_tensor_value_info(n, t, s) for n, t, s in outputs],
        initializer=g.initializers,
    )
    opsets = [helper.make_opsetid("", opset)]
    model = helper.make_model(graph, opset_imports=opsets, producer_name="edgesparse")
    # The lowest IR version the opset allows, so older onnxruntime builds load the file.
    model.ir_version = helper.find_min_ir_version_for(opsets)
    model.producer_version = __version__
    # Only what the graph cannot tell onnxruntime's API (feature count, output shapes, label
    # type and whether there are probabilities can be read off the inputs and outputs), kept
    # compact: on a 12-weight model these bytes are a third of the file.
    meta: dict[str, Any] = {"version": METADATA_VERSION, "head": ir.head}
    if ir.classes is not None:
        meta["classes"] = ir.classes.tolist()
    else:
        meta["squeeze"] = bool(ir.squeeze)
    meta["weights"] = ir.quantization + (f" {int8_form}" if is_int8 else "")
    if is_int8:
        meta["columns"] = ir.column_scaling
    helper.set_model_props(model, {METADATA_KEY: json.dumps(meta, separators=(",", ":"))})
    return model


def encode(
    ir: LinearIR,
    *,
    opset: int = DEFAULT_OPSET,
    sparse: bool = False,
    int8_form: str = "dequantize",
) -> bytes:
    """:func:`build` the model and serialize it (checked with ``full_check`` first)."""
    model = build(ir, opset=opset, sparse=sparse, int8_form=int8_form)
    # A bug here must never reach a file: the full check includes strict shape inference.
    onnx.checker.check_model(model, full_check=True)
    return model.SerializeToString()


def write(ir: LinearIR, path: str | os.PathLike[str], **options: Any) -> int:
    """Encode ``ir`` (``options`` as for :func:`encode`) and write it atomically; return bytes."""
    data = encode(ir, **options)
    atomic_write_bytes(path, data)
    return len(data)


def describe(buf: bytes | bytearray | memoryview) -> dict[str, Any]:
    """Check ONNX bytes (``onnx.checker`` with ``full_check``) and describe them.

    Returns a JSON-ready dict: ONNX IR version, opsets and domains, op counts, inputs and
    outputs with element types and shapes, every initializer and sparse initializer with its
    dtype, shape and bytes, the edgesparse metadata (``None`` for other producers' models;
    ``columns`` says whether int8 weights carry power-of-two column exponents) and, when they
    do, the exponents' range. Raises :class:`FormatError` (one line) when the bytes are not a
    valid model.
    """
    data = bytes(buf)
    try:
        model = onnx.load_model_from_string(data)
        onnx.checker.check_model(model, full_check=True)
    except Exception as exc:  # protobuf and checker errors have no common base class
        raise FormatError(f"not a valid ONNX model: {_first_line(exc)}") from None
    g = model.graph
    ops = Counter(f"{n.domain}:{n.op_type}" if n.domain else n.op_type for n in g.node)
    inits = {t.name: _tensor_info(t) for t in g.initializer}
    sparse = {s.values.name: _sparse_info(s) for s in g.sparse_initializer}
    # Constants count as stored tensors too (edgesparse keeps sparse weights in one).
    for n in g.node:
        if n.op_type == "Constant" and not n.domain:
            for a in n.attribute:
                if a.name == "value":
                    inits[n.output[0]] = _tensor_info(a.t)
                elif a.name == "sparse_value":
                    sparse[n.output[0]] = _sparse_info(a.sparse_tensor)
    props = {p.key: p.value for p in model.metadata_props}
    meta = None
    if METADATA_KEY in props:
        try:
            meta = json.loads(props[METADATA_KEY])
        except json.JSONDecodeError:
            meta = props[METADATA_KEY]
    return {
        "format": f"ONNX (IR version {model.ir_version})",
        "bytes": len(data),
        "producer": f"{model.producer_name} {model.producer_version}".strip(),
        "opset": {(o.domain or "ai.onnx"): int(o.version) for o in model.opset_import},
        "domains": sorted({n.domain or "ai.onnx" for n in g.node}),
        "nodes": len(g.node),
        "ops": dict(sorted(ops.items())),
        "inputs": {v.name: _value_info(v) for v in g.input if v.name not in inits},
        "outputs": {v.name: _value_info(v) for v in g.output},
        "initializers": inits,
        "initializer_bytes": sum(i["bytes"] for i in inits.values()),
        "sparse_tensors": sparse,
        "sparse_tensor_bytes": sum(s["bytes"] for s in sparse.values()),
        "checker": "OK (full_check)",
        "edgesparse": meta,
        "column_exponents": _exponent_summary(g, meta),
    }


def _exponent_summary(g: onnx.GraphProto, meta: Any) -> dict[str, Any] | None:
    """Range of the column exponents of an edgesparse model that has them (the ``2^e``
    vector :func:`build` stores as ``col_pow2``), else ``None``."""
    if not isinstance(meta, dict) or meta.get("columns") != "pow2":
        return None
    for t in g.initializer:
        if t.name == "col_pow2":
            e = np.log2(numpy_helper.to_array(t).astype(np.float64).reshape(-1))
            return {"columns": int(e.size), "min": int(e.min()), "max": int(e.max())}
    return None


def inspect_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """:func:`describe` for a file; errors name the path."""
    from edgesparse.formats.sniff import not_a_compressed_model

    data = read_bytes(path, what="ONNX file")
    try:
        return {"file": os.fspath(path), **describe(data)}
    except FormatError as exc:
        wrong = not_a_compressed_model(
            path, data_hint="inspect reads .esb and .onnx models (edgesparse inspect MODEL)"
        )
        if wrong is not None:
            raise wrong from None
        raise FormatError(f"{os.fspath(path)}: {exc}") from None


# ----------------------------------------------------------------------------------------
# Graph building
# ----------------------------------------------------------------------------------------
class _Graph:
    """Collects nodes and initializers, giving every intermediate a unique short name."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._count = 0

    def const(self, name: str, value: np.ndarray) -> str:
        self.initializers.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def weight(self, name: str, dense: np.ndarray, *, sparse: bool) -> str:
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
        # Short names and no node names: on tiny models names are a large share of the bytes.
        outs = [out] if out is not None else []
        while len(outs) < n_outputs:
            outs.append(f"t{self._count}")
            self._count += 1
        self.nodes.append(helper.make_node(op, inputs, outs, **attrs))
        return outs[0] if n_outputs == 1 else outs


def _int8_product(g: _Graph, ir: LinearIR, x: str, w: str, used: np.ndarray, int8_form: str) -> str:
    """``x @ W`` for int8 ``W`` (``[n_used, n_outputs]``, real value ``s[o] * q * 2^e[j]``).

    ``dequantize``: ``Cast(q) * s``, times ``2^e`` per input row when the IR has column
    exponents: constants only, so onnxruntime folds them into float32 weights at load, bit for
    bit the numpy runtime's (``s * q`` in float32; a power of two is exact), and the call is one
    float32 ``MatMul`` (see the module docstring for why not ``DequantizeLinear``).

    ``matmulinteger``: the weights stay int8, so the exponents go on the input instead
    (``x[j] * 2^e[j]``, exact in float32, one ``Mul``): the per-tensor uint8 quantization of
    ``DynamicQuantizeLinear`` then sees columns of similar size.
    """
    assert ir.scales is not None
    # One output (or one scale for all): a scalar scale, per-tensor; else one per column.
    per_row = ir.scales.size > 1
    scales = ir.scales.astype(np.float32)
    pow2 = None
    if ir.col_exponents is not None:
        # Exact: 2^e for e in [-126, 127] is a normal float32.
        pow2 = np.ldexp(np.float32(1.0), ir.col_exponents[used].astype(np.int32))
    if int8_form == "dequantize":
        w_scale = g.const("W_scale", scales.reshape(1, -1) if per_row else scales.reshape(()))
        w_real = g.node("Mul", [g.node("Cast", [w], to=TensorProto.FLOAT), w_scale])
        if pow2 is not None:
            w_real = g.node("Mul", [w_real, g.const("col_pow2", pow2.reshape(-1, 1))])
        return g.node("MatMul", [x, w_real])
    if pow2 is not None:
        x = g.node("Mul", [x, g.const("col_pow2", pow2)])
    w_scale = g.const("W_scale", scales if per_row else scales.reshape(()))
    # x ~ x_scale * (x_q - x_zero) (uint8, asymmetric, per batch); w = w_scale * w_q
    # (int8, zero point 0), so x @ w = x_scale * w_scale * ((x_q - x_zero) @ w_q).
    x_q, x_scale, x_zero = g.node("DynamicQuantizeLinear", [x], n_outputs=3)
    acc = g.node("MatMulInteger", [x_q, w, x_zero])
    acc_f = g.node("Cast", [acc], to=TensorProto.FLOAT)
    return g.node("Mul", [acc_f, g.node("Mul", [x_scale, w_scale])])


def _mixed_weights(
    g: _Graph, ir: LinearIR, used: np.ndarray, pos: np.ndarray, *, sparse: bool
) -> str:
    """Float32 ``[n_used, n_outputs]`` weights of a model with int16 rows, from constants only
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
        dense = np.zeros((used.size, outputs.size), dtype=dtype)
        keep = mask[rows]
        dense[pos[keep], np.searchsorted(outputs, rows[keep])] = ir.values[keep]
        w = g.weight(name, dense, sparse=sparse)
        scale = g.const(f"{name}_scale", ir.scales[outputs].astype(np.float32).reshape(1, -1))
        parts.append(g.node("Mul", [g.node("Cast", [w], to=TensorProto.FLOAT), scale]))
    order = np.argsort(np.concatenate([np.flatnonzero(~wide), np.flatnonzero(wide)]))
    w_real = g.node("Concat", parts, axis=1) if len(parts) > 1 else parts[0]
    w_real = g.node("Gather", [w_real, g.const("W_order", order.astype(np.int64))], axis=1)
    if ir.col_exponents is not None:
        pow2 = np.ldexp(np.float32(1.0), ir.col_exponents[used].astype(np.int32))
        w_real = g.node("Mul", [w_real, g.const("col_pow2", pow2.reshape(-1, 1))])
    return w_real


def _classifier_head(g: _Graph, ir: LinearIR, scores: str) -> list[tuple[str, int, list]]:
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
        else:
            # One-vs-rest: rows scaled to sum to 1; rows where every p is 0 become uniform
            # (scikit-learn's rule, as in runtime.model._normalise_ovr).
            axes = g.const("axes_1", np.array([1], dtype=np.int64))
            total = g.node("ReduceSum", [p, axes], keepdims=1)
            zero = g.node("Equal", [total, g.const("zero", np.array(0.0, dtype=np.float32))])
            n = g.const("n_classes", np.array(float(n_classes), dtype=np.float32))
            g.node(
                "Div",
                [g.node("Where", [zero, one, p]), g.node("Where", [zero, n, total])],
                out="probabilities",
            )
    outputs.append(("probabilities", TensorProto.FLOAT, ["N", n_classes]))
    return outputs


def _label_constant(classes: np.ndarray) -> onnx.TensorProto:
    kind = _classes_kind(classes)
    if kind == "str":
        return numpy_helper.from_array(np.array(classes.tolist(), dtype=object), "classes")
    return numpy_helper.from_array(classes.astype(kind), "classes")


def _classes_kind(classes: np.ndarray) -> str:
    if classes.dtype.kind == "U":
        return "str"
    return "int64" if classes.dtype.kind in "iub" else "float64"


# ----------------------------------------------------------------------------------------
# Inspection
# ----------------------------------------------------------------------------------------
_ELEM_NAMES = {
    v: np.dtype(helper.tensor_dtype_to_np_dtype(v)).name
    for v in (
        TensorProto.FLOAT,
        TensorProto.DOUBLE,
        TensorProto.FLOAT16,
        TensorProto.INT8,
        TensorProto.UINT8,
        TensorProto.INT16,
        TensorProto.UINT16,
        TensorProto.INT32,
        TensorProto.UINT32,
        TensorProto.INT64,
        TensorProto.UINT64,
        TensorProto.BOOL,
    )
}


def _elem_name(elem_type: int) -> str:
    if elem_type == TensorProto.STRING:
        return "string"
    return _ELEM_NAMES.get(elem_type) or TensorProto.DataType.Name(elem_type).lower()


def _tensor_info(t: onnx.TensorProto) -> dict[str, Any]:
    shape = [int(d) for d in t.dims]
    if t.data_type == TensorProto.STRING:
        nbytes = sum(len(s) for s in t.string_data)
    elif t.raw_data:
        nbytes = len(t.raw_data)
    else:
        nbytes = numpy_helper.to_array(t).nbytes
    return {"dtype": _elem_name(t.data_type), "shape": shape, "bytes": int(nbytes)}


def _sparse_info(s: onnx.SparseTensorProto) -> dict[str, Any]:
    vals, idx = _tensor_info(s.values), _tensor_info(s.indices)
    return {
        "dtype": vals["dtype"],
        "shape": [int(d) for d in s.dims],
        "nnz": int(np.prod(vals["shape"], dtype=np.int64)),
        "index_dtype": idx["dtype"],
        "bytes": vals["bytes"] + idx["bytes"],
    }


def _value_info(v: onnx.ValueInfoProto) -> str:
    t = v.type
    if not t.HasField("tensor_type"):
        return str(t.WhichOneof("value"))
    dims = [
        d.dim_param
        if d.HasField("dim_param")
        else str(d.dim_value)
        if d.HasField("dim_value")
        else "?"
        for d in t.tensor_type.shape.dim
    ]
    return f"{_elem_name(t.tensor_type.elem_type)} [{', '.join(dims)}]"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0].strip()
