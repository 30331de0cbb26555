"""Baum-Welch seconds per iteration: emstats' HMM kernels against hmmlearn's GaussianHMM.

    python benchmarks/bench_hmm.py                  # 200 x 1000 steps and 1 x 10^6 steps
    python benchmarks/bench_hmm.py --small          # 40 x 500 and 1 x 10^5 (quick check)
    python benchmarks/bench_hmm.py --n-seq 50 --seq-len 400 --long 200000 --iters 5

Problem: diagonal-covariance Gaussian HMM, d = 4 features, k = 6 states, data simulated
from a sticky 6-state chain.  Both libraries start from the same parameters (emstats'
k-means start) and run the same number of Baum-Welch iterations; the tables print seconds
per iteration (E-step + M-step), Viterbi and scoring times, for emstats with 1 and 2
threads and hmmlearn's two implementations ("log", its default, and "scaling").

The "limit" is what the machine could do at best: the arithmetic of one iteration
(about 2 d k + 6 k^2 + 4 d k flops per row: emission log-densities, forward, backward with
the transition counts, emission sums) at the rate numpy's matrix product reaches on this
machine, plus one exponential per row and state at the rate of numpy's vectorised exp.
Timings are the median of the repetitions; the load average is printed because the
machine may be shared.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

import numpy as np

import emstats
from emstats.em.problem import Problem
from emstats.models.hmm import HiddenMarkovModel


def simulate(n_seq: int, seq_len: int, k: int = 6, d: int = 4, seed: int = 0):
    rng = np.random.default_rng(seed)
    means = rng.normal(scale=2.5, size=(k, d))
    sds = rng.uniform(0.6, 1.4, size=(k, d))
    A = np.full((k, k), 0.04 / (k - 1))
    np.fill_diagonal(A, 0.96)
    T = n_seq * seq_len
    u = rng.random(T)
    cum = np.cumsum(A, axis=1)
    z = np.empty(T, dtype=np.int64)
    for s in range(n_seq):
        r0 = s * seq_len
        z[r0] = rng.integers(k)
        for t in range(r0 + 1, r0 + seq_len):
            z[t] = min(int(np.searchsorted(cum[z[t - 1]], u[t], side="right")), k - 1)
    X = means[z] + sds[z] * rng.standard_normal((T, d))
    return X, [seq_len] * n_seq


def machine_rates():
    """Flop rate of numpy's matrix product and exponentials per second of numpy's exp."""
    a = np.random.default_rng(0).random((1500, 1500))
    a @ a
    t = time.perf_counter()
    a @ a
    gemm = 2 * 1500**3 / (time.perf_counter() - t)
    x = -np.random.default_rng(1).random(2_000_000) * 30
    np.exp(x)
    t = time.perf_counter()
    for _ in range(5):
        np.exp(x)
    expr = 5 * x.size / (time.perf_counter() - t)
    return gemm, expr


def limit_seconds(T, k, d, gemm, expr):
    flops = T * (3 * d * k + 6 * k * k + 4 * d * k)
    return flops / gemm + T * k / expr, flops


def median_time(f, reps):
    out = []
    for _ in range(reps):
        t = time.perf_counter()
        f()
        out.append(time.perf_counter() - t)
    return float(np.median(out))


def bench_emstats(X, lengths, k, iters, threads, reps):
    model = HiddenMarkovModel(X, k, "gaussian", lengths=lengths)
    start = model.start_params(np.random.default_rng(0), 0)
    res = {}
    for nt in threads:
        problem = Problem(model, nt)          # the model bound to its data and threads

        def run(p=start, problem=problem):
            stats, _ = problem.e_step(p)
            for _ in range(iters):
                p = model.m_step(stats, p)
                stats, _ = problem.e_step(p)
            return p

        run()
        res[nt] = {
            "iter": median_time(run, reps) / iters,
            "viterbi": median_time(lambda nt=nt: model.viterbi(start, n_threads=nt), reps),
            "score": median_time(lambda nt=nt: model.loglike(start, n_threads=nt), reps),
        }
    return model, start, res


def bench_hmmlearn(X, lengths, k, start, iters, reps):
    try:
        from hmmlearn import hmm as hl
    except ImportError:
        return None
    out = {}
    for impl in ("log", "scaling"):
        m = hl.GaussianHMM(k, covariance_type="diag", init_params="", params="stmc",
                           n_iter=iters, tol=0.0, implementation=impl)

        def setup(m=m):
            m.startprob_ = start.startprob.copy()
            m.transmat_ = start.transmat.copy()
            m.means_ = start.emission["means"].copy()
            m.covars_ = start.emission["vars"].copy()

        def fit(m=m):
            setup()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                m.fit(X, lengths)

        setup()
        r = max(1, reps // 2)
        out[impl] = {
            "iter": median_time(fit, r) / iters,
            "viterbi": median_time(lambda m=m: m.decode(X, lengths, algorithm="viterbi"), r),
            "score": median_time(lambda m=m: m.score(X, lengths), r),
        }
    return out


def report(title, T, k, d, ours, theirs, gemm, expr):
    lim, flops = limit_seconds(T, k, d, gemm, expr)
    print(f"\n== {title}: T = {T} rows, k = {k}, d = {d} ==")
    print(f"limit: {flops / 1e6:.0f} MFLOP and {T * k / 1e6:.2f} M exponentials per iteration "
          f"-> {lim * 1e3:.2f} ms (numpy matmul {gemm / 1e9:.1f} GFLOP/s, "
          f"exp {expr / 1e6:.0f} M/s)")
    rows = [(f"emstats, {nt} thread{'s' if nt > 1 else ''}", v) for nt, v in ours.items()]
    if theirs:
        rows += [(f"hmmlearn '{impl}'", v) for impl, v in theirs.items()]
    print(f"{'':24s} {'s/iter':>10s} {'x limit':>9s} {'viterbi s':>10s} {'score s':>10s}")
    for name, v in rows:
        print(f"{name:24s} {v['iter']:10.4f} {v['iter'] / lim:9.1f} {v['viterbi']:10.4f} "
              f"{v['score']:10.4f}")
    if theirs:
        best = min(v["iter"] for v in ours.values())
        print("ratios (hmmlearn time / best emstats time): "
              + ", ".join(f"{impl}: iteration {v['iter'] / best:.1f}x, viterbi "
                          f"{v['viterbi'] / min(o['viterbi'] for o in ours.values()):.1f}x, "
                          f"score {v['score'] / min(o['score'] for o in ours.values()):.1f}x"
                          for impl, v in theirs.items()))
        print(f"best emstats iteration is {best / lim:.1f}x the limit")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--small", action="store_true", help="quick sizes (40 x 500, 1 x 1e5)")
    ap.add_argument("--n-seq", type=int, default=None)
    ap.add_argument("--seq-len", type=int, default=None)
    ap.add_argument("--long", type=int, default=None, help="length of the single long sequence "
                    "(0 to skip)")
    ap.add_argument("--iters", type=int, default=5, help="Baum-Welch iterations per timing")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--no-hmmlearn", action="store_true")
    a = ap.parse_args(argv)
    n_seq = a.n_seq or (40 if a.small else 200)
    seq_len = a.seq_len or (500 if a.small else 1000)
    long_len = a.long if a.long is not None else (100_000 if a.small else 1_000_000)
    k, d = 6, 4
    print(f"emstats {emstats.__version__}; load average {os.getloadavg()[0]:.2f} "
          f"on {os.cpu_count()} cores")
    gemm, expr = machine_rates()
    threads = (1, 2)
    X, lengths = simulate(n_seq, seq_len, k, d)
    model, start, ours = bench_emstats(X, lengths, k, a.iters, threads, a.reps)
    theirs = None if a.no_hmmlearn else bench_hmmlearn(X, lengths, k, start, a.iters, a.reps)
    report(f"{n_seq} sequences x {seq_len} steps", X.shape[0], k, d, ours, theirs, gemm, expr)
    if long_len:
        X, lengths = simulate(1, long_len, k, d, seed=1)
        model, start, ours = bench_emstats(X, lengths, k, max(1, a.iters // 2), threads,
                                           max(1, a.reps - 1))
        theirs = None if a.no_hmmlearn else bench_hmmlearn(X, lengths, k, start,
                                                           max(1, a.iters // 2), 1)
        report(f"1 sequence x {long_len} steps", X.shape[0], k, d, ours, theirs, gemm, expr)
    print(f"\nload average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
