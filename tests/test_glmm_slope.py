"""emstats.glmm(..., slope="x"): a correlated random intercept and slope by EM with a
tensor-product adaptive Gauss-Hermite quadrature (issue 18, item 1).

Witnesses (tests/results/glmm_slope.json from tests/results/r_scripts/glmm_slope.R):
an independent R implementation of the same 2-D adaptive quadrature log-likelihood
(statmod's normal rule, 20 x 20 nodes) maximised by optim, with numDeriv's Hessian for
the standard errors; lme4's glmer(y ~ x + (1 + x | g), binomial) -- Laplace only
(glmer's nAGQ > 1 is for one scalar random effect), compared through n_agq = 1;
numerical derivatives of our own log-likelihood for the score and Louis' information.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose
from results.fixtures import RESULTS_DIR, load_fixture
from statsmodels.tools.numdiff import approx_fprime, approx_hess3

import emstats
from emstats.exceptions import DataError
from emstats.models.glmm import RandomSlopeGLMM, SlopeGLMMResults

FX = load_fixture("glmm_slope")
DIRECT = FX["direct"]
LAP = FX["laplace"]


@pytest.fixture(scope="module")
def data():
    return pd.read_csv(RESULTS_DIR / "glmm_slope.csv")


@pytest.fixture(scope="module")
def model(data):
    return emstats.glmm("y ~ x", data, groups="g", slope="x", n_agq=FX["K"])


@pytest.fixture(scope="module")
def fitted(model):
    return model.fit()


def _lap_theta():
    a, c, d = LAP["theta"]
    return np.r_[LAP["fixef"], np.log(a), c, np.log(d)]


def test_model_and_data(model):
    assert isinstance(model, RandomSlopeGLMM)
    assert model.nobs == FX["nobs"] and model.n_groups == FX["n_groups"]
    assert model.param_names == ["Intercept", "x", "Log(g L11)", "g L21", "Log(g L22)"]


def test_loglike_is_the_independent_quadrature(model):
    """The same 2-D AGQ criterion, written independently in R: at its maximum and at two
    other points."""
    assert_allclose(model.loglike(DIRECT["par"]), DIRECT["loglik"], rtol=1e-11)
    for pt in DIRECT["points"]:
        assert_allclose(model.loglike(pt["par"]), pt["loglik"], rtol=1e-11)


def test_laplace_is_glmers(data):
    """n_agq = 1 is lme4's Laplace criterion for (1 + x | g) (glmer's own fit)."""
    m1 = emstats.glmm("y ~ x", data, groups="g", slope="x", n_agq=1)
    assert_allclose(m1.loglike(_lap_theta()), LAP["loglik"], rtol=1e-8)


def test_fit_reproduces_the_direct_maximum(fitted):
    assert isinstance(fitted, SlopeGLMMResults) and fitted.convergence.converged
    assert abs(fitted.llf - DIRECT["loglik"]) < 1e-6
    assert_allclose(fitted.params.to_numpy(), DIRECT["par"], rtol=1e-4, atol=1e-5)
    # numDeriv's Hessian of the R function vs Louis' identity from our nodes
    assert_allclose(fitted.bse.to_numpy(), DIRECT["bse"], rtol=1e-3)


def test_glmer_laplace_is_close_but_not_equal(fitted):
    """The Laplace fit is not the quadrature MLE: the SDs and fixed effects differ by a
    fraction of a standard error (loose check of the same model)."""
    beta_se = fitted.bse.to_numpy()[:2]
    assert np.all(np.abs(fitted.fe_params.to_numpy() - LAP["fixef"]) < 0.2 * beta_se)
    assert_allclose(fitted.group_sd.to_numpy(), LAP["sd"], rtol=0.1)
    assert abs(fitted.group_corr - LAP["corr"]) < 0.1


def test_louis_is_the_numerical_hessian(model, fitted):
    theta = fitted.params.to_numpy()
    cov_num = np.linalg.inv(-approx_hess3(theta, model.loglike))
    sd = np.sqrt(np.diag(cov_num))
    assert np.max(np.abs(fitted.cov_params().to_numpy() - cov_num) / np.outer(sd, sd)) < 1e-4


def test_score_is_the_numerical_gradient(model):
    theta = np.asarray(DIRECT["points"][0]["par"])
    assert_allclose(model.score(theta), approx_fprime(theta, model.loglike, centered=True),
                    rtol=1e-5, atol=1e-5)


def test_quadrature_converges_in_nodes(data, fitted):
    theta = fitted.params.to_numpy()
    # measured: 10 nodes 1.3e-5, 20 nodes 5.9e-7, 30 nodes 5e-9 from the 50-node value
    lls = [emstats.glmm("y ~ x", data, groups="g", slope="x", n_agq=k).loglike(theta)
           for k in (10, 20, 30, 50)]
    err = np.abs(np.array(lls[:3]) - lls[3])
    assert err[0] < 1e-4 and err[1] < 5e-6 and err[2] < 1e-7
    assert err[0] > err[1] > err[2]


def test_em_reaches_the_same_maximum(model, fitted):
    res = model.fit(method="squarem", maxiter=2000, tol=1e-12)
    assert abs(res.llf - fitted.llf) < 1e-6


def test_results_api(fitted, data):
    cov = fitted.group_cov
    assert cov.shape == (2, 2) and np.allclose(cov, cov.T)
    assert_allclose(fitted.group_sd.to_numpy(), np.sqrt(np.diag(cov)), rtol=1e-12)
    assert np.all(fitted.group_sd_se > 0)
    re = fitted.random_effects()
    assert list(re.columns) == ["(Intercept)", "x"] and len(re) == FX["n_groups"]
    lin = fitted.predict(which="linear")
    beta = fitted.fe_params.to_numpy()
    b = re.loc[data["g"]].to_numpy()
    assert_allclose(lin, beta[0] + beta[1] * data["x"] + b[:, 0] + b[:, 1] * data["x"],
                    rtol=1e-10)
    text = str(fitted.summary())
    assert "Random-Intercept-and-Slope" in text and "20 x 20 nodes" in text
    with pytest.raises(NotImplementedError):
        fitted.predict(data)


def test_poisson_and_probit_slopes_fit(data):
    """The other families in the 2-D kernel: Louis = numerical Hessian."""
    rng = np.random.default_rng(0)
    d = data.assign(c=rng.poisson(np.exp(0.2 + 0.3 * data["x"])))
    for formula, fam, link in (("c ~ x", "poisson", None), ("y ~ x", "binomial", "probit")):
        m = emstats.glmm(formula, d, groups="g", slope="x", family=fam, link=link, n_agq=12)
        res = m.fit()
        assert res.convergence.converged
        theta = res.params.to_numpy()
        if res.group_sd.min() < 1e-3:          # a boundary fit: no Hessian check there
            continue
        cov_num = np.linalg.inv(-approx_hess3(theta, m.loglike))
        assert_allclose(np.sqrt(np.diag(cov_num)), res.bse.to_numpy(), rtol=1e-3)


def test_bad_slope_inputs(data):
    with pytest.raises(DataError, match="slope: 'nope' is not a column"):
        emstats.glmm("y ~ x", data, groups="g", slope="nope")
    with pytest.raises(DataError, match="constant within every group"):
        emstats.glmm("y ~ x", data.assign(k=data["g"] * 1.0), groups="g", slope="k")
    m = emstats.glmm("y ~ x", data, groups="g", slope="x")
    assert not hasattr(m, "sample_stats")
    with pytest.raises(ValueError, match="not applicable|no simulated E-step|mcem"):
        m.fit(method="mcem")
