"""Convergence bookkeeping for the EM engine."""

from __future__ import annotations

import time
import warnings
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

import numpy as np
from statsmodels.tools.sm_exceptions import ConvergenceWarning

from ..exceptions import LikelihoodDecreaseWarning

#: increases of the trace over which :meth:`ConvergenceMonitor.rate` estimates EM's rate
SPAN = 4
#: block lengths of the check of :meth:`ConvergenceMonitor.distance` on sums of blocks
#: of increases (:meth:`ConvergenceMonitor.block_bound`)
BLOCKS = (2, 3, 4)
#: ratios of successive block sums the check uses (BLOCK_SPAN + 1 whole blocks)
BLOCK_SPAN = 3
#: the absolute scale of the stopping rule: tol * min(1 + |l|, SCALE_CAP)
SCALE_CAP = 10.0
#: relative resolution of a log-likelihood (a sum of many rounded terms)
ROUNDOFF = 1e-14


@dataclass
class _DecreaseScope:
    """The decreases of the fit running in this context, shared by the monitors of its
    starts and phases: how many, the warning of the first, and whether to drop it."""

    count: int = 0
    first: str | None = None
    suppressed: bool = False


_fit_decreases: ContextVar[_DecreaseScope | None] = ContextVar("emstats_fit_decreases",
                                                               default=None)


@contextmanager
def decrease_warning_scope():
    """Context manager: inside it, the monitors' warning of a decrease of the
    log-likelihood is issued once (of the first), when the fit ends, however many starts
    and phases it runs -- unless the fit is degenerate (:func:`suppress_decrease_warning`:
    its own warning says why); every decrease is still counted
    (``convergence.n_decreases``)."""
    scope = _DecreaseScope()
    token = _fit_decreases.set(scope)
    try:
        yield scope
    finally:
        _fit_decreases.reset(token)
    if scope.first is not None and not scope.suppressed:
        warnings.warn(scope.first, LikelihoodDecreaseWarning, stacklevel=user_stacklevel())


def suppress_decrease_warning() -> int:
    """Drop the decrease warning of the fit running in this context (a degenerate fit,
    whose decreases are rounding at a singular estimate); returns its count of decreases."""
    scope = _fit_decreases.get()
    if scope is None:
        return 0
    scope.suppressed = True
    return scope.count


