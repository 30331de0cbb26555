"""Small example datasets shipped with emstats.

The datasets are stored as CSV files inside the package (``emstats/datasets/data``)
and are read with :mod:`importlib.resources`, so they work from an installed
wheel as well as from a source checkout.  This module deliberately depends only on
numpy, pandas and the standard library.

Available datasets
------------------
affairs
    Fair's (1978) extramarital affairs survey data, as in R's ``AER::Affairs``.
cbpp
    Contagious bovine pleuropneumonia incidence in 15 herds over four periods,
    as in R's ``lme4::cbpp`` (Lesnoff et al. 2004).
faithful
    Old Faithful geyser eruption durations and waiting times, as in R's
    ``datasets::faithful``.
patent
    Patents and R&D spending of 70 pharmaceutical companies (Wang, Cockburn &
    Puterman 1998), as in R's ``flexmix::patent``.
earthquakes
    Annual counts of major (magnitude 7 and above) earthquakes worldwide,
    1900--2006, from Zucchini & MacDonald (2009).

Examples
--------
>>> from emstats import datasets
>>> df = datasets.load("faithful")
>>> df.shape
(272, 2)
>>> print(datasets.describe("earthquakes"))  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

import pandas as pd

__all__ = [
    "describe",
    "list_datasets",
    "load",
    "load_affairs",
    "load_cbpp",
    "load_earthquakes",
    "load_faithful",
]


@dataclass(frozen=True)
class _DatasetInfo:
    """Metadata for one shipped dataset."""

    filename: str
    nobs: int
    title: str
    dtypes: dict[str, str]  # "str" = text column, left to pandas' default string dtype
    note: str


_AFFAIRS_NOTE = """\
Fair's extramarital affairs data ("Fair's Affairs")
===================================================

601 observations on 9 variables: cross-section data from a survey of readers
of the magazine Psychology Today, conducted in 1969.  The values are identical
to the data frame ``Affairs`` of the R package AER (exported with
``data("Affairs", package = "AER"); write.csv(Affairs, ..., row.names = FALSE)``,
AER version 1.2-10).  R's row names (the original respondent identifiers) are
not kept.

Variables
---------
affairs : float
    Number of extramarital sexual encounters during the past year, coded:
    0 = none, 1 = once, 2 = twice, 3 = three times, 7 = 4 to 10 times,
    12 = monthly, weekly or daily (i.e. 12 or more).
gender : str
    "female" or "male".
age : float
    Age in years, coded by class midpoints: 17.5 = under 20, 22 = 20-24,
    27 = 25-29, 32 = 30-34, 37 = 35-39, 42 = 40-44, 47 = 45-49, 52 = 50-54,
    57 = 55 or over.
yearsmarried : float
    Years married, coded: 0.125 = 3 months or less, 0.417 = 4-6 months,
    0.75 = 6 months to 1 year, 1.5 = 1-2 years, 4 = 3-5 years, 7 = 6-8 years,
    10 = 9-11 years, 15 = 12 or more years.
children : str
    Whether there are children in the marriage: "no" or "yes".
religiousness : int
    1 = anti, 2 = not at all, 3 = slightly, 4 = somewhat, 5 = very.
education : float
    Years of schooling, coded: 9 = grade school, 12 = high school graduate,
    14 = some college, 16 = college graduate, 17 = some graduate work,
    18 = master's degree, 20 = Ph.D., M.D. or other advanced degree.
occupation : int
    Occupation on the Hollingshead scale, 1 to 7 (reverse numbering).
rating : int
    Self-rating of the marriage: 1 = very unhappy, 2 = somewhat unhappy,
    3 = average, 4 = happier than average, 5 = very happy.

Sources
-------
Fair, R.C. (1978). A Theory of Extramarital Affairs.
Journal of Political Economy, 86, 45-61.

Kleiber, C. and Zeileis, A. (2008). Applied Econometrics with R. New York:
Springer.  R package AER, data set ``Affairs`` (which takes the data from the
online complements to Greene, W.H. (2003), Econometric Analysis, 5th ed.,
Table F22.2).

