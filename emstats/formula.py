"""The one module that speaks patsy: formula + data -> arrays, names and design info."""

from __future__ import annotations

import io
import pickle
import re
import types
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import patsy

from .exceptions import DataError


@dataclass
class Design:
    """Arrays built from a formula, with what is needed to rebuild new data.

    Attributes
    ----------
    endog : ndarray, shape (n, q)
        Response column(s); NaN kept where the response may be missing.
    exog : ndarray, shape (n, p)
    endog_names, exog_names : list of str
    design_info : patsy.DesignInfo
        Right-hand-side design information, for ``predict`` on new data.
    row_labels : pandas.Index
        Labels of the rows used, in the caller's index.
    n_dropped : int
        Rows dropped because of missing values.
    extras : dict of str to ndarray
        Extra per-row columns (limits, weights, offsets) aligned to the rows used.
    """

    endog: np.ndarray
    exog: np.ndarray
    endog_names: list[str]
    exog_names: list[str]
    design_info: patsy.DesignInfo
    row_labels: pd.Index
    n_dropped: int = 0
    extras: dict[str, np.ndarray] = field(default_factory=dict)


_NAME_RE = re.compile(r"name '([^']+)' is not defined")


def _explain_patsy_error(err: Exception, data: pd.DataFrame, what: str) -> DataError:
    msg = str(err)
    m = _NAME_RE.search(msg)
    if m:
        cols = ", ".join(map(str, list(data.columns)[:30]))
        return DataError(f"{what} names column {m.group(1)!r}, which is not in the data "
                         f"(columns: {cols})")
    first = msg.strip().splitlines()[0] if msg.strip() else type(err).__name__
    return DataError(f"cannot evaluate {what}: {first}")


def _check_frame(data) -> pd.DataFrame:
    if isinstance(data, dict):
        data = pd.DataFrame(data)
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"data must be a pandas DataFrame (or dict of columns), got {type(data)!r}")
    if len(data) == 0:
        raise DataError("data is empty (0 rows)")
    return data


def split_formula(formula: str) -> tuple[str, str]:
    """Split ``"lhs ~ rhs"`` into its two sides (lhs may be empty)."""
    if not isinstance(formula, str) or formula.count("~") != 1:
        raise DataError(f"formula must be a string with exactly one '~', got {formula!r}")
    lhs, rhs = formula.split("~")
    return lhs.strip(), rhs.strip()


def _response_columns(
    lhs: str, data: pd.DataFrame, n_response: int, env: patsy.EvalEnvironment
) -> tuple[np.ndarray, list[str]]:
    """Evaluate the response terms (``y`` or ``lower + upper``) keeping NaN."""
    terms = [t.strip() for t in lhs.split("+")] if n_response > 1 else [lhs]
    if len(terms) != n_response or not all(terms):
        raise DataError(
            f"the left-hand side {lhs!r} must name {n_response} response term(s)"
            + (" joined by '+', e.g. 'lower + upper'" if n_response > 1 else "")
        )
    cols, names = [], []
    for term in terms:
        if term in data.columns:
            raw = data[term]
        else:
            try:
                mat = patsy.dmatrix(
                    f"0 + {term}", data, NA_action=patsy.NAAction(NA_types=[]),
                    eval_env=env, return_type="dataframe",
                )
            except patsy.PatsyError as err:
                raise _explain_patsy_error(err, data, f"response {term!r}") from None
            if mat.shape[1] != 1:
                raise DataError(
                    f"response {term!r} is not numeric (it expands to {mat.shape[1]} columns)"
                )
            raw = mat.iloc[:, 0]
        if not (pd.api.types.is_numeric_dtype(raw) or pd.api.types.is_bool_dtype(raw)):
            raise DataError(f"response {term!r} is not numeric (dtype {raw.dtype})")
        cols.append(np.asarray(raw, dtype=float))
        names.append(term)
    return np.column_stack(cols), names


