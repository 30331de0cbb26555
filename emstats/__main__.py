"""Command line: ``python -m emstats {demo,datasets,config,fit MODEL}``.

``fit`` reads a CSV file or a shipped dataset into memory, or Parquet files (paths,
directories or glob patterns) row group by row group, optionally on a Dask cluster
(``--scheduler tcp://host:8786`` or ``--workers 2`` for a local one).

Errors are printed as one readable line and exit with status 2.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

DEMO_FORMULA = "affairs ~ age + yearsmarried + religiousness + occupation + rating"


def _limit(text: str | None):
    """A censoring limit from the command line: a number, 'none', or a column name."""
    if text is None:
        return None
    if text.lower() in ("none", "null", ""):
        return None
    try:
        return float(text)
    except ValueError:
        return text  # a column name


def _load_data(spec: str):
    import pandas as pd

    from . import datasets

    path = Path(spec)
    if path.suffix.lower() in (".csv", ".txt") or path.exists():
        if not path.exists():
            raise FileNotFoundError(f"data file {spec!r} does not exist")
        return pd.read_csv(path)
    return datasets.load(spec)


def _cmd_demo(args) -> int:
    import emstats

    df = emstats.datasets.load("affairs")
    print("Tobit regression of Fair's (1978) Affairs data, left-censored at 0")
    print(f'  emstats.tobit("{DEMO_FORMULA}",')
    print("                data=affairs, censor_left=0).fit()\n")
    res = emstats.tobit(DEMO_FORMULA, df, censor_left=0).fit(method=args.method)
    print(res.summary())
    print()
    print("Average marginal effects on E[affairs]:")
    print(res.get_margeff().summary_frame().round(4).to_string())
    return 0


def _cmd_datasets(args) -> int:
    from . import datasets

    print(datasets.list_datasets().to_string(index=False))
    return 0


def _cmd_config(args) -> int:
    from . import show_config

    show_config()
    return 0


def _columns(data, spec: str | None):
    """``data`` restricted to the comma-separated columns of ``spec`` (all when None)."""
    if spec is None:
        return data
    cols = [c.strip() for c in spec.split(",") if c.strip()]
    missing = [c for c in cols if c not in data.columns]
    if missing:
        raise KeyError(f"--columns names {', '.join(map(repr, missing))}, not in the data "
                       f"(columns: {', '.join(map(str, data.columns))})")
    return data[cols]


def _fit_options(args) -> dict:
    """The common fit() options that were given on the command line (the rest keep each
    model's own defaults)."""
    opts = {"method": args.method, "tol": args.tol, "maxiter": args.maxiter,
            "n_init": args.n_init, "seed": args.seed, "n_threads": args.threads}
    out = {k: v for k, v in opts.items() if v is not None}
    if args.cov_type is not None:
        out["cov_type"] = None if args.cov_type == "none" else args.cov_type
    return out


def _kw(args, *names) -> dict:
    return {n: getattr(args, n) for n in names if getattr(args, n) is not None}


# one builder per model: the parsed arguments -> an unfitted model
def _build_tobit(em, args, data):
    return em.tobit(args.formula, data, censor_left=_limit(args.censor_left),
                    censor_right=_limit(args.censor_right), missing=args.missing,
                    **_kw(args, "weights"))


def _build_intreg(em, args, data):
    return em.intreg(args.formula, data, missing=args.missing, **_kw(args, "weights"))


def _build_mixreg(em, args, data):
    return em.mixreg(args.formula, data, k=args.k, family=args.family, missing=args.missing,
                     **_kw(args, "concomitant", "groups", "fixed", "weights", "trials"))


def _build_glmm(em, args, data):
    return em.glmm(args.formula, data, groups=args.groups, family=args.family,
                   link=args.link, missing=args.missing,
                   **_kw(args, "trials", "offset", "n_agq"))


def _build_gmm(em, args, data):
    return em.gmm(_columns(data, args.columns), k=args.k, covariance=args.covariance,
                  missing=args.missing)


def _build_vbgmm(em, args, data):
    return em.vbgmm(_columns(data, args.columns), k=args.k, missing=args.missing)


def _build_mvn(em, args, data):
    return em.mvn(_columns(data, args.columns), missing=args.missing)


def _build_hmm(em, args, data):
    kw = _kw(args, "groups")
    cols = [c.strip() for c in args.columns.split(",")] if args.columns else None
    if cols is None:
        cols = [c for c in data.columns if c != args.groups]
    if kw:
        return em.hmm("~ " + " + ".join(cols), k=args.k, emission=args.emission, data=data,
                      covariance=args.covariance, **kw)
    obs = _columns(data, ",".join(cols))
    return em.hmm(obs.iloc[:, 0] if obs.shape[1] == 1 else obs, k=args.k,
                  emission=args.emission, covariance=args.covariance)


def _build_poisson_mixture(em, args, data):
    if args.column not in data.columns:
        raise KeyError(f"--column {args.column!r} is not in the data "
                       f"(columns: {', '.join(map(str, data.columns))})")
    return em.poisson_mixture(data[args.column], k=args.k,
                              **({"weights": data[args.weights]} if args.weights else {}))


def _build_counts(em, args, data):
    """zeroinfl and hurdle."""
    kw = dict(dist=args.dist, link=args.link, missing=args.missing,
              **_kw(args, "weights", "offset", "zero_offset"))
    if args.model == "hurdle":
        kw["zero_dist"] = args.zero_dist
    return getattr(em, args.model)(args.formula, data, **kw)


# -- data beyond memory: Parquet files streamed row group by row group, or a Dask cluster --
_STREAMED = ("gmm", "hmm", "tobit", "intreg", "zeroinfl", "hurdle", "mvn", "mixreg")


def _is_parquet(spec: str) -> bool:
    return (spec.lower().endswith((".parquet", ".pq")) or Path(spec).is_dir()
            or any(ch in spec for ch in "*?["))


def _executor(args):
    """None (this process), or a Dask executor from --scheduler / --workers."""
    if args.scheduler is None and args.workers is None:
        return None
    from .em.executors import DaskExecutor

    return DaskExecutor(scheduler=args.scheduler, n_workers=args.workers,
                        persist={"auto": None, "yes": True, "no": False}[args.persist])


def _build_streamed(oc, args, paths, executor):
    """The out-of-core model (``emstats.outofcore``) of ``args.model`` on Parquet ``paths``."""
    cols = [c.strip() for c in args.columns.split(",")] if getattr(args, "columns", None) \
        else None
    kw = {"executor": executor}
    if args.model == "gmm":
        return oc.gmm(paths, args.k, args.covariance, columns=cols,
                      missing="raise" if args.missing == "raise" else "drop", **kw)
    if args.model == "hmm":
        return oc.hmm(paths, args.k, args.emission, columns=cols or [], groups=args.groups,
                      covariance=args.covariance, **kw)
    if args.model == "mvn":
        return oc.mvn(paths, columns=cols, missing=args.missing, **kw)
    kw.update(missing=args.missing, **_kw(args, "weights"))
    if args.model == "tobit":
        return oc.tobit(args.formula, paths, censor_left=_limit(args.censor_left),
                        censor_right=_limit(args.censor_right), **kw)
    if args.model == "intreg":
        return oc.intreg(args.formula, paths, **kw)
    if args.model == "mixreg":
        return oc.mixreg(args.formula, paths, args.k, args.family,
                         **_kw(args, "concomitant", "groups", "fixed", "trials"), **kw)
    if args.model == "hurdle":
        kw["zero_dist"] = args.zero_dist
    return getattr(oc, args.model)(args.formula, paths, dist=args.dist, link=args.link,
                                   **_kw(args, "offset", "zero_offset"), **kw)


def _cmd_fit(args) -> int:
    import emstats

    specs = list(args.data) if isinstance(args.data, list) else [args.data]
    specs = [p for p in specs + list(getattr(args, "files", None) or []) if p is not None]
    if not specs:
        raise ValueError(f"fit {args.model} needs data: --data FILE (or Parquet files after "
                         "the formula)")
    streamed = all(_is_parquet(p) for p in specs)
    if not streamed and len(specs) > 1:
        raise ValueError("several data files must all be Parquet files")
    executor = _executor(args)
    try:
        if executor is not None and not streamed:
            raise ValueError("--scheduler/--workers fit Parquet data; a CSV file or a "
                             "shipped dataset is fitted in memory")
        if streamed:
            if args.model not in _STREAMED:
                raise ValueError(f"fit {args.model} does not read Parquet files (out of "
                                 f"core: {', '.join(_STREAMED)})")
            import emstats.models.outofcore as oc

            model = _build_streamed(oc, args, specs, executor)
        else:
            model = args.build(emstats, args, _load_data(specs[0]))
        res = model.fit(**_fit_options(args))
        print(res.summary())        # (the summary may need a pass over the data)
        if args.model in ("zeroinfl", "hurdle") and args.margeff:
            print(f"\nAverage marginal effects on E[{model.endog_name}] (factor levels: "
                  "discrete changes):")
            print(res.margeff().round(4).to_string())
        if args.model in ("zeroinfl", "hurdle") and args.count_table:
            print("\nObserved and expected counts:")
            print(res.count_table().round(2).to_string())
    finally:
        if executor is not None:
            executor.close()
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse with its usage errors on one line (``emstats: error: ...``), status 2."""

    def error(self, message):
        self.exit(2, f"emstats: error: {message} (see '{self.prog} --help')\n")


def _add_fit_options(f) -> None:
    g = f.add_argument_group("fit options (default: the model's own)")
    g.add_argument("--method", default=None,
                   help="em, squarem, newton, gradient, incremental, mcem, stochastic, cem "
                        "(see docs/methods.md for which applies)")
    g.add_argument("--cov-type", default=None,
                   choices=["louis", "numerical", "bootstrap", "sem", "robust", "none"])
    g.add_argument("--tol", type=float, default=None)
    g.add_argument("--maxiter", type=int, default=None)
    g.add_argument("--n-init", type=int, default=None, help="number of starts")
    g.add_argument("--seed", type=int, default=None)
    g.add_argument("--threads", type=int, default=None)
    d = f.add_argument_group("data beyond memory (Parquet input; pip install emstats[dask])")
    d.add_argument("--scheduler", default=None,
                   help="a Dask scheduler address (tcp://host:8786): E-steps on the cluster")
    d.add_argument("--workers", type=int, default=None,
                   help="E-steps on a local Dask cluster of this many worker processes")
    d.add_argument("--persist", default="auto", choices=["auto", "yes", "no"],
                   help="keep the data in the workers' memory (auto: when it fits)")


def _add_fit_parsers(sub) -> None:
    fit = sub.add_parser("fit", help="fit a model and print its summary",
                         description="Fit a model to a CSV file or a shipped dataset and print "
                                     "its summary.")
    models = fit.add_subparsers(dest="model", required=True, metavar="MODEL",
                                parser_class=_Parser)

    def formula_model(name, help_, build):
        m = models.add_parser(name, help=help_, description=help_)
        m.add_argument("formula", help='patsy formula, e.g. "y ~ x1 + x2"')
        m.add_argument("files", nargs="*", metavar="PARQUET",
                       help="Parquet files, directories or glob patterns (instead of --data)")
        m.add_argument("--data", default=None,
                       help="a CSV file, a shipped dataset name or Parquet file(s)")
        m.add_argument("--missing", default="drop", choices=["drop", "raise"])
        m.set_defaults(func=_cmd_fit, build=build)
        return m

    def data_model(name, help_, build, missing=("raise", "drop")):
        m = models.add_parser(name, help=help_, description=help_)
        m.add_argument("data", nargs="+",
                       help="a CSV file, a shipped dataset name, or Parquet files, "
                            "directories or glob patterns")
        m.add_argument("--columns", default=None,
                       help="comma-separated columns to use (default: all)")
        m.add_argument("--missing", default=missing[0], choices=list(missing))
        m.set_defaults(func=_cmd_fit, build=build)
        return m

    m = formula_model("tobit", "Tobit (censored normal) regression", _build_tobit)
    m.add_argument("--censor-left", default="0",
                   help="left limit: a number, a column name or 'none' (default 0)")
    m.add_argument("--censor-right", default=None,
                   help="right limit: a number, a column name or 'none' (default none)")
    m.add_argument("--weights", default=None, help="column of frequency weights")
    _add_fit_options(m)
    m = formula_model("intreg", 'interval regression, "lower + upper ~ x"', _build_intreg)
    m.add_argument("--weights", default=None, help="column of frequency weights")
    _add_fit_options(m)
    m = formula_model("mixreg", "finite mixture of regressions", _build_mixreg)
    m.add_argument("--k", type=int, required=True, help="number of components")
    m.add_argument("--family", default="gaussian",
                   choices=["gaussian", "poisson", "binomial", "negbin"])
    m.add_argument("--concomitant", default=None, help='prior model, e.g. "~ z"')
    m.add_argument("--groups", default=None, help="column whose rows share a component")
    m.add_argument("--fixed", default=None, help='coefficients shared by all, e.g. "~ x2"')
    m.add_argument("--weights", default=None, help="column of frequency weights")
    m.add_argument("--trials", default=None, help="column of binomial trials")
    _add_fit_options(m)
    m = formula_model("glmm", "random-intercept GLMM (binomial logit/probit, Poisson log)",
                      _build_glmm)
    m.add_argument("--groups", required=True, help="column of the random-intercept groups")
    m.add_argument("--family", default="binomial", choices=["binomial", "poisson"],
                   help="distribution of the response (default binomial)")
    m.add_argument("--link", default=None, choices=["logit", "probit", "log"],
                   help="link (default logit for binomial, log for poisson)")
    m.add_argument("--trials", default=None, help="column of binomial trials")
    m.add_argument("--offset", default=None, help="column added to the linear predictor")
    m.add_argument("--n-agq", type=int, default=None, help="quadrature nodes (default 25)")
    _add_fit_options(m)
    for name, help_ in (("zeroinfl", "zero-inflated count regression"),
                        ("hurdle", "hurdle count regression")):
        m = formula_model(name, help_ + ' ("y ~ count regressors | zero regressors")',
                          _build_counts)
        m.add_argument("--dist", default="poisson", choices=["poisson", "negbin", "geometric"],
                       help="the count distribution (default poisson)")
        if name == "hurdle":
            m.add_argument("--zero-dist", default="binomial",
                           choices=["binomial", "poisson", "negbin", "geometric"],
                           help="the model of P(y > 0) (default binomial)")
        m.add_argument("--link", default="logit",
                       choices=["logit", "probit", "cloglog", "cauchit", "log"],
                       help="link of the binomial zero part (default logit)")
        m.add_argument("--weights", default=None, help="column of frequency weights")
        m.add_argument("--offset", default=None, help="column of the count part's offset")
        m.add_argument("--zero-offset", default=None, help="column of the zero part's offset")
        m.add_argument("--margeff", action="store_true",
                       help="also print average marginal effects")
        m.add_argument("--count-table", action="store_true",
                       help="also print observed and expected counts")
        _add_fit_options(m)
    m = data_model("gmm", "Gaussian mixture", _build_gmm)
    m.add_argument("--k", type=int, required=True, help="number of components")
    m.add_argument("--covariance", default="VVV",
                   help="mclust structure (VVV, EEE, VVI, ...) or full/tied/diag/spherical")
    _add_fit_options(m)
    m = data_model("vbgmm", "variational Bayesian Gaussian mixture", _build_vbgmm)
    m.add_argument("--k", type=int, required=True, help="number of components (upper bound)")
    _add_fit_options(m)
    m = data_model("mvn", "multivariate normal with missing values (EM)", _build_mvn,
                   missing=("em", "drop", "raise"))
    _add_fit_options(m)
    m = models.add_parser("hmm", help="hidden Markov model", description="hidden Markov model")
    m.add_argument("data", nargs="+",
                   help="a CSV file, a shipped dataset name, or Parquet files")
    m.add_argument("--columns", default=None,
                   help="comma-separated observed columns (default: all but --groups)")
    m.add_argument("--k", type=int, required=True, help="number of states")
    m.add_argument("--emission", default="gaussian",
                   choices=["gaussian", "poisson", "categorical"])
    m.add_argument("--covariance", default="diag", choices=["diag", "full"])
    m.add_argument("--groups", default=None, help="column naming the sequences")
    m.set_defaults(func=_cmd_fit, build=_build_hmm)
    _add_fit_options(m)
    m = models.add_parser("poisson-mixture", help="mixture of Poisson distributions",
                          description="mixture of Poisson distributions")
    m.add_argument("data", help="a CSV file or a shipped dataset name")
    m.add_argument("--column", required=True, help="the column of counts")
    m.add_argument("--k", type=int, required=True, help="number of components")
    m.add_argument("--weights", default=None, help="column of frequency weights")
    m.set_defaults(func=_cmd_fit, build=_build_poisson_mixture)
    _add_fit_options(m)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m emstats",
                description="Maximum likelihood by the EM algorithm.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    d = sub.add_parser("demo", help="fit a Tobit model to the shipped Affairs data")
    d.add_argument("--method", default=None, choices=["em", "squarem", "newton"])
    d.set_defaults(func=_cmd_demo)
    s = sub.add_parser("datasets", help="list the shipped datasets")
    s.set_defaults(func=_cmd_datasets)
    c = sub.add_parser("config", help="show how emstats was built (OpenMP, threads)")
    c.set_defaults(func=_cmd_config)
    _add_fit_parsers(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m emstats`` and the ``emstats`` script."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:      # usage errors (status 2, one line) and --help (0)
        return int(stop.code or 0)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            return int(args.func(args) or 0)
    except BrokenPipeError:  # the reader went away (``... | head``): nothing to report
        sys.stderr.close()
        return 0
    except (ValueError, TypeError, KeyError, LookupError, ArithmeticError, MemoryError,
            OSError, RuntimeError) as err:
        text = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
        text = str(text).strip()
        msg = text.splitlines()[0] if text else type(err).__name__
        print(f"emstats: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
