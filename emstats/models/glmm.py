"""Random-intercept logistic regression by EM with adaptive Gauss-Hermite quadrature.

The model, for rows j of group i,

    y_ij | b_i ~ Binomial(n_ij, expit(x_ij'beta + b_i)),     b_i ~ N(0, tau^2),

with the random intercepts b_i as the missing data.  Parameters are ``(beta, log
tau)``; the same vector serves the engine and inference (standard errors of the
random-intercept SD by the delta method).

The model is a :class:`~emstats.em.protocol.ChunkedModel`: its data are an
:class:`~emstats.em.data.ArrayData` of the rows sorted by group with ``unit_bounds``
at the group boundaries, so every chunk holds whole groups.

**E-step (``chunk_stats``), deterministic.**  For each group the Cython kernel
:func:`emstats._kernels.glmm_kernels.agq_groups` finds the mode m_i of
h_i(b) = log p(y_i | b) + log N(b; 0, tau^2) (Newton with step halving, h_i is
strictly concave) and the curvature H_i = -h_i''(m_i), and puts ``n_agq`` adaptive
Gauss-Hermite nodes b_ik = m_i + z_k / sqrt(H_i) there.  The normalised integrand
at the nodes gives posterior weights w_ik of the random effect that are exact up to
quadrature, and its sum the group's marginal likelihood.  The additive statistics
of a chunk are, with W_ij = n_ij E[p_ij (1 - p_ij) | y_i] and E[p_ij | y_i] the
posterior means over the nodes,

* ``xwx`` = sum_ij W_ij x_ij x_ij' and ``xwz`` = sum_ij x_ij (W_ij x_ij'beta +
  y_ij - n_ij E[p_ij | y_i]) -- the weighted sums of one IRLS (Newton) step on
  Q(beta | beta_t), each about the chunk's own beta_t;
* ``eb2`` = sum_i E[b_i^2 | y_i] and ``n_units`` = the number of groups.

The log-likelihood returned with them is the AGQ marginal log-likelihood
(binomial coefficients included: the criterion of ``lme4::glmer(..., nAGQ =
n_agq)``, the same number :meth:`~RandomInterceptLogit.loglike` reports).

**M-step (``m_step``).**  beta <- xwx^-1 xwz (one Newton step on the expected
complete-data log-likelihood Q, which is concave in beta; a generalised EM with
EM's fixed points and, near them, EM's rate -- Lange 1995) and, in closed form,
tau^2 <- eb2 / n_units.

**Default method: Louis-Newton.**  ``chunk_louis`` gives the log-likelihood, the
observed score and Louis' (1982) pieces with the posterior moments by the same
quadrature, so the default scheme is Newton's method with Louis' observed
information (EM step as the fall-back).  Chosen by measurement
(benchmarks/bench_glmm.py and cbpp, 2 threads on a loaded 2-core machine, the
standard errors included): on cbpp Newton reaches glmer's optimum in 4 iterations
(0.10 s), SQUAREM in 12 EM steps (0.33 s); on simulated item responses (7,584
rows, 316 groups) Newton takes 5 iterations, SQUAREM 2-2.5x its time, and plain
EM (rate = the fraction of missing information, 0.71 on cbpp) 23 iterations and
2x the time and stops 7e-4 short of the optimum at ``tol = 1e-8``.

**Monte Carlo EM (``method="mcem"`` or ``"stochastic"``).**  Still available
through the ``sample_stats`` hook:

* ``sample_stats`` draws the intercepts of every group by importance sampling
  (Booth & Hobert 1999; exact rejection sampling for a single draw, as
  stochastic EM needs): a Student t proposal with ``df_proposal`` degrees of
  freedom centred at the mode with the Laplace scale.  The importance weights are
  kept unnormalised, relative to a reference that depends only on the
  parameters, so batches of draws combine exactly (``average_stats``
  concatenates them).
* ``m_step`` on :class:`ImportanceDraws` maximises the Monte Carlo estimate of
  Q: beta by Newton's method to convergence on the importance-weighted logistic
  log-likelihood over the draws, and tau^2 = (1/G) sum_i E[b_i^2].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import special

from .._config import resolve_threads
from .._kernels import glmm_kernels
from ..components.glm import separating_direction
from ..em.data import ROW_BLOCK, ArrayData, Chunk
from ..em.protocol import ChunkedModel
from ..em.stats import Stats
from ..exceptions import DataError, SingularDesignError
from ..exceptions import describe_rows as _labels
from ..formula import Terms, build_design, capture_env, cbind_response, data_frame, new_exog
from ..inference.fit import FitMixin
from ..inference.results import EMResults

#: draws per block in the Monte Carlo passes (bounds the memory at _CHUNK x rows)
_CHUNK = 2048
#: rows of a block of the pooled Newton fit's per-row temporaries
_NEWTON_ROWS = 16384


def _log1pexp(x: np.ndarray) -> np.ndarray:
    """log(1 + exp(x)) without overflow."""
    return np.logaddexp(0.0, x)


#: (family, link) -> the kernel's family code
FAMILIES = {("binomial", "logit"): 0, ("binomial", "probit"): 1, ("poisson", "log"): 2}
_DEFAULT_LINK = {"binomial": "logit", "poisson": "log"}
_TITLES = {0: "Random-Intercept Logistic Regression Results",
           1: "Random-Intercept Probit Regression Results",
           2: "Random-Intercept Poisson Regression Results"}


def _family_code(family: str, link: str | None) -> tuple[str, str, int]:
    """Validate ``family`` and ``link``: ``(family, link, kernel code)``."""
    fams = sorted(_DEFAULT_LINK)
    if not isinstance(family, str) or family.lower() not in _DEFAULT_LINK:
        raise ValueError(f"family must be one of {fams}, got {family!r}")
    family = family.lower()
    link = _DEFAULT_LINK[family] if link is None else link
    if (family, link) not in FAMILIES:
        ok = [lk for f, lk in FAMILIES if f == family]
        raise ValueError(f"link {link!r} is not available for family {family!r} "
                         f"(links: {ok})")
    return family, link, FAMILIES[(family, link)]


def _row_terms(code: int, eta: np.ndarray, y: np.ndarray, n: np.ndarray):
    """Per-row log-density (no constants), score d/d eta and observed curvature
    -d^2/d eta^2 of the family ``code`` at ``eta`` (arrays broadcast), as the kernel."""
    if code == 0:
        p = special.expit(eta)
        return y * eta - n * _log1pexp(eta), y - n * p, n * p * (1.0 - p)
    if code == 1:
        lphi = -0.5 * eta * eta - 0.5 * np.log(2.0 * np.pi)
        l1 = np.exp(lphi - special.log_ndtr(eta))      # phi / Phi
        l0 = np.exp(lphi - special.log_ndtr(-eta))     # phi / (1 - Phi)
        ll = (np.where(y > 0, y * special.log_ndtr(eta), 0.0)
              + np.where(n - y > 0, (n - y) * special.log_ndtr(-eta), 0.0))
        return ll, y * l1 - (n - y) * l0, y * l1 * (eta + l1) + (n - y) * l0 * (l0 - eta)
    mu = np.exp(eta)
    return y * eta - mu, y - mu, mu


def _factorize(g):
    """``pd.factorize(g, sort=True)`` with object levels; integer codes of a moderate range
    by counting (pandas' hash table of n entries would be the fit's largest array)."""
    if isinstance(g, np.ndarray) and g.dtype.kind in "iu" and g.size:
        lo, hi = int(g.min()), int(g.max())
        if hi - lo <= 4 * g.size + 1024:
            present = np.bincount(g - lo if lo else g, minlength=hi - lo + 1) > 0
            rank = np.cumsum(present) - 1
            codes = rank[g - lo] if lo else rank[g]
            return codes, np.asarray(np.flatnonzero(present) + lo, dtype=object)
    codes, uniques = pd.factorize(g, sort=True)
    if isinstance(g, np.ndarray):
        uniques = np.asarray(uniques, dtype=object)
    return codes, uniques


def _xwx_xwz(X: np.ndarray, wt: np.ndarray, xb=None, mu=None):
    """X' W X and (with ``xb`` and ``mu``) X' (W xb + mu) for W = diag(wt), by blocks of
    ROW_BLOCK rows (for at most ROW_BLOCK rows: the whole-array products)."""
    xwx = xwz = 0.0
    for r0 in range(0, X.shape[0], ROW_BLOCK):
        rows = slice(r0, r0 + ROW_BLOCK)
        Xb, wb = X[rows], wt[rows]
        xwx = xwx + Xb.T @ (Xb * wb[:, None])
        if xb is not None:
            xwz = xwz + Xb.T @ (wb * xb[rows] + mu[rows])
    return xwx, xwz


def _inverse_link(code: int, eta: np.ndarray) -> np.ndarray:
    """The mean of a row (probability or Poisson mean) at the linear predictor."""
    if code == 0:
        return special.expit(eta)
    if code == 1:
        return special.ndtr(eta)
    return np.exp(eta)


@dataclass(frozen=True)
class ImportanceDraws:
    """Weighted draws of the random intercepts (the simulated E-step statistics).

    Attributes
    ----------
    b : ndarray, shape (m, G)
        ``m`` draws of each group's intercept.
    logw : ndarray, shape (m, G)
        Log importance weights, unnormalised but relative to a reference that
        depends only on the parameters (so draws of several batches at the same
        parameters can be pooled).
    exact : bool
        The draws are exact posterior draws (rejection sampling; weights all 0).
    """

    b: np.ndarray
    logw: np.ndarray
    exact: bool = False

    def normalised_weights(self) -> np.ndarray:
        """Self-normalised weights, summing to one over the draws of each group."""
        w = np.exp(self.logw - self.logw.max(axis=0))
        return w / w.sum(axis=0)

    def effective_size(self) -> np.ndarray:
        """Kish's effective sample size per group, 1 / sum w^2."""
        w = self.normalised_weights()
        return 1.0 / np.sum(w * w, axis=0)