def build_design(
    formula: str,
    data,
    *,
    n_response: int = 1,
    extras: dict[str, object] | None = None,
    missing: str = "drop",
    response_may_be_nan: bool = False,
    eval_env: patsy.EvalEnvironment | None = None,
    design_info: patsy.DesignInfo | None = None,
) -> Design:
    """Build response and design matrices from a formula.

    Parameters
    ----------
    formula : str
        ``"y ~ x1 + x2"`` (or ``"lower + upper ~ ..."`` with ``n_response=2``).
    data : DataFrame
        Never modified.
    n_response : int
        Number of response terms on the left-hand side.
    extras : dict
        Extra per-row inputs: a scalar, a column name of ``data`` or an array of
        length ``len(data)``; returned aligned with the rows kept.
    missing : {"drop", "raise"}
        What to do with rows where a regressor, an extra column or (unless
        ``response_may_be_nan``) the response is NaN.
    response_may_be_nan : bool
        NaN in the response is meaningful (interval bounds) and never drops a row
        by itself; rows whose responses are *all* NaN are still missing.
    design_info : patsy.DesignInfo, optional
        A right-hand side fixed beforehand (e.g. by :func:`incremental_design_info` over
        all the pieces of out-of-core data), so that every piece gets the same columns.
    """
    if missing not in ("drop", "raise"):
        raise ValueError(f"missing must be 'drop' or 'raise', got {missing!r}")
    data = _check_frame(data)
    lhs, rhs = split_formula(formula)
    if not lhs:
        raise DataError(f"formula {formula!r} has no response on the left of '~'")
    env = eval_env if eval_env is not None else patsy.EvalEnvironment.capture(1)
    endog, endog_names = _response_columns(lhs, data, n_response, env)
    try:
        if design_info is None:
            rhs_frame = patsy.dmatrix(
                rhs, data, NA_action=patsy.NAAction(on_NA="drop"),
                eval_env=env, return_type="dataframe",
            )
        else:
            (rhs_frame,) = patsy.build_design_matrices(
                [design_info], data, NA_action=patsy.NAAction(on_NA="drop"),
                return_type="dataframe")
    except Exception as err:  # patsy lets evaluation errors of user code through
        raise _explain_patsy_error(err, data, f"right-hand side {rhs!r}") from None
    design_info = rhs_frame.design_info
    n = len(data)
    keep = np.zeros(n, dtype=bool)
    pos = data.index.get_indexer(rhs_frame.index) if data.index.is_unique else None
    if pos is None or np.any(pos < 0):
        raise DataError("data must have a unique index")
    keep[pos] = True
    reasons: dict[str, int] = {}
    if (~keep).any():
        named = [c for c in data.columns if isinstance(c, str)
                 and re.search(r"(?<![\w.])" + re.escape(c) + r"(?![\w.])", rhs)
                 and data[c].isna().any()]
        label = "regressors " + ", ".join(named) if named else "regressors"
        reasons[label] = int((~keep).sum())
    exog_full = np.full((n, rhs_frame.shape[1]), np.nan)
    exog_full[pos] = rhs_frame.to_numpy(dtype=float)

    if response_may_be_nan:
        bad = np.all(np.isnan(endog), axis=1)
    else:
        bad = np.any(np.isnan(endog), axis=1)
    if bad.any():
        reasons["response " + " + ".join(endog_names)] = int(bad.sum())
    keep &= ~bad
    out_extras: dict[str, np.ndarray] = {}
    for name, spec in (extras or {}).items():
        arr = resolve_column(spec, data, name)
        if arr is None:
            continue
        miss = np.isnan(arr)
        if miss.any():
            reasons[name] = int(miss.sum())
        keep &= ~miss
        out_extras[name] = arr
    n_drop = int((~keep).sum())
    if n_drop and missing == "raise":
        detail = ", ".join(f"{k}: {v} row(s)" for k, v in reasons.items())
        raise DataError(f"missing values in {detail} (use missing='drop' to drop them)")
    if not keep.any():
        raise DataError(f"no complete rows: all {n} rows have missing values")
    return Design(
        endog=endog[keep],
        exog=np.ascontiguousarray(exog_full[keep]),
        endog_names=endog_names,
        exog_names=list(design_info.column_names),
        design_info=design_info,
        row_labels=data.index[keep],
        n_dropped=n_drop,
        extras={k: np.ascontiguousarray(v[keep]) for k, v in out_extras.items()},
    )


