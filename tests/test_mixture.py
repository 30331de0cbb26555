"""Poisson mixtures: the model that shows what a model costs on the new design.

Witnesses: Hasselblad's (1969) published MLE for the death-notice counts (quoted to
four digits by Varadhan & Roland 2008, section 7.1), a direct numerical maximisation
of the observed log-likelihood, and a numerical Hessian for Louis' standard errors.
"""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy import optimize, special, stats

import emstats
from emstats.exceptions import DataError

DEATHS = np.arange(10)
DAYS = np.array([162, 267, 271, 185, 111, 61, 27, 8, 3, 1])


def _negll(u):
    p = special.expit(u[0])
    lam = np.exp(u[1:])
    f = p * stats.poisson.pmf(DEATHS, lam[0]) + (1 - p) * stats.poisson.pmf(DEATHS, lam[1])
    return -float(DAYS @ np.log(f))


@pytest.fixture(scope="module")
def model():
    return emstats.poisson_mixture(DEATHS, k=2, weights=DAYS)


@pytest.fixture(scope="module")
def res(model):
    return model.fit()


def test_published_mle_and_direct_maximisation(res):
    assert res.convergence.converged
    # Hasselblad (1969): pi_1 = 0.3599, lambda = (1.256, 2.663)
    assert abs(res.weights[1] - 0.3599) < 5e-5
    assert_allclose(res.rates.to_numpy(), [1.256, 2.663], atol=5e-4)
    direct = optimize.minimize(_negll, [0.0, 0.0, 1.0], method="BFGS",
                               options={"gtol": 1e-9})
    lam = np.sort(np.exp(direct.x[1:]))
    assert res.llf >= -direct.fun - 1e-9
    assert_allclose(res.rates.to_numpy(), lam, rtol=1e-4)   # BFGS's own gtol limits this
    # the score at the estimate vanishes to the stopping rule's accuracy
    assert res.convergence.max_abs_score < 1e-3


def test_louis_matches_numerical_hessian(model, res):
    num = model.fit(cov_type="numerical")
    assert_allclose(res.bse, num.bse, rtol=1e-4)
    # EM's rate here is the largest fraction of missing information: close to 1
    assert 0.98 < res.convergence.em_rate < 1.0


@pytest.mark.parametrize("method", ["em", "squarem", "newton", "incremental"])
def test_every_method_reaches_the_mle(model, res, method):
    opts = {"n_blocks": 3} if method == "incremental" else None
    r = model.fit(method=method, tol=1e-12, maxiter=50_000, method_options=opts)
    # the same maximum; plain EM's parameters are short by step / (1 - rate)
    assert abs(r.llf - res.llf) < 1e-7 * abs(res.llf)


def test_model_keeps_no_state(model):
    a = model.fit(method="squarem")
    b = model.fit(method="squarem")
    fresh = emstats.poisson_mixture(DEATHS, k=2, weights=DAYS).fit(method="squarem")
    assert_allclose(a.params, b.params, rtol=0, atol=0)
    assert_allclose(a.params, fresh.params, rtol=0, atol=0)


def test_threads_do_not_change_the_answer(model):
    a = model.fit(n_threads=1)
    b = model.fit(n_threads=2)
    assert np.array_equal(a.params.to_numpy(), b.params.to_numpy())


def test_multistart_and_label_order(model):
    r = model.fit(init="random", n_init=4, seed=3)
    assert len(r.extra["starts"]) == 4
    assert np.all(np.diff(r.rates.to_numpy()) > 0)          # components by rate
    assert r.llf == pytest.approx(model.fit().llf, rel=1e-9)


def test_predict_vocabulary(res):
    pr = res.predict_proba([0, 9])
    assert_allclose(pr.sum(axis=1), 1.0)
    assert pr.iloc[0, 0] > pr.iloc[1, 0]                     # zero deaths: low-rate component
    assert list(res.predict([0, 9], which="label")) == [1, 2]
    assert res.predict() == pytest.approx(float(DEATHS @ DAYS / DAYS.sum()), rel=1e-6)
    with pytest.raises(ValueError, match="which must be"):
        res.predict(which="nope")


@pytest.mark.parametrize("kwargs, match", [
    ({"counts": [1, -2, 3], "k": 1}, "non-negative integer counts"),
    ({"counts": [1, 2.5, 3], "k": 1}, "non-negative integer counts"),
    ({"counts": [1, np.nan, 3], "k": 1}, "non-negative integer counts"),
    ({"counts": [1, 2, 3], "k": 0}, "k must be a positive integer"),
    ({"counts": [1, 1, 2], "k": 3}, "at least 3 distinct counts"),
    ({"counts": [0, 0, 0], "k": 1}, "every count of .* is zero"),
    ({"counts": [1, 2, 3], "k": 1, "weights": [1, 2]}, "weights have 2 rows"),
])
def test_bad_input(kwargs, match):
    with pytest.raises((DataError, ValueError), match=match):
        emstats.poisson_mixture(**kwargs)


@pytest.mark.parametrize("kwargs, match", [
    ({"tol": -1}, "tol must be a positive"),
    ({"tol": "1e-8"}, "tol must be a positive number"),
    ({"maxiter": 0}, "maxiter must be an integer >= 1"),
    ({"maxiter": np.inf}, "maxiter must be an integer >= 1"),
    ({"n_init": 0}, "n_init must be an integer >= 1"),
    ({"start_params": {"weights": [1.0]}}, "'weights' and 'rate'"),
    ({"init": "kmeans"}, "init must be"),
    ({"cov_type": "hc3"}, "cov_type must be one of"),
])
def test_bad_fit_arguments(model, kwargs, match):
    with pytest.raises((TypeError, ValueError), match=match):
        model.fit(**kwargs)


def test_no_standard_errors_on_request(model):
    r = model.fit(cov_type=None)
    assert r.cov_type == "none" and np.all(np.isnan(r.bse))
    assert r.convergence.converged


def test_stopping_rule_knows_ems_rate(model, res):
    """Plain EM at the default tol stops near the maximum although its rate is ~0.996.

    A rule on the last change alone would stop some 230 changes short (d r / (1 - r));
    Aitken's estimate of the remaining distance keeps EM going until it, too, is below
    tol * min(1 + |loglik|, 10).  The estimate is asymptotic, hence the factor 3.
    """
    em = model.fit(method="em", maxiter=100_000, cov_type=None)
    gap = res.llf - em.llf
    threshold = 1e-8 * min(1 + abs(em.llf), 10)
    assert -1e-9 < gap < 3 * threshold
    assert em.convergence.est_distance <= threshold * (1 + 1e-12)
    assert "estimated distance to the maximum" in em.summary().as_text()
