"""Shared test helpers."""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

sys.path.insert(0, str(Path(__file__).resolve().parent))


def r_names(names):
    """patsy's 'Intercept' is R's '(Intercept)'."""
    return ["(Intercept)" if n == "Intercept" else n for n in names]


@pytest.fixture
def rng():
    return np.random.default_rng(20261122)
