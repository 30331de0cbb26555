"""Results shared by every model: estimates, standard errors, tests and the summary."""

from __future__ import annotations

import copy
import dataclasses
import datetime as _dt
import os
import pickle
import warnings
from functools import cached_property

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.iolib.summary import Summary, summary_params
from statsmodels.stats.contrast import ContrastResults

from ..em.data import ArrayData
from ..em.monitor import ConvergenceInfo
from ..em.protocol import EMModel
from ..exceptions import DataError
from ..formula import linear_constraint
from .covariance import COV_LABELS


def _n_rows(model) -> set[int]:
    """The numbers of estimation rows of ``model``: its ``nobs``, and the rows of its
    data when there are as many or more (a model may hold sufficient statistics of
    groups of rows instead of the rows)."""
    nobs = getattr(model, "nobs", None)
    n_data = getattr(getattr(model, "data", None), "n_rows", None)
    out = {int(nobs)} if nobs is not None and nobs > 0 else set()
    if n_data is not None and (nobs is None or n_data >= nobs):
        out.add(int(n_data))
    return out


def _is_rows(value, ns: set[int]) -> bool:
    """Whether ``value`` holds data of the estimation rows (``ns``: their numbers)."""
    if isinstance(value, ArrayData):
        return True
    if isinstance(value, np.ndarray):
        return value.ndim >= 1 and bool(ns & set(value.shape[:2]))
    if isinstance(value, (pd.Series, pd.DataFrame, pd.Index)):
        return len(value) in ns
    return False


def _strip(value, ns: set[int]):
    """``value`` without the estimation rows: None for row data, copies of models and
    containers without them, anything else as it is."""
    if _is_rows(value, ns):
        return None
    if isinstance(value, EMModel):
        return without_data(value, ns)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = copy.copy(value)
        for f in dataclasses.fields(value):
            object.__setattr__(out, f.name, _strip(getattr(value, f.name), ns))
        return out
    if isinstance(value, dict):
        return type(value)((k, _strip(v, ns)) for k, v in value.items())
    if isinstance(value, (list, tuple)) and not hasattr(value, "_fields"):
        return type(value)(_strip(v, ns) for v in value)
    return value


def without_data(model, ns: set[int] | None = None):
    """A shallow copy of ``model`` whose attributes holding estimation rows are None
    (``ns``: the numbers of rows, default those of ``model``); models and containers
    inside it (such as the Tobit part of the heteroskedastic Tobit) are copied the
    same way."""
    out = copy.copy(model)
    ns = _n_rows(model) if ns is None else ns
    for name, value in list(vars(out).items()):
        setattr(out, name, _strip(value, ns))
    return out


class SavedResults:
    """Saving a fit: ``save``, ``remove_data`` (mixed into every results class)."""

    data_removed = False
    #: results computed from the estimation rows and shown by ``summary()``: attributes
    #: or methods without arguments, evaluated by :meth:`remove_data` before the rows
    #: go (each must cache its value)
    _kept_without_data: tuple[str, ...] = ()

    def save(self, fname, remove_data: bool = False) -> None:
        """Save the results by pickling (as statsmodels' ``save``).

        Parameters
        ----------
        fname : str, path or binary file
        Where the results were saved.
        remove_data : bool
            Call :meth:`remove_data` first (on these results: they lose their data).

        Notes
        -----
        Read the file back with :func:`emstats.load`.  Pickles run code when loaded:
        load only files you trust.  The file is tied to compatible versions of
        emstats, numpy and pandas.
        """
        if remove_data:
            self.remove_data()
        if isinstance(fname, (str, os.PathLike)):
            with open(fname, "wb") as fh:
                pickle.dump(self, fh, protocol=pickle.HIGHEST_PROTOCOL)
        else:
            pickle.dump(self, fname, protocol=pickle.HIGHEST_PROTOCOL)

    def remove_data(self) -> None:
        """Drop the estimation data from the results and their (copied) model.

        Everything computed from the estimates stays (``params``, ``bse``, tests,
        ``summary()``, ``predict(newdata)``); what needs the estimation rows
        (``predict()`` without new data, residuals, posterior quantities of the rows)
        is no longer available.  The model object the fit was made with is not
        changed: the results keep a copy without data.
        """
        for name in ("_null_fit", *self._kept_without_data):
            if not hasattr(type(self), name):
                continue
            value = getattr(self, name)
            if callable(value):       # a method that caches its value
                value()
        ns = _n_rows(self.model) | {int(self.nobs)}
        model = without_data(self.model, ns)
        for name, value in list(vars(self).items()):
            if name != "model":
                setattr(self, name, _strip(value, ns))
        self.model = model
        self.data_removed = True