def incremental_design_info(formula: str, frames, eval_env=None) -> patsy.DesignInfo:
    """The right-hand side's design information from a pass over data in pieces.

    Categorical levels and stateful transforms (``center(x)``, ``standardize(x)``) are
    learnt from every piece, one at a time, so that each piece can then be built with the
    same columns (``build_design(..., design_info=...)``).

    Parameters
    ----------
    formula : str
        ``"y ~ rhs"`` or ``"~ rhs"``.
    frames : callable
        ``frames()`` returns a fresh iterator over the pieces (DataFrames); called once
        per pass patsy needs (none when the formula has only numeric columns).
    eval_env : patsy.EvalEnvironment, optional
    """
    _, rhs = split_formula(formula) if "~" in formula else ("", formula)
    env = eval_env if eval_env is not None else patsy.EvalEnvironment.capture(1)
    try:
        return patsy.incr_dbuilder(rhs, frames, eval_env=env,
                                   NA_action=patsy.NAAction(on_NA="drop"))
    except Exception as err:  # noqa: BLE001 - patsy lets evaluation errors through
        first = next(iter(frames()), None)
        raise _explain_patsy_error(err, first if first is not None else pd.DataFrame(),
                                   f"right-hand side {rhs!r}") from None


def design_rows(design_info: patsy.DesignInfo, data) -> np.ndarray:
    """The design of ``data`` through ``design_info`` with a row for every row of the
    data (NaN where a variable is missing)."""
    try:
        (mat,) = patsy.build_design_matrices([design_info], data,
                                             NA_action=patsy.NAAction(NA_types=[]))
    except Exception as err:  # noqa: BLE001
        frame = data if isinstance(data, pd.DataFrame) else pd.DataFrame()
        raise _explain_patsy_error(err, frame, "the formula") from None
    return np.asarray(mat, dtype=float)


def _restore_patsy(cls, state):
    obj = cls.__new__(cls)
    obj.__dict__.update(state)
    return obj


def _import(name: str):
    import importlib

    return importlib.import_module(name)


def _attribute(module: str, name: str):
    return getattr(_import(module), name)


class _DesignPickler(pickle.Pickler):
    """Pickles patsy's design objects (which refuse pickling) by their attributes, and
    their evaluation environments reduced to the names the formula uses."""

    def __init__(self, file, names):
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self.names = names

    def reducer_override(self, obj):
        if isinstance(obj, types.ModuleType):
            return _import, (obj.__name__,)
        cls = type(obj)
        if isinstance(obj, types.FunctionType) and obj.__module__.startswith("patsy"):
            # patsy's stateful transforms are functions under another name
            for mod in (obj.__module__, "patsy.builtins", "patsy"):
                for key, val in vars(_import(mod)).items():
                    if val is obj:
                        return _attribute, (mod, key)
        if cls.__module__.startswith("patsy.") and hasattr(obj, "__dict__"):
            state = dict(obj.__dict__)
            if isinstance(obj, patsy.EvalEnvironment):
                state["_namespaces"] = [{k: v for k, v in ns.items() if k in self.names}
                                        for ns in obj._namespaces]
            return _restore_patsy, (cls, state)
        return NotImplemented


def pack_design(design_info: patsy.DesignInfo) -> bytes:
    """``design_info`` as bytes, to build the same design in another process (patsy's
    objects cannot be pickled directly).  The evaluation environment keeps only the
    names that the formula's terms use."""
    names = set()
    for factor in design_info.factor_infos:
        names |= set(re.findall(r"[A-Za-z_][\w]*", factor.name()))
    buf = io.BytesIO()
    try:
        _DesignPickler(buf, names).dump(design_info)
    except Exception as err:  # noqa: BLE001 - whatever the user's environment holds
        raise DataError(f"the formula cannot be sent to other processes: {err}") from None
    return buf.getvalue()


def unpack_design(data: bytes) -> patsy.DesignInfo:
    """The inverse of :func:`pack_design`."""
    return pickle.loads(data)


