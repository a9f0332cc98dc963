"""argmin (MAP), exact conditionals and ranking for a `Model`.

Discrete blocks are tabulated into a `TabularMRF` (ebmlang.inference.tabulate)
and handed to the exact or approximate solvers in discrete_map; continuous
blocks are minimised with L-BFGS-B (scipy) on the backend's energy and
gradient, with bounds as box constraints; mixed models alternate the two.
A batch of observed rows gets one answer per row: the discrete tables of every row
come from one batched tabulation, then each row is solved on its own.
"""
from __future__ import annotations

import numpy as np

from ebmlang.errors import EbmError, check_real_number, check_whole_number
from ebmlang.graph.values import batch_rows, check_observed
from ebmlang.inference.plan import ENUMERATION_LIMIT, plan_query, unobserved_continuous_error
from ebmlang.inference.results import ArgminResult, Conditional


def _context(model, values: dict) -> dict:
    """Backend arrays [1, *shape] of single-row values."""
    bk = model.backend
    return {k: bk.asarray(np.asarray(v, dtype=float)[None]) for k, v in values.items()}


def _total_energy(model, state: dict) -> float:
    bk = model.backend
    full = {k: bk.asarray(np.asarray(v, dtype=float)[None] if np.ndim(v) == len(model.graph.variables[k].shape)
                          else np.asarray(v, dtype=float)) for k, v in state.items()}
    return float(bk.to_numpy(model.compiled.energy(full, model.params))[0])


def observed_rows(graph, observed) -> tuple[dict, int, bool]:
    """(checked observed arrays [B or 1, *shape], B, whether the caller passed a batch).

    A value of exactly the variable's shape is one observation; a leading axis is a batch,
    and every batched value must have the same number of rows (or one, shared by all)."""
    obs = check_observed(graph, observed, source=graph.source)
    batched = any(np.shape(v) != tuple(graph.variables[k].shape) for k, v in (observed or {}).items())
    return obs, batch_rows(obs, "observed batches"), batched


def _row(obs: dict, r: int) -> dict:
    return {k: v[min(r, v.shape[0] - 1)] for k, v in obs.items()}


def argmin_model(model, *, observed=None, method=None, seed: int = 0, starts: int = 8,
                 max_rounds: int = 20, **options) -> ArgminResult:
    """The minimum-energy latent state for each observed row (see Model.argmin)."""
    from ebmlang.inference.discrete_argmin import check_argmin_options

    graph = model.graph
    check_argmin_options(options, method)
    for name, value, low in (("seed", seed, 0), ("starts", starts, 1), ("max_rounds", max_rounds, 1)):
        check_whole_number(name, value, low)
    obs, rows, batched = observed_rows(graph, observed)
    plan = model.compiled.memo(("plan", "argmin", tuple(sorted(obs)), str(method)),
                               lambda: plan_query(graph, "argmin", tuple(obs), method))
    discrete = plan.block("discrete")
    if method is None and discrete is not None and discrete.method == "bp" and plan.block("continuous") is None:
        found = _forest_minimum(model, observed, discrete, batched)
        if found is not None:
            return found
    tables = _row_tables(model, plan, obs)
    results = []
    for r in range(rows):
        note = f" (observed row {r})" if batched else ""
        mrf = tables[r] if tables is not None else None
        results.append(_argmin_row(model, plan, _row(obs, r), seed, starts, max_rounds, note, mrf, options))
    if not batched:
        return results[0]
    state = {k: np.stack([res.state[k] for res in results]) for k in results[0].state}
    return ArgminResult(state, np.array([res.energy for res in results]),
                        " / ".join(dict.fromkeys(res.method for res in results)),
                        " / ".join(dict.fromkeys(res.reason for res in results)),
                        {"rows": [res.info for res in results],
                         **({"proven": all(res.info.get("proven") for res in results)}
                            if any("proven" in res.info for res in results) else {})})


def _forest_minimum(model, observed, block, batched) -> ArgminResult | None:
    """Every row's exact minimum by batched max-product on the forest (None when some row has
    no feasible state: the row-by-row path then says which and why)."""
    from ebmlang.inference.exact.query import exact_model_form, forest_mode

    form, index, _ = exact_model_form(model, observed)
    if form.bags is not None:
        return None
    state, energies = forest_mode(model, form, index)   # max-product's minimum: the energy of `state`
    if not np.all(np.isfinite(energies)):
        return None
    info = {"exact": True, "proven": True, "structure": form.forest.shape, "schedule": "two-pass tree",
            "feasible": True, "batched": True}
    if not batched:
        return ArgminResult({g: v[0] for g, v in state.items()}, float(energies[0]), "bp", block.reason, info)
    return ArgminResult(state, energies, "bp", block.reason, {"rows": [info] * len(energies), "proven": True})


