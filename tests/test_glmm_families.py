"""emstats.glmm's families and links (issue 18, item 1): binomial probit and Poisson
log with an offset, by the same adaptive-quadrature EM as the logit.

Witnesses: lme4's ``glmer(..., nAGQ = 25)`` and ``nAGQ = 1`` on lme4's own data
(fixture tests/results/glmm_families.json from
tests/results/r_scripts/glmm_families.R: cbpp with the probit link, cbpp as Poisson
counts with offset log(size), grouseticks' TICKS ~ YEAR + cHEIGHT + (1 | BROOD)),
lme4's deviance function at fixed points, and numerical derivatives of our own
quadrature log-likelihood for the score and Louis' information.
"""

from __future__ import annotations

from importlib import resources

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose
from results.fixtures import RESULTS_DIR, load_fixture
from statsmodels.tools.numdiff import approx_fprime, approx_hess3

import emstats
from emstats import datasets
from emstats.exceptions import DataError
from emstats.models.glmm import GLMMResults, RandomInterceptGLMM, RandomInterceptLogit

FX = load_fixture("glmm_families")
CASES = ["cbpp_probit", "cbpp_poisson", "grouse_poisson"]


def _cbpp() -> pd.DataFrame:
    if "cbpp" in datasets.list_datasets()["name"].tolist():
        return datasets.load("cbpp")
    path = resources.files("emstats.datasets").joinpath("data", "cbpp.csv")
    with path.open("r", encoding="utf-8") as fh:
        return pd.read_csv(fh, dtype={"herd": "category", "period": "category"})


def _grouse() -> pd.DataFrame:
    d = pd.read_csv(RESULTS_DIR / "grouseticks.csv")
    return d


def _build(case: str, **kw) -> RandomInterceptGLMM:
    if case == "cbpp_probit":
        return emstats.glmm("incidence ~ period", _cbpp(), groups="herd", trials="size",
                            link="probit", **kw)
    if case == "cbpp_poisson":
        return emstats.glmm("incidence ~ period + offset(np.log(size))", _cbpp(),
                            groups="herd", family="poisson", **kw)
    return emstats.glmm("TICKS ~ C(YEAR) + cHEIGHT", _grouse(), groups="BROOD",
                        family="poisson", **kw)


def _theta(fit: dict) -> np.ndarray:
    return np.r_[list(fit["fixef"].values()), np.log(fit["sd"])]


@pytest.fixture(scope="module", params=CASES)
def case(request):
    name = request.param
    model = _build(name)
    return name, FX[name], model, model.fit()


def test_data_match_the_fixture(case):
    name, fx, model, _ = case
    assert model.nobs == fx["nobs"] and model.n_groups == fx["n_groups"]
    assert (model.family, model.link) == (fx["family"], fx["link"])


def test_loglike_is_glmers_criterion(case):
    """At glmer's estimates and at other fixed points: lme4's AGQ deviance function
    (for nAGQ > 1 lme4 subtracts the saturated model's log-likelihood)."""
    _, fx, model, _ = case
    sat = fx["fit"]["loglik_saturated"]
    assert_allclose(model.loglike(_theta(fx["fit"])) - sat, fx["fit"]["loglik"], rtol=1e-10)
    for pt in fx["devfun_points"]:
        theta = np.r_[pt["beta"], np.log(pt["theta"])]
        assert_allclose(model.loglike(theta) - sat, pt["loglik"], rtol=1e-10)


def test_laplace_is_glmers_nagq1(case):
    """n_agq = 1 is lme4's Laplace approximation (full log-likelihood, no constant)."""
    name, fx, _, _ = case
    m1 = _build(name, n_agq=1)
    lap = fx["laplace_fit"]
    # lme4's conditional modes (PIRLS, tolPwrss = 1e-13) are a little less exact than
    # ours, and the Laplace value depends on them at first order (through the
    # curvature): agreement to about 1e-8 relative (5.7e-6 of 989 on grouseticks)
    assert_allclose(m1.loglike(_theta(lap)), lap["loglik"], rtol=1e-8)
    for pt in fx["devfun_points"]:
        theta = np.r_[pt["beta"], np.log(pt["theta"])]
        assert_allclose(m1.loglike(theta), pt["loglik_laplace"], rtol=1e-8)
    # the EM fit needs the posterior at >= 2 nodes: a clear error, not a wrong optimum
    with pytest.raises(ValueError, match="n_agq=1 is the Laplace approximation"):
        m1.fit()


