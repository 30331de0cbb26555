"""Out-of-core fits: Parquet streamed row group by row group, and a Dask-distributed E-step.

The witness is the in-memory fit of the same data: EM's statistics are sums over units,
so reading them in pieces, on one machine or on a cluster, changes only the order of the
additions.  Estimates, log-likelihood and Louis standard errors must agree to 1e-9
relative (observed: ~1e-14; the stopping rule is the same, and so is every iterate up to
rounding).
"""

from __future__ import annotations

import os
import signal
import warnings

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("dask")
pytest.importorskip("distributed")
pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

import dask.array as da  # noqa: E402
import dask.dataframe as dd  # noqa: E402
import distributed  # noqa: E402

import emstats  # noqa: E402
from emstats import outofcore  # noqa: E402
from emstats.em.executors import DaskExecutor, DistributedError  # noqa: E402
from emstats.exceptions import DataError  # noqa: E402

RTOL = 1e-9


def _rel(a, b) -> float:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-300)))


def _same(res, ref, rtol=RTOL):
    assert _rel(res.params, ref.params) < rtol
    assert abs(res.llf - ref.llf) < rtol * abs(ref.llf)
    assert _rel(res.bse, ref.bse) < rtol
    assert res.nobs == ref.nobs


@pytest.fixture(scope="module")
def frame():
    rng = np.random.default_rng(14)
    n = 2400
    z = rng.random(n) < 0.4
    ab = np.where(z[:, None], rng.normal([0, 0], [1.0, 0.8], (n, 2)),
                  rng.normal([3, 1.5], [0.7, 1.1], (n, 2)))
    df = pd.DataFrame(ab, columns=["a", "b"])
    df["x"] = rng.normal(size=n)
    df["g"] = rng.choice(["u", "v", "w"], n)
    df["y"] = np.maximum(0.3 + df.x + (df.g == "v") + rng.normal(size=n), 0.0)
    df["lo"] = np.floor(df.y * 2) / 2
    df["hi"] = df.lo + 0.5
    df.loc[df.lo == 0, "lo"] = np.nan        # left-censored intervals
    return df


@pytest.fixture(scope="module")
def parquet(frame, tmp_path_factory):
    """The frame in two files of several row groups each."""
    d = tmp_path_factory.mktemp("pq")
    half = len(frame) // 2
    for i, part in enumerate((frame.iloc[:half], frame.iloc[half:])):
        pq.write_table(pa.Table.from_pandas(part, preserve_index=False),
                       d / f"part{i}.parquet", row_group_size=500)
    return str(d / "*.parquet")


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=":0") as cluster, \
            distributed.Client(cluster) as c:
        yield c


@pytest.fixture(scope="module")
def gmm_ref(frame):
    return emstats.GaussianMixture(frame[["a", "b"]], 2).fit(n_init=1)


@pytest.fixture(scope="module")
def tobit_ref(frame):
    return emstats.tobit("y ~ x + C(g)", frame, censor_left=0).fit()


# -- streamed in this process -----------------------------------------------------------

def test_gmm_parquet_streamed_equals_in_memory(parquet, gmm_ref):
    m = outofcore.gmm(parquet, 2, columns=["a", "b"])
    assert len(m.data.pieces) == 6              # 2 files x 3 row groups, read one at a time
    res = m.fit(n_init=1)
    _same(res, gmm_ref)
    assert abs(res.icl - gmm_ref.icl) < RTOL * abs(gmm_ref.icl)    # one more pass


def test_tobit_parquet_formula_with_levels_equals_in_memory(parquet, tobit_ref):
    m = outofcore.tobit("y ~ x + C(g)", parquet, censor_left=0)
    res = m.fit()
    _same(res, tobit_ref)
    assert res.model.exog_names == tobit_ref.model.exog_names
    assert (m.n_left, m.n_exact) == (tobit_ref.model.n_left, tobit_ref.model.n_exact)
    assert "Left-censored" in str(res.summary())


def test_intreg_parquet_equals_in_memory(parquet, frame):
    ref = emstats.intreg("lo + hi ~ x", frame).fit()
    _same(outofcore.intreg("lo + hi ~ x", parquet).fit(), ref)


