"""Exact inference structures: a pairwise forest as it is, any other model as a junction tree.

`exact_form` turns tabulated models (one `TabularMRF` per row of observations, one
structure) into a `ForestForm`: a pairwise model on a forest that the level passes
(passes.py) solve exactly. A pairwise forest is used directly (width 1). Otherwise
networkx's elimination heuristics give a tree decomposition of the interaction graph;
each bag becomes one node whose labels are the joint labels of its variables, every
factor is added into one bag that holds its variables, and neighbouring bags are
joined by a table that is 0 where they agree on their shared variables and +inf
elsewhere. Exact whenever the largest bag's table fits the budget. (min-fill-in orders
the eliminations; min-degree, which is faster, above MIN_FILL_IN_VARIABLES variables.)
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import networkx as nx
import numpy as np

from ebmlang.budget import as_budget, format_bytes
from ebmlang.inference.discrete_map.tree_dp import RootedForest, rooted_forest
from ebmlang.inference.tabular import TabularMRF


@dataclass(frozen=True)
class ForestForm:
    """A batch of pairwise models on one rooted forest, and how its labels map back.

    unary [B, n, K], pairwise [B, E, K, K]: energies (+inf forbids); constant [B].
    bags: [n] tuples of the original variables each node stands for (None: node i is
    variable i). codes: per node, [L_i, |bag|] the variables' labels of each node label.
    """

    unary: np.ndarray
    edges: np.ndarray
    pairwise: np.ndarray
    constant: np.ndarray
    forest: RootedForest
    width: int
    num_variables: int
    bags: tuple | None = None
    codes: tuple | None = None
    schedule: object = None   # the LevelSchedule of `forest`, when the caller keeps one
    tables: object = None     # PairwiseTables that build unary / pairwise from `context` ...
    context: dict | None = None
    rows: int = 1             # ... for this many rows of observations (then the arrays are None)

    def describe(self) -> str:
        if self.bags is None:
            return f"exact: tree sum-product, width 1 ({self.forest.describe(self.edges.shape[0])})"
        largest = max((c.shape[0] for c in self.codes), default=1)
        return (f"exact: junction tree, width {self.width} ({len(self.bags)} bags of up to {self.width + 1} "
                f"variables, largest table {largest:,} joint labels)")

    def variable_labels(self, node_labels: np.ndarray) -> np.ndarray:
        """[..., n_nodes] node labels -> [..., num_variables] variable labels."""
        if self.bags is None:
            return node_labels
        out = np.zeros(node_labels.shape[:-1] + (self.num_variables,), dtype=np.int64)
        for node, (bag, codes) in enumerate(zip(self.bags, self.codes)):   # over bags, few
            out[..., list(bag)] = codes[np.minimum(node_labels[..., node], codes.shape[0] - 1)]
        return out

    def variable_marginals(self, node_marginals: np.ndarray, num_labels: int) -> np.ndarray:
        """[B, n_nodes, L] node marginals -> [B, num_variables, K] variable marginals."""
        if self.bags is None:
            return node_marginals[..., :num_labels]
        rows = node_marginals.shape[0]
        out = np.zeros((rows, self.num_variables, num_labels))
        done = np.zeros(self.num_variables, dtype=bool)
        for node, (bag, codes) in enumerate(zip(self.bags, self.codes)):
            for position, variable in enumerate(bag):
                if done[variable]:
                    continue
                weights = node_marginals[:, node, :codes.shape[0]]
                np.add.at(out[:, variable].T, codes[:, position], weights.T)
                done[variable] = True
        return out


def interaction_graph(mrf: TabularMRF) -> nx.Graph:
    graph = nx.Graph()
    graph.add_nodes_from(range(mrf.num_variables))
    graph.add_edges_from(map(tuple, mrf.edges.tolist()))
    for factor in mrf.higher:
        for scope in factor.variables.tolist():
            graph.add_edges_from((a, b) for i, a in enumerate(scope) for b in scope[i + 1:])
    return graph


# networkx's min-fill-in heuristic (the better orders) is roughly quadratic in the number
# of variables; above this many, the min-degree heuristic decides (0.4 s on a 64 x 64 grid).
MIN_FILL_IN_VARIABLES = 1000


def tree_decomposition(graph: nx.Graph) -> tuple[int, nx.Graph]:
    """(width, decomposition tree of bags) by networkx's elimination heuristics."""
    approximation = nx.algorithms.approximation
    if graph.number_of_nodes() <= MIN_FILL_IN_VARIABLES:
        return approximation.treewidth_min_fill_in(graph)
    return approximation.treewidth_min_degree(graph)


