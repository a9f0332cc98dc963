"""Training objectives, each reduced to one weighted batch of states.

Every gradient learning needs here is a weighted sum of energy gradients,

    grad L = sum_m w_m dE(state_m)/dtheta,

so an objective's `step` returns states and weights (`WeightedStates`) and `fit` makes
one `grad_params(states, params, weights)` call -- the same on torch and JAX.

* `MaximumLikelihood`: E_data[dE] - E_model[dE]; negatives by CD-k / PCD with block
  Gibbs, short-run Langevin from a replay buffer, or both alternating; conditionally
  independent hidden units are summed exactly in both phases.
* `ExactLikelihood`: the same gradient with both expectations by enumeration.
* `Contrastive`: LeCun et al.'s losses over a small discrete target (losses.py).
* `JointEnergy` (JEM): -log p(y | x) - gen_weight * log p(x), the marginal over y exact
  and negatives x' by SGLD on the free energy from a replay buffer.

Objectives keep their persistent state (chains, replay buffer) as numpy arrays for
checkpoints: `state_arrays()` / `load_state_arrays()`.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from scipy.special import logsumexp, softmax

from ebmlang.errors import EbmError
from ebmlang.learning.chains import (
    ChainSampler,
    LangevinOptions,
    expectation_size,
    expectation_states,
    random_values,
)
from ebmlang.learning.exact import VariableSet, is_independent_set, whole_groups
from ebmlang.learning.losses import (
    energy_table,
    expand,
    get_loss,
    labelling_index,
    labellings_of,
    target_groups,
)

# Sum hidden units exactly when that costs at most this many extra states per example.
EXPECTATION_LIMIT = 256
# The exact-gradient objective enumerates at most this many joint states per step.
EXACT_GRADIENT_LIMIT = 2 ** 16
# Tracking the exact log-likelihood during fit is skipped above this many enumerated
# states (an RBM's 2^16 hidden states take seconds: call log_prob for those).
TRACKING_STATE_LIMIT = 2 ** 12


@dataclass
class WeightedStates:
    """states: numpy {group: [M, *shape]}; weights [M]: the gradient is
    sum_m weights[m] * dE(state_m)/dtheta; loss: the objective's value on the batch."""

    states: dict
    weights: np.ndarray
    loss: float
    stats: dict = field(default_factory=dict)


def _concat(parts) -> dict:
    return {g: np.concatenate([p[g] for p in parts]) for g in parts[0]}


def _energies(compiled, params, states: Mapping[str, np.ndarray]) -> np.ndarray:
    backend = compiled.backend
    energy = compiled.energy({g: backend.asarray(v) for g, v in states.items()}, params)
    return backend.to_numpy(energy).astype(np.float64)


def _as_numpy(backend, state: Mapping) -> dict:
    return {g: np.asarray(backend.to_numpy(v), dtype=np.float64) for g, v in state.items()}


def _phase_weights(mix: np.ndarray, energies: np.ndarray, sign: float, energy_reg: float):
    """Gradient weights of one phase whose example b has rows with mixture weights mix[b]
    (summing to 1): sign * mean_b Ebar_b plus energy_reg * mean_b Ebar_b^2."""
    count = mix.shape[0]
    expected = np.sum(mix * energies.reshape(mix.shape), axis=1)
    weights = mix * (sign + 2.0 * energy_reg * expected[:, None]) / count
    return weights.reshape(-1), expected


# --------------------------------------------------------------------------
# Maximum likelihood with MCMC negatives


