"""Property-based tests over the public constructors (issue "Small, degenerate and
streaming input"): random small shapes, NaN and inf placed anywhere, constant and
duplicated columns.  Whatever the input, a constructor followed by ``fit()`` either raises
a clear error (``DataError`` or ``ValueError``, whose message names what is wrong) or
returns finite estimates -- never an internal error (``FloatingPointError``,
``LinAlgError``, ``IndexError``...), never NaN estimates without a warning, and never a
modified input.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import emstats
from emstats.exceptions import DataError

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

SETTINGS = settings(max_examples=25, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])

CLEAR = (DataError, ValueError)


@st.composite
def matrices(draw, min_rows=1, max_rows=30, min_cols=1, max_cols=4):
    n = draw(st.integers(min_rows, max_rows))
    p = draw(st.integers(min_cols, max_cols))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p)) * draw(st.sampled_from([1.0, 1e-3, 1e3]))
    kind = draw(st.sampled_from(["plain", "nan", "inf", "constant", "duplicate", "ints"]))
    if kind in ("nan", "inf"):
        i, j = draw(st.integers(0, n - 1)), draw(st.integers(0, p - 1))
        X[i, j] = np.nan if kind == "nan" else np.inf
    elif kind == "constant":
        X[:, draw(st.integers(0, p - 1))] = 3.0
    elif kind == "duplicate" and p > 1:
        X[:, 1] = X[:, 0]
    elif kind == "ints":
        X = np.round(np.abs(X) * 2)
    return X


def _check(build, data, undefined_se=None):
    """``build(data)`` then ``fit()``: a clear error or finite estimates; data unchanged.
    ``undefined_se(res)``: the standard errors that are NaN by definition (a mask)."""
    before = data.copy()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            res = build(data).fit()
        except CLEAR as err:
            assert str(err), "an error without a message"
            res = None
    np.testing.assert_array_equal(data, before)
    if res is None:
        return
    theta = np.asarray(res.params, dtype=float)
    if not np.all(np.isfinite(theta)):
        assert caught, "non-finite estimates returned without a warning"
    se = np.asarray(res.bse, dtype=float)
    if undefined_se is not None:
        se = se[~undefined_se(res)]
    if not np.all(np.isfinite(se)):
        assert caught, "non-finite standard errors returned without a warning"


@SETTINGS
@given(matrices(min_cols=2), st.sampled_from([0.0, None]))
def test_tobit(X, left):
    y = X[:, 0].copy()
    Xd = np.column_stack([np.ones(len(y)), X[:, 1:]])
    _check(lambda d: emstats.Tobit(y, d, censor_left=left), Xd)


@SETTINGS
@given(matrices(max_cols=3), st.integers(1, 4), st.sampled_from(["VVV", "EII", "VVI", "EEE"]))
def test_gmm(X, k, structure):
    _check(lambda d: emstats.gmm(d, k=k, covariance=structure), X)


@SETTINGS
@given(matrices(max_cols=2), st.integers(1, 3), st.sampled_from(["gaussian", "poisson"]))
def test_hmm(X, k, emission):
    data = np.abs(np.round(X)) if emission == "poisson" else X
    _check(lambda d: emstats.hmm(d[:, :1] if emission == "poisson" else d, k, emission),
           data)


@SETTINGS
@given(matrices(max_cols=1), st.integers(1, 3))
def test_poisson_mixture(X, k):
    counts = np.abs(np.round(X[:, 0]))
    _check(lambda d: emstats.poisson_mixture(d, k=k), counts)


@SETTINGS
@given(matrices(min_rows=2, max_cols=4))
def test_mvn(X):
    Y = X.copy()
    if Y.size > 2:
        Y.flat[:: max(2, Y.size // 3)] = np.nan      # values missing in several places
    _check(lambda d: emstats.mvn(d), Y)


def _frame(X, names):
    import pandas as pd
    return pd.DataFrame({n: X[:, j] for j, n in enumerate(names)})


@SETTINGS
@given(matrices(min_rows=2, min_cols=3, max_cols=6))
def test_factor_analysis(X):
    _check(lambda d: emstats.factor_analysis(d, 1), X)


@SETTINGS
@given(matrices(min_cols=2, max_cols=3), st.integers(1, 3))
def test_mixreg(X, k):
    names = ["y", "x", "z"][:X.shape[1]]
    formula = "y ~ " + " + ".join(names[1:])
    _check(lambda d: emstats.mixreg(formula, _frame(d, names), k=k), X)


@SETTINGS
@given(matrices(min_cols=2, max_cols=2), st.sampled_from(["zeroinfl", "hurdle"]))
def test_zero_inflated(X, kind):
    Y = X.copy()
    Y[:, 0] = np.where(np.isfinite(Y[:, 0]), np.round(np.abs(Y[:, 0])), Y[:, 0])
    build = getattr(emstats, kind)
    _check(lambda d: build("y ~ x", _frame(d, ["y", "x"])), Y)


@SETTINGS
@given(matrices(min_cols=2, max_cols=2))
def test_glmm_logit(X):
    Y = X.copy()
    Y[:, 0] = np.where(np.isfinite(Y[:, 0]), (Y[:, 0] > 0) * 1.0, Y[:, 0])
    g = np.arange(len(Y)) // 3

    def build(d):
        df = _frame(d, ["y", "x"])
        df["g"] = g
        return emstats.glmm_logit("y ~ x", df, groups="g")
    _check(build, Y)


@SETTINGS
@given(matrices(max_cols=3), st.integers(1, 3))
def test_vbgmm(X, k):
    def emptied(res):
        """The means of components emptied by the prior: their posterior is the prior's,
        a Student t without a variance (the summary says so)."""
        m = res.model
        empty = res.raw_params.degrees_of_freedom - m.nu0 < 0.5
        return np.r_[np.zeros(m.K, dtype=bool), np.repeat(empty, m.d)]
    _check(lambda d: emstats.vbgmm(d, k=k), X, emptied)
