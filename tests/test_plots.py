"""Plots that explain (issue 15, item 5): each renders (matplotlib Agg) with a title, axis
labels and a legend that names what is drawn.

Set EMSTATS_PLOT_DIR to keep the PNGs for looking at them.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import emstats

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


@pytest.fixture
def save(tmp_path):
    out = Path(os.environ.get("EMSTATS_PLOT_DIR", tmp_path))
    out.mkdir(parents=True, exist_ok=True)

    def _save(ax, name):
        fig = np.atleast_1d(ax)[0].figure
        path = out / f"{name}.png"
        fig.savefig(path, dpi=90, bbox_inches="tight")
        plt.close(fig)
        assert path.stat().st_size > 5000
        return path

    yield _save
    plt.close("all")


def labelled(ax) -> list[str]:
    """Check title, axis labels and legend of one Axes; return the legend's texts."""
    assert ax.get_title().strip(), "no title"
    assert ax.get_xlabel().strip() or not ax.xaxis.get_visible() or ax.get_shared_x_axes()
    assert ax.get_ylabel().strip(), "no y label"
    legend = ax.get_legend()
    assert legend is not None, "no legend"
    return [t.get_text() for t in legend.get_texts()]


def test_hmm_states_and_smoothed_probabilities(save):
    eq = emstats.datasets.load("earthquakes")
    res = emstats.hmm(eq["count"], k=2, emission="poisson").fit()
    top, bottom = res.plot_states(time=eq["year"])
    texts = labelled(top)
    assert "decoded state 1" in texts and "decoded state 2" in texts
    assert bottom.get_xlabel() == "time" and "P(state 1 | data)" in labelled_bottom(bottom)
    # the decoded path drawn is the Viterbi path, and the bands are the smoothed probabilities
    vit = res.viterbi().to_numpy()
    colours = {c.get_label(): len(c.get_offsets()) for c in top.collections
               if c.get_label().startswith("decoded")}
    assert colours == {f"decoded state {s}": int((vit == s).sum()) for s in (1, 2)}
    save((top, bottom), "hmm_states")


def labelled_bottom(ax) -> list[str]:
    assert ax.get_ylabel() == "smoothed probability"
    return [t.get_text() for t in ax.get_legend().get_texts()]


def test_hmm_plot_states_of_a_named_sequence():
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"id": np.repeat(["a", "b"], 60), "y": rng.normal(size=120)})
    df.loc[df.index % 20 < 10, "y"] += 3
    res = emstats.hmm("~ y", k=2, data=df, groups="id").fit()
    top, _ = res.plot_states(sequence="b")
    assert "sequence b" in top.get_title()
    with pytest.raises(ValueError, match="2 sequences"):
        res.plot_states(sequence=5)
    plt.close("all")


def test_gmm_density_has_a_component_legend(save):
    faithful = emstats.datasets.load("faithful")
    res = emstats.gmm("~ eruptions + waiting", data=faithful, k=3).fit()
    ax = res.plot_density()
    texts = labelled(ax)
    w = res.weights.to_numpy()
    assert texts == [f"component {j + 1} (weight {w[j]:.2f})" for j in range(3)]
    save(ax, "gmm_density")


def test_icl_selection_plot_marks_icls_choice(save):
    faithful = emstats.datasets.load("faithful")
    kw = dict(k=range(1, 6), covariance=["VVV", "EEE", "VII"], n_init=2)
    sel = emstats.gmm_select(faithful, criterion="icl", **kw)
    assert sel.criterion == "icl"
    ok = sel.table[~sel.table["degenerate"] & ~sel.table["failed"]]
    top = ok.sort_values("icl", ascending=False).iloc[0]
    assert (sel.best.k, sel.best.covariance_type) == (int(top["k"]), top["covariance"])
    ax = sel.plot()
    assert "ICL" in ax.get_title() and r"\log \hat z_{ik}" in ax.get_title()
    assert f"ICL's choice: {top['covariance']}, k = {int(top['k'])}" in labelled(ax)
    save(ax, "gmm_select_icl")
    # BIC's own choice is marked on the BIC plot of the same selection
    bic_top = ok.sort_values("bic", ascending=False).iloc[0]
    ax = sel.plot(criterion="bic")
    assert f"BIC's choice: {bic_top['covariance']}, k = {int(bic_top['k'])}" in labelled(ax)
    plt.close("all")
    with pytest.raises(ValueError, match="criterion must be"):
        emstats.gmm_select(faithful, criterion="aic", **kw)


