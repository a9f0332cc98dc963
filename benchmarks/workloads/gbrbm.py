"""Workload 12: a Gaussian-Bernoulli RBM on standardised digits, trained without sampling
(denoising and sliced score matching, noise-contrastive estimation) and by PCD, each for
the same wall-clock time; the figure that compares them is the held-out log-likelihood by
AIS (hidden units summed out exactly), since a continuous model has no exact one.

Hand-written torch loops of the same maths (benchmarks/kernels/gbrbm.py) give each
sampling-free method's time per epoch a baseline.
"""
from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.harness import Contender, Headline, Row, describe_error, missing_requirement, to_numpy
from benchmarks.kernels import gbrbm as kernels

TITLE = "Gaussian-Bernoulli RBM on digits: score matching, NCE and PCD for equal time"
ORDER = 12
HEADLINE = Headline(metric="s/epoch", higher_is_better=False, baseline="torch (hand-written)")

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "gaussian_rbm.ebm"
VISIBLE, HIDDEN = 64, 32
BATCH_SIZE = 100
LEARNING_RATE = 0.01
NOISE_RATIO = 4.0
SEED = 0


@dataclass(frozen=True)
class GbRbmProblem:
    train: np.ndarray  # [N, 64] standardised pixels
    test: np.ndarray
    weights: np.ndarray  # the initial W [64, 32]
    budget_s: float  # training time per contender
    ais: dict  # chains / steps of the evaluation


