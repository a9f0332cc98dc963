"""Noise-contrastive estimation (Gutmann & Hyvarinen 2010, 2012): fitting a continuous
energy, and its log-normaliser, by telling the data apart from noise of a known density.

The model is read as a normalised density with a learnt log-normaliser c,

    log p(x) = -E_obs(x) - c        (observed_energy.py: hidden discrete units summed out),

and a logistic classifier with log-odds G(x) = log p(x) - log(nu q(x)) separates the data
from nu noise samples per example drawn from q. Minimising its loss

    J = -mean_data log sigmoid(G) - nu mean_noise log sigmoid(-G)

is consistent for the params and for c = log Z (the classifier is Bayes-optimal only at
p = p_data), and needs neither samples from the model nor its partition function.

* q is a Gaussian fitted to the flattened data once (mean, full covariance plus a small
  ridge; a diagonal one above FULL_COVARIANCE_LIMIT coordinates), sampled and scored
  exactly; its noise is drawn fresh every step, so over a run the noise term approaches
  its expectation under q. Noise outside a bounded domain has p = 0: it is classified as
  noise with certainty and adds nothing (its energy is never evaluated there).
* c is trained with the params, its gradient from the same differentiation, by its own
  Adam at fit's scheduled lr (fit's optimiser sees the model's params only). It starts at the
  importance-sampling estimate of log Z under q, log mean_q exp(-E_obs) / q, so it begins
  near its optimum for the initial params rather than many Adam steps away.
"""
from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from ebmlang.budget import Budget
from ebmlang.errors import EbmError, check_real_number
from ebmlang.learning.observed_energy import ObservedEnergy
from ebmlang.learning.optim import make_optimizer
from ebmlang.learning.weighted import WeightedStates

WHAT = "noise-contrastive estimation"
# Above this many data coordinates the noise Gaussian is diagonal: a full covariance would
# cost D^2 memory and a D^3 factorisation, and NCE only needs q to cover the data.
FULL_COVARIANCE_LIMIT = 2048
# The covariance's ridge, relative to the mean variance: keeps the Cholesky factor
# invertible in float32 when the data are (nearly) degenerate, and widens q a little,
# which does no harm (q must cover the data; it need not match them).
RIDGE = 1e-3
# Noise draws for the importance-sampling start of log Z.
INITIAL_DRAWS = 1024
# The key of c among the differentiated arrays: not a valid parameter name.
LOG_Z = "log Z"


class GaussianNoise:
    """q = N(mean, cov + ridge) over the flattened data [N, D] (numpy), as backend arrays:
    `arrays` = {mean [D], factor (L [D, D] or sd [D]), whiten (L^-T or 1/sd), log_norm}."""

    def __init__(self, backend, flat: np.ndarray):
        flat = np.asarray(flat, dtype=np.float64)
        size = flat.shape[1]
        self.full = size <= FULL_COVARIANCE_LIMIT
        mean = flat.mean(axis=0)
        centred = flat - mean
        variances = np.mean(centred ** 2, axis=0)
        ridge = RIDGE * float(np.mean(variances)) or 1.0  # constant data: unit-scale noise
        if self.full:
            covariance = centred.T @ centred / len(flat) + ridge * np.eye(size)
            factor = np.linalg.cholesky(covariance)
            whiten = np.linalg.inv(factor).T
            log_det = float(np.sum(np.log(np.diag(factor))))
        else:
            factor = np.sqrt(variances + ridge)
            whiten = 1.0 / factor
            log_det = float(np.sum(np.log(factor)))
        self.mean, self.factor = mean, factor
        self.arrays = {"mean": backend.asarray(mean), "factor": backend.asarray(factor),
                       "whiten": backend.asarray(whiten),
                       "log_norm": backend.asarray(0.5 * size * math.log(2 * math.pi) + log_det)}

    @property
    def description(self) -> str:
        return "a Gaussian fitted to the data (mean, " + ("full covariance)" if self.full else "diagonal covariance)")


def points(ops, noise: Mapping, eps):
    """Noise points mean + L eps per row of standard normal `eps` [M, D]."""
    if len(noise["factor"].shape) == 2:
        return noise["mean"] + ops.matmul(eps, ops.swapaxes(noise["factor"], 0, 1))
    return noise["mean"] + eps * noise["factor"]


def log_density(ops, noise: Mapping, flat):
    """log q per row of `flat` [B, D]."""
    centred = flat - noise["mean"]
    white = ops.matmul(centred, noise["whiten"]) if len(noise["whiten"].shape) == 2 else centred * noise["whiten"]
    return -0.5 * ops.sum(white * white, axis=1) - noise["log_norm"]


