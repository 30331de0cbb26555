"""Response distributions of generalised linear models, as components of mixtures.

Each family is a set of K components sharing a linear predictor structure: the
log-density of every row under every component given the linear predictors
``eta`` (n, K) and, where the family has one, a per-component dispersion parameter
on the log scale ``phi`` (K,) -- log sigma for the Gaussian, log theta for NB2.
The pieces a mixture (or an HMM, a zero-inflated model) needs are:

* ``logpdf(y, eta, phi, m)``: log f_k(y_i), shape (n, K);
* ``derivs(y, eta, phi, m)``: per-row first and second derivatives of log f in the
  linear predictor and in phi (``d1 = dl/deta``, ``d2 = d2l/deta2`` and, with a
  dispersion, ``dp``, ``dpp``, ``dep``), from which the score of the coefficients is
  ``d1 * x`` and their information ``-d2 * x x'``; weighted sums of these pieces give
  both the weighted IRLS / Newton M-step and Louis' complete-data information;
* ``mean(eta, m)``: the mean of y, ``inverse_link(eta)`` times the trials for the
  binomial;
* ``check(y, m)``: the response validated (a ``DataError`` naming the bad rows).

``m`` is the number of binomial trials per row (ignored by the other families).
Links are canonical (identity, log, logit) except NB2's log link.
"""

from __future__ import annotations

import numpy as np
from scipy.special import digamma, expit, gammaln, polygamma

LOG_2PI = float(np.log(2.0 * np.pi))


def _bad_rows(bad: np.ndarray, y: np.ndarray, what: str, name: str):
    from ..exceptions import DataError

    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise DataError(f"{name} must be {what}; {int(bad.sum())} row(s) are not (first: row "
                        f"{first}, value {y[first]!r})")


class GLMFamily:
    """Base class: a response distribution with a linear predictor."""

    name = "?"
    #: name of the dispersion parameter on the log scale, or None
    dispersion: str | None = None
    link = "?"
    #: the family's number in the compiled mixture-of-regressions kernel
    kernel_code = -1

    def check(self, y: np.ndarray, m: np.ndarray | None = None, name: str = "y") -> np.ndarray:
        """The response as a float array (raises ``DataError`` when invalid)."""
        y = np.asarray(y, dtype=float)
        _bad_rows(~np.isfinite(y), y, "finite", name)
        return y

    def log_const(self, y, m=None) -> np.ndarray:
        """The part of log f that involves no parameter, per row."""
        return np.zeros_like(np.asarray(y, dtype=float))

    def inverse_link(self, eta):
        raise NotImplementedError

    def mean(self, eta, m=None):
        """Mean of the response given the linear predictor."""
        return self.inverse_link(eta)

    def start_phi(self, y, mu, w, m=None) -> float:
        """A start value of the dispersion (log scale) from fitted means."""
        return 0.0

    def working(self, y, eta, m=None):
        """IRLS working response and weights (for starting values)."""
        d = self.derivs(y[:, None], eta[:, None], np.zeros(1), None if m is None
                        else m[:, None])
        wt = np.maximum(-d["d2"][:, 0], 1e-10)
        return eta + d["d1"][:, 0] / wt, wt


class Gaussian(GLMFamily):
    """Normal responses, identity link, component standard deviations sigma_k = exp(phi_k)."""

    name = "gaussian"
    kernel_code = 0
    dispersion = "log(sigma)"
    link = "identity"

    def log_const(self, y, m=None):
        return np.full(np.shape(y), -0.5 * LOG_2PI)

    def inverse_link(self, eta):
        return eta

    def logpdf(self, y, eta, phi, m=None, c=None):
        c = self.log_const(y) if c is None else c
        s2 = np.exp(2.0 * phi)
        return c[:, None] - phi[None, :] - 0.5 * (y[:, None] - eta) ** 2 / s2[None, :]

    def derivs(self, y, eta, phi, m=None):
        e = (y if y.ndim == 2 else y[:, None]) - eta
        iv = np.exp(-2.0 * phi)[None, :]
        e2 = e * e * iv
        return {"d1": e * iv, "d2": np.broadcast_to(-iv, e.shape),
                "dp": e2 - 1.0, "dpp": -2.0 * e2, "dep": -2.0 * e * iv}

    def start_phi(self, y, mu, w, m=None):
        e = y - mu
        np.square(e, out=e)                    # (y - mu)^2 in place: one vector of n
        v = float(w @ e / max(w.sum(), 1e-300))
        del e
        return 0.5 * np.log(max(v, 1e-8 * max(float(np.var(y)), 1e-300)))

    def working(self, y, eta, m=None):
        return y.astype(float), np.ones_like(eta)