def standardised_digits(seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1797 digits, shuffled with `seed`, 1500 train / 297 test, each pixel
    centred on its training mean and all divided by one sd (the pixels' root mean
    variance): per-pixel sds would blow the rare ink of nearly blank border pixels up to
    tens of sds, which then dominates any held-out likelihood."""
    from sklearn.datasets import load_digits

    images = load_digits().data.astype(np.float64)
    order = np.random.default_rng(seed).permutation(len(images))
    train, test = images[order[:1500]], images[order[1500:]]
    mean, sd = train.mean(0), np.sqrt(train.var(0).mean())
    return (train - mean) / sd, (test - mean) / sd


def make_problem(smoke: bool) -> GbRbmProblem:
    train, test = standardised_digits()
    weights = np.random.default_rng(SEED).normal(0.0, 0.01, (VISIBLE, HIDDEN))
    if smoke:
        return GbRbmProblem(train[:300], test[:100], weights, 0.2, {"chains": 8, "steps": 20})
    return GbRbmProblem(train, test, weights, 4.0, {"chains": 256, "steps": 2000})


def describe(smoke: bool) -> str:
    problem = make_problem(smoke)
    return (
        f"scikit-learn's digits, pixels centred and scaled to unit root-mean variance on the training split "
        f"({len(problem.train)} train / "
        f"{len(problem.test)} test); examples/gaussian_rbm.ebm ({VISIBLE} real visible units of unit variance, "
        f"{HIDDEN} binary hidden); Adam at {LEARNING_RATE}, batch {BATCH_SIZE}, the same initial W (normal, sd "
        f"0.01), zero biases. Each contender trains for about {problem.budget_s:g} s (its epochs: the budget over "
        "its time per epoch, measured first), then the held-out log-likelihood is estimated by AIS "
        f"(`ais_log_likelihood`: {problem.ais['chains']} chains x {problem.ais['steps']} temperatures, HMC, the "
        "hidden units summed out exactly, base fitted to the test images) with its standard error. DSM: antithetic "
        "noise from 0.5 to 0.01 of the data's sd over the first half of the run; SSM: one Gaussian projection per "
        f"image; NCE: {NOISE_RATIO:g} noise images per image from a Gaussian fitted to the data, log Z learnt; PCD: "
        "100 persistent chains (block Gibbs for h, Langevin for v). The hand-written torch loops do DSM's and "
        "NCE's maths (kernels/gbrbm.py); the ratio column compares each method with its own."
    )


# --------------------------------------------------------------------------
# Contenders: prepare(problem) -> train(epochs) -> (W, b, c), every call from the start


def ebmlang_trainer(method: str, backend: str) -> Callable[[GbRbmProblem], Callable[[int], Any]]:
    def prepare(problem: GbRbmProblem) -> Callable[[int], Any]:
        import ebmlang as ebm

        model = ebm.load(EXAMPLE, backend=backend, seed=SEED)
        zeros_v, zeros_h = np.zeros(VISIBLE), np.zeros(HIDDEN)

        def train(epochs: int):
            model.set_params(W=problem.weights, b=zeros_v, c=zeros_h)
            options = {"noise_ratio": NOISE_RATIO} if method == "nce" else {}
            model.fit({"v": problem.train}, method=method, epochs=epochs, batch_size=BATCH_SIZE, lr=LEARNING_RATE,
                      seed=SEED, progress=False, eval_every=0, **options)
            params = model.param_values()
            return params["W"], params["b"], params["c"]

        return train

    return prepare


def hand_dsm(problem: GbRbmProblem) -> Callable[[int], Any]:
    spread = float(np.mean(problem.train.std(0)))
    return kernels.torch_dsm(problem.train, problem.weights, batch_size=BATCH_SIZE, lr=LEARNING_RATE,
                             noise=(0.5 * spread, 0.01 * spread), seed=SEED)


def hand_nce(problem: GbRbmProblem) -> Callable[[int], Any]:
    return kernels.torch_nce(problem.train, problem.weights, batch_size=BATCH_SIZE, lr=LEARNING_RATE,
                             ratio=NOISE_RATIO, seed=SEED)


def ebmlang_contenders() -> list[Contender[GbRbmProblem]]:
    return [contender for contenders in CASES.values() for contender in contenders
            if contender.name.startswith("ebmlang")]


CASES: dict[str, list[Contender[GbRbmProblem]]] = {
    "DSM": [Contender("torch (hand-written)", hand_dsm, requires=("torch",)),
            Contender("ebmlang (torch)", ebmlang_trainer("dsm", "torch"), requires=("ebmlang", "torch")),
            Contender("ebmlang (jax)", ebmlang_trainer("dsm", "jax"), requires=("ebmlang", "jax"))],
    "SSM": [Contender("ebmlang (torch)", ebmlang_trainer("ssm", "torch"), requires=("ebmlang", "torch"))],
    "NCE": [Contender("torch (hand-written)", hand_nce, requires=("torch",)),
            Contender("ebmlang (torch)", ebmlang_trainer("nce", "torch"), requires=("ebmlang", "torch"))],
    "PCD": [Contender("ebmlang (torch)", ebmlang_trainer("pcd", "torch"), requires=("ebmlang", "torch"))],
}


# --------------------------------------------------------------------------
# Measuring


def held_out_log_likelihood(problem: GbRbmProblem, output) -> dict[str, float]:
    """AIS log-likelihood of the test images under the trained params (JAX: compiled once
    per process, so every contender is scored by the same estimator)."""
    from ebmlang.learning import ais_log_likelihood

    weights, visible, hidden = (to_numpy(part).astype(np.float64) for part in output)
    model = _scoring_model().set_params(W=weights, b=visible, c=hidden)
    found = ais_log_likelihood(model, {"v": problem.test}, seed=SEED, **problem.ais)
    return {"test LL (AIS)": found["log_likelihood"], "± se": found["log_likelihood_se"],
            "AIS ESS": found["log_likelihood_ess"]}


@functools.lru_cache(maxsize=1)
def _scoring_model():
    """One JAX model for every contender's AIS: its kernels compile once."""
    import ebmlang as ebm

    return ebm.load(EXAMPLE, backend="jax")


def measure_for_budget(case: str, contender: Contender[GbRbmProblem], problem: GbRbmProblem) -> Row:
    """Time an epoch (best of two, after a warm-up one), train for the budget, score by AIS."""
    missing = missing_requirement(contender.requires)
    if missing is not None:
        return Row("gbrbm", case, contender.name, status=f"not installed: {missing}")
    try:
        start = time.perf_counter()
        train = contender.prepare(problem)
        train(1)
        setup_s = time.perf_counter() - start
        per_epoch = np.inf
        for _ in range(2):
            start = time.perf_counter()
            train(1)
            per_epoch = min(per_epoch, time.perf_counter() - start)
        epochs = max(1, int(round(problem.budget_s / per_epoch)))
        start = time.perf_counter()
        output = train(epochs)
        trained_s = time.perf_counter() - start
        metrics = {"s/epoch": per_epoch, "epochs": float(epochs), "train s": trained_s,
                   **held_out_log_likelihood(problem, output)}
    except Exception as error:  # a failing contender is a row, not a crash
        import sys
        import traceback

        traceback.print_exc(file=sys.stderr)
        return Row("gbrbm", case, contender.name, status=f"failed: {describe_error(error)}")
    return Row("gbrbm", case, contender.name, setup_s=setup_s, run_s=per_epoch, metrics=metrics)


def run(smoke: bool) -> list[Row]:
    problem = make_problem(smoke)
    return [measure_for_budget(case, contender, problem) for case, contenders in CASES.items()
            for contender in contenders]
