"""How closely a compressed model follows the original, measured without scikit-learn.

Both models are :class:`~edgesparse.ir.LinearIR` run by the numpy runtime, on rows the user
gave or, without data, on *probe* rows drawn from what the model knows of its inputs
(``ir.input_stats``: a scaler's centre and spread). Classifiers are scored by label agreement,
regressors by the largest absolute error relative to the original's output range
(``max|Δ| / (max - min)`` over the rows, worst output).

:func:`choose_int8` uses it to pick the int8 layout (with or without per-column exponents),
:func:`raise_precision` to raise the rows int8 serves worst to int16 until the model meets the
bar.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from edgesparse.ir import FeatureStats, LinearIR
from edgesparse.passes.quantize import quantize_int8, raise_rows
from edgesparse.runtime.model import Model

PROBE_ROWS = 4096
"""Rows drawn from the input statistics when no data is given."""

MIN_AGREEMENT = 0.995
"""The bar on the user's rows: label agreement with the original model."""
PROBE_MIN_AGREEMENT = 0.999
"""The bar on probe rows. Probes are not the user's data: on the fidelity suite
(``benchmarks/bench_fidelity.py``) int8's agreement on probes (99.1-100%) says little about its
agreement on held-out rows (98.7-100%), and every case at 99.9% or more on probes stayed at
99.5% or more on its rows. The headroom costs one byte per weight of the rows it raises."""
MAX_ERROR = 0.01
"""Regressors: the largest error as a fraction of each output's range."""


@dataclasses.dataclass(frozen=True)
class Fidelity:
    """One fidelity figure and what it was measured on.

    ``value`` is label agreement (classifiers, higher is better) or relative error (regressors,
    lower is better); ``rows`` the number of rows, ``basis`` ``"data"`` or ``"probe"``.
    """

    metric: str
    value: float
    rows: int
    basis: str

    def better_or_equal(self, other: Fidelity) -> bool:
        """True when this figure is at least as good as ``other`` (same metric)."""
        if self.metric == "agreement":
            return self.value >= other.value
        return self.value <= other.value

    def meets(self) -> bool:
        """The safe-default bar: label agreement ≥ :data:`MIN_AGREEMENT` on data rows
        (:data:`PROBE_MIN_AGREEMENT` on probe rows), or error ≤ :data:`MAX_ERROR` of the
        output range."""
        if self.metric == "agreement":
            bar = PROBE_MIN_AGREEMENT if self.basis == "probe" else MIN_AGREEMENT
            return self.value >= bar
        return self.value <= MAX_ERROR

    @property
    def bar(self) -> str:
        """The bar :meth:`meets` applies, in words: ``99.5%``, ``99.9% (probe rows)``, ``1%``."""
        if self.metric != "agreement":
            return f"{MAX_ERROR:.0%} of the output range"
        if self.basis == "probe":
            return f"{PROBE_MIN_AGREEMENT:.1%} (probe rows)"
        return f"{MIN_AGREEMENT:.1%}"

    def describe(self) -> str:
        """E.g. ``99.80% label agreement on 4096 probe rows``."""
        what = (
            f"{self.value:.2%} label agreement"
            if self.metric == "agreement"
            else f"max error {self.value:.2%} of the output range"
        )
        if self.basis == "probe":
            return f"{what} on {self.rows} probe rows drawn from the model's input statistics"
        return f"{what} on {self.rows} data rows"


