"""The CSR-input form of edgesparse's ONNX graph: the input rows as three tensors, standard ops
only, for wide sparse models (hashed text: 2^18 features, a few dozen nonzeros a row).

Inputs (the CSR arrays of a scipy matrix, as int64 and float32)::

    indices int64 [nnz]     column of each input nonzero, in [0, n_features)
    values  float32 [nnz]   its value
    indptr  int64 [N + 1]   row k's nonzeros are indices[indptr[k]:indptr[k+1]]

and the graph (standard ops, opset >= 16 for the scatter's ``reduction``)::

    Gather(table, indices)                       the weight row of each nonzero's column
                                                 (table: int32 [n_features], unused columns
                                                 -> a zero row; built from the used columns
                                                 by ScatterElements, folded at load)
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
onnxruntime 1.32, ``session.run`` alone; ``benchmarks/bench_onnx_sparse.py`` has the current
figures, with the Python wrapper): per batch of 1000 rows (~27 000 nonzeros) ``ScatterND``
with ``reduction="add"`` took 0.57-0.66 ms, the same with ``ScatterElements`` on expanded
indices 3.1 ms, a prefix sum (``CumSum`` of the products, ``Gather`` at ``indptr``,
difference) 0.60 ms but with errors of 6e-5 on scores of order 1 (differences of large float32
prefix sums), the dense-input graph 270-280 ms (it multiplies every column), and the numpy
runtime 0.74-0.93 ms. onnxruntime's contrib ``com.microsoft.SparseToDenseMatMul`` (a CSR
``SparseTensor`` input times the dense used-column weights) took 0.36 ms at batch 1000 but
32-37 us at batch 1, three times this graph's 9-12 us (building the Python ``SparseTensor``
and ``OrtValue`` each call; the numpy runtime: 19-24 us), and it cannot remap columns itself:
the caller would have to map input columns to used ones (the file alone would not be the
model), or the file would carry all 2^18 weight rows (20 MiB once folded). Both are within the
goal (<= 3x the numpy runtime at batch 1 and 1000); this graph is faster at batch 1,
self-contained, default-domain (any ONNX runtime) and fed plain arrays, so it is the one
edgesparse writes. The column table costs the file 4 bytes per *used* column (as the dense
graph's column gather does) and onnxruntime 4 bytes per feature once folded (1 MiB at 2^18).
"""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper

from edgesparse.formats.onnx_graph import Graph, real_weights
from edgesparse.ir import LinearIR

__all__ = ["CSR_MIN_OPSET", "INPUTS", "coo_products", "csr_inputs", "csr_products"]

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
    one = _one(g)
    n_rows = g.node("Sub", [g.node("Shape", ["indptr"]), one])
    row_ids = _row_ids(g, one)
    return coo_products(
        g, ir, rows=row_ids, cols="indices", values="values", n_rows=n_rows, sparse=sparse
    )


def coo_products(
    g: Graph, ir: LinearIR, *, rows: str, cols: str, values: str, n_rows: str, sparse: bool
) -> str:
    """``X @ W.T`` (no bias, ``[N, n_outputs]`` float32) of the rows given as triples: the
    int64 row and column and the float32 value of each nonzero (any order, duplicates
    summed); ``n_rows`` is ``[N]`` (int64, one element). Shared with the text input stage
    (:mod:`edgesparse.formats.onnx_text`), whose triples come out of the graph itself."""
    used = np.unique(ir.indices)
    n_used = int(used.size)
    pos = np.searchsorted(used, ir.indices)
    # Row n_used stays zero: the weight row of every column no output uses.
    w = real_weights(g, ir, used, pos, n_rows=n_used + 1, sparse=sparse)
    table_rows = g.node("Gather", [_column_table(g, used, ir.n_features), cols], axis=0)
    one = _one(g)
    products = g.node(
        "Mul", [g.node("Gather", [w, table_rows], axis=0), g.node("Unsqueeze", [values, one])]
    )
    out_shape = g.node(
        "Concat", [n_rows, g.const("n_outputs", np.array([ir.n_outputs], dtype=np.int64))], axis=0
    )
    zeros = g.node("ConstantOfShape", [out_shape], value=_scalar(TensorProto.FLOAT, 0.0))
    row_ids = g.node("Unsqueeze", [rows, one])
    return g.node("ScatterND", [zeros, row_ids, products], reduction="add")


def _one(g: Graph) -> str:
    """The int64 ``[1]`` constant (axis, slice bound), added once."""
    if not any(t.name == "one_i64" for t in g.initializers):
        g.const("one_i64", np.array([1], dtype=np.int64))
    return "one_i64"


def _column_table(g: Graph, used: np.ndarray, n_features: int) -> str:
    """int32 ``[n_features]``: the weight row of each input column (``used.size``, the zero
    row, for unused ones), from constants only: the file stores the used columns (4 bytes
    each), onnxruntime folds the table (4 bytes a feature) at load."""
    n_used = int(used.size)
    width = g.const("n_features", np.array([n_features], dtype=np.int64))
    table = g.node("ConstantOfShape", [width], value=_scalar(TensorProto.INT32, n_used))
    start, step = (
        g.const("zero_i32", np.array(0, np.int32)),
        g.const("one_i32", np.array(1, np.int32)),
    )
    positions = g.node("Range", [start, g.const("n_used", np.array(n_used, np.int32)), step])
    cols = g.const("used_columns", used.astype(np.int32))
    return g.node("ScatterElements", [table, cols, positions], axis=0)


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
