"""Gaussian mixture models: emstats.gmm against mclust and mixtools, Louis vs numerical
Hessian, EM properties, prediction, model selection and bad input."""

from __future__ import annotations

import os
import runpy
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
from results.fixtures import load_fixture
from scipy import stats
from statsmodels.tools.numdiff import approx_hess3

import emstats
from emstats.exceptions import DataError
from emstats.models.gmm import (
    STRUCTURES,
    DegenerateComponentWarning,
    GMMParams,
    gmm,
    gmm_select,
)

FX = load_fixture("gmm_faithful")
FAITHFUL = emstats.datasets.load("faithful")
LINEAR = ("VVV", "EEE", "VVI", "VII", "EII", "EEI")
HC = {int(k): np.asarray(v) for k, v in FX["hc_classes"].items()}


def _sorted_ref(ref):
    mu = np.array(ref["mean"])
    o = np.lexsort(mu.T[::-1])
    return np.array(ref["pro"])[o], mu[o], np.array(ref["sigma"])[o]


def _rel(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-300)))


# -- mclust --------------------------------------------------------------------------

@pytest.mark.parametrize("cov", [c for c in STRUCTURES if c != "VVE"])
def test_mclust_bic_table_from_hc_partitions(cov):
    """EM from mclust's initial partitions reaches mclust's log-likelihood and BIC."""
    for k in range(1, 6):
        m = gmm(FAITHFUL, k=k, covariance=cov)
        assert m.n_free == FX["npar"][cov][k - 1]
        ll = m.fit(init=HC[k], method="em", maxiter=100000, tol=1e-13, cov_type=None).llf
        assert _rel(ll, FX["loglik"][cov][k - 1]) < 1e-8, (cov, k)
        bic = 2 * ll - m.n_free * np.log(272)
        assert _rel(bic, FX["bic"][cov][k - 1]) < 1e-8


def test_vve_improves_on_mclust():
    """mclust's VVE estimates are not EM fixed points (its M-step for the common orientation
    is inexact): one exact EM step from mclust's k = 2 estimate raises the log-likelihood by
    0.07 and lands on our fit, which is at least as good for every k."""
    for k in range(1, 6):
        m = gmm(FAITHFUL, k=k, covariance="VVE")
        assert m.n_free == FX["npar"]["VVE"][k - 1]
        ll = m.fit(init=HC[k], method="em", maxiter=100000, tol=1e-13, cov_type=None).llf
        assert ll >= FX["loglik"]["VVE"][k - 1] - 1e-9 * abs(ll)
        if k == 2:
            ours = ll
    ref = FX["vve"]
    m = gmm(FAITHFUL, k=2, covariance="VVE")
    p = GMMParams(np.array(ref["pro"]), np.array(ref["mean"]), np.array(ref["sigma"]))
    assert _rel(m.loglike(p), ref["loglik"]) < 1e-12
    stats_, _ = m.e_step(p)
    ll1 = m.loglike(m.m_step(stats_, p))
    assert ll1 - ref["loglik"] > 0.05
    assert _rel(ll1, ours) < 1e-6


def test_gmm_select_reproduces_mclust_table():
    sel = gmm_select(FAITHFUL, k=range(1, 6), covariance=LINEAR, init=HC, tol=1e-13,
                     method="em")
    tab = sel.bic_table
    for cov in LINEAR:
        np.testing.assert_allclose(tab[cov].to_numpy(), FX["bic"][cov], rtol=1e-8)
    ref = pd.DataFrame({c: FX["bic"][c] for c in LINEAR}, index=range(1, 6))
    best_cov = ref.max().idxmax()
    assert (sel.best.covariance_type, sel.best.k) == (best_cov, int(ref[best_cov].idxmax()))
    assert np.isclose(sel.best.bic_mclust, ref.to_numpy().max(), rtol=1e-8)
    # both sign conventions in the table
    np.testing.assert_allclose(sel.table["bic_min"], -sel.table["bic"])
    assert (sel.table["icl"] <= sel.table["bic"] + 1e-9).all()


