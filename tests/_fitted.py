"""One small fit of every model, with new data for ``predict``: shared by the tests of
what every results class must do (pickling, robust standard errors)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from results.fixtures import load_fixture

import emstats


def _affairs():
    return emstats.datasets.load("affairs")


def tobit():
    df = _affairs()
    res = emstats.tobit("affairs ~ age + C(gender) + center(yearsmarried) + np.log(age)",
                        df).fit()
    return res, df.iloc[:7]


def intreg():
    df = _affairs()
    a = df["affairs"].to_numpy(float)
    df["lo"] = np.where(a == 0, np.nan, np.where(a == 7, 4.0, a))
    df["hi"] = np.where(a == 12, np.nan, np.where(a == 7, 10.0, a))
    return emstats.intreg("lo + hi ~ age + C(gender) + rating", df).fit(), df.iloc[:7]


def hetero_tobit():
    df = _affairs()
    res = emstats.tobit("affairs ~ age + rating", df, scale_formula="~ C(gender)").fit()
    return res, df.iloc[:7]


def _faithful():
    return emstats.datasets.load("faithful")


def gmm():
    df = _faithful()
    return emstats.gmm("~ eruptions + np.log(waiting)", data=df, k=2).fit(), df.iloc[:5]


def gmm_select():
    df = _faithful()
    sel = emstats.gmm_select("~ eruptions + waiting", data=df, k=range(1, 3),
                             covariance=("VVV", "EII"))
    return sel, df.iloc[:5]


def vbgmm():
    df = _faithful()
    return emstats.vbgmm("~ eruptions + waiting", data=df, k=3).fit(), df.iloc[:5]


def hmm():
    quakes = emstats.datasets.load("earthquakes")
    return emstats.hmm("~ count", 2, "poisson", data=quakes).fit(), quakes.iloc[:20]


def glmm():
    cbpp = emstats.datasets.load("cbpp")
    res = emstats.glmm_logit("incidence ~ period", data=cbpp, groups="herd",
                             trials="size").fit()
    return res, cbpp.iloc[:6]


def mixreg():
    df = pd.DataFrame(load_fixture("mixreg_flexmix")["data"]["NPreg"])
    return emstats.mixreg("yn ~ x + I(x**2)", df, k=2).fit(), df.iloc[:6]


def poisson_mixture():
    deaths = np.repeat(np.arange(10), [162, 267, 271, 185, 111, 61, 27, 8, 3, 1])
    return emstats.poisson_mixture(deaths, k=2).fit(), None


def mvn():
    return emstats.mvn(emstats.datasets.load("nhanes")).fit(), None


def _bio():
    df = pd.DataFrame(load_fixture("zeroinfl_biochemists")["data"])
    df["fem"] = pd.Categorical(df["fem"], ["Men", "Women"])
    df["mar"] = pd.Categorical(df["mar"], ["Single", "Married"])
    return df


def zeroinfl():
    df = _bio()
    return emstats.zeroinfl("art ~ fem + mar + kid5 + ment | ment", df).fit(), df.iloc[:6]


def hurdle():
    df = _bio()
    return emstats.hurdle("art ~ fem + mar + kid5 + ment | ment", df).fit(), df.iloc[:6]


#: every model, by name
MODELS = {f.__name__: f for f in (tobit, intreg, hetero_tobit, gmm, gmm_select, vbgmm, hmm,
                                  glmm, mixreg, poisson_mixture, mvn, zeroinfl, hurdle)}