def resolve_column(spec, data: pd.DataFrame | None, what: str, n: int | None = None):
    """Turn a scalar, a column name or an array into a float array (None stays None)."""
    if spec is None:
        return None
    n = len(data) if data is not None else n
    if isinstance(spec, str):
        if data is None or spec not in data.columns:
            raise DataError(f"{what}: column {spec!r} is not in the data")
        col = data[spec]
        if not pd.api.types.is_numeric_dtype(col):
            raise DataError(f"{what}: column {spec!r} is not numeric (dtype {col.dtype})")
        return np.asarray(col, dtype=float).copy()
    if np.isscalar(spec):
        try:
            val = float(spec)
        except (TypeError, ValueError):
            raise DataError(f"{what} must be numeric, got {spec!r}") from None
        return np.full(n, val)
    arr = np.asarray(spec, dtype=float).copy()
    if arr.ndim != 1 or (n is not None and arr.shape[0] != n):
        raise DataError(f"{what} must be a scalar, a column name or an array of length {n}, "
                        f"got shape {arr.shape}")
    return arr


def new_exog(design_info: patsy.DesignInfo, data) -> np.ndarray:
    """Design matrix for new data through a fitted model's design information."""
    if isinstance(data, dict):
        data = pd.DataFrame(data)
    try:
        (mat,) = patsy.build_design_matrices([design_info], data, NA_action="raise")
    except patsy.PatsyError as err:
        frame = data if isinstance(data, pd.DataFrame) else pd.DataFrame()
        raise _explain_patsy_error(err, frame, "new data") from None
    return np.asarray(mat, dtype=float)


def rhs_matrix(rhs: str, data, eval_env: patsy.EvalEnvironment | None = None):
    """A right-hand-side formula (``"~ z1 + z2"`` or ``"z1 + z2"``) evaluated on every
    row of ``data``: ``(matrix with NaN rows where a variable is missing, column names,
    design info, names of the variables the formula uses)``."""
    data = _check_frame(data)
    text = rhs.strip()
    if text.startswith("~"):
        text = text[1:].strip()
    if "~" in text or not text:
        raise DataError(f"expected a one-sided formula such as '~ z1 + z2', got {rhs!r}")
    env = eval_env if eval_env is not None else patsy.EvalEnvironment.capture(1)
    try:
        frame = patsy.dmatrix(text, data, NA_action=patsy.NAAction(on_NA="drop"),
                              eval_env=env, return_type="dataframe")
    except Exception as err:
        raise _explain_patsy_error(err, data, f"formula {rhs!r}") from None
    pos = data.index.get_indexer(frame.index)
    out = np.full((len(data), frame.shape[1]), np.nan)
    out[pos] = frame.to_numpy(dtype=float)
    used = set()
    for term in frame.design_info.terms:
        for factor in term.factors:
            used |= set(re.findall(r"[A-Za-z_.][\w.]*", factor.name()))
    return out, list(frame.design_info.column_names), frame.design_info, sorted(used)


def lhs_variables(formula: str) -> list[str]:
    """Names appearing on the left-hand side of ``formula``."""
    lhs, _ = split_formula(formula)
    return [v for v in re.findall(r"[A-Za-z_.][\w.]*", lhs) if v not in ("cbind", "I")]


def cbind_response(formula: str) -> tuple[str, bool]:
    """Rewrite ``"cbind(s, f) ~ rhs"`` as ``"s + f ~ rhs"`` (and say whether it did)."""
    lhs, rhs = split_formula(formula)
    m = re.fullmatch(r"cbind\s*\((.*)\)", lhs)
    if not m:
        return formula, False
    parts = [p.strip() for p in m.group(1).split(",")]
    if len(parts) != 2 or not all(parts):
        raise DataError(f"cbind() on the left needs two terms (successes, failures), got {lhs!r}")
    wrap = [p if re.fullmatch(r"[A-Za-z_.][\w.]*", p) else f"I({p})" for p in parts]
    return f"{wrap[0]} + {wrap[1]} ~ {rhs}", True


def check_frame(data) -> pd.DataFrame:
    """``data`` as a non-empty DataFrame (a dict of columns is converted)."""
    return _check_frame(data)
