"""Plain EM for a Gaussian mixture on a small data set, without the engine's overhead.

:func:`~emstats.models.gmm.gmm_select` fits every (structure, k) of its table without
standard errors; on a few hundred rows an EM iteration through the engine (binding,
packing the parameters for the step size, the chunked kernel's preparation) costs
about a millisecond of Python, the arithmetic a few microseconds.  This loop is the
same algorithm as ``model.fit(method="em", cov_type=None)`` -- the same starts
(``initial_starts``), the same short EM runs from each (``SHORT_ITER``, ``SHORT_TOL``),
the best continued, the same stopping rule (:class:`~emstats.em.monitor.ConvergenceMonitor`)
and the model's own M-step -- with the E-step of :mod:`emstats._kernels.gmm_small`
called on the parameters directly.  The selected model is refitted through the engine
(with its standard errors), so the fast loop only fills the table.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from .._kernels import gmm_small
from ..em.engine import SHORT_ITER, SHORT_TOL
from ..em.monitor import ROUNDOFF, SCALE_CAP, ConvergenceMonitor
from .gmm import GMMParams

#: the fast loop is used up to this many rows (above it the chunked kernel's threads pay)
FAST_MAX_ROWS = 20000
#: the kernel repairs a covariance below the floor itself (else the step is Python's)
REPAIR_FLOOR = True
#: the window of the cycle test (:func:`_stalled`)
STALL_SPAN = 50


def applicable(model, method) -> bool:
    """Whether :class:`SmallEM` reproduces ``model.fit(method=method)`` for this model."""
    return (method in ("em", None) and not model.incomplete and model.prior is None
            and model.n <= FAST_MAX_ROWS)


@dataclass
class FastFit:
    """What the table needs from a fit."""

    params: object
    loglik: float
    converged: bool
    n_iter: int
    map_log_resp: float


def _stalled(ll, threshold) -> bool:
    """A cycle: over the last ``STALL_SPAN`` iterations the log-likelihood decreased by
    more than ``threshold`` and its best is not above the best of the ``STALL_SPAN``
    before by ``threshold``.  A component held at the covariance floor
    (``GaussianMixture._guard``) can put EM into a cycle of two points (the
    log-likelihood up and down by the same amount, e.g. 3e-7 on iris, VVV, k = 3), which
    the trace-based rule never calls converged; the run then stops, not converged,
    instead of running to ``maxiter``.  (A slow climb has no decrease and goes on.)"""
    last = ll[-STALL_SPAN - 1:]
    if not any(b < a - threshold for a, b in zip(last[:-1], last[1:], strict=True)):
        return False
    return max(ll[-STALL_SPAN:]) <= max(ll[-2 * STALL_SPAN:-STALL_SPAN]) + threshold


def _start_key(p) -> bytes:
    """The bytes of a start: equal for the same partition (the same M-step from the same
    responsibilities), so a repeated start is found without comparing every pair."""
    return p.weights.tobytes() + p.means.tobytes() + p.covariances.tobytes()


class _Trace(ConvergenceMonitor):
    """The monitor's stopping rule on a bare trace: ``record`` appends the log-likelihood
    only (no clock, no decrease warning -- the fit runs with warnings ignored and the table
    does not report decreases), which is most of the monitor's cost per EM step here."""

    def record(self, loglik: float, step: float) -> None:
        self.loglik.append(float(loglik))
        self.step.append(step)


