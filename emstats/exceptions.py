"""Exceptions and warnings raised by emstats."""

from statsmodels.tools.sm_exceptions import ConvergenceWarning

from .em.monitor import LikelihoodDecreaseWarning


class DataError(ValueError):
    """Input data that a model cannot use (the message names the problem)."""


class SingularDesignError(DataError):
    """The design matrix does not have full column rank."""


__all__ = ["ConvergenceWarning", "DataError", "LikelihoodDecreaseWarning", "SingularDesignError"]
