"""The multivariate normal with missing values (emstats.mvn) and multiple imputation.

Witnesses: lavaan's saturated model with missing = "ml" and observed information on
mice::nhanes and on five bfi items (tests/results/mvn_missing.json, made by
tests/results/r_scripts/mvn_missing.R); a direct numerical maximisation of the
observed-data log-likelihood (log-Cholesky, scipy) written independently here; a
numerical Hessian for Louis' standard errors; the closed form for complete data;
mice::pool on mice's own completed data sets (an identity) and mice's pooled estimates
from its own imputations (within Monte Carlo error).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from numpy.testing import assert_allclose
from scipy import optimize, stats

import emstats
from emstats.exceptions import DataError

FIXTURE = json.loads((Path(__file__).parent / "results" / "mvn_missing.json").read_text())


def _frame(cols: dict) -> pd.DataFrame:
    return pd.DataFrame({k: np.array([np.nan if v is None else v for v in vals], dtype=float)
                         for k, vals in cols.items()})


@pytest.fixture(scope="module", params=["nhanes", "bfi"])
def case(request):
    c = FIXTURE["cases"][request.param]
    df = _frame(c["data"])
    model = emstats.mvn(df)
    # tight tol and ptol: the comparison is with lavaan's rel.tol = 1e-14 optimum
    res = model.fit(tol=1e-13, ptol=1e-10)
    return request.param, c, df, model, res


def test_matches_lavaan(case):
    _, c, _, _, res = case
    lav = c["lavaan"]
    assert lav["converged"] and res.convergence.converged
    # both at the maximum: the log-likelihood is flat to second order there
    assert abs(res.llf - lav["loglik"]) < 1e-9 * abs(lav["loglik"])
    assert abs(res.llf - lav["h1_loglik"]) < 1e-9 * abs(lav["loglik"])
    est = pd.Series(lav["coefficients"])[res.params.index]
    se = pd.Series(lav["bse"])[res.params.index]
    # lavaan's estimates are converged to about sqrt(1e-14) relative (nlminb's rel.tol on
    # the objective): 1e-5 standard errors covers it with room
    assert np.max(np.abs(res.params - est) / se) < 1e-5
    # standard errors: observed information under MAR, both sides
    assert_allclose(res.bse, se, rtol=1e-5)
    V = pd.DataFrame(lav["vcov"]["values"], index=lav["vcov"]["rownames"],
                     columns=lav["vcov"]["colnames"]).loc[res.params.index, res.params.index]
    assert_allclose(res.cov_params().to_numpy(), V.to_numpy(), rtol=1e-4,
                    atol=1e-6 * np.abs(V.to_numpy()).max())
    assert_allclose(res.mean.to_numpy(), lav["mean"], rtol=1e-7)
    assert_allclose(res.cov.to_numpy(), np.array(lav["cov"]), rtol=1e-6,
                    atol=1e-7 * np.abs(np.array(lav["cov"])).max())


def test_little_and_patterns(case):
    _, c, _, model, res = case
    t = res.little_test
    # the same formula evaluated in R at lavaan's estimates (precise to ~1e-7)
    assert t.df == c["little"]["df"]
    assert_allclose(t.statistic, c["little"]["statistic"], rtol=1e-6)
    assert_allclose(t.pvalue, c["little"]["pvalue"], rtol=1e-6)
    tab = res.pattern_table
    ours = sorted((tuple(r[:-1]), r[-1]) for r in tab.to_numpy().tolist())
    obs = np.array(c["patterns"]["observed"], dtype=int)
    theirs = sorted((tuple(o), n) for o, n in zip(obs.tolist(), c["patterns"]["counts"],
                                                  strict=True))
    assert ours == theirs
    assert tab["n"].sum() == res.nobs
    s = str(res.summary())
    assert "Little's MCAR" in s and "patterns" in s


def test_louis_matches_numerical_hessian(case):
    _, _, _, model, res = case
    num = model.fit(cov_type="numerical", tol=1e-13, ptol=1e-10)
    # the step of a numerical Hessian: about 1e-4 relative
    assert_allclose(res.bse, num.bse, rtol=1e-4)
    fmi = res.fraction_missing_information
    assert np.all(fmi > -1e-10) and np.all(fmi < 1)
    eig = res.fraction_missing_eigen
    assert_allclose(eig[0], res.convergence.em_rate, rtol=1e-10)


def test_nhanes_dataset_is_the_fixture():
    df = emstats.datasets.load("nhanes")
    pd.testing.assert_frame_equal(df, _frame(FIXTURE["cases"]["nhanes"]["data"]))
    # age is complete: its ML mean and variance are the sample ones
    res = emstats.mvn(df).fit()
    assert_allclose(res.mean["age"], df["age"].mean(), rtol=1e-12)
    assert_allclose(res.cov.loc["age", "age"], df["age"].var(ddof=0), rtol=1e-10)


# ---------------------------------------------------------------------------------------
# direct maximisation and the closed form
# ---------------------------------------------------------------------------------------

def _mar_data(n=60, seed=3):
    rng = np.random.default_rng(seed)
    S = np.array([[1.0, 0.6, 0.3], [0.6, 2.0, -0.4], [0.3, -0.4, 1.5]])
    X = rng.multivariate_normal([1.0, -2.0, 0.5], S, size=n)
    # MAR: x2 missing more often when x1 is large; x3 missing at random
    X[rng.random(n) < stats.norm.cdf(X[:, 0] - 1.0), 1] = np.nan
    X[rng.random(n) < 0.2, 2] = np.nan
    return X


def _direct_negll(u, X):
    d = X.shape[1]
    mu = u[:d]
    L = np.zeros((d, d))
    L[np.tril_indices(d)] = u[d:]
    L[np.diag_indices(d)] = np.exp(np.diag(L))
    S = L @ L.T
    total = 0.0
    for x in X:                                  # row by row: no pattern grouping
        o = ~np.isnan(x)
        total += stats.multivariate_normal(mu[o], S[np.ix_(o, o)]).logpdf(x[o])
    return -total


def test_direct_maximisation():
    X = _mar_data()
    res = emstats.mvn(X).fit(tol=1e-13, ptol=1e-10)
    d = 3
    u0 = np.concatenate([np.nanmean(X, axis=0), [0, 0, 0, 0, 0, 0]])
    direct = optimize.minimize(_direct_negll, u0, args=(X,), method="BFGS",
                               options={"gtol": 1e-7})
    assert res.llf >= -direct.fun - 1e-8
    assert abs(res.llf + direct.fun) < 1e-7
    L = np.zeros((d, d))
    L[np.tril_indices(d)] = direct.x[d:]
    L[np.diag_indices(d)] = np.exp(np.diag(L))
    # BFGS's gtol limits the direct optimum to about 1e-5 relative
    assert_allclose(res.mean.to_numpy(), direct.x[:d], rtol=1e-5, atol=1e-5)
    assert_allclose(res.cov.to_numpy(), L @ L.T, rtol=1e-5, atol=1e-5)
    assert_allclose(res.llf, -_direct_negll(
        np.concatenate([res.mean, emstats.MVN(X).spec["cov"].pack(res.cov.to_numpy())]), X),
        rtol=1e-12)


def test_complete_data_is_the_closed_form():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 4)) @ rng.normal(size=(4, 4)) + 100.0
    res = emstats.mvn(X).fit()
    # identity: one EM step from any start gives the sample mean and ML covariance
    assert_allclose(res.mean.to_numpy(), X.mean(axis=0), rtol=1e-12)
    assert_allclose(res.cov.to_numpy(), np.cov(X, rowvar=False, bias=True), rtol=1e-12)
    ll = stats.multivariate_normal(X.mean(axis=0), np.cov(X, rowvar=False, bias=True)) \
        .logpdf(X).sum()
    assert_allclose(res.llf, ll, rtol=1e-12)
    # no missing information: complete = observed, every fraction zero
    assert_allclose(res.fraction_missing_information, 0.0, atol=1e-12)
    assert res.little_test.df == 0


def test_drop_and_raise():
    X = _mar_data()
    cc = X[~np.isnan(X).any(axis=1)]
    r = emstats.mvn(X, missing="drop").fit()
    assert r.n_dropped == len(X) - len(cc)
    assert_allclose(r.cov.to_numpy(), np.cov(cc, rowvar=False, bias=True), rtol=1e-12)
    with pytest.raises(DataError, match="missing values in column"):
        emstats.mvn(X, missing="raise")
    with pytest.raises(ValueError, match="missing must be"):
        emstats.mvn(X, missing="pairwise")


# ---------------------------------------------------------------------------------------
# the engine contract
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["em", "squarem", "newton", "incremental", "gradient"])
def test_every_method_reaches_the_mle(method):
    model = emstats.mvn(emstats.datasets.load("nhanes"))
    best = model.fit(method="newton", tol=1e-13)
    opts = {"n_blocks": 2} if method == "incremental" else None
    r = model.fit(method=method, tol=1e-13, maxiter=20_000, method_options=opts)
    assert abs(r.llf - best.llf) < 1e-9 * abs(best.llf)


def test_default_method_and_no_state():
    model = emstats.mvn(emstats.datasets.load("nhanes"))
    a = model.fit()
    b = model.fit()
    assert a.convergence.method == "squarem"
    assert np.array_equal(a.params.to_numpy(), b.params.to_numpy())
    c = model.fit(n_threads=1)
    d = model.fit(n_threads=2)
    assert np.array_equal(c.params.to_numpy(), d.params.to_numpy())
    assert np.array_equal(c.bse.to_numpy(), d.bse.to_numpy())


def test_statistics_add_over_chunks():
    model = emstats.mvn(_mar_data())
    p = model.start_params()
    whole, ll = model.chunk_stats(p, model.data.chunks(1)[0])
    parts = [model.chunk_stats(p, ch) for ch in model.data.chunks(3)]
    assert_allclose(sum(s for s, _ in parts)["ss"], whole["ss"], rtol=1e-12)
    assert_allclose(sum(v for _, v in parts), ll, rtol=1e-12)


def test_formula_interface():
    df = emstats.datasets.load("nhanes")
    a = emstats.mvn("~ age + bmi + hyp + chl", data=df).fit()
    b = emstats.mvn(df).fit()
    assert_allclose(a.params, b.params, rtol=1e-12)
    c = emstats.mvn("~ bmi + np.log(chl)", data=df).fit()
    assert c.mean.index.tolist() == ["bmi", "np.log(chl)"]
    df2 = df.assign(group=["a", "b", "c", "d", "e"] * 5)
    with pytest.raises(DataError, match="group"):
        emstats.mvn("~ bmi + group", data=df2)
    with pytest.raises(DataError, match="one-sided"):
        emstats.mvn("chl ~ bmi", data=df)


# ---------------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------------

def test_bad_input():
    df = emstats.datasets.load("nhanes")
    with pytest.raises(DataError, match="entirely missing: extra"):
        emstats.mvn(df.assign(extra=np.nan))
    with pytest.raises(DataError, match="not numeric: name"):
        emstats.mvn(df.assign(name="x"))
    # bmi and chl observed together in one row only
    bad = df.copy()
    both = bad.index[bad["bmi"].notna() & bad["chl"].notna()]
    bad.loc[both[1:], "chl"] = np.nan
    with pytest.raises(DataError, match=r"\(bmi, chl\): 1 row"):
        emstats.mvn(bad)
    with pytest.raises(DataError, match="infinite values in column.*bmi"):
        emstats.mvn(df.assign(bmi=np.inf))
    with pytest.raises(DataError, match="constant"):
        emstats.mvn(df.assign(hyp=1.0))
    with pytest.raises(DataError, match="more rows than variables"):
        emstats.mvn(np.random.default_rng(0).normal(size=(3, 3)))


_DEPENDENT = [
    ("a copy", lambda X: X[:, 0], "'x6' is equal to a multiple of 'x1' plus a constant"),
    ("a rescaled copy", lambda X: 3.0 - 2.5 * X[:, 2],
     "'x6' is equal to a multiple of 'x3' plus a constant"),
    ("a sum", lambda X: X[:, 0] + X[:, 3] - 0.5 * X[:, 1],
     "'x6' is a linear combination of 'x1', 'x2', 'x4'"),
]


@pytest.mark.parametrize("make, message", [c[1:] for c in _DEPENDENT],
                         ids=[c[0] for c in _DEPENDENT])
def test_linearly_dependent_columns_are_refused_by_name(make, message):
    """The sample covariance is singular: the normal's likelihood is unbounded (it gave a
    LinAlgError), the factor model's estimate a Heywood case at log-likelihood +1135;
    probabilistic PCA's likelihood is bounded and it fits."""
    X = np.random.default_rng(3).normal(size=(200, 5))
    X = np.column_stack([X, make(X)])
    before = X.copy()
    for build in (emstats.mvn, lambda x: emstats.factor_analysis(x, 2)):
        with pytest.raises(DataError, match=message + r" \(the sample covariance matrix is "
                           r"singular\)"):
            build(X)
    res = emstats.ppca(X, 2).fit()
    assert np.isfinite(res.llf) and np.all(res.params > -np.inf)
    np.testing.assert_array_equal(X, before)


