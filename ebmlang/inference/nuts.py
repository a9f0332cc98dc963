"""The No-U-Turn Sampler: multinomial NUTS with a diagonal mass, as in Stan and numpyro.

Each step draws a momentum and doubles a trajectory forward or backward in time until it
makes a U-turn (Betancourt's generalised criterion, checked on the whole tree and, with
numpyro's checkpoints, on every balanced sub-tree of each new half), diverges, or reaches
2^max_tree_depth - 1 leapfrog steps. The next state is drawn from the trajectory with
weights exp(-H): progressively (uniform-multinomial) inside a new half and biased toward
the new half when merging (Betancourt 2017, appendix A).

The tree is built iteratively and vectorised over chains: chains step in lockstep and a
chain whose tree has ended is masked. The loops are `jax.lax.while_loop` on JAX (so the
step jits, and a step costs the longest chain's tree, not 1023 leapfrogs) and Python
loops on the eager backends. The inverse mass lives in the state ([chains, D]) so that
windowed warm-up (continuous_runner.py) can adapt it without rebuilding the kernel.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from ebmlang.inference.adaptation import DualAveragingConfig, DualAveragingState, adapt_step_size, dual_averaging_init
from ebmlang.inference.continuous import (
    DEFAULT_DIVERGENCE_THRESHOLD,
    Array,
    ArrayBackend,
    Key,
    Potential,
    check_config,
    classify_proposal,
    initial_inverse_mass,
    per_chain,
)
from ebmlang.inference.random_kernel import RandomKernel


@dataclass(frozen=True)
class NUTSConfig:
    """max_tree_depth 10 and target_accept 0.8 are Stan's defaults; inverse_mass is the
    starting diagonal (None: identity), later set in the state by warm-up."""

    step_size: float = 0.1
    max_tree_depth: int = 10
    inverse_mass: Any = None
    temperature: float = 1.0
    num_warmup: int = 0
    target_accept: float = 0.8
    per_chain_step_size: bool = False
    divergence_threshold: float = DEFAULT_DIVERGENCE_THRESHOLD
    dual_averaging: DualAveragingConfig = field(default_factory=DualAveragingConfig)

    def __post_init__(self):
        check_config(self, positive=("step_size", "max_tree_depth", "inverse_mass", "temperature"),
                     nonnegative=("num_warmup",), probability=("target_accept",))


class NUTSState(NamedTuple):
    """position [chains, D]; energy/grad of E there; step_size [chains]; inverse_mass [chains, D]."""

    position: Array
    energy: Array
    grad: Array
    step_size: Array
    inverse_mass: Array
    adaptation: DualAveragingState


class NUTSInfo(NamedTuple):
    """All [chains]: mean acceptance probability over the tree (Stan's adaptation
    statistic), divergence, tree depth, leapfrog steps taken, and the step size used."""

    acceptance_rate: Array
    is_divergent: Array
    tree_depth: Array
    num_steps: Array
    step_size: Array


def checkpoint_tables(max_depth: int) -> tuple[np.ndarray, np.ndarray]:
    """For leaf n of a new half, the range [min, max] of checkpoints its U-turn checks use
    (numpyro's `_leaf_idx_to_ckpt_idxs`): an even leaf stores its momentum and running sum
    at checkpoint max = popcount(n >> 1); an odd leaf ends as many balanced sub-trees as n
    has trailing ones, whose first leaves are the checkpoints min..max."""
    size = max(1, 2 ** (max_depth - 1))
    leaves = np.arange(size)
    idx_max = np.array([bin(n >> 1).count("1") for n in leaves])
    trailing = np.array([len(bin(n)) - len(bin(n).rstrip("1")) for n in leaves])
    return idx_max - trailing + 1, idx_max


class _Tree(NamedTuple):
    left: tuple
    right: tuple
    proposal: tuple
    log_weight: Array
    rho: Array
    done: Array
    diverged: Array
    depth: Array
    sum_accept: Array
    num_steps: Array
    level: Any


class _Half(NamedTuple):
    edge: tuple
    proposal: tuple
    log_weight: Array
    rho: Array
    ckpt_p: Array
    ckpt_rho: Array
    stopped: Array
    diverged: Array
    sum_accept: Array
    num_steps: Array
    leaf: Any


def build_nuts_kernel(bk: ArrayBackend, config: NUTSConfig = NUTSConfig()):
    """A NUTS step `kernel(key, state, potential) -> (state, info)` sampling exp(-E / T)."""
    ops = bk.ops
    beta = 1.0 / float(config.temperature)
    max_depth = int(config.max_tree_depth)
    ckpt_min_np, ckpt_max_np = checkpoint_tables(max_depth)
    ckpt_min, ckpt_max = bk.asarray(ckpt_min_np), bk.asarray(ckpt_max_np)
    ckpt_index = bk.asarray(np.arange(max_depth, dtype=float))
    is_jax = getattr(bk, "name", "") == "jax"

    def loop(cond, body, carry):
        if is_jax:
            import jax

            return jax.lax.while_loop(cond, body, carry)
        while bool(bk.to_numpy(cond(carry))):
            carry = body(carry)
        return carry

    def pick(mask, new, old):
        # mask [chains] over arrays [chains, ...] or [K, chains, ...].
        if getattr(new, "ndim", 0) == getattr(mask, "ndim", 0) + 2:
            return ops.where(mask[None, :, None], new, old)
        return ops.where(per_chain(mask, new), new, old)

    def pick_all(mask, new, old):
        return tuple(pick(mask, n, o) for n, o in zip(new, old))

    def logaddexp(a, b):
        top = ops.maximum(a, b)
        safe = ops.where(ops.isfinite(top), top, ops.zeros_like(top))
        return safe + ops.log(ops.exp(a - safe) + ops.exp(b - safe))

    def dot(a, b):
        return ops.sum(a * b, axis=-1)

    def turning(inv_mass, p_left, p_right, rho):
        rho = rho - 0.5 * (p_left + p_right)
        return (dot(inv_mass * p_left, rho) <= 0) | (dot(inv_mass * p_right, rho) <= 0)

    def draw(key: Key, state: NUTSState):
        momentum_key, direction_key, leaf_key, merge_key = bk.split(key, 4)
        chains = tuple(state.step_size.shape)
        return (bk.normal(momentum_key, tuple(state.position.shape)),
                bk.uniform(direction_key, (max_depth,) + chains),
                bk.uniform(leaf_key, (2 ** max_depth,) + chains),
                bk.uniform(merge_key, (max_depth,) + chains))

    def move(state: NUTSState, draws, potential: Potential):
        # One float dtype for the loops' carries: with JAX's x64 mode on, a float32 model's
        # energies would otherwise meet float64 draws and starting values in the carry.
        normal, direction_u, leaf_u, merge_u = (ops.as_float(d) for d in draws)
        state = state._replace(position=ops.as_float(state.position), energy=ops.as_float(state.energy),
                               grad=ops.as_float(state.grad), step_size=ops.as_float(state.step_size),
                               inverse_mass=ops.as_float(state.inverse_mass))
        inv_mass = state.inverse_mass
        momentum = normal / ops.sqrt(inv_mass)
        eps = state.step_size

        def kinetic(p):
            return 0.5 * ops.sum(inv_mass * ops.square(p), axis=-1)

        start_h = state.energy * beta + kinetic(momentum)
        zero = ops.zeros_like(state.energy)
        point = (state.position, momentum, state.grad, state.energy)
        false = zero > 1.0
        tree = _Tree(point, point, point, zero, momentum, false, false, zero, zero, zero, 0)

        def leapfrog(edge, step):
            z, p, g, _ = edge
            s = per_chain(step, z)
            p = p - 0.5 * s * beta * g
            z = z + s * inv_mass * p
            e, g = potential.energy_and_grad(z)
            return z, p - 0.5 * s * beta * g, ops.as_float(g), ops.as_float(e)

        def build_half(tree: _Tree, forward, size, offset):
            edge = pick_all(forward, tree.right, tree.left)
            step = ops.where(forward, eps, -eps)
            # Checkpoints [max_depth, chains, D]: momentum and running sum at the first leaf
            # of each sub-tree still open (numpyro's r_ckpts, r_sum_ckpts).
            checkpoints = ops.zeros_like(ops.stack([momentum] * max_depth))
            half = _Half(edge, edge, -np.inf + zero, ops.zeros_like(momentum), checkpoints,
                         ops.zeros_like(checkpoints), tree.done, false, zero, zero, 0 * tree.level)

            def cond(h: _Half):
                return (h.leaf < size) & ~ops.all(h.stopped)

            def body(h: _Half):
                active = ~h.stopped
                new = leapfrog(h.edge, step)
                z, p, g, e = new
                error = e * beta + kinetic(p) - start_h
                usable, divergent = classify_proposal(ops, e, g, error, config.divergence_threshold)
                log_w = ops.where(usable, -error, -np.inf + zero)
                accept = ops.exp(ops.minimum(log_w, zero))
                total = logaddexp(h.log_weight, log_w)
                # Uniform-multinomial inside the half: keep each leaf with weight / total.
                take = leaf_u[offset + h.leaf] < ops.exp(log_w - total)
                proposal = pick_all(active & take, new, h.proposal)
                rho = h.rho + p
                index = ckpt_index[:, None]
                even, odd = (h.leaf % 2) == 0, (h.leaf % 2) == 1
                store = (index == ckpt_max[h.leaf]) & even
                ckpt_p = ops.where(store[:, :, None] & active[None, :, None], p[None], h.ckpt_p)
                ckpt_rho = ops.where(store[:, :, None] & active[None, :, None], rho[None], h.ckpt_rho)
                check = (index >= ckpt_min[h.leaf]) & (index <= ckpt_max[h.leaf]) & odd
                sub_rho = rho[None] - ckpt_rho + ckpt_p
                turned = turning(inv_mass[None], ckpt_p, p[None], sub_rho) & check
                turned = ~ops.all(~turned, axis=0)
                return _Half(pick_all(active, new, h.edge), proposal, ops.where(active, total, h.log_weight),
                             pick(active, rho, h.rho), ckpt_p, ckpt_rho,
                             h.stopped | (active & (turned | divergent)), h.diverged | (active & divergent),
                             h.sum_accept + ops.where(active, accept, zero),
                             h.num_steps + ops.where(active, zero + 1.0, zero), h.leaf + 1)

            return loop(cond, body, half)

        def tree_cond(t: _Tree):
            return ~ops.all(t.done)

        def tree_body(t: _Tree):
            forward = direction_u[t.level] < 0.5
            size = 2 ** t.level
            half = build_half(t, forward, size, size - 1)
            active = ~t.done
            ok = active & ~(half.stopped & ~t.done)
            # Biased progressive sampling at the merge: move to the new half with
            # probability min(1, w_new / w_old), favouring points far from the start.
            take = ok & (merge_u[t.level] < ops.exp(ops.minimum(half.log_weight - t.log_weight, zero)))
            left = pick_all(ok & ~forward, half.edge, t.left)
            right = pick_all(ok & forward, half.edge, t.right)
            rho = pick(ok, t.rho + half.rho, t.rho)
            turned = turning(inv_mass, left[1], right[1], rho)
            depth = t.depth + ops.where(active, zero + 1.0, zero)
            done = t.done | ~ok | turned | (depth >= max_depth)
            return _Tree(left, right, pick_all(take, half.proposal, t.proposal),
                         ops.where(ok, logaddexp(t.log_weight, half.log_weight), t.log_weight), rho, done,
                         t.diverged | (active & half.diverged), depth, t.sum_accept + half.sum_accept,
                         t.num_steps + half.num_steps, t.level + 1)

        if is_jax:
            import jax.numpy as jnp

            # A traced level, so that the loops index the draws and size the half with it.
            tree = tree._replace(level=jnp.asarray(0, dtype=jnp.int32))
        tree = loop(tree_cond, tree_body, tree)
        z, _, g, e = tree.proposal
        acceptance = tree.sum_accept / ops.maximum(tree.num_steps, zero + 1.0)
        adaptation, next_step = adapt_step_size(
            ops, state.adaptation, acceptance, target=config.target_accept, num_warmup=config.num_warmup,
            per_chain=config.per_chain_step_size, config=config.dual_averaging)
        new_state = NUTSState(z, e, g, next_step, inv_mass, adaptation)
        return new_state, NUTSInfo(acceptance, tree.diverged, tree.depth, tree.num_steps, eps)

    return RandomKernel(draw, move, traceable=is_jax)


def nuts_init(bk: ArrayBackend, position: Array, potential: Potential, config: NUTSConfig = NUTSConfig()) -> NUTSState:
    """A NUTS state at `position` ([chains, D]) with the configured step and inverse mass."""
    energy, grad = potential.energy_and_grad(position)
    step_size = bk.ops.full_like(energy, float(config.step_size))
    inv_mass = initial_inverse_mass(bk, position, config.inverse_mass)
    return NUTSState(position, energy, grad, step_size, inv_mass, dual_averaging_init(bk.ops, step_size))
