"""The discrete block of argmin: tabulate, solve, and say whether the answer is proven.

`minimise_discrete` solves one observed row's discrete block given the other values,
on a `TabularMRF` when the model tabulates (discrete_map's solvers) and by simulated
annealing with the model's own block Gibbs kernel when it does not. "Infeasible" is
only ever said with a proof: enumeration, graph cut, the integer program or exact
dynamic programming on a tree. A heuristic that ends on a broken constraint says
what it reached and what to try next.
"""
from __future__ import annotations

import inspect

import numpy as np

from ebmlang.errors import EbmError, check_real_number, check_whole_number
from ebmlang.inference.plan import ENUMERATION_LIMIT

_PROOFS = {
    "enumeration": "enumerating every allowed labelling",
    "graphcut": "an exact graph cut (the minimum cut pays a forbidden entry)",
    "ilp": "the integer program (HiGHS found the problem infeasible)",
    "bp": "exact dynamic programming on the tree-shaped interaction graph",
}


def _fraction(name: str, value) -> None:
    if not 0.0 <= check_real_number(name, value) < 1.0:
        raise EbmError(f"{name} must lie in [0, 1), got {value!r}")


def _flag(name: str, value) -> None:
    if not isinstance(value, bool):
        raise EbmError(f"{name} must be True or False, got {value!r}")


# How each option a user may pass to argmin is checked (an EbmError names it).
_OPTION_CHECKS = {
    "time_limit": lambda n, v: check_real_number(n, v, positive=True),
    "mip_rel_gap": _fraction,
    "damping": _fraction,
    "sweeps": lambda n, v: check_whole_number(n, v, 1),
    "max_sweeps": lambda n, v: check_whole_number(n, v, 1),
    "iters": lambda n, v: check_whole_number(n, v, 1),
    "num_chains": lambda n, v: check_whole_number(n, v, 1),
    "tol": lambda n, v: check_real_number(n, v, minimum=0.0),
    "t_start": lambda n, v: check_real_number(n, v, positive=True),
    "t_end": lambda n, v: check_real_number(n, v, positive=True),
    "polish": _flag,
    "presolve": _flag,
}
# Solver arguments that are not user options (the model, starting labels, internals).
_INTERNAL = {"mrf", "init", "colouring", "schedule", "seed", "max_states", "forest"}


def annealing_options() -> set[str]:
    """The options of `anneal` a user may pass (its keyword arguments after the row's)."""
    return set(inspect.signature(anneal).parameters) - {"model", "block", "state", "seed", "row_note"}


def method_options(method: str) -> set[str]:
    """The options a discrete argmin method takes."""
    from ebmlang.inference import discrete_map

    if method == "annealing":
        return annealing_options()
    solver = discrete_map.MAP_SOLVERS.get(method)
    return set(inspect.signature(solver).parameters) - _INTERNAL if solver else set()


def check_argmin_options(options: dict, method: str | None) -> None:
    """Refuse options no method takes, options the named `method` does not take, and
    values of the wrong kind, before anything runs."""
    from ebmlang.inference import discrete_map

    names = annealing_options()
    for name in discrete_map.MAP_SOLVERS:
        names |= method_options(name)
    unknown = sorted(set(options) - names)
    if unknown:
        raise EbmError(f"argmin got an option no method takes: {', '.join(unknown)}",
                       expected="options such as time_limit (ilp), sweeps (annealing, icm), iters (bp)")
    if isinstance(method, str) and (method in discrete_map.MAP_SOLVERS or method == "annealing"):
        foreign = sorted(set(options) - method_options(method))
        if foreign:
            raise EbmError(f"method '{method}' does not take {', '.join(foreign)}",
                           expected=f"its options: {', '.join(sorted(method_options(method))) or 'none'}")
    for name, value in options.items():
        _OPTION_CHECKS.get(name, lambda n, v: None)(name, value)


