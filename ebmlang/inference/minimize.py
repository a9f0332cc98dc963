"""argmin (MAP), exact conditionals and ranking for a `Model`.

Discrete blocks are tabulated into a `TabularMRF` (ebmlang.inference.tabulate)
and handed to the exact or approximate solvers in discrete_map; continuous
blocks are minimised with L-BFGS-B (scipy) on the backend's energy and
gradient, with bounds as box constraints; mixed models alternate the two.
"""
from __future__ import annotations

import numpy as np

from ebmlang.errors import EbmError
from ebmlang.graph.values import check_observed
from ebmlang.inference.plan import ENUMERATION_LIMIT, plan_query
from ebmlang.inference.results import ArgminResult, Conditional


def _context(model, observed: dict, extra: dict | None = None) -> dict:
    bk = model.backend
    ctx = {k: bk.asarray(v[:1]) for k, v in observed.items()}
    for k, v in (extra or {}).items():
        ctx[k] = bk.asarray(np.asarray(v, dtype=float)[None])
    return ctx


def _total_energy(model, state: dict) -> float:
    bk = model.backend
    full = {k: bk.asarray(np.asarray(v, dtype=float)[None] if np.ndim(v) == len(model.graph.variables[k].shape)
                          else np.asarray(v, dtype=float)) for k, v in state.items()}
    return float(bk.to_numpy(model.compiled.energy(full, model.params))[0])


def argmin_model(model, *, observed=None, method=None, seed: int = 0, starts: int = 8,
                 max_rounds: int = 20, **options) -> ArgminResult:
    graph = model.graph
    obs = check_observed(graph, observed, source=graph.source)
    obs = {k: v[:1] for k, v in obs.items()}
    plan = plan_query(graph, "argmin", tuple(obs), method)
    discrete = plan.block("discrete")
    continuous = plan.block("continuous")
    rng = np.random.default_rng(seed)
    state = {k: v[0] for k, v in obs.items()}
    if continuous is not None:
        for g in continuous.groups:
            var = graph.variables[g]
            state[g] = (np.full(var.shape, 0.5 * (var.domain.low + var.domain.high))
                        if var.domain.kind == "bounded" else np.zeros(var.shape))
    info: dict = {}
    methods = []
    reasons = []
    rounds = 1 if (discrete is None or continuous is None) else max_rounds
    previous = np.inf
    for _ in range(rounds):
        if discrete is not None:
            d_state, d_method, d_reason = _minimise_discrete(model, discrete, state, obs, seed, **options)
            state.update(d_state)
            methods.append(d_method)
            reasons.append(d_reason)
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
    latent = {k: v for k, v in state.items() if k not in obs}
    out = {}
    for k, v in latent.items():
        dom = graph.variables[k].domain
        out[k] = np.asarray(v).astype(np.int64) if dom.is_discrete else np.asarray(v)
    final_energy = _total_energy(model, state)
    if not np.isfinite(final_energy):
        from ebmlang.inference.diagnostics import locate_nonfinite

        bk = model.backend
        batch = {k: bk.asarray(np.asarray(v, dtype=float)[None]) for k, v in state.items()}
        raise locate_nonfinite(model, batch, what="energy at the minimiser")
    return ArgminResult(out, final_energy, method_name, reason, info)


def _minimise_discrete(model, block, state, obs, seed, **options):
    from ebmlang.inference import discrete_map
    from ebmlang.inference.tabulate import labels_to_state, tabulate

    graph = model.graph
    context_names = [k for k in state if k not in block.groups]
    context = _context(model, {}, {k: state[k] for k in context_names})
    if block.method == "annealing":
        return _anneal(model, block, state, seed, **options)
    mrf, index = tabulate(model.compiled, model.params, context, observed=tuple(obs))
    method = block.method
    reason = block.reason
    if method == "auto-tabular":
        method, reason = discrete_map.choose_map_method(mrf, max_enumeration=ENUMERATION_LIMIT)
    solver = discrete_map.MAP_SOLVERS.get(method)
    if solver is None:
        raise EbmError(f"unknown discrete argmin method '{method}'",
                       expected="one of " + ", ".join(sorted(discrete_map.MAP_SOLVERS)))
    result = solver(mrf)
    if not np.isfinite(result.energy):
        raise EbmError("no labelling satisfies every constraint of the model (all have infinite energy)",
                       hint="check the constraints and the observed values")
    return labels_to_state(np.asarray(result.labels), index, graph), method, reason


