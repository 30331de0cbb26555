"""Online EM (Cappé & Moulines 2009) and stochastic EM for Gaussian mixtures.

The witnesses are the batch maximum-likelihood fits on the concatenated stream
(``emstats.Tobit(...).fit()``, ``emstats.gmm(...).fit()``), themselves checked
against R and numerical Hessians in test_tobit*.py and test_gmm.py.
"""

from __future__ import annotations

import doctest

import numpy as np
import pandas as pd
import pytest

import emstats
import emstats.em.online as online_mod
from emstats import online_gmm, online_tobit
from emstats.exceptions import DataError

BATCH = 5000


def _tobit_stream(seed=0, n=200_000):
    rng = np.random.default_rng(seed)
    X = np.column_stack([np.ones(n), rng.normal(size=(n, 3))])
    y = np.maximum(X @ np.array([0.3, 1.0, -0.5, 0.25]) + 1.5 * rng.normal(size=n), 0.0)
    return X, y


def _gmm_stream(seed=0, n=200_000):
    rng = np.random.default_rng(seed)
    means = np.array([[0.0, 0.0], [4.0, 1.0], [1.0, 5.0]])
    covs = np.array([[[1.0, 0.3], [0.3, 0.8]], [[0.7, -0.2], [-0.2, 1.2]],
                     [[1.5, 0.5], [0.5, 1.0]]])
    z = rng.choice(3, size=n, p=[0.5, 0.3, 0.2])
    L = np.linalg.cholesky(covs)
    return means[z] + np.einsum("nab,nb->na", L[z], rng.normal(size=(n, 2)))


def _feed(est, *arrays, batch=BATCH):
    n = arrays[0].shape[0]
    for s in range(0, n, batch):
        est.partial_fit(*(a[s:s + batch] for a in arrays))
    return est


@pytest.fixture(scope="module")
def tobit_case():
    X, y = _tobit_stream()
    return X, y, emstats.Tobit(y, X, censor_left=0).fit()


@pytest.fixture(scope="module")
def gmm_case():
    X = _gmm_stream()
    return X, emstats.gmm(X, k=3, covariance="full").fit(n_init=1)


# -- reaching the batch MLE -------------------------------------------------------------

def test_online_tobit_reaches_batch_mle(tobit_case):
    X, y, res = tobit_case
    est = _feed(online_tobit(censor_left=0, alpha=0.6), X, y)
    assert est.n_seen == len(y) and est.n_batches == len(y) // BATCH
    assert list(est.params.index) == ["x0", "x1", "x2", "x3", "Log(scale)"]
    z = (est.params.to_numpy() - res.params.to_numpy()) / res.bse.to_numpy()
    # stated tolerance (docs/online.md): every coordinate within 1.5 batch-fit standard
    # errors of the batch MLE, root mean square below 0.75 SE
    assert np.max(np.abs(z)) < 1.5, z
    assert np.sqrt(np.mean(z**2)) < 0.75, z
    # the online estimate is close in likelihood as well: the gap is about z'z / 2
    m = emstats.Tobit(y, X, censor_left=0)
    gap = res.llf - m.loglike(est.params.to_numpy())
    assert 0 <= gap < 0.5 * 1.5**2 * len(z)


def test_online_gmm_reaches_batch_mle(gmm_case):
    X, res = gmm_case
    est = _feed(online_gmm(k=3, covariance="full", alpha=0.6, seed=0), X)
    assert list(est.params.index) == res.params.index.tolist()
    z = (est.params.to_numpy() - res.params.to_numpy()) / res.bse.to_numpy()
    assert np.max(np.abs(z)) < 1.5, z
    assert np.sqrt(np.mean(z**2)) < 0.75, z
    p = est.model_params
    assert isinstance(p, emstats.GMMParams)
    np.testing.assert_allclose(p.weights.sum(), 1.0)


