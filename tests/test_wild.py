"""Models from the wild (issue 22): pickles written by older scikit-learn releases.

``models/wild/<release>/`` holds what ``models/wild/make.py`` saved in a throwaway venv of each
release: every supported family as ``.pkl`` and ``.joblib``, and the model's own outputs on
fixed rows (``outputs.npz``). Each file is compressed by today's edgesparse at float64 and must
give those outputs: labels equal, values within 1e-5.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from sklearn.exceptions import InconsistentVersionWarning

from edgesparse.api import compress
from edgesparse.errors import UnsupportedModelError
from edgesparse.loader import load_model
from edgesparse.runtime.model import Model

WILD = Path(__file__).resolve().parent.parent / "models" / "wild"
RELEASES = sorted(p.name for p in WILD.iterdir() if (p / "manifest.json").is_file())


# What a release's rules make impossible to reproduce, and the attribute the refusal names.
REFUSED = {"logreg_multinomial_binary": "multi_class='multinomial' on two classes"}


def _cases() -> list[tuple[str, str, str]]:
    out = []
    for release in RELEASES:
        manifest = json.loads((WILD / release / "manifest.json").read_text())
        for name in sorted(manifest["models"]):
            for suffix in (".pkl", ".joblib"):
                out.append((release, name, suffix))
    return out


def _outputs(release: str) -> dict[str, np.ndarray]:
    with np.load(WILD / release / "outputs.npz") as npz:
        return {k: npz[k] for k in npz.files}


def test_fixtures_cover_the_releases():
    assert {r.rsplit(".", 1)[0] for r in RELEASES} >= {"1.1", "1.3", "1.5", "1.7"}
    total = sum(f.stat().st_size for f in WILD.rglob("*") if f.is_file())
    assert total < 2 * 1024 * 1024


@pytest.mark.parametrize(("release", "name", "suffix"), _cases())
def test_old_model_gives_its_own_outputs(release, name, suffix):
    manifest = json.loads((WILD / release / "manifest.json").read_text())
    expected = _outputs(release)
    X = expected[f"X.{manifest['models'][name]['data']}"]
    refusal = REFUSED.get(name)
    if refusal is not None and tuple(map(int, release.split(".")[:2])) < (1, 8):
        with pytest.raises(UnsupportedModelError, match=refusal) as info:
            compress(load_model(WILD / release / f"{name}{suffix}"), quantize="none")
        assert f"scikit-learn {release}" in str(info.value)
        return
    with warnings.catch_warnings():
        # scikit-learn's own version warning is replaced by edgesparse's summary
        warnings.simplefilter("error", InconsistentVersionWarning)
        model = load_model(WILD / release / f"{name}{suffix}")
    ir = compress(model, quantize="none")
    assert ir.provenance["sklearn_version"] == release
    runtime = Model(ir)
    got = runtime.predict(X)
    want = expected[f"{name}.predict"]
    if ir.is_classifier:
        np.testing.assert_array_equal(got, want)
    else:
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    for method in ("predict_proba", "decision_function"):
        key = f"{name}.{method}"
        if key in expected:
            np.testing.assert_allclose(
                getattr(runtime, method)(X), expected[key], rtol=1e-5, atol=1e-5, err_msg=key
            )
        elif ir.is_classifier and method == "predict_proba":
            assert not ir.has_proba
