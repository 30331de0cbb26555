"""Convergence bookkeeping for the EM engine."""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field

import numpy as np
from statsmodels.tools.sm_exceptions import ConvergenceWarning

from ..exceptions import LikelihoodDecreaseWarning


@dataclass
class ConvergenceMonitor:
    """Record the log-likelihood trace and decide when to stop.

    Parameters
    ----------
    tol : float
        Stop when the estimated distance of the log-likelihood to its limit is at most
        ``tol * (|l_t| + tol)``.  The distance is estimated from the trace by Aitken's
        acceleration (Bohning et al. 1994): with the last two increases d_t and
        d_(t-1) and their ratio r = d_t / d_(t-1) in (0, 1) -- EM's linear rate -- the
        remaining increase is about d_t r / (1 - r); otherwise the last change |d_t|
        serves.  Where EM is slow (r near 1) the plain relative-change rule would stop
        far short of the maximum; this one does not.
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
                warnings.warn(
                    f"log-likelihood decreased at iteration {len(self.loglik)}: "
                    f"{prev:.12g} -> {loglik:.12g}",
                    LikelihoodDecreaseWarning,
                    stacklevel=user_stacklevel(),
                )
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

    def distance(self) -> float:
        """Estimated distance of the log-likelihood to its limit (see ``tol``)."""
        if len(self.loglik) < 2:
            return float("nan")
        d = self.delta()
        dist = abs(d)
        if len(self.loglik) >= 3:
            prev = self.loglik[-2] - self.loglik[-3]
            if d > 0 and prev > 0:
                r = d / prev
                if r < 1.0:
                    dist = max(dist, d * r / (1.0 - r))
                else:
                    dist = float("inf")  # not yet in the linear regime
        return dist

    def converged(self, scale: float | None = None) -> bool:
        """Whether the stopping rule holds for the last records."""
        if len(self.loglik) < 2:
            return False
        cur = self.loglik[-1]
        ok = self.distance() <= self.tol * (abs(cur) + self.tol)
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
        Estimated distance of the final log-likelihood to the maximum (Aitken's
        estimate from the trace; see :class:`ConvergenceMonitor`).
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
    the package's frames (a model's ``fit``, ``fit_model``, the engine) lie between."""
    import os
    import sys

    pkg = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
    frame, level = sys._getframe(1), 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(pkg):
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
        f"log-likelihood {info.final_delta:.3g}. To go on: {advice}.",
        ConvergenceWarning,
        stacklevel=user_stacklevel(),
    )
