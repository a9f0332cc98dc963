"""Workload: MALA and HMC steps on a 1,000-dimensional Gaussian Markov random field.

The chain GMRF of benchmarks/models/gmrf.ebm (precision Q = alpha I + beta L). Every
contender starts the same chains from the same exact draw x0 ~ N(0, Q^-1) and takes the
same number of steps of the same fixed size (no adaptation; HMC: the same number of
leapfrog steps, no jitter, identity mass), so the figure is the time of one step of the
same maths. Because the chains start in the stationary law, the mean of x_i^2 and of
x_i x_{i+1} over the final states must match the closed-form covariance at any step count.
"""
from __future__ import annotations

import itertools
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.harness import Contender, Headline, Row, block_until_ready, measure, to_numpy
from benchmarks.kernels import gmrf as kernels

TITLE = "Gaussian MRF (1,000-d chain), MALA and HMC step time"
ORDER = 3
HEADLINE = Headline(metric="ms/step", higher_is_better=False, baseline="torch (hand-written)")

MODEL = Path(__file__).resolve().parents[1] / "models" / "gmrf.ebm"
SIZE = 1000
ALPHA = 0.1
BETA = 1.0
CHAINS = 16
SEED = 0
WARMUP_STEPS = 3
# Fixed steps: MALA accepts about 0.6 of proposals at 0.04 (dimension 1000, largest
# precision eigenvalue 4.1); HMC about 0.9 at 0.1 x 10 leapfrog steps.
MALA_STEP = 0.04
HMC_STEP = 0.1
LEAPFROG = 10
CASES = ("MALA", "HMC")


@dataclass(frozen=True)
class GMRFProblem:
    method: str
    chains: int
    steps: int
    step_size: float
    leapfrog: int | None
    seed: int
    x0: np.ndarray


def steps(method: str, smoke: bool) -> int:
    if smoke:
        return 3
    # Long enough (about 0.3 s for the hand-written torch kernel) that best-of-3 is steady.
    return 1000 if method == "MALA" else 150


def make_problem(method: str, smoke: bool) -> GMRFProblem:
    hmc = method == "HMC"
    return GMRFProblem(
        method=method, chains=CHAINS, steps=steps(method, smoke),
        step_size=HMC_STEP if hmc else MALA_STEP, leapfrog=LEAPFROG if hmc else None, seed=SEED,
        x0=kernels.exact_draws(SIZE, ALPHA, BETA, CHAINS, SEED),
    )


def describe(smoke: bool) -> str:
    return (
        f"E(x) = α/2 Σ x_i² + β/2 Σ (x_i − x_(i+1))² on a chain of N = {SIZE} sites (α = {ALPHA:g}, "
        f"β = {BETA:g}; benchmarks/models/gmrf.ebm), {CHAINS} chains from one exact draw x0 ~ N(0, Q⁻¹) "
        f"(seed {SEED}), float32 (torch threads: see Machine; run with --torch-threads 1 and "
        f"OMP_NUM_THREADS=1). MALA: {steps('MALA', smoke)} steps of fixed size "
        f"{MALA_STEP:g}; HMC: {steps('HMC', smoke)} trajectories of {LEAPFROG} leapfrog steps of fixed "
        f"size {HMC_STEP:g}, identity mass, no jitter. Adaptation is off everywhere (ebmlang: "
        "num_warmup = 0), so every contender times the same maths. Setup = build + compile + "
        f"{WARMUP_STEPS} warm-up steps. Figures: run time / steps (ms per step of all chains); "
        "accept = acceptance rate; ⟨x²⟩ and ⟨x_i x_(i+1)⟩ = means over the final states against the "
        "exact covariance (the chains start stationary, so these hold at any step count); CPU ms/step = "
        "process CPU time per step (steadier than wall time on a shared machine); load 1m = "
        "the 1-minute load average when the row finished (the machine is shared). Hand-written "
        "kernels differentiate the energy (torch: autograd, eager; JAX: jax.vjp); blackjax = "
        "`blackjax.mala` / `blackjax.hmc` vmapped over chains; ebmlang differentiates the model's "
        "energy through its kernels (`build_mala_kernel`, `build_hmc_kernel`) stepped by "
        "`Backend.fused_step` as `Model.sample` does: eager torch records the deterministic move "
        "once its eager calls have taken a second and then replays its operations (setup steps "
        "the chains until that has happened: the figure is a long run's steady state), "
        "compile=True runs it under torch.compile; draws eager."
    )


# --------------------------------------------------------------------------
# Contenders


