"""The discrete variables drawn in one exact block: blocked Gibbs on a tree.

When the latent discrete variables, given everything else (observed values and the
chains' current continuous values), interact as a forest of pairwise factors, one step
draws all of them jointly from their exact conditional -- forward filtering, backward
sampling on the tree, every chain at once -- instead of site by site. A mixture's labels
or an HMM's hidden path then never get stuck behind a slow single-site chain.
"""
from __future__ import annotations

import numpy as np

from ebmlang.inference.exact.program import ForestPasses, from_observations
from ebmlang.inference.exact.tables import NotPairwise, PairwiseTables


def exact_block_structure(compiled, groups, budget=None) -> PairwiseTables | str:
    """The tables of `groups` given every other group, when they form a pairwise forest;
    else why not."""
    graph = compiled.graph
    others = tuple(sorted(g for g in graph.variables if g not in groups))
    try:
        tables = PairwiseTables(compiled, others, budget)
    except NotPairwise as reason:
        return str(reason)
    if tables.num_variables == 0:
        return "no discrete variable to draw"
    if tables.forest is None:
        return "their interaction graph has a cycle"
    return tables


class ExactBlockStepper:
    """`step(key, state) -> state`: the discrete groups redrawn jointly and exactly."""

    def __init__(self, model, groups, temperature: float):
        compiled = model.compiled
        found = compiled.memo(("exact block", tuple(groups)),
                              lambda: exact_block_structure(compiled, groups, model.budget))
        if isinstance(found, str):
            raise ValueError(f"no exact block for {', '.join(groups)}: {found}")
        self.tables = found
        self.model = model
        self.slots = found.schedule.node_slots
        self.beta = 1.0 / float(temperature)
        index = found.index
        self.parts = {g: (index.offsets[g], index.sizes[g]) for g in index.groups}
        self.values = {g: np.asarray(model.graph.variables[g].domain.values, dtype=np.float64) for g in index.groups}

    def __call__(self, key, state: dict) -> dict:
        backend = self.model.backend
        rows = int(next(iter(state.values())).shape[0])
        context = {g: state[g] for g in state if g not in self.parts}
        # the tables are built inside the draw's program (one compiled call per step on JAX)
        tables = self.tables
        passes = self.model.compiled.memo(
            ("exact block passes", id(tables), rows, self.beta),
            lambda: ForestPasses(backend, tables.schedule, self.beta, from_observations(backend, tables, rows)))
        drawn = backend.to_numpy(passes.draws(1)(key, context, self.model.params))  # [D, B, 1, W]
        depth, _, _, width = drawn.shape
        labels = drawn[:, :, 0, :].transpose(1, 0, 2).reshape(rows, depth * width)[:, self.slots]
        new = dict(state)
        graph = self.model.graph
        for g, (offset, size) in self.parts.items():
            values = self.values[g][labels[:, offset:offset + size]]
            new[g] = backend.asarray(values.reshape((rows,) + graph.variables[g].shape))
        return new
