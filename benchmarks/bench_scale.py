"""Out-of-core and distributed EM: rows per second per EM iteration of a Gaussian mixture,
in memory, streamed from Parquet, and on a local Dask cluster of 1 and 2 workers.

    python benchmarks/bench_scale.py --quick            # n = 2e5 (a minute)
    python benchmarks/bench_scale.py --sizes 1e6,1e7    # what was run for docs/scale.md
    python benchmarks/bench_scale.py --sizes 1e8 --no-memory-fit   # a 1e8-row file

The data (k = 4 well-separated components in d = 4 dimensions) are generated row group by
row group straight into one Parquet file (``--rows-per-group``, default 500,000), so
generating 1e8 rows needs no more memory than one row group.  Every fitter is the public
API end to end: ``emstats.GaussianMixture(X)`` on the file read into memory,
``emstats.outofcore.gmm(path)`` (streamed in this process), and the same with
``executor=DaskExecutor(n_workers=w)`` (worker processes, one thread each; the
partitions persisted on the workers when they fit in their memory).

Seconds per iteration are marginal: the best time of ``fit(maxiter=2m)`` minus that of
``fit(maxiter=m)``, over m, with plain EM from one fixed start and no standard errors,
so construction, start values and the first pass cancel out (the construction, with
its first pass over the data, is timed separately).  "x pass" is the iteration's time
over one read of the data at the machine's measured bandwidth (the in-memory floor).

``--spark`` adds Spark MLlib's ``GaussianMixture`` (``pyspark``, ``local[2]``) on the
same Parquet file: seconds per iteration measured the same way (``maxIter``) and its
final log-likelihood after 2m iterations beside emstats' after 2m iterations from the
same k-means++-free random start it chooses (the numbers are not the same start, so
compare the rates, and the log-likelihoods only as a sanity check).

Measured on a shared, loaded machine: the figures are what they were under that load.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import warnings

import distributed
import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import _machine  # noqa: E402
from _harness import Report, _plain, fmt, limited  # noqa: E402

import emstats  # noqa: E402
from emstats.em.executors import DaskExecutor  # noqa: E402

K, D = 4, 4
MEANS = np.array([[0.0, 0, 0, 0], [4, 0, 0, 0], [0, 4, 0, 0], [0, 0, 4, 4]])


def write_parquet(path: str, n: int, rows_per_group: int, seed: int = 0) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    schema = pa.schema([(f"x{j}", pa.float64()) for j in range(D)])
    with pq.ParquetWriter(path, schema) as w:
        done = 0
        while done < n:
            m = min(rows_per_group, n - done)
            z = rng.integers(0, K, m)
            X = MEANS[z] + rng.normal(size=(m, D))
            w.write_table(pa.table({f"x{j}": X[:, j] for j in range(D)}, schema=schema))
            done += m


def start_params() -> emstats.GMMParams:
    return emstats.GMMParams(np.full(K, 1.0 / K), MEANS + 0.5,
                             np.broadcast_to(np.eye(D) * 1.5, (K, D, D)).copy())


def per_iteration(model, m: int, repeat: int) -> tuple[float, float]:
    """(marginal seconds per EM iteration, llf after 2m iterations) of ``model``."""
    best = {}
    llf = np.nan
    for _ in range(repeat):
        for it in (m, 2 * m):
            t = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                res = model.fit(method="em", maxiter=it, tol=1e-300, cov_type=None, n_init=1,
                                start_params=start_params())
            best[it] = min(best.get(it, np.inf), time.perf_counter() - t)
            if it == 2 * m:
                llf = res.llf
    return max(best[2 * m] - best[m], 0.0) / m, llf


def per_pass(model, passes: int) -> tuple[float, float]:
    """(median seconds of one EM iteration -- an E-step pass and the M-step -- over
    ``passes`` iterations from the fixed start, the log-likelihood of the last E-step): a
    direct timing for sizes where the marginal one needs too many passes."""
    from emstats.em.problem import Problem

    problem = Problem(model, n_threads=1)
    params = model.check_start(start_params()) if hasattr(model, "check_start") \
        else start_params()
    times, llf = [], np.nan
    for _ in range(passes):
        t = time.perf_counter()
        stats, llf = problem.e_step(params)
        params = problem.m_step(stats, params)
        times.append(time.perf_counter() - t)
    return float(np.median(times)), float(llf)


def spark_per_iteration(path: str, m: int, repeat: int,
                        memory: str = "4g") -> tuple[float, float, float]:
    from pyspark.ml.clustering import GaussianMixture as SparkGMM
    from pyspark.ml.feature import VectorAssembler
    from pyspark.sql import SparkSession

    spark = (SparkSession.builder.master("local[2]").appName("bench_scale")
             .config("spark.driver.memory", memory)
             .config("spark.local.dir", os.path.dirname(path))
             .config("spark.ui.showConsoleProgress", "false").getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    t = time.perf_counter()
    df = VectorAssembler(inputCols=[f"x{j}" for j in range(D)], outputCol="features") \
        .transform(spark.read.parquet(path)).select("features").cache()
    df.count()
    build = time.perf_counter() - t
    best, llf = {}, np.nan
    for _ in range(repeat):
        for it in (m, 2 * m):
            t = time.perf_counter()
            fit = SparkGMM(k=K, maxIter=it, tol=0.0, seed=1).fit(df)
            best[it] = min(best.get(it, np.inf), time.perf_counter() - t)
            if it == 2 * m:
                llf = fit.summary.logLikelihood
    spark.stop()
    return max(best[2 * m] - best[m], 0.0) / m, llf, build


def limits(path_dir: str) -> str:
    """The machine's memory, disk and load (what bounds the sizes that can run)."""
    import shutil

    with open("/proc/meminfo") as f:
        info = {ln.split(":")[0]: float(ln.split()[1]) * 1024 for ln in f}
    disk = shutil.disk_usage(path_dir)
    return (f"memory {info['MemTotal'] / 2**30:.1f} GiB (available "
            f"{info['MemAvailable'] / 2**30:.1f}); disk free at {path_dir}: "
            f"{disk.free / 2**30:.0f} GiB; cores {os.cpu_count()}; load "
            + "/".join(f"{x:.1f}" for x in os.getloadavg()))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="n = 2e5, one repetition")
    ap.add_argument("--sizes", default="1e6,1e7", help="comma-separated row counts")
    ap.add_argument("--rows-per-group", type=float, default=5e5)
    ap.add_argument("--iters", type=int, default=5, help="m of the marginal timing")
    ap.add_argument("--repeat", type=int, default=None)
    ap.add_argument("--workers", default="1,2", help="Dask cluster sizes")
    ap.add_argument("--no-memory-fit", action="store_true",
                    help="skip the in-memory fit (for data that do not fit)")
    ap.add_argument("--no-streamed", action="store_true", help="skip the streamed fit")
    ap.add_argument("--passes", type=int, default=None,
                    help="time this many EM iterations directly (median) instead of the "
                         "marginal timing (for 1e8 rows)")
    ap.add_argument("--spark", action="store_true", help="add Spark MLlib (pyspark)")
    ap.add_argument("--spark-memory", default="4g", help="Spark's driver memory (local mode)")
    ap.add_argument("--json", default=None)
    ap.add_argument("--dir", default=None, help="where to write the Parquet files")
    ap.add_argument("--keep", action="store_true",
                    help="keep the Parquet files in --dir and reuse them when present")
    a = ap.parse_args()
    sizes = [200_000] if a.quick else [int(float(s)) for s in a.sizes.split(",")]
    repeat = a.repeat or (1 if a.quick else 2)
    rpg = int(min(a.rows_per_group, 1e5 if a.quick else a.rows_per_group))
    workers = [int(w) for w in a.workers.split(",") if w]
    mach = _machine.measure(a.quick)
    rep = Report(__file__, a, mach)
    rep.text(mach.markdown())
    rep.text("\nMeasured under load on a shared machine.")
    rows = []
    headers = ["n", "fitter", "construct s", "s / iteration", "rows / s", "x pass", "llf"]

    def save():
        if a.json:               # after every row: a long run keeps what it measured
            part = dict(rep.data, tables=[{"title": "partial", "headers": headers,
                                           "rows": [[_plain(v) for v in r] for r in rows]}])
            with open(a.json + ".partial", "w") as f:
                json.dump(part, f, indent=1, default=_plain)

    tmp = None if a.keep and a.dir else tempfile.TemporaryDirectory(dir=a.dir)
    where = a.dir if tmp is None else tmp.name
    for n in sizes:
        path = os.path.join(where, f"gmm_{n}_{rpg}.parquet")
        if not (a.keep and os.path.exists(path)):
            t = time.perf_counter()
            write_parquet(path, n, rpg)
            rep.text(f"\nn = {n:,}: wrote {os.path.getsize(path) / 2**20:.0f} MiB of Parquet "
                     f"({-(-n // rpg)} row groups) in {time.perf_counter() - t:.1f} s")
        else:
            rep.text(f"\nn = {n:,}: reusing {path} ({os.path.getsize(path) / 2**20:.0f} MiB)")
        rep.text("  limits: " + limits(where))
        pass_s = mach.byte_seconds(n * D * 8.0)
        fitters = {}
        if not a.no_memory_fit:
            def in_memory(path=path):
                import pyarrow.parquet as pq

                return emstats.GaussianMixture(pq.read_table(path).to_pandas().to_numpy(), K)
            fitters["in memory"] = in_memory
        if not a.no_streamed:
            fitters["streamed"] = lambda path=path: emstats.outofcore.gmm(path, K,
                                                                          sample_rows=10_000)
        for w in workers:
            def on_dask(path=path, w=w):
                ex = DaskExecutor(n_workers=w, processes=True)
                model = emstats.outofcore.gmm(path, K, sample_rows=10_000, executor=ex)
                chunks = model.data.chunks()    # read, prepared and persisted: not timed
                if chunks.persisted:            # with the iterations
                    distributed.wait(chunks._tasks)
                return model, ex
            fitters[f"Dask, {w} worker{'s' * (w > 1)}"] = on_dask
        for name, make in fitters.items():
            ex = None
            with limited(1):
                t = time.perf_counter()
                model = make()
                if isinstance(model, tuple):
                    model, ex = model
                build = time.perf_counter() - t
                sec, llf = (per_pass(model, a.passes) if a.passes else
                            per_iteration(model, a.iters, repeat))
            if ex is not None:
                mem = ex.cluster_memory()
                persisted = getattr(ex._chunks.get(model.data), "persisted", None)
                ex.close()
                rep.text(f"  {name}: cluster memory limit {mem / 2**30:.1f} GiB, "
                         f"partitions persisted: {persisted}")
            del model
            rows.append([n, name, build, sec, n / sec if sec > 0 else np.nan,
                         sec / pass_s, llf])
            rep.text(f"  {name}: construct {fmt(build)} s, {fmt(sec)} s/iteration, "
                     f"llf {llf:.10g}; load " + "/".join(f"{x:.1f}" for x in os.getloadavg()))
            save()
        if a.spark:
            try:
                sec, llf, build = spark_per_iteration(path, a.iters, repeat, a.spark_memory)
                rows.append([n, "Spark MLlib local[2]", build, sec,
                             n / sec if sec > 0 else np.nan, sec / pass_s, llf])
                rep.text(f"  Spark: cache {fmt(build)} s, {fmt(sec)} s/iteration, "
                         f"llf {llf:.10g}")
            except Exception as err:  # noqa: BLE001 - report, keep the other rows
                rep.text(f"  Spark failed: {type(err).__name__}: {err}")
            save()
    rep.table(f"Gaussian mixture, k = {K}, d = {D}: seconds and rows/s per EM iteration",
              headers, rows, formats={"llf": ".10g", "rows / s": ".3g"},
              note="Kernels with one thread (workers: one thread each).  construct: the "
                   "model's first pass (and the sample for its starts; for Spark, reading "
                   "and caching the vectors).  x pass: seconds per iteration over one read "
                   "of the n x d float64 data at the measured bandwidth.")
    rep.write(a.json)


if __name__ == "__main__":
    main()
