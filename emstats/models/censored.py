"""Censored and interval-censored normal regression: Tobit and ``intreg``.

The latent response is y* = x'beta + offset + sigma * e with e ~ N(0, 1).  Each
row says either that y* was observed (``lo == hi``) or that it lies in
``[lo, hi]`` (one side may be infinite).  Tobit (left, right or two-limit
censoring with fixed or per-row limits) and interval regression only differ in
how they turn the data into ``(lo, hi)``; they share this model and one kernel.

EM treats the censored y* as missing data (the E-step needs the truncated-normal
moments of y*) and the M-step is least squares on E[y*]:

    beta_new  = beta + (X'WX)^-1 X'W e,       e = E[y* | data] - x'beta - offset
    sigma_new^2 = (sum w (e^2 + Var[y* | data]) - (beta_new - beta)' X'W e) / sum w

with X'WX factorised once per fit.  Parameters are (beta, log sigma), the
coordinates of R's ``survreg``/``AER::tobit``; they are unconstrained, so the
same vector serves acceleration and inference.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.linalg as sla
from scipy import special, stats

from .._config import requested_threads, resolve_threads, threads_for_work
from .._kernels import censnorm
from ..em.data import ArrayData
from ..em.engine import run_em
from ..em.online import OnlineEM, as_2d, batch_columns
from ..em.protocol import ChunkedModel, LouisPieces
from ..em.stats import Stats
from ..exceptions import DataError, SingularDesignError
from ..exceptions import describe_rows as _labels
from ..formula import Terms, build_design, capture_env, new_exog, resolve_column, variables_frame
from ..inference.fit import FitMixin
from ..inference.margins import MarginalEffects, estimation_frame, marginal_effects
from ..inference.results import EMResults


def _truncnorm_draws(a: np.ndarray, b: np.ndarray, rng: np.random.Generator,
                     size: int) -> np.ndarray:
    """``size`` draws of N(0, 1) restricted to (a_i, b_i) for each i, shape (size, n).

    Inverse-CDF sampling in log space (``log_ndtr`` / ``ndtri_exp``), on the side of
    zero where the interval's probability is not a difference of numbers near 1:
    intervals above zero are sampled by reflection.  Accurate deep in the tails.
    """
    flip = a > 0
    lo = np.where(flip, -b, a)
    hi = np.where(flip, -a, b)
    lp_lo = special.log_ndtr(lo)
    lp_hi = special.log_ndtr(hi)
    u = rng.random((size, len(a)))
    # Phi(lo) + u (Phi(hi) - Phi(lo)) = Phi(hi) (u + (1 - u) Phi(lo) / Phi(hi))
    z = special.ndtri_exp(lp_hi + np.log(u + (1.0 - u) * np.exp(lp_lo - lp_hi)))
    z = np.clip(z, lo, hi)
    return np.where(flip, -z, z)




def check_rows(X, lo, hi, weights, offset, labels):
    """Validate the rows of a censored regression: finite regressors, bounds that are not
    NaN, not reversed and not both unbounded, positive finite weights and a finite
    offset (a :class:`DataError` naming the rows otherwise).  Returns the weights and the
    offset as arrays (ones and zeros when not given)."""
    n = X.shape[0]
    # one pass: a row sum is non-finite when an entry is (or, rarely, on overflow)
    if not np.isfinite(X.sum(axis=1)).all() and (
            bad_x := ~np.all(np.isfinite(X), axis=1)).any():
        raise DataError(f"exog has non-finite values in {int(bad_x.sum())} row(s) "
                        f"(rows {_labels(labels, bad_x)})")
    for name, arr in (("lower bound", lo), ("upper bound", hi)):
        if np.isnan(arr).any():
            raise DataError(f"{name} is NaN in rows {_labels(labels, np.isnan(arr))}")
    flip = lo > hi
    if flip.any():
        raise DataError(
            f"the lower limit is above the upper limit in {int(flip.sum())} row(s) "
            f"(rows {_labels(labels, flip)})"
        )
    inf_both = (lo == hi) & ~np.isfinite(lo)
    unbounded = (lo == -np.inf) & (hi == np.inf)
    if inf_both.any() or unbounded.any():
        m = inf_both | unbounded
        raise DataError(f"the response carries no information in {int(m.sum())} row(s) "
                        f"(infinite or unbounded on both sides; rows {_labels(labels, m)})")
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=float).ravel()
    if w.shape[0] != n:
        raise DataError(f"weights have {w.shape[0]} rows but the data have {n}")
    if not np.all(np.isfinite(w)) or np.any(w <= 0):
        m = ~(np.isfinite(w) & (w > 0))
        raise DataError(f"weights must be positive and finite; rows {_labels(labels, m)}")
    off = np.zeros(n) if offset is None else np.asarray(offset, dtype=float).ravel()
    if off.shape[0] != n or not np.all(np.isfinite(off)):
        raise DataError("offset must be finite with one value per row")
    return w, off


class CensoredRegression(FitMixin, ChunkedModel):
    """Normal linear regression with censored or interval-censored responses.

    Parameters
    ----------
    lower, upper : array_like, shape (n,)
        Bounds of the latent response for each row: ``lower == upper`` means the
        response was observed; ``-inf`` / ``+inf`` mean unbounded on that side.
    exog : array_like, shape (n, p)
        Regressors (include a constant column yourself).
    weights : array_like, optional
        Frequency weights (a row with weight 2 counts as two observations).
    offset : array_like, optional
        Added to the linear predictor with coefficient 1.
    exog_names : list of str, optional
        Names of the regressors (default ``x0, x1, ...``).
    endog_name : str, optional
        Name of the response.
    row_labels : pandas.Index, optional
        Labels used in error messages.
    n_dropped : int
        Rows removed because of missing values (reported in the summary).
    design_info : patsy.DesignInfo, optional
        The design of a model built from a formula (for prediction on new data).
    censoring : dict, optional
        Internal: how the bounds were built (limits and counts), for the summary.
    centre : ndarray, optional
        Internal: column centres of ``exog`` used by the E-step (default: the
        weighted column means).
    identify : bool
        Check that the data identify the model (default).  ``False`` checks only the
        columns and values, for a batch of a stream whose identification is the
        accumulated statistics' business (:func:`online_tobit`); it needs ``centre``.

    Notes
    -----
    Most users build this model through :func:`emstats.tobit` or
    :func:`emstats.intreg`.
    """

    summary_title = "Censored Regression Results"

    def __init__(
        self,
        lower,
        upper,
        exog,
        *,
        weights=None,
        offset=None,
        exog_names: list[str] | None = None,
        endog_name: str = "y",
        row_labels: pd.Index | None = None,
        n_dropped: int = 0,
        design_info: Terms | None = None,
        censoring: dict | None = None,
        centre=None,
        identify: bool = True,
    ):
        X = np.asarray(exog, dtype=float)
        if X.ndim == 1:
            X = X[:, None]
        if X.ndim != 2:
            raise DataError(f"exog must be 2-dimensional, got shape {X.shape}")
        n, p = X.shape
        if n == 0:
            raise DataError("no observations (0 rows)")
        lo = np.asarray(lower, dtype=float).ravel()
        hi = np.asarray(upper, dtype=float).ravel()
        if lo.shape[0] != n or hi.shape[0] != n:
            raise DataError(
                f"response bounds have {lo.shape[0]} and {hi.shape[0]} rows but exog has {n}"
            )
        labels = pd.RangeIndex(n) if row_labels is None else pd.Index(row_labels)
        self.exog_names = list(exog_names) if exog_names is not None else [
            f"x{j}" for j in range(p)
        ]
        if len(self.exog_names) != p:
            raise DataError(f"{len(self.exog_names)} exog_names for {p} columns")
        w, off = check_rows(X, lo, hi, weights, offset, labels)
        # the kernels read C-contiguous rows (ArrayData below would make the same copy)
        X = np.ascontiguousarray(X)
        lo, hi, off, w = (np.ascontiguousarray(a, dtype=float) for a in (lo, hi, off, w))
        # one pass: the censoring counts and X'W y of the completed response (the start)
        nt = threads_for_work(requested_threads(), n)
        nch = censnorm.n_chunks(n)
        part_xy, part_n = np.zeros((nch, p)), np.zeros((nch, 4))
        censnorm.censreg_start_pass(X, lo, hi, off, w, part_xy, part_n, nt)
        self.n_exact, self.n_left, self.n_right, self.n_interval = (
            int(c) for c in part_n.sum(axis=0))
        if identify and self.n_exact == 0 and self.n_interval == 0:
            raise DataError(
                f"all {n} observations are censored (none is observed exactly or within a "
                "bounded interval): the model is not identified"
            )
        self.has_weights = weights is not None
        self.has_offset = offset is not None
        self.endog_name = endog_name
        self.row_labels = labels
        self.n_dropped = int(n_dropped)
        self.design_info = design_info
        self.frame = None       # the formula's variables in the rows (set by from_formula)
        self.censoring = dict(censoring or {})
        self.param_names = list(self.exog_names) + ["Log(scale)"]
        self.k_exog = p
        # data constants (not fit state): X'WX, factorised once per model, and the
        # reference about which the E-step statistics are taken
        # (no n x p temporary for unweighted data)
        self._gram = X.T @ X if weights is None else X.T @ (X * w[:, None])
        self._sum_w = float(w.sum())
        if identify:
            self._check_rank(self._gram)
            if n == p:
                # full rank with as many rows as coefficients: every row is met exactly,
                # whatever its censoring, and the scale goes to zero
                raise DataError(
                    f"{n} row(s) cannot identify {p} coefficient(s) and a scale: the "
                    "regressors fit every row without error (the scale's estimate goes to "
                    "zero); the model needs more rows than coefficients")
            self._gram_cho = sla.cho_factor(self._gram, lower=True)
            self._start = self._completed_wls(X, lo, hi, w, off, part_xy.sum(axis=0), nt)
        elif centre is None:
            raise ValueError("a model built with identify=False needs a centre")
        self._centre = (self._start[0] if centre is None
                        else np.asarray(centre, dtype=float).copy())
        self.data = ArrayData({"X": X, "lo": lo, "hi": hi, "offset": off, "w": w,
                               "ref": off + X @ self._centre})

    # the data's columns, for the results and the ECM variant
    n_rows = property(lambda self: self.data.n_rows)
    X = property(lambda self: self.data["X"])
    lo = property(lambda self: self.data["lo"])
    hi = property(lambda self: self.data["hi"])
    w = property(lambda self: self.data["w"])
    offset = property(lambda self: self.data["offset"])

    @property
    def nobs(self) -> float:
        """Observations: the sum of the frequency weights, or the number of rows."""
        return self._sum_w if self.has_weights else self.X.shape[0]

    @property
    def df_model(self) -> float:
        """Regressors other than a constant."""
        const = int(np.any(np.all(self.X == 1.0, axis=0)))
        return self.k_exog - const

    # -- validation ---------------------------------------------------------------
    def _check_rank(self, gram: np.ndarray) -> None:
        """Full column rank from a pivoted Cholesky factorisation of X'WX (one pass over
        the data built the Gram matrix; no QR of the design)."""
        n, p = self.row_labels.shape[0], gram.shape[0]
        if n < p:
            raise SingularDesignError(f"the design has {p} columns but only {n} rows")
        d = np.sqrt(np.maximum(np.diag(gram), 0.0))
        zero = d == 0
        scaled = gram / np.outer(np.where(zero, 1.0, d), np.where(zero, 1.0, d))
        scaled[zero, :] = 0.0
        scaled[:, zero] = 0.0
        # a column is dependent when its squared residual, relative to its own norm, is
        # below what the Gram matrix's round-off can resolve
        _, piv, rank, _ = sla.lapack.dpstrf(scaled, lower=1, tol=p * 1e3 * np.finfo(float).eps)
        rank = int(min(rank, p - int(zero.sum())))
        if rank < p:
            order = [j for j in np.asarray(piv) - 1 if not zero[j]]
            dropped = [self.exog_names[j] for j in np.flatnonzero(zero)]
            dropped += [self.exog_names[j] for j in order[rank:]]
            raise SingularDesignError(
                f"the design matrix is singular (rank {rank} < {p} columns): "
                f"{', '.join(map(repr, dropped))} "
                + ("is" if len(dropped) == 1 else "are")
                + " a linear combination of the other columns (or constant zero)"
            )

    # -- subsetting for the bootstrap ----------------------------------------------
    @property
    def n_units(self) -> int:
        """Number of independent rows."""
        return self.X.shape[0]

    def bootstrap_model(self, idx: np.ndarray) -> CensoredRegression:
        """The same model on rows ``idx`` (with repetition)."""
        new = CensoredRegression(
            self.lo[idx], self.hi[idx], self.X[idx],
            weights=self.w[idx] if self.has_weights else None,
            offset=self.offset[idx] if self.has_offset else None,
            exog_names=self.exog_names, endog_name=self.endog_name,
        )
        return new

    # -- EM protocol ------------------------------------------------------------------
    def _split(self, theta: np.ndarray) -> tuple[np.ndarray, float]:
        theta = np.asarray(theta, dtype=float)
        return np.ascontiguousarray(theta[:-1]), float(np.exp(theta[-1]))

    def _completed_wls(self, X, lo, hi, w, off, xwy, n_threads) -> tuple[np.ndarray, float]:
        """Weighted least squares on a completed response (bounds, or interval midpoints),
        from X'W y (``xwy``, :func:`censnorm.censreg_start_pass`) and one pass for the
        residuals (no n-row temporaries)."""
        n = X.shape[0]
        beta = sla.cho_solve(self._gram_cho, xwy)
        part = np.empty((censnorm.n_chunks(n), 5))
        censnorm.censreg_start_resid(X, lo, hi, off, w, np.ascontiguousarray(beta), part,
                                     n_threads)
        ssr, rmax, ymax = part[:, 0].sum(), part[:, 1].max(), part[:, 2].max()
        perfect = rmax <= 1e-10 * (1.0 + ymax)
        if n > X.shape[1] and self.n_exact == n and perfect:
            what = ("the response is constant" if part[:, 3].min() == part[:, 4].max() else
                    "the regressors fit them without error")
            raise DataError(
                f"the {n} exactly observed response(s) leave no residual variation "
                f"({what}): the scale is not identified and its estimate goes to zero")
        s2 = float(ssr) / max(self._sum_w - self.k_exog, 1.0)
        if not np.isfinite(s2) or s2 <= 0:
            y = np.where(np.isfinite(lo) & np.isfinite(hi), 0.5 * (lo + hi),
                         np.where(np.isfinite(lo), lo, hi)) - off
            s2 = float(np.var(y)) or 1.0
        return beta, s2

    def start_params(self) -> np.ndarray:
        """Weighted least squares on a completed response (bounds or midpoints)."""
        beta, s2 = self._start
        return np.concatenate([beta, [0.5 * np.log(s2)]])

    def check_start(self, start) -> np.ndarray:
        """``start_params`` as a vector of ``(beta, log(scale))``, or a clear error."""
        start = np.asarray(start, dtype=float).ravel()
        if start.shape[0] != self.k_exog + 1 or not np.all(np.isfinite(start)):
            raise ValueError(
                f"start_params must hold {self.k_exog + 1} finite values "
                f"({', '.join(self.param_names)})"
            )
        return start

    def diagnose_failure(self, err: Exception) -> DataError | None:
        """A :class:`DataError` saying what is degenerate in the data, when a numerical
        failure of the fit (``err``) comes from data that cannot identify the model."""
        n, p = self.X.shape
        exact = self.lo == self.hi
        if n < p + 1:
            return DataError(f"{n} row(s) cannot identify {p} coefficient(s) and a scale")
        if self.n_interval == 0 and exact.any():
            Xe, ye = self.X[exact], self.lo[exact] - self.offset[exact]
            beta = np.linalg.lstsq(Xe * np.sqrt(self.w[exact])[:, None],
                                   ye * np.sqrt(self.w[exact]), rcond=None)[0]
            resid = ye - Xe @ beta
            if np.max(np.abs(resid)) <= 1e-10 * (1.0 + np.max(np.abs(ye))):
                what = ("the response is constant" if np.ptp(ye) == 0 else
                        "the regressors fit them without error")
                return DataError(
                    f"the {int(exact.sum())} exactly observed response(s) leave no residual "
                    f"variation ({what}): the scale is not identified and its estimate goes "
                    "to zero")
        return None

    def chunk_stats(self, params, chunk):
        """E-step of a chunk: ``xe = sum w x E[y* - ref]``, ``e2 = sum w E[(y* - ref)^2]``.

        Taken about the fixed per-row reference ``ref`` (the offset plus the linear
        predictor of a least-squares start), they add over chunks and over parameter
        values.
        """
        beta, sigma = self._split(params)
        if not (np.isfinite(sigma) and sigma > 0 and np.all(np.isfinite(beta))):
            return None, -np.inf
        nch = censnorm.n_chunks(chunk.n_rows)
        part_xe = np.zeros((nch, self.k_exog))
        part_s = np.zeros((nch, 3))
        censnorm.censreg_estep(chunk["X"], chunk["lo"], chunk["hi"], chunk["offset"],
                               chunk["ref"], chunk["w"], beta, sigma, part_xe, part_s,
                               chunk.n_threads)
        s = part_s.sum(axis=0)
        if s[2] > 0:
            return None, -np.inf
        return Stats(xe=part_xe.sum(axis=0), e2=s[1]), float(s[0])

    def m_step(self, stats, params):
        """Least squares on the expected latent response (the module docstring)."""
        xe, e2 = stats["xe"], float(stats["e2"])
        delta = sla.cho_solve(self._gram_cho, xe)
        s2 = (e2 - float(delta @ xe)) / self._sum_w
        if not s2 > 0:
            raise FloatingPointError("non-positive scale in the M-step")
        return np.concatenate([self._centre + delta, [0.5 * np.log(s2)]])

    # -- EM variants: simulated E-step ----------------------------------------------
    def sample_stats(self, params, rng: np.random.Generator, size: int):
        """E-step statistics from ``size`` imputations of each censored latent response.

        The same statistics as :meth:`chunk_stats`, with the conditional moments
        replaced by Monte Carlo averages over draws from the truncated normals.
        """
        beta, sigma = self._split(params)
        mu = self.linear_predictor(params)
        exact = self.lo == self.hi
        e = np.where(exact, self.lo - mu, 0.0)
        e2 = e * e
        cens = ~exact
        if cens.any():
            a = (self.lo[cens] - mu[cens]) / sigma
            b = (self.hi[cens] - mu[cens]) / sigma
            z = _truncnorm_draws(a, b, rng, int(size))
            e[cens] = sigma * z.mean(axis=0)
            e2[cens] = sigma**2 * (z * z).mean(axis=0)
        d = mu - self.data["ref"]           # from residuals about mu to about ref
        return Stats(xe=self.X.T @ (self.w * (e + d)),
                     e2=float(self.w @ (e2 + 2.0 * d * e + d * d)))

    def linear_predictor(self, params) -> np.ndarray:
        """x'beta + offset for the rows of the model."""
        beta, _ = self._split(params)
        return self.X @ beta + self.offset

    def row_moments(self, params) -> np.ndarray:
        """Per-row (loglik, m, c2, c3, c4) of the standardised latent response."""
        _, sigma = self._split(params)
        out = np.empty((self.X.shape[0], 5))
        censnorm.censreg_moments(self.lo, self.hi, self.linear_predictor(params),
                                 np.full(self.X.shape[0], sigma), out,
                                 resolve_threads(None))
        return out

    def loglikeobs(self, params) -> np.ndarray:
        """Per-row observed-data log-likelihood (unweighted)."""
        return self.row_moments(params)[:, 0]

    def chunk_louis(self, params, chunk):
        """One pass of the Louis kernel over a chunk: the additive pieces of the
        log-likelihood, the score and Louis' information (see :meth:`louis_from_stats`)."""
        beta, sigma = self._split(params)
        if not (np.isfinite(sigma) and sigma > 0 and np.all(np.isfinite(beta))):
            raise FloatingPointError("non-finite parameters")
        p = self.k_exog
        nch = censnorm.n_chunks(chunk.n_rows)
        part_v = np.zeros((nch, 2 * p))
        part_mm = np.zeros((nch, p, p))
        part_s = np.zeros((nch, 4))
        censnorm.censreg_louis(chunk["X"], chunk["lo"], chunk["hi"], chunk["offset"],
                               chunk["w"], beta, sigma, part_v, part_mm, part_s,
                               chunk.n_threads)
        return Stats(v=part_v.sum(axis=0), mm=part_mm.sum(axis=0), s=part_s.sum(axis=0))

    @staticmethod
    def _with_offset_spec(offset, model, data):
        """``model`` remembering whether ``offset=`` was given besides the formula's
        ``offset()`` terms (new data then need ``offset=`` too), and the formula's
        variables in its rows (for marginal effects)."""
        model.explicit_offset = offset is not None
        model.frame = variables_frame(data, [model.design_info], model.row_labels)
        return model

    def null_model(self) -> CensoredRegression | None:
        """The intercept-only model on the same responses, weights and offset (None when
        this model has no other regressor)."""
        if self.k_exog <= 1:
            return None
        d = self.data
        return CensoredRegression(d["lo"], d["hi"], np.ones((d.n_rows, 1)),
                                  weights=d["w"] if self.has_weights else None,
                                  offset=d["offset"] if self.has_offset else None,
                                  exog_names=["Intercept"], endog_name=self.endog_name)

    def chunk_scores(self, params, chunk) -> np.ndarray:
        """Score of each row of the chunk: w x E[z] / sigma for beta and
        w (E[z^2] - 1) for log sigma, z the standardised latent response given the row."""
        beta, sigma = self._split(params)
        n = chunk.n_rows
        mo = np.empty((n, 5))
        censnorm.censreg_moments(chunk["lo"], chunk["hi"], chunk["X"] @ beta + chunk["offset"],
                                 np.full(n, sigma), mo, chunk.n_threads)
        w = chunk["w"]
        m, ez2 = mo[:, 1], mo[:, 2] + mo[:, 1] ** 2
        return np.column_stack([chunk["X"] * (w * m / sigma)[:, None], w * (ez2 - 1.0)])

    def unit_weights(self) -> np.ndarray:
        return self.data["w"]

    def louis_from_stats(self, params, total):
        """Log-likelihood, score and Louis' pieces from the kernel's sums over all rows."""
        _, sigma = self._split(params)
        p = self.k_exog
        v, s = total["v"], total["s"]
        if s[3] > 0:
            raise FloatingPointError("non-finite conditional moments")
        wmx, wmisx = v[:p], v[p:]
        mm = np.triu(total["mm"])
        mm = mm + np.triu(mm, 1).T
        score = np.concatenate([wmx / sigma, [s[1] - self._sum_w]])
        comp = np.empty((p + 1, p + 1))
        miss = np.empty((p + 1, p + 1))
        comp[:p, :p] = self._gram / sigma**2
        comp[:p, p] = comp[p, :p] = 2.0 * wmx / sigma
        comp[p, p] = 2.0 * s[1]
        miss[:p, :p] = mm / sigma**2
        miss[:p, p] = miss[p, :p] = wmisx / sigma
        miss[p, p] = s[2]
        return float(s[0]), score, LouisPieces(comp, miss)


