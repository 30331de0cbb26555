"""Finite mixtures of generalised linear regressions with concomitant variables.

For a unit u (a row, or all rows of a group) with component k,

    f(y_u) = sum_k pi_k(z_u) prod_{i in u} f_k(y_i | eta_ik),
    eta_ik = x_i' beta_k + x2_i' alpha + offset_i,
    pi_k(z) = exp(z' gamma_k) / sum_j exp(z' gamma_j),   gamma_1 = 0,

with f_k from :mod:`emstats.components.glm` (Gaussian with component sigma_k, Poisson,
binomial, NB2 with component theta_k), ``alpha`` the coefficients shared by all
components (``fixed=``) and the mixing weights a multinomial logit in the concomitant
variables z (an intercept only by default, i.e. constant weights).

Coordinates.  Packed and inference coordinates coincide: the coefficients, the
dispersions on the log scale (log sigma_k, log theta_k) and the multinomial-logit
coefficients gamma_2..gamma_K of the weights (as flexmix's ``refit``).

E-step and M-step (the choice the engine contract asks for).  ``chunk_stats``
returns, per chunk, responsibility-weighted pieces at the current parameters:

* Gaussian components: the natural statistics D'R_kD, D'R_k y, y'R_k y, N_k of the
  joint design D = [X, X2] -- additive over chunks *and* parameter values -- from
  which the M-step is exact (an ECM: coefficients by weighted least squares given the
  sigmas, then the sigmas);
* other families: the gradient and the negative Hessian of the expected
  complete-data log-likelihood Q at the current parameters, and the M-step is one
  Newton (weighted IRLS) step on Q -- Lange's EM gradient step; an exact M-step
  would need an inner IRLS loop over the data at fixed responsibilities;
* the weights: the responsibility totals (closed form for constant weights) or, with
  concomitant variables, the gradient and Hessian of the multinomial-logit part of Q
  and one Newton step.

Statistics at the current parameters do not add over parameter values, so
incremental and online EM apply only to Gaussian mixtures with constant weights.
The default scheme, Louis-Newton with step halving on the observed log-likelihood,
falls back to these EM steps only where the Newton step fails.

Every pass over the data (E-step, Louis' pieces, posteriors) is one call of the compiled
kernel :mod:`emstats._kernels.mixreg_kernels`, which works unit by unit with no n x K or
n x P temporaries; the numpy families of :mod:`emstats.components.glm` give the start
values and are the kernel's test witness.  Louis' pieces come from the per-row scores and
information of the family: the complete-data score of unit u under component k is
a_uk = (sum_i d1_ik x_i in block k, sum_i d1_ik x2_i, sum_i dphi_ik in block k,
(e_k - pi_u) (x) z_u), and the observed information is complete minus missing
(see :mod:`emstats.components.mixture`).

Component order (``canonical``): increasing x-bar' beta_k, the component's linear
predictor at the weighted means of the regressors (its mean response there, for
every family); the weights' reference is then the new first component.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np
import pandas as pd

from .._kernels import mixreg_kernels as mk
from ..components.glm import get_family, weighted_irls
from ..components.hc import hc_labels
from ..em.data import ROW_BLOCK, ArrayData
from ..em.params import Free, ParamSpec, SpecMaps
from ..em.protocol import ChunkedModel, LouisPieces
from ..em.stats import Stats, tree_sum
from ..exceptions import DataError
from ..formula import (
    build_design,
    cbind_response,
    check_frame,
    lhs_variables,
    new_exog,
    resolve_column,
    rhs_matrix,
    used_columns,
)
from ..inference.fit import FitMixin
from ..inference.margins import MarginalEffects, estimation_frame, marginal_effects
from ..inference.results import EMResults, SavedResults


def _from_upper(U: np.ndarray) -> np.ndarray:
    """The symmetric matrix whose upper triangle is that of ``U`` (the kernel's layout)."""
    return np.triu(U) + np.triu(U, 1).T


def _lse(a: np.ndarray) -> np.ndarray:
    """Row-wise log-sum-exp of (n, K) (plain numpy: scipy's is slower on tall arrays)."""
    mx = a.max(axis=1, keepdims=True)
    mx = np.where(np.isfinite(mx), mx, 0.0)
    return (mx + np.log(np.exp(a - mx).sum(axis=1, keepdims=True)))[:, 0]


def log_softmax(a: np.ndarray) -> np.ndarray:
    return a - _lse(a)[:, None]


def _sorted_codes(lab: np.ndarray) -> np.ndarray:
    """Codes 0..G-1 of the distinct labels in sorted order (``pd.factorize(lab,
    sort=True)[0]``); for integer labels of a small range by counting (at most two vectors
    of n entries rather than a hash table of n; none for labels 0..G-1, which are their own
    codes and are returned as they are, read only)."""
    if lab.dtype.kind == "i" and lab.size:
        lo, hi = int(lab.min()), int(lab.max())
        if hi - lo < 1 << 20:
            shifted = lab - lo if lo else lab
            used = np.bincount(shifted, minlength=hi - lo + 1) > 0
            if used.all():          # labels lo..hi, each used: the codes are shifted
                return shifted
            return (np.cumsum(used) - 1)[shifted]
    return pd.factorize(lab, sort=True)[0]


def constant_response(name: str, value: float) -> DataError:
    """The error of a Gaussian mixture of regressions whose response is constant."""
    return DataError(f"response {name!r} is constant ({value:g}): a Gaussian mixture of "
                     "regressions needs a response that varies (every component's variance "
                     "would be zero)")


class MixtureRegression(SpecMaps, FitMixin, ChunkedModel):
    """Finite mixture of ``k`` regressions (see the module docstring and :func:`mixreg`).

    Parameters
    ----------
    y : array_like, shape (n,)
        The response.
    X : array_like, shape (n, p)
        Design of the component-specific coefficients.
    k : int
        Number of components.
    family : {"gaussian", "poisson", "binomial", "negbin"}
        The component distribution.
    Z : array_like, shape (n, q), optional
        Design of the concomitant (multinomial-logit prior) model (default: a constant).
    X2 : array_like, shape (n, f), optional
        Design of coefficients shared by all components.
    offset : array_like, optional
        Offset of the linear predictor.
    trials : array_like, optional
        Binomial trials per row.
    weights : array_like, optional
        Frequency weights.
    unit_bounds : array_like of int, optional
        Row boundaries of groups whose rows share one component (rows sorted by group).
    exog_names, fixed_names, concomitant_names : list of str, optional
        Names of the columns of ``X``, ``X2`` and ``Z``.
    endog_name : str
        Name of the response.
    design_info, fixed_info, concomitant_info : patsy.DesignInfo, optional
        Designs of a model built from a formula (for prediction).
    frame : pandas.DataFrame, optional
        Internal: the estimation data of a model built from a formula (for plots).
    row_order : ndarray of int, optional
        Internal: position of each row in the caller's data when rows were sorted by group.
    groups : array_like, optional
        Internal: the group labels.
    check_size : bool
        Check that the data have more units than components and more rows than
        parameters (default); off for a model built like another (``like=``).
    """

    summary_title = "Mixture of Regressions Results"

    def __init__(self, y, X, k: int, *, family="gaussian", Z=None, X2=None, offset=None,
                 trials=None, weights=None, unit_bounds=None, exog_names=None,
                 fixed_names=None, concomitant_names=None, endog_name="y",
                 design_info=None, fixed_info=None, concomitant_info=None, frame=None,
                 row_order=None, groups=None, check_size: bool = True):
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        self.family = get_family(family)
        y = np.asarray(y, dtype=float).ravel()
        n = y.size
        X = np.asarray(X, dtype=float).reshape(n, -1)
        X2 = np.zeros((n, 0)) if X2 is None else np.asarray(X2, dtype=float).reshape(n, -1)
        # the constant defaults are read-only broadcasts, not vectors of n entries (the
        # kernel reads them with a zero step)
        Z = (np.broadcast_to(1.0, (n, 1)) if Z is None
             else np.asarray(Z, dtype=float).reshape(n, -1))
        m = np.broadcast_to(1.0, (n,)) if trials is None else \
            np.asarray(trials, dtype=float).ravel()
        y = self.family.check(y, m, repr(endog_name))
        off = np.broadcast_to(0.0, (n,)) if offset is None else \
            np.asarray(offset, dtype=float).ravel()
        w = np.broadcast_to(1.0, (n,)) if weights is None else \
            np.asarray(weights, dtype=float).ravel()
        if not np.all(np.isfinite(w) & (w >= 0)) or w.sum() <= 0:
            raise DataError("weights must be non-negative and finite, and not all zero")
        self.k, self.n_rows = int(k), n
        self.p, self.f, self.q = X.shape[1], X2.shape[1], Z.shape[1]
        self.d = 1 if self.family.dispersion else 0
        ub = (np.arange(n + 1, dtype=np.int64) if unit_bounds is None
              else np.asarray(unit_bounds, dtype=np.int64))
        self.grouped = unit_bounds is not None
        starts = ub[:-1]
        sizes = np.diff(ub)
        for what, arr in (("weights", w[:, None]), ("concomitant variables", Z)):
            if self.grouped and np.any(arr != np.repeat(arr[starts], sizes, axis=0)):
                raise DataError(f"{what} must be constant within each group (groups=): a "
                                "group's rows share one component and one prior")
        n_units = ub.size - 1
        n_par = self.k * (self.p + self.d) + self.f + (self.k - 1) * self.q
        if check_size and (self.k > n_units or n_par >= n):
            raise DataError(f"k = {k} components with {n_par} parameters need more data: "
                            f"there are {n_units} {'groups' if self.grouped else 'rows'}")
        self.exog_names = list(exog_names or [f"x{j}" for j in range(self.p)])
        self.fixed_names = list(fixed_names or [f"x2_{j}" for j in range(self.f)])
        self.concomitant_names = list(concomitant_names or
                                      (["Intercept"] if self.q == 1 else
                                       [f"z{j}" for j in range(self.q)]))
        self.endog_name = str(endog_name)
        self.design_info, self.fixed_info = design_info, fixed_info
        self.concomitant_info, self.frame = concomitant_info, frame
        self.row_order, self.groups = row_order, groups
        self.const_prior = self.q == 1 and bool(np.all(Z == Z[0, 0])) and Z[0, 0] != 0
        self._z0 = float(Z[0, 0])       # the constant of a constant prior (m_step)
        # the Gaussian's log-density constant is one number
        c = (np.broadcast_to(self.family.log_const(y[:1])[0], (n,))
             if self.family.name == "gaussian" else self.family.log_const(y, m))
        self.data = ArrayData({"y": y, "X": X, "X2": X2, "Z": Z, "off": off, "m": m, "w": w,
                               "c": c},
                              ub if self.grouped else None)
        self.xbar = (w @ X) / w.sum()
        #: the floor of a Gaussian component's variance: 1e-10 of the response's
        self.var_floor = 0.0
        if self.family.name == "gaussian":
            self.var_floor = 1e-10 * self._check_residual_variation(y, X, X2, w, check_size)
        K, p, d = self.k, self.p, self.d
        comp_lab = self.exog_names + ([self.family.dispersion] if d else [])
        blocks = [Free("comp", (K, p + d),
                       label=lambda ix: f"Comp.{ix[0] + 1}:{comp_lab[ix[1]]}")]
        if self.f:
            blocks.append(Free("fixed", (self.f,),
                               label=lambda ix: f"fixed:{self.fixed_names[ix[0]]}"))
        if K > 1:
            fixed = np.zeros((K, self.q), dtype=bool)
            fixed[0] = True
            blocks.append(Free("prior", (K, self.q), fixed=fixed,
                               label=lambda ix: f"prior Comp.{ix[0] + 1}:"
                               f"{self.concomitant_names[ix[1]]}"))
        self.spec = ParamSpec(blocks)
        self.nobs = float(w.sum())
        self.df_model = float(self.spec.size)
        self.n_units_total = n_units
        # set by mixreg(): the formulas and column specs, for predictions on new data
        self._formula = self._concomitant = self._fixed = None
        self._offset_spec = self._trials_spec = None
        self._row_labels = self._unit_labels = self._fixed_keep = None

    @property
    def stats_additive_in_params(self) -> bool:
        """Whether ``chunk_stats`` adds over parameter values (incremental EM applies):
        Gaussian components with constant weights only."""
        return self.family.name == "gaussian" and (self.k == 1 or self.const_prior)

    # -- parameters -----------------------------------------------------------------
    def _full(self, params) -> dict:
        """Parameters with every block present (fixed and prior possibly empty)."""
        out = {"comp": np.asarray(params["comp"], dtype=float)}
        out["fixed"] = np.asarray(params.get("fixed", np.zeros(self.f)), dtype=float)
        out["prior"] = np.asarray(params.get("prior", np.zeros((self.k, self.q))), dtype=float)
        return out

    def _pack_params(self, comp, fixed, prior) -> dict:
        p = {"comp": comp}
        if self.f:
            p["fixed"] = fixed
        if self.k > 1:
            p["prior"] = prior - prior[0][None, :]
        return p

    def canonical(self, params) -> dict:
        """Components in increasing order of x-bar' beta_k (see the module docstring)."""
        P = self._full(params)
        o = np.argsort(P["comp"][:, : self.p] @ self.xbar, kind="stable")
        return self._pack_params(P["comp"][o], P["fixed"], P["prior"][o])

    def check_start(self, start) -> dict:
        try:
            p = {k: np.asarray(v, dtype=float) for k, v in dict(start).items()}
            self.spec.pack(p)
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"start_params must be a mapping with blocks "
                             f"{[b.name for b in self.spec.blocks]} of shapes "
                             f"{[b.shape for b in self.spec.blocks]}: {err}") from None
        return self._pack_params(**self._full(p))

    # -- starts ---------------------------------------------------------------------
    def from_labels(self, labels) -> dict:
        """Parameters fitted to a hard partition of the units (labels 0..K-1 per unit)."""
        labels = np.asarray(labels, dtype=int)
        rows = np.repeat(labels, np.diff(self.data._bounds())) if self.grouped else labels
        # one component's indicator at a time (no n x K one-hot matrix)
        return self._from_columns(lambda j: rows == j)

    def _from_resp(self, R: np.ndarray) -> dict:
        return self._from_columns(lambda j: R[:, j])

    def _from_columns(self, column) -> dict:
        """Parameters from responsibilities given by column: ``column(j)`` is component
        j's (n,) responsibilities."""
        dat = self.data
        y, X, X2, off, m, w = (dat[a] for a in ("y", "X", "X2", "off", "m", "w"))
        D = np.hstack([X, X2]) if X2.shape[1] else X
        comp = np.zeros((self.k, self.p + self.d))
        alphas, N = np.zeros((self.k, self.f)), np.zeros(self.k)
        for j in range(self.k):
            c = w * column(j)
            if c.sum() <= 0:
                c += 1e-6 * w.mean()
            beta = weighted_irls(self.family, y, D, c, off, m)
            comp[j, : self.p] = beta[: self.p]
            alphas[j] = beta[self.p:]
            N[j] = c.sum()
            if self.d:
                eta = D @ beta
                eta += off                     # in place (off may be a broadcast zero)
                mu = self.family.mean(eta, m)
                del eta
                comp[j, self.p] = self.family.start_phi(y, mu, c, m)
        fixed = (N @ alphas) / N.sum() if self.f else np.zeros(0)
        prior = np.zeros((self.k, self.q))
        ones = np.flatnonzero(np.all(dat["Z"] == 1.0, axis=0))
        if ones.size:
            share = np.maximum(N, 1e-3 * N.sum())
            prior[:, ones[0]] = np.log(share / share[0])
        return self._pack_params(comp, fixed, prior)

    def _kmeans_labels(self, rng, how: str = "kmeans") -> np.ndarray:
        from scipy.cluster.vq import kmeans2

        dat = self.data
        cols = [dat["y"][:, None] - (dat["off"][:, None] if self.family.link == "identity"
                                     else 0.0), dat["X"], dat["X2"]]
        A = np.hstack(cols)
        A = A[:, A.std(axis=0) > 0]
        if A.shape[1] == 0:
            return rng.integers(0, self.k, self.n_units_total)
        A = (A - A.mean(axis=0)) / A.std(axis=0)
        if self.grouped:
            b = dat.unit_bounds
            A = np.add.reduceat(A, b[:-1], axis=0) / np.diff(b)[:, None]
        if how == "hc":
            # mclust's hierarchical agglomeration on the response and the design
            return hc_labels(A, self.k, rng)
        _, lab = kmeans2(A, self.k, minit="++", seed=rng)
        return lab

    def initial_starts(self, init, n_init: int, rng: np.random.Generator):
        """Starts: ``init=None`` -- k-means on the response and the design, then
        ``n_init - 1`` random partitions; ``"random"`` -- ``n_init`` random partitions;
        ``"kmeans"`` -- ``n_init`` k-means runs; ``"hc"`` -- one start from mclust's
        hierarchical agglomeration of the response and the design (unit means for
        grouped data; :func:`emstats.components.hc.hc_labels`); an array of labels (1..K,
        one per unit) -- that partition."""
        if init is not None and not isinstance(init, str):
            lab = np.asarray(init).ravel()
            if lab.size != self.n_units_total:
                raise ValueError(f"init labels need one value per unit "
                                 f"({self.n_units_total}), got {lab.size}")
            codes = _sorted_codes(lab)
            if codes.max() + 1 != self.k:
                raise ValueError(f"init labels must take {self.k} distinct values")
            return [("labels", self.from_labels(codes))]
        if init not in (None, "random", "kmeans", "hc"):
            raise ValueError(f"init must be 'kmeans', 'random', 'hc' or an array of labels, "
                             f"got {init!r}")
        starts = []
        if self.k == 1:
            return [("one", self.from_labels(np.zeros(self.n_units_total, dtype=int)))]
        if init == "hc":
            return [("hc", self.from_labels(self._kmeans_labels(rng, "hc")))]
        while len(starts) < n_init:
            if init == "kmeans" or (init is None and not starts):
                starts.append(("kmeans", self.from_labels(self._kmeans_labels(rng))))
            else:
                starts.append(("random", self.from_labels(
                    rng.integers(0, self.k, self.n_units_total))))
        return starts

    def fit_starts(self, n_init: int = 10, *, init=None, seed=None, **fit_kwargs):
        """Fit from every start to convergence; the best fit, with the spread of the
        final log-likelihoods.

        ``fit(n_init=...)`` runs a short EM from each start and continues only the best;
        this runs each start to the end (without standard errors), then the best again
        with them, so that local maxima show.

        Parameters
        ----------
        n_init : int
            Number of starts (as ``fit``: k-means first, then random partitions).
        init, seed :
            As ``fit``.
        **fit_kwargs
            Other options of ``fit`` (``method``, ``tol``, ``maxiter``, ``cov_type``...).

        Returns
        -------
        MixtureRegressionResults
            The best fit; ``res.extra["start_fits"]`` is a DataFrame (start kind,
            final log-likelihood, iterations, converged, error) with one row per start.
        """
        import warnings

        cov = fit_kwargs.pop("cov_type", "louis")
        starts = self.initial_starts(init, n_init, np.random.default_rng(seed))
        rows, best = [], None
        for kind, p in starts:
            row = {"start": kind, "llf": -np.inf, "n_iter": 0, "converged": False,
                   "error": ""}
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    r = self.fit(start_params=p, cov_type=None, **fit_kwargs)
            except (ValueError, FloatingPointError, np.linalg.LinAlgError) as err:
                row["error"] = str(err)
            else:
                row.update(llf=r.llf, n_iter=r.convergence.n_iter,
                           converged=r.convergence.converged)
                if best is None or r.llf > best.llf:
                    best = r
            rows.append(row)
        if best is None:
            raise FloatingPointError("the fit failed from every start: "
                                     + "; ".join(r["error"] for r in rows))
        res = self.fit(start_params=best.raw_params, cov_type=cov, **fit_kwargs)
        res.extra["start_fits"] = pd.DataFrame(rows)
        return res

    def start_params(self) -> dict:
        return self.initial_starts(None, 1, np.random.default_rng(0))[0][1]

    # -- E-step -------------------------------------------------------------------------
    def _pass(self, P, ch, mode: int, assign: int = 0, draws=None, posteriors=False,
              scores=False):
        """One kernel pass over a chunk (:mod:`emstats._kernels.mixreg_kernels`).

        ``mode``: 0 log-likelihood only, 1 Gaussian natural statistics, 2 the gradient
        and Hessian pieces of Q, 3 those and Louis' missing information (with ``scores``
        also the units' scores, entry ``"scores"``).  Returns the per-chunk partial sums
        reduced in chunk order, as a dict.
        """
        K, p, f, q, d = self.k, self.p, self.f, self.q, self.d
        nu = ch.n_units
        nch = mk.n_chunks(nu)
        pD = p + f
        n_par = self.spec.size
        want_prior = K > 1 and (mode == 3 or (mode in (1, 2) and not self.const_prior))
        npr = (K - 1) * q
        part_comp = np.zeros((nch, K, mk.comp_width(pD) if mode else 0))
        part_prior = np.zeros((nch, npr + npr * npr if want_prior else 0))
        part_miss = np.zeros((nch, n_par * n_par if mode == 3 else 0))
        part_s = np.zeros((nch, 2))
        out_r = np.zeros((nu if posteriors else 0, K))
        out_ll = np.zeros(nu if posteriors else 0)
        scratch = np.empty((nch, mk.scratch_width(K, pD, n_par)))
        comp = P["comp"]
        beta = np.ascontiguousarray(comp[:, :p])
        phi = np.ascontiguousarray(comp[:, p]) if d else np.zeros(K)
        draws = np.zeros(0) if draws is None else np.ascontiguousarray(draws, dtype=float)
        out_s = np.zeros((nu, n_par)) if scores else None
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            mk.mixreg_pass(self.family.kernel_code, mode, assign, want_prior, self.const_prior,
                           ch["y"], ch["X"], ch["X2"], ch["Z"], ch["off"], ch["m"], ch["w"],
                           ch["c"], ch.unit_bounds, beta, phi,
                           np.ascontiguousarray(P["fixed"], dtype=float),
                           np.ascontiguousarray(P["prior"], dtype=float), draws,
                           part_comp, part_prior, part_miss, part_s, out_r, out_ll, scratch,
                           int(ch.n_threads), out_s)
        s = part_s.sum(axis=0)
        out = {"loglik": float(s[0]), "bad": int(s[1]), "r": out_r, "ll": out_ll}
        if mode:
            out["comp"] = part_comp.sum(axis=0)
        if want_prior:
            pp = part_prior.sum(axis=0)
            out["pg"], out["pH"] = pp[:npr], _from_upper(pp[npr:].reshape(npr, npr))
        if mode == 3:
            out["missing"] = _from_upper(part_miss.sum(axis=0).reshape(n_par, n_par))
        if scores:
            out["scores"] = out_s
        return out

    def _comp_blocks(self, cs):
        """Split one component's kernel block into N, G1, G2 (full), Gep, Gp, Gpp."""
        pD = self.p + self.f
        o = 1 + pD + pD * pD
        return (cs[0], cs[1:1 + pD], _from_upper(cs[1 + pD:o].reshape(pD, pD)),
                cs[o:o + pD], cs[o + pD], cs[o + pD + 1])

    def _gradient_hessian(self, comp_sums):
        """Gradient and negative Hessian of Q's component part (coefficients, log
        dispersions, shared coefficients) from the kernel's per-component sums."""
        K, p, d, f = self.k, self.p, self.d, self.f
        nc = K * (p + d) + f
        g, H = np.zeros(nc), np.zeros((nc, nc))
        fs = slice(K * (p + d), nc)
        for j in range(K):
            _, G1, G2, Gep, Gp, Gpp = self._comp_blocks(comp_sums[j])
            s = slice(j * (p + d), j * (p + d) + p)
            g[s] += G1[:p]
            g[fs] += G1[p:]
            H[s, s] += G2[:p, :p]
            H[s, fs] += G2[:p, p:]
            H[fs, s] += G2[p:, :p]
            H[fs, fs] += G2[p:, p:]
            if d:
                ph = j * (p + d) + p
                g[ph] += Gp
                H[s, ph] += Gep[:p]
                H[ph, s] += Gep[:p]
                H[fs, ph] += Gep[p:]
                H[ph, fs] += Gep[p:]
                H[ph, ph] += Gpp
        return g, H

    def _stats(self, params, chunk, assign: int = 0, draws=None):
        P = self._full(params)
        mode = 1 if self.family.name == "gaussian" else 2
        res = self._pass(P, chunk, mode, assign, draws)
        if res["bad"] or not np.isfinite(res["loglik"]):
            return None, -np.inf
        cs = res["comp"]
        out = {"N": cs[:, 0].copy()}
        if mode == 1:
            blocks = [self._comp_blocks(c) for c in cs]
            out["DD"] = np.stack([b[2] for b in blocks])
            out["Dy"] = np.stack([b[1] for b in blocks])
            out["yy"] = np.array([b[4] for b in blocks])
        else:
            out["g"], out["H"] = self._gradient_hessian(cs)
        if "pg" in res:
            out["pg"], out["pH"] = res["pg"], res["pH"]
        return Stats(out), res["loglik"]

    def chunk_stats(self, params, chunk):
        """Responsibility-weighted statistics of the chunk (see the module docstring)
        and its log-likelihood."""
        return self._stats(params, chunk)

    def _assigned_stats(self, params, assign: int, rng=None):
        parts = []
        for ch in self.data.chunks(1, 1):
            draws = rng.random(ch.n_units) if assign == 2 else None
            parts.append(self._stats(params, ch, assign, draws))
        if any(q[0] is None for q in parts):
            return None, -np.inf
        return tree_sum(q[0] for q in parts), float(sum(q[1] for q in parts))

    def classify_stats(self, params):
        """Hard-assignment (MAP one-hot) statistics and the classification log-likelihood
        (the hook of classification EM, ``method="cem"``)."""
        st, cl = self._assigned_stats(params, 1)
        return st, cl + self.loglike_constant(params)

    def sample_stats(self, params, rng: np.random.Generator, size: int):
        """Statistics of labels drawn from the responsibilities (stochastic EM);
        ``size`` draws are averaged."""
        draws = [self._assigned_stats(params, 2, rng)[0] for _ in range(int(size))]
        if any(d is None for d in draws):
            raise FloatingPointError("undefined responsibilities")
        tot = tree_sum(draws)
        return tot if size == 1 else tot * (1.0 / size)

    def m_step(self, stats, params):
        P = self._full(params)
        K, p, d, f = self.k, self.p, self.d, self.f
        comp = P["comp"].copy()
        fixed = P["fixed"].copy()
        if self.family.name == "gaussian":
            iv = np.exp(-2.0 * comp[:, p])
            DD, Dy, yy, N = stats["DD"], stats["Dy"], stats["yy"], stats["N"]
            nc = K * p + f
            A, b = np.zeros((nc, nc)), np.zeros(nc)
            fs = slice(K * p, nc)
            for j in range(K):
                s = slice(j * p, (j + 1) * p)
                A[s, s] += iv[j] * DD[j, :p, :p]
                A[s, fs] += iv[j] * DD[j, :p, p:]
                A[fs, s] += iv[j] * DD[j, p:, :p]
                A[fs, fs] += iv[j] * DD[j, p:, p:]
                b[s] += iv[j] * Dy[j, :p]
                b[fs] += iv[j] * Dy[j, p:]
            sol = np.linalg.solve(A + 1e-12 * np.trace(A) / nc * np.eye(nc), b)
            fixed = sol[fs]
            for j in range(K):
                c = np.concatenate([sol[j * p:(j + 1) * p], fixed])
                rss = yy[j] - 2 * c @ Dy[j] + c @ DD[j] @ c
                comp[j, :p] = c[:p]
                comp[j, p] = 0.5 * np.log(max(rss / max(N[j], 1e-300), self.var_floor, 1e-300))
        else:
            theta = np.concatenate([comp.ravel(), fixed])
            step = self._newton_step(stats["g"], stats["H"])
            theta = theta + step
            comp = theta[: K * (p + d)].reshape(K, p + d)
            fixed = theta[K * (p + d):]
        prior = P["prior"].copy()
        if K > 1:
            if self.const_prior:
                N = np.maximum(np.asarray(stats["N"]), 1e-300)
                prior[:, 0] = np.log(N / N[0]) / self._z0
            else:
                step = self._newton_step(stats["pg"], stats["pH"])
                prior[1:] += step.reshape(K - 1, self.q)
        return self._pack_params(comp, fixed, prior)

    @property
    def m_step_exact(self) -> bool:
        """Whether the M-step maximises Q (a Gaussian family's weighted least squares with
        a constant prior); otherwise it is one Newton step of Q (a generalised EM, which
        the engine shortens where it overshoots)."""
        return self.family.name == "gaussian" and (self.k == 1 or self.const_prior)

    def _check_residual_variation(self, y, X, X2, w, check: bool) -> float:
        """The response's weighted variance; a DataError (when ``check``) if it is zero or
        the regressors fit the response exactly (every component's variance would go to
        zero: the likelihood is unbounded)."""
        ws = w.sum()
        ybar = (w @ y) / ws
        tss = float(w @ (y - ybar) ** 2)
        if not check:
            return max(tss / ws, 1e-300)
        if not tss > 1e-28 * max(float(w @ y ** 2), 1e-300):
            raise constant_response(self.endog_name, y[0])
        # the pooled least squares by blocks of rows (no n-row copy of the design)
        n, q = X.shape[0], X.shape[1] + X2.shape[1]
        blocks = [slice(s, min(s + ROW_BLOCK, n)) for s in range(0, n, ROW_BLOCK)]

        def design(rows):
            return np.hstack([X[rows], X2[rows]]) if X2.shape[1] else X[rows]
        G, b = np.zeros((q, q)), np.zeros(q)
        for rows in blocks:
            D = design(rows)
            G += D.T @ (D * w[rows, None])
            b += D.T @ (w[rows] * y[rows])
        coef = np.linalg.lstsq(G, b, rcond=None)[0]
        rss = sum(float(w[rows] @ (y[rows] - design(rows) @ coef) ** 2) for rows in blocks)
        if not rss > 1e-20 * tss:
            raise DataError(f"response {self.endog_name!r} is an exact linear function of the "
                            f"regressors ({', '.join(self.exog_names or [])}; residual sum "
                            "of squares 0): a mixture of regressions is not identified (every "
                            "component's variance would be zero)")
        return tss / ws

    def degenerate_estimate(self, params) -> str | None:
        """Components whose variance is at the floor (numerically zero: they fit their rows
        exactly and the likelihood is unbounded there), or None."""
        if self.family.name != "gaussian":
            return None
        log_sigma = self._full(params)["comp"][:, self.p]
        bad = np.flatnonzero(np.exp(2.0 * log_sigma) <= self.var_floor * (1.0 + 1e-3))
        if bad.size == 0:
            return None
        return (f"component(s) {[int(j) + 1 for j in bad]} of the {self.k}-component "
                "mixture of regressions collapsed: its regression fits its rows exactly, its "
                "variance was floored (1e-10 of the response's) and the likelihood is "
                "unbounded there, so the log-likelihood and standard errors mean nothing.  "
                "Use fewer components.")

    @staticmethod
    def _newton_step(g, H, cap: float = 10.0) -> np.ndarray:
        """One Newton step on Q (ridged until the Hessian is definite, length capped)."""
        H = 0.5 * (H + H.T)
        scale = max(float(np.max(np.abs(np.diag(H)))), 1e-300)
        ridge = 0.0
        for _ in range(30):
            try:
                L = np.linalg.cholesky(H + ridge * np.eye(H.shape[0]))
                break
            except np.linalg.LinAlgError:
                ridge = max(2 * ridge, 1e-10 * scale)
        else:
            return np.zeros_like(g)
        step = np.linalg.solve(L.T, np.linalg.solve(L, g))
        big = float(np.max(np.abs(step))) if step.size else 0.0
        return step * (cap / big) if big > cap else step

    # -- Louis ----------------------------------------------------------------------
    def chunk_louis(self, params, chunk):
        """Log-likelihood, score and Louis' complete and missing information of the
        chunk, from one kernel pass (the missing information accumulated unit by unit)."""
        P = self._full(params)
        K = self.k
        res = self._pass(P, chunk, 3)
        g, H = self._gradient_hessian(res["comp"])
        nc = g.size
        n_par = self.spec.size
        score = np.zeros(n_par)
        comp = np.zeros((n_par, n_par))
        score[:nc], comp[:nc, :nc] = g, H
        if K > 1:
            score[nc:], comp[nc:, nc:] = res["pg"], res["pH"]
        ll = res["loglik"] if not res["bad"] else np.nan
        return Stats(loglik=ll, score=score, complete=comp, missing=res["missing"])

    def louis_from_stats(self, params, total):
        return (float(total["loglik"]), np.asarray(total["score"]),
                LouisPieces(np.asarray(total["complete"]), np.asarray(total["missing"])))

    def chunk_scores(self, params, chunk) -> np.ndarray:
        """Observed-data score of each unit of the chunk (weights included), from the
        kernel's Louis pass."""
        return self._pass(self._full(params), chunk, 3, scores=True)["scores"]

    # -- for results ---------------------------------------------------------------------
    def posterior(self, params) -> tuple[np.ndarray, np.ndarray]:
        """Responsibilities (units x K) and unit log-likelihoods at ``params``."""
        P = self._full(params)
        res = [self._pass(P, ch, 0, posteriors=True) for ch in self.data.chunks(1)]
        return np.vstack([r["r"] for r in res]), np.concatenate([r["ll"] for r in res])

    def new_designs(self, newdata):
        """The designs X, X2 (shared coefficients) and Z (concomitant variables) of
        ``newdata`` through the fitted design information."""
        if self.design_info is None:
            raise ValueError("predictions on new data need a model built from a formula")
        X = new_exog(self.design_info, newdata)
        n = X.shape[0]
        X2 = (new_exog(self.fixed_info, newdata)[:, self._fixed_keep]
              if self.fixed_info is not None else np.zeros((n, 0)))
        Z = (new_exog(self.concomitant_info, newdata) if self.concomitant_info is not None
             else np.ones((n, 1)))
        return X, X2, Z

    def to_frame_order(self, a: np.ndarray) -> np.ndarray:
        """Rows in the model's order (sorted by group with ``groups=``) put back in the
        order of the data."""
        if self.row_order is None:
            return a
        out = np.empty_like(a)
        out[self.row_order] = a
        return out

    @property
    def row_labels(self) -> pd.Index:
        """Labels of the model's rows in the data's order (the data frame's index)."""
        return (self._row_labels if self._row_labels is not None
                else pd.RangeIndex(self.n_rows))

    def unit_labels(self) -> pd.Index:
        """Labels of the units: the group labels (sorted) or the row labels."""
        if not self.grouped:
            return self.row_labels
        return (self._unit_labels if self._unit_labels is not None
                else pd.RangeIndex(self.n_units_total))

    def unit_weights(self) -> np.ndarray:
        b = self.data._bounds()
        return self.data["w"][b[:-1]]


