"""Marginal effects per variable through the formula (emstats.inference.margins).

Witnesses, independent of the chain rule the implementation uses:
* the closed forms of McDonald & Moffitt (1980) for the Tobit model;
* the average over the rows of central differences of ``predict(newdata, which=...)``
  in the variable (the public prediction path, not the margins code);
* discrete changes = differences of ``predict`` with every row moved to a level;
* delta-method SEs = a Jacobian of those predict-based effects taken numerically over
  the parameters (results copies with perturbed parameters), times ``cov_params``.
"""

from __future__ import annotations

import copy
import json
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import emstats
from emstats import DataError
from tests.results.fixtures import RESULTS_DIR


def _sim(n=500, seed=1):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({
        "x": rng.uniform(0.5, 3.0, n), "z": rng.normal(size=n),
        "g": rng.choice(["a", "b", "c"], n), "d": rng.integers(0, 2, n),
        "b": rng.random(n) < 0.4, "t": rng.uniform(0.5, 2.0, n),
    })
    lin = (0.2 + 0.8 * np.log(df.x) + 0.3 * df.z - 0.2 * df.z ** 2 + 0.3 * df.x * df.z
           + 0.4 * (df.g == "b") - 0.3 * (df.g == "c") + 0.5 * df.d + 0.3 * df.b)
    return df, lin.to_numpy(), rng


FORMULA_RHS = "np.log(x) + z + I(z**2) + x:z + g + d + b"


@pytest.fixture(scope="module")
def tobit_fit():
    df, lin, rng = _sim()
    df["y"] = np.maximum(lin + rng.normal(size=len(df)), 0.0)
    return emstats.tobit("y ~ " + FORMULA_RHS, df).fit(), df


@pytest.fixture(scope="module")
def zi_fit():
    df, lin, rng = _sim(seed=2)
    mu = np.exp(0.3 * lin)
    pi = stats.logistic.cdf(-0.5 + 0.6 * df["z"] - 0.4 * df["d"])
    df["y"] = np.where(rng.random(len(df)) < pi, 0, rng.poisson(mu))
    res = emstats.zeroinfl("y ~ np.log(x) + z + x:z + g + d | z + d + I(x**2)", df,
                           dist="negbin").fit()
    return res, df


@pytest.fixture(scope="module")
def hurdle_fit():
    df, lin, rng = _sim(seed=3)
    df["y"] = np.where(rng.random(len(df)) < 0.3, 0,
                       rng.poisson(np.exp(0.3 * lin)))
    return emstats.hurdle("y ~ np.log(x) + z + g | z + b", df).fit(), df


@pytest.fixture(scope="module")
def mixreg_fit():
    df, lin, rng = _sim(n=600, seed=4)
    comp = rng.random(len(df)) < stats.logistic.cdf(0.8 * df["z"])
    df["y"] = np.where(comp, 1.0 + 1.5 * np.log(df["x"]) + 0.5 * df["z"] + 0.8 * df["d"],
                       -1.0 - 0.5 * np.log(df["x"]) + 0.2 * df["z"]) \
        + 0.3 * rng.normal(size=len(df))
    res = emstats.mixreg("y ~ np.log(x) + z + d + g", df, k=2, concomitant="~ z + b",
                         ).fit(seed=0, n_init=3)
    return res, df


def _set(df, v, value):
    out = df.copy()
    out[v] = value
    return out


def _predict(res, newdata, which):
    if isinstance(res, emstats.MixtureRegressionResults):
        return np.asarray(res.predict(newdata, which=which), dtype=float)
    return np.asarray(res.predict(newdata, which=which), dtype=float)


def _ame_by_predict(res, df, v, which, kind, w=None):
    """The effect of ``v`` from predict() alone: the average central difference (step
    1e-5 relative, error ~1e-10), or the average change from the reference level."""
    w = np.ones(len(df)) / len(df) if w is None else w / w.sum()
    if kind == "numeric":
        x = df[v].to_numpy(dtype=float)
        h = 1e-5 * np.maximum(np.abs(x), 1e-2)
        up = _predict(res, _set(df, v, x + h), which)
        dn = _predict(res, _set(df, v, x - h), which)
        return float(w @ ((up - dn) / (2 * h)))
    level, ref = kind
    return float(w @ (_predict(res, _set(df, v, level), which)
                      - _predict(res, _set(df, v, ref), which)))


def _with_params(res, theta):
    r = copy.copy(res)
    r.params = pd.Series(theta, index=res.params.index)
    if res.raw_params is not None and hasattr(res.model, "from_inference"):
        r.raw_params = res.model.from_inference(theta)
    return r


CASES = [("x", "numeric"), ("z", "numeric"), ("g[T.b]", ("b", "a")), ("g[T.c]", ("c", "a")),
         ("d", (1, 0)), ("b[T.True]", (True, False))]


