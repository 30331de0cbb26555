"""Iteration schemes of the engine: plain EM, SQUAREM and the Louis-Newton finish.

Each scheme turns the current :class:`State` into the next one using only the
model's protocol methods; the loop, the stopping rule and the diagnostics live
in :mod:`emstats.em.engine`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .monitor import ROUNDOFF
from .protocol import EMModel

#: step halvings of a generalised M-step that lowered the log-likelihood (``em_map``)
GEM_HALVINGS = 8


@dataclass
class State:
    """Parameters, the E-step statistics and the log-likelihood at them."""

    params: Any
    stats: Any
    loglik: float


def _evaluate(model: EMModel, params) -> State:
    stats, ll = model.e_step(params)
    return State(params, stats, float(ll))


def em_map(model: EMModel, state: State) -> State:
    """One EM step: M-step from the state's statistics, then the E-step at the result.

    Raises ``FloatingPointError`` when the state has no statistics (the E-step was
    undefined there, e.g. a covariance the previous M-step left singular): the fit then
    ends with the model's diagnosis of its data (``diagnose_failure``).
    """
    if state.stats is None:
        raise FloatingPointError("the E-step is undefined at the current parameters (the "
                                 "log-likelihood is not finite there)")
    new = _evaluate(model, model.m_step(state.stats, state.params))
    if getattr(model, "m_step_exact", True) or not (
            new.loglik < state.loglik - ROUNDOFF * (1.0 + abs(state.loglik))):
        return new
    # a generalised M-step (one Newton step of Q) overshot: its direction ascends Q, whose
    # gradient at the current parameters is the log-likelihood's, so a shorter step along
    # it does not lower the log-likelihood (the full step is the one just refused)
    theta = model.to_inference(state.params)
    shorter = line_search(model, state, theta, model.to_inference(new.params) - theta,
                          GEM_HALVINGS, t0=0.5)
    return shorter[0] if shorter is not None else new


class Method:
    """An iteration scheme.  Subclasses implement :meth:`step`.

    Hooks the engine calls, with defaults suiting deterministic, monotone schemes:
    :meth:`initial_state` (the E-step at the start values), :meth:`stop` (None:
    the engine's log-likelihood rule decides), :meth:`finish` (the last state is
    the answer) and :meth:`diagnostics` (extra entries for ``ConvergenceInfo``).
    ``monotone = False`` tells the engine that log-likelihood decreases are
    expected (Monte Carlo noise) and are not violations.  ``rng`` is set by the
    engine from its ``seed`` before the loop.
    """

    name = "?"
    description = ""
    monotone = True
    #: the method needs the model's exact E-step
    needs_exact_e_step = True

    def __init__(self):
        self.n_em_steps = 0
        self.rng: np.random.Generator | None = None

    def not_applicable(self, model: EMModel) -> str | None:
        """Why this method cannot fit ``model`` (None when it can)."""
        if self.needs_exact_e_step and not getattr(model, "has_exact_e_step", True):
            return "the model has no closed-form E-step"
        return None

    def initial_state(self, model: EMModel, params) -> State:
        """The state at the start values."""
        return _evaluate(model, params)

    def step(self, model: EMModel, state: State) -> State:  # pragma: no cover - abstract
        raise NotImplementedError

    def stop(self, model: EMModel, state: State) -> str | None:
        """A reason to stop now, or None to let the engine's rule decide."""
        return None

    def uses_engine_rule(self) -> bool:
        """Whether the engine's log-likelihood rule applies to this method."""
        return True

    #: what :meth:`distance` estimates with, for the convergence reason
    distance_name = "Aitken"

    def distance(self, model: EMModel, state: State) -> float | None:
        """The scheme's own estimate of the distance of ``state``'s log-likelihood to the
        maximum, or None: the engine then estimates it from the trace (Aitken)."""
        return None

    def polish(self, model: EMModel, state: State) -> State:
        """A last step after the engine's rule has stopped the loop (default: none)."""
        return state

    def finish(self, model: EMModel, state: State) -> State:
        """The final state (e.g. an average over a chain)."""
        return state

    def diagnostics(self) -> dict:
        """Method-specific diagnostics for ``ConvergenceInfo.extra``."""
        return {}

    def louis_at(self, state: State):
        """``(score, LouisPieces)`` at ``state`` if the scheme computed them already, else None."""
        return None


