"""Workload 13: short-run Langevin training of an MLP energy on digits (IGEBM's recipe).

One training iteration of each contender does the same maths (benchmarks/kernels/short_run.py):
a batch of 128 digits (8x8, pixels in [0, 1]); 128 chains from a replay buffer of 10,000
with 5% restarts from uniform noise; 60 SGLD steps of step 10 on the energy gradient
clipped to +-0.01, noise sd 0.005, clamped into [0, 1]; the contrastive loss with the L2
energy penalty (alpha = 1); one Adam step (lr 1e-4). The network is an MLP
64 -> 128 -> 128 -> 1 with SiLU. ebmlang runs it as a user does:
`fit(data, method="pcd", recipe="igebm", batch_size=128, epochs=1)` on a `.ebm` file with
`param E : mlp(64 -> 128 -> 128 -> 1, silu)`; every contender's run starts from fresh
parameters, buffer and optimiser (its set-up is in the timed run, as in a user's fit).
ebmlang torch trains for two seconds in setup first, as a long fit would, so that its
SGLD step runs recorded (backends/torch_fusion.py).
"""
from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from benchmarks.harness import Contender, Headline, Row, measure, to_numpy
from benchmarks.kernels import short_run as kernels

TITLE = "Short-run Langevin training of an MLP energy (IGEBM recipe)"
ORDER = 13
HEADLINE = Headline(metric="ms/iteration", higher_is_better=False, baseline="torch (hand-written)")

SEED = 0
WARMUP_ITERATIONS = 2
SOURCE = """
observed x[64] : real in [0, 1]
param E : mlp(64 -> 128 -> 128 -> 1, silu)
energy e = E(x)
"""


def iterations(smoke: bool) -> int:
    return 2 if smoke else 14  # 14 x 128 rows: the digits fill 14 full batches


def make_problem(smoke: bool) -> np.ndarray:
    from sklearn.datasets import load_digits

    return (load_digits().data / 16.0).astype(np.float32)


def describe(smoke: bool) -> str:
    recipe = kernels.Recipe()
    return (f"sklearn's digits (1797 x 64, pixels / 16); MLP {' -> '.join(map(str, recipe.sizes))} (SiLU); per "
            f"iteration {recipe.batch} data rows, {recipe.batch} chains from a buffer of {recipe.buffer_size:,} "
            f"({recipe.reinit:.0%} restarts), {recipe.sgld_steps} SGLD steps (step {recipe.step_size:g}, gradient "
            f"clipped to ±{recipe.grad_clip:g}, noise sd {recipe.noise:g}, clamped to [0, 1]), loss E+ - E- + "
            f"{recipe.alpha:g}(E+² + E-²), Adam lr {recipe.lr:g}; {iterations(smoke)} iterations per timed run, "
            "each run from fresh parameters, buffer and optimiser; float32, one thread. Figure: milliseconds "
            "per training iteration. torchebm: its persistent ContrastiveDivergence with LangevinDynamics "
            "(clamp [0, 1]; it has no sampler gradient clipping). ebmlang: `fit(method='pcd', recipe='igebm')`.")


def prepare_hand(kind: str) -> Callable[[np.ndarray], Callable[[int], Any]]:
    training = {"torch": kernels.torch_training, "jax": kernels.jax_training,
                "torchebm": kernels.torchebm_training}[kind]
    return lambda data: training(data, kernels.Recipe(), SEED)


def langevin_overrides(recipe: kernels.Recipe) -> dict[str, Any] | None:
    """fit's `langevin=` for a recipe that differs from IGEBM's (a smoke run's smaller one), else None."""
    igebm = kernels.Recipe()
    fields = {"steps": "sgld_steps", "buffer_size": "buffer_size", "reinit_prob": "reinit", "grad_clip": "grad_clip"}
    changed = {name: getattr(recipe, field) for name, field in fields.items()
               if getattr(recipe, field) != getattr(igebm, field)}
    if (recipe.step_size, recipe.noise) != (igebm.step_size, igebm.noise):
        changed.update(step_size=recipe.step_size, noise_scale=recipe.noise)
    return changed or None


def load_source(backend: str) -> Any:
    import ebmlang

    return ebmlang.loads(SOURCE, backend=backend, seed=SEED)


def prepare_ebmlang(backend: str, load: Callable[[str], Any] = load_source, recipe: kernels.Recipe | None = None,
                    ) -> Callable[[np.ndarray], Callable[[int], Any]]:
    """ebmlang's `fit(method='pcd', recipe='igebm')` on the model `load(backend)` builds."""
    recipe = recipe or kernels.Recipe()

    def prepare(data: np.ndarray) -> Callable[[int], Any]:
        model = load(backend)
        start = model.param_values()

        def run(n: int) -> Any:
            model.set_params(**start)
            result = model.fit({"x": data[:n * recipe.batch]}, method="pcd", recipe="igebm", epochs=1,
                               batch_size=recipe.batch, lr=recipe.lr, seed=SEED, progress=False, eval_every=0,
                               langevin=langevin_overrides(recipe), energy_reg=recipe.alpha)
            return model.energy({"x": data[:8]}), np.float32(result.history[-1]["loss"])

        if backend == "torch":
            # Eager torch records the SGLD step once its eager calls have taken a second
            # (backends/torch_fusion.py): train that long in setup, as a long fit would.
            started = time.perf_counter()
            while time.perf_counter() - started < 2.0:
                run(4)
        return run

    return prepare


def contenders() -> list[Contender[np.ndarray]]:
    return [
        Contender("torch (hand-written)", prepare_hand("torch"), requires=("torch",)),
        Contender("JAX (hand-written)", prepare_hand("jax"), requires=("jax", "optax")),
        Contender("torchebm", prepare_hand("torchebm"), requires=("torch", "torchebm")),
        Contender("ebmlang (torch)", prepare_ebmlang("torch"), requires=("ebmlang", "torch")),
        Contender("ebmlang (jax)", prepare_ebmlang("jax"), requires=("ebmlang", "jax")),
    ]


def summarise(count: int) -> Callable[[Any, float], Mapping[str, float]]:
    def figures(output: Any, seconds: float) -> dict[str, float]:
        arrays, loss = output  # the chains (or a few energies) and the last loss
        if not np.all(np.isfinite(to_numpy(arrays))) or not np.isfinite(float(to_numpy(loss))):
            raise ValueError("a contender's training diverged")
        return {"ms/iteration": 1000.0 * seconds / count, "last loss": float(to_numpy(loss))}

    return figures


def run(smoke: bool) -> list[Row]:
    data = make_problem(smoke)
    count = iterations(smoke)
    return [measure("short_run", "IGEBM recipe", contender, data, steps=count, warmup_steps=WARMUP_ITERATIONS,
                    summarise=summarise(count)) for contender in contenders()]
