"""Gaussian mixtures: the time a user waits for emstats' fit, against scikit-learn.

    python benchmarks/bench_gmm.py                    # n = 1e6, d = 8, k = 8, full and diag
    python benchmarks/bench_gmm.py --quick            # n = 10000, one repetition
    python benchmarks/bench_gmm.py --n 20000 --structures full --json gmm.json
    python benchmarks/bench_gmm.py --n 200000 --structures full --schemes   # Newton vs SQUAREM

Headline (public API end to end, 1 and all threads, alternated, best of --repeat), per
covariance structure (full = emstats "VVV", diag = "VVI"):

* ``emstats.gmm(X, k, covariance).fit()``: its defaults, i.e. its ``n_init`` starts (above
  10,000 rows the hierarchical start and 5 k-means++),
  EM to ``tol``, and Louis standard errors;
* ``sklearn.mixture.GaussianMixture(k, covariance_type=...).fit(X)`` with its defaults
  (``n_init = 1``, ``tol = 1e-3`` per row, ``max_iter = 100``, ``reg_covar = 1e-6``) and
  with ``n_init`` set to emstats' default.  scikit-learn computes no standard errors and
  stops earlier; the "llf - best" column shows what that costs in fit.

Then: iterations and seconds to the same log-likelihood from identical start values
(k random rows as means, the data covariance, equal weights; ``reg_covar = 0``;
scikit-learn's ``tol`` per row translated into emstats' relative ``tol``); marginal
seconds per EM iteration, (t(maxiter = 2m) - t(maxiter = m)) / m; peak memory of each
headline fit in fresh child processes; this machine's limits (``_machine.py``).

Flop/byte model of one EM iteration (n rows, d variables, K components):

* full: the E-step whitens the data per component (an n x d by d x d triangular
  product, 2 n d^2 flops per component) and the M-step forms the weighted scatter
  (2 n d^2 per component): 4 n K d^2 flops, plus n K exponentials.
* diag: about 7 n K d flops (3 for the standardised squares, 4 for the weighted first
  and second moments), plus n K exponentials.
* Bytes: one read of the data, 8 n d (a fused kernel need not store the n x K
  responsibilities).  Full covariance at d = 8 is compute-bound (about 32 K flops
  per 64-byte row); diag is nearer the byte limit.

If ``fit(cov_type=None)`` still computes standard errors (as GMM's does while its
fit is being ported), the marginal timing uses the engine's own clock
(``res.convergence.wall_time``) instead of the wall time of the whole call.
"""

from __future__ import annotations

import argparse
import inspect
import os
import tempfile

import _harness as H
import _machine
import numpy as np
from sklearn.mixture import GaussianMixture as SkGMM

import emstats

EM_NAME = {"full": "VVV", "diag": "VVI"}


def simulate(n, d, k, seed=0):
    rng = np.random.default_rng(seed)
    means = rng.normal(scale=3.0, size=(k, d))
    comp = rng.integers(0, k, size=n)
    A = rng.normal(scale=0.5, size=(k, d, d)) + np.eye(d)[None]
    X = means[comp] + np.einsum("nab,nb->na", A[comp], rng.standard_normal((n, d)))
    return np.ascontiguousarray(X)


def start_values(X, k, structure, seed=1):
    """Means at k random rows, the data covariance for every component, equal weights."""
    rng = np.random.default_rng(seed)
    means = X[rng.choice(X.shape[0], size=k, replace=False)].copy()
    cov = np.cov(X[:200_000], rowvar=False)
    if structure == "diag":
        cov = np.diag(np.diag(cov))
    covs = np.broadcast_to(cov, (k,) + cov.shape).copy()
    return {"weights": np.full(k, 1.0 / k), "means": means, "covariances": covs}


def mixture_loglik(X, p):
    """Log-likelihood of a Gaussian mixture (numpy only: independent of both libraries)."""
    from scipy.special import logsumexp

    cols = []
    for w, mu, S in zip(p["weights"], p["means"], p["covariances"], strict=True):
        L = np.linalg.cholesky(S)
        z = np.linalg.solve(L, (X - mu).T)
        cols.append(np.log(w) - 0.5 * (z * z).sum(0) - np.log(np.diag(L)).sum()
                    - 0.5 * X.shape[1] * np.log(2 * np.pi))
    return float(logsumexp(np.column_stack(cols), axis=1).sum())


def ours_default_n_init(n: int) -> int:
    """The number of starts of emstats' default ``init`` at n rows (``"all"``: 1 + 5 + 20,
    each run to convergence; above ``ALL_MAX_ROWS`` ``"hc+kmeans++"``: 6 short runs)."""
    try:
        from emstats.models.gmm import ALL_MAX_ROWS, INIT_COUNTS
    except ImportError:     # an older emstats: the fit's own default
        model = emstats.gmm(np.random.default_rng(0).normal(size=(50, 2)), k=1)
        v = inspect.signature(model.fit).parameters["n_init"].default
        return int(v) if isinstance(v, int) else 1
    if n <= ALL_MAX_ROWS:
        return INIT_COUNTS["hc"] + INIT_COUNTS["kmeans++"] + INIT_COUNTS["short-em"]
    return INIT_COUNTS["hc+kmeans++"]