def test_fit_reproduces_glmer(case):
    _, fx, model, res = case
    fit = fx["fit"]
    assert isinstance(res, GLMMResults) and res.convergence.converged
    assert abs(res.llf - fit["loglik_saturated"] - fit["loglik"]) < 1e-6
    assert_allclose(res.fe_params.to_numpy(), list(fit["fixef"].values()), rtol=1e-5,
                    atol=1e-6)
    assert_allclose(res.group_sd, fit["sd"], rtol=1e-5)
    assert_allclose(res.group_sd ** 2, fit["var"], rtol=2e-5)
    # lme4's vcov is from its finite-difference Hessian: agreement to its accuracy
    assert_allclose(res.bse.to_numpy()[:-1], list(fit["bse"].values()), rtol=1e-4)
    assert_allclose(res.random_effects().to_numpy(), fit["ranef"], atol=1e-5)


def test_score_is_the_numerical_gradient(case):
    _, fx, model, _ = case
    theta = _theta(fx["devfun_points"][1] | {"fixef": dict(enumerate(
        fx["devfun_points"][1]["beta"])), "sd": fx["devfun_points"][1]["theta"]})
    num = approx_fprime(theta, model.loglike, centered=True)
    assert_allclose(model.score(theta), num, rtol=1e-5, atol=1e-6)


def test_louis_is_the_numerical_hessian(case):
    """Louis' observed information from the quadrature nodes = minus the numerical
    Hessian of the quadrature log-likelihood at the estimate."""
    _, _, model, res = case
    H = approx_hess3(res.params.to_numpy(), model.loglike)
    cov_num = np.linalg.inv(-H)
    cov = res.cov_params().to_numpy()
    sd = np.sqrt(np.diag(cov_num))
    # relative to the scale of each entry (sd_i sd_j): the finite differences' error
    assert np.max(np.abs(cov - cov_num) / np.outer(sd, sd)) < 1e-4
    assert_allclose(np.diag(cov), np.diag(cov_num), rtol=1e-4)


def test_summary_names_family_and_link(case):
    _, fx, _, res = case
    text = str(res.summary())
    assert f"{fx['family']} ({fx['link']})" in text
    assert ("Poisson" if fx["family"] == "poisson" else "Probit") in text


def test_importance_sampler_matches_quadrature(case):
    """Monte Carlo EM's sampler targets the same posterior for every family."""
    _, _, model, res = case
    theta = res.params.to_numpy()
    nodes, w, _ = model._posterior(theta)
    eb = np.sum(w * nodes, axis=1)
    draws = model.sample_stats(theta, np.random.default_rng(0), 4000)
    wn = draws.normalised_weights()
    mc = np.sum(wn * draws.b, axis=0)
    sd = np.sqrt(np.sum(w * (nodes - eb[:, None]) ** 2, axis=1))
    ess = draws.effective_size()
    assert np.all(np.abs(mc - eb) < 6 * sd / np.sqrt(ess))


def test_mcem_agrees_within_monte_carlo_error():
    model = _build("cbpp_poisson")
    res = model.fit(method="mcem", seed=1)
    agq = model.fit()
    se = agq.bse.to_numpy()
    assert np.all(np.abs(res.params.to_numpy() - agq.params.to_numpy()) < 0.2 * se)


# -- the shortcut and the API -------------------------------------------------------------
def test_binomial_logit_is_glmm_logit():
    cb = _cbpp()
    a = emstats.glmm("incidence ~ period", cb, groups="herd", trials="size").fit()
    b = emstats.glmm_logit("incidence ~ period", cb, groups="herd", trials="size").fit()
    assert isinstance(b.model, RandomInterceptLogit)
    assert_allclose(a.params, b.params, rtol=1e-10)
    assert_allclose(a.llf, b.llf, rtol=1e-12)


