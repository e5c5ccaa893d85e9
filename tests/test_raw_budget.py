"""The accuracy budget of a model with an input stage: ``--calibration`` holds labelled
documents (JSON lines) or records (a CSV, the label last), the search runs on the feature rows
of the model's own stage, and the written model, fed raw documents or records, keeps the
stated drop against the oracle: the scikit-learn pipeline's own ``predict`` on held-out rows.
"""

from __future__ import annotations

import functools
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

pd = pytest.importorskip("pandas", reason="pandas is a dev dependency: pip install -e .[dev]")

from sklearn.compose import ColumnTransformer  # noqa: E402
from sklearn.feature_extraction.text import TfidfVectorizer  # noqa: E402
from sklearn.impute import SimpleImputer  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import OneHotEncoder, StandardScaler  # noqa: E402

import edgesparse  # noqa: E402
from edgesparse import rawcalib  # noqa: E402
from edgesparse.api import compress_to_budget  # noqa: E402
from edgesparse.cli import cli  # noqa: E402
from edgesparse.passes.budget import split_calibration  # noqa: E402
from edgesparse.passes.certify import binomial_lower, binomial_upper  # noqa: E402
from edgesparse.passes.refit import class_index  # noqa: E402
from edgesparse.runtime import Model  # noqa: E402
from tests.test_tabular_featurizer import ADULT_NAMES, adult_like  # noqa: E402
from tests.test_text_featurizer import DOCS, LABELS  # noqa: E402

FAMILY = np.array(["text", "files", "functional", "numbers"])
"""String labels for the docstring corpus (its four module families)."""


@functools.cache
def _text_split() -> tuple[object, list[list[str]], list[np.ndarray]]:
    """A tf-idf + logistic pipeline fitted on a third of the corpus; the other thirds
    (calibration, held out) with their string labels."""
    order = np.random.default_rng(0).permutation(len(DOCS))
    parts = np.array_split(order, 3)
    docs = [[DOCS[i] for i in part] for part in parts]
    labels = [FAMILY[LABELS[part]] for part in parts]
    pipe = make_pipeline(TfidfVectorizer(), LogisticRegression(C=10.0, max_iter=1000))
    pipe.fit(docs[0], labels[0])
    return pipe, docs[1:], labels[1:]


@functools.cache
def _tabular_split() -> tuple[object, list[pd.DataFrame], list[np.ndarray]]:
    """A ColumnTransformer pipeline (string categories, scaled and unscaled numeric columns
    of scales 10^-3 to 10^5) fitted on 1000 records; calibration and held-out records."""
    X, y = adult_like(3000, seed=3)
    df = pd.DataFrame(X, columns=list(ADULT_NAMES))
    for name in ("age", "fnlwgt", "hours", "gain", "grade"):
        df[name] = pd.to_numeric(df[name])
    ct = ColumnTransformer(
        [
            ("num", make_pipeline(SimpleImputer(), StandardScaler()), ["age", "hours"]),
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["workclass", "education", "sex"]),
            ("raw", SimpleImputer(), ["fnlwgt", "gain", "grade"]),
        ]
    )
    pipe = make_pipeline(ct, LogisticRegression(solver="newton-cholesky")).fit(df[:1000], y[:1000])
    return pipe, [df[1000:2000], df[2000:]], [y[1000:2000], y[2000:]]


def _write_jsonl(path: Path, docs: list[str], labels: np.ndarray | None) -> Path:
    with open(path, "w", encoding="utf-8") as fh:
        for i, doc in enumerate(docs):
            row = {"text": doc} if labels is None else {"text": doc, "label": labels[i].item()}
            fh.write(json.dumps(row) + "\n")
    return path


def _compress(*args: str) -> dict:
    r = CliRunner().invoke(cli, ["compress", *args, "--json"])
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def _within(pipe: object, model: object, X: object, y: np.ndarray, budget: float) -> None:
    """The held-out rows do not refute the guarantee "the accuracy drop is at most
    ``budget``": the paired drop's 99% lower bound on them (right -> wrong rows' lower
    Clopper-Pearson bound minus wrong -> right rows' upper one, 0.5% each) is within it. (The
    plain held-out drop of the sparsest certified model sits near the budget by design: it
    exceeds it on some draws without the guarantee being wrong.)"""
    ref_ok, ok = pipe.predict(X) == y, np.asarray(model.predict(X)) == y
    worse, better, n = int(np.sum(ref_ok & ~ok)), int(np.sum(~ref_ok & ok)), len(y)
    low = binomial_lower(events=worse, rows=n, alpha=0.005)
    assert low - binomial_upper(events=better, rows=n, alpha=0.005) <= budget, (worse, better)