def _variable(name):
    return name.split("[")[0]


def _check_against_predict(res, df, which, names, rtol_se=2e-3):
    me = res.get_margeff(which=which)
    assert set(names) <= set(me.margeff.index)
    for name, kind in CASES:
        if name not in names:
            continue
        want = _ame_by_predict(res, df, _variable(name), which, kind)
        tol = 1e-6 * max(1.0, abs(want)) if kind == "numeric" else 1e-12
        assert me.margeff[name] == pytest.approx(want, abs=tol), name
        assert me.kind[name] == ("dy/dx" if kind == "numeric" else "discrete")
    # delta method: a Jacobian of the predict-based effects over the parameters
    theta = res.params.to_numpy()
    picked = [(n, k) for n, k in CASES if n in names]
    J = np.empty((len(picked), theta.size))
    for c in range(theta.size):
        h = 1e-4 * max(1.0, abs(theta[c]))
        tp, tm = theta.copy(), theta.copy()
        tp[c] += h
        tm[c] -= h
        rp, rm = _with_params(res, tp), _with_params(res, tm)
        for i, (n, k) in enumerate(picked):
            J[i, c] = (_ame_by_predict(rp, df, _variable(n), which, k)
                       - _ame_by_predict(rm, df, _variable(n), which, k)) / (2 * h)
    se = np.sqrt(np.diag(J @ res.cov_params().to_numpy() @ J.T))
    np.testing.assert_allclose(me.margeff_se[[n for n, _ in picked]].to_numpy(), se,
                               rtol=rtol_se)
    return me


@pytest.mark.parametrize("which", ["mean", "linear", "conditional_mean", "prob_uncensored"])
def test_tobit_effects_through_the_formula(tobit_fit, which):
    res, df = tobit_fit
    me = _check_against_predict(res, df, which, [n for n, _ in CASES])
    # one effect per variable, in the data's column order; no design columns
    assert list(me.margeff.index) == ["x", "z", "g[T.b]", "g[T.c]", "d", "b[T.True]"]


def test_tobit_closed_forms_mcdonald_moffitt():
    """Linear index, left-censoring at 0: dE[y*]/dx = beta, dE[y]/dx = beta Phi(z),
    dP(y > 0)/dx = beta phi(z) / sigma, dE[y | y > 0]/dx = beta (1 - lambda (z +
    lambda)), z = x'beta / sigma, lambda = phi(z) / Phi(z) (McDonald & Moffitt 1980)."""
    rng = np.random.default_rng(5)
    n = 800
    df = pd.DataFrame({"x1": rng.normal(size=n), "x2": rng.uniform(-1, 1, n)})
    df["y"] = np.maximum(0.3 + df.x1 - 0.7 * df.x2 + rng.normal(size=n), 0.0)
    res = emstats.tobit("y ~ x1 + x2", df).fit()
    beta = res.params[["x1", "x2"]].to_numpy()
    z = res.predict(which="linear").to_numpy() / res.scale
    lam = stats.norm.pdf(z) / stats.norm.cdf(z)
    forms = {"linear": np.ones(n), "mean": stats.norm.cdf(z),
             "prob_uncensored": stats.norm.pdf(z) / res.scale,
             "conditional_mean": 1.0 - lam * (z + lam)}
    for which, factor in forms.items():
        me = res.get_margeff(which=which)
        np.testing.assert_allclose(me.margeff.to_numpy(), beta * factor.mean(), rtol=1e-8)
    # at the means: the factor at x-bar
    zb = float(res.params["Intercept"] + df[["x1", "x2"]].mean().to_numpy() @ beta) \
        / res.scale
    me = res.get_margeff(at="mean", which="mean")
    np.testing.assert_allclose(me.margeff.to_numpy(), beta * stats.norm.cdf(zb), rtol=1e-8)
    # the latent effects are the coefficients, with their standard errors
    lat = res.get_margeff(which="linear")
    np.testing.assert_allclose(lat.margeff_se.to_numpy(), res.bse[["x1", "x2"]], rtol=1e-6)


def test_tobit_r_fixture_per_variable():
    """The R closed forms (tests/results/tobit_margeff.json) hold per variable too."""
    df = emstats.datasets.load("affairs")
    res = emstats.tobit("affairs ~ age + yearsmarried + religiousness + occupation + rating",
                        df).fit()
    ref = json.loads((RESULTS_DIR / "tobit_margeff.json").read_text())["cases"]
    me = res.get_margeff(at="mean", which="prob_uncensored")
    r = ref["atmean_prob"]
    np.testing.assert_allclose(me.margeff[list(r["effect"])], list(r["effect"].values()),
                               rtol=1e-6)
    np.testing.assert_allclose(me.margeff_se[list(r["se"])], list(r["se"].values()),
                               rtol=1e-4)


