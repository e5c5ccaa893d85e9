"""Input stages in ONNX: the nodes before the linear product of a model with a featurizer
(issue 20), one builder per featurizer kind, and what is refused and why.

* text (:mod:`~edgesparse.formats.onnx_text`): input ``documents`` string ``[N]``; the stage
  yields (row, column, value) triples that feed the CSR-style product of
  :mod:`~edgesparse.formats.onnx_sparse` (opset >= 16). Exported: the ``word`` analyzer with
  every supported token pattern, lowercase or not, stop words; ``CountVectorizer`` /
  ``TfidfVectorizer`` vocabularies with any ``ngram_range``; ``HashingVectorizer`` unigrams
  (signed or not, binary, norms) and word n-grams (opset >= 20: ``StringConcat``); tf-idf.
  Refused: ``char`` / ``char_wb`` analyzers, ``strip_accents``
  (:func:`~edgesparse.formats.onnx_text.check_text`).
* tabular (:mod:`~edgesparse.formats.onnx_tabular`): one input per record column read,
  ``double`` or ``string`` ``[N]``; the stage yields the dense ``[N, n_features]`` float32
  rows for the dense product. Exported: imputers, scalers, one-hot encoders with string or
  numeric categories, drop, unknown ``ignore``/``error``. Refused: categories of mixed
  types or ``None``, one input read both as numbers and categories
  (:func:`~edgesparse.formats.onnx_tabular.check_tabular`).

Which operators: ``com.microsoft`` ``Tokenizer`` and ``MurmurHash3`` (onnxruntime's contrib
domain), ``ai.onnx`` ``StringNormalizer``, ``ai.onnx.ml`` ``LabelEncoder``, and standard math.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from onnx import TensorProto, helper

from edgesparse.errors import InputError
from edgesparse.formats import onnx_lower, onnx_tabular, onnx_text
from edgesparse.formats.onnx_graph import Graph
from edgesparse.ir.tabular import TabularFeaturizer
from edgesparse.ir.text import TextFeaturizer

__all__ = [
    "EXTRA_DOMAINS",
    "default_opset",
    "TEXT_MIN_OPSET",
    "Stage",
    "check_featurizer",
    "features_model",
    "stage",
]

TEXT_MIN_OPSET = 16
"""The text stage's product scatters with ``reduction`` (opset 16)."""

EXTRA_DOMAINS = {"com.microsoft": 1, "ai.onnx.ml": 2}
"""Opsets of the non-default domains the stages use (``LabelEncoder`` string and int64 keys:
ai.onnx.ml 2)."""


@dataclasses.dataclass(frozen=True)
class Stage:
    """What a featurizer stage adds to the graph: its inputs, its features (``x``: the dense
    float32 rows, or ``triples``: row, column, float32 value names plus the row count
    ``[N]``; ``exact``: the float64 rows or values before that cast), extra outputs and the
    metadata the runtime wrapper needs."""

    inputs: list[Any]
    x: str | None
    triples: tuple[str, str, str, str] | None
    exact: str
    outputs: list[tuple[str, int, list[Any]]]
    meta: dict[str, Any]


def check_featurizer(feat: TextFeaturizer | TabularFeaturizer, *, opset: int | None = None) -> None:
    """Raise :class:`InputError` (one line: the featurizer, the parameter and why) when the
    ONNX exporter cannot reproduce ``feat`` exactly; ``opset`` when known."""
    if isinstance(feat, TextFeaturizer):
        onnx_text.check_text(feat, opset=opset)
        if opset is not None and opset < TEXT_MIN_OPSET:
            raise InputError(
                f"a text model's ONNX graph needs opset {TEXT_MIN_OPSET} or later (its "
                f"scatter adds), not {opset}"
            )
    else:
        onnx_tabular.check_tabular(feat)


def stage(g: Graph, feat: TextFeaturizer | TabularFeaturizer, *, opset: int) -> Stage:
    """Add ``feat``'s nodes to ``g`` for a graph of default-domain ``opset`` (see the module
    docstring)."""
    if isinstance(feat, TextFeaturizer):
        return _text_stage(g, feat, opset=opset)
    return _tabular_stage(g, feat)


def _text_stage(g: Graph, feat: TextFeaturizer, *, opset: int) -> Stage:
    rows, cols, values = onnx_text.text_triples(g, feat, opset=opset)
    values32 = g.node("Cast", [values], to=TensorProto.FLOAT)
    n_rows = g.node("Shape", [onnx_text.DOCUMENTS])
    inputs = [helper.make_tensor_value_info(onnx_text.DOCUMENTS, TensorProto.STRING, ["N"])]
    lower = onnx_text.lowercase_form(feat, opset=opset)
    meta = {"input": "text", "n_features": feat.n_features, "lowercase": lower}
    return Stage(inputs, None, (rows, cols, values32, n_rows), values, [], meta)


