"""gmm_select's table (failures reported, the fast loop), collapsed components in the
decomposed structures, and the common-orientation structures against mclust on iris."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import numpy as np
import pytest

import emstats
from emstats.models import gmm as G
from emstats.models._gmm_fast import SmallEM, _start_key

RESULTS = Path(__file__).parent / "results"


def _degenerate_data():
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(size=(40, 2)),
                   np.column_stack([np.full(10, 5.0), rng.normal(size=10)])])
    lab = np.r_[np.zeros(40, int), np.ones(10, int)]
    return X, lab


@pytest.mark.parametrize("cov", ["EVI", "EVV", "VEI", "VEE", "VEV", "EVE", "EEV", "VVE"])
def test_collinear_component_collapses_with_one_warning(cov):
    # issue 17's reproduction: the second component's rows are constant in x1
    X, lab = _degenerate_data()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = emstats.gmm(X, k=2, covariance=cov).fit(init=lab, n_init=1, method="em",
                                                      maxiter=200)
    cats = [w.category for w in caught]
    assert cats.count(G.DegenerateComponentWarning) == 1
    assert not [c for c in cats if issubclass(c, RuntimeWarning)]    # no log(0), 0/0
    assert np.isfinite(res.llf)
    assert res.collapsed == [1]
    # the collapsed component is the one on the line x1 = 5, its x1 variance floored
    assert res.means.iloc[1, 0] == pytest.approx(5.0)


def test_guard_floors_non_finite_covariance_without_eigen_decomposition():
    X, _ = _degenerate_data()
    m = emstats.gmm(X, k=2, covariance="EVI")
    covs = np.array([np.eye(2), np.full((2, 2), np.nan)])
    out = m._guard(covs)
    np.testing.assert_array_equal(out[0], np.eye(2))
    np.testing.assert_allclose(out[1], m._floor * np.eye(2))
    small = np.array([np.diag([1.0, 1e-20]), np.eye(2)])
    assert np.linalg.eigvalsh(m._guard(small)[0])[0] == pytest.approx(m._floor)


def test_collapsed_components_allows_the_rounding_of_a_floored_eigenvalue():
    # a floored eigenvalue next to a large one comes back from the rebuilt matrix with an
    # error of order eps * the large one, far above the floor: still collapsed
    X, _ = _degenerate_data()
    m = emstats.gmm(X, k=2, covariance="VVV")
    big = 1e4 * float(np.mean(np.var(X, axis=0)))
    Q = np.linalg.qr(np.random.default_rng(3).normal(size=(2, 2)))[0]
    rebuilt = (Q * np.array([m._floor, big])) @ Q.T
    w = np.linalg.eigvalsh(rebuilt)[0]
    assert abs(w - m._floor) > 1e-6 * m._floor          # what the former margin missed
    covs = np.array([np.eye(2), rebuilt])
    p = G.GMMParams(np.array([0.5, 0.5]), np.zeros((2, 2)), covs)
    assert m.collapsed_components(p) == [1]
    # an eigenvalue ten times the floor, beside a unit one, is not collapsed
    p2 = G.GMMParams(np.array([0.5, 0.5]), np.zeros((2, 2)),
                     np.array([np.eye(2), np.diag([1.0, 10 * m._floor])]))
    assert m.collapsed_components(p2) == []


def test_select_reports_a_failed_fit_and_picks_from_the_rest():
    f = emstats.datasets.load("faithful")
    # k = 3 gets a partition with two labels: that fit fails (ValueError), the rest run
    lab2 = (f["eruptions"] > 3).astype(int).to_numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sel = emstats.gmm_select(f, k=[2, 3], covariance=["VVV", "EEE"],
                                 init={2: lab2, 3: lab2})
    t = sel.table
    bad = t[t["k"] == 3]
    assert bad["failed"].all() and bad["bic"].isna().all()
    assert bad["error"].str.contains("distinct labels").all()
    assert not t[t["k"] == 2]["failed"].any()
    assert sel.best.k == 2
    assert sel.best.bic_mclust == pytest.approx(t[t["k"] == 2]["bic"].max(), abs=1e-6)


@pytest.mark.parametrize("cov", ["VVV", "EEI", "VEI", "EVE", "VVE", "EEV"])
def test_fast_loop_is_the_engines_plain_em(cov):
    # without SQUAREM the table's loop is the algorithm of fit(method="em"): same starts,
    # short runs, stopping rule and M-step, so the same iterates
    f = emstats.datasets.load("faithful")
    m = emstats.gmm(f, k=3, covariance=cov)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = m.fit(init="kmeans++", n_init=5, method="em", cov_type=None, tol=1e-10,
                    maxiter=5000)
    out = SmallEM(m, squarem=False).fit("kmeans++", 5, 0, 5000, 1e-10)
    assert out.loglik == pytest.approx(ref.llf, abs=1e-8)
    # both stop within ~1e-9 of the same maximum in loglik; flat directions leave
    # O(sqrt(distance / curvature)) in the parameters
    np.testing.assert_allclose(out.params.means, ref.raw_params.means, atol=1e-4)
    # SQUAREM reaches the same maximum
    sq = SmallEM(m).fit("kmeans++", 5, 0, 5000, 1e-12)
    assert sq.loglik == pytest.approx(ref.llf, abs=1e-6)


def _iris():
    with open(RESULTS / "gmm_iris_common_orientation.json") as fh:
        return json.load(fh)


@pytest.mark.parametrize("g", ["2", "3"])
def test_eve_matches_mclust_on_iris(g):
    ref = _iris()
    X = np.array(ref["X"])
    lab = np.array(ref["hc_classes"][g])
    fit = ref["fits"]["EVE"][g]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = emstats.gmm(X, k=int(g), covariance="EVE").fit(init=lab, n_init=1)
    assert res.llf == pytest.approx(fit["loglik"], abs=1e-6)
    order = np.lexsort(np.array(fit["mean"]).T[::-1])
    np.testing.assert_allclose(res.means.to_numpy(), np.array(fit["mean"])[order], atol=1e-4)


@pytest.mark.parametrize("cov", ["EVE", "VVE"])
@pytest.mark.parametrize("g", ["2", "3", "4", "5"])
def test_common_orientation_never_below_mclust_on_iris(cov, g):
    # from mclust's own partition emstats reaches mclust's maximum or a higher one
    # (EVE k = 4: -246.615 against -257.464; VVE k = 2..4 higher: see the next test)
    ref = _iris()
    X = np.array(ref["X"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = emstats.gmm(X, k=int(g), covariance=cov).fit(
            init=np.array(ref["hc_classes"][g]), n_init=1)
    assert res.llf >= ref["fits"][cov][g]["loglik"] - 1e-6


def test_vve_beyond_mclust_on_iris():
    # mclust's VVE estimate (k = 2, from its own partition) is not a fixed point of the
    # VVE M-step: emstats' density reproduces mclust's log-likelihood at mclust's
    # parameters, and EM from there increases it to emstats' maximum (mclust's common-
    # orientation iterations stop short of it)
    ref = _iris()
    X = np.array(ref["X"])
    fit = ref["fits"]["VVE"]["2"]
    m = emstats.gmm(X, k=2, covariance="VVE")
    p = G.GMMParams(np.array(fit["pro"]), np.array(fit["mean"]), np.array(fit["sigma"]))
    st, ll = m.e_step(p)
    assert ll == pytest.approx(fit["loglik"], abs=1e-8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = m.fit(start_params=p)
        lab = np.array(ref["hc_classes"]["2"])
        res2 = m.fit(init=lab, n_init=1)
    assert res.llf > fit["loglik"] + 0.1
    assert res.llf == pytest.approx(res2.llf, abs=1e-6)
    # the estimate has the structure: one orientation diagonalises every covariance
    C = res.raw_params.covariances
    V = np.linalg.eigh(C[0])[1]
    for c in C:
        r = V.T @ c @ V
        assert np.max(np.abs(r - np.diag(np.diag(r)))) < 1e-8 * np.max(np.abs(r))


def test_select_on_iris_all_structures_runs():
    ref = _iris()
    X = np.array(ref["X"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sel = emstats.gmm_select(X, k=range(1, 10), covariance=G.ALL_STRUCTURES)
    assert len(sel.table) == 14 * 9
    assert not sel.table["failed"].any()
    assert np.isfinite(sel.best.llf)


def test_small_estep_matches_the_densities():
    # the blocked E-step (rows in blocks of 64, transposed) against scipy's densities,
    # over more than one block and a ragged last block
    from scipy.stats import multivariate_normal

    from emstats._kernels import gmm_small

    rng = np.random.default_rng(3)
    n, K, d = 150, 3, 3
    X = rng.normal(size=(n, d))
    c = X.mean(axis=0)
    w = np.array([0.2, 0.3, 0.5])
    mu = rng.normal(size=(K, d))
    A = rng.normal(size=(K, d, d))
    cov = A @ np.swapaxes(A, 1, 2) + np.eye(d)
    dens = np.column_stack([w[k] * multivariate_normal(mu[k], cov[k]).pdf(X) for k in range(K)])
    R = dens / dens.sum(axis=1, keepdims=True)
    E = X - c
    XT = np.ascontiguousarray(X.T)
    for diag in (False, True):
        N, S1, S2 = np.empty(K), np.empty((K, d)), np.empty((K, d, d))
        resp = np.empty((n, K))
        ll, status = gmm_small.small_estep(XT, c, w, mu, cov, N, S1, S2, resp, True, diag)
        assert status == 0
        assert ll == pytest.approx(np.log(dens.sum(axis=1)).sum(), abs=1e-9)
        np.testing.assert_allclose(resp, R, atol=1e-13)
        np.testing.assert_allclose(N, R.sum(axis=0), atol=1e-12)
        np.testing.assert_allclose(S1, R.T @ E, atol=1e-12)
        S2_ref = np.einsum("ik,ia,ib->kab", R, E, E)
        np.testing.assert_allclose(S2, S2_ref * np.eye(d) if diag else S2_ref, atol=1e-12)
    bad = cov.copy()
    bad[1] = -np.eye(d)
    assert gmm_small.small_estep(XT, c, w, mu, bad, N, S1, S2, resp, False, False)[1] == 1


@pytest.mark.parametrize("cov", G.ALL_STRUCTURES)
def test_fast_m_step_is_the_models(cov):
    # the loop's M-step (moments and the linear structures in the kernel) is the model's
    X = np.array(_iris()["X"])
    m = emstats.gmm(X, k=3, covariance=cov)
    fast = SmallEM(m)
    p = m.initial_starts("kmeans++", 1, np.random.default_rng(1))[0][1]
    st, _, _ = fast.e_step(p)
    q = fast.m_step(st, p)
    ref = m.m_step(G.Stats(N=st[0], S1=st[1], S2=st[2]), p)
    np.testing.assert_allclose(q.weights, ref.weights, rtol=1e-12)
    np.testing.assert_allclose(q.means, ref.means, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(q.covariances, ref.covariances, rtol=1e-9, atol=1e-12)


def _python_step(fast, p, st):
    q = fast.m_step(st, p)
    st2, ll, _ = fast.e_step(q)
    return q, st2, ll


@pytest.mark.parametrize("cov", G.ALL_STRUCTURES)
def test_kernel_em_step_is_the_python_step(cov):
    # small_em_run's step (M-step in C, floor, E-step) against SmallEM.m_step + e_step, on
    # iris from a k-means++ start, and on data with a collinear component (a singular
    # scatter matrix: the ridge and the floor of the collapsed component)
    X, lab = _degenerate_data()
    for data, start in ((np.array(_iris()["X"]), None), (X, lab)):
        m = emstats.gmm(data, k=3 if start is None else 2, covariance=cov)
        fast = SmallEM(m)
        assert fast._code >= 0
        if start is None:
            p = m.initial_starts("kmeans++", 1, np.random.default_rng(1))[0][1]
        else:
            p = m._params_from_labels(start)
        st, ll, _ = fast.e_step(p)
        for _ in range(3):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                q, st_q, ll_q = _python_step(fast, p, st)
            p_k, st_k, ll_k = fast._em_step(p, st, ll)
            assert ll_k == pytest.approx(ll_q, abs=1e-9)
            np.testing.assert_allclose(p_k.weights, q.weights, rtol=1e-10)
            np.testing.assert_allclose(p_k.means, q.means, rtol=1e-10, atol=1e-10)
            np.testing.assert_allclose(p_k.covariances, q.covariances, rtol=1e-7,
                                       atol=1e-10 * float(np.abs(q.covariances).max()))
            for a, b in zip(st_k, st_q, strict=True):
                np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9)
            p, st, ll = q, st_q, ll_q


def test_kernel_floor_repair_is_the_guard():
    from emstats._kernels import gmm_small

    rng = np.random.default_rng(3)
    X = np.array(_iris()["X"])
    m = emstats.gmm(X, k=2, covariance="VVV")
    for d in (1, 2, 4):
        A = rng.normal(size=(d, d))
        w, V = np.linalg.eigh(A @ A.T)
        w[0] = 0.1 * m._floor
        S = (V * w) @ V.T
        ref = m._guard(S[None].copy())[0]        # eigenvalues raised to the floor
        out = S.copy()
        assert gmm_small.floor_repair(out, m._floor) == 0
        np.testing.assert_allclose(out, ref, rtol=1e-13, atol=1e-15 * w.max())
    bad = np.full((3, 3), np.nan)
    assert gmm_small.floor_repair(bad, 2.0) == 0
    np.testing.assert_array_equal(bad, 2.0 * np.eye(3))


def test_repeated_starts_run_once_and_change_nothing():
    f = emstats.datasets.load("faithful")
    m = emstats.gmm(f, k=2, covariance="VVV")
    starts = m.initial_starts("kmeans++", 3, np.random.default_rng(0))
    a = SmallEM(m)
    pa, _ = a._best_start(starts, 5000)
    b = SmallEM(m)
    pb, _ = b._best_start(starts + starts, 5000)
    assert b.n_e_steps == a.n_e_steps
    np.testing.assert_array_equal(pa.means, pb.means)


def test_cycle_at_the_floor_stops_before_maxiter():
    from emstats.models import _gmm_fast

    span = _gmm_fast.STALL_SPAN
    cycle = [-154.36 + (3e-7 if i % 2 else 0.0) for i in range(2 * span + 1)]
    assert _gmm_fast._stalled(cycle, 1e-9)
    climb = [-154.36 + 1e-12 * i for i in range(2 * span + 1)]      # slow, but a climb
    assert not _gmm_fast._stalled(climb, 1e-9)
    # iris, VVV, k = 3: short EM's winner often keeps a component at the floor, where EM
    # either settles or cycles between two points depending on the last bits of the
    # E-step's sums (the machine's vector width): over a few seeds none runs to maxiter,
    # and some stop by the cycle test
    X = np.array(_iris()["X"])
    m = emstats.gmm(X, k=3, covariance="VVV")
    outs = [SmallEM(m).fit("short-em", None, seed, 5000, 1e-10) for seed in range(6)]
    assert all(o.n_iter < 5000 for o in outs)
    assert any(not o.converged and m.collapsed_components(o.params) for o in outs)


def test_select_shares_the_structure_free_starts():
    # gmm_select's cache of k-means++ partitions and random rows (one per k and seed,
    # whatever the structure) gives the starts of a model without it
    f = emstats.datasets.load("faithful")
    cache = {}
    for cov in ("VVV", "EEI", "VEV"):
        m = emstats.gmm(f, k=3, covariance=cov)
        ref = m.initial_starts("short-em", 4, np.random.default_rng(5)) + \
            m.initial_starts("kmeans++", 4, np.random.default_rng(5))
        m._start_cache = cache
        got = m.initial_starts("short-em", 4, np.random.default_rng(5)) + \
            m.initial_starts("kmeans++", 4, np.random.default_rng(5))
        for (_, p), (_, q) in zip(ref, got, strict=True):
            np.testing.assert_allclose(q.means, p.means, rtol=1e-12)
            np.testing.assert_allclose(q.covariances, p.covariances, rtol=1e-10, atol=1e-14)
    assert len({key[:3] for key in cache}) == 8      # (kind, k, seed): 4 of each kind
    # the k-means++ partitions' moments: one entry per partition for the full structures
    # (VVV and VEV share them) and one for the diagonal ones
    moments = [key for key in cache if "moments" in key]
    assert len(moments) == 8 and {key[-1] for key in moments} == {False, True}



@pytest.mark.parametrize("cov", G.ALL_STRUCTURES)
def test_kernel_starts_are_the_models(cov):
    # the starts made by SmallEM's kernel M-step (random, k-means++, hc) are the model's
    # up to rounding, and the E-step kept for each start's short run is the E-step there
    X = np.array(_iris()["X"])
    m = emstats.gmm(X, k=3, covariance=cov)
    fast = SmallEM(m)
    for init, count in (("short-em", 4), ("kmeans++", 3), ("hc", None)):
        ref = m.initial_starts(init, count, np.random.default_rng(2))
        fast._start_hits = {}
        m._fast_start_m_step = fast.start_m_step
        try:
            got = m.initial_starts(init, count, np.random.default_rng(2))
        finally:
            m._fast_start_m_step = None
        assert len(got) == len(ref)
        for (_, p), (_, q) in zip(ref, got, strict=True):
            np.testing.assert_allclose(q.weights, p.weights, rtol=1e-12)
            np.testing.assert_allclose(q.means, p.means, rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(q.covariances, p.covariances, rtol=1e-9,
                                       atol=1e-12 * float(np.abs(p.covariances).max()))
            st, ll = fast._start_hits[_start_key(q)]
            st_ref, ll_ref, _ = fast.e_step(q)
            assert ll == pytest.approx(ll_ref, abs=1e-9)
            for a, b in zip(st, st_ref, strict=True):
                np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10)

def test_jacobi_eigen_decomposition_and_orientation():
    # the M-steps' small eigen-decompositions against LAPACK, including a badly scaled
    # matrix; the orientation's sign conventions are gmm._orientation's
    from emstats._kernels import gmm_small

    rng = np.random.default_rng(4)
    for d in (1, 2, 4, 7):
        A = rng.normal(size=(3, d, d))
        S = A @ np.swapaxes(A, 1, 2) + 1e-3 * np.eye(d)
        S[0] *= 1e6
        w, V = np.empty((3, d)), np.empty((3, d, d))
        assert gmm_small.eig_desc(S, w, V) == 0
        w0 = np.linalg.eigvalsh(S)[:, ::-1]
        np.testing.assert_allclose(w, w0, rtol=1e-12, atol=1e-13 * np.abs(w0).max())
        np.testing.assert_allclose((V * w[:, None, :]) @ np.swapaxes(V, 1, 2), S,
                                   atol=1e-12 * np.abs(S).max())
        for k in range(3):
            D = np.empty((d, d))
            assert gmm_small.orientation_start(np.ascontiguousarray(S[k]), D) == 0
            _, U = np.linalg.eigh(S[k])
            U = U[:, ::-1] * np.where(np.diag(U[:, ::-1]) < 0, -1.0, 1.0)[None, :]
            if np.linalg.det(U) < 0:
                U[:, np.argmin(np.diag(U))] *= -1.0
            np.testing.assert_allclose(D, U, atol=1e-10)
    bad = np.full((1, 2, 2), np.nan)
    assert gmm_small.eig_desc(bad, np.empty((1, 2)), np.empty((1, 2, 2))) == 1


@pytest.mark.parametrize("ks, named", [([0, 1], "0"), ([2, -1], "-1"), ([1.5], "1.5"),
                                       (["a", 2], "'a'"), ([True], "True")])
def test_select_refuses_bad_k_upfront(ks, named):
    f = emstats.datasets.load("faithful")
    with pytest.raises(ValueError, match=r"k must be positive integers.*" + re.escape(named)):
        emstats.gmm_select(f, k=ks, covariance="VVV")
