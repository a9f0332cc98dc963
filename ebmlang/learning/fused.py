"""A maximum-likelihood epoch as one compiled program on JAX.

Step by step, a small model's update is dominated by dispatch: a minibatch of ten 8 x 8
digits costs microseconds of arithmetic and milliseconds of Python, host transfers and
one XLA call per piece (the sweep, the free-energy pass, the optimiser, the norm). When
every piece of a step is a pure backend function, `FusedEpochs` runs the epoch's full
minibatches as compiled `jax.lax.scan`s of exactly those steps, with no host round trip
between them: the same keys (`step_seeds`), the same example order, the same draws,
gradients and updates, so the result is the step-by-step run's up to float rounding.
Two kinds of step are pure:

- `GibbsChains`: persistent chains over discrete groups moved by a Gibbs sweep, every
  phase a one-pass free energy (`FreeEnergyObjective`); cheap steps, so the whole epoch
  is one scan;
- `ReplayChains`: short-run Langevin chains from a replay buffer (continuous groups, no
  hidden ones), every phase a plain energy (`EnergyObjective`) -- IGEBM's recipe; its
  SGLD dominates a step, so each call is a scan of one step (one compile for any length).

with an optax optimiser and no bounded params. A last, smaller minibatch is a scan of
one step (its shape compiled once too). A step whose loss or gradient is not finite
sends the whole epoch back to the step-by-step path from its start, which raises the
located error at that step.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping

import numpy as np

from ebmlang.learning.chains import replay_langevin
from ebmlang.learning.free_energy import EnergyObjective, stacked_phases
from ebmlang.learning.likelihood import MaximumLikelihood, _set_key, phase_figures
from ebmlang.learning.optim import OptaxOptimizer, scheduled_lr
from ebmlang.learning.weighted import add_gradients

STAT_NAMES = ("loss", "grad_norm", "energy_gap", "energy_pos", "energy_neg")


def fused_epochs(model, objective, optim, names, *, weight_decay: float, grad_clip: float | None,
                 average, data_noise: float = 0.0) -> "FusedEpochs | None":
    """A FusedEpochs for this fit, or None when some piece of its step is not a pure JAX
    function (see the module docstring; noise added to the data is drawn on the host)."""
    graph = model.graph
    if model.backend.name != "jax" or not isinstance(objective, MaximumLikelihood):
        return None
    if not isinstance(optim, OptaxOptimizer):
        return None
    if any(graph.params[n].bounds is not None for n in names if n in graph.params):
        return None
    if getattr(objective, "known", None) is not None:  # conditional negatives pin entries from the host batch
        return None
    chains = ReplayChains.of(objective, data_noise) if objective.use_buffer else GibbsChains.of(objective)
    if chains is None:
        return None
    return FusedEpochs(model, objective, chains, optim, tuple(names), float(weight_decay), grad_clip, average)


class GibbsChains:
    """Persistent chains over discrete groups, `k` Gibbs sweeps per step, every phase a
    free energy with an independent set summed out. Holds only what the compiled step
    reads (it outlives the fit in the model's memo); the chains are the scan's state."""

    # A step costs microseconds: the epoch's full batches are one call (one compile per
    # number of steps).
    steps_per_call = None

    def __init__(self, objective: MaximumLikelihood):
        self.sampler, self.k, self.backend = objective.negative_sampler, objective.k, objective.model.backend
        self.objectives = objective.free_objective
        sets = [objective.units, *objective.negative_sets]
        self.set_keys = [_set_key(s) for s in sets]
        self.shares = [1.0] + [-1.0 / len(objective.negative_sets)] * len(objective.negative_sets)
        self.key = ("gibbs", objective.k, tuple(objective.hidden), tuple(self.set_keys[1:]))

    @classmethod
    def of(cls, objective: MaximumLikelihood) -> "GibbsChains | None":
        graph = objective.model.graph
        if objective.chain_state is None or objective.units is None:
            return None
        if not all(v.domain.is_discrete for v in graph.variables.values()):
            return None
        sets = [objective.units, *objective.negative_sets]
        if any(s is None or _set_key(s) not in objective.free_objective for s in sets):
            return None
        return cls(objective)

    @staticmethod
    def state(objective: MaximumLikelihood):
        return objective.chain_state

    @staticmethod
    def commit(objective: MaximumLikelihood, state) -> None:
        objective.chain_state = state

    def move(self, negative_key, state, params):
        """(negative rows, next state): the sweeps `MaximumLikelihood._negatives` makes."""
        _, run_key = self.backend.split(negative_key, 2)
        chains = self.sampler.run(run_key, state, params, self.k)
        return chains, chains

    def estimators(self, positive, negative) -> list:
        rows = [positive] + [negative] * (len(self.set_keys) - 1)
        return list(zip(rows, self.set_keys, self.shares))


class ReplayChains:
    """Short-run Langevin chains from a replay buffer (no hidden groups), both phases
    plain energies. Holds only what the compiled step reads; the buffer's data is the
    scan's state."""

    # A step's dozens of SGLD passes take milliseconds, a call's dispatch microseconds, and
    # compiling a scan seconds: one step per call, one compile for fits of every length.
    steps_per_call = 1

    def __init__(self, objective: MaximumLikelihood):
        self.sampler, self.langevin, self.count = objective.negative_sampler, objective.langevin, objective.chains
        self.backend = objective.model.backend
        self.objectives = {None: EnergyObjective(objective.model.compiled)}
        self.bounds = objective.negative_sampler.bounds
        self.empty = dataclasses.replace(objective.buffer, data=None)  # its settings
        # The noise range comes from the data: it is part of the scan's state, not of its key.
        self.key = ("replay", objective.langevin, objective.chains, self.empty.reinit_prob, self.empty.init,
                    self.empty.std)

    @classmethod
    def of(cls, objective: MaximumLikelihood, data_noise: float) -> "ReplayChains | None":
        if objective.hidden or data_noise or objective.negative_sets != [None]:
            return None
        return cls(objective)

    @staticmethod
    def state(objective: MaximumLikelihood):
        """(the buffer's data, the low and high of its restart noise in the data's dtype:
        in float32 the noise's width high - low may round differently, by one ulp, from
        the step-by-step path's float64 width)."""
        buffer = objective.buffer
        dtype = buffer.data.dtype
        return buffer.data, np.asarray(buffer.low, dtype=dtype), np.asarray(buffer.high, dtype=dtype)

    @staticmethod
    def commit(objective: MaximumLikelihood, state) -> None:
        objective.buffer = dataclasses.replace(objective.buffer, data=state[0])

    def move(self, negative_key, state, params):
        """(negative rows, next state): `replay_langevin` as `MaximumLikelihood._negatives` runs it."""
        data, low, high = state
        potential = self.sampler.potential({}, params)
        buffer = dataclasses.replace(self.empty, data=data, low=low, high=high)
        position, buffer = replay_langevin(self.backend, negative_key, buffer, potential, self.langevin, self.count,
                                           self.bounds)
        return potential.unpack(position), (buffer.data, low, high)

    def estimators(self, positive, negative) -> list:
        return [(positive, None, 1.0), (negative, None, -1.0)]


class FusedEpochs:
    """`run(epoch, ...)`: one epoch's minibatches as compiled scans (see the module docstring)."""

    def __init__(self, model, objective: MaximumLikelihood, chains, optim: OptaxOptimizer, names, weight_decay,
                 grad_clip, average):
        self.model, self.objective, self.chains, self.optim = model, objective, chains, optim
        self.names, self.weight_decay, self.grad_clip, self.average = names, weight_decay, grad_clip, average
        key = ("fused ml epoch", chains.key, objective.energy_reg, names, weight_decay, grad_clip,
               average.decay if average is not None else None, optim.kind)
        self.scan = model.compiled.memo(key, self._build)
        self.data = None  # (the fit's data, its backend arrays) for epoch-long scans

    def _build(self) -> Callable:
        import jax
        import jax.numpy as jnp

        # Locals only: the compiled scan outlives this fit in the model's memo.
        transform, optax = self.optim.transform, self.optim.optax
        backend, moves, graph, names = self.model.backend, self.chains, self.model.graph, self.names
        hidden, compared, energy_reg = self.objective.hidden, self.objective.compared, self.objective.energy_reg
        weight_decay, grad_clip = self.weight_decay, self.grad_clip
        decay = self.average.decay if self.average is not None else None

        def step(carry, inputs):
            params, opt_state, chains, averaged = carry
            batch, key, rate = inputs
            _, negative_key, _ = backend.split(key, 3)  # as MaximumLikelihood.step splits it
            size = next(iter(batch.values())).shape[0]
            positive = {**batch, **{g: jnp.zeros((size,) + graph.variables[g].shape) for g in hidden}}
            negative, chains = moves.move(negative_key, chains, params)
            levels, gradients = stacked_phases(moves.objectives, moves.estimators(positive, negative), params,
                                               energy_reg)
            grads = add_gradients(gradients)
            loss, gap, positive_mean, negative_mean = phase_figures(levels[0], levels[compared], energy_reg)
            grads = {n: grads[n] for n in names}
            if weight_decay:
                grads = {n: g + weight_decay * params[n] for n, g in grads.items()}
            norm = jnp.sqrt(sum(jnp.vdot(g, g) for g in grads.values()))
            if grad_clip is not None:
                scale = jnp.where(jnp.isfinite(norm) & (norm > grad_clip), grad_clip / norm, 1.0)
                grads = {n: g * scale for n, g in grads.items()}
            opt_state = opt_state._replace(hyperparams={**opt_state.hyperparams, "learning_rate": rate})
            trained = {n: params[n] for n in names}
            updates, opt_state = transform.update(grads, opt_state, trained)
            trained = optax.apply_updates(trained, updates)
            params = {**params, **trained}
            if decay is not None:
                averaged = {n: decay * averaged[n] + (1.0 - decay) * trained[n] for n in names}
            stats = jnp.stack([loss, norm, gap, positive_mean, negative_mean]).astype(loss.dtype)
            return (params, opt_state, chains, averaged), stats

        @jax.jit
        def scan(params, opt_state, chains, averaged, data, rows, seeds, rates):
            def gathered(carry, inputs):
                picked, seed, rate = inputs
                return step(carry, ({g: v[picked] for g, v in data.items()}, jax.random.key(seed), rate))

            return jax.lax.scan(gathered, (params, opt_state, chains, averaged), (rows, seeds, rates))

        return scan

    def _source(self, data: Mapping[str, np.ndarray], rows: np.ndarray) -> tuple[dict, np.ndarray]:
        """(backend data, indices into it [steps, batch]) for a scan over the batches `rows`
        of `data`. An epoch-long scan reads the whole data set, put on the device once per
        fit; a scan of a few steps only its own rows, so that its compiled shape does not
        depend on the size of the data set (one compile serves fits of every size)."""
        bk = self.model.backend
        if self.chains.steps_per_call is None:
            if self.data is None or self.data[0] is not data:
                self.data = (data, {g: bk.asarray(v) for g, v in data.items()})
            return self.data[1], rows
        flat = rows.reshape(-1)
        return {g: bk.asarray(v[flat]) for g, v in data.items()}, np.arange(flat.size).reshape(rows.shape)

    def run(self, data: Mapping[str, np.ndarray], order: np.ndarray, batch_size: int, seeds: np.ndarray,
            epoch: int, epochs: int, lr: float, lr_schedule, steps_per_epoch: int) -> np.ndarray | None:
        """Train on the whole epoch (step i keyed by `seeds[i]`): its full minibatches in
        scans of `steps_per_call` steps (all in one where None), a smaller last one in a
        scan of one step (each shape compiled once). The per-step stats [steps,
        len(STAT_NAMES)], read back once, or None (nothing changed) when some step's loss
        or gradient is not finite."""
        import jax

        bk, model, optim = self.model.backend, self.model, self.optim
        device = bk.jax_device
        count, tail = divmod(len(order), batch_size)
        full = order[:count * batch_size].reshape(count, batch_size)
        per_call = self.chains.steps_per_call or max(count, 1)
        chunks = [full[start:start + per_call] for start in range(0, count, per_call)]
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
        carry = (*jax.device_put((dict(model.params), opt_state, self.chains.state(self.objective)), device),
                 {n: bk.asarray(v) for n, v in averaged.items()})
        found, first = [], 0
        for rows in chunks:
            last = first + len(rows)
            source, picks = self._source(data, rows)
            inputs = jax.device_put((picks.astype(np.int32), seeds[first:last], rates[first:last]), device)
            carry, stats = self.scan(*carry, source, *inputs)
            found.append(stats)
            first = last
        stats = np.concatenate([np.asarray(s, dtype=np.float64) for s in found]) if found \
            else np.zeros((0, len(STAT_NAMES)))
        if not np.all(np.isfinite(stats[:, :2])):
            return None
        params, opt_state, chains, averaged = carry
        model.params.update(params)
        optim.state, optim.current = opt_state, {n: params[n] for n in optim.names}
        self.chains.commit(self.objective, chains)
        if self.average is not None:
            self.average.values = {n: np.asarray(v, dtype=np.float64) for n, v in averaged.items()}
            self.average.steps += steps
        return stats

