"""What a model provides to the EM engine.

A model says what its E-step, M-step and log-likelihood are; the engine owns
the loop.  The contract models are written to is :class:`ChunkedModel`: the
E-step is a pure function ``chunk_stats(params, chunk) -> (Stats, loglik)`` of the
parameters and one chunk of data (see :mod:`emstats.em.data`), returning additive
statistics (:mod:`emstats.em.stats`); the engine sums them over chunks.  Louis'
pieces are sums over units too (``chunk_louis``).  :class:`EMModel` below is the
whole-data form of the same protocol, which a small user model (such as the
examples in ``docs/own_model.md``) may implement directly.

Parameters are whatever object the model likes (a tuple of arrays, a
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
* incremental EM: ``blocks(n)`` (default: ``n`` slices of the units),
  ``block_stats(params, block)`` (additive statistics of a block of units) and
  ``m_step_natural(total, params)`` -- a chunked model has all three from its
  ``chunk_stats``;
* AECM (:class:`~emstats.em.variants.AlternatingECM`): ``n_cycles`` and
  ``cycle_m_step(cycle, stats, params)``, the conditional maximisation of one block of
  parameters from the E-step's statistics at the current parameters (each cycle may
  read them as the expectation of a different complete data);
* online EM: a plug-in of :mod:`emstats.em.online` (per-row averaged batch
  statistics and an M-step on them), which drives its own recursion;
* a generalised M-step (one Newton step of Q, not its maximum): ``m_step_exact = False``;
  an EM step that then lowers the log-likelihood is shortened along the M-step's
  direction until it does not (:func:`~emstats.em.accel.em_map`).
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

    Parameters
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
        if not np.all(np.isfinite(m)):
            return float("nan")
        try:
            return float(np.max(np.linalg.eigvalsh(0.5 * (m + m.T))))
        except np.linalg.LinAlgError:      # an ill-conditioned boundary estimate
            return float("nan")


class EMModel(ABC):
    """Base class of every model fitted by the EM engine (see the module docstring)."""

    #: names of the inference coordinates, in order
    param_names: list[str]

    @abstractmethod
    def start_params(self) -> Params:
        """Return starting values."""

    @abstractmethod
    def e_step(self, params: Params) -> tuple[Stats, float]:
        """Return expected sufficient statistics and the observed log-likelihood at ``params``.

        Parameters
        ----------
        params : object
            The model's parameters (as returned by :meth:`start_params` or :meth:`m_step`).
        """

    @abstractmethod
    def m_step(self, stats: Stats, params: Params) -> Params:
        """Return the parameters maximising the expected complete-data log-likelihood.

        Parameters
        ----------
        stats : object
            Expected sufficient statistics from :meth:`e_step`.
        params : object
            The current parameters (for models whose M-step needs them, e.g. ECM).
        """

    def pack(self, params: Params) -> np.ndarray:
        """Map parameters to a flat unconstrained vector.

        Parameters
        ----------
        params : object
            The model's parameters.

        Notes
        -----
        The default serves models whose parameters already are such a vector (a
        copy of it); override it for anything else.
        """
        return np.array(params, dtype=float, copy=True).ravel()

    def unpack(self, vec: np.ndarray) -> Params:
        """Inverse of :meth:`pack` (default: a copy of the vector).

        Parameters
        ----------
        vec : ndarray
            A flat parameter vector.
        """
        return np.array(vec, dtype=float, copy=True)

    def loglike(self, params: Params) -> float:
        """Observed-data log-likelihood (default: from the E-step).

        Parameters
        ----------
        params : object
            The model's parameters.
        """
        return float(self.e_step(params)[1])

    def to_inference(self, params: Params) -> np.ndarray:
        """Coordinates in which standard errors are reported (default: packed).

        Parameters
        ----------
        params : object
            The model's parameters.
        """
        return self.pack(params)

    def from_inference(self, vec: np.ndarray) -> Params:
        """Inverse of :meth:`to_inference`.

        Parameters
        ----------
        vec : ndarray
            A flat parameter vector.
        """
        return self.unpack(vec)

    def loglike_inference(self, vec: np.ndarray) -> float:
        """Observed log-likelihood as a function of the inference coordinates.

        Parameters
        ----------
        vec : ndarray
            A flat parameter vector.
        """
        return self.loglike(self.from_inference(np.asarray(vec, dtype=float)))

    def score(self, params: Params) -> np.ndarray:
        """Observed-data score in inference coordinates (optional).

        Parameters
        ----------
        params : object
            The model's parameters.
        """
        raise NotImplementedError

    def louis(self, params: Params) -> LouisPieces:
        """Louis' information pieces in inference coordinates (optional).

        Parameters
        ----------
        params : object
            The model's parameters.
        """
        raise NotImplementedError

    def score_and_louis(self, params: Params) -> tuple[np.ndarray, LouisPieces]:
        """Score and Louis' pieces together (override when one pass gives both).

        Parameters
        ----------
        params : object
            The model's parameters.
        """
        return self.score(params), self.louis(params)

    def newton_pieces(self, params: Params) -> tuple[float, np.ndarray, LouisPieces]:
        """Log-likelihood, score and Louis' pieces at once (override when one pass gives all).

        Parameters
        ----------
        params : object
            The model's parameters.
        """
        score, pieces = self.score_and_louis(params)
        return self.loglike(params), score, pieces

    @property
    def has_louis(self) -> bool:
        """Whether the model supplies Louis' information pieces."""
        return type(self).louis is not EMModel.louis

    def blocks(self, n_blocks: int) -> list[slice]:
        """Contiguous blocks of the units for incremental EM (default: ``n_blocks`` slices).

        Parameters
        ----------
        n_blocks : int
            Number of blocks (at most the number of units).
        """
        n = self.n_units
        edges = np.linspace(0, n, min(int(n_blocks), n) + 1).round().astype(int)
        return [slice(a, b) for a, b in zip(edges[:-1], edges[1:], strict=True)]


