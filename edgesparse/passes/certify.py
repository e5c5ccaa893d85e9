"""Certifying a budget on rows the search never saw: the written contract.

**What is promised.** Calibration rows are split once (:func:`~edgesparse.passes.budget.
split_calibration`): the *search* rows choose how to prune (family, importance; ``--refit``
solves on them), the *certify* rows decide. On the certify rows, candidates are tested in a
fixed order, from least to most sparse (a grid of ``keep`` values set before any certify row
is looked at), and the sparsest candidate of the longest prefix whose hypotheses are all
rejected is chosen (*fixed-sequence testing*, Learn-then-Test: Angelopoulos, Bates, Candès,
Jordan, Lei 2021). For each candidate ``k`` the null hypothesis is ``H_k: risk_k > budget``
(``risk`` is the accuracy drop, the label-disagreement rate or the R² drop on new rows from
the certify rows' distribution); each test has level ``alpha`` and the first non-rejection
stops the walk. Then, whatever the model and the data, with probability at least
``1 - alpha`` *no* rejected hypothesis is true, so the chosen model's risk is within the
budget: the family-wise error is controlled with no Bonferroni factor for the number of
candidates on one sequence. When several sequences compete (``--quantize auto``: two int8
scalings; ``--refit``: with and without refit) each is walked at ``alpha / m`` for ``m``
sequences (Bonferroni over sequences, never over candidates) and the sparsest certified
candidate of any sequence is kept. ``confidence = 1 - alpha``, 0.95 by default.

**The p-values** (rows are assumed exchangeable with future rows; ``n`` certify rows):

* agreement loss: ``k`` = rows whose label the candidate changes. ``k ~ Binomial(n, risk)``,
  exactly; ``p = P(Binomial(n, budget) <= k)`` (:func:`binomial_p_value`). Labels are not
  needed: unlabelled rows count fully.
* accuracy drop: the paired outcomes ``d_i = [original right] - [candidate right]`` in
  ``{-1, 0, 1}``; the drop is ``E[d] = P(d = 1) - P(d = -1)``. Rows where both are right or
  both wrong carry no information. Two exact tests, one chosen per candidate *on the search
  rows* (whichever would give the smaller p-value at the certify rows' size, counts scaled:
  :func:`choose_test`), so the choice never looks at the certify rows:

  - ``count``: ``k`` = rows turned right -> wrong; ``E[d] <= P(d = 1)``, so the binomial test
    of ``P(d = 1) <= budget`` is valid (rows the candidate fixes are not credited);
  - ``net``: also ``j`` = rows turned wrong -> right; with Clopper-Pearson bounds at
    ``alpha' / 2`` each, ``U(k) - L(j) <= budget`` rejects at ``alpha'`` (a union bound over
    the two one-sided bounds); ``p`` is the smallest such ``alpha'`` (:func:`net_p_value`).
    It pays when pruning fixes rows as well as breaking them (refit shuffles errors).
* R² drop (regressors): ``e_i = (y_i - c_i)^2 - (y_i - o_i)^2`` (candidate ``c``, original
  ``o``), divided by the variance of ``y`` on the calibration rows (per output, then averaged
  as scikit-learn does): the R² drop is ``E[e] / var(y)``. ``p`` is the one-sided Student-t
  test of ``E[e] / var(y) > budget`` (:func:`mean_p_value`). Squared errors are unbounded, so
  no finite-sample test exists without assumptions: this one is asymptotically valid and
  treats ``var(y)`` as known (documented as approximate in the report).

**Rows needed.** With zero events the binomial bound is ``1 - alpha^(1/n)``, so a budget
``b`` can be certified only with ``n >= ln(alpha) / ln(1 - b)`` certify rows (about
``ln(1/alpha) / b``: 598 rows for 0.5 points at 95%): :func:`rows_needed`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from scipy import special, stats

RISKS = ("accuracy_drop", "agreement_loss", "r2_drop")


def binomial_p_value(*, events: int, rows: int, budget: float) -> float:
    """P-value of ``H: rate > budget`` after ``events`` in ``rows`` Bernoulli trials.

    ``P(Binomial(rows, budget) <= events)``, the largest probability under the null (at
    ``rate = budget``) of seeing so few events. A zero budget can never be certified (any
    positive rate can produce zero events): ``p = 1``.
    """
    if rows <= 0:
        return 1.0
    if budget <= 0.0:
        return 1.0
    if budget >= 1.0:
        return 0.0
    return float(special.bdtr(events, rows, budget))


def binomial_upper(*, events: int, rows: int, alpha: float) -> float:
    """One-sided ``1 - alpha`` Clopper-Pearson upper bound on a rate (1.0 without rows)."""
    if rows <= 0 or events >= rows:
        return 1.0
    return float(special.betaincinv(events + 1, rows - events, 1.0 - alpha))


def binomial_lower(*, events: int, rows: int, alpha: float) -> float:
    """One-sided ``1 - alpha`` Clopper-Pearson lower bound on a rate (0.0 with no events)."""
    if rows <= 0 or events <= 0:
        return 0.0
    if events >= rows:
        return float(alpha ** (1.0 / rows))
    return float(special.betaincinv(events, rows - events + 1, alpha))


def net_p_value(*, worse: int, better: int, rows: int, budget: float) -> float:
    """P-value of ``H: P(worse) - P(better) > budget`` (paired, see ``net`` above): the
    smallest ``alpha`` with ``upper(worse, alpha/2) - lower(better, alpha/2) <= budget``,
    found by bisection (the difference falls as ``alpha`` grows); 1.0 when none."""

    def holds(a: float) -> bool:
        up = binomial_upper(events=worse, rows=rows, alpha=a / 2)
        return up - binomial_lower(events=better, rows=rows, alpha=a / 2) <= budget

    if rows <= 0 or not holds(1.0):
        return 1.0
    lo, hi = 0.0, 1.0  # holds(hi) is true
    for _ in range(60):
        mid = (lo + hi) / 2
        if holds(mid):
            hi = mid
        else:
            lo = mid
    return hi


def mean_p_value(values: np.ndarray, *, budget: float) -> float:
    """One-sided Student-t p-value of ``H: E[values] > budget`` (asymptotic; see above)."""
    n = values.size
    if n < 2:
        return 1.0
    mean = float(np.mean(values))
    sd = float(np.std(values, ddof=1))
    if sd == 0.0:
        return 0.0 if mean < budget else 1.0
    t = (budget - mean) / (sd / math.sqrt(n))
    return float(stats.t.sf(t, df=n - 1))


def mean_upper(values: np.ndarray, *, alpha: float) -> float:
    """One-sided ``1 - alpha`` Student-t upper bound on ``E[values]`` (inf below 2 rows)."""
    n = values.size
    if n < 2:
        return math.inf
    sd = float(np.std(values, ddof=1))
    return float(np.mean(values)) + float(stats.t.ppf(1.0 - alpha, df=n - 1)) * sd / math.sqrt(n)


def rows_needed(*, budget: float, alpha: float) -> int | None:
    """Fewest rows that can certify ``rate <= budget`` at level ``alpha``: with zero events,
    ``P(Binomial(n, budget) = 0) = (1 - budget)^n <= alpha``. None for a zero budget."""
    if budget <= 0.0:
        return None
    if budget >= 1.0:
        return 1
    return max(1, math.ceil(math.log(alpha) / math.log1p(-budget)))


@dataclasses.dataclass(frozen=True)
class Outcome:
    """The paired outcome of one candidate on the certify rows, per risk that was asked for.

    ``events``: for binomial risks, the count of rows against the candidate (label changed;
    right-to-wrong); ``values``: for the R² drop, the per-row normalized squared-error
    differences. ``estimate``: the plain rate or mean on the certify rows.
    """

    risk: str
    rows: int
    estimate: float
    events: int | None = None
    values: np.ndarray | None = None
    fixed: int | None = None
    test: str = "count"

    def p_value(self, budget: float) -> float:
        """P-value of ``risk > budget`` (see the module docstring)."""
        if self.values is not None:
            return mean_p_value(self.values, budget=budget)
        assert self.events is not None
        if self.test == "net" and self.fixed is not None:
            return net_p_value(worse=self.events, better=self.fixed, rows=self.rows, budget=budget)
        return binomial_p_value(events=self.events, rows=self.rows, budget=budget)

    def upper(self, alpha: float) -> float:
        """A ``1 - alpha`` upper bound on this candidate's risk, taken alone (not selected)."""
        if self.values is not None:
            return mean_upper(self.values, alpha=alpha)
        assert self.events is not None
        return binomial_upper(events=self.events, rows=self.rows, alpha=alpha)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready counts (no per-row arrays)."""
        out: dict[str, Any] = {"rows": self.rows, "estimate": self.estimate}
        if self.events is not None:
            out["events"] = self.events
        if self.fixed is not None:
            out.update(fixed=self.fixed, test=self.test)
        return out


def choose_test(search: Outcome, *, rows: int, budget: float) -> str:
    """``count`` or ``net`` for an accuracy outcome on ``rows`` certify rows, from the same
    candidate's outcome on the *search* rows: their counts scaled to ``rows``, whichever test
    gives the smaller p-value (``count`` on ties and without fixed rows)."""
    if not search.fixed or search.rows <= 0 or search.events is None:
        return "count"
    scale = rows / search.rows
    worse, better = round(search.events * scale), round(search.fixed * scale)
    p_count = binomial_p_value(events=worse, rows=rows, budget=budget)
    p_net = net_p_value(worse=worse, better=better, rows=rows, budget=budget)
    return "net" if p_net < p_count else "count"


def outcomes(
    *,
    ref_pred: np.ndarray,
    pred: np.ndarray,
    target: np.ndarray | None,
    risks: tuple[str, ...],
    y: np.ndarray | None = None,
    var_y: np.ndarray | None = None,
) -> dict[str, Outcome]:
    """Paired outcomes of a candidate's predictions ``pred`` against the original's.

    Classifiers: ``ref_pred``/``pred`` are class indices, ``target`` the true ones (None when
    unlabelled: only ``agreement_loss`` then). Regressors: predictions of shape
    ``(rows, outputs)``, ``y`` the targets, ``var_y`` the per-output target variance.
    """
    out: dict[str, Outcome] = {}
    n = int(ref_pred.shape[0])
    if "agreement_loss" in risks:
        k = int(np.count_nonzero(pred != ref_pred))
        out["agreement_loss"] = Outcome("agreement_loss", n, k / n if n else 0.0, events=k)
    if "accuracy_drop" in risks:
        assert target is not None
        ref_ok, ok = ref_pred == target, pred == target
        k = int(np.count_nonzero(ref_ok & ~ok))
        j = int(np.count_nonzero(~ref_ok & ok))
        drop = float(np.mean(ref_ok) - np.mean(ok)) if n else 0.0
        out["accuracy_drop"] = Outcome("accuracy_drop", n, drop, events=k, fixed=j)
    if "r2_drop" in risks:
        assert y is not None and var_y is not None
        yy = np.asarray(y, dtype=np.float64).reshape(pred.shape)
        e = ((yy - pred) ** 2 - (yy - ref_pred) ** 2) / var_y
        values = e.mean(axis=1)
        out["r2_drop"] = Outcome("r2_drop", n, float(values.mean()) if n else 0.0, values=values)
    return out


@dataclasses.dataclass(frozen=True)
class Step:
    """One tested candidate: its payload, outcomes, p-value (largest over risks), verdict."""

    item: Any
    outcomes: dict[str, Outcome]
    p_value: float
    certified: bool


def fixed_sequence(
    candidates: Iterator[Any],
    *,
    test: Callable[[Any], dict[str, Outcome]],
    budgets: dict[str, float],
    alpha: float,
) -> list[Step]:
    """Walk ``candidates`` in order; each is certified when every risk's p-value is at most
    ``alpha`` (the intersection test: its p-value is the largest); stop after the first one
    that is not. Returns the tested steps (all certified but possibly the last)."""
    steps: list[Step] = []
    for item in candidates:
        outs = test(item)
        p = max(outs[r].p_value(budgets[r]) for r in budgets)
        ok = p <= alpha
        steps.append(Step(item, outs, p, ok))
        if not ok:
            break
    return steps
