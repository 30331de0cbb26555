"""Factor analysis and probabilistic PCA by EM (emstats.factor_analysis, emstats.ppca).

Witnesses: R's factanal and lavaan's efa (missing = "ml" for incomplete data) on
HolzingerSwineford1939 and psych's bfi (tests/results/factor_analysis.json, made by
tests/results/r_scripts/factor_analysis.R); the closed-form PPCA solution; a direct
numerical maximisation of the observed-data likelihood; a numerical Hessian.
"""

from __future__ import annotations

import itertools
import json

import numpy as np
import pandas as pd
import pytest
from scipy import optimize
from scipy.stats import multivariate_normal

import emstats
from emstats.exceptions import DataError
from emstats.models.factor import canonical_loadings, rotate
from tests.results.fixtures import RESULTS_DIR

FIXTURE = json.loads((RESULTS_DIR / "factor_analysis.json").read_text())
CASES = FIXTURE["cases"]
# EM is run to a relative change of 1e-12 in the log-likelihood; lavaan's nlminb to
# rel.tol 1e-10: both log-likelihoods are within ~1e-8 of the maximum, so 1e-6 is the
# issue's tolerance with a margin
TIGHT = dict(tol=1e-12, maxiter=5000)


def frame(case: str) -> pd.DataFrame:
    return pd.DataFrame({k: np.array([np.nan if v is None else v for v in vals], float)
                         for k, vals in CASES[case]["data"].items()})


def match_columns(A: np.ndarray, B: np.ndarray) -> float:
    """Max |A - B| over column permutations and sign flips of A (the best one)."""
    best = np.inf
    for perm in itertools.permutations(range(A.shape[1])):
        P = A[:, perm]
        s = np.sign((P * B).sum(axis=0))
        best = min(best, float(np.abs(P * s - B).max()))
    return best


@pytest.fixture(scope="module")
def hs():
    return frame("hs")


@pytest.fixture(scope="module")
def hs_mar():
    return frame("hs_mar")


@pytest.fixture(scope="module")
def hs_fits(hs):
    return {k: emstats.factor_analysis(hs, k, rotation="varimax").fit(**TIGHT)
            for k in (1, 2, 3)}


# -- complete data: factanal and lavaan -------------------------------------------------
@pytest.mark.parametrize("k", [1, 2, 3])
def test_hs_against_lavaan(hs_fits, k):
    res, ref = hs_fits[k], CASES["hs"]["lavaan"][k - 1]
    assert res.llf == pytest.approx(ref["logl"], abs=1e-6)
    assert res.llf_saturated == pytest.approx(ref["unrestricted_logl"], abs=1e-8)
    assert res.chi2 == pytest.approx(ref["chisq"], abs=1e-6)
    assert res.chi2_df == ref["df"]
    assert res.rmsea == pytest.approx(ref["rmsea"], abs=1e-8)
    # lavaan's listwise efa has no mean structure: npar = ours minus the d means
    assert res.k_params - 9 == ref["npar"]


@pytest.mark.parametrize("k", [1, 2, 3])
def test_hs_against_factanal(hs_fits, k):
    res, ref = hs_fits[k], CASES["hs"]["factanal"][k - 1]
    # factanal's optimiser (L-BFGS-B on the uniquenesses, default factr) stops ~1e-5
    # short in the uniquenesses; the Bartlett statistic is flat there (second order)
    assert res.chi2_bartlett == pytest.approx(ref["statistic"], rel=1e-6)
    assert res.chi2_df == ref["dof"]
    L, u = res.standardized()
    np.testing.assert_allclose(u.to_numpy(), ref["uniquenesses"], atol=1e-4)
    assert match_columns(L.to_numpy(), np.array(ref["loadings_none"]).reshape(9, k)) < 1e-4
    if k > 1:
        sd = np.sqrt(np.diag(res.implied_cov.to_numpy()))
        for rot in ("varimax", "promax"):
            A = res.rotate(rot)[0].to_numpy() / sd[:, None]
            B = np.array(ref[f"loadings_{rot}_tight"])
            assert match_columns(A, B) < 1e-4, rot