def test_nearly_dependent_columns_still_fit():
    """A column that is a combination of others plus noise of 1e-2 of its scale (R^2 =
    1 - 1e-4) is not refused: the residual variance test is at 1e-11."""
    X = np.random.default_rng(4).normal(size=(300, 4))
    X = np.column_stack([X, X[:, 0] + 1e-2 * np.random.default_rng(5).normal(size=300)])
    res = emstats.mvn(X).fit()
    np.testing.assert_allclose(res.cov, np.cov(X.T, bias=True), rtol=1e-6, atol=1e-12)


def test_empty_rows_dropped_and_counted():
    df = emstats.datasets.load("nhanes")
    extra = pd.DataFrame(np.nan, index=[100, 101], columns=df.columns)
    df2 = pd.concat([df, extra])
    r = emstats.mvn(df2).fit()
    r0 = emstats.mvn(df).fit()
    assert r.n_dropped == 2 and r.nobs == 25
    assert_allclose(r.params, r0.params, rtol=1e-12)
    assert "2 row(s) with no observed value dropped" in str(r.summary())
    with pytest.raises(DataError):
        emstats.mvn(df2, missing="raise")


# ---------------------------------------------------------------------------------------
# imputation and pooling
# ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def nhanes_res():
    return emstats.mvn(emstats.datasets.load("nhanes")).fit()


