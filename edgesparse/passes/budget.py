"""Accuracy-aware compression: the sparsest model whose quantized form stays within a budget.

Given calibration rows ``(X, y)`` and a :class:`Budget` (accuracy drop, label-agreement loss,
or R² drop for regressors), :func:`search` finds the highest sparsity whose *quantized* model
(int8 by default, exactly the IR that would be written) is within budget.

**The split.** The calibration rows are split once, with a fixed seed: ``holdout`` (25%) of
the rows are *held out* (stratified by class for classifiers), the rest are the *fit* rows.
The fit rows give per-feature statistics (mean, standard deviation) and are what ``refit``
solves on; every budget decision and every reported figure is measured on the held-out rows,
which nothing was fitted on.

**Candidates.** Pruning families, each a nested sequence of supports indexed by ``keep``:

* ``global``: keep the ``keep`` most important weights of the whole matrix;
* ``row``: keep the ``keep`` most important weights of every output row;
* ``feature``: keep the ``keep`` most important input columns (a column's importance is its
  largest weight over all outputs), dropping whole features;

each with two importances: ``magnitude`` (``|w|``) and ``scaled`` (``|w| * std(x_j)`` on the
fit rows: the weight in standardized units, which undoes a folded scaler). Pruned weights'
mean contribution on the fit rows (``w_ij * mean(x_j)``) is moved into the bias, so pruning
does not shift the scores on average.

**Search.** Per family, candidates from dense to sparse on a geometric grid of ``keep`` (each
keeps 3/4 of the previous one's units) until two in a row break the budget, then bisection
between the sparsest one that held and the grid step after it, down to a single unit: the
answer's next step (``keep - 1``) breaks the budget. Every
candidate is quantized and scored with the numpy runtime (:class:`~edgesparse.runtime.model.
Model`) on the held-out rows. The family that reaches the highest sparsity wins; with
``granularity="auto"``, per-row and per-tensor int8 scales are both searched.

**Refit** (``refit=True``): from each family's best answer, a path of prune-then-refit steps
(each prunes the previous refitted model further and re-solves its kept weights on the fit
rows, distilling from the original model, see :mod:`edgesparse.passes.refit`) until two steps
in a row break the budget, then bisection after the sparsest step that held. The refit
result is kept only when it reaches a higher sparsity on the held-out rows (at equal
sparsity, a better held-out score) than the search without refit.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.sparse as sp

from edgesparse.errors import InputError
from edgesparse.ir import LinearIR
from edgesparse.passes.fidelity import data_stats
from edgesparse.passes.prune import select
from edgesparse.passes.quantize import quantize_int8, to_float32
from edgesparse.passes.refit import Penalty, class_index, refit
from edgesparse.runtime.model import Model

FAMILIES = ("global", "row", "feature")
IMPORTANCES = ("magnitude", "scaled")
QUANTIZATIONS = ("int8-per-row", "int8-per-tensor", "float32", "float64")
HOLDOUT = 0.25
SEED = 0
# Grid step from one candidate to the next: keep 3/4 of the units.
_GRID_FACTOR = 0.75
# Refit path: each step keeps at most this fraction of the previous step's units.
_PATH_FACTOR = 0.9
_MAX_REFITS = 60
_MAX_FLIPPED = 100


@dataclasses.dataclass(frozen=True)
class Budget:
    """How much the compressed model may lose on held-out rows (fractions, ``0.005`` = 0.5 pt).

    Several limits may be given; all must hold. ``max_r2_drop`` is for regressors, the other
    two for classifiers.
    """

    max_accuracy_drop: float | None = None
    max_agreement_loss: float | None = None
    max_r2_drop: float | None = None

    def validate(self, ir: LinearIR) -> None:
        """Raise :class:`InputError` unless the budget is usable for ``ir``."""
        given = {k: v for k, v in dataclasses.asdict(self).items() if v is not None}
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

    def holds(self, metrics: dict[str, float], reference: dict[str, float]) -> bool:
        """Whether ``metrics`` are within budget of ``reference`` (tiny float slack)."""
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
    """Row indices of the calibration data: ``fit`` (statistics, refit) and ``heldout``."""

    fit: np.ndarray
    heldout: np.ndarray
    holdout: float
    seed: int
    stratified: bool


@dataclasses.dataclass(frozen=True)
class SearchResult:
    """The chosen compressed IR, whether it meets the budget, and the JSON-ready report."""

    ir: LinearIR
    met: bool
    report: dict[str, Any]


def split_calibration(
    n_rows: int, y: np.ndarray | None = None, *, holdout: float = HOLDOUT, seed: int = SEED
) -> Split:
    """Split ``n_rows`` calibration rows into fit and held-out parts, reproducibly.

    With class labels ``y`` the split is stratified: each class contributes
    ``round(holdout * count)`` rows to the held-out part (none when it has a single row).
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


