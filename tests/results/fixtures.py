"""Loaders for the R reference fixtures stored in ``tests/results/*.json``.

The JSON files are produced by the R scripts in ``tests/results/r_scripts``
(see the README there).  Every double is written with 17 significant digits,
so the values parse to exactly the doubles R computed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

RESULTS_DIR = Path(__file__).resolve().parent

#: Per-case entries holding named vectors (converted to ``pandas.Series``).
_SERIES_KEYS = ("coefficients", "bse", "zvalues", "pvalues")
#: Top-level or per-case entries holding plain numeric vectors
#: (converted to float ``numpy`` arrays, ``null`` -> ``nan``).
_ARRAY_KEYS = ("linear_predictors", "weights", "lower", "upper")


def _to_array(values: list[Any]) -> np.ndarray:
    """Convert a JSON list of numbers (``None`` for NA) to a float array."""
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def _convert_case(case: dict[str, Any]) -> dict[str, Any]:
    """Convert the containers of one fitted-model record."""
    out = dict(case)
    for key in _SERIES_KEYS:
        if key in out:
            out[key] = pd.Series(out[key], dtype=float, name=key)
    if "vcov" in out:
        v = out["vcov"]
        out["vcov"] = pd.DataFrame(
            np.array(v["values"], dtype=float),
            index=v["rownames"],
            columns=v["colnames"],
        )
    for key in _ARRAY_KEYS:
        if key in out:
            out[key] = _to_array(out[key])
    return out


def available_fixtures() -> list[str]:
    """Return the names of the JSON fixtures in ``tests/results``.

    Returns
    -------
    list of str
        File names without the ``.json`` suffix, sorted.
    """
    return sorted(p.stem for p in RESULTS_DIR.glob("*.json"))


def load_fixture(name: str) -> dict[str, Any]:
    """Read ``tests/results/<name>.json``.

    Parameters
    ----------
    name : str
        Fixture name, e.g. ``"tobit_affairs"`` or ``"intreg_affairs"``
        (a trailing ``.json`` is accepted).

    Returns
    -------
    dict
        The parsed JSON with, in each entry of ``result["cases"]``,
        ``coefficients``, ``bse``, ``zvalues`` and ``pvalues`` as
        :class:`pandas.Series` indexed by parameter name (including
        ``"Log(scale)"``), ``vcov`` as a :class:`pandas.DataFrame` with
        parameter names as index and columns, and ``linear_predictors`` as a
        float array.  Top-level ``weights``, ``lower`` and ``upper`` vectors
        become float arrays with ``nan`` for R's ``NA``.  A ``null`` for
        ``right`` means no right-censoring (``right = Inf``).

    Raises
    ------
    FileNotFoundError
        If there is no such fixture.
    """
    stem = name[:-5] if name.endswith(".json") else name
    path = RESULTS_DIR / f"{stem}.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"No fixture {stem!r} in {RESULTS_DIR}; available: {available_fixtures()}"
        )
    with path.open(encoding="utf-8") as fh:
        data: dict[str, Any] = json.load(fh)
    for key in _ARRAY_KEYS:
        if key in data:
            data[key] = _to_array(data[key])
    data["cases"] = {k: _convert_case(v) for k, v in data.get("cases", {}).items()}
    return data
