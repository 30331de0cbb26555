"""Gaussian HMMs: the time a user waits for emstats' fit, against hmmlearn.

    python benchmarks/bench_hmm.py              # 200 sequences x 1000 steps, and 1 x 1e6 steps
    python benchmarks/bench_hmm.py --quick      # 40 x 500 and 1 x 20000, one repetition
    python benchmarks/bench_hmm.py --n 20000    # total rows of each problem (long = n)

Problem: diagonal-covariance Gaussian HMM, d = 4 features, k = 6 states, simulated from a
sticky 6-state chain; two shapes, many short sequences and one long one.

Headline (public API end to end, 1 and all threads, alternated, best of --repeat):

* ``emstats.hmm(X, 6, lengths=lengths).fit()``: its defaults (k-means start, Baum-Welch
  to ``tol``, exact-information standard errors);
* ``hmmlearn.hmm.GaussianHMM(6, covariance_type="diag", implementation="scaling")
  .fit(X, lengths)`` with its defaults (``n_iter = 10``, ``tol = 1e-2``: it usually stops
  at 10 iterations, far from the optimum; "llf - best" shows it), and the same with
  ``n_iter = 1000`` and ``tol`` = emstats' relative ``tol`` times |log-likelihood|.
  hmmlearn computes no standard errors.

Then: iterations and seconds to the same log-likelihood from identical start values
(emstats' k-means start, handed to hmmlearn with ``init_params=""``); marginal seconds
per Baum-Welch iteration, (t(maxiter = 2m) - t(maxiter = m)) / m; peak memory of each
headline fit in fresh child processes; this machine's limits (``_machine.py``).

Flop/byte model of one Baum-Welch iteration (T rows, d features, k states):

* flops: emission log-densities 3 d k, forward 2 k^2 + k, backward with the
  transition counts 4 k^2, emission sums 4 d k per row: T (7 d k + 6 k^2), plus T k
  exponentials (at numpy's exp rate).
* bytes: one read of the data and one write and read of the forward variables,
  8 T (d + 2 k).  At k = 6 both limits are small; the recursion over time is serial
  within a sequence, so the 2-thread speed-up needs many sequences (the long single
  sequence shows what is left).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import warnings

import _harness as H
import _machine
import numpy as np

import emstats

K, D = 6, 4


def simulate(n_seq: int, seq_len: int, k: int = K, d: int = D, seed: int = 0):
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
    return X, np.full(n_seq, seq_len, dtype=np.int64)


def _hl():
    from hmmlearn import hmm as hl

    return hl


def hl_model(n_iter=10, tol=1e-2, start=None, impl="scaling"):
    kw = {} if start is None else {"init_params": ""}
    m = _hl().GaussianHMM(K, covariance_type="diag", implementation=impl, n_iter=n_iter,
                          tol=tol, random_state=0, **kw)
    if start is not None:
        m.startprob_ = start.startprob.copy()
        m.transmat_ = start.transmat.copy()
        m.means_ = start.emission["means"].copy()
        m.covars_ = start.emission["vars"].copy()
    return m


def hl_fit(m, X, lengths):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m.fit(X, lengths)
    return {"llf": float(m.score(X, lengths)), "n_iter": int(m.monitor_.iter)}


def headline_fitters(X, lengths, tol_abs):
    def ours(t):
        r = emstats.hmm(X, K, lengths=lengths).fit(n_threads=t)
        return {"llf": r.llf, "n_iter": r.convergence.n_iter}

    return {"emstats hmm(X, 6).fit()": ours,
            "hmmlearn scaling, defaults": lambda t: hl_fit(hl_model(), X, lengths),
            "hmmlearn scaling, n_iter=1000, same tol": lambda t: hl_fit(
                hl_model(1000, tol_abs), X, lengths)}


def tol_abs_for(X, lengths):
    """emstats' default relative tol (1e-8) times |log-likelihood| at its start."""
    model = emstats.hmm(X, K, lengths=lengths)
    start = model.start_params(np.random.default_rng(0), 0)
    return 1e-8 * abs(float(model.loglike(start))), model, start


