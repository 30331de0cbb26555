"""Summaries a reviewer expects: the likelihood-ratio test against the intercept-only
model (LL-Null and McFadden's pseudo R-squared, checked against R's fits of the
intercept-only models, ``tests/results/r_scripts/null_models.R``), a ``repr`` that says
what the object is, and the same wording for every model."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
from _fitted import MODELS, _bio
from numpy.testing import assert_allclose
from scipy import stats

import emstats
from emstats.em.monitor import ConvergenceInfo
from emstats.inference.results import METHOD_NAMES, EMResults, describe_iterations

R = json.loads((Path(__file__).parent / "results" / "null_models.json").read_text())
TOBIT_F = "affairs ~ age + yearsmarried + religiousness + occupation + rating"
ZI_F = "art ~ fem + mar + kid5 + phd + ment | ment"


def _fits():
    cbpp = emstats.datasets.load("cbpp")
    return {
        "tobit": (emstats.tobit(TOBIT_F, emstats.datasets.load("affairs")).fit(tol=1e-12), 0.0),
        "zeroinfl": (emstats.zeroinfl(ZI_F, _bio()).fit(tol=1e-12), 0.0),
        "hurdle": (emstats.hurdle(ZI_F, _bio()).fit(tol=1e-12), 0.0),
        # lme4's logLik() for nAGQ > 1 leaves out the saturated-model constant
        "glmm": (emstats.glmm_logit("incidence ~ period", data=cbpp, groups="herd",
                                    trials="size").fit(tol=1e-12),
                 R["glmm"]["loglik_saturated"]),
    }


@pytest.fixture(scope="module")
def fits():
    return _fits()


@pytest.mark.parametrize("name", ["tobit", "zeroinfl", "hurdle", "glmm"])
def test_llnull_against_r(fits, name):
    res, const = fits[name]
    # both sides converged to 1e-12 relative or better
    assert_allclose(res.llf - const, R[name]["llf"], rtol=1e-8)
    assert_allclose(res.llnull - const, R[name]["llnull"], rtol=1e-8)
    llr = 2 * (R[name]["llf"] - R[name]["llnull"])
    assert_allclose(res.llr, llr, rtol=1e-6)
    assert res.df_null_test == res.k_params - 2      # intercept(s) and a scale, or two intercepts
    assert_allclose(res.llr_pvalue, stats.chi2.sf(llr, res.df_null_test), rtol=1e-5)
    assert_allclose(res.prsquared, 1 - res.llf / res.llnull, rtol=1e-12)
    text = str(res.summary())
    assert "LL-Null:" in text and "Pseudo R-squ.:" in text
    assert f"chi2({res.df_null_test})" in text


def test_no_test_without_regressors():
    res = emstats.tobit("affairs ~ 1", emstats.datasets.load("affairs")).fit()
    assert res.df_null_test == 0 and np.isnan(res.llnull)
    assert "LL-Null" not in str(res.summary())


def test_llnull_survives_remove_data(fits):
    import copy

    res = copy.deepcopy(fits["tobit"][0])
    before = res.llnull
    res.remove_data()
    assert res.llnull == before and "LL-Null:" in str(res.summary())


@pytest.fixture(scope="module", params=sorted(MODELS))
def any_fit(request):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res, _ = MODELS[request.param]()
    res = res.best if isinstance(res, emstats.GMMSelection) else res
    if not isinstance(res, EMResults):
        pytest.xfail(f"{type(res).__name__} is not an EMResults yet")
    return res


def test_the_same_wording_everywhere(any_fit):
    res = any_fit
    text = str(res.summary())
    conv = res.convergence
    assert re.search(r"Converged:\s+(yes|no)\b", text)
    m = re.search(r"Method:\s+(?:ML|VB), (.+?)(?:\s{2,}|\s*\n)", text)   # VB: variational
    assert m and m.group(1) == METHOD_NAMES[conv.method]
    long, short = describe_iterations(conv, len(res.extra.get("starts", ())) or 1)
    assert f"Iterations: {long};" in text
    assert re.search(r"Iterations:\s+" + re.escape(short), text)
    # the counts add up to what ran
    counts = [int(c) for c in re.findall(r"(\d+) \w", short)]
    assert sum(counts) == conv.n_iter


def test_repr_says_what_it_is(any_fit):
    res = any_fit
    r = repr(res)
    assert r.startswith(f"<{type(res).__name__}: {type(res.model).__name__} of ")
    assert f"{res.nobs} observations" in r and f"{res.k_params} parameters" in r
    assert ("converged" in r) and METHOD_NAMES[res.convergence.method] in r


def _conv(method, n_iter, n_em, **extra):
    return ConvergenceInfo(converged=True, reason="tol", method=method, n_iter=n_iter,
                           n_em_steps=n_em, loglik=np.zeros(n_iter + 1),
                           step=np.zeros(n_iter + 1), seconds=np.zeros(n_iter + 1),
                           n_decreases=0, final_delta=0.0, wall_time=0.0, extra=extra)


@pytest.mark.parametrize("conv, n_starts, long, short", [
    (_conv("newton", 5, 0), 1, "5 Newton steps", "5 Newton"),
    (_conv("newton", 25, 20, start_iterations=20, start_method="em"), 1,
     "5 Newton steps from a start (20 EM steps)", "20 EM + 5 Newton"),
    (_conv("newton", 31, 27, start_iterations=25, start_method="em"), 5,
     "6 Newton steps (2 EM-map evaluations in fall-back steps) from the best of 5 starts "
     "(25 EM steps)",
     "25 EM + 6 Newton"),
    (_conv("em", 1, 1), 1, "1 EM step", "1 EM"),
    (_conv("squarem", 12, 37), 1, "12 SQUAREM cycles (37 EM-map evaluations)", "12 SQUAREM"),
    (_conv("newton", 9, 0, start_iterations=6, start_method="newton"), 1,
     "9 Newton steps (continued after fixing parameters on the boundary)", "9 Newton"),
])
def test_describe_iterations(conv, n_starts, long, short):
    assert describe_iterations(conv, n_starts) == (long, short)


def test_model_repr():
    m = emstats.tobit("affairs ~ age + C(gender)", emstats.datasets.load("affairs"))
    assert repr(m) == ("<Tobit: affairs ~ 1 + C(gender) + age, 601 observations, "
                       "4 parameters; not fitted: call .fit()>")
    assert repr(emstats.mvn(emstats.datasets.load("nhanes"))).startswith("<MVN: ")