class MaximumLikelihood:
    """CD-k (chains start at the data) or PCD (persistent chains) maximum likelihood."""

    def __init__(self, model, data: Mapping[str, np.ndarray], *, k: int, persistent: bool, chains: int,
                 langevin: LangevinOptions, energy_reg: float, seed: int):
        graph = model.graph
        self.model = model
        self.k = int(k)
        self.persistent = bool(persistent)
        self.chains = int(chains)
        self.langevin = langevin
        self.energy_reg = float(energy_reg)
        self.data_groups = tuple(data)
        self.hidden = tuple(g for g in graph.variables if g not in data)
        self.units = self._exact_units(graph)
        self.hidden_sampler = ChainSampler(model, self.data_groups, langevin) if self.hidden else None
        self.negative_sampler = ChainSampler(model, (), langevin)
        self.all_continuous = not any(v.domain.is_discrete for v in graph.variables.values())
        self.use_buffer = self.persistent and self.all_continuous
        self.chain_state: dict | None = None
        self.buffer = None
        if self.use_buffer:
            self.buffer = self._new_buffer(data, seed)
        elif self.persistent:
            self.chain_state = self._initial_chains(data, seed)
        self._reconstructor: ChainSampler | None = None
        self.name = self._describe()

    # -- setup -------------------------------------------------------------
    def _exact_units(self, graph) -> VariableSet | None:
        if not self.hidden or any(not graph.variables[g].domain.is_discrete for g in self.hidden):
            return None
        units = whole_groups(graph, self.hidden)
        if expectation_size(graph, units) - 1 > EXPECTATION_LIMIT or not is_independent_set(graph, units):
            return None
        return units

    def _new_buffer(self, data, seed):
        from ebmlang.inference.replay import ReplayBuffer

        bk = self.model.backend
        potential = self.negative_sampler.potential({}, self.model.params)
        packed = bk.to_numpy(potential.pack(_to_backend(bk, data)))
        low, high = float(packed.min()), float(packed.max())
        pad = 0.1 * max(high - low, 1e-3)
        return ReplayBuffer.create(bk, bk.key(int(seed) + 7919), self.langevin.buffer_size, (potential.dim,),
                                   reinit_prob=self.langevin.reinit_prob, init="uniform",
                                   low=low - pad, high=high + pad)

    def _initial_chains(self, data, seed) -> dict:
        """Persistent chains start at random training examples, hidden groups at random."""
        bk = self.model.backend
        rows_key, hidden_key = bk.split(bk.key(int(seed) + 7907), 2)
        n = len(next(iter(data.values())))
        uniform = np.asarray(bk.to_numpy(bk.uniform(rows_key, (self.chains,))), dtype=np.float64)
        rows = np.minimum((uniform * n).astype(np.int64), n - 1)
        start = {g: v[rows] for g, v in data.items()}
        start.update(random_values(bk, hidden_key, self.model.graph, self.hidden, self.chains))
        return start

    def _describe(self) -> str:
        discrete = bool(self.negative_sampler.discrete)
        continuous = bool(self.negative_sampler.continuous)
        sampler = ("block Gibbs" if discrete and not continuous else
                   "short-run Langevin" if continuous and not discrete else
                   "block Gibbs alternating with short-run Langevin")
        if self.use_buffer:
            how = (f"persistent short-run Langevin from a replay buffer of {self.langevin.buffer_size} "
                   f"({self.langevin.steps} SGLD steps per update, Du & Mordatch 2019)")
        elif self.persistent:
            how = f"PCD-{self.k}: {self.chains} persistent chains, {sampler}"
        else:
            how = f"CD-{self.k}: chains start at the data, {sampler}"
        if self.units is not None:
            hidden = (f"; hidden {', '.join(self.hidden)} summed exactly given the rest "
                      "(conditionally independent units)")
        elif self.hidden:
            hidden = f"; hidden {', '.join(self.hidden)} sampled given the data ({self.k} sweeps)"
        else:
            hidden = ""
        return "maximum likelihood, " + how + hidden

    # -- one step ----------------------------------------------------------
    def step(self, key, batch: Mapping[str, np.ndarray], params) -> WeightedStates:
        bk = self.model.backend
        positive_key, negative_key = bk.split(key, 2)
        positive = self._positive(positive_key, batch, params)
        negative = self._negatives(negative_key, positive, params)
        pos_states, pos_mix = self._expected(positive, params)
        neg_states, neg_mix = self._expected(negative, params)
        energies = _energies(self.model.compiled, params, _concat([pos_states, neg_states]))
        split = pos_mix.size
        pos_w, pos_e = _phase_weights(pos_mix, energies[:split], 1.0, self.energy_reg)
        neg_w, neg_e = _phase_weights(neg_mix, energies[split:], -1.0, self.energy_reg)
        gap = float(pos_e.mean() - neg_e.mean())
        loss = gap + self.energy_reg * float(np.mean(pos_e ** 2) + np.mean(neg_e ** 2))
        return WeightedStates(_concat([pos_states, neg_states]), np.concatenate([pos_w, neg_w]), loss,
                              {"energy_gap": gap, "energy_pos": float(pos_e.mean()),
                               "energy_neg": float(neg_e.mean())})

    def _positive(self, key, batch, params) -> dict:
        """The data with hidden groups filled in: any values when they are summed exactly
        (their tables do not depend on them), else `k` sweeps given the data from random."""
        if not self.hidden:
            return dict(batch)
        bk = self.model.backend
        start_key, run_key = bk.split(key, 2)
        size = len(next(iter(batch.values())))
        state = {**batch, **random_values(bk, start_key, self.model.graph, self.hidden, size)}
        if self.units is not None:
            return state
        return _as_numpy(bk, self.hidden_sampler.run(run_key, _to_backend(bk, state), params, self.k))

    def _expected(self, state, params):
        """Rows with hidden units summed exactly (when they are independent), else as is."""
        n = len(next(iter(state.values())))
        if self.units is None:
            return state, np.ones((n, 1))
        return expectation_states(self.model.compiled, params, state, self.units)

    def _negatives(self, key, positive: Mapping[str, np.ndarray], params) -> dict:
        bk = self.model.backend
        start_key, run_key = bk.split(key, 2)
        if self.use_buffer:
            from ebmlang.inference.replay import short_run_langevin

            potential = self.negative_sampler.potential({}, params)
            options = self.langevin
            position = short_run_langevin(bk, run_key, self.buffer.sample(start_key, self.chains), potential,
                                          options.steps, options.step_size, options.noise, options.grad_clip)
            self.buffer = self.buffer.push(position)
            return _as_numpy(bk, potential.unpack(position))
        if self.persistent:
            start = _to_backend(bk, self.chain_state)
        else:
            start = _to_backend(bk, positive)
            if self.units is not None:
                # CD starts from (data, h ~ p(h | data)): one sweep samples independent units exactly.
                start = self.hidden_sampler.sweep(start_key, start, params)
        moved = _as_numpy(bk, self.negative_sampler.run(run_key, start, params, self.k))
        if self.persistent:
            self.chain_state = moved
        return moved

    # -- tracking and checkpoints ---------------------------------------------
    def evaluate(self, key, data: Mapping[str, np.ndarray], params) -> dict:
        """Exact mean log-likelihood where cheap; reconstruction error of discrete data
        through the hidden units (one sample of h | data, then data | h)."""
        out = {}
        from ebmlang.learning.evaluation import log_prob

        try:
            out["log_likelihood"] = float(np.mean(log_prob(self.model, data, max_states=TRACKING_STATE_LIMIT)))
        except EbmError:
            pass
        graph = self.model.graph
        if self.hidden and all(graph.variables[g].domain.is_discrete for g in self.data_groups):
            bk = self.model.backend
            start_key, up_key, down_key = bk.split(key, 3)
            size = len(next(iter(data.values())))
            state = {**data, **random_values(bk, start_key, graph, self.hidden, size)}
            state = self.hidden_sampler.run(up_key, _to_backend(bk, state), params, 1 if self.units else self.k)
            if self._reconstructor is None:
                self._reconstructor = ChainSampler(self.model, self.hidden, self.langevin)
            back = _as_numpy(bk, self._reconstructor.sweep(down_key, state, params))
            out["reconstruction_error"] = float(np.mean([np.mean((back[g] - data[g]) ** 2)
                                                         for g in self.data_groups]))
        return out

    def state_arrays(self) -> dict:
        if self.buffer is not None:
            return {"buffer": np.asarray(self.model.backend.to_numpy(self.buffer.data))}
        if self.chain_state is not None:
            return {f"chain/{g}": v for g, v in self.chain_state.items()}
        return {}

    def load_state_arrays(self, arrays: Mapping[str, np.ndarray]) -> None:
        from dataclasses import replace

        if self.buffer is not None:
            self.buffer = replace(self.buffer, data=self.model.backend.asarray(arrays["buffer"]))
        elif self.chain_state is not None:
            self.chain_state = {g: np.asarray(arrays[f"chain/{g}"], dtype=np.float64) for g in self.chain_state}


