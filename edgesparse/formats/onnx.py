"""ONNX export: a :class:`~edgesparse.ir.LinearIR` as a standard-op ONNX graph.

With :mod:`~edgesparse.formats.onnx_graph` (the building blocks),
:mod:`~edgesparse.formats.onnx_sparse` (the CSR-input graph) and the input stages
(:mod:`~edgesparse.formats.onnx_featurizers`: text and tabular featurizers in front of the
product), the only modules that import ``onnx``. The graph uses the default ONNX domain only
(an input stage adds ``ai.onnx.ml`` and onnxruntime's ``com.microsoft`` ops), so every ONNX
tool understands it, and reproduces :mod:`edgesparse.runtime.model` (scikit-learn's
semantics). Its input is dense
(below) or, with ``input="csr"``, the CSR arrays of the rows (``indices``, ``values``,
``indptr``: :mod:`~edgesparse.formats.onnx_sparse`, the default for models of
:data:`CSR_INPUT_FEATURES` features or more); everything after the product is the same::

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
only) and, for the CSR-input graph, ``"input": "csr"`` and ``"n_features"``.
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
from edgesparse.formats import onnx_featurizers, onnx_sparse, onnx_text
from edgesparse.formats.onnx_graph import (
    Graph,
    classifier_head,
    matmulinteger_product,
    real_weights,
)
from edgesparse.ir import LinearIR
from edgesparse.version import __version__

__all__ = [
    "CSR_INPUT_FEATURES",
    "DEFAULT_OPSET",
    "INPUT_FORMS",
    "INPUT_STAGES",
    "INT8_FORMS",
    "MAX_OPSET",
    "METADATA_KEY",
    "MIN_OPSET",
    "build",
    "check_opset",
    "default_input",
    "default_opset",
    "describe",
    "gathers_columns",
    "encode",
    "input_stage",
    "inspect_file",
    "stored_metadata",
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

INPUT_FORMS = ("dense", "csr")
"""The graph's input: ``X`` float32 ``[N, n_features]``, or the CSR arrays of the rows
(``indices``, ``values``, ``indptr``; see :mod:`edgesparse.formats.onnx_sparse`)."""

CSR_INPUT_FEATURES = 1 << 16
"""Models at least this wide get the CSR-input graph by default (:func:`default_input`):
their rows are sparse in practice (hashed or one-hot text; a dense float32 row would be
256 KiB or more), and the dense graph multiplies every column (33x the numpy runtime's time
on the 20 x 2^18 text model at batch 1000, where the CSR graph is faster than numpy)."""

METADATA_KEY = "edgesparse"
"""``metadata_props`` key of the JSON the runtime wrapper reads."""

METADATA_VERSION = 1

INPUT_STAGES = ("text", "tabular")
"""The metadata's ``"input"`` of a graph with an input stage (:mod:`.onnx_featurizers`): it
reads documents (input ``documents``) or records (one input per column its ``"inputs"``
lists)."""
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
    input: str = "dense",
) -> onnx.ModelProto:
    """Build the ONNX model for ``ir`` (see the module docstring for the graph).

    Args:
        ir: the model; float64 weights are stored as float32 (the graph computes in float32).
        opset: default-domain opset, :data:`MIN_OPSET`..:data:`MAX_OPSET` (the CSR input
            needs :data:`~edgesparse.formats.onnx_sparse.CSR_MIN_OPSET` or later).
        sparse: store the weight matrix as a COO sparse tensor (int64 linear indices, so
            smaller only below ~1/9 density for int8, ~1/3 for float32); onnxruntime
            densifies it when it loads the model, so it saves file bytes, not RAM or time.
        int8_form: one of :data:`INT8_FORMS`; only for int8 weights (``dequantize`` only
            with CSR input).
        input: one of :data:`INPUT_FORMS`: ``dense`` (``X`` float32 ``[N, n_features]``) or
            ``csr`` (``indices``, ``values``, ``indptr``: :mod:`edgesparse.formats.onnx_sparse`).
    """
    opset = _check_options(ir, opset=opset, int8_form=int8_form, input=input)
    g = Graph()
    stage = None
    if ir.featurizer is not None:
        stage = onnx_featurizers.stage(g, ir.featurizer, opset=opset)
        inputs, product = stage.inputs, _stage_product(g, ir, stage, sparse=sparse)
    elif input == "csr":
        product = onnx_sparse.csr_products(g, ir, sparse=sparse)
        inputs = onnx_sparse.csr_inputs()
    else:
        product = _dense_product(g, ir, sparse=sparse, int8_form=int8_form)
        inputs = [
            helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["N", ir.n_features])
        ]
    n_out = ir.n_outputs
    bias = g.const("B", ir.bias.astype(np.float32))
    score_name = "variable" if not ir.is_classifier else "scores"
    scores = g.node("Add", [product, bias], out=score_name)

    outputs = [(score_name, TensorProto.FLOAT, ["N", n_out])]
    if ir.is_classifier:
        assert ir.classes is not None
        outputs = classifier_head(g, ir, scores) + outputs
    if stage is not None:
        outputs += stage.outputs

    graph = helper.make_graph(
        g.nodes,
        "edgesparse",
        inputs,
        [helper.make_tensor_value_info(n, t, s) for n, t, s in outputs],
        initializer=g.initializers,
        value_info=g.value_info,
    )
    opsets = [helper.make_opsetid("", opset)]
    used = {n.domain for n in g.nodes} - {"", "ai.onnx"}
    opsets += [
        helper.make_opsetid(d, v) for d, v in onnx_featurizers.EXTRA_DOMAINS.items() if d in used
    ]
    model = helper.make_model(graph, opset_imports=opsets, producer_name="edgesparse")
    # The lowest IR version the opset allows, so older onnxruntime builds load the file.
    model.ir_version = helper.find_min_ir_version_for(opsets, ignore_unknown=True)
    model.producer_version = __version__
    meta = _metadata(ir, int8_form=int8_form, input=input)
    if stage is not None:
        meta.update(stage.meta)
    helper.set_model_props(model, {METADATA_KEY: json.dumps(meta, separators=(",", ":"))})
    return model


def _stage_product(g: Graph, ir: LinearIR, stage: onnx_featurizers.Stage, *, sparse: bool) -> str:
    """``features @ W`` after an input stage: the CSR-style product of the text stage's
    (row, column, value) triples, or the dense product of the tabular stage's rows."""
    if stage.triples is not None:
        rows, cols, values, n_rows = stage.triples
        return onnx_sparse.coo_products(
            g, ir, rows=rows, cols=cols, values=values, n_rows=n_rows, sparse=sparse
        )
    assert stage.x is not None
    return _dense_product(g, ir, sparse=sparse, int8_form="dequantize", x=stage.x)


