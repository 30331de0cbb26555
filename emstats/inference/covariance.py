"""Covariance of the MLE: Louis' method, a numerical Hessian, or the bootstrap."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from statsmodels.tools.numdiff import approx_fprime, approx_hess3

from ..em.protocol import EMModel

COV_TYPES = ("louis", "numerical", "bootstrap", "sem", "robust", "cluster")
COV_LABELS = {
    "louis": "Louis (1982) observed information",
    "numerical": "numerical Hessian of the log-likelihood",
    "bootstrap": "nonparametric bootstrap",
    "sem": "supplemented EM (Meng & Rubin 1991)",
    "posterior": "posterior standard deviations of the variational posterior (not sampling "
                 "standard errors)",
    "robust": "robust (sandwich: inverse observed information around the outer product "
              "of the per-unit scores, no small-sample factor, as R's sandwich::sandwich)",
    "cluster": "clustered (sandwich with the scores summed by cluster, times G / (G - 1), "
               "as R's sandwich::vcovCL)",
}


class InformationWarning(RuntimeWarning):
    """The observed information is not positive definite at the solution."""


def invert_information(info: np.ndarray, names: list[str] | None = None) -> np.ndarray:
    """Invert an observed information matrix, warning (not failing) when it is not PD."""
    info = 0.5 * (info + info.T)
    if not np.all(np.isfinite(info)):
        rows = np.flatnonzero(~np.isfinite(info).all(axis=1))
        bad = ", ".join(str(names[i]) for i in rows[:5]) if names else ""
        warnings.warn(
            "observed information has non-finite entries at the solution"
            f"{' (rows of ' + bad + ')' if bad else ''}; standard errors are not available "
            "(NaN). The estimate may be on the boundary of the parameter space (a "
            "probability at 0 or 1) or the model may not be identified.",
            InformationWarning,
            stacklevel=3,
        )
        return np.full_like(info, np.nan)
    try:
        c = np.linalg.cholesky(info)
        ci = np.linalg.inv(c)
        return ci.T @ ci
    except np.linalg.LinAlgError:
        w, v = np.linalg.eigh(info)
        bad = ", ".join(str(names[i]) for i in np.argsort(w)[:1]) if names else ""
        warnings.warn(
            "observed information is not positive definite at the solution (smallest "
            f"eigenvalue {w.min():.3g}{'; direction dominated by ' + bad if bad else ''}); "
            "standard errors are not available (NaN). The fit may be at a saddle point or the "
            "model may not be identified.",
            InformationWarning,
            stacklevel=3,
        )
        return np.full_like(info, np.nan)


def sandwich_covariance(info: np.ndarray, scores: np.ndarray, *, weights=None,
                        groups=None, names: list[str] | None = None
                        ) -> tuple[np.ndarray, int]:
    """Robust or clustered covariance A^-1 B A^-1 of an M-estimate.

    Parameters
    ----------
    info : ndarray, shape (k, k)
        Observed information A (the negative Hessian of the log-likelihood).
    scores : ndarray, shape (m, k)
        Score contribution of each of the m independent units (weights included: the
        rows add up to the total score).
    weights : ndarray, shape (m,), optional
        Frequency weights of the units: a unit of weight w stands for w units with the
        same score, so without clusters it adds ``c c' / w`` to the meat.
    groups : array_like, shape (m,), optional
        Cluster of each unit: B = G / (G - 1) sum_g s_g s_g' with s_g the summed scores of
        cluster g (R's ``vcovCL`` with its defaults ``type = "HC0"``, ``cadjust = TRUE``;
        Stata's ``vce(cluster)`` factor for ML models).  Without groups
        B = sum_i s_i s_i' (HC0, R's ``sandwich``).

    Returns
    -------
    cov : ndarray, shape (k, k)
    n_clusters : int
        G, or the number of units without groups.
    """
    scores = np.asarray(scores, dtype=float)
    m, k = scores.shape
    bread = invert_information(info, names)
    if groups is None:
        if weights is None:
            meat = scores.T @ scores
        else:
            w = np.asarray(weights, dtype=float)
            meat = (scores / np.where(w > 0, w, 1.0)[:, None]).T @ scores
        n_groups, factor = m, 1.0
    else:
        codes, levels = pd.factorize(np.asarray(groups), sort=False)
        n_groups = len(levels)
        if n_groups < 2:
            raise ValueError("cov_type='cluster' needs at least two clusters, got "
                             f"{n_groups}")
        sums = np.zeros((n_groups, k))
        np.add.at(sums, codes, scores)
        meat = sums.T @ sums
        factor = n_groups / (n_groups - 1.0)
    cov = factor * bread @ meat @ bread
    return 0.5 * (cov + cov.T), int(n_groups)


def sandwich_from_meat(info: np.ndarray, meat: np.ndarray, n_clusters: int | None = None,
                       names: list[str] | None = None) -> np.ndarray:
    """A^-1 B A^-1 from a meat B summed elsewhere (for example over the pieces of
    out-of-core data), times G / (G - 1) with ``n_clusters`` G (clustered), as
    :func:`sandwich_covariance`.

    Parameters
    ----------
    info : ndarray, shape (k, k)
        Observed information A.
    meat : ndarray, shape (k, k)
        B: sum_i s_i s_i' / w_i (robust) or sum_g s_g s_g' (clustered).
    n_clusters : int, optional
        G for a clustered meat (None: robust, no factor).
    names : list of str, optional
        Parameter names (for the message of a singular A).

    Returns
    -------
    ndarray, shape (k, k)
    """
    if n_clusters is not None and n_clusters < 2:
        raise ValueError(f"cov_type='cluster' needs at least two clusters, got {n_clusters}")
    factor = 1.0 if n_clusters is None else n_clusters / (n_clusters - 1.0)
    bread = invert_information(info, names)
    cov = factor * bread @ np.asarray(meat, dtype=float) @ bread
    return 0.5 * (cov + cov.T)


def numerical_information(model: EMModel, params) -> np.ndarray:
    """Negative numerical Hessian of the observed log-likelihood (inference coordinates)."""
    theta = np.asarray(model.to_inference(params), dtype=float)
    return -approx_hess3(theta, model.loglike_inference)


def numerical_score(model: EMModel, params) -> np.ndarray:
    """Central-difference gradient of the observed log-likelihood (inference coordinates)."""
    theta = np.asarray(model.to_inference(params), dtype=float)
    return approx_fprime(theta, model.loglike_inference, centered=True)


def bootstrap_covariance(
    model, params, fit_one, n_boot: int = 200, seed: int | None = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Nonparametric bootstrap over the model's independent units.

    ``fit_one(submodel, start)`` must return the estimate (inference coordinates)
    for a resampled model; resampling uses ``model.bootstrap_model(idx)``.
    Returns the covariance and the array of replicate estimates.
    """
    if not hasattr(model, "bootstrap_model"):
        raise ValueError(f"{type(model).__name__} does not support bootstrap standard errors")
    if int(n_boot) < 2:
        raise ValueError(f"n_boot must be at least 2, got {n_boot!r}")
    rng = np.random.default_rng(seed)
    n = model.n_units
    reps = []
    for _ in range(int(n_boot)):
        idx = rng.integers(0, n, size=n)
        try:
            reps.append(fit_one(model.bootstrap_model(idx), params))
        except ValueError:
            continue  # e.g. a resample with every row censored: not estimable
    reps = np.asarray(reps)
    if len(reps) < max(2, int(0.9 * n_boot)):
        raise ValueError(
            f"only {len(reps)} of {n_boot} bootstrap replicates could be fitted"
        )
    return np.cov(reps, rowvar=False), reps


