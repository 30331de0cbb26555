"""Clustering Old Faithful with Gaussian mixtures: model selection by BIC.

Run as a script (``python vignettes/gmm_faithful.py [figure-directory]``); figures
go to the directory given as the first argument (default: this folder).

The Old Faithful data (272 eruptions) have two variables, the eruption time and
the waiting time to the next eruption, both in minutes.  We

1. compare mixtures with 1 to 6 components and six covariance structures by
   BIC (mclust's sign: 2 loglik - npar log n, larger is better);
2. look at the selected model: weights, means, covariances and their Louis
   standard errors;
3. draw the fitted density over the data and the BIC curves.
"""

import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import emstats  # noqa: E402

FIGDIR = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))

faithful = emstats.datasets.load("faithful")

# 1. Model selection over k = 1..6 and six structures (several k-means++ starts each).
selection = emstats.gmm_select("~ eruptions + waiting", data=faithful, k=range(1, 7),
                               covariance=["EII", "VII", "EEI", "VVI", "EEE", "VVV"],
                               n_init=3, seed=1)
print(selection.bic_table.round(2))
print(selection)

# 2. The selected model.  Components are ordered by their mean eruption time.
best = selection.best
print(best.summary())
print("weights:\n", best.weights.round(4))
print("means:\n", best.means.round(4))
print("covariances:\n", best.covariances.round(4))

# Classification and uncertainty (1 - largest posterior probability).
proba = best.predict_proba()
uncertainty = 1.0 - proba.max(axis=1)
print("rows with uncertainty above 0.2:", int((uncertainty > 0.2).sum()))

# The two-component VVV model (mclust's k = 2 solution) for comparison.
two = emstats.gmm("~ eruptions + waiting", data=faithful, k=2).fit()
print(f"VVV, k = 2: loglik {two.llf:.4f}, BIC (mclust) {two.bic_mclust:.4f}")

# 3. Figures: density contours of the selected model and the BIC curves.
fig, ax = plt.subplots(figsize=(6, 4.5))
best.plot_density(ax=ax, levels=12)
ax.set_title(f"{best.covariance_type}, k = {best.k}: fitted density and classification")
fig.tight_layout()
fig.savefig(os.path.join(FIGDIR, "gmm_density.png"), dpi=100)
plt.close(fig)

fig, ax = plt.subplots(figsize=(6, 4.5))
selection.plot(ax=ax)
ax.set_title("BIC against the number of components")
fig.tight_layout()
fig.savefig(os.path.join(FIGDIR, "gmm_bic.png"), dpi=100)
plt.close(fig)
