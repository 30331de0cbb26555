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

import patsy as _patsy

__version__ = "0.1.0"

from . import datasets  # noqa: E402
from ._config import show_config  # noqa: E402
from .em import EMModel, LouisPieces, run_em  # noqa: E402
from .exceptions import (  # noqa: E402
    ConvergenceWarning,
    DataError,
    LikelihoodDecreaseWarning,
    SingularDesignError,
)
from .inference import EMResults, fit_em  # noqa: E402
from .models import CensoredRegression, CensoredResults, IntervalRegression, Tobit  # noqa: E402


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
    if scale_formula is not None:
        from .models.hetero import heteroskedastic_tobit

        return heteroskedastic_tobit(formula, data, scale_formula, censor_left=censor_left,
                                     censor_right=censor_right, weights=weights,
                                     offset=offset, beyond_limits=beyond_limits,
                                     missing=missing,
                                     eval_env=_patsy.EvalEnvironment.capture(1))
    return Tobit.from_formula(formula, data, censor_left=censor_left, censor_right=censor_right,
                              weights=weights, offset=offset, beyond_limits=beyond_limits,
                              missing=missing, eval_env=_patsy.EvalEnvironment.capture(1))


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
    weights, offset, missing :
        As in :func:`tobit`.

    Returns
    -------
    IntervalRegression
    """
    return IntervalRegression.from_formula(formula, data, weights=weights, offset=offset,
                                           missing=missing,
                                           eval_env=_patsy.EvalEnvironment.capture(1))


__all__ = [
    "CensoredRegression",
    "CensoredResults",
    "ConvergenceWarning",
    "DataError",
    "EMModel",
    "EMResults",
    "IntervalRegression",
    "LikelihoodDecreaseWarning",
    "LouisPieces",
    "SingularDesignError",
    "Tobit",
    "__version__",
    "datasets",
    "fit_em",
    "intreg",
    "run_em",
    "show_config",
    "tobit",
]

from .models.hmm import HiddenMarkovModel, HMMParams, HMMResults, hmm  # noqa: E402

__all__ += ["HMMParams", "HMMResults", "HiddenMarkovModel", "hmm"]

from .models.gmm import (  # noqa: E402
    DegenerateComponentWarning,
    GaussianMixture,
    GMMParams,
    GMMResults,
    GMMSelection,
    gmm,
    gmm_select,
)

__all__ += ["DegenerateComponentWarning", "GMMParams", "GMMResults", "GMMSelection",
            "GaussianMixture", "gmm", "gmm_select"]

from .em.online import OnlineEM  # noqa: E402
from .models.censored import online_tobit  # noqa: E402
from .models.gmm import online_gmm  # noqa: E402

__all__ += ["OnlineEM", "online_gmm", "online_tobit"]

from .models.vbgmm import VariationalGaussianMixture, VBGMMResults, VBParams, vbgmm  # noqa: E402

__all__ += ["VBGMMResults", "VBParams", "VariationalGaussianMixture", "vbgmm"]

from .models.glmm import GLMMResults, RandomInterceptLogit, glmm_logit  # noqa: E402

__all__ += ["GLMMResults", "RandomInterceptLogit", "glmm_logit"]

from .models.mixture import PoissonMixture, PoissonMixtureResults, poisson_mixture  # noqa: E402

__all__ += ["PoissonMixture", "PoissonMixtureResults", "poisson_mixture"]

from .models.mixreg import (  # noqa: E402
    MixregSelection,
    MixtureRegression,
    MixtureRegressionResults,
    mixreg,
    mixreg_select,
)

__all__ += ["MixregSelection", "MixtureRegression", "MixtureRegressionResults", "mixreg",
            "mixreg_select"]
from .inference.mi import MIResults, mi_fit  # noqa: E402
from .models.mvn import MVN, MCARTest, MVNResults  # noqa: E402
from .models.mvn import mvn as _mvn  # noqa: E402


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
    return _mvn(x, data, missing=missing, eval_env=_patsy.EvalEnvironment.capture(1))


__all__ += ["MCARTest", "MIResults", "MVN", "MVNResults", "mi_fit", "mvn"]

from .models.zeroinfl import ZeroInflatedRegression, ZeroInflatedResults, zeroinfl  # noqa: E402

__all__ += ["ZeroInflatedRegression", "ZeroInflatedResults", "zeroinfl"]

from .models.zeroinfl import HurdleRegression, HurdleResults, hurdle, vuong  # noqa: E402

__all__ += ["HurdleRegression", "HurdleResults", "hurdle", "vuong"]

from .models.factor import factor_analysis, ppca  # noqa: E402

__all__ += ["factor_analysis", "ppca"]
from .models.mfa import mfa  # noqa: E402

__all__ += ["mfa"]
