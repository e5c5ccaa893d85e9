"""Accuracy-aware compression (``--calibration`` + a budget, ``--refit``): oracle-based tests.

scikit-learn's own predictions on the held-out calibration rows are the reference; the written
artifact is reloaded and run with the numpy runtime; the refit is compared with numpy's lstsq
and with held-out log loss on hand-built data.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from click.testing import CliRunner
from sklearn.datasets import load_iris
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.metrics import log_loss, r2_score

import edgesparse
from edgesparse.api import compress_to_budget
from edgesparse.cli import cli
from edgesparse.data import load_dataset
from edgesparse.errors import InputError
from edgesparse.frontend import to_ir
from edgesparse.ir import LinearIR
from edgesparse.loader import load_model
from edgesparse.passes.budget import (
    Budget,
    fit_statistics,
    prune_candidate,
    quantize_as,
    split_calibration,
)
from edgesparse.passes.prune import select
from edgesparse.passes.refit import Penalty, class_index, refit
from edgesparse.runtime.model import Model

MODELS = Path(__file__).resolve().parent.parent / "models"


def run(*args: object):
    return CliRunner().invoke(cli, [str(a) for a in args])


def _pickle(est: object, path: Path) -> Path:
    path.write_bytes(pickle.dumps(est))
    return path


def _heldout(X, y, classes, *, holdout=0.25, seed=0):
    target = None if classes is None else class_index(y, classes)
    return split_calibration(len(y), target, holdout=holdout, seed=seed)


@pytest.fixture(scope="module")
def digits():
    # Through our loader: it reads numpy 2 pickles on numpy 1.x too (the lowest-versions run).
    est = load_model(MODELS / "digits_pipeline.pkl")
    data = load_dataset(MODELS / "digits_pipeline.test.npz")
    return est, data.X, data.y


def test_cli_model_meets_budget_on_heldout_rows(digits, tmp_path):
    est, X, y = digits
    out, rep = tmp_path / "d.esb", tmp_path / "fid.json"
    r = run(
        "compress",
        MODELS / "digits_pipeline.pkl",
        "-o",
        out,
        "--calibration",
        MODELS / "digits_pipeline.test.npz",
        "--max-accuracy-drop",
        "0.01",
        "--refit",
        "--report",
        rep,
    )
    assert r.exit_code == 0, r.output + r.stderr
    assert "held out" in r.output and "held-out accuracy" in r.output
    report = json.loads(rep.read_text())
    split = _heldout(X, y, est.classes_)
    hold = split.heldout
    # Oracle: scikit-learn on the held-out rows vs the artifact that was written.
    model = edgesparse.load(out)
    acc_ref = np.mean(est.predict(X[hold]) == y[hold])
    acc_new = np.mean(model.predict(X[hold]) == y[hold])
    assert acc_ref - acc_new <= 0.01 + 1e-12
    assert report["met"] is True
    assert report["before"]["accuracy"] == pytest.approx(acc_ref)
    assert report["after"]["accuracy"] == pytest.approx(acc_new)
    assert report["calibration"]["heldout_rows"] == hold.size
    assert report["calibration"]["fit_rows"] + hold.size == len(y)
    assert report["chosen"]["nnz"] == model.ir.nnz
    assert report["chosen"]["sparsity"] == pytest.approx(1 - model.ir.nnz / 640)
    assert report["chosen"]["sparsity"] > 0.5
    # Flipped rows are exactly the held-out rows whose label changed, lowest margin first.
    changed = hold[model.predict(X[hold]) != est.predict(X[hold])]
    assert sorted(f["row"] for f in report["flipped"]) == sorted(changed.tolist())
    margins = [f["margin"] for f in report["flipped"]]
    assert margins == sorted(margins)
    p_delta = np.max(np.abs(model.predict_proba(X[hold]) - est.predict_proba(X[hold])))
    assert report["max_abs_proba_delta"] == pytest.approx(p_delta, abs=1e-5)
    # The searched curve: every point has its sparsity and verdict; the chosen one is on it.
    assert len(report["curve"]) > 10
    assert {"sparsity", "accuracy", "agreement", "within_budget", "family"} <= set(
        report["curve"][0]
    )
    assert any(p["within_budget"] is False for p in report["curve"])


def test_sparsity_is_maximal_next_step_breaks_budget(digits):
    est, X, y = digits
    budget = 0.01
    result = compress_to_budget(est, X, y, max_accuracy_drop=budget, refit=False)
    chosen = result.report["chosen"]
    assert result.met and chosen["refit"] is False
    split = _heldout(X, y, est.classes_)
    mean, std = fit_statistics(X[split.fit])
    hold = split.heldout
    acc_ref = np.mean(est.predict(X[hold]) == y[hold])
    original = to_ir(est)

    def accuracy(keep: int) -> float:
        cand = prune_candidate(
            original,
            family=chosen["family"],
            importance=chosen["importance"],
            keep=keep,
            mean=mean,
            std=std,
        )
        ir = quantize_as(cand, chosen["quantization"])
        return float(np.mean(Model(ir).predict(X[hold]) == y[hold]))

    assert acc_ref - accuracy(chosen["keep"]) <= budget + 1e-12
    assert acc_ref - accuracy(chosen["keep"] - 1) > budget
    assert result.report["next_step"]["keep"] == chosen["keep"] - 1


def test_refit_on_fixed_support_improves_heldout_loss():
    # Two nearly identical features share the weight; pruning one loses half the signal,
    # which a refit on the kept feature restores (its weight roughly doubles).
    rng = np.random.default_rng(1)
    n = 2000
    x1 = rng.standard_normal(n)
    x2 = x1 + 0.05 * rng.standard_normal(n)
    x3 = rng.standard_normal(n)
    X = np.column_stack([x1, x2, x3])
    logit = 4.0 * x1 + 4.0 * x2 + 0.5 * x3
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    train, cal, test = slice(0, 1000), slice(1000, 1500), slice(1500, None)
    est = LogisticRegression(C=1.0).fit(X[train], y[train])
    ir = to_ir(est)
    pruned = select(ir, ir.indices != 1, note="drop feature 1")
    assert pruned.indices.tolist() == [0, 2]
    fitted = refit(pruned, X[cal], y[cal], penalty=Penalty(total=1.0)).ir
    assert np.array_equal(fitted.indices, pruned.indices)  # the support is fixed

    def loss(model_ir: LinearIR) -> float:
        return log_loss(y[test], Model(model_ir).predict_proba(X[test]))

    assert loss(fitted) < loss(pruned) - 0.03
    assert loss(fitted) < loss(ir) + 0.02  # as good as the unpruned model, give or take


def test_softmax_refit_lowers_calibration_loss_and_keeps_support():
    X, y = load_iris(return_X_y=True)
    est = LogisticRegression(max_iter=1000).fit(X[::2], y[::2])
    pruned = prune_candidate(to_ir(est), family="global", importance="magnitude", keep=5)
    res = refit(pruned, X[1::2], y[1::2], penalty=Penalty(total=1.0))
    assert res.loss_after < res.loss_before
    assert set(zip(res.ir.row_ids(), res.ir.indices, strict=True)) <= set(
        zip(pruned.row_ids(), pruned.indices, strict=True)
    )


def test_squared_loss_refit_equals_numpy_lstsq_on_the_support():
    rng = np.random.default_rng(2)
    X = rng.standard_normal((200, 8))
    Y = X @ rng.standard_normal((8, 2)) + rng.standard_normal((200, 2)) + [3.0, -1.0]
    est = LinearRegression().fit(X, Y)
    support = [[0, 2, 5], [1, 2, 6, 7]]
    dense = np.zeros((2, 8))
    for i, cols in enumerate(support):
        dense[i, cols] = est.coef_[i, cols] * 0.5  # a deliberately bad start
    from edgesparse.ir import from_dense

    ir = from_dense(dense, bias=np.zeros(2), head="identity", squeeze=False)
    got = refit(ir, X, Y, penalty=Penalty()).ir
    W = got.to_dense()
    for i, cols in enumerate(support):
        A = np.column_stack([X[:, cols], np.ones(len(X))])
        sol = np.linalg.lstsq(A, Y[:, i], rcond=None)[0]
        np.testing.assert_allclose(W[i, cols], sol[:-1], rtol=1e-9, atol=1e-12)
        assert got.bias[i] == pytest.approx(sol[-1], rel=1e-9)
        assert np.count_nonzero(W[i]) == len(cols)


def test_regressor_budget_is_r2(tmp_path):
    est = load_model(MODELS / "diabetes_ridge.pkl")
    data = load_dataset(MODELS / "diabetes_ridge.test.npz")
    out, rep = tmp_path / "r.esb", tmp_path / "r.json"
    cal = MODELS / "diabetes_ridge.test.npz"
    r = run(
        "compress",
        MODELS / "diabetes_ridge.pkl",
        "-o",
        out,
        "--calibration",
        cal,
        "--max-r2-drop",
        "0.02",
        "--report",
        rep,
    )
    assert r.exit_code == 0, r.output + r.stderr
    report = json.loads(rep.read_text())
    assert set(report["before"]) == {"r2"}
    hold = split_calibration(len(data.y), None).heldout
    Xh, yh = data.X[hold], data.y[hold]
    r2_ref = r2_score(yh, est.predict(Xh))
    r2_new = r2_score(yh, edgesparse.load(out).predict(Xh))
    assert r2_ref - r2_new <= 0.02 + 1e-12
    assert report["after"]["r2"] == pytest.approx(r2_new, abs=1e-6)
    # Accuracy budgets make no sense for a regressor: one Error line, nothing written.
    r = run("compress", MODELS / "diabetes_ridge.pkl", "-o", tmp_path / "x.esb",
            "--calibration", cal, "--max-accuracy-drop", "0.01")  # fmt: skip
    assert r.exit_code == 1 and "--max-r2-drop" in r.stderr
    assert not (tmp_path / "x.esb").exists()


@pytest.fixture(scope="module")
def fragile(tmp_path_factory):
    """A model int8 cannot hold, whatever the column scales: classes 0 and 1 differ by 0.001 in
    each weight (both columns of one scale), far below an int8 step of 1/127, so the int8 rows
    point the same way and about half the rows of those classes change label."""
    rng = np.random.default_rng(3)
    X = rng.standard_normal((600, 2))
    est = LogisticRegression().fit(X, (X[:, 0] > 0).astype(int) + (X[:, 1] > 1))
    est.coef_ = np.array([[1.0, 1.0], [1.001, 0.999], [-5.0, -5.0]])
    est.intercept_ = np.zeros(3)
    y = est.predict(X)
    d = tmp_path_factory.mktemp("fragile")
    np.savez(d / "cal.npz", X=X[300:], y=y[300:])
    return _pickle(est, d / "m.pkl"), d / "cal.npz"


def test_unmeetable_budget_exits_1_and_writes_nothing(fragile, tmp_path):
    model, cal = fragile
    out, rep = tmp_path / "m.esb", tmp_path / "m.json"
    r = run("compress", model, "-o", out, "--calibration", cal,
            "--max-accuracy-drop", "0.01", "--report", rep)  # fmt: skip
    assert r.exit_code == 1, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ")
    assert "cannot be met even without pruning" in lines[0] and "--force" in lines[0]
    assert not out.exists() and not rep.exists()
    assert list(tmp_path.iterdir()) == []


def test_force_writes_the_unpruned_model(fragile, tmp_path):
    model, cal = fragile
    out, rep = tmp_path / "m.esb", tmp_path / "m.json"
    r = run("compress", model, "-o", out, "--calibration", cal,
            "--max-accuracy-drop", "0.01", "--force", "--report", rep)  # fmt: skip
    assert r.exit_code == 0, r.stderr
    assert "NOT MET" in r.output
    report = json.loads(rep.read_text())
    assert report["met"] is False and report["forced"] is True
    assert report["chosen"]["sparsity"] == 0.0 or report["chosen"]["family"] == "none"
    # float64 storage keeps the tiny weight: the same budget is met without --force.
    r = run("compress", model, "-o", tmp_path / "f.esb", "--calibration", cal,
            "--max-accuracy-drop", "0.01", "--quantize", "none")  # fmt: skip
    assert r.exit_code == 0, r.stderr


def test_csv_calibration_with_header_and_string_labels(tmp_path):
    X, y = load_iris(return_X_y=True)
    names = np.array(["setosa", "versicolor", "virginica"])
    est = LogisticRegression(max_iter=1000).fit(X[::2], names[y[::2]])
    model = _pickle(est, tmp_path / "iris.pkl")
    rows = ["sl,sw,pl,pw,species"] + [
        ",".join([*(f"{v:.1f}" for v in x), names[t]]) for x, t in zip(X, y, strict=True)
    ]
    (tmp_path / "cal.csv").write_text("\n".join(rows) + "\n")
    out, rep = tmp_path / "m.esb", tmp_path / "m.json"
    r = run("compress", model, "-o", out, "--calibration", tmp_path / "cal.csv",
            "--max-accuracy-drop", "0.02", "--report", rep)  # fmt: skip
    assert r.exit_code == 0, r.output + r.stderr
    report = json.loads(rep.read_text())
    assert report["calibration"]["rows"] == 150
    hold = _heldout(X, names[y], est.classes_).heldout
    acc_ref = np.mean(est.predict(X[hold]) == names[y][hold])
    acc_new = np.mean(edgesparse.load(out).predict(X[hold]) == names[y][hold])
    assert acc_ref - acc_new <= 0.02 + 1e-12
    # A label the model does not know is an input error, not a crash.
    (tmp_path / "bad.csv").write_text("5.1,3.5,1.4,0.2,rose\n" * 10)
    r = run("compress", model, "-o", tmp_path / "b.esb", "--calibration", tmp_path / "bad.csv",
            "--max-accuracy-drop", "0.02")  # fmt: skip
    assert r.exit_code == 1 and "rose" in r.stderr


def test_csr_calibration(tmp_path):
    rng = np.random.default_rng(4)
    X = sp.random(900, 400, density=0.03, format="csr", random_state=5, dtype=np.float64)
    W = rng.standard_normal((3, 400)) * (rng.random((3, 400)) < 0.3)
    y = np.asarray(X @ W.T).argmax(axis=1)
    est = LogisticRegression(C=10, max_iter=2000).fit(X[:500], y[:500])
    model = _pickle(est, tmp_path / "m.pkl")
    Xc, yc = X[500:], y[500:]
    np.savez(tmp_path / "cal.npz", X_data=Xc.data, X_indices=Xc.indices, X_indptr=Xc.indptr,
             X_shape=np.array(Xc.shape), y=yc)  # fmt: skip
    out, rep = tmp_path / "m.esb", tmp_path / "m.json"
    r = run("compress", model, "-o", out, "--calibration", tmp_path / "cal.npz",
            "--max-agreement-loss", "0.02", "--refit", "--report", rep)  # fmt: skip
    assert r.exit_code == 0, r.output + r.stderr
    report = json.loads(rep.read_text())
    hold = _heldout(Xc, yc, est.classes_).heldout
    agree = np.mean(edgesparse.load(out).predict(Xc[hold]) == est.predict(Xc[hold]))
    assert 1 - agree <= 0.02 + 1e-12
    assert report["after"]["agreement"] == pytest.approx(agree)
    assert report["chosen"]["sparsity"] > 0.3


def test_quantize_auto_searches_both_scales(digits):
    est, X, y = digits
    res = compress_to_budget(est, X, y, max_accuracy_drop=0.02, quantize="auto")
    searched = {p["quantization"] for p in res.report["curve"]}
    assert searched == {"int8-per-row", "int8-per-tensor"}
    assert res.ir.quantization == res.report["chosen"]["quantization"]
    best = {
        q: min(
            p["nnz"] for p in res.report["curve"] if p["quantization"] == q and p["within_budget"]
        )
        for q in searched
    }
    assert res.ir.nnz == min(best.values())


def test_option_errors(digits, tmp_path):
    cal = MODELS / "digits_pipeline.test.npz"
    model = MODELS / "digits_pipeline.pkl"
    out = tmp_path / "m.esb"
    cases = [
        (("--max-accuracy-drop", "0.01"), "--calibration"),
        (("--calibration", cal), "needs a limit"),
        (("--calibration", cal, "--max-accuracy-drop", "0.01", "--sparsity", "0.5"), "one or"),
        (("--calibration", cal, "--max-r2-drop", "0.01"), "classifier"),
        (("--quantize", "auto"), "--calibration"),
    ]
    for args, message in cases:
        r = run("compress", model, "-o", out, *args)
        assert r.exit_code == 1, (args, r.output)
        assert message in r.stderr, (args, r.stderr)
        assert not out.exists()
    np.savez(tmp_path / "noy.npz", X=np.zeros((10, 64)))
    r = run("compress", model, "-o", out, "--calibration", tmp_path / "noy.npz",
            "--max-accuracy-drop", "0.01")  # fmt: skip
    assert r.exit_code == 1 and "'y'" in r.stderr


def test_split_is_stratified_reproducible_and_disjoint():
    y = np.repeat([0, 1, 2], [40, 40, 20])
    a = split_calibration(100, y, seed=7)
    b = split_calibration(100, y, seed=7)
    assert np.array_equal(a.heldout, b.heldout)
    assert np.intersect1d(a.fit, a.heldout).size == 0
    assert np.union1d(a.fit, a.heldout).size == 100
    assert np.bincount(y[a.heldout]).tolist() == [10, 10, 5]
    with pytest.raises(InputError):
        split_calibration(3, None)
    with pytest.raises(InputError):
        Budget().validate(to_ir(LinearRegression().fit(np.eye(3), [1.0, 2.0, 3.0])))


def test_digits_training_rows_file_is_the_models_training_split():
    """``digits_pipeline.train.npz`` (the benchmark's independent-check calibration data) holds
    exactly the rows the committed model was fitted on: refitting the same pipeline on them
    reproduces its predictions, and they share no row with ``.test.npz``."""
    from sklearn.base import clone
    from sklearn.datasets import load_digits

    cal = load_dataset(MODELS / "digits_pipeline.train.npz")
    X_cal, y_cal = cal.X, cal.y
    test = load_dataset(MODELS / "digits_pipeline.test.npz")
    X_all, y_all = load_digits(return_X_y=True)
    assert X_cal.shape == (X_all.shape[0] - test.X.shape[0], X_all.shape[1])
    # Together the two files are digits, row for row (as multisets of rows with their label).
    both = np.vstack([np.column_stack([X_cal, y_cal]), np.column_stack([test.X, test.y])])
    full = np.column_stack([X_all, y_all])
    np.testing.assert_array_equal(np.unique(both, axis=0), np.unique(full, axis=0))
    assert len(both) == len(full)
    committed = load_model(MODELS / "digits_pipeline.pkl")
    again = clone(committed).fit(X_cal, y_cal)
    # Labels, not scores, and not every one: lbfgs on another scikit-learn/BLAS build stops at
    # other iterates and may flip a borderline row; a model fit on other rows differs on ~3%.
    agreement = np.mean(again.predict(test.X) == committed.predict(test.X))
    assert agreement >= 0.995, agreement