def prepare_torch(problem: GMRFProblem) -> Callable[[int], Any]:
    import torch

    x0 = torch.from_numpy(problem.x0)
    return lambda n: kernels.torch_sampler(x0, ALPHA, BETA, problem.step_size, n, problem.seed, problem.leapfrog)


def prepare_jax(problem: GMRFProblem) -> Callable[[int], Any]:
    import jax
    import jax.numpy as jnp

    run = kernels.jax_sampler_fn(problem.leapfrog)
    key, x0 = jax.random.key(problem.seed), jnp.asarray(problem.x0)
    scalars = (jnp.float32(ALPHA), jnp.float32(BETA), jnp.float32(problem.step_size))
    return lambda n: run(key, x0, *scalars, n)


def prepare_blackjax(problem: GMRFProblem) -> Callable[[int], Any]:
    import jax
    import jax.numpy as jnp

    from benchmarks.peers.blackjax_gmrf import blackjax_gmrf_fn

    run = blackjax_gmrf_fn(ALPHA, BETA, problem.step_size, problem.leapfrog)
    key, x0 = jax.random.key(problem.seed), jnp.asarray(problem.x0)
    return lambda n: run(key, x0, n)


def ebmlang_kernel(problem: GMRFProblem, backend: Any):
    """(model, potential, kernel, initial kernel state) for gmrf.ebm, adaptation off."""
    import ebmlang as ebm
    from ebmlang.inference import hmc, langevin
    from ebmlang.inference.potential import ModelPotential

    model = ebm.load(MODEL, backend=backend)
    model.set_params(alpha=ALPHA, beta=BETA)
    bk = model.backend
    potential = ModelPotential(model.compiled, model.params, {}, ("x",))
    if problem.leapfrog is None:
        config = langevin.MALAConfig(step_size=problem.step_size, num_warmup=0)
        init, build = langevin.mala_init, langevin.build_mala_kernel
    else:
        config = hmc.HMCConfig(step_size=problem.step_size, num_integration_steps=problem.leapfrog, num_warmup=0)
        init, build = hmc.hmc_init, hmc.build_hmc_kernel
    start = init(bk, bk.asarray(problem.x0), potential, config)
    return model, potential, build(bk, config), start


def prepare_ebmlang_torch(problem: GMRFProblem, compile: bool = False) -> Callable[[int], Any]:
    import torch

    from ebmlang.backends import get_backend

    model, potential, kernel, start = ebmlang_kernel(problem, get_backend("torch", compile=compile))
    bk = model.backend
    # As Model.sample steps a continuous kernel: `fused_step` (eager torch records the move
    # after its first calls and replays the operations; compile=True: torch.compile).
    step = bk.fused_step(kernel.draw, lambda state, draws: kernel.move(state, draws, potential))
    # Eager torch records the move after a second of eager steps: take them in setup.
    key, state, started = bk.key(problem.seed + 1), start, time.perf_counter()
    while not getattr(step, "recorded", True) and time.perf_counter() - started < 10.0:
        key, step_key = bk.split(key, 2)
        state, _ = step(step_key, state)

    def run(steps: int) -> tuple[Any, Any]:
        key, state = bk.key(problem.seed), start
        accepted = torch.zeros((), dtype=torch.float64)
        for _ in range(steps):
            key, step_key = bk.split(key, 2)
            state, info = step(step_key, state)
            accepted += info.is_accepted.sum()
        return state.position, accepted / max(problem.chains * steps, 1)

    return run


def prepare_ebmlang_jax(problem: GMRFProblem) -> Callable[[int], Any]:
    import jax
    import jax.numpy as jnp

    model, potential, kernel, start = ebmlang_kernel(problem, "jax")

    @jax.jit
    def steps_from(key: Any, start: Any, steps: Any) -> tuple[Any, Any]:
        def step(_: Any, carry: tuple[Any, Any, Any]) -> tuple[Any, Any, Any]:
            key, state, accepted = carry
            key, step_key = jax.random.split(key)
            state, info = kernel(step_key, state, potential)
            return key, state, accepted + jnp.sum(info.is_accepted)

        _, state, accepted = jax.lax.fori_loop(0, steps, step, (key, start, jnp.float32(0.0)))
        return state.position, accepted / jnp.maximum(problem.chains * steps, 1)

    key = jax.random.key(problem.seed)
    return lambda steps: steps_from(key, start, steps)


