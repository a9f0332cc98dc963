"""How long `ebm sample` took: a compiling backend's warm-up apart from the sampling rate.

torch under `--compile` and JAX compile a sampler's kernels during its first step, which
can take longer than the run itself, so a chain-steps/s figure over the whole call would
mostly time the compiler. On those backends `timed_sample` first runs one step of exactly
the kernels the run will use (same plan, chains, temperature, burn-in and step size: the
compiled graph keeps them, `CompiledGraph.memo`), times that as the compile time, then
starts the run's clock:

    time: compiled in 4.12 s, then 0.31 s sampling (12903 chain-steps/s after compilation)

The run starts from the state the warm-up started from, so its draws are the draws of a
run without warm-up (same seed, same start, same random stream).
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Timing:
    """Seconds of a sampling run, and of the warm-up that compiled its kernels before it
    (None when the backend compiles nothing)."""

    seconds: float
    compile_seconds: float | None = None

    def line(self, chain_steps: int) -> str:
        """The time and the rate, chain-steps per second of the run alone."""
        rate = chain_steps / max(self.seconds, 1e-9)
        if self.compile_seconds is None:
            return f"time: {self.seconds:.2f} s ({rate:.0f} chain-steps/s)"
        return (f"time: compiled in {self.compile_seconds:.2f} s, then {self.seconds:.2f} s sampling "
                f"({rate:.0f} chain-steps/s after compilation)")


def timed(run: Callable, warm_up: Callable | None = None, clock: Callable[[], float] = time.perf_counter):
    """(run(warm_up()), Timing): without `warm_up`, run() timed alone; with it, each timed
    on its own, the run's clock started once the warm-up has returned."""
    if warm_up is None:
        start = clock()
        result = run()
        return result, Timing(clock() - start)
    start = clock()
    prepared = warm_up()
    compile_seconds = clock() - start
    start = clock()
    result = run(prepared)
    return result, Timing(clock() - start, compile_seconds)


def compiles(model) -> bool:
    """Whether the model's backend compiles its kernels at their first call (JAX's jit,
    torch.compile), so that a first step costs seconds that later ones do not."""
    return model.backend_name == "jax" or getattr(model.backend, "compile_options", None) is not None


def timed_sample(model, **options):
    """(samples, Timing) of `model.sample(**options)`; on a compiling backend, after a
    one-step warm-up that compiles the run's kernels (timed apart)."""
    if not compiles(model) or options.get("tempering") is not None:
        # (A tempered run is not warmed up apart: its time includes compiling its kernels.)
        return timed(lambda: model.sample(**options))
    return timed(lambda start: model.sample(**{**options, "init": start}), lambda: warm_up(model, **options))


def warm_up(model, *, chains: int, steps: int, observed=None, method=None, temperature: float = 1.0,
            burn_in: int | None = None, thin: int = 1, seed: int = 0, init=None, step_size=None, **_) -> dict:
    """Compile every kernel `model.sample` with these arguments runs, by one step (and one
    energy) from the state that run starts at; returns that state's latent groups, to pass
    as the run's `init` (a constrained model's start is an argmin: computed once)."""
    from ebmlang.inference.run import check_sample_request, initial_state
    from ebmlang.inference.steppers import plan_steppers

    backend = model.backend
    request = check_sample_request(model, chains=chains, steps=steps, observed=observed, method=method,
                                   temperature=temperature, burn_in=burn_in, thin=thin)
    start = initial_state(model, chains, request.observed, init, np.random.default_rng(seed))
    state = {name: backend.asarray(value) for name, value in start.items()}
    steppers = plan_steppers(model, request.plan, state, temperature, burn_in=request.burn_in, step_size=step_size)
    _, *keys = backend.split(backend.key(seed), 1 + len(steppers.steps))
    for key, stepper in zip(keys, steppers.steps):
        state = stepper(key, state)
    backend.to_numpy(model.compiled.energy(state, model.params))  # waits for JAX's asynchronous work
    return {name: start[name] for name in request.latent_names}