def test_rotated_loadings_reproduce_the_covariance(hs_fits):
    res = hs_fits[3]
    L = res.loadings.to_numpy()
    for rot in ("varimax", "quartimax", "promax", "oblimin", "quartimin"):
        A, T, phi = res.rotate(rot)
        A, phi = A.to_numpy(), phi.to_numpy()
        # identities: A = L T and A Phi A' = L L' (rotation leaves the fit unchanged)
        np.testing.assert_allclose(A, L @ T, atol=1e-12)
        np.testing.assert_allclose(A @ phi @ A.T, L @ L.T, atol=1e-10)
        np.testing.assert_allclose(np.diag(phi), 1.0, atol=1e-10)
    assert np.allclose(res.factor_corr, np.eye(3))             # varimax: orthogonal
    assert not np.allclose(res.rotate("promax")[2], np.eye(3), atol=1e-2)


def test_canonical_loadings_diagonalise(hs_fits):
    res = hs_fits[3]
    L, psi = res.loadings.to_numpy(), res.uniquenesses.to_numpy()
    M = L.T @ (L / psi[:, None])
    assert np.abs(M - np.diag(np.diag(M))).max() < 1e-10 * np.abs(M).max()
    assert np.all(np.diff(np.diag(M)) < 0)
    np.testing.assert_allclose(L @ L.T, res.loadings_echelon.to_numpy()
                               @ res.loadings_echelon.to_numpy().T, atol=1e-12)
    np.testing.assert_allclose(canonical_loadings(L, psi), L, atol=1e-10)


def test_bfi_complete_cases_against_factanal():
    X = frame("bfi").dropna()
    ref = CASES["bfi"]["factanal"][0]
    res = emstats.factor_analysis(X, 5).fit(cov_type=None, **TIGHT)
    assert res.nobs == ref["n"] == 2436
    assert res.chi2_bartlett == pytest.approx(ref["statistic"], rel=1e-6)
    assert res.chi2_df == ref["dof"]
    L, u = res.standardized()
    np.testing.assert_allclose(u.to_numpy(), ref["uniquenesses"], atol=2e-4)
    assert match_columns(L.to_numpy(), np.array(ref["loadings_none"])) < 2e-4


# -- missing data: lavaan missing = "ml", a direct maximisation, Louis vs numerical --------
@pytest.mark.parametrize("k", [1, 2, 3])
def test_hs_mar_against_lavaan_fiml(hs_mar, k):
    ref = CASES["hs_mar"]["lavaan"][k - 1]
    res = emstats.factor_analysis(hs_mar, k).fit(cov_type=None, **TIGHT)
    assert res.llf == pytest.approx(ref["logl"], abs=1e-6)
    # lavaan's saturated model is its own EM (stopping rule ~1e-7 in the chi-square)
    assert res.llf_saturated == pytest.approx(ref["unrestricted_logl"], abs=1e-6)
    assert res.chi2 == pytest.approx(ref["chisq"], abs=1e-6)
    assert res.chi2_df == ref["df"]
    assert res.rmsea == pytest.approx(ref["rmsea"], abs=1e-7)
    assert res.k_params == ref["npar"]
    assert res.aic == pytest.approx(ref["aic"], abs=1e-5)
    assert res.bic == pytest.approx(ref["bic"], abs=1e-5)


def test_bfi_fiml_against_lavaan():
    ref = CASES["bfi"]["lavaan"][0]
    X = frame("bfi")
    res = emstats.factor_analysis(X, 5).fit(cov_type=None, **TIGHT)
    assert res.nobs == ref["ntotal"]
    # lavaan's nlminb (rel.tol 1e-10 on |logl| ~ 1e5) stops ~2e-6 below our maximum:
    # agreement to 1e-10 relative, and ours is not the lower one
    assert res.llf == pytest.approx(ref["logl"], rel=1e-10)
    assert res.llf > ref["logl"] - 1e-8
    assert res.llf_saturated == pytest.approx(ref["unrestricted_logl"], abs=1e-6)
    assert res.chi2 == pytest.approx(ref["chisq"], rel=1e-8)
    assert res.chi2_df == ref["df"]


def observed_loglik(X: np.ndarray, mu, S) -> float:
    """The observed-data log-likelihood, rows grouped by pattern with numpy's unique
    (independent of the package)."""
    keys, inv = np.unique(~np.isnan(X), axis=0, return_inverse=True)
    total = 0.0
    for p, o in enumerate(keys):
        rows = X[np.ravel(inv) == p][:, o]
        total += np.sum(multivariate_normal(mu[o], S[np.ix_(o, o)]).logpdf(rows))
    return float(total)


