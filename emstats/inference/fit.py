"""From a model to a results object: run the engine, then inference and diagnostics."""

from __future__ import annotations

import contextlib
import itertools
import warnings

import numpy as np
import pandas as pd

from .._config import fit_threads, information_memory_limit
from ..em.engine import EMRun, FitOptions, Progress, merge_records, run_em, run_starts
from ..em.monitor import (
    decrease_warning_scope,
    suppress_decrease_warning,
    user_stacklevel,
    warn_not_converged,
)
from ..em.problem import bind
from ..em.protocol import EMModel
from ..exceptions import DataError, DegenerateComponentWarning
from .covariance import (
    COV_TYPES,
    InformationWarning,
    bootstrap_covariance,
    invert_information,
    numerical_information,
    numerical_score,
    sandwich_covariance,
    sandwich_from_meat,
    sem_covariance,
)
from .results import METHOD_NAMES, describe_iterations


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


def _starts(model, opts: FitOptions) -> list[tuple[str, object]]:
    """The start values of a fit: the user's, or the model's from ``init``/``n_init``."""
    if opts.start_params is not None:
        check = getattr(model, "check_start", None)
        return [("user", check(opts.start_params) if check else opts.start_params)]
    make = getattr(model, "initial_starts", None)
    if make is None:
        if opts.init is not None:
            raise ValueError(f"{type(model).__name__} takes no init=; use start_params=")
        if opts.n_init > 1:
            raise ValueError(f"{type(model).__name__} has one default start; n_init must be 1")
        return [("default", model.start_params())]
    return make(opts.init, opts.n_init, np.random.default_rng(opts.seed))


def unit_groups(model, groups, n_units: int) -> np.ndarray:
    """The cluster of each of the model's ``n_units`` independent units.

    ``groups`` gives one value per unit, or one per row of the estimation data in the
    caller's order (a model that sorts its rows says how in ``row_order``; rows of one
    unit -- an HMM's sequence, a GLMM's group -- must then share it).  A pandas
    Series whose index is not the estimation rows' is aligned on the model's
    ``row_labels`` (so ``data["firm"]`` works when rows were dropped for missing values).
    """
    if isinstance(groups, str):
        raise DataError(f"groups= takes the cluster of each row, not a column name: pass "
                        f"data[{groups!r}]")
    data = getattr(model, "data", None)
    n_rows = getattr(data, "n_rows", None)
    labels = getattr(model, "row_labels", None)
    if isinstance(groups, pd.Series) and labels is not None \
            and len(labels) in (n_units, n_rows) and not groups.index.equals(labels):
        aligned = groups.reindex(labels)
        lost = aligned.isna() & ~pd.Index(labels).isin(groups.index)
        if lost.any():
            raise DataError(f"groups has no value for {int(lost.sum())} estimation row(s), "
                            f"e.g. row {labels[np.flatnonzero(lost)[0]]!r}")
        groups = aligned
    g = np.asarray(groups, dtype=object).ravel()
    if pd.isna(g).any():
        raise DataError(f"groups has {int(pd.isna(g).sum())} missing value(s)")
    if len(g) == n_units and getattr(data, "n_units", None) != n_units:
        return g                      # one per unit of scores that are not the data's
    order = getattr(model, "row_order", None)   # data rows in the caller's row order
    if order is not None and n_rows is not None and len(g) == n_rows:
        g = g[np.asarray(order)]
    if len(g) == n_units:
        return g
    bounds = getattr(data, "unit_bounds", None)
    if n_rows is not None and len(g) == n_rows and getattr(data, "n_units", None) == n_units:
        if bounds is None:
            return g
        per_unit = g[bounds[:-1]]
        if not np.array_equal(np.repeat(per_unit, np.diff(bounds)), g):
            raise DataError("groups must be constant within each unit of the model (a "
                            "sequence, a group): a cluster holds whole units")
        return per_unit
    raise DataError(f"groups has {len(g)} values; expected one per row of the estimation "
                    f"data ({n_rows}) or one per unit ({n_units})")


def _check_information_size(model, cov_type):
    """The standard errors to compute: ``cov_type``, or None (with a warning) when the
    information matrix would not fit in the memory limit
    (:func:`emstats._config.information_memory_limit`)."""
    size = getattr(model, "information_bytes", None)
    n = len(model.param_names)
    need = size() if size is not None else 8 * n * n * 4
    limit = information_memory_limit()
    if need <= limit:
        return cov_type
    warnings.warn(
        f"standard errors skipped: the {n} x {n} information matrix of "
        f"{type(model).__name__} needs about {need / 2**30:.2f} GiB, above the limit of "
        f"{limit / 2**30:.2f} GiB (set EMSTATS_MAX_INFO_BYTES to raise it)",
        RuntimeWarning, stacklevel=user_stacklevel())
    return None