def _certify_rows_agree(pipe: object, model: object, X: object, y: np.ndarray, b: dict) -> None:
    """The report's held-out figures are the written model's and scikit-learn's own on the
    certify rows (the split reproduced from its seed and holdout): the certificate is about
    the bytes written, against the oracle."""
    cal = b["calibration"]
    split = split_calibration(
        len(y), class_index(y, np.asarray(pipe.classes_)), holdout=cal["holdout"], seed=cal["seed"]
    )
    rows = split.heldout
    X_hold = X.iloc[rows] if hasattr(X, "iloc") else [X[i] for i in rows]
    assert b["before"]["accuracy"] == pytest.approx(np.mean(pipe.predict(X_hold) == y[rows]))
    after = np.mean(np.asarray(model.predict(X_hold)) == y[rows])
    assert b["after"]["accuracy"] == pytest.approx(after)


def test_text_budget_through_the_cli_keeps_the_stated_drop_on_held_out_documents(
    tmp_path: Path,
) -> None:
    pipe, (cal_docs, test_docs), (cal_y, test_y) = _text_split()
    src = tmp_path / "text.pkl"
    src.write_bytes(pickle.dumps(pipe))
    cal = _write_jsonl(tmp_path / "cal.jsonl", cal_docs, cal_y)
    out, report = tmp_path / "text.esb", tmp_path / "report.json"
    budget = 0.05
    args = [str(src), "-o", str(out), "--calibration", str(cal)]
    summary = _compress(*args, "--max-accuracy-drop", str(budget), "--report", str(report))
    b = summary["budget"]
    assert b["met"] and b["guarantee"]["certified"]
    assert b["guarantee"]["statement"] == (
        "with 95% confidence the accuracy drop on new rows from the same distribution is at "
        "most 5 points"
    )
    assert b["calibration"]["kind"] == "documents"
    assert b["calibration"]["rows"] == len(cal_docs)
    assert summary["sparsity_after"] > 0.0 and b["chosen"]["sparsity"] > 0.0
    assert b["input_stage"]["written_agreement"] == 1.0
    assert b["input_stage"]["sklearn_agreement"] == 1.0
    assert json.loads(report.read_text())["guarantee"] == b["guarantee"]
    written = edgesparse.load(out)
    _certify_rows_agree(pipe, written, cal_docs, cal_y, b)
    _within(pipe, written, test_docs, test_y, budget)
    # The text summary states the same guarantee.
    r = CliRunner().invoke(
        cli, ["compress", *args, "--max-accuracy-drop", str(budget), "-o", str(out)]
    )
    assert r.exit_code == 0, r.output
    assert "guarantee " in r.output and "at most 5 points" in r.output
    assert "input stage" in r.output


def test_tabular_budget_through_the_cli_keeps_the_stated_drop_on_held_out_records(
    tmp_path: Path,
) -> None:
    pipe, (cal_df, test_df), (cal_y, test_y) = _tabular_split()
    src = tmp_path / "tab.pkl"
    src.write_bytes(pickle.dumps(pipe))
    cal = tmp_path / "cal.csv"
    cal_df.assign(income=cal_y).to_csv(cal, index=False)  # numeric labels, last column
    test_csv = tmp_path / "test.csv"
    test_df.to_csv(test_csv, index=False)
    out = tmp_path / "tab.esb"
    budget = 0.03
    summary = _compress(
        str(src), "-o", str(out), "--calibration", str(cal), "--max-accuracy-drop", str(budget)
    )
    b = summary["budget"]
    assert b["met"] and b["calibration"]["kind"] == "records"
    assert b["guarantee"]["statement"].endswith("is at most 3 points")
    assert b["chosen"]["sparsity"] > 0.0
    assert b["input_stage"]["written_agreement"] == 1.0
    assert b["input_stage"]["sklearn_agreement"] == 1.0
    written = edgesparse.load(out)
    _certify_rows_agree(pipe, written, cal_df, cal_y, b)
    _within(pipe, written, test_df, test_y, budget)
    # The device reads a CSV of records as well as a DataFrame: the same labels.
    from edgesparse.data import read_records

    assert np.array_equal(written.predict(read_records(test_csv)), written.predict(test_df))