@pytest.mark.parametrize("k", [2, 3])
def test_vvv_parameters_match_mclust(k):
    """Same start as mclust, tolerance 1e-11: the same maximum.

    mclust stops on the last relative change (1e-11); emstats on the estimated distance to
    the maximum, so it goes on where EM is slow (k = 3: a small component, rate near 1)
    and ends at least as high.  mclust's early stop leaves its log-likelihood some 1e-7
    short there, and a log-likelihood gap g leaves the parameters off by about
    sqrt(2 g / curvature): 1e-4 relative, hence the parameter tolerances.
    """
    ref = FX["vvv"][str(k)]
    res = gmm(FAITHFUL, k=k).fit(init=HC[k], tol=1e-11, method="em")
    pro, mu, sig = _sorted_ref(ref)
    assert _rel(res.llf, ref["loglik"]) < 1e-9
    assert res.llf >= ref["loglik"] - 1e-12 * abs(ref["loglik"])
    assert _rel(res.weights, pro) < 1e-3
    assert _rel(res.means, mu) < 1e-4
    assert _rel(res.covariances.to_numpy().reshape(k, 2, 2), sig) < 1e-3
    assert _rel(res.bic_mclust, ref["bic"]) < 1e-8
    # converged further, the estimates move by a negligible fraction of a standard error
    tight = gmm(FAITHFUL, k=k).fit(init=HC[k], tol=1e-14, method="squarem")
    assert tight.llf >= ref["loglik"] - 1e-9 * abs(ref["loglik"])
    th_ref = tight.model.to_inference(GMMParams(pro, mu, sig))
    assert np.max(np.abs(tight.params.to_numpy() - th_ref) / tight.bse.to_numpy()) < 1e-2


def test_vvv_kmeans_start_reaches_mclust():
    """k-means++ starts find mclust's maximum for k = 2 and at least as good for k = 3."""
    r2 = gmm(FAITHFUL, k=2).fit(init="kmeans++")
    assert _rel(r2.llf, FX["vvv"]["2"]["loglik"]) < 1e-6
    r3 = gmm(FAITHFUL, k=3).fit(init="kmeans++", n_init=5, seed=1)
    assert r3.llf >= FX["vvv"]["3"]["loglik"] - 1e-6
    assert len(r3.init_logliks) == 5


@pytest.mark.parametrize("k", [2, 3])
def test_map_prior_matches_mclust(k):
    ref = FX["vvv_prior"][str(k)]
    pr = ref["prior"]
    m = gmm(FAITHFUL, k=k, prior=True)
    np.testing.assert_allclose(m.prior["scale"], np.array(pr["scale"]), rtol=1e-12)
    np.testing.assert_allclose(m.prior["mean"], list(pr["mean"].values()), rtol=1e-12)
    assert m.prior["dof"] == pr["dof"] and m.prior["shrinkage"] == pr["shrinkage"]
    res = m.fit(init=HC[k], tol=1e-13)
    pro, mu, sig = _sorted_ref(ref)
    assert _rel(res.means, mu) < 1e-5
    assert _rel(res.covariances.to_numpy().reshape(k, 2, 2), sig) < 1e-4
    assert _rel(res.weights, pro) < 1e-4
    # mclust reports the log-likelihood (without the prior) at the MAP estimate
    assert _rel(res.llf, ref["loglik"]) < 1e-6
    assert res.log_posterior > -np.inf


@pytest.mark.parametrize("cov", ["EEE", "VVI", "VII"])
def test_map_prior_other_structures_match_mclust(cov):
    ref = FX["prior_other"][cov]
    pr = ref["prior"]
    m = gmm(FAITHFUL, k=2, covariance=cov, prior=True)
    np.testing.assert_allclose(m.prior["scale"], np.array(pr["scale"]), rtol=1e-12)
    assert m.prior["dof"] == pr["dof"]
    res = m.fit(init=HC[2], tol=1e-13)
    pro, mu, sig = _sorted_ref(ref)
    assert _rel(res.means, mu) < 1e-5
    assert _rel(np.diagonal(res.covariances.to_numpy().reshape(2, 2, 2), axis1=1, axis2=2),
                np.diagonal(sig, axis1=1, axis2=2)) < 1e-5
    assert _rel(res.weights, pro) < 1e-5
    assert _rel(res.llf, ref["loglik"]) < 1e-8
    assert res.convergence.n_decreases == 0


