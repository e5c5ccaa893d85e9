"""``LinearIR``: the one description every frontend produces and every pass, format and runtime
consumes.

A linear model computes ``scores = X @ W.T + bias`` (``W`` is ``n_outputs x n_features``) and a
*head* turns scores into outputs exactly as scikit-learn does:

``identity``
    regression; ``predict`` returns the scores (1-D when ``squeeze`` is true).
``hard``
    classifier without ``predict_proba`` (hinge, ridge, perceptron, ...).
``logistic``
    ``sigmoid(scores)``; binary gives ``[1 - p, p]``, several outputs are one-vs-rest and each
    row is normalised to sum to one (scikit-learn's ``_predict_proba_lr``).
``softmax``
    multinomial logistic regression.
``modified_huber``
    ``(clip(scores, -1, 1) + 1) / 2``, normalised as ``SGDClassifier`` does.

For every classifier head, ``predict`` is ``classes[scores > 0]`` when there is one output
(binary) and ``classes[argmax(scores)]`` otherwise.

Weights are canonical CSR (``indptr``, ``indices``, ``values``): sorted column indices, no
duplicates, no stored zeros. ``values`` are float64 (lossless), float32, or int8 with float32
``scales`` per row (``len(scales) == n_outputs``) or per tensor (``len(scales) == 1``) and,
optionally, one power-of-two exponent per input column (``col_exponents``, int8): the real
weight is ``W ≈ diag(r) · Q · diag(2^e)``, i.e. ``w[i, j] = scales[i] * q[i, j] * 2**e[j]``.
Values may also be int16 with per-row scales: rows holding a ``|q| > 127`` are *wide* (16-bit
steps, ``|q| <= 32767``), every other row is int8 (see :attr:`LinearIR.wide_rows`); the formula
is the same,
computed in float32 (the power of two is exact, so the order of the products does not matter).
Without ``col_exponents`` every ``e`` is 0 and ``w = s*q``. Runtimes may apply ``2^e`` to the
input instead (``x[j] * 2**e[j]``, one multiply per used input): the same numbers. Exponents of
columns no weight uses are normalised to 0. Invariants are checked once, on construction,
including the arithmetic they feed (every ``scale * 127`` and ``scale * 2^e * 127`` is a
finite float32, ``scale * 2^e`` a normal one, and without float64 values every bias fits a
float32);
a pass that produces an invalid IR fails here, naming the field.

``input_stats`` (optional :class:`FeatureStats`) is what is known about the raw input columns'
distribution (a scaler's centre and scale, or statistics of data the user gave). Passes use it
(quantization chooses column exponents and corrects the bias with it); formats do not store it.

``featurizer`` (optional :class:`~edgesparse.ir.text.TextFeaturizer` or
:class:`~edgesparse.ir.tabular.TabularFeaturizer`) is the input stage: how raw documents or
records become the ``n_features`` columns the weights see (its own contract is in
:mod:`edgesparse.ir.text` / :mod:`edgesparse.ir.tabular`). Passes that do not know it
carry it through unchanged (:meth:`LinearIR.replace` keeps it).

Imports only numpy and the standard library: the on-device runtime uses this module.
"""

from __future__ import annotations

import types
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from edgesparse.errors import IRError
from edgesparse.ir.csr import CsrFault, indices_fault, indptr_fault
from edgesparse.ir.stats import FeatureStats, Frozen

if TYPE_CHECKING:  # imported by the check, when a model has an input stage
    from edgesparse.ir.tabular import TabularFeaturizer
    from edgesparse.ir.text import TextFeaturizer

HEADS = ("identity", "hard", "logistic", "softmax", "modified_huber")
"""Every head kind, in the order the ``.esb`` format numbers them."""

PROBA_HEADS = ("logistic", "softmax", "modified_huber")
"""Heads for which ``predict_proba`` exists."""

VALUE_DTYPES = (np.dtype(np.float64), np.dtype(np.float32), np.dtype(np.int8), np.dtype(np.int16))

QUANTIZED_DTYPES = (np.dtype(np.int8), np.dtype(np.int16))
"""Value dtypes that are integer steps of a scale (``w = scale * q * 2^e``)."""