Notes
-----
451 of the 601 respondents report no affair, so the response is heavily
left-censored at zero; the data are the classic example for Tobit
(censored normal) regression.
"""

_FAITHFUL_NOTE = """\
Old Faithful geyser data
========================

272 observations on 2 variables: eruption durations and the waiting time to
the next eruption of the Old Faithful geyser in Yellowstone National Park,
Wyoming, USA.  The values are identical to R's built-in data frame
``datasets::faithful`` (exported with ``write.csv``).

Variables
---------
eruptions : float
    Eruption time, in minutes.
waiting : float
    Waiting time to the next eruption, in minutes.

Sources
-------
Härdle, W. (1991). Smoothing Techniques with Implementation in S.
New York: Springer.

Azzalini, A. and Bowman, A.W. (1990). A look at some data on the Old
Faithful geyser. Applied Statistics, 39, 357-365.

R Core Team. R: A Language and Environment for Statistical Computing,
data set ``faithful`` in package datasets.

Notes
-----
Both variables are clearly bimodal; a standard example for two-component
Gaussian mixture models.
"""

_EARTHQUAKES_NOTE = """\
Major earthquakes, 1900-2006
============================

107 observations on 2 variables: the number of major earthquakes (magnitude
7 and above) in the world in each calendar year from 1900 to 2006.

Variables
---------
year : int
    Calendar year, 1900 to 2006.
count : int
    Number of earthquakes of magnitude 7 or greater recorded in that year.

Sources
-------
Zucchini, W. and MacDonald, I.L. (2009). Hidden Markov Models for Time
Series: An Introduction Using R. Boca Raton: Chapman & Hall/CRC,
Table 1.1 (p. 4).  The authors obtained the counts from the U.S. Geological
Survey (National Earthquake Information Center) in July 2007.

The series was transcribed from the public GitHub repository ifsm/apollon,
file datasets/earthquakes.data (commit c733591240f3), which credits the same
book, and cross-checked against an independent transcription of Table 1.1.
The sample mean is 19.364 and the sample variance 51.573 (denominator n - 1),
matching the values reported in the book.

Notes
-----
The counts are overdispersed relative to a Poisson distribution
(variance about 2.7 times the mean) and serially dependent; a standard
example for Poisson mixtures and Poisson hidden Markov models.
"""

_CBPP_NOTE = """\
Contagious bovine pleuropneumonia (cbpp)
========================================

56 observations on 4 variables: the serological incidence of contagious bovine
pleuropneumonia (CBPP, a mycoplasma disease of cattle) in zebu cattle of 15
commercial herds in the Boji district of Ethiopia, followed over four periods
to study the within-herd spread of the disease in newly infected herds (CBPP
status from blood samples taken quarterly and tested by competitive ELISA).
The values are identical to the data frame ``cbpp`` of the R package lme4
(version 1.1-31), exported by tests/results/r_scripts/glmm_cbpp.R.  Some
herd-periods were lost to follow-up (herd 2 has three periods, herd 8 only
one), hence 56 rather than 60 rows.

Variables
---------
herd : category
    Herd identifier, categories 1 to 15 (a factor in R).
incidence : int
    Number of new serological cases of CBPP in the herd during the period.
size : int
    Herd size at the beginning of the period (the number of animals at risk).
period : category
    Follow-up period, categories 1 to 4 (a factor in R).

Sources
-------
Lesnoff, M., Laval, G., Bonnet, P., Abdicho, S., Workalemahu, A., Kifle, D.,
Peyraud, A., Lancelot, R. and Thiaucourt, F. (2004). Within-herd spread of
contagious bovine pleuropneumonia in Ethiopian highlands. Preventive
Veterinary Medicine, 64, 27-40.

Bates, D., Maechler, M., Bolker, B. and Walker, S. (2015). Fitting linear
mixed-effects models using lme4. Journal of Statistical Software, 67(1),
1-48.  R package lme4, data set ``cbpp``.

