"""Workload 5: what it costs to get from a model to a runnable Ising sampler, by size.

Each contender's `prepare(problem)` is the whole build: for ebmlang parse, check, lower
and compile (the lead adds it through `ebmlang_contenders`); for thrml constructing the
`IsingEBM` and `IsingSamplingProgram` and JIT-compiling the vmapped sweep; for the
hand-written JAX kernel its JIT compile; and, as the floor any lowering pays, building
the checkerboard's neighbour index arrays in numpy. Figures: build seconds, peak memory
traced by tracemalloc (Python objects and numpy arrays; XLA's own allocations are not
seen), and the peak growth of the process's resident set during the build (polled).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from benchmarks.harness import TRACE_BUDGET_S, Contender, Headline, Row, measure_build
from benchmarks.kernels import ising as kernels

TITLE = "Ising model: build / compile time and memory"
ORDER = 5
HEADLINE = Headline(metric="build s", higher_is_better=False, baseline="thrml program + jit")

CHAINS = 16
BETA = 0.44


@dataclass(frozen=True)
class CompileProblem:
    side: int
    chains: int
    beta: float


def sizes(smoke: bool) -> tuple[int, ...]:
    return (16,) if smoke else (64, 256, 1024)


def describe(smoke: bool) -> str:
    sides = ", ".join(str(side) for side in sizes(smoke))
    return (
        f"The Ising model of workload 1 (periodic, β = {BETA}, {CHAINS} chains) for L ∈ {{{sides}}}. "
        "Build = from nothing to a sampler ready to run: thrml builds its `IsingEBM` and "
        "`IsingSamplingProgram` and JIT-compiles the vmapped sweep; the hand-written JAX "
        "kernel is only JIT-compiled; the numpy row builds the checkerboard neighbour index "
        "arrays, the floor any lowering pays. JAX's caches are cleared before every build. "
        "Figures: build seconds (one build), the peak growth of the process's resident set "
        "during that build (polled every 5 ms), and peak tracemalloc memory (a second build, "
        f"made only when the first took at most {TRACE_BUDGET_S:g} s; Python objects and numpy "
        "arrays, not XLA's allocations)."
    )


# --------------------------------------------------------------------------
# Contenders


def prepare_index_arrays(problem: CompileProblem) -> Callable[[int], Any]:
    tables = kernels.neighbour_tables(problem.side)
    return lambda _steps: tables


def prepare_jax(problem: CompileProblem) -> Callable[[int], Any]:
    import jax
    import jax.numpy as jnp

    spins = jax.ShapeDtypeStruct((problem.chains, problem.side, problem.side), jnp.int8)
    compiled = kernels.jax_sweeps_fn().lower(jax.random.key(0), spins, jnp.float32(problem.beta), 1).compile()
    return lambda _steps: compiled


def prepare_thrml(problem: CompileProblem) -> Callable[[int], Any]:
    import jax
    import jax.numpy as jnp

    from benchmarks.peers.thrml_ising import thrml_sampler

    run, block_sites = thrml_sampler(problem.side, problem.beta)
    keys = jax.random.split(jax.random.key(0), problem.chains)
    blocks = [jax.ShapeDtypeStruct((problem.chains, block_sites.shape[1]), jnp.bool_) for _ in range(2)]
    compiled = run.lower(keys, blocks, 1).compile()
    return lambda _steps: compiled


def hand_written_contenders() -> list[Contender[CompileProblem]]:
    return [
        Contender("numpy index arrays (hand-written)", prepare_index_arrays, requires=("numpy",)),
        Contender("JAX jit (hand-written kernel)", prepare_jax, requires=("jax",)),
    ]


def peer_contenders() -> list[Contender[CompileProblem]]:
    return [Contender("thrml program + jit", prepare_thrml, requires=("jax", "thrml"))]


def ebmlang_builder(backend: str) -> Callable[[CompileProblem], Callable[[int], Any]]:
    """`prepare` for ebmlang's whole build of examples/ising.ebm at L = side: parse, check,
    lower, compile for `backend`, colour the lattice and build the block-Gibbs kernel
    (for JAX also jit-compiling one sweep over `chains` chains, as thrml's row compiles its
    program)."""

    def prepare(problem: CompileProblem) -> Callable[[int], Any]:
        from ebmlang.cli.showcase import load_example
        from ebmlang.inference.gibbs import build_gibbs_kernel, gibbs_blocks

        model = load_example("ising.ebm", backend, L=problem.side)
        model.set_params(J=problem.beta)
        blocks = gibbs_blocks(model.graph)
        kernel = build_gibbs_kernel(model.compiled, blocks)
        if backend == "jax":
            import jax
            import jax.numpy as jnp

            spins = jax.ShapeDtypeStruct((problem.chains, problem.side, problem.side), jnp.float32)
            kernel = jax.jit(kernel).lower(jax.random.key(0), {"s": spins}, model.params).compile()
        return lambda _steps: (model, kernel)

    return prepare


def ebmlang_contenders() -> list[Contender[CompileProblem]]:
    """ebmlang's build from source to a runnable block-Gibbs sweep, torch and JAX.

    `prepare(problem)` does the whole build and returns the model and kernel (kept alive
    while memory is measured).
    """
    return [
        Contender("ebmlang build (torch)", ebmlang_builder("torch"), requires=("ebmlang", "torch")),
        Contender("ebmlang build + jit (jax)", ebmlang_builder("jax"), requires=("ebmlang", "jax")),
    ]


def contenders() -> list[Contender[CompileProblem]]:
    return hand_written_contenders() + peer_contenders() + ebmlang_contenders()


def run(smoke: bool) -> list[Row]:
    rows = []
    for side in sizes(smoke):
        problem = CompileProblem(side=side, chains=CHAINS, beta=BETA)
        for contender in contenders():
            rows.append(measure_build("compile_ising", f"L={side}", contender, problem))
    return rows