def solve_tabular(mrf, block, row_note: str, **options):
    """(MapResult, method, reason) for one row's `TabularMRF`; raises a located-in-words
    EbmError when no feasible labelling came back."""
    from ebmlang.inference import discrete_map

    method, reason = block.method, block.reason
    if method == "auto-tabular":
        method, reason = discrete_map.choose_map_method(mrf, max_enumeration=ENUMERATION_LIMIT)
    if method not in discrete_map.MAP_SOLVERS:
        raise EbmError(f"unknown discrete argmin method '{method}'",
                       expected="one of " + ", ".join(sorted(discrete_map.MAP_SOLVERS)))
    result = discrete_map.solve_map(mrf, method=method, **options)
    if not np.isfinite(result.energy):
        raise infeasible_error(mrf, result, row_note, options)
    if method == "ilp" and not result.info["proven"]:
        reason += (f"; stopped at the time limit, {result.info['gap']:.3g} relative gap to the lower bound "
                   f"{result.info['bound']:.6g} (not proven optimal)")
    return result, method, reason


def proven_infeasible(row_note: str, proof: str) -> EbmError:
    """No labelling is feasible, and `proof` says how that was shown."""
    return EbmError(f"no labelling satisfies every constraint of the model{row_note}: proven by {proof}",
                    hint="check the constraints and the observed values")


def infeasible_error(mrf, result, row_note: str, options: dict) -> EbmError:
    method = result.method
    if result.info.get("proven"):
        return proven_infeasible(row_note, _PROOFS.get(method, method))
    if method == "ilp":
        limit = options.get("time_limit", "the default")
        return EbmError(f"the integer program found no labelling that satisfies every constraint within "
                        f"its time limit ({limit} s){row_note}; that does not prove there is none",
                        hint="raise the limit: argmin(time_limit=...) or `ebm argmin --time-limit`")
    broken = mrf.violations(result.labels)
    return EbmError(f"{method} stopped at a labelling that breaks {broken} constraint"
                    f"{'s' if broken != 1 else ''}{row_note} (energy +inf); a heuristic that fails does "
                    "not prove that no labelling is feasible",
                    hint="use method='ilp': the exact integer program gives the proven minimum or a "
                         "proof that the constraints cannot all hold")


def anneal(model, block, state: dict, seed: int, row_note: str, sweeps: int = 400, t_start: float = 5.0,
           t_end: float = 0.02):
    """Simulated annealing with the model's block Gibbs kernel, for discrete blocks that do
    not tabulate. Returns (values of the block's groups, lowest energy seen)."""
    from ebmlang.inference.gibbs import build_gibbs_kernel, check_gibbs_budget, gibbs_blocks

    bk = model.backend
    graph = model.graph
    check_gibbs_budget(model, block.groups, 1)
    blocks = gibbs_blocks(graph, groups=set(block.groups))
    rng = np.random.default_rng(seed)
    current = {}
    for k, var in graph.variables.items():
        if k in state:
            current[k] = bk.asarray(np.asarray(state[k], float)[None])
        else:
            values = var.domain.values
            current[k] = bk.asarray(values[rng.integers(0, len(values), size=(1,) + var.shape)])
    key = bk.key(seed)
    best, best_energy = current, float(bk.to_numpy(model.compiled.energy(current, model.params))[0])
    kernels = {}
    for temperature in np.geomspace(t_start, t_end, sweeps):
        rounded = round(float(temperature), 4)
        if rounded not in kernels:
            kernels[rounded] = build_gibbs_kernel(model.compiled, blocks, temperature=rounded)
        key, sub = bk.split(key, 2)
        current, _ = kernels[rounded](sub, current, model.params)
        energy = float(bk.to_numpy(model.compiled.energy(current, model.params))[0])
        if energy < best_energy or not np.isfinite(best_energy):
            best, best_energy = current, energy
    if not np.isfinite(best_energy):
        from ebmlang.inference.tabulate import tabular_status

        exact = ("use method='ilp' (the exact integer program) or " if tabular_status(graph, tuple(state)).tabular
                 else "write the model so that it tabulates (each term over at most two latent variables, "
                      "so the exact integer program applies), or ")
        raise EbmError(f"simulated annealing ended on states that break a constraint{row_note} (energy +inf "
                       f"after {sweeps} sweeps); a heuristic that fails does not prove that no state is "
                       "feasible",
                       hint=exact + "anneal longer and more slowly (argmin(sweeps=4000, t_start=...))")
    return {g: bk.to_numpy(best[g])[0] for g in block.groups}, best_energy
