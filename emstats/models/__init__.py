"""Model families, one file each."""

from .censored import CensoredRegression, CensoredResults, IntervalRegression, Tobit

__all__ = ["CensoredRegression", "CensoredResults", "IntervalRegression", "Tobit"]
