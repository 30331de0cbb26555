"""Zero-inflated and hurdle count regressions by EM (pscl's ``zeroinfl`` and ``hurdle``).

Zero inflation.  For row i, with a latent structural-zero indicator delta_i ~ Bernoulli(pi_i),

    P(y_i = 0) = pi_i + (1 - pi_i) f(0 | mu_i),    P(y_i = k) = (1 - pi_i) f(k | mu_i),
    log mu_i = x_i' beta + offset_i,               g(pi_i) = z_i' gamma + zero_offset_i,

with f Poisson, NB2 (theta = exp(phi)) or geometric (NB2 with theta = 1) and g one of the
binary links of :data:`ZERO_LINKS` (logit by default).

Coordinates.  Packed and inference coordinates coincide: the count coefficients
``count_*``, for the negative binomial ``Log(theta)`` (pscl reports theta with its
standard error on the log scale), and the zero-part coefficients ``zero_*``.

E-step.  tau_i = P(delta_i = 1 | y_i) = pi_i / (pi_i + (1 - pi_i) f(0 | mu_i)) for a zero,
0 otherwise.  The complete-data log-likelihood is linear in delta,

    l_c = sum_i w_i [delta_i log pi_i + (1 - delta_i) (log(1 - pi_i) + log f(y_i | mu_i))],

so Q replaces delta by tau.

M-step.  ``chunk_stats`` returns the gradient and a curvature matrix of Q's two parts at
the current parameters, which add over chunks: for the count part (beta and, for NB,
log theta jointly, weights w_i (1 - tau_i)) the negative Hessian, for the binary part
(responses tau_i) its expected information, which is positive semi-definite for every link
(the logit's coincides with the negative Hessian).  The M-step is one Newton / Fisher
scoring step on each part -- Lange's EM gradient step, not an inner IRLS loop; the two parts
of Q separate, so the two steps are independent.  The default Louis-Newton scheme uses
these steps only as a fallback.

Louis' pieces.  Write the binary part through lp = log pi and lq = log(1 - pi) as functions
of its linear predictor u.  The complete-data score of a row is b_i + delta_i a_i with
a_i = (-d1_i x_i, -dphi_i, (lp'_i - lq'_i) z_i), so the missing information is
sum_i w_i tau_i (1 - tau_i) a_i a_i'; the complete information is Q's negative Hessian
(with tau in place of delta, as the complete-data Hessian is linear in delta); observed
information = complete - missing.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import expit, log_ndtr

from ..components.glm import (
    NegativeBinomial,
    get_family,
    separating_direction,
    weighted_irls,
)
from ..em.data import ArrayData, map_row_blocks
from ..em.params import Free, ParamSpec, SpecMaps
from ..em.protocol import ChunkedModel
from ..em.stats import Stats
from ..exceptions import DataError
from ..formula import (
    build_design,
    check_frame,
    new_exog,
    resolve_column,
    rhs_matrix,
    split_two_part,
    variables_frame,
)
from ..inference.fit import FitMixin
from ..inference.margins import MarginalEffects, estimation_frame, marginal_effects
from ..inference.results import EMResults
from .mixreg import MixtureRegression

_newton_step = MixtureRegression._newton_step
_HALF_LOG_2PI = 0.5 * float(np.log(2.0 * np.pi))

#: the count distributions of the count part
COUNT_DISTS = ("poisson", "negbin", "geometric")
#: the links of the binary zero part (pscl's ``link`` / ``zero.link``)
ZERO_LINKS = ("logit", "probit", "cloglog", "cauchit", "log")

#: rows per block of the E-step and Louis' pieces: blocks run in the fit's Python threads,
#: two in flight on two threads hold what one block of 65536 rows held (the block size does
#: not depend on the thread count, so the sums are the same for any number of threads)
THREAD_BLOCK = 1 << 15


class _Geometric(NegativeBinomial):
    """Geometric counts: NB2 with theta fixed at 1 (no dispersion parameter)."""

    name = "geometric"
    dispersion = None

    def logpdf(self, y, eta, phi=None, m=None, c=None):
        return super().logpdf(y, eta, np.zeros(np.shape(eta)[1]), m, c)

    def derivs(self, y, eta, phi=None, m=None):
        d = super().derivs(y, eta, np.zeros(np.shape(eta)[1]), m)
        return {"d1": d["d1"], "d2": d["d2"]}


def count_family(dist: str, what: str = "dist"):
    if dist not in COUNT_DISTS:
        raise ValueError(f"{what} must be one of {', '.join(map(repr, COUNT_DISTS))}, "
                         f"got {dist!r}")
    return _Geometric() if dist == "geometric" else get_family(dist)


def _cauchy_logcdf(e):
    with np.errstate(divide="ignore", invalid="ignore"):
        lower = np.arctan(-1.0 / np.where(e < 0, e, -1.0)) / np.pi   # accurate for e << 0
    return np.log(np.where(e < 0, lower, 0.5 + np.arctan(e) / np.pi))


class BinaryPart:
    """The zero part through a binary link: P(event) = pi = g^{-1}(u).

    ``logs(u)`` gives (log pi, log(1 - pi)); ``derivs(u)`` their first and second
    derivatives in u, as arrays of shape (n, 1) and (n, 1, 1) (the shapes of a part with
    extra parameters, :class:`CountZeroPart`).
    """

    n_extra = 0

    def __init__(self, link: str):
        if link not in ZERO_LINKS:
            raise ValueError(f"link must be one of {', '.join(map(repr, ZERO_LINKS))}, "
                             f"got {link!r}")
        self.link = link
        self.label = f"binomial ({link})"

    def logs(self, u, phi=None):
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            if self.link == "logit":
                lp = -np.logaddexp(0.0, -u)
                return lp, lp - u
            if self.link == "probit":
                return log_ndtr(u), log_ndtr(-u)
            if self.link == "cloglog":
                eu = np.exp(u)
                return np.log(-np.expm1(-eu)), -eu
            if self.link == "cauchit":
                return _cauchy_logcdf(u), _cauchy_logcdf(-u)
            # log link: pi = exp(u) is a probability only for u < 0
            return np.where(u < 0, u, np.nan), np.log(-np.expm1(np.minimum(u, 0.0)))

    def _ldpi_s(self, u, lp, lq):
        """log(dpi/du) and (d2pi/du2) / (dpi/du) (the links other than the logit)."""
        if self.link == "probit":
            return -0.5 * u * u - _HALF_LOG_2PI, -u
        if self.link == "cloglog":
            eu = np.exp(u)
            return u - eu, 1.0 - eu
        if self.link == "cauchit":
            return -np.log(np.pi) - np.log1p(u * u), -2.0 * u / (1.0 + u * u)
        return u, np.ones_like(u)

    def derivs(self, u, phi=None):
        lp, lq = self.logs(u)
        if self.link == "logit":          # the canonical link: lp' = 1 - pi, lq' = -pi
            pi = np.exp(lp)
            qi = 1.0 - pi
            h = (-pi * qi)[:, None, None]
            return lp, lq, qi[:, None], -pi[:, None], h, h
        with np.errstate(over="ignore", invalid="ignore"):
            ld, s = self._ldpi_s(u, lp, lq)
            rp, rq = np.exp(ld - lp), np.exp(ld - lq)
        p1, q1 = rp[:, None], -rq[:, None]
        p2, q2 = (rp * (s - rp))[:, None, None], (-rq * (s + rq))[:, None, None]
        return lp, lq, p1, q1, p2, q2


class CountZeroPart:
    """A hurdle's zero part from a count distribution (pscl's ``zero.dist``):
    P(y > 0) = pi = 1 - f(0 | exp(u)) with f Poisson, NB2 (its own theta) or geometric.

    A Poisson zero hurdle is the binomial one with a cloglog link, a geometric one the
    binomial logit; only the negative binomial adds a parameter.
    """

    def __init__(self, dist: str):
        self.family = count_family(dist, "zero_dist")
        self.n_extra = 1 if dist == "negbin" else 0
        self.label = dist
        self.link = "count"

    def _log_f0(self, u, phi):
        """log f(0 | exp(u)): -mu for the Poisson, -theta log(1 + mu / theta) for the
        NB2 (theta = 1: the geometric), with s = u - log theta; and theta, expit(s),
        log(1 + e^s) for the derivatives (stable when mu / theta is huge, as on the ridge
        theta -> 0, mu -> infinity)."""
        if self.family.name == "poisson":
            return -np.exp(u), None
        ph = 0.0 if phi is None else float(np.asarray(phi).ravel()[0])
        th, sv = np.exp(ph), u - ph
        sp = np.logaddexp(0.0, sv)
        return -th * sp, (th, expit(sv), sp)

    def logs(self, u, phi=None):
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            lq = self._log_f0(u, phi)[0]
            return np.log(-np.expm1(lq)), lq

    def derivs(self, u, phi=None):
        with np.errstate(all="ignore"):   # a trial point far out: the log-likelihood says
            return self._derivs(u, phi)

    def _derivs(self, u, phi):
        lq, nb = self._log_f0(u, phi)
        lp = np.log(-np.expm1(lq))
        m = 1 + self.n_extra
        q1 = np.empty((u.size, m))
        q2 = np.empty((u.size, m, m))
        if nb is None:                                   # Poisson: d/du and d2/du2 of -mu
            q1[:, 0] = q2[:, 0, 0] = lq
        else:
            th, sg, sp = nb
            q1[:, 0], q2[:, 0, 0] = -th * sg, -th * sg * (1.0 - sg)
            if m == 2:                                   # in phi = log theta
                q1[:, 1] = th * (sg - sp)
                q2[:, 1, 1] = th * (2.0 * sg - sp - sg * (1.0 - sg))
                q2[:, 0, 1] = q2[:, 1, 0] = -th * sg * sg
        r = np.exp(lq - lp)                              # f0 / (1 - f0)
        p1 = -r[:, None] * q1
        p2 = -r[:, None, None] * q2 - (r * (1.0 + r))[:, None, None] * (
            q1[:, :, None] * q1[:, None, :])
        return lp, lq, p1, q1, p2, q2


class _FixedExtra:
    """A zero part with its extra parameter held at ``phi`` (for the start's profile)."""

    def __init__(self, part, phi):
        self.part, self.phi, self.link = part, np.array([float(phi)]), part.link

    def logs(self, u, phi=None):
        return self.part.logs(u, self.phi)

    def derivs(self, u, phi=None):
        lp, lq, p1, q1, p2, q2 = self.part.derivs(u, self.phi)
        return lp, lq, p1[:, :1], q1[:, :1], p2[:, :1, :1], q2[:, :1, :1]


def _binary_start(part, t, Z, w, off, maxiter: int = 50):
    """Weighted binary regression of t on Z through ``part``'s link (Fisher scoring with
    step halving), the start of the zero part: (coefficients, log-likelihood)."""
    q = Z.shape[1]

    def loglik(g):
        lp, lq = part.logs(Z @ g + off)
        v = w @ (t * lp + (1.0 - t) * lq)
        return v if np.isfinite(v) else -np.inf

    if part.link == "logit" and isinstance(part, BinaryPart):
        g = weighted_irls(get_family("binomial"), t, Z, w, off)
        return g, loglik(g)
    g = np.zeros(q)
    tbar = float(np.clip(w @ t / w.sum(), 0.02, 0.98))
    # an intercept-like first column starts at the marginal rate (inside the log link's
    # domain); otherwise start at 0
    if np.allclose(Z[:, 0], Z[0, 0]) and Z[0, 0] != 0:
        grid = np.linspace(-8, 8, 321) if part.link != "log" else -np.geomspace(1e-3, 8, 200)
        lps = np.exp(part.logs(grid)[0])
        g[0] = (grid[np.argmin(np.abs(lps - tbar))] - float(np.mean(off))) / Z[0, 0]
    ll = loglik(g)
    for _ in range(maxiter):
        lp, lq, p1, q1, _, _ = part.derivs(Z @ g + off)
        pi = np.exp(lp)
        s = (t * p1[:, 0] + (1.0 - t) * q1[:, 0])
        info = w * pi * (1.0 - pi) * (p1[:, 0] - q1[:, 0]) ** 2
        step = _newton_step(Z.T @ (w * s), (Z * info[:, None]).T @ Z)
        for _ in range(30):
            new = loglik(g + step)
            if new >= ll - 1e-12 * abs(ll):
                break
            step = step / 2
        else:
            break
        done = abs(new - ll) < 1e-10 * (1.0 + abs(ll))
        g, ll = g + step, new
        if done:
            break
    return g, ll


def _count_block(X, terms, p, d):
    """Gradient and negative Hessian of a weighted count log-likelihood in (beta, log theta)
    from ``terms``: pairs (family derivatives at some y, row weights)."""
    g = np.zeros(p + d)
    H = np.zeros((p + d, p + d))
    h = sum(-c * der["d2"][:, 0] for der, c in terms)
    g[:p] = X.T @ sum(c * der["d1"][:, 0] for der, c in terms)
    H[:p, :p] = (X * h[:, None]).T @ X
    if d:
        g[p] = sum(c @ der["dp"][:, 0] for der, c in terms)
        cross = X.T @ sum(-c * der["dep"][:, 0] for der, c in terms)
        H[:p, p], H[p, :p] = cross, cross
        H[p, p] = -sum(c @ der["dpp"][:, 0] for der, c in terms)
    return g, H


def _count_rows(X, terms, d):
    """The rows' terms of :func:`_count_block`'s gradient (rows x (p + d))."""
    c1 = sum(c * der["d1"][:, 0] for der, c in terms)
    if not d:
        return X * c1[:, None]
    return np.column_stack([X * c1[:, None], sum(c * der["dp"][:, 0] for der, c in terms)])


def _zero_rows(Z, t, w, zd):
    """The rows' terms of :func:`_zero_block`'s gradient (rows x (q + m - 1))."""
    p1, q1 = zd[2], zd[3]
    s = w[:, None] * (t[:, None] * p1 + (1.0 - t)[:, None] * q1)
    return np.hstack([Z * s[:, :1], s[:, 1:]])


def _zero_block(Z, t, w, zd, fisher: bool):
    """Gradient and curvature of sum_i w_i [t_i lp_i + (1 - t_i) lq_i] in the zero part's
    coefficients (and extra parameter): the negative Hessian, or with ``fisher`` the
    expected information (positive semi-definite for every link)."""
    lp, lq, p1, q1, p2, q2 = zd
    q, m = Z.shape[1], p1.shape[1]
    s = w[:, None] * (t[:, None] * p1 + (1.0 - t)[:, None] * q1)
    if fisher:
        pi = np.exp(lp)
        dd = p1 - q1
        h = (w * pi * -np.expm1(lp))[:, None, None] * (dd[:, :, None] * dd[:, None, :])
    else:
        h = -w[:, None, None] * (t[:, None, None] * p2 + (1.0 - t)[:, None, None] * q2)
    g = np.concatenate([Z.T @ s[:, 0], s[:, 1:].sum(axis=0)])
    H = np.empty((q + m - 1, q + m - 1))
    H[:q, :q] = (Z * h[:, 0, 0][:, None]).T @ Z
    if m > 1:
        H[:q, q:] = Z.T @ h[:, 0, 1:]
        H[q:, :q] = H[:q, q:].T
        H[q:, q:] = h[:, 1:, 1:].sum(axis=0)
    return g, H


class ZeroInflatedRegression(SpecMaps, FitMixin, ChunkedModel):
    """Zero-inflated Poisson, NB2 or geometric regression (see the module docstring and
    :func:`zeroinfl`).

    Parameters
    ----------
    y : array_like, shape (n,)
        Non-negative integer counts.
    X : array_like, shape (n, p)
        Design of the count part (include a constant column yourself).
    Z : array_like, shape (n, q)
        Design of the zero part.
    dist : {"poisson", "negbin", "geometric"}
        The count distribution (negbin: NB2 with a dispersion ``Log(theta)``; geometric:
        NB2 with theta = 1).
    link : {"logit", "probit", "cloglog", "cauchit", "log"}
        Link of the zero-inflation probability.
    offset : array_like, optional
        Offset of the count part's log mean.
    zero_offset : array_like, optional
        Offset of the zero part's linear predictor.
    weights : array_like, optional
        Frequency weights.
    exog_names, zero_names : list of str, optional
        Names of the columns of ``X`` and ``Z``.
    endog_name : str
        Name of the response.
    design_info, zero_info : emstats.formula.Terms, optional
        Designs of the two parts of a model built from a formula (for prediction).
    offset_spec, zero_offset_spec : object, optional
        Internal: how the formula's offsets are recomputed on new data.
    """

    summary_title = "Zero-Inflated Count Regression Results"
    #: the M-step is one Newton / scoring step of Q (shortened by the engine if it overshoots)
    m_step_exact = False

    def __init__(self, y, X, Z, *, dist="poisson", link="logit", offset=None,
                 zero_offset=None, weights=None, exog_names=None, zero_names=None,
                 endog_name="y", design_info=None, zero_info=None, offset_spec=None,
                 zero_offset_spec=None):
        self.dist = dist
        self.family = count_family(dist)
        self.zero_part = self._make_zero_part(link)
        y = self.family.check(np.asarray(y, dtype=float).ravel(), None, repr(endog_name))
        n = y.size
        X = np.asarray(X, dtype=float).reshape(n, -1)
        Z = np.asarray(Z, dtype=float).reshape(n, -1)

        def vec(v, what, fill):
            # a zero default is a read-only broadcast (no vector of n entries; adding it is
            # exact); unit weights stay a vector, so that the weighted sums take BLAS's dot
            if v is None:
                v = np.broadcast_to(0.0, (n,)) if fill == 0.0 else np.full(n, float(fill))
            else:
                v = np.asarray(v, dtype=float).ravel()
            if v.size != n:
                raise DataError(f"{what} has {v.size} values for {n} rows")
            if not np.all(np.isfinite(v)):
                raise DataError(f"{what} must be finite; {int((~np.isfinite(v)).sum())} "
                                "value(s) are not")
            return v

        off, zoff = vec(offset, "offset", 0.0), vec(zero_offset, "zero_offset", 0.0)
        w = vec(weights, "weights", 1.0)
        if np.any(w < 0) or w.sum() <= 0:
            raise DataError("weights must be non-negative and finite, and not all zero")
        pos = w > 0
        if not np.any((y == 0) & pos):
            raise DataError(f"{endog_name} has no zeros: there is nothing to inflate "
                            "(fit a plain count regression)")
        if np.all(y[pos] == 0):
            raise DataError(f"{endog_name} is zero in every row: the count and zero parts "
                            "are not identified")
        self.p, self.q = X.shape[1], Z.shape[1]
        self.d = 1 if dist == "negbin" else 0
        self.dz = self.zero_part.n_extra
        k = self.p + self.d + self.q + self.dz
        if k >= n:
            raise DataError(f"{k} parameters need more than {n} rows")
        self.n_rows = n
        self.exog_names = list(exog_names or [f"x{j}" for j in range(self.p)])
        self.zero_names = list(zero_names or [f"z{j}" for j in range(self.q)])
        self.endog_name = str(endog_name)
        self.design_info, self.zero_info = design_info, zero_info
        self.frame = None       # the formula's variables in the rows (set by zeroinfl())
        self._offset_spec, self._zero_offset_spec = offset_spec, zero_offset_spec
        self.data = ArrayData({"y": y, "X": X, "Z": Z, "off": off, "zoff": zoff, "w": w,
                               "c": self.family.log_const(y)})
        self.y_max = int(np.max(y))     # the default counts of predict(which="prob")
        cnt = [f"count_{c}" for c in self.exog_names] + (["Log(theta)"] if self.d else [])
        zer = [f"zero_{c}" for c in self.zero_names] + (["zero_Log(theta)"] if self.dz
                                                         else [])
        self.spec = ParamSpec([
            Free("count", (self.p + self.d,), label=lambda ix: cnt[ix[0]]),
            Free("zero", (self.q + self.dz,), label=lambda ix: zer[ix[0]]),
        ])
        self.nobs = float(w.sum())
        self.df_model = float(self.spec.size)

    def _make_zero_part(self, link):
        return BinaryPart(link)

    # -- parameters ---------------------------------------------------------------
    def check_start(self, start) -> dict:
        try:
            p = {k: np.asarray(v, dtype=float) for k, v in dict(start).items()}
            self.spec.pack(p)
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"start_params must be a mapping with blocks 'count' of shape "
                             f"({self.p + self.d},) and 'zero' of shape "
                             f"({self.q + self.dz},): {err}") from None
        return p

    def _count_start(self, rows):
        """A Poisson GLM on ``rows`` (theta from moments for the NB): pscl's count start."""
        dat = self.data
        y, X, off, w = dat["y"], dat["X"], dat["off"], dat["w"] * rows
        beta = weighted_irls(get_family("poisson"), y, X, w, off)
        if not self.d:
            return beta
        mu = np.exp(X @ beta + off)
        r = rows > 0
        return np.append(beta, self.family.start_phi(y[r], mu[r], w[r]))

    def start_params(self) -> dict:
        """pscl's start: a Poisson GLM on all rows and a binary regression of 1{y = 0}."""
        dat = self.data
        gamma, _ = _binary_start(self.zero_part, (dat["y"] == 0).astype(float), dat["Z"],
                                 dat["w"], dat["zoff"])
        return {"count": self._count_start(np.ones(self.n_rows)), "zero": gamma}

    def diagnose_failure(self, err: Exception) -> DataError | None:
        """A numerical failure of the fit explained by the data, when it is: too few
        non-zero counts for the count part, or regressors that separate (Albert &
        Anderson 1984) the zeros from the positive counts in the zero part, or predict
        mean 0 for every zero in the count part (zero-inflated models)."""
        dat = self.data
        keep = dat["w"] > 0
        y = dat["y"][keep]
        zero = y == 0
        m, kc = int(np.sum(~zero)), self.p + self.d
        if m <= kc:
            return DataError(
                f"only {m} row(s) have a non-zero {self.endog_name} for the {kc} "
                "coefficient(s) of the count part: its estimates diverge; use fewer "
                "count regressors (or more data)")
        return self.separation_error()

    def separation_error(self) -> DataError | None:
        """A DataError naming the regressors that separate the zeros from the positive
        counts in the zero part, or predict mean 0 for every zero in the count part
        (zero-inflated models), or None (linear programmes on the rows in memory)."""
        dat = self.data
        keep = dat["w"] > 0
        zero = dat["y"][keep] == 0
        hurdle = isinstance(self, HurdleRegression)
        checks = [("zero", self.zero_names, dat["Z"][keep], np.where(zero, 1.0, -1.0),
                   "separate the zeros from the positive counts")]
        if not hurdle:
            checks.append(("count", self.exog_names, dat["X"][keep],
                           np.where(zero, -1.0, 0.0), "predict a count mean of 0 for "
                           "zeros while fitting every positive count"))
        for part, names, A, sgn, what in checks:
            d = separating_direction(A, sgn)
            if d is None:
                continue
            along = [n for n, v in zip(names, d, strict=True) if v != 0.0]
            return DataError(
                f"the {part} part's regressors {what} (along a direction in "
                f"{', '.join(map(repr, along))}): the maximum-likelihood estimate does not "
                "exist and those coefficients diverge. Drop or combine those regressors, or "
                "the rows they predict perfectly")
        return None

    #: a linear predictor beyond this at the estimate (a probability or a mean within
    #: e^-30 of its bound) prompts the separation checks of :meth:`diagnose_failure`
    DIVERGED = 30.0

    def diagnose_estimate(self, params) -> DataError | None:
        """After the fit: when a linear predictor reaches :attr:`DIVERGED` at some row,
        the data's explanation (:meth:`diagnose_failure`), if any: a boundary estimate
        (e.g. no zero inflation needed) passes, a separating direction is an error."""
        dat = self.data
        if not isinstance(dat, ArrayData):
            return None         # out of core: the rows are not in memory to check
        beta, _, gamma, _ = self._split(params)
        big = max(float(np.max(np.abs(dat["X"] @ beta + dat["off"]))),
                  float(np.max(np.abs(dat["Z"] @ gamma + dat["zoff"]))))
        return self.diagnose_failure(None) if big > self.DIVERGED else None

    def initial_starts(self, init, n_init: int, rng):
        """One start (pscl's); ``init`` takes no value."""
        if init is not None:
            raise ValueError(f"{type(self).__name__} takes no init=; use start_params=")
        return [("glm", self.start_params())]

    # -- E-step --------------------------------------------------------------------
    def _split(self, params):
        """(beta, phi, gamma, phi_zero); phi and phi_zero are (1,) arrays or None."""
        c = np.asarray(params["count"], dtype=float)
        z = np.asarray(params["zero"], dtype=float)
        return (c[: self.p], c[self.p:] if self.d else None, z[: self.q],
                z[self.q:] if self.dz else None)

    def _predictors(self, params, ch):
        """Count linear predictor eta, dispersion phi, zero-part linear predictor u, its
        extra parameter and log f(y) of the count distribution, per row."""
        beta, phi, gamma, phiz = self._split(params)
        eta = ch["X"] @ beta + ch["off"]
        u = ch["Z"] @ gamma + ch["zoff"]
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            lf = self.family.logpdf(ch["y"], eta[:, None], phi, None, ch["c"])[:, 0]
        return eta, phi, u, phiz, lf

    def _rows(self, params, ch):
        """Per-row pieces: eta, phi, the zero part's derivatives, tau, log-likelihood."""
        eta, phi, u, phiz, lf = self._predictors(params, ch)
        zd = self.zero_part.derivs(u, phiz)
        lp, lq = zd[0], zd[1]
        zero = ch["y"] == 0
        with np.errstate(invalid="ignore"):
            ll = np.where(zero, np.logaddexp(lp, lq + lf), lq + lf)
            tau = np.where(zero, np.exp(np.minimum(lp - np.where(zero, ll, lp), 0.0)), 0.0)
        return eta, phi, zd, tau, ll

    def _terms(self, params, ch):
        """The expected complete-data log-likelihood's pieces of the chunk's rows: the
        count part's terms (family derivatives at some y, row weights), the zero part's
        targets t and derivatives, what Louis' missing information needs, and the
        rows' log-likelihoods."""
        eta, phi, zd, tau, ll = self._rows(params, ch)
        der = self.family.derivs(ch["y"], eta[:, None], phi)
        return [(der, ch["w"] * (1.0 - tau))], tau, zd, (der, zd, tau), ll

    def _pieces(self, params, ch, fisher=True):
        terms, t, zd, extra, ll = self._terms(params, ch)
        gc, Hc = _count_block(ch["X"], terms, self.p, self.d)
        gz, Hz = _zero_block(ch["Z"], t, ch["w"], zd, fisher)
        return gc, Hc, gz, Hz, extra, ll

    def chunk_scores(self, params, chunk) -> np.ndarray:
        """Observed-data score of each row (weights included): by Fisher's identity the
        rows' terms of the gradient of Q at ``params``."""
        terms, t, zd, _, _ = self._terms(params, chunk)
        return np.hstack([_count_rows(chunk["X"], terms, self.d),
                          _zero_rows(chunk["Z"], t, chunk["w"], zd)])

    def chunk_stats(self, params, chunk):
        """Gradient and curvature of Q's two parts at ``params`` (see the module
        docstring), summed over blocks of at most ROW_BLOCK rows (so the per-row
        temporaries are of a fixed size)."""
        def block(ch):
            # far from the estimate (an extrapolated step) rows may overflow: such a point
            # is refused below (non-finite pieces), not warned of row by row
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                gc, Hc, gz, Hz, _, ll = self._pieces(params, ch)
                return Stats(gc=gc, Hc=Hc, gz=gz, Hz=Hz), float(ch["w"] @ ll)

        stats, total = 0, 0.0
        for st, ll in map_row_blocks(block, chunk, THREAD_BLOCK):      # in block order
            stats = stats + st
            total += ll
        if not (np.isfinite(total) and all(np.all(np.isfinite(stats[key]))
                                           for key in ("gc", "Hc", "gz", "Hz"))):
            return None, -np.inf
        return stats, total

    def m_step(self, stats, params):
        """One Newton step on the count part and one scoring step on the zero part of Q."""
        count = np.asarray(params["count"], dtype=float) + _newton_step(stats["gc"],
                                                                        stats["Hc"])
        zero = np.asarray(params["zero"], dtype=float) + _newton_step(stats["gz"], stats["Hz"])
        return {"count": count, "zero": zero}

    def null_model(self):
        """Intercepts only in both parts, the same offset and weights (None when the
        model has no other regressor)."""
        if self.p + self.q <= 2:
            return None
        d = self.data
        one = np.ones((d.n_rows, 1))
        return type(self)(d["y"], one, one, dist=self.dist, offset=d["off"],
                          weights=d["w"], exog_names=["Intercept"],
                          zero_names=["Intercept"], endog_name=self.endog_name)

    # -- Louis -----------------------------------------------------------------------
    def _louis(self, gc, Hc, gz, Hz, ll, w, A, v):
        k = self.p + self.d
        comp = np.zeros((k + self.q + self.dz,) * 2)
        comp[:k, :k], comp[k:, k:] = Hc, Hz
        miss = (A * v[:, None]).T @ A
        return Stats(loglik=float(w @ ll), score=np.concatenate([gc, gz]), complete=comp,
                     missing=miss)

    def chunk_louis(self, params, chunk):
        """Louis' pieces of the chunk, summed over blocks of at most ROW_BLOCK rows (no
        n x P matrix of per-row scores)."""
        return sum(map_row_blocks(lambda ch: self._louis_rows(params, ch), chunk,
                                  THREAD_BLOCK))

    def _louis_rows(self, params, chunk):
        gc, Hc, gz, Hz, (der, zd, tau), ll = self._pieces(params, chunk, fisher=False)
        p, d = self.p, self.d
        w = chunk["w"]
        A = np.empty((chunk["y"].size, p + d + self.q))
        A[:, :p] = -der["d1"][:, :1] * chunk["X"]
        if d:
            A[:, p] = -der["dp"][:, 0]
        A[:, p + d:] = (zd[2][:, :1] - zd[3][:, :1]) * chunk["Z"]
        return self._louis(gc, Hc, gz, Hz, ll, w, A, w * tau * (1.0 - tau))

    # -- predictions -------------------------------------------------------------------
    def _linear(self, params, X, Z, off, zoff):
        beta, phi, gamma, phiz = self._split(params)
        eta, u = X @ beta + off, Z @ gamma + zoff
        lp, lq, p1 = self.zero_part.derivs(u, phiz)[:3]
        return eta, phi, np.exp(lp), np.exp(lq), np.exp(lp) * p1[:, 0]

    def _count_pmf(self, eta, phi, k) -> np.ndarray:
        yk = np.full(eta.size, float(k))
        return np.exp(self.family.logpdf(yk, eta[:, None], phi, None)[:, 0])

    def _f0(self, eta, phi):
        """f(0 | mu) and d log f(0 | mu) / d eta, per row."""
        z = np.zeros_like(eta)
        return self._count_pmf(eta, phi, 0), self.family.derivs(z, eta[:, None], phi)["d1"][:, 0]

    def response(self, params, X, Z, off, zoff, which):
        """A prediction per row and its derivatives in the count and zero linear
        predictors: ``(F, dF/deta, dF/du)`` for ``which`` in ``"mean"`` ((1 - pi) mu),
        ``"count"`` (mu), ``"zero"`` (pi) and ``"prob0"`` (P(y = 0))."""
        eta, phi, pi, qi, dpi = self._linear(params, X, Z, off, zoff)
        mu = np.exp(eta)
        if which == "mean":
            return qi * mu, qi * mu, -dpi * mu
        if which == "count":
            return mu, mu, np.zeros_like(mu)
        if which == "zero":
            return pi, np.zeros_like(pi), dpi
        if which == "prob0":
            f0, d0 = self._f0(eta, phi)
            return pi + qi * f0, qi * f0 * d0, dpi * (1.0 - f0)
        raise ValueError(f"which must be 'mean', 'count', 'zero' or 'prob0', got {which!r}")

    def predict_arrays(self, params, X, Z, off, zoff, which, ks=None):
        """Predictions from design matrices (see :meth:`ZeroInflatedResults.predict`)."""
        if which in ("mean", "count", "zero", "prob0"):
            return pd.Series(self.response(params, X, Z, off, zoff, which)[0], name=which)
        if which != "prob":
            raise ValueError("which must be 'mean', 'count', 'zero', 'prob0' or 'prob', "
                             f"got {which!r}")
        eta, phi, pi, qi, _ = self._linear(params, X, Z, off, zoff)
        out = np.empty((eta.size, ks.size))
        for j, kk in enumerate(ks):
            out[:, j] = self._prob_k(eta, phi, pi, qi, kk)
        return pd.DataFrame(out, columns=[int(k) for k in ks])

    def _prob_k(self, eta, phi, pi, qi, k):
        return qi * self._count_pmf(eta, phi, k) + (pi if k == 0 else 0.0)

    def loglikeobs(self, params) -> np.ndarray:
        """Per-row log-likelihood at ``params`` (unweighted)."""
        return np.concatenate([self._rows(params, ch)[4] for ch in self.data.chunks(1)])

    def posterior_zero(self, params) -> np.ndarray:
        """P(structural zero | y) of every row at ``params``."""
        return np.concatenate([self._rows(params, ch)[3] for ch in self.data.chunks(1)])


