"""Parameter specifications (emstats.em.params): round trips, Jacobians, structural zeros,
names, and unconstrained packed coordinates."""

import numpy as np
import pytest

from emstats.em.params import Cholesky, Free, ParamSpec, Positive, Simplex


def _spd(rng, d, lead=()):
    A = rng.standard_normal(lead + (d, d))
    return A @ np.swapaxes(A, -1, -2) + d * np.eye(d)


def _spec():
    K, d = 3, 2
    allowed = np.array([[1, 1, 0], [0, 1, 1], [1, 1, 1]], dtype=bool)
    return ParamSpec([
        Simplex("startprob", (K,)),
        Simplex("transmat", (K, K), allowed=allowed),
        Simplex("weights", (K,), reference="first"),
        Free("mean", (K, d), axes=(None, ["x", "y"])),
        Free("beta", (4,), fixed=[False, True, False, False], value=[0.0, 2.5, 0.0, 0.0]),
        Positive("rate", (K,)),
        Positive("scale", (2,), inference="log"),
        Cholesky("cov", d, (K,), axes=(None, ["x", "y"])),
        Cholesky("S", 3, inference="log-cholesky"),
    ])


def _params(rng):
    K = 3
    A = rng.dirichlet(np.ones(K), size=K)
    A[0, 2] = A[1, 0] = 0.0
    A /= A.sum(axis=1, keepdims=True)
    return {"startprob": rng.dirichlet(np.ones(K)), "transmat": A,
            "weights": rng.dirichlet(np.ones(K)), "mean": rng.standard_normal((K, 2)),
            "beta": np.array([0.3, 2.5, -1.0, 4.0]), "rate": rng.gamma(2.0, size=K),
            "scale": rng.gamma(2.0, size=2), "cov": _spd(rng, 2, (K,)), "S": _spd(rng, 3)}


def _close(p, q, **kw):
    assert set(p) == set(q)
    for k in p:
        np.testing.assert_allclose(p[k], q[k], err_msg=k, **kw)


def test_sizes_and_slices():
    spec = _spec()
    # simplex: 2 + (1 + 1 + 2) + 2; free 6 + 3; positive 3 + 2; cholesky 3 * 3 + 6
    assert spec.size == 2 + 4 + 2 + 6 + 3 + 3 + 2 + 9 + 6
    assert spec.natural_size == 3 + 9 + 3 + 6 + 4 + 3 + 2 + 12 + 9
    assert spec.slices["transmat"] == slice(2, 6)
    assert len(spec.names()) == spec.size
    assert spec["cov"].kind == "cholesky"


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_round_trips(seed):
    spec = _spec()
    p = _params(np.random.default_rng(seed))
    _close(spec.unpack(spec.pack(p)), p, rtol=1e-12, atol=1e-14)
    _close(spec.from_inference(spec.to_inference(p)), p, rtol=1e-12, atol=1e-14)
    u = np.random.default_rng(seed + 10).standard_normal(spec.size)
    np.testing.assert_allclose(spec.pack(spec.unpack(u)), u, rtol=1e-10, atol=1e-10)
    th = spec.to_inference(p)
    np.testing.assert_allclose(spec.to_inference(spec.from_inference(th)), th, rtol=1e-13)


@pytest.mark.parametrize("seed", [0, 1])
def test_packed_coordinates_are_unconstrained(seed):
    """Any real vector unpacks to valid parameters (SQUAREM extrapolates freely)."""
    spec = _spec()
    rng = np.random.default_rng(seed)
    for scale in (0.1, 3.0, 20.0):
        p = spec.unpack(scale * rng.standard_normal(spec.size))
        for name in ("startprob", "transmat", "weights"):
            P = p[name]
            assert np.all(P >= 0) and np.allclose(P.sum(axis=-1), 1.0)
        assert p["transmat"][0, 2] == 0.0 and p["transmat"][1, 0] == 0.0
        assert np.all(p["rate"] > 0) and np.all(p["scale"] > 0)
        assert p["beta"][1] == 2.5
        for S in list(p["cov"]) + [p["S"]]:
            np.testing.assert_allclose(S, S.T)
            if scale <= 3.0:               # (larger: PD, but not numerically so in floats)
                np.linalg.cholesky(S)


def _numeric_jacobian(spec, th, h=1e-6):
    def nat(t):
        return spec.natural(spec.from_inference(t))
    J = np.zeros((spec.natural_size, th.size))
    for j in range(th.size):
        e = np.zeros(th.size)
        e[j] = h
        J[:, j] = (nat(th + e) - nat(th - e)) / (2 * h)
    return J


