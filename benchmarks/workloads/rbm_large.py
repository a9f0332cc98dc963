"""Workload 7: an RBM of MNIST's size (784 visible, 256 hidden) trained by PCD-1.

The dense case of the field: the energy is one sum of products v[i] * W[i, k] * h[k]
that ebmlang lowers to a contraction (v @ W @ h), so a training step is a handful of
matrix products like the hand-written loop's. Data: 10,000 binarised 28 x 28 images made
from scikit-learn's digits (upsampled, shifted by up to two pixels, thresholded).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from benchmarks import harness
from benchmarks.harness import Contender, Headline, Row, measure, to_numpy
from benchmarks.kernels import rbm as kernels

TITLE = "RBM 784 × 256 (MNIST-sized), PCD-1"
ORDER = 7
HEADLINE = Headline(metric="s/epoch", higher_is_better=False, baseline="torch (hand-written PCD-1)")

VISIBLE, HIDDEN = 784, 256
BATCH_SIZE = 100
LEARNING_RATE = 0.05
SEED = 0


@dataclass(frozen=True)
class LargeRbmProblem:
    train: np.ndarray  # [N, 784] of 0/1
    test: np.ndarray
    weights: np.ndarray  # the initial W [784, 256]
    epochs: int


def images(count: int, seed: int = SEED) -> np.ndarray:
    """`count` binarised 28 x 28 digits: scikit-learn's 8 x 8 digits upsampled 3.5x
    (linear), shifted by -2..2 pixels each way, pixels above half intensity -> 1."""
    from scipy.ndimage import zoom
    from sklearn.datasets import load_digits

    digits = load_digits().images / 16.0
    large = np.stack([zoom(d, 3.5, order=1) for d in digits])  # [1797, 28, 28]
    rng = np.random.default_rng(seed)
    chosen = rng.integers(0, len(large), count)
    shifts = rng.integers(-2, 3, (count, 2))
    out = np.empty((count, 28, 28))
    for n, (index, (dy, dx)) in enumerate(zip(chosen, shifts)):
        out[n] = np.roll(large[index], (dy, dx), axis=(0, 1))
    return (out > 0.5).astype(np.float64).reshape(count, VISIBLE)


def make_problem(smoke: bool) -> LargeRbmProblem:
    count = 500 if smoke else 10000
    data = images(count + count // 10)
    weights = np.random.default_rng(SEED).normal(0.0, 0.01, (VISIBLE, HIDDEN))
    return LargeRbmProblem(data[:count], data[count:], weights, 1)


def describe(smoke: bool) -> str:
    count = 500 if smoke else 10000
    return (
        f"{count} binarised 28 × 28 images (scikit-learn's digits upsampled 3.5×, shifted by up to 2 "
        f"pixels, thresholded at ½) and {count // 10} held out; {VISIBLE} visible and {HIDDEN} hidden "
        f"binary units; PCD-1 with {BATCH_SIZE} persistent chains, batch {BATCH_SIZE}, plain SGD at "
        f"learning rate {LEARNING_RATE}, one epoch per run from the same initial W (normal, sd 0.01; "
        "scikit-learn draws its own). The hand-written torch loop computes the positive and negative "
        "statistics with p(h | v) (hidden units summed out exactly); ebmlang runs the same maths "
        "(`fit(method=\"pcd\", rao_blackwell=\"hidden\")`, examples/rbm.ebm at V = 784, H = 256), "
        "its time including fit's own set-up per call; scikit-learn's BernoulliRBM is PCD-1 as well. "
        "Setup = build + a one-epoch warm-up. Figures: seconds per epoch, and the mean squared "
        "mean-field reconstruction error of the held-out images (v -> p(h|v) -> p(v|h)) after the "
        "epoch, which should be alike for all."
    )


# --------------------------------------------------------------------------
# Contenders


def prepare_hand_torch(problem: LargeRbmProblem) -> Callable[[int], Any]:
    import torch

    del torch  # imported for the requirement only; the kernel imports it itself
    return kernels.torch_pcd(problem.train, problem.weights, batch_size=BATCH_SIZE, lr=LEARNING_RATE,
                             seed=SEED, device=harness.DEVICE)


def prepare_sklearn(problem: LargeRbmProblem) -> Callable[[int], Any]:
    import warnings

    from sklearn.neural_network import BernoulliRBM

    def train(epochs: int):
        rbm = BernoulliRBM(n_components=HIDDEN, learning_rate=LEARNING_RATE, batch_size=BATCH_SIZE,
                           n_iter=epochs, random_state=SEED)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rbm.fit(problem.train)
        return rbm.components_.T, rbm.intercept_visible_, rbm.intercept_hidden_

    return train


def ebmlang_trainer(backend: str) -> Callable[[LargeRbmProblem], Callable[[int], Any]]:
    def prepare(problem: LargeRbmProblem) -> Callable[[int], Any]:
        from ebmlang.backends import get_backend
        from ebmlang.cli.showcase import load_example

        model = load_example("rbm.ebm", get_backend(backend, device=harness.DEVICE), V=VISIBLE, H=HIDDEN)
        zeros_v, zeros_h = np.zeros(VISIBLE), np.zeros(HIDDEN)
        data = {"v": problem.train}

        def train(epochs: int):
            model.set_params(W=problem.weights, b=zeros_v, c=zeros_h)
            model.fit(data, method="pcd", epochs=epochs, batch_size=BATCH_SIZE, lr=LEARNING_RATE,
                      optimizer="sgd", rao_blackwell="hidden", seed=SEED, progress=False, eval_every=0)
            params = model.param_values()
            return params["W"], params["b"], params["c"]

        return train

    return prepare


def contenders() -> list[Contender[LargeRbmProblem]]:
    return [
        Contender("torch (hand-written PCD-1)", prepare_hand_torch, requires=("torch",)),
        Contender("scikit-learn BernoulliRBM", prepare_sklearn, requires=("sklearn",)),
        *ebmlang_contenders(),
    ]


def ebmlang_contenders() -> list[Contender[LargeRbmProblem]]:
    """ebmlang's PCD on examples/rbm.ebm at 784 x 256: `prepare(problem) -> run(epochs) ->
    (W [784, 256], b, c)`, every run from `problem.weights` and zero biases."""
    return [
        Contender("ebmlang PCD (torch)", ebmlang_trainer("torch"), requires=("ebmlang", "torch")),
        Contender("ebmlang PCD (jax)", ebmlang_trainer("jax"), requires=("ebmlang", "jax")),
    ]


# --------------------------------------------------------------------------
# Measuring


def summarise(problem: LargeRbmProblem) -> Callable[[Any, float], Mapping[str, float]]:
    def figures(output: Any, seconds: float) -> dict[str, float]:
        weights, visible, hidden = (to_numpy(part).astype(np.float64) for part in output)
        up = 1.0 / (1.0 + np.exp(-(problem.test @ weights + hidden)))
        down = 1.0 / (1.0 + np.exp(-(up @ weights.T + visible)))
        return {"s/epoch": seconds / problem.epochs,
                "test recon. error": float(np.mean((down - problem.test) ** 2))}

    return figures


def run(smoke: bool) -> list[Row]:
    problem = make_problem(smoke)
    case = f"{len(problem.train)} images"
    return [measure("rbm_large", case, contender, problem, steps=problem.epochs, warmup_steps=1,
                    summarise=summarise(problem)) for contender in contenders()]
