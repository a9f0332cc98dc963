"""Replica exchange (parallel tempering) over a ladder of temperatures.

`sample(..., tempering=R)` runs R replicas of every chain at temperatures
1 = T_1 < T_2 < ... < T_R (times the run's `temperature`), all as one batch of R x C
chains: chain r * C + c is chain c's replica at T_r. Each chain carries its own inverse
temperature into the kernels (inference/temperature.py), so one Gibbs sweep, one
Swendsen-Wang or Wolff update (bonds and cluster energies per chain), one exact block
draw (its tables scaled per chain) or one MALA / HMC / NUTS / RWMH step moves every
replica at once. After each step,
neighbouring replicas propose to swap states, with probability
min(1, exp((1/T_i - 1/T_j) (E_i - E_j))) (the E are the model's energies, so a bounded
variable's Jacobian, the same in both, cancels). Pairs alternate deterministically,
even pairs on even steps and odd pairs on odd steps (the DEO scheme of Okabe et al.,
Chem. Phys. Lett. 335 (2001), analysed by Syed et al. below), so a state travels up
and down the ladder instead of diffusing. Only the T_1 replicas are recorded.

States move, temperatures stay: each chain keeps its temperature, and with it its
continuous kernel's adapted step size (one per chain under tempering).

Ladder adaptation (during the first three quarters of burn-in, then frozen): with both
ends fixed, the inner temperatures are placed so that every neighbouring pair rejects
swaps equally often -- Syed, Bouchard-Cote, Deligiannidis & Doucet, "Non-reversible
parallel tempering: a scalable highly parallel MCMC scheme", JRSS B 84 (2022) 321-350,
Algorithm 4 (as in Pigeons.jl): in rounds of doubling length, the cumulative rejection
rate along beta = 1 / T is the estimated communication barrier Lambda(beta); the new
inverse temperatures split it into equal parts (by piecewise-linear interpolation).
"""
from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ebmlang.errors import EbmError, check_whole_number
from ebmlang.graph.values import check_values
from ebmlang.inference.cluster import CLUSTER_METHODS, ClusterStepper
from ebmlang.inference.continuous_runner import ContinuousRunner
from ebmlang.inference.gibbs import check_gibbs_budget, gibbs_blocks
from ebmlang.inference.results import Samples
from ebmlang.inference.run import _check_finite, _check_not_frozen, check_sample_request, initial_state, record_chains
from ebmlang.inference.steppers import PlanSteppers, jitted_gibbs_sweep
from ebmlang.inference.temperature import INVERSE_TEMPERATURE

DEFAULT_MAX_TEMPERATURE = 10.0
# Rounds of ladder adaptation end at 3/4, 3/8, 3/16, ... of burn-in, down to this many steps.
SHORTEST_ROUND = 8
# A pair rejecting at least this much counts a little in the barrier (no flat stretch of
# Lambda, whose inverse would be ambiguous).
LEAST_REJECTION = 1e-3
_HINT = ("tempering=8 runs 8 replicas on a geometric ladder from 1 to 10 (adapted during burn-in); "
         "tempering=[1.0, 1.5, 2.25, 3.4] gives the ladder itself; Tempering(replicas=8, max_temperature=30) "
         "sets the hottest")


@dataclass(frozen=True)
class Tempering:
    """Replica exchange settings for `Model.sample(..., tempering=...)`.

    replicas: how many temperatures, on a geometric ladder from 1 to `max_temperature`;
    or temperatures: the ladder itself, starting at 1 and increasing. Temperatures are
    relative to the run's `temperature`. adapt: move the inner temperatures toward equal
    swap acceptance during burn-in (default: when the ladder is not given explicitly).
    """

    replicas: int | None = None
    temperatures: tuple[float, ...] | None = None
    max_temperature: float = DEFAULT_MAX_TEMPERATURE
    adapt: bool | None = None

    def ladder(self) -> np.ndarray:
        if self.temperatures is not None:
            return np.asarray(self.temperatures, dtype=np.float64)
        return np.geomspace(1.0, self.max_temperature, self.replicas)

    @property
    def adapts(self) -> bool:
        return self.temperatures is None if self.adapt is None else bool(self.adapt)