def data_stats(X: Any, *, source: str = "data") -> FeatureStats | None:
    """Input statistics of the rows ``X`` (dense, or CSR: scipy or :class:`CSRArrays`).

    The centre is each column's mean. The spread is its standard deviation for dense rows; for
    CSR rows it is the root mean square of the column's *stored* values, the size ``x[j]`` has
    when it is present: a rare text feature has a tiny standard deviation, yet when it occurs
    its value is as large as any other's. Columns without a spread take the median of the
    others; None when no column has one or there are no rows.
    """
    n_rows = int(X.shape[0])
    if n_rows == 0:
        return None
    if hasattr(X, "tocsr") and hasattr(X, "indptr"):
        X = X.tocsr()
        n_cols = int(X.shape[1])
        data = np.asarray(X.data, dtype=np.float64)
        cols = np.asarray(X.indices, dtype=np.intp)
        mean = np.bincount(cols, weights=data, minlength=n_cols) / n_rows
        present = np.bincount(cols, minlength=n_cols)
        with np.errstate(invalid="ignore", divide="ignore"):
            spread = np.sqrt(np.bincount(cols, weights=data**2, minlength=n_cols) / present)
    else:
        Xd = np.asarray(X, dtype=np.float64)
        mean, spread = Xd.mean(axis=0), Xd.std(axis=0)
    good = np.isfinite(spread) & (spread > 0)
    if not good.any():
        return None
    spread = np.where(good, spread, np.median(spread[good]))
    return FeatureStats(center=np.nan_to_num(mean), spread=spread, source=source)


PROBE_CELLS = 8 << 20
"""Most values the probe rows may hold (64 MiB of float64): a model with millions of inputs
gets fewer rows (at least :data:`MIN_PROBE_ROWS`), not gigabytes of them (issue 16: 4096
rows of a 2-million-input pipeline asked for 64 GiB)."""
MIN_PROBE_ROWS = 8


