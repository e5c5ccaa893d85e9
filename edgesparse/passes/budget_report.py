"""Scoring budget candidates with the numpy runtime, and the budget search's JSON report.

:class:`Scorer` runs a candidate exactly as it will run on device (the numpy runtime) on one
part of the calibration rows and gives its plain metrics (accuracy, agreement, R²: the
search rows' rule) and its paired outcomes against the original
(:func:`edgesparse.passes.certify.outcomes`: the certify rows' rule). :func:`build_report`
turns a finished search into the report of ``--report`` and the summary; its
``guarantee`` says in words and numbers what the certificate promises.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from edgesparse.ir import LinearIR
from edgesparse.passes import certify
from edgesparse.runtime.model import Model

_MAX_FLIPPED = 100


class Scorer:
    """Scores candidates on some calibration rows against the original model."""

    def __init__(
        self,
        original: LinearIR,
        X: Any,
        y: np.ndarray | None,
        target: np.ndarray | None,
        *,
        var_y: np.ndarray | None = None,
    ) -> None:
        self.X = X
        self.y = y
        self.target = target
        self.var_y = var_y
        self.original = original
        self.ref_scores = self.scores(original)
        self.ref_pred = self.predictions(self.ref_scores)
        self.reference = self.summarize(self.ref_scores, self.ref_pred)

    @property
    def rows(self) -> int:
        """How many rows this scorer runs on."""
        return int(self.X.shape[0])

    def scores(self, ir: LinearIR) -> np.ndarray:
        """Decision scores (classifiers) or predictions (regressors), ``(rows, outputs)``."""
        m = Model(ir)
        out = m.decision_function(self.X) if ir.is_classifier else m.predict(self.X)
        return np.asarray(out, dtype=np.float64).reshape(self.rows, ir.n_outputs)

    def metrics(self, ir: LinearIR) -> dict[str, float]:
        """Plain metrics of ``ir`` on these rows."""
        s = self.scores(ir)
        return self.summarize(s, self.predictions(s))

    def outcomes(self, ir: LinearIR, risks: tuple[str, ...]) -> dict[str, certify.Outcome]:
        """Paired outcomes of ``ir`` against the original on these rows, per risk."""
        s = self.scores(ir)
        pred = self.predictions(s)
        return certify.outcomes(
            ref_pred=self.ref_pred,
            pred=pred,
            target=self.target,
            risks=risks,
            y=self.y,
            var_y=self.var_y,
        )

    def predictions(self, scores: np.ndarray) -> np.ndarray:
        """Class indices from scores (classifiers); the scores themselves (regressors)."""
        if not self.original.is_classifier:
            return scores
        return (scores[:, 0] > 0).astype(np.intp) if scores.shape[1] == 1 else scores.argmax(1)

    def summarize(self, scores: np.ndarray, pred: np.ndarray) -> dict[str, float]:
        """Accuracy (with labels) and agreement, or R²."""
        if self.original.is_classifier:
            out = {"agreement": float(np.mean(pred == self.ref_pred))}
            if self.target is not None:
                out = {"accuracy": float(np.mean(pred == self.target)), **out}
            return out
        if self.y is None:
            return {}
        return {"r2": r2(self.y, scores)}


def r2(y: np.ndarray, pred: np.ndarray) -> float:
    """scikit-learn's ``r2_score``: per output, then the plain mean over outputs."""
    y = np.asarray(y, dtype=np.float64).reshape(pred.shape)
    ss_res = np.sum((y - pred) ** 2, axis=0)
    ss_tot = np.sum((y - y.mean(axis=0)) ** 2, axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.mean(1.0 - ss_res / ss_tot))


_WORDS = {
    "accuracy_drop": ("the accuracy drop", "points", 100.0),
    "agreement_loss": ("the share of labels that differ from the original model's", "%", 100.0),
    "r2_drop": ("the R² drop", "", 1.0),
}


def guarantee(
    *, risks: dict[str, float], confidence: float, alpha: float, met: bool, certify_rows: int
) -> dict[str, Any]:
    """What the certificate promises, in words and numbers (``alpha``: each sequence's
    level, which sets the rows needed)."""
    parts = []
    needed: dict[str, int | None] = {}
    for risk, limit in risks.items():
        words, unit, factor = _WORDS[risk]
        if unit == "points" and limit * factor == 1:
            unit = "point"
        sep = "" if unit in ("%", "") else " "
        parts.append(
            f"{words} on new rows from the same distribution is at most "
            f"{limit * factor:g}{sep}{unit}"
        )
        if risk != "r2_drop":
            needed[risk] = certify.rows_needed(budget=limit, alpha=alpha)
    lead = f"with {confidence:.0%} confidence"
    if met:
        statement = f"{lead} {' and '.join(parts)}"
    else:
        statement = (
            f"NOT certified: the {certify_rows} certify rows cannot show, {lead}, that "
            + " and ".join(parts)
        )
        most = max((n for n in needed.values() if n is not None), default=None)
        if most is not None and most > certify_rows:
            statement += f" (that needs at least {most} certify rows)"
    out: dict[str, Any] = {
        "confidence": confidence,
        "alpha_per_sequence": alpha,
        "certified": met,
        "limits": dict(risks),
        "statement": statement,
        "rows_needed": needed,
    }
    if "r2_drop" in risks:
        out["note"] = "the R² bound is a Student-t bound: asymptotically valid, not exact"
        out["statement"] += " (approximate: Student-t bound)"
    return out