def tobit_bounds(y, censor_left, censor_right, labels, endog_name, beyond_limits):
    """The bounds ``(lo, hi)`` of the latent response of a Tobit model from the observed
    response ``y`` and the censoring limits, with the limits as arrays and the number of
    responses beyond their limits: ``(lo, hi, left, right, n_beyond)``."""
    n = y.shape[0]
    left = resolve_column(-np.inf if censor_left is None else censor_left, None,
                          "censor_left", n)
    right = resolve_column(np.inf if censor_right is None else censor_right, None,
                           "censor_right", n)
    for name, arr in (("censor_left", left), ("censor_right", right)):
        if np.isnan(arr).any():
            raise DataError(f"{name} is NaN in rows {_labels(labels, np.isnan(arr))}")
    if np.any(left >= right):
        m = left >= right
        raise DataError(f"censor_left is not below censor_right in {int(m.sum())} row(s) "
                        f"(rows {_labels(labels, m)})")
    if beyond_limits not in ("censor", "raise"):
        raise ValueError(f"beyond_limits must be 'censor' or 'raise', got {beyond_limits!r}")
    outside = (y < left) | (y > right)
    if outside.any() and beyond_limits == "raise":
        raise DataError(
            f"response {endog_name!r} lies outside its censoring limits in "
            f"{int(outside.sum())} row(s) (rows {_labels(labels, outside)}); "
            "censored values must equal their limit (or use beyond_limits='censor')"
        )
    lo = np.where(y <= left, -np.inf, np.where(y >= right, right, y))
    hi = np.where(y >= right, np.inf, np.where(y <= left, left, y))
    return lo, hi, left, right, int(outside.sum())