class MixtureRegressionResults(EMResults):
    """Results of a mixture of regressions: component coefficients, weights, posteriors."""

    _kept_without_data = ("icl",)

    @property
    def _p(self) -> dict:
        return self.model._full(self.raw_params)

    def _summary_rows(self):
        m = self.model
        return ([("Family:", [m.family.name]), ("Components:", [str(m.k)])],
                [("ICL:", [f"{self.icl:#.6g}"])])

    @property
    def coefficients(self) -> pd.DataFrame:
        """Component coefficients (rows: regressors; columns: components 1..K); shared
        (``fixed=``) coefficients appear in every column."""
        m = self.model
        P = self._p
        tab = pd.DataFrame(P["comp"][:, : m.p].T, index=m.exog_names,
                           columns=range(1, m.k + 1))
        if m.f:
            fx = pd.DataFrame(np.repeat(P["fixed"][:, None], m.k, axis=1),
                              index=m.fixed_names, columns=range(1, m.k + 1))
            tab = pd.concat([tab, fx])
        return tab

    @property
    def dispersion(self) -> pd.Series | None:
        """sigma_k (Gaussian) or theta_k (negative binomial), natural scale; else None."""
        m = self.model
        if not m.d:
            return None
        name = "sigma" if m.family.name == "gaussian" else "theta"
        return pd.Series(np.exp(self._p["comp"][:, m.p]), index=range(1, m.k + 1), name=name)

    @property
    def prior(self) -> pd.Series:
        """Average mixing weight of each component over the units (flexmix's ``prior``)."""
        w = self.model.unit_weights()
        Zu = self.model.data["Z"][self.model.data._bounds()[:-1]]
        pi = np.exp(log_softmax(Zu @ self._p["prior"].T))
        return pd.Series(w @ pi / w.sum(), index=range(1, self.model.k + 1), name="prior")

    def posterior(self) -> pd.DataFrame:
        """Posterior probabilities of the components, one row per unit: indexed by the
        data's row labels, or with ``groups=`` by the group labels (sorted)."""
        r, _ = self.model.posterior(self.raw_params)
        return pd.DataFrame(r, columns=[f"Comp.{j}" for j in range(1, self.model.k + 1)],
                            index=self.model.unit_labels())

    @property
    def classes(self) -> np.ndarray:
        """MAP component (1-based) of every unit."""
        return self.posterior().to_numpy().argmax(axis=1) + 1

    @property
    def entropy(self) -> float:
        """Classification entropy -sum_u w_u sum_k r_uk log r_uk."""
        r = self.posterior().to_numpy()
        with np.errstate(divide="ignore", invalid="ignore"):
            e = np.where(r > 0, r * np.log(r), 0.0).sum(axis=1)
        return float(-(self.model.unit_weights() @ e))

    @cached_property
    def icl(self) -> float:
        """Integrated completed likelihood (Biernacki et al. 2000), as flexmix:
        BIC - 2 sum_u w_u log r_u,MAP(u)."""
        r = self.posterior().to_numpy()
        lr = np.log(np.maximum(r.max(axis=1), 1e-300))
        return self.bic - 2.0 * float(self.model.unit_weights() @ lr)

    def _designs(self, newdata):
        """Designs, offset and trials of ``newdata`` (None: the model's rows in the data's
        order) and the index of the predictions."""
        m = self.model
        if newdata is None:
            dat = m.data
            back = m.to_frame_order
            return (back(dat["X"]), back(dat["X2"]), back(dat["Z"]), back(dat["off"]),
                    back(dat["m"]), m.row_labels)
        for what, spec in (("offset", m._offset_spec), ("trials", m._trials_spec)):
            if spec is _GIVEN_AS_ARRAY:
                raise ValueError(f"predict(newdata) needs {what}= given as a column name "
                                 "when the model was built (it was an array)")
        X, X2, Z = m.new_designs(newdata)
        n = X.shape[0]
        off = (resolve_column(m._offset_spec, newdata, "offset")
               if getattr(m, "_offset_spec", None) is not None else np.zeros(n))
        if m.design_info.has_offset:     # the formula's offset() terms
            off = off + m.design_info.offset(newdata)
        tr = (resolve_column(m._trials_spec, newdata, "trials")
              if m._trials_spec is not None else np.ones(n))
        index = newdata.index if isinstance(newdata, pd.DataFrame) else pd.RangeIndex(n)
        return X, X2, Z, off, tr, index

    def _row_posterior(self, newdata) -> pd.DataFrame:
        """Posterior probabilities per row: with ``groups=`` every row of a group carries
        its group's posterior (all the group's rows, and only they, enter it)."""
        m = self.model
        if newdata is not None:
            if m._formula is None:
                raise ValueError("predict(newdata) needs a model built from a formula")
            m = _build(m._formula, newdata, m.k, family=m.family.name,
                       concomitant=m._concomitant, fixed=m._fixed, groups=m.groups,
                       offset=m._offset_spec, trials=m._trials_spec, like=m)
        r, _ = m.posterior(self.raw_params)
        rows = m.to_frame_order(np.repeat(r, np.diff(m.data._bounds()), axis=0))
        return pd.DataFrame(rows, columns=[f"Comp.{j}" for j in range(1, m.k + 1)],
                            index=m.row_labels)

    def predict(self, newdata=None, which: str = "mean"):
        """Predictions for the model's rows or ``newdata``, one row per data row.

        Parameters
        ----------
        newdata : DataFrame, optional
            New rows (through the formula for a model built from one); default the estimation
            rows, in the data's order.
        which : {"mean", "component_means", "prior", "posterior"}
            ``"mean"``: the mixture mean sum_k pi_k(z) mu_k(x); ``"component_means"``:
            mu_k(x) per component; ``"prior"``: pi_k(z); ``"posterior"``: the
            posterior probabilities given the response (``newdata`` must hold it; with
            ``groups=`` the posterior of each row's group, the same for all its rows,
            computed from all of them; rows with missing values are dropped).

        Returns
        -------
        pandas.Series or DataFrame
            Indexed by the rows of ``newdata`` (or the model's row labels).
        """
        m = self.model
        if which == "posterior":
            return self._row_posterior(newdata)
        if which not in ("mean", "component_means", "prior"):
            raise ValueError("which must be 'mean', 'component_means', 'prior' or "
                             f"'posterior', got {which!r}")
        P = self._p
        cols = [f"Comp.{j}" for j in range(1, m.k + 1)]
        X, X2, Z, off, tr, index = self._designs(newdata)
        eta = X @ P["comp"][:, : m.p].T + (X2 @ P["fixed"] + off)[:, None]
        mu = m.family.mean(eta, tr)
        pi = np.exp(log_softmax(Z @ P["prior"].T))
        if which == "component_means":
            return pd.DataFrame(mu, columns=cols, index=index)
        if which == "prior":
            return pd.DataFrame(pi, columns=cols, index=index)
        return pd.Series((pi * mu).sum(axis=1), name="mean", index=index)

    def get_margeff(self, at="overall", which: str = "mean", *, dummy: bool = True,
                    variables=None) -> MarginalEffects:
        """Marginal effects of the variables on the mixture mean sum_k pi_k(z) mu_k(x),
        with delta-method standard errors.

        A variable in the component regressions, the shared coefficients (``fixed=``) and
        the concomitant model gets one total effect, through the formula (the change of
        the component means and of the mixing weights); categorical levels, booleans and
        (with ``dummy``) 0/1 variables get discrete changes from the reference level.  A
        model built from arrays gets effects per design column.

        Parameters
        ----------
        at : {"overall", "mean", "median"} or dict
            ``"overall"``: the weighted average over the rows; ``"mean"`` / ``"median"``:
            at one row with numeric variables at their mean / median and categorical ones
            at their most frequent level; a dict ``{variable: value}``: those variables
            set in every row, the effects averaged.
        which : {"mean"}
            The prediction (the mixture mean, :meth:`predict`'s ``"mean"``).
        dummy : bool
            Discrete changes 0 -> 1 for numeric 0/1 variables (default); ``False``
            differentiates them.
        variables : list of str, optional
            The variables to report (default: all).

        Returns
        -------
        emstats.inference.margins.MarginalEffects
        """
        if which != "mean":
            raise ValueError(f"which must be 'mean' (the mixture mean), got {which!r}")
        m = self.model
        if m.data is None or getattr(self, "data_removed", False):
            raise DataError("these results hold no data (remove_data() was called): "
                            "marginal effects need the estimation rows")
        back, dat = m.to_frame_order, m.data
        off, tr, w = back(dat["off"]), back(dat["m"]), back(dat["w"])
        info = m.design_info
        if info is not None:
            parts = [info, m.fixed_info, m.concomitant_info]
            frame = estimation_frame(self)
            frame = frame[used_columns(parts, frame.columns)]
            if info.has_offset:
                off = off - info.offset(frame)
        else:
            parts = None
            frame = pd.DataFrame(back(dat["X"]), columns=m.exog_names)
            for M, nm in ((dat["X2"], m.fixed_names), (dat["Z"], m.concomitant_names)):
                for j, c in enumerate(nm):
                    if c not in frame.columns:
                        frame[c] = back(M)[:, j]

        def build(fr, fixed):
            if info is None:
                X, X2, Z = (fr[nm].to_numpy(dtype=float).reshape(len(fr), -1) for nm in
                            (m.exog_names, m.fixed_names, m.concomitant_names))
                o = fixed["off"]
            else:
                X, X2, Z = m.new_designs(fr)
                o = fixed["off"] + (info.offset(fr) if info.has_offset else 0.0)
            return {"X": X, "X2": X2, "Z": Z, "off": o, "tr": fixed["tr"]}

        fam = m.family.name

        def response(theta, inp, grad):
            P = m._full(m.from_inference(theta))
            B, gam, G = P["comp"][:, : m.p], P["fixed"], P["prior"]
            eta = inp["X"] @ B.T + (inp["X2"] @ gam + inp["off"])[:, None]
            mu = m.family.mean(eta, inp["tr"])
            pi = np.exp(log_softmax(inp["Z"] @ G.T))
            F = (pi * mu).sum(axis=1)
            if not grad:
                return F, {}
            dmu = {"gaussian": np.ones_like(mu), "binomial": mu * (1.0 - mu / inp["tr"][:, None])
                   }.get(fam, mu)                           # log link: d mu / d eta = mu
            a = pi * dmu
            zbar = pi @ G
            return F, {"X": a @ B, "X2": a.sum(axis=1)[:, None] * gam[None, :],
                       "off": a.sum(axis=1),
                       "Z": (pi * mu) @ G - F[:, None] * zbar}

        return marginal_effects(
            self.params.to_numpy(), self._cov, build=build, response=response, frame=frame,
            fixed={"off": off, "tr": tr}, weights=w, terms=parts, at=at, which="mean",
            dummy=dummy, variables=variables)

    def predict_proba(self, newdata=None) -> pd.DataFrame:
        """Posterior probabilities of the components per row (``predict(newdata,
        which="posterior")``).

        Parameters
        ----------
        newdata : DataFrame, optional
            Rows with the response (default: the estimation rows).

        Returns
        -------
        pandas.DataFrame
        """
        return self.predict(newdata, which="posterior")

    def plot_residuals(self, ax=None):
        """Response minus the fitted mixture mean against that mean, by MAP component.

        Parameters
        ----------
        ax : matplotlib Axes, optional
            Axes to draw on (default: a new figure).

        Returns
        -------
        matplotlib Axes
        """
        from ..inference.plots import residuals

        m = self.model
        y = np.asarray(m.data["y"], dtype=float)
        post = np.asarray(self.predict(which="posterior"), dtype=float)
        if m.row_order is not None:  # the model's rows are sorted by group
            y_caller = np.empty_like(y)
            y_caller[np.asarray(m.row_order)] = y
            y = y_caller
        fitted = np.asarray(self.predict(which="mean"), dtype=float)
        kinds = np.array([f"component {j + 1}" for j in np.argmax(post, axis=1)])
        return residuals(fitted, y - fitted, kinds=kinds, ax=ax,
                         xlabel="fitted mixture mean", ylabel=f"{m.endog_name} minus fitted",
                         title=f"Mixture of {m.k} {m.family.name} regressions: residuals "
                               "(points by MAP component)")

    def plot_components(self, x: str, ax=None, n_grid: int = 100):
        """Scatter of the response against regressor ``x`` coloured by MAP class, with
        each component's fitted mean along ``x`` (other variables at their means or
        first level).  Needs matplotlib and a model built from a formula.

        Parameters
        ----------
        x : str
            A variable of the formula's right-hand side.
        ax : matplotlib.axes.Axes, optional
            Axes to draw on (default: a new figure).
        n_grid : int
            Number of points of each fitted curve."""
        import matplotlib.pyplot as plt

        m = self.model
        if m.frame is None or x not in m.frame.columns:
            raise ValueError(f"{x!r} is not a column of the model's data")
        if ax is None:
            _, ax = plt.subplots()
        df = m.frame
        grid = np.linspace(df[x].min(), df[x].max(), n_grid)
        new = pd.DataFrame({c: ([df[c].mean()] if pd.api.types.is_numeric_dtype(df[c])
                                else [df[c].iloc[0]]) * n_grid for c in df.columns})
        new[x] = grid
        mu = self.predict(new, which="component_means").to_numpy()
        trials = self._designs(new)[4]
        cls = np.repeat(self.classes, np.diff(m.data._bounds()))
        yv = m.data["y"] / (m.data["m"] if m.family.name == "binomial" else 1.0)
        xv = df[x].to_numpy()[m.row_order] if m.row_order is not None else df[x].to_numpy()
        for j in range(m.k):
            sel = cls == j + 1
            pts = ax.scatter(xv[sel], yv[sel], s=10, alpha=0.6, label=f"class {j + 1}")
            # binomial: the success probability, like the plotted proportions
            mu_j = mu[:, j] / trials if m.family.name == "binomial" else mu[:, j]
            ax.plot(grid, mu_j, color=pts.get_facecolor()[0][:3], lw=2)
        ax.set_xlabel(x)
        ax.set_ylabel(m.endog_name)
        ax.legend()
        return ax