@dataclass
class ConvergenceMonitor:
    """Record the log-likelihood trace and decide when to stop.

    Parameters
    ----------
    tol : float
        Stop when the estimated distance of the log-likelihood to its limit is at most
        :meth:`threshold`: ``tol * min(1 + |l_t|, 10)`` -- relative to ``1 + |l|`` for a
        small log-likelihood, an absolute ``10 tol`` for the usual ones, since
        log-likelihoods are compared by differences (likelihood ratios, information
        criteria) whatever their size -- but never below the round-off of ``l_t``.  The
        distance is estimated from the trace by Aitken's acceleration (Bohning et al.
        1994) over a span of several iterations, checked on sums of blocks of increases
        over a longer one (:meth:`distance`); a scheme that knows
        a better estimate (Louis-Newton: the Newton decrement) supplies it instead.
    ptol : float or None
        If given, also require ``max |u_t - u_(t-1)| <= ptol * (1 + max |u_t|)``
        on the packed parameter vector.
    maxiter : int
        Maximum number of iterations.
    decrease_tol : float
        A decrease of the log-likelihood larger than ``decrease_tol * (1 + |l|)``
        counts as a monotonicity violation (smaller ones are round-off).
    """

    tol: float = 1e-8
    ptol: float | None = None
    maxiter: int = 1000
    decrease_tol: float = 1e-10
    monotone: bool = True
    loglik: list[float] = field(default_factory=list)
    step: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    n_decreases: int = 0
    _t0: float = field(default_factory=time.perf_counter)
    _last: float = 0.0

    def __post_init__(self):
        if not (self.tol > 0):
            raise ValueError(f"tol must be positive, got {self.tol!r}")
        if self.ptol is not None and not (self.ptol > 0):
            raise ValueError(f"ptol must be positive or None, got {self.ptol!r}")
        if int(self.maxiter) < 1:
            raise ValueError(f"maxiter must be at least 1, got {self.maxiter!r}")
        self._last = self._t0

    def record(self, loglik: float, step: float) -> None:
        """Record one iteration's log-likelihood and parameter step (max abs change)."""
        now = time.perf_counter()
        if self.loglik and self.monotone:
            prev = self.loglik[-1]
            if loglik < prev - self.decrease_tol * (1.0 + abs(prev)):
                self.n_decreases += 1
                scope = _fit_decreases.get()
                seen = scope.count if scope is not None else self.n_decreases - 1
                if not seen:
                    message = (f"log-likelihood decreased at iteration {len(self.loglik)}: "
                               f"{prev:.12g} -> {loglik:.12g} (further decreases in this fit "
                               "are not warned of: convergence.n_decreases counts them)")
                    if scope is not None:       # issued when the fit ends
                        scope.first = message
                    else:
                        warnings.warn(message, LikelihoodDecreaseWarning,
                                      stacklevel=user_stacklevel())
                if scope is not None:
                    scope.count += 1
        self.loglik.append(float(loglik))
        self.step.append(float(step))
        self.seconds.append(now - self._last)
        self._last = now

    @property
    def n_iter(self) -> int:
        """Number of iterations recorded (the first record is the start value)."""
        return max(len(self.loglik) - 1, 0)

    def delta(self) -> float:
        """Last change in the log-likelihood (NaN before two records)."""
        if len(self.loglik) < 2:
            return float("nan")
        return self.loglik[-1] - self.loglik[-2]

    def threshold(self, loglik: float | None = None) -> float:
        """The largest estimated distance to the maximum that counts as converged at the
        log-likelihood ``loglik`` (default the last one): ``tol * min(1 + |l|, 10)``,
        and at least ``ROUNDOFF * (1 + |l|)``, the resolution of a sum of many terms."""
        cur = self.loglik[-1] if loglik is None else loglik
        scale = 1.0 + abs(cur)
        return max(self.tol * min(scale, SCALE_CAP), ROUNDOFF * scale)

    def _increases(self, n: int) -> np.ndarray:
        """The trailing run of increases of the trace, at most ``n`` of them (a change
        that is not an increase ends the run)."""
        ll = self.loglik
        d = np.diff(ll[-(n + 1):]) if len(ll) >= 2 else np.zeros(0)
        pos = 0
        for x in d[::-1]:
            if x > 0:
                pos += 1
            else:
                break
        return d[len(d) - pos:]

    def rate(self) -> float:
        """The linear rate of the scheme estimated from the trace, conservatively: the
        largest ratio d_t / d_(t-1) of successive increases over the last ``SPAN``
        ratios (NaN with fewer than two increases; a change that is not an increase ends
        the span).  One ratio is enough for a regular EM trace; the largest of several
        keeps an irregular one (SQUAREM's cycles: a long jump after a few short steps)
        from looking fast."""
        run = self._increases(SPAN + 1)
        if run.size < 2:
            return float("nan")
        return float(np.max(run[1:] / run[:-1]))

    def block_bound(self) -> float:
        """The block check of :meth:`distance`: an estimate of the remaining increase
        from sums of blocks of increases, NaN when the trailing run of increases is too
        short for it, infinity when some block length shows no decay.

        For each b of ``BLOCKS`` the last ``b * (BLOCK_SPAN + 1)`` increases are cut into
        blocks of b (the last block ending at the last increase); with rho the largest
        ratio of successive block sums over the ``BLOCK_SPAN`` ratios, the remaining
        increase of a geometric decay of the sums is S rho / (1 - rho) for the last
        block's sum S.  The estimate is the largest over the block lengths, and infinity
        when rho >= 1 for any of them.  A trace whose steps alternate short and long
        (SQUAREM's cycles) has ratios of single increases above 1 but block sums that
        decay; one that creeps (sporadic jumps between quiet stretches, or a sublinear
        decay) has some block length whose sums do not.  For a geometric trace every
        block length gives Aitken's estimate exactly.
        """
        need = max(BLOCKS) * (BLOCK_SPAN + 1)
        run = self._increases(need)
        if run.size < need:
            return float("nan")
        out = 0.0
        for b in BLOCKS:
            sums = run[run.size - b * (BLOCK_SPAN + 1):].reshape(BLOCK_SPAN + 1, b).sum(1)
            rho = float(np.max(sums[1:] / sums[:-1]))
            if not rho < 1.0:
                return float("inf")
            out = max(out, float(sums[-1]) * rho / (1.0 - rho))
        return out

    def distance(self) -> float:
        """Estimated distance of the log-likelihood to its limit.

        With the last increase d_t > 0 and the rate r of :meth:`rate` in (0, 1), the
        remaining increase of a linearly convergent scheme is d_t r / (1 - r) (Aitken).
        Once the trailing run of increases is long enough, the estimate is also checked
        against sums of blocks of increases (:meth:`block_bound`) and the larger one is
        kept: that catches a trace whose last few ratios are below 1 by chance (a quiet
        stretch of a creeping SQUAREM run) and gives a finite estimate for an irregular
        trace whose single ratios exceed 1 but whose block sums decay.  The block check
        is skipped when every increase in it is below the round-off of the
        log-likelihood.  A rate of 1 or more with no finite block estimate, or a single
        increase (no rate yet), gives infinity.  A last change that is not an increase
        (round-off, or a scheme that made no progress) serves as its own estimate, |d_t|.
        """
        if len(self.loglik) < 2:
            return float("nan")
        d = self.delta()
        if not d > 0:
            return abs(d)
        r = self.rate()
        aitken = float(max(d, d * r / (1.0 - r))) if np.isfinite(r) and r < 1.0 \
            else float("inf")
        blocks = self.block_bound()
        if np.isnan(blocks):
            return aitken
        if np.isinf(blocks):
            noise = ROUNDOFF * (1.0 + abs(self.loglik[-1]))
            run = self._increases(max(BLOCKS) * (BLOCK_SPAN + 1))
            return aitken if float(np.max(run)) <= noise else float("inf")
        if np.isinf(aitken):
            return float(max(d, blocks))
        return float(max(aitken, blocks))

    def converged(self, scale: float | None = None, distance: float | None = None) -> bool:
        """Whether the stopping rule holds for the last records: the estimated distance
        (``distance``, or :meth:`distance` of the trace) at most :meth:`threshold`, and
        with ``ptol`` the parameter step too (``scale``: max |u| of the parameters)."""
        if len(self.loglik) < 2:
            return False
        dist = self.distance() if distance is None else distance
        ok = dist <= self.threshold()
        if self.ptol is not None:
            ok = ok and self.step[-1] <= self.ptol * (1.0 + (scale or 0.0))
        return bool(ok)

    @property
    def wall_time(self) -> float:
        """Seconds since the monitor was created."""
        return self._last - self._t0


