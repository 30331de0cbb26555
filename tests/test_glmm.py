"""Random-intercept logistic regression: EM by adaptive quadrature (the default,
Louis-Newton) and Monte Carlo EM (issue 5; "Where R is still faster", item 1).

Witnesses: lme4's ``glmer(..., nAGQ = 25)`` on ``lme4::cbpp`` (fixture
tests/results/glmm_cbpp.json from tests/results/r_scripts/glmm_cbpp.R), a direct
scipy maximisation of the quadrature log-likelihood, and a numerical Hessian.
"""

from __future__ import annotations

import warnings
from importlib import resources

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose
from results.fixtures import load_fixture
from scipy import optimize
from statsmodels.tools.numdiff import approx_hess3

from emstats import datasets
from emstats.em.engine import applicable_methods
from emstats.em.problem import Problem
from emstats.exceptions import DataError
from emstats.models.glmm import GLMMResults, RandomInterceptLogit, glmm_logit

FX = load_fixture("glmm_cbpp")
FIT = FX["fit"]
NAMES = ["Intercept", "period[T.2]", "period[T.3]", "period[T.4]"]
BETA_R = np.array(list(FIT["fixef"].values()))
THETA_R = np.r_[BETA_R, np.log(FIT["herd_sd"])]
BSE_R = np.array(list(FIT["bse"].values()))
VCOV_R = np.array(FIT["vcov"])


def _cbpp() -> pd.DataFrame:
    """lme4's cbpp: through the dataset registry once registered, else the shipped CSV."""
    if "cbpp" in datasets.list_datasets()["name"].tolist():
        return datasets.load("cbpp")
    path = resources.files("emstats.datasets").joinpath("data", "cbpp.csv")
    with path.open("r", encoding="utf-8") as fh:
        return pd.read_csv(fh, dtype={"herd": "category", "period": "category"})


@pytest.fixture(scope="module")
def cbpp():
    return _cbpp()


@pytest.fixture(scope="module")
def model(cbpp):
    return glmm_logit("incidence ~ period", data=cbpp, groups="herd", trials="size")


@pytest.fixture(scope="module")
def fitted(model):
    """The Monte Carlo EM fit."""
    return model.fit(seed=0, method="mcem")


@pytest.fixture(scope="module")
def fitted_agq(model):
    """The default fit: Louis-Newton on the quadrature E-step."""
    return model.fit()


@pytest.fixture(scope="module")
def mle(model):
    """Direct maximisation of the quadrature log-likelihood (no EM)."""
    r = optimize.minimize(lambda t: -model.loglike(t), model.start_params(), method="BFGS",
                          jac=lambda t: -model.score(t), options={"gtol": 1e-8})
    assert np.max(np.abs(model.score(r.x))) < 1e-6
    return r.x


# -- the data ---------------------------------------------------------------------------
def test_data_are_lme4_cbpp(cbpp):
    assert cbpp.shape == (FX["nobs"], 4)
    assert list(cbpp.columns) == ["herd", "incidence", "size", "period"]
    assert cbpp["herd"].nunique() == FX["n_groups"] == 15
    assert cbpp["incidence"].sum() == 99 and cbpp["size"].sum() == 842
    assert cbpp["herd"].value_counts().sort_index().tolist() == [4, 3] + [4] * 5 + [1] + [4] * 7


# -- (1) the quadrature log-likelihood is glmer's criterion -------------------------------
def test_loglike_at_glmer_estimates(model):
    # for nAGQ > 1 lme4 reports the log-likelihood minus that of the saturated binomial
    # model (a constant); ours is the full marginal log-likelihood
    ll = model.loglike(THETA_R)
    assert_allclose(ll - FX["loglik_saturated"], FIT["loglik"], rtol=1e-10)
    assert_allclose(ll, -91.983369037, atol=1e-8)


def test_loglike_at_other_points_matches_glmer_devfun(model):
    for pt in FX["devfun_points"]:
        theta = np.r_[pt["beta"], np.log(pt["theta"])]
        assert_allclose(model.loglike(theta) - FX["loglik_saturated"], pt["loglik"],
                        rtol=1e-10)