class Tobit(CensoredRegression):
    """Tobit (censored normal) regression with left, right or two-limit censoring.

    Parameters
    ----------
    endog : array_like, shape (n,)
        Observed response.
    exog : array_like, shape (n, p)
        Regressors (include a constant column yourself).
    censor_left, censor_right : float, array_like or None
        Censoring limits: a scalar, per-row limits (``-inf``/``+inf`` for none) or
        None for no censoring on that side.  A response at or beyond a limit is
        censored at it (as in R's ``AER::tobit`` and Stata's ``tobit``).
    weights, offset, exog_names, endog_name, row_labels, n_dropped, design_info, centre, identify :
        As in :class:`CensoredRegression`.
    beyond_limits : {"censor", "raise"}
        What to do with a response strictly outside its limits: treat it as
        censored (default, R and Stata's convention) or raise ``DataError``
        (for data where such values signal a coding error).

    Examples
    --------
    >>> import numpy as np, emstats
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=200); X = np.column_stack([np.ones(200), x])
    >>> y = np.maximum(0.5 + x + rng.normal(size=200), 0.0)
    >>> res = emstats.Tobit(y, X, censor_left=0).fit()
    >>> bool(res.convergence.converged)
    True
    """

    summary_title = "Tobit Regression Results"

    def __init__(self, endog, exog, censor_left=0.0, censor_right=None, *, weights=None,
                 offset=None, beyond_limits: str = "censor", exog_names=None, endog_name="y",
                 row_labels=None, n_dropped=0, design_info=None, centre=None,
                 identify: bool = True):
        y = np.asarray(endog, dtype=float)
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.ndim != 1:
            raise DataError(f"endog must be one column, got shape {y.shape}")
        n = y.shape[0]
        labels = pd.RangeIndex(n) if row_labels is None else pd.Index(row_labels)
        if np.isnan(y).any():
            raise DataError(f"response {endog_name!r} has missing values in rows "
                            f"{_labels(labels, np.isnan(y))}")
        lo, hi, left, right, self.n_beyond_limits = tobit_bounds(
            y, censor_left, censor_right, labels, endog_name, beyond_limits)
        self.endog = y
        self.censor_left = censor_left
        self.censor_right = censor_right
        super().__init__(lo, hi, exog, weights=weights, offset=offset, exog_names=exog_names,
                         endog_name=endog_name, row_labels=labels, n_dropped=n_dropped,
                         design_info=design_info, centre=centre, identify=identify,
                         censoring={"left": left, "right": right})

    @classmethod
    def from_formula(cls, formula: str, data, censor_left=0.0, censor_right=None, *,
                     weights=None, offset=None, beyond_limits: str = "censor",
                     missing: str = "drop", eval_env=None) -> Tobit:
        """Build a Tobit model from a patsy formula; see :func:`emstats.tobit`.

        Parameters
        ----------
        formula, data, censor_left, censor_right, weights, offset, beyond_limits, missing :
            As in :func:`emstats.tobit`.
        eval_env : patsy.EvalEnvironment or int, optional
            Where the formula's names are looked up (default: the caller's frame).
        """
        env = eval_env if eval_env is not None else capture_env(1)
        # scalar limits stay scalars (so predict() can reuse them); columns and arrays
        # are aligned with the rows kept
        limits = {"censor_left": censor_left, "censor_right": censor_right}
        per_row = {k: v for k, v in limits.items() if v is not None and not np.isscalar(v)
                   or isinstance(v, str)}
        extras = {"weights": weights, "offset": offset, **per_row}
        design = build_design(formula, data, n_response=1, missing=missing, eval_env=env,
                              extras={k: v for k, v in extras.items() if v is not None},
                              offset_key="offset")
        ex = design.extras
        limits.update({k: ex[k] for k in per_row})
        return cls._with_offset_spec(offset, cls(design.endog[:, 0], design.exog,
                   censor_left=limits["censor_left"], censor_right=limits["censor_right"],
                   weights=ex.get("weights"), offset=ex.get("offset"),
                   beyond_limits=beyond_limits,
                   exog_names=design.exog_names, endog_name=design.endog_names[0],
                   row_labels=design.row_labels, n_dropped=design.n_dropped,
                   design_info=design.design_info), data)


