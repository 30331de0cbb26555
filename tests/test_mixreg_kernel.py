"""The compiled mixture-of-regressions kernel against a direct numpy computation.

The witness is written from the mathematics with the numpy families of
``emstats.components.glm`` (log-densities and derivatives, scipy's special
functions): the unit responsibilities and log-likelihoods, the per-component weighted
sums, the multinomial-logit pieces and Louis' missing information
sum_u w_u (sum_k r_uk a_uk a_uk' - m_u m_u') built from explicit n x K x P score arrays.
Also: the results do not depend on the number of threads (bitwise).
"""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose

from emstats.models.mixreg import MixtureRegression


def _data(family, n, grouped, rng, k=3):
    x = rng.uniform(-1, 1, n)
    X = np.column_stack([np.ones(n), x])
    X2 = rng.normal(size=(n, 1))
    if grouped:
        sizes = rng.integers(1, 5, n)
        ub = np.concatenate([[0], np.cumsum(sizes)])
        ub = ub[ub < n]
        ub = np.append(ub, n)
    else:
        ub = None
    z = rng.normal(size=n)
    if grouped:                       # concomitant and weights constant within a group
        g = np.repeat(np.arange(len(ub) - 1), np.diff(ub))
        z = rng.normal(size=len(ub) - 1)[g]
        w = rng.uniform(0.5, 2, len(ub) - 1)[g]
    else:
        w = rng.uniform(0.5, 2, n)
    Z = np.column_stack([np.ones(n), z])
    trials = None
    if family == "gaussian":
        y = 1 + 2 * x + rng.normal(0, 1, n)
    elif family == "binomial":
        trials = rng.integers(1, 6, n).astype(float)
        y = rng.binomial(trials.astype(int), 0.4).astype(float)
    else:
        y = rng.poisson(np.exp(0.5 + x)).astype(float)
    return MixtureRegression(y, X, k, family=family, Z=Z, X2=X2, trials=trials, weights=w,
                             unit_bounds=ub)


def _params(model, rng):
    K, p, d, q = model.k, model.p, model.d, model.q
    comp = rng.normal(0, 0.5, (K, p + d))
    if d:
        comp[:, p] = rng.uniform(-0.5, 0.5, K)
    prior = rng.normal(0, 0.5, (K, q))
    prior[0] = 0
    return {"comp": comp, "fixed": rng.normal(0, 0.3, model.f), "prior": prior}


def _reference(model, P):
    """Everything the kernel computes, in numpy, from the family's numpy functions."""
    dat = model.data
    K, p, d, f, q = model.k, model.p, model.d, model.f, model.q
    y, X, X2, Z, off, m, w = (dat[a] for a in ("y", "X", "X2", "Z", "off", "m", "w"))
    fam = model.family
    eta = X @ P["comp"][:, :p].T + (X2 @ P["fixed"] + off)[:, None]
    phi = P["comp"][:, p] if d else np.zeros(K)
    ld = fam.logpdf(y, eta, phi, m, dat["c"])
    der = fam.derivs(y, eta, phi, m)
    ub = dat._bounds()
    first = ub[:-1]
    ldu = np.add.reduceat(ld, first, axis=0)
    a = Z[first] @ P["prior"].T
    logpi = a - np.log(np.exp(a).sum(axis=1, keepdims=True))
    joint = ldu + logpi
    ll = np.log(np.exp(joint).sum(axis=1))
    r = np.exp(joint - ll[:, None])
    wu = w[first]
    cr = np.repeat(wu[:, None] * r, np.diff(ub), axis=0)
    D = np.hstack([X, X2])
    # complete-data scores of each unit under each component, n_units x K x P
    nc = K * (p + d) + f
    npar = nc + (K - 1) * q
    A = np.zeros((len(y), K, npar))
    for j in range(K):
        A[:, j, j * (p + d): j * (p + d) + p] = der["d1"][:, j, None] * X
        if d:
            A[:, j, j * (p + d) + p] = der["dp"][:, j]
        A[:, j, K * (p + d):nc] = der["d1"][:, j, None] * X2
    A = np.add.reduceat(A, first, axis=0)
    pi = np.exp(logpi)
    for j in range(K):
        for b in range(1, K):
            A[:, j, nc + (b - 1) * q: nc + b * q] = ((j == b) - pi[:, b])[:, None] * Z[first]
    mvec = np.einsum("uk,ukp->up", r, A)
    miss = (np.einsum("u,uk,ukp,ukq->pq", wu, r, A, A)
            - np.einsum("u,up,uq->pq", wu, mvec, mvec))
    return dict(r=r, ll=ll, loglik=wu @ ll, cr=cr, D=D, der=der, miss=miss, pi=pi, wu=wu,
                Zu=Z[first])