def test_direct_maximisation_missing(hs_mar):
    X = hs_mar.to_numpy()
    d, q = X.shape[1], 2
    res = emstats.factor_analysis(hs_mar, q).fit(cov_type=None, **TIGHT)
    free = ~np.triu(np.ones((d, q), bool), 1)
    free[q:] = True

    def unpack(t):
        mu = t[:d]
        L = np.zeros((d, q))
        L[free] = t[d:d + free.sum()]
        psi = np.exp(t[d + free.sum():])
        return mu, L @ L.T + np.diag(psi)

    # start away from the EM estimate: the means, loadings 0.5, uniquenesses 1
    t0 = np.concatenate([np.nanmean(X, axis=0), np.full(free.sum(), 0.5), np.zeros(d)])
    opt = optimize.minimize(lambda t: -observed_loglik(X, *unpack(t)), t0, method="BFGS",
                            options={"gtol": 1e-7, "maxiter": 2000})
    # BFGS to gtol 1e-7 is within ~1e-9 of the maximum in the log-likelihood
    assert -opt.fun == pytest.approx(res.llf, abs=1e-6)
    assert res.llf >= -opt.fun - 1e-8
    mu, S = unpack(opt.x)
    np.testing.assert_allclose(res.implied_cov.to_numpy(), S, atol=1e-3)
    assert observed_loglik(X, res.mean.to_numpy(), res.implied_cov.to_numpy()) == \
        pytest.approx(res.llf, rel=1e-12)


@pytest.mark.parametrize("k", [1, 3])
def test_louis_against_numerical_hessian(hs_mar, k):
    model = emstats.factor_analysis(hs_mar, k)
    opts = dict(tol=1e-14, ptol=1e-10, maxiter=20000)
    louis = model.fit(**opts)
    num = model.fit(cov_type="numerical", **opts)
    # a numerical Hessian's standard errors are good to ~1e-4 relative
    np.testing.assert_allclose(louis.bse, num.bse, rtol=1e-4)
    assert np.all(np.isfinite(louis.bse))


def test_louis_complete_data(hs):
    model = emstats.factor_analysis(hs, 2)
    opts = dict(tol=1e-14, ptol=1e-10, maxiter=20000)
    np.testing.assert_allclose(model.fit(**opts).bse,
                               model.fit(cov_type="numerical", **opts).bse, rtol=1e-4)


# -- PPCA -----------------------------------------------------------------------------
@pytest.mark.parametrize("q", [1, 2, 3])
def test_ppca_closed_form(hs, q):
    X = hs.to_numpy()
    res = emstats.ppca(hs, q).fit(tol=1e-15, ptol=1e-12, maxiter=20000)
    S = np.cov(X.T, bias=True)
    w, V = np.linalg.eigh(S)
    w, V = w[::-1], V[:, ::-1]
    s2 = w[q:].mean()                       # Tipping & Bishop (1999), eq. 8
    W = V[:, :q] * np.sqrt(w[:q] - s2)      # eq. 7 with R = I
    assert res.noise_variance == pytest.approx(s2, rel=1e-8)
    assert match_columns(res.loadings.to_numpy(), W) < 1e-8
    assert match_columns(res.components.to_numpy(), V[:, :q]) < 1e-8
    np.testing.assert_allclose(res.explained_variance, w[:q], rtol=1e-8)
    C = W @ W.T + s2 * np.eye(X.shape[1])
    assert res.llf == pytest.approx(multivariate_normal(X.mean(0), C).logpdf(X).sum(),
                                    rel=1e-10)


def test_ppca_transform_inverse_impute(hs_mar, hs):
    res = emstats.ppca(hs_mar, 2).fit(**TIGHT)
    Z = res.transform()
    assert Z.shape == (301, 2) and np.all(np.isfinite(Z))
    W = res.loadings.to_numpy()
    mu = res.mean.to_numpy()
    s2 = res.noise_variance
    # complete rows: E[z | x] = (W'W + s2 I)^-1 W' (x - mu)
    full = hs_mar.notna().all(axis=1).to_numpy()
    M = W.T @ W + s2 * np.eye(2)
    expect = (hs_mar.to_numpy()[full] - mu) @ W @ np.linalg.inv(M)
    np.testing.assert_allclose(Z.to_numpy()[full], expect, atol=1e-10)
    back = res.inverse_transform(Z.to_numpy()[full])
    np.testing.assert_allclose(back.to_numpy(), mu + expect @ W.T, atol=1e-12)
    filled = res.impute()
    assert not filled.isna().any().any()
    obs = hs_mar.notna().to_numpy()
    np.testing.assert_array_equal(filled.to_numpy()[obs], hs_mar.to_numpy()[obs])
    # the imputations predict the deleted values better than the column means
    truth = hs.to_numpy()[~obs]
    err = np.abs(filled.to_numpy()[~obs] - truth).mean()
    base = np.abs(np.nanmean(hs_mar.to_numpy(), axis=0)[np.nonzero(~obs)[1]] - truth).mean()
    assert err < base