def as_tempering(value) -> Tempering | None:
    """`sample`'s tempering argument checked: None, a number of replicas, a ladder or a
    `Tempering`; an EbmError says what is wrong."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise EbmError(f"tempering must be a number of replicas or a ladder of temperatures (got {value!r})",
                       hint=_HINT)
    if isinstance(value, numbers.Integral):
        value = Tempering(replicas=int(value))
    elif isinstance(value, (Sequence, np.ndarray)) and not isinstance(value, str):
        value = Tempering(temperatures=tuple(value))
    elif not isinstance(value, Tempering):
        raise EbmError(f"tempering must be a number of replicas, a list of temperatures or a Tempering "
                       f"(got {type(value).__name__})", hint=_HINT)
    if value.temperatures is None:
        replicas = value.replicas
        if not isinstance(replicas, numbers.Integral) or isinstance(replicas, bool) or replicas < 2:
            raise EbmError(f"tempering needs a whole number of at least 2 replicas (got {replicas!r})", hint=_HINT)
        top = value.max_temperature
        if not isinstance(top, numbers.Real) or isinstance(top, bool) or not 1 < top < np.inf:
            raise EbmError(f"the hottest temperature of a tempering ladder must be a finite number above 1 "
                           f"(got {top!r})", hint=_HINT)
        return dataclasses.replace(value, replicas=int(replicas), max_temperature=float(top))
    _check_ladder(value.temperatures)
    ladder = tuple(float(t) for t in value.temperatures)
    if value.replicas is not None and value.replicas != len(ladder):
        raise EbmError(f"tempering gives {value.replicas} replicas but a ladder of {len(ladder)} temperatures",
                       hint="give one of the two")
    return dataclasses.replace(value, replicas=len(ladder), temperatures=ladder)


def _check_ladder(ladder) -> None:
    if len(ladder) < 2:
        raise EbmError(f"a tempering ladder needs at least 2 temperatures (got {list(ladder)})", hint=_HINT)
    if not all(isinstance(t, numbers.Real) and not isinstance(t, bool) for t in ladder):
        raise EbmError(f"a tempering ladder holds numbers (got {list(ladder)})", hint=_HINT)
    temps = np.asarray(ladder, dtype=np.float64)
    if not np.all(np.isfinite(temps)):
        raise EbmError(f"a tempering ladder's temperatures must be finite (got {list(ladder)})", hint=_HINT)
    if temps[0] != 1.0:
        raise EbmError(f"a tempering ladder starts at 1, the temperature whose draws are kept (got {ladder[0]!r})",
                       hint="the ladder is relative to sample's temperature: scale it with temperature=...")
    if not np.all(np.diff(temps) > 0):
        raise EbmError(f"a tempering ladder must increase strictly (got {list(ladder)})", hint=_HINT)


def adaptation_rounds(burn_in: int) -> tuple[int, ...]:
    """The steps after which the ladder is updated: ends of rounds of doubling length,
    the last at 3/4 of burn-in (the last quarter runs at the final ladder)."""
    ends, end = [], (3 * int(burn_in)) // 4
    while end >= SHORTEST_ROUND:
        ends.append(end)
        end //= 2
    return tuple(sorted(ends))


def equalised_ladder(temperatures: np.ndarray, rejection: np.ndarray) -> np.ndarray:
    """Syed et al. (2022), Algorithm 4: the ladder with the same ends on which each pair of
    neighbours has the same share of the barrier Lambda, the rejection rates `rejection`
    [R - 1] of the current pairs summed along beta = 1 / T (piecewise linear)."""
    beta = 1.0 / np.asarray(temperatures, dtype=np.float64)[::-1]  # increasing, ending at 1 / T_1
    barrier = np.concatenate([[0.0], np.cumsum(np.maximum(np.asarray(rejection)[::-1], LEAST_REJECTION))])
    new_beta = np.interp(np.linspace(0.0, barrier[-1], len(beta)), barrier, beta)
    new_beta[0], new_beta[-1] = beta[0], beta[-1]
    return (1.0 / new_beta)[::-1]


class _SwapTally:
    """Swap acceptance probabilities per neighbouring pair, summed over chains and steps."""

    def __init__(self, pairs: int):
        self.total = np.zeros(pairs)
        self.count = np.zeros(pairs)

    def add(self, pair: int, alpha: np.ndarray) -> None:
        self.total[pair] += float(np.sum(alpha))
        self.count[pair] += alpha.size

    def mean(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.count > 0, self.total / np.maximum(self.count, 1), np.nan)


class ReplicaExchange:
    """The swap step of a tempered run, `step(key, state) -> state` after the kernels'
    steps; it owns the ladder and writes the chains' inverse temperatures into `params`
    (the dict the kernels are called with)."""

    def __init__(self, model, chains: int, tempering: Tempering, base_temperature: float, burn_in: int,
                 latent_names, params: dict):
        self.model = model
        self.chains = int(chains)
        self.replicas = tempering.replicas
        self.base = float(base_temperature)
        self.burn_in = int(burn_in)
        self.latent_names = tuple(latent_names)
        self.params = params
        self.initial = tempering.ladder()
        self.adapts = tempering.adapts
        # (Two replicas have no inner temperature to move.)
        self.rounds = adaptation_rounds(burn_in) if self.adapts and self.replicas > 2 else ()
        self.runner = None              # the continuous runner, whose positions follow swaps
        self.on_ladder_change = []      # callbacks(temperatures) of per-replica steppers
        self.steps = 0
        self.round = _SwapTally(self.replicas - 1)
        self.kept = _SwapTally(self.replicas - 1)
        self.accepted_after_burn_in = np.zeros(self.replicas - 1)
        # Round trips: which state (label) is in which slot, and which have been to the top.
        self.label = np.arange(self.replicas * self.chains).reshape(self.replicas, self.chains)
        self.been_top = np.zeros(self.replicas * self.chains, dtype=bool)
        self.round_trips = 0
        self.set_ladder(self.initial)

    @property
    def size(self) -> int:
        return self.replicas * self.chains

    def temperatures(self) -> np.ndarray:
        """The current ladder, absolute (times the run's temperature)."""
        return self.base * self.ladder

    def set_ladder(self, ladder: np.ndarray) -> None:
        self.ladder = np.asarray(ladder, dtype=np.float64)
        beta = np.repeat(1.0 / self.temperatures(), self.chains)
        self.params[INVERSE_TEMPERATURE] = self.model.backend.asarray(beta)
        for callback in self.on_ladder_change:
            callback(self.temperatures())

    def __call__(self, key, state: dict) -> dict:
        bk = self.model.backend
        R, C = self.replicas, self.chains
        energy = bk.to_numpy(self.model.compiled.energy(state, self.model.params)).astype(np.float64).reshape(R, C)
        uniform = bk.to_numpy(bk.uniform(key, (R - 1, C))).astype(np.float64)
        beta = 1.0 / self.temperatures()
        order = np.arange(R * C).reshape(R, C)
        sampling = self.steps >= self.burn_in
        for i in range(self.steps % 2, R - 1, 2):
            with np.errstate(invalid="ignore", over="ignore"):
                log_ratio = (beta[i] - beta[i + 1]) * (energy[i] - energy[i + 1])
                alpha = np.where(np.isnan(log_ratio), 0.0, np.exp(np.minimum(log_ratio, 0.0)))
            accept = uniform[i] < alpha
            (self.kept if sampling else self.round).add(i, alpha)
            if sampling:
                self.accepted_after_burn_in[i] += int(np.sum(accept))
            order[i, accept], order[i + 1, accept] = order[i + 1, accept], order[i, accept]
        self._count_round_trips(order, sampling)
        self.steps += 1
        ladder_changed = self.steps in self.rounds and self._adapt()
        if not (order != np.arange(R * C).reshape(R, C)).any() and not ladder_changed:
            return state
        flat = order.reshape(-1)
        index = bk.asarray(flat, "int64")
        new = dict(state)
        for name in self.latent_names:
            if state[name].shape[0] == self.size:
                new[name] = bk.ops.take(state[name], index, axis=0)
        if self.runner is not None:
            self.runner.reorder_chains(flat, new)
        return new

    def _count_round_trips(self, order: np.ndarray, sampling: bool) -> None:
        """A round trip: a state that reached the hottest replica and then came back to T_1."""
        self.label = self.label.reshape(-1)[order.reshape(-1)].reshape(order.shape)
        self.been_top[self.label[-1]] = True
        back = self.been_top[self.label[0]]
        if sampling:
            self.round_trips += int(np.sum(back))
        self.been_top[self.label[0]] = False

    def _adapt(self) -> bool:
        """At the end of an adaptation round: the equal-rejection ladder from its swaps."""
        acceptance = self.round.mean()
        self.round = _SwapTally(self.replicas - 1)
        if np.isnan(acceptance).any():
            return False
        self.set_ladder(equalised_ladder(self.ladder, 1.0 - acceptance))
        return True

    def info(self) -> dict:
        """The final ladder (and the first), the mean swap acceptance probability of each
        neighbouring pair after burn-in and the swaps it accepted, and the round trips
        (a state going from T_1 to the hottest replica and back) after burn-in."""
        acceptance = self.kept.mean()
        return {"replicas": self.replicas, "temperatures": self.temperatures().tolist(),
                "initial_temperatures": (self.base * self.initial).tolist(), "adapted": bool(self.rounds),
                "swap_acceptance": acceptance.tolist(),
                "swaps_accepted": self.accepted_after_burn_in.astype(int).tolist(), "round_trips": self.round_trips}

    def describe(self) -> str:
        temps = self.temperatures()
        how = ("ladder adapted in the first 3/4 of burn-in toward equal swap acceptance" if self.rounds
               else "fixed ladder")
        return (f"replica exchange: {self.replicas} replicas of each chain at T from {temps[0]:.3g} to "
                f"{temps[-1]:.3g} ({how}); neighbours propose swaps after every step (even/odd pairs in "
                f"turn); draws kept at T = {temps[0]:.3g}")


class _TemperedModel:
    """The model as the kernels of a tempered run see it: its params carry the chains'
    inverse temperatures (the dict the swap step writes a new ladder into)."""

    def __init__(self, model, params: dict):
        self._model = model
        self.params = params

    def __getattr__(self, name):
        return getattr(self._model, name)


def tempered_steppers(model, plan, state: dict, exchange: ReplicaExchange, *, burn_in: int,
                      step_size: float | None = None):
    """`plan_steppers` for a tempered run: the kernels at the chains' own temperatures (the
    Gibbs sweep, cluster updates, the exact block and the continuous runner read them from
    the params), then the swap step."""
    tempered = _TemperedModel(model, exchange.params)
    steps = []
    discrete = plan.block("discrete")
    if discrete is not None and discrete.method in ("gibbs",) + CLUSTER_METHODS:
        if discrete.method in CLUSTER_METHODS:   # bonds and cluster energies at each chain's temperature
            steps.append(ClusterStepper(tempered, discrete.groups, discrete.method, 1.0, state))
        blocks = gibbs_blocks(model.graph, groups=set(discrete.groups))
        steps.append(jitted_gibbs_sweep(tempered, blocks, state, 1.0))
    elif discrete is not None:   # an exact block: its tables scaled per chain (exact/program.py)
        from ebmlang.inference.exact.block import ExactBlockStepper

        steps.append(ExactBlockStepper(tempered, discrete.groups, 1.0))
    steppers = PlanSteppers(steps)
    continuous = plan.block("continuous")
    if continuous is not None:
        runner = ContinuousRunner(tempered, continuous.method, continuous.groups, state, 1.0, adapt_steps=burn_in,
                                  step_size=step_size, per_chain_step_size=True)
        steppers.runner = exchange.runner = runner

        def continuous_step(key, state):
            new, accept = runner.step(key, state)
            if accept is not None:
                steppers.acceptance_trace.append(accept)
            return new

        steps.append(continuous_step)
    steps.append(exchange)
    return steppers


def sample_tempered(model, *, tempering, chains: int, steps: int, observed=None, method=None,
                    temperature: float = 1.0, burn_in: int | None = None, thin: int = 1, seed: int = 0, init=None,
                    progress: bool = True, step_size: float | None = None):
    """`run.sample_model` with replica exchange: `tempering` replicas of each of `chains`
    chains (checked by `as_tempering`), the T_1 ones recorded."""
    check_whole_number("seed", seed, 0)
    tempering = as_tempering(tempering)
    request = check_sample_request(model, chains=chains, steps=steps, observed=observed, method=method,
                                   temperature=temperature, burn_in=burn_in, thin=thin)
    graph, bk = model.graph, model.backend
    replicas = tempering.replicas
    size = replicas * chains
    check_gibbs_budget(model, request.latent_names, size)
    observed = {k: _tiled(v, chains, replicas) for k, v in request.observed.items()}
    start = initial_state(model, size, observed, _tiled_init(graph, init, chains, replicas),
                          np.random.default_rng(seed))
    state = {k: bk.asarray(v) for k, v in start.items()}
    exchange = ReplicaExchange(model, chains, tempering, temperature, request.burn_in, request.latent_names,
                               dict(model.params))
    steppers = tempered_steppers(model, request.plan, state, exchange, burn_in=request.burn_in, step_size=step_size)
    plan = dataclasses.replace(request.plan, tempering=exchange.describe())
    label = f"sampling {graph.name} ({', '.join(b.method for b in plan.blocks)}, {replicas} replicas)"
    state, out, energy = record_chains(model, steppers.steps, state, request.latent_names, seed=seed,
                                       steps=steps, burn_in=request.burn_in, thin=request.thin,
                                       progress=progress, label=label, keep=chains)
    _check_finite(model, {k: v[:chains] for k, v in state.items() if k in request.observed}, out, energy)
    acceptance = steppers.mean_acceptance(request.burn_in)
    _check_not_frozen(model, state, energy, acceptance)
    info = request.info(temperature, seed)
    info.update(steppers.runner_info())
    info["tempering"] = exchange.info()
    if steppers.runner is not None:
        # Per chain: the recorded (T_1) chains; divergence counts cover every replica.
        per_replica = steppers.runner.step_sizes().reshape(replicas, chains)
        info["tempering"]["step_size"] = np.exp(np.mean(np.log(per_replica), axis=1)).tolist()
        info["step_size"] = info["tempering"]["step_size"][0]
        for name in ("step_size_per_chain", "divergences_per_chain"):
            if name in info:
                info[name] = list(info[name])[:chains]
    return Samples(out, energy, plan, acceptance, info)


def _tiled(value: np.ndarray, chains: int, replicas: int) -> np.ndarray:
    """Values given per chain ([chains, ...]) repeated for every replica; a batch of 1 as is."""
    return np.concatenate([value] * replicas) if value.shape[0] == chains and value.shape[0] != 1 else value


def _tiled_init(graph, init, chains: int, replicas: int):
    """`init` with a start per chain repeated for every replica of that chain."""
    if not isinstance(init, dict):
        return init
    tiled = {}
    for name, value in init.items():
        var = graph.variables.get(name)
        tiled[name] = value if var is None else _tiled(
            check_values(var, value, source=graph.source, what="initial value"), chains, replicas)
    return tiled
