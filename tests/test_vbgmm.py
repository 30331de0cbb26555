"""Variational Bayesian Gaussian mixture: the ELBO trace is monotone, the ELBO is exact where
the posterior is known (k = 1: the Normal-Wishart marginal likelihood), and the fit agrees
with scikit-learn's BayesianGaussianMixture started from the same responsibilities (the
parameters, and the lower bound up to the constant C of docs/vbgmm.md)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.special import multigammaln
from sklearn.exceptions import ConvergenceWarning as SkConvergenceWarning
from sklearn.mixture import BayesianGaussianMixture
from statsmodels.tools.sm_exceptions import ConvergenceWarning

import emstats
from emstats.em.monitor import LikelihoodDecreaseWarning
from emstats.exceptions import DataError
from emstats.models.vbgmm import VBParams, vbgmm

FAITHFUL = emstats.datasets.load("faithful")
XF = FAITHFUL[["eruptions", "waiting"]].to_numpy()


class _FromResp(BayesianGaussianMixture):
    """scikit-learn's model started from given responsibilities (``resp0``): its
    ``_initialize`` is the M-step from responsibilities, as our ``params_from_resp``."""

    resp0: np.ndarray | None = None

    def _initialize_parameters(self, X, random_state, xp=None):
        assert self.resp0 is not None
        self.used_resp0 = True
        self._initialize(X, self.resp0)


def _sklearn(resp0, k, **kw):
    opts = dict(n_components=k, covariance_type="full",
                weight_concentration_prior_type="dirichlet_distribution", reg_covar=0.0)
    opts.update(kw)
    sk = _FromResp(**opts)
    sk.resp0 = resp0
    return sk


def _simulated(seed=0, n=(250, 150, 100)):
    rng = np.random.default_rng(seed)
    mus = np.array([[0.0, 0.0], [8.0, 0.0], [0.0, 8.0]])
    covs = [np.array([[1.0, 0.5], [0.5, 1.0]]), 0.5 * np.eye(2),
            np.array([[2.0, -0.3], [-0.3, 0.5]])]
    return np.vstack([rng.multivariate_normal(mu, c, size=m)
                      for mu, c, m in zip(mus, covs, n, strict=True)])


def _simulated3d(seed=7):
    rng = np.random.default_rng(seed)
    mus = np.array([[0, 0, 0], [5, 5, 0], [0, 6, 4], [6, 0, 5]], dtype=float)
    return np.vstack([rng.multivariate_normal(mu, np.eye(3) * (1 + 0.5 * i), size=m)
                      for i, (mu, m) in enumerate(zip(mus, (300, 200, 100, 150), strict=True))])


def _rel(a, b):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-300)))


def _assert_monotone(trace):
    trace = np.asarray(trace)
    drops = np.diff(trace)
    assert np.all(drops >= -1e-12 * (1.0 + np.abs(trace[1:]))), drops.min()


# ----------------------------------------------------------------------------------
# the ELBO
# ----------------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["em", "squarem"])
@pytest.mark.parametrize("k", [2, 6])
def test_elbo_monotone_faithful(k, method):
    with warnings.catch_warnings():
        warnings.simplefilter("error", LikelihoodDecreaseWarning)
        res = vbgmm("~ eruptions + waiting", data=FAITHFUL, k=k).fit(
            init="random", seed=1, method=method, tol=1e-13)
    assert res.convergence.converged
    assert res.convergence.n_decreases == 0
    assert res.elbo_trace.size > 5
    _assert_monotone(res.elbo_trace)
    assert res.elbo_trace[-1] > res.elbo_trace[0] + 1.0     # the trace does move


def test_elbo_monotone_simulated():
    X = _simulated3d()
    with warnings.catch_warnings():
        warnings.simplefilter("error", LikelihoodDecreaseWarning)
        res = vbgmm(X, 8).fit(init="random", seed=3, tol=1e-13, maxiter=3000)
    assert res.convergence.n_decreases == 0
    _assert_monotone(res.elbo_trace)


def test_estep_value_is_the_elbo_maximised_over_qz():
    """e_step returns L(r*(theta), theta); any other q(z) gives a smaller ELBO, and the
    M-step increases L(r, .) for the r it was given (the two halves of the monotonicity
    argument, checked separately)."""
    m = vbgmm(XF, 3)
    rng = np.random.default_rng(0)
    theta = m.params_from_resp(m._init_resp("random", rng))
    st, ll = m.e_step(theta)
    assert m.elbo(st, theta) == pytest.approx(ll, rel=1e-12)
    r_star = m._kernel(m.X, theta, m._derived(theta), want_resp=True)[5]
    st2 = m.stats_from_resp(r_star)
    assert m.elbo(st2, theta) == pytest.approx(ll, rel=1e-12)
    for scale in (0.05, 0.3):
        r = r_star * np.exp(scale * rng.standard_normal(r_star.shape))
        r /= r.sum(axis=1, keepdims=True)
        assert m.elbo(m.stats_from_resp(r), theta) < ll
    new = m.m_step(st, theta)
    assert m.elbo(st, new) > ll
    # and the M-step is the maximiser: perturbing its output lowers L(r, .)
    u = m.pack(new)
    for j in range(0, u.size, 3):
        for h in (1e-4, -1e-4):
            v = u.copy()
            v[j] += h
            assert m.elbo(st, m.unpack(v)) < m.elbo(st, new)


def test_k1_elbo_is_the_normal_wishart_marginal_likelihood():
    """With one component q is the exact posterior: the M-step from r = 1 is the conjugate
    Normal-Wishart update and the ELBO equals log p(X) (Murphy 2007, eq. 266)."""
    X = XF
    n, d = X.shape
    beta0, nu0 = 0.5, 4.0
    m0 = np.array([3.0, 70.0])
    psi0 = np.array([[1.0, 5.0], [5.0, 150.0]])
    res = vbgmm(X, 1, mean_precision_prior=beta0, degrees_of_freedom_prior=nu0, mean_prior=m0,
                covariance_prior=psi0).fit()
    xbar = X.mean(axis=0)
    S = (X - xbar).T @ (X - xbar)
    betan, nun = beta0 + n, nu0 + n
    psin = psi0 + S + beta0 * n / betan * np.outer(xbar - m0, xbar - m0)
    logml = (-0.5 * n * d * np.log(np.pi) + multigammaln(nun / 2, d)
             - multigammaln(nu0 / 2, d) + 0.5 * nu0 * np.linalg.slogdet(psi0)[1]
             - 0.5 * nun * np.linalg.slogdet(psin)[1] + 0.5 * d * np.log(beta0 / betan))
    assert res.elbo == pytest.approx(logml, rel=1e-13)
    p = res.raw_params
    assert _rel(p.means[0], (beta0 * m0 + n * xbar) / betan) < 1e-13
    assert _rel(p.covariances[0], psin / nun) < 1e-12
    assert p.degrees_of_freedom[0] == pytest.approx(nun)
    assert p.mean_precision[0] == pytest.approx(betan)


# ----------------------------------------------------------------------------------
# against scikit-learn
# ----------------------------------------------------------------------------------

def test_sklearn_lower_bound_constant_exact():
    """For any responsibilities r and theta = M-step(r): ELBO(r, theta) = scikit-learn's
    _compute_lower_bound(log r) + C, C = VariationalGaussianMixture.sklearn_constant()."""
    k = 4
    m = vbgmm(XF, k, weight_concentration_prior=0.3, mean_precision_prior=2.0,
              degrees_of_freedom_prior=3.5, mean_prior=[3.0, 70.0],
              covariance_prior=[[1.0, 4.0], [4.0, 100.0]])
    sk = _sklearn(None, k, weight_concentration_prior=0.3, mean_precision_prior=2.0,
                  degrees_of_freedom_prior=3.5, mean_prior=[3.0, 70.0],
                  covariance_prior=[[1.0, 4.0], [4.0, 100.0]])
    sk._check_parameters(XF)
    rng = np.random.default_rng(5)
    for _ in range(3):
        r = rng.dirichlet(np.full(k, 0.7), size=XF.shape[0])
        sk._initialize(XF, r)
        with np.errstate(divide="ignore"):
            lb = sk._compute_lower_bound(np.log(r), None)
        st = m.stats_from_resp(r)
        ours = m.elbo(st, m.m_step(st))
        assert ours - m.sklearn_constant() == pytest.approx(lb, rel=1e-12)


def test_sklearn_same_trajectory():
    """Same start, same number of iterations: identical variational parameters (round-off),
    and scikit-learn's per-iteration lower bounds sandwiched between ours."""
    k, iters = 4, 25
    m = vbgmm(XF, k)
    r0 = m._init_resp("random", np.random.default_rng(2))
    sk = _sklearn(r0, k, max_iter=iters, tol=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", SkConvergenceWarning)
        sk.fit(XF)
        res = m.fit(init=r0, maxiter=iters, tol=1e-300)
    assert sk.used_resp0 and len(sk.lower_bounds_) == iters
    assert res.convergence.n_iter == iters
    p = res.raw_params
    for ours, theirs in [(p.weight_concentration, sk.weight_concentration_),
                         (p.mean_precision, sk.mean_precision_), (p.means, sk.means_),
                         (p.degrees_of_freedom, sk.degrees_of_freedom_),
                         (p.covariances, sk.covariances_)]:
        assert _rel(ours, theirs) < 1e-10
    C = m.sklearn_constant()
    skl = np.asarray(sk.lower_bounds_) + C
    tr = res.elbo_trace
    # ours[j] = L(r_{j+1}, theta_j) <= sklearn's L(r_{j+1}, theta_{j+1}) <= ours[j+1]
    slack = 1e-11 * np.abs(skl)
    assert np.all(tr[:-1] <= skl + slack) and np.all(skl <= tr[1:] + slack)
    # and the same quantity recomputed from our pieces matches term by term
    theta = m.params_from_resp(r0)
    mine = []
    for _ in range(iters):
        st, _ = m.e_step(theta)
        theta = m.m_step(st, theta)
        mine.append(m.elbo(st, theta))
    assert _rel(mine, skl) < 1e-12


def test_sklearn_converged_faithful():
    """The fixed point of the coordinate ascent is scikit-learn's, and a default fit stops at it.

    Both iterations are run to their fixed point (400 iterations from the same start, far
    more than the ~60 that reach a relative ELBO change of 1e-15), so the comparison does not
    depend on where two different stopping rules stop.  A fit stopped by the ELBO rule is
    then compared with that fixed point to what the rule guarantees: the ELBO is flat to
    second order, so it agrees to round-off, while the parameters are only within about
    sqrt(tol) of the fixed point (the near-empty components converge slowly).
    """
    k, iters = 4, 400
    m = vbgmm(XF, k)
    r0 = m._init_resp("random", np.random.default_rng(11))
    sk = _sklearn(r0, k, tol=0.0, max_iter=iters)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkConvergenceWarning)
        sk.fit(XF)
    p = m.params_from_resp(r0)
    for _ in range(iters):
        p = m.m_step(m.e_step(p)[0], p)
    again = m.m_step(m.e_step(p)[0], p)
    assert _rel(again.means, p.means) < 1e-12          # a fixed point up to round-off
    for ours, theirs in [(p.weight_concentration, sk.weight_concentration_),
                         (p.mean_precision, sk.mean_precision_), (p.means, sk.means_),
                         (p.degrees_of_freedom, sk.degrees_of_freedom_),
                         (p.covariances, sk.covariances_)]:
        # the same fixed point up to round-off amplified by the iteration's conditioning
        assert _rel(ours, theirs) < 1e-9
    res = m.fit(init=r0, tol=1e-15, maxiter=5000)
    assert res.convergence.converged
    for name in ("weight_concentration", "means", "covariances"):
        assert _rel(getattr(res.raw_params, name), getattr(p, name)) < 1e-5
    assert res.elbo == pytest.approx(sk.lower_bound_ + m.sklearn_constant(), rel=1e-12, abs=0)
    assert _rel(res.weights.to_numpy(), sk.weights_) < 1e-6
    assert _rel(res.posterior_mean_covariances[p.degrees_of_freedom > 3],
                (sk.covariances_ * sk.degrees_of_freedom_[:, None, None]
                 / (sk.degrees_of_freedom_ - 3)[:, None, None])[p.degrees_of_freedom > 3]) < 1e-6
    np.testing.assert_allclose(res.predict_proba().to_numpy(), sk.predict_proba(XF),
                               rtol=1e-6, atol=1e-9)
    assert np.array_equal(res.predict(which="label").to_numpy() - 1, sk.predict(XF))
    # llf is the plug-in log-likelihood: the mixture density at scikit-learn's weights_,
    # means_ and covariances_ (its score_samples uses the variational expectations instead)
    from scipy import stats as sps

    dens = sum(w * sps.multivariate_normal(mu, c).pdf(XF)
               for w, mu, c in zip(sk.weights_, sk.means_, sk.covariances_, strict=True))
    assert res.llf == pytest.approx(np.log(dens).sum(), rel=1e-8)


