"""Iteration schemes on mixtures of factor analyzers: EM, SQUAREM, Louis-Newton, AECM and
the default (Newton, redone by SQUAREM on the Heywood boundary) on the simulated data of
``tests/test_mfa.py`` (its ``simulate``), tol 1e-10, two k-means++ starts, no standard
errors.  Prints one Markdown row per data set and method: the method's iterations (the
starts' short EM runs excluded), seconds of ``fit()``, the log-likelihood and its gap to
the best of the row's fits, and whether the stopping rule held.

    python benchmarks/bench_mfa.py [--maxiter 3000] [--only 1,4]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))

from test_mfa import simulate  # noqa: E402

from emstats.models.mfa import mfa  # noqa: E402


def datasets():
    """(label, X, k, q) of the docs/factor.md table."""
    rng = np.random.default_rng(5)
    X, _ = simulate(150, rng)
    X[rng.random(X.shape) < 0.08] = np.nan
    yield "n = 150, d = 4, k = 2, q = 1, 8% NaN", X, 2, 1
    rng = np.random.default_rng(2)
    X, _ = simulate(300, rng, d=6)
    yield "n = 300, d = 6, k = 2, q = 2", X, 2, 2
    rng = np.random.default_rng(3)
    X, _ = simulate(300, rng, d=6)
    X[rng.random(X.shape) < 0.10] = np.nan
    yield "n = 300, d = 6, k = 2, q = 1, 10% NaN", X, 2, 1
    rng = np.random.default_rng(3)       # two groups, three components: a Heywood case
    X, _ = simulate(300, rng, d=6)
    yield "n = 300, d = 6, k = 3, q = 1 (Heywood)", X, 3, 1
    rng = np.random.default_rng(4)       # the same, without a Heywood case
    X, _ = simulate(300, rng, d=6)
    yield "n = 300, d = 6, k = 3, q = 1", X, 3, 1


METHODS = ("em", "squarem", "newton", "aecm", None)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--maxiter", type=int, default=3000)
    ap.add_argument("--only", default="")
    args = ap.parse_args()
    only = {int(s) for s in args.only.split(",") if s}
    print(f"load average at start: {os.getloadavg()}")
    print("| data | method | iterations | seconds | llf | gap to best | converged | boundary |")
    print("|---|---|---|---|---|---|---|---|")
    for i, (label, X, k, q) in enumerate(datasets(), 1):
        if only and i not in only:
            continue
        model = mfa(X, k, q)
        rows = []
        for meth in METHODS:
            t = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                res = model.fit(method=meth, n_init=2, tol=1e-10, maxiter=args.maxiter,
                                cov_type=None)
            sec = time.perf_counter() - t
            conv = res.convergence
            own = conv.n_iter - int(conv.extra.get("start_iterations", 0))
            rows.append((meth or f"default ({conv.method})", own, sec, res.llf,
                         conv.converged, model._on_boundary(res.raw_params)))
        best = max(r[3] for r in rows)
        for name, it, sec, llf, ok, bd in rows:
            print(f"| {label} | {name} | {it} | {sec:.2f} | {llf:.6f} | {best - llf:.1e} | "
                  f"{'yes' if ok else 'no'} | {'yes' if bd else 'no'} |", flush=True)
    print(f"load average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
