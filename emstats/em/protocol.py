"""What a model provides to the EM engine.

A model says what its E-step, M-step and log-likelihood are; the engine owns
the loop.  Parameters are whatever object the model likes (a tuple of arrays, a
dataclass); the engine touches them only through the model's methods:

* ``start_params()`` -- a starting value;
* ``e_step(params) -> (stats, loglik)`` -- expected complete-data sufficient
  statistics (whatever ``m_step`` consumes; additive over independent units)
  and the observed-data log-likelihood *at params*;
* ``m_step(stats, params) -> params`` -- maximise the expected complete-data
  log-likelihood.  An ECM model performs its conditional maximisations here, in
  order, using ``params`` for the blocks not yet updated;
* ``pack(params) -> ndarray`` / ``unpack(vec) -> params`` -- a flat
  *unconstrained* coordinate vector (positive scales on the log scale,
  probabilities as log-ratios...), the space in which SQUAREM extrapolates;
* ``to_inference(params)`` / ``from_inference(vec)`` with ``param_names`` -- the
  coordinates in which standard errors are reported (default: the packed ones);
* ``score(params)`` and ``louis(params)`` -- optional (``score_and_louis`` and
  ``newton_pieces`` combine them with the log-likelihood when one pass over the
  data can give all): the observed-data score
  and Louis' pieces, both in inference coordinates.  ``louis`` returns the
  expected complete-data information E[-d2 log Lc | y] and the conditional
  covariance of the complete-data score Var[d log Lc | y], summed over
  independent units; observed information = complete - missing.

Variants of EM reuse these pieces; a model that supports a variant says so by
implementing its extra hook (documented here so the protocol has room for
them):

* Monte Carlo / stochastic EM: ``sample_stats(params, rng, size)``, an E-step
  by simulation returning the same kind of ``stats`` (and ``has_exact_e_step =
  False`` for a model that has no other E-step);
* incremental EM: ``block_stats(params, rows)`` (additive statistics of a block
  of units) and ``m_step_natural(total)``;
* online EM: a plug-in of :mod:`emstats.em.online` (per-row averaged batch
  statistics and an M-step on them), which drives its own recursion.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import numpy as np

Params = Any
Stats = Any


@dataclass(frozen=True)
class LouisPieces:
    """Louis' (1982) decomposition of the observed information.

    Attributes
    ----------
    complete : ndarray
        Conditional expectation of the complete-data information given the data.
    missing : ndarray
        Conditional covariance of the complete-data score given the data (the
        missing information).
    """

    complete: np.ndarray
    missing: np.ndarray

    @property
    def observed(self) -> np.ndarray:
        """Observed information, complete minus missing."""
        return self.complete - self.missing

    def fraction_missing(self) -> float:
        """Largest eigenvalue of complete^-1 missing: the rate of linear convergence of EM."""
        try:
            c = np.linalg.cholesky(self.complete)
        except np.linalg.LinAlgError:
            return float("nan")
        ci = np.linalg.inv(c)
        m = ci @ self.missing @ ci.T
        return float(np.max(np.linalg.eigvalsh(0.5 * (m + m.T))))


class EMModel(ABC):
    """Base class of every model fitted by the EM engine (see the module docstring)."""

    #: names of the inference coordinates, in order
    param_names: list[str]

    @abstractmethod
    def start_params(self) -> Params:
        """Return starting values."""

    @abstractmethod
    def e_step(self, params: Params) -> tuple[Stats, float]:
        """Return expected sufficient statistics and the observed log-likelihood at ``params``."""

    @abstractmethod
    def m_step(self, stats: Stats, params: Params) -> Params:
        """Return the parameters maximising the expected complete-data log-likelihood."""

    def pack(self, params: Params) -> np.ndarray:
        """Map parameters to a flat unconstrained vector.

        The default serves models whose parameters already are such a vector (a
        copy of it); override it for anything else.
        """
        return np.array(params, dtype=float, copy=True).ravel()

    def unpack(self, vec: np.ndarray) -> Params:
        """Inverse of :meth:`pack` (default: a copy of the vector)."""
        return np.array(vec, dtype=float, copy=True)

    def loglike(self, params: Params) -> float:
        """Observed-data log-likelihood (default: from the E-step)."""
        return float(self.e_step(params)[1])

    def to_inference(self, params: Params) -> np.ndarray:
        """Coordinates in which standard errors are reported (default: packed)."""
        return self.pack(params)

    def from_inference(self, vec: np.ndarray) -> Params:
        """Inverse of :meth:`to_inference`."""
        return self.unpack(vec)

    def loglike_inference(self, vec: np.ndarray) -> float:
        """Observed log-likelihood as a function of the inference coordinates."""
        return self.loglike(self.from_inference(np.asarray(vec, dtype=float)))

    def score(self, params: Params) -> np.ndarray:
        """Observed-data score in inference coordinates (optional)."""
        raise NotImplementedError

    def louis(self, params: Params) -> LouisPieces:
        """Louis' information pieces in inference coordinates (optional)."""
        raise NotImplementedError

    def score_and_louis(self, params: Params) -> tuple[np.ndarray, LouisPieces]:
        """Score and Louis' pieces together (override when one pass gives both)."""
        return self.score(params), self.louis(params)

    def newton_pieces(self, params: Params) -> tuple[float, np.ndarray, LouisPieces]:
        """Log-likelihood, score and Louis' pieces at once (override when one pass gives all)."""
        score, pieces = self.score_and_louis(params)
        return self.loglike(params), score, pieces

    @property
    def has_louis(self) -> bool:
        """Whether the model supplies Louis' information pieces."""
        return type(self).louis is not EMModel.louis
