"""Online EM (Cappé & Moulines 2009) for data that arrive in batches.

The data are never stored.  Each batch b_t of m_t rows updates running per-row
averages of the complete-data sufficient statistics by stochastic approximation,

    s_t = s_(t-1) + gamma_t (sbar(b_t; theta_(t-1)) - s_(t-1)),      theta_t = M(s_t),

where sbar(b; theta) is the batch's E-step statistics divided by its number of
rows and M the model's M-step on per-row averages.  The step size is

    gamma_t = (m_t / n_t) ** alpha,     n_t = rows seen so far,  alpha in (0.5, 1],

which is t^(-alpha) when every batch has the same size (Cappé & Moulines' schedule
with t counting batches); during an optional warm-up of ``warmup`` batches the
step is m_t / n_t (a plain running average).  The estimate reported is the
Polyak-Ruppert average of theta_t in the model's inference coordinates, each
iterate weighted by its batch size, over the batches after the first
``burn_in`` fraction of the rows seen so far (the window moves with the stream).

Memory does not grow with the stream: the estimator keeps the statistics (the
size of one M-step's input), the parameters, and two thinned records -- the
diagnostics trace and checkpoints of the running sums used for the averaging
window -- each with at most ``max_trace`` entries (when full, every other entry
is dropped and the recording stride doubles).

A model takes part through an adapter with ``prepare(*batch, **kw)`` (validate a
batch), ``initialize(batch)`` (parameters from the first batch),
``batch_stats(batch, params) -> (stats, loglik, rows)`` (per-row averaged
statistics: a tuple of arrays), ``m_step(stats, params)``, ``to_inference`` /
``from_inference`` and ``param_names``.  :class:`TobitAdapter` and
:class:`GMMAdapter` are provided; :func:`online_tobit` and :func:`online_gmm`
build the estimators.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.linalg as sla

from .._config import resolve_threads
from ..exceptions import DataError

__all__ = ["GMMAdapter", "OnlineEM", "TobitAdapter", "online_gmm", "online_tobit"]


class _Thinned:
    """A record of at most ``max_size`` rows: every ``stride``-th value is kept, and when
    the record is full every other row is dropped and the stride doubles."""

    def __init__(self, max_size: int):
        self.max_size = int(max_size)
        self.stride = 1
        self.rows: list = []
        self._count = 0

    def add(self, row) -> None:
        self._count += 1
        if (self._count - 1) % self.stride:
            return
        self.rows.append(row)
        if len(self.rows) >= self.max_size:
            self.rows = self.rows[::2]
            self.stride *= 2


def _as_2d(x, what: str) -> np.ndarray:
    arr = np.asarray(x, dtype=float)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise DataError(f"{what} must be 2-dimensional (rows x columns), got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise DataError(f"{what} has no rows")
    return arr


def _columns(x, names, what):
    """Column names of a DataFrame batch and a check that later batches match them."""
    if isinstance(x, pd.DataFrame):
        cols = [str(c) for c in x.columns]
        if names is not None and cols != list(names):
            raise DataError(f"{what} has columns {cols}, the stream so far had {list(names)}")
        return cols
    return names


class OnlineEM:
    """Stochastic-approximation (online) EM driver with Polyak-Ruppert averaging.

    Parameters
    ----------
    adapter : object
        Says what the statistics and the M-step of the model are (see the module
        docstring); :func:`online_tobit` and :func:`online_gmm` supply one.
    alpha : float
        Step-size exponent, in (0.5, 1]: gamma_t = (m_t / n_t) ** alpha, i.e.
        t^(-alpha) for equal batch sizes.  Smaller values forget the early
        (poorly estimated) statistics faster; 1 is a plain running average.
    warmup : int
        Number of initial batches with the plain-average step m_t / n_t.
    burn_in : float
        Fraction of the rows seen so far that precede the averaging window, in
        [0, 1): the reported estimate averages theta_t over the batches in the
        last (1 - burn_in) of the stream.
    max_trace : int
        Maximum number of rows kept in the trace and the averaging checkpoints.

    Attributes
    ----------
    n_seen : int
        Rows processed.
    n_batches : int
        Batches processed.
    """

    def __init__(self, adapter, *, alpha: float = 0.6, warmup: int = 0, burn_in: float = 0.2,
                 max_trace: int = 1000):
        alpha = float(alpha)
        if not (0.5 < alpha <= 1.0):
            raise ValueError(f"alpha must be in (0.5, 1] (Cappe & Moulines' condition for "
                             f"convergence), got {alpha!r}")
        if int(warmup) < 0:
            raise ValueError(f"warmup must be a non-negative number of batches, got {warmup!r}")
        burn_in = float(burn_in)
        if not (0.0 <= burn_in < 1.0):
            raise ValueError(f"burn_in must be a fraction in [0, 1), got {burn_in!r}")
        if int(max_trace) < 4:
            raise ValueError(f"max_trace must be at least 4, got {max_trace!r}")
        self.adapter = adapter
        self.alpha = alpha
        self.warmup = int(warmup)
        self.burn_in = burn_in
        self.max_trace = int(max_trace)
        self.n_seen = 0
        self.n_batches = 0
        self._stats = None
        self._params = None
        self._theta = None
        self._csum = None          # sum over batches of m_t theta_t
        self._trace = _Thinned(self.max_trace)
        self._checkpoints = _Thinned(self.max_trace)

    # -- the recursion ---------------------------------------------------------------
    def partial_fit(self, *batch, **kwargs) -> OnlineEM:
        """Update the estimate with one batch of rows.

        Parameters
        ----------
        *batch, **kwargs
            The batch, as the adapter expects it: ``(X, y)`` for Tobit (plus
            optional ``weights=``, ``offset=``, ``censor_left=``,
            ``censor_right=`` arrays for the batch), ``(X,)`` for a mixture.

        Returns
        -------
        self
        """
        ad = self.adapter
        data = ad.prepare(*batch, **kwargs)
        if self._params is None:
            self._params = ad.initialize(data)
        sbar, ll, m = ad.batch_stats(data, self._params)
        if not np.isfinite(ll):
            raise FloatingPointError(f"non-finite log-likelihood of batch {self.n_batches + 1}")
        self.n_batches += 1
        self.n_seen += int(m)
        frac = m / self.n_seen
        gamma = frac if self.n_batches <= self.warmup else frac ** self.alpha
        if self._stats is None:
            self._stats = tuple(np.array(a, dtype=float, copy=True) for a in sbar)
        else:
            self._stats = tuple(s + gamma * (np.asarray(b, dtype=float) - s)
                                for s, b in zip(self._stats, sbar, strict=True))
        self._params = ad.m_step(self._stats, self._params)
        theta = np.asarray(ad.to_inference(self._params), dtype=float)
        if not np.all(np.isfinite(theta)):
            raise FloatingPointError(f"non-finite estimate after batch {self.n_batches}")
        self._theta = theta
        self._csum = m * theta if self._csum is None else self._csum + m * theta
        self._checkpoints.add((self.n_seen, self._csum.copy()))
        self._trace.add((self.n_batches, self.n_seen, int(m), ll / m, gamma, theta.copy()))
        return self

    # -- estimates -------------------------------------------------------------------
    def _require(self):
        if self._theta is None:
            raise ValueError("no data yet: call partial_fit first")

    @property
    def theta_average(self) -> np.ndarray:
        """Polyak-Ruppert average (inference coordinates) over the last (1 - burn_in)
        fraction of the rows seen."""
        self._require()
        start = self.burn_in * self.n_seen
        base_n, base_sum = 0, 0.0
        for n_ck, s_ck in self._checkpoints.rows:
            if n_ck <= start and n_ck < self.n_seen:
                base_n, base_sum = n_ck, s_ck
            else:
                break
        return (self._csum - base_sum) / (self.n_seen - base_n)

    @property
    def theta_last(self) -> np.ndarray:
        """The last iterate theta_t (inference coordinates)."""
        self._require()
        return self._theta.copy()

    @property
    def param_names(self) -> list[str]:
        return list(self.adapter.param_names)

    @property
    def params(self) -> pd.Series:
        """The Polyak-Ruppert averaged estimate, labelled."""
        return pd.Series(self.theta_average, index=self.param_names, name="params")

    @property
    def params_last(self) -> pd.Series:
        """The last iterate, labelled."""
        return pd.Series(self.theta_last, index=self.param_names, name="params_last")

    @property
    def model_params(self):
        """The averaged estimate in the model's own form (e.g. ``GMMParams``)."""
        return self.adapter.from_inference(self.theta_average)

    @property
    def trace(self) -> pd.DataFrame:
        """Per-batch diagnostics (thinned to at most ``max_trace`` rows): batch number,
        rows seen, batch size, the batch's log-likelihood per row at the parameters
        before the update (a predictive score), and the step size."""
        rows = self._trace.rows
        return pd.DataFrame({
            "batch": [r[0] for r in rows], "n_seen": [r[1] for r in rows],
            "rows": [r[2] for r in rows], "loglik_per_row": [r[3] for r in rows],
            "step": [r[4] for r in rows],
        })

    @property
    def theta_trace(self) -> pd.DataFrame:
        """The iterates theta_t at the batches of :attr:`trace`, for plotting."""
        rows = self._trace.rows
        return pd.DataFrame(np.array([r[5] for r in rows]).reshape(len(rows), -1),
                            index=pd.Index([r[0] for r in rows], name="batch"),
                            columns=self.param_names)

    def __repr__(self):
        return (f"OnlineEM({type(self.adapter).__name__}, alpha={self.alpha}, "
                f"n_batches={self.n_batches}, n_seen={self.n_seen})")