def test_methods_and_stateful_formula(parquet, frame):
    """SQUAREM as the outer loop; a stateful transform (center) learnt over all pieces."""
    ref = emstats.tobit("y ~ center(x) + g", frame, censor_left=0).fit(method="squarem")
    res = outofcore.tobit("y ~ center(x) + g", parquet, censor_left=0).fit(method="squarem")
    _same(res, ref)


def test_rows_needed_in_memory_are_a_clear_error(parquet):
    m = outofcore.gmm(parquet, 2, columns=["a", "b"])
    with pytest.raises(DataError, match="initial partition"):
        m.fit(init=np.zeros(10))
    res = outofcore.tobit("y ~ x", parquet).fit()
    with pytest.raises(DataError, match="not in memory"):
        res.predict()


# -- a Dask cluster -----------------------------------------------------------------------

def test_gmm_on_dask_from_parquet_and_collections(parquet, frame, gmm_ref, client):
    ex = DaskExecutor(client)
    m = outofcore.gmm(parquet, 2, columns=["a", "b"], executor=ex)
    _same(m.fit(n_init=1), gmm_ref)
    ddf = dd.from_pandas(frame[["a", "b"]], npartitions=3)
    _same(outofcore.gmm(ddf, 2, executor=client).fit(n_init=1), gmm_ref)
    arr = da.from_array(frame[["a", "b"]].to_numpy(), chunks=(1000, 1))
    ref = emstats.GaussianMixture(frame[["a", "b"]].to_numpy(), 2).fit(method="squarem",
                                                                          n_init=1)
    _same(outofcore.gmm(arr, 2, executor=ex).fit(method="squarem", n_init=1), ref)


@pytest.mark.parametrize("n_blocks", [3, 6])
def test_incremental_em_streamed_and_on_dask(frame, client, n_blocks, tmp_path):
    """Incremental EM's blocks are groups of whole pieces (the in-memory rule, equal rows,
    at piece boundaries): with row groups of equal size they are the in-memory blocks, so
    the iterates are the same; on the cluster each block visit is one map-reduce."""
    parquet = str(tmp_path / "equal.parquet")
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), parquet,
                   row_group_size=400)                  # 6 row groups of 400 rows
    opts = dict(n_init=1, method="incremental", method_options={"n_blocks": n_blocks})
    ref = emstats.GaussianMixture(frame[["a", "b"]], 2).fit(**opts)
    m = outofcore.gmm(parquet, 2, columns=["a", "b"])
    assert len(m.data.blocks(n_blocks)) == n_blocks
    for ex in (None, client):
        res = outofcore.gmm(parquet, 2, columns=["a", "b"], executor=ex).fit(**opts)
        _same(res, ref)
        assert res.convergence.method == "incremental"
        assert res.convergence.n_iter == ref.convergence.n_iter


def test_tobit_on_dask_persisted_and_reread(parquet, frame, tobit_ref, client):
    for persist in (True, False):
        ex = DaskExecutor(client, persist=persist)
        m = outofcore.tobit("y ~ x + C(g)", parquet, censor_left=0, executor=ex)
        problem_chunks = m.data.chunks()
        assert problem_chunks.persisted is persist
        _same(m.fit(), tobit_ref)
    ddf = dd.from_pandas(frame, npartitions=4)
    _same(outofcore.tobit("y ~ x + C(g)", ddf, censor_left=0, executor=client).fit(),
          tobit_ref)


@pytest.fixture(scope="module")
def processes():
    ex = DaskExecutor(n_workers=2, processes=True, persist=True)
    yield ex
    ex.close()


def test_worker_processes(parquet, tobit_ref, processes):
    """Worker processes: the model, the parameters and the formula's design (with its
    categorical levels) travel pickled."""
    m = outofcore.tobit("y ~ x + C(g)", parquet, censor_left=0, executor=processes)
    _same(m.fit(), tobit_ref)


# -- faults ------------------------------------------------------------------------------

def test_killed_worker_is_recomputed_and_the_fit_unchanged(parquet, tobit_ref, processes):
    """A worker process killed (SIGKILL) during the fit: the nanny restarts it, the
    scheduler recomputes its persisted chunks from the Parquet files, and the fit ends
    where the in-memory fit does."""
    client = processes.client
    m = outofcore.tobit("y ~ x + C(g)", parquet, censor_left=0, executor=processes)
    killed = []

    def kill_one(it, params, ll):
        if it == 2 and not killed:
            addr, pid = sorted(client.run(os.getpid).items())[0]
            os.kill(pid, signal.SIGKILL)
            killed.append(addr)

    res = m.fit(callback=kill_one)
    assert killed
    _same(res, tobit_ref)