def _to_backend(bk, state: Mapping) -> dict:
    return {g: bk.asarray(v) for g, v in state.items()}


# --------------------------------------------------------------------------
# Exact likelihood gradient (small discrete models)


class ExactLikelihood:
    """The maximum-likelihood gradient with E_model (and E_{p(hidden | data)}) exact by
    enumeration: for small discrete models, and as the reference MCMC is tested against."""

    def __init__(self, model, data: Mapping[str, np.ndarray], *, energy_reg: float):
        graph = model.graph
        self.model = model
        self.energy_reg = float(energy_reg)
        self.hidden = tuple(g for g in graph.variables if g not in data)
        from ebmlang.learning.exact import enumerate_states

        chunks = list(enumerate_states(graph, tuple(graph.variables), max_states=EXACT_GRADIENT_LIMIT,
                                       what="the exact likelihood gradient (method='exact')"))
        self.all_states = _concat(chunks)
        self.hidden_labellings = labellings_of(graph, self.hidden) if self.hidden else None
        self.name = (f"exact maximum likelihood: E_model by enumerating "
                     f"{len(next(iter(self.all_states.values())))} joint states")

    def step(self, key, batch, params) -> WeightedStates:
        compiled = self.model.compiled
        size = len(next(iter(batch.values())))
        if self.hidden:
            positive = expand(batch, self.hidden, self.hidden_labellings)
            pos_e = _energies(compiled, params, positive).reshape(size, -1)
            pos_mix = softmax(-pos_e, axis=1)
            free_pos = -logsumexp(-pos_e, axis=1)
        else:
            positive = dict(batch)
            pos_e = _energies(compiled, params, positive).reshape(size, 1)
            pos_mix = np.ones((size, 1))
            free_pos = pos_e[:, 0]
        all_e = _energies(compiled, params, self.all_states)
        neg_mix = softmax(-all_e)[None, :]
        pos_w, pos_bar = _phase_weights(pos_mix, pos_e, 1.0, self.energy_reg)
        neg_w, neg_bar = _phase_weights(neg_mix, all_e, -1.0, self.energy_reg)
        nll = float(np.mean(free_pos) + logsumexp(-all_e))
        return WeightedStates(_concat([positive, self.all_states]), np.concatenate([pos_w, neg_w]), nll,
                              {"energy_gap": float(pos_bar.mean() - neg_bar.mean())})

    def evaluate(self, key, data, params) -> dict:
        from ebmlang.learning.evaluation import log_prob

        return {"log_likelihood": float(np.mean(log_prob(self.model, data)))}

    def state_arrays(self) -> dict:
        return {}

    def load_state_arrays(self, arrays) -> None:
        return None


