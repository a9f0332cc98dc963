"""Helpers for the user-experience tests: valid inputs for any example from its declarations."""
from __future__ import annotations

from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
EXAMPLES_DIR = REPO / "examples"
EXAMPLES = sorted(EXAMPLES_DIR.glob("*.ebm"))


def random_values(var, batch: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Valid values of a variable group: [*batch, *shape], inside its domain."""
    shape = batch + tuple(var.shape)
    domain = var.domain
    if domain.is_discrete:
        values = domain.values
        picked = values[rng.integers(0, len(values), size=shape)]
        return picked.astype(np.int64)
    if domain.kind == "bounded":
        span = domain.high - domain.low
        return rng.uniform(domain.low + 0.1 * span, domain.high - 0.1 * span, size=shape)
    return rng.normal(size=shape)


def backend_for(graph) -> str:
    """numpy (fast to compile, fast Gibbs) unless a continuous latent group needs gradients."""
    return "numpy" if all(v.domain.is_discrete for v in graph.latent.values()) else "torch"