def _kernel_trials(chunk):
    """The trials the quadrature kernels read: the chunk's column, or for a constant column
    (a broadcast, one trial per row) that value for the largest group's rows, shared by
    every group (``nt_shared``)."""
    nt = chunk["n"]
    if nt.ndim == 1 and nt.size > 1 and nt.strides[0] == 0:
        largest = int(np.diff(np.asarray(chunk.unit_bounds)).max(initial=1))
        return np.full(largest, float(nt[0])), True
    return np.ascontiguousarray(nt, dtype=float), False


class RandomInterceptGLMM(FitMixin, ChunkedModel):
    """Binomial (logit or probit) or Poisson (log) regression with a normal random
    intercept per group.

    Parameters
    ----------
    endog : array_like, shape (n,)
        Binomial: successes, 0/1 without ``trials``, counts in ``0..trials`` with
        it.  Poisson: non-negative integer counts.
    exog : array_like, shape (n, p)
        Fixed-effects design (include a constant column yourself).
    groups : array_like, shape (n,)
        Group labels (any hashable values; no missing values).
    trials : array_like, optional
        Number of binomial trials per row (positive integers; binomial only).
    family : {"binomial", "poisson"}
        Distribution of the response given the random intercept.
    link : {"logit", "probit", "log"}, optional
        Link function: ``"logit"`` (default) or ``"probit"`` for the binomial,
        ``"log"`` (default) for the Poisson.
    offset : array_like, optional
        A known term added to the linear predictor of each row (e.g. a log
        exposure).
    n_agq : int
        Nodes of the adaptive Gauss-Hermite quadrature of the E-step, the
        log-likelihood and Louis' pieces.
    df_proposal : float
        Degrees of freedom of the Student t importance proposal.
    exog_names, endog_name, group_name : str
        Labels for output.
    row_labels : pandas.Index, optional
        Labels of the rows, used in error messages.
    n_dropped : int
        Rows removed because of missing values (reported in the summary).
    design_info : patsy.DesignInfo, optional
        The fixed-effects design of a model built from a formula (for prediction).
    offset_spec : str, optional
        Internal: the column name the offset came from (recomputed on new data).

    Notes
    -----
    Most users build this model with :func:`emstats.glmm` (or
    :func:`emstats.glmm_logit`).  The default
    fit is Louis-Newton on the exact (quadrature) E-step; Monte Carlo EM is
    ``fit(method="mcem")``.  See the module docstring and ``docs/glmm.md``.
    The caller's arrays are not modified: the model keeps its own copy of the
    rows, sorted by group (``order`` maps them back).
    """

    has_exact_e_step = True
    #: the M-step is one Newton step for beta (shortened by the engine if it overshoots)
    m_step_exact = False

    def __init__(self, endog, exog, groups, trials=None, *, family: str = "binomial",
                 link: str | None = None, offset=None, n_agq: int = 25,
                 df_proposal: float = 5.0, exog_names: list[str] | None = None,
                 endog_name: str = "y", group_name: str = "group",
                 row_labels: pd.Index | None = None, n_dropped: int = 0,
                 design_info: Terms | None = None, offset_spec: str | None = None):
        self.family, self.link, self._code = _family_code(family, link)
        self.summary_title = _TITLES[self._code]
        X = np.asarray(exog, dtype=float)
        if X.ndim == 1:
            X = X[:, None]
        if X.ndim != 2:
            raise DataError(f"exog must be 2-dimensional, got shape {X.shape}")
        n, p = X.shape
        if n == 0:
            raise DataError("no observations (0 rows)")
        labels = pd.RangeIndex(n) if row_labels is None else pd.Index(row_labels)
        y = np.asarray(endog, dtype=float)
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.ndim != 1 or y.shape[0] != n:
            raise DataError(f"endog must be one column of {n} rows, got shape {y.shape}")
        self.exog_names = list(exog_names) if exog_names is not None else [
            f"x{j}" for j in range(p)]
        if len(self.exog_names) != p:
            raise DataError(f"{len(self.exog_names)} exog_names for {p} columns")
        bad = ~np.all(np.isfinite(X), axis=1)
        if bad.any():
            raise DataError(f"exog has non-finite values in rows {_labels(labels, bad)}")
        if np.isnan(y).any():
            raise DataError(f"response {endog_name!r} has missing values in rows "
                            f"{_labels(labels, np.isnan(y))}")
        if offset is None:      # zero offsets: a read-only broadcast (not read by kernels)
            off = np.broadcast_to(0.0, (n,))
        else:
            off = np.broadcast_to(np.asarray(offset, dtype=float).ravel(), (n,)).copy() \
                if np.ndim(offset) == 0 or np.size(offset) == n else None
            if off is None:
                raise DataError(f"offset has {np.size(offset)} values but the data have {n} "
                                "rows")
            bad = ~np.isfinite(off)
            if bad.any():
                raise DataError(f"offset has non-finite values in rows {_labels(labels, bad)}")
        if self.family == "poisson":
            if trials is not None:
                raise DataError("trials= is for the binomial family; a Poisson model takes "
                                "an offset (e.g. offset=np.log(exposure)) instead")
            nt = np.broadcast_to(1.0, (n,))       # unused by the Poisson: a broadcast
            bad = (y < 0) | (y != np.round(y)) | ~np.isfinite(y)
            if bad.any():
                raise DataError(f"response {endog_name!r} must be a non-negative integer "
                                f"count for family='poisson'; rows {_labels(labels, bad)}")
        elif trials is None:
            nt = np.broadcast_to(1.0, (n,))       # one trial per row: a broadcast
            bad = (y != 0) & (y != 1)
            if bad.any():
                raise DataError(
                    f"response {endog_name!r} takes values other than 0 and 1 in rows "
                    f"{_labels(labels, bad)}; for binomial counts pass trials= (the column "
                    "of numbers of trials)")
        else:
            nt = np.asarray(trials, dtype=float).ravel()
            if nt.shape[0] != n:
                raise DataError(f"trials has {nt.shape[0]} rows but the data have {n}")
            bad = ~np.isfinite(nt) | (nt < 1) | (nt != np.round(nt))
            if bad.any():
                raise DataError(f"trials must be positive integers; rows {_labels(labels, bad)}")
            bad = (y < 0) | (y != np.round(y))
            if bad.any():
                raise DataError(f"response {endog_name!r} must be a non-negative integer count "
                                f"with trials=; rows {_labels(labels, bad)}")
            bad = y > nt
            if bad.any():
                raise DataError(f"response {endog_name!r} exceeds the number of trials in rows "
                                f"{_labels(labels, bad)}")
        g_num = groups.to_numpy() if isinstance(groups, pd.Series) else np.asarray(groups)
        if g_num.ndim == 1 and g_num.dtype.kind in "biuf":
            # numeric groups are factorised as they are (no n Python objects); the levels
            # are made objects as those of the general path
            g_raw = g_num
        else:
            g_raw = pd.Series(np.asarray(groups, dtype=object)
                              if not isinstance(groups, pd.Series)
                              else groups.to_numpy(dtype=object))
        del g_num
        if len(g_raw) != n:
            raise DataError(f"groups has {len(g_raw)} values but the data have {n} rows")
        miss = np.asarray(pd.isna(g_raw))
        if miss.any():
            raise DataError(f"group column {group_name!r} has missing values in rows "
                            f"{_labels(labels, miss)}")
        if self.family == "poisson" and np.all(y == 0):
            raise DataError(f"response {endog_name!r} is 0 in every row: the intercept "
                            "diverges to -inf and the model is not identified")
        if self.family == "binomial" and (np.all(y == 0) or np.all(y == nt)):
            what = "0 (no successes)" if np.all(y == 0) else (
                "1" if trials is None else "the number of trials")
            raise DataError(f"response {endog_name!r} is {what} in every row: the intercept "
                            "diverges and the model is not identified")
        codes, uniques = _factorize(g_raw)
        del g_raw
        G = len(uniques)
        if G < 2:
            raise DataError(f"group column {group_name!r} has {G} level(s); the random-intercept "
                            "variance needs at least 2 groups")
        if self.family == "binomial" and np.bincount(codes, weights=nt, minlength=G).max() <= 1:
            raise DataError(f"every group of {group_name!r} has a single binary outcome (one "
                            "row, one trial): the random-intercept variance is not identified "
                            "(the outcomes' distribution depends on the intercept and the "
                            "variance only through one probability); use a plain logit, or "
                            "groups with several rows")
        if n < p or np.linalg.matrix_rank(X) < p:
            raise SingularDesignError(
                f"the fixed-effects design matrix (columns {', '.join(self.exog_names)}) does "
                "not have full column rank")

        # rows sorted by group (copies: the caller's data stay as they are), so that a
        # group is a contiguous unit of the chunked data
        order = np.argsort(codes, kind="stable")
        if n < 2 ** 31:     # row and group indices in 32 bits (half the memory)
            order = order.astype(np.int32)
        self.order = order
        self.row_order = order        # data rows in the caller's order (for groups=)
        self.g = np.ascontiguousarray(codes[order], dtype=order.dtype)
        del codes
        self.starts = np.flatnonzero(np.r_[True, np.diff(self.g) != 0])
        # rows already in group order (the usual layout of grouped data) are not copied:
        # read-only views; constant trials and zero offsets need no reordering either
        in_order = bool(np.all(order[1:] > order[:-1]))

        def sort(a):
            if in_order:
                v = np.ascontiguousarray(a).view()
                v.flags.writeable = False
                return v
            return a[order]
        y_s = sort(y)
        nt_s = nt if trials is None else sort(nt)     # the broadcast stays one
        # the constants of the rows' densities (lme4's logLik includes them): log binomial
        # coefficients, or -log y! for the Poisson
        if self.family == "poisson":
            logchoose = -special.gammaln(y_s + 1)
        elif trials is None:    # 0/1 outcomes: log C(1, y) = 0 in every row, a broadcast
            logchoose = np.broadcast_to(0.0, (n,))
        else:
            logchoose = special.gammaln(nt_s + 1)
            logchoose -= special.gammaln(y_s + 1)
            logchoose -= special.gammaln(nt_s - y_s + 1)
        self.data = ArrayData({"X": sort(X), "y": y_s, "n": nt_s,
                               "off": off if offset is None else sort(off),
                               "logchoose": logchoose},
                              unit_bounds=np.r_[self.starts, n])
        del X, y, nt, off
        self.X = self.data["X"]
        self.y = self.data["y"]
        self.ntrials = self.data["n"]
        self.offset = self.data["off"]
        self.has_offset = offset is not None
        self.offset_spec = offset_spec
        self.group_levels = pd.Index(uniques)
        self.group_sizes = np.diff(np.r_[self.starts, n])
        self.n_groups = G
        self.k_exog = p
        self.has_trials = trials is not None
        self.endog_name = endog_name
        self.group_name = group_name
        self.row_labels = labels
        self.n_dropped = int(n_dropped)
        self.design_info = design_info
        self.n_agq = int(n_agq)
        if self.n_agq < 1:
            raise ValueError(f"n_agq must be >= 1, got {n_agq!r}")
        self.df_proposal = float(df_proposal)
        self._logchoose = float(np.sum(logchoose))
        z, w = np.polynomial.hermite.hermgauss(self.n_agq)
        self._gh_z = z * np.sqrt(2.0)                  # nodes for N(0, 1)
        self._gh_logw = np.log(w) + z * z + 0.5 * np.log(2.0)   # log of w e^{z^2} sqrt(2)
        self.param_names = list(self.exog_names) + [f"Log({group_name} SD)"]

    # -- helpers --------------------------------------------------------------------
    def _split(self, params):
        theta = np.asarray(params, dtype=float)
        return theta[:-1], float(np.exp(theta[-1]))

    def _gsum(self, a: np.ndarray) -> np.ndarray:
        """Sum over the rows of each group along the last axis."""
        return np.add.reduceat(a, self.starts, axis=-1)

    def _cond_loglik(self, eta0: np.ndarray, b: np.ndarray) -> np.ndarray:
        """sum_j log p(y_ij | b) for intercepts ``b`` of shape (..., G) (no constants);
        ``eta0`` includes the offset."""
        eta = eta0 + b[..., self.g]
        return self._gsum(_row_terms(self._code, eta, self.y, self.ntrials)[0])

    def _whole(self) -> Chunk:
        """All the data as one chunk (for calls outside a fit: modes, posteriors)."""
        return self.data.chunks(1, resolve_threads(None))[0]

    def _agq(self, params, chunk: Chunk, louis: bool = False) -> dict:
        """The quadrature kernel on one chunk: per-group modes, weights and moments."""
        beta, tau = self._split(params)
        X = chunk["X"]
        G, K, q = chunk.n_units, self._gh_z.size, self.k_exog + 1
        xb = X @ beta
        eta0 = xb + chunk["off"] if self.has_offset else xb     # no n-vector of zeros
        out = {"xb": xb, "eta0": eta0, "tau": tau, "mode": np.empty(G), "curv": np.empty(G),
               "llg": np.empty(G), "w": np.empty((G, K)), "mu": np.empty(chunk.n_rows),
               "mv": np.empty(chunk.n_rows), "eb2": np.empty(G),
               "score_g": np.empty((G if louis else 0, q)),
               "miss_g": np.empty((G if louis else 0, q, q))}
        nt, shared = _kernel_trials(chunk)
        glmm_kernels.agq_groups(X, chunk["y"], nt, eta0, chunk.unit_bounds, tau,
                                self._gh_z, self._gh_logw, bool(louis), self._code,
                                out["mode"],
                                out["curv"], out["llg"], out["w"], out["mu"], out["mv"],
                                out["eb2"], out["score_g"], out["miss_g"],
                                int(chunk.n_threads), shared)
        return out

    def _valid(self, params) -> bool:
        theta = np.asarray(params, dtype=float)
        return (theta.shape == (self.k_exog + 1,) and bool(np.all(np.isfinite(theta)))
                and 0.0 < np.exp(theta[-1]) < np.inf)

    def modes(self, params) -> tuple[np.ndarray, np.ndarray]:
        """Mode of b_i -> log p(y_i | b_i) + log N(b_i; 0, tau^2), and the curvature there.

        Newton's method on each group's strictly concave log-density, with step
        halving (in the kernel); returns ``(mode, -second derivative)``, both of
        shape (G,).
        """
        r = self._agq(params, self._whole())
        return r["mode"], r["curv"]

    def _posterior(self, params):
        """Quadrature nodes (G, K) with normalised posterior weights (G, K), and X beta
        plus the offset."""
        r = self._agq(params, self._whole())
        nodes = r["mode"][:, None] + self._gh_z[None, :] / np.sqrt(r["curv"])[:, None]
        return nodes, r["w"], r["eta0"]

    # -- EM protocol ------------------------------------------------------------------
    @property
    def nobs(self) -> int:
        """Number of rows."""
        return int(self.X.shape[0])

    @property
    def df_model(self) -> float:
        """Fixed effects other than a constant, plus the random-intercept SD."""
        const = int(np.any(np.all(self.X == 1.0, axis=0)))
        return float(self.k_exog - const + 1)

    def _check_fittable(self):
        if self.n_agq < 2:
            raise ValueError(
                "n_agq=1 is the Laplace approximation: loglike() evaluates lme4's nAGQ = 1 "
                "criterion, but the EM fit needs the posterior of the random intercepts at "
                "n_agq >= 2 nodes (a single node is a point mass, whose moments do not give "
                "the Laplace criterion's gradient); fit with n_agq >= 2 (default 25)")

    def check_start(self, start_params) -> np.ndarray:
        """Validate user start values ``(beta, log tau)``."""
        self._check_fittable()
        start = np.asarray(start_params, dtype=float).ravel()
        if start.shape[0] != self.k_exog + 1 or not np.all(np.isfinite(start)):
            raise ValueError(f"start_params must hold {self.k_exog + 1} finite values "
                             f"({', '.join(self.param_names)})")
        return start

    def start_params(self) -> np.ndarray:
        """Pooled GLM of the family (no random effect) and a random-intercept SD of 0.5.

        Raises a :class:`DataError` when the fixed effects separate the outcomes
        (:meth:`separation`): the pooled fit's divergence is the signal, the linear
        programme the proof; a ``ValueError`` for ``n_agq = 1`` (the Laplace
        criterion can be evaluated, not fitted by this EM).
        """
        self._check_fittable()
        draws = ImportanceDraws(np.zeros((1, self.n_groups)), np.zeros((1, self.n_groups)))
        beta0 = np.zeros(self.k_exog)
        const = np.flatnonzero(np.all(self.X == 1.0, axis=0))
        if self.family == "poisson" and const.size:     # the intercept-only Poisson MLE
            beta0[const[0]] = np.log(np.sum(self.y) / np.sum(np.exp(self.offset)))
        try:
            beta, converged = self._newton_beta(beta0, draws, report=True)
        except FloatingPointError:
            beta, converged = None, False
        big = 25.0 if self.family == "binomial" else 50.0
        if beta is None or not converged or np.max(np.abs(self.X @ beta)) > big:
            err = self._separation_error()
            if err is not None:
                raise err
            if beta is None:
                raise FloatingPointError("singular Hessian in the pooled logistic start")
        return np.concatenate([beta, [np.log(0.5)]])

    def separation(self) -> np.ndarray | None:
        """A direction d != 0 of the fixed effects that separates the outcomes, or None.

        Separation (Albert & Anderson 1984) holds when some d has x_i'd >= 0 for every
        row with all successes, x_i'd <= 0 for every row with all failures and
        x_i'd = 0 for the rows with both, with at least one strict inequality: the
        likelihood then increases without bound along d, random intercept or not (for
        either link).  The Poisson analogue: x_i'd <= 0 for the rows with count 0 and
        x_i'd = 0 for the others (the fitted means of the zero rows go to 0).
        Found by a linear programme (:func:`~emstats.components.glm.separating_direction`).
        """
        y, nt = self.y, self.ntrials
        if self.family == "poisson":
            sgn = np.where(y == 0, -1.0, 0.0)
        else:
            sgn = np.where(y == 0, -1.0, np.where(y == nt, 1.0, 0.0))
        return separating_direction(self.X, sgn)

    def diagnose_failure(self, err: Exception) -> DataError | None:
        """A numerical failure of the fit explained by separation, when it is."""
        return self._separation_error()

    def _separation_error(self) -> DataError | None:
        d = self.separation()
        if d is None:
            return None
        eta = self.X @ d
        strict = int(np.sum(np.abs(eta) > 1e-9 * (1.0 + np.max(np.abs(eta)))))
        names = [n for n, v in zip(self.exog_names, d, strict=True) if v != 0.0]
        how = "completely" if strict == self.nobs else "quasi-completely"
        what = ("predicted with mean 0" if self.family == "poisson"
                else "predicted with probability 0 or 1")
        return DataError(
            f"the fixed effects separate the outcomes {how} (along a direction in "
            f"{', '.join(map(repr, names))}; {strict} of {self.nobs} rows "
            f"{what}): the maximum-likelihood estimate does not exist "
            "and those coefficients diverge. Drop or combine the separating variable(s), or "
            "remove the rows they predict perfectly")

    def chunk_stats(self, params, chunk: Chunk):
        """E-step of one chunk by adaptive quadrature: IRLS sums and E[b^2]; AGQ loglik.

        Returns ``(Stats(xwx, xwz, eb2, n_units), loglik)`` (see the module
        docstring), or ``(None, -inf)`` for invalid parameters.
        """
        if not self._valid(params):
            return None, -np.inf
        r = self._agq(params, chunk)
        ll = float(np.sum(r["llg"]) + np.sum(chunk["logchoose"]))
        if not np.isfinite(ll):
            return None, -np.inf
        xwx, xwz = _xwx_xwz(chunk["X"], r.pop("mv"), r.pop("xb"), r.pop("mu"))
        stats = Stats(xwx=xwx, xwz=xwz, eb2=np.sum(r["eb2"]), n_units=float(chunk.n_units))
        return stats, ll

    def chunk_louis(self, params, chunk: Chunk) -> Stats:
        """Log-likelihood, observed score and Louis' pieces of one chunk, by quadrature.

        With S_i(b) = (sum_j x_ij u_ij(b), b^2 / tau^2 - 1) the complete-data score
        of group i in (beta, log tau), u_ij the derivative of the row's log-density
        in its linear predictor (y - n p for the logit, y - mu for the Poisson):
        score = sum_i E[S_i], missing information = sum_i Var[S_i], complete
        information = sum_i E[(sum_j v_ij x x', 0; 0, 2 b^2 / tau^2)] with v_ij =
        -d u_ij / d eta (the observed curvature), all under the quadrature
        posterior of b_i.
        """
        r = self._agq(params, chunk, louis=True)
        X, p = chunk["X"], self.k_exog
        complete = np.zeros((p + 1, p + 1))
        complete[:p, :p] = _xwx_xwz(X, r["mv"])[0]
        complete[p, p] = 2.0 * float(np.sum(r["eb2"])) / r["tau"] ** 2
        return Stats(loglik=float(np.sum(r["llg"]) + np.sum(chunk["logchoose"])),
                     score=r["score_g"].sum(axis=0), complete=complete,
                     missing=r["miss_g"].sum(axis=0))

    def sample_stats(self, params, rng: np.random.Generator, size: int) -> ImportanceDraws:
        """Simulated E-step: ``size`` weighted draws of every group's random intercept.

        For ``size > 1``: importance sampling from a Student t proposal
        (``df_proposal`` degrees of freedom) centred at the mode of p(b_i | y_i)
        with the Laplace scale; log weights log p(y_i, b) - log q(b) relative to
        the value at the mode.  For ``size == 1`` (stochastic EM, where a single
        importance draw would be a draw from the proposal) exact posterior draws
        by rejection sampling, see :meth:`exact_draws`.
        """
        size = int(size)
        if size == 1:
            return self.exact_draws(params, rng, 1)
        beta, tau = self._split(params)
        eta0 = self.X @ beta + self.offset
        mode, curv = self.modes(params)
        scale = 1.0 / np.sqrt(curv)
        nu = self.df_proposal
        t = rng.standard_t(nu, size=(size, self.n_groups))
        b = mode + scale * t
        logw = np.empty_like(b)
        ref = self._cond_loglik(eta0, mode) - 0.5 * (mode / tau) ** 2
        for s in range(0, b.shape[0], _CHUNK):
            bb = b[s:s + _CHUNK]
            logw[s:s + _CHUNK] = self._cond_loglik(eta0, bb) - 0.5 * (bb / tau) ** 2
        # minus the log proposal density (up to constants shared by all draws of a group)
        logw += 0.5 * (nu + 1.0) * np.log1p(t * t / nu)
        logw -= ref
        return ImportanceDraws(b, logw)

    def exact_draws(self, params, rng: np.random.Generator, size: int,
                    max_rounds: int = 100_000) -> ImportanceDraws:
        """Exact draws from p(b_i | y_i) by rejection sampling.

        h_i(b) = log p(y_i | b) - b^2 / (2 tau^2) has h_i'' <= -1/tau^2, so
        h_i(b) <= h_i(m_i) - (b - m_i)^2 / (2 tau^2) at the mode m_i: the
        proposal N(m_i, tau^2) dominates, and a candidate is accepted with
        probability exp(h_i(b) - h_i(m_i) + (b - m_i)^2 / (2 tau^2)).  The
        acceptance rate is about (Laplace scale) / tau, so this suits few draws
        (stochastic EM) rather than large Monte Carlo samples.
        """
        beta, tau = self._split(params)
        eta0 = self.X @ beta + self.offset
        mode, _ = self.modes(params)
        ref = self._cond_loglik(eta0, mode) - 0.5 * (mode / tau) ** 2
        out = np.zeros((int(size), self.n_groups))
        todo = np.ones(out.shape, dtype=bool)
        for _ in range(int(max_rounds)):
            if not todo.any():
                break
            cand = mode + tau * rng.standard_normal(out.shape)
            la = (self._cond_loglik(eta0, cand) - 0.5 * (cand / tau) ** 2 - ref
                  + 0.5 * ((cand - mode) / tau) ** 2)
            acc = todo & (np.log(rng.random(out.shape)) < la)
            out[acc] = cand[acc]
            todo &= ~acc
        else:
            if todo.any():
                raise FloatingPointError("rejection sampling of the random intercepts did not "
                                         f"finish in {max_rounds} rounds")
        return ImportanceDraws(out, np.zeros_like(out), exact=True)

    def average_stats(self, stats: list[ImportanceDraws], weights) -> ImportanceDraws:
        """Pool batches of draws at the same parameters (the weights are implied)."""
        if len({s.exact for s in stats}) > 1:
            raise ValueError("cannot pool exact and importance-weighted draws")
        return ImportanceDraws(np.concatenate([s.b for s in stats]),
                               np.concatenate([s.logw for s in stats]))

    def _newton_beta(self, beta: np.ndarray, draws: ImportanceDraws,
                     maxiter: int = 50, report: bool = False):
        """Maximise sum_i sum_k w_ik log p(y_i | beta, b_ik) over beta by Newton's method
        (with ``report``: also whether the steps converged)."""
        w = draws.normalised_weights()
        b = draws.b
        X, y, nt = self.X, self.y, self.ntrials
        n = len(y)
        beta = np.array(beta, dtype=float)
        for _ in range(maxiter):
            # by blocks of rows (per-row temporaries of _NEWTON_ROWS rows times the draws
            # of a chunk; one block, the whole data, for up to _NEWTON_ROWS rows)
            grad, hess = 0.0, 0.0
            for r0 in range(0, n, _NEWTON_ROWS):
                rows = slice(r0, min(r0 + _NEWTON_ROWS, n))
                g, Xb = self.g[rows], X[rows]
                eta0 = Xb @ beta + self.offset[rows]
                mu = np.zeros(len(eta0))
                mv = np.zeros(len(eta0))
                for s in range(0, b.shape[0], _CHUNK):
                    ww = w[s:s + _CHUNK][:, g]
                    _, u, v = _row_terms(self._code, eta0 + b[s:s + _CHUNK][:, g], y[rows],
                                         nt[rows])
                    mu += np.sum(ww * u, axis=0)
                    mv += np.sum(ww * v, axis=0)
                grad = grad + Xb.T @ mu
                hess = hess + Xb.T @ (Xb * mv[:, None])
            try:
                step = np.linalg.solve(hess, grad)
            except np.linalg.LinAlgError:
                raise FloatingPointError("singular Hessian in the M-step for beta") from None
            big = np.max(np.abs(step))
            if big > 5.0:  # guard against overshooting from a poor start
                step *= 5.0 / big
            beta = beta + step
            if big < 1e-10 * (1.0 + np.max(np.abs(beta))):
                converged = True
                break
        else:
            converged = False
        if not np.all(np.isfinite(beta)):
            raise FloatingPointError("non-finite fixed effects in the M-step")
        return (beta, converged) if report else beta

    def m_step(self, stats, params) -> np.ndarray:
        """M-step from quadrature statistics (:class:`Stats`) or Monte Carlo draws.

        Quadrature: beta = xwx^-1 xwz (one IRLS step on Q) and tau^2 = eb2 / n_units.
        Draws (:class:`ImportanceDraws`, Monte Carlo EM): beta by Newton on the
        weighted complete-data log-likelihood to convergence; tau^2 = mean E[b^2].
        """
        if isinstance(stats, ImportanceDraws):
            beta, _ = self._split(params)
            beta = self._newton_beta(beta, stats)
            w = stats.normalised_weights()
            tau2 = float(np.sum(w * stats.b ** 2) / self.n_groups)
        else:
            try:
                beta = np.linalg.solve(stats["xwx"], stats["xwz"])
            except np.linalg.LinAlgError:
                raise FloatingPointError("singular weighted design in the M-step for beta"
                                         ) from None
            if not np.all(np.isfinite(beta)):
                raise FloatingPointError("non-finite fixed effects in the M-step")
            tau2 = float(stats["eb2"] / stats["n_units"])
        if not tau2 > 0:
            raise FloatingPointError("non-positive random-intercept variance in the M-step")
        return np.concatenate([beta, [0.5 * np.log(tau2)]])

    # -- likelihood ---------------------------------------------------------------------
    def loglike_groups(self, params) -> np.ndarray:
        """Per-group marginal log-likelihoods by adaptive Gauss-Hermite quadrature.

        The rows' constants (binomial coefficients, -log y!) are not included (see
        :meth:`loglike`).
        """
        if not self._valid(params):
            return np.full(self.n_groups, -np.inf)
        return self._agq(params, self._whole())["llg"]

    def loglike(self, params) -> float:
        """Marginal log-likelihood by adaptive Gauss-Hermite quadrature (``n_agq`` nodes).

        Includes the binomial coefficients (Poisson: -log y!), as ``lme4``'s
        ``logLik`` does for ``nAGQ = 1``; with ``n_agq = 25`` it is the criterion of
        ``glmer(..., nAGQ = 25)`` (whose ``logLik`` subtracts the saturated model's
        log-likelihood for ``nAGQ > 1``).  The same number as the E-step's.
        """
        return float(self.e_step(params)[1])

    def conditional_modes(self, params) -> pd.Series:
        """Conditional modes of the random intercepts (lme4's ``ranef``), by group."""
        mode, _ = self.modes(params)
        return pd.Series(mode, index=self.group_levels, name=f"{self.group_name} intercept")

    # -- construction and fitting -------------------------------------------------------
    @classmethod
    def from_formula(cls, formula: str, data, groups, trials=None, *, family: str = "binomial",
                     link: str | None = None, offset=None, slope: str | None = None,
                     missing: str = "drop", n_agq: int = 25,
                     eval_env=None) -> RandomInterceptGLMM:
        """Build the model from a patsy formula; see :func:`emstats.glmm`.

        Parameters
        ----------
        formula, data, groups, trials, family, link, offset, slope, missing, n_agq :
            As in :func:`emstats.glmm`.
        eval_env : patsy.EvalEnvironment or int, optional
            Where the formula's names are looked up (default: the caller's frame).
        """
        env = eval_env if eval_env is not None else capture_env(1)
        data = data_frame(data)
        if isinstance(groups, str):
            if groups not in data.columns:
                raise DataError(f"groups: column {groups!r} is not in the data (columns: "
                                f"{', '.join(map(str, list(data.columns)[:30]))})")
            gcol, gname = data[groups], groups
        else:
            gcol = pd.Series(np.asarray(groups, dtype=object), index=data.index)
            gname = "group"
            if len(gcol) != len(data):
                raise DataError(f"groups has {len(gcol)} values but data has {len(data)} rows")
        gmiss = gcol.isna().to_numpy()
        if gmiss.any():
            raise DataError(f"group column {gname!r} has missing values in rows "
                            f"{_labels(data.index, gmiss)}")
        if isinstance(trials, str) and trials not in data.columns:
            raise DataError(f"trials: column {trials!r} is not in the data")
        if isinstance(offset, str) and offset not in data.columns:
            raise DataError(f"offset: column {offset!r} is not in the data")
        extras = {}
        if trials is not None:
            extras["trials"] = trials
        if offset is not None:
            extras["__off"] = offset
        formula, is_cbind = cbind_response(formula)     # R's cbind(successes, failures)
        if is_cbind and trials is not None:
            raise DataError("cbind(successes, failures) gives the trials: do not pass trials=")
        design = build_design(formula, data, n_response=2 if is_cbind else 1, missing=missing,
                              eval_env=env, extras=extras or None, offset_key="__off")
        g = gcol.loc[design.row_labels]
        if is_cbind:
            if np.any(design.endog < 0):
                raise DataError("cbind(successes, failures): counts must be non-negative")
            tr = design.endog[:, 0] + design.endog[:, 1]
        else:
            tr = design.extras.get("trials")
        kw = {} if cls is RandomInterceptLogit else {"family": family, "link": link}
        if slope is not None:
            if cls is RandomInterceptLogit:
                raise TypeError("a random slope needs emstats.glmm (RandomSlopeGLMM)")
            if not isinstance(slope, str) or slope not in data.columns:
                raise DataError(f"slope: {slope!r} is not a column of the data")
            zcol = pd.to_numeric(data[slope].loc[design.row_labels], errors="coerce")
            if zcol.isna().any():
                raise DataError(f"slope column {slope!r} has missing or non-numeric values "
                                f"in rows {_labels(design.row_labels, zcol.isna().to_numpy())}")
            cls = RandomSlopeGLMM
            kw.update(slope=zcol.to_numpy(dtype=float), slope_name=slope)
        return cls(design.endog[:, 0], design.exog, g,
                   trials=tr, offset=design.extras.get("__off"), n_agq=n_agq,
                   exog_names=design.exog_names, endog_name=design.endog_names[0],
                   group_name=gname, row_labels=design.row_labels,
                   n_dropped=design.n_dropped, design_info=design.design_info,
                   offset_spec=offset if isinstance(offset, str) else None, **kw)

    def _rebuild(self, y, X, g, trials, offset, exog_names, **kw) -> RandomInterceptGLMM:
        """A model of the same family on other rows (null and bootstrap models)."""
        fam = {} if type(self) is RandomInterceptLogit else {"family": self.family,
                                                             "link": self.link}
        return type(self)(y, X, g, trials=trials if self.has_trials else None,
                          offset=offset if self.has_offset else None, n_agq=self.n_agq,
                          df_proposal=self.df_proposal, exog_names=exog_names,
                          endog_name=self.endog_name, group_name=self.group_name,
                          **fam, **kw)

    def null_model(self) -> RandomInterceptGLMM | None:
        """The random-intercept model without fixed regressors, with the same offset
        (None when there are none to drop)."""
        if self.k_exog <= 1:
            return None
        return self._rebuild(self.y, np.ones((self.y.size, 1)), self.g, self.ntrials,
                             self.offset, ["Intercept"])

    def bootstrap_model(self, idx: np.ndarray) -> RandomInterceptGLMM:
        """The model on groups ``idx`` (with repetition; a repeated group is a new group)."""
        rows, gid = [], []
        for new, i in enumerate(np.asarray(idx)):
            r = np.arange(self.starts[i], self.starts[i] + self.group_sizes[i])
            rows.append(r)
            gid.append(np.full(len(r), new))
        rows = np.concatenate(rows)
        return self._rebuild(self.y[rows], self.X[rows], np.concatenate(gid),
                             self.ntrials[rows], self.offset[rows], self.exog_names)


