"""Gaussian mixture EM: emstats against scikit-learn on identical data and start values.

Measures, for the full (VVV) and diagonal (VVI) structures,

* seconds per EM iteration (E-step + M-step), with 1 and 2 threads;
* iterations and seconds to convergence from the same start under the same
  stopping rule, and the final log-likelihoods (they must agree);
* seconds of Louis' pieces (the standard errors) at the last timed iterate;
* the ratio to this machine's limit: the multiply-adds of an iteration (two
  n x K d x d matrix products for the full structure, 4 n K d^2 flops) divided
  by the machine's large-dgemm rate with the same number of threads.

Usage::

    python benchmarks/bench_gmm.py                 # n = 10^6, d = 8, k = 8
    python benchmarks/bench_gmm.py --n 100000      # quicker
    python benchmarks/bench_gmm.py --threads 1 --structures full

Run it on a quiet machine (``uptime``); the script prints the load average.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

import numpy as np
from threadpoolctl import threadpool_limits

import emstats
from emstats.em.problem import Problem
from emstats.models.gmm import GMMParams

SK_NAME = {"full": "full", "diag": "diag"}
EM_NAME = {"full": "VVV", "diag": "VVI"}


def simulate(n, d, k, seed=0):
    rng = np.random.default_rng(seed)
    means = rng.normal(scale=3.0, size=(k, d))
    comp = rng.integers(0, k, size=n)
    A = rng.normal(scale=0.5, size=(k, d, d)) + np.eye(d)[None]
    X = means[comp] + np.einsum("nab,nb->na", A[comp], rng.standard_normal((n, d)))
    return np.ascontiguousarray(X)


def start_values(X, k, structure, seed=1):
    """Means at k random rows, the data covariance for every component, equal weights."""
    rng = np.random.default_rng(seed)
    means = X[rng.choice(X.shape[0], size=k, replace=False)].copy()
    cov = np.cov(X[:200_000], rowvar=False)
    if structure == "diag":
        cov = np.diag(np.diag(cov))
    covs = np.broadcast_to(cov, (k,) + cov.shape).copy()
    return GMMParams(np.full(k, 1.0 / k), means, covs)


def machine_rate(nt, size=3000, reps=3):
    """Flop rate of a large dgemm with nt threads (GFLOP/s)."""
    a = np.random.default_rng(0).random((size, size))
    with threadpool_limits(nt):
        a @ a
        best = np.inf
        for _ in range(reps):
            t = time.perf_counter()
            a @ a
            best = min(best, time.perf_counter() - t)
    return 2.0 * size**3 / best / 1e9


def sklearn_model(p, structure, max_iter, tol):
    from sklearn.mixture import GaussianMixture

    prec = np.linalg.inv(p.covariances)
    if structure == "diag":
        prec = np.diagonal(prec, axis1=1, axis2=2).copy()
    return GaussianMixture(
        n_components=len(p.weights), covariance_type=SK_NAME[structure], tol=tol,
        reg_covar=0.0, max_iter=max_iter, n_init=1, init_params="random_from_data",
        weights_init=p.weights, means_init=p.means, precisions_init=prec, random_state=0,
    )


def time_sklearn(X, p, structure, nt, iters):
    """Seconds per iteration: (fit with 1 + iters iterations - fit with 1) / iters."""
    out = []
    with threadpool_limits(nt), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for m in (1, 1 + iters):
            gm = sklearn_model(p, structure, m, 0.0)
            t = time.perf_counter()
            gm.fit(X)
            out.append(time.perf_counter() - t)
    return (out[1] - out[0]) / iters


def time_emstats(model, p, nt, iters):
    """Seconds per EM iteration (E-step over the chunks + M-step) and, at the last
    iterate, seconds of Louis' pieces (score, complete and missing information)."""
    problem = Problem(model, nt)
    with threadpool_limits(1, user_api="blas"):
        st, _ = problem.e_step(p)
        q = p
        t = time.perf_counter()
        for _ in range(iters):
            q = model.m_step(st, q)
            st, _ = problem.e_step(q)
        per_iter = (time.perf_counter() - t) / iters
    with threadpool_limits(nt, user_api="blas"):
        t = time.perf_counter()
        problem.newton_pieces(q)
        louis = time.perf_counter() - t
    return per_iter, louis


def converge_sklearn(X, p, structure, nt, tol):
    with threadpool_limits(nt), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gm = sklearn_model(p, structure, 100_000, tol)
        t = time.perf_counter()
        gm.fit(X)
        sec = time.perf_counter() - t
    ll = float(gm.score(X)) * X.shape[0]
    return gm.n_iter_, sec, ll


