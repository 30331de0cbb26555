"""Results, covariance estimators and summary tables shared by all models."""

from .covariance import COV_TYPES, InformationWarning
from .fit import fit_em, fit_model
from .results import EMResults, load

__all__ = ["COV_TYPES", "EMResults", "InformationWarning", "fit_em", "fit_model", "load"]
