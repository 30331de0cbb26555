"""Gaussian mixtures with missing values (missing="em"): the missing coordinates integrated
out in the E-step.

Witnesses: an observed-data log-likelihood written here from scratch (scipy's
multivariate normal on each row's observed coordinates), maximised directly with scipy
and differentiated numerically for Louis' standard errors; the multivariate normal with
missing values (emstats.mvn, itself checked against lavaan) as the one-component
mixture; and the complete-data mixture when nothing is missing.  R's mclust has no
missing-data mixture (Mclust stops on NA; its imputeData imputes under one multivariate
normal), so there is no R fixture.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import optimize, stats
from scipy.special import logsumexp
from statsmodels.tools.numdiff import approx_hess3

import emstats
from emstats.components.gaussian_missing import component_moments
from emstats.em.problem import Problem
from emstats.exceptions import DataError
from emstats.models.gmm import ALL_STRUCTURES, gmm

LINEAR = ("EII", "VII", "EEI", "VVI", "EEE", "VVV")


def _sim(n=240, seed=1, frac=0.2, d=3):
    """Two well-separated 3-d components, values missing at random (the probability that
    the later coordinates are missing rises with the first, always observed, one)."""
    rng = np.random.default_rng(seed)
    a = rng.normal(0.0, 1.0, (n // 2, d))
    b = rng.normal(3.0, 0.7, (n - n // 2, d)) @ (np.eye(d) + 0.3 * np.eye(d, k=1))
    X = np.vstack([a, b])
    Xm = X.copy()
    p = frac * 2.0 / (1.0 + np.exp(-(X[:, :1] - 1.5)))
    miss = rng.random((n, d)) < p
    miss[:, 0] = False
    Xm[miss] = np.nan
    return X, Xm


def obs_loglik_rows(X, w, mu, S):
    """Each row's observed-data log-likelihood, log sum_k w_k phi(x_o; mu_k,o, S_k,oo)."""
    out = np.zeros(X.shape[0])
    obs = ~np.isnan(X)
    keys, inv = np.unique(obs, axis=0, return_inverse=True)
    inv = inv.ravel()
    for p, key in enumerate(keys):
        rows = inv == p
        o = np.flatnonzero(key)
        if not o.size:
            continue
        lp = np.column_stack([
            np.log(w[k]) + stats.multivariate_normal(mu[k, o], S[k][np.ix_(o, o)],
                                                     allow_singular=False)
            .logpdf(X[np.ix_(rows, o)]).reshape(-1) for k in range(len(w))])
        out[rows] = logsumexp(lp, axis=1)
    return out


def obs_loglik(X, p):
    return float(obs_loglik_rows(X, p.weights, p.means, p.covariances).sum())


def test_complete_data_reduction_is_exact():
    """Without missing values, missing='em' is the complete-data mixture."""
    X, _ = _sim()
    a = gmm(X, k=2, covariance="VVV").fit(seed=3)
    b = gmm(X, k=2, covariance="VVV", missing="em").fit(seed=3)
    assert not b.model.incomplete
    np.testing.assert_allclose(a.params, b.params, rtol=1e-12, atol=0)
    np.testing.assert_allclose(a.bse, b.bse, rtol=1e-12, atol=0)
    assert a.llf == b.llf


def test_pattern_moments_of_a_complete_row_equal_the_kernel():
    """The incomplete-row path with every coordinate observed (one Cholesky per component)
    gives the kernel's log-densities and responsibilities."""
    X, _ = _sim()
    m = gmm(X, k=2)
    p = m._init_kmeans(np.random.default_rng(0))
    L = m._factors(p)
    _, _, _, _, _, resp, llo = m._kernel(X, p, L, want_resp=True, want_ll=True)
    logpdf, resid, cond = component_moments(X, np.ones(3, bool), p.means, p.covariances)
    lp = logpdf + np.log(p.weights)
    np.testing.assert_allclose(logsumexp(lp, axis=1), llo, rtol=1e-12)
    np.testing.assert_allclose(np.exp(lp - logsumexp(lp, axis=1)[:, None]), resp,
                               rtol=1e-10, atol=1e-14)
    assert np.all(cond == 0.0)
    np.testing.assert_allclose(resid[1], X - p.means[1], rtol=1e-15)