def test_convergence_plot_of_stochastic_em_shows_the_chain(save):
    faithful = emstats.datasets.load("faithful")
    res = emstats.gmm("~ eruptions + waiting", data=faithful, k=2).fit(
        method="stochastic", seed=3, maxiter=500,
        method_options={"burn_in": 200, "n_keep": 300})
    ax = res.plot_convergence()
    texts = labelled(ax)
    assert any("Monte Carlo fluctuation" in t for t in texts)
    assert any(t.startswith("burn-in (200") for t in texts)
    assert ax.get_yscale() == "linear"  # the log-likelihood itself, not a clipped gap
    lo, hi = ax.get_ylim()
    assert lo < res.llf < hi
    save(ax, "convergence_stochastic")


def test_convergence_plot_of_mcem_shows_the_sample_size(save):
    cbpp = emstats.datasets.load("cbpp")
    res = emstats.glmm_logit("incidence ~ period", data=cbpp, groups="herd",
                             trials="size").fit(method="mcem", seed=1)
    ax = res.plot_convergence()
    texts = labelled(ax)
    assert "Monte Carlo sample size" in texts and "(mcem)" in ax.get_title()
    save(ax, "convergence_mcem")


def test_convergence_plot_of_em_leaves_out_reached_iterations():
    df = emstats.datasets.load("affairs")
    res = emstats.tobit("affairs ~ age + rating", df).fit(method="em")
    ax = res.plot_convergence()
    y = ax.get_lines()[0].get_ydata()
    assert np.all(y > 0) and ax.get_yscale() == "log"
    assert labelled(ax)
    plt.close("all")


def test_regression_residual_plots(save):
    df = emstats.datasets.load("affairs")
    res = emstats.tobit("affairs ~ age + yearsmarried + religiousness + rating", df,
                        censor_left=0, censor_right=7).fit()
    ax = res.plot_residuals()
    texts = labelled(ax)
    m = res.model
    assert f"uncensored ({m.n_exact})" in texts
    assert f"left-censored (residual at most) ({m.n_left})" in texts
    assert f"right-censored (residual at least) ({m.n_right})" in texts
    save(ax, "tobit_residuals")

    a = df["affairs"].to_numpy(float)
    d = df.assign(lower=np.where(a == 0, np.nan, np.where(a == 7, 4.0, a)),
                  upper=np.where(a == 12, np.nan, np.where(a == 7, 10.0, a)))
    ax = emstats.intreg("lower + upper ~ age + rating", d).fit().plot_residuals()
    assert any(t.startswith("interval (midpoint)") for t in labelled(ax))
    plt.close("all")

    patent = emstats.datasets.load("patent")
    mr = emstats.mixreg("Patents ~ lgRD", patent, k=2, family="poisson").fit(n_init=3)
    ax = mr.plot_residuals()
    assert {t.split(" (")[0] for t in labelled(ax)} >= {"component 1", "component 2"}
    y = patent["Patents"].to_numpy(float)
    pts = np.concatenate([c.get_offsets() for c in ax.collections])
    assert np.allclose(np.sort(pts[:, 1]), np.sort(y - mr.predict(which="mean").to_numpy()))
    save(ax, "mixreg_residuals")

    rng = np.random.default_rng(0)
    x = rng.normal(size=400)
    y = np.where(rng.random(400) < 0.3, 0, rng.poisson(np.exp(0.5 + 0.4 * x)))
    zi = emstats.zeroinfl("y ~ x | 1", pd.DataFrame({"y": y, "x": x})).fit()
    ax = zi.plot_residuals()
    assert f"zero ({int((y == 0).sum())})" in labelled(ax)
    save(ax, "zeroinfl_residuals")