class IntervalRegression(CensoredRegression):
    """Interval regression (Stata's ``intreg``, R's ``Surv(lower, upper, type="interval2")``).

    Parameters
    ----------
    lower, upper : array_like, shape (n,)
        A missing (NaN) or ``-inf`` lower bound means left-censored at ``upper``;
        a missing or ``+inf`` upper bound means right-censored at ``lower``;
        equal bounds an exact value; otherwise the response lies in the interval.
    exog, weights, offset, exog_names, endog_name, row_labels, n_dropped, design_info :
        As in :class:`CensoredRegression`.
    """

    summary_title = "Interval Regression Results"

    def __init__(self, lower, upper, exog, *, weights=None, offset=None, exog_names=None,
                 endog_name="lower + upper", row_labels=None, n_dropped=0, design_info=None):
        lo = np.asarray(lower, dtype=float).ravel().copy()
        hi = np.asarray(upper, dtype=float).ravel().copy()
        n = lo.shape[0]
        labels = pd.RangeIndex(n) if row_labels is None else pd.Index(row_labels)
        both = np.isnan(lo) & np.isnan(hi)
        if both.any():
            raise DataError(f"both bounds are missing in rows {_labels(labels, both)}")
        lo[np.isnan(lo)] = -np.inf
        hi[np.isnan(hi)] = np.inf
        super().__init__(lo, hi, exog, weights=weights, offset=offset, exog_names=exog_names,
                         endog_name=endog_name, row_labels=labels, n_dropped=n_dropped,
                         design_info=design_info)

    @classmethod
    def from_formula(cls, formula: str, data, *, weights=None, offset=None,
                     missing: str = "drop", eval_env=None) -> IntervalRegression:
        """Build from ``"lower + upper ~ x1 + x2"``; see :func:`emstats.intreg`.

        Parameters
        ----------
        formula, data, weights, offset, missing :
            As in :func:`emstats.intreg`.
        eval_env : patsy.EvalEnvironment or int, optional
            Where the formula's names are looked up (default: the caller's frame).
        """
        env = eval_env if eval_env is not None else capture_env(1)
        extras = {"weights": weights, "offset": offset}
        design = build_design(formula, data, n_response=2, missing=missing, eval_env=env,
                              response_may_be_nan=True,
                              extras={k: v for k, v in extras.items() if v is not None},
                              offset_key="offset")
        ex = design.extras
        return cls._with_offset_spec(offset, cls(
                   design.endog[:, 0], design.endog[:, 1], design.exog,
                   weights=ex.get("weights"), offset=ex.get("offset"),
                   exog_names=design.exog_names,
                   endog_name=" + ".join(design.endog_names), row_labels=design.row_labels,
                   n_dropped=design.n_dropped, design_info=design.design_info), data)


