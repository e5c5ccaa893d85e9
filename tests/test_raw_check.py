"""``compress --check-data`` for models with an input stage (issue 20): the check rows are what
the model reads on the device, documents or records, and the oracle is the scikit-learn
pipeline's own ``predict`` on them. Also: the safe default measures int8 on the feature rows the
stage makes (a tabular stage followed by a scaler used to crash it).
"""

from __future__ import annotations

import json
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

pd = pytest.importorskip("pandas", reason="pandas is a dev dependency: pip install -e .[dev]")

from sklearn.compose import ColumnTransformer  # noqa: E402
from sklearn.feature_extraction.text import HashingVectorizer, TfidfVectorizer  # noqa: E402
from sklearn.impute import SimpleImputer  # noqa: E402
from sklearn.linear_model import RidgeClassifier, SGDClassifier  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import OneHotEncoder, StandardScaler  # noqa: E402

import edgesparse  # noqa: E402
from edgesparse.api import compress_quantized  # noqa: E402
from edgesparse.cli import cli  # noqa: E402
from edgesparse.data import read_documents, read_records  # noqa: E402
from tests.test_tabular_featurizer import _NAMES, adult_like  # noqa: E402
from tests.test_text_featurizer import DOCS, LABELS  # noqa: E402


def _frame(X: np.ndarray) -> pd.DataFrame:
    """The object table as a DataFrame, None as NaN (what a CSV round trip gives)."""
    df = pd.DataFrame(X, columns=list(_NAMES))
    for name in ("age", "fnlwgt", "hours", "gain", "grade"):
        df[name] = pd.to_numeric(df[name])
    return df


def _adult_pipeline(*, scaled_after: bool) -> tuple[object, pd.DataFrame]:
    """A DataFrame-fitted tabular pipeline (columns by name, passthrough numerics of very
    different scales), and its held-out rows."""
    X, y = adult_like(3000, seed=7)
    df = _frame(X)
    ct = ColumnTransformer(
        [
            ("num", SimpleImputer(), ["age", "hours", "fnlwgt"]),
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["workclass", "education", "sex"]),
            ("raw", "passthrough", ["gain", "grade"]),
        ],
    )
    steps = [ct, StandardScaler()] if scaled_after else [ct]
    pipe = make_pipeline(*steps, RidgeClassifier()).fit(df[:2000], y[:2000])
    return pipe, df[2000:]


def _compress(tmp_path: Path, pipe: object, *args: str) -> dict:
    src = tmp_path / "pipe.pkl"
    src.write_bytes(pickle.dumps(pipe))
    r = CliRunner().invoke(
        cli, ["compress", str(src), "-o", str(tmp_path / "m.esb"), "--json", *args]
    )
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def test_a_scaler_after_the_tabular_stage_compresses_and_keeps_the_labels() -> None:
    # The safe default measured the probe rows (feature space) through the input stage,
    # which read them as records: "X has 6 columns, but this model reads 9".
    pipe, held_out = _adult_pipeline(scaled_after=True)
    done = compress_quantized(pipe)
    assert done.fidelity is not None and done.fidelity.basis == "probe"
    assert done.ir.featurizer is not None  # the stage is given back
    got = edgesparse.runtime.Model(done.ir).predict(held_out)
    assert np.mean(got == pipe.predict(held_out)) >= 0.995


def test_check_data_of_records_is_checked_against_the_pipeline(tmp_path: Path) -> None:
    pipe, held_out = _adult_pipeline(scaled_after=False)
    rows = tmp_path / "rows.csv"
    held_out.to_csv(rows, index=False)
    report = _compress(tmp_path, pipe, "--check-data", str(rows))
    check = report["check"]
    assert check["n_rows"] == len(held_out) and check["reference"] is None
    # The oracle, computed here: the blob on the CSV's records against scikit-learn on the
    # DataFrame of the same file.
    model = edgesparse.load(tmp_path / "m.esb")
    got = model.predict(read_records(rows))
    want = pipe.predict(pd.read_csv(rows))
    assert check["label_agreement"] == pytest.approx(np.mean(got == want))
    assert check["label_agreement"] >= 0.995
    assert report["estimate"]["basis"] == "data" and report["estimate"]["rows"] == len(held_out)
    assert report["input_kind"] == "records"


