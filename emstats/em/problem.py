"""A model bound, for one fit, to its data chunks and a thread count.

The iteration schemes (:mod:`emstats.em.accel`, :mod:`emstats.em.variants`) see one
object with ``e_step(params)``, ``m_step``, ``newton_pieces`` and the parameter maps.
For a :class:`~emstats.em.protocol.ChunkedModel` that object is a :class:`Problem`:
it runs the model's ``chunk_stats`` on every chunk and reduces the statistics in
chunk order (so results do not depend on the number of threads), and it is created
per fit, so the model itself keeps no state from a fit.  A model of the older
whole-data protocol is its own problem.
"""

from __future__ import annotations

import numpy as np

from .data import Chunk
from .protocol import ChunkedModel, EMModel, LouisPieces
from .stats import tree_sum

#: bytes of one block of the units' scores in a robust covariance (a model's score pass
#: holds a few temporaries of a block's size): with n x P scores at once, a robust GMM fit
#: (n = 1e5, d = 8, k = 8, P = 359) peaked at 44x its data; by blocks of 4 MB at 5.4x
SCORE_BLOCK_BYTES = 16 << 20


class Problem:
    """``model`` fitted to ``chunks``: the protocol methods the schemes call.

    Parameters
    ----------
    model : ChunkedModel
    n_threads : int, optional
        Threads for the kernels inside each chunk (default: chosen from the amount of
        work, :func:`emstats._config.threads_for_work`).
    n_chunks : int
        Chunks of the in-memory data (default 1: one chunk, the kernels parallelise
        inside it).
    """

    def __init__(self, model: ChunkedModel, n_threads: int | None = None, n_chunks: int = 1):
        from .._config import threads_for_work

        self.model = model
        self.n_threads = threads_for_work(n_threads, model.data.n_rows)
        self.chunks: list[Chunk] = model.data.chunks(n_chunks, self.n_threads)
        self.param_names = model.param_names

    # -- parameter maps: the model's ------------------------------------------------
    def start_params(self):
        return self.model.start_params()

    def pack(self, params):
        return self.model.pack(params)

    def unpack(self, vec):
        return self.model.unpack(vec)

    def to_inference(self, params):
        return self.model.to_inference(params)

    def from_inference(self, vec):
        return self.model.from_inference(vec)

    def m_step(self, stats, params):
        return self.model.m_step(stats, params)

    @property
    def has_exact_e_step(self) -> bool:
        return getattr(self.model, "has_exact_e_step", True)

    @property
    def has_louis(self) -> bool:
        return self.model.has_louis

    @property
    def n_units(self) -> int:
        return self.model.data.n_units

    def __getattr__(self, name):
        # optional capabilities of the model (sample_stats, average_stats, ...) pass
        # through; everything the engine relies on is defined above
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.model, name)

    # -- the E-step over chunks -------------------------------------------------------
    def e_step(self, params):
        """Statistics summed over the chunks and the log-likelihood (-inf where undefined)."""
        distributed = getattr(self.chunks, "map_reduce", None)
        if distributed is not None:     # chunks on a cluster: summed there
            total, ll = distributed(self.model, "chunk_stats", params)
            if total is None or not np.isfinite(ll):
                return None, -np.inf
            return total, float(ll) + self.model.loglike_constant(params)
        parts = [self.model.chunk_stats(params, ch) for ch in self.chunks]
        if any(p[0] is None for p in parts):
            return None, -np.inf
        ll = float(sum(p[1] for p in parts))
        if not np.isfinite(ll):
            return None, -np.inf
        return tree_sum(p[0] for p in parts), ll + self.model.loglike_constant(params)

    def loglike(self, params) -> float:
        return float(self.e_step(params)[1])

    def loglike_inference(self, vec) -> float:
        return self.loglike(self.from_inference(np.asarray(vec, dtype=float)))

    # -- Louis' pieces over chunks ----------------------------------------------------
    def newton_pieces(self, params) -> tuple[float, np.ndarray, LouisPieces]:
        distributed = getattr(self.chunks, "map_reduce", None)
        if distributed is not None:
            total = distributed(self.model, "chunk_louis", params)
        else:
            total = tree_sum(self.model.chunk_louis(params, ch) for ch in self.chunks)
        return self.model.louis_from_stats(params, total)

    def score_and_louis(self, params):
        _, score, pieces = self.newton_pieces(params)
        return score, pieces

    def score(self, params):
        return self.score_and_louis(params)[0]

    def louis(self, params):
        return self.score_and_louis(params)[1]

    def unit_scores(self, params) -> np.ndarray:
        """Observed-data score of every unit (units x parameters), chunk by chunk."""
        return np.vstack(list(self.unit_score_blocks(params)))

    def unit_score_blocks(self, params, max_bytes: int | None = None):
        """The units' observed-data scores in consecutive blocks of whole units (units x
        parameters each, in the units' order), each of at most about ``max_bytes``
        (default :data:`SCORE_BLOCK_BYTES`): a robust covariance sums its meat block by
        block instead of holding n x P scores."""
        own = getattr(self.model, "unit_scores", None)   # scores of rows the chunks lost
        if own is not None:
            yield np.asarray(own(params), dtype=float)
            return
        if max_bytes is None:
            max_bytes = SCORE_BLOCK_BYTES
        data = self.model.data
        need = 8.0 * data.n_rows * max(len(self.param_names), 1)
        n_blocks = int(np.ceil(need / max_bytes))
        chunks = (self.chunks if n_blocks <= len(self.chunks)
                  else data.chunks(n_blocks, self.n_threads))
        for ch in chunks:
            yield np.asarray(self.model.chunk_scores(params, ch), dtype=float)

    # -- incremental EM: blocks are chunks --------------------------------------------
    def blocks(self, n_blocks: int) -> list[Chunk]:
        own = getattr(self.model.data, "blocks", None)   # out-of-core data: pieces grouped
        if own is not None:
            return own(n_blocks, self.n_threads)
        return self.model.data.chunks(n_blocks, self.n_threads)

    def block_stats(self, params, block: Chunk):
        reduce = getattr(block, "map_reduce", None)      # a block of pieces (on a cluster)
        if reduce is not None:
            total, ll = reduce(self.model, "chunk_stats", params)
            return (None, -np.inf) if total is None else (total, float(ll))
        return self.model.chunk_stats(params, block)

    def m_step_natural(self, stats, params):
        return self.model.m_step(stats, params)


def bind(model: EMModel, n_threads: int | None = None):
    """The object the schemes iterate on: a :class:`Problem` for a chunked model, the
    model itself otherwise."""
    if isinstance(model, ChunkedModel):
        return Problem(model, n_threads)
    return model
