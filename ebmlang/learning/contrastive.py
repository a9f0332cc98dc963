"""Contrastive objectives for models with observed inputs and small discrete targets.

`Contrastive` trains with one of LeCun et al.'s losses (losses.py) on the energy table
over every target labelling; `JointEnergy` is JEM (Grathwohl et al., 2019): the exact
classification NLL plus a generative term on the inputs, whose negatives come from SGLD
on the free energy F(x) = -logsumexp_y(-E(x, y)) started from a replay buffer.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy.special import logsumexp, softmax

from ebmlang.errors import EbmError
from ebmlang.learning.chains import LangevinOptions, buffer_around, clamp_bounds, replay_langevin
from ebmlang.learning.losses import energy_table, expand, get_loss, labelling_index, labellings_of, target_groups
from ebmlang.learning.weighted import WeightedStates, concat_states, energies_of, numpy_state, phase_weights


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
        """(expanded states [B * S], energies [B, S], index of each example's labelling [B])."""
        states = expand(batch, self.targets, self.labellings)
        size = len(next(iter(batch.values())))
        energies = energies_of(self.model.compiled, params, states).reshape(size, -1)
        target = labelling_index(self.model.graph, self.targets, batch)
        return states, energies, target

    def step(self, key, batch, params) -> WeightedStates:
        """Every labelling of every example, weighted by dL/dE / B."""
        states, energies, target = self.table(batch, params)
        values, slopes = self.loss(energies, target, self.margin)
        accuracy = float(np.mean(np.argmin(energies, axis=1) == target))
        size = len(target)
        return WeightedStates(states, (slopes / size).reshape(-1), float(np.mean(values)),
                              {"accuracy": accuracy})

    def evaluate(self, key, data, params) -> dict:
        """Accuracy of the lowest-energy labelling."""
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
        transform = langevin.bounded == "transform"
        self.potential_of = lambda params: MarginalPotential(model.compiled, params, {}, self.inputs, self.targets,
                                                             transform_bounded=transform)
        self.bounds = clamp_bounds(model, self.inputs, langevin)
        self.divergence = GenerativeDivergence()
        self.buffer = buffer_around(bk, bk.key(int(seed) + 104729), self.potential_of(model.params),
                                    {g: data[g] for g in self.inputs}, langevin, pad=0.0)
        self.name = (f"JEM: -log p(y|x) over {len(next(iter(self.labellings.values())))} labellings of "
                     f"{', '.join(self.targets)} - {self.gen_weight:g} log p(x), negatives by "
                     f"{langevin.steps} SGLD steps from a replay buffer")

    def step(self, key, batch, params) -> WeightedStates:
        bk = self.model.backend
        states, energies, target = self.table(batch, params)
        values, slopes = self.loss(energies, target, 0.0)
        potential = self.potential_of(params)
        position, self.buffer = replay_langevin(bk, key, self.buffer, potential, self.langevin, self.chains,
                                                self.bounds)
        negative = numpy_state(bk, potential.unpack(position))
        neg_states = expand(negative, self.targets, self.labellings)
        neg_e = energies_of(self.model.compiled, params, neg_states).reshape(self.chains, -1)
        size = len(target)
        free_pos, free_neg = -logsumexp(-energies, axis=1), -logsumexp(-neg_e, axis=1)
        # d F(x) = E_{p(y|x)} dE(x, y): the generative term weights every labelling by p(y | x).
        gen_pos = phase_weights(softmax(-energies, axis=1), free_pos, self.gen_weight, self.energy_reg)
        gen_neg = phase_weights(softmax(-neg_e, axis=1), free_neg, -self.gen_weight, self.energy_reg)
        self.divergence.observe(free_pos, free_neg)
        weights = np.concatenate([(slopes / size).reshape(-1) + gen_pos, gen_neg])
        return WeightedStates(concat_states([states, neg_states]), weights, float(np.mean(values)),
                              {"accuracy": float(np.mean(np.argmin(energies, axis=1) == target)),
                               "free_energy_gap": float(free_pos.mean() - free_neg.mean())})

    def state_arrays(self) -> dict:
        return {"buffer": np.asarray(self.model.backend.to_numpy(self.buffer.data))}

    def load_state_arrays(self, arrays) -> None:
        from dataclasses import replace

        self.buffer = replace(self.buffer, data=self.model.backend.asarray(arrays["buffer"]))


class GenerativeDivergence:
    """Warns once when JEM's generative part runs away: short-run chains whose free
    energies sit far above the data's, step after step, mean the sampler no longer reaches
    the data's modes; the log p(x) gradient then only pushes the two apart, and the shared
    network's logits (the classifier) are dragged along (accuracy falls toward chance).

    GAP nats is a density ratio of e^-20 between the model's own samples and the data:
    no sampler is mixing there. A healthy run's gap hovers within a few nats of zero.
    """

    GAP = 20.0
    PATIENCE = 25

    def __init__(self):
        self.run = 0
        self.warned = False

    def observe(self, free_data: np.ndarray, free_samples: np.ndarray) -> None:
        gap = float(np.mean(free_samples) - np.mean(free_data))
        self.run = self.run + 1 if not np.isfinite(gap) or gap > self.GAP else 0
        if self.run >= self.PATIENCE and not self.warned:
            import warnings

            self.warned = True
            warnings.warn(f"JEM's generative part is diverging: for {self.run} steps the SGLD samples' free energy "
                          f"has been {gap:.3g} nats above the data's (the sampler no longer reaches the data); the "
                          "classifier will degrade. Lower lr, raise energy_reg, or give the sampler more steps "
                          "(langevin={'steps': ...}) or a larger step_size", RuntimeWarning, stacklevel=2)
