"""Gaussian mixture models with mclust's covariance structures.

The density of a row x is sum_k pi_k phi(x; mu_k, Sigma_k).  The covariance
structures follow mclust's geometric names (Banfield & Raftery 1993; Celeux &
Govaert 1995): Sigma_k = lambda_k D_k A_k D_k' with volume lambda_k, shape A_k
(diagonal, det 1) and orientation D_k, each Equal (E) or Variable (V) across
components, or the identity (I).  scikit-learn's names are accepted as aliases:
``"full"`` = VVV, ``"tied"`` = EEE, ``"diag"`` = VVI, ``"spherical"`` = VII.

EM, on the chunk contract (:class:`~emstats.em.protocol.ChunkedModel`).  The E-step of a
chunk of rows is one pass of a Cython/OpenMP kernel (:mod:`emstats._kernels.gmm_kernels`)
that returns, for each component, N_k = sum r_ik, sum r_ik (x_i - mu_k) and
sum r_ik (x_i - mu_k)(x_i - mu_k)' about the current means, and the observed
log-likelihood; ``chunk_stats`` moves the sums to a fixed centre c (the data's column
means), so that they add over chunks and over parameter values (incremental and online
EM).  The M-step turns the totals into the new means and the scatter matrices
W_k = sum r_ik (x_i - xbar_k)(x_i - xbar_k)' and applies the structure's M-step (closed
form for most structures; conditional maximisation steps, i.e. ECM, for VEI, VEE, VEV,
EVE and VVE).  Louis' pieces are sums over chunks too (``chunk_louis``).  Fitting is the
package's one path (:class:`~emstats.inference.fit.FitMixin`): starts from
``initial_starts``, short EM runs from each, the best continued.

Coordinates.  SQUAREM works in unconstrained coordinates (``pack``): log-ratios
log(pi_k / pi_1), means, and per structure log-variances or Cholesky factors
with log-diagonal.  Standard errors are reported for the free parameters on
their own scale (``to_inference``): weights pi_2..pi_K (pi_1 = 1 - sum), means,
and the unique covariance elements of the structure (EII, VII, EEI, VVI, EEE,
VVV, whose covariances are linear in them), or for the other structures the
volumes, shapes (natural scale) and the Cayley coordinates of the orientations.
Louis' method gives the observed information for all of them (the nonlinear
structures through the Jacobian and curvature of the map to Sigma_k).

Label switching.  Components are reported in a deterministic order: sorted by
their mean vectors, lexicographically (first coordinate, then the second...).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from functools import cached_property, lru_cache

import numpy as np
import pandas as pd
from scipy import linalg as sla
from scipy.special import logsumexp

from .._config import resolve_threads
from .._kernels import gmm_kernels, gmm_louis, gmm_small
from ..components.gaussian_data import GaussianRows, IncompleteGaussianRows, prepare_data
from ..components.gaussian_data import sym as _sym
from ..components.gaussian_missing import column_counts, component_moments, group_patterns
from ..components.hc import SUBSET as HC_SUBSET
from ..components.hc import HCStart, hc_start
from ..components.init import distinct_rows, kmeans_plusplus, lloyd
from ..em.engine import FitOptions, StartRecord, merge_records
from ..em.online import OnlineEM, as_2d, batch_columns
from ..em.params import Cholesky, Positive
from ..em.protocol import ChunkedModel, LouisPieces
from ..em.stats import Stats
from ..exceptions import (
    ConvergenceWarning,
    DataError,
    DegenerateComponentWarning,
    LikelihoodDecreaseWarning,
    describe_rows,
)
from ..inference.covariance import InformationWarning
from ..inference.fit import FitMixin, fit_model
from ..inference.results import EMResults, SavedResults, without_data

LOG_2PI = math.log(2.0 * math.pi)
PRIOR_STRUCTURES = ("VVV", "EEE", "VVI", "VII")


# ----------------------------------------------------------------------------------
# covariance structures
# ----------------------------------------------------------------------------------

ALIASES = {"full": "VVV", "tied": "EEE", "diag": "VVI", "spherical": "VII"}
ALL_STRUCTURES = ("EII", "VII", "EEI", "VEI", "EVI", "VVI", "EEE", "VEE", "EVE", "VVE",
                  "EEV", "VEV", "EVV", "VVV")


def _tril_pairs(d: int) -> list[tuple[int, int]]:
    return [(a, b) for a in range(d) for b in range(a + 1)]


class Structure:
    """A covariance structure: M-step, coordinates and parameter count.

    Subclasses set ``name``; the six linear structures are described by
    ``kind`` ("spherical", "diagonal", "full") and ``shared`` (one covariance for
    every component).
    """

    name = "?"
    diag = False
    linear = False
    iterative = False

    def __init__(self, K: int, d: int):
        self.K, self.d = K, d

    # number of free covariance parameters (mclust's nVarParams)
    def n_var(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def mstep(self, Nk, W, n, old):  # pragma: no cover - abstract
        raise NotImplementedError

    def pack(self, covs) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def unpack(self, vec) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    # inference coordinates (default: the packed ones)
    def to_inf(self, covs):
        return self.pack(covs)

    def from_inf(self, vec):
        return self.unpack(vec)

    def inf_names(self, cols) -> list[str]:
        return [f"cov_param[{j}]" for j in range(self.n_var())]


class LinearStructure(Structure):
    """Covariances linear in their free elements: Sigma_k = sum_m theta_m B_m^(k)."""

    linear = True
    kind = "full"
    shared = False

    def __init__(self, K, d):
        super().__init__(K, d)
        self.diag = self.kind != "full"
        if self.kind == "full":
            elems = _tril_pairs(d)
        elif self.kind == "diagonal":
            elems = [(a, a) for a in range(d)]
        else:
            elems = [None]
        self.elems = elems
        B = []
        for e in elems:
            m = np.zeros((d, d))
            if e is None:
                m[:] = np.eye(d)
            else:
                a, b = e
                m[a, b] = m[b, a] = 1.0
            B.append(m)
        self.B = np.array(B)
        ne = len(elems)
        self.n_elem = ne
        # the coordinates: full covariances by their log-Cholesky factors, variances on the
        # log scale (packed) and the covariance elements themselves (inference)
        nu = 1 if self.shared else K
        self.block = Cholesky("cov", d, (nu,)) if self.kind == "full" else \
            Positive("cov", (nu, ne))
        # global (within the covariance block) indices of component k's elements
        self.idx = [np.arange(ne) if self.shared else k * ne + np.arange(ne) for k in range(K)]

    def n_var(self):
        return self.n_elem * (1 if self.shared else self.K)

    def mstep(self, Nk, W, n, old):
        K, d = self.K, self.d
        if self.kind == "full":
            S = W.sum(axis=0)[None] / n if self.shared else W / Nk[:, None, None]
            S = np.broadcast_to(S, (K, d, d)).copy()
        elif self.kind == "diagonal":
            dg = np.diagonal(W, axis1=1, axis2=2)
            v = dg.sum(axis=0)[None] / n if self.shared else dg / Nk[:, None]
            S = np.zeros((K, d, d))
            S[:, range(d), range(d)] = np.broadcast_to(v, (K, d))
        else:
            tr = np.trace(W, axis1=1, axis2=2)
            v = tr.sum() / (n * d) if self.shared else tr / (Nk * d)
            S = np.broadcast_to(np.asarray(v, dtype=float).reshape(-1, 1, 1) * np.eye(d),
                                (K, d, d)).copy()
        return S

    def _elements(self, covs):
        src = covs[:1] if self.shared else covs
        if self.kind == "diagonal":
            return np.diagonal(src, axis1=1, axis2=2)
        return src[:, :1, 0]

    def _build(self, el):
        el = el.reshape(-1, self.n_elem)
        S = np.einsum("km,mab->kab", el, self.B)
        return np.broadcast_to(S, (self.K, self.d, self.d)).copy()

    def _natural(self, covs):
        covs = np.asarray(covs)
        return (covs[:1] if self.shared else covs) if self.kind == "full" else \
            self._elements(covs)

    def _from_block(self, x):
        if self.kind == "full":
            return np.broadcast_to(x, (self.K, self.d, self.d)).copy()
        return self._build(x)

    def pack(self, covs):
        return self.block.pack(self._natural(covs))

    def unpack(self, vec):
        return self._from_block(self.block.unpack(vec))

    def to_inf(self, covs):
        return self.block.to_inference(self._natural(covs))

    def from_inf(self, vec):
        return self._from_block(self.block.from_inference(vec))

    def jacobian(self, vec):
        """d Sigma_k / d vec, shape (K, d, d, P): the basis matrices B_m."""
        J = np.zeros((self.K, self.d, self.d, self.n_var()))
        for k in range(self.K):
            J[k][:, :, self.idx[k]] = np.moveaxis(self.B, 0, -1)
        return J

    def inf_names(self, cols):
        names = []
        comps = [None] if self.shared else range(1, self.K + 1)
        for k in comps:
            tag = "" if k is None else f"[{k}]"
            for e in self.elems:
                if e is None:
                    names.append(f"var{tag}")
                elif e[0] == e[1]:
                    names.append(f"var{tag}({cols[e[0]]})")
                else:
                    names.append(f"cov{tag}({cols[e[1]]},{cols[e[0]]})")
        return names


def _linear(name, kind, shared):
    return type(f"Structure{name}", (LinearStructure,),
                {"name": name, "kind": kind, "shared": shared})


class _Decomposed(Structure):
    """Structures written as Sigma_k = lambda_k D_k A_k D_k' (mclust's extra models).

    Packed coordinates: log lambda (per component or common), log shape
    (d - 1 free values per shape, the last fixed by det A = 1), and the
    orientation D through its Cayley transform (a skew-symmetric matrix, d(d-1)/2
    values).  Inference coordinates: the same with lambda and the shapes on their
    natural scale; :meth:`derivatives` gives Sigma's first and second derivatives in
    them for Louis' method.
    """

    vol = "E"
    shape = "E"
    orient = "I"

    def __init__(self, K, d):
        super().__init__(K, d)
        self.diag = self.orient == "I"
        self.iterative = self.name in ("VEI", "VEE", "VEV", "EVE", "VVE")

    def n_var(self):
        K, d = self.K, self.d
        nv = 1 if self.vol == "E" else K
        nv += (d - 1) * (1 if self.shape == "E" else K)
        if self.orient != "I":
            nv += d * (d - 1) // 2 * (1 if self.orient == "E" else K)
        return nv

    # -- M-step -----------------------------------------------------------------
    #: relative ridge of a singular scatter matrix (see :meth:`_regular_scatter`)
    SCATTER_RIDGE = 1e-10

    def _regular_scatter(self, Nk, W):
        """W with a ridge on the scatter matrices that are numerically singular.

        The decompositions of these structures take logarithms of W_k's diagonal or
        eigenvalues (volumes, shapes), which are -inf for a component whose rows are
        collinear (e.g. constant in one variable).  Such a W_k gets
        ``SCATTER_RIDGE * N_k * diag(s^2)`` added, s^2 the pooled variances: the
        covariance is then finite, the model's floor (``_guard``) catches it and the fit
        reports the component as collapsed.  Regular scatter matrices are unchanged.
        (For the diagonal structures only W's diagonal is defined.)"""
        W = np.ascontiguousarray(W, dtype=float)
        out = np.empty_like(W)
        bad = np.empty(self.K, dtype=np.uint8)
        if not gmm_small.regular_scatter(W, np.ascontiguousarray(Nk, dtype=float),
                                         self.SCATTER_RIDGE, self.diag, out, bad):
            return out, None
        return out, np.flatnonzero(bad)

    def mstep(self, Nk, W, n, old):
        """The structure's M-step.  A component whose scatter matrix is numerically
        singular (its rows collinear) has an unbounded likelihood under every structure:
        it is collapsed, and its covariance is its own (ridged) scatter W_k / N_k, which
        the model floors (``_guard``) and reports (``collapsed_components``); the other
        components get the structure's M-step."""
        Nk = np.maximum(Nk, 1e-300)
        W, sing = self._regular_scatter(Nk, W)
        if sing is None:
            return self._mstep(Nk, W, n, old)
        # the structure's M-step for the other components (their shared parameters from
        # their own rows), the collapsed ones their own scatter
        covs = W / Nk[:, None, None]
        ok = np.ones(self.K, dtype=bool)
        ok[sing] = False
        if ok.any():
            covs[ok] = self._mstep(Nk[ok], W[ok], float(Nk[ok].sum()), old[ok])
        return covs

    #: the structures whose M-step is :func:`gmm_small.volume_mstep` (no eigen-decomposition)
    VOLUME_CODES = {"EVI": 0, "EVV": 1, "VEI": 2, "VEE": 3}

    def _mstep(self, Nk, W, n, old):
        d = self.d
        name = self.name
        code = self.VOLUME_CODES.get(name)
        if code is not None:
            covs = np.empty_like(W)
            if gmm_small.volume_mstep(np.ascontiguousarray(W, dtype=float),
                                      np.ascontiguousarray(Nk, dtype=float), float(n),
                                      np.ascontiguousarray(old, dtype=float), code, covs,
                                      self.INNER_MAXITER, self.INNER_TOL):
                if name == "VEE":
                    raise np.linalg.LinAlgError("the pooled VEE scatter is not positive "
                                                "definite")
                return self._mstep_evv(W, n)
            return covs
        if name == "EEV":
            w, V = _eig_desc(W)
            A = w.sum(axis=0)
            A = A / np.exp(np.mean(np.log(A)))
            lam = float((w / A).sum() / (n * d))
            return lam * (V * A[None, None, :]) @ np.swapaxes(V, 1, 2)
        if name in ("EVE", "VVE"):
            return self._mstep_common_orientation(Nk, W, n, old)
        # VEV (ECM): alternate volumes and the shape, from the previous volumes; the
        # eigen-decompositions of W, which do not change, are done once
        return self._mstep_volumes(Nk, W, old)

    #: inner (conditional maximisation) iterations of VEI, VEE, VEV per M-step, and their
    #: relative tolerance on the volumes.  Each inner iteration increases the expected
    #: complete-data log-likelihood, so EM stays monotone and has the same fixed points
    #: whatever the cap; warm-started from the previous volumes, the inner loop takes a few
    #: iterations near convergence
    INNER_MAXITER = 5
    INNER_TOL = 1e-12

    @staticmethod
    def _mstep_evv(W, n):
        """EVV where a scatter matrix has no Cholesky factor (the log-determinant by LU)."""
        d = W.shape[1]
        det = np.exp(np.linalg.slogdet(W)[1] / d)
        return (det.sum() / n) * (W / det[:, None, None])

    def _mstep_volumes(self, Nk, W, old):
        """VEV: the eigenvalues w of W_k, a common shape A and the volumes (Cython loop),
        from the volumes of the previous covariances."""
        d = self.d
        with np.errstate(all="ignore"):
            sign, ld = np.linalg.slogdet(old)
            lam = np.exp(ld / d)
        ok = (sign > 0) & np.isfinite(lam) & (lam > 0)
        if not ok.all():
            lam = np.where(ok, lam, np.trace(W, axis1=1, axis2=2) / (Nk * d))
        w, V = _eig_desc(W)
        lam = np.array(lam, dtype=float)
        A = np.empty(d)
        gmm_small.common_shape(np.ascontiguousarray(w, dtype=float),
                               np.ascontiguousarray(Nk, dtype=float), lam, A,
                               self.INNER_MAXITER, self.INNER_TOL)
        return lam[:, None, None] * (V * A[None, None, :]) @ np.swapaxes(V, 1, 2)

    def _mstep_common_orientation(self, Nk, W, n, old):
        """EVE / VVE: a common orientation D with variable shapes.

        Conditional maximisation: given D, the volumes and shapes are those of EVI /
        VVI in the rotated coordinates D'x; given them, D minimises
        sum_k tr(W_k D Lambda_k^-1 D') over orthogonal matrices, by the MM algorithm
        of Browne & McNicholas (2014): with w_k the largest eigenvalue of W_k,
        (W_k - w_k I) is negative semi-definite, the objective is majorised by its
        linearisation at the current D, and the minimiser of that linear function is
        D = -U V' from the SVD U S V' of sum_k (W_k - w_k I) D Lambda_k^-1.
        """
        d = self.d
        # warm start: the previous (common) orientation
        D = _orientation(old[0]) if np.all(np.isfinite(old[0])) else _orientation(W.sum(axis=0))
        wmax = np.ascontiguousarray(_eig_desc(W)[0][:, 0])
        D = np.array(D, dtype=float, order="C")
        Lam = np.empty((W.shape[0], d))
        it = gmm_small.common_orientation(
            np.ascontiguousarray(W, dtype=float), wmax, np.ascontiguousarray(Nk, dtype=float),
            float(n), self.name == "EVE", D, Lam, self.MM_MAXITER, self.MM_TOL)
        if it < 0:
            raise np.linalg.LinAlgError("SVD did not converge in the EVE/VVE orientation step")
        return (D[None] * Lam[:, None, :]) @ D.T[None]

    #: majorise-minimise iterations of the EVE / VVE orientation per M-step and their
    #: relative tolerance on the objective: each MM step (and each shape update) decreases
    #: the objective, so EM stays monotone whatever the cap, and warm-started from the
    #: previous orientation a few steps suffice near convergence
    MM_MAXITER = 5
    MM_TOL = 1e-12

    def _shapes_given_orientation(self, R, Nk, n):
        """The EVI / VVI M-step in the rotated coordinates: the diagonal Lambda_k."""
        dg = np.maximum(np.diagonal(R, axis1=1, axis2=2), 1e-300)
        if self.name == "EVE":
            det = np.exp(np.mean(np.log(dg), axis=1))
            return (det.sum() / n) * dg / det[:, None]
        return dg / Nk[:, None]

    # -- coordinates ----------------------------------------------------------------
    def _decompose(self, covs):
        K, d = self.K, self.d
        if self.orient == "E" and self.shape == "V":
            D1 = _orientation(covs[0])
            R = np.einsum("ba,kbc,cd->kad", D1, covs, D1)
            dg = np.diagonal(R, axis1=1, axis2=2)
            lam = np.exp(np.mean(np.log(dg), axis=1))
            return lam, dg / lam[:, None], np.broadcast_to(D1, (K, d, d))
        if self.orient == "I":
            dg = np.diagonal(covs, axis1=1, axis2=2)
            lam = np.exp(np.mean(np.log(dg), axis=1))
            A = dg / lam[:, None]
            D = np.broadcast_to(np.eye(d), (K, d, d))
        else:
            w, D = np.linalg.eigh(covs)
            w, D = w[:, ::-1], D[:, :, ::-1]
            lam = np.exp(np.mean(np.log(w), axis=1))
            A = w / lam[:, None]
            # eigenvector signs: non-negative diagonal, then det D = +1 (flip the column
            # with the smallest diagonal entry), so that the Cayley transform applies
            D = D * np.where(np.diagonal(D, axis1=1, axis2=2) < 0, -1.0, 1.0)[:, None, :]
            for k in range(K):
                if np.linalg.det(D[k]) < 0:
                    D[k, :, np.argmin(np.diag(D[k]))] *= -1.0
        return lam, A, D

    def pack(self, covs):
        lam, A, D = self._decompose(np.asarray(covs))
        out = [np.log(lam[:1] if self.vol == "E" else lam)]
        la = np.log(A[:1] if self.shape == "E" else A)[:, :-1]
        out.append(la.ravel())
        if self.orient != "I":
            Ds = D[:1] if self.orient == "E" else D
            iu = np.triu_indices(self.d, 1)
            eye = np.eye(self.d)
            for Dk in Ds:
                # Cayley transform: D = (I - S)^-1 (I + S), S = (D - I)(D + I)^-1 skew
                S = np.linalg.solve((Dk + eye).T, (Dk - eye).T).T
                out.append(_sym_skew(S)[iu])
        return np.concatenate(out)

    def unpack(self, vec):
        K, d = self.K, self.d
        vec = np.asarray(vec, dtype=float)
        nl = 1 if self.vol == "E" else K
        ns = 1 if self.shape == "E" else K
        lam = np.broadcast_to(np.exp(vec[:nl]), (K,))
        pos = nl
        la = vec[pos:pos + ns * (d - 1)].reshape(ns, d - 1)
        pos += ns * (d - 1)
        la = np.column_stack([la, -la.sum(axis=1)])
        A = np.broadcast_to(np.exp(la), (K, d))
        if self.orient == "I":
            return _diag_stack(lam[:, None] * A)
        no = 1 if self.orient == "E" else K
        m = d * (d - 1) // 2
        iu = np.triu_indices(d, 1)
        Ds = []
        for j in range(no):
            S = np.zeros((d, d))
            S[iu] = vec[pos + j * m: pos + (j + 1) * m]
            S = S - S.T
            eye = np.eye(d)
            Ds.append(np.linalg.solve(eye - S, eye + S))
        D = np.broadcast_to(np.array(Ds), (K, d, d))
        return lam[:, None, None] * (D * A[:, None, :]) @ np.swapaxes(D, 1, 2)

    # -- inference coordinates and Louis' method ---------------------------------------
    def _n_scale(self) -> int:
        """Number of volume and shape coordinates (log scale packed, natural for inference)."""
        return (1 if self.vol == "E" else self.K) + (self.d - 1) * (1 if self.shape == "E"
                                                                    else self.K)

    def to_inf(self, covs):
        """Volumes lambda, shapes a_1..a_{d-1} (a_d = 1 / prod) on their own scale, and the
        Cayley coordinates of the orientations (as :meth:`pack`)."""
        v = self.pack(covs)
        ns = self._n_scale()
        v[:ns] = np.exp(v[:ns])
        return v

    def from_inf(self, vec):
        v = np.array(vec, dtype=float)
        ns = self._n_scale()
        if not np.all(v[:ns] > 0):
            # outside the parameter space (a trial Newton step): not positive definite
            return np.full((self.K, self.d, self.d), np.nan)
        v[:ns] = np.log(v[:ns])
        return self.unpack(v)

    def _layout(self):
        """Positions, in the covariance coordinates, of each component's volume (K,),
        shape (K, d - 1) and orientation (K, d(d-1)/2) parameters; shared ones repeat."""
        K, d = self.K, self.d
        nl = 1 if self.vol == "E" else K
        ns = 1 if self.shape == "E" else K
        m = d * (d - 1) // 2
        comp = np.arange(K)
        iv = np.zeros(K, dtype=int) if self.vol == "E" else comp
        sk = np.zeros(K, dtype=int) if self.shape == "E" else comp
        ish = nl + sk[:, None] * (d - 1) + np.arange(d - 1)[None]
        if self.orient == "I":
            io = np.zeros((K, 0), dtype=int)
        else:
            ok = np.zeros(K, dtype=int) if self.orient == "E" else comp
            io = nl + ns * (d - 1) + ok[:, None] * m + np.arange(m)[None]
        return iv, ish, io

    def derivatives(self, vec):
        """Analytic first and second derivatives of Sigma_k = lambda_k D_k A_k D_k' with
        respect to the inference coordinates ``vec`` (see :meth:`to_inf`).

        With M = (I - S)^-1 the Cayley map is D = 2M - I, so dD/ds_p = 2 M E_p M and
        d2D/ds_p ds_q = 2 M (E_p M E_q + E_q M E_p) M (E_p the skew basis matrices);
        the last shape is a_d = 1 / prod a_j, da_d/da_j = -a_d / a_j,
        d2a_d/da_i da_j = (1 + [i = j]) a_d / (a_i a_j).

        Returns
        -------
        list of (loc, J_k, H_k), one per component
            ``loc`` the positions of the component's parameters in ``vec`` (volume,
            shapes, orientation), J_k (n_loc, d, d) and H_k (n_loc, n_loc, d, d) the
            derivatives of Sigma_k with respect to them (every other derivative is 0).
        """
        K, d = self.K, self.d
        vec = np.asarray(vec, dtype=float)
        iv, ish, io = self._layout()
        m = io.shape[1]
        eye = np.eye(d)
        iu = np.triu_indices(d, 1)
        E = np.zeros((m, d, d))                       # skew basis of the Cayley coordinates
        if m:
            E[np.arange(m), iu[0], iu[1]] = 1.0
            E[np.arange(m), iu[1], iu[0]] = -1.0
        out = []
        q = d - 1                                     # shape coordinates per component

        def tsym(x):
            return x + np.swapaxes(x, -1, -2)

        for k in range(K):
            lam = vec[iv[k]]
            a = vec[ish[k]]
            ad = 1.0 / np.prod(a)
            A = np.append(a, ad)
            dA = np.zeros((q, d))
            dA[np.arange(q), np.arange(q)] = 1.0
            dA[:, -1] = -ad / a
            d2A = np.zeros((q, q, d))
            d2A[:, :, -1] = ad / np.outer(a, a) * (1.0 + np.eye(q))
            if m:
                S = np.zeros((d, d))
                S[iu] = vec[io[k]]
                S = S - S.T
                Mi = np.linalg.inv(eye - S)
                D = 2.0 * Mi - eye
                ME = Mi @ E                                     # M E_p
                dD = 2.0 * ME @ Mi
                MEME = np.einsum("pab,qbc->pqac", ME, ME)       # M E_p M E_q
                d2D = 2.0 * (MEME + np.swapaxes(MEME, 0, 1)) @ Mi
            else:
                D = eye
            nl = 1 + q + m
            Jl = np.zeros((nl, d, d))
            Hl = np.zeros((nl, nl, d, d))
            AD = A[:, None] * D.T                               # A D'
            dAD = dA[:, :, None] * D.T[None]                    # dA_j D'
            Jl[0] = D @ AD
            Jl[1:1 + q] = lam * (D @ dAD)
            Hl[0, 1:1 + q] = Hl[1:1 + q, 0] = D @ dAD
            Hl[1:1 + q, 1:1 + q] = lam * (D @ (d2A[..., None] * D.T))
            if m:
                X = tsym(dD @ AD)                               # dD A D' + D A dD'
                Jl[1 + q:] = lam * X
                Hl[0, 1 + q:] = Hl[1 + q:, 0] = X
                Y = lam * tsym(np.einsum("pab,jbc->jpac", dD, dAD))
                Hl[1:1 + q, 1 + q:] = Y
                Hl[1 + q:, 1:1 + q] = np.swapaxes(Y, 0, 1)
                W = np.einsum("pab,b,qcb->pqac", dD, A, dD)       # dD_p A dD_q'
                Hl[1 + q:, 1 + q:] = lam * (tsym(d2D @ AD) + tsym(W))
            out.append((np.concatenate([[iv[k]], ish[k], io[k]]), Jl, Hl))
        return out

    def jacobian(self, vec):
        """d Sigma_k / d vec, shape (K, d, d, P)."""
        vec = np.asarray(vec, dtype=float)
        J = np.zeros((self.K, self.d, self.d, vec.size))
        for k, (loc, Jl, _) in enumerate(self.derivatives(vec)):
            J[k][:, :, loc] = np.moveaxis(Jl, 0, -1)
        return J

    def inf_names(self, cols):
        K, d = self.K, self.d
        names = ["volume"] if self.vol == "E" else [f"volume[{k}]" for k in range(1, K + 1)]
        comps = [""] if self.shape == "E" else [f"[{k}]" for k in range(1, K + 1)]
        # shapes follow the variables when the orientation is the identity, otherwise the
        # principal axes (in decreasing order of the eigenvalues, of component 1 for EVE/VVE)
        axes = list(cols) if self.orient == "I" else [f"axis{j + 1}" for j in range(d)]
        for t in comps:
            names += [f"shape{t}({axes[j]})" for j in range(d - 1)]
        if self.orient != "I":
            comps = [""] if self.orient == "E" else [f"[{k}]" for k in range(1, K + 1)]
            for t in comps:
                names += [f"rotation{t}({cols[a]},{cols[b]})" for a, b in
                          zip(*np.triu_indices(d, 1), strict=True)]
        return names


def _sym_skew(S):
    return 0.5 * (S - S.T)


def _diag_stack(v):
    v = np.asarray(v)
    K, d = v.shape
    out = np.zeros((K, d, d))
    out[:, range(d), range(d)] = v
    return out


def _eig_desc(S):
    """Eigenvalues (decreasing) and eigenvectors (columns) of a stack of symmetric matrices
    (the lower triangles): by the Jacobi kernel ``gmm_small.eig_desc``, by LAPACK where
    that fails."""
    S = np.ascontiguousarray(S, dtype=float)
    w, V = np.empty(S.shape[:2]), np.empty_like(S)
    if gmm_small.eig_desc(S, w, V):
        w, V = np.linalg.eigh(S)
        return w[:, ::-1], V[:, :, ::-1]
    return w, V


def _orientation(S):
    """Eigenvectors of S (descending eigenvalues), signs fixed: non-negative diagonal and
    det +1 (flipping the column with the smallest diagonal entry), for the Cayley map
    (``gmm_small.orientation_start``; by LAPACK where the Jacobi rotations fail)."""
    V = np.empty(np.shape(S))
    if not gmm_small.orientation_start(np.ascontiguousarray(S, dtype=float), V):
        return V
    _, V = np.linalg.eigh(S)
    V = V[:, ::-1]
    V = V * np.where(np.diag(V) < 0, -1.0, 1.0)[None, :]
    if np.linalg.det(V) < 0:
        V[:, np.argmin(np.diag(V))] *= -1.0
    return V


def _decomposed(name):
    return type(f"Structure{name}", (_Decomposed,),
                {"name": name, "vol": name[0], "shape": name[1], "orient": name[2]})


STRUCTURES: dict[str, type[Structure]] = {
    "EII": _linear("EII", "spherical", True),
    "VII": _linear("VII", "spherical", False),
    "EEI": _linear("EEI", "diagonal", True),
    "VVI": _linear("VVI", "diagonal", False),
    "EEE": _linear("EEE", "full", True),
    "VVV": _linear("VVV", "full", False),
    **{nm: _decomposed(nm) for nm in ("EVI", "VEI", "EVV", "EEV", "VEE", "VEV", "EVE",
                                      "VVE")},
}
# the generated classes live in this module under their names, so that models pickle
globals().update({cls.__name__: cls for cls in STRUCTURES.values()})


def resolve_structure(covariance: str, d: int) -> str:
    """mclust name for ``covariance`` (mclust names, sklearn aliases, "E"/"V" in 1-D)."""
    if not isinstance(covariance, str):
        raise ValueError(f"covariance must be a string, got {covariance!r}")
    key = covariance.strip()
    name = ALIASES.get(key.lower(), key.upper())
    if d == 1 and name in ("E", "V"):
        name = {"E": "EII", "V": "VII"}[name]
    if name not in STRUCTURES:
        raise ValueError(
            f"unknown covariance structure {covariance!r}; use one of "
            + ", ".join(STRUCTURES) + " or the aliases " + ", ".join(ALIASES)
            + (" ('E' or 'V' for univariate data)" if d == 1 else "")
        )
    if d == 1:
        # in one dimension every structure is 'equal' (E) or 'variable' (V) variance
        name = "EII" if name[0] == "E" else "VII"
    return name


# ----------------------------------------------------------------------------------
# parameters
# ----------------------------------------------------------------------------------

@dataclass
class GMMParams:
    """Mixture parameters.

    Parameters
    ----------
    weights : ndarray, shape (K,)
        Mixing proportions (summing to one).
    means : ndarray, shape (K, d)
        Component means.
    covariances : ndarray, shape (K, d, d)
        Component covariance matrices.
    """

    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray

    def copy(self) -> GMMParams:
        return GMMParams(self.weights.copy(), self.means.copy(), self.covariances.copy())

    def sorted(self) -> GMMParams:
        """Components in the canonical order (means sorted lexicographically)."""
        order = np.lexsort(self.means.T[::-1])
        return GMMParams(self.weights[order], self.means[order], self.covariances[order])


# ----------------------------------------------------------------------------------
# data handling (the shared preparation is in emstats.components.gaussian_data)
# ----------------------------------------------------------------------------------

@lru_cache(maxsize=32)
def _poly_basis(d: int, diag: bool = False):
    """The basis phi(y) = (1, y_1..y_d, y_a y_b for a <= b; only the squares when ``diag``)
    and the monomials of degree <= 4 in phi phi': ``I``, ``J`` (phi_I * phi_J is each
    monomial once), ``where`` (the monomial of phi_p phi_r) and the pairs (qa, qb) of the
    quadratic terms."""
    quad = [(a, a) for a in range(d)] if diag else [(a, b) for a in range(d)
                                                    for b in range(a, d)]
    phi = [()] + [(a,) for a in range(d)] + quad
    mono: dict = {}
    I, J = [], []
    where = np.empty((len(phi), len(phi)), dtype=np.intp)
    for p, u in enumerate(phi):
        for r, v in enumerate(phi):
            key = tuple(sorted(u + v))
            if key not in mono:
                mono[key] = len(I)
                I.append(p)
                J.append(r)
            where[p, r] = mono[key]
    qa = np.array([a for a, _ in quad], dtype=np.intp)
    qb = np.array([b for _, b in quad], dtype=np.intp)
    return np.array(I, dtype=np.intp), np.array(J, dtype=np.intp), where, qa, qb


def _count_distinct(X: np.ndarray, at_least: int) -> int:
    """Number of distinct rows, or any number >= ``at_least`` once that many are seen."""
    head = X[: max(10 * at_least, 1000)]
    m = len(np.unique(head, axis=0))
    if m >= at_least or head.shape[0] == X.shape[0]:
        return m
    return len(np.unique(X, axis=0))


# ----------------------------------------------------------------------------------
# the model
# ----------------------------------------------------------------------------------

#: rows of a block in the per-row Louis computations
LOUIS_BLOCK = 8192
#: rows of a window of Louis' pass (the kernel's responsibilities are made per window)
LOUIS_WINDOW = 8 * LOUIS_BLOCK
#: rows per block of the M-step from a partition or responsibilities (the starts)
START_BLOCK = 8192
#: a row's share of the missing information is dropped when its membership is this
#: certain (1 - max_k r_ik below it, so every r_ik r_il and r_ik (1 - r_ik) is too), and in
#: the other rows every pair (k, k), (k, l) with r_ik at most this: a relative change of
#: the information far below the rounding of its sums
LOUIS_CERTAIN = 1e-13

#: ``fit(method=None)`` on complete data: Louis-Newton up to this many rows and
#: NEWTON_MAX_PARAMS free parameters, SQUAREM otherwise (SQUAREM reached the same
#: log-likelihood 1.2-1.7x faster from 20,000 to 200,000 rows at d = k = 8, 2-4x faster at
#: 1,000-10,000 rows with 104-359 parameters, in equal time on faithful and iris;
#: docs/gmm.md, "Large fits")
NEWTON_MAX_ROWS = 20_000
NEWTON_MAX_PARAMS = 50

#: the kinds of start of ``fit(init=...)`` and how many of each ``n_init=None`` means
INIT_COUNTS = {"kmeans++": 5, "random": 5, "hc": 1, "short-em": 20, "hc+kmeans++": 6}
INIT_KINDS = tuple(INIT_COUNTS)
#: ``init="all"``: these strategies each run to convergence, the best fit kept
ALL_PARTS = ("hc", "kmeans++", "short-em")
#: the start of ``fit()`` and ``gmm_select()`` (``init=None``): "all" up to this many rows,
#: "hc+kmeans++" above (short EM's 20 x 25 passes over the data would dominate the fit);
#: chosen by benchmarks/bench_gmm_starts.py (docs/gmm.md, "Starting values")
ALL_MAX_ROWS = 10_000


class GaussianMixture(FitMixin, ChunkedModel):
    """A finite mixture of multivariate normal distributions, fitted by EM.

    Parameters
    ----------
    data : array_like or DataFrame, shape (n, d)
        The observations (rows).  Use :func:`emstats.gmm` for formulas.
    k : int
        Number of components.
    covariance : str
        Covariance structure: an mclust name (``"VVV"``, ``"EEE"``, ``"VVI"``,
        ``"VII"``, ``"EII"``, ``"EEI"``, ``"EVI"``, ``"VEI"``, ``"EVV"``,
        ``"EEV"``, ``"VEE"``, ``"VEV"``, ``"EVE"``, ``"VVE"``) or a scikit-learn
        alias (``"full"``,
        ``"tied"``, ``"diag"``, ``"spherical"``); ``"E"``/``"V"`` for one variable.
    reg_covar : float
        Added to the diagonal of every covariance in the M-step (default 0: the
        plain MLE, as mclust).
    prior : bool or dict, optional
        Conjugate normal / inverse-Wishart prior for MAP-EM, as mclust's
        ``priorControl()`` (VVV, EEE, VVI, VII).  ``True`` uses mclust's
        default hyperparameters; a dict may override ``shrinkage``, ``mean``,
        ``dof`` and ``scale``.
    missing : {"raise", "drop", "em"}
        Rows with NaN raise an error (default) or are dropped; ``"em"``: maximum
        likelihood under missing at random, the missing coordinates integrated out in
        the E-step (each row's responsibilities from the marginal densities of its
        observed values; the M-step from the conditional moments of the missing ones).
        Rows with no observed value carry no information and are dropped (counted in
        ``n_dropped`` and the summary); a column entirely missing, or a pair of columns
        never observed together under a non-diagonal structure, is a
        :class:`~emstats.exceptions.DataError`.

    Other Parameters
    ----------------
    _prepared : object, optional
        Internal: the already validated data, passed by :func:`emstats.gmm`.

    Notes
    -----
    The model is on the chunk contract (:class:`~emstats.em.protocol.ChunkedModel`):
    the E-step of a chunk of rows returns the natural statistics N_k = sum r_ik,
    sum r_ik (x_i - c) and sum r_ik (x_i - c)(x_i - c)' about a fixed centre c (the
    data's column means), which add over chunks and over parameter values (incremental
    and online EM combine them); Louis' pieces are sums over chunks too.

    Memory: the model keeps the rows (a read-only view of a float64 C-contiguous input,
    else a copy) and their transpose for the kernel, and, per E-step, per-chunk partial
    sums of size (n / 2048) x K (d^2 + d + 2) plus two 256 x K d buffers per thread;
    responsibilities (n x K) are materialised only by ``predict_proba``; the standard
    errors take them window by window (65536 rows).  So about n d beyond the input.
    """

    def __init__(self, data, k, covariance: str = "VVV", *, reg_covar: float = 0.0,
                 prior=None, missing: str = "raise", _prepared=None):
        if _prepared is None:
            _prepared = prepare_data(data, None, missing)
        X, names, labels, n_drop, design_info = _prepared
        n, d = X.shape
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
            raise ValueError(f"k (the number of components) must be a positive integer, "
                             f"got {k!r}")
        K = int(k)
        if K < 1:
            raise ValueError(f"k (the number of components) must be at least 1, got {K}")
        if K > 256:
            raise ValueError(f"k = {K} components is more than the kernel supports (256)")
        if reg_covar < 0 or not np.isfinite(reg_covar):
            raise ValueError(f"reg_covar must be non-negative, got {reg_covar!r}")
        self.covariance = resolve_structure(covariance, d)
        self.structure = STRUCTURES[self.covariance](K, d)
        if missing not in ("raise", "drop", "em"):
            raise ValueError(f"missing must be 'raise', 'drop' or 'em', got {missing!r}")
        self.missing = missing
        #: whether some values are missing (``missing="em"``): they are integrated out
        self.incomplete = bool(np.isnan(X).any())
        if self.incomplete and missing != "em":
            raise DataError("the data have missing values: use missing='em' to integrate "
                            "them out or 'drop' to drop their rows")
        if self.incomplete:
            var, centre, X_start = self._setup_incomplete(X, names)
        else:
            self.data = GaussianRows({"X": X})
            XT = self.data.XT               # the kernel reads the data transposed (d x n)
            # variable by variable (each a contiguous row of XT): temporaries of n entries
            var = np.array([v.var() for v in XT])
            amax = np.maximum(XT.max(axis=1), -XT.min(axis=1))
            const = np.sqrt(var) <= 1e-14 * np.maximum(amax, 1e-300)
            if const.any():
                raise DataError(
                    "constant column(s) " + ", ".join(repr(names[j]) for j in
                                                      np.flatnonzero(const))
                    + ": a Gaussian mixture needs variation in every variable (drop them)"
                )
            centre, X_start = XT.mean(axis=1), self.data["X"]
            self.XT = XT
        n_distinct = _count_distinct(X_start, max(K, d + 1))
        if K > n_distinct:
            raise DataError(f"k = {K} components but the data have only {n_distinct} distinct "
                            "row(s)")
        if not self.structure.diag and n_distinct <= d:
            # every scatter matrix, weighted or pooled, has rank below d
            raise DataError(
                f"{n_distinct} distinct row(s) for {d} variables: the covariance matrices of "
                f"{self.covariance} are singular (a full covariance needs more distinct rows "
                "than variables); use a diagonal structure such as 'VVI' or fewer variables")
        self.X = X if self.incomplete else self.data["X"]
        #: the rows the starts are computed from (missing values replaced by column means)
        self._X_start = X_start
        self.n, self.d, self.K = n, d, K
        self.columns = names
        self.row_labels = labels
        self.n_dropped = n_drop
        self.design_info = design_info
        self.reg_covar = float(reg_covar)
        self.endog_name = " + ".join(names)
        self._data_var = var
        self._floor = 1e-10 * float(np.mean(self._data_var))
        #: the fixed centre of the natural statistics (a data constant)
        self.centre = centre
        self.prior = self._make_prior(prior)
        self.param_names = self._make_names()
        self.nobs = float(n)
        self.df_model = float(self.n_free)

    def _setup_incomplete(self, X, names):
        """Rows with missing values: grouped by pattern (the complete rows first, then the
        incomplete ones pattern by pattern) into :class:`IncompleteGaussianRows`; the
        checks of what the observed values can identify.  Returns the observed columns'
        variances, the centre (their means) and the rows with the missing values replaced
        by the column means (for the starts)."""
        pats = group_patterns(X)
        full = pats.observed.all(axis=1)
        code_of = np.where(full, -1, np.cumsum(~full) - 1)
        code = code_of[pats.row_pattern]
        order = np.argsort(code, kind="stable")
        #: observed coordinates of each incomplete pattern
        self.inc_observed = pats.observed[~full].copy()
        self.pattern_counts = pats.counts[~full].copy()
        #: storage order of the rows (row i of the data is row order[i] of the input)
        self._order = order
        self.data = IncompleteGaussianRows({"X": X[order], "pat": code[order]})
        self.XT = self.data.XT              # the complete rows, transposed
        pc = column_counts(pats.observed, pats.counts)
        few = [repr(names[j]) for j in range(X.shape[1]) if pc[j, j] < 2]
        if few:
            raise DataError("column(s) with fewer than 2 observed values: " + ", ".join(few))
        if not self.structure.diag:
            a, b = np.nonzero(np.tril(pc < 2, -1))
            if a.size:
                pairs = ", ".join(f"({names[j]!r}, {names[i]!r}): {int(pc[i, j])} row(s)"
                                  for i, j in zip(a, b, strict=True))
                raise DataError(
                    f"too few rows observe these pairs of columns together to estimate their "
                    f"covariance under {self.covariance} (need 2): {pairs}; use a diagonal "
                    "structure or drop a column")
        centre = np.nanmean(X, axis=0)
        var = np.nanvar(X, axis=0)
        scale = np.nanmax(np.abs(X), axis=0)
        const = np.sqrt(var) <= 1e-14 * np.maximum(scale, 1e-300)
        if const.any():
            raise DataError(
                "constant column(s) " + ", ".join(repr(names[j]) for j in np.flatnonzero(const))
                + " (where observed): a Gaussian mixture needs variation in every variable "
                "(drop them)")
        X_start = np.where(np.isnan(X), centre[None], X)
        return var, centre, np.ascontiguousarray(X_start)

    def _make_prior(self, prior):
        if prior is None or prior is False:
            return None
        if self.covariance not in PRIOR_STRUCTURES:
            raise ValueError(f"prior= is implemented for {', '.join(PRIOR_STRUCTURES)}, not "
                             f"{self.covariance}")
        opts = {} if prior is True else dict(prior)
        unknown = set(opts) - {"shrinkage", "mean", "dof", "scale"}
        if unknown:
            raise ValueError(f"unknown prior hyperparameters {sorted(unknown)}")
        if self.incomplete:
            raise ValueError("prior= is not implemented with missing values (missing='em')")
        X, K, d = self.X, self.K, self.d
        fac = (1.0 / K) ** (2.0 / d)
        if self.structure.kind == "full":
            scale = fac * np.cov(X, rowvar=False).reshape(d, d)
        else:
            scale = fac * float(np.sum(X.var(axis=0, ddof=1))) / d
        out = {"shrinkage": 0.01, "mean": X.mean(axis=0), "dof": d + 2.0, "scale": scale}
        out.update(opts)
        out["mean"] = np.asarray(out["mean"], dtype=float).reshape(d)
        out["scale"] = np.asarray(out["scale"], dtype=float)
        return out

    def _make_names(self):
        K = self.K
        names = [f"weight[{k}]" for k in range(2, K + 1)]
        names += [f"mean[{k}]({c})" for k in range(1, K + 1) for c in self.columns]
        names += self.structure.inf_names(self.columns)
        return names

    @property
    def preferred_method(self) -> str | None:
        """The scheme of ``fit(method=None)``: SQUAREM with missing values (Louis' pieces
        then cost several E-steps, and the Newton finish computes them every iteration:
        measured 28 s against 70 s to the same maximum at n = 20000, d = 10, k = 3, 49
        patterns, benchmarks/bench_gmm_missing.py), above NEWTON_MAX_ROWS complete rows or
        NEWTON_MAX_PARAMS free parameters (SQUAREM to the engine's rule, then one pass of
        Louis' pieces for the standard errors: the Newton finish evaluates them at every
        step and every halving of its line search, a few E-steps' worth each, to save a
        few SQUAREM cycles; docs/gmm.md, "Large fits"), else the engine's default
        (Louis-Newton)."""
        if self.incomplete:
            return "squarem"
        if self.has_louis and (self.n > NEWTON_MAX_ROWS or self.n_free > NEWTON_MAX_PARAMS):
            return "squarem"
        return None

    @property
    def n_free(self) -> int:
        """Number of free parameters: (K - 1) + K d + covariance parameters."""
        return self.K - 1 + self.K * self.d + self.structure.n_var()

    # -- EM on chunks -------------------------------------------------------------------
    def start_params(self) -> GMMParams:
        """k-means++ seeding (seed 0) followed by a few k-means iterations."""
        return self._init_kmeans(np.random.default_rng(0))

    def _factors(self, params: GMMParams):
        if not (np.all(np.isfinite(params.means)) and np.all(params.weights >= 0)
                and np.all(np.isfinite(params.weights))):
            return None
        covs = params.covariances
        try:
            L = np.linalg.cholesky(covs)
        except np.linalg.LinAlgError:
            return None
        if not np.all(np.isfinite(L)):
            return None
        return L

    def _kernel(self, X, params, L, want_resp=False, want_ll=False, n_threads=1, XT=None):
        K, d = self.K, self.d
        n = X.shape[0]
        eye = np.broadcast_to(np.eye(d), (K, d, d))
        Linv = np.linalg.solve(L, eye)                   # L^-1, lower
        U = np.swapaxes(Linv, 1, 2)                      # U = L^-T, Sigma^-1 = U U'
        Wt = np.ascontiguousarray(np.swapaxes(U, 1, 2).reshape(K * d, d))  # rows: U_k'

        b = np.ascontiguousarray(np.einsum("kab,ka->kb", U, params.means).ravel())
        with np.errstate(divide="ignore"):
            logw = np.log(params.weights)
        logc = logw - 0.5 * d * LOG_2PI - np.log(np.diagonal(L, axis1=1, axis2=2)).sum(axis=1)
        logc = np.ascontiguousarray(logc)
        nch = gmm_kernels.n_chunks(n)
        nt = max(1, min(int(n_threads), nch))
        part_n = np.zeros((nch, K))
        part_s = np.zeros((nch, K * d))
        part_t = np.zeros((nch, K, d * d))
        part_ll = np.zeros((nch, 2))
        scratch = np.empty((nt, gmm_kernels.scratch_size(K, d)))
        resp = np.empty((n, K)) if want_resp else np.empty((0, K))
        llo = np.empty(n) if want_ll else np.empty(0)
        diag = int(self.structure.diag)
        u = np.ascontiguousarray(np.diagonal(U, axis1=1, axis2=2).ravel())
        XT = np.ascontiguousarray(X.T) if XT is None else XT
        gmm_kernels.gmm_estep(XT, Wt, u, b, logc, diag, part_n, part_s, part_t, part_ll,
                              scratch, resp, llo, nt)
        N = part_n.sum(axis=0)
        s = part_s.sum(axis=0).reshape(K, d)
        T = part_t.sum(axis=0).reshape(K, d, d)
        ll = part_ll.sum(axis=0)
        S1 = np.einsum("kab,kb->ka", L, s)
        S2 = _sym(L @ T @ np.swapaxes(L, 1, 2))
        if self.structure.diag:
            # only the diagonal of T was accumulated; L is diagonal
            S2 = _diag_stack(np.diagonal(S2, axis1=1, axis2=2))
        return N, S1, S2, float(ll[0]), int(ll[1]), resp, llo

    def _chunk_pass(self, params, chunk, want_resp=False):
        """The kernel on one chunk: N_k, sums about the means mu_k, log-likelihood,
        responsibilities; None where the parameters are invalid."""
        L = self._factors(params)
        if L is None:
            return None
        if self.incomplete:
            return self._split_pass(params, L, chunk["X"], chunk["pat"], chunk["XT"],
                                    chunk.n_threads, want_resp)
        out = self._kernel(chunk["X"], params, L, want_resp=want_resp,
                           n_threads=chunk.n_threads, XT=chunk["XT"])
        if out[4] or not np.isfinite(out[3]):
            return None
        return out

    # -- missing values (missing="em") ----------------------------------------------------
    def _split_pass(self, params, L, X, pat, XT, n_threads, want_resp=False):
        """:meth:`_chunk_pass` for rows with missing values: the kernel on the complete rows
        (the first ``searchsorted(pat, 0)``), :meth:`_inc_blocks` on the others; their
        sums added (about the means mu_k, with the conditional moments of the missing
        coordinates), the responsibilities in the rows' order."""
        K, d = self.K, self.d
        nc = int(np.searchsorted(pat, 0))
        n = X.shape[0]
        N, S1, S2, ll = np.zeros(K), np.zeros((K, d)), np.zeros((K, d, d)), 0.0
        resp = np.empty((n, K)) if want_resp else np.empty((0, K))
        if nc:
            out = self._kernel(X[:nc], params, L, want_resp=want_resp, n_threads=n_threads,
                               XT=XT)
            if out[4] or not np.isfinite(out[3]):
                return None
            N, S1, S2, ll = out[0].copy(), out[1].copy(), out[2].copy(), out[3]
            if want_resp:
                resp[:nc] = out[5]
        try:
            for a, b, _, r, llr, resid, cond in self._inc_blocks(params, X[nc:], pat[nc:],
                                                                 self.inc_observed):
                ll += float(llr.sum())
                nk = r.sum(axis=0)
                wres = resid * r.T[:, :, None]                      # r_ik e_ik
                N += nk
                S1 += wres.sum(axis=1)
                S2 += np.swapaxes(wres, 1, 2) @ resid + nk[:, None, None] * cond
                if want_resp:
                    resp[nc + a:nc + b] = r
        except np.linalg.LinAlgError:
            return None
        if not np.isfinite(ll):
            return None
        S2 = _sym(S2)
        if self.structure.diag:
            S2 = _diag_stack(np.diagonal(S2, axis1=1, axis2=2))
        return N, S1, S2, float(ll), 0, resp, None

    @staticmethod
    def _runs(pat):
        """Blocks ``(a, b)`` of consecutive rows with one pattern (``pat`` sorted), of at
        most LOUIS_BLOCK rows."""
        n = pat.size
        edges = np.concatenate([[0], np.flatnonzero(np.diff(pat)) + 1, [n]]).astype(int)
        for a0, b0 in zip(edges[:-1], edges[1:], strict=True):
            for a in range(a0, b0, LOUIS_BLOCK):
                yield a, min(a + LOUIS_BLOCK, b0)

    def _inc_blocks(self, params, X, pat, observed):
        """For each block of incomplete rows with one pattern: ``(a, b, obs, resp, loglik,
        resid, cond)`` -- the rows a:b of ``X``, their observed coordinates, their
        responsibilities (from the marginal densities of the observed values) and
        log-likelihoods, and per component the conditional mean residuals
        E[x - mu_k | x_o, k] (K, rows, d) and conditional covariances (K, d, d)
        (:func:`~emstats.components.gaussian_missing.component_moments`).  Raises
        LinAlgError where some Sigma_k,oo is not positive definite."""
        with np.errstate(divide="ignore"):
            logw = np.log(params.weights)
        for a, b in self._runs(pat):
            obs = observed[pat[a]]
            out = component_moments(X[a:b][:, obs], obs, params.means, params.covariances)
            if out is None:
                raise np.linalg.LinAlgError("a covariance block is not positive definite")
            logpdf, resid, cond = out
            lp = logpdf + logw[None]
            top = lp.max(axis=1)
            r = np.exp(lp - top[:, None])
            tot = r.sum(axis=1)
            r /= tot[:, None]
            yield a, b, obs, r, top + np.log(tot), resid, cond

    def _rows_pass(self, X, params, want_resp=False, want_ll=False):
        """Responsibilities and log-densities of any rows (NaN = missing; a row with no
        observed value has the weights as responsibilities and log-density 0), in the
        rows' order: the kernel for the complete rows, the marginal densities by pattern
        for the others."""
        L = self._factors(params)
        if L is None:
            raise np.linalg.LinAlgError("a covariance is not positive definite")
        n, K = X.shape[0], self.K
        resp, llo = np.empty((n, K)), np.empty(n)
        nan = np.isnan(X)
        full = ~nan.any(axis=1)
        if full.any():
            out = self._kernel(np.ascontiguousarray(X[full]), params, L, want_resp=True,
                               want_ll=True, n_threads=resolve_threads(None))
            resp[full], llo[full] = out[5], out[6]
        rows = np.flatnonzero(~full)
        if rows.size:
            pats = group_patterns(X[rows])
            order = np.argsort(pats.row_pattern, kind="stable")
            Xs, pat = X[rows[order]], pats.row_pattern[order]
            for a, b, _, r, llr, _, _ in self._inc_blocks(params, Xs, pat, pats.observed):
                resp[rows[order[a:b]]] = r
                llo[rows[order[a:b]]] = llr
        return resp, llo

    def complete_rows(self, params: GMMParams, X=None, rng=None) -> np.ndarray:
        """The rows ``X`` (default: the model's, in their order) with the missing values
        filled: by their conditional mean given the observed values under the mixture,
        sum_k r_ik E[x_m | x_o, k] (``rng=None``), or drawn from their conditional
        distribution (a component from the responsibilities, then the conditional normal
        of that component).  A copy; the input is not modified."""
        X = self.X if X is None else np.asarray(X, dtype=float)
        out = X.copy()
        rows = np.flatnonzero(np.isnan(X).any(axis=1))
        if not rows.size:
            return out
        if self._factors(params) is None:
            raise np.linalg.LinAlgError("a covariance is not positive definite")
        pats = group_patterns(X[rows])
        order = np.argsort(pats.row_pattern, kind="stable")
        Xs, pat = X[rows[order]], pats.row_pattern[order]
        for a, b, obs, r, _, resid, cond in self._inc_blocks(params, Xs, pat, pats.observed):
            m = np.flatnonzero(~obs)
            idx = rows[order[a:b]]
            cmean = params.means[:, None, m] + resid[:, :, m]             # (K, rows, |m|)
            if rng is None:
                out[np.ix_(idx, m)] = np.einsum("ik,kim->im", r, cmean)
                continue
            u = rng.random(b - a)
            lab = np.minimum((np.cumsum(r, axis=1) < u[:, None]).sum(axis=1), self.K - 1)
            z = rng.standard_normal((b - a, m.size))
            vals = np.empty((b - a, m.size))
            for k in range(self.K):
                sel = lab == k
                if not sel.any():
                    continue
                w, v = np.linalg.eigh(cond[k][np.ix_(m, m)])
                F = v * np.sqrt(np.maximum(w, 0.0))
                vals[sel] = cmean[k, sel] + z[sel] @ F.T
            out[np.ix_(idx, m)] = vals
        return out

    def _about_centre(self, N, S1, S2, means) -> Stats:
        """Statistics about the means mu_k moved to the fixed centre c."""
        dmu = means - self.centre[None]
        cross = np.einsum("ka,kb->kab", S1, dmu)
        S2c = S2 + cross + np.swapaxes(cross, 1, 2) + N[:, None, None] * np.einsum(
            "ka,kb->kab", dmu, dmu)
        if self.structure.diag:
            S2c = _diag_stack(np.diagonal(S2c, axis1=1, axis2=2))
        return Stats(N=N, S1=S1 + N[:, None] * dmu, S2=_sym(S2c))

    def chunk_stats(self, params: GMMParams, chunk):
        """Natural statistics of the chunk's rows about the centre c: N_k = sum r_ik,
        S1_k = sum r_ik (x_i - c), S2_k = sum r_ik (x_i - c)(x_i - c)' (only the
        diagonal for the diagonal structures), and the rows' log-likelihood."""
        out = self._chunk_pass(params, chunk)
        if out is None:
            return None, -np.inf
        N, S1, S2, ll = out[:4]
        return self._about_centre(N, S1, S2, params.means), ll

    def moments_about(self, stats, points) -> Stats:
        """The statistics ``stats`` (about the centre c) moved to ``points`` (K, d):
        N_k, sum r_ik (x_i - p_k) and sum r_ik (x_i - p_k)(x_i - p_k)'."""
        N, S1, S2 = (np.asarray(stats[k]) for k in ("N", "S1", "S2"))
        dp = self.centre[None] - np.asarray(points, dtype=float)
        cross = np.einsum("ka,kb->kab", S1, dp)
        S2p = S2 + cross + np.swapaxes(cross, 1, 2) + N[:, None, None] * np.einsum(
            "ka,kb->kab", dp, dp)
        if self.structure.diag:
            S2p = _diag_stack(np.diagonal(S2p, axis1=1, axis2=2))
        return Stats(N=N, S1=S1 + N[:, None] * dp, S2=_sym(S2p))

    def loglike_constant(self, params: GMMParams) -> float:
        """The log-prior of MAP-EM (0 without a prior)."""
        return 0.0 if self.prior is None else self._log_prior(params)

    def m_step(self, stats, params: GMMParams) -> GMMParams:
        """The structure's M-step from the natural statistics summed over all rows.

        An empty component keeps its mean and covariance (with weight 0); a covariance
        that became numerically singular is floored (:meth:`_guard`).  Neither changes
        the model: :meth:`collapsed_components` finds them in the parameters.
        """
        d = self.d
        N = np.asarray(stats["N"], dtype=float)
        S1 = np.asarray(stats["S1"], dtype=float)
        n = float(N.sum())
        tiny = 1e-10 * max(n, 1.0)
        empty = N <= tiny
        Nk = np.where(empty, tiny, N)
        shift = S1 / Nk[:, None]
        means = self.centre[None] + shift
        W = _sym(np.asarray(stats["S2"], dtype=float) - np.einsum("ka,kb->kab", S1, shift))
        pr = self.prior
        if pr is not None:
            kap = pr["shrinkage"]
            dm = means - pr["mean"][None]
            means = (Nk[:, None] * means + kap * pr["mean"][None]) / (Nk + kap)[:, None]
            W_extra = (kap * Nk / (Nk + kap))[:, None, None] * np.einsum("ka,kb->kab", dm, dm)
            covs = self._map_covs(Nk, W, W_extra, n)
        else:
            covs = self.structure.mstep(Nk, W, n, params.covariances)
        if empty.any():
            covs = np.array(covs, dtype=float)
            for k in np.flatnonzero(empty):
                means[k] = params.means[k]
                covs[k] = params.covariances[k]
        if self.reg_covar > 0:
            covs = covs + self.reg_covar * np.eye(d)[None]
        covs = self._guard(covs)
        weights = np.where(empty, 0.0, np.maximum(N, 0.0)) / n
        return GMMParams(weights, means, covs)

    def _prior_power(self) -> float:
        """The exponent a of the prior's determinant term, -(a/2) log|Sigma| per covariance
        unit (a matrix, a diagonal element or a spherical variance), as in mclust's M-steps
        with a prior (the MAP covariance is (scale + W~) / (N + a), N the rows behind the
        unit, times d for a spherical variance)."""
        nu, d, K = self.prior["dof"], self.d, self.K
        return {"VVV": nu + d + 2.0, "EEE": nu + d + 1.0 + K, "VVI": nu + 3.0,
                "VII": nu + d + 2.0}[self.covariance]

    def _map_covs(self, Nk, W, W_extra, n):
        """MAP covariances under the conjugate prior (Fraley & Raftery 2007): the scatter
        W~ = W + kappa N/(N + kappa) (xbar - m)(xbar - m)' plus the prior scale, over the
        weight of the data and of the prior."""
        pr = self.prior
        st = self.structure
        K, d = self.K, self.d
        a = self._prior_power()
        scale = pr["scale"]
        Wt = W + W_extra
        if st.kind == "full":
            if st.shared:
                S = (scale + Wt.sum(axis=0)) / (n + a)
                return np.broadcast_to(S, (K, d, d)).copy()
            return (scale[None] + Wt) / (Nk + a)[:, None, None]
        if st.kind == "diagonal":
            dg = np.diagonal(Wt, axis1=1, axis2=2)
            if st.shared:
                return _diag_stack(np.broadcast_to((scale + dg.sum(axis=0)) / (n + a), (K, d)))
            return _diag_stack((scale + dg) / (Nk + a)[:, None])
        tr = np.trace(Wt, axis1=1, axis2=2)
        if st.shared:
            v = np.full(K, (scale + tr.sum()) / (n * d + a))
        else:
            v = (scale + tr) / (Nk * d + a)
        return _diag_stack(np.repeat(v[:, None], d, axis=1))

    def _log_prior(self, params: GMMParams) -> float:
        """Log density of the prior whose MAP M-step is :meth:`_map_covs`, up to a constant:
        -(a/2) log|Sigma| - tr(Sigma^-1 scale)/2 per covariance unit, and
        -(kappa/2) (mu_k - m)' Sigma_k^-1 (mu_k - m) per component."""
        pr = self.prior
        st = self.structure
        kap, scale, m0 = pr["shrinkage"], pr["scale"], pr["mean"]
        a = self._prior_power()
        covs = params.covariances
        out = 0.0
        for mu, S in zip(params.means, covs, strict=True):
            e = mu - m0
            out -= 0.5 * kap * float(e @ np.linalg.solve(S, e))
        units = covs[:1] if st.shared else covs
        for S in units:
            if st.kind == "full":
                c = sla.cho_factor(S, lower=True)
                logdet = 2.0 * float(np.log(np.diag(c[0])).sum())
                out += -0.5 * a * logdet - 0.5 * float(np.trace(sla.cho_solve(c, scale)))
            elif st.kind == "diagonal":
                v = np.diag(S)
                out += float(np.sum(-0.5 * a * np.log(v) - 0.5 * scale / v))
            else:
                v = S[0, 0]
                out += -0.5 * a * math.log(v) - 0.5 * float(scale) / v
        return out

    def _guard(self, covs):
        """Floor numerically singular covariances (collapsing components).

        A covariance with a non-finite entry is replaced by the floor times the identity
        (its eigen-decomposition is not defined); one whose smallest eigenvalue is below
        the floor gets its eigenvalues raised to the floor.
        """
        covs = np.ascontiguousarray(covs, dtype=float)
        bad = np.empty(covs.shape[0], dtype=np.uint8)
        # finiteness first, then the floor by a Cholesky attempt of Sigma - floor I (no
        # eigen-decomposition of a matrix with non-finite entries)
        if gmm_small.below_floor(covs, self._floor, bad):
            bad = bad.astype(bool)
            finite = np.all(np.isfinite(covs), axis=(1, 2))
            covs = covs.copy()
            for k in np.flatnonzero(bad):
                if not finite[k]:
                    covs[k] = self._floor * np.eye(self.d)
                    continue
                wk, vk = np.linalg.eigh(_sym(covs[k]))
                wk = np.maximum(wk, self._floor)
                covs[k] = (vk * wk) @ vk.T
        return covs

    #: relative margin on the floor, and the rounding allowance in units of d eps times
    #: the largest eigenvalue, of :meth:`collapsed_components`
    COLLAPSE_MARGIN = 1e-3
    COLLAPSE_EPS = 64.0

    def collapsed_components(self, params: GMMParams) -> list[int]:
        """Components (0-based) that collapsed: emptied (weight 0) or with a covariance
        floored at the model's lower bound on its eigenvalues.

        A floored eigenvalue comes back from the rebuilt matrix (and from the M-steps that
        follow) with a rounding error of order ``d * eps`` times the matrix's largest
        eigenvalue, which exceeds the floor itself (1e-10 of the mean variance) by far:
        the test allows that error (``COLLAPSE_EPS``) on top of a relative margin
        (``COLLAPSE_MARGIN``) on the floor.  An eigenvalue that close to the floor, or a
        condition number near 1 / eps, is a singular covariance either way."""
        w = np.linalg.eigvalsh(params.covariances)
        wmin, wmax = w[:, 0], np.abs(w).max(axis=1)
        limit = (self._floor * (1.0 + self.COLLAPSE_MARGIN)
                 + self.COLLAPSE_EPS * self.d * np.finfo(float).eps * wmax)
        bad = (params.weights <= 1e-10) | ~(wmin > limit)
        return [int(k) for k in np.flatnonzero(bad)]

    def canonical(self, params: GMMParams) -> GMMParams:
        """The same mixture with its components in the canonical order (means sorted
        lexicographically)."""
        return params.sorted()

    def pack(self, params: GMMParams) -> np.ndarray:
        with np.errstate(divide="ignore"):
            lw = np.log(params.weights)
        lr = np.clip(lw[1:] - lw[0], -700.0, 700.0)
        return np.concatenate([lr, params.means.ravel(),
                               self.structure.pack(params.covariances)])

    def unpack(self, vec) -> GMMParams:
        K, d = self.K, self.d
        vec = np.asarray(vec, dtype=float)
        lr = np.concatenate([[0.0], vec[:K - 1]])
        w = np.exp(lr - logsumexp(lr))
        means = vec[K - 1:K - 1 + K * d].reshape(K, d).copy()
        covs = self.structure.unpack(vec[K - 1 + K * d:])
        return GMMParams(w, means, covs)

    def to_inference(self, params: GMMParams) -> np.ndarray:
        return np.concatenate([params.weights[1:], params.means.ravel(),
                               self.structure.to_inf(params.covariances)])

    def from_inference(self, vec) -> GMMParams:
        K, d = self.K, self.d
        vec = np.asarray(vec, dtype=float)
        w = np.concatenate([[1.0 - vec[:K - 1].sum()], vec[:K - 1]])
        means = vec[K - 1:K - 1 + K * d].reshape(K, d).copy()
        covs = self.structure.from_inf(vec[K - 1 + K * d:])
        return GMMParams(w, means, covs)

    def loglike_data(self, params: GMMParams) -> float:
        """Observed-data log-likelihood (without the prior, if any)."""
        L = self._factors(params)
        if L is None:
            return -np.inf
        if self.incomplete:
            out = self._split_pass(params, L, self.data["X"], self.data["pat"], self.XT,
                                   resolve_threads(None))
            return -np.inf if out is None else out[3]
        return self._kernel(self.X, params, L, n_threads=resolve_threads(None),
                            XT=self.XT)[3]

    @property
    def has_louis(self) -> bool:
        return self.prior is None

    # -- Louis' method ------------------------------------------------------------------
    def _louis_base(self):
        """The linear structure Louis' pieces are first computed in: the model's own, or for
        the other structures the unconstrained (VVV) or diagonal (VVI) covariances."""
        if self.structure.linear:
            return self.structure
        return STRUCTURES["VVI" if self.structure.diag else "VVV"](self.K, self.d)

    def chunk_louis(self, params: GMMParams, chunk, method: str | None = None) -> Stats:
        """The chunk's share of the log-likelihood, the score and Louis' pieces, in the
        coordinates of :meth:`_louis_base`.

        For component k with P = Sigma_k^-1, e = x - mu_k, z = P e, the complete-data
        score of a row is g_ik = (weights) d log pi_k / d pi_j, (mean) z, (covariance
        element m with Sigma_k = sum theta_m B_m) (z'B_m z - tr(P B_m)) / 2.  The score
        and the complete information (the responsibility-weighted complete-data negative
        Hessians) depend on the data only through N_k, sum r e and sum r e e'.  The
        missing information sum_i [sum_k r_ik g_ik g_ik' - s_i s_i'], s_i = sum_k r_ik
        g_ik, is computed as

            sum_k sum_i r_ik (1 - r_ik) g_ik g_ik' - sum_(k != l) sum_i r_ik r_il g_ik g_il'

        over the rows whose membership is uncertain (a row with r_i. one-hot to rounding
        contributes nothing, so near the MLE of well-separated components few rows cost
        anything), by blocks of rows: from the weighted monomials of degree <= 4 of the
        rows (:meth:`_missing_moments`, one matrix product per block), or from the
        per-row scores (:meth:`_missing_rows`, when that is cheaper: tiny d and k);
        ``method="moments"`` or ``"rows"`` chooses.
        """
        if not self.has_louis:
            raise NotImplementedError("Louis' pieces are not available with a prior")
        K, d = self.K, self.d
        st, Pm, aw, trPB, idx, P = self._louis_setup(params)
        pi = params.weights
        nw = K - 1
        off_mu = nw
        off_cov = nw + K * d
        # the E-step with responsibilities: for complete rows the kernel runs window by
        # window (no n x K matrix at once), its sums added as the windows pass
        if self.incomplete:
            out = self._chunk_pass(params, chunk, want_resp=True)
            if out is None:
                raise np.linalg.LinAlgError("a covariance is not positive definite or the "
                                            "log-likelihood is not finite")
            N, S1, S2, ll, _, resp, _ = out
            nc = int(np.searchsorted(chunk["pat"], 0))
            cuts = [(a, min(a + LOUIS_WINDOW, nc)) for a in range(0, nc, LOUIS_WINDOW)]
            windows = [(chunk["X"][a:b], resp[a:b]) for a, b in cuts]
        else:
            windows = _LouisWindows(self, params, chunk)
        # -- the missing information, from the rows of uncertain membership
        missing = np.zeros((P, P))
        if K > 1:
            if method is None:
                # moments when there are fewer of them than entries of g g' (always but
                # for tiny d and k)
                q = nw + d + st.n_elem
                n_mono = _poly_basis(d, st.kind != "full")[0].size
                method = "moments" if q * q > n_mono else "rows"
            if method == "moments":
                self._missing_moments(missing, windows, params, st, Pm, aw, trPB, idx,
                                      n_threads=chunk.n_threads)
            else:
                self._missing_rows(missing, windows, params, st, Pm, aw, trPB, idx)
        if self.incomplete:
            self._missing_incomplete(missing, chunk["X"], chunk["pat"], params, st, Pm, aw,
                                     trPB, idx)
        else:
            N, S1, S2, ll = windows.totals()
        # -- the score, from the statistics
        score = np.zeros(P)
        ne = st.B.shape[0]
        BfT = np.swapaxes(st.B, 1, 2).reshape(ne, d * d)       # B_m' flattened
        for k in range(K):
            Q = Pm[k] @ S2[k] @ Pm[k]                     # sum_i r z z'
            gc = 0.5 * (BfT @ Q.ravel() - N[k] * trPB[k])      # tr(B_m Q)
            score[idx[k]] += np.concatenate([N[k] * aw[k], Pm[k] @ S1[k], gc])
        # -- the complete information, from the statistics
        comp = np.zeros((P, P))
        if K > 1:
            comp[:nw, :nw] = N[0] / pi[0] ** 2
            comp[np.arange(nw), np.arange(nw)] += N[1:] / pi[1:] ** 2
        for k in range(K):
            Pk = Pm[k]
            im = off_mu + k * d + np.arange(d)
            ic = off_cov + st.idx[k]
            comp[np.ix_(im, im)] += N[k] * Pk
            # (matrix products instead of einsum's loops: the fixed cost of a pass)
            Qb = Pk @ st.B @ Pk                                      # P B_m P
            mc = (Qb @ S1[k]).T                                      # (d, nb)
            comp[np.ix_(im, ic)] += mc
            comp[np.ix_(ic, im)] += mc.T
            SP = S2[k] @ Pk
            # t1[m, n] = tr(B_m Qb_n SP), t2[m, n] = tr(Qb_n B_m)
            t1 = BfT @ (Qb @ SP).reshape(ne, d * d).T
            t2 = BfT @ Qb.reshape(ne, d * d).T
            comp[np.ix_(ic, ic)] += t1 - 0.5 * N[k] * t2
        return Stats(loglik=ll, score=score, complete=comp, missing=missing)

    def _louis_setup(self, params: GMMParams):
        """What Louis' pieces and the rows' scores share: the base coordinates ``st``
        (:meth:`_louis_base`), the precisions P_k, the weights' part of each component's
        complete-data score (constant in x), tr(P_k B_m), the coordinates of each
        component's (weights, mean, covariance elements) and their number."""
        K, d = self.K, self.d
        st = self._louis_base()
        pi = params.weights
        Pm = _sym(np.linalg.inv(params.covariances))
        nw = K - 1
        idx = [np.concatenate([np.arange(nw), nw + k * d + np.arange(d),
                               nw + K * d + st.idx[k]]) for k in range(K)]
        aw = np.zeros((K, nw))
        for k in range(1, K):
            aw[k, k - 1] = 1.0 / pi[k]
        if K > 1:
            aw[0, :] = -1.0 / pi[0]
        trPB = Pm.reshape(K, d * d) @ np.swapaxes(st.B, 1, 2).reshape(-1, d * d).T  # tr(P_k B_m)
        return st, Pm, aw, trPB, idx, nw + K * d + st.n_var()

    def chunk_scores(self, params: GMMParams, chunk) -> np.ndarray:
        """Observed-data score of each row of the chunk (rows x parameters, the inference
        coordinates): by Fisher's identity sum_k r_ik g_ik, with g_ik the row's
        complete-data score in component k (for a row with missing values its
        conditional expectation given the observed ones), computed window by window."""
        if not self.has_louis:
            raise NotImplementedError("per-row scores are not available with a prior")
        st, Pm, aw, trPB, idx, P = self._louis_setup(params)
        X = chunk["X"]
        S = np.zeros((X.shape[0], P))
        nc = int(np.searchsorted(chunk["pat"], 0)) if self.incomplete else X.shape[0]
        if self.incomplete:
            out = self._chunk_pass(params, chunk, want_resp=True)
            if out is None:
                raise np.linalg.LinAlgError("a covariance is not positive definite or the "
                                            "log-likelihood is not finite")
            windows = ((X[a:min(a + LOUIS_WINDOW, nc)], out[5][a:min(a + LOUIS_WINDOW, nc)])
                       for a in range(0, nc, LOUIS_WINDOW))
        else:
            windows = _LouisWindows(self, params, chunk)
        a = 0
        for Xw, Rw in windows:
            b = a + Xw.shape[0]
            for k in range(self.K):
                S[a:b, idx[k]] += Rw[:, k:k + 1] * self._score_rows(
                    st, (Xw - params.means[k]) @ Pm[k], aw[k], trPB[k])
            a = b
        if nc < X.shape[0]:
            Bf = st.B.reshape(st.B.shape[0], -1)
            for a, b, _, r, _, resid, cond in self._inc_blocks(params, X[nc:], chunk["pat"][nc:],
                                                               self.inc_observed):
                for k in range(self.K):
                    V = Pm[k] @ cond[k] @ Pm[k]
                    S[nc + a:nc + b, idx[k]] += r[:, k:k + 1] * self._score_rows(
                        st, resid[k] @ Pm[k], aw[k], trPB[k] - Bf @ V.T.ravel())
        if st is not self.structure:
            S = S @ self._structure_map(params, st)[0]
        return S

    def _missing_incomplete(self, missing, X, pat, params, st, Pm, aw, trPB, idx):
        """Add the missing information of the incomplete rows of a chunk (rows from
        ``searchsorted(pat, 0)`` on) to ``missing``.

        The missing data of a row are its component label and its missing coordinates
        x_m, so the conditional covariance of its complete-data score g = g_z(x) is

            sum_k r_ik Cov(g_k | x_o, k) + [sum_k r_ik gbar_k gbar_k' - s_i s_i']

        with gbar_k = E[g_k | x_o, k].  Given k, x - mu_k = e_hat + v with
        v ~ N(0, C_k) (C_k the conditional covariance, zero but in the missing block), so
        with P = Sigma_k^-1, V = P C_k P and A_m = P B_m P the score
        (P e, (e'A_m e - tr(P B_m)) / 2) has, by the Gaussian moments,
        Cov(P e) = V, Cov(P e, e'A_n e / 2) = V B_n P e_hat and
        Cov(e'A_m e, e'A_n e) / 4 = tr(B_m V B_n V) / 2 + tr(B_m V B_n P e_hat e_hat' P):
        sums over the rows of r_ik, r_ik e_hat and r_ik e_hat e_hat'.  The bracket is the
        missing information of the labels (:meth:`_add_label_missing`) with gbar_k in
        place of g_k: gbar_k is g_k at e_hat with tr(P B_m) replaced by
        tr(P B_m) - tr(B_m V).
        """
        K, d = self.K, self.d
        nw = K - 1
        nc = int(np.searchsorted(pat, 0))
        if nc == X.shape[0]:
            return
        off_mu, off_cov = nw, nw + K * d
        B = st.B
        ne = B.shape[0]
        Bf = B.reshape(ne, d * d)
        for _, _, _, r, _, resid, cond in self._inc_blocks(params, X[nc:], pat[nc:],
                                                           self.inc_observed):
            rest = r.sum(axis=1) - r.max(axis=1)
            unc = np.flatnonzero(rest > LOUIS_CERTAIN) if K > 1 else np.empty(0, int)
            G = []
            for k in range(K):
                P = Pm[k]
                V = P @ cond[k] @ P
                e = resid[k]
                rk = r[:, k]
                nk = float(rk.sum())
                su = P @ (rk @ e)
                Q = P @ ((e * rk[:, None]).T @ e) @ P
                im = off_mu + k * d + np.arange(d)
                ic = off_cov + st.idx[k]
                BV = (B @ V).reshape(ne, d * d)
                BVt = np.swapaxes(B @ V, 1, 2).reshape(ne, d * d)
                BQt = np.swapaxes(B @ Q, 1, 2).reshape(ne, d * d)
                missing[np.ix_(im, im)] += nk * V
                mc = V @ (B @ su).T                                  # (d, ne)
                missing[np.ix_(im, ic)] += mc
                missing[np.ix_(ic, im)] += mc.T
                # tr(B_m V B_n V) / 2 and tr(B_m V B_n Q) as products of flattened blocks
                missing[np.ix_(ic, ic)] += 0.5 * nk * (BV @ BVt.T) + BV @ BQt.T
                if not unc.size:
                    continue
                # E[g_k | x_o, k]: tr(P B_m) less tr(B_m V) for the missing coordinates
                G.append(self._score_rows(st, e[unc] @ P, aw[k], trPB[k] - Bf @ V.T.ravel()))
            if not unc.size:
                continue
            ru = r[unc]
            top = np.argmax(ru, axis=1)
            rmax = ru[np.arange(unc.size), top]
            self._add_label_missing(missing, G, ru, self._one_minus(ru, top, rmax), idx)

    @staticmethod
    def _uncertain_blocks(windows):
        """Blocks of at most LOUIS_BLOCK rows of uncertain membership (1 - max_k r_ik above
        LOUIS_CERTAIN): ``(Xb, Rb, top, rmax)`` with the rows, their responsibilities,
        most probable component and its responsibility, from ``windows`` (pairs of rows
        and their responsibilities, of at most LOUIS_WINDOW rows each), so no vector of n
        entries is formed; 1 - r_ik is then the sum of the other responsibilities
        (:meth:`_one_minus`, no cancellation)."""
        for Xw, R in windows:
            top = np.argmax(R, axis=1)
            rmax = R[np.arange(R.shape[0]), top]
            unc = np.flatnonzero(R.sum(axis=1) - rmax > LOUIS_CERTAIN)
            for s0 in range(0, unc.size, LOUIS_BLOCK):
                u = unc[s0:s0 + LOUIS_BLOCK]
                yield Xw[u], R[u], top[u], rmax[u]

    @staticmethod
    def _one_minus(Rb, top_b, rmax_b):
        m = Rb.shape[0]
        rz = Rb.copy()
        rz[np.arange(m), top_b] = 0.0
        rest_b = rz.sum(axis=1)
        one_minus = rest_b[:, None] + rmax_b[:, None] - Rb
        one_minus[np.arange(m), top_b] = rest_b
        return one_minus

    def _missing_moments(self, missing, windows, params, st, Pm, aw, trPB, idx, *,
                         n_threads: int = 1):
        """Add the missing information of the rows of ``windows`` (pairs of rows and their
        responsibilities) to ``missing``, by moments.

        Every complete-data score g_ik is a polynomial of degree 2 in y = x - c,
        g_ik = T_k phi(y) with phi = (1, y, y_a y_b (a <= b; the squares for the diagonal
        structures, whose precisions are diagonal)), so a block of the missing
        information is T_k (sum_i w_i phi_i phi_i') T_l' with the weights
        w_i = r_ik (1 - r_ik) (k = l) or -r_ik r_il, and phi phi' holds the monomials
        of degree <= 4 of y, each once: the kernel ``gmm_louis.louis_moments`` accumulates
        them (OpenMP over chunks of rows; per row the weight times the monomials for each
        pair kept).  Rows of certain membership (the responsibilities other than the
        largest summing to at most LOUIS_CERTAIN) and, in the other rows, the pairs with a
        responsibility r_k <= LOUIS_CERTAIN are skipped: every dropped weight is at most
        LOUIS_CERTAIN, so an entry of the missing information changes by at most
        LOUIS_CERTAIN x sum_i |T_k phi_i| |T_l phi_i| over the dropped (row, pair) terms --
        relative to the complete information, whose entries are sums of the same scores
        with weights r_ik, of the order of LOUIS_CERTAIN.
        """
        K, d = self.K, self.d
        nw = K - 1
        I, J, where, qa, qb = _poly_basis(d, st.kind != "full")
        pairs = [(k, k) for k in range(K)] + [(k, j) for k in range(K)
                                               for j in range(k + 1, K)]
        # the weighted monomials of the uncertain rows, window by window (the kernel skips
        # the rows of certain membership and forms 1 - r_ik without cancellation)
        mom = np.zeros((len(pairs), I.size))
        any_unc = False
        scratch = None
        for Xw, R in windows:
            Xw = np.ascontiguousarray(Xw, dtype=float)
            R = np.ascontiguousarray(R, dtype=float)
            if scratch is None:
                scratch = np.empty((n_threads, gmm_louis.scratch_size(d, K, qa.size, I.size)))
            part = np.zeros((gmm_louis.n_chunks(Xw.shape[0]), len(pairs), I.size))
            if gmm_louis.louis_moments(Xw, R, self.centre, qa, qb, I, J, LOUIS_CERTAIN, part,
                                       scratch, n_threads):
                any_unc = True
                mom += part.sum(axis=0)
        if not any_unc:
            return
        # T_k: the scores of component k in the basis phi
        fac = np.where(qa == qb, 1.0, 2.0)
        T = []
        for k in range(K):
            A = Pm[k]
            b = -A @ (params.means[k] - self.centre)
            Bb = st.B @ b                                           # (ne, d)
            C = 0.5 * (A.T @ st.B @ A)                              # A' B_m A / 2
            Tk = np.zeros((nw + d + st.B.shape[0], 1 + d + qa.size))
            Tk[:nw, 0] = aw[k]
            Tk[nw:nw + d, 0] = b
            Tk[nw:nw + d, 1:1 + d] = A
            Tk[nw + d:, 0] = 0.5 * (Bb @ b - trPB[k])
            Tk[nw + d:, 1:1 + d] = Bb @ A
            Tk[nw + d:, 1 + d:] = C[:, qa, qb] * fac
            T.append(Tk)
        for w, (k, j) in enumerate(pairs):
            blk = T[k] @ mom[w][where] @ T[j].T
            if k == j:
                missing[np.ix_(idx[k], idx[k])] += blk
            else:
                missing[np.ix_(idx[k], idx[j])] -= blk
                missing[np.ix_(idx[j], idx[k])] -= blk.T

    def _missing_rows(self, missing, windows, params, st, Pm, aw, trPB, idx):
        """The same as :meth:`_missing_moments` from the per-row scores (the reference the
        tests check it against)."""
        for Xb, Rb, top_b, rmax_b in self._uncertain_blocks(windows):
            one_minus = self._one_minus(Rb, top_b, rmax_b)
            G = [self._score_rows(st, (Xb - params.means[k]) @ Pm[k], aw[k], trPB[k])
                 for k in range(self.K)]
            self._add_label_missing(missing, G, Rb, one_minus, idx)

    @staticmethod
    def _score_rows(st, z, aw_k, tr_k):
        """Complete-data scores of rows in one component (rows x (K - 1 + d + n_elem)):
        the weights' part ``aw_k``, the means' z = P (x - mu) and the covariance
        elements' (z'B_m z - tr_k,m) / 2, for the standardised residuals ``z``."""
        if st.kind == "full":
            ia, ib = (np.array([e[i] for e in st.elems]) for i in (0, 1))
            q = z[:, ia] * z[:, ib] * np.where(ia == ib, 1.0, 2.0)
        elif st.kind == "diagonal":
            q = z * z
        else:
            q = (z * z).sum(axis=1, keepdims=True)
        return np.concatenate([np.broadcast_to(aw_k, (z.shape[0], aw_k.size)), z,
                               0.5 * (q - tr_k[None, :])], axis=1)

    @staticmethod
    def _add_label_missing(missing, G, Rb, one_minus, idx):
        """Add sum_k sum_i r_ik (1 - r_ik) g_ik g_ik' - sum_(k != l) sum_i r_ik r_il g_ik g_il'
        (the missing information of the labels) for the per-row scores ``G[k]`` (rows x q)
        and responsibilities ``Rb`` of a block of rows."""
        K = len(G)
        q = G[0].shape[1]
        H = np.concatenate([G[j] * Rb[:, j:j + 1] for j in range(K)], axis=1)
        for k in range(K):
            Gk = G[k]
            missing[np.ix_(idx[k], idx[k])] += Gk.T @ (
                Gk * (Rb[:, k] * one_minus[:, k])[:, None])
            if k == K - 1:
                break
            C = (Gk * Rb[:, k:k + 1]).T @ H[:, (k + 1) * q:]
            for j in range(k + 1, K):
                Cj = C[:, (j - k - 1) * q:(j - k) * q]
                missing[np.ix_(idx[k], idx[j])] -= Cj
                missing[np.ix_(idx[j], idx[k])] -= Cj.T

    def louis_from_stats(self, params: GMMParams, total):
        """Log-likelihood, score and Louis' pieces in the inference coordinates, from the
        pieces summed over chunks (transformed for the structures that are not linear in
        their covariance parameters)."""
        score = np.asarray(total["score"])
        comp, missing = _sym(np.asarray(total["complete"])), _sym(np.asarray(total["missing"]))
        st = self._louis_base()
        if st is not self.structure:
            score, pieces = self._louis_to_structure(params, st, score, comp, missing)
            return float(total["loglik"]), score, pieces
        return float(total["loglik"]), score, LouisPieces(comp, missing)

    def _louis_to_structure(self, params, base, score, comp, missing):
        """Louis' pieces of a structure parameterised by volumes, shapes and orientations
        (theta), from those in the covariance elements sigma of ``base``.

        With J = d sigma / d theta (block T = diag(I, J) over all parameters) and g the
        observed score in sigma (= E[complete-data score | y], which is not zero at the MLE
        of a constrained structure), the complete-data score in theta is J' S_c, so the
        missing information is T' I_m T and the complete information
        T' I_c T - sum_m g_m d2 sigma_m / d theta2 (the curvature of the map); their
        difference is the chain rule applied to the observed information.
        """
        T, off, parts = self._structure_map(params, base)
        nc = T.shape[1] - off
        curv = np.zeros((nc, nc))
        for rows, loc, Hl in parts:
            curv[np.ix_(loc, loc)] += np.einsum("m,pqm->pq", score[rows], Hl)
        comp_t = T.T @ comp @ T
        comp_t[off:, off:] -= curv
        return T.T @ score, LouisPieces(_sym(comp_t), _sym(T.T @ missing @ T))

    def _structure_map(self, params, base):
        """The Jacobian T = diag(I, d sigma / d theta) from the coordinates of ``base`` to
        the structure's, the number of leading coordinates it leaves alone, and per
        component (its rows of T, its theta coordinates, d2 sigma / d theta2)."""
        st = self.structure
        K = self.K
        off = K - 1 + K * self.d
        a = np.array([e[0] for e in base.elems])
        b = np.array([e[1] for e in base.elems])
        ne = a.size
        T = np.zeros((off + K * ne, off + st.n_var()))
        T[:off, :off] = np.eye(off)
        parts = []
        for k, (loc, Jl, Hl) in enumerate(st.derivatives(st.to_inf(params.covariances))):
            rows = off + k * ne + np.arange(ne)
            T[np.ix_(rows, off + loc)] = Jl[:, a, b].T
            parts.append((rows, loc, Hl[:, :, a, b]))
        return T, off, parts

    # -- starts ---------------------------------------------------------------------------
    def _start_blocks(self, resp=None, codes=None):
        """Row blocks ``(rows, R)`` of the start rows with their responsibilities: slices of
        ``resp`` (n x K), or the one-hot rows of the labels ``codes`` built one block at a
        time (no n x K matrix for a partition)."""
        n, K = self._X_start.shape[0], self.K
        for a in range(0, n, START_BLOCK):
            b = min(a + START_BLOCK, n)
            if codes is None:
                R = resp[a:b]
            else:
                R = np.zeros((b - a, K))
                R[np.arange(b - a), codes[a:b]] = 1.0
            yield slice(a, b), R

    def _params_from_resp(self, resp: np.ndarray | None = None, *,
                          codes: np.ndarray | None = None, cache=None,
                          key=None) -> GMMParams:
        """One M-step from responsibilities (n x K) or from a hard partition (``codes``,
        integer labels 0..K-1) of the rows (with missing values, of the rows with the
        column means in their place).  Two passes over row blocks: the counts and means,
        then the scatter matrices about the means (no n x d or n x K temporary).  The
        statistics and the seed covariances do not depend on the structure: with a
        ``cache`` (``_start_cache``) they are kept under ``key`` (which must tell the
        diagonal structures apart: their S2 is diagonal) for the other models of
        :func:`gmm_select`'s table."""
        hit = None if cache is None else cache.get(key)
        if hit is not None:
            stats, N, mu, cov0 = hit
            return self._start_m_step(stats, GMMParams(N / N.sum(), mu.copy(), cov0.copy()))
        X = self._X_start
        K, d = self.K, self.d
        N = np.zeros(K)
        sums = np.zeros((K, d))
        for rows, R in self._start_blocks(resp, codes):
            N += R.sum(axis=0)
            sums += R.T @ X[rows]
        if np.any(N <= 0):
            empty = [int(k) + 1 for k in np.flatnonzero(N <= 0)]
            raise DataError(f"the initial partition leaves component(s) {empty} empty")
        mu = sums / N[:, None]
        S2 = np.zeros((K, d, d))
        for rows, R in self._start_blocks(resp, codes):
            Xb = X[rows]
            for k in range(K):
                e = Xb - mu[k]
                S2[k] += e.T @ (e * R[:, k:k + 1])
        stats = self._about_centre(N, np.zeros((self.K, self.d)), _sym(S2), mu)
        # the previous covariances only seed the inner iterations of VEI, VEE, VEV
        cov0 = _sym(S2 / N[:, None, None])
        cov0 = self._guard(cov0 + 1e-12 * np.eye(self.d)[None])
        if cache is not None:
            cache[key] = (stats, N, mu.copy(), cov0.copy())
        return self._start_m_step(stats, GMMParams(N / N.sum(), mu, cov0))

    def _start_m_step(self, stats, params: GMMParams) -> GMMParams:
        """The M-step that makes a start from its statistics: :meth:`m_step`, or the
        one-call kernel's (``_fast_start_m_step``, set by
        :class:`~emstats.models._gmm_fast.SmallEM` while it draws its starts; the same
        step up to rounding)."""
        fast = getattr(self, "_fast_start_m_step", None)
        return self.m_step(stats, params) if fast is None else fast(stats, params)

    def _params_from_labels(self, labels) -> GMMParams:
        lab = np.asarray(labels)
        if lab.shape != (self.n,):
            raise ValueError(f"an initial partition needs one label per row ({self.n}), got "
                             f"shape {lab.shape}")
        if (lab.dtype.kind == "i" and lab.size and lab.min() == 0 and lab.max() == self.K - 1
                and np.bincount(lab, minlength=self.K).min() > 0):
            # labels 0..K-1, each used (k-means): they are their own codes (np.unique's
            # inverse), without its sorted copies of n entries
            return self._params_from_resp(codes=lab.astype(np.intp, copy=False))
        uniq, codes = np.unique(lab, return_inverse=True)
        if len(uniq) != self.K:
            raise ValueError(f"the initial partition has {len(uniq)} distinct labels, expected "
                             f"k = {self.K}")
        return self._params_from_resp(codes=codes.astype(np.intp, copy=False))

    def _init_kmeans(self, rng, iters: int = 10) -> GMMParams:
        """k-means++ seeding (Arthur & Vassilvitskii 2007) on the standardised data, then
        Lloyd iterations on the data (stopping at an empty group)."""
        cache, key = self._start_key("kmeans++", rng, iters)
        lab = None if cache is None else cache.get(key)
        if lab is None:
            scale = np.sqrt(self._data_var)
            X = self._X_start
            # seeded on X / scale, computed block by block (no standardised copy of X)
            seeds = (X[kmeans_plusplus(X, self.K, rng, scale=scale)] / scale) * scale
            lab, _ = lloyd(X, seeds, iters, empty="stop")
            if np.bincount(lab, minlength=self.K).min() == 0:
                # fall back to the seeds themselves
                lab, _ = lloyd(X, seeds, 0, empty="stop")
            if np.bincount(lab, minlength=self.K).min() == 0:
                return self._init_random(rng)
            if cache is not None:
                cache[key] = lab
        if cache is not None and lab.min() == 0 and lab.max() == self.K - 1:
            # the partition's moments are shared by the table's structures
            return self._params_from_resp(codes=lab.astype(np.intp, copy=False), cache=cache,
                                          key=key + ("moments", self.structure.diag))
        return self._params_from_labels(lab)

    def _start_key(self, kind, rng, *extra):
        """The shared cache of the structure-free part of a start (``_start_cache``, set
        by :func:`gmm_select` for every model of its table: the k-means++ partition, the
        rows of a random start) and its key, from the state of ``rng`` before any draw:
        the same seed and k give the same partition or rows whatever the structure."""
        cache = getattr(self, "_start_cache", None)
        if cache is None:
            return None, None
        return cache, (kind, self.K, rng.bit_generator.state["state"]["state"]) + extra

    def _start_cov(self) -> np.ndarray:
        """The covariance of a random start: the data covariance (its diagonal for the
        diagonal structures), computed once per model and, under :func:`gmm_select`, once
        per data set (``_start_cache``: every model of the table has the same rows)."""
        cov = getattr(self, "_start_cov_value", None)
        if cov is not None:
            return cov
        cache = getattr(self, "_start_cache", None)
        key = ("data-cov", self.structure.diag)
        cov = None if cache is None else cache.get(key)
        if cov is None:
            cov = np.cov(self._X_start, rowvar=False).reshape(self.d, self.d)
            if self.structure.diag:
                cov = np.diag(np.diag(cov))
            cov.setflags(write=False)
            if cache is not None:
                cache[key] = cov
        self._start_cov_value = cov
        return cov

    #: up to this many complete rows in memory a start's E-step is one kernel call
    #: (:func:`gmm_small.small_estep`), not the engine's chunked pass
    SMALL_ESTEP_ROWS = 20000

    def _start_estep(self, p):
        """(statistics about the centre, log-likelihood) at the start ``p``: the engine's
        E-step, or on small complete in-memory data the same sums from the one-call
        kernel (equal up to rounding) without the engine's preparation."""
        X = self.X
        if self.incomplete or not isinstance(X, np.ndarray) or self.n > self.SMALL_ESTEP_ROWS:
            return self.e_step(p)
        XT = getattr(self, "_XT_small", None)
        if XT is None:
            XT = self._XT_small = np.ascontiguousarray(np.asarray(X, dtype=float).T)
        K, d = self.K, self.d
        N, S1, S2 = np.empty(K), np.empty((K, d)), np.empty((K, d, d))
        ll, status = gmm_small.small_estep(
            XT, np.ascontiguousarray(self.centre, dtype=float),
            np.ascontiguousarray(p.weights, dtype=float),
            np.ascontiguousarray(p.means, dtype=float),
            np.ascontiguousarray(p.covariances, dtype=float), N, S1, S2, np.empty((0, K)),
            False, bool(self.structure.diag))
        if status or not np.isfinite(ll):
            return None, -np.inf
        return Stats(N=N, S1=S1, S2=S2), ll + self.loglike_constant(p)

    def _init_random(self, rng) -> GMMParams:
        """K distinct rows as means, the data covariance for every component."""
        cache, key = self._start_key("random", rng)
        means = None if cache is None else cache.get(key)
        if means is None:
            means = distinct_rows(self._X_start, self.K, rng)
            if cache is not None:
                cache[key] = means
        means = means.copy()
        covs = np.broadcast_to(self._start_cov(), (self.K, self.d, self.d)).copy()
        p = GMMParams(np.full(self.K, 1.0 / self.K), means, covs)
        # one EM step puts the covariances into the structure; its E-step depends on the
        # structure only through diag, so gmm_select's models share it
        hit = None if cache is None else cache.get(key + (self.structure.diag,))
        if hit is None:
            hit = self._start_estep(p)
            if cache is not None:
                cache[key + (self.structure.diag,)] = hit
        stats, ll = hit
        if not np.isfinite(ll):
            raise DataError("the random start has a non-finite log-likelihood")
        return self._start_m_step(stats, p)

    def _hc_start(self, rng) -> HCStart:
        """mclust's agglomeration of the rows (one for every k; kept when it does not
        depend on ``rng``, i.e. up to ``hc.SUBSET`` rows)."""
        st = getattr(self, "_hc_cache", None)
        if st is None:
            st = hc_start(self._X_start, rng)
            if self.n <= HC_SUBSET:
                self._hc_cache = st
        return st

    def _init_hc(self, rng) -> GMMParams:
        """mclust's default start: the partition into k clusters of the model-based
        hierarchical agglomeration (:mod:`emstats.components.hc`), then one M-step from
        it (on the subsample's rows above ``hc.SUBSET`` rows)."""
        st = self._hc_start(rng)
        resp = np.zeros((self.n, self.K))
        resp[st.rows, st.partition(self.K)] = 1.0
        return self._params_from_resp(resp)

    @property
    def default_init(self) -> str:
        """The start of ``fit(init=None)``: ``"all"`` up to ``ALL_MAX_ROWS`` rows, else
        ``"hc+kmeans++"``."""
        return "all" if self.n <= ALL_MAX_ROWS else "hc+kmeans++"

    def _fit_all(self, n_init, cov_type, method, kwargs) -> GMMResults:
        """``init="all"``: a fit (without standard errors) from each of ``ALL_PARTS``, the
        best without a collapsed component (the best of all if every fit collapsed)
        refitted from its estimate with the standard errors; ``n_init`` is the number of
        k-means++ starts (default 5), the others keep theirs (1 and 20);
        ``extra["starts"]`` holds the starts of all three, ``convergence`` the winner's run
        followed by the refit."""
        fits, errors = [], []
        # the options of the covariance apply to the final fit only
        fit_kw = {key: v for key, v in kwargs.items() if key not in ("groups", "n_boot")}
        for kind in ALL_PARTS:
            count = n_init if kind == "kmeans++" else None
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    fits.append(self.fit(init=kind, n_init=count, cov_type=None,
                                         method=method, **fit_kw))
            except (FloatingPointError, np.linalg.LinAlgError) as err:
                errors.append(f"{kind}: {err}")
        if not fits:
            raise FloatingPointError("every strategy of init='all' failed: " + "; ".join(errors))

        def score(r):
            return r.llf if r.log_posterior is None else r.log_posterior

        ok = [r for r in fits if np.isfinite(score(r)) and not r.collapsed] or fits
        best = max(ok, key=score)
        res = self.fit(start_params=best.raw_params, cov_type=cov_type, method=method,
                       **kwargs)
        res.init = f"all ({best.init})"
        # one record: the winner's run, then its refit
        res.convergence = merge_records(best.convergence, res.convergence)
        res.extra["starts"] = [s for r in fits for s in (
            r.extra.get("starts") or [StartRecord(r.init, r.llf, r.convergence.n_iter)])]
        return res

    def initial_starts(self, init, n_init: int | None, rng: np.random.Generator):
        """The starts of a fit (``n_init=None``: the default count of each kind):
        ``"kmeans++"``: ``n_init`` (5) k-means++ seedings refined by a few k-means
        iterations, then one M-step from the partition; ``"random"``: ``n_init`` (5)
        times k distinct rows as means with the data covariance; ``"hc"``: mclust's
        hierarchical partition (one start; above ``hc.SUBSET`` rows, ``n_init`` (1)
        subsamples); ``"short-em"``: ``n_init`` (20) random starts; ``"hc+kmeans++"``
        (the default, ``init=None``): the hierarchical partition and ``n_init - 1`` (5)
        k-means++ starts; an array of n labels: one start from that partition (e.g.
        mclust's hierarchical classes); an n x k array: one start from those
        responsibilities.  Several starts each run a short EM and the best continues.
        Each start is in the canonical order (what the simulation-based methods keep)."""
        if init is None or isinstance(init, str):
            init = self.default_init if init is None else init
            if init == "all":
                raise ValueError("init='all' runs whole fits: use fit(init='all')")
            if init not in INIT_KINDS:
                raise ValueError(f"init must be one of {', '.join(map(repr, INIT_KINDS))}, a "
                                 f"partition (labels) or responsibilities, got {init!r}")
            count = INIT_COUNTS[init] if n_init is None else int(n_init)
            if init == "hc" and self.n <= HC_SUBSET:
                count = 1               # the agglomeration is deterministic
            make = {"kmeans++": self._init_kmeans, "random": self._init_random,
                    "short-em": self._init_random, "hc": self._init_hc}
            starts = []
            if init == "hc+kmeans++":
                starts.append(("hc", self._init_hc(rng).sorted()))
                init, count = "kmeans++", count - 1
            label = "random" if init == "short-em" else init
            seeds = rng.integers(0, 2**63, size=count)
            starts += [(label, make[init](np.random.default_rng(s)).sorted()) for s in seeds]
            return starts
        arr = np.asarray(init)
        if arr.ndim == 2:
            if arr.shape != (self.n, self.K):
                raise ValueError(f"initial responsibilities must have shape "
                                 f"({self.n}, {self.K}), got {arr.shape}")
            return [("responsibilities", self._params_from_resp(arr.astype(float)).sorted())]
        return [("partition", self._params_from_labels(arr).sorted())]

    def check_start(self, start) -> GMMParams:
        """Validated start values (a :class:`GMMParams` or a dict), in canonical order."""
        return self._user_start(start).sorted()

    def _user_start(self, start) -> GMMParams:
        K, d = self.K, self.d
        if isinstance(start, GMMParams):
            w, m, c = start.weights, start.means, start.covariances
        elif isinstance(start, dict):
            try:
                w, m, c = start["weights"], start["means"], start["covariances"]
            except KeyError as err:
                raise ValueError("start values need 'weights', 'means' and 'covariances'") \
                    from err
        else:
            raise ValueError("start_params must be a GMMParams or a dict with 'weights', "
                             "'means' and 'covariances'")
        w = np.asarray(w, dtype=float).ravel()
        m = np.asarray(m, dtype=float).reshape(K, d)
        c = np.asarray(c, dtype=float)
        if c.shape == (d, d):
            c = np.broadcast_to(c, (K, d, d)).copy()
        if c.shape == (K, d) and self.structure.diag:
            c = _diag_stack(c)
        if c.shape != (K, d, d):
            raise ValueError(f"start covariances must have shape ({K}, {d}, {d}), got {c.shape}")
        if w.shape != (K,) or np.any(w <= 0) or not np.isclose(w.sum(), 1.0):
            raise ValueError(f"start weights must be {K} positive numbers summing to 1")
        p = GMMParams(w / w.sum(), m.copy(), _sym(c))
        if self._factors(p) is None:
            raise ValueError("start covariances must be positive definite")
        return p

    # -- simulated E-step (stochastic EM, Monte Carlo EM) -------------------------------
    def sample_stats(self, params: GMMParams, rng: np.random.Generator, size: int) -> Stats:
        """E-step statistics from component labels drawn from the responsibilities.

        Each row's label is drawn ``size`` times from its responsibilities r_i.;
        the statistics are those of :meth:`chunk_stats` (about the centre c) with
        r_ik replaced by the fraction of the draws that chose component k.  With
        ``size = 1`` this is the S-step of stochastic EM (Celeux & Diebolt 1985).
        """
        if self.incomplete:
            raise ValueError("the simulated E-steps (method='stochastic', 'mcem') are not "
                             "implemented with missing values (missing='em')")
        L = self._factors(params)
        if L is None:
            raise np.linalg.LinAlgError("a covariance is not positive definite")
        resp = self._kernel(self.X, params, L, want_resp=True, n_threads=resolve_threads(None),
                            XT=self.XT)[5]
        resp = np.maximum(resp, 0.0)
        resp /= resp.sum(axis=1, keepdims=True)
        size = int(size)
        if size < 1:
            raise ValueError(f"size must be at least 1, got {size}")
        if size == 1:
            u = rng.random(self.n)
            lab = np.minimum((np.cumsum(resp, axis=1) < u[:, None]).sum(axis=1), self.K - 1)
            c = np.zeros_like(resp)
            c[np.arange(self.n), lab] = 1.0
        else:
            c = rng.multinomial(size, resp) / float(size)
        return self._weighted_stats(self.X, c)

    def _weighted_stats(self, X: np.ndarray, c: np.ndarray) -> Stats:
        """N_k, sum c_ik (x_i - c) and sum c_ik (x_i - c)(x_i - c)' for weights c."""
        K, d = self.K, self.d
        N = c.sum(axis=0)
        e = X - self.centre[None]
        S1 = c.T @ e
        S2 = np.empty((K, d, d))
        for k in range(K):
            S2[k] = e.T @ (e * c[:, k:k + 1])
        S2 = _sym(S2)
        if self.structure.diag:
            S2 = _diag_stack(np.diagonal(S2, axis1=1, axis2=2))
        return Stats(N=N, S1=S1, S2=S2)

    def average_stats(self, items: list[Stats], weights) -> Stats:
        """Weighted average of statistics computed at the same parameters."""
        w = np.asarray(weights, dtype=float)
        w = w / w.sum()
        return sum(float(wi) * it for wi, it in zip(w, items, strict=True))

    # -- fitting ----------------------------------------------------------------------
    def results_kwargs(self, params: GMMParams, run, init_label: str = "kmeans++") -> dict:
        """What the results need besides the estimate: the start, the collapsed components,
        the log-likelihood without the prior (MAP-EM reports both)."""
        collapsed = self.collapsed_components(params)
        if collapsed:
            drops = run.convergence.n_decreases
            rounding = (f" (the log-likelihood decreased {drops} time(s) by rounding at the "
                        "singular covariance)") if drops else ""
            warnings.warn(
                f"component(s) {[k + 1 for k in collapsed]} of the {self.covariance} "
                f"mixture with k = {self.K} collapsed (a covariance became numerically "
                "singular, or a component emptied) and was floored; the likelihood is "
                f"unbounded there, and standard errors are not available{rounding}.  Use "
                "fewer components, reg_covar > 0 or prior=True.",
                DegenerateComponentWarning, stacklevel=4,
            )
        kw = {"init": init_label, "collapsed": collapsed}
        if self.prior is not None:
            kw["loglik_data"] = self.loglike_data(params)
        return kw

    def fit(self, *, n_init: int | None = None, cov_type: str | None = "default", init=None,
            start_params=None, method: str | None = None, **kwargs) -> GMMResults:
        """Fit by EM (the options of every model, :meth:`FitMixin.fit
        <emstats.inference.fit.FitMixin.fit>`, with these defaults and meanings).

        Parameters
        ----------
        n_init : int, optional
            Number of starts (default: 6 for ``"hc+kmeans++"``, the hierarchical start
            and 5 k-means++; 5 k-means++ or random starts; 20 short-EM starts; one
            hierarchical start, or that many subsamples; with ``"all"``, the starts of its
            k-means++ part, the others keeping theirs);
            several starts each run a short EM, the best continues (``results.init_logliks``
            holds the short runs' log-likelihoods).
        init : {"all", "hc+kmeans++", "hc", "kmeans++", "short-em", "random"}, array_like
            Default: ``"all"`` up to 10,000 rows, ``"hc+kmeans++"`` above or when ``n_init``
            is given (chosen by measurement, docs/gmm.md).  ``"all"``: the fits from
            ``"hc"``, ``"kmeans++"`` and ``"short-em"`` each run to convergence, and the
            best without a collapsed component is refitted with the standard errors
            (``results.init`` names the winner).  ``"hc+kmeans++"``: mclust's start and
            ``n_init - 1`` k-means++ starts compete in the short EM.  ``"hc"``: mclust's
            default start, the partition of the model-based hierarchical agglomeration
            (Fraley 1998; VVV criterion on the standardised, SVD-rotated data; on a
            subsample of 2000 rows above that; quantile classes for one variable), see
            :mod:`emstats.components.hc`.  ``"kmeans++"``: k-means++ seeding (seeded by
            ``seed``) refined by a few k-means iterations, then one M-step from the
            partition.  ``"short-em"``: many random starts (Biernacki, Celeux & Govaert
            2003), each a short EM, the best continued.  ``"random"``: k distinct rows as
            means with the data covariance.  An array of n labels is an initial partition
            (e.g. mclust's hierarchical classes), an n x k array initial responsibilities
            (one start).
        start_params : GMMParams, optional
            Starting parameters (one start; ``n_init`` and ``init`` are then unused).
        cov_type : {"louis", "numerical", "bootstrap", "sem"} or None
            Default: Louis' method for every structure without a prior, a numerical
            Hessian of the log-posterior with a prior.
        method : str, optional
            Default: Louis-Newton without a prior and without missing values up to
            ``NEWTON_MAX_ROWS`` (20,000) rows and ``NEWTON_MAX_PARAMS`` (50) free
            parameters, SQUAREM otherwise (there the Newton finish's repeated Louis passes
            cost more than the SQUAREM cycles they save; the standard errors then take one
            Louis pass at the estimate).  ``"stochastic"``
            (Celeux & Diebolt's stochastic EM; the chain is in
            ``res.convergence.extra["chain"]``) and ``"mcem"`` run from one k-means++ or
            random start and keep its component order.
        **kwargs
            ``maxiter``, ``tol``, ``ptol``, ``seed``, ``n_threads``, ``progress``,
            ``callback``, ``method_options``, ``n_boot``: as for every model.

        Returns
        -------
        GMMResults
        """
        if cov_type == "default":
            cov_type = "louis" if self.has_louis else "numerical"
        simulated = method in ("stochastic", "mcem")
        if simulated:
            if init is None:
                init = "kmeans++"
            if start_params is None and not (
                    isinstance(init, str) and init in ("kmeans++", "random", "hc")):
                raise ValueError(f"method={method!r} runs from one start: init must be "
                                 "'kmeans++', 'random' or 'hc', or pass start_params")
            n_init = 1
        if start_params is None and init is None:
            # a number of starts asked for: that many of "hc+kmeans++"
            init = self.default_init if n_init is None else "hc+kmeans++"
        if start_params is None and isinstance(init, str) and init == "all":
            return self._fit_all(n_init, cov_type, method, kwargs)
        if start_params is not None:
            label = "user"
        elif isinstance(init, str):
            label = init
        else:
            label = "responsibilities" if np.ndim(init) == 2 else "partition"
        if n_init is None:
            n_init = INIT_COUNTS.get(init, 1) if isinstance(init, str) else 1
        opts = FitOptions(n_init=n_init, cov_type=cov_type, init=init,
                          start_params=start_params, method=method, **kwargs)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            res = fit_model(self, GMMResults, nobs=self.n, df_model=self.n_free,
                            results_kwargs=lambda p, run: self.results_kwargs(p, run, label),
                            options=opts)
        for w in caught:
            if res.collapsed and issubclass(w.category,
                                            (InformationWarning, LikelihoodDecreaseWarning)):
                continue    # singular information, rounding: the degenerate warning says it
            warnings.warn(w.message, stacklevel=2)   # at the user's call of fit()
        chain = res.convergence.extra.get("chain") if simulated else None
        if chain is not None and len(chain) and not np.allclose(
                chain[-1], res.model.to_inference(res.model.canonical(
                    res.model.from_inference(chain[-1])))):
            warnings.warn("the components of the simulated-EM chain are not in the canonical "
                          "order (labels switched during the chain); the estimate is reported "
                          "in the canonical order, the chain in the order of the start",
                          UserWarning, stacklevel=2)
        return res


# ----------------------------------------------------------------------------------
# results
# ----------------------------------------------------------------------------------

class _LouisWindows:
    """The kernel on a chunk of complete rows, window by window: iterating gives the pairs
    ``(rows, responsibilities)`` of each window of LOUIS_WINDOW rows (a transposed copy of
    the window for the kernel, its responsibilities: fixed-size blocks, never n x K); the
    sums of the windows, N_k, sum r (x - mu_k), sum r (x - mu_k)(x - mu_k)' and the
    log-likelihood, are then :meth:`totals`.  Each window is computed once, by the first
    pass over them (or by :meth:`totals` when nothing iterated)."""

    def __init__(self, model, params, chunk):
        self.model, self.params, self.chunk = model, params, chunk
        self.L = model._factors(params)
        if self.L is None:
            raise np.linalg.LinAlgError("a covariance is not positive definite")
        self.sums = None

    def __iter__(self):
        if self.sums is not None:
            raise RuntimeError("the windows of Louis' pass are computed once")
        m, X = self.model, self.chunk["X"]
        K, d = m.K, m.d
        N, S1, S2, ll = np.zeros(K), np.zeros((K, d)), np.zeros((K, d, d)), 0.0
        n = X.shape[0]
        whole = n <= LOUIS_WINDOW
        for a in range(0, n, LOUIS_WINDOW):
            Xw = X[a:a + LOUIS_WINDOW]
            XT = self.chunk["XT"] if whole else None     # else the kernel transposes Xw
            out = m._kernel(Xw, self.params, self.L, want_resp=True,
                            n_threads=self.chunk.n_threads, XT=XT)
            if out[4] or not np.isfinite(out[3]):
                raise np.linalg.LinAlgError("a covariance is not positive definite or the "
                                            "log-likelihood is not finite")
            N += out[0]
            S1 += out[1]
            S2 += out[2]
            ll += out[3]
            yield Xw, out[5]
        self.sums = (N, S1, S2, float(ll))

    def totals(self):
        if self.sums is None:
            for _ in self:
                pass
        return self.sums


def map_log_responsibility_of(resp: np.ndarray) -> float:
    """sum_i log r_i,MAP: the classification term of ICL."""
    top = resp[np.arange(resp.shape[0]), np.argmax(resp, axis=1)]
    with np.errstate(divide="ignore"):
        return float(np.log(np.maximum(top, np.finfo(float).tiny)).sum())


class GMMResults(EMResults):
    """Results of a Gaussian mixture fit.

    Components are ordered by their means (lexicographically, first coordinate
    first), so the labels do not depend on the starting values.

    Attributes
    ----------
    init_logliks : ndarray
        Final log-likelihood of every start (its spread shows how multimodal the
        likelihood is).
    collapsed : list of int
        Components (0-based) whose covariance had to be floored.
    init : str
        The kind of start the estimate came from.
    log_posterior : float or None
        With a prior (MAP-EM), the log-posterior at the estimate (``llf`` is the
        log-likelihood there); None otherwise.
    """

    _kept_without_data = ("icl",)

    def __init__(self, model, params, cov, *, init: str = "kmeans++", collapsed=(),
                 loglik_data: float | None = None, **kwargs):
        self.log_posterior = None
        if loglik_data is not None:
            # the engine maximised the log-posterior; report the log-likelihood as llf
            self.log_posterior = float(kwargs["llf"])
            kwargs["llf"] = loglik_data
        super().__init__(model, params, cov, **kwargs)
        self.init = init
        self.collapsed = sorted(int(k) for k in collapsed)

    @property
    def init_logliks(self) -> np.ndarray:
        """Log-likelihood of every start after its short EM run (of the one start: the
        final log-likelihood); their spread shows how multimodal the likelihood is."""
        starts = self.extra.get("starts")
        if not starts:
            return np.array([self.llf if self.log_posterior is None else self.log_posterior])
        return np.array([s.loglik for s in starts])

    @property
    def _p(self) -> GMMParams:
        return self.model.from_inference(self.params.to_numpy())

    @property
    def k(self) -> int:
        return self.model.K

    @property
    def covariance_type(self) -> str:
        """mclust name of the covariance structure."""
        return self.model.covariance

    @property
    def weights(self) -> pd.Series:
        """Mixing proportions, indexed by component (1..K)."""
        return pd.Series(self._p.weights, index=pd.RangeIndex(1, self.k + 1, name="component"),
                         name="weight")

    @property
    def weights_se(self) -> pd.Series:
        """Standard errors of the weights (weight 1 by the delta method)."""
        K = self.k
        cov = self._cov[:K - 1, :K - 1]
        se1 = math.sqrt(max(float(cov.sum()), 0.0)) if K > 1 else 0.0
        se = np.concatenate([[se1], np.sqrt(np.diag(cov))])
        return pd.Series(se, index=self.weights.index, name="bse")

    @property
    def means(self) -> pd.DataFrame:
        """Component means, components x variables."""
        return pd.DataFrame(self._p.means, index=pd.RangeIndex(1, self.k + 1, name="component"),
                            columns=self.model.columns)

    @property
    def covariances(self) -> pd.DataFrame:
        """Covariance matrices stacked: rows (component, variable), columns variables."""
        cols = self.model.columns
        K, d = self.k, self.model.d
        idx = pd.MultiIndex.from_product([range(1, K + 1), cols], names=["component", "variable"])
        return pd.DataFrame(self._p.covariances.reshape(K * d, d), index=idx, columns=cols)

    @property
    def covariances_se(self) -> pd.DataFrame:
        """Standard errors of the covariance elements, laid out as :attr:`covariances`.

        By the delta method, J V J' with J = d Sigma / d (covariance coordinates) and V
        their covariance; for the linear structures the coordinates are the elements
        themselves (J holds 0/1 entries), for the others J is the analytic Jacobian of
        Sigma_k = lambda_k D_k A_k D_k'.
        """
        m = self.model
        K, d = self.k, m.d
        off = K - 1 + K * d
        J = m.structure.jacobian(self.params.to_numpy()[off:]).reshape(K * d * d, -1)
        V = self._cov[off:, off:]
        var = np.einsum("ip,pq,iq->i", J, V, J)
        se = np.sqrt(np.maximum(var, 0.0))         # NaN stays NaN
        return pd.DataFrame(se.reshape(K * d, d), index=self.covariances.index,
                            columns=m.columns)

    def covariance(self, k: int) -> pd.DataFrame:
        """Covariance matrix of component ``k`` (1-based), labelled.

        Parameters
        ----------
        k : int
            The component, 1..K.
        """
        if not 1 <= int(k) <= self.k:
            raise ValueError(f"component must be in 1..{self.k}, got {k!r}")
        cols = self.model.columns
        return pd.DataFrame(self._p.covariances[int(k) - 1], index=cols, columns=cols)

    @property
    def n_free(self) -> int:
        return self.model.n_free

    @property
    def bic_mclust(self) -> float:
        """mclust's BIC, 2 llf - npar log(n): larger is better (``bic`` is -1 times this)."""
        return -self.bic

    @cached_property
    def icl(self) -> float:
        """Integrated completed likelihood in mclust's sign (larger is better).

        ICL = BIC_mclust + 2 sum_i sum_k c_ik log r_ik with c the MAP classification.
        """
        pass_over_data = getattr(self.model, "map_log_responsibility", None)
        if pass_over_data is not None:      # rows not in memory (out of core)
            return self.bic_mclust + 2.0 * pass_over_data(self._p)
        return self.bic_mclust + 2.0 * map_log_responsibility_of(self.predict_proba().to_numpy())

    # -- prediction -------------------------------------------------------------------
    def _new_data(self, data):
        m = self.model
        if data is None:
            return m.X, m.row_labels
        if m.design_info is not None and isinstance(data, (pd.DataFrame, dict)):
            frame = pd.DataFrame(data) if isinstance(data, dict) else data
            X = m.design_info.matrix(frame, na="keep" if m.missing == "em" else "raise")
            labels = frame.index
        elif isinstance(data, pd.DataFrame):
            missing = [c for c in m.columns if c not in data.columns]
            if missing:
                raise DataError(f"new data lack column(s) {missing}")
            X = data[m.columns].to_numpy(dtype=float)
            labels = data.index
        else:
            X = np.asarray(data, dtype=float)
            if X.ndim == 1:
                X = X[None, :] if m.d > 1 else X[:, None]
            labels = pd.RangeIndex(X.shape[0])
        if X.ndim != 2 or X.shape[1] != m.d:
            raise DataError(f"new data must have {m.d} columns, got shape {X.shape}")
        em = m.missing == "em"
        bad = np.isinf(X).any(axis=1) if em else ~np.all(np.isfinite(X), axis=1)
        if bad.any():
            what = "infinite" if em else "missing or infinite"
            raise DataError(f"new data have {what} values in rows "
                            f"{describe_rows(pd.Index(labels), bad)}"
                            + ("" if em else " (a model built with missing='em' accepts NaN)"))
        return np.ascontiguousarray(X), labels

    def _pass(self, data, resp=False, ll=False):
        X, labels = self._new_data(data)
        p = self._p
        if self.model.missing == "em" and np.isnan(X).any():
            r, llo = self.model._rows_pass(X, p)
            return r, llo, labels
        L = self.model._factors(p)
        out = self.model._kernel(X, p, L, want_resp=resp, want_ll=ll,
                                 n_threads=resolve_threads(None))
        return out[5], out[6], labels

    def impute(self, m: int | None = 20, seed=0, newdata=None):
        """Completed data sets: the missing values of the model's rows (or of ``newdata``)
        filled from the fitted mixture.

        Parameters
        ----------
        m : int or None
            ``None``: one data set with each missing value replaced by its conditional
            mean given the row's observed values, sum_k r_ik E[x_m | x_o, k].  An
            integer: ``m`` data sets drawn from the posterior predictive distribution:
            for each, the parameters are drawn from the normal approximation at the MLE
            (the estimated covariance of the inference coordinates, redrawn while the
            draw is not a valid mixture: weights in (0, 1), positive-definite
            covariances), then each row's component from its responsibilities and its
            missing values from that component's conditional normal.
        seed : int or numpy Generator, optional
            Seed of the draws (``m`` an integer).
        newdata : array_like or DataFrame, optional
            Rows to complete instead of the model's.

        Returns
        -------
        pandas.DataFrame, or a list of ``m`` DataFrames
        """
        model = self.model
        if model.missing != "em":
            raise ValueError("impute() needs a model built with missing='em'")
        X, labels = self._new_data(newdata)
        cols = model.columns
        if m is None:
            return pd.DataFrame(model.complete_rows(self._p, X), index=labels, columns=cols)
        if isinstance(m, bool) or not isinstance(m, (int, np.integer)) or m < 1:
            raise ValueError(f"m must be a positive integer or None, got {m!r}")
        if self._cov is None or not np.all(np.isfinite(self._cov)):
            raise ValueError("impute(m) draws the parameters from their approximate posterior "
                             "and needs standard errors: fit with cov_type='louis'")
        rng = np.random.default_rng(seed)
        theta = self.params.to_numpy()
        w, v = np.linalg.eigh(_sym(self._cov))
        F = v * np.sqrt(np.maximum(w, 0.0))
        out = []
        for _ in range(int(m)):
            for _ in range(1000):
                p = model.from_inference(theta + F @ rng.standard_normal(theta.size))
                if np.all(p.weights > 0) and model._factors(p) is not None:
                    break
            else:  # pragma: no cover - a near-singular fit
                raise ValueError("no valid mixture in 1000 draws from the normal approximation")
            out.append(pd.DataFrame(model.complete_rows(p, X, rng), index=labels, columns=cols))
        return out

    def predict_proba(self, newdata=None) -> pd.DataFrame:
        """Posterior component probabilities (responsibilities), rows x components, of the
        model's rows or of ``newdata``.

        Parameters
        ----------
        newdata : DataFrame or array_like, optional
            New rows (through the formula for a model built from one); default the
            estimation rows."""
        r, _, labels = self._pass(newdata, resp=True)
        return pd.DataFrame(r, index=labels,
                            columns=pd.RangeIndex(1, self.k + 1, name="component"))

    def predict(self, newdata=None, which: str = "mean"):
        """Predictions for the model's rows or ``newdata`` (the package's one predict
        vocabulary, ``docs/predict.md``).

        Parameters
        ----------
        newdata : array_like or DataFrame, optional
            New rows (through the formula for a model built from one); default the estimation rows.
        which : {"mean", "label", "proba", "logpdf"}
            ``"mean"`` (default): the posterior mean of the component mean,
            sum_k r_ik mu_k (rows x variables); ``"label"``: the most probable
            component (1..K) of each row, the clustering (scikit-learn's ``predict``);
            ``"proba"``: the posterior probabilities (:meth:`predict_proba`);
            ``"logpdf"``: the mixture's log-density (:meth:`score_samples`).
        """
        if which == "proba":
            return self.predict_proba(newdata)
        if which == "logpdf":
            return self.score_samples(newdata)
        if which not in ("label", "mean"):
            raise ValueError(f"which must be 'label', 'proba', 'mean' or 'logpdf', got "
                             f"{which!r}")
        r = self.predict_proba(newdata)
        if which == "mean":
            return pd.DataFrame(r.to_numpy() @ self._p.means, index=r.index,
                                columns=self.model.columns)
        return pd.Series(np.argmax(r.to_numpy(), axis=1) + 1, index=r.index, name="component")

    def score_samples(self, data=None) -> pd.Series:
        """Log-density of the mixture at each row.

        Parameters
        ----------
        data : DataFrame or array_like, optional
            Rows to evaluate (through the formula for a model built from one); default the
            estimation rows.
        """
        _, ll, labels = self._pass(data, ll=True)
        return pd.Series(ll, index=labels, name="logpdf")

    def score(self, data=None) -> float:
        """Mean log-density per row (as scikit-learn's ``score``).

        Parameters
        ----------
        data : DataFrame or array_like, optional
            Rows to evaluate (through the formula for a model built from one); default the
            estimation rows.
        """
        return float(self.score_samples(data).mean())

    def sample(self, n: int, seed=None) -> tuple[pd.DataFrame, np.ndarray]:
        """Draw ``n`` rows from the fitted mixture.

        Parameters
        ----------
        n : int
            Number of draws.
        seed : int or numpy.random.Generator, optional
            Random seed.

        Returns
        -------
        draws : DataFrame
            The simulated rows.
        components : ndarray
            The component (1..K) of each draw.
        """
        rng = np.random.default_rng(seed)
        p = self._p
        comp = rng.choice(self.k, size=int(n), p=p.weights / p.weights.sum())
        L = np.linalg.cholesky(p.covariances)
        z = rng.standard_normal((int(n), self.model.d))
        x = p.means[comp] + np.einsum("nab,nb->na", L[comp], z)
        return pd.DataFrame(x, columns=self.model.columns), comp + 1

    def density(self, data) -> np.ndarray:
        """Mixture density (not log) at the rows of ``data``.

        Parameters
        ----------
        data : DataFrame or array_like
            The rows (through the formula for a model built from one)."""
        return np.exp(self.score_samples(data).to_numpy())

    # -- presentation -----------------------------------------------------------------
    def _summary_rows(self):
        m = self.model
        left = [("Components:", [str(self.k)]), ("Covariance:", [m.covariance])]
        right = [("BIC (mclust):", [f"{self.bic_mclust:#.6g}"]),
                 ("ICL (mclust):", [f"{self.icl:#.6g}"])]
        if m.n_dropped:
            right.append(("Rows dropped (NA):", [str(m.n_dropped)]))
        if m.incomplete:
            left.append(("Incomplete rows:", [f"{int(m.pattern_counts.sum())} "
                                              f"({m.pattern_counts.size} patterns)"]))
        return left, right

    def summary(self, alpha: float = 0.05, title: str | None = None):
        """Summary table; see :meth:`EMResults.summary`.

        BIC there is -2 llf + npar log n (smaller is better); ``BIC (mclust)`` is its
        negative (larger is better).

        Parameters
        ----------
        alpha : float
            Significance level of the confidence intervals (default 0.05).
        title : str, optional
            Title of the table."""
        s = super().summary(alpha=alpha, title=title or
                            f"Gaussian mixture ({self.model.covariance}, k = {self.k})")
        notes = [f"Components ordered by their means (first variable first). Starts: "
                 f"{len(self.init_logliks)} ({self.init}); log-likelihoods range "
                 f"{np.min(self.init_logliks):.6f} .. {np.max(self.init_logliks):.6f}."]
        if self.model.incomplete:
            notes.append("Missing values integrated out in the E-step (MLE under missing at "
                         "random); standard errors from the observed information.")
        if self.model.prior is not None:
            notes.append("MAP-EM with a conjugate prior: Log-Likelihood is at the MAP estimate; "
                         "standard errors from a numerical Hessian of the log-posterior.")
        if self.collapsed:
            notes.append(f"WARNING: component(s) {[k + 1 for k in self.collapsed]} collapsed.")
        s.add_extra_txt(self._summary_notes() + notes)   # (add_extra_txt replaces)
        return s

    def _marginal_density(self, pts: np.ndarray, idx) -> np.ndarray:
        """Density of the marginal mixture of variables ``idx`` at the rows of ``pts``."""
        p = self._p
        dens = np.zeros(pts.shape[0])
        q = len(idx)
        for w, mu, S in zip(p.weights, p.means, p.covariances, strict=True):
            S2 = S[np.ix_(idx, idx)]
            e = pts - mu[idx]
            maha = np.einsum("na,ab,nb->n", e, np.linalg.inv(S2), e)
            dens += w * np.exp(-0.5 * maha) / math.sqrt((2.0 * math.pi) ** q *
                                                        np.linalg.det(S2))
        return dens

    def plot_density(self, ax=None, variables=(0, 1), levels: int = 10, grid: int = 200,
                     points: bool = True):
        """Contours of the fitted density of two variables (matplotlib required).

        With more than two variables the contours are those of the two-dimensional
        marginal, itself a Gaussian mixture (the means and covariance blocks of the two
        variables).

        Parameters
        ----------
        ax : matplotlib Axes, optional
            Axes to draw on (default: a new figure).
        variables : pair of int or str
            The two variables (positions or names).
        levels : int
            Number of contour levels.
        grid : int
            Grid points per axis.
        points : bool
            Also draw the data, coloured by their most probable component.

        Returns
        -------
        matplotlib Axes
        """
        import matplotlib.pyplot as plt

        m = self.model
        if m.d < 2:
            raise ValueError("plot_density needs at least two variables")
        idx = [m.columns.index(v) if isinstance(v, str) else int(v) for v in variables]
        if len(idx) != 2 or len(set(idx)) != 2 or not all(0 <= j < m.d for j in idx):
            raise ValueError(f"variables must name two different variables of {m.columns}")
        if ax is None:
            _, ax = plt.subplots()
        X2 = m.X[:, idx]
        lo, hi = X2.min(axis=0), X2.max(axis=0)
        pad = 0.1 * (hi - lo)
        g0 = np.linspace(lo[0] - pad[0], hi[0] + pad[0], grid)
        g1 = np.linspace(lo[1] - pad[1], hi[1] + pad[1], grid)
        G0, G1 = np.meshgrid(g0, g1)
        pts = np.column_stack([G0.ravel(), G1.ravel()])
        dens = self._marginal_density(pts, idx)
        ax.contour(G0, G1, dens.reshape(G0.shape), levels=levels, cmap="Greys",
                   linewidths=0.8)
        labels = self.predict(which="label").to_numpy() if points else None
        w = np.asarray(self.weights, dtype=float)
        mu = np.asarray(self.means, dtype=float)[:, idx]
        for j in range(len(w)):
            colour = f"C{j % 10}"
            if points:
                sel = labels == j + 1
                ax.scatter(X2[sel, 0], X2[sel, 1], s=8, color=colour, alpha=0.7)
            ax.plot(mu[j, 0], mu[j, 1], marker="X", ms=10, color=colour, mec="black",
                    ls="none", label=f"component {j + 1} (weight {w[j]:.2f})")
        ax.set_xlabel(m.columns[idx[0]])
        ax.set_ylabel(m.columns[idx[1]])
        ax.set_title(f"Gaussian mixture ({self.covariance_type}, k = {len(w)}): density "
                     "contours" + (", points by most probable component" if points else ""),
                     fontsize="medium")
        ax.legend(fontsize="small", title="means (X)")
        return ax


# ----------------------------------------------------------------------------------
# model selection
# ----------------------------------------------------------------------------------

class GMMSelection(SavedResults):
    """Model selection by BIC over numbers of components and covariance structures.

    Attributes
    ----------
    table : DataFrame
        One row per fitted model: ``covariance``, ``k``, ``loglik``, ``npar``,
        ``bic`` (mclust's sign: 2 loglik - npar log n, larger is better),
        ``bic_min`` (-2 loglik + npar log n, smaller is better), ``icl`` (mclust's
        sign), ``degenerate`` (a component collapsed: such fits are not selected),
        ``converged``, ``failed`` and ``error`` (a fit that raised is reported with its
        reason, its criteria NaN, and never selected).
    best : GMMResults
        The fit with the largest BIC or ICL (``criterion``; mclust's sign) among
        non-degenerate fits, refitted from its estimate with standard errors.
    fits : dict
        The fitted models, keyed by (structure, k).
    criterion : {"bic", "icl"}
        What selected ``best``.
    """

    def __init__(self, table, best, fits, criterion: str = "bic"):
        self.table = table
        self.best = best
        self.fits = fits
        self.criterion = criterion

    def remove_data(self) -> None:
        """Drop the data from the selected fit and the models of the table."""
        self.best.remove_data()
        self.fits = {key: without_data(m) for key, m in self.fits.items()}
        self.data_removed = True

    @property
    def bic_table(self) -> pd.DataFrame:
        """BIC (mclust's sign) as a k x covariance table, like ``mclustBIC``."""
        return self.table.pivot(index="k", columns="covariance", values="bic")

    @property
    def icl_table(self) -> pd.DataFrame:
        """ICL (mclust's sign) as a k x covariance table, like ``mclustICL``."""
        return self.table.pivot(index="k", columns="covariance", values="icl")

    def plot(self, ax=None, criterion: str | None = None):
        """The criterion (mclust's sign, larger is better) against k, one line per
        structure, its formula in the title and the selected model marked.

        Parameters
        ----------
        ax : matplotlib.axes.Axes, optional
            Axes to draw on (default: a new figure).
        criterion : {"bic", "icl"}, optional
            The criterion plotted (default: the one that selected :attr:`best`).

        Returns
        -------
        matplotlib Axes
        """
        from ..inference.plots import selection

        crit = (criterion or self.criterion).lower()
        if crit not in ("bic", "icl"):
            raise ValueError(f"criterion must be 'bic' or 'icl', got {criterion!r}")
        tab = self.bic_table if crit == "bic" else self.icl_table
        b = self.best
        if crit == self.criterion:
            k, cov = b.k, b.covariance_type
        else:  # mark this criterion's own choice
            ok = self.table[~self.table["failed"] & ~self.table["degenerate"]]
            row = ok.sort_values(crit, ascending=False).iloc[0]
            k, cov = int(row["k"]), row["covariance"]
        return selection(tab, k, cov, criterion=crit, ax=ax)

    def __repr__(self):
        b = self.best
        return (f"GMMSelection(best={b.model.covariance}, k={b.k}, bic={b.bic_mclust:.6f}; "
                f"{len(self.table)} models)")


def gmm(spec=None, k=None, covariance: str = "VVV", *, data=None, reg_covar: float = 0.0,
        prior=None, missing: str = "raise") -> GaussianMixture:
    """Gaussian mixture model from an array, a DataFrame or a one-sided formula.

    Parameters
    ----------
    spec : array_like, DataFrame or str
        The data (rows x variables), or a one-sided formula such as
        ``"~ eruptions + waiting"`` evaluated in ``data``.
    k : int
        Number of components.
    covariance : str
        mclust structure name or scikit-learn alias; see :class:`GaussianMixture`.
    data : DataFrame, optional
        Data for a formula (or the data themselves when ``spec`` is omitted).
    reg_covar : float
        Ridge added to the covariances' diagonal in each M-step (default 0).
    prior : bool or dict, optional
        Conjugate prior for MAP-EM (mclust's ``priorControl()``).
    missing : {"raise", "drop", "em"}
        See :class:`GaussianMixture`; ``"em"`` integrates the missing values out.

    Returns
    -------
    GaussianMixture
        Call ``.fit()`` on it.

    Examples
    --------
    >>> import emstats
    >>> faithful = emstats.datasets.load("faithful")
    >>> res = emstats.gmm("~ eruptions + waiting", data=faithful, k=2).fit()
    >>> round(res.llf, 4)
    -1130.264
    """
    if k is None:
        raise ValueError("k (the number of components) is required")
    if spec is None:
        if data is None:
            raise ValueError("no data: pass an array, a DataFrame or a formula with data=")
        spec, data = data, None
    prepared = prepare_data(spec, data, missing)
    return GaussianMixture(None, k, covariance, reg_covar=reg_covar, prior=prior,
                           missing=missing, _prepared=prepared)


#: what a fit of gmm_select's table may raise and the table reports (mclust's NA):
#: numerical failures and data that cannot carry the model
SELECT_FAILURES = (ValueError, ArithmeticError, np.linalg.LinAlgError, DataError, RuntimeError)


def _select_fit(model, init, *, n_init, seed, method, maxiter, tol, n_threads):
    """One fit of gmm_select's table, without standard errors: (loglik, canonical
    parameters, sum_i log r_i,MAP, converged).  Plain EM on in-memory data without a
    prior runs in :class:`~emstats.models._gmm_fast.SmallEM` (the same starts, short runs,
    stopping rule and M-step as ``fit``, without the engine's per-iteration overhead)."""
    from ._gmm_fast import SmallEM, applicable

    if applicable(model, method):
        kind = model.default_init if init is None else init
        if isinstance(kind, str) and kind == "all":
            # as fit(init="all"): each strategy to convergence, the best fit without a
            # collapsed component kept (the tight tail run only where it can matter)
            out = SmallEM(model).fit_all(ALL_PARTS, n_init, seed, maxiter, tol)
        else:
            out = SmallEM(model).fit(init, n_init, seed, maxiter, tol)
        if not np.isfinite(out.loglik):
            raise FloatingPointError(f"non-finite log-likelihood {out.loglik}")
        return out.loglik, out.params, out.map_log_resp, out.converged
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateComponentWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)
        res = model.fit(init=init, n_init=n_init, seed=seed, method=method, maxiter=maxiter,
                        tol=tol, cov_type=None, n_threads=n_threads)
    if not np.isfinite(res.llf):
        raise FloatingPointError(f"non-finite log-likelihood {res.llf}")
    return (res.llf, res.raw_params, (res.icl - res.bic_mclust) / 2.0,
            res.convergence.converged)


