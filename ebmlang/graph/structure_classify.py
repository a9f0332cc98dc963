"""Factor classification: what kind of factor a template is (`FactorInfo`, `classify`).

Arity, the domains it touches, differentiability and tabularity, read from the
template's index arrays and IR body. Its own piece: the planner and exporters ask
these questions of templates, not of ground variables.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ebmlang.graph import ir
from ebmlang.graph.structure_ground import _cached, _graph_cache, _offsets, _template_columns, ground_numbering

# a factor is tabular when its table over its latent variables has at most this many entries
TABULAR_LIMIT = 2**16

_COMPARISON_FUNCTIONS = frozenset({"eq", "ne", "lt", "le", "gt", "ge", "and", "or", "not"})


# --------------------------------------------------------------------------
# Factor classification


@dataclass(frozen=True)
class FactorInfo:
    """What kind of factor a template is.

    arity: most distinct ground variables (observed included) one ground factor reads.
    latent_arity: the same counting latent variables only; `order` names it:
      "constant" (0), "unary" (1), "pairwise" (2) or "higher".
    domains: the domain kinds it touches; latent_groups / observed_groups: which groups.
    differentiable: smooth in its continuous variables (no constraint, no extern,
      no comparison or selection driven by a continuous value).
    tabular: its latent variables are all discrete and the largest per-factor table
      (product of K over a ground factor's distinct latent variables) has at most
      TABULAR_LIMIT entries; table_size is that product (None when not discrete).
    """

    name: str
    term: str
    num_ground: int
    arity: int
    latent_arity: int
    order: str
    domains: tuple[str, ...]
    latent_groups: tuple[str, ...]
    observed_groups: tuple[str, ...]
    is_constraint: bool
    differentiable: bool
    tabular: bool
    table_size: int | None
    has_extern: bool
    has_neural: bool


def classify(template: ir.FactorTemplate, g: ir.FactorGraph) -> FactorInfo:
    """Arity, domains, differentiability and tabularity of one template."""
    return _cached(_graph_cache, g, ("classify", template.name), lambda: _classify(template, g))


def _classify(t: ir.FactorTemplate, g: ir.FactorGraph) -> FactorInfo:
    groups = [n for n in t.groups]
    latent = tuple(n for n in groups if not g.variables[n].observed)
    observed = tuple(n for n in groups if g.variables[n].observed)
    numbering = ground_numbering(g)
    columns = _template_columns(t, _offsets(numbering))
    if columns is None:
        columns = np.full((t.num_ground, 0), -1, dtype=np.int64)
    distinct = _distinct_mask(columns)
    arity = int(distinct.sum(axis=1).max(initial=0))
    is_latent = np.zeros(numbering.total + 1, dtype=bool)
    log_k = np.zeros(numbering.total + 1)
    for k, name in enumerate(numbering.groups):
        var = g.variables[name]
        block = slice(numbering.offsets[k], numbering.offsets[k + 1])
        is_latent[block] = not var.observed
        log_k[block] = math.log(var.domain.num_values) if var.domain.is_discrete else math.inf
    safe = np.where(columns >= 0, columns, numbering.total)  # the extra slot is a harmless sentinel
    latent_distinct = distinct & is_latent[safe]
    latent_arity = int(latent_distinct.sum(axis=1).max(initial=0))
    all_discrete = all(g.variables[n].domain.is_discrete for n in latent)
    table_size = None
    if all_discrete:
        log_size = float(np.where(latent_distinct, log_k[safe], 0.0).sum(axis=1).max(initial=0.0))
        table_size = int(round(math.exp(log_size))) if log_size < 60 else None
    nodes = list(ir.walk(t.body))
    return FactorInfo(
        name=t.name, term=t.term, num_ground=t.num_ground, arity=arity, latent_arity=latent_arity,
        order={0: "constant", 1: "unary", 2: "pairwise"}.get(latent_arity, "higher"),
        domains=tuple(dict.fromkeys(g.variables[n].domain.kind for n in groups)),
        latent_groups=latent, observed_groups=observed, is_constraint=t.is_constraint,
        differentiable=not t.is_constraint and _smooth_in_continuous(t.body, g),
        tabular=all_discrete and table_size is not None and table_size <= TABULAR_LIMIT,
        table_size=table_size,
        has_extern=any(isinstance(n, ir.Extern) for n in nodes),
        has_neural=any(isinstance(n, ir.Neural) for n in nodes),
    )


def _distinct_mask(columns: np.ndarray) -> np.ndarray:
    """Per row, True at the first occurrence of each id >= 0 (column order)."""
    if columns.shape[1] == 0:
        return np.zeros(columns.shape, dtype=bool)
    order = np.argsort(columns, axis=1, kind="stable")
    ordered = np.take_along_axis(columns, order, axis=1)
    first = np.ones(ordered.shape, dtype=bool)
    first[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    first &= ordered >= 0
    mask = np.zeros(columns.shape, dtype=bool)
    np.put_along_axis(mask, order, first, axis=1)
    return mask


def _smooth_in_continuous(body: ir.Node, g: ir.FactorGraph) -> bool:
    def reads_continuous(node: ir.Node) -> bool:
        return any(isinstance(n, ir.Slot) and g.variables[n.group].domain.is_continuous for n in ir.walk(node))

    for node in ir.walk(body):
        if isinstance(node, ir.Extern):
            return False
        if isinstance(node, ir.Apply) and node.fn in _COMPARISON_FUNCTIONS and reads_continuous(node):
            return False
        if isinstance(node, ir.Select) and reads_continuous(node.index):
            return False
    return True