def with_cpu_time(prepare: Callable[[GMRFProblem], Callable[[int], Any]]) -> Callable[[GMRFProblem], Any]:
    """`prepare` whose run also returns the process CPU seconds it took (outputs blocked on
    inside): with one thread per process, CPU time leaves out the time spent waiting for a
    core, so on a shared machine it is the steadier of the two figures."""

    def prepared(problem: GMRFProblem) -> Callable[[int], Any]:
        run = prepare(problem)

        def timed(steps: int) -> tuple[Any, float]:
            start = time.process_time()
            output = block_until_ready(run(steps))
            return output, time.process_time() - start

        return timed

    return prepared


def contenders() -> list[Contender[GMRFProblem]]:
    return [
        Contender(c.name, with_cpu_time(c.prepare), c.requires, c.note)
        for c in hand_written_contenders() + ebmlang_contenders()
    ]


def hand_written_contenders() -> list[Contender[GMRFProblem]]:
    return [
        Contender("torch (hand-written)", prepare_torch, requires=("torch",)),
        Contender("JAX (hand-written)", prepare_jax, requires=("jax",)),
        Contender("blackjax", prepare_blackjax, requires=("jax", "blackjax")),
    ]


def ebmlang_contenders() -> list[Contender[GMRFProblem]]:
    """benchmarks/models/gmrf.ebm through `build_mala_kernel` / `build_hmc_kernel` on its
    `ModelPotential`, adaptation off. `prepare(problem) -> run(steps) -> (positions
    [chains, N], acceptance rate)`, from `problem.x0` every call. Torch steps the kernel
    from a Python loop (acceptances summed on the device, read once at the end); JAX runs
    every step in one jitted `lax.fori_loop`."""
    return [
        Contender("ebmlang (torch)", prepare_ebmlang_torch, requires=("ebmlang", "torch")),
        Contender("ebmlang (torch, compile=True)", partial(prepare_ebmlang_torch, compile=True),
                  requires=("ebmlang", "torch")),
        Contender("ebmlang (jax)", prepare_ebmlang_jax, requires=("ebmlang", "jax")),
    ]


# --------------------------------------------------------------------------
# Measuring


def summarise(problem: GMRFProblem) -> Callable[[Any, float], Mapping[str, float]]:
    cov = kernels.covariance(SIZE, ALPHA, BETA)

    def figures(output: Any, seconds: float) -> dict[str, float]:
        (positions, acceptance), cpu_seconds = output
        x = to_numpy(positions).astype(np.float64).reshape(problem.chains, SIZE)
        if not np.all(np.isfinite(x)):
            raise ValueError("a contender returned non-finite positions")
        square, neighbour = (x * x).mean(0), (x[:, :-1] * x[:, 1:]).mean(0)
        return {
            "ms/step": 1e3 * seconds / problem.steps,
            "CPU ms/step": 1e3 * cpu_seconds / problem.steps,
            "accept": float(to_numpy(acceptance)),
            "⟨x²⟩": float(square.mean()),
            "⟨x²⟩ exact": float(np.diag(cov).mean()),
            "⟨x_i x_(i+1)⟩": float(neighbour.mean()),
            "⟨x_i x_(i+1)⟩ exact": float(np.diag(cov, 1).mean()),
            "load 1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else math.nan,
        }

    return figures


def run(smoke: bool) -> list[Row]:
    rows = []
    for method in CASES:
        problem = make_problem(method, smoke)
        for contender in contenders():
            rows.append(measure("gmrf", method, contender, problem, steps=problem.steps,
                                warmup_steps=WARMUP_STEPS, summarise=summarise(problem)))
    return rows


def cross_check(rows: list[Row]) -> list[str]:
    """Per method: ebmlang's step time against the hand-written torch kernel's, and each
    contender's ⟨x²⟩ against the exact value (relative)."""
    notes = []
    for method, case_rows in itertools.groupby(rows, key=lambda row: row.case):
        measured = {row.contender: row for row in case_rows if row.ok}
        if not measured:
            continue
        base = measured.get(HEADLINE.baseline)
        if base is not None:
            slow = ", ".join(
                f"{name} {row.metrics['ms/step'] / base.metrics['ms/step']:.2f}× wall, "
                f"{row.metrics['CPU ms/step'] / base.metrics['CPU ms/step']:.2f}× CPU"
                for name, row in measured.items() if name.startswith("ebmlang (torch"))
            notes.append(f"{method}: time per step against torch (hand-written): {slow} (goal: at most 1.3×).")
        gaps = ", ".join(f"{name} {row.metrics['⟨x²⟩'] / row.metrics['⟨x²⟩ exact'] - 1:+.1%}"
                         for name, row in measured.items())
        notes.append(f"{method}: ⟨x²⟩ against exact: {gaps} ({CHAINS} chains × {SIZE} correlated "
                     "coordinates: a few percent is noise; tens of percent would point at a wrong sampler).")
    return notes
