"""Discrete MAP (argmin) solvers and exact queries on a `TabularMRF`.

Every solver is `solve_*(mrf, ...) -> MapResult(labels [n], energy, method, info)`
and works on numpy arrays only; loops run over iterations, sweeps, labels or
colour classes, never over variables or factors.

    exact        solve_enumeration (small state spaces), solve_graphcut (binary,
                 pairwise, submodular: Kolmogorov-Zabih construction + max-flow)
    approximate  solve_alpha_expansion (metric / Potts pairwise terms, each move a
                 graph cut), solve_max_product_bp (loopy min-sum BP + ICM polish),
                 solve_icm, solve_annealed_gibbs
    queries      enumerate_distribution, exact_marginals, log_partition, top_k

`choose_map_method` picks a solver and says why in a sentence; `solve_map` runs it.
Hard constraints (+inf energies) are honoured throughout: graph-cut based
solvers replace +inf by a finite M larger than any feasible energy, so the cut
never pays it when a feasible labelling exists. A result whose energy is +inf
means no feasible labelling was found (`info["feasible"]` is False).

One module per solver: `enumeration` (with the exact queries), `graphcut`,
`alpha_expansion`, `icm`, `annealed_gibbs` (with block Gibbs), `belief_propagation`;
`solver_io` holds the result type and the starting labels they share, and
`dispatch` holds `MAP_SOLVERS`, `choose_map_method` and `solve_map`.
"""
from __future__ import annotations

from ebmlang.inference.discrete_map.alpha_expansion import expansion_move, solve_alpha_expansion
from ebmlang.inference.discrete_map.annealed_gibbs import (
    GibbsRun,
    default_annealing_schedule,
    run_block_gibbs,
    solve_annealed_gibbs,
)
from ebmlang.inference.discrete_map.belief_propagation import solve_max_product_bp
from ebmlang.inference.discrete_map.dispatch import (
    DEFAULT_MAX_ENUMERATION,
    MAP_SOLVERS,
    choose_map_method,
    solve_map,
)
from ebmlang.inference.discrete_map.enumeration import (
    DEFAULT_MAX_STATES,
    EnumerationTooLargeError,
    count_states,
    enumerate_distribution,
    exact_marginals,
    log_partition,
    solve_enumeration,
    top_k,
)
from ebmlang.inference.discrete_map.graphcut import solve_graphcut
from ebmlang.inference.discrete_map.icm import solve_icm
from ebmlang.inference.discrete_map.solver_io import MapResult

__all__ = [
    "DEFAULT_MAX_ENUMERATION",
    "DEFAULT_MAX_STATES",
    "EnumerationTooLargeError",
    "GibbsRun",
    "MAP_SOLVERS",
    "MapResult",
    "choose_map_method",
    "count_states",
    "default_annealing_schedule",
    "enumerate_distribution",
    "exact_marginals",
    "expansion_move",
    "log_partition",
    "run_block_gibbs",
    "solve_alpha_expansion",
    "solve_annealed_gibbs",
    "solve_enumeration",
    "solve_graphcut",
    "solve_icm",
    "solve_map",
    "solve_max_product_bp",
    "top_k",
]
