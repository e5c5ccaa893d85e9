"""Default int8 on models nobody here designed: every family x every scaler x mixed-scale and
real tables, judged against scikit-learn's own ``predict`` on rows the model never saw."""

from __future__ import annotations

import functools

import pytest

from edgesparse.formats import esb
from edgesparse.runtime.model import Model
from tests import fidelity_suite as fs

# Two levels, because which borderline models flip a row or two depends on the scikit-learn
# and numpy versions that fitted them (solver iterates), not on edgesparse:
# * every case: at most max(2 rows, 1.5% of its held-out rows) disagree (regressors: the 1% bar);
# * the suite: at least 97% of the cases meet the 99.5% bar. Today 253 of 255 do: without the
#   user's rows the default judges int8 on probe rows from the scaler's statistics, which
#   predict real agreement only loosely; the two it misses lose 1 of 75 and 5 of 600 rows.
MIN_SHARE_AT_BAR = 0.97


@functools.cache
def _int8_score(name: str) -> tuple[fs.Case, float, str]:
    case = fs.case(name)
    ir = fs.default_compressed(name)
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


def test_onnx_follows_sklearn_like_esb() -> None:
    """The same default models as ONNX graphs in onnxruntime: the same labels as the numpy
    runtime on (nearly) every row, so the same share of the suite meets the bar."""
    from edgesparse.formats import onnx as eo
    from edgesparse.runtime import loads

    below = []
    for name in fs.case_names():
        case, ir = fs.case(name), fs.default_compressed(name)
        got = loads(eo.encode(ir)).predict(case.X_test)
        same = Model(ir).predict(case.X_test)
        if case.is_classifier:
            # float32 summation order may differ: a tie-close row at most
            assert (got != same).sum() <= 1, name
        if not fs.passes(case, fs.score(case, got)):
            below.append(name)
    share = 1.0 - len(below) / len(fs.case_names())
    assert share >= MIN_SHARE_AT_BAR, below


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
