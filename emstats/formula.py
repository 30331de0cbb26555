"""The one module that speaks patsy: formula + data -> arrays, names and design info.

Nothing outside this module imports patsy.  What a fitted model keeps of a formula is a
:class:`Terms`: the right-hand side's terms, the levels of its categorical factors and
the state of its stateful transforms (``center``, ``standardize``, splines), in a form
that pickles and deep-copies, so that results saved to disk still predict on new data.
"""

from __future__ import annotations

import importlib
import io
import pickle
import re
import sys
import types
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import patsy

from .exceptions import DataError, describe_rows


@dataclass
class Design:
    """Arrays built from a formula, with what is needed to rebuild new data.

    Attributes
    ----------
    endog : ndarray, shape (n, q)
        Response column(s); NaN kept where the response may be missing.
    exog : ndarray, shape (n, p)
    endog_names, exog_names : list of str
    design_info : Terms
        Right-hand-side terms, for ``predict`` on new data.
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
    design_info: Terms
    row_labels: pd.Index
    n_dropped: int = 0
    extras: dict[str, np.ndarray] = field(default_factory=dict)


class _ModuleRef:
    """A module named in a formula's environment (``np``), re-imported on unpickling."""

    def __init__(self, name: str):
        self.name = name


class _AttrRef:
    """A module-level function or class named in a formula (``center``, ``np.log`` via
    ``log``), looked up again on unpickling."""

    def __init__(self, module: str, name: str):
        self.module, self.name = module, name


class _Node:
    """A patsy object taken apart: its class and its (converted) attributes."""

    def __init__(self, module: str, qualname: str):
        self.module, self.qualname = module, qualname
        self.state: dict = {}


def _by_reference(value):
    """A module or module-level object as a reference, else None."""
    if isinstance(value, types.ModuleType):
        return _ModuleRef(value.__name__)
    mod, name = getattr(value, "__module__", None), getattr(value, "__name__", None)
    if isinstance(mod, str) and isinstance(name, str) and callable(value):
        owner = sys.modules.get(mod)
        if owner is not None and getattr(owner, name, None) is value:
            return _AttrRef(mod, name)
        if mod.startswith("patsy"):  # patsy's stateful transforms are wrapped functions
            import patsy.builtins as builtins

            for key in dir(builtins):
                if getattr(builtins, key) is value:
                    return _AttrRef("patsy.builtins", key)
    return None


