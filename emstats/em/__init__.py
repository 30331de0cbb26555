"""The model-agnostic EM engine."""

from .accel import METHODS, LouisNewton, Method, PlainEM, Squarem, State
from .engine import EMRun, available_methods, default_method, resolve_method, run_em
from .monitor import (
    ConvergenceInfo,
    ConvergenceMonitor,
    LikelihoodDecreaseWarning,
)
from .protocol import EMModel, LouisPieces

__all__ = [
    "METHODS",
    "ConvergenceInfo",
    "ConvergenceMonitor",
    "EMModel",
    "EMRun",
    "LikelihoodDecreaseWarning",
    "LouisNewton",
    "LouisPieces",
    "Method",
    "PlainEM",
    "Squarem",
    "State",
    "available_methods",
    "default_method",
    "resolve_method",
    "run_em",
]
