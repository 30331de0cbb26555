"""Tobit / interval regression: inference, predictions, threads and bad input."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from results.fixtures import RESULTS_DIR
from scipy import integrate, stats
from statsmodels.tools.numdiff import approx_hess3

import emstats
from emstats import ConvergenceWarning, DataError, SingularDesignError

FORMULA = "affairs ~ age + yearsmarried + religiousness + occupation + rating"


@pytest.fixture(scope="module")
def affairs():
    return emstats.datasets.load("affairs")


@pytest.fixture(scope="module")
def res(affairs):
    return emstats.tobit(FORMULA, affairs, censor_left=0).fit()


def simulate(rng, n=400, p=3, kind="left", cens=0.4):
    X = np.column_stack([np.ones(n), rng.normal(size=(n, p - 1))])
    beta = np.linspace(1.0, -0.5, p)
    ys = X @ beta + 1.5 * rng.normal(size=n)
    if kind == "left":
        c = np.quantile(ys, cens)
        return np.maximum(ys, c), X, dict(censor_left=c)
    if kind == "two":
        lo, hi = np.quantile(ys, [cens / 2, 1 - cens / 2])
        return np.clip(ys, lo, hi), X, dict(censor_left=lo, censor_right=hi)
    if kind == "perrow":
        left = rng.normal(size=n) - 0.5
        right = left + rng.uniform(1, 4, size=n)
        right[::7] = np.inf
        return np.clip(ys, left, right), X, dict(censor_left=left, censor_right=right)
    raise KeyError(kind)


# -- Louis' method equals a numerical Hessian on several data sets ---------------------

@pytest.mark.parametrize("kind", ["left", "two", "perrow"])
def test_louis_equals_numerical_hessian_simulated(kind, rng):
    y, X, lim = simulate(rng, kind=kind)
    model = emstats.Tobit(y, X, **lim)
    res = model.fit(tol=1e-12)
    theta = res.params.to_numpy()
    hess = approx_hess3(theta, model.loglike_inference)
    assert_allclose(np.linalg.inv(-hess), res.cov_params().to_numpy(), rtol=1e-4, atol=1e-10)


def test_louis_equals_numerical_hessian_affairs_intreg(affairs):
    df = affairs.copy()
    a = df["affairs"].to_numpy(float)
    df["lo"] = np.where(a == 0, np.nan, np.where(a == 7, 4.0, a))
    df["hi"] = np.where(a == 12, np.nan, np.where(a == 7, 10.0, a))
    res = emstats.intreg("lo + hi ~ age + rating", df).fit()
    num = emstats.intreg("lo + hi ~ age + rating", df).fit(cov_type="numerical")
    assert num.cov_type == "numerical"
    assert_allclose(res.bse, num.bse, rtol=1e-4)


def test_louis_at_non_mle_points_is_the_observed_information(res):
    """Louis' identity holds at every theta, not only the MLE: compare away from it."""
    model = res.model
    theta = res.params.to_numpy() + 0.05
    pieces = model.louis(theta)
    assert_allclose(pieces.observed, -approx_hess3(theta, model.loglike_inference),
                    rtol=1e-4, atol=1e-6)
    assert_allclose(model.score(theta), _num_grad(model.loglike_inference, theta),
                    rtol=1e-5, atol=1e-6)


def _num_grad(f, x, h=1e-6):
    g = np.empty_like(x)
    for i in range(len(x)):
        e = np.zeros_like(x)
        e[i] = h * max(1.0, abs(x[i]))
        g[i] = (f(x + e) - f(x - e)) / (2 * e[i])
    return g


def test_mle_is_a_zero_of_the_score_and_matches_direct_optimisation(rng):
    from scipy.optimize import minimize

    y, X, lim = simulate(rng, kind="two")
    model = emstats.Tobit(y, X, **lim)
    res = model.fit(method="squarem", tol=1e-13)
    lo, hi = lim["censor_left"], lim["censor_right"]

    def negll(t):  # the observed-data likelihood written out directly with scipy.stats
        mu, s = X @ t[:-1], np.exp(t[-1])
        ll = np.where(y <= lo, stats.norm.logcdf((lo - mu) / s),
                      np.where(y >= hi, stats.norm.logsf((hi - mu) / s),
                               stats.norm.logpdf((y - mu) / s) - np.log(s)))
        return -ll.sum()

    direct = minimize(negll, model.start_params(), method="BFGS", options={"gtol": 1e-9})
    assert_allclose(res.params.to_numpy(), direct.x, rtol=1e-5, atol=1e-7)
    assert_allclose(res.llf, -direct.fun, rtol=1e-10)
    assert np.max(np.abs(model.score(res.params.to_numpy()))) < 1e-5


