"""Workload 3: Potts denoising (MAP / argmin) on a synthetic image, 2 and 4 labels.

Every contender gets the same noisy image and returns a labelling [H, W]; the figures are
wall time, the labelling's energy (lower is better; the same energy function scores every
contender) and pixel accuracy against the clean image. `steps` is an iteration budget:
ICM sweeps (it stops early at a local minimum), BP iterations, ebmlang argmin iterations.
For 2 labels the energy is submodular and one graph cut gives the exact minimum; for any
K ebmlang's integer program (HiGHS) proves the minimum. The proven minimum is the
yardstick for everyone else's energy.
"""
from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from benchmarks.harness import Contender, Headline, NotApplicable, Row, measure, to_numpy
from benchmarks.kernels import potts as kernels

TITLE = "Potts denoising (argmin)"
ORDER = 3
HEADLINE = Headline(metric="run s", higher_is_better=False, baseline="ICM numpy (hand-written)")

NOISE = 0.15
ETA = 2.0
BETA = 1.5
SEED = 0
LABEL_COUNTS = (2, 4)
GRAPH_CUT = "graph cut (PyMaxflow, exact)"
EXACT_PROGRAM = "ebmlang argmin, method='ilp' (exact)"


@dataclass(frozen=True)
class PottsProblem:
    """The noisy image y, the clean image, and the energy's weights."""

    labels: int
    eta: float
    beta: float
    iterations: int
    clean: np.ndarray
    noisy: np.ndarray


def side(smoke: bool) -> int:
    return 16 if smoke else 128


def iterations(smoke: bool) -> int:
    return 10 if smoke else 100


def make_problem(labels: int, smoke: bool) -> PottsProblem:
    clean = kernels.synthetic_image(side(smoke), labels)
    return PottsProblem(
        labels=labels,
        eta=ETA,
        beta=BETA,
        iterations=iterations(smoke),
        clean=clean,
        noisy=kernels.add_noise(clean, labels, NOISE, SEED),
    )


def describe(smoke: bool) -> str:
    n = side(smoke)
    return (
        f"A {n}×{n} synthetic image (two rectangles and two discs on a background), labels "
        f"K ∈ {{{', '.join(map(str, LABEL_COUNTS))}}}; each pixel replaced by a different random label "
        f"with probability {NOISE:g} (seed {SEED}). E(x) = η Σ_i [x_i ≠ y_i] + β Σ⟨ij⟩ [x_i ≠ x_j], "
        f"η = {ETA:g}, β = {BETA:g}, 4-neighbour grid. Iteration budget {iterations(smoke)} "
        "(ICM sweeps, stopping early at a local minimum; BP iterations, damping 0.5). The warm-up "
        "is one full solve (PGMax compiles per iteration count). Figures: run time, final energy, "
        "pixel accuracy against the clean image, and the energy's excess over the proven minimum "
        "(graph cut for 2 labels, ebmlang's integer program for any K)."
    )


# --------------------------------------------------------------------------
# Contenders


def prepare_icm(problem: PottsProblem) -> Callable[[int], Any]:
    return lambda budget: kernels.icm(problem.noisy, problem.labels, problem.eta, problem.beta, budget)[0]


def prepare_graph_cut(problem: PottsProblem) -> Callable[[int], Any]:
    if problem.labels != 2:
        raise NotApplicable("one graph cut is exact only for 2 labels")
    return lambda _budget: kernels.graph_cut_binary(problem.noisy, problem.eta, problem.beta)


def prepare_pgmax(problem: PottsProblem) -> Callable[[int], Any]:
    from benchmarks.peers.pgmax_potts import pgmax_potts_solver

    return pgmax_potts_solver(problem.noisy, problem.labels, problem.eta, problem.beta)


def hand_written_contenders() -> list[Contender[PottsProblem]]:
    return [
        Contender("ICM numpy (hand-written)", prepare_icm, requires=("numpy",)),
        Contender(GRAPH_CUT, prepare_graph_cut, requires=("maxflow",)),
    ]


def peer_contenders() -> list[Contender[PottsProblem]]:
    from benchmarks.peers.pgmax_potts import XLA_BRIDGE_NOTE

    return [Contender("PGMax max-product BP", prepare_pgmax, requires=("jax", "pgmax"), note=XLA_BRIDGE_NOTE)]


