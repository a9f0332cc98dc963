"""Workload 1: the periodic 2D Ising model at beta = 0.44, checkerboard block Gibbs.

Every contender starts from the same hot start (independent uniform spins), runs the
same number of sweeps on the same number of chains, and returns the final spins
[chains, L, L]; the figure is spin updates per second. Energy per site and |m| per spin
at the end are the physics cross-check: all contenders sample the same (not yet
stationary, at this sweep count) distribution, so they must agree within their
chain-to-chain standard errors.
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from benchmarks.harness import Contender, Headline, Row, measure, to_numpy
from benchmarks.kernels import ising as kernels

TITLE = "Ising 2D (periodic), block Gibbs"
ORDER = 1
HEADLINE = Headline(metric="Mupdates/s", higher_is_better=True, baseline="numpy (hand-written)")

BETA = 0.44
CHAINS = 16
SEED = 0
WARMUP_SWEEPS = 2


@dataclass(frozen=True)
class IsingProblem:
    """side L, chains, sweeps, beta, seed, and the shared hot start int8 [chains, L, L]."""

    side: int
    chains: int
    sweeps: int
    beta: float
    seed: int
    initial_spins: np.ndarray


def sizes(smoke: bool) -> tuple[int, ...]:
    return (16,) if smoke else (64, 256)


def sweeps(smoke: bool) -> int:
    return 5 if smoke else 200


def make_problem(side: int, smoke: bool) -> IsingProblem:
    return IsingProblem(
        side=side,
        chains=CHAINS,
        sweeps=sweeps(smoke),
        beta=BETA,
        seed=SEED,
        initial_spins=kernels.random_spins(CHAINS, side, SEED),
    )


def describe(smoke: bool) -> str:
    sides = ", ".join(str(side) for side in sizes(smoke))
    return (
        f"p(s) ∝ exp(β Σ⟨ij⟩ s_i s_j) on an L×L periodic lattice, β = {BETA} (just above "
        f"β_c ≈ 0.4407), L ∈ {{{sides}}}, {CHAINS} chains, {sweeps(smoke)} sweeps (one sweep = both "
        f"checkerboard colours), all contenders from the same hot start (seed {SEED}). "
        f"Setup = build + compile + a {WARMUP_SWEEPS}-sweep warm-up. Figure: chains·L²·sweeps / run "
        "time. E/site = -(1/N)Σ⟨ij⟩ s_i s_j and |m| = |mean spin| at the end, averaged over "
        "chains (± one standard error over chains). ebmlang (torch) runs eagerly; ebmlang (torch, "
        "compile=True) runs each sweep's deterministic move under torch.compile (inductor) with "
        "the uniforms drawn eagerly, so both torch rows make the same draws; the hand-written "
        "torch kernel is eager."
    )


# --------------------------------------------------------------------------
# Contenders


def prepare_numpy(problem: IsingProblem) -> Callable[[int], Any]:
    return lambda steps: kernels.numpy_sweeps(problem.initial_spins, problem.beta, steps, problem.seed)


def prepare_torch(problem: IsingProblem) -> Callable[[int], Any]:
    import torch

    spins = torch.from_numpy(problem.initial_spins)
    return lambda steps: kernels.torch_sweeps(spins, problem.beta, steps, problem.seed)


def prepare_jax(problem: IsingProblem) -> Callable[[int], Any]:
    import jax
    import jax.numpy as jnp

    run = kernels.jax_sweeps_fn()
    spins = jnp.asarray(problem.initial_spins)
    key = jax.random.key(problem.seed)
    beta = jnp.float32(problem.beta)
    return lambda steps: run(key, spins, beta, steps)


def prepare_thrml(problem: IsingProblem) -> Callable[[int], Any]:
    import jax
    import jax.numpy as jnp

    from benchmarks.peers.thrml_ising import block_states_from_spins, thrml_sampler

    run, block_sites = thrml_sampler(problem.side, problem.beta)
    blocks = [jnp.asarray(b) for b in block_states_from_spins(problem.initial_spins, block_sites)]
    keys = jax.random.split(jax.random.key(problem.seed), problem.chains)
    return lambda steps: run(keys, blocks, steps)


def hand_written_contenders() -> list[Contender[IsingProblem]]:
    return [
        Contender("numpy (hand-written)", prepare_numpy, requires=("numpy",)),
        Contender("torch (hand-written)", prepare_torch, requires=("torch",)),
        Contender("JAX (hand-written)", prepare_jax, requires=("jax",)),
    ]


def peer_contenders() -> list[Contender[IsingProblem]]:
    return [Contender("thrml", prepare_thrml, requires=("jax", "thrml"))]


def ebmlang_sampler(problem: IsingProblem, backend: Any):
    """(model, sweep, initial state) for examples/ising.ebm at L = side, J = beta.

    The library's own pieces: the model compiled from the example file with its `const L`
    overridden, the colour classes from `ebmlang.graph.structure.colouring`, and the chromatic
    block-Gibbs sweep over them (`ebmlang.inference.gibbs.build_gibbs_sweep`: pure
    init / step / finish; the lattice travels packed by colour between init and finish).
    J carries beta (E = -J Σ s_i s_j, sampled at temperature 1), exactly the hand-written
    model.
    """
    from ebmlang.cli.showcase import load_example
    from ebmlang.inference.gibbs import build_gibbs_sweep, gibbs_blocks

    model = load_example("ising.ebm", backend, L=problem.side)
    model.set_params(J=problem.beta, h=0.0)
    blocks = gibbs_blocks(model.graph)
    sweep = build_gibbs_sweep(model.compiled, blocks)
    spins = model.backend.asarray(problem.initial_spins.astype(np.float32))
    return model, sweep, spins


def prepare_ebmlang_torch(problem: IsingProblem, compile: bool = False) -> Callable[[int], Any]:
    from ebmlang.backends import get_backend

    model, sweep, spins = ebmlang_sampler(problem, get_backend("torch", compile=compile))
    backend, params = model.backend, model.params
    # Eager: the sweep as is. compile=True: torch.compile of the sweep's deterministic
    # move (the uniforms are drawn eagerly; `Backend.jit_step`).
    step = backend.jit_step(sweep.draw, sweep.move)

    def run(sweeps: int) -> Any:
        key, carry = backend.key(problem.seed), sweep.init({"s": spins})
        for _ in range(sweeps):
            key, sweep_key = backend.split(key, 2)
            carry = step(sweep_key, carry, params)
        return sweep.finish(carry)["s"]

    return run


def prepare_ebmlang_jax(problem: IsingProblem) -> Callable[[int], Any]:
    import jax

    model, sweep, spins = ebmlang_sampler(problem, "jax")

    @jax.jit
    def sweeps_from(key: Any, spins: Any, params: Any, sweeps: Any) -> Any:
        # `sweeps` is traced: one compile (in the warm-up) serves the timed run.
        def one(_: Any, loop: tuple[Any, Any]) -> tuple[Any, Any]:
            key, carry = loop
            key, sweep_key = jax.random.split(key)
            return key, sweep.step(sweep_key, carry, params)

        carry = jax.lax.fori_loop(0, sweeps, one, (key, sweep.init({"s": spins})))[1]
        return sweep.finish(carry)["s"]

    key = jax.random.key(problem.seed)
    return lambda sweeps: sweeps_from(key, spins, model.params, sweeps)


def ebmlang_contenders() -> list[Contender[IsingProblem]]:
    """examples/ising.ebm through ebmlang's chromatic block-Gibbs kernel, torch and JAX.

    `prepare(problem) -> run(sweeps) -> spins [chains, L, L]` (+-1 floats); `run` starts
    from `problem.initial_spins` every call. Torch steps the kernel from a Python loop,
    eagerly or with each sweep's move under torch.compile; JAX runs every sweep in one jitted
    `lax.fori_loop`, as the hand-written JAX kernel does.
    """
    return [
        Contender("ebmlang (torch)", prepare_ebmlang_torch, requires=("ebmlang", "torch")),
        Contender(
            "ebmlang (torch, compile=True)", partial(prepare_ebmlang_torch, compile=True),
            requires=("ebmlang", "torch"),
        ),
        Contender("ebmlang (jax)", prepare_ebmlang_jax, requires=("ebmlang", "jax")),
    ]


def contenders() -> list[Contender[IsingProblem]]:
    return hand_written_contenders() + peer_contenders() + ebmlang_contenders()


# --------------------------------------------------------------------------
# Measuring


def summarise(problem: IsingProblem) -> Callable[[Any, float], Mapping[str, float]]:
    def figures(output: Any, seconds: float) -> dict[str, float]:
        spins = to_numpy(output).reshape(problem.chains, problem.side, problem.side)
        if not np.all(np.abs(spins) == 1):
            raise ValueError("a contender returned spins other than +-1")
        energy = kernels.energy_per_site(spins)
        magnetisation = kernels.abs_magnetisation(spins)
        updates = problem.chains * problem.side**2 * problem.sweeps
        return {
            "Mupdates/s": updates / seconds / 1e6,
            "E/site": float(energy.mean()),
            "E/site ±": standard_error(energy),
            "|m|": float(magnetisation.mean()),
            "|m| ±": standard_error(magnetisation),
        }

    return figures


def standard_error(values: np.ndarray) -> float:
    return float(values.std(ddof=1) / math.sqrt(len(values)))


def run(smoke: bool) -> list[Row]:
    rows = []
    for side in sizes(smoke):
        problem = make_problem(side, smoke)
        for contender in contenders():
            rows.append(
                measure(
                    "ising", f"L={side}", contender, problem,
                    steps=problem.sweeps, warmup_steps=WARMUP_SWEEPS, summarise=summarise(problem),
                )
            )
    return rows


def gap_in_standard_errors(a: Row, b: Row, metric: str) -> float:
    difference = abs(a.metrics[metric] - b.metrics[metric])
    scale = math.hypot(a.metrics[f"{metric} ±"], b.metrics[f"{metric} ±"])
    return difference / scale if scale > 0 else (0.0 if difference == 0 else math.inf)


def cross_check(rows: list[Row]) -> list[str]:
    """Per case: the largest pairwise gap in E/site and |m|, in combined standard errors."""
    notes = []
    for case, case_rows in itertools.groupby(rows, key=lambda row: row.case):
        measured = [row for row in case_rows if row.ok]
        if len(measured) < 2:
            continue
        parts = []
        for metric in ("E/site", "|m|"):
            gap, pair = max(
                ((gap_in_standard_errors(a, b, metric), (a, b)) for a, b in itertools.combinations(measured, 2)),
                key=lambda item: item[0],
            )
            parts.append(f"{metric} largest gap {gap:.1f} se ({pair[0].contender} vs {pair[1].contender})")
        notes.append(f"{case}: " + "; ".join(parts) + " — gaps above ~3.5 se would point at a wrong sampler.")
    return notes
