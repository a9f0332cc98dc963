"""Workload: cluster updates against single-site Gibbs at the Ising critical point.

The periodic 2D Ising model (examples/ising.ebm, J = beta_c = ln(1 + sqrt 2) / 2, no
field, sampled at temperature 1: the critical temperature T_c = 2 / ln(1 + sqrt 2)),
where single-site dynamics slow down as L^2.17 and cluster moves hardly at all. Every
contender starts from the same equilibrium states (Swendsen-Wang burn-in, not timed) and
records |m| and the energy per site; ArviZ's ESS (method "mean", over all chains) gives
the integrated autocorrelation time tau = draws / ESS, in steps, then in sweep-equivalents
(site updates / L^2), and ESS of |m| per second of the timed run.

Contenders: ebmlang's Swendsen-Wang and Wolff steps (`plan_steppers` for
method="swendsen_wang" / "wolff" on JAX: a numpy/scipy cluster update, then the jitted
chromatic Gibbs sweep), ebmlang's chromatic single-site Gibbs (`build_gibbs_sweep`,
`thin` sweeps per jitted `fori_loop`), and the hand-written JAX checkerboard kernel
(benchmarks/kernels/ising.py) with the same thinning.
"""
from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache, partial
from typing import Any

import numpy as np

from benchmarks.harness import Contender, Headline, Row, measure
from benchmarks.kernels import ising as kernels

TITLE = "Ising 2D at the critical point: Swendsen-Wang / Wolff against single-site Gibbs"
ORDER = 1
HEADLINE = Headline(metric="ESS |m|/s", higher_is_better=True, baseline="JAX (hand-written Gibbs)")

BETA_C = math.log(1.0 + math.sqrt(2.0)) / 2.0
CHAINS = 4
SEED = 0
LOAD_AT_START: dict = {}   # the 1-minute load average when `run` began, for `describe`


@dataclass(frozen=True)
class ClusterProblem:
    """side L, chains, steps of each contender kind, Gibbs thinning, and the shared
    equilibrium start float32 [chains, L, L]."""

    side: int
    chains: int
    cluster_steps: int
    gibbs_sweeps: int
    gibbs_thin: int
    start: np.ndarray


def sizes(smoke: bool) -> tuple[int, ...]:
    return (8,) if smoke else (64, 128)


def plan_of(side: int, smoke: bool) -> tuple[int, int, int, int]:
    """(cluster steps, Gibbs sweeps, Gibbs thinning, burn-in steps of the start)."""
    if smoke:
        return 20, 100, 5, 5
    return (2000, 100_000, 50, 200) if side <= 64 else (2000, 160_000, 80, 300)


@lru_cache(maxsize=4)
def ising_model(side: int, backend: str = "jax"):
    """examples/ising.ebm at L = side, J = beta_c, h = 0; one model per (side, backend), so
    the Swendsen-Wang and Wolff contenders share its jitted Gibbs sweep (setup, not timed)."""
    from ebmlang.cli.showcase import load_example

    model = load_example("ising.ebm", backend, L=side)
    return model.set_params(J=BETA_C, h=0.0)


def make_problem(side: int, smoke: bool) -> ClusterProblem:
    steps, sweeps, thin, burn_in = plan_of(side, smoke)
    model = ising_model(side, "numpy")
    samples = model.sample(chains=CHAINS, steps=burn_in, burn_in=burn_in - 1, method="swendsen_wang",
                           seed=SEED + 1, progress=False)
    start = samples["s"][:, -1].astype(np.float32)
    return ClusterProblem(side, CHAINS, steps, sweeps, thin, start)