def fit_statistics(X_fit: Any) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and standard deviation of the fit rows (dense or sparse)."""
    X = _as_sparse_or_dense(X_fit)
    if sp.issparse(X):
        mean = np.asarray(X.mean(axis=0)).ravel()
        sq = np.asarray(X.multiply(X).mean(axis=0)).ravel()
    else:
        mean = X.mean(axis=0)
        sq = np.mean(X * X, axis=0)
    return mean, np.sqrt(np.maximum(sq - mean * mean, 0.0))


def prune_candidate(
    ir: LinearIR,
    *,
    family: str,
    importance: str,
    keep: int,
    mean: np.ndarray | None = None,
    std: np.ndarray | None = None,
) -> LinearIR:
    """One candidate of a family: the support that keeps ``keep`` units, bias compensated.

    ``std`` is needed for ``importance="scaled"``; with ``mean``, the pruned weights' mean
    contribution ``w_ij * mean_j`` moves into the bias. Values stay unquantized.
    """
    if family not in FAMILIES or importance not in IMPORTANCES:
        raise InputError(f"unknown pruning family {family!r} / importance {importance!r}")
    w = ir.real_values()
    imp = np.abs(w)
    if importance == "scaled":
        if std is None:
            raise InputError("importance 'scaled' needs the feature standard deviations")
        imp = imp * std[ir.indices]
    mask = _keep_mask(ir, imp, family, keep)
    out = select(
        ir,
        mask,
        note=f"prune {family}/{importance} keep={keep}",
        values=w if ir.values.dtype == np.int8 else None,
    )
    if mean is not None and not mask.all():
        gone = ~mask
        shift = np.bincount(
            ir.row_ids()[gone], weights=w[gone] * mean[ir.indices[gone]], minlength=ir.n_outputs
        )
        out = out.replace(bias=out.bias + shift)
    return out


def quantize_as(ir: LinearIR, quantization: str) -> LinearIR:
    """Store ``ir``'s weights as one of :data:`QUANTIZATIONS`."""
    # Column exponents where the columns' scales differ (they drop out when all are equal).
    if quantization == "int8-per-row":
        return quantize_int8(ir, granularity="row", columns="pow2")
    if quantization == "int8-per-tensor":
        return quantize_int8(ir, granularity="tensor", columns="pow2")
    if quantization == "float32":
        return to_float32(ir)
    if quantization == "float64":
        return ir
    raise InputError(f"quantization must be one of {', '.join(QUANTIZATIONS)}")


