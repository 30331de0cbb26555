"""Results shared by every model: estimates, standard errors, tests and the summary."""

from __future__ import annotations

import datetime as _dt

import numpy as np
import pandas as pd
from patsy import DesignInfo
from scipy import stats
from statsmodels.iolib.summary import Summary, summary_params
from statsmodels.stats.contrast import ContrastResults

from ..em.monitor import ConvergenceInfo
from .covariance import COV_LABELS


def _fmt(x, spec: str = "#.6g") -> str:
    return format(x, spec) if np.isfinite(x) else "nan"


class EMResults:
    """Results of a maximum-likelihood fit by EM.

    Parameters are in the model's inference coordinates (``model.param_names``);
    standard errors come from Louis' observed information unless another
    ``cov_type`` was chosen at fit time.  Inference is asymptotic (z tests).

    Attributes
    ----------
    model : EMModel
        The model that was fitted (it holds no fitted state).
    params : pandas.Series
        Estimates, labelled.
    llf : float
        Observed-data log-likelihood at the estimates.
    nobs : int
        Number of observations used.
    df_model, df_resid : float
        Model and residual degrees of freedom (statsmodels conventions).
    cov_type : str
        ``"louis"``, ``"numerical"`` or ``"bootstrap"``.
    convergence : ConvergenceInfo
        Convergence diagnostics.
    """

    use_t = False

    def __init__(
        self,
        model,
        params: np.ndarray,
        cov: np.ndarray,
        *,
        llf: float,
        nobs: int,
        df_model: float,
        cov_type: str,
        convergence: ConvergenceInfo,
        raw_params=None,
        extra: dict | None = None,
    ):
        self.model = model
        names = list(model.param_names)
        self.params = pd.Series(np.asarray(params, dtype=float), index=names, name="params")
        self._cov = np.asarray(cov, dtype=float)
        self.llf = float(llf)
        self.nobs = int(nobs)
        self.k_params = len(names)
        self.df_model = float(df_model)
        self.df_resid = float(self.nobs - self.k_params)
        self.cov_type = cov_type
        self.convergence = convergence
        self.raw_params = raw_params
        self.extra = dict(extra or {})
        self.fit_time = _dt.datetime.now()

    # -- estimates and inference -------------------------------------------------
    @property
    def param_names(self) -> list[str]:
        """Names of the parameters."""
        return list(self.params.index)

    def cov_params(self) -> pd.DataFrame:
        """Estimated covariance matrix of the parameters."""
        return pd.DataFrame(self._cov, index=self.params.index, columns=self.params.index)

    @property
    def bse(self) -> pd.Series:
        """Standard errors."""
        with np.errstate(invalid="ignore"):
            return pd.Series(np.sqrt(np.diag(self._cov)), index=self.params.index, name="bse")

    @property
    def tvalues(self) -> pd.Series:
        """z statistics, params / bse."""
        return (self.params / self.bse).rename("z")

    zvalues = tvalues

    @property
    def pvalues(self) -> pd.Series:
        """Two-sided p-values of the z statistics."""
        return pd.Series(2 * stats.norm.sf(np.abs(self.tvalues)), index=self.params.index,
                         name="pvalues")

    def conf_int(self, alpha: float = 0.05) -> pd.DataFrame:
        """Wald confidence intervals.

        Parameters
        ----------
        alpha : float
            The intervals have coverage ``1 - alpha``.
        """
        if not 0 < alpha < 1:
            raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
        q = stats.norm.isf(alpha / 2)
        lo = self.params - q * self.bse
        hi = self.params + q * self.bse
        return pd.DataFrame({0: lo, 1: hi})

    @property
    def aic(self) -> float:
        """Akaike's information criterion, -2 llf + 2 k."""
        return -2.0 * self.llf + 2.0 * self.k_params

    @property
    def bic(self) -> float:
        """Schwarz's criterion, -2 llf + k log(nobs)."""
        return -2.0 * self.llf + np.log(self.nobs) * self.k_params

    # -- hypothesis tests ----------------------------------------------------------
    def _constraints(self, r_matrix, q_matrix=None):
        if isinstance(r_matrix, (str, list, tuple)) and not (
            isinstance(r_matrix, (list, tuple)) and r_matrix and not isinstance(r_matrix[0], str)
        ):
            lc = DesignInfo(self.param_names).linear_constraint(r_matrix)
            return lc.coefs, lc.constants[:, 0]
        r = np.atleast_2d(np.asarray(r_matrix, dtype=float))
        if r.shape[1] != self.k_params:
            raise ValueError(
                f"r_matrix must have {self.k_params} columns (one per parameter), got {r.shape[1]}"
            )
        q = np.zeros(r.shape[0]) if q_matrix is None else np.asarray(q_matrix, float).ravel()
        return r, q

    def t_test(self, r_matrix, q_matrix=None) -> ContrastResults:
        """Wald z tests of linear restrictions ``R params = q``.

        Parameters
        ----------
        r_matrix : str, list of str or array_like
            Restrictions as strings such as ``"age = 0"`` or ``"rating = -2"``
            (parameter names as in ``params``) or a matrix R.
        q_matrix : array_like, optional
            Right-hand side when ``r_matrix`` is a matrix.
        """
        r, q = self._constraints(r_matrix, q_matrix)
        effect = r @ self.params.to_numpy()
        sd = np.sqrt(np.diag(r @ self._cov @ r.T))
        return ContrastResults(effect=effect, sd=sd, statistic=(effect - q) / sd,
                               distribution="norm")

    def wald_test(self, r_matrix, q_matrix=None) -> ContrastResults:
        """Joint chi-square Wald test of linear restrictions ``R params = q``.

        Parameters
        ----------
        r_matrix : str, array_like
            The restrictions: a string such as ``"age = 0, rating = 0"`` in the parameter
            names, or the matrix R (one row per restriction).
        q_matrix : array_like, optional
            The right-hand side q (default zeros); not used with a string.
        """
        r, q = self._constraints(r_matrix, q_matrix)
        diff = r @ self.params.to_numpy() - q
        w = float(diff @ np.linalg.solve(r @ self._cov @ r.T, diff))
        return ContrastResults(statistic=w, distribution="chi2", df_denom=r.shape[0])

    # -- presentation --------------------------------------------------------------
    def _summary_rows(self) -> tuple[list, list]:
        """Model-specific rows for the summary header (left, right)."""
        return [], []

    def summary(self, alpha: float = 0.05, title: str | None = None) -> Summary:
        """A statsmodels ``Summary``: header, parameter table and convergence notes.

        Parameters
        ----------
        alpha : float
            Confidence level of the intervals is ``1 - alpha``.
        title : str, optional
            Title of the table (default: the model's).
        """
        m = self.model
        conv = self.convergence
        method_name = {"em": "EM", "squarem": "SQUAREM", "newton": "EM + Louis-Newton"}.get(
            conv.method, conv.method
        )
        extra_left, extra_right = self._summary_rows()
        left = [
            ("Dep. Variable:", [str(getattr(m, "endog_name", "y"))]),
            ("Model:", [type(m).__name__]),
            ("Method:", [f"ML by {method_name}"]),
            ("Date:", [self.fit_time.strftime("%a, %d %b %Y")]),
            ("Time:", [self.fit_time.strftime("%H:%M:%S")]),
            ("No. Observations:", [str(self.nobs)]),
            *extra_left,
            ("Df Residuals:", [f"{self.df_resid:g}"]),
            ("Df Model:", [f"{self.df_model:g}"]),
        ]
        right = [
            ("Log-Likelihood:", [_fmt(self.llf, "#.8g")]),
            ("AIC:", [_fmt(self.aic, "#.6g")]),
            ("BIC:", [_fmt(self.bic, "#.6g")]),
            ("Iterations:", [f"{conv.n_iter} ({conv.n_em_steps} EM steps)"]),
            ("Converged:", ["yes" if conv.converged else "NO"]),
            ("Std. errors:", [self.cov_type.capitalize()]),
            *extra_right,
        ]
        smry = Summary()
        smry.add_table_2cols(
            self, gleft=left, gright=right,
            title=title or getattr(m, "summary_title", f"{type(m).__name__} Results"),
            yname=str(getattr(m, "endog_name", "y")), xname=self.param_names,
        )
        ci = self.conf_int(alpha).to_numpy()
        table = summary_params(
            (self, self.params.to_numpy(), self.bse.to_numpy(), self.tvalues.to_numpy(),
             self.pvalues.to_numpy(), ci),
            yname=str(getattr(m, "endog_name", "y")), xname=self.param_names,
            alpha=alpha, use_t=False,
        )
        smry.tables.append(table)
        smry.add_extra_txt(self._summary_notes())
        return smry

    def _summary_notes(self) -> list[str]:
        conv = self.convergence
        notes = [
            f"Standard errors: {COV_LABELS.get(self.cov_type, self.cov_type)}.",
            f"Convergence: final change in log-likelihood {_fmt(conv.final_delta, '.3g')} "
            f"(estimated distance to the maximum {_fmt(conv.est_distance, '.3g')}), "
            f"max |score| {_fmt(conv.max_abs_score, '.3g')}, EM rate (fraction of missing "
            f"information) {_fmt(conv.em_rate, '.4f')}.",
        ]
        if "mc_se" in conv.extra and len(conv.extra["mc_se"]):
            notes.append(
                f"Monte Carlo EM: final sample size {int(conv.extra['mc_size'][-1])}, "
                f"largest Monte Carlo s.e. of the last update "
                f"{np.max(conv.extra['mc_se'][-1]):.3g}."
            )
        if "chain" in conv.extra:
            n_avg = len(conv.extra["chain"]) - conv.extra["burn_in"]
            notes.append(f"Stochastic EM: average of {n_avg} iterations after a burn-in of "
                         f"{conv.extra['burn_in']}.")
        if not conv.converged:
            notes.append(f"WARNING: the fit did not converge ({conv.reason}).")
        if conv.n_decreases:
            notes.append(f"WARNING: the log-likelihood decreased {conv.n_decreases} time(s).")
        return notes

    def __str__(self) -> str:
        return str(self.summary())

    def _repr_html_(self) -> str:
        return self.summary().as_html()

    def plot_convergence(self, ax=None, relative: bool = True):
        """Plot the log-likelihood trace (matplotlib required).

        For Monte Carlo and stochastic EM: the log-likelihood of every iterate with its
        trailing mean and a band of two trailing standard deviations, the burn-in and the
        reported log-likelihood (see :func:`emstats.inference.plots.convergence`).

        Parameters
        ----------
        ax : matplotlib Axes, optional
            Axes to draw on (default: a new figure).
        relative : bool
            Plot the distance to the final log-likelihood on a log scale
            (default) rather than the log-likelihood itself (deterministic methods).

        Returns
        -------
        matplotlib Axes
        """
        from .plots import convergence

        return convergence(self.convergence, self.llf, relative=relative, ax=ax,
                           title=f"Convergence of {type(self.model).__name__} "
                                 f"({self.convergence.method})")