def describe(smoke: bool) -> str:
    sides = ", ".join(str(side) for side in sizes(smoke))
    runs = "; ".join(f"L = {side}: {plan_of(side, smoke)[0]} cluster steps, {plan_of(side, smoke)[1]:,} Gibbs "
                     f"sweeps recorded every {plan_of(side, smoke)[2]}" for side in sizes(smoke))
    return (
        f"p(s) ∝ exp(β_c Σ⟨ij⟩ s_i s_j), β_c = ln(1+√2)/2 (T_c = 2/ln(1+√2) ≈ 2.269 for J = 1), periodic "
        f"L×L, L ∈ {{{sides}}}, {CHAINS} chains from the same equilibrium states (a Swendsen-Wang burn-in, "
        f"not timed). {runs}. A Swendsen-Wang step relabels every cluster and then runs one chromatic "
        "Gibbs sweep (2 sweep-equivalents of site updates); a Wolff step flips one cluster, whose mean "
        "size is L²⟨m²⟩ at zero field, then one sweep (1 + ⟨m²⟩ sweep-equivalents); a Gibbs sweep is 1. "
        "τ = draws·chains / ESS (ArviZ `ess(method=\"mean\")`: the integrated autocorrelation time, in "
        "steps, times the recording interval for the Gibbs rows); τ (sweeps) = τ × sweep-equivalents per "
        "step. The Gibbs runs span only some tens of τ at L = 128, which biases their τ low (in Gibbs' "
        "favour). Figures: ESS of |m| per second of the timed run (recording included for every "
        "contender), τ of |m| and of E, ⟨|m|⟩ and ⟨E⟩/site (exact at L = ∞: E/site = -√2 ≈ -1.414). "
        f"Load average (1 min) when the workload started: {LOAD_AT_START.get('start', os.getloadavg()[0]):.2f}, "
        f"when this text was written: {os.getloadavg()[0]:.2f}."
    )


# --------------------------------------------------------------------------
# Contenders: run(n) -> (|m| [chains, draws], E/site [chains, draws], thin, sweep-equivalents per step)