INT8_MAX, INT16_MAX = 127, 32767
"""Largest |q| of a narrow (int8) and of a wide (int16) row; -128 and -32768 are never used."""

EXPONENT_RANGE = (-126, 127)
"""Allowed column exponents: ``2^e`` is a normal float32 for each."""

_F32 = np.finfo(np.float32)


_FIELDS = (
    "indptr",
    "indices",
    "values",
    "n_features",
    "bias",
    "head",
    "classes",
    "scales",
    "squeeze",
    "provenance",
    "col_exponents",
    "input_stats",
    "featurizer",
)


class LinearIR(Frozen):
    """A validated, immutable linear model: CSR weights, bias, head, class labels, provenance.

    Build it with keyword arguments; use :meth:`replace` to derive a changed copy (which is
    validated again). Arrays are made read-only so that nothing mutates a shared IR.
    """

    indptr: np.ndarray
    indices: np.ndarray
    values: np.ndarray
    n_features: int
    bias: np.ndarray
    head: str
    classes: np.ndarray | None
    scales: np.ndarray | None
    squeeze: bool
    provenance: Mapping[str, str]
    col_exponents: np.ndarray | None
    input_stats: FeatureStats | None
    featurizer: TextFeaturizer | TabularFeaturizer | None

    def __init__(
        self,
        *,
        indptr: Any,
        indices: Any,
        values: Any,
        n_features: int,
        bias: Any,
        head: str,
        classes: Any = None,
        scales: Any = None,
        squeeze: bool = True,
        provenance: Mapping[str, str] | None = None,
        col_exponents: Any = None,
        input_stats: FeatureStats | None = None,
        featurizer: TextFeaturizer | TabularFeaturizer | None = None,
    ) -> None:
        given = locals()
        for name in _FIELDS:  # as given; _check replaces them by checked, frozen copies
            object.__setattr__(self, name, given[name])
        if provenance is None:
            object.__setattr__(self, "provenance", {})
        self._check()

    def __repr__(self) -> str:
        return (
            f"LinearIR(head={self.head!r}, shape={self.shape}, nnz={self.nnz}, {self.quantization})"
        )

    def _check(self) -> None:
        def fix(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        indptr, indices, values, bias, n_features = _checked_weights(self)
        fix("n_features", n_features)
        n_outputs = indptr.size - 1
        scales = _checked_scales(self.scales, values, n_outputs)
        # Largest |q| a row may hold: 32767 in a wide row, 127 in every other.
        q_max = np.where(_wide_rows(indptr, values), INT16_MAX, INT8_MAX)
        exponents = self._checked_exponents(indptr, indices, scales, n_features, q_max)
        _check_arithmetic(scales, q_max, values, bias)
        _check_input_stats(self.input_stats, n_features)
        _check_featurizer(self.featurizer, n_features)
        classes = _checked_classes(self, n_outputs)
        if classes is not None:
            fix("squeeze", True)

        prov = {str(k): str(v) for k, v in dict(self.provenance).items()}
        for arr in (indptr, indices, values, bias):
            arr.setflags(write=False)
        if scales is not None:
            scales.setflags(write=False)
        fix("col_exponents", exponents)
        fix("indptr", indptr)
        fix("indices", indices)
        fix("values", values)
        fix("bias", bias)
        fix("scales", scales)
        fix("classes", classes)
        fix("provenance", types.MappingProxyType(prov))

    def _checked_exponents(
        self,
        indptr: np.ndarray,
        indices: np.ndarray,
        scales: np.ndarray | None,
        n_features: int,
        q_max: np.ndarray,
    ) -> np.ndarray | None:
        if self.col_exponents is None:
            return None
        if scales is None:
            raise IRError("col_exponents: only int8 values have column exponents")
        exps = _as_array(self.col_exponents, "col_exponents", np.int8)
        if exps.ndim != 1 or exps.size != n_features:
            raise IRError(
                f"col_exponents: has {exps.size} entries, expected n_features={n_features}"
            )
        # Columns no weight uses get exponent 0: keep the used columns' exponents only (no
        # n_features-sized masks; e_nz is one int8 per stored weight).
        e_nz = exps[indices]
        exps.fill(0)
        exps[indices] = e_nz
        lo, hi = EXPONENT_RANGE
        if exps.min() < lo or exps.max() > hi:
            raise IRError(f"col_exponents: every exponent must lie in [{lo}, {hi}]")
        if indices.size and _steps_leave_float32(indptr, e_nz, scales, q_max):
            raise IRError(
                "col_exponents: scale * 2^exponent leaves the float32 range for some weight"
            )
        exps.setflags(write=False)
        return exps

    # -- derived facts -------------------------------------------------------------------
    @property
    def n_outputs(self) -> int:
        """Number of score rows (1 for binary classifiers and single-output regressors)."""
        return int(self.indptr.size - 1)

    @property
    def shape(self) -> tuple[int, int]:
        """``(n_outputs, n_features)`` of the weight matrix."""
        return (self.n_outputs, self.n_features)

    @property
    def nnz(self) -> int:
        """Number of stored (nonzero) weights."""
        return int(self.values.size)

    @property
    def is_classifier(self) -> bool:
        """True for every head but ``identity``."""
        return self.head != "identity"

    @property
    def has_proba(self) -> bool:
        """True when the original model has ``predict_proba``."""
        return self.head in PROBA_HEADS

    @property
    def quantization(self) -> str:
        """``float64``, ``float32``, ``int8-per-row``, ``int8-per-tensor`` or
        ``int8/int16-per-row`` (int8 with some rows raised to int16, see :attr:`wide_rows`)."""
        if self.values.dtype == np.int16:
            return "int8/int16-per-row"
        if self.values.dtype != np.int8:
            return str(self.values.dtype)
        assert self.scales is not None
        return "int8-per-row" if self.scales.size == self.n_outputs else "int8-per-tensor"

    @property
    def column_scaling(self) -> str:
        """``pow2`` when int8 weights carry per-column power-of-two exponents, else ``none``."""
        return "none" if self.col_exponents is None else "pow2"

    @property
    def is_quantized(self) -> bool:
        """True when the weights are integer steps of scales (int8, or int8/int16 rows)."""
        return self.values.dtype in QUANTIZED_DTYPES

    @property
    def wide_rows(self) -> np.ndarray:
        """Boolean mask of the rows that need 16 bits (some ``|q| > 127``); formats store
        every other row as int8. All false unless the values are int16."""
        return _wide_rows(self.indptr, self.values)

    def row_ids(self) -> np.ndarray:
        """Row index of every stored value (length ``nnz``)."""
        return np.repeat(np.arange(self.n_outputs, dtype=np.int64), np.diff(self.indptr))

    def real_values(self, *, dtype: Any = np.float64, rows: slice | None = None) -> np.ndarray:
        """Stored weights as real numbers (``scales[row] * q`` for int8), in ``dtype``;
        ``rows`` (a slice with step 1): only those output rows' weights, the same numbers."""
        a, b, r0, r1 = 0, self.nnz, 0, self.n_outputs
        if rows is not None:
            r0, r1, _ = rows.indices(self.n_outputs)
            a, b = int(self.indptr[r0]), int(self.indptr[max(r0, r1)])
        if not self.is_quantized:
            return self.values[a:b].astype(dtype)
        assert self.scales is not None
        if self.scales.size == 1:
            s = self.scales
        else:
            counts = np.diff(self.indptr[r0 : max(r0, r1) + 1])
            s = self.scales[r0:r1].repeat(counts)
        # Multiply in float32 first: that is the contract the runtimes implement.
        w = s.astype(np.float32) * self.values[a:b].astype(np.float32)
        if self.col_exponents is not None:
            # Exact: a power of two within the checked range changes only the exponent.
            w = np.ldexp(w, self.col_exponents[self.indices[a:b]].astype(np.int32))
        return w.astype(dtype, copy=False)

    def to_dense(self, *, dtype: Any = np.float64) -> np.ndarray:
        """The weight matrix as a dense ``(n_outputs, n_features)`` array."""
        out = np.zeros(self.shape, dtype=dtype)
        out[self.row_ids(), self.indices] = self.real_values(dtype=dtype)
        return out

    def replace(self, **changes: Any) -> LinearIR:
        """A copy with ``changes`` applied, validated again."""
        unknown = sorted(set(changes) - set(_FIELDS))
        if unknown:
            raise TypeError(f"LinearIR has no field {unknown[0]!r}")
        return LinearIR(**{**{name: getattr(self, name) for name in _FIELDS}, **changes})


def _checked_weights(ir: LinearIR) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """(indptr, indices, values, bias, n_features) of ``ir``, as fresh arrays, checked."""
    indptr = _as_array(ir.indptr, "indptr", np.int64)
    indices = _as_array(ir.indices, "indices", np.int32)
    values = np.asarray(ir.values)
    if values.dtype not in VALUE_DTYPES:
        raise IRError(f"values: dtype {values.dtype} is not one of float64, float32, int8, int16")
    bias = _as_array(ir.bias, "bias", np.float64)
    if indptr.ndim != 1 or indices.ndim != 1 or values.ndim != 1 or bias.ndim != 1:
        raise IRError("indptr, indices, values and bias must all be 1-D arrays")
    n_outputs = indptr.size - 1
    if n_outputs < 1:
        raise IRError("indptr: needs at least 2 entries (one output row)")
    n_features = int(ir.n_features)
    if n_features < 1 or n_features > np.iinfo(np.int32).max:
        raise IRError(f"n_features: {n_features} is out of range")
    if bias.size != n_outputs:
        raise IRError(f"bias: has {bias.size} entries, expected n_outputs={n_outputs}")
    _check_csr(indptr, indices, values, n_features)
    if values.dtype.kind == "f" and not np.all(np.isfinite(values)):
        raise IRError("values: weights contain NaN or Inf")
    if not np.all(np.isfinite(bias)):
        raise IRError("bias: contains NaN or Inf")
    return indptr, indices, values, bias, n_features


def _checked_scales(
    scales: np.ndarray | None, values: np.ndarray, n_outputs: int
) -> np.ndarray | None:
    """The scales as fresh float32, where the values need them (int8, int16)."""
    if values.dtype in QUANTIZED_DTYPES:
        if scales is None:
            raise IRError("scales: int8 values need scales")
        scales = _as_array(scales, "scales", np.float32)
        if scales.ndim != 1 or scales.size not in (1, n_outputs):
            raise IRError(
                f"scales: has {scales.size} entries, expected 1 (per tensor) "
                f"or n_outputs={n_outputs} (per row)"
            )
        if not np.all(np.isfinite(scales)) or not np.all(scales > 0):
            raise IRError("scales: every scale must be finite and > 0")
        if values.dtype == np.int8 and np.any(values == -128):
            raise IRError("values: int8 values must lie in [-127, 127]")
        if values.dtype == np.int16:
            if scales.size != n_outputs:
                raise IRError("scales: int16 rows need one scale per row")
            if np.any(values == -32768):
                raise IRError("values: int16 values must lie in [-32767, 32767]")
    elif scales is not None:
        raise IRError("scales: only int8 values have scales")
    return scales


def _check_arithmetic(
    scales: np.ndarray | None, q_max: np.ndarray, values: np.ndarray, bias: np.ndarray
) -> None:
    # The arithmetic the fields feed, not only the fields: the largest int8 weight
    # (scale * 127, computed in float32 before any 2^e; 32767 in a wide row) and, for the
    # float32 runtimes (float32 and integer values), every bias must be finite float32
    # numbers. Otherwise every score is NaN/Inf and every prediction one arbitrary class.
    if scales is not None:
        top = scales.astype(np.float64) * (q_max if scales.size > 1 else INT8_MAX)
        over = _bits(top) > _bits(_F32.max)  # top > max (both >= 0)
        if np.any(over & (q_max == INT8_MAX)):
            raise IRError("scales: some scale * 127 overflows float32 (largest int8 weight)")
        if np.any(over):
            raise IRError("scales: some scale * 32767 overflows float32 (largest int16 weight)")
    if values.dtype != np.float64 and np.any(_bits(np.abs(bias)) > _bits(_F32.max)):
        raise IRError("bias: some bias overflows float32 (the arithmetic of this model)")


def _bits(x: Any) -> np.ndarray:
    """The IEEE bits of float64 ``x`` read as int64. For numbers >= 0 (and -0.0 against a
    bound > 0) they order as the numbers do, so the loader compares non-negative magnitudes
    with integer loops: numpy's float64 comparison loops are code a device process would
    otherwise map for these checks alone (1 MiB of RSS measured, issue 19)."""
    return np.asarray(x, dtype=np.float64).view(np.int64)


def _steps_leave_float32(
    indptr: np.ndarray, e_nz: np.ndarray, scales: np.ndarray, q_max: np.ndarray
) -> bool:
    """True when some stored weight's step ``s * 2^e`` is below the smallest normal float32 or
    its largest value ``s * 2^e * q_max`` above the largest float32 (``e_nz``: each stored
    weight's column exponent, in CSR order; at least one weight).

    Both products are exact in float64 (24-bit significands times a power of two, times at
    most 15 bits) and grow with ``e``, so checking each row's smallest and largest exponent
    refuses exactly what checking every weight does, in memory of the number of rows."""
    starts = indptr[:-1]
    filled = np.diff(indptr) > 0
    starts = starts[filled]
    e_lo = np.minimum.reduceat(e_nz, starts).astype(np.int32)
    e_hi = np.maximum.reduceat(e_nz, starts).astype(np.int32)
    s = scales.astype(np.float64)
    if s.size > 1:
        s = s[filled]
    step_lo = np.ldexp(s, e_lo)
    top = np.ldexp(s, e_hi) * q_max[filled]
    # step_lo < tiny and top > max, on the bits (every number here is > 0).
    return bool(np.any(_bits(step_lo) < _bits(_F32.tiny)) or np.any(_bits(top) > _bits(_F32.max)))


def _check_input_stats(stats: FeatureStats | None, n_features: int) -> None:
    """What is known of the raw input covers exactly the model's input columns."""
    if stats is not None:
        if not isinstance(stats, FeatureStats):
            raise IRError("input_stats: must be a FeatureStats")
        if stats.center.size != n_features:
            raise IRError(
                f"input_stats: has {stats.center.size} columns, expected n_features={n_features}"
            )


def _check_featurizer(
    featurizer: TextFeaturizer | TabularFeaturizer | None, n_features: int
) -> None:
    """The input stage produces exactly the model's input columns."""
    if featurizer is not None:
        from edgesparse.ir.tabular import TabularFeaturizer
        from edgesparse.ir.text import TextFeaturizer

        if not isinstance(featurizer, (TextFeaturizer, TabularFeaturizer)):
            raise IRError("featurizer: must be a TextFeaturizer or a TabularFeaturizer")
        if featurizer.n_features != n_features:
            raise IRError(
                f"featurizer: produces {featurizer.n_features} features, expected "
                f"n_features={n_features}"
            )


def _checked_classes(ir: LinearIR, n_outputs: int) -> np.ndarray | None:
    """The class labels as a fresh read-only array (None for a regressor), checked against
    the head and the number of output rows."""
    if ir.head not in HEADS:
        raise IRError(f"head: {ir.head!r} is not one of {', '.join(HEADS)}")
    classes = ir.classes
    if ir.head == "identity":
        if classes is not None:
            raise IRError("classes: a regressor (head 'identity') has no classes")
        if ir.squeeze not in (True, False):
            raise IRError("squeeze: must be a bool")
        if ir.squeeze and n_outputs != 1:
            raise IRError("squeeze: only a single-output regressor can return 1-D output")
    else:
        if classes is None:
            raise IRError(f"classes: a classifier (head {ir.head!r}) needs class labels")
        classes = np.asarray(classes)
        if classes.dtype.kind in "US":
            classes = classes.astype(str)
        elif classes.dtype.kind in "iub":
            classes = classes.astype(np.int64)
        elif classes.dtype.kind == "f":
            classes = classes.astype(np.float64)
        else:
            raise IRError(f"classes: labels of dtype {classes.dtype} are not supported")
        if classes.ndim != 1 or classes.size < 2:
            raise IRError("classes: needs a 1-D array of at least 2 labels")
        expected = 1 if classes.size == 2 else classes.size
        if n_outputs != expected:
            raise IRError(
                f"classes: {classes.size} classes need {expected} output row(s), "
                f"weights have {n_outputs}"
            )
        _check_labels(classes.tolist())
        if ir.head == "softmax" and n_outputs < 2:
            raise IRError("head: 'softmax' needs at least 3 classes (binary is 'logistic')")
        classes.setflags(write=False)
    return classes


def from_dense(
    weights: np.ndarray,
    *,
    bias: np.ndarray,
    head: str,
    classes: np.ndarray | None = None,
    squeeze: bool = True,
    provenance: Mapping[str, str] | None = None,
) -> LinearIR:
    """Build a float64 :class:`LinearIR` from a dense 2-D weight matrix (zeros are dropped)."""
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 2:
        raise IRError(f"weights: expected a 2-D matrix, got {w.ndim}-D")
    if not np.all(np.isfinite(w)):
        raise IRError("values: weights contain NaN or Inf")
    rows, cols = np.nonzero(w)
    indptr = np.zeros(w.shape[0] + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=w.shape[0]), out=indptr[1:])
    return LinearIR(
        indptr=indptr,
        indices=cols.astype(np.int32),
        values=w[rows, cols],
        n_features=w.shape[1],
        bias=np.asarray(bias, dtype=np.float64).reshape(-1),
        head=head,
        classes=classes,
        squeeze=squeeze,
        provenance=provenance or {},
    )


