"""The multivariate normal with values missing at random: EM over missingness patterns.

The original use of EM (Orchard & Woodbury 1972; Dempster, Laird & Rubin 1977,
section 4.1.3; Little & Rubin 2002, chapter 11).  Rows are grouped by their pattern of
missing values at construction and each pattern is reduced to its count, the sums and
the cross-products of its observed values (one pass over the data, BLAS); every EM
iteration, the log-likelihood and Louis' information then cost O(P d^3) for P patterns,
whatever the number of rows (:mod:`emstats.components.gaussian_missing`).  The E-step
statistics are sum E[x] and sum E[x x'] given the observed values (about a fixed
centre: additive over patterns, chunks and parameter values); the M-step is the
sample mean and ML covariance of the completed moments.

Parameters are the mean vector and the covariance matrix, packed through the
log-Cholesky factor (so SQUAREM's extrapolations stay positive definite) and reported
as the elements of the lower triangle (``mean(a)``, ``var(a)``, ``cov(b,a)``), the
parameterisation of lavaan and of the textbooks.  Standard errors come from Louis'
observed information under MAR (not the expected information, which is wrong when the
data are MAR but not MCAR; Kenward & Molenberghs 1998).
"""

from __future__ import annotations

from collections import namedtuple
from functools import cached_property

import numpy as np
import pandas as pd
from scipy import stats as _st

from ..components.gaussian_missing import (
    column_counts,
    conditional_draw,
    estep_sums,
    full_to_elements,
    group_patterns,
    louis_sums,
    pattern_moments,
    pattern_sums,
)
from ..em.data import ArrayData
from ..em.params import Cholesky, Free, ParamSpec, SpecMaps
from ..em.protocol import ChunkedModel, LouisPieces
from ..em.stats import Stats
from ..exceptions import DataError
from ..inference.fit import FitMixin
from ..inference.results import EMResults

#: a pair of columns must be observed together in at least this many rows
MIN_PAIR_ROWS = 2

MCARTest = namedtuple("MCARTest", ["statistic", "df", "pvalue"])
MCARTest.__doc__ = "Little's (1988) test of missing completely at random."


def _as_frame(data) -> pd.DataFrame:
    """The data as a DataFrame of float columns, or a DataError naming what is wrong."""
    if isinstance(data, dict):
        data = pd.DataFrame(data)
    if isinstance(data, pd.Series):
        data = data.to_frame()
    if isinstance(data, pd.DataFrame):
        bad = [str(c) for c in data.columns
               if not (pd.api.types.is_numeric_dtype(data[c])
                       or pd.api.types.is_bool_dtype(data[c]))]
        if bad:
            raise DataError("mvn needs numeric columns; not numeric: " + ", ".join(bad)
                            + " (select the numeric columns, or code them as numbers)")
        frame = pd.DataFrame({str(c): np.asarray(data[c], dtype=float) for c in data.columns},
                             index=data.index)
        if frame.columns.size != data.columns.size:
            raise DataError("column names must be distinct")
        return frame
    arr = np.asarray(data)
    if arr.dtype.kind not in "biuf":
        raise DataError(f"mvn needs numeric data, got an array of dtype {arr.dtype}")
    arr = np.asarray(arr, dtype=float)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise DataError(f"data must be 2-dimensional (rows x variables), got shape {arr.shape}")
    return pd.DataFrame(arr, columns=[f"x{j + 1}" for j in range(arr.shape[1])])


def linear_dependence(C: np.ndarray, tol: float = 1e-11) -> tuple[int, list[int]] | None:
    """An exact linear dependence among the variables of the covariance matrix ``C``:
    ``(j, others)`` for the first variable j that is a linear combination of earlier ones
    (``others``, up to a residual variance of ``tol`` in correlation units), else None.

    By a Cholesky factorisation of the correlation matrix in column order, each variable's
    residual variance given the independent ones before it."""
    sd = np.sqrt(np.diag(C))
    R = C / np.outer(sd, sd)
    d = R.shape[0]
    L = np.zeros((d, d))
    kept: list[int] = []
    for j in range(d):
        row = np.linalg.solve(L[np.ix_(kept, kept)], R[kept, j]) if kept else np.zeros(0)
        resid = R[j, j] - row @ row
        if not resid > tol:
            b = np.linalg.solve(R[np.ix_(kept, kept)], R[kept, j])
            return j, [k for k, bk in zip(kept, b, strict=True) if abs(bk) > 1e-8]
        L[j, kept] = row
        L[j, j] = np.sqrt(resid)
        kept.append(j)
    return None