def test_lost_cluster_is_a_clear_error_and_the_fit_resumes(parquet, frame, client):
    """No worker left: the pass times out with an error carrying the last completed
    iterate; restarting from it on a restored cluster gives the in-memory fit."""
    ref = emstats.tobit("y ~ x + C(g)", frame, censor_left=0).fit(method="em")
    cluster = client.cluster
    ex = DaskExecutor(client, persist=True, timeout=8)   # generous: a loaded CI machine
    m = outofcore.tobit("y ~ x + C(g)", parquet, censor_left=0, executor=ex)

    def lose_all(it, params, ll):
        if it == 3:
            cluster.scale(0)

    with pytest.raises(DistributedError, match="last completed pass") as info:
        m.fit(method="em", callback=lose_all)
    last = info.value.last_params
    assert last is not None and np.all(np.isfinite(last))
    cluster.scale(2)
    client.wait_for_workers(2)
    res = m.fit(method="em", start_params=last)
    _same(res, ref)
    assert res.convergence.n_iter < ref.convergence.n_iter


# -- hidden Markov models: sequences are not split -----------------------------------------

@pytest.fixture(scope="module")
def sequences(tmp_path_factory):
    rng = np.random.default_rng(7)
    out = []
    for s in range(30):
        state, xs = 0, []
        for _ in range(int(rng.integers(30, 70))):
            state = state if rng.random() < 0.9 else 1 - state
            xs.append(rng.normal((0.0, 3.0)[state], 1.0))
        out.append(pd.DataFrame({"id": f"s{s}", "y": xs}))
    df = pd.concat(out, ignore_index=True)
    d = tmp_path_factory.mktemp("hmm")
    tables = [pa.Table.from_pandas(df[df.id.isin([f"s{i}" for i in range(a, a + 10)])],
                                   preserve_index=False) for a in range(0, 30, 10)]
    with pq.ParquetWriter(d / "whole.parquet", tables[0].schema) as w:
        for t in tables:                  # one row group per 10 whole sequences
            w.write_table(t)
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), d / "cut.parquet",
                   row_group_size=500)
    return df, str(d / "whole.parquet"), str(d / "cut.parquet")


def test_hmm_sequences_streamed_and_on_dask(sequences, client):
    df, whole, _ = sequences
    ref = emstats.hmm("y", 2, data=df, groups="id").fit()
    _same(outofcore.hmm(whole, 2, columns=["y"], groups="id").fit(), ref)
    _same(outofcore.hmm(whole, 2, columns=["y"], groups="id", executor=client).fit(), ref)
    ddf = dd.from_pandas(df, npartitions=1)
    _same(outofcore.hmm(ddf, 2, columns="y", groups="id", executor=client).fit(), ref)


def test_hmm_sequence_straddling_pieces_is_named(sequences):
    df, _, cut = sequences
    with pytest.raises(DataError, match=r"sequence 's\d+' \(id\) straddles .*row group 0\), "
                                        r"rows \d+-499, and .*row group 1\), rows 500-"):
        outofcore.hmm(cut, 2, columns=["y"], groups="id")
    with pytest.raises(DataError, match="give groups="):
        outofcore.hmm(cut, 2, columns=["y"])
    shuffled = pd.concat([df.iloc[:40], df.iloc[200:260], df.iloc[40:200]])
    with pytest.raises(DataError, match=r"rows of sequence 's\d' \(id\) are not contiguous"):
        outofcore.hmm(dd.from_pandas(shuffled, npartitions=1, sort=False), 2, columns=["y"],
                      groups="id")


# -- bad files ------------------------------------------------------------------------------

