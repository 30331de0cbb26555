"""The model-agnostic EM engine."""

from .accel import LouisNewton, Method, PlainEM, Squarem, State
from .engine import (
    METHODS,
    EMRun,
    applicable_methods,
    available_methods,
    default_method,
    resolve_method,
    run_em,
)
from .monitor import (
    ConvergenceInfo,
    ConvergenceMonitor,
    LikelihoodDecreaseWarning,
)
from .protocol import EMModel, LouisPieces
from .variants import GradientEM, IncrementalEM, MonteCarloEM, StochasticEM

__all__ = [
    "METHODS",
    "ConvergenceInfo",
    "ConvergenceMonitor",
    "EMModel",
    "EMRun",
    "GradientEM",
    "IncrementalEM",
    "LikelihoodDecreaseWarning",
    "LouisNewton",
    "LouisPieces",
    "Method",
    "MonteCarloEM",
    "PlainEM",
    "Squarem",
    "State",
    "StochasticEM",
    "applicable_methods",
    "available_methods",
    "default_method",
    "resolve_method",
    "run_em",
]

from .online import OnlineEM  # noqa: E402

__all__ += ["OnlineEM"]
