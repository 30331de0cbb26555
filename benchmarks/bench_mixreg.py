"""Mixtures of regressions: emstats.mixreg against R's flexmix, end to end.

For each size n and family (Gaussian, Poisson), simulates a two-component mixture
of regressions y ~ x1 + x2, writes it to a CSV file and times, from the *same*
random partition of the rows as the start:

* emstats: ``mixreg(...)`` construction plus ``fit(init=labels)`` with the defaults
  (Louis-Newton, Louis standard errors included), wall-clock and process CPU seconds;
* flexmix: ``flexmix(y ~ x1 + x2, k = 2, cluster = labels)`` in ``Rscript`` (a
  subprocess, in the same run; the time measured inside R with ``proc.time``, CSV
  reading excluded), stopping on a relative change 1e-8 as emstats' default ``tol``.
  flexmix reports no standard errors (``refit()`` would add an optim Hessian).

It prints seconds, iterations, the final log-likelihoods (they must agree, except
flexmix's Gaussian, which is not the MLE: its sigma divides by n - rank, so its
log-likelihood is lower) and the ratio flexmix / emstats.  Against the machine's limits
(measured in the same run, ``benchmarks/_machine.py``) it reports the number of kernel
passes over the data, the seconds per pass and the ratio of that to one streaming read
of the arrays a pass reads (``read limit``), and the peak memory the fit allocates
(``tracemalloc``, a separate fit) per row.  Timings never go into the tests.

Usage::

    python benchmarks/bench_mixreg.py                  # n = 1e4 and 1e6
    python benchmarks/bench_mixreg.py --quick          # n = 1e4 only
    python benchmarks/bench_mixreg.py --no-r           # emstats only
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc

import numpy as np
import pandas as pd

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _machine  # noqa: E402

import emstats  # noqa: E402
from emstats._config import resolve_threads  # noqa: E402

R_CODE = r"""
suppressPackageStartupMessages(library(flexmix))
args <- commandArgs(TRUE)
d <- read.csv(args[1])
fam <- args[2]
t0 <- proc.time()
model <- if (fam == "gaussian") FLXMRglm() else FLXMRglm(family = fam)
f <- flexmix(y ~ x1 + x2, data = d, k = 2, cluster = d$lab + 1, model = model,
             control = list(tolerance = 1e-8, iter.max = 5000, minprior = 0))
t1 <- proc.time() - t0
cat(sprintf("%.6f %.6f %d %.10f\n", t1[["elapsed"]], t1[["user.self"]] + t1[["sys.self"]],
            f@iter, as.numeric(logLik(f))))
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


def _fit(df, family, counter=None):
    m = emstats.mixreg("y ~ x1 + x2", df, k=2, family=family)
    if counter is not None:          # count the kernel passes (benchmark only)
        inner = m._pass

        def counted(*a, **kw):
            counter.append(time.perf_counter())
            return inner(*a, **kw)
        m._pass = counted
    return m, m.fit(init=df["lab"].to_numpy())


def run_emstats(df, family, repeat: int):
    best = None
    for _ in range(repeat):
        passes: list = []
        t0, c0 = time.perf_counter(), time.process_time()
        m, r = _fit(df, family, passes)
        out = (time.perf_counter() - t0, time.process_time() - c0, r.convergence.n_iter,
               r.llf, len(passes), m)
        if best is None or out[0] < best[0]:
            best = out
    return best


def peak_memory(df, family) -> int:
    tracemalloc.start()
    _fit(df, family)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


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
    sec, cpu, it, ll = out.stdout.split()
    return float(sec), float(cpu), int(it), float(ll)


def pass_bytes(model) -> int:
    """Bytes of the arrays one kernel pass reads (y, X, X2, Z, offset, trials, weights,
    log-constant)."""
    return int(sum(model.data[k].nbytes for k in ("y", "X", "X2", "Z", "off", "m", "w", "c")))


def _table(rows) -> str:
    """Seconds and ratios to 4 significant digits, log-likelihoods to 1e-6."""
    df = pd.DataFrame(rows)
    fmt = {c: (lambda v: f"{v:.6f}") if c.endswith("llf") else (lambda v: f"{v:.4g}")
           for c in df.columns if df[c].dtype.kind == "f"}
    return df.to_string(index=False, formatters=fmt)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=float, nargs="+", default=None)
    ap.add_argument("--quick", action="store_true", help="n = 1e4 only")
    ap.add_argument("--families", nargs="+", default=["gaussian", "poisson"])
    ap.add_argument("--no-r", action="store_true")
    ap.add_argument("--no-memory", action="store_true")
    a = ap.parse_args()
    sizes = a.sizes or ([1e4] if a.quick else [1e4, 1e6])
    have_r = shutil.which("Rscript") is not None and not a.no_r
    machine = _machine.measure(quick=a.quick)
    print(machine.markdown())
    print(f"\nflexmix via Rscript: {have_r}; emstats threads: {resolve_threads(None)}"
          " (measured under load: the machine is shared)\n", flush=True)
    rows, limits = [], []
    for n in map(int, sizes):
        for fam in a.families:
            df = simulate(n, fam)
            repeat = 3 if n <= 1e5 else 1
            s, cpu, it, ll, n_pass, model = run_emstats(df, fam, repeat)
            row = {"n": n, "family": fam, "emstats s": s, "emstats cpu s": cpu,
                   "emstats iter": it, "emstats llf": ll}
            if have_r:
                rs, rcpu, rit, rll = run_flexmix(df, fam)
                row.update({"flexmix s": rs, "flexmix cpu s": rcpu, "flexmix iter": rit,
                            "flexmix llf": rll, "flexmix/emstats": rs / s,
                            "cpu ratio": rcpu / cpu})
            rows.append(row)
            print(_table([row]), flush=True)
            nb = pass_bytes(model)
            lim = {"n": n, "family": fam, "kernel passes": n_pass,
                   "s per pass (whole fit / passes)": s / max(n_pass, 1),
                   "read limit s": machine.byte_seconds(nb),
                   "ratio to read limit": s / max(n_pass, 1) / machine.byte_seconds(nb)}
            if not a.no_memory:
                lim["peak MiB"] = peak_memory(df, fam) / 2**20
                lim["peak bytes/row"] = lim["peak MiB"] * 2**20 / n
            limits.append(lim)
    print("\n" + _table(rows))
    print("\n" + pd.DataFrame(limits).to_string(index=False, float_format="%.4g"))
    print(f"\nload average now {os.getloadavg()}")


if __name__ == "__main__":
    main()