def _anneal(model, block, state, seed, sweeps: int = 400, t_start: float = 5.0, t_end: float = 0.02,
            **_):
    """Simulated annealing with block Gibbs (for discrete models that cannot be tabulated)."""
    from ebmlang.inference.gibbs import build_gibbs_kernel, gibbs_blocks

    bk = model.backend
    graph = model.graph
    blocks = gibbs_blocks(graph, groups=set(block.groups))
    rng = np.random.default_rng(seed)
    current = {}
    for k, var in graph.variables.items():
        if k in state:
            current[k] = bk.asarray(np.asarray(state[k], float)[None])
        else:
            vals = var.domain.values
            current[k] = bk.asarray(vals[rng.integers(0, len(vals), size=(1,) + var.shape)])
    key = bk.key(seed)
    best, best_e = None, np.inf
    temps = np.geomspace(t_start, t_end, sweeps)
    kernels = {}
    for t in temps:
        t_key = round(float(t), 4)
        if t_key not in kernels:
            kernels[t_key] = build_gibbs_kernel(model.compiled, blocks, temperature=t_key)
        key, sub = bk.split(key, 2)
        current, _ = kernels[t_key](sub, current, model.params)
    e = float(bk.to_numpy(model.compiled.energy(current, model.params))[0])
    if e < best_e:
        best, best_e = current, e
    out = {g: bk.to_numpy(best[g])[0] for g in block.groups}
    return out, "annealing", block.reason


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


def _discrete_only_mrf(model, observed):
    from ebmlang.inference.tabulate import tabulate

    graph = model.graph
    obs = check_observed(graph, observed, source=graph.source)
    obs = {k: v[:1] for k, v in obs.items()}
    continuous = [k for k, v in graph.variables.items() if not v.domain.is_discrete and k not in obs]
    if continuous:
        raise EbmError(f"exact conditionals need every continuous variable observed; "
                       f"{', '.join(continuous)} {'is' if len(continuous) == 1 else 'are'} not",
                       hint=f"pass observed={{'{continuous[0]}': ...}}")
    mrf, index = tabulate(model.compiled, model.params, _context(model, obs), observed=tuple(obs))
    log2_space = float(np.sum(np.log2(index.num_labels))) if index.total else 0.0
    if log2_space > np.log2(ENUMERATION_LIMIT):
        log10_space = log2_space * np.log10(2.0)
        size = f"{10 ** (log10_space % 1):.2g}e+{int(log10_space):02d}"
        raise EbmError(f"the latent discrete state space has {size} joint states, more than the "
                       f"exact limit {ENUMERATION_LIMIT}",
                       hint="use sample(...) for approximate marginals or argmin(...) for the mode")
    return mrf, index


def exact_conditional(model, observed=None, beta: float = 1.0) -> Conditional:
    from ebmlang.inference.discrete_map import enumerate_distribution

    mrf, index = _discrete_only_mrf(model, observed)
    labels, probs = enumerate_distribution(mrf, beta=beta)
    energies = mrf.energy(labels)
    states = {}
    for g in index.groups:
        var = model.graph.variables[g]
        lab = labels[:, index.offsets[g]: index.offsets[g] + index.sizes[g]]
        states[g] = var.domain.values[lab].reshape((len(labels),) + var.shape).astype(np.int64)
    return Conditional(states, np.asarray(probs), np.asarray(energies), beta)


def rank_states(model, observed=None, k: int = 5):
    """[(state dict, energy)] for the k lowest-energy latent states."""
    from ebmlang.inference.discrete_map import top_k
    from ebmlang.inference.tabulate import labels_to_state

    mrf, index = _discrete_only_mrf(model, observed)
    labels, energies = top_k(mrf, k)
    out = []
    for row, e in zip(labels, energies):
        st = {g: v.astype(np.int64) for g, v in labels_to_state(np.asarray(row), index, model.graph).items()}
        out.append((st, float(e)))
    return out