def search(
    original: LinearIR,
    X: Any,
    y: np.ndarray,
    *,
    budget: Budget,
    quantizations: tuple[str, ...] = ("int8-per-row",),
    refit_weights: bool = False,
    penalty: Penalty | None = None,
    holdout: float = HOLDOUT,
    seed: int = SEED,
    families: tuple[str, ...] = FAMILIES,
    importances: tuple[str, ...] = IMPORTANCES,
) -> SearchResult:
    """Find the sparsest quantized model within ``budget`` on held-out calibration rows.

    Args:
        original: the uncompressed model (float64 IR); it is the reference.
        X: calibration rows (dense array, scipy sparse or :class:`~edgesparse.data.CSRArrays`).
        y: their labels (classifiers) or targets (regressors).
        budget: the limits (see :class:`Budget`).
        quantizations: storage forms to search; several means choose by measured fidelity
            (``("int8-per-row", "int8-per-tensor")`` is ``--quantize auto``).
        refit_weights: also try prune-then-refit (kept only if it does better held out).
        penalty: the refit's L2 term (the model's own regularization).
        holdout, seed: the calibration split (see :func:`split_calibration`).
        families, importances: which pruning families to search.

    Returns:
        A :class:`SearchResult`. When even the unpruned quantized model breaks the budget,
        ``met`` is false and ``ir`` is that unpruned model: the caller decides (refuse, or
        write it under ``--force``).
    """
    started = time.perf_counter()
    budget.validate(original)
    for q in quantizations:
        if q not in QUANTIZATIONS:
            raise InputError(f"quantization must be one of {', '.join(QUANTIZATIONS)}")
    Xc = _as_sparse_or_dense(X)
    y = np.asarray(y)
    if Xc.shape[0] != y.shape[0]:
        raise InputError(f"calibration X has {Xc.shape[0]} rows but y has {y.shape[0]}")
    if Xc.shape[1] != original.n_features:
        raise InputError(
            f"calibration X has {Xc.shape[1]} features, the model expects {original.n_features}"
        )
    target = class_index(y, original.classes) if original.is_classifier else None
    split = split_calibration(Xc.shape[0], target, holdout=holdout, seed=seed)
    X_fit, X_hold = Xc[split.fit], Xc[split.heldout]
    y_fit, y_hold = y[split.fit], y[split.heldout]
    mean, std = fit_statistics(X_fit)
    if original.input_stats is None:
        # No scaler: the fit rows (never the held-out ones) set the int8 column exponents and
        # the bias correction, as --check-data rows do without a budget.
        original = original.replace(input_stats=data_stats(X_fit))
    scorer = _Scorer(original, X_hold, y_hold, None if target is None else target[split.heldout])
    reference = scorer.reference
    curve: list[dict[str, Any]] = []
    cells = original.n_outputs * original.n_features

    def evaluate(ir: LinearIR, point: dict[str, Any]) -> tuple[bool, dict[str, float]]:
        metrics = scorer.metrics(ir)
        ok = budget.holds(metrics, reference)
        curve.append(
            {
                **point,
                "nnz": ir.nnz,
                "sparsity": 1.0 - ir.nnz / cells,
                **metrics,
                "within_budget": ok,
            }
        )
        return ok, metrics

    # -- search without refit: every family x importance x quantization ----------------------
    best: _Found | None = None
    per_family: dict[str, _Found] = {}
    for quant in quantizations:
        for family in families:
            for importance in importances:
                result = _search_family(
                    original,
                    family=family,
                    importance=importance,
                    quantization=quant,
                    mean=mean,
                    std=std,
                    evaluate=evaluate,
                )
                if result is None:
                    continue
                if best is None or _better(result, best, original.is_classifier):
                    best = result
                top = per_family.get(family)
                if top is None or _better(result, top, original.is_classifier):
                    per_family[family] = result

    refit_info: dict[str, Any] = {"requested": refit_weights, "kept": False}
    if best is None:
        # Not even the unpruned quantized model is within budget: report it, let the caller
        # decide (refuse, or write it under --force).
        quant = quantizations[0]
        fallback = quantize_as(original, quant)
        chosen = _Found(
            ir=fallback,
            family="none",
            importance="none",
            quantization=quant,
            keep=_n_units(original, "global"),
            next_keep=None,
            next_metrics=None,
            metrics=scorer.metrics(fallback),
            refit=False,
        )
        met = False
        refit_info["reason"] = "not tried: the budget is not met even without pruning"
    else:
        chosen, met = best, True
        if refit_weights:
            # One refit path per family, from that family's best answer without refit: the
            # family that prunes best alone is not always the one that refits best.
            refitted: _Found | None = None
            totals = {"refits": 0, "iterations": 0}
            reason = None
            for start in per_family.values():
                path = _refit_path(
                    start,
                    original=original,
                    X_fit=X_fit,
                    y_fit=y_fit,
                    mean=mean,
                    std=std,
                    penalty=penalty,
                    evaluate=evaluate,
                )
                totals["refits"] += path.info["refits"]
                totals["iterations"] += path.info["iterations"]
                refit_info.update(fit_rows=path.info["fit_rows"], l2=path.info["l2"])
                reason = path.info.get("reason", reason)
                if path.found is not None and (
                    refitted is None or _better(path.found, refitted, original.is_classifier)
                ):
                    refitted = path.found
            refit_info.update(totals)
            if refitted is not None and _better(refitted, best, original.is_classifier):
                chosen = refitted
                refit_info["kept"] = True
                refit_info["reason"] = (
                    f"refit reaches {1 - chosen.ir.nnz / cells:.2%} sparsity within budget on "
                    f"the held-out rows, without refit {1 - best.ir.nnz / cells:.2%}"
                )
            elif refitted is None and reason is not None:
                refit_info["reason"] = reason
            else:
                refit_info["reason"] = (
                    "refit did not do better on the held-out rows than pruning alone "
                    "(small calibration sets overfit); the model is not refitted"
                )

    # One note for the whole search, not one per path step (provenance is stored in the blob).
    note = f"budget search: {chosen.family}/{chosen.importance} keep={chosen.keep}"
    if chosen.refit:
        note += f", refit on {split.fit.size} rows"
    note += f", {chosen.ir.quantization}"
    passes = original.provenance.get("passes", "")
    final = chosen.ir.replace(
        provenance={
            **chosen.ir.provenance,
            "passes": f"{passes}; {note}" if passes else note,
            "budget": ", ".join(f"{k}={v:g}" for k, v in budget.to_dict().items()),
        }
    )
    report = _report(
        original=original,
        final=final,
        chosen=chosen,
        met=met,
        budget=budget,
        split=split,
        scorer=scorer,
        curve=curve,
        refit_info=refit_info,
        seconds=time.perf_counter() - started,
    )
    return SearchResult(ir=final, met=met, report=report)


