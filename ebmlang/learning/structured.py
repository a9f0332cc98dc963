"""`ChainLikelihood`: the exact -log p(y | x) of structured discrete targets (a CRF).

When the targets given the inputs form a tree of pairwise factors -- a linear-chain CRF,
an HMM's hidden path, a tree of labels -- the conditional log-likelihood is exact and
cheap however many joint labellings there are:

    -log p(y | x) = E(x, y) + log sum_y' exp(-E(x, y')),

with log Z from sum-product on the tree (inference/exact). The gradient of the first term
is the data's energy gradient (weighted states); that of log Z comes from differentiating
the tables and the passes (torch autograd or jax.grad), so no labelling is enumerated.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ebmlang.errors import EbmError
from ebmlang.inference.exact.program import ForestPasses
from ebmlang.inference.exact.tables import NotPairwise, PairwiseTables, pairwise_tables
from ebmlang.learning.weighted import WeightedStates


def _nll_gradient(compiled, tables: PairwiseTables, passes: ForestPasses, targets: tuple[str, ...]):
    """`(params, batch) -> (mean -log p(y | x), its gradient)`: the data's energy, the tables
    and the upward pass differentiated together."""
    ops = compiled.backend.ops

    def mean_nll(params, batch):
        rows = int(next(iter(batch.values())).shape[0])
        context = {g: v for g, v in batch.items() if g not in targets}
        unary, pairwise, constant = tables.build(context, params, rows)
        unary = ops.broadcast_to(unary, (rows,) + tuple(unary.shape[1:]))
        log_z = passes.log_partition(unary, pairwise) - constant
        return ops.mean(compiled.energy(batch, params) + log_z)

    return compiled.backend.value_and_grad(mean_nll)


def chain_structure(model, targets: tuple[str, ...], inputs: tuple[str, ...]):
    """(PairwiseTables, ForestPasses) when the targets given the inputs are a pairwise forest, else why not."""
    if any(not model.graph.variables[g].domain.is_discrete for g in targets):
        return "a target is not discrete"
    return model.compiled.memo(("chain structure", targets, inputs), lambda: _structure(model, inputs))


def _structure(model, inputs):
    try:
        tables = pairwise_tables(model.compiled, inputs, model.budget)
    except NotPairwise as reason:
        return str(reason)
    if tables.forest is None:
        return "the targets' factors form a cycle"
    return tables, ForestPasses(model.backend, tables.schedule, 1.0)


class ChainLikelihood:
    """-log p(y | x), exact by sum-product on the targets' tree."""

    kind = "contrastive"

    def __init__(self, model, data: Mapping[str, np.ndarray], targets: tuple[str, ...], structure):
        self.model = model
        self.targets = targets
        self.inputs = tuple(g for g in data if g not in targets)
        self.tables, self.passes = structure
        self.value_and_grad = model.compiled.memo(
            ("chain likelihood", targets, self.inputs),
            lambda: _nll_gradient(model.compiled, self.tables, self.passes, targets))
        edges = self.tables.edges.shape[0]
        self.name = (f"exact -log p({', '.join(targets)} | {', '.join(self.inputs) or 'nothing'}): log Z by "
                     f"sum-product on the targets' tree ({self.tables.num_variables} variables, {edges} edges)")

    def step(self, key, batch, params) -> WeightedStates:
        backend = self.model.backend
        state = {g: backend.asarray(v) for g, v in batch.items()}
        loss, grads = self.value_and_grad(params, state)
        loss = float(backend.to_numpy(loss))
        if loss == np.inf:   # an example the model gives infinite energy: a constraint it breaks
            energies = backend.to_numpy(self.model.compiled.energy(state, params))
            row = int(np.flatnonzero(~np.isfinite(energies))[0]) if not np.all(np.isfinite(energies)) else None
            raise EbmError("a training example has infinite energy under the model"
                           + (f" (example {row} of this batch)" if row is not None else ""),
                           hint="it breaks a constraint or a bound of the model; check the data")
        return WeightedStates({}, np.zeros(0), loss, grads=[grads])

    def evaluate(self, key, data, params) -> dict:
        """Per-variable accuracy of the most probable joint labelling (max-product)."""
        answer = self.model.argmin(observed={g: data[g] for g in self.inputs})
        hits = [np.mean(answer.state[g] == np.asarray(data[g])) for g in self.targets]
        return {"accuracy": float(np.mean(hits))}

    def state_arrays(self) -> dict:
        return {}

    def load_state_arrays(self, arrays) -> None:
        return None


def chain_likelihood(model, data, targets: tuple[str, ...], labellings: str) -> ChainLikelihood:
    """The exact chain likelihood, or a named error saying why it does not apply."""
    structure = chain_structure(model, targets, tuple(g for g in data if g not in targets))
    if isinstance(structure, str):
        raise EbmError(
            f"loss='nll' would rank {labellings} joint labellings of {', '.join(targets)}: too many to "
            f"enumerate, and the exact sum over a tree does not apply ({structure})",
            hint="make the targets a chain or a tree given the inputs, or train by maximum likelihood "
                 "(fit without loss=)")
    return ChainLikelihood(model, data, targets, structure)
