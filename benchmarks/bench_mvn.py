"""Multivariate normal with missing values: construction + fit() end to end, per iteration
against one pass over the data.

    python benchmarks/bench_mvn.py              # n = 1e6, d = 10, 20% missing, 50 patterns
    python benchmarks/bench_mvn.py --n 100000   # quick run

The data are MAR: column 0 is always observed and the probability that a row is
incomplete rises with it (logistic); an incomplete row takes one of 49 patterns, each
missing 3 to 5 of the other 9 columns, so about 20% of the values are missing.

The first table times ``emstats.mvn(X)`` (grouping by pattern and the per-pattern sums
and cross-products: the one pass over the rows) and ``fit()`` with its defaults
(standard errors included) for each method, with seconds per iteration.  The second
puts them against the machine's limits on the same array: ``X.sum(axis=0)`` (one
read of the data) and ``X.T @ X`` (one BLAS pass), NaN replaced by 0.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import emstats


def make_data(n: int, d: int, n_patterns: int, seed: int = 1):
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(d, d))
    sigma = A @ A.T / d + np.eye(d)
    X = rng.multivariate_normal(np.arange(d, dtype=float), sigma, size=n)
    masks = []
    while len(masks) < n_patterns - 1:
        k = rng.integers(3, 6)
        miss = np.zeros(d, dtype=bool)
        miss[1 + rng.choice(d - 1, size=k, replace=False)] = True
        if not any((miss == m).all() for m in masks):
            masks.append(miss)
    masks = np.array(masks)
    z = (X[:, 0] - X[:, 0].mean()) / X[:, 0].std()
    incomplete = rng.random(n) < 1.0 / (1.0 + np.exp(-z))      # MAR on column 0
    which = rng.integers(0, len(masks), size=n)
    M = np.zeros_like(X, dtype=bool)
    M[incomplete] = masks[which[incomplete]]
    X[M] = np.nan
    return X


def timed(f, repeat: int = 1):
    best, out = np.inf, None
    for _ in range(repeat):
        t = time.perf_counter()
        out = f()
        best = min(best, time.perf_counter() - t)
    return best, out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--d", type=int, default=10)
    ap.add_argument("--patterns", type=int, default=50)
    args = ap.parse_args()
    X = make_data(args.n, args.d, args.patterns)
    print(f"n = {args.n}, d = {args.d}, {100 * np.isnan(X).mean():.1f}% missing, "
          f"{np.unique(np.isnan(X), axis=0).shape[0]} patterns; "
          f"threads: {emstats.show_config.__module__ and ''}default")
    t_build, model = timed(lambda: emstats.mvn(X))
    rows = []
    for method in (None, "em", "squarem", "newton"):
        t_fit, res = timed(lambda m=method: model.fit(method=m))
        c = res.convergence
        per = float(np.sum(c.seconds)) / max(c.n_iter, 1)
        rows.append((method or f"default ({c.method})", c.n_iter, c.n_em_steps, t_fit,
                     per, res.llf))
    t_sum, _ = timed(lambda: X.sum(axis=0), repeat=3)
    X0 = np.nan_to_num(X)
    t_xtx, _ = timed(lambda: X0.T @ X0, repeat=3)
    print()
    print(f"construct emstats.mvn(X): {t_build:.3f} s")
    print(f"{'method':<22}{'iter':>6}{'EM steps':>10}{'fit s':>9}{'s/iter':>11}"
          f"{'/ X.sum':>9}{'llf':>20}")
    for name, it, em, tf, per, llf in rows:
        print(f"{name:<22}{it:>6}{em:>10}{tf:>9.3f}{per:>11.2e}{per / t_sum:>9.3f}"
              f"{llf:>20.10f}")
    print()
    print(f"one pass, X.sum(axis=0): {t_sum:.4f} s;  X.T @ X: {t_xtx:.4f} s;  "
          f"construct / X.T @ X = {t_build / t_xtx:.1f}")


if __name__ == "__main__":
    main()