# ----------------------------------------------------------------------------------
# Tobit
# ----------------------------------------------------------------------------------

class TobitAdapter:
    """Online EM statistics of Tobit regression.

    Per-row averages of (X'WX, X'W E[y* - offset], sum w E[(y* - offset)^2], sum w)
    over a batch; the M-step is weighted least squares on them:
    beta = G^-1 t1, sigma^2 = (t2 - beta' t1) / wbar.  Each batch is checked and
    its conditional moments computed by an :class:`emstats.Tobit` model built on
    the batch alone (its ``block_stats``).
    """

    def __init__(self, censor_left=0.0, censor_right=None, exog_names=None,
                 n_threads: int | None = None, init_maxiter: int = 200):
        self.censor_left = censor_left
        self.censor_right = censor_right
        self.exog_names = None if exog_names is None else [str(c) for c in exog_names]
        self.n_threads = n_threads
        self.init_maxiter = int(init_maxiter)
        self.k_exog: int | None = None

    @property
    def param_names(self) -> list[str]:
        return list(self.exog_names) + ["Log(scale)"]

    def prepare(self, X, y, *, weights=None, offset=None, censor_left=None,
                censor_right=None):
        from ..models.censored import Tobit

        names = _columns(X, self.exog_names, "the batch's X")
        Xa = _as_2d(X, "X")
        p = Xa.shape[1]
        if self.k_exog is None:
            self.k_exog = p
            self.exog_names = names if names is not None else [f"x{j}" for j in range(p)]
            if len(self.exog_names) != p:
                raise DataError(f"{len(self.exog_names)} exog_names for {p} columns")
        elif p != self.k_exog:
            raise DataError(f"the batch's X has {p} columns but the stream has {self.k_exog} "
                            f"({', '.join(self.exog_names)})")
        ya = np.asarray(y, dtype=float)
        if ya.ndim == 2 and ya.shape[1] == 1:
            ya = ya[:, 0]
        if ya.ndim != 1 or ya.shape[0] != Xa.shape[0]:
            raise DataError(f"the batch's y has shape {ya.shape} but X has {Xa.shape[0]} rows")
        left = self.censor_left if censor_left is None else censor_left
        right = self.censor_right if censor_right is None else censor_right
        # statistics about a zero reference, so that batches add up
        return Tobit(ya, Xa, censor_left=left, censor_right=right, weights=weights,
                     offset=offset, exog_names=self.exog_names, centre=np.zeros(p))

    def initialize(self, model):
        """The batch MLE of the first batch (EM from least squares)."""
        from .engine import run_em

        run = run_em(model, None, method="em", maxiter=self.init_maxiter, tol=1e-8, warn=False,
                     n_threads=self.n_threads)
        return np.asarray(run.params, dtype=float)

    def batch_stats(self, model, params):
        chunk = model.data.chunks(1, resolve_threads(self.n_threads))[0]
        stats, ll = model.chunk_stats(params, chunk)
        if stats is None:
            raise FloatingPointError("non-finite log-likelihood in the batch")
        t1, t2 = stats["xe"], float(stats["e2"])
        m = model.X.shape[0]
        gram = model.X.T @ (model.w[:, None] * model.X)
        return (gram / m, t1 / m, np.array([t2 / m, model.w.sum() / m])), ll, m

    def m_step(self, stats, params):
        gram, t1, (t2, wbar) = stats
        try:
            beta = sla.cho_solve(sla.cho_factor(gram, lower=True), t1)
        except np.linalg.LinAlgError:
            raise FloatingPointError("the averaged X'WX is not positive definite") from None
        s2 = (t2 - float(beta @ t1)) / wbar
        if not s2 > 0:
            raise FloatingPointError("non-positive scale in the online M-step")
        return np.concatenate([beta, [0.5 * np.log(s2)]])

    def to_inference(self, params):
        return np.asarray(params, dtype=float)

    def from_inference(self, vec):
        return np.asarray(vec, dtype=float)