@pytest.mark.parametrize("seed", [0, 3])
def test_jacobian_against_finite_differences(seed):
    spec = _spec()
    th = spec.to_inference(_params(np.random.default_rng(seed)))
    J = spec.jacobian(th)
    assert J.shape == (spec.natural_size, spec.size)
    np.testing.assert_allclose(J, _numeric_jacobian(spec, th), rtol=1e-6, atol=1e-7)


def test_structural_zeros_and_reference():
    A = np.array([[0.9, 0.1, 0.0], [0.0, 0.7, 0.3], [0.0, 0.0, 1.0]])
    allowed = A > 0
    b = Simplex("transmat", (3, 3), allowed=allowed,
                label=lambda ix: f"p[{ix[0] + 1}->{ix[1] + 1}]")
    # the last free entry of each row is the reference; a one-entry row has no coordinate
    assert b.size == 2
    assert b.index == [(0, 0, 1), (1, 1, 2)]
    assert b.names() == ["p[1->1]", "p[2->2]"]
    np.testing.assert_array_equal(b.to_inference(A), [0.9, 0.7])
    np.testing.assert_allclose(b.pack(A), [np.log(9.0), np.log(7.0 / 3.0)])
    np.testing.assert_allclose(b.unpack(b.pack(A)), A, atol=1e-15)
    assert np.all(b.unpack(np.array([5.0, -5.0]))[~allowed] == 0.0)
    J = b.jacobian().reshape(3, 3, 2)
    assert J[0, 0, 0] == 1 and J[0, 1, 0] == -1 and J[1, 1, 1] == 1 and J[1, 2, 1] == -1
    assert np.count_nonzero(J) == 4
    first = Simplex("w", (3,), reference="first")
    w = np.array([0.2, 0.3, 0.5])
    np.testing.assert_allclose(first.pack(w), np.log([1.5, 2.5]))
    np.testing.assert_allclose(first.from_inference([0.3, 0.5]), w)
    with pytest.raises(ValueError, match="no free entry"):
        Simplex("bad", (2, 2), allowed=[[True, False], [False, False]])


def test_fixed_entries_are_not_coordinates():
    b = Positive("v", (2, 2), fixed=np.eye(2, dtype=bool), value=7.0)
    assert b.size == 2
    x = np.array([[7.0, 2.0], [3.0, 7.0]])
    np.testing.assert_allclose(b.pack(x), np.log([2.0, 3.0]))
    np.testing.assert_array_equal(b.unpack(np.zeros(2)), [[7.0, 1.0], [1.0, 7.0]])
    assert b.names() == ["v[1,2]", "v[2,1]"]


def test_names():
    spec = _spec()
    names = spec.names()
    assert names[:2] == ["startprob[1]", "startprob[2]"]
    assert names[2:6] == ["transmat[1,1]", "transmat[2,2]", "transmat[3,1]", "transmat[3,2]"]
    assert names[6:8] == ["weights[2]", "weights[3]"]
    assert names[8:10] == ["mean[1](x)", "mean[1](y)"]
    assert names[14:17] == ["beta[1]", "beta[3]", "beta[4]"]
    assert names[22:25] == ["var[1](x)", "cov[1](x,y)", "var[1](y)"]
    assert names[-6:-3] == ["var(1)", "cov(1,2)", "var(2)"]


def test_log_cholesky_matches_factor():
    rng = np.random.default_rng(5)
    S = _spd(rng, 3, (2,))
    b = Cholesky("S", 3, (2,))
    L = np.linalg.cholesky(S)
    v = b.pack(S).reshape(2, -1)
    a, c = np.tril_indices(3)
    np.testing.assert_allclose(v[:, a == c], np.log(L[:, a, a][:, a == c]))
    np.testing.assert_allclose(v[:, a != c], L[:, a, c][:, a != c])
    np.testing.assert_array_equal(b.to_inference(S).reshape(2, -1), S[:, a, c])


def test_errors():
    spec = _spec()
    with pytest.raises(ValueError, match="coordinates"):
        spec.unpack(np.zeros(spec.size + 1))
    with pytest.raises(KeyError, match="lack"):
        spec.pack({"startprob": np.ones(3) / 3})
    with pytest.raises(ValueError, match="shape"):
        Free("m", (2, 2)).pack(np.zeros(3))
    with pytest.raises(ValueError, match="distinct"):
        ParamSpec([Free("a", 1), Free("a", 2)])


def test_engine_layer_imports_nothing_above_it():
    import ast
    import pathlib

    import emstats.em.params as mod

    tree = ast.parse(pathlib.Path(mod.__file__).read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            assert not (node.module or "").startswith(("emstats", "components", "models"))
            assert node.level == 0
