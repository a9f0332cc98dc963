"""The periodic 2D Ising model sampled with thrml (Extropic's block-Gibbs library, JAX).

thrml expresses it directly: an `IsingEBM` over `SpinNode`s with energy
-beta (sum_i b_i s_i + sum_(ij) J_ij s_i s_j), one edge per bond (right and down
neighbour of every site, wrapping around), J = 1, b = 0, and an `IsingSamplingProgram`
whose two free blocks are the two checkerboard colours. One sweep is thrml's public
`sample_blocks` (every free block once, in order); the sweeps run in a `lax.fori_loop`
with a runtime trip count, vmapped over chains as thrml's own `estimate_kl_grad` does.
(`sample_states` would do the same sweeps but takes the sweep count as a static
schedule, so a warm-up with fewer sweeps would not compile the timed program.)

thrml stores spins as booleans (True = +1) in one array per block.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np


def build_ising_program(side: int, beta: float) -> tuple[Any, np.ndarray]:
    """thrml's `IsingSamplingProgram` for the periodic L x L lattice, and the flat
    site indices of each block: int [2, L*L/2] (block c = sites with (i + j) % 2 == c)."""
    import jax.numpy as jnp
    from thrml import Block, SpinNode
    from thrml.models import IsingEBM, IsingSamplingProgram

    nodes = [SpinNode() for _ in range(side * side)]
    site = np.arange(side * side).reshape(side, side)
    bonds = np.concatenate(
        [
            np.stack([site.ravel(), np.roll(site, -1, axis=1).ravel()], axis=1),
            np.stack([site.ravel(), np.roll(site, -1, axis=0).ravel()], axis=1),
        ]
    )
    edges = [(nodes[a], nodes[b]) for a, b in bonds.tolist()]
    ebm = IsingEBM(
        nodes,
        edges,
        biases=jnp.zeros(len(nodes), dtype=jnp.float32),
        weights=jnp.ones(len(edges), dtype=jnp.float32),
        beta=jnp.asarray(beta, dtype=jnp.float32),
    )
    rows, cols = np.divmod(np.arange(side * side), side)
    block_sites = np.stack([np.flatnonzero((rows + cols) % 2 == colour) for colour in range(2)])
    blocks = [Block([nodes[k] for k in sites.tolist()]) for sites in block_sites]
    return IsingSamplingProgram(ebm, free_blocks=blocks, clamped_blocks=[]), block_sites


def thrml_sampler(side: int, beta: float) -> tuple[Callable[[Any, list[Any], Any], Any], np.ndarray]:
    """A jitted `run(keys [chains], block_states [2 x [chains, L*L/2] bool], sweeps)` that
    returns spins int8 [chains, L, L], and the block sites (see `build_ising_program`)."""
    import jax
    import jax.numpy as jnp
    from thrml import sample_blocks

    program, block_sites = build_ising_program(side, beta)
    sampler_states = [sampler.init() for sampler in program.samplers]
    flat_positions = jnp.asarray(block_sites)

    def one_chain(key: Any, block_states: list[Any], sweeps: Any) -> Any:
        def sweep(_: Any, carry: tuple[Any, list[Any]]) -> tuple[Any, list[Any]]:
            key, states = carry
            key, subkey = jax.random.split(key)
            states, _ = sample_blocks(subkey, list(states), [], program, list(sampler_states))
            return key, states

        _, states = jax.lax.fori_loop(0, sweeps, sweep, (key, block_states))
        spins = jnp.zeros(side * side, dtype=jnp.int8)
        for positions, state in zip(flat_positions, states):
            spins = spins.at[positions].set(jnp.where(state, jnp.int8(1), jnp.int8(-1)))
        return spins.reshape(side, side)

    return jax.jit(jax.vmap(one_chain, in_axes=(0, 0, None))), block_sites


def block_states_from_spins(spins: np.ndarray, block_sites: np.ndarray) -> list[np.ndarray]:
    """int8 +-1 spins [chains, L, L] -> thrml's per-block booleans [chains, L*L/2]."""
    flat = spins.reshape(spins.shape[0], -1)
    return [flat[:, sites] > 0 for sites in block_sites]
