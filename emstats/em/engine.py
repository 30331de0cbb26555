"""The EM loop: one engine for every model and every iteration scheme."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .accel import LouisNewton, Method, PlainEM, Squarem
from .monitor import ConvergenceInfo, ConvergenceMonitor, warn_not_converged
from .protocol import EMModel
from .variants import GradientEM, IncrementalEM, MonteCarloEM, StochasticEM

#: the registered iteration schemes, by name
METHODS: dict[str, type[Method]] = {
    m.name: m
    for m in (PlainEM, Squarem, LouisNewton, GradientEM, IncrementalEM, MonteCarloEM,
              StochasticEM)
}

Callback = Callable[[int, Any, float], Any]


@dataclass
class EMRun:
    """What the engine returns: the final parameters and the convergence record."""

    params: Any
    loglik: float
    convergence: ConvergenceInfo
    method: Method


def available_methods() -> list[str]:
    """Names of the registered iteration schemes."""
    return sorted(METHODS)


def default_method(model: EMModel) -> str:
    """The scheme used when none is named: Louis-Newton when the model supplies Louis'
    pieces, SQUAREM otherwise (measured in benchmarks/bench_tobit.py; see docs/methods.md),
    and Monte Carlo EM when the model has no closed-form E-step."""
    if not getattr(model, "has_exact_e_step", True):
        return "mcem"
    return "newton" if model.has_louis else "squarem"


def applicable_methods(model: EMModel) -> list[str]:
    """Names of the schemes that can fit ``model``."""
    return [m for m in available_methods() if METHODS[m]().not_applicable(model) is None]


def resolve_method(
    model: EMModel, method: str | Method | None, options: dict | None = None
) -> Method:
    """Return a fresh :class:`Method` for ``method`` or raise naming the choices."""
    if method is None:
        method = default_method(model)
    if isinstance(method, Method):
        if options:
            raise ValueError("method_options apply to a method given by name")
        meth = method
    else:
        if not isinstance(method, str) or method.lower() not in METHODS:
            raise ValueError(
                f"unknown EM method {method!r}; methods for {type(model).__name__}: "
                + ", ".join(repr(m) for m in applicable_methods(model))
            )
        try:
            meth = METHODS[method.lower()](**(options or {}))
        except TypeError as err:
            raise ValueError(f"bad method_options for {method!r}: {err}") from None
    why = meth.not_applicable(model)
    if why is not None:
        ok = applicable_methods(model)
        raise ValueError(
            f"method {meth.name!r} does not apply to {type(model).__name__}: {why}; "
            "use one of " + ", ".join(repr(m) for m in ok)
        )
    return meth


def run_em(
    model: EMModel,
    start: Any = None,
    *,
    method: str | Method | None = None,
    maxiter: int = 1000,
    tol: float = 1e-8,
    ptol: float | None = None,
    progress: bool = False,
    callback: Callback | None = None,
    warn: bool = True,
    seed: int | np.random.Generator | None = None,
    method_options: dict | None = None,
) -> EMRun:
    """Run an EM iteration scheme on ``model`` until convergence.

    Parameters
    ----------
    model : EMModel
        Anything implementing the protocol of :mod:`emstats.em.protocol`.
    start : model parameters, optional
        Start values (default ``model.start_params()``).
    method : str, Method or None
        Iteration scheme (see :func:`available_methods`); None picks
        :func:`default_method`.
    maxiter : int
        Maximum number of iterations of the scheme.
    tol : float
        Tolerance on the relative change of the observed log-likelihood.
    ptol : float, optional
        Also require the max change of the packed parameters to be below
        ``ptol * (1 + max |u|)``.
    progress : bool
        Show a tqdm progress bar.
    callback : callable, optional
        ``callback(iteration, params, loglik)``; returning True stops the loop.
    warn : bool
        Emit ``ConvergenceWarning`` when ``maxiter`` is reached.
    seed : int or Generator, optional
        Random numbers for the simulation-based schemes.
    method_options : dict, optional
        Options of the scheme named by ``method`` (e.g. ``{"burn_in": 200}``).

    Returns
    -------
    EMRun
    """
    meth = resolve_method(model, method, method_options)
    meth.rng = np.random.default_rng(seed)
    needed = getattr(meth, "n_iterations", None)
    if needed is not None and needed > int(maxiter):
        raise ValueError(f"method {meth.name!r} needs {needed} iterations but maxiter is "
                         f"{int(maxiter)}; raise maxiter")
    monitor = ConvergenceMonitor(tol=tol, ptol=ptol, maxiter=int(maxiter),
                                 monotone=meth.monotone)
    params = model.start_params() if start is None else start
    state = meth.initial_state(model, params)
    if not np.isfinite(state.loglik):
        raise ValueError(
            f"the log-likelihood at the start values is {state.loglik}; "
            "supply finite start_params"
        )
    monitor.record(state.loglik, float("nan"))
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=int(maxiter), desc=f"EM ({meth.name})", leave=False)
    reason = "maximum number of iterations reached"
    converged = False
    u_old = model.pack(state.params)
    try:
        for it in range(1, int(maxiter) + 1):
            state = meth.step(model, state)
            u_new = model.pack(state.params)
            step = float(np.max(np.abs(u_new - u_old))) if u_new.size else 0.0
            monitor.record(state.loglik, step)
            scale = float(np.max(np.abs(u_new))) if u_new.size else 0.0
            u_old = u_new
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loglik=f"{state.loglik:.8g}")
            if not np.isfinite(state.loglik):
                reason = "the log-likelihood became non-finite"
                break
            if callback is not None and callback(it, state.params, state.loglik):
                reason = "stopped by callback"
                break
            why = meth.stop(model, state)
            if why is not None:
                converged = True
                reason = why
                break
            if meth.uses_engine_rule() and monitor.converged(scale):
                converged = True
                reason = "relative change in log-likelihood below tol"
                if ptol is not None:
                    reason += " and parameter change below ptol"
                break
    finally:
        if bar is not None:
            bar.close()
    state = meth.finish(model, state)
    info = ConvergenceInfo(
        converged=converged,
        reason=reason,
        method=meth.name,
        n_iter=monitor.n_iter,
        n_em_steps=meth.n_em_steps,
        loglik=np.asarray(monitor.loglik),
        step=np.asarray(monitor.step),
        seconds=np.asarray(monitor.seconds),
        n_decreases=monitor.n_decreases,
        final_delta=monitor.delta(),
        wall_time=monitor.wall_time,
        extra=meth.diagnostics(),
    )
    if not converged and warn and reason != "stopped by callback":
        warn_not_converged(info)
    return EMRun(state.params, state.loglik, info, meth)
