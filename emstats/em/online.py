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
``from_inference`` and ``param_names``.  The adapters live with their models (the
engine imports no model): ``emstats.models.censored.TobitAdapter`` and
``emstats.models.gmm.GMMAdapter``, whose batch statistics are the models' own
``chunk_stats`` on a chunk of the batch; :func:`emstats.online_tobit` and
:func:`emstats.online_gmm` build the estimators.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..exceptions import DataError

__all__ = ["OnlineEM", "as_2d", "batch_columns"]


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


def as_2d(x, what: str) -> np.ndarray:
    arr = np.asarray(x, dtype=float)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise DataError(f"{what} must be 2-dimensional (rows x columns), got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise DataError(f"{what} has no rows")
    return arr


def batch_columns(x, names, what):
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
        self._pending: list = []   # batches waiting until they identify the model
        self._waiting: str | None = None

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
            # the first estimate needs data that identify the model; an adapter that can
            # pool batches (``pool``) waits for enough of them, and the pooled rows then
            # count as the first batch
            pool = getattr(ad, "pool", None)
            if pool is not None:
                data = pool([*self._pending, data])
            try:
                self._params = ad.initialize(data)
            except DataError as err:
                if pool is None:
                    raise
                self._pending = [data]
                self._waiting = f"{data.n_rows} row(s) so far: {err}"
                return self
            self._pending, self._waiting = [], None
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
        if self._theta is None and self._waiting is not None:
            raise ValueError("the batches so far do not identify the model yet "
                             f"({self._waiting}); keep calling partial_fit")
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
