"""Published short-run Langevin recipes (IGEBM, JEM), clamped bounded inputs, data noise,
and JEM on digits with pixels in [0, 1] (issue #18).

Before the recipes, JEM on these digits sampled the pixels in logit coordinates from a
buffer spread over logit(1e-6)..logit(1 - 1e-6): its SGLD chains sat on saturated
pixels, the free-energy gap between data and samples ran to -38 nats and test accuracy
fell to 0.12 (chance is 0.10) where the plain classifier reached 0.88.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import ebmlang as ebm
from ebmlang.errors import EbmError
from ebmlang.learning import predict, sample_marginal
from ebmlang.learning.chains import LangevinOptions
from ebmlang.learning.recipes import RECIPES, noisy_inputs, resolve_recipe

DIGITS = """
const D = 64
const C = 10
observed x[D] : real in [0, 1]
latent y : categorical(C)
param f : mlp(D -> 64 -> C, relu)
energy logits = -f(x)[y]
"""


@pytest.fixture(scope="module")
def digits():
    images, labels = load_digits(return_X_y=True)
    return train_test_split(images / 16.0, labels, test_size=0.3, random_state=0)


def test_recipes_carry_the_published_settings_and_the_caller_overrides_them():
    igebm = resolve_recipe("igebm", "ml", langevin=None, energy_reg=None, data_noise=None, ema=None)
    assert (igebm.langevin.steps, igebm.langevin.step_size, igebm.langevin.noise_scale, igebm.langevin.grad_clip) \
        == (60, 10.0, 0.005, 0.01)
    assert igebm.langevin.bounded == "clamp" and igebm.energy_reg == 1.0 and igebm.data_noise == 0.0
    jem = resolve_recipe(None, "jem", langevin=None, energy_reg=None, data_noise=None, ema=None)
    assert jem.recipe == "jem" and jem.langevin == RECIPES["jem"].langevin and jem.data_noise == 0.03
    # One field overridden, the rest kept; a step without a noise means Langevin at T = 1.
    more = resolve_recipe("jem", "jem", langevin={"steps": 40}, energy_reg=0.1, data_noise=0.0, ema=0.99)
    assert (more.langevin.steps, more.langevin.step_size, more.langevin.noise_scale) == (40, 1.0, 0.01)
    assert (more.energy_reg, more.data_noise, more.ema) == (0.1, 0.0, 0.99)
    stepped = resolve_recipe("jem", "jem", langevin={"step_size": 0.02}, energy_reg=None, data_noise=None, ema=None)
    assert stepped.langevin.noise_scale is None and stepped.langevin.noise == pytest.approx(0.2)
    # No recipe: the library defaults, unchanged.
    plain = resolve_recipe(None, "pcd", langevin=None, energy_reg=None, data_noise=None, ema=None)
    assert plain.langevin == LangevinOptions() and plain.energy_reg == 0.0 and plain.data_noise == 0.0


def test_bad_recipes_and_options_are_clear_errors():
    model = ebm.loads(DIGITS)
    data = {"x": np.zeros((4, 64)), "y": np.zeros(4, dtype=int)}
    with pytest.raises(EbmError, match="unknown training recipe 'igbem'") as caught:
        model.fit(data, method="jem", recipe="igbem", progress=False)
    assert "igebm" in str(caught.value)
    with pytest.raises(EbmError, match="data_noise must be a standard deviation"):
        model.fit(data, method="jem", data_noise=-1.0, progress=False)
    with pytest.raises(EbmError, match="bounded='wrap' is not a way"):
        model.fit(data, method="jem", langevin={"bounded": "wrap"}, progress=False)


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_data_noise_and_clamped_chains_stay_inside_the_bounds(backend):
    model = ebm.loads(DIGITS, backend=backend)
    batch = {"x": np.full((50, 64), 0.99), "y": np.zeros(50, dtype=np.int64)}
    noisy = noisy_inputs(model, batch, 0.03, seed=1)
    assert np.all(noisy["y"] == 0) and noisy["x"].max() == 1.0 and noisy["x"].min() < 0.95
    assert noisy_inputs(model, batch, 0.03, seed=1)["x"].tolist() == noisy["x"].tolist()  # from the step's seed
    on_backend = noisy_inputs(model, {"x": model.backend.asarray(batch["x"])}, 0.03, seed=1)["x"]
    assert float(np.max(model.backend.to_numpy(on_backend))) == pytest.approx(1.0)
    # A large step in pixel units: every coordinate ends exactly inside [0, 1].
    samples = sample_marginal(model, chains=8, steps=5, step_size=1.0, noise_scale=0.5, seed=0)["x"]
    assert samples.min() >= 0.0 and samples.max() <= 1.0 and np.any(samples == 1.0) and np.any(samples == 0.0)


def test_jem_on_digits_classifies_as_well_as_the_plain_classifier_and_models_the_pixels(digits):
    train_x, test_x, train_y, test_y = digits
    options = dict(epochs=8, batch_size=64, lr=1e-3, seed=0, progress=False, eval_every=0)
    plain = ebm.loads(DIGITS, seed=0)
    plain.fit({"x": train_x, "y": train_y}, loss="nll", **options)
    plain_accuracy = np.mean(predict(plain, {"x": test_x})["y"] == test_y)

    joint = ebm.loads(DIGITS, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no divergence warning
        result = joint.fit({"x": train_x, "y": train_y}, method="jem", **options)
    joint_accuracy = np.mean(predict(joint, {"x": test_x})["y"] == test_y)
    # Measured 0.881 (JEM) against 0.883 (plain); the issue asks for at least 0.95x.
    assert plain_accuracy > 0.85 and joint_accuracy >= 0.95 * plain_accuracy, (joint_accuracy, plain_accuracy)
    # The generative part is at equilibrium: data and SGLD samples have free energies within
    # a few nats (the run that diverged sat at -38).
    assert abs(result.history[-1]["free_energy_gap"]) < 5.0

    def free_energy(model, images):
        from scipy.special import logsumexp

        from ebmlang.learning.losses import energy_table

        table, _ = energy_table(model.compiled, model.params, {"x": images}, ("y",))
        return -logsumexp(-table, axis=1)

    # p(x): held-out digits against uniform noise images. JEM's free energy puts every
    # digit below every noise image; the plain classifier's does not separate them.
    noise = np.random.default_rng(0).random((200, 64))
    joint_gap = free_energy(joint, noise).min() - free_energy(joint, test_x).max()
    plain_auc = np.mean(free_energy(plain, test_x)[:, None] < free_energy(plain, noise)[None, :])
    assert joint_gap > 0, joint_gap
    assert plain_auc < 0.99, plain_auc


def test_jem_warns_when_its_sampler_stops_reaching_the_data(digits):
    train_x, _, train_y, _ = digits
    model = ebm.loads(DIGITS, seed=0)
    # One tiny SGLD step from uniform noise: the negatives never move toward the digits,
    # so the generative gradient drives their free energy away from the data's.
    with pytest.warns(RuntimeWarning, match="generative part is diverging"):
        model.fit({"x": train_x, "y": train_y}, method="jem", epochs=3, batch_size=64, lr=3e-2, seed=0,
                  progress=False, eval_every=0, langevin={"steps": 1, "step_size": 1e-4, "noise_scale": 1e-4,
                                                          "reinit_prob": 1.0})


IMAGE_ENERGY = """
observed x[64] : real in [0, 1]
param E : mlp(64 -> 64 -> 1, silu)
energy e = E(x)
"""


# torch only: JAX runs the same objective code, but its SGLD loop is eager op-by-op today
# (20 s for this test; fusing it into one jitted loop is part of issue #18's benchmark).
@pytest.mark.parametrize("backend", ["torch"])
def test_the_igebm_recipe_trains_an_energy_that_ranks_digits_below_noise(digits, backend):
    train_x, test_x, _, _ = digits
    model = ebm.loads(IMAGE_ENERGY, seed=0, backend=backend)
    result = model.fit({"x": train_x}, method="pcd", recipe="igebm", epochs=2, batch_size=128, lr=1e-3, seed=0,
                       progress=False, eval_every=0)
    assert "energy_pos" in result.history[-1]
    assert "IGEBM" in result.description or "60" in result.description
    # The recipe's sampler (60 clipped steps of at most 0.1 per pixel), clamped into [0, 1].
    samples = sample_marginal(model, chains=16, steps=60, step_size=10.0, noise_scale=0.005, grad_clip=0.01)["x"]
    assert samples.min() >= 0.0 and samples.max() <= 1.0
    noise = np.random.default_rng(0).random((200, 64))
    energy = lambda images: np.asarray(model.energy({"x": images}))  # noqa: E731
    auc = np.mean(energy(test_x)[:, None] < energy(noise)[None, :])
    assert auc > 0.95, auc


def test_the_command_line_trains_with_a_recipe_and_refuses_an_unknown_one(tmp_path, capsys, digits):
    from ebmlang.cli.entry import main as cli_main

    train_x, _, train_y, _ = digits
    (tmp_path / "digits.ebm").write_text(DIGITS)
    np.savez(tmp_path / "data.npz", x=train_x[:256], y=train_y[:256])
    assert cli_main(["fit", str(tmp_path / "digits.ebm"), "--data", str(tmp_path / "data.npz"), "--method", "jem",
                     "--recipe", "jem", "--data-noise", "0.05", "--epochs", "1", "--lr", "0.001"]) == 0
    assert "JEM" in capsys.readouterr().out
    with pytest.raises(SystemExit) as stopped:
        cli_main(["fit", str(tmp_path / "digits.ebm"), "--data", str(tmp_path / "data.npz"), "--recipe", "igbem"])
    assert stopped.value.code == 2 and "invalid choice: 'igbem'" in capsys.readouterr().err
