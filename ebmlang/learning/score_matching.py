"""Score matching: fitting a continuous energy without sampling from it or knowing log Z.

The model's score is s(x) = -grad_x E_obs(x) (observed_energy.py: hidden discrete units
summed out exactly). Two unbiased estimators of Hyvarinen's (2005) objective
E_data[ 1/2 |s(x)|^2 + tr grad_x s(x) ]:

* denoising score matching (Vincent 2011): perturb each example, x~ = x + sigma eps, and
  match the score of the perturbed data, minimising
  1/2 E |grad_x E_obs(x~) - eps / sigma|^2 (reported times sigma^2, the weighting of Song
  & Ermon 2019, which keeps the figure O(1) at every noise level). It fits the data convolved with
  N(0, sigma^2): sigma is annealed over the first half of the run (`noise=(first, last)`,
  geometric) so that early steps see smoothed data and the rest fit the data nearly
  unblurred. Each example is perturbed by an antithetic pair, +eps and -eps: the part
  of the gradient linear in eps cancels, without which its variance grows as 1/sigma^2.
* sliced score matching (Song et al. 2019, the variance-reduced form for Gaussian
  projections v): E[ 1/2 |grad E|^2 - v^T H v ], with H v a Hessian-vector product
  (one more differentiation), no noise and no bias.

For a Gaussian model both reach the maximum-likelihood mean and precision (the score
matching estimator of a Gaussian is its MLE). Each step differentiates the loss in the
params through the state gradient: `backend.inner_grad` keeps that gradient
differentiable (torch: create_graph; JAX: nested grad).
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ebmlang.errors import EbmError
from ebmlang.learning.observed_energy import ObservedEnergy
from ebmlang.learning.weighted import WeightedStates

# Default noise of denoising score matching, as fractions of the data's standard deviation.
DEFAULT_NOISE = (0.5, 0.01)
# The evaluation's score-matching loss takes the Hessian's trace exactly up to this many
# data dimensions, else averages this many random projections per example.
EXACT_TRACE_DIMS = 64
EVALUATION_PROJECTIONS = 8
# The share of the run over which the noise falls to its last value: the rest of the run
# fits at that noise (the params lag a moving optimum, most of all at a decaying lr).
ANNEALED_SHARE = 0.5


class ScoreMatching:
    """`fit(method="dsm")` (sliced=False) or `"ssm"` (sliced=True): see the module docstring."""

    def __init__(self, model, data: Mapping[str, np.ndarray], *, sliced: bool, noise=None, projections: int = 1,
                 seed: int = 0):
        what = "sliced score matching" if sliced else "denoising score matching"
        self.model = model
        self.sliced = bool(sliced)
        self.observed = ObservedEnergy(model, tuple(data), what)
        graph = model.graph
        self.continuous = self.observed.continuous
        if not self.continuous:
            variable = graph.variables[next(iter(data))]
            raise EbmError(f"{what} needs continuous data: the score is the energy's gradient in the data, "
                           "and every group with data here is discrete", variable.span, source=graph.source or None,
                           hint="use method='pcd' or 'exact' for discrete data")
        if int(projections) != projections or projections < 1:
            raise EbmError(f"projections must be a whole number >= 1, got {projections!r}")
        self.projections = int(projections)
        # The data's scale: the mean sd of its coordinates (not of all values pooled, which
        # would count the spread of the means as noise).
        spread = float(np.mean(np.concatenate([
            np.std(np.asarray(data[g], dtype=np.float64).reshape(len(data[g]), -1), axis=0)
            for g in self.continuous])))
        self.schedule = _noise_schedule(noise, spread or 1.0)
        self.sigma = self.schedule[0]
        backend = model.backend
        key = ("score matching", self.continuous, self.observed.hidden)
        self.sliced_value = model.compiled.memo(key + ("sliced",),
                                                lambda: backend.value_aux_and_grad(self._sliced_loss))
        self.value_aux_and_grad = self.sliced_value if self.sliced else model.compiled.memo(
            key + ("denoising",), lambda: backend.value_aux_and_grad(self._denoising_loss))
        self.name = self._describe()

    def _describe(self) -> str:
        scored = self.observed.description
        if self.sliced:
            return (f"sliced score matching (variance-reduced, {self.projections} Gaussian projection"
                    f"{'s' if self.projections > 1 else ''} per example) of {scored}")
        first, last = self.schedule
        noise = f"noise sd {first:.3g}" if first == last else f"noise sd {first:.3g} -> {last:.3g} (geometric)"
        return f"denoising score matching, {noise}, of {scored}"

    # -- the schedule -------------------------------------------------------------
    def follow_schedule(self, progress: float, rate: float) -> None:
        """Set the noise for `progress` in [0, 1] of the run (fit calls this every step)."""
        first, last = self.schedule
        self.sigma = first * (last / first) ** min(max(float(progress) / ANNEALED_SHARE, 0.0), 1.0)

    # -- losses (pure backend code, differentiated in the params) ------------------
    def _gradient(self, params, moving, fixed):
        """grad_x E_obs at the continuous groups `moving`, the rest `fixed`: a dict."""
        backend = self.model.backend
        return backend.inner_grad(lambda xs, p: self.observed.rows(p, {**fixed, **xs}))(moving, params)

    def _denoising_loss(self, params, noisy, eps, fixed, sigma):
        ops = self.model.backend.ops
        grads = self._gradient(params, noisy, fixed)
        rows = None
        for g in noisy:
            miss = ops.reshape(sigma * grads[g] - eps[g], (eps[g].shape[0], -1))
            part = 0.5 * ops.sum(miss * miss, axis=-1)
            rows = part if rows is None else rows + part
        # Differentiated without the sigma^2 weight (rows keep it, for the figures): the
        # gradient keeps its scale while the noise anneals, which Adam's slow second-moment
        # estimate needs (weighted, it shrinks as sigma^2 and the params stop moving).
        return ops.mean(rows) / (sigma * sigma), rows

    def _sliced_loss(self, params, points, directions, fixed):
        backend, ops = self.model.backend, self.model.backend.ops

        def along(xs, p):  # v . grad E per row; its gradient in x is the Hessian times v
            grads = self._gradient(p, xs, fixed)
            return sum(ops.sum(ops.reshape(grads[g] * directions[g], (grads[g].shape[0], -1)), axis=-1)
                       for g in xs)

        grads = self._gradient(params, points, fixed)
        hessian_v = backend.inner_grad(along)(points, params)
        rows = None
        for g in points:
            batch = points[g].shape[0]
            half_square = 0.5 * ops.sum(ops.reshape(grads[g] * grads[g], (batch, -1)), axis=-1)
            curvature = ops.sum(ops.reshape(directions[g] * hessian_v[g], (batch, -1)), axis=-1)
            part = half_square - curvature
            rows = part if rows is None else rows + part
        return ops.mean(rows), rows

    # -- fit's interface --------------------------------------------------------------
    def _arguments(self, key, batch, sliced: bool, coordinates: np.ndarray | None = None,
                   projections: int | None = None):
        backend = self.model.backend
        state = {g: backend.asarray(batch[g]) for g in self.observed.observed}
        moving = {g: state[g] for g in self.continuous}
        fixed = {g: v for g, v in state.items() if g not in moving}
        keys = backend.split(key, len(moving))
        if sliced:
            exact = coordinates is not None
            reps = coordinates.shape[0] if exact else (projections or self.projections)
            if reps > 1:  # each example once per projection
                moving = {g: backend.ops.concatenate([v] * reps, 0) for g, v in moving.items()}
                fixed = {g: backend.ops.concatenate([v] * reps, 0) for g, v in fixed.items()}
            if exact:
                directions = self._coordinate_directions(coordinates, moving)
            else:
                directions = {g: backend.normal(k, tuple(v.shape)) for (g, v), k in zip(moving.items(), keys)}
            return moving, directions, fixed
        # Antithetic pairs, x + sigma eps and x - sigma eps: the part of the loss's gradient
        # linear in eps, whose variance grows as 1 / sigma^2 against the signal, cancels.
        ops = backend.ops
        half = {g: backend.normal(k, tuple(v.shape)) for (g, v), k in zip(moving.items(), keys)}
        eps = {g: ops.concatenate([e, -e], 0) for g, e in half.items()}
        noisy = {g: ops.concatenate([v, v], 0) + self.sigma * eps[g] for g, v in moving.items()}
        fixed = {g: ops.concatenate([v, v], 0) for g, v in fixed.items()}
        return noisy, eps, fixed, backend.asarray(np.float64(self.sigma))

    def _coordinate_directions(self, coordinates: np.ndarray, moving) -> dict:
        """sqrt(d) e_i for every coordinate i, each copy of the batch one of them: their
        v^T H v average to tr H exactly (and E[v v^T] = I, as for random projections)."""
        backend = self.model.backend
        batch = next(iter(moving.values())).shape[0] // coordinates.shape[0]
        rows = np.repeat(coordinates, batch, axis=0) * np.sqrt(coordinates.shape[0])
        directions, start = {}, 0
        for g, v in moving.items():
            width = int(np.prod(v.shape[1:]))
            directions[g] = backend.asarray(rows[:, start:start + width].reshape(tuple(v.shape)))
            start += width
        return directions

    def loss_and_grads(self, key, batch, params):
        """(mean loss per example, gradient dict in the params) on one batch."""
        _, rows, grads = self.value_aux_and_grad(dict(params), *self._arguments(key, batch, self.sliced))
        return float(np.mean(self.model.backend.to_numpy(rows))), grads

    def step(self, key, batch, params) -> WeightedStates:
        loss, grads = self.loss_and_grads(key, batch, params)
        stats = {} if self.sliced else {"noise_sd": float(self.sigma)}
        return WeightedStates({}, np.zeros(0), loss, stats, grads=[grads])

    def evaluate(self, key, data, params) -> dict:
        """Hyvarinen's score-matching objective on the evaluation data, estimated by the
        sliced form (unbiased, no constant, no noise: lower is better, comparable across
        epochs and between dsm and ssm), the curve that means something when no
        likelihood does."""
        dims = sum(int(np.prod(self.model.graph.variables[g].shape)) for g in self.continuous)
        # The trace exactly from every coordinate where there are few (no projection noise
        # in the curve); else many random projections.
        coordinates = np.eye(dims) if dims <= EXACT_TRACE_DIMS else None
        arguments = self._arguments(key, data, True, coordinates, max(self.projections, EVALUATION_PROJECTIONS))
        _, rows, _ = self.sliced_value(dict(params), *arguments)
        return {"score_matching_loss": float(np.mean(self.model.backend.to_numpy(rows)))}

    def state_arrays(self) -> dict:
        return {}

    def load_state_arrays(self, arrays) -> None:
        return None


def _noise_schedule(noise, spread: float) -> tuple[float, float]:
    """(first, last) noise sd: a number is constant; None is DEFAULT_NOISE times the data's sd."""
    if noise is None:
        return DEFAULT_NOISE[0] * spread, DEFAULT_NOISE[1] * spread
    values = (noise, noise) if np.isscalar(noise) else tuple(noise)
    if len(values) != 2 or not all(np.isfinite(float(v)) and float(v) > 0 for v in values):
        raise EbmError(f"noise must be a positive number or (first, last) positive numbers, got {noise!r}",
                       hint="e.g. noise=0.1, or noise=(1.0, 0.01) annealed geometrically over the run")
    return float(values[0]), float(values[1])
