"""Gaussian mixtures with missing values: emstats' missing="em" against scikit-learn on the
complete rows (the best a scikit-learn user can do: GaussianMixture raises on NaN).

    python benchmarks/bench_gmm_missing.py            # n = 1e6, d = 10, k = 3, 50 patterns
    python benchmarks/bench_gmm_missing.py --quick    # n = 20000, one repetition

Data: three well-separated normal components in d = 10 with full covariances.  Values
are missing at random: column 0 is always observed and the probability that a row is
incomplete rises with it (logistic in its standardised value), so rows of the component
with the largest first mean are incomplete more often; an incomplete row takes one of
49 patterns, each missing 3 to 5 of the other 9 columns (about 20% of the values
missing).  Dropping the incomplete rows is then biased: the weights (and the means,
through the first coordinate) of the complete rows are not those of the population.

Timed, end to end (construction + fit with defaults, alternated, best of --repeat):

* ``emstats.gmm(X, k=3, missing="em").fit()``: 5 k-means++ starts, EM with the
  Louis-Newton finish, Louis standard errors;
* ``sklearn.mixture.GaussianMixture(3).fit(X_complete)`` with its defaults and with
  ``n_init=5`` (no standard errors);
* ``emstats.gmm(X_complete, k=3).fit()``: the complete-data kernel on the same rows as
  scikit-learn.

Accuracy: each fit's components matched to the true ones (by their means), then the
largest absolute error of the weights, and the root mean square error of the means and
of the covariance elements, against the truth.  Context: seconds per EM iteration of
the missing-data fit against one pass over the data (``X.sum(axis=0)``, NaN included).
"""

from __future__ import annotations

import argparse
import itertools
import time
import warnings

import _harness as H
import numpy as np
from sklearn.mixture import GaussianMixture as SkGMM

import emstats


def simulate(n: int, d: int, k: int, n_patterns: int, seed: int = 1):
    rng = np.random.default_rng(seed)
    means = rng.normal(scale=3.0, size=(k, d))
    means[:, 0] = 4.0 * np.arange(k)             # the components differ in column 0 too
    A = rng.normal(scale=0.4, size=(k, d, d)) + np.eye(d)[None]
    covs = A @ np.swapaxes(A, 1, 2)
    weights = np.full(k, 1.0 / k)
    comp = rng.choice(k, size=n, p=weights)
    L = np.linalg.cholesky(covs)
    X = means[comp] + np.einsum("nab,nb->na", L[comp], rng.standard_normal((n, d)))
    masks = []
    while len(masks) < n_patterns - 1:
        m = np.zeros(d, dtype=bool)
        m[1 + rng.choice(d - 1, size=rng.integers(3, 6), replace=False)] = True
        if not any((m == q).all() for q in masks):
            masks.append(m)
    masks = np.array(masks)
    z = (X[:, 0] - X[:, 0].mean()) / X[:, 0].std()
    incomplete = rng.random(n) < 1.0 / (1.0 + np.exp(-1.5 * z))     # MAR on column 0
    M = np.zeros_like(X, dtype=bool)
    M[incomplete] = masks[rng.integers(0, len(masks), size=int(incomplete.sum()))]
    Xm = X.copy()
    Xm[M] = np.nan
    return Xm, (weights, means, covs)


def errors(w, mu, S, truth):
    """Max |weight error|, RMSE of the means and of the covariance elements, after matching
    the components to the true ones (the permutation closest in the means)."""
    tw, tm, tS = truth
    k = tw.size
    best = min(itertools.permutations(range(k)),
               key=lambda p: float(np.sum((mu[list(p)] - tm) ** 2)))
    p = list(best)
    return (float(np.max(np.abs(w[p] - tw))), float(np.sqrt(np.mean((mu[p] - tm) ** 2))),
            float(np.sqrt(np.mean((S[p] - tS) ** 2))))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--d", type=int, default=10)
    ap.add_argument("--k", type=int, default=3)
    ap.add_argument("--patterns", type=int, default=50)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.n, args.repeat = 20_000, 1
    X, truth = simulate(args.n, args.d, args.k, args.patterns)
    full = ~np.isnan(X).any(axis=1)
    Xc = np.ascontiguousarray(X[full])
    print(f"n = {args.n}, d = {args.d}, k = {args.k}: {100 * np.isnan(X).mean():.1f}% of "
          f"the values missing, {int((~full).sum())} incomplete rows in "
          f"{np.unique(np.isnan(X[~full]), axis=0).shape[0]} patterns; {int(full.sum())} "
          "complete rows (scikit-learn's data).  Measured under load on a shared machine.")

    fns = {
        "emstats missing='em' (all rows)":
            lambda: emstats.gmm(X, k=args.k, missing="em").fit(),
        "emstats, complete rows":
            lambda: emstats.gmm(Xc, k=args.k).fit(),
        "sklearn, complete rows (defaults)":
            lambda: SkGMM(args.k, covariance_type="full", random_state=0).fit(Xc),
        "sklearn, complete rows (n_init=5)":
            lambda: SkGMM(args.k, covariance_type="full", n_init=5, random_state=0).fit(Xc),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = H.alternate(fns, args.repeat)
    t_pass = min(_timed(lambda: X.sum(axis=0)) for _ in range(3))
    ref = out["emstats missing='em' (all rows)"][0]
    print()
    print("| fit | seconds | / emstats NaN fit | max abs weight error | RMSE means | "
          "RMSE covariances |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, (t, res) in out.items():
        if name.startswith("sklearn"):
            w, mu, S = res.weights_, res.means_, res.covariances_
        else:
            p = res.raw_params
            w, mu, S = p.weights, p.means, p.covariances
        ew, em, es = errors(w, mu, S, truth)
        print(f"| {name} | {t:.3f} | {t / ref:.2f} | {ew:.4f} | {em:.4f} | {es:.4f} |")
    res = out["emstats missing='em' (all rows)"][1]
    c = res.convergence
    per = float(np.sum(c.seconds)) / max(c.n_iter, 1)
    print()
    print(f"emstats missing='em': {c.n_iter} iterations ({c.method}), {per:.3f} s per "
          f"iteration = {per / t_pass:.1f} passes over the data (X.sum(axis=0): "
          f"{t_pass:.4f} s); Louis SEs included in the fit time.")


def _timed(f):
    t = time.perf_counter()
    f()
    return time.perf_counter() - t


if __name__ == "__main__":
    main()