def probe_rows(stats: FeatureStats, *, n: int | None = None, seed: int = 0) -> np.ndarray:
    """``n`` rows drawn as ``centre + spread · N(0, 1)`` per column (float64); by default
    :data:`PROBE_ROWS`, fewer when that many would hold more than :data:`PROBE_CELLS` values."""
    if n is None:
        n = min(PROBE_ROWS, max(MIN_PROBE_ROWS, PROBE_CELLS // max(1, stats.center.size)))
    rng = np.random.default_rng(seed)
    return stats.center + stats.spread * rng.standard_normal((n, stats.center.size))


def measure(reference: LinearIR, candidate: LinearIR, X: Any, *, basis: str) -> Fidelity:
    """Fidelity of ``candidate`` against ``reference`` on the rows ``X``."""
    ref, got = Model(reference), Model(candidate)
    n = int(X.shape[0])
    if reference.is_classifier:
        agree = np.asarray(ref.predict(X)) == np.asarray(got.predict(X))
        return Fidelity("agreement", float(agree.mean()) if n else 1.0, n, basis)
    r = np.asarray(ref.predict(X), dtype=np.float64).reshape(n, -1)
    g = np.asarray(got.predict(X), dtype=np.float64).reshape(n, -1)
    span = r.max(axis=0) - r.min(axis=0) if n else np.ones(r.shape[1])
    span = np.where(span > 0, span, np.maximum(np.abs(r).max(axis=0, initial=0.0), 1e-300))
    err = np.abs(g - r).max(axis=0, initial=0.0) / span
    return Fidelity("relative_error", float(err.max(initial=0.0)), n, basis)


def evaluation_rows(ir: LinearIR, X: Any | None) -> tuple[Any, str] | None:
    """The rows to measure on: the user's ``X``, else probe rows, else None."""
    if X is not None and X.shape[0] > 0:
        return X, "data"
    if ir.input_stats is not None:
        return probe_rows(ir.input_stats), "probe"
    return None


def choose_int8(
    ir: LinearIR, *, granularity: str = "row", X: Any | None = None
) -> tuple[LinearIR, Fidelity | None]:
    """Int8-quantize ``ir`` with or without per-column exponents, whichever measures better.

    Measured on ``X`` (the user's rows) or probe rows from ``ir.input_stats``: no exponents,
    exponents from the statistics, or from the weights alone, by the RMS score error; ties go
    to the smaller layout (no exponents). Without rows, per-column exponents from the weights
    (data-free equalization) are used, and the fidelity is None (unknown).
    """
    rows = evaluation_rows(ir, X)
    pow2 = quantize_int8(ir, granularity=granularity, columns="pow2")
    if rows is None:
        return pow2, None
    # Candidates, smallest layout first (ties go to it): no exponents; exponents from the
    # input statistics; exponents from the weights alone (data-free equalization, which
    # measured closer on the hashed-text model, whose row statistics are sparse).
    candidates = [quantize_int8(ir, granularity=granularity, columns="none")]
    if pow2.col_exponents is not None:
        candidates.append(pow2)
    if ir.input_stats is not None:
        free = quantize_int8(ir, granularity=granularity, columns="pow2", stats_exponents=False)
        if free.col_exponents is not None:
            candidates.append(free)
    # Decided on the RMS score error, not on labels: with few rows, label agreement ties often
    # while the scores already show which layout is closer.
    errors = [score_error(ir, c, rows[0]) for c in candidates]
    best = candidates[int(np.argmin(errors))]
    return best, measure(ir, best, rows[0], basis=rows[1])


def score_error(reference: LinearIR, candidate: LinearIR, X: Any) -> float:
    """RMS difference of the raw scores (``decision_function``) over ``X``."""
    ref = np.asarray(Model(reference).decision_function(X), dtype=np.float64)
    got = np.asarray(Model(candidate).decision_function(X), dtype=np.float64)
    return float(np.sqrt(np.mean((ref - got) ** 2))) if ref.size else 0.0


def raise_precision(
    reference: LinearIR, quantized: LinearIR, X: Any, *, basis: str
) -> tuple[LinearIR, Fidelity, int]:
    """Raise the fewest rows of ``quantized`` to int16 that make it meet the bar on ``X``.

    Rows are ranked by how far int8 moves their scores on ``X`` (RMS; regressors relative to
    each output's range, since outputs are judged one by one) and raised in that order: 1, 2,
    4, ... of them until :meth:`Fidelity.meets` holds or every row is raised, then the fewest
    between the last two counts that still meet it (bisection). Returns the
    model, its fidelity and the number of rows raised (0: ``quantized`` already meets the bar;
    a model that fails with every row raised is returned with every row raised, and the
    caller decides). ``quantized`` needs one int8 scale per row.
    """
    fid = measure(reference, quantized, X, basis=basis)
    if fid.meets():
        return quantized, fid, 0
    order = _rows_by_error(reference, quantized, X)

    def attempt(k: int) -> tuple[LinearIR, Fidelity, int]:
        raised = raise_rows(reference, quantized, order[:k])
        return raised, measure(reference, raised, X, basis=basis), k

    low, k = 0, 1
    while True:
        k = min(k, order.size)
        best = attempt(k)
        if best[1].meets() or k == order.size:
            break
        low, k = k, 2 * k
    if not best[1].meets():
        return best
    # Fewest rows in (low, k] that meet the bar (fidelity is near-monotone in k).
    high = k
    while high - low > 1:
        mid = (low + high) // 2
        tried = attempt(mid)
        if tried[1].meets():
            best, high = tried, mid
        else:
            low = mid
    return best


def _rows_by_error(reference: LinearIR, quantized: LinearIR, X: Any) -> np.ndarray:
    """Row indices, the row whose scores int8 moves most first."""
    n = int(X.shape[0])
    ref = np.asarray(Model(reference).decision_function(X), dtype=np.float64).reshape(n, -1)
    got = np.asarray(Model(quantized).decision_function(X), dtype=np.float64).reshape(n, -1)
    err = np.sqrt(np.mean((ref - got) ** 2, axis=0))
    if not reference.is_classifier:
        span = ref.max(axis=0) - ref.min(axis=0)
        err = err / np.where(span > 0, span, 1.0)
    return np.argsort(-err, kind="stable")