Notes
-----
The standard example for a binomial generalised linear mixed model:
``incidence`` out of ``size`` with a fixed effect of ``period`` and a random
intercept per ``herd`` (lme4: ``glmer(cbind(incidence, size - incidence) ~
period + (1 | herd), family = binomial, data = cbpp)``; emstats:
``glmm_logit("incidence ~ period", data, groups="herd", trials="size")``).
"""

_PATENT_NOTE = """\
Patents and R&D spending of 70 pharmaceutical and biomedical companies (patent)
===============================================================================

70 observations on 4 variables: the number of patents awarded in 1976 and the
research and development spending of pharmaceutical and biomedical companies,
as analysed by Wang, Cockburn and Puterman (1998) with mixtures of Poisson
regressions.  Exported from the R package flexmix (2.3.18, data set ``patent``)
with ``write.csv``; trailing blanks of the company names removed.

Variables
---------
Company : str
    Company name.
Patents : int
    Number of patents awarded in 1976.
RDS : float
    R&D spending divided by sales.
lgRD : float
    Logarithm of R&D spending (in millions of dollars).

Sources
-------
Wang, P., Cockburn, I. and Puterman, M.L. (1998). Analysis of patent data -- a
mixed-Poisson-regression-model approach. Journal of Business & Economic
Statistics, 16(1), 27-41.

Gruen, B. and Leisch, F. (2008). FlexMix version 2: finite mixtures with
concomitant variables and varying and constant parameters. Journal of
Statistical Software, 28(4), 1-35.

