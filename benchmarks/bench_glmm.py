"""Random-intercept GLMM, end to end through the public API, against lme4's
``glmer(nAGQ = 10)`` on lme4's VerbAgg item responses (logit and probit links).

    python benchmarks/bench_glmm.py                 # VerbAgg (from R), logit and probit
    python benchmarks/bench_glmm.py --quick         # one repetition, no method table
    python benchmarks/bench_glmm.py --simulate 316  # simulated item responses (no R needed
                                                    # for the data; glmer still timed if found)
    python benchmarks/bench_glmm.py --json out.json

Data: ``lme4::VerbAgg`` (7,584 binary responses of 316 persons to 24 items), exported
by ``Rscript`` to a temporary file at run time (nothing is committed), modelled as in
lme4's documentation, ``r2 ~ Anger + Gender + btype + situ + (1 | id)``.  Without
Rscript or with ``--simulate G``: simulated item responses of G persons (24 items
each, the same kind of design).

Fitters:

* emstats ``glmm(formula, data, groups="id", link=..., n_agq=10).fit()``: construction,
  the default Louis-Newton fit on the quadrature E-step and Louis standard errors,
  with 1 and all threads (``benchmarks/_harness.py``: alternated round-robin, best of
  ``--repeat``), and the same with the default ``n_agq = 25``;
* lme4 ``glmer(..., nAGQ = 10)`` + ``vcov()``, timed inside R (``system.time``, best of
  ``--r-repeat``; starting R and reading the data are not counted), R's default
  threads.

For Bernoulli data lme4's ``logLik`` has no saturated-model constant (it is 0), so its
value and ours are the same criterion; "llf - glmer" is ours minus lme4's at the
two optima.  The machine's limits (``benchmarks/_machine.py``) are measured first;
under load on a shared machine compare the ratios within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import warnings

import numpy as np
import pandas as pd

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _harness as H  # noqa: E402
import _machine  # noqa: E402

import emstats  # noqa: E402

FORMULA = "y ~ Anger + Gender + btype + situ"
R_FORMULA = "y ~ Anger + Gender + btype + situ + (1 | id)"


def verbagg(tmp: str) -> pd.DataFrame | None:
    """lme4's VerbAgg with y = (r2 == "Y"), or None without Rscript / lme4."""
    if shutil.which("Rscript") is None:
        return None
    csv = os.path.join(tmp, "verbagg.csv")
    script = (f'data(VerbAgg, package = "lme4"); d <- VerbAgg; d$y <- as.integer(d$r2 == "Y");'
              f'write.csv(d[, c("y", "Anger", "Gender", "btype", "situ", "id")], "{csv}", '
              f'row.names = FALSE)')
    out = subprocess.run(["Rscript", "-e", script], capture_output=True, text=True)
    if out.returncode != 0:
        return None
    return pd.read_csv(csv, dtype={"Gender": "category", "btype": "category",
                                   "situ": "category"})


