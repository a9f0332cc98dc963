"""Published training recipes for short-run Langevin learning, as named defaults.

`fit(..., recipe="igebm")` or `fit(method="jem")` starts from the settings the authors'
code ships with; every option the caller passes (a `langevin={...}` entry, `energy_reg`,
`data_noise`, `ema`) overrides the recipe's. What each recipe sets, and where from:

- "igebm": Du & Mordatch (2019), "Implicit Generation and Modeling with Energy-Based
  Models" (and the widely used PyTorch port rosinality/igebm-pytorch): 60 SGLD steps of
  step size 10 with noise sd 0.005 and the sampler's gradient clipped elementwise to
  0.01, pixels clamped into their bounds, a replay buffer of 10,000 with 5% restarts
  from uniform noise, and the L2 energy penalty alpha (E_pos^2 + E_neg^2) with alpha = 1.
- "jem": Grathwohl et al. (2019), "Your Classifier is Secretly an Energy Based Model"
  (the defaults of the authors' train_wrn_ebm.py): 20 SGLD steps of step size 1 with
  noise sd 0.01, a replay buffer of 10,000 with 5% restarts, Gaussian noise of sd 0.03
  added to the training inputs, no energy penalty.

Neither paper keeps an average of the weights by default; `ema=0.999` is the usual
choice when one is wanted (IGEBM's released code offers it).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

from ebmlang.errors import EbmError
from ebmlang.learning.chains import LangevinOptions


@dataclass(frozen=True)
class Recipe:
    name: str
    langevin: LangevinOptions
    energy_reg: float = 0.0
    data_noise: float = 0.0
    ema: float | None = None


RECIPES = {
    "igebm": Recipe("igebm", LangevinOptions(steps=60, step_size=10.0, noise_scale=0.005, grad_clip=0.01,
                                             buffer_size=10000, reinit_prob=0.05, bounded="clamp"),
                    energy_reg=1.0),
    "jem": Recipe("jem", LangevinOptions(steps=20, step_size=1.0, noise_scale=0.01, grad_clip=None,
                                         buffer_size=10000, reinit_prob=0.05, bounded="clamp"),
                  data_noise=0.03),
}


@dataclass(frozen=True)
class TrainingSettings:
    """What a fit runs with once the recipe and the caller's options are merged."""

    langevin: LangevinOptions
    energy_reg: float
    data_noise: float
    ema: float | None
    recipe: str | None


def resolve_recipe(recipe: str | None, method: str, *, langevin, energy_reg, data_noise, ema) -> TrainingSettings:
    """The recipe's settings (JEM's for method "jem" unless another is named) under the
    caller's: a `langevin` dict overrides single fields, other options whole values. A
    `step_size` without a `noise_scale` means Langevin at T = 1 (noise sqrt(2 step_size)),
    as it does without a recipe: the recipe's noise belongs to the recipe's step."""
    if recipe is None and method == "jem":
        recipe = "jem"
    if recipe is not None and recipe not in RECIPES:
        from ebmlang.errors import did_you_mean

        raise EbmError(f"unknown training recipe {recipe!r}", expected=" or ".join(repr(r) for r in RECIPES),
                       hint=did_you_mean(str(recipe), RECIPES) if isinstance(recipe, str) else None)
    base = RECIPES[recipe] if recipe is not None else Recipe("", LangevinOptions())
    if isinstance(langevin, Mapping):
        unknown = set(langevin) - set(LangevinOptions.__dataclass_fields__)
        if not unknown:
            recipe_fields = dataclasses.asdict(base.langevin)
            if "step_size" in langevin:
                recipe_fields["noise_scale"] = None
            langevin = {**recipe_fields, **langevin}
    options = base.langevin if langevin is None else LangevinOptions.from_user(langevin)
    noise = base.data_noise if data_noise is None else data_noise
    if not isinstance(noise, (int, float)) or isinstance(noise, bool) or not noise >= 0 or noise == float("inf"):
        raise EbmError(f"data_noise must be a standard deviation >= 0, got {noise!r}", hint="data_noise=0.03, say")
    return TrainingSettings(options, base.energy_reg if energy_reg is None else energy_reg, float(noise),
                            base.ema if ema is None else ema, recipe)


def noisy_inputs(model, batch: Mapping, sd: float, seed: int) -> dict:
    """`batch` with Gaussian noise of sd `sd` added to its continuous groups, clipped into
    declared bounds (numpy or backend arrays, as given); a fresh draw per step `seed`."""
    import numpy as np

    rng = np.random.default_rng([int(seed), 0x5EED])
    bk = model.backend
    out = dict(batch)
    for group, values in batch.items():
        domain = model.graph.variables[group].domain
        if domain.is_discrete:
            continue
        on_backend = not isinstance(values, np.ndarray)
        noise = sd * rng.normal(size=tuple(values.shape))
        noisy = values + (bk.asarray(noise) if on_backend else noise)
        if domain.kind == "bounded":
            noisy = bk.ops.clip(noisy, float(domain.low), float(domain.high)) if on_backend \
                else np.clip(noisy, domain.low, domain.high)
        out[group] = noisy
    return out
