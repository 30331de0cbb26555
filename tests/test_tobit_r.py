"""Tobit and interval regression against R (AER::tobit, survival::survreg).

Reference numbers: tests/results/{tobit,intreg}_affairs.json, produced by the R
scripts in tests/results/r_scripts (survreg with rel.tolerance = 1e-12).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import r_names
from numpy.testing import assert_allclose
from results.fixtures import load_fixture

import emstats

FORMULA = "affairs ~ age + yearsmarried + religiousness + occupation + rating"
TOBIT = load_fixture("tobit_affairs")
INTREG = load_fixture("intreg_affairs")


@pytest.fixture(scope="module")
def affairs():
    return emstats.datasets.load("affairs")


def fit_case(case: str, affairs: pd.DataFrame, method=None, **kw):
    df = affairs.copy()
    if case == "left0":
        model = emstats.tobit(FORMULA, df, censor_left=0)
    elif case == "left0_right4":
        model = emstats.tobit(FORMULA, df, censor_left=0, censor_right=4)
    elif case == "weighted":
        df["w"] = TOBIT["weights"]
        model = emstats.tobit(FORMULA, df, censor_left=0, weights="w")
    elif case == "offset":
        model = emstats.tobit(FORMULA, df, censor_left=0, offset=0.1 * df["education"].to_numpy())
    else:  # pragma: no cover
        raise KeyError(case)
    return model.fit(method=method, **kw)


class CheckAgainstR:
    """Compare one fit with one R record (statsmodels' Check* habit)."""

    res: emstats.CensoredResults
    ref: dict

    def test_params(self):
        assert r_names(self.res.params.index) == list(self.ref["coefficients"].index)
        assert_allclose(self.res.params.to_numpy(), self.ref["coefficients"].to_numpy(),
                        rtol=1e-6, atol=1e-9)

    def test_llf(self):
        assert_allclose(self.res.llf, self.ref["loglik"], rtol=1e-9)

    def test_bse(self):
        assert_allclose(self.res.bse.to_numpy(), self.ref["bse"].to_numpy(), rtol=1e-4)

    def test_cov_params(self):
        assert_allclose(self.res.cov_params().to_numpy(), self.ref["vcov"].to_numpy(),
                        rtol=1e-4, atol=1e-8)

    def test_scale(self):
        assert_allclose(self.res.scale, self.ref["scale"], rtol=1e-6)

    def test_pvalues(self):
        assert_allclose(self.res.pvalues.to_numpy(), self.ref["pvalues"].to_numpy(), rtol=1e-3)

    def test_linear_predictor(self):
        lp = self.ref["linear_predictors"]
        assert_allclose(self.res.predict(which="linear").to_numpy(), lp, rtol=1e-6,
                        atol=1e-6 * np.abs(lp).max())

    def test_converged(self):
        conv = self.res.convergence
        assert conv.converged
        assert conv.n_decreases == 0
        assert conv.max_abs_score < 1e-3


class TestLeft0(CheckAgainstR):
    @classmethod
    def setup_class(cls):
        cls.ref = TOBIT["cases"]["left0"]
        cls.res = fit_case("left0", emstats.datasets.load("affairs"))

    def test_counts(self):
        m = self.res.model
        assert (m.n_left, m.n_right, m.n_exact) == (
            self.ref["n_left_censored"], self.ref["n_right_censored"], self.ref["n_uncensored"])

    def test_information_criteria(self):
        k = len(self.ref["coefficients"])
        assert_allclose(self.res.aic, -2 * self.ref["loglik"] + 2 * k, rtol=1e-9)
        assert_allclose(self.res.bic, -2 * self.ref["loglik"] + np.log(601) * k, rtol=1e-9)
        assert self.res.df_resid == self.ref["df_residual"]


class TestLeft0Right4(CheckAgainstR):
    @classmethod
    def setup_class(cls):
        cls.ref = TOBIT["cases"]["left0_right4"]
        cls.res = fit_case("left0_right4", emstats.datasets.load("affairs"))

    def test_counts(self):
        m = self.res.model
        assert (m.n_left, m.n_right, m.n_exact) == (
            self.ref["n_left_censored"], self.ref["n_right_censored"], self.ref["n_uncensored"])


class TestWeighted(CheckAgainstR):
    @classmethod
    def setup_class(cls):
        cls.ref = TOBIT["cases"]["weighted"]
        cls.res = fit_case("weighted", emstats.datasets.load("affairs"))

    def test_weights_are_frequencies(self):
        # a weight-2 row is the same as the row repeated: expand and refit
        df = emstats.datasets.load("affairs")
        rep = df.loc[df.index.repeat(TOBIT["weights"].astype(int))].reset_index(drop=True)
        res = emstats.tobit(FORMULA, rep, censor_left=0).fit()
        assert_allclose(res.params, self.res.params, rtol=1e-8)
        assert_allclose(res.llf, self.res.llf, rtol=1e-10)
        assert_allclose(res.bse, self.res.bse, rtol=1e-7)


class TestOffset(CheckAgainstR):
    @classmethod
    def setup_class(cls):
        cls.ref = TOBIT["cases"]["offset"]
        cls.res = fit_case("offset", emstats.datasets.load("affairs"))

    def test_offset_column_name(self):
        df = emstats.datasets.load("affairs")
        df["off"] = 0.1 * df["education"]
        res = emstats.tobit(FORMULA, df, censor_left=0, offset="off").fit()
        assert_allclose(res.params, self.res.params, rtol=1e-10)


def intreg_bounds(df: pd.DataFrame) -> pd.DataFrame:
    """The interval coding of tests/results/r_scripts/intreg_affairs.R."""
    a = df["affairs"].to_numpy(dtype=float)
    lower = np.where(a == 0, np.nan, np.where(a == 7, 4.0, a))
    upper = np.where(a == 12, np.nan, np.where(a == 7, 10.0, a))
    out = df.copy()
    out["lower"] = lower
    out["upper"] = upper
    return out


class TestIntreg(CheckAgainstR):
    @classmethod
    def setup_class(cls):
        cls.ref = INTREG["cases"]["intreg"]
        df = intreg_bounds(emstats.datasets.load("affairs"))
        assert_allclose(df["lower"].to_numpy(), INTREG["lower"], equal_nan=True)
        assert_allclose(df["upper"].to_numpy(), INTREG["upper"], equal_nan=True)
        cls.res = emstats.intreg(
            "lower + upper ~ age + yearsmarried + religiousness + occupation + rating", df
        ).fit()

    def test_counts(self):
        m = self.res.model
        r = self.ref
        assert (m.n_left, m.n_right, m.n_interval, m.n_exact) == (
            r["n_left_censored"], r["n_right_censored"], r["n_interval_censored"],
            r["n_exact"])

    def test_summary_mentions_interval(self):
        assert "Interval-censored:" in self.res.summary().as_text()

    def test_infinite_bounds_same_as_nan(self):
        df = intreg_bounds(emstats.datasets.load("affairs"))
        df["lower"] = df["lower"].fillna(-np.inf)
        df["upper"] = df["upper"].fillna(np.inf)
        res = emstats.intreg(
            "lower + upper ~ age + yearsmarried + religiousness + occupation + rating", df
        ).fit()
        assert_allclose(res.params, self.res.params, rtol=1e-10)


@pytest.mark.parametrize("method", ["em", "squarem", "newton"])
def test_every_method_reaches_r(method, affairs):
    ref = TOBIT["cases"]["left0"]
    res = fit_case("left0", affairs, method=method, tol=1e-14, maxiter=5000)
    assert_allclose(res.llf, ref["loglik"], rtol=1e-11)
    assert_allclose(res.params.to_numpy(), ref["coefficients"].to_numpy(), rtol=2e-6)
    assert res.convergence.n_decreases == 0


def test_tobit_equals_intreg_coding(affairs):
    """Tobit and intreg share the model: left-censoring coded as bounds gives the same fit."""
    df = affairs.copy()
    df["lo"] = np.where(df["affairs"] == 0, np.nan, df["affairs"])
    df["hi"] = np.where(df["affairs"] == 0, 0.0, df["affairs"])
    a = emstats.intreg("lo + hi ~ age + yearsmarried + religiousness + occupation + rating",
                       df).fit()
    b = emstats.tobit(FORMULA, df, censor_left=0).fit()
    assert_allclose(a.params, b.params, rtol=1e-10)
    assert_allclose(a.bse, b.bse, rtol=1e-8)
