"""The HMM emission kernels (one per family, shared log-density code of emmath.h)
against the emissions' numpy log-densities, and their scaled-density output."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose

from emstats._kernels import hmm_kernels as hk
from emstats.models.hmm import HiddenMarkovModel

T, K = 9000, 3   # more than two row chunks, and a ragged last block


def _models():
    rng = np.random.default_rng(7)
    z = rng.integers(0, K, T)
    yield HiddenMarkovModel(rng.poisson([0.5, 4.0, 30.0])[z].astype(float), K,
                            emission="poisson")
    for cov in ("diag", "full"):
        X = rng.normal(size=(T, 3)) @ np.array([[1.0, 0.4, 0.0], [0.0, 1.0, 0.3],
                                                  [0.0, 0.0, 0.7]]) + 2.0 * z[:, None]
        yield HiddenMarkovModel(X, K, covariance=cov)
    yield HiddenMarkovModel(np.array(list("abcde"))[(z + rng.integers(0, 2, T)) % 5], K,
                            emission="categorical")


@pytest.mark.parametrize("model", list(_models()), ids=["poisson", "diag", "full", "categorical"])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_emission_kernels_match_numpy(model, n_threads):
    p = model.start_params(np.random.default_rng(1))
    ref = model.emission.logdens(model.X, model.codes, p.emission)
    logd = np.empty((T, K))
    assert model._emission_kernel(p.emission, model.data, logd, np.empty(1), 1, n_threads) == 0
    assert_allclose(logd, ref, rtol=1e-12, atol=1e-10)
    b, m = np.empty((T, K)), np.empty(T)
    assert model._emission_kernel(p.emission, model.data, b, m, 0, n_threads) == 0
    assert_allclose(m, ref.max(axis=1), rtol=1e-12, atol=1e-10)
    assert_allclose(b, np.exp(ref - ref.max(axis=1, keepdims=True)), rtol=1e-12, atol=1e-14)


def test_rows_without_a_finite_density_are_counted_and_zeroed():
    with np.errstate(divide="ignore"):
        log_probs = np.log(np.array([[0.5, 0.5, 0.0], [0.2, 0.8, 0.0]]))
    codes = np.array([0, 2, 1, 2, 2], dtype=np.int64)
    b, m = np.full((5, 2), np.nan), np.full(5, np.nan)
    assert hk.emission_categorical(codes, log_probs, b, m, 0, 1) == 3
    assert np.all(b[[1, 3, 4]] == 0.0) and np.all(m[[1, 3, 4]] == 0.0)
    assert_allclose(b[0], [1.0, 0.4]) and np.isclose(m[0], np.log(0.5))


def test_shapes_are_checked():
    with pytest.raises(ValueError):
        hk.emission_poisson(np.zeros(4), np.zeros(4), np.zeros(2), np.zeros(3),
                            np.empty((4, 2)), np.empty(4), 0, 1)