def test_impute_conditional_means(nhanes_res):
    df = emstats.datasets.load("nhanes")
    filled = nhanes_res.impute(m=None)
    obs = df.notna()
    assert not filled.isna().any().any()
    assert_allclose(filled[obs].fillna(0), df[obs].fillna(0), rtol=0, atol=0)
    # row 0 observes age only: E[x | age] = mu + Sigma[:, age] / Sigma[age, age] (age - mu)
    mu, S = nhanes_res.mean, nhanes_res.cov
    want = mu + S["age"] / S.loc["age", "age"] * (df.loc[0, "age"] - mu["age"])
    assert_allclose(filled.loc[0].to_numpy(), want.to_numpy(), rtol=1e-12)


def test_impute_draws(nhanes_res):
    df = emstats.datasets.load("nhanes")
    imps = nhanes_res.impute(m=5, seed=1)
    again = nhanes_res.impute(m=5, seed=1)
    assert len(imps) == 5
    obs = df.notna()
    for a, b in zip(imps, again, strict=True):
        pd.testing.assert_frame_equal(a, b)
        assert not a.isna().any().any()
        assert_allclose(a[obs].fillna(0), df[obs].fillna(0), rtol=0, atol=0)
    assert not np.allclose(imps[0].to_numpy(), imps[1].to_numpy())
    with pytest.raises(ValueError, match="m must be"):
        nhanes_res.impute(m=0)


