"""The EM loop: one engine for every model and every iteration scheme."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .accel import LouisNewton, Method, PlainEM, Squarem
from .monitor import ConvergenceInfo, ConvergenceMonitor, warn_not_converged
from .problem import Problem, bind
from .protocol import EMModel
from .variants import (
    AlternatingECM,
    ClassificationEM,
    GradientEM,
    IncrementalEM,
    MonteCarloEM,
    StochasticEM,
)

#: the registered iteration schemes, by name
METHODS: dict[str, type[Method]] = {
    m.name: m
    for m in (PlainEM, Squarem, LouisNewton, GradientEM, IncrementalEM, MonteCarloEM,
              StochasticEM, ClassificationEM, AlternatingECM)
}

Callback = Callable[[int, Any, float], Any]


@dataclass
class EMRun:
    """What the engine returns: the final parameters and the convergence record."""

    params: Any
    loglik: float
    convergence: ConvergenceInfo
    method: Method
    #: (score, LouisPieces) at ``params`` when the scheme computed them (Newton)
    louis: Any = None


def _name(model) -> str:
    return type(getattr(model, "model", model)).__name__


def available_methods() -> list[str]:
    """Names of the registered iteration schemes."""
    return sorted(METHODS)


def default_method(model: EMModel) -> str:
    """The scheme used when none is named: Louis-Newton when the model supplies Louis'
    pieces, SQUAREM otherwise (measured in benchmarks/bench_tobit.py; see docs/methods.md),
    and Monte Carlo EM when the model has no closed-form E-step.  A model may name its
    own measured default in ``preferred_method`` (the multivariate normal: SQUAREM; the HMM:
    Baum-Welch, ``"em"``)."""
    if not getattr(model, "has_exact_e_step", True):
        return "mcem"
    preferred = getattr(model, "preferred_method", None)
    if preferred is not None:      # a model's own measured choice
        return preferred
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
                f"unknown EM method {method!r}; methods for {_name(model)}: "
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
            f"method {meth.name!r} does not apply to {_name(model)}: {why}; "
            "use one of " + ", ".join(repr(m) for m in ok)
        )
    return meth


class Progress:
    """One progress line for a whole fit (tqdm): every iteration of every start counted,
    no ETA (the number of iterations a fit needs is not known in advance; ``maxiter`` is
    only a bound), the phase in the description and the log-likelihood as the postfix;
    :meth:`close` leaves one final line saying how the fit ended.

    Parameters
    ----------
    desc : str
        The first description (the phase).
    """

    def __init__(self, desc: str):
        from tqdm.auto import tqdm

        self._bar = tqdm(total=None, desc=desc, unit="it", leave=True, dynamic_ncols=True)

    def describe(self, text: str) -> None:
        """Show the phase ``text`` (a start, the continuation, the standard errors)."""
        self._bar.set_description_str(text, refresh=True)

    def step(self, loglik: float) -> None:
        """Count one iteration that reached log-likelihood ``loglik``."""
        self._bar.set_postfix_str(f"loglik={loglik:.10g}", refresh=False)
        self._bar.update(1)

    def close(self, text: str | None = None) -> None:
        """Close the bar, leaving its last line (with the final description ``text``)."""
        if text is not None:
            self._bar.set_description_str(text, refresh=False)
        self._bar.close()


def _progress(progress, desc: str) -> tuple[Progress | None, bool]:
    """The bar to update and whether the caller owns (closes) it: ``progress`` may be a
    bool or a :class:`Progress` shared by the phases of one fit."""
    if isinstance(progress, Progress):
        return progress, False
    return (Progress(desc), True) if progress else (None, False)


def _ending(name: str, converged: bool) -> str:
    return f"{name}: {'converged' if converged else 'not converged'}"


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
    n_threads: int | None = None,
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
        Stop when the estimated distance of the log-likelihood to the maximum is at
        most ``tol * min(1 + |loglik|, 10)`` (Aitken's estimate from the trace, or the
        scheme's own, the Newton decrement; see
        :class:`~emstats.em.monitor.ConvergenceMonitor`).
    ptol : float, optional
        Also require the max change of the packed parameters to be below
        ``ptol * (1 + max |u|)``.
    progress : bool or Progress
        Show a tqdm progress bar (a :class:`Progress` already open: count this run's
        iterations on it).
    callback : callable, optional
        ``callback(iteration, params, loglik)``; returning True stops the loop.
    warn : bool
        Emit ``ConvergenceWarning`` when ``maxiter`` is reached.
    seed : int or Generator, optional
        Random numbers for the simulation-based schemes.
    method_options : dict, optional
        Options of the scheme named by ``method`` (e.g. ``{"burn_in": 200}``).
    n_threads : int, optional
        Threads of a chunked model's kernels (default ``OMP_NUM_THREADS`` or all cores).

    Returns
    -------
    EMRun
    """
    if not isinstance(model, Problem):
        model = bind(model, n_threads)
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
    bar, own_bar = _progress(progress, f"EM ({meth.name})")
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
                bar.step(state.loglik)
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
            if meth.uses_engine_rule() and monitor.converged(
                    scale, meth.distance(model, state)):
                converged = True
                own = meth.distance(model, state) is not None
                reason = (f"estimated distance to the maximum "
                          f"({meth.distance_name if own else 'Aitken'}) below "
                          "tol * min(1 + |loglik|, 10)")
                if ptol is not None:
                    reason += " and parameter change below ptol"
                polished = meth.polish(model, state)
                if polished is not state:      # a last step (Newton): one more iteration
                    u_new = model.pack(polished.params)
                    step = float(np.max(np.abs(u_new - u_old))) if u_new.size else 0.0
                    monitor.record(polished.loglik, step)
                    state = polished
                    if bar is not None:
                        bar.step(state.loglik)
                break
    finally:
        if own_bar:
            bar.close(_ending(f"EM ({meth.name})", converged))
    own_dist = meth.distance(model, state)
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
        est_distance=monitor.distance() if own_dist is None else own_dist,
        wall_time=monitor.wall_time,
        extra=meth.diagnostics(),
    )
    if not converged and warn and reason != "stopped by callback":
        warn_not_converged(info)
    return EMRun(state.params, state.loglik, info, meth, meth.louis_at(state))


