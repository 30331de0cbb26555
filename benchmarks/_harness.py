"""What the benchmark scripts share: timing, threads, memory children, Markdown and JSON.

* :func:`alternate` times several fitters round-robin (A B C A B C ...) and keeps the
  best of the repetitions of each, so that a burst of load on a shared machine hits
  all of them alike rather than one.
* :func:`limited` caps every thread pool of the process (BLAS and OpenMP) at ``t``;
  emstats fits are additionally passed ``n_threads=t``.
* :func:`marginal` is the seconds per iteration, (time(maxiter = 2m) - time(maxiter = m))
  / m, which removes construction, start values and standard errors.
* :func:`memory` runs one fit in a fresh child process (the script itself with
  ``--child NAME``) and reports its peak memory: ``tracemalloc``'s peak in one child
  (Python and numpy allocations) and, in another, the growth of the resident set
  (peak ``ru_maxrss`` after the fit minus the resident set just before it).  The
  data is loaded from ``.npy`` files so that building it leaves no peak behind.
* :class:`Report` prints Markdown tables and collects the same numbers for ``--json``.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import resource
import subprocess
import sys
import time
import tracemalloc
import warnings

import numpy as np
from threadpoolctl import threadpool_limits


@contextlib.contextmanager
def limited(threads: int):
    """Every thread pool (BLAS, OpenMP) capped at ``threads``; warnings silenced."""
    with threadpool_limits(threads), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def alternate(fns: dict, repeat: int) -> dict:
    """``{name: (best seconds, last output)}``, the fitters run round-robin ``repeat`` times."""
    best = {k: math.inf for k in fns}
    out = {}
    for _ in range(repeat):
        for k, fn in fns.items():
            t = time.perf_counter()
            out[k] = fn()
            best[k] = min(best[k], time.perf_counter() - t)
    return {k: (best[k], out[k]) for k in fns}


def marginal(run, m: int, repeat: int) -> float:
    """Seconds per iteration: best of (time of ``run(2m)``) minus best of ``run(m)``, over m."""
    r = alternate({"m": lambda: run(m), "2m": lambda: run(2 * m)}, repeat)
    return max(r["2m"][0] - r["m"][0], 0.0) / m


def accepts_no_se(fit, **kw) -> bool:
    """Whether ``fit(cov_type=None, **kw)`` skips the standard errors (probed, guarded)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = fit(cov_type=None, **kw)
    except Exception:  # noqa: BLE001 - an API being ported may reject it
        return False
    return str(getattr(res, "cov_type", "")).lower() == "none"


# -- memory in a child process ------------------------------------------------------

def save_arrays(directory: str, **arrays) -> int:
    """Save the input arrays for the memory children; returns their total bytes."""
    for k, a in arrays.items():
        np.save(os.path.join(directory, f"{k}.npy"), a)
    return int(sum(np.asarray(a).nbytes for a in arrays.values()))


def load_arrays(directory: str) -> dict:
    return {f[:-4]: np.load(os.path.join(directory, f))
            for f in sorted(os.listdir(directory)) if f.endswith(".npy")}


def _status(key: str) -> float:
    """A /proc/self/status memory field in bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return float(line.split()[1]) * 1024
    return float("nan")  # pragma: no cover


def _reset_peak() -> bool:
    """Reset the peak resident set (Linux >= 4.0: ``5 > /proc/self/clear_refs``), so that the
    peak after the fit is the fit's; without it ``ru_maxrss`` includes the imports."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def child_main(name: str, how: str, fitters: dict) -> None:
    """In the child: run ``fitters[name](1)`` once, print a JSON line with its peak memory."""
    fn = fitters[name]
    with limited(1):
        a = np.ones((256, 256))
        a @ a  # thread pools and BLAS buffers exist before the baseline
        if how == "traced":
            tracemalloc.start()
            fn(1)
            out = {"traced_peak": tracemalloc.get_traced_memory()[1]}
            tracemalloc.stop()
        else:
            reset = _reset_peak()
            before = _status("VmRSS")
            fn(1)
            peak = _status("VmHWM") if reset else \
                resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024.0
            out = {"rss_before": before, "rss_peak": peak, "rss_growth": max(peak - before, 0.0),
                   "peak_reset": reset}
    print(json.dumps(out))


def memory(script: str, name: str, data_dir: str, extra_args=()) -> dict:
    """Peak memory of fitter ``name``: two fresh children (tracemalloc; resident set)."""
    out = {}
    for how in ("traced", "rss"):
        cmd = [sys.executable, script, "--child", name, "--child-mem", how,
               "--child-data", data_dir, *extra_args]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            out["error"] = r.stderr.strip().splitlines()[-1] if r.stderr.strip() else "failed"
            continue
        out.update(json.loads(r.stdout.strip().splitlines()[-1]))
    return out


