"""Default int8 on models nobody here designed: every family x every scaler x mixed-scale and
real tables, judged against scikit-learn's own ``predict`` on rows the model never saw."""

from __future__ import annotations

import pytest

from edgesparse.api import compress
from edgesparse.formats import esb
from edgesparse.runtime.model import Model
from tests import fidelity_suite as fs

# Cases that int8 with column exponents and bias correction still cannot keep at the bar: the
# scores of these models sit so close together that ~8 bits per weight flip 0.5-2% of the rows
# (or 1 row of a 75-row test set). Issue 15's "raise precision only where needed" is what fixes
# them; strict, so each one that starts passing must leave this list.
NEEDS_MORE_PRECISION = {
    "mixed-4class/standard/sgd-log",
    "mixed-4class/standard/sgd-modified-huber",
    "mixed-4class/standard/ridgeclf",
    "mixed-4class/minmax/ridgeclf",
    "mixed-4class/maxabs/ovr-logreg",
    "mixed-4class/maxabs/linearsvc",
    "mixed-4class/maxabs/ridgeclf",
    "mixed-4class/maxabs/perceptron",
    "mixed-4class/robust/ovr-logreg",
    "mixed-4class/robust/ridgeclf",
    "mixed-binary/raw/ridgeclf",
    "wine/minmax/sgd-log",
    "breast-cancer/raw/logreg",
    "breast-cancer/raw/ovr-logreg",
    "iris/minmax/sgd-log",
}


def _params() -> list:
    out = []
    for name in fs.case_names():
        marks = []
        if name in NEEDS_MORE_PRECISION:
            marks.append(
                pytest.mark.xfail(strict=True, reason="int8 needs more precision here (issue 15)")
            )
        out.append(pytest.param(name, marks=marks, id=name))
    return out


@pytest.mark.parametrize("name", _params())
def test_default_int8_esb_follows_sklearn(name: str) -> None:
    case = fs.case(name)
    data = fs.training_rows(name) if fs.needs_data(name) else None
    ir = compress(case.estimator, data=data)
    model = Model(esb.decode(esb.encode(ir)))
    value = fs.score(case, model.predict(case.X_test))
    bar = f">= {fs.MIN_AGREEMENT:.1%} agreement" if case.is_classifier else "<= 1% error"
    assert fs.passes(case, value), f"{name}: {value:.4f}, wanted {bar} ({ir.column_scaling})"


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
