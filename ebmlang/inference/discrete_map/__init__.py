"""Discrete MAP (argmin) solvers and exact queries on a `TabularMRF`.

Every solver is `solve_*(mrf, ...) -> MapResult(labels [n], energy, method, info)`
and works on numpy arrays only; loops run over iterations, sweeps, labels or
colour classes, never over variables or factors.

    exact        solve_enumeration (small state spaces), solve_graphcut (binary,
                 pairwise, submodular: Kolmogorov-Zabih construction + max-flow),
                 solve_ilp (any model: integer program over the local polytope, HiGHS,
                 with a time limit), solve_tree (pairwise forests: two-pass min-sum;
                 solve_max_product_bp runs it whenever the model is a forest)
    approximate  solve_alpha_expansion (metric / Potts pairwise terms, each move a
                 graph cut), solve_max_product_bp (loopy min-sum BP + ICM polish),
                 solve_icm, solve_annealed_gibbs
    queries      enumerate_distribution, exact_marginals, log_partition, top_k

`choose_map_method` picks a solver and says why in a sentence; `solve_map` runs it.
Hard constraints (+inf energies) are honoured throughout: graph-cut based
solvers replace +inf by a finite M larger than any feasible energy, so the cut
never pays it when a feasible labelling exists. A result whose energy is +inf
means no feasible labelling was found (`info["feasible"]` is False); `info["proven"]`
says whether the result is proven (the exact minimum, or a proof that no labelling
is feasible) or a heuristic's best effort. Every solver merges parallel edges and
factors over one set of variables first.

One module per solver: `enumeration` (with the exact queries), `graphcut`,
`alpha_expansion`, `icm`, `annealed_gibbs` (with block Gibbs), `belief_propagation`,
`tree_dp`, `ilp`;
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
    EXACT_METHODS,
    ILP_AUTO_COLUMNS,
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
from ebmlang.inference.discrete_map.ilp import DEFAULT_TIME_LIMIT, ilp_size, solve_ilp
from ebmlang.inference.discrete_map.solver_io import MapResult
from ebmlang.inference.discrete_map.tree_dp import RootedForest, model_forest, rooted_forest, solve_tree

__all__ = [
    "DEFAULT_MAX_ENUMERATION",
    "DEFAULT_MAX_STATES",
    "DEFAULT_TIME_LIMIT",
    "EXACT_METHODS",
    "ILP_AUTO_COLUMNS",
    "EnumerationTooLargeError",
    "GibbsRun",
    "MAP_SOLVERS",
    "MapResult",
    "RootedForest",
    "choose_map_method",
    "count_states",
    "default_annealing_schedule",
    "enumerate_distribution",
    "exact_marginals",
    "expansion_move",
    "ilp_size",
    "log_partition",
    "model_forest",
    "rooted_forest",
    "run_block_gibbs",
    "solve_alpha_expansion",
    "solve_annealed_gibbs",
    "solve_enumeration",
    "solve_graphcut",
    "solve_icm",
    "solve_ilp",
    "solve_map",
    "solve_max_product_bp",
    "solve_tree",
    "top_k",
]