# ----------------------------------------------------------------------------------
# the options every fit takes, validated once
# ----------------------------------------------------------------------------------

def _check_int(name: str, value, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer, float, np.floating)):
        raise TypeError(f"{name} must be an integer >= {low}, got {value!r}")
    if not np.isfinite(value) or int(value) != value or int(value) < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def _check_positive(name: str, value, allow_none: bool = False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a positive number{' or None' if allow_none else ''}, "
                        f"got {value!r}")
    if not (np.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class FitOptions:
    """The options of every model's ``fit()``, validated with messages naming the argument.

    See :meth:`emstats.inference.fit.FitMixin.fit` for their meaning.
    """

    method: str | Method | None = None
    maxiter: int = 1000
    tol: float = 1e-8
    ptol: float | None = None
    cov_type: str | None = "louis"
    n_init: int = 1
    init: Any = None
    start_params: Any = None
    seed: Any = 0
    n_threads: int | None = None
    progress: bool = False
    callback: Callback | None = None
    method_options: dict | None = None
    n_boot: int = 200
    groups: Any = None

    def __post_init__(self):
        object.__setattr__(self, "maxiter", _check_int("maxiter", self.maxiter, 1))
        object.__setattr__(self, "tol", _check_positive("tol", self.tol))
        object.__setattr__(self, "ptol", _check_positive("ptol", self.ptol, allow_none=True))
        object.__setattr__(self, "n_init", _check_int("n_init", self.n_init, 1))
        object.__setattr__(self, "n_boot", _check_int("n_boot", self.n_boot, 2))
        if self.n_threads is not None:
            object.__setattr__(self, "n_threads", _check_int("n_threads", self.n_threads, 1))
        if self.method is not None and not isinstance(self.method, (str, Method)):
            raise TypeError(f"method must be a method name or None, got {self.method!r}")
        if self.method_options is not None and not isinstance(self.method_options, dict):
            raise TypeError(f"method_options must be a dict, got {self.method_options!r}")
        if self.callback is not None and not callable(self.callback):
            raise TypeError(f"callback must be callable, got {self.callback!r}")
        if not isinstance(self.progress, (bool, np.bool_)):
            raise TypeError(f"progress must be True or False, got {self.progress!r}")
        if self.groups is not None and self.cov_type != "cluster":
            raise ValueError(f"groups= is for cov_type='cluster' (got cov_type="
                             f"{self.cov_type!r})")
        if self.cov_type == "cluster" and self.groups is None:
            raise ValueError("cov_type='cluster' needs groups=: the cluster of each row "
                             "(or of each unit) of the estimation data")
        if self.seed is not None and not isinstance(
                self.seed, (int, np.integer, np.random.Generator, np.random.SeedSequence)):
            raise TypeError(f"seed must be an integer, a numpy Generator or None, "
                            f"got {self.seed!r}")


# ----------------------------------------------------------------------------------
# multi-start: short runs from every start, the best one continued
# ----------------------------------------------------------------------------------

#: EM iterations of each short run when several starts compete (Biernacki, Celeux &
#: Govaert 2003, "short EM"); the best continues with the fit's method
SHORT_ITER = 25
SHORT_TOL = 1e-6


@dataclass
class StartRecord:
    """How one start did in a multi-start fit."""

    label: str
    loglik: float
    n_iter: int
    error: str | None = None


def run_starts(
    model,
    starts: list[tuple[str, Any]],
    *,
    method: str | Method | None = None,
    maxiter: int = 1000,
    tol: float = 1e-8,
    ptol: float | None = None,
    progress: bool = False,
    callback: Callback | None = None,
    seed=None,
    method_options: dict | None = None,
    n_threads: int | None = None,
    warn: bool = True,
) -> tuple[EMRun, list[StartRecord]]:
    """Fit from each of ``starts`` and continue the best: one merged convergence record.

    With one start this is :func:`run_em`.  With several, each start runs
    ``SHORT_ITER`` plain EM iterations (or until the engine's rule holds at
    ``tol=SHORT_TOL``); the start with the largest log-likelihood
    then continues with ``method`` for the rest of ``maxiter``.  A start whose short
    run fails (a non-finite likelihood, a singular M-step) is recorded with its reason
    and skipped.  The returned run's trace is the best start's short run followed by
    its continuation, and ``maxiter`` bounds their total.
    """
    if not isinstance(model, Problem):
        model = bind(model, n_threads)
    common = dict(ptol=ptol, seed=seed, method_options=method_options)
    if len(starts) == 1:
        label, p = starts[0]
        run = run_em(model, p, method=method, maxiter=maxiter, tol=tol, progress=progress,
                     callback=callback, warn=warn, **common)
        return run, [StartRecord(label, run.loglik, run.convergence.n_iter)]
    import warnings

    records: list[StartRecord] = []
    short: list[tuple[EMRun, int]] = []
    n_short = min(SHORT_ITER, maxiter)
    bar, own_bar = _progress(progress, "")
    info = None
    try:
        for i, (label, p) in enumerate(starts):
            if bar is not None:
                bar.describe(f"short EM, start {i + 1}/{len(starts)}")
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    r = run_em(model, p, method="em", maxiter=n_short, tol=SHORT_TOL,
                               warn=False, progress=bar if bar is not None else False)
            except (ValueError, FloatingPointError, np.linalg.LinAlgError) as err:
                records.append(StartRecord(label, float("-inf"), 0, str(err)))
                continue
            records.append(StartRecord(label, r.loglik, r.convergence.n_iter))
            if np.isfinite(r.loglik):
                short.append((r, i))
        if not short:
            raise FloatingPointError("EM failed from every start: "
                                     + "; ".join(f"{r.label}: {r.error}" for r in records))
        best, _ = max(short, key=lambda t: t[0].loglik)
        used = best.convergence.n_iter
        rest = max(maxiter - used, 1)
        if bar is not None:
            name = resolve_method(model, method, method_options).name
            bar.describe(f"{name} from the best of {len(starts)} starts")
        cont = run_em(model, best.params, method=method, maxiter=rest, tol=tol,
                      progress=bar if bar is not None else False,
                      callback=callback, warn=False, **common)
        info = merge_records(best.convergence, cont.convergence)
    finally:
        if own_bar:
            bar.close(None if info is None else
                      _ending(f"EM ({info.method}), {len(starts)} starts", info.converged))
    if not info.converged and warn and info.reason != "stopped by callback":
        warn_not_converged(info)
    return EMRun(cont.params, cont.loglik, info, cont.method, cont.louis), records


def merge_records(first: ConvergenceInfo, then: ConvergenceInfo) -> ConvergenceInfo:
    """One convergence record for a run continued from where ``first`` stopped."""
    return ConvergenceInfo(
        converged=then.converged,
        reason=then.reason,
        method=then.method,
        n_iter=first.n_iter + then.n_iter,
        n_em_steps=first.n_em_steps + then.n_em_steps,
        loglik=np.concatenate([first.loglik, then.loglik[1:]]),
        step=np.concatenate([first.step, then.step[1:]]),
        seconds=np.concatenate([first.seconds, then.seconds[1:]]),
        n_decreases=first.n_decreases + then.n_decreases,
        final_delta=then.final_delta,
        est_distance=then.est_distance,
        wall_time=first.wall_time + then.wall_time,
        extra={**then.extra, "start_iterations": first.n_iter,
               "start_method": first.method},
    )
