"""Heteroskedastic Tobit by ECM (Meng & Rubin 1993): monotone, exact, and the usual witnesses."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy import optimize, stats
from statsmodels.tools.numdiff import approx_hess3

import emstats
from emstats import DataError

FORMULA = "affairs ~ age + yearsmarried + religiousness + occupation + rating"


@pytest.fixture(scope="module")
def affairs():
    return emstats.datasets.load("affairs")


@pytest.fixture(scope="module")
def model(affairs):
    return emstats.tobit(FORMULA, affairs, scale_formula="~ gender + age")


@pytest.fixture(scope="module")
def res(model):
    return model.fit(tol=1e-13)


def test_ecm_is_monotone_and_reaches_the_mle(model, res):
    ecm = model.fit(method="em", tol=1e-13, maxiter=5000)
    ll = ecm.convergence.loglik
    assert ecm.convergence.n_decreases == 0
    assert np.all(np.diff(ll) >= -1e-10 * abs(ll[-1]))
    assert_allclose(ecm.llf, res.llf, rtol=1e-10)


def test_against_direct_optimisation(affairs, res):
    """The observed likelihood written out with scipy.stats and maximised by BFGS."""
    y = affairs["affairs"].to_numpy(float)
    X = res.model.base.X
    Z = res.model.Z
    p = X.shape[1]

    def negll(t):
        mu, s = X @ t[:p], np.exp(Z @ t[p:])
        return -np.where(y <= 0, stats.norm.logcdf(-mu / s),
                         stats.norm.logpdf((y - mu) / s) - np.log(s)).sum()

    direct = optimize.minimize(negll, res.model.start_params(), method="BFGS",
                               options={"gtol": 1e-8, "maxiter": 5000})
    assert_allclose(res.llf, -direct.fun, rtol=1e-9)
    assert_allclose(res.params.to_numpy(), direct.x, rtol=1e-4, atol=1e-5)


def test_louis_equals_numerical_hessian(model, res):
    hess = approx_hess3(res.params.to_numpy(), model.loglike_inference)
    num = np.linalg.inv(-hess)
    lou = res.cov_params().to_numpy()
    assert_allclose(np.sqrt(np.diag(lou)), np.sqrt(np.diag(num)), rtol=1e-4)
    # every covariance on the scale of its standard errors (the correlation scale)
    sd = np.sqrt(np.diag(num))
    assert np.max(np.abs(lou - num) / np.outer(sd, sd)) < 1e-4


def test_constant_scale_is_the_tobit(affairs):
    a = emstats.tobit(FORMULA, affairs, scale_formula="~ 1").fit(tol=1e-12)
    b = emstats.tobit(FORMULA, affairs).fit(tol=1e-12)
    assert_allclose(a.params.to_numpy(), b.params.to_numpy(), rtol=1e-9)
    assert_allclose(a.bse.to_numpy(), b.bse.to_numpy(), rtol=1e-7)
    assert list(a.params.index)[-1] == "scale: Intercept"


def test_summary_and_predict(res):
    txt = res.summary().as_text()
    assert "scale: gender[T.male]" in txt and "Left-censored:" in txt
    s = res.predict("scale")
    gamma = res.params.filter(like="scale:").to_numpy()
    assert_allclose(s.to_numpy(), np.exp(res.model.Z @ gamma))


def test_missing_rows_dropped_together(affairs):
    df = affairs.copy()
    df.loc[[1, 2], "education"] = np.nan
    m = emstats.tobit(FORMULA, df, scale_formula="~ education")
    assert m.base.X.shape[0] == 599 and m.Z.shape[0] == 599 and m.n_dropped == 2


def test_bad_scale_formula(affairs):
    with pytest.raises(DataError, match="names column 'nope'"):
        emstats.tobit(FORMULA, affairs, scale_formula="~ nope")
    with pytest.raises(DataError, match="one-sided formula"):
        emstats.tobit(FORMULA, affairs, scale_formula="education")
