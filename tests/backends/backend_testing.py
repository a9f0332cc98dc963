"""Shared fixtures: backends, hand-built models and compiled graphs (compiled once per
session, so JAX traces each kernel once however many tests use it)."""
from __future__ import annotations

import functools
import glob
import os

import jax.numpy as jnp
import numpy as np
import pytest
import torch
from ir_builders import HandModel, hand_models

from ebmlang.backends import get_backend

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLES = sorted(glob.glob(os.path.join(ROOT, "examples", "*.ebm")))

# (backend, dtype) pairs every agreement test runs on.
CONFIGS = [("numpy", "float64"), ("torch", "float32"), ("torch", "float64"),
           ("jax", "float32"), ("jax", "float64")]
# Tolerances relative to the scale of the summed terms: float64 sums of O(100) terms
# agree to ~1e-13, so 1e-9 leaves room without hiding a wrong factor; float32 carries
# ~1e-7 per operation and a few dozen operations per factor, hence 1e-4 (the brief's).
TOLERANCE = {"float64": 1e-9, "float32": 1e-4}

# `extern bump` for each backend: t^4 - t^2 + cos(t).
BUMP = {
    "numpy": lambda t: t**4 - t**2 + np.cos(t),
    "torch": lambda t: t**4 - t**2 + torch.cos(t),
    "jax": lambda t: t**4 - t**2 + jnp.cos(t),
}


@functools.lru_cache(maxsize=None)
def hand_model(name: str) -> HandModel:
    return hand_models()[name]()


@functools.lru_cache(maxsize=None)
def backend(name: str, dtype: str):
    return get_backend(name, dtype=dtype)


@functools.lru_cache(maxsize=None)
def compiled_hand(model: str, name: str, dtype: str):
    compiled = backend(name, dtype).compile(hand_model(model).graph)
    if "bump" in compiled.graph.externs:
        compiled.register_extern("bump", BUMP[name])
    return compiled


@functools.lru_cache(maxsize=None)
def example_graph(path: str):
    from ebmlang.graph.lower import lower_program
    from ebmlang.language.checker import check_program
    from ebmlang.language.parser import parse_source

    with open(path) as handle:
        return lower_program(check_program(parse_source(handle.read(), path)))


@functools.lru_cache(maxsize=None)
def compiled_example(path: str, name: str, dtype: str):
    return backend(name, dtype).compile(example_graph(path))


def random_state(graph, rng: np.random.Generator, batch: int) -> dict:
    """Values inside every group's domain."""
    state = {}
    for name, group in graph.variables.items():
        shape = (batch,) + group.shape
        domain = group.domain
        if domain.is_discrete:
            state[name] = rng.choice(domain.values, size=shape)
        elif domain.kind == "bounded":
            state[name] = rng.uniform(domain.low, domain.high, size=shape)
        else:
            state[name] = rng.normal(size=shape)
    return state


def close(got, want, dtype: str, scale=None) -> bool:
    """|got - want| <= tol * (1 + scale) elementwise, with infinities matching exactly."""
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    if got.shape != want.shape:
        return False
    finite = np.isfinite(want)
    if not np.array_equal(finite, np.isfinite(got)) or not np.array_equal(got[~finite], want[~finite]):
        return False
    scale = np.abs(want) if scale is None else np.broadcast_to(scale, want.shape)
    error = np.abs(got[finite] - want[finite])
    return bool(np.all(error <= TOLERANCE[dtype] * (1.0 + scale[finite])))


# A decorator: run the test once per (backend, dtype) pair, as parameter `config`.
every_config = pytest.mark.parametrize("config", CONFIGS, ids=[f"{n}-{d}" for n, d in CONFIGS])


# --------------------------------------------------------------------------
# Local conditionals against brute force


def brute_force(energy, graph, group, indices, state):
    """E[b, n, K]: the energy with variable indices[n] of `group` set to value k."""
    values = graph.variables[group].domain.values
    batch = state[group].shape[0]
    n, labels = len(indices), len(values)
    # one big batch: [batch, n, K] copies of the state
    tiled = {g: np.repeat(v, n * labels, axis=0) for g, v in state.items()}
    flat = tiled[group].reshape(batch, n, labels, -1)
    flat[:, np.arange(n), :, indices] = values  # advanced indices first: [n, batch, K]
    tiled[group] = flat.reshape((-1,) + state[group].shape[1:])
    return energy(tiled).reshape(batch, n, labels)


def relative(table):
    """Each variable's energies minus its smallest finite one (the per-variable constant)."""
    table = np.asarray(table, dtype=np.float64)
    lowest = np.where(np.isfinite(table), table, np.inf).min(axis=-1, keepdims=True)
    return table - np.where(np.isfinite(lowest), lowest, 0.0)


def check_block(compiled, energy, group, indices, state, params, dtype):
    graph = compiled.graph
    got = compiled.backend.to_numpy(compiled.local_conditional(group, indices, state, params))
    batch = next(iter(state.values())).shape[0]
    assert got.shape == (batch, len(indices), graph.variables[group].domain.num_values)
    want = brute_force(energy, graph, group, np.asarray(indices), state)
    # Where the rest of the state already violates a constraint every value has infinite
    # energy and the conditional is undefined: only rows with a finite value are compared.
    defined = np.isfinite(want).any(axis=-1)
    assert defined.any()
    finite_want = np.where(np.isfinite(want), want, 0.0)
    scale = np.abs(finite_want).max(axis=-1, keepdims=True) * np.ones_like(want)
    assert close(relative(got)[defined], relative(want)[defined], dtype, scale[defined])