def test_offset_argument_equals_formula_offset():
    cb = _cbpp().assign(lsize=lambda d: np.log(d["size"]))
    a = _build("cbpp_poisson").fit()
    b = emstats.glmm("incidence ~ period", cb, groups="herd", family="poisson",
                     offset="lsize").fit()
    assert_allclose(a.params, b.params, rtol=1e-10)
    # predictions: the offset enters the linear predictor, in-sample and on new data
    mean = b.predict()
    assert_allclose(mean, a.predict(), rtol=1e-10)
    assert_allclose(b.predict(cb, which="mean"), mean, rtol=1e-10)
    assert_allclose(a.predict(cb, which="mean"), mean, rtol=1e-10)
    beta, tau = a.fe_params.to_numpy(), a.group_sd
    eta = a.predict(which="fixed").to_numpy()
    assert_allclose(a.predict(which="marginal"), np.exp(eta + 0.5 * tau ** 2), rtol=1e-10)
    assert beta.shape == (4,)


def test_probit_predict_is_normal_cdf():
    from scipy.special import ndtr

    res = _build("cbpp_probit").fit()
    assert_allclose(res.predict(), ndtr(res.predict(which="linear")), rtol=1e-12)
    # marginal probability of a probit random intercept: Phi(eta / sqrt(1 + tau^2))
    eta = res.predict(which="fixed").to_numpy()
    assert_allclose(res.predict(which="marginal"),
                    ndtr(eta / np.sqrt(1 + res.group_sd ** 2)), rtol=1e-8)


def test_bad_family_and_link():
    cb = _cbpp()
    with pytest.raises(ValueError, match="family must be one of"):
        emstats.glmm("incidence ~ period", cb, groups="herd", family="gamma")
    with pytest.raises(ValueError, match="link 'probit' is not available for family "
                                         "'poisson'"):
        emstats.glmm("incidence ~ period", cb, groups="herd", family="poisson", link="probit")
    with pytest.raises(DataError, match="trials= is for the binomial family"):
        emstats.glmm("incidence ~ period", cb, groups="herd", family="poisson",
                     trials="size")
    with pytest.raises(DataError, match="offset: column 'nope'"):
        emstats.glmm("incidence ~ period", cb, groups="herd", family="poisson",
                     offset="nope")
    with pytest.raises(DataError, match="non-negative integer count"):
        emstats.glmm("y ~ 1", pd.DataFrame({"y": [1.5, 2, 3, 0], "g": [1, 1, 2, 2]}),
                      groups="g", family="poisson")
    with pytest.raises(TypeError, match="binomial logit"):
        RandomInterceptLogit(np.r_[0, 1, 0, 1], np.ones((4, 1)), [1, 1, 2, 2],
                             link="probit")


def _degenerate(kind):
    rng = np.random.default_rng(1)
    n = 400
    g = np.repeat(np.arange(40), 10)
    x = rng.normal(size=n)
    d = (rng.random(n) < 0.3) * 1.0
    y = {"ones": np.ones(n), "zeros": np.zeros(n), "separated": (x > 0) * 1.0,
         # counts all 0 where the dummy is 1: its coefficient runs to -inf
         "poisson_sep": np.where(d == 1, 0, rng.poisson(2.0, n)) * 1.0}[kind]
    return pd.DataFrame({"y": y, "x": d if kind == "poisson_sep" else x, "g": g})


@pytest.mark.parametrize("kind, family, link, match", [
    ("ones", "binomial", "probit", "is 1 in every row"),
    ("zeros", "binomial", "probit", "is 0 .* in every row"),
    ("separated", "binomial", "probit", "separate the outcomes .*'x'"),
    ("zeros", "poisson", "log", "is 0 in every row"),
    ("poisson_sep", "poisson", "log", "separate the outcomes quasi-completely .*'x'.*mean 0"),
])
def test_degenerate_outcomes_are_data_errors(kind, family, link, match):
    with pytest.raises(DataError, match=match):
        emstats.glmm("y ~ x", _degenerate(kind), groups="g", family=family, link=link).fit()