def test_corrupt_and_mismatched_parquet_name_the_file(frame, tmp_path):
    good = tmp_path / "a.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), good)
    bad = tmp_path / "b.parquet"
    bad.write_bytes(good.read_bytes()[: 200] + b"garbage" * 10)
    with pytest.raises(DataError, match="b.parquet is not a readable Parquet file"):
        outofcore.gmm([str(good), str(bad)], 2, columns=["a", "b"])
    other = tmp_path / "c.parquet"
    pq.write_table(pa.Table.from_pandas(frame.assign(a=frame.a.astype("float32")),
                                        preserve_index=False), other)
    with pytest.raises(DataError, match=r"c.parquet does not have the schema.*'a' is float"):
        outofcore.tobit("y ~ a", [str(good), str(other)])
    with pytest.raises(DataError, match="no Parquet files match"):
        outofcore.gmm(str(tmp_path / "none*.parquet"), 2)
    inf = tmp_path / "inf.parquet"
    pq.write_table(pa.Table.from_pandas(frame.assign(a=np.r_[np.inf, frame.a[1:]]),
                                        preserve_index=False), inf, row_group_size=1000)
    with pytest.raises(DataError, match=r"inf.parquet \(row group 0\): infinite values"):
        outofcore.gmm(str(inf), 2, columns=["a", "b"])


@pytest.mark.parametrize("fit, match", [
    (lambda f: outofcore.tobit("y ~ x", f).fit(),
     r"300 exactly observed response\(s\) leave no residual variation \(the response is "
     "constant"),
    (lambda f: outofcore.tobit("e ~ x", f).fit(),
     "scale's estimate went to zero .* regressors fit them without error"),
    (lambda f: outofcore.mixreg("y ~ x", f, k=2).fit(), r"response 'y' is constant \(1\)"),
    (lambda f: outofcore.mvn(f, columns=["x", "z"]).fit(),
     "column 'z' is equal to a multiple of 'x' plus a constant"),
], ids=["tobit", "tobit-exact-fit", "mixreg", "mvn"])
def test_degenerate_streamed_data_are_data_errors(tmp_path, fit, match):
    """The in-memory models' degenerate-data errors out of core: a constant response (the
    Tobit's scale -> 0 was a FloatingPointError; the mixture's fit a log-likelihood of
    -2e277), a linearly dependent column."""
    x = np.random.default_rng(5).normal(size=300)
    path = tmp_path / "flat.parquet"
    pq.write_table(pa.Table.from_pandas(pd.DataFrame({"y": np.ones(300), "x": x,
                                                      "z": 1.0 - 2.0 * x,
                                                      "e": 10.0 + 2.0 * x}),
                                        preserve_index=False), path, row_group_size=100)
    with pytest.raises(DataError, match=match):
        fit(str(path))


def test_streamed_zero_inflated_separation_and_boundary(tmp_path):
    """Out of core as in memory: zeros separated by x are a DataError naming x (the
    fit had returned a log-likelihood of -42.7 silently); Poisson counts without excess
    zeros (the zero intercept -> -inf, no separation) still fit."""
    rng = np.random.default_rng(6)
    x = rng.normal(size=300)
    sep, ok = tmp_path / "sep.parquet", tmp_path / "ok.parquet"
    for path, y in ((sep, np.where(x > 0, rng.poisson(3, 300) + 1, 0)),
                    (ok, rng.poisson(1.0, 300))):
        pq.write_table(pa.Table.from_pandas(pd.DataFrame({"y": y, "x": x}),
                                            preserve_index=False), path, row_group_size=100)
    with pytest.raises(DataError, match="zero part's regressors separate the zeros .*'x'"):
        outofcore.zeroinfl("y ~ x", str(sep), sample_rows=150).fit()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = outofcore.zeroinfl("y ~ x | 1", str(ok), sample_rows=150).fit()
    assert np.isfinite(res.llf)


# -- memory: bounded by one row group ---------------------------------------------------------

_RSS_CHILD = r"""
import json, resource, sys, warnings
from emstats import outofcore

def peak():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

opts = dict(n_init=1, method="em", maxiter=2, cov_type=None)
with warnings.catch_warnings():
    warnings.simplefilter("ignore")        # not converged in 2 iterations
    outofcore.gmm(sys.argv[1], 2, sample_rows=5000).fit(**opts)     # one row group
    base = peak()
    m = outofcore.gmm(sys.argv[2], 2, sample_rows=5000)             # many row groups
    m.fit(**opts)
print(json.dumps({"base": base, "peak": peak(), "n": m.n, "pieces": len(m.data.pieces)}))
"""