def problem(rep, title, X, lengths, threads, repeat, m, no_memory):
    T = X.shape[0]
    in_bytes = X.nbytes
    tol_abs, model, start = tol_abs_for(X, lengths)
    fitters = headline_fitters(X, lengths, tol_abs)
    ref = "hmmlearn scaling, n_iter=1000, same tol"
    rep.text(f"\n## {title}: T = {T:,} rows, {len(lengths)} sequence(s)")
    H.headline(rep, f"{title}, headline: public API end to end (construct + fit + SEs for "
               "emstats)", fitters, ref, threads, repeat, in_bytes,
               note=f"hmmlearn tol = {tol_abs:.3g} (absolute) = 1e-8 x |llf at the start|; "
                    "hmmlearn computes no standard errors.")

    no_se = H.accepts_no_se(model.fit, start_params=start, maxiter=2)
    se_kw = {"cov_type": None} if no_se else {}

    def ours(t):
        r = emstats.hmm(X, K, lengths=lengths).fit(start_params=start, maxiter=100_000,
                                                    n_threads=t, **se_kw)
        return {"llf": r.llf, "n_iter": r.convergence.n_iter}

    same = {"emstats Baum-Welch": ours,
            "hmmlearn scaling": lambda t: hl_fit(hl_model(100_000, tol_abs, start), X, lengths),
            "hmmlearn log": lambda t: hl_fit(hl_model(100_000, tol_abs, start, "log"), X,
                                             lengths)}
    H.headline(rep, f"{title}: time to the same log-likelihood from identical starts"
               + ("" if no_se else " (emstats incl. its standard errors)"), same,
               "hmmlearn scaling", threads, repeat, in_bytes,
               note="emstats tol = 1e-8 relative; hmmlearn the same change, absolute.")

    def em_iters(mm, t):
        r = emstats.hmm(X, K, lengths=lengths).fit(start_params=start, maxiter=mm, tol=1e-300,
                                                    n_threads=t, **se_kw)
        c = r.convergence
        return c.n_iter if no_se else (c.n_iter, c.wall_time)

    def hl_iters(mm, t):
        return hl_fit(hl_model(mm, -np.inf, start), X, lengths)["n_iter"]

    H.per_iteration(rep, f"{title}: seconds per Baum-Welch iteration (marginal: maxiter 2m vs m)",
                    {"emstats iteration": em_iters, "hmmlearn scaling iteration": hl_iters},
                    "hmmlearn scaling iteration", threads, m, repeat,
                    flops=float(T * (7 * D * K + 6 * K * K)), nbytes=8.0 * T * (D + 2 * K),
                    n_exp=float(T * K), note=f"m = {m}.")
    if not no_memory:
        with tempfile.TemporaryDirectory() as tmp:
            H.save_arrays(tmp, X=X, lengths=lengths)
            H.memory_table(rep, f"{title}: peak memory of each headline fit", __file__,
                           list(fitters), tmp, in_bytes)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=None,
                    help="rows of each problem (default 200 x 1000 and 1e6)")
    ap.add_argument("--seq-len", type=int, default=None, help="length of the short sequences")
    ap.add_argument("--no-long", action="store_true", help="skip the single long sequence")
    ap.add_argument("--m", type=int, default=5, help="iterations m of the marginal timing")
    H.add_common_args(ap)
    a = ap.parse_args(argv)
    if a.child:
        d = H.load_arrays(a.child_data)
        X, lengths = d["X"], d["lengths"]
        H.child_main(a.child, a.child_mem, headline_fitters(X, lengths, tol_abs_for(X, lengths)[0]))
        return
    repeat = a.repeat or (1 if a.quick else 3)
    seq_len = a.seq_len or (500 if a.quick else 1000)
    n_short = a.n or (40 * 500 if a.quick else 200 * 1000)
    n_long = a.n or (20_000 if a.quick else 1_000_000)
    n_seq = max(1, n_short // seq_len)

    mach = _machine.measure(a.quick)
    rep = H.Report(__file__, a, mach)
    threads = H.thread_list(a.threads, mach.cores)
    rep.text(f"# Gaussian HMM, k = {K}, d = {D}, diagonal covariances\n\nemstats "
             f"{emstats.__version__} from {os.path.dirname(emstats.__file__)}")
    rep.text(mach.markdown())
    X, lengths = simulate(n_seq, seq_len)
    problem(rep, f"{n_seq} sequences x {seq_len}", X, lengths, threads, repeat, a.m,
            a.no_memory)
    if not a.no_long:
        X, lengths = simulate(1, n_long, seed=1)
        problem(rep, f"1 sequence x {n_long:,}", X, lengths, threads, repeat, a.m, a.no_memory)
    rep.text(f"\nload average at the end: {os.getloadavg()}")
    rep.write(a.json)


if __name__ == "__main__":
    main()
