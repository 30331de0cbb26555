"""EM variants of the engine, on the Tobit model: each reaches the exact-EM MLE."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose

import emstats
from emstats.em import run_em

FORMULA = "affairs ~ age + yearsmarried + religiousness + occupation + rating"


@pytest.fixture(scope="module")
def affairs_model():
    return emstats.tobit(FORMULA, emstats.datasets.load("affairs"))


@pytest.fixture(scope="module")
def exact(affairs_model):
    return affairs_model.fit(tol=1e-13)


@pytest.fixture(scope="module")
def big():
    rng = np.random.default_rng(11)
    n = 20000
    X = np.column_stack([np.ones(n), rng.normal(size=(n, 3))])
    y = np.maximum(X @ [0.2, 1.0, -0.5, 0.3] + rng.normal(size=n), 0.0)
    m = emstats.Tobit(y, X, censor_left=0)
    return m, m.fit(tol=1e-13)


def test_gradient_em_is_monotone_and_reaches_mle(affairs_model, exact):
    res = affairs_model.fit(method="gradient", tol=1e-13, maxiter=5000)
    assert res.convergence.converged and res.convergence.n_decreases == 0
    assert np.all(np.diff(res.convergence.loglik) >= -1e-9)
    assert_allclose(res.llf, exact.llf, rtol=1e-10)  # tol 1e-13 and rate < 0.999
    assert_allclose(res.params, exact.params, rtol=1e-4, atol=1e-5)


def test_incremental_em_reaches_mle_in_fewer_passes(big):
    model, exact = big
    target = exact.llf - 1e-9 * abs(exact.llf)

    def passes_to_target(method, **kw):
        trace = []

        def cb(it, params, ll):  # the exact log-likelihood after each pass
            trace.append(model.loglike(params))
            return trace[-1] >= target

        model.fit(method=method, callback=cb, maxiter=500, tol=1e-15, **kw)
        assert trace[-1] >= target
        return len(trace)

    inc = passes_to_target("incremental", method_options={"n_blocks": 20})
    em = passes_to_target("em")
    assert inc < 0.7 * em, (inc, em)
    res = model.fit(method="incremental", method_options={"n_blocks": 20}, tol=1e-12)
    assert_allclose(res.params, exact.params, rtol=1e-5, atol=1e-5)
    assert res.convergence.extra["n_passes"] == res.convergence.n_iter


def test_mcem_agrees_with_exact_em_within_mc_error(affairs_model, exact):
    res = affairs_model.fit(method="mcem", seed=7, maxiter=2000,
                            method_options={"size0": 100, "max_size": 4000, "delta2": 0.004})
    conv = res.convergence
    assert conv.converged and "Booth & Hobert" in conv.reason
    sizes = conv.extra["mc_size"]
    assert np.all(np.diff(sizes) >= 0) and sizes[-1] > sizes[0]
    mc_se = conv.extra["mc_se"][-1]
    # the chain's Monte Carlo error accumulates over ~1/(1 - rate) steps
    tol = 10 * mc_se / np.sqrt(1 - exact.convergence.em_rate**2)
    assert np.all(np.abs(res.params - exact.params) < tol)
    assert np.all(np.abs(res.params - exact.params) < 0.05 * exact.bse)
    assert "Monte Carlo" in res.summary().as_text()


def test_mcem_geometric_schedule_grows(affairs_model, exact):
    res = affairs_model.fit(method="mcem", seed=3, method_options={
        "schedule": "geometric", "size0": 20, "growth": 1.3, "max_size": 3000,
        "delta2": 0.005})
    sizes = res.convergence.extra["mc_size"]
    assert np.all(np.diff(sizes) >= 0) and np.all(np.diff(sizes[sizes < 3000]) > 0)
    assert np.all(np.abs(res.params - exact.params) < 0.25 * exact.bse)


def test_stochastic_em_chain_average(affairs_model, exact):
    res = affairs_model.fit(method="stochastic", seed=5,
                            method_options={"burn_in": 100, "n_keep": 1500}, maxiter=1600)
    chain = res.convergence.extra["chain"]
    assert chain.shape == (1600, 7)
    assert_allclose(res.params.to_numpy(), chain[100:].mean(axis=0))
    # stochastic EM's chain average is close to, not equal to, the MLE
    assert np.all(np.abs(res.params - exact.params) < 0.3 * exact.bse)
    assert res.convergence.converged


def test_seeded_methods_are_reproducible(affairs_model):
    a = affairs_model.fit(method="stochastic", seed=1, method_options={"n_keep": 50})
    b = affairs_model.fit(method="stochastic", seed=1, method_options={"n_keep": 50})
    assert_allclose(a.params, b.params, rtol=0, atol=0)


def test_method_option_errors(affairs_model):
    with pytest.raises(ValueError, match="needs 500 iterations but maxiter is 100"):
        affairs_model.fit(method="stochastic", maxiter=100)
    with pytest.raises(ValueError, match="bad method_options for 'mcem'"):
        affairs_model.fit(method="mcem", method_options={"nonsense": 1})
    with pytest.raises(ValueError, match="schedule must be"):
        affairs_model.fit(method="mcem", method_options={"schedule": "linear"})


def test_methods_that_do_not_apply_are_named():
    from test_engine import Linkage

    with pytest.raises(ValueError, match="does not apply to Linkage.*use one of 'em'"):
        run_em(Linkage(), method="mcem")
    with pytest.raises(ValueError, match="no additive block statistics"):
        run_em(Linkage(), method="incremental")


def test_incremental_em_for_gaussian_mixtures():
    """Incremental EM on a mixture: the EM MLE on Old Faithful, and fewer passes than EM."""
    import warnings

    faithful = emstats.datasets.load("faithful")
    m = emstats.gmm(faithful, 2)
    a = m.fit(method="em", tol=1e-13)
    b = m.fit(method="incremental", tol=1e-13)
    # both stop on a relative change of 1e-13: the remaining gap is tol * rate / (1 - rate)
    assert_allclose(b.llf, a.llf, rtol=1e-10)
    assert_allclose(b.params, a.params, rtol=1e-5, atol=1e-6)

    rng = np.random.default_rng(5)
    centres = np.array([[0.0, 0.0], [3.0, 0.0], [0.0, 3.0]])
    X = centres[rng.integers(0, 3, size=50000)] + rng.normal(size=(50000, 2))
    g = emstats.gmm(X, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = g.fit(n_init=1, maxiter=2, tol=1e-3, cov_type="numerical").raw_params
    target = run_em(g, start, method="squarem", tol=1e-15, maxiter=5000, warn=False).loglik
    target -= 1e-8 * abs(target)

    def passes(method, **kw):
        trace = []

        def cb(it, params, ll):
            trace.append(g.loglike(params))
            return trace[-1] >= target

        run_em(g, start, method=method, tol=1e-15, maxiter=500, callback=cb, warn=False, **kw)
        assert trace[-1] >= target
        return len(trace)

    assert passes("incremental", method_options={"n_blocks": 20}) < 0.7 * passes("em")