class Layout:
    """The continuous data groups as one flat row [D] per example, and back."""

    def __init__(self, graph, groups):
        self.groups = tuple(groups)
        self.shapes = {g: tuple(graph.variables[g].shape) for g in self.groups}
        sizes = [int(np.prod(self.shapes[g], dtype=np.int64)) for g in self.groups]
        self.offsets = dict(zip(self.groups, np.cumsum([0] + sizes)[:-1].tolist()))
        self.sizes = dict(zip(self.groups, sizes))
        self.size = int(sum(sizes))
        # Bounds per flat coordinate (None: no bounded group); noise outside has p = 0.
        low, high = np.full(self.size, -np.inf), np.full(self.size, np.inf)
        for g in self.groups:
            domain = graph.variables[g].domain
            if domain.kind == "bounded":
                start = self.offsets[g]
                low[start:start + self.sizes[g]], high[start:start + self.sizes[g]] = domain.low, domain.high
        self.bounds = (low, high) if np.isfinite(low).any() or np.isfinite(high).any() else None

    def flatten(self, ops, state: Mapping):
        rows = state[self.groups[0]].shape[0]
        return ops.concatenate([ops.reshape(state[g], (rows, -1)) for g in self.groups], 1)

    def unflatten(self, ops, flat) -> dict:
        rows = flat.shape[0]
        return {g: ops.reshape(flat[:, self.offsets[g]:self.offsets[g] + self.sizes[g]], (rows,) + self.shapes[g])
                for g in self.groups}

    def numpy_rows(self, data: Mapping) -> np.ndarray:
        return np.concatenate([np.asarray(data[g], dtype=np.float64).reshape(len(data[g]), -1)
                               for g in self.groups], axis=1)


def nce_loss(observed: ObservedEnergy, layout: Layout):
    """The pure loss `(x, batch, eps, noise, ratio) -> (J, accuracy)`: x = params with c
    under LOG_Z, batch the data (backend), eps [M, D] standard normal draws, noise the
    GaussianNoise arrays (with `low`, `high` for bounded data), ratio = M / B."""
    ops = observed.compiled.backend.ops

    def loss(x, batch, eps, noise, ratio):
        params = {name: value for name, value in x.items() if name != LOG_Z}
        data = layout.flatten(ops, batch)
        size = data.shape[0]
        drawn = points(ops, noise, eps)
        inside = None
        if layout.bounds is not None:  # out-of-bounds noise is scored at the data mean, then masked
            kept = ops.logical_and(drawn >= noise["low"], drawn <= noise["high"])
            inside = ops.all(kept, axis=1)
            drawn = ops.where(kept, drawn, noise["mean"] + 0.0 * drawn)
        rows = ops.concatenate([data, drawn], 0)
        energies = observed.rows(params, layout.unflatten(ops, rows))
        log_q = ops.concatenate([log_density(ops, noise, data),
                                 -0.5 * ops.sum(eps * eps, axis=1) - noise["log_norm"]], 0)
        odds = -energies - x[LOG_Z] - log_q - ops.log(ratio)
        data_odds, noise_odds = odds[:size], odds[size:]
        noise_loss = ops.softplus(noise_odds)  # -log sigmoid(-G), stably
        right = ops.as_float(noise_odds < 0)
        if inside is not None:
            noise_loss = ops.where(inside, noise_loss, 0.0 * noise_loss)
            right = ops.where(inside, right, 1.0 + 0.0 * right)
        value = ops.mean(ops.softplus(-data_odds)) + ratio * ops.mean(noise_loss)
        accuracy = (ops.sum(ops.as_float(data_odds > 0)) + ops.sum(right)) / (size + eps.shape[0])
        return value, accuracy

    return loss