def numeric_columns(formula: str, data, *, eval_env=None) -> pd.DataFrame:
    """Evaluate the terms of a one-sided formula ``"~ a + b + np.log(c)"`` as numeric
    columns, keeping NaN (for models of incomplete data).

    Parameters
    ----------
    formula : str
        ``"~ term + term ..."``; each term must give one numeric column (no intercept,
        no categorical expansion).
    data : DataFrame
    eval_env : patsy.EvalEnvironment or int, optional
        Where names that are not columns are looked up (default: the caller of the
        function that called this one).

    Returns
    -------
    DataFrame
        One column per term, named by the term, indexed like ``data``.
    """
    data = _check_frame(data)
    lhs, rhs = split_formula(formula)
    if lhs:
        raise DataError(f"formula {formula!r} must be one-sided: '~ a + b + c'")
    if isinstance(eval_env, int) or eval_env is None:
        env = patsy.EvalEnvironment.capture(2 if eval_env is None else eval_env + 1)
    else:
        env = eval_env
    terms = [t.strip() for t in rhs.split("+")]
    terms = [t for t in terms if t not in ("0", "1", "-1")]
    if not terms or not all(terms):
        raise DataError(f"formula {formula!r} names no variables")
    out = {}
    bad = []
    for term in terms:
        if term in data.columns:
            raw = data[term]
            if not (pd.api.types.is_numeric_dtype(raw) or pd.api.types.is_bool_dtype(raw)):
                bad.append(f"{term} (dtype {raw.dtype})")
                continue
            out[term] = np.asarray(raw, dtype=float)
            continue
        try:
            mat = patsy.dmatrix(f"0 + {term}", data, NA_action=patsy.NAAction(NA_types=[]),
                                eval_env=env, return_type="dataframe")
        except Exception as err:  # patsy lets evaluation errors of user code through
            raise _explain_patsy_error(err, data, f"term {term!r}") from None
        if mat.shape[1] != 1:
            bad.append(f"{term} (expands to {mat.shape[1]} columns)")
            continue
        out[term] = mat.iloc[:, 0].to_numpy(dtype=float)
    if bad:
        raise DataError("not numeric: " + ", ".join(bad)
                        + "; every term must be one numeric column")
    if len(out) != len(terms):
        raise DataError(f"formula {formula!r} names a variable twice")
    return pd.DataFrame(out, index=data.index)


def split_two_part(formula: str, data=None) -> tuple[str, str]:
    """Split pscl's two-part formula ``"y ~ x1 + x2 | z1 + z2"`` into the count formula
    ``"y ~ x1 + x2"`` and the zero part ``"z1 + z2"`` (the count regressors when there
    is no ``|``).  A ``.`` on the right stands for every column of ``data`` other than
    the response's."""
    lhs, rhs = split_formula(formula)
    depth, cut = 0, None
    for i, ch in enumerate(rhs):
        depth += ch == "("
        depth -= ch == ")"
        if ch == "|" and depth == 0:
            if cut is not None:
                raise DataError(f"formula {formula!r} has more than one '|'")
            cut = i
    count = rhs if cut is None else rhs[:cut].strip()
    zero = count if cut is None else rhs[cut + 1:].strip()
    if not count or not zero:
        raise DataError(f"formula {formula!r}: empty part around '|'")
    if data is not None:
        lhs_vars = set(re.findall(r"[A-Za-z_.][\w.]*", lhs))
        cols = [str(c) for c in _check_frame(data).columns if str(c) not in lhs_vars]

        def dot(part: str) -> str:
            if re.fullmatch(r"\.|.*(?<![\w.])\.(?![\w.]).*", part):
                return re.sub(r"(?<![\w.])\.(?![\w.])", "(" + " + ".join(cols) + ")", part)
            return part

        count, zero = dot(count), dot(zero)
    return f"{lhs} ~ {count}", zero
def evaluate_terms(rhs: str, data: pd.DataFrame, formula: str, depth: int = 0) -> pd.DataFrame:
    """The columns of the terms ``rhs`` of a one-sided formula, no intercept, NaN kept.

    ``depth`` counts the frames between the caller of this function and the user's
    code whose variables the terms may use (patsy's ``EvalEnvironment.capture``).
    """
    try:
        return patsy.dmatrix("0 + " + rhs, data, NA_action=patsy.NAAction(NA_types=[]),
                             eval_env=patsy.EvalEnvironment.capture(depth + 1),
                             return_type="dataframe")
    except Exception as err:  # noqa: BLE001 - patsy lets user errors through
        raise DataError(f"cannot evaluate the formula {formula!r}: "
                        f"{str(err).strip().splitlines()[0]}") from None
