"""skops files from the wild (issue 22): ``.skops`` files written by every skops release that
installs here, each with a scikit-learn of its time.

``models/wild/<sklearn release>/*.skops`` (skops 0.11 and 0.16) are tested with the pickles in
``tests/test_wild.py``; ``models/wild/skops/<skops release>/`` holds the releases in between,
written by ``python models/wild/make.py --skops``: a few version-sensitive families as
``.skops`` only, with the model's own outputs on fixed rows. Each is compressed by today's
edgesparse at float64 and must give those outputs (labels equal, values within 1e-5), and the
summary must name the scikit-learn release that wrote it.
"""

from __future__ import annotations

import importlib.util
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from sklearn.exceptions import InconsistentVersionWarning

from edgesparse.api import compress
from edgesparse.loader import load_model
from edgesparse.pipeline import CompressOptions, compress_file
from edgesparse.runtime.model import Model
from tests.conftest import require_tool

WILD = Path(__file__).resolve().parent.parent / "models" / "wild"
SKOPS = WILD / "skops"
RELEASES = sorted(p.name for p in SKOPS.iterdir() if (p / "manifest.json").is_file())


@pytest.fixture(autouse=True)
def _skops() -> None:
    have = importlib.util.find_spec("skops") is not None
    require_tool(have, what="skops", install="pip install -e '.[skops]'")


def _manifest(release: str) -> dict:
    return json.loads((SKOPS / release / "manifest.json").read_text())


def _cases() -> list[tuple[str, str]]:
    return [(r, n) for r in RELEASES for n in sorted(_manifest(r)["models"])]


def test_every_skops_release_from_the_floor_is_covered():
    # The pickle fixtures bring skops 0.11 and 0.16; this tree the releases in between.
    beside = {
        json.loads(m.read_text())["skops"]
        for m in WILD.glob("*/manifest.json")
        if any(m.parent.glob("*.skops"))
    }
    written = {_manifest(r)["skops"] for r in RELEASES}
    minors = {v.rsplit(".", 1)[0] for v in beside | written}
    assert minors >= {"0.11", "0.12", "0.13", "0.14", "0.15", "0.16"}
    total = sum(f.stat().st_size for f in SKOPS.rglob("*") if f.is_file())
    assert total < 400 * 1024


@pytest.mark.parametrize(("release", "name"), _cases())
def test_skops_file_gives_its_own_outputs(release, name):
    manifest = _manifest(release)
    with np.load(SKOPS / release / "outputs.npz") as npz:
        expected = {k: npz[k] for k in npz.files}
    X = expected[f"X.{manifest['models'][name]['data']}"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", InconsistentVersionWarning)
        model = load_model(SKOPS / release / f"{name}.skops")
    ir = compress(model, quantize="none")
    assert ir.provenance["sklearn_version"] == manifest["sklearn"]
    runtime = Model(ir)
    got = runtime.predict(X)
    if ir.is_classifier:
        np.testing.assert_array_equal(got, expected[f"{name}.predict"])
    else:
        np.testing.assert_allclose(got, expected[f"{name}.predict"], rtol=1e-5, atol=1e-5)
    for method in ("predict_proba", "decision_function"):
        key = f"{name}.{method}"
        if key in expected:
            np.testing.assert_allclose(
                getattr(runtime, method)(X), expected[key], rtol=1e-5, atol=1e-5, err_msg=key
            )


def test_summary_names_the_release_that_wrote_the_skops_file(tmp_path):
    release = RELEASES[0]
    sklearn_version = _manifest(release)["sklearn"]
    report = compress_file(
        CompressOptions(source=SKOPS / release / "logreg_ovr.skops", output=tmp_path / "m.esb")
    )
    assert report.linear.sklearn_version == sklearn_version
    assert report.linear.sklearn_rules is not None
    assert "multi_class='ovr'" in report.linear.sklearn_rules