def test_prior_not_available_for_other_structures():
    with pytest.raises(ValueError, match="prior= is implemented for"):
        gmm(FAITHFUL, k=2, covariance="EII", prior=True)


@pytest.mark.parametrize("case,cov", [("unequal", "V"), ("equal", "E")])
def test_mixtools_normalmixem(case, cov):
    ref = FX["mixtools"][case]
    start = {"weights": [0.5, 0.5], "means": [[55.0], [80.0]],
             "covariances": [[[36.0]], [[36.0]]]}
    res = gmm(FAITHFUL[["waiting"]], k=2, covariance=cov).fit(start_params=start, tol=1e-14)
    assert _rel(res.llf, ref["loglik"]) < 1e-8
    assert _rel(res.weights, ref["lambda"]) < 1e-5
    assert _rel(res.means.to_numpy().ravel(), ref["mu"]) < 1e-6
    sd = np.sqrt(res.covariances.to_numpy().ravel())
    assert _rel(sd, ref["sigma"]) < 1e-5


# -- Louis' standard errors ---------------------------------------------------------

def _sim3(seed=1):
    rng = np.random.default_rng(seed)
    a = rng.normal(0, 1, (150, 3))
    b = rng.normal(3, 0.7, (100, 3)) @ np.array([[1, 0.3, 0], [0, 1, 0.2], [0, 0, 1]])
    return np.vstack([a, b])


@pytest.mark.parametrize("cov", LINEAR)
@pytest.mark.parametrize("which", ["faithful2", "faithful3", "sim3d", "waiting"])
def test_louis_equals_numerical_hessian(which, cov):
    data, k = {"faithful2": (FAITHFUL, 2), "faithful3": (FAITHFUL, 3),
               "sim3d": (_sim3(), 2), "waiting": (FAITHFUL[["waiting"]], 2)}[which]
    m = gmm(data, k=k, covariance=cov)
    res = m.fit(tol=1e-13, n_init=2)
    theta = res.params.to_numpy()
    H = -approx_hess3(theta, m.loglike_inference)
    score, pieces = m.score_and_louis(m.from_inference(theta))
    info = pieces.observed
    assert np.max(np.abs(info - H)) <= 1e-4 * np.max(np.abs(H))
    np.testing.assert_allclose(res.bse.to_numpy(), np.sqrt(np.diag(np.linalg.inv(H))),
                               rtol=1e-4)
    assert res.cov_type == "louis"


def test_louis_score_is_the_gradient():
    m = gmm(FAITHFUL, k=2, covariance="VVV")
    p = m._init_kmeans(np.random.default_rng(3))           # away from the MLE
    from statsmodels.tools.numdiff import approx_fprime
    th = m.to_inference(p)
    g = approx_fprime(th, m.loglike_inference, centered=True)
    np.testing.assert_allclose(m.score(p), g, rtol=1e-5, atol=1e-6 * np.abs(g).max())


def test_nonlinear_structure_uses_louis():
    res = gmm(FAITHFUL, k=2, covariance="VEV").fit()
    assert res.cov_type == "louis"
    assert np.all(np.isfinite(res.bse))
    assert res.param_names[:1] == ["weight[2]"]


# -- EM properties ----------------------------------------------------------------------

@pytest.mark.filterwarnings("ignore::statsmodels.tools.sm_exceptions.ConvergenceWarning")
@pytest.mark.parametrize("cov", ["VVV", "EEE", "VEI", "EEV", "VEE", "VEV", "EVE", "VVE"])
def test_em_loglik_never_decreases(cov):
    res = gmm(FAITHFUL, k=3, covariance=cov).fit(init=HC[3], n_init=1, maxiter=300,
                                                 method="em", cov_type=None)
    ll = res.convergence.loglik
    assert np.all(np.diff(ll) >= -1e-9 * np.abs(ll[1:]))
    assert res.convergence.n_decreases == 0


