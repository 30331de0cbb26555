"""Sphinx configuration of the emstats documentation site.

Build it with ``python -m sphinx -W -b html docs docs/_build/html`` (warnings are errors).

The markdown pages in ``docs/`` are read by MyST.  Two sets of pages are generated when the
build starts (both directories are ignored by git):

- ``docs/api/``: the API reference, one section per kind of object, listing every name in
  ``emstats.__all__``, so that a name added to the package appears without editing the docs;
- ``docs/vignettes/``: one page per ``vignettes/*.py`` script, with its source, the text it
  printed and the figures it saved.  A vignette is executed unless the cache
  ``docs/_build/vignette-cache/<name>/`` holds the output of the same source
  (``tests/test_vignettes.py`` fills that cache when ``EMSTATS_VIGNETTE_CACHE`` names it,
  so CI runs each vignette once).
"""

from __future__ import annotations

import hashlib
import inspect
import os
import shutil
import subprocess
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))

import emstats  # noqa: E402

project = "emstats"
author = "emstats developers"
copyright = "emstats developers"  # noqa: A001
release = emstats.__version__
version = release

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.mathjax",
    "numpydoc",
]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build", "**/.ipynb_checkpoints"]
myst_enable_extensions = ["dollarmath", "colon_fence"]
myst_heading_anchors = 3
suppress_warnings = ["myst.header"]

html_theme = "pydata_sphinx_theme"
html_title = f"emstats {release}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
}
html_static_path: list[str] = []

autodoc_default_options = {"members": True, "member-order": "bysource"}
autodoc_typehints = "none"  # numpydoc's Parameters sections carry the types
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
# Every public parameter must be described: a parameter missing from (PR01), unknown to
# (PR02) or without a description in (PR07) a docstring's Parameters section is a warning,
# and the -W build fails on it.
numpydoc_validation_checks = {"PR01", "PR02", "PR07"}
numpydoc_validation_exclude = {
    r"\.__\w+__$",
    # results objects are made by fit(), never by the user: their constructors' arguments
    # are internal (their attributes and methods are documented and checked)
    r"^emstats\.\w+(Results|Selection|Test)$",
}
# The methods of a model class shown in the reference: what a user calls.  The EM protocol's
# hooks (chunk_stats, m_step, ...) are documented once, on EMModel and in docs/own_model.md.
USER_METHODS = ("fit", "from_formula", "partial_fit")
PROTOCOL_CLASSES = ("EMModel",)
# (autodoc reads the docstrings of the members it leaves out too, so they are excluded here)
_shown = "|".join(PROTOCOL_CLASSES), "|".join(USER_METHODS)
numpydoc_validation_exclude.add(
    rf"^emstats\.(?!({_shown[0]})\.)[A-Z]\w*(?<!Results)(?<!Selection)(?<!Test)"
    rf"\.(?!({_shown[1]})$)\w+$")



def _lambda_properties() -> set[str]:
    """Properties defined by ``property(lambda ...)``: they take no parameters, and numpydoc's
    validator cannot find their source line (it looks for a ``def``), so they are left out."""
    out = set()
    for name in emstats.__all__:
        obj = getattr(emstats, name)
        if inspect.isclass(obj):
            for attr, value in vars(obj).items():
                fget = getattr(value, "fget", None)
                if isinstance(value, property) and getattr(fget, "__name__", "") == "<lambda>":
                    out.add(rf"^emstats\.{name}\.{attr}$")
    return out


numpydoc_validation_exclude |= _lambda_properties()

VIGNETTE_SRC = ROOT / "vignettes"
VIGNETTE_DOCS = DOCS / "vignettes"
VIGNETTE_CACHE = Path(os.environ.get("EMSTATS_VIGNETTE_CACHE",
                                     DOCS / "_build" / "vignette-cache"))
API_DOCS = DOCS / "api"


# --- the API reference ----------------------------------------------------------------------

def _kind(name: str) -> str:
    obj = getattr(emstats, name)
    if inspect.ismodule(obj):
        return "module"
    if inspect.isclass(obj):
        if issubclass(obj, Warning):
            return "warning"
        if issubclass(obj, Exception):
            return "exception"
        if name.endswith(("Results", "Selection", "Test")):
            return "results"
        return "class"
    if callable(obj):
        return "function"
    return "constant"


_SECTIONS = [
    ("function", "functions", "Model constructors and functions",
     "The formula and array entry points; each returns a model to ``.fit()`` (or, for the "
     "selection and multiple-imputation helpers, a fitted object)."),
    ("class", "models", "Models and parameter containers",
     "Model classes (the array constructors, as in statsmodels) and the labelled "
     "parameter objects of the latent-variable models."),
    ("results", "results", "Results",
     "What ``fit()`` returns: estimates, standard errors, tests, prediction, summaries."),
    ("exception", "exceptions", "Exceptions", "Errors raised on bad input."),
    ("warning", "warnings", "Warnings", "Warnings issued during a fit."),
    ("module", "modules", "Modules", "Sub-packages exported at the top level."),
]


