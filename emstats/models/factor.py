"""Maximum-likelihood factor analysis and probabilistic PCA by EM, with missing values.

The model is x = mu + L f + e with f ~ N(0, I_q) and e ~ N(0, Psi), Psi diagonal
(factor analysis) or sigma^2 I (probabilistic PCA; Tipping & Bishop 1999), so that
x ~ N(mu, L L' + Psi).  EM takes the factors f -- and, when values are missing, the
missing coordinates of x -- as the missing data (Rubin & Thayer 1982; Roweis 1998).

The E-step is that of the multivariate normal with missing values
(:mod:`emstats.components.gaussian_missing`) applied to the augmented vector
y = (x, f), whose mean is (mu, 0) and covariance [[L L' + Psi, L], [L', I]]: the
factors are simply coordinates that are never observed.  So rows are grouped by
missingness pattern once, at construction, and an iteration costs O(P (d + q)^3) for
P patterns whatever the number of rows.  The statistics are sum E[y - c] and
sum E[(y - c)(y - c)'] about a fixed centre c; the M-step is the regression of x on
(1, f) with diagonal (or isotropic) residual covariance, which is exact: with the same
regressors in every equation, equation-by-equation least squares is the ML solution,
and the uniquenesses are the residual variances given the new loadings (the ECM step of
the uniquenesses is in fact a full maximisation).

Identification.  The likelihood depends on L only through L L': it is flat along
rotations L -> L R.  The parameters are therefore identified by the *echelon*
constraint (Anderson & Rubin 1956; Joreskog 1969): the loadings of variable i on
factors j > i are zero and the diagonal L_ii is positive (the first q variables should
not be nearly collinear in their loadings).  Every M-step ends by rotating the new
loadings to that form (an orthogonal rotation, which leaves the observed-data
likelihood unchanged, so the iteration is still monotone), and the standard errors are
those of the free coordinates.  The unrotated loadings that R's ``factanal`` prints
(L' Psi^-1 L diagonal, decreasing) and any rotation are computed from the echelon
estimate afterwards.

Louis' pieces.  The complete data are y = (x, f); its log-likelihood is the augmented
normal's at (mu_y(theta), Sigma_y(theta)).  :func:`louis_full` gives the expected score,
the complete information and the conditional covariance of the complete-data score in
the coordinates (mu_y, vec Sigma_y); the chain rule maps them to theta, the complete
information gaining the term - sum_ab g_ab d^2 Sigma_ab / d theta^2 from the quadratic
dependence of Sigma_xx on L (g the expected score).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats as _st

from ..components.gaussian_missing import (
    conditional_draw,
    estep_sums,
    louis_sums,
    pattern_moments,
)
from ..em.data import ArrayData
from ..em.params import Free, ParamSpec, Positive, SpecMaps
from ..em.protocol import ChunkedModel, LouisPieces
from ..em.stats import Stats
from ..exceptions import DataError
from ..inference.fit import FitMixin
from ..inference.results import EMResults
from .mvn import MVN

ROTATIONS = (None, "varimax", "quartimax", "promax", "oblimin", "quartimin")
#: oblique rotations: the rotated factors are correlated
OBLIQUE = ("promax", "oblimin", "quartimin")


def factor_df(d: int, q: int) -> int:
    """Degrees of freedom of the q-factor model against the saturated covariance model."""
    return ((d - q) ** 2 - (d + q)) // 2


def echelon(L: np.ndarray) -> np.ndarray:
    """``L R`` with R orthogonal such that the top q x q block is lower triangular with a
    positive diagonal (the identified form of this module)."""
    q = L.shape[1]
    Q, R = np.linalg.qr(L[:q].T)
    s = np.sign(np.diag(R))
    s[s == 0] = 1.0
    out = L @ (Q * s)
    out[:q][np.triu_indices(q, 1)] = 0.0
    return out


def canonical_loadings(L: np.ndarray, psi: np.ndarray) -> np.ndarray:
    """The unrotated loadings of ``factanal``: L' Psi^-1 L diagonal, decreasing, and each
    column summing to a nonnegative number."""
    M = L.T @ (L / psi[:, None])
    w, V = np.linalg.eigh(0.5 * (M + M.T))
    out = L @ V[:, np.argsort(w)[::-1]]
    s = np.sign(out.sum(axis=0))
    s[s == 0] = 1.0
    return out * s


def rotate(L: np.ndarray, method: str | None, *, normalize: bool | None = None,
           tol: float | None = None):
    """Rotate loadings with statsmodels' ``factor_rotation``.

    Parameters
    ----------
    L : (d, q) ndarray
        Unrotated loadings.
    method : {None, "varimax", "quartimax", "promax", "oblimin", "quartimin"}
        ``"oblimin"`` is direct oblimin with gamma = 0 (the same criterion as
        quartimin); ``"promax"`` uses power 4, as R's ``promax``.
    normalize : bool, optional
        Kaiser normalisation: rows scaled to unit communality before rotating and
        back after.  Default: for varimax and promax (R's defaults), not for the others
        (GPArotation's default).
    tol : float, optional
        Convergence tolerance of statsmodels' gradient projection algorithm on the norm
        of the projected gradient (default: statsmodels' 1e-5, with its 501 iterations;
        a given ``tol`` allows 5,000 iterations; its line search stalls near 1e-8).

    Returns
    -------
    loadings : (d, q) ndarray
    T : (q, q) ndarray
        The rotation: loadings = L T.
    phi : (q, q) ndarray
        Correlations of the rotated factors (the identity for orthogonal rotations).
    """
    from statsmodels.multivariate.factor_rotation import procrustes, rotate_factors

    q = L.shape[1]
    if method is None or q == 1:
        return L.copy(), np.eye(q), np.eye(q)
    if normalize is None:
        normalize = method in ("varimax", "promax")
    h = np.sqrt((L ** 2).sum(axis=1)) if normalize else np.ones(L.shape[0])
    h = np.where(h > 0, h, 1.0)
    A = L / h[:, None]
    kw = {} if tol is None else {"tol": float(tol), "max_tries": 5000}
    if method == "promax":
        # R's promax(m = 4): varimax (normalised as asked), then the least-squares
        # transformation of the varimax loadings V to the target V |V|^3 (statsmodels'
        # procrustes), its columns scaled so the factors have unit variance
        _, Tv = rotate_factors(A, "varimax", **kw)
        V = L @ Tv
        U = procrustes(V, V * np.abs(V) ** 3)
        U = U * np.sqrt(np.diag(np.linalg.inv(U.T @ U)))[None, :]
        T = Tv @ U
    elif method in ("varimax", "quartimax"):
        _, T = rotate_factors(A, method, **kw)
    else:  # oblimin (gamma = 0) and quartimin: the same oblique criterion
        _, Tstar = rotate_factors(A, "oblimin", 0.0, "oblique", **kw)
        T = np.linalg.inv(Tstar.T)
    out = L @ T
    Ti = np.linalg.inv(T)
    phi = Ti @ Ti.T
    # each factor oriented so its loadings sum to a nonnegative number
    s = np.sign(out.sum(axis=0))
    s[s == 0] = 1.0
    return out * s, T * s, phi * np.outer(s, s)


class FactorAnalysis(SpecMaps, FitMixin, ChunkedModel):
    """Maximum-likelihood exploratory factor analysis by EM, missing values at random.

    Parameters
    ----------
    data : pandas.DataFrame or array_like
        Rows are observations, columns variables; NaN marks a missing value.
    n_factors : int
        Number of common factors q; the model needs positive degrees of freedom,
        ((d - q)^2 - (d + q)) / 2 > 0.
    rotation : {None, "varimax", "quartimax", "promax", "oblimin", "quartimin"}
        Rotation of the reported loadings (statsmodels' ``factor_rotation``; Kaiser
        normalisation for the orthogonal rotations and promax, as in R).
    missing : {"em", "drop", "raise"}
        ``"em"``: full-information maximum likelihood under MAR over all rows with at
        least one observed value; ``"drop"``: complete cases; ``"raise"``: any NaN is an
        error.

    Notes
    -----
    The parameters are the means, the loadings in echelon form (variable i does not
    load on factors j > i; L_ii > 0) and the uniquenesses, on the scale of the data.
    Standard errors are of these coordinates (Louis' observed information; see the
    module docstring). ``loadings`` of the results are the unrotated loadings of R's
    ``factanal`` (L' Psi^-1 L diagonal) and ``rotated_loadings`` their rotation.
    """

    summary_title = "Factor Analysis Results (ML by EM)"
    #: SQUAREM by default: an iteration is O(P (d + q)^3) and Louis' pieces O(P (d + q)^4)
    preferred_method = "squarem"
    isotropic = False
    kind = "factor analysis"
    #: whether a singular sample covariance is allowed (see :class:`MVN`)
    singular_ok = False

    def __init__(self, data, n_factors: int, *, rotation: str | None = None,
                 missing: str = "em"):
        if rotation not in ROTATIONS:
            raise ValueError(f"rotation must be one of {ROTATIONS}, got {rotation!r}")
        if isinstance(n_factors, bool) or not isinstance(n_factors, (int, np.integer)) \
                or n_factors < 1:
            raise DataError(f"n_factors must be a positive integer, got {n_factors!r}")
        # validation, patterns and their sums
        base = MVN(data, missing=missing, _singular_ok=self.singular_ok)
        d, q = base.d, int(n_factors)
        self._check_identified(d, q)
        self.base = base
        self.n_factors, self.d, self.rotation, self.missing = q, d, rotation, missing
        self.names = list(base.names)
        self.endog_name = base.endog_name
        self.factor_names = [f"F{k + 1}" for k in range(q)]
        self.centre = base.centre
        self.patterns = base.patterns
        D = d + q
        P = base.patterns.n_patterns
        obs = np.zeros((P, D), dtype=bool)
        obs[:, :d] = base.patterns.observed
        s = np.zeros((P, D))
        s[:, :d] = base.data["s"]
        S = np.zeros((P, D, D))
        S[:, :d, :d] = base.data["S"]
        self.data = ArrayData({"obs": obs, "n": np.asarray(base.data["n"], float),
                               "s": s, "S": S})
        self.spec = self._make_spec()
        self.nobs = float(base.nobs)
        self.df_model = float(self.spec.size)

    # -- set-up ---------------------------------------------------------------------------
    def _check_identified(self, d, q):
        df = factor_df(d, q)
        if df <= 0:
            best = max((k for k in range(1, d) if factor_df(d, k) > 0), default=0)
            raise DataError(
                f"n_factors={q} is not identified for {d} variables: the model has "
                f"((d - q)^2 - (d + q)) / 2 = {df} degrees of freedom (needs > 0); "
                + (f"at most {best} factor(s) for {d} variables" if best else
                   f"{d} variables identify no factor model"))

    def _make_spec(self):
        d, q = self.d, self.n_factors
        fixed = np.zeros((d, q), dtype=bool)
        fixed[:q][np.triu_indices(q, 1)] = True
        blocks = [Free("mean", (d,), axes=[self.names]),
                  Free("loadings", (d, q), fixed=fixed, axes=[self.names, self.factor_names])]
        blocks.append(Positive("uniq", (d,), axes=[self.names]))
        return ParamSpec(blocks)

    def _psi(self, params) -> np.ndarray:
        return np.asarray(params["uniq"], dtype=float)

    def _params(self, mean, L, psi) -> dict:
        return {"mean": mean, "loadings": echelon(L), "uniq": psi}

    def pairwise_cov(self) -> np.ndarray:
        """The covariance from all rows observing each pair (a start, not an estimate),
        made positive definite."""
        pc = self.base.pair_counts.astype(float)
        s, S = self.base.data["s"], self.base.data["S"]
        obs = self.patterns.observed.astype(float)
        # sums over the rows observing both i and j
        si = np.einsum("pi,pj->ij", s, obs)
        C = S.sum(axis=0) / pc - (si / pc) * (si.T / pc)
        C = 0.5 * (C + C.T)
        w, V = np.linalg.eigh(C)
        floor = 1e-3 * max(float(np.mean(np.diag(C))), 1e-300)
        return (V * np.maximum(w, floor)) @ V.T

    def start_params(self) -> dict:
        """Means from the observed values; uniquenesses (1 - q / 2d) / diag(C^-1) and the
        loadings from the eigenvectors of Psi^-1/2 C Psi^-1/2 (as ``factanal``), C the
        pairwise covariance."""
        d, q = self.d, self.n_factors
        C = self.pairwise_cov()
        pc = self.base.pair_counts.diagonal().astype(float)
        mean = self.centre + self.base.data["s"].sum(axis=0) / pc
        psi = (1.0 - 0.5 * q / d) / np.diag(np.linalg.inv(C))
        if self.isotropic:
            psi = np.full(d, psi.mean())
        r = np.sqrt(psi)
        w, V = np.linalg.eigh(C / np.outer(r, r))
        idx = np.argsort(w)[::-1][:q]
        L = r[:, None] * V[:, idx] * np.sqrt(np.maximum(w[idx] - 1.0, 1e-2))
        return self._params(mean, L, psi if not self.isotropic else psi[:1])

    def check_start(self, start) -> dict:
        keys = [b.name for b in self.spec.blocks]
        try:
            p = {k: np.asarray(start[k], dtype=float) for k in keys}
        except (KeyError, TypeError, IndexError):
            raise ValueError(f"start_params must be a mapping with {keys}") from None
        L = p["loadings"]
        if L.shape != (self.d, self.n_factors):
            raise ValueError(f"start_params: 'loadings' needs shape ({self.d}, "
                             f"{self.n_factors})")
        return self._params(p["mean"], L, self._psi_block(p))

    def _psi_block(self, p):
        return np.asarray(p["uniq"], dtype=float)

    # -- the augmented normal -------------------------------------------------------------
    def augmented(self, params):
        """Mean minus the centre and covariance of y = (x, f)."""
        d, q = self.d, self.n_factors
        L = np.asarray(params["loadings"], dtype=float)
        psi = self._psi(params)
        Sy = np.empty((d + q, d + q))
        Sy[:d, :d] = L @ L.T + np.diag(psi)
        Sy[:d, d:] = L
        Sy[d:, :d] = L.T
        Sy[d:, d:] = np.eye(q)
        mu = np.zeros(d + q)
        mu[:d] = np.asarray(params["mean"], dtype=float) - self.centre
        return mu, Sy

    def _moments(self, params, chunk):
        mu, Sy = self.augmented(params)
        psi = self._psi(params)
        if not (np.all(np.isfinite(Sy)) and np.all(np.isfinite(mu)) and np.all(psi > 0)):
            return None, mu, Sy
        obs, n, s, S = chunk["obs"], chunk["n"], chunk["s"], chunk["S"]
        out = []
        for p in range(n.shape[0]):
            pm = pattern_moments(obs[p], float(n[p]), s[p], S[p], mu, Sy)
            if pm is None:
                return None, mu, Sy
            out.append(pm)
        return out, mu, Sy

    def chunk_stats(self, params, chunk):
        """``n``, ``s`` = sum E[y - c] and ``ss`` = sum E[(y - c)(y - c)'] for y = (x, f)."""
        pms, mu, _ = self._moments(params, chunk)
        if pms is None:
            return None, -np.inf
        nn, s1, s2, ll = estep_sums(pms, mu)
        return Stats(n=nn, s=s1, ss=s2), ll

    def m_step(self, stats, params):
        d = self.d
        n = float(stats["n"])
        s, ss = np.asarray(stats["s"]), np.asarray(stats["ss"])
        q = self.n_factors
        Szz = np.empty((q + 1, q + 1))
        Szz[0, 0] = n
        Szz[0, 1:] = Szz[1:, 0] = s[d:]
        Szz[1:, 1:] = ss[d:, d:]
        Sxz = np.column_stack([s[:d], ss[:d, d:]])
        B = np.linalg.solve(Szz, Sxz.T).T
        rss = ss[:d, :d] - B @ Sxz.T
        psi = np.diag(rss) / n
        if self.isotropic:
            psi = np.array([psi.mean()])
        floor = 1e-12 * np.maximum(np.diag(ss[:d, :d]) / n, 1e-300)
        psi = np.maximum(psi, floor.min() if self.isotropic else floor)
        return self._params(self.centre + B[:, 0], B[:, 1:], psi)

    # -- Louis' pieces ----------------------------------------------------------------------
    def _jacobian(self, params) -> np.ndarray:
        """d (mu_y, vec Sigma_y) / d theta (free coordinates, the inference order)."""
        d, q = self.d, self.n_factors
        D = d + q
        L = np.asarray(params["loadings"], dtype=float)
        free = self.spec["loadings"].free
        cols = []
        for j in range(d):
            c = np.zeros(D + D * D)
            c[j] = 1.0
            cols.append(c)
        for a in range(d):
            for k in range(q):
                if not free[a, k]:
                    continue
                G = np.zeros((D, D))
                G[a, :d] += L[:, k]
                G[:d, a] += L[:, k]
                G[a, d + k] = G[d + k, a] = 1.0
                c = np.zeros(D + D * D)
                c[D:] = G.ravel()
                cols.append(c)
        if self.isotropic:
            G = np.zeros((D, D))
            G[np.arange(d), np.arange(d)] = 1.0
            c = np.zeros(D + D * D)
            c[D:] = G.ravel()
            cols.append(c)
        else:
            for j in range(d):
                c = np.zeros(D + D * D)
                c[D + j * D + j] = 1.0
                cols.append(c)
        return np.column_stack(cols)

    def _curvature(self, g_full) -> np.ndarray:
        """sum_ab g_ab d^2 Sigma_ab / d theta^2: nonzero for pairs of loadings on one
        factor, d^2 Sigma_ij / dL_ak dL_bl = delta_kl (delta_ia delta_jb + delta_ib delta_ja)."""
        d, q = self.d, self.n_factors
        D = d + q
        g = g_full[D:].reshape(D, D)[:d, :d]
        g = g + g.T
        free = self.spec["loadings"].free
        idx = [(a, k) for a in range(d) for k in range(q) if free[a, k]]
        H = np.zeros((self.spec.size, self.spec.size))
        for u, (a, k) in enumerate(idx):
            for v, (b, l) in enumerate(idx):
                if k == l:
                    H[d + u, d + v] = g[a, b]
        return H

    def chunk_louis(self, params, chunk):
        pms, _, Sy = self._moments(params, chunk)
        if pms is None:
            raise FloatingPointError("Louis' pieces need positive uniquenesses")
        sc, co, mi, ll = louis_sums(pms, Sy)
        J = self._jacobian(params)
        return Stats(loglik=ll, score=J.T @ sc, complete=J.T @ co @ J - self._curvature(sc),
                     missing=J.T @ mi @ J)

    def louis_from_stats(self, params, total):
        c, m = np.asarray(total["complete"]), np.asarray(total["missing"])
        return (float(total["loglik"]), np.asarray(total["score"]),
                LouisPieces(0.5 * (c + c.T), 0.5 * (m + m.T)))

    def information_bytes(self) -> int:
        D = self.d + self.n_factors
        return int(8 * 6 * (D + D * D) ** 2)

    # -- the saturated model ----------------------------------------------------------------
    def saturated_loglik(self) -> float:
        """Log-likelihood of the unrestricted normal (mean and covariance free): in closed
        form for complete data, by EM over the patterns otherwise (:func:`emstats.mvn`)."""
        if "_sat" not in self.__dict__:
            if self.patterns.n_patterns == 1 and self.patterns.observed[0].all():
                n = self.nobs
                S = self.base.data["S"][0] / n
                a = self.base.data["s"][0] / n
                S = S - np.outer(a, a)
                _, logdet = np.linalg.slogdet(S)
                self._sat = float(-0.5 * n * (self.d * np.log(2 * np.pi) + logdet + self.d))
            else:
                self._sat = float(self.base.fit(cov_type=None, tol=1e-13, maxiter=5000).llf)
        return self._sat

    def select_n_factors(self, n_factors=None, **fit_kwargs) -> pd.DataFrame:
        """Fit 1, 2, ... factors to the same data: a table to choose their number.

        Parameters
        ----------
        n_factors : iterable of int, optional
            Numbers of factors to fit (default: every number with positive degrees of
            freedom).
        **fit_kwargs
            Passed to each ``fit()`` (standard errors are not computed).

        Returns
        -------
        pandas.DataFrame
            One row per number of factors: log-likelihood, parameters, chi-square against
            the saturated model with its df and p-value, RMSEA, AIC and BIC.
        """
        if n_factors is None:
            n_factors = [k for k in range(1, self.d) if factor_df(self.d, k) > 0]
        rows = []
        fit_kwargs.setdefault("cov_type", None)
        for k in n_factors:
            m = type(self)(self.base.X, k, missing=self.missing)
            m.names, m.base.names = self.names, self.names
            m._sat = self.saturated_loglik()
            r = m.fit(**fit_kwargs)
            rows.append({"n_factors": k, "llf": r.llf, "n_params": r.k_params,
                         "chi2": r.chi2, "df": r.chi2_df, "p_value": r.chi2_pvalue,
                         "rmsea": r.rmsea, "aic": r.aic, "bic": r.bic})
        return pd.DataFrame(rows).set_index("n_factors")

    def results_kwargs(self, params, run):
        return {}


def _align(A, S, P, A0):
    """Columns of the loadings ``A`` and ``S`` (and rows/columns of the correlations
    ``P``) permuted and sign-flipped to match ``A0`` (a perturbed rotation may come back
    in another order or orientation)."""
    q = A0.shape[1]
    C = A0.T @ A
    perm = np.full(q, -1)
    used = set()
    for j in np.argsort(-np.abs(C).max(axis=1)):
        order = [c for c in np.argsort(-np.abs(C[j])) if c not in used]
        perm[j] = order[0]
        used.add(order[0])
    s = np.sign(C[np.arange(q), perm])
    s[s == 0] = 1.0
    return A[:, perm] * s, S[:, perm] * s, P[np.ix_(perm, perm)] * np.outer(s, s)


def _table(frame: pd.DataFrame, fmt: str = "%.4f"):
    """A statsmodels SimpleTable of a numeric DataFrame."""
    from statsmodels.iolib.table import SimpleTable

    data = [[fmt % v for v in row] for row in frame.to_numpy(dtype=float)]
    return SimpleTable(data, headers=[str(c) for c in frame.columns],
                       stubs=[str(i) for i in frame.index])


class FactorResults(EMResults):
    """Results of :class:`FactorAnalysis`: loadings, uniquenesses, fit statistics, factor
    scores and plots."""

    # -- estimates -------------------------------------------------------------------------
    def _frame(self, A, cols=None) -> pd.DataFrame:
        return pd.DataFrame(A, index=self.model.names, columns=cols or self.model.factor_names)

    @property
    def n_factors(self) -> int:
        """Number of factors."""
        return int(self.model.n_factors)

    @property
    def mean(self) -> pd.Series:
        """ML estimates of the means."""
        return pd.Series(self.raw_params["mean"], index=self.model.names, name="mean")

    @property
    def loadings_echelon(self) -> pd.DataFrame:
        """Loadings in the identified (echelon) form of the parameter table."""
        return self._frame(self.raw_params["loadings"])

    @property
    def uniquenesses(self) -> pd.Series:
        """Unique variances Psi (on the scale of the data)."""
        return pd.Series(self.model._psi(self.raw_params), index=self.model.names,
                         name="uniqueness")

    @property
    def loadings(self) -> pd.DataFrame:
        """Unrotated loadings as ``factanal`` reports them: L' Psi^-1 L diagonal with
        decreasing entries, each column summing to a nonnegative number."""
        return self._frame(canonical_loadings(self.raw_params["loadings"],
                                              self.model._psi(self.raw_params)))

    @property
    def communalities(self) -> pd.Series:
        """Common variance of each variable, the row sums of squared loadings."""
        L = self.raw_params["loadings"]
        return pd.Series((L ** 2).sum(axis=1), index=self.model.names, name="communality")

    @property
    def implied_cov(self) -> pd.DataFrame:
        """The model's covariance L L' + Psi."""
        L = self.raw_params["loadings"]
        S = L @ L.T + np.diag(self.model._psi(self.raw_params))
        return pd.DataFrame(S, index=self.model.names, columns=self.model.names)

    def standardized(self) -> tuple[pd.DataFrame, pd.Series]:
        """Unrotated loadings and uniquenesses of the correlation matrix (``factanal``'s
        scale): both divided by the model's standard deviations (squared for Psi)."""
        sd = np.sqrt(np.diag(self.implied_cov.to_numpy()))
        L = self.loadings.to_numpy() / sd[:, None]
        return self._frame(L), self.uniquenesses / sd ** 2

    def _rotate(self, method, normalize=None):
        """The rotation is found on the correlation scale (as ``factanal``: promax's
        least-squares step is not invariant to rescaling the variables) and applied to
        the loadings on the scale of the data."""
        sd = np.sqrt(np.diag(self.implied_cov.to_numpy()))
        L = self.loadings.to_numpy()
        _, T, phi = rotate(L / sd[:, None], method, normalize=normalize)
        return L @ T, T, phi

    def _rotation(self):
        if "rot" not in self.__dict__:
            self.__dict__["rot"] = self._rotate(self.model.rotation)
        return self.__dict__["rot"]

    def rotate(self, method: str | None, normalize: bool | None = None):
        """Rotate the unrotated loadings by ``method`` (see :func:`rotate`).

        Returns
        -------
        loadings : DataFrame; rotation : ndarray (loadings = unrotated @ rotation);
        factor_corr : DataFrame (the identity for orthogonal rotations).
        """
        if method not in ROTATIONS:
            raise ValueError(f"rotation must be one of {ROTATIONS}, got {method!r}")
        A, T, phi = self._rotate(method, normalize)
        f = self.model.factor_names
        return self._frame(A), T, pd.DataFrame(phi, index=f, columns=f)

    @property
    def rotated_loadings(self) -> pd.DataFrame:
        """Loadings after the model's ``rotation`` (the unrotated ones if None)."""
        return self._frame(self._rotation()[0])

    @property
    def rotation_matrix(self) -> np.ndarray:
        """T with rotated_loadings = loadings @ T."""
        return self._rotation()[1]

    @property
    def factor_corr(self) -> pd.DataFrame:
        """Correlations of the rotated factors, (T' T)^-1 (the identity if orthogonal)."""
        f = self.model.factor_names
        return pd.DataFrame(self._rotation()[2], index=f, columns=f)

    # -- standard errors of functions of the loadings (delta method) --------------------------
    def _loadings_at(self, theta, rotated: bool, tol=None):
        """(loadings, standardized loadings, factor correlations) at inference
        coordinates ``theta``: the factanal form, rotated as :meth:`_rotate` does when
        ``rotated``; standardized: divided by the model's standard deviations."""
        model = self.model
        p = model.from_inference(np.asarray(theta, dtype=float))
        L = np.asarray(p["loadings"], dtype=float)
        psi = model._psi(p)
        A = canonical_loadings(L, psi)
        sd = np.sqrt((L ** 2).sum(axis=1) + psi)
        phi = np.eye(A.shape[1])
        if rotated and model.rotation is not None:
            _, T, phi = rotate(A / sd[:, None], model.rotation, tol=tol)
            A = A @ T
        return A, A / sd[:, None], phi

    def _delta(self, rotated: bool, rel_step: float):
        """Estimate and Jacobian (fourth-order central differences in the inference
        coordinates) of the loadings, the standardized loadings and the factor
        correlations, each row-major, stacked."""
        key = ("delta", bool(rotated), float(rel_step))
        if key in self.__dict__:
            return self.__dict__[key]
        theta = np.asarray(self.params, dtype=float)
        # statsmodels' GPA reaches a projected gradient of ~1e-8 at best; at 1e-7 the
        # rotation's error (~1e-7) over a step of 3e-3 and the fourth-order stencil's
        # truncation (~h^4) leave the derivatives good to ~1e-4 relative
        tol = 1e-7
        A0, S0, P0 = self._loadings_at(theta, rotated, tol)
        base = np.concatenate([A0.ravel(), S0.ravel(), P0.ravel()])
        spec = self.model.spec
        J = np.zeros((base.size, theta.size))
        for name in ("loadings", "uniq", "noise_var"):
            if name not in spec.slices:
                continue
            sl = spec.slices[name]
            typical = float(np.median(np.abs(theta[sl]))) or 1.0
            for i in range(sl.start, sl.stop):
                h = rel_step * max(abs(theta[i]), typical)
                vals = []
                for m in (2.0, 1.0, -1.0, -2.0):
                    t = theta.copy()
                    t[i] += m * h
                    A, S, P = self._loadings_at(t, rotated, tol)
                    A, S, P = _align(A, S, P, A0)
                    vals.append(np.concatenate([A.ravel(), S.ravel(), P.ravel()]))
                J[:, i] = (-vals[0] + 8 * vals[1] - 8 * vals[2] + vals[3]) / (12 * h)
        self.__dict__[key] = (base, J)
        return base, J

    def _delta_se(self, rotated, rel_step):
        """Standard errors of (loadings, standardized loadings, factor correlations)."""
        V = np.asarray(self.cov_params(), dtype=float)
        if not np.all(np.isfinite(V)):
            raise ValueError("no standard errors: fit with cov_type='louis' (the default), "
                             "'numerical' or 'bootstrap'")
        _, J = self._delta(rotated, rel_step)
        se = np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", J, V, J), 0.0))
        d, q = self.model.d, self.n_factors
        return (se[:d * q].reshape(d, q), se[d * q:2 * d * q].reshape(d, q),
                se[2 * d * q:].reshape(q, q))

    def loadings_bse(self, rotated: bool = True, standardized: bool = False,
                     rel_step: float = 3e-3) -> pd.DataFrame:
        """Standard errors of the (rotated) loadings by the delta method.

        The factanal form and any rotation are functions of the estimated echelon
        loadings and uniquenesses (the rotation an implicit one: the optimum of its
        criterion); their Jacobian is taken by fourth-order central differences, the
        rotation solved to a projected-gradient norm of 1e-7 at every perturbed point
        (derivatives good to ~1e-4 relative), and the covariance is J V J' with V the
        parameters' covariance (``cov_type``).

        Parameters
        ----------
        rotated : bool
            The model's rotation (default) or the unrotated ``loadings``.
        standardized : bool
            Loadings divided by the model's standard deviations (the correlation scale of
            :meth:`loadings_table`; the standard deviations vary with the parameters too).
        rel_step : float
            Step of the differences relative to each coordinate (at least the median
            magnitude of its block).

        Returns
        -------
        pandas.DataFrame
            d x q, in the layout of ``rotated_loadings`` (or ``loadings``).
        """
        raw, std, _ = self._delta_se(rotated, rel_step)
        return self._frame(std if standardized else raw)

    def factor_corr_bse(self, rel_step: float = 3e-3) -> pd.DataFrame:
        """Standard errors of the rotated factors' correlations (delta method, as
        :meth:`loadings_bse`); zero for an orthogonal rotation.

        Parameters
        ----------
        rel_step : float
            Step of the differences relative to each coordinate.

        Returns
        -------
        pandas.DataFrame
        """
        se = self._delta_se(True, rel_step)[2]
        f = self.model.factor_names
        return pd.DataFrame(se, index=f, columns=f)

    # -- fit statistics ----------------------------------------------------------------------
    @property
    def llf_saturated(self) -> float:
        """Log-likelihood of the unrestricted normal model on the same rows."""
        return self.model.saturated_loglik()

    @property
    def chi2(self) -> float:
        """Likelihood-ratio statistic against the saturated model, 2 (llf_sat - llf)
        (lavaan's ``chisq``; no Bartlett correction)."""
        return float(max(2.0 * (self.llf_saturated - self.llf), 0.0))

    @property
    def chi2_df(self) -> int:
        """Degrees of freedom: the saturated model's d + d(d + 1)/2 parameters minus the
        model's (((d - q)^2 - (d + q)) / 2 for factor analysis)."""
        d = self.model.d
        return int(d + d * (d + 1) // 2 - self.k_params)

    @property
    def chi2_pvalue(self) -> float:
        """P(chi2_df > chi2)."""
        return float(_st.chi2.sf(self.chi2, self.chi2_df))

    @property
    def chi2_bartlett(self) -> float:
        """Bartlett's corrected statistic (n - 1 - (2d + 5)/6 - 2q/3) F of ``factanal``,
        F = 2 (llf_sat - llf) / n; complete data only (NaN with missing values)."""
        if self.model.patterns.n_patterns > 1:
            return float("nan")
        n, d, q = self.nobs, self.model.d, self.n_factors
        return float((n - 1 - (2 * d + 5) / 6 - 2 * q / 3) * self.chi2 / n)

    @property
    def rmsea(self) -> float:
        """Root mean square error of approximation, sqrt(max(chi2 - df, 0) / (df n))
        (lavaan's, with n rows)."""
        df = self.chi2_df
        return float(np.sqrt(max(self.chi2 - df, 0.0) / (df * self.nobs)))

    # -- factor scores -----------------------------------------------------------------------
    def factor_scores(self, data=None, method: str = "regression",
                      rotated: bool = True) -> pd.DataFrame:
        """Factor scores of the rows of ``data`` (default: the fitted rows).

        Parameters
        ----------
        data : DataFrame or array_like, optional
            Rows with the model's columns; NaN allowed (a row's scores then use its
            observed values only).
        method : {"regression", "bartlett"}
            ``"regression"`` (Thomson): E[f | x_o] = Lambda_o' Sigma_oo^-1 (x_o - mu_o)
            with Lambda the loadings times the factor correlations; ``"bartlett"``:
            weighted least squares, (L_o' Psi_o^-1 L_o)^-1 L_o' Psi_o^-1 (x_o - mu_o).
        rotated : bool
            Scores of the rotated factors (default) or of the unrotated ones.

        Returns
        -------
        pandas.DataFrame
        """
        if method not in ("regression", "bartlett"):
            raise ValueError(f"method must be 'regression' or 'bartlett', got {method!r}")
        X, index = self._rows(data)
        L = (self.rotated_loadings if rotated else self.loadings).to_numpy()
        phi = self.factor_corr.to_numpy() if rotated else np.eye(self.n_factors)
        mu = self.raw_params["mean"]
        psi = self.model._psi(self.raw_params)
        if psi.size == 1:
            psi = np.full(self.model.d, psi[0])
        S = L @ phi @ L.T + np.diag(psi)
        out = np.full((X.shape[0], self.n_factors), np.nan)
        obs = ~np.isnan(X)
        keys, inv = np.unique(obs, axis=0, return_inverse=True)
        for p, key in enumerate(keys):
            rows = np.flatnonzero(inv.ravel() == p)
            o = np.flatnonzero(key)
            if o.size == 0:
                continue
            Z = X[np.ix_(rows, o)] - mu[o]
            if method == "regression":
                B = np.linalg.solve(S[np.ix_(o, o)], L[o] @ phi)
            else:
                Lw = L[o] / psi[o, None]
                B = Lw @ np.linalg.inv(L[o].T @ Lw)
            out[rows] = Z @ B
        return pd.DataFrame(out, index=index, columns=self.model.factor_names)

    def _rows(self, data):
        if data is None:
            return self.model.base.X, self.model.base.row_labels
        if isinstance(data, pd.DataFrame):
            missing = [c for c in self.model.names if c not in data.columns]
            if missing:
                raise DataError("data lacks the model's column(s): " + ", ".join(missing))
            return data[self.model.names].to_numpy(dtype=float), data.index
        X = np.asarray(data, dtype=float)
        if X.ndim != 2 or X.shape[1] != self.model.d:
            raise DataError(f"data must have {self.model.d} columns, got shape {X.shape}")
        return X, pd.RangeIndex(X.shape[0])

    # -- presentation ---------------------------------------------------------------------------
    def loadings_table(self) -> pd.DataFrame:
        """Rotated loadings with communalities and uniquenesses, standardized to the
        correlation scale (as ``factanal`` prints them)."""
        sd = np.sqrt(np.diag(self.implied_cov.to_numpy()))
        t = self.rotated_loadings / sd[:, None]
        t["communality"] = self.communalities / sd ** 2
        t["uniqueness"] = self.uniquenesses.to_numpy() / sd ** 2 if \
            self.uniquenesses.size == sd.size else float(self.uniquenesses.iloc[0]) / sd ** 2
        return t

    def _summary_rows(self):
        left = [("No. Factors:", [str(self.n_factors)]),
                ("Rotation:", [str(self.model.rotation)])]
        right = [("Chi2 vs saturated:", [f"{self.chi2:.4f} (df {self.chi2_df})"]),
                 ("Prob (Chi2):", [f"{self.chi2_pvalue:.4g}"]),
                 ("RMSEA:", [f"{self.rmsea:.4f}"])]
        return left, right

    def _summary_notes(self):
        notes = super()._summary_notes()
        q = self.n_factors
        if q > 1:
            notes.append("Identification: loadings in echelon form (variable i has zero "
                         "loadings on factors j > i, L_ii > 0); standard errors refer to "
                         "these coordinates. res.loadings: the unrotated loadings with "
                         "L'Psi^-1 L diagonal; res.rotated_loadings: the rotation.")
        if self.model.patterns.n_patterns > 1 or self.model.base.n_dropped:
            frac = float(np.isnan(self.model.base.X).mean())
            notes.append(f"{100 * frac:.1f}% of the values missing in "
                         f"{self.model.patterns.n_patterns} patterns: full-information ML "
                         f"under MAR; {self.model.base.n_dropped} row(s) dropped.")
        return notes

    def summary(self, alpha: float = 0.05, title: str | None = None):
        """The statsmodels summary with the (standardized, rotated) loadings table."""
        smry = super().summary(alpha=alpha, title=title)
        smry.tables.append(_table(self.loadings_table()))
        return smry

    def plot_loadings(self, ax=None, rotated: bool = True, standardized: bool = True,
                      cmap: str = "RdBu_r"):
        """Heat map of the loadings (matplotlib required).

        Parameters
        ----------
        ax : matplotlib Axes, optional
        rotated : bool
            The rotated loadings (default) or the unrotated ones.
        standardized : bool
            On the correlation scale (default).
        cmap : str
            A diverging colour map, centred at zero.

        Returns
        -------
        matplotlib Axes
        """
        try:
            import matplotlib.pyplot as plt
        except ImportError as err:  # pragma: no cover - depends on the environment
            raise ImportError("plot_loadings needs matplotlib: pip install emstats[plot]") \
                from err
        L = (self.rotated_loadings if rotated else self.loadings).to_numpy()
        if standardized:
            L = L / np.sqrt(np.diag(self.implied_cov.to_numpy()))[:, None]
        if ax is None:
            _, ax = plt.subplots(figsize=(1.2 + 0.7 * L.shape[1], 0.8 + 0.35 * L.shape[0]))
        v = float(np.max(np.abs(L))) or 1.0
        im = ax.imshow(L, cmap=cmap, vmin=-v, vmax=v, aspect="auto")
        ax.set_xticks(range(L.shape[1]), self.model.factor_names)
        ax.set_yticks(range(L.shape[0]), self.model.names)
        for i in range(L.shape[0]):
            for j in range(L.shape[1]):
                ax.text(j, i, f"{L[i, j]:.2f}", ha="center", va="center", fontsize=7)
        ax.figure.colorbar(im, ax=ax, shrink=0.8)
        ax.set_title(f"{'rotated (' + str(self.model.rotation) + ')' if rotated else 'unrotated'}"
                     " loadings")
        return ax


FactorAnalysis.results_class = FactorResults


class PPCA(FactorAnalysis):
    """Probabilistic PCA by EM (Tipping & Bishop 1999; Roweis 1998), missing values at
    random: the factor model with isotropic noise, x = mu + W z + e, e ~ N(0, sigma^2 I).

    Parameters
    ----------
    data : pandas.DataFrame or array_like
        NaN marks a missing value.
    n_components : int
        Number of components q < d - 1 ... any q with d - q >= 2 (so that the noise
        variance is identified by more than one eigenvalue).
    missing : {"em", "drop", "raise"}
        As for :class:`FactorAnalysis`.

    Notes
    -----
    With complete data the MLE is in closed form (Tipping & Bishop, eq. 7-8): sigma^2 the
    mean of the d - q smallest eigenvalues of the ML covariance and W = U_q (Lambda_q -
    sigma^2 I)^1/2 R; EM reaches it and handles missing values, where no closed form
    exists. The parameters are identified by the echelon form, as in
    :class:`FactorAnalysis`; ``components`` are the orthogonal principal axes.
    """

    summary_title = "Probabilistic PCA Results (ML by EM)"
    isotropic = True
    kind = "probabilistic PCA"

    singular_ok = True      # the likelihood is bounded while the rank exceeds q

    def __init__(self, data, n_components: int, *, missing: str = "em"):
        super().__init__(data, n_components, rotation=None, missing=missing)
        self.factor_names = [f"PC{k + 1}" for k in range(self.n_factors)]
        self.spec = self._make_spec()

    def _check_identified(self, d, q):
        if q > d - 2:
            raise DataError(f"n_components={q} is too many for {d} variables: probabilistic "
                            f"PCA needs n_components <= d - 2 = {d - 2}")

    def _make_spec(self):
        d, q = self.d, self.n_factors
        fixed = np.zeros((d, q), dtype=bool)
        fixed[:q][np.triu_indices(q, 1)] = True
        return ParamSpec([Free("mean", (d,), axes=[self.names]),
                          Free("loadings", (d, q), fixed=fixed,
                               axes=[self.names, getattr(self, "factor_names", None)
                                     or [f"PC{k + 1}" for k in range(q)]]),
                          Positive("noise_var", (1,), label=lambda idx: "noise_var")])

    def _psi(self, params):
        return np.full(self.d, float(np.asarray(params["noise_var"]).ravel()[0]))

    def _psi_block(self, p):
        return np.asarray(p["noise_var"], dtype=float).ravel()[:1]

    def _params(self, mean, L, psi):
        return {"mean": mean, "loadings": echelon(L),
                "noise_var": np.asarray(psi, dtype=float).ravel()[:1]}


class PPCAResults(FactorResults):
    """Results of :class:`PPCA`: components, explained variance, the noise variance,
    ``transform``, ``inverse_transform`` and ``impute``."""

    @property
    def noise_variance(self) -> float:
        """sigma^2, the variance of the isotropic noise."""
        return float(np.asarray(self.raw_params["noise_var"]).ravel()[0])

    def _eig(self):
        W = self.raw_params["loadings"]
        U, s, _ = np.linalg.svd(W, full_matrices=False)
        sgn = np.sign(U.sum(axis=0))
        sgn[sgn == 0] = 1.0
        return U * sgn, s ** 2

    @property
    def components(self) -> pd.DataFrame:
        """Principal axes (orthonormal columns, decreasing variance), d x q."""
        return self._frame(self._eig()[0])

    @property
    def loadings(self) -> pd.DataFrame:
        """W with orthogonal columns, U_q (Lambda_q - sigma^2 I)^1/2 (Tipping & Bishop)."""
        U, s2 = self._eig()
        return self._frame(U * np.sqrt(s2))

    @property
    def explained_variance(self) -> pd.Series:
        """Model variance along each principal axis, Lambda_k = |w_k|^2 + sigma^2."""
        return pd.Series(self._eig()[1] + self.noise_variance, index=self.model.factor_names,
                         name="explained_variance")

    @property
    def explained_variance_ratio(self) -> pd.Series:
        """explained_variance over the total variance trace(W W' + sigma^2 I)."""
        total = float(np.trace(self.implied_cov.to_numpy()))
        return (self.explained_variance / total).rename("explained_variance_ratio")

    def transform(self, data=None) -> pd.DataFrame:
        """Posterior means of the components, E[z | x_o] (NaN allowed), in the axes of
        ``components`` (scaled by sqrt(Lambda_k - sigma^2))."""
        return self.factor_scores(data, method="regression", rotated=True)

    def inverse_transform(self, Z) -> pd.DataFrame:
        """The data reconstructed from component scores: mu + W z."""
        Z = np.atleast_2d(np.asarray(Z, dtype=float))
        out = Z @ self.loadings.to_numpy().T + self.raw_params["mean"]
        return pd.DataFrame(out, columns=self.model.names)

    def impute(self, data=None) -> pd.DataFrame:
        """Missing values replaced by their conditional means given the observed values
        under the fitted covariance W W' + sigma^2 I."""
        X, index = self._rows(data)
        mu = self.raw_params["mean"]
        S = self.implied_cov.to_numpy()
        out = X.copy()
        obs = ~np.isnan(X)
        keys, inv = np.unique(obs, axis=0, return_inverse=True)
        for p, key in enumerate(keys):
            if key.all():
                continue
            rows = np.flatnonzero(inv.ravel() == p)
            out[rows] = conditional_draw(X[rows], mu, S, None)
        return pd.DataFrame(out, index=index, columns=self.model.names)

    def _summary_rows(self):
        left, right = super()._summary_rows()
        return left[:1], right + [("Noise variance:", [f"{self.noise_variance:.5g}"])]

    def summary(self, alpha: float = 0.05, title: str | None = None):
        smry = EMResults.summary(self, alpha=alpha, title=title)
        t = pd.DataFrame({"explained_variance": self.explained_variance,
                          "ratio": self.explained_variance_ratio})
        smry.tables.append(_table(t))
        return smry


PPCA.results_class = PPCAResults


def factor_analysis(data, n_factors: int, *, rotation: str | None = None,
                    missing: str = "em") -> FactorAnalysis:
    """Maximum-likelihood factor analysis by EM (see :class:`FactorAnalysis`).

    Parameters
    ----------
    data : pandas.DataFrame or array_like
        NaN marks a missing value.
    n_factors : int
        Number of common factors (the model must keep positive degrees of freedom).
    rotation : {None, "varimax", "quartimax", "promax", "oblimin", "quartimin"}
        Rotation of the reported loadings (statsmodels' ``rotate_factors``).
    missing : {"em", "drop", "raise"}
        Missing values integrated out under MAR (full-information ML), rows with any
        dropped, or an error.

    Returns
    -------
    FactorAnalysis
        Call ``.fit()`` for the results.

    Examples
    --------
    >>> import numpy as np, emstats
    >>> rng = np.random.default_rng(0)
    >>> f = rng.standard_normal((500, 1))
    >>> x = f @ np.array([[1.0, 0.8, 0.6, 0.7]]) + 0.5 * rng.standard_normal((500, 4))
    >>> res = emstats.factor_analysis(x, 1).fit()
    >>> res.chi2_df
    2
    """
    return FactorAnalysis(data, n_factors, rotation=rotation, missing=missing)


def ppca(data, n_components: int, *, missing: str = "em") -> PPCA:
    """Probabilistic PCA by EM (see :class:`PPCA`).

    Parameters
    ----------
    data : pandas.DataFrame or array_like
        NaN marks a missing value.
    n_components : int
        Number of principal components.
    missing : {"em", "drop", "raise"}
        As in :func:`factor_analysis`.

    Returns
    -------
    PPCA
        Call ``.fit()`` for the results.
    """
    return PPCA(data, n_components, missing=missing)


__all__ = ["FactorAnalysis", "FactorResults", "PPCA", "PPCAResults", "echelon", "factor_analysis",
           "ppca", "rotate", "canonical_loadings", "factor_df"]