def load(fname):
    """Load results saved with ``save`` (or pickled); see :meth:`EMResults.save`.

    Parameters
    ----------
    fname : str, path or binary file
        Where the results were saved.

    Returns
    -------
    The saved object.  Unpickling runs code: load only files you trust.
    """
    if isinstance(fname, (str, os.PathLike)):
        with open(fname, "rb") as fh:
            return pickle.load(fh)
    return pickle.load(fname)


#: names of the engine's methods in summaries (docs/methods.md)
METHOD_NAMES = {"em": "EM", "squarem": "SQUAREM", "newton": "Louis-Newton",
                "gradient": "EM gradient", "incremental": "incremental EM",
                "mcem": "Monte Carlo EM", "stochastic": "stochastic EM",
                "cem": "classification EM", "aecm": "AECM"}
_STEPS = {"em": "EM step", "squarem": "SQUAREM cycle", "newton": "Newton step",
          "gradient": "EM-gradient step", "incremental": "incremental EM iteration",
          "mcem": "Monte Carlo EM iteration", "stochastic": "stochastic EM iteration",
          "cem": "classification EM step", "aecm": "AECM iteration"}


_SHORT = {"em": "EM", "squarem": "SQUAREM", "newton": "Newton", "gradient": "EM-gradient",
          "incremental": "incremental", "mcem": "MCEM", "stochastic": "SEM", "cem": "CEM",
          "aecm": "AECM"}


def _steps(n: int, method: str) -> str:
    word = _STEPS.get(method, f"{method} iteration")
    return f"{n} {word}{'' if n == 1 else 's'}"


def describe_iterations(conv: ConvergenceInfo, n_starts: int = 1) -> tuple[str, str]:
    """What the engine ran, long (``"6 Newton steps from the best of 5 starts (25 EM
    steps)"``) and short (``"25 EM + 6 Newton"``)."""
    m = conv.method
    start = int(conv.extra.get("start_iterations", 0))
    start_m = conv.extra.get("start_method")
    # continued after fixing boundary parameters (fit_model marks it; a record without
    # the mark: a continuation by the same method)
    if start and conv.extra.get("boundary_restart", start_m == m):
        own, start = conv.n_iter, 0
        tail = " (continued after fixing parameters on the boundary)"
    else:
        own, tail = conv.n_iter - start, ""
    text = _steps(own, m)
    start_em = start if start_m == "em" else 0
    if m == "newton" and conv.n_em_steps - start_em > 0:
        text += f" ({conv.n_em_steps - start_em} EM-map evaluations in fall-back steps)"
    elif m == "gradient" and conv.n_em_steps - start_em > 0:
        text += f" ({conv.n_em_steps - start_em} of them EM steps)"
    elif m == "squarem":
        text += f" ({conv.n_em_steps - start_em} EM-map evaluations)"
    short = f"{own} {_SHORT.get(m, m)}"
    if start:
        where = f"the best of {n_starts} starts" if n_starts > 1 else "a start"
        text += f" from {where} ({_steps(start, start_m)})"
        short = f"{start} {_SHORT.get(start_m, start_m)} + {short}"
    elif n_starts > 1:
        text += f" from the best of {n_starts} starts"
    return text + tail, short


def _fmt(x, spec: str = "#.6g") -> str:
    return format(x, spec) if np.isfinite(x) else "nan"


