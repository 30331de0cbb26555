"""Threads and memory of the headline fits: 2 threads against 1, peak memory / input.

    python benchmarks/bench_threads_memory.py               # the issue's sizes
    python benchmarks/bench_threads_memory.py --scale 0.1   # a tenth of the rows
    python benchmarks/bench_threads_memory.py --only gmm,hmm --repeat 3

For each headline workload, through the public API end to end (construct, ``fit()`` with
its defaults and standard errors):

* Tobit n = 1e6, p = 10 (``Tobit(y, X, censor_left=0)``);
* GMM n = 1e6, d = 8, k = 8 full (``gmm(X, k=8)``) and n = 1e6, d = 4, k = 4;
* HMM 200 x 1000, k = 6, d = 4 diagonal (``hmm(X, 6, lengths=...)``);
* mixture of regressions, n = 1e6, k = 2, Gaussian (``mixreg("y ~ x1 + x2", df, k=2)``,
  from a given partition as in ``bench_mixreg.py``);
* zero-inflated Poisson, n = 1e6 (``zeroinfl("y ~ x1 + .. + x4 | x1 + z1", df)``);

the wall time with 1 and with 2 threads (every pool capped by ``threadpoolctl`` and
``n_threads=t``), the runs alternated, best of ``--repeat``; and the peak memory of one
1-thread fit in fresh child processes (``tracemalloc``'s peak and the growth of the resident
set, ``_harness.memory``) divided by the bytes of the input (the arrays or the DataFrame the
user passes; a DataFrame is built before the measured fit, so that its construction does not
count).  The data generators are those of the per-model scripts.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import _harness as H
import _machine
import numpy as np
import pandas as pd

import emstats


def workloads(scale: float) -> dict:
    """``{name: (make_data() -> dict of arrays, fit(arrays, threads))}``."""
    import bench_hmm
    import bench_mixreg
    import bench_tobit
    import bench_zeroinfl

    n6 = max(int(1e6 * scale), 20_000)

    def tobit_data():
        y, X = bench_tobit.make_data(n6)
        return {"y": y, "X": X}

    def tobit_fit(a, t):
        return emstats.Tobit(a["y"], a["X"], censor_left=0).fit(n_threads=t)

    def gmm_data(d, k):
        def make():
            from bench_gmm import simulate
            return {"X": simulate(n6, d, k)}
        return make

    def gmm_fit(k):
        return lambda a, t: emstats.gmm(a["X"], k=k).fit(n_threads=t)

    def hmm_data():
        X, lengths = bench_hmm.simulate(max(int(200 * scale), 10), 1000)
        return {"X": X, "lengths": lengths}

    def hmm_fit(a, t):
        return emstats.hmm(a["X"], 6, lengths=a["lengths"]).fit(n_threads=t)

    def mixreg_data():
        df = bench_mixreg.simulate(n6, "gaussian")
        return {c: df[c].to_numpy() for c in df.columns}

    def mixreg_fit(a, t):
        a = user_input("mixreg", a)
        return emstats.mixreg("y ~ x1 + x2", a["df"], k=2).fit(init=a["lab"], n_threads=t)

    def zi_data():
        df = bench_zeroinfl.make_data(n6, "poisson")[0]
        return {c: df[c].to_numpy() for c in df.columns}

    def zi_fit(a, t):
        a = user_input("zeroinfl", a)
        return emstats.zeroinfl(bench_zeroinfl.FORMULA, a["df"]).fit(n_threads=t)

    return {"tobit": (tobit_data, tobit_fit),
            "gmm_d8k8": (gmm_data(8, 8), gmm_fit(8)),
            "gmm_d4k4": (gmm_data(4, 4), gmm_fit(4)),
            "hmm": (hmm_data, hmm_fit),
            "mixreg": (mixreg_data, mixreg_fit),
            "zeroinfl": (zi_data, zi_fit)}


def user_input(name: str, arrays: dict) -> dict:
    """What the user passes: the arrays, or for the formula models a DataFrame of them (built
    before the fit, so that its construction is not counted in the fit's memory; the fit
    functions accept either)."""
    if name not in ("mixreg", "zeroinfl") or "df" in arrays:
        return arrays
    cols = {k: v for k, v in arrays.items() if k != "lab"}
    out = {"df": pd.DataFrame(cols)}
    if "lab" in arrays:
        out["lab"] = arrays["lab"]
    return out


def small(arrays: dict) -> dict:
    """The first rows (two sequences of the HMM): a warm-up fit, so that the imports and the
    first call's caches count neither in the times nor in the memory."""
    if "lengths" in arrays:
        return {"X": arrays["X"][:2 * int(arrays["lengths"][0])], "lengths": arrays["lengths"][:2]}
    return {k: v[:5000] for k, v in arrays.items()}