def test_parameter_draws_are_valid(nhanes_res):
    rng = np.random.default_rng(0)
    draws = [nhanes_res._draw_params(rng) for _ in range(2000)]
    for p in draws[:200]:
        np.linalg.cholesky(p["cov"])
    # the draws of the means have the Louis covariance (Monte Carlo: 4 s.e. of an sd
    # from 2000 draws is 4 / sqrt(4000) = 6%)
    m = np.array([p["mean"] for p in draws])
    assert_allclose(m.std(axis=0), nhanes_res.bse_mean.to_numpy(), rtol=0.065)


def test_mi_fit_is_mice_pool_on_mices_imputations():
    mp = FIXTURE["cases"]["nhanes"]["mice_pool"]
    imps = [_frame(d) for d in mp["completed"]]
    pooled = emstats.mi_fit(imps, fit=lambda d: smf.ols("chl ~ age + bmi", data=d).fit())
    assert pooled.m == 5 and pooled.df_com == mp["dfcom"]
    # an identity: the same arithmetic on the same numbers
    for ours, key in [(pooled.params, "estimate"), (np.diag(pooled.within), "ubar"),
                      (np.diag(pooled.between), "b"), (np.diag(pooled.total), "t"),
                      (pooled.df, "df"), (pooled.riv, "riv"), (pooled.lambda_, "lambda"),
                      (pooled.fmi, "fmi"), (pooled.bse, "std_error"),
                      (pooled.pvalues, "p_value")]:
        assert_allclose(np.asarray(ours), mp[key], rtol=1e-9, err_msg=key)
    fr = pooled.summary_frame()
    assert list(fr.index) == ["Intercept", "age", "bmi"]
    assert "Rubin" in str(pooled.summary())