def add_common_args(ap) -> None:
    ap.add_argument("--quick", action="store_true", help="small sizes, one repetition")
    ap.add_argument("--repeat", type=int, default=None, help="repetitions (best is kept)")
    ap.add_argument("--threads", default=None, help="thread counts, default '1,<all cores>'")
    ap.add_argument("--json", default=None, metavar="PATH", help="also write the numbers here")
    ap.add_argument("--no-memory", action="store_true", help="skip the memory children")
    ap.add_argument("--child", help=argparse_hidden())
    ap.add_argument("--child-mem", help=argparse_hidden())
    ap.add_argument("--child-data", help=argparse_hidden())


def argparse_hidden():
    import argparse

    return argparse.SUPPRESS


def thread_list(arg, cores: int) -> list[int]:
    if arg:
        return [int(t) for t in arg.split(",")]
    return sorted({1, max(2, cores)}) if cores >= 2 else [1, 2]


# -- output ----------------------------------------------------------------------

def fmt(x, spec: str = ".3g") -> str:
    if x is None:
        return "-"
    if isinstance(x, str):
        return x
    if isinstance(x, (int, np.integer)):
        return f"{x:,}"
    if not np.isfinite(x):
        return "-"
    return format(float(x), spec)


def ratio(a, b) -> float:
    """a / b, NaN when either is missing."""
    if a is None or b is None or not np.isfinite(a) or not np.isfinite(b) or b == 0:
        return float("nan")
    return a / b


class Report:
    """Markdown tables on stdout; the same rows (unformatted) for ``--json``."""

    def __init__(self, script: str, args, machine):
        self.data = {"script": os.path.basename(script), "args": vars(args),
                     "machine": machine.to_dict(), "tables": []}
        self.machine = machine

    def text(self, s: str = "") -> None:
        print(s, flush=True)

    def table(self, title: str, headers: list[str], rows: list[list], formats=None,
              note: str | None = None) -> None:
        formats = formats or {}
        print(f"\n**{title}**\n")
        print("| " + " | ".join(headers) + " |")
        print("|" + "|".join("---" if i == 0 else "---:" for i in range(len(headers))) + "|")
        for r in rows:
            cells = [fmt(v, formats.get(h, ".3g")) for h, v in zip(headers, r, strict=True)]
            print("| " + " | ".join(cells) + " |")
        if note:
            print(f"\n{note}")
        sys.stdout.flush()
        self.data["tables"].append({"title": title, "headers": headers, "note": note,
                                    "rows": [[_plain(v) for v in r] for r in rows]})

    def write(self, path: str | None) -> None:
        self.data["machine"]["load_after"] = os.getloadavg()
        if path:
            with open(path, "w") as f:
                json.dump(self.data, f, indent=1, default=_plain)
            print(f"\nwrote {path}")


def _plain(v):
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating, float)):
        return float(v) if np.isfinite(v) else None
    if isinstance(v, np.ndarray):
        return v.tolist()
    return v


# -- the tables every script prints ------------------------------------------------

def headline(report: Report, title: str, fitters: dict, ref: str, threads: list[int],
             repeat: int, pass_bytes: float, note: str | None = None) -> dict:
    """End-to-end public-API fits with each thread count, alternated, best of ``repeat``.

    ``fitters``: ``{name: fn(threads) -> {"llf": ..., "n_iter": ...}}``; ``ref`` names the
    peer the ratios are taken against (peer seconds / this fitter's seconds, so > 1 means
    faster than the peer).  "x pass" is the seconds over one read of the input at the
    measured bandwidth: how many passes over the data the whole fit costs.
    """
    times: dict = {k: {} for k in fitters}
    outs: dict = {}
    for t in threads:
        with limited(t):
            r = alternate({k: (lambda f=f, t=t: f(t)) for k, f in fitters.items()}, repeat)
        for k, (sec, out) in r.items():
            times[k][t] = sec
            outs[k] = out
    t1, tn = threads[0], threads[-1]
    pass_s = report.machine.byte_seconds(pass_bytes)
    best_llf = max(o["llf"] for o in outs.values() if o.get("llf") is not None)
    headers = ["fitter"] + [f"s ({t} thr)" for t in threads]
    if len(threads) > 1:
        headers.append(f"speed-up {tn} vs {t1}")
    headers += [f"peer / this ({t} thr)" for t in threads]
    headers += [f"x pass ({tn} thr)", "iterations", "llf - best"]
    rows = []
    for k in fitters:
        row = [k] + [times[k][t] for t in threads]
        if len(threads) > 1:
            row.append(ratio(times[k][t1], times[k][tn]))
        row += [ratio(times[ref][t], times[k][t]) for t in threads]
        row += [ratio(times[k][tn], pass_s), outs[k].get("n_iter"),
                outs[k]["llf"] - best_llf if outs[k].get("llf") is not None else None]
        rows.append(row)
    fm = {h: ".3g" for h in headers}
    fm["llf - best"] = ".2e"
    report.table(title, headers, rows, fm,
                 note=f"peer = {ref}; 'peer / this' > 1 means faster than the peer.  "
                 + (note + "  " if note else "") + f"One pass over the input "
                 f"({pass_bytes / 1e6:.3g} MB) at the measured bandwidth: {pass_s * 1e3:.2f} ms.")
    return {"times": times, "outs": outs}


