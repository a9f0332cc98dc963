"""Workload 14: short-run Langevin training of a convolutional energy on digits (IGEBM's recipe).

The iteration of workloads/short_run.py (kernels/short_run.py: 128 data rows, 128 chains
from a replay buffer of 10,000 with 5% restarts, 60 SGLD steps of 10 with the gradient
clipped to +-0.01, noise sd 0.005, clamped into [0, 1], loss E+ - E- + (E+^2 + E-^2), one
Adam step at lr 1e-4) on images [1, 8, 8] with the network of examples/digits_conv.ebm:
conv(32, 3, padding 1) -> SiLU -> conv(64, 3, stride 2) -> SiLU -> conv(64, 3, stride 2)
-> SiLU -> flatten -> dense(1) (kernels/short_run_conv.py writes it by hand: torch's
nn.Sequential, JAX's `lax.conv_general_dilated` channels-last, and once more in NCHW as
written, which XLA:CPU runs ~10x slower inside the SGLD loop). ebmlang runs the example file itself
with `fit(method="pcd", recipe="igebm")`. tests/benchmarks/test_bench_short_run_conv.py
checks that every contender's network and SGLD compute the same numbers from the same
params and starts (their random streams differ).

The smoke run keeps the network and shrinks the recipe (32 rows and chains, 5 SGLD steps,
a buffer of 500) so that it takes seconds.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.harness import Contender, Headline, NotApplicable, Row, measure
from benchmarks.kernels import short_run as kernels
from benchmarks.kernels import short_run_conv as conv
from benchmarks.workloads.short_run import SEED, WARMUP_ITERATIONS, prepare_ebmlang, summarise

TITLE = "Short-run Langevin training of a convolutional energy (IGEBM recipe)"
ORDER = 14
HEADLINE = Headline(metric="ms/iteration", higher_is_better=False, baseline="torch (hand-written)")

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "digits_conv.ebm"


def recipe(smoke: bool) -> kernels.Recipe:
    full = kernels.Recipe()
    return replace(full, batch=32, sgld_steps=5, buffer_size=500) if smoke else full


def iterations(smoke: bool) -> int:
    return 2 if smoke else 6  # an iteration is about 30x the MLP's: 6 keep a run to a few seconds


def make_problem(smoke: bool) -> np.ndarray:
    from sklearn.datasets import load_digits

    return (load_digits().data / 16.0).astype(np.float32).reshape(-1, *conv.IMAGE)


def describe(smoke: bool) -> str:
    r = recipe(smoke)
    return (f"sklearn's digits (1797 x 1 x 8 x 8, pixels / 16); examples/digits_conv.ebm's network: conv(32, 3x3, "
            "padding 1) -> SiLU -> conv(64, 3x3, stride 2, padding 1) -> SiLU -> conv(64, 3x3, stride 2, padding 1) "
            f"-> SiLU -> flatten -> dense(256 -> 1); per iteration {r.batch} data rows, {r.batch} chains from a "
            f"buffer of {r.buffer_size:,} ({r.reinit:.0%} restarts), {r.sgld_steps} SGLD steps (step "
            f"{r.step_size:g}, gradient clipped to ±{r.grad_clip:g}, noise sd {r.noise:g}, clamped to [0, 1]), loss "
            f"E+ - E- + {r.alpha:g}(E+² + E-²), Adam lr {r.lr:g}; {iterations(smoke)} iterations per timed run, "
            "each run from fresh parameters, buffer and optimiser; float32, one thread. Figure: milliseconds per "
            "training iteration. Hand-written: torch nn.Sequential; JAX `lax.conv_general_dilated` in one jitted "
            "iteration, images NCHW and weights OIHW as in torch, each conv run channels-last (NHWC / HWIO, "
            "transposed around it: XLA:CPU runs an NCHW conv inside the SGLD `fori_loop` without its Eigen kernel, "
            "about 10x slower) or, in the `NCHW convs` row, as written. torchebm: its persistent "
            "ContrastiveDivergence with LangevinDynamics on the same "
            "nn.Sequential (clamp [0, 1]; it has no sampler gradient clipping). ebmlang: examples/digits_conv.ebm "
            "with `fit(method='pcd', recipe='igebm')`.")


def prepare_hand(kind: str, r: kernels.Recipe, smoke: bool = False) -> Callable[[np.ndarray], Callable[[int], Any]]:
    if kind == "jax NCHW" and smoke:
        def skip(data: np.ndarray) -> Callable[[int], Any]:
            raise NotApplicable("the NCHW row shows XLA:CPU's slow in-loop convolutions at full size only "
                                "(its compile would double the smoke run's)")

        return skip
    if kind in ("jax", "jax NCHW"):
        network = conv.jax_conv(channels_last=kind == "jax")
        return lambda data: kernels.jax_training(data, r, SEED, network=network)
    training = {"torch": kernels.torch_training, "torchebm": kernels.torchebm_training}[kind]
    return lambda data: training(data, r, SEED, network=lambda: conv.torch_conv(SEED))


def load_example(backend: str) -> Any:
    import ebmlang

    return ebmlang.load(EXAMPLE, backend=backend, seed=SEED)


def contenders(smoke: bool = False) -> list[Contender[np.ndarray]]:
    r = recipe(smoke)
    return [
        Contender("torch (hand-written)", prepare_hand("torch", r), requires=("torch",)),
        Contender("JAX (hand-written)", prepare_hand("jax", r), requires=("jax", "optax")),
        Contender("JAX (hand-written, NCHW convs)", prepare_hand("jax NCHW", r, smoke), requires=("jax", "optax")),
        Contender("torchebm", prepare_hand("torchebm", r), requires=("torch", "torchebm")),
        *ebmlang_contenders(smoke),
    ]


def ebmlang_contenders(smoke: bool = False) -> list[Contender[np.ndarray]]:
    """run(n) trains n iterations from the starting params; output: the energies of 8 digits and the last loss."""
    r = recipe(smoke)
    return [
        Contender("ebmlang (torch)", prepare_ebmlang("torch", load_example, r), requires=("ebmlang", "torch")),
        Contender("ebmlang (jax)", prepare_ebmlang("jax", load_example, r), requires=("ebmlang", "jax")),
    ]


def run(smoke: bool) -> list[Row]:
    data = make_problem(smoke)
    count = iterations(smoke)
    return [measure("short_run_conv", "IGEBM recipe", contender, data, steps=count, warmup_steps=WARMUP_ITERATIONS,
                    summarise=summarise(count)) for contender in contenders(smoke)]