def _factor_groups(*infos) -> dict[str, tuple[list[str], bool]]:
    """Design columns that code the levels of a categorical factor, from the formula's
    terms of each part (:meth:`emstats.formula.Terms.categorical_columns`)."""
    out = {}
    for info in infos:
        if info is not None:
            out.update(info.categorical_columns())
    return out


class ZeroInflatedResults(EMResults):
    """Results of a zero-inflated count regression: coefficient blocks, theta, predictions,
    marginal effects, count tables and rootograms."""

    _zero_title = "Zero model:"

    def plot_residuals(self, ax=None):
        """Response residuals y - E[y] against the fitted mean E[y], zeros and positive
        counts marked apart.

        Parameters
        ----------
        ax : matplotlib Axes, optional
            Axes to draw on (default: a new figure).

        Returns
        -------
        matplotlib Axes
        """
        from ..inference.plots import residuals

        y = np.asarray(self.model.data["y"], dtype=float)
        mean = np.asarray(self.predict(which="mean"), dtype=float)
        kinds = np.where(y == 0, "zero", "positive count")
        return residuals(mean, y - mean, kinds=kinds, ax=ax, xlabel="fitted mean E[y]",
                         ylabel=f"{self.model.endog_name} minus E[y]",
                         title=f"{type(self.model).__name__} ({self.model.dist}): "
                               "residuals against fitted means")

    def _summary_rows(self):
        m = self.model
        right = []
        if m.d:
            right.append(("Theta:", [f"{self.theta:#.6g}"]))
        if m.dz:
            right.append(("Theta (zero):", [f"{self.theta_zero:#.6g}"]))
        return [("Count model:", [m.dist]), (self._zero_title, [m.zero_part.label])], right

    @property
    def count_params(self) -> pd.Series:
        """Coefficients of the count part (log link)."""
        m = self.model
        return pd.Series(self.params.to_numpy()[: m.p], index=m.exog_names, name="count")

    @property
    def zero_params(self) -> pd.Series:
        """Coefficients of the zero part (on its link's scale)."""
        m = self.model
        k = m.p + m.d
        return pd.Series(self.params.to_numpy()[k: k + m.q], index=m.zero_names, name="zero")

    @property
    def theta(self) -> float | None:
        """NB2 dispersion theta of the count part (natural scale); None otherwise."""
        m = self.model
        return float(np.exp(self.params.iloc[m.p])) if m.d else None

    @property
    def theta_zero(self) -> float | None:
        """NB2 theta of a hurdle's negative-binomial zero part; None otherwise."""
        m = self.model
        return float(np.exp(self.params.iloc[-1])) if m.dz else None

    def loglikeobs(self) -> np.ndarray:
        """Per-row log-likelihood at the estimate (for :func:`vuong`)."""
        return self.model.loglikeobs(self.raw_params)

    @property
    def posterior_zero(self) -> np.ndarray:
        """Each row's posterior probability of being a structural zero."""
        return self.model.posterior_zero(self.raw_params)

    def margeff(self, which: str = "mean", discrete: bool = True) -> pd.DataFrame:
        """Average marginal effects with delta-method standard errors.

        Parameters
        ----------
        which : {"mean", "count", "zero", "prob0"}
            The prediction the effects are on, as :meth:`predict`: the mean E[y], the
            count part's mean mu, the zero part's prediction (the inflation probability;
            for a hurdle pscl's ratio P(y > 0) / P_count(y > 0)), or P(y = 0).
        discrete : bool
            The columns coding the levels of a categorical factor get the average discrete
            change from the reference level to that level (every row moved to each level
            in turn; the effect of a dummy, not a derivative).  ``False`` differentiates
            them as if continuous.

        Returns
        -------
        pandas.DataFrame
            Columns ``dy/dx``, ``std err``, ``z``, ``P>|z|``; one row per design column
            other than the intercept that can move the prediction (a column in both parts
            moves in both).  Other
            columns: the row-weighted average derivative.  Standard errors: the delta
            method, the Jacobian of the averages in the parameters by central
            differences.
        """
        from scipy.stats import norm

        m = self.model
        dat = m.data
        X, Z, off, zoff, w = dat["X"], dat["Z"], dat["off"], dat["zoff"], dat["w"]
        m.response(self.raw_params, X[:1], Z[:1], off[:1], zoff[:1], which)  # checks which
        groups = _factor_groups(m.design_info, m.zero_info) if discrete else {}
        names = [n for n in dict.fromkeys(m.exog_names + m.zero_names) if n != "Intercept"
                 and not (n in groups and groups[n][1] and groups[n][0][0] == n)]
        ix = [m.exog_names.index(n) if n in m.exog_names else -1 for n in names]
        iz = [m.zero_names.index(n) if n in m.zero_names else -1 for n in names]
        W = w / w.sum()

        def moved(name, level):
            """X and Z with the factor of ``name`` set to ``level`` (or its reference)."""
            cols, full = groups[name]
            out = []
            for M, mn in ((X, m.exog_names), (Z, m.zero_names)):
                M = M.copy()
                for c in cols:
                    if c in mn:
                        M[:, mn.index(c)] = 1.0 if c == level else 0.0
                out.append(M)
            return out

        pairs = {n: (moved(n, n), moved(n, groups[n][0][0] if groups[n][1] else None))
                 for n in names if n in groups}

        def ame(theta):
            P = m.from_inference(theta)
            beta, _, gamma, _ = m._split(P)
            _, de, dz = m.response(P, X, Z, off, zoff, which)
            a, b = W @ de, W @ dz
            est = np.empty(len(names))
            for i, (n, j, k) in enumerate(zip(names, ix, iz, strict=True)):
                if n in pairs:
                    (X1, Z1), (X0, Z0) = pairs[n]
                    est[i] = W @ (m.response(P, X1, Z1, off, zoff, which)[0]
                                  - m.response(P, X0, Z0, off, zoff, which)[0])
                else:
                    est[i] = (a * beta[j] if j >= 0 else 0.0) + (b * gamma[k] if k >= 0
                                                                 else 0.0)
            return est

        theta = self.params.to_numpy()
        est = ame(theta)
        J = np.empty((est.size, theta.size))
        for c in range(theta.size):
            h = 1e-6 * max(1.0, abs(theta[c]))
            tp, tm = theta.copy(), theta.copy()
            tp[c] += h
            tm[c] -= h
            J[:, c] = (ame(tp) - ame(tm)) / (2.0 * h)
        # drop the columns that cannot move the prediction (a count-only column and the
        # inflation probability, say): their effect is 0 at every parameter
        keep = (est != 0.0) | np.any(J != 0.0, axis=1)
        est, J = est[keep], J[keep]
        se = np.sqrt(np.diag(J @ self._cov @ J.T))
        z = est / se
        return pd.DataFrame({"dy/dx": est, "std err": se, "z": z,
                             "P>|z|": 2.0 * norm.sf(np.abs(z))},
                            index=[n for n, k in zip(names, keep, strict=True) if k])

    def get_margeff(self, at="overall", which: str = "mean", *, dummy: bool = True,
                    variables=None) -> MarginalEffects:
        """Marginal effects of the variables on a prediction, with delta-method standard
        errors (one effect per variable of the formula, through both parts).

        A variable in the count and the zero part, in ``np.log(x)``, ``I(x**2)`` or an
        interaction gets one total effect (the chain rule through the formula);
        categorical levels, booleans and (with ``dummy``) 0/1 variables get discrete
        changes from the reference level.  A model built from arrays gets effects per
        design column (a name in both ``exog_names`` and ``zero_names`` moves both).

        Parameters
        ----------
        at : {"overall", "mean", "median"} or dict
            ``"overall"``: the weighted average over the rows; ``"mean"`` / ``"median"``:
            at one row with numeric variables at their mean / median and categorical ones
            at their most frequent level; a dict ``{variable: value}``: those variables
            set in every row, the effects averaged.
        which : {"mean", "count", "zero", "prob0"}
            The prediction, as in :meth:`predict`.
        dummy : bool
            Discrete changes 0 -> 1 for numeric 0/1 variables (default); ``False``
            differentiates them.
        variables : list of str, optional
            The variables to report (default: all that move the prediction).

        Returns
        -------
        emstats.inference.margins.MarginalEffects
        """
        m = self.model
        if m.data is None or getattr(self, "data_removed", False):
            raise DataError("these results hold no data (remove_data() was called): "
                            "marginal effects need the estimation rows")
        dat = m.data
        m.response(self.raw_params, dat["X"][:1], dat["Z"][:1], dat["off"][:1],
                   dat["zoff"][:1], which)                   # checks which
        info, zinfo = m.design_info, m.zero_info
        if info is not None:
            frame = estimation_frame(self)
            terms = [info, zinfo]
            off = dat["off"] - (info.offset(frame) if info.has_offset else 0.0)
        else:
            frame = pd.DataFrame(dat["X"], columns=m.exog_names)
            for j, c in enumerate(m.zero_names):
                if c not in frame.columns:
                    frame[c] = dat["Z"][:, j]
            terms, off = None, dat["off"]

        def build(fr, fixed):
            if info is None:
                X = fr[m.exog_names].to_numpy(dtype=float)
                Z = fr[m.zero_names].to_numpy(dtype=float)
                o = fixed["off"]
            else:
                X, Z = info.matrix(fr), zinfo.matrix(fr)
                o = fixed["off"] + (info.offset(fr) if info.has_offset else 0.0)
            return {"X": X, "Z": Z, "off": o, "zoff": fixed["zoff"]}

        def response(theta, inp, grad):
            P = m.from_inference(theta)
            F, de, dz = m.response(P, inp["X"], inp["Z"], inp["off"], inp["zoff"], which)
            if not grad:
                return F, {}
            beta, _, gamma, _ = m._split(P)
            return F, {"X": de[:, None] * beta[None, :], "Z": dz[:, None] * gamma[None, :],
                       "off": de}

        return marginal_effects(
            self.params.to_numpy(), self._cov, build=build, response=response, frame=frame,
            fixed={"off": off, "zoff": dat["zoff"]}, weights=dat["w"], terms=terms, at=at,
            which=which, dummy=dummy, variables=variables)

    def count_table(self, max_count: int | None = None) -> pd.DataFrame:
        """Observed and expected frequencies of the counts 0..``max_count`` (default the
        largest count), the expected ones the sums of the fitted P(y_i = k).

        Parameters
        ----------
        max_count : int, optional
            The largest count tabulated (default: the largest observed).

        Returns
        -------
        pandas.DataFrame
            Columns ``observed``, ``expected``, indexed by the count.
        """
        m = self.model
        y, w = m.data["y"], m.data["w"]
        top = int(y.max()) if max_count is None else int(max_count)
        ks = np.arange(top + 1)
        prob = self.predict(which="prob", at=ks).to_numpy()
        obs = np.array([w[y == k].sum() for k in ks])
        return pd.DataFrame({"observed": obs, "expected": w @ prob},
                            index=pd.Index(ks, name="count"))

    def rootogram(self, ax=None, max_count: int | None = None, style: str = "hanging"):
        """Tukey's rootogram of the fit (matplotlib required): the square roots of the
        observed frequencies drawn as bars against the square roots of the expected ones
        (:meth:`count_table`) drawn as a curve.

        Parameters
        ----------
        ax : matplotlib Axes, optional
            Axes to draw on (default: a new figure).
        max_count : int, optional
            Largest count shown (default the largest observed).
        style : {"hanging", "standing", "suspended"}
            ``"hanging"``: bars hang from the curve, so a misfit shows as a bar ending
            above or below the zero line; ``"standing"``: bars stand on zero;
            ``"suspended"``: bars of sqrt(expected) - sqrt(observed) from zero.

        Returns
        -------
        matplotlib Axes
        """
        if style not in ("hanging", "standing", "suspended"):
            raise ValueError(f"style must be 'hanging', 'standing' or 'suspended', "
                             f"got {style!r}")
        try:
            import matplotlib.pyplot as plt
        except ImportError as err:  # pragma: no cover - depends on the environment
            raise ImportError("rootogram needs matplotlib: pip install emstats[plot]") \
                from err
        tab = self.count_table(max_count)
        k = tab.index.to_numpy()
        o, e = np.sqrt(tab["observed"].to_numpy()), np.sqrt(tab["expected"].to_numpy())
        bottom, height = {"hanging": (e - o, o), "standing": (np.zeros_like(o), o),
                          "suspended": (np.zeros_like(o), e - o)}[style]
        if ax is None:
            _, ax = plt.subplots()
        ax.bar(k, height, bottom=bottom, width=0.8, color="0.8", edgecolor="0.3",
               label="sqrt(observed)" if style != "suspended"
               else "sqrt(expected) - sqrt(observed)")
        ax.plot(k, e, "o-", color="C3", ms=4, label="sqrt(expected)")
        ax.axhline(0.0, color="0.2", lw=0.8)
        ax.set_xlabel(self.model.endog_name)
        ax.set_ylabel("sqrt(frequency)")
        ax.set_title(f"{style.capitalize()} rootogram")
        ax.legend(frameon=False)
        return ax

    def _designs(self, newdata):
        m = self.model
        dat = m.data
        if newdata is None:
            return dat["X"], dat["Z"], dat["off"], dat["zoff"]
        if m.design_info is None:
            raise ValueError("predict(newdata) needs a model built from a formula")
        X = new_exog(m.design_info, newdata)
        Z = new_exog(m.zero_info, newdata)

        def offset(spec, what):
            if isinstance(spec, str):
                return resolve_column(spec, newdata, what)
            if spec is not None:
                raise ValueError(f"predict(newdata) needs the {what} as a column name of "
                                 f"the data (the model got an array)")
            return np.zeros(X.shape[0])

        off = offset(m._offset_spec, "offset")
        if m.design_info.has_offset:     # the formula's offset() terms
            off = off + m.design_info.offset(newdata)
        return X, Z, off, offset(m._zero_offset_spec, "zero_offset")

    def predict(self, newdata=None, which: str = "mean", at=None):
        """Predictions for the model's rows or ``newdata`` (pscl's ``predict.zeroinfl``).

        Parameters
        ----------
        newdata : DataFrame, optional
            New rows (through the formula for a model built from one); default the estimation rows.
        which : {"mean", "count", "zero", "prob0", "prob"}
            ``"mean"``: E[y] = (1 - pi) mu; ``"count"``: mu, the mean of the count part;
            ``"zero"``: pi, the zero-inflation probability; ``"prob0"``: P(y = 0);
            ``"prob"``: P(y = k) for k in ``at`` (default 0..max(y)), one column per k.
        at : array_like of int, optional
            Counts for ``which="prob"``.

        Returns
        -------
        pandas.Series or DataFrame
        """
        m = self.model
        X, Z, off, zoff = self._designs(newdata)
        ks = (np.arange(m.y_max + 1) if at is None else np.asarray(at, dtype=int).ravel())
        return m.predict_arrays(self.raw_params, X, Z, off, zoff, which, ks)


