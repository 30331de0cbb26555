"""Gaussian mixtures: how often each start strategy reaches the best known log-likelihood.

    python benchmarks/bench_gmm_starts.py             # all data sets, 14 structures, k = 1..9
    python benchmarks/bench_gmm_starts.py --datasets diabetes --structures VVV,EEE --ks 1-5
    python benchmarks/bench_gmm_starts.py --json starts.json

For every public data set stored in ``tests/results/gmm_starts.json`` (faithful, iris,
mclust's diabetes, banknote, wreath and thyroid, with mclust 6.0.0's BIC tables from its
default start at a tight tolerance, ``tests/results/r_scripts/gmm_starts.R``), every
covariance structure and every k, ``emstats.gmm(X, k, structure).fit(init=...)`` runs
with each strategy and otherwise default options:

* ``kmeans++``: 5 k-means++ starts, each a short EM (25 iterations), the best continued
  (emstats' default before 0.2);
* ``hc``: mclust's default start (model-based hierarchical agglomeration, VVV criterion
  on the SVD-transformed data);
* ``short-em``: 20 random starts (k distinct rows as means, the data covariance), each a
  short EM, the best continued (Biernacki, Celeux & Govaert 2003);
* ``hc+kmeans++``: the hierarchical start and 5 k-means++ starts compete in the short EM;
* ``all`` (the default up to 10,000 rows): the best of the ``hc``, ``kmeans++`` and
  ``short-em`` fits, each run to convergence, preferring one without a collapsed
  component -- computed here from those three fits, which is what ``init="all"`` does
  before its final refit from the winner; its seconds are their sum.

The best known log-likelihood of a (structure, k) is the largest of mclust's and all the
strategies' among fits without a collapsed component (a collapsed component makes the
likelihood unbounded; mclust reports those as NA).  A strategy "reaches" it when its
log-likelihood is within ``--tol`` (default 0.01) of it.  The table counts, per strategy
and data set, the cells reached out of the cells where some fit is valid, and the total
seconds of the fits (under whatever load the machine has: compare within one run).

``--short-em-counts 20,10,5,0`` measures instead whether the 20 short-EM starts of
``init="all"`` pay: ``gmm_select`` (its fast loop, 14 structures, ``--ks``) on every data set
with the short-EM part of ``init="all"`` given that many starts (0: without the part), and
the same table of cells reaching the best known log-likelihood (the best of mclust's and
of every count's fits without a collapsed component), with the seconds of each
``gmm_select``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import warnings

import numpy as np

import emstats

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURE = os.path.join(HERE, "..", "tests", "results", "gmm_starts.json")
STRATEGIES = ("kmeans++", "hc", "short-em", "hc+kmeans++")
#: init="all" keeps the best fit of these, each run to convergence (preferring fits without
#: a collapsed component), so its column is computed from their fits
ALL_PARTS = ("hc", "kmeans++", "short-em")


def load_sets(names=None):
    with open(FIXTURE) as fh:
        fx = json.load(fh)
    out = {}
    for nm, rec in fx["datasets"].items():
        if names and nm not in names:
            continue
        X = np.column_stack([np.asarray(rec["data"][c], dtype=float) for c in rec["columns"]])
        out[nm] = (X, rec)
    return out, fx["models"]


def fit_one(X, k, structure, init):
    t = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = emstats.gmm(X, k=k, covariance=structure).fit(init=init, cov_type=None)
        llf = float(res.llf)
        ok = bool(np.isfinite(llf)) and not res.collapsed
    except (ValueError, FloatingPointError, np.linalg.LinAlgError, emstats.DataError) as err:
        return {"llf": None, "valid": False, "error": f"{type(err).__name__}: {err}",
                "seconds": time.perf_counter() - t}
    return {"llf": llf, "valid": ok, "error": "", "seconds": time.perf_counter() - t}


def select_counts(sets, models, ks, counts, tol):
    """The ``--short-em-counts`` measurement (see the module's docstring)."""
    import emstats.models.gmm as G

    saved = (G.INIT_COUNTS["short-em"], G.ALL_PARTS)
    res = {}
    try:
        for c in counts:
            G.ALL_PARTS = saved[1] if c > 0 else tuple(p for p in saved[1] if p != "short-em")
            G.INIT_COUNTS["short-em"] = c if c > 0 else saved[0]
            for nm, (X, _) in sets.items():
                t = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    tab = emstats.gmm_select(X, k=ks, covariance=models).table
                res[c, nm] = (time.perf_counter() - t, {
                    (r.covariance, int(r.k)): float(r.loglik) for r in tab.itertuples()
                    if not r.failed and not r.degenerate and np.isfinite(r.loglik)})
                print(f"# {c} short-EM starts, {nm}: {res[c, nm][0]:.1f} s", file=sys.stderr,
                      flush=True)
    finally:
        G.INIT_COUNTS["short-em"], G.ALL_PARTS = saved
    print(f"Cells reaching the best known log-likelihood (within {tol}) by the number of "
          "short-EM starts of init='all' (gmm_select, 14 structures):\n")
    cols = [f"{c} starts" if c else "without" for c in counts]
    print("| data set | cells | " + " | ".join(cols) + " | mclust |")
    print("| --- | ---: | " + " | ".join("---:" for _ in cols) + " | ---: |")
    tot = [0] * (len(counts) + 2)
    for nm, (_, rec) in sets.items():
        hit = [0] * (len(counts) + 1)
        cells = 0
        for st in models:
            for k in ks:
                vals = [res[c, nm][1].get((st, k)) for c in counts]
                r_ll = rec["loglik"][st][k - 1]
                known = [v for v in vals + [r_ll] if v is not None]
                if not known:
                    continue
                best = max(known)
                cells += 1
                for j, v in enumerate(vals + [r_ll]):
                    hit[j] += v is not None and v >= best - tol
        tot[0] += cells
        for j, h in enumerate(hit):
            tot[j + 1] += h
        print(f"| {nm} | {cells} | " + " | ".join(map(str, hit)) + " |")
    print(f"| all | {tot[0]} | " + " | ".join(
        f"{h} ({100.0 * h / max(tot[0], 1):.0f}%)" for h in tot[1:]) + " |")
    print("| seconds | | " + " | ".join(
        f"{sum(res[c, nm][0] for nm in sets):.1f}" for c in counts) + " | |")


def parse_ks(text):
    if "-" in text:
        a, b = text.split("-")
        return list(range(int(a), int(b) + 1))
    return [int(v) for v in text.split(",")]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default="", help="comma-separated names (default: all)")
    ap.add_argument("--structures", default="", help="comma-separated (default: all 14)")
    ap.add_argument("--ks", default="1-9")
    ap.add_argument("--tol", type=float, default=0.01)
    ap.add_argument("--json", default="", help="write every fit's result here (after each "
                    "structure, so that an interrupted run keeps what it did)")
    ap.add_argument("--from-json", default="", help="comma-separated files of earlier runs: "
                    "print their table, fit nothing")
    ap.add_argument("--short-em-counts", default="", help="comma-separated numbers of "
                    "short-EM starts of init='all' to compare through gmm_select (0: none)")
    args = ap.parse_args(argv)
    sets, models = load_sets([s for s in args.datasets.split(",") if s])
    structures = [s for s in args.structures.split(",") if s] or models
    ks = parse_ks(args.ks)
    if args.short_em_counts:
        select_counts(sets, structures, ks, [int(c) for c in args.short_em_counts.split(",")],
                      args.tol)
        return
    cells = []
    if args.from_json:
        for path in args.from_json.split(","):
            with open(path) as fh:
                cells += [c for c in json.load(fh) if c["dataset"] in sets]
        sets = {nm: v for nm, v in sets.items() if any(c["dataset"] == nm for c in cells)}
    for nm, (X, rec) in sets.items():
        if args.from_json:
            break
        for st in structures:
            for k in ks:
                r_ll = rec["loglik"][st][k - 1]
                row = {"dataset": nm, "structure": st, "k": k,
                       "mclust": None if r_ll is None else float(r_ll)}
                for s in STRATEGIES:
                    row[s] = fit_one(X, k, st, s)
                cells.append(row)
            print(f"# {nm} {st} done", file=sys.stderr, flush=True)
            if args.json:
                with open(args.json, "w") as fh:
                    json.dump(cells, fh, indent=1)
    for row in cells:
        parts = [row[s] for s in ALL_PARTS]
        ok = [p for p in parts if p["valid"]]
        pick = max(ok, key=lambda p: p["llf"]) if ok else parts[0]
        row["all"] = dict(pick, seconds=sum(p["seconds"] for p in parts))
    strategies = STRATEGIES + ("all",)
    reached = {nm: dict.fromkeys(strategies + ("mclust",), 0) for nm in sets}
    secs = {nm: dict.fromkeys(strategies, 0.0) for nm in sets}
    total = dict.fromkeys(sets, 0)
    misses = []
    for row in cells:
        vals = [row[s]["llf"] for s in strategies if row[s]["valid"]]
        if row["mclust"] is not None:
            vals.append(row["mclust"])
        for s in strategies:
            secs[row["dataset"]][s] += row[s]["seconds"]
        if not vals:
            continue
        best = max(vals)
        row["best"] = best
        total[row["dataset"]] += 1
        for s in strategies:
            if row[s]["valid"] and row[s]["llf"] >= best - args.tol:
                reached[row["dataset"]][s] += 1
        if row["mclust"] is not None and row["mclust"] >= best - args.tol:
            reached[row["dataset"]]["mclust"] += 1
        gap = {s: (best - row[s]["llf"]) if row[s]["valid"] else math.inf for s in strategies}
        if any(g > args.tol for g in gap.values()):
            misses.append((row, gap))
    cols = strategies + ("mclust",)
    print(f"Cells (structure, k) reaching the best known log-likelihood (within {args.tol}):\n")
    print("| data set | cells | " + " | ".join(cols) + " |")
    print("| --- | ---: | " + " | ".join("---:" for _ in cols) + " |")
    for nm in sets:
        print(f"| {nm} | {total[nm]} | "
              + " | ".join(str(reached[nm][c]) for c in cols) + " |")
    allc = sum(total.values())
    print(f"| all | {allc} | "
          + " | ".join(f"{sum(reached[nm][c] for nm in sets)} "
                       f"({100.0 * sum(reached[nm][c] for nm in sets) / max(allc, 1):.0f}%)"
                       for c in cols) + " |")
    print("\nSeconds of all the fits of each strategy (same run, machine under load):\n")
    print("| data set | " + " | ".join(strategies) + " |")
    print("| --- | " + " | ".join("---:" for _ in strategies) + " |")
    for nm in sets:
        print(f"| {nm} | " + " | ".join(f"{secs[nm][s]:.1f}" for s in strategies) + " |")
    print("\nShortfalls larger than the tolerance (best known minus each strategy; inf: "
          "failed or collapsed):\n")
    for row, gap in misses:
        m = "NA" if row["mclust"] is None else f"{row['best'] - row['mclust']:.3f}"
        print(f"  {row['dataset']:9s} {row['structure']} k={row['k']}: best {row['best']:.4f}; "
              + ", ".join(f"{s} {gap[s]:.3f}" for s in strategies) + f", mclust {m}")


if __name__ == "__main__":
    main()