def fit_model(
    model: EMModel,
    results_class,
    *,
    nobs: float,
    df_model: float,
    results_kwargs: dict | None = None,
    options: FitOptions | None = None,
    **kwargs,
):
    """Fit ``model`` by EM and build ``results_class`` once, complete.

    The fit is: validate the options (:class:`~emstats.em.engine.FitOptions`, from
    ``options`` or the keyword arguments), bind the model to its data and threads,
    run the engine from the start(s), then standard errors and diagnostics.
    ``results_kwargs`` may be a callable ``f(params, run) -> dict`` for results
    fields that depend on the fit.
    """
    opts = options if options is not None else FitOptions(**kwargs)
    bar = Progress(f"{type(model).__name__}") if opts.progress else None
    try:
        with fit_threads(opts.n_threads), decrease_warning_scope():
            res = _fit(model, results_class, opts, bar, nobs=nobs, df_model=df_model,
                       results_kwargs=results_kwargs)
    except BaseException:
        if bar is not None:
            bar.close(f"{type(model).__name__}: failed")
        raise
    if bar is not None:
        conv = res.convergence
        bar.close(f"{type(model).__name__}, {METHOD_NAMES.get(conv.method, conv.method)}: "
                  f"{'converged' if conv.converged else 'NOT converged'} "
                  f"({describe_iterations(conv, len(res.extra.get('starts', ())) or 1)[1]})")
    return res


def _fit(model, results_class, opts: FitOptions, bar, *, nobs, df_model, results_kwargs):
    """The body of :func:`fit_model`; ``bar``: the fit's :class:`Progress` or None."""
    cov_type = opts.cov_type
    if cov_type is not None and cov_type not in COV_TYPES:
        raise ValueError(f"cov_type must be one of {COV_TYPES} or None (no standard errors), "
                         f"got {cov_type!r}")
    if cov_type is not None:
        cov_type = _check_information_size(model, cov_type)
    problem = bind(model, opts.n_threads)
    starts = _starts(model, opts)
    common = dict(method=opts.method, tol=opts.tol, ptol=opts.ptol,
                  progress=bar if bar is not None else False,
                  callback=opts.callback, seed=opts.seed, method_options=opts.method_options)
    try:
        run, records = run_starts(problem, starts, maxiter=opts.maxiter, warn=False, **common)
        if len(records) > 1:     # short EM runs, then the method (not a boundary restart)
            run.convergence.extra["boundary_restart"] = False
        # an estimate on the boundary of the parameter space (e.g. a probability -> 0):
        # the model fixes those parameters and the fit is finished without them
        restrict = getattr(model, "restrict_boundary", None)
        fixed = restrict(run.params) if restrict is not None else None
        if fixed is not None:
            model, start = fixed
            problem = bind(model, opts.n_threads)
            rest = opts.maxiter - run.convergence.n_iter
            if rest >= 1:
                cont = run_em(problem, start, maxiter=rest, warn=False, **common)
                merged = merge_records(run.convergence, cont.convergence)
                merged.extra["boundary_restart"] = True
                run = EMRun(cont.params, cont.loglik, merged, cont.method, cont.louis)
            else:
                run = EMRun(start, problem.loglike(start), run.convergence, run.method)
    except (FloatingPointError, np.linalg.LinAlgError) as err:
        # a numerical failure usually means degenerate data: let the model say what
        diagnose = getattr(model, "diagnose_failure", None)
        explained = diagnose(err) if diagnose is not None else None
        if explained is not None:
            raise explained from err
        raise
    # an estimate that diverges along a direction the data cannot bound (separation):
    # the model's check of the estimate says so instead of reporting it
    check = getattr(model, "diagnose_estimate", None)
    explained = check(run.params) if check is not None else None
    if explained is not None:
        raise explained
    # a part of the model that collapsed (a singular state covariance): the likelihood is
    # unbounded there; one warning says so, instead of the singular information's
    degenerate = getattr(model, "degenerate_estimate", None)
    collapsed = degenerate(run.params) if degenerate is not None else None
    if collapsed is not None:
        drops = suppress_decrease_warning()
        if drops:
            collapsed += (f"  (The log-likelihood decreased {drops} time(s), by rounding at "
                          "the singular covariance.)")
        warnings.warn(collapsed, DegenerateComponentWarning, stacklevel=user_stacklevel())
    if not run.convergence.converged and run.convergence.reason != "stopped by callback":
        warn_not_converged(
            run.convergence,
            method_name=METHOD_NAMES.get(run.convergence.method, run.convergence.method),
            iterations=describe_iterations(run.convergence, len(records))[0])
    if bar is not None and cov_type is not None:
        bar.describe(f"{type(model).__name__}: standard errors ({cov_type})")
    params, cached = run.params, run.louis
    canonical = getattr(model, "canonical", None)
    if canonical is not None:      # e.g. mixture components in a fixed order
        params, cached = canonical(params), None
    theta = np.asarray(problem.to_inference(params), dtype=float)
    if not np.all(np.isfinite(theta)):
        raise FloatingPointError(
            f"EM produced non-finite estimates {dict(zip(model.param_names, theta, strict=True))}"
        )
    conv = run.convergence
    extra: dict = {}
    if len(records) > 1:
        extra["starts"] = records
        extra["start_logliks"] = np.array([r.loglik for r in records])
    if collapsed is not None:
        extra["degenerate"] = collapsed
    with warnings.catch_warnings() if collapsed is not None else contextlib.nullcontext():
        if collapsed is not None:
            warnings.simplefilter("ignore", InformationWarning)
        cov, info_obs, cov_type = _standard_errors(model, problem, params, theta.size, cached,
                                                   opts, conv, cov_type, extra)
    if not np.isfinite(conv.em_rate) and conv.method == "em":
        conv.em_rate = trace_rate(conv.loglik)
        conv.em_rate_source = "estimated from the log-likelihood trace"
    kw = results_kwargs(params, run) if callable(results_kwargs) else dict(results_kwargs or {})
    kw["extra"] = {**extra, **kw.get("extra", {})}
    return results_class(
        model, theta, cov, llf=run.loglik, nobs=nobs, df_model=df_model,
        cov_type=cov_type if cov_type is not None else "none",
        convergence=conv, raw_params=params, **kw,
    )


