"""Peak memory of the other models' default fits, as a multiple of the input's bytes.

    python benchmarks/bench_memory_models.py                 # n = 2e5 rows
    python benchmarks/bench_memory_models.py --n 1e6 --only mvn,glmm

Issue 16 item 6 / issue 19 item 6 (aim: at most 3x the data) for the models that
``bench_threads_memory.py`` does not cover, each through the public API end to end
(construct, ``fit()`` with its defaults and standard errors):

* ``mvn(X).fit()``, d = 4, 10% of the values missing at random;
* ``vbgmm(X, k=4).fit()``, d = 4, three clusters;
* ``factor_analysis(X, 2).fit()``, d = 10, two factors, complete;
* ``glmm("y ~ x", df, groups="g").fit()``, binomial, groups of 100 (rows in group order,
  and the same rows shuffled);
* ``poisson_mixture(y, k=2).fit()``;
* ``IntervalRegression(lo, hi, X).fit()``, p = 6.

Each fit runs once, with one thread, after a small warm-up fit (imports and first-call
caches do not count), in two fresh child processes (``_harness.memory``): ``tracemalloc``'s
peak in one, the growth of the resident set in the other.  The input is what the user
passes: the arrays, or the DataFrame's columns (built before the measured fit).  No
timings.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import warnings

import _harness as H
import _machine
import numpy as np
import pandas as pd

import emstats


def workloads(n: int) -> dict:
    """``{name: (make() -> dict of arrays, fit(arrays), warm-up rows)}``."""
    rng = np.random.default_rng(0)

    def mvn_data():
        X = rng.normal(size=(n, 4))
        X[rng.random((n, 4)) < 0.1] = np.nan
        return {"X": X}

    def vbgmm_data():
        return {"X": rng.normal(size=(n, 4)) + 3 * rng.integers(0, 3, n)[:, None]}

    def factor_data():
        F = rng.normal(size=(n, 2))
        return {"X": F @ rng.normal(size=(2, 10)) + rng.normal(size=(n, 10))}

    def glmm_data(shuffle):
        def make():
            g = np.repeat(np.arange(n // 100), 100)
            x = rng.normal(size=n)
            b = rng.normal(size=n // 100)[g]
            y = (rng.random(n) < 1 / (1 + np.exp(-(0.3 + 0.5 * x + b)))).astype(float)
            if shuffle:
                o = rng.permutation(n)
                y, x, g = y[o], x[o], g[o]
            return {"y": y, "x": x, "g": g}
        return make

    def poismix_data():
        y = np.concatenate([rng.poisson(1, n // 2), rng.poisson(6, n - n // 2)])
        return {"y": y.astype(float)}

    def intreg_data():
        X = np.column_stack([np.ones(n), rng.normal(size=(n, 5))])
        y = X @ rng.normal(size=6) + rng.normal(size=n)
        lo = np.floor(y)
        return {"lo": lo, "hi": lo + 1, "X": X}

    return {
        "mvn": (mvn_data, lambda a: emstats.mvn(a["X"]).fit(), 2000),
        "vbgmm": (vbgmm_data, lambda a: emstats.vbgmm(a["X"], k=4).fit(), 2000),
        "factor": (factor_data, lambda a: emstats.factor_analysis(a["X"], 2).fit(), 2000),
        "glmm": (glmm_data(False),
                 lambda a: emstats.glmm("y ~ x", a["df"], groups="g").fit(), 5000),
        "glmm_shuffled": (glmm_data(True),
                          lambda a: emstats.glmm("y ~ x", a["df"], groups="g").fit(), 5000),
        "poismix": (poismix_data, lambda a: emstats.poisson_mixture(a["y"], k=2).fit(), 2000),
        "intreg": (intreg_data,
                   lambda a: emstats.IntervalRegression(a["lo"], a["hi"], a["X"]).fit(), 2000),
    }


def user_input(name: str, arrays: dict) -> dict:
    """What the user passes: a DataFrame for the formula models."""
    if name.startswith("glmm"):
        return {"df": pd.DataFrame(arrays)}
    return arrays


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=float, default=2e5, help="rows (default 2e5)")
    ap.add_argument("--only", default=None, help="comma-separated models")
    H.add_common_args(ap)
    a = ap.parse_args(argv)
    n = int(a.n)
    wl = workloads(n)
    warnings.simplefilter("ignore")
    if a.child:
        make, fit, rows = wl[a.child]
        arrays = H.load_arrays(a.child_data)
        with H.limited(1):
            fit(user_input(a.child, {k: v[:rows] for k, v in arrays.items()}))
        arrays = user_input(a.child, arrays)      # the DataFrame exists before the trace
        H.child_main(a.child, a.child_mem, {a.child: lambda t: fit(arrays)})
        return
    names = a.only.split(",") if a.only else list(wl)
    rep = H.Report(__file__, a, _machine.measure(quick=True))
    print(f"load average at the start: {os.getloadavg()}", flush=True)
    rows = []
    for name in names:
        make = wl[name][0]
        arrays = make()
        nbytes = int(sum(v.nbytes for v in arrays.values()))
        with tempfile.TemporaryDirectory() as tmp:
            H.save_arrays(tmp, **arrays)
            r = H.memory(__file__, name, tmp, ["--n", str(n)])
        rows.append([name, nbytes / 2**20, r.get("traced_peak", np.nan) / 2**20,
                     H.ratio(r.get("traced_peak"), nbytes),
                     r.get("rss_growth", np.nan) / 2**20,
                     H.ratio(r.get("rss_growth"), nbytes), r.get("error", "")])
        print(rows[-1], flush=True)
    rep.table(f"Peak memory of one default fit (1 thread), n = {n:.3g}, / input bytes",
              ["model", "input MiB", "traced peak MiB", "traced / input", "RSS growth MiB",
               "RSS growth / input", "error"], rows,
              note="tracemalloc's peak (Python and numpy allocations) in one fresh process, "
                   "the growth of the peak resident set over the resident set just before "
                   "the fit in another; a small warm-up fit first in each.")
    print(f"\nload average at the end: {os.getloadavg()}")
    rep.write(a.json)


if __name__ == "__main__":
    main()
