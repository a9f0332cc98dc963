"""The kernels of a sampling plan as steppers `step(key, state) -> state`.

One construction for every way of running chains: `run.sample_model` (one device) and
`distributed.jax_sharding.sample_sharded` (a device mesh) get the same Gibbs blocks and
the same continuous runner from `plan_steppers`, in the order a step applies them
(discrete sweep, then continuous step). They differ only in how the Gibbs sweep is
jitted, which the caller passes as `sweep`.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ebmlang.inference.cluster import CLUSTER_METHODS, ClusterStepper
from ebmlang.inference.continuous_runner import ContinuousRunner
from ebmlang.inference.gibbs import GibbsBlock, build_gibbs_sweep, gibbs_blocks

Stepper = Callable[[object, dict], dict]
# sweep(model, blocks, state, temperature) -> stepper; `state` is the chains' first state.
SweepBuilder = Callable[[object, list[GibbsBlock], dict, float], Stepper]


@dataclass(frozen=True)
class CarriedStepper:
    """A stepper with a carry of its own: `init(state) -> carry`, `step(key, carry) ->
    carry`, `finish(carry) -> state`. Calling it is one step on a state; a run that needs
    the state only now and then (a purely discrete plan between recorded draws) keeps the
    carry instead, e.g. a lattice packed by colour (`build_gibbs_sweep`)."""

    init: Callable[[dict], object]
    step: Callable[[object, object], object]
    finish: Callable[[object], dict]

    def __call__(self, key, state: dict) -> dict:
        return self.finish(self.step(key, self.init(state)))


def jitted_gibbs_sweep(model, blocks: list[GibbsBlock], state: dict, temperature: float) -> CarriedStepper:
    """One chromatic Gibbs sweep over `blocks`, jitted by the model's backend. (`state` is
    unused: a sharded sweep reads its shardings from it.)"""
    backend = model.backend

    def build():
        sweep = build_gibbs_sweep(model.compiled, blocks, temperature)
        return (backend.jit(sweep.init), backend.jit_step(sweep.draw, sweep.move), backend.jit(sweep.finish),
                backend.jit(sweep.prepare))

    # Once per graph and blocks: later runs reuse the jitted sweep.
    key = ("gibbs sweep", float(temperature)) + tuple((b.group, b.indices.tobytes()) for b in blocks)
    init, step, finish, prepare = model.compiled.memo(key, build)
    params = model.params
    prepared = prepare(params)  # the parameters are fixed for the run
    return CarriedStepper(init, lambda key, carry: step(key, carry, params, prepared), finish)


@dataclass
class PlanSteppers:
    """A plan's steppers in the order a step applies them, the continuous runner (None
    without a continuous block) and the mean acceptance rate of each continuous step."""

    steps: list[Stepper]
    runner: ContinuousRunner | None = None
    acceptance_trace: list = field(default_factory=list)

    def mean_acceptance(self, burn_in: int) -> dict[str, float]:
        """{continuous method: mean acceptance rate after burn-in}, {} for a kernel without
        a Metropolis test (ULA) or a plan without a continuous block."""
        if not self.acceptance_trace:
            return {}
        return {self.runner.method: float(np.mean(np.stack(self.acceptance_trace)[burn_in:]))}

    def runner_info(self) -> dict:
        """The continuous runner's divergences and step size ({} without one)."""
        return self.runner.info() if self.runner is not None else {}


def plan_steppers(model, plan, state: dict, temperature: float, *, burn_in: int,
                  step_size: float | None = None, sweep: SweepBuilder = jitted_gibbs_sweep) -> PlanSteppers:
    """The steppers of `plan` for `model`, starting from `state`: a Gibbs sweep over the
    colour classes of the discrete block (built by `sweep`), then the continuous block's
    kernel, its step size adapted during the first `burn_in` steps."""
    steps: list[Stepper] = []
    discrete = plan.block("discrete")
    if discrete is not None and discrete.method == "exact":
        from ebmlang.inference.exact.block import ExactBlockStepper

        steps.append(ExactBlockStepper(model, discrete.groups, temperature))
    elif discrete is not None:
        graph = model.graph
        if discrete.method in CLUSTER_METHODS:   # a cluster update, then the Gibbs sweep (cluster.py)
            steps.append(ClusterStepper(model, discrete.groups, discrete.method, temperature, state))
        blocks = gibbs_blocks(graph, groups=set(discrete.groups))
        steps.append(sweep(model, blocks, state, temperature))
    continuous = plan.block("continuous")
    if continuous is None:
        return PlanSteppers(steps)
    runner = ContinuousRunner(model, continuous.method, continuous.groups, state, temperature,
                              adapt_steps=burn_in, step_size=step_size)
    steppers = PlanSteppers(steps, runner)

    def continuous_step(key, state):
        new, accept = runner.step(key, state)
        if accept is not None:
            steppers.acceptance_trace.append(accept)
        return new

    steps.append(continuous_step)
    return steppers
