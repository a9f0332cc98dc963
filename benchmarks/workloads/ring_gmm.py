"""Workload 2: a ring of 8 Gaussians sampled with ULA and MALA.

All contenders start 4096 chains from the same draw x0 ~ N(0, 3^2 I) and take the same
number of steps of the same size. Figures: chain-steps per second, mode occupancy (the
fraction of final samples nearest each mode; min and max over modes, 1/8 when balanced)
and the mean squared distance to the nearest mode, whose exact value is known: 2 sigma^2
under the target (MALA) and `ula_stationary_msd` under ULA's biased stationary law.
Langevin cannot cross between modes 6 sigma apart in this many steps, so occupancy
measures how evenly the chains settled from the broad start, not mixing.
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
from benchmarks.kernels import langevin as kernels

TITLE = "Ring of 8 Gaussians, Langevin (ULA / MALA)"
ORDER = 2
HEADLINE = Headline(metric="M chain-steps/s", higher_is_better=True, baseline="torch (hand-written)")

MODES = 8
RADIUS = 4.0
SIGMA = 0.5
STEP_SIZE = 0.05
CHAINS = 4096
INIT_SCALE = 3.0
SEED = 0
WARMUP_STEPS = 2
METHODS = ("ULA", "MALA")


@dataclass(frozen=True)
class RingProblem:
    """One sampler (`method` ULA or MALA) on the ring, from the shared start x0 [chains, 2]."""

    method: str
    chains: int
    steps: int
    step_size: float
    sigma: float
    means: np.ndarray
    seed: int
    x0: np.ndarray

    @property
    def adjusted(self) -> bool:
        return self.method == "MALA"


def steps(smoke: bool) -> int:
    return 20 if smoke else 1000


def make_problem(method: str, smoke: bool) -> RingProblem:
    rng = np.random.default_rng(SEED)
    return RingProblem(
        method=method,
        chains=CHAINS,
        steps=steps(smoke),
        step_size=STEP_SIZE,
        sigma=SIGMA,
        means=kernels.ring_means(MODES, RADIUS),
        seed=SEED,
        x0=(INIT_SCALE * rng.standard_normal((CHAINS, 2))).astype(np.float32),
    )


def describe(smoke: bool) -> str:
    return (
        f"p(x) ∝ Σ_k N(x; μ_k, σ²I), {MODES} modes on a circle of radius {RADIUS:g}, σ = {SIGMA:g}; "
        f"{CHAINS} chains from the same x0 ~ N(0, {INIT_SCALE:g}²I) (seed {SEED}), {steps(smoke)} steps "
        f"of size ε = {STEP_SIZE:g} (x' = x + ε∇log p + √(2ε)ξ), float32. Setup = build + compile + "
        f"{WARMUP_STEPS} warm-up steps. Figures: chains·steps / run time; occupancy = fraction of "
        "final samples nearest each mode (min, max; 1/8 = 0.125 when balanced); msd = mean squared "
        f"distance to the nearest mode (exact: {2 * SIGMA**2:g} under the target, "
        f"{kernels.ula_stationary_msd(SIGMA, STEP_SIZE):.4f} under ULA's stationary law); accept = "
        "MALA's acceptance rate. Hand-written kernels use the closed-form score (the torch one "
        "eagerly); blackjax differentiates the log density (ULA = `blackjax.sgld` with the exact "
        "gradient); ebmlang differentiates the model's energy (torch: autograd when eager; "
        "torch.func inside the torch.compile'd step with compile=True, noise drawn eagerly)."
    )


# --------------------------------------------------------------------------
# Contenders


def prepare_torch(problem: RingProblem) -> Callable[[int], Any]:
    import torch

    x0, means = torch.from_numpy(problem.x0), torch.from_numpy(problem.means)
    return lambda n: kernels.torch_langevin(
        x0, means, problem.sigma, problem.step_size, n, problem.seed, problem.adjusted
    )


def prepare_jax(problem: RingProblem) -> Callable[[int], Any]:
    import jax
    import jax.numpy as jnp

    run = kernels.jax_langevin_fn(problem.adjusted)
    key, x0, means = jax.random.key(problem.seed), jnp.asarray(problem.x0), jnp.asarray(problem.means)
    sigma, step_size = jnp.float32(problem.sigma), jnp.float32(problem.step_size)
    return lambda n: run(key, x0, means, sigma, step_size, n)


def prepare_blackjax(problem: RingProblem) -> Callable[[int], Any]:
    import jax
    import jax.numpy as jnp

    from benchmarks.peers.blackjax_langevin import blackjax_langevin_fn

    run = blackjax_langevin_fn(problem.means, problem.sigma, problem.step_size, problem.adjusted)
    key, x0 = jax.random.key(problem.seed), jnp.asarray(problem.x0)
    return lambda n: run(key, x0, n)


def hand_written_contenders() -> list[Contender[RingProblem]]:
    return [
        Contender("torch (hand-written)", prepare_torch, requires=("torch",)),
        Contender("JAX (hand-written)", prepare_jax, requires=("jax",)),
    ]


def peer_contenders() -> list[Contender[RingProblem]]:
    return [Contender("blackjax", prepare_blackjax, requires=("jax", "blackjax"))]


def ebmlang_potential(problem: RingProblem, backend: Any):
    """(model, kernel, initial kernel state) for examples/ring.ebm with the problem's sigma.

    The model's energy is -log p, so ebmlang's E-gradient step x - eps ∇E + sqrt(2 eps) ξ
    is the hand-written x + eps ∇log p + sqrt(2 eps) ξ. MALA's step-size adaptation is
    off (num_warmup = 0): every contender runs the fixed `problem.step_size`.
    """
    from ebmlang.cli.showcase import load_example
    from ebmlang.inference import langevin
    from ebmlang.inference.potential import ModelPotential

    modes, radius = len(problem.means), float(np.hypot(*problem.means[0]))
    model = load_example("ring.ebm", backend, K=modes, R=radius)
    model.set_params(sigma=problem.sigma)
    bk = model.backend
    potential = ModelPotential(model.compiled, model.params, {}, ("x",))
    if problem.adjusted:
        config = langevin.MALAConfig(step_size=problem.step_size, num_warmup=0)
        init, build = langevin.mala_init, langevin.build_mala_kernel
    else:
        config = langevin.ULAConfig(step_size=problem.step_size)
        init, build = langevin.ula_init, langevin.build_ula_kernel
    start = init(bk, bk.asarray(problem.x0), potential, config)
    return model, potential, build(bk, config), start


def prepare_ebmlang_torch(problem: RingProblem, compile: bool = False) -> Callable[[int], Any]:
    import torch

    from ebmlang.backends import get_backend

    model, potential, kernel, start = ebmlang_potential(problem, get_backend("torch", compile=compile))
    bk = model.backend
    # Eager: the kernel as is. compile=True: torch.compile of the kernel's deterministic
    # move (the random draws stay eager; `Backend.jit_step`).
    step = bk.jit_step(kernel.draw, lambda state, draws: kernel.move(state, draws, potential))

    def run(steps: int) -> tuple[Any, Any]:
        key, state = bk.key(problem.seed), start
        accepted = torch.zeros((), dtype=torch.float64)
        for _ in range(steps):
            key, step_key = bk.split(key, 2)
            state, info = step(step_key, state)
            if problem.adjusted:
                accepted += info.is_accepted.sum()
        rate = accepted / (problem.chains * steps) if problem.adjusted else torch.ones(())
        return state.position, rate

    return run


def prepare_ebmlang_jax(problem: RingProblem) -> Callable[[int], Any]:
    import jax
    import jax.numpy as jnp

    model, potential, kernel, start = ebmlang_potential(problem, "jax")

    @jax.jit
    def steps_from(key: Any, start: Any, steps: Any) -> tuple[Any, Any]:
        # `steps` is traced: one compile (in the warm-up) serves the timed run.
        def step(_: Any, carry: tuple[Any, Any, Any]) -> tuple[Any, Any, Any]:
            key, state, accepted = carry
            key, step_key = jax.random.split(key)
            state, info = kernel(step_key, state, potential)
            if problem.adjusted:
                accepted = accepted + jnp.sum(info.is_accepted)
            return key, state, accepted

        _, state, accepted = jax.lax.fori_loop(0, steps, step, (key, start, jnp.float32(0.0)))
        rate = accepted / (problem.chains * steps) if problem.adjusted else jnp.float32(1.0)
        return state.position, rate

    key = jax.random.key(problem.seed)
    return lambda steps: steps_from(key, start, steps)


def ebmlang_contenders() -> list[Contender[RingProblem]]:
    """examples/ring.ebm through ebmlang's ULA / MALA kernels on its `ModelPotential`.

    `prepare(problem) -> run(steps) -> (positions [chains, 2], acceptance rate)`, starting
    from `problem.x0` with `problem.step_size` every call. Torch steps the kernel from a
    Python loop; JAX runs every step in one jitted `lax.fori_loop`.
    """
    return [
        Contender("ebmlang (torch)", prepare_ebmlang_torch, requires=("ebmlang", "torch")),
        Contender(
            "ebmlang (torch, compile=True)", partial(prepare_ebmlang_torch, compile=True),
            requires=("ebmlang", "torch"),
        ),
        Contender("ebmlang (jax)", prepare_ebmlang_jax, requires=("ebmlang", "jax")),
    ]


def contenders() -> list[Contender[RingProblem]]:
    return hand_written_contenders() + peer_contenders() + ebmlang_contenders()


# --------------------------------------------------------------------------
# Measuring


def summarise(problem: RingProblem) -> Callable[[Any, float], Mapping[str, float]]:
    def figures(output: Any, seconds: float) -> dict[str, float]:
        positions, acceptance = output
        x = to_numpy(positions).astype(np.float64).reshape(problem.chains, 2)
        if not np.all(np.isfinite(x)):
            raise ValueError("a contender returned non-finite positions")
        nearest, squared = kernels.nearest_mode(x, problem.means)
        occupancy = np.bincount(nearest, minlength=len(problem.means)) / problem.chains
        result = {
            "M chain-steps/s": problem.chains * problem.steps / seconds / 1e6,
            "occ min": float(occupancy.min()),
            "occ max": float(occupancy.max()),
            "msd": float(squared.mean()),
            "msd ±": float(squared.std(ddof=1) / math.sqrt(problem.chains)),
        }
        if problem.adjusted:
            result["accept"] = float(to_numpy(acceptance))
        return result

    return figures


def run(smoke: bool) -> list[Row]:
    rows = []
    for method in METHODS:
        problem = make_problem(method, smoke)
        for contender in contenders():
            rows.append(
                measure(
                    "ring_gmm", method, contender, problem,
                    steps=problem.steps, warmup_steps=WARMUP_STEPS, summarise=summarise(problem),
                )
            )
    return rows


def expected_msd(method: str) -> float:
    return kernels.ula_stationary_msd(SIGMA, STEP_SIZE) if method == "ULA" else 2.0 * SIGMA**2


def cross_check(rows: list[Row]) -> list[str]:
    """Per method: each contender's msd against the exact value, in standard errors."""
    notes = []
    for method, case_rows in itertools.groupby(rows, key=lambda row: row.case):
        measured = [row for row in case_rows if row.ok]
        if not measured:
            continue
        exact = expected_msd(method)
        gaps = ", ".join(
            f"{row.contender} {(row.metrics['msd'] - exact) / max(row.metrics['msd ±'], 1e-300):+.1f} se"
            for row in measured
        )
        notes.append(
            f"{method}: msd vs exact {exact:.4f}: {gaps} (after the full step count, |gap| above "
            "~3.5 se would point at a wrong sampler; at smoke step counts the chains have not settled)."
        )
    return notes
