"""Workload 9: exact inference in an HMM with Gaussian emissions (examples/hmm.ebm).

Forward-backward (log Z and every posterior marginal) and Viterbi over a batch of
sequences. Hand-written: the textbook log-space loops (benchmarks/kernels/hmm.py), torch
eager and JAX `lax.scan` under `jit`, each computing the emission weights from the raw
observations as ebmlang does. ebmlang: `model.marginals(observed={"x": x})` and
`model.argmin(observed={"x": x})` on examples/hmm.ebm as a user calls them (tables from
the model's energy, then the level passes), and the same model written the way it had to
be before variables could index params: K-way sums of indicators.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from benchmarks import harness
from benchmarks.harness import Contender, Headline, Row, measure, to_numpy
from benchmarks.kernels import hmm as kernels

TITLE = "HMM: forward-backward and Viterbi (exact, batched)"
ORDER = 9
HEADLINE = Headline(metric="ms/call", higher_is_better=False, baseline="torch (hand-written)")
SEED = 0
CALLS = 3

INDICATOR_FORM = """
const K = {K}
const T = {T}
param log_start[K] = 0
param log_A[K, K] = 0
param mu[K] = 0
param sigma[K] = 1.0 in [0.05, 20]
observed x[T] : real
latent   z[T] : categorical(K)
energy start      = -sum(k in 0..K) [z[0] == k] * log_start[k]
energy transition = -sum(t in 0..T-1, k in 0..K, l in 0..K) [z[t] == k and z[t+1] == l] * log_A[k, l]
energy emission   = sum(t in 0..T, k in 0..K) [z[t] == k] * (0.5 * ((x[t] - mu[k]) / sigma[k])^2 + log(sigma[k]))
"""


@dataclass(frozen=True)
class HmmProblem:
    query: str          # "forward-backward" or "viterbi"
    states: int
    steps: int
    observations: np.ndarray   # [B, T]
    log_start: np.ndarray
    log_A: np.ndarray
    mu: np.ndarray
    sigma: np.ndarray

    @property
    def params(self) -> dict:
        return {"log_start": self.log_start, "log_A": self.log_A, "mu": self.mu, "sigma": self.sigma}


def sizes(smoke: bool) -> tuple[int, int, int]:
    """(K states, T steps, B sequences)."""
    return (3, 20, 4) if smoke else (16, 1000, 64)


def make_problem(query: str, smoke: bool) -> HmmProblem:
    states, steps, batch = sizes(smoke)
    rng = np.random.default_rng(SEED)
    stay, move = 0.9, 0.1 / (states - 1)
    transition = np.full((states, states), move) + np.eye(states) * (stay - move)
    mu = np.linspace(-3.0, 3.0, states)
    sigma = np.full(states, 0.8)
    path = np.zeros((batch, steps), dtype=np.int64)
    path[:, 0] = rng.integers(0, states, batch)
    for t in range(1, steps):
        path[:, t] = [rng.choice(states, p=transition[z]) for z in path[:, t - 1]]
    x = mu[path] + sigma[path] * rng.normal(size=path.shape)
    return HmmProblem(query, states, steps, x, np.full(states, -np.log(states)), np.log(transition), mu, sigma)


def describe(smoke: bool) -> str:
    states, steps, batch = sizes(smoke)
    return (f"An HMM with K = {states} states, Gaussian emissions and a sticky transition matrix (0.9 "
            f"on the diagonal), B = {batch} sequences of T = {steps} steps drawn from it. Forward-backward: "
            "log Z and every posterior marginal; Viterbi: the most probable path of every sequence. "
            "Hand-written: the log-space textbook loops, torch eager and JAX `lax.scan` in `jit`, from "
            "the raw observations. ebmlang: examples/hmm.ebm, `marginals(observed=...)` and "
            "`argmin(observed=...)` as a user calls them (tabulating the energy included); \"indicator "
            "form\": the same model written with K-way sums of indicators, as it had to be before "
            "variables could index params. Figures: ms per call (best of the timed runs, "
            f"{CALLS} calls each), mean log Z (forward-backward) or mean path energy (Viterbi): equal "
            "across contenders when they agree.")


# --------------------------------------------------------------------------
# Contenders


def prepare_torch(problem: HmmProblem) -> Callable[[int], Any]:
    import torch

    def tensor(a):
        return torch.as_tensor(a, dtype=torch.float32, device=harness.DEVICE)

    forward_backward, viterbi = kernels.torch_hmm(*(tensor(p) for p in problem.params.values()))
    x = tensor(problem.observations)
    solve = forward_backward if problem.query == "forward-backward" else viterbi
    return lambda calls: [solve(x) for _ in range(calls)][-1]


def prepare_jax(problem: HmmProblem) -> Callable[[int], Any]:
    import jax.numpy as jnp

    forward_backward, viterbi = kernels.jax_hmm(*(jnp.asarray(p, jnp.float32) for p in problem.params.values()))
    x = jnp.asarray(problem.observations, jnp.float32)
    solve = forward_backward if problem.query == "forward-backward" else viterbi
    return lambda calls: [solve(x) for _ in range(calls)][-1]


def ebmlang_model(problem: HmmProblem, backend: str, indicators: bool = False):
    from ebmlang.api.model import loads
    from ebmlang.backends import get_backend
    from ebmlang.cli.showcase import load_example

    device_backend = get_backend(backend, device=harness.DEVICE)
    if indicators:
        model = loads(INDICATOR_FORM.format(K=problem.states, T=problem.steps), backend=device_backend)
    else:
        model = load_example("hmm.ebm", device_backend, K=problem.states, T=problem.steps)
    return model.set_params(**problem.params)


def ebmlang_solver(problem: HmmProblem, backend: str, indicators: bool = False) -> Callable[[int], Any]:
    model = ebmlang_model(problem, backend, indicators)
    observed = {"x": problem.observations}
    if problem.query == "forward-backward":
        def solve():
            answer = model.marginals(observed=observed)
            return answer.log_z, answer.probs["z"]
    else:
        def solve():
            return model.argmin(observed=observed).state["z"]
    return lambda calls: [solve() for _ in range(calls)][-1]


def ebmlang_contenders() -> list[Contender[HmmProblem]]:
    return [
        Contender("ebmlang (torch)", lambda p: ebmlang_solver(p, "torch"), requires=("ebmlang", "torch")),
        Contender("ebmlang (jax)", lambda p: ebmlang_solver(p, "jax"), requires=("ebmlang", "jax")),
        Contender("ebmlang indicator form (torch)", lambda p: ebmlang_solver(p, "torch", indicators=True),
                  requires=("ebmlang", "torch")),
    ]


def contenders() -> list[Contender[HmmProblem]]:
    return [Contender("torch (hand-written)", prepare_torch, requires=("torch",)),
            Contender("JAX (hand-written)", prepare_jax, requires=("jax",))] + ebmlang_contenders()


# --------------------------------------------------------------------------
# Measuring


def summarise(problem: HmmProblem) -> Callable[[Any, float], Mapping[str, float]]:
    _, reference_posterior = kernels.numpy_forward_backward(problem.observations, *problem.params.values())

    def figures(output: Any, seconds: float) -> dict[str, float]:
        figures = {"ms/call": 1000.0 * seconds / CALLS}
        if problem.query == "forward-backward":
            log_z, posterior = (to_numpy(part).astype(np.float64) for part in output)
            figures["log Z (mean)"] = float(log_z.mean())
            figures["max |p - exact|"] = float(np.abs(posterior - reference_posterior).max())
        else:
            energy = kernels.path_energy(to_numpy(output), problem.observations, *problem.params.values())
            figures["path energy (mean)"] = float(energy.mean())
        return figures

    return figures


def run(smoke: bool) -> list[Row]:
    rows = []
    for query in ("forward-backward", "viterbi"):
        problem = make_problem(query, smoke)
        states, steps, batch = sizes(smoke)
        for contender in contenders():
            rows.append(measure("hmm", f"{query}, K={states}, T={steps}, B={batch}", contender, problem,
                                steps=CALLS, warmup_steps=1, summarise=summarise(problem)))
    return rows
