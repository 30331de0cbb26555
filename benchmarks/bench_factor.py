"""Factor analysis with missing values: construction + fit() end to end, per iteration
against one pass over the data, and scikit-learn's FactorAnalysis on the complete rows.

    python benchmarks/bench_factor.py            # n = 1e6, d = 50, 5 factors, 10% missing
    python benchmarks/bench_factor.py --quick    # n = 1e5

The data follow a 5-factor model; values are MAR: the probability that a row is
incomplete rises with column 0 (always observed), and an incomplete row takes one of 49
patterns, each missing 8 to 12 of the other columns (about 10% of the values missing).

scikit-learn's ``FactorAnalysis`` raises on NaN: the best a scikit-learn user can do is to
drop the incomplete rows (here ~45% of them), which under MAR also biases the estimates;
the table reports the time of both fits and the error of their implied covariances
against the truth.  scikit-learn is a benchmark-only dependency (``pip install
scikit-learn``).  The machine is shared: report the numbers as measured under load.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import emstats


def make_data(n: int, d: int, q: int, n_patterns: int, seed: int = 1):
    rng = np.random.default_rng(seed)
    L = rng.normal(scale=0.8, size=(d, q))
    psi = rng.uniform(0.3, 1.0, size=d)
    X = rng.standard_normal((n, q)) @ L.T + rng.standard_normal((n, d)) * np.sqrt(psi)
    X += np.arange(d, dtype=float)
    masks = []
    while len(masks) < n_patterns - 1:
        k = rng.integers(8, 13)
        miss = np.zeros(d, dtype=bool)
        miss[1 + rng.choice(d - 1, size=k, replace=False)] = True
        if not any((miss == m).all() for m in masks):
            masks.append(miss)
    masks = np.array(masks)
    z = (X[:, 0] - X[:, 0].mean()) / X[:, 0].std()
    incomplete = rng.random(n) < 0.9 / (1.0 + np.exp(-z))        # MAR on column 0
    which = rng.integers(0, len(masks), size=n)
    M = np.zeros_like(X, dtype=bool)
    M[incomplete] = masks[which[incomplete]]
    X[M] = np.nan
    return X, L @ L.T + np.diag(psi)


def timed(f):
    t = time.perf_counter()
    out = f()
    return time.perf_counter() - t, out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--d", type=int, default=50)
    ap.add_argument("--q", type=int, default=5)
    ap.add_argument("--patterns", type=int, default=50)
    ap.add_argument("--quick", action="store_true", help="n = 1e5")
    args = ap.parse_args()
    n = 100_000 if args.quick else args.n
    X, truth = make_data(n, args.d, args.q, args.patterns)
    print(f"n = {n}, d = {args.d}, q = {args.q}, {100 * np.isnan(X).mean():.1f}% missing, "
          f"{np.unique(np.isnan(X), axis=0).shape[0]} patterns (measured under load)")
    t_build, model = timed(lambda: emstats.factor_analysis(X, args.q))
    t_fit, res = timed(lambda: model.fit())
    c = res.convergence
    per = float(np.sum(c.seconds)) / max(c.n_iter, 1)
    t_sum, _ = timed(lambda: np.nansum(X, axis=0))
    X0 = np.nan_to_num(X)
    t_xtx, _ = timed(lambda: X0.T @ X0)
    err = np.abs(res.implied_cov.to_numpy() - truth).max()
    print(f"emstats construct {t_build:.2f} s, fit() {t_fit:.2f} s ({c.method}, {c.n_iter} "
          f"iterations, {c.n_em_steps} EM steps, Louis SEs included), {per:.3e} s/iteration")
    print(f"one pass: nansum {t_sum:.3f} s, X'X {t_xtx:.3f} s; per iteration / nansum = "
          f"{per / t_sum:.3f}; construct / X'X = {t_build / t_xtx:.2f}")
    try:
        from sklearn.decomposition import FactorAnalysis
    except ImportError:
        print("scikit-learn not installed: pip install scikit-learn for the comparison")
        return
    cc = X[~np.isnan(X).any(axis=1)]
    t_sk, sk = timed(lambda: FactorAnalysis(args.q, tol=1e-8, max_iter=5000).fit(cc))
    err_sk = np.abs(sk.get_covariance() - truth).max()
    print(f"scikit-learn FactorAnalysis on the {cc.shape[0]} complete rows: {t_sk:.2f} s "
          f"(emstats fit / sklearn = {t_fit / t_sk:.2f})")
    print(f"max |implied covariance - truth|: emstats (all rows, MAR) {err:.4f}, "
          f"scikit-learn (complete rows) {err_sk:.4f}")


if __name__ == "__main__":
    main()