def test_online_gmm_diagonal_reaches_batch_mle():
    X = _gmm_stream(seed=1)
    res = emstats.gmm(X, k=3, covariance="diag").fit(n_init=1)
    est = _feed(online_gmm(k=3, covariance="diag", seed=0), X)
    z = (est.params.to_numpy() - res.params.to_numpy()) / res.bse.to_numpy()
    assert np.max(np.abs(z)) < 1.5, z
    assert np.sqrt(np.mean(z**2)) < 0.75, z


def test_polyak_average_beats_last_iterate_on_average():
    """Averaging is what makes online EM efficient: over a few streams the averaged
    estimate is closer to the batch MLE than the last iterate."""
    d_avg, d_last = [], []
    for seed in range(3):
        X, y = _tobit_stream(seed, n=100_000)
        res = emstats.Tobit(y, X, censor_left=0).fit()
        est = _feed(online_tobit(censor_left=0), X, y, batch=2000)
        se = res.bse.to_numpy()
        d_avg.append(np.mean(((est.theta_average - res.params.to_numpy()) / se) ** 2))
        d_last.append(np.mean(((est.theta_last - res.params.to_numpy()) / se) ** 2))
    assert np.mean(d_avg) < np.mean(d_last)


# -- the recursion --------------------------------------------------------------------------

def test_step_sizes_and_running_average():
    X, y = _tobit_stream(n=30_000)
    est = _feed(online_tobit(censor_left=0, alpha=0.7, warmup=2), X, y)
    t = np.arange(1, 7)
    expected = np.where(t <= 2, 1.0 / t, t ** -0.7)
    np.testing.assert_allclose(est.trace["step"].to_numpy(), expected, rtol=1e-14)
    # with alpha = 1 the statistics are exact running averages: X'X/n does not depend on
    # the parameters, so it equals that of the whole stream
    est1 = _feed(online_tobit(censor_left=0, alpha=1.0), X, y)
    np.testing.assert_allclose(est1._stats[0], X.T @ X / len(y), rtol=1e-12)
    # the trace's log-likelihood per row is that of the batch at the previous parameters
    tr = est.trace
    assert tr["rows"].sum() == len(y) and np.all(tr["loglik_per_row"] < 0)


def test_unequal_batches_use_row_fractions():
    X, y = _tobit_stream(n=9000)
    est = online_tobit(censor_left=0, alpha=0.8)
    for a, b in [(0, 1000), (1000, 4000), (4000, 9000)]:
        est.partial_fit(X[a:b], y[a:b])
    np.testing.assert_allclose(est.trace["step"].to_numpy(),
                               [1.0, (3000 / 4000) ** 0.8, (5000 / 9000) ** 0.8])


def test_memory_does_not_grow_with_the_stream():
    """No array held by the estimator grows with the rows seen: the statistics and the
    parameters have fixed sizes; the trace and the averaging checkpoints are thinned."""
    def arrays(obj, seen=None):
        """Every numpy array reachable from the estimator's attributes."""
        seen = set() if seen is None else seen
        if id(obj) in seen:
            return []
        seen.add(id(obj))
        if isinstance(obj, np.ndarray):
            return [obj]
        if isinstance(obj, (list, tuple)):
            return [a for o in obj for a in arrays(o, seen)]
        if isinstance(obj, dict):
            return [a for o in obj.values() for a in arrays(o, seen)]
        if hasattr(obj, "__dict__") and type(obj).__module__.startswith("emstats"):
            return arrays(vars(obj), seen)
        return []

    def check(make, data, ns, batch, max_trace):
        found = []
        for n in ns:
            est = _feed(make(), *(a[:n] for a in data), batch=batch)
            assert est.n_seen == n
            assert len(est._trace.rows) < max_trace and len(est._checkpoints.rows) < max_trace
            found.append(arrays(est))
        # the largest array does not grow, nor does the number of arrays beyond the
        # bounded records (two per record row at most)
        sizes = [max(a.nbytes for a in arrs) for arrs in found]
        assert len(set(sizes)) == 1, sizes
        counts = [len(arrs) for arrs in found]
        assert max(counts) - min(counts) <= 2 * max_trace, counts
        return sizes[0]

    X, y = _tobit_stream(n=120_000)
    biggest = check(lambda: online_tobit(censor_left=0, max_trace=8), (X, y),
                    (20_000, 60_000, 120_000), 1000, 8)
    assert biggest <= 8 * 5 * 5 * 8        # X'WX / n and the like: O(p^2), not O(n)
    Xg = _gmm_stream(n=60_000)
    biggest = check(lambda: online_gmm(k=3, max_trace=8), (Xg,), (10_000, 30_000, 60_000),
                    1000, 8)
    # the mixture model keeps the first batch (1000 x 2, and its transpose)
    assert biggest <= 1000 * 2 * 8


