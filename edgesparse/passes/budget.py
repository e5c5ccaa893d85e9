"""Accuracy-aware compression: the sparsest model *certified* to stay within a budget.

Given calibration rows ``X`` (and labels ``y`` when the budget needs them), a :class:`Budget`
(accuracy drop, label-agreement loss, or R² drop for regressors) and a confidence level
(0.95 by default), :func:`search` writes the sparsest quantized model (exactly the IR that is
written) for which the budget holds *on new rows from the same distribution* with that
confidence. The rule and its guarantee are in :mod:`edgesparse.passes.certify`; in short:

**The split.** The calibration rows are split once, with a fixed seed (stratified by class
when there are labels): the *search* rows (``1 - holdout``) give per-feature statistics, choose
the pruning family and importance (see :mod:`edgesparse.passes.candidates`), set the int8
column exponents of a model without a scaler and are what ``refit`` solves on; the *certify*
rows (``holdout``, 70% by default) were never looked at by any of that.

**Choosing the sequence** (search rows). For each storage form, every family x importance is
searched on the search rows (dense to sparse on a geometric grid until two candidates in a row
break the budget by their plain estimate, then bisection); the family and importance reaching
the highest sparsity there is kept (``global``/``scaled`` when none holds even dense). Its
certified sequence is its whole :func:`~edgesparse.passes.candidates.keep_grid`, from every
unit to none, fixed before any certify row is used.

**Certifying** (certify rows). Each sequence is walked from dense to sparse with fixed-sequence
testing at ``alpha / m`` (``m`` sequences: one per storage form of ``--quantize auto``, twice
with ``refit``: the refit sequence prunes the previous refitted model to the next ``keep`` and
re-solves it on the search rows). The sparsest certified candidate over all sequences is
written. When no sequence certifies even its first, unpruned candidate, ``met`` is false, the
unpruned model of the first storage form is returned, and the report says how many certify
rows a zero-error run would need (:func:`~edgesparse.passes.certify.rows_needed`).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from edgesparse.errors import InputError
from edgesparse.ir import LinearIR
from edgesparse.passes import certify
from edgesparse.passes.budget_report import Scorer, build_report
from edgesparse.passes.candidates import (
    FAMILIES,
    IMPORTANCES,
    QUANTIZATIONS,
    as_sparse_or_dense,
    fit_statistics,
    keep_grid,
    n_units,
    prune_candidate,
    quantize_as,
)
from edgesparse.passes.fidelity import data_stats
from edgesparse.passes.refit import Penalty, class_index, refit

__all__ = [
    "Budget",
    "SearchResult",
    "Split",
    "fit_statistics",
    "prune_candidate",
    "quantize_as",
    "search",
    "split_calibration",
]

HOLDOUT = 0.7
SEED = 0
CONFIDENCE = 0.95
# Family choice on the search rows: grid step, then bisection (see _bisect).
_SEARCH_FACTOR = 0.75
_MAX_REFITS = 120


@dataclasses.dataclass(frozen=True)
class Budget:
    """How much the compressed model may lose on new rows (fractions, ``0.005`` = 0.5 pt).

    Several limits may be given; all must hold. ``max_r2_drop`` is for regressors, the other
    two for classifiers; only ``max_agreement_loss`` can be certified without labels.
    """

    max_accuracy_drop: float | None = None
    max_agreement_loss: float | None = None
    max_r2_drop: float | None = None

    def validate(
        self,
        ir: LinearIR,
        *,
        labelled: bool = True,
        labels: str = "y in the .npz, or a label column",
    ) -> None:
        """Raise :class:`InputError` unless the budget is usable for ``ir`` (and the data);
        ``labels`` says where the calibration file holds labels, for the refusal of
        unlabelled data."""
        given = self.to_dict()
        if not given:
            raise InputError(
                "an accuracy budget needs a limit: --max-accuracy-drop, --max-agreement-loss "
                "(classifiers) or --max-r2-drop (regressors)"
            )
        for name, value in given.items():
            if not (math.isfinite(value) and 0.0 <= value <= 1.0):
                raise InputError(f"{name} must be between 0 and 1 (0.005 = 0.5 pt), got {value}")
        if ir.is_classifier and self.max_r2_drop is not None:
            raise InputError(
                "--max-r2-drop is for regressors; for this classifier use --max-accuracy-drop "
                "or --max-agreement-loss"
            )
        if not ir.is_classifier and self.max_r2_drop is None:
            raise InputError(
                "this model is a regressor: give its budget as --max-r2-drop "
                "(accuracy and label agreement apply to classifiers)"
            )
        if not labelled and set(given) != {"max_agreement_loss"}:
            raise InputError(
                "the calibration data has no labels: --max-accuracy-drop and --max-r2-drop "
                f"need them ({labels}); --max-agreement-loss does not"
            )

    def risks(self) -> dict[str, float]:
        """The limits keyed by risk name (see :data:`edgesparse.passes.certify.RISKS`)."""
        names = {
            "max_accuracy_drop": "accuracy_drop",
            "max_agreement_loss": "agreement_loss",
            "max_r2_drop": "r2_drop",
        }
        return {names[k]: v for k, v in self.to_dict().items()}

    def holds(self, metrics: dict[str, float], reference: dict[str, float]) -> bool:
        """Whether plain ``metrics`` are within budget of ``reference`` (no confidence: the
        search rows' rule for choosing a family, never the certificate)."""
        eps = 1e-12
        if self.max_accuracy_drop is not None:
            if reference["accuracy"] - metrics["accuracy"] > self.max_accuracy_drop + eps:
                return False
        if self.max_agreement_loss is not None:
            if 1.0 - metrics["agreement"] > self.max_agreement_loss + eps:
                return False
        if self.max_r2_drop is not None:
            if reference["r2"] - metrics["r2"] > self.max_r2_drop + eps:
                return False
        return True

    def to_dict(self) -> dict[str, float]:
        """The limits that were given."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


@dataclasses.dataclass(frozen=True)
class Split:
    """Row indices of the calibration data: ``fit`` (search rows) and ``heldout`` (certify)."""

    fit: np.ndarray
    heldout: np.ndarray
    holdout: float
    seed: int
    stratified: bool


@dataclasses.dataclass(frozen=True)
class SearchResult:
    """The chosen compressed IR, whether the budget is certified, and the JSON-ready report."""

    ir: LinearIR
    met: bool
    report: dict[str, Any]


def split_calibration(
    n_rows: int, y: np.ndarray | None = None, *, holdout: float = HOLDOUT, seed: int = SEED
) -> Split:
    """Split ``n_rows`` calibration rows into search and certify parts, reproducibly.

    With class labels ``y`` the split is stratified: each class contributes
    ``round(holdout * count)`` rows to the held-out (certify) part (none when it has a single
    row).
    """
    if not 0.0 < holdout < 1.0:
        raise InputError(f"holdout must be between 0 and 1 (exclusive), got {holdout}")
    if n_rows < 4:
        raise InputError(f"calibration data has {n_rows} rows; give at least 4 (more is better)")
    rng = np.random.default_rng(seed)
    if y is None:
        order = rng.permutation(n_rows)
        n_hold = min(max(1, round(holdout * n_rows)), n_rows - 1)
        hold = order[:n_hold]
    else:
        _, inverse = np.unique(np.asarray(y), return_inverse=True)
        parts = []
        for c in range(int(inverse.max()) + 1):
            members = rng.permutation(np.flatnonzero(inverse == c))
            parts.append(members[: round(holdout * members.size) if members.size > 1 else 0])
        hold = np.concatenate(parts)
        if hold.size == 0 or hold.size == n_rows:
            raise InputError("calibration data is too small to hold out rows of any class")
    is_hold = np.zeros(n_rows, dtype=bool)
    is_hold[hold] = True
    return Split(
        fit=np.flatnonzero(~is_hold),
        heldout=np.flatnonzero(is_hold),
        holdout=holdout,
        seed=seed,
        stratified=y is not None,
    )


def search(
    original: LinearIR,
    X: Any,
    y: np.ndarray | None = None,
    *,
    budget: Budget,
    quantizations: tuple[str, ...] = ("int8-per-row",),
    refit_weights: bool = False,
    penalty: Penalty | None = None,
    holdout: float = HOLDOUT,
    seed: int = SEED,
    confidence: float = CONFIDENCE,
    families: tuple[str, ...] = FAMILIES,
    importances: tuple[str, ...] = IMPORTANCES,
) -> SearchResult:
    """Find the sparsest quantized model certified within ``budget`` (see the module doc).

    Args:
        original: the uncompressed model (float64 IR); it is the reference.
        X: calibration rows (dense array, scipy sparse or :class:`~edgesparse.data.CSRArrays`).
        y: their labels (classifiers) or targets (regressors); None for an agreement budget.
        budget: the limits (see :class:`Budget`).
        quantizations: storage forms; several (``--quantize auto``) are certified each.
        refit_weights: also certify a prune-then-refit sequence (refit on the search rows).
        penalty: the refit's L2 term (the model's own regularization).
        holdout, seed: the calibration split (see :func:`split_calibration`).
        confidence: ``1 - alpha`` of the certificate, in ``[0.5, 1)``.
        families, importances: which pruning families the search rows choose from.

    Returns:
        A :class:`SearchResult`; ``met`` is false (and ``ir`` the unpruned quantized model)
        when not even that can be certified: the caller decides (refuse, or ``--force``).
    """
    started = time.perf_counter()
    Xc, y, target = _checked(original, X, y, budget, confidence, quantizations, refit_weights)
    split = split_calibration(Xc.shape[0], target, holdout=holdout, seed=seed)
    X_fit = Xc[split.fit]
    alpha = round(1.0 - confidence, 12) / (len(quantizations) * (2 if refit_weights else 1))
    ctx = _context(original, Xc, y, target, split=split, budget=budget, alpha=alpha)
    original = ctx.original
    walks: list[_Walk] = []
    for quant in quantizations:
        family, importance = _choose_family(ctx, quant, families, importances)
        walks.append(_walk(ctx, _pruned(ctx, family, importance, quant), family, importance, quant))
        if refit_weights:
            fitted = _refitted(ctx, family, importance, quant, X_fit, split, y, penalty)
            walks.append(_walk(ctx, fitted, family, importance, quant, refitted=True))
    chosen = _best(walks)
    met = chosen is not None
    if chosen is None:
        chosen = walks[0].steps[0]
    final = _annotate(original, chosen, budget, confidence, split)
    report = build_report(
        original=original,
        final=final,
        chosen=chosen,
        met=met,
        budget=budget,
        confidence=confidence,
        split=split,
        scorer=ctx.certifier,
        walks=[w.summary() for w in walks],
        curve=[dict(s.item.point, **_verdict(s)) for w in walks for s in w.steps],
        search_curve=ctx.search_curve,
        alpha=ctx.alpha,
        seconds=time.perf_counter() - started,
    )
    return SearchResult(ir=final, met=met, report=report)


# -- internals ---------------------------------------------------------------------------


def _checked(
    original: LinearIR,
    X: Any,
    y: Any,
    budget: Budget,
    confidence: float,
    quantizations: tuple[str, ...],
    refit_weights: bool,
) -> tuple[Any, np.ndarray | None, np.ndarray | None]:
    """The options and calibration arrays, checked: ``(X, y, class indices or None)``."""
    budget.validate(original, labelled=y is not None)
    if not (math.isfinite(confidence) and 0.5 <= confidence < 1.0):
        raise InputError(f"confidence must be at least 0.5 and below 1, got {confidence}")
    for q in quantizations:
        if q not in QUANTIZATIONS:
            raise InputError(f"quantization must be one of {', '.join(QUANTIZATIONS)}")
    if refit_weights and y is None:
        raise InputError("--refit solves on labelled rows: the calibration data has no labels")
    Xc = as_sparse_or_dense(X)
    if y is not None:
        y = np.asarray(y)
        if Xc.shape[0] != y.shape[0]:
            raise InputError(f"calibration X has {Xc.shape[0]} rows but y has {y.shape[0]}")
    if Xc.shape[1] != original.n_features:
        raise InputError(
            f"calibration X has {Xc.shape[1]} features, the model expects {original.n_features}"
        )
    target = class_index(y, original.classes) if original.is_classifier and y is not None else None
    return Xc, y, target


def _context(
    original: LinearIR,
    Xc: Any,
    y: np.ndarray | None,
    target: np.ndarray | None,
    *,
    split: Split,
    budget: Budget,
    alpha: float,
) -> _Context:
    """Statistics and scorers: the search rows' and the certify rows'."""
    X_fit, X_hold = Xc[split.fit], Xc[split.heldout]
    mean, std = fit_statistics(X_fit)
    if original.input_stats is None:
        # No scaler: the search rows (never the certify ones) set the int8 column exponents
        # and the bias correction, as --check-data rows do without a budget.
        original = original.replace(input_stats=data_stats(X_fit))

    def part(idx: np.ndarray, a: np.ndarray | None) -> np.ndarray | None:
        return None if a is None else a[idx]

    var_y = None if original.is_classifier or y is None else _target_variance(y, original)
    return _Context(
        original=original,
        budget=budget,
        mean=mean,
        std=std,
        searcher=Scorer(original, X_fit, part(split.fit, y), part(split.fit, target)),
        certifier=Scorer(
            original, X_hold, part(split.heldout, y), part(split.heldout, target), var_y=var_y
        ),
        alpha=alpha,
    )


@dataclasses.dataclass
class _Context:
    original: LinearIR
    budget: Budget
    mean: np.ndarray
    std: np.ndarray
    searcher: Scorer
    certifier: Scorer
    alpha: float
    search_curve: list[dict[str, Any]] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True)
class _Candidate:
    ir: LinearIR
    point: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class _Walk:
    point: dict[str, Any]
    steps: list[certify.Step]

    def certified(self) -> list[certify.Step]:
        return [s for s in self.steps if s.certified]

    def summary(self) -> dict[str, Any]:
        ok = self.certified()
        stop = self.steps[-1] if self.steps and not self.steps[-1].certified else None
        return {
            **self.point,
            "tested": len(self.steps),
            "certified": len(ok),
            "sparsest_certified": ok[-1].item.point["sparsity"] if ok else None,
            "stopped_at": None if stop is None else {**stop.item.point, **_verdict(stop)},
        }


def _verdict(step: certify.Step) -> dict[str, Any]:
    return {
        "p_value": step.p_value,
        "certified": step.certified,
        **{f"{r}_estimate": o.estimate for r, o in step.outcomes.items()},
        **{f"{r}_events": o.events for r, o in step.outcomes.items() if o.events is not None},
        **{f"{r}_fixed": o.fixed for r, o in step.outcomes.items() if o.fixed is not None},
        **{f"{r}_test": o.test for r, o in step.outcomes.items() if o.fixed is not None},
    }


def _point(ctx: _Context, ir: LinearIR, **point: Any) -> dict[str, Any]:
    cells = ctx.original.n_outputs * ctx.original.n_features
    return {**point, "nnz": ir.nnz, "sparsity": 1.0 - ir.nnz / cells}


def _pruned(ctx: _Context, family: str, importance: str, quant: str) -> Iterator[_Candidate]:
    """The fixed sequence of one family: every keep of its grid, pruned then stored."""
    for k in keep_grid(n_units(ctx.original, family=family)):
        cand = prune_candidate(
            ctx.original, family=family, importance=importance, keep=k, mean=ctx.mean, std=ctx.std
        )
        ir = quantize_as(cand, quant)
        yield _Candidate(ir, _point(ctx, ir, keep=k))


def _refitted(
    ctx: _Context,
    family: str,
    importance: str,
    quant: str,
    X_fit: Any,
    split: Split,
    y: np.ndarray,
    penalty: Penalty | None,
) -> Iterator[_Candidate]:
    """The refit sequence: along the same grid, each step prunes the previous refitted model
    and re-solves its kept weights on the search rows (distilling from the original)."""
    parent = ctx.original
    y_fit = y[split.fit]
    grid = keep_grid(n_units(ctx.original, family=family))
    for k in grid[:_MAX_REFITS]:
        pruned = prune_candidate(
            parent, family=family, importance=importance, keep=k, mean=ctx.mean, std=ctx.std
        )
        fitted = refit(pruned, X_fit, y_fit, penalty=penalty, teacher=ctx.original)
        parent = fitted.ir
        ir = quantize_as(fitted.ir, quant)
        yield _Candidate(ir, _point(ctx, ir, keep=k, fit_rows=fitted.rows, l2=fitted.l2))


def _walk(
    ctx: _Context,
    candidates: Iterator[_Candidate],
    family: str,
    importance: str,
    quant: str,
    *,
    refitted: bool = False,
) -> _Walk:
    point = {"family": family, "importance": importance, "quantization": quant}
    point["refit"] = refitted

    def with_point(c: _Candidate) -> _Candidate:
        return _Candidate(c.ir, {**point, **c.point})

    risks = ctx.budget.risks()

    def test(c: _Candidate) -> dict[str, certify.Outcome]:
        outs = ctx.certifier.outcomes(c.ir, tuple(risks))
        if "accuracy_drop" in outs:
            # The accuracy test is chosen on the search rows, never on the certify rows.
            seen = ctx.searcher.outcomes(c.ir, ("accuracy_drop",))["accuracy_drop"]
            acc = outs["accuracy_drop"]
            mode = certify.choose_test(seen, rows=acc.rows, budget=risks["accuracy_drop"])
            outs["accuracy_drop"] = dataclasses.replace(acc, test=mode)
        return outs

    steps = certify.fixed_sequence(
        (with_point(c) for c in candidates), test=test, budgets=risks, alpha=ctx.alpha
    )
    return _Walk({**point, "alpha": ctx.alpha}, steps)


def _best(walks: list[_Walk]) -> certify.Step | None:
    """The sparsest certified candidate of any walk (ties: the smaller p-value)."""
    best: certify.Step | None = None
    for w in walks:
        ok = w.certified()
        if ok and (
            best is None or (ok[-1].item.ir.nnz, ok[-1].p_value) < (best.item.ir.nnz, best.p_value)
        ):
            best = ok[-1]
    return best


def _choose_family(
    ctx: _Context, quant: str, families: tuple[str, ...], importances: tuple[str, ...]
) -> tuple[str, str]:
    """The family x importance whose plain search-row estimate reaches the highest sparsity
    (ties: the better search-row score); ``global``/``scaled`` when none holds dense."""
    best: tuple[int, float, str, str] | None = None
    key = (
        "r2"
        if not ctx.original.is_classifier
        else ("accuracy" if "accuracy" in ctx.searcher.reference else "agreement")
    )
    for family in families:
        for importance in importances:

            def test(
                k: int, family: str = family, importance: str = importance
            ) -> tuple[bool, float]:
                cand = prune_candidate(
                    ctx.original,
                    family=family,
                    importance=importance,
                    keep=k,
                    mean=ctx.mean,
                    std=ctx.std,
                )
                ir = quantize_as(cand, quant)
                metrics = ctx.searcher.metrics(ir)
                ok = ctx.budget.holds(metrics, ctx.searcher.reference)
                ctx.search_curve.append(
                    {
                        **_point(ctx, ir, keep=k),
                        "family": family,
                        "importance": importance,
                        "quantization": quant,
                        **metrics,
                        "within_budget": ok,
                    }
                )
                return ok, ctx.search_curve[-1]["sparsity"], metrics[key]

            found = _bisect(test, n_units(ctx.original, family=family))
            if found is not None:
                cand_key = (-found[0], -found[1], family, importance)
                if best is None or cand_key < best:
                    best = cand_key
    if best is None:
        return "global", "scaled" if "scaled" in importances else importances[0]
    return best[2], best[3]


def _bisect(
    test: Callable[[int], tuple[bool, float, float]], n_units: int
) -> tuple[float, float] | None:
    """Highest sparsity (and its score) passing on the search rows: a geometric grid from
    dense to sparse until two candidates in a row fail, then bisection to one unit."""
    memo: dict[int, tuple[bool, float, float]] = {}

    def ok(k: int) -> bool:
        if k not in memo:
            memo[k] = test(k)
        return memo[k][0]

    if not ok(n_units):
        return None
    grid = keep_grid(n_units, factor=_SEARCH_FACTOR)
    passed, failed, misses = n_units, None, 0
    for k in grid[1:]:
        if ok(k):
            passed, failed, misses = k, None, 0
        else:
            failed = k if failed is None else failed
            misses += 1
            if misses == 2:
                break
    while failed is not None and passed - failed > 1:
        mid = (passed + failed) // 2
        if ok(mid):
            passed = mid
        else:
            failed = mid
    return memo[passed][1], memo[passed][2]


def _target_variance(y: np.ndarray, ir: LinearIR) -> np.ndarray:
    """Per-output variance of the targets over all calibration rows (R²'s denominator)."""
    yy = np.asarray(y, dtype=np.float64).reshape(y.shape[0], ir.n_outputs)
    var = yy.var(axis=0)
    if not np.all(var > 0):
        raise InputError("calibration targets are constant: R² is undefined on them")
    return var


def _annotate(
    original: LinearIR, chosen: certify.Step, budget: Budget, confidence: float, split: Split
) -> LinearIR:
    """The chosen IR with one provenance note for the whole search."""
    p = chosen.item.point
    note = f"budget search: {p['family']}/{p['importance']} keep={p['keep']}"
    if p.get("refit"):
        note += f", refit on {split.fit.size} rows"
    note += f", {chosen.item.ir.quantization}"
    passes = original.provenance.get("passes", "")
    limits = ", ".join(f"{k}={v:g}" for k, v in budget.to_dict().items())
    return chosen.item.ir.replace(
        provenance={
            **chosen.item.ir.provenance,
            "passes": f"{passes}; {note}" if passes else note,
            "budget": f"{limits}, confidence={confidence:g}",
        }
    )
