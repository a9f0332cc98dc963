"""Convolution, pooling and the largest singular value on JAX: the ops a network written
in the language needs (evaluator/layers.py), channels-first with PyTorch's weight layout
[OUT, C, *kernel], so one params dict runs on either backend.

Windows are strided slices, one per kernel offset, stacked and contracted with one
einsum -- not `lax.conv_general_dilated` / `lax.reduce_window`. Inside a `lax.fori_loop`
or `scan` (every SGLD chain and sampler loop) XLA's CPU backend runs those two ops about
ten times slower than outside one (measured: 20 SGLD steps of a two-layer conv energy,
640 ms in a loop against 23 ms unrolled), while slices and a dot product keep their speed
(43 ms); their gradients are pads and dot products too.
"""
from __future__ import annotations

import itertools
import string

import jax.numpy as jnp


def _windows(x, kernel: int, stride: int, padding: int = 0):
    """[n, C, K^d, *out]: the input under each kernel offset, `stride` apart (d = x.ndim - 2)."""
    spatial = x.ndim - 2
    if padding:
        x = jnp.pad(x, [(0, 0), (0, 0)] + [(padding, padding)] * spatial)
    out = [(n - kernel) // stride + 1 for n in x.shape[2:]]
    slices = []
    for offset in itertools.product(range(kernel), repeat=spatial):
        window = tuple(slice(o, o + stride * (m - 1) + 1, stride) for o, m in zip(offset, out))
        slices.append(x[(slice(None), slice(None)) + window])
    return jnp.stack(slices, axis=2)


class JaxLayerOps:
    """Mixed into JaxOps."""

    @staticmethod
    def conv(x, weight, bias, stride: int, padding: int):
        spatial = x.ndim - 2
        positions = string.ascii_lowercase[:spatial]
        windows = _windows(x, weight.shape[2], stride, padding)
        kernel = weight.reshape(weight.shape[0], weight.shape[1], -1)  # [OUT, C, K^d], offsets row-major
        out = jnp.einsum(f"nck{positions},ock->no{positions}", windows, kernel)
        return out + bias.reshape((1, -1) + (1,) * spatial)

    @staticmethod
    def avg_pool(x, kernel: int, stride: int):
        return jnp.mean(_windows(x, kernel, stride), axis=2)

    @staticmethod
    def max_pool(x, kernel: int, stride: int):
        return jnp.max(_windows(x, kernel, stride), axis=2)

    @staticmethod
    def largest_singular_value(matrix):
        return jnp.linalg.svd(matrix, compute_uv=False)[0]
