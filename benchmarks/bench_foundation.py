"""Before/after table for the Foundation 2 redesign, measured in one run.

Times the public API end to end (construct the model, ``fit()`` with default options,
standard errors included) of this checkout and of another emstats installation (by
default the last commit before the redesign, a25776f, installed in its own virtual
environment), case by case and alternating between the two so that load on a shared
machine hits both alike.  Each timing runs in a fresh interpreter, so imports and
first-call costs are excluded (the child imports, builds the data, then times one fit
after a warm-up fit on a small slice).

Usage::

    python benchmarks/bench_foundation.py --before /path/to/old/venv/bin/python [--quick]

Prints a Markdown table: seconds (best of ``--repeat`` runs) before and after, their
ratio, and the iterations and log-likelihood of each, so that a speed difference can be
told apart from a fit that did different work.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import textwrap

from _machine import measure

CHILD = textwrap.dedent(r'''
    import json, sys, time, warnings
    import numpy as np
    import pandas as pd
    import emstats

    case, quick = sys.argv[1], sys.argv[2] == "1"
    warnings.simplefilter("ignore")
    rng = np.random.default_rng(0)

    def tobit_data(n, p=10):
        X = np.column_stack([np.ones(n), rng.normal(size=(n, p - 1))])
        y = np.maximum(X @ np.linspace(0.5, -0.5, p) + rng.normal(size=n), 0.0)
        cols = [f"x{j}" for j in range(1, p)]
        df = pd.DataFrame(X[:, 1:], columns=cols).assign(y=y)
        return df, "y ~ " + " + ".join(cols)

    def gmm_data(n, d=4, k=4):
        means = rng.normal(scale=4.0, size=(k, d))
        z = rng.integers(k, size=n)
        return means[z] + rng.normal(size=(n, d))

    def hmm_data(n_seq, T, k=3, d=2):
        A = np.full((k, k), 0.1 / (k - 1)) + np.eye(k) * (0.9 - 0.1 / (k - 1))
        mu = np.arange(k)[:, None] * 2.0 + np.zeros((k, d))
        out = []
        for _ in range(n_seq):
            s = rng.integers(k)
            for _t in range(T):
                out.append(mu[s] + rng.normal(size=d))
                s = rng.choice(k, p=A[s])
        return np.array(out)

    def glmm_data(G, m):
        g = np.repeat(np.arange(G), m)
        x = rng.normal(size=G * m)
        b = rng.normal(scale=0.8, size=G)[g]
        y = (rng.random(G * m) < 1 / (1 + np.exp(-(-0.5 + x + b)))).astype(float)
        return pd.DataFrame({"y": y, "x": x, "g": g})

    scale = 0.1 if quick else 1.0
    if case == "tobit":
        df, f = tobit_data(int(200_000 * scale))
        small = df.iloc[:2000]
        run = lambda d: emstats.tobit(f, d, censor_left=0).fit()
    elif case == "gmm":
        X = gmm_data(int(100_000 * scale))
        small = X[:2000]
        run = lambda d: emstats.gmm(d, k=4, covariance="VVV").fit()
    elif case == "hmm":
        X = hmm_data(int(20 * scale) or 2, 2000)
        small = X[:2000]
        run = lambda d: emstats.hmm(d, 3, "gaussian",
                                    lengths=[2000] * (len(d) // 2000)).fit()
    elif case == "vbgmm":
        X = gmm_data(int(100_000 * scale))
        small = X[:2000]
        run = lambda d: emstats.vbgmm(d, 5).fit()
    elif case == "glmm":
        df = glmm_data(int(500 * scale) or 20, 10)
        small = df.iloc[:500]
        run = lambda d: emstats.glmm_logit("y ~ x", d, groups="g").fit()
    else:
        raise SystemExit(f"unknown case {case}")
    data = df if case in ("tobit", "glmm") else X
    run(small)
    t = time.perf_counter()
    res = run(data)
    sec = time.perf_counter() - t
    llf = float(getattr(res, "llf", getattr(res, "elbo", float("nan"))))
    if case == "vbgmm":
        llf = float(res.elbo)
    print(json.dumps({"seconds": sec, "n_iter": int(res.convergence.n_iter),
                      "method": str(res.convergence.method), "llf": llf}))
''')

CASES = {
    "tobit": "Tobit, n = 2e5, p = 10",
    "gmm": "GMM VVV, n = 1e5, d = 4, k = 4",
    "hmm": "HMM Gaussian diag, 20 x 2000, k = 3, d = 2",
    "vbgmm": "VB mixture, n = 1e5, d = 4, k = 5",
    "glmm": "GLMM logit, 500 groups x 10",
}


def child(python: str, case: str, quick: bool) -> dict:
    out = subprocess.run([python, "-c", CHILD, case, "1" if quick else "0"],
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr else "failed"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", required=True, help="python of the other installation")
    ap.add_argument("--after", default=sys.executable, help="python of this installation")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--cases", nargs="*", default=list(CASES))
    args = ap.parse_args(argv)
    mach = measure(quick=True)
    print(mach.markdown() + "\n")
    print("| case | before (s) | after (s) | after / before | iterations before -> after "
          "| method before -> after | log-lik before -> after |")
    print("|---|---|---|---|---|---|---|")
    for case in args.cases:
        best = {"before": None, "after": None}
        for _ in range(args.repeat):
            for side, py in (("before", args.before), ("after", args.after)):
                r = child(py, case, args.quick)
                if "error" in r:
                    best[side] = best[side] or r
                    continue
                if best[side] is None or "error" in best[side] or \
                        r["seconds"] < best[side]["seconds"]:
                    best[side] = r
        b, a = best["before"], best["after"]
        if "error" in b or "error" in a:
            print(f"| {CASES[case]} | {b.get('error', '')} | {a.get('error', '')} | | | | |")
            continue
        print(f"| {CASES[case]} | {b['seconds']:.3f} | {a['seconds']:.3f} | "
              f"{a['seconds'] / b['seconds']:.2f} | {b['n_iter']} -> {a['n_iter']} | "
              f"{b['method']} -> {a['method']} | {b['llf']:.6f} -> {a['llf']:.6f} |",
              flush=True)


if __name__ == "__main__":
    main()