# ----------------------------------------------------------------------------------
# Gaussian mixtures
# ----------------------------------------------------------------------------------

class GMMAdapter:
    """Online EM statistics of a Gaussian mixture.

    Per-row averages of N_k = sum r_ik, A_k = sum r_ik (x_i - c_k) and
    B_k = sum r_ik (x_i - c_k)(x_i - c_k)' about fixed reference points c_k (the
    means after the first batch, so the sums stay well conditioned); the M-step
    is the mixture model's own (any covariance structure).  The first batch
    gives the model (its columns, scale and structure) and the starting values:
    EM from k-means++ starts on that batch, components sorted by their means;
    that order is kept for the rest of the stream (no relabelling).
    """

    def __init__(self, k: int, covariance: str = "VVV", *, reg_covar: float = 0.0,
                 n_init: int = 1, seed: int = 0, n_threads: int | None = None,
                 init_maxiter: int = 500):
        self.k = k
        self.covariance = covariance
        self.reg_covar = reg_covar
        self.n_init = int(n_init)
        self.seed = seed
        self.n_threads = n_threads
        self.init_maxiter = int(init_maxiter)
        self.model = None
        self.columns: list[str] | None = None
        self._ref = None

    @property
    def param_names(self) -> list[str]:
        if self.model is None:
            raise ValueError("no data yet: call partial_fit first")
        return list(self.model.param_names)

    def prepare(self, X):
        from ..models.gmm import GaussianMixture

        names = _columns(X, self.columns, "the batch")
        Xa = _as_2d(X, "the batch")
        if self.model is None:
            self.model = GaussianMixture(X, self.k, self.covariance, reg_covar=self.reg_covar)
            self.model._n_threads = resolve_threads(self.n_threads)
            self.columns = list(self.model.columns) if names is None else names
        elif Xa.shape[1] != self.model.d:
            raise DataError(f"the batch has {Xa.shape[1]} columns but the stream has "
                            f"{self.model.d} ({', '.join(self.columns)})")
        bad = ~np.all(np.isfinite(Xa), axis=1)
        if bad.any():
            raise DataError(f"the batch has missing or infinite values in {int(bad.sum())} "
                            f"row(s) (first: row {int(np.flatnonzero(bad)[0])} of the batch)")
        return Xa

    def initialize(self, X):
        p = self.model.best_start(n_init=self.n_init, seed=self.seed,
                                  maxiter=self.init_maxiter)
        self._ref = p.means.copy()
        return p

    def batch_stats(self, X, params):
        N, S1, S2, ll = self.model.batch_stats(X, params)
        delta = params.means - self._ref              # shift the sums to the references
        A = S1 + N[:, None] * delta
        B = (S2 + np.einsum("ka,kb->kab", S1, delta) + np.einsum("ka,kb->kab", delta, S1)
             + N[:, None, None] * np.einsum("ka,kb->kab", delta, delta))
        m = X.shape[0]
        return (N / m, A / m, B / m), ll, m

    def m_step(self, stats, params):
        from ..models.gmm import _Stats

        N, A, B = stats
        return self.model.m_step(_Stats(N, A, B, self._ref), params)

    def to_inference(self, params):
        return self.model.to_inference(params)

    def from_inference(self, vec):
        return self.model.from_inference(vec)


