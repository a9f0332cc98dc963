"""The free energy of continuous inputs with small discrete targets summed out, and
Langevin samples from it.

For `classifier.ebm` (E(x, y) = -f(x)[y]) the marginal energy of x is

    F(x) = -log sum_y exp(-E(x, y)),   grad F(x) = sum_y p(y | x) grad_x E(x, y),

computed exactly over the enumerated labellings of y -- the "hidden" generative model
of JEM (Grathwohl et al., 2019). `save_sample_grid` draws SGLD samples from it and
saves them as an image grid.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ebmlang.errors import EbmError
from ebmlang.learning.losses import labellings_of


class MarginalPotential:
    """energy(position) / energy_and_grad(position) of F over positions [chains, D] of the
    continuous `groups` (packed like `ModelPotential`), with `summed` discrete groups
    summed out exactly and `context` groups (one value each, [1, *shape]) held fixed.
    transform_bounded: bounded groups in logit coordinates (as `ModelPotential`), or in
    their own units (for samplers that clamp them)."""

    def __init__(self, compiled, params, context: Mapping, groups: Sequence[str], summed: Sequence[str],
                 transform_bounded: bool = True):
        from ebmlang.inference.potential import ModelPotential

        self.compiled = compiled
        self.backend = compiled.backend
        self.params = params
        self.groups = tuple(groups)
        self.summed = tuple(summed)
        labellings = labellings_of(compiled.graph, self.summed)
        # Nothing to sum (a model of the inputs alone): one 'labelling', F = E.
        self.size = len(next(iter(labellings.values()))) if labellings else 1
        self.labellings = {g: self.backend.asarray(v) for g, v in labellings.items()}
        self.context = dict(context)
        self.inner = ModelPotential(compiled, params, {}, self.groups, transform_bounded=transform_bounded)
        self.dim = self.inner.dim

    def with_inputs(self, params, context: Mapping) -> "MarginalPotential":
        """The same potential at other params and context (a cheap copy, traceable)."""
        clone = object.__new__(MarginalPotential)
        clone.__dict__.update(self.__dict__)
        clone.params = params
        clone.context = dict(context)
        clone.inner = self.inner.with_inputs(params, {})
        return clone

    def cache_key(self) -> tuple:
        return ("marginal", self.summed) + self.inner.cache_key()

    def pack(self, values: Mapping):
        return self.inner.pack(values)

    def unpack(self, position):
        return self.inner.unpack(position)

    def energy(self, position):
        return self.energy_and_grad(position, need_grad=False)[0]

    def energy_and_grad(self, position, need_grad: bool = True):
        ops = self.backend.ops
        chains, dim, size = position.shape[0], position.shape[1], self.size
        expanded = ops.reshape(ops.broadcast_to(position[:, None, :], (chains, size, dim)), (chains * size, dim))
        context = {}
        for g, labels in self.labellings.items():
            tiled = ops.broadcast_to(labels[None], (chains,) + tuple(labels.shape))
            context[g] = ops.reshape(tiled, (chains * size,) + tuple(labels.shape[1:]))
        for g, value in self.context.items():  # one value [1, *shape], or one per chain [chains, *shape]
            inner = tuple(value.shape[1:])
            tiled = ops.broadcast_to(ops.reshape(value, (value.shape[0], 1) + inner), (chains, size) + inner)
            context[g] = ops.reshape(tiled, (chains * size,) + inner)
        energy, grad = self.inner.with_context(context).energy_and_grad(expanded, need_grad=need_grad)
        energy = ops.reshape(energy, (chains, size))
        free = -ops.logsumexp(-energy, axis=-1)
        if not need_grad:
            return free, None
        weights = ops.softmax(-energy, axis=-1)
        grad = ops.sum(ops.reshape(grad, (chains, size, dim)) * weights[:, :, None], axis=1)
        return free, grad


def sample_marginal(model, *, chains: int = 64, steps: int = 200, step_size: float = 0.01,
                    noise_scale: float | None = None, grad_clip: float | None = None, seed: int = 0,
                    init=None, bounds: tuple[float, float] | None = None, groups: Sequence[str] | None = None,
                    observed: Mapping | None = None, known: Mapping | None = None):
    """SGLD samples of the continuous groups from exp(-F), the discrete groups summed out:
    numpy {group: [chains, *shape]}.

    init: starting values {group: [chains, *shape]} (default: uniform noise on `bounds`,
    or standard normal). noise_scale None: sqrt(2 step_size) (Langevin at T = 1).
    Chains move in the variables' own units; `bounds` (low, high) clamps every coordinate
    after each step, and groups declared `real in [a, b]` are clamped into [a, b] anyway.
    observed: {group: values} held fixed -- [chains, *shape] (one per chain) or [*shape]
    (every chain) -- so the draws are conditional; such groups are neither sampled nor
    summed. known: {group: bool mask [*shape] or [chains, *shape]} for observed groups
    held only in part: the entries where the mask is true keep their observed values,
    the rest are sampled (inpainting: the known pixels of an image).
    """
    from ebmlang.inference.replay import short_run_langevin

    graph = model.graph
    bk = model.backend
    observed, known = dict(observed or {}), dict(known or {})
    for group in known:
        if group not in observed:
            raise EbmError(f"known= names '{group}', which observed= does not give",
                           hint=f"pass its values too: observed={{'{group}': ...}}")
    partial = {g: observed.pop(g) for g in known}
    context = _observed_context(model, observed, chains)
    free = [g for g in graph.variables if g not in context]
    continuous = tuple(groups or [g for g in free if not graph.variables[g].domain.is_discrete])
    summed = tuple(g for g in free if graph.variables[g].domain.is_discrete)
    if not continuous:
        raise EbmError("sample_marginal needs a continuous variable to sample",
                       hint="for discrete models use model.sample(...)")
    clash = sorted(set(continuous) & set(context))
    if clash:
        raise EbmError(f"'{clash[0]}' is both observed and sampled", hint="leave it out of groups= or observed=")
    for group in partial:
        if group not in continuous:
            raise EbmError(f"'{group}' is held in part (known=) but is not a continuous group that is sampled")
    potential = MarginalPotential(model.compiled, model.params, context, continuous, summed, transform_bounded=False)
    clamp = _clamp(model, potential, chains, bounds, partial, known)
    start_key, run_key = bk.split(bk.key(seed), 2)
    if init is not None:
        position = potential.pack({g: bk.asarray(np.asarray(init[g], dtype=np.float64)) for g in continuous})
    elif clamp is not None and all(np.all(np.isfinite(np.asarray(bk.to_numpy(b)))) for b in clamp):
        position = clamp[0] + (clamp[1] - clamp[0]) * bk.uniform(start_key, (chains, potential.dim))
    else:
        position = bk.normal(start_key, (chains, potential.dim))
    if clamp is not None:
        position = bk.ops.clip(position, *clamp)
    noise = math.sqrt(2.0 * step_size) if noise_scale is None else float(noise_scale)
    position = short_run_langevin(bk, run_key, position, potential, steps, step_size, noise, grad_clip,
                                  bounds=clamp)
    return {g: np.asarray(bk.to_numpy(v)) for g, v in potential.unpack(position).items()}


def _clamp(model, potential: MarginalPotential, chains: int, bounds, partial: Mapping, known: Mapping):
    """(low, high) over the packed coordinates ([D], or [chains, D] when some entries are
    held): the declared bounds, narrowed to `bounds`, with every held entry pinned by
    low = high = its value -- so the sampler's clamp after each step keeps it exactly."""
    lows, highs = [], []
    for layout in potential.inner.layout:
        low = np.full(layout.size, layout.low if layout.bounded else -np.inf)
        high = np.full(layout.size, layout.high if layout.bounded else np.inf)
        if bounds is not None:
            low, high = np.maximum(low, float(bounds[0])), np.minimum(high, float(bounds[1]))
        if layout.group in partial:
            values, mask = _held_entries(layout, partial[layout.group], known[layout.group], chains)
            low, high = np.where(mask, values, low), np.where(mask, values, high)
        lows.append(np.broadcast_to(low, (chains, layout.size)) if partial else low)
        highs.append(np.broadcast_to(high, (chains, layout.size)) if partial else high)
    low, high = np.concatenate(lows, axis=-1), np.concatenate(highs, axis=-1)
    if np.all(np.isneginf(low)) and np.all(np.isposinf(high)):
        return None
    return model.backend.asarray(low), model.backend.asarray(high)


