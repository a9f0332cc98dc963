"""Workload: NUTS effective samples per second, ebmlang against NumPyro and blackjax.

Two Gaussian targets with known covariance: a 100-dimensional correlated Gaussian with a
dense precision (benchmarks/models/gaussian_dense.ebm: a random rotation of standard
deviations log-spaced over [0.1, 1]) and the 1,000-dimensional chain GMRF of the gmrf
workload. Every contender runs the same number of chains from the same starts x0 ~ N(0, I),
the same number of warm-up iterations (Stan's windowed adaptation of the step toward
acceptance 0.8 and of a diagonal inverse mass) and of kept draws, max tree depth 10.
"""
from __future__ import annotations

import itertools
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.harness import Contender, Headline, Row, measure, to_numpy
from benchmarks.kernels import gmrf as gmrf_kernels
from benchmarks.workloads.gmrf import ALPHA, BETA, SIZE

TITLE = "NUTS: effective samples per second (correlated Gaussian, GMRF)"
ORDER = 3.2
HEADLINE = Headline(metric="ESS/s min", higher_is_better=True, baseline="NumPyro")

MODELS = Path(__file__).resolve().parents[1] / "models"
CHAINS = 4
SEED = 0
GAUSSIAN_DIM = 100
CASES = ("Gaussian 100-d", "GMRF 1000-d")


@dataclass(frozen=True)
class NUTSProblem:
    case: str
    dim: int
    warmup: int
    draws: int
    chains: int
    precision: np.ndarray  # float64 [dim, dim]
    x0: np.ndarray  # float32 [chains, dim]

    @property
    def variance(self) -> np.ndarray:
        return np.diag(np.linalg.inv(self.precision))


def iterations(smoke: bool) -> int:
    return 10 if smoke else 300