def _standard_errors(model, problem, params, k: int, cached, opts: FitOptions, conv, cov_type,
                     extra):
    """The (k x k) covariance of the estimate by ``cov_type`` (NaN when None), the observed
    information where computed, and the covariance type used; fills the convergence
    diagnostics that need the information and ``extra``."""
    score = pieces = info_obs = None
    want_se = cov_type is not None
    if problem.has_louis and (want_se or cached is not None):
        score, pieces = cached if cached is not None else problem.score_and_louis(params)
        info_obs = pieces.observed
        conv.em_rate = pieces.fraction_missing()
        conv.em_rate_source = "Louis: largest eigenvalue of I_complete^-1 I_missing"
    elif want_se:
        score = numerical_score(problem, params)
    if score is not None:
        conv.max_abs_score = float(np.max(np.abs(score))) if score.size else 0.0

    cov = np.full((k, k), np.nan)
    if cov_type == "louis":
        if pieces is None:
            warnings.warn(
                f"{type(model).__name__} does not provide Louis' pieces; using a numerical "
                "Hessian for the standard errors",
                RuntimeWarning,
                stacklevel=user_stacklevel(),
            )
            cov_type = "numerical"
        else:
            cov = invert_information(info_obs, model.param_names)
    if cov_type == "numerical":
        info_num = numerical_information(problem, params)
        info_obs = info_num if info_obs is None else info_obs
        cov = invert_information(info_num, model.param_names)
    elif cov_type == "sem":
        cov, jac = sem_covariance(problem, params)
        extra["em_jacobian"] = jac
    elif cov_type == "bootstrap":
        def fit_one(sub, start):
            r = run_em(sub, start, method=opts.method, maxiter=opts.maxiter, tol=opts.tol,
                       warn=False, seed=opts.seed, method_options=opts.method_options,
                       n_threads=opts.n_threads)
            return np.asarray(sub.to_inference(r.params))

        cov, reps = bootstrap_covariance(model, params, fit_one, n_boot=opts.n_boot,
                                         seed=opts.seed)
        extra["bootstrap_replicates"] = reps
    elif cov_type in ("robust", "cluster"):
        if info_obs is None:
            info_obs = numerical_information(problem, params)
        cov, n_groups = _sandwich(model, problem, params, info_obs, opts.groups)
        if cov_type == "cluster":
            extra["n_clusters"] = n_groups
    if want_se and info_obs is None:
        info_obs = numerical_information(problem, params)
    if info_obs is not None and np.all(np.isfinite(info_obs)):
        try:
            eig = np.linalg.eigvalsh(0.5 * (info_obs + info_obs.T))
            conv.min_eig_information = float(eig.min()) if eig.size else float("nan")
        except np.linalg.LinAlgError:      # an ill-conditioned boundary estimate
            pass
    return cov, info_obs, cov_type


