"""Where default fits stop, and which scheme gets to the maximum first (issue 17, item 3).

    python benchmarks/bench_convergence.py            # every problem, 2 repetitions
    python benchmarks/bench_convergence.py --quick    # one repetition

For each problem: the log-likelihood of a long run (plain EM at tol = 1e-14, at most
20000 iterations, and Louis-Newton at tol = 1e-14: the larger of the two is "best"), then
each scheme at the default tol (1e-8) with the default standard errors (Louis), timed end
to end (public ``fit()``), interleaved over the repetitions (the best time is kept).
Printed: the gap best - llf, iterations, EM-map evaluations and seconds.

Problems: the issue's 3-state categorical HMM (50 sequences x 200 steps, 4 symbols,
seed 0), Gaussian HMMs (diagonal, 3 states x 2 features, 20 x 500; full, 4 states x 3
features, one sequence of 20000; 6 states x 4 features, 40 x 500), the Poisson HMM of the
earthquake counts (stationary start) and Gaussian mixtures on Old Faithful (VVV, k = 3)
and on a simulated 4-component set.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

import emstats


def categorical_hmm(seed=0, n_seq=50, T=200):
    rng = np.random.default_rng(seed)
    A = np.array([[0.8, 0.15, 0.05], [0.1, 0.8, 0.1], [0.05, 0.15, 0.8]])
    B = np.array([[0.6, 0.2, 0.1, 0.1], [0.2, 0.5, 0.2, 0.1], [0.1, 0.1, 0.3, 0.5]])
    pi = np.array([0.5, 0.3, 0.2])
    out = np.empty(n_seq * T, dtype=np.int64)
    i = 0
    for _ in range(n_seq):
        st = rng.choice(3, p=pi)
        for _ in range(T):
            out[i] = rng.choice(4, p=B[st])
            st = rng.choice(3, p=A[st])
            i += 1
    return emstats.hmm(out, 3, "categorical", lengths=[T] * n_seq)


def gaussian_hmm(k, d, n_seq, T, covariance, seed=1):
    rng = np.random.default_rng(seed)
    means = rng.normal(scale=1.5, size=(k, d))
    A = np.full((k, k), 0.1 / (k - 1))
    np.fill_diagonal(A, 0.9)
    n = n_seq * T
    s = np.empty(n, dtype=np.int64)
    s[0] = 0
    u = rng.random(n)
    cum = np.cumsum(A, axis=1)
    for t in range(1, n):
        s[t] = min(np.searchsorted(cum[s[t - 1]], u[t]), k - 1)
    X = means[s] + rng.normal(size=(n, d))
    return emstats.hmm(X, k, covariance=covariance, lengths=[T] * n_seq)


def problems():
    eq = emstats.datasets.load("earthquakes")
    faithful = emstats.datasets.load("faithful")
    rng = np.random.default_rng(3)
    X4 = np.vstack([rng.normal(loc=m, size=(150, 2)) for m in ([0, 0], [2, 0], [0, 2.5],
                                                               [2.5, 2.5])])
    return {
        "HMM categorical K=3 (issue)": categorical_hmm(),
        "HMM Gaussian diag K=3 d=2": gaussian_hmm(3, 2, 20, 500, "diag"),
        "HMM Gaussian full K=4 d=3": gaussian_hmm(4, 3, 1, 20000, "full"),
        "HMM Gaussian diag K=6 d=4": gaussian_hmm(6, 4, 40, 500, "diag"),
        "HMM Poisson K=3 earthquakes": emstats.hmm("~ count", 3, "poisson", data=eq,
                                                   initial="stationary"),
        "GMM VVV k=3 faithful": emstats.gmm(faithful, k=3),
        "GMM VVV k=4 simulated": emstats.gmm(X4, k=4),
    }


def fit(model, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        r = model.fit(**kw)
        return r, time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--methods", default="em,squarem,newton")
    args = ap.parse_args()
    reps = 1 if args.quick else 2
    methods = [None] + args.methods.split(",")
    print(f"{'problem':30s} {'method':8s} {'gap to best':>12s} {'est.dist':>9s} "
          f"{'iter':>5s} {'EM maps':>7s} {'seconds':>8s}")
    for name, model in problems().items():
        long_em, _ = fit(model, method="em", tol=1e-14, maxiter=20000, cov_type=None)
        long_nt, _ = fit(model, method="newton", tol=1e-14, maxiter=2000, cov_type=None)
        best = max(long_em.llf, long_nt.llf)
        times = {m: np.inf for m in methods}
        out = {}
        for _ in range(reps):
            for m in methods:
                r, sec = fit(model, method=m)
                times[m] = min(times[m], sec)
                out[m] = r
        for m in methods:
            r, c = out[m], out[m].convergence
            label = f"default ({c.method})" if m is None else m
            print(f"{name:30s} {label:8s} {best - r.llf:12.2e} {c.est_distance:9.1e} "
                  f"{c.n_iter:5d} {c.n_em_steps:7d} {times[m]:8.3f}")
        print(f"{'':30s} long EM - long Newton: {long_em.llf - long_nt.llf:.2e}")


if __name__ == "__main__":
    main()