def _row_tables(model, plan, obs):
    """Every row's `TabularMRF`, tabulated in one batch, when the discrete block is all
    there is and it tabulates; else None (tabulated row by row, given the rest)."""
    from ebmlang.inference.tabulate import tabulate_rows

    discrete = plan.block("discrete")
    if discrete is None or plan.block("continuous") is not None or discrete.method == "annealing":
        return None
    context = {k: model.backend.asarray(v) for k, v in obs.items()}
    models, index = tabulate_rows(model.compiled, model.params, context, observed=tuple(obs),
                                  budget=model.budget)
    return [(mrf, index) for mrf in models]


def _argmin_row(model, plan, obs: dict, seed, starts, max_rounds, note, tables, options) -> ArgminResult:
    graph = model.graph
    discrete = plan.block("discrete")
    continuous = plan.block("continuous")
    rng = np.random.default_rng(seed)
    state = dict(obs)
    if continuous is not None:
        for g in continuous.groups:
            var = graph.variables[g]
            state[g] = (np.full(var.shape, 0.5 * (var.domain.low + var.domain.high))
                        if var.domain.kind == "bounded" else np.zeros(var.shape))
    info: dict = {}
    methods, reasons = [], []
    rounds = 1 if (discrete is None or continuous is None) else max_rounds
    previous = np.inf
    for _ in range(rounds):
        if discrete is not None:
            d_state, d_method, d_reason, d_info = _minimise_discrete(model, discrete, state, obs, seed, note,
                                                                     tables, options)
            state.update(d_state)
            methods.append(d_method)
            reasons.append(d_reason)
            info.update(d_info)
        if continuous is not None:
            c_state, c_info = _minimise_continuous(model, continuous.groups, state, starts, rng)
            state.update(c_state)
            info.update(c_info)
        energy = _total_energy(model, state)
        if previous - energy <= 1e-9 * max(1.0, abs(energy)):
            break
        previous = energy
    method_name = " + ".join(dict.fromkeys(methods + ([continuous.method] if continuous else [])))
    reason = "; ".join(dict.fromkeys(reasons + ([continuous.reason] if continuous else [])))
    out = {}
    for k, v in state.items():
        if k in obs:
            continue
        out[k] = np.asarray(v).astype(np.int64) if graph.variables[k].domain.is_discrete else np.asarray(v)
    final_energy = _total_energy(model, state)
    if not np.isfinite(final_energy):
        from ebmlang.inference.diagnostics import locate_nonfinite

        bk = model.backend
        batch = {k: bk.asarray(np.asarray(v, dtype=float)[None]) for k, v in state.items()}
        raise locate_nonfinite(model, batch, what="energy at the minimiser" + note)
    return ArgminResult(out, final_energy, method_name, reason, info)


def _minimise_discrete(model, block, state, obs, seed, note, tables, options):
    """(values of the block's groups, method, reason, info) for one row."""
    from ebmlang.inference.discrete_argmin import anneal, annealing_options, solve_tabular
    from ebmlang.inference.tabulate import labels_to_state, tabulate

    if block.method == "annealing":
        values, _ = anneal(model, block, state, seed, note,
                           **{k: v for k, v in options.items() if k in annealing_options()})
        return values, "annealing", block.reason, {"proven": False}
    if tables is None:
        context = _context(model, {k: v for k, v in state.items() if k not in block.groups})
        tables = tabulate(model.compiled, model.params, context, observed=tuple(obs), budget=model.budget)
    mrf, index = tables
    result, method, reason = solve_tabular(mrf, block, note, **options)
    info = {k: result.info[k] for k in ("proven", "bound", "gap", "status") if k in result.info}
    return labels_to_state(np.asarray(result.labels), index, model.graph), method, reason, info


