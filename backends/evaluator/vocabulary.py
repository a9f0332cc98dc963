"""The names a node may use that the evaluator maps to `ops`: mlp activations and reductions.

Planning checks a template against these tables and evaluation computes with them, so
they sit below both.
"""
from __future__ import annotations

import numpy as np

# Activations an `mlp` may name, mapped to the `ops` function that computes them.
ACTIVATIONS = {
    "silu": "silu", "swish": "silu", "relu": "relu", "tanh": "tanh", "sigmoid": "sigmoid",
    "gelu": "gelu", "softplus": "softplus", "elu": "elu", "identity": "identity",
    "linear": "identity",
}

REDUCE_OPS = ("sum", "prod", "mean", "logsumexp", "min", "max")

# What a masked-out entry becomes before reducing, so it changes nothing.
_REDUCE_FILL = {
    "sum": 0.0, "mean": 0.0, "prod": 1.0, "logsumexp": -np.inf, "min": np.inf, "max": -np.inf,
}