class PoissonGLM(GLMFamily):
    """Poisson counts with a log link."""

    name = "poisson"
    kernel_code = 1
    link = "log"

    def check(self, y, m=None, name="y"):
        y = np.asarray(y, dtype=float)
        _bad_rows(~np.isfinite(y) | (y < 0) | (y != np.round(y)), y,
                  "non-negative integer counts", name)
        return y

    def log_const(self, y, m=None):
        return -gammaln(np.asarray(y, dtype=float) + 1.0)

    def inverse_link(self, eta):
        return np.exp(eta)

    def logpdf(self, y, eta, phi=None, m=None, c=None):
        c = self.log_const(y) if c is None else c
        return y[:, None] * eta - np.exp(eta) + c[:, None]

    def derivs(self, y, eta, phi=None, m=None):
        mu = np.exp(eta)
        yy = y if y.ndim == 2 else y[:, None]
        return {"d1": yy - mu, "d2": -mu}

    def working(self, y, eta, m=None):
        mu = np.exp(eta)
        return eta + (y - mu) / mu, mu


class Binomial(GLMFamily):
    """Binomial successes out of ``m`` trials with a logit link."""

    name = "binomial"
    kernel_code = 2
    link = "logit"

    def check(self, y, m=None, name="y"):
        y = np.asarray(y, dtype=float)
        m = np.ones_like(y) if m is None else np.asarray(m, dtype=float)
        _bad_rows(~np.isfinite(m) | (m <= 0) | (m != np.round(m)), m,
                  "positive integer numbers of trials", "trials")
        what = ("0/1 (or use cbind(successes, failures) ~ ... or trials=)"
                if np.all(m == 1) else "integer successes between 0 and the trials")
        _bad_rows(~np.isfinite(y) | (y < 0) | (y > m) | (y != np.round(y)), y, what, name)
        return y

    def log_const(self, y, m=None):
        m = np.ones_like(y) if m is None else m
        return gammaln(m + 1.0) - gammaln(y + 1.0) - gammaln(m - y + 1.0)

    def inverse_link(self, eta):
        return expit(eta)

    def mean(self, eta, m=None):
        p = expit(eta)
        return p if m is None else p * (m if np.ndim(m) == np.ndim(eta) else m[:, None])

    def logpdf(self, y, eta, phi=None, m=None, c=None):
        c = self.log_const(y, m) if c is None else c
        mm = np.ones_like(y) if m is None else m
        # log(1 + e^eta) = logaddexp(0, eta)
        return y[:, None] * eta - mm[:, None] * np.logaddexp(0.0, eta) + c[:, None]

    def derivs(self, y, eta, phi=None, m=None):
        p = expit(eta)
        yy = y if y.ndim == 2 else y[:, None]
        mm = 1.0 if m is None else (m if m.ndim == 2 else m[:, None])
        return {"d1": yy - mm * p, "d2": -mm * p * (1.0 - p)}

    def working(self, y, eta, m=None):
        mm = np.ones_like(y) if m is None else m
        p = expit(eta)
        v = np.maximum(mm * p * (1 - p), 1e-10)
        return eta + (y - mm * p) / v, v


class NegativeBinomial(GLMFamily):
    """NB2 counts: mean mu = exp(eta), variance mu + mu^2 / theta, theta_k = exp(phi_k)."""

    name = "negbin"
    kernel_code = 3
    dispersion = "log(theta)"
    link = "log"

    check = PoissonGLM.check
    log_const = PoissonGLM.log_const

    def inverse_link(self, eta):
        return np.exp(eta)

    def logpdf(self, y, eta, phi, m=None, c=None):
        c = self.log_const(y) if c is None else c
        th = np.exp(phi)[None, :]
        yy = y[:, None]
        lmt = np.logaddexp(eta, phi[None, :])       # log(mu + theta)
        return (gammaln(yy + th) - gammaln(th) + c[:, None] + th * (phi[None, :] - lmt)
                + yy * (eta - lmt))

    def derivs(self, y, eta, phi, m=None):
        th = np.exp(phi)[None, :]
        mu = np.exp(eta)
        yy = y if y.ndim == 2 else y[:, None]
        tm = th + mu
        d1 = th * (yy - mu) / tm
        d2 = -th * mu * (yy + th) / tm ** 2
        lt = digamma(yy + th) - digamma(th) + np.log(th / tm) + 1.0 - (th + yy) / tm
        ltt = (polygamma(1, yy + th) - polygamma(1, th) + 1.0 / th - 2.0 / tm
               + (th + yy) / tm ** 2)
        return {"d1": d1, "d2": d2, "dp": th * lt, "dpp": th * th * ltt + th * lt,
                "dep": th * (yy - mu) * mu / tm ** 2}

    def start_phi(self, y, mu, w, m=None):
        # moments: E (y - mu)^2 - mu = mu^2 / theta
        num = float(w @ (mu * mu))
        den = float(w @ np.maximum((y - mu) ** 2 - mu, 0.0))
        return float(np.log(np.clip(num / max(den, 1e-12), 1e-2, 1e4)))

    def working(self, y, eta, m=None):
        mu = np.exp(eta)
        return eta + (y - mu) / mu, mu