def prepare_ebmlang_argmin(problem: PottsProblem) -> Callable[[int], Any]:
    """examples/denoise.ebm at the problem's size and K, observed y = the noisy image.

    The file's energy is -eta [x = y] - beta [x_i = x_j], the benchmark's
    eta [x != y] + beta [x_i != x_j] less a constant, so both have the same minimisers.
    """
    from ebmlang.cli.showcase import load_example

    side = problem.noisy.shape[0]
    if problem.noisy.shape != (side, side):
        raise NotApplicable("denoise.ebm is a square N x N image")
    model = load_example("denoise.ebm", "torch", N=side, K=problem.labels)
    model.set_params(eta=problem.eta, beta=problem.beta)
    observed = {"y": problem.noisy}
    # ebmlang picks its own solver from the factor tables and runs it to completion:
    # the iteration budget does not apply.
    return lambda _budget: model.argmin(observed=observed)["x"]


def prepare_ebmlang_exact(problem: PottsProblem) -> Callable[[int], Any]:
    """The same model with the exact integer program asked for by name (no time limit hit)."""
    from ebmlang.cli.showcase import load_example

    side = problem.noisy.shape[0]
    model = load_example("denoise.ebm", "torch", N=side, K=problem.labels)
    model.set_params(eta=problem.eta, beta=problem.beta)
    observed = {"y": problem.noisy}

    def run(_budget):
        result = model.argmin(observed=observed, method="ilp", time_limit=600)
        if not result.info.get("proven"):
            raise RuntimeError("the integer program stopped before proving the minimum")
        return result["x"]

    return run


def ebmlang_contenders() -> list[Contender[PottsProblem]]:
    """ebmlang's argmin on examples/denoise.ebm, with the method it chooses itself and with
    the exact integer program.

    `prepare(problem) -> run(budget) -> labelling [H, W]` (ints 0..K-1).
    """
    return [
        Contender("ebmlang argmin", prepare_ebmlang_argmin, requires=("ebmlang", "torch"),
                  note="ebmlang's own method choice (auto-tabular); no iteration budget"),
        Contender(EXACT_PROGRAM, prepare_ebmlang_exact, requires=("ebmlang", "torch", "scipy"),
                  note="proven minimum (HiGHS branch and cut on the local polytope)"),
    ]


def contenders() -> list[Contender[PottsProblem]]:
    return hand_written_contenders() + peer_contenders() + ebmlang_contenders()


# --------------------------------------------------------------------------
# Measuring


def summarise(problem: PottsProblem) -> Callable[[Any, float], Mapping[str, float]]:
    def figures(output: Any, seconds: float) -> dict[str, float]:
        labelling = to_numpy(output).astype(np.int64).reshape(problem.noisy.shape)
        if labelling.min() < 0 or labelling.max() >= problem.labels:
            raise ValueError(f"a contender returned labels outside 0..{problem.labels - 1}")
        return {
            "energy": kernels.potts_energy(labelling, problem.noisy, problem.eta, problem.beta),
            "accuracy": float(np.mean(labelling == problem.clean)),
        }

    return figures


def run(smoke: bool) -> list[Row]:
    rows = []
    for labels in LABEL_COUNTS:
        problem = make_problem(labels, smoke)
        case = f"K={labels}"
        noisy_energy = kernels.potts_energy(problem.noisy, problem.noisy, problem.eta, problem.beta)
        rows.append(
            Row("potts", case, "noisy input (no solver)",
                metrics={"energy": noisy_energy, "accuracy": float(np.mean(problem.noisy == problem.clean))})
        )
        for contender in contenders():
            rows.append(
                measure(
                    "potts", case, contender, problem,
                    steps=problem.iterations, warmup_steps=problem.iterations, summarise=summarise(problem),
                )
            )
    return with_excess_over_exact(rows)


def with_excess_over_exact(rows: list[Row]) -> list[Row]:
    """Add 'excess %' (energy above the proven minimum: the graph cut's, else the integer
    program's) where a case has one."""
    exact = {row.case: row.metrics["energy"] for row in rows if row.contender == EXACT_PROGRAM and row.ok}
    exact.update({row.case: row.metrics["energy"] for row in rows if row.contender == GRAPH_CUT and row.ok})
    result = []
    for row in rows:
        if row.ok and row.case in exact and "energy" in row.metrics:
            metrics = dict(row.metrics)
            metrics["excess %"] = 100.0 * (metrics["energy"] - exact[row.case]) / exact[row.case]
            row = Row(row.workload, row.case, row.contender, row.status, row.setup_s, row.run_s, metrics, row.note)
        result.append(row)
    return result


def cross_check(rows: list[Row]) -> list[str]:
    notes = []
    for case, case_rows in itertools.groupby(rows, key=lambda row: row.case):
        measured = [row for row in case_rows if row.ok and row.run_s is not None]
        if measured:
            best = min(measured, key=lambda row: row.metrics["energy"])
            notes.append(f"{case}: lowest energy {best.metrics['energy']:g} by {best.contender}.")
    return notes
