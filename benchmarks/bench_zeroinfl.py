"""Zero-inflated counts: the time a user waits for emstats' fit, against statsmodels and
pscl, on identical data.

    python benchmarks/bench_zeroinfl.py                  # n = 1e4 and 1e6
    python benchmarks/bench_zeroinfl.py --quick          # n = 1e4, one repetition
    python benchmarks/bench_zeroinfl.py --n 100000 --json zi.json

Data: n rows, a count part with an intercept and 4 normal regressors, a zero part with an
intercept and 2 normal regressors (one shared with the count part), inflation about 30%;
ZIP data for the Poisson fits, ZINB data (theta = 2) for the negative-binomial ones.

Headline (public API end to end, 1 and all threads, runs alternated, best of --repeat):

* ``emstats.zeroinfl("y ~ x1 + .. + x4 | x1 + z1", df, dist=...).fit()``: formula,
  construction, pscl's start, the default method (Louis-Newton) and Louis SEs;
* statsmodels ``ZeroInflatedPoisson(y, X, exog_infl=Z).fit(disp=0)`` and
  ``ZeroInflatedNegativeBinomialP(y, X, exog_infl=Z, p=2).fit(disp=0)`` (its defaults:
  BFGS from its own start, then the Hessian), with ``.bse`` taken;
* R ``pscl::zeroinfl`` (when ``Rscript`` with pscl is on PATH), timed inside R: fit (its
  defaults: BFGS with an analytic gradient, a finite-difference Hessian) plus ``vcov``;
  reading the data is not counted.

Then: emstats' methods (EM, SQUAREM, Louis-Newton) to the same tolerance (the measurement
behind the default method); marginal seconds per EM iteration against the machine's
limits; this machine's limits (``_machine.py``).

Flop/byte model of one EM iteration (n rows, p = 5 count and q = 3 zero columns): the
linear predictors (2 n (p + q) flops), the gradients (2 n (p + q)) and the weighted
cross-products of the two Newton steps (2 n (p^2 + q^2)), about 2 n (2 (p + q) + p^2 + q^2)
flops, plus a few transcendentals per row; bytes: one read of y, X, Z, 8 n (1 + p + q).
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

import emstats

P, Q = 5, 3


def make_data(n: int, dist: str, seed: int = 1):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, P - 1))
    z1 = rng.normal(size=n)
    X = np.column_stack([np.ones(n), x])
    Z = np.column_stack([np.ones(n), x[:, 0], z1])
    beta = np.array([0.8, 0.3, -0.2, 0.1, 0.25])
    gamma = np.array([-0.9, 0.4, -0.6])
    mu = np.exp(X @ beta)
    if dist == "poisson":
        count = rng.poisson(mu)
    else:
        count = rng.negative_binomial(2.0, 2.0 / (2.0 + mu))
    pi = 1.0 / (1.0 + np.exp(-(Z @ gamma)))
    y = np.where(rng.random(n) < pi, 0, count).astype(float)
    df = pd.DataFrame(x, columns=[f"x{j}" for j in range(1, P)])
    df["z1"], df["y"] = z1, y
    return df, y, X, Z


FORMULA = "y ~ x1 + x2 + x3 + x4 | x1 + z1"


def r_pscl(df: pd.DataFrame, dist: str):
    """pscl::zeroinfl timed inside R: fit + vcov.  None without Rscript and pscl."""
    if shutil.which("Rscript") is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        cols = ["y", "x1", "x2", "x3", "x4", "z1"]
        df[cols].to_numpy().ravel(order="F").astype("<f8").tofile(f"{tmp}/d.bin")
        n = len(df)
        script = f"""
        suppressPackageStartupMessages(library(pscl))
        v <- readBin("{tmp}/d.bin", "double", n = {n * len(cols)}, size = 8, endian = "little")
        d <- as.data.frame(matrix(v, nrow = {n}))
        names(d) <- c({", ".join(repr(c) for c in cols)})
        t <- system.time({{
          fit <- zeroinfl({FORMULA}, data = d, dist = "{dist}")
          V <- vcov(fit)
        }})[["elapsed"]]
        cat(sprintf("%.17g %d %.17g\\n", t, as.integer(fit$optim$counts[["function"]]),
                    as.numeric(logLik(fit))))
        cat(sprintf("%.17g", sqrt(diag(V))), "\\n")
        """
        out = subprocess.run(["Rscript", "-e", script], capture_output=True, text=True)
    if out.returncode != 0:
        return None
    first, second = out.stdout.strip().splitlines()[-2:]
    sec, it, ll = first.split()
    return {"seconds": float(sec), "n_iter": int(float(it)), "llf": float(ll),
            "se": np.array([float(v) for v in second.split()])}


def fitters(df, y, X, Z, dist):
    from statsmodels.discrete.count_model import (
        ZeroInflatedNegativeBinomialP,
        ZeroInflatedPoisson,
    )

    def ours(t):
        r = emstats.zeroinfl(FORMULA, df, dist=dist).fit(n_threads=t)
        return {"llf": r.llf, "n_iter": r.convergence.n_iter, "se": r.bse.to_numpy()}

    def peer(t):
        if dist == "poisson":
            m = ZeroInflatedPoisson(y, X, exog_infl=Z)
        else:
            m = ZeroInflatedNegativeBinomialP(y, X, exog_infl=Z, p=2)
        r = m.fit(disp=0)
        se = np.asarray(r.bse)
        return {"llf": float(r.llf), "n_iter": r.mle_retvals.get("iterations"), "se": se,
                "converged": bool(r.mle_retvals.get("converged"))}

    name = "ZeroInflatedPoisson" if dist == "poisson" else "ZeroInflatedNegativeBinomialP"
    return {f"emstats zeroinfl(formula, dist='{dist}').fit()": ours,
            f"statsmodels {name}.fit() + bse": peer}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", default=None, help="rows, comma-separated (default 10000,1000000; "
                    "--quick 10000)")
    ap.add_argument("--m", type=int, default=10, help="iterations m of the marginal timing")
    H.add_common_args(ap)
    a = ap.parse_args(argv)
    sizes = [int(float(s)) for s in (a.n or ("10000" if a.quick else "10000,1000000"))
             .split(",")]
    repeat = a.repeat or (1 if a.quick else 3)
    mach = _machine.measure(a.quick)
    rep = H.Report(__file__, a, mach)
    threads = H.thread_list(a.threads, mach.cores)
    rep.text(f"# Zero-inflated Poisson and NB2, n = {', '.join(f'{n:,}' for n in sizes)}\n\n"
             f"emstats {emstats.__version__} from {os.path.dirname(emstats.__file__)}")
    rep.text(mach.markdown())
    rep.text("\nMeasured under load on a shared machine: compare ratios within one run.")
    for n in sizes:
        for dist in ("poisson", "negbin"):
            df, y, X, Z = make_data(n, dist)
            in_bytes = y.nbytes + X.nbytes + Z.nbytes
            rep.text(f"\n## {dist}, n = {n:,}: {np.mean(y == 0):.0%} zeros; input "
                     f"{in_bytes / 1e6:.3g} MB")
            fs = fitters(df, y, X, Z, dist)
            ref = list(fs)[1]
            hl = H.headline(rep, "Headline: public API end to end (construct + fit + SEs)",
                            fs, ref, threads, repeat, in_bytes,
                            note="emstats: default method and Louis SEs; statsmodels: its "
                                 "default BFGS fit and Hessian SEs.")
            outs = hl["outs"]
            # statsmodels orders the zero part first and reports alpha = 1 / theta:
            # compare the coefficients' SEs
            d = 1 if dist == "negbin" else 0
            ours_se = np.delete(outs[list(fs)[0]]["se"], P) if d else outs[list(fs)[0]]["se"]
            peer_se = np.r_[outs[ref]["se"][Q:Q + P], outs[ref]["se"][:Q]]
            r = r_pscl(df, dist)
            rep.text(f"\nstatsmodels converged: {outs[ref].get('converged')}.  Largest "
                     f"relative difference of the coefficients' SEs from emstats' (Louis): "
                     f"statsmodels {np.nanmax(np.abs(peer_se / ours_se - 1)):.2e}"
                     + ("" if r is None else
                        f", pscl {np.nanmax(np.abs(r['se'] / ours_se - 1)):.2e}"))
            if r is None:
                rep.text("\npscl: Rscript (or pscl) not available; skipped.")
            else:
                t_ours = hl["times"][list(fs)[0]][threads[0]]
                rep.table("pscl::zeroinfl + vcov (timed inside R, one run, R's default "
                          "threads)", ["fitter", "s", "pscl / emstats (1 thr)", "optim fn evals",
                                       "llf", "llf - emstats"],
                          [["pscl zeroinfl", r["seconds"], H.ratio(r["seconds"], t_ours),
                            r["n_iter"], r["llf"], r["llf"] - outs[list(fs)[0]]["llf"]]],
                          {"llf": ".10g", "llf - emstats": ".2e"})

    # the default method, measured: every scheme to the same tolerance
    n0 = sizes[0]
    for dist in ("poisson", "negbin"):
        df, y, X, Z = make_data(n0, dist)
        runs = {}
        for method in ("newton", "squarem", "em"):
            def fn(t, method=method, df=df, dist=dist):
                r = emstats.zeroinfl(FORMULA, df, dist=dist).fit(method=method, tol=1e-10,
                                                                 maxiter=20_000, n_threads=t)
                return {"llf": r.llf, "n_iter": r.convergence.n_iter}
            runs[f"emstats method={method!r}"] = fn
        hm = H.headline(rep, f"emstats' methods, {dist}, n = {n0:,}, tol = 1e-10 (SEs "
                        "included)", runs, "emstats method='em'", threads[:1], repeat,
                        y.nbytes + X.nbytes + Z.nbytes,
                        note="'peer / this' > 1: faster than plain EM.")
        t1 = {k: v[threads[0]] for k, v in hm["times"].items()}
        rep.text(f"\nfastest: {min(t1, key=t1.get)}; the default is "
                 f"{emstats.zeroinfl(FORMULA, df, dist=dist).fit(maxiter=1).convergence.method}")

    # marginal seconds per EM iteration
    n1 = sizes[-1]
    df, y, X, Z = make_data(n1, "poisson")
    model = emstats.zeroinfl(FORMULA, df)
    start = model.start_params()

    def em_iters(m, t):
        r = model.fit(method="em", start_params=start, tol=1e-300, maxiter=m, n_threads=t,
                      cov_type=None)
        return r.convergence.n_iter

    H.per_iteration(rep, f"Seconds per EM iteration (marginal: maxiter 2m vs m), Poisson, "
                    f"n = {n1:,}", {"emstats EM iteration": em_iters},
                    "emstats EM iteration", threads, a.m, repeat,
                    flops=2.0 * n1 * (2 * (P + Q) + P * P + Q * Q),
                    nbytes=8.0 * n1 * (1 + P + Q), n_exp=3.0 * n1,
                    note=f"m = {a.m}.")
    rep.text(f"\nload average at the end: {os.getloadavg()}")
    rep.write(a.json)


if __name__ == "__main__":
    main()