# --------------------------------------------------------------------------
# Contrastive losses and JEM


class Contrastive:
    """A loss of losses.py on the energy table over every target labelling."""

    def __init__(self, model, data: Mapping[str, np.ndarray], *, loss: str, margin: float):
        self.model = model
        self.loss_name = loss
        self.loss = get_loss(loss)
        self.margin = float(margin)
        self.targets = target_groups(model.graph, data, None)
        self.labellings = labellings_of(model.graph, self.targets)
        self.name = (f"contrastive '{loss}' loss over {len(next(iter(self.labellings.values())))} "
                     f"labellings of {', '.join(self.targets)}")

    def table(self, batch, params):
        states = expand(batch, self.targets, self.labellings)
        size = len(next(iter(batch.values())))
        energies = _energies(self.model.compiled, params, states).reshape(size, -1)
        target = labelling_index(self.model.graph, self.targets, batch)
        return states, energies, target

    def step(self, key, batch, params) -> WeightedStates:
        states, energies, target = self.table(batch, params)
        values, slopes = self.loss(energies, target, self.margin)
        accuracy = float(np.mean(np.argmin(energies, axis=1) == target))
        size = len(target)
        return WeightedStates(states, (slopes / size).reshape(-1), float(np.mean(values)),
                              {"accuracy": accuracy})

    def evaluate(self, key, data, params) -> dict:
        table, _ = energy_table(self.model.compiled, params, data, self.targets)
        target = labelling_index(self.model.graph, self.targets, data)
        return {"accuracy": float(np.mean(np.argmin(table, axis=1) == target))}

    def state_arrays(self) -> dict:
        return {}

    def load_state_arrays(self, arrays) -> None:
        return None