MixtureRegression.results_class = MixtureRegressionResults


def mixreg(formula: str, data, k: int, family: str = "gaussian", concomitant=None,
           groups=None, fixed=None, weights=None, offset=None, missing: str = "drop",
           trials=None) -> MixtureRegression:
    """Finite mixture of ``k`` regressions (flexmix's ``flexmix(y ~ x | id, ...)``).

    Parameters
    ----------
    formula : str
        ``"y ~ x1 + x2"``; for the binomial ``"cbind(successes, failures) ~ x"`` or a
        0/1 (or success-count) response with ``trials=``.
    data : pandas.DataFrame
        The data (never modified).
    k : int
        Number of components.
    family : {"gaussian", "poisson", "binomial", "negbin"}
    concomitant : str, optional
        ``"~ z1 + z2"``: multinomial-logit mixing weights (flexmix ``FLXPmultinom``).
    groups : str, optional
        Column whose rows share one component (flexmix ``y ~ x | id``).
    fixed : str, optional
        ``"~ x2"``: coefficients shared by all components (flexmix ``FLXMRglmfix``);
        its terms must not appear in ``formula``.
    weights, offset, trials : column name, array or scalar, optional
        Frequency weights (constant within a group), an offset on the linear predictor,
        binomial trials.
    missing : {"drop", "raise"}

    Returns
    -------
    MixtureRegression
        Call ``.fit()`` (e.g. ``.fit(n_init=10)``) for the results.

    Examples
    --------
    >>> import numpy as np, pandas as pd, emstats
    >>> rng = np.random.default_rng(1)
    >>> x = rng.uniform(0, 10, 400); z = rng.integers(0, 2, 400)
    >>> y = np.where(z == 1, 1 + 2 * x, 12 - x) + rng.normal(0, 1, 400)
    >>> res = emstats.mixreg("y ~ x", pd.DataFrame({"y": y, "x": x}), k=2).fit(n_init=3)
    >>> np.round(res.coefficients.loc["x"].to_numpy(), 1).tolist()
    [-1.0, 2.0]
    """
    return _build(formula, data, k, family=family, concomitant=concomitant, groups=groups,
                  fixed=fixed, weights=weights, offset=offset, missing=missing, trials=trials)


