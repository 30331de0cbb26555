"""Vignette: how often do people have affairs? A Tobit analysis of Fair's (1978) survey.

Run it as a script (``python vignettes/tobit_affairs.py [output-dir]``); the test suite
executes it, so every number printed here is current.  Figures go to the output directory
(default: the current directory).

Fair asked 601 readers of Psychology Today how many times they had had extramarital
intercourse in the past year.  451 answered "never": the response piles up at zero, so a
linear regression of the count on the covariates mixes the decision with the frequency and
bends the coefficients towards zero.  The Tobit model treats the zeros as a latent
propensity that is censored at zero.
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import statsmodels.formula.api as smf  # noqa: E402

import emstats  # noqa: E402

out_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(".")
out_dir.mkdir(parents=True, exist_ok=True)

affairs = emstats.datasets.load("affairs")
formula = "affairs ~ age + yearsmarried + religiousness + occupation + rating"
print(f"{len(affairs)} respondents, {(affairs.affairs == 0).sum()} reporting no affair\n")

# 1. Tobit against OLS --------------------------------------------------------------------
tobit = emstats.tobit(formula, data=affairs, censor_left=0).fit()
ols = smf.ols(formula, data=affairs).fit()
print(tobit.summary())
compare = tobit.params.iloc[:-1].to_frame("Tobit").join(ols.params.rename("OLS"))
compare["Tobit / OLS"] = compare["Tobit"] / compare["OLS"]
print("\nTobit and OLS coefficients (the latent propensity against the observed count):")
print(compare.round(3).to_string())

# The OLS slopes are roughly the Tobit slopes scaled down by the share of uncensored
# observations (the attenuation textbooks describe).  The Tobit marginal effects on the
# expected count, dE[y]/dx = beta * P(y > 0), are the comparable quantity.
me = tobit.get_margeff(at="overall", which="mean")
print("\nAverage marginal effects on the expected number of affairs (delta-method s.e.):")
print(me.summary_frame().round(4).to_string())
print(f"\nShare predicted uncensored: {tobit.predict(which='prob_uncensored').mean():.3f}")

# A two-limit model: the survey's top codes (7 = 4-10 times, 12 = monthly or more) are
# crude, so censor at 4 as well, as in AER's documentation.
two = emstats.tobit(formula, data=affairs, censor_left=0, censor_right=4).fit()
print(f"\nTwo-limit Tobit (0, 4): log-likelihood {two.llf:.4f}, "
      f"{two.model.n_right} right-censored")

# 2. EM, SQUAREM and the Louis-Newton finish ------------------------------------------------
fits = {m: emstats.tobit(formula, data=affairs).fit(method=m, tol=1e-13, maxiter=5000)
        for m in ("em", "squarem", "newton")}
print("\nIterations to a relative change of 1e-13 in the log-likelihood:")
for m, r in fits.items():
    c = r.convergence
    print(f"  {m:8s} {c.n_iter:4d} iterations, {c.n_em_steps:4d} EM steps, "
          f"log-likelihood {r.llf:.10f}, max |score| {c.max_abs_score:.1e}")
rate = fits["em"].convergence.em_rate
print(f"EM's rate of convergence (largest fraction of missing information): {rate:.3f};\n"
      f"plain EM gains about one digit every {np.log(0.1) / np.log(rate):.0f} iterations.")

fig, ax = plt.subplots(figsize=(6, 4))
best = max(r.llf for r in fits.values())
for m, r in fits.items():
    ll = r.convergence.loglik
    gap = np.maximum(best - ll, 1e-14)
    ax.semilogy(np.arange(len(ll)), gap, marker="o", ms=3, label=m)
ax.set_xlabel("iteration")
ax.set_ylabel("log-likelihood gap to the maximum")
ax.set_title("Tobit on Affairs: EM, SQUAREM and Louis-Newton")
ax.legend()
fig.tight_layout()
fig.savefig(out_dir / "tobit_affairs_convergence.png", dpi=100)
print(f"\nconvergence plot: {out_dir / 'tobit_affairs_convergence.png'}")

# 3. Standard errors three ways -------------------------------------------------------------
boot = emstats.tobit(formula, data=affairs).fit(cov_type="bootstrap", n_boot=200, seed=1)
num = emstats.tobit(formula, data=affairs).fit(cov_type="numerical")
table = tobit.bse.to_frame("Louis").join(num.bse.rename("numerical Hessian"))
table = table.join(boot.bse.rename("bootstrap (200)"))
print("\nStandard errors: Louis' method, a numerical Hessian and the bootstrap:")
print(table.round(4).to_string())
