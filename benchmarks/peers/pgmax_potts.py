"""Potts denoising with PGMax max-product loopy belief propagation (JAX).

The grid is an `NDVarArray` of K-state variables; every 4-neighbour pair is one factor
of a `PairwiseFactorGroup` with log potential -beta [a != b]; the data term is evidence
-eta [k != y_i]. PGMax's log potentials are negative energies, so its MAP decode is the
argmin of our energy. `bp.run` (temperature 0 = max-product, damping 0.5, PGMax's
default) is jitted with the iteration count static, as scan needs it.

PGMax 0.6.1 asks `jax.lib.xla_bridge.get_backend()` whether it runs on a TPU; JAX 0.8
removed that alias of `jax.extend.backend`. `restore_xla_bridge_alias` puts the alias
back (only when missing) so PGMax runs unmodified on the JAX this project pins; the
report's row note says so.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np


def grid_neighbour_pairs(height: int, width: int) -> np.ndarray:
    """int [num_edges, 2, 2]: (row, col) of both ends of every horizontal and vertical edge."""
    rows, cols = np.mgrid[0:height, 0:width]
    right = np.stack([np.stack([rows[:, :-1], cols[:, :-1]], -1), np.stack([rows[:, 1:], cols[:, 1:]], -1)], -2)
    down = np.stack([np.stack([rows[:-1, :], cols[:-1, :]], -1), np.stack([rows[1:, :], cols[1:, :]], -1)], -2)
    return np.concatenate([right.reshape(-1, 2, 2), down.reshape(-1, 2, 2)])


XLA_BRIDGE_NOTE = "jax.lib.xla_bridge alias restored where JAX lacks it (removed in JAX 0.8)"


def restore_xla_bridge_alias() -> bool:
    """Re-create `jax.lib.xla_bridge` from `jax.extend.backend` when JAX no longer has it;
    returns True when it had to."""
    import types

    import jax
    import jax.extend.backend

    if hasattr(jax.lib, "xla_bridge"):
        return False
    jax.lib.xla_bridge = types.SimpleNamespace(get_backend=jax.extend.backend.get_backend)
    return True


def pgmax_potts_solver(noisy: np.ndarray, labels: int, eta: float, beta: float) -> Callable[[int], Any]:
    """`run(iterations) -> labelling [H, W]` by max-product BP; the graph is built here."""
    import jax
    from pgmax import fgraph, fgroup, infer, vgroup

    restore_xla_bridge_alias()
    height, width = noisy.shape
    variables = vgroup.NDVarArray(num_states=labels, shape=(height, width))
    graph = fgraph.FactorGraph(variable_groups=variables)
    pairs = [
        [variables[int(a[0]), int(a[1])], variables[int(b[0]), int(b[1])]]
        for a, b in grid_neighbour_pairs(height, width)
    ]
    disagreement = 1.0 - np.eye(labels)
    graph.add_factors(fgroup.PairwiseFactorGroup(variables_for_factors=pairs, log_potential_matrix=-beta * disagreement))
    evidence = -eta * (np.arange(labels)[None, None, :] != noisy[:, :, None]).astype(np.float32)

    bp = infer.build_inferer(graph.bp_state, backend="bp")
    initial = bp.init(evidence_updates={variables: evidence})

    def solve(arrays: Any, iterations: int) -> Any:
        arrays = bp.run(arrays, num_iters=iterations, damping=0.5, temperature=0.0)
        return infer.decode_map_states(bp.get_beliefs(arrays))[variables]

    solve = jax.jit(solve, static_argnums=1)
    return lambda iterations: solve(initial, iterations)
