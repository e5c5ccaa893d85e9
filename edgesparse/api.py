"""Workstation-side API: estimator or model file in, compressed :class:`LinearIR` or file out.

``compress`` is pure (IR in, IR out); ``compress_file`` adds the edges: safe loading, an optional
fidelity check against the original model on user data, and an atomic write. Nothing is written
unless every step before it succeeded.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import numpy as np

from edgesparse.errors import InputError
from edgesparse.ir import LinearIR
from edgesparse.passes.prune import prune
from edgesparse.passes.quantize import quantize_int8, to_float32
from edgesparse.runtime.model import Model

QUANTIZE_CHOICES = ("int8", "float32", "none")
FORMATS = ("esb",)


@dataclasses.dataclass(frozen=True)
class CheckResult:
    """Fidelity of the compressed model against the original on user data."""

    n_rows: int
    label_agreement: float | None
    max_abs_decision_delta: float
    max_abs_proba_delta: float | None
    score_name: str | None
    score_before: float | None
    score_after: float | None


@dataclasses.dataclass(frozen=True)
class CompressReport:
    """What ``compress_file`` did: sizes, sparsity, quantization, optional fidelity check."""

    source: str
    source_bytes: int
    output: str
    output_bytes: int
    estimator: str
    shape: tuple[int, int]
    nnz_before: int
    nnz_after: int
    quantization: str
    passes: str
    check: CheckResult | None

    @property
    def ratio(self) -> float:
        """Original bytes / output bytes."""
        return self.source_bytes / max(self.output_bytes, 1)

    @property
    def sparsity_before(self) -> float:
        """Fraction of zero weights in the original model."""
        return 1.0 - self.nnz_before / (self.shape[0] * self.shape[1])

    @property
    def sparsity_after(self) -> float:
        """Fraction of zero weights in the compressed model."""
        return 1.0 - self.nnz_after / (self.shape[0] * self.shape[1])

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict, derived figures included."""
        out = dataclasses.asdict(self)
        out.update(
            ratio=self.ratio,
            sparsity_before=self.sparsity_before,
            sparsity_after=self.sparsity_after,
            shape=list(self.shape),
        )
        return out


def compress(
    model: Any,
    *,
    sparsity: float = 0.0,
    threshold: float | None = None,
    prune_scope: str = "global",
    quantize: str = "int8",
    granularity: str = "row",
) -> LinearIR:
    """Prune, then quantize, a model (an estimator, a ``RawLinearModel`` or a ``LinearIR``).

    Args:
        model: what to compress; estimators go through :func:`edgesparse.frontend.to_ir`.
        sparsity: target fraction of zero weights (0 = no pruning, the default).
        threshold: alternatively, prune every weight with ``|w| < threshold``.
        prune_scope: ``"global"`` (one cut for the whole matrix) or ``"row"`` (per output).
        quantize: ``"int8"`` (default), ``"float32"`` or ``"none"`` (float64, lossless).
        granularity: int8 scales per ``"row"`` (default) or per ``"tensor"``.
    """
    if quantize not in QUANTIZE_CHOICES:
        raise InputError(f"quantize must be one of {', '.join(QUANTIZE_CHOICES)}, not {quantize!r}")
    ir = model if isinstance(model, LinearIR) else _to_ir(model)
    if threshold is not None:
        ir = prune(ir, threshold=threshold)
    elif sparsity:
        ir = prune(ir, sparsity=sparsity, scope=prune_scope)
    if quantize == "int8":
        ir = quantize_int8(ir, granularity=granularity)
    elif quantize == "float32":
        ir = to_float32(ir)
    return ir