class GLMMResults(EMResults):
    """Results of a random-intercept GLMM (binomial logit or probit, Poisson log).

    Parameters are the fixed effects and the log of the random-intercept SD; the
    SD itself (lme4's "Std.Dev.") is :attr:`group_sd`, with a delta-method
    standard error :attr:`group_sd_se`.
    """

    @property
    def group_sd(self) -> float:
        """Standard deviation of the random intercepts, tau."""
        return float(np.exp(self.params.iloc[-1]))

    @property
    def group_sd_se(self) -> float:
        """Delta-method standard error of tau: tau * se(log tau)."""
        return float(self.group_sd * self.bse.iloc[-1])

    @property
    def fe_params(self) -> pd.Series:
        """The fixed effects (lme4's ``fixef``)."""
        return self.params.iloc[:-1]

    def random_effects(self) -> pd.Series:
        """Conditional modes of the random intercepts at the estimates."""
        return self.model.conditional_modes(self.params.to_numpy())

    def predict(self, newdata=None, which: str = "mean", *, groups=None) -> pd.Series:
        """Predictions for the estimation rows or new data (``docs/predict.md``).

        Parameters
        ----------
        newdata : DataFrame or array_like, optional
            New rows; a DataFrame goes through the formula's design information.
            Default: the estimation rows, in their original order.
        which : {"mean", "linear", "marginal", "fixed"}
            ``"mean"`` (default): the success probability (Poisson: the mean count)
            given the group's random intercept at its conditional mode,
            g^-1(x'beta + offset + b_hat_g) with g the link (lme4's
            ``predict(type = "response")``); ``"linear"``: x'beta + offset +
            b_hat_g; ``"fixed"``: x'beta + offset (lme4's ``re.form = NA``);
            ``"marginal"``: the population-averaged mean, the integral of
            g^-1(x'beta + offset + tau z) over z ~ N(0, 1) (by Gauss-Hermite
            quadrature with 60 nodes).  The offset of new rows comes from the
            formula's ``offset()`` terms and the ``offset=`` column of the fit.
        groups : array_like, optional
            Group labels of the new rows (default: the model's group column of a
            DataFrame ``newdata``).  A group not in the fit gets the random intercept 0,
            as lme4's ``allow.new.levels = TRUE``.

        Returns
        -------
        pandas.Series
        """
        kinds = ("mean", "linear", "marginal", "fixed")
        if which not in kinds:
            raise ValueError(f"which must be one of {kinds}, got {which!r}")
        m = self.model
        theta = self.params.to_numpy()
        beta, tau = m._split(theta)
        if newdata is None:
            X = np.empty_like(m.X)
            X[m.order] = m.X
            off = np.empty(m.nobs)
            off[m.order] = m.offset
            g = np.empty(m.nobs, dtype=np.int64)
            g[m.order] = m.g
            index = m.row_labels
        else:
            if isinstance(newdata, (pd.DataFrame, dict)) and m.design_info is not None:
                X = new_exog(m.design_info, newdata)
            else:
                X = np.atleast_2d(np.asarray(newdata, dtype=float))
            if X.shape[1] != m.k_exog:
                raise DataError(f"new data have {X.shape[1]} columns, the model has "
                                f"{m.k_exog}")
            index = getattr(newdata, "index", pd.RangeIndex(X.shape[0]))
            off = np.zeros(X.shape[0])
            if m.has_offset:
                from ..formula import resolve_column

                formula_off = m.design_info is not None and m.design_info.has_offset
                if m.offset_spec is None and not formula_off:
                    raise DataError("predict(newdata) of a model with an offset array needs "
                                    "the offset as a formula offset() term or an offset= "
                                    "column name")
                if m.offset_spec is not None:
                    off = off + resolve_column(m.offset_spec, newdata, "offset")
                if formula_off:
                    off = off + m.design_info.offset(newdata)
            if groups is None and isinstance(newdata, pd.DataFrame) \
                    and m.group_name in newdata.columns:
                groups = newdata[m.group_name]
            if groups is None:
                if which in ("mean", "linear"):
                    raise DataError(
                        f"predict(which={which!r}) on new data needs the rows' groups: pass "
                        f"groups= or a column {m.group_name!r} (or use which='marginal' or "
                        "'fixed')")
                g = np.full(X.shape[0], -1)
            else:
                gv = np.asarray(groups, dtype=object).ravel()
                if gv.shape[0] != X.shape[0]:
                    raise DataError(f"groups has {gv.shape[0]} values for {X.shape[0]} rows")
                g = m.group_levels.get_indexer(pd.Index(gv, dtype=object))
        eta = X @ beta + off
        if which == "fixed":
            out = eta
        elif which == "marginal":
            z, w = np.polynomial.hermite.hermgauss(60)
            out = _inverse_link(m._code, eta[:, None] + tau * np.sqrt(2.0) * z[None, :]) \
                @ (w / np.sqrt(np.pi))
        else:
            mode = m.modes(theta)[0]
            b = np.where(g >= 0, mode[np.maximum(g, 0)], 0.0)
            out = eta + b if which == "linear" else _inverse_link(m._code, eta + b)
        return pd.Series(out, index=index, name=which)

    def _summary_rows(self):
        m = self.model
        left = [("No. Groups:", [f"{m.n_groups} ({m.group_name})"]),
                ("Group sizes:", [f"{m.group_sizes.min()} to {m.group_sizes.max()}"])]
        right = [("Family (link):", [f"{m.family} ({m.link})"]),
                 (f"{m.group_name} SD:", [f"{self.group_sd:#.6g} ({self.group_sd_se:.3g})"]),
                 ("Quadrature:", [f"AGQ, {m.n_agq} nodes"])]
        if m.n_dropped:
            right.append(("Rows dropped (NA):", [str(m.n_dropped)]))
        return left, right


