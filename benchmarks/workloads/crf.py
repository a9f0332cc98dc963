"""Workload 10: training a linear-chain CRF by its exact likelihood (examples/crf.ebm).

Tagged sentences are drawn exactly from a CRF with known weights; every contender trains
the same model from the same start with Adam for the same epochs and batch size.
Hand-written: the torch forward algorithm with autograd (benchmarks/kernels/crf.py).
ebmlang: `fit(loss="nll")`, which sums the tags out by sum-product on the chain and
differentiates through it (torch and JAX).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from benchmarks.harness import Contender, Headline, Row, measure
from benchmarks.kernels import crf as kernels

TITLE = "Linear-chain CRF: exact-likelihood training"
ORDER = 10
HEADLINE = Headline(metric="s/epoch", higher_is_better=False, baseline="torch (hand-written)")
SEED = 0
LEARNING_RATE = 0.05
BATCH_SIZE = 64


@dataclass(frozen=True)
class CrfProblem:
    x: np.ndarray       # [N, T, F]
    y: np.ndarray       # [N, T]
    tags: int
    epochs: int


def sizes(smoke: bool) -> tuple[int, int, int, int]:
    """(N sentences, T tokens, F features, C tags)."""
    return (64, 6, 4, 3) if smoke else (2048, 24, 16, 8)


def make_problem(smoke: bool) -> CrfProblem:
    from ebmlang.cli.showcase import load_example

    sentences, tokens, features, tags = sizes(smoke)
    rng = np.random.default_rng(SEED)
    truth = load_example("crf.ebm", "numpy", T=tokens, F=features, C=tags)
    truth.set_params(W=rng.normal(size=(tags, features)), A=rng.normal(size=(tags, tags)))
    x = rng.normal(size=(sentences, tokens, features))
    y = truth.marginals(observed={"x": x}, draws=1, seed=SEED).draws["y"][:, 0]
    return CrfProblem(x, y, tags, 1 if smoke else 3)


def describe(smoke: bool) -> str:
    sentences, tokens, features, tags = sizes(smoke)
    return (f"{sentences} sentences of {tokens} tokens with {features} features each, {tags} tags drawn "
            "exactly from a CRF with known weights. Adam, lr 0.05, batch 64, from comparable starts "
            "(W ~ N(0, 0.1²), b = A = 0; each contender draws its own W). Figures: "
            "seconds per epoch (best timed run), and the mean training -log p(y | x) after the timed "
            "epochs -- close when the contenders train the same maths.")


def prepare_torch(problem: CrfProblem) -> Callable[[int], Any]:
    import torch

    x = torch.as_tensor(problem.x, dtype=torch.float32)
    y = torch.as_tensor(problem.y, dtype=torch.int64)

    def train(epochs: int):
        train_epoch, _ = kernels.torch_crf_trainer(problem.tags, problem.x.shape[2], LEARNING_RATE, SEED)
        return [train_epoch(x, y, BATCH_SIZE) for _ in range(epochs)][-1]

    return train


def ebmlang_trainer(problem: CrfProblem, backend: str) -> Callable[[int], Any]:
    from ebmlang.cli.showcase import load_example

    _, tokens, features = problem.x.shape
    model = load_example("crf.ebm", backend, T=tokens, F=features, C=problem.tags)
    start = {name: np.asarray(value) for name, value in model.param_values().items()}

    def train(epochs: int):
        model.set_params(**start)   # every timed run trains from the same start
        result = model.fit({"x": problem.x, "y": problem.y}, loss="nll", epochs=epochs, lr=LEARNING_RATE,
                           batch_size=BATCH_SIZE, progress=False, eval_every=10 ** 6, seed=SEED)
        return result.losses[-1]

    return train


def ebmlang_contenders() -> list[Contender[CrfProblem]]:
    return [Contender("ebmlang (torch)", lambda p: ebmlang_trainer(p, "torch"), requires=("ebmlang", "torch")),
            Contender("ebmlang (jax)", lambda p: ebmlang_trainer(p, "jax"), requires=("ebmlang", "jax"))]


def contenders() -> list[Contender[CrfProblem]]:
    return [Contender("torch (hand-written)", prepare_torch, requires=("torch",))] + ebmlang_contenders()


def summarise(problem: CrfProblem) -> Callable[[Any, float], Mapping[str, float]]:
    def figures(output: Any, seconds: float) -> dict[str, float]:
        return {"s/epoch": seconds / problem.epochs, "train NLL": float(output)}

    return figures


def run(smoke: bool) -> list[Row]:
    problem = make_problem(smoke)
    sentences, tokens, features, tags = sizes(smoke)
    case = f"N={sentences}, T={tokens}, F={features}, C={tags}"
    return [measure("crf", case, contender, problem, steps=problem.epochs, warmup_steps=1,
                    summarise=summarise(problem)) for contender in contenders()]