def test_laplace_matches_glmer_nagq1(cbpp):
    # with nAGQ = 1 lme4's logLik is the full Laplace log-likelihood (no constant); the
    # fixture's Laplace fit uses a tight PIRLS tolerance for the conditional modes
    lap = FX["laplace_fit"]
    m1 = glmm_logit("incidence ~ period", data=cbpp, groups="herd", trials="size", n_agq=1)
    theta = np.r_[list(lap["fixef"].values()), np.log(lap["herd_sd"])]
    assert_allclose(m1.loglike(theta), lap["loglik"], rtol=1e-9)
    pt = FX["laplace_devfun_point"]
    assert_allclose(m1.loglike(np.r_[pt["beta"], np.log(pt["theta"])]), pt["loglik"],
                    rtol=1e-9)


def test_conditional_modes_match_ranef(model):
    assert_allclose(model.conditional_modes(THETA_R).to_numpy(), FIT["ranef"], atol=1e-8)


def test_agq_converges_in_nodes(cbpp):
    lls = [glmm_logit("incidence ~ period", data=cbpp, groups="herd", trials="size",
                      n_agq=k).loglike(THETA_R) for k in (9, 25, 41)]
    assert abs(lls[1] - lls[2]) < 1e-10 and abs(lls[0] - lls[2]) < 1e-5


# -- (2) deterministic witness: direct maximisation --------------------------------------
def test_direct_maximisation_reproduces_glmer(mle):
    assert_allclose(mle[:-1], BETA_R, rtol=1e-4)
    assert_allclose(np.exp(mle[-1]), FIT["herd_sd"], rtol=1e-4)


# -- (3) MCEM agrees with glmer within its Monte Carlo error ------------------------------
def test_mcem_agrees_within_monte_carlo_error(model, fitted, mle):
    conv = fitted.convergence
    assert conv.method == "mcem" and conv.converged
    assert isinstance(fitted, GLMMResults)
    assert list(fitted.params.index) == NAMES + ["Log(herd SD)"]
    # stationary fluctuation of theta_{t+1} = M(theta_t) + e with rate r: sd(e) / sqrt(1 - r^2)
    rate = model.louis(mle).fraction_missing()
    assert 0.5 < rate < 0.9
    assert_allclose(conv.em_rate, rate, rtol=1e-3)
    mc_sd = conv.extra["mc_se"][-1] / np.sqrt(1.0 - rate**2)
    est = fitted.params.to_numpy()
    assert np.all(np.abs(est - THETA_R) <= 4.0 * mc_sd)
    assert np.all(np.abs(est - mle) <= 4.0 * mc_sd)
    # and the Monte Carlo error is negligible against the statistical error
    assert np.all(np.abs(est - THETA_R) <= 0.05 * fitted.bse.to_numpy())
    assert abs(fitted.group_sd - FIT["herd_sd"]) <= 0.05 * fitted.group_sd_se
    # the reported log-likelihood is the quadrature one at the estimates
    assert fitted.llf == model.loglike(est)
    assert fitted.llf <= model.loglike(mle) + 1e-9


def test_mcem_is_reproducible_and_sample_size_grows(model, fitted):
    again = model.fit(seed=0, cov_type="numerical", method="mcem")
    assert np.array_equal(again.params.to_numpy(), fitted.params.to_numpy())
    sizes = fitted.convergence.extra["mc_size"]
    assert sizes[0] == 50 and np.all(np.diff(sizes) >= 0) and sizes[-1] > sizes[0]
    other = model.fit(seed=1, cov_type="numerical", method="mcem")
    assert not np.array_equal(other.params.to_numpy(), fitted.params.to_numpy())


