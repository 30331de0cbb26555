"""emstats: maximum-likelihood estimation by the EM algorithm.

Formula interfaces build models; ``fit()`` returns statsmodels-style results
with Louis-method standard errors and convergence diagnostics.

>>> import emstats
>>> df = emstats.datasets.load("affairs")
>>> res = emstats.tobit("affairs ~ age + yearsmarried + religiousness + occupation + rating",
...                     data=df, censor_left=0).fit()
>>> round(res.llf, 4)
-705.5762
"""

from __future__ import annotations

import os as _os
from typing import TYPE_CHECKING

# idle OpenMP threads sleep between parallel regions (see emstats/_kernels/__init__.py);
# set before any kernel loads the OpenMP runtime, unless the user chose otherwise
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"

# Public names and the module each comes from.  They are imported on first use (PEP 562's
# module __getattr__), so that ``import emstats`` and ``python -m emstats --help`` do not pay
# for SciPy, pandas, statsmodels and patsy.  A new public name is one line here.
_LAZY: dict[str, str] = {
    "datasets": ".datasets",
    "show_config": "._config",
    "EMModel": ".em",
    "LouisPieces": ".em",
    "run_em": ".em",
    "OnlineEM": ".em.online",
    "ConvergenceWarning": ".exceptions",
    "DataError": ".exceptions",
    "LikelihoodDecreaseWarning": ".exceptions",
    "SingularDesignError": ".exceptions",
    "EMResults": ".inference",
    "fit_em": ".inference",
    "load": ".inference",
    "MIResults": ".inference.mi",
    "mi_fit": ".inference.mi",
    "MarginalEffects": ".inference.margins",
    "CensoredRegression": ".models",
    "CensoredResults": ".models",
    "IntervalRegression": ".models",
    "Tobit": ".models",
    "online_tobit": ".models.censored",
    "HMMParams": ".models.hmm",
    "HMMResults": ".models.hmm",
    "HiddenMarkovModel": ".models.hmm",
    "hmm": ".models.hmm",
    "DegenerateComponentWarning": ".exceptions",
    "GMMParams": ".models.gmm",
    "GMMResults": ".models.gmm",
    "GMMSelection": ".models.gmm",
    "GaussianMixture": ".models.gmm",
    "gmm": ".models.gmm",
    "gmm_select": ".models.gmm",
    "online_gmm": ".models.gmm",
    "VBGMMResults": ".models.vbgmm",
    "VBParams": ".models.vbgmm",
    "VariationalGaussianMixture": ".models.vbgmm",
    "vbgmm": ".models.vbgmm",
    "GLMMResults": ".models.glmm",
    "RandomInterceptGLMM": ".models.glmm",
    "RandomInterceptLogit": ".models.glmm",
    "RandomSlopeGLMM": ".models.glmm",
    "SlopeGLMMResults": ".models.glmm",
    "glmm": ".models.glmm",
    "glmm_logit": ".models.glmm",
    "PoissonMixture": ".models.mixture",
    "PoissonMixtureResults": ".models.mixture",
    "poisson_mixture": ".models.mixture",
    "MixregSelection": ".models.mixreg",
    "MixtureRegression": ".models.mixreg",
    "MixtureRegressionResults": ".models.mixreg",
    "mixreg": ".models.mixreg",
    "mixreg_select": ".models.mixreg",
    "MCARTest": ".models.mvn",
    "MVN": ".models.mvn",
    "MVNResults": ".models.mvn",
    "ZeroInflatedRegression": ".models.zeroinfl",
    "ZeroInflatedResults": ".models.zeroinfl",
    "zeroinfl": ".models.zeroinfl",
    "HurdleRegression": ".models.zeroinfl",
    "HurdleResults": ".models.zeroinfl",
    "hurdle": ".models.zeroinfl",
    "vuong": ".models.zeroinfl",
    "factor_analysis": ".models.factor",
    "ppca": ".models.factor",
    "mfa": ".models.mfa",
    "DaskExecutor": ".em.executors",
    "outofcore": ".models.outofcore",
}


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'emstats' has no attribute {name!r}")
    import importlib

    mod = importlib.import_module(module, __name__)
    value = mod if name in ("datasets", "outofcore") else getattr(mod, name)
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