def build_report(
    *,
    original: LinearIR,
    final: LinearIR,
    chosen: certify.Step,
    met: bool,
    budget: Any,
    confidence: float,
    split: Any,
    scorer: Scorer,
    walks: list[dict[str, Any]],
    curve: list[dict[str, Any]],
    search_curve: list[dict[str, Any]],
    alpha: float,
    seconds: float,
) -> dict[str, Any]:
    """The JSON-ready report of one search (see :mod:`edgesparse.passes.budget`)."""
    scores = scorer.scores(final)
    pred = scorer.predictions(scores)
    point = chosen.item.point
    out: dict[str, Any] = {
        "met": met,
        "budget": budget.to_dict(),
        "guarantee": guarantee(
            risks=budget.risks(),
            confidence=confidence,
            alpha=alpha,
            met=met,
            certify_rows=scorer.rows,
        ),
        "calibration": {
            "rows": int(split.fit.size + split.heldout.size),
            "fit_rows": int(split.fit.size),
            "heldout_rows": int(split.heldout.size),
            "holdout": split.holdout,
            "seed": split.seed,
            "stratified": split.stratified,
            "labelled": scorer.target is not None or scorer.y is not None,
            "note": "the search and the refit use the fit rows; the certificate and every "
            "figure below use the held-out (certify) rows only",
        },
        "chosen": {
            **{k: point[k] for k in ("family", "importance", "refit", "keep", "nnz")},
            "quantization": final.quantization,
            "sparsity": point["sparsity"],
            "p_value": chosen.p_value,
            "alpha": alpha,
        },
        "sequences": walks,
        "before": scorer.reference,
        "after": scorer.summarize(scores, pred),
        "max_abs_decision_delta": float(np.max(np.abs(scores - scorer.ref_scores))),
        "max_abs_proba_delta": None,
        "flipped": [],
        "curve": curve,
        "search_curve": search_curve,
        "seconds": seconds,
    }
    if original.has_proba:
        delta = Model(final).predict_proba(scorer.X) - Model(original).predict_proba(scorer.X)
        out["max_abs_proba_delta"] = float(np.max(np.abs(delta)))
    if original.is_classifier:
        out.update(_flipped(original, scorer, pred, split))
    return out


def _flipped(original: LinearIR, scorer: Scorer, pred: np.ndarray, split: Any) -> dict[str, Any]:
    """The certify rows whose label changed, lowest margin in the original first."""
    ref = scorer.ref_scores
    if ref.shape[1] == 1:
        margin = np.abs(ref[:, 0])
    else:
        top2 = np.sort(ref, axis=1)[:, -2:]
        margin = top2[:, 1] - top2[:, 0]
    flipped = np.flatnonzero(pred != scorer.ref_pred)
    flipped = flipped[np.argsort(margin[flipped], kind="stable")]
    classes = original.classes
    assert classes is not None
    return {
        "flipped_count": int(flipped.size),
        "flipped": [
            {
                "row": int(split.heldout[i]),
                "label": None if scorer.target is None else _py(classes[scorer.target[i]]),
                "before": _py(classes[scorer.ref_pred[i]]),
                "after": _py(classes[pred[i]]),
                "margin": float(margin[i]),
            }
            for i in flipped[:_MAX_FLIPPED]
        ],
        "median_margin": float(np.median(margin)),
    }


def _py(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def uncertified_message(report: dict[str, Any], *, holdout: float) -> str:
    """The one-line refusal when not even the unpruned model is certified (``report``: the
    search's report; ``holdout``: its split): what was seen on the certify rows, and how many
    rows a certificate would need."""
    g, cal = report["guarantee"], report["calibration"]
    stop = report["sequences"][0]["stopped_at"] or {}
    seen = ", ".join(
        f"{r.replace('_', ' ')} {stop[r + '_estimate']:.2%}"
        + (f" ({stop[r + '_events']} rows)" if r + "_events" in stop else "")
        for r in g["limits"]
        if r + "_estimate" in stop
    )
    needed = [n for n in g["rows_needed"].values() if n is not None]
    hint = ""
    if needed and max(needed) > cal["heldout_rows"]:
        total = math.ceil(max(needed) / holdout)
        hint = (
            f"; even with no row against it, that needs at least {max(needed)} certify rows "
            f"(about {total} calibration rows at --holdout {holdout:g})"
        )
    seen = seen or f"p-value {report['chosen']['p_value']:.3g}"
    return (
        f"the budget cannot be certified even without pruning at "
        f"{g['confidence']:.0%} confidence: on the {cal['heldout_rows']} held-out calibration "
        f"rows the unpruned {report['chosen']['quantization']} model has {seen}{hint}; give "
        "more rows, raise the budget, try --quantize float32, or pass --force to write the "
        "unpruned model anyway"
    )