def per_iteration(report: Report, title: str, runners: dict, ref: str, threads: list[int],
                  m: int, repeat: int, flops: float, nbytes: float,
                  note: str | None = None, n_exp: float = 0.0) -> dict:
    """Marginal seconds per iteration: (t(2m) - t(m)) / (iterations(2m) - iterations(m)).

    ``runners``: ``{name: fn(maxiter, threads) -> iterations actually run}``, or
    ``(iterations, seconds)`` when the fitter's own clock must replace the wall time (a fit
    that cannot skip its standard errors reports its engine time).  The limits are
    flops / DGEMM rate with the same threads (+ ``n_exp`` / numpy's exp rate) and
    nbytes / read bandwidth.
    """
    per: dict = {k: {} for k in runners}
    for t in threads:
        with limited(t):
            for k, fn in runners.items():
                r = alternate({"m": lambda fn=fn, t=t: fn(m, t),
                               "2m": lambda fn=fn, t=t: fn(2 * m, t)}, repeat)
                (s1, o1), (s2, o2) = r["m"], r["2m"]
                if isinstance(o1, tuple):
                    (o1, s1), (o2, s2) = o1, o2
                # a non-positive difference means the noise exceeded it: reported as "-"
                per[k][t] = (s2 - s1) / (o2 - o1) if o2 > o1 and s2 > s1 else float("nan")
    t1, tn = threads[0], threads[-1]
    mach = report.machine
    flop_s = mach.flop_seconds(flops, tn) + n_exp / mach.exp_per_s
    headers = ["fitter"] + [f"ms/iter ({t} thr)" for t in threads]
    if len(threads) > 1:
        headers.append(f"speed-up {tn} vs {t1}")
    headers += [f"peer / this ({t} thr)" for t in threads]
    headers += [f"x flop limit ({tn} thr)", "x byte limit"]
    rows = []
    for k in runners:
        row = [k] + [per[k][t] * 1e3 for t in threads]
        if len(threads) > 1:
            row.append(ratio(per[k][t1], per[k][tn]))
        row += [ratio(per[ref][t], per[k][t]) for t in threads]
        row += [ratio(per[k][tn], flop_s),
                ratio(per[k][tn], mach.byte_seconds(nbytes))]
        rows.append(row)
    report.table(title, headers, rows,
                 note=f"peer = {ref}.  " + (note + "  " if note else "") +
                 f"Model of one iteration: {flops / 1e9:.3g} GFLOP"
                 + (f" + {n_exp / 1e6:.3g} M exp" if n_exp else "") +
                 f" -> {flop_s * 1e3:.3g} ms at the DGEMM rate with {tn} threads"
                 + (" (+ numpy's exp rate)" if n_exp else "")
                 + f"; {nbytes / 1e6:.3g} MB -> {mach.byte_seconds(nbytes) * 1e3:.3g} ms "
                 f"at the read bandwidth.")
    return per


def memory_table(report: Report, title: str, script: str, names: list[str], data_dir: str,
                 input_bytes: float, extra_args=()) -> dict:
    rows, out = [], {}
    for k in names:
        r = memory(script, k, data_dir, extra_args)
        out[k] = r
        rows.append([k.split("::")[-1], input_bytes / 2**20,
                     r.get("traced_peak", float("nan")) / 2**20,
                     ratio(r.get("traced_peak"), input_bytes),
                     r.get("rss_growth", float("nan")) / 2**20,
                     ratio(r.get("rss_growth"), input_bytes), r.get("error", "")])
    report.table(title, ["fitter", "input MiB", "traced peak MiB", "traced / input",
                         "RSS growth MiB", "RSS growth / input", "error"], rows,
                 note="Each fit runs once, with 1 thread, in two fresh processes: tracemalloc's "
                      "peak (Python and numpy allocations) in one, the peak resident set "
                      "(ru_maxrss) minus the resident set just before the fit in the other.")
    return out
