"""The package is the pipeline: each stage imports only the stages before it, and no
modules import each other in a circle.

Every import is read with `ast`, the ones inside functions too: a local import hides a
circle from the interpreter, not from this test.
"""
from __future__ import annotations

import ast
import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

import networkx as nx
import pytest

import ebmlang
from ebmlang._moved import MOVED_MODULES

PACKAGE_DIR = Path(ebmlang.__file__).parent

# The architecture's order (docs/architecture.md). A module may import its own stage and
# any stage listed before it.
STAGES = (
    ("errors", ("ebmlang.errors", "ebmlang.budget", "ebmlang._moved")),
    ("language", ("ebmlang.grammar", "ebmlang.language")),
    ("graph", ("ebmlang.graph",)),
    ("backends", ("ebmlang.backends",)),
    ("inference", ("ebmlang.inference",)),
    ("learning", ("ebmlang.learning",)),
    ("api", ("ebmlang.api",)),
    ("distributed", ("ebmlang.distributed",)),
    ("cli", ("ebmlang.cli",)),
    ("public", ()),  # ebmlang/__init__.py, the package itself
)
# A module longer than this has several seams; split it along them.
MAX_MODULE_LINES = 550


def package_modules() -> dict[str, Path]:
    """Every module of the installed package, backends/ and grammar/ (symlinks) included."""
    modules = {}
    paths = [Path(folder) / name for folder, _, names in os.walk(PACKAGE_DIR, followlinks=True)
             for name in names if name.endswith(".py")]
    for path in sorted(paths):
        parts = path.relative_to(PACKAGE_DIR).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(("ebmlang",) + parts)] = path
    return modules


MODULES = package_modules()


def stage_of(module: str) -> int:
    for rank, (_, prefixes) in enumerate(STAGES):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return rank
    assert module == "ebmlang", f"{module} belongs to no stage; add it to STAGES"
    return len(STAGES) - 1


def imports_of(module: str, path: Path) -> list[tuple[str, int]]:
    """(imported ebmlang module, line) for every import in `path`, nested ones included."""
    is_package = path.name == "__init__.py"
    package = module if is_package else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module
            for alias in node.names:
                submodule = f"{name}.{alias.name}"
                found.append((submodule if submodule in MODULES else name, node.lineno))
    return [(name, line) for name, line in found if name == "ebmlang" or name.startswith("ebmlang.")]


def import_graph() -> nx.DiGraph:
    graph = nx.DiGraph()
    for module, path in MODULES.items():
        graph.add_node(module)
        for target, line in imports_of(module, path):
            graph.add_edge(module, target, line=line)
    return graph


GRAPH = import_graph()


def test_every_import_names_a_module_of_the_package():
    unknown = [f"{m}:{GRAPH.edges[m, t]['line']} imports {t}" for m, t in GRAPH.edges if t not in MODULES]
    assert not unknown, "\n".join(unknown)


def test_no_module_imports_a_later_stage():
    later = [f"{m}:{GRAPH.edges[m, t]['line']} ({STAGES[stage_of(m)][0]}) imports {t} ({STAGES[stage_of(t)][0]})"
             for m, t in GRAPH.edges if t in MODULES and stage_of(t) > stage_of(m)]
    assert not later, "\n".join(later)


def test_no_import_circles():
    circles = [" -> ".join(cycle + [cycle[0]]) for cycle in nx.simple_cycles(GRAPH)]
    assert not circles, "\n".join(circles)


def test_nothing_inside_imports_an_old_flat_path():
    old = [f"{m}:{GRAPH.edges[m, t]['line']} imports {t}" for m, t in GRAPH.edges if t in MOVED_MODULES]
    assert not old, "\n".join(old)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_module_is_small(module):
    lines = len(MODULES[module].read_text().splitlines())
    assert lines <= MAX_MODULE_LINES, f"{module} has {lines} lines; split it along its seams"


def test_the_checker_catches_a_later_stage_import_and_a_circle(tmp_path):
    """The walk itself works: a fabricated language module importing inference is flagged,
    and two modules importing each other form a circle."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from ebmlang.inference.plan import plan_query\n")
    assert imports_of("ebmlang.language.bad", bad) == [("ebmlang.inference.plan", 2)]
    assert stage_of("ebmlang.inference.plan") > stage_of("ebmlang.language.bad")
    graph = nx.DiGraph([("ebmlang.graph.a", "ebmlang.graph.b"), ("ebmlang.graph.b", "ebmlang.graph.a")])
    assert list(nx.simple_cycles(graph))


def test_old_flat_paths_still_import_as_the_moved_modules():
    for old, new in MOVED_MODULES.items():
        sys.modules.pop(old, None)
        with pytest.warns(DeprecationWarning, match=re.escape(f"{old} moved to {new}")):
            module = importlib.import_module(old)
        assert module is importlib.import_module(new)


def test_an_old_path_still_runs_as_a_script():
    result = subprocess.run([sys.executable, "-m", "ebmlang.showcase", "--help"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert "--only SECTION" in result.stdout
