"""Tobit: the time a user waits for emstats' fit, against scipy and R, on identical data.

    python benchmarks/bench_tobit.py                     # n = 1e6, p = 10, ~40% censored
    python benchmarks/bench_tobit.py --quick             # n = 20000, one repetition
    python benchmarks/bench_tobit.py --n 20000 --json tobit.json

Headline (public API end to end, 1 and all threads, runs alternated, best of --repeat):

* ``emstats.Tobit(y, X, censor_left=0).fit()`` (array) and
  ``emstats.tobit("y ~ x1 + ... + x9", df).fit()`` (formula): construction, start values,
  the default method and Louis standard errors;
* scipy: OLS start, BFGS on the Tobit log-likelihood with its analytic gradient
  (``gtol = 1e-6 sqrt(n)``), standard errors from the inverse of a central-difference
  Hessian of the analytic gradient (2 (p + 1) gradient evaluations);
* R ``survreg`` (when ``Rscript`` is on PATH), timed inside R, fit plus ``vcov``
  (reading the data is not counted).

Then: iterations and seconds to the same log-likelihood from the same OLS start (no
standard errors); marginal seconds per iteration, (t(maxiter = 2m) - t(maxiter = m)) / m,
for an EM iteration and a BFGS iteration; peak memory of each headline fit in fresh
child processes; this machine's limits (``_machine.py``).

Flop/byte model (per iteration, n rows, p regressors):

* EM iteration: the E-step forms x_i'b (2 n p flops) and the truncated-normal moments
  (a handful of transcendentals per censored row, not counted); the M-step needs
  X'E[y*] (2 n p flops; X'X is fixed): 4 n p flops.  A BFGS iteration evaluates the
  log-likelihood and gradient at least once: X b and X'r, again 4 n p flops.
* Bytes: one read of X and y, 8 n (p + 1).  At p = 10 an iteration does about 0.5 flop
  per byte, so the byte limit (bandwidth) is the one that binds, not the DGEMM rate.

"x pass" in the headline is the fit's seconds divided by one read of the input at the
measured bandwidth: the number of passes over the data the whole fit is worth.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile

import _harness as H
import _machine
import numpy as np
import pandas as pd
from scipy import optimize, special

import emstats

P = 10


def make_data(n: int, p: int = P, seed: int = 1):
    rng = np.random.default_rng(seed)
    X = np.column_stack([np.ones(n), rng.normal(size=(n, p - 1))])
    beta = np.concatenate([[0.3], rng.normal(scale=0.5, size=p - 1)])
    y = np.maximum(X @ beta + rng.normal(size=n), 0.0)  # left-censored at 0, about 40%
    return y, X


def formula_frame(y, X):
    df = pd.DataFrame(X[:, 1:], columns=[f"x{j}" for j in range(1, X.shape[1])])
    df["y"] = y
    return df, "y ~ " + " + ".join(df.columns[:-1])


# -- the scipy peer ---------------------------------------------------------------

def _negll(y, X, c=0.0):
    cens = y <= c
    Xc, Xu, yu = X[cens], X[~cens], y[~cens]
    half_log_2pi = 0.5 * np.log(2 * np.pi)

    def f(t):
        b, ls = t[:-1], t[-1]
        s = np.exp(ls)
        zc = (c - Xc @ b) / s
        ru = (yu - Xu @ b) / s
        lc = special.log_ndtr(zc)
        ll = lc.sum() - 0.5 * (ru @ ru) - len(yu) * (ls + half_log_2pi)
        lam = np.exp(-0.5 * zc**2 - half_log_2pi - lc)  # phi / Phi
        gb = -(Xc.T @ lam) / s + (Xu.T @ ru) / s
        gs = -(lam @ zc) + (ru @ ru) - len(yu)
        return -ll, -np.concatenate([gb, [gs]])

    return f


def ols_start(y, X):
    b, *_ = np.linalg.lstsq(X, y, rcond=None)
    return np.r_[b, np.log(np.std(y - X @ b))]


def scipy_fit(y, X, start=None, se=True, maxiter=10_000, gtol=None):
    f = _negll(y, X)
    start = ols_start(y, X) if start is None else start
    gtol = 1e-6 * len(y) ** 0.5 if gtol is None else gtol
    r = optimize.minimize(f, start, jac=True, method="BFGS",
                          options={"gtol": gtol, "maxiter": maxiter})
    out = {"llf": -r.fun, "n_iter": int(r.nit), "params": r.x}
    if se:
        h = 1e-5 * np.maximum(1.0, np.abs(r.x))
        H_ = np.empty((len(r.x), len(r.x)))
        for j in range(len(r.x)):
            e = np.zeros(len(r.x))
            e[j] = h[j]
            H_[:, j] = (f(r.x + e)[1] - f(r.x - e)[1]) / (2 * h[j])
        out["bse"] = np.sqrt(np.diag(np.linalg.inv(0.5 * (H_ + H_.T))))
    return out


# -- R --------------------------------------------------------------------------

def r_survreg(y, X, threads, start=None):
    """R survreg (survival), timed inside R: fit + vcov.  None without Rscript."""
    if shutil.which("Rscript") is None:
        return None
    n, p = X.shape
    with tempfile.TemporaryDirectory() as tmp:
        np.concatenate([y, X[:, 1:].ravel(order="F")]).astype("<f8").tofile(f"{tmp}/d.bin")
        init = "" if start is None else \
            f", init = c({', '.join(f'{v:.17g}' for v in start[:-1])})"
        script = f"""
        suppressPackageStartupMessages(library(survival))
        v <- readBin("{tmp}/d.bin", "double", n = {n * p}, size = 8, endian = "little")
        y <- v[1:{n}]; X <- matrix(v[-(1:{n})], nrow = {n})
        t <- system.time({{
          fit <- survreg(Surv(y, y > 0, type = "left") ~ X, dist = "gaussian"{init})
          V <- vcov(fit)
        }})[["elapsed"]]
        cat(sprintf("%.17g %d %.17g\\n", t, as.integer(fit$iter), fit$loglik[2]))
        """
        env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads))
        out = subprocess.run(["Rscript", "-e", script], capture_output=True, text=True, env=env)
    if out.returncode != 0:
        return None
    sec, it, ll = out.stdout.split()
    return {"seconds": float(sec), "n_iter": int(float(it)), "llf": float(ll)}


# -- fitters ----------------------------------------------------------------------

def headline_fitters(y, X):
    df, formula = formula_frame(y, X)

    def ours_array(t):
        r = emstats.Tobit(y, X, censor_left=0).fit(n_threads=t)
        return {"llf": r.llf, "n_iter": r.convergence.n_iter}

    def ours_formula(t):
        r = emstats.tobit(formula, df, censor_left=0).fit(n_threads=t)
        return {"llf": r.llf, "n_iter": r.convergence.n_iter}

    def peer(t):
        r = scipy_fit(y, X)
        return {"llf": r["llf"], "n_iter": r["n_iter"]}

    return {"emstats Tobit(y, X).fit()": ours_array,
            "emstats tobit(formula, df).fit()": ours_formula,
            "scipy BFGS + numerical-Hessian SEs": peer}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=None, help="rows (default 1e6; --quick 20000)")
    ap.add_argument("--p", type=int, default=P)
    ap.add_argument("--m", type=int, default=10, help="iterations m of the marginal timing")
    H.add_common_args(ap)
    a = ap.parse_args(argv)
    n = a.n or (20_000 if a.quick else 1_000_000)
    repeat = a.repeat or (1 if a.quick else 3)
    if a.child:
        y, X = _load(a.child_data)
        H.child_main(a.child, a.child_mem, headline_fitters(y, X))
        return

    mach = _machine.measure(a.quick)
    rep = H.Report(__file__, a, mach)
    threads = H.thread_list(a.threads, mach.cores)
    rep.text(f"# Tobit, n = {n:,}, p = {a.p}\n\nemstats {emstats.__version__} from "
             f"{os.path.dirname(emstats.__file__)}")
    rep.text(mach.markdown())
    y, X = make_data(n, a.p)
    in_bytes = y.nbytes + X.nbytes
    rep.text(f"\n{np.mean(y <= 0):.0%} censored; input {in_bytes / 1e6:.0f} MB.")

    # 1. headline
    fitters = headline_fitters(y, X)
    ref = "scipy BFGS + numerical-Hessian SEs"
    hl = H.headline(rep, "Headline: public API end to end (construct + fit + standard errors)",
                    fitters, ref, threads, repeat, in_bytes,
                    note="emstats runs its default method and Louis standard errors.")
    r_rows = []
    for t in threads:
        r = r_survreg(y, X, t)
        if r is not None:
            r_rows.append([f"R survreg + vcov ({t} thr)", r["seconds"],
                           H.ratio(hl["times"][ref][t], r["seconds"]), r["n_iter"], r["llf"]])
    if r_rows:
        rep.table("R peer (timed inside R, one run each)",
                  ["fitter", "s", "scipy peer / this", "iterations", "llf"], r_rows,
                  {"llf": ".10g"})
    else:
        rep.text("\nR survreg: Rscript not on PATH (or survival missing); skipped.")

    # 2. time to the same log-likelihood from the same start, no standard errors
    model = emstats.Tobit(y, X, censor_left=0)
    start = np.asarray(model.start_params(), dtype=float)
    no_se = H.accepts_no_se(model.fit, start_params=start, maxiter=2)
    se_kw = {"cov_type": None} if no_se else {}

    def ours(method):
        def fn(t):
            kw = {} if method is None else {"method": method}
            r = emstats.Tobit(y, X, censor_left=0).fit(start_params=start, tol=1e-10,
                                                       maxiter=20_000, n_threads=t, **kw,
                                                       **se_kw)
            return {"llf": r.llf, "n_iter": r.convergence.n_iter}
        return fn

    same = {"emstats default method": ours(None), "emstats EM": ours("em"),
            "emstats SQUAREM": ours("squarem"),
            "scipy BFGS": lambda t: {k: v for k, v in scipy_fit(y, X, start, se=False).items()
                                     if k != "params"}}
    H.headline(rep, "Time to the same log-likelihood from the same OLS start"
               + ("" if no_se else " (emstats incl. standard errors: cov_type=None not accepted)"),
               same, "scipy BFGS", threads, repeat, in_bytes,
               note="emstats tol = 1e-10 (relative change of the log-likelihood); scipy "
                    "gtol = 1e-6 sqrt(n); 'llf - best' shows they reach the same optimum.")

    # 3. marginal seconds per iteration
    def em_iters(m, t):
        r = emstats.Tobit(y, X, censor_left=0).fit(start_params=start, method="em", tol=1e-300,
                                                   maxiter=m, n_threads=t, **se_kw)
        return r.convergence.n_iter

    def bfgs_iters(m, t):
        return scipy_fit(y, X, start, se=False, maxiter=m, gtol=0.0)["n_iter"]

    H.per_iteration(rep, "Seconds per iteration (marginal: maxiter 2m vs m)",
                    {"emstats EM iteration": em_iters, "scipy BFGS iteration": bfgs_iters},
                    "scipy BFGS iteration", threads, a.m, repeat,
                    flops=4.0 * n * a.p, nbytes=8.0 * n * (a.p + 1),
                    note=f"m = {a.m}.  A BFGS iteration needs one or more function + gradient "
                         "evaluations (line search); an EM iteration is one E-step + M-step.")

    # detail: the reference pass
    sec = min(H.alternate({"pass": lambda: X.T @ y}, 5)["pass"][0], np.inf)
    rep.text(f"\nDetail: one X.T @ y (numpy, all threads) {sec * 1e3:.2f} ms, "
             f"i.e. {H.ratio(sec, mach.byte_seconds(in_bytes)):.2f} x the read-bandwidth pass.")

    # 4. memory
    if not a.no_memory:
        with tempfile.TemporaryDirectory() as tmp:
            H.save_arrays(tmp, a_y=y, b_X=X)
            H.memory_table(rep, "Peak memory of each headline fit", __file__,
                           list(fitters), tmp, in_bytes)
    rep.text(f"\nload average at the end: {os.getloadavg()}")
    rep.write(a.json)


def _load(directory):
    arrs = H.load_arrays(directory)
    return arrs["a_y"], arrs["b_X"]


if __name__ == "__main__":
    main()
