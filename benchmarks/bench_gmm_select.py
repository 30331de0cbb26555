"""Model selection on Old Faithful: ``emstats.gmm_select`` against mclust's ``Mclust``.

    python benchmarks/bench_gmm_select.py                 # k = 1..9, 14 structures, 3 rounds
    python benchmarks/bench_gmm_select.py --repeat 5 --json select.json
    python benchmarks/bench_gmm_select.py --data iris      # the 4-variable, 150-row set

Both sides through their public API with their defaults, over k = 1..9 and all 14
covariance structures: ``emstats.gmm_select(faithful, k=range(1, 10),
covariance=ALL_STRUCTURES)`` (its table, the selected model refitted with standard
errors) and ``Mclust(faithful, G = 1:9)`` (its BIC table, the selected model).  The two
are timed round-robin (R, emstats, R, emstats, ...; best of ``--repeat``) so that a
burst of load on a shared machine hits both alike; mclust is timed inside R
(``system.time`` around ``Mclust``, so R's start-up and package loading are excluded)
and emstats in this process after one warm-up call.  Printed: both times and their
ratio, then the agreement of the two BIC tables (mclust's sign, larger is better):
whether the BIC-best model is the same, and the differences cell by cell.

Measured (``--repeat 3``, quiet shared 2-core machine; docs/gmm.md "Model selection" has
the history): before the changes of 3 December 2026 (main at 29cfe92) faithful 4.118 s
against mclust 0.485 s (8.49x), iris 4.978 s against 0.449 s (11.09x); after (h-sel3)
faithful 5.003 s against 0.669 s (7.48x), iris 4.154 s against 0.520 s (7.99x), the same
BIC tables.  After h-sel4 (the whole EM step and the SQUAREM cycles in C; ``--repeat 2``,
main and the new code in turn, load about 2): faithful 4.28-4.31 s -> 2.25-2.28 s against
mclust 0.62-0.66 s (6.5x -> 3.4-3.7x), iris 3.97-5.01 s -> 2.34-2.40 s against 0.47-0.56 s
(7.8-10.6x -> 4.2-5.1x), the same BIC tables.  After h-sel5 (the starts' M-step in C;
``--repeat 2``, main and the new code in turn, three rounds, load about 2): faithful
2.07-2.32 s -> 1.76-2.16 s against mclust 0.61-0.71 s (3.31-3.43x -> 2.75-3.04x), iris
2.00-2.36 s -> 2.01-2.35 s against 0.44-0.54 s (4.4-4.5x -> 4.2-4.4x), the same BIC
tables.  After the E-step's one log per 32 rows (1913bf6; ``--repeat 3``, load 0.6):
faithful 1.150 s against mclust 0.465 s (2.47x), iris 1.370 s against 0.430 s (3.19x), the
same BIC tables.  Targets: 3x on faithful, iris under 2 s.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np
import pandas as pd

import emstats
from emstats.models.gmm import ALL_STRUCTURES

R_CODE = r"""
suppressPackageStartupMessages({library(mclust); library(jsonlite)})
args <- commandArgs(trailingOnly = TRUE)
X <- as.matrix(read.csv(args[1]))
invisible(Mclust(X, G = 1:9, verbose = FALSE))        # warm-up (byte compilation)
times <- numeric(0)
for (r in seq_len(as.integer(args[3]))) {
  t <- system.time(m <- Mclust(X, G = 1:9, verbose = FALSE))[["elapsed"]]
  times <- c(times, t)
}
b <- unclass(m$BIC)
models <- colnames(b)
out <- list(seconds = times, best_model = m$modelName, best_k = m$G, bic = m$bic,
            models = models, table = lapply(models, function(x) unname(b[, x])))