def simulate(n_persons: int, n_items: int = 24, seed: int = 1) -> pd.DataFrame:
    """Item responses of VerbAgg's design: a person covariate Anger and Gender, item
    factors btype (3 levels) and situ (2), a person SD of 1.3, logit link."""
    rng = np.random.default_rng(seed)
    anger = rng.integers(11, 40, n_persons)
    gender = rng.choice(["F", "M"], n_persons, p=[0.77, 0.23])
    b = rng.normal(scale=1.3, size=n_persons)
    btype = np.array(["curse", "scold", "shout"])[np.arange(n_items) % 3]
    situ = np.where(np.arange(n_items) < n_items // 2, "other", "self")
    pid = np.repeat(np.arange(n_persons), n_items)
    item = np.tile(np.arange(n_items), n_persons)
    d = pd.DataFrame({"Anger": anger[pid], "Gender": gender[pid], "btype": btype[item],
                      "situ": situ[item], "id": pid})
    eta = (0.2 + 0.055 * (d["Anger"] - 20) + 0.3 * (d["Gender"] == "M")
           - 1.0 * (d["btype"] == "scold") - 2.0 * (d["btype"] == "shout")
           - 1.0 * (d["situ"] == "self") + b[pid])
    d["y"] = (rng.random(len(d)) < 1.0 / (1.0 + np.exp(-eta))).astype(int)
    return d.sample(frac=1.0, random_state=seed).reset_index(drop=True)


def r_glmer(df: pd.DataFrame, tmp: str, links, n_agq: int, repeat: int) -> dict | None:
    """glmer(nAGQ = n_agq) + vcov per link, timed inside R (best of ``repeat``)."""
    if shutil.which("Rscript") is None:
        return None
    csv = os.path.join(tmp, "glmer_in.csv")
    df.to_csv(csv, index=False)
    links_r = ", ".join(f'"{lk}"' for lk in links)
    script = f"""
    suppressPackageStartupMessages({{library(lme4); library(jsonlite)}})
    d <- read.csv("{csv}", stringsAsFactors = TRUE)
    d$id <- factor(d$id)
    out <- list()
    for (lk in c({links_r})) {{
      best <- Inf
      for (r in seq_len({repeat})) {{
        t <- system.time({{
          fit <- glmer({R_FORMULA}, family = binomial(link = lk), data = d, nAGQ = {n_agq})
          V <- vcov(fit)
        }})[["elapsed"]]
        best <- min(best, t)
      }}
      out[[lk]] <- list(seconds = best, loglik = as.numeric(logLik(fit)),
                        fixef = unname(fixef(fit)), sd = attr(VarCorr(fit)$id, "stddev"),
                        se = unname(sqrt(diag(as.matrix(V)))),
                        message = paste(c(fit@optinfo$message,
                                          unlist(fit@optinfo$conv$lme4$messages)),
                                        collapse = "; "))
    }}
    cat(toJSON(out, digits = NA, auto_unbox = TRUE))
    """
    out = subprocess.run(["Rscript", "-e", script], capture_output=True, text=True)
    if out.returncode != 0:
        print("  (glmer failed:", out.stderr.strip().splitlines()[-1:], ")")
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])


