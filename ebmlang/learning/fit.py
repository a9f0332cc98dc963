"""`fit`: learn a model's parameters from data.

    result = model.fit({"v": images}, epochs=10, batch_size=10, lr=0.1, optimizer="sgd")

An objective (objectives.py) turns each minibatch into weighted states, whose weighted
energy (and free-energy) gradients are the gradient of the loss; the backend's optimizer
(torch.optim or optax) takes the step. Every random draw comes from a key derived from (seed, epoch, step),
and the example order of an epoch from (seed, epoch), so a run resumed from a
checkpoint continues exactly as the uninterrupted run would have.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ebmlang.errors import EbmError, did_you_mean
from ebmlang.learning.dataset import (
    epoch_order,
    minibatches,
    num_examples,
    prepare_data,
    resident_data,
    step_seed,
    step_seeds,
)
from ebmlang.learning.evaluation import ais_log_likelihood
from ebmlang.learning.fused import STAT_NAMES as FUSED_STAT_NAMES
from ebmlang.learning.fused import fused_epochs
from ebmlang.learning.objectives import make_objective
from ebmlang.learning.optim import SCHEDULES, clip_by_global_norm, make_optimizer, scheduled_lr
from ebmlang.learning.recipes import noisy_inputs, resolve_recipe
from ebmlang.learning.weighted import weighted_gradient

METHODS = ("auto", "ml", "cd", "pcd", "exact", "contrastive", "jem", "dsm", "ssm", "nce")
# The step number whose derived key drives an epoch's evaluation (never a training step).
EVALUATION_STEP = 2 ** 31 - 1
# Run an epoch as one compiled scan where possible (learning/fused.py); tests switch it
# off to compare with the step-by-step path.
FUSE_EPOCHS = True


@dataclass
class FitResult:
    """What `fit` did: final params (numpy), one history record per epoch, and the method."""

    params: dict
    history: list = field(default_factory=list)
    method: str = ""
    description: str = ""
    resumed_from: int | None = None

    @property
    def losses(self) -> list[float]:
        return [record["loss"] for record in self.history]

    def metric(self, name: str) -> list:
        """One metric over the epochs (None where it was not computed)."""
        return [record.get(name) for record in self.history]

    def __repr__(self) -> str:
        last = self.history[-1] if self.history else {}
        shown = ", ".join(f"{k}={v:.4g}" for k, v in last.items()
                          if isinstance(v, float) and k not in ("seconds", "lr"))
        resumed = f", resumed after epoch {self.resumed_from}" if self.resumed_from else ""
        return (f"FitResult({self.method}: {len(self.history)} epochs{resumed}; last: {shown})\n"
                f"  how: {self.description}")


def fit(model, data, *, method: str = "auto", epochs: int = 10, batch_size: int = 64, lr: float = 1e-2,
        optimizer: str = "adam", momentum: float = 0.0, lr_schedule=None, k: int = 1, persistent: bool = True,
        chains: int | None = None, loss: str | None = None, margin: float = 1.0, gen_weight: float = 1.0,
        train: Sequence[str] | str | None = None, weight_decay: float = 0.0, grad_clip: float | None = None,
        energy_reg: float | None = None, langevin=None, seed: int = 0, progress: bool = True, eval_every: int = 1,
        eval_data=None, eval_size: int = 500, checkpoint_dir=None, checkpoint_every: int = 1,
        resume: bool = True, callback: Callable | None = None, ema: float | None = None,
        rao_blackwell: str = "classes", noise=None, projections: int = 1, noise_ratio: float = 1.0,
        eval_ais=None, recipe: str | None = None, data_noise: float | None = None, known=None,
        known_fraction: float = 0.5) -> FitResult:
    """Fit `model.params` to `data` ({group: array [N, *shape]}); updates the model in place.

    method: "auto" (a contrastive loss when `loss` is given, else maximum likelihood),
      "cd" / "pcd" (maximum likelihood with CD-k / persistent chains), "ml" (as `persistent`
      says), "exact" (likelihood gradient by enumeration, small discrete models),
      "contrastive" (a `loss`, default "nll"), "jem" (classifier + generative log p(x)),
      "dsm" / "ssm" (denoising / sliced score matching) and "nce" (noise-contrastive
      estimation), which need no sampling: for continuous data, hidden groups summed exactly.
    eval_ais: True or {"chains", "steps", ...} -- also record the held-out log-likelihood by
      AIS (`ais_log_likelihood`: log_likelihood, its _se and the weights' _ess) at every
      evaluation, for models with continuous variables, where no exact one exists.
    Score matching and NCE (learning/score_matching.py, nce.py): `noise` -- DSM's noise sd,
      a number or (first, last) annealed geometrically over the first half of the run
      (default: from 0.5 to 0.01 times the data's sd); `projections` -- SSM's random directions per example;
      `noise_ratio` -- NCE's noise samples per data example.
    Maximum likelihood: negatives by block Gibbs (discrete), short-run Langevin from a
      replay buffer (continuous; `langevin={"steps", "step_size", "noise_scale", "grad_clip",
      "buffer_size", "reinit_prob"}`) or both alternating; `k` sweeps per update; hidden
      groups (no data) are summed exactly when their units are conditionally independent.
    loss: "energy", "perceptron", "hinge" (with `margin`), "log" or "nll" for models with
      discrete targets (latent discrete groups with values in `data`).
    optimizer "adam" | "sgd" (`momentum`), `lr`, `lr_schedule` None | "cosine" | "step" |
      callable(epoch) -> lr; `weight_decay` (L2), `grad_clip` (global norm), `energy_reg`
      (alpha * (E_pos^2 + E_neg^2)); `train`: param-name prefixes to train (others frozen).
    Tracking every `eval_every` epochs on `eval_data` (default: up to `eval_size` training
      examples): exact log-likelihood where cheap, reconstruction error, accuracy.
    checkpoint_dir: save params + optimizer + chain state every `checkpoint_every` epochs and,
      with `resume`, continue from the newest checkpoint there (same options required).
    rao_blackwell: what maximum likelihood sums out of the chains exactly in the negative
      phase: "classes" (each colour class in turn, the estimators averaged: lowest variance),
      "hidden" (the hidden units only, as the data phase does: the textbook CD / PCD
      gradient, one estimator) or "none" (the chains' plain energies).
    ema: keep an exponential moving average of the trained params (decay per step, e.g.
      0.99) and end with the averaged params (Polyak averaging: it removes most of the
      step-to-step noise of stochastic gradients, which lowers the likelihood at the end).
    recipe: None, "igebm" or "jem" (the default for method "jem") -- start from a published
      recipe's Langevin settings, energy_reg and data_noise (learning/recipes.py lists them
      with their sources); any of those passed here overrides the recipe's.
    data_noise: sd of Gaussian noise added to the continuous inputs of every training batch
      (clipped into declared bounds), as JEM does; default 0 (the recipe's).
    known: {group: bool mask} -- conditional negatives (learning/conditional.py): a
      `known_fraction` of the replay chains hold the masked entries at their batch row's
      values and sample the rest, so the model also learns p(rest | known) (inpainting).
    callback(model, record) after each epoch; returning False stops early.
    """
    started = time.perf_counter()
    graph = model.graph
    data = prepare_data(graph, data)
    _check_options(epochs=epochs, batch_size=batch_size, lr=lr, k=k, checkpoint_every=checkpoint_every,
                   eval_every=eval_every, lr_schedule=lr_schedule, method=method)
    if eval_ais and all(v.domain.is_discrete for v in graph.variables.values()):
        raise EbmError("eval_ais estimates the log-likelihood of models with continuous variables; this one "
                       "is all discrete", hint="drop eval_ais: the history records the exact log-likelihood "
                                               "where it is cheap")
    settings = resolve_recipe(recipe, method, langevin=langevin, energy_reg=energy_reg, data_noise=data_noise,
                              ema=ema)
    langevin, energy_reg, ema = settings.langevin, settings.energy_reg, settings.ema
    _check_more_options(model, chains=chains, seed=seed, eval_size=eval_size, grad_clip=grad_clip,
                        momentum=momentum, margin=margin, gen_weight=gen_weight, weight_decay=weight_decay,
                        energy_reg=energy_reg, checkpoint_dir=checkpoint_dir, callback=callback)
    n = num_examples(data)
    batch_size = min(int(batch_size), n)
    chains = int(chains or batch_size)
    names = trainable_names(model.params, train)
    optim = make_optimizer(model.backend, optimizer, {name: model.params[name] for name in names}, lr, momentum)
    objective = make_objective(model, data, method=method, loss=loss, margin=margin, k=k, persistent=persistent,
                               chains=chains, langevin=langevin, energy_reg=energy_reg, gen_weight=gen_weight,
                               seed=seed, rao_blackwell=rao_blackwell,
                               scoring=dict(noise=noise, projections=projections, noise_ratio=noise_ratio, lr=lr),
                               known=known, known_fraction=known_fraction)
    average = ParameterAverage(ema) if ema is not None else None
    evaluation = _evaluation_data(graph, data, eval_data, eval_size, seed)
    # Hashing the data costs tens of milliseconds on large sets: only checkpoints need it.
    fingerprint = None if checkpoint_dir is None else _fingerprint(model, data, names, objective.name, dict(
        method=method, loss=loss, margin=margin, gen_weight=gen_weight, seed=seed, batch_size=batch_size,
        optimizer=optimizer, lr=lr, momentum=momentum, lr_schedule=_schedule_name(lr_schedule),
        epochs=epochs if lr_schedule is not None else None, k=k, persistent=persistent, chains=chains,
        weight_decay=weight_decay, grad_clip=grad_clip, energy_reg=energy_reg, ema=ema, rao_blackwell=rao_blackwell,
        langevin=dataclasses.asdict(langevin), noise=noise, projections=projections, noise_ratio=noise_ratio,
        data_noise=settings.data_noise))
    history: list[dict] = []
    start_epoch = 0
    if checkpoint_dir is not None and resume:
        start_epoch, history = _resume(model, checkpoint_dir, fingerprint, optim, objective, names, average)
    result = FitResult({}, history, objective.kind, objective.name, start_epoch or None)
    steps_per_epoch = math.ceil(n / batch_size)
    bk = model.backend
    # JAX: an epoch's full minibatches as compiled scans where every piece allows it.
    fused = fused_epochs(model, objective, optim, names, weight_decay=weight_decay, grad_clip=grad_clip,
                         average=average, data_noise=settings.data_noise) if FUSE_EPOCHS else None
    # Objectives that read their batches as backend arrays get them gathered there.
    resident = resident_data(bk, data) if fused is None and getattr(objective, "takes_backend_batches", False) \
        else None
    with _Progress(progress, (epochs - start_epoch) * steps_per_epoch, f"fit {graph.name}") as bar:
        for epoch in range(start_epoch, epochs):
            epoch_started = time.perf_counter()
            sums: dict[str, float] = {}
            order = epoch_order(seed, epoch, n)
            seeds = step_seeds(seed, epoch, steps_per_epoch)
            fused_stats = fused.run(data, order, batch_size, seeds, epoch, epochs, lr, lr_schedule,
                                    steps_per_epoch) if fused is not None else None
            done = 0
            if fused_stats is not None:
                done = len(fused_stats)
                sums = {name: float(total) for name, total in zip(FUSED_STAT_NAMES, fused_stats.sum(axis=0))}
                if done:
                    bar.advance(f"epoch {epoch + 1}/{epochs} loss {fused_stats[-1, 0]:.4g}", done)
            batches = minibatches(resident, order[done * batch_size:], batch_size, bk) if resident is not None \
                else minibatches(data, order[done * batch_size:], batch_size)
            for step, batch in enumerate(batches, start=done):
                key = bk.key(int(seeds[step]))
                if settings.data_noise:
                    batch = noisy_inputs(model, batch, settings.data_noise, int(seeds[step]))
                rate = scheduled_lr(lr, lr_schedule, epoch, epochs, step / steps_per_epoch)
                if hasattr(objective, "follow_schedule"):  # a noise schedule; a learning rate of its own
                    objective.follow_schedule((epoch + step / steps_per_epoch) / epochs, rate)
                stats = _update(model, objective, optim, names, key, batch, rate, weight_decay, grad_clip,
                                epoch, step)
                if average is not None:
                    average.update(model, names)
                for name, value in stats.items():
                    sums[name] = sums.get(name, 0.0) + value
                bar.advance(f"epoch {epoch + 1}/{epochs} loss {stats['loss']:.4g}")
            record = {"epoch": epoch + 1, **{k_: v / steps_per_epoch for k_, v in sums.items()},
                      "lr": scheduled_lr(lr, lr_schedule, epoch, epochs)}
            if eval_every and (epoch + 1) % eval_every == 0:
                record.update(objective.evaluate(bk.key(step_seed(seed, epoch, EVALUATION_STEP)), evaluation,
                                                 model.params))
                if eval_ais and "log_likelihood" not in record:
                    record.update(ais_log_likelihood(model, evaluation, seed=step_seed(seed, epoch, EVALUATION_STEP),
                                                     params=model.params, **(eval_ais if isinstance(eval_ais, dict)
                                                                             else {})))
            record["seconds"] = time.perf_counter() - epoch_started
            history.append(record)
            if checkpoint_dir is not None and ((epoch + 1) % checkpoint_every == 0 or epoch + 1 == epochs):
                from ebmlang.learning.checkpoint import save_training_state

                save_training_state(checkpoint_dir, model, epoch + 1,
                                    {"optimizer": optim.state_arrays(), "objective": objective.state_arrays(),
                                     "average": average.state_arrays() if average is not None else {}},
                                    {"epoch": epoch + 1, "fingerprint": fingerprint, "history": history})
            if callback is not None and callback(model, record) is False:
                break
    if average is not None:
        average.apply(model, optim)
    result.params = model.param_values()
    result.history = history
    if history:
        history[-1]["total_seconds"] = time.perf_counter() - started
    return result


# --------------------------------------------------------------------------
# One update


def _update(model, objective, optim, names, key, batch, rate, weight_decay, grad_clip, epoch, step) -> dict:
    bk = model.backend
    weighted = objective.step(key, batch, model.params)
    grads = weighted_gradient(model, weighted)
    grads = {name: grads[name] for name in names}
    if weight_decay:
        grads = {name: g + weight_decay * model.params[name] for name, g in grads.items()}
    grads, norm = clip_by_global_norm(bk, grads, grad_clip)
    if not (math.isfinite(norm) and math.isfinite(weighted.loss)):
        raise divergence_error(model, weighted, loss=weighted.loss, epoch=epoch, step=step)
    optim.step(grads, rate)
    clamp_to_bounds(model, optim, names)
    model.params.update(optim.params())
    return {"loss": weighted.loss, "grad_norm": norm, **weighted.stats}


def divergence_error(model, weighted, *, loss: float, epoch: int, step: int) -> EbmError:
    """The error for a non-finite loss or gradient at (0-based) `epoch`, `step`: the energy
    term and source line that is not finite in the step's states where one is (the usual
    cause: a parameter outside a function's domain), else a generic divergence error.

    `loss` is the loss that was checked (in data-parallel training the all-reduced one,
    while `weighted` holds only this process's states).
    """
    from ebmlang.inference.diagnostics import locate_nonfinite, locate_nonfinite_gradient

    states = weighted.states
    # States of an objective that sums hidden groups out lack those groups: the per-term
    # energies cannot be evaluated on them, so only complete states are examined.
    if len(weighted.weights) and states and all(name in states for name in model.graph.variables):
        batch = {g: model.backend.asarray(v) for g, v in states.items()}
        located = locate_nonfinite(model, batch)
        if located.span is not None:
            return located
        # Every energy is finite, so a term's slope is not: name that term, not another.
        located = locate_nonfinite_gradient(model, batch)
        if located is not None:
            return located
    what = "loss" if not math.isfinite(loss) else "gradient"
    return EbmError(f"training diverged at epoch {epoch + 1}, step {step + 1}: the {what} is not finite",
                    hint="lower lr, set grad_clip=..., or add energy_reg=... (E^2 regularisation)")


def clamp_to_bounds(model, optim, names) -> None:
    bounded = {}
    current = optim.params()
    for name in names:
        declared = model.graph.params.get(name)
        if declared is not None and declared.bounds is not None:
            low, high = declared.bounds
            bounded[name] = model.backend.ops.clip(current[name], float(low), float(high))
    if bounded:
        optim.set_params({**current, **bounded})


class ParameterAverage:
    """An exponential moving average of the trained params (numpy float64), bias-corrected
    like Adam's moments so that early steps are not pulled toward zero."""

    def __init__(self, decay: float):
        if not 0.0 < decay < 1.0:
            raise EbmError(f"ema must be a decay in (0, 1), got {decay!r}", hint="ema=0.99, say")
        self.decay = float(decay)
        self.steps = 0
        self.values: dict[str, np.ndarray] = {}

    def update(self, model, names) -> None:
        self.steps += 1
        for name in names:
            current = np.asarray(model.backend.to_numpy(model.params[name]), dtype=np.float64)
            previous = self.values.get(name, np.zeros_like(current))
            self.values[name] = self.decay * previous + (1.0 - self.decay) * current

    def averaged(self) -> dict[str, np.ndarray]:
        correction = 1.0 - self.decay ** self.steps
        return {name: value / correction for name, value in self.values.items()}

    def apply(self, model, optim) -> None:
        if not self.steps:
            return
        model.params.update({name: model.backend.asarray(value) for name, value in self.averaged().items()})
        optim.set_params({name: model.params[name] for name in optim.params()})
        model.params.update(optim.params())

    def state_arrays(self) -> dict:
        return {"steps": np.asarray(self.steps, dtype=np.int64), **{f"value/{k}": v for k, v in self.values.items()}}

    def load_state_arrays(self, arrays) -> None:
        self.steps = int(arrays.get("steps", 0))
        self.values = {k[len("value/"):]: np.asarray(v, dtype=np.float64) for k, v in arrays.items()
                       if k.startswith("value/")}


# --------------------------------------------------------------------------
# Options


def trainable_names(params: Mapping, train) -> list[str]:
    """Params selected by name prefixes: `W` selects `W`, `f` selects `f.0.weight`, ...,
    `Likelihood` selects `Likelihood.eta` (None: all)."""
    if not params:
        raise EbmError("the model has no parameters to fit",
                       hint="declare learnable parameters with `param name = init` in the .ebm file")
    if train is None:
        return list(params)
    prefixes = [train] if isinstance(train, str) else list(train)
    chosen = [name for name in params if any(name == p or name.startswith(p + ".") for p in prefixes)]
    for prefix in prefixes:
        if not any(name == prefix or name.startswith(prefix + ".") for name in params):
            raise EbmError(f"train= names '{prefix}', which matches no parameter",
                           hint=did_you_mean(prefix, {name.split(".")[0] for name in params} | set(params))
                           or f"params: {', '.join(params)}")
    return chosen


def _check_options(*, epochs, batch_size, lr, k, checkpoint_every, eval_every, lr_schedule, method) -> None:
    if method not in METHODS:
        raise EbmError(f"unknown fit method '{method}'", expected="one of " + ", ".join(METHODS),
                       hint=did_you_mean(str(method), METHODS))
    for name, value in (("epochs", epochs), ("batch_size", batch_size), ("k", k),
                        ("checkpoint_every", checkpoint_every)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise EbmError(f"{name} must be a positive integer, got {value!r}")
    if isinstance(eval_every, bool) or not isinstance(eval_every, (int, np.integer)) or eval_every < 0:
        raise EbmError(f"eval_every must be a non-negative integer (0: never), got {eval_every!r}")
    if not (isinstance(lr, (int, float)) and lr > 0 and math.isfinite(lr)):
        raise EbmError(f"lr must be a positive number, got {lr!r}")
    if not (lr_schedule in SCHEDULES or callable(lr_schedule)):
        raise EbmError(f"unknown lr_schedule {lr_schedule!r}", expected="None, 'cosine', 'step' or a callable")


def _check_more_options(model, *, chains, seed, eval_size, grad_clip, momentum, margin, gen_weight,
                        weight_decay, energy_reg, checkpoint_dir, callback) -> None:
    """The remaining numeric options, and persistent chains against the model's budget."""
    from ebmlang.budget import Budget
    from ebmlang.errors import check_real_number, check_whole_number

    check_whole_number("seed", seed, 0)
    check_whole_number("eval_size", eval_size, 0)
    if chains is not None:
        chains = check_whole_number("chains", chains, 1)
        state_size = sum(v.size for v in model.graph.variables.values())
        (getattr(model, "budget", None) or Budget()).check(
            8.0 * chains * state_size, f"{chains:,} persistent chains of {state_size:,} values each")
    if grad_clip is not None:
        check_real_number("grad_clip", grad_clip, positive=True)
    check_real_number("momentum", momentum, minimum=0.0)
    for name, value in (("margin", margin), ("gen_weight", gen_weight), ("weight_decay", weight_decay),
                        ("energy_reg", energy_reg)):
        check_real_number(name, value, minimum=0.0)
    if checkpoint_dir is not None:
        folder = Path(checkpoint_dir)
        existing = next((p for p in (folder, *folder.parents) if p.exists()), None)
        if existing is not None and not existing.is_dir():
            raise EbmError(f"checkpoint_dir {checkpoint_dir}: {existing} is a file, not a folder")
    if callback is not None and not callable(callback):
        raise EbmError(f"callback must be a function (model, record) -> bool | None, got {callback!r}")


def _schedule_name(schedule) -> str | None:
    return getattr(schedule, "__name__", "callable") if callable(schedule) else schedule


def _evaluation_data(graph, data, eval_data, eval_size, seed) -> dict:
    if eval_data is not None:
        return prepare_data(graph, eval_data, what="evaluation data")
    n = num_examples(data)
    rows = np.sort(np.random.default_rng([int(seed), 0xE7A1]).permutation(n)[:min(eval_size, n)])
    return {g: v[rows] for g, v in data.items()}


# --------------------------------------------------------------------------
# Resuming


def _fingerprint(model, data, names, objective_name, options) -> str:
    from ebmlang.learning.checkpoint import arrays_hash, source_hash

    described = {"source": source_hash(model.graph.source), "model": model.graph.name, "trained": names,
                 "objective": objective_name, "data": arrays_hash(data), "backend": model.backend_name,
                 **options}
    return hashlib.sha256(json.dumps(described, sort_keys=True, default=str).encode()).hexdigest()


def _resume(model, directory, fingerprint, optim, objective, names, average) -> tuple[int, list]:
    from ebmlang.learning.checkpoint import check_params, latest_training_state

    found = latest_training_state(directory)
    if found is None:
        return 0, []
    path, params, parts, info = found
    if info.get("fingerprint") != fingerprint:
        raise EbmError(f"{path} was written by a fit with other data, model or options; it cannot be resumed",
                       hint="pass the same arguments as the interrupted run, resume=False to start over, "
                            "or another checkpoint_dir")
    params = check_params(path, model.graph, params)
    model.params.update({name: model.backend.asarray(value) for name, value in params.items()})
    optim.set_params({name: model.params[name] for name in names})
    optim.load_state_arrays(parts.get("optimizer", {}))
    model.params.update(optim.params())
    objective.load_state_arrays(parts.get("objective", {}))
    if average is not None:
        average.load_state_arrays(parts.get("average", {}))
    return int(info["epoch"]), list(info.get("history", []))


# --------------------------------------------------------------------------
# Progress


class _Progress:
    """A rich progress bar with the running loss (off with progress=False)."""

    def __init__(self, enabled: bool, total: int, label: str):
        self.enabled = bool(enabled) and total > 0
        self.total = total
        self.label = label

    def __enter__(self) -> "_Progress":
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TimeRemainingColumn(), transient=True)
            self.bar.start()
            self.task = self.bar.add_task(self.label, total=self.total)
        return self

    def advance(self, status: str, steps: int = 1) -> None:
        if self.enabled:
            self.bar.update(self.task, advance=steps, description=f"{self.label}: {status}")

    def __exit__(self, *exc) -> bool:
        if self.enabled:
            self.bar.stop()
        return False
