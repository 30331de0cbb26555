"""Documentation stays true: docstring examples run, README and CI agree."""

from __future__ import annotations

import doctest
import re
from pathlib import Path

import pytest

import emstats
import emstats.models.censored

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("module", [emstats, emstats.models.censored])
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0


def test_ci_runs_the_readme_quickstart():
    readme = (ROOT / "README.md").read_text()
    block = readme.split("## Quickstart", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    commands = [line.strip() for line in block.strip().splitlines()]
    assert len(commands) == 2
    ci = (ROOT / ".ci" / "run").read_text()
    for cmd in commands:
        assert cmd in ci, cmd


def test_public_api_has_docstrings():
    for name in emstats.__all__:
        obj = getattr(emstats, name)
        if callable(obj) and not isinstance(obj, type(re)):
            assert obj.__doc__ and obj.__doc__.strip(), name


def test_own_model_page_runs(capsys):
    """The example in docs/own_model.md runs and reproduces DLR's Table 1."""
    text = (ROOT / "docs" / "own_model.md").read_text()
    code = text.split("```python", 1)[1].split("```", 1)[0]
    exec(compile(code, "own_model.md", "exec"), {"__name__": "own_model"})
    out = capsys.readouterr().out
    assert "0.6082474227" in out and "0.6243210504" in out and "0.1328" in out


def test_own_model_chunked_example_runs(capsys):
    """The chunk-contract example of docs/own_model.md runs and meets its closed forms."""
    text = (ROOT / "docs" / "own_model.md").read_text()
    code = text.split("```python")[2].split("```", 1)[0]
    exec(compile(code, "own_model.md", "exec"), {"__name__": "own_model"})
    assert "rate[1]" in capsys.readouterr().out

