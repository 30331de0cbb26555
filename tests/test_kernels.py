"""Censored-normal kernels against high-precision references (mpmath)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose

import emstats
from emstats._kernels import censnorm

mp = pytest.importorskip("mpmath")
mp.mp.dps = 60
INF = np.inf


def reference(a: float, b: float) -> np.ndarray:
    """log P, mean and central moments 2-4 of N(0,1) on (a, b), from the closed-form
    raw moments evaluated with 100 significant digits (ample for the cancellations)."""
    with mp.workdps(100):
        A = mp.mpf(a) if np.isfinite(a) else None
        B = mp.mpf(b) if np.isfinite(b) else None
        # P(a < Z < b) without cancellation: use the tail on the side away from zero
        if a > 0:
            P = mp.ncdf(-A) - (mp.ncdf(-B) if B is not None else 0)
        else:
            P = (mp.ncdf(B) if B is not None else 1) - (mp.ncdf(A) if A is not None else 0)

        def edge(x, k):  # x^k phi(x), zero at an infinite limit
            return x**k * mp.npdf(x) if x is not None else mp.mpf(0)

        E = [mp.mpf(1), (edge(A, 0) - edge(B, 0)) / P]
        for k in (2, 3, 4):
            E.append((k - 1) * E[k - 2] + (edge(A, k - 1) - edge(B, k - 1)) / P)
        m = E[1]
        c2 = E[2] - m**2
        c3 = E[3] - 3 * m * E[2] + 2 * m**3
        c4 = E[4] - 4 * m * E[3] + 6 * m**2 * E[2] - 3 * m**4
        return np.array([float(mp.log(P)), float(m), float(c2), float(c3), float(c4)])


CASES = [
    (-INF, 0.0), (0.0, INF), (-1.0, 2.0), (0.5, 1.7), (-3.0, INF), (3.0, INF),
    (7.9, INF), (8.0, INF), (12.0, INF), (40.0, INF), (-INF, -40.0), (-INF, -8.5),
    (1.0, 1.5), (-0.3, 0.2), (5.0, 5.000001), (-1e-7, 1e-7), (39.0, 39.02), (-2.0, -1.0),
    (-INF, INF), (-40.0, INF), (2.0, 6.0), (10.0, 11.0),
]


@pytest.mark.parametrize("a,b", CASES)
def test_truncated_moments(a, b):
    out = np.empty((1, 5))
    censnorm.truncnorm_moments(np.array([a]), np.array([b]), out)
    ref = reference(a, b)
    assert np.all(np.isfinite(out))
    # absolute tolerance relative to the size of the moments of the interval
    edge = abs(a) if np.isfinite(a) else (abs(b) if np.isfinite(b) else 0.0)
    width = min(b - a, 1.0 / max(1.0, edge))
    scale = np.array([abs(ref[0]) + 1e-300, max(abs(ref[1]), 1.0), width**2, width**3,
                      width**4])
    err = np.abs(out[0] - ref) / np.maximum(np.abs(ref), 1e-9 * scale)
    assert np.all(err < 1e-8), (out[0], ref, err)


def test_deep_tails_are_finite_and_correct():
    """Standardised limits of +-40: finite values equal to the asymptotic expansions."""
    out = np.empty((2, 5))
    censnorm.truncnorm_moments(np.array([40.0, -INF]), np.array([INF, -40.0]), out)
    a = 40.0
    # Mills ratio expansion: E[Z | Z > a] = a + 1/a - 2/a^3 + 10/a^5 - 74/a^7 + 706/a^9 ...
    mills = a + 1 / a - 2 / a**3 + 10 / a**5 - 74 / a**7 + 706 / a**9 - 8162 / a**11
    assert_allclose(out[0, 1], mills, rtol=1e-15)
    assert_allclose(out[1, 1], -out[0, 1], rtol=0)
    # Var[Z | Z > a] = 1/a^2 - 6/a^4 + 50/a^6 - 518/a^8 + ...
    assert_allclose(out[0, 2], 1 / a**2 - 6 / a**4 + 50 / a**6 - 518 / a**8, rtol=1e-9)
    from scipy.special import log_ndtr

    assert_allclose(out[0, 0], log_ndtr(-40.0), rtol=1e-14)


def test_estep_kernel_matches_numpy_oracle(rng):
    """The fused E-step equals a slow NumPy/SciPy version of the same sums."""
    from scipy import stats

    n, p = 5000, 4
    X = np.ascontiguousarray(np.column_stack([np.ones(n), rng.normal(size=(n, p - 1))]))
    beta = np.array([0.3, 1.0, -0.5, 0.2])
    sigma = 1.3
    mu = X @ beta
    lo = np.where(rng.random(n) < 0.3, -INF, rng.normal(size=n) + mu)
    hi = np.where(rng.random(n) < 0.5, lo, lo + rng.exponential(size=n))
    hi = np.where(np.isinf(lo) & (hi == lo), mu + rng.normal(size=n), hi)
    hi[::11] = INF
    lo[::11] = mu[::11]
    w = rng.integers(1, 4, size=n).astype(float)
    off = np.zeros(n)
    nch = censnorm.n_chunks(n)
    pxe, ps = np.zeros((nch, p)), np.zeros((nch, 3))
    # statistics about the current linear predictor (ref = mu): residuals e = E[y*] - mu
    censnorm.censreg_estep(X, lo, hi, off, off + X @ beta, w, beta, sigma, pxe, ps, 2)
    exact = lo == hi
    a, b = (lo - mu) / sigma, (hi - mu) / sigma
    P = stats.norm.cdf(b) - stats.norm.cdf(a)
    with np.errstate(invalid="ignore", divide="ignore"):
        ll = np.where(exact, stats.norm.logpdf((lo - mu) / sigma) - np.log(sigma), np.log(P))
        pa = np.where(np.isfinite(a), stats.norm.pdf(a), 0.0)
        pb = np.where(np.isfinite(b), stats.norm.pdf(b), 0.0)
        ta = np.where(np.isfinite(a), a * pa, 0.0)
        tb = np.where(np.isfinite(b), b * pb, 0.0)
        m = (pa - pb) / P
        v = 1 + (ta - tb) / P - m**2
    e = np.where(exact, lo - mu, sigma * m)
    var = np.where(exact, 0.0, sigma**2 * v)
    assert_allclose(ps[:, 0].sum(), w @ ll, rtol=1e-12)
    assert_allclose(ps[:, 1].sum(), w @ (e**2 + var), rtol=1e-10)
    assert_allclose(pxe.sum(axis=0), X.T @ (w * e), rtol=1e-10, atol=1e-9)
    assert ps[:, 2].sum() == 0


def test_estep_flags_non_finite_rows():
    X = np.ones((3, 1))
    lo = np.array([0.0, -INF, 1.0])
    hi = np.array([0.0, 0.0, 2.0])
    pxe, ps = np.zeros((1, 1)), np.zeros((1, 3))
    censnorm.censreg_estep(X, lo, hi, np.array([0.0, np.nan, 0.0]), np.zeros(3), np.ones(3),
                           np.array([0.0]), 1.0, pxe, ps, 1)
    assert ps[0, 2] == 1


def test_compiled_modules_are_up_to_date():
    """An editable install does not rebuild on import: a .pyx newer than its .so is stale."""
    kdir = Path(censnorm.__file__).parent
    if not (kdir.parents[1] / "setup.py").exists():
        pytest.skip("installed from a wheel: the .pyx files are copies, nothing to rebuild")
    for pyx in kdir.glob("*.pyx"):
        built = list(kdir.glob(pyx.stem + ".*.so")) + list(kdir.glob(pyx.stem + ".*.pyd"))
        if not built:
            continue  # a wheel install ships no .pyx next to the .so
        assert max(p.stat().st_mtime for p in built) >= pyx.stat().st_mtime, (
            f"{pyx.name} changed after it was compiled: re-run the install command"
        )


def test_show_config(capsys):
    info = emstats.show_config()
    out = capsys.readouterr().out
    assert "kernels:" in out and info["version"] == emstats.__version__
    assert info["default_threads"] >= 1


def test_idle_openmp_threads_sleep_unless_the_user_says_otherwise():
    import subprocess
    import sys

    code = "import os, emstats; print(os.environ['OMP_WAIT_POLICY'])"
    env = {k: v for k, v in __import__("os").environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, check=True)
    assert out.stdout.strip() == "PASSIVE"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**env, "OMP_WAIT_POLICY": "ACTIVE"}, check=True)
    assert out.stdout.strip() == "ACTIVE"
