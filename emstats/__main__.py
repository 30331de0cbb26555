"""Command line: ``python -m emstats {demo,datasets,config,fit}``.

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


def _is_parquet(spec: str) -> bool:
    return spec.lower().endswith((".parquet", ".pq")) or Path(spec).is_dir()


def _executor(args):
    """None (this process), or a Dask executor from --scheduler / --workers."""
    if args.scheduler is None and args.workers is None:
        return None
    from .em.executors import DaskExecutor

    return DaskExecutor(scheduler=args.scheduler, n_workers=args.workers,
                        persist={"auto": None, "yes": True, "no": False}[args.persist])


def _cmd_fit(args) -> int:
    import emstats

    if args.model in ("tobit", "intreg"):
        formula, paths = args.inputs[0], args.inputs[1:]
        if args.data is not None:
            paths = [args.data, *paths]
    else:
        formula, paths = None, list(args.inputs) + ([args.data] if args.data else [])
    if not paths:
        raise ValueError(f"fit {args.model} needs data: "
                         + ("--data FILE" if formula is not None else "FILE [FILE ...]"))
    streamed = all(_is_parquet(p) for p in paths)
    if not streamed and len(paths) > 1:
        raise ValueError("several data files must all be Parquet files")
    columns = args.columns.split(",") if args.columns else None
    executor = _executor(args)
    if executor is not None and not streamed:
        raise ValueError("--scheduler/--workers fit Parquet data; a CSV file is fitted in "
                         "memory")
    try:
        data = paths if streamed else _load_data(paths[0])
        kw = dict(missing=args.missing)
        if args.model in ("gmm", "hmm") and args.k is None:
            raise ValueError(f"fit {args.model} needs --k (the number of components/states)")
        if args.model == "gmm":
            kw["missing"] = "raise" if args.missing == "raise" else "drop"
            if streamed:
                model = emstats.outofcore.gmm(data, args.k, args.covariance, columns=columns,
                                              executor=executor, **kw)
            else:
                model = emstats.gmm(data[columns] if columns else data, args.k,
                                    args.covariance, **kw)
        elif args.model == "hmm":
            if streamed:
                model = emstats.outofcore.hmm(data, args.k, args.emission, columns=columns
                                              or [], groups=args.groups, executor=executor)
            else:
                model = emstats.hmm(columns or list(data.columns), args.k, args.emission,
                                    data=data, groups=args.groups)
        else:
            if args.weights:
                kw["weights"] = args.weights
            build = emstats.outofcore if streamed else emstats
            if streamed:
                kw["executor"] = executor
            if args.model == "tobit":
                model = build.tobit(formula, data, censor_left=_limit(args.censor_left),
                                    censor_right=_limit(args.censor_right), **kw)
            else:
                model = build.intreg(formula, data, **kw)
        fit_kw = dict(method=args.method, tol=args.tol, maxiter=args.maxiter,
                      cov_type=args.cov_type, n_threads=args.threads)
        if args.model == "gmm":
            fit_kw["n_init"] = args.n_init
        res = model.fit(**fit_kw)
        print(res.summary())
    finally:
        if executor is not None:
            executor.close()
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m emstats",
                                description="Maximum likelihood by the EM algorithm.")
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="fit a Tobit model to the shipped Affairs data")
    d.add_argument("--method", default=None, choices=["em", "squarem", "newton"])
    d.set_defaults(func=_cmd_demo)
    s = sub.add_parser("datasets", help="list the shipped datasets")
    s.set_defaults(func=_cmd_datasets)
    c = sub.add_parser("config", help="show how emstats was built (OpenMP, threads)")
    c.set_defaults(func=_cmd_config)
    f = sub.add_parser("fit", help="fit a model and print its summary")
    f.add_argument("model", choices=["tobit", "intreg", "gmm", "hmm"])
    f.add_argument("inputs", nargs="+", metavar="FORMULA|FILE",
                   help='tobit/intreg: a patsy formula, e.g. "y ~ x1 + x2" (then Parquet '
                        "files, or --data); gmm/hmm: the data files")
    f.add_argument("--data", default=None,
                   help="a CSV file, a shipped dataset name, or Parquet file(s)")
    f.add_argument("--k", type=int, default=None, help="gmm/hmm: components or states")
    f.add_argument("--covariance", default="VVV", help="gmm: covariance structure (VVV)")
    f.add_argument("--n-init", type=int, default=5, help="gmm: k-means++ starts (5)")
    f.add_argument("--emission", default="gaussian", choices=["gaussian", "poisson"],
                   help="hmm: emission distribution")
    f.add_argument("--columns", default=None, help="gmm/hmm: comma-separated variables")
    f.add_argument("--groups", default=None, help="hmm: column of sequence ids")
    f.add_argument("--scheduler", default=None,
                   help="a Dask scheduler address (tcp://host:8786): E-steps on the cluster")
    f.add_argument("--workers", type=int, default=None,
                   help="E-steps on a local Dask cluster of this many worker processes")
    f.add_argument("--persist", default="auto", choices=["auto", "yes", "no"],
                   help="keep the data in the workers' memory (auto: when it fits)")
    f.add_argument("--censor-left", default="0",
                   help="left limit: a number, a column name or 'none' (default 0)")
    f.add_argument("--censor-right", default=None,
                   help="right limit: a number, a column name or 'none' (default none)")
    f.add_argument("--weights", default=None, help="column of frequency weights")
    f.add_argument("--method", default=None, choices=["em", "squarem", "newton"])
    f.add_argument("--cov-type", default="louis", choices=["louis", "numerical", "bootstrap"])
    f.add_argument("--no-se", dest="cov_type", action="store_const", const=None,
                   help="skip the standard errors")
    f.add_argument("--tol", type=float, default=1e-8)
    f.add_argument("--maxiter", type=int, default=1000)
    f.add_argument("--threads", type=int, default=None)
    f.add_argument("--missing", default="drop", choices=["drop", "raise"])
    f.set_defaults(func=_cmd_fit)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m emstats`` and the ``emstats`` script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            return int(args.func(args) or 0)
    except (ValueError, TypeError, KeyError, FileNotFoundError, OSError, RuntimeError) as err:
        msg = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        print(f"emstats: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