@dataclass
class ConvergenceInfo:
    """Diagnostics of a finished fit (``results.convergence``).

    Attributes
    ----------
    converged : bool
    reason : str
        Why the loop stopped.
    method : str
        The EM method used (``"em"``, ``"squarem"``, ``"newton"``...).
    n_iter : int
        Iterations of the method (a SQUAREM cycle counts once).
    n_em_steps : int
        Evaluations of the EM map (E-step + M-step pairs).
    loglik : ndarray
        Observed log-likelihood trace; element 0 is at the start values.
    step : ndarray
        Max absolute change of the packed parameters per iteration.
    seconds : ndarray
        Wall time per iteration.
    n_decreases : int
        Log-likelihood decreases beyond round-off (should be 0 for EM).
    final_delta : float
        Last change in the log-likelihood.
    est_distance : float
        Estimated distance of the final log-likelihood to the maximum: Aitken's
        estimate from the trace (:meth:`ConvergenceMonitor.distance`), or the
        scheme's own (Louis-Newton: the Newton decrement at the final point).
    max_abs_score : float
        Largest absolute observed-data score at the solution (NaN if unavailable).
    min_eig_information : float
        Smallest eigenvalue of the observed information (NaN if unavailable).
    em_rate : float
        Rate of linear convergence of plain EM at the solution: the largest
        eigenvalue of the EM map's Jacobian, i.e. the largest fraction of missing
        information (from Louis' pieces), or estimated from the trace.
    em_rate_source : str
    wall_time : float
        Seconds spent in the loop.
    """

    converged: bool
    reason: str
    method: str
    n_iter: int
    n_em_steps: int
    loglik: np.ndarray
    step: np.ndarray
    seconds: np.ndarray
    n_decreases: int
    final_delta: float
    wall_time: float
    est_distance: float = float("nan")
    max_abs_score: float = float("nan")
    min_eig_information: float = float("nan")
    em_rate: float = float("nan")
    em_rate_source: str = "unavailable"
    extra: dict = field(default_factory=dict)

    def __repr__(self) -> str:  # compact, the arrays can be long
        return (
            f"ConvergenceInfo(converged={self.converged}, reason={self.reason!r}, "
            f"method={self.method!r}, n_iter={self.n_iter}, n_em_steps={self.n_em_steps}, "
            f"loglik={self.loglik[-1] if len(self.loglik) else float('nan'):.10g}, "
            f"n_decreases={self.n_decreases}, max_abs_score={self.max_abs_score:.3g}, "
            f"min_eig_information={self.min_eig_information:.3g}, em_rate={self.em_rate:.4f}, "
            f"wall_time={self.wall_time:.3g})"
        )