def test_no_censoring_is_the_gaussian_mle(rng):
    n = 300
    X = np.column_stack([np.ones(n), rng.normal(size=n)])
    y = X @ [1.0, 2.0] + rng.normal(size=n)
    res = emstats.Tobit(y, X, censor_left=None).fit(tol=1e-12)
    beta = np.linalg.lstsq(X, y, rcond=None)[0]
    s2 = np.mean((y - X @ beta) ** 2)
    assert_allclose(res.params.to_numpy()[:2], beta, rtol=1e-10)
    assert_allclose(res.scale, np.sqrt(s2), rtol=1e-10)
    assert res.convergence.em_rate == pytest.approx(0.0, abs=1e-12)
    # OLS's ML covariance for beta: s2 (X'X)^-1
    assert_allclose(res.cov_params().to_numpy()[:2, :2], s2 * np.linalg.inv(X.T @ X),
                    rtol=1e-8)


# -- engine behaviour on Tobit ------------------------------------------------------------

def test_em_is_monotone_and_rate_matches_louis(affairs):
    res = emstats.tobit(FORMULA, affairs).fit(method="em", tol=1e-13, maxiter=5000)
    ll = res.convergence.loglik
    assert np.all(np.diff(ll) >= -1e-10 * abs(ll[-1]))
    # the linear rate seen in the trace is the largest fraction of missing information
    lou = res.model.louis(res.params.to_numpy()).fraction_missing()
    d = np.diff(ll)[40:60]
    assert_allclose(np.sqrt(d[1:] / d[:-1]).mean(), lou, rtol=0.02)
    assert_allclose(res.convergence.em_rate, lou, rtol=1e-12)


def test_maxiter_warns(affairs):
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        res = emstats.tobit(FORMULA, affairs).fit(method="em", maxiter=3)
    assert not res.convergence.converged
    assert "did not converge" in res.summary().as_text()


def test_unknown_method_names_the_choices(affairs):
    with pytest.raises(ValueError, match="'em', 'gradient', 'incremental', 'mcem', 'newton'"):
        emstats.tobit(FORMULA, affairs).fit(method="bogus")


def test_callback_can_stop(affairs):
    seen = []

    def cb(it, params, ll):
        seen.append(ll)
        return it >= 2

    res = emstats.tobit(FORMULA, affairs).fit(method="em", callback=cb)
    assert len(seen) == 2 and res.convergence.reason == "stopped by callback"


def test_start_params(affairs, res):
    r2 = emstats.tobit(FORMULA, affairs).fit(start_params=res.params.to_numpy() * 1.1)
    assert_allclose(r2.params, res.params, rtol=1e-6)
    with pytest.raises(ValueError, match="start_params must hold 7"):
        emstats.tobit(FORMULA, affairs).fit(start_params=[1, 2])


def test_threads_bitwise_identical(rng):
    n = 20000
    y, X, lim = simulate(rng, n=n, p=5, kind="two")
    m = emstats.Tobit(y, X, **lim)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        r1 = m.fit(method="em", n_threads=1, maxiter=20).params.to_numpy()
        r2 = m.fit(method="em", n_threads=2, maxiter=20).params.to_numpy()
        r3 = m.fit(method="em", n_threads=3, maxiter=20).params.to_numpy()
    assert_array_equal(r1, r2)
    assert_array_equal(r1, r3)


def test_progress_bar(affairs, capsys):
    res = emstats.tobit(FORMULA, affairs).fit(progress=True)
    assert res.convergence.converged


# -- results ---------------------------------------------------------------------------

def test_summary_tables(res):
    txt = res.summary().as_text()
    for s in ("Tobit Regression Results", "Left-censored:", "451", "Uncensored:", "150",
              "Log(scale)", "Louis", "EM rate", "max |score|", "Converged:", "yes",
              "-705.57622"):
        assert s in txt, s
    assert "<table" in res.summary().as_html()
    assert "tabular" in res.summary().as_latex()


