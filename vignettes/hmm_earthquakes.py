"""Vignette: regimes of major earthquakes, 1900-2006, with Poisson hidden Markov models.

Run it as a script (``python vignettes/hmm_earthquakes.py [output-dir]``); the test suite
executes it, so every number printed here is current.  Figures go to the output directory
(default: the current directory).

The annual counts of magnitude 7+ earthquakes are overdispersed (variance 51.6 against a
mean of 19.4) and strongly autocorrelated.  Zucchini & MacDonald (2009, Hidden Markov
Models for Time Series, Chapman & Hall/CRC) use them as their running example: a
Poisson-HMM explains both features by a few persistent "activity regimes", each with its
own Poisson rate.  We fit 1 to 4 states, choose among them by AIC and BIC, decode the
regimes and forecast the next years.
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import emstats  # noqa: E402

out_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(".")
out_dir.mkdir(parents=True, exist_ok=True)

eq = emstats.datasets.load("earthquakes")
x = eq["count"]
print(f"{len(eq)} years, mean {x.mean():.3f}, variance {x.var():.3f}, "
      f"lag-1 autocorrelation {x.autocorr(1):.3f}\n")

# 1. Model choice ------------------------------------------------------------------------
# Stationary models (the first state drawn from the stationary distribution), as in
# Zucchini & MacDonald's Section 3.5; several starts guard against local maxima.
fits = {}
for k in (1, 2, 3, 4):
    fits[k] = emstats.hmm("~ count", k, "poisson", data=eq, initial="stationary").fit(
        method="squarem", tol=1e-12, maxiter=5000, n_init=2 if k > 2 else 1, seed=1)
table = pd.DataFrame({
    "-log L": [-f.llf for f in fits.values()],
    "parameters": [f.n_free_params for f in fits.values()],
    "AIC": [f.aic for f in fits.values()],
    "BIC": [f.bic for f in fits.values()],
}, index=pd.Index(list(fits), name="states"))
print("Stationary Poisson-HMMs:")
print(table.round(3).to_string())
best_k = int(table["BIC"].idxmin())
best_aic = int(table["AIC"].idxmin())
print(f"\nBIC prefers {best_k} states, AIC {best_aic}.  (Zucchini & MacDonald report "
      "-log L = 342.32 and 329.46 for 2 and 3 states.)\n")

res = fits[3]
print(res.summary())
print("\nState rates with standard errors (exact observed information):")
print(pd.DataFrame({"lambda": res.rates, "s.e.": res.rates_se}).round(3).to_string())
print("\nTransition probabilities (standard errors):")
print(res.transmat.round(4).astype(str).add(" (").add(
    res.transmat_se.round(4).astype(str)).add(")").to_string())
print("\nStationary distribution:", np.round(res.stationary.to_numpy(), 4))

# 2. Decoding -------------------------------------------------------------------------------
vit = res.viterbi()
smooth = res.smoothed_probs()
lam = res.rates
changes = eq["year"][vit.ne(vit.shift()).to_numpy()].tolist()[1:]
print(f"\nViterbi path changes regime in {len(changes)} years: {changes}")

fig, ax = plt.subplots(figsize=(9, 3.5))
ax.plot(eq["year"], x, "o-", ms=3, color="0.4", label="count")
ax.step(eq["year"], lam.loc[vit].to_numpy(), where="mid", color="C3",
        label="rate of the Viterbi state")
ax.set_xlabel("year")
ax.set_ylabel("major earthquakes")
ax.legend()
fig.tight_layout()
fig.savefig(out_dir / "hmm_earthquakes_decoded.png", dpi=100)
plt.close(fig)

fig, ax = plt.subplots(figsize=(9, 3.5))
ax.stackplot(eq["year"], smooth.to_numpy().T, labels=[f"state {s}" for s in smooth.columns])
ax.set_ylim(0, 1)
ax.set_xlabel("year")
ax.set_ylabel("P(state | all data)")
ax.legend(loc="upper left", ncol=3)
fig.tight_layout()
fig.savefig(out_dir / "hmm_earthquakes_smoothed.png", dpi=100)
plt.close(fig)

# 3. Forecasts -----------------------------------------------------------------------------
fc = res.forecast(10)
fc.index = fc.index + int(eq["year"].iloc[-1])
print("\nForecasts for 2007-2016 (mean and variance of the count):")
print(fc.round(3).to_string())
dist = res.forecast_distribution(1, support=np.arange(0, 51))
mode = int(dist.iloc[0].idxmax())
print(f"\nMost likely count in 2007: {mode} (probability {dist.iloc[0].max():.3f})")

fig, ax = plt.subplots(figsize=(6, 3.5))
for h in (1, 5):
    d = res.forecast_distribution(h, support=np.arange(0, 51)).iloc[h - 1]
    ax.plot(d.index, d.to_numpy(), marker="o", ms=3, label=f"{2006 + h}")
ax.set_xlabel("count")
ax.set_ylabel("forecast probability")
ax.legend()
fig.tight_layout()
fig.savefig(out_dir / "hmm_earthquakes_forecast.png", dpi=100)
plt.close(fig)

# 4. Does the model reproduce the data's features?  Simulate from it. ------------------
sims = [res.sample(107, random_state=s)[0][:, 0] for s in range(200)]
ac = np.mean([pd.Series(s).autocorr(1) for s in sims])
vr = np.mean([np.var(s, ddof=1) for s in sims])
print(f"\nSimulated series: mean variance {vr:.1f}, mean lag-1 autocorrelation {ac:.3f} "
      f"(observed {x.var():.1f} and {x.autocorr(1):.3f})")
