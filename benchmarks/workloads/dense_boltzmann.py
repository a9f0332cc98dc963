"""Workload 6: Gibbs sweeps of a fully connected Boltzmann machine (examples/boltzmann.ebm).

Every unit shares a factor with every other, so a colouring has one unit per colour: the
sampler has to scan the units one at a time. ebmlang's plan does that (a sequential scan,
one row of the couplings times the state per unit); the hand-written loops are the
textbook sweep with J = triu(W, 1) + its transpose built once. All contenders start from
the same spins with the same W and b; the random streams differ.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from benchmarks import harness
from benchmarks.harness import Contender, Headline, Row, measure, to_numpy
from benchmarks.kernels import boltzmann as kernels

TITLE = "Fully connected Boltzmann machine: sequential Gibbs sweeps"
ORDER = 6
HEADLINE = Headline(metric="sweeps/s", higher_is_better=True, baseline="torch (hand-written)")

CHAINS = 32
WEIGHT_SCALE = 0.5  # W_ij ~ normal(0, WEIGHT_SCALE / sqrt(N)): a spin glass near its transition
SEED = 0


@dataclass(frozen=True)
class BoltzmannProblem:
    units: int
    chains: int
    sweeps: int
    weights: np.ndarray  # [N, N], only i < j used
    bias: np.ndarray
    spins: np.ndarray  # [chains, N] of +-1
    seed: int


def sizes(smoke: bool) -> tuple[int, ...]:
    return (24,) if smoke else (200, 1000)


def sweeps(smoke: bool, units: int) -> int:
    # Enough for JAX's runs to take tens of milliseconds: a 2 ms run times unsteadily.
    return 2 if smoke else max(4, 40000 // units)


def make_problem(units: int, smoke: bool) -> BoltzmannProblem:
    rng = np.random.default_rng(SEED)
    weights = rng.normal(0.0, WEIGHT_SCALE / np.sqrt(units), (units, units))
    bias = rng.normal(0.0, 0.1, units)
    spins = rng.choice([-1.0, 1.0], (CHAINS, units))
    return BoltzmannProblem(units, CHAINS, sweeps(smoke, units), weights, bias, spins, SEED)


def describe(smoke: bool) -> str:
    return (
        f"p(s) ∝ exp(Σ_{{i<j}} W_ij s_i s_j + Σ_i b_i s_i), s ∈ {{-1, +1}}^N, N ∈ "
        f"{{{', '.join(map(str, sizes(smoke)))}}}, W_ij ~ N(0, {WEIGHT_SCALE}/√N), b_i ~ N(0, 0.1), "
        f"{CHAINS} chains from the same random spins. One sweep updates every unit once, in order, "
        "from its exact conditional. Hand-written: torch (a Python loop over units, eager) and JAX "
        "(`lax.fori_loop` over units inside a jitted `fori_loop` over sweeps), both with the "
        "symmetric couplings built once before the loop. ebmlang: examples/boltzmann.ebm at "
        "size N, sampled by its plan (sequential scan); torch eager, and JAX with every sweep "
        "inside one jitted `fori_loop`. Setup = build + compile + a 1-sweep warm-up. Figures: "
        "sweeps/s, unit updates/s, and the mean energy per unit at the end, averaged over chains "
        "(± one standard error) -- equal within noise when the samplers agree."
    )


# --------------------------------------------------------------------------
# Contenders


def prepare_torch(problem: BoltzmannProblem) -> Callable[[int], Any]:
    import torch

    device = harness.DEVICE
    coupling = torch.as_tensor(kernels.couplings(problem.weights), dtype=torch.float32, device=device)
    bias = torch.as_tensor(problem.bias, dtype=torch.float32, device=device)
    spins = torch.as_tensor(problem.spins, dtype=torch.float32, device=device)
    run = kernels.torch_sweeps(coupling, bias)

    def sample(steps: int):
        return run(torch.Generator(device=device).manual_seed(problem.seed), spins, steps)

    return sample


def prepare_jax(problem: BoltzmannProblem) -> Callable[[int], Any]:
    import jax
    import jax.numpy as jnp

    coupling = jnp.asarray(kernels.couplings(problem.weights), jnp.float32)
    run = kernels.jax_sweeps(coupling, jnp.asarray(problem.bias, jnp.float32))
    spins = jnp.asarray(problem.spins, jnp.float32)
    return lambda steps: run(jax.random.key(problem.seed), spins, steps)


def hand_written_contenders() -> list[Contender[BoltzmannProblem]]:
    return [
        Contender("torch (hand-written)", prepare_torch, requires=("torch",)),
        Contender("JAX (hand-written)", prepare_jax, requires=("jax",)),
    ]


def ebmlang_sampler(problem: BoltzmannProblem, backend: str):
    """examples/boltzmann.ebm at size N with the problem's W and b, and its plan's sweep."""
    from ebmlang.backends import get_backend
    from ebmlang.cli.showcase import load_example
    from ebmlang.inference.gibbs import build_gibbs_sweep, gibbs_blocks

    model = load_example("boltzmann.ebm", get_backend(backend, device=harness.DEVICE), N=problem.units)
    model.set_params(W=problem.weights, b=problem.bias)
    sweep = build_gibbs_sweep(model.compiled, gibbs_blocks(model.graph))
    if sweep.scanned_groups != ("s",):
        raise RuntimeError("the plan did not scan the dense group")
    return model, sweep


def prepare_ebmlang_torch(problem: BoltzmannProblem) -> Callable[[int], Any]:
    model, sweep = ebmlang_sampler(problem, "torch")
    backend, params = model.backend, model.params
    step = backend.jit_step(sweep.draw, sweep.move)
    spins = backend.asarray(problem.spins)

    def run(sweeps_: int):
        prepared = sweep.prepare(params)  # the couplings, once per run (fixed parameters)
        key, carry = backend.key(problem.seed), sweep.init({"s": spins})
        for _ in range(sweeps_):
            key, sweep_key = backend.split(key, 2)
            carry = step(sweep_key, carry, params, prepared)
        return sweep.finish(carry)["s"]

    return run


def prepare_ebmlang_jax(problem: BoltzmannProblem) -> Callable[[int], Any]:
    import jax

    model, sweep = ebmlang_sampler(problem, "jax")
    params, spins = model.params, model.backend.asarray(problem.spins)

    @jax.jit
    def run(key, start, sweeps_):
        prepared = sweep.prepare(params)

        def body(t, carry):
            return sweep.step(jax.random.fold_in(key, t), carry, params, prepared)

        return sweep.finish(jax.lax.fori_loop(0, sweeps_, body, sweep.init({"s": start})))["s"]

    return lambda steps: run(jax.random.key(problem.seed), spins, steps)


def ebmlang_contenders() -> list[Contender[BoltzmannProblem]]:
    """ebmlang's plan on examples/boltzmann.ebm: `prepare(problem) -> run(sweeps) -> spins
    [chains, N]`, from `problem.spins` with `problem.weights` and `problem.bias`."""
    return [
        Contender("ebmlang (torch)", prepare_ebmlang_torch, requires=("ebmlang", "torch")),
        Contender("ebmlang (jax)", prepare_ebmlang_jax, requires=("ebmlang", "jax")),
    ]


def contenders() -> list[Contender[BoltzmannProblem]]:
    return hand_written_contenders() + ebmlang_contenders()


# --------------------------------------------------------------------------
# Measuring


def summarise(problem: BoltzmannProblem) -> Callable[[Any, float], Mapping[str, float]]:
    upper = np.triu(problem.weights, 1)

    def figures(output: Any, seconds: float) -> dict[str, float]:
        spins = to_numpy(output).astype(np.float64).reshape(problem.chains, problem.units)
        energy = (-np.einsum("ci,ij,cj->c", spins, upper, spins) - spins @ problem.bias) / problem.units
        return {
            "sweeps/s": problem.sweeps / seconds,
            "Mupdates/s": problem.sweeps * problem.units * problem.chains / seconds / 1e6,
            "E/unit": float(energy.mean()),
            "E/unit ±": float(energy.std(ddof=1) / np.sqrt(len(energy))),
        }

    return figures


def run(smoke: bool) -> list[Row]:
    rows = []
    for units in sizes(smoke):
        problem = make_problem(units, smoke)
        for contender in contenders():
            rows.append(measure("dense_boltzmann", f"N={units}", contender, problem, steps=problem.sweeps,
                                warmup_steps=1, summarise=summarise(problem)))
    return rows


def cross_check(rows: list[Row]) -> list[str]:
    """The largest gap in final energy between contenders, in standard errors, per case."""
    notes = []
    for case in dict.fromkeys(r.case for r in rows):
        found = [r for r in rows if r.case == case and r.ok]
        gaps = [(abs(a.metrics["E/unit"] - b.metrics["E/unit"])
                 / np.hypot(a.metrics["E/unit ±"], b.metrics["E/unit ±"]), a.contender, b.contender)
                for n, a in enumerate(found) for b in found[n + 1:]]
        if gaps:
            gap, first, second = max(gaps)
            notes.append(f"{case}: E/unit largest gap {gap:.1f} se ({first} vs {second}) -- gaps above ~3.5 se "
                         "would point at a wrong sampler.")
    return notes
