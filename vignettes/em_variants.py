"""Vignette: the variants of EM on one problem, Fair's Affairs data with a Tobit model.

Run as ``python vignettes/em_variants.py [output-dir]``; the test suite executes it.

Every variant below is an option of the same engine, ``fit(method=...)``: they differ in how
they step, not in the model.  All of them should end at the maximum-likelihood estimate
(the random ones within their Monte Carlo error).
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import emstats  # noqa: E402

out_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(".")
out_dir.mkdir(parents=True, exist_ok=True)

affairs = emstats.datasets.load("affairs")
model = emstats.tobit("affairs ~ age + yearsmarried + religiousness + occupation + rating",
                      data=affairs, censor_left=0)
mle = model.fit(tol=1e-14)
print(f"MLE log-likelihood {mle.llf:.8f}; EM rate (fraction of missing information) "
      f"{mle.convergence.em_rate:.3f}\n")

runs = {
    "EM": dict(method="em"),
    "SQUAREM": dict(method="squarem"),
    "Louis-Newton": dict(method="newton"),
    "gradient EM": dict(method="gradient"),
    "incremental EM (10 blocks)": dict(method="incremental", method_options={"n_blocks": 10}),
    "Monte Carlo EM": dict(method="mcem", seed=1,
                           method_options={"size0": 50, "max_size": 2000, "delta2": 0.004}),
    "stochastic EM": dict(method="stochastic", seed=1, maxiter=600,
                          method_options={"burn_in": 100, "n_keep": 500}),
}
fits = {}
print(f"{'method':28s} {'iter':>5s} {'log-likelihood':>16s} {'max |est - MLE| / se':>22s}")
for name, kw in runs.items():
    kw = {"tol": 1e-12, "maxiter": 5000, **kw}
    res = model.fit(**kw)
    fits[name] = res
    dist = np.max(np.abs(res.params - mle.params) / mle.bse)
    print(f"{name:28s} {res.convergence.n_iter:5d} {res.llf:16.8f} {dist:22.2e}")

mc = fits["Monte Carlo EM"].convergence.extra
print(f"\nMonte Carlo EM: sample size grew from {mc['mc_size'][0]} to {mc['mc_size'][-1]} "
      f"draws per censored row (Booth & Hobert's rule); the last update's largest Monte Carlo "
      f"s.e. was {mc['mc_se'][-1].max():.2e}.")

# supplemented EM standard errors from the EM map, against Louis'
sem = model.fit(cov_type="sem", tol=1e-14)
print("\nStandard errors: Louis against supplemented EM (Meng & Rubin 1991):")
print(mle.bse.to_frame("Louis").join(sem.bse.rename("SEM")).round(6).to_string())

# ECM: a model whose M-step needs conditional maximisations
het = emstats.tobit("affairs ~ age + yearsmarried + religiousness + occupation + rating",
                    data=affairs, censor_left=0, scale_formula="~ gender + age")
ecm = het.fit(method="em", tol=1e-12, maxiter=5000)
print(f"\nECM (heteroskedastic Tobit): {ecm.convergence.n_iter} iterations, log-likelihood "
      f"{ecm.llf:.6f}, {ecm.convergence.n_decreases} decreases of the log-likelihood.")

fig, axes = plt.subplots(1, 2, figsize=(11, 4))
ax = axes[0]
for name in ("EM", "SQUAREM", "Louis-Newton", "gradient EM", "incremental EM (10 blocks)"):
    ll = fits[name].convergence.loglik
    ax.semilogy(np.arange(len(ll)), np.maximum(mle.llf - ll, 1e-13), marker="o", ms=2,
                label=name)
ll = ecm.convergence.loglik
ax.semilogy(np.arange(len(ll)), np.maximum(ecm.llf - ll, 1e-13), ls="--", label="ECM (hetero)")
ax.set_xlabel("iteration")
ax.set_ylabel("log-likelihood gap to the maximum")
ax.set_title("Deterministic variants (incremental: sum of block log-likelihoods)", fontsize=9)
ax.legend(fontsize=8)
ax = axes[1]
chain = fits["stochastic EM"].convergence.extra["chain"]
j = list(mle.params.index).index("rating")
ax.plot(chain[:, j], lw=0.8, label="stochastic EM chain")
ax.axvline(100, color="grey", ls=":", label="end of burn-in")
ax.axhline(mle.params["rating"], color="k", label="MLE")
ax.axhline(fits["stochastic EM"].params["rating"], color="C1", ls="--", label="chain average")
ax.set_xlabel("iteration")
ax.set_ylabel("coefficient of rating")
ax.set_title("Stochastic EM")
ax.legend(fontsize=8)
fig.tight_layout()
fig.savefig(out_dir / "em_variants.png", dpi=100)
print(f"\nplots: {out_dir / 'em_variants.png'}")
