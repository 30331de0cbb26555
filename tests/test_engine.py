"""The engine alone, on a 20-line model: Dempster, Laird & Rubin's (1977) genetic linkage.

Multinomial counts y = (125, 18, 20, 34) with cell probabilities
(1/2 + t/4, (1 - t)/4, (1 - t)/4, t/4).  The first cell is split into latent
counts with probabilities 1/2 and t/4.  DLR (1977, section 1, Table 1) report the
MLE t = 0.6268214980 (the positive root of 197 t^2 - 15 t - 68) and a rate of convergence of 0.1328.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose

import emstats
from emstats.em import EMModel, LouisPieces, run_em
from emstats.em.monitor import ConvergenceMonitor
from emstats.inference import EMResults, fit_model

Y = np.array([125.0, 18.0, 20.0, 34.0])
T_HAT = (15 + np.sqrt(15**2 + 4 * 197 * 68)) / (2 * 197)  # root of 197 t^2 - 15 t - 68


class Linkage(EMModel):
    param_names = ["theta"]

    def start_params(self):
        return 0.5

    def e_step(self, t):
        x2 = Y[0] * (t / 4) / (0.5 + t / 4)  # expected latent count of the t/4 part
        p = np.array([0.5 + t / 4, (1 - t) / 4, (1 - t) / 4, t / 4])
        return x2, float(Y @ np.log(p))

    def m_step(self, x2, t):
        return (x2 + Y[3]) / (x2 + Y[1] + Y[2] + Y[3])

    def pack(self, t):
        return np.array([np.log(t / (1 - t))])

    def unpack(self, u):
        return float(1 / (1 + np.exp(-u[0])))

    def to_inference(self, t):
        return np.array([t])

    def from_inference(self, v):
        return float(v[0])

    def score(self, t):
        return np.array([Y[0] / (2 + t) - (Y[1] + Y[2]) / (1 - t) + Y[3] / t])

    def louis(self, t):
        x2 = self.e_step(t)[0]
        pr = t / (2 + t)
        comp = (x2 + Y[3]) / t**2 + (Y[1] + Y[2]) / (1 - t) ** 2
        miss = Y[0] * pr * (1 - pr) / t**2
        return LouisPieces(np.array([[comp]]), np.array([[miss]]))


def test_plain_em_reproduces_dlr_table_1():
    run = run_em(Linkage(), method="em", tol=1e-15, ptol=1e-13, maxiter=100)
    assert_allclose(run.params, T_HAT, rtol=1e-12)
    assert_allclose(run.params, 0.6268214980, atol=5e-11)
    t = [0.5]
    m = Linkage()
    for _ in range(8):
        t.append(m.m_step(m.e_step(t[-1])[0], t[-1]))
    # DLR Table 1: theta^(p) and the ratio of successive errors (~0.1328)
    assert_allclose(t[1:4], [0.608247423, 0.624321051, 0.626488879], atol=1e-9)
    err = np.abs(np.array(t) - T_HAT)
    assert_allclose(err[5] / err[4], 0.1328, atol=5e-4)
    assert np.all(np.diff(run.convergence.loglik) >= -1e-12)  # up to round-off


@pytest.mark.parametrize("method", ["em", "squarem", "newton"])
def test_methods_reach_the_mle(method):
    run = run_em(Linkage(), method=method, tol=1e-14, ptol=1e-12)
    assert run.convergence.converged
    assert_allclose(run.params, T_HAT, rtol=1e-11)
    assert run.convergence.n_decreases == 0


# Hasselblad's (1969) deaths of women aged 80+ per day in The Times, 1910-1912: days with
# 0, 1, ..., 9 deaths.  A two-component Poisson mixture fits them; the fraction of missing
# information is close to 1, so plain EM is very slow (Varadhan & Roland 2008, section 7.1:
# thousands of EM evaluations against about a hundred for SQUAREM).
DEATHS = np.arange(10.0)
DAYS = np.array([162.0, 267, 271, 185, 111, 61, 27, 8, 3, 1])


class PoissonMixture2(EMModel):
    """(p, lambda1, lambda2); packed as (logit p, log lambda1, log lambda2)."""

    param_names = ["p", "lambda1", "lambda2"]

    def start_params(self):
        return np.array([0.3, 1.0, 2.5])          # Varadhan & Roland's start

    def _joint(self, t):
        p, l1, l2 = t
        return np.column_stack([
            p * np.exp(-l1) * l1**DEATHS, (1 - p) * np.exp(-l2) * l2**DEATHS])

    def e_step(self, t):
        j = self._joint(t)
        f = j.sum(axis=1)
        r = j[:, 0] / f
        ll = float(DAYS @ (np.log(f) - np.array([np.sum(np.log(np.arange(1, y + 1)))
                                                  for y in DEATHS])))
        return r, ll

    def m_step(self, r, t):
        w1, w2 = DAYS * r, DAYS * (1 - r)
        return np.array([w1.sum() / DAYS.sum(), w1 @ DEATHS / w1.sum(), w2 @ DEATHS / w2.sum()])

    def pack(self, t):
        return np.array([np.log(t[0] / (1 - t[0])), np.log(t[1]), np.log(t[2])])

    def unpack(self, u):
        return np.array([1 / (1 + np.exp(-u[0])), np.exp(u[1]), np.exp(u[2])])

    def to_inference(self, t):
        return np.asarray(t, dtype=float).copy()

    def from_inference(self, v):
        return np.asarray(v, dtype=float).copy()


def test_squarem_needs_far_fewer_em_steps_than_em_where_em_is_slow():
    # the same stopping rule for both, tight enough that the comparison is not decided by
    # where round-off stops either scheme
    em = run_em(PoissonMixture2(), method="em", tol=1e-12, maxiter=100_000)
    sq = run_em(PoissonMixture2(), method="squarem", tol=1e-12, maxiter=100_000)
    assert em.convergence.converged and sq.convergence.converged
    # Hasselblad's MLE (p, lambda1, lambda2) = (0.3599, 1.256, 2.663), to its published
    # digits; plain EM stopped by the relative-change rule is short of the limit by about
    # step / (1 - rate), some 1e-4 in p at this rate, hence its looser tolerance
    assert_allclose(sq.params, [0.3599, 1.256, 2.663], atol=1e-3)
    assert abs(sq.params[0] - 0.3599) < 1e-4
    assert_allclose(em.params, [0.3599, 1.256, 2.663], atol=6e-4)
    assert sq.loglik >= em.loglik - 1e-8 * abs(em.loglik)
    # EM's rate here is about 0.99: it needs over a thousand steps; SQUAREM a few hundred
    # at most.  The factor of 3 is far inside the gap the theory predicts.
    assert em.convergence.n_em_steps > 1000
    assert 3 * sq.convergence.n_em_steps < em.convergence.n_em_steps


def test_louis_rate_and_standard_error():
    res = fit_model(Linkage(), EMResults, method="em", tol=1e-14, nobs=197, df_model=1)
    # rate = fraction of missing information (DLR: 0.1328)
    assert_allclose(res.convergence.em_rate, 0.1328, atol=5e-4)
    # observed information by direct differentiation of the multinomial log-likelihood
    t = T_HAT
    info = Y[0] / (2 + t) ** 2 + (Y[1] + Y[2]) / (1 - t) ** 2 + Y[3] / t**2
    assert_allclose(res.bse["theta"], 1 / np.sqrt(info), rtol=1e-7)
    assert "theta" in res.summary().as_text()


def test_numerical_covariance_without_louis():
    class NoLouis(Linkage):
        louis = EMModel.louis
        score = EMModel.score

    m = NoLouis()
    assert not m.has_louis
    with pytest.warns(RuntimeWarning, match="numerical Hessian"):
        res = fit_model(m, EMResults, method="squarem", tol=1e-14, nobs=197, df_model=1)
    assert res.cov_type == "numerical"
    t = T_HAT
    info = Y[0] / (2 + t) ** 2 + (Y[1] + Y[2]) / (1 - t) ** 2 + Y[3] / t**2
    assert_allclose(res.bse["theta"], 1 / np.sqrt(info), rtol=1e-5)
    # EM rate estimated from the trace of plain EM when Louis is unavailable
    res = fit_model(m, EMResults, method="em", tol=1e-14, nobs=197, df_model=1,
                    cov_type="numerical")
    assert_allclose(res.convergence.em_rate, 0.1328, atol=5e-3)
    with pytest.raises(ValueError, match="does not apply to NoLouis.*'em', 'squarem'"):
        run_em(m, method="newton")


def test_decrease_is_detected_and_warned():
    class Bad(Linkage):
        def m_step(self, x2, t):  # a broken M-step that moves away from the MLE
            return 0.5 * t

    from emstats.em import LikelihoodDecreaseWarning

    with pytest.warns(LikelihoodDecreaseWarning):
        run = run_em(Bad(), start=0.62, method="em", maxiter=5, warn=False)
    assert run.convergence.n_decreases >= 1


def test_line_search_accepts_a_drop_within_round_off_at_once():
    """At the maximum to rounding the trial log-likelihood differs from the current one
    by its rounding whichever the step: the full step is taken, not 30 halvings (each a
    pass over the data: 63 Louis passes in a 1e6-row mixture fit)."""
    from emstats.em.accel import State, line_search

    calls = []

    def evaluate(t):
        calls.append(t)
        return (-1.3e7 - 2e-8,)          # below -1.3e7 by rounding only (1e-14 relative)

    model = Linkage()
    got = line_search(model, State(0.6, None, -1.3e7), np.array([0.6]), np.array([1e-9]),
                      30, evaluate)
    assert got is not None and len(calls) == 1
    calls.clear()
    got = line_search(model, State(0.6, None, -1.3e7 + 1.0), np.array([0.6]),
                      np.array([1e-9]), 5, evaluate)           # a real drop: refused
    assert got is None and len(calls) == 5


class Overshoot(Linkage):
    """A generalised M-step that goes 3 times as far as EM's (an ascent direction that
    overshoots: the error is multiplied by about -1.6 per step)."""

    m_step_exact = False

    def m_step(self, x2, t):
        return float(np.clip(t + 3.0 * (super().m_step(x2, t) - t), 0.01, 0.99))


def test_an_overshooting_generalised_m_step_is_shortened():
    run = run_em(Overshoot(), start=0.3, method="em", maxiter=500, tol=1e-12, warn=False)
    assert run.convergence.converged and run.convergence.n_decreases == 0
    assert abs(run.params - T_HAT) < 1e-6
    exact = type("Exact", (Overshoot,), {"m_step_exact": True})     # not shortened
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bad = run_em(exact(), start=0.3, method="em", maxiter=20, warn=False)
    assert bad.convergence.n_decreases > 0


def test_a_fit_warns_of_a_decrease_once_at_the_users_line():
    """Through fit_model the decrease warning is issued when the fit ends, once, and
    points at the caller's line (not at the package or contextlib)."""
    class Bad(Linkage):
        def m_step(self, x2, t):
            return 0.5 * t

    from emstats.em import LikelihoodDecreaseWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = fit_model(Bad(), EMResults, start_params=0.62, method="em", maxiter=5,
                        nobs=197, df_model=1, cov_type=None)
    drops = [w for w in caught if issubclass(w.category, LikelihoodDecreaseWarning)]
    assert len(drops) == 1 and res.convergence.n_decreases >= 2
    assert drops[0].filename == __file__


