"""Choosing a discrete MAP solver: `MAP_SOLVERS`, `choose_map_method`, `solve_map`.

The only module that knows every solver; it picks one from the model's size and
structure and says why in a sentence.
"""
from __future__ import annotations

import inspect
import math

import numpy as np

from ebmlang.inference.discrete_map.alpha_expansion import solve_alpha_expansion
from ebmlang.inference.discrete_map.annealed_gibbs import solve_annealed_gibbs
from ebmlang.inference.discrete_map.belief_propagation import solve_max_product_bp
from ebmlang.inference.discrete_map.enumeration import _choices, _describe_size, solve_enumeration
from ebmlang.inference.discrete_map.graphcut import _submodularity_report, solve_graphcut
from ebmlang.inference.discrete_map.icm import solve_icm
from ebmlang.inference.discrete_map.ilp import ilp_size, solve_ilp
from ebmlang.inference.discrete_map.solver_io import MapResult
from ebmlang.inference.discrete_map.tree_dp import model_forest
from ebmlang.inference.tabular import TabularModelError, TabularMRF

DEFAULT_MAX_ENUMERATION = 2 ** 20
# Models without hard constraints go to the integer program when it has at most this
# many columns (HiGHS proves the optimum of such programs in well under a second on the
# models we tried); larger unconstrained models keep the fast graph-cut and BP moves.
ILP_AUTO_COLUMNS = 5000

EXACT_METHODS = ("enumeration", "graphcut", "ilp")

MAP_SOLVERS = {
    "enumeration": solve_enumeration,
    "graphcut": solve_graphcut,
    "ilp": solve_ilp,
    "alpha_expansion": solve_alpha_expansion,
    "bp": solve_max_product_bp,
    "icm": solve_icm,
    "annealed_gibbs": solve_annealed_gibbs,
}


def choose_map_method(mrf: TabularMRF, max_enumeration: int = DEFAULT_MAX_ENUMERATION) -> tuple[str, str]:
    """(method name in MAP_SOLVERS, a sentence saying why), decided on the model with
    parallel factors merged (one edge written as several terms is one edge).

    In order: enumeration when some variable has no allowed label (it proves there is
    no solution); max-product BP with the exact two-pass schedule when the interaction
    graph is a forest; enumeration when at most `max_enumeration` joint labellings are
    allowed; graph cut when binary, pairwise and submodular; the integer program (exact,
    HiGHS) when the model has hard constraints or is small; alpha-expansion when pairwise
    with Potts or metric terms; otherwise loopy max-product BP + ICM.
    """
    mrf = mrf.merge_parallel_factors()
    _, counts = _choices(mrf)
    if (counts == 0).any():
        return "enumeration", (f"variable {int(np.argmin(counts))} has every label forbidden, so no "
                               "labelling is feasible -> enumeration (reports it)")
    forest = model_forest(mrf)
    if forest is not None:
        return "bp", (f"the interaction graph is {forest.describe(mrf.num_edges)} -> max-product BP, "
                      "two passes from the leaves to the roots and back: exact minimum")
    log2_states = float(np.log2(counts).sum()) if counts.size else 0.0
    if log2_states <= math.log2(max(max_enumeration, 1)) + 1e-9:
        return "enumeration", (f"{_describe_size(log2_states)} joint labellings (at most "
                               f"{max_enumeration:,}) -> exact minimum by enumeration")
    m = mrf.num_edges
    if mrf.is_pairwise and mrf.is_binary and mrf.is_submodular():
        return "graphcut", (f"binary, pairwise and submodular (checked on all {m} edge tables) "
                            "-> exact minimum by graph cut")
    columns = ilp_size(mrf)
    if mrf.has_constraints:
        return "ilp", (f"hard constraints, which the approximate methods cannot be trusted to satisfy "
                       f"-> integer program over the local polytope ({columns:,} columns, HiGHS): "
                       "the proven minimum, or a proof that no labelling is feasible")
    if columns <= ILP_AUTO_COLUMNS:
        return "ilp", (f"{columns:,} columns in the integer program over the local polytope (at most "
                       f"{ILP_AUTO_COLUMNS:,}) -> proven minimum by HiGHS")
    if not mrf.is_pairwise:
        num_higher = sum(f.num_factors for f in mrf.higher)
        return "bp", (f"{num_higher} factors join 3 or more variables, so no graph-cut method applies "
                      "-> loopy max-product BP, then ICM (approximate)")
    if mrf.is_binary:
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
    """Run `method` (a name in MAP_SOLVERS, or "auto" for `choose_map_method`) on the model
    with parallel factors merged; `info["reason"]` says why the method was used.

    When the integer program stops at its time limit unproven, loopy max-product BP + ICM
    runs too and the lower energy is returned (`info["proven"]` stays False, `info["bound"]`
    keeps HiGHS's lower bound)."""
    if method == "auto":
        method, reason = choose_map_method(mrf, max_enumeration=max_enumeration)
    else:
        reason = "requested"
    solver = MAP_SOLVERS.get(method)
    if solver is None:
        raise TabularModelError(f"unknown discrete MAP method '{method}'",
                                expected=f"one of auto, {', '.join(MAP_SOLVERS)}")
    merged = mrf.merge_parallel_factors()
    result = solver(merged, **_accepted(solver, options))
    if method == "ilp" and not result.info["proven"]:
        result = _better_of(result, solve_max_product_bp(merged))
    return result._replace(info={**result.info, "reason": reason})


def _accepted(solver, options: dict) -> dict:
    """The options `solver` takes (argmin passes one set of options to whichever runs)."""
    names = inspect.signature(solver).parameters
    return {k: v for k, v in options.items() if k in names}


def _better_of(ilp: MapResult, heuristic: MapResult) -> MapResult:
    if heuristic.energy < ilp.energy:
        return heuristic._replace(method="ilp", info={**ilp.info, "feasible": heuristic.info["feasible"],
                                                        "incumbent_from": "bp",
                                                        "gap": _gap(heuristic.energy, ilp.info["bound"])})
    return ilp


def _gap(energy: float, bound: float) -> float:
    if not (np.isfinite(energy) and np.isfinite(bound)):
        return np.inf
    return abs(energy - bound) / max(1.0, abs(energy))
