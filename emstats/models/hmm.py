"""Hidden Markov models fitted by Baum-Welch (EM) with exact observed-information standard errors.

A K-state HMM has an unobserved Markov chain S_1, S_2, ... with initial
distribution delta and transition matrix A (A[i, j] = P(S_t+1 = j | S_t = i)),
and observations that are independent given the states with state-dependent
densities p_k: Poisson, Gaussian (diagonal or full covariance) or categorical.
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
import patsy
from scipy import optimize, special

from .._config import resolve_threads
from .._kernels import hmm_kernels as hk
from ..components.init import kmeans, quantile_starts
from ..em.engine import run_em
from ..em.monitor import ConvergenceInfo
from ..em.params import ParamSpec, Simplex
from ..em.protocol import EMModel, LouisPieces
from ..exceptions import DataError
from ..exceptions import describe_rows as _labels
from ..inference.fit import fit_model
from ..inference.results import EMResults

#: sequences at least this long get row-parallel emission and statistics passes
LONG_SEQUENCE = 1 << 16
#: short sequences are grouped into blocks of about this many rows (one accumulator each)
BLOCK_ROWS = 2048
EMISSIONS = ("poisson", "gaussian", "categorical")
LOG_2PI = float(np.log(2.0 * np.pi))




# ---------------------------------------------------------------------------------------
# parameters and probability rows
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class HMMParams:
    """Parameters of an HMM on their natural scale.

    Attributes
    ----------
    startprob : ndarray, shape (K,)
        Distribution of the first state of each sequence.
    transmat : ndarray, shape (K, K)
        ``transmat[i, j] = P(S_(t+1) = j | S_t = i)``.
    emission : dict of str to ndarray
        ``{"rates"}`` (Poisson), ``{"means", "vars"}`` (Gaussian, diagonal),
        ``{"means", "covs"}`` (Gaussian, full) or ``{"probs"}`` (categorical).
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

    def local_names(self) -> list[str]:
        raise NotImplementedError


class PoissonEmission(_Emission):
    etype = 0
    name = "Poisson"

    def __init__(self, K, d, var_names, M=1):
        super().__init__(K, d, var_names, M)
        self.q = 1

    def local_names(self):
        return ["lambda"]

    def kernel_args(self, em, model):
        lam = em["rates"]
        return np.log(lam), lam.copy(), model._lgx

    def valid(self, em):
        lam = em["rates"]
        return bool(lam.shape == (self.K,) and np.all(np.isfinite(lam)) and np.all(lam > 0))

    def m_step(self, n, sums, em, model):
        old = em["rates"]
        lam = np.where(n > 0, sums / np.where(n > 0, n, 1.0), old)
        return {"rates": np.maximum(lam, 1e-12)}

    def pack(self, em):
        return np.log(em["rates"])

    def unpack(self, u):
        return {"rates": np.exp(u)}

    def to_inf(self, em):
        return em["rates"][:, None]

    def from_inf(self, th):
        return {"rates": th[:, 0].copy()}

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

    def local_names(self):
        return [f"mu[{v}]" for v in self.var_names] + [f"var[{v}]" for v in self.var_names]

    def kernel_args(self, em, model):
        mu = em["means"] - model._xbar
        v = em["vars"]
        lc = -0.5 * self.d * LOG_2PI - 0.5 * np.log(v).sum(axis=1)
        return np.ascontiguousarray(mu).ravel(), (1.0 / v).ravel(), lc

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

    def pack(self, em):
        return np.concatenate([em["means"], np.log(em["vars"])], axis=1).ravel()

    def unpack(self, u):
        u = u.reshape(self.K, 2 * self.d)
        return {"means": u[:, :self.d].copy(), "vars": np.exp(u[:, self.d:])}

    def to_inf(self, em):
        return np.concatenate([em["means"], em["vars"]], axis=1)

    def from_inf(self, th):
        return {"means": th[:, :self.d].copy(), "vars": th[:, self.d:].copy()}

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

    def natural(self, em):
        return {"means": em["means"], "vars": em["vars"]}


