"""Mixtures of factor analyzers (emstats.mfa): a direct maximisation of the observed-data
likelihood on small data, and the exact reductions (k = 1 is factor analysis; isotropic
uniquenesses with k = 1 are probabilistic PCA, whose MLE is in closed form)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import optimize
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

import emstats
from emstats.exceptions import DataError
from emstats.models.mfa import mfa

# mixtures of factor analyzers converge slowly (thousands of EM steps to 1e-12): the
# tests stop at 1e-10 and set their tolerances from it
TIGHT = dict(tol=1e-10, maxiter=5000)
LOOSE = dict(tol=1e-8, maxiter=2000)


def simulate(n, rng, d=4):
    z = rng.random(n) < 0.4
    f = rng.standard_normal((n, 1))
    L1 = np.array([1.0, 0.8, 0.6, 0.5, 0.3, 0.2])[:d]
    L2 = np.array([0.2, 0.3, 0.9, 0.8, 0.7, 0.6])[:d]
    mu2 = np.array([3.0, 3.0, 0.0, -2.0, 1.0, 2.0])[:d]
    X = np.where(z[:, None], f * L1, mu2 + f * L2) + 0.5 * rng.standard_normal((n, d))
    return X, z


@pytest.fixture(scope="module")
def small():
    rng = np.random.default_rng(5)
    X, z = simulate(150, rng)
    X[rng.random(X.shape) < 0.08] = np.nan
    return X, z


def mixture_loglik(X, w, mus, covs):
    """Observed-data log-likelihood of a Gaussian mixture, written independently."""
    keys, inv = np.unique(~np.isnan(X), axis=0, return_inverse=True)
    total = 0.0
    for p, o in enumerate(keys):
        rows = X[np.ravel(inv) == p][:, o]
        lj = np.column_stack([np.log(w[k]) + np.atleast_1d(
            multivariate_normal(mus[k][o], covs[k][np.ix_(o, o)]).logpdf(rows))
            for k in range(len(w))])
        total += logsumexp(lj, axis=1).sum()
    return float(total)


def test_local_maximum_of_direct_likelihood(small):
    X, z = small
    res = mfa(X, 2, 1).fit(n_init=2, **TIGHT)
    d = X.shape[1]

    def unpack(t):
        w = np.exp(np.r_[0.0, t[0]])
        w /= w.sum()
        mus = t[1:1 + 2 * d].reshape(2, d)
        L = t[1 + 2 * d:1 + 4 * d].reshape(2, d, 1)
        psi = np.exp(t[1 + 4 * d:]).reshape(2, d)
        covs = [L[k] @ L[k].T + np.diag(psi[k]) for k in range(2)]
        return w, mus, covs

    p = res.raw_params
    t_hat = np.concatenate([[np.log(p["weights"][1] / p["weights"][0])], p["mean"].ravel(),
                            p["loadings"].ravel(), np.log(p["uniq"]).ravel()])
    assert mixture_loglik(X, *unpack(t_hat)) == pytest.approx(res.llf, rel=1e-12)
    # a maximum of the independent likelihood: its forward-difference gradient vanishes
    # (to the step's truncation error and the stopping rule) and random steps go down
    f = lambda t: mixture_loglik(X, *unpack(t))  # noqa: E731
    g = optimize.approx_fprime(t_hat, f, 1e-6)
    assert np.max(np.abs(g)) < 5e-2
    rng = np.random.default_rng(0)
    for _ in range(5):
        step = 1e-3 * rng.standard_normal(t_hat.size)
        assert f(t_hat + step) < res.llf
    # the clusters are recovered (well separated means)
    agree = (res.predict().to_numpy() == np.where(z, 1, 2)).mean()
    assert max(agree, 1 - agree) > 0.95


def test_k1_is_factor_analysis():
    rng = np.random.default_rng(2)
    X, _ = simulate(300, rng, d=6)
    X[rng.random(X.shape) < 0.05] = np.nan
    a = mfa(X, 1, 2).fit(**TIGHT)
    b = emstats.factor_analysis(X, 2).fit(cov_type=None, **TIGHT)
    # both converge to the same maximum; stopping rule 1e-10 relative
    assert a.llf == pytest.approx(b.llf, rel=1e-8)
    np.testing.assert_allclose(a.covariances[0], b.implied_cov.to_numpy(), atol=1e-3)


def test_isotropic_k1_is_ppca_closed_form():
    rng = np.random.default_rng(3)
    X, _ = simulate(300, rng, d=6)
    res = mfa(X, 1, 2, uniq="isotropic").fit(**TIGHT)
    S = np.cov(X.T, bias=True)
    w = np.sort(np.linalg.eigvalsh(S))[::-1]
    s2 = w[2:].mean()
    assert res.uniquenesses.to_numpy()[0, 0] == pytest.approx(s2, rel=1e-4)
    ll = multivariate_normal(X.mean(0), res.covariances[0]).logpdf(X).sum()
    assert res.llf == pytest.approx(ll, rel=1e-12)


def test_common_uniquenesses_and_density(small):
    X, _ = small
    res = mfa(X, 2, 1, uniq="common").fit(n_init=2, **LOOSE)
    U = res.uniquenesses.to_numpy()
    np.testing.assert_array_equal(U[0], U[1])
    dens = res.density(log=True)
    assert dens.sum() == pytest.approx(res.llf, rel=1e-10)
    pr = res.predict_proba()
    np.testing.assert_allclose(pr.sum(axis=1), 1.0, atol=1e-12)
    # unique uniquenesses fit at least as well (nested model)
    assert mfa(X, 2, 1).fit(n_init=2, **LOOSE).llf >= res.llf - 1e-3


def test_select_bic(small):
    X, _ = small
    t = mfa(X, 1, 1).select(k=(1, 2), n_factors=(1,), n_init=2, **LOOSE)
    assert t.attrs["best"] == (2, 1)


def test_bad_input(small):
    X, _ = small
    with pytest.raises(DataError, match="n_factors=4 must be smaller"):
        mfa(X, 2, 4)
    with pytest.raises(DataError, match="n_factors=2 is not identified for 4 variables"):
        mfa(X, 2, 2)
    mfa(X, 2, 2, uniq="isotropic")         # mixtures of PPCA: 2 components of 4 are fine
    with pytest.raises(DataError, match="k must be a positive integer"):
        mfa(X, 0, 1)
    bad = X.copy()
    bad[:, 2] = np.nan
    with pytest.raises(DataError, match="entirely missing"):
        mfa(bad, 2, 1)
    with pytest.raises(ValueError, match="uniq"):
        mfa(X, 2, 1, uniq="spherical")


def _unpack_inference(t, k, d, q, uniq):
    """(weights, means, covariances) from the inference coordinates, written from the
    documented order: weights 2..k (the first is one minus their sum), means, free
    loadings (the top q x q block lower triangular), uniquenesses (natural scale)."""
    w = np.r_[1.0 - t[:k - 1].sum(), t[:k - 1]]
    pos = k - 1
    mus = t[pos:pos + k * d].reshape(k, d)
    pos += k * d
    free = np.ones((d, q), dtype=bool)
    free[:q][np.triu_indices(q, 1)] = False
    nf = int(free.sum())
    L = np.zeros((k, d, q))
    for j in range(k):
        L[j][free] = t[pos + j * nf:pos + (j + 1) * nf]
    pos += k * nf
    if uniq == "unique":
        psi = t[pos:].reshape(k, d)
    elif uniq == "common":
        psi = np.tile(t[pos:], (k, 1))
    else:
        psi = np.repeat(t[pos:, None], d, axis=1)
    covs = [L[j] @ L[j].T + np.diag(psi[j]) for j in range(k)]
    return w, mus, covs


@pytest.mark.parametrize("uniq,q", [("unique", 1), ("common", 1), ("isotropic", 1)])
def test_louis_information_matches_numerical_hessian(small, uniq, q):
    """Louis' observed information (complete minus missing, the labels, factors and
    missing coordinates as the missing data) against central second differences of the
    independently written observed-data log-likelihood."""
    from statsmodels.tools.numdiff import approx_hess3

    X, _ = small
    k, d = 2, X.shape[1]
    res = mfa(X, k, q, uniq=uniq).fit(n_init=2, **TIGHT)
    assert res.cov_type == "louis"
    t_hat = res.params.to_numpy()
    keys, inv = np.unique(~np.isnan(X), axis=0, return_inverse=True)
    parts = [X[np.ravel(inv) == p][:, o] for p, o in enumerate(keys)]

    def f(t):
        """The mixture likelihood again, by Cholesky factors (fast enough for the
        ~1500 evaluations of the Hessian)."""
        w, mus, covs = _unpack_inference(t, k, d, q, uniq)
        if np.any(w <= 0):
            return -np.inf
        total = 0.0
        for o, rows in zip(keys, parts, strict=True):
            lj = np.empty((rows.shape[0], k))
            for j in range(k):
                C = np.linalg.cholesky(covs[j][np.ix_(o, o)])
                z = np.linalg.solve(C, (rows - mus[j][o]).T)
                lj[:, j] = np.log(w[j]) - 0.5 * (z ** 2).sum(axis=0) \
                    - np.log(np.diag(C)).sum() - 0.5 * o.sum() * np.log(2 * np.pi)
            total += logsumexp(lj, axis=1).sum()
        return float(total)

    assert f(t_hat) == pytest.approx(res.llf, rel=1e-12)
    assert mixture_loglik(X, *_unpack_inference(t_hat, k, d, q, uniq)) == \
        pytest.approx(res.llf, rel=1e-12)
    # step 1e-4: truncation error O(h^2) ~ 1e-8, rounding ~ 1e-16 |llf| / h^2 ~ 1e-5
    # absolute against information entries of order 10-1000
    H = -approx_hess3(t_hat, f, epsilon=1e-4)
    model = res.model
    _, score, pieces = model.louis_from_stats(res.raw_params, model.chunk_louis(
        res.raw_params, model.data.chunks(1)[0]))
    info = pieces.observed
    scale = np.abs(H).max()
    assert np.max(np.abs(info - H)) < 1e-4 * scale
    np.testing.assert_allclose(res.bse.to_numpy(),
                               np.sqrt(np.diag(np.linalg.inv(H))), rtol=1e-4)
    # Louis' score is the observed-data gradient (zero at the MLE to the stopping rule)
    g = np.array([(f(t_hat + 1e-6 * e) - f(t_hat - 1e-6 * e)) / 2e-6
                  for e in np.eye(t_hat.size)])
    np.testing.assert_allclose(score, g, atol=1e-5 * scale)
    # the per-row scores add up to the score
    rows = model.chunk_scores(res.raw_params, model.data.chunks(1)[0])
    np.testing.assert_allclose(rows.sum(axis=0), score, atol=1e-9 * scale)


@pytest.fixture(scope="module")
def groups():
    """Two separated one-factor groups (uniquenesses 0.36), 5% missing: EM converges in
    some tens of steps, so AECM can be run to tol 1e-10 in a test."""
    rng = np.random.default_rng(1)

    def group(n, mu, lam):
        return mu + rng.normal(size=(n, 1)) * lam + rng.normal(size=(n, 4)) * 0.6

    X = np.vstack([group(120, 0.0, np.array([1.0, 0.8, 0.6, 0.9])),
                   group(80, 3.0, np.array([0.7, -0.9, 1.0, 0.5]))])
    X[rng.random(X.shape) < 0.05] = np.nan
    return X


# the stopping rule's threshold at TIGHT: 1e-10 * min(1 + |llf|, 10); the estimate is
# asymptotic, so the log-likelihoods of two schemes may differ by a few thresholds
AECM_LLF = 5 * 1e-10 * 10


@pytest.mark.parametrize("uniq", ["unique", "isotropic"])
def test_aecm_is_monotone_and_reaches_the_default_maximum(groups, uniq):
    """AECM (weights and means, then loadings and uniquenesses, an E-step before each)
    with values missing: the log-likelihood never decreases, after either cycle, and the
    fit ends at the default scheme's maximum."""
    m = mfa(groups, 2, 1, uniq=uniq)
    res = m.fit(method="aecm", n_init=2, cov_type=None, **TIGHT)
    ref = m.fit(n_init=2, cov_type=None, **TIGHT)
    conv = res.convergence
    assert conv.converged and conv.method == "aecm" and conv.n_decreases == 0
    start = conv.extra["start_iterations"]          # the short EM runs of the starts
    trace = conv.loglik[start:]
    roundoff = 1e-13 * abs(res.llf)
    assert np.all(np.diff(trace) >= -roundoff)
    cyc = conv.extra["cycle_loglik"]                # after cycle 1, after cycle 2
    assert cyc.shape == (conv.n_iter - start, 2)
    assert np.all(cyc[:, 1] - cyc[:, 0] >= -roundoff)
    assert np.all(cyc[:, 0] - np.r_[trace[0], cyc[:-1, 1]] >= -roundoff)
    assert abs(res.llf - ref.llf) < AECM_LLF
    # parameters to about the square root of the log-likelihood's accuracy
    np.testing.assert_allclose(res.covariances, ref.covariances, atol=1e-3)
    np.testing.assert_allclose(res.means.to_numpy(), ref.means.to_numpy(), atol=1e-3)
    # two E-steps per iteration
    assert conv.n_em_steps == start + 2 * (conv.n_iter - start)


def test_aecm_k1_is_factor_analysis(groups):
    """With one component the weights are fixed and cycle 1 is the mean; AECM ends at the
    factor analysis maximum (missing values included)."""
    X = groups[:120]
    a = mfa(X, 1, 1).fit(method="aecm", cov_type=None, **TIGHT)
    b = emstats.factor_analysis(X, 1).fit(cov_type=None, **TIGHT)
    assert a.convergence.converged
    assert abs(a.llf - b.llf) < AECM_LLF
    np.testing.assert_allclose(a.covariances[0], b.implied_cov.to_numpy(), atol=1e-3)


def test_aecm_needs_cycles():
    """A model without AECM cycles says which methods apply."""
    model = emstats.poisson_mixture(np.array([0, 1, 1, 2, 3, 5, 8, 9, 10, 12]), k=2)
    with pytest.raises(ValueError, match="no AECM cycles"):
        model.fit(method="aecm")