def record(spins: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return kernels.abs_magnetisation(spins), kernels.energy_per_site(spins)


def traces(rows: list) -> tuple[np.ndarray, np.ndarray]:
    m, e = zip(*rows)
    return np.stack(m, axis=1), np.stack(e, axis=1)


def prepare_cluster(problem: ClusterProblem, method: str) -> Callable[[int], Any]:
    from ebmlang.inference.steppers import plan_steppers

    model = ising_model(problem.side)
    bk = model.backend
    plan = model.plan("sample", method=method)
    first = {"s": bk.asarray(problem.start)}
    steppers = plan_steppers(model, plan, first, 1.0, burn_in=0).steps

    def run(steps: int):
        key, state, rows = bk.key(SEED), first, []
        for _ in range(steps):
            key, *subkeys = bk.split(key, 1 + len(steppers))
            for subkey, stepper in zip(subkeys, steppers):
                state = stepper(subkey, state)
            rows.append(record(bk.to_numpy(state["s"])))
        m, e = traces(rows)
        work = 2.0 if method == "swendsen_wang" else 1.0 + float(np.mean(m ** 2))
        return m, e, 1, work

    return run


def prepare_ebmlang_gibbs(problem: ClusterProblem) -> Callable[[int], Any]:
    import jax

    from ebmlang.inference.gibbs import build_gibbs_sweep, gibbs_blocks

    model = ising_model(problem.side)
    sweep = build_gibbs_sweep(model.compiled, gibbs_blocks(model.graph))
    params, thin = model.params, problem.gibbs_thin

    @jax.jit
    def sweeps_from(key: Any, carry: Any, count: Any) -> tuple[Any, Any]:
        def one(_: Any, loop: tuple[Any, Any]) -> tuple[Any, Any]:
            key, carry = loop
            key, sweep_key = jax.random.split(key)
            return key, sweep.step(sweep_key, carry, params)

        return jax.lax.fori_loop(0, count, one, (key, carry))

    def run(sweeps: int):
        key, carry, rows = jax.random.key(SEED), sweep.init({"s": model.backend.asarray(problem.start)}), []
        for _ in range(sweeps // thin):
            key, carry = sweeps_from(key, carry, thin)
            rows.append(record(np.asarray(sweep.finish(carry)["s"])))
        m, e = traces(rows)
        return m, e, thin, 1.0

    return run


def prepare_hand_gibbs(problem: ClusterProblem) -> Callable[[int], Any]:
    import jax
    import jax.numpy as jnp

    kernel, thin = kernels.jax_sweeps_fn(), problem.gibbs_thin
    beta = jnp.float32(BETA_C)

    def run(sweeps: int):
        key, spins, rows = jax.random.key(SEED), jnp.asarray(problem.start.astype(np.int8)), []
        for _ in range(sweeps // thin):
            key, sweep_key = jax.random.split(key)
            spins = kernel(sweep_key, spins, beta, thin)
            rows.append(record(np.asarray(spins)))
        m, e = traces(rows)
        return m, e, thin, 1.0

    return run


def contenders() -> list[tuple[Contender[ClusterProblem], str]]:
    """(contender, which step count it runs: "cluster" steps or "gibbs" sweeps)."""
    return [
        (Contender("JAX (hand-written Gibbs)", prepare_hand_gibbs, requires=("jax",)), "gibbs"),
        (Contender("ebmlang Gibbs (jax)", prepare_ebmlang_gibbs, requires=("ebmlang", "jax")), "gibbs"),
        (Contender("ebmlang Swendsen-Wang (jax)", partial(prepare_cluster, method="swendsen_wang"),
                   requires=("ebmlang", "jax", "scipy")), "cluster"),
        (Contender("ebmlang Wolff (jax)", partial(prepare_cluster, method="wolff"),
                   requires=("ebmlang", "jax", "scipy")), "cluster"),
    ]


# --------------------------------------------------------------------------
# Measuring


def summarise(output: Any, seconds: float) -> Mapping[str, float]:
    import arviz

    m, e, thin, work = output
    draws = m.size
    ess_m, ess_e = float(arviz.ess(m, method="mean")), float(arviz.ess(e, method="mean"))
    tau_m, tau_e = thin * draws / ess_m, thin * draws / ess_e
    return {
        "ESS |m|/s": ess_m / seconds,
        "τ |m| (steps)": tau_m,
        "τ E (steps)": tau_e,
        "sweeps/step": work,
        "τ |m| (sweeps)": tau_m * work,
        "τ E (sweeps)": tau_e * work,
        "ESS |m|": ess_m,
        "⟨|m|⟩": float(m.mean()),
        "⟨E⟩/site": float(e.mean()),
    }


def run(smoke: bool) -> list[Row]:
    LOAD_AT_START["start"] = os.getloadavg()[0]
    rows = []
    for side in sizes(smoke):
        problem = make_problem(side, smoke)
        for contender, kind in contenders():
            steps = problem.cluster_steps if kind == "cluster" else problem.gibbs_sweeps
            warmup = 2 if kind == "cluster" else problem.gibbs_thin
            rows.append(measure("ising_cluster", f"L={side}", contender, problem, steps=steps,
                                warmup_steps=warmup, summarise=summarise))
    return rows


def cross_check(rows: list[Row]) -> list[str]:
    """Per case: how much shorter the cluster moves' tau is than Gibbs', in sweep-equivalents."""
    notes = []
    for case in dict.fromkeys(row.case for row in rows):
        measured = {row.contender: row.metrics for row in rows if row.case == case and row.ok}
        gibbs = measured.get("ebmlang Gibbs (jax)")
        if gibbs is None:
            continue
        parts = []
        for name in ("ebmlang Swendsen-Wang (jax)", "ebmlang Wolff (jax)"):
            if name in measured:
                parts.append(f"{name}: τ |m| {gibbs['τ |m| (sweeps)'] / measured[name]['τ |m| (sweeps)']:.0f}x and "
                             f"τ E {gibbs['τ E (sweeps)'] / measured[name]['τ E (sweeps)']:.0f}x shorter than "
                             "ebmlang Gibbs per sweep-equivalent")
        notes.append(f"{case}: " + "; ".join(parts))
    return notes