# -- internals ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Found:
    ir: LinearIR
    family: str
    importance: str
    quantization: str
    keep: int
    next_keep: int | None
    next_metrics: dict[str, float] | None
    metrics: dict[str, float]
    refit: bool


@dataclasses.dataclass(frozen=True)
class _PathResult:
    found: _Found | None
    info: dict[str, Any]


class _Scorer:
    """Scores candidates on the held-out rows with the numpy runtime (what runs on device)."""

    def __init__(self, original: LinearIR, X: Any, y: np.ndarray, target: np.ndarray | None):
        self.X = X
        self.y = y
        self.target = target
        self.original = original
        self.ref_scores = self.scores(original)
        self.ref_pred = self._pred(self.ref_scores)
        self.reference = self._metrics(self.ref_scores, self.ref_pred)

    def scores(self, ir: LinearIR) -> np.ndarray:
        m = Model(ir)
        out = m.decision_function(self.X) if ir.is_classifier else m.predict(self.X)
        return np.asarray(out, dtype=np.float64).reshape(self.X.shape[0], ir.n_outputs)

    def metrics(self, ir: LinearIR) -> dict[str, float]:
        s = self.scores(ir)
        return self._metrics(s, self._pred(s))

    def _pred(self, scores: np.ndarray) -> np.ndarray:
        if not self.original.is_classifier:
            return scores
        return (scores[:, 0] > 0).astype(np.intp) if scores.shape[1] == 1 else scores.argmax(1)

    def _metrics(self, scores: np.ndarray, pred: np.ndarray) -> dict[str, float]:
        if self.original.is_classifier:
            return {
                "accuracy": float(np.mean(pred == self.target)),
                "agreement": float(np.mean(pred == self.ref_pred)),
            }
        return {"r2": _r2(self.y, scores)}