# ----------------------------------------------------------------------------------
# user-facing constructors
# ----------------------------------------------------------------------------------

def online_tobit(censor_left=0.0, censor_right=None, *, alpha: float = 0.6, warmup: int = 0,
                 burn_in: float = 0.2, exog_names=None, n_threads: int | None = None,
                 max_trace: int = 1000) -> OnlineEM:
    """Online EM estimator of a Tobit regression, fed with ``partial_fit(X, y)``.

    Parameters
    ----------
    censor_left, censor_right : float or None
        Censoring limits (per-batch arrays can be passed to ``partial_fit``).
    alpha, warmup, burn_in, max_trace :
        See :class:`OnlineEM`.
    exog_names : list of str, optional
        Names of the columns of X (default: a DataFrame's columns, else x0, x1...).
    n_threads : int, optional
        Threads of the E-step kernel.

    Returns
    -------
    OnlineEM

    Examples
    --------
    >>> import numpy as np, emstats
    >>> rng = np.random.default_rng(0)
    >>> est = emstats.online_tobit(censor_left=0, alpha=0.6)
    >>> for _ in range(20):
    ...     X = np.column_stack([np.ones(1000), rng.normal(size=1000)])
    ...     y = np.maximum(X @ [0.5, 1.0] + rng.normal(size=1000), 0.0)
    ...     _ = est.partial_fit(X, y)
    >>> est.n_seen
    20000
    >>> est.params.round(1).tolist()
    [0.5, 1.0, 0.0]
    """
    return OnlineEM(TobitAdapter(censor_left, censor_right, exog_names, n_threads),
                    alpha=alpha, warmup=warmup, burn_in=burn_in, max_trace=max_trace)