def row_scores(X, mu, sigma, patterns) -> np.ndarray:
    """Observed-data score of each row of ``X`` (NaN where missing) about (mu, vec Sigma):
    W e for the mean and (W (e e' + C) W - W) / 2 for Sigma, with W = Sigma^-1, e the
    row's deviations from the mean with the missing ones replaced by their conditional
    expectation and C their conditional covariance.  ``patterns`` yields
    ``(rows, observed)`` for each missingness pattern: the row indices and the boolean
    mask of the observed columns.  Returns an n x (d + d^2) array."""
    d = X.shape[1]
    W = np.linalg.inv(sigma)
    W = 0.5 * (W + W.T)
    out = np.empty((X.shape[0], d + d * d))
    for rows, o in patterns:
        u = ~o
        e = np.zeros((rows.size, d))
        e[:, o] = X[np.ix_(rows, np.flatnonzero(o))] - mu[o]
        C = np.zeros((d, d))
        if u.any():
            B = np.linalg.solve(sigma[np.ix_(o, o)], sigma[np.ix_(o, u)])
            e[:, u] = e[:, o] @ B
            C[np.ix_(u, u)] = sigma[np.ix_(u, u)] - sigma[np.ix_(u, o)] @ B
        su = e @ W
        G = 0.5 * (np.einsum("ni,nj->nij", su, su) + W @ C @ W - W)
        out[rows] = np.hstack([su, G.reshape(rows.size, -1)])
    return out