def user_stacklevel() -> int:
    """The ``stacklevel`` of a warning raised by the caller of this function that points
    at the first frame outside the emstats package: the user's line, however many of
    the package's frames (a model's ``fit``, ``fit_model``, the engine) lie between --
    and the standard library's ``contextlib`` of the package's context managers."""
    import contextlib
    import os
    import sys

    pkg = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
    skip = os.path.abspath(contextlib.__file__)
    frame, level = sys._getframe(1), 1
    while frame is not None:
        path = os.path.abspath(frame.f_code.co_filename)
        if not (path.startswith(pkg) or path == skip):
            break
        frame, level = frame.f_back, level + 1
    return level


#: advice of the warning by method (default: the EM family's)
_ADVICE = {
    "newton": "increase maxiter, or try method='squarem' (Newton steps from a poor start "
              "can stall)",
    "mcem": "increase maxiter or the Monte Carlo sample size (method_options), or use an "
            "exact E-step method if the model has one",
    "stochastic": "increase maxiter or the number of averaged iterations (method_options)",
}


def warn_not_converged(info: ConvergenceInfo, *, method_name: str | None = None,
                       iterations: str | None = None) -> None:
    """Emit statsmodels' ConvergenceWarning for a fit that stopped without converging,
    pointing at the user's line (:func:`user_stacklevel`).

    Parameters
    ----------
    info : ConvergenceInfo
        The record of the fit.
    method_name : str, optional
        The method's name as the docs say it (``"Louis-Newton"``); default the engine's.
    iterations : str, optional
        What ran (``"6 Newton steps from the best of 5 starts (25 EM steps)"``); default
        the count of the record's iterations.
    """
    name = method_name or f"EM ({info.method})"
    ran = iterations or f"{info.n_iter} iteration{'' if info.n_iter == 1 else 's'}"
    advice = _ADVICE.get(info.method, "increase maxiter, use method='squarem' or "
                                      "'newton', or check the model")
    warnings.warn(
        f"{name} did not converge: {info.reason} after {ran}; last change in "
        f"log-likelihood {info.final_delta:.3g}, estimated distance to the maximum "
        f"{info.est_distance:.3g}. To go on: {advice}.",
        ConvergenceWarning,
        stacklevel=user_stacklevel(),
    )