def dense_precision(dim: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rotation, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
    sd = np.exp(np.linspace(np.log(0.1), np.log(1.0), dim))
    return rotation @ np.diag(1.0 / sd**2) @ rotation.T


def make_problem(case: str, smoke: bool) -> NUTSProblem:
    if case.startswith("Gaussian"):
        precision = dense_precision(GAUSSIAN_DIM, SEED)
    else:
        precision = gmrf_kernels.precision(SIZE, ALPHA, BETA)
    dim = precision.shape[0]
    x0 = np.random.default_rng(SEED + 1).standard_normal((CHAINS, dim)).astype(np.float32)
    return NUTSProblem(case, dim, iterations(smoke), iterations(smoke), CHAINS, precision, x0)


def describe(smoke: bool) -> str:
    n = iterations(smoke)
    return (
        f"{CHAINS} chains from the same x0 ~ N(0, I) (seed {SEED + 1}), {n} warm-up iterations and {n} kept "
        "draws per chain, float32 (threads as for the gmrf workload). Gaussian 100-d: E(x) = ½ xᵀPx with "
        "dense P = R diag(σ⁻²) Rᵀ "
        "(R a random rotation, σ log-spaced over [0.1, 1]; benchmarks/models/gaussian_dense.ebm); "
        "GMRF 1000-d: the gmrf workload's chain (α = 0.1, β = 1). ebmlang: `model.sample(method='nuts')` "
        "(Stan's windowed warm-up, one step size shared by the chains, diagonal inverse mass); NumPyro: "
        "`NUTS(potential_fn)` with `chain_method='vectorized'`; blackjax: `window_adaptation(nuts)` and "
        "`nuts.step` vmapped over chains (each chain adapts its own step and mass). All: target acceptance "
        "0.8, max tree depth 10. run s = warm-up + draws (JAX programs compiled and run once in setup). "
        "ESS = ArviZ's rank-normalised bulk ESS per coordinate over all chains; min and mean over the "
        "coordinates; ESS/s = ESS / run s. var/exact = the draws' variance over the exact marginal "
        "variance, averaged over coordinates (1 when right). load 1m = the 1-minute load average when "
        "the row finished."
    )


# --------------------------------------------------------------------------
# Contenders


def jax_energy(problem: NUTSProblem) -> Callable[[Any], Any]:
    import jax.numpy as jnp

    if problem.case.startswith("Gaussian"):
        precision = jnp.asarray(problem.precision, dtype=jnp.float32)
        return lambda x: 0.5 * x @ (precision @ x)
    return lambda x: 0.5 * ALPHA * (x * x).sum() + 0.5 * BETA * ((x[1:] - x[:-1]) ** 2).sum()


def load_model(problem: NUTSProblem, backend: str) -> Any:
    import ebmlang as ebm

    if problem.case.startswith("Gaussian"):
        model = ebm.load(MODELS / "gaussian_dense.ebm", backend=backend)
        model.set_params(P=problem.precision.astype(np.float32))
    else:
        model = ebm.load(MODELS / "gmrf.ebm", backend=backend)
        model.set_params(alpha=ALPHA, beta=BETA)
    return model


def prepare_ebmlang(problem: NUTSProblem, backend: str) -> Callable[[int], Any]:
    model = load_model(problem, backend)

    def run(_: int) -> Any:
        samples = model.sample(chains=problem.chains, steps=problem.warmup + problem.draws, burn_in=problem.warmup,
                               method="nuts", seed=SEED, init={"x": problem.x0}, progress=False)
        return samples["x"]

    if backend == "jax":
        run(0)  # compiles the jitted NUTS step (memoised per model and settings) for the timed run
    return run


def prepare_numpyro(problem: NUTSProblem) -> Callable[[int], Any]:
    from benchmarks.peers.nuts_peers import numpyro_nuts_fn

    run = numpyro_nuts_fn(jax_energy(problem), problem.x0, problem.warmup, problem.draws)
    run(SEED)
    return lambda _: run(SEED)


def prepare_blackjax(problem: NUTSProblem) -> Callable[[int], Any]:
    from benchmarks.peers.nuts_peers import blackjax_nuts_fn

    run = blackjax_nuts_fn(jax_energy(problem), problem.x0, problem.warmup, problem.draws)
    run(SEED)
    return lambda _: run(SEED)


def contenders() -> list[Contender[NUTSProblem]]:
    return [
        Contender("NumPyro", prepare_numpyro, requires=("jax", "numpyro")),
        Contender("blackjax", prepare_blackjax, requires=("jax", "blackjax")),
    ] + ebmlang_contenders()


def ebmlang_contenders() -> list[Contender[NUTSProblem]]:
    """`model.sample(method="nuts")` on the problem's .ebm model from `problem.x0`;
    `prepare(problem) -> run(_) -> draws [chains, draws, D]` (the whole run, warm-up
    included; JAX's jitted step is compiled in `prepare`)."""
    return [
        Contender("ebmlang (torch)", lambda p: prepare_ebmlang(p, "torch"), requires=("ebmlang", "torch")),
        Contender("ebmlang (jax)", lambda p: prepare_ebmlang(p, "jax"), requires=("ebmlang", "jax")),
    ]


# --------------------------------------------------------------------------
# Measuring


def summarise(problem: NUTSProblem) -> Callable[[Any, float], Mapping[str, float]]:
    def figures(output: Any, seconds: float) -> dict[str, float]:
        import arviz as az

        draws = to_numpy(output).astype(np.float64).reshape(problem.chains, problem.draws, problem.dim)
        if not np.all(np.isfinite(draws)):
            raise ValueError("a contender returned non-finite draws")
        ess = np.asarray(az.ess(az.convert_to_dataset({"x": draws}))["x"].values, dtype=float)
        variance = draws.reshape(-1, problem.dim).var(axis=0, ddof=1)
        return {
            "ESS/s min": float(ess.min() / seconds),
            "ESS/s mean": float(ess.mean() / seconds),
            "ESS min": float(ess.min()),
            "ESS mean": float(ess.mean()),
            "var/exact": float(np.mean(variance / problem.variance)),
            "load 1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else math.nan,
        }

    return figures


def run(smoke: bool) -> list[Row]:
    rows = []
    for case in CASES:
        problem = make_problem(case, smoke)
        for contender in contenders():
            rows.append(measure("nuts", case, contender, problem, steps=problem.draws, warmup_steps=0,
                                summarise=summarise(problem)))
    return rows


def cross_check(rows: list[Row]) -> list[str]:
    notes = []
    for case, case_rows in itertools.groupby(rows, key=lambda row: row.case):
        measured = [row for row in case_rows if row.ok]
        if measured:
            spread = ", ".join(f"{row.contender} {row.metrics['var/exact']:.3f}" for row in measured)
            notes.append(f"{case}: var/exact {spread} (after the full run, more than a few percent off 1 "
                         "would point at a wrong sampler; at smoke sizes the chains have not settled).")
    return notes
