"""Additive statistics: what an E-step returns for one chunk of data.

EM's expected sufficient statistics, the log-likelihood and Louis' pieces are all
sums over independent units (rows, sequences, groups).  :class:`Stats` is a small
immutable mapping from names to float arrays with ``+``, ``-`` and scalar ``*``, so
the engine can reduce the statistics of any number of chunks in any tree order --
in one process, across OpenMP row blocks, or across the workers of a cluster --
and the online and incremental schemes can add and subtract them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from numbers import Real

import numpy as np


class Stats(Mapping):
    """Named additive statistics (float arrays of fixed shapes).

    Parameters
    ----------
    mapping : mapping of str to array_like, optional
    **arrays : array_like
        Entries, converted to float arrays (a scalar becomes a 0-d array).

    Examples
    --------
    >>> a = Stats(n=3.0, s=[1.0, 2.0])
    >>> b = Stats(n=1.0, s=[0.5, 0.5])
    >>> float((a + b)["n"]), (0.5 * (a + b))["s"].tolist()
    (4.0, [0.75, 1.25])
    >>> sum([a, b])["s"].tolist()      # 0 + a + b works, so does tree_sum
    [1.5, 2.5]
    """

    __slots__ = ("_d",)

    def __init__(self, mapping: Mapping | None = None, **arrays):
        d = dict(mapping or {})
        d.update(arrays)
        self._d = {k: np.asarray(v, dtype=float) for k, v in d.items()}

    # -- mapping ------------------------------------------------------------------
    def __getitem__(self, key: str) -> np.ndarray:
        return self._d[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._d)

    def __len__(self) -> int:
        return len(self._d)

    def __repr__(self) -> str:
        shapes = ", ".join(f"{k}{list(v.shape)}" for k, v in self._d.items())
        return f"Stats({shapes})"

    # -- arithmetic -----------------------------------------------------------------
    def _check(self, other: Stats) -> None:
        if self._d.keys() != other._d.keys():
            raise ValueError(f"statistics with different entries: {sorted(self._d)} and "
                             f"{sorted(other._d)}")

    def __add__(self, other):
        if isinstance(other, Real) and other == 0:  # sum() starts from 0
            return self
        if not isinstance(other, Stats):
            return NotImplemented
        self._check(other)
        return Stats({k: v + other._d[k] for k, v in self._d.items()})

    __radd__ = __add__

    def __sub__(self, other):
        if not isinstance(other, Stats):
            return NotImplemented
        self._check(other)
        return Stats({k: v - other._d[k] for k, v in self._d.items()})

    def __mul__(self, a):
        if not isinstance(a, Real):
            return NotImplemented
        return Stats({k: a * v for k, v in self._d.items()})

    __rmul__ = __mul__

    def __truediv__(self, a):
        if not isinstance(a, Real):
            return NotImplemented
        return Stats({k: v / a for k, v in self._d.items()})

    def zeros_like(self) -> Stats:
        """Statistics of the same entries and shapes, all zero (the sum over no units)."""
        return Stats({k: np.zeros_like(v) for k, v in self._d.items()})

    def is_finite(self) -> bool:
        """Whether every entry is finite."""
        return all(bool(np.all(np.isfinite(v))) for v in self._d.values())


def tree_sum(items: Iterable[Stats]) -> Stats:
    """Sum statistics pairwise (a balanced tree), in the order given.

    The result depends only on the order of ``items``, not on how they were computed,
    so a fixed chunking gives bitwise-reproducible totals for any number of threads or
    workers.
    """
    level = list(items)
    if not level:
        raise ValueError("tree_sum of no statistics")
    while len(level) > 1:
        nxt = [level[i] + level[i + 1] for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]