def test_streamed_fit_memory_is_bounded_by_a_row_group(tmp_path):
    """Peak RSS (getrusage, in a fresh process) of a GMM fit streamed from 12 row groups
    exceeds that of the same fit on one row group (which loaded every library and
    allocator pool) by less than 4 row groups of float64 data: the 12-group file never
    needs to be in memory (observed: about 1.5 row groups)."""
    import json
    import subprocess
    import sys

    rows, groups, d = 50_000, 12, 4
    rng = np.random.default_rng(0)

    def table(n):
        z = rng.random(n) < 0.5
        X = np.where(z[:, None], rng.normal(0, 1, (n, d)), rng.normal(2, 1, (n, d)))
        return pa.table({f"x{j}": X[:, j] for j in range(d)})

    pq.write_table(table(rows), tmp_path / "one.parquet")
    with pq.ParquetWriter(tmp_path / "many.parquet", table(1).schema) as w:
        for _ in range(groups):
            w.write_table(table(rows))
    out = subprocess.run([sys.executable, "-c", _RSS_CHILD, str(tmp_path / "one.parquet"),
                          str(tmp_path / "many.parquet")], capture_output=True, text=True,
                         check=True)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    group_bytes = rows * d * 8
    assert r["n"] == rows * groups and r["pieces"] == groups
    extra = (r["peak"] - r["base"]) / group_bytes
    print(f"peak RSS over the one-row-group fit: {extra:.2f} row groups "
          f"({(r['peak'] - r['base']) / 2**20:.1f} MiB; data {groups} row groups)")
    assert extra < 4


# -- zero-inflated and hurdle counts ------------------------------------------------------------

@pytest.fixture(scope="module")
def counts(tmp_path_factory):
    rng = np.random.default_rng(5)
    n = 2000
    df = pd.DataFrame({"x": rng.normal(size=n), "g": rng.choice(["a", "b", "c"], n),
                       "z": rng.normal(size=n)})
    mu = np.exp(0.3 + 0.5 * df.x + 0.4 * (df.g == "b"))
    df["y"] = np.where(rng.random(n) < 1 / (1 + np.exp(0.5 - df.z)), 0, rng.poisson(mu))
    df["ynb"] = np.where(rng.random(n) < 1 / (1 + np.exp(0.5 - df.z)), 0,
                         rng.negative_binomial(2, 2 / (2 + mu)))
    df["e"] = np.log(rng.uniform(1, 2, n))
    df["zo"] = rng.normal(0, 0.3, n)
    path = tmp_path_factory.mktemp("zi") / "counts.parquet"
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), path, row_group_size=600)
    return df, str(path)


def test_zeroinfl_and_hurdle_streamed_and_on_dask(counts, client):
    df, path = counts
    ref = emstats.zeroinfl("y ~ x + C(g) | z", df).fit()
    _same(outofcore.zeroinfl("y ~ x + C(g) | z", path).fit(), ref)
    ref = emstats.hurdle("y ~ x + C(g) | z", df).fit()
    _same(outofcore.hurdle("y ~ x + C(g) | z", path, executor=client).fit(), ref)


@pytest.mark.parametrize("kind, formula, kw", [
    ("zeroinfl", "y ~ x + C(g) | z",
     dict(dist="geometric", link="probit", offset="e", zero_offset="zo")),
    ("zeroinfl", "ynb ~ x + C(g) | z", dict(dist="negbin", link="cloglog")),
    ("hurdle", "y ~ x + C(g) | z", dict(zero_dist="negbin", zero_offset="zo")),
    ("hurdle", "ynb ~ x | z", dict(dist="negbin", link="probit", offset="e")),
])
def test_count_links_offsets_and_zero_dists_out_of_core(counts, client, kind, formula, kw):
    """The zero part's link, its offset, the geometric and the count hurdles: streamed
    and on the cluster, the in-memory fit."""
    df, path = counts
    ref = getattr(emstats, kind)(formula, df, **kw).fit()
    for ex in (None, client):
        res = getattr(outofcore, kind)(formula, path, executor=ex, **kw).fit()
        _same(res, ref)
        assert res.model.param_names == ref.model.param_names


# -- the multivariate normal with missing values ---------------------------------------------------

def test_mvn_patterns_from_one_pass_equal_in_memory(tmp_path, client):
    rng = np.random.default_rng(8)
    n, d = 2000, 4
    X = rng.multivariate_normal(np.arange(d), np.eye(d) + 0.5, size=n)
    miss = rng.random((n, d)) < 0.15
    miss[:, 0] = False
    X[miss] = np.nan
    df = pd.DataFrame(X, columns=list("abcd"))
    path = tmp_path / "mvn.parquet"
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), path, row_group_size=600)
    ref = emstats.MVN(df).fit()
    for ex in (None, client):
        res = outofcore.mvn(str(path), executor=ex).fit()
        _same(res, ref)
        assert res.model.pattern_table().equals(ref.model.pattern_table())
        assert abs(res.little_test.statistic - ref.little_test.statistic) < \
            RTOL * ref.little_test.statistic
    assert "% of the values are missing" in str(res.summary())


