"""Components shared by the models: distributions, mixture pieces, starting values and
data preparation.

Layering: :mod:`emstats.components` may import :mod:`emstats.exceptions` and
:mod:`emstats.em`, never :mod:`emstats.models` or :mod:`emstats.inference`.
"""

from . import gaussian_data, init

__all__ = ["gaussian_data", "init"]