@pytest.mark.parametrize("which", ["mean", "count", "zero", "prob0"])
def test_zeroinfl_effects_through_both_parts(zi_fit, which):
    res, df = zi_fit
    names = {"mean": ["x", "z", "g[T.b]", "g[T.c]", "d"], "count": ["x", "z", "g[T.b]", "d"],
             "zero": ["x", "z", "d"], "prob0": ["x", "z", "g[T.b]", "g[T.c]", "d"]}[which]
    me = _check_against_predict(res, df, which, names)
    if which == "zero":          # the inflation part has no g: left out
        assert "g[T.b]" not in me.margeff.index


@pytest.mark.parametrize("which", ["mean", "zero"])
def test_hurdle_effects(hurdle_fit, which):
    res, df = hurdle_fit
    _check_against_predict(res, df, which, ["x", "z", "g[T.b]", "b[T.True]"]
                           if which == "mean" else ["x", "z", "b[T.True]"])


def test_mixreg_effects_through_components_and_weights(mixreg_fit):
    res, df = mixreg_fit
    me = _check_against_predict(res, df, "mean", ["x", "z", "d", "g[T.b]", "g[T.c]",
                                                  "b[T.True]"])
    assert me.kind["z"] == "dy/dx" and me.kind["b[T.True]"] == "discrete"
    with pytest.raises(ValueError, match="which must be 'mean'"):
        res.get_margeff(which="prior")


def test_at_mean_median_and_values(tobit_fit):
    res, df = tobit_fit
    for at in ("mean", "median"):
        me = res.get_margeff(at=at)
        row = {}
        for c in ("x", "z", "d", "t"):
            row[c] = df[c].mean() if at == "mean" else df[c].median()
        row["g"] = df["g"].mode()[0]
        row["b"] = bool(df["b"].mode()[0])
        one = pd.DataFrame([row])
        h = 1e-5
        for v in ("x", "z"):
            fd = (res.predict(_set(one, v, one[v] + h)).iloc[0]
                  - res.predict(_set(one, v, one[v] - h)).iloc[0]) / (2 * h)
            assert me.margeff[v] == pytest.approx(fd, rel=1e-6)
        ch = res.predict(_set(one, "g", "c")).iloc[0] - res.predict(_set(one, "g", "a")).iloc[0]
        assert me.margeff["g[T.c]"] == pytest.approx(ch, abs=1e-12)
    at = {"z": 1.0, "g": "b"}
    me = res.get_margeff(at=at)
    base = df.assign(z=1.0, g="b")
    want = _ame_by_predict(res, base, "x", "mean", "numeric")
    assert me.margeff["x"] == pytest.approx(want, abs=1e-7)
    assert "z=1.0" in me.summary().as_text()


def test_weights_average(tobit_fit):
    _, df = tobit_fit
    w = np.random.default_rng(9).integers(1, 4, len(df)).astype(float)
    dfw = df.assign(w=w)
    res = emstats.tobit("y ~ " + FORMULA_RHS, dfw, weights="w").fit()
    me = res.get_margeff()
    want = _ame_by_predict(res, dfw, "x", "mean", "numeric", w=w)
    assert me.margeff["x"] == pytest.approx(want, abs=1e-7)
    rep = dfw.loc[dfw.index.repeat(w.astype(int))].reset_index(drop=True)
    res2 = emstats.tobit("y ~ " + FORMULA_RHS, rep).fit()
    np.testing.assert_allclose(res2.get_margeff().margeff, me.margeff, rtol=1e-5)


def test_array_models_get_design_columns():
    rng = np.random.default_rng(6)
    n = 400
    X = np.column_stack([np.ones(n), rng.normal(size=n), rng.integers(0, 2, n)])
    y = np.maximum(X @ [0.2, 1.0, 0.5] + rng.normal(size=n), 0.0)
    res = emstats.Tobit(y, X, exog_names=["const", "x", "d"]).fit()
    me = res.get_margeff(dummy=False)
    pu = res.predict(which="prob_uncensored").mean()
    np.testing.assert_allclose(me.margeff.to_numpy(), res.params[["x", "d"]] * pu, rtol=1e-8)
    me = res.get_margeff()                      # the 0/1 column: a discrete change
    X1, X0 = X.copy(), X.copy()
    X1[:, 2], X0[:, 2] = 1.0, 0.0
    change = (res.predict(X1, censor_left=0) - res.predict(X0, censor_left=0)).mean()
    assert me.margeff["d"] == pytest.approx(change, abs=1e-12)
    assert me.kind["d"] == "discrete"


