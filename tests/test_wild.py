"""Models from the wild (issue 22): pickles written by older scikit-learn releases.

``models/wild/<release>/`` holds what ``models/wild/make.py`` saved in a throwaway venv of each
release: every supported family as ``.pkl`` and ``.joblib``, and the model's own outputs on
fixed rows (``outputs.npz``). Each file is compressed by today's edgesparse at float64 and must
give those outputs: labels equal, values within 1e-5.
"""

from __future__ import annotations

import json
import re
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
            for suffix in (".pkl", ".joblib", ".skops"):
                if (WILD / release / f"{name}{suffix}").is_file():
                    out.append((release, name, suffix))
    return out


def _outputs(release: str) -> dict[str, np.ndarray]:
    with np.load(WILD / release / "outputs.npz") as npz:
        return {k: npz[k] for k in npz.files}


def test_fixtures_cover_the_releases():
    assert {r.rsplit(".", 1)[0] for r in RELEASES} >= {"1.1", "1.3", "1.5", "1.7"}
    # The scikit-learn fixtures; surprise/ and skops/ have caps of their own
    # (tests/test_wild_knn.py, tests/test_wild_skops.py).
    total = sum(f.stat().st_size for r in RELEASES for f in (WILD / r).iterdir() if f.is_file())
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


# -- what the user is told (issue 22, part 3) -------------------------------------------------
def _iris_check(tmp_path: Path, release: str, name: str) -> Path:
    outputs = _outputs(release)
    path = tmp_path / "check.npz"
    np.savez(path, X=outputs["X.iris"], y=outputs[f"{name}.predict"])
    return path


def test_summary_names_the_release_and_its_rules(tmp_path):
    import sklearn
    from click.testing import CliRunner

    from edgesparse.cli import cli

    model = WILD / "1.3.2" / "logreg_ovr.pkl"
    check = _iris_check(tmp_path, "1.3.2", "logreg_ovr")
    with warnings.catch_warnings():
        warnings.simplefilter("error", InconsistentVersionWarning)
        result = CliRunner().invoke(
            cli,
            [
                "compress",
                str(model),
                "-o",
                str(tmp_path / "m.esb"),
                "--quantize",
                "none",
                "--check-data",
                str(check),
            ],
        )
    assert result.exit_code == 0, result.output
    assert "InconsistentVersionWarning" not in result.output + result.stderr
    line = next(x for x in result.output.splitlines() if x.startswith("written by"))
    assert "scikit-learn 1.3.2; read by the rules of scikit-learn 1.3.2" in line
    assert f"(installed: {sklearn.__version__})" in line
    assert "one-vs-rest normalised (multi_class='ovr')" in line
    # The check's reference is the model as 1.3.2 computed it, not today's softmax.
    proba = next(x for x in result.output.splitlines() if x.startswith("max |d proba|"))
    assert float(proba.split()[-1]) < 1e-9
    reference = next(x for x in result.output.splitlines() if x.startswith("check reference"))
    assert reference.endswith("the float64 model read by the rules of scikit-learn 1.3.2")


