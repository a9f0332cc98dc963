"""Running a plan: many chains of block Gibbs, a continuous MCMC kernel, or both alternating.

`sample_model(model, ...)` builds the kernels the plan names, runs them with
explicit keys derived from the seed, clamps observed groups, and collects draws
per variable with axes [chains, draws, *shape] plus energy traces.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ebmlang.errors import EbmError, check_whole_number
from ebmlang.graph.values import check_observed, check_values
from ebmlang.inference.gibbs import check_gibbs_budget
from ebmlang.inference.plan import SAMPLE_DISCRETE, plan_query
from ebmlang.inference.results import Samples
from ebmlang.inference.steppers import CarriedStepper, plan_steppers

# Refuse to keep more draws than this many float64 numbers in memory (8 GiB / 8 B / 8).
MAX_RECORDED_VALUES = 2 ** 27


def initial_state(model, chains: int, observed: dict, init: dict | None, rng: np.random.Generator) -> dict:
    """Observed groups broadcast to all chains; latent ones from `init`, else drawn at random.

    In a model with hard constraints a random discrete start almost surely violates some,
    and single-site Gibbs can stay stuck there (every label of a site may violate a
    constraint until a neighbour moves), so discrete chains without an `init` start at
    the argmin instead: a valid state whenever one exists (computed once, for the first
    observed batch, and shared by all chains).
    """
    graph = model.graph
    state = {}
    if init is not None and not isinstance(init, dict):
        raise EbmError(f"init must be a dict of initial values by variable name, got {type(init).__name__}")
    unknown = sorted(set(init or {}) - set(graph.variables))
    if unknown:
        from ebmlang.errors import did_you_mean

        raise EbmError(f"init names {', '.join(repr(k) for k in unknown)}, which "
                       f"{'is not a variable' if len(unknown) == 1 else 'are not variables'} of {graph.name}",
                       expected=f"initial values for {', '.join(graph.variables)}",
                       hint=did_you_mean(unknown[0], graph.variables))
    clamped = sorted(set(init or {}) & set(observed))
    if clamped:
        raise EbmError(f"init gives a start for observed {', '.join(clamped)}, whose values are fixed",
                       hint="initial values are for latent variables; observed ones come from observed=")
    valid_start = _constrained_start(model, observed, init)
    for name, var in graph.variables.items():
        if name in observed:
            value = observed[name]
            if value.shape[0] not in (1, chains):
                raise EbmError(f"observed '{name}' has a batch of {value.shape[0]}, but {chains} chains "
                               "were asked for", var.span, source=graph.source,
                               hint="give one value (shared by all chains) or one per chain")
            state[name] = np.broadcast_to(value, (chains,) + var.shape).copy()
        elif init is not None and name in init:
            value = check_values(var, init[name], source=graph.source, what="initial value")
            state[name] = np.broadcast_to(value, (chains,) + var.shape).copy()
        elif name in valid_start:
            state[name] = np.broadcast_to(valid_start[name], (chains,) + var.shape).copy()
        elif var.domain.is_discrete:
            values = var.domain.values
            state[name] = values[rng.integers(0, len(values), size=(chains,) + var.shape)]
        elif var.domain.kind == "bounded":
            state[name] = rng.uniform(var.domain.low, var.domain.high, size=(chains,) + var.shape)
        else:
            state[name] = rng.normal(size=(chains,) + var.shape)
    return state


def _constrained_start(model, observed: dict, init: dict | None) -> dict:
    """The argmin values of the latent discrete groups `init` leaves out, in a model with
    constraint terms; {} otherwise."""
    graph = model.graph
    if not any(t.is_constraint for t in graph.templates):
        return {}
    wanted = [name for name, var in graph.variables.items()
              if var.domain.is_discrete and not var.observed and name not in observed
              and (init is None or name not in init)]
    if not wanted:
        return {}
    minimum = model.argmin(observed=observed or None)
    return {name: np.asarray(minimum[name]) for name in wanted}


@dataclass(frozen=True)
class SampleRequest:
    """A checked `sample` call: the observed values, the plan, and which steps to keep."""

    observed: dict
    plan: object
    burn_in: int
    thin: int
    latent_names: list

    def info(self, temperature: float, seed: int) -> dict:
        return {"burn_in": self.burn_in, "thin": self.thin, "temperature": temperature, "seed": seed}


def check_sample_request(model, *, chains: int, steps: int, observed, method, temperature: float,
                         burn_in: int | None, thin: int) -> SampleRequest:
    """Every check a sampling run makes before it starts (one place for `Model.sample`
    and `sample_sharded`); an EbmError names the first bad argument."""
    graph = model.graph
    chains = check_whole_number("chains", chains, 1)
    steps = check_whole_number("steps", steps, 1)
    if burn_in is not None:
        check_whole_number("burn_in", burn_in, 0)
    check_whole_number("thin", thin, 1)
    if not isinstance(temperature, (int, float, np.integer, np.floating)) or isinstance(temperature, bool) \
            or not 0 < temperature < np.inf:
        raise EbmError(f"temperature must be a positive, finite number (got {temperature!r})",
                       hint="use argmin(...) for the zero-temperature limit")
    obs = check_observed(graph, observed, source=graph.source)
    plan = plan_query(graph, "sample", tuple(obs), method, params=model.param_values())
    discrete_block = plan.block("discrete")
    if discrete_block is not None and discrete_block.method not in SAMPLE_DISCRETE:
        raise EbmError(f"'{discrete_block.method}' is not a sampler for discrete variables",
                       expected=" or ".join(SAMPLE_DISCRETE),
                       hint="annealing methods find a minimum: use argmin(method=...) for them")
    burn_in = steps // 4 if burn_in is None else int(burn_in)
    if not 0 <= burn_in < steps:
        raise EbmError(f"burn_in must be in [0, steps) (got {burn_in} with steps={steps})")
    thin = max(1, int(thin))
    recorded = len(range(burn_in, steps, thin))
    latent_names = [k for k in graph.variables if k not in obs]
    check_gibbs_budget(model, latent_names, chains)
    latent_size = sum(graph.variables[k].size for k in latent_names)
    if recorded * chains * latent_size > MAX_RECORDED_VALUES:
        raise EbmError(f"keeping {recorded} draws x {chains} chains x {latent_size} values would need "
                       f"{recorded * chains * latent_size * 8 / 2**30:.1f} GiB",
                       hint="raise thin=..., or lower steps or chains")
    return SampleRequest(obs, plan, burn_in, thin, latent_names)


def sample_model(model, *, chains: int, steps: int, observed=None, method=None, temperature: float = 1.0,
                 burn_in: int | None = None, thin: int = 1, seed: int = 0, init=None, progress: bool = True,
                 step_size: float | None = None) -> Samples:
    graph = model.graph
    bk = model.backend
    check_whole_number("seed", seed, 0)
    request = check_sample_request(model, chains=chains, steps=steps, observed=observed, method=method,
                                   temperature=temperature, burn_in=burn_in, thin=thin)
    obs, plan = request.observed, request.plan
    rng = np.random.default_rng(seed)
    state = {k: bk.asarray(v) for k, v in initial_state(model, chains, obs, init, rng).items()}
    steppers = plan_steppers(model, plan, state, temperature, burn_in=request.burn_in, step_size=step_size)

    label = f"sampling {graph.name} ({', '.join(b.method for b in plan.blocks)})"
    state, out, energy = record_chains(model, steppers.steps, state, request.latent_names, seed=seed, steps=steps,
                                       burn_in=request.burn_in, thin=request.thin, progress=progress, label=label)
    _check_finite(model, {k: v for k, v in state.items() if k in obs}, out, energy)
    acceptance = steppers.mean_acceptance(request.burn_in)
    _check_not_frozen(model, state, energy, acceptance)
    info = request.info(temperature, seed)
    info.update(steppers.runner_info())
    return Samples(out, energy, plan, acceptance, info)


def record_chains(model, steppers, state: dict, latent_names, *, seed: int, steps: int, burn_in: int,
                  thin: int, progress: bool, label: str, keep: int | None = None):
    """Run `steps` steps of `steppers` (each `step(key, state) -> state`) with keys derived from
    `seed`; the final state, the draws per latent group [chains, draws, *shape] (discrete groups
    as integers) and the energy trace [chains, draws], of the first `keep` chains (all by default)."""
    bk = model.backend
    thin = max(1, int(thin))
    draws: dict[str, list] = {k: [] for k in latent_names}
    energies = []
    key = bk.key(seed)
    # A lone stepper with a carry (a Gibbs sweep over a packed lattice) keeps it between
    # steps and rebuilds the state only for the draws it records.
    carried = steppers[0] if len(steppers) == 1 and isinstance(steppers[0], CarriedStepper) else None
    carry = carried.init(state) if carried is not None else None
    with _progress(progress, steps, label) as bar:
        for t in range(steps):
            key, *subkeys = bk.split(key, 1 + len(steppers))
            if carried is not None:
                carry = carried.step(subkeys[0], carry)
            else:
                for sub, stepper in zip(subkeys, steppers):
                    state = stepper(sub, state)
            if t >= burn_in and (t - burn_in) % thin == 0:
                if carried is not None:
                    state = carried.finish(carry)
                for k in latent_names:
                    draws[k].append(bk.to_numpy(state[k][:keep]))
                energies.append(bk.to_numpy(model.compiled.energy(state, model.params))[:keep])
            bar(t)
    if carried is not None:
        state = carried.finish(carry)
    out = {}
    for k in latent_names:
        arr = np.stack(draws[k], axis=1)
        out[k] = arr.astype(np.int64) if model.graph.variables[k].domain.is_discrete else arr
    return state, out, np.stack(energies, axis=1)


def _check_finite(model, observed_state: dict, draws: dict, energy: np.ndarray) -> None:
    """A NaN or infinite recorded energy stops the run with the term (or violated
    constraint) and source line that produced it, evaluated at the first such draw."""
    finite = np.isfinite(energy)
    if finite.all():
        return
    from ebmlang.inference.diagnostics import locate_nonfinite

    bk = model.backend
    first_bad_draw = int(np.argwhere(~finite)[0][1])
    state = dict(observed_state)
    state.update({k: bk.asarray(v[:, first_bad_draw]) for k, v in draws.items()})
    raise locate_nonfinite(model, state)


# Beyond this energy float32 cannot tell proposals apart (its spacing there exceeds 1e8):
# Metropolis chains stop moving and report a meaningless answer.
FROZEN_ENERGY = 1e15


def _check_not_frozen(model, state: dict, energy: np.ndarray, acceptance: dict) -> None:
    """Chains that accepted no proposal while the energy is astronomically large are not
    sampling: stop with the term that made the energy that large."""
    if not acceptance or max(acceptance.values()) > 0 or not (np.abs(energy[:, -1]) > FROZEN_ENERGY).any():
        return
    terms = model.compiled.term_energies(state, model.params)
    sizes = {name: float(np.abs(model.backend.to_numpy(value)).max()) for name, value in terms.items()}
    worst = max(sizes, key=sizes.get)
    template = next(t for t in model.graph.templates if t.term == worst)
    raise EbmError(f"the chains are frozen: energy term '{worst}' reaches {sizes[worst]:.3g} and no proposal "
                   f"was accepted ({', '.join(f'{k} {v:.2f}' for k, v in acceptance.items())}); at that size "
                   "energy differences are lost to rounding", template.span, source=model.graph.source,
                   hint="rescale the term (or its parameters) so energies stay moderate, start the chains "
                        "near low energy with init=..., or use dtype='float64'")


class _progress:
    """A rich progress bar for runs longer than about a second (off with progress=False)."""

    def __init__(self, enabled: bool, total: int, label: str):
        self.enabled = enabled and total >= 50
        self.total = total
        self.label = label

    def __enter__(self):
        if not self.enabled:
            return lambda t: None
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                            TimeRemainingColumn(), transient=True)
        self.bar.start()
        self.task = self.bar.add_task(self.label, total=self.total)
        return lambda t: self.bar.update(self.task, completed=t + 1)

    def __exit__(self, *exc):
        if self.enabled:
            self.bar.stop()
        return False
