"""Multiple imputation: fit a model to each completed data set and pool by Rubin's rules.

For m completed data sets with estimates Q_l and covariances U_l (Rubin 1987, ch. 3):

    Q_bar = mean(Q_l),  U_bar = mean(U_l),  B = cov(Q_l) (divisor m - 1),
    T = U_bar + (1 + 1/m) B,

per parameter the relative increase in variance r = (1 + 1/m) B / U_bar, the
proportion of the variance due to missingness lambda = (1 + 1/m) B / T, the
degrees of freedom of Barnard & Rubin (1999),

    nu_old = (m - 1) / lambda^2,  nu_obs = (nu_com + 1) / (nu_com + 3) nu_com (1 - lambda),
    nu = nu_old nu_obs / (nu_old + nu_obs)

(nu = nu_old when the complete-data degrees of freedom nu_com are infinite), and the
fraction of missing information gamma = (r + 2 / (nu + 3)) / (r + 1).  As in R's
``mice::pool``, lambda is floored at 1e-4 in the degrees of freedom.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats


def _estimates(res):
    """(params as a Series, covariance as an array, complete-data df or inf)."""
    p = res.params
    if not isinstance(p, pd.Series):
        p = pd.Series(np.asarray(p, dtype=float).ravel())
        p.index = [f"x{i + 1}" for i in range(p.size)] if p.index.dtype != object else p.index
    c = res.cov_params()
    c = np.asarray(c, dtype=float)
    if c.shape != (p.size, p.size):
        raise ValueError(f"cov_params() has shape {c.shape} for {p.size} parameters")
    df = getattr(res, "df_resid", None)
    df = float(df) if df is not None and np.isfinite(df) and df > 0 else np.inf
    return p.astype(float), c, df


class MIResults:
    """Estimates pooled over imputations by Rubin's rules (see the module docstring).

    Attributes
    ----------
    params : pandas.Series
        Pooled estimates Q_bar.
    within, between, total : pandas.DataFrame
        U_bar, B and T.
    bse : pandas.Series
        sqrt(diag T).
    df : pandas.Series
        Barnard-Rubin degrees of freedom.
    riv, lambda_, fmi : pandas.Series
        Relative increase in variance, proportion of variance due to missingness,
        fraction of missing information.
    m : int
        Number of imputations.
    df_com : float
        Complete-data degrees of freedom used.
    estimates : pandas.DataFrame
        The m estimates, one row per imputation.
    fits : list
        The fitted results of each completed data set.
    """

    def __init__(self, fits, df_com=None):
        if len(fits) < 2:
            raise ValueError(f"pooling needs at least 2 imputations, got {len(fits)}")
        parts = [_estimates(r) for r in fits]
        names = parts[0][0].index
        for p, _, _ in parts[1:]:
            if not p.index.equals(names):
                raise ValueError("the fits have different parameters: "
                                 f"{list(names)} and {list(p.index)}")
        m = len(parts)
        Q = np.array([p.to_numpy() for p, _, _ in parts])
        U = np.array([c for _, c, _ in parts])
        qbar = Q.mean(axis=0)
        ubar = U.mean(axis=0)
        B = np.cov(Q, rowvar=False, ddof=1).reshape(qbar.size, qbar.size)
        T = ubar + (1.0 + 1.0 / m) * B
        if df_com is None:
            df_com = min(d for _, _, d in parts)
        df_com = float(df_com)
        b, t, u = np.diag(B), np.diag(T), np.diag(ubar)
        with np.errstate(divide="ignore", invalid="ignore"):
            riv = (1.0 + 1.0 / m) * b / u
            lam = (1.0 + 1.0 / m) * b / t
            lam_f = np.maximum(lam, 1e-4)
            df_old = (m - 1) / lam_f ** 2
            if np.isinf(df_com):
                df = df_old
            else:
                df_obs = (df_com + 1) / (df_com + 3) * df_com * (1 - lam_f)
                df = df_old * df_obs / (df_old + df_obs)
            fmi = (riv + 2.0 / (df + 3.0)) / (riv + 1.0)
        S = lambda v, nm: pd.Series(v, index=names, name=nm)  # noqa: E731
        F = lambda v: pd.DataFrame(v, index=names, columns=names)  # noqa: E731
        self.m = m
        self.df_com = df_com
        self.fits = list(fits)
        self.params = S(qbar, "params")
        self.within, self.between, self.total = F(ubar), F(B), F(T)
        self.bse = S(np.sqrt(t), "bse")
        self.df = S(df, "df")
        self.riv = S(riv, "riv")
        self.lambda_ = S(lam, "lambda")
        self.fmi = S(fmi, "fmi")
        self.estimates = pd.DataFrame(Q, columns=names)

    @property
    def tvalues(self) -> pd.Series:
        """params / bse."""
        return (self.params / self.bse).rename("t")

    @property
    def pvalues(self) -> pd.Series:
        """Two-sided p-values from t distributions with the Barnard-Rubin df."""
        return pd.Series(2 * stats.t.sf(np.abs(self.tvalues), self.df), index=self.params.index,
                         name="pvalues")

    def cov_params(self) -> pd.DataFrame:
        """The total covariance T."""
        return self.total

    def conf_int(self, alpha: float = 0.05) -> pd.DataFrame:
        """t intervals with the Barnard-Rubin degrees of freedom.

        Parameters
        ----------
        alpha : float
            One minus the coverage (default 0.05).
        """
        if not 0 < alpha < 1:
            raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
        q = stats.t.isf(alpha / 2, self.df)
        return pd.DataFrame({0: self.params - q * self.bse, 1: self.params + q * self.bse})

    def summary_frame(self, alpha: float = 0.05) -> pd.DataFrame:
        """Estimate, std. error, t, df, p-value, interval, riv, lambda and fmi per parameter.

        Parameters
        ----------
        alpha : float
            One minus the coverage of the intervals (default 0.05).
        """
        ci = self.conf_int(alpha)
        return pd.DataFrame({
            "estimate": self.params, "std_error": self.bse, "t": self.tvalues, "df": self.df,
            "p_value": self.pvalues, f"ci_{alpha / 2:g}": ci[0], f"ci_{1 - alpha / 2:g}": ci[1],
            "riv": self.riv, "lambda": self.lambda_, "fmi": self.fmi,
        })

    def summary(self, alpha: float = 0.05):
        """A statsmodels ``Summary`` of the pooled estimates.

        Parameters
        ----------
        alpha : float
            One minus the coverage of the intervals (default 0.05).
        """
        from statsmodels.iolib.summary import Summary
        from statsmodels.iolib.table import SimpleTable

        fr = self.summary_frame(alpha)
        smry = Summary()
        smry.tables.append(SimpleTable(
            [[f"{v:.4g}" for v in row] for row in fr.to_numpy()],
            headers=list(fr.columns), stubs=[str(i) for i in fr.index],
            title=f"Multiple imputation: {self.m} imputations pooled by Rubin's rules"))
        dfc = "infinite" if np.isinf(self.df_com) else f"{self.df_com:g}"
        smry.add_extra_txt([f"Degrees of freedom: Barnard & Rubin (1999), complete-data df "
                            f"{dfc}.", "fmi: fraction of missing information; lambda: "
                            "proportion of the total variance due to missingness."])
        return smry

    def __str__(self) -> str:
        return str(self.summary())


def mi_fit(imputations, fit, *, df_com: float | None = None) -> MIResults:
    """Fit a model to each completed data set and pool the estimates by Rubin's rules.

    Parameters
    ----------
    imputations : sequence of pandas.DataFrame
        Completed data sets (e.g. ``res.impute(m=20)`` of :func:`emstats.mvn`).
    fit : callable
        ``fit(data) -> results`` with ``params`` and ``cov_params()`` (any emstats or
        statsmodels results), e.g.
        ``lambda d: smf.ols("chl ~ age + bmi", data=d).fit()``.
    df_com : float, optional
        Complete-data degrees of freedom (default: the smallest ``df_resid`` of the
        fits; infinite when they have none).

    Returns
    -------
    MIResults

    Examples
    --------
    >>> import numpy as np, pandas as pd, statsmodels.api as sm, emstats
    >>> rng = np.random.default_rng(0)
    >>> dfs = [pd.DataFrame({"x": rng.normal(size=20)}) for _ in range(3)]
    >>> pooled = emstats.mi_fit(dfs, fit=lambda d: sm.OLS(d["x"], np.ones(20)).fit())
    >>> pooled.m
    3
    """
    imputations = list(imputations)
    if not callable(fit):
        raise TypeError(f"fit must be a callable data -> results, got {fit!r}")
    return MIResults([fit(d) for d in imputations], df_com=df_com)