def test_check_data_decides_the_precision_on_mixed_scale_passthrough_columns(tmp_path):
    # Unscaled passthrough columns from 10^-3 to 10^5: the data-free int8 cannot see how
    # large each column's values are; the user's rows show it, and the default must then meet
    # the bar on them (raising rows to int16 or writing float32 where int8 cannot).
    pipe, held_out = _adult_pipeline(scaled_after=False)
    rows = tmp_path / "rows.csv"
    held_out.to_csv(rows, index=False)
    report = _compress(tmp_path, pipe, "--check-data", str(rows))
    (tmp_path / "plain").mkdir()
    without = _compress(tmp_path / "plain", pipe)
    assert without["estimate"] is None  # no statistics, no rows: nothing measured
    assert report["estimate"]["value"] >= 0.995
    assert report["check"]["label_agreement"] == pytest.approx(report["estimate"]["value"])


def test_the_summary_of_a_records_model_asks_for_rows_not_a_scaler(tmp_path: Path) -> None:
    """Without rows, the summary says no estimate was made for raw records and how to get
    one; it does not claim the model lacks a scaler (its stage has them)."""
    pipe, _ = _adult_pipeline(scaled_after=False)
    src = tmp_path / "pipe.pkl"
    src.write_bytes(pickle.dumps(pipe))
    r = CliRunner().invoke(cli, ["compress", str(src), "-o", str(tmp_path / "m.esb")])
    assert r.exit_code == 0, r.output
    line = next(ln for ln in r.stdout.splitlines() if ln.startswith("estimated fidelity"))
    assert "no estimate is made from raw records" in line and "--check-data rows.csv" in line
    assert "no scaler" not in line


def test_check_data_without_pandas_falls_back_to_the_float_model(tmp_path, monkeypatch):
    pipe, held_out = _adult_pipeline(scaled_after=False)
    rows = tmp_path / "rows.csv"
    held_out.to_csv(rows, index=False)
    monkeypatch.setitem(sys.modules, "pandas", None)  # `import pandas` fails
    report = _compress(tmp_path, pipe, "--check-data", str(rows))
    assert "pandas" in report["check"]["reference"]
    model = edgesparse.load(tmp_path / "m.esb")
    monkeypatch.delitem(sys.modules, "pandas")
    want = pipe.predict(pd.read_csv(rows))
    got = model.predict(read_records(rows))
    # The float64 model, whose stage equals scikit-learn's transform, gives the same labels.
    assert report["check"]["label_agreement"] == pytest.approx(np.mean(got == want), abs=0.01)


@pytest.mark.parametrize(
    "vectorizer",
    [TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True), HashingVectorizer(n_features=2**16)],
    ids=["tfidf", "hashing"],
)
def test_check_data_of_documents_is_checked_against_the_pipeline(tmp_path, vectorizer):
    docs = [" ".join(d.split()) for d in DOCS]  # one line each
    cut = len(docs) * 2 // 3
    pipe = make_pipeline(vectorizer, SGDClassifier(random_state=0)).fit(docs[:cut], LABELS[:cut])
    text = tmp_path / "docs.txt"
    text.write_text("\n".join(docs[cut:]) + "\n", encoding="utf-8")
    report = _compress(tmp_path, pipe, "--check-data", str(text))
    check = report["check"]
    assert check["n_rows"] == len(docs) - cut
    model = edgesparse.load(tmp_path / "m.esb")
    got = model.predict(read_documents(text))
    assert check["label_agreement"] == pytest.approx(np.mean(got == pipe.predict(docs[cut:])))
    assert check["label_agreement"] >= 0.995
    assert report["input_kind"] == "documents"


def _text_pipe() -> object:
    docs = [" ".join(d.split()) for d in DOCS[:300]]
    return make_pipeline(TfidfVectorizer(), SGDClassifier(random_state=0)).fit(docs, LABELS[:300])


def test_raw_check_files_that_do_not_fit_get_one_error_line(tmp_path: Path) -> None:
    src = tmp_path / "text.pkl"
    src.write_bytes(pickle.dumps(_text_pipe()))
    table = tmp_path / "X.npz"
    np.savez(table, X=np.zeros((3, 4)))
    bad_rows = tmp_path / "rows.csv"
    bad_rows.write_text("age,colour\n1,red\n", encoding="utf-8")
    tab, _ = _adult_pipeline(scaled_after=False)
    tab_src = tmp_path / "tab.pkl"
    tab_src.write_bytes(pickle.dumps(tab))
    out = str(tmp_path / "m.esb")
    cases = [
        ([str(src), "--check-data", str(table)], "not text"),
        # Feature rows are not a text model's calibration: labelled documents are.
        ([str(src), "--calibration", str(table), "--max-agreement-loss", "0.01"], "JSON lines"),
        ([str(tab_src), "--check-data", str(bad_rows)], "colour"),
    ]
    for args, needle in cases:
        r = CliRunner().invoke(cli, ["compress", *args, "-o", out])
        assert r.exit_code != 0
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: ") and needle in lines[0], lines
        assert "Traceback" not in r.output
        assert not Path(out).exists()
