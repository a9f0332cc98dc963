"""Human-readable views of a factor graph: a text summary, DOT, and files.

`summary(g)` lists groups, params, templates (ground counts, order) and the
colouring; `to_dot(g)` renders the template-level structure graph as Graphviz
DOT; `write_graph(g, path)` writes DOT (rendered to .svg/.png where the `dot`
executable exists), node-link JSON or GraphML. `ebm graph FILE` uses these.
"""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import networkx as nx

from ebmlang.errors import EbmError
from ebmlang.graph import ir, structure
from ebmlang.language.check_network import network_source

# Colouring is skipped in summaries of models with more latent discrete variables than this.
SUMMARY_COLOURING_LIMIT = 4_000_000


def _shape_text(shape: tuple[int, ...]) -> str:
    return f"[{', '.join(str(n) for n in shape)}]" if shape else "scalar"


def _init_text(p: ir.ParamGroup) -> str:
    init = p.init
    if init.kind == "mlp":
        return f"mlp({' -> '.join(str(n) for n in init.layer_sizes)}, {init.activation})"
    if init.kind == "network":
        return f"network({_shape_text(init.input_shape)} -> {init.layer_sizes[-1]})"
    if init.kind == "layers":
        return network_source(init.input_shape, init.layers, init.spectral_norm)
    if init.kind == "value":
        value = init.value
        if value is not None and value.size and (value == value.flat[0]).all():
            return f"= {float(value.flat[0]):g}"
        return "= array"
    return f"~ {init.kind}({', '.join(f'{a:g}' for a in init.args)})"


