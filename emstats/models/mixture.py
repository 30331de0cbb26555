"""Finite mixtures of Poisson distributions, composed from the shared components.

    P(Y = y) = sum_k pi_k exp(-lambda_k) lambda_k^y / y!

The model only says what the mixture is: its parameter blocks (the weights on the
simplex, the rates positive), the E-step of a chunk (responsibilities from the
component log-densities: additive counts and count-weighted sums), the M-step
(weighted means) and Louis' pieces (from the component's per-row scores).  The
engine, the accelerations, multi-start, the standard errors and the summary come
from the package.  Components are ordered by increasing rate (label switching is
harmless: the order is part of the estimate's definition).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..components.mixture import louis_pieces, responsibilities, score_rows
from ..components.poisson import Poisson, check_counts
from ..em.data import ArrayData, row_blocks
from ..em.params import ParamSpec, Simplex, SpecMaps
from ..em.protocol import ChunkedModel, LouisPieces
from ..em.stats import Stats
from ..exceptions import DataError
from ..inference.fit import FitMixin
from ..inference.results import EMResults


class PoissonMixture(SpecMaps, FitMixin, ChunkedModel):
    """Mixture of ``k`` Poisson distributions, fitted by EM.

    Parameters
    ----------
    counts : array_like or pandas.Series
        Non-negative integer counts.
    k : int
        Number of components.
    weights : array_like, optional
        Frequency weights (e.g. the number of days with each count).

    Examples
    --------
    Hasselblad's (1969) deaths per day of women aged 80 and over (The Times,
    1910-1912):

    >>> import numpy as np, emstats
    >>> res = emstats.poisson_mixture(np.arange(10), k=2, weights=[162, 267, 271, 185,
    ...                               111, 61, 27, 8, 3, 1]).fit()
    >>> np.round(res.rates.to_numpy(), 3).tolist()
    [1.256, 2.663]
    """

    summary_title = "Poisson Mixture Results"

    def __init__(self, counts, k: int, *, weights=None):
        name = getattr(counts, "name", None) or "y"
        y = check_counts(counts, repr(name))
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        if weights is None:     # unit weights: a read-only broadcast, not an n-vector
            w = np.broadcast_to(1.0, y.shape)
            kept = y
        else:
            w = np.asarray(weights, dtype=float).ravel()
            if w.shape != y.shape:
                raise DataError(f"weights have {w.size} rows but the counts have {y.size}")
            if not np.all(np.isfinite(w) & (w >= 0)) or w.sum() <= 0:
                raise DataError("weights must be non-negative and finite, and not all zero")
            kept = y[w > 0]
        if not np.any(kept > 0):
            raise DataError(f"every count of {name!r} is zero: the Poisson rate's maximum "
                            "likelihood estimate is 0, on the boundary of the parameter space")
        distinct = np.unique(kept).size
        del kept
        if distinct < k:
            raise DataError(f"k = {k} components need at least {k} distinct counts; the data "
                            f"have {distinct}")
        self.k = int(k)
        self.endog_name = str(name)
        self.component = Poisson(self.k)
        self.spec = ParamSpec([Simplex("weights", (self.k,), reference="first"),
                               self.component.spec_block()])
        self.data = ArrayData({"y": y, "w": w, "logc": Poisson.log_const(y)})
        self.nobs = float(w.sum())
        self.df_model = float(self.spec.size)

    # -- parameters -----------------------------------------------------------------
    def canonical(self, params) -> dict:
        """The same mixture with its components in increasing order of rate."""
        o = np.argsort(params["rate"], kind="stable")
        return {"weights": params["weights"][o], "rate": params["rate"][o]}

    def _from_stats(self, n: np.ndarray, sy: np.ndarray) -> dict:
        """Start values from each component's weighted count ``n`` and sum ``sy``."""
        y, w = self.data["y"], self.data["w"]
        rate = np.maximum(Poisson.mstep({"n": n, "sy": sy}),
                          1e-3 * max(float(y @ w / w.sum()), 1e-3))
        return {"weights": np.maximum(n, 1e-3 * n.sum()) / np.maximum(n, 1e-3 * n.sum()).sum(),
                "rate": rate}

    def _from_labels(self, labels: np.ndarray) -> dict:
        """Start values from a partition of the rows (by blocks of rows: no n x K
        one-hot matrix)."""
        n, sy = np.zeros(self.k), np.zeros(self.k)
        for b in row_blocks({"y": self.data["y"], "w": self.data["w"], "lab": labels}):
            wb = np.ascontiguousarray(b["w"])
            n += np.bincount(b["lab"], weights=wb, minlength=self.k)
            sy += np.bincount(b["lab"], weights=b["y"] * wb, minlength=self.k)
        return self._from_stats(n, sy)

    def start_params(self) -> dict:
        """Components from the weighted quantiles of the counts (equal shares)."""
        y, w = self.data["y"], self.data["w"]
        o = np.argsort(y, kind="stable")
        # the quantile label of the i-th smallest count is min(int(v_i), k - 1), with v the
        # cumulative share of the weights in that order times k, minus 1e-12: v does not
        # decrease, so each label is a run of the order, found block by block (the running
        # sum carried from block to block is the same sequence as one cumulative sum)
        total, carry = w.sum(), 0.0
        below = np.zeros(self.k - 1, dtype=np.int64)    # rows with v < 1, ..., v < k - 1
        for a in range(0, y.size, 65536):
            v = w[o[a:a + 65536]]
            v[0] += carry
            np.cumsum(v, out=v)
            carry = v[-1]
            v /= total
            v *= self.k
            v -= 1e-12
            below += np.searchsorted(v, np.arange(1, self.k), side="left")
        ends = np.r_[0, below, y.size]
        n, sy = np.zeros(self.k), np.zeros(self.k)
        for j in range(self.k):
            for a in range(ends[j], ends[j + 1], 65536):
                idx = o[a:min(a + 65536, ends[j + 1])]
                wj = w[idx]
                n[j] += wj.sum()
                sy[j] += y[idx] @ wj
        return self._from_stats(n, sy)

    def initial_starts(self, init, n_init: int, rng: np.random.Generator):
        """``init=None``/``"quantile"``: one start from quantiles (and ``n_init - 1``
        random partitions); ``"random"``: ``n_init`` random partitions."""
        if init not in (None, "quantile", "random"):
            raise ValueError(f"init must be 'quantile' or 'random', got {init!r}")
        starts = [] if init == "random" else [("quantile", self.start_params())]
        while len(starts) < n_init:
            starts.append(("random", self._from_labels(rng.integers(0, self.k,
                                                                    self.data.n_rows))))
        return starts

    def check_start(self, start) -> dict:
        try:
            p = {"weights": np.asarray(start["weights"], dtype=float),
                 "rate": np.asarray(start["rate"], dtype=float)}
        except (KeyError, TypeError, IndexError):
            raise ValueError("start_params must be a mapping with 'weights' and 'rate'") \
                from None
        if p["weights"].shape != (self.k,) or p["rate"].shape != (self.k,):
            raise ValueError(f"start_params: 'weights' and 'rate' need {self.k} values each")
        if not (np.all(p["rate"] > 0) and np.all(p["weights"] > 0)
                and abs(p["weights"].sum() - 1) < 1e-8):
            raise ValueError("start_params: rates must be positive and weights positive "
                             "summing to 1")
        return p

    # -- EM ---------------------------------------------------------------------------
    def _resp(self, params, chunk):
        ld = self.component.logpdf(chunk["y"], params["rate"], chunk["logc"])
        with np.errstate(divide="ignore"):
            return responsibilities(ld, np.log(params["weights"]))

    def chunk_stats(self, params, chunk):
        """Responsibility-weighted counts ``n`` and sums ``sy`` of the chunk's rows (by
        blocks of rows: the per-row temporaries are n x K)."""
        stats, total = 0, 0.0
        for b in row_blocks(chunk, 8192):
            r, ll = self._resp(params, b)
            w = np.ascontiguousarray(b["w"])    # a block of unit weights: 8192 ones
            total += float(w @ ll)
            if not np.isfinite(total):
                return None, -np.inf
            st = Poisson.stats(b["y"], w[:, None] * r)
            stats = stats + Stats(n=st["n"], sy=st["sy"])
        return stats, total

    def m_step(self, stats, params):
        n = np.asarray(stats["n"])
        return {"weights": n / n.sum(), "rate": Poisson.mstep(stats)}

    def chunk_louis(self, params, chunk):
        """Louis' pieces of the chunk, by blocks of rows (the per-row component scores
        and informations are n x K x P temporaries)."""
        return sum(self._louis_block(params, b) for b in row_blocks(chunk, 8192))

    def _louis_block(self, params, chunk):
        r, ll = self._resp(params, chunk)
        y, w, rate = chunk["y"], np.ascontiguousarray(chunk["w"]), params["rate"]
        score, comp, miss = louis_pieces(r, w, params["weights"],
                                         Poisson.score_rows(y, rate), Poisson.info_rows(y, rate))
        return Stats(loglik=w @ ll, score=score, complete=comp, missing=miss)

    def chunk_scores(self, params, chunk) -> np.ndarray:
        """Observed-data score of each row of the chunk (weights included)."""
        r, _ = self._resp(params, chunk)
        return score_rows(r, np.ascontiguousarray(chunk["w"]), params["weights"],
                          Poisson.score_rows(chunk["y"], params["rate"]))

    def louis_from_stats(self, params, total):
        return (float(total["loglik"]), np.asarray(total["score"]),
                LouisPieces(np.asarray(total["complete"]), np.asarray(total["missing"])))

    def posterior(self, params, counts=None) -> np.ndarray:
        """Responsibilities of the model's rows (or of ``counts``), shape (n, K)."""
        y = self.data["y"] if counts is None else check_counts(counts)
        ld = self.component.logpdf(y, params["rate"])
        return responsibilities(ld, np.log(params["weights"]))[0]