def test_importance_sampler_matches_quadrature_moments(model):
    draws = model.sample_stats(THETA_R, np.random.default_rng(3), 20000)
    w = draws.normalised_weights()
    m1 = np.sum(w * draws.b, axis=0)
    m2 = np.sum(w * draws.b**2, axis=0)
    nodes, pw, _ = model._posterior(THETA_R)
    q1 = np.sum(pw * nodes, axis=1)
    q2 = np.sum(pw * nodes**2, axis=1)
    sd = np.sqrt(q2 - q1**2)
    ess = draws.effective_size()
    assert np.all(ess > 0.5 * 20000)  # the t proposal fits the posterior well here
    assert np.all(np.abs(m1 - q1) <= 5 * sd / np.sqrt(ess))
    assert_allclose(m2, q2, rtol=0.05)
    # batches pool exactly: concatenation of the draws
    b1 = model.sample_stats(THETA_R, np.random.default_rng(4), 10)
    b2 = model.sample_stats(THETA_R, np.random.default_rng(5), 30)
    pooled = model.average_stats([b1, b2], [10, 30])
    assert pooled.b.shape == (40, 15)
    assert np.array_equal(pooled.logw[10:], b2.logw)


def test_exact_draws_match_quadrature_moments(model):
    draws = model.exact_draws(THETA_R, np.random.default_rng(1), 20000)
    assert draws.exact and np.all(draws.logw == 0)
    nodes, pw, _ = model._posterior(THETA_R)
    q1 = np.sum(pw * nodes, axis=1)
    sd = np.sqrt(np.sum(pw * nodes**2, axis=1) - q1**2)
    assert np.all(np.abs(draws.b.mean(axis=0) - q1) <= 4.5 * sd / np.sqrt(20000))
    assert_allclose(draws.b.std(axis=0), sd, rtol=0.05)
    # a single draw (stochastic EM) is exact, never one unweighted importance draw
    assert model.sample_stats(THETA_R, np.random.default_rng(2), 1).exact
    with pytest.raises(ValueError, match="cannot pool"):
        model.average_stats([draws, model.sample_stats(THETA_R, np.random.default_rng(2), 5)],
                            [1, 1])


def test_stochastic_em_chain_average(model):
    res = model.fit(method="stochastic", method_options={"burn_in": 100, "n_keep": 400},
                    cov_type="numerical")
    assert res.convergence.method == "stochastic"
    # the chain average is within a fraction of the statistical error of the MLE
    assert np.all(np.abs(res.params.to_numpy() - THETA_R) <= 0.5 * res.bse.to_numpy())


def test_m_step_at_exact_moments_is_the_em_map(model, mle):
    """With the posterior given by quadrature nodes, the M-step has the MLE as fixed point."""
    from emstats.models.glmm import ImportanceDraws

    nodes, pw, _ = model._posterior(mle)
    stats = ImportanceDraws(np.ascontiguousarray(nodes.T), np.log(pw.T))
    assert_allclose(model.m_step(stats, mle), mle, atol=1e-7)


# -- (4) standard errors ----------------------------------------------------------------
def test_standard_errors_match_glmer(model, fitted, mle):
    info = -approx_hess3(mle, model.loglike)
    cov = np.linalg.inv(info)
    # glmer's vcov comes from a finite-difference Hessian of the same criterion
    assert_allclose(cov[:4, :4], VCOV_R, rtol=1e-4, atol=1e-7)
    assert_allclose(np.sqrt(np.diag(cov))[:4], BSE_R, rtol=1e-5)
    # Louis' identity with quadrature moments equals the numerical Hessian
    pieces = model.louis(mle)
    assert_allclose(pieces.observed, info, rtol=1e-5, atol=1e-5)
    # the fit's (Louis) standard errors at the MCEM estimate
    assert fitted.cov_type == "louis"
    assert_allclose(fitted.bse.to_numpy()[:4], BSE_R, rtol=2e-3)
    assert_allclose(fitted.group_sd_se, fitted.group_sd * np.sqrt(cov[4, 4]), rtol=2e-3)


def test_score_matches_numerical_gradient(model):
    theta = THETA_R + np.array([0.1, -0.05, 0.02, 0.1, 0.2])
    num = optimize.approx_fprime(theta, model.loglike, 1e-7)
    assert_allclose(model.score(theta), num, rtol=1e-5, atol=1e-5)


def test_summary(fitted):
    text = str(fitted.summary())
    assert "herd SD" in text and "ML, Monte Carlo EM" in text and "Monte Carlo EM" in text
    assert fitted.fe_params.index.tolist() == NAMES
    assert fitted.random_effects().shape == (15,)


