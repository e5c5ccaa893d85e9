"""The tabular input stage (issue 20): ColumnTransformer / SimpleImputer / OneHotEncoder inside
the artifact.

Oracle: scikit-learn itself. The featurizer's rows equal the fitted ``ColumnTransformer``'s
``transform`` (within 1e-6), and the model's labels agree with the pipeline's ``predict``, on
tables the tests generate (an adult-census-like table with missing values, unseen and rare
categories and columns of wildly different scales; scikit-learn's bundled tables with a
synthetic categorical column). No downloads.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from edgesparse.errors import InputError, IRError, UnsupportedModelError
from edgesparse.frontends import to_linear_ir
from edgesparse.ir.tabular import TabularColumn, TabularFeaturizer
from edgesparse.runtime.model import Model
from edgesparse.runtime.tabular import tabular_features

sklearn = pytest.importorskip("sklearn")
from sklearn import datasets  # noqa: E402
from sklearn.compose import ColumnTransformer  # noqa: E402
from sklearn.impute import SimpleImputer  # noqa: E402
from sklearn.linear_model import LogisticRegression, Ridge  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import (  # noqa: E402
    MaxAbsScaler,
    MinMaxScaler,
    OneHotEncoder,
    RobustScaler,
    StandardScaler,
)

#: adult_like's columns, in order (public: benchmarks/bench_raw.py writes them as a CSV header).
ADULT_NAMES = (
    "age",
    "workclass",
    "fnlwgt",
    "education",
    "hours",
    "gain",
    "country",
    "sex",
    "grade",
)
_NAMES = ADULT_NAMES  # the spelling the other tests import


def adult_like(n: int, *, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """An adult-census-like object table: ints, floats from 10^-3 to 10^5, string and int
    categories, NaN and None missing values, a long tail of rare countries (so a test split
    holds categories the fit never saw)."""
    rng = np.random.default_rng(seed)
    X = np.empty((n, len(_NAMES)), dtype=object)
    age = rng.integers(17, 90, n)
    work = rng.choice(["Private", "Self-emp", "Gov", "Never"], n, p=[0.6, 0.2, 0.15, 0.05])
    fnl = rng.lognormal(12, 0.5, n)
    edu = rng.choice(["HS", "Some-college", "Bachelors", "Masters", "Doctorate"], n)
    hours = np.clip(rng.normal(40, 12, n), 1, 99).round()
    gain = np.where(rng.random(n) < 0.1, rng.lognormal(8, 1, n), 0.0)
    country = np.array([f"c{int(k)}" for k in rng.zipf(1.6, n).clip(1, 400)])
    sex = rng.choice(["M", "F"], n)
    grade = rng.integers(1, 6, n) * 1e-3  # a tiny-scale numeric column
    X[:, 0], X[:, 1], X[:, 2], X[:, 3] = age.tolist(), work, fnl, edu
    X[:, 4], X[:, 5], X[:, 6], X[:, 7], X[:, 8] = hours, gain, country, sex, grade
    score = (
        (age - 40) / 12
        + np.log1p(gain) / 4
        + (hours - 40) / 15
        + np.isin(edu, ["Masters", "Doctorate"]) * 1.2
        - (work == "Never") * 2
        + (sex == "M") * 0.4
        + rng.normal(0, 0.7, n)
    )
    y = np.digitize(score, np.quantile(score, [0.4, 0.75]))
    for j, rate in ((1, 0.05), (2, 0.03), (4, 0.04), (6, 0.02)):
        hole = rng.random(n) < rate
        X[hole, j] = np.nan
    X[rng.random(n) < 0.02, 0] = None  # None in a numeric column: missing, as NaN
    return X, y


def adult_transformer(**ohe: object) -> ColumnTransformer:
    cat = make_pipeline(
        SimpleImputer(strategy="constant", fill_value="missing"),
        OneHotEncoder(handle_unknown="ignore", **ohe),
    )
    return ColumnTransformer(
        [
            ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), [0, 2, 4]),
            ("cat", cat, [1, 3, 6]),
            ("sex", OneHotEncoder(drop="if_binary"), [7]),
            ("gain", make_pipeline(SimpleImputer(), RobustScaler()), [5]),
        ],
        remainder="passthrough",  # grade, unscaled
    )


def _ir_and_model(pipe: object) -> tuple[object, Model]:
    ir = to_linear_ir(pipe)
    return ir, Model(ir)


def _assert_rows(feat: TabularFeaturizer, ct: ColumnTransformer, X: object) -> None:
    got = tabular_features(feat, X)
    got = got.toarray() if hasattr(got, "toarray") else got
    want = ct.transform(X)
    want = want.toarray() if hasattr(want, "toarray") else np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)


# -- parity with scikit-learn's transform ---------------------------------------------------
@pytest.mark.parametrize("drop", [None, "first", "if_binary"])
def test_adult_like_rows_equal_transform(drop: str | None) -> None:
    X, y = adult_like(1500, seed=0)
    pipe = make_pipeline(adult_transformer(drop=drop), LogisticRegression(max_iter=300))
    pipe.fit(X[:1000], y[:1000])
    ir, model = _ir_and_model(pipe)
    test = X[1000:]
    _assert_rows(ir.featurizer, pipe[0], test)
    # The test split holds countries the fit never saw: they one-hot to zeros.
    fitted = set(pipe[0].named_transformers_["cat"][-1].categories_[2].tolist())
    assert any(c not in fitted for c in test[:, 6].tolist() if isinstance(c, str))
    assert np.array_equal(model.predict(test), pipe.predict(test))
    np.testing.assert_allclose(model.predict_proba(test), pipe.predict_proba(test), atol=1e-9)


def test_records_as_dicts_lists_structured_and_dataframe() -> None:
    pd = pytest.importorskip("pandas")
    X, y = adult_like(800, seed=1)
    df = pd.DataFrame(X, columns=list(_NAMES))
    ct = ColumnTransformer(
        [
            ("num", make_pipeline(SimpleImputer(), StandardScaler()), ["age", "fnlwgt", "hours"]),
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["workclass", "education", "sex"]),
            ("g", "passthrough", ["grade"]),
        ],
        remainder="drop",
    )
    pipe = make_pipeline(ct, LogisticRegression(max_iter=2000)).fit(df.iloc[:600], y[:600])
    ir, model = _ir_and_model(pipe)
    assert ir.featurizer.names == _NAMES
    test = df.iloc[600:]
    want = pipe.predict(test)
    rows = test.to_dict("records")
    _assert_rows(ir.featurizer, ct, test)
    assert np.array_equal(model.predict(rows), want)
    shuffled = [dict(reversed(list(r.items()))) for r in rows]  # key order does not matter
    assert np.array_equal(model.predict(shuffled), want)
    assert np.array_equal(model.predict(test.to_numpy().tolist()), want)  # by position
    assert np.array_equal(model.predict(test.to_numpy()), want)
    assert np.array_equal(model.predict(test), want)
    dtype = [(n, object) for n in _NAMES]
    structured = np.array([tuple(r) for r in test.to_numpy()], dtype=dtype)
    assert np.array_equal(model.predict(structured), want)


def test_int_categories_nan_category_and_numeric_missing_marker() -> None:
    rng = np.random.default_rng(3)
    n = 600
    X = np.empty((n, 4), dtype=object)
    X[:, 0] = rng.integers(0, 6, n).tolist()  # int categories
    X[:, 1] = rng.choice(["x", "y", "z"], n)
    X[rng.random(n) < 0.1, 1] = np.nan  # NaN as a category of its own (no imputer)
    X[:, 2] = rng.normal(5, 2, n)
    X[rng.random(n) < 0.1, 2] = -1.0  # a numeric missing marker
    X[:, 3] = rng.integers(0, 3, n).astype(float)
    y = (X[:, 0].astype(float) + (X[:, 1] == "x") * 2 + rng.normal(0, 1, n) > 3).astype(int)
    ct = ColumnTransformer(
        [
            ("i", OneHotEncoder(handle_unknown="infrequent_if_exist"), [0, 1]),
            ("m", make_pipeline(SimpleImputer(missing_values=-1.0), MinMaxScaler()), [2]),
            ("f", make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder()), [3]),
        ]
    )
    pipe = make_pipeline(ct, LogisticRegression(max_iter=1000)).fit(X[:400], y[:400])
    ir, model = _ir_and_model(pipe)
    test = X[400:].copy()
    test[:5, 0] = 17  # unseen int category: ignored
    test[5:10, 0] = 2.0  # a float equal to a fitted int category matches it, as in sklearn
    _assert_rows(ir.featurizer, ct, test)
    assert np.array_equal(model.predict(test), pipe.predict(test))


def _bundled(load: object, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A bundled table as an object array with a synthetic string column (quantiles of its
    first feature, some missing) and a synthetic int column of noise categories."""
    Xn, y = load(return_X_y=True)
    rng = np.random.default_rng(seed)
    band = np.digitize(Xn[:, 0], np.quantile(Xn[:, 0], [0.25, 0.5, 0.75]))
    words = np.array(["low", "mid", "high", "top"])[band].astype(object)
    words[rng.random(len(y)) < 0.05] = np.nan
    X = np.empty((len(y), Xn.shape[1] + 2), dtype=object)
    X[:, :-2] = Xn
    X[:, -2], X[:, -1] = words, rng.integers(0, 4, len(y)).tolist()
    return X, y


