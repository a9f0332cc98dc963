"""Module paths from before the package was arranged by stage keep importing.

`import ebmlang.parser` (say) gives the module `ebmlang.language.parser` itself, with a
DeprecationWarning naming the new path, so user code written against the flat layout
runs unchanged. Nothing inside ebmlang imports an old path (tests/architecture checks).
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

MOVED_MODULES = {
    "ebmlang.ast": "ebmlang.language.ast",
    "ebmlang.builtin_names": "ebmlang.language.builtin_names",
    "ebmlang.check_bounds": "ebmlang.language.check_bounds",
    "ebmlang.check_compose": "ebmlang.language.check_compose",
    "ebmlang.check_decls": "ebmlang.language.check_decls",
    "ebmlang.check_expr": "ebmlang.language.check_expr",
    "ebmlang.checker": "ebmlang.language.checker",
    "ebmlang.consteval": "ebmlang.language.consteval",
    "ebmlang.highlight": "ebmlang.language.highlight",
    "ebmlang.loader": "ebmlang.language.loader",
    "ebmlang.parser": "ebmlang.language.parser",
    "ebmlang.compose": "ebmlang.graph.compose",
    "ebmlang.data": "ebmlang.graph.values",
    "ebmlang.graph_export": "ebmlang.graph.export",
    "ebmlang.ir": "ebmlang.graph.ir",
    "ebmlang.lower": "ebmlang.graph.lower",
    "ebmlang.reference": "ebmlang.graph.reference",
    "ebmlang.structure": "ebmlang.graph.structure",
    "ebmlang.compile": "ebmlang.backends.compile",
    "ebmlang.diagnostics": "ebmlang.inference.diagnostics",
    "ebmlang.results": "ebmlang.inference.results",
    "ebmlang.io": "ebmlang.api.io",
    "ebmlang.model": "ebmlang.api.model",
    "ebmlang.plot": "ebmlang.api.plot",
    "ebmlang.cli_commands": "ebmlang.cli.commands",
    "ebmlang.showcase": "ebmlang.cli.showcase",
}


class _MovedModuleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds an old module path and loads it as the module at its new path."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in MOVED_MODULES:
            return None
        # The new file as origin: `python -m <old path>` then runs with its __file__.
        return importlib.util.spec_from_loader(fullname, self, origin=importlib.util.find_spec(
            MOVED_MODULES[fullname]).origin)

    def create_module(self, spec):
        new = MOVED_MODULES[spec.name]
        warnings.warn(f"{spec.name} moved to {new}; import it from there", DeprecationWarning, stacklevel=2)
        return importlib.import_module(new)

    def exec_module(self, module):
        """Nothing to run: the module ran under its new name."""

    def get_code(self, fullname):
        """The new module's code, so `python -m ebmlang.showcase` still runs the showcase."""
        new = MOVED_MODULES[fullname]
        return importlib.util.find_spec(new).loader.get_code(new)


def install_moved_module_aliases() -> None:
    """Let the old flat module paths import (once per interpreter)."""
    if not any(isinstance(finder, _MovedModuleFinder) for finder in sys.meta_path):
        sys.meta_path.append(_MovedModuleFinder())