def _check_options(ir: LinearIR, *, opset: Any, int8_form: str, input: str) -> int:
    """The opset as an int, once ``opset``, ``int8_form`` and ``input`` are known to go
    together for ``ir``; else :class:`InputError`."""
    opset = check_opset(opset)
    if ir.featurizer is not None:
        onnx_featurizers.check_featurizer(ir.featurizer, opset=opset)
        if input != "dense" or int8_form != "dequantize":
            # The stage decides the product's input: its dense rows or its triples.
            raise InputError(
                "a model with an input stage takes raw input: the ONNX graph's input form and "
                "int8 form are the stage's (no --onnx-input csr, no --onnx-int8 matmulinteger)"
            )
    if int8_form not in INT8_FORMS:
        raise InputError(f"int8 form must be one of {', '.join(INT8_FORMS)}, not {int8_form!r}")
    if input not in INPUT_FORMS:
        raise InputError(f"input must be one of {', '.join(INPUT_FORMS)}, not {input!r}")
    if int8_form != "dequantize" and ir.values.dtype != np.int8:
        raise InputError(
            f"int8 form {int8_form!r} needs int8 weights"
            + (" in every row (this model has int16 rows)" if ir.is_quantized else "")
            + " (use --quantize int8)"
        )
    if input == "csr" and int8_form != "dequantize":
        raise InputError(
            f"int8 form {int8_form!r} applies to the dense-input graph only; the CSR-input "
            "graph dequantizes its weights at load"
        )
    if input == "csr" and opset < onnx_sparse.CSR_MIN_OPSET:
        raise InputError(
            f"the CSR-input graph needs opset {onnx_sparse.CSR_MIN_OPSET} or later (its "
            f"scatter adds), not {opset}"
        )
    return opset


def _dense_product(
    g: Graph, ir: LinearIR, *, sparse: bool, int8_form: str, x: str = INPUT_NAME
) -> str:
    """``x @ W`` for the dense input ``x``, gathering the used columns first when that pays."""
    used = np.unique(ir.indices)
    if used.size == 0:
        # No weight at all: keep one (all-zero) column so the graph keeps its shape.
        used = np.zeros(1, dtype=np.int32)
    if gathers_columns(ir):
        x = g.node("Gather", [x, g.const("used_columns", used.astype(np.int32))], axis=1)
    else:
        used = np.arange(ir.n_features)  # full width: unused columns get zero weights
    # Dense [n_used, n_outputs] weights: X @ W, so each output's scale runs along axis 1.
    pos = np.searchsorted(used, ir.indices)
    if ir.is_quantized and int8_form == "matmulinteger":
        return matmulinteger_product(g, ir, x, used, pos, sparse=sparse)
    return g.node("MatMul", [x, real_weights(g, ir, used, pos, n_rows=used.size, sparse=sparse)])


