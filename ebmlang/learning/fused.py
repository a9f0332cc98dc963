"""A maximum-likelihood epoch as one compiled program on JAX.

Step by step, a small model's update is dominated by dispatch: a minibatch of ten 8 x 8
digits costs microseconds of arithmetic and milliseconds of Python, host transfers and
one XLA call per piece (the sweep, the free-energy pass, the optimiser, the norm). When
every piece of a step is a pure backend function -- persistent chains over discrete
groups moved by a Gibbs sweep, every phase a one-pass free energy
(`FreeEnergyObjective`), an optax optimiser, no bounded params -- `FusedEpochs` runs the
epoch's full minibatches as one `jax.lax.scan` of exactly those steps: the same keys
(`step_seeds`), the same example order, the same gradients and updates, so the result is
the step-by-step run's up to float rounding. A last, smaller minibatch is a scan of one
step (its shape compiled once too). A step whose loss or gradient is not finite sends the whole epoch back to the
step-by-step path from its start, which raises the located error at that step.
"""
from __future__ import annotations

import functools
from collections.abc import Callable, Mapping

import numpy as np

from ebmlang.learning.free_energy import stacked_phases
from ebmlang.learning.likelihood import MaximumLikelihood, _set_key, phase_figures
from ebmlang.learning.optim import OptaxOptimizer, scheduled_lr
from ebmlang.learning.weighted import add_gradients

STAT_NAMES = ("loss", "grad_norm", "energy_gap", "energy_pos", "energy_neg")


def fused_epochs(model, objective, optim, names, *, weight_decay: float, grad_clip: float | None,
                 average) -> "FusedEpochs | None":
    """A FusedEpochs for this fit, or None when some piece of its step is not a pure JAX
    function (see the module docstring)."""
    graph = model.graph
    if model.backend.name != "jax" or not isinstance(objective, MaximumLikelihood):
        return None
    if not isinstance(optim, OptaxOptimizer) or objective.chain_state is None:
        return None
    if any(graph.params[n].bounds is not None for n in names if n in graph.params):
        return None
    if not all(v.domain.is_discrete for v in graph.variables.values()) or objective.units is None:
        return None
    sets = [objective.units, *objective.negative_sets]
    if any(s is None or _set_key(s) not in objective.free_objective for s in sets):
        return None
    return FusedEpochs(model, objective, optim, tuple(names), float(weight_decay), grad_clip, average)


