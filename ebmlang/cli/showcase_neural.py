"""The showcase's neural sections: JEM on digits (examples/digits_jem.ebm) and a
convolutional EBM on digits with samples and inpainting (examples/digits_conv.ebm).

Both are measured by an independent classifier: scikit-learn's logistic regression
trained on the real training digits, which knows nothing of the EBMs.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ebmlang.api.model import load
from ebmlang.api.plot import plot_sample_grid
from ebmlang.cli.showcase_common import EXAMPLES, FIGURE_WIDTH, SectionResult, gradient_backend
from ebmlang.errors import EbmError
from ebmlang.learning import predict, sample_marginal


def digits_split(test_size: float, seed: int = 0):
    """sklearn's 8x8 digits with pixels in [0, 1]: train_x, test_x, train_y, test_y."""
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError:
        raise EbmError("the digits sections need scikit-learn", hint="pip install 'ebmlang[data]'") from None
    images, labels = load_digits(return_X_y=True)
    return train_test_split(images / 16.0, labels, test_size=test_size, random_state=seed, stratify=labels)


def independent_classifier(train_x, train_y):
    """Logistic regression on the real training digits: the judge of every generated image."""
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=2000).fit(train_x, train_y)


def free_energy(model, images: np.ndarray) -> np.ndarray:
    """F(x) = -log sum_y exp(-E(x, y)) per image."""
    from scipy.special import logsumexp

    from ebmlang.learning.losses import energy_table

    table, _ = energy_table(model.compiled, model.params, {"x": images}, ("y",))
    return -logsumexp(-np.asarray(table), axis=1)


def jem_section(out: Path, sizes, backend: str, seed: int, progress):
    """JEM against the plain classifier: test accuracy, how well each model's p(x) tells
    digits from noise, and class-conditional samples judged by the independent classifier."""

    result = SectionResult("JEM")
    backend = gradient_backend(backend)
    train_x, test_x, train_y, test_y = digits_split(0.3)
    train_x, train_y = train_x[:sizes.jem_examples], train_y[:sizes.jem_examples]
    judge = independent_classifier(train_x, train_y)
    options = dict(epochs=sizes.jem_epochs, batch_size=64, lr=1e-3, seed=seed, progress=False, eval_every=0)
    models, accuracy, separation = {}, {}, {}
    noise = np.random.default_rng(seed).random((200, 64))
    for step, (name, fit_options) in enumerate((("nll", {"loss": "nll"}), ("jem", {"method": "jem"}))):
        progress.update(step, 3, f"training the {name} model")
        model = load(EXAMPLES / "digits_jem.ebm", backend=backend, seed=seed)
        model.fit({"x": train_x, "y": train_y}, **fit_options, **options)
        models[name] = model
        accuracy[name] = float(np.mean(predict(model, {"x": test_x})["y"] == test_y))
        # p(x): the fraction of (held-out digit, uniform-noise image) pairs in which the
        # digit has the lower free energy (an AUROC; 0.5 is a model that cannot tell).
        separation[name] = float(np.mean(free_energy(model, test_x)[:, None] < free_energy(model, noise)[None, :]))
    progress.update(2, 3, "class-conditional samples")
    labels = np.repeat(np.arange(10), sizes.jem_samples_per_class)
    drawn = sample_marginal(models["jem"], chains=len(labels), steps=sizes.jem_sample_steps, step_size=1.0,
                            noise_scale=0.01, observed={"y": labels}, seed=seed)["x"]
    agreement = float(np.mean(judge.predict(drawn) == labels))
    plot_sample_grid(list(drawn), image_shape=(8, 8), ncols=10, cmap="gray_r", vmin=0.0, vmax=1.0,
                     width=FIGURE_WIDTH, titles=[f"y = {k}" for k in labels],
                     suptitle=f"JEM: samples of x given each class y ({sizes.jem_sample_steps} SGLD steps from "
                              f"noise);\nlogistic regression trained on real digits labels {100 * agreement:.0f}% "
                              f"of them as their class",
                     path=out / "jem_samples.png")
    ratio = accuracy["jem"] / accuracy["nll"]
    result.numbers = {"test_accuracy_jem": accuracy["jem"], "test_accuracy_nll": accuracy["nll"],
                      "accuracy_ratio": ratio, "digits_vs_noise_auroc_jem": separation["jem"],
                      "digits_vs_noise_auroc_nll": separation["nll"], "samples_labelled_as_their_class": agreement,
                      "train_images": len(train_x), "test_images": len(test_x), "epochs": sizes.jem_epochs}
    result.headline = (f"test accuracy JEM {accuracy['jem']:.3f} vs nll {accuracy['nll']:.3f} ({ratio:.2f}x); "
                       f"digits below noise in free energy: JEM {separation['jem']:.2f}, nll {separation['nll']:.2f}; "
                       f"{100 * agreement:.0f}% of class-conditional samples labelled as their class by an "
                       f"independent classifier")
    result.files = ["jem_samples.png"]
    return result