def online_gmm(k: int, covariance: str = "VVV", *, alpha: float = 0.6, warmup: int = 0,
               burn_in: float = 0.2, reg_covar: float = 0.0, n_init: int = 10, seed: int = 0,
               n_threads: int | None = None, max_trace: int = 1000) -> OnlineEM:
    """Online EM estimator of a Gaussian mixture, fed with ``partial_fit(X)``.

    Parameters
    ----------
    k : int
        Number of components.
    covariance : str
        Covariance structure (mclust name or ``"full"``, ``"diag"``, ``"tied"``,
        ``"spherical"``), as in :func:`emstats.gmm`.
    alpha, warmup, burn_in, max_trace :
        See :class:`OnlineEM`.
    reg_covar : float
        Ridge added to the covariances in every M-step.
    n_init, seed :
        k-means++ starts of EM on the first batch, and their seed.
    n_threads : int, optional
        Threads of the E-step kernel.

    Returns
    -------
    OnlineEM
        ``est.params`` is labelled as :class:`emstats.GMMResults` params;
        ``est.model_params`` is a :class:`emstats.GMMParams`.
    """
    return OnlineEM(GMMAdapter(k, covariance, reg_covar=reg_covar, n_init=n_init, seed=seed,
                               n_threads=n_threads),
                    alpha=alpha, warmup=warmup, burn_in=burn_in, max_trace=max_trace)
