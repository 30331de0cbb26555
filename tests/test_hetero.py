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
    s = res.predict(which="scale")
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


def test_predictions_match_the_tobit_when_the_scale_is_constant(affairs):
    a = emstats.tobit(FORMULA, affairs, scale_formula="~ 1").fit(tol=1e-12)
    b = emstats.tobit(FORMULA, affairs).fit(tol=1e-12)
    for which in ("mean", "linear", "prob_uncensored", "conditional_mean"):
        assert_allclose(a.predict(which=which).to_numpy(), b.predict(which=which).to_numpy(),
                        rtol=1e-7, err_msg=which)
    new = affairs.head(7)
    assert_allclose(a.predict(new).to_numpy(), b.predict(new).to_numpy(), rtol=1e-7)


def test_predict_on_new_data_goes_through_both_formulas(affairs, res):
    new = affairs.iloc[[3, 10, 50]]
    assert_allclose(res.predict(new, which="scale").to_numpy(),
                    res.predict(which="scale").to_numpy()[[3, 10, 50]])
    assert_allclose(res.predict(new).to_numpy(), res.predict().to_numpy()[[3, 10, 50]])
    assert list(res.predict(new).index) == list(new.index)


def test_chunks_threads_and_refits_agree(model, res):
    """The E-step statistics add over chunks; threads and a second fit change nothing."""
    from emstats.em.problem import Problem
    from emstats.em.stats import tree_sum

    theta = res.params.to_numpy()
    one = Problem(model, n_threads=1)
    s1, ll1 = one.e_step(theta)
    chunks = model.data.chunks(4, 1)
    parts = [model.chunk_stats(theta, c) for c in chunks]
    s4 = tree_sum(p[0] for p in parts)
    for key in s1:
        assert_allclose(s4[key], s1[key], rtol=1e-12, atol=1e-12 * np.max(np.abs(s1[key])))
    assert_allclose(sum(p[1] for p in parts), ll1, rtol=1e-13)
    again = model.fit(tol=1e-13, n_threads=2)
    assert np.array_equal(again.params.to_numpy(), model.fit(tol=1e-13, n_threads=1)
                          .params.to_numpy())
    assert_allclose(again.params.to_numpy(), theta, rtol=1e-9)
    assert not hasattr(model, "_n_threads")


def test_scale_step_never_decreases_q(model, res):
    """The damped Newton step of gamma increases Q from far-off starts too."""
    theta = model.start_params()
    theta[model.k_exog:] += np.array([2.0, -1.0, 0.05])      # a poor scale start
    fit = model.fit(method="em", start_params=theta, maxiter=400, tol=1e-10)
    assert fit.convergence.n_decreases == 0


def test_incremental_em_is_refused(model):
    with pytest.raises(ValueError, match="current parameters"):
        model.fit(method="incremental")
