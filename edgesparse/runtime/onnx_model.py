"""An edgesparse ONNX model behind scikit-learn's prediction methods, run by onnxruntime.

Imports only numpy, onnxruntime (on first load), the standard library and the numpy runtime
(whose input validation it shares), because it runs on devices where the ``onnx`` package is
absent. What the wrapper needs to know (head, classes,
feature count, whether ``predict_proba`` exists) is read from the JSON the exporter
(:mod:`edgesparse.formats.onnx`) stores in the model's ``metadata_props``.

Session settings, on purpose:

* ``intra_op_num_threads = threads`` (default 1), ``inter_op_num_threads = 1``, sequential
  execution: predictable latency on small devices.
* ``session.disable_quant_qdq = 1``: for files from edgesparse versions that dequantized the
  int8 weights with ``DequantizeLinear``. Without it, onnxruntime >= 1.2x fuses
  ``DequantizeLinear -> MatMul`` into ``MatMulNBits``, which also quantizes the *activations*
  to int8 (blocks of 32 columns), losing the small columns of mixed-scale inputs; with it,
  onnxruntime folds the weights into float32 at load. Current files dequantize with
  ``Cast -> Mul``, which every session folds into the same float32 weights, so outputs match
  the numpy runtime and ``--check-data`` with any session settings. The ``matmulinteger``
  form quantizes activations by design (uint8, one scale per batch, so a row's output
  depends on the other rows of its batch).

Input forms: a dense-input graph (``X``) gets CSR input densified here, a bounded number of
rows at a time. A CSR-input graph (``indices``, ``values``, ``indptr``; metadata
``"input": "csr"``, see :mod:`edgesparse.formats.onnx_sparse`) gets the CSR arrays of a scipy
matrix (duck-typed: ``.indptr``, ``.indices``, ``.data``, ``.shape``; unsorted and duplicate
column indices are fine and summed) and dense input converted to CSR here (one pass over it, a
bounded number of rows at a time; cheap next to what the dense graph would cost on models that
wide). Both are fed in runs of rows of a bounded number of nonzeros, so the graph's
``[nnz, n_outputs]`` products stay small. Every input is checked as the numpy runtime checks
it (shape, dtype, NaN/inf, CSR structure, column indices in range), with the same errors.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import numpy as np

from edgesparse.errors import FormatError, InputError, IRError, ToolMissingError
from edgesparse.runtime.checks import (
    CsrParts,
    cast_to,
    check_finite,
    csr_parts,
    is_sparse,
    read_dense,
)

METADATA_KEY = "edgesparse"  # same as edgesparse.formats.onnx.METADATA_KEY (no onnx import)
_HEADS = ("identity", "hard", "logistic", "softmax", "modified_huber")
# Densified CSR input is fed to the session in chunks of at most about this many cells.
_DENSE_CHUNK_CELLS = 1 << 22
# A CSR-input graph is fed runs of rows of at most about this many nonzeros x outputs (its
# float32 products: 16 MiB); dense input is converted to CSR this many cells at a time.
_CSR_CHUNK_CELLS = 1 << 22
_CSR_INPUTS = ["indices", "values", "indptr"]  # formats.onnx_sparse.INPUTS (no onnx import)


class OnnxModel:
    """A linear model in an edgesparse ONNX file, with scikit-learn's prediction methods.

    Build it with :func:`edgesparse.load` or :meth:`from_bytes`. Same public surface and
    input checks as :class:`edgesparse.runtime.Model`.

    Attributes:
        classes_: class labels (classifiers only), in scikit-learn's order.
        n_features_in_: number of input features the model expects.
        n_outputs_: number of score columns (1 for binary classifiers and single regressors).
        has_proba: whether ``predict_proba`` exists (as for the original model).
        meta: the exporter's metadata (head, class labels, weights) and what was read off
            the graph's signature (feature count, outputs, label type).
        session: the ``onnxruntime.InferenceSession``.
        input_stage: ``"text"`` (the model takes documents), ``"tabular"`` (records) or
            None (feature rows), from the graph's input stage.
    """

    # Inputs go through the numpy runtime's checks (runtime/checks.py), so that both runtimes
    # refuse the same inputs with the same messages; the graph reads float32.
    _dtype = np.dtype(np.float32)

    def _check_dense(self, X: Any) -> np.ndarray:
        """A dense input, checked (shape, type, NaN/inf) and cast to float32."""
        Xd = read_dense(X, n_features=self.n_features_in_, dtype=self._dtype, cast=False)
        check_finite(Xd)
        return Xd if Xd.dtype == self._dtype else cast_to(Xd, self._dtype)

    def _check_csr(self, X: Any) -> CsrParts:
        """A CSR input's arrays, checked (NaN/inf in ``data`` too), indices as intp."""
        parts = csr_parts(X, n_features=self.n_features_in_)
        check_finite(parts.data)
        return parts._replace(indices=parts.indices.astype(np.intp, copy=False))

    def __init__(self, session: Any, meta: dict[str, Any]) -> None:
        self.session = session
        self.meta = meta
        self.n_features_in_ = int(meta["n_features"])
        self.n_outputs_ = int(meta["n_outputs"])
        self.has_proba = bool(meta["has_proba"])
        self._head = str(meta["head"])
        self._is_classifier = self._head != "identity"
        self._one_column = bool(meta["squeeze"]) and self.n_outputs_ == 1
        self._csr_input = meta.get("input") == "csr"
        # An input stage in the graph: raw documents or records in (runtime.onnx_inputs).
        self.input_stage: str | None = meta["input"] if meta.get("input") in _STAGES else None
        self._records = None
        if self.input_stage == "tabular":
            # Imported here: a model without an input stage needs no stage runtime.
            from edgesparse.runtime.onnx_inputs import RecordFeeds

            self._records = RecordFeeds(meta)
        self._classes = None
        if self._is_classifier:
            self._classes = np.asarray(meta["classes"], dtype=_CLASS_DTYPES[meta["classes_dtype"]])
            self._classes.setflags(write=False)

    @classmethod
    def from_bytes(cls, buf: bytes | bytearray | memoryview, *, threads: int = 1) -> OnnxModel:
        """Load ONNX bytes written by edgesparse into an onnxruntime session.

        Raises :class:`FormatError` when onnxruntime cannot load them or the edgesparse
        metadata is missing or inconsistent with the graph, :class:`ToolMissingError` when
        onnxruntime is not installed.
        """
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise InputError(f"threads must be an integer >= 1, got {threads!r}")
        try:
            import onnxruntime as ort
        except ImportError:
            raise ToolMissingError(
                "onnxruntime is needed to run .onnx models: pip install onnxruntime"
            ) from None
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.log_severity_level = 3  # errors only; warnings would go to stderr
        opts.add_session_config_entry("session.disable_quant_qdq", "1")  # see module doc
        try:
            session = ort.InferenceSession(
                bytes(buf), sess_options=opts, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime's errors share no public base class
            raise FormatError(f"onnxruntime cannot load this model: {_first_line(exc)}") from None
        props = session.get_modelmeta().custom_metadata_map
        return cls(session, _check_meta(props.get(METADATA_KEY), session))

    # -- public API, scikit-learn semantics ---------------------------------------------------
    @property
    def classes_(self) -> np.ndarray:
        """Class labels, as the original classifier's ``classes_``."""
        if self._classes is None:
            raise AttributeError("a regressor has no classes_")
        return self._classes

    def decision_function(self, X: Any) -> np.ndarray:
        """Raw scores ``X @ W.T + b``; 1-D for binary classifiers, as scikit-learn returns."""
        scores = self._run("scores" if self._is_classifier else "variable", X)
        return scores[:, 0] if self._one_column else scores

    def predict(self, X: Any) -> np.ndarray:
        """Class labels (the graph's ``label``) or predicted values (``variable``)."""
        if not self._is_classifier:
            return self.decision_function(X)
        assert self._classes is not None
        # onnxruntime returns strings as an object array; give them the labels' dtype.
        return np.asarray(self._run("label", X), dtype=self._classes.dtype)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities (the graph's ``probabilities``), where the original has them."""
        if not self.has_proba:
            kind = "regressor" if not self._is_classifier else f"{self._head!r} classifier"
            raise AttributeError(
                f"this {kind} has no predict_proba (the original model has none either)"
            )
        return self._run("probabilities", X)

    def __repr__(self) -> str:
        kind = "classifier" if self._is_classifier else "regressor"
        return (
            f"<edgesparse.OnnxModel {kind} head={self._head} "
            f"shape=({self.n_outputs_}, {self.n_features_in_}) {self.meta.get('weights', '')}"
            f"{' + pow2 columns' if self.meta.get('columns') == 'pow2' else ''}>"
        )

    # -- running ------------------------------------------------------------------------------
    def _run(self, output: str, X: Any) -> np.ndarray:
        if self.input_stage == "text":
            # "simple": StringNormalizer alone (opset < 20), which differs on two characters.
            simple = self.meta.get("lowercase") == "simple"
            from edgesparse.runtime.onnx_inputs import document_feeds

            feeds = document_feeds(X, lowercase=simple)
            parts = [self.session.run([output], feed)[0] for feed in feeds]
            return parts[0] if len(parts) == 1 else np.concatenate(parts)
        if self._records is not None:
            return self._run_records(output, X)
        if self._csr_input:
            return self._run_csr(output, X)
        if not is_sparse(X):
            X = np.ascontiguousarray(self._check_dense(X))
            return self._session_run(output, {"X": X})
        data, indices, indptr, n_rows = self._check_csr(X)
        step = max(1, _DENSE_CHUNK_CELLS // self.n_features_in_)
        parts = []
        for lo in range(0, n_rows, step):
            hi = min(n_rows, lo + step)
            dense = np.zeros((hi - lo, self.n_features_in_), dtype=np.float32)
            a, b = int(indptr[lo]), int(indptr[hi])
            rows = np.repeat(np.arange(hi - lo), np.diff(indptr[lo : hi + 1]))
            # add.at sums duplicate entries, as scipy's toarray does.
            np.add.at(dense, (rows, indices[a:b]), cast_to(data[a:b], self._dtype))
            parts.append(self._session_run(output, {"X": dense}))
        return np.concatenate(parts)

    def _run_records(self, output: str, X: Any) -> np.ndarray:
        """A tabular-stage graph on records: unknown categories of ``handle_unknown="error"``
        columns and non-finite scores (a missing cell where no imputer fills it) raise."""
        assert self._records is not None
        feeds, cells = self._records.feeds(X)
        names = [output, "unknown"] if self._records.unknown else [output]
        results = self.session.run(names, feeds)
        if self._records.unknown:
            self._records.check_unknown(results[1], cells)
        out = results[0]
        if out.dtype.kind == "f" and not np.isfinite(out).all():
            raise InputError(
                "X contains NaN or infinity: a record has a missing or infinite value in a "
                "numeric column that no imputer fills"
            )
        return out

    def _run_csr(self, output: str, X: Any) -> np.ndarray:
        """A CSR-input graph on CSR or dense ``X``: runs of rows of a bounded number of
        nonzeros (a single row may exceed it: rows are never split)."""
        if is_sparse(X):
            data, indices, indptr, _ = self._check_csr(X)
            values = data if data.dtype == np.float32 else cast_to(data, self._dtype)
            return self._feed_csr(output, values, indices, indptr)
        Xd = self._check_dense(X)  # float32, finite
        step = max(1, _CSR_CHUNK_CELLS // self.n_features_in_)
        parts = []
        for lo in range(0, Xd.shape[0], step):
            values, indices, indptr = _dense_to_csr(Xd[lo : lo + step])
            parts.append(self._feed_csr(output, values, indices, indptr))
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def _feed_csr(
        self, output: str, values: np.ndarray, indices: np.ndarray, indptr: np.ndarray
    ) -> np.ndarray:
        indices = indices.astype(np.int64, copy=False)
        indptr = indptr.astype(np.int64, copy=False)
        nnz, n_rows = int(indptr[-1]), indptr.size - 1
        step = max(1, _CSR_CHUNK_CELLS // self.n_outputs_)
        if nnz <= step:  # the common case: one run
            feed = {"indices": indices, "values": values, "indptr": indptr}
            return self._session_run(output, feed)
        starts = np.searchsorted(indptr, np.arange(0, nnz, step), side="right") - 1
        starts[0] = 0  # leading empty rows belong to the first run (they have outputs too)
        bounds = [*np.unique(starts).tolist(), n_rows]
        parts = []
        for r0, r1 in itertools.pairwise(bounds):
            a, b = int(indptr[r0]), int(indptr[r1])
            feed = {
                "indices": indices[a:b],
                "values": values[a:b],
                "indptr": indptr[r0 : r1 + 1] - a,
            }
            parts.append(self._session_run(output, feed))
        return np.concatenate(parts)

    def _session_run(self, output: str, feed: dict[str, np.ndarray]) -> np.ndarray:
        """``output`` of the graph on checked (finite) feature rows; a non-finite score there
        can only be a float32 overflow, refused as the numpy runtime refuses it (an inf or
        NaN score would make an arbitrary label and NaN probabilities)."""
        scores_name = "scores" if self._is_classifier else "variable"
        names = [output] if output == scores_name else [output, scores_name]
        results = self.session.run(names, feed)
        if not np.isfinite(results[-1]).all():
            raise InputError(
                "Input X makes a score overflow this model's float32 arithmetic; scale the "
                "input down"
            )
        return results[0]


def _dense_to_csr(X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(values, column indices, indptr) of a dense 2-D array's nonzeros, row by row."""
    n_cols = X.shape[1]
    flat = np.flatnonzero(X)  # row-major: rows in order, columns sorted within a row
    rows = flat // n_cols
    indptr = np.zeros(X.shape[0] + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=X.shape[0]), out=indptr[1:])
    return X.reshape(-1)[flat], flat - rows * n_cols, indptr


_CLASS_DTYPES = {"int64": np.int64, "float64": np.float64, "str": str}
_STAGES = ("text", "tabular")


def _check_meta(raw: str | None, session: Any) -> dict[str, Any]:
    """The exporter's metadata, completed from the session's inputs and outputs.

    The file stores only what the graph cannot tell (head, class labels, squeeze); the
    feature count, the number of score columns, the label type and whether there are
    probabilities are read off the graph's signature, and everything is checked for
    consistency.
    """
    if raw is None:
        raise FormatError(
            f"no {METADATA_KEY!r} metadata: not an ONNX model written by edgesparse "
            "(run it with onnxruntime directly)"
        )
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise FormatError(f"invalid {METADATA_KEY!r} metadata: {_first_line(exc)}") from None
    if not isinstance(meta, dict) or meta.get("head") not in _HEADS:
        raise FormatError(f"invalid {METADATA_KEY!r} metadata: no known head")
    head = meta["head"]
    outputs = {o.name: o for o in session.get_outputs()}
    n_features = _input_features(meta, session)
    scores = outputs.get("variable" if head == "identity" else "scores")
    if scores is None or len(scores.shape) != 2 or not isinstance(scores.shape[1], int):
        raise FormatError(f"the graph lacks the score output of a {head!r} model")
    out = {**meta, "n_features": n_features, "n_outputs": scores.shape[1]}
    out["has_proba"] = "probabilities" in outputs
    if head == "identity":
        out.update(classes=None, classes_dtype=None, squeeze=meta.get("squeeze") is True)
        return out
    label = outputs.get("label")
    kind = None if label is None else _LABEL_TYPES.get(label.type)
    classes = meta.get("classes")
    n = len(classes) if isinstance(classes, list) else 0
    if kind is None or n < 2 or scores.shape[1] != (1 if n == 2 else n):
        raise FormatError("the classes in the metadata do not match the graph's outputs")
    out.update(classes_dtype=kind, squeeze=True)
    return out


def _input_features(meta: dict[str, Any], session: Any) -> int:
    """The feature count: off ``X``'s shape for a dense-input graph, from the metadata for a
    CSR-input one (whose inputs have no feature axis), after checking that the graph's
    inputs are those the metadata says."""
    inputs = {i.name: i for i in session.get_inputs()}
    if meta.get("input") in _STAGES:
        return _stage_features(meta, list(inputs))
    if meta.get("input", "dense") == "csr":
        n = meta.get("n_features")
        if list(inputs) != _CSR_INPUTS or isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise FormatError(
                "a CSR-input graph must take indices, values, indptr and store n_features >= 1"
            )
        return n
    x = inputs.get("X")
    if meta.get("input", "dense") != "dense" or list(inputs) != ["X"]:
        raise FormatError("the graph's input must be X [N, n_features]")
    if len(x.shape) != 2 or not isinstance(x.shape[1], int):
        raise FormatError("the graph's input must be X [N, n_features]")
    return x.shape[1]


def _stage_features(meta: dict[str, Any], inputs: list[str]) -> int:
    """The feature count of a graph with an input stage, after checking its inputs: text
    reads ``documents``, tabular the record columns the metadata lists."""
    n = meta.get("n_features")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise FormatError("an input-stage graph must store n_features >= 1")
    if meta["input"] == "text":
        expected = ["documents"]
    else:
        ok = isinstance(meta.get("inputs"), list) and isinstance(meta.get("n_inputs"), int)
        try:
            expected = [str(row[0]) for row in meta["inputs"]] if ok else []
            from edgesparse.runtime.onnx_inputs import RecordFeeds

            RecordFeeds(meta)
        except (TypeError, ValueError, KeyError, IndexError, IRError):
            ok = False
        if not ok:
            raise FormatError("invalid 'edgesparse' metadata: no valid record inputs")
    if inputs != expected:
        raise FormatError(f"the graph's inputs must be {', '.join(expected)}")
    return n


_LABEL_TYPES = {"tensor(int64)": "int64", "tensor(double)": "float64", "tensor(string)": "str"}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0].strip()