def _metadata(ir: LinearIR, *, int8_form: str, input: str) -> dict[str, Any]:
    """Only what the graph cannot tell onnxruntime's API (feature count, output shapes, label
    type and whether there are probabilities can be read off the inputs and outputs), kept
    compact: on a 12-weight model these bytes are a third of the file. A CSR-input graph
    adds ``"input": "csr"`` and its feature count (its inputs have no feature axis)."""
    meta: dict[str, Any] = {"version": METADATA_VERSION, "head": ir.head}
    if ir.classes is not None:
        meta["classes"] = ir.classes.tolist()
    else:
        meta["squeeze"] = bool(ir.squeeze)
    meta["weights"] = ir.quantization + (f" {int8_form}" if ir.is_quantized else "")
    if ir.is_quantized:
        meta["columns"] = ir.column_scaling
    if input == "csr":
        meta.update(input="csr", n_features=int(ir.n_features))
    return meta


def default_opset(ir: LinearIR) -> int:
    """The opset ``compress`` writes when not told: :data:`DEFAULT_OPSET`, or 20 when the
    model's text stage lowercases (exactly as ``str.lower``) or hashes word n-grams."""
    return onnx_featurizers.default_opset(ir.featurizer, DEFAULT_OPSET)


def default_input(
    ir: LinearIR, *, opset: int = DEFAULT_OPSET, int8_form: str = "dequantize"
) -> str:
    """The input form ``compress`` writes when not told: ``csr`` for models at least
    :data:`CSR_INPUT_FEATURES` features wide, unless ``opset`` or ``int8_form`` rule the
    CSR-input graph out or the model has an input stage (which decides); ``dense``
    otherwise."""
    if ir.featurizer is not None:
        return "dense"
    if opset < onnx_sparse.CSR_MIN_OPSET or int8_form != "dequantize":
        return "dense"
    return "csr" if ir.n_features >= CSR_INPUT_FEATURES else "dense"


def encode(
    ir: LinearIR,
    *,
    opset: int = DEFAULT_OPSET,
    sparse: bool = False,
    int8_form: str = "dequantize",
    input: str = "dense",
) -> bytes:
    """:func:`build` the model and serialize it (checked with ``full_check`` first)."""
    model = build(ir, opset=opset, sparse=sparse, int8_form=int8_form, input=input)
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
    meta = stored_metadata(model)
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


def stored_metadata(model: onnx.ModelProto) -> Any:
    """The edgesparse metadata in ``model``'s ``metadata_props`` (under :data:`METADATA_KEY`),
    parsed from JSON; its raw text when it is not JSON; None when the model has none (another
    producer's model)."""
    props = {p.key: p.value for p in model.metadata_props}
    if METADATA_KEY not in props:
        return None
    try:
        return json.loads(props[METADATA_KEY])
    except json.JSONDecodeError:
        return props[METADATA_KEY]


def input_stage(buf: bytes | bytearray | memoryview) -> str | None:
    """What raw input the edgesparse ONNX model in ``buf`` reads through its input stage:
    ``"text"`` or ``"tabular"`` (:data:`INPUT_STAGES`) when its metadata says so and the graph's
    inputs are that stage's, else None (feature rows; another producer's model; metadata that
    does not match the graph). Parses the protobuf only (no checker, no onnxruntime session),
    so that asking costs no more than reading the file.

    Raises:
        FormatError: ``buf`` is not an ONNX model (one line).
    """
    try:
        model = onnx.load_model_from_string(bytes(buf))
    except Exception as exc:  # protobuf's decode errors have no common base class
        raise FormatError(f"not a valid ONNX model: {_first_line(exc)}") from None
    meta = stored_metadata(model)
    if not isinstance(meta, dict) or meta.get("input") not in INPUT_STAGES:
        return None
    inits = {t.name for t in model.graph.initializer}
    inputs = [v.name for v in model.graph.input if v.name not in inits]
    if meta["input"] == "text":
        expected = [onnx_text.DOCUMENTS]
    else:
        try:
            expected = [str(row[0]) for row in meta["inputs"]]
        except (TypeError, KeyError, IndexError):
            return None
    return meta["input"] if inputs == expected else None


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
