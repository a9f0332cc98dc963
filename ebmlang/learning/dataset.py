"""Training and evaluation data: checked group arrays and seeded minibatches."""
from __future__ import annotations

from collections.abc import Iterator, Mapping

import numpy as np

from ebmlang.errors import EbmError, did_you_mean
from ebmlang.graph.ir import FactorGraph
from ebmlang.graph.values import check_values


def prepare_data(graph: FactorGraph, data, *, what: str = "training data") -> dict[str, np.ndarray]:
    """`data` ({group: array [N, *shape]}) checked against the declarations: float64
    numpy arrays, one batch size N >= 1 for all groups (a float64 input is returned
    itself, not copied: callers only read it)."""
    if not isinstance(data, Mapping) or not data:
        raise EbmError(f"{what} must be a non-empty dict {{variable: array [N, *shape]}}",
                       hint=f"variables of {graph.name}: {', '.join(graph.variables)}")
    out: dict[str, np.ndarray] = {}
    for name, value in data.items():
        if name not in graph.variables:
            kind = "a parameter" if name in graph.params else "not a variable of this model"
            raise EbmError(f"{what} names '{name}', which is {kind}",
                           hint=did_you_mean(name, graph.variables)
                           or f"variables: {', '.join(graph.variables)}")
        out[name] = check_values(graph.variables[name], value, source=graph.source or None,
                                 batched=True, what=what, copy=False)
    sizes = {name: arr.shape[0] for name, arr in out.items()}
    if len(set(sizes.values())) != 1:
        listed = ", ".join(f"{k}: {v}" for k, v in sizes.items())
        first = next(iter(sizes.values()))
        odd = graph.variables[next(k for k, v in sizes.items() if v != first)]
        raise EbmError(f"{what} has different numbers of examples per variable ({listed})", odd.span,
                       source=graph.source or None, hint="every array needs the same leading (example) axis")
    if next(iter(sizes.values())) == 0:
        raise EbmError(f"{what} has no examples")
    return out


def num_examples(data: Mapping[str, np.ndarray]) -> int:
    return int(next(iter(data.values())).shape[0])


def epoch_order(seed: int, epoch: int, n: int) -> np.ndarray:
    """The example order of one epoch: a permutation derived from (seed, epoch) alone,
    so a resumed run visits the same minibatches."""
    return np.random.default_rng([int(seed), int(epoch), 0x0DA7A]).permutation(n)


def minibatches(data: Mapping[str, np.ndarray], order: np.ndarray, batch_size: int,
                backend=None) -> Iterator[dict]:
    """Consecutive slices of `order` as dicts of numpy arrays (the last may be smaller), or
    of `backend` arrays gathered on the backend when `data` is already there
    (`resident_data`)."""
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        if backend is None:
            yield {name: arr[rows] for name, arr in data.items()}
        else:
            index = backend.asarray(rows, dtype="int64")
            yield {name: backend.ops.take(arr, index, 0) for name, arr in data.items()}


def resident_data(backend, data: Mapping[str, np.ndarray]) -> dict:
    """The training data as backend arrays, converted once per fit instead of once per
    minibatch (for objectives that take backend batches)."""
    return {name: backend.asarray(arr) for name, arr in data.items()}


def step_seed(seed: int, epoch: int, step: int) -> int:
    """An integer seed for one random key outside the epoch's steps (e.g. evaluation), from
    (seed, epoch, step)."""
    return int(np.random.SeedSequence([int(seed), int(epoch), int(step)]).generate_state(1)[0])


def step_seeds(seed: int, epoch: int, steps: int) -> np.ndarray:
    """The seeds of the random keys of an epoch's first `steps` training steps, uint32 [steps]:
    one SeedSequence per epoch (its words are prefix-stable, so step i's seed does not
    depend on how many are asked for), not one per step, whose cost rivals a small step."""
    return np.random.SeedSequence([int(seed), int(epoch), STEP_STREAM]).generate_state(int(steps))


# Tags the epoch's step-seed stream apart from `step_seed(seed, epoch, n)` for small n.
STEP_STREAM = 0x57E95