def test_conf_int_and_tests(res):
    ci = res.conf_int(0.1)
    q = stats.norm.isf(0.05)
    assert_allclose(ci[0], res.params - q * res.bse)
    tt = res.t_test("rating = -2")
    assert_allclose(tt.effect, res.params["rating"])
    assert_allclose(tt.statistic, (res.params["rating"] + 2) / res.bse["rating"])
    wt = res.wald_test("age = 0, occupation = 0")
    r = np.zeros((2, 7))
    r[0, 1] = r[1, 4] = 1
    b = r @ res.params.to_numpy()
    v = r @ res.cov_params().to_numpy() @ r.T
    assert_allclose(float(np.squeeze(wt.statistic)), b @ np.linalg.solve(v, b))
    assert_allclose(float(wt.pvalue), stats.chi2.sf(b @ np.linalg.solve(v, b), 2))


def test_scale_and_delta_se(res):
    assert_allclose(res.scale, np.exp(res.params["Log(scale)"]))
    assert_allclose(res.scale_se, res.scale * res.bse["Log(scale)"])


def test_bootstrap_is_seeded_and_close_to_louis(affairs):
    m = emstats.tobit("affairs ~ age + rating", affairs)
    b1 = m.fit(cov_type="bootstrap", n_boot=60, seed=3)
    b2 = m.fit(cov_type="bootstrap", n_boot=60, seed=3)
    assert_array_equal(b1.bse, b2.bse)
    lou = m.fit()
    assert_allclose(b1.bse, lou.bse, rtol=0.35)
    assert b1.extra["bootstrap_replicates"].shape == (60, 4)


def test_plot_convergence(res):
    ax = res.plot_convergence()
    assert ax.get_ylabel()


# -- predictions and marginal effects ------------------------------------------------

def test_predict_against_numerical_integration(res, affairs):
    new = affairs.iloc[:5]
    mu = res.predict(new, which="linear").to_numpy()
    s = res.scale
    mean = res.predict(new, which="mean").to_numpy()
    prob = res.predict(new, which="prob_uncensored").to_numpy()
    cmean = res.predict(new, which="conditional_mean").to_numpy()
    for i in range(5):
        dens = stats.norm(mu[i], s)
        assert_allclose(prob[i], dens.sf(0.0), rtol=1e-12)
        e_pos = integrate.quad(lambda t, d=dens: t * d.pdf(t), 0, np.inf)[0]
        assert_allclose(mean[i], e_pos, rtol=1e-8)  # E[max(y*, 0)]
        assert_allclose(cmean[i], e_pos / dens.sf(0.0), rtol=1e-8)
    assert_allclose(res.predict(which="linear").to_numpy(), res.model.linear_predictor(
        res.params.to_numpy()))


def test_predict_two_limits(affairs):
    r = emstats.tobit(FORMULA, affairs, censor_left=0, censor_right=4).fit()
    mu = r.predict(affairs.iloc[:3], which="linear").to_numpy()
    mean = r.predict(affairs.iloc[:3]).to_numpy()
    for i in range(3):
        d = stats.norm(mu[i], r.scale)
        want = 4 * d.sf(4) + integrate.quad(lambda t, d=d: t * d.pdf(t), 0, 4)[0]
        assert_allclose(mean[i], want, rtol=1e-8)


def test_predict_new_data_errors(res, affairs):
    with pytest.raises(DataError, match="not in the data"):
        res.predict(affairs.drop(columns="rating"))
    with pytest.raises(ValueError, match="which must be one of"):
        res.predict(which="median")


@pytest.mark.parametrize("case,at,which", [
    ("overall_mean", "overall", "mean"), ("atmean_mean", "mean", "mean"),
    ("overall_prob", "overall", "prob_uncensored"), ("atmean_prob", "mean", "prob_uncensored"),
])
def test_marginal_effects_against_r(res, case, at, which):
    import json

    ref = json.loads((RESULTS_DIR / "tobit_margeff.json").read_text())["cases"][case]
    me = res.get_margeff(at=at, which=which)
    names = list(ref["effect"])
    assert list(me.margeff.index) == names
    assert_allclose(me.margeff.to_numpy(), [ref["effect"][k] for k in names], rtol=1e-6)
    assert_allclose(me.margeff_se.to_numpy(), [ref["se"][k] for k in names], rtol=1e-4)
    frame = me.summary_frame()
    assert list(frame.columns[:4]) == ["dy/dx", "std err", "z", "P>|z|"]
    assert "Marginal effects" in me.summary().as_text()


