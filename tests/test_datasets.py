"""Tests for :mod:`emstats.datasets`."""

from __future__ import annotations

import importlib.util
from importlib import resources
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pytest

from emstats import datasets

NAMES = ["affairs", "cbpp", "earthquakes", "faithful", "patent"]

AFFAIRS_COLUMNS = [
    "affairs",
    "gender",
    "age",
    "yearsmarried",
    "children",
    "religiousness",
    "education",
    "occupation",
    "rating",
]


def _fixtures_module() -> ModuleType:
    """Import tests/results/fixtures.py by path (independent of sys.path)."""
    path = Path(__file__).resolve().parent / "results" / "fixtures.py"
    spec = importlib.util.spec_from_file_location("_emstats_test_fixtures", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------------------
# registry
# ---------------------------------------------------------------------------


def test_list_datasets():
    table = datasets.list_datasets()
    assert isinstance(table, pd.DataFrame)
    assert list(table.columns) == ["name", "nobs", "description"]
    assert table["name"].tolist() == NAMES
    assert dict(zip(table["name"], table["nobs"], strict=True)) == {
        "affairs": 601,
        "cbpp": 56,
        "earthquakes": 107,
        "faithful": 272,
        "patent": 70,
    }
    assert all(isinstance(d, str) and d for d in table["description"])


@pytest.mark.parametrize("name", NAMES)
def test_nobs_matches_data(name):
    table = datasets.list_datasets().set_index("name")
    assert len(datasets.load(name)) == table.loc[name, "nobs"]


@pytest.mark.parametrize("name", NAMES)
def test_data_files_are_package_resources(name):
    resource = resources.files("emstats.datasets").joinpath("data", f"{name}.csv")
    assert resource.is_file()


@pytest.mark.parametrize("name", NAMES)
def test_load_returns_fresh_copy(name):
    first = datasets.load(name)
    original = first.copy()
    first.iloc[0, 0] = first.iloc[1, 0]
    first["extra"] = 1
    second = datasets.load(name)
    pd.testing.assert_frame_equal(second, original)
    assert second is not datasets.load(name)


def test_load_case_insensitive():
    pd.testing.assert_frame_equal(datasets.load("Faithful"), datasets.load("faithful"))


@pytest.mark.parametrize("bad", ["nonexistent", "", "affair"])
def test_unknown_name(bad):
    with pytest.raises(ValueError, match="affairs, cbpp, earthquakes, faithful"):
        datasets.load(bad)
    with pytest.raises(ValueError, match="Available datasets"):
        datasets.describe(bad)


def test_non_string_name():
    with pytest.raises(ValueError):
        datasets.load(3)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "needles"),
    [
        ("affairs", ["Fair", "1978", "Journal of Political Economy", "AER", "Kleiber"]),
        ("faithful", ["Härdle", "Azzalini", "Bowman", "minutes"]),
        ("earthquakes", ["Zucchini", "MacDonald", "2009", "ifsm/apollon", "19.364"]),
        ("cbpp", ["Lesnoff", "2004", "Ethiopia", "Preventive", "lme4"]),
    ],
)
def test_describe(name, needles):
    text = datasets.describe(name)
    assert isinstance(text, str)
    for needle in needles:
        assert needle in text
    for column in datasets.load(name).columns:
        assert column in text


@pytest.mark.parametrize(
    ("func", "name"),
    [
        (datasets.load_affairs, "affairs"),
        (datasets.load_faithful, "faithful"),
        (datasets.load_earthquakes, "earthquakes"),
        (datasets.load_cbpp, "cbpp"),
    ],
)
def test_convenience_loaders(func, name):
    pd.testing.assert_frame_equal(func(), datasets.load(name))


# ---------------------------------------------------------------------------
# affairs
# ---------------------------------------------------------------------------


def test_affairs_structure():
    df = datasets.load_affairs()
    assert df.shape == (601, 9)
    assert list(df.columns) == AFFAIRS_COLUMNS
    for col in ["affairs", "age", "yearsmarried", "education"]:
        assert df[col].dtype == np.float64
    for col in ["religiousness", "occupation", "rating"]:
        assert df[col].dtype == np.int64
    for col in ["gender", "children"]:
        assert pd.api.types.is_string_dtype(df[col])
    assert not df.isna().any().any()
    assert isinstance(df.index, pd.RangeIndex)