def line_search(model: EMModel, state: State, theta, d, max_halvings: int, evaluate=None,
                t0: float = 1.0):
    """Halve the step ``d`` (inference coordinates) until the log-likelihood does not drop
    by more than its round-off (at the maximum to rounding, the two sums differ by their
    rounding whatever the step: such a step is no worse than staying).

    ``evaluate(params)`` returns ``(loglik, *extra)`` (default: the E-step's
    log-likelihood).  The first trial is ``theta + t0 d``.  Returns ``(State, *extra)`` for
    the accepted point, or None.
    """
    t = float(t0)
    for _ in range(max_halvings):
        try:
            # a trial point may lie outside the parameter space (a negative rate): its
            # log-likelihood is then NaN and the step is halved, without numpy's warnings
            with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
                cand = model.from_inference(theta + t * d)
                if evaluate is None:
                    stats, ll = model.e_step(cand)
                    extra = ()
                else:
                    ll, *extra = evaluate(cand)
                    stats = None  # E-step statistics only if a fall-back needs them
        except (ValueError, FloatingPointError, np.linalg.LinAlgError):
            ll = -np.inf
        if np.isfinite(ll) and ll >= state.loglik - ROUNDOFF * (1.0 + abs(state.loglik)):
            return (State(cand, stats, float(ll)), *extra)
        t *= 0.5
    return None


class PlainEM(Method):
    """Dempster, Laird & Rubin's EM: one E-step and one M-step per iteration."""

    name = "em"
    description = "plain EM (monotone, linear rate = fraction of missing information)"

    def step(self, model, state):
        self.n_em_steps += 1
        return em_map(model, state)


class Squarem(Method):
    """SQUAREM, scheme S3 of Varadhan & Roland (2008).

    Two EM steps give r = u1 - u0 and v = u2 - 2 u1 + u0 in the packed
    coordinates; the step length is alpha = -max(1, |r| / |v|), capped by an
    adaptive maximum; the extrapolated point u0 - 2 alpha r + alpha^2 v is
    followed by one stabilising EM step.  Whenever the result is not finite or
    its log-likelihood is below that of the second plain EM step, that EM step
    is kept instead, so the log-likelihood never decreases.
    """

    name = "squarem"
    description = "SQUAREM (Varadhan & Roland 2008, S3) with a monotone fall-back to EM"

    def __init__(self, step_max0: float = 1.0, mstep: float = 4.0):
        super().__init__()
        self.step_max0 = float(step_max0)
        self.step_max = float(step_max0)
        self.mstep = float(mstep)
        self.n_fallbacks = 0

    def step(self, model, state):
        s1 = em_map(model, state)
        s2 = em_map(model, s1)
        self.n_em_steps += 2
        u0 = model.pack(state.params)
        u1 = model.pack(s1.params)
        u2 = model.pack(s2.params)
        r = u1 - u0
        v = u2 - 2.0 * u1 + u0
        nv = float(np.sqrt(v @ v))
        if not np.isfinite(nv) or nv == 0.0:
            return s2
        alpha = -max(1.0, float(np.sqrt(r @ r)) / nv)
        alpha = max(alpha, -self.step_max)
        try:
            u_new = u0 - 2.0 * alpha * r + alpha * alpha * v
            if not np.all(np.isfinite(u_new)):
                raise FloatingPointError
            extrap = _evaluate(model, model.unpack(u_new))
            if not np.isfinite(extrap.loglik):
                raise FloatingPointError
            stab = em_map(model, extrap)
            self.n_em_steps += 1
        except (FloatingPointError, ValueError, np.linalg.LinAlgError):
            stab = None
        if stab is None or not np.isfinite(stab.loglik) or stab.loglik < s2.loglik:
            self.n_fallbacks += 1
            self.step_max = max(self.step_max0, self.step_max / self.mstep)
            return s2
        if alpha == -self.step_max:
            self.step_max *= self.mstep
        return stab


