"""The Poisson distribution as a component of mixtures (and, later, HMMs and regressions).

Everything a finite mixture needs of a component, for K components at once: the
log-density of every row under each component, the weighted statistics and M-step,
and the per-row complete-data score and information of the component's parameters
(the pieces of Louis' method).  The rates are reported on their natural scale.
"""

from __future__ import annotations

import numpy as np
from scipy.special import gammaln

from ..em.params import Positive


def check_counts(y, name: str = "y") -> np.ndarray:
    """Counts as a float array, or a ``ValueError`` naming what is wrong."""
    from ..exceptions import DataError

    y = np.asarray(y, dtype=float).ravel()
    bad = ~np.isfinite(y) | (y < 0) | (y != np.round(y))
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise DataError(f"{name} must be non-negative integer counts; {int(bad.sum())} row(s) "
                        f"are not (first: row {first}, value {y[first]!r})")
    return y


class Poisson:
    """K Poisson components with rates ``rate[k]``."""

    #: name of the parameter block
    block = "rate"

    def __init__(self, k: int):
        self.k = int(k)

    def spec_block(self, axes=None) -> Positive:
        """The rates' parameter block: packed on the log scale, reported as rates."""
        return Positive(self.block, (self.k,), inference="natural", axes=axes)

    @staticmethod
    def log_const(y: np.ndarray) -> np.ndarray:
        """-log(y!) per row: the part of the log-density that does not involve the rate."""
        return -gammaln(y + 1.0)

    def logpdf(self, y: np.ndarray, rate: np.ndarray, log_const=None) -> np.ndarray:
        """Log-density of each row under each component, shape (n, K)."""
        c = self.log_const(y) if log_const is None else log_const
        with np.errstate(divide="ignore"):
            return (y[:, None] * np.log(rate)[None, :] - rate[None, :]) + c[:, None]

    @staticmethod
    def stats(y: np.ndarray, wr: np.ndarray) -> dict:
        """Weighted sufficient statistics for responsibilities times weights ``wr`` (n, K)."""
        return {"n": wr.sum(axis=0), "sy": y @ wr}

    @staticmethod
    def mstep(stats) -> np.ndarray:
        """Rates maximising the expected complete-data log-likelihood."""
        n = np.asarray(stats["n"])
        return np.asarray(stats["sy"]) / np.where(n > 0, n, 1.0)

    @staticmethod
    def score_rows(y: np.ndarray, rate: np.ndarray) -> np.ndarray:
        """d log f_k(y_i) / d rate_k, shape (n, K, 1)."""
        return (y[:, None] / rate[None, :] - 1.0)[:, :, None]

    @staticmethod
    def info_rows(y: np.ndarray, rate: np.ndarray) -> np.ndarray:
        """-d2 log f_k(y_i) / d rate_k2, shape (n, K, 1, 1)."""
        return (y[:, None] / rate[None, :] ** 2)[:, :, None, None]