# -- results -------------------------------------------------------------------------

PREDICT_WHICH = ("linear", "mean", "prob_uncensored", "conditional_mean")


def censored_prediction(mu, sigma, lo, hi, which: str) -> np.ndarray:
    """Predictions of a censored normal response with latent mean ``mu`` and scale
    ``sigma`` (scalar or per row) between the limits ``lo`` and ``hi``.

    ``which``: ``"linear"`` (mu), ``"prob_uncensored"``, ``"conditional_mean"``
    (E[y* | lo < y* < hi]) or ``"mean"`` (E[y], the limits weighted by their
    probabilities plus the middle).
    """
    if which == "linear":
        return mu
    sigma = np.broadcast_to(np.asarray(sigma, dtype=float), np.shape(mu))
    a = (lo - mu) / sigma
    b = (hi - mu) / sigma
    mom = np.empty((len(mu), 5))
    censnorm.truncnorm_moments(np.ascontiguousarray(a), np.ascontiguousarray(b), mom)
    prob = np.exp(mom[:, 0])
    cmean = mu + sigma * mom[:, 1]
    if which == "prob_uncensored":
        return prob
    if which == "conditional_mean":
        return cmean
    pl = np.where(np.isfinite(lo), stats.norm.cdf(a), 0.0)
    pr = np.where(np.isfinite(hi), stats.norm.sf(b), 0.0)
    return (np.where(pl > 0, lo, 0.0) * pl + np.where(pr > 0, hi, 0.0) * pr + prob * cmean)