# -- the Bernoulli form and the protocol --------------------------------------------------
def test_bernoulli_rows_give_the_same_likelihood(cbpp, model):
    rows = []
    for _, r in cbpp.iterrows():
        n, y = int(r["size"]), int(r["incidence"])
        rows += [(r["herd"], r["period"], 1.0)] * y + [(r["herd"], r["period"], 0.0)] * (n - y)
    long = pd.DataFrame(rows, columns=["herd", "period", "sick"])
    long["period"] = long["period"].astype(cbpp["period"].dtype)
    mb = glmm_logit("sick ~ period", data=long, groups="herd")
    # binomial likelihood = Bernoulli likelihood + log binomial coefficients
    assert_allclose(mb.loglike(THETA_R), model.loglike(THETA_R) - model._logchoose, rtol=1e-12)


def test_protocol_and_methods(model):
    # the E-step is exact (quadrature) now: every deterministic scheme applies, and the
    # simulated ones still do through sample_stats
    assert RandomInterceptLogit.has_exact_e_step is True
    stats, ll = model.e_step(THETA_R)
    assert ll == model.loglike(THETA_R)
    assert set(stats) == {"xwx", "xwz", "eb2", "n_units"}
    for meth in ("em", "squarem", "newton", "mcem", "stochastic"):
        assert meth in applicable_methods(model)
    assert not hasattr(model, "_n_threads")
    assert_allclose(model.unpack(model.pack(THETA_R)), THETA_R)


def test_caller_data_not_modified(cbpp):
    before = cbpp.copy(deep=True)
    glmm_logit("incidence ~ period", data=cbpp, groups="herd", trials="size")
    pd.testing.assert_frame_equal(cbpp, before)


# -- (5) bad input ------------------------------------------------------------------------
def test_bad_input(cbpp):
    with pytest.raises(DataError, match="'farm'.*not in the data"):
        glmm_logit("incidence ~ period", data=cbpp, groups="farm", trials="size")
    with pytest.raises(DataError, match="other than 0 and 1.*trials="):
        glmm_logit("incidence ~ period", data=cbpp, groups="herd")
    bad = cbpp.copy()
    bad.loc[3, "incidence"] = bad.loc[3, "size"] + 1
    with pytest.raises(DataError, match="exceeds the number of trials in rows 3"):
        glmm_logit("incidence ~ period", data=bad, groups="herd", trials="size")
    bad = cbpp.copy()
    bad["herd"] = bad["herd"].astype(float)
    bad.loc[[5, 7], "herd"] = np.nan
    with pytest.raises(DataError, match="group column 'herd' has missing values in rows 5, 7"):
        glmm_logit("incidence ~ period", data=bad, groups="herd", trials="size")
    with pytest.raises(DataError, match="trials: column 'n' is not in the data"):
        glmm_logit("incidence ~ period", data=cbpp, groups="herd", trials="n")
    bad = cbpp.copy()
    bad.loc[0, "size"] = 0
    with pytest.raises(DataError, match="trials must be positive integers; rows 0"):
        glmm_logit("incidence ~ period", data=bad, groups="herd", trials="size")
    with pytest.raises(DataError, match="at least 2 groups"):
        glmm_logit("incidence ~ period", data=cbpp, groups=np.zeros(len(cbpp)), trials="size")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match="start_params must hold 5"):
            glmm_logit("incidence ~ period", data=cbpp, groups="herd",
                       trials="size").fit(start_params=[0.0, 1.0])


# -- (6) the deterministic EM: quadrature E-step, Louis-Newton by default -----------------
def test_default_fit_reproduces_glmer(model, fitted_agq, mle):
    res = fitted_agq
    conv = res.convergence
    assert conv.method == "newton" and conv.converged
    assert isinstance(res, GLMMResults)
    # glmer's log-likelihood (plus the saturated constant it leaves out), coefficients, SD
    assert abs(res.llf - (FIT["loglik"] + FX["loglik_saturated"])) < 1e-6
    assert_allclose(res.fe_params.to_numpy(), BETA_R, rtol=1e-5, atol=1e-5)
    assert_allclose(res.group_sd, FIT["herd_sd"], rtol=1e-5)
    assert_allclose(res.params.to_numpy(), mle, atol=1e-6)
    # Louis standard errors against glmer's vcov
    assert res.cov_type == "louis"
    assert_allclose(res.cov_params().to_numpy()[:4, :4], VCOV_R, rtol=1e-4, atol=1e-7)
    assert_allclose(res.bse.to_numpy()[:4], BSE_R, rtol=1e-5)
    assert res.llf == model.loglike(res.params.to_numpy())


