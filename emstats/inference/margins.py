"""Marginal effects of the user's variables, through the formula, with delta-method SEs.

One implementation for every model with a mean and a formula.  A model describes itself
by two functions:

* ``build(frame, fixed)`` -> dict of arrays: the inputs of its prediction (design
  matrices, offsets, limits, trials) for the rows of a data frame, through the formula's
  stored terms; ``fixed`` holds per-row inputs that are not functions of the variables
  (censoring limits, offsets or trials given as arrays);
* ``response(theta, inputs, grad)`` -> ``(prediction, gradients)``: the prediction per
  row at the inference coordinates ``theta`` and, when ``grad``, its derivatives with
  respect to the entries of those inputs that carry variables (d prediction / d design
  column, d prediction / d offset), e.g. d mean / d linear predictor times a coefficient.

The effect of a continuous variable v is then the chain rule

    d prediction / d v = sum over inputs and columns of (d prediction / d column)
                         (d column / d v),

with d column / d v obtained by rebuilding the inputs at v +- h through the formula
(central differences with one Richardson step: exact for linear columns, error of order
h^4 for ``np.log(v)``, ``I(v**2)``, splines and interactions), so a variable that enters
several columns, interactions or several parts of the model gets one total effect.  A 0/1
variable (optionally), a boolean and each level of a categorical factor get the discrete
change of the prediction from the reference level (every row moved to the level, minus
every row moved to the reference).  Standard errors: the delta method, the Jacobian of the
effects in ``theta`` by central differences, times the covariance of ``theta``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.iolib.summary import Summary, summary_params

from ..exceptions import DataError
from ..formula import margin_variables

AT_CHOICES = ("overall", "mean", "median")


class MarginalEffects:
    """Marginal effects with delta-method standard errors (from ``get_margeff``).

    Parameters
    ----------
    names : list of str
        One name per effect: the variable, or ``"g[T.level]"`` for a level of a
        categorical variable.
    effect : array_like
        The effects.
    cov : array_like
        Their delta-method covariance.
    at : str or dict
        Where the effects are evaluated (see ``get_margeff``).
    which : str
        The prediction whose change is reported.
    kinds : list of str, optional
        ``"dy/dx"`` (a derivative) or ``"discrete"`` (a change from the reference level)
        per effect (default: all derivatives).

    Attributes
    ----------
    margeff : pandas.Series
        The effects.
    margeff_se : pandas.Series
        Their standard errors.
    margeff_cov : pandas.DataFrame
        Their covariance.
    kind : pandas.Series
        ``"dy/dx"`` or ``"discrete"`` per effect.
    at : str or dict
        Where the effects are evaluated.
    which : str
        The prediction.
    """

    def __init__(self, names, effect, cov, at, which, kinds=None):
        names = list(names)
        self.margeff = pd.Series(np.asarray(effect, dtype=float), index=names, name="dy/dx")
        cov = np.asarray(cov, dtype=float).reshape(len(names), len(names))
        self.margeff_cov = pd.DataFrame(cov, index=names, columns=names)
        self.margeff_se = pd.Series(np.sqrt(np.maximum(np.diag(cov), 0.0)), index=names,
                                    name="std err")
        self.kind = pd.Series(list(kinds) if kinds is not None else ["dy/dx"] * len(names),
                              index=names, name="kind")
        self.at = at
        self.which = which

    @property
    def tvalues(self) -> pd.Series:
        """z statistics of the effects."""
        return (self.margeff / self.margeff_se).rename("z")

    @property
    def pvalues(self) -> pd.Series:
        """Two-sided p-values of the z statistics (standard normal)."""
        return pd.Series(2.0 * stats.norm.sf(np.abs(self.tvalues.to_numpy())),
                         index=self.margeff.index, name="P>|z|")

    def conf_int(self, alpha: float = 0.05) -> pd.DataFrame:
        """Normal confidence intervals of the effects.

        Parameters
        ----------
        alpha : float
            One minus the coverage.

        Returns
        -------
        pandas.DataFrame
            Columns ``lower`` and ``upper``.
        """
        q = stats.norm.isf(alpha / 2)
        return pd.DataFrame({"lower": self.margeff - q * self.margeff_se,
                             "upper": self.margeff + q * self.margeff_se})

    def summary_frame(self, alpha: float = 0.05) -> pd.DataFrame:
        """Table of effects, standard errors, z, p-values and confidence limits.

        Parameters
        ----------
        alpha : float
            One minus the coverage of the confidence limits.

        Returns
        -------
        pandas.DataFrame
            Columns ``dy/dx``, ``std err``, ``z``, ``P>|z|``, the two confidence limits and
            ``kind``.
        """
        ci = self.conf_int(alpha)
        return pd.DataFrame({
            "dy/dx": self.margeff, "std err": self.margeff_se, "z": self.tvalues,
            "P>|z|": self.pvalues, f"[{alpha / 2:g}": ci["lower"],
            f"{1 - alpha / 2:g}]": ci["upper"], "kind": self.kind,
        })

    def _at_text(self) -> str:
        if isinstance(self.at, dict):
            return ", ".join(f"{k}={v!r}" for k, v in self.at.items())
        return str(self.at)

    def summary(self, alpha: float = 0.05) -> Summary:
        """A statsmodels ``Summary`` of the effects.

        Parameters
        ----------
        alpha : float
            One minus the coverage of the confidence limits.

        Returns
        -------
        statsmodels.iolib.summary.Summary
        """
        s = Summary()
        ci = self.conf_int(alpha).to_numpy()
        tab = summary_params(
            (None, self.margeff.to_numpy(), self.margeff_se.to_numpy(),
             self.tvalues.to_numpy(), self.pvalues.to_numpy(), ci),
            yname=self.which, xname=list(self.margeff.index), alpha=alpha, use_t=False,
            title=f"Marginal effects on {self.which} (at={self._at_text()}), "
                  "delta-method s.e.",
        )
        s.tables.append(tab)
        disc = [n for n, k in self.kind.items() if k == "discrete"]
        if disc:
            s.add_extra_txt([f"Discrete changes from the reference level: {', '.join(disc)}."])
        return s

    def __str__(self) -> str:
        return str(self.summary())

    def __repr__(self) -> str:
        return (f"<MarginalEffects on {self.which} at={self._at_text()}: "
                f"{len(self.margeff)} effect(s)>")


def _weighted_median(x: np.ndarray, w: np.ndarray) -> float:
    """The weighted median; halfway between the two middle values when the cumulative
    weight splits exactly there (so equal weights give the usual median)."""
    order = np.argsort(x, kind="stable")
    xs, cw = x[order], np.cumsum(w[order])
    half = 0.5 * cw[-1]
    i = int(np.searchsorted(cw, half * (1 - 1e-12)))
    if i + 1 < xs.size and abs(cw[i] - half) <= 1e-12 * cw[-1]:
        return float(0.5 * (xs[i] + xs[i + 1]))
    return float(xs[i])


def _summary_value(col: pd.Series, w: np.ndarray, at: str, categorical: bool):
    """The value of a variable in the one row of ``at="mean"`` or ``"median"``."""
    if categorical or not (pd.api.types.is_numeric_dtype(col)
                           and not pd.api.types.is_bool_dtype(col)):
        tot = pd.Series(w, index=col.index).groupby(col.to_numpy(), sort=False).sum()
        return tot.idxmax()
    x = col.to_numpy(dtype=float)
    return float(w @ x) if at == "mean" else _weighted_median(x, w)


def _summary_fixed(arr: np.ndarray, w: np.ndarray, at: str, what: str) -> np.ndarray:
    arr = np.asarray(arr, dtype=float)
    if np.all(np.isfinite(arr)):
        return np.array([float(w @ arr) if at == "mean" else _weighted_median(arr, w)])
    if np.all(arr == arr[0]):
        return arr[:1].copy()
    bad = np.unique(arr[~np.isfinite(arr)])
    if bad.size == 1:       # an unbounded side in some rows: the row has it unbounded
        return bad
    raise DataError(f"cannot summarise the per-row {what} into one row for at={at!r}")


def _set_level(col: pd.Series, value, n: int) -> pd.Series | np.ndarray:
    """A column of ``n`` copies of ``value``, keeping a categorical dtype."""
    if isinstance(col.dtype, pd.CategoricalDtype):
        return pd.Categorical([value] * n, categories=col.cat.categories,
                              ordered=col.cat.ordered)
    if pd.api.types.is_bool_dtype(col):
        return np.full(n, bool(value))
    return np.full(n, value, dtype=object if col.dtype == object else None)


def marginal_effects(theta, cov, *, build, response, frame: pd.DataFrame, fixed=None,
                     weights=None, terms=None, at="overall", which: str = "mean",
                     dummy: bool = True, variables=None, step: float = 1e-4,
                     param_step: float = 1e-6) -> MarginalEffects:
    """Average (or representative) marginal effects of the variables of ``frame``.

    Parameters
    ----------
    theta : array_like
        Inference coordinates of the estimate.
    cov : array_like
        Their covariance.
    build : callable
        ``build(frame, fixed) -> dict of arrays`` (see the module docstring).
    response : callable
        ``response(theta, inputs, grad) -> (prediction, dict of gradients)``.
    frame : pandas.DataFrame
        The estimation rows: the variables of the formula (or, for a model built from
        arrays, its design columns).
    fixed : dict of str to ndarray, optional
        Per-row inputs that are not variables (summarised with the variables for
        ``at="mean"`` / ``"median"``).
    weights : array_like, optional
        Frequency weights of the rows (the average is weighted).
    terms : list of emstats.formula.Terms, optional
        The formula's right-hand sides; without them every non-constant column of
        ``frame`` is a variable.
    at : {"overall", "mean", "median"} or dict
        ``"overall"``: the average of the effects over the rows; ``"mean"`` /
        ``"median"``: the effects at one row with every numeric variable at its (weighted)
        mean / median and every categorical one at its most frequent level; a dict of
        ``variable: value``: those variables set to the values in every row, the effects
        averaged over the rows (Stata's ``margins, at()``).
    which : str
        The prediction's name (for the table).
    dummy : bool
        A numeric variable taking only the values 0 and 1 gets the discrete change from 0
        to 1 (default) instead of a derivative.
    variables : list of str, optional
        The variables to report (default all).
    step : float
        Relative step of the derivatives in the variables.
    param_step : float
        Relative step of the Jacobian in ``theta``.

    Returns
    -------
    MarginalEffects
    """
    theta = np.asarray(theta, dtype=float)
    cov = np.asarray(cov, dtype=float)
    n = len(frame)
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=float)
    w = w / w.sum()
    fixed = {k: np.asarray(v, dtype=float) for k, v in (fixed or {}).items()}
    if terms is not None:
        found = margin_variables(terms, frame.columns)
        allspec = {c: found[c] for c in frame.columns if c in found}   # the data's order
    else:
        allspec = {c: {"kind": "numeric"} for c in frame.columns
                   if not np.all(frame[c].to_numpy() == frame[c].to_numpy()[0])}
    spec = allspec
    if variables is not None:
        variables = [variables] if isinstance(variables, str) else list(variables)
        unknown = [v for v in variables if v not in spec]
        if unknown:
            raise ValueError(f"unknown variable(s) {', '.join(map(repr, unknown))}; the "
                             f"model's variables are: {', '.join(spec)}")
        spec = {v: allspec[v] for v in variables}

    # the rows the effects are evaluated at
    if isinstance(at, dict):
        unknown = [k for k in at if k not in frame.columns]
        if unknown:
            raise ValueError(f"at= names unknown variable(s) {', '.join(map(repr, unknown))};"
                             f" the model's variables are: {', '.join(map(str, frame.columns))}")
        base = frame.copy()
        for k, v in at.items():
            info = allspec.get(k, {})
            if info.get("kind") == "categorical" and v not in info["levels"]:
                raise ValueError(f"at={{{k!r}: {v!r}}}: not a level of {k!r} "
                                 f"(levels: {', '.join(map(repr, info['levels']))})")
            base[k] = _set_level(frame[k], v, n)
        base_fixed, wt = fixed, w
    elif at in ("mean", "median"):
        row = {}
        for c in frame.columns:
            cat = spec.get(c, {}).get("kind") == "categorical"
            val = _summary_value(frame[c], w, at, cat)
            row[c] = _set_level(frame[c], val, 1) if cat or not isinstance(val, float) \
                else [val]
        base = pd.DataFrame(row, index=[at])
        base_fixed = {k: _summary_fixed(v, w, at, k) for k, v in fixed.items()}
        wt = np.ones(1)
    elif at == "overall":
        base, base_fixed, wt = frame, fixed, w
    else:
        raise ValueError(f"at must be 'overall', 'mean', 'median' or a dict of values, "
                         f"got {at!r}")
    m = len(base)
    inputs = build(base, base_fixed)

    names, kinds, slopes, changes = [], [], [], []
    for v, info in spec.items():
        col = base[v]
        if info["kind"] == "categorical":
            ref = info["reference"]
            lo_in = build(base.assign(**{v: _set_level(col, ref, m)}), base_fixed)
            for lev in info["levels"]:
                if lev == ref:
                    continue
                hi_in = build(base.assign(**{v: _set_level(col, lev, m)}), base_fixed)
                names.append(f"{v}[T.{lev}]")
                kinds.append("discrete")
                changes.append((len(names) - 1, hi_in, lo_in))
            continue
        values = frame[v].to_numpy(dtype=float)
        if dummy and np.all((values == 0) | (values == 1)) and np.ptp(values) > 0:
            names.append(v)
            kinds.append("discrete")
            changes.append((len(names) - 1,
                            build(base.assign(**{v: np.ones(m)}), base_fixed),
                            build(base.assign(**{v: np.zeros(m)}), base_fixed)))
            continue
        x = base[v].to_numpy(dtype=float)
        scale = float(np.mean(np.abs(values))) or 1.0
        h = step * np.maximum(np.abs(x), 0.1 * scale)

        def diff(hh, v=v, x=x):
            up = build(base.assign(**{v: x + hh}), base_fixed)
            dn = build(base.assign(**{v: x - hh}), base_fixed)
            return {k: (up[k] - dn[k]) / (2.0 * (hh[:, None] if up[k].ndim == 2 else hh))
                    for k in up if not np.array_equal(up[k], dn[k])}

        d1, d2 = diff(h), diff(0.5 * h)
        dcol = {}
        for k in set(d1) | set(d2):
            a = d1.get(k, 0.0)
            dk = (4.0 * d2.get(k, np.zeros_like(a)) - a) / 3.0     # Richardson: O(h^4)
            if not np.all(np.isfinite(dk)):
                raise DataError(f"cannot differentiate in {v!r}: the formula is not defined "
                                f"near some of its values (relative step {step:g})")
            if np.any(dk != 0.0):
                dcol[k] = dk
        names.append(v)
        kinds.append("dy/dx")
        slopes.append((len(names) - 1, dcol))

    def effects(th):
        out = np.zeros(len(names))
        if slopes:
            _, grads = response(th, inputs, True)
            for i, dcol in slopes:
                tot = np.zeros(m)
                for k, dk in dcol.items():
                    g = grads.get(k)
                    if g is not None:
                        tot += (g * dk).sum(axis=1) if dk.ndim == 2 else g * dk
                out[i] = wt @ tot
        for i, hi_in, lo_in in changes:
            out[i] = wt @ (response(th, hi_in, False)[0] - response(th, lo_in, False)[0])
        return out

    est = effects(theta)
    jac = np.empty((est.size, theta.size))
    for c in range(theta.size):
        hc = param_step * max(1.0, abs(theta[c]))
        tp, tm = theta.copy(), theta.copy()
        tp[c] += hc
        tm[c] -= hc
        jac[:, c] = (effects(tp) - effects(tm)) / (2.0 * hc)
    # variables that cannot move this prediction (in another part only): left out
    keep = (est != 0.0) | np.any(jac != 0.0, axis=1)
    if not keep.any():
        raise ValueError(f"no variable of the model moves the prediction {which!r}")
    est, jac = est[keep], jac[keep]
    return MarginalEffects([nm for nm, k in zip(names, keep, strict=True) if k], est,
                           jac @ cov @ jac.T, at, which,
                           [kd for kd, k in zip(kinds, keep, strict=True) if k])


def estimation_frame(results) -> pd.DataFrame:
    """The formula's variables in the estimation rows of a fitted model (``model.frame``),
    for :func:`marginal_effects`; a :class:`DataError` after ``remove_data()``.

    Parameters
    ----------
    results : EMResults
        Results whose model was built from a formula.

    Returns
    -------
    pandas.DataFrame
    """
    frame = getattr(results.model, "frame", None)
    if frame is None or getattr(results, "data_removed", False):
        raise DataError("these results hold no data (remove_data() was called): marginal "
                        "effects need the estimation rows")
    return frame