def tobit(formula: str, data, censor_left=0.0, censor_right=None, *, weights=None, offset=None,
          beyond_limits: str = "censor", missing: str = "drop",
          scale_formula: str | None = None):
    """Tobit (censored normal) regression from a formula.

    Parameters
    ----------
    formula : str
        A patsy formula, ``"y ~ x1 + x2"``.
    data : pandas.DataFrame
        The data (never modified).
    censor_left, censor_right : float, str, array_like or None
        Censoring limits: a scalar, the name of a column of ``data``, an array of
        per-row limits (``-inf``/``+inf`` for none), or None for no censoring on
        that side.  Defaults: left-censoring at 0, no right censoring.  A response
        at or beyond a limit is censored at it (R's ``AER::tobit`` convention).
    weights : str or array_like, optional
        Frequency weights (column name or array).
    offset : str or array_like, optional
        Offset added to the linear predictor (column name or array).
    beyond_limits : {"censor", "raise"}
        ``"raise"`` makes a response strictly outside its limits an error.
    missing : {"drop", "raise"}
        Rows with missing values are dropped (and counted in the summary) or
        raise an error.
    scale_formula : str, optional
        A one-sided formula such as ``"~ z1 + z2"`` for log-linear
        heteroskedasticity, log sigma_i = z_i'gamma, fitted by ECM.

    Returns
    -------
    Tobit or HeteroskedasticCensoredRegression
        Call ``.fit()`` on it.

    Examples
    --------
    >>> import emstats
    >>> df = emstats.datasets.load("affairs")
    >>> res = emstats.tobit("affairs ~ age + yearsmarried + rating", data=df).fit()
    >>> res.params.index.tolist()
    ['Intercept', 'age', 'yearsmarried', 'rating', 'Log(scale)']
    """
    from .formula import capture_env as _capture_env
    from .models.censored import Tobit

    if scale_formula is not None:
        from .models.hetero import heteroskedastic_tobit

        return heteroskedastic_tobit(formula, data, scale_formula, censor_left=censor_left,
                                     censor_right=censor_right, weights=weights,
                                     offset=offset, beyond_limits=beyond_limits,
                                     missing=missing,
                                     eval_env=_capture_env(1))
    return Tobit.from_formula(formula, data, censor_left=censor_left, censor_right=censor_right,
                              weights=weights, offset=offset, beyond_limits=beyond_limits,
                              missing=missing, eval_env=_capture_env(1))


def intreg(formula: str, data, *, weights=None, offset=None,
           missing: str = "drop") -> IntervalRegression:
    """Interval regression from ``"lower + upper ~ x1 + x2"`` (Stata's ``intreg``).

    Parameters
    ----------
    formula : str
        Two response terms joined by ``+`` on the left-hand side.  A missing or
        ``-inf`` lower bound means left-censored at the upper one; a missing or
        ``+inf`` upper bound right-censored at the lower one; equal bounds an
        exact value; otherwise the response lies in the interval.
    data : pandas.DataFrame
        The data (never modified).
    weights, offset, missing :
        As in :func:`tobit`.

    Returns
    -------
    IntervalRegression
    """
    from .formula import capture_env as _capture_env
    from .models.censored import IntervalRegression

    return IntervalRegression.from_formula(formula, data, weights=weights, offset=offset,
                                           missing=missing,
                                           eval_env=_capture_env(1))


def mvn(x=None, data=None, *, missing: str = "em") -> MVN:
    """Multivariate normal mean and covariance by EM with values missing at random.

    Parameters
    ----------
    x : pandas.DataFrame, array_like or str
        The data (NaN = missing), or a one-sided formula ``"~ a + b + c"`` naming
        numeric columns of ``data``.
    data : pandas.DataFrame, optional
        The data of a formula (or the data itself when ``x`` is omitted).
    missing : {"em", "drop", "raise"}
        ``"em"``: maximum likelihood under MAR (rows with no observed value dropped and
        counted); ``"drop"``: complete cases; ``"raise"``: missing values are an error.

    Returns
    -------
    MVN
        Call ``.fit()``; see :class:`emstats.models.mvn.MVN`.

    Examples
    --------
    >>> import emstats
    >>> res = emstats.mvn(emstats.datasets.load("nhanes")).fit()
    >>> round(res.llf, 4)
    -150.8587
    """
    from .formula import capture_env
    from .models.mvn import mvn as _mvn

    return _mvn(x, data, missing=missing, eval_env=capture_env(1))


__all__ = ["__version__", "intreg", "mvn", "tobit", *_LAZY]

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from ._config import show_config  # noqa: F401
    from .models import IntervalRegression, Tobit  # noqa: F401
    from .models.mvn import MVN  # noqa: F401