names(out$table) <- models
write(toJSON(out, digits = NA, na = "null", auto_unbox = TRUE), args[2])
"""


def run_r(csv, rounds=1):
    with tempfile.TemporaryDirectory() as tmp:
        script = os.path.join(tmp, "m.R")
        out = os.path.join(tmp, "m.json")
        with open(script, "w") as fh:
            fh.write(R_CODE)
        subprocess.run(["Rscript", script, csv, out, str(rounds)], check=True,
                       capture_output=True)
        with open(out) as fh:
            return json.load(fh)


def run_emstats(data):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = time.perf_counter()
        sel = emstats.gmm_select(data, k=range(1, 10), covariance=ALL_STRUCTURES)
        return time.perf_counter() - t, sel


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--data", default="faithful")
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    if a.data == "iris":    # not among emstats' data sets: the witness fixture carries it
        fixture = os.path.join(os.path.dirname(__file__), "..", "tests", "results",
                               "gmm_iris_common_orientation.json")
        with open(fixture) as fh:
            ref = json.load(fh)
        data = pd.DataFrame(np.array(ref["X"]), columns=[c.replace(".", "_")
                                                         for c in ref["columns"]])
    else:
        data = emstats.datasets.load(a.data).select_dtypes("number")
    with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False) as fh:
        data.to_csv(fh, index=False)
        csv = fh.name
    try:
        run_emstats(data)                                  # warm-up (imports, caches)
        t_r, t_py = [], []
        for _ in range(a.repeat):                          # interleaved rounds
            r = run_r(csv)
            t_r.append(float(np.min(r["seconds"])))
            t, sel = run_emstats(data)
            t_py.append(t)
    finally:
        os.unlink(csv)
    best_r, best_py = min(t_r), min(t_py)
    print(f"# gmm_select vs Mclust on {a.data} ({len(data)} x {data.shape[1]}), "
          f"k = 1..9, 14 structures; best of {a.repeat} interleaved rounds")
    print(f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores\n")
    print("| | seconds (best) | all rounds |")
    print("|---|---|---|")
    print(f"| mclust `Mclust(X, G = 1:9)` | {best_r:.3f} | "
          f"{', '.join(f'{x:.3f}' for x in t_r)} |")
    print(f"| emstats `gmm_select` | {best_py:.3f} | "
          f"{', '.join(f'{x:.3f}' for x in t_py)} |")
    print(f"\nratio emstats / mclust: {best_py / best_r:.2f} (best times); "
          f"{np.median(t_py) / np.median(t_r):.2f} (medians)")
    tab = sel.bic_table
    diffs, rows = [], []
    for m in r["models"]:
        for j, v in enumerate(r["table"][m]):
            k = j + 1
            ours = tab.loc[k, m] if (m in tab.columns and k in tab.index) else math.nan
            if v is None or not np.isfinite(ours):
                rows.append((m, k, v, ours))
                continue
            diffs.append((abs(ours - v), ours - v, m, k))
    b = sel.best
    same = (b.model.covariance == r["best_model"] and b.k == r["best_k"])
    print(f"\nBIC-best: emstats {b.model.covariance} k = {b.k} (BIC {b.bic_mclust:.4f}); "
          f"mclust {r['best_model']} k = {r['best_k']} (BIC {r['bic']:.4f}); "
          f"{'same model' if same else 'DIFFERENT'}")
    d = np.array([x[1] for x in diffs])
    print(f"BIC cells compared: {len(d)}; |diff| <= 1e-3 in {int(np.sum(np.abs(d) <= 1e-3))}, "
          f"emstats higher by > 1e-3 in {int(np.sum(d > 1e-3))}, lower by > 1e-3 in "
          f"{int(np.sum(d < -1e-3))}; NA on one side only: {len(rows)}")
    for _, dv, m, k in sorted(diffs, reverse=True)[:8]:
        if abs(dv) > 1e-3:
            print(f"  {m} k = {k}: emstats - mclust = {dv:+.4f}")
    if a.json:
        with open(a.json, "w") as fh:
            json.dump({"seconds_mclust": t_r, "seconds_emstats": t_py,
                       "ratio_best": best_py / best_r, "same_best": bool(same),
                       "bic_diff": [[m, k, dv] for _, dv, m, k in diffs]}, fh, indent=1)


if __name__ == "__main__":
    sys.exit(main())