# How digits_conv.ebm draws, in training and here: the IGEBM recipe's SGLD (step 10, noise
# 0.005, gradient entries clipped to 0.01, pixels clamped into [0, 1]) for 20 steps from
# uniform noise -- a short-run sampler, which is what the energy was trained to steer.
CONV_SAMPLER = {"steps": 20, "step_size": 10.0, "noise_scale": 0.005, "grad_clip": 0.01}
CONV_WEIGHTS = "digits_conv.safetensors"


def conv_section(out: Path, sizes, backend: str, seed: int, progress):
    """A convolutional EBM of digits: samples, and the bottom half of held-out digits
    filled in by conditional sampling, judged by the independent classifier."""

    result = SectionResult("Conv EBM")
    backend = "jax" if backend == "auto" else gradient_backend(backend)
    train_x, test_x, train_y, test_y = digits_split(0.25)
    judge = independent_classifier(train_x, train_y)
    path = EXAMPLES / CONV_WEIGHTS
    if not path.exists():
        raise EbmError(f"{path} is missing: the Conv EBM section shows a trained model",
                       hint="train it with examples/train_digits_conv.py")
    model = load(path, backend=backend)
    progress.update(1, 3, "samples")
    samples = sample_marginal(model, chains=sizes.conv_samples, seed=seed, **CONV_SAMPLER)["x"]
    sample_agreement = float(np.max(judge.predict_proba(samples.reshape(len(samples), 64)), axis=1).mean())

    progress.update(2, 3, "inpainting")
    digits, labels = test_x[:sizes.conv_test], test_y[:sizes.conv_test]
    images = np.repeat(digits.reshape(-1, 1, 8, 8), sizes.conv_draws, axis=0)
    top = np.zeros((1, 8, 8), dtype=bool)
    top[:, :4] = True  # rows 0-3 known; rows 4-7 sampled
    draws = sample_marginal(model, chains=len(images), seed=seed + 1, observed={"x": images}, known={"x": top},
                            **CONV_SAMPLER)["x"].reshape(len(digits), sizes.conv_draws, 64)
    known_kept = bool(np.array_equal(draws[:, :, :32], np.broadcast_to(digits[:, None, :32], draws[:, :, :32].shape)))
    completed = draws.mean(axis=1)  # the posterior mean of the bottom half, given the top
    single = draws[:, 0]
    mean_fill = np.concatenate([digits[:, :32], np.broadcast_to(train_x[:, 32:].mean(axis=0), (len(digits), 32))],
                               axis=1)
    accuracy = {name: float(judge.score(images_, labels)) for name, images_ in
                (("complete", digits), ("inpainted", completed), ("one_draw", single), ("mean_fill", mean_fill))}
    ratio = accuracy["inpainted"] / accuracy["complete"]

    plot_sample_grid(list(samples), image_shape=(8, 8), ncols=8, cmap="gray_r", vmin=0.0, vmax=1.0,
                     width=FIGURE_WIDTH,
                     suptitle=f"digits_conv.ebm (examples/{CONV_WEIGHTS}): {len(samples)} samples, "
                              f"{CONV_SAMPLER['steps']} SGLD steps from uniform noise",
                     path=out / "conv_samples.png")
    shown = min(10, len(digits))
    masked = digits[:shown].copy()
    masked[:, 32:] = 0.5
    plot_sample_grid(list(digits[:shown]) + list(masked) + list(single[:shown]) + list(completed[:shown]),
                     image_shape=(8, 8), ncols=shown, cmap="gray_r", vmin=0.0, vmax=1.0, width=FIGURE_WIDTH,
                     titles=(["test digit"] * shown + ["top half"] * shown + ["one draw"] * shown
                             + [f"mean of {sizes.conv_draws}"] * shown),
                     suptitle=f"Inpainting the bottom half by conditional sampling: logistic regression labels "
                              f"{100 * accuracy['inpainted']:.0f}% of completions\ncorrectly against "
                              f"{100 * accuracy['complete']:.0f}% of complete digits ({ratio:.2f}x; bottom half "
                              f"filled with the mean digit: {100 * accuracy['mean_fill']:.0f}%)",
                     path=out / "conv_inpainting.png")
    result.numbers = {"classifier_accuracy": accuracy, "inpainting_ratio": ratio,
                      "one_draw_ratio": accuracy["one_draw"] / accuracy["complete"],
                      "mean_fill_ratio": accuracy["mean_fill"] / accuracy["complete"],
                      "sample_confidence": sample_agreement, "test_digits": len(digits), "known_kept": known_kept,
                      "draws_per_digit": sizes.conv_draws}
    result.headline = (f"inpainted bottom halves labelled correctly {accuracy['inpainted']:.3f} vs complete digits "
                       f"{accuracy['complete']:.3f} ({ratio:.2f}x; one draw {accuracy['one_draw']:.3f}, mean-digit "
                       f"fill {accuracy['mean_fill']:.3f}) by an independent classifier")
    result.files = ["conv_samples.png", "conv_inpainting.png"]
    return result