# -- scores, tables, plots ----------------------------------------------------------------
def test_factor_scores(hs_fits, hs):
    res = hs_fits[3]
    L = res.loadings.to_numpy()
    psi = res.uniquenesses.to_numpy()
    Z = hs.to_numpy() - res.mean.to_numpy()
    reg = res.factor_scores(method="regression", rotated=False).to_numpy()
    np.testing.assert_allclose(
        reg, Z @ np.linalg.solve(L @ L.T + np.diag(psi), L), atol=1e-10)
    # Bartlett's scores are unbiased: noise-free data x = mu + L f give back f
    f = np.random.default_rng(0).standard_normal((5, 3))
    x = res.mean.to_numpy() + f @ L.T
    np.testing.assert_allclose(
        res.factor_scores(x, method="bartlett", rotated=False).to_numpy(), f, atol=1e-10)
    # rotated scores are the rotation of the unrotated ones (orthogonal: T' f)
    rot = res.factor_scores(method="regression").to_numpy()
    np.testing.assert_allclose(rot, reg @ res.rotation_matrix, atol=1e-10)
    with pytest.raises(ValueError, match="method"):
        res.factor_scores(method="anderson")


def test_select_n_factors_table(hs, hs_fits):
    model = emstats.factor_analysis(hs, 1)
    table = model.select_n_factors([1, 2, 3], **TIGHT)
    assert list(table.index) == [1, 2, 3]
    for k in (1, 2, 3):
        assert table.loc[k, "llf"] == pytest.approx(hs_fits[k].llf, abs=1e-6)
        assert table.loc[k, "df"] == CASES["hs"]["lavaan"][k - 1]["df"]
    assert table["bic"].idxmin() == 3


