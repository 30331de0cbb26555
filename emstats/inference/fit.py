"""From a model to a results object: run the engine, then inference and diagnostics."""

from __future__ import annotations

import warnings

import numpy as np

from ..em.engine import run_em
from ..em.protocol import EMModel
from .covariance import (
    COV_TYPES,
    bootstrap_covariance,
    invert_information,
    numerical_information,
    numerical_score,
    sem_covariance,
)


def trace_rate(loglik: np.ndarray) -> float:
    """Estimate plain EM's linear rate from the tail of its log-likelihood trace.

    Near the MLE the gap to the maximum shrinks by the factor rate^2 per
    iteration, so successive differences of the trace do too.
    """
    d = np.diff(np.asarray(loglik))
    d = d[(d > 0) & np.isfinite(d)]
    if len(d) < 4:
        return float("nan")
    ratios = d[1:] / d[:-1]
    tail = ratios[-min(5, len(ratios)):]
    r = float(np.median(tail))
    return float(np.sqrt(r)) if 0 < r < 1 else float("nan")


def fit_model(
    model: EMModel,
    results_class,
    *,
    start_params=None,
    method: str | None = None,
    maxiter: int = 1000,
    tol: float = 1e-8,
    ptol: float | None = None,
    cov_type: str = "louis",
    n_boot: int = 200,
    seed: int | None = 0,
    progress: bool = False,
    callback=None,
    method_options: dict | None = None,
    nobs: int,
    df_model: float,
    results_kwargs: dict | None = None,
):
    """Fit ``model`` by EM and build ``results_class`` with standard errors and diagnostics."""
    if cov_type not in COV_TYPES:
        raise ValueError(f"cov_type must be one of {COV_TYPES}, got {cov_type!r}")
    run = run_em(model, start_params, method=method, maxiter=maxiter, tol=tol, ptol=ptol,
                 progress=progress, callback=callback, seed=seed,
                 method_options=method_options)
    params = run.params
    theta = np.asarray(model.to_inference(params), dtype=float)
    if not np.all(np.isfinite(theta)):
        raise FloatingPointError(
            f"EM produced non-finite estimates {dict(zip(model.param_names, theta, strict=True))}"
        )
    conv = run.convergence
    pieces = None
    cached = getattr(run.method, "_cached", None)
    if model.has_louis:
        if cached is not None and cached[0].params is params:
            score, pieces = cached[1], cached[2]  # the Newton finish computed them already
        else:
            score, pieces = model.score_and_louis(params)
        info_obs = pieces.observed
        conv.em_rate = pieces.fraction_missing()
        conv.em_rate_source = "Louis: largest eigenvalue of I_complete^-1 I_missing"
    else:
        score = numerical_score(model, params)
        info_obs = None
    conv.max_abs_score = float(np.max(np.abs(score))) if score.size else 0.0

    if cov_type == "louis":
        if pieces is None:
            warnings.warn(
                f"{type(model).__name__} does not provide Louis' pieces; using a numerical "
                "Hessian for the standard errors",
                RuntimeWarning,
                stacklevel=3,
            )
            cov_type = "numerical"
        else:
            cov = invert_information(info_obs, model.param_names)
    if cov_type == "numerical":
        info_num = numerical_information(model, params)
        info_obs = info_num if info_obs is None else info_obs
        cov = invert_information(info_num, model.param_names)
    elif cov_type == "sem":
        cov, jac = sem_covariance(model, params)
        results_kwargs = dict(results_kwargs or {})
        results_kwargs.setdefault("extra", {})["em_jacobian"] = jac
    elif cov_type == "bootstrap":
        def fit_one(sub, start):
            r = run_em(sub, start, method=method, maxiter=maxiter, tol=tol, warn=False,
                       seed=seed, method_options=method_options)
            return np.asarray(sub.to_inference(r.params))

        cov, reps = bootstrap_covariance(model, params, fit_one, n_boot=n_boot, seed=seed)
        results_kwargs = dict(results_kwargs or {})
        results_kwargs.setdefault("extra", {})["bootstrap_replicates"] = reps
    if info_obs is None:
        info_obs = numerical_information(model, params)
    eig = np.linalg.eigvalsh(0.5 * (info_obs + info_obs.T))
    conv.min_eig_information = float(eig.min()) if eig.size else float("nan")
    if not np.isfinite(conv.em_rate) and conv.method == "em":
        conv.em_rate = trace_rate(conv.loglik)
        conv.em_rate_source = "estimated from the log-likelihood trace"
    return results_class(
        model, theta, cov, llf=run.loglik, nobs=nobs, df_model=df_model, cov_type=cov_type,
        convergence=conv, raw_params=params, **(results_kwargs or {}),
    )


def fit_em(model: EMModel, *, nobs: int | None = None, df_model: float | None = None,
           results_class=None, **kwargs):
    """Fit any :class:`~emstats.em.EMModel` -- including your own -- and return results.

    Parameters
    ----------
    model : EMModel
        An object implementing the protocol of :mod:`emstats.em.protocol`.
    nobs : int, optional
        Number of observations for AIC/BIC and ``df_resid`` (default ``model.nobs``).
    df_model : float, optional
        Model degrees of freedom (default: the number of parameters).
    results_class : type, optional
        Subclass of :class:`EMResults` to build (default ``EMResults``).
    **kwargs
        Passed to :func:`fit_model`: ``start_params``, ``method``, ``maxiter``, ``tol``,
        ``ptol``, ``cov_type``, ``n_boot``, ``seed``, ``progress``, ``callback``,
        ``method_options``.

    Returns
    -------
    EMResults
        Louis standard errors when the model supplies Louis' pieces, a numerical
        Hessian otherwise.
    """
    from .results import EMResults

    if nobs is None:
        nobs = getattr(model, "nobs", None)
        if nobs is None:
            raise ValueError("pass nobs= (or give the model an attribute nobs)")
    if df_model is None:
        df_model = len(model.param_names)
    if "cov_type" not in kwargs and not model.has_louis:
        kwargs["cov_type"] = "numerical"
    return fit_model(model, results_class or EMResults, nobs=nobs, df_model=df_model, **kwargs)
