"""BLAS inside the OpenMP kernels runs on one thread (issue 19, item 5).

The GMM and HMM kernels call dgemm from inside ``prange``; a multithreaded BLAS there
oversubscribes the cores (a 20x slowdown was measured, ``emstats/_blas.py``).  These tests
check that each kernel that calls BLAS runs under :func:`emstats._blas.single_threaded_blas`
(a recording stand-in for threadpoolctl's controllers), that the guard restores the counts
and nests, and that results stay bitwise identical across thread counts.  Timings are in
``benchmarks/`` (never in tests).
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

import emstats
from emstats import _blas


class _FakeBLAS:
    """Stands in for a threadpoolctl library controller and records the calls."""

    def __init__(self, n=4):
        self.n = n
        self.calls = []

    def get_num_threads(self):
        return self.n

    def set_num_threads(self, n):
        self.calls.append(n)
        self.n = n


@pytest.fixture
def fake(monkeypatch):
    lib = _FakeBLAS(4)
    monkeypatch.setattr(_blas, "_blas_controllers", lambda: [lib])
    return lib


def test_guard_sets_one_thread_restores_and_nests(fake):
    with _blas.single_threaded_blas():
        assert fake.n == 1
        with _blas.single_threaded_blas():
            assert fake.n == 1
        assert fake.n == 1              # the inner exit does not restore
    assert fake.n == 4
    assert fake.calls == [1, 4]


def test_guard_restores_after_an_error(fake):
    with pytest.raises(RuntimeError):
        with _blas.single_threaded_blas():
            raise RuntimeError("boom")
    assert fake.n == 4


def test_guard_shared_by_python_threads(fake):
    inside, go = threading.Event(), threading.Event()

    def other():
        with _blas.single_threaded_blas():
            inside.set()
            go.wait(5)

    t = threading.Thread(target=other)
    t.start()
    inside.wait(5)
    with _blas.single_threaded_blas():
        assert fake.n == 1
    assert fake.n == 1                  # the other thread is still inside
    go.set()
    t.join()
    assert fake.n == 4


def test_real_blas_limited_and_restored():
    before = _blas.blas_threads()
    with _blas.single_threaded_blas():
        assert all(n == 1 for n in _blas.blas_threads())
    assert _blas.blas_threads() == before


def _gmm_data(n=6000, d=5):
    rng = np.random.default_rng(3)
    return np.vstack([rng.normal(0, 1, (n // 2, d)), rng.normal(2, 0.7, (n - n // 2, d))])


def test_gmm_kernel_runs_blas_on_one_thread(fake):
    m = emstats.gmm(_gmm_data(), k=3)
    p = m._init_kmeans(np.random.default_rng(0))
    fake.calls.clear()
    m._kernel(m.X, p, m._factors(p), n_threads=2)
    assert fake.calls == [1, 4]


def test_hmm_kernels_run_blas_on_one_thread(fake):
    rng = np.random.default_rng(5)
    s = np.zeros(1500, dtype=int)          # two persistent states, means 0 and 2
    for t in range(1, 1500):
        s[t] = s[t - 1] if rng.random() < 0.95 else 1 - s[t - 1]
    X = rng.normal(size=(1500, 3)) + 2.0 * s[:, None]
    m = emstats.hmm(X, 2, covariance="full", lengths=[500, 500, 500])
    fake.calls.clear()
    res = m.fit(n_threads=2)
    assert np.isfinite(res.llf)
    # every E-step (emission dgemm, forward-backward sums) and the Louis blocks ran
    # under the guard, each entry setting one thread and each exit restoring four
    assert len(fake.calls) >= 6 and fake.calls[0::2] == [1] * (len(fake.calls) // 2)
    assert fake.calls[1::2] == [4] * (len(fake.calls) // 2)
    assert fake.n == 4


@pytest.mark.filterwarnings("ignore::statsmodels.tools.sm_exceptions.ConvergenceWarning")
@pytest.mark.parametrize("cov", ["VVV", "VVI"])
def test_gmm_fit_bitwise_across_threads(cov):
    m = emstats.gmm(_gmm_data(9000, 3), k=2, covariance=cov)
    a = m.fit(n_threads=1, n_init=1, cov_type=None, maxiter=20)
    b = m.fit(n_threads=2, n_init=1, cov_type=None, maxiter=20)
    assert np.array_equal(a.params.to_numpy(), b.params.to_numpy())
    assert a.llf == b.llf


def test_row_blocks_in_python_threads_bitwise_and_blas_single(fake):
    """Zero-inflated models share their row blocks among n_threads Python threads (BLAS on
    one thread meanwhile): the same estimates, standard errors and log-likelihood, bit for
    bit, as on one thread."""
    import pandas as pd

    from emstats.em import data as emdata

    rng = np.random.default_rng(6)
    n = 3 * emdata.ROW_BLOCK + 17          # several blocks
    x = rng.normal(size=n)
    z = rng.normal(size=n)
    lam = np.exp(0.3 + 0.5 * x)
    zero = rng.random(n) < 1 / (1 + np.exp(-(-0.5 + z)))
    y = np.where(zero, 0, rng.poisson(lam))
    df = pd.DataFrame({"y": y, "x": x, "z": z})
    a = emstats.zeroinfl("y ~ x | z", df).fit(n_threads=1)
    fake.calls.clear()
    b = emstats.zeroinfl("y ~ x | z", df).fit(n_threads=2)
    assert fake.calls and fake.calls[0] == 1 and fake.n == 4
    assert np.array_equal(a.params.to_numpy(), b.params.to_numpy())
    assert np.array_equal(a.bse.to_numpy(), b.bse.to_numpy())
    assert a.llf == b.llf
    seen = []
    out = emdata.map_row_blocks(lambda blk: (seen.append(1), blk["v"].sum())[1],
                                emdata.Chunk({"v": np.arange(n, dtype=float)}, 0, n, None, 2))
    assert len(out) == len(seen) == 4
    assert sum(out) == np.arange(n, dtype=float).sum()