def test_report_fields_and_why_todays_sklearn_is_not_the_oracle(tmp_path):
    from edgesparse.pipeline import CompressOptions, compress_file

    model = WILD / "1.3.2" / "logreg_ovr.pkl"
    check = _iris_check(tmp_path, "1.3.2", "logreg_ovr")
    report = compress_file(
        CompressOptions(source=model, output=tmp_path / "m.esb", quantize="none", check_data=check)
    )
    assert report.linear.sklearn_version == "1.3.2"
    assert (
        report.linear.sklearn_rules is not None
        and "multi_class='ovr'" in report.linear.sklearn_rules
    )
    assert report.linear.check is not None and report.linear.check.max_abs_proba_delta < 1e-9
    # What the issue saw: today's scikit-learn computes this model's predict_proba with
    # softmax, far from what it gave its owner.
    X = _outputs("1.3.2")["X.iris"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        todays = load_model(model).predict_proba(X)
    assert np.max(np.abs(todays - _outputs("1.3.2")["logreg_ovr.predict_proba"])) > 0.1


def test_model_fitted_here_names_the_installed_release(tmp_path):
    import pickle

    import sklearn
    from sklearn.linear_model import LogisticRegression

    from edgesparse.pipeline import CompressOptions, compress_file

    X, y = _outputs("1.3.2")["X.iris"], _outputs("1.3.2")["logreg_ovr.predict"]
    (tmp_path / "m.pkl").write_bytes(pickle.dumps(LogisticRegression(max_iter=500).fit(X, y)))
    report = compress_file(CompressOptions(source=tmp_path / "m.pkl", output=tmp_path / "m.esb"))
    assert report.linear.sklearn_version == sklearn.__version__
    assert report.linear.sklearn_rules == f"read by the rules of scikit-learn {sklearn.__version__}"


def test_version_without_known_rules_is_refused(tmp_path):
    import pickle

    from sklearn.linear_model import LogisticRegression

    X, y = _outputs("1.3.2")["X.iris"], _outputs("1.3.2")["logreg_ovr.predict"]
    est = LogisticRegression(max_iter=500).fit(X, y)
    for ancient in ("0.17.1", "0.21.3"):
        est.__dict__["_sklearn_version"] = ancient  # as the loader records an old pickle
        with pytest.raises(UnsupportedModelError, match=rf"scikit-learn {ancient} \(its _skl"):
            compress(est, quantize="none")
    est.__dict__["_sklearn_version"] = "0.22.2"  # LogisticRegression as in 1.1: auto -> softmax
    assert compress(est, quantize="none").head == "softmax"
    (tmp_path / "m.pkl").write_bytes(pickle.dumps(est))  # __getstate__ writes today's version
    assert (
        compress(load_model(tmp_path / "m.pkl"), quantize="none").provenance["sklearn_version"]
        == __import__("sklearn").__version__
    )


def test_loss_is_loaded_by_the_loss_attribute_only():
    # The pickle's _sgd_fast.Log object becomes a name-only stand-in; nothing is imported.
    est = load_model(WILD / "1.3.2" / "sgd_log_l1.pkl")
    assert repr(est.loss_function_) == "<scikit-learn loss Log (read as a name only)>"
    assert est.loss == "log_loss"


@pytest.mark.parametrize(
    "args", [("os.system",), (1.0, 2.0, 3.0), (b"x",), ([1.0],)], ids=["str", "3", "b", "list"]
)
def test_loss_stand_in_refuses_unexpected_arguments(tmp_path, args):
    import pickle

    from edgesparse.errors import ModelFileError

    # GLOBAL _sgd_fast.Hinge, then REDUCE with the given arguments.
    body = pickle.dumps(args, protocol=2)[2:-1]  # the tuple, without PROTO and STOP
    data = b"\x80\x02csklearn.linear_model._sgd_fast\nHinge\n" + body + b"R."
    (tmp_path / "x.pkl").write_bytes(data)
    with pytest.raises(ModelFileError, match="arguments scikit-learn never writes"):
        load_model(tmp_path / "x.pkl")


@pytest.mark.parametrize(
    ("edit", "shown"),
    [
        (lambda state: state.pop("_sklearn_version"), "pre-0.18"),
        (lambda state: state.update(_sklearn_version="x" * 1000), "<not a version>"),
        (lambda state: state.update(_sklearn_version=["1.3.2"]), "<not a version>"),
    ],
    ids=["missing", "long", "list"],
)
def test_pickle_without_a_usable_version_is_refused(tmp_path, edit, shown):
    import copyreg
    import io
    import pickle

    from sklearn.linear_model import Ridge

    est = Ridge().fit(_outputs("1.3.2")["X.diabetes"], np.arange(30.0))

    class Tampering(pickle.Pickler):
        def reducer_override(self, obj):
            if obj is not est:
                return NotImplemented
            state = est.__getstate__()
            edit(state)
            return copyreg.__newobj__, (Ridge,), state

    buf = io.BytesIO()
    Tampering(buf, protocol=2).dump(est)
    (tmp_path / "m.pkl").write_bytes(buf.getvalue())
    model = load_model(tmp_path / "m.pkl")
    assert type(model) is Ridge
    with pytest.raises(UnsupportedModelError, match=f"scikit-learn {re.escape(shown)}"):
        compress(model, quantize="none")


def test_skops_loss_objects_are_read_as_names():
    # skops 0.16 would import sklearn.linear_model._sgd_fast.Log, which no longer exists.
    est = load_model(WILD / "1.5.2" / "sgd_log_l1.skops")
    assert est._loss_function_ == "<scikit-learn loss Log (read as a name only)>"
    assert est.__dict__["_sklearn_version"] == "1.5.2"


@pytest.mark.parametrize(
    ("release", "name"), [("1.3.2", "logreg_ovr"), ("1.4.2", "logreg_liblinear")]
)
def test_model_unpickled_elsewhere_is_still_read_by_its_rules(release, name):
    # A model unpickled by plain pickle has lost _sklearn_version; what it holds (multi_class,
    # loss="log") still tells which releases' rules apply. (Fixtures of numpy 1.x releases:
    # plain pickle cannot read numpy 2 pickles on numpy 1.x, edgesparse's loader can.)
    import pickle

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = pickle.loads((WILD / release / f"{name}.pkl").read_bytes())
    ir = compress(est, quantize="none")
    assert "written by scikit-learn <= 1.7" in ir.provenance["sklearn_rules"]
    expected = _outputs(release)
    np.testing.assert_allclose(
        Model(ir).predict_proba(expected["X.iris"]), expected[f"{name}.predict_proba"], atol=1e-9
    )


def test_old_loss_name_with_a_newer_version_is_read_as_log_loss():
    est = load_model(WILD / "1.1.3" / "sgd_log_l1.pkl")
    est.__dict__["_sklearn_version"] = __import__("sklearn").__version__
    ir = compress(est, quantize="none")
    assert (
        ir.head == "logistic" and "loss='log' read as 'log_loss'" in ir.provenance["sklearn_rules"]
    )
    expected = _outputs("1.1.3")
    np.testing.assert_allclose(
        Model(ir).predict_proba(expected["X.iris"]), expected["sgd_log_l1.predict_proba"], atol=1e-9
    )