def write_api(app=None) -> None:
    """Write ``docs/api/*.md``: every name of ``emstats.__all__``, by kind."""
    API_DOCS.mkdir(exist_ok=True)
    names = sorted(n for n in emstats.__all__ if not n.startswith("__"))
    by_kind: dict[str, list[str]] = {}
    for name in names:
        by_kind.setdefault(_kind(name), []).append(name)
    unknown = set(by_kind) - {s[0] for s in _SECTIONS}
    if unknown:
        raise RuntimeError(f"public names of unknown kind: {sorted(unknown)}")
    pages = []
    for kind, page, title, intro in _SECTIONS:
        members = by_kind.get(kind, [])
        if not members:
            continue
        pages.append(page)
        lines = [f"# {title}", "", intro, "", "```{eval-rst}", ".. currentmodule:: emstats", ""]
        for name in members:
            directive = {"function": "autofunction", "module": "automodule",
                         "exception": "autoexception", "warning": "autoexception"}.get(
                kind, "autoclass")
            target = f"emstats.{name}" if kind == "module" else name
            lines.append(f".. {directive}:: {target}")
            if kind == "class" and name not in PROTOCOL_CLASSES:
                obj = getattr(emstats, name)
                shown = [m for m in USER_METHODS if callable(getattr(obj, m, None))]
                lines.append(f"   :members: {', '.join(shown)}" if shown else "   :no-members:")
            lines.append("")
        lines.append("```")
        _write_if_changed(API_DOCS / f"{page}.md", "\n".join(lines) + "\n")
    index = ["# API reference", "",
             f"Every public name of `emstats` (version {emstats.__version__}), from its "
             "docstring; the package's `__all__` is the list.", "",
             "```{toctree}", ":maxdepth: 2", "", *pages, "```", ""]
    _write_if_changed(API_DOCS / "index.md", "\n".join(index))
    for stale in set(API_DOCS.glob("*.md")) - {API_DOCS / f"{p}.md" for p in [*pages, "index"]}:
        stale.unlink()


# --- the vignettes --------------------------------------------------------------------------

def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run_vignette(path: Path, cache: Path = VIGNETTE_CACHE) -> Path:
    """The cache directory holding ``path``'s output (executing it if it is not current)."""
    out = cache / path.stem
    stamp = out / "source.sha256"
    if stamp.exists() and stamp.read_text().strip() == _digest(path):
        return out
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    env = dict(os.environ, MPLBACKEND="Agg")
    proc = subprocess.run([sys.executable, str(path), str(out)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-1:] or ["(no message)"]
        raise RuntimeError(f"vignette {path.name} failed: {tail[0]}")
    (out / "stdout.txt").write_text(proc.stdout)
    stamp.write_text(_digest(path))
    return out


def _fence(text: str, lang: str = "") -> str:
    ticks = "`" * max(3, max((len(r) for r in _runs_of_backticks(text)), default=0) + 1)
    return f"{ticks}{lang}\n{text.rstrip()}\n{ticks}"


def _runs_of_backticks(text: str) -> list[str]:
    import re

    return re.findall(r"`+", text)


def _vignette_page(path: Path, out: Path) -> str:
    import ast

    doc = ast.get_docstring(ast.parse(path.read_text())) or path.stem
    first, _, rest = doc.partition("\n")
    title = first.strip().rstrip(".")
    figdir = VIGNETTE_DOCS / path.stem
    if figdir.exists():
        shutil.rmtree(figdir)
    figdir.mkdir(parents=True)
    figures = sorted(out.glob("*.png"))
    for png in figures:
        shutil.copy2(png, figdir / png.name)
    parts = [f"# {title}", "",
             f"The script `vignettes/{path.name}`, executed when the documentation was built.",
             "", rest.strip(), "",
             "## Source", "",
             f"```{{literalinclude}} ../../vignettes/{path.name}", ":language: python", "```",
             "", "## Output", "", _fence((out / "stdout.txt").read_text(), "text"), ""]
    if figures:
        parts += ["## Figures", ""]
        for png in figures:
            parts += [f"![{png.stem}]({path.stem}/{png.name})", ""]
    return "\n".join(parts)


def write_vignettes(app=None) -> None:
    """Write ``docs/vignettes/*.md`` from ``vignettes/*.py``."""
    VIGNETTE_DOCS.mkdir(exist_ok=True)
    scripts = sorted(VIGNETTE_SRC.glob("*.py"))
    for path in scripts:
        out = run_vignette(path)
        _write_if_changed(VIGNETTE_DOCS / f"{path.stem}.md", _vignette_page(path, out))
    keep = {p.stem for p in scripts} | {"index"}
    for stale in VIGNETTE_DOCS.iterdir():
        if stale.name.split(".")[0] not in keep:
            shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
    index = ["# Vignettes", "",
             "Worked analyses from `vignettes/`, each executed with its figures. Run one "
             "yourself with `python vignettes/<name>.py out/` (figures go to `out/`).", "",
             "```{toctree}", ":maxdepth: 1", ":glob:", "", "*", "```", ""]
    _write_if_changed(VIGNETTE_DOCS / "index.md", "\n".join(index))


def _write_if_changed(path: Path, text: str) -> None:
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def complete_index_toctree(app, docname, source) -> None:
    """Replace the ``*`` entry of the index's toctree by the pages it does not list yet.

    A glob would do the same but warns (an error under -W) when it matches nothing, i.e.
    whenever every page is listed; this keeps new pages (added by anyone) in the site
    without editing the index and without that warning.
    """
    if docname != root_doc:
        return
    text = source[0]
    head, sep, rest = text.partition("```{toctree}")
    if not sep:
        return
    body, fence, tail = rest.partition("```")
    listed = {line.strip() for line in body.splitlines()}
    pages = sorted(p.stem for p in DOCS.glob("*.md") if p.stem != root_doc)
    extra = [name for name in pages if name not in listed]
    body = body.replace("\n*\n", "\n" + "".join(f"{name}\n" for name in extra))
    source[0] = head + sep + body + fence + tail


def setup(app):
    app.connect("source-read", complete_index_toctree)
    app.connect("builder-inited", write_api)
    app.connect("builder-inited", write_vignettes)
    return {"parallel_read_safe": True}