def test_louis_matches_numerical_hessian_of_agq_loglik(model, fitted_agq):
    est = fitted_agq.params.to_numpy()
    info = -approx_hess3(est, model.loglike)
    assert_allclose(model.louis(est).observed, info, rtol=1e-4, atol=1e-4)
    se_num = np.sqrt(np.diag(np.linalg.inv(info)))
    assert_allclose(fitted_agq.bse.to_numpy(), se_num, rtol=1e-4)


@pytest.mark.parametrize("method", ["em", "squarem"])
def test_quadrature_em_and_squarem_reach_the_mle(model, mle, method):
    res = model.fit(method=method, tol=1e-12, maxiter=2000)
    assert res.convergence.converged
    assert_allclose(res.params.to_numpy(), mle, atol=2e-5)


def test_plain_em_is_monotone_and_its_map_fixes_the_mle(model, mle):
    res = model.fit(method="em", tol=1e-10, cov_type=None)
    assert res.convergence.n_decreases == 0
    stats, _ = model.e_step(mle)
    assert_allclose(model.m_step(stats, mle), mle, atol=1e-7)


def test_mcem_and_agq_em_agree(fitted, fitted_agq):
    assert np.all(np.abs(fitted.params.to_numpy() - fitted_agq.params.to_numpy())
                  <= 0.05 * fitted_agq.bse.to_numpy())


def test_bitwise_identical_across_threads(model, mle):
    ref = None
    for nt in (1, 2, 3):
        prob = Problem(model, nt)
        stats, ll = prob.e_step(mle)
        louis = model.chunk_louis(mle, prob.chunks[0])
        out = (ll, *[stats[k].copy() for k in sorted(stats)],
               *[louis[k].copy() for k in sorted(louis)])
        if ref is None:
            ref = out
        else:
            for a, b in zip(ref, out, strict=True):
                assert np.array_equal(a, b)
    fits = [model.fit(n_threads=nt) for nt in (1, 2)]
    assert np.array_equal(fits[0].params.to_numpy(), fits[1].params.to_numpy())
    assert np.array_equal(fits[0].bse.to_numpy(), fits[1].bse.to_numpy())
    assert fits[0].llf == fits[1].llf


def test_chunks_hold_whole_groups_and_statistics_add(model, mle):
    one = Problem(model, 1, n_chunks=1)
    many = Problem(model, 2, n_chunks=4)
    assert len(many.chunks) == 4
    for ch in many.chunks:
        g = model.g[ch.start:ch.stop]
        assert g[0] != (model.g[ch.start - 1] if ch.start else -1)
        assert ch.stop == model.nobs or model.g[ch.stop] != g[-1]
    s1, l1 = one.e_step(mle)
    s4, l4 = many.e_step(mle)
    assert_allclose(l4, l1, rtol=1e-13)
    for k in s1:
        assert_allclose(s4[k], s1[k], rtol=1e-12, atol=1e-12)
    ll1, g1, p1 = one.newton_pieces(mle)
    ll4, g4, p4 = many.newton_pieces(mle)
    assert_allclose(ll4, ll1, rtol=1e-13)
    assert_allclose(g4, g1, atol=1e-10)
    assert_allclose(p4.observed, p1.observed, rtol=1e-12)


def test_unsorted_groups_give_the_same_fit(cbpp, fitted_agq):
    shuffled = cbpp.sample(frac=1.0, random_state=7)
    before = shuffled.copy(deep=True)
    m = glmm_logit("incidence ~ period", data=shuffled, groups="herd", trials="size")
    pd.testing.assert_frame_equal(shuffled, before)
    res = m.fit()
    assert_allclose(res.params.to_numpy(), fitted_agq.params.to_numpy(), atol=1e-9)
    assert_allclose(res.llf, fitted_agq.llf, rtol=1e-12)


