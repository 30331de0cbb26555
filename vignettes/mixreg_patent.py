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
3. look at the spread of the log-likelihoods over the starts, the posterior classes
   and the fitted component lines.
"""

import os
import sys

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402

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
res = model.fit(n_init=10, seed=1)
print(res.summary())
lls = np.array([s.loglik for s in res.extra["starts"]])
print(f"short-run log-likelihoods over {lls.size} starts: min {lls.min():.4f}, "
      f"max {lls.max():.4f}; final {res.llf:.6f} "
      "(flexmix 2.3.18, best of 10 starts: -197.675022)")
print("coefficients by component:\n", res.coefficients.round(4))
print("average weights:", res.prior.round(4).tolist())
print("companies per MAP class:", np.bincount(res.classes)[1:].tolist())

# 3. component lines over log R&D
ax = res.plot_components("lgRD")
ax.set_title("Patents against log R&D: MAP classes and component means")
ax.figure.savefig(os.path.join(FIGDIR, "mixreg_patent_lines.png"), dpi=100)
