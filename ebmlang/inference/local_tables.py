"""`LocalTable`: the energy of every ground factor of one template for every joint label
of the latent variables it reads, from the compiled energy itself.

The template is rewritten so that each latent slot reads a factor-local copy ("position
p" of every ground factor) and compiled once; a call evaluates it for every joint label
of the positions, per row of context values, in one batch -- so the tables are exactly
the model's energies whatever expression wrote them, and they stay backend arrays that
torch and JAX differentiate with respect to the params.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from ebmlang.graph.ir import FactorTemplate, Node, Slot, VariableGroup, walk


class LocalTable:
    """One template's per-factor energy table over `sizes` joint labels of its local positions.

    reads: id(slot) -> [num_ground, *inner] local position (0..len(sizes)-1) that each
    element of a latent slot reads.
    """

    def __init__(self, compiled, template: FactorTemplate, reads: dict, sizes: tuple[int, ...]):
        graph = compiled.graph
        self.backend = compiled.backend
        self.template = template
        self.sizes = tuple(int(s) for s in sizes)
        n_g = template.num_ground
        arity = len(self.sizes)
        local_groups: dict[str, VariableGroup] = {}
        replaced: dict[int, Slot] = {}
        for node in walk(template.body):
            if isinstance(node, Slot) and id(node) in reads:
                local_name = f"__local_{node.group}"
                var = graph.variables[node.group]
                local_groups[local_name] = VariableGroup(local_name, (arity * n_g,), var.domain, False, var.span)
                position = reads[id(node)]
                ground = np.arange(n_g).reshape((n_g,) + (1,) * (position.ndim - 1))
                replaced[id(node)] = dataclasses.replace(node, group=local_name, index=position * n_g + ground)
        body = replace_slots(template.body, replaced)
        local_template = dataclasses.replace(template, body=body)
        read = {s.group for s in local_template.slots}
        variables = {name: var for name, var in graph.variables.items() if name in read}
        variables.update(local_groups)
        local_graph = dataclasses.replace(graph, variables=variables, templates=(local_template,),
                                          terms=(template.term,))
        self.compiled = compiled.backend.compile(local_graph)
        for name, fn in getattr(compiled, "externs", {}).items():
            self.compiled.register_extern(name, fn)
        self.context_groups = tuple(sorted(read - set(local_groups)))
        labels = np.indices(self.sizes).reshape(arity, self.joint)                  # [arity, joint]
        self.local_values = {}
        for local_name, var in local_groups.items():
            values = var.domain.values
            by_position = [np.repeat(values[np.minimum(labels[p], len(values) - 1)][:, None], n_g, 1)
                           for p in range(arity)]
            self.local_values[local_name] = np.concatenate(by_position, axis=1)     # [joint, arity * n_g]
        # converted once: a float64 -> float32 copy per call costs more than the maths
        self._local_arrays = {name: self.backend.asarray(v) for name, v in self.local_values.items()}

    @property
    def joint(self) -> int:
        return int(np.prod(self.sizes, dtype=np.int64))

    def energies(self, context: dict, params, rows: int):
        """Backend array [rows, *sizes, num_ground]; context: backend arrays [rows or 1, *shape]
        of (at least) the groups this template reads besides its latent ones."""
        ops = self.backend.ops
        if len(self.sizes) == 1 and len(self.local_values) == 1:
            return self._by_value_axis(context, params, rows)
        joint = self.joint
        state = {}
        for name in self.context_groups:
            value = context.get(name)
            if value is None:   # a group the caller leaves unset reads as zeros
                value = ops.zeros((1,) + tuple(self.compiled.graph.variables[name].shape))
            shape = tuple(value.shape[1:])
            spread = ops.broadcast_to(ops.reshape(value, (value.shape[0], 1) + shape), (rows, joint) + shape)
            state[name] = ops.reshape(spread, (rows * joint,) + shape)
        for name, local in self._local_arrays.items():
            state[name] = local if rows == 1 else ops.reshape(
                ops.broadcast_to(ops.reshape(local, (1,) + tuple(local.shape)), (rows,) + tuple(local.shape)),
                (rows * joint, -1))
        energies = self.compiled.template_energies(state, params)[self.template.name]
        return ops.reshape(energies, (rows,) + self.sizes + (self.template.num_ground,))


    def _by_value_axis(self, context: dict, params, rows: int):
        """A table over one variable's labels, as a local conditional: the labels ride on a
        value axis that broadcasts against the context (`x[t] - mu[k]` is [rows, K, T] from x
        [rows, T] and mu [K]) instead of the context being copied once per label."""
        ops = self.backend.ops
        (name,) = self.local_values
        size = self.template.num_ground
        state = {g: context[g] if g in context else ops.zeros((1,) + tuple(self.compiled.graph.variables[g].shape))
                 for g in self.context_groups}
        state[name] = ops.zeros((1, size))
        table = ops.swapaxes(self.compiled.local_conditional(name, self._every_factor, state, params), 1, 2)
        table = ops.broadcast_to(table, (rows,) + tuple(table.shape[1:]))                      # [rows, K, G]
        labels = int(table.shape[1])
        if labels < self.sizes[0]:   # labels past this variable's own are never read
            table = ops.concatenate([table, ops.zeros((rows, self.sizes[0] - labels, size))], 1)
        return table

    @property
    def _every_factor(self) -> np.ndarray:
        return np.arange(self.template.num_ground, dtype=np.int64)


def replace_slots(node: Node, replaced: dict) -> Node:
    """`node` with the slots whose ids `replaced` names swapped for their replacements."""
    if id(node) in replaced:
        return replaced[id(node)]
    changes = {}
    for f in dataclasses.fields(node):
        value = getattr(node, f.name)
        if isinstance(value, Node):
            new = replace_slots(value, replaced)
            if new is not value:
                changes[f.name] = new
        elif isinstance(value, tuple) and value and all(isinstance(v, Node) for v in value):
            new_t = tuple(replace_slots(v, replaced) for v in value)
            if any(x is not y for x, y in zip(new_t, value)):
                changes[f.name] = new_t
    return dataclasses.replace(node, **changes) if changes else node