def test_thinned_trace_keeps_the_whole_history():
    X, y = _tobit_stream(n=100_000)
    est = _feed(online_tobit(censor_left=0, max_trace=10), X, y, batch=1000)
    b = est.trace["batch"].to_numpy()
    assert b[0] == 1 and b[-1] > 60 and np.all(np.diff(b) == np.diff(b)[0])
    assert est.theta_trace.shape == (len(b), 5)


def test_dataframe_batches_name_the_parameters():
    X, y = _tobit_stream(n=10_000)
    df = pd.DataFrame(X, columns=["const", "a", "b", "c"])
    est = online_tobit(censor_left=0)
    est.partial_fit(df.iloc[:5000], y[:5000]).partial_fit(df.iloc[5000:], y[5000:])
    assert est.params.index.tolist() == ["const", "a", "b", "c", "Log(scale)"]
    with pytest.raises(DataError, match="columns"):
        est.partial_fit(df.rename(columns={"a": "z"}), y)


# -- bad input ------------------------------------------------------------------------------

@pytest.mark.parametrize("alpha", [0.5, 0.3, 1.01, 2.0])
def test_alpha_outside_range(alpha):
    with pytest.raises(ValueError, match=r"alpha must be in \(0.5, 1\]"):
        online_tobit(alpha=alpha)
    with pytest.raises(ValueError, match=r"alpha must be in \(0.5, 1\]"):
        online_gmm(k=2, alpha=alpha)


def test_bad_options():
    with pytest.raises(ValueError, match="burn_in"):
        online_tobit(burn_in=1.0)
    with pytest.raises(ValueError, match="warmup"):
        online_gmm(k=2, warmup=-1)


def test_mismatched_batches_raise():
    X, y = _tobit_stream(n=4000)
    est = online_tobit(censor_left=0).partial_fit(X[:2000], y[:2000])
    with pytest.raises(DataError, match="3 columns but the stream has 4"):
        est.partial_fit(X[2000:, :3], y[2000:])
    with pytest.raises(DataError, match="y has shape"):
        est.partial_fit(X[2000:], y[2000:3000])
    Xg = _gmm_stream(n=4000)
    g = online_gmm(k=3).partial_fit(Xg[:2000])
    with pytest.raises(DataError, match="3 columns but the stream has 2"):
        g.partial_fit(np.column_stack([Xg[2000:], Xg[2000:, 0]]))
    bad = Xg[2000:].copy()
    bad[5, 1] = np.nan
    with pytest.raises(DataError, match="row 5 of the batch"):
        g.partial_fit(bad)
    assert g.n_seen == 2000      # rejected batches leave the estimate unchanged


def test_no_data_yet():
    with pytest.raises(ValueError, match="partial_fit"):
        online_tobit().params  # noqa: B018


def test_docstring_examples():
    res = doctest.testmod(online_mod, optionflags=doctest.ELLIPSIS)
    assert res.failed == 0 and res.attempted > 0


# -- stochastic EM for Gaussian mixtures ------------------------------------------------------

@pytest.fixture(scope="module")
def faithful_model():
    f = emstats.datasets.load("faithful")
    return emstats.gmm("~ eruptions + waiting", data=f, k=2)