class GaussianFullEmission(_Emission):
    etype = 2
    name = "Gaussian (full covariance)"

    def __init__(self, K, d, var_names, M=1):
        super().__init__(K, d, var_names, M)
        self.pairs = [(a, b) for a in range(d) for b in range(a + 1)]
        self.q = d + len(self.pairs)
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

    def pack(self, em):
        L = np.linalg.cholesky(em["covs"])
        out = []
        for k in range(self.K):
            lk = [np.log(L[k, a, a]) if a == b else L[k, a, b] for a, b in self.pairs]
            out.append(np.concatenate([em["means"][k], lk]))
        return np.concatenate(out)

    def unpack(self, u):
        u = u.reshape(self.K, self.q)
        d = self.d
        covs = np.empty((self.K, d, d))
        for k in range(self.K):
            L = np.zeros((d, d))
            for i, (a, b) in enumerate(self.pairs):
                L[a, b] = np.exp(u[k, d + i]) if a == b else u[k, d + i]
            covs[k] = L @ L.T
        return {"means": u[:, :d].copy(), "covs": covs}

    def to_inf(self, em):
        c = em["covs"]
        low = np.stack([[c[k, a, b] for a, b in self.pairs] for k in range(self.K)])
        return np.concatenate([em["means"], low], axis=1)

    def from_inf(self, th):
        d = self.d
        covs = np.empty((self.K, d, d))
        for k in range(self.K):
            for i, (a, b) in enumerate(self.pairs):
                covs[k, a, b] = covs[k, b, a] = th[k, d + i]
        return {"means": th[:, :d].copy(), "covs": covs}

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

    def natural(self, em):
        return {"means": em["means"], "covs": em["covs"]}


class CategoricalEmission(_Emission):
    etype = 3
    name = "categorical"

    def __init__(self, K, d, var_names, M=1, alphabet=None):
        super().__init__(K, d, var_names, M)
        self.q = M - 1
        self.alphabet = list(alphabet)

    def local_names(self):
        return [f"prob[{a}]" for a in self.alphabet[:-1]]

    def kernel_args(self, em, model):
        with np.errstate(divide="ignore"):
            lp = np.log(em["probs"])
        return np.ascontiguousarray(lp).ravel(), _DUMMY, _DUMMY

    def valid(self, em):
        p = em["probs"]
        return bool(p.shape == (self.K, self.M) and np.all(np.isfinite(p)) and np.all(p >= 0)
                    and np.allclose(p.sum(axis=1), 1.0, atol=1e-8))

    def m_step(self, n, sums, em, model):
        c = sums.reshape(self.K, self.M)
        ok = n > 0
        return {"probs": np.where(ok[:, None], c / np.where(ok, n, 1.0)[:, None], em["probs"])}

    def pack(self, em):
        tiny = 1e-300
        p = np.maximum(em["probs"], tiny)
        return (np.log(p[:, :-1]) - np.log(p[:, -1:])).ravel()

    def unpack(self, u):
        z = np.concatenate([u.reshape(self.K, self.M - 1), np.zeros((self.K, 1))], axis=1)
        z = np.exp(z - z.max(axis=1, keepdims=True))
        return {"probs": z / z.sum(axis=1, keepdims=True)}

    def to_inf(self, em):
        return em["probs"][:, :-1].copy()

    def from_inf(self, th):
        return {"probs": np.concatenate([th, 1.0 - th.sum(axis=1, keepdims=True)], axis=1)}

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