def _table(rows: list[list[str]], indent: str = "  ") -> list[str]:
    if not rows:
        return [indent + "(none)"]
    widths = [max(len(r[k]) for r in rows) for k in range(len(rows[0]))]
    return [indent + "  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows]


def summary(g: ir.FactorGraph) -> str:
    """A plain-text overview: groups, params, templates with ground counts and order, colours."""
    lines = [f"model {g.name} ({g.file})"]
    if g.experts:
        lines.append("experts: " + ", ".join(
            f"{e.name}" + (f" ^ {e.weight}" if e.weight != 1.0 else "") for e in g.experts))
    lines.append("variables:")
    lines += _table([[name, _shape_text(v.shape), str(v.domain), "observed" if v.observed else "latent",
                      f"{v.size} ground"] for name, v in g.variables.items()])
    lines.append("params:")
    lines += _table([[name, "network" if p.is_neural else _shape_text(p.shape), _init_text(p)]
                     + ([f"in [{p.bounds[0]:g}, {p.bounds[1]:g}]"] if p.bounds else [""])
                     for name, p in g.params.items()])
    lines.append("factor templates:")
    rows = []
    for t in g.templates:
        info = structure.classify(t, g)
        kind = ("constraint" if t.is_constraint else info.order) + _observed_note(info.arity, info.latent_arity)
        rows.append([t.name, f"term {t.term}", f"{t.num_ground} ground", kind,
                     "reads " + (", ".join(t.groups) or "-"),
                     "params " + (", ".join(t.param_names) or "-")])
    lines += _table(rows)
    num_discrete = sum(g.variables[n].size for n in structure.latent_discrete_groups(g))
    if num_discrete:
        if num_discrete <= SUMMARY_COLOURING_LIMIT:
            colours = structure.colouring(g)
            sizes = ", ".join(str(sum(len(v) for v in c.values())) for c in colours.classes)
            plural = "es" if colours.num_colours != 1 else ""
            lines.append(f"colouring: {colours.num_colours} colour class{plural} ({colours.method}) "
                         f"over {num_discrete} latent discrete variables, sizes {sizes}")
        log10 = structure.discrete_state_space_size(g, log10=True)
        states = (str(structure.discrete_state_space_size(g)) if log10 < 15 else f"10^{log10:.1f}")
        lines.append(f"discrete state space: {states} joint states")
    components = structure.connected_components(g)
    if components.count:
        lines.append(f"latent components: {components.count}")
    return "\n".join(lines)


def _observed_note(arity: int, latent_arity: int) -> str:
    """A factor's order counts latent variables; say how many observed ones it also reads."""
    return f" (+{arity - latent_arity} observed)" if arity > latent_arity else ""


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def to_dot(g: ir.FactorGraph) -> str:
    """Graphviz DOT of the template-level factor graph: ellipses for variable groups
    (grey when observed), boxes for factor templates, edges labelled by slot count."""
    sg = structure.structure_graph(g)
    lines = [f"graph {_quote(g.name)} {{", "  rankdir=LR;", '  node [fontname="Helvetica", fontsize=11];']
    ids = {node: f"{'v' if node[0] == 'variable' else 'f'}{k}" for k, node in enumerate(sg.nodes)}
    for node, data in sg.nodes(data=True):
        if data["kind"] == "variable":
            label = f"{node[1]}\n{_shape_text(data['shape'])} {data['domain']}"
            fill = "lightgrey" if data["observed"] else "lightsteelblue"
            lines.append(f"  {ids[node]} [shape=ellipse, style=filled, fillcolor={fill}, label={_quote(label)}];")
        else:
            kind = ("constraint" if data["is_constraint"] else data["order"]) + _observed_note(
                data["arity"], data["latent_arity"])
            params = ", ".join(data["params"])
            label = f"{node[1]}\n{data['num_ground']} x {kind}" + (f"\n{params}" if params else "")
            fill = "mistyrose" if data["is_constraint"] else "wheat"
            lines.append(f"  {ids[node]} [shape=box, style=filled, fillcolor={fill}, label={_quote(label)}];")
    for a, b, data in sg.edges(data=True):
        factor, variable = (a, b) if a[0] == "factor" else (b, a)
        extra = f" [label={_quote(str(data['slots']))}]" if data.get("slots", 1) > 1 else ""
        lines.append(f"  {ids[factor]} -- {ids[variable]}{extra};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _plain_graph(g: ir.FactorGraph) -> nx.Graph:
    """The structure graph with string node ids and scalar attributes (JSON/GraphML friendly)."""
    sg = structure.structure_graph(g)
    out = nx.Graph(name=g.name)
    for node, data in sg.nodes(data=True):
        out.add_node(f"{node[0]}:{node[1]}", **{
            k: (", ".join(map(str, v)) if isinstance(v, tuple) else v) for k, v in data.items()})
    for a, b, data in sg.edges(data=True):
        out.add_edge(f"{a[0]}:{a[1]}", f"{b[0]}:{b[1]}", **data)
    return out


def write_graph(g: ir.FactorGraph, out_path: str | Path) -> list[Path]:
    """Write the structure graph; returns the files written.

    .json -> networkx node-link JSON; .graphml -> GraphML; anything else
    (.dot, .gv, .svg, .png or no suffix) -> a .dot file, plus .svg and .png
    rendered by Graphviz's `dot` when it is installed (skipped otherwise).
    """
    path = Path(out_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower()
    if suffix == ".json":
        path.write_text(json.dumps(nx.node_link_data(_plain_graph(g), edges="links"), indent=1))
        return [path]
    if suffix == ".graphml":
        nx.write_graphml(_plain_graph(g), path)
        return [path]
    if suffix in (".dot", ".gv"):
        dot_path = path
    elif suffix in ("", ".svg", ".png", ".pdf"):
        dot_path = path.with_suffix(".dot")
    else:
        raise EbmError(f"cannot write a graph as '{suffix}'", expected=".dot, .gv, .svg, .png, .pdf, .json or .graphml")
    dot_path.write_text(to_dot(g))
    written = [dot_path]
    dot = shutil.which("dot")
    if dot is None:
        return written
    formats = [suffix[1:]] if suffix in (".svg", ".png", ".pdf") else ["svg", "png"]
    for fmt in formats:
        target = path.with_suffix(f".{fmt}")
        result = subprocess.run([dot, f"-T{fmt}", str(dot_path), "-o", str(target)],
                                capture_output=True, text=True, check=False)
        if result.returncode == 0:
            written.append(target)
    return written
