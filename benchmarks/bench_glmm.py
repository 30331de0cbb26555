"""Random-intercept logit, end to end through the public API: emstats' default fit
(Louis-Newton on the quadrature E-step, with Louis standard errors), the other
schemes on the same E-step, Monte Carlo EM, and lme4's ``glmer(nAGQ = 10)`` when
Rscript with lme4 is on PATH.

    python benchmarks/bench_glmm.py               # 316 groups x 24 items, and 10x that
    python benchmarks/bench_glmm.py --scale 1     # only the item-response-sized case
    python benchmarks/bench_glmm.py --no-mcem     # skip Monte Carlo EM
    python benchmarks/bench_glmm.py --mcem-seconds 600   # let MCEM run longer

Data: simulated item responses -- G persons (groups) answer 24 items each (binary),
logit P(y = 1) = x'beta + b_person with an intercept and 4 regressors (item
difficulty, a person covariate, an item-by-person interaction and a binary item
type), person SD 1.  Monte Carlo EM runs with its default options but is stopped
(by the fit's callback) after ``--mcem-seconds``; when it is stopped, its time is a
lower bound and the table says so.  Each emstats row is ``glmm_logit(...)`` + ``.fit(...)`` (the
construction is timed too); R is timed inside R (``system.time`` around
``glmer``; reading the CSV is not counted) and as the whole subprocess.  For
Bernoulli data lme4's logLik has no saturated-model constant, so its value and
ours are the same criterion.  Timings vary with the machine's load; they never
go into the tests.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time
import warnings

import numpy as np
import pandas as pd

import emstats

FORMULA = "y ~ difficulty + ability_cov + inter + itype"


def make_data(n_persons: int, n_items: int = 24, seed: int = 1) -> pd.DataFrame:
    """Simulated item responses (one row per person x item)."""
    rng = np.random.default_rng(seed)
    diff = rng.normal(size=n_items)
    itype = (np.arange(n_items) % 3 == 0).astype(float)
    pcov = rng.normal(size=n_persons)
    b = rng.normal(scale=1.0, size=n_persons)
    person = np.repeat(np.arange(n_persons), n_items)
    item = np.tile(np.arange(n_items), n_persons)
    d = pd.DataFrame({"person": person, "difficulty": diff[item],
                      "ability_cov": pcov[person], "inter": diff[item] * pcov[person],
                      "itype": itype[item]})
    eta = (0.2 - 0.8 * d["difficulty"] + 0.5 * d["ability_cov"] + 0.2 * d["inter"]
           - 0.4 * d["itype"] + b[person])
    d["y"] = (rng.random(len(d)) < 1.0 / (1.0 + np.exp(-eta))).astype(float)
    # shuffle the rows: the model sorts them by group itself
    return d.sample(frac=1.0, random_state=seed).reset_index(drop=True)


def run_emstats(data, n_agq=25, repeat=3, **fit_kw):
    best, res = np.inf, None
    for _ in range(repeat):
        t0 = time.perf_counter()
        model = emstats.glmm_logit(FORMULA, data=data, groups="person", n_agq=n_agq)
        res = model.fit(**fit_kw)
        best = min(best, time.perf_counter() - t0)
    return best, res


def run_glmer(data, tmp, n_agq=10):
    """glmer(nAGQ = n_agq): (seconds inside R, seconds of the subprocess, loglik, params)."""
    if shutil.which("Rscript") is None:
        return None
    csv = os.path.join(tmp, "irt.csv")
    data.to_csv(csv, index=False)
    script = f"""
    suppressPackageStartupMessages({{library(lme4); library(jsonlite)}})
    d <- read.csv("{csv}")
    d$person <- factor(d$person)
    t <- system.time(fit <- glmer(y ~ difficulty + ability_cov + inter + itype + (1 | person),
                                  family = binomial, data = d, nAGQ = {n_agq}))[["elapsed"]]
    cat(toJSON(list(seconds = t, loglik = as.numeric(logLik(fit)),
                    fixef = unname(fixef(fit)), sd = attr(VarCorr(fit)$person, "stddev"),
                    se = unname(sqrt(diag(as.matrix(vcov(fit)))))), digits = NA))
    """
    t0 = time.perf_counter()
    out = subprocess.run(["Rscript", "-e", script], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if out.returncode != 0:
        print("  (glmer failed:", out.stderr.strip().splitlines()[-1:], ")")
        return None
    r = json.loads(out.stdout.strip().splitlines()[-1])
    return float(r["seconds"][0]), wall, float(r["loglik"][0]), r


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=int, nargs="*", default=[1, 10])
    ap.add_argument("--no-mcem", action="store_true")
    ap.add_argument("--mcem-seconds", type=float, default=60.0)
    ap.add_argument("--no-r", action="store_true")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    info = emstats.show_config(file=open(os.devnull, "w"))
    print(f"emstats {info['version']}, OpenMP {info['openmp']}, default threads "
          f"{info['default_threads']}, load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        for scale in args.scale:
            data = make_data(316 * scale)
            print(f"\n{len(data)} binary responses, {316 * scale} groups, 4 regressors + "
                  "intercept")
            rows = []
            t, r = run_emstats(data, repeat=args.repeat)
            rows.append(("emstats default (newton, AGQ 25, Louis SEs)", t, r))
            base = t
            t10, r10 = run_emstats(data, n_agq=10, repeat=args.repeat)
            rows.append(("emstats default, n_agq=10", t10, r10))
            for meth in ("squarem", "em"):
                t, r = run_emstats(data, repeat=1, method=meth, maxiter=5000)
                rows.append((f"emstats AGQ-EM method={meth!r}", t, r))
            if not args.no_mcem:
                t_end = time.perf_counter() + args.mcem_seconds
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    t, r = run_emstats(data, repeat=1, method="mcem",
                                       callback=lambda *_, te=t_end: time.perf_counter() > te)
                stopped = r.convergence.reason == "stopped by callback"
                rows.append(("emstats MCEM (method='mcem')"
                             + (f", stopped at {args.mcem_seconds:g} s" if stopped else ""),
                             t, r))
            ref = rows[0][2]
            print(f"{'fit':48s} {'seconds':>9s} {'x default':>9s} {'iter':>5s} "
                  f"{'loglik':>16s} {'max|d param|':>12s}")
            for name, t, r in rows:
                d = np.max(np.abs(r.params.to_numpy() - ref.params.to_numpy()))
                print(f"{name:48s} {t:9.3f} {t / base:9.2f} {r.convergence.n_iter:5d} "
                      f"{r.llf:16.8f} {d:12.2e}")
            mc = [(name, t) for name, t, _ in rows if "MCEM" in name]
            if mc:
                bound = ">= " if "stopped" in mc[0][0] else ""
                print(f"MCEM / AGQ-EM default: {bound}{mc[0][1] / base:.0f}x")
            if not args.no_r:
                g = run_glmer(data, tmp)
                if g is None:
                    print("glmer: Rscript with lme4 not available")
                else:
                    sec, wall, ll, rr = g
                    beta = ref.fe_params.to_numpy()
                    print(f"{'lme4 glmer(nAGQ=10), inside R':48s} {sec:9.3f} {sec / base:9.2f} "
                          f"{'':5s} {ll:16.8f} "
                          f"{np.max(np.abs(np.array(rr['fixef']) - beta)):12.2e}")
                    print(f"{'lme4 glmer(nAGQ=10), Rscript subprocess':48s} {wall:9.3f} "
                          f"{wall / base:9.2f}")
                    b10 = r10.fe_params.to_numpy()
                    print(f"  vs emstats n_agq=10: loglik diff {r10.llf - ll:+.2e}, max |beta "
                          f"diff| {np.max(np.abs(np.array(rr['fixef']) - b10)):.2e}, SD "
                          f"{r10.group_sd:.6f} vs {rr['sd'][0]:.6f}, max SE rel diff "
                          f"{np.max(np.abs(r10.bse.to_numpy()[:-1] / np.array(rr['se']) - 1)):.1e}")
                    print(f"  glmer / emstats default: {sec / base:.1f}x (inside R), "
                          f"glmer / emstats n_agq=10: {sec / t10:.1f}x")


if __name__ == "__main__":
    main()
