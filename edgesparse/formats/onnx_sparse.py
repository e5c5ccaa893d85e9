"""The CSR-input form of edgesparse's ONNX graph: the input rows as three tensors, standard ops
only, for wide sparse models (hashed text: 2^18 features, a few dozen nonzeros a row).

Inputs (the CSR arrays of a scipy matrix, as int64 and float32)::

    indices int64 [nnz]     column of each input nonzero, in [0, n_features)
    values  float32 [nnz]   its value
    indptr  int64 [N + 1]   row k's nonzeros are indices[indptr[k]:indptr[k+1]]

and the graph (standard ops, opset >= 16 for the scatter's ``reduction``)::

    Gather(pos_map, indices) -> Cast int64       the weight row of each nonzero's column
                                                 (pos_map: uint16, or int32 past 65 535
                                                 used columns; unused columns -> a zero row)
    Gather(W_real, rows) * Unsqueeze(values)     [nnz, n_outputs] products; W_real is the
                                                 dense graph's float32 weights of the used
                                                 columns plus one zero row, folded at load
    row ids: ScatterElements(zeros[nnz+1], indptr[1:N], 1, add) -> CumSum -> [:nnz]
    ScatterND(zeros[N, n_outputs], row ids, products, reduction=add)
      -> Add(bias) -> the dense graph's head (same outputs, same names)

Duplicate and unsorted column indices within a row are summed, as scipy's product does.
The arithmetic is the numpy runtime's: each score is the float32 sum of ``x * w`` over the
row's nonzeros (in input order), plus the bias.

Why this formulation (measured on the text model, 20 x 2^18, int8 pow2, one thread,
onnxruntime 1.32; ``benchmarks/bench_onnx_sparse.py`` has the current figures): per batch of
1000 rows (~27 000 nonzeros) ``ScatterND`` with ``reduction="add"`` took 0.66 ms, the same
with ``ScatterElements`` on expanded indices 3.1 ms, a prefix sum (``CumSum`` of the products,
``Gather`` at ``indptr``, difference) 0.60 ms but with errors of 6e-5 on scores of order 1
(differences of large float32 prefix sums), and the dense-input graph 279 ms (it multiplies
every column). onnxruntime's contrib ``com.microsoft.SparseToDenseMatMul`` (a CSR
``SparseTensor`` input times the dense used-column weights) took 0.36 ms at batch 1000 but
37 us at batch 1, three times this graph's 12 us (the Python ``SparseTensor`` and
``OrtValue`` per call), and it cannot remap columns itself: the caller would have to map
input columns to used ones (the file alone would not be a model), or the file would carry all
2^18 weight rows (20 MiB once folded). Both are within the goal (<= 3x the numpy runtime at
batch 1 and 1000); this graph is faster at batch 1, self-contained, standard-domain (any ONNX
runtime) and fed plain arrays, so it is the one edgesparse writes.
"""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper

from edgesparse.formats.onnx_graph import Graph, real_weights
from edgesparse.ir import LinearIR

__all__ = ["CSR_MIN_OPSET", "INPUTS", "csr_inputs", "csr_products"]

INPUTS = ("indices", "values", "indptr")
"""Input names of the CSR-input graph, in order."""

CSR_MIN_OPSET = 16
"""``ScatterND`` and ``ScatterElements`` have ``reduction`` since opset 16."""


def csr_inputs() -> list:
    """The graph's input value infos (see the module docstring)."""
    return [
        helper.make_tensor_value_info("indices", TensorProto.INT64, ["nnz"]),
        helper.make_tensor_value_info("values", TensorProto.FLOAT, ["nnz"]),
        helper.make_tensor_value_info("indptr", TensorProto.INT64, ["N+1"]),
    ]


def csr_products(g: Graph, ir: LinearIR, *, sparse: bool) -> str:
    """Add the nodes computing ``X @ W.T`` (no bias) from the CSR inputs; return its name
    (``[N, n_outputs]`` float32). ``sparse``: weights as a COO sparse constant."""
    used = np.unique(ir.indices)
    n_used = int(used.size)
    pos = np.searchsorted(used, ir.indices)
    # Row n_used stays zero: the weight row of every column no output uses.
    w = real_weights(g, ir, used, pos, n_rows=n_used + 1, sparse=sparse)
    # uint16 halves the table (n_features entries) whenever the zero row's index fits.
    table_dtype = np.uint16 if n_used <= np.iinfo(np.uint16).max else np.int32
    pos_map = np.full(ir.n_features, n_used, dtype=table_dtype)
    pos_map[used] = np.arange(n_used, dtype=table_dtype)
    rows = g.node("Gather", [g.const("pos_map", pos_map), "indices"], axis=0)
    if table_dtype != np.int32:
        rows = g.node("Cast", [rows], to=TensorProto.INT64)  # Gather indices: int32/int64
    one = g.const("one_i64", np.array([1], dtype=np.int64))
    products = g.node(
        "Mul", [g.node("Gather", [w, rows], axis=0), g.node("Unsqueeze", ["values", one])]
    )
    n_rows = g.node("Sub", [g.node("Shape", ["indptr"]), one])
    out_shape = g.node(
        "Concat", [n_rows, g.const("n_outputs", np.array([ir.n_outputs], dtype=np.int64))], axis=0
    )
    zeros = g.node("ConstantOfShape", [out_shape], value=_scalar(TensorProto.FLOAT, 0.0))
    row_ids = g.node("Unsqueeze", [_row_ids(g, one), one])
    return g.node("ScatterND", [zeros, row_ids, products], reduction="add")


def _row_ids(g: Graph, one: str) -> str:
    """Row of each nonzero, from ``indptr``: a 1 at the start of every row but the first
    (``ScatterElements`` adds, so empty rows count), then a running sum. ``nnz + 1`` slots:
    trailing empty rows start at ``nnz``."""
    zero = g.const("zero_i64", np.array([0], dtype=np.int64))
    minus_one = g.const("minus_one_i64", np.array([-1], dtype=np.int64))
    slots = g.node("Add", [g.node("Shape", ["indices"]), one])
    marks0 = g.node("ConstantOfShape", [slots], value=_scalar(TensorProto.INT64, 0))
    starts = g.node("Slice", ["indptr", one, minus_one])
    ones = g.node(
        "ConstantOfShape", [g.node("Shape", [starts])], value=_scalar(TensorProto.INT64, 1)
    )
    marks = g.node("ScatterElements", [marks0, starts, ones], axis=0, reduction="add")
    running = g.node("CumSum", [marks, zero])
    return g.node("Slice", [running, zero, minus_one])


def _scalar(elem_type: int, value: float) -> object:
    return helper.make_tensor("value", elem_type, [1], [value])
