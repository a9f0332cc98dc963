"""numpy convolution, pooling and spectral scale for networks written in the language
(ParamInit kind "layers"): the reference's forward pass, and the numpy backend's ops.

Arrays are channels-first with the batch leading, [n, C, *spatial], and weights in
PyTorch's layout, [OUT, C, *kernel]; every spatial axis gets the same kernel, stride and
padding. Windows come from `sliding_window_view`, so no Python loop runs over positions.
"""
from __future__ import annotations

import string

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def _windows(x: np.ndarray, kernel: int, stride: int, padding: int = 0) -> np.ndarray:
    """[n, C, *out_spatial, *kernel]: every window a kernel visits, `stride` apart."""
    spatial = x.ndim - 2
    if padding:
        x = np.pad(x, [(0, 0), (0, 0)] + [(padding, padding)] * spatial)
    axes = tuple(range(2, 2 + spatial))
    windows = sliding_window_view(x, (kernel,) * spatial, axis=axes)
    return windows[(slice(None), slice(None)) + (slice(None, None, stride),) * spatial]


def conv(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, stride: int, padding: int) -> np.ndarray:
    """Cross-correlation, as torch.nn.functional.conv1d/conv2d/conv3d compute it."""
    spatial = x.ndim - 2
    positions, offsets = string.ascii_lowercase[:spatial], string.ascii_lowercase[10:10 + spatial]
    windows = _windows(x, weight.shape[2], stride, padding)
    out = np.einsum(f"nc{positions}{offsets},oc{offsets}->no{positions}", windows, weight)
    return out + bias.reshape((1, -1) + (1,) * spatial)


def avg_pool(x: np.ndarray, kernel: int, stride: int) -> np.ndarray:
    spatial = x.ndim - 2
    return _windows(x, kernel, stride).mean(axis=tuple(range(-spatial, 0)))


def max_pool(x: np.ndarray, kernel: int, stride: int) -> np.ndarray:
    spatial = x.ndim - 2
    return _windows(x, kernel, stride).max(axis=tuple(range(-spatial, 0)))


def largest_singular_value(matrix: np.ndarray) -> np.ndarray:
    return np.linalg.norm(matrix, ord=2)
