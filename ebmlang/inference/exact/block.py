"""The discrete variables drawn in one exact block: blocked Gibbs on a tree.

When the latent discrete variables, given everything else (observed values and the
chains' current continuous values), interact as a forest of pairwise factors, one step
draws all of them jointly from their exact conditional -- forward filtering, backward
sampling on the tree, every chain at once -- instead of site by site. A mixture's labels
or an HMM's hidden path then never get stuck behind a slow single-site chain.
"""
from __future__ import annotations

import numpy as np

from ebmlang.inference.exact.junction import ForestForm
from ebmlang.inference.exact.program import ForestProgram
from ebmlang.inference.exact.tables import NotPairwise, PairwiseTables, pairwise_tables


def exact_block_structure(compiled, groups, budget=None) -> PairwiseTables | str:
    """The tables of `groups` given every other group, when they form a pairwise forest;
    else why not."""
    graph = compiled.graph
    try:
        tables = pairwise_tables(compiled, [g for g in graph.variables if g not in groups], budget)
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
        found = exact_block_structure(model.compiled, groups, model.budget)
        if isinstance(found, str):
            raise ValueError(f"no exact block for {', '.join(groups)}: {found}")
        self.tables = found
        self.model = model
        self.beta = 1.0 / float(temperature)
        index = found.index
        self.parts = {g: (index.offsets[g], index.sizes[g]) for g in index.groups}
        self.values = {g: np.asarray(model.graph.variables[g].domain.values, dtype=np.float64) for g in index.groups}

    def __call__(self, key, state: dict) -> dict:
        backend, tables = self.model.backend, self.tables
        rows = int(next(iter(state.values())).shape[0])
        context = {g: state[g] for g in state if g not in self.parts}
        # the tables are built inside the draw's program (one compiled call per step on JAX)
        form = ForestForm(None, tables.edges, None, None, tables.forest, 1, tables.num_variables,
                          schedule=tables.schedule, tables=tables, context=context, rows=rows)
        program = ForestProgram(backend, form, self.beta, memo=self.model.compiled.memo, schedule=tables.schedule,
                                params=self.model.params)
        labels = program.sample(key, 1)[:, 0]                                             # [B, n]
        new = dict(state)
        graph = self.model.graph
        for g, (offset, size) in self.parts.items():
            values = self.values[g][labels[:, offset:offset + size]]
            new[g] = backend.asarray(values.reshape((rows,) + graph.variables[g].shape))
        return new