def input_bytes(name: str, arrays: dict) -> int:
    """Bytes of what the user passes: the arrays, or the DataFrame's numeric columns."""
    skip = {"lab"} if name == "mixreg" else set()
    return int(sum(v.nbytes for k, v in arrays.items() if k not in skip))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=1.0, help="fraction of the issue's rows")
    ap.add_argument("--only", default=None, help="comma-separated workloads")
    H.add_common_args(ap)
    a = ap.parse_args(argv)
    wl = workloads(a.scale)
    if a.child:
        make, fit = wl[a.child]
        arrays = H.load_arrays(a.child_data)
        with H.limited(1):
            fit(small(arrays), 1)
        arrays = user_input(a.child, arrays)       # the DataFrame exists before the trace
        H.child_main(a.child, a.child_mem, {a.child: lambda t: fit(arrays, t)})
        return
    names = a.only.split(",") if a.only else list(wl)
    machine = _machine.measure(quick=True) if hasattr(_machine, "measure") else None
    rep = H.Report(__file__, a, machine) if machine is not None else None
    repeat = a.repeat or 2
    threads = H.thread_list(a.threads, emstats.show_config(open(os.devnull, "w"))["cores"])
    print(f"load average at the start: {os.getloadavg()}", flush=True)
    trows, mrows = [], []
    for name in names:
        make, fit = wl[name]
        arrays = make()
        nbytes = input_bytes(name, arrays)
        with H.limited(1):
            fit(small(arrays), 1)
        times = {}
        for _ in range(repeat):
            for t in threads:                      # alternated: 1, 2, 1, 2, ...
                with H.limited(t):
                    s = time.perf_counter()
                    res = fit(arrays, t)
                    times[t] = min(times.get(t, np.inf), time.perf_counter() - s)
        t1, tn = threads[0], threads[-1]
        trows.append([name, nbytes / 2**20] + [times[t] for t in threads]
                     + [H.ratio(times[t1], times[tn]), float(res.llf)])
        print(trows[-1], flush=True)
        if not a.no_memory:
            with tempfile.TemporaryDirectory() as tmp:
                H.save_arrays(tmp, **arrays)
                extra = ["--scale", str(a.scale)]
                r = H.memory(__file__, name, tmp, extra)
            mrows.append([name, nbytes / 2**20, r.get("traced_peak", np.nan) / 2**20,
                          H.ratio(r.get("traced_peak"), nbytes),
                          r.get("rss_growth", np.nan) / 2**20,
                          H.ratio(r.get("rss_growth"), nbytes), r.get("error", "")])
            print(mrows[-1], flush=True)
    hdr = ["workload", "input MiB"] + [f"s ({t} thr)" for t in threads] + \
        [f"speed-up {threads[-1]} vs {threads[0]}", "llf"]
    _print_table("Public API end to end: threads", hdr, trows, rep)
    if mrows:
        _print_table("Peak memory of one fit (1 thread) / input bytes",
                     ["workload", "input MiB", "traced peak MiB", "traced / input",
                      "RSS growth MiB", "RSS growth / input", "error"], mrows, rep)
    print(f"\nload average at the end: {os.getloadavg()}")
    if rep is not None:
        rep.write(a.json)


def _print_table(title, headers, rows, rep):
    if rep is not None:
        rep.table(title, headers, rows, {h: ".3g" for h in headers})
        return
    print(f"\n**{title}**\n\n| " + " | ".join(headers) + " |")
    for r in rows:
        print("| " + " | ".join(H.fmt(v) for v in r) + " |")


if __name__ == "__main__":
    main()