RandomInterceptGLMM.results_class = GLMMResults


class RandomInterceptLogit(RandomInterceptGLMM):
    """Logistic (binomial) regression with a normal random intercept per group: the
    ``family="binomial", link="logit"`` case of :class:`RandomInterceptGLMM`.

    Parameters
    ----------
    endog, exog, groups, trials, offset :
        As in :class:`RandomInterceptGLMM`.
    **kwargs
        The other keyword arguments of :class:`RandomInterceptGLMM` except
        ``family`` and ``link``.
    """

    def __init__(self, endog, exog, groups, trials=None, *, offset=None, **kwargs):
        if "family" in kwargs or "link" in kwargs:
            raise TypeError("RandomInterceptLogit is the binomial logit model; use "
                            "RandomInterceptGLMM (or emstats.glmm) for other families")
        super().__init__(endog, exog, groups, trials, family="binomial", link="logit",
                         offset=offset, **kwargs)


class RandomSlopeGLMM(RandomInterceptGLMM):
    """Random-intercept-and-slope GLMM: row j of group i has linear predictor
    x_ij'beta + offset_ij + b0_i + b1_i z_ij with (b0_i, b1_i) ~ N(0, Sigma).

    Parameters
    ----------
    endog, exog, groups, trials :
        As in :class:`RandomInterceptGLMM`.
    slope : array_like, shape (n,)
        The covariate z of the random slope (usually also a column of ``exog``).
    slope_name : str
        Its label.
    **kwargs
        The other keyword arguments of :class:`RandomInterceptGLMM`.

    Notes
    -----
    Sigma = L L' with L = [[a, 0], [c, d]] lower triangular; the parameters are
    ``(beta, log a, c, log d)`` (lme4's theta, with its diagonal on the log
    scale).  The E-step is a tensor-product adaptive Gauss-Hermite rule with
    ``n_agq`` x ``n_agq`` nodes at each group's mode, scaled by the Cholesky factor of
    the curvature there (:func:`emstats._kernels.glmm_kernels.agq2_groups`).  Monte
    Carlo EM is not available for this model.
    """

    def __init__(self, endog, exog, groups, trials=None, *, slope, slope_name: str = "z",
                 **kwargs):
        super().__init__(endog, exog, groups, trials, **kwargs)
        zs = np.asarray(slope, dtype=float).ravel()
        if zs.shape[0] != self.nobs:
            raise DataError(f"slope has {zs.shape[0]} values but the data have {self.nobs} "
                            "rows")
        zs = zs[self.order]
        bad = ~np.isfinite(zs)
        if bad.any():
            raise DataError(f"slope column {slope_name!r} has non-finite values")
        spread = np.add.reduceat(np.abs(zs - zs[self.starts].repeat(self.group_sizes)),
                                 self.starts)
        if not np.any(spread > 0):
            raise DataError(f"slope column {slope_name!r} is constant within every group: "
                            "the random slope is not identified")
        self.data = ArrayData({**{k: self.data[k] for k in ("X", "y", "n", "off",
                                                             "logchoose")}, "zs": zs},
                              unit_bounds=np.r_[self.starts, self.nobs])
        self.X, self.y, self.ntrials, self.offset = (self.data["X"], self.data["y"],
                                                     self.data["n"], self.data["off"])
        self.zs = self.data["zs"]
        self.slope_name = slope_name
        g = self.group_name
        self.param_names = list(self.exog_names) + [
            f"Log({g} L11)", f"{g} L21", f"Log({g} L22)"]
        self.summary_title = self.summary_title.replace("Random-Intercept",
                                                        "Random-Intercept-and-Slope")

    @property
    def sample_stats(self):
        """Not available: Monte Carlo EM is for the random-intercept model only."""
        raise AttributeError("Monte Carlo EM is not available for the random-slope model")

    def _rebuild(self, y, X, g, trials, offset, exog_names, **kw):
        raise NotImplementedError("null and bootstrap models of the random-slope GLMM")

    def null_model(self):
        """None: no null model is defined for the random-slope GLMM."""
        return None

    # -- parameters ---------------------------------------------------------------------
    def _split(self, params):
        theta = np.asarray(params, dtype=float)
        return theta[:-3], theta[-3:]

    @staticmethod
    def covariance(params) -> np.ndarray:
        """Sigma = L L' of the random intercept and slope from the parameter vector."""
        la, c, ld = np.asarray(params, dtype=float)[-3:]
        L = np.array([[np.exp(la), 0.0], [c, np.exp(ld)]])
        return L @ L.T

    def _valid(self, params) -> bool:
        theta = np.asarray(params, dtype=float)
        return (theta.shape == (self.k_exog + 3,) and bool(np.all(np.isfinite(theta)))
                and bool(np.all(np.abs(theta[-3:][[0, 2]]) < 300)))

    def check_start(self, start_params) -> np.ndarray:
        """Validate user start values ``(beta, log a, c, log d)``."""
        self._check_fittable()
        start = np.asarray(start_params, dtype=float).ravel()
        if start.shape[0] != self.k_exog + 3 or not np.all(np.isfinite(start)):
            raise ValueError(f"start_params must hold {self.k_exog + 3} finite values "
                             f"({', '.join(self.param_names)})")
        return start

    def start_params(self) -> np.ndarray:
        """The random-intercept model's start, a slope SD of 0.5 / sd(z), correlation 0."""
        beta = super().start_params()[:-1]
        sz = float(np.std(self.zs)) or 1.0
        return np.concatenate([beta, [np.log(0.5), 0.0, np.log(0.5 / sz)]])

    @property
    def df_model(self) -> float:
        """Fixed effects other than a constant, plus the three covariance parameters."""
        const = int(np.any(np.all(self.X == 1.0, axis=0)))
        return float(self.k_exog - const + 3)

    # -- quadrature ---------------------------------------------------------------------
    def _agq(self, params, chunk: Chunk, louis: bool = False) -> dict:
        beta, (la, c, ld) = self._split(params)
        X = chunk["X"]
        G, K, p = chunk.n_units, self._gh_z.size, self.k_exog
        q = p + 3
        xb = X @ beta
        eta0 = xb + chunk["off"] if self.has_offset else xb     # no n-vector of zeros
        out = {"xb": xb, "eta0": eta0, "mode": np.empty((G, 2)), "chol": np.empty((G, 3)),
               "llg": np.empty(G), "w": np.empty((G, K * K)), "mu": np.empty(chunk.n_rows),
               "mv": np.empty(chunk.n_rows), "ebb": np.empty((G, 3)),
               "score_g": np.empty((G if louis else 0, q)),
               "miss_g": np.empty((G if louis else 0, q, q)),
               "cvar_g": np.empty((G if louis else 0, 3, 3))}
        nt, shared = _kernel_trials(chunk)
        glmm_kernels.agq2_groups(X, chunk["y"], nt, chunk["zs"], eta0,
                                 chunk.unit_bounds, float(la), float(c), float(ld),
                                 self._gh_z, self._gh_logw, bool(louis), self._code,
                                 out["mode"], out["chol"], out["llg"], out["w"], out["mu"],
                                 out["mv"], out["ebb"], out["score_g"], out["miss_g"],
                                 out["cvar_g"], int(chunk.n_threads), shared)
        return out

    def modes(self, params):
        """Conditional modes (G, 2) of (intercept, slope) and the Cholesky factors (G, 3)
        (r11, r21, r22) of the curvature that scales the nodes."""
        r = self._agq(params, self._whole())
        return r["mode"], r["chol"]

    def _posterior(self, params):
        """Nodes (G, K^2, 2) with normalised posterior weights (G, K^2), and X beta plus
        the offset."""
        r = self._agq(params, self._whole())
        z = self._gh_z
        t1, t2 = np.repeat(z, z.size), np.tile(z, z.size)
        r11, r21, r22 = r["chol"].T
        s2 = t2[None, :] / r22[:, None]
        s1 = (t1[None, :] - r21[:, None] * s2) / r11[:, None]
        nodes = np.stack([r["mode"][:, :1] + s1, r["mode"][:, 1:] + s2], axis=-1)
        return nodes, r["w"], r["eta0"]

    def conditional_modes(self, params) -> pd.DataFrame:
        """Conditional modes of the random intercepts and slopes (lme4's ``ranef``)."""
        mode, _ = self.modes(params)
        return pd.DataFrame(mode, index=self.group_levels,
                            columns=["(Intercept)", self.slope_name])

    # -- EM -----------------------------------------------------------------------------
    def chunk_stats(self, params, chunk: Chunk):
        """E-step of one chunk: IRLS sums for beta, E[b b'] summed over groups, AGQ loglik."""
        if not self._valid(params):
            return None, -np.inf
        r = self._agq(params, chunk)
        ll = float(np.sum(r["llg"]) + np.sum(chunk["logchoose"]))
        if not np.isfinite(ll):
            return None, -np.inf
        xwx, xwz = _xwx_xwz(chunk["X"], r.pop("mv"), r.pop("xb"), r.pop("mu"))
        stats = Stats(xwx=xwx, xwz=xwz, ebb=r["ebb"].sum(axis=0), n_units=float(chunk.n_units))
        return stats, ll

    def chunk_louis(self, params, chunk: Chunk) -> Stats:
        """Log-likelihood, observed score and Louis' pieces of one chunk (2-D quadrature)."""
        r = self._agq(params, chunk, louis=True)
        X, p = chunk["X"], self.k_exog
        complete = np.zeros((p + 3, p + 3))
        complete[:p, :p] = _xwx_xwz(X, r["mv"])[0]
        complete[p:, p:] = r["cvar_g"].sum(axis=0)
        return Stats(loglik=float(np.sum(r["llg"]) + np.sum(chunk["logchoose"])),
                     score=r["score_g"].sum(axis=0), complete=complete,
                     missing=r["miss_g"].sum(axis=0))

    def m_step(self, stats, params) -> np.ndarray:
        """beta = xwx^-1 xwz (one IRLS step on Q); Sigma = mean E[b b'] as its Cholesky
        factor."""
        try:
            beta = np.linalg.solve(stats["xwx"], stats["xwz"])
        except np.linalg.LinAlgError:
            raise FloatingPointError("singular weighted design in the M-step for beta"
                                     ) from None
        e00, e01, e11 = np.asarray(stats["ebb"]) / stats["n_units"]
        if not (e00 > 0 and e11 * e00 - e01 * e01 > 0):
            raise FloatingPointError("singular random-effects covariance in the M-step")
        a = np.sqrt(e00)
        c = e01 / a
        d = np.sqrt(e11 - c * c)
        return np.concatenate([beta, [np.log(a), c, np.log(d)]])

    def loglike_groups(self, params) -> np.ndarray:
        """Per-group marginal log-likelihoods by the 2-D adaptive quadrature (no row
        constants)."""
        if not self._valid(params):
            return np.full(self.n_groups, -np.inf)
        return self._agq(params, self._whole())["llg"]


