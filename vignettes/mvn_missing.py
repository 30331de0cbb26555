"""Incomplete data, the original use of EM: the NHANES example of Schafer (1997).

Run as a script (``python vignettes/mvn_missing.py [figure-directory]``); figures go to
the directory given as the first argument (default: this folder).

25 people, four variables (age group, body mass index, hypertension, cholesterol), 27%
of the values missing.  We

1. look at the missingness patterns and Little's (1988) test of MCAR;
2. estimate the mean vector and covariance matrix by maximum likelihood under MAR (EM
   over the patterns), with Louis standard errors from the observed information and the
   fraction of missing information of each parameter;
3. draw 50 imputations from the posterior predictive distribution and pool a
   regression of cholesterol on age and BMI by Rubin's rules, against the complete-case
   regression.
"""

import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import statsmodels.formula.api as smf  # noqa: E402

import emstats  # noqa: E402

FIGDIR = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))

nhanes = emstats.datasets.load("nhanes")
model = emstats.mvn(nhanes)

# 1. Patterns (1 = observed) and Little's MCAR test.
print(model.pattern_table())
res = model.fit()
t = res.little_test
print(f"Little's MCAR test: chi2 = {t.statistic:.3f} on {t.df} df, p = {t.pvalue:.3f}")

# 2. The MLE under MAR.
print(res.summary())
print("means:\n", res.mean.round(3))
print("covariance:\n", res.cov.round(3))
print("correlations:\n", res.corr.round(3))
print("fraction of missing information:\n", res.fraction_missing_information.round(3))

# 3. Multiple imputation and a pooled regression.
imps = res.impute(m=50, seed=2024)
pooled = emstats.mi_fit(imps, fit=lambda d: smf.ols("chl ~ age + bmi", data=d).fit())
print(pooled.summary())
cc = smf.ols("chl ~ age + bmi", data=nhanes.dropna()).fit()
print("complete cases (13 rows):\n", cc.params.round(3), "\n", cc.bse.round(3))

# Figure: observed against imputed cholesterol by BMI.
fig, ax = plt.subplots(figsize=(6, 4))
miss = nhanes["chl"].isna() | nhanes["bmi"].isna()
for d in imps[:10]:
    ax.scatter(d.loc[miss, "bmi"], d.loc[miss, "chl"], s=10, color="tab:orange", alpha=0.4)
ax.scatter(nhanes["bmi"], nhanes["chl"], s=25, color="tab:blue", label="observed")
ax.scatter([], [], s=10, color="tab:orange", label="imputed (10 draws)")
b = res.mean
grid = np.linspace(nhanes["bmi"].min(), nhanes["bmi"].max(), 2)
slope = res.cov.loc["bmi", "chl"] / res.cov.loc["bmi", "bmi"]
ax.plot(grid, b["chl"] + slope * (grid - b["bmi"]), color="k", lw=1,
        label="E[chl | bmi] at the MLE")
ax.set_xlabel("bmi")
ax.set_ylabel("chl")
ax.legend()
fig.tight_layout()
fig.savefig(os.path.join(FIGDIR, "mvn_nhanes_imputations.png"), dpi=100)
plt.close(fig)
