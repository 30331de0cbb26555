"""Plots of fitted models (matplotlib, imported on first use).

Each function draws on plain arrays and labels, so that the results classes keep thin
``plot_*`` methods; every plot has a title, axis labels and a legend.
"""

from __future__ import annotations

import numpy as np

MC_METHODS = ("mcem", "stochastic")


def pyplot():
    """``matplotlib.pyplot``, or an ImportError saying how to install it."""
    try:
        import matplotlib.pyplot as plt
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("plotting needs matplotlib: pip install 'emstats[plot]'") from err
    return plt


def _axes(ax):
    if ax is None:
        _, ax = pyplot().subplots(figsize=(7, 4.5))
    return ax


def rolling_band(y: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Trailing mean and standard deviation of ``y`` over ``window`` values (fewer at the
    start)."""
    y = np.asarray(y, dtype=float)
    mean, sd = np.empty_like(y), np.empty_like(y)
    for t in range(y.size):
        seg = y[max(0, t - window + 1):t + 1]
        mean[t], sd[t] = seg.mean(), seg.std(ddof=1) if seg.size > 1 else 0.0
    return mean, sd


def convergence(conv, llf: float, *, relative: bool = True, ax=None, title: str | None = None):
    """The log-likelihood trace of a fit.

    Deterministic methods: the distance to the final log-likelihood on a log scale
    (``relative``; iterations that already reached it are left out rather than clipped)
    or the log-likelihood itself.  Monte Carlo and stochastic EM: the log-likelihood of
    every iterate, its trailing mean with a band of two trailing standard deviations (the
    Monte Carlo fluctuation of the iterates), the burn-in shaded, the reported
    log-likelihood as a line, and for MCEM the Monte Carlo sample size on a second axis.
    """
    ax = _axes(ax)
    ll = np.asarray(conv.loglik, dtype=float)
    it = np.arange(ll.size)
    method = conv.method
    if method in MC_METHODS:
        window = max(5, ll.size // 20)
        mean, sd = rolling_band(ll, window)
        ax.plot(it, ll, lw=0.8, color="0.55", label="log-likelihood of the iterate")
        ax.plot(it, mean, color="C0", label=f"trailing mean ({window} iterations)")
        ax.fill_between(it, mean - 2 * sd, mean + 2 * sd, color="C0", alpha=0.25,
                        label="± 2 trailing SD (Monte Carlo fluctuation)")
        ax.axhline(llf, color="C3", ls="--", label=f"reported log-likelihood {llf:.4f}")
        burn = conv.extra.get("burn_in") if isinstance(conv.extra, dict) else None
        if burn:
            ax.axvspan(0, burn, color="0.9", zorder=0, label=f"burn-in ({burn} iterations)")
        # the first iterates are far below: show the part where the chain fluctuates
        tail = ll[ll.size // 10:]
        lo, hi = np.nanmin(tail), np.nanmax(tail)
        pad = 0.1 * (hi - lo) if hi > lo else 1.0
        ax.set_ylim(lo - pad, max(hi, llf) + pad)
        ax.ticklabel_format(axis="y", useOffset=False)
        ax.set_ylabel("log-likelihood")
        sizes = conv.extra.get("mc_size") if isinstance(conv.extra, dict) else None
        if sizes is not None and len(sizes):
            ax2 = ax.twinx()
            ax2.step(np.arange(1, len(sizes) + 1), sizes, where="post", color="C2", lw=1,
                     label="Monte Carlo sample size")
            ax2.set_ylabel("Monte Carlo sample size")
            ax2.set_yscale("log")
            h1, l1 = ax.get_legend_handles_labels()
            h2, l2 = ax2.get_legend_handles_labels()
            ax.legend(h1 + h2, l1 + l2, fontsize="small", loc="lower right")
        else:
            ax.legend(fontsize="small", loc="lower right")
    elif relative:
        gap = ll[-1] - ll
        keep = gap[:-1] > 0
        ax.semilogy(it[:-1][keep], gap[:-1][keep], marker="o", ms=3, label=method)
        ax.set_ylabel("final log-likelihood minus log-likelihood")
        ax.legend()
    else:
        ax.plot(it, ll, marker="o", ms=3, label=method)
        ax.set_ylabel("log-likelihood")
        ax.legend()
    ax.set_xlabel("iteration")
    ax.set_title(title or f"Convergence ({method})")
    return ax


def hmm_states(time, obs, states, probs, *, state_labels, obs_label: str = "observation",
               state_means=None, title: str | None = None, axes=None):
    """Observations coloured by their decoded (Viterbi) state, with the state means, above
    the smoothed state probabilities P(S_t = k | all observations), stacked."""
    plt = pyplot()
    if axes is None:
        fig, axes = plt.subplots(2, 1, sharex=True, figsize=(8, 5.5),
                                 gridspec_kw={"height_ratios": [3, 2]})
    ax0, ax1 = axes
    time = np.asarray(time)
    obs = np.asarray(obs, dtype=float)
    states = np.asarray(states)
    probs = np.asarray(probs, dtype=float)
    colors = [f"C{j % 10}" for j in range(len(state_labels))]
    if obs.ndim == 1:
        ax0.plot(time, obs, color="0.7", lw=0.8, zorder=1)
        for j, lab in enumerate(state_labels):
            sel = states == lab
            ax0.scatter(time[sel], obs[sel], s=14, color=colors[j], zorder=2,
                        label=f"decoded state {lab}")
        if state_means is not None:
            means = np.asarray(state_means, dtype=float).ravel()
            idx = np.searchsorted(np.asarray(state_labels), states)
            ax0.step(time, means[idx], where="mid", color="black", lw=1,
                     label="mean of the decoded state")
    else:
        for c in range(obs.shape[1]):
            ax0.plot(time, obs[:, c], lw=0.8, label=f"variable {c + 1}")
        for j, lab in enumerate(state_labels):
            sel = states == lab
            ax0.scatter(time[sel], np.full(sel.sum(), np.nanmin(obs)), marker="|",
                        color=colors[j], label=f"decoded state {lab}")
    ax0.set_ylabel(obs_label)
    ax0.legend(fontsize="small", ncol=2)
    ax0.set_title(title or "Hidden Markov model: decoded states")
    ax1.stackplot(time, probs.T, colors=colors, alpha=0.8,
                  labels=[f"P(state {lab} | data)" for lab in state_labels])
    ax1.set_ylim(0, 1)
    ax1.set_ylabel("smoothed probability")
    ax1.set_xlabel("time")
    ax1.legend(fontsize="small", loc="upper right", ncol=len(state_labels))
    return axes


ICL_FORMULA = r"ICL $= 2\,\log L - p\,\log n + 2\sum_i \sum_k c_{ik} \log \hat z_{ik}$"
BIC_FORMULA = r"BIC $= 2\,\log L - p\,\log n$"


def selection(table, best_k, best_structure, *, criterion: str = "bic",
              chosen_by: str | None = None, ax=None, title: str | None = None):
    """A criterion (mclust's sign: larger is better) against k, one line per covariance
    structure, with the selected model marked.  ``table`` is k x structure."""
    ax = _axes(ax)
    crit = criterion.lower()
    for col in table.columns:
        ax.plot(table.index, table[col], marker="o", ms=4, label=col)
    if best_structure in table.columns and best_k in table.index:
        val = table.loc[best_k, best_structure]
        who = (chosen_by or crit).upper()
        ax.plot([best_k], [val], marker="o", ms=14, mfc="none", mec="black", mew=1.5,
                label=f"{who}'s choice: {best_structure}, k = {best_k}")
    ax.set_xticks(list(table.index))
    ax.set_xlabel("number of components k")
    ax.set_ylabel(f"{crit.upper()} (larger is better)")
    formula = ICL_FORMULA if crit == "icl" else BIC_FORMULA
    ax.set_title(title or f"Model selection by {crit.upper()}\n{formula}", fontsize="medium")
    if crit == "icl":
        ax.text(0.01, 0.01, r"$c_{ik}$: MAP classification, $\hat z_{ik}$: posterior "
                "probabilities", transform=ax.transAxes, fontsize="x-small", va="bottom")
    ax.legend(ncol=2, fontsize="small")
    return ax


def residuals(fitted, resid, *, kinds=None, ylabel: str = "residual",
              xlabel: str = "fitted mean", title: str = "Residuals against fitted values",
              smooth: bool = True, ax=None):
    """Residuals against fitted values, one marker per kind of observation (e.g.
    uncensored / censored), with the zero line and, if ``smooth``, the mean residual by
    decile of the fitted value (not meaningful where some points are only bounds)."""
    ax = _axes(ax)
    fitted = np.asarray(fitted, dtype=float)
    resid = np.asarray(resid, dtype=float)
    kinds = np.asarray(["observation"] * fitted.size if kinds is None else kinds)
    markers = "os^vD"
    for j, kind in enumerate(dict.fromkeys(kinds.tolist())):
        sel = kinds == kind
        ax.scatter(fitted[sel], resid[sel], s=12, alpha=0.6, marker=markers[j % 5],
                   color=f"C{j}", label=f"{kind} ({int(sel.sum())})")
    ok = np.isfinite(fitted) & np.isfinite(resid)
    if smooth and ok.sum() >= 20:
        edges = np.unique(np.quantile(fitted[ok], np.linspace(0, 1, 11)))
        which = np.clip(np.searchsorted(edges, fitted[ok], side="right") - 1, 0,
                        edges.size - 2)
        centres = [fitted[ok][which == b].mean() for b in range(edges.size - 1)
                   if np.any(which == b)]
        means = [resid[ok][which == b].mean() for b in range(edges.size - 1)
                 if np.any(which == b)]
        ax.plot(centres, means, color="black", marker="s", ms=4,
                label="mean residual by decile of the fitted value")
    ax.axhline(0.0, color="0.4", ls="--", lw=1)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize="small")
    return ax
