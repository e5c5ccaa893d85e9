"""Library API, pure: an estimator (or IR) in, a compressed IR out.

``compress``/``compress_quantized`` prune and quantize (the options they share are one frozen
:class:`QuantizeOptions`); ``compress_to_budget`` searches the sparsest model certified within
an accuracy budget (:class:`BudgetOptions`); ``compress_knn`` does the same job for a Surprise
k-NN recommender, ``compress_factors`` for a matrix-factorization one; ``check_fidelity``
compares a compressed model with its original on rows.
Files (loading, the check, atomic writing) are :mod:`edgesparse.pipeline`'s job.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

import numpy as np

from edgesparse.data import for_sklearn
from edgesparse.errors import InputError
from edgesparse.frontends import pickled_by_other_release, to_linear_ir
from edgesparse.frontends.surprise import from_surprise
from edgesparse.frontends.surprise_factors import from_surprise_factors
from edgesparse.ir import KnnIR, LinearIR
from edgesparse.ir.factors import FactorIR
from edgesparse.ir.text import TextFeaturizer
from edgesparse.passes.factors import quantize_factors
from edgesparse.passes.fidelity import data_stats
from edgesparse.passes.knn import prune_top_k, prune_unused, quantize_sims
from edgesparse.passes.precision import Quantized, safe_quantize
from edgesparse.passes.prune import prune
from edgesparse.passes.quantize import COLUMN_SCALINGS, QUANTIZE_CHOICES, to_float32
from edgesparse.runtime.model import Model, stage_features


@dataclasses.dataclass(frozen=True, kw_only=True)
class QuantizeOptions:
    """How :func:`compress` prunes and stores the weights (validated on construction).

    Attributes:
        sparsity: target fraction of zero weights (0 = no pruning, the default).
        threshold: alternatively, prune every weight with ``|w| < threshold``.
        prune_scope: ``"global"`` (one cut for the whole matrix) or ``"row"`` (per output).
        quantize: None (default: int8, with the rows it serves worst raised to int16, or
            float32, where int8 measures below the bar; see :mod:`edgesparse.passes.precision`),
            ``"int8"`` (int8 whatever it measures), ``"float32"`` or ``"none"`` (float64,
            lossless).
        granularity: int8 scales per ``"row"`` (default) or per ``"tensor"``.
        columns: int8 per-column power-of-two exponents: ``"auto"`` (default: with or
            without, whichever measures better on the data or on probe rows drawn from the
            model's scaler statistics; with them when neither exists), ``"pow2"`` or
            ``"none"``. See :mod:`edgesparse.passes.quantize`.
    """

    sparsity: float = 0.0
    threshold: float | None = None
    prune_scope: str = "global"
    quantize: str | None = None
    granularity: str = "row"
    columns: str = "auto"

    def __post_init__(self) -> None:
        if self.quantize is not None and self.quantize not in QUANTIZE_CHOICES:
            raise InputError(
                f"quantize must be one of {', '.join(QUANTIZE_CHOICES)}, not {self.quantize!r}"
            )
        check_columns(self.columns)


@dataclasses.dataclass(frozen=True, kw_only=True)
class BudgetOptions:
    """How :func:`compress_to_budget` searches and certifies (validated on construction).

    Attributes:
        max_accuracy_drop, max_agreement_loss, max_r2_drop: the budget (fractions, one or
            more; see :class:`edgesparse.passes.budget.Budget`).
        quantize: ``"int8"`` (default), ``"float32"``, ``"none"`` or ``"auto"`` (per-row and
            per-tensor int8 scales both certified, the sparser kept).
        granularity: int8 scales per ``"row"`` or ``"tensor"`` (with ``quantize="int8"``).
        refit: also certify prune-then-refit candidates.
        holdout: fraction of the calibration rows held out to certify (stratified, ``seed``).
        seed: the calibration split's seed.
        confidence: with which the budget must hold on new rows.
    """

    max_accuracy_drop: float | None = None
    max_agreement_loss: float | None = None
    max_r2_drop: float | None = None
    quantize: str = "int8"
    granularity: str = "row"
    refit: bool = False
    holdout: float = 0.7
    seed: int = 0
    confidence: float = 0.95

    def __post_init__(self) -> None:
        self.quantizations()

    def quantizations(self) -> tuple[str, ...]:
        """The storage forms the search certifies, one sequence each."""
        if self.quantize == "auto":
            return ("int8-per-row", "int8-per-tensor")
        if self.quantize == "int8":
            if self.granularity not in ("row", "tensor"):
                raise InputError(f"granularity must be row or tensor, not {self.granularity!r}")
            return (f"int8-per-{self.granularity}",)
        if self.quantize in ("float32", "none"):
            return ("float32" if self.quantize == "float32" else "float64",)
        choices = ", ".join((*QUANTIZE_CHOICES, "auto"))
        raise InputError(f"quantize must be one of {choices}, not {self.quantize!r}")


def check_columns(columns: str) -> None:
    """Refuse a ``columns`` (``--column-scale``) that is not auto, none or pow2."""
    if columns not in ("auto", *COLUMN_SCALINGS):
        raise InputError(f"columns must be one of auto, {', '.join(COLUMN_SCALINGS)}")


def check_neighbours(neighbours: int | str | None) -> None:
    """Refuse a k-NN ``neighbours`` that is not None, ``"all"``, ``"exact"`` or a count >= 1."""
    if neighbours is None or neighbours in ("all", "exact"):
        return
    if isinstance(neighbours, bool) or not isinstance(neighbours, int) or neighbours < 1:
        raise InputError(
            f"neighbours must be a whole number >= 1, 'all' or 'exact', not {neighbours!r}"
        )


_Options = TypeVar("_Options", QuantizeOptions, BudgetOptions)


def _options(cls: type[_Options], options: _Options | None, fields: dict[str, Any]) -> _Options:
    """``options``, or one built from the keyword ``fields`` (not both)."""
    if options is None:
        return cls(**fields)
    if fields:
        raise TypeError(f"give options or its fields ({', '.join(fields)}), not both")
    return options


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
    reference: str | None = None
    """What the compressed model was compared with when that is not the installed
    scikit-learn running the original (None: it was, or the model is not scikit-learn's)."""


def compress(
    model: Any,
    *,
    options: QuantizeOptions | None = None,
    data: Any | None = None,
    **fields: Any,
) -> LinearIR:
    """Prune, then quantize, a model (an estimator, a ``RawLinearModel`` or a ``LinearIR``).

    :func:`compress_quantized` does the same and also returns the fidelity it measured and
    what the default did.

    Args:
        model: what to compress; estimators go through :func:`edgesparse.frontends.to_linear_ir`.
        options: how (see :class:`QuantizeOptions`); or give its fields as keywords instead,
            e.g. ``compress(est, sparsity=0.5, quantize="int8")``.
        data: rows ``X`` (dense or CSR) like the model's inputs, optional: their statistics
            (rather than the model's scalers') set the column exponents and the bias
            correction, and ``columns="auto"`` measures on them.
    """
    return compress_quantized(model, options=options, data=data, **fields).ir


def compress_quantized(
    model: Any,
    *,
    options: QuantizeOptions | None = None,
    data: Any | None = None,
    **fields: Any,
) -> Quantized:
    """:func:`compress` (same arguments), returning a
    :class:`~edgesparse.passes.precision.Quantized`: the model, the fidelity of int8 measured
    on ``data`` or probe rows (None when not int8 or nothing to measure on) and a note when the
    default raised precision or an explicit int8 misses the bar."""
    opts = _options(QuantizeOptions, options, fields)
    ir = model if isinstance(model, LinearIR) else to_linear_ir(model)
    if opts.threshold is not None:
        ir = prune(ir, threshold=opts.threshold)
    elif opts.sparsity:
        ir = prune(ir, sparsity=opts.sparsity, scope=opts.prune_scope)
    if data is not None:
        # The user's rows describe the inputs better than any scaler: MaxAbsScaler, say,
        # knows no centre at all.
        stats = data_stats(data)
        ir = ir.replace(input_stats=stats if stats is not None else ir.input_stats)
    if opts.quantize in (None, "int8"):
        return safe_quantize(
            ir,
            explicit_int8=opts.quantize == "int8",
            granularity=opts.granularity,
            columns=opts.columns,
            data=data,
        )
    return Quantized(to_float32(ir) if opts.quantize == "float32" else ir, None, None)


_STAGE_LABELS = {
    "documents": 'a "label" on every JSON line: {"text": "...", "label": ...}',
    "records": "the records CSV's last column, after the model's columns",
}
"""Where the calibration file of a text (documents) or tabular (records) model holds labels."""


def compress_to_budget(
    model: Any,
    X: Any,
    y: Any = None,
    *,
    options: BudgetOptions | None = None,
    **fields: Any,
) -> Any:
    """The sparsest model whose quantized form is certified within an accuracy budget (pure).

    ``model`` is an estimator (its own regularization sets the refit's L2 term) or a
    ``LinearIR``; ``X``, ``y`` are calibration rows (``y`` may be None for an agreement
    budget), of which ``holdout`` (70%, stratified, fixed ``seed``) are held out to certify,
    at ``confidence``, that the budget holds on new rows; the rest choose the pruning and are
    what ``refit`` solves on. A model with an input stage (a text or tabular pipeline) takes
    the raw documents or records it reads as ``X``: the search runs on the feature rows its
    own stage (:func:`~edgesparse.runtime.model.stage_features`, what the device runs) makes
    of them, and the result's IR keeps the stage. ``options`` (a :class:`BudgetOptions`), or
    its fields as keywords, e.g. ``compress_to_budget(est, X, y, max_accuracy_drop=0.005)``.
    ``quantize="auto"`` certifies per-row and per-tensor int8 scales and keeps the sparser.
    Returns a :class:`edgesparse.passes.budget.SearchResult` (``.ir``, ``.met``, ``.report``);
    see :mod:`edgesparse.passes.budget` for the search itself.
    """
    from edgesparse.passes.budget import Budget, search

    ir = model if isinstance(model, LinearIR) else to_linear_ir(model)
    opts = _options(BudgetOptions, options, fields)
    budget = Budget(
        max_accuracy_drop=opts.max_accuracy_drop,
        max_agreement_loss=opts.max_agreement_loss,
        max_r2_drop=opts.max_r2_drop,
    )
    stage = ir.featurizer
    kind = "documents" if isinstance(stage, TextFeaturizer) else "records"
    if stage is not None:
        budget.validate(ir, labelled=y is not None, labels=_STAGE_LABELS[kind])
        # Raw documents or records: the search runs on the feature rows the model's own
        # input stage makes of them (what the device runs), on the linear part alone.
        X = stage_features(stage, X)
        ir = ir.replace(featurizer=None)
    result = search(
        ir,
        X,
        y,
        budget=budget,
        quantizations=opts.quantizations(),
        refit_weights=opts.refit,
        penalty=_refit_penalty(model, ir) if opts.refit else None,
        holdout=opts.holdout,
        seed=opts.seed,
        confidence=opts.confidence,
    )
    if stage is None:
        return result
    report = {**result.report}
    report["calibration"] = {**report["calibration"], "kind": kind}
    return dataclasses.replace(result, ir=result.ir.replace(featurizer=stage), report=report)


def compress_knn(
    algo: Any, *, neighbours: int | str | None = None, quantize: str = "int8"
) -> tuple[KnnIR, KnnIR]:
    """(exact, compressed) of a Surprise k-NN recommender: optionally prune to ``neighbours``
    per row, then quantize the similarities (``quantize``: int8, float32 or none).

    The default keeps every positive similarity (``"all"``); ``"exact"`` drops only those no
    prediction can use (:func:`~edgesparse.passes.knn.prune_unused`, lossless, slower to
    compress). Pruning each row to the model's own k is *not* free: Surprise takes the k most
    similar among the users who rated the item asked about, who are mostly outside a user's
    overall top k (measured on generated data: RMSE 0.5-30 % worse), so it is opt-in, with
    --check-data to show its cost.
    """
    exact = from_surprise(algo)
    ir = exact
    if neighbours == "exact":
        ir = prune_unused(ir)
    elif neighbours is not None and neighbours != "all":
        check_neighbours(neighbours)
        ir = prune_top_k(ir, neighbours)  # type: ignore[arg-type]
    return exact, quantize_sims(ir, quantize)


def compress_factors(algo: Any, *, quantize: str = "int8") -> tuple[FactorIR, FactorIR]:
    """(exact, compressed) of a Surprise SVD, SVDpp, NMF or BaselineOnly: the factors
    quantized (``quantize``: int8 with one scale per row, float32 or none; biases stay
    float64)."""
    exact = from_surprise_factors(algo)
    return exact, quantize_factors(exact, quantize)


def _refit_penalty(model: Any, ir: LinearIR) -> Any:
    """The refit's L2 term from the estimator's own regularization (see passes/refit.py).

    ``LogisticRegression``/``LinearSVC``: ``1/C``; ``Ridge*``: ``alpha``; ``SGD*``:
    ``alpha`` per row; ``LinearRegression``: none; anything else: ``1.0``. L1 and elastic-net
    penalties are approximated by this L2 term. For a pipeline, the penalty is applied to the
    final step's (scaled) weights, as it was trained.
    """
    from edgesparse.passes.refit import Penalty

    final = model.steps[-1][1] if hasattr(model, "steps") else model
    name = type(final).__name__

    def positive(attr: str) -> float:
        value = getattr(final, attr, None)
        return float(value) if isinstance(value, (int, float)) and value > 0 else 0.0

    C, alpha = positive("C"), positive("alpha")
    total = per_row = 0.0
    if name.startswith(("LogisticRegression", "LinearSVC")) and C:
        total = 1.0 / C
    elif name.startswith("SGD") and alpha:
        per_row = alpha
    elif name.startswith("Ridge") and alpha:
        total = alpha
    elif name != "LinearRegression":
        total = 1.0
    scale = None
    coef = getattr(final, "coef_", None)
    if hasattr(model, "steps") and coef is not None:
        c = np.atleast_2d(np.asarray(coef, dtype=np.float64))
        W = ir.to_dense()
        if c.shape == W.shape:
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = np.where((c != 0) & (W != 0), c / W, np.nan)
            scale = np.ones(ir.n_features)
            seen = ~np.all(np.isnan(ratio), axis=0)
            scale[seen] = np.nanmedian(np.abs(ratio[:, seen]), axis=0)
    return Penalty(total=total, per_row=per_row, column_scale=scale)


def check_fidelity(
    *,
    estimator: Any,
    original: LinearIR,
    compressed: LinearIR,
    dataset: Any,
    model: Any | None = None,
    reference_input: Any | None = None,
) -> CheckResult:
    """Compare ``compressed`` with the original model on ``dataset.X`` (and ``dataset.y``).

    The reference is the estimator's own ``predict``/``decision_function`` when it has them
    (scikit-learn is the oracle), else the uncompressed IR. An estimator pickled by another
    scikit-learn release is not its own oracle here: the installed release would compute its
    outputs by today's rules (softmax for a ``multi_class="ovr"`` model of 1.7, say), so the
    uncompressed IR, read by the rules of the release that wrote it, is the reference.
    ``model`` is what runs the compressed model (default: the numpy runtime; an
    ``OnnxModel`` checks an ONNX artifact). ``reference_input`` is what the estimator is fed
    when it reads the rows differently from the runtime (the DataFrame of a table of records
    whose ``dataset.X`` the runtime reads as :class:`~edgesparse.records.TableRecords`).
    """
    X, y = dataset.X, dataset.y
    new = Model(compressed) if model is None else model
    pred_new = new.predict(X)  # validates X first, with the runtime's friendly errors
    _check_label_kinds(original, y)
    ref = _reference(
        estimator, original, X, proba=compressed.has_proba, reference_input=reference_input
    )
    dec_new = new.decision_function(X) if original.is_classifier else pred_new
    delta = float(np.max(np.abs(np.asarray(dec_new, dtype=np.float64) - ref.decision)))
    proba_delta = None
    if ref.proba is not None:
        proba_delta = float(np.max(np.abs(new.predict_proba(X) - ref.proba)))
    agreement = score_name = before = after = None
    if original.is_classifier:
        agreement = float(np.mean(pred_new == ref.predict))
        if y is not None:
            score_name = "accuracy"
            before = float(np.mean(ref.predict == y))
            after = float(np.mean(pred_new == y))
    elif y is not None:
        score_name = "r2"
        before, after = _r2(y, ref.predict), _r2(y, pred_new)
    return CheckResult(
        n_rows=int(X.shape[0]) if hasattr(X, "shape") else len(X),  # documents: a list
        label_agreement=agreement,
        max_abs_decision_delta=delta,
        max_abs_proba_delta=proba_delta,
        score_name=score_name,
        score_before=before,
        score_after=after,
        reference=None
        if ref.written_by is None
        else f"the float64 model read by the rules of scikit-learn {ref.written_by}",
    )


def _check_label_kinds(original: LinearIR, y: Any) -> None:
    """Text labels against numeric classes (or the reverse) would agree nowhere: say so."""
    if not (original.is_classifier and y is not None and original.classes is not None):
        return
    classes = np.asarray(original.classes)
    y_text = np.asarray(y).dtype.kind in "USO"
    if y_text != (classes.dtype.kind in "USO"):
        kinds = ("text", "numbers") if y_text else ("numbers", "text")
        raise InputError(
            f"the check data's labels (y) are {kinds[0]} but the model's classes are "
            f"{kinds[1]} ({', '.join(map(str, classes[:5].tolist()))}); give y with the "
            "labels the model predicts, or no labels"
        )


@dataclasses.dataclass(frozen=True)
class _Outputs:
    """The reference's outputs on the check rows."""

    predict: np.ndarray
    decision: np.ndarray
    proba: np.ndarray | None
    written_by: str | None
    """The other scikit-learn release that pickled the estimator (None: this one, or none)."""


def _reference(
    estimator: Any, original: LinearIR, X: Any, *, proba: bool, reference_input: Any | None
) -> _Outputs:
    """The original's outputs: scikit-learn's own when it is the oracle, else the IR's."""
    ref_model = Model(original)
    X_ref = for_sklearn(X) if reference_input is None else reference_input
    written_by = None if isinstance(estimator, LinearIR) else pickled_by_other_release(estimator)
    has_own = (
        hasattr(estimator, "predict") and not isinstance(estimator, LinearIR) and written_by is None
    )
    pred = estimator.predict(X_ref) if has_own else ref_model.predict(X)
    decision = pred
    if original.is_classifier:
        decision = (
            estimator.decision_function(X_ref)
            if has_own and hasattr(estimator, "decision_function")
            else ref_model.decision_function(X)
        )
    probabilities = None
    if proba:
        probabilities = estimator.predict_proba(X_ref) if has_own else ref_model.predict_proba(X)
    return _Outputs(pred, decision, probabilities, written_by)


def _r2(y: np.ndarray, pred: np.ndarray) -> float:
    # scikit-learn's r2_score: per output, then the plain mean over outputs.
    y = np.asarray(y, dtype=np.float64).reshape(pred.shape)
    ss_res = np.sum((y - pred) ** 2, axis=0)
    ss_tot = np.sum((y - y.mean(axis=0)) ** 2, axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.mean(1.0 - ss_res / ss_tot))
