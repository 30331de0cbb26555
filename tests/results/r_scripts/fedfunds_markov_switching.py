"""Witness for the tied-variance Gaussian HMM (tests/test_hmm.py): statsmodels'
MarkovRegression on the U.S. federal funds rate, writes tests/results/fedfunds_msw.json.

    python tests/results/r_scripts/fedfunds_markov_switching.py

The series (quarterly effective federal funds rate, 1954Q3-2010Q4, 226 values) is the one
statsmodels' own tests carry, from Stata's usmacro data set
(https://www.stata-press.com/data/r14/usmacro), read here from
statsmodels/tsa/regime_switching/tests/test_markov_regression.py (``fedfunds``), with the
published Stata ``mswitch dr fedfunds, switch(constant)`` values that file quotes
(Stata 14 manual, [TS] mswitch; statsmodels' class TestFedFundsConst).  The model:
two regimes with switching constant means and one common variance; statsmodels starts the
chain from its stationary distribution (``emstats.hmm(..., initial="stationary")``).
(Kept beside the R scripts: like them, it is run by hand, and the tests read its output.)
"""

import ast
import json
from pathlib import Path

import numpy as np
import statsmodels
from statsmodels.tsa.regime_switching import markov_regression
from statsmodels.tsa.regime_switching.tests import test_markov_regression as smt

src = Path(smt.__file__).read_text()
tree = ast.parse(src)
series = next(ast.literal_eval(node.value) for node in tree.body
              if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "fedfunds")
y = np.asarray(series, dtype=float)
mod = markov_regression.MarkovRegression(y, k_regimes=2)
res = mod.fit(disp=False)
names = list(mod.param_names)
out = {
    "source": ("statsmodels " + statsmodels.__version__ + " MarkovRegression(fedfunds, "
               "k_regimes=2) (switching constant, common variance), fit() defaults; "
               "series and Stata values from statsmodels' test_markov_regression.py"),
    "fedfunds": series,
    "statsmodels": {
        "llf": float(res.llf),
        "params": dict(zip(names, map(float, res.params), strict=True)),
        "bse": dict(zip(names, map(float, res.bse), strict=True)),
        "cov_type": str(res.cov_type),
    },
    "stata": {
        "llf": -508.63592,
        "params": dict(zip(names, [0.9820939, 0.0503587, 3.70877, 9.556793,
                                   2.107562 ** 2], strict=True)),
        "bse_oim": dict(zip(names[:4], [0.0104002, 0.0268434, 0.1767083, 0.2999889],
                            strict=True)),
    },
}
dest = Path(__file__).resolve().parents[1] / "fedfunds_msw.json"
dest.write_text(json.dumps(out, indent=1) + "\n")
print(json.dumps({k: v for k, v in out.items() if k != "fedfunds"}, indent=1))