def test_estep_against_direct_computation():
    """Log-likelihood, N_k, sum E[x] and sum E[x x'] of the E-step (1, 2 threads and 5
    chunks) against a direct computation: responsibilities from the marginal densities
    and the conditional moments of the missing coordinates."""
    _, Xm = _sim()
    m = gmm(Xm, k=2, missing="em")
    p = m._init_kmeans(np.random.default_rng(0))
    runs = [Problem(m, 1).e_step(p), Problem(m, 2).e_step(p),
            Problem(m, 2, n_chunks=5).e_step(p)]
    assert runs[0][1] == runs[1][1]
    for key in ("N", "S1", "S2"):
        assert np.array_equal(runs[0][0][key], runs[1][0][key])
    ll_rows = obs_loglik_rows(Xm, p.weights, p.means, p.covariances)
    # responsibilities and completed moments, row by row
    N = np.zeros(2)
    S1 = np.zeros((2, 3))
    S2 = np.zeros((2, 3, 3))
    for x in Xm:
        o, mm = np.flatnonzero(~np.isnan(x)), np.flatnonzero(np.isnan(x))
        lp = np.array([np.log(p.weights[k]) + stats.multivariate_normal(
            p.means[k, o], p.covariances[k][np.ix_(o, o)]).logpdf(x[o]) for k in range(2)])
        r = np.exp(lp - logsumexp(lp))
        for k in range(2):
            S = p.covariances[k]
            xh = x.copy()
            C = np.zeros((3, 3))
            if mm.size:
                B = S[np.ix_(mm, o)] @ np.linalg.inv(S[np.ix_(o, o)])
                xh[mm] = p.means[k, mm] + B @ (x[o] - p.means[k, o])
                C[np.ix_(mm, mm)] = S[np.ix_(mm, mm)] - B @ S[np.ix_(o, mm)]
            e = xh - m.centre
            N[k] += r[k]
            S1[k] += r[k] * e
            S2[k] += r[k] * (np.outer(e, e) + C)
    for st, ll in runs:
        assert np.isclose(ll, ll_rows.sum(), rtol=1e-12)
        np.testing.assert_allclose(st["N"], N, rtol=1e-11)
        np.testing.assert_allclose(st["S1"], S1, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(st["S2"], S2, rtol=1e-9, atol=1e-9)


def test_one_component_is_the_multivariate_normal():
    """k = 1 (VVV) is emstats.mvn's model in the same coordinates (means, then the lower
    triangle of the covariance): the same MLE, log-likelihood and Louis SEs."""
    _, Xm = _sim(n=300, seed=4)
    g = gmm(Xm, k=1, missing="em").fit(tol=1e-14, ptol=1e-12, n_init=1)
    v = emstats.mvn(Xm).fit(tol=1e-14, ptol=1e-12)
    assert np.isclose(g.llf, v.llf, rtol=1e-10)
    np.testing.assert_allclose(g.params.to_numpy(), v.params.to_numpy(), rtol=1e-7,
                               atol=1e-9)
    # the SEs: two Louis computations at the same MLE (to the stopping rule's sqrt(ptol))
    np.testing.assert_allclose(g.bse.to_numpy(), v.bse.to_numpy(), rtol=1e-6)


@pytest.mark.parametrize("cov", ["VVV", "EEE", "VVI", "VII", "EEI", "VEV", "EVE"])
def test_direct_maximisation_of_the_observed_likelihood(cov):
    """EM's estimate is the maximum of the observed-data likelihood written here (BFGS in
    the model's unconstrained coordinates, from a start away from the MLE)."""
    _, Xm = _sim(n=120, seed=2)
    m = gmm(Xm, k=2, covariance=cov, missing="em")
    res = m.fit(tol=1e-13, n_init=2)
    u_hat = m.pack(res.raw_params)
    f = lambda u: -obs_loglik(Xm, m.unpack(u))   # noqa: E731
    rng = np.random.default_rng(0)
    u0 = u_hat + 0.05 * rng.standard_normal(u_hat.size)
    opt = optimize.minimize(f, u0, method="BFGS", options={"gtol": 1e-7, "maxiter": 5000})
    # the likelihood is flat to second order: BFGS's gtol gives ~1e-10 in the maximum
    assert -opt.fun <= res.llf + 1e-7 * abs(res.llf)
    assert abs(-opt.fun - res.llf) < 1e-7 * abs(res.llf)
    assert np.isclose(res.llf, obs_loglik(Xm, res.raw_params), rtol=1e-12)
    th_opt = m.to_inference(m.canonical(m.unpack(opt.x)))
    # parameters to sqrt of the optimiser's precision, relative to their SEs
    assert np.max(np.abs(th_opt - res.params.to_numpy()) / res.bse.to_numpy()) < 1e-2


@pytest.mark.parametrize("cov", ALL_STRUCTURES)
def test_louis_equals_numerical_hessian_all_structures(cov):
    """Louis' observed information with missing coordinates (labels and x_m missing)
    against a numerical Hessian of the independent observed-data log-likelihood, every
    structure; the score vanishes at the MLE."""
    _, Xm = _sim(n=200, seed=5)
    m = gmm(Xm, k=2, covariance=cov, missing="em")
    res = m.fit(tol=1e-13, n_init=2, cov_type="louis")
    assert res.cov_type == "louis"
    theta = res.params.to_numpy()
    assert np.isclose(res.llf, obs_loglik(Xm, m.from_inference(theta)), rtol=1e-12)
    # a fixed step of 1e-4 (the default, eps^(1/4) |theta|, is too coarse for the
    # rotations of EVV, whose inverse information is conditioned ~3e3): the Hessian's
    # truncation error ~1e-8 relative; the tolerance is the step's usual 1e-4
    H = -approx_hess3(theta, lambda t: obs_loglik(Xm, m.from_inference(t)), epsilon=1e-4)
    score, pieces = m.score_and_louis(m.from_inference(theta))
    assert np.max(np.abs(pieces.observed - H)) <= 1e-4 * np.max(np.abs(H))
    np.testing.assert_allclose(res.bse.to_numpy(), np.sqrt(np.diag(np.linalg.inv(H))),
                               rtol=1e-4)
    assert np.max(np.abs(score)) < 1e-4 * np.sqrt(np.max(np.abs(H)))
    assert 0.0 <= pieces.fraction_missing() < 1.0


def test_louis_three_components_and_score_away_from_the_mle():
    _, Xm = _sim(n=300, seed=6)
    m = gmm(Xm, k=3, covariance="VVV", missing="em")
    p = m._init_kmeans(np.random.default_rng(3))
    p = m.m_step(m.e_step(p)[0], p)
    th = m.to_inference(p)
    f = lambda t: obs_loglik(Xm, m.from_inference(t))   # noqa: E731
    g = optimize.approx_fprime(th, f, 1e-6)
    np.testing.assert_allclose(m.score(p), g, atol=1e-4 * np.max(np.abs(g)))
    res = m.fit(tol=1e-13, n_init=2)
    theta = res.params.to_numpy()
    H = -approx_hess3(theta, f)
    assert np.max(np.abs(m.louis(m.from_inference(theta)).observed - H)) <= (
        1e-4 * np.max(np.abs(H)))


def test_predict_proba_and_score_samples_of_incomplete_rows():
    _, Xm = _sim()
    res = gmm(Xm, k=2, missing="em").fit()
    p = res.raw_params
    ll_rows = obs_loglik_rows(Xm, p.weights, p.means, p.covariances)
    np.testing.assert_allclose(res.score_samples().to_numpy(), ll_rows, rtol=1e-12)
    assert np.isclose(res.score_samples().sum(), res.llf, rtol=1e-12)
    pr = res.predict_proba().to_numpy()
    np.testing.assert_allclose(pr.sum(axis=1), 1.0, rtol=1e-14)
    x = Xm[np.isnan(Xm).any(axis=1)][0]
    o = np.flatnonzero(~np.isnan(x))
    lp = np.array([np.log(p.weights[k]) + stats.multivariate_normal(
        p.means[k, o], p.covariances[k][np.ix_(o, o)]).logpdf(x[o]) for k in range(2)])
    np.testing.assert_allclose(res.predict_proba(x[None]).to_numpy()[0],
                               np.exp(lp - logsumexp(lp)), rtol=1e-12)
    # new data: a row with nothing observed has the weights as probabilities
    new = np.vstack([x, np.full(3, np.nan)])
    np.testing.assert_allclose(res.predict_proba(new).to_numpy()[1], res.weights, rtol=1e-14)
    assert res.predict(new, which="label").shape == (2,)
    assert abs(res.score_samples(new).iloc[1]) < 1e-12     # log of the weights' sum


def test_impute_conditional_mean_and_draws():
    _, Xm = _sim()
    res = gmm(Xm, k=2, missing="em").fit()
    p = res.raw_params
    filled = res.impute(m=None)
    assert not filled.isna().any().any()
    obs = ~np.isnan(Xm)
    np.testing.assert_array_equal(filled.to_numpy()[obs], Xm[obs])
    i = int(np.flatnonzero(np.isnan(Xm).any(axis=1))[0])
    x = Xm[i]
    o, mm = np.flatnonzero(~np.isnan(x)), np.flatnonzero(np.isnan(x))
    r = res.predict_proba().to_numpy()[i]
    cmean = sum(r[k] * (p.means[k, mm] + p.covariances[k][np.ix_(mm, o)] @ np.linalg.solve(
        p.covariances[k][np.ix_(o, o)], x[o] - p.means[k, o])) for k in range(2))
    np.testing.assert_allclose(filled.to_numpy()[i, mm], cmean, rtol=1e-12)
    # draws at the MLE: their mean is the conditional mean (within 5 Monte Carlo SEs)
    rng = np.random.default_rng(1)
    rows = np.repeat(x[None], 4000, axis=0)
    draws = res.model.complete_rows(p, rows, rng)[:, mm]
    se = draws.std(axis=0) / np.sqrt(draws.shape[0])
    assert np.all(np.abs(draws.mean(axis=0) - cmean) < 5 * se)
    # posterior-predictive imputations: observed values kept, reproducible
    imps = res.impute(m=3, seed=2)
    assert len(imps) == 3
    for d in imps:
        assert not d.isna().any().any()
        np.testing.assert_array_equal(d.to_numpy()[obs], Xm[obs])
    np.testing.assert_array_equal(imps[0], res.impute(m=3, seed=2)[0])
    assert not np.array_equal(imps[0].to_numpy(), imps[1].to_numpy())
    with pytest.raises(ValueError, match="m must be"):
        res.impute(m=0)
    with pytest.raises(ValueError, match="missing='em'"):
        gmm(_sim()[0], k=2).fit().impute(m=None)


def test_bad_input():
    _, Xm = _sim()
    df = pd.DataFrame(Xm, columns=["a", "b", "c"])
    # a row with nothing observed: dropped and counted (summary), or an error
    df2 = df.copy()
    df2.loc[[3, 7], :] = np.nan
    before = df2.copy()
    m = gmm(df2, k=2, missing="em")
    assert m.n_dropped == 2 and m.n == len(df) - 2
    res = m.fit(n_init=1)
    assert "Rows dropped (NA):" in res.summary().as_text()
    assert "Incomplete rows:" in res.summary().as_text()
    pd.testing.assert_frame_equal(df2, before)          # the caller's data untouched
    with pytest.raises(DataError, match="missing values"):
        gmm(df2, k=2, missing="raise")
    with pytest.raises(DataError, match="missing values"):
        gmm(df2, k=2)
    # a column entirely missing
    with pytest.raises(DataError, match="entirely missing: 'c'"):
        gmm(df.assign(c=np.nan), k=2, missing="em")
    # non-numeric columns
    with pytest.raises(DataError, match="column 'kind' is not numeric"):
        gmm(df.assign(kind="x"), k=2, missing="em")
    with pytest.raises(DataError, match="'kind'.*not numeric"):
        gmm("~ a + kind", data=df.assign(kind="x"), k=2, missing="em")
    # a pair of columns never observed together: no covariance under VVV, fine under VVI
    pair = df.copy()
    pair.loc[pair.index[::2], "b"] = np.nan
    pair.loc[pair.index[1::2], "c"] = np.nan
    with pytest.raises(DataError, match=r"pairs of columns.*\('b', 'c'\): 0 row"):
        gmm(pair, k=2, missing="em")
    gmm(pair, k=2, covariance="VVI", missing="em").fit(n_init=1)
    one = df.copy()
    one.loc[1:, "c"] = np.nan
    with pytest.raises(DataError, match="fewer than 2 observed values: 'c'"):
        gmm(one, k=2, missing="em")
    flat = df.assign(c=np.where(np.isnan(df["c"]), np.nan, 1.0))
    with pytest.raises(DataError, match="constant column.*'c'"):
        gmm(flat, k=2, missing="em")
    with pytest.raises(ValueError, match="prior"):
        gmm(df, k=2, missing="em", prior=True)
    with pytest.raises(ValueError, match="missing"):
        gmm(df, k=2, missing="impute")
    with pytest.raises(ValueError, match="simulated"):
        gmm(df, k=2, missing="em").fit(method="stochastic")
    with pytest.raises(DataError, match="new data have infinite"):
        res.predict_proba(np.array([[np.inf, 1.0, 2.0]]))


def test_formula_select_and_methods():
    _, Xm = _sim()
    df = pd.DataFrame(Xm, columns=["a", "b", "c"])
    r1 = gmm("~ a + b + c", data=df, k=2, missing="em").fit(seed=1)
    r2 = gmm(df, k=2, missing="em").fit(seed=1)
    np.testing.assert_allclose(r1.params, r2.params, rtol=1e-12)
    np.testing.assert_allclose(r1.predict_proba(df.iloc[:10]).to_numpy(),
                               r2.predict_proba().to_numpy()[:10], rtol=1e-12)
    sel = emstats.gmm_select(df, k=[1, 2], covariance=["VVV", "VII"], missing="em",
                             n_init=1)
    assert not sel.table["failed"].any()
    assert sel.best.k == 2
    # the engine's methods reach the same maximum
    m = gmm(df, k=2, missing="em")
    base = m.fit(tol=1e-12, n_init=1)
    for method in ("em", "squarem", "incremental"):
        r = m.fit(method=method, tol=1e-12, n_init=1, maxiter=5000, cov_type=None)
        assert abs(r.llf - base.llf) < 1e-6 * abs(base.llf)
