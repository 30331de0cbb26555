"""The k-means start kernels and the Gaussian mixture's Louis moment kernel: equal to plain
numpy written from their definitions, and bitwise identical for any number of threads."""

from __future__ import annotations

import numpy as np
import pytest

from emstats._kernels import gmm_louis, kmeans_kernels
from emstats.components import init
from emstats.models.gmm import _poly_basis


@pytest.fixture(scope="module")
def rows():
    rng = np.random.default_rng(3)
    # more rows than one chunk of either kernel, and a strided (column-sliced) view
    X = rng.normal(size=(20_000, 7))
    return X[:, 1:6]


def test_assign_matches_nearest_centre_and_group_sums(rows):
    X = rows
    C = X[:6] + 0.01
    lab = np.empty(X.shape[0], dtype=np.intp)
    counts, sums = init._assign(X, C, lab, 1)
    D = ((X[:, None, :] - C[None]) ** 2).sum(axis=2)
    np.testing.assert_array_equal(lab, np.argmin(D, axis=1))
    np.testing.assert_array_equal(counts, np.bincount(lab, minlength=6))
    ref = np.array([X[lab == k].sum(axis=0) for k in range(6)])
    np.testing.assert_allclose(sums, ref, rtol=1e-12, atol=1e-12)
    for t in (2, 3):
        lab_t = np.empty_like(lab)
        c_t, s_t = init._assign(X, C, lab_t, t)
        np.testing.assert_array_equal(lab_t, lab)
        np.testing.assert_array_equal(c_t, counts)
        np.testing.assert_array_equal(s_t, sums)


def test_sqdist_min_is_the_running_minimum(rows):
    X = rows
    scale = X.std(axis=0)
    d2 = np.empty(X.shape[0])
    kmeans_kernels.sqdist_min(X, X[5] / scale, scale, d2, 1, 2)
    np.testing.assert_allclose(d2, (((X - X[5]) / scale) ** 2).sum(axis=1), rtol=1e-13,
                               atol=1e-14)
    kmeans_kernels.sqdist_min(X, X[9] / scale, scale, d2, 0, 2)
    ref = np.minimum((((X - X[5]) / scale) ** 2).sum(axis=1),
                     (((X - X[9]) / scale) ** 2).sum(axis=1))
    np.testing.assert_allclose(d2, ref, rtol=1e-13, atol=1e-14)


def test_kmeans_plusplus_same_seeds_for_any_thread_count(rows):
    a = init.kmeans_plusplus(rows, 5, np.random.default_rng(1), n_threads=1)
    b = init.kmeans_plusplus(rows, 5, np.random.default_rng(1), n_threads=2)
    np.testing.assert_array_equal(a, b)
    assert len(set(a.tolist())) == 5


def _moments_reference(X, R, centre, diag, certain):
    I, J, _, qa, qb = _poly_basis(X.shape[1], diag)
    K = R.shape[1]
    Y = X - centre
    phi = np.column_stack([np.ones(len(Y)), Y, Y[:, qa] * Y[:, qb]])
    mono = phi[:, I] * phi[:, J]
    top = np.argmax(R, axis=1)
    rest = R.sum(axis=1) - R[np.arange(len(R)), top]
    keep = rest > certain
    W = [R[:, k] * (1 - R[:, k]) for k in range(K)]
    W += [R[:, k] * R[:, j] for k in range(K) for j in range(k + 1, K)]
    W = np.column_stack(W)[keep]
    return W.T @ mono[keep], int(keep.sum())


@pytest.mark.parametrize("diag", [False, True])
def test_louis_moments_match_their_definition(diag):
    rng = np.random.default_rng(5)
    n, d, K = 9_000, 4, 3
    X = rng.normal(size=(n, d))
    R = rng.dirichlet(np.full(K, 0.7), size=n)
    R[:2000] = np.eye(K)[rng.integers(0, K, 2000)]        # certain rows are skipped
    centre = X.mean(axis=0)
    I, J, _, qa, qb = _poly_basis(d, diag)
    ref, used_ref = _moments_reference(X, R, centre, diag, 1e-13)
    outs = []
    for t in (1, 2):
        part = np.zeros((gmm_louis.n_chunks(n), K * (K + 1) // 2, I.size))
        scratch = np.empty((t, gmm_louis.scratch_size(d, K, qa.size, I.size)))
        used = gmm_louis.louis_moments(X, R, centre, qa, qb, I, J, 1e-13, part, scratch, t)
        assert used == used_ref
        outs.append(part.sum(axis=0))
    np.testing.assert_allclose(outs[0], ref, rtol=1e-10, atol=1e-10 * np.abs(ref).max())
    np.testing.assert_array_equal(outs[0], outs[1])


def test_louis_moments_drop_only_pairs_within_the_stated_bound():
    """Rows with some responsibilities below ``certain``: the kernel drops those pairs, and
    differs from the moments of all the pairs by at most ``certain`` x |monomial| x (number
    of dropped pairs) summed over the rows, the bound its docstring states."""
    rng = np.random.default_rng(11)
    n, d, K, certain = 6_000, 3, 4, 1e-13
    X = rng.normal(size=(n, d))
    R = rng.dirichlet(np.full(K, 0.7), size=n)
    tiny = rng.random((n, K)) < 0.4
    R[tiny] = 10.0 ** rng.uniform(-30, -13.5, size=int(tiny.sum()))   # negligible components
    R /= R.sum(axis=1, keepdims=True)
    centre = X.mean(axis=0)
    I, J, _, qa, qb = _poly_basis(d, False)
    full, used_ref = _moments_reference(X, R, centre, False, certain)
    part = np.zeros((gmm_louis.n_chunks(n), K * (K + 1) // 2, I.size))
    scratch = np.empty((1, gmm_louis.scratch_size(d, K, qa.size, I.size)))
    used = gmm_louis.louis_moments(X, R, centre, qa, qb, I, J, certain, part, scratch, 1)
    assert used == used_ref
    got = part.sum(axis=0)
    # the pairs the kernel keeps, from the rule: (k, k) and (k, l) need r_k, r_l > certain
    Y = X - centre
    phi = np.column_stack([np.ones(n), Y, Y[:, qa] * Y[:, qb]])
    mono = phi[:, I] * phi[:, J]
    top = np.argmax(R, axis=1)
    keep_row = R.sum(axis=1) - R[np.arange(n), top] > certain
    on = R > certain
    kept = [on[:, k] for k in range(K)] + [on[:, k] & on[:, j] for k in range(K)
                                           for j in range(k + 1, K)]
    W = [R[:, k] * (1 - R[:, k]) for k in range(K)]
    W += [R[:, k] * R[:, j] for k in range(K) for j in range(k + 1, K)]
    W = np.column_stack(W) * np.column_stack(kept) * keep_row[:, None]
    ref = W.T @ mono
    np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-10 * np.abs(ref).max())
    dropped = (~np.column_stack(kept)) & keep_row[:, None]
    assert dropped.sum() > 1000                       # the rule is exercised
    bound = certain * (dropped.sum(axis=1) @ np.abs(mono))
    assert np.all(np.abs(got - full).max(axis=0) <= bound + 1e-10 * np.abs(ref).max())
