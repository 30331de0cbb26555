"""Documentation stays true: docstring examples run, README and CI agree."""

from __future__ import annotations

import doctest
import re
from pathlib import Path

import pytest

import emstats
import emstats.inference.mi
import emstats.models.censored
import emstats.models.mixreg
import emstats.models.mvn
import emstats.models.zeroinfl

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("module", [emstats, emstats.models.censored, emstats.models.mixreg,
                                    emstats.models.mvn, emstats.inference.mi,
                                    emstats.models.zeroinfl])
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



# --- every ```python block of docs/*.md (and of the README) runs ------------------------------
# The blocks of one page run in order in one namespace, as a reader would type them.  A block
# that cannot run here says so, with its reason, in an HTML comment on the line before it:
#     <!-- not-runnable: needs a cluster -->
_FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.S | re.M)
_SKIP = re.compile(r"<!--\s*not-runnable:(.*?)-->\s*$")
DOC_PAGES = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]


def python_blocks(text: str) -> list[tuple[int, str, str | None]]:
    """The ``python`` fenced blocks of a markdown text: (line number, code, skip reason)."""
    blocks = []
    for m in _FENCE.finditer(text):
        before = text[:m.start()].rstrip("\n").rsplit("\n", 1)[-1]
        skip = _SKIP.search(before)
        reason = skip.group(1).strip() if skip else None
        if skip and not reason:
            raise AssertionError(f"a not-runnable mark without a reason before line "
                                 f"{text[:m.start()].count(chr(10)) + 1}")
        blocks.append((text[:m.start()].count("\n") + 2, m.group(1), reason))
    return blocks


def test_python_blocks_are_found():
    text = "a\n```python\nx = 1\n```\n<!-- not-runnable: needs a cluster -->\n```python\ny\n```\n"
    assert python_blocks(text) == [(3, "x = 1\n", None), (7, "y\n", "needs a cluster")]
    with pytest.raises(AssertionError, match="without a reason"):
        python_blocks("<!-- not-runnable: -->\n```python\ny\n```\n")


@pytest.mark.parametrize("page", DOC_PAGES, ids=[p.name for p in DOC_PAGES])
def test_docs_page_code_runs(page, tmp_path, monkeypatch, capsys):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    blocks = python_blocks(page.read_text())
    monkeypatch.chdir(tmp_path)  # a block that writes a file writes it here
    namespace = {"__name__": f"docs_{page.stem}"}
    try:
        for line, code, reason in blocks:
            if reason is not None:
                continue
            # a SyntaxError or an exception names the page and the block's first line
            exec(compile("\n" * (line - 1) + code, str(page), "exec"), namespace)
    finally:
        plt.close("all")