Notes
-----
flexmix: ``flexmix(Patents ~ lgRD, k = 3, data = patent, model =
FLXMRglm(family = "poisson"), concomitant = FLXPmultinom(~ RDS))``; emstats:
``mixreg("Patents ~ lgRD", data, k=3, family="poisson", concomitant="~ RDS")``.
"""

_DATASETS: dict[str, _DatasetInfo] = {
    "affairs": _DatasetInfo(
        filename="affairs.csv",
        nobs=601,
        title="Fair (1978) extramarital affairs survey data (R: AER::Affairs)",
        dtypes={
            "affairs": "float64",
            "gender": "str",
            "age": "float64",
            "yearsmarried": "float64",
            "children": "str",
            "religiousness": "int64",
            "education": "float64",
            "occupation": "int64",
            "rating": "int64",
        },
        note=_AFFAIRS_NOTE,
    ),
    "cbpp": _DatasetInfo(
        filename="cbpp.csv",
        nobs=56,
        title="Contagious bovine pleuropneumonia in 15 herds (R: lme4::cbpp)",
        dtypes={"herd": "category", "incidence": "int64", "size": "int64",
                "period": "category"},
        note=_CBPP_NOTE,
    ),
    "earthquakes": _DatasetInfo(
        filename="earthquakes.csv",
        nobs=107,
        title="Annual counts of magnitude 7+ earthquakes, 1900-2006",
        dtypes={"year": "int64", "count": "int64"},
        note=_EARTHQUAKES_NOTE,
    ),
    "patent": _DatasetInfo(
        filename="patent.csv",
        nobs=70,
        title="Patents and R&D of 70 pharmaceutical companies (R: flexmix::patent)",
        dtypes={"Company": "str", "Patents": "int64", "RDS": "float64", "lgRD": "float64"},
        note=_PATENT_NOTE,
    ),
    "faithful": _DatasetInfo(
        filename="faithful.csv",
        nobs=272,
        title="Old Faithful geyser eruption and waiting times (R: faithful)",
        dtypes={"eruptions": "float64", "waiting": "float64"},
        note=_FAITHFUL_NOTE,
    ),
}

# Parsed frames are cached; ``load`` always hands out a deep copy.
_CACHE: dict[str, pd.DataFrame] = {}


def _check_name(name: str) -> _DatasetInfo:
    """Return the metadata for ``name`` or raise an informative error."""
    key = name.lower().strip() if isinstance(name, str) else None
    if key not in _DATASETS:
        available = ", ".join(sorted(_DATASETS))
        raise ValueError(f"Unknown dataset {name!r}. Available datasets: {available}.")
    return _DATASETS[key]


def _read(info: _DatasetInfo) -> pd.DataFrame:
    """Read a CSV file from the package data directory with fixed dtypes."""
    resource = resources.files(__name__).joinpath("data", info.filename)
    numeric = {col: dt for col, dt in info.dtypes.items() if dt != "str"}
    with resource.open("r", encoding="utf-8") as fh:
        df = pd.read_csv(fh, dtype=numeric, keep_default_na=False)
    if list(df.columns) != list(info.dtypes) or len(df) != info.nobs:
        raise RuntimeError(
            f"Corrupt data file {info.filename!r}: got columns {list(df.columns)} "
            f"and {len(df)} rows, expected {list(info.dtypes)} and {info.nobs} rows"
        )
    return df


def list_datasets() -> pd.DataFrame:
    """List the datasets shipped with emstats.

    Returns
    -------
    pandas.DataFrame
        One row per dataset with columns ``name`` (the key accepted by
        :func:`load`), ``nobs`` (number of rows) and ``description``
        (a one-line title).

    Examples
    --------
    >>> from emstats.datasets import list_datasets
    >>> list_datasets()["name"].tolist()
    ['affairs', 'cbpp', 'earthquakes', 'faithful']
    """
    rows = [
        {"name": name, "nobs": info.nobs, "description": info.title}
        for name, info in sorted(_DATASETS.items())
    ]
    return pd.DataFrame(rows, columns=["name", "nobs", "description"])


def load(name: str) -> pd.DataFrame:
    """Load a shipped dataset.

    Parameters
    ----------
    name : str
        Dataset name, one of the names returned by :func:`list_datasets`
        (case-insensitive).

    Returns
    -------
    pandas.DataFrame
        A fresh copy of the data; modifying it does not affect later calls.

    Raises
    ------
    ValueError
        If ``name`` is not a known dataset.  The message lists the
        available datasets.

    See Also
    --------
    describe : Source and variable descriptions of a dataset.

    Examples
    --------
    >>> from emstats.datasets import load
    >>> df = load("affairs")
    >>> df.shape
    (601, 9)
    """
    info = _check_name(name)
    if info.filename not in _CACHE:
        _CACHE[info.filename] = _read(info)
    return _CACHE[info.filename].copy(deep=True)


def describe(name: str) -> str:
    """Return a description of a dataset.

    Parameters
    ----------
    name : str
        Dataset name, one of the names returned by :func:`list_datasets`.

    Returns
    -------
    str
        Text with the dataset's source (citations), the meaning and units
        of every variable, and notes on typical use.

    Raises
    ------
    ValueError
        If ``name`` is not a known dataset.
    """
    return _check_name(name).note


def load_affairs() -> pd.DataFrame:
    """Load Fair's (1978) extramarital affairs data.

    Returns
    -------
    pandas.DataFrame
        601 rows and columns ``affairs``, ``gender``, ``age``,
        ``yearsmarried``, ``children``, ``religiousness``, ``education``,
        ``occupation``, ``rating``; identical to R's ``AER::Affairs``.
        ``gender`` and ``children`` are strings.  See ``describe("affairs")``.
    """
    return load("affairs")


def load_faithful() -> pd.DataFrame:
    """Load the Old Faithful geyser data.

    Returns
    -------
    pandas.DataFrame
        272 rows and columns ``eruptions`` and ``waiting`` (both in minutes);
        identical to R's ``datasets::faithful``.  See ``describe("faithful")``.
    """
    return load("faithful")


def load_cbpp() -> pd.DataFrame:
    """Load the contagious bovine pleuropneumonia data (R: ``lme4::cbpp``).

    Returns
    -------
    pandas.DataFrame
        56 rows and columns ``herd`` (categorical), ``incidence``, ``size``
        (integers) and ``period`` (categorical), identical to ``lme4::cbpp``.
        See ``describe("cbpp")``.
    """
    return load("cbpp")


def load_earthquakes() -> pd.DataFrame:
    """Load annual counts of major earthquakes, 1900-2006.

    Returns
    -------
    pandas.DataFrame
        107 rows and integer columns ``year`` and ``count`` (number of
        magnitude 7+ earthquakes worldwide), from Zucchini & MacDonald
        (2009), Table 1.1.  See ``describe("earthquakes")``.
    """
    return load("earthquakes")