def exact_form(rows: list[TabularMRF], budget=None) -> ForestForm | str:
    """The ForestForm of `rows` (merged models of one structure), or why there is none."""
    first = rows[0]
    if first.is_pairwise:
        forest = rooted_forest(first.num_variables, first.edges)
        if forest is not None:
            return ForestForm(np.stack([m.unary for m in rows]), first.edges,
                              np.stack([m.pairwise for m in rows]), np.array([m.constant for m in rows]),
                              forest, 1, first.num_variables)
    width, decomposition = tree_decomposition(interaction_graph(first))
    bags = [tuple(sorted(b)) for b in decomposition.nodes]
    sizes = [math.prod(int(first.num_labels[v]) for v in bag) for bag in bags]
    largest = max(sizes, default=1)
    budget = as_budget(budget)
    need = 8.0 * len(rows) * len(bags) * largest * (largest + 1)
    if need > budget.bytes:
        labels = f"{largest:,}" if largest < 10 ** 12 else f"2^{math.log2(largest):.0f}"
        return (f"its junction tree has width {width} and a bag of {labels} joint labels: the exact "
                f"tables would take {format_bytes(need)}, more than the budget of {format_bytes(budget.bytes)}")
    return _bag_form(rows, bags, decomposition, width, largest)


def _bag_form(rows, bags, decomposition, width, largest) -> ForestForm:
    first = rows[0]
    position = {bag: i for i, bag in enumerate(decomposition.nodes)}
    codes = [np.stack(np.unravel_index(np.arange(math.prod(int(first.num_labels[v]) for v in bag)),
                                       [int(first.num_labels[v]) for v in bag]), axis=1) for bag in bags]
    home = _homes(first, bags)
    batch = len(rows)
    unary = np.full((batch, len(bags), largest), np.inf)
    for node, (bag, code) in enumerate(zip(bags, codes)):
        total = np.zeros((batch, code.shape[0]))
        at = {v: code[:, i] for i, v in enumerate(bag)}
        for v in home["unary"].get(node, ()):
            total += np.stack([m.unary[v, at[v]] for m in rows])
        for e in home["edges"].get(node, ()):
            a, b = first.edges[e]
            total += np.stack([m.pairwise[e, at[a], at[b]] for m in rows])
        for group, f in home["higher"].get(node, ()):
            scope = first.higher[group].variables[f]
            column = np.stack([at[v] for v in scope], axis=1) @ first.higher[group].place_values
            total += np.stack([m.higher[group].table[f, column] for m in rows])
        unary[:, node, :code.shape[0]] = total
    links = np.array([(position[a], position[b]) for a, b in decomposition.edges], dtype=np.int64).reshape(-1, 2)
    pairwise = np.full((len(links), largest, largest), np.inf)
    for e, (a, b) in enumerate(links):
        shared = sorted(set(bags[a]) & set(bags[b]))
        left = codes[a][:, [bags[a].index(v) for v in shared]]
        right = codes[b][:, [bags[b].index(v) for v in shared]]
        agree = (left[:, None, :] == right[None, :, :]).all(axis=2)
        pairwise[e, :agree.shape[0], :agree.shape[1]] = np.where(agree, 0.0, np.inf)
    forest = rooted_forest(len(bags), links)
    return ForestForm(unary, links, np.broadcast_to(pairwise, (batch,) + pairwise.shape),
                      np.array([m.constant for m in rows]), forest, int(width), first.num_variables,
                      tuple(bags), tuple(codes))


def _homes(mrf: TabularMRF, bags: list[tuple]) -> dict:
    """For every factor, one bag that holds all its variables: {"unary"|"edges"|"higher": {bag: [...]}}."""
    holding: dict[int, list[int]] = {}
    for node, bag in enumerate(bags):
        for v in bag:
            holding.setdefault(v, []).append(node)

    def home_of(scope) -> int:
        candidates = set(holding[scope[0]])
        for v in scope[1:]:
            candidates &= set(holding[v])
        return min(candidates)

    homes: dict = {"unary": {}, "edges": {}, "higher": {}}
    for v in range(mrf.num_variables):
        homes["unary"].setdefault(home_of([v]), []).append(v)
    for e, (a, b) in enumerate(mrf.edges.tolist()):
        homes["edges"].setdefault(home_of([a, b]), []).append(e)
    for group, factor in enumerate(mrf.higher):
        for f, scope in enumerate(factor.variables.tolist()):
            homes["higher"].setdefault(home_of(scope), []).append((group, f))
    return homes