def _sandwich(model, problem, params, info_obs, groups):
    meat_of = getattr(model, "sandwich_meat", None)   # out of core: summed over pieces
    if meat_of is not None:
        meat, n_units, n_groups = meat_of(params, groups)
        if n_units < 2:
            raise ValueError(f"robust and clustered standard errors need several independent "
                             f"units; this {type(model).__name__} has {n_units}")
        if n_units <= meat.shape[0]:
            warnings.warn(f"{n_units} independent units for {meat.shape[0]} parameters: the "
                          "robust covariance is singular", RuntimeWarning,
                          stacklevel=user_stacklevel())
        return sandwich_from_meat(info_obs, meat, n_groups if groups is not None else None,
                                  list(model.param_names)), n_groups
    blocks_of = getattr(problem, "unit_score_blocks", None)
    scores_of = getattr(problem, "unit_scores", None)
    try:
        if blocks_of is not None:
            blocks = blocks_of(params)
        elif scores_of is not None:
            blocks = iter([scores_of(params)])
        else:
            raise NotImplementedError
        first = next(blocks)
    except NotImplementedError:
        raise ValueError(f"robust and clustered standard errors need the score of each "
                         f"unit, which {type(model).__name__} does not provide") from None
    weigh = getattr(model, "unit_weights", None)
    weights = weigh() if weigh is not None else None
    rest = list(itertools.islice(blocks, 1))
    if not rest:                                     # one block: the units' scores at once
        scores = first
        _check_units(model, scores.shape[0], scores.shape[1])
        g = unit_groups(model, groups, scores.shape[0]) if groups is not None else None
        return sandwich_covariance(info_obs, scores, weights=weights, groups=g,
                                   names=list(model.param_names))
    # several blocks (large data): the meat summed block by block, never n x P scores
    n_units = int(problem.n_units)
    _check_units(model, n_units, first.shape[1])
    codes = n_groups = None
    if groups is not None:
        codes, levels = pd.factorize(np.asarray(unit_groups(model, groups, n_units)),
                                     sort=False)
        n_groups = len(levels)
        sums = np.zeros((n_groups, first.shape[1]))
    meat = np.zeros((first.shape[1], first.shape[1]))
    u0 = 0
    for S in itertools.chain([first], rest, blocks):
        u1 = u0 + S.shape[0]
        if codes is not None:
            np.add.at(sums, codes[u0:u1], S)
        elif weights is not None:
            w = np.asarray(weights[u0:u1], dtype=float)
            meat += (S / np.where(w > 0, w, 1.0)[:, None]).T @ S
        else:
            meat += S.T @ S
        u0 = u1
    if u0 != n_units:
        raise RuntimeError(f"the score blocks cover {u0} units of {n_units}")
    if codes is not None:
        meat = sums.T @ sums
    return sandwich_from_meat(info_obs, meat, n_groups, list(model.param_names)), \
        (n_groups if codes is not None else n_units)


def _check_units(model, n_units: int, n_params: int) -> None:
    """Robust standard errors need several units, and more units than parameters for a
    non-singular meat."""
    if n_units < 2:
        raise ValueError(f"robust and clustered standard errors need several independent "
                         f"units; this {type(model).__name__} has {n_units}")
    if n_units <= n_params:
        warnings.warn(f"{n_units} independent units for {n_params} parameters: the robust "
                      "covariance is singular", RuntimeWarning, stacklevel=user_stacklevel())