def sk_llf(gm, X):
    return float(gm.score(X)) * X.shape[0]


def sk_from(p, structure, **kw):
    prec = np.linalg.inv(p["covariances"])
    if structure == "diag":
        prec = np.diagonal(prec, axis1=1, axis2=2).copy()
    return SkGMM(n_components=len(p["weights"]), covariance_type=structure, reg_covar=0.0,
                 n_init=1, weights_init=p["weights"], means_init=p["means"],
                 precisions_init=prec, random_state=0, **kw)


def louis_cost(rep, X, k, st, p, tol_rel, threads, repeat):
    """One pass of Louis' pieces (log-likelihood, score, complete and missing information)
    against one E-step, both at the maximum reached from ``p``, in E-step equivalents."""
    import time

    from emstats.em.problem import Problem
    from emstats.models.gmm import LOUIS_CERTAIN

    em = EM_NAME[st]
    model = emstats.gmm(X, k=k, covariance=em)
    r = model.fit(start_params=p, n_init=1, tol=tol_rel, maxiter=100_000, method="em",
                  n_threads=max(threads), cov_type=None)
    est = model.from_inference(r.params.to_numpy())
    R = r.predict_proba().to_numpy()
    rest = R.sum(axis=1) - R.max(axis=1)
    unc = rest > LOUIS_CERTAIN
    pairs = ((R[unc] > LOUIS_CERTAIN).sum(axis=1) * ((R[unc] > LOUIS_CERTAIN).sum(axis=1) + 1)
             // 2).mean() if unc.any() else 0.0
    del R
    rows = []
    for t in threads:
        prob = Problem(model, n_threads=t)

        def best(f):
            ts = []
            for _ in range(max(repeat, 3)):
                t0 = time.perf_counter()
                f()
                ts.append(time.perf_counter() - t0)
            return min(ts)

        te = best(lambda prob=prob: prob.e_step(est))
        tl = best(lambda prob=prob: prob.newton_pieces(est))
        rows.append([t, te, tl, tl / te])
    rep.table(f"{st}: one pass of Louis' pieces against one E-step, at the maximum",
              ["threads", "E-step s", "Louis pieces s", "E-step equivalents"], rows,
              formats={"E-step s": ".3f", "Louis pieces s": ".3f", "E-step equivalents": ".2f"},
              note=f"{unc.mean():.1%} of the rows of uncertain membership (responsibilities "
                   f"other than the largest above {LOUIS_CERTAIN:g}), {pairs:.2f} of the "
                   f"{k * (k + 1) // 2} pairs of components kept per such row.  The default "
                   "fit evaluates the pieces once above NEWTON_MAX_ROWS rows (SQUAREM, then "
                   "the standard errors), at every Newton step below.")


def headline_fitters(X, k, structures, n_init):
    out = {}
    for st in structures:
        def ours(t, st=st):
            r = emstats.gmm(X, k=k, covariance=EM_NAME[st]).fit(n_threads=t)
            return {"llf": r.llf, "n_iter": r.convergence.n_iter}

        def sk(t, st=st, ni=1):
            gm = SkGMM(n_components=k, covariance_type=st, n_init=ni, random_state=0).fit(X)
            return {"llf": sk_llf(gm, X), "n_iter": int(gm.n_iter_)}

        out[st] = {f"emstats gmm({EM_NAME[st]}).fit()": ours,
                   "sklearn defaults (n_init=1)": sk}
        if n_init != 1:
            out[st][f"sklearn n_init={n_init}"] = lambda t, st=st: sk(t, st, n_init)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=None, help="rows (default 1e6; --quick 10000)")
    ap.add_argument("--d", type=int, default=8)
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--m", type=int, default=5, help="iterations m of the marginal timing")
    ap.add_argument("--structures", default="full,diag")
    ap.add_argument("--tol", type=float, default=1e-8,
                    help="scikit-learn's tol (change of the mean log-likelihood per row) for "
                         "the identical-start runs")
    ap.add_argument("--parts", default="headline,same,louis,iter",
                    help="which tables: headline (public API end to end), same (identical "
                         "starts), louis (Louis' pieces in E-steps), iter (per iteration)")
    ap.add_argument("--schemes", action="store_true",
                    help="also time the default fit with method='newton' against 'squarem' "
                         "(alternated; the choice behind NEWTON_MAX_ROWS)")
    H.add_common_args(ap)
    a = ap.parse_args(argv)
    n = a.n or (10_000 if a.quick else 1_000_000)
    repeat = a.repeat or (1 if a.quick else 3)
    structures = a.structures.split(",")
    n_init = ours_default_n_init(n)
    if a.child:
        X = H.load_arrays(a.child_data)["X"]
        st, name = a.child.split("::", 1)
        H.child_main(name, a.child_mem, headline_fitters(X, a.k, [st], n_init)[st])
        return

    mach = _machine.measure(a.quick)
    rep = H.Report(__file__, a, mach)
    threads = H.thread_list(a.threads, mach.cores)
    rep.text(f"# Gaussian mixture, n = {n:,}, d = {a.d}, k = {a.k}\n\nemstats "
             f"{emstats.__version__} from {os.path.dirname(emstats.__file__)}; emstats' "
             f"default n_init = {n_init}")
    rep.text(mach.markdown())
    X = simulate(n, a.d, a.k)
    in_bytes = X.nbytes
    fitters = headline_fitters(X, a.k, structures, n_init)
    tmp = tempfile.TemporaryDirectory()
    if not a.no_memory:
        H.save_arrays(tmp.name, X=X)
    parts = set(a.parts.split(","))
    for st in structures:
        em = EM_NAME[st]
        if "headline" in parts:
            H.headline(rep, f"Headline, {st} ({em}): public API end to end (construct + fit + "
                       f"SEs for emstats)", fitters[st], "sklearn defaults (n_init=1)", threads,
                       repeat, in_bytes, note="scikit-learn computes no standard errors.")

        if a.schemes:
            def scheme(t, meth, em=em):
                r = emstats.gmm(X, k=a.k, covariance=em).fit(n_threads=t, method=meth)
                return {"llf": r.llf, "n_iter": r.convergence.n_iter}

            H.headline(rep, f"{st}: the default fit with each scheme (starts, fit, SEs)",
                       {"Louis-Newton": lambda t, f=scheme: f(t, "newton"),
                        "SQUAREM": lambda t, f=scheme: f(t, "squarem")}, "Louis-Newton",
                       threads, repeat, in_bytes,
                       note="fit(method=...) with the default starts; the standard errors "
                            "are Louis' in both.")

        # identical starts, same stopping rule
        p = start_values(X, a.k, st)
        model = emstats.gmm(X, k=a.k, covariance=em)
        ll0 = mixture_loglik(X, p)
        tol_rel = a.tol / abs(ll0 / n)
        no_se = H.accepts_no_se(model.fit, start_params=p, n_init=1, maxiter=2)
        se_kw = {"cov_type": None} if no_se else {}

        def ours(t, em=em, p=p, tol_rel=tol_rel, se_kw=se_kw, method="em"):
            kw = {"method": method}
            r = emstats.gmm(X, k=a.k, covariance=em).fit(start_params=p, n_init=1, tol=tol_rel,
                                                         maxiter=100_000, n_threads=t, **kw,
                                                         **se_kw)
            return {"llf": r.llf, "n_iter": r.convergence.n_iter,
                    "engine_s": r.convergence.wall_time}

        def sk(t, p=p, st=st):
            gm = sk_from(p, st, tol=a.tol, max_iter=100_000).fit(X)
            return {"llf": sk_llf(gm, X), "n_iter": int(gm.n_iter_)}

        same = {"emstats EM": ours,
                "emstats SQUAREM": lambda t, f=ours: f(t, method="squarem"),
                "sklearn": sk}
        if "same" in parts:
            H.headline(rep, f"{st}: time to the same log-likelihood from identical starts"
                       + ("" if no_se else " (emstats incl. its standard errors)"), same,
                       "sklearn", threads, repeat, in_bytes,
                       note=f"sklearn tol = {a.tol:g} per row, emstats tol = {tol_rel:.3g} "
                            "relative (the same change of the log-likelihood); reg_covar = 0.")

        if "louis" in parts and hasattr(model, "chunk_louis"):
            louis_cost(rep, X, a.k, st, p, tol_rel, threads, repeat)

        def em_iters(m, t, em=em, p=p, se_kw=se_kw, no_se=no_se):
            # method="em": the default scheme of a large fit is SQUAREM (3 EM maps a cycle)
            r = emstats.gmm(X, k=a.k, covariance=em).fit(start_params=p, n_init=1, tol=1e-300,
                                                         maxiter=m, n_threads=t, method="em",
                                                         **se_kw)
            c = r.convergence
            return c.n_iter if no_se else (c.n_iter, c.wall_time)

        def sk_iters(m, t, p=p, st=st):
            return int(sk_from(p, st, tol=0.0, max_iter=m).fit(X).n_iter_)

        flops = 4.0 * n * a.k * a.d**2 if st == "full" else 7.0 * n * a.k * a.d
        if "iter" in parts:
            H.per_iteration(rep, f"{st}: seconds per EM iteration (marginal: maxiter 2m vs m)",
                            {"emstats EM iteration": em_iters,
                             "sklearn EM iteration": sk_iters},
                            "sklearn EM iteration", threads, a.m, repeat, flops=flops,
                            nbytes=8.0 * n * a.d, n_exp=float(n * a.k),
                            note=f"m = {a.m}" + ("" if no_se else "; emstats timed by its "
                                                 "engine clock (its fit() cannot skip the "
                                                 "SEs)") + ".")
        if not a.no_memory:
            H.memory_table(rep, f"{st}: peak memory of each headline fit", __file__,
                           [f"{st}::{k}" for k in fitters[st]], tmp.name, in_bytes,
                           ["--k", str(a.k), "--structures", st])
    tmp.cleanup()
    rep.text(f"\nload average at the end: {os.getloadavg()}")
    rep.write(a.json)


if __name__ == "__main__":
    main()