def censoring_rows(m) -> list:
    """Summary-header rows counting left, right, interval-censored and exact observations."""
    rows = [("Left-censored:", [str(m.n_left)]), ("Right-censored:", [str(m.n_right)])]
    if m.n_interval:
        rows.append(("Interval-censored:", [str(m.n_interval)]))
    rows.append(("Uncensored:", [str(m.n_exact)]))
    return rows


class CensoredResults(EMResults):
    """Results of a Tobit or interval regression.

    Adds the scale, predictions and marginal effects to :class:`EMResults`.
    """

    def plot_residuals(self, ax=None):
        """Latent residuals y* - x'beta against the linear predictor x'beta, by kind of
        observation.

        For an uncensored row y* is the response; for a censored row only a bound is
        known (y* at most the limit when left-censored, at least it when right-censored),
        so the point drawn is that bound; an interval's point is at its midpoint.

        Parameters
        ----------
        ax : matplotlib Axes, optional
            Axes to draw on (default: a new figure).

        Returns
        -------
        matplotlib Axes
        """
        from ..inference.plots import residuals

        lo, hi = self.model.data["lo"], self.model.data["hi"]
        kinds = np.select([lo == hi, np.isneginf(lo), np.isposinf(hi)],
                          ["uncensored", "left-censored (residual at most)",
                           "right-censored (residual at least)"], "interval (midpoint)")
        y = np.where(lo == hi, lo, np.where(np.isneginf(lo), hi,
                                            np.where(np.isposinf(hi), lo, 0.5 * (lo + hi))))
        fitted = np.asarray(self.predict(which="linear"), dtype=float)
        return residuals(fitted, y - fitted, kinds=kinds, ax=ax, smooth=False,
                         xlabel="linear predictor x'beta (the latent mean)",
                         ylabel="latent residual y* - x'beta",
                         title=f"{type(self.model).__name__}: latent residuals against the "
                               "linear predictor")

    @property
    def scale(self) -> float:
        """The standard deviation of the latent errors, exp(Log(scale))."""
        return float(np.exp(self.params.iloc[-1]))

    @property
    def scale_se(self) -> float:
        """Delta-method standard error of the scale."""
        return float(self.scale * self.bse.iloc[-1])

    def _summary_rows(self):
        m = self.model
        left = censoring_rows(m)
        right = [("Scale:", [f"{self.scale:#.6g} ({self.scale_se:.3g})"])]
        if m.n_dropped:
            right.append(("Rows dropped (NA):", [str(m.n_dropped)]))
        return left, right

    # -- prediction -------------------------------------------------------------------
    def _exog_offset(self, exog, offset):
        m = self.model
        if exog is None:
            return m.X, m.offset
        if isinstance(exog, (pd.DataFrame, dict)) and m.design_info is not None:
            X = new_exog(m.design_info, exog)
        else:
            X = np.atleast_2d(np.asarray(exog, dtype=float))
        if X.shape[1] != m.k_exog:
            raise DataError(f"new exog has {X.shape[1]} columns, the model has {m.k_exog}")
        from_formula = (isinstance(exog, (pd.DataFrame, dict)) and m.design_info is not None
                        and m.design_info.has_offset)
        if offset is None:
            if m.has_offset and (not from_formula or getattr(m, "explicit_offset", True)):
                raise DataError("the model has an offset: pass offset= for the new data")
            off = np.zeros(X.shape[0])
        else:
            off = resolve_column(offset, exog if isinstance(exog, pd.DataFrame) else None,
                                 "offset", X.shape[0])
        if from_formula:                 # the formula's offset() terms on the new data
            off = off + m.design_info.offset(exog)
        return X, off

    def _limits(self, n, exog, censor_left, censor_right, default_data: bool):
        m = self.model
        frame = exog if isinstance(exog, pd.DataFrame) else None
        if default_data and censor_left is None and censor_right is None and \
                "left" in m.censoring:
            return m.censoring["left"], m.censoring["right"]
        if censor_left is None and censor_right is None:
            if not isinstance(m, Tobit):
                raise DataError("pass censor_left= and/or censor_right= to predict censored "
                                "quantities for an interval regression")
            for side, val in (("censor_left", m.censor_left), ("censor_right", m.censor_right)):
                if val is not None and not np.isscalar(val):
                    raise DataError(f"the model has per-row {side}: pass {side}= for new data")
            censor_left, censor_right = m.censor_left, m.censor_right
        lo = resolve_column(-np.inf if censor_left is None else censor_left, frame,
                            "censor_left", n)
        hi = resolve_column(np.inf if censor_right is None else censor_right, frame,
                            "censor_right", n)
        return lo, hi

    def _predict_from(self, theta, X, off, lo, hi, which):
        return censored_prediction(X @ theta[:-1] + off, float(np.exp(theta[-1])), lo, hi,
                                   which)

    def predict(self, exog=None, which: str = "mean", *, offset=None, censor_left=None,
                censor_right=None) -> pd.Series | np.ndarray:
        """Predictions for the estimation data or new data.

        Parameters
        ----------
        exog : DataFrame or array_like, optional
            New data; a DataFrame goes through the formula's design information.
            Default: the estimation data.
        which : {"mean", "linear", "prob_uncensored", "conditional_mean"}
            ``"linear"``: the latent mean x'beta + offset; ``"mean"``: E[y] of the
            censored response; ``"prob_uncensored"``: P(lower < y* < upper);
            ``"conditional_mean"``: E[y* | lower < y* < upper].
        offset : scalar, column name or array, optional
            Offset for new data (required when the model has one).
        censor_left, censor_right : scalar, column name or array, optional
            Censoring limits for new data (default: the model's scalar limits).

        Returns
        -------
        pandas.Series (DataFrame input or estimation data) or ndarray
        """
        if which not in PREDICT_WHICH:
            raise ValueError(f"which must be one of {PREDICT_WHICH}, got {which!r}")
        X, off = self._exog_offset(exog, offset)
        if which == "linear":
            lo = hi = None
        else:
            lo, hi = self._limits(X.shape[0], exog, censor_left, censor_right, exog is None)
        pred = self._predict_from(self.params.to_numpy(), X, off, lo, hi, which)
        if exog is None:
            return pd.Series(pred, index=self.model.row_labels, name=which)
        if isinstance(exog, pd.DataFrame):
            return pd.Series(pred, index=exog.index, name=which)
        return pred

    def get_margeff(self, at="overall", which: str = "mean", *, dummy: bool = True,
                    variables=None) -> MarginalEffects:
        """Marginal effects of the variables, with delta-method standard errors.

        For a model built from a formula the effects are on the user's variables, through
        the formula (a variable in ``np.log(x)``, ``I(x**2)`` or an interaction gets one
        total effect); levels of categorical variables, booleans and (with ``dummy``) 0/1
        variables get discrete changes from the reference level.  For a model built from
        arrays they are on the non-constant design columns.  The derivative of the
        prediction ``which`` in the latent mean mu = x'beta + offset is McDonald and
        Moffitt's (1980): 1 for ``"linear"`` (the latent effect is beta), P(uncensored)
        for ``"mean"`` (the unconditional mean of the censored response), Var[z |
        uncensored] for ``"conditional_mean"`` (E[y* | uncensored]) and
        (phi(a) - phi(b)) / sigma for ``"prob_uncensored"``, with a, b the standardised
        limits.

        Parameters
        ----------
        at : {"overall", "mean", "median"} or dict
            ``"overall"``: the (frequency-weighted) average of the effects over the rows;
            ``"mean"`` / ``"median"``: the effects at one row with each numeric variable at
            its mean / median and each categorical one at its most frequent level (the
            censoring limits at their mean when finite); a dict ``{variable: value}``:
            those variables set to the values in every row, the effects averaged.
        which : {"mean", "linear", "prob_uncensored", "conditional_mean"}
            The prediction, as in :meth:`predict`.
        dummy : bool
            Discrete changes 0 -> 1 for numeric variables taking only the values 0 and 1
            (default); ``False`` differentiates them.
        variables : list of str, optional
            The variables to report (default: all).

        Returns
        -------
        emstats.inference.margins.MarginalEffects
        """
        if which not in PREDICT_WHICH:
            raise ValueError(f"which must be one of {PREDICT_WHICH}, got {which!r}")
        m = self.model
        terms = m.design_info
        if m.data is None:
            raise DataError("these results hold no data (remove_data() was called): "
                            "marginal effects need the estimation rows")
        names = list(m.exog_names)
        frame = (estimation_frame(self) if terms is not None
                 else pd.DataFrame(m.X, columns=names, index=m.row_labels))
        if "left" in m.censoring:
            lo_all, hi_all = m.censoring["left"], m.censoring["right"]
        else:
            lo_all = np.where(m.lo == m.hi, -np.inf, m.lo)
            hi_all = np.where(m.lo == m.hi, np.inf, m.hi)
        off = np.asarray(m.offset, dtype=float)
        if terms is not None and terms.has_offset:
            off = off - terms.offset(frame)

        def build(fr, fixed):
            X = terms.matrix(fr) if terms is not None else fr[names].to_numpy(dtype=float)
            o = fixed["off"]
            if terms is not None and terms.has_offset:
                o = o + terms.offset(fr)
            return {"X": X, "off": o, "lo": fixed["lo"], "hi": fixed["hi"]}

        def response(theta, inp, grad):
            beta, sigma = theta[:-1], float(np.exp(theta[-1]))
            mu = inp["X"] @ beta + inp["off"]
            lo, hi = inp["lo"], inp["hi"]
            pred = censored_prediction(mu, sigma, lo, hi, which)
            if not grad:
                return pred, {}
            if which == "linear":
                f = np.ones_like(mu)
            else:
                a, b = (lo - mu) / sigma, (hi - mu) / sigma
                mom = np.empty((len(mu), 5))
                censnorm.truncnorm_moments(np.ascontiguousarray(a), np.ascontiguousarray(b),
                                           mom)
                if which == "mean":
                    f = np.exp(mom[:, 0])
                elif which == "conditional_mean":
                    f = mom[:, 2]
                else:
                    pa = np.where(np.isfinite(a), stats.norm.pdf(a), 0.0)
                    pb = np.where(np.isfinite(b), stats.norm.pdf(b), 0.0)
                    f = (pa - pb) / sigma
            return pred, {"X": f[:, None] * beta[None, :], "off": f}

        return marginal_effects(
            self.params.to_numpy(), self._cov, build=build, response=response, frame=frame,
            fixed={"off": off, "lo": lo_all, "hi": hi_all}, weights=m.w,
            terms=None if terms is None else [terms], at=at, which=which, dummy=dummy,
            variables=variables)