class SlopeGLMMResults(GLMMResults):
    """Results of a random-intercept-and-slope GLMM.

    :attr:`group_cov` is the covariance of (intercept, slope), :attr:`group_sd` their
    standard deviations and :attr:`group_corr` their correlation (lme4's
    ``VarCorr``).
    """

    @property
    def group_cov(self) -> pd.DataFrame:
        """Covariance matrix of the random intercept and slope."""
        m = self.model
        names = ["(Intercept)", m.slope_name]
        return pd.DataFrame(m.covariance(self.params.to_numpy()), index=names, columns=names)

    @property
    def group_sd(self) -> pd.Series:
        """Standard deviations of the random intercept and slope."""
        return pd.Series(np.sqrt(np.diag(self.group_cov)), index=self.group_cov.index)

    @property
    def group_sd_se(self) -> pd.Series:
        """Delta-method standard errors of :attr:`group_sd`."""
        theta = self.params.to_numpy()
        m = self.model

        def sds(t):
            return np.sqrt(np.diag(m.covariance(t)))

        J = np.zeros((2, theta.size))
        for k in range(theta.size - 3, theta.size):
            h = 1e-6 * max(1.0, abs(theta[k]))
            e = np.zeros_like(theta)
            e[k] = h
            J[:, k] = (sds(theta + e) - sds(theta - e)) / (2 * h)
        V = self.cov_params().to_numpy()
        return pd.Series(np.sqrt(np.diag(J @ V @ J.T)), index=self.group_cov.index)

    @property
    def group_corr(self) -> float:
        """Correlation of the random intercept and slope."""
        S = self.group_cov.to_numpy()
        return float(S[0, 1] / np.sqrt(S[0, 0] * S[1, 1]))

    @property
    def fe_params(self) -> pd.Series:
        """The fixed effects (lme4's ``fixef``)."""
        return self.params.iloc[:-3]

    def random_effects(self) -> pd.DataFrame:
        """Conditional modes of the random intercepts and slopes at the estimates."""
        return self.model.conditional_modes(self.params.to_numpy())

    def predict(self, newdata=None, which: str = "mean", *, groups=None) -> pd.Series:
        """Predictions for the estimation rows (``which="mean"``, ``"linear"`` with the
        conditional modes, or ``"fixed"``).

        Parameters
        ----------
        newdata : None
            Only the estimation rows are supported for the random-slope model.
        which : {"mean", "linear", "fixed"}
            As for :meth:`GLMMResults.predict`.
        groups : None
            Not used.

        Returns
        -------
        pandas.Series
        """
        if newdata is not None or groups is not None or which not in ("mean", "linear",
                                                                      "fixed"):
            raise NotImplementedError("the random-slope GLMM predicts the estimation rows "
                                      "only, with which='mean', 'linear' or 'fixed'")
        m = self.model
        theta = self.params.to_numpy()
        beta = theta[:-3]
        eta = m.X @ beta + m.offset
        if which != "fixed":
            mode = m.modes(theta)[0]
            eta = eta + mode[m.g, 0] + mode[m.g, 1] * m.zs
        out = eta if which != "mean" else _inverse_link(m._code, eta)
        res = np.empty(m.nobs)
        res[m.order] = out
        return pd.Series(res, index=m.row_labels, name=which)

    def _summary_rows(self):
        m = self.model
        sd = self.group_sd
        left = [("No. Groups:", [f"{m.n_groups} ({m.group_name})"]),
                ("Group sizes:", [f"{m.group_sizes.min()} to {m.group_sizes.max()}"])]
        right = [("Family (link):", [f"{m.family} ({m.link})"]),
                 (f"{m.group_name} SD (Intercept):", [f"{sd.iloc[0]:#.6g}"]),
                 (f"{m.group_name} SD ({m.slope_name}):", [f"{sd.iloc[1]:#.6g}"]),
                 ("Corr:", [f"{self.group_corr:#.4g}"]),
                 ("Quadrature:", [f"AGQ, {m.n_agq} x {m.n_agq} nodes"])]
        if m.n_dropped:
            right.append(("Rows dropped (NA):", [str(m.n_dropped)]))
        return left, right