def _build(formula, data, k, *, family="gaussian", concomitant=None, groups=None, fixed=None,
           weights=None, offset=None, missing="drop", trials=None, like=None):
    """:func:`mixreg`.  ``like``: a fitted model whose design information builds the
    designs of ``data`` (new data for predictions: the same columns whatever levels
    ``data`` holds), without the check that the data can identify the parameters."""
    for what, spec in (("offset", offset), ("trials", trials)):
        if spec is _GIVEN_AS_ARRAY:
            raise ValueError(f"predictions on new data need {what}= given as a column "
                             "name when the model was built (it was an array)")
    data = check_frame(data)
    fam = get_family(family)
    formula2, is_cbind = cbind_response(formula)
    if is_cbind and fam.name != "binomial":
        raise DataError("cbind(successes, failures) responses are for family='binomial'")
    resp_vars = lhs_variables(formula)
    extra_mats = {}
    for what, spec in (("concomitant", concomitant), ("fixed", fixed)):
        if spec is None:
            continue
        mat, names, info, used = rhs_matrix(spec, data)
        if what == "concomitant" and set(used) & set(resp_vars):
            raise DataError(f"the concomitant formula {spec!r} contains the response "
                            f"({', '.join(sorted(set(used) & set(resp_vars)))})")
        if what == "fixed":
            keep_cols = [j for j, nm in enumerate(names) if nm != "Intercept"]
            mat, names = mat[:, keep_cols], [names[j] for j in keep_cols]
        extra_mats[what] = (mat, names, info)
    fixed_keep = keep_cols if fixed is not None else None
    extras = {"__w": weights, "__off": offset, "__tr": trials}
    gcodes = None
    if groups is not None:
        if not isinstance(groups, str) or groups not in data.columns:
            raise DataError(f"groups must name a column of the data, got {groups!r}")
        gcodes, glevels = pd.factorize(data[groups], sort=True)
        gcodes = np.where(gcodes < 0, np.nan, gcodes.astype(float))
        extras["__g"] = gcodes
    for what, (mat, _, _) in extra_mats.items():
        extras["__" + what] = np.where(np.isnan(mat).any(axis=1), np.nan, 0.0)
    des = build_design(formula2, data, n_response=2 if is_cbind else 1, extras=extras,
                       missing=missing, offset_key="__off")
    pos = data.index.get_indexer(des.row_labels)
    if is_cbind:
        y = des.endog[:, 0]
        tr = des.endog[:, 0] + des.endog[:, 1]
        if np.any(des.endog < 0):
            raise DataError("cbind(successes, failures): counts must be non-negative")
        endog_name = des.endog_names[0]
    else:
        y = des.endog[:, 0]
        tr = des.extras.get("__tr")
        endog_name = des.endog_names[0]
    X = des.exog
    X2 = extra_mats["fixed"][0][pos] if "fixed" in extra_mats else None
    Z = extra_mats["concomitant"][0][pos] if "concomitant" in extra_mats else None
    if like is not None:
        X, X2, Z = like.new_designs(data.iloc[pos])
        X2 = X2 if like.f else None
        Z = Z if like.concomitant_info is not None else None
    if X2 is not None:
        clash = set(extra_mats["fixed"][1]) & set(des.exog_names)
        if clash:
            raise DataError(f"terms {sorted(clash)} are both in the formula and in fixed=")
    w, off = des.extras.get("__w"), des.extras.get("__off")
    order, ub = None, None
    if gcodes is not None:
        g = des.extras["__g"]
        order = np.argsort(g, kind="stable")
        y, X = y[order], X[order]
        X2 = None if X2 is None else X2[order]
        Z = None if Z is None else Z[order]
        w = None if w is None else w[order]
        off = None if off is None else off[order]
        tr = None if tr is None else tr[order]
        gs = g[order]
        ub = np.concatenate([[0], np.flatnonzero(np.diff(gs)) + 1, [gs.size]])
    frame = data.iloc[pos].reset_index(drop=True)
    model = MixtureRegression(
        y, X, k, family=fam, Z=Z, X2=X2, offset=off, trials=tr, weights=w, unit_bounds=ub,
        exog_names=des.exog_names,
        fixed_names=extra_mats["fixed"][1] if "fixed" in extra_mats else None,
        concomitant_names=extra_mats["concomitant"][1] if "concomitant" in extra_mats
        else None,
        endog_name=endog_name, design_info=des.design_info,
        fixed_info=extra_mats["fixed"][2] if "fixed" in extra_mats else None,
        concomitant_info=extra_mats["concomitant"][2] if "concomitant" in extra_mats
        else None, frame=frame, row_order=order, groups=groups, check_size=like is None)
    model._formula, model._concomitant, model._fixed = formula, concomitant, fixed
    model._offset_spec = _column_spec(offset)
    model._trials_spec = _column_spec(trials)
    model._row_labels = des.row_labels
    model._fixed_keep = fixed_keep
    if ub is not None:
        model._unit_labels = pd.Index(glevels[gs[ub[:-1]].astype(int)], name=groups)
    return model


