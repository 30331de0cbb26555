"""Imports run one way: exceptions <- em <- components <- models <- the top-level API.

``inference`` is imported by models, never the reverse; no module imports a private
name of another; patsy is spoken only in ``formula.py``.  The rules are read off the
source with ``ast``, so a wrong-way import fails here even inside a function.
"""

from __future__ import annotations

import ast
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "emstats"

# layer of each top-level part; a module may import only from layers <= its own
LAYER = {
    "exceptions": 0, "_config": 0, "_kernels": 0, "datasets": 0,
    "em": 1,
    "formula": 2, "components": 2,
    "inference": 3,
    "models": 4,
    "__init__": 5, "__main__": 5,
}



def _modules():
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield ".".join(parts), path


def _imports(name: str, path: Path):
    """(imported module or module.name, line) for every import in the file."""
    tree = ast.parse(path.read_text())
    pkg = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield a.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            for a in node.names:
                yield (f"{mod}.{a.name}" if a.name != "*" else mod), node.lineno


def _part(mod: str) -> str:
    parts = mod.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


@lru_cache(maxsize=1)
def _violations() -> frozenset:
    found = set()
    for name, path in _modules():
        me = _part(name) if name != "emstats" else "__init__"
        if name == "emstats.__main__":
            me = "__main__"
        for imp, _line in _imports(name, path):
            top = imp.split(".")[0]
            if top == "patsy" and name != "emstats.formula":
                found.add((name, "patsy"))
                continue
            if top != "emstats":
                continue
            other = _part(imp)
            if other not in LAYER:
                continue
            if LAYER[other] > LAYER.get(me, 5) and other != me:
                found.add((name, imp.rsplit(".", 1)[0] if imp.count(".") > 2 else imp))
            last = imp.rsplit(".", 1)[-1]
            # a private name of another module (private modules themselves are fine)
            if (last.startswith("_") and not last.startswith("__")
                    and not imp.startswith("emstats._") and ".".join(imp.split(".")[:-1])
                    != name and "._kernels" not in imp and last != "_config"):
                found.add((name, imp))
    return frozenset(found)


def test_imports_run_one_way():
    new = _violations()
    assert not new, "imports against the layering (exceptions <- em <- components <- " \
        f"models <- API; patsy only in formula.py; no private names): {sorted(new)}"


def test_the_engine_imports_no_model():
    em = {n for n, _ in _modules() if n.startswith("emstats.em")}
    bad = {(a, b) for a, b in _violations() if a in em}
    assert not bad
