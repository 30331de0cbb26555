"""Mixtures of regressions: emstats.mixreg against R's flexmix, end to end.

For each size n and family (Gaussian, Poisson), simulates a two-component mixture
of regressions y ~ x1 + x2, writes it to a CSV file and times, from the *same*
random partition of the rows as the start:

* emstats: ``mixreg(...)`` construction plus ``fit(init=labels)`` (Louis-Newton, the
  default, with Louis standard errors);
* flexmix: ``flexmix(y ~ x1 + x2, k = 2, cluster = labels)`` in ``Rscript`` (a
  subprocess; the time measured inside R, excluding reading the CSV), stopping on a
  relative change 1e-8 as emstats' default ``tol``.

and prints a table of seconds, iterations and the final log-likelihoods (they must
agree, except flexmix's Gaussian, which is not the MLE: its sigma divides by n - rank).
Timings never go into the tests.

Usage::

    python benchmarks/bench_mixreg.py                  # n = 1e4 and 1e6
    python benchmarks/bench_mixreg.py --sizes 10000    # quicker
    python benchmarks/bench_mixreg.py --no-r           # emstats only
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time

import numpy as np
import pandas as pd

import emstats

R_CODE = r"""
suppressPackageStartupMessages(library(flexmix))
args <- commandArgs(TRUE)
d <- read.csv(args[1])
fam <- args[2]
t0 <- proc.time()[["elapsed"]]
model <- if (fam == "gaussian") FLXMRglm() else FLXMRglm(family = fam)
f <- flexmix(y ~ x1 + x2, data = d, k = 2, cluster = d$lab + 1, model = model,
             control = list(tolerance = 1e-8, iter.max = 5000, minprior = 0))
t1 <- proc.time()[["elapsed"]]
cat(sprintf("%.6f %d %.10f\n", t1 - t0, f@iter, as.numeric(logLik(f))))
"""


def simulate(n: int, family: str, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.uniform(-1, 1, n)
    z = rng.random(n) < 0.4
    if family == "gaussian":
        y = np.where(z, 1 + 2 * x1 - x2, -1 - x1 + 2 * x2) + rng.normal(0, np.where(z, 1, .5))
    else:
        y = rng.poisson(np.exp(np.where(z, 1 + 0.5 * x1 - x2, 0.2 - 0.3 * x1 + x2)))
    lab = rng.integers(0, 2, n)
    return pd.DataFrame({"y": y, "x1": x1, "x2": x2, "lab": lab})


def run_emstats(df, family):
    t0 = time.perf_counter()
    m = emstats.mixreg("y ~ x1 + x2", df, k=2, family=family)
    r = m.fit(init=df["lab"].to_numpy())
    return time.perf_counter() - t0, r.convergence.n_iter, r.llf


def run_flexmix(df, family):
    with tempfile.TemporaryDirectory() as tmp:
        csv, script = os.path.join(tmp, "d.csv"), os.path.join(tmp, "b.R")
        df.to_csv(csv, index=False)
        with open(script, "w") as fh:
            fh.write(R_CODE)
        out = subprocess.run(["Rscript", script, csv, family], capture_output=True,
                             text=True, timeout=3600)
    if out.returncode:
        raise RuntimeError(out.stderr)
    sec, it, ll = out.stdout.split()
    return float(sec), int(it), float(ll)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=float, nargs="+", default=[1e4, 1e6])
    ap.add_argument("--families", nargs="+", default=["gaussian", "poisson"])
    ap.add_argument("--no-r", action="store_true")
    a = ap.parse_args()
    have_r = shutil.which("Rscript") is not None and not a.no_r
    print(f"load average {os.getloadavg()}; flexmix via Rscript: {have_r}")
    rows = []
    for n in map(int, a.sizes):
        for fam in a.families:
            df = simulate(n, fam)
            s, it, ll = run_emstats(df, fam)
            row = {"n": n, "family": fam, "emstats s": s, "emstats iter": it,
                   "emstats llf": ll}
            if have_r:
                rs, rit, rll = run_flexmix(df, fam)
                row.update({"flexmix s": rs, "flexmix iter": rit, "flexmix llf": rll,
                            "speed-up": rs / s})
            rows.append(row)
            print(pd.DataFrame([row]).to_string(index=False, float_format="%.6g"),
                  flush=True)
    print()
    print(pd.DataFrame(rows).to_string(index=False, float_format="%.6g"))


if __name__ == "__main__":
    main()