class SmallEM:
    """EM on the model's rows with the one-call E-step and a lean M-step.

    Parameters
    ----------
    model : GaussianMixture
        In memory, complete rows, no prior (:func:`applicable`).
    squarem : bool
        Continue the best start by SQUAREM (Varadhan & Roland 2008, S3) rather than plain
        EM.  The extrapolation is in the natural parameters (weights, means, covariances:
        a linear combination keeps the weights summing to one and the covariances
        symmetric) and is always followed by an EM step, which puts the covariances back
        into the structure; an extrapolation that is not a valid mixture, or whose EM
        step has a lower log-likelihood than the second plain EM step, is replaced by that
        step, so the log-likelihood never decreases.
    """

    def __init__(self, model, squarem: bool = True):
        self.model = model
        self.X = np.ascontiguousarray(model.X, dtype=float)
        self.XT = np.ascontiguousarray(self.X.T)        # the kernel's layout
        self.c = np.ascontiguousarray(model.centre, dtype=float)
        self.diag = bool(model.structure.diag)
        st = model.structure
        #: the kernel's code of the structure (small_em_run): the linear kinds 0-2, the
        #: decomposed structures gmm_small.DECOMPOSED_CODES; -1: every step in Python
        if getattr(st, "linear", False):
            self._code = {"full": 0, "diagonal": 1, "spherical": 2}[st.kind]
        else:
            self._code = gmm_small.DECOMPOSED_CODES.get(getattr(st, "name", None), -1)
        self._shared = bool(getattr(st, "shared", False))
        self._inner = (int(getattr(st, "INNER_MAXITER", 0)), float(getattr(st, "INNER_TOL", 0.0)),
                       int(getattr(st, "MM_MAXITER", 0)), float(getattr(st, "MM_TOL", 0.0)),
                       float(getattr(st, "SCATTER_RIDGE", 0.0)))
        self._trace = np.empty(2 * STALL_SPAN + 1)
        self._noresp = np.empty((0, model.K))
        self._bad = np.empty(model.K, dtype=np.uint8)     # below_floor's flags
        self._ridge = model.reg_covar * np.eye(model.d)[None] if model.reg_covar > 0 \
            else None
        self.squarem = bool(squarem)
        self.n_e_steps = 0
        #: the E-steps done by :meth:`start_m_step`, by start (:func:`_start_key`)
        self._start_hits = {}

    # -- one E-step, one M-step --------------------------------------------------------
    def e_step(self, p, want_resp=False):
        """(N, S1, S2) about the centre, the log-likelihood and (optionally) the
        responsibilities at ``p``; (None, -inf, None) where ``p`` is not a valid mixture."""
        K, d = self.model.K, self.model.d
        N, S1, S2 = np.empty(K), np.empty((K, d)), np.empty((K, d, d))
        resp = np.empty((self.X.shape[0], K)) if want_resp else self._noresp
        self.n_e_steps += 1
        w, m, cv = p.weights, p.means, p.covariances
        if not (w.flags.c_contiguous and m.flags.c_contiguous and cv.flags.c_contiguous
                and w.dtype == m.dtype == cv.dtype == np.float64):
            w, m, cv = (np.ascontiguousarray(a, dtype=float) for a in (w, m, cv))
        ll, status = gmm_small.small_estep(self.XT, self.c, w, m, cv, N, S1, S2, resp,
                                           want_resp, self.diag)
        if status or not np.isfinite(ll):
            return None, -np.inf, None
        return (N, S1, S2), ll, resp

    def m_step(self, st, p):
        """``GaussianMixture.m_step`` without a prior, on the raw statistics: the means,
        scatter matrices (and the linear structures' covariances) in one kernel call,
        then the structure's M-step, the ridge and the floor."""
        model = self.model
        N, S1, S2 = st
        K, d = model.K, model.d
        Nk, means, W = np.empty(K), np.empty((K, d)), np.empty((K, d, d))
        linear = self._code if 0 <= self._code < 10 else -1
        covs = np.empty((K, d, d)) if linear >= 0 else W
        n, nempty = gmm_small.small_moments(N, S1, S2, self.c, Nk, means, W, covs,
                                            linear, self._shared)
        if linear < 0:
            covs = model.structure.mstep(Nk, W, n, p.covariances)
        if nempty:
            empty = N <= 1e-10 * max(n, 1.0)
            covs = np.array(covs, dtype=float)
            means[empty] = p.means[empty]
            covs[empty] = p.covariances[empty]
            weights = np.where(empty, 0.0, np.maximum(N, 0.0)) / n
        else:
            weights = N / n
        if self._ridge is not None:
            covs = covs + self._ridge
        covs = np.ascontiguousarray(covs, dtype=float)
        # the floor check in C; the model's guard only when some covariance needs it
        if gmm_small.below_floor(covs, model._floor, self._bad):
            covs = model._guard(covs)
        return GMMParams(weights, means, covs)

    def start_m_step(self, stats, p):
        """``GaussianMixture.m_step`` for a start (``GaussianMixture._start_m_step``): the
        kernel's M-step (one step of :func:`gmm_small.small_em_run` from the statistics at
        ``p``, its E-step unused), the model's where the kernel leaves it to Python (an
        empty component, a branch not in C).  Equal to the model's up to rounding."""
        K, d = self.model.K, self.model.d
        N = np.asarray(stats["N"], dtype=float)
        S1 = np.asarray(stats["S1"], dtype=float)
        S2 = np.asarray(stats["S2"], dtype=float)
        u = np.concatenate([np.asarray(p.weights, dtype=float), np.ravel(p.means),
                            np.ravel(p.covariances)])
        s = np.concatenate([N, S1.ravel(), S2.ravel()])
        try:
            steps, _ = self._kernel(u, s, -np.inf, 1, 0.0)
        except FloatingPointError:
            steps = 0
        if not steps:
            return self.model.m_step(stats, p)
        q = GMMParams(u[:K].copy(), u[K:K + K * d].reshape(K, d).copy(),
                      u[K + K * d:].reshape(K, d, d).copy())
        # the step's E-step is that of the start's run (:meth:`run`): kept under the key
        # of the start in the canonical order (GMMParams.sorted), its statistics permuted
        # alike (equal to a new E-step there up to rounding)
        order = np.lexsort(q.means.T[::-1])
        st = (s[:K][order], s[K:K + K * d].reshape(K, d)[order],
              s[K + K * d:].reshape(K, d, d)[order])
        srt = GMMParams(q.weights[order], q.means[order], q.covariances[order])
        self._start_hits[_start_key(srt)] = (st, float(self._trace[0]))
        return q

    # -- the loops -----------------------------------------------------------------------
    def run(self, p, maxiter, tol, squarem=False):
        """EM (or SQUAREM) from ``p``: (params, loglik, monitor, converged)."""
        mon = _Trace(tol=tol, maxiter=int(maxiter), monotone=True)
        hit = self._start_hits.pop(_start_key(p), None) if self._start_hits else None
        st, ll, _ = self.e_step(p) if hit is None else (hit[0], hit[1], None)
        if st is None:
            raise FloatingPointError(f"the log-likelihood at the start values is {ll}")
        mon.record(ll, np.nan)
        self._step_max = np.ones(1)
        if self._code >= 0:
            return self._run_kernel(p, st, ll, mon, int(maxiter), squarem)
        converged = False
        for it in range(int(maxiter)):
            prev = ll
            p, st, ll = (self._squarem_step if squarem else self._em_step)(p, st, ll)
            mon.record(ll, 0.0)
            stop, converged = self._stop(mon, it, prev, ll)
            if stop:
                break
        return p, ll, mon, converged

    def _stop(self, mon, it, prev, ll):
        """After iteration ``it`` (0-based; ``prev`` and ``ll`` the log-likelihoods before
        and after it): (whether the run stops, whether it converged).  An increase above
        the threshold is not converged whatever the rate (the estimated distance is at
        least the last increase): the rule is not asked (the threshold is
        ConvergenceMonitor.threshold, inline, as the kernel's).  Every ``STALL_SPAN``
        iterations from ``2 STALL_SPAN`` on, a cycle (:func:`_stalled`) stops the run,
        not converged."""
        scale = 1.0 + abs(ll)
        if (ll - prev <= max(mon.tol * min(scale, SCALE_CAP), ROUNDOFF * scale)
                and mon.converged()):
            return True, True
        return (it >= 2 * STALL_SPAN and it % STALL_SPAN == 0
                and _stalled(mon.loglik, mon.threshold())), False

    @staticmethod
    def _flat(p, st):
        """The kernel's state: the parameters (weights, means, covariances) and the
        statistics (N, S1, S2), each as one new flat array."""
        return (np.concatenate([p.weights, np.ravel(p.means), np.ravel(p.covariances)]),
                np.concatenate([st[0], np.ravel(st[1]), np.ravel(st[2])]))

    def _unflat(self, u, s=None):
        """Views of a flat state: the parameters (and the statistics)."""
        K, d = self.model.K, self.model.d
        p = GMMParams(u[:K], u[K:K + K * d].reshape(K, d), u[K + K * d:].reshape(K, d, d))
        if s is None:
            return p
        return p, (s[:K], s[K:K + K * d].reshape(K, d), s[K + K * d:].reshape(K, d, d))

    def _kernel(self, u, s, ll, maxsteps, tol, squarem=False):
        """``maxsteps`` EM steps (SQUAREM cycles) of the kernel on the flat state (u, s),
        updated in place: (steps, status), status 3 where Python's step is needed."""
        inner = self._inner
        args = (self.XT, self.c, u, s, self._code, self._shared, self.model.reg_covar,
                self.model._floor, self.diag, ll, maxsteps, tol, SCALE_CAP, ROUNDOFF,
                self._trace, inner[0], inner[1], inner[2], inner[3], inner[4], REPAIR_FLOOR)
        if squarem:
            steps, status = gmm_small.small_squarem_run(*args, self._step_max)
        else:
            steps, status = gmm_small.small_em_run(*args)
        self.n_e_steps += steps
        if status not in (0, 3):
            raise FloatingPointError("the log-likelihood became non-finite")
        return steps, status

    def _run_kernel(self, p, st, ll, mon, maxiter, squarem):
        """Plain EM (SQUAREM) by the kernel: the steps in C up to the next iteration where
        the stopping rule or the cycle test is asked (the kernel stops after an increase
        below the threshold; the cycle test every ``STALL_SPAN`` iterations), an
        iteration the kernel leaves to Python (status 3) by :meth:`_em_step`
        (:meth:`_squarem_step`)."""
        u, s = self._flat(p, st)
        it, converged = 0, False
        while it < maxiter:
            check = -(-max(it, 2 * STALL_SPAN) // STALL_SPAN) * STALL_SPAN
            steps, status = self._kernel(u, s, ll, min(check - it + 1, maxiter - it),
                                         mon.tol, squarem)
            if steps:
                tr = self._trace[:steps].tolist()
                mon.loglik.extend(tr)
                mon.step.extend([0.0] * steps)
                it += steps
                prev = mon.loglik[-2]
                ll = tr[-1]
            elif status == 3:
                prev = ll
                q, st, ll = (self._squarem_step if squarem else self._python_step)(
                    *self._unflat(u, s), ll)
                u, s = self._flat(q, st)
                mon.record(ll, 0.0)
                it += 1
            stop, converged = self._stop(mon, it - 1, prev, ll)
            if stop:
                break
        return self._unflat(u), ll, mon, converged

    def _python_step(self, p, st, ll=None):
        q = self.m_step(st, p)
        st, ll, _ = self.e_step(q)
        if st is None:
            raise FloatingPointError("the log-likelihood became non-finite")
        return q, st, ll

    def _em_step(self, p, st, ll):
        if self._code >= 0:
            u, s = self._flat(p, st)
            steps, _ = self._kernel(u, s, -np.inf if ll is None else ll, 1, 0.0)
            if steps:
                q, st = self._unflat(u, s)
                return q, st, float(self._trace[0])
        return self._python_step(p, st)

    def _squarem_step(self, p0, st0, ll0):
        p1, st1, _ = self._em_step(p0, st0, ll0)
        p2, st2, ll2 = self._em_step(p1, st1, None)
        u0, u1, u2 = (np.concatenate([q.weights, q.means.ravel(), q.covariances.ravel()])
                      for q in (p0, p1, p2))
        r = u1 - u0
        v = u2 - 2.0 * u1 + u0
        nv = float(np.sqrt(v @ v))
        if not (np.isfinite(nv) and nv > 0.0):
            return p2, st2, ll2
        alpha = max(-max(1.0, float(np.sqrt(r @ r)) / nv), -float(self._step_max[0]))
        u = u0 - 2.0 * alpha * r + alpha * alpha * v
        K, d = self.model.K, self.model.d
        w = u[:K]
        q = None
        if np.all(w >= 0.0) and np.all(np.isfinite(u)):
            ext = GMMParams(w, u[K:K + K * d].reshape(K, d), u[K + K * d:].reshape(K, d, d))
            st_e, ll_e, _ = self.e_step(ext)
            if st_e is not None:
                try:
                    q, st_q, ll_q = self._em_step(ext, st_e, ll_e)
                except FloatingPointError:
                    q = None
        if q is None or not (ll_q >= ll2):
            self._step_max[0] = max(1.0, self._step_max[0] / 4.0)
            return p2, st2, ll2
        if alpha == -self._step_max[0]:
            self._step_max[0] *= 4.0
        return q, st_q, ll_q

    def _best_start(self, starts, maxiter):
        """The point the starts' competition continues from: (params, iterations used).
        One start is itself; of several, each distinct start runs a short EM and the one
        with the largest log-likelihood wins (as :func:`emstats.em.engine.run_starts`).
        A start equal to an earlier one (e.g. two k-means++ seedings that end in the same
        partition; every start at k = 1) would repeat its short run exactly: it is run
        once."""
        if len(starts) == 1:
            return starts[0][1], 0
        best, errors, seen = None, [], set()
        n_short = min(SHORT_ITER, int(maxiter))
        for _, p0 in starts:
            key = _start_key(p0)
            if key in seen:
                continue
            seen.add(key)
            try:
                r = self.run(p0, n_short, SHORT_TOL)
            except (ValueError, FloatingPointError, np.linalg.LinAlgError) as err:
                errors.append(str(err))
                continue
            if np.isfinite(r[1]) and (best is None or r[1] > best[1]):
                best = r
        if best is None:
            raise FloatingPointError("EM failed from every start: " + "; ".join(errors))
        return best[0], best[2].n_iter

    def fit(self, init, n_init, seed, maxiter, tol) -> FastFit:
        """The starts of ``init``/``n_init`` (seeded by ``seed``), short EM from each, the
        best continued (as :func:`emstats.em.engine.run_starts`; by SQUAREM when
        ``squarem``)."""
        model = self.model
        self._start_hits = {}
        model._fast_start_m_step = self.start_m_step if self._code >= 0 else None
        try:
            starts = model.initial_starts(init, n_init, np.random.default_rng(seed))
        finally:
            model._fast_start_m_step = None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            p, used = self._best_start(starts, maxiter)
            p, ll, mon, conv = self.run(p, max(int(maxiter) - used, 1), tol, self.squarem)
            used += mon.n_iter
        return self._finish(p, conv, used)

    def fit_all(self, parts, n_init, seed, maxiter, tol) -> FastFit:
        """``init="all"``: the best, without a collapsed component, of the strategies
        ``parts`` each run to convergence (the best of all if every fit collapsed), as
        ``fit(init="all")``: the strategies' starts are those of ``fit`` (each from its own
        generator seeded by ``seed``), and a failed strategy (non-finite, singular) is
        skipped."""
        model = self.model
        outs, errors = [], []
        for part in parts:
            try:
                outs.append(self.fit(part, n_init if part == "kmeans++" else None, seed,
                                     maxiter, tol))
            except (FloatingPointError, np.linalg.LinAlgError) as err:
                errors.append(f"{part}: {err}")
        outs = [o for o in outs if np.isfinite(o.loglik)]
        if not outs:
            raise FloatingPointError("every strategy of init='all' failed: "
                                     + "; ".join(errors))
        ok = [o for o in outs if not model.collapsed_components(o.params)] or outs
        return max(ok, key=lambda o: o.loglik)

    def _finish(self, p, conv, used) -> FastFit:
        model = self.model
        p = model.canonical(p)
        st, ll, resp = self.e_step(p, want_resp=True)
        if st is None:
            raise FloatingPointError("the log-likelihood at the estimate is not finite")
        top = resp[np.arange(resp.shape[0]), np.argmax(resp, axis=1)]
        mlr = float(np.log(np.maximum(top, np.finfo(float).tiny)).sum())
        return FastFit(p, float(ll), conv, used, mlr)