class PoissonMixtureResults(EMResults):
    """Results of a Poisson mixture: weights, rates, posterior probabilities."""

    @property
    def _p(self) -> dict:
        return self.raw_params

    @property
    def weights(self) -> pd.Series:
        """Mixing proportions by component (1-based)."""
        return pd.Series(self._p["weights"], index=range(1, self.model.k + 1), name="weight")

    @property
    def rates(self) -> pd.Series:
        """Component means by component (1-based)."""
        return pd.Series(self._p["rate"], index=range(1, self.model.k + 1), name="rate")

    def predict_proba(self, newdata=None) -> pd.DataFrame:
        """Posterior probabilities of the components for the model's rows or ``newdata``.

        Parameters
        ----------
        newdata : array_like, optional
            Counts (default: the estimation rows).
        """
        r = self.model.posterior(self._p, newdata)
        return pd.DataFrame(r, columns=[f"component {k}" for k in range(1, self.model.k + 1)])

    def predict(self, newdata=None, which: str = "mean"):
        """``"mean"`` (the mixture mean, or the posterior mean rate of each count given),
        ``"label"`` (the most probable component, 1-based) or ``"proba"``.

        Parameters
        ----------
        newdata : array_like, optional
            Counts (default: the estimation rows).
        which : {"mean", "label", "proba"}
            What to predict."""
        if which == "proba":
            return self.predict_proba(newdata)
        if which == "label":
            return pd.Series(self.predict_proba(newdata).to_numpy().argmax(axis=1) + 1,
                             name="label")
        if which == "mean":
            if newdata is None:
                return float(self._p["weights"] @ self._p["rate"])
            return pd.Series(self.predict_proba(newdata).to_numpy() @ self._p["rate"],
                             name="posterior mean rate")
        raise ValueError(f"which must be 'mean', 'label' or 'proba', got {which!r}")


PoissonMixture.results_class = PoissonMixtureResults


def poisson_mixture(counts, k: int, *, weights=None, data=None) -> PoissonMixture:
    """Mixture of ``k`` Poisson distributions (see :class:`PoissonMixture`).

    Parameters
    ----------
    counts : array_like, pandas.Series, or a column name of ``data``
        The counts (non-negative integers).
    k : int
        Number of components.
    weights : array_like or column name, optional
        Frequency weights.
    data : pandas.DataFrame, optional
        Where named columns are looked up.

    Returns
    -------
    PoissonMixture
        Call ``.fit()`` for the results.
    """
    if data is not None:
        def col(v):
            if isinstance(v, str):
                if v not in data.columns:
                    raise DataError(f"column {v!r} is not in the data (columns: "
                                    f"{', '.join(map(str, data.columns))})")
                return data[v]
            return v
        counts, weights = col(counts), col(weights)
    return PoissonMixture(counts, k, weights=weights)