def converge_emstats(model, p, nt, tol_rel, method):
    with threadpool_limits(1, user_api="blas"):
        t = time.perf_counter()
        run = emstats.run_em(model, p, method=method, maxiter=100_000, tol=tol_rel, warn=False,
                             n_threads=nt)
        sec = time.perf_counter() - t
    return run.convergence.n_iter, run.convergence.n_em_steps, sec, run.loglik


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--d", type=int, default=8)
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--iters", type=int, default=5, help="iterations timed per setting")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--structures", default="full,diag")
    ap.add_argument("--tol", type=float, default=1e-6,
                    help="scikit-learn's tol: change of the mean log-likelihood per row")
    ap.add_argument("--no-convergence", action="store_true",
                    help="skip the runs to convergence")
    args = ap.parse_args(argv)
    threads = [int(t) for t in args.threads.split(",")]
    structures = args.structures.split(",")
    print(f"load average before: {os.getloadavg()}")
    print(f"n = {args.n}, d = {args.d}, k = {args.k}; emstats {emstats.__version__}")
    X = simulate(args.n, args.d, args.k)
    rates = {nt: machine_rate(nt) for nt in threads}
    flops = 4.0 * args.n * args.k * args.d**2
    rows = []
    for st in structures:
        p = start_values(X, args.k, st)
        model = emstats.gmm(X, k=args.k, covariance=EM_NAME[st])
        for nt in threads:
            sk = time_sklearn(X, p, st, nt, args.iters)
            em, louis = time_emstats(model, p, nt, args.iters)
            limit = flops / (rates[nt] * 1e9)
            row = {"structure": st, "threads": nt, "sk_iter": sk, "em_iter": em,
                   "limit": limit, "louis": louis}
            if not args.no_convergence:
                it_sk, sec_sk, ll_sk = converge_sklearn(X, p, st, nt, args.tol)
                ll0 = model.loglike(p)
                tol_rel = args.tol / abs(ll0 / args.n)
                it_em, _, sec_em, ll_em = converge_emstats(model, p, nt, tol_rel, "em")
                it_sq, ev_sq, sec_sq, ll_sq = converge_emstats(model, p, nt, tol_rel, "squarem")
                row.update(it_sk=it_sk, sec_sk=sec_sk, ll_sk=ll_sk, it_em=it_em, sec_em=sec_em,
                           ll_em=ll_em, it_sq=it_sq, ev_sq=ev_sq, sec_sq=sec_sq, ll_sq=ll_sq)
            rows.append(row)
            print(f"  done: {st}, {nt} thread(s)", flush=True)
    print()
    print("machine dgemm rate (GFLOP/s): "
          + ", ".join(f"{nt} thread(s) {r:.0f}" for nt, r in rates.items()))
    print(f"flops per iteration (full structure, 4 n k d^2): {flops / 1e9:.2f} GFLOP")
    print()
    hdr = (f"{'structure':>9} {'thr':>3} | {'sklearn s/it':>12} {'emstats s/it':>12} "
           f"{'speed-up':>8} | {'limit s/it':>10} {'emstats/limit':>13} | "
           f"{'Louis s':>8} {'Louis/it':>8}")
    print(hdr)
    print("-" * len(hdr))
    for r in rows:
        lim = f"{r['limit']:10.4f} {r['em_iter'] / r['limit']:13.1f}" if r["structure"] == "full" \
            else f"{'-':>10} {'-':>13}"
        print(f"{r['structure']:>9} {r['threads']:>3} | {r['sk_iter']:12.4f} {r['em_iter']:12.4f} "
              f"{r['sk_iter'] / r['em_iter']:8.1f} | {lim} | {r['louis']:8.3f} "
              f"{r['louis'] / r['em_iter']:8.1f}")
    if not args.no_convergence:
        print()
        hdr = (f"{'structure':>9} {'thr':>3} | {'sklearn it':>10} {'s':>8} | {'EM it':>6} "
               f"{'s':>8} {'ratio':>6} | {'SQUAREM it (EM steps)':>21} {'s':>8} {'ratio':>6} | "
               f"{'loglik sklearn - EM':>19} {'SQUAREM - EM':>12}")
        print(hdr)
        print("-" * len(hdr))
        for r in rows:
            print(f"{r['structure']:>9} {r['threads']:>3} | {r['it_sk']:10d} {r['sec_sk']:8.2f} | "
                  f"{r['it_em']:6d} {r['sec_em']:8.2f} {r['sec_sk'] / r['sec_em']:6.1f} | "
                  f"{r['it_sq']:>10d} ({r['ev_sq']:>6d})  {r['sec_sq']:8.2f} "
                  f"{r['sec_sk'] / r['sec_sq']:6.1f} | {r['ll_sk'] - r['ll_em']:19.3e} "
                  f"{r['ll_sq'] - r['ll_em']:12.3e}")
    print(f"\nload average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
