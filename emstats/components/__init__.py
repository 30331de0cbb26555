"""Components shared by the models: distributions, mixture pieces, starting values.

Layering: :mod:`emstats.components` may import :mod:`emstats.exceptions` and
:mod:`emstats.em`, never :mod:`emstats.models` or :mod:`emstats.inference`.
"""
