"""Variants of EM as iteration schemes of the one engine.

* :class:`GradientEM` -- Lange's (1995) EM gradient algorithm: one Newton step on
  Q(. | theta) in place of the M-step, using the complete-data information.
* :class:`MonteCarloEM` -- Wei & Tanner's (1990) Monte Carlo EM with a growing
  Monte Carlo sample (a geometric schedule, or Booth & Hobert's (1999) automatic
  rule), and Booth & Hobert's stopping rule.
* :class:`StochasticEM` -- Celeux & Diebolt's stochastic EM: one imputation per
  iteration; the estimate is the average of the chain after burn-in.
* :class:`ClassificationEM` -- Celeux & Govaert's (1992) classification EM for
  latent-class models: responsibilities replaced by the MAP one-hot
  (``model.classify_stats``); maximises the classification likelihood.
* :class:`IncrementalEM` -- Neal & Hinton's (1998) incremental EM: the data in
  blocks, one block's statistics refreshed before each M-step.
* :class:`AlternatingECM` -- Meng & van Dyk's (1997) AECM: an iteration is a sequence of
  cycles, each an E-step at the current parameters followed by a conditional
  maximisation of some of the parameters, each cycle with its own complete data.

Each uses only protocol methods of the model (see :mod:`emstats.em.protocol`):
``sample_stats`` for the simulation-based schemes, ``block_stats`` and
``m_step_natural`` for the incremental one, ``score_and_louis`` for the
gradient one, ``n_cycles`` and ``cycle_m_step`` for AECM.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats as _stats

from .accel import Method, State, em_map, line_search
from .protocol import EMModel
from .stats import Stats


def _combine(items, weights):
    """Weighted average of statistics given as arrays, floats or tuples/lists of them."""
    first = items[0]
    if isinstance(first, Stats):
        return sum(float(w) * it for w, it in zip(weights, items, strict=True)) / float(
            sum(weights))
    if isinstance(first, (tuple, list)):
        return type(first)(_combine([it[i] for it in items], weights) for i in range(len(first)))
    total = sum(w * np.asarray(it, dtype=float) for w, it in zip(weights, items, strict=True))
    return total / float(sum(weights))


def _add(a, b, sign=1.0):
    if isinstance(a, Stats):
        return a + b if sign > 0 else a - b
    if isinstance(a, (tuple, list)):
        return type(a)(_add(x, y, sign) for x, y in zip(a, b, strict=True))
    return np.asarray(a, dtype=float) + sign * np.asarray(b, dtype=float)


class GradientEM(Method):
    """Lange's (1995) EM gradient algorithm.

    The M-step is replaced by one Newton step on the expected complete-data
    log-likelihood Q(. | theta_t) from theta_t: since grad Q(theta_t | theta_t) is
    the observed score and -hess Q is the expected complete-data information,
    the step is I_complete^-1 score, halved until the log-likelihood increases.
    It needs no closed-form M-step, only the score and the complete information
    (Louis' ``complete`` piece); its rate equals plain EM's near the MLE.
    """

    name = "gradient"
    description = "EM gradient (Lange 1995): one Newton step on Q per iteration"

    def __init__(self, max_halvings: int = 30):
        super().__init__()
        self.max_halvings = int(max_halvings)
        self.n_fallbacks = 0

    def not_applicable(self, model):
        if not model.has_louis:
            return "the model does not supply the score and complete-data information"
        return super().not_applicable(model)

    def step(self, model, state):
        theta = model.to_inference(state.params)
        g, pieces = model.score_and_louis(state.params)
        try:
            d = np.linalg.solve(pieces.complete, g)
        except np.linalg.LinAlgError:
            d = None
        new = None if d is None else line_search(model, state, theta, d, self.max_halvings)
        self.n_em_steps += 1
        if new is None:
            # no ascent along I_complete^-1 score (the complete information need not be
            # positive definite far from the MLE): a plain EM step instead of stalling,
            # which the engine's rule would take for convergence
            self.n_fallbacks += 1
            if state.stats is None:
                stats, ll = model.e_step(state.params)
                state = State(state.params, stats, float(ll))
            return em_map(model, state)
        return new[0]


class _Simulated(Method):
    """Base of the schemes whose E-step is simulated by ``model.sample_stats``."""

    monotone = False
    needs_exact_e_step = False

    def not_applicable(self, model):
        if not hasattr(model, "sample_stats"):
            return "the model has no simulated E-step (sample_stats)"
        return super().not_applicable(model)

    def initial_state(self, model, params):
        return State(params, None, float(model.loglike(params)))

    def uses_engine_rule(self):
        return False


class MonteCarloEM(_Simulated):
    """Monte Carlo EM (Wei & Tanner 1990) with a growing Monte Carlo sample.

    Each iteration draws ``size`` imputations per unit in ``n_batches`` batches
    (``model.sample_stats(params, rng, size)``), M-steps on their average, and
    estimates the Monte Carlo standard error of the update from the spread of the
    batch-wise M-steps.  The sample size grows geometrically (``schedule=
    "geometric"``: times ``growth`` per iteration) or by Booth & Hobert's (1999)
    rule (``"auto"``): when the previous value lies inside the approximate
    (1 - alpha) Monte Carlo interval of the update -- the step is swamped by
    Monte Carlo error -- the size grows by a factor (1 + 1/k).  The loop stops
    when the relative change max |theta_t - theta_(t-1)| / (|theta_(t-1)| +
    delta1) stays below ``delta2`` for ``n_stable`` consecutive iterations.
    """

    name = "mcem"
    description = "Monte Carlo EM (Wei & Tanner 1990; Booth & Hobert 1999)"

    def __init__(self, size0: int = 50, schedule: str = "auto", growth: float = 1.25,
                 alpha: float = 0.25, k: float = 3.0, n_batches: int = 10,
                 delta1: float = 1e-3, delta2: float = 2e-3, n_stable: int = 3,
                 max_size: int = 1_000_000):
        super().__init__()
        if schedule not in ("auto", "geometric"):
            raise ValueError(f"schedule must be 'auto' or 'geometric', got {schedule!r}")
        if int(size0) < 1 or int(n_batches) < 2:
            raise ValueError("size0 must be >= 1 and n_batches >= 2")
        self.size = int(size0)
        self.schedule = schedule
        self.growth = float(growth)
        self.z = float(_stats.norm.isf(alpha / 2))
        self.k = float(k)
        self.n_batches = int(n_batches)
        self.delta1, self.delta2 = float(delta1), float(delta2)
        self.n_stable = int(n_stable)
        self.max_size = int(max_size)
        self._stable = 0
        self.sizes: list[int] = []
        self.mc_se: list[np.ndarray] = []
        self.rel_change: list[float] = []


    def _draw(self, model, params, size):
        sizes = [max(1, math.ceil(size / self.n_batches))] * self.n_batches
        batches = [model.sample_stats(params, self.rng, m) for m in sizes]
        average = getattr(model, "average_stats", _combine)
        return batches, average(batches, sizes)

    def step(self, model, state):
        params = state.params
        batches, total = self._draw(model, params, self.size)
        new = model.m_step(total, params)
        th_old = np.asarray(model.to_inference(params), dtype=float)
        th_new = np.asarray(model.to_inference(new), dtype=float)
        reps = np.array([model.to_inference(model.m_step(b, params)) for b in batches])
        se = reps.std(axis=0, ddof=1) / np.sqrt(len(batches))
        self.sizes.append(self.size)
        self.mc_se.append(se)
        self.n_em_steps += 1
        delta = th_new - th_old
        rel = float(np.max(np.abs(delta) / (np.abs(th_old) + self.delta1)))
        self.rel_change.append(rel)
        self._stable = self._stable + 1 if rel < self.delta2 else 0
        if self.schedule == "geometric":
            self.size = math.ceil(self.size * self.growth)
        elif np.all(np.abs(delta) <= self.z * np.maximum(se, 1e-300)):
            self.size = math.ceil(self.size * (1.0 + 1.0 / self.k))
        self.size = min(self.size, self.max_size)
        return State(new, None, float(model.loglike(new)))

    def stop(self, model, state):
        if self._stable >= self.n_stable:
            return (f"relative change below {self.delta2:g} for {self.n_stable} consecutive "
                    "iterations (Booth & Hobert's rule)")
        return None

    def diagnostics(self):
        return {"mc_size": np.array(self.sizes), "mc_se": np.array(self.mc_se),
                "rel_change": np.array(self.rel_change)}


class StochasticEM(_Simulated):
    """Stochastic EM (Celeux & Diebolt 1985): one imputation per iteration.

    The chain theta_t does not converge to a point but fluctuates around the MLE;
    the estimate is the average of the chain (inference coordinates) after
    ``burn_in`` iterations, over ``n_keep`` further iterations.  The chain is kept
    in the diagnostics (``extra["chain"]``) for plotting.
    """

    name = "stochastic"
    description = "stochastic EM (Celeux & Diebolt 1985), chain average after burn-in"

    def __init__(self, burn_in: int = 200, n_keep: int = 300):
        super().__init__()
        if int(burn_in) < 0 or int(n_keep) < 1:
            raise ValueError("burn_in must be >= 0 and n_keep >= 1")
        self.burn_in = int(burn_in)
        self.n_keep = int(n_keep)
        self.n_iterations = self.burn_in + self.n_keep
        self.chain: list[np.ndarray] = []


    def step(self, model, state):
        new = model.m_step(model.sample_stats(state.params, self.rng, 1), state.params)
        self.chain.append(np.asarray(model.to_inference(new), dtype=float))
        self.n_em_steps += 1
        return State(new, None, float(model.loglike(new)))

    def stop(self, model, state):
        if len(self.chain) >= self.burn_in + self.n_keep:
            return f"chain complete: {self.n_keep} iterations averaged after {self.burn_in} burn-in"
        return None

    def finish(self, model, state):
        kept = np.array(self.chain[self.burn_in:])
        if len(kept) == 0:
            return state
        params = model.from_inference(kept.mean(axis=0))
        return State(params, None, float(model.loglike(params)))

    def diagnostics(self):
        return {"chain": np.array(self.chain), "burn_in": self.burn_in}


class ClassificationEM(Method):
    """Classification EM (Celeux & Govaert 1992; flexmix's ``classify="hard"``).

    Each E-step assigns every unit to its MAP class (``model.classify_stats(params)``
    returns the one-hot statistics and the classification log-likelihood), and the
    M-step maximises the classification likelihood.  The classification
    log-likelihood increases monotonically and the labels reach a fixed point in
    finitely many steps; the *observed* log-likelihood need not increase (it is
    not monotone, and the fixed point is not the MLE: CEM estimates are biased
    when the classes overlap).  The run stops when the partition repeats.
    """

    name = "cem"
    description = "classification EM (hard MAP assignments), classification-likelihood fixed point"
    monotone = False

    def __init__(self, max_iter: int = 500):
        super().__init__()
        self.max_iter = int(max_iter)
        self.cl: list[float] = []
        self._fixed = False

    def not_applicable(self, model):
        if not hasattr(model, "classify_stats"):
            return "the model has no hard-assignment hook (classify_stats)"
        return super().not_applicable(model)

    def initial_state(self, model, params):
        return State(params, None, float(model.loglike(params)))

    def uses_engine_rule(self):
        return False

    def step(self, model, state):
        stats, cl = model.classify_stats(state.params)
        if stats is None:
            raise FloatingPointError("classification E-step undefined")
        new = model.m_step(stats, state.params)
        self.n_em_steps += 1
        if self.cl and cl <= self.cl[-1] + 1e-10 * (1.0 + abs(cl)):
            self._fixed = True
        self.cl.append(float(cl))
        return State(new, None, float(model.loglike(new)))

    def stop(self, model, state):
        if self._fixed:
            return "classification likelihood at a fixed point"
        if self.n_em_steps >= self.max_iter:
            return "max_iter reached"
        return None

    def diagnostics(self):
        return {"classification_loglike": np.array(self.cl)}


class IncrementalEM(Method):
    """Incremental EM (Neal & Hinton 1998).

    The units are split into ``n_blocks`` contiguous blocks (``model.blocks(n_blocks)``;
    the chunks of a chunked model); within a sweep each block's sufficient statistics are recomputed
    at the current parameters, the total is updated and an M-step follows --
    ``n_blocks`` M-steps per pass over the data.  Needs additive natural statistics:
    ``model.block_stats(params, block) -> (stats, loglik)`` and
    ``model.m_step_natural(stats, params)``.  The trace
    records the sum of the blocks' log-likelihoods, each at the parameters current
    when the block was visited; the final log-likelihood is exact.
    """

    name = "incremental"
    description = "incremental EM (Neal & Hinton 1998), M-step after each block"
    monotone = False

    def __init__(self, n_blocks: int = 10):
        super().__init__()
        if int(n_blocks) < 1:
            raise ValueError(f"n_blocks must be >= 1, got {n_blocks!r}")
        self.n_blocks = int(n_blocks)
        self.n_passes = 0

    def not_applicable(self, model):
        if not (hasattr(model, "block_stats") and hasattr(model, "m_step_natural")
                and hasattr(model, "blocks")):
            return "the model has no additive block statistics (block_stats, m_step_natural)"
        if not getattr(model, "stats_additive_in_params", True):
            return ("the model's E-step statistics are taken at the current parameters and "
                    "do not add across parameter values")
        return super().not_applicable(model)

    def initial_state(self, model: EMModel, params):
        self.blocks = model.blocks(self.n_blocks)
        parts = [model.block_stats(params, rows) for rows in self.blocks]
        self.block_s = [p[0] for p in parts]
        self.block_ll = [float(p[1]) for p in parts]
        self.total = self.block_s[0]
        for s in self.block_s[1:]:
            self.total = _add(self.total, s)
        return State(params, None, float(sum(self.block_ll)))

    def step(self, model, state):
        params = state.params
        for b, rows in enumerate(self.blocks):
            s, ll = model.block_stats(params, rows)
            self.total = _add(_add(self.total, self.block_s[b], -1.0), s)
            self.block_s[b] = s
            self.block_ll[b] = float(ll)
            params = model.m_step_natural(self.total, params)
            self.n_em_steps += 1
        self.n_passes += 1
        return State(params, None, float(sum(self.block_ll)))

    def finish(self, model, state):
        return State(state.params, None, float(model.loglike(state.params)))

    def diagnostics(self):
        return {"n_passes": self.n_passes, "n_blocks": len(self.blocks)}


class AlternatingECM(Method):
    """Alternating expectation-conditional maximisation (Meng & van Dyk 1997).

    The parameters are split into ``model.n_cycles`` blocks, and an iteration is that
    many cycles: cycle c takes the E-step at the current parameters (the previous
    cycle's result) and then ``model.cycle_m_step(c, stats, params)``, a conditional
    maximisation of block c given the others, under cycle c's own choice of complete
    data (a mixture of factor analyzers: the labels for the weights and means, the
    labels and the factors for the loadings and uniquenesses; McLachlan & Peel 2000,
    section 8.5).  Every cycle increases the observed log-likelihood, so the scheme is
    monotone; the statistics of the model's E-step must suffice for every cycle's
    conditional maximisation.  An iteration costs ``n_cycles`` E-steps.  The
    log-likelihood after each cycle is kept in ``extra["cycle_loglik"]`` (iterations x
    cycles, the last column the trace).
    """

    name = "aecm"
    description = ("alternating ECM (Meng & van Dyk 1997): per cycle an E-step and a "
                   "conditional maximisation of one block of parameters")

    def __init__(self):
        super().__init__()
        self.cycle_loglik: list[list[float]] = []

    def not_applicable(self, model):
        if not (getattr(model, "n_cycles", None) and hasattr(model, "cycle_m_step")):
            return "the model has no AECM cycles (n_cycles, cycle_m_step)"
        return super().not_applicable(model)

    def step(self, model, state):
        params, stats = state.params, state.stats
        lls = []
        for c in range(int(model.n_cycles)):
            if c > 0:
                stats, ll = model.e_step(params)
                lls.append(float(ll))
            if stats is None:
                raise FloatingPointError("the E-step is undefined at the current "
                                         "parameters (the log-likelihood is not finite "
                                         "there)")
            params = model.cycle_m_step(c, stats, params)
            self.n_em_steps += 1
        stats, ll = model.e_step(params)
        lls.append(float(ll))
        self.cycle_loglik.append(lls)
        return State(params, stats, float(ll))

    def diagnostics(self):
        return {"cycle_loglik": np.array(self.cycle_loglik)}
