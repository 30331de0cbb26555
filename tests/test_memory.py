"""Peak memory of moderate fits, as a multiple of the input's bytes (issue 16 item 6, issue 19
item 6).

The bounds are generous (the benchmarks report the actual multiples, ``docs/benchmarks.md``),
but each is well below what one n x P array (a per-row score matrix, P parameters) would add,
so that such a regression fails here.  ``tracemalloc`` counts numpy's allocations; the fits
are warmed up once first so that imports and caches do not count.  No timings.
"""

from __future__ import annotations

import tracemalloc
import warnings

import numpy as np
import pytest

import emstats


def _peak(fn) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _quiet(fn):
    def run():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fn()
    return run


@pytest.fixture(scope="module")
def gmm_data():
    rng = np.random.default_rng(11)
    n, d, k = 100_000, 3, 4
    means = rng.normal(scale=4.0, size=(k, d))
    return means[rng.integers(0, k, n)] + rng.standard_normal((n, d))


def test_gmm_fit_with_standard_errors_peak(gmm_data):
    X = gmm_data
    n, d, k = X.shape[0], X.shape[1], 4
    P = k - 1 + k * d + k * d * (d + 1) // 2            # 39 free parameters

    def fit():
        res = emstats.gmm(X, k=k).fit(n_init=1, maxiter=10)
        assert np.all(np.isfinite(res.bse))

    fit = _quiet(fit)
    emstats.gmm(X[:3000], k=k)                           # imports
    mult = _peak(fit) / X.nbytes
    # the model's copy and transpose (2x), the responsibilities (k/d = 1.33x) and fixed-size
    # blocks: measured 4-5x; an n x P array alone would add P / d = 13x
    assert mult < 8.0, f"peak {mult:.2f}x the data"
    assert 8.0 < 0.5 * n * P * 8 / X.nbytes + 2.0


def test_gmm_starts_no_one_hot_or_standardised_copy(gmm_data):
    X = gmm_data
    m = emstats.gmm(X, k=4)
    rng = np.random.default_rng(0)
    m._init_kmeans(np.random.default_rng(0))             # warm-up
    mult = _peak(lambda: m._init_kmeans(rng)) / X.nbytes
    # k-means++ and Lloyd by blocks, the M-step from the labels by blocks: a few vectors of
    # n entries and fixed-size blocks (65536-row distance blocks in Lloyd: 1.7x at this n),
    # measured 2.2x; before, with an n x k one-hot matrix, X / scale and n x d distance
    # temporaries, 5.0x
    assert mult < 3.2, f"peak {mult:.2f}x the data"


def test_hmm_fit_with_standard_errors_peak():
    rng = np.random.default_rng(2)
    S, T, d, k = 40, 1000, 4, 3
    states = rng.integers(0, k, S * T)
    X = rng.standard_normal((S * T, d)) + states[:, None] * 2.0
    fit = _quiet(lambda: emstats.hmm(X, k, lengths=[T] * S).fit())
    fit()                                                # warm-up
    mult = _peak(fit) / X.nbytes
    # measured about 8x (the model keeps X, X - mean, its transpose and [1, x, x^2]; the
    # forward-backward work arrays are 3 n x k); one n x P
    # array (P = 29 here) would add P / d = 7x
    assert mult < 14.0, f"peak {mult:.2f}x the data"
