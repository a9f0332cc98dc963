"""Annealed importance sampling (Neal 2001) over continuous variables: log Z with a
standard error, for models whose discrete variables (if any) are summed out exactly.

The integrand is exp(-E_obs(x)) over the continuous groups x, with every discrete group
summed out by `ObservedEnergy` (a Gaussian-Bernoulli RBM's free energy of v; at each
row's lowest-energy labels where a summed table may be infinite), so Z = integral of
exp(-E_obs). AIS runs in whitened, unconstrained coordinates u:

    x = T(z),  z = mean + sd * u     T: identity on reals, the sigmoid / exp maps of
                                     inference/transforms.py on bounded reals
    E_u(u) = E_obs(T(z)) - log|dT/dz|,   Z = prod(sd) * integral of exp(-E_u(u)) du

with the base q = N(0, I) in u (a Gaussian N(mean, sd^2) in z: fitted to data when data
are given, else N(0, scale^2)). Whitening is what makes one step size serve every
coordinate: sds of 0.1 and 10 are both 1 in u once the base has the data's scale.

Path: p_beta(u) proportional to q(u)^(1 - beta) exp(-beta E_u(u)), beta from 0 to 1 on a
sigmoid schedule (Grosse et al. 2013: finer steps at both ends, where the distributions
change fastest). Each chain's log weight gains (beta_t - beta_(t-1)) (E_q(u) - E_u(u))
before its HMC transition at beta_t (`leapfrog` steps; one step is MALA). The step size is
shared by the chains and adapted after every transition from their mean acceptance: each
transition leaves its p_beta invariant given the step it uses, and a chain's own past sets
that step only through its 1/chains share of the mean (no bias showed over 200 seeds: a
mean error of +0.003 +- 0.003 nats on a 2-D Gaussian). log Z = log mean exp(w), its
standard error by the delta method sd(exp w) / (sqrt(chains) mean(exp w)), and the
weights' effective sample size (sum exp w)^2 / sum exp(2 w) says how far to trust that
error: when a handful of chains dominate, it is underestimated.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from ebmlang.errors import EbmError
from ebmlang.learning.dataset import prepare_data
from ebmlang.learning.exact import is_independent_set, whole_groups
from ebmlang.learning.free_energy import FreeEnergyObjective
from ebmlang.learning.observed_energy import ObservedEnergy

# HMC's acceptance optimum is about 0.65 (Beskos et al. 2013), MALA's 0.574 (Roberts &
# Rosenthal 1998); the step follows the chains' mean acceptance multiplicatively.
HMC_TARGET_ACCEPT = 0.65
MALA_TARGET_ACCEPT = 0.574
ADAPT_RATE = 1.0
# In whitened coordinates the base has unit scale: a step of 0.5 leaves it well inside
# the leapfrog's stability limit (2 for a unit Gaussian) and adapts within a few steps.
INITIAL_STEP = 0.5
STEP_RANGE = (1e-5, 1e2)
# A sigmoid schedule's steepness (Grosse et al. 2013 use 4).
SCHEDULE_STEEPNESS = 4.0
# Keys split off at a time (see `step_keys`).
KEY_CHUNK = 64
# The base's widening (`widen_to_curvature`): data rows it looks at, and gradient rows per pass.
CURVATURE_POINTS = 4
CURVATURE_ROWS = 512
# Rows of data scored per pass when a log-probability is evaluated.
SCORE_CHUNK = 4096


@dataclass
class AISResult:
    """log Z estimate with its standard error (delta method over the chains' weights).

    steps: annealing steps; transition, base: what moved the chains and where they
    started (empty for the discrete sampler's older callers)."""

    log_z: float
    stderr: float
    log_weights: np.ndarray = field(repr=False)
    effective_sample_size: float = 0.0
    steps: int = 0
    transition: str = ""
    base: str = ""

    @property
    def chains(self) -> int:
        return len(self.log_weights)

    @property
    def ess(self) -> float:
        return self.effective_sample_size

    def __repr__(self) -> str:
        return (f"AISResult(log_z={self.log_z:.4f} +/- {self.stderr:.4f}, "
                f"chains={len(self.log_weights)}, ess={self.effective_sample_size:.1f})")


def summarize_weights(log_weights: np.ndarray, log_z0: float = 0.0, **described) -> AISResult:
    """log Z = log_z0 + log mean exp(w), its delta-method standard error and the weights'
    effective sample size, from the chains' log weights (NaN counts as a zero weight)."""
    log_weights = np.where(np.isnan(log_weights), -np.inf, np.asarray(log_weights, dtype=np.float64))
    top = log_weights.max()
    if not np.isfinite(top):
        return AISResult(-math.inf if top == -np.inf else math.inf, math.inf, log_weights, 0.0, **described)
    weights = np.exp(log_weights - top)
    mean = weights.mean()
    stderr = float(weights.std(ddof=1) / (math.sqrt(len(weights)) * mean))
    ess = float(weights.sum() ** 2 / np.sum(weights ** 2))
    return AISResult(float(log_z0 + top + math.log(mean)), stderr, log_weights, ess, **described)


def sigmoid_schedule(steps: int, steepness: float = SCHEDULE_STEEPNESS) -> np.ndarray:
    """`steps` + 1 betas from 0 to 1, spaced as a sigmoid (Grosse et al. 2013)."""
    s = 1.0 / (1.0 + np.exp(-steepness * np.linspace(-1.0, 1.0, steps + 1)))
    betas = (s - s[0]) / (s[-1] - s[0])
    betas[0], betas[-1] = 0.0, 1.0
    return betas


def check_schedule(betas, steps: int, chains: int, default=sigmoid_schedule) -> np.ndarray:
    """`betas` checked (increasing strictly from 0 to 1), or `default(steps)`."""
    if chains < 2 or (betas is None and steps < 1):
        raise EbmError(f"AIS needs at least 2 chains and 1 step (got chains={chains}, steps={steps})")
    schedule = default(steps) if betas is None else np.asarray(betas, dtype=np.float64)
    if schedule.ndim != 1 or len(schedule) < 2 or schedule[0] != 0.0 or schedule[-1] != 1.0 \
            or np.any(np.diff(schedule) <= 0):
        raise EbmError("an AIS schedule must increase strictly from 0 to 1",
                       hint="pass betas=np.linspace(0, 1, 1001), say, or leave betas out (a sigmoid schedule)")
    return schedule


# --------------------------------------------------------------------------
# What is integrated


def integrated_groups(model, what: str) -> tuple[str, ...]:
    """The continuous groups AIS integrates; an EbmError when the discrete ones cannot be
    summed out exactly given them (or when there are none: that is `ais_log_partition`)."""
    graph = model.graph
    continuous = tuple(g for g, v in graph.variables.items() if not v.domain.is_discrete)
    discrete = [g for g in graph.variables if g not in continuous]
    if not continuous:
        raise EbmError(f"{what} from a Gaussian base integrates continuous variables; every variable of "
                       f"{graph.name} is discrete", hint="use ais_log_partition (or ais_log_z, which picks it)")
    if discrete and not is_independent_set(graph, whole_groups(graph, discrete)):
        var = graph.variables[discrete[0]]
        raise EbmError(
            f"{what} integrates the continuous variables ({', '.join(continuous)}) and sums the discrete "
            f"ones exactly given them, but {', '.join(discrete)} are not independent given "
            f"{', '.join(continuous)} (a factor reads two of their variables)", var.span,
            source=graph.source or None,
            hint="AIS over a model whose discrete variables interact with each other is not supported; "
                 "compare such models by their energies, or make the discrete variables conditionally "
                 "independent (as an RBM's hidden units are)")
    return continuous


class LowestReferenceEnergy:
    """E_obs with the other (discrete, independent) groups summed out at each row's
    lowest-energy labels, F = E(a*) - sum_u log sum_k exp(e_u(a*_u) - e_u(k)), for when a
    summed table may be +inf (a `log`, as a mixture's log(sigma[z]); a constraint) and
    `ObservedEnergy`'s fixed first-value reference could be a forbidden one. Pure backend
    code like it; the argmin is piecewise constant, so gradients in the state are exact."""

    def __init__(self, model, hidden):
        graph, self.compiled = model.graph, model.compiled
        bk = model.backend
        self.blocks = {g: self.compiled.gibbs_block(g, np.arange(graph.variables[g].size)) for g in hidden}
        self.values = {g: bk.asarray(graph.variables[g].domain.values) for g in hidden}
        self.shapes = {g: graph.variables[g].shape for g in hidden}
        self.energy = self.compiled.energy_kernel()
        self.description = f"the free energy of the data, {', '.join(hidden)} summed out exactly"

    def rows(self, params, state):
        bk = self.compiled.backend
        ops, state = bk.ops, dict(state)
        batch = next(iter(state.values())).shape[0]
        # A block's table does not read its own group (no factor holds two of its units):
        # any stand-in values do for computing it.
        for g, shape in self.shapes.items():
            state[g] = ops.zeros((batch,) + shape) + self.values[g][0]
        tables = {g: block.by_value(state, params) for g, block in self.blocks.items()}   # [batch, K, n]
        lowest = {}
        for g, table in tables.items():
            labels = ops.argmin(table, axis=1)                                             # [batch, n]
            lowest[g] = ops.take_along_axis(table, labels[:, None, :], 1)
            state[g] = ops.reshape(bk.take(self.values[g], labels), (batch,) + self.shapes[g])
        free = self.energy(self.compiled.arrays, state, params)
        for g, table in tables.items():
            free = free - ops.sum(ops.logsumexp(lowest[g] - table, axis=1), axis=-1)
        return free


def summed_energy(model, groups: tuple[str, ...], what: str):
    """`ObservedEnergy` of `groups`, or `LowestReferenceEnergy` where its reference labels
    could be forbidden (the callers have checked that the rest can be summed exactly)."""
    graph = model.graph
    hidden = tuple(g for g in graph.variables if g not in groups)
    if hidden and not FreeEnergyObjective(model.compiled, whole_groups(graph, hidden)).usable:
        return LowestReferenceEnergy(model, hidden)
    return ObservedEnergy(model, groups, what)


class Layout(NamedTuple):
    """The continuous groups as one flat position [chains, D]."""

    groups: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]
    offsets: tuple[int, ...]
    low: np.ndarray    # [D]; -inf where unbounded
    high: np.ndarray   # [D]; +inf where unbounded

    @property
    def size(self) -> int:
        return self.offsets[-1]

    @property
    def bounded(self) -> bool:
        return bool(np.any(np.isfinite(self.low)) or np.any(np.isfinite(self.high)))

    @staticmethod
    def of(graph, groups) -> "Layout":
        shapes = tuple(graph.variables[g].shape for g in groups)
        sizes = [graph.variables[g].size for g in groups]
        low, high = [], []
        for g, n in zip(groups, sizes):
            domain = graph.variables[g].domain
            bounded = domain.kind == "bounded"
            low.append(np.full(n, domain.low if bounded else -np.inf))
            high.append(np.full(n, domain.high if bounded else np.inf))
        return Layout(tuple(groups), shapes, tuple(np.cumsum([0] + sizes).tolist()),
                      np.concatenate(low), np.concatenate(high))

    def unflatten(self, ops, x) -> dict:
        return {g: ops.reshape(x[:, a:b], (x.shape[0],) + shape)
                for g, shape, a, b in zip(self.groups, self.shapes, self.offsets[:-1], self.offsets[1:])}


class Base(NamedTuple):
    """The Gaussian base in the unconstrained coordinates z: mean and sd [D], which
    coordinates were fitted to data (bool [D]), up to CURVATURE_POINTS data rows in z
    [R, D] (other coordinates at the mean), and the description's parts."""

    mean: np.ndarray
    sd: np.ndarray
    fitted: np.ndarray
    points: np.ndarray
    parts: list


def gaussian_base(model, layout: Layout, transform, base, data, scale: float) -> Base:
    """The base before any widening (see `widen_to_curvature`).

    base: None (fitted to `data` where it has the group and 2+ examples, else N(0, scale^2)),
    "standard" (N(0, scale^2) everywhere), or {group: (mean, sd)} (numbers or arrays of
    the group's shape; groups left out get N(0, scale^2))."""
    graph, bk = model.graph, model.backend
    if not (isinstance(scale, (int, float)) and math.isfinite(scale) and scale > 0):
        raise EbmError(f"the AIS base's scale is {scale!r}", expected="a finite number > 0")
    mean, sd = np.zeros(layout.size), np.full(layout.size, float(scale))
    fitted_mask = np.zeros(layout.size, dtype=bool)
    if base is not None and base != "standard" and not isinstance(base, dict):
        raise EbmError(f"unknown AIS base {base!r}",
                       expected="None (fitted to the data), 'standard' or {group: (mean, sd)}")
    fitted, given, points = [], [], {}
    for g, a, b in zip(layout.groups, layout.offsets[:-1], layout.offsets[1:]):
        if isinstance(base, dict) and g in base:
            try:
                m, s = base[g]
                mean[a:b] = np.broadcast_to(np.asarray(m, dtype=np.float64), graph.variables[g].shape).reshape(-1)
                sd[a:b] = np.broadcast_to(np.asarray(s, dtype=np.float64), graph.variables[g].shape).reshape(-1)
            except (TypeError, ValueError) as error:
                raise EbmError(f"the AIS base for '{g}' must be (mean, sd) of its shape "
                               f"{graph.variables[g].shape}: {error}") from None
            given.append(g)
        elif base is None and data is not None and g in data and len(data[g]) >= 2:
            values = np.asarray(data[g], dtype=np.float64).reshape(len(data[g]), -1)
            if transform is not None:  # fit where the chains move: in z
                full = np.zeros((len(values), layout.size))
                full[:, a:b] = values
                values = np.asarray(bk.to_numpy(transform.unconstrain(bk.asarray(full))))[:, a:b]
            mean[a:b] = values.mean(axis=0)
            # A coordinate that is constant in the data would give a point base: keep a
            # floor relative to the data's typical spread (the curvature widens it further).
            spread = values.std(axis=0)
            sd[a:b] = scale * np.maximum(spread, 1e-3 * max(float(np.median(spread)), 1e-3))
            fitted_mask[a:b] = True
            points[(a, b)] = values[np.linspace(0, len(values) - 1, min(CURVATURE_POINTS, len(values))).astype(int)]
            fitted.append(g)
    if not np.all(np.isfinite(mean)) or not np.all(np.isfinite(sd)) or np.any(sd <= 0):
        raise EbmError("the AIS base needs finite means and positive finite sds",
                       hint="check base={group: (mean, sd)}, or the data it was fitted to")
    rows = min([len(v) for v in points.values()], default=0)
    at = np.repeat(mean[None], rows, 0)
    for (a, b), values in points.items():
        at[:, a:b] = values[:rows]
    parts = ([f"fitted to the data ({', '.join(fitted)})"] if fitted else []) + \
        ([f"given ({', '.join(given)})"] if given else [])
    rest = [g for g in layout.groups if g not in fitted and g not in given]
    if rest:
        parts.append(f"N(0, {scale:g}^2) ({', '.join(rest)})")
    return Base(mean, sd, fitted_mask, at, parts)


def widen_to_curvature(kernel, base: Base, params) -> Base:
    """The fitted sds raised to the model's own local scale 1 / sqrt(d^2 E_z / dz_i^2) where
    that is wider (the curvature averaged over a few data rows).

    Data narrower than the model -- an untrained model, a coordinate constant in the data
    -- would otherwise give a base narrower than the target, whose importance weights
    are heavy-tailed: log Z far too low with a standard error far too small (measured on
    an untrained 64 x 32 Gaussian-Bernoulli RBM and standardised digits: 32 nats low, SE
    0.5). The local scale is the conditional sd, never wider than the marginal one, so
    data drawn from the model are left as they are."""
    if not base.fitted.any() or len(base.points) == 0:
        return base
    curvature = kernel.curvature(base.points, params, 1e-2 * np.maximum(base.sd, np.median(base.sd)))
    with np.errstate(divide="ignore", invalid="ignore"):
        local = np.where((curvature > 0) & np.isfinite(curvature), 1.0 / np.sqrt(curvature), 0.0)
    widened = base.fitted & (local > base.sd)
    if not widened.any():
        return base
    parts = list(base.parts)
    parts[0] += f", widened to the model's local scale in {int(widened.sum())} of {len(widened)} coordinates"
    return base._replace(sd=np.where(widened, local, base.sd), parts=parts)


# --------------------------------------------------------------------------
# The annealing step


class ChainState(NamedTuple):
    """u [C, D]; E_u and its gradient there; the log weights [C]; the shared step size and
    the running sum of mean acceptances (0-d)."""

    position: Any
    energy: Any
    grad: Any
    log_weight: Any
    step_size: Any
    acceptance: Any


class AnnealingKernel:
    """The pure pieces of continuous AIS for one model and set of groups (built once per
    compiled graph: a later call, e.g. each epoch's evaluation, reuses the jitted step)."""

    def __init__(self, model, groups: tuple[str, ...], leapfrog: int):
        bk = model.backend
        self.backend, ops = bk, bk.ops
        self.layout = Layout.of(model.graph, groups)
        self.observed = summed_energy(model, groups, "AIS")
        self.transform = None
        if self.layout.bounded:
            from ebmlang.inference.transforms import bounded_transform

            self.transform = bounded_transform(bk, self.layout.low, self.layout.high)
        self.leapfrog = int(leapfrog)
        self.target = HMC_TARGET_ACCEPT if self.leapfrog > 1 else MALA_TARGET_ACCEPT

        def energy_u(moving, params, shift, scale):
            z = shift + scale * moving["u"]
            x = z if self.transform is None else self.transform.constrain(z)
            rows = self.observed.rows(params, self.layout.unflatten(ops, x))
            if self.transform is not None:
                rows = rows - self.transform.log_det_jacobian(z)
            return ops.sum(rows), rows

        self.energy_and_grad = bk.value_aux_and_grad(energy_u)
        self.step = bk.jit_step(self._draw, self._move)
        self.increment = bk.jit(self._increment)
        self.start = bk.jit(self._start)

    def curvature(self, points: np.ndarray, params, step: np.ndarray) -> np.ndarray:
        """The diagonal of E_z's Hessian [D] averaged over `points` [R, D] (z coordinates), by
        central differences of the gradient along each axis (`step` [D]), CURVATURE_ROWS
        rows per gradient pass (one batch shape: JAX compiles it once)."""
        bk, size = self.backend, self.layout.size
        zero, one = bk.asarray(np.zeros(size)), bk.asarray(np.ones(size))
        half = max(1, min(size, CURVATURE_ROWS // 2))
        total = np.zeros(size)
        for point in points:
            for start in range(0, size, half):
                axes = np.arange(start, min(start + half, size))
                rows = np.repeat(point[None], 2 * half, 0)
                n = np.arange(len(axes))
                rows[n, axes] += step[axes]
                rows[half + n, axes] -= step[axes]
                grad = np.asarray(bk.to_numpy(self.evaluate(bk.asarray(rows), params, zero, one)[1]), dtype=np.float64)
                total[axes] += (grad[n, axes] - grad[half + n, axes]) / (2.0 * step[axes])
        return total / len(points)

    def evaluate(self, u, params, shift, scale):
        _, rows, grads = self.energy_and_grad({"u": u}, params, shift, scale)
        return rows, grads["u"]

    def init(self, key, chains: int, params, shift, scale) -> ChainState:
        """Chains drawn from the base, with zero log weights."""
        # Through the backend's jit, so the state's arrays are placed as a step's outputs
        # are: JAX would otherwise compile the step a second time for its second call.
        return self.start(self.backend.normal(key, (chains, self.layout.size)), params, shift, scale)

    def _start(self, u, params, shift, scale) -> ChainState:
        ops = self.backend.ops
        energy, grad = self.evaluate(u, params, shift, scale)
        zero = ops.zeros_like(energy)
        return ChainState(u, energy, grad, zero, ops.sum(zero) + INITIAL_STEP, ops.sum(zero))

    def _draw(self, key, state: ChainState):
        momentum_key, accept_key = self.backend.split(key, 2)
        return (self.backend.normal(momentum_key, tuple(state.position.shape)),
                self.backend.uniform(accept_key, tuple(state.energy.shape)))

    def _increment(self, state: ChainState, previous, beta) -> ChainState:
        """The weight update from beta_(t-1) to beta_t at the chains' current points:
        log q(u) - log f(u) scaled by the beta step (q's constant is added on the host)."""
        base = 0.5 * self.backend.ops.sum(state.position * state.position, axis=-1)
        return state._replace(log_weight=state.log_weight + (beta - previous) * (base - state.energy))

    def _move(self, state: ChainState, draws, previous, beta, params, shift, scale):
        """The weight update, then one HMC transition leaving p_beta invariant."""
        ops = self.backend.ops
        state = self._increment(state, previous, beta)
        momentum, uniform = draws
        eps = state.step_size

        def hamiltonian(u, energy, p):
            return (1.0 - beta) * 0.5 * ops.sum(u * u, axis=-1) + beta * energy + 0.5 * ops.sum(p * p, axis=-1)

        start = hamiltonian(state.position, state.energy, momentum)
        u, grad, p = state.position, state.grad, momentum
        p = p - 0.5 * eps * ((1.0 - beta) * u + beta * grad)
        # L is static: the leapfrog unrolls under jit.
        for leap in range(self.leapfrog):
            u = u + eps * p
            energy, grad = self.evaluate(u, params, shift, scale)
            kick = eps if leap < self.leapfrog - 1 else 0.5 * eps
            p = p - kick * ((1.0 - beta) * u + beta * grad)
        log_ratio = start - hamiltonian(u, energy, p)
        # A NaN or infinite energy or gradient (a blown-up trajectory, a point a bound or a
        # constraint forbids) is a rejection, never a move.
        usable = ops.isfinite(log_ratio) & ops.isfinite(ops.sum(grad, axis=-1))
        log_accept = ops.where(usable, ops.minimum(log_ratio, ops.zeros_like(log_ratio)),
                               ops.full_like(log_ratio, -math.inf))
        accept = ops.log(uniform) < log_accept
        rate = ops.mean(ops.exp(log_accept))
        keep = accept[:, None]
        eps = ops.clip(eps * ops.exp(ADAPT_RATE * (rate - self.target)), *STEP_RANGE)
        return ChainState(ops.where(keep, u, state.position), ops.where(accept, energy, state.energy),
                          ops.where(keep, grad, state.grad), state.log_weight, eps, state.acceptance + rate)


def annealing_kernel(model, groups: tuple[str, ...], leapfrog: int) -> AnnealingKernel:
    return model.compiled.memo(("continuous ais", groups, int(leapfrog)),
                               lambda: AnnealingKernel(model, groups, leapfrog))


# --------------------------------------------------------------------------
# Entry points


def step_keys(bk, key, count: int):
    """`count` independent keys, split off in chunks of one size: JAX compiles a split
    once per number of keys (about a second), so one size serves every run length."""
    while count > 0:
        key, *chunk = bk.split(key, KEY_CHUNK + 1)
        yield from chunk[:count]
        count -= KEY_CHUNK


def continuous_ais(model, *, data=None, chains: int = 128, steps: int = 1000, seed: int = 0, base=None,
                   scale: float = 1.0, leapfrog: int = 5, betas=None, params=None) -> AISResult:
    """log Z of a model with continuous variables by AIS (module docstring): the
    continuous groups integrated, the discrete ones (independent given them) summed out.

    data: {group: array [N, *shape]} to fit the Gaussian base to (recommended: the base
      should have the scale of the model's distribution); base, scale: see `gaussian_base`.
    leapfrog: leapfrog steps per HMC transition (1: MALA). betas: a schedule instead of
      the sigmoid one of `steps` steps. params: the parameters (default the model's).
    The estimate of Z is unbiased; its log is biased low by about stderr^2 / 2.
    """
    if int(leapfrog) != leapfrog or leapfrog < 1:
        raise EbmError(f"AIS needs leapfrog >= 1 steps per transition (got {leapfrog!r})",
                       hint="leapfrog=1 is MALA, leapfrog=5 (default) a short HMC trajectory")
    groups = integrated_groups(model, "AIS")
    schedule = check_schedule(betas, steps, chains)
    if data is not None:
        data = prepare_data(model.graph, data, what="AIS data")
    kernel = annealing_kernel(model, groups, leapfrog)
    bk, layout = model.backend, kernel.layout
    params = model.params if params is None else params
    fitted = widen_to_curvature(kernel, gaussian_base(model, layout, kernel.transform, base, data, scale), params)
    mean, sd = fitted.mean, fitted.sd
    base_text = "Gaussian " + "; ".join(fitted.parts) + (" in the unconstrained coordinates" if layout.bounded else "")
    shift, scale_array = bk.asarray(mean), bk.asarray(sd)
    keys = step_keys(bk, bk.key(seed), len(schedule) - 1)
    state = kernel.init(next(keys), chains, params, shift, scale_array)
    beta = [bk.asarray(b) for b in schedule]
    for t in range(1, len(schedule) - 1):
        state = kernel.step(next(keys), state, beta[t - 1], beta[t], params, shift, scale_array)
    # The last update needs no transition after it.
    state = kernel.increment(state, beta[-2], beta[-1])
    transitions = len(schedule) - 2
    log_z0 = 0.5 * layout.size * math.log(2.0 * math.pi) + float(np.sum(np.log(sd)))
    mean_accept = float(bk.to_numpy(state.acceptance)) / max(transitions, 1)
    name = "MALA" if kernel.leapfrog == 1 else f"HMC ({kernel.leapfrog} leapfrog steps)"
    transition = (f"{name} at each temperature, step size adapted toward {kernel.target:.0%} acceptance "
                  f"(mean {mean_accept:.0%}, final step {float(bk.to_numpy(state.step_size)):.3g} in whitened "
                  f"coordinates); geometric path over {len(schedule) - 1} "
                  f"{'sigmoid-spaced ' if betas is None else ''}temperatures; {kernel.observed.description}")
    log_weights = np.asarray(bk.to_numpy(state.log_weight), dtype=np.float64)
    return summarize_weights(log_weights, log_z0, steps=len(schedule) - 1, transition=transition, base=base_text)


def observed_log_density(model, data, *, params=None, what: str = "log_prob by AIS") -> np.ndarray:
    """-E_obs(data) per example, float64 [N]: the unnormalised log-probability of the data
    groups with every other group summed out exactly (an EbmError when one cannot be)."""
    graph = model.graph
    hidden = [g for g in graph.variables if g not in data]
    continuous_hidden = [g for g in hidden if not graph.variables[g].domain.is_discrete]
    if continuous_hidden:
        var = graph.variables[continuous_hidden[0]]
        raise EbmError(f"{what} needs log p({', '.join(data)}) with '{var.name}' ({var.domain}) integrated "
                       "out of every example: an integral per example, which AIS of log Z does not give",
                       var.span, source=graph.source or None,
                       hint=f"give data for '{var.name}' too (the joint log-probability), "
                            "or compare models by their energies")
    if hidden and not is_independent_set(graph, whole_groups(graph, hidden)):
        var = graph.variables[hidden[0]]
        raise EbmError(f"{what} sums {', '.join(hidden)} out of each example exactly, but they are not "
                       "independent given the data", var.span, source=graph.source or None,
                       hint="give data for them too (the joint log-probability)")
    params = model.params if params is None else params
    bk = model.backend
    observed = model.compiled.memo(("ais observed energy", tuple(data)),
                                   lambda: summed_energy(model, tuple(data), what))
    size = len(next(iter(data.values())))
    out = [np.asarray(bk.to_numpy(observed.rows(params, {g: bk.asarray(v[a:a + SCORE_CHUNK])
                                                            for g, v in data.items()})), dtype=np.float64)
           for a in range(0, size, SCORE_CHUNK)]
    return -np.concatenate(out)