class LouisNewton(Method):
    """Newton-Raphson on the observed log-likelihood with Louis' observed information.

    Louis (1982, section 4) proposed this acceleration: the information that
    the standard errors need anyway gives a quadratically convergent step.
    Each step solves I(theta) d = score(theta) in the inference coordinates and
    halves d until the log-likelihood increases; when the information is not
    positive definite or no halving helps, a SQUAREM cycle (``fallback="squarem"``,
    the default) or a plain EM step (``fallback="em"``) is taken instead, so the
    log-likelihood never decreases.  The model's ``newton_pieces`` gives the
    log-likelihood, score and information of a trial point together, so an accepted
    step costs one pass over the data.

    The distance to the maximum is the Newton decrement, g' I^-1 g / 2 -- the increase
    the quadratic model predicts -- computed at each accepted point for the next step;
    when it is below the engine's threshold the loop stops and :meth:`polish` takes
    that last step (accepted unless the log-likelihood drops by more than its round-off),
    whose error is of the order of the decrement squared.

    Parameters
    ----------
    max_halvings : int
        Step halvings before a step counts as failed.
    fallback : {"squarem", "em"}
        The step taken when the Newton step fails.
    """

    name = "newton"
    description = ("Newton steps with Louis' observed information, SQUAREM as the fall-back, "
                   "the Newton decrement as the distance to the maximum")
    distance_name = "Newton decrement"

    def __init__(self, max_halvings: int = 30, fallback: str = "squarem"):
        super().__init__()
        if fallback not in ("squarem", "em"):
            raise ValueError(f"fallback must be 'squarem' or 'em', got {fallback!r}")
        self.max_halvings = int(max_halvings)
        self.fallback = fallback
        self.n_fallbacks = 0
        self._squarem = Squarem() if fallback == "squarem" else None
        self._cached = None  # (state, score, Louis pieces) computed with the state's loglik
        self._direction = None  # (state, Newton direction or None, decrement)

    def not_applicable(self, model):
        if not model.has_louis:
            return "the model does not supply Louis' information pieces"
        return super().not_applicable(model)

    def louis_at(self, state):
        if self._cached is not None and self._cached[0] is state:
            return self._cached[1], self._cached[2]
        return None

    def _pieces(self, model, state):
        if self._cached is not None and self._cached[0] is state:
            return self._cached[1], self._cached[2]
        _, g, pieces = model.newton_pieces(state.params)
        self._cached = (state, g, pieces)
        return g, pieces

    def _newton_direction(self, model, state):
        """(direction, decrement) at ``state``; (None, inf) when the information is not
        positive definite there."""
        if self._direction is not None and self._direction[0] is state:
            return self._direction[1], self._direction[2]
        g, pieces = self._pieces(model, state)
        try:
            info = pieces.observed
            chol = np.linalg.cholesky(0.5 * (info + info.T))
            d = np.linalg.solve(chol.T, np.linalg.solve(chol, g))
        except np.linalg.LinAlgError:
            d = None
        lam = float(0.5 * g @ d) if d is not None else float("inf")
        if d is None or not np.all(np.isfinite(d)) or not np.isfinite(lam) or lam < 0:
            d, lam = None, float("inf")
        self._direction = (state, d, lam)
        return d, lam

    def step(self, model, state):
        d, _ = self._newton_direction(model, state)
        if d is not None:
            theta = model.to_inference(state.params)
            new = line_search(model, state, theta, d, self.max_halvings,
                              model.newton_pieces)
            if new is not None:
                new_state, g_new, pieces_new = new
                self._cached = (new_state, g_new, pieces_new)
                self._newton_direction(model, new_state)
                return new_state
        self.n_fallbacks += 1
        if state.stats is None:
            state = _evaluate(model, state.params)
        if self._squarem is not None:
            before = self._squarem.n_em_steps
            out = self._squarem.step(model, state)
            self.n_em_steps += self._squarem.n_em_steps - before
            return out
        self.n_em_steps += 1
        return em_map(model, state)

    def distance(self, model, state):
        if self._direction is not None and self._direction[0] is state:
            lam = self._direction[2]
            return lam if np.isfinite(lam) else None
        return None

    def polish(self, model, state):
        """The full Newton step whose decrement stopped the loop."""
        if self._direction is None or self._direction[0] is not state \
                or self._direction[1] is None:
            return state
        theta = model.to_inference(state.params)
        try:
            with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
                cand = model.from_inference(theta + self._direction[1])
                ll, g, pieces = model.newton_pieces(cand)
        except (ValueError, FloatingPointError, np.linalg.LinAlgError):
            return state
        # the step's predicted gain is below the threshold, possibly below the round-off
        # of the log-likelihood: a drop within that round-off is no reason to refuse it
        if not (np.isfinite(ll) and ll >= state.loglik - ROUNDOFF * (1.0 + abs(state.loglik))):
            return state
        new_state = State(cand, None, float(ll))
        self._cached = (new_state, g, pieces)
        self._newton_direction(model, new_state)
        return new_state

    def diagnostics(self):
        return {"n_fallbacks": self.n_fallbacks, "fallback": self.fallback}