RandomSlopeGLMM.results_class = SlopeGLMMResults


def glmm(formula: str, data, groups, family: str = "binomial", link: str | None = None, *,
         trials=None, offset=None, slope: str | None = None, missing: str = "drop",
         n_agq: int = 25) -> RandomInterceptGLMM:
    """Random-intercept GLMM from a formula (fit by EM with adaptive quadrature).

    lme4's ``glmer(y ~ x + (1 | g), family = ..., nAGQ = n_agq)`` for the binomial
    (logit or probit link) and Poisson (log link, with an offset) families.

    Parameters
    ----------
    formula : str
        ``"y ~ x1 + x2"`` (patsy) for the fixed effects; R's
        ``cbind(successes, failures) ~ ...`` and ``+ offset(expr)`` terms work too.
        Binomial: ``y`` is 0/1, or the number of successes when ``trials`` is
        given.  Poisson: non-negative integer counts.
    data : pandas.DataFrame
        The data (never modified).
    groups : str or array_like
        Column of ``data`` (or array) with the group of each row; one normal
        random intercept per group.
    family : {"binomial", "poisson"}
        Distribution of the response given the random intercept.
    link : {"logit", "probit", "log"}, optional
        ``"logit"`` (default) or ``"probit"`` for the binomial, ``"log"`` (the
        default and only link) for the Poisson.
    trials : str or array_like, optional
        Column (or array) with the number of binomial trials per row.
    offset : str or array_like, optional
        Column (or array) added to the linear predictor, e.g. ``np.log(exposure)``
        for Poisson rates; adds to any ``offset()`` terms of the formula.
    slope : str, optional
        A numeric column of ``data``: adds a random slope on it, correlated with the
        random intercept (lme4's ``(1 + slope | group)``), fitted with a
        tensor-product adaptive quadrature of ``n_agq`` x ``n_agq`` nodes
        (:class:`RandomSlopeGLMM`).  Put the column among the fixed effects too, as
        lme4's formula does.
    missing : {"drop", "raise"}
        Rows with missing values in the response, regressors, trials or offset are
        dropped or raise; missing group labels always raise.
    n_agq : int
        Nodes of the adaptive Gauss-Hermite quadrature used for the E-step, the
        log-likelihood and the standard errors (1 is the Laplace approximation,
        lme4's ``nAGQ = 1``; the default 25 is exact to about 1e-10 on typical data).

    Returns
    -------
    RandomInterceptGLMM
        Call ``.fit()`` on it.

    Examples
    --------
    >>> import emstats
    >>> cbpp = emstats.datasets.load("cbpp")  # doctest: +SKIP
    >>> res = emstats.glmm("incidence ~ period + offset(np.log(size))", data=cbpp,
    ...                    groups="herd", family="poisson").fit()  # doctest: +SKIP
    >>> round(res.group_sd, 2)  # doctest: +SKIP
    0.49
    """
    return RandomInterceptGLMM.from_formula(formula, data, groups, trials, family=family,
                                            link=link, offset=offset, slope=slope,
                                            missing=missing,
                                            n_agq=n_agq, eval_env=capture_env(1))