#: marks an offset or trials given as an array (new data cannot supply it)
_GIVEN_AS_ARRAY = object()


def _column_spec(spec):
    """What predictions on new data reuse: a column name or a scalar (not an array)."""
    if spec is None or isinstance(spec, str) or np.isscalar(spec):
        return spec
    return _GIVEN_AS_ARRAY


class MixregSelection(SavedResults):
    """Fits of a mixture of regressions for several ``k``: a table and a plot."""

    def __init__(self, fits: dict):
        self.fits = fits
        self.table = pd.DataFrame(
            {"k": list(fits), "llf": [r.llf for r in fits.values()],
             "df": [r.k_params for r in fits.values()],
             "AIC": [r.aic for r in fits.values()], "BIC": [r.bic for r in fits.values()],
             "ICL": [r.icl for r in fits.values()]}).set_index("k")

    def remove_data(self) -> None:
        """Drop the data from every fit."""
        for res in self.fits.values():
            res.remove_data()
        self.data_removed = True

    def best(self, criterion: str = "BIC"):
        """The fit minimising ``criterion``.

        Parameters
        ----------
        criterion : {"AIC", "BIC", "ICL"}
            The information criterion (default BIC).
        """
        return self.fits[int(self.table[criterion].idxmin())]

    def __repr__(self) -> str:
        return f"MixregSelection\n{self.table}"

    def plot(self, ax=None):
        """AIC, BIC and ICL against k (matplotlib).

        Parameters
        ----------
        ax : matplotlib.axes.Axes, optional
            Axes to draw on (default: a new figure).
        """
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots()
        for c in ("AIC", "BIC", "ICL"):
            ax.plot(self.table.index, self.table[c], marker="o", label=c)
        ax.set_xlabel("number of components k")
        ax.set_ylabel("criterion (smaller is better)")
        ax.legend()
        return ax


def mixreg_select(formula: str, data, k=range(1, 6), *, fit_kwargs: dict | None = None,
                  **model_kwargs) -> MixregSelection:
    """Fit :func:`mixreg` for each number of components in ``k``.

    Parameters
    ----------
    formula, data :
        As :func:`mixreg`.
    k : iterable of int
        Numbers of components to fit.
    fit_kwargs : dict, optional
        Options of every ``fit()`` (default ``{"n_init": 5}``).
    **model_kwargs
        Options of :func:`mixreg` (family, concomitant, groups, ...).

    Returns
    -------
    MixregSelection
        ``.table`` (llf, df, AIC, BIC, ICL by k), ``.best("BIC")``, ``.plot()``.
    """
    fk = {"n_init": 5, **(fit_kwargs or {})}
    import warnings

    fits = {}
    for kk in k:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fits[int(kk)] = mixreg(formula, data, int(kk), **model_kwargs).fit(**fk)
    return MixregSelection(fits)