def _bisect(test: Callable[[int], bool], n_units: int) -> tuple[int, int | None] | None:
    """Smallest passing ``keep`` along the dense-to-sparse grid, then bisection.

    The grid is walked until two candidates in a row break the budget (held-out scores are
    noisy: one unlucky candidate should not end the search); the sparsest candidate that held
    and the grid step after it (which broke it) are then bisected down to one unit. Returns
    ``(keep, next_keep)`` with ``next_keep = keep - 1`` failing (None when ``keep`` is 0), or
    None when ``n_units`` itself fails.
    """
    grid = [n_units]
    k = float(n_units)
    while grid[-1] > 0:
        k *= _GRID_FACTOR
        grid.append(max(min(grid[-1] - 1, math.ceil(k) if k >= 1 else 0), 0))
    if not test(n_units):
        return None
    passed, failed, misses = n_units, None, 0
    for k_grid in grid[1:]:
        if test(k_grid):
            passed, failed, misses = k_grid, None, 0
        else:
            failed = k_grid if failed is None else failed
            misses += 1
            if misses == 2:
                break
    if failed is None:
        return passed, None
    while passed - failed > 1:
        mid = (passed + failed) // 2
        if test(mid):
            passed = mid
        else:
            failed = mid
    return passed, failed


def _search_family(
    original: LinearIR,
    *,
    family: str,
    importance: str,
    quantization: str,
    mean: np.ndarray,
    std: np.ndarray,
    evaluate: Callable[[LinearIR, dict[str, Any]], tuple[bool, dict[str, float]]],
) -> _Found | None:
    """The sparsest candidate of one family within budget (see :func:`_bisect`)."""

    def build(k: int) -> LinearIR:
        cand = prune_candidate(
            original, family=family, importance=importance, keep=k, mean=mean, std=std
        )
        return quantize_as(cand, quantization)

    # Only verdicts are memoized: a big model's candidates would fill RAM.
    memo: dict[int, tuple[bool, dict[str, float]]] = {}

    def test(k: int) -> bool:
        if k not in memo:
            point = {
                "family": family,
                "importance": importance,
                "quantization": quantization,
                "refit": False,
                "keep": k,
            }
            memo[k] = evaluate(build(k), point)
        return memo[k][0]

    found = _bisect(test, _n_units(original, family))
    if found is None:
        return None
    k_best, k_next = found
    return _Found(
        ir=build(k_best),
        family=family,
        importance=importance,
        quantization=quantization,
        keep=k_best,
        next_keep=k_next,
        next_metrics=None if k_next is None else memo[k_next][1],
        metrics=memo[k_best][1],
        refit=False,
    )


