"""Workload 4: a binary RBM (64 visible, 16 hidden) trained on scikit-learn's digits.

Every contender trains from the same binarised training split for the same number of
epochs with the same learning rate and batch size, and returns its parameters
(W [16, 64], visible bias [64], hidden bias [16]); the figures are seconds per epoch and
the *exact* mean log-likelihood of the held-out digits (benchmarks/rbm_exact.py: log Z by
enumerating the 2^16 hidden states with the visible layer summed out analytically).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from benchmarks.harness import Contender, Headline, Row, measure, to_numpy
from benchmarks.rbm_exact import log_likelihood, log_partition

TITLE = "RBM on digits (8×8, binarised), exact test log-likelihood"
ORDER = 4
HEADLINE = Headline(metric="s/epoch", higher_is_better=False, baseline="scikit-learn BernoulliRBM")

HIDDEN = 16
LEARNING_RATE = 0.05
BATCH_SIZE = 10
TEST_FRACTION = 0.2
THRESHOLD = 7  # digits pixels are 0..16; "on" above 7
SEED = 0
WARMUP_EPOCHS = 1


@dataclass(frozen=True)
class RbmProblem:
    """Binarised digits split into train / test float64 [N, 64], and the training recipe."""

    train: np.ndarray
    test: np.ndarray
    hidden: int
    epochs: int
    learning_rate: float
    batch_size: int
    seed: int


def epochs(smoke: bool) -> int:
    return 2 if smoke else 20


def load_split(seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1797 digits, pixels > 7 -> 1, shuffled with `seed`, 80 / 20 split."""
    from sklearn.datasets import load_digits

    images = (load_digits().data > THRESHOLD).astype(np.float64)
    order = np.random.default_rng(seed).permutation(len(images))
    test_size = int(round(TEST_FRACTION * len(images)))
    return images[order[test_size:]], images[order[:test_size]]


def make_problem(smoke: bool) -> RbmProblem:
    train, test = load_split()
    return RbmProblem(train, test, HIDDEN, epochs(smoke), LEARNING_RATE, BATCH_SIZE, SEED)


def describe(smoke: bool) -> str:
    return (
        f"`sklearn.datasets.load_digits`, pixels > {THRESHOLD} → 1 (64 visible units), shuffled "
        f"(seed {SEED}) and split {1 - TEST_FRACTION:.0%} train / {TEST_FRACTION:.0%} test; {HIDDEN} "
        f"hidden units; {epochs(smoke)} epochs, learning rate {LEARNING_RATE:g}, batch size "
        f"{BATCH_SIZE}. Setup includes a {WARMUP_EPOCHS}-epoch warm-up. Figures: training seconds per "
        "epoch, and the exact mean log-likelihood (nats per image) of the test and train images: "
        "log Z by enumerating the 2^16 hidden states, visible units summed out analytically. "
        "scikit-learn's BernoulliRBM trains by PCD with one Gibbs step per update. The "
        "hand-written torch loop (benchmarks/kernels/rbm.py: PCD-1, hidden units summed out, "
        "plain SGD, no averaging) shows what eager torch costs per minibatch of ten. ebmlang "
        "trains with ema = 0.99 and its default Rao-Blackwellisation (rao_blackwell=\"classes\"); on "
        "JAX a whole epoch runs as one compiled scan. The "
        "\"independent pixels\" row (each pixel its own Bernoulli, add-one smoothed) is the "
        "no-interaction reference an RBM should beat."
    )


# --------------------------------------------------------------------------
# Contenders