def test_the_api_takes_raw_documents_and_records_and_gives_the_stage_back() -> None:
    pipe, (cal_docs, test_docs), (cal_y, test_y) = _text_split()
    done = compress_to_budget(pipe, cal_docs, cal_y, max_accuracy_drop=0.05)
    assert done.met and done.ir.featurizer is not None
    assert done.report["chosen"]["sparsity"] > 0.0
    _within(pipe, Model(done.ir), test_docs, test_y, 0.05)

    tab, (cal_df, test_df), (cal_ty, test_ty) = _tabular_split()
    done = compress_to_budget(tab, cal_df, cal_ty, max_accuracy_drop=0.03, quantize="auto")
    assert done.met and done.ir.featurizer is not None
    assert done.report["calibration"]["kind"] == "records"
    _within(tab, Model(done.ir), test_df, test_ty, 0.03)


def test_unlabelled_documents_certify_an_agreement_budget_and_refuse_an_accuracy_one(
    tmp_path: Path,
) -> None:
    pipe, (cal_docs, test_docs), _ = _text_split()
    src = tmp_path / "text.pkl"
    src.write_bytes(pickle.dumps(pipe))
    cal = _write_jsonl(tmp_path / "cal.jsonl", cal_docs, None)
    out = tmp_path / "m.esb"
    args = [str(src), "-o", str(out), "--calibration", str(cal)]
    b = _compress(*args, "--max-agreement-loss", "0.05")["budget"]
    assert b["met"] and not b["calibration"]["labelled"]
    agree = np.mean(edgesparse.load(out).predict(test_docs) == pipe.predict(test_docs))
    assert 1.0 - agree <= 0.05
    out.unlink()
    r = CliRunner().invoke(cli, ["compress", *args, "--max-accuracy-drop", "0.05"])
    assert r.exit_code != 0 and not out.exists()
    assert r.stderr == (
        "Error: the calibration data has no labels: --max-accuracy-drop and --max-r2-drop need "
        'them (a "label" on every JSON line: {"text": "...", "label": ...}); '
        "--max-agreement-loss does not\n"
    )


def test_unlabelled_records_refuse_an_accuracy_budget_naming_the_label_column(
    tmp_path: Path,
) -> None:
    """Records whose header names only the model's columns are unlabelled: the refusal says
    where a tabular model's labels go (the records CSV's last column), not a .npz's y."""
    pipe, (cal_df, _), _ = _tabular_split()
    src = tmp_path / "tab.pkl"
    src.write_bytes(pickle.dumps(pipe))
    cal = tmp_path / "cal.csv"
    cal_df.to_csv(cal, index=False)
    _refused(
        src,
        cal,
        "the calibration data has no labels: --max-accuracy-drop and --max-r2-drop need them "
        "(the records CSV's last column, after the model's columns); --max-agreement-loss "
        "does not",
    )


@pytest.mark.parametrize("stage", ["text", "tabular", None])
def test_a_budget_without_calibration_names_the_form_the_model_reads(
    tmp_path: Path, stage: str | None
) -> None:
    """No --calibration: the error names the file form the model's input stage reads (JSON
    lines of documents, the records CSV with the label last, or a numeric .npz/.csv)."""
    if stage == "text":
        src = _pickled_text(tmp_path)
        want = "--calibration cal.jsonl; " + _TEXT_FORM
    elif stage == "tabular":
        src = tmp_path / "tab.pkl"
        src.write_bytes(pickle.dumps(_tabular_split()[0]))
        want = "--calibration cal.csv; " + _RECORDS_FORM
    else:
        src = tmp_path / "plain.pkl"
        src.write_bytes(pickle.dumps(LogisticRegression().fit(np.eye(3), [0, 1, 2])))
        want = ": --calibration cal.npz (X and y) or cal.csv (label in the last column)"
    out = tmp_path / "out.esb"
    r = CliRunner().invoke(
        cli, ["compress", str(src), "-o", str(out), "--max-accuracy-drop", "0.05"]
    )
    assert r.exit_code != 0 and not out.exists()
    need = "Error: an accuracy budget (or --refit) needs calibration data"
    assert r.stderr == need + ("" if stage is None else ", ") + want + "\n"


def test_refit_certifies_on_the_stage_rows_too(tmp_path: Path) -> None:
    pipe, (cal_docs, test_docs), (cal_y, test_y) = _text_split()
    done = compress_to_budget(pipe, cal_docs, cal_y, max_accuracy_drop=0.05, refit=True)
    assert done.met and done.ir.featurizer is not None
    assert [s["refit"] for s in done.report["sequences"]] == [False, True]
    _within(pipe, Model(done.ir), test_docs, test_y, 0.05)