def compress_file(
    source: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    sparsity: float = 0.0,
    threshold: float | None = None,
    prune_scope: str = "global",
    quantize: str = "int8",
    granularity: str = "row",
    check_data: str | os.PathLike[str] | None = None,
) -> CompressReport:
    """Load ``source`` safely, compress it, check it on ``check_data``, write ``output``.

    The output format follows the suffix of ``output`` (``.esb``). The file appears
    atomically and only after loading, compression and the check have all succeeded.
    """
    from edgesparse.data import load_dataset
    from edgesparse.formats import esb
    from edgesparse.loader import load_model

    out = Path(output)
    fmt = out.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise InputError(
            f"cannot write {out.name!r}: unknown output format {out.suffix or '(no suffix)'!r}; "
            f"use one of: {', '.join('.' + f for f in FORMATS)}"
        )
    src = Path(source)
    if out.resolve() == src.resolve():
        raise InputError(f"output {out} would overwrite the input model; choose another path")
    estimator = load_model(src)
    original = _to_ir(estimator)
    compressed = compress(
        original,
        sparsity=sparsity,
        threshold=threshold,
        prune_scope=prune_scope,
        quantize=quantize,
        granularity=granularity,
    )
    check = None
    if check_data is not None:
        check = check_fidelity(
            estimator=estimator,
            original=original,
            compressed=compressed,
            dataset=load_dataset(check_data),
        )
    written = esb.write(compressed, out)
    return CompressReport(
        source=str(src),
        source_bytes=src.stat().st_size,
        output=str(out),
        output_bytes=int(written),
        estimator=original.provenance.get("source", type(estimator).__name__),
        shape=original.shape,
        nnz_before=original.nnz,
        nnz_after=compressed.nnz,
        quantization=compressed.quantization,
        passes=compressed.provenance.get("passes", ""),
        check=check,
    )


def check_fidelity(
    *, estimator: Any, original: LinearIR, compressed: LinearIR, dataset: Any
) -> CheckResult:
    """Compare ``compressed`` with the original model on ``dataset.X`` (and ``dataset.y``).

    The reference is the estimator's own ``predict``/``decision_function`` when it has them
    (scikit-learn is the oracle), else the uncompressed IR.
    """
    X, y = dataset.X, dataset.y
    new = Model(compressed)
    pred_new = new.predict(X)  # validates X first, with the runtime's friendly errors
    ref_model = Model(original)
    X_ref = _for_sklearn(X)
    has_own = hasattr(estimator, "predict") and not isinstance(estimator, LinearIR)
    pred_ref = estimator.predict(X_ref) if has_own else ref_model.predict(X)
    if original.is_classifier:
        dec_ref = (
            estimator.decision_function(X_ref)
            if has_own and hasattr(estimator, "decision_function")
            else ref_model.decision_function(X)
        )
        dec_new = new.decision_function(X)
    else:
        dec_ref, dec_new = pred_ref, pred_new
    delta = float(np.max(np.abs(np.asarray(dec_new, dtype=np.float64) - dec_ref)))
    proba_delta = None
    if compressed.has_proba:
        p_ref = estimator.predict_proba(X_ref) if has_own else ref_model.predict_proba(X)
        proba_delta = float(np.max(np.abs(new.predict_proba(X) - p_ref)))
    agreement = score_name = before = after = None
    if original.is_classifier:
        agreement = float(np.mean(pred_new == pred_ref))
        if y is not None:
            score_name = "accuracy"
            before = float(np.mean(pred_ref == y))
            after = float(np.mean(pred_new == y))
    elif y is not None:
        score_name = "r2"
        before, after = _r2(y, pred_ref), _r2(y, pred_new)
    return CheckResult(
        n_rows=int(X.shape[0]),
        label_agreement=agreement,
        max_abs_decision_delta=delta,
        max_abs_proba_delta=proba_delta,
        score_name=score_name,
        score_before=before,
        score_after=after,
    )


def _to_ir(model: Any) -> LinearIR:
    from edgesparse.frontend import to_ir

    return to_ir(model)


def _for_sklearn(X: Any) -> Any:
    from edgesparse.data import CSRArrays

    if isinstance(X, CSRArrays):
        import scipy.sparse

        return scipy.sparse.csr_matrix((X.data, X.indices, X.indptr), shape=X.shape)
    return X


def _r2(y: np.ndarray, pred: np.ndarray) -> float:
    # scikit-learn's r2_score: per output, then the plain mean over outputs.
    y = np.asarray(y, dtype=np.float64).reshape(pred.shape)
    ss_res = np.sum((y - pred) ** 2, axis=0)
    ss_tot = np.sum((y - y.mean(axis=0)) ** 2, axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.mean(1.0 - ss_res / ss_tot))