def prepare_sklearn(problem: RbmProblem) -> Callable[[int], Any]:
    import warnings

    from sklearn.neural_network import BernoulliRBM

    def train(n_epochs: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rbm = BernoulliRBM(
            n_components=problem.hidden,
            learning_rate=problem.learning_rate,
            batch_size=problem.batch_size,
            n_iter=n_epochs,
            random_state=problem.seed,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rbm.fit(problem.train)
        return rbm.components_, rbm.intercept_visible_, rbm.intercept_hidden_

    return train


def prepare_hand_torch(problem: RbmProblem) -> Callable[[int], Any]:
    """kernels/rbm.py's PCD-1 loop (hidden units summed out, plain SGD, no averaging): how
    fast eager torch itself runs minibatches of ten, the timing reference for ebmlang's
    torch figure."""
    from benchmarks.kernels.rbm import torch_pcd

    weights = np.random.default_rng(problem.seed).normal(0.0, 0.01, (problem.train.shape[1], problem.hidden))
    train = torch_pcd(problem.train, weights, batch_size=problem.batch_size, lr=problem.learning_rate,
                      seed=problem.seed)

    def run(n_epochs: int) -> tuple[Any, Any, Any]:
        W, b, c = train(n_epochs)
        return W.T, b, c

    return run


def hand_written_contenders() -> list[Contender[RbmProblem]]:
    return [Contender("torch (hand-written PCD-1)", prepare_hand_torch, requires=("torch",))]


def peer_contenders() -> list[Contender[RbmProblem]]:
    return [Contender("scikit-learn BernoulliRBM", prepare_sklearn, requires=("sklearn",))]


def ebmlang_trainer(backend: str) -> Callable[[RbmProblem], Callable[[int], Any]]:
    """`prepare` for ebmlang's PCD on examples/rbm.ebm (V = 64, H = problem.hidden).

    The recipe of benchmarks/bench_rbm_learning.py: plain SGD at scikit-learn's learning
    rate and batch size, Polyak averaging (ema = 0.99). Every run starts again from the
    model's initial parameters (fit updates them in place).
    """

    def prepare(problem: RbmProblem) -> Callable[[int], Any]:
        from ebmlang.cli.showcase import load_example

        model = load_example("rbm.ebm", backend, H=problem.hidden)
        initial = model.param_values()
        data = {"v": problem.train}

        def train(n_epochs: int) -> tuple[Any, Any, Any]:
            model.set_params(**initial)
            model.fit(data, method="pcd", epochs=n_epochs, batch_size=problem.batch_size,
                      lr=problem.learning_rate, optimizer="sgd", ema=0.99, seed=problem.seed,
                      progress=False, eval_every=0)
            params = model.param_values()
            # rbm.ebm's W is [visible, hidden]; the workload's output is [hidden, visible].
            return params["W"].T, params["b"], params["c"]

        return train

    return prepare


def ebmlang_contenders() -> list[Contender[RbmProblem]]:
    """ebmlang's PCD (torch and JAX) on examples/rbm.ebm.

    `prepare(problem) -> run(epochs) -> (W [hidden, visible], visible bias, hidden bias)`
    trained on `problem.train` with `problem.learning_rate` and `problem.batch_size`.
    """
    return [
        Contender("ebmlang PCD (torch)", ebmlang_trainer("torch"), requires=("ebmlang", "torch")),
        Contender("ebmlang PCD (jax)", ebmlang_trainer("jax"), requires=("ebmlang", "jax")),
    ]


def contenders() -> list[Contender[RbmProblem]]:
    return hand_written_contenders() + peer_contenders() + ebmlang_contenders()


# --------------------------------------------------------------------------
# Measuring


def summarise(problem: RbmProblem) -> Callable[[Any, float], Mapping[str, float]]:
    def figures(output: Any, seconds: float) -> dict[str, float]:
        weights, visible_bias, hidden_bias = (to_numpy(part).astype(np.float64) for part in output)
        weights = weights.reshape(problem.hidden, problem.train.shape[1])
        log_z = log_partition(weights, visible_bias, hidden_bias)
        return {
            "s/epoch": seconds / problem.epochs,
            "test LL": float(log_likelihood(problem.test, weights, visible_bias, hidden_bias, log_z).mean()),
            "train LL": float(log_likelihood(problem.train, weights, visible_bias, hidden_bias, log_z).mean()),
            "log Z": log_z,
        }

    return figures


def independent_pixels_row(problem: RbmProblem) -> Row:
    """The no-interaction reference: each pixel an independent, add-one smoothed Bernoulli."""
    p = (problem.train.sum(axis=0) + 1.0) / (len(problem.train) + 2.0)

    def mean_log_likelihood(images: np.ndarray) -> float:
        return float((images @ np.log(p) + (1.0 - images) @ np.log1p(-p)).mean())

    return Row(
        "rbm", "digits", "independent pixels (reference)",
        metrics={"test LL": mean_log_likelihood(problem.test), "train LL": mean_log_likelihood(problem.train)},
    )


def run(smoke: bool) -> list[Row]:
    problem = make_problem(smoke)
    rows = [independent_pixels_row(problem)]
    for contender in contenders():
        rows.append(
            measure(
                "rbm", "digits", contender, problem,
                steps=problem.epochs, warmup_steps=WARMUP_EPOCHS, summarise=summarise(problem),
            )
        )
    return rows