def test_decreases_are_warned_once_per_fit_and_all_counted():
    from emstats.em import LikelihoodDecreaseWarning
    from emstats.em.monitor import decrease_warning_scope

    trace = [-10.0, -11.0, -12.0, -13.0]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with decrease_warning_scope():
            monitors = [ConvergenceMonitor(maxiter=10) for _ in range(2)]
            for mon in monitors:            # e.g. two starts of one fit
                for ll in trace:
                    mon.record(ll, 1.0)
        alone = ConvergenceMonitor(maxiter=10)   # outside a fit: once per monitor
        for ll in trace:
            alone.record(ll, 1.0)
    drops = [w for w in caught if issubclass(w.category, LikelihoodDecreaseWarning)]
    assert len(drops) == 2
    assert "n_decreases counts them" in str(drops[0].message)
    assert [m.n_decreases for m in monitors + [alone]] == [3, 3, 3]


def test_monitor_validates_arguments():
    with pytest.raises(ValueError, match="tol must be positive"):
        ConvergenceMonitor(tol=0)
    with pytest.raises(ValueError, match="maxiter must be at least 1"):
        ConvergenceMonitor(maxiter=0)


def test_ptol_requires_parameter_change():
    run = run_em(Linkage(), method="em", tol=1e-3, ptol=1e-12, maxiter=200)
    assert abs(run.params - T_HAT) < 1e-11
    assert "ptol" in run.convergence.reason


