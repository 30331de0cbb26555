"""Every vignette in vignettes/ runs to the end, so none can go stale."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import pytest

VIGNETTES = sorted((Path(__file__).resolve().parents[1] / "vignettes").glob("*.py"))


@pytest.mark.parametrize("path", VIGNETTES, ids=[p.stem for p in VIGNETTES])
def test_vignette_runs(path, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", [str(path), str(tmp_path)])
    runpy.run_path(str(path), run_name="__main__")
    out = capsys.readouterr().out
    assert out.strip(), "a vignette should print its results"
    assert list(tmp_path.glob("*.png")), "a vignette should save its figures"


def test_tobit_vignette_numbers(tmp_path, monkeypatch, capsys):
    path = next(p for p in VIGNETTES if p.stem == "tobit_affairs")
    monkeypatch.setattr(sys, "argv", [str(path), str(tmp_path)])
    runpy.run_path(str(path), run_name="__main__")
    out = capsys.readouterr().out
    assert "-705.57622" in out and "Two-limit Tobit (0, 4): log-likelihood -500.0428" in out