# -- mixtures of regressions -------------------------------------------------------------------

@pytest.fixture(scope="module")
def mixdata(tmp_path_factory):
    """Groups of 4 rows sharing a component; row groups of 400 rows hold whole groups."""
    rng = np.random.default_rng(2)
    n = 2400
    x = rng.uniform(0, 10, n)
    df = pd.DataFrame({"x": x, "g": rng.choice(["u", "v"], n), "c": rng.normal(size=n)})
    df["id"] = np.repeat(np.arange(n // 4), 4)
    comp = np.repeat(rng.integers(0, 2, n // 4), 4)
    df["y"] = np.where(comp == 1, 1 + 2 * x, 12 - x) + rng.normal(0, 1, n) + 0.5 * (df.g == "v")
    df["cnt"] = rng.poisson(np.exp(np.where(comp == 1, 0.2 + 0.1 * x, 1.5 - 0.05 * x)))
    path = tmp_path_factory.mktemp("mix") / "mix.parquet"
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), path, row_group_size=400)
    return df, str(path)


@pytest.mark.parametrize("formula, kw", [
    ("y ~ x", {}),
    ("y ~ x", dict(groups="id", fixed="~ C(g)")),
    ("cnt ~ x", dict(family="poisson", concomitant="~ c")),
])
def test_mixreg_streamed_and_on_dask_equal_in_memory(mixdata, client, formula, kw):
    df, path = mixdata
    ref = emstats.mixreg(formula, df, k=2, **kw).fit(n_init=2)
    for ex in (None, client):
        res = outofcore.mixreg(formula, path, k=2, executor=ex, **kw).fit(n_init=2)
        _same(res, ref)
        assert abs(res.icl - ref.icl) < RTOL * abs(ref.icl)          # one more pass
        assert _rel(res.prior, ref.prior) < RTOL
        assert res.model.param_names == ref.model.param_names
    assert res.model.n_units_total == ref.model.n_units_total


def test_mixreg_group_straddling_pieces_is_named(mixdata, tmp_path):
    df, _ = mixdata
    path = tmp_path / "cut.parquet"
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), path, row_group_size=398)
    with pytest.raises(DataError, match=r"group 99 \(id\) has rows in .*row group 0\), rows "
                       r"396, 397 and in .*row group 1\), rows 0, 1: a group's rows must lie "
                       "within one row group"):
        outofcore.mixreg("y ~ x", str(path), k=2, groups="id")
    m = outofcore.mixreg("y ~ x", mixdata[1], k=2)
    with pytest.raises(DataError, match="initial labels need the rows"):
        m.fit(init=np.zeros(2400, dtype=int))
    with pytest.raises(DataError, match="needs the rows in memory"):
        m.fit(method="cem")


# -- robust and clustered standard errors out of core ----------------------------------------------

@pytest.fixture(scope="module")
def sandwich_data(tmp_path_factory):
    """Rows of every kind the models need, with clusters of 6 rows; row groups of 250 rows
    cut through some clusters (a cluster may span pieces)."""
    rng = np.random.default_rng(1)
    n = 1200
    df = pd.DataFrame({"x": rng.normal(size=n), "g": rng.choice(list("abc"), n),
                       "z": rng.normal(size=n)})
    df["a"] = rng.normal(size=n) + 3 * (rng.random(n) < 0.5)
    df["b"] = rng.normal(size=n) + 0.5 * df.a
    df["y"] = np.maximum(0.3 + df.x + rng.normal(size=n), 0.0)
    df["lo"] = np.floor(df.y * 2) / 2
    df["hi"] = df.lo + 0.5
    df.loc[df.lo == 0, "lo"] = np.nan
    df["cnt"] = np.where(rng.random(n) < 0.3, 0, rng.poisson(np.exp(0.3 + 0.5 * df.x)))
    df["cl"] = np.repeat(np.arange(n // 6), 6)
    df["w"] = rng.integers(1, 3, n).astype(float)
    comp = rng.integers(0, 2, n)
    df["ym"] = np.where(comp == 1, 1 + 2 * df.x, 4 - df.x) + rng.normal(0, 0.5, n)
    df.loc[rng.random(n) < 0.1, "b"] = np.nan
    path = tmp_path_factory.mktemp("sandwich") / "s.parquet"
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), path, row_group_size=250)
    return df, str(path)