@pytest.mark.parametrize("load", [datasets.load_wine, datasets.load_breast_cancer])
@pytest.mark.parametrize("scaler", [StandardScaler, MaxAbsScaler, MinMaxScaler, RobustScaler])
def test_bundled_tables_with_a_categorical_column(load: object, scaler: type) -> None:
    X, y = _bundled(load, seed=4)
    k = X.shape[1] - 2
    ct = ColumnTransformer(
        [
            ("num", scaler(), list(range(k))),
            (
                "cat",
                make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder()),
                [k, k + 1],
            ),
        ]
    )
    order = np.random.default_rng(0).permutation(len(y))
    tr, te = order[: len(y) // 2], order[len(y) // 2 :]
    pipe = make_pipeline(ct, LogisticRegression(max_iter=5000)).fit(X[tr], y[tr])
    ir, model = _ir_and_model(pipe)
    _assert_rows(ir.featurizer, ct, X[te])
    assert np.array_equal(model.predict(X[te]), pipe.predict(X[te]))


def test_leading_imputer_and_encoder_steps_without_a_column_transformer() -> None:
    X, y = datasets.load_diabetes(return_X_y=True)
    X = X * 10.0 ** np.random.default_rng(5).uniform(-3, 4, X.shape[1])  # mixed scales
    X[np.random.default_rng(6).random(X.shape) < 0.05] = np.nan
    pipe = make_pipeline(SimpleImputer(strategy="mean"), StandardScaler(), Ridge()).fit(X, y)
    ir, model = _ir_and_model(pipe)
    np.testing.assert_allclose(model.predict(X), pipe.predict(X), rtol=1e-9, atol=1e-6)
    cats = np.random.default_rng(7).choice(["a", "b", "c"], (200, 2)).astype(object)
    yc = (cats[:, 0] == "a").astype(int)
    pipe = make_pipeline(OneHotEncoder(), LogisticRegression()).fit(cats, yc)
    ir, model = _ir_and_model(pipe)
    assert ir.featurizer.n_features == 6
    assert np.array_equal(model.predict(cats), pipe.predict(cats))


def test_wide_one_hot_comes_out_as_csr() -> None:
    rng = np.random.default_rng(8)
    X = np.array([[f"id{k}", float(k % 7)] for k in rng.integers(0, 3000, 4000)], dtype=object)
    y = rng.integers(0, 2, 4000)
    ct = ColumnTransformer(
        [("id", OneHotEncoder(handle_unknown="ignore"), [0])], remainder="passthrough"
    )
    pipe = make_pipeline(ct, LogisticRegression(max_iter=200)).fit(X, y)
    ir, model = _ir_and_model(pipe)
    rows = tabular_features(ir.featurizer, X[:50])
    assert hasattr(rows, "indptr") and rows.shape[1] > 1024
    _assert_rows(ir.featurizer, ct, X[:50])
    assert np.array_equal(model.predict(X[:500]), pipe.predict(X[:500]))


# -- what is refused, at conversion ------------------------------------------------------------
def _refused(ct: object, X: np.ndarray, y: np.ndarray, match: str) -> None:
    pipe = make_pipeline(ct, LogisticRegression()).fit(X, y)
    with pytest.raises(UnsupportedModelError, match=match):
        to_linear_ir(pipe)


def test_unsupported_settings_are_refused_by_name() -> None:
    rng = np.random.default_rng(9)
    X = np.empty((100, 2), dtype=object)
    X[:, 0], X[:, 1] = rng.choice(["a", "b", "c"], 100), rng.normal(size=100)
    X[::10, 1] = np.nan
    y = rng.integers(0, 2, 100)
    _refused(
        ColumnTransformer([("c", OneHotEncoder(min_frequency=5), [0])]),
        X,
        y,
        "infrequent categories",
    )
    _refused(
        ColumnTransformer([("n", SimpleImputer(add_indicator=True), [1])]),
        X,
        y,
        "add_indicator=True is not supported",
    )
    _refused(
        ColumnTransformer([("c", make_pipeline(OneHotEncoder(), MaxAbsScaler()), [0])]),
        X,
        y,
        "after a OneHotEncoder inside a ColumnTransformer",
    )
    _refused(
        ColumnTransformer([("n", make_pipeline(StandardScaler(), SimpleImputer()), [1])]),
        X,
        y,
        "must come first in its transformer",
    )
    Xs = X.copy()
    Xs[::7, 0] = "?"
    _refused(
        ColumnTransformer(
            [
                (
                    "c",
                    make_pipeline(
                        SimpleImputer(missing_values="?", strategy="most_frequent"),
                        OneHotEncoder(),
                    ),
                    [0],
                )
            ]
        ),
        Xs,
        y,
        r"missing_values='\?' is not supported \(only NaN or a number\)",
    )


# -- hostile records ------------------------------------------------------------------------
def _named(pipe: object, names: tuple[str, ...]) -> None:
    """Give a pipeline fitted on an array the column names a DataFrame would have given it
    (pandas is optional here): the records are then read by name, the oracle by position."""
    pipe[0].feature_names_in_ = np.array(names, dtype=object)


def test_records_by_name_without_pandas() -> None:
    X, y = adult_like(800, seed=11)
    ct = ColumnTransformer(
        [
            ("num", make_pipeline(SimpleImputer(), StandardScaler()), [0, 2, 4, 5]),
            ("cat", OneHotEncoder(handle_unknown="ignore"), [1, 3, 6, 7]),
        ],
        remainder="passthrough",
    )
    pipe = make_pipeline(ct, LogisticRegression(max_iter=300)).fit(X[:600], y[:600])
    want = pipe.predict(X[600:])
    _named(pipe, _NAMES)
    model = Model(to_linear_ir(pipe))
    rows = [dict(zip(_NAMES, r, strict=True)) for r in X[600:].tolist()]
    assert np.array_equal(model.predict(rows), want)
    shuffled = [dict(reversed(list(r.items()))) for r in rows]  # key order does not matter
    assert np.array_equal(model.predict(shuffled), want)
    structured = np.array([tuple(r) for r in X[600:].tolist()], dtype=[(n, object) for n in _NAMES])
    assert np.array_equal(model.predict(structured), want)
    assert np.array_equal(model.predict(X[600:].tolist()), want)  # by position


@pytest.fixture(scope="module")
def named_model() -> tuple[Model, dict[str, object]]:
    X, y = adult_like(500, seed=10)
    ct = ColumnTransformer(
        [
            ("num", make_pipeline(SimpleImputer(), StandardScaler()), [0, 4]),
            ("cat", OneHotEncoder(), [3]),
        ]
    )
    pipe = make_pipeline(ct, LogisticRegression(max_iter=1000)).fit(X, y)
    _named(pipe, _NAMES)
    return Model(to_linear_ir(pipe)), dict(zip(_NAMES, X[0].tolist(), strict=True))


def test_hostile_records_get_clear_errors(named_model: tuple[Model, dict[str, object]]) -> None:
    model, rec = named_model
    with pytest.raises(InputError, match="record 0 has 8 cells, but this model reads 9"):
        model.predict([list(rec.values())[:-1]])
    with pytest.raises(InputError, match="unknown column 'salary'"):
        model.predict([{**rec, "salary": 1}])
    with pytest.raises(InputError, match="missing column 'age'"):
        model.predict([{k: v for k, v in rec.items() if k != "age"}])
    with pytest.raises(InputError, match="unknown category 'PhD'"):
        model.predict([{**rec, "education": "PhD"}])
    with pytest.raises(InputError, match="'forty' is not a number"):
        model.predict([{**rec, "age": "forty"}])
    with pytest.raises(InputError, match="one record use predict"):
        model.predict(rec)
    with pytest.raises(InputError, match="0 records"):
        model.predict([])
    with pytest.raises(InputError, match="a 2-D array"):
        model.predict(np.zeros(9))
    with pytest.raises(InputError, match="X has 10 columns"):
        model.predict(np.zeros((2, 10)))
    with pytest.raises(InputError, match="record 0 has 1000000 cells"):
        model.predict([[0] * 1_000_000])


# -- the IR's own checks --------------------------------------------------------------------
def test_ir_validates_its_fields() -> None:
    with pytest.raises(IRError, match="two categories are equal"):
        TabularColumn(source=0, categories=("a", "a"))
    with pytest.raises(IRError, match="two categories are equal"):
        TabularColumn(source=0, categories=(1, 1.0))
    with pytest.raises(IRError, match=r"column\.drop: 2 is not -1"):
        TabularColumn(source=0, categories=("a", "b"), drop=2)
    with pytest.raises(IRError, match="not finite"):
        TabularColumn(source=0, scale=math.inf)
    with pytest.raises(IRError, match="fill value must be a number"):
        TabularColumn(source=0, impute=True, fill="x")
    with pytest.raises(IRError, match="reads input 3, but records have 2 cells"):
        TabularFeaturizer(n_inputs=2, columns=(TabularColumn(source=3),))
    with pytest.raises(IRError, match="2 distinct names"):
        TabularFeaturizer(n_inputs=2, columns=(TabularColumn(source=0),), names=("a", "a"))
    feat = TabularFeaturizer(
        n_inputs=2,
        columns=(TabularColumn(source=1, categories=("a", "b", None), drop=0),),
    )
    assert feat.n_features == 2
    rows = tabular_features(feat, [[0, "b"], [0, None], [0, "a"]])
    np.testing.assert_array_equal(rows, [[1, 0], [0, 1], [0, 0]])


# -- compress, the .esb round trip, the CLI ---------------------------------------------------
@pytest.fixture(scope="module")
def adult_pipe() -> tuple[object, np.ndarray]:
    X, y = adult_like(3000, seed=12)
    pipe = make_pipeline(adult_transformer(), LogisticRegression(max_iter=300))
    return pipe.fit(X[:2000], y[:2000]), X[2000:]


@pytest.mark.parametrize("quantize", ["int8", "float32", "none"])
def test_compressed_tabular_pipeline_predicts_like_scikit_learn(adult_pipe, quantize: str) -> None:
    from edgesparse import compress
    from edgesparse.formats import esb
    from edgesparse.runtime import loads

    pipe, test = adult_pipe
    model = loads(esb.encode(compress(pipe, quantize=quantize)))
    assert isinstance(model.ir.featurizer, TabularFeaturizer)
    agree = float(np.mean(model.predict(test) == pipe.predict(test)))
    assert agree >= (0.995 if quantize == "int8" else 1.0), agree
    if quantize != "int8":
        tol = 1e-9 if quantize == "none" else 1e-4
        np.testing.assert_allclose(
            model.decision_function(test), pipe.decision_function(test), atol=tol, rtol=0
        )


def test_mixed_scale_numeric_columns_keep_the_bar_at_int8() -> None:
    """Numeric columns of 10^-3..10^4, each scaled in its transformer (the stage carries the
    scalers: the weights see standardized columns), beside one-hot columns."""
    from edgesparse import compress
    from edgesparse.formats import esb
    from edgesparse.runtime import loads
    from tests.fidelity_suite import mixed_scale

    Xn, y = datasets.make_classification(
        n_samples=1200, n_features=12, n_informative=8, n_classes=3, random_state=0
    )
    Xn = mixed_scale(Xn, seed=1)
    rng = np.random.default_rng(13)
    X = np.empty((1200, 14), dtype=object)
    X[:, :12] = Xn
    X[:, 12] = np.where(y == 0, rng.choice(["a", "b"], 1200), rng.choice(["b", "c", "d"], 1200))
    X[:, 13] = rng.integers(0, 5, 1200).tolist()
    ct = ColumnTransformer(
        [
            ("cat", OneHotEncoder(handle_unknown="ignore"), [12, 13]),
            ("robust", RobustScaler(), list(range(6))),
            ("std", StandardScaler(), list(range(6, 12))),
        ]
    )
    pipe = make_pipeline(ct, LogisticRegression(max_iter=3000)).fit(X[:600], y[:600])
    for quantize, bar in (("int8", 0.995), ("float32", 1.0)):
        model = loads(esb.encode(compress(pipe, quantize=quantize)))
        _assert_rows(model.ir.featurizer, ct, X[600:])
        agree = float(np.mean(model.predict(X[600:]) == pipe.predict(X[600:])))
        assert agree >= bar, (quantize, agree)


def test_blob_round_trip_is_byte_identical_and_inspect_shows_the_stage(adult_pipe) -> None:
    from edgesparse import compress
    from edgesparse.formats import esb, linear

    pipe, _ = adult_pipe
    ir = compress(pipe)
    blob = esb.encode(ir)
    assert esb.encode(linear.decode(blob)) == blob
    info = linear.verify(blob)
    assert info["featurizer"] == ir.featurizer.describe()
    assert info["featurizer"]["n_features"] == ir.n_features
    assert info["sections"]["tabular"]["encoding"] == "columns"


def test_cli_compress_and_predict_rows_from_a_csv(tmp_path, adult_pipe) -> None:
    import csv
    import pickle

    from click.testing import CliRunner

    from edgesparse.cli import cli

    pipe, test = adult_pipe
    _named(pipe, _NAMES)
    src, out = tmp_path / "adult.pkl", tmp_path / "adult.esb"
    src.write_bytes(pickle.dumps(pipe))
    res = CliRunner().invoke(cli, ["compress", str(src), "-o", str(out), "--quantize", "float32"])
    assert res.exit_code == 0, res.output
    rows = tmp_path / "rows.csv"
    order = list(reversed(_NAMES))  # the header decides the order, not the position
    with rows.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(order)
        for r in test[:200].tolist():
            cells = dict(zip(_NAMES, r, strict=True))
            w.writerow(["" if _is_missing(cells[n]) else cells[n] for n in order])
    res = CliRunner().invoke(cli, ["predict", str(out), str(rows)])
    assert res.exit_code == 0, res.output
    got = [int(v) for v in res.output.split()]
    assert got == pipe.predict(test[:200]).tolist()


def _is_missing(v: object) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def test_hostile_csv_tables_get_clear_errors(tmp_path) -> None:
    import tracemalloc

    from edgesparse.data import read_records

    wide = tmp_path / "wide.csv"
    wide.write_text(",".join(f"c{i}" for i in range(1_000_000)) + "\n" + "1," * 999_999 + "1\n")
    tracemalloc.start()
    with pytest.raises(InputError, match="the header has 1000000 columns, more than the 65536"):
        read_records(wide)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 64 << 20, peak  # the line is counted, never split into a million cells
    cases = {
        "ragged.csv": ("a,b\n1,2\n3\n", "line 3: 1 cells, but the header names 2 columns"),
        "nul.csv": ("a,b\n1,\0\n", "holds NUL bytes"),
        "empty.csv": ("\n\n", "is empty"),
        "header.csv": ("a,b\n", "has a header but no records"),
        "repeat.csv": ("a,a\n1,2\n", "a column name is repeated"),
    }
    for name, (text, message) in cases.items():
        p = tmp_path / name
        p.write_text(text)
        with pytest.raises(InputError, match=message):
            read_records(p)
    bad = tmp_path / "latin1.csv"
    bad.write_bytes(b"a,b\n\xff,1\n")
    with pytest.raises(InputError, match="is not UTF-8 text"):
        read_records(bad)


def test_csv_records_against_a_model_by_name(named_model, tmp_path) -> None:
    from edgesparse.data import read_records

    model, rec = named_model
    p = tmp_path / "r.csv"
    p.write_text("age,education,salary\n40,HS,1\n")
    with pytest.raises(InputError, match="unknown column 'salary'"):
        model.predict(read_records(p))
    names = list(rec)
    cells = ["" if _is_missing(rec[n]) else str(rec[n]) for n in names]
    p.write_text(",".join(names) + "\n" + ",".join(cells) + "\n")
    assert model.predict(read_records(p)).tolist() == model.predict([rec]).tolist()


# -- the .esb 'tabular' section: every length checked before use, exact messages -------------
def _tab_ir():
    from edgesparse.ir import LinearIR

    feat = TabularFeaturizer(
        n_inputs=3,
        columns=(
            TabularColumn(source=0, impute=True, fill=2.5, scale=0.5, offset=-1.0),
            TabularColumn(
                source=2,
                categories=("a", 7, 1.5, None),
                drop=1,
                unknown="ignore",
                impute=True,
                fill="a",
            ),
        ),
        names=("x", "y", "z"),
    )
    return LinearIR(
        indptr=np.array([0, 2]),
        indices=np.array([0, 3]),
        values=np.array([0.5, -2.0]),
        n_features=4,
        bias=np.array([0.25]),
        head="logistic",
        classes=np.array([0, 1]),
        featurizer=feat,
    )


def _tab_section(ir=None) -> tuple[bytes, int, int]:
    from edgesparse.formats import esb, linear

    blob = esb.encode(ir or _tab_ir())
    sec = linear.verify(blob)["sections"]["tabular"]
    return blob, sec["offset"], sec["bytes"]


def _with_section(raw: bytes) -> bytes:
    import struct

    from tests.test_esb_malformed import reseal

    blob, off, _ = _tab_section()
    (n_sec,) = struct.unpack_from("<I", blob, 12)
    entry = 64 + 16 * (n_sec - 1)
    assert blob[entry] == 11  # the tabular section is the last one
    out = bytearray(blob[:off]) + raw
    struct.pack_into("<I", out, entry + 8, len(raw))
    struct.pack_into("<Q", out, 48, len(out))
    return reseal(bytes(out))


def _patch(at: int, raw: bytes) -> bytes:
    blob, off, size = _tab_section()
    sec = blob[off : off + size]
    return _with_section(sec[:at] + raw + sec[at + len(raw) :])


def test_the_tabular_section_layout_is_the_documented_one() -> None:
    import struct

    blob, off, size = _tab_section()
    sec = blob[off : off + size]
    assert struct.unpack_from("<IIIIII", sec) == (3, 2, 4, 6, 71, 0)
    assert sec[24:30] == b"\x01\x01\x01xyz"
    body = sec[30:]
    assert body[0] == 2 and body[1] == 0  # imputed numeric, input 0
    assert math.isnan(struct.unpack_from("<d", body, 2)[0])
    assert struct.unpack_from("<ddd", body, 10) == (2.5, 0.5, -1.0)
    cat = body[34:]
    assert cat[:2] == b"\x07\x02"  # categorical + imputed + ignore, input 2
    assert math.isnan(struct.unpack_from("<d", cat, 2)[0])
    assert cat[10:12] == b"\x03\x01" and cat[12:13] == b"a"  # fill 'a'
    assert cat[13:15] == b"\x04\x02"  # 4 categories, drop 1
    assert (
        cat[15:]
        == b"\x03\x01a\x01" + struct.pack("<q", 7) + b"\x02" + struct.pack("<d", 1.5) + b"\x00"
    )


def _u32(v: int) -> bytes:
    return v.to_bytes(4, "little")


TABULAR_CASES = [
    (
        "short",
        lambda s: s[:10],
        " is 10 bytes, expected 24 (the tabular stage's 24-byte fixed fields)",
    ),
    (
        "reserved",
        lambda s: s[:20] + _u32(1) + s[24:],
        ": reserved field at offset {at20} is 1, expected 0",
    ),
    ("n-inputs", lambda s: _u32(0) + s[4:], ": n_inputs 0 at offset {at0} is not in [1, 1048576]"),
    (
        "n-features",
        lambda s: s[:8] + _u32(5) + s[12:],
        ": n_features 5 at offset {at8} differs from the header's 4",
    ),
    (
        "n-columns",
        lambda s: s[:4] + _u32(36) + s[8:],
        ": 36 column records at offset {at4} cannot take 71 bytes",
    ),
    (
        "names-bytes",
        lambda s: s[:12] + _u32(2) + s[16:],
        ": 3 names cannot take 2 bytes (offset {at12})",
    ),
    (
        "length",
        lambda s: s[:-1],
        " is 100 bytes, expected 101 (24 bytes, 6 of names and 71 of column records)",
    ),
    (
        "name-utf8",
        lambda s: s[:27] + b"\xff" + s[28:],
        ": name 0 at offset {at27} is not valid UTF-8",
    ),
    ("name-repeat", lambda s: s[:28] + b"x" + s[29:], ": a column name is repeated"),
    (
        "flags",
        lambda s: s[:30] + b"\x04" + s[31:],
        ": column record 0 at offset {at30} has flags 0x04",
    ),
    (
        "source",
        lambda s: s[:31] + b"\x03" + s[32:],
        ": column record 0 at offset {at30} reads input 3, not below n_inputs=3",
    ),
    (
        "fill",
        lambda s: s[:40] + b"\x00" * 6 + b"\xf0\x7f" + s[48:],
        ": column record 0's fill at offset {at40} is not finite",
    ),
    (
        "tag",
        lambda s: s[: 64 + 10] + b"\x09" + s[75:],
        ": column record 1's fill at offset {at74} has unknown tag 9",
    ),
    (
        "drop",
        lambda s: s[: 64 + 14] + b"\x05" + s[79:],
        ": column record 1 at offset {at64} drops category 4 of 4",
    ),
    (
        "equal",
        lambda s: s[: 64 + 15] + b"\x00" + s[80:],
        ": column record 1 at offset {at64}: column.categories: two categories are equal",
    ),
    (
        "varint",
        lambda s: s[:31] + b"\x80" + s[32:],
        ": column record 0's input position at offset {at31} is not a minimal varint",
    ),
]


@pytest.mark.parametrize(
    ("edit", "message"), [c[1:] for c in TABULAR_CASES], ids=[c[0] for c in TABULAR_CASES]
)
def test_malformed_tabular_section_exact_message(edit, message: str) -> None:
    from tests.test_esb_malformed import error_of

    blob, off, size = _tab_section()
    where = {f"at{k}": off + k for k in range(size)}
    got = error_of(_with_section(edit(blob[off : off + size])))
    assert got == f"corrupt .esb: section 'tabular' at offset {off}" + message.format(**where)


def test_any_bytes_in_the_tabular_section_give_a_format_error_or_a_model() -> None:
    import random

    from edgesparse.errors import FormatError
    from edgesparse.formats import esb
    from tests.test_esb_malformed import SAFETY_NET, reseal

    rng = random.Random(21)
    blob, off, size = _tab_section()
    for _ in range(1500):
        b = bytearray(blob)
        for _ in range(rng.randint(1, 4)):
            b[off + rng.randrange(size)] = rng.randrange(256)
        try:
            esb.decode(reseal(bytes(b)))
        except FormatError as exc:
            assert "\n" not in str(exc) and SAFETY_NET not in str(exc), str(exc)
    for n in range(0, 200, 7):  # random whole sections of every length
        raw = bytes(rng.randrange(256) for _ in range(n))
        try:
            esb.decode(_with_section(raw))
        except FormatError as exc:
            assert SAFETY_NET not in str(exc), str(exc)


def test_the_c_runtime_verifies_a_blob_with_a_tabular_stage(tmp_path) -> None:
    """The C runtime runs the stage (tests/test_c_tabular.py); a build without it
    (-DESB_NO_TABULAR) refuses it by name."""
    import shutil
    import subprocess

    from edgesparse.export_c import c_runtime_dir
    from edgesparse.formats import esb
    from tests.cbuild import build
    from tests.cdriver import CFLAGS
    from tests.conftest import require_tool

    require_tool(shutil.which("gcc") is not None, what="gcc", install="sudo apt-get install gcc")
    src = c_runtime_dir()
    sources = [str(src / "esb.c"), str(src / "esb_main.c")]
    # the host driver of the C runtime's tests (gcc -O2 -Werror), built once per session
    exe, built = build(["gcc", *CFLAGS, *sources, "-lm"], name="esb")
    assert built.returncode == 0, built.stderr
    ir = _tab_ir()
    tab, plain = tmp_path / "tab.esb", tmp_path / "plain.esb"
    tab.write_bytes(esb.encode(ir))
    plain.write_bytes(esb.encode(ir.replace(featurizer=None)))
    res = subprocess.run([str(exe), "verify", str(tab), str(plain)], capture_output=True, text=True)
    assert res.returncode == 0 and res.stdout.splitlines() == ["OK", "OK"], res.stdout


def test_column_selections_drop_arrays_and_dense_one_hot() -> None:
    """Selections by slice, boolean mask and callable; drop given as an array; dense output;
    handle_unknown='warn' (ignore, with a warning)."""
    import warnings

    X, y = adult_like(900, seed=14)
    mask = [j in (0, 4) for j in range(len(_NAMES))]
    ct = ColumnTransformer(
        [
            ("num", make_pipeline(SimpleImputer(), MinMaxScaler()), mask),
            ("edu", OneHotEncoder(drop=["HS"], sparse_output=False), slice(3, 4)),
            ("sex", OneHotEncoder(handle_unknown="warn"), lambda X: [7]),
            ("wk", make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder()), [1]),
        ]
    )
    pipe = make_pipeline(ct, LogisticRegression(max_iter=500)).fit(X[:600], y[:600])
    ir, model = _ir_and_model(pipe)
    test = X[600:].copy()
    test[:3, 7] = "X"  # unseen: zeros, as scikit-learn's 'warn' does
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _assert_rows(ir.featurizer, ct, test)
        assert np.array_equal(model.predict(test), pipe.predict(test))