class FusedEpochs:
    """`run(epoch, ...)`: one epoch's full minibatches as one scan (see the module docstring)."""

    def __init__(self, model, objective: MaximumLikelihood, optim: OptaxOptimizer, names, weight_decay, grad_clip,
                 average):
        self.model, self.objective, self.optim = model, objective, optim
        self.names, self.weight_decay, self.grad_clip, self.average = names, weight_decay, grad_clip, average
        key = ("fused ml epoch", objective.k, objective.energy_reg, tuple(objective.hidden),
               tuple(_set_key(s) for s in objective.negative_sets), names, weight_decay, grad_clip,
               average.decay if average is not None else None, optim.kind)
        self.scan = model.compiled.memo(key, self._build)
        self.data = None  # (the fit's data, its backend arrays)

    def _build(self) -> Callable:
        import jax
        import jax.numpy as jnp

        objective, optim, backend = self.objective, self.optim, self.model.backend
        graph, names = self.model.graph, self.names
        decay = self.average.decay if self.average is not None else None
        sets = [objective.units, *objective.negative_sets]
        shares = [1.0] + [-1.0 / len(objective.negative_sets)] * len(objective.negative_sets)

        def step(carry, inputs):
            params, opt_state, chains, averaged = carry
            batch, key, rate = inputs
            _, negative_key, _ = backend.split(key, 3)
            size = next(iter(batch.values())).shape[0]
            positive = {**batch, **{g: jnp.zeros((size,) + graph.variables[g].shape) for g in objective.hidden}}
            _, run_key = backend.split(negative_key, 2)
            chains = objective.negative_sampler.run(run_key, chains, params, objective.k)
            estimators = [(rows, _set_key(summed), share)
                          for rows, summed, share in zip([positive] + [chains] * (len(sets) - 1), sets, shares)]
            levels, gradients = stacked_phases(objective.free_objective, estimators, params, objective.energy_reg)
            grads = add_gradients(gradients)
            loss, gap, positive_mean, negative_mean = phase_figures(levels[0], levels[objective.compared],
                                                                    objective.energy_reg)
            grads = {n: grads[n] for n in names}
            if self.weight_decay:
                grads = {n: g + self.weight_decay * params[n] for n, g in grads.items()}
            norm = jnp.sqrt(sum(jnp.vdot(g, g) for g in grads.values()))
            if self.grad_clip is not None:
                scale = jnp.where(jnp.isfinite(norm) & (norm > self.grad_clip), self.grad_clip / norm, 1.0)
                grads = {n: g * scale for n, g in grads.items()}
            opt_state = opt_state._replace(hyperparams={**opt_state.hyperparams, "learning_rate": rate})
            trained = {n: params[n] for n in names}
            updates, opt_state = optim.transform.update(grads, opt_state, trained)
            trained = optim.optax.apply_updates(trained, updates)
            params = {**params, **trained}
            if decay is not None:
                averaged = {n: decay * averaged[n] + (1.0 - decay) * trained[n] for n in names}
            stats = jnp.stack([loss, norm, gap, positive_mean, negative_mean]).astype(loss.dtype)
            return (params, opt_state, chains, averaged), stats

        @jax.jit
        def scan(params, opt_state, chains, averaged, data, rows, keys, rates):
            def gathered(carry, inputs):
                picked, key, rate = inputs
                return step(carry, ({g: v[picked] for g, v in data.items()}, key, rate))

            return jax.lax.scan(gathered, (params, opt_state, chains, averaged), (rows, keys, rates))

        return scan

    def run(self, data: Mapping[str, np.ndarray], order: np.ndarray, batch_size: int, seeds: np.ndarray,
            epoch: int, epochs: int, lr: float, lr_schedule, steps_per_epoch: int) -> np.ndarray | None:
        """Train on the whole epoch (step i keyed by `seeds[i]`): its full minibatches in
        one scan, a smaller last one in a scan of one step (each shape compiled once). The
        per-step stats [steps, len(STAT_NAMES)], or None (nothing changed) when some step's
        loss or gradient is not finite."""
        import jax

        bk, model, optim, objective = self.model.backend, self.model, self.optim, self.objective
        device = bk.jax_device
        count, tail = divmod(len(order), batch_size)
        chunks = [order[:count * batch_size].reshape(count, batch_size)] if count else []
        if tail:
            chunks.append(order[count * batch_size:].reshape(1, tail))
        steps = count + bool(tail)
        if lr_schedule is None:
            rates = np.full(steps, lr, dtype=np.float32)
        else:
            rates = np.array([scheduled_lr(lr, lr_schedule, epoch, epochs, step / steps_per_epoch)
                              for step in range(steps)], dtype=np.float32)
        averaged = {}
        if self.average is not None:
            averaged = {n: self.average.values.get(n, np.zeros(np.shape(model.params[n]))) for n in self.names}
        # Every input committed to the backend's device, the carry typed as the scan returns
        # it (a weakly typed learning rate from optax's init, or an uncommitted array, would
        # compile the scan again once its outputs come back).
        opt_state = optim.state._replace(hyperparams={**optim.state.hyperparams,
                                                      "learning_rate": np.float32(rates[0])})
        carry = (*jax.device_put((dict(model.params), opt_state, objective.chain_state), device),
                 {n: bk.asarray(v) for n, v in averaged.items()})
        if self.data is None or self.data[0] is not data:  # on the device once per fit, gathered there
            self.data = (data, {g: bk.asarray(v) for g, v in data.items()})
        found, first = [], 0
        for rows in chunks:
            last = first + len(rows)
            rows, step_keys, step_rates = jax.device_put((rows.astype(np.int32), seeds[first:last],
                                                          rates[first:last]), device)
            carry, stats = self.scan(*carry, self.data[1], rows, _key_maker()(step_keys), step_rates)
            found.append(stats)
            first = last
        stats = np.concatenate([np.asarray(s, dtype=np.float64) for s in found]) if found \
            else np.zeros((0, len(STAT_NAMES)))
        if not np.all(np.isfinite(stats[:, :2])):
            return None
        params, opt_state, chains, averaged = carry
        model.params.update(params)
        optim.state, optim.current = opt_state, {n: params[n] for n in optim.names}
        objective.chain_state = chains
        if self.average is not None:
            self.average.values = {n: np.asarray(v, dtype=np.float64) for n, v in averaged.items()}
            self.average.steps += steps
        return stats


@functools.cache
def _key_maker():
    """`jax.random.key` of each of an array of seeds, as one jitted call."""
    import jax

    return jax.jit(jax.vmap(jax.random.key))