class EMResults(SavedResults):
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

    # -- the intercept-only model ---------------------------------------------------
    @cached_property
    def _null_fit(self) -> tuple[float, int]:
        """(log-likelihood, number of parameters) of the model's intercept-only
        counterpart (``model.null_model()``), or (NaN, 0) where it has none."""
        make = getattr(self.model, "null_model", None)
        try:
            null = make() if make is not None else None
        except DataError:      # e.g. an out-of-core model: its rows are not in memory
            null = None
        if null is None:
            return float("nan"), 0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                res = null.fit(cov_type=None, tol=1e-10)
            except (ValueError, FloatingPointError, np.linalg.LinAlgError):
                return float("nan"), 0
        return float(res.llf), len(null.param_names)

    @property
    def llnull(self) -> float:
        """Log-likelihood of the intercept-only model (NaN where it is not meaningful)."""
        return self._null_fit[0]

    @property
    def df_null_test(self) -> int:
        """Degrees of freedom of the test against the intercept-only model."""
        return self.k_params - self._null_fit[1] if np.isfinite(self.llnull) else 0

    @property
    def llr(self) -> float:
        """Likelihood-ratio statistic against the intercept-only model, 2 (llf - llnull)."""
        return 2.0 * (self.llf - self.llnull)

    @property
    def llr_pvalue(self) -> float:
        """Chi-square p-value of :attr:`llr` on :attr:`df_null_test` degrees of freedom."""
        df = self.df_null_test
        return float(stats.chi2.sf(self.llr, df)) if df > 0 else float("nan")

    @property
    def prsquared(self) -> float:
        """McFadden's pseudo R-squared, 1 - llf / llnull."""
        return 1.0 - self.llf / self.llnull

    # -- hypothesis tests ----------------------------------------------------------
    def _constraints(self, r_matrix, q_matrix=None):
        if isinstance(r_matrix, (str, list, tuple)) and not (
            isinstance(r_matrix, (list, tuple)) and r_matrix and not isinstance(r_matrix[0], str)
        ):
            return linear_constraint(self.param_names, r_matrix)
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
        n_starts = len(self.extra.get("starts", ())) or 1
        _, iters = describe_iterations(conv, n_starts)
        extra_left, extra_right = self._summary_rows()
        left = [
            ("Dep. Variable:", [str(getattr(m, "endog_name", "y"))]),
            ("Model:", [type(m).__name__]),
            ("Method:", [f"ML, {METHOD_NAMES.get(conv.method, conv.method)}"]),
            ("Date:", [self.fit_time.strftime("%a, %d %b %Y")]),
            ("Time:", [self.fit_time.strftime("%H:%M:%S")]),
            ("No. Observations:", [str(self.nobs)]),
            *extra_left,
            ("Df Residuals:", [f"{self.df_resid:g}"]),
            ("Df Model:", [f"{self.df_model:g}"]),
        ]
        right = [
            ("Log-Likelihood:", [_fmt(self.llf, "#.8g")]),
        ]
        if self.df_null_test > 0:
            right += [("LL-Null:", [_fmt(self.llnull, "#.8g")]),
                      ("LLR p-value:", [_fmt(self.llr_pvalue, "#.4g")]),
                      ("Pseudo R-squ.:", [_fmt(self.prsquared, "#.4g")])]
        right += [
            ("AIC:", [_fmt(self.aic, "#.6g")]),
            ("BIC:", [_fmt(self.bic, "#.6g")]),
            ("Iterations:", [iters]),
            ("Converged:", ["yes" if conv.converged else "no"]),
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
        clusters = (f"; {self.extra['n_clusters']} clusters" if "n_clusters" in self.extra
                    else "")
        n_starts = len(self.extra.get("starts", ())) or 1
        notes = [
            f"Iterations: {describe_iterations(conv, n_starts)[0]}; "
            f"{'converged' if conv.converged else 'not converged'} ({conv.reason}).",
            f"Standard errors: {COV_LABELS.get(self.cov_type, self.cov_type)}{clusters}.",
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
        if self.df_null_test > 0:
            notes.append(f"Likelihood-ratio test against the intercept-only model: "
                         f"chi2({self.df_null_test}) = {self.llr:.4g}, p = "
                         f"{self.llr_pvalue:.4g}; McFadden's pseudo R-squared "
                         f"{self.prsquared:.4f}.")
        if not conv.converged:
            notes.append(f"WARNING: the fit did not converge ({conv.reason}).")
        if conv.n_decreases:
            notes.append(f"WARNING: the log-likelihood decreased {conv.n_decreases} time(s).")
        if "degenerate" in self.extra:
            notes.append(f"WARNING: {self.extra['degenerate']}")
        return notes

    def __str__(self) -> str:
        return str(self.summary())

    def __repr__(self) -> str:
        conv = self.convergence
        return (f"<{type(self).__name__}: {type(self.model).__name__} of "
                f"{getattr(self.model, 'endog_name', 'y')}, {self.nobs} observations, "
                f"{self.k_params} parameters, log-likelihood {self.llf:.6g}, "
                f"{'converged' if conv.converged else 'NOT converged'} by "
                f"{METHOD_NAMES.get(conv.method, conv.method)}, standard errors "
                f"{self.cov_type}{' (data removed)' if self.data_removed else ''}>")

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