def fitters(df, links, n_agqs):
    def make(link, k):
        def fn(t):
            r = emstats.glmm(FORMULA, df, groups="id", link=link, n_agq=k).fit(n_threads=t)
            return {"llf": r.llf, "n_iter": r.convergence.n_iter, "res": r}
        return fn
    return {f"emstats glmm(link='{lk}', n_agq={k}).fit()": make(lk, k)
            for lk in links for k in n_agqs}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--simulate", type=int, default=None, metavar="G",
                    help="simulated item responses of G persons instead of VerbAgg")
    ap.add_argument("--no-r", action="store_true", help="skip glmer")
    ap.add_argument("--r-repeat", type=int, default=None, help="glmer repetitions (best kept)")
    H.add_common_args(ap)
    a = ap.parse_args(argv)
    repeat = a.repeat or (1 if a.quick else 3)
    r_repeat = a.r_repeat or (1 if a.quick else 2)
    links = ("logit", "probit")
    mach = _machine.measure(a.quick)
    rep = H.Report(__file__, a, mach)
    threads = H.thread_list(a.threads, mach.cores)
    info = emstats.show_config(file=open(os.devnull, "w"))
    rep.text(f"# Random-intercept GLMM vs lme4 glmer(nAGQ = 10)\n\nemstats {info['version']} "
             f"from {os.path.dirname(emstats.__file__)}, OpenMP {info['openmp']}")
    rep.text(mach.markdown())
    rep.text("\nMeasured under load on a shared machine: compare ratios within one run.")
    with tempfile.TemporaryDirectory() as tmp:
        df = None if a.simulate else verbagg(tmp)
        what = "lme4::VerbAgg"
        if df is None:
            df = simulate(a.simulate or 316)
            what = f"simulated item responses ({a.simulate or 316} persons x 24 items)"
        in_bytes = len(df) * 8.0 * 7
        rep.text(f"\n## {what}: {len(df):,} binary responses, {df['id'].nunique()} groups, "
                 f"`{FORMULA} + (1 | id)`")
        outs, times = {}, {}
        for lk in links:
            fs = fitters(df, (lk,), (10, 25))
            with H.limited(1):
                list(fs.values())[0](1)       # warm-up: first-call imports and caches
            hl = H.headline(rep, f"emstats, {lk} link, public API end to end (construct + "
                            "fit + Louis SEs)", fs, list(fs)[0], threads, repeat, in_bytes,
                            note="Default method (Louis-Newton on the quadrature E-step).")
            outs.update(hl["outs"])
            times.update(hl["times"])
        g = None if a.no_r else r_glmer(df, tmp, links, 10, r_repeat)
        if g is None:
            rep.text("\nglmer: Rscript with lme4 not available (or --no-r); skipped.")
        else:
            rows = []
            for lk in links:
                k = f"emstats glmm(link='{lk}', n_agq=10).fit()"
                res = outs[k]["res"]
                gr = g[lk]
                se_rel = np.max(np.abs(res.bse.to_numpy()[:-1]
                                       / _reorder(res, np.array(gr["se"])) - 1))
                beta_d = np.max(np.abs(res.fe_params.to_numpy()
                                       - _reorder(res, np.array(gr["fixef"]))))
                rows.append([f"{lk}: glmer(nAGQ=10) + vcov", gr["seconds"]]
                            + [H.ratio(gr["seconds"], times[k][t]) for t in threads]
                            + [gr["loglik"], res.llf - gr["loglik"], beta_d,
                               res.group_sd - gr["sd"], se_rel, gr["message"] or "-"])
            rep.table(f"lme4 glmer(nAGQ = 10) + vcov, timed inside R (best of {r_repeat}), "
                      "vs emstats n_agq = 10",
                      ["fitter", "glmer s"] + [f"glmer / emstats ({t} thr)" for t in threads]
                      + ["glmer llf", "llf - glmer", "max |beta diff|", "SD diff",
                         "max SE rel diff", "glmer messages"], rows,
                      {"glmer llf": ".12g", "llf - glmer": ".2e", "max |beta diff|": ".2e",
                       "SD diff": ".2e", "max SE rel diff": ".2e"},
                      note="'glmer / emstats' > 1 means emstats is faster.  SEs: lme4's "
                           "finite-difference Hessian vs Louis' identity.")
        if not a.quick:
            rows = []
            with H.limited(threads[-1]), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                m = emstats.glmm(FORMULA, df, groups="id", n_agq=10)
                r = H.alternate({meth: (lambda meth=meth: m.fit(
                    method=meth, maxiter=5000, n_threads=threads[-1]))
                    for meth in ("newton", "squarem", "em")}, 1)
            base = r["newton"][0]
            best = max(v[1].llf for v in r.values())
            for meth, (sec, res) in r.items():
                rows.append([meth, sec, sec / base, res.convergence.n_iter, res.llf - best])
            rep.table(f"emstats' schemes on the same E-step (logit, n_agq = 10, "
                      f"{threads[-1]} threads, model built once)",
                      ["method", "s", "x newton", "iterations", "llf - best"], rows,
                      {"llf - best": ".2e"})
    rep.write(a.json)


def _reorder(res, glmer_fixef: np.ndarray) -> np.ndarray:
    """glmer's fixed effects in emstats' order (patsy puts numeric Anger last)."""
    names = list(res.fe_params.index)
    r_names = ["Intercept", "Anger", "Gender[T.M]", "btype[T.scold]", "btype[T.shout]",
               "situ[T.self]"]
    if sorted(names) != sorted(r_names):
        return glmer_fixef
    pos = {n: i for i, n in enumerate(r_names)}
    return np.array([glmer_fixef[pos[n]] for n in names])


if __name__ == "__main__":
    main()
