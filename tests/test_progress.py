"""Progress bars and convergence warnings that tell the truth (issue 15, item 6).

* one progress line over every start of a multi-start fit, counting every iteration
  that ran, with no ETA derived from ``maxiter``, leaving one final line;
* ``ConvergenceWarning`` pointing at the caller's line (the filename of the warning is
  this file, whatever the depth of the package's frames), worded for the method that
  ran, with the counts of what ran.
"""

from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd
import pytest

import emstats
from emstats import ConvergenceWarning
from emstats.em.engine import run_em


@pytest.fixture(scope="module")
def two_lines():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 1, 300), rng.normal(4, 1, 300)])
    y = np.concatenate([1 + 2 * x[:300], -1 - x[300:]]) + rng.normal(size=600)
    return pd.DataFrame({"x": x, "y": y})


@pytest.fixture(scope="module")
def censored(two_lines):
    return two_lines.assign(y=np.maximum(two_lines["y"], 0.0))


def _lines(err: str) -> list[str]:
    """The lines a terminal would keep: each newline-terminated line's last
    carriage-return segment."""
    out = []
    for line in err.split("\n"):
        last = line.split("\r")[-1].strip()
        if last:
            out.append(last)
    return out


def test_multistart_bar_counts_every_start_and_leaves_one_line(two_lines, capsys):
    res = emstats.mixreg("y ~ x", two_lines, k=2).fit(n_init=4, seed=1, progress=True)
    err = capsys.readouterr().err
    lines = _lines(err)
    assert len(lines) == 1, lines
    final = lines[0]
    starts = res.extra["starts"]
    conv = res.convergence
    best_short = conv.extra["start_iterations"]
    total = sum(r.n_iter for r in starts) + conv.n_iter - best_short
    assert re.search(rf"\b{total}it\b", final), (final, total)
    assert "MixtureRegression, Louis-Newton: converged" in final
    # the phases were shown: every start, then the continuation
    for i in range(1, 5):
        assert f"start {i}/4" in err
    assert "from the best of 4 starts" in err
    # no ETA and no total from maxiter (1000): tqdm writes "<mm:ss" and "n/total" then
    assert "<" not in err and "/1000" not in err


def test_single_start_bar_and_no_bar_by_default(censored, capsys):
    res = emstats.tobit("y ~ x", censored).fit(progress=True)
    lines = _lines(capsys.readouterr().err)
    assert len(lines) == 1
    assert re.search(rf"\b{res.convergence.n_iter}it\b", lines[0])
    assert lines[0].startswith("Tobit, Louis-Newton: converged")
    emstats.tobit("y ~ x", censored).fit()
    assert capsys.readouterr().err == ""


def test_bar_of_a_fit_that_stops_early(censored, capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        emstats.tobit("y ~ x", censored).fit(method="em", maxiter=3, progress=True)
    lines = _lines(capsys.readouterr().err)
    assert len(lines) == 1 and "NOT converged (3 EM)" in lines[0]
    assert re.search(r"\b3it\b", lines[0])


def _caught(fn):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fn()
    return [w for w in caught if issubclass(w.category, ConvergenceWarning)]


@pytest.mark.parametrize("method, words", [
    ("em", "EM did not converge: maximum number of iterations reached after 3 EM steps"),
    ("newton", "Louis-Newton did not converge: maximum number of iterations reached after "
               "1 Newton step;"),
    ("squarem", "SQUAREM did not converge"),
])
def test_warning_points_at_the_caller_and_names_the_method(censored, method, words):
    maxiter = 1 if method == "newton" else 3
    caught = _caught(lambda: emstats.tobit("y ~ x", censored).fit(method=method,
                                                                    maxiter=maxiter))
    assert len(caught) == 1
    w = caught[0]
    assert w.filename == __file__
    assert words in str(w.message)


def test_warning_of_monte_carlo_em(censored):
    caught = _caught(lambda: emstats.tobit("y ~ x", censored).fit(
        method="mcem", maxiter=5, seed=0))
    assert len(caught) == 1 and caught[0].filename == __file__
    msg = str(caught[0].message)
    assert msg.startswith("Monte Carlo EM did not converge")
    assert "5 Monte Carlo EM iterations" in msg and "Monte Carlo sample size" in msg


def test_warning_counts_a_multistart_fit(two_lines):
    caught = _caught(lambda: emstats.mixreg("y ~ x", two_lines, k=2).fit(
        n_init=3, seed=1, method="em", maxiter=30, tol=1e-14))
    assert len(caught) == 1 and caught[0].filename == __file__
    msg = str(caught[0].message)
    m = re.search(r"after (\d+) EM steps from the best of 3 starts \((\d+) EM steps\)", msg)
    assert m, msg
    assert int(m.group(1)) + int(m.group(2)) == 30


def test_engine_warning_points_at_the_caller(censored):
    model = emstats.Tobit(censored["y"].to_numpy(),
                          np.column_stack([np.ones(len(censored)), censored["x"]]))
    caught = _caught(lambda: run_em(model, method="em", maxiter=2))
    assert len(caught) == 1 and caught[0].filename == __file__
    assert "after 2 iterations" in str(caught[0].message)