class MVN(SpecMaps, FitMixin, ChunkedModel):
    """Multivariate normal mean and covariance by EM, with values missing at random.

    Parameters
    ----------
    data : pandas.DataFrame or array_like
        Rows are observations, columns variables; NaN marks a missing value.
    missing : {"em", "drop", "raise"}
        ``"em"`` (default): maximum likelihood under MAR over all rows with at least
        one observed value (rows with none carry no information and are dropped and
        counted); ``"drop"``: complete cases only; ``"raise"``: any missing value is
        a :class:`~emstats.exceptions.DataError`.

    Other Parameters
    ----------------
    _dropped_before : int
        Internal: rows already dropped by :func:`emstats.mvn` (counted in the summary).
    _singular_ok : bool
        Internal: accept a singular sample covariance (probabilistic PCA, whose likelihood
        is bounded there); otherwise an exactly dependent column is a DataError.

    Attributes
    ----------
    names : list of str
        The variables.
    patterns : Patterns
        The rows grouped by missingness pattern.
    n_dropped : int
        Rows dropped (no observed value, or incomplete with ``missing="drop"``).

    Notes
    -----
    Bad input is a :class:`~emstats.exceptions.DataError` naming the column(s): a
    non-numeric column, an infinite value, a column with fewer than two observed
    values, a pair of columns observed together in fewer than two rows (their
    covariance does not enter the likelihood), a column constant where observed,
    or no more rows than variables.

    Examples
    --------
    >>> import numpy as np, emstats
    >>> x = np.array([[1.0, 2.0], [2.0, np.nan], [3.0, 5.0], [4.0, 4.0], [np.nan, 1.0]])
    >>> res = emstats.mvn(x).fit()
    >>> res.pattern_table["n"].tolist()
    [3, 1, 1]
    """

    summary_title = "Multivariate Normal Results (EM, missing at random)"
    #: the default scheme, by measurement (benchmarks/bench_mvn.py, docs/mvn.md): SQUAREM
    #: reaches the Newton fit's maximum in half its time at n = 1e6, d = 10, since an
    #: E-step costs O(P d^3) and Louis' pieces O(P d^4)
    preferred_method = "squarem"

    #: whether a singular sample covariance is allowed (probabilistic PCA's likelihood is
    #: bounded there; the normal's and the factor model's are not)
    singular_ok = False

    def __init__(self, data, *, missing: str = "em", _dropped_before: int = 0,
                 _singular_ok: bool = False):
        if missing not in ("em", "drop", "raise"):
            raise ValueError(f"missing must be 'em', 'drop' or 'raise', got {missing!r}")
        if isinstance(data, np.ndarray) and data.dtype.kind in "biuf" and data.ndim in (1, 2):
            # an array is read where it is (no DataFrame, no copy; never written to)
            X = np.asarray(data, dtype=float)
            X = X[:, None] if X.ndim == 1 else X
            names = [f"x{j + 1}" for j in range(X.shape[1])]
            index = pd.RangeIndex(X.shape[0])
        else:
            frame = _as_frame(data)     # a DataFrame of our own float columns
            X = frame.to_numpy(dtype=float)
            names = [str(c) for c in frame.columns]
            index = frame.index
        self.singular_ok = bool(_singular_ok)
        if X.shape[1] == 0 or X.shape[0] == 0:
            raise DataError(f"data must have at least one row and one column, got shape "
                            f"{X.shape}")
        if np.isinf(X).any():
            cols = [names[j] for j in np.flatnonzero(np.isinf(X).any(axis=0))]
            raise DataError("infinite values in column(s) " + ", ".join(cols))
        nan = np.isnan(X)
        empty = [names[j] for j in np.flatnonzero(nan.all(axis=0))]
        if empty:
            raise DataError("column(s) entirely missing: " + ", ".join(empty))
        if missing == "raise" and nan.any():
            cols = [f"{names[j]} ({int(nan[:, j].sum())})" for j in
                    np.flatnonzero(nan.any(axis=0))]
            raise DataError("missing values in column(s) " + ", ".join(cols)
                            + "; use missing='em' for maximum likelihood under MAR")
        keep = ~nan.all(axis=1) if missing == "em" else ~nan.any(axis=1)
        n_drop = int((~keep).sum())
        # the rows kept: a read-only view when every row is kept (the caller's data are
        # never copied nor modified), else a copy of the kept rows
        X = np.ascontiguousarray(X) if keep.all() else np.ascontiguousarray(X[keep])
        X = X.view()
        X.flags.writeable = False
        n, d = X.shape
        if n <= d:
            raise DataError(f"{n} usable row(s) for {d} variables: the covariance matrix "
                            "needs more rows than variables")
        self.names = names
        self.endog_name = names[0] if d == 1 else f"{names[0]}..{names[-1]} ({d} variables)"
        self.row_labels = index[keep]
        self.n_dropped = n_drop + int(_dropped_before)
        self.missing = missing
        self.X = X
        patterns = group_patterns(X)
        # a fixed centre near the means (any fixed value is valid; near the means keeps
        # the moments well conditioned): the mean of a systematic sample of rows
        sample = X[:: max(1, n // 20_000)]
        cnt_s = (~np.isnan(sample)).sum(axis=0)
        with np.errstate(invalid="ignore"):
            centre = np.nansum(sample, axis=0) / cnt_s
        for j in np.flatnonzero(cnt_s == 0):
            centre[j] = np.nanmean(X[:, j])
        self._setup(patterns, centre, *pattern_sums(X, patterns, centre))

    def _setup(self, patterns, centre, cnt, s, S):
        """Checks and constants from the patterns' counts, sums and cross-products about
        ``centre`` (all the model keeps of the rows for EM)."""
        names = self.names
        d = len(names)
        self.patterns = patterns
        pc = column_counts(self.patterns.observed, self.patterns.counts)
        few = [names[j] for j in range(d) if pc[j, j] < MIN_PAIR_ROWS]
        if few:
            raise DataError("column(s) with fewer than 2 observed values: " + ", ".join(few))
        a, b = np.nonzero(np.tril(pc < MIN_PAIR_ROWS, -1))
        if a.size:
            pairs = ", ".join(f"({names[j]}, {names[i]}): {int(pc[i, j])} row(s)"
                              for i, j in zip(a, b, strict=True))
            raise DataError(f"too few rows observe these pairs of columns together to "
                            f"estimate their covariance (need {MIN_PAIR_ROWS}): {pairs}")
        self.pair_counts = pc.astype(np.int64)
        self.centre = centre
        self.data = ArrayData({"obs": self.patterns.observed, "n": cnt, "s": s, "S": S})
        var = np.einsum("pjj->j", S) / pc.diagonal() - (s.sum(axis=0) / pc.diagonal()) ** 2
        flat = [names[j] for j in range(d) if not var[j] > 1e-14 * max(1.0, self.centre[j] ** 2)]
        if flat:
            raise DataError("column(s) constant where observed (zero variance): "
                            + ", ".join(flat))
        if d > 1 and not self.singular_ok and self.patterns.observed.all():
            self._check_dependence(pc, s, S)      # complete rows (with values missing, a
            # singular estimate is found during the fit: diagnose_failure)
        self.d = d
        self.spec = ParamSpec([Free("mean", (d,), axes=[names]),
                               Cholesky("cov", d, (), axes=[names])])
        self._J = full_to_elements(d)
        self.nobs = float(np.sum(self.patterns.counts))
        self.df_model = float(self.spec.size)

    def _check_dependence(self, pc, s, S) -> None:
        """Refuse complete data with a column that is an exact linear combination of
        others: the covariance estimate would be singular."""
        n = float(pc[0, 0])
        m = s.sum(axis=0) / n
        C = S.sum(axis=0) / n - np.outer(m, m)
        found = linear_dependence(0.5 * (C + C.T))
        if found is None:
            return
        j, others = found
        names = self.names
        what = (f"equal to a multiple of {names[others[0]]!r} plus a constant"
                if len(others) == 1 else
                "a linear combination of " + ", ".join(repr(names[i]) for i in others))
        raise DataError(
            f"column {names[j]!r} is {what} (the sample covariance matrix is singular): the "
            "estimate would have a singular covariance, where the likelihood is unbounded "
            f"or has no interior maximum; drop {names[j]!r} or one of the columns it "
            "depends on")

    # -- parameters ------------------------------------------------------------------
    def start_params(self) -> dict:
        """Observed-column means and variances, zero covariances."""
        pc = self.pair_counts.diagonal().astype(float)
        s, S = self.data["s"], self.data["S"]
        a = s.sum(axis=0) / pc
        var = np.einsum("pjj->j", S) / pc - a ** 2
        return {"mean": self.centre + a, "cov": np.diag(var)}

    def diagnose_failure(self, err: Exception) -> DataError:
        """Why the fit failed numerically: the covariance went singular, which with data
        this sparse means the likelihood is unbounded (no maximum-likelihood estimate)."""
        pc = self.pair_counts
        i, j = np.unravel_index(np.argmin(np.where(np.eye(self.d, dtype=bool), pc.max() + 1,
                                                   pc)), pc.shape) if self.d > 1 else (0, 0)
        fewest = (f"; the fewest rows observing a pair of columns together: "
                  f"({self.names[j]}, {self.names[i]}) with {int(pc[i, j])}"
                  if self.d > 1 else "")
        miss = float(np.isnan(self.X).mean())
        return DataError(
            f"the covariance estimate became singular during the fit ({err}): {int(self.nobs)} "
            f"row(s) for {self.d} variable(s) with {100 * miss:.0f}% of the values missing do "
            f"not identify a positive-definite covariance (the likelihood is unbounded)"
            f"{fewest}")

    def check_start(self, start) -> dict:
        try:
            p = {"mean": np.asarray(start["mean"], dtype=float),
                 "cov": np.asarray(start["cov"], dtype=float)}
        except (KeyError, TypeError, IndexError):
            raise ValueError("start_params must be a mapping with 'mean' and 'cov'") from None
        d = self.d
        if p["mean"].shape != (d,) or p["cov"].shape != (d, d):
            raise ValueError(f"start_params: 'mean' needs shape ({d},) and 'cov' ({d}, {d})")
        try:
            np.linalg.cholesky(0.5 * (p["cov"] + p["cov"].T))
        except np.linalg.LinAlgError:
            raise ValueError("start_params: 'cov' must be positive definite") from None
        return {"mean": p["mean"], "cov": 0.5 * (p["cov"] + p["cov"].T)}

    # -- EM ------------------------------------------------------------------------------
    def _moments(self, params, chunk):
        """Per-pattern conditional moments of the chunk (None if Sigma is not PD)."""
        sigma = np.asarray(params["cov"], dtype=float)
        mu_c = np.asarray(params["mean"], dtype=float) - self.centre
        if not (np.all(np.isfinite(sigma)) and np.all(np.isfinite(mu_c))):
            return None, mu_c, sigma
        try:
            np.linalg.cholesky(sigma)
        except np.linalg.LinAlgError:
            return None, mu_c, sigma
        obs, n, s, S = chunk["obs"], chunk["n"], chunk["s"], chunk["S"]
        out = []
        for p in range(n.shape[0]):
            pm = pattern_moments(obs[p], float(n[p]), s[p], S[p], mu_c, sigma)
            if pm is None:
                return None, mu_c, sigma
            out.append(pm)
        return out, mu_c, sigma

    def chunk_stats(self, params, chunk):
        """``n``, ``s`` = sum E[x - c] and ``ss`` = sum E[(x - c)(x - c)'] over the
        chunk's patterns, and their observed-data log-likelihood."""
        pms, mu_c, _ = self._moments(params, chunk)
        if pms is None:
            return None, -np.inf
        nn, s1, s2, ll = estep_sums(pms, mu_c)
        return Stats(n=nn, s=s1, ss=s2), ll

    def m_step(self, stats, params):
        n = float(stats["n"])
        a = np.asarray(stats["s"]) / n
        cov = np.asarray(stats["ss"]) / n - np.outer(a, a)
        return {"mean": self.centre + a, "cov": 0.5 * (cov + cov.T)}

    def chunk_louis(self, params, chunk):
        pms, _, sigma = self._moments(params, chunk)
        if pms is None:
            raise FloatingPointError("Louis' pieces need a positive-definite covariance")
        sc, co, mi, ll = louis_sums(pms, sigma)
        J = self._J
        return Stats(loglik=ll, score=J.T @ sc, complete=J.T @ co @ J, missing=J.T @ mi @ J)

    def unit_scores(self, params) -> np.ndarray:
        """Observed-data score of each row (rows x parameters, inference coordinates),
        for robust standard errors: the chunks hold per-pattern sums, which lose the
        rows.  With e the row's deviations from the mean, the missing ones replaced by
        their conditional expectation, and C their conditional covariance, the score is
        W e for the mean and (W (e e' + C) W - W) / 2 for Sigma (W = Sigma^-1)."""
        mu, sigma = np.asarray(params["mean"]), np.asarray(params["cov"])
        pat = self.patterns
        out = row_scores(self.X, mu, sigma,
                         ((pat.rows(p), pat.observed[p]) for p in range(pat.n_patterns)))
        return out @ self._J

    def louis_from_stats(self, params, total):
        c, m = np.asarray(total["complete"]), np.asarray(total["missing"])
        return (float(total["loglik"]), np.asarray(total["score"]),
                LouisPieces(0.5 * (c + c.T), 0.5 * (m + m.T)))

    # -- diagnostics --------------------------------------------------------------------
    def little_test(self, params) -> MCARTest:
        """Little's (1988) chi-square test of MCAR at the ML estimates ``params``.

        d2 = sum_p n_p (ybar_p - mu_p)' Sigma_p^-1 (ybar_p - mu_p) over the patterns,
        observed coordinates only, on sum_p d_p - d degrees of freedom (d_p the number
        of variables observed in pattern p).
        """
        pms, _, _ = self._moments(params, self.data.chunks(1)[0])
        d2 = float(sum(pm.little for pm in pms))
        obs = self.patterns.observed
        df = int(obs[obs.any(axis=1)].sum() - self.d)
        p = float(_st.chi2.sf(d2, df)) if df > 0 else float("nan")
        return MCARTest(d2, df, p)

    def pattern_table(self) -> pd.DataFrame:
        """One row per pattern: 1 where observed, 0 where missing, and the count."""
        t = pd.DataFrame(self.patterns.observed.astype(int), columns=self.names)
        t["n"] = self.patterns.counts
        t.index = pd.RangeIndex(1, len(t) + 1, name="pattern")
        return t

    def complete(self, params, rng: np.random.Generator | None = None) -> np.ndarray:
        """The model's rows with missing values replaced by their conditional mean
        (``rng=None``) or a draw from their conditional normal at ``params``."""
        out = self.X.copy()
        mu, sigma = np.asarray(params["mean"]), np.asarray(params["cov"])
        for p in range(self.patterns.n_patterns):
            rows = self.patterns.rows(p)
            if self.patterns.observed[p].all():
                continue
            out[rows] = conditional_draw(self.X[rows], mu, sigma, rng)
        return out


class MVNResults(EMResults):
    """Results of :class:`MVN`: mean, covariance, their standard errors, diagnostics,
    and imputations."""

    _kept_without_data = ("little_test", "_louis", "_missing_share")

    def _frame(self, values) -> pd.DataFrame:
        n = self.model.names
        return pd.DataFrame(values, index=n, columns=n)

    def _sym(self, vec) -> np.ndarray:
        d = self.model.d
        return self.model.spec["cov"].from_inference(np.asarray(vec)[d:])

    @property
    def mean(self) -> pd.Series:
        """ML estimate of the mean vector."""
        return pd.Series(self.raw_params["mean"], index=self.model.names, name="mean")

    @property
    def cov(self) -> pd.DataFrame:
        """ML estimate of the covariance matrix (divisor n)."""
        return self._frame(self.raw_params["cov"])

    @property
    def corr(self) -> pd.DataFrame:
        """Correlation matrix from the ML covariance."""
        s = self.raw_params["cov"]
        sd = np.sqrt(np.diag(s))
        return self._frame(s / np.outer(sd, sd))

    @property
    def bse_mean(self) -> pd.Series:
        """Standard errors of the means."""
        return pd.Series(self.bse.to_numpy()[: self.model.d], index=self.model.names,
                         name="bse")

    @property
    def bse_cov(self) -> pd.DataFrame:
        """Standard errors of the variances and covariances (a symmetric table)."""
        return self._frame(self._sym(self.bse.to_numpy()))

    @property
    def pattern_table(self) -> pd.DataFrame:
        """The missingness patterns (1 = observed) and their counts."""
        return self.model.pattern_table()

    @property
    def n_dropped(self) -> int:
        """Rows dropped before fitting (no observed value, or incomplete with
        ``missing="drop"``)."""
        return int(self.model.n_dropped)

    @property
    def little_test(self) -> MCARTest:
        """Little's (1988) MCAR test: ``statistic``, ``df``, ``pvalue``."""
        if "little" not in self.__dict__:
            self.__dict__["little"] = self.model.little_test(self.raw_params)
        return self.__dict__["little"]

    def _louis(self) -> LouisPieces:
        if "louis" not in self.__dict__:
            self.__dict__["louis"] = self.model.louis(self.raw_params)
        return self.__dict__["louis"]

    @property
    def fraction_missing_information(self) -> pd.Series:
        """Fraction of missing information per parameter (diagonal definition):
        1 - Var_complete / Var_observed, with Var_complete the diagonal of the inverse
        complete-data information and Var_observed that of the inverse observed
        information (Louis), both given the observed data."""
        pc = self._louis()
        vc = np.diag(np.linalg.inv(pc.complete))
        vo = np.diag(np.linalg.inv(pc.observed))
        return pd.Series(1.0 - vc / vo, index=self.params.index, name="fmi")

    @property
    def fraction_missing_eigen(self) -> np.ndarray:
        """Eigenvalues of I_complete^-1 I_missing, largest first (the largest is EM's
        rate of convergence)."""
        pc = self._louis()
        c = np.linalg.cholesky(pc.complete)
        ci = np.linalg.inv(c)
        m = ci @ pc.missing @ ci.T
        return np.sort(np.linalg.eigvalsh(0.5 * (m + m.T)))[::-1]

    def _summary_rows(self):
        t = self.little_test
        return ([("No. Patterns:", [str(self.model.patterns.n_patterns)]),
                 ("Rows dropped:", [str(self.n_dropped)])],
                [("Little's MCAR chi2:", [f"{t.statistic:.4g} (df {t.df})"]),
                 ("Prob (MCAR):", [f"{t.pvalue:.4g}"])])

    @cached_property
    def _missing_share(self) -> float:
        return float(np.isnan(self.model.X).mean())

    def _summary_notes(self):
        notes = super()._summary_notes()
        pat = self.model.patterns       # the share of missing values, from the patterns
        frac = float(((~pat.observed).sum(axis=1) @ pat.counts)
                     / (pat.counts.sum() * self.model.d))
        fmi = self.fraction_missing_information
        notes.append(f"{100 * frac:.1f}% of the values are missing, in "
                     f"{self.model.patterns.n_patterns} patterns; {self.n_dropped} row(s) "
                     "with no observed value dropped." if self.model.missing == "em" else
                     f"Complete cases only: {self.n_dropped} incomplete row(s) dropped.")
        notes.append(f"Fraction of missing information (diagonal): largest "
                     f"{fmi.max():.3f} ({fmi.idxmax()}), median {fmi.median():.3f}.")
        return notes

    # -- imputation ------------------------------------------------------------------------
    def _draw_params(self, rng: np.random.Generator) -> dict:
        """Mean and covariance drawn from the normal approximation to the posterior,
        in the log-Cholesky coordinates of the covariance (so every draw is positive
        definite), with the Louis covariance carried over by the delta method."""
        model = self.model
        d = model.d
        V = np.asarray(self._cov)
        if not np.all(np.isfinite(V)):
            raise ValueError("proper imputation needs the standard errors: fit with "
                             "cov_type='louis' (the default)")
        lc_block = Cholesky("cov", d, inference="log-cholesky")
        lc = lc_block.pack(self.raw_params["cov"])
        A = lc_block.jacobian(lc)                       # d vec Sigma / d log-Cholesky
        a, b = np.tril_indices(d)
        A = A[a * d + b]                                # d elements / d log-Cholesky
        G = np.eye(V.shape[0])
        G[d:, d:] = np.linalg.inv(A)
        Vd = G @ V @ G.T
        w, v = np.linalg.eigh(0.5 * (Vd + Vd.T))
        F = v * np.sqrt(np.maximum(w, 0.0))
        centre = np.concatenate([self.raw_params["mean"], lc])
        t = centre + F @ rng.standard_normal(centre.size)
        return {"mean": t[:d], "cov": lc_block.unpack(t[d:])}

    def impute(self, m: int | None = 20, seed=0):
        """Completed data sets.

        Parameters
        ----------
        m : int or None
            Number of imputations drawn from the posterior predictive distribution:
            for each, the mean and covariance are drawn from the normal approximation
            at the MLE with the Louis covariance (in log-Cholesky coordinates, so the
            covariance is positive definite), then the missing values from their
            conditional normal given the observed ones.  ``None``: one data set with
            the missing values replaced by their conditional means at the MLE.
        seed : int or numpy Generator, optional
            Random seed or generator.

        Returns
        -------
        list of pandas.DataFrame, or one DataFrame when ``m`` is None
            The model's rows (indexed as in the input; dropped rows are not included)
            and columns.
        """
        model = self.model
        if m is None:
            return pd.DataFrame(model.complete(self.raw_params), index=model.row_labels,
                                columns=model.names)
        if isinstance(m, bool) or not isinstance(m, (int, np.integer)) or m < 1:
            raise ValueError(f"m must be a positive integer or None, got {m!r}")
        rng = np.random.default_rng(seed)
        out = []
        for _ in range(int(m)):
            p = self._draw_params(rng)
            out.append(pd.DataFrame(model.complete(p, rng), index=model.row_labels,
                                    columns=model.names))
        return out


MVN.results_class = MVNResults


def mvn(x=None, data=None, *, missing: str = "em", eval_env=None) -> MVN:
    """Multivariate normal by EM with missing values (see :class:`MVN`).

    Parameters
    ----------
    x : pandas.DataFrame, array_like or str
        The data (NaN = missing), or a one-sided formula ``"~ a + b + c"`` naming
        numeric columns of ``data`` (transformations such as ``np.log(a)`` allowed).
    data : pandas.DataFrame, optional
        The data of a formula (or the data itself when ``x`` is omitted).
    missing : {"em", "drop", "raise"}
        See :class:`MVN`.

    Returns
    -------
    MVN
        Call ``.fit()`` for the results.

    Examples
    --------
    >>> import emstats
    >>> df = emstats.datasets.load("nhanes")
    >>> res = emstats.mvn("~ age + bmi + hyp + chl", data=df).fit()
    >>> round(res.llf, 4)
    -150.8587
    """
    if isinstance(x, str):
        from ..formula import numeric_columns

        if data is None:
            raise DataError("a formula needs data=")
        frame = numeric_columns(x, data, eval_env=eval_env)
        return MVN(frame, missing=missing)
    if x is None:
        if data is None:
            raise TypeError("mvn() needs data")
        x = data
    return MVN(x, missing=missing)