ZeroInflatedRegression.results_class = ZeroInflatedResults


def _two_part_design(formula, data, offset, zero_offset, weights, missing):
    data = check_frame(data)
    count_f, zero_rhs = split_two_part(formula, data)
    Zfull, znames, zinfo, _ = rhs_matrix(zero_rhs, data)
    extras = {"__w": weights, "__off": offset, "__zoff": zero_offset,
              "__zero": np.where(np.isnan(Zfull).any(axis=1), np.nan, 0.0)}
    des = build_design(count_f, data, extras=extras, missing=missing, offset_key="__off")
    pos = data.index.get_indexer(des.row_labels)
    frame = variables_frame(data, [des.design_info, zinfo], des.row_labels)
    return frame, dict(y=des.endog[:, 0], X=des.exog, Z=Zfull[pos],
                offset=des.extras.get("__off"),
                zero_offset=des.extras.get("__zoff"), weights=des.extras.get("__w"),
                exog_names=des.exog_names, zero_names=znames, endog_name=des.endog_names[0],
                design_info=des.design_info, zero_info=zinfo, offset_spec=offset,
                zero_offset_spec=zero_offset)


def zeroinfl(formula: str, data, dist: str = "poisson", link: str = "logit", offset=None,
             zero_offset=None, weights=None, missing: str = "drop") -> ZeroInflatedRegression:
    """Zero-inflated Poisson, negative-binomial or geometric regression (pscl's
    ``zeroinfl``).

    Parameters
    ----------
    formula : str
        ``"y ~ x1 + x2 | z1 + z2"``: count regressors, then the regressors of the
        zero-inflation part; ``"y ~ x1 + x2"`` uses the same regressors in both parts,
        ``"y ~ x | 1"`` a constant inflation probability.  ``.`` stands for every other
        column of ``data``.
    data : pandas.DataFrame
        The data (never modified).
    dist : {"poisson", "negbin", "geometric"}
        The count distribution (``"negbin"``: NB2 with theta estimated; ``"geometric"``:
        NB2 with theta = 1).
    link : {"logit", "probit", "cloglog", "cauchit", "log"}
        Link of the inflation probability.
    offset : str or array_like, optional
        Offset of the count part's linear predictor (log scale).
    zero_offset : str or array_like, optional
        Offset of the zero part's linear predictor (on the link's scale).
    weights : str or array_like, optional
        Frequency weights.
    missing : {"drop", "raise"}

    Returns
    -------
    ZeroInflatedRegression
        Call ``.fit()`` for the results.

    Examples
    --------
    >>> import numpy as np, pandas as pd, emstats
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=2000)
    >>> y = np.where(rng.random(2000) < 0.3, 0, rng.poisson(np.exp(0.5 + 0.5 * x)))
    >>> res = emstats.zeroinfl("y ~ x | 1", pd.DataFrame({"y": y, "x": x})).fit()
    >>> bool(abs(res.params["zero_Intercept"] - np.log(0.3 / 0.7)) < 0.2)
    True
    """
    count_family(dist)
    BinaryPart(link)
    frame, kw = _two_part_design(formula, data, offset, zero_offset, weights, missing)
    model = ZeroInflatedRegression(dist=dist, link=link, **kw)
    model.frame = frame
    return model


