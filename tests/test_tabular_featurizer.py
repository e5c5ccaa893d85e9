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

_NAMES = ("age", "workclass", "fnlwgt", "education", "hours", "gain", "country", "sex", "grade")


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
