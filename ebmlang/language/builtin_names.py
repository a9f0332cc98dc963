"""The names the language itself defines: constants, functions, mlp activations,
param-initialisation distributions and network layers.

One list for every part of the checker, so the evaluator, the expression checker and
the declaration checker agree on what is built in.
"""
from __future__ import annotations

import math

BUILTIN_CONSTANTS = {"pi": math.pi, "e": math.e}
# Elementwise functions of one argument (names match ir.UNARY_FUNCTIONS).
BUILTIN_FUNCTIONS = ("exp", "log", "softplus", "sigmoid", "tanh", "abs", "sqrt", "relu",
                     "sin", "cos", "log1p", "expm1", "square")
# Functions that keep an integer argument integer (`W[abs(i - j)]`).
INTEGER_PRESERVING = ("abs", "square")
ACTIVATIONS = ("silu", "relu", "tanh", "sigmoid", "softplus", "gelu", "elu")
DISTRIBUTIONS = ("normal", "uniform")
# The layers of a `network(...)` param, and the activations it may name as layers: the
# backends' vocabulary (backends/evaluator/vocabulary.py), `swish` being `silu`.
NETWORK_LAYERS = ("conv", "dense", "avgpool", "maxpool", "flatten")
LAYER_ACTIVATIONS = ACTIVATIONS + ("swish", "identity", "linear")
