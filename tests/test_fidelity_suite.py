"""Default int8 on models nobody here designed: every family x every scaler x mixed-scale and
real tables, judged against scikit-learn's own ``predict`` on rows the model never saw."""

from __future__ import annotations

import functools

import pytest

from edgesparse.api import compress
from edgesparse.formats import esb
from edgesparse.runtime.model import Model
from tests import fidelity_suite as fs

# Two levels, because which borderline models flip a row or two depends on the scikit-learn
# and numpy versions that fitted them (solver iterates), not on edgesparse:
# * every case: at most max(2 rows, 1.5% of its held-out rows) disagree (regressors: the 1% bar);
# * the suite: at least 90% of the cases meet the 99.5% bar. Today 245 of 255 do; the rest are
#   models whose scores sit so close together that 8 bits per weight flip 0.5-1.3% of rows
#   (16-bit weights fix every one; the safe default writes float32 where its estimate sees it).
MIN_SHARE_AT_BAR = 0.90


@functools.cache
def _int8_score(name: str) -> tuple[fs.Case, float, str]:
    case = fs.case(name)
    data = fs.training_rows(name) if fs.needs_data(name) else None
    ir = compress(case.estimator, data=data)
    model = Model(esb.decode(esb.encode(ir)))
    return case, fs.score(case, model.predict(case.X_test)), ir.column_scaling


@pytest.mark.parametrize("name", fs.case_names())
def test_default_int8_esb_follows_sklearn(name: str) -> None:
    case, value, scaling = _int8_score(name)
    if case.is_classifier:
        rows = case.X_test.shape[0]
        wrong = round((1.0 - value) * rows)
        assert wrong <= max(2, 0.015 * rows), f"{name}: {wrong} of {rows} labels differ ({scaling})"
    else:
        assert fs.passes(case, value), f"{name}: error {value:.2%} of the output range ({scaling})"


def test_most_cases_meet_the_bar() -> None:
    names = fs.case_names()
    below = [n for n in names if not fs.passes(fs.case(n), _int8_score(n)[1])]
    share = 1.0 - len(below) / len(names)
    assert share >= MIN_SHARE_AT_BAR, f"{len(below)} of {len(names)} below the bar: {below}"


def test_suite_covers_every_family_and_scaler() -> None:
    names = fs.case_names()
    for scaler in fs.SCALERS:
        for model in (*fs.CLASSIFIERS, *fs.REGRESSORS):
            if scaler == "raw" and model in fs.NEEDS_SCALING:
                continue
            assert any(n.endswith(f"/{scaler}/{model}") for n in names), (scaler, model)
    assert {"wine", "breast-cancer", "iris", "digits", "diabetes", "linnerud"} <= {
        n.split("/")[0] for n in names
    }