def test_summary_table_and_options(tobit_fit):
    res, _ = tobit_fit
    me = res.get_margeff()
    frame = me.summary_frame(alpha=0.1)
    assert list(frame.columns) == ["dy/dx", "std err", "z", "P>|z|", "[0.05", "0.95]", "kind"]
    z = me.margeff / me.margeff_se
    np.testing.assert_allclose(frame["z"], z)
    np.testing.assert_allclose(frame["P>|z|"], 2 * stats.norm.sf(np.abs(z)))
    np.testing.assert_allclose(frame["[0.05"], me.margeff - stats.norm.isf(0.05) * me.margeff_se)
    text = me.summary().as_text()
    assert "Marginal effects on mean (at=overall)" in text
    assert "Discrete changes from the reference level: g[T.b]" in text
    assert "MarginalEffects" in repr(me)
    only = res.get_margeff(variables=["x"])
    assert list(only.margeff.index) == ["x"]
    assert only.margeff["x"] == me.margeff["x"]
    slope = res.get_margeff(dummy=False)
    assert slope.kind["d"] == "dy/dx"


def test_reference_level_of_a_treatment_contrast():
    df, lin, rng = _sim(seed=7)
    df["y"] = np.maximum(lin + rng.normal(size=len(df)), 0.0)
    res = emstats.tobit("y ~ z + C(g, Treatment('b'))", df).fit()
    me = res.get_margeff()
    assert [n for n in me.margeff.index if n.startswith("g")] == ["g[T.a]", "g[T.c]"]
    want = (res.predict(df.assign(g="c")) - res.predict(df.assign(g="b"))).mean()
    assert me.margeff["g[T.c]"] == pytest.approx(want, abs=1e-12)


def test_bad_arguments(tobit_fit):
    res, _ = tobit_fit
    with pytest.raises(ValueError, match="at must be"):
        res.get_margeff(at="mode")
    with pytest.raises(ValueError, match="unknown variable.*'nosuch'.*x, z"):
        res.get_margeff(variables=["nosuch"])
    with pytest.raises(ValueError, match="at= names unknown"):
        res.get_margeff(at={"nosuch": 1})
    with pytest.raises(ValueError, match="not a level of 'g'"):
        res.get_margeff(at={"g": "q"})
    with pytest.raises(ValueError, match="which must be one of"):
        res.get_margeff(which="median")


def test_log_of_a_variable_near_its_domain_edge():
    rng = np.random.default_rng(8)
    n = 300
    df = pd.DataFrame({"x": np.exp(rng.normal(-3, 1.5, n))})       # values down to 1e-4
    df["y"] = np.maximum(0.5 + 0.4 * np.log(df.x) + rng.normal(size=n), 0.0)
    res = emstats.tobit("y ~ np.log(x)", df).fit()
    me = res.get_margeff(which="linear")
    want = float(np.mean(res.params["np.log(x)"] / df.x))
    assert me.margeff["x"] == pytest.approx(want, rel=1e-8)


def test_after_remove_data_is_a_clear_error(tobit_fit):
    res, _ = tobit_fit
    r = copy.deepcopy(res)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r.remove_data()
    with pytest.raises(DataError, match="remove_data"):
        r.get_margeff()


def test_intreg_effects():
    """Interval regression: the rows' own bounds are the limits of the prediction."""
    df = emstats.datasets.load("affairs")
    lo = df["affairs"].where(df["affairs"] > 0, np.nan).astype(float)
    hi = df["affairs"].astype(float).where(df["affairs"] < 12, np.nan)
    data = df.assign(lower=lo, upper=hi, kids=(df["children"] == "yes"))
    res = emstats.intreg("lower + upper ~ np.log(age) + yearsmarried + rating + kids",
                         data).fit()
    me = res.get_margeff(which="linear")
    assert me.margeff["age"] == pytest.approx(
        float(np.mean(res.params["np.log(age)"] / data["age"])), rel=1e-9)
    assert me.margeff["kids[T.True]"] == pytest.approx(res.params["kids[T.True]"], rel=1e-12)
    # the mean of the censored response between each row's bounds
    mem = res.get_margeff(which="mean")
    lo_all = np.where(res.model.lo == res.model.hi, -np.inf, res.model.lo)
    hi_all = np.where(res.model.lo == res.model.hi, np.inf, res.model.hi)

    def mean_at(frame):
        return res.predict(frame, which="mean", censor_left=lo_all, censor_right=hi_all)

    h = 1e-5
    up = data.assign(yearsmarried=data["yearsmarried"] + h)
    dn = data.assign(yearsmarried=data["yearsmarried"] - h)
    want = float(np.mean((mean_at(up) - mean_at(dn)) / (2 * h)))
    assert mem.margeff["yearsmarried"] == pytest.approx(want, rel=1e-6)