def test_affairs_values():
    df = datasets.load_affairs()
    counts = df["affairs"].value_counts().sort_index()
    assert counts.to_dict() == {0: 451, 1: 34, 2: 17, 3: 19, 7: 42, 12: 38}
    assert (df["affairs"] == 0).sum() == 451
    assert df["gender"].value_counts().to_dict() == {"female": 315, "male": 286}
    assert df["children"].value_counts().to_dict() == {"yes": 430, "no": 171}
    assert sorted(df["age"].unique()) == [17.5, 22, 27, 32, 37, 42, 47, 52, 57]
    years = [0.125, 0.417, 0.75, 1.5, 4, 7, 10, 15]
    assert sorted(df["yearsmarried"].unique()) == years
    assert sorted(df["education"].unique()) == [9, 12, 14, 16, 17, 18, 20]
    assert set(df["religiousness"]) == {1, 2, 3, 4, 5}
    assert set(df["occupation"]) == set(range(1, 8))
    assert set(df["rating"]) == {1, 2, 3, 4, 5}
    # first row of AER::Affairs (R row name "4")
    first = df.iloc[0].tolist()
    assert first == [0.0, "male", 37.0, 10.0, "no", 3, 18.0, 7, 4]
    np.testing.assert_allclose(df["affairs"].mean(), 1.455906822, rtol=1e-9)
    np.testing.assert_allclose(df["age"].mean(), 32.48752080, rtol=1e-9)


def test_affairs_matches_r_fixtures():
    """The shipped data reproduce R's linear predictors and interval bounds."""
    fixtures = _fixtures_module()
    df = datasets.load_affairs()
    tobit = fixtures.load_fixture("tobit_affairs")
    exog = ["age", "yearsmarried", "religiousness", "occupation", "rating"]
    exog_matrix = np.column_stack([np.ones(len(df)), df[exog].to_numpy(dtype=float)])
    for case_name, offset in [("left0", 0.0), ("offset", 0.1 * df["education"])]:
        case = tobit["cases"][case_name]
        beta = case["coefficients"].drop("Log(scale)").to_numpy()
        linpred = exog_matrix @ beta + np.asarray(offset)
        np.testing.assert_allclose(linpred, case["linear_predictors"], rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(tobit["weights"], np.arange(1, 602) % 3 + 1)

    intreg = fixtures.load_fixture("intreg_affairs")
    y = df["affairs"].to_numpy()
    lower = np.where(y == 0, np.nan, np.where(y == 7, 4.0, y))
    upper = np.where(y == 12, np.nan, np.where(y == 7, 10.0, y))
    np.testing.assert_array_equal(intreg["lower"], lower)
    np.testing.assert_array_equal(intreg["upper"], upper)


# ---------------------------------------------------------------------------
# faithful
# ---------------------------------------------------------------------------


def test_faithful():
    df = datasets.load_faithful()
    assert df.shape == (272, 2)
    assert list(df.columns) == ["eruptions", "waiting"]
    assert (df.dtypes == np.float64).all()
    np.testing.assert_allclose(df["eruptions"].mean(), 3.487783, atol=5e-7)
    np.testing.assert_allclose(df["waiting"].mean(), 70.897059, atol=5e-7)
    assert df.iloc[0].tolist() == [3.6, 79.0]
    assert df.iloc[-1].tolist() == [4.467, 74.0]
    assert df["eruptions"].min() == 1.6
    assert df["eruptions"].max() == 5.1
    assert df["waiting"].min() == 43
    assert df["waiting"].max() == 96


# ---------------------------------------------------------------------------
# earthquakes
# ---------------------------------------------------------------------------


def test_earthquakes():
    df = datasets.load_earthquakes()
    assert df.shape == (107, 2)
    assert list(df.columns) == ["year", "count"]
    assert (df.dtypes == np.int64).all()
    assert df["year"].tolist() == list(range(1900, 2007))
    counts = df["count"]
    # Zucchini & MacDonald (2009), Section 1.2: mean 19.364, variance 51.573
    assert round(counts.mean(), 3) == 19.364
    assert round(counts.var(ddof=1), 3) == 51.573
    assert counts.sum() == 2072
    assert counts.iloc[:10].tolist() == [13, 14, 8, 10, 16, 26, 32, 27, 18, 32]
    assert counts.iloc[-5:].tolist() == [13, 15, 16, 11, 11]
    assert counts.max() == 41
    assert df.loc[counts.idxmax(), "year"] == 1943
    assert counts.min() == 6
    assert df.loc[counts.idxmin(), "year"] == 1986