def test_fit_options_are_the_common_ones(model):
    with pytest.raises(TypeError):
        model.fit(THETA_R)  # keyword-only
    res = model.fit(start_params=THETA_R, cov_type=None)
    assert res.convergence.converged and res.cov_type == "none"
    with pytest.raises(ValueError, match="n_init must be 1"):
        model.fit(n_init=3)


def test_predict_matches_lme4_and_quadrature(cbpp, model):
    """lme4's predict(type = "response") is plogis(X fixef + ranef[herd]); at glmer's
    estimates the conditional modes match ranef to 1e-8 (test above), so predictions at
    our estimates match those of glmer's to the agreement of the estimates."""
    from scipy import integrate, special

    res = model.fit(tol=1e-12)
    beta = BETA_R
    X = model.X.copy()
    X[model.order] = model.X
    herd = cbpp["herd"].astype(int).to_numpy() - 1
    lme4 = special.expit(X @ beta + np.asarray(FIT["ranef"])[herd])
    assert_allclose(res.predict().to_numpy(), lme4, rtol=1e-6)
    assert_allclose(res.predict(which="fixed").to_numpy(), X @ res.fe_params.to_numpy())
    # new data in known groups (through the formula) are the same rows' predictions
    new = cbpp.iloc[[0, 5, 40]]
    assert_allclose(res.predict(new).to_numpy(), res.predict().to_numpy()[[0, 5, 40]],
                    rtol=1e-12)
    # a new group gets the random intercept 0; the population average integrates over it
    other = new.assign(herd="unseen")
    assert_allclose(res.predict(other, which="linear").to_numpy(),
                    res.predict(new, which="fixed").to_numpy())
    tau = res.group_sd
    eta = res.predict(new, which="fixed").to_numpy()
    quad = [integrate.quad(lambda z, e=e: special.expit(e + tau * z) * np.exp(-z * z / 2)
                           / np.sqrt(2 * np.pi), -np.inf, np.inf)[0] for e in eta]
    assert_allclose(res.predict(new, which="marginal").to_numpy(), quad, rtol=1e-10)
    with pytest.raises(DataError, match="groups"):
        res.predict(new.drop(columns="herd"))
    with pytest.raises(ValueError, match="which"):
        res.predict(which="proba")


def _degenerate(kind):
    rng = np.random.default_rng(1)
    n = 400
    g = np.repeat(np.arange(40), 10)
    x = rng.normal(size=n)
    d = (rng.random(n) < 0.3) * 1.0
    y = {"ones": np.ones(n), "zeros": np.zeros(n), "separated": (x > 0) * 1.0,
         "dummy": np.where(d == 1, 1.0, (rng.random(n) < 0.4) * 1.0),
         "singletons": (rng.random(n) < 0.4) * 1.0}[kind]
    if kind == "singletons":
        g = np.arange(n)
    return pd.DataFrame({"y": y, "x": d if kind == "dummy" else x, "g": g})


@pytest.mark.parametrize("kind, match", [
    ("ones", "is 1 in every row"),
    ("zeros", "is 0 .* in every row"),
    ("separated", "separate the outcomes .*'x'"),
    ("dummy", "separate the outcomes quasi-completely .*'x'"),
    ("singletons", "every group of 'g' has a single binary outcome .* not identified"),
])
def test_degenerate_outcomes_are_data_errors(kind, match):
    """All-equal responses and (quasi-)separation by a fixed effect: a DataError naming
    the variable, not a singular Hessian or a slope running off to thousands."""
    with pytest.raises(DataError, match=match):
        glmm_logit("y ~ x", _degenerate(kind), groups="g").fit()


def test_separation_check_is_silent_on_ordinary_data(model):
    assert model.separation() is None
    rng = np.random.default_rng(3)
    df = pd.DataFrame({"y": (rng.random(300) < 0.4) * 1.0, "x": rng.normal(size=300),
                       "g": np.arange(300) // 3})       # groups of three rows: still fits
    res = glmm_logit("y ~ x", df, groups="g").fit()
    assert np.all(np.isfinite(res.params)) and res.convergence.converged
