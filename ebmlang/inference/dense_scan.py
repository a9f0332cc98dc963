"""Sequential-scan Gibbs for a dense discrete group: one unit at a time, in order.

When every unit of a group shares a factor with most others (a fully connected Boltzmann
machine), a colouring gives one unit per colour, and chromatic block Gibbs would be
hundreds of one-variable blocks. The group's energy is then a quadratic form
(backends/evaluator/quadratic.py), and a sweep is, per unit i,

    field_i = J[i] . s + (per-unit terms),   s_i ~ p(s_i | field_i),

one row of the couplings times the state, inside `backend.fori_loop` (`jax.lax.fori_loop`,
a plain loop on torch). The per-unit tables are computed once per sweep, J and the
diagonal once per parameter value (`ScanUpdate.couplings`): neither depends on the
group's own values.

Pure update: `ScanUpdate.move(state, uniforms, params, couplings) -> state` on dense
states, with its uniforms drawn outside (`uniform_shape` per chain), like a chromatic block's.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from ebmlang.backends.evaluator import plan_contractions
from ebmlang.backends.evaluator.plans import may_be_infinite
from ebmlang.backends.evaluator.quadratic import QuadraticPlan, quadratic_form
from ebmlang.graph.ir import FactorGraph
from ebmlang.inference.temperature import along_batch, chain_inverse_temperature

# A group whose colouring needs more than this many blocks per sweep is scanned
# sequentially, when its energy is a quadratic form of at most SCAN_MAX_UNITS units
# (J is N x N: 4096 units are 64 MiB in float32).
SCAN_MIN_BLOCKS = 8
SCAN_MAX_UNITS = 4096


class ScanUpdate(NamedTuple):
    """group: the scanned group; reads: every group its terms read (from dense states).
    couplings(params) -> (J, diagonal), computed once per parameter value (a sampling run
    does it once); move(state, uniforms, params, couplings) -> state."""

    group: str
    uniform_shape: tuple[int, ...]
    move: Callable
    reads: frozenset[str]
    couplings: Callable


def worth_scanning(variables, num_blocks: int) -> bool:
    """Whether a discrete group swept in `num_blocks` colour blocks is dense enough, and
    small enough, for a sequential scan (see SCAN_MIN_BLOCKS)."""
    return variables.domain.is_discrete and num_blocks > SCAN_MIN_BLOCKS and variables.size <= SCAN_MAX_UNITS


def scan_plan(graph: FactorGraph, group: str, num_blocks: int) -> QuadraticPlan | None:
    """The group's quadratic form when a sequential scan should replace its `num_blocks`
    colour blocks, else None (for the plan's explanation; samplers ask the compiled graph)."""
    if not worth_scanning(graph.variables[group], num_blocks):
        return None
    plan = quadratic_form(graph, group, plan_contractions(graph))
    if isinstance(plan, str) or any(may_be_infinite(graph.templates[n]) for n in plan.unary):
        return None  # as build_scan_update: no scan where a per-unit energy may be +inf
    return plan


def build_scan_update(compiled, group: str, temperature: float = 1.0) -> ScanUpdate | None:
    """The sequential-scan update of `group` at `temperature`, or None when its energy is
    not a quadratic form or may be infinite (a hard constraint: the binary shortcut
    below compares energy gaps, which +inf would make undefined)."""
    quadratic = compiled.quadratic(group)
    if isinstance(quadratic, str) or quadratic.may_be_infinite():
        return None
    backend, ops = compiled.backend, compiled.backend.ops
    size = quadratic.plan.size
    values = [float(v) for v in quadratic.values]
    shape = compiled.graph.variables[group].shape
    temperature = float(temperature)
    reads = frozenset(g for t in compiled.graph.templates if group in t.groups for g in t.groups)

    def scan(state, unit):
        """`unit(i, s)` for every unit in order, on the group flattened to [batch, N]."""
        batch = state[group].shape[0]
        flat = backend.fori_loop(size, unit, ops.reshape(state[group], (batch, size)))
        return {**state, group: ops.reshape(flat, (batch,) + tuple(shape))}

    if len(values) == 2:
        low, high = values

        def move(state, uniform, params, prepared):
            couplings, diagonal = prepared
            unary = quadratic.unary_table(state, params)
            batch = state[group].shape[0]
            # E(low) - E(high) of unit i is base_i + (low - high) * J[i] . s; high is drawn
            # when T * logit(u) < that gap (u < sigmoid(gap / T)).
            base = diagonal * (low * low - high * high)
            if unary is not None:
                base = unary[:, 0] - unary[:, 1] + base
            base = ops.broadcast_to(base, (batch, size))
            threshold = ops.log(uniform) - ops.log1p(-uniform)
            if temperature != 1.0:
                threshold = threshold * temperature
            beta = chain_inverse_temperature(params)
            if beta is not None:  # a temperature per chain (replica exchange)
                threshold = threshold / along_batch(ops, beta, threshold)
            step = low - high

            def unit(i, s):
                gap = base[:, i] + step * ops.matmul(s, couplings[i])
                return backend.write_column(s, i, ops.as_float(threshold[:, i] < gap) * (high - low) + low)

            return scan(state, unit)

        return ScanUpdate(group, (size,), move, reads, quadratic.couplings)

    label_values = backend.asarray(values)
    squares = backend.asarray([v * v for v in values])

    def move(state, uniform, params, prepared):
        couplings, diagonal = prepared
        unary = quadratic.unary_table(state, params)
        batch = state[group].shape[0]
        base = ops.reshape(squares, (len(values), 1)) * diagonal  # [K, N]
        if unary is not None:
            base = unary + base
        base = ops.broadcast_to(base, (batch, len(values), size))
        beta = chain_inverse_temperature(params)
        if beta is not None:  # a temperature per chain (replica exchange)
            beta = ops.reshape(beta, (batch, 1))

        def unit(i, s):
            table = base[:, :, i] + label_values * ops.reshape(ops.matmul(s, couplings[i]), (batch, 1))
            logits = -table if temperature == 1.0 else -table / temperature
            if beta is not None:
                logits = logits * beta
            labels = backend.gumbel_argmax(uniform[:, i], logits)
            return backend.write_column(s, i, backend.take(label_values, labels))

        return scan(state, unit)

    return ScanUpdate(group, (size, len(values)), move, reads, quadratic.couplings)