def _refit_path(
    start: _Found,
    *,
    original: LinearIR,
    X_fit: Any,
    y_fit: np.ndarray,
    mean: np.ndarray,
    std: np.ndarray,
    penalty: Penalty | None,
    evaluate: Callable[[LinearIR, dict[str, Any]], tuple[bool, dict[str, float]]],
) -> _PathResult:
    """Prune-then-refit steps from the no-refit answer, then bisection after the first
    failure (see the module docstring)."""
    family, importance, quant = start.family, start.importance, start.quantization
    stats: dict[str, Any] = {"refits": 0, "iterations": 0, "fit_rows": None, "l2": None}

    def attempt(parent: LinearIR, k: int) -> tuple[bool, LinearIR, _Found]:
        pruned = prune_candidate(
            parent, family=family, importance=importance, keep=k, mean=mean, std=std
        )
        fitted = refit(pruned, X_fit, y_fit, penalty=penalty, teacher=original)
        stats["refits"] += 1
        stats["iterations"] += fitted.iterations
        stats["fit_rows"], stats["l2"] = fitted.rows, fitted.l2
        cand = quantize_as(fitted.ir, quant)
        point = {
            "family": family,
            "importance": importance,
            "quantization": quant,
            "refit": True,
            "keep": k,
        }
        ok, metrics = evaluate(cand, point)
        return ok, fitted.ir, _Found(cand, family, importance, quant, k, None, None, metrics, True)

    # From the support pruning alone reached, each step prunes the previous refitted model
    # further and refits it; the path goes on past a failure (refit pays off at sparsities
    # where pruning alone fails) and stops after two failures in a row.
    parent, k = original, start.keep
    found: _Found | None = None
    found_fitted: LinearIR | None = None
    failed: _Found | None = None
    misses = 0
    while stats["refits"] < _MAX_REFITS:
        ok, fitted, cand = attempt(parent, k)
        if ok:
            found, found_fitted, failed, misses = cand, fitted, None, 0
        else:
            failed = cand if failed is None else failed
            misses += 1
        if misses == 2 or k == 0:
            break
        parent, k = fitted, min(k - 1, math.floor(k * _PATH_FACTOR))
    if found is None:
        stats["reason"] = (
            "no refitted model stayed within budget on the held-out rows (it overfits the "
            f"{stats['fit_rows']} fit rows); the model is not refitted"
        )
        return _PathResult(None, stats)
    if failed is not None:
        # Bisection between the sparsest refitted model that held and the next path step
        # (which was pruned from that model).
        assert found_fitted is not None
        while found.keep - failed.keep > 1 and stats["refits"] < _MAX_REFITS:
            mid = (found.keep + failed.keep) // 2
            ok, _fitted, cand = attempt(found_fitted, mid)
            if ok:
                found = cand
            else:
                failed = cand
        found = dataclasses.replace(found, next_keep=failed.keep, next_metrics=failed.metrics)
    return _PathResult(found, stats)


def _better(a: _Found, b: _Found, classifier: bool) -> bool:
    """Is ``a`` preferable to ``b``: fewer weights, then a better held-out score."""
    if a.ir.nnz != b.ir.nnz:
        return a.ir.nnz < b.ir.nnz
    key = "accuracy" if classifier else "r2"
    return a.metrics[key] > b.metrics[key]


def _keep_mask(ir: LinearIR, imp: np.ndarray, family: str, keep: int) -> np.ndarray:
    if keep < 0:
        raise InputError(f"keep must be >= 0, got {keep}")
    if family == "global":
        mask = np.zeros(ir.nnz, dtype=bool)
        mask[np.argsort(-imp, kind="stable")[:keep]] = True
        return mask
    if family == "row":
        rows = ir.row_ids()
        order = np.lexsort((-imp, rows))
        rank = np.arange(ir.nnz) - ir.indptr[rows[order]]
        mask = np.zeros(ir.nnz, dtype=bool)
        mask[order[rank < keep]] = True
        return mask
    used, col_pos = np.unique(ir.indices, return_inverse=True)
    col_imp = np.zeros(used.size)
    np.maximum.at(col_imp, col_pos, imp)
    col_keep = np.zeros(used.size, dtype=bool)
    col_keep[np.argsort(-col_imp, kind="stable")[:keep]] = True
    return col_keep[col_pos]


def _n_units(ir: LinearIR, family: str) -> int:
    if family == "global":
        return ir.nnz
    if family == "row":
        return int(np.diff(ir.indptr).max(initial=0))
    return int(np.unique(ir.indices).size)


