"""EM variants side by side: iterations, passes over the data and seconds to the same
log-likelihood, on a Tobit and a Gaussian-mixture problem, in one run.

    python benchmarks/bench_variants.py                 # n = 1e6
    python benchmarks/bench_variants.py --n 100000      # quicker

For each problem the target is the log-likelihood of a tight Louis-Newton (Tobit) or SQUAREM
(mixture) fit minus 1e-9 relative; a method's time is the wall time of its iterations up to
the first one whose exact log-likelihood reaches the target (exact log-likelihoods that a
method does not compute itself, as for incremental EM, are computed outside the timing).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import emstats
from emstats.em import run_em


class Tracker:
    """Callback: exact log-likelihood per iteration, timing that excludes its own work."""

    def __init__(self, model, target, exact_ll=None):
        self.model, self.target, self.exact_ll = model, target, exact_ll
        self.t0 = time.perf_counter()
        self.overhead = 0.0
        self.reached = None

    def __call__(self, it, params, ll):
        t_in = time.perf_counter()
        if self.exact_ll is not None:
            ll = self.exact_ll(params)
        done = ll >= self.target
        if done and self.reached is None:
            self.reached = (it, t_in - self.t0 - self.overhead)
        self.overhead += time.perf_counter() - t_in
        return done


def run(label, model, methods, target, exact_for=()):
    rows = []
    for name, kw in methods:
        tr = Tracker(model, target, model.loglike if name in exact_for else None)
        run_em(model, method=kw.get("method"), method_options=kw.get("method_options"),
               maxiter=5000, tol=1e-15, callback=tr, warn=False, seed=0)
        it, sec = tr.reached if tr.reached else (float("nan"), float("nan"))
        passes = 4 * it if kw.get("method") == "squarem" else it  # 4 E-steps per cycle
        rows.append((name, it, passes, sec))
    best = np.nanmin([r[3] for r in rows])
    print(f"\n{label}: target log-likelihood {target:.6f}")
    print(f"{'method':28s} {'iterations':>10s} {'E-passes':>9s} {'seconds':>9s} {'vs best':>8s}")
    for name, it, passes, sec in rows:
        print(f"{name:28s} {it:10} {passes:9} {sec:9.3f} {sec / best:7.1f}x")


def online_row(make, feed, loglike, n, batch, best_llf, bse, delta):
    """Online EM over the data once, in batches: seconds, log-likelihood gap, distance in SEs.

    A stochastic approximation does not reach the MLE's log-likelihood to 1e-9; its
    target is the MLE's sampling error, so the row reports how far it is in standard
    errors after one pass."""
    est = make()
    t0 = time.perf_counter()
    for lo in range(0, n, batch):
        feed(est, lo, min(lo + batch, n))
    sec = time.perf_counter() - t0
    gap = (best_llf - loglike(est)) / abs(best_llf)
    z = np.abs(delta(est)) / bse
    print(f"{'online EM, one pass':28s} {n // batch:>10} {'1 pass':>9s} {sec:9.3f}   "
          f"relative llf gap {gap:.1e}, distance to the MLE: max {z.max():.2f} se, "
          f"rms {np.sqrt(np.mean(z**2)):.2f} se")


def tobit_problem(n, p=10, seed=1):
    rng = np.random.default_rng(seed)
    X = np.column_stack([np.ones(n), rng.normal(size=(n, p - 1))])
    beta = np.concatenate([[0.3], rng.normal(scale=0.5, size=p - 1)])
    y = np.maximum(X @ beta + rng.normal(size=n), 0.0)
    return y, X


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--gmm-n", type=int, default=None)
    a = ap.parse_args()
    emstats.show_config()

    y, X = tobit_problem(a.n)
    model = emstats.Tobit(y, X, censor_left=0)
    ref = model.fit(tol=1e-14)
    target = ref.llf - 1e-9 * abs(ref.llf)
    methods = [
        ("EM", {"method": "em"}),
        ("SQUAREM", {"method": "squarem"}),
        ("Louis-Newton", {"method": "newton"}),
        ("gradient EM", {"method": "gradient"}),
        ("incremental EM (10 blocks)", {"method": "incremental",
                                        "method_options": {"n_blocks": 10}}),
        ("incremental EM (50 blocks)", {"method": "incremental",
                                        "method_options": {"n_blocks": 50}}),
    ]
    run(f"Tobit, n = {a.n:,}, p = {X.shape[1]}, {np.mean(y == 0):.0%} censored", model, methods,
        target, exact_for=("incremental EM (10 blocks)", "incremental EM (50 blocks)"))
    online_row(lambda: emstats.online_tobit(censor_left=0), lambda est, lo, hi:
               est.partial_fit(X[lo:hi], y[lo:hi]),
               lambda est: model.loglike(est.params.to_numpy()), a.n, 100_000, ref.llf,
               ref.bse.to_numpy(), lambda est: est.params.to_numpy() - ref.params.to_numpy())

    # ECM: the heteroskedastic Tobit (log sigma linear in one regressor)
    rng = np.random.default_rng(2)
    z = X[:, 1]
    ys = X @ np.r_[0.3, rng.normal(scale=0.5, size=X.shape[1] - 1)] + np.exp(0.3 * z) * \
        rng.normal(size=a.n)
    import pandas as pd

    frame = pd.DataFrame(X[:, 1:4], columns=["x1", "x2", "x3"])
    frame["y"] = np.maximum(ys, 0.0)
    het = emstats.tobit("y ~ x1 + x2 + x3", frame, censor_left=0, scale_formula="~ x1")
    ref = het.fit(tol=1e-14)
    run(f"Heteroskedastic Tobit (ECM), n = {a.n:,}", het,
        [("ECM", {"method": "em"}), ("ECM + SQUAREM", {"method": "squarem"}),
         ("Louis-Newton", {"method": "newton"})], ref.llf - 1e-9 * abs(ref.llf))

    # Gaussian mixture
    gn = a.gmm_n or a.n
    rng = np.random.default_rng(3)
    k, d = 4, 4
    centres = rng.normal(scale=3.0, size=(k, d))
    data = centres[rng.integers(0, k, size=gn)] + rng.normal(size=(gn, d))
    gm = emstats.gmm(data, k)
    start = gm.fit(n_init=1, maxiter=3, tol=1e-3, cov_type=None, seed=0)
    start_params = start.raw_params
    ref = gm.fit(start_params=start_params, method="squarem", tol=1e-14, maxiter=5000,
                 cov_type=None, n_init=1)
    target = ref.llf - 1e-9 * abs(ref.llf)

    rows = []
    for name, meth in (("EM", "em"), ("SQUAREM", "squarem"), ("Louis-Newton", "newton"),
                       ("incremental EM (20 blocks)", "incremental")):
        inc = meth == "incremental"
        tr = Tracker(gm, target, gm.loglike if inc else None)
        run_em(gm, start_params, method=meth, maxiter=1000, tol=1e-15, callback=tr, warn=False,
               method_options={"n_blocks": 20} if inc else None)
        it, sec = tr.reached if tr.reached else (float("nan"), float("nan"))
        rows.append((name, it, sec))
    best = np.nanmin([r[2] for r in rows])
    print(f"\nGaussian mixture VVV, n = {gn:,}, d = {d}, k = {k}: target {target:.4f}")
    print(f"{'method':28s} {'iterations':>10s} {'seconds':>9s} {'vs best':>8s}")
    for name, it, sec in rows:
        print(f"{name:28s} {it:10} {sec:9.3f} {sec / best:7.1f}x")
    full = gm.fit(start_params=ref.raw_params, tol=1e-12, n_init=1)
    order = np.argsort(full.params.index)  # compare by name: online keeps its own labels

    def gmm_delta(est):
        p = est.params.reindex(full.params.index)
        return (p - full.params).to_numpy()[order]

    online_row(lambda: emstats.online_gmm(k, covariance="VVV", seed=0),
               lambda est, lo, hi: est.partial_fit(data[lo:hi]),
               lambda est: gm.loglike(est.model_params), gn, 20_000, full.llf,
               full.bse.to_numpy()[order], gmm_delta)


if __name__ == "__main__":
    main()