class JointEnergy(Contrastive):
    """JEM (Grathwohl et al., 2019): -log p(y | x) - gen_weight * log p(x) with
    log p(x) = logsumexp_y(-E(x, y)) - log Z; negatives x' by SGLD on the free energy
    F(x) = -logsumexp_y(-E(x, y)) from a replay buffer."""

    def __init__(self, model, data, *, chains: int, langevin: LangevinOptions, gen_weight: float,
                 energy_reg: float, seed: int):
        super().__init__(model, data, loss="nll", margin=0.0)
        from ebmlang.inference.replay import ReplayBuffer
        from ebmlang.learning.marginal import MarginalPotential

        graph = model.graph
        self.inputs = tuple(g for g in data if g not in self.targets)
        continuous = [g for g in self.inputs if not graph.variables[g].domain.is_discrete]
        if not continuous or len(continuous) != len(self.inputs):
            raise EbmError("JEM samples x by Langevin, so every non-target variable must be continuous",
                           hint="use loss='nll' for a purely discriminative fit")
        self.chains = int(chains)
        self.langevin = langevin
        self.gen_weight = float(gen_weight)
        self.energy_reg = float(energy_reg)
        bk = model.backend
        self.potential_of = lambda params: MarginalPotential(model.compiled, params, {}, self.inputs, self.targets)
        probe = self.potential_of(model.params)
        packed = bk.to_numpy(probe.pack({g: bk.asarray(data[g]) for g in self.inputs}))
        low, high = float(packed.min()), float(packed.max())
        self.buffer = ReplayBuffer.create(bk, bk.key(int(seed) + 104729), langevin.buffer_size, (probe.dim,),
                                          reinit_prob=langevin.reinit_prob, init="uniform", low=low, high=high)
        self.name = (f"JEM: -log p(y|x) over {len(next(iter(self.labellings.values())))} labellings of "
                     f"{', '.join(self.targets)} - {self.gen_weight:g} log p(x), negatives by "
                     f"{langevin.steps} SGLD steps from a replay buffer")

    def step(self, key, batch, params) -> WeightedStates:
        from ebmlang.inference.replay import short_run_langevin

        bk = self.model.backend
        start_key, run_key = bk.split(key, 2)
        states, energies, target = self.table(batch, params)
        values, slopes = self.loss(energies, target, 0.0)
        potential = self.potential_of(params)
        options = self.langevin
        position = short_run_langevin(bk, run_key, self.buffer.sample(start_key, self.chains), potential,
                                      options.steps, options.step_size, options.noise, options.grad_clip)
        self.buffer = self.buffer.push(position)
        negative = _as_numpy(bk, potential.unpack(position))
        neg_states = expand(negative, self.targets, self.labellings)
        neg_e = _energies(self.model.compiled, params, neg_states).reshape(self.chains, -1)
        size = len(target)
        free_pos, free_neg = -logsumexp(-energies, axis=1), -logsumexp(-neg_e, axis=1)
        # d F(x) = E_{p(y|x)} dE(x, y): the generative term weights every labelling by p(y | x);
        # energy_reg adds alpha * F^2 per example, whose gradient is 2 alpha F dF.
        gen_pos = softmax(-energies, axis=1) * (self.gen_weight + 2 * self.energy_reg * free_pos[:, None]) / size
        gen_neg = softmax(-neg_e, axis=1) * (-self.gen_weight + 2 * self.energy_reg * free_neg[:, None]) / self.chains
        weights = np.concatenate([((slopes / size) + gen_pos).reshape(-1), gen_neg.reshape(-1)])
        return WeightedStates(_concat([states, neg_states]), weights, float(np.mean(values)),
                              {"accuracy": float(np.mean(np.argmin(energies, axis=1) == target)),
                               "free_energy_gap": float(free_pos.mean() - free_neg.mean())})

    def state_arrays(self) -> dict:
        return {"buffer": np.asarray(self.model.backend.to_numpy(self.buffer.data))}

    def load_state_arrays(self, arrays) -> None:
        from dataclasses import replace

        self.buffer = replace(self.buffer, data=self.model.backend.asarray(arrays["buffer"]))