class FitMixin:
    """The one ``fit()`` of every model: the same options, defaults and meanings.

    A model provides ``results_class``, ``nobs`` and ``df_model`` (attributes or
    properties), and optionally ``initial_starts(init, n_init, rng)`` (a list of
    ``(label, params)``), ``check_start(start_params)``, ``results_kwargs(params, run)``,
    ``restrict_boundary(params)`` (``(model, params)`` with parameters on the boundary
    fixed, or None), ``information_bytes()`` and ``preferred_method``.
    """

    results_class: type = None  # set by each model

    def __repr__(self) -> str:
        terms = getattr(self, "design_info", None)
        rhs = f" ~ {terms.formula}" if terms is not None else ""
        return (f"<{type(self).__name__}: {getattr(self, 'endog_name', 'y')}{rhs}, "
                f"{self.nobs:g} observations, {len(self.param_names)} parameters; "
                "not fitted: call .fit()>")

    def fit(
        self,
        *,
        method: str | None = None,
        maxiter: int = 1000,
        tol: float = 1e-8,
        ptol: float | None = None,
        cov_type: str | None = "louis",
        n_init: int = 1,
        init=None,
        start_params=None,
        seed: int | None = 0,
        n_threads: int | None = None,
        progress: bool = False,
        callback=None,
        method_options: dict | None = None,
        n_boot: int = 200,
        groups=None,
    ):
        """Maximum-likelihood fit by EM.

        Parameters
        ----------
        method : str, optional
            Iteration scheme of the engine (``"em"``, ``"squarem"``, ``"newton"``,
            ``"gradient"``, ``"incremental"``, ``"mcem"``, ``"stochastic"``, ``"aecm"``
            for a model with AECM cycles); default:
            Louis-Newton where the model supplies Louis' pieces, SQUAREM otherwise
            (``docs/methods.md`` says which applies to which model, and why).
        maxiter : int
            Maximum total number of iterations (short multi-start runs of the chosen
            start, and a finish after fixing parameters on the boundary, included).
        tol : float
            Stop when the estimated distance of the log-likelihood to the maximum is
            at most ``tol * min(1 + |loglik|, 10)``: Aitken's estimate from the trace,
            or the Newton decrement for ``"newton"`` (``docs/methods.md``).
        ptol : float, optional
            Also require the parameters to change by less than ``ptol`` (relative).
        cov_type : {"louis", "numerical", "bootstrap", "sem", "robust", "cluster"} or None
            Standard errors: Louis' observed information (default), a numerical Hessian,
            a nonparametric bootstrap, supplemented EM; ``"robust"``: the sandwich
            A^-1 B A^-1 with A the observed information and B the sum of the outer
            products of the units' scores (no small-sample factor, as R's
            ``sandwich::sandwich``; Stata's ``vce(robust)`` multiplies by n / (n - 1));
            ``"cluster"``: B from the scores summed by cluster, times G / (G - 1) for G
            clusters (R's ``sandwich::vcovCL`` defaults, Stata's ``vce(cluster)``).  The
            units are rows, an HMM's sequences, a GLMM's groups; a frequency weight w
            counts as w units.  ``None`` computes none.  When the
            information matrix would exceed the memory limit
            (``EMSTATS_MAX_INFO_BYTES``; :func:`emstats._config.information_memory_limit`)
            the standard errors are skipped with a warning.
        n_init : int
            Number of starts from ``init``; each runs a short EM, the best continues.
        init : optional
            The model's start strategy (see the model's documentation).
        start_params : optional
            Start values; override ``init``.
        seed : int, optional
            Seed of random starts, simulation-based methods and the bootstrap.
        n_threads : int, optional
            Threads of the kernels (default ``OMP_NUM_THREADS``, else all cores); results
            are identical for any number.
        progress : bool
            Show a progress bar.
        callback : callable, optional
            ``callback(iteration, params, loglik)``; return True to stop.
        method_options : dict, optional
            Options of the method, e.g. ``{"n_blocks": 20}`` for ``"incremental"``.
        n_boot : int
            Bootstrap replicates (``cov_type="bootstrap"``).
        groups : array_like or pandas.Series, optional
            Clusters for ``cov_type="cluster"``: one value per row of the estimation
            data (a Series of the original data frame is aligned on the rows used) or
            per unit; the rows of one unit must share their cluster.

        Returns
        -------
        EMResults
            The model's results class.
        """
        opts = FitOptions(method=method, maxiter=maxiter, tol=tol, ptol=ptol,
                          cov_type=cov_type, n_init=n_init, init=init,
                          start_params=start_params, seed=seed, n_threads=n_threads,
                          progress=progress, callback=callback,
                          method_options=method_options, n_boot=n_boot, groups=groups)
        return fit_model(self, self.results_class, nobs=self.nobs, df_model=self.df_model,
                         results_kwargs=getattr(self, "results_kwargs", None), options=opts)


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
        The options of every fit (:class:`~emstats.em.engine.FitOptions`):
        ``start_params``, ``method``, ``maxiter``, ``tol``, ``ptol``, ``cov_type``,
        ``n_boot``, ``seed``, ``n_threads``, ``progress``, ``callback``, ``method_options``.

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