class HurdleRegression(ZeroInflatedRegression):
    """Hurdle count regression: a binary model for y > 0 and a zero-truncated Poisson, NB2
    or geometric distribution for the positive counts (pscl's ``hurdle``).

    P(y_i = 0) = 1 - pi_i, P(y_i = k) = pi_i f(k | mu_i) / (1 - f(0 | mu_i)) for k > 0; the
    ``zero_*`` coefficients model P(y > 0), as pscl's: through a binary link
    (``zero_dist="binomial"``) or as pi_i = 1 - f_z(0 | exp(z_i' gamma)) for a count
    distribution f_z (``"poisson"``, ``"negbin"`` with its own theta, ``"geometric"``).

    EM for the truncated part: a positive count is the first non-zero of a run of draws
    from f, the M_i zeros before it unobserved, M_i geometric with mean
    f0 / (1 - f0) and variance f0 / (1 - f0)^2.  The complete-data log-likelihood
    log f(y_i) + M_i log f(0) is linear in M_i, so the E-step gives E[M_i] and the M-step
    is one Newton step on the count part (with weights: w_i at y_i, w_i E[M_i] at 0) and
    one scoring step on the zero part (which has no missing data).  Louis' missing
    information is sum_i w_i Var(M_i) s0_i s0_i', s0_i the count score at y = 0.

    Parameters
    ----------
    y, X, Z :
        As in :class:`ZeroInflatedRegression` (``Z`` is the design of the hurdle part).
    zero_dist : {"binomial", "poisson", "negbin", "geometric"}
        Model of P(y > 0) (see :func:`hurdle`).
    **kw
        The other arguments of :class:`ZeroInflatedRegression`.
    """

    summary_title = "Hurdle Count Regression Results"

    def __init__(self, y, X, Z, *, zero_dist="binomial", **kw):
        if zero_dist != "binomial" and zero_dist not in COUNT_DISTS:
            raise ValueError("zero_dist must be 'binomial', "
                             f"{', '.join(map(repr, COUNT_DISTS))}, got {zero_dist!r}")
        self.zero_dist = zero_dist
        super().__init__(y, X, Z, **kw)
        y = self.data["y"][self.data["w"] > 0]
        if np.all(y[y > 0] == 1):
            raise DataError(
                f"every non-zero {self.endog_name} is 1: the zero-truncated count part's "
                "mean goes to 0 and its coefficients diverge (a binary model of y > 0 "
                "describes these data)")

    def _make_zero_part(self, link):
        if self.zero_dist == "binomial":
            return BinaryPart(link)
        if link != "logit":
            raise ValueError(f"link applies to zero_dist='binomial' only (got link={link!r} "
                             f"with zero_dist={self.zero_dist!r})")
        return CountZeroPart(self.zero_dist)

    def _rows(self, params, ch):
        eta, phi, u, phiz, lf = self._predictors(params, ch)
        zd = self.zero_part.derivs(u, phiz)
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            lf0 = self.family.logpdf(np.zeros_like(eta), eta[:, None], phi, None)[:, 0]
            l1f0 = np.log(-np.expm1(lf0))
            pos = ch["y"] > 0
            ll = np.where(pos, zd[0] + lf - l1f0, zd[1])
            em = np.where(pos, np.exp(lf0 - l1f0), 0.0)
            vm = np.where(pos, em / -np.expm1(lf0), 0.0)
        return eta, phi, zd, (em, vm), ll

    def _terms(self, params, ch):
        eta, phi, zd, (em, vm), ll = self._rows(params, ch)
        w = ch["w"]
        pos = (ch["y"] > 0).astype(float)
        der = self.family.derivs(ch["y"], eta[:, None], phi)
        der0 = self.family.derivs(np.zeros_like(eta), eta[:, None], phi)
        # weights of the observed y and of the latent zeros before it
        return [(der, w * pos), (der0, w * em)], pos, zd, (der0, vm), ll

    def _louis_rows(self, params, chunk):
        gc, Hc, gz, Hz, (der0, vm), ll = self._pieces(params, chunk, fisher=False)
        p, d = self.p, self.d
        w = chunk["w"]
        A = np.zeros((chunk["y"].size, p + d + self.q + self.dz))
        A[:, :p] = der0["d1"][:, :1] * chunk["X"]
        if d:
            A[:, p] = der0["dp"][:, 0]
        return self._louis(gc, Hc, gz, Hz, ll, w, A, w * vm)

    def start_params(self) -> dict:
        """A Poisson GLM on the positive rows and a binary regression of 1{y > 0} (through
        the cloglog link for a Poisson zero hurdle, the logit for a geometric one; for a
        negative binomial one the best of the fits with log theta = -4, -3, ..., 4)."""
        dat = self.data
        pos = dat["y"] > 0
        part = self.zero_part

        def fit(part):
            return _binary_start(part, pos.astype(float), dat["Z"], dat["w"], dat["zoff"])

        if not isinstance(part, CountZeroPart):
            gamma = fit(part)[0]
        elif not self.dz:
            gamma = fit(BinaryPart("cloglog" if self.zero_dist == "poisson" else "logit"))[0]
        else:
            # the likelihood can be flat or convex in log theta far from its maximum, so
            # start on a coarse profile
            best = max(((fit(_FixedExtra(part, phi)), phi) for phi in np.arange(-4.0, 4.5)),
                       key=lambda r: r[0][1])
            gamma = np.append(best[0][0], best[1])
        return {"count": self._count_start(pos.astype(float)), "zero": gamma}

    def response(self, params, X, Z, off, zoff, which):
        """As :meth:`ZeroInflatedRegression.response`, with ``"mean"`` R mu, ``"zero"``
        pscl's ratio R = P(y > 0) / P_count(y > 0) and ``"prob0"`` 1 - P(y > 0)."""
        eta, phi, pi, qi, dpi = self._linear(params, X, Z, off, zoff)
        mu = np.exp(eta)
        if which == "count":
            return mu, mu, np.zeros_like(mu)
        if which == "prob0":
            return qi, np.zeros_like(qi), -dpi
        if which not in ("mean", "zero"):
            raise ValueError(f"which must be 'mean', 'count', 'zero' or 'prob0', "
                             f"got {which!r}")
        f0, d0 = self._f0(eta, phi)
        c = 1.0 / -np.expm1(np.log(f0))
        r, re, rz = pi * c, pi * c * c * f0 * d0, dpi * c
        if which == "zero":
            return r, re, rz
        return r * mu, r * mu + re * mu, rz * mu

    def _prob_k(self, eta, phi, pi, qi, k):
        if k == 0:
            return qi
        f0 = self._count_pmf(eta, phi, 0)
        return pi / -np.expm1(np.log(f0)) * self._count_pmf(eta, phi, k)

    def posterior_zero(self, params) -> np.ndarray:
        raise AttributeError("a hurdle model has no latent structural zeros")


