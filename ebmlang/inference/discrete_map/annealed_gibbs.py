"""Chromatic block Gibbs sampling and the simulated annealing built on it.

`run_block_gibbs` redraws whole colour classes at once in every chain;
`solve_annealed_gibbs` runs it down a temperature schedule and polishes by ICM.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ebmlang.inference.discrete_map.icm import _icm
from ebmlang.inference.discrete_map.solver_io import MapResult, _initial_labels
from ebmlang.inference.tabular import LocalEnergies, TabularModelError, TabularMRF


class GibbsRun(NamedTuple):
    """Final labellings of every chain [C, n], and the lowest-energy labelling seen [n]."""

    final: np.ndarray
    best: np.ndarray
    best_energy: float


def run_block_gibbs(mrf: TabularMRF, betas, seed: int | np.random.Generator = 0, num_chains: int = 1,
                    init=None, colouring=None) -> GibbsRun:
    """Chromatic block Gibbs on exp(-beta E): one sweep per entry of `betas` (inverse
    temperatures > 0), each visiting the colour classes in turn and redrawing all
    members of a class at once, in every chain, by the Gumbel-max trick.

    init: [n] or [C, n] labels (default: uniform over allowed labels).
    """
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    betas = np.asarray(betas, dtype=np.float64).reshape(-1)
    if betas.size and not (np.isfinite(betas).all() and (betas > 0).all()):
        raise TabularModelError("every inverse temperature in the schedule must be finite and positive")
    local = LocalEnergies(mrf, colouring, seed=int(rng.integers(2 ** 31)))
    n = mrf.num_variables
    if init is None:
        # Uniform over allowed labels: a random key per label, the allowed one with the largest wins.
        keys = np.where(mrf.allowed[None], rng.random((num_chains, n, mrf.max_labels)), -1.0)
        labels = np.argmax(keys, axis=2)
    else:
        init = np.asarray(init)
        rows = init.reshape(-1, n) if init.ndim == 2 else init[None]
        if rows.shape[0] not in (1, num_chains):
            raise TabularModelError(f"init has {rows.shape[0]} labellings for {num_chains} chains",
                                    expected=f"labels [{n}] or [{num_chains}, {n}]")
        checked = np.stack([_initial_labels(mrf, row) for row in rows])
        labels = np.broadcast_to(checked, (num_chains, n)).copy()
    energies = mrf.energy(labels)
    best_chain = int(np.argmin(energies))
    best, best_energy = labels[best_chain].copy(), float(energies[best_chain])
    for beta in betas:
        for colour in range(local.num_colours):
            members = local.classes[colour].members
            table = local.table(colour, labels)  # [C, c, K]
            stuck = np.isinf(table).all(axis=2)
            scores = -beta * table + rng.gumbel(size=table.shape)
            drawn = np.argmax(scores, axis=2)
            # A member with every label forbidden given its neighbours keeps its label.
            labels[:, members] = np.where(stuck, labels[:, members], drawn)
        energies = mrf.energy(labels)
        chain = int(np.argmin(energies))
        if energies[chain] < best_energy:
            best, best_energy = labels[chain].copy(), float(energies[chain])
    return GibbsRun(labels, best, best_energy)


def _energy_scale(mrf: TabularMRF) -> float:
    """A typical size of one local energy change: the median spread of the finite
    entries of the unary rows and pairwise tables (1.0 when all are flat)."""
    spreads = []
    kmax = mrf.max_labels
    for tables in (mrf.unary, mrf.pairwise.reshape(mrf.num_edges, kmax * kmax)):
        if tables.size:
            finite = np.isfinite(tables)
            high = np.where(finite, tables, -np.inf).max(axis=1)
            low = np.where(finite, tables, np.inf).min(axis=1)
            spread = high - low
            spreads.append(spread[np.isfinite(spread) & (spread > 0)])
    spreads = np.concatenate(spreads) if spreads else np.zeros(0)
    return float(np.median(spreads)) if spreads.size else 1.0


def default_annealing_schedule(mrf: TabularMRF, sweeps: int = 200, hot: float = 2.0,
                               cold: float = 0.02) -> np.ndarray:
    """[sweeps] inverse temperatures, geometric from temperature hot*s to cold*s, where s
    is the model's typical local energy spread: hot enough to cross barriers of a few
    terms at first, frozen (exp(-50) odds against a typical uphill step) at the end."""
    scale = _energy_scale(mrf)
    return 1.0 / np.geomspace(hot * scale, cold * scale, sweeps)


def solve_annealed_gibbs(mrf: TabularMRF, seed: int | np.random.Generator = 0, schedule=None,
                         sweeps: int = 200, num_chains: int = 1, init=None, colouring=None,
                         polish: bool = True) -> MapResult:
    """Simulated annealing with chromatic block Gibbs (the numpy reference version).

    schedule: inverse temperatures, one per sweep (default: `default_annealing_schedule(mrf,
    sweeps)`). The lowest-energy labelling seen in any chain is polished by ICM.
    info: sweeps, chains, sampled_energy (best before polishing), feasible.
    """
    betas = default_annealing_schedule(mrf, sweeps) if schedule is None else np.asarray(schedule, float)
    run = run_block_gibbs(mrf, betas, seed=seed, num_chains=num_chains, init=init, colouring=colouring)
    labels = run.best
    if polish:
        labels, _, _ = _icm(LocalEnergies(mrf, colouring), labels, 100)
    energy = float(mrf.energy(labels))
    return MapResult(labels.astype(np.int64), energy, "annealed_gibbs",
                     {"sweeps": int(betas.size), "chains": num_chains, "sampled_energy": run.best_energy,
                      "feasible": bool(np.isfinite(energy)), "proven": False})