def test_threads_bitwise_equal_and_kernel_stats():
    from emstats.em.problem import Problem

    rng = np.random.default_rng(7)
    X = np.vstack([rng.normal(0, 1, (4000, 4)), rng.normal(2, 0.5, (3000, 4))])
    for cov in ("VVV", "VVI"):
        m = gmm(X, k=3, covariance=cov)
        p = m._init_kmeans(np.random.default_rng(0))
        out = []
        for nt in (1, 2):
            st, ll = Problem(m, nt).e_step(p)
            out.append((m.moments_about(st, p.means), ll))   # sums about the means
        assert out[0][1] == out[1][1]
        for a, b in ((out[0][0]["N"], out[1][0]["N"]), (out[0][0]["S2"], out[1][0]["S2"]),
                     (out[0][0]["S1"], out[1][0]["S1"])):
            assert np.array_equal(a, b)
        # against a direct computation
        st, ll = out[0]
        logp = np.column_stack([
            np.log(p.weights[k]) + stats.multivariate_normal(p.means[k], p.covariances[k])
            .logpdf(X) for k in range(3)])
        lse = np.logaddexp.reduce(logp, axis=1)
        r = np.exp(logp - lse[:, None])
        assert np.isclose(ll, lse.sum(), rtol=1e-12)
        np.testing.assert_allclose(st["N"], r.sum(axis=0), rtol=1e-11)
        for k in range(3):
            e = X - p.means[k]
            np.testing.assert_allclose(st["S1"][k], r[:, k] @ e, rtol=1e-9, atol=1e-8)
            S2 = e.T @ (e * r[:, k:k + 1])
            if cov == "VVI":
                S2 = np.diag(np.diag(S2))
            np.testing.assert_allclose(st["S2"][k], S2, rtol=1e-10, atol=1e-8)


@pytest.mark.filterwarnings("ignore::emstats.inference.covariance.InformationWarning")
def test_not_converged_warns():
    from statsmodels.tools.sm_exceptions import ConvergenceWarning

    with pytest.warns(ConvergenceWarning, match="did not converge"):
        res = gmm(FAITHFUL, k=3).fit(n_init=1, maxiter=3)
    assert not res.convergence.converged
    assert np.all(np.isfinite(res.params))


def test_squarem_same_optimum():
    a = gmm(FAITHFUL, k=2).fit(method="em", tol=1e-13)
    b = gmm(FAITHFUL, k=2).fit(method="squarem", tol=1e-13)
    assert _rel(a.llf, b.llf) < 1e-11
    np.testing.assert_allclose(a.params, b.params, rtol=1e-5)


def test_label_order_is_deterministic():
    """Components come out sorted by their first mean coordinate, whatever the start."""
    fits = [gmm(FAITHFUL, k=2).fit(n_init=1, seed=s) for s in range(3)]
    fits.append(gmm(FAITHFUL, k=2).fit(init=3 - HC[2]))
    for r in fits:
        assert list(r.means["eruptions"]) == sorted(r.means["eruptions"])
        np.testing.assert_allclose(r.params, fits[0].params, rtol=1e-5)


def test_pack_unpack_roundtrip_all_structures():
    X = _sim3(4)
    for cov in STRUCTURES:
        m = gmm(X, k=3, covariance=cov)
        p = m._init_kmeans(np.random.default_rng(0))
        for f, g in ((m.pack, m.unpack), (m.to_inference, m.from_inference)):
            q = g(f(p))
            np.testing.assert_allclose(q.covariances, p.covariances, atol=1e-12)
            np.testing.assert_allclose(q.means, p.means)
            np.testing.assert_allclose(q.weights, p.weights, atol=1e-15)


# -- results ----------------------------------------------------------------------------

def test_results_objects_predict_and_sample():
    res = gmm("~ eruptions + waiting", data=FAITHFUL, k=2).fit()
    assert list(res.means.columns) == ["eruptions", "waiting"]
    assert res.weights.sum() == pytest.approx(1.0)
    assert res.covariance(1).shape == (2, 2)
    assert len(res.params) == res.n_free == 11
    assert np.isclose(res.weights_se.iloc[0], res.weights_se.iloc[1])
    pp = res.predict_proba()
    np.testing.assert_allclose(pp.sum(axis=1), 1.0)
    assert (res.predict(which="label") == pp.to_numpy().argmax(axis=1) + 1).all()
    pd.testing.assert_frame_equal(res.predict(), pd.DataFrame(
        pp.to_numpy() @ res.means.to_numpy(), index=pp.index, columns=res.means.columns))
    # log-density against scipy
    p = res.raw_params
    new = pd.DataFrame({"eruptions": [2.0, 4.5], "waiting": [50.0, 85.0]})
    dens = sum(p.weights[k] * stats.multivariate_normal(p.means[k], p.covariances[k]).pdf(
        new.to_numpy()) for k in range(2))
    np.testing.assert_allclose(np.exp(res.score_samples(new)), dens, rtol=1e-12)
    assert res.score_samples().sum() == pytest.approx(res.llf, rel=1e-12)
    assert list(res.predict(new, which="label")) == [1, 2]
    x1, c1 = res.sample(500, seed=3)
    x2, c2 = res.sample(500, seed=3)
    assert x1.equals(x2) and (c1 == c2).all() and x1.shape == (500, 2)
    s = str(res.summary())
    assert "weight[2]" in s and "BIC (mclust)" in s
    assert res.bic_mclust == pytest.approx(-res.bic)
    assert res.icl <= res.bic_mclust