_TEXT_FORM = rawcalib.TEXT_FORM
_TEXT_CASES = [
    ("empty.jsonl", b"", "{p} holds no documents; " + _TEXT_FORM),
    ("blank.jsonl", b"\n \n", "{p} holds no documents; " + _TEXT_FORM),
    (
        "missing.jsonl",
        b'{"text": "a", "label": "text"}\n{"text": "b"}\n',
        '{p}, line 2: no "label", but line 1 has one; give every line a label (or none, for '
        "--max-agreement-loss alone)",
    ),
    (
        "typo.jsonl",
        b'{"text": "a", "lable": "text"}\n',
        '{p}, line 1: unknown key "lable"; a line holds "text" and "label" only',
    ),
    (
        "plain.jsonl",
        b"just a document\n",
        "{p}, line 1: not valid JSON (Expecting value at column 1); " + _TEXT_FORM,
    ),
    ("list.jsonl", b'["a", "text"]\n', "{p}, line 1: a JSON list, not an object; " + _TEXT_FORM),
    (
        "number_text.jsonl",
        b'{"text": 5, "label": "text"}\n',
        '{p}, line 1: a number as its "text"; the document must be a JSON string',
    ),
    (
        "bytes.jsonl",
        b'{"text": "a", "label": "text"}\n{"text": "\xff", "label": "text"}\n',
        "{p}, line 2: not valid UTF-8 (byte 41); " + _TEXT_FORM,
    ),
    (
        "nul.jsonl",
        b'{"text": "a\x00", "label": "text"}\n',
        f"{{p}}, line 1: a NUL byte; this is not text ({_TEXT_FORM})",
    ),
    (
        "bool.jsonl",
        b'{"text": "a", "label": true}\n',
        '{p}, line 1: "label" is a boolean; give a string or a number',
    ),
    (
        "number.jsonl",
        b'{"text": "a", "label": 1}\n',
        "{p}, line 1: label 1 is a number, but the model's classes are text ('files', "
        "'functional', 'numbers', 'text'); write it as a string, \"1\"",
    ),
    (
        "unknown.jsonl",
        b'{"text": "a", "label": "text"}\n{"text": "b", "label": "spam"}\n',
        "{p}, line 2: label 'spam' is not one of the model's classes ('files', 'functional', "
        "'numbers', 'text'); give the labels the model predicts",
    ),
    (
        "nan.jsonl",
        b'{"text": "a", "label": NaN}\n',
        "{p}, line 1: not valid JSON (NaN is not a number JSON allows); " + _TEXT_FORM,
    ),
    (
        "deep.jsonl",
        b'{"text": "a", "label": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n",
        "{p}, line 1: not valid JSON (nested too deeply); " + _TEXT_FORM,
    ),
    (
        "long.jsonl",
        b'{"text": "' + b"word " * 20 + b'", "label": "text"}\n',
        "{p}, line 1: 129 bytes, more than the 64 one calibration document may hold; shorten "
        "or split the document",
    ),
]


@pytest.mark.parametrize(("name", "content", "expected"), _TEXT_CASES, ids=lambda v: str(v)[:12])
def test_malformed_document_files_get_their_one_error_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, content: bytes, expected: str
) -> None:
    src = _pickled_text(tmp_path)
    if name == "long.jsonl":
        monkeypatch.setattr(rawcalib, "MAX_LINE_BYTES", 64)
    cal = tmp_path / name
    cal.write_bytes(content)
    _refused(src, cal, expected.replace("{p}", str(cal)))


def test_a_document_file_past_the_text_limit_is_refused_before_it_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = _pickled_text(tmp_path)
    cal = tmp_path / "big.jsonl"
    cal.write_bytes(b'{"text": "a", "label": "text"}\n' * 10)
    monkeypatch.setenv("EDGESPARSE_MAX_DATA_BYTES", str(32 * 100))
    _refused(
        src,
        cal,
        f"calibration file {cal} is 310 bytes, more than the limit of 100 bytes; a text table "
        "may be 1/32 of the data-file limit (reading text takes up to 32 bytes of memory per "
        "byte): split it, or raise the limit with EDGESPARSE_MAX_DATA_BYTES=<bytes>",
    )


def test_feature_rows_given_to_a_text_model_are_refused(tmp_path: Path) -> None:
    src = _pickled_text(tmp_path)
    cal = tmp_path / "X.npz"
    np.savez(cal, X=np.zeros((3, 4)), y=np.zeros(3))
    r = _refused(src, cal, None)
    assert r.startswith(f"Error: {cal} is ") and r.endswith("not JSON lines; " + _TEXT_FORM)