def gmm_select(spec=None, k=range(1, 10), covariance=("VVV", "EEE", "VVI", "VII", "EII", "EEI"),
               *, data=None, init=None, n_init: int | None = None, seed: int = 0,
               method: str = "em", maxiter: int = 5000, tol: float = 1e-10,
               reg_covar: float = 0.0, prior=None, missing: str = "raise",
               n_threads: int | None = None, criterion: str = "bic") -> GMMSelection:
    """Fit mixtures for every k and covariance structure and select by BIC or ICL.

    BIC follows mclust: 2 loglik - npar log(n), larger is better (the table also
    gives ``bic_min`` = -2 loglik + npar log(n), the sign of statsmodels and
    scikit-learn, smaller is better).

    Parameters
    ----------
    spec, data, missing :
        As in :func:`gmm`.
    k : iterable of int
        Numbers of components.
    covariance : iterable of str
        Structures to try.
    init : str or mapping, optional
        As in :meth:`GaussianMixture.fit` (default ``"all"`` up to 10,000 rows,
        ``"hc+kmeans++"`` above; the hierarchical agglomeration is computed once for all
        k and structures); a mapping k ->
        initial partition gives a partition per k (e.g. mclust's hierarchical classes).
    n_init, seed, method, maxiter, tol, reg_covar, prior, n_threads :
        As in :meth:`GaussianMixture.fit` and :func:`gmm`.
    criterion : {"bic", "icl"}
        What selects ``best``: BIC, or Biernacki, Celeux & Govaert's ICL (BIC plus twice
        the log posterior probabilities of the MAP classification, which favours
        well-separated clusters), both in mclust's sign.

    Returns
    -------
    GMMSelection
    """
    criterion = str(criterion).lower()
    if criterion not in ("bic", "icl"):
        raise ValueError(f"criterion must be 'bic' or 'icl', got {criterion!r}")
    if spec is None:
        if data is None:
            raise ValueError("no data: pass an array, a DataFrame or a formula with data=")
        spec, data = data, None
    prepared = prepare_data(spec, data, missing)
    ks = list(k) if not isinstance(k, (int, np.integer)) else [int(k)]
    covs = [covariance] if isinstance(covariance, str) else list(covariance)
    if not ks or not covs:
        raise ValueError("give at least one k and one covariance structure")
    bad = [kk for kk in ks if isinstance(kk, (bool, np.bool_))
           or not isinstance(kk, (int, np.integer)) or kk < 1]
    if bad:
        raise ValueError("k must be positive integers (numbers of components), got "
                         + ", ".join(map(repr, bad)))
    rows, fits, estimates = [], {}, {}
    n = prepared[0].shape[0]
    hc_shared, start_shared = None, {}
    for cv in covs:
        for kk in ks:
            name = resolve_structure(cv, prepared[0].shape[1]) if isinstance(cv, str) else cv
            row = {"covariance": name, "k": kk, "loglik": np.nan, "npar": np.nan,
                   "bic": np.nan, "bic_min": np.nan, "icl": np.nan, "degenerate": False,
                   "converged": False, "failed": False, "error": ""}
            try:
                model = GaussianMixture(None, kk, cv, reg_covar=reg_covar, prior=prior,
                                        missing=missing, _prepared=prepared)
                name = row["covariance"] = model.covariance
                if hc_shared is not None:
                    model._hc_cache = hc_shared      # one agglomeration for every fit
                model._start_cache = start_shared    # one k-means++ partition per k and seed
                this_init = init[kk] if isinstance(init, dict) else init
                ll, params, icl_term, converged = _select_fit(
                    model, this_init, n_init=n_init, seed=seed, method=method,
                    maxiter=maxiter, tol=tol, n_threads=n_threads)
                hc_shared = getattr(model, "_hc_cache", None)
                degenerate = bool(model.collapsed_components(params))
            except SELECT_FAILURES as err:
                row.update(failed=True, error=f"{type(err).__name__}: {err}")
                rows.append(row)
                continue
            npar = model.n_free
            bic = 2.0 * ll - npar * math.log(n)
            row.update(loglik=ll, npar=npar, bic=bic, bic_min=-bic, icl=bic + 2.0 * icl_term,
                       degenerate=degenerate, converged=converged)
            rows.append(row)
            fits[(name, kk)] = model
            estimates[(name, kk)] = params
    table = pd.DataFrame(rows)
    done = table[~table["failed"]]
    if not len(done):
        raise FloatingPointError("every fit failed: " + "; ".join(
            f"{r.covariance}, k = {r.k}: {r.error}" for r in table.itertuples()))
    ok = done[~done["degenerate"]]
    order = (ok if len(ok) else done).sort_values(criterion, ascending=False)
    # the selected model with its standard errors, from its estimate; should that refit
    # fail, the row is marked failed and the next best is taken
    best = None
    for idx, pick in order.iterrows():
        key = (pick["covariance"], int(pick["k"]))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DegenerateComponentWarning)
                best = fits[key].fit(start_params=estimates[key], method=method,
                                     maxiter=maxiter, tol=tol, n_threads=n_threads)
            break
        except SELECT_FAILURES as err:
            table.loc[idx, "failed"] = True
            table.loc[idx, "error"] = f"refit with standard errors: {type(err).__name__}: {err}"
    if best is None:
        raise FloatingPointError("every fit failed: " + "; ".join(
            f"{r.covariance}, k = {r.k}: {r.error}" for r in table.itertuples()))
    return GMMSelection(table, best, fits, criterion)