def test_supplemented_em_standard_error():
    res = fit_model(Linkage(), EMResults, tol=1e-14, ptol=1e-13, nobs=197, df_model=1,
                    cov_type="sem")
    t = T_HAT
    info = Y[0] / (2 + t) ** 2 + (Y[1] + Y[2]) / (1 - t) ** 2 + Y[3] / t**2
    assert_allclose(res.bse["theta"], 1 / np.sqrt(info), rtol=1e-6)
    assert_allclose(res.extra["em_jacobian"][0, 0], 0.1328, atol=5e-4)


def test_sem_needs_complete_information():
    class NoLouis(Linkage):
        louis = EMModel.louis

    with pytest.raises(ValueError, match="needs the complete-data information"):
        fit_model(NoLouis(), EMResults, method="em", nobs=197, df_model=1, cov_type="sem")


def test_small_problems_run_on_one_thread():
    """Threads are chosen from the work: a few hundred rows do not pay for a second thread
    (issue 16, item 5), an explicit n_threads is honoured."""
    from emstats._config import ROWS_PER_THREAD, resolve_threads
    from emstats.em.problem import bind

    small = emstats.poisson_mixture(np.arange(10), k=2, weights=[5] * 10)
    assert bind(small).n_threads == 1
    assert bind(small, 2).n_threads == resolve_threads(2)
    big = emstats.poisson_mixture(np.arange(4 * ROWS_PER_THREAD) % 7, k=2)
    assert bind(big).n_threads == min(resolve_threads(None), 4)


