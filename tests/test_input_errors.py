"""Clear errors and R's formula idioms: unknown parameters in tests, infinite values,
numbers stored as text, ``offset(x)`` in formulas, ``cbind(successes, failures)``."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from _fitted import _bio
from numpy.testing import assert_allclose
from results.fixtures import load_fixture

import emstats
from emstats.exceptions import DataError
from emstats.formula import split_offsets

FORMULA = "affairs ~ age + yearsmarried + religiousness + occupation + rating"


@pytest.fixture(scope="module")
def affairs():
    return emstats.datasets.load("affairs")


@pytest.fixture(scope="module")
def tobit_res(affairs):
    return emstats.tobit("affairs ~ age + C(gender) + rating", affairs).fit()


# -- t_test / wald_test ---------------------------------------------------------------
@pytest.mark.parametrize("spec, unknown", [
    ("agee = 0", "'agee'"),
    ("age = 0, ratin = 1", "'ratin'"),
    (["age = 0", "gender = 1"], "'gender'"),
])
def test_unknown_parameter_lists_the_valid_ones(tobit_res, spec, unknown):
    for test in (tobit_res.t_test, tobit_res.wald_test):
        with pytest.raises(DataError, match="unknown parameter") as err:
            test(spec)
        msg = str(err.value)
        assert unknown in msg
        assert "Intercept, C(gender)[T.male], age, rating, Log(scale)" in msg


def test_valid_names_with_brackets_still_work(tobit_res):
    t = tobit_res.t_test("C(gender)[T.male] = 0")
    assert_allclose(t.effect[0], tobit_res.params["C(gender)[T.male]"])
    w = tobit_res.wald_test("age = 0, rating = -2.5e0")
    assert w.df_denom == 2


# -- data that is not a frame -----------------------------------------------------------
_NOT_A_FRAME = {
    "tobit": lambda d: emstats.tobit("y ~ x", d),
    "zeroinfl": lambda d: emstats.zeroinfl("y ~ x", d),
    "hurdle": lambda d: emstats.hurdle("y ~ x", d),
    "mixreg": lambda d: emstats.mixreg("y ~ x", d, k=2),
    "glmm": lambda d: emstats.glmm("y ~ x", d, "g"),
    "glmm_logit": lambda d: emstats.glmm_logit("y ~ x", d, "g"),
    "gmm": lambda d: emstats.gmm("~ a + b", data=d, k=2),
    "mvn": lambda d: emstats.mvn("~ a + b", data=d),
    "hmm": lambda d: emstats.hmm("~ y", 2, data=d),
}


@pytest.mark.parametrize("name", list(_NOT_A_FRAME))
def test_a_file_name_as_data_says_read_it_first(name):
    with pytest.raises(DataError, match=r"data must be a pandas DataFrame .* got the string "
                       r"'x.csv'; read the file first, e.g. data=pandas.read_csv\('x.csv'\)"):
        _NOT_A_FRAME[name]("x.csv")
    with pytest.raises(DataError, match="data must be a pandas DataFrame .* got list"):
        _NOT_A_FRAME[name]([1.0, 2.0])


# -- non-finite values, numbers as text -------------------------------------------------
def test_infinite_value_names_its_column(affairs):
    df = affairs.copy()
    df.loc[df.index[[3, 9]], "yearsmarried"] = np.inf
    with pytest.raises(DataError, match=r"inf\) in column\(s\) 'yearsmarried'.*rows 3, 9"):
        emstats.tobit(FORMULA, df)
    df = affairs.copy()
    df["t"] = df["age"].astype(float)
    df.loc[df.index[0], "t"] = 0.0
    with pytest.raises(DataError, match=r"'np.log\(t\)'"), np.errstate(divide="ignore"):
        emstats.tobit("affairs ~ np.log(t)", df)


def test_numbers_stored_as_text_are_an_error(affairs):
    df = affairs.copy()
    df["age"] = df["age"].astype(str)
    with pytest.raises(DataError, match=r"column 'age' holds numbers stored as text \(e.g. "
                                         r"'37.0'\).*C\(age\)"):
        emstats.tobit(FORMULA, df)
    # asked for explicitly, the values are categories
    res = emstats.tobit("affairs ~ C(age) + rating", df)
    assert "C(age)[T.57.0]" in res.param_names
    # and everywhere a formula is read: the zero part of zeroinfl, a mixture's formula
    bio = _bio()
    bio["ment"] = bio["ment"].astype(str)
    with pytest.raises(DataError, match="'ment' holds numbers stored as text"):
        emstats.zeroinfl("art ~ fem | ment", bio)
    # text that is not numbers stays categorical
    assert any(n.startswith("C(gender)") or n.startswith("gender")
               for n in emstats.tobit("affairs ~ gender", affairs).param_names)


# -- offset() ---------------------------------------------------------------------------
@pytest.mark.parametrize("rhs, rest, offsets", [
    ("x + offset(np.log(t)) - 1", "x - 1", ["np.log(t)"]),
    ("offset(a)", "1", ["a"]),
    ("offset(a) + x", "x", ["a"]),
    ("x + offset(f(a, b)) + offset(c)", "x", ["f(a, b)", "c"]),
    ("x + z", "x + z", []),
])
def test_split_offsets(rhs, rest, offsets):
    assert split_offsets(rhs) == (rest, offsets)


def test_offset_in_the_formula_against_r(affairs):
    # tobit_affairs.R's case "offset": tobit(affairs ~ ... + offset(0.1 * education))
    ref = load_fixture("tobit_affairs")["cases"]["offset"]
    res = emstats.tobit(FORMULA + " + offset(0.1 * education)", affairs).fit(tol=1e-12)
    names = ["(Intercept)" if n == "Intercept" else n for n in res.param_names]
    assert_allclose(res.params.to_numpy(), ref["coefficients"][names].to_numpy(), rtol=1e-6)
    assert_allclose(res.llf, ref["loglik"], rtol=1e-10)
    # new data get the formula's offset, also after pickling; an explicit offset= adds
    new = affairs.iloc[:6]
    lin = res.predict(new, which="linear")
    back = pickle.loads(pickle.dumps(res))
    assert_allclose(back.predict(new, which="linear"), lin, rtol=1e-13)
    expect = (res.params["Intercept"] + new[["age", "yearsmarried", "religiousness",
                                             "occupation", "rating"]].to_numpy()
              @ res.params.iloc[1:6].to_numpy() + 0.1 * new["education"].to_numpy())
    assert_allclose(lin.to_numpy(), expect, rtol=1e-12)
    both = emstats.tobit(FORMULA + " + offset(0.1 * education)", affairs,
                         offset=0.05 * affairs["education"].to_numpy()).fit(tol=1e-12)
    plain = emstats.tobit(FORMULA, affairs,
                          offset=0.15 * affairs["education"].to_numpy()).fit(tol=1e-12)
    assert_allclose(both.params, plain.params, rtol=1e-8)
    with pytest.raises(DataError, match="pass offset="):
        both.predict(new)


def test_offset_in_count_models():
    bio = _bio()
    bio["lt"] = np.log1p(bio["phd"])
    a = emstats.zeroinfl("art ~ fem + ment + offset(lt) | ment", bio).fit(tol=1e-12)
    b = emstats.zeroinfl("art ~ fem + ment | ment", bio, offset="lt").fit(tol=1e-12)
    assert_allclose(a.params, b.params, rtol=1e-8)
    assert_allclose(a.predict(bio.iloc[:5]), b.predict(bio.iloc[:5]), rtol=1e-8)
    npreg = pd.DataFrame(load_fixture("mixreg_flexmix")["data"]["NPreg"])
    npreg["o"] = 0.1 * npreg["x"]
    c = emstats.mixreg("yp ~ x + offset(o)", npreg, k=2, family="poisson").fit(seed=1)
    d = emstats.mixreg("yp ~ x", npreg, k=2, family="poisson", offset="o").fit(seed=1)
    assert_allclose(c.llf, d.llf, rtol=1e-10)
    assert_allclose(c.predict(npreg.iloc[:4]), d.predict(npreg.iloc[:4]), rtol=1e-8)


def test_offset_in_the_glmm_formula():
    # the GLMM takes offsets since issue 18: a formula offset() equals offset=
    cbpp = emstats.datasets.load("cbpp")
    a = emstats.glmm_logit("incidence ~ period + offset(size / 100)", data=cbpp,
                           groups="herd", trials="size")
    b = emstats.glmm("incidence ~ period", data=cbpp, groups="herd", trials="size",
                     offset=cbpp["size"] / 100)
    assert_allclose(a.loglike(b.start_params()), b.loglike(b.start_params()), rtol=1e-12)


# -- cbind(successes, failures) -----------------------------------------------------------
def test_cbind_in_the_glmm():
    cbpp = emstats.datasets.load("cbpp")
    a = emstats.glmm_logit("incidence ~ period", data=cbpp, groups="herd", trials="size")
    b = emstats.glmm_logit("cbind(incidence, size - incidence) ~ period", data=cbpp,
                           groups="herd")
    ra, rb = a.fit(), b.fit()
    assert_allclose(rb.params, ra.params, rtol=1e-12)
    assert_allclose(rb.llf, ra.llf, rtol=1e-12)
    # lme4's fit of the same cbind() formula (glmm_cbpp.R)
    fx = load_fixture("glmm_cbpp")
    assert_allclose(rb.llf - fx["loglik_saturated"], fx["fit"]["loglik"], rtol=1e-7)
    with pytest.raises(DataError, match="do not pass trials="):
        emstats.glmm_logit("cbind(incidence, size - incidence) ~ period", data=cbpp,
                           groups="herd", trials="size")
    bad = cbpp.assign(size=cbpp["incidence"] - 1)
    with pytest.raises(DataError, match="non-negative"):
        emstats.glmm_logit("cbind(incidence, size - incidence) ~ period", data=bad,
                           groups="herd")


def test_cbind_in_the_binomial_mixture():
    # flexmix's betablocker example is written with cbind() (tests/test_mixreg.py checks
    # the fit against flexmix); the same model from successes and trials= agrees
    bb = pd.DataFrame(load_fixture("mixreg_flexmix")["data"]["betablocker"])
    a = emstats.mixreg("cbind(Deaths, Total - Deaths) ~ 1", bb, k=2, family="binomial")
    b = emstats.mixreg("Deaths ~ 1", bb, k=2, family="binomial", trials="Total")
    ra, rb = a.fit(seed=2), b.fit(seed=2)
    assert_allclose(ra.llf, rb.llf, rtol=1e-10)