CensoredRegression.results_class = CensoredResults


# ----------------------------------------------------------------------------------
# online EM
# ----------------------------------------------------------------------------------

class TobitAdapter:
    """Online EM statistics of Tobit regression.

    Per-row averages of (X'WX, X'W E[y* - offset], sum w E[(y* - offset)^2], sum w)
    over a batch; the M-step is weighted least squares on them:
    beta = G^-1 t1, sigma^2 = (t2 - beta' t1) / wbar.  Each batch is checked and
    its conditional moments computed by an :class:`emstats.Tobit` model built on
    the batch alone (its ``chunk_stats``, about a zero reference so that batches add).
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
        names = batch_columns(X, self.exog_names, "the batch's X")
        Xa = as_2d(X, "X")
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
        # statistics about a zero reference, so that batches add up; a batch is checked
        # for its columns and values only (all rows censored, a constant dummy or three
        # rows are ordinary batches): identification is the pooled data's business
        return Tobit(ya, Xa, censor_left=left, censor_right=right, weights=weights,
                     offset=offset, exog_names=self.exog_names, centre=np.zeros(p),
                     identify=False)

    @staticmethod
    def pool(models):
        """One batch of the rows of ``models`` (batches waiting for identification)."""
        if len(models) == 1:
            return models[0]
        cat = {k: np.concatenate([m.data[k] for m in models])
               for k in ("X", "lo", "hi", "w", "offset")}
        return CensoredRegression(cat["lo"], cat["hi"], cat["X"], weights=cat["w"],
                                  offset=cat["offset"], exog_names=models[0].exog_names,
                                  centre=np.zeros(cat["X"].shape[1]), identify=False)

    def initialize(self, model):
        """The MLE of the first batch, or of the first batches pooled until they identify
        the model (EM from least squares); a :class:`DataError` while they do not."""
        ident = CensoredRegression(model.lo, model.hi, model.X,
                                   weights=model.w if model.has_weights else None,
                                   offset=model.offset if model.has_offset else None,
                                   exog_names=model.exog_names)
        run = run_em(ident, None, method="em", maxiter=self.init_maxiter, tol=1e-8, warn=False,
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
    See :class:`emstats.em.online.OnlineEM`.
    """
    return OnlineEM(TobitAdapter(censor_left, censor_right, exog_names, n_threads),
                    alpha=alpha, warmup=warmup, burn_in=burn_in, max_trace=max_trace)