def test_stopping_threshold_is_absolute_for_large_logliks():
    """tol * min(1 + |l|, 10): relative for small log-likelihoods, 10 tol above |l| = 9,
    and never below the round-off of l."""
    m = ConvergenceMonitor(tol=1e-8)
    assert m.threshold(-0.5) == pytest.approx(1.5e-8)
    assert m.threshold(-13336.7) == pytest.approx(1e-7)
    assert m.threshold(-1e9) == pytest.approx(1e-14 * (1 + 1e9))


def test_aitken_distance_from_a_linear_trace():
    """A trace l_t = -c r^t: the remaining distance is exactly d_t r / (1 - r); an
    irregular trace (a ratio above 1 in the span) gives infinity, a decrease |d|."""
    m = ConvergenceMonitor(tol=1e-8, monotone=False)   # the decrease below is on purpose
    for t in range(8):
        m.record(-2.0 * 0.9**t, 0.0)
    assert_allclose(m.rate(), 0.9, rtol=1e-12)
    assert_allclose(m.distance(), 2.0 * 0.9**7, rtol=1e-10)
    for ll in (-1e-3, -9e-4, -8.99e-4, -8e-4):     # short step, then a long jump
        m.record(ll, 0.0)
    assert m.distance() == np.inf
    m.record(-8.5e-4, 0.0)
    assert m.distance() == pytest.approx(5e-5)


def _monitor_on(trace, tol=1e-8):
    """A monitor fed the trace, and the first iteration at which its rule held (None)."""
    m = ConvergenceMonitor(tol=tol)
    first = None
    for t, ll in enumerate(trace):
        m.record(ll, 0.0)
        if first is None and m.converged():
            first = t
    return m, first


def test_regular_geometric_trace_is_unchanged_by_the_block_fallback():
    """A regular EM trace (ratios below 1) is Aitken's d r / (1 - r), at every point,
    and stops only once the true remaining distance is below the threshold's order."""
    r, top = 0.95, -100.0
    trace = top - 50.0 * r ** np.arange(600)
    m, first = _monitor_on(trace)
    assert first is not None
    assert top - trace[first] <= 1.001 * m.threshold(trace[first])
    m2 = ConvergenceMonitor(tol=1e-8)
    for ll in trace[:200]:
        m2.record(ll, 0.0)
    d = trace[199] - trace[198]
    assert_allclose(m2.distance(), d * r / (1 - r), rtol=1e-6)