def _held_entries(layout, values, mask, chains: int) -> tuple[np.ndarray, np.ndarray]:
    """The observed values and mask of a group held in part, flat: [chains or 1, size]."""
    flat = []
    for what, array in (("observed", np.asarray(values, dtype=np.float64)), ("known", np.asarray(mask))):
        array = _per_chain(array, tuple(layout.shape), chains, f"{what}['{layout.group}']")
        flat.append(array.reshape(array.shape[0], layout.size))
    if flat[1].dtype != np.bool_:
        raise EbmError(f"known['{layout.group}'] must be a boolean mask, got {flat[1].dtype}",
                       hint="True where the entry is known (held), False where it is sampled")
    return flat[0], flat[1]


def _observed_context(model, observed: Mapping, chains: int) -> dict:
    """Observed values as backend arrays [chains or 1, *shape], checked against the declarations."""
    from ebmlang.errors import did_you_mean

    context = {}
    for group, values in observed.items():
        variable = model.graph.variables.get(group)
        if variable is None:
            raise EbmError(f"no variable '{group}' to observe", hint=did_you_mean(group, model.graph.variables))
        array = _per_chain(np.asarray(values, dtype=np.float64), tuple(variable.shape), chains, f"observed '{group}'")
        context[group] = model.backend.asarray(array)
    return context