def glmm_logit(formula: str, data, groups, trials=None, *, missing: str = "drop",
               n_agq: int = 25) -> RandomInterceptLogit:
    """Random-intercept logistic regression from a formula (fit by EM with quadrature).

    Parameters
    ----------
    formula : str
        ``"y ~ x1 + x2"`` (patsy) for the fixed effects.  ``y`` is 0/1, or the
        number of successes when ``trials`` is given.
    data : pandas.DataFrame
        The data (never modified).
    groups : str or array_like
        Column of ``data`` (or array) with the group of each row; one normal
        random intercept per group.
    trials : str or array_like, optional
        Column (or array) with the number of binomial trials per row.
    missing : {"drop", "raise"}
        Rows with missing values in the response, regressors or trials are
        dropped or raise; missing group labels always raise.
    n_agq : int
        Nodes of the adaptive Gauss-Hermite quadrature used for the E-step, the
        log-likelihood and the standard errors.

    Returns
    -------
    RandomInterceptLogit
        Call ``.fit()`` on it.

    Examples
    --------
    >>> import emstats
    >>> cbpp = emstats.datasets.load("cbpp")  # doctest: +SKIP
    >>> res = emstats.glmm_logit("incidence ~ period", data=cbpp, groups="herd",
    ...                          trials="size").fit()  # doctest: +SKIP
    >>> round(res.group_sd, 2)  # doctest: +SKIP
    0.65
    """
    return RandomInterceptLogit.from_formula(formula, data, groups, trials, missing=missing,
                                             n_agq=n_agq,
                                             eval_env=capture_env(1))