def _dump(obj, memo: dict):
    """Convert a patsy object graph into plain picklable pieces (sharing kept)."""
    key = id(obj)
    if key in memo:
        return memo[key][0]
    if isinstance(obj, (str, bytes, int, float, complex, bool, type(None), np.ndarray,
                        np.generic)):
        return obj
    if isinstance(obj, patsy.EvalEnvironment):
        node = _Node("patsy", "EvalEnvironment")
        memo[key] = (node, obj)
        names: dict = {}
        for ns in obj._namespaces:                         # outermost last
            for name in ns:
                names.setdefault(name, ns[name])
        node.state = {name: _by_reference(v) or _dump(v, memo) for name, v in names.items()}
        node.state = {"namespace": node.state, "flags": obj.flags}
        return node
    cls = type(obj)
    if cls.__module__.startswith("patsy"):
        node = _Node(cls.__module__, cls.__qualname__)
        memo[key] = (node, obj)
        node.state = {k: _dump(v, memo) for k, v in vars(obj).items()}
        return node
    if isinstance(obj, OrderedDict):
        return OrderedDict((_dump(k, memo), _dump(v, memo)) for k, v in obj.items())
    if isinstance(obj, dict):
        return {_dump(k, memo): _dump(v, memo) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return type(obj)(_dump(v, memo) for v in obj)
    return obj  # anything else (a user's function, pandas objects) pickles by itself


def _load(obj, memo: dict):
    """Inverse of :func:`_dump`."""
    if isinstance(obj, _ModuleRef):
        return importlib.import_module(obj.name)
    if isinstance(obj, _AttrRef):
        return getattr(importlib.import_module(obj.module), obj.name)
    if isinstance(obj, _Node):
        if id(obj) in memo:
            return memo[id(obj)]
        if obj.qualname == "EvalEnvironment":
            ns = {k: _load(v, memo) for k, v in obj.state["namespace"].items()}
            env = patsy.EvalEnvironment([ns], obj.state["flags"])
            memo[id(obj)] = env
            return env
        cls = importlib.import_module(obj.module)
        for part in obj.qualname.split("."):
            cls = getattr(cls, part)
        new = object.__new__(cls)
        # attributes first: patsy objects are dict keys and hash by their attributes
        state = {k: _load(v, memo) for k, v in obj.state.items()}
        new.__dict__.update(state)
        memo[id(obj)] = new
        return new
    if isinstance(obj, OrderedDict):
        return OrderedDict((_load(k, memo), _load(v, memo)) for k, v in obj.items())
    if isinstance(obj, dict):
        return {_load(k, memo): _load(v, memo) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return type(obj)(_load(v, memo) for v in obj)
    return obj


class Terms:
    """The right-hand side of a fitted formula: what ``predict`` on new data needs.

    It holds the terms of the formula, the levels of each categorical factor and the
    state of stateful transforms (``center(x)`` keeps the training mean), and builds
    the design matrix of new data with them.  Unlike patsy's own objects it pickles
    and deep-copies: the names the formula uses from the caller's environment are kept
    by reference when they are modules or module-level functions (``np``, ``center``),
    by value otherwise.

    Attributes
    ----------
    column_names : list of str
        Names of the design columns.
    formula : str
        The right-hand side, as patsy describes it.
    levels : dict of str to tuple
        Levels of each categorical factor, as seen in the training data.
    """

    def __init__(self, design_info, offset_info=None):
        self._info = design_info
        self._offset = offset_info     # the formula's offset() terms, if any

    @property
    def column_names(self) -> list[str]:
        return list(self._info.column_names)

    @property
    def formula(self) -> str:
        text = self._info.describe()
        if self._offset is not None:
            text += "".join(f" + offset({t.name()[2:-1]})" for t in self._offset.terms)
        return text

    @property
    def has_offset(self) -> bool:
        """Whether the formula has ``offset()`` terms."""
        return self._offset is not None

    def offset(self, data) -> np.ndarray | None:
        """The sum of the formula's ``offset()`` terms on ``data`` (None without any)."""
        if self._offset is None:
            return None
        if isinstance(data, dict):
            data = pd.DataFrame(data)
        try:
            (mat,) = patsy.build_design_matrices([self._offset], data, NA_action="raise")
        except patsy.PatsyError as err:
            frame = data if isinstance(data, pd.DataFrame) else pd.DataFrame()
            raise _explain_patsy_error(err, frame, "the offset of new data") from None
        return np.asarray(mat, dtype=float).sum(axis=1)

    @property
    def levels(self) -> dict[str, tuple]:
        return {f.name(): tuple(fi.categories) for f, fi in self._info.factor_infos.items()
                if fi.type == "categorical"}

    def categorical_columns(self) -> dict[str, tuple[list[str], bool]]:
        """The design columns that code the levels of a one-factor categorical term:
        column name -> (the names of its term's columns, whether they code every level,
        i.e. no reference level is left out) -- for discrete-change effects."""
        info, out = self._info, {}
        for term in info.terms:
            if len(term.factors) != 1:
                continue
            fi = info.factor_infos[term.factors[0]]
            if fi.type != "categorical":
                continue
            cols = info.column_names[info.term_name_slices[term.name()]]
            full = len(cols) == len(fi.categories)
            for c in cols:
                out[c] = (list(cols), full)
        return out

    def variables(self) -> list[str]:
        """Names the terms' factors use (variables, functions), sorted."""
        used: set[str] = set()
        for term in self._info.terms:
            for factor in term.factors:
                used |= set(re.findall(r"[A-Za-z_.][\w.]*", factor.name()))
        return sorted(used)

    def matrix(self, data, what: str = "new data", na: str = "raise") -> np.ndarray:
        """The design matrix of ``data`` (a DataFrame or dict of columns); a row with a
        missing value is an error (``na="raise"``) or kept with NaN (``na="keep"``, for
        models that integrate missing values out)."""
        if isinstance(data, dict):
            data = pd.DataFrame(data)
        if na not in ("raise", "keep"):
            raise ValueError(f"na must be 'raise' or 'keep', got {na!r}")
        action = "raise" if na == "raise" else patsy.NAAction(NA_types=[])
        try:
            (mat,) = patsy.build_design_matrices([self._info], data, NA_action=action)
        except patsy.PatsyError as err:
            frame = data if isinstance(data, pd.DataFrame) else pd.DataFrame()
            raise _explain_patsy_error(err, frame, what) from None
        return np.asarray(mat, dtype=float)

    def __getstate__(self):
        memo: dict = {}
        return {"info": _dump(self._info, memo), "offset": _dump(self._offset, memo)}

    def __setstate__(self, state):
        memo: dict = {}
        self._info = _load(state["info"], memo)
        self._offset = _load(state.get("offset"), memo)

    def __repr__(self) -> str:
        return f"Terms({self.formula!r})"


def capture_env(depth: int = 0):
    """The namespace of the caller ``depth`` frames above the caller of this function,
    in which formulas look up names that are not columns."""
    return patsy.EvalEnvironment.capture(depth + 1)


def linear_constraint(names: list[str], spec):
    """``(R, q)`` of restrictions given as strings such as ``"x1 = 0"`` or
    ``["x1 = x2", "x3 = 1"]`` on the parameters ``names``; an unknown name is a
    :class:`~emstats.exceptions.DataError` that lists the valid ones."""
    try:
        lc = patsy.DesignInfo(list(names)).linear_constraint(spec)
    except patsy.PatsyError as err:
        rest = spec if isinstance(spec, str) else " , ".join(map(str, spec))
        for name in sorted(map(str, names), key=len, reverse=True):
            rest = re.sub(r"(?<![\w.])" + re.escape(name) + r"(?![\w.])", " ", rest)
        rest = re.sub(r"(?<![\w.])\d+(\.\d*)?([eE][+-]?\d+)?", " ", rest)
        unknown = list(dict.fromkeys(re.findall(r"[A-Za-z_][\w.\[\]():]*", rest)))
        what = (f"unknown parameter{'s' if len(unknown) > 1 else ''} "
                f"{', '.join(map(repr, unknown))}" if unknown
                else str(err).strip().splitlines()[0])
        raise DataError(f"cannot read the restriction {spec!r}: {what}; the parameters "
                        f"are: {', '.join(map(str, names))}") from None
    return lc.coefs, lc.constants[:, 0]


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


def data_frame(data) -> pd.DataFrame:
    """``data`` as a DataFrame (a dict of columns is converted); anything else -- a file
    name, an array -- is a DataError that says what was given."""
    if isinstance(data, dict):
        return pd.DataFrame(data)
    if isinstance(data, pd.DataFrame):
        return data
    what = f"the string {data!r}" if isinstance(data, str) else type(data).__name__
    hint = (f"; read the file first, e.g. data=pandas.read_csv({data!r})"
            if isinstance(data, str) else "")
    raise DataError(f"data must be a pandas DataFrame (or a dict of columns), got {what}{hint}")


def _check_frame(data) -> pd.DataFrame:
    data = data_frame(data)
    if len(data) == 0:
        raise DataError("data is empty (0 rows)")
    return data


def split_formula(formula: str) -> tuple[str, str]:
    """Split ``"lhs ~ rhs"`` into its two sides (lhs may be empty)."""
    if not isinstance(formula, str) or formula.count("~") != 1:
        raise DataError(f"formula must be a string with exactly one '~', got {formula!r}")
    lhs, rhs = formula.split("~")
    return lhs.strip(), rhs.strip()


def split_offsets(rhs: str) -> tuple[str, list[str]]:
    """Take R's ``offset(expr)`` terms out of a right-hand side: ``(the rest, [expr, ...])``.

    ``"x + offset(np.log(t)) - 1"`` gives ``("x - 1", ["np.log(t)"])``.
    """
    offsets: list[str] = []
    out = rhs
    pattern = re.compile(r"(?<![\w.])offset\s*\(")
    while True:
        m = pattern.search(out)
        if not m:
            break
        depth, j = 0, m.end() - 1
        for j in range(m.end() - 1, len(out)):
            depth += out[j] == "("
            depth -= out[j] == ")"
            if depth == 0:
                break
        if depth:
            raise DataError(f"unbalanced parentheses in offset() of {rhs!r}")
        expr = out[m.end():j].strip()
        if not expr:
            raise DataError(f"offset() needs an expression, in {rhs!r}")
        offsets.append(expr)
        before, after = out[:m.start()].rstrip(), out[j + 1:].lstrip()
        if before.endswith("+"):
            before = before[:-1].rstrip()
        elif after.startswith("+"):
            after = after[1:].lstrip()
        elif before and not before.endswith("~"):
            raise DataError(f"offset() must be added to the formula ('+ offset(...)'), "
                            f"in {rhs!r}")
        out = f"{before} {after}".strip()
    if offsets and not re.search(r"[^\s\-+]", re.sub(r"-\s*1|\+\s*0", "", out) or ""):
        out = ("1 " + out).strip() if not out or out.startswith(("-", "+")) else out
    return (out or "1"), offsets


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


class _DropNA(patsy.NAAction):
    """patsy's ``on_NA="drop"`` that records the rows it keeps (``kept``, a boolean mask
    of the data's rows; None when no factor was evaluated), and hands the factors' values
    back uncopied when no row has a missing value (patsy's own copies them all)."""

    def __init__(self):
        super().__init__(on_NA="drop")
        self.kept = None

    def handle_NA(self, values, is_NAs, origins):
        if not is_NAs:
            return super().handle_NA(values, is_NAs, origins)
        drop = np.zeros(is_NAs[0].shape[0], dtype=bool)
        for is_na in is_NAs:
            drop |= is_na
        self.kept = ~drop
        if not drop.any():
            return list(values)
        return [v[self.kept] if v.ndim == 1 else v[self.kept, ...] for v in values]


def build_design(
    formula: str,
    data,
    *,
    n_response: int = 1,
    extras: dict[str, object] | None = None,
    missing: str = "drop",
    response_may_be_nan: bool = False,
    eval_env: patsy.EvalEnvironment | None = None,
    offset_key: str | None = None,
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
    offset_key : str, optional
        The entry of ``extras`` that is the model's offset: R's ``offset(expr)`` terms
        of the right-hand side are added to it (and kept in the :class:`Terms`, for new
        data).  Without it an ``offset()`` term is an error.
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
    rhs, offset_terms = split_offsets(rhs)
    offset_info = None
    if offset_terms:
        if offset_key is None:
            raise DataError(f"formula {formula!r} has offset(): this model takes no offset")
        try:
            off_frame = patsy.dmatrix(" + ".join(["0"] + [f"I({t})" for t in offset_terms]),
                                      data, NA_action=patsy.NAAction(NA_types=[]),
                                      eval_env=env, return_type="dataframe")
        except Exception as err:  # patsy lets evaluation errors of user code through
            raise _explain_patsy_error(err, data, "offset()") from None
        offset_info = off_frame.design_info
        formula_offset = off_frame.to_numpy(dtype=float).sum(axis=1)
        given = (extras or {}).get(offset_key)
        given = resolve_column(given, data, "offset") if given is not None else 0.0
        extras = {**(extras or {}), offset_key: given + formula_offset}
    _check_text_numbers(rhs, data)
    if isinstance(design_info, Terms):
        design_info = design_info._info
    n = len(data)
    if not data.index.is_unique:
        raise DataError("data must have a unique index")
    try:
        # patsy's matrix itself (C-contiguous rows; no DataFrame copy of it), the rows it
        # kept recorded by the NA action
        na = _DropNA()
        if design_info is None:
            mat = patsy.dmatrix(rhs, data, NA_action=na, eval_env=env, return_type="matrix")
        else:
            (mat,) = patsy.build_design_matrices([design_info], data, NA_action=na,
                                                 return_type="matrix")
        if na.kept is None:          # no factor (a formula like "~ 1"): patsy's frame
            if design_info is None:
                mat = patsy.dmatrix(rhs, data, NA_action=patsy.NAAction(on_NA="drop"),
                                    eval_env=env, return_type="dataframe")
            else:
                (mat,) = patsy.build_design_matrices(
                    [design_info], data, NA_action=patsy.NAAction(on_NA="drop"),
                    return_type="dataframe")
    except Exception as err:  # patsy lets evaluation errors of user code through
        raise _explain_patsy_error(err, data, f"right-hand side {rhs!r}") from None
    design_info = mat.design_info
    rhs_names = list(design_info.column_names)
    if na.kept is None:
        keep = np.zeros(n, dtype=bool)
        pos = data.index.get_indexer(mat.index)
        if np.any(pos < 0):
            raise DataError("data must have a unique index")
        keep[pos] = True
        values = mat.to_numpy(dtype=float)
    else:
        keep = na.kept.copy()
        values = np.asarray(mat, dtype=float)
    del mat
    reasons: dict[str, int] = {}
    if (~keep).any():
        named = [c for c in data.columns if isinstance(c, str)
                 and re.search(r"(?<![\w.])" + re.escape(c) + r"(?![\w.])", rhs)
                 and data[c].isna().any()]
        label = "regressors " + ", ".join(named) if named else "regressors"
        reasons[label] = int((~keep).sum())
    if keep.all():
        # every row kept by patsy: its matrix as C-contiguous rows (no copy if it is one)
        exog_full = np.ascontiguousarray(values)
        if not exog_full.flags.writeable:          # a read-only view of pandas' block
            exog_full = exog_full.copy()
    else:
        exog_full = np.full((n, values.shape[1]), np.nan)
        exog_full[keep] = values
    del values
    _check_finite(exog_full, rhs_names, data.index)

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
        endog=endog if keep.all() else endog[keep],      # our own column_stack: no copy
        exog=exog_full if keep.all() else np.ascontiguousarray(exog_full[keep]),
        endog_names=endog_names,
        exog_names=list(design_info.column_names),
        design_info=Terms(design_info, offset_info),
        row_labels=data.index[keep],
        n_dropped=n_drop,
        extras={k: np.ascontiguousarray(v[keep]) for k, v in out_extras.items()},
    )


def _check_finite(mat: np.ndarray, names: list[str], index) -> None:
    """A DataError naming the design columns with infinite values (NaN is missing)."""
    inf = np.isinf(mat)
    if inf.any():
        cols = [str(names[j]) for j in np.flatnonzero(inf.any(axis=0))]
        rows = inf.any(axis=1)
        raise DataError(f"non-finite values (inf) in column(s) {', '.join(map(repr, cols))} "
                        f"of the design, in {int(rows.sum())} row(s) (rows "
                        f"{describe_rows(index, rows)})")


def _looks_numeric(col: pd.Series) -> bool:
    vals = col.dropna()
    if vals.empty:
        return False
    conv = pd.to_numeric(vals.astype(str).str.strip(), errors="coerce")
    return bool(conv.notna().all())


def _check_text_numbers(rhs: str, data: pd.DataFrame) -> None:
    """A DataError for a column of numbers stored as text that the formula would turn
    into dummies (one per distinct value) without saying so; ``C(col)`` asks for that."""
    for c in data.columns:
        if not isinstance(c, str) or not re.search(r"(?<![\w.])" + re.escape(c)
                                                   + r"(?![\w.(])", rhs):
            continue
        col = data[c]
        if (pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col)
                or isinstance(col.dtype, pd.CategoricalDtype)):
            continue
        if re.search(r"C\(\s*" + re.escape(c) + r"\s*[,)]", rhs):
            continue
        if _looks_numeric(col):
            example = col.dropna().iloc[0]
            raise DataError(f"column {c!r} holds numbers stored as text (e.g. {example!r}): "
                            f"convert it with pandas.to_numeric, or write C({c}) to use its "
                            "values as categories")


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
    if isinstance(design_info, Terms):
        design_info = design_info._info
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


def new_exog(terms: Terms, data) -> np.ndarray:
    """Design matrix for new data through a fitted model's :class:`Terms`."""
    return terms.matrix(data)


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
    _check_text_numbers(text, data)
    pos = data.index.get_indexer(frame.index)
    out = np.full((len(data), frame.shape[1]), np.nan)
    out[pos] = frame.to_numpy(dtype=float)
    terms = Terms(frame.design_info)
    return out, terms.column_names, terms, terms.variables()


def numeric_matrix(spec: str, data: pd.DataFrame, eval_env=None, what: str = "the formula"
                   ) -> tuple[pd.DataFrame, Terms]:
    """The columns of a one-sided formula without intercept (``"~ x + np.log(y)"``), NaN
    kept, and its :class:`Terms`; a categorical factor is a
    :class:`~emstats.exceptions.DataError` (the models that use this need numbers)."""
    text = spec.strip()
    if "~" in text:
        lhs, text = text.split("~", 1)
        if lhs.strip():
            raise DataError(f"use a one-sided formula ('~ x + y'), got {spec!r}")
    env = eval_env if eval_env is not None else patsy.EvalEnvironment.capture(1)
    try:
        mat = patsy.dmatrix(text + " - 1", data, NA_action=patsy.NAAction(NA_types=[]),
                            eval_env=env, return_type="dataframe")
    except Exception as err:  # patsy lets evaluation errors of user code through
        msg = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DataError(f"cannot evaluate {what} {spec!r}: {msg}") from None
    terms = Terms(mat.design_info)
    if terms.levels:
        raise DataError(f"column {next(iter(terms.levels))!r} in the formula is not numeric: "
                        "this model needs numeric columns")
    return mat, terms


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


def margin_variables(terms, columns) -> dict[str, dict]:
    """The data columns that the right-hand sides ``terms`` use, with how marginal effects
    treat each (:mod:`emstats.inference.margins`).

    Parameters
    ----------
    terms : list of Terms or None
        The right-hand sides of a model's parts (None entries are skipped).
    columns : sequence of str
        The columns of the data the model keeps.

    Returns
    -------
    dict
        Column name -> ``{"kind": "numeric"}`` or ``{"kind": "categorical", "levels":
        tuple, "reference": level}``, in the order the formula first uses them.  A column
        that some factor treats as categorical (``C(g)``, a text or boolean column) is
        categorical; its reference is the level a treatment contrast codes as all zeros
        (the first level when the coding has none).
    """
    cols = set(map(str, columns))
    out: dict[str, dict] = {}
    for t in terms:
        if t is None:
            continue
        info = t._info
        for term in info.terms:
            for factor in term.factors:
                code = factor.name()
                used = re.findall(r"[A-Za-z_.][\w.]*", code)
                used += re.findall(r"Q\(\s*[\"']([^\"']+)[\"']\s*\)", code)
                fi = info.factor_infos[factor]
                for name in dict.fromkeys(u for u in used if u in cols):
                    if fi.type != "categorical":
                        out.setdefault(name, {"kind": "numeric"})
                        continue
                    levels = tuple(fi.categories)
                    ref = levels[0]
                    for sub in info.term_codings[term]:
                        cm = sub.contrast_matrices.get(factor)
                        if cm is not None:
                            zero = np.flatnonzero(~np.any(np.asarray(cm.matrix) != 0, axis=1))
                            if zero.size == 1:
                                ref = levels[int(zero[0])]
                            break
                    if out.get(name, {}).get("kind") != "categorical":
                        out[name] = {"kind": "categorical", "levels": levels,
                                     "reference": ref}
    return out


def used_columns(terms, columns) -> list[str]:
    """The columns of ``columns`` that the right-hand sides ``terms`` (Terms or None)
    name, their ``offset()`` terms included, in the order of ``columns``.

    Parameters
    ----------
    terms : list of Terms or None
        The right-hand sides.
    columns : sequence
        Column names of the data.

    Returns
    -------
    list of str
    """
    found: set[str] = set()
    for t in terms:
        if t is None:
            continue
        infos = [t._info] + ([t._offset] if t._offset is not None else [])
        for info in infos:
            for factor in info.factor_infos:
                code = factor.name()
                found |= set(re.findall(r"[A-Za-z_.][\w.]*", code))
                found |= set(re.findall(r"Q\(\s*[\"']([^\"']+)[\"']\s*\)", code))
    return [c for c in columns if str(c) in found]


#: whether pandas copies on write (pandas 3, or the option on): then a frame built from
#: another's columns never lets a write to one reach the other
_COPY_ON_WRITE = (int(pd.__version__.split(".")[0]) >= 3
                  or getattr(getattr(pd.options, "mode", None), "copy_on_write", False) is True)


def variables_frame(data, terms, row_labels) -> pd.DataFrame:
    """The estimation rows ``row_labels`` of the columns of ``data`` that the right-hand
    sides ``terms`` use (a new frame, never a view the caller's writes reach: under
    pandas' copy-on-write the columns are shared until either side writes): what
    marginal effects rebuild the designs from.

    Parameters
    ----------
    data : DataFrame or dict of columns
        The data a model was built from.
    terms : list of Terms or None
        The model's right-hand sides.
    row_labels : pandas.Index
        The labels of the rows the model kept.

    Returns
    -------
    pandas.DataFrame
    """
    data = _check_frame(data)
    cols = used_columns(terms, data.columns)
    if len(row_labels) == len(data.index) and row_labels.equals(data.index):
        if _COPY_ON_WRITE and data.columns.is_unique:
            # every row, under copy-on-write: a new frame of the caller's columns, shared
            # until either side writes (no copy of the data, whatever the caller's blocks)
            return pd.DataFrame({c: data[c] for c in cols}, index=data.index, copy=False)
        return data[cols].copy()
    return data.loc[row_labels, cols]   # indexing by labels takes a copy of the rows