def test_marginal_effects_are_derivatives_of_predictions(res, affairs):
    """AME of 'conditional_mean' equals a finite difference of the averaged prediction."""
    me = res.get_margeff(which="conditional_mean")
    h = 1e-5
    up, dn = affairs.copy(), affairs.copy()
    up["age"] += h
    dn["age"] -= h
    fd = (res.predict(up, which="conditional_mean").mean()
          - res.predict(dn, which="conditional_mean").mean()) / (2 * h)
    assert_allclose(me.margeff["age"], fd, rtol=1e-6)
    assert_allclose(res.get_margeff(which="linear").margeff["age"], res.params["age"])


# -- data handling and bad input ---------------------------------------------------------

def test_dataframe_not_modified(affairs):
    df = affairs.copy()
    df.loc[3, "age"] = np.nan
    before = df.copy()
    emstats.tobit(FORMULA, df, censor_left=0).fit()
    pd.testing.assert_frame_equal(df, before)


def test_missing_drop_and_raise(affairs):
    df = affairs.copy()
    df.loc[[3, 10], "age"] = np.nan
    df.loc[5, "affairs"] = np.nan
    m = emstats.tobit(FORMULA, df)
    assert m.n_dropped == 3 and m.X.shape[0] == 598
    res = m.fit()
    assert "Rows dropped (NA):" in res.summary().as_text()
    msg = r"missing values in regressors age: 2 row\(s\), response affairs: 1 row"
    with pytest.raises(DataError, match=msg):
        emstats.tobit(FORMULA, df, missing="raise")


@pytest.mark.parametrize("formula,match", [
    ("affairs ~ age + nosuchcol", "names column 'nosuchcol', which is not in the data"),
    ("gender ~ age", "response 'gender' is not numeric"),
    ("affairs + age", "exactly one '~'"),
])
def test_formula_errors(affairs, formula, match):
    with pytest.raises(DataError, match=match):
        emstats.tobit(formula, affairs)


def test_bad_input_errors(affairs):
    with pytest.raises(DataError, match="data is empty"):
        emstats.tobit(FORMULA, affairs.iloc[:0])
    with pytest.raises(DataError, match="all 451 observations are censored"):
        emstats.tobit(FORMULA, affairs[affairs.affairs == 0])
    df = affairs.copy()
    df["age2"] = 2 * df["age"]
    with pytest.raises(SingularDesignError, match="singular .*'age2?' is a linear combination"):
        emstats.tobit("affairs ~ age + age2 + rating", df)
    with pytest.raises(DataError, match="outside its censoring limits in 80 row"):
        emstats.tobit(FORMULA, affairs, censor_left=0, censor_right=4, beyond_limits="raise")
    with pytest.raises(DataError, match="censor_left is not below censor_right"):
        emstats.tobit(FORMULA, affairs, censor_left=5, censor_right=4)
    with pytest.raises(DataError, match="column 'nope' is not in the data"):
        emstats.tobit(FORMULA, affairs, censor_left="nope")
    with pytest.raises(DataError, match="weights must be positive"):
        emstats.tobit(FORMULA, affairs, weights=-np.ones(len(affairs)))
    with pytest.raises(ValueError, match="missing must be"):
        emstats.tobit(FORMULA, affairs, missing="ignore")


def test_intreg_bad_input(affairs):
    df = affairs.copy()
    df["lo"] = df["affairs"] + 1.0
    df["hi"] = df["affairs"].astype(float)
    with pytest.raises(DataError, match="lower limit is above the upper limit in 601 row"):
        emstats.intreg("lo + hi ~ age", df)
    df["lo"] = np.nan
    df["hi"] = np.nan
    with pytest.raises(DataError, match="no complete rows"):
        emstats.intreg("lo + hi ~ age", df)
    with pytest.raises(DataError, match="must name 2 response"):
        emstats.intreg("lo ~ age", df)