def test_summary_and_plot(hs_fits, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    res = hs_fits[3]
    text = res.summary().as_text()
    assert "echelon" in text and "RMSEA" in text and "communality" in text
    ax = res.plot_loadings()
    ax.figure.savefig(tmp_path / "loadings.png")
    assert (tmp_path / "loadings.png").stat().st_size > 0


def test_rotate_single_factor_is_identity():
    L = np.array([[0.5], [0.7], [0.2]])
    A, T, phi = rotate(L, "varimax")
    np.testing.assert_array_equal(A, L)


# -- bad input --------------------------------------------------------------------------
def test_bad_input(hs):
    with pytest.raises(DataError, match="n_factors=6 is not identified.*at most 5"):
        emstats.factor_analysis(hs, 6)
    with pytest.raises(DataError, match="positive integer"):
        emstats.factor_analysis(hs, 0)
    bad = hs.copy()
    bad["x5"] = 2.0
    with pytest.raises(DataError, match="constant.*x5"):
        emstats.factor_analysis(bad, 2)
    bad = hs.copy()
    bad["x7"] = np.nan
    with pytest.raises(DataError, match="entirely missing: x7"):
        emstats.factor_analysis(bad, 2)
    with pytest.raises(DataError, match="n_components=8 is too many"):
        emstats.ppca(hs, 8)
    with pytest.raises(ValueError, match="rotation"):
        emstats.factor_analysis(hs, 2, rotation="geomin")


def test_data_not_modified(hs_mar):
    copy = hs_mar.copy()
    emstats.factor_analysis(hs_mar, 2).fit(cov_type=None)
    pd.testing.assert_frame_equal(hs_mar, copy)


def test_missing_drop_is_complete_cases(hs_mar):
    res = emstats.factor_analysis(hs_mar, 2, missing="drop").fit(cov_type=None, **TIGHT)
    cc = emstats.factor_analysis(hs_mar.dropna(), 2).fit(cov_type=None, **TIGHT)
    assert res.nobs == len(hs_mar.dropna())
    assert res.llf == pytest.approx(cc.llf, abs=1e-8)


def test_ppca_select_table(hs):
    table = emstats.ppca(hs, 1).select_n_factors([1, 2], **TIGHT)
    d = 9
    for q in (1, 2):
        # saturated d + d(d+1)/2 minus PPCA's d + dq - q(q-1)/2 + 1
        assert table.loc[q, "df"] == d * (d + 1) // 2 - (d * q - q * (q - 1) // 2 + 1)
    assert table.loc[2, "llf"] == pytest.approx(
        emstats.ppca(hs, 2).fit(cov_type=None, **TIGHT).llf, abs=1e-8)


# -- rotations against GPArotation; delta-method SEs against lavaan --------------------------
ROT = json.loads((RESULTS_DIR / "factor_rotation.json").read_text())


def best_permutation(A: np.ndarray, B: np.ndarray):
    """The column permutation and signs of A closest to B."""
    best = (np.inf, None, None)
    for perm in itertools.permutations(range(A.shape[1])):
        P = A[:, perm]
        s = np.sign((P * B).sum(axis=0))
        err = float(np.abs(P * s - B).max())
        if err < best[0]:
            best = (err, np.array(perm), s)
    return best


@pytest.mark.parametrize("case", ["hs", "bfi"])
@pytest.mark.parametrize("method,normalize,key", [("oblimin", False, "oblimin"),
                                                  ("quartimin", False, "quartimin"),
                                                  ("oblimin", True, "oblimin_kaiser")])
def test_oblique_rotations_against_gparotation(case, method, normalize, key):
    """statsmodels' oblimin (gamma 0) = quartimin through emstats.rotate, against
    GPArotation at eps 1e-7 on the same unrotated loadings: loadings and factor
    correlations to 1e-6 (statsmodels' projected gradient at tol 1e-8)."""
    rec = ROT["gparotation"][case]
    A = np.array(rec["unrotated"], dtype=float)
    out, T, phi = rotate(A, method, normalize=normalize, tol=1e-8)
    ref = rec[key]
    err, perm, s = best_permutation(out, np.array(ref["loadings"]))
    assert err < 1e-6
    np.testing.assert_allclose(phi[np.ix_(perm, perm)] * np.outer(s, s), ref["phi"], atol=1e-6)
    np.testing.assert_allclose(A @ T, out, atol=1e-12)
    # factor correlations are (T'T)^-1 and the rotated loadings reproduce L L'
    np.testing.assert_allclose(out @ phi @ out.T, A @ A.T, atol=1e-10)


def _constrained_rotation_cov(X, L, phi, psi, rotation):
    """Standard errors of (rotated loadings, standardized loadings, factor correlations)
    by the constrained-information method (Jennrich 1974): the observed information of
    the normal log-likelihood in the rotated parameters (central second differences of
    an independently written likelihood) bordered by the Jacobian of the rotation's
    stationarity conditions; no rotation is differentiated.  The rotations are those of
    ``factor_analysis`` (and lavaan's efa): varimax with Kaiser's normalisation, oblimin
    (gamma 0) of the loadings in the correlation metric (rows divided by the model's
    standard deviations)."""
    n, d = X.shape
    q = L.shape[1]
    S = np.cov(X.T, bias=True)
    pairs = [(a, b) for a in range(q) for b in range(a + 1, q)]
    free = pairs if rotation != "varimax" else []

    def unpack(th):
        F = np.eye(q)
        for t, (a, b) in enumerate(free):
            F[a, b] = F[b, a] = th[d * q + t]
        return th[:d * q].reshape(d, q), F, th[d * q + len(free):]

    def loglik(th):
        Lt, F, p = unpack(th)
        sig = Lt @ F @ Lt.T + np.diag(p)
        return -0.5 * n * (np.linalg.slogdet(sig)[1] + np.trace(np.linalg.solve(sig, S)))

    def conditions(th):
        Lt, F, p = unpack(th)
        if rotation == "varimax":          # Kaiser-normalised varimax: A'G symmetric
            A = Lt / np.sqrt((Lt ** 2).sum(axis=1))[:, None]
            M = A.T @ (A ** 3 - A * (A ** 2).mean(axis=0))
            return np.array([M[a, b] - M[b, a] for a, b in pairs])
        A = Lt / np.sqrt(np.einsum("ij,jk,ik->i", Lt, F, Lt) + p)[:, None]
        G = A * ((A ** 2) @ (1.0 - np.eye(q)))  # quartimin: Phi^-1 G'A diagonal
        M = np.linalg.solve(F, G.T @ A)
        return M[~np.eye(q, dtype=bool)]

    def standardized(th):
        Lt, F, p = unpack(th)
        return (Lt / np.sqrt(np.einsum("ij,jk,ik->i", Lt, F, Lt) + p)[:, None]).ravel()

    def jacobian(f, th, h=1e-7):
        return np.column_stack([(f(th + e) - f(th - e)) / (2 * h)
                                for e in np.eye(th.size) * h])

    th = np.concatenate([L.ravel(), [phi[a, b] for a, b in free], psi])
    k = th.size
    step = 1e-4 * np.maximum(1.0, np.abs(th))
    info = np.zeros((k, k))
    for i in range(k):
        for j in range(i, k):
            ei, ej = np.zeros(k), np.zeros(k)
            ei[i], ej[j] = step[i], step[j]
            info[i, j] = info[j, i] = -(loglik(th + ei + ej) - loglik(th + ei - ej)
                                        - loglik(th - ei + ej) + loglik(th - ei - ej)) \
                / (4 * step[i] * step[j])
    H = jacobian(conditions, th)
    m = H.shape[0]
    C = np.linalg.pinv(np.block([[info, H.T], [H, np.zeros((m, m))]]))[:k, :k]
    Js = jacobian(standardized, th)
    se = np.sqrt(np.diag(C))
    return (se[:d * q].reshape(d, q),
            np.sqrt(np.einsum("ij,jk,ik->i", Js, C, Js)).reshape(d, q),
            se[d * q:d * q + len(free)], free)


@pytest.mark.parametrize("rotation", ["varimax", "oblimin"])
def test_rotated_loading_se_against_lavaan(hs, rotation):
    """Delta-method SEs of the rotated loadings (raw and standardized) and of the factor
    correlations.  Witness: the constrained-information SEs (Jennrich 1974) of
    :func:`_constrained_rotation_cov`, to 1e-3 relative (ours differentiate the rotation
    numerically, to ~1e-4; the witness's second differences are as good).  lavaan's
    efa(rotation.se = "delta", information = "observed") reaches the same solution
    (log-likelihood 1e-9, loadings 1e-4) but its delta-method SEs differ from both by up
    to 2.5% (raw loadings), 9% (standardized oblimin loadings) and 4% (factor
    correlations), whatever its rotation tolerance (gpa.tol 1e-5 to 1e-7 moved them by
    4e-4): they are compared loosely, as the same quantity from another program."""
    ref = ROT["lavaan_se"][rotation]
    res = emstats.factor_analysis(hs, 3, rotation=rotation).fit(**TIGHT)
    assert res.llf == pytest.approx(ref["logl"], rel=1e-9)
    est = res.rotated_loadings.to_numpy()
    err, perm, s = best_permutation(est, np.array(ref["loadings"]))
    assert err < 1e-4                      # statsmodels' default rotation tolerance
    phi = res.factor_corr.to_numpy() if rotation != "varimax" else np.eye(3)
    X = hs.dropna().to_numpy()
    psi = np.diag(np.cov(X.T, bias=True) - est @ phi @ est.T)
    w_raw, w_std, w_phi, pairs = _constrained_rotation_cov(X, est, phi, psi, rotation)
    se = res.loadings_bse().to_numpy()
    sse = res.loadings_bse(standardized=True).to_numpy()
    np.testing.assert_allclose(se, w_raw, rtol=1e-3)
    np.testing.assert_allclose(sse, w_std, rtol=1e-3)
    np.testing.assert_allclose(se[:, perm], ref["loadings_se"], rtol=0.03)
    np.testing.assert_allclose(sse[:, perm], ref["std_loadings_se"], rtol=0.1)
    if rotation == "oblimin":
        phi_se = res.factor_corr_bse().to_numpy()
        np.testing.assert_allclose([phi_se[a, b] for a, b in pairs], w_phi, rtol=1e-3)
        for pair in ref["phi_pairs"]:
            i, j = perm[pair["i"] - 1], perm[pair["j"] - 1]
            assert phi_se[i, j] == pytest.approx(pair["se"], rel=0.05)