class ChunkedModel(EMModel):
    """A model whose E-step runs on chunks of its data.

    Subclasses set ``self.data`` (an :class:`~emstats.em.data.ArrayData`, or any
    source of :class:`~emstats.em.data.Chunk`) and implement:

    * ``chunk_stats(params, chunk) -> (Stats, loglik)``: the additive E-step
      statistics of the chunk's units and their observed-data log-likelihood
      (``(None, -inf)`` where the parameters are invalid).  The statistics must add
      over chunks *and* over parameter values (natural statistics about a fixed
      centre), so that incremental and online EM can combine blocks visited at
      different parameters;
    * ``m_step(stats, params)``: the M-step from the statistics summed over chunks.

    and, for Louis' standard errors and the Newton acceleration,

    * ``chunk_louis(params, chunk) -> Stats``: additive pieces of the chunk (by
      default the entries ``loglik``, ``score``, ``complete`` and ``missing``), and
      ``louis_from_stats(params, total)`` when the total needs more than unpacking;

    and, for robust and clustered standard errors,

    * ``chunk_scores(params, chunk) -> ndarray``: the observed-data score of each of the
      chunk's units (units x parameters, inference coordinates), weights included, so
      that the rows add up to the chunk's score.  The default runs ``chunk_louis`` on
      each unit alone, which is right whenever ``louis_from_stats`` maps the summed
      score linearly; a model with a vectorised form overrides it.  ``unit_weights()``
      gives the frequency weight of each unit (default: none).

    The engine binds the model to its chunks and a thread count for each fit
    (:class:`~emstats.em.problem.Problem`); the model keeps no state from a fit.
    Calling ``e_step``/``newton_pieces`` on the model directly uses one chunk and
    the default number of threads.
    """

    data: Any

    @abstractmethod
    def chunk_stats(self, params: Params, chunk) -> tuple[Any, float]:
        """Additive statistics and the log-likelihood of one chunk at ``params``."""

    def loglike_constant(self, params: Params) -> float:
        """Terms of the log-likelihood not owed to any unit (e.g. a log-prior); default 0."""
        return 0.0

    def chunk_louis(self, params: Params, chunk):
        """Additive pieces of the log-likelihood, score and Louis' information (optional)."""
        raise NotImplementedError

    def chunk_scores(self, params: Params, chunk) -> np.ndarray:
        """Observed-data score of each unit of ``chunk`` (units x parameters, inference
        coordinates, weights included): by default ``chunk_louis`` on each unit alone."""
        if not self.has_louis:
            raise NotImplementedError(f"{type(self).__name__} has no per-unit scores")
        rows = [self.louis_from_stats(params, self.chunk_louis(params, unit))[1]
                for unit in self.data.unit_chunks(chunk)]
        return np.asarray(rows, dtype=float).reshape(len(rows), -1)

    def unit_weights(self) -> np.ndarray | None:
        """Frequency weight of each unit, or None when the units are unweighted."""
        return None

    def louis_from_stats(self, params: Params, total) -> tuple[float, np.ndarray, LouisPieces]:
        """Log-likelihood, score and Louis' pieces from the pieces summed over chunks."""
        return (float(total["loglik"]), np.asarray(total["score"]),
                LouisPieces(np.asarray(total["complete"]), np.asarray(total["missing"])))

    @property
    def has_louis(self) -> bool:
        return type(self).chunk_louis is not ChunkedModel.chunk_louis

    @property
    def n_units(self) -> int:
        return self.data.n_units

    def _bound(self):
        from .problem import Problem

        return Problem(self)

    def e_step(self, params: Params):
        return self._bound().e_step(params)

    def newton_pieces(self, params: Params):
        return self._bound().newton_pieces(params)

    def score_and_louis(self, params: Params):
        return self._bound().score_and_louis(params)

    def score(self, params: Params) -> np.ndarray:
        return self.score_and_louis(params)[0]

    def louis(self, params: Params) -> LouisPieces:
        return self.score_and_louis(params)[1]