@pytest.mark.parametrize("family", ["gaussian", "poisson", "binomial", "negbin"])
@pytest.mark.parametrize("grouped", [False, True])
@pytest.mark.parametrize("k", [2, 3])            # K = 2 has its own missing-information update
def test_kernel_equals_numpy(family, grouped, k):
    rng = np.random.default_rng(3)
    model = _data(family, 700, grouped, rng, k)
    P = model._full(_params(model, rng))
    ref = _reference(model, P)
    ch = model.data.chunks(1, 1)[0]
    post = model._pass(P, ch, 0, posteriors=True)
    assert_allclose(post["r"], ref["r"], rtol=1e-12, atol=1e-14)
    assert_allclose(post["ll"], ref["ll"], rtol=1e-12)
    assert post["loglik"] == pytest.approx(ref["loglik"], rel=1e-12)
    # per-component sums of the derivative pieces
    res = model._pass(P, ch, 3)
    cr, D, der = ref["cr"], ref["D"], ref["der"]
    for j in range(model.k):
        N, G1, G2, Gep, Gp, Gpp = model._comp_blocks(res["comp"][j])
        c = cr[:, j]
        assert N == pytest.approx(c.sum(), rel=1e-12)
        assert_allclose(G1, D.T @ (c * der["d1"][:, j]), rtol=1e-10, atol=1e-10)
        assert_allclose(G2, (D * (-c * der["d2"][:, j])[:, None]).T @ D, rtol=1e-10)
        if model.d:
            assert_allclose(Gep, D.T @ (-c * der["dep"][:, j]), rtol=1e-10, atol=1e-10)
            assert Gp == pytest.approx(c @ der["dp"][:, j], rel=1e-10, abs=1e-10)
            assert Gpp == pytest.approx(-c @ der["dpp"][:, j], rel=1e-10)
    # the weights' multinomial logit
    K, q = model.k, model.q
    pi, wu, Zu, r = ref["pi"], ref["wu"], ref["Zu"], ref["r"]
    assert_allclose(res["pg"], ((wu[:, None] * (r - pi))[:, 1:].T @ Zu).ravel(),
                    rtol=1e-10, atol=1e-10)
    for a in range(1, K):
        for b in range(1, K):
            v = wu * pi[:, a] * ((a == b) - pi[:, b])
            blk = res["pH"][(a - 1) * q:a * q, (b - 1) * q:b * q]
            assert_allclose(blk, (Zu * v[:, None]).T @ Zu, rtol=1e-10, atol=1e-12)
    # Louis' missing information
    assert_allclose(res["missing"], ref["miss"], rtol=1e-9, atol=1e-9 * np.abs(ref["miss"]).max())
    if family == "gaussian":
        nat = model._pass(P, ch, 1)
        yo = model.data["y"] - model.data["off"]
        for j in range(model.k):
            N, Dy, DD, _, yy, _ = model._comp_blocks(nat["comp"][j])
            c = cr[:, j]
            assert_allclose(DD, (D * c[:, None]).T @ D, rtol=1e-12)
            assert_allclose(Dy, D.T @ (c * yo), rtol=1e-11, atol=1e-11)
            assert yy == pytest.approx(c @ yo**2, rel=1e-12)


def test_hard_and_random_assignments():
    rng = np.random.default_rng(5)
    model = _data("poisson", 500, False, rng)
    P = model._full(_params(model, rng))
    ref = _reference(model, P)
    ch = model.data.chunks(1, 1)[0]
    lab = ref["r"].argmax(axis=1)
    hard = model._pass(P, ch, 2, assign=1)
    joint = np.log(ref["r"]) + ref["ll"][:, None]
    assert hard["loglik"] == pytest.approx(ref["wu"] @ joint[np.arange(500), lab], rel=1e-12)
    assert_allclose(hard["comp"][:, 0], np.bincount(lab, ref["wu"], minlength=3), rtol=1e-12)
    u = rng.random(500)
    drawn = np.minimum((np.cumsum(ref["r"], axis=1) < u[:, None]).sum(axis=1), 2)
    rnd = model._pass(P, ch, 2, assign=2, draws=u)
    assert_allclose(rnd["comp"][:, 0], np.bincount(drawn, ref["wu"], minlength=3), rtol=1e-12)


@pytest.mark.parametrize("family", ["gaussian", "negbin"])
def test_bitwise_identical_across_threads(family):
    rng = np.random.default_rng(11)
    model = _data(family, 5000, family == "negbin", rng, 2 if family == "gaussian" else 3)
    P = model._full(_params(model, rng))
    outs = []
    for nt in (1, 2, 3):
        ch = model.data.chunks(1, nt)[0]
        outs.append(model._pass(P, ch, 3))
    for o in outs[1:]:
        assert o["loglik"] == outs[0]["loglik"]
        assert np.array_equal(o["comp"], outs[0]["comp"])
        assert np.array_equal(o["missing"], outs[0]["missing"])
        assert np.array_equal(o["pg"], outs[0]["pg"])


def test_undefined_likelihood_is_reported():
    rng = np.random.default_rng(2)
    model = _data("poisson", 300, False, rng)
    p = _params(model, rng)
    p["comp"][:, 0] = 800.0                     # exp(eta) overflows
    st, ll = model.chunk_stats(p, model.data.chunks(1, 1)[0])
    assert st is None and ll == -np.inf
