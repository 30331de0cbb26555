"""Robust (sandwich) and clustered standard errors: ``cov_type="robust"`` and
``cov_type="cluster"`` with ``groups=``.

Witnesses: R's ``sandwich::sandwich`` and ``sandwich::vcovCL`` on ``AER::tobit`` and
``pscl::zeroinfl`` (``tests/results/r_scripts/robust_sandwich.R``); for every model, the
per-unit scores add up to the model's score and match finite differences of each
unit's own log-likelihood.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _fitted import MODELS, _bio
from numpy.testing import assert_allclose
from statsmodels.tools.numdiff import approx_fprime

import emstats
from emstats.em.problem import Problem
from emstats.exceptions import DataError

R = json.loads((Path(__file__).parent / "results" / "robust_sandwich.json").read_text())
TOBIT_F = "affairs ~ age + yearsmarried + religiousness + occupation + rating"

#: models whose units are independent (VB is not a likelihood fit)
INDEPENDENT = ["tobit", "intreg", "hetero_tobit", "gmm", "hmm_sequences", "glmm", "mixreg",
               "poisson_mixture", "mvn", "zeroinfl", "hurdle"]


def _r(case, key):
    return np.array(R[case][key]["matrix"])


@pytest.fixture(scope="module")
def affairs():
    return emstats.datasets.load("affairs")


def test_tobit_against_r_sandwich(affairs):
    # the fits agree with survreg to ~1e-9 (both converged to 1e-12): the covariances
    # agree to the same order
    m = emstats.tobit(TOBIT_F, affairs)
    rob = m.fit(tol=1e-12, cov_type="robust")
    assert rob.cov_type == "robust"
    assert_allclose(rob.cov_params().to_numpy(), _r("tobit", "sandwich"), rtol=1e-7,
                    atol=1e-12)
    cases = {"cluster_occupation": affairs["occupation"],
             "cluster_blocks4": np.arange(len(affairs)) // 4,
             "cluster_none": np.arange(len(affairs))}
    for key, g in cases.items():
        cl = m.fit(tol=1e-12, cov_type="cluster", groups=g)
        assert_allclose(cl.cov_params().to_numpy(), _r("tobit", key), rtol=1e-7, atol=1e-12)
    assert cl.extra["n_clusters"] == len(affairs)
    occ = m.fit(tol=1e-12, cov_type="cluster", groups=affairs["occupation"])
    assert occ.extra["n_clusters"] == R["tobit"]["n_clusters"]["occupation"] == 7
    text = str(occ.summary())
    assert "clustered" in text and "7 clusters" in text


def test_zeroinfl_against_r_sandwich():
    df = _bio()
    m = emstats.zeroinfl("art ~ fem + mar + kid5 + phd + ment | ment", df)
    louis = m.fit(tol=1e-12, ptol=1e-10)
    info = np.linalg.inv(louis.cov_params().to_numpy())
    blocks = np.arange(len(df)) // 5
    for ct, key, meat, kw in (("robust", "sandwich", "meat_n", {}),
                              ("cluster", "cluster_blocks5", "meat_cluster_blocks5_n",
                               {"groups": blocks})):
        res = m.fit(tol=1e-12, ptol=1e-10, cov_type=ct, **kw)
        V = res.cov_params().to_numpy()
        # the meat does not depend on the bread: it agrees closely with R's
        assert_allclose(info @ V @ info, _r("zeroinfl", meat), rtol=1e-6, atol=1e-9)
        # R's bread is the inverse of optim's finite-difference Hessian (its standard
        # errors differ from the exact ones by up to 2e-4): the whole sandwich agrees
        # to that order
        assert_allclose(np.sqrt(np.diag(V)), np.sqrt(np.diag(_r("zeroinfl", key))),
                        rtol=2e-3)


def _hmm_sequences():
    rng = np.random.default_rng(7)
    lengths = [60, 45, 80, 50, 70, 55, 65, 40]
    x, states = [], []
    for n in lengths:
        s = np.cumsum(rng.random(n) < 0.1) % 2
        x.append(rng.poisson(np.where(s == 0, 2.0, 9.0)))
        states.append(s)
    res = emstats.hmm(np.concatenate(x), 2, "poisson", lengths=lengths).fit()
    return res, None


def _fit(name):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if name == "hmm_sequences":
            return _hmm_sequences()
        return MODELS[name]()


@pytest.fixture(scope="module", params=INDEPENDENT)
def fitted(request):
    res, _ = _fit(request.param)
    return request.param, res


def _near(res):
    """Parameters near, not at, the MLE (where the scores do not sum to zero)."""
    th = res.params.to_numpy()
    return res.model.from_inference(th + 1e-3 * (np.abs(th) + 1)
                                    * np.sign(np.sin(np.arange(th.size) + 1.0)))


def test_unit_scores_add_up_to_the_score(fitted):
    name, res = fitted
    pb = Problem(res.model)
    for params in (res.raw_params, _near(res)):
        S = pb.unit_scores(params)
        score = pb.score(params)
        assert S.shape[1] == len(res.params)
        assert_allclose(S.sum(axis=0), score, rtol=1e-8,
                        atol=1e-8 * (1 + np.abs(score).max()))


def test_unit_scores_match_finite_differences(fitted):
    # the score of one unit is the gradient of that unit's log-likelihood: finite
    # differences of chunk_stats' log-likelihood on a one-unit chunk (for MVN, whose
    # chunks hold patterns, of the row's observed-data normal log-density)
    name, res = fitted
    m = res.model
    params = _near(res)
    theta = m.to_inference(params)
    S = Problem(m).unit_scores(params)
    units = np.linspace(0, S.shape[0] - 1, 4).round().astype(int)
    if name == "mvn":
        from scipy.stats import multivariate_normal

        def ll_unit(t, u):
            p = m.from_inference(t)
            o = ~np.isnan(m.X[u])
            return multivariate_normal(p["mean"][o], p["cov"][np.ix_(o, o)]).logpdf(m.X[u, o])
    else:
        chunk = m.data.chunks(1)[0]
        one = m.data.unit_chunks(chunk)

        def ll_unit(t, u):
            return m.chunk_stats(m.from_inference(t), one[u])[1]
    for u in units:
        num = approx_fprime(theta, lambda t, u=u: ll_unit(t, u), centered=True)
        assert_allclose(S[u], num, rtol=1e-5, atol=1e-6 * (1 + np.abs(num).max()))


def test_robust_and_cluster_fits(fitted):
    name, res = fitted
    m = res.model
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rob = m.fit(cov_type="robust")
        n_units = Problem(m).unit_scores(rob.raw_params).shape[0]
        # every unit its own cluster: the robust covariance times m / (m - 1)
        own = m.fit(cov_type="cluster", groups=np.arange(n_units))
    V = rob.cov_params().to_numpy()
    assert np.all(np.isfinite(V)) and np.all(np.linalg.eigvalsh(V) > 0)
    assert_allclose(own.cov_params().to_numpy(), V * n_units / (n_units - 1), rtol=1e-8,
                    atol=1e-14)
    assert own.extra["n_clusters"] == n_units
    assert_allclose(rob.params, res.params, rtol=1e-5, atol=1e-6)


def test_groups_per_row_of_grouped_units():
    # GLMM: units are herds; groups given per row must be constant within a herd
    cbpp = emstats.datasets.load("cbpp").sample(frac=1.0, random_state=3)  # rows shuffled
    m = emstats.glmm_logit("incidence ~ period", data=cbpp, groups="herd", trials="size")
    rob = m.fit(cov_type="robust")
    by_herd = m.fit(cov_type="cluster", groups=cbpp["herd"])
    G = cbpp["herd"].nunique()
    assert by_herd.extra["n_clusters"] == G
    assert_allclose(by_herd.cov_params(), rob.cov_params() * G / (G - 1), rtol=1e-10)
    with pytest.raises(DataError, match="constant within each unit"):
        m.fit(cov_type="cluster", groups=cbpp["period"])


def test_groups_aligned_on_the_rows_used(affairs):
    df = affairs.copy()
    df.loc[df.index[:10], "age"] = np.nan                 # ten rows dropped
    m = emstats.tobit(TOBIT_F, df)
    a = m.fit(cov_type="cluster", groups=df["occupation"])             # a Series: aligned
    b = m.fit(cov_type="cluster", groups=df["occupation"].to_numpy()[10:])
    assert_allclose(a.cov_params(), b.cov_params(), rtol=1e-12)


@pytest.mark.parametrize("kw, err, match", [
    ({"cov_type": "cluster"}, ValueError, "needs groups="),
    ({"cov_type": "robust", "groups": [1, 2]}, ValueError, "groups= is for"),
    ({"cov_type": "cluster", "groups": [1, 2, 3]}, DataError, "expected one per row"),
    ({"cov_type": "cluster", "groups": "occupation"}, DataError, "not a column name"),
    ({"cov_type": "cluster", "groups": np.zeros(601)}, ValueError, "at least two clusters"),
])
def test_bad_requests(affairs, kw, err, match):
    with pytest.raises(err, match=match):
        emstats.tobit(TOBIT_F, affairs).fit(**kw)


def test_missing_groups_value(affairs):
    g = affairs["occupation"].astype(float).copy()
    g.iloc[5] = np.nan
    with pytest.raises(DataError, match="missing value"):
        emstats.tobit(TOBIT_F, affairs).fit(cov_type="cluster", groups=g)


def test_one_sequence_is_not_enough():
    quakes = emstats.datasets.load("earthquakes")
    with pytest.raises(ValueError, match="independent units"):
        emstats.hmm("~ count", 2, "poisson", data=quakes).fit(cov_type="robust")


def test_model_without_unit_scores():
    """A user model on the whole-data protocol has no per-unit scores."""
    class Linkage(emstats.EMModel):         # Dempster, Laird & Rubin's genetic linkage
        param_names = ["p"]
        counts = np.array([125.0, 18.0, 20.0, 34.0])
        nobs = 197

        def start_params(self):
            return np.array([0.5])

        def e_step(self, p):
            p = float(np.asarray(p).ravel()[0])
            y1, y2, y3, y4 = self.counts
            x2 = y1 * (p / 4) / (0.5 + p / 4)
            ll = (y1 * np.log(0.5 + p / 4) + (y2 + y3) * np.log((1 - p) / 4)
                  + y4 * np.log(p / 4))
            return (x2 + y4, y2 + y3), float(ll)

        def m_step(self, stats, p):
            a, b = stats
            return np.array([a / (a + b)])

    with pytest.raises(ValueError, match="score of each unit"):
        emstats.fit_em(Linkage(), cov_type="robust")


def test_frequency_weights_count_as_units(affairs):
    # a row of weight 2 is two units with the same score: the same covariance as the
    # data with that row repeated
    w = (np.arange(len(affairs)) % 3) + 1.0
    rep = affairs.loc[affairs.index.repeat(w.astype(int))].reset_index(drop=True)
    a = emstats.tobit(TOBIT_F, affairs, weights=w).fit(tol=1e-12, cov_type="robust")
    b = emstats.tobit(TOBIT_F, rep).fit(tol=1e-12, cov_type="robust")
    assert_allclose(a.cov_params(), b.cov_params(), rtol=1e-7)
    ids = pd.Series(np.arange(len(affairs)) // 7, index=affairs.index)
    ca = emstats.tobit(TOBIT_F, affairs, weights=w).fit(tol=1e-12, cov_type="cluster",
                                                        groups=ids)
    cb = emstats.tobit(TOBIT_F, rep).fit(tol=1e-12, cov_type="cluster",
                                         groups=ids.repeat(w.astype(int)).to_numpy())
    assert_allclose(ca.cov_params(), cb.cov_params(), rtol=1e-7)


def test_mixreg_cluster_groups_series_aligned():
    """A mixture of regressions takes groups= as a Series too, aligned on the rows used
    (one row dropped for a missing regressor, a non-default index)."""
    rng = np.random.default_rng(0)
    n = 400
    x = rng.normal(size=n)
    y = np.where(rng.random(n) < 0.5, 1 + 2 * x, -1 - x) + rng.normal(size=n) * 0.5
    df = pd.DataFrame({"y": y, "x": x, "g": rng.integers(0, 40, n)},
                      index=np.arange(n)[::-1] * 3)
    df.loc[df.index[5], "x"] = np.nan
    m = emstats.mixreg("y ~ x", df, k=2)
    a = m.fit(cov_type="cluster", groups=df["g"])
    b = m.fit(cov_type="cluster", groups=df["g"].drop(df.index[5]).to_numpy())
    assert np.all(np.isfinite(a.bse))
    assert_allclose(a.cov_params(), b.cov_params(), rtol=1e-12)


def _count_data():
    rng = np.random.default_rng(0)
    n = 300
    x, z = rng.normal(size=n), rng.normal(size=n)
    lab = rng.random(n) < 0.5
    return pd.DataFrame({
        "x": x, "z": z, "x2": rng.normal(size=n), "g": np.repeat(np.arange(100), 3),
        "y": np.where(lab, 1 + 2 * x, -1 - x) + rng.normal(size=n) * 0.5,
        "yc": rng.poisson(np.exp(np.where(lab, 0.5 + 0.5 * x, 1.5 - 0.3 * x))),
        "yz": np.where(rng.random(n) < 0.3, 0, rng.poisson(np.exp(0.5 + 0.3 * x))),
        "w": rng.integers(1, 4, n).astype(float)})


ROW_SCORE_MODELS = {
    "zip": lambda d: emstats.zeroinfl("yz ~ x | z", d),
    "zinb_weighted": lambda d: emstats.zeroinfl("yz ~ x | z", d, dist="negbin",
                                                weights=d["w"]),
    "zip_probit": lambda d: emstats.zeroinfl("yz ~ x | z", d, link="probit"),
    "hurdle": lambda d: emstats.hurdle("yz ~ x | z", d),
    "hurdle_negbin": lambda d: emstats.hurdle("yz ~ x | z", d, dist="negbin",
                                              zero_dist="negbin", weights=d["w"]),
    "mixreg": lambda d: emstats.mixreg("y ~ x", d, k=2),
    "mixreg_concomitant": lambda d: emstats.mixreg("y ~ x", d, k=3, concomitant="~ z"),
    "mixreg_poisson_weighted": lambda d: emstats.mixreg("yc ~ x", d, k=2, family="poisson",
                                                        weights=d["w"]),
    "mixreg_groups_fixed": lambda d: emstats.mixreg("y ~ x", d, k=2, groups="g",
                                                    fixed="~ x2"),
    "poisson_mixture": lambda d: emstats.poisson_mixture(d["yc"], k=2, weights=d["w"]),
}


@pytest.mark.filterwarnings("ignore::statsmodels.tools.sm_exceptions.ConvergenceWarning")
@pytest.mark.parametrize("name", sorted(ROW_SCORE_MODELS))
def test_vectorised_unit_scores_equal_the_unit_by_unit_default(name):
    """The models' own chunk_scores (one pass) equal the protocol's default, Louis'
    pieces of each unit alone, and add up to the score."""
    from emstats.em.protocol import ChunkedModel

    m = ROW_SCORE_MODELS[name](_count_data())
    p = m.fit(cov_type=None, maxiter=50).raw_params
    for ch in m.data.chunks(2):
        own = m.chunk_scores(p, ch)
        ref = ChunkedModel.chunk_scores(m, p, ch)
        assert own.shape == ref.shape
        assert_allclose(own, ref, rtol=1e-10, atol=1e-10 * (1 + np.abs(ref).max()))
        total = m.louis_from_stats(p, m.chunk_louis(p, ch))[1]
        assert_allclose(own.sum(axis=0), total, rtol=1e-10,
                        atol=1e-10 * (1 + np.abs(own).sum()))


@pytest.mark.filterwarnings("ignore::statsmodels.tools.sm_exceptions.ConvergenceWarning")
@pytest.mark.parametrize("cov", ["VVV", "VVI", "EII", "EEE", "VEV", "EVE"])
@pytest.mark.parametrize("missing", [False, True])
def test_gmm_row_scores_are_the_rows_loglik_gradient(cov, missing):
    """The Gaussian mixture's per-row scores (Fisher's identity, window by window; with
    missing values the conditional expectation of the complete-data score) equal central
    differences of each row's observed-data log-density in the inference coordinates
    (1e-7 relative: the differences' error), and, with complete data, the protocol's
    unit-by-unit default; the robust fit then has finite standard errors."""
    from emstats.em.protocol import ChunkedModel

    rng = np.random.default_rng(3)
    X = np.vstack([rng.normal(size=(120, 3)) @ np.diag([1, .5, 2]),
                   rng.normal(size=(100, 3)) + 2.5])
    if missing:
        X[rng.random(X.shape) < 0.1] = np.nan
    m = emstats.gmm(X, k=2, covariance=cov, **({"missing": "em"} if missing else {}))
    p = m.fit(cov_type=None, n_init=1).raw_params
    ch = m.data.chunks(1)[0]
    S = m.chunk_scores(p, ch)
    v = m.to_inference(p)
    G = np.empty_like(S)
    for j in range(v.size):
        e = np.zeros(v.size)
        e[j] = 1e-6 * max(1.0, abs(v[j]))
        G[:, j] = (m._rows_pass(ch["X"], m.from_inference(v + e), want_ll=True)[1]
                   - m._rows_pass(ch["X"], m.from_inference(v - e), want_ll=True)[1]) \
            / (2 * e[j])
    assert_allclose(S, G, atol=1e-7 * np.abs(G).max())
    if not missing:
        assert_allclose(S, ChunkedModel.chunk_scores(m, p, ch), atol=1e-10 * np.abs(G).max())
    assert np.all(np.isfinite(m.fit(cov_type="robust", n_init=1).bse))


@pytest.mark.filterwarnings("ignore::statsmodels.tools.sm_exceptions.ConvergenceWarning")
def test_meat_summed_by_blocks_equals_the_whole(fitted, monkeypatch):
    """With the score blocks capped at a few kB (many blocks), the robust and clustered
    covariances equal those from all the units' scores at once."""
    import emstats.em.problem as problem

    name, res = fitted
    m = res.model
    P = len(res.params)
    n = m.data.n_rows if hasattr(m, "data") else 0
    groups = np.arange(Problem(m).unit_scores(res.raw_params).shape[0]) // 3
    kw = dict(start_params=res.raw_params, maxiter=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        whole = [m.fit(cov_type="robust", **kw), m.fit(cov_type="cluster", groups=groups, **kw)]
        monkeypatch.setattr(problem, "SCORE_BLOCK_BYTES", max(8 * P * max(n, 1) // 7, 8))
        blocked = [m.fit(cov_type="robust", **kw),
                   m.fit(cov_type="cluster", groups=groups, **kw)]
        n_blocks = len(list(Problem(m).unit_score_blocks(res.raw_params)))
    # models with scores of their own (per sequence, per group) give them in one block
    assert n_blocks > 1 or hasattr(m, "unit_scores"), name
    for a, b in zip(whole, blocked, strict=True):
        assert_allclose(b.params, a.params, rtol=0, atol=0)
        assert_allclose(b.cov_params(), a.cov_params(), rtol=1e-10,
                        atol=1e-14 * np.abs(a.cov_params().to_numpy()).max())


@pytest.mark.filterwarnings("ignore::statsmodels.tools.sm_exceptions.ConvergenceWarning")
def test_robust_fit_never_holds_every_units_scores(monkeypatch):
    """The meat is summed over blocks of the units' scores: the peak memory of a robust
    fit stays far below the n x P score matrix (here 15x the data)."""
    import tracemalloc

    import emstats.em.problem as problem

    rng = np.random.default_rng(4)
    n, d, k = 50_000, 4, 4
    X = rng.normal(scale=3.0, size=(k, d))[rng.integers(0, k, n)] + rng.normal(size=(n, d))
    m = emstats.gmm(X, k=k)
    start = m.fit(n_init=1, cov_type=None).raw_params
    monkeypatch.setattr(problem, "SCORE_BLOCK_BYTES", 1 << 20)
    tracemalloc.start()
    try:
        res = m.fit(cov_type="robust", start_params=start, maxiter=2)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    P = len(res.params)
    assert 8 * n * P > 14 * X.nbytes
    # measured 4.9x (30.6x with every unit's scores at once): the fit's own blocks and
    # 1 MB score blocks with their temporaries
    assert peak < 8 * X.nbytes, f"peak {peak / X.nbytes:.1f}x the data"
    assert np.all(np.isfinite(res.bse))
