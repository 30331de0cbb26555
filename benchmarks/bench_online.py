"""Online EM on long streams against the batch fit of the same data.

Each stream is generated batch by batch from seeded generators (batch b of a
stream uses ``SeedSequence([seed, b])``), so the online estimator sees one batch
at a time and the batch fit sees the concatenation of the very same rows.  Every
part runs in its own subprocess so that its peak resident memory (``ru_maxrss``)
and its peak traced allocations (``tracemalloc``) are its own.

Usage::

    python benchmarks/bench_online.py                 # Tobit 1e7 rows, GMM 1e6 rows
    python benchmarks/bench_online.py --tobit-rows 2000000 --gmm-rows 200000   # quicker

Reports, per model: rows, batch size, seconds, peak memory, and the distance of the
online (Polyak-averaged) estimate to the batch MLE in units of the batch fit's
standard errors (max and root mean square over the parameters).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
import tracemalloc

import numpy as np

TOBIT_P = 10
GMM_D, GMM_K = 8, 8


def tobit_batch(b: int, m: int, seed: int = 1):
    rng = np.random.default_rng(np.random.SeedSequence([seed, b]))
    X = np.column_stack([np.ones(m), rng.normal(size=(m, TOBIT_P - 1))])
    beta = np.linspace(-0.5, 0.5, TOBIT_P)
    y = np.maximum(X @ beta + 1.5 * rng.normal(size=m), 0.0)
    return X, y


def _gmm_truth():
    rng = np.random.default_rng(12345)
    means = rng.normal(scale=6.0, size=(GMM_K, GMM_D))
    A = rng.normal(scale=0.4, size=(GMM_K, GMM_D, GMM_D))
    covs = A @ np.swapaxes(A, 1, 2) + 0.5 * np.eye(GMM_D)
    w = rng.dirichlet(np.full(GMM_K, 5.0))
    return w, means, np.linalg.cholesky(covs)


def gmm_batch(b: int, m: int, seed: int = 2):
    w, means, L = _gmm_truth()
    rng = np.random.default_rng(np.random.SeedSequence([seed, b]))
    z = rng.choice(GMM_K, size=m, p=w)
    return (means[z] + np.einsum("nab,nb->na", L[z], rng.normal(size=(m, GMM_D))),)


def _run_part(part: str, rows: int, batch: int) -> dict:
    import emstats

    nb = rows // batch
    tracemalloc.start()
    t0 = time.perf_counter()
    if part == "tobit-online":
        est = emstats.online_tobit(censor_left=0, alpha=0.6)
        for b in range(nb):
            est.partial_fit(*tobit_batch(b, batch))
        out = {"theta": est.theta_average.tolist(), "last": est.theta_last.tolist()}
    elif part == "tobit-batch":
        parts = [tobit_batch(b, batch) for b in range(nb)]
        X = np.concatenate([p[0] for p in parts])
        y = np.concatenate([p[1] for p in parts])
        del parts
        res = emstats.Tobit(y, X, censor_left=0).fit()
        out = {"theta": res.params.tolist(), "bse": res.bse.tolist(), "llf": res.llf}
    elif part == "gmm-online":
        est = emstats.online_gmm(k=GMM_K, covariance="full", alpha=0.6, seed=0)
        for b in range(nb):
            est.partial_fit(*gmm_batch(b, batch))
        p = est.model_params.sorted()
        out = {"theta": est.adapter.model.to_inference(p).tolist()}
    elif part == "gmm-batch":
        X = np.concatenate([gmm_batch(b, batch)[0] for b in range(nb)])
        # EM from the data-generating parameters: one k-means++ start on 1e6 rows can end
        # in a degenerate local mode (it did), and ten are too slow for a benchmark
        w, means, L = _gmm_truth()
        start = {"weights": w, "means": means, "covariances": L @ np.swapaxes(L, 1, 2)}
        res = emstats.gmm(X, k=GMM_K, covariance="full").fit(start_params=start)
        out = {"theta": res.params.tolist(), "bse": res.bse.tolist(), "llf": res.llf}
    else:  # pragma: no cover
        raise ValueError(part)
    out["seconds"] = time.perf_counter() - t0
    out["traced_peak_mb"] = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    out["maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def _spawn(part: str, rows: int, batch: int) -> dict:
    cmd = [sys.executable, __file__, "--part", part, "--rows", str(rows), "--batch", str(batch)]
    res = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tobit-rows", type=int, default=10_000_000)
    ap.add_argument("--tobit-batch", type=int, default=100_000)
    ap.add_argument("--gmm-rows", type=int, default=1_000_000)
    ap.add_argument("--gmm-batch", type=int, default=20_000)
    ap.add_argument("--part")
    ap.add_argument("--rows", type=int)
    ap.add_argument("--batch", type=int)
    a = ap.parse_args()
    if a.part:
        print(json.dumps(_run_part(a.part, a.rows, a.batch)))
        return
    lines = []
    header = (f"{'model':<22}{'rows':>11}{'batch':>8}{'fit':>8}{'seconds':>9}"
              f"{'maxRSS MB':>11}{'traced MB':>11}{'max |z|':>9}{'rms z':>8}")
    for name, rows, batch in (("Tobit p=10", a.tobit_rows, a.tobit_batch),
                              (f"GMM d={GMM_D} k={GMM_K} full", a.gmm_rows, a.gmm_batch)):
        key = "tobit" if name.startswith("Tobit") else "gmm"
        on = _spawn(f"{key}-online", rows, batch)
        ba = _spawn(f"{key}-batch", rows, batch)
        se = np.asarray(ba["bse"])
        z = (np.asarray(on["theta"]) - np.asarray(ba["theta"])) / se
        for label, r, zz in (("online", on, z), ("batch", ba, None)):
            zs = (f"{np.max(np.abs(zz)):>9.2f}{np.sqrt(np.mean(zz**2)):>8.2f}" if zz is not None
                  else f"{'':>9}{'':>8}")
            lines.append(f"{name:<22}{rows:>11,}{batch:>8,}{label:>8}{r['seconds']:>9.1f}"
                         f"{r['maxrss_mb']:>11.0f}{r['traced_peak_mb']:>11.1f}" + zs)
        if "last" in on:
            zl = (np.asarray(on["last"]) - np.asarray(ba["theta"])) / se
            lines.append(f"{'':<22}last iterate (no averaging): max |z| "
                         f"{np.max(np.abs(zl)):.2f}, rms {np.sqrt(np.mean(zl**2)):.2f}")
    print(header)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
