"""Maximum-likelihood objectives: grad NLL = E_data[dE/dtheta] - E_model[dE/dtheta].

`MaximumLikelihood` estimates E_model with MCMC chains -- CD-k (chains start at the data)
or PCD (persistent chains) with block Gibbs, short-run Langevin from a replay buffer
(Du & Mordatch 2019), or both alternating -- and sums conditionally independent units
out exactly wherever it can: the hidden units of the data phase, and each colour class
of the chains in turn (Rao-Blackwellisation). `ExactLikelihood` enumerates instead.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy.special import logsumexp, softmax

from ebmlang.errors import EbmError
from ebmlang.learning.chains import (
    ChainSampler,
    LangevinOptions,
    buffer_around,
    random_values,
    replay_langevin,
    sample_summed,
)
from ebmlang.learning.conditional import known_entries
from ebmlang.learning.exact import (
    FreeEnergyGradient,
    VariableSet,
    enumerate_states,
    is_independent_set,
    sum_out,
    whole_groups,
    with_roles,
)
from ebmlang.learning.free_energy import FreeEnergyObjective, stacked_phases
from ebmlang.learning.losses import expand, labellings_of
from ebmlang.learning.weighted import (
    FreeEnergyRows,
    WeightedStates,
    backend_state,
    concat_states,
    energies_of,
    numpy_state,
    phase_weights,
)

RAO_BLACKWELL = ("classes", "hidden", "none")
# Average one Rao-Blackwellised negative-phase estimator per colour class when there are
# at most this many classes (else use the largest class alone).
MAX_NEGATIVE_ESTIMATORS = 4
# The exact-gradient objective enumerates at most this many joint states per step.
EXACT_GRADIENT_LIMIT = 2 ** 16
# Tracking the exact log-likelihood during fit is skipped above this many enumerated
# states (an RBM's 2^16 hidden states take seconds: call log_prob for those).
TRACKING_STATE_LIMIT = 2 ** 12


class MaximumLikelihood:
    """CD-k (chains start at the data) or PCD (persistent chains) maximum likelihood."""

    # `step` reads its batch as numpy or backend arrays alike: fit gathers them on the backend.
    takes_backend_batches = True

    def __init__(self, model, data: Mapping[str, np.ndarray], *, k: int, persistent: bool, chains: int,
                 langevin: LangevinOptions, energy_reg: float, seed: int, rao_blackwell: str = "classes",
                 known: Mapping | None = None, known_fraction: float = 0.5):
        graph = model.graph
        self.model = model
        self.k = int(k)
        self.persistent = bool(persistent)
        self.chains = int(chains)
        self.langevin = langevin
        self.energy_reg = float(energy_reg)
        self.data_groups = tuple(data)
        self.hidden = tuple(g for g in graph.variables if g not in data)
        if rao_blackwell not in RAO_BLACKWELL:
            raise EbmError(f"unknown rao_blackwell='{rao_blackwell}'", expected=", ".join(RAO_BLACKWELL))
        self.units = self._exact_units(graph)
        self.negative_sets = self._negative_sets(graph, rao_blackwell)
        # The estimator the reported gap takes as the negative phase: the one that sums
        # what the positive sums (like with like), else the first (estimators: positive first).
        same = [i for i, s in enumerate(self.negative_sets) if _set_key(s) == _set_key(self.units)]
        self.compared = 1 + (same[0] if same else 0)
        self.free_energy = {_set_key(u): FreeEnergyGradient(model.compiled, u)
                            for u in [self.units, *self.negative_sets] if u is not None}
        # One backend pass per estimator where no summed table can be +inf.
        objectives = {_set_key(u): FreeEnergyObjective(model.compiled, u)
                      for u in [self.units, *self.negative_sets] if u is not None}
        self.free_objective = {k: o for k, o in objectives.items() if o.usable}
        self.hidden_sampler = ChainSampler(model, self.data_groups, langevin) if self.hidden else None
        self.negative_sampler = ChainSampler(model, (), langevin)
        self.all_continuous = not any(v.domain.is_discrete for v in graph.variables.values())
        self.use_buffer = self.persistent and self.all_continuous
        self.chain_state: dict | None = None
        self.buffer = None
        self.known = known_entries(self, known, known_fraction)
        if self.use_buffer:
            self.buffer = self._new_buffer(data, seed)
        elif self.persistent:  # kept as backend arrays between steps (numpy in checkpoints)
            self.chain_state = backend_state(model.backend, self._initial_chains(data, seed))
        self._reconstructor: ChainSampler | None = None
        self.name = self._describe()

    # -- setup -------------------------------------------------------------
    def _exact_units(self, graph) -> VariableSet | None:
        if not self.hidden or any(not graph.variables[g].domain.is_discrete for g in self.hidden):
            return None
        units = whole_groups(graph, self.hidden)
        return units if is_independent_set(graph, units) else None

    def _negative_sets(self, graph, rao_blackwell: str) -> list:
        """What each negative-phase estimator sums out of the chains ("hidden": what the
        data phase sums; "none": nothing). By default ("classes"), in an all-discrete
        model, each colour class in turn: each gives an unbiased estimate of E_model[dE],
        and their average has lower variance than one (for an RBM: sum out h given v, and
        v given h). With more than MAX_NEGATIVE_ESTIMATORS classes each is a small part of
        the model, so only the largest is summed. Otherwise the hidden units when they are
        independent, else nothing (plain sample energies)."""
        if rao_blackwell != "classes":
            return [self.units if rao_blackwell == "hidden" else None]
        if all(v.domain.is_discrete for v in graph.variables.values()):
            from ebmlang.graph import structure

            classes = structure.colouring(with_roles(graph, ())).classes
            sets = [VariableSet({g: np.sort(np.asarray(ix, dtype=np.int64)) for g, ix in c.items() if len(ix)})
                    for c in classes]
            sets.sort(key=lambda v: -v.log_count(graph))
            return sets if len(sets) <= MAX_NEGATIVE_ESTIMATORS else sets[:1]
        return [self.units]

    def _new_buffer(self, data, seed):
        bk = self.model.backend
        potential = self.negative_sampler.potential({}, self.model.params)
        return buffer_around(bk, bk.key(int(seed) + 7919), potential, data, self.langevin)

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
        return self._describe_sampler() + ("" if self.known is None else self.known.describe())

    def _describe_sampler(self) -> str:
        discrete = bool(self.negative_sampler.discrete)
        continuous = bool(self.negative_sampler.continuous)
        sampler = ("block Gibbs" if discrete and not continuous else
                   "short-run Langevin" if continuous and not discrete else
                   "block Gibbs alternating with short-run Langevin")
        if self.use_buffer and self.langevin.reinit_prob >= 1.0:
            how = (f"short-run Langevin from uniform noise at every update ({self.langevin.steps} SGLD steps; "
                   "non-persistent, Nijkamp et al. 2019)")
        elif self.use_buffer:
            how = (f"persistent short-run Langevin from a replay buffer of {self.langevin.buffer_size} "
                   f"({self.langevin.steps} SGLD steps per update, Du & Mordatch 2019)")
        elif self.persistent:
            how = f"PCD-{self.k}: {self.chains} persistent chains, {sampler}"
        else:
            how = f"CD-{self.k}: chains start at the data, {sampler}"
        if self.units is not None:
            hidden = (f"; hidden {', '.join(self.hidden)} summed out of the data exactly (no factor "
                      "couples two hidden units: free-energy gradients)")
        elif self.hidden:
            hidden = f"; hidden {', '.join(self.hidden)} sampled given the data ({self.k} sweeps)"
        else:
            hidden = ""
        summed = [s for s in self.negative_sets if s is not None]
        if summed:
            names = " / ".join(", ".join(f"{g}[{len(ix)}]" for g, ix in s.members.items()) for s in summed)
            hidden += (f"; negatives Rao-Blackwellised: {names} summed out of the chains"
                       + (" (estimators averaged)" if len(summed) > 1 else ""))
        return "maximum likelihood, " + how + hidden

    # -- one step ----------------------------------------------------------
    def step(self, key, batch: Mapping[str, np.ndarray], params) -> WeightedStates:
        """Data rows weighted +1/B and chain rows -1/C (per estimator), as energies or as
        free energies where independent units are summed out."""
        bk = self.model.backend
        positive_key, negative_key, fallback_key = bk.split(key, 3)
        positive = self._positive(positive_key, batch, params)
        negative = self._negatives(negative_key, positive, params)
        estimators = [(positive, self.units, 1.0)] + [(negative, s, -1.0 / len(self.negative_sets))
                                                      for s in self.negative_sets]
        weighted = WeightedStates({}, np.zeros(0), 0.0)
        levels = self._stacked_estimates(estimators, params, weighted)
        states, weights = [], []
        for n, ((rows, summed_set, share), part_key) in enumerate(
                zip(estimators, bk.split(fallback_key, len(estimators)))):
            if levels[n] is not None:
                continue
            levels[n], part = self._estimate(part_key, rows, summed_set, share, params)
            if isinstance(part, FreeEnergyRows):
                weighted.free.append(part)
            else:
                states.append(part[0])
                weights.append(part[1])
        if states:
            weighted.states, weighted.weights = concat_states(states), np.concatenate(weights)
        return self._result(levels[0], levels[self.compared], weighted)

    def _stacked_estimates(self, estimators, params, weighted: WeightedStates) -> list:
        """The estimators whose set has a FreeEnergyObjective, one backend pass per set with
        their rows stacked (`stacked_phases`); their gradients go to `weighted.grads`.
        Returns the per-row levels by estimator (None for those left to `_estimate`)."""
        bk = self.model.backend
        keyed = [(backend_state(bk, rows), _set_key(summed) if summed is not None else None, share)
                 for rows, summed, share in estimators]
        levels, gradients = stacked_phases(self.free_objective, keyed, params, self.energy_reg)
        weighted.grads.extend(gradients)
        return [None if level is None else np.asarray(bk.to_numpy(level), dtype=np.float64) for level in levels]

    def _estimate(self, key, rows, summed_set, share, params):
        """One phase estimator, weighted by `share` (+1 positive, -1/n negative): the per-row
        energy (or free energy, with `summed_set` summed out) and its gradient part --
        FreeEnergyRows or a gradient dict, or (states, weights) for plain energies.
        energy_reg adds alpha * level^2 per row, scaled by |share|."""
        bk = self.model.backend
        rows = {g: v if isinstance(v, np.ndarray) else np.asarray(bk.to_numpy(v), dtype=np.float64)
                for g, v in rows.items()}
        if summed_set is not None:
            summed = sum_out(self.model.compiled, params, rows, summed_set)
            if summed.finite_tables:
                free = -summed.log_sum
                return free, FreeEnergyRows(self.free_energy[_set_key(summed_set)], summed,
                                            self._weights(free, share))
            # A constraint forbids some labels: sample them exactly instead of summing.
            rows = sample_summed(self.model.backend, key, self.model.graph, summed, summed_set)
        energies = energies_of(self.model.compiled, params, rows)
        return energies, (rows, self._weights(energies, share))

    def _weights(self, level: np.ndarray, share: float) -> np.ndarray:
        return phase_weights(np.ones((len(level), 1)), level, share, self.energy_reg * abs(share))

    def _result(self, pos_e, neg_e, weighted: WeightedStates) -> WeightedStates:
        """Fill in the loss and the stats (`phase_figures`)."""
        loss, gap, positive, negative = (float(x) for x in phase_figures(pos_e, neg_e, self.energy_reg))
        weighted.loss = loss
        weighted.stats = {"energy_gap": gap, "energy_pos": positive, "energy_neg": negative}
        return weighted

    def _positive(self, key, batch, params) -> dict:
        """The data with hidden groups filled in: any values when they are summed exactly
        (their tables do not depend on them), else `k` sweeps given the data from random."""
        if not self.hidden:
            return dict(batch)
        bk = self.model.backend
        start_key, run_key = bk.split(key, 2)
        size = len(next(iter(batch.values())))
        if self.units is not None:  # summed exactly: the hidden values are never read
            graph, ops = self.model.graph, bk.ops
            return {**batch, **{g: ops.zeros((size,) + graph.variables[g].shape) for g in self.hidden}}
        state = {**batch, **random_values(bk, start_key, self.model.graph, self.hidden, size)}
        return numpy_state(bk, self.hidden_sampler.run(run_key, backend_state(bk, state), params, self.k))

    def _negatives(self, key, positive: Mapping[str, np.ndarray], params) -> dict:
        """The chains after this step's sweeps: backend arrays (numpy from the replay buffer)."""
        bk = self.model.backend
        start_key, run_key = bk.split(key, 2)
        if self.use_buffer:
            potential = self.negative_sampler.potential({}, params)
            held = None if self.known is None else self.known.held(bk, start_key, potential, positive, self.chains)
            position, self.buffer = replay_langevin(bk, key, self.buffer, potential, self.langevin, self.chains,
                                                    self.negative_sampler.bounds, held)
            return numpy_state(bk, potential.unpack(position))
        if self.persistent:
            start = self.chain_state
        else:
            start = backend_state(bk, positive)
            if self.units is not None:
                # CD starts from (data, h ~ p(h | data)): one sweep samples independent units exactly.
                start = self.hidden_sampler.sweep(start_key, start, params)
        moved = self.negative_sampler.run(run_key, start, params, self.k)
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
            state = self.hidden_sampler.run(up_key, backend_state(bk, state), params, 1 if self.units else self.k)
            if self._reconstructor is None:
                self._reconstructor = ChainSampler(self.model, self.hidden, self.langevin)
            back = numpy_state(bk, self._reconstructor.sweep(down_key, state, params))
            out["reconstruction_error"] = float(np.mean([np.mean((back[g] - data[g]) ** 2)
                                                         for g in self.data_groups]))
        return out

    def state_arrays(self) -> dict:
        if self.buffer is not None:
            return {"buffer": np.asarray(self.model.backend.to_numpy(self.buffer.data))}
        if self.chain_state is not None:
            return {f"chain/{g}": v for g, v in numpy_state(self.model.backend, self.chain_state).items()}
        return {}

    def load_state_arrays(self, arrays: Mapping[str, np.ndarray]) -> None:
        from dataclasses import replace

        if self.buffer is not None:
            self.buffer = replace(self.buffer, data=self.model.backend.asarray(arrays["buffer"]))
        elif self.chain_state is not None:
            self.chain_state = backend_state(self.model.backend, {
                g: np.asarray(arrays[f"chain/{g}"], dtype=np.float64) for g in self.chain_state})


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
        chunks = list(enumerate_states(graph, tuple(graph.variables), max_states=EXACT_GRADIENT_LIMIT,
                                       what="the exact likelihood gradient (method='exact')",
                                       hint="train by MCMC instead: method='pcd' or 'cd'"))
        self.all_states = concat_states(chunks)
        self.hidden_labellings = labellings_of(graph, self.hidden) if self.hidden else None
        self.name = (f"exact maximum likelihood: E_model by enumerating "
                     f"{len(next(iter(self.all_states.values())))} joint states")

    def step(self, key, batch, params) -> WeightedStates:
        """Data (x hidden labellings, weighted p(h | v) / B) against every joint state
        (weighted -p(x)); the loss is the batch's exact mean negative log-likelihood."""
        compiled = self.model.compiled
        size = len(next(iter(batch.values())))
        if self.hidden:
            positive = expand(batch, self.hidden, self.hidden_labellings)
            pos_e = energies_of(compiled, params, positive).reshape(size, -1)
            pos_mix = softmax(-pos_e, axis=1)
            free_pos = -logsumexp(-pos_e, axis=1)
        else:
            positive = dict(batch)
            pos_e = energies_of(compiled, params, positive).reshape(size, 1)
            pos_mix = np.ones((size, 1))
            free_pos = pos_e[:, 0]
        all_e = energies_of(compiled, params, self.all_states)
        neg_mix = softmax(-all_e)[None, :]
        neg_level = neg_mix @ all_e
        pos_w = phase_weights(pos_mix, free_pos, 1.0, self.energy_reg)
        neg_w = phase_weights(neg_mix, neg_level, -1.0, self.energy_reg)
        nll = float(np.mean(free_pos) + logsumexp(-all_e))
        return WeightedStates(concat_states([positive, self.all_states]), np.concatenate([pos_w, neg_w]), nll,
                              {"energy_gap": float(free_pos.mean() - neg_level[0])})

    def evaluate(self, key, data, params) -> dict:
        from ebmlang.learning.evaluation import log_prob

        return {"log_likelihood": float(np.mean(log_prob(self.model, data)))}

    def state_arrays(self) -> dict:
        return {}

    def load_state_arrays(self, arrays) -> None:
        return None


def phase_figures(pos_e, neg_e, energy_reg: float):
    """(loss, energy gap, mean positive, mean negative) of one step's phase levels (numpy
    or traced backend arrays): the gap of the mean (free) energies plus the E^2 penalty."""
    gap = pos_e.mean() - neg_e.mean()
    return gap + energy_reg * ((pos_e ** 2).mean() + (neg_e ** 2).mean()), gap, pos_e.mean(), neg_e.mean()


def _set_key(variables: VariableSet | None):
    """A hashable description of a variable set (None for no set)."""
    if variables is None:
        return None
    return tuple((g, ix.tobytes()) for g, ix in variables.members.items())
