"""Command line: ``python -m emstats {demo,datasets,config,fit}``.

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


def _cmd_fit(args) -> int:
    import emstats

    data = _load_data(args.data)
    kw = dict(missing=args.missing)
    if args.weights:
        kw["weights"] = args.weights
    if args.model in ("zeroinfl", "hurdle"):
        kw.update(dist=args.dist, link=args.link, offset=args.offset,
                  zero_offset=args.zero_offset)
        if args.model == "hurdle":
            kw["zero_dist"] = args.zero_dist
        elif args.zero_dist != "binomial":
            raise ValueError("--zero-dist applies to hurdle models only")
        model = getattr(emstats, args.model)(args.formula, data, **kw)
    elif args.model == "tobit":
        model = emstats.tobit(args.formula, data, censor_left=_limit(args.censor_left),
                              censor_right=_limit(args.censor_right), **kw)
    else:
        model = emstats.intreg(args.formula, data, **kw)
    res = model.fit(method=args.method, tol=args.tol, maxiter=args.maxiter,
                    cov_type=args.cov_type, n_threads=args.threads)
    print(res.summary())
    if args.model in ("zeroinfl", "hurdle") and args.margeff:
        print(f"\nAverage marginal effects on E[{model.endog_name}] (factor levels: "
              "discrete changes):")
        print(res.margeff().round(4).to_string())
    if args.model in ("zeroinfl", "hurdle") and args.count_table:
        print("\nObserved and expected counts:")
        print(res.count_table().round(2).to_string())
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
    f.add_argument("model", choices=["tobit", "intreg", "zeroinfl", "hurdle"])
    f.add_argument("formula", help='patsy formula, e.g. "y ~ x1 + x2" (zeroinfl, hurdle: '
                   '"y ~ count regressors | zero regressors")')
    f.add_argument("--data", required=True, help="a CSV file or a shipped dataset name")
    f.add_argument("--censor-left", default="0",
                   help="tobit: left limit, a number, a column name or 'none' (default 0)")
    f.add_argument("--censor-right", default=None,
                   help="tobit: right limit, a number, a column name or 'none' (default "
                   "none)")
    f.add_argument("--weights", default=None, help="column of frequency weights")
    f.add_argument("--dist", default="poisson", choices=["poisson", "negbin", "geometric"],
                   help="zeroinfl, hurdle: the count distribution (default poisson)")
    f.add_argument("--zero-dist", default="binomial",
                   choices=["binomial", "poisson", "negbin", "geometric"],
                   help="hurdle: the model of P(y > 0) (default binomial)")
    f.add_argument("--link", default="logit",
                   choices=["logit", "probit", "cloglog", "cauchit", "log"],
                   help="zeroinfl, hurdle: link of the binomial zero part (default logit)")
    f.add_argument("--offset", default=None,
                   help="zeroinfl, hurdle: column of the count part's offset")
    f.add_argument("--zero-offset", default=None,
                   help="zeroinfl, hurdle: column of the zero part's offset")
    f.add_argument("--margeff", action="store_true",
                   help="zeroinfl, hurdle: also print average marginal effects")
    f.add_argument("--count-table", action="store_true",
                   help="zeroinfl, hurdle: also print observed and expected counts")
    f.add_argument("--method", default=None, choices=["em", "squarem", "newton"])
    f.add_argument("--cov-type", default="louis", choices=["louis", "numerical", "bootstrap"])
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
    except (ValueError, TypeError, KeyError, FileNotFoundError, OSError) as err:
        msg = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        print(f"emstats: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