@pytest.mark.parametrize("seed", [0, 1])
def test_superfluous_components_emptied_as_sklearn(seed):
    X = _simulated(seed)
    k = 6
    m = vbgmm(X, k)
    lab = m._kmeans(np.random.default_rng(seed))
    res = m.fit(init=lab, tol=1e-14, maxiter=5000)
    sk = _sklearn(np.eye(k)[lab], k, tol=1e-11, max_iter=5000).fit(X)
    w = res.weights.to_numpy()
    big = w > 0.05
    assert big.sum() == 3
    assert np.allclose(np.sort(w[big]), [0.2, 0.3, 0.5], atol=2e-3)
    # the empty components keep little more than their prior mass alpha_0 = 1/k
    assert np.all(res.expected_counts.to_numpy()[~big] < 1e-3)
    assert np.all(w[~big] < 1e-3)
    assert np.array_equal(sk.weights_ > 0.05, big)
    assert _rel(w, sk.weights_) < 1e-7
    assert _rel(res.raw_params.means[big], sk.means_[big]) < 1e-7


# ----------------------------------------------------------------------------------
# engine properties, results
# ----------------------------------------------------------------------------------

def test_threads_bitwise_equal():
    X = np.vstack([_simulated3d(s) for s in range(5)])        # 3750 rows: 2 kernel chunks
    m = vbgmm(X, 5)
    warnings.simplefilter("ignore", ConvergenceWarning)
    a = m.fit(init="random", seed=0, maxiter=40, n_threads=1, tol=1e-300)
    b = m.fit(init="random", seed=0, maxiter=40, n_threads=2, tol=1e-300)
    assert np.array_equal(a.elbo_trace, b.elbo_trace)
    assert np.array_equal(a.raw_params.covariances, b.raw_params.covariances)