# ----------------------------------------------------------------------------------
# online EM
# ----------------------------------------------------------------------------------

class GMMAdapter:
    """Online EM statistics of a Gaussian mixture (see :mod:`emstats.em.online`).

    The first batch gives the model (its columns, scale, structure and the centre c of
    its natural statistics: the batch's column means) and the starting values: a fit
    from ``n_init`` k-means++ starts on that batch, components in canonical order,
    which is kept for the rest of the stream (no relabelling).  The statistics of a
    batch are the model's own :meth:`GaussianMixture.chunk_stats` on a chunk of the
    batch -- N_k, sum r_ik (x_i - c), sum r_ik (x_i - c)(x_i - c)' -- divided by its
    number of rows; the M-step is the model's (any covariance structure).
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
        self.model: GaussianMixture | None = None
        self.columns: list[str] | None = None

    @property
    def param_names(self) -> list[str]:
        if self.model is None:
            raise ValueError("no data yet: call partial_fit first")
        return list(self.model.param_names)

    def prepare(self, X):
        names = batch_columns(X, self.columns, "the batch")
        Xa = as_2d(X, "the batch")
        if self.model is None:
            self.model = GaussianMixture(X, self.k, self.covariance, reg_covar=self.reg_covar)
            self.columns = list(self.model.columns) if names is None else names
        elif Xa.shape[1] != self.model.d:
            raise DataError(f"the batch has {Xa.shape[1]} columns but the stream has "
                            f"{self.model.d} ({', '.join(self.columns)})")
        bad = ~np.all(np.isfinite(Xa), axis=1)
        if bad.any():
            raise DataError(f"the batch has missing or infinite values in {int(bad.sum())} "
                            f"row(s) (first: row {int(np.flatnonzero(bad)[0])} of the batch)")
        return GaussianRows({"X": np.ascontiguousarray(Xa)})

    def initialize(self, batch):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DegenerateComponentWarning)
            warnings.simplefilter("ignore", ConvergenceWarning)
            res = self.model.fit(init="kmeans++", n_init=self.n_init, seed=self.seed,
                                 method="em", maxiter=self.init_maxiter, tol=1e-8, cov_type=None,
                                 n_threads=self.n_threads)
        return res.raw_params

    def batch_stats(self, batch, params):
        chunk = batch.chunks(1, resolve_threads(self.n_threads))[0]
        stats, ll = self.model.chunk_stats(params, chunk)
        if stats is None:
            raise FloatingPointError("non-finite log-likelihood of the batch")
        m = batch.n_rows
        return tuple(np.asarray(stats[key]) / m for key in ("N", "S1", "S2")), ll, m

    def m_step(self, stats, params):
        N, S1, S2 = stats
        return self.model.m_step(Stats(N=N, S1=S1, S2=S2), params)

    def to_inference(self, params):
        return self.model.to_inference(params)

    def from_inference(self, vec):
        return self.model.from_inference(vec)


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