def test_probit_kernel_tails_are_finite():
    """Extreme linear predictors (|eta| ~ 40) keep the probit kernel finite."""
    rng = np.random.default_rng(0)
    n = 200
    x = rng.normal(size=n)
    y = (rng.random(n) < 0.5) * 1.0
    g = np.repeat(np.arange(20), 10)
    m = RandomInterceptGLMM(y, np.c_[np.ones(n), x], g, family="binomial", link="probit")
    for b0 in (-40.0, 40.0):
        ll = m.loglike(np.r_[b0, 0.1, np.log(0.5)])
        assert np.isfinite(ll) and ll < 0


def test_cli_families(capsys, tmp_path):
    """``emstats fit glmm --family/--link/--offset``: the API's fits (full log-likelihood:
    glmer's logLik plus the saturated constant)."""
    from emstats.__main__ import main

    probit = FX["cbpp_probit"]["fit"]
    assert main(["fit", "glmm", "incidence ~ period", "--data", "cbpp", "--groups", "herd",
                 "--trials", "size", "--link", "probit"]) == 0
    out = capsys.readouterr().out
    assert "Probit" in out and f"{probit['loglik'] + probit['loglik_saturated']:.6f}" in out
    cb = _cbpp().assign(lsize=lambda d: np.log(d["size"]))
    path = tmp_path / "cbpp.csv"
    cb.to_csv(path, index=False)
    pois = FX["cbpp_poisson"]["fit"]
    assert main(["fit", "glmm", "incidence ~ C(period)", "--data", str(path), "--groups",
                 "herd", "--family", "poisson", "--offset", "lsize"]) == 0
    out = capsys.readouterr().out
    assert "Poisson" in out and f"{pois['loglik'] + pois['loglik_saturated']:.6f}" in out


def test_one_trial_per_row_is_shared_not_stored():
    """0/1 outcomes hold their one trial per row as a broadcast, which the quadrature kernels
    read as the largest group's trials shared by every group: the same fit, bit for bit, as
    an explicit column of ones; a shared vector shorter than a group is refused."""
    from emstats._kernels import glmm_kernels
    from emstats.models.glmm import _kernel_trials

    rng = np.random.default_rng(12)
    g = np.repeat(np.arange(60), rng.integers(3, 12, 60))
    x = rng.normal(size=g.size)
    y = (rng.random(g.size) < 1 / (1 + np.exp(-(0.2 + 0.8 * x + rng.normal(size=60)[g]))))
    df = pd.DataFrame({"y": y.astype(float), "x": x, "g": g, "one": 1.0})
    m = emstats.glmm("y ~ x", df, groups="g")
    assert m.ntrials.strides == (0,)
    a = m.fit()
    b = emstats.glmm("y ~ x", df, groups="g", trials="one").fit()
    assert np.array_equal(a.params.to_numpy(), b.params.to_numpy())
    assert np.array_equal(a.bse.to_numpy(), b.bse.to_numpy())
    assert a.llf == b.llf
    ch = m.data.chunks(1)[0]
    nt, shared = _kernel_trials(ch)
    assert shared and nt.shape == (int(np.bincount(g).max()),)
    with pytest.raises(ValueError, match="the groups need"):
        glmm_kernels.agq_groups(ch["X"], ch["y"], nt[:-1], np.zeros(ch.n_rows),
                                np.asarray(ch.unit_bounds), 1.0, m._gh_z, m._gh_logw,
                                False, m._code, np.empty(60), np.empty(60), np.empty(60),
                                np.empty((60, m._gh_z.size)), np.empty(ch.n_rows),
                                np.empty(ch.n_rows), np.empty(60), np.empty((0, 3)),
                                np.empty((0, 3, 3)), 1, True)
