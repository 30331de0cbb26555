"""Zero-inflated and hurdle extensions against pscl and glmmTMB
(tests/results/zeroinfl_extras.json, from tests/results/r_scripts/zeroinfl_extras.R):
the geometric count part, the probit / cloglog / cauchit / log zero links, offsets in both
parts, count-distribution zero hurdles, marginal effects on four predictions with discrete
changes for factor levels, rootograms, and statsmodels' hurdle stopping short."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

import emstats
from emstats import DataError
from emstats.exceptions import LikelihoodDecreaseWarning
from emstats.inference.covariance import InformationWarning
from tests.results.fixtures import RESULTS_DIR

BIO = json.loads((RESULTS_DIR / "zeroinfl_biochemists.json").read_text())
FIX = json.loads((RESULTS_DIR / "zeroinfl_extras.json").read_text())
RENAME = {"(Intercept)": "Intercept", "femWomen": "fem[T.Women]",
          "marMarried": "mar[T.Married]"}
F5 = "art ~ fem + mar + kid5 + phd + ment"
ZI = {"geometric": (F5 + " | ment", dict(dist="geometric")),
      "poisson_probit": (F5 + " | ment + kid5", dict(link="probit")),
      "poisson_cloglog": (F5 + " | ment + kid5", dict(link="cloglog")),
      "poisson_cauchit": (F5 + " | ment + kid5", dict(link="cauchit")),
      "negbin_probit": (F5 + " | ment", dict(dist="negbin", link="probit")),
      "poisson_log": (F5 + " | ment", dict(link="log")),
      "offsets": ("art ~ fem + mar + kid5 + ment | ment",
                  dict(dist="negbin", offset="lphd", zero_offset="zoff"))}
HU = {"zero_poisson": (F5 + " | fem + kid5 + ment", dict(dist="negbin", zero_dist="poisson")),
      "zero_geometric": (F5 + " | fem + kid5 + ment",
                         dict(dist="negbin", zero_dist="geometric")),
      "same_poisson_poisson": (F5, dict(zero_dist="poisson")),
      "same_negbin_poisson": (F5, dict(dist="negbin", zero_dist="poisson")),
      "geometric_probit": (F5 + " | ment", dict(dist="geometric", link="probit")),
      "poisson_cloglog": (F5 + " | ment", dict(link="cloglog")),
      "offsets": ("art ~ fem + mar + kid5 + ment | ment",
                  dict(dist="negbin", offset="lphd", zero_offset="zoff"))}


@pytest.fixture(scope="module")
def bio() -> pd.DataFrame:
    df = pd.DataFrame(BIO["data"])
    df["fem"] = pd.Categorical(df["fem"], ["Men", "Women"])
    df["mar"] = pd.Categorical(df["mar"], ["Single", "Married"])
    # the R script's offsets
    return df.assign(lphd=np.log(df["phd"]), zoff=0.3 * df["kid5"])


def _r(values, prefix="") -> pd.Series:
    out = {}
    for name, v in values.items():
        part, _, var = name.partition("_") if not prefix else (prefix, "", name)
        var = var.replace("zi~", "")
        out[f"{part}_{RENAME.get(var, var)}"] = v
    return pd.Series(out)


def _check(res, c, num, num_rtol=1e-4):
    rc, rs = _r(c["coefficients"]), _r(c["bse"])
    names = list(rc.index)
    # pscl's optim (BFGS, reltol 1e-14) stops within about 1e-7 of the maximum
    np.testing.assert_allclose(res.params[names], rc[names], atol=1e-6)
    assert res.llf == pytest.approx(c["loglik"], abs=1e-6)
    # pscl's SEs come from optim's finite-difference Hessian
    np.testing.assert_allclose(res.bse[names], rs[names], rtol=1e-3)
    assert res.k_params == c["df"]
    if "theta" in c:
        assert res.theta == pytest.approx(c["theta"], rel=1e-6)
        assert res.bse["Log(theta)"] == pytest.approx(c["se_log_theta"], rel=1e-3)
    if "theta_zero" in c:
        assert res.theta_zero == pytest.approx(c["theta_zero"], rel=1e-6)
        assert res.bse["zero_Log(theta)"] == pytest.approx(c["se_log_theta_zero"], rel=1e-3)
    # Louis against our own numerical Hessian (its step error: about 1e-5 relative)
    np.testing.assert_allclose(res.bse, num.bse, rtol=num_rtol)
    assert res.convergence.converged


@pytest.mark.parametrize("case", list(ZI))
def test_zeroinfl_against_pscl(bio, case):
    f, kw = ZI[case]
    fit = dict(ptol=1e-10, tol=1e-12)
    res = emstats.zeroinfl(f, bio, **kw).fit(**fit)
    _check(res, FIX["zeroinfl"][case],
           emstats.zeroinfl(f, bio, **kw).fit(cov_type="numerical", **fit))
    assert kw.get("link", "logit") in str(res.summary())


@pytest.mark.parametrize("case", list(HU))
def test_hurdle_against_pscl(bio, case):
    f, kw = HU[case]
    fit = dict(ptol=1e-10, tol=1e-12)
    res = emstats.hurdle(f, bio, **kw).fit(**fit)
    _check(res, FIX["hurdle"][case],
           emstats.hurdle(f, bio, **kw).fit(cov_type="numerical", **fit))
    full = res.predict(which="prob", at=np.arange(400))
    np.testing.assert_allclose(full.sum(axis=1), 1.0, atol=1e-10)
    np.testing.assert_allclose(full.to_numpy() @ np.arange(400), res.predict(), rtol=1e-8)
    np.testing.assert_allclose(full[0], res.predict(which="prob0"), rtol=1e-12)


def test_negbin_zero_hurdle_simulated(bio):
    c = FIX["hurdle"]["sim_zero_negbin"]
    sim = pd.DataFrame(FIX["sim"])
    fit = dict(ptol=1e-10, tol=1e-12)
    res = emstats.hurdle("y ~ x | z", sim, dist="negbin", zero_dist="negbin").fit(**fit)
    num = emstats.hurdle("y ~ x | z", sim, dist="negbin", zero_dist="negbin").fit(
        cov_type="numerical", **fit)
    # the numerical Hessian's step error is larger in the zero part here (1.3e-4 relative
    # in SE(log theta_zero), where Louis agrees with pscl to 2e-6)
    _check(res, c, num, num_rtol=5e-4)
    assert res.bse["zero_Log(theta)"] == pytest.approx(c["se_log_theta_zero"], rel=2e-5)
    assert res.param_names[-1] == "zero_Log(theta)" and "Theta (zero):" in str(res.summary())


def test_negbin_zero_hurdle_boundary(bio):
    # on bioChemists the zero part's theta drifts towards 0 (pscl stops at 0.048 with
    # SE(log theta) = 32): the likelihood is flat there.  The count part of a hurdle
    # separates from the zero part, so it is compared; the zero part only reaches at
    # least pscl's likelihood.  Louis-Newton's information is indefinite on this ridge,
    # its EM fall-back may then lose a little, and the information at the end may be
    # singular (the warnings say so), so no SEs are compared.
    c = FIX["hurdle"]["zero_negbin"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LikelihoodDecreaseWarning)
        warnings.simplefilter("ignore", InformationWarning)
        res = emstats.hurdle(F5 + " | fem + kid5 + ment", bio, dist="negbin",
                             zero_dist="negbin").fit(tol=1e-12)
    rc = _r(c["coefficients"])
    cnt = [n for n in rc.index if n.startswith("count_")]
    np.testing.assert_allclose(res.params[cnt], rc[cnt], atol=1e-6)
    assert res.llf >= c["loglik"] - 1e-7
    assert res.theta_zero < 0.1


@pytest.mark.parametrize("zero_dist, link", [("poisson", "cloglog"), ("geometric", "logit")])
def test_count_zero_hurdles_are_binary_links(bio, zero_dist, link):
    # P(y > 0) = 1 - exp(-mu) is the cloglog, 1 - 1 / (1 + mu) the logit
    f = F5 + " | ment + kid5"
    a = emstats.hurdle(f, bio, zero_dist=zero_dist).fit(tol=1e-12)
    b = emstats.hurdle(f, bio, link=link).fit(tol=1e-12)
    np.testing.assert_allclose(a.params, b.params, atol=1e-7)
    np.testing.assert_allclose(a.bse, b.bse, rtol=1e-6)
    assert a.llf == pytest.approx(b.llf, abs=1e-9)


@pytest.mark.parametrize("case, dist", [("poisson_ment", "poisson"),
                                        ("negbin_ment", "negbin")])
def test_against_glmmtmb(bio, case, dist):
    g = FIX["glmmTMB"][case]
    res = emstats.zeroinfl(F5 + " | ment", bio, dist=dist).fit(ptol=1e-10, tol=1e-12)
    coef = pd.concat([_r(g["count"], "count"), _r(g["zero"], "zero")])
    se = pd.concat([_r(g["count_se"], "count"), _r(g["zero_se"], "zero")])
    # glmmTMB's nlminb stops a little earlier than pscl (reports singular convergence
    # at rel.tol 1e-14): its coefficients are 4e-6 from pscl's
    np.testing.assert_allclose(res.params[coef.index], coef, atol=1e-5)
    assert res.llf == pytest.approx(g["loglik"], abs=1e-8)
    # TMB's SEs: the exact Hessian by automatic differentiation at its estimate
    np.testing.assert_allclose(res.bse[se.index], se, rtol=5e-4)
    if "theta" in g:
        assert res.theta == pytest.approx(g["theta"], rel=1e-5)


@pytest.mark.parametrize("build, key", [(emstats.zeroinfl, "zeroinfl"),
                                        (emstats.hurdle, "hurdle")])
@pytest.mark.parametrize("which", ["mean", "count", "zero", "prob0"])
def test_margeff_against_r(bio, build, key, which):
    res = build(F5 + " | ment + kid5", bio, dist="negbin").fit(ptol=1e-10, tol=1e-12)
    me = res.margeff(which)
    r = FIX["margeff"][key][which]
    est, se = _r(r["effect"], "x"), _r(r["se"], "x")
    est.index = se.index = [n[2:] for n in est.index]
    # columns that cannot move the prediction are left out
    moving = est.index[np.abs(est.to_numpy()) > 0]
    assert list(me.index) == list(moving)
    # the estimates: pscl's coefficients are 1e-7 from ours; numDeriv's Richardson
    # derivatives are exact to about 1e-10
    np.testing.assert_allclose(me["dy/dx"], est[moving], atol=1e-6)
    # the R delta method uses pscl's finite-difference Hessian (SEs within 1e-3)
    np.testing.assert_allclose(me["std err"], se[moving], rtol=2e-3)


def test_discrete_changes(bio):
    res = emstats.zeroinfl("art ~ fem + mar + kid5 + ment | fem + ment", bio,
                           dist="negbin").fit()
    me = res.margeff()
    women, men = bio.assign(fem="Women"), bio.assign(fem="Men")
    women["fem"] = pd.Categorical(women["fem"], ["Men", "Women"])
    men["fem"] = pd.Categorical(men["fem"], ["Men", "Women"])
    change = (res.predict(women) - res.predict(men)).mean()
    assert me.loc["fem[T.Women]", "dy/dx"] == pytest.approx(change, rel=1e-10)
    slope = res.margeff(discrete=False).loc["fem[T.Women]", "dy/dx"]
    assert abs(slope - change) > 1e-3      # a derivative is not a discrete change
    # a factor with three levels: each level against the reference, the others at 0
    three = bio.assign(k=pd.Categorical(np.minimum(bio["kid5"], 2)))
    r3 = emstats.zeroinfl("art ~ k + ment | ment", three).fit()
    m3 = r3.margeff(which="count")
    for lev in (1, 2):
        at = three.assign(k=pd.Categorical(np.full(len(three), lev), [0, 1, 2]))
        base = three.assign(k=pd.Categorical(np.zeros(len(three), int), [0, 1, 2]))
        want = (r3.predict(at, which="count") - r3.predict(base, which="count")).mean()
        assert m3.loc[f"k[T.{lev}]", "dy/dx"] == pytest.approx(want, rel=1e-10)


def test_zero_offset_predict_and_errors(bio):
    res = emstats.zeroinfl("art ~ fem + ment | ment", bio, zero_offset="zoff").fit()
    shifted = bio.assign(zoff=bio["zoff"] + 1.0)
    pi0, pi1 = res.predict(which="zero"), res.predict(shifted, which="zero")
    gamma = res.zero_params
    lin = gamma["Intercept"] + gamma["ment"] * bio["ment"] + bio["zoff"]
    np.testing.assert_allclose(pi0, 1 / (1 + np.exp(-lin)), rtol=1e-12)
    np.testing.assert_allclose(pi1, 1 / (1 + np.exp(-(lin + 1.0))), rtol=1e-12)
    arr = emstats.zeroinfl("art ~ fem + ment | ment", bio,
                           zero_offset=bio["zoff"].to_numpy()).fit()
    np.testing.assert_allclose(arr.params, res.params, atol=1e-10)
    with pytest.raises(ValueError, match="column name"):
        arr.predict(bio.iloc[:3])
    with pytest.raises(DataError, match="nosuch"):
        emstats.zeroinfl("art ~ ment", bio, zero_offset="nosuch")
    with pytest.raises(ValueError, match="link"):
        emstats.zeroinfl("art ~ ment", bio, link="identity")
    with pytest.raises(ValueError, match="zero_dist"):
        emstats.hurdle("art ~ ment", bio, zero_dist="binomal")
    with pytest.raises(ValueError, match="zero_dist='binomial' only"):
        emstats.hurdle("art ~ ment", bio, zero_dist="poisson", link="probit")
    with pytest.raises(ValueError, match="dist"):
        emstats.hurdle("art ~ ment", bio, dist="binomial")
    with pytest.raises(ValueError, match="which"):
        res.margeff("nope")


def test_log_link_stays_a_probability(bio):
    res = emstats.zeroinfl(F5 + " | ment", bio, link="log").fit()
    pi = res.predict(which="zero")
    assert np.all((pi > 0) & (pi < 1))


@pytest.mark.parametrize("style", ["hanging", "standing", "suspended"])
def test_rootogram(bio, style):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    res = emstats.zeroinfl(F5 + " | ment", bio, dist="negbin").fit()
    tab = res.count_table()
    ax = res.rootogram(style=style)
    bars = ax.patches
    assert len(bars) == len(tab)
    o, e = np.sqrt(tab["observed"].to_numpy()), np.sqrt(tab["expected"].to_numpy())
    tops = np.array([b.get_y() + b.get_height() for b in bars])
    bottoms = np.array([b.get_y() for b in bars])
    if style == "hanging":
        np.testing.assert_allclose(tops, e)
        np.testing.assert_allclose(bottoms, e - o)
    elif style == "standing":
        np.testing.assert_allclose(tops, o)
    else:
        np.testing.assert_allclose(tops, e - o)
    np.testing.assert_allclose(ax.lines[0].get_ydata(), e)
    plt.close("all")
    with pytest.raises(ValueError, match="style"):
        res.rootogram(style="floating")


def test_statsmodels_hurdle_stops_short(bio):
    # the issue's evidence: statsmodels' HurdleCountModel (zerodist="poisson" by default)
    # stops at -1619.51 on bioChemists; pscl and emstats reach -1607.20
    import patsy
    from statsmodels.discrete.truncated_model import HurdleCountModel

    y, X = patsy.dmatrices(F5, bio, return_type="dataframe")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sm = HurdleCountModel(y, X, dist="poisson").fit(disp=0)
    res = emstats.hurdle(F5, bio, zero_dist="poisson").fit()
    c = FIX["hurdle"]["same_poisson_poisson"]
    assert res.llf == pytest.approx(c["loglik"], abs=1e-6)
    assert res.llf > sm.llf + 10


def test_cli_fit_zeroinfl_and_hurdle(bio, tmp_path, capsys):
    import subprocess
    import sys

    from emstats.__main__ import main

    path = tmp_path / "bio.csv"
    bio.to_csv(path, index=False)
    out = subprocess.run([sys.executable, "-m", "emstats", "fit", "zeroinfl",
                          F5 + " | ment", "--data", str(path), "--dist", "negbin",
                          "--margeff", "--count-table"],
                         capture_output=True, text=True, check=True).stdout
    assert "Zero-Inflated Count Regression Results" in out and "binomial (logit)" in out
    c = BIO["cases"]["negbin_ment"]
    assert f"{c['loglik']:.3f}"[:-1] in out        # pscl's log-likelihood, -1553.27...
    assert "Average marginal effects" in out and "Observed and expected counts" in out
    assert main(["fit", "hurdle", F5 + " | fem + kid5 + ment", "--data", str(path),
                 "--dist", "negbin", "--zero-dist", "poisson"]) == 0
    out = capsys.readouterr().out
    assert "Hurdle Count Regression Results" in out and "Zero hurdle:" in out
    assert f"{FIX['hurdle']['zero_poisson']['loglik']:.3f}"[:-1] in out
    assert main(["fit", "zeroinfl", "art ~ fem + kid5 + ment | ment", "--data", str(path),
                 "--offset", "lphd", "--zero-offset", "zoff", "--link", "probit"]) == 0
    assert "binomial (probit)" in capsys.readouterr().out


@pytest.mark.parametrize("argv, msg", [
    (["fit", "zeroinfl", "art ~ ment | nosuch"], "nosuch"),
    (["fit", "zeroinfl", "phd ~ ment"], "non-negative integer"),
    # --zero-dist is an option of the hurdle subcommand only
    (["fit", "zeroinfl", "art ~ ment", "--zero-dist", "poisson"], "--zero-dist"),
    (["fit", "hurdle", "art ~ ment", "--zero-dist", "poisson", "--link", "probit"],
     "zero_dist='binomial' only"),
])
def test_cli_errors_are_one_line(bio, tmp_path, capsys, argv, msg):
    from emstats.__main__ import main

    path = tmp_path / "bio.csv"
    bio.to_csv(path, index=False)
    assert main(argv + ["--data", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("emstats: error:") and msg in err and err.count("\n") == 1


@pytest.fixture(scope="module")
def salamanders() -> pd.DataFrame:
    d = FIX["salamanders"]["data"]
    return pd.DataFrame({"count": d["count"],
                         "spp": pd.Categorical(d["spp"], d["spp_levels"]),
                         "mined": pd.Categorical(d["mined"], d["mined_levels"])})


def _tmb(values, part, sign=1.0) -> pd.Series:
    out = {}
    for name, v in values.items():
        name = name.replace("zi~", "")
        if name.startswith("spp"):
            name = f"spp[T.{name[3:]}]"
        elif name.startswith("mined"):
            name = f"mined[T.{name[5:]}]"
        out[f"{part}_{RENAME.get(name, name)}"] = sign * v
    return pd.Series(out)


@pytest.mark.parametrize("case", ["zip", "zinb", "hurdle_nb"])
def test_glmmtmb_salamanders(salamanders, case):
    # glmmTMB's documented example data, its fixed-effects fits
    g = FIX["salamanders"][case]
    if case == "hurdle_nb":
        res = emstats.hurdle("count ~ spp + mined | spp + mined", salamanders,
                             dist="negbin").fit(ptol=1e-10, tol=1e-12)
        sign = -1.0      # glmmTMB's zero part models P(y = 0), ours P(y > 0)
    else:
        res = emstats.zeroinfl("count ~ spp + mined | mined", salamanders,
                               dist="poisson" if case == "zip" else "negbin").fit(
            ptol=1e-10, tol=1e-12)
        sign = 1.0
    coef = pd.concat([_tmb(g["count"], "count"), _tmb(g["zero"], "zero", sign)])
    se = pd.concat([_tmb(g["count_se"], "count"), _tmb(g["zero_se"], "zero")])
    # nlminb (rel.tol 1e-12, "singular convergence") stops short of the optimum: by 2e-6
    # (ZIP), 7e-6 (ZINB) and 4e-5 (hurdle, where its log-likelihood is 2e-8 below ours;
    # our max |score| is 1e-13 there)
    np.testing.assert_allclose(res.params[coef.index], coef, atol=1e-4)
    assert res.llf == pytest.approx(g["loglik"], abs=1e-7)
    assert res.llf >= g["loglik"] - 1e-9
    # TMB's SEs: the exact Hessian by automatic differentiation at its estimate
    np.testing.assert_allclose(res.bse[se.index], se, rtol=1e-3)
    if "theta" in g:
        assert res.theta == pytest.approx(g["theta"], rel=2e-5)


@pytest.mark.parametrize("dist, phi", [("negbin", np.array([0.4])), ("geometric", None),
                                       ("poisson", None)])
def test_count_zero_part_derivatives(dist, phi):
    from emstats.components.glm import get_family
    from emstats.models.zeroinfl import CountZeroPart

    part = CountZeroPart(dist)
    u = np.linspace(-3.0, 3.0, 13)
    lp, lq, p1, q1, p2, q2 = part.derivs(u, phi)
    fam = get_family("negbin" if dist != "poisson" else "poisson")
    ph = np.zeros(1) if dist == "geometric" else phi
    zero = np.zeros_like(u)
    d = fam.derivs(zero, u[:, None], ph)
    np.testing.assert_allclose(lq, fam.logpdf(zero, u[:, None], ph, None)[:, 0], atol=1e-14)
    np.testing.assert_allclose(q1[:, 0], d["d1"][:, 0], atol=1e-14)
    np.testing.assert_allclose(q2[:, 0, 0], d["d2"][:, 0], atol=1e-14)
    if dist == "negbin":
        np.testing.assert_allclose(q1[:, 1], d["dp"][:, 0], atol=1e-14)
        np.testing.assert_allclose(q2[:, 1, 1], d["dpp"][:, 0], atol=1e-14)
        np.testing.assert_allclose(q2[:, 0, 1], d["dep"][:, 0], atol=1e-14)
        # on the ridge theta -> 0, mu -> infinity every piece stays finite
        far = part.derivs(np.array([70.0, 300.0]), np.array([-4.4]))
        assert all(np.all(np.isfinite(a)) for a in far)
    # lp = log(1 - f0): its derivative by central differences (truncation ~ 1e-10,
    # rounding ~ 1e-16 / h absolute where lp is tiny)
    h = 1e-5
    up, dn = part.logs(u + h, phi)[0], part.logs(u - h, phi)[0]
    np.testing.assert_allclose(p1[:, 0], (up - dn) / (2 * h), rtol=1e-7, atol=1e-10)