class HurdleResults(ZeroInflatedResults):
    """Results of a hurdle count regression (``zero_*`` model P(y > 0))."""

    _zero_title = "Zero hurdle:"


HurdleRegression.results_class = HurdleResults


def hurdle(formula: str, data, dist: str = "poisson", zero_dist: str = "binomial",
           link: str = "logit", offset=None, zero_offset=None, weights=None,
           missing: str = "drop") -> HurdleRegression:
    """Hurdle count regression (pscl's ``hurdle``).

    Parameters
    ----------
    formula : str
        As :func:`zeroinfl`: ``"y ~ count regressors | hurdle regressors"``.
    data : pandas.DataFrame
        The data (never modified).
    dist : {"poisson", "negbin", "geometric"}
        Distribution of the zero-truncated count part.
    zero_dist : {"binomial", "poisson", "negbin", "geometric"}
        Model of P(y > 0): a binary regression through ``link``, or one minus the zero
        probability of a count distribution with log mean z' gamma (the negative binomial
        with its own theta, reported as ``zero_Log(theta)``).
    link : {"logit", "probit", "cloglog", "cauchit", "log"}
        Link of the binomial zero hurdle.
    offset, zero_offset, weights, missing :
        As :func:`zeroinfl`.

    Returns
    -------
    HurdleRegression
        Call ``.fit()`` for the results.
    """
    count_family(dist)
    BinaryPart(link)
    frame, kw = _two_part_design(formula, data, offset, zero_offset, weights, missing)
    model = HurdleRegression(dist=dist, zero_dist=zero_dist, link=link, **kw)
    model.frame = frame
    return model


