"""Hidden Markov models fitted by Baum-Welch (EM) with exact observed-information standard errors.

A K-state HMM has an unobserved Markov chain S_1, S_2, ... with initial
distribution delta and transition matrix A (A[i, j] = P(S_t+1 = j | S_t = i)),
and observations that are independent given the states with state-dependent
densities p_k: Poisson, Gaussian (diagonal, full, tied or spherical covariance) or
categorical.
Several independent sequences share the parameters.

EM (Baum-Welch) treats the states as missing data.  The E-step is the scaled
forward-backward recursion of :mod:`emstats._kernels.hmm_kernels` (Cython,
``prange`` over sequences, per-block accumulators reduced in a fixed order so
the result does not depend on the number of threads); it returns the expected
numbers of starts in each state, of transitions i -> j and the
posterior-weighted emission sums, from which the M-step is closed form.  Two
exceptions: ``initial="stationary"`` (delta is the stationary distribution of
A, as in Zucchini & MacDonald 2009) makes the transition M-step a small
smooth optimisation, done numerically from the current A (a generalised EM
step: it never lowers the expected complete-data log-likelihood); and
transitions fixed at zero (``transitions=``) stay zero because EM's expected
count of an impossible transition is zero.

Coordinates.  ``pack`` (used by SQUAREM) maps each probability row to the
log-ratios of its free entries against the last free entry, rates and
variances to logs, full covariances to log-Cholesky factors.  Inference
(standard errors) uses the natural scale: the free probabilities of each row
except the last free one (which is the complement), rates, means, variances
and the lower triangle of each covariance matrix.

Standard errors.  The observed information is exact, by Louis' identity with the
exact conditional second moments of the complete-data score (``score_and_louis``).
The score is a sum of terms f_t(S_(t-1), S_t), each sparse (one row of transition
coordinates and one state's emission block).  Given the data the states form a
Markov chain with backward transition probabilities xi_t(k, l) / gamma_t(l), so
E[Sc Sc' | y] follows from one forward pass carrying, for each state l, the
conditional mean mu_t(l) = E[f_1 + ... + f_t | S_t = l, y]:

    mu_t(l) = sum_k xi_t(k, l) (mu_(t-1)(k) + f_t(k, l)) / gamma_t(l),
    E[Sc Sc'] = sum_t sum_kl xi_t(k, l) (f_t f_t' + mu_(t-1)(k) f_t' + f_t mu_(t-1)(k)'),

at O(P (K^2 + K q + P_A)) per row (kernel ``louis_rows``).  The missing information
is E[Sc Sc' | y] - E[Sc | y] E[Sc | y]' summed over sequences; the expected
complete-data information comes from the posterior counts and emission statistics.
An independent exact route, differentiating the scaled forward recursion twice
(Lystig & Hughes 2002, J. Comput. Graph. Statist. 11, 678-689;
``loglike_derivatives``, O(T P^2 K^2)), agrees to rounding and serves as a check.

Probabilities that converge to zero (e.g. a start distribution estimated from
one sequence, which always ends on a vertex) lie on the boundary of the
parameter space where the usual asymptotics fail: entries below
``boundary_tol`` after EM are fixed at zero, the fit is finished without them
and they are listed in the summary (AIC and BIC still count them).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import optimize, special

from .._config import information_memory_limit, resolve_threads
from .._kernels import hmm_kernels as hk
from ..components.init import kmeans, quantile_starts
from ..em.data import ArrayData, Chunk
from ..em.params import Block, Cholesky, Free, ParamSpec, Positive, Simplex
from ..em.protocol import ChunkedModel
from ..em.stats import Stats
from ..exceptions import DataError, InformationTooLargeError
from ..exceptions import describe_rows as _labels
from ..formula import data_frame, evaluate_terms
from ..inference.fit import FitMixin
from ..inference.results import EMResults

#: sequences at least this long get row-parallel emission and statistics passes
LONG_SEQUENCE = 1 << 16
#: short sequences are grouped into blocks of about this many rows (one accumulator each)
BLOCK_ROWS = 2048
#: Louis' pass runs on at most this many blocks of sequences (each with P x P partial sums)
LOUIS_BLOCKS = 16
#: rows of a piece of a chunk that one forward-backward pass covers (whole sequences; a
#: longer sequence is a piece of its own): the work arrays, the feature rows [1, x, x^2]
#: and the transposed data of the emission kernel are made per piece, of this size
PIECE_ROWS = 1 << 14
EMISSIONS = ("poisson", "gaussian", "categorical")
#: covariance structures of a Gaussian emission: one matrix per state ("full"), diagonal
#: per state ("diag"), one matrix common to the states ("tied", statsmodels'
#: MarkovRegression and Stata's mswitch with a common variance), one variance per state
#: common to the variables ("spherical")
COVARIANCES = ("diag", "full", "tied", "spherical")
LOG_2PI = float(np.log(2.0 * np.pi))




# ---------------------------------------------------------------------------------------
# parameters and probability rows
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class HMMParams:
    """Parameters of an HMM on their natural scale.

    Parameters
    ----------
    startprob : ndarray, shape (K,)
        Distribution of the first state of each sequence.
    transmat : ndarray, shape (K, K)
        ``transmat[i, j] = P(S_(t+1) = j | S_t = i)``.
    emission : dict of str to ndarray
        ``{"rates"}`` (Poisson), ``{"means", "vars"}`` (Gaussian, diagonal: vars
        (K, d); spherical: vars (K,)), ``{"means", "covs"}`` (Gaussian, full),
        ``{"means", "cov"}`` (Gaussian, tied: one (d, d) matrix) or ``{"probs"}``
        (categorical).
    """

    startprob: np.ndarray
    transmat: np.ndarray
    emission: dict

    def copy(self) -> HMMParams:
        """A deep copy."""
        return HMMParams(self.startprob.copy(), self.transmat.copy(),
                         {k: v.copy() for k, v in self.emission.items()})


def stationary_distribution(A: np.ndarray) -> np.ndarray:
    """Stationary distribution of a transition matrix: delta (I - A + U) = 1'.

    Raises ``numpy.linalg.LinAlgError`` when it is not unique (reducible chain).
    """
    K = A.shape[0]
    Z = np.eye(K) - A + 1.0
    return np.linalg.solve(Z.T, np.ones(K))


# ---------------------------------------------------------------------------------------
# emission families
# ---------------------------------------------------------------------------------------


class _Emission:
    """Interface of an emission family (state-dependent distribution)."""

    etype = -1
    name = "?"

    def __init__(self, K: int, d: int, var_names: list[str], M: int = 1):
        self.K, self.d, self.M = K, d, M
        self.var_names = var_names

    q = 0  # parameters per state
    #: parameters common to the states, after the K q per-state ones (a tied covariance)
    n_shared = 0
    #: Louis' pieces by the kernel ``louis_blocks`` (False: by the exact derivatives of
    #: the forward recursion, ``loglike_derivatives``)
    louis_kernel = True
    #: the state-dependent parameters as blocks with leading axis K (state-major order)
    blocks: list[Block] = []

    def local_names(self) -> list[str]:
        raise NotImplementedError

    def shared_names(self) -> list[str]:
        """Names of the parameters common to the states."""
        return []

    @property
    def n_params(self) -> int:
        """Emission coordinates: K q per-state and ``n_shared`` common ones."""
        return self.K * self.q + self.n_shared

    def index(self, k: int) -> np.ndarray:
        """Positions (within the emission coordinates) of the local coordinates of state
        ``k``: its own block, then the shared ones; ``derivs`` and ``complete_info``
        return derivatives in this order."""
        own = np.arange(k * self.q, (k + 1) * self.q)
        return np.concatenate([own, self.K * self.q + np.arange(self.n_shared)])

    # -- parameter maps, generated from the blocks, one row of coordinates per state ------
    def _rows(self, em, fn: str) -> np.ndarray:
        return np.concatenate([getattr(b, fn)(em[b.name]).reshape(self.K, -1)
                               for b in self.blocks], axis=1)

    def _split(self, u, fn: str) -> dict:
        u = np.asarray(u, dtype=float).reshape(self.K, -1)
        out, pos = {}, 0
        for b in self.blocks:
            w = b.size // self.K
            out[b.name] = getattr(b, fn)(np.ascontiguousarray(u[:, pos:pos + w]).ravel())
            pos += w
        return out

    def pack(self, em) -> np.ndarray:
        """Unconstrained coordinates (logs, log-ratios, log-Cholesky), state by state."""
        return self._rows(em, "pack").ravel()

    def unpack(self, u) -> dict:
        return self._split(u, "unpack")

    def collapsed(self, em, model) -> np.ndarray:
        """States (a boolean per state) whose emission covariance is at the model's floor
        (numerically singular); none for emissions whose likelihood is bounded."""
        return np.zeros(self.K, dtype=bool)

    def to_inf(self, em) -> np.ndarray:
        """Inference coordinates, shape (K, q): the natural parameters of each state."""
        return self._rows(em, "to_inference")

    def from_inf(self, th) -> dict:
        return self._split(th, "from_inference")


def _at_floor(w: np.ndarray) -> np.ndarray:
    """Rows of ``w`` (eigenvalues or variances per state, in units of the floor) with one
    at the floor: the M-steps raise a variance to the floor, and a covariance's smallest
    eigenvalue to at most twice it; rounding of the rebuilt matrix adds ``d`` eps of its
    largest eigenvalue."""
    w = np.atleast_2d(w)
    limit = 2.0 * (1.0 + 1e-3) + 64.0 * w.shape[1] * np.finfo(float).eps * np.abs(w).max(axis=1)
    return ~(w.min(axis=1) > limit)


class PoissonEmission(_Emission):
    etype = 0
    name = "Poisson"

    def __init__(self, K, d, var_names, M=1):
        super().__init__(K, d, var_names, M)
        self.q = 1
        self.blocks = [Positive("rates", (K,))]

    def local_names(self):
        return ["lambda"]

    def kernel_args(self, em, model):
        lam = em["rates"]
        return np.log(lam), lam.copy()

    def grad_args(self, em, model):
        return em["rates"].copy(), _DUMMY

    def complete_info(self, n, sums, em, model):
        """E[-d2 log Lc | y] of each state's block from the E-step's statistics."""
        return (sums / em["rates"] ** 2)[:, None, None]

    def valid(self, em):
        lam = em["rates"]
        return bool(lam.shape == (self.K,) and np.all(np.isfinite(lam)) and np.all(lam > 0))

    def m_step(self, n, sums, em, model):
        old = em["rates"]
        lam = np.where(n > 0, sums / np.where(n > 0, n, 1.0), old)
        return {"rates": np.maximum(lam, 1e-12)}

    def logdens(self, X, codes, em):
        lam = em["rates"]
        x = X[:, :1]
        return special.xlogy(x, lam[None, :]) - lam[None, :] - special.gammaln(x + 1.0)

    def derivs(self, X, codes, em, hess=True):
        lam = em["rates"]
        x = X[:, :1]
        g = (x / lam - 1.0)[:, :, None]
        if not hess:
            return g, None
        h = (-x / lam**2)[:, :, None, None]
        return g, h

    def init(self, rng, model, attempt):
        x = model.X[:, 0]
        K = self.K
        lam = quantile_starts(x, K, rng if attempt else None) + \
            0.1 * (np.arange(K) + 1) * (attempt == 0)
        lam = np.maximum(lam, 0.1 + 1e-3 * np.arange(K))
        return {"rates": np.sort(lam)}

    def sample(self, rng, em, states):
        return rng.poisson(em["rates"][states]).astype(float)[:, None]

    def state_means(self, em):
        return em["rates"][:, None]

    def state_vars(self, em):
        return em["rates"][:, None]

    def natural(self, em):
        return {"rates": em["rates"]}


class GaussianDiagEmission(_Emission):
    etype = 1
    name = "Gaussian (diagonal covariance)"

    def __init__(self, K, d, var_names, M=1):
        super().__init__(K, d, var_names, M)
        self.q = 2 * d
        self.blocks = [Free("means", (K, d)), Positive("vars", (K, d))]

    def local_names(self):
        return [f"mu[{v}]" for v in self.var_names] + [f"var[{v}]" for v in self.var_names]

    def kernel_args(self, em, model):
        mu = em["means"] - model._xbar
        v = em["vars"]
        lc = -0.5 * self.d * LOG_2PI - 0.5 * np.log(v).sum(axis=1)
        return np.ascontiguousarray(mu).ravel(), (1.0 / v).ravel(), lc

    def grad_args(self, em, model):
        return (np.ascontiguousarray(em["means"] - model._xbar).ravel(),
                np.ascontiguousarray(1.0 / em["vars"]).ravel())

    def complete_info(self, n, sums, em, model):
        K, d = self.K, self.d
        s1 = sums[:K * d].reshape(K, d)
        s2 = sums[K * d:].reshape(K, d)
        c = em["means"] - model._xbar                  # the means about the data's centre
        m1 = s1 - n[:, None] * c                       # sum gamma (x - mu)
        m2 = s2 - 2.0 * c * s1 + n[:, None] * c**2     # sum gamma (x - mu)^2
        iv = 1.0 / em["vars"]
        out = np.zeros((K, 2 * d, 2 * d))
        j = np.arange(d)
        out[:, j, j] = n[:, None] * iv
        out[:, j, d + j] = out[:, d + j, j] = iv**2 * m1
        out[:, d + j, d + j] = -0.5 * n[:, None] * iv**2 + iv**3 * m2
        return out

    def valid(self, em):
        v = em["vars"]
        if v.shape != (self.K, self.d) or em["means"].shape != (self.K, self.d):
            return False
        return bool(np.all(np.isfinite(em["means"])) and np.all(np.isfinite(v)) and np.all(v > 0))

    def m_step(self, n, sums, em, model):
        K, d = self.K, self.d
        sx = sums[:K * d].reshape(K, d)
        sxx = sums[K * d:].reshape(K, d)
        ok = n > 0
        nn = np.where(ok, n, 1.0)[:, None]
        mc = sx / nn
        v = sxx / nn - mc**2
        v = np.maximum(v, model.var_floor)
        means = np.where(ok[:, None], mc + model._xbar, em["means"])
        return {"means": means, "vars": np.where(ok[:, None], v, em["vars"])}

    def logdens(self, X, codes, em):
        mu, v = em["means"], em["vars"]
        r = X[:, None, :] - mu[None]
        return (-0.5 * self.d * LOG_2PI - 0.5 * np.log(v).sum(axis=1)[None]
                - 0.5 * (r**2 / v[None]).sum(axis=2))

    def derivs(self, X, codes, em, hess=True):
        mu, v = em["means"], em["vars"]
        d = self.d
        r = X[:, None, :] - mu[None]                     # (n, K, d)
        iv = 1.0 / v[None]
        n = X.shape[0]
        g = np.concatenate([r * iv, -0.5 * iv + 0.5 * r**2 * iv**2], axis=2)
        if not hess:
            return g, None
        h = np.zeros((n, self.K, 2 * d, 2 * d))
        idx = np.arange(d)
        h[:, :, idx, idx] = -iv
        h[:, :, idx, d + idx] = -r * iv**2
        h[:, :, d + idx, idx] = -r * iv**2
        h[:, :, d + idx, d + idx] = 0.5 * iv**2 - r**2 * iv**3
        return g, h

    def init(self, rng, model, attempt):
        return _kmeans_init(rng, model, self.K, attempt, full=False)

    def sample(self, rng, em, states):
        return em["means"][states] + np.sqrt(em["vars"][states]) * rng.standard_normal(
            (len(states), self.d))

    def state_means(self, em):
        return em["means"]

    def state_vars(self, em):
        return em["vars"]

    def collapsed(self, em, model):
        return _at_floor(em["vars"] / model.var_floor)

    def natural(self, em):
        return {"means": em["means"], "vars": em["vars"]}


class GaussianFullEmission(_Emission):
    etype = 2
    name = "Gaussian (full covariance)"

    def __init__(self, K, d, var_names, M=1):
        super().__init__(K, d, var_names, M)
        self.pairs = [(a, b) for a in range(d) for b in range(a + 1)]
        self.q = d + len(self.pairs)
        self.blocks = [Free("means", (K, d)), Cholesky("covs", d, (K,))]
        E = np.zeros((len(self.pairs), d, d))
        for i, (a, b) in enumerate(self.pairs):
            E[i, a, b] = 1.0
            E[i, b, a] = 1.0
        self._E = E

    def local_names(self):
        v = self.var_names
        return [f"mu[{x}]" for x in v] + [
            f"var[{v[a]}]" if a == b else f"cov[{v[a]},{v[b]}]" for a, b in self.pairs]

    def kernel_args(self, em, model):
        mu = em["means"] - model._xbar
        L = np.linalg.cholesky(em["covs"])
        Linv = np.stack([np.linalg.inv(Lk) for Lk in L])
        Linv = np.tril(Linv)
        lc = -0.5 * self.d * LOG_2PI - np.log(np.diagonal(L, axis1=1, axis2=2)).sum(axis=1)
        return np.ascontiguousarray(mu).ravel(), np.ascontiguousarray(Linv).ravel(), lc

    def _precisions(self, em):
        S = np.linalg.inv(em["covs"])
        return 0.5 * (S + np.transpose(S, (0, 2, 1)))

    def grad_args(self, em, model):
        return (np.ascontiguousarray(em["means"] - model._xbar).ravel(),
                np.ascontiguousarray(self._precisions(em)).ravel())

    def complete_info(self, n, sums, em, model):
        K, d, E = self.K, self.d, self._E
        s1 = sums[:K * d].reshape(K, d)
        s2 = sums[K * d:].reshape(K, d, d)
        c = em["means"] - model._xbar
        out = np.zeros((K, self.q, self.q))
        for k, S in enumerate(self._precisions(em)):
            m1 = s1[k] - n[k] * c[k]
            m2 = s2[k] - np.outer(s1[k], c[k]) - np.outer(c[k], s1[k]) + n[k] * np.outer(c[k], c[k])
            SE = np.einsum("ab,ibc->iac", S, E)            # S E_i
            SES = SE @ S                                   # S E_i S
            out[k, :d, :d] = n[k] * S
            cross = np.einsum("iab,b->ai", SES, m1)
            out[k, :d, d:] = cross
            out[k, d:, :d] = cross.T
            t1 = 0.5 * np.einsum("jab,iba->ij", SE, SE)
            # sum gamma r' S E_i S E_j S r = tr(S E_i S E_j S M2)
            t2 = np.einsum("iab,jbc,ca->ij", SE, SES, m2)
            out[k, d:, d:] = -n[k] * t1 + 0.5 * (t2 + t2.T)
        return out

    def valid(self, em):
        c = em["covs"]
        if c.shape != (self.K, self.d, self.d) or em["means"].shape != (self.K, self.d):
            return False
        if not (np.all(np.isfinite(em["means"])) and np.all(np.isfinite(c))):
            return False
        try:
            np.linalg.cholesky(c)
        except np.linalg.LinAlgError:
            return False
        return True

    def m_step(self, n, sums, em, model):
        K, d = self.K, self.d
        sx = sums[:K * d].reshape(K, d)
        sxx = sums[K * d:].reshape(K, d, d)
        means = em["means"].copy()
        covs = em["covs"].copy()
        for k in range(K):
            if n[k] <= 0:
                continue
            mc = sx[k] / n[k]
            C = sxx[k] / n[k] - np.outer(mc, mc)
            C = 0.5 * (C + C.T)
            w = np.linalg.eigvalsh(C)
            if w.min() < model.var_floor.min():
                C = C + (model.var_floor.min() - min(w.min(), 0.0)) * np.eye(d)
            means[k] = mc + model._xbar
            covs[k] = C
        return {"means": means, "covs": covs}

    def logdens(self, X, codes, em):
        out = np.empty((X.shape[0], self.K))
        for k in range(self.K):
            L = np.linalg.cholesky(em["covs"][k])
            z = np.linalg.solve(L, (X - em["means"][k]).T)
            out[:, k] = (-0.5 * self.d * LOG_2PI - np.log(np.diag(L)).sum()
                         - 0.5 * (z**2).sum(axis=0))
        return out

    def derivs(self, X, codes, em, hess=True):
        n, d, K, q = X.shape[0], self.d, self.K, self.q
        E = self._E
        g = np.empty((n, K, q))
        h = np.empty((n, K, q, q)) if hess else None
        for k in range(K):
            S = np.linalg.inv(em["covs"][k])
            S = 0.5 * (S + S.T)
            z = (X - em["means"][k]) @ S                   # (n, d)
            W = np.einsum("iab,nb->nia", E, z)              # (n, m, d): E_i z
            g[:, k, :d] = z
            zz = np.einsum("nia,na->ni", W, z)              # z' E_i z
            trSE = np.einsum("iab,ba->i", E, S)             # tr(S E_i)
            g[:, k, d:] = 0.5 * (zz - trSE)
            if not hess:
                continue
            h[:, k, :d, :d] = -S
            hms = -np.einsum("ab,nib->nai", S, W)           # -S E_i z
            h[:, k, :d, d:] = hms
            h[:, k, d:, :d] = np.transpose(hms, (0, 2, 1))
            SE = np.einsum("ab,ibc->iac", S, E)
            t1 = 0.5 * np.einsum("jab,iba->ij", SE, SE)
            t2 = -np.einsum("nia,ab,njb->nij", W, S, W)
            h[:, k, d:, d:] = t1[None] + t2
        return g, h

    def init(self, rng, model, attempt):
        return _kmeans_init(rng, model, self.K, attempt, full=True)

    def sample(self, rng, em, states):
        out = np.empty((len(states), self.d))
        L = np.linalg.cholesky(em["covs"])
        z = rng.standard_normal((len(states), self.d))
        for k in range(self.K):
            m = states == k
            out[m] = em["means"][k] + z[m] @ L[k].T
        return out

    def state_means(self, em):
        return em["means"]

    def state_vars(self, em):
        return np.diagonal(em["covs"], axis1=1, axis2=2)

    def collapsed(self, em, model):
        return _at_floor(np.linalg.eigvalsh(em["covs"]) / model.var_floor.min())

    def natural(self, em):
        return {"means": em["means"], "covs": em["covs"]}


class GaussianSphericalEmission(_Emission):
    """One variance per state, common to the variables: N(mu_k, v_k I)."""

    etype = 1               # the diagonal kernels (density and statistics)
    louis_kernel = False    # Louis' pieces by the forward-recursion derivatives
    name = "Gaussian (spherical covariance)"

    def __init__(self, K, d, var_names, M=1):
        super().__init__(K, d, var_names, M)
        self.q = d + 1
        self.blocks = [Free("means", (K, d)), Positive("vars", (K,))]

    def local_names(self):
        return [f"mu[{v}]" for v in self.var_names] + ["var"]

    def kernel_args(self, em, model):
        mu = em["means"] - model._xbar
        v = np.repeat(em["vars"][:, None], self.d, axis=1)
        lc = -0.5 * self.d * LOG_2PI - 0.5 * self.d * np.log(em["vars"])
        return np.ascontiguousarray(mu).ravel(), (1.0 / v).ravel(), lc

    def complete_info(self, n, sums, em, model):
        K, d = self.K, self.d
        s1 = sums[:K * d].reshape(K, d)
        s2 = sums[K * d:].reshape(K, d)
        c = em["means"] - model._xbar
        m1 = s1 - n[:, None] * c                                  # sum gamma (x - mu)
        m2 = (s2 - 2.0 * c * s1 + n[:, None] * c**2).sum(axis=1)  # sum gamma |x - mu|^2
        iv = 1.0 / em["vars"]
        out = np.zeros((K, d + 1, d + 1))
        j = np.arange(d)
        out[:, j, j] = (n * iv)[:, None]
        out[:, j, d] = out[:, d, j] = iv[:, None] ** 2 * m1
        out[:, d, d] = -0.5 * d * n * iv**2 + iv**3 * m2
        return out

    def valid(self, em):
        v = em["vars"]
        if v.shape != (self.K,) or em["means"].shape != (self.K, self.d):
            return False
        return bool(np.all(np.isfinite(em["means"])) and np.all(np.isfinite(v)) and np.all(v > 0))

    def m_step(self, n, sums, em, model):
        K, d = self.K, self.d
        sx = sums[:K * d].reshape(K, d)
        sxx = sums[K * d:].reshape(K, d)
        ok = n > 0
        nn = np.where(ok, n, 1.0)[:, None]
        mc = sx / nn
        v = np.maximum((sxx / nn - mc**2).mean(axis=1), model.var_floor.min())
        return {"means": np.where(ok[:, None], mc + model._xbar, em["means"]),
                "vars": np.where(ok, v, em["vars"])}

    def logdens(self, X, codes, em):
        mu, v = em["means"], em["vars"]
        r2 = ((X[:, None, :] - mu[None]) ** 2).sum(axis=2)
        return -0.5 * self.d * (LOG_2PI + np.log(v))[None] - 0.5 * r2 / v[None]

    def derivs(self, X, codes, em, hess=True):
        mu, v = em["means"], em["vars"]
        d, K = self.d, self.K
        r = X[:, None, :] - mu[None]                          # (n, K, d)
        iv = (1.0 / v)[None, :]                                # (1, K)
        r2 = (r**2).sum(axis=2)
        g = np.concatenate([r * iv[:, :, None],
                            (-0.5 * d * iv + 0.5 * r2 * iv**2)[:, :, None]], axis=2)
        if not hess:
            return g, None
        h = np.zeros((X.shape[0], K, d + 1, d + 1))
        j = np.arange(d)
        h[:, :, j, j] = -iv[:, :, None]
        h[:, :, j, d] = h[:, :, d, j] = -r * (iv**2)[:, :, None]
        h[:, :, d, d] = 0.5 * d * iv**2 - r2 * iv**3
        return g, h

    def init(self, rng, model, attempt):
        st = _kmeans_init(rng, model, self.K, attempt, full=False)
        return {"means": st["means"], "vars": st["vars"].mean(axis=1)}

    def sample(self, rng, em, states):
        return em["means"][states] + np.sqrt(em["vars"][states])[:, None] * \
            rng.standard_normal((len(states), self.d))

    def state_means(self, em):
        return em["means"]

    def state_vars(self, em):
        return np.repeat(em["vars"][:, None], self.d, axis=1)

    def collapsed(self, em, model):
        return _at_floor(em["vars"][:, None] / model.var_floor.min())

    def natural(self, em):
        return {"means": em["means"], "vars": self.state_vars(em)}


class GaussianTiedEmission(_Emission):
    """One covariance matrix common to the states: N(mu_k, Sigma).  The per-state
    coordinates are the means; Sigma's lower triangle is shared by every state and comes
    after all the means (``n_shared`` coordinates)."""

    etype = 2               # the full-covariance kernels (density and statistics)
    louis_kernel = False
    name = "Gaussian (tied covariance)"

    def __init__(self, K, d, var_names, M=1):
        super().__init__(K, d, var_names, M)
        self._full = GaussianFullEmission(K, d, var_names)
        self.pairs = self._full.pairs
        self.q = d
        self.n_shared = len(self.pairs)
        self.blocks = [Free("means", (K, d))]
        self._cov = Cholesky("cov", d, ())

    def local_names(self):
        return [f"mu[{x}]" for x in self.var_names]

    def shared_names(self):
        v = self.var_names
        return [f"var[{v[a]}]" if a == b else f"cov[{v[a]},{v[b]}]" for a, b in self.pairs]

    # coordinates: the means state by state, then the shared covariance
    def pack(self, em):
        return np.concatenate([self._rows(em, "pack").ravel(), self._cov.pack(em["cov"])])

    def unpack(self, u):
        u = np.asarray(u, dtype=float)
        out = self._split(u[:self.K * self.q], "unpack")
        out["cov"] = self._cov.unpack(u[self.K * self.q:])
        return out

    def to_inf(self, em):
        return np.concatenate([self._rows(em, "to_inference").ravel(),
                               self._cov.to_inference(em["cov"])])

    def from_inf(self, th):
        th = np.asarray(th, dtype=float).ravel()
        out = self._split(th[:self.K * self.q], "from_inference")
        out["cov"] = self._cov.from_inference(th[self.K * self.q:])
        return out

    def _as_full(self, em):
        return {"means": em["means"], "covs": np.broadcast_to(em["cov"], (self.K, self.d,
                                                                          self.d)).copy()}

    def kernel_args(self, em, model):
        return self._full.kernel_args(self._as_full(em), model)

    def complete_info(self, n, sums, em, model):
        # each state's block over (its means, the shared covariance): the full-covariance
        # block with Sigma_k = Sigma; the model adds the covariance blocks of the states
        return self._full.complete_info(n, sums, self._as_full(em), model)

    def valid(self, em):
        c = em.get("cov")
        if c is None or c.shape != (self.d, self.d) or em["means"].shape != (self.K, self.d):
            return False
        if not (np.all(np.isfinite(em["means"])) and np.all(np.isfinite(c))):
            return False
        try:
            np.linalg.cholesky(c)
        except np.linalg.LinAlgError:
            return False
        return True

    def m_step(self, n, sums, em, model):
        K, d = self.K, self.d
        sx = sums[:K * d].reshape(K, d)
        sxx = sums[K * d:].reshape(K, d, d)
        ok = n > 0
        nn = np.where(ok, n, 1.0)
        mc = sx / nn[:, None]
        # pooled within-state scatter: sum_k (sum gamma x x' - n_k m_k m_k') / sum_k n_k
        W = sxx.sum(axis=0) - np.einsum("k,ka,kb->ab", np.where(ok, n, 0.0), mc, mc)
        C = W / max(float(n.sum()), 1e-300)
        C = 0.5 * (C + C.T)
        w = np.linalg.eigvalsh(C)
        if w.min() < model.var_floor.min():
            C = C + (model.var_floor.min() - min(w.min(), 0.0)) * np.eye(d)
        return {"means": np.where(ok[:, None], mc + model._xbar, em["means"]), "cov": C}

    def logdens(self, X, codes, em):
        return self._full.logdens(X, codes, self._as_full(em))

    def derivs(self, X, codes, em, hess=True):
        return self._full.derivs(X, codes, self._as_full(em), hess)

    def init(self, rng, model, attempt):
        st = _kmeans_init(rng, model, self.K, attempt, full=True)
        return {"means": st["means"], "cov": st["covs"].mean(axis=0)}

    def sample(self, rng, em, states):
        L = np.linalg.cholesky(em["cov"])
        return em["means"][states] + rng.standard_normal((len(states), self.d)) @ L.T

    def state_means(self, em):
        return em["means"]

    def state_vars(self, em):
        return np.broadcast_to(np.diag(em["cov"]), (self.K, self.d)).copy()

    def collapsed(self, em, model):
        w = np.linalg.eigvalsh(em["cov"]) / model.var_floor.min()
        return np.repeat(_at_floor(w[None]), self.K)

    def natural(self, em):
        return {"means": em["means"], "covs": self._as_full(em)["covs"]}


class CategoricalEmission(_Emission):
    etype = 3
    name = "categorical"

    def __init__(self, K, d, var_names, M=1, alphabet=None):
        super().__init__(K, d, var_names, M)
        self.q = M - 1
        self.alphabet = list(alphabet)
        self.blocks = [Simplex("probs", (K, M))]

    def local_names(self):
        return [f"prob[{a}]" for a in self.alphabet[:-1]]

    def kernel_args(self, em, model):
        with np.errstate(divide="ignore"):
            lp = np.log(em["probs"])
        return np.ascontiguousarray(lp).ravel(), _DUMMY, _DUMMY

    def grad_args(self, em, model):
        return np.ascontiguousarray(em["probs"]).ravel(), _DUMMY

    def complete_info(self, n, sums, em, model):
        K, M = self.K, self.M
        c = sums.reshape(K, M)
        p = em["probs"]
        with np.errstate(divide="ignore", invalid="ignore"):
            last = c[:, -1] / p[:, -1] ** 2
            inner = c[:, :-1] / p[:, :-1] ** 2
        out = np.broadcast_to(last[:, None, None], (K, M - 1, M - 1)).copy()
        j = np.arange(M - 1)
        out[:, j, j] += inner
        return out

    def valid(self, em):
        p = em["probs"]
        return bool(p.shape == (self.K, self.M) and np.all(np.isfinite(p)) and np.all(p >= 0)
                    and np.allclose(p.sum(axis=1), 1.0, atol=1e-8))

    def m_step(self, n, sums, em, model):
        c = sums.reshape(self.K, self.M)
        ok = n > 0
        return {"probs": np.where(ok[:, None], c / np.where(ok, n, 1.0)[:, None], em["probs"])}

    def logdens(self, X, codes, em):
        with np.errstate(divide="ignore"):
            return np.log(em["probs"][:, codes].T)

    def derivs(self, X, codes, em, hess=True):
        n, K, M = len(codes), self.K, self.M
        p = em["probs"]
        g = np.zeros((n, K, M - 1))
        h = np.zeros((n, K, M - 1, M - 1)) if hess else None
        inner = codes < M - 1
        rows = np.flatnonzero(inner)
        last = ~inner
        with np.errstate(divide="ignore"):
            for k in range(K):
                g[rows, k, codes[rows]] = 1.0 / p[k, codes[rows]]
                g[last, k, :] = -1.0 / p[k, M - 1]
                if hess:
                    h[rows, k, codes[rows], codes[rows]] = -1.0 / p[k, codes[rows]] ** 2
                    h[last, k] = -1.0 / p[k, M - 1] ** 2
        return g, h

    def init(self, rng, model, attempt):
        counts = np.bincount(model.codes, minlength=self.M) + 1.0
        base = counts / counts.sum()
        probs = rng.dirichlet(10.0 * self.M * base, size=self.K)
        return {"probs": probs}

    def sample(self, rng, em, states):
        u = rng.random(len(states))
        cum = np.cumsum(em["probs"], axis=1)[states]
        return np.minimum((u[:, None] > cum).sum(axis=1), self.M - 1)

    def natural(self, em):
        return {"probs": em["probs"]}


_DUMMY = np.zeros(1)
_DUMMY_CODES = np.zeros(1, dtype=np.int64)
_DUMMY2 = np.zeros((1, 1))


def _kmeans_init(rng, model, K, attempt, full):
    X = model.X
    sd = X.std(axis=0)
    sd = np.where(sd > 0, sd, 1.0)
    n = X.shape[0]
    sub = X if n <= 20000 else X[rng.choice(n, 20000, replace=False)]
    Z = (sub - model._xbar) / sd
    # k-means on its own stream (one draw from rng, so the later draws of rng do not
    # depend on the data)
    krng = np.random.default_rng(int(rng.integers(2**31 - 1)))
    lab, centers = kmeans(Z, K, krng, iters=9)
    means = centers * sd + model._xbar
    order = np.argsort(means[:, 0])
    means = means[order]
    tot = sub.var(axis=0) + model.var_floor
    d = X.shape[1]
    if full:
        covs = np.empty((K, d, d))
    else:
        covs = np.empty((K, d))
    for new, old in enumerate(order):
        m = lab == old
        if m.sum() > d + 1:
            if full:
                C = np.atleast_2d(np.cov(sub[m], rowvar=False)) + 1e-3 * np.diag(tot)
                covs[new] = C
            else:
                covs[new] = sub[m].var(axis=0) + 1e-3 * tot
        else:
            covs[new] = np.diag(tot) if full else tot
    return {"means": means, "covs": covs} if full else {"means": means, "vars": covs}


# ---------------------------------------------------------------------------------------
# the model
# ---------------------------------------------------------------------------------------


def _layout(bounds: np.ndarray, long_rows: float | None = None):
    """Blocks of a chunk's sequences for the kernels, from its sequence offsets.

    Returns ``(blocks, long)``: ``blocks[c] = (first, last + 1)`` groups consecutive short
    sequences starting within the same window of ``BLOCK_ROWS`` rows (one accumulator
    each), ``long`` the sequences of at least ``LONG_SEQUENCE`` rows, handled one by one
    with row-parallel passes.  The layout depends only on the data.
    """
    lens = np.diff(bounds)
    is_long = lens >= (LONG_SEQUENCE if long_rows is None else long_rows)
    short = np.flatnonzero(~is_long)
    if short.size == 0:
        return np.zeros((0, 2), dtype=np.int64), np.flatnonzero(is_long)
    seg = np.cumsum(is_long)[short]                  # a long sequence breaks the blocks
    key = seg * (int(bounds[-1]) // BLOCK_ROWS + 2) + bounds[short] // BLOCK_ROWS
    gap = np.diff(short) != 1
    new = np.concatenate([[True], (np.diff(key) != 0) | gap])
    first = short[new]
    last = np.concatenate([short[np.flatnonzero(new)[1:] - 1], [short[-1]]])
    return np.stack([first, last + 1], axis=1).astype(np.int64), np.flatnonzero(is_long)


def _even_blocks(bounds: np.ndarray, n_blocks: int) -> np.ndarray:
    """At most ``n_blocks`` groups of consecutive sequences of about equal rows."""
    m = len(bounds) - 1
    k = max(1, min(int(n_blocks), m))
    cut = np.unique(np.searchsorted(bounds, np.linspace(0, bounds[-1], k + 1)[1:-1]))
    cut = cut[(cut > 0) & (cut < m)]
    edges = np.concatenate([[0], cut, [m]]).astype(np.int64)
    return np.stack([edges[:-1], edges[1:]], axis=1)

class HiddenMarkovModel(FitMixin, ChunkedModel):
    """Hidden Markov model with Poisson, Gaussian or categorical emissions.

    Parameters
    ----------
    endog : array_like, shape (T,) or (T, d)
        Observations of all sequences stacked in time order (for a categorical
        model: any labels; they are coded against ``alphabet``).
    k : int
        Number of hidden states.
    emission : {"gaussian", "poisson", "categorical"}
        State-dependent distribution.
    covariance : {"diag", "full", "tied", "spherical"}
        Covariance of a Gaussian emission: diagonal or full per state, one full matrix
        common to the states (``"tied"``), or one variance per state common to the
        variables (``"spherical"``).
    lengths : array_like of int, optional
        Lengths of consecutive independent sequences (default: one sequence).
    initial : {"estimate", "stationary"} or array_like
        The distribution of the first state: estimated (default), the stationary
        distribution of the transition matrix (Zucchini & MacDonald's
        "stationary" model), or a fixed probability vector.
    transitions : {"full", "left-to-right"} or array_like of bool, optional
        Which transitions are possible: all (default), left-to-right (i -> i and
        i -> i + 1), or a K x K boolean mask; transitions not allowed are fixed at
        zero (structural zeros) and stay zero through EM.
    alphabet : sequence, optional
        Symbols of a categorical emission (default: the sorted distinct values).
    var_names : list of str, optional
        Names of the observed variables.
    row_labels : pandas.Index, optional
        Labels of the rows (in the caller's order) used in messages and outputs.
    order : ndarray of int, optional
        Position of each stacked row in the caller's data (set by :func:`emstats.hmm`
        when sequences are given by a ``groups`` column).
    seq_names : list, optional
        Names of the sequences.
    endog_name : str, optional
        Name of the observed variable (for a single variable from a formula or Series).
    boundary_tol : float
        Free probabilities below this after EM are fixed at zero (see the module notes).
    identify : bool
        Check that the data can identify the model (default; off only for data that
        are evaluated at given parameters, such as ``predict(newdata)``).

    Notes
    -----
    Build it with :func:`emstats.hmm` and call :meth:`fit`.
    """

    def __init__(self, endog, k: int, emission: str = "gaussian", *, covariance: str = "diag",
                 lengths=None, initial="estimate", transitions=None, alphabet=None,
                 var_names=None, row_labels=None, order=None, seq_names=None,
                 endog_name: str | None = None, boundary_tol: float = 1e-6,
                 identify: bool = True):
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"k (the number of states) must be a positive integer, got {k!r}")
        K = int(k)
        emission = str(emission).lower().replace("-", "_")
        if emission in ("gaussian_diag", "normal", "gaussian"):
            emission = "gaussian"
        if emission == "gaussian_full":
            emission, covariance = "gaussian", "full"
        if emission not in EMISSIONS:
            raise ValueError(f"emission must be one of {EMISSIONS}, got {emission!r}")
        if covariance not in COVARIANCES:
            raise ValueError(f"covariance must be one of {', '.join(map(repr, COVARIANCES))}, "
                             f"got {covariance!r}")
        raw = endog.to_numpy() if isinstance(endog, (pd.Series, pd.DataFrame)) else \
            np.asarray(endog)
        if raw.ndim == 1:
            raw = raw[:, None]
        if raw.ndim != 2:
            raise DataError(f"observations must be 1- or 2-dimensional, got shape {raw.shape}")
        T, d = raw.shape
        if T == 0:
            raise DataError("no observations (0 rows)")
        labels = pd.RangeIndex(T) if row_labels is None else pd.Index(row_labels)
        self._order = None if order is None else np.asarray(order, dtype=np.int64)
        self.row_order = self._order    # data rows in the caller's order (for groups=)
        stacked_labels = labels if self._order is None else labels[self._order]
        self.var_names = list(var_names) if var_names is not None else (
            [f"x{j}" for j in range(d)] if d > 1 else ["y"])
        if len(self.var_names) != d:
            raise DataError(f"{len(self.var_names)} var_names for {d} columns")
        self.endog_name = endog_name or ", ".join(self.var_names)

        # -- sequences ------------------------------------------------------------------
        if lengths is None:
            lens = np.array([T], dtype=np.int64)
        else:
            lens_raw = np.asarray(lengths)
            if lens_raw.ndim != 1 or lens_raw.size == 0:
                raise DataError("lengths must be a non-empty 1-d sequence of integers")
            if not np.all(np.isfinite(lens_raw.astype(float))) or \
                    np.any(lens_raw.astype(float) != np.round(lens_raw.astype(float))):
                raise DataError(f"lengths must be integers, got {lens_raw!r}")
            lens = lens_raw.astype(np.int64)
            if np.any(lens <= 0):
                bad = np.flatnonzero(lens <= 0)
                raise DataError(f"sequence lengths must be positive: sequence(s) "
                                f"{', '.join(map(str, bad[:5]))} have length "
                                f"{', '.join(map(str, lens[bad[:5]]))} (an empty sequence)")
            if lens.sum() != T:
                raise DataError(f"lengths sum to {int(lens.sum())} but the data have {T} rows")
        self.lengths = lens
        self.seq_start = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
        self.n_seq = len(lens)
        self.seq_names = list(seq_names) if seq_names is not None else list(range(self.n_seq))

        # -- observations -----------------------------------------------------------------
        self.K, self.T, self.d = K, T, d
        self.row_labels = labels
        self._stacked_labels = stacked_labels
        if emission == "categorical":
            if d != 1:
                raise DataError(f"a categorical emission takes one column, got {d}")
            col = pd.Series(raw[:, 0])
            if col.isna().any():
                raise DataError(f"observations are missing (NaN) in rows "
                                f"{_labels(stacked_labels, col.isna().to_numpy())}")
            if alphabet is None:
                alphabet = sorted(pd.unique(col).tolist())
            alphabet = list(alphabet)
            if len(set(alphabet)) != len(alphabet):
                raise DataError("alphabet has repeated symbols")
            if len(alphabet) < 2:
                raise DataError("a categorical emission needs at least 2 symbols")
            codes = pd.Index(alphabet).get_indexer(col)
            if np.any(codes < 0):
                bad = codes < 0
                vals = pd.unique(col[bad])[:5].tolist()
                raise DataError(f"categories {vals} are not in the alphabet {alphabet} "
                                f"(rows {_labels(stacked_labels, bad)})")
            self.codes = np.ascontiguousarray(codes, dtype=np.int64)
            self.X = np.zeros((T, 1))
            M = len(alphabet)
            self.emission = CategoricalEmission(K, 1, self.var_names, M, alphabet)
        else:
            try:
                X = np.asarray(raw, dtype=float)
            except (TypeError, ValueError):
                raise DataError(f"observations must be numeric for a {emission} emission") \
                    from None
            bad = ~np.all(np.isfinite(X), axis=1)
            if bad.any():
                cols = [self.var_names[j] for j in range(d) if not np.all(np.isfinite(X[:, j]))]
                raise DataError("observations are missing or not finite (NaN/inf) in column(s) "
                                f"{', '.join(map(repr, cols))}, "
                                f"rows {_labels(stacked_labels, bad)}")
            self.codes = _DUMMY_CODES
            M = 1
            if emission == "poisson":
                if d != 1:
                    raise DataError(f"a Poisson emission takes one column of counts, got {d}")
                neg = X[:, 0] < 0
                frac = X[:, 0] != np.round(X[:, 0])
                if neg.any():
                    raise DataError(f"Poisson counts must be non-negative: column "
                                    f"{self.var_names[0]!r}, rows {_labels(stacked_labels, neg)}")
                if frac.any():
                    raise DataError(f"Poisson counts must be integers: column "
                                    f"{self.var_names[0]!r}, rows {_labels(stacked_labels, frac)}")
                self.emission = PoissonEmission(K, 1, self.var_names)
            else:
                self.emission = {"diag": GaussianDiagEmission, "full": GaussianFullEmission,
                                 "tied": GaussianTiedEmission,
                                 "spherical": GaussianSphericalEmission}[covariance](
                                     K, d, self.var_names)
            # the caller's array itself when it is float64 C-contiguous: read-only
            self.X = np.ascontiguousarray(X).view()
            self.X.flags.writeable = False
        self.M = M
        self.emission_name = emission
        self.covariance = covariance
        if emission == "gaussian":
            self._xbar = self.X.mean(axis=0)
            colvar = self.X.var(axis=0)
            self.var_floor = 1e-10 * np.where(colvar > 0, colvar, 1.0)
            self._Xk = np.ascontiguousarray(self.X - self._xbar)
            self._Xt = _DUMMY2      # no whole-data transpose: each piece transposes its own
        else:
            self._xbar = np.zeros(d)
            self.var_floor = np.full(d, 1e-10)
            self._Xk = self.X
            self._Xt = _DUMMY2
        self._lgx = np.ascontiguousarray(special.gammaln(self.X[:, 0] + 1.0)) \
            if emission == "poisson" else _DUMMY

        # -- structure ---------------------------------------------------------------------
        if transitions is None or (isinstance(transitions, str) and transitions == "full"):
            allowed = np.ones((K, K), dtype=bool)
        elif isinstance(transitions, str):
            if transitions not in ("left-to-right", "left_to_right"):
                raise ValueError("transitions must be 'full', 'left-to-right' or a K x K "
                                 f"boolean mask, got {transitions!r}")
            allowed = np.eye(K, dtype=bool) | np.eye(K, k=1, dtype=bool)
        else:
            allowed = np.asarray(transitions, dtype=bool)
            if allowed.shape != (K, K):
                raise ValueError(f"transitions mask must have shape ({K}, {K}), "
                                 f"got {allowed.shape}")
        empty = np.flatnonzero(~allowed.any(axis=1))
        if empty.size:
            raise ValueError(f"transitions mask: state(s) {', '.join(str(i + 1) for i in empty)} "
                             "have no allowed transition")
        self.trans_allowed = allowed
        if isinstance(initial, str):
            if initial not in ("estimate", "stationary"):
                raise ValueError("initial must be 'estimate', 'stationary' or a probability "
                                 f"vector, got {initial!r}")
            self.initial = initial
            self.init_fixed = None
        else:
            p0 = np.asarray(initial, dtype=float).ravel()
            if p0.shape != (K,) or np.any(p0 < 0) or not np.isclose(p0.sum(), 1.0) or \
                    not np.all(np.isfinite(p0)):
                raise ValueError(f"initial must be a probability vector of length {K}, "
                                 f"got {initial!r}")
            self.initial = "fixed"
            self.init_fixed = p0 / p0.sum()
        self.init_allowed = np.ones(K, dtype=bool) if self.init_fixed is None else \
            self.init_fixed > 0
        self.boundary_tol = float(boundary_tol)
        self._setup_structure()
        self.data = ArrayData(self._data_arrays(), unit_bounds=self.seq_start)
        if identify:
            self._check_identified()

    # -- data and identification ----------------------------------------------------------------
    def _data_arrays(self) -> dict:
        """The named row arrays the kernels read (one row per observation); the feature
        rows the forward-backward kernel sums are made per piece (:meth:`_features`)."""
        e = self.emission.etype
        if e == 3:
            return {"codes": self.codes}
        if e == 0:
            return {"x": np.ascontiguousarray(self.X[:, 0]), "lgx": self._lgx}
        return {"Xk": self._Xk}

    def _features(self, chunk) -> np.ndarray:
        """The feature rows Y_t whose posterior-weighted sums are the emission statistics:
        [1, x] (Poisson), [1, x, x^2] (diagonal Gaussian), [1, x, vec(x x')] (full), with
        x centred at the data's column means; a chunk's own (``chunk["Y"]``) if it has one."""
        if "Y" in chunk.arrays:
            return chunk["Y"]
        e = self.emission.etype
        if e == 0:
            x = chunk["x"][:, None]
            return np.hstack([np.ones_like(x), x])
        Xk = chunk["Xk"]
        one = np.ones((Xk.shape[0], 1))
        if e == 1:
            return np.hstack([one, Xk, Xk**2])
        xx = (Xk[:, :, None] * Xk[:, None, :]).reshape(Xk.shape[0], -1)
        return np.hstack([one, Xk, xx])

    @staticmethod
    def _pieces(chunk):
        """The chunk in pieces of whole sequences of at most PIECE_ROWS rows (a longer
        sequence alone): the chunk itself when it is that small.  The cut depends only on
        the sequences' lengths."""
        b = np.asarray(chunk.unit_bounds, dtype=np.int64)
        if chunk.n_rows <= PIECE_ROWS:
            yield chunk
            return
        m, u = len(b) - 1, 0
        while u < m:
            v = max(int(np.searchsorted(b, b[u] + PIECE_ROWS, side="right")) - 1, u + 1)
            r0, r1 = int(b[u]), int(b[v])
            yield Chunk({k: a[r0:r1] if a.ndim else a for k, a in chunk.arrays.items()},
                        chunk.start + r0, chunk.start + r1, b[u:v + 1] - r0, chunk.n_threads)
            u = v

    def _check_identified(self):
        """Reject data that cannot identify a K-state model (a DataError naming why)."""
        K, T = self.K, self.T
        kind = self.emission_name
        if T < max(K, 2):
            raise DataError(f"{T} observation{'s' if T != 1 else ''} cannot identify a "
                            f"{K}-state hidden Markov model: k = {K} states need at least "
                            f"{max(K, 2)} observations")
        if self.emission.etype == 3:
            distinct = int(np.unique(self.codes).size)
            what = "symbol"
        else:
            # distinct rows: enough of them in the first rows is the usual answer, the
            # whole data are sorted only when they are nearly constant
            distinct = int(np.unique(self.X[:4096], axis=0).shape[0])
            if distinct < K and T > 4096:
                distinct = int(np.unique(self.X, axis=0).shape[0])
            what = "value" if self.d == 1 else "row"
        if distinct == 1 and (K > 1 or kind == "gaussian"):
            v = repr(self.emission.alphabet[int(self.codes[0])]) if self.emission.etype == 3 \
                else (f"{float(self.X[0, 0]):g}" if self.d == 1 else str(self.X[0].tolist()))
            why = ("a Gaussian emission needs observations that vary (its variance would be "
                   "zero)" if kind == "gaussian" else "use k=1")
            if K > 1:
                why = f"{K} states cannot be told apart; " + why
            raise DataError(f"the observations are constant (every {what} is {v}): {why}")
        if kind == "gaussian" and self.d > 1:
            flat = [self.var_names[j] for j in np.flatnonzero(np.ptp(self.X, axis=0) == 0)]
            if flat:
                raise DataError(f"constant column(s) {', '.join(map(repr, flat))}: a Gaussian "
                                "emission needs variation in every variable (its variance "
                                "would be zero in every state); drop them")
        if kind != "categorical" and distinct < K:
            raise DataError(f"k = {K} states need at least {K} distinct observed {what}s; "
                            f"the data have {distinct} (use k <= {distinct})")
        n_values = T * (1 if self.emission.etype == 3 else self.d)
        if self.n_params > n_values:
            raise DataError(f"k = {K} states with a {self.emission.name} emission have "
                            f"{self.n_params} free parameters but the data hold only "
                            f"{n_values} observed values: the model is not identified; "
                            "use fewer states or more data")

    @property
    def nobs(self) -> float:
        """Number of observations (rows), the T of BIC."""
        return float(self.T)

    @property
    def df_model(self) -> float:
        """Free parameters of the model as specified."""
        return float(self.n_params)

    @property
    def _long(self) -> list[int]:
        """Sequences long enough for the row-parallel path (``LONG_SEQUENCE`` rows)."""
        return [int(s) for s in np.flatnonzero(self.lengths >= LONG_SEQUENCE)]
    # -- structure and bookkeeping ------------------------------------------------------------
    def _setup_structure(self):
        K = self.K
        # probability rows: the last free entry of each row is the reference category
        self._rows_A = Simplex("transmat", (K, K), allowed=self.trans_allowed,
                               label=lambda ix: f"p[{ix[0] + 1}->{ix[1] + 1}]")
        self._rows_d = Simplex("startprob", (K,), allowed=self.init_allowed,
                               label=lambda ix: f"init[{ix[0] + 1}]") \
            if self.initial == "estimate" else None
        self._prob_spec = ParamSpec([b for b in (self._rows_d, self._rows_A) if b is not None])
        self.n_init_params = self._rows_d.size if self._rows_d is not None else 0
        self.n_trans_params = self._rows_A.size
        self.n_emission_params = self.emission.n_params
        names = self._prob_spec.names()
        loc = self.emission.local_names()
        for k in range(K):
            names += [_state_name(nm, k + 1) for nm in loc]
        names += self.emission.shared_names()
        self.param_names = names
        self.n_params = len(names)

    def with_structure(self, trans_allowed=None, init_allowed=None) -> HiddenMarkovModel:
        """A copy of the model (sharing the data) with other free entries."""
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        if trans_allowed is not None:
            new.trans_allowed = np.asarray(trans_allowed, dtype=bool)
        if init_allowed is not None:
            new.init_allowed = np.asarray(init_allowed, dtype=bool)
        new._setup_structure()
        return new

    # -- parameters ---------------------------------------------------------------------------
    def _init_vector(self, A):
        if self.initial == "stationary":
            return stationary_distribution(A)
        return None

    def make_params(self, startprob=None, transmat=None, **emission) -> HMMParams:
        """Build and check parameters from arrays (``startprob`` is ignored when the
        initial distribution is fixed or stationary)."""
        K = self.K
        A = np.asarray(transmat, dtype=float).reshape(K, K)
        if self.initial == "stationary":
            d0 = stationary_distribution(A)
        elif self.initial == "fixed":
            d0 = self.init_fixed.copy()
        else:
            d0 = np.asarray(startprob, dtype=float).ravel()
        em = {k: np.asarray(v, dtype=float) for k, v in emission.items()}
        return HMMParams(d0, A, em)

    def _valid(self, p: HMMParams) -> bool:
        A, d0 = p.transmat, p.startprob
        if not (np.all(np.isfinite(A)) and np.all(np.isfinite(d0))):
            return False
        if np.any(A < 0) or np.any(d0 < 0):
            return False
        if np.any(A[~self.trans_allowed] != 0):
            return False
        return bool(np.allclose(A.sum(axis=1), 1.0, atol=1e-8)
                    and abs(d0.sum() - 1.0) < 1e-8 and self.emission.valid(p.emission))

    def start_params(self, rng=None, attempt: int = 0) -> HMMParams:
        """Starting values: k-means (Gaussian), quantiles (Poisson) or Dirichlet draws
        (categorical) for the emissions; a sticky transition matrix (attempt 0) or
        Dirichlet rows (later attempts)."""
        rng = np.random.default_rng(0) if rng is None else rng
        K = self.K
        em = self.emission.init(rng, self, attempt)
        allowed = self.trans_allowed
        if attempt == 0:
            A = np.zeros((K, K))
            for i in range(K):
                f = np.flatnonzero(allowed[i])
                if allowed[i, i] and len(f) > 1:
                    A[i, f] = 0.1 / (len(f) - 1)
                    A[i, i] = 0.9
                else:
                    A[i, f] = 1.0 / len(f)
        else:
            A = np.where(allowed, rng.dirichlet(np.ones(K), size=K) + np.eye(K) * 2.0, 0.0)
        A = A / A.sum(axis=1, keepdims=True)
        if self.initial == "stationary":
            try:
                d0 = stationary_distribution(A)
            except np.linalg.LinAlgError:
                raise ValueError("initial='stationary' needs an irreducible transition "
                                 "matrix") from None
        elif self.initial == "fixed":
            d0 = self.init_fixed.copy()
        else:
            d0 = np.where(self.init_allowed, 1.0, 0.0)
            d0 = d0 / d0.sum()
        return HMMParams(d0, A, em)

    # -- kernel calls -----------------------------------------------------------------------
    @staticmethod
    def _work_arrays(n_rows: int, K: int):
        """Work arrays of one forward-backward pass over ``n_rows`` rows: scaled densities
        (then w), row maxima, filtered and smoothed probabilities, scale factors (O(T K))."""
        return (np.empty((n_rows, K)), np.empty(n_rows), np.empty((n_rows, K)),
                np.empty(n_rows), np.empty((n_rows, K)))

    def _emission_kernel(self, emission_params, arrays, out, row_max, log_only, n_threads):
        """Fill ``out`` (rows x K) with the scaled densities exp(l - row_max) and ``row_max``
        with the row maxima of the rows of ``arrays`` (a chunk or the data), or with
        ``log_only`` ``out`` with the log-densities l; returns the number of rows with no
        finite log-density."""
        em, K, nt = self.emission, self.K, int(n_threads)
        args = [np.ascontiguousarray(a, dtype=float) for a in em.kernel_args(emission_params,
                                                                             self)]
        if em.etype == 0:
            log_rates, rates = args
            return hk.emission_poisson(arrays["x"], arrays["lgx"], log_rates, rates, out,
                                       row_max, log_only, nt)
        if em.etype == 1:
            means, inv_var, log_const = args
            Xt = np.ascontiguousarray(arrays["Xk"].T)     # a piece's rows, transposed
            return hk.emission_gaussian_diag(Xt, means.reshape(K, -1), inv_var.reshape(K, -1),
                                             log_const, out, row_max, log_only, nt)
        if em.etype == 2:
            means, inv_chol, log_const = args
            return hk.emission_gaussian_full(arrays["Xk"], means.reshape(K, self.d),
                                             inv_chol.reshape(K, self.d, self.d), log_const,
                                             out, row_max, log_only, nt)
        return hk.emission_categorical(arrays["codes"], args[0].reshape(K, self.M), out,
                                       row_max, log_only, nt)

    def _n_emission_stats(self) -> int:
        e, d = self.emission.etype, self.d
        if e == 3:
            return self.K + self.K * self.M
        return self.K * (2 if e == 0 else 1 + 2 * d if e == 1 else 1 + d + d * d)

    def _forward_backward(self, p: HMMParams, chunk, mode: int = 1):
        """Emission pass and forward(-backward) on the chunk's sequences.

        Returns the reduced accumulators (layout of ``hk.forward_backward``), the
        log-likelihood of each sequence and the work arrays (b -> w, m, alpha, c, gamma).
        """
        K = self.K
        em = self.emission
        nt = chunk.n_threads
        A = np.ascontiguousarray(p.transmat)
        AT = np.ascontiguousarray(p.transmat.T)
        init = np.ascontiguousarray(p.startprob)
        bounds = np.ascontiguousarray(chunk.unit_bounds, dtype=np.int64)
        n = chunk.n_rows
        work = self._work_arrays(n, K)
        b, m, al, cs, gam = work
        if em.etype == 3:
            Y, M, codes = np.zeros((0, 0)), self.M, chunk["codes"]
        else:
            Y, M, codes = self._features(chunk), 0, _DUMMY_CODES
        ne = self._n_emission_stats()
        blocks, longs = _layout(bounds)
        part = np.zeros((len(blocks), 2 + K + K * K + ne))
        seq_ll = np.full(chunk.n_units, np.nan)
        bad = self._emission_kernel(p.emission, chunk, b, m, 0, nt)
        if len(blocks):
            hk.forward_backward(A, AT, init, bounds, blocks, b, m, al, gam, cs, Y, codes, M,
                                seq_ll, part, mode, nt)
        tot = part.sum(axis=0)      # fixed blocks: the same sums for any thread count
        tot[1] += bad
        for s in longs:
            r0, r1 = int(bounds[s]), int(bounds[s + 1])
            acc = np.zeros(2 + K)
            seq_ll[s] = hk.forward_backward_one(A, AT, init, r0, r1, b, m, al, gam, cs, acc,
                                                mode)
            tot[:2 + K] += acc
            if mode == 1 and acc[1] == 0:
                nch = (r1 - r0 + hk.chunk_rows() - 1) // hk.chunk_rows()
                sp = np.zeros((nch, K * K + ne))
                hk.stats_rows(Y, codes, M, r0, r1, al, b, gam, sp, nt)
                tot[2 + K:] += sp.sum(axis=0)
        return tot, seq_ll, work

    def _unpack_stats(self, tot, A) -> Stats:
        K = self.K
        o = 2 + K
        em = tot[o + K * K:]
        if self.emission.etype == 3:
            n, sums = em[:K], em[K:]
        else:
            Sm = em.reshape(K, -1)
            n = Sm[:, 0]
            if self.emission.etype == 0:
                sums = Sm[:, 1]
            else:
                d = self.d
                sums = np.concatenate([Sm[:, 1:1 + d].ravel(), Sm[:, 1 + d:].ravel()])
        return Stats(g0=tot[2:o], xi=A * tot[o:o + K * K].reshape(K, K), n=n, sums=sums)

    # -- the chunk contract -------------------------------------------------------------------
    def chunk_stats(self, params: HMMParams, chunk):
        """Expected starts ``g0``, transition counts ``xi``, state occupancies ``n`` and
        emission sums ``sums`` (features centred at the data's column means) of the
        chunk's sequences, and their log-likelihood."""
        if not self._valid(params):
            return None, -np.inf
        tot = None
        for piece in self._pieces(chunk):       # work arrays of a piece at a time
            t = self._forward_backward(params, piece, 1)[0]
            tot = t if tot is None else tot + t
        if tot[1] > 0 or not np.isfinite(tot[0]):
            return None, -np.inf
        return self._unpack_stats(tot, params.transmat), float(tot[0])

    def _chunks(self, n_threads=None):
        return self.data.chunks(1, resolve_threads(n_threads))

    def loglike(self, params: HMMParams, n_threads: int | None = None) -> float:
        """Observed-data log-likelihood (a forward pass)."""
        if not self._valid(params):
            return -np.inf
        total = 0.0
        for ch in self._chunks(n_threads):
            for piece in self._pieces(ch):
                tot, _, _ = self._forward_backward(params, piece, 0)
                if tot[1] > 0:
                    return -np.inf
                total += float(tot[0])
        return total

    def loglikeseq(self, params: HMMParams) -> np.ndarray:
        """Log-likelihood of each sequence."""
        return np.concatenate([self._forward_backward(params, ch, 0)[1]
                               for ch in self._chunks()])

    def m_step(self, stats, params: HMMParams) -> HMMParams:
        # counts are >= 0; totals updated by subtraction (incremental EM) may be -1e-17
        xi = np.maximum(np.asarray(stats["xi"]), 0.0)
        rs = xi.sum(axis=1, keepdims=True)
        A = np.where(rs > 0, xi / np.where(rs > 0, rs, 1.0), params.transmat)
        A = np.where(self.trans_allowed, A, 0.0)
        if self.initial == "stationary":
            A = self._stationary_mstep(np.maximum(stats["g0"], 0.0), xi, params.transmat, A)
            d0 = stationary_distribution(A)
        elif self.initial == "fixed":
            d0 = self.init_fixed.copy()
        else:
            g0 = np.where(self.init_allowed, np.maximum(stats["g0"], 0.0), 0.0)
            d0 = g0 / g0.sum()
        em = self.emission.m_step(np.asarray(stats["n"]), np.asarray(stats["sums"]),
                                  params.emission, self)
        return HMMParams(d0, A, em)
    def _stationary_mstep(self, g0, xi, A_old, A_free):
        """Maximise sum g0 log delta(A) + sum xi log A over the free transitions."""
        rows = self._rows_A
        if rows.size == 0:
            return A_free

        def q(A):
            try:
                dl = stationary_distribution(A)
            except np.linalg.LinAlgError:
                return -np.inf
            if np.any(dl <= 0):
                return -np.inf
            with np.errstate(divide="ignore", invalid="ignore"):
                t = np.where(xi > 0, xi * np.log(np.where(A > 0, A, 1.0)), 0.0)
            if np.any((xi > 0) & (A <= 0)):
                return -np.inf
            return float(g0 @ np.log(dl) + t.sum())

        def negq_grad(u):
            A = rows.unpack(u)
            val = q(A)
            if not np.isfinite(val):
                return 1e300, np.zeros_like(u)
            K = A.shape[0]
            dl = stationary_distribution(A)
            Z = np.linalg.inv(np.eye(K) - A + 1.0)
            G = np.where(A > 0, xi / np.where(A > 0, A, 1.0), 0.0)
            G = G + np.outer(dl, Z @ (g0 / dl))
            # chain rule through the row softmax (last free entry as reference)
            grad = np.empty(rows.size)
            for p, (i, j, _) in enumerate(rows.index):
                f = rows.free[i]
                grad[p] = A[i, j] * (G[i, j] - A[i, f] @ G[i, f])
            return -val, -grad

        best_A, best = A_old, q(A_old)
        q_free = q(A_free)
        if q_free > best:
            best_A, best = A_free, q_free
        res = optimize.minimize(negq_grad, rows.pack(best_A), jac=True, method="BFGS",
                                options={"gtol": 1e-9, "maxiter": 100})
        A = rows.unpack(res.x)
        val = q(A)
        return A if val > best else best_A

    def _probs(self, params: HMMParams) -> dict:
        return {"startprob": params.startprob, "transmat": params.transmat}

    def _probs_to_params(self, pr: dict, em: dict) -> HMMParams:
        K = self.K
        A = pr["transmat"]
        d0 = pr.get("startprob")
        if self.initial == "stationary":
            try:
                d0 = stationary_distribution(A)
            except np.linalg.LinAlgError:
                d0 = np.full(K, np.nan)
        elif self.initial == "fixed":
            d0 = self.init_fixed.copy()
        return HMMParams(d0, A, em)

    def pack(self, params: HMMParams) -> np.ndarray:
        return np.concatenate([self._prob_spec.pack(self._probs(params)),
                               self.emission.pack(params.emission)])

    def unpack(self, vec) -> HMMParams:
        vec = np.asarray(vec, dtype=float)
        n = self._prob_spec.size
        return self._probs_to_params(self._prob_spec.unpack(vec[:n]),
                                     self.emission.unpack(vec[n:]))

    def to_inference(self, params: HMMParams) -> np.ndarray:
        return np.concatenate([self._prob_spec.to_inference(self._probs(params)),
                               self.emission.to_inf(params.emission).ravel()])

    def from_inference(self, vec) -> HMMParams:
        vec = np.asarray(vec, dtype=float)
        n = self._prob_spec.size
        em = self.emission.from_inf(vec[n:])
        return self._probs_to_params(self._prob_spec.from_inference(vec[:n]), em)

    # -- derivatives ------------------------------------------------------------------------
    def _init_derivs(self, params: HMMParams):
        """dδ/dθ (P, K) and d²δ/dθ² (P, P, K) in inference coordinates."""
        P, K = self.n_params, self.K
        dd = np.zeros((P, K))
        d2 = np.zeros((P, P, K))
        if self.initial == "estimate":
            dd[:self.n_init_params] = self._rows_d.jacobian().T
        elif self.initial == "stationary":
            A = params.transmat
            dl = params.startprob
            Z = np.linalg.inv(np.eye(K) - A + 1.0)
            o = self.n_init_params
            na = self.n_trans_params
            V = np.zeros((na, K))
            ii = np.zeros(na, dtype=int)
            for p, (i, j, last) in enumerate(self._rows_A.index):
                V[p, j] += 1.0
                V[p, last] -= 1.0
                ii[p] = i
            W = V @ Z
            dd[o:o + na] = dl[ii][:, None] * W
            # d2[p, q, m] = dl[i_q] W[q, i_p] W[p, m] + dl[i_p] W[p, i_q] W[q, m]
            t1 = (dl[ii][None, :] * W[:, ii].T)[:, :, None] * W[:, None, :]
            t2 = (dl[ii][:, None] * W[:, ii])[:, :, None] * W[None, :, :]
            d2[o:o + na, o:o + na] = t1 + t2
        return dd, d2

    def _trans_derivs(self):
        P, K = self.n_params, self.K
        dA = np.zeros((P, K, K))
        o = self.n_init_params
        dA[o:o + self.n_trans_params] = self._rows_A.jacobian().T.reshape(-1, K, K)
        return dA

    def _emission_rows(self, rows):
        return self.X[rows], (self.codes[rows] if self.emission.etype == 3 else None)

    def loglike_derivatives(self, params: HMMParams, max_batch_elems: int = 4_000_000,
                            rows=None):
        """Exact gradient and Hessian of the log-likelihood in inference coordinates.

        Differentiates the scaled forward recursion twice (Lystig & Hughes 2002);
        sequences of equal length are processed together.  Cost O(T P^2 K^2).

        Parameters
        ----------
        params : HMMParams
            Where to differentiate.
        max_batch_elems : int
            Bound on the size of the work arrays (sequences per batch).
        rows : tuple (X, codes, bounds), optional
            Other observations (raw scale), their codes (categorical) and sequence
            offsets: the derivatives of their log-likelihood (default: the model's data).

        Returns
        -------
        grad : ndarray, shape (P,)
        hess : ndarray, shape (P, P)
        """
        P, K = self.n_params, self.K
        em_ = self.emission
        q = em_.q + em_.n_shared                      # local coordinates of a state
        e0 = self.n_init_params + self.n_trans_params
        loc = [e0 + em_.index(k) for k in range(K)]
        if rows is None:
            Xall, call, sstart = self.X, self.codes, self.seq_start
        else:
            Xall, call, sstart = rows
        lengths = np.diff(sstart)
        A = params.transmat
        d0 = params.startprob
        dd, d2d = self._init_derivs(params)
        dA = self._trans_derivs()
        grad = np.zeros(P)
        hess = np.zeros((P, P))
        by_len: dict[int, list[int]] = {}
        for s, n in enumerate(lengths):
            by_len.setdefault(int(n), []).append(s)
        bmax = max(1, int(max_batch_elems // max(P * P * K, 1)))
        tch = 512
        for L, seqs in by_len.items():
            for b0 in range(0, len(seqs), bmax):
                batch = np.array(seqs[b0:b0 + bmax])
                B = len(batch)
                starts = sstart[batch]
                a = D = E = None
                for t0 in range(0, L, tch):
                    t1 = min(L, t0 + tch)
                    rows = (starts[:, None] + np.arange(t0, t1)[None, :]).ravel()
                    Xr = Xall[rows]
                    cr = call[rows] if em_.etype == 3 else None
                    ld = self.emission.logdens(Xr, cr, params.emission).reshape(B, t1 - t0, K)
                    g, h = self.emission.derivs(Xr, cr, params.emission)
                    g = g.reshape(B, t1 - t0, K, q)
                    h = h.reshape(B, t1 - t0, K, q, q)
                    for tt in range(t1 - t0):
                        if t0 + tt == 0:
                            u = np.broadcast_to(d0, (B, K))
                            Du = np.broadcast_to(dd, (B, P, K))
                            Eu = np.broadcast_to(d2d, (B, P, P, K))
                        else:
                            u = a @ A
                            Du = D @ A + np.einsum("bk,pkl->bpl", a, dA)
                            DdA = np.einsum("bpk,qkl->bpql", D, dA)
                            Eu = E @ A + DdA + DdA.transpose(0, 2, 1, 3)
                        lt = ld[:, tt]
                        mt = lt.max(axis=1, keepdims=True)
                        with np.errstate(invalid="ignore"):
                            bt = np.exp(lt - mt)
                        ub = u * bt
                        c = ub.sum(axis=1)
                        db = np.zeros((B, P, K))
                        for k in range(K):
                            db[:, loc[k], k] = bt[:, k, None] * g[:, tt, k]
                        a = ub / c[:, None]
                        D = (Du * bt[:, None, :] + u[:, None, :] * db) / c[:, None, None]
                        E = (Eu * bt[:, None, None, :] + Du[:, :, None, :] * db[:, None, :, :]
                             + db[:, :, None, :] * Du[:, None, :, :])
                        for k in range(K):
                            ix = np.ix_(loc[k], loc[k])
                            gk = g[:, tt, k]
                            blk = (gk[:, :, None] * gk[:, None, :] + h[:, tt, k])
                            E[:, ix[0], ix[1], k] += (u[:, k] * bt[:, k])[:, None, None] * blk
                        E = E / c[:, None, None, None]
                s = D.sum(axis=2)
                grad += s.sum(axis=0)
                hess += E.sum(axis=3).sum(axis=0) - s.T @ s
        return grad, 0.5 * (hess + hess.T)

    def complete_information(self, params: HMMParams, stats) -> np.ndarray:
        """Expected complete-data information E[-d2 log Lc | y] in inference coordinates,
        from the E-step statistics (it is linear in them, so additive over chunks)."""
        P, K = self.n_params, self.K
        e0 = self.n_init_params + self.n_trans_params
        info = np.zeros((P, P))
        dd, d2d = self._init_derivs(params)
        d0 = params.startprob
        g0 = np.asarray(stats["g0"])
        with np.errstate(divide="ignore", invalid="ignore"):
            w1 = np.where(d0 > 0, g0 / d0**2, 0.0)
            w2 = np.where(d0 > 0, g0 / d0, 0.0)
        info += (dd * w1) @ dd.T - np.einsum("pqk,k->pq", d2d, w2)
        info += self._transition_products(params, stats)
        blocks = self.emission.complete_info(np.asarray(stats["n"]), np.asarray(stats["sums"]),
                                             params.emission, self)
        for k in range(K):
            ix = e0 + self.emission.index(k)
            info[np.ix_(ix, ix)] += blocks[k]
        return 0.5 * (info + info.T)

    def _transition_products(self, params, stats) -> np.ndarray:
        """sum_t sum_kl xi_t(k, l) d log A_kl d log A_kl' = sum_kl xi_kl dA_kl dA_kl' / A_kl^2."""
        A = params.transmat
        dA = self._trans_derivs()
        with np.errstate(divide="ignore", invalid="ignore"):
            wA = np.where(A > 0, np.asarray(stats["xi"]) / A**2, 0.0)
        o, na = self.n_init_params, self.n_trans_params
        out = np.zeros((self.n_params, self.n_params))
        J = dA[o:o + na].reshape(na, self.K * self.K)
        out[o:o + na, o:o + na] = (J * wA.ravel()) @ J.T
        return out

    def information_bytes(self) -> int:
        """Memory Louis' pieces need: the per-block P x P partial sums and a few P x P
        matrices of the reduction and the inversion."""
        P = self.n_params
        return 8 * P * P * (LOUIS_BLOCKS + 6)

    def _check_information_size(self):
        need = self.information_bytes()
        limit = information_memory_limit()
        if need > limit:
            raise InformationTooLargeError(
                f"the {self.n_params} x {self.n_params} information matrix of this model "
                f"needs about {need / 2**30:.2f} GiB, above the limit of "
                f"{limit / 2**30:.2f} GiB (EMSTATS_MAX_INFO_BYTES); fit with cov_type=None, "
                "or raise the limit")

    def chunk_louis(self, params: HMMParams, chunk) -> Stats:
        """Log-likelihood, score and Louis' pieces of the chunk's sequences, exactly:
        the sums of :meth:`_louis_piece` over the chunk's pieces (:meth:`_pieces`; the
        pieces are additive, the complete information being linear in the statistics)."""
        total = 0
        for piece in self._pieces(chunk):
            total = total + self._louis_piece(params, piece)
        return total

    def _louis_piece(self, params: HMMParams, chunk) -> Stats:
        """Log-likelihood, score and Louis' pieces of the chunk's sequences, exactly.

        The complete-data score is a sum over time of terms f_t(S_t-1, S_t) that are
        sparse (one row of transition coordinates, one state's emission block).  Given
        the data the states form a Markov chain, so E[Sc Sc' | y] needs only, per
        state l, the conditional mean mu_t(l) = E[F_t | S_t = l, y] of the score of the
        rows up to t, carried forward with the backward transition probabilities
        xi_t(k, l) / gamma_t(l) (kernel ``louis_blocks``, parallel over blocks of
        sequences).  The missing information is E[Sc Sc' | y] - E[Sc | y] E[Sc | y]'
        summed over sequences, the complete information comes from the posterior
        counts and emission statistics in closed form, and the score is E[Sc | y].
        """
        self._check_information_size()
        if not self._valid(params):
            raise FloatingPointError("the parameters are not valid")
        tot, _, (w, _, al, _, gam) = self._forward_backward(params, chunk, 1)
        if tot[1] > 0 or not np.isfinite(tot[0]):
            raise FloatingPointError("the log-likelihood is not finite at these parameters")
        stats = self._unpack_stats(tot, params.transmat)
        comp = self.complete_information(params, stats)
        P, K = self.n_params, self.K
        em = self.emission
        if not em.louis_kernel:
            # the observed information by the exact derivatives of the forward recursion
            # on the chunk's sequences; missing = complete - observed
            X = np.asarray(chunk["Xk"]) + self._xbar
            bounds = np.ascontiguousarray(chunk.unit_bounds, dtype=np.int64)
            grad, hess = self.loglike_derivatives(params, rows=(X, _DUMMY_CODES, bounds))
            missing = comp + hess
            return Stats(loglik=float(tot[0]), score=grad, complete=comp,
                         missing=0.5 * (missing + missing.T))
        q = em.q
        oA = self.n_init_params
        e0 = oA + self.n_trans_params
        A = np.ascontiguousarray(params.transmat)
        d0 = params.startprob
        dd, _ = self._init_derivs(params)
        with np.errstate(divide="ignore", invalid="ignore"):
            fdelta = np.ascontiguousarray(np.where(d0 > 0, dd / d0, 0.0).T)  # d log delta_l
        idx = self._rows_A.index
        trow = np.array([i for i, _, _ in idx], dtype=np.int64)
        tcol = np.array([j for _, j, _ in idx], dtype=np.int64)
        tlast = np.array([la for _, _, la in idx], dtype=np.int64)
        rowptr = np.searchsorted(trow, np.arange(K + 1)).astype(np.int64)
        bounds = np.ascontiguousarray(chunk.unit_bounds, dtype=np.int64)
        blocks = _even_blocks(bounds, LOUIS_BLOCKS)
        nb = len(blocks)
        Mpart = np.zeros((nb, P, P))
        spart = np.zeros((nb, P))
        ffpart = np.zeros((nb, K * q, q))
        eg0part = np.zeros((nb, K * q))
        p1, p2 = (np.ascontiguousarray(a, dtype=float) for a in em.grad_args(params.emission,
                                                                             self))
        if em.etype == 3:
            X, codes, M = _DUMMY2, chunk["codes"], self.M
        else:
            X = chunk["Xk"] if em.etype in (1, 2) else chunk["x"][:, None]
            X, codes, M = np.ascontiguousarray(X), _DUMMY_CODES, 0
        hk.louis_blocks(al, w, gam, A, bounds, blocks, em.etype, X, codes, M, p1, p2, q,
                        fdelta, trow, tcol, tlast, rowptr, oA, e0, Mpart, spart, ffpart,
                        eg0part, chunk.n_threads)
        Mc = Mpart.sum(axis=0)      # fixed blocks, reduced in order
        score = spart.sum(axis=0)
        ff = ffpart.sum(axis=0).reshape(K, q, q)
        eg0 = eg0part.sum(axis=0).reshape(K, q)
        missing = Mc + Mc.T + self._transition_products(params, stats)
        # same-time products at the first rows: sum_l gamma_1(l) (fd_l + g_1(l)) (...)'
        missing += (fdelta.T * np.asarray(stats["g0"])) @ fdelta
        for k in range(K):
            sl = slice(e0 + k * q, e0 + (k + 1) * q)
            missing[sl, sl] += ff[k]
            cross = np.outer(fdelta[k], eg0[k])
            missing[:, sl] += cross
            missing[sl, :] += cross.T
        missing = 0.5 * (missing + missing.T)
        return Stats(loglik=float(tot[0]), score=score, complete=comp, missing=missing)
    # -- posteriors and decoding ---------------------------------------------------------------
    def posteriors(self, params: HMMParams, kind: str = "smoothed",
                   n_threads: int | None = None) -> np.ndarray:
        """P(S_t = k | y) given all data of the sequence (``"smoothed"``) or data up to t
        (``"filtered"``); stacked row order."""
        if kind not in ("smoothed", "filtered"):
            raise ValueError(f"kind must be 'smoothed' or 'filtered', got {kind!r}")
        out = []
        for ch in self._chunks(n_threads):
            _, _, work = self._forward_backward(params, ch, 1 if kind == "smoothed" else 0)
            out.append(work[4 if kind == "smoothed" else 2])
        return out[0] if len(out) == 1 else np.concatenate(out)

    def viterbi(self, params: HMMParams, n_threads: int | None = None):
        """Most likely state path (stacked row order, states 0..K-1) and the joint
        log-probability of each sequence with its path."""
        K = self.K
        nt = resolve_threads(n_threads)
        logd = np.empty((self.T, K))
        self._emission_kernel(params.emission, self.data, logd, _DUMMY, 1, nt)
        with np.errstate(divide="ignore"):
            logA = np.log(params.transmat)
            logi = np.log(params.startprob)
        bp = np.zeros((self.T, K), dtype=np.intc)
        path = np.zeros(self.T, dtype=np.int64)
        lp = np.empty(self.n_seq)
        blocks, _ = _layout(self.seq_start, long_rows=np.inf)
        hk.viterbi(logd, np.ascontiguousarray(logA), np.ascontiguousarray(logi), self.seq_start,
                   blocks, bp, path, lp, nt)
        return path, lp
    def to_caller_order(self, arr):
        """Reorder stacked rows to the caller's row order."""
        if self._order is None:
            return arr
        out = np.empty_like(arr)
        out[self._order] = arr
        return out

    # -- what the common fit asks of the model -------------------------------------------------
    #: the default scheme: SQUAREM on the Baum-Welch map, measured against Baum-Welch and
    #: Louis-Newton in benchmarks/bench_convergence.py (docs/hmm.md, "Default scheme")
    preferred_method = "squarem"

    def check_start(self, start) -> HMMParams:
        """Validate ``start_params``: an :class:`HMMParams` or a dict of arrays."""
        if isinstance(start, HMMParams):
            p = start
        elif isinstance(start, dict):
            start = dict(start)
            sp = start.pop("startprob", None)
            tm = start.pop("transmat", None)
            if tm is None:
                raise ValueError("start_params must include 'transmat'")
            if self.initial == "estimate" and sp is None:
                sp = np.full(self.K, 1.0 / self.K)
            try:
                p = self.make_params(sp, tm, **start)
            except (ValueError, np.linalg.LinAlgError) as err:
                raise ValueError(f"start_params: {err}") from None
        else:
            raise TypeError("start_params must be an HMMParams or a dict of arrays")
        if not self._valid(p):
            raise ValueError("start_params are not valid parameters (probabilities, positive "
                             "rates/variances, transitions allowed by the structure)")
        return p

    def initial_starts(self, init, n_init: int, rng: np.random.Generator):
        """``init=None``: the deterministic start (k-means, quantiles or Dirichlet draws for
        the emissions, a sticky transition matrix) and ``n_init - 1`` random ones;
        ``init="random"``: ``n_init`` random starts (Dirichlet transition rows)."""
        if init not in (None, "default", "random"):
            raise ValueError(f"init must be None or 'random', got {init!r}")
        first = 1 if init == "random" else 0
        return [("default" if i == 0 else f"random {i}", self.start_params(rng, i))
                for i in range(first, first + n_init)]

    def restrict_boundary(self, params: HMMParams):
        """Free probabilities below ``boundary_tol`` are on the boundary of the parameter
        space: return the model with them fixed at zero and the estimate moved there,
        or None when there are none (the fit is then finished with the new model)."""
        tol = self.boundary_tol
        A = params.transmat.copy()
        bA = self.trans_allowed & (A < tol)
        for i in range(self.K):          # keep at least one free entry per row
            if bA[i].sum() == self.trans_allowed[i].sum():
                bA[i, np.argmax(A[i])] = False
        d0 = params.startprob.copy()
        bd = np.zeros(self.K, dtype=bool)
        if self.initial == "estimate":
            bd = self.init_allowed & (d0 < tol)
            if bd.sum() == self.init_allowed.sum():
                bd[np.argmax(d0)] = False
        if not (bA.any() or bd.any()):
            return None
        model = self.with_structure(self.trans_allowed & ~bA, self.init_allowed & ~bd)
        A[bA] = 0.0
        A = A / A.sum(axis=1, keepdims=True)
        if self.initial == "estimate":
            d0[bd] = 0.0
            d0 = d0 / d0.sum()
        elif self.initial == "stationary":
            d0 = stationary_distribution(A)
        return model, HMMParams(d0, A, params.emission)

    def results_kwargs(self, params: HMMParams, run) -> dict:
        """The entries fixed on the boundary (names) and the model as specified."""
        bA = self.trans_allowed & (params.transmat == 0)
        boundary = [f"p[{i + 1}->{j + 1}]" for i, j in zip(*np.nonzero(bA), strict=True)]
        if self.initial == "estimate":
            bd = self.init_allowed & (params.startprob == 0)
            boundary += [f"init[{j + 1}]" for j in np.flatnonzero(bd)]
        return {"extra": {"boundary": boundary, "full_model": self}}

    def diagnose_failure(self, err):
        """A numerical failure of EM on data that passed the checks: say what to try."""
        return None

    def degenerate_estimate(self, params: HMMParams) -> str | None:
        """What collapsed at the estimate (states whose covariance is at the floor, where
        the likelihood is unbounded), or None."""
        bad = np.flatnonzero(self.emission.collapsed(params.emission, self))
        if bad.size == 0:
            return None
        which = ("the state-common covariance" if self.covariance == "tied" else
                 f"the covariance of state(s) {[int(k) + 1 for k in bad]}")
        return (f"{which} of the {self.K}-state Gaussian HMM ({self.covariance} covariance) "
                "collapsed to numerical singularity and was floored (1e-10 of the data "
                "variance): the likelihood is unbounded there, so the log-likelihood and "
                "standard errors mean nothing.  Use fewer states, a constrained covariance "
                "or more observations per state.")


def _state_name(local: str, state: int) -> str:
    # "mu[x]" -> "mu[2,x]"; "lambda" -> "lambda[2]"
    if "[" in local:
        head, rest = local.split("[", 1)
        return f"{head}[{state},{rest}"
    return f"{local}[{state}]"


# ---------------------------------------------------------------------------------------
# results
# ---------------------------------------------------------------------------------------


class HMMResults(EMResults):
    """Results of an HMM fit: labelled parameters with standard errors, decoding,
    posterior probabilities, forecasts and simulation.

    ``params`` holds the inference coordinates (free probabilities, emission
    parameters); the full labelled matrices are :attr:`startprob`,
    :attr:`transmat` and the emission attributes, each with a ``*_se``
    companion (delta method; zero for entries fixed by the structure, NaN for
    entries fixed on the boundary).
    """

    # -- counts --------------------------------------------------------------------------------
    @property
    def n_free_params(self) -> int:
        """Free parameters of the model as specified (boundary entries included)."""
        return int(self.df_model)

    @property
    def aic(self) -> float:
        """Akaike's criterion, -2 llf + 2 p (p counts boundary parameters)."""
        return -2.0 * self.llf + 2.0 * self.n_free_params

    @property
    def bic(self) -> float:
        """Schwarz's criterion, -2 llf + p log T (T = number of observations)."""
        return -2.0 * self.llf + np.log(self.nobs) * self.n_free_params

    # -- labelled estimates ----------------------------------------------------------------------
    @property
    def states(self) -> list[int]:
        """State labels 1..K."""
        return list(range(1, self.model.K + 1))

    def _natural_cov(self):
        """Delta-method covariance of all natural-scale quantities (flattened startprob,
        transmat, emission arrays), and the index of each block."""
        m = self.model
        theta = self.params.to_numpy()

        def nat(th):
            p = m.from_inference(th)
            parts = [p.startprob, p.transmat.ravel()]
            parts += [np.asarray(v, float).ravel() for v in m.emission.natural(p.emission).values()]
            return np.concatenate(parts)

        # the map is linear except the stationary start distribution: exact Jacobian
        P = len(theta)
        base = nat(theta)
        J = np.zeros((len(base), P))
        for j in range(P):
            e = np.zeros(P)
            e[j] = 1.0
            J[:, j] = nat(theta + e) - base
        if m.initial == "stationary":
            dd, _ = m._init_derivs(self.raw_params)
            J[:m.K] = dd.T
        cov = J @ self._cov @ J.T
        return base, cov

    def _split_natural(self, vec):
        m = self.model
        K = m.K
        out = {"startprob": vec[:K], "transmat": vec[K:K + K * K].reshape(K, K)}
        o = K + K * K
        for name, arr in m.emission.natural(self.raw_params.emission).items():
            n = np.asarray(arr).size
            out[name] = vec[o:o + n].reshape(np.shape(arr))
            o += n
        return out

    def _labelled(self, which: str, se: bool):
        base, cov = self._natural_cov()
        vals = self._split_natural(np.sqrt(np.maximum(np.diag(cov), 0)) if se else base)
        v = vals[which]
        m = self.model
        st = self.states
        if se:
            full = self.extra.get("full_model", m)
            if which == "transmat":
                v = np.where(full.trans_allowed & ~m.trans_allowed, np.nan, v)
            elif which == "startprob" and full.initial == "estimate":
                v = np.where(full.init_allowed & ~m.init_allowed, np.nan, v)
        if which == "startprob":
            return pd.Series(v, index=pd.Index(st, name="state"), name="startprob")
        if which == "transmat":
            return pd.DataFrame(v, index=pd.Index(st, name="from"),
                                columns=pd.Index(st, name="to"))
        if which == "rates":
            return pd.Series(v, index=pd.Index(st, name="state"), name="lambda")
        if which in ("means", "vars"):
            return pd.DataFrame(v, index=pd.Index(st, name="state"), columns=m.var_names)
        if which == "probs":
            return pd.DataFrame(v, index=pd.Index(st, name="state"),
                                columns=m.emission.alphabet)
        if which == "covs":
            return {s: pd.DataFrame(v[i], index=m.var_names, columns=m.var_names)
                    for i, s in enumerate(st)}
        raise KeyError(which)

    @property
    def startprob(self) -> pd.Series:
        """Distribution of the first state."""
        return self._labelled("startprob", False)

    @property
    def startprob_se(self) -> pd.Series:
        """Standard errors of :attr:`startprob`."""
        return self._labelled("startprob", True)

    @property
    def transmat(self) -> pd.DataFrame:
        """Transition matrix (rows: from, columns: to)."""
        return self._labelled("transmat", False)

    @property
    def transmat_se(self) -> pd.DataFrame:
        """Standard errors of :attr:`transmat`."""
        return self._labelled("transmat", True)

    def _emission_attr(self, key, se):
        if key not in self.model.emission.natural(self.raw_params.emission):
            raise AttributeError(f"a {self.model.emission.name} emission has no {key!r}")
        return self._labelled(key, se)

    rates = property(lambda self: self._emission_attr("rates", False),
                     doc="Poisson rates of the states.")
    rates_se = property(lambda self: self._emission_attr("rates", True),
                        doc="Standard errors of the Poisson rates.")
    means = property(lambda self: self._emission_attr("means", False),
                     doc="Gaussian means (states x variables).")
    means_se = property(lambda self: self._emission_attr("means", True),
                        doc="Standard errors of the means.")
    variances = property(lambda self: self._emission_attr("vars", False),
                         doc="Gaussian variances (diagonal covariance).")
    variances_se = property(lambda self: self._emission_attr("vars", True),
                            doc="Standard errors of the variances.")
    covariances = property(lambda self: self._emission_attr("covs", False),
                           doc="Gaussian covariance matrices (dict state -> DataFrame).")
    covariances_se = property(lambda self: self._emission_attr("covs", True),
                              doc="Standard errors of the covariance matrices.")
    emissionprob = property(lambda self: self._emission_attr("probs", False),
                            doc="Categorical emission probabilities (states x symbols).")
    emissionprob_se = property(lambda self: self._emission_attr("probs", True),
                               doc="Standard errors of the emission probabilities.")

    @property
    def stationary(self) -> pd.Series:
        """Stationary distribution of the fitted transition matrix."""
        try:
            v = stationary_distribution(self.raw_params.transmat)
        except np.linalg.LinAlgError:
            v = np.full(self.model.K, np.nan)
        return pd.Series(v, index=pd.Index(self.states, name="state"), name="stationary")

    # -- decoding and posteriors ----------------------------------------------------------------
    def viterbi(self) -> pd.Series:
        """Most likely state sequence (global decoding), labelled 1..K, in the data's row order."""
        path, _ = self.model.viterbi(self.raw_params)
        return pd.Series(self.model.to_caller_order(path + 1), index=self.model.row_labels,
                         name="state")

    def smoothed_probs(self) -> pd.DataFrame:
        """P(S_t = k | all observations of the sequence) (local decoding)."""
        return self._probs("smoothed")

    def plot_states(self, sequence=0, time=None, axes=None):
        """Observations coloured by decoded state, over the smoothed state probabilities.

        Parameters
        ----------
        sequence : int or name
            Which sequence (default the first).
        time : array_like, optional
            The time of each observation of the sequence (default 1, 2, ...).
        axes : pair of matplotlib Axes, optional
            The two panels (default: a new figure).

        Returns
        -------
        pair of matplotlib Axes
        """
        from ..inference.plots import hmm_states

        m = self.model
        s = m.seq_names.index(sequence) if sequence in m.seq_names else int(sequence)
        if not 0 <= s < len(m.lengths):
            raise ValueError(f"sequence {sequence!r}: there are {len(m.lengths)} sequences")
        start = int(np.sum(m.lengths[:s]))
        rows = slice(start, start + int(m.lengths[s]))
        path, _ = m.viterbi(self.raw_params)
        probs = m.posteriors(self.raw_params, "smoothed")[rows]
        obs = m.X[rows]
        obs = obs[:, 0] if obs.ndim == 2 and obs.shape[1] == 1 else obs
        nat = m.emission.natural(self.raw_params.emission)
        means = nat.get("rates", nat.get("means"))
        if means is not None and np.ndim(obs) == 1:
            means = np.asarray(means, dtype=float).reshape(m.K, -1)[:, 0]
        else:
            means = None
        t = np.arange(1, probs.shape[0] + 1) if time is None else np.asarray(time)
        if t.shape[0] != probs.shape[0]:
            raise ValueError(f"time has {t.shape[0]} values for {probs.shape[0]} observations")
        name = ", ".join(map(str, m.var_names)) if getattr(m, "var_names", None) else "y"
        label = f" (sequence {m.seq_names[s]})" if len(m.lengths) > 1 else ""
        return hmm_states(t, obs, np.asarray(path[rows]) + 1, probs,
                          state_labels=list(self.states), obs_label=name, state_means=means,
                          title=f"{m.K}-state HMM, {m.emission.name} emission{label}: "
                                "Viterbi states", axes=axes)

    def filtered_probs(self) -> pd.DataFrame:
        """P(S_t = k | observations of the sequence up to t)."""
        return self._probs("filtered")

    def _probs(self, kind):
        g = self.model.posteriors(self.raw_params, kind)
        return pd.DataFrame(self.model.to_caller_order(g), index=self.model.row_labels,
                            columns=pd.Index(self.states, name="state"))

    def _model_for(self, newdata, lengths):
        """The fitted model's structure on other observations (no identification checks:
        they are evaluated at the fitted parameters, not estimated)."""
        m = self.model
        if newdata is None:
            if lengths is not None:
                raise ValueError("lengths= goes with newdata=")
            return m
        if isinstance(newdata, pd.DataFrame) and set(m.var_names) <= set(newdata.columns):
            newdata = newdata[m.var_names]
        initial = m.init_fixed if m.initial == "fixed" else m.initial
        return HiddenMarkovModel(
            newdata, m.K, m.emission_name, covariance=m.covariance, lengths=lengths,
            initial=initial, transitions=m.trans_allowed,
            alphabet=getattr(m.emission, "alphabet", None), var_names=m.var_names,
            row_labels=newdata.index if isinstance(newdata, (pd.Series, pd.DataFrame))
            else None, identify=False)

    def predict_proba(self, newdata=None, *, lengths=None) -> pd.DataFrame:
        """Smoothed state probabilities P(S_t = k | all observations of the sequence).

        Parameters
        ----------
        newdata : array_like, Series or DataFrame, optional
            Other observations (same variables) to decode with the fitted parameters;
            default: the data of the fit (then the same as :meth:`smoothed_probs`).
        lengths : array_like of int, optional
            Sequence lengths of ``newdata`` (default: one sequence).

        Returns
        -------
        pandas.DataFrame
            One row per observation (the data's row order and index), one column per state.
        """
        m = self._model_for(newdata, lengths)
        g = m.posteriors(self.raw_params, "smoothed")
        return pd.DataFrame(m.to_caller_order(g), index=m.row_labels,
                            columns=pd.Index(self.states, name="state"))

    def predict(self, newdata=None, which: str = "mean", *, lengths=None):
        """Predictions for the data of the fit or for ``newdata``, from the smoothed
        state probabilities (local decoding).

        Parameters
        ----------
        newdata : array_like, Series or DataFrame, optional
            Other observations to decode with the fitted parameters (default: the data).
        which : {"mean", "state", "proba"}
            ``"mean"`` (default, the package's one predict vocabulary): the posterior
            mean of the observation, sum_k P(S_t = k | y) E[x | k] (for a categorical
            emission the posterior probabilities of the symbols); ``"state"``: the most
            probable state at each time (1..K);
            ``"proba"``: the smoothed probabilities (:meth:`predict_proba`).
        lengths : array_like of int, optional
            Sequence lengths of ``newdata``.

        Returns
        -------
        pandas.Series or pandas.DataFrame
            In the data's row order with its index.  Global decoding (the most likely
            path) is :meth:`viterbi`.
        """
        if which not in ("state", "mean", "proba"):
            raise ValueError(f"which must be 'state', 'mean' or 'proba', got {which!r}")
        p = self.predict_proba(newdata, lengths=lengths)
        if which == "proba":
            return p
        if which == "state":
            return pd.Series(np.asarray(p.columns)[p.to_numpy().argmax(axis=1)], index=p.index,
                             name="state")
        m, em = self.model, self.raw_params.emission
        if m.emission.etype == 3:
            return pd.DataFrame(p.to_numpy() @ em["probs"], index=p.index,
                                columns=m.emission.alphabet)
        mean = p.to_numpy() @ m.emission.state_means(em)
        if m.d == 1:
            return pd.Series(mean[:, 0], index=p.index, name="mean")
        return pd.DataFrame(mean, index=p.index, columns=m.var_names)

    # -- forecasting -----------------------------------------------------------------------------
    def _last_filtered(self, sequence):
        m = self.model
        s = m.n_seq - 1 if sequence is None else (
            m.seq_names.index(sequence) if sequence in m.seq_names else int(sequence))
        if not 0 <= s < m.n_seq:
            raise ValueError(f"no sequence {sequence!r}")
        g = m.posteriors(self.raw_params, "filtered")
        return g[m.seq_start[s + 1] - 1]

    def forecast_states(self, steps: int = 1, sequence=None) -> pd.DataFrame:
        """State probabilities h = 1..steps steps after the end of a sequence.

        Parameters
        ----------
        steps : int
            Forecast horizon.
        sequence : optional
            Sequence name or index (default: the last sequence).

        Returns
        -------
        pandas.DataFrame
            One row per horizon, one column per state.
        """
        if int(steps) < 1:
            raise ValueError(f"steps must be at least 1, got {steps!r}")
        v = self._last_filtered(sequence)
        A = self.raw_params.transmat
        out = []
        for _ in range(int(steps)):
            v = v @ A
            out.append(v)
        return pd.DataFrame(np.array(out), index=pd.RangeIndex(1, int(steps) + 1, name="h"),
                            columns=pd.Index(self.states, name="state"))

    def forecast(self, steps: int = 1, sequence=None) -> pd.DataFrame:
        """Forecast mean (and variance, for numeric emissions) of the observations
        h = 1..steps steps ahead: mixtures of the state distributions weighted by
        :meth:`forecast_states`.  For a categorical emission, the forecast
        probability of each symbol.

        Parameters
        ----------
        steps : int
            Forecast horizon.
        sequence : optional
            Sequence name or index (default: the last sequence)."""
        ps = self.forecast_states(steps, sequence).to_numpy()
        m = self.model
        em = self.raw_params.emission
        idx = pd.RangeIndex(1, ps.shape[0] + 1, name="h")
        if m.emission.etype == 3:
            return pd.DataFrame(ps @ em["probs"], index=idx, columns=m.emission.alphabet)
        mu = m.emission.state_means(em)
        var = m.emission.state_vars(em)
        mean = ps @ mu
        second = ps @ (var + mu**2)
        cols = {}
        for j, v in enumerate(m.var_names):
            cols[f"mean[{v}]" if m.d > 1 else "mean"] = mean[:, j]
            cols[f"var[{v}]" if m.d > 1 else "var"] = second[:, j] - mean[:, j] ** 2
        return pd.DataFrame(cols, index=idx)

    def forecast_distribution(self, steps: int = 1, support=None, sequence=None) -> pd.DataFrame:
        """Forecast probability mass function of a Poisson or categorical emission.

        Parameters
        ----------
        steps : int
            Forecast horizon.
        support : array_like of int, optional
            Counts at which to evaluate a Poisson forecast (default 0 .. 2 max(y)).
        sequence : optional
            Sequence name or index (default: the last sequence).

        Returns
        -------
        pandas.DataFrame
            Rows: horizons; columns: counts or symbols.
        """
        m = self.model
        if m.emission.etype == 3:
            return self.forecast(steps, sequence)
        if m.emission.etype != 0:
            raise ValueError("forecast_distribution is for Poisson and categorical emissions; "
                             "use forecast() for Gaussian means and variances")
        ps = self.forecast_states(steps, sequence).to_numpy()
        x = np.arange(0, int(2 * m.X.max()) + 1) if support is None else \
            np.asarray(support, dtype=float)
        lam = self.raw_params.emission["rates"]
        pmf = np.exp(special.xlogy(x[:, None], lam) - lam - special.gammaln(x[:, None] + 1.0))
        return pd.DataFrame(ps @ pmf.T, index=pd.RangeIndex(1, ps.shape[0] + 1, name="h"),
                            columns=x.astype(int) if support is None else x)

    # -- simulation ----------------------------------------------------------------------------
    def sample(self, n: int | None = None, lengths=None, random_state=None):
        """Simulate from the fitted model.

        Parameters
        ----------
        n : int, optional
            Length of one simulated sequence (default: the data's number of rows).
        lengths : array_like of int, optional
            Lengths of several independent sequences (overrides ``n``).
        random_state : int or numpy Generator, optional
            Random seed or generator.

        Returns
        -------
        obs : ndarray, shape (T, d) (categorical: array of symbols)
        states : ndarray of int, shape (T,)
            States 1..K.
        """
        rng = np.random.default_rng(random_state)
        m = self.model
        lens = [m.T if n is None else int(n)] if lengths is None else [int(v) for v in lengths]
        p = self.raw_params
        cumA = np.cumsum(p.transmat, axis=1)
        states = []
        for L in lens:
            s = np.empty(L, dtype=np.int64)
            s[0] = min(int(np.searchsorted(np.cumsum(p.startprob), rng.random(), side="right")),
                       m.K - 1)
            u = rng.random(L)
            for t in range(1, L):
                s[t] = min(int(np.searchsorted(cumA[s[t - 1]], u[t], side="right")), m.K - 1)
            states.append(s)
        st = np.concatenate(states)
        obs = m.emission.sample(rng, p.emission, st)
        if m.emission.etype == 3:
            obs = np.asarray(m.emission.alphabet, dtype=object)[obs]
        return obs, st + 1

    # -- presentation ----------------------------------------------------------------------------
    def _summary_rows(self):
        m = self.model
        left = [("States:", [str(m.K)]), ("Sequences:", [str(m.n_seq)]),
                ("Emission:", [m.emission.name.split(" (")[0]])]
        right = [("Initial distr.:", [m.initial]), ("Free params:", [str(self.n_free_params)])]
        return left, right

    def _summary_notes(self):
        notes = super()._summary_notes()
        b = self.extra.get("boundary") or []
        if b:
            notes.append("Fixed at zero on the boundary of the parameter space (no standard "
                         "error; counted in AIC/BIC): " + ", ".join(b) + ".")
        tm = self.transmat.round(4).to_string()
        notes.append("Transition matrix (rows: from, columns: to):\n" + tm)
        return notes

    def summary(self, alpha: float = 0.05, title: str | None = None):
        """Summary table: estimates with exact observed-information standard errors.

        Parameters
        ----------
        alpha : float
            Significance level of the confidence intervals (default 0.05).
        title : str, optional
            Title of the table.
        """
        return super().summary(alpha=alpha,
                               title=title or f"{self.model.K}-state hidden Markov model")


HiddenMarkovModel.results_class = HMMResults


# ---------------------------------------------------------------------------------------
# the user-facing constructor
# ---------------------------------------------------------------------------------------


def hmm(obs, k: int, emission: str = "gaussian", *, data=None, lengths=None, groups=None,
        covariance: str = "diag", initial="estimate", transitions=None, alphabet=None,
        boundary_tol: float = 1e-6) -> HiddenMarkovModel:
    """Hidden Markov model from an array, a Series/DataFrame or a one-sided formula.

    Parameters
    ----------
    obs : array_like, Series, DataFrame or str
        Observations in time order, or a one-sided formula such as ``"~ count"``
        or ``"~ x1 + x2"`` evaluated in ``data``.  A DataFrame uses all its
        columns except the ``groups`` column.
    k : int
        Number of hidden states.
    emission : {"gaussian", "poisson", "categorical"}
        State-dependent distribution.
    data : DataFrame, optional
        Data for a formula (never modified).
    lengths : array_like of int, optional
        Lengths of consecutive independent sequences.
    groups : str or array_like, optional
        Sequence identifiers (a column of ``data``/``obs`` or an array): rows with
        the same id form one sequence, in their order in the data.
    covariance : {"diag", "full", "tied", "spherical"}
        Covariance of a Gaussian emission: diagonal or full per state, one full matrix
        common to the states (``"tied"``: statsmodels' ``MarkovRegression`` and Stata's
        ``mswitch`` with a common variance), or one variance per state common to the
        variables (``"spherical"``).
    initial : {"estimate", "stationary"} or array_like
        Distribution of the first state; see :class:`HiddenMarkovModel`.
    transitions : {"full", "left-to-right"} or array_like of bool, optional
        Allowed transitions (others are fixed at zero).
    alphabet : sequence, optional
        Symbols of a categorical emission.
    boundary_tol : float
        Free probabilities below this after EM are fixed at zero (on the boundary).

    Returns
    -------
    HiddenMarkovModel
        Call ``.fit()`` on it.

    Examples
    --------
    >>> import emstats
    >>> eq = emstats.datasets.load("earthquakes")
    >>> res = emstats.hmm("~ count", 2, "poisson", data=eq, initial="stationary").fit()
    >>> round(-res.llf, 2)
    342.32
    """
    frame = None
    var_names = None
    arr = None
    if obs is None:
        raise DataError("obs is None: give the observations (an array, a Series or "
                        "DataFrame, or a one-sided formula such as '~ y' with data=)")
    if data is not None:
        data = data_frame(data)
    if isinstance(obs, str):
        if data is None:
            raise DataError("a formula needs data=: emstats.hmm('~ y', k, data=df)")
        frame = data if isinstance(data, pd.DataFrame) else pd.DataFrame(data)
        rhs = obs.split("~", 1)[1].strip() if "~" in obs else obs.strip()
        if obs.split("~", 1)[0].strip() if "~" in obs else "":
            raise DataError(f"the formula must be one-sided ('~ y'), got {obs!r}")
        terms = [t.strip() for t in rhs.split("+")]
        if all(t in frame.columns for t in terms):
            values = frame[terms]
        else:
            values = evaluate_terms(rhs, frame, obs, depth=1)
        var_names = [str(c) for c in values.columns]
    elif isinstance(obs, pd.DataFrame):
        frame = obs
        values = obs
        if isinstance(groups, str):
            if groups not in obs.columns:
                raise DataError(f"groups column {groups!r} is not in the data")
            values = obs.drop(columns=[groups])
        var_names = [str(c) for c in values.columns]
    elif isinstance(obs, pd.Series):
        values = obs.to_frame()
        frame = values
        var_names = [str(obs.name) if obs.name is not None else "y"]
    else:
        arr = np.asarray(obs)
        if arr.ndim == 1:
            arr = arr[:, None]
        # a view for the checks; the model gets the array itself (no copy, pandas would
        # copy it into a block of columns)
        values = pd.DataFrame(arr, copy=False)
        var_names = None if arr.shape[1] > 1 else ["y"]
    if len(values) == 0:
        raise DataError("no observations (0 rows)")
    if emission != "categorical":
        nonnum = [str(c) for c in values.columns
                  if not (pd.api.types.is_numeric_dtype(values[c])
                          or pd.api.types.is_bool_dtype(values[c]))]
        if nonnum:
            raise DataError(f"column(s) {', '.join(map(repr, nonnum))} are not numeric; a "
                            f"{emission} emission needs numbers")
    order = None
    seq_names = None
    row_labels = values.index
    if groups is not None:
        if lengths is not None:
            raise ValueError("give lengths= or groups=, not both")
        if isinstance(groups, str):
            if frame is None or groups not in frame.columns:
                raise DataError(f"groups column {groups!r} is not in the data")
            g = frame[groups].to_numpy()
        else:
            g = np.asarray(groups)
            if g.ndim != 1 or g.shape[0] != len(values):
                raise DataError(f"groups has {g.size if g.ndim else 1} entries (shape "
                                f"{g.shape}) but the data have {len(values)} rows")
        if pd.isna(pd.Series(g)).any():
            raise DataError("groups has missing values (NaN)")
        codes, uniq = pd.factorize(pd.Series(g), sort=False)
        order = np.argsort(codes, kind="stable")
        lengths = np.bincount(codes)
        seq_names = list(uniq)
        values = values.iloc[order]
        arr = None
    endog = arr if arr is not None and arr.ndim == 2 else values
    return HiddenMarkovModel(endog, k, emission, covariance=covariance, lengths=lengths,
                             initial=initial, transitions=transitions, alphabet=alphabet,
                             var_names=var_names, row_labels=row_labels, order=order,
                             seq_names=seq_names, boundary_tol=boundary_tol)