def test_mi_pooled_estimates_agree_with_mice(nhanes_res):
    mc = FIXTURE["cases"]["nhanes"]["mice_mc"]
    m = mc["m"]
    pooled = emstats.mi_fit(nhanes_res.impute(m=m, seed=3),
                            fit=lambda d: smf.ols("chl ~ age + bmi", data=d).fit())
    # Monte Carlo error of both pooled means: sqrt((B_ours + B_mice) / m); 4 of them.
    # (The between-imputation variances differ: mice's chained Bayesian regressions and
    # the normal approximation at the MLE are different imputation models at n = 25.)
    mcse = np.sqrt((np.diag(pooled.between) + np.array(mc["b"])) / m)
    assert np.all(np.abs(pooled.params.to_numpy() - np.array(mc["estimate"])) < 4 * mcse)


def test_mi_fit_with_emstats_models(nhanes_res):
    imps = nhanes_res.impute(m=3, seed=0)
    pooled = emstats.mi_fit(imps, fit=lambda d: emstats.mvn(d[["bmi", "chl"]]).fit())
    assert pooled.params.index.tolist()[:2] == ["mean(bmi)", "mean(chl)"]
    assert np.all(pooled.total.to_numpy().diagonal() >= pooled.within.to_numpy().diagonal())
    with pytest.raises(ValueError, match="at least 2"):
        emstats.mi_fit(imps[:1], fit=lambda d: smf.ols("chl ~ bmi", data=d).fit())


def test_singular_covariance_during_the_fit_is_a_data_error():
    """Four rows, three variables and a third of the values missing: the covariance goes
    singular (the likelihood is unbounded); found by tests/test_properties.py."""
    X = np.array([[0.34558419, 0.82161814, 0.33043708], [-1.30315723, 0.90535587, 0.44637457],
                  [-0.53695324, 0.5811181, 0.3645724], [0.2941325, 0.02842224, 0.54671299]])
    X.flat[::4] = np.nan
    with pytest.raises(emstats.DataError, match="covariance estimate became singular"), \
            warnings.catch_warnings():
        # on the way to the singularity round-off may also lower the log-likelihood
        warnings.simplefilter("ignore", emstats.LikelihoodDecreaseWarning)
        emstats.mvn(X).fit()