def _squarem_like(n, rho=0.6, short=0.02, top=-500.0):
    """``n`` records of a trace whose increases come in cycles of two: a short step then
    a long jump, each cycle rho times the previous one (the ratios of single increases
    alternate 1/short and short), and its limit ``top``."""
    t = np.arange(n - 1)
    inc = np.where(t % 2 == 0, short, 1.0) * rho ** (t // 2)
    total = (1.0 + short) / (1.0 - rho)          # the sum of the whole series
    return top - total + np.concatenate([[0.0], np.cumsum(inc)]), top


def test_irregular_squarem_trace_converges_on_block_sums():
    """Before, a ratio of 1 or more anywhere in the span made the estimate infinite and
    such a trace ran to maxiter; the sums of blocks of 2, 3 and 4 increases decay, and
    their bound is finite, at least the true remaining distance (blocks of 3 cut the
    cycles unevenly: a conservative factor), and stops the trace once the true distance
    is below the threshold."""
    trace, top = _squarem_like(120)
    m = ConvergenceMonitor(tol=1e-8)
    for ll in trace[:30]:
        m.record(ll, 0.0)
    assert m.rate() > 1.0                       # Aitken alone: infinite
    rest = top - trace[29]
    assert rest <= m.distance() <= 30.0 * rest
    m, first = _monitor_on(trace)
    assert first is not None
    assert top - trace[first] <= m.threshold(trace[first])


def test_chance_quiet_stretch_of_a_creeping_trace_does_not_stop():
    """Sporadic jumps between quiet stretches, the jumps decaying like 1/t (no limit):
    the last four ratios can all be below 1 in a quiet stretch (Aitken alone then
    stops), the block sums do not decay.  (The block check needs 16 increases: the
    first ones are not asserted.)"""
    t = np.arange(1, 401, dtype=float)
    inc = np.where(t % 7 == 0, 1e-4 / t, 1e-9 * 0.5 ** (t % 7))
    trace = -50.0 + np.concatenate([[0.0], np.cumsum(inc)])
    m = ConvergenceMonitor(tol=1e-8)
    quiet = 0
    for i, ll in enumerate(trace):
        m.record(ll, 0.0)
        if i < 17:
            continue
        r = m.rate()
        quiet += bool(np.isfinite(r) and r < 1.0 and
                      m.delta() * r / (1 - r) <= m.threshold())
        assert not m.converged()
    assert quiet > 0                            # where the old rule stopped


def test_increases_at_round_off_still_stop():
    """A trace whose increases are below the round-off of the log-likelihood and jitter
    stops on Aitken's estimate (the block check needs increases it can resolve)."""
    rng = np.random.default_rng(0)
    trace = -1e3 + np.cumsum(np.r_[0.0, 1e-13 * (1.0 + rng.random(60))])
    trace[1:] = np.maximum.accumulate(trace[1:])
    m, first = _monitor_on(trace)
    assert first is not None


@pytest.mark.parametrize("kind", ["sublinear", "jittered creep", "jittered sublinear"])
def test_creeping_traces_are_not_declared_converged(kind):
    """Traces that are far from their limit (or have none) with increases of 1e-6:
    a sublinear 1/t^2 decay, increases that jitter without decaying, and a jittered
    1/t decay (a boundary creep).  None may stop."""
    t = np.arange(1, 3001, dtype=float)
    if kind == "sublinear":
        inc = 1e-2 / (t + 100.0) ** 2       # 1.4e-5 short of the limit at t = 600
    elif kind == "jittered creep":
        inc = 1e-6 * (1.0 + 0.5 * (-1.0) ** t)
    else:
        inc = 3e-3 / (t + 100.0) * np.where(t % 3 == 0, 1.0, 0.05)
    trace = -10.0 + np.concatenate([[0.0], np.cumsum(inc)])
    m = ConvergenceMonitor(tol=1e-8)
    for ll in trace[:600]:
        m.record(ll, 0.0)
        assert not m.converged(), (kind, len(m.loglik))


def test_newton_stops_on_its_decrement_with_a_last_step():
    # Hasselblad's deaths (above), where plain EM's rate is about 0.99
    model = emstats.poisson_mixture(DEATHS, k=2, weights=DAYS)
    res = model.fit(method="newton", cov_type=None)
    conv = res.convergence
    assert conv.converged and "Newton decrement" in conv.reason
    # after the last step the decrement is of the order of the previous one squared
    assert 0 <= conv.est_distance < 1e-10
    best = model.fit(method="em", tol=1e-14, maxiter=100_000, cov_type=None)
    assert -1e-9 < best.llf - res.llf < 1e-7


@pytest.mark.parametrize("fallback", ["squarem", "em"])
def test_newton_fallback_reaches_the_maximum(fallback):
    """From a start where Louis' information is not positive definite, Louis-Newton takes
    its fall-back steps (a SQUAREM cycle by default, an EM step on request) and still ends
    at the maximum; a bad fall-back name is an error naming the choices."""
    model = emstats.poisson_mixture(DEATHS, k=2, weights=DAYS)
    best = model.fit(method="em", tol=1e-14, maxiter=100_000, cov_type=None).llf
    start = {"weights": [0.5, 0.5], "rate": [2.1, 2.2]}       # nearly one component
    res = model.fit(method="newton", method_options={"fallback": fallback}, cov_type=None,
                    start_params=start)
    assert res.convergence.converged
    assert -1e-9 < best - res.llf < 1e-7
    assert res.convergence.extra["fallback"] == fallback
    assert res.convergence.extra["n_fallbacks"] >= 1
    with pytest.raises(ValueError, match="fallback must be 'squarem' or 'em'"):
        model.fit(method="newton", method_options={"fallback": "gradient"})