class HiddenMarkovModel(EMModel):
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
    covariance : {"diag", "full"}
        Covariance of a Gaussian emission.
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

    Notes
    -----
    Build it with :func:`emstats.hmm` and call :meth:`fit`.
    """

    def __init__(self, endog, k: int, emission: str = "gaussian", *, covariance: str = "diag",
                 lengths=None, initial="estimate", transitions=None, alphabet=None,
                 var_names=None, row_labels=None, order=None, seq_names=None,
                 endog_name: str | None = None):
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
        if covariance not in ("diag", "full"):
            raise ValueError(f"covariance must be 'diag' or 'full', got {covariance!r}")
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
            elif covariance == "diag":
                self.emission = GaussianDiagEmission(K, d, self.var_names)
            else:
                self.emission = GaussianFullEmission(K, d, self.var_names)
            self.X = np.ascontiguousarray(X)
        self.M = M
        self.emission_name = emission
        self.covariance = covariance
        if emission == "gaussian":
            self._xbar = self.X.mean(axis=0)
            colvar = self.X.var(axis=0)
            self.var_floor = 1e-10 * np.where(colvar > 0, colvar, 1.0)
            self._Xk = np.ascontiguousarray(self.X - self._xbar)
            self._Xt = np.ascontiguousarray(self._Xk.T) if covariance == "diag" else _DUMMY2
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
        self._n_threads = resolve_threads(None)
        self._setup_structure()
        self._setup_blocks()
        self._buffers = None
        self._Y = None

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
        self.n_emission_params = K * self.emission.q
        names = self._prob_spec.names()
        loc = self.emission.local_names()
        for k in range(K):
            names += [_state_name(nm, k + 1) for nm in loc]
        self.param_names = names
        self.n_params = len(names)

    def _setup_blocks(self):
        blocks, longs = [], []
        cur, rows = None, 0
        for s in range(self.n_seq):
            n = int(self.lengths[s])
            if n >= LONG_SEQUENCE:
                if cur is not None:
                    blocks.append((cur, s))
                    cur, rows = None, 0
                longs.append(s)
                continue
            if cur is None:
                cur, rows = s, 0
            rows += n
            if rows >= BLOCK_ROWS:
                blocks.append((cur, s + 1))
                cur, rows = None, 0
        if cur is not None:
            blocks.append((cur, self.n_seq))
        self._blocks = np.array(blocks, dtype=np.int64).reshape(-1, 2)
        self._long = longs
        # every sequence in blocks of ~BLOCK_ROWS rows (for Viterbi)
        allb, cur, rows = [], 0, 0
        for s in range(self.n_seq):
            rows += int(self.lengths[s])
            if rows >= BLOCK_ROWS:
                allb.append((cur, s + 1))
                cur, rows = s + 1, 0
        if cur < self.n_seq:
            allb.append((cur, self.n_seq))
        self._all_blocks = np.array(allb, dtype=np.int64).reshape(-1, 2)

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

    def _get_buffers(self):
        """Work arrays of the kernels: scaled densities (then w), row maxima, filtered and
        smoothed probabilities, scale factors (O(T K) memory)."""
        if self._buffers is None:
            T, K = self.T, self.K
            self._buffers = (np.empty((T, K)), np.empty(T), np.empty((T, K)), np.empty(T),
                             np.empty((T, K)))
        return self._buffers

    def _features(self):
        """Emission features Y whose posterior-weighted sums the M-step needs."""
        if self._Y is None:
            e = self.emission.etype
            one = np.ones((self.T, 1))
            if e == 0:
                Y = np.hstack([one, self.X])
            elif e == 1:
                Y = np.hstack([one, self._Xk, self._Xk**2])
            elif e == 2:
                xx = (self._Xk[:, :, None] * self._Xk[:, None, :]).reshape(self.T, -1)
                Y = np.hstack([one, self._Xk, xx])
            else:
                Y = np.zeros((1, 1))
            self._Y = np.ascontiguousarray(Y)
        return self._Y

    def _n_emission_stats(self):
        if self.emission.etype == 3:
            return self.K + self.K * self.M
        return self.K * self._features().shape[1]

    @property
    def n_units(self) -> int:
        """Number of independent sequences."""
        return self.n_seq

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
    def _emission_kernel(self, emission_params, out, row_max, log_only):
        """Fill ``out`` (T x K) with the scaled densities exp(l - row_max) and ``row_max``
        (T) with the row maxima, or with ``log_only`` ``out`` with the log-densities l;
        returns the number of rows with no finite log-density."""
        em, K, nt = self.emission, self.K, self._n_threads
        args = [np.ascontiguousarray(a, dtype=float) for a in em.kernel_args(emission_params,
                                                                             self)]
        if em.etype == 0:
            log_rates, rates, log_xfact = args
            return hk.emission_poisson(self.X[:, 0], log_xfact, log_rates, rates, out, row_max,
                                       log_only, nt)
        if em.etype == 1:
            means, inv_var, log_const = args
            return hk.emission_gaussian_diag(self._Xt, means.reshape(K, -1),
                                             inv_var.reshape(K, -1), log_const, out, row_max,
                                             log_only, nt)
        if em.etype == 2:
            means, inv_chol, log_const = args
            return hk.emission_gaussian_full(self._Xk, means.reshape(K, self.d),
                                             inv_chol.reshape(K, self.d, self.d), log_const,
                                             out, row_max, log_only, nt)
        return hk.emission_categorical(self.codes, args[0].reshape(K, self.M), out, row_max,
                                       log_only, nt)

    def _kernel_estep(self, p: HMMParams, mode: int = 1):
        """Run the forward(-backward) kernel; return the reduced accumulators."""
        K = self.K
        em = self.emission
        A = np.ascontiguousarray(p.transmat)
        AT = np.ascontiguousarray(p.transmat.T)
        init = np.ascontiguousarray(p.startprob)
        b, m, al, cs, gam = self._get_buffers()
        # emission sums: gamma' Y of the features, or the symbol counts (categorical)
        Y, M = (np.zeros((0, 0)), self.M) if em.etype == 3 else (self._features(), 0)
        ne = self._n_emission_stats()
        S = 2 + K + K * K + ne
        part = np.zeros((len(self._blocks), S))
        seq_ll = np.full(self.n_seq, np.nan)
        nt = self._n_threads
        bad = self._emission_kernel(p.emission, b, m, 0)
        if len(self._blocks):
            hk.forward_backward(A, AT, init, self.seq_start, self._blocks, b, m, al, gam, cs, Y,
                                self.codes, M, seq_ll, part, mode, nt)
        tot = part.sum(axis=0)
        tot[1] += bad
        for s in self._long:
            r0, r1 = int(self.seq_start[s]), int(self.seq_start[s + 1])
            acc = np.zeros(2 + K)
            seq_ll[s] = hk.forward_backward_one(A, AT, init, r0, r1, b, m, al, gam, cs, acc,
                                                mode)
            tot[:2 + K] += acc
            if mode == 1 and acc[1] == 0:
                nch = (r1 - r0 + hk.chunk_rows() - 1) // hk.chunk_rows()
                sp = np.zeros((nch, K * K + ne))
                hk.stats_rows(Y, self.codes, M, r0, r1, al, b, gam, sp, nt)
                tot[2 + K:] += sp.sum(axis=0)
        return tot, seq_ll

    def _unpack_stats(self, tot, A):
        K = self.K
        o = 2 + K
        em = tot[o + K * K:]
        if self.emission.etype == 3:
            n, sums = em[:K].copy(), em[K:].copy()
        else:
            Sm = em.reshape(K, -1)
            n = Sm[:, 0].copy()
            if self.emission.etype == 0:
                sums = Sm[:, 1].copy()
            else:
                d = self.d
                sums = np.concatenate([Sm[:, 1:1 + d].ravel(), Sm[:, 1 + d:].ravel()])
        return {"ll": float(tot[0]), "bad": float(tot[1]), "g0": tot[2:o].copy(),
                "xi": A * tot[o:o + K * K].reshape(K, K), "n": n, "sums": sums}

    # -- EM protocol --------------------------------------------------------------------------
    def e_step(self, params: HMMParams):
        if not self._valid(params):
            return None, -np.inf
        tot, _ = self._kernel_estep(params, 1)
        st = self._unpack_stats(tot, params.transmat)
        if st["bad"] > 0 or not np.isfinite(st["ll"]):
            return None, -np.inf
        return st, st["ll"]

    def loglike(self, params: HMMParams) -> float:
        if not self._valid(params):
            return -np.inf
        tot, _ = self._kernel_estep(params, 0)
        if tot[1] > 0:
            return -np.inf
        return float(tot[0])

    def loglikeseq(self, params: HMMParams) -> np.ndarray:
        """Log-likelihood of each sequence."""
        _, seq_ll = self._kernel_estep(params, 0)
        return seq_ll

    def m_step(self, stats, params: HMMParams) -> HMMParams:
        K = self.K
        xi = stats["xi"]
        rs = xi.sum(axis=1, keepdims=True)
        A = np.where(rs > 0, xi / np.where(rs > 0, rs, 1.0), params.transmat)
        A = np.where(self.trans_allowed, A, 0.0)
        if self.initial == "stationary":
            A = self._stationary_mstep(stats["g0"], xi, params.transmat, A)
            d0 = stationary_distribution(A)
        elif self.initial == "fixed":
            d0 = self.init_fixed.copy()
        else:
            g0 = np.where(self.init_allowed, stats["g0"], 0.0)
            d0 = g0 / g0.sum()
        em = self.emission.m_step(stats["n"], stats["sums"], params.emission, self)
        del K
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
        em = self.emission.from_inf(vec[n:].reshape(self.K, self.emission.q))
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

    def loglike_derivatives(self, params: HMMParams, max_batch_elems: int = 4_000_000):
        """Exact gradient and Hessian of the log-likelihood in inference coordinates.

        Differentiates the scaled forward recursion twice (Lystig & Hughes 2002);
        sequences of equal length are processed together.  Cost O(T P^2 K^2).

        Returns
        -------
        grad : ndarray, shape (P,)
        hess : ndarray, shape (P, P)
        """
        P, K = self.n_params, self.K
        q = self.emission.q
        e0 = self.n_init_params + self.n_trans_params
        A = params.transmat
        d0 = params.startprob
        dd, d2d = self._init_derivs(params)
        dA = self._trans_derivs()
        grad = np.zeros(P)
        hess = np.zeros((P, P))
        by_len: dict[int, list[int]] = {}
        for s, n in enumerate(self.lengths):
            by_len.setdefault(int(n), []).append(s)
        bmax = max(1, int(max_batch_elems // max(P * P * K, 1)))
        tch = 512
        for L, seqs in by_len.items():
            for b0 in range(0, len(seqs), bmax):
                batch = np.array(seqs[b0:b0 + bmax])
                B = len(batch)
                starts = self.seq_start[batch]
                a = D = E = None
                for t0 in range(0, L, tch):
                    t1 = min(L, t0 + tch)
                    rows = (starts[:, None] + np.arange(t0, t1)[None, :]).ravel()
                    Xr, cr = self._emission_rows(rows)
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
                            db[:, e0 + k * q:e0 + (k + 1) * q, k] = bt[:, k, None] * g[:, tt, k]
                        a = ub / c[:, None]
                        D = (Du * bt[:, None, :] + u[:, None, :] * db) / c[:, None, None]
                        E = (Eu * bt[:, None, None, :] + Du[:, :, None, :] * db[:, None, :, :]
                             + db[:, :, None, :] * Du[:, None, :, :])
                        for k in range(K):
                            sl = slice(e0 + k * q, e0 + (k + 1) * q)
                            gk = g[:, tt, k]
                            blk = (gk[:, :, None] * gk[:, None, :] + h[:, tt, k])
                            E[:, sl, sl, k] += (u[:, k] * bt[:, k])[:, None, None] * blk
                        E = E / c[:, None, None, None]
                s = D.sum(axis=2)
                grad += s.sum(axis=0)
                hess += E.sum(axis=3).sum(axis=0) - s.T @ s
        return grad, 0.5 * (hess + hess.T)

    def complete_information(self, params: HMMParams, stats=None) -> np.ndarray:
        """Expected complete-data information E[-d2 log Lc | y] in inference coordinates."""
        P, K = self.n_params, self.K
        q = self.emission.q
        e0 = self.n_init_params + self.n_trans_params
        if stats is None:
            stats, _ = self.e_step(params)
        gam = self._get_buffers()[4]          # smoothed probabilities of that E-step
        info = np.zeros((P, P))
        dd, d2d = self._init_derivs(params)
        d0 = params.startprob
        g0 = stats["g0"]
        with np.errstate(divide="ignore", invalid="ignore"):
            w1 = np.where(d0 > 0, g0 / d0**2, 0.0)
            w2 = np.where(d0 > 0, g0 / d0, 0.0)
        info += (dd * w1) @ dd.T - np.einsum("pqk,k->pq", d2d, w2)
        dA = self._trans_derivs()
        A = params.transmat
        with np.errstate(divide="ignore", invalid="ignore"):
            wA = np.where(A > 0, stats["xi"] / A**2, 0.0)
        info += np.einsum("pij,ij,qij->pq", dA, wA, dA)
        ch = max(64, 4_000_000 // (K * q * q))       # rows per chunk: h has K q^2 per row
        for r0 in range(0, self.T, ch):
            rows = np.arange(r0, min(self.T, r0 + ch))
            Xr, cr = self._emission_rows(rows)
            _, h = self.emission.derivs(Xr, cr, params.emission, hess=True)
            hk_ = -np.einsum("nk,nkab->kab", gam[rows], h)
            for k in range(K):
                sl = slice(e0 + k * q, e0 + (k + 1) * q)
                info[sl, sl] += hk_[k]
        return 0.5 * (info + info.T)

    def score_and_louis(self, params: HMMParams):
        """Observed-data score and Louis' pieces, exactly, in inference coordinates.

        The complete-data score is a sum over time of terms f_t(S_t-1, S_t) that are
        sparse (one row of transition coordinates, one state's emission block).  Given
        the data the states form a Markov chain, so E[Sc Sc' | y] needs only, per
        state l, the conditional mean mu_t(l) = E[F_t | S_t = l, y] of the score of the
        rows up to t, carried forward with the backward transition probabilities
        xi_t(k, l) / gamma_t(l) (kernel ``louis_rows``).  Then the missing information
        is E[Sc Sc' | y] - E[Sc | y] E[Sc | y]' (summed over sequences), the complete
        information comes from the posterior counts, and the score is E[Sc | y].
        """
        stats, ll = self.e_step(params)
        if stats is None:
            raise FloatingPointError("the log-likelihood is not finite at these parameters")
        comp = self.complete_information(params, stats)
        b, _, al, _, gam = self._get_buffers()
        P, K = self.n_params, self.K
        q = self.emission.q
        oA = self.n_init_params
        e0 = oA + self.n_trans_params
        A = np.ascontiguousarray(params.transmat)
        d0 = params.startprob
        dd, _ = self._init_derivs(params)
        with np.errstate(divide="ignore", invalid="ignore"):
            fdelta = np.where(d0 > 0, dd / d0, 0.0).T          # (K, P): d log delta_l
        idx = self._rows_A.index
        trow = np.array([i for i, _, _ in idx], dtype=np.int64)
        tcol = np.array([j for _, j, _ in idx], dtype=np.int64)
        tlast = np.array([la for _, _, la in idx], dtype=np.int64)
        C = np.zeros((P, P))
        FF = np.zeros((P, P))
        SS = np.zeros((P, P))
        score = np.zeros(P)
        ch = 16384
        for s in range(self.n_seq):
            r0, r1 = int(self.seq_start[s]), int(self.seq_start[s + 1])
            mu = None
            for c0 in range(r0, r1, ch):
                c1 = min(r1, c0 + ch)
                rows = np.arange(c0, c1)
                Xr, cr = self._emission_rows(rows)
                g = self.emission.derivs(Xr, cr, params.emission, hess=False)[0]
                g = np.ascontiguousarray(g.reshape(c1 - c0, K * q))
                start = c0
                if c0 == r0:
                    mu = fdelta.copy()
                    for k in range(K):
                        mu[k, e0 + k * q:e0 + (k + 1) * q] += g[0, k * q:(k + 1) * q]
                    FF += mu.T @ (gam[r0][:, None] * mu)
                    start = r0 + 1
                hk.louis_rows(start, c1, al, b, gam, A, g, c0, trow, tcol, tlast, oA, e0, q,
                              mu, C, FF)
            sc = gam[r1 - 1] @ mu
            score += sc
            SS += np.outer(sc, sc)
        dA = self._trans_derivs()
        with np.errstate(divide="ignore", invalid="ignore"):
            wA = np.where(A > 0, stats["xi"] / A**2, 0.0)
        FA = np.einsum("pij,ij,qij->pq", dA, wA, dA)
        missing = FF + FA + C + C.T - SS
        missing = 0.5 * (missing + missing.T)
        return score, LouisPieces(comp, missing)

    def score(self, params: HMMParams) -> np.ndarray:
        return self.score_and_louis(params)[0]

    def louis(self, params: HMMParams) -> LouisPieces:
        return self.score_and_louis(params)[1]

    # -- posteriors and decoding ---------------------------------------------------------------
    def posteriors(self, params: HMMParams, kind: str = "smoothed") -> np.ndarray:
        """P(S_t = k | y) given all data of the sequence (``"smoothed"``) or data up to t
        (``"filtered"``); stacked row order."""
        if kind not in ("smoothed", "filtered"):
            raise ValueError(f"kind must be 'smoothed' or 'filtered', got {kind!r}")
        self._kernel_estep(params, 1 if kind == "smoothed" else 0)
        return self._get_buffers()[4 if kind == "smoothed" else 2].copy()

    def viterbi(self, params: HMMParams) -> tuple[np.ndarray, np.ndarray]:
        """Most likely state path (stacked row order, states 0..K-1) and the joint
        log-probability of each sequence with its path."""
        K = self.K
        logd = np.empty((self.T, K))
        self._emission_kernel(params.emission, logd, _DUMMY, 1)
        with np.errstate(divide="ignore"):
            logA = np.log(params.transmat)
            logi = np.log(params.startprob)
        bp = np.zeros((self.T, K), dtype=np.intc)
        path = np.zeros(self.T, dtype=np.int64)
        lp = np.empty(self.n_seq)
        hk.viterbi(logd, np.ascontiguousarray(logA), np.ascontiguousarray(logi), self.seq_start,
                   self._all_blocks, bp, path, lp, self._n_threads)
        return path, lp

    def to_caller_order(self, arr):
        """Reorder stacked rows to the caller's row order."""
        if self._order is None:
            return arr
        out = np.empty_like(arr)
        out[self._order] = arr
        return out

    # -- fitting ------------------------------------------------------------------------------
    def _check_start(self, start) -> HMMParams:
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
            p = self.make_params(sp, tm, **start)
        else:
            raise TypeError("start_params must be an HMMParams or a dict of arrays")
        if not self._valid(p):
            raise ValueError("start_params are not valid parameters (probabilities, positive "
                             "rates/variances, transitions allowed by the structure)")
        return p

    def fit(self, start_params=None, method: str = "em", maxiter: int = 1000, tol: float = 1e-8,
            n_init: int = 1, seed: int | None = 0, cov_type: str = "louis",
            n_threads: int | None = None, boundary_tol: float = 1e-6, progress: bool = False,
            callback=None) -> HMMResults:
        """Maximum-likelihood fit by Baum-Welch.

        Parameters
        ----------
        start_params : HMMParams or dict, optional
            Starting values; a dict takes ``transmat``, ``startprob`` (when the
            initial distribution is estimated) and the emission arrays (``rates``,
            ``means`` and ``vars``/``covs``, or ``probs``).
        method : {"em", "squarem", "newton"}
            Iteration scheme of the EM engine.
        maxiter : int
            Maximum number of iterations per start.
        tol : float
            Tolerance on the relative change of the log-likelihood.
        n_init : int
            Number of starts (the first is deterministic, the others random); the
            best is finished and reported.
        seed : int, optional
            Seed of the random starts.
        cov_type : {"louis", "numerical"} or None
            Exact observed information (default), a numerical Hessian, or None to
            skip standard errors (they cost O(T P^2 K^2) for P parameters, which
            matters for long data with many states).
        n_threads : int, optional
            Threads of the kernels.
        boundary_tol : float
            Free probabilities below this after EM are fixed at zero (see the
            module notes).
        progress : bool
            Show a progress bar.
        callback : callable, optional
            ``callback(iteration, params, loglik)``; return True to stop.

        Returns
        -------
        HMMResults
        """
        self._n_threads = resolve_threads(n_threads)
        if int(n_init) < 1:
            raise ValueError(f"n_init must be at least 1, got {n_init!r}")
        rng = np.random.default_rng(seed)
        if start_params is not None:
            starts = [self._check_start(start_params)]
        else:
            starts = [self.start_params(rng, i) for i in range(int(n_init))]
        runs = []
        for st in starts:
            r = run_em(self, st, method=method, maxiter=maxiter, tol=tol, progress=progress,
                       callback=callback, warn=False)
            runs.append(r)
        best = max(range(len(runs)), key=lambda i: runs[i].loglik)
        run = runs[best]
        p = run.params
        # probabilities on the boundary: fix at zero and finish without them
        A = p.transmat.copy()
        bA = self.trans_allowed & (A < boundary_tol)
        # keep at least one free entry per row
        for i in range(self.K):
            if bA[i].sum() == self.trans_allowed[i].sum():
                bA[i, np.argmax(A[i])] = False
        d0 = p.startprob.copy()
        bd = np.zeros(self.K, dtype=bool)
        if self.initial == "estimate":
            bd = self.init_allowed & (d0 < boundary_tol)
            if bd.sum() == self.init_allowed.sum():
                bd[np.argmax(d0)] = False
        model = self
        if bA.any() or bd.any():
            model = self.with_structure(self.trans_allowed & ~bA, self.init_allowed & ~bd)
            A[bA] = 0.0
            A = A / A.sum(axis=1, keepdims=True)
            if self.initial == "estimate":
                d0[bd] = 0.0
                d0 = d0 / d0.sum()
            elif self.initial == "stationary":
                d0 = stationary_distribution(A)
            p = HMMParams(d0, A, p.emission)
        boundary = [f"p[{i + 1}->{j + 1}]" for i, j in zip(*np.nonzero(bA), strict=True)]
        boundary += [f"init[{j + 1}]" for j in np.flatnonzero(bd)]
        extra = {"start_logliks": np.array([r.loglik for r in runs]),
                 "boundary": boundary, "full_model": self}
        n_free = self.n_params
        c0 = run.convergence
        if cov_type is None:
            theta = model.to_inference(p)
            return HMMResults(model, theta, np.full((len(theta), len(theta)), np.nan),
                              llf=model.loglike(p), nobs=self.T, df_model=float(n_free),
                              cov_type="none", convergence=c0, raw_params=p, extra=extra)
        # finish (a step or two from the converged start) and compute the information
        res = fit_model(model, HMMResults, start_params=p, method=method,
                        maxiter=max(1, int(maxiter) - c0.n_iter), tol=tol, cov_type=cov_type,
                        seed=seed, progress=False, callback=None, nobs=self.T,
                        df_model=float(n_free), results_kwargs={"extra": extra})
        c1 = res.convergence
        res.convergence = ConvergenceInfo(
            converged=c1.converged, reason=c1.reason, method=c1.method,
            n_iter=c0.n_iter + c1.n_iter, n_em_steps=c0.n_em_steps + c1.n_em_steps,
            loglik=np.concatenate([c0.loglik, c1.loglik[1:]]),
            step=np.concatenate([c0.step, c1.step[1:]]),
            seconds=np.concatenate([c0.seconds, c1.seconds[1:]]),
            n_decreases=c0.n_decreases + c1.n_decreases, final_delta=c1.final_delta,
            wall_time=c0.wall_time + c1.wall_time, max_abs_score=c1.max_abs_score,
            min_eig_information=c1.min_eig_information, em_rate=c1.em_rate,
            em_rate_source=c1.em_rate_source)
        return res


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

    def filtered_probs(self) -> pd.DataFrame:
        """P(S_t = k | observations of the sequence up to t)."""
        return self._probs("filtered")

    def _probs(self, kind):
        g = self.model.posteriors(self.raw_params, kind)
        return pd.DataFrame(self.model.to_caller_order(g), index=self.model.row_labels,
                            columns=pd.Index(self.states, name="state"))

    def predict(self) -> pd.Series:
        """Most probable state at each time from the smoothed probabilities."""
        p = self.smoothed_probs()
        return pd.Series(np.asarray(p.columns)[p.to_numpy().argmax(axis=1)], index=p.index,
                         name="state")

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
        probability of each symbol."""
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
        support : array_like of int, optional
            Counts at which to evaluate a Poisson forecast (default 0 .. 2 max(y)).
        sequence : optional

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
        """Summary table: estimates with exact observed-information standard errors."""
        return super().summary(alpha=alpha,
                               title=title or f"{self.model.K}-state hidden Markov model")


# ---------------------------------------------------------------------------------------
# the user-facing constructor
# ---------------------------------------------------------------------------------------


def hmm(obs, k: int, emission: str = "gaussian", *, data=None, lengths=None, groups=None,
        covariance: str = "diag", initial="estimate", transitions=None, alphabet=None,
        ) -> HiddenMarkovModel:
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
    covariance : {"diag", "full"}
        Covariance of a Gaussian emission.
    initial : {"estimate", "stationary"} or array_like
        Distribution of the first state; see :class:`HiddenMarkovModel`.
    transitions : {"full", "left-to-right"} or array_like of bool, optional
        Allowed transitions (others are fixed at zero).
    alphabet : sequence, optional
        Symbols of a categorical emission.

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
            try:
                values = patsy.dmatrix("0 + " + rhs, frame, NA_action=patsy.NAAction(NA_types=[]),
                                       eval_env=patsy.EvalEnvironment.capture(1),
                                       return_type="dataframe")
            except Exception as err:  # noqa: BLE001 - patsy lets user errors through
                raise DataError(f"cannot evaluate the formula {obs!r}: "
                                f"{str(err).strip().splitlines()[0]}") from None
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
        values = pd.DataFrame(arr)
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
            if g.shape[0] != len(values):
                raise DataError(f"groups has {g.shape[0]} entries but the data have "
                                f"{len(values)} rows")
        if pd.isna(pd.Series(g)).any():
            raise DataError("groups has missing values (NaN)")
        codes, uniq = pd.factorize(pd.Series(g), sort=False)
        order = np.argsort(codes, kind="stable")
        lengths = np.bincount(codes)
        seq_names = list(uniq)
        values = values.iloc[order]
    return HiddenMarkovModel(values, k, emission, covariance=covariance, lengths=lengths,
                             initial=initial, transitions=transitions, alphabet=alphabet,
                             var_names=var_names, row_labels=row_labels, order=order,
                             seq_names=seq_names)
