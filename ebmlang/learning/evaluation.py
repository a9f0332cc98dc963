"""Evaluating a model: exact log Z and log-likelihoods, AIS estimates, predictions.

* `log_partition(model)`: log Z by enumeration, with the largest independent class of
  variables summed analytically (for an RBM: enumerate the smaller layer, sum the
  larger one in closed form -- 2^16 hidden states for 64 x 16).
* `log_prob(model, data)`: exact log p(data) (joint) or log p(data | continuous data).
* `ais_log_partition(model)`: annealed importance sampling (Neal 2001) from the
  uniform distribution, with block Gibbs transitions, for models too big to enumerate.
* `ais_log_z(model)`: AIS for any model -- `ais_log_partition` when every variable is
  discrete, else HMC over the continuous ones (ais_continuous.py); `log_z(model)`: exact
  where enumeration fits, AIS otherwise, saying which; `log_prob(..., method="ais")` and
  `ais_log_likelihood` (the held-out metric of training histories) on top of it.
* `predict(model, data)`: the lowest-energy labels of small discrete targets.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ebmlang.errors import EbmError
from ebmlang.learning.ais_continuous import (
    AISResult,
    check_schedule,
    continuous_ais,
    observed_log_density,
    summarize_weights,
)
from ebmlang.learning.dataset import prepare_data
from ebmlang.learning.exact import (
    EXACT_STATE_LIMIT,
    largest_independent_class,
    log_marginal,
    whole_groups,
    with_roles,
)

__all__ = ["AISResult", "LogZResult", "ais_log_likelihood", "ais_log_partition", "ais_log_z", "log_partition",
           "log_prob", "log_z", "predict"]


def log_partition(model, *, max_states: int = EXACT_STATE_LIMIT) -> float:
    """Exact log Z = log sum over all variables of exp(-E); observed-role variables are
    summed too (this is the normaliser of the joint distribution)."""
    return float(log_marginal(model.compiled, model.params, {}, batch=1, max_states=max_states,
                              what="the exact log partition function")[0])


def log_prob(model, data, *, given=None, max_states: int = EXACT_STATE_LIMIT, method: str = "exact",
             log_z=None, **ais_options) -> np.ndarray:
    """Log-probability of each example of `data`: float64 [N].

    method "exact" (default): variables missing from `data` are summed out (e.g. an RBM's
    hidden units). given: names of data groups to condition on; by default the continuous
    ones, whose values cannot be summed over -- so for `classifier.ebm` this is log p(y | x),
    and for an all-discrete model the joint log p(data). A model whose free variables cannot
    be enumerated within `max_states` joint states raises an EbmError suggesting AIS.
    method "ais": the joint log p(data) = -E_obs(data) - log Z, groups without data summed
    out exactly (they must be discrete and independent given the data), log Z by `ais_log_z`
    (options `ais_options`, the base fitted to `data`) or the `log_z` given (a float, an
    AISResult or a LogZResult: compute it once, score many sets; its stderr is the common
    error of every value). method "auto": "ais" when all of the data is continuous, else exact.
    """
    graph = model.graph
    data = prepare_data(graph, data, what="data")
    if method not in ("exact", "ais", "auto"):
        raise EbmError(f"unknown log_prob method {method!r}", expected="'exact', 'ais' or 'auto'")
    if method == "auto":
        continuous = all(not graph.variables[g].domain.is_discrete for g in data)
        method = "ais" if given is None and continuous else "exact"
    if method == "ais":
        if given is not None:
            raise EbmError("log_prob by AIS gives the joint log-probability; it cannot condition on 'given'",
                           hint="leave given out, or use method='exact'")
        numerator = observed_log_density(model, data, params=ais_options.get("params"))
        if log_z is None:
            log_z = ais_log_z(model, data=data, **ais_options)
        return numerator - float(getattr(log_z, "log_z", log_z))
    if log_z is not None or ais_options:
        raise EbmError(f"log_prob options {', '.join(['log_z'] * (log_z is not None) + list(ais_options))} "
                       "are for method='ais'", hint="pass method='ais' (or 'auto' for continuous data)")
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
            hint="estimate it by annealed importance sampling: log_prob(model, data, method='ais') "
                 "(model.log_prob does so by default), or give discrete variables to score given the "
                 "continuous ones")
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


def ais_log_partition(model, *, chains: int = 256, steps: int = 1000, seed: int = 0,
                      betas=None, params=None) -> AISResult:
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
                       var.span, source=graph.source or None,
                       hint="ais_log_z(model) anneals continuous variables from a Gaussian base (HMC)")
    schedule = check_schedule(betas, steps, chains, default=lambda n: np.linspace(0.0, 1.0, n + 1))
    free_graph = with_roles(graph, ())
    blocks = gibbs_blocks(free_graph)
    bk, compiled = model.backend, model.compiled
    params = model.params if params is None else params
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
    return summarize_weights(log_weights, log_z0, steps=len(schedule) - 1,
                             transition="one block-Gibbs sweep per temperature, linear path",
                             base="uniform over every variable's values")


def ais_log_z(model, *, chains: int | None = None, steps: int | None = None, seed: int = 0, betas=None,
              params=None, **continuous_options) -> AISResult:
    """log Z by AIS: `ais_log_partition` (uniform base, block Gibbs) when every variable is
    discrete, else `continuous_ais` (Gaussian base, HMC over the continuous variables, the
    discrete ones summed out exactly; options data, base, scale, leapfrog)."""
    graph = model.graph
    if all(v.domain.is_discrete for v in graph.variables.values()):
        extra = [k for k, v in continuous_options.items() if v is not None and k != "data"]
        if extra:
            raise EbmError(f"AIS option(s) {', '.join(extra)} are for continuous variables; every variable "
                           f"of {graph.name} is discrete (uniform base, block Gibbs)",
                           hint="leave them out")
        return ais_log_partition(model, chains=chains or 256, steps=steps or 1000, seed=seed, betas=betas,
                                 params=params)
    return continuous_ais(model, chains=chains or 128, steps=steps or 1000, seed=seed, betas=betas,
                          params=params, **continuous_options)


@dataclass
class LogZResult:
    """log Z and how it was found: method "exact" (stderr 0) or "ais" (`ais` holds the
    AISResult: weights, effective sample size, transition). float(result) is log Z."""

    log_z: float
    stderr: float
    method: str
    how: str
    ais: AISResult | None = None

    def __float__(self) -> float:
        return float(self.log_z)

    def __repr__(self) -> str:
        if self.ais is None:
            return f"LogZResult(exact: log_z={self.log_z:.4f}; {self.how})"
        return (f"LogZResult(ais: log_z={self.log_z:.4f} +/- {self.stderr:.4f}, "
                f"ESS {self.ais.effective_sample_size:.1f} of {self.ais.chains} chains; {self.how})")


def log_z(model, *, method: str = "auto", max_states: int = EXACT_STATE_LIMIT, **ais_options) -> LogZResult:
    """log Z of the joint distribution: method "exact" (enumeration, with the largest
    independent class summed in closed form), "ais" (`ais_log_z` with `ais_options`) or
    "auto": exact when every variable is discrete and at most `max_states` states are
    enumerated, else AIS. The result says which."""
    graph = model.graph
    if method not in ("auto", "exact", "ais"):
        raise EbmError(f"unknown log_z method {method!r}", expected="'auto', 'exact' or 'ais'")
    if method == "auto":
        discrete = all(v.domain.is_discrete for v in graph.variables.values())
        free = whole_groups(graph, list(graph.variables))
        enumerated = free.without(largest_independent_class(graph, free)) if discrete else None
        method = "exact" if discrete and enumerated.log_count(graph) <= math.log(max_states) else "ais"
    if method == "exact":
        if ais_options:
            raise EbmError(f"log_z options {', '.join(ais_options)} are for method='ais'")
        value = log_partition(model, max_states=max_states)
        return LogZResult(value, 0.0, "exact", "enumeration, the largest independent class summed in closed form")
    result = ais_log_z(model, **ais_options)
    return LogZResult(result.log_z, result.stderr, "ais",
                      f"{result.chains} chains x {result.steps} steps from a {result.base}; {result.transition}",
                      result)


def ais_log_likelihood(model, data, *, chains: int = 64, steps: int = 300, seed: int = 0, params=None,
                       **ais_options) -> dict:
    """The mean held-out log-likelihood of `data` by AIS and its standard error, for a
    training history: {"log_likelihood": mean_n log p(x_n), "log_likelihood_se": ...,
    "log_likelihood_ess": the effective sample size of the AIS weights}.

    The error is that of log Z (shared by every example; -E_obs is exact); with an ESS of a
    few chains it is itself unreliable (too small). Cheap settings by default (64 chains x
    300 steps, the base fitted to `data`): a per-epoch curve, not a final figure."""
    estimate = ais_log_z(model, data=data, chains=chains, steps=steps, seed=seed, params=params, **ais_options)
    values = log_prob(model, data, method="ais", log_z=estimate, params=params)
    return {"log_likelihood": float(np.mean(values)), "log_likelihood_se": float(estimate.stderr),
            "log_likelihood_ess": float(estimate.effective_sample_size)}


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
