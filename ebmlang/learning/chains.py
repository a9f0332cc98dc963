"""Moving states for learning: block Gibbs and short-run Langevin, alternating, with
some groups clamped.

`ChainSampler(model, clamped)` advances a batch of full states: one chromatic Gibbs
sweep over the free discrete groups, then `steps` short-run Langevin (SGLD) steps on
the free continuous groups, each conditioned on the other's current values.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ebmlang.errors import EbmError, check_real_number, check_whole_number
from ebmlang.learning.exact import Summed, VariableSet, with_roles

BOUNDED_MODES = ("transform", "clamp")


@dataclass(frozen=True)
class LangevinOptions:
    """Short-run Langevin for continuous negatives (Du & Mordatch, 2019).

    steps per sweep; step_size; noise_scale (None: sqrt(2 step_size), i.e. ULA at T = 1);
    grad_clip (elementwise, None: off); buffer_size and reinit_prob of the replay buffer
    used when every free variable is continuous and chains are persistent.
    bounded: how variables declared `real in [a, b]` move -- "transform" (in logit
    coordinates with the Jacobian: exact as the step shrinks, never on a bound) or "clamp"
    (in their own units, clipped into [a, b] after every step, as IGEBM and JEM do for
    pixels; data with many values exactly on a bound, like image backgrounds, needs it).
    """

    steps: int = 20
    step_size: float = 0.01
    noise_scale: float | None = None
    grad_clip: float | None = None
    buffer_size: int = 10000
    reinit_prob: float = 0.05
    bounded: str = "transform"

    @property
    def noise(self) -> float:
        return float(np.sqrt(2.0 * self.step_size)) if self.noise_scale is None else float(self.noise_scale)

    @classmethod
    def from_user(cls, value) -> "LangevinOptions":
        if value is None:
            return cls()
        if isinstance(value, cls):
            return value
        if isinstance(value, Mapping):
            unknown = set(value) - set(cls.__dataclass_fields__)
            if unknown:
                raise EbmError(f"unknown Langevin option(s): {', '.join(sorted(unknown))}",
                               expected=", ".join(cls.__dataclass_fields__))
            options = cls(**value)
            check_whole_number("langevin steps", options.steps, 1)
            check_whole_number("langevin buffer_size", options.buffer_size, 1)
            check_real_number("langevin step_size", options.step_size, positive=True)
            for name in ("noise_scale", "grad_clip"):
                if getattr(options, name) is not None:
                    check_real_number(f"langevin {name}", getattr(options, name), positive=True)
            if not 0.0 <= check_real_number("langevin reinit_prob", options.reinit_prob) <= 1.0:
                raise EbmError(f"langevin reinit_prob must lie in [0, 1], got {options.reinit_prob!r}")
            if options.bounded not in BOUNDED_MODES:
                raise EbmError(f"langevin bounded={options.bounded!r} is not a way to move bounded variables",
                               expected=" or ".join(repr(m) for m in BOUNDED_MODES))
            return options
        raise EbmError("langevin= takes a dict of options or a LangevinOptions",
                       hint="langevin={'steps': 20, 'step_size': 0.01}")


class ChainSampler:
    """Gibbs sweeps over the free discrete groups alternating with short-run Langevin on
    the free continuous groups; `clamped` groups never move."""

    def __init__(self, model, clamped: Sequence[str], langevin: LangevinOptions = LangevinOptions()):
        from ebmlang.inference.gibbs import build_gibbs_kernel, gibbs_blocks

        graph = model.graph
        self.model = model
        self.backend = model.backend
        self.langevin = langevin
        free = [g for g in graph.variables if g not in clamped]
        self.discrete = [g for g in free if graph.variables[g].domain.is_discrete]
        self.continuous = [g for g in free if not graph.variables[g].domain.is_discrete]
        self.gibbs = None
        if self.discrete:
            # Colouring a large graph takes milliseconds: once per model and clamped set.
            blocks = model.compiled.memo(
                ("learning blocks", tuple(sorted(clamped)), tuple(self.discrete)),
                lambda: gibbs_blocks(with_roles(graph, clamped), groups=set(self.discrete)))

            def build():
                kernel = build_gibbs_kernel(model.compiled, blocks, 1.0)
                return self.backend.jit_step(kernel.draw, kernel.move)

            # Once per graph and blocks: a later fit reuses the jitted sweep (no retracing).
            key = ("learning sweep",) + tuple((b.group, b.indices.tobytes()) for b in blocks)
            self.gibbs = model.compiled.memo(key, build)

    def potential(self, state: Mapping, params):
        from ebmlang.inference.potential import ModelPotential

        return ModelPotential(self.model.compiled, params, dict(state), self.continuous,
                              transform_bounded=self.langevin.bounded == "transform")

    @property
    def bounds(self):
        """(low, high) per packed coordinate where bounded groups are clamped, else None."""
        return clamp_bounds(self.model, self.continuous, self.langevin)

    def sweep(self, key, state: Mapping, params) -> dict:
        """One Gibbs sweep, then `langevin.steps` SGLD steps (backend arrays in and out)."""
        from ebmlang.inference.replay import short_run_langevin

        discrete_key, continuous_key = self.backend.split(key, 2)
        state = dict(state)
        if self.gibbs is not None:
            state, _ = self.gibbs(discrete_key, state, params)
            state = dict(state)
        if self.continuous:
            potential = self.potential(state, params)
            options = self.langevin
            position = short_run_langevin(self.backend, continuous_key, potential.pack(state), potential,
                                          options.steps, options.step_size, options.noise, options.grad_clip,
                                          bounds=self.bounds)
            state.update(potential.unpack(position))
        return state

    def run(self, key, state: Mapping, params, sweeps: int) -> dict:
        for sweep_key in self.backend.split(key, max(sweeps, 1))[:sweeps]:
            state = self.sweep(sweep_key, state, params)
        return dict(state)


def random_values(backend, key, graph, groups: Sequence[str], n: int) -> dict:
    """Starting values for groups without data, drawn with `key`: uniform labels, uniform
    on bounded intervals, standard normal for reals (numpy [n, *shape])."""
    out = {}
    for group_key, g in zip(backend.split(key, max(len(groups), 1)), groups):
        var = graph.variables[g]
        shape = (n,) + var.shape
        if var.domain.is_discrete:
            uniform = np.asarray(backend.to_numpy(backend.uniform(group_key, shape)), dtype=np.float64)
            labels = np.minimum((uniform * var.domain.num_values).astype(np.int64), var.domain.num_values - 1)
            out[g] = var.domain.values[labels]
        elif var.domain.kind == "bounded":
            uniform = np.asarray(backend.to_numpy(backend.uniform(group_key, shape)), dtype=np.float64)
            out[g] = var.domain.low + (var.domain.high - var.domain.low) * uniform
        else:
            out[g] = np.asarray(backend.to_numpy(backend.normal(group_key, shape)), dtype=np.float64)
    return out


def sample_summed(backend, key, graph, summed: Summed, units: VariableSet) -> dict:
    """An exact sample of the independent `units` from their tables (numpy states): the
    fallback where a constraint forbids some labels and the free-energy gradient would
    meet inf - inf."""
    state = dict(summed.state)
    for group_key, (g, ix) in zip(backend.split(key, max(len(units.members), 1)), units.members.items()):
        var = graph.variables[g]
        drawn = backend.categorical(group_key, backend.asarray(-summed.tables[g]))
        labels = np.asarray(backend.to_numpy(drawn), dtype=np.int64)
        flat = np.array(state[g], dtype=np.float64).reshape(-1, var.size)
        flat[:, ix] = var.domain.values[labels]
        state[g] = flat.reshape((-1,) + var.shape)
    return state


# --------------------------------------------------------------------------
# Replay buffers (Du & Mordatch, 2019)


def buffer_around(backend, key, potential, values: Mapping, options: LangevinOptions, pad: float = 0.1):
    """A replay buffer of `options.buffer_size` positions of `potential`, filled with
    uniform noise on the range of the packed `values` (numpy) widened by `pad` of it."""
    from ebmlang.inference.replay import ReplayBuffer

    packed = backend.to_numpy(potential.pack({g: backend.asarray(v) for g, v in values.items()}))
    low, high = float(packed.min()), float(packed.max())
    margin = pad * max(high - low, 1e-3)
    return ReplayBuffer.create(backend, key, options.buffer_size, (potential.dim,),
                               reinit_prob=options.reinit_prob, init="uniform", low=low - margin,
                               high=high + margin)


def replay_langevin(backend, key, buffer, potential, options: LangevinOptions, chains: int, bounds=None,
                    held=None):
    """`chains` short-run SGLD chains started from the buffer (fresh noise with the
    buffer's restart probability), clamped into `bounds` (see `clamp_bounds`); returns
    (end positions, buffer with them pushed). held: (values, mask) [chains, D] -- entries
    pinned at their values (start there, and low = high = value in the clamp), so those
    chains are draws of the rest given them."""
    from ebmlang.inference.replay import short_run_langevin

    start_key, run_key = backend.split(key, 2)
    start = buffer.sample(start_key, chains)
    if held is not None:
        values, mask = held
        ops = backend.ops
        shape = tuple(start.shape)
        low, high = (backend.full(shape, -np.inf), backend.full(shape, np.inf)) if bounds is None \
            else (ops.broadcast_to(bounds[0], shape), ops.broadcast_to(bounds[1], shape))
        start = ops.where(mask, values, start)
        bounds = (ops.where(mask, values, low), ops.where(mask, values, high))
    position = short_run_langevin(backend, run_key, start, potential, options.steps, options.step_size,
                                  options.noise, options.grad_clip, bounds=bounds)
    return position, buffer.push(position)


def clamp_bounds(model, groups: Sequence[str], options: LangevinOptions):
    """Backend arrays (low, high) [D] over the packed coordinates of `groups` (-inf / inf
    where unbounded) when `options` clamps and some group is bounded, else None."""
    from ebmlang.inference.potential import continuous_layout

    layout = continuous_layout(model.graph, groups)
    if options.bounded != "clamp" or not any(g.bounded for g in layout):
        return None
    low = np.concatenate([np.full(g.size, g.low if g.bounded else -np.inf) for g in layout])
    high = np.concatenate([np.full(g.size, g.high if g.bounded else np.inf) for g in layout])
    return model.backend.asarray(low), model.backend.asarray(high)
