"""Text summary, DOT and written files of the structure graph; the lowering benchmark runs."""
from __future__ import annotations

import json
import re
import shutil

import networkx as nx
from ir_testing import ROOT, lower_example

from ebmlang.graph.export import summary, to_dot, write_graph


def test_summary_lists_groups_params_templates_and_colours():
    text = summary(lower_example("ising", L=8))
    assert "s  [8, 8]  spin  latent  64 ground" in text
    assert re.search(r"coupling#0\s+term coupling\s+64 ground\s+pairwise\s+reads s\s+params J", text)
    assert re.search(r"field\s+term field\s+64 ground\s+unary", text)
    assert "colouring: 2 colour classes (checkerboard) over 64 latent discrete variables, sizes 32, 32" in text
    composite = summary(lower_example("posterior", "Sharper"))
    assert "experts: Prior ^ 2.0, Likelihood" in composite
    assert "Prior.beta" in composite and "Likelihood.data" in composite


def test_dot_has_one_node_per_group_and_template_and_one_edge_per_read():
    g = lower_example("rbm", V=4, H=2)
    dot = to_dot(g)
    assert dot.startswith('graph "rbm" {') and dot.rstrip().endswith("}")
    node_lines = [line for line in dot.splitlines() if "[shape=" in line]
    assert len(node_lines) == len(g.variables) + len(g.templates)
    assert sum(" -- " in line for line in dot.splitlines()) == 4  # interaction: v, h; biases#0: v; biases#1: h
    assert 'label="interaction\\n8 x unary (+1 observed)\\nW"' in dot  # v is observed
    assert "fillcolor=lightgrey" in dot  # observed v


def test_write_graph_formats(tmp_path):
    g = lower_example("sudoku")
    (json_path,) = write_graph(g, tmp_path / "sudoku.json")
    data = json.loads(json_path.read_text())
    assert {n["id"] for n in data["nodes"]} == {"variable:x", "factor:clue", "factor:row", "factor:col", "factor:box"}
    (graphml_path,) = write_graph(g, tmp_path / "sudoku.graphml")
    assert nx.read_graphml(graphml_path).number_of_edges() == 4
    written = write_graph(g, tmp_path / "out" / "sudoku.png")
    assert written[0] == tmp_path / "out" / "sudoku.dot" and written[0].read_text() == to_dot(g)
    if shutil.which("dot") is None:
        assert written == [written[0]]  # no Graphviz: the drawing is skipped, not an error
    else:
        assert (tmp_path / "out" / "sudoku.png") in written


def test_lowering_benchmark_runs_at_a_small_size():
    import sys

    sys.path.insert(0, str(ROOT))
    try:
        from benchmarks.bench_lowering import run_one
    finally:
        sys.path.remove(str(ROOT))
    row = run_one(8)
    assert row["spins"] == 64 and row["ground_factors"] == 3 * 64
    assert row["colours"] == 2 and row["method"] == "checkerboard"