FAMILIES = {"gaussian": Gaussian, "poisson": PoissonGLM, "binomial": Binomial,
            "negbin": NegativeBinomial}


def get_family(name) -> GLMFamily:
    """The family object for ``name`` (``"gaussian"``, ``"poisson"``, ``"binomial"``,
    ``"negbin"``)."""
    if isinstance(name, GLMFamily):
        return name
    if not isinstance(name, str) or name.lower() not in FAMILIES:
        raise ValueError(f"family must be one of {sorted(FAMILIES)}, got {name!r}")
    return FAMILIES[name.lower()]()


def separating_direction(X, sign) -> np.ndarray | None:
    """A direction ``d != 0`` along which a linear predictor diverges, or None.

    ``sign`` gives per row the side the predictor ``x_i'd`` must keep: +1 for
    ``x_i'd >= 0``, -1 for ``x_i'd <= 0``, 0 for ``x_i'd = 0``; a ``d`` meeting
    every row's side with at least one strict inequality is a (quasi-)separating
    direction (Albert & Anderson 1984): a likelihood that does not decrease along it
    has no finite maximum.  Found by the linear programme ``max sum_i sign_i x_i'd``
    under those constraints and ``|d_j| <= 1``, on columns scaled to unit range (the
    returned ``d`` is on the original scale; entries below 1e-9 are set to 0).
    """
    from scipy.optimize import linprog

    X = np.asarray(X, dtype=float)
    sgn = np.asarray(sign, dtype=float)
    span = np.ptp(X, axis=0)
    scale = np.where(span > 0, span, np.where(np.any(X != 0, axis=0),
                                              np.max(np.abs(X), axis=0), 1.0))
    Xs = X / scale
    pure = sgn != 0
    A_ub = -(sgn[pure, None] * Xs[pure])
    if A_ub.size:
        A_ub = np.unique(A_ub, axis=0)
    A_eq = np.unique(Xs[~pure], axis=0) if (~pure).any() else None
    c = -(sgn[:, None] * Xs).sum(axis=0)
    res = linprog(c, A_ub=A_ub if A_ub.size else None,
                  b_ub=np.zeros(A_ub.shape[0]) if A_ub.size else None,
                  A_eq=A_eq, b_eq=None if A_eq is None else np.zeros(A_eq.shape[0]),
                  bounds=[(-1.0, 1.0)] * X.shape[1], method="highs")
    if res.status != 0 or -res.fun <= 1e-7 * max(1.0, float(pure.sum())):
        return None
    d = np.where(np.abs(res.x) > 1e-9, res.x, 0.0)
    return d / scale


#: rows of a block of :func:`weighted_irls` (its per-row temporaries are of this size)
IRLS_BLOCK = 65536


def weighted_irls(family: GLMFamily, y, X, w, offset=None, m=None, maxiter: int = 25,
                  tol: float = 1e-8):
    """Coefficients of a weighted GLM fit by IRLS (used for starting values).

    Parameters
    ----------
    family : GLMFamily
    y : (n,) response; X : (n, p) design; w : (n,) non-negative weights
    offset : (n,) optional; m : (n,) binomial trials, optional

    Returns
    -------
    beta : (p,) ndarray
        The weighted fit (a ridge of 1e-8 keeps it defined for a singular design).
    """
    n, p = X.shape
    blocks = [slice(a, min(a + IRLS_BLOCK, n)) for a in range(0, n, IRLS_BLOCK)]

    def rows(v, r):
        return None if v is None else v[r]

    def eta0(r):
        # the first linear predictor, without the offset
        if family.name == "gaussian":
            return np.zeros(r.stop - r.start)
        o = 0.0 if offset is None else offset[r]
        if family.name == "binomial":
            mm = 1.0 if m is None else m[r]
            return np.log((y[r] + 0.5) / (mm - y[r] + 0.5)) - o
        return np.log(y[r] + 0.5) - o

    beta = np.zeros(p)
    ridge = 1e-8 * (np.einsum("n,np,np->", w, X, X) / max(p, 1) + 1.0)
    for it in range(maxiter):
        # the weighted normal equations, by blocks of rows (no n x p temporary)
        A, rhs = ridge * np.eye(p), np.zeros(p)
        for r in blocks:
            if it == 0:
                eta = eta0(r)
            else:
                eta = X[r] @ beta
                if family.name != "gaussian":
                    eta = np.clip(eta, -30, 30)
            off = 0.0 if offset is None else offset[r]
            z, v = family.working(y[r], eta + off, rows(m, r))
            z = z - off
            XW = X[r] * (w[r] * v)[:, None]
            A += XW.T @ X[r]
            rhs += XW.T @ z
        new = np.linalg.solve(A, rhs)
        done = np.max(np.abs(new - beta)) < tol * (1 + np.max(np.abs(new)))
        beta = new
        if family.name == "gaussian" or done:
            break
    return beta