def test_not_converged_warns():
    with pytest.warns(ConvergenceWarning):
        vbgmm(XF, 3).fit(init="random", maxiter=3)


def test_results_api_and_formula():
    df = FAITHFUL.copy()
    res = emstats.vbgmm("~ eruptions + waiting", data=df, k=3).fit(n_init=2, seed=4)
    pd.testing.assert_frame_equal(df, FAITHFUL)
    assert res.init_elbos.size == 2 and res.elbo == pytest.approx(res.init_elbos.max())
    assert res.weights.sum() == pytest.approx(1.0)
    assert list(res.means.columns) == ["eruptions", "waiting"]
    pr = res.predict_proba(df.iloc[:7])
    assert pr.shape == (7, 3) and np.allclose(pr.sum(axis=1), 1.0)
    np.testing.assert_allclose(pr.to_numpy(), res.predict_proba().to_numpy()[:7], rtol=1e-13)
    lab = res.predict(which="label")
    assert set(lab.unique()) <= {1, 2, 3}
    tab = res.posterior_table()
    assert list(tab.index[:3]) == ["weight[1]", "weight[2]", "weight[3]"]
    ok = tab["post. sd"].notna()
    assert np.all((tab["[0.025"] <= tab["post. mean"]) & (tab["post. mean"] <= tab["0.975]"]))
    assert np.all(tab.loc[ok, "post. sd"] > 0)
    text = str(res.summary())
    assert "ELBO" in text and "No standard errors" in text and "mean[1](waiting)" in text
    # an EMResults like every other: params, posterior sd as bse, credible intervals
    from emstats.inference.results import EMResults

    assert isinstance(res, EMResults) and res.cov_type == "posterior"
    assert list(res.params.index) == res.model.param_names
    np.testing.assert_allclose(res.params.to_numpy(), tab["post. mean"].to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(res.bse.to_numpy()[ok.to_numpy()],
                               tab.loc[ok, "post. sd"].to_numpy(), rtol=1e-12)
    ci = res.conf_int()
    np.testing.assert_allclose(ci.to_numpy(), tab.iloc[:, 2:].to_numpy(), rtol=1e-12)
    assert res.bic == pytest.approx(-2 * res.llf + np.log(len(df)) * (2 + 6 + 9))
    pd.testing.assert_frame_equal(
        res.predict(), pd.DataFrame(pr_all := res.predict_proba().to_numpy(), index=df.index)
        .dot(res.means.to_numpy()).set_axis(["eruptions", "waiting"], axis=1))
    assert pr_all.shape == (len(df), 3)
    with pytest.raises(ValueError, match="no sampling standard errors"):
        vbgmm(XF, 2).fit(cov_type="louis")


def test_start_params_and_squarem_reach_same_optimum():
    m = vbgmm(XF, 2)
    a = m.fit(tol=1e-14)
    b = m.fit(start_params=a.raw_params.copy(), tol=1e-14)
    assert b.convergence.n_iter <= 3
    c = m.fit(method="squarem", tol=1e-14)
    assert c.elbo == pytest.approx(a.elbo, rel=1e-12)
    assert isinstance(a.raw_params, VBParams)


# ----------------------------------------------------------------------------------
# bad input
# ----------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, match", [
    ({"k": 0}, "at least 1"),
    ({"k": 2.5}, "positive integer"),
    ({"k": 2, "weight_concentration_prior": 0.0}, "weight_concentration_prior"),
    ({"k": 2, "weight_concentration_prior": [1.0, -1.0]}, "weight_concentration_prior"),
    ({"k": 2, "weight_concentration_prior": [1.0, 1.0, 1.0]}, "length k"),
    ({"k": 2, "mean_precision_prior": 0.0}, "mean_precision_prior"),
    ({"k": 2, "mean_precision_prior": -2.0}, "mean_precision_prior"),
    ({"k": 2, "degrees_of_freedom_prior": 1.0}, "greater than d - 1"),
    ({"k": 2, "covariance_prior": [[1.0, 2.0], [2.0, 1.0]]}, "positive definite"),
    ({"k": 2, "covariance_prior": [[1.0, 0.1], [0.0, 1.0]]}, "symmetric"),
    ({"k": 2, "covariance_prior": np.eye(3)}, "2 x 2"),
    ({"k": 2, "mean_prior": [0.0]}, "mean_prior"),
    ({"k": 2, "covariance": "diag"}, "full"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        vbgmm(XF, **kwargs)


def test_nan_rows_and_bad_data():
    df = FAITHFUL.copy()
    df.loc[[3, 10], "waiting"] = np.nan
    with pytest.raises(DataError, match=r"rows 3, 10.*'waiting'"):
        vbgmm(df, 2)
    res = vbgmm(df, 2, missing="drop").fit()
    assert res.nobs == FAITHFUL.shape[0] - 2 and res.model.n_dropped == 2
    with pytest.raises(DataError, match="not numeric"):
        vbgmm(FAITHFUL.assign(s="a"), 2)
    with pytest.raises(DataError, match="singular"):
        vbgmm(FAITHFUL.assign(c=1.0), 2)
    with pytest.raises(ValueError, match="rows summing to 1"):
        vbgmm(XF, 2).fit(init=np.full((XF.shape[0], 2), 0.7))
    with pytest.raises(ValueError, match="labels"):
        vbgmm(XF, 2).fit(init=np.full(XF.shape[0], 5))


def test_a_component_without_posterior_variance_is_warned():
    """One far row forms a component: with degrees_of_freedom_prior = d - 0.5 its nu_k is
    d + 0.5 <= d + 1, the Student t of its mean has no variance; its NaN posterior standard
    deviations come with a warning naming it (an emptied component's do not: pruning)."""
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(size=(40, 3)), [[30.0, 30.0, 30.0]]])
    with pytest.warns(UserWarning, match=r"component\(s\) \[2\] has no finite variance"):
        res = vbgmm(X, k=2, degrees_of_freedom_prior=2.5).fit()
    assert res.bse.isna().sum() == 3
    assert "NaN where nu_k <= d + 1" in str(res.summary())
