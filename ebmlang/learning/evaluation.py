"""Evaluating a model: exact log Z and log-likelihoods, AIS estimates, predictions.

* `log_partition(model)`: log Z by enumeration, with the largest independent class of
  variables summed analytically (for an RBM: enumerate the smaller layer, sum the
  larger one in closed form -- 2^16 hidden states for 64 x 16).
* `log_prob(model, data)`: exact log p(data) (joint) or log p(data | continuous data).
* `ais_log_partition(model)`: annealed importance sampling (Neal 2001) from the
  uniform distribution, with block Gibbs transitions, for models too big to enumerate.
* `predict(model, data)`: the lowest-energy labels of small discrete targets.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ebmlang.errors import EbmError
from ebmlang.learning.dataset import prepare_data
from ebmlang.learning.exact import EXACT_STATE_LIMIT, log_marginal, with_roles


def log_partition(model, *, max_states: int = EXACT_STATE_LIMIT) -> float:
    """Exact log Z = log sum over all variables of exp(-E); observed-role variables are
    summed too (this is the normaliser of the joint distribution)."""
    return float(log_marginal(model.compiled, model.params, {}, batch=1, max_states=max_states,
                              what="the exact log partition function")[0])


def log_prob(model, data, *, given=None, max_states: int = EXACT_STATE_LIMIT) -> np.ndarray:
    """Exact log-probability of each example of `data`: float64 [N].

    Variables missing from `data` are summed out (e.g. an RBM's hidden units).
    given: names of data groups to condition on; by default the continuous ones, whose
    values cannot be summed over -- so for `classifier.ebm` this is log p(y | x), and for
    an all-discrete model the joint log p(data). A model whose free variables cannot be
    enumerated within `max_states` joint states raises an EbmError suggesting AIS.
    """
    graph = model.graph
    data = prepare_data(graph, data, what="data")
    if given is None:
        given = [g for g in data if not graph.variables[g].domain.is_discrete]
    given = list(given)
    for g in given:
        if g not in data:
            raise EbmError(f"log_prob is conditioned on '{g}', but the data has no values for it",
                           hint=f"data groups: {', '.join(data)}")
    if given and set(given) >= set(data):
        var = graph.variables[given[0]]
        raise EbmError(
            f"log_prob would condition on all of its data ({', '.join(data)}): the normaliser of "
            "continuous variables is an integral with no exact value here", var.span,
            source=graph.source or None,
            hint="give discrete variables to score given the continuous ones, or compare models by "
                 "energy differences")
    numerator = log_marginal(model.compiled, model.params, data, max_states=max_states,
                             what="an exact log-probability")
    if given:
        denominator = log_marginal(model.compiled, model.params, {g: data[g] for g in given},
                                   max_states=max_states, what="an exact conditional log-probability")
    else:
        denominator = log_marginal(model.compiled, model.params, {}, batch=1, max_states=max_states,
                                   what="the exact log partition function")
    return numerator - denominator


# --------------------------------------------------------------------------
# Annealed importance sampling


@dataclass
class AISResult:
    """log Z estimate with its standard error (delta method over the chains' weights)."""

    log_z: float
    stderr: float
    log_weights: np.ndarray = field(repr=False)
    effective_sample_size: float = 0.0

    def __repr__(self) -> str:
        return (f"AISResult(log_z={self.log_z:.4f} +/- {self.stderr:.4f}, "
                f"chains={len(self.log_weights)}, ess={self.effective_sample_size:.1f})")


def ais_log_partition(model, *, chains: int = 256, steps: int = 1000, seed: int = 0,
                      betas=None) -> AISResult:
    """Estimate log Z by annealing from the uniform distribution (beta = 0) to the model
    (beta = 1) along exp(-beta E), with one block-Gibbs sweep at each beta.

    Every variable must be discrete. betas: an increasing schedule from 0 to 1 (default
    `steps` + 1 evenly spaced values). The estimate of Z is unbiased; its log is biased low
    by about stderr^2 / 2.
    """
    from ebmlang.inference.gibbs import build_gibbs_kernel, gibbs_blocks

    graph = model.graph
    continuous = [g for g, v in graph.variables.items() if not v.domain.is_discrete]
    if continuous:
        var = graph.variables[continuous[0]]
        raise EbmError(f"AIS from a uniform base needs discrete variables; '{var.name}' is {var.domain}",
                       var.span, source=graph.source or None)
    if chains < 2 or (betas is None and steps < 1):
        raise EbmError(f"AIS needs at least 2 chains and 1 step (got chains={chains}, steps={steps})")
    schedule = np.linspace(0.0, 1.0, steps + 1) if betas is None else np.asarray(betas, dtype=np.float64)
    if schedule[0] != 0.0 or schedule[-1] != 1.0 or np.any(np.diff(schedule) <= 0):
        raise EbmError("an AIS schedule must increase strictly from 0 to 1",
                       hint="pass betas=np.linspace(0, 1, 1001), say")
    free_graph = with_roles(graph, ())
    blocks = gibbs_blocks(free_graph)
    bk, compiled, params = model.backend, model.compiled, model.params
    rng = np.random.default_rng(seed)
    state = {g: bk.asarray(v.domain.values[rng.integers(0, v.domain.num_values, (chains,) + v.shape)])
             for g, v in graph.variables.items()}
    log_z0 = sum(v.size * math.log(v.domain.num_values) for v in graph.variables.values())
    log_weights = np.zeros(chains)
    keys = bk.split(bk.key(seed), len(schedule) - 1)
    for previous, beta, key in zip(schedule[:-1], schedule[1:], keys):
        energy = bk.to_numpy(compiled.energy(state, params)).astype(np.float64)
        with np.errstate(invalid="ignore"):
            log_weights -= (beta - previous) * energy
        kernel = build_gibbs_kernel(compiled, blocks, temperature=1.0 / beta)
        state, _ = kernel(key, state, params)
    log_weights = np.where(np.isnan(log_weights), -np.inf, log_weights)
    top = log_weights.max()
    if not np.isfinite(top):
        return AISResult(-math.inf, math.inf, log_weights, 0.0)
    weights = np.exp(log_weights - top)
    mean = weights.mean()
    stderr = float(weights.std(ddof=1) / (math.sqrt(chains) * mean))
    ess = float(weights.sum() ** 2 / np.sum(weights ** 2))
    return AISResult(float(log_z0 + top + math.log(mean)), stderr, log_weights, ess)


# --------------------------------------------------------------------------
# Predictions


def predict(model, data, *, targets=None) -> dict[str, np.ndarray]:
    """The lowest-energy joint labels of the discrete `targets` (default: the latent
    discrete groups without data) for each example: {group: int array [N, *shape]}."""
    from ebmlang.learning.losses import energy_table, target_groups

    graph = model.graph
    data = prepare_data(graph, data, what="data")
    targets = target_groups(graph, data, targets, for_prediction=True)
    table, labellings = energy_table(model.compiled, model.params, data, targets)
    best = np.argmin(table, axis=1)
    return {g: labellings[g][best].astype(np.int64) for g in targets}