def test_stochastic_em_gmm_faithful(faithful_model):
    exact = faithful_model.fit()
    opts = {"burn_in": 200, "n_keep": 300}
    res = faithful_model.fit(method="stochastic", seed=3, maxiter=500, method_options=opts)
    chain = res.convergence.extra["chain"]
    assert chain.shape == (500, len(exact.params))
    np.testing.assert_allclose(res.params.to_numpy(), chain[200:].mean(axis=0), rtol=1e-12)
    z = (res.params - exact.params) / exact.bse
    assert np.max(np.abs(z)) < 0.1, z
    # the chain moves (it is not EM in disguise) and stays around the MLE
    assert np.all(chain[200:].std(axis=0) > 0)
    assert abs(res.llf - exact.llf) < 0.01
    # reproducible with the seed
    again = faithful_model.fit(method="stochastic", seed=3, maxiter=500, method_options=opts)
    np.testing.assert_array_equal(again.params.to_numpy(), res.params.to_numpy())
    assert np.all(np.isfinite(res.bse))


def test_mcem_gmm_faithful(faithful_model):
    exact = faithful_model.fit()
    res = faithful_model.fit(method="mcem", seed=0, maxiter=200)
    z = (res.params - exact.params) / exact.bse
    assert np.max(np.abs(z)) < 0.1, z


def test_sample_stats_average_to_the_e_step(faithful_model):
    m = faithful_model
    p = m.fit().raw_params
    exact, _ = m.e_step(p)
    rng = np.random.default_rng(0)
    sim = m.sample_stats(p, rng, 4000)
    np.testing.assert_allclose(sim["N"], exact["N"], rtol=2e-3)
    np.testing.assert_allclose(sim["S2"], exact["S2"], rtol=5e-3,
                               atol=1e-2 * np.abs(exact["S2"]).max())
    one = m.sample_stats(p, rng, 1)
    assert np.all(one["N"] == np.round(one["N"])) and one["N"].sum() == m.n


def test_simulated_methods_reject_partitions(faithful_model):
    with pytest.raises(ValueError, match="one start"):
        faithful_model.fit(method="stochastic", init=np.arange(272) % 2)
    with pytest.raises(ValueError, match="method_options"):
        faithful_model.fit(method="em", method_options={"burn_in": 1})


def test_tobit_stream_accepts_ordinary_batches():
    """A batch is validated for its columns and values only: every row censored, a
    constant dummy, or three rows are ordinary batches. Batches that do not yet identify
    the model wait, pooled, and then count as the first batch."""
    rng = np.random.default_rng(11)

    def batch(n, dummy=None):
        X = np.column_stack([np.ones(n), rng.normal(size=n),
                             (rng.random(n) < 0.5) * 1.0 if dummy is None else
                             np.full(n, dummy)])
        return X, np.maximum(X @ [0.3, 1.0, 0.5] + rng.normal(size=n), 0.0)

    X0, _ = batch(5)
    y0 = np.zeros(5)                                  # every row censored
    X1, y1 = batch(400)
    X2, y2 = batch(300, dummy=1.0)                    # a constant dummy
    X3, y3 = batch(3)                                 # three rows
    est = emstats.online_tobit(censor_left=0)
    est.partial_fit(X0, y0)
    with pytest.raises(ValueError, match="do not identify the model yet"):
        _ = est.params
    est.partial_fit(X1, y1)
    est.partial_fit(X2, y2)
    est.partial_fit(X3, y3)
    assert est.n_batches == 3 and est.n_seen == 708
    # the same as feeding the first two batches as one
    ref = emstats.online_tobit(censor_left=0)
    ref.partial_fit(np.vstack([X0, X1]), np.concatenate([y0, y1]))
    ref.partial_fit(X2, y2)
    ref.partial_fit(X3, y3)
    # (the same arithmetic in another order of pooling: equal to rounding)
    np.testing.assert_allclose(est.params.to_numpy(), ref.params.to_numpy(), rtol=1e-12,
                               atol=1e-12)
    # a batch with the wrong columns is still an error at once
    with pytest.raises(DataError, match="columns"):
        est.partial_fit(X3[:, :2], y3)
