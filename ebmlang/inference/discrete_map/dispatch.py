"""Choosing a discrete MAP solver: `MAP_SOLVERS`, `choose_map_method`, `solve_map`.

The only module that knows every solver; it picks one from the model's size and
structure and says why in a sentence.
"""
from __future__ import annotations

import math

import numpy as np

from ebmlang.inference.discrete_map.alpha_expansion import solve_alpha_expansion
from ebmlang.inference.discrete_map.annealed_gibbs import solve_annealed_gibbs
from ebmlang.inference.discrete_map.belief_propagation import solve_max_product_bp
from ebmlang.inference.discrete_map.enumeration import _choices, _describe_size, solve_enumeration
from ebmlang.inference.discrete_map.graphcut import _submodularity_report, solve_graphcut
from ebmlang.inference.discrete_map.icm import solve_icm
from ebmlang.inference.discrete_map.solver_io import MapResult
from ebmlang.inference.tabular import TabularModelError, TabularMRF

DEFAULT_MAX_ENUMERATION = 2 ** 20


MAP_SOLVERS = {
    "enumeration": solve_enumeration,
    "graphcut": solve_graphcut,
    "alpha_expansion": solve_alpha_expansion,
    "bp": solve_max_product_bp,
    "icm": solve_icm,
    "annealed_gibbs": solve_annealed_gibbs,
}


def choose_map_method(mrf: TabularMRF, max_enumeration: int = DEFAULT_MAX_ENUMERATION) -> tuple[str, str]:
    """(method name in MAP_SOLVERS, a sentence saying why).

    In order: enumeration when at most `max_enumeration` joint labellings are allowed;
    graph cut when binary, pairwise and submodular (exact); alpha-expansion when
    pairwise with Potts or metric terms; otherwise loopy max-product BP + ICM.
    """
    _, counts = _choices(mrf)
    if (counts == 0).any():
        return "enumeration", (f"variable {int(np.argmin(counts))} has every label forbidden, so no "
                               "labelling is feasible -> enumeration (reports it)")
    log2_states = float(np.log2(counts).sum()) if counts.size else 0.0
    if log2_states <= math.log2(max(max_enumeration, 1)) + 1e-9:
        return "enumeration", (f"{_describe_size(log2_states)} joint labellings (at most "
                               f"{max_enumeration:,}) -> exact minimum by enumeration")
    m = mrf.num_edges
    if not mrf.is_pairwise:
        num_higher = sum(f.num_factors for f in mrf.higher)
        return "bp", (f"{num_higher} factors join 3 or more variables, so no graph-cut method applies "
                      "-> loopy max-product BP, then ICM (approximate)")
    if mrf.is_binary:
        if mrf.is_submodular():
            return "graphcut", (f"binary, pairwise and submodular (checked on all {m} edge tables) "
                                "-> exact minimum by graph cut")
        return "bp", (f"binary and pairwise but not submodular ({_submodularity_report(mrf)}) "
                      "-> loopy max-product BP, then ICM (approximate)")
    if mrf.is_potts_metric():
        return "alpha_expansion", (f"{int(mrf.num_labels.max())} labels with Potts pairwise terms "
                                   f"(checked on all {m} edge tables) -> alpha-expansion by graph cuts "
                                   "(within a factor 2 of the minimum for nonnegative energies)")
    if mrf.is_expansion_submodular():
        return "alpha_expansion", (f"{int(mrf.num_labels.max())} labels with metric pairwise terms "
                                   f"(every expansion move submodular on all {m} edge tables) "
                                   "-> alpha-expansion by graph cuts (approximate)")
    bad = int((~mrf.expansion_submodular_edges()).sum())
    return "bp", (f"{int(mrf.num_labels.max())} labels and {bad} of {m} edge tables are not metric, "
                  "so alpha-expansion does not apply -> loopy max-product BP, then ICM (approximate)")


def solve_map(mrf: TabularMRF, method: str = "auto", max_enumeration: int = DEFAULT_MAX_ENUMERATION,
              **options) -> MapResult:
    """Run `method` (a name in MAP_SOLVERS, or "auto" for `choose_map_method`);
    `info["reason"]` says why the method was used."""
    if method == "auto":
        method, reason = choose_map_method(mrf, max_enumeration=max_enumeration)
    else:
        reason = "requested"
    solver = MAP_SOLVERS.get(method)
    if solver is None:
        raise TabularModelError(f"unknown discrete MAP method '{method}'",
                                expected=f"one of auto, {', '.join(MAP_SOLVERS)}")
    result = solver(mrf, **options)
    return result._replace(info={**result.info, "reason": reason})
