"""Patents and R&D: a mixture of Poisson regressions with concomitant variables.

Run as a script (``python vignettes/mixreg_patent.py [figure-directory]``); figures
go to the directory given as the first argument (default: this folder).

Wang, Cockburn & Puterman (1998) modelled the patents awarded to 70 pharmaceutical
companies as a mixture of Poisson regressions on log R&D spending (``lgRD``), with
the mixing weights depending on R&D intensity (``RDS``, R&D over sales).  We

1. choose the number of components by BIC and ICL (k = 1..4, ten starts each);
2. fit the three-component model with a multinomial-logit concomitant model for the
   weights (flexmix: ``FLXPmultinom(~ RDS)``) and read its summary: per-component
   coefficients and the weights' coefficients, all with Louis standard errors;
3. look at the spread of the final log-likelihoods over the starts (every start run to
   convergence: local maxima exist), the posterior classes, the fitted component lines
   and the concomitant effect: how the weights change with R&D intensity.
"""

import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import emstats  # noqa: E402

FIGDIR = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))

patent = emstats.datasets.load("patent")

# 1. the number of components
sel = emstats.mixreg_select("Patents ~ lgRD", patent, k=range(1, 5), family="poisson",
                            concomitant="~ RDS", fit_kwargs={"n_init": 10})
print(sel.table.round(3))
print(f"BIC chooses k = {sel.table['BIC'].idxmin()}, ICL chooses k = "
      f"{sel.table['ICL'].idxmin()}")
ax = sel.plot()
ax.figure.savefig(os.path.join(FIGDIR, "mixreg_patent_select.png"), dpi=100)

# 2. the three-component model of Wang et al. (flexmix's example)
model = emstats.mixreg("Patents ~ lgRD", patent, k=3, family="poisson",
                       concomitant="~ RDS")
res = model.fit_starts(n_init=10, seed=1)
print(res.summary())
fits = res.extra["start_fits"]
print(fits.round(6))
print(f"final log-likelihoods over {len(fits)} starts: min {fits.llf.min():.4f}, "
      f"max {fits.llf.max():.4f} ({(fits.llf > res.llf - 1e-6).sum()} starts reach it); "
      f"best {res.llf:.6f} (flexmix 2.3.18, best of 10 starts: -197.675022)")
assert res.llf >= -197.675022 - 1e-6
print("coefficients by component:\n", res.coefficients.round(4))
print("average weights:", res.prior.round(4).tolist())
print("companies per MAP class:", np.bincount(res.classes)[1:].tolist())

# 3. component lines over log R&D
ax = res.plot_components("lgRD")
ax.set_title("Patents against log R&D: MAP classes and component means")
ax.figure.savefig(os.path.join(FIGDIR, "mixreg_patent_lines.png"), dpi=100)

# 4. the concomitant effect: the weights pi_k(RDS) along R&D intensity (lgRD is not in
# the weights; any value will do)
grid = pd.DataFrame({"RDS": np.linspace(patent.RDS.min(), patent.RDS.max(), 100),
                     "lgRD": patent.lgRD.mean()})
weights = res.predict(grid, which="prior")
fig, ax = plt.subplots()
for col in weights.columns:
    ax.plot(grid.RDS, weights[col], label=col)
ax.set_xlabel("R&D intensity (RDS)")
ax.set_ylabel("mixing weight")
ax.set_title("Concomitant model: weights against R&D intensity")
ax.legend()
fig.savefig(os.path.join(FIGDIR, "mixreg_patent_weights.png"), dpi=100)
print("weights at the lowest and highest RDS:", weights.iloc[[0, -1]].round(3).to_numpy().tolist())