def em_map_jacobian(model: EMModel, params, rel_step: float = 1e-5) -> np.ndarray:
    """Central-difference Jacobian of the EM map in inference coordinates.

    ``J[j, i] = d M_j / d theta_i`` where ``M(theta)`` is one E-step and one M-step.
    At the MLE its eigenvalues are the fractions of missing information.
    """
    theta = np.asarray(model.to_inference(params), dtype=float)

    def em_map(t):
        p = model.from_inference(t)
        stats, _ = model.e_step(p)
        return np.asarray(model.to_inference(model.m_step(stats, p)), dtype=float)

    k = len(theta)
    jac = np.empty((k, k))
    for i in range(k):
        h = rel_step * max(1.0, abs(theta[i]))
        e = np.zeros(k)
        e[i] = h
        jac[:, i] = (em_map(theta + e) - em_map(theta - e)) / (2 * h)
    return jac


def sem_covariance(model: EMModel, params) -> tuple[np.ndarray, np.ndarray]:
    """Supplemented EM (Meng & Rubin 1991): covariance from the EM map's Jacobian.

    With J the Jacobian of the EM map at the MLE and I_c the expected complete-data
    information, the observed information is I_c (I - J), so the covariance is
    (I - J)^-1 I_c^-1.  Needs the complete-data information (Louis' ``complete``
    piece, or a model method ``complete_information(params)``).  Returns the
    covariance and J.
    """
    if hasattr(model, "complete_information"):
        i_c = np.asarray(model.complete_information(params), dtype=float)
    elif model.has_louis:
        i_c = model.louis(params).complete
    else:
        raise ValueError(
            f"cov_type='sem' needs the complete-data information, which "
            f"{type(model).__name__} does not provide; use cov_type='numerical'"
        )
    jac = em_map_jacobian(model, params)
    k = jac.shape[0]
    cov = np.linalg.solve(np.eye(k) - jac, np.linalg.inv(i_c))
    return 0.5 * (cov + cov.T), jac