def _per_chain(array: np.ndarray, shape: tuple[int, ...], chains: int, name: str) -> np.ndarray:
    """`array` as [1, *shape] (one value for every chain) or [chains, *shape], else an error."""
    given = list(array.shape)
    if array.shape == shape:
        array = array[None]
    if array.shape[1:] != shape or array.shape[0] not in (1, chains):
        raise EbmError(f"{name} has shape {given}",
                       expected=f"{list(shape)} (every chain) or {[chains] + list(shape)} (one per chain)")
    return array


def save_sample_grid(model, path: str | Path, *, group: str | None = None, image_shape=None, chains: int = 64,
                     steps: int = 200, step_size: float = 0.01, noise_scale: float | None = None,
                     bounds: tuple[float, float] | None = None, seed: int = 0, init=None,
                     columns: int | None = None) -> np.ndarray:
    """Langevin samples of `group` from the model's marginal energy, saved as a PNG grid.

    image_shape: how one sample is drawn (default: a square when the size is a square,
    e.g. 64 -> 8 x 8). Returns the samples [chains, *shape]. Uses matplotlib (Agg).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    graph = model.graph
    group = group or next((g for g, v in graph.variables.items() if not v.domain.is_discrete), None)
    if group is None or group not in graph.variables:
        raise EbmError(f"no continuous variable '{group}' to draw", hint=f"variables: {', '.join(graph.variables)}")
    samples = sample_marginal(model, chains=chains, steps=steps, step_size=step_size, noise_scale=noise_scale,
                              bounds=bounds, seed=seed, init=init)[group]
    size = graph.variables[group].size
    if image_shape is None:
        side = int(round(math.sqrt(size)))
        image_shape = (side, side) if side * side == size else (1, size)
    columns = columns or int(math.ceil(math.sqrt(chains)))
    rows = int(math.ceil(chains / columns))
    figure, axes = plt.subplots(rows, columns, figsize=(columns * 0.8, rows * 0.8), squeeze=False)
    for index, axis in enumerate(axes.ravel()):
        axis.axis("off")
        if index < chains:
            axis.imshow(samples[index].reshape(image_shape), cmap="gray_r", interpolation="nearest")
    figure.suptitle(f"{graph.name}: Langevin samples of {group} ({steps} steps)", fontsize=8)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(figure)
    return samples