def _check_labels(labels: list[Any]) -> None:
    """No NaN label and no label twice: either makes predictions silently wrong (a repeated
    label is predicted for both of its outputs). Linear; the first repeat names its first
    occurrence (-0.0 repeats 0.0)."""
    first: dict[Any, int] = {}
    for i, label in enumerate(labels):
        if label != label:
            raise IRError(f"classes: label {i} is NaN")
        j = first.setdefault(label, i)
        if j != i:
            raise IRError(f"classes: label {i} repeats label {j} (labels must be distinct)")


def _as_array(value: Any, name: str, dtype: Any) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype.kind not in "iuf" and arr.size:
        raise IRError(f"{name}: dtype {arr.dtype} is not numeric")
    if arr.dtype.kind == "f" and np.dtype(dtype).kind in "iu":
        raise IRError(f"{name}: must hold integers, got {arr.dtype}")
    if arr.size and np.dtype(dtype).kind in "iu":
        info = np.iinfo(dtype)
        if arr.min() < info.min or arr.max() > info.max:
            raise IRError(f"{name}: values out of range for {np.dtype(dtype)}")
    return np.array(arr, dtype=dtype, copy=True)


def _check_csr(indptr: np.ndarray, indices: np.ndarray, values: np.ndarray, n_cols: int) -> None:
    fault = indptr_fault(indptr, nnz=indices.size)
    if fault is None and indices.size != values.size:
        fault = CsrFault("end")
    if fault is None:
        fault = indices_fault(indptr, indices, n_cols=n_cols)
    if fault is None:
        if np.any(values == 0):
            raise IRError("values: explicit zeros must not be stored")
        return
    if fault.kind == "start":
        raise IRError(f"indptr: must start at 0, starts at {indptr[0]}")
    if fault.kind == "decreases":
        raise IRError(f"indptr: decreases at row {fault.at}")
    if fault.kind == "end":
        raise IRError(
            f"indptr: ends at {indptr[-1]} but there are {indices.size} indices "
            f"and {values.size} values"
        )
    if fault.kind == "range":
        raise IRError(f"indices: a column index is outside [0, {n_cols})")
    raise IRError(f"indices: not strictly increasing within a row at position {fault.at}")


def _wide_rows(indptr: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Rows holding a value outside the int8 range (only int16 values can)."""
    n_outputs = indptr.size - 1
    if values.dtype != np.int16 or values.size == 0:
        return np.zeros(n_outputs, dtype=bool)
    rows = np.repeat(np.arange(n_outputs), np.diff(indptr))
    return np.bincount(rows[np.abs(values.astype(np.int32)) > INT8_MAX], minlength=n_outputs) > 0
