"""Helpers for the IR tests: lower sources and examples, build small graphs by hand."""
from __future__ import annotations

import functools
import re
from pathlib import Path

import numpy as np

from ebmlang.graph import ir
from ebmlang.graph.lower import lower_program
from ebmlang.language.checker import check_source

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
EXAMPLE_FILES = sorted(EXAMPLES.glob("*.ebm"))


def lower_source(text: str, model: str | None = None, file: str = "test.ebm") -> ir.FactorGraph:
    """Parse, check and lower source text."""
    return lower_program(check_source(text, file), model)


def example_source(name: str, **consts: int) -> str:
    """The text of examples/<name>.ebm with `const X = ...` lines overridden."""
    text = (EXAMPLES / f"{name}.ebm").read_text()
    for const, value in consts.items():
        text, count = re.subn(rf"^const {const} = .*$", f"const {const} = {value}", text, flags=re.M)
        assert count == 1, f"no `const {const}` line in {name}.ebm"
    return text


@functools.lru_cache(maxsize=None)
def lower_example(name: str, model: str | None = None, **consts: int) -> ir.FactorGraph:
    """Lower an example (imports resolve relative to examples/)."""
    return lower_program(check_source(example_source(name, **consts), str(EXAMPLES / f"{name}.ebm")), model)


def pairwise_graph(num_variables: int, edges: np.ndarray, domain: ir.Domain = ir.BINARY,
                   observed: bool = False) -> ir.FactorGraph:
    """A hand-built graph: one group `x`, one template x[a] * x[b] per edge (a, b)."""
    edges = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
    body = ir.Apply(ir.UNKNOWN_SPAN, "mul", (ir.Slot(ir.UNKNOWN_SPAN, "x", edges[:, 0].copy()),
                                             ir.Slot(ir.UNKNOWN_SPAN, "x", edges[:, 1].copy())))
    template = ir.FactorTemplate("pair", "pair", body, len(edges), ("e",), np.arange(len(edges))[:, None])
    group = ir.VariableGroup("x", (num_variables,), domain, observed)
    return ir.FactorGraph("hand", {"x": group}, {}, (template,), ("pair",))


def assert_proper(colouring, edges: np.ndarray, sizes: dict[str, int], offsets: dict[str, int]) -> None:
    """Every variable in exactly one class, and no edge inside a class (vectorised)."""
    total = sum(sizes.values())
    colour = np.full(total, -1)
    for c, members in enumerate(colouring.classes):
        for group, flat in members.items():
            ids = offsets[group] + flat
            assert np.all(colour[ids] == -1), "a variable is in two colour classes"
            colour[ids] = c
    assert np.all(colour >= 0), "a variable is in no colour class"
    if len(edges):
        assert not np.any(colour[edges[:, 0]] == colour[edges[:, 1]]), "an edge joins two variables of one class"