def _minimise_continuous(model, groups, state, starts, rng):
    from scipy.optimize import minimize

    from ebmlang.inference.potential import ModelPotential

    bk = model.backend
    graph = model.graph
    context = {k: bk.asarray(np.broadcast_to(np.asarray(v, float), (starts,) + np.shape(v)).copy())
               for k, v in state.items() if k not in groups}
    potential = ModelPotential(model.compiled, model.params, context, groups, transform_bounded=False)
    layout = potential.layout
    x0 = []
    for g in layout:
        var = graph.variables[g.group]
        current = np.asarray(state[g.group], float).reshape(1, g.size)
        if var.domain.kind == "bounded":
            spread = rng.uniform(var.domain.low, var.domain.high, size=(starts - 1, g.size))
        else:
            spread = current + rng.normal(0, 2.0, size=(starts - 1, g.size))
        x0.append(np.concatenate([current, spread], axis=0))
    x0 = np.concatenate(x0, axis=1)
    bounds = []
    for g in layout:
        bounds += [(g.low, g.high) if g.bounded else (None, None)] * g.size
    bounds = bounds * starts

    def objective(flat):
        pos = bk.asarray(flat.reshape(starts, -1))
        e, grad = potential.energy_and_grad(pos)
        e_np = bk.to_numpy(e).astype(np.float64)
        g_np = bk.to_numpy(grad).astype(np.float64)
        if not np.all(np.isfinite(e_np)):
            return np.inf, np.zeros_like(flat)
        return float(e_np.sum()), g_np.reshape(-1)

    res = minimize(objective, x0.reshape(-1), jac=True, method="L-BFGS-B", bounds=bounds,
                   options={"maxiter": 2000, "gtol": 1e-9, "ftol": 1e-14})
    xs = res.x.reshape(starts, -1)
    energies = bk.to_numpy(potential.energy(bk.asarray(xs)))
    best = int(np.argmin(energies))
    values = potential.unpack(bk.asarray(xs[best:best + 1]))
    out = {k: bk.to_numpy(v)[0] for k, v in values.items()}
    return out, {"lbfgs_iterations": int(res.nit), "starts": starts,
                 "start_energies": np.sort(energies).tolist()}


def _discrete_only_mrfs(model, observed):
    """(one `TabularMRF` per observed row, the latent index, whether a batch was passed)."""
    from ebmlang.inference.tabulate import tabulate_rows

    graph = model.graph
    obs, _, batched = observed_rows(graph, observed)
    continuous = [k for k, v in graph.variables.items() if not v.domain.is_discrete and k not in obs]
    if continuous:
        raise unobserved_continuous_error(continuous, "exact conditionals")
    context = {k: model.backend.asarray(v) for k, v in obs.items()}
    models, index = tabulate_rows(model.compiled, model.params, context, observed=tuple(obs),
                                  budget=model.budget)
    log2_space = float(np.sum(np.log2(index.num_labels))) if index.total else 0.0
    if log2_space > np.log2(ENUMERATION_LIMIT):
        log10_space = log2_space * np.log10(2.0)
        size = f"{10 ** (log10_space % 1):.2g}e+{int(log10_space):02d}"
        raise EbmError(f"the latent discrete state space has {size} joint states, more than the "
                       f"exact limit {ENUMERATION_LIMIT}",
                       hint="use sample(...) for approximate marginals or argmin(...) for the mode")
    return models, index, batched


def exact_conditional(model, observed=None, beta: float = 1.0):
    """The exact distribution of the latent discrete state given the observed values: one
    `Conditional`, or a list with one per row when `observed` is a batch."""
    from ebmlang.inference.discrete_map import enumerate_distribution

    check_real_number("beta", beta, positive=True)
    models, index, batched = _discrete_only_mrfs(model, observed)
    answers = []
    for mrf in models:
        labels, probs = enumerate_distribution(mrf, beta=beta)
        energies = mrf.energy(labels)
        states = {}
        for g in index.groups:
            var = model.graph.variables[g]
            lab = labels[:, index.offsets[g]: index.offsets[g] + index.sizes[g]]
            states[g] = var.domain.values[lab].reshape((len(labels),) + var.shape).astype(np.int64)
        answers.append(Conditional(states, np.asarray(probs), np.asarray(energies), beta))
    return answers if batched else answers[0]


def rank_states(model, observed=None, k: int = 5):
    """[(state dict, energy)] for the k lowest-energy latent states; a list of such lists,
    one per row, when `observed` is a batch."""
    from ebmlang.inference.discrete_argmin import proven_infeasible
    from ebmlang.inference.discrete_map import top_k
    from ebmlang.inference.tabulate import labels_to_state

    check_whole_number("k, the number of states to rank,", k, 1)
    models, index, batched = _discrete_only_mrfs(model, observed)
    answers = []
    for r, mrf in enumerate(models):
        labels, energies = top_k(mrf, k)
        if len(labels) == 0:
            raise proven_infeasible(f" (observed row {r})" if batched else "", "enumerating every allowed labelling")
        answers.append([({g: v.astype(np.int64) for g, v in labels_to_state(np.asarray(row), index,
                                                                             model.graph).items()}, float(e))
                        for row, e in zip(labels, energies)])
    return answers if batched else answers[0]
