"""Every vignette in vignettes/ runs to the end, so none can go stale."""

from __future__ import annotations

import hashlib
import os
import runpy
import shutil
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
    cache = os.environ.get("EMSTATS_VIGNETTE_CACHE")
    if cache:  # hand the output to the documentation build (docs/conf.py), which then
        store(path, out, tmp_path, Path(cache))  # need not run the vignette again


def store(path: Path, stdout: str, figdir: Path, cache: Path) -> None:
    """Write a vignette's output in the layout of docs/conf.py's cache: one folder per
    vignette with its figures, ``stdout.txt`` and the SHA-256 of the source it came from."""
    out = cache / path.stem
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    for png in figdir.glob("*.png"):
        shutil.copy2(png, out / png.name)
    (out / "stdout.txt").write_text(stdout)
    (out / "source.sha256").write_text(hashlib.sha256(path.read_bytes()).hexdigest())


def test_tobit_vignette_numbers(tmp_path, monkeypatch, capsys):
    path = next(p for p in VIGNETTES if p.stem == "tobit_affairs")
    monkeypatch.setattr(sys, "argv", [str(path), str(tmp_path)])
    runpy.run_path(str(path), run_name="__main__")
    out = capsys.readouterr().out
    assert "-705.57622" in out and "Two-limit Tobit (0, 4): log-likelihood -500.0428" in out
