"""Tobit time to the MLE: emstats (EM, SQUAREM, Louis-Newton; 1 and 2 threads) against a
scipy direct-MLE Tobit with an analytic gradient and R's survreg (when Rscript is on PATH).

    python benchmarks/bench_tobit.py            # n = 1e5 and 1e6, p = 10, ~40% censored
    python benchmarks/bench_tobit.py --n 20000  # quick run

Every fitter starts from the same OLS start values and must reach the same
log-likelihood (to 1e-8 relative of the best one found); the table prints
iterations, seconds and the ratio to the fastest peer.  A second table compares
one E-step + M-step with one pass over the data (X.T @ y) and one E-step alone.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time

import numpy as np
from scipy import optimize, special

import emstats


def make_data(n: int, p: int, seed: int = 1):
    rng = np.random.default_rng(seed)
    X = np.column_stack([np.ones(n), rng.normal(size=(n, p - 1))])
    beta = np.concatenate([[0.3], rng.normal(scale=0.5, size=p - 1)])
    ystar = X @ beta + 1.0 * rng.normal(size=n)
    c = 0.0  # left-censoring at 0: about 40% censored for this design
    return np.maximum(ystar, c), X, c


def scipy_tobit(y, X, c, start):
    """Direct MLE: BFGS on the Tobit log-likelihood with its analytic gradient."""
    cens = y <= c
    Xc, Xu, yu = X[cens], X[~cens], y[~cens]

    def f(t):
        b, ls = t[:-1], t[-1]
        s = np.exp(ls)
        zc = (c - Xc @ b) / s
        ru = (yu - Xu @ b) / s
        ll = special.log_ndtr(zc).sum() - 0.5 * (ru @ ru) - len(yu) * (ls + 0.5 * np.log(2 * np.pi))
        lam = np.exp(-0.5 * zc**2 - 0.5 * np.log(2 * np.pi) - special.log_ndtr(zc))  # phi/Phi
        gb = -(Xc.T @ lam) / s + (Xu.T @ ru) / s
        gs = -(lam @ zc) + (ru @ ru) - len(yu)
        return -ll, -np.concatenate([gb, [gs]])

    r = optimize.minimize(f, start, jac=True, method="BFGS", options={"gtol": 1e-6 * len(y)**0.5,
                                                                      "maxiter": 10000})
    return r.x, -r.fun, r.nit


def r_survreg(y, X, c, tmp):
    """R's survreg, timed inside R (reading the data is not counted)."""
    if shutil.which("Rscript") is None:
        return None
    n, p = X.shape
    np.concatenate([y, X[:, 1:].ravel(order="F")]).astype("<f8").tofile(f"{tmp}/d.bin")
    script = f"""
    suppressPackageStartupMessages(library(survival))
    v <- readBin("{tmp}/d.bin", "double", n = {n * p}, size = 8, endian = "little")
    y <- v[1:{n}]; X <- matrix(v[-(1:{n})], nrow = {n})
    t <- system.time(fit <- survreg(Surv(y, y > {c}, type = "left") ~ X, dist = "gaussian",
                     control = survreg.control(rel.tolerance = 1e-9, maxiter = 100)))[["elapsed"]]
    cat(sprintf("%.17g %d %.17g\\n", t, as.integer(fit$iter), fit$loglik[2]))
    """
    out = subprocess.run(["Rscript", "-e", script], capture_output=True, text=True)
    if out.returncode != 0:
        return None
    sec, it, ll = out.stdout.split()
    return float(sec), int(float(it)), float(ll)


def timed(fn, repeat=3):
    best = np.inf
    out = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def run(n: int, p: int, repeat: int):
    y, X, c = make_data(n, p)
    model = emstats.Tobit(y, X, censor_left=c)
    start = model.start_params()
    rows = []
    for threads in (1, 2):
        for method in ("em", "squarem", "newton"):
            sec, res = timed(lambda m=method, t=threads: model.fit(
                method=m, n_threads=t, tol=1e-8, maxiter=20000), repeat)
            conv = res.convergence
            rows.append((f"emstats {method} ({threads} thr)", conv.n_iter, sec, res.llf))
    sec, (x, ll, nit) = timed(lambda: scipy_tobit(y, X, c, start), repeat)
    rows.append(("scipy BFGS, analytic grad", nit, sec, ll))
    with tempfile.TemporaryDirectory() as tmp:
        r = r_survreg(y, X, c, tmp)
    if r is not None:
        rows.append(("R survreg", r[1], r[0], r[2]))
    best_ll = max(r[3] for r in rows)
    peers = [r for r in rows if not r[0].startswith("emstats")]
    best_peer = min(r[2] for r in peers)
    print(f"\nTobit, n = {n:,}, p = {p}, {np.mean(y <= c):.0%} censored, tol 1e-8 "
          f"(best log-likelihood {best_ll:.10f})")
    print(f"{'fitter':34s} {'iter':>6s} {'seconds':>9s} {'vs best peer':>13s} {'llf gap':>10s}")
    for name, it, sec, ll in rows:
        print(f"{name:34s} {it:6d} {sec:9.4f} {best_peer / sec:12.2f}x "
              f"{(best_ll - ll) / abs(best_ll):10.1e}")

    # one iteration against one pass over the data
    from emstats._kernels import censnorm  # noqa: F401

    theta = model.fit(method="newton").params.to_numpy()
    print(f"\nOne EM iteration against one pass over the data (n = {n:,}, p = {p}):")
    pass_sec, _ = timed(lambda: X.T @ y, 7)
    for threads in (1, 2):
        model._n_threads = threads
        e_sec, st = timed(lambda: model.e_step(theta), 7)
        em_sec, _ = timed(lambda: model.m_step(*model.e_step(theta)[:1], theta), 7)
        l_sec, _ = timed(lambda: model.score_and_louis(theta), 5)
        print(f"  {threads} thread(s): E-step {e_sec * 1e3:7.2f} ms, E+M step "
              f"{em_sec * 1e3:7.2f} ms, Louis information {l_sec * 1e3:7.2f} ms; "
              f"X.T @ y {pass_sec * 1e3:6.2f} ms; E+M / pass = {em_sec / pass_sec:5.2f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, nargs="*", default=[100_000, 1_000_000])
    ap.add_argument("--p", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    print(f"emstats {emstats.__version__}; OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")
    emstats.show_config()
    for n in a.n:
        run(n, a.p, a.repeat)


if __name__ == "__main__":
    main()