def _tabular_stage(g: Graph, feat: TabularFeaturizer) -> Stage:
    kinds = onnx_tabular.input_kinds(feat)
    names = _input_names(feat, kinds)
    x64, unknown = onnx_tabular.tabular_features(g, feat, names)
    x = g.node("Cast", [x64], to=TensorProto.FLOAT)
    outputs: list[tuple[str, int, list[Any]]] = []
    if unknown:
        flags = unknown[0] if len(unknown) == 1 else g.node("Concat", unknown, axis=1)
        g.node("Identity", [flags], out=onnx_tabular.UNKNOWN_OUTPUT)
        outputs.append((onnx_tabular.UNKNOWN_OUTPUT, TensorProto.BOOL, ["N", len(unknown)]))
    elem = {
        "string": TensorProto.STRING,
        "number": TensorProto.DOUBLE,
        "double": TensorProto.DOUBLE,
    }
    inputs = [helper.make_tensor_value_info(names[s], elem[k], ["N"]) for s, k in kinds.items()]
    meta = {
        "input": "tabular",
        "n_features": feat.n_features,
        "n_inputs": feat.n_inputs,
        "names": None if feat.names is None else list(feat.names),
        "inputs": [[names[s], s, k] for s, k in kinds.items()],
        "unknown": [c.source for c in feat.columns if c.categories and c.unknown == "error"],
        # String inputs where "" is a category of its own (elsewhere "" means a NaN cell).
        "empty": sorted({c.source for c in feat.columns if c.categories and "" in c.categories}),
    }
    return Stage(inputs, x, None, x64, outputs, meta)


def _input_names(feat: TabularFeaturizer, kinds: dict[int, str]) -> dict[int, str]:
    """Each input's name: the column name it was fitted with, prefixed ``in_`` so that no
    name can clash with the graph's own (``X``, ``label``, ``t12``...); ``in_<position>``
    without names."""
    if feat.names is None:
        return {s: f"in_{s}" for s in kinds}
    return {s: f"in_{feat.names[s]}" for s in kinds}


def default_opset(feat: TextFeaturizer | TabularFeaturizer | None, opset: int) -> int:
    """``opset`` (the exporter's default), raised to 20 for text that is lowercased (the
    exact ``str.lower`` needs opset 20's string ops) or hashed in word n-grams
    (``StringConcat``)."""
    if isinstance(feat, TextFeaturizer):
        if feat.lowercase:
            return max(opset, onnx_lower.LOWER_MIN_OPSET)
        return max(opset, onnx_text.min_opset(feat))
    return opset


def features_model(feat: TextFeaturizer | TabularFeaturizer, *, opset: int | None = None) -> Any:
    """An ONNX model of the stage alone (for tests and debugging): outputs ``rows``, ``cols``
    (int64) and ``values`` for text, ``X`` (``[N, n_features]``) and the ``unknown`` flags
    when any for tabular; the values are float64, before the product's float32 cast.
    ``opset``: by default 17, or what :func:`default_opset` raises it to."""
    opset = default_opset(feat, 17) if opset is None else opset
    check_featurizer(feat, opset=opset)
    g = Graph()
    st = stage(g, feat, opset=opset)
    if st.triples is not None:
        rows, cols, _, _ = st.triples
        outs = [
            (g.node("Identity", [rows], out="rows"), TensorProto.INT64, ["nnz"]),
            (g.node("Identity", [cols], out="cols"), TensorProto.INT64, ["nnz"]),
            (g.node("Identity", [st.exact], out="values"), TensorProto.DOUBLE, ["nnz"]),
        ]
    else:
        x = g.node("Identity", [st.exact], out="X")
        outs = [(x, TensorProto.DOUBLE, ["N", feat.n_features])]
    outs += st.outputs
    graph = helper.make_graph(
        g.nodes,
        "edgesparse-features",
        st.inputs,
        [helper.make_tensor_value_info(n, t, s) for n, t, s in outs],
        initializer=g.initializers,
        value_info=g.value_info,
    )
    opsets = [helper.make_opsetid("", opset)]
    opsets += [helper.make_opsetid(d, v) for d, v in EXTRA_DOMAINS.items()]
    model = helper.make_model(graph, opset_imports=opsets, producer_name="edgesparse")
    model.ir_version = helper.find_min_ir_version_for(opsets, ignore_unknown=True)
    return model
