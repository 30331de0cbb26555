"""Exceptions and warnings raised by emstats.  Imports nothing from emstats."""

import numpy as np
from statsmodels.tools.sm_exceptions import ConvergenceWarning


class LikelihoodDecreaseWarning(RuntimeWarning):
    """The observed log-likelihood decreased between EM iterations beyond round-off."""


def describe_rows(index, mask, limit: int = 5) -> str:
    """The labels of the first ``limit`` rows where ``mask`` holds, for error messages."""
    mask = np.asarray(mask, dtype=bool)
    bad = list(index[mask][:limit])
    more = int(mask.sum()) - len(bad)
    return ", ".join(map(str, bad)) + (f" and {more} more" if more > 0 else "")


class DegenerateComponentWarning(UserWarning):
    """A mixture component or a hidden state collapsed: its covariance became numerically
    singular (floored) or it emptied; the likelihood is unbounded there."""


class DataError(ValueError):
    """Input data that a model cannot use (the message names the problem)."""


class SingularDesignError(DataError):
    """The design matrix does not have full column rank."""


class InformationTooLargeError(MemoryError):
    """The information matrix a computation needs would exceed the memory limit
    (``emstats._config.information_memory_limit``)."""


__all__ = [
    "ConvergenceWarning",
    "DataError",
    "InformationTooLargeError",
    "LikelihoodDecreaseWarning",
    "SingularDesignError",
    "describe_rows",
]