def test_plot_density_marginal_matches_two_variable_fit():
    """The contours of a 3-variable fit use the 2-D marginal mixture."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    res = gmm(_sim3(), k=2, covariance="VVV").fit(n_init=1)
    pts = np.array([[0.0, 0.5], [3.0, 2.5], [1.0, -1.0]])
    p = res.raw_params
    ref = sum(p.weights[k] * stats.multivariate_normal(
        p.means[k, [0, 2]], p.covariances[k][np.ix_([0, 2], [0, 2])]).pdf(pts) for k in range(2))
    np.testing.assert_allclose(res._marginal_density(pts, [0, 2]), ref, rtol=1e-12)
    r2 = gmm(FAITHFUL, k=2).fit(n_init=1)
    new = np.array([[2.0, 50.0], [4.0, 80.0]])
    np.testing.assert_allclose(r2._marginal_density(new, [0, 1]),
                               np.exp(r2.score_samples(new)), rtol=1e-12)
    fig, ax = plt.subplots()
    res.plot_density(ax=ax, variables=("x0", "x2"), grid=30)
    assert ax.get_xlabel() == "x0" and ax.get_ylabel() == "x2"
    with pytest.raises(ValueError, match="two different variables"):
        res.plot_density(ax=ax, variables=(0, 0))
    plt.close(fig)


def test_caller_frame_not_modified():
    df = FAITHFUL.copy()
    df.loc[3, "waiting"] = np.nan
    before = df.copy()
    gmm(df, k=2, missing="drop").fit(n_init=1)
    pd.testing.assert_frame_equal(df, before)


# -- degeneracy and bad input -------------------------------------------------------------

def test_collapsing_component_warns_and_stays_finite():
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(size=(100, 2)), np.tile([[5.0, 5.0]], (30, 1)),
                   [[5.0, 5.0 + 1e-9]]])
    with pytest.warns(DegenerateComponentWarning, match="collapsed"):
        res = gmm(X, k=2).fit(n_init=1, init=np.r_[np.zeros(100), np.ones(31)])
    assert np.all(np.isfinite(res.params)) and np.isfinite(res.llf)
    assert res.collapsed
    # the conjugate prior keeps it regular (MAP-EM), with finite standard errors
    res2 = gmm(X, k=2, prior=True).fit(n_init=1, init=np.r_[np.zeros(100), np.ones(31)])
    assert not res2.collapsed and np.all(np.isfinite(res2.bse))
    # a ridge too (its fixed point is not a likelihood maximum: no standard errors asked)
    m3 = gmm(X, k=2, reg_covar=1e-3)
    best = m3.fit(init="kmeans++", n_init=2, seed=0, method="em", maxiter=1000, tol=1e-10,
                  cov_type=None)
    assert not best.collapsed and np.isfinite(best.llf)


@pytest.mark.parametrize("n, k", [(6, 2), (8, 2), (12, 3)])
def test_few_rows_above_the_dimension_give_one_warning(n, k):
    # a full-covariance mixture with just more rows than variables collapses: one
    # DegenerateComponentWarning (the decreases at the singular covariance are rounding,
    # counted in it, not warned of one by one), finite estimates, no standard errors
    X = np.random.default_rng(0).normal(size=(n, 5))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = gmm(X, k=k, covariance="VVV").fit()
    assert [w.category for w in caught] == [DegenerateComponentWarning], [
        str(w.message) for w in caught]
    assert res.collapsed and np.all(np.isfinite(res.params)) and np.isfinite(res.llf)
    assert np.all(np.isnan(res.bse))


def test_bad_input():
    with pytest.raises(DataError, match="distinct"):
        gmm(np.array([[1.0, 2.0], [1.0, 2.0], [3.0, 1.0]]), k=3)
    df = FAITHFUL.assign(c=1.0)
    with pytest.raises(DataError, match="constant column.*'c'"):
        gmm(df, k=2)
    bad = FAITHFUL.copy()
    bad.loc[[5, 9], "eruptions"] = np.nan
    with pytest.raises(DataError, match=r"missing values.*rows 5, 9.*'eruptions'"):
        gmm(bad, k=2)
    m = gmm(bad, k=2, missing="drop")
    assert m.n == 270 and m.n_dropped == 2
    for k in (0, -1, 2.5, None):
        with pytest.raises(ValueError, match="k"):
            gmm(FAITHFUL, k=k)
    txt = FAITHFUL.assign(kind=["a", "b"] * 136)
    with pytest.raises(DataError, match="column 'kind' is not numeric"):
        gmm(txt, k=2)
    with pytest.raises(DataError, match="'kind'.*not numeric"):
        gmm("~ eruptions + kind", data=txt, k=2)
    with pytest.raises(DataError, match="not in the data|cannot evaluate"):
        gmm("~ eruptions + nope", data=FAITHFUL, k=2)
    with pytest.raises(ValueError, match="unknown covariance"):
        gmm(FAITHFUL, k=2, covariance="XYZ")
    with pytest.raises(ValueError, match="start weights"):
        gmm(FAITHFUL, k=2).fit(start_params={"weights": [0.2, 0.2], "means": [[1, 2], [3, 4]],
                                             "covariances": np.eye(2)})


def test_aliases():
    for alias, name in (("full", "VVV"), ("tied", "EEE"), ("diag", "VVI"),
                        ("spherical", "VII")):
        assert gmm(FAITHFUL, k=2, covariance=alias).covariance == name


# -- vignette -----------------------------------------------------------------------------

def test_vignette_runs(tmp_path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    path = os.path.join(os.path.dirname(__file__), os.pardir, "vignettes", "gmm_faithful.py")
    monkeypatch.setattr(sys, "argv", [path, str(tmp_path)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateComponentWarning)
        ns = runpy.run_path(path, run_name="__main__")
    assert ns["selection"].best.k >= 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gmm_bic.png", "gmm_density.png"]


def test_docstring_examples():
    import doctest

    import emstats.models.gmm as mod

    result = doctest.testmod(mod, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def test_gmmparams_sorted():
    p = GMMParams(np.array([0.3, 0.7]), np.array([[2.0, 0.0], [1.0, 5.0]]),
                  np.stack([np.eye(2), 2 * np.eye(2)]))
    q = p.sorted()
    assert q.weights.tolist() == [0.7, 0.3] and q.means[0, 0] == 1.0


# -- the chunk contract, robustness, prediction -----------------------------------------------

def test_guard_survives_non_finite_covariances():
    """A partition with a constant column in one group gives EVI/EVV a singular or
    non-finite covariance; the guard floors it instead of failing in eigh."""
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(size=(40, 2)),
                   np.column_stack([np.full(10, 5.0), rng.normal(size=10)])])
    labels = np.r_[np.zeros(40), np.ones(10)]
    for cov in ("EVI", "EVV"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = gmm(X, k=2, covariance=cov).fit(init=labels, cov_type=None)
        assert np.isfinite(res.llf)
    m = gmm(X, k=2, covariance="EVV")
    covs = np.stack([np.eye(2), np.full((2, 2), np.nan)])
    out = m._guard(covs)
    assert np.all(np.isfinite(out)) and np.all(np.linalg.eigvalsh(out) > 0)


def test_gmm_select_reports_failed_fits():
    X = np.vstack([np.random.default_rng(1).normal(size=(30, 2)), [[9.0, 9.0]] * 3])
    X = X[:8]                                  # 8 distinct rows: k = 9 cannot be fitted
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sel = gmm_select(X, k=[1, 9], covariance=["VVV", "EII"], n_init=1)
    tab = sel.table
    assert tab["failed"].tolist() == [False, True, False, True]
    assert tab.loc[tab["failed"], "error"].str.contains("distinct").all()
    assert sel.best.k == 1 and np.isnan(tab.loc[tab["failed"], "bic"]).all()


@pytest.mark.parametrize("n, d, cov", [(5, 5, "VVV"), (4, 6, "EEE"), (7, 7, "VEV")])
def test_full_covariances_need_more_distinct_rows_than_variables(n, d, cov):
    """n <= d: every scatter matrix is singular, so a full-covariance structure is refused
    at construction with what to do (it alternated between two log-likelihoods for 2 x 5000
    iterations, issue 16), and gmm_select reports the cell as failed; a diagonal structure
    is fitted."""
    X = np.random.default_rng(n + d).normal(size=(n, d))
    with pytest.raises(DataError, match=f"{n} distinct row.s. for {d} variables.*'VVI'"):
        gmm(X, k=2, covariance=cov)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sel = gmm_select(X, k=[1], covariance=[cov, "VII"], n_init=1)
        assert np.isfinite(gmm(X, k=1, covariance="VVI").fit(cov_type=None).llf)
    tab = sel.table
    assert tab["failed"].tolist() == [True, False]
    assert tab.loc[tab["failed"], "error"].str.contains("distinct row").all()


def test_chunks_add_up_and_model_keeps_no_state():
    from emstats.em.problem import Problem

    X = _sim3(2)
    m = gmm(X, k=2, covariance="VEV")
    p = m._init_kmeans(np.random.default_rng(1))
    one, many = Problem(m, 1, n_chunks=1), Problem(m, 2, n_chunks=7)
    s1, l1 = one.e_step(p)
    s7, l7 = many.e_step(p)
    assert np.isclose(l1, l7, rtol=1e-13)
    for key in ("N", "S1", "S2"):
        np.testing.assert_allclose(s1[key], s7[key], rtol=1e-11, atol=1e-10)
    a, b = one.newton_pieces(p), many.newton_pieces(p)
    np.testing.assert_allclose(a[1], b[1], rtol=1e-9, atol=1e-9 * np.abs(a[1]).max())
    np.testing.assert_allclose(a[2].observed, b[2].observed, rtol=1e-9,
                               atol=1e-9 * np.abs(a[2].observed).max())
    before = dict(vars(m))
    r1 = m.fit(init="kmeans++", n_init=3, seed=4)
    r2 = m.fit(init="kmeans++", n_init=3, seed=4)
    assert vars(m).keys() == before.keys()
    np.testing.assert_array_equal(r1.params, r2.params)
    assert r1.convergence.n_iter <= 1000 and len(r1.init_logliks) == 3


def test_predict_which():
    res = gmm(FAITHFUL, k=2).fit()
    pp = res.predict(which="proba")
    np.testing.assert_allclose(pp.to_numpy(), res.predict_proba().to_numpy())
    mean = res.predict(FAITHFUL.iloc[:5], which="mean")
    np.testing.assert_allclose(mean.to_numpy(),
                               pp.to_numpy()[:5] @ res.means.to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(res.predict(which="logpdf"), res.score_samples())
    assert (res.predict(which="label") == res.predict(which="label")).all()
    with pytest.raises(ValueError, match="which"):
        res.predict(which="nope")


@pytest.mark.parametrize("cov", ["VVV", "EEE", "VVI", "VII", "EII", "VEV"])
def test_missing_information_by_moments_equals_per_row_scores(cov):
    """The missing information from the weighted monomials of degree <= 4 equals the one
    from the per-row complete-data scores."""
    X = _sim3(3)
    m = gmm(X, k=3, covariance=cov)
    p = m._init_kmeans(np.random.default_rng(2))
    p = m.m_step(m.e_step(p)[0], p)
    ch = m.data.chunks(1, 1)[0]
    a = m.chunk_louis(p, ch, method="moments")
    b = m.chunk_louis(p, ch, method="rows")
    scale = np.abs(b["missing"]).max()
    assert np.max(np.abs(a["missing"] - b["missing"])) < 1e-10 * scale
    np.testing.assert_array_equal(a["complete"], b["complete"])