def test_censoring_column_per_row(affairs):
    df = affairs.copy()
    df["c"] = 0.0
    a = emstats.tobit(FORMULA, df, censor_left="c").fit()
    b = emstats.tobit(FORMULA, df, censor_left=0).fit()
    assert_allclose(a.params, b.params, rtol=1e-12)
    with pytest.raises(DataError, match="per-row censor_left"):
        emstats.Tobit(a.model.endog, a.model.X, censor_left=np.zeros(601)).fit().predict(
            a.model.X)


def test_array_interface_names(rng):
    y, X, lim = simulate(rng)
    res = emstats.Tobit(y, X, **lim).fit()
    assert list(res.params.index) == ["x0", "x1", "x2", "Log(scale)"]
    res = emstats.Tobit(y, X, exog_names=["c", "a", "b"], **lim).fit()
    assert list(res.params.index) == ["c", "a", "b", "Log(scale)"]


def test_supplemented_em_equals_louis(affairs):
    a = emstats.tobit(FORMULA, affairs).fit(tol=1e-12)
    b = emstats.tobit(FORMULA, affairs).fit(tol=1e-12, cov_type="sem")
    assert b.cov_type == "sem" and "supplemented EM" in b.summary().as_text()
    assert_allclose(b.cov_params().to_numpy(), a.cov_params().to_numpy(), rtol=1e-6, atol=1e-9)
    # the EM map's Jacobian has the fractions of missing information as eigenvalues
    eig = np.max(np.abs(np.linalg.eigvals(b.extra["em_jacobian"])))
    assert_allclose(eig, a.convergence.em_rate, rtol=1e-6)


@pytest.mark.parametrize("y, X, match", [
    (np.array([1.0]), np.ones((1, 1)), "1 row.* cannot identify 1 coefficient"),
    # as many rows as coefficients, one of them censored: interpolated, scale -> 0
    (np.array([1.0, 0.0]), np.column_stack([np.ones(2), [0.0, 1.0]]),
     "2 row.* cannot identify 2 coefficient"),
    (np.full(20, 2.0), np.ones((20, 1)), "the response is constant"),
    (np.arange(20.0) + 1, np.column_stack([np.ones(20), np.arange(20.0)]),
     "fit them without error"),
])
def test_degenerate_data_is_a_data_error(y, X, match):
    with pytest.raises(DataError, match=match):
        emstats.Tobit(y, X, censor_left=0).fit()


def test_start_pass_counts_and_completed_least_squares():
    """The one-pass censoring counts and the start (weighted least squares on the completed
    response: interval midpoints, else the finite bound) equal their numpy definitions, on
    Fortran-ordered data with weights, an offset and every kind of censoring."""
    from emstats.models.censored import CensoredRegression

    rng = np.random.default_rng(8)
    n = 10_000                      # several kernel chunks
    X = np.asfortranarray(np.column_stack([np.ones(n), rng.normal(size=(n, 3))]))
    y = X @ np.array([0.5, 1.0, -1.0, 0.3]) + rng.normal(size=n)
    kind = rng.integers(0, 4, n)    # exact, left, right, interval
    lo = np.where(kind == 1, -np.inf, np.where(kind == 3, np.floor(y), y))
    hi = np.where(kind == 2, np.inf, np.where(kind == 3, np.floor(y) + 1, y))
    w = rng.integers(1, 4, n).astype(float)
    off = rng.normal(scale=0.1, size=n)
    m = CensoredRegression(lo, hi, X, weights=w, offset=off)
    assert (m.n_exact, m.n_left, m.n_right, m.n_interval) == tuple(
        int((kind == k).sum()) for k in range(4))
    yc = np.where(np.isfinite(lo) & np.isfinite(hi), 0.5 * (lo + hi),
                  np.where(np.isfinite(lo), lo, hi)) - off
    sw = np.sqrt(w)
    beta = np.linalg.lstsq(X * sw[:, None], yc * sw, rcond=None)[0]
    s2 = float(w @ (yc - X @ beta) ** 2) / (w.sum() - 4)
    b0, s0 = m._start
    np.testing.assert_allclose(b0, beta, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(s0, s2, rtol=1e-10)