_RECORDS_FORM = rawcalib.RECORDS_FORM
_HEADER = ",".join(ADULT_NAMES)
_ROW = "22,Private,131742.9,Some-college,43,0.0,c75,M,0.003"
_TABLE_CASES = [
    ("empty.csv", "", "{p} is empty; expected a header row naming the columns, then records"),
    ("header.csv", _HEADER + ",income\n", "{p} has a header but no records"),
    (
        "unknown.csv",
        f"{_HEADER},income\n{_ROW},1\n{_ROW},7\n",
        "{p}, record 2: label 7 is not one of the model's classes (0, 1, 2); give the labels "
        "the model predicts",
    ),
    (
        "text.csv",
        f"{_HEADER},income\n{_ROW},rich\n",
        "{p}, record 1: label 'rich' is not a number, but the model's classes are numbers "
        "(0, 1, 2)",
    ),
    (
        "empty_label.csv",
        f"{_HEADER},income\n{_ROW},\n",
        "{p}, record 1: the label is empty; the model's classes are numbers (0, 1, 2)",
    ),
    (
        "label_first.csv",
        f"income,{_HEADER}\n1,{_ROW}\n",
        "{p}, header: column 'income' is not one the model reads; " + _RECORDS_FORM,
    ),
    (
        "short.csv",
        f"{_HEADER},income\n{_ROW}\n",
        "{p}, line 2: 9 cells, but the header names 10 columns",
    ),
    (
        "not_number.csv",
        f"{_HEADER},income\n{_ROW.replace('22,', 'old,')},1\n",
        "{p}: input column 0: 'old' is not a number (the model reads a number there)",
    ),
]


@pytest.mark.parametrize(("name", "content", "expected"), _TABLE_CASES, ids=lambda v: str(v)[:12])
def test_malformed_record_files_get_their_one_error_line(
    tmp_path: Path, name: str, content: str, expected: str
) -> None:
    src = tmp_path / "tab.pkl"
    src.write_bytes(pickle.dumps(_tabular_split()[0]))
    cal = tmp_path / name
    cal.write_text(content, encoding="utf-8")
    _refused(src, cal, expected.replace("{p}", str(cal)))


def test_a_record_file_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "tab.pkl"
    src.write_bytes(pickle.dumps(_tabular_split()[0]))
    cal = tmp_path / "latin1.csv"
    cal.write_bytes(f"{_HEADER},income\n".encode() + b"\xe9\n")
    _refused(src, cal, f"{cal} is not UTF-8 text (byte 67); records are read from a CSV")


def _pickled_text(tmp_path: Path) -> Path:
    src = tmp_path / "text.pkl"
    if not src.exists():
        src.write_bytes(pickle.dumps(_text_split()[0]))
    return src


def _refused(src: Path, cal: Path, expected: str | None) -> str:
    """``compress`` with ``cal`` fails with one ``Error:`` line (``expected`` when given) and
    writes nothing; returns the line."""
    out = cal.parent / "out.esb"
    args = ["-o", str(out), "--calibration", str(cal), "--max-accuracy-drop", "0.05"]
    r = CliRunner().invoke(cli, ["compress", str(src), *args])
    assert r.exit_code != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "Traceback" not in r.output
    assert not out.exists()
    if expected is not None:
        assert lines[0] == f"Error: {expected}"
    return lines[0]


def test_check_data_and_onnx_output_go_with_a_raw_budget(tmp_path: Path) -> None:
    # --check-data of a budgeted raw-input model holds records (not the calibration file's
    # labelled ones), and an ONNX artifact is what the input-stage line measures.
    pytest.importorskip("onnxruntime", reason="ONNX output is checked in onnxruntime")
    pipe, (cal_df, test_df), (cal_y, _) = _tabular_split()
    src = tmp_path / "tab.pkl"
    src.write_bytes(pickle.dumps(pipe))
    cal, check = tmp_path / "cal.csv", tmp_path / "check.csv"
    cal_df.assign(income=cal_y).to_csv(cal, index=False)
    test_df.to_csv(check, index=False)
    for out in (tmp_path / "tab.esb", tmp_path / "tab.onnx"):
        summary = _compress(
            str(src), "-o", str(out), "--calibration", str(cal), "--check-data", str(check),
            "--max-accuracy-drop", "0.03",
        )  # fmt: skip
        assert summary["budget"]["met"]
        assert summary["budget"]["input_stage"]["written_agreement"] == 1.0
        written = edgesparse.load(out)
        agree = np.mean(np.asarray(written.predict(test_df)) == pipe.predict(test_df))
        assert summary["check"]["n_rows"] == len(test_df)
        assert summary["check"]["label_agreement"] == pytest.approx(agree)