def vuong(res1, res2) -> pd.DataFrame:
    """Vuong's (1989) non-nested test of two count models fitted to the same rows
    (pscl's ``vuong``).

    Parameters
    ----------
    res1, res2 :
        Results with a ``loglikeobs()`` method (emstats' zero-inflated and hurdle
        results) or statsmodels discrete-model results (``res.model.loglikeobs``).

    Returns
    -------
    pandas.DataFrame
        Rows ``Raw``, ``AIC-corrected``, ``BIC-corrected``; columns ``statistic``,
        ``H_A`` (which model the sign favours) and the one-sided ``p-value``.
    """
    from scipy.stats import norm

    def parts(r):
        if hasattr(r, "loglikeobs"):
            return np.asarray(r.loglikeobs(), dtype=float), len(r.params)
        par = np.asarray(r.params, dtype=float)
        return np.asarray(r.model.loglikeobs(par), dtype=float), par.size

    (l1, k1), (l2, k2) = parts(res1), parts(res2)
    if l1.shape != l2.shape:
        raise ValueError(f"the two models were fitted to different numbers of rows "
                         f"({l1.size} and {l2.size})")
    m = l1 - l2
    n = m.size
    sd = float(np.std(m, ddof=1))
    rows = {}
    for name, adj in (("Raw", 0.0), ("AIC-corrected", float(k1 - k2)),
                      ("BIC-corrected", (k1 - k2) * np.log(n) / 2.0)):
        v = np.sqrt(n) * ((m.sum() - adj) / n) / sd
        rows[name] = {"statistic": v, "H_A": "model1 > model2" if v > 0 else "model2 > model1",
                      "p-value": float(norm.sf(abs(v)))}
    return pd.DataFrame(rows).T.astype({"statistic": float, "p-value": float})
