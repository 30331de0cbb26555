"""Zero-inflated count regressions against pscl::zeroinfl (tests/results/zeroinfl_biochemists.json,
from tests/results/r_scripts/zeroinfl_biochemists.R)."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

import emstats
from emstats import DataError
from tests.results.fixtures import RESULTS_DIR

FIX = json.loads((RESULTS_DIR / "zeroinfl_biochemists.json").read_text())
SPECS = {
    "poisson_const": ("art ~ . | 1", "poisson"),
    "negbin_const": ("art ~ . | 1", "negbin"),
    "poisson_ment": ("art ~ fem + mar + kid5 + phd + ment | ment", "poisson"),
    "negbin_ment": ("art ~ fem + mar + kid5 + phd + ment | ment", "negbin"),
    "poisson_same": ("art ~ fem + mar + kid5 + phd + ment", "poisson"),
}
#: patsy's names of pscl's (R's) coefficient names
RENAME = {"(Intercept)": "Intercept", "femWomen": "fem[T.Women]",
          "marMarried": "mar[T.Married]"}


@pytest.fixture(scope="module")
def bio() -> pd.DataFrame:
    df = pd.DataFrame(FIX["data"])
    df["fem"] = pd.Categorical(df["fem"], ["Men", "Women"])
    df["mar"] = pd.Categorical(df["mar"], ["Single", "Married"])
    return df


def _r_series(case, key) -> pd.Series:
    vals = case[key]
    out = {}
    for name, v in vals.items():
        part, _, var = name.partition("_")
        out[f"{part}_{RENAME.get(var, var)}"] = v
    return pd.Series(out)


def _fit(bio, case, **kw):
    f, dist = SPECS[case]
    # ptol: the parameters stop to 1e-10 relative, far inside the 1e-6 asked of them
    return emstats.zeroinfl(f, bio, dist=dist).fit(ptol=1e-10, tol=1e-12, **kw)


@pytest.mark.parametrize("case", ["poisson_const", "poisson_ment", "negbin_ment",
                                  "poisson_same"])
def test_against_pscl(bio, case):
    c = FIX["cases"][case]
    res = _fit(bio, case)
    rc, rs = _r_series(c, "coefficients"), _r_series(c, "bse")
    names = list(rc.index)
    # pscl's optim (BFGS, reltol 1e-14) stops within about 1e-7 of the maximum
    np.testing.assert_allclose(res.params[names], rc[names], atol=1e-6)
    assert res.llf == pytest.approx(c["loglik"], abs=1e-6)
    # pscl's SEs come from optim's finite-difference Hessian
    np.testing.assert_allclose(res.bse[names], rs[names], rtol=1e-3)
    if "theta" in c:
        assert res.theta == pytest.approx(c["theta"], rel=1e-6)
        assert res.bse["Log(theta)"] == pytest.approx(c["se_log_theta"], rel=1e-3)
    assert res.k_params == c["df"]


def test_negbin_constant_inflation_boundary(bio):
    # art ~ . | 1 with the NB: the inflation probability goes to 0 (zero intercept to
    # -inf, pscl stops at -18 with SE 1390); the likelihood is flat there, so compare
    # the likelihood and the count part only
    c = FIX["cases"]["negbin_const"]
    # no ptol: the zero intercept drifts on a flat likelihood
    res = emstats.zeroinfl(*SPECS["negbin_const"][:1], bio, dist="negbin").fit(tol=1e-12)
    rc, rs = _r_series(c, "coefficients"), _r_series(c, "bse")
    cnt = [n for n in rc.index if n.startswith("count_")]
    assert res.llf >= c["loglik"] - 1e-6
    assert res.params["zero_Intercept"] < -10
    np.testing.assert_allclose(res.params[cnt], rc[cnt], atol=1e-5)
    np.testing.assert_allclose(res.bse[cnt], rs[cnt], rtol=1e-3)
    assert res.theta == pytest.approx(c["theta"], rel=1e-5)


@pytest.mark.parametrize("case", ["poisson_ment", "negbin_ment"])
def test_louis_matches_numerical_hessian(bio, case):
    louis = _fit(bio, case)
    num = _fit(bio, case, cov_type="numerical")
    # the numerical Hessian's step error: about 1e-4 relative in the SEs
    np.testing.assert_allclose(louis.bse, num.bse, rtol=1e-4)
    assert np.max(np.abs(louis.convergence.max_abs_score)) < 1e-4


def test_predict(bio):
    res = _fit(bio, "negbin_ment")
    mu, pi = res.predict(which="count"), res.predict(which="zero")
    np.testing.assert_allclose(res.predict(), (1 - pi) * mu)
    prob = res.predict(which="prob")
    assert prob.shape == (len(bio), int(bio["art"].max()) + 1)
    assert np.all((prob > 0) & (prob < 1))
    full = res.predict(which="prob", at=np.arange(400))
    np.testing.assert_allclose(full.sum(axis=1), 1.0, atol=1e-10)
    # the mean from the probabilities
    np.testing.assert_allclose(full.to_numpy() @ np.arange(400), res.predict(), rtol=1e-8)
    new = bio.iloc[:5]
    np.testing.assert_allclose(res.predict(new, which="mean"), res.predict().iloc[:5])
    with pytest.raises(ValueError, match="which"):
        res.predict(which="nope")


def test_same_regressors_and_summary(bio):
    res = _fit(bio, "poisson_same")
    assert [n for n in res.param_names if n.startswith("zero_")] == [
        "zero_Intercept", "zero_fem[T.Women]", "zero_mar[T.Married]", "zero_kid5",
        "zero_phd", "zero_ment"]
    text = str(res.summary())
    assert "count_ment" in text and "zero_ment" in text
    tau = res.posterior_zero
    assert np.all(tau[bio["art"].to_numpy() > 0] == 0) and np.all((tau >= 0) & (tau <= 1))


def test_simulated_recovery():
    rng = np.random.default_rng(3)
    n = 4000
    x, z = rng.normal(size=n), rng.normal(size=n)
    pi = 1 / (1 + np.exp(-(-0.5 + 1.0 * z)))
    y = np.where(rng.random(n) < pi, 0, rng.poisson(np.exp(0.5 + 0.4 * x)))
    res = emstats.zeroinfl("y ~ x | z", pd.DataFrame({"y": y, "x": x, "z": z})).fit()
    truth = np.array([0.5, 0.4, -0.5, 1.0])
    assert np.all(np.abs(res.params.to_numpy() - truth) < 4 * res.bse.to_numpy())


@pytest.mark.parametrize("y, msg", [
    ([0, 1, -1, 2, 0, 3, 1, 0], "non-negative integer"),
    ([0, 1, 1.5, 2, 0, 3, 1, 0], "non-negative integer"),
    ([1, 1, 2, 2, 1, 3, 1, 4], "no zeros"),
    ([0, 0, 0, 0, 0, 0, 0, 0], "zero in every row"),
])
def test_bad_response(y, msg):
    df = pd.DataFrame({"y": y, "x": np.arange(8.0)})
    with pytest.raises(DataError, match=msg):
        emstats.zeroinfl("y ~ x | 1", df)


def test_bad_formula(bio):
    with pytest.raises(DataError, match="nosuch"):
        emstats.zeroinfl("art ~ ment | nosuch", bio)
    with pytest.raises(DataError, match="more than one"):
        emstats.zeroinfl("art ~ ment | phd | kid5", bio)
    with pytest.raises(ValueError, match="dist"):
        emstats.zeroinfl("art ~ ment", bio, dist="gaussian")


def test_weights_match_replication(bio):
    sub = bio.iloc[:300].reset_index(drop=True)
    w = np.where(np.arange(300) % 3 == 0, 2.0, 1.0)
    rep = pd.concat([sub, sub[w == 2]], ignore_index=True)
    a = emstats.zeroinfl("art ~ ment + fem | ment", sub, weights=w).fit()
    b = emstats.zeroinfl("art ~ ment + fem | ment", rep).fit()
    np.testing.assert_allclose(a.params, b.params, atol=1e-6)
    np.testing.assert_allclose(a.bse, b.bse, rtol=1e-5)
    assert a.llf == pytest.approx(b.llf, abs=1e-6)


HFIX = json.loads((RESULTS_DIR / "hurdle_biochemists.json").read_text())
HSPECS = {"poisson_const": ("art ~ . | 1", "poisson"),
          "negbin_ment": ("art ~ fem + mar + kid5 + phd + ment | ment", "negbin"),
          "poisson_same": ("art ~ fem + mar + kid5 + phd + ment", "poisson")}


@pytest.mark.parametrize("case", list(HSPECS))
def test_hurdle_against_pscl(bio, case):
    c = HFIX["cases"][case]
    f, dist = HSPECS[case]
    res = emstats.hurdle(f, bio, dist=dist).fit(ptol=1e-10, tol=1e-12)
    rc, rs = _r_series(c, "coefficients"), _r_series(c, "bse")
    names = list(rc.index)
    np.testing.assert_allclose(res.params[names], rc[names], atol=1e-6)
    assert res.llf == pytest.approx(c["loglik"], abs=1e-6)
    np.testing.assert_allclose(res.bse[names], rs[names], rtol=1e-3)
    if "theta" in c:
        assert res.theta == pytest.approx(c["theta"], rel=1e-6)
        assert res.bse["Log(theta)"] == pytest.approx(c["se_log_theta"], rel=1e-3)
    num = emstats.hurdle(f, bio, dist=dist).fit(ptol=1e-10, tol=1e-12, cov_type="numerical")
    np.testing.assert_allclose(res.bse, num.bse, rtol=1e-4)
    full = res.predict(which="prob", at=np.arange(400))
    np.testing.assert_allclose(full.sum(axis=1), 1.0, atol=1e-10)
    np.testing.assert_allclose(full.to_numpy() @ np.arange(400), res.predict(), rtol=1e-8)
    np.testing.assert_allclose(full[0], 1 - 1 / (1 + np.exp(-(res.model.data["Z"]
                                                              @ res.zero_params.to_numpy()))))


def test_hurdle_bad_response():
    df = pd.DataFrame({"y": [1, 1, 2, 2, 1, 3, 1, 4], "x": np.arange(8.0)})
    with pytest.raises(DataError, match="no zeros"):
        emstats.hurdle("y ~ x | 1", df)


def _separated():
    x = np.linspace(-2.0, 2.0, 40)
    y = np.where(x > 0.5, np.random.default_rng(0).poisson(3.0, 40), 0)
    return pd.DataFrame({"y": y, "x": x})


@pytest.mark.parametrize("fit, df, msg", [
    # one positive count for two count coefficients: count and zero parts diverge together
    ("zeroinfl", pd.DataFrame({"y": [0, 0, 0, 1, 0, 0, 0, 0, 0, 0],
                               "x": np.random.default_rng(0).normal(size=10)}),
     "only 1 row.* non-zero y for the 2 coefficient"),
    # x > 0.5 has the positive counts: the zero part's slope diverges
    ("zeroinfl", _separated(), "zero part's regressors separate the zeros .* 'x'"),
    ("hurdle", _separated(), "zero part's regressors separate the zeros .* 'x'"),
    ("hurdle", pd.DataFrame({"y": [0, 1, 0, 1, 1, 0, 0, 1, 0, 0], "x": np.arange(10.0)}),
     "every non-zero y is 1"),
])
def test_divergent_estimates_are_data_errors(fit, df, msg):
    with pytest.raises(DataError, match=msg):
        getattr(emstats, fit)("y ~ x", df).fit()


def test_no_inflation_needed_is_a_boundary_not_an_error():
    # the zero part's intercept -> -inf (no excess zeros): no separation, an estimate
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"y": rng.poisson(1.0, 200), "x": rng.normal(size=200)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = emstats.zeroinfl("y ~ x | 1", df).fit()
    assert np.isfinite(res.llf)


@pytest.mark.parametrize("dist, key", [("poisson", "zip_vs_poisson"), ("negbin", "zinb_vs_nb")])
def test_vuong_against_pscl(bio, dist, key):
    import statsmodels.formula.api as smf

    f = "art ~ fem + mar + kid5 + phd + ment"
    zi = emstats.zeroinfl(f + " | ment", bio, dist=dist).fit(ptol=1e-10, tol=1e-12)
    plain = (smf.poisson(f, bio) if dist == "poisson" else smf.negativebinomial(f, bio))
    g = plain.fit(method="newton", disp=0, maxiter=100)
    v = emstats.vuong(zi, g)
    printed = HFIX["vuong"][key]["printed"]
    # pscl prints 7-8 significant digits; the plain fits agree to about 1e-8
    for row in ("Raw", "AIC-corrected", "BIC-corrected"):
        line = next(s for s in printed if s.startswith(row))
        assert v.loc[row, "statistic"] == pytest.approx(float(line.split()[1]), abs=2e-6)
        assert v.loc[row, "p-value"] == pytest.approx(float(line.split()[-1]), rel=1e-4)
    assert v.loc["Raw", "statistic"] == pytest.approx(HFIX["vuong"][key]["raw"], abs=1e-6)


@pytest.mark.parametrize("build", [emstats.zeroinfl, emstats.hurdle])
def test_margeff_and_count_table(bio, build):
    res = build("art ~ fem + mar + kid5 + phd + ment | ment + kid5", bio,
                dist="negbin").fit()
    me = res.margeff()
    assert list(me.index) == ["fem[T.Women]", "mar[T.Married]", "kid5", "phd", "ment"]
    # the average derivative equals a central difference of predict() in the data
    # (step 1e-4: error about 1e-8 relative)
    h = 1e-4
    for v in ("ment", "phd", "kid5"):
        up, dn = bio.copy(), bio.copy()
        up[v] = up[v] + h
        dn[v] = dn[v] - h
        fd = ((res.predict(up) - res.predict(dn)) / (2 * h)).mean()
        assert me.loc[v, "dy/dx"] == pytest.approx(fd, abs=1e-7)
    # delta method against the spread of the effects over draws from N(theta, V / 10^4)
    # (small enough that the effect is linear over the draws; times 100): 4000 draws
    # estimate an SD to about 1.1% (1 / sqrt(2 * 4000)); allow 5%
    rng = np.random.default_rng(11)
    draws = rng.multivariate_normal(res.params.to_numpy(),
                                    res.cov_params().to_numpy() / 1e4, 4000)
    m = res.model

    def ame_at(theta):
        P = m.from_inference(theta)
        beta, _, gamma, _ = m._split(P)
        dat = m.data
        _, de, dz = m.response(P, dat["X"], dat["Z"], dat["off"], dat["zoff"], "mean")
        j = m.exog_names.index("ment")
        k = m.zero_names.index("ment")
        return de.mean() * beta[j] + dz.mean() * gamma[k]

    sims = np.array([ame_at(t) for t in draws])
    assert 100 * sims.std(ddof=1) == pytest.approx(me.loc["ment", "std err"], rel=0.05)
    tab = res.count_table()
    assert list(tab.index) == list(range(int(bio["art"].max()) + 1))
    assert tab["observed"].sum() == len(bio)
    assert tab["expected"].sum() == pytest.approx(len(bio), rel=1e-3)
    if build is emstats.hurdle:   # the logit hurdle with an intercept fits the zeros exactly
        assert tab.loc[0, "expected"] == pytest.approx(tab.loc[0, "observed"], rel=1e-6)


def test_offset_missing_and_count_part_column(bio):
    f = "art ~ fem + ment | ment"
    base = emstats.zeroinfl(f, bio).fit()
    # a constant offset c only moves the count intercept by -c
    shifted = emstats.zeroinfl(f, bio, offset=np.full(len(bio), 0.7)).fit()
    diff = shifted.params - base.params
    assert diff["count_Intercept"] == pytest.approx(-0.7, abs=1e-6)
    assert np.max(np.abs(diff.drop("count_Intercept"))) < 1e-6
    assert shifted.llf == pytest.approx(base.llf, abs=1e-8)
    # a missing value in a zero-part-only variable drops the row
    holes = bio.assign(z=bio["ment"].astype(float))
    holes.loc[[3, 10], "z"] = np.nan
    res = emstats.zeroinfl("art ~ fem + ment | z", holes).fit()
    assert res.nobs == len(bio) - 2
    with pytest.raises(DataError, match="missing"):
        emstats.zeroinfl("art ~ fem + ment | z", holes, missing="raise")
    with pytest.raises(DataError, match="nosuch"):
        emstats.zeroinfl("art ~ nosuch | ment", bio)


@pytest.mark.parametrize("build", [emstats.zeroinfl, emstats.hurdle])
@pytest.mark.parametrize("dist", ["poisson", "negbin"])
def test_every_scheme_reaches_the_maximum(bio, build, dist):
    f = "art ~ fem + mar + kid5 + phd + ment | ment"
    ref = build(f, bio, dist=dist).fit(method="newton", tol=1e-13)
    for method in ("em", "squarem"):
        res = build(f, bio, dist=dist).fit(method=method, tol=1e-13, maxiter=20000)
        # stopping rule: short by about tol |llf| rate / (1 - rate) < 1e-8 (rate < 0.95)
        assert res.llf == pytest.approx(ref.llf, abs=1e-7)
        assert res.convergence.converged
    # EM's rate is Louis' fraction of missing information, inside (0, 1)
    assert 0 < ref.convergence.em_rate < 1