def _as_sparse_or_dense(X: Any) -> Any:
    if sp.issparse(X):
        return sp.csr_matrix(X, dtype=np.float64)
    if hasattr(X, "indptr") and hasattr(X, "data"):  # edgesparse.data.CSRArrays
        return sp.csr_matrix((X.data, X.indices, X.indptr), shape=X.shape, dtype=np.float64)
    arr = np.asarray(X, dtype=np.float64)
    if arr.ndim != 2:
        raise InputError(f"calibration X must be 2-D, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise InputError("calibration X contains NaN or infinity; impute or drop those rows")
    return arr


def _r2(y: np.ndarray, pred: np.ndarray) -> float:
    # scikit-learn's r2_score: per output, then the plain mean over outputs.
    y = np.asarray(y, dtype=np.float64).reshape(pred.shape)
    ss_res = np.sum((y - pred) ** 2, axis=0)
    ss_tot = np.sum((y - y.mean(axis=0)) ** 2, axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.mean(1.0 - ss_res / ss_tot))


def _report(
    *,
    original: LinearIR,
    final: LinearIR,
    chosen: _Found,
    met: bool,
    budget: Budget,
    split: Split,
    scorer: _Scorer,
    curve: list[dict[str, Any]],
    refit_info: dict[str, Any],
    seconds: float,
) -> dict[str, Any]:
    cells = original.n_outputs * original.n_features
    scores = scorer.scores(final)
    pred = scorer._pred(scores)
    after = scorer._metrics(scores, pred)
    out: dict[str, Any] = {
        "met": met,
        "budget": budget.to_dict(),
        "calibration": {
            "rows": int(split.fit.size + split.heldout.size),
            "fit_rows": int(split.fit.size),
            "heldout_rows": int(split.heldout.size),
            "holdout": split.holdout,
            "seed": split.seed,
            "stratified": split.stratified,
            "note": "every figure below is measured on the held-out rows only",
        },
        "chosen": {
            "family": chosen.family,
            "importance": chosen.importance,
            "quantization": final.quantization,
            "refit": chosen.refit,
            "keep": chosen.keep,
            "nnz": final.nnz,
            "sparsity": 1.0 - final.nnz / cells,
        },
        "next_step": None,
        "before": scorer.reference,
        "after": after,
        "max_abs_decision_delta": float(np.max(np.abs(scores - scorer.ref_scores))),
        "max_abs_proba_delta": None,
        "flipped": [],
        "refit": refit_info,
        "curve": sorted(
            curve,
            key=lambda p: (p["refit"], p["quantization"], p["family"], p["importance"], -p["keep"]),
        ),
        "seconds": seconds,
    }
    if chosen.next_keep is not None and chosen.next_metrics is not None:
        out["next_step"] = {"keep": chosen.next_keep, **chosen.next_metrics}
    if original.has_proba:
        from edgesparse.runtime.model import _proba

        delta = _proba(final.head, scores) - _proba(original.head, scorer.ref_scores.copy())
        out["max_abs_proba_delta"] = float(np.max(np.abs(delta)))
    if original.is_classifier:
        assert original.classes is not None and scorer.target is not None
        ref = scorer.ref_scores
        if ref.shape[1] == 1:
            margin = np.abs(ref[:, 0])
        else:
            top2 = np.sort(ref, axis=1)[:, -2:]
            margin = top2[:, 1] - top2[:, 0]
        flipped = np.flatnonzero(pred != scorer.ref_pred)
        flipped = flipped[np.argsort(margin[flipped], kind="stable")]
        classes = original.classes
        out["flipped_count"] = int(flipped.size)
        out["flipped"] = [
            {
                "row": int(split.heldout[i]),
                "label": _py(classes[scorer.target[i]]),
                "before": _py(classes[scorer.ref_pred[i]]),
                "after": _py(classes[pred[i]]),
                "margin": float(margin[i]),
            }
            for i in flipped[:_MAX_FLIPPED]
        ]
        out["median_margin"] = float(np.median(margin))
    return out


def _py(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value