_SANDWICH = {
    "gmm": (lambda df: emstats.GaussianMixture(df[["a", "x"]], 2),
            lambda p, ex: outofcore.gmm(p, 2, columns=["a", "x"], executor=ex),
            dict(n_init=1)),
    "tobit": (lambda df: emstats.tobit("y ~ x + C(g)", df, censor_left=0),
              lambda p, ex: outofcore.tobit("y ~ x + C(g)", p, censor_left=0,
                                            executor=ex), {}),
    "intreg": (lambda df: emstats.intreg("lo + hi ~ x", df, weights="w"),
               lambda p, ex: outofcore.intreg("lo + hi ~ x", p, weights="w", executor=ex), {}),
    "zeroinfl": (lambda df: emstats.zeroinfl("cnt ~ x | z", df),
                 lambda p, ex: outofcore.zeroinfl("cnt ~ x | z", p, executor=ex), {}),
    "hurdle": (lambda df: emstats.hurdle("cnt ~ x | z", df, weights="w"),
               lambda p, ex: outofcore.hurdle("cnt ~ x | z", p, weights="w", executor=ex), {}),
    "mixreg": (lambda df: emstats.mixreg("ym ~ x", df, k=2),
               lambda p, ex: outofcore.mixreg("ym ~ x", p, k=2, executor=ex), dict(n_init=1)),
    "mvn": (lambda df: emstats.MVN(df[["a", "b"]]),
            lambda p, ex: outofcore.mvn(p, columns=["a", "b"], executor=ex), {}),
}


@pytest.mark.parametrize("name", list(_SANDWICH))
def test_robust_and_cluster_sandwich_out_of_core(sandwich_data, client, name):
    """cov_type='robust' and 'cluster' (groups= a column name out of core): the meat is one
    more pass; the in-memory sandwich's standard errors, streamed and on the cluster."""
    df, path = sandwich_data
    memory, streamed, kw = _SANDWICH[name]
    for cov_type in ("robust", "cluster"):
        ref = memory(df).fit(cov_type=cov_type, **kw,
                             groups=df["cl"].to_numpy() if cov_type == "cluster" else None)
        for ex in (None, client):
            res = streamed(path, ex).fit(cov_type=cov_type, **kw,
                                         groups="cl" if cov_type == "cluster" else None)
            _same(res, ref)
            assert res.cov_type == ref.cov_type
            if cov_type == "cluster":
                assert res.extra["n_clusters"] == ref.extra["n_clusters"] == 200


def test_hmm_cluster_sandwich_out_of_core(sequences, client):
    """HMM sequences are the units; clusters of whole sequences (robust: each sequence)."""
    df, whole, _ = sequences
    df = df.assign(site=df.id.str[1:].astype(int) // 3)
    path = os.path.join(os.path.dirname(whole), "sites.parquet")
    tables = [pa.Table.from_pandas(df[df.id.isin([f"s{i}" for i in range(a, a + 10)])],
                                   preserve_index=False) for a in range(0, 30, 10)]
    with pq.ParquetWriter(path, tables[0].schema) as w:
        for t in tables:
            w.write_table(t)
    for cov_type, groups in (("robust", None), ("cluster", "site")):
        ref = emstats.hmm("y", 2, data=df, groups="id").fit(
            cov_type=cov_type, groups=None if groups is None else df[groups].to_numpy())
        for ex in (None, client):
            res = outofcore.hmm(path, 2, columns=["y"], groups="id", executor=ex).fit(
                cov_type=cov_type, groups=groups)
            _same(res, ref)


def test_cluster_column_errors_name_the_piece(sandwich_data):
    _, path = sandwich_data
    m = outofcore.tobit("y ~ x", path, censor_left=0)
    with pytest.raises(DataError, match="is a column name of the data"):
        m.fit(cov_type="cluster", groups=np.zeros(1200))
    with pytest.raises(DataError, match=r"cannot read .*row group 0.*nosuch|nosuch"):
        m.fit(cov_type="cluster", groups="nosuch")