class NoiseContrastive:
    """`fit(method="nce")`: see the module docstring. `log_normaliser` is the learnt log Z."""

    # `step` reads its batch as numpy or backend arrays alike: fit gathers them on the backend.
    takes_backend_batches = True

    def __init__(self, model, data: Mapping[str, np.ndarray], *, noise_ratio: float = 1.0, seed: int = 0,
                 lr: float = 1e-2):
        self.noise_ratio = check_real_number("noise_ratio", noise_ratio, positive=True)
        graph = model.graph
        self.model = model
        self.budget = getattr(model, "budget", None) or Budget()
        discrete = [g for g in data if graph.variables[g].domain.is_discrete]
        if discrete:
            variable = graph.variables[discrete[0]]
            raise EbmError(f"{WHAT} (method='nce') needs continuous data, but '{variable.name}' is "
                           f"{variable.domain.kind}: its noise is a Gaussian, a density over real values",
                           variable.span, source=graph.source or None,
                           hint="for discrete data use method='pcd' (sampled negatives) or 'exact' (enumeration)")
        self.observed = ObservedEnergy(model, tuple(data), WHAT)
        self.layout = Layout(graph, tuple(data))
        backend = model.backend
        self.noise = GaussianNoise(backend, self.layout.numpy_rows(data))
        if self.layout.bounds is not None:
            self.noise.arrays.update(low=backend.asarray(self.layout.bounds[0]),
                                     high=backend.asarray(self.layout.bounds[1]))
        # Once per graph and data groups: a later fit of the same model reuses the jitted step.
        key = ("noise-contrastive estimation", self.layout.groups, self.observed.hidden)
        self.value_aux_and_grad = model.compiled.memo(
            key, lambda: backend.value_aux_and_grad(nce_loss(self.observed, self.layout)))
        self.lr = self.rate = float(lr)
        self.log_z = backend.asarray(self._initial_log_z(backend.key(int(seed) + 7933), model.params))
        self.optimizer = make_optimizer(backend, "adam", {"log_z": self.log_z}, self.lr)
        self.name = (f"{WHAT}: {self.noise_ratio:g} noise sample{'s' if self.noise_ratio != 1 else ''} per example "
                     f"from {self.noise.description}; log Z learnt"
                     + ("" if self.observed.free is None else f"; {self.observed.description}"))

    def follow_schedule(self, progress: float, rate: float) -> None:
        """c follows fit's scheduled learning rate (fit calls this every step)."""
        self.rate = float(rate)

    @property
    def log_normaliser(self) -> float:
        """The learnt c = log Z: log p(x) = -E_obs(x) - c."""
        return float(self.model.backend.to_numpy(self.log_z))

    def _initial_log_z(self, key, params) -> float:
        """log mean_q exp(-E_obs) / q over INITIAL_DRAWS noise points (0 if not finite)."""
        bk, ops = self.model.backend, self.model.backend.ops
        eps = bk.normal(key, (INITIAL_DRAWS, self.layout.size))
        drawn = points(ops, self.noise.arrays, eps)
        energies = np.asarray(bk.to_numpy(self.observed.rows(params, self.layout.unflatten(ops, drawn))),
                              dtype=np.float64)
        log_q = -0.5 * np.sum(np.asarray(bk.to_numpy(eps), dtype=np.float64) ** 2, axis=1) \
            - float(bk.to_numpy(self.noise.arrays["log_norm"]))
        log_w = -energies - log_q
        if self.layout.bounds is not None:
            low, high = self.layout.bounds
            flat = np.asarray(bk.to_numpy(drawn), dtype=np.float64)
            log_w = np.where(np.all((flat >= low) & (flat <= high), axis=1), log_w, -np.inf)
        top = np.max(log_w)
        if not np.isfinite(top):
            return 0.0
        estimate = top + math.log(np.mean(np.exp(log_w - top)))
        return estimate if math.isfinite(estimate) else 0.0

    def _loss(self, key, batch, params, log_z):
        """(J, accuracy, gradient dict with c under LOG_Z) on `batch` with fresh noise."""
        bk = self.model.backend
        batch = {g: bk.asarray(batch[g]) for g in self.layout.groups}
        size = int(batch[self.layout.groups[0]].shape[0])
        count = max(1, int(round(self.noise_ratio * size)))
        self.budget.check(8.0 * count * self.layout.size, f"{count:,} noise samples of {self.layout.size:,} values "
                          f"(noise_ratio={self.noise_ratio:g} per example)")
        eps = bk.normal(key, (count, self.layout.size))
        x = {**params, LOG_Z: log_z}
        value, accuracy, grads = self.value_aux_and_grad(x, batch, eps, self.noise.arrays,
                                                         bk.asarray(count / size))
        return float(bk.to_numpy(value)), float(bk.to_numpy(accuracy)), grads

    def step(self, key, batch: Mapping, params) -> WeightedStates:
        """The NCE loss of the batch against fresh noise; the params' gradient goes to fit's
        optimiser (`grads`), c's to its own Adam step here."""
        value, accuracy, grads = self._loss(key, batch, params, self.log_z)
        slope = grads.pop(LOG_Z)
        self.log_z = self.optimizer.step({"log_z": slope}, self.rate)["log_z"]
        return WeightedStates({}, np.zeros(0), value, {"log_z": self.log_normaliser, "accuracy": accuracy},
                              grads=[grads])

    def evaluate(self, key, data: Mapping, params) -> dict:
        """c at the end of the epoch, and the loss and accuracy on `data` against fresh noise."""
        value, accuracy, _ = self._loss(key, data, params, self.log_z)
        return {"log_z": self.log_normaliser, "eval_loss": value, "eval_accuracy": accuracy}

    def state_arrays(self) -> dict:
        optimizer = {f"optimizer/{k}": v for k, v in self.optimizer.state_arrays().items()}
        return {"log_z": np.asarray(self.log_normaliser, dtype=np.float64), **optimizer}

    def load_state_arrays(self, arrays) -> None:
        if "log_z" not in arrays:
            return
        bk = self.model.backend
        self.optimizer.set_params({"log_z": bk.asarray(np.asarray(arrays["log_z"]))})
        self.optimizer.load_state_arrays({k[len("optimizer/"):]: v for k, v in arrays.items()
                                          if k.startswith("optimizer/")})
        self.log_z = self.optimizer.params()["log_z"]
