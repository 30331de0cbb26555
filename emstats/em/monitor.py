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
        Stop when ``|l_t - l_(t-1)| <= tol * (|l_t| + tol)`` (relative change of
        the observed log-likelihood).
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
                    stacklevel=3,
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

    def converged(self, scale: float | None = None) -> bool:
        """Whether the stopping rule holds for the last two records."""
        if len(self.loglik) < 2:
            return False
        cur = self.loglik[-1]
        ok = abs(self.delta()) <= self.tol * (abs(cur) + self.tol)
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


def warn_not_converged(info: ConvergenceInfo) -> None:
    """Emit statsmodels' ConvergenceWarning for a fit that stopped without converging."""
    warnings.warn(
        f"EM ({info.method}) did not converge: {info.reason} after {info.n_iter} iterations; "
        f"last change in log-likelihood {info.final_delta:.3g}. Increase maxiter, use "
        "method='squarem' or 'newton', or check the model.",
        ConvergenceWarning,
        stacklevel=4,
    )
