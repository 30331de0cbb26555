"""This machine's limits, measured in the benchmark's own process.

Every benchmark script calls :func:`measure` once, at the start, and expresses its
headline figures as multiples of what is measured here:

* ``dgemm_gflops[t]``: the flop rate of a large matrix product (numpy ``@`` on
  ``size x size`` float64 matrices, ``2 size^3`` flops) with ``t`` BLAS threads
  (``threadpoolctl``), for ``t = 1`` and ``t = `` all cores.  A kernel's flop count
  divided by this rate is the time the machine's best dense arithmetic would need.
* ``read_gbs``: memory bandwidth of one streaming read (``a.sum()`` over an array of
  400+ MB, far larger than the caches); ``copy_gbs`` counts the bytes read and written
  by ``np.copyto``.  A pass over the data's bytes divided by ``read_gbs`` is the time
  one pass over the input can take at best.
* ``exp_per_s``: numpy's vectorised ``exp`` (exponentials per second, one thread), for
  kernels dominated by transcendental functions.

It also records what the numbers depend on: CPU model, cores available to the
process, the load average (the figures are meaningless on a busy machine), numpy's
version, the BLAS/OpenMP libraries loaded (``threadpoolctl.threadpool_info()``) and
whether ``OPENBLAS_CORETYPE`` / ``OMP_NUM_THREADS`` are set.
"""

from __future__ import annotations

import os
import platform
import time
from dataclasses import asdict, dataclass, field

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits


def n_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _best(fn, reps: int) -> float:
    fn()  # warm up (threads started, pages touched)
    best = np.inf
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def dgemm_gflops(threads: int, size: int = 2000, reps: int = 3) -> float:
    """GFLOP/s of a ``size x size`` float64 matrix product with ``threads`` threads."""
    rng = np.random.default_rng(0)
    a, b = rng.random((size, size)), rng.random((size, size))
    with threadpool_limits(threads):
        sec = _best(lambda: a @ b, reps)
    return 2.0 * size**3 / sec / 1e9


def bandwidth_gbs(mb: int = 512, reps: int = 3) -> tuple[float, float]:
    """(read, copy) GB/s over an array of ``mb`` megabytes (copy counts read + write)."""
    a = np.ones(mb * 2**20 // 8)
    b = np.empty_like(a)
    read = _best(lambda: a.sum(), reps)
    copy = _best(lambda: np.copyto(b, a), reps)
    return a.nbytes / read / 1e9, 2 * a.nbytes / copy / 1e9


def exp_rate(n: int = 2_000_000, reps: int = 3) -> float:
    x = -np.random.default_rng(1).random(n) * 30
    out = np.empty_like(x)
    return n / _best(lambda: np.exp(x, out=out), reps)


@dataclass
class Machine:
    cpu: str
    cores: int
    load_before: tuple
    numpy: str
    openblas_coretype: str | None
    omp_num_threads: str | None
    threadpools: list
    dgemm_gflops: dict = field(default_factory=dict)
    read_gbs: float = float("nan")
    copy_gbs: float = float("nan")
    exp_per_s: float = float("nan")
    dgemm_size: int = 2000
    bandwidth_mb: int = 512

    # -- limits -------------------------------------------------------------------
    def flop_seconds(self, flops: float, threads: int) -> float:
        """Seconds the large-DGEMM rate with ``threads`` threads needs for ``flops``."""
        t = min(threads, max(self.dgemm_gflops))
        rate = self.dgemm_gflops.get(t) or self.dgemm_gflops[max(self.dgemm_gflops)]
        return flops / (rate * 1e9)

    def byte_seconds(self, nbytes: float) -> float:
        """Seconds one streaming read of ``nbytes`` takes at the measured bandwidth."""
        return nbytes / (self.read_gbs * 1e9)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["dgemm_gflops"] = {str(k): v for k, v in self.dgemm_gflops.items()}
        d["load_now"] = os.getloadavg()
        return d

    def markdown(self) -> str:
        libs = "; ".join(f"{p.get('internal_api')} {p.get('version')} "
                         f"({p.get('threading_layer', p.get('architecture', ''))}, "
                         f"{p.get('num_threads')} thr)" for p in self.threadpools)
        rows = [
            ("CPU", f"{self.cpu}, {self.cores} cores available"),
            ("load average (1, 5, 15 min) before / now",
             f"{'/'.join(f'{x:.2f}' for x in self.load_before)} / "
             f"{'/'.join(f'{x:.2f}' for x in os.getloadavg())}"),
            ("numpy; thread pools", f"{self.numpy}; {libs}"),
            ("OPENBLAS_CORETYPE; OMP_NUM_THREADS",
             f"{self.openblas_coretype or 'unset'}; {self.omp_num_threads or 'unset'}"),
        ]
        rows += [(f"DGEMM {self.dgemm_size}x{self.dgemm_size}, {t} thread(s)", f"{r:.1f} GFLOP/s")
                 for t, r in sorted(self.dgemm_gflops.items())]
        rows += [(f"memory read ({self.bandwidth_mb} MB sum), 1 thread",
                  f"{self.read_gbs:.1f} GB/s"),
                 (f"memory copy ({self.bandwidth_mb} MB, read + write)",
                  f"{self.copy_gbs:.1f} GB/s"),
                 ("numpy exp, 1 thread", f"{self.exp_per_s / 1e6:.0f} M/s")]
        lines = ["| machine | measured in this run |", "|---|---|"]
        lines += [f"| {a} | {b} |" for a, b in rows]
        return "\n".join(lines)


def measure(quick: bool = False) -> Machine:
    """Measure this machine now (a few seconds; ``quick`` uses smaller arrays)."""
    m = Machine(
        cpu=cpu_model(), cores=n_cores(), load_before=os.getloadavg(),
        numpy=np.__version__, openblas_coretype=os.environ.get("OPENBLAS_CORETYPE"),
        omp_num_threads=os.environ.get("OMP_NUM_THREADS"), threadpools=threadpool_info(),
        dgemm_size=1000 if quick else 2000, bandwidth_mb=128 if quick else 512,
    )
    for t in sorted({1, m.cores}):
        m.dgemm_gflops[t] = dgemm_gflops(t, m.dgemm_size)
    m.read_gbs, m.copy_gbs = bandwidth_gbs(m.bandwidth_mb)
    m.exp_per_s = exp_rate()
    return m


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description="Measure this machine's limits")
    ap.add_argument("--quick", action="store_true")
    print(measure(ap.parse_args().quick).markdown())
