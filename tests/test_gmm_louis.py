"""Louis' standard errors of the Gaussian mixtures whose covariances are not linear in their
free parameters (VEI, EVI, EEV, VEV, EVV, VEE, EVE, VVE): volumes and shapes on their own
scale and Cayley coordinates of the orientations, against a numerical Hessian of the
observed log-likelihood, the score against a numerical gradient, and the analytic
derivatives of the covariance map against finite differences."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from statsmodels.tools.numdiff import approx_hess3

import emstats
from emstats.models.gmm import gmm

FAITHFUL = emstats.datasets.load("faithful")
NONLINEAR = ("VEI", "EVI", "EEV", "VEV", "EVV", "VEE", "EVE", "VVE")


def _sim3(seed=1):
    rng = np.random.default_rng(seed)
    a = rng.normal(0, 1, (150, 3))
    b = rng.normal(3, 0.7, (100, 3)) @ np.array([[1, 0.3, 0], [0, 1, 0.2], [0, 0, 1]])
    return np.vstack([a, b])


DATA = {"faithful2": (FAITHFUL, 2), "sim3d": (_sim3(), 2), "faithful3": (FAITHFUL, 3)}


def _gradient(f, x, h=1e-5):
    """Fourth-order central differences (the log-likelihood is strongly curved in the
    volumes away from the MLE, where plain central differences are off by 1e-4)."""
    g = np.empty(x.size)
    for j, e in enumerate(np.eye(x.size)):
        g[j] = (-f(x + 2 * h * e) + 8 * f(x + h * e) - 8 * f(x - h * e)
                + f(x - 2 * h * e)) / (12 * h)
    return g


@pytest.mark.parametrize("cov", NONLINEAR)
@pytest.mark.parametrize("which", ["faithful2", "sim3d"])
def test_louis_equals_numerical_hessian(which, cov):
    data, k = DATA[which]
    m = gmm(data, k=k, covariance=cov)
    res = m.fit(tol=1e-13, n_init=2, cov_type="louis")
    assert res.cov_type == "louis"
    theta = res.params.to_numpy()
    H = -approx_hess3(theta, m.loglike_inference)
    score, pieces = m.score_and_louis(m.from_inference(theta))
    assert np.max(np.abs(pieces.observed - H)) <= 1e-4 * np.max(np.abs(H))
    np.testing.assert_allclose(res.bse.to_numpy(), np.sqrt(np.diag(np.linalg.inv(H))),
                               rtol=1e-4)
    # the score vanishes at the MLE (relative to the information's scale)
    assert np.max(np.abs(score)) < 1e-4 * np.sqrt(np.max(np.abs(H)))
    # the complete information dominates the missing one (EM's rate lies in [0, 1))
    assert 0.0 <= pieces.fraction_missing() < 1.0


@pytest.mark.parametrize("cov", ["VEV", "EVE", "VVE", "EVI"])
def test_louis_three_components(cov):
    m = gmm(FAITHFUL, k=3, covariance=cov)
    res = m.fit(tol=1e-13, n_init=2, cov_type="louis")
    theta = res.params.to_numpy()
    H = -approx_hess3(theta, m.loglike_inference)
    assert np.max(np.abs(m.louis(m.from_inference(theta)).observed - H)) <= (
        1e-4 * np.max(np.abs(H)))


@pytest.mark.parametrize("cov", NONLINEAR)
def test_score_is_the_gradient_away_from_the_mle(cov):
    m = gmm(_sim3(), k=2, covariance=cov)
    p = m._init_kmeans(np.random.default_rng(3))
    p = m.m_step(m.e_step(p)[0], p)                   # a point with this structure
    th = m.to_inference(p)
    rng = np.random.default_rng(5)                    # moved away from the EM path
    th[m.K - 1:] *= 1.0 + 0.05 * rng.standard_normal(th.size - m.K + 1)
    g = _gradient(m.loglike_inference, th)
    np.testing.assert_allclose(m.score(m.from_inference(th)), g,
                               atol=1e-4 * np.max(np.abs(g)))


@pytest.mark.parametrize("cov", NONLINEAR)
def test_map_derivatives_match_finite_differences(cov):
    m = gmm(_sim3(), k=3, covariance=cov)
    st = m.structure
    p = m._init_kmeans(np.random.default_rng(0))
    p = m.m_step(m.e_step(p)[0], p)
    v = st.to_inf(p.covariances)
    np.testing.assert_allclose(st.from_inf(v), p.covariances, atol=1e-12)
    h = 1e-4
    P = v.size
    J = st.jacobian(v)
    Jn = np.stack([(st.from_inf(v + h * e) - st.from_inf(v - h * e)) / (2 * h)
                   for e in np.eye(P)], axis=-1)
    scale = np.max(np.abs(Jn))
    assert np.max(np.abs(J - Jn)) < 1e-6 * scale
    H = np.zeros((m.K, m.d, m.d, P, P))
    for k, (loc, _, Hl) in enumerate(st.derivatives(v)):
        H[k][:, :, loc[:, None], loc[None, :]] = np.moveaxis(Hl, (0, 1), (-2, -1))
    h = 2e-4
    E = np.eye(P)
    for i in range(P):
        for j in range(i, P):
            a, b = h * E[i], h * E[j]
            fd = (st.from_inf(v + a + b) - st.from_inf(v + a - b) - st.from_inf(v - a + b)
                  + st.from_inf(v - a - b)) / (4 * h * h)
            assert np.max(np.abs(H[..., i, j] - fd)) < 1e-5 * scale, (i, j)
            assert np.max(np.abs(H[..., i, j] - H[..., j, i])) < 1e-13 * scale


def test_inference_coordinates_are_volumes_shapes_orientations():
    res = gmm(FAITHFUL, k=2, covariance="VVE").fit(cov_type="louis")
    for k in (1, 2):
        S = res.covariance(k).to_numpy()
        lam = np.linalg.det(S) ** 0.5
        assert np.isclose(res.params[f"volume[{k}]"], lam, rtol=1e-10)
    # common orientation: the principal axes of component 1; the shape of axis 1 is the
    # largest eigenvalue over the volume
    w = np.linalg.eigvalsh(res.covariance(1).to_numpy())
    assert np.isclose(res.params["shape[1](axis1)"], w[-1] / np.sqrt(np.prod(w)), rtol=1e-10)
    # 2-D Cayley coordinate s = tan(phi / 2): the first axis is (cos phi, -sin phi)
    s = res.params["rotation(eruptions,waiting)"]
    phi = 2 * np.arctan(s)
    v = np.linalg.eigh(res.covariance(1).to_numpy())[1][:, -1]
    assert np.isclose(abs(v @ [np.cos(phi), -np.sin(phi)]), 1.0, atol=1e-10)
    names = list(res.params.index)
    assert names[5:] == ["volume[1]", "volume[2]", "shape[1](axis1)", "shape[2](axis1)",
                         "rotation(eruptions,waiting)"]


def test_covariance_element_standard_errors_by_the_delta_method():
    # linear structure: the elements are the coordinates
    res = gmm(FAITHFUL, k=2, covariance="VVV").fit()
    se = res.covariances_se
    assert np.isclose(se.loc[(2, "waiting"), "eruptions"], res.bse["cov[2](eruptions,waiting)"],
                      rtol=1e-12)
    assert np.isclose(se.loc[(1, "waiting"), "waiting"], res.bse["var[1](waiting)"],
                      rtol=1e-12)
    # nonlinear structure: against a numerical Jacobian of the map to the covariances
    m = gmm(FAITHFUL, k=2, covariance="EVV")
    res = m.fit(cov_type="louis")
    th = res.params.to_numpy()
    h = 1e-6
    Jn = np.stack([(m.from_inference(th + h * e).covariances
                    - m.from_inference(th - h * e).covariances).ravel() / (2 * h)
                   for e in np.eye(th.size)], axis=1)
    V = res.cov_params().to_numpy()
    ref = np.sqrt(np.einsum("ip,pq,iq->i", Jn, V, Jn)).reshape(4, 2)
    np.testing.assert_allclose(res.covariances_se.to_numpy(), ref, rtol=1e-6)


def test_newton_with_louis_for_a_nonlinear_structure():
    a = gmm(FAITHFUL, k=2, covariance="VEV").fit(method="em", tol=1e-12)
    b = gmm(FAITHFUL, k=2, covariance="VEV").fit(method="newton", tol=1e-12,
                                                  cov_type="louis")
    assert abs(a.llf - b.llf) < 1e-8 * abs(a.llf)
    assert b.convergence.converged and b.convergence.method == "newton"
    c = gmm(FAITHFUL, k=2, covariance="VEV").fit(method="em", tol=1e-12,
                                                 cov_type="numerical")
    np.testing.assert_allclose(b.bse, c.bse, rtol=1e-4)


def test_large_default_fit_is_squarem_then_one_louis_pass():
    """Above NEWTON_MAX_ROWS complete rows (or NEWTON_MAX_PARAMS parameters) the default
    scheme is SQUAREM (the standard errors from one Louis pass at its estimate); it reaches
    the maximum Louis-Newton reaches from the same start, with the same standard errors."""
    from emstats.models.gmm import NEWTON_MAX_PARAMS, NEWTON_MAX_ROWS

    rng = np.random.default_rng(7)
    n = NEWTON_MAX_ROWS + 5_000
    X = np.vstack([rng.normal(0, 1, (n // 2, 2)),
                   rng.normal(2.5, 0.8, (n - n // 2, 2)) @ np.array([[1, 0.4], [0, 1]])])
    assert gmm(X[:NEWTON_MAX_ROWS], k=2).preferred_method is None
    # and on few rows with more than NEWTON_MAX_PARAMS free parameters
    wide = gmm(rng.normal(size=(500, 6)), k=3)
    assert wide.n_free > NEWTON_MAX_PARAMS and wide.preferred_method == "squarem"
    m = gmm(X, k=2)
    assert m.preferred_method == "squarem"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")      # a start three EM steps from the k-means one
        start = m.fit(method="em", maxiter=3, cov_type=None, n_init=1).params
    start = m.from_inference(start.to_numpy())
    a = gmm(X, k=2).fit(start_params=start, tol=1e-12)
    b = gmm(X, k=2).fit(start_params=start, tol=1e-12, method="newton")
    assert a.convergence.method == "squarem" and a.convergence.converged
    assert abs(a.llf - b.llf) < 1e-10 * abs(b.llf)
    assert np.max(np.abs(a.params - b.params) / b.bse) < 1e-4
    np.testing.assert_allclose(a.bse, b.bse, rtol=1e-5)
