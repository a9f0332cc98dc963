"""The convolutional energy of examples/digits_conv.ebm, hand-written in torch and JAX, for
the short-run Langevin training loops of kernels/short_run.py.

    conv(1 -> 32, 3x3, padding 1) -> SiLU -> conv(32 -> 64, 3x3, stride 2, padding 1) -> SiLU
    -> conv(64 -> 64, 3x3, stride 2, padding 1) -> SiLU -> flatten -> dense(256 -> 1)

on images [n, 1, 8, 8]. torch: an `nn.Sequential` with torch's default initialisation
(its state_dict, prefixed `f.`, is the .ebm file's params). JAX: the same layers through
`lax.conv_general_dilated`, its params a list of (weight, bias) in torch's layouts
(OIHW), initialised from torch's distributions (uniform on +-1 / sqrt(fan_in)), images NCHW.

JAX's convolutions run channels-last (NHWC / HWIO, transposed around each conv) unless
`channels_last=False`. On XLA:CPU (jax 0.10.2) a convolution inside a `while` loop (the
SGLD `fori_loop`) keeps the layout it was written in, and an NCHW one is not handed to
the Eigen convolution kernel: 60 SGLD steps take ~4.9 s against ~0.5 s channels-last.
Outside a loop, layout assignment makes both NHWC and they cost the same.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

# (out channels, stride) of each 3x3 convolution (padding 1); then a dense layer to one output.
CONVS: tuple[tuple[int, int], ...] = ((32, 1), (64, 2), (64, 2))
IMAGE = (1, 8, 8)
KERNEL = 3


def flat_size() -> int:
    """Features entering the dense layer: the last conv's channels times its output area."""
    side = IMAGE[1]
    for _, stride in CONVS:
        side = (side + 2 - KERNEL) // stride + 1
    return CONVS[-1][0] * side * side


def torch_conv(seed: int):
    """The network as an nn.Sequential (torch's default initialisation after `manual_seed(seed)`)."""
    import torch

    torch.manual_seed(seed)
    layers, channels = [], IMAGE[0]
    for out, stride in CONVS:
        layers += [torch.nn.Conv2d(channels, out, KERNEL, stride=stride, padding=1), torch.nn.SiLU()]
        channels = out
    layers += [torch.nn.Flatten(), torch.nn.Linear(flat_size(), 1)]
    return torch.nn.Sequential(*layers)


def jax_conv(channels_last: bool = True) -> tuple[Callable, Callable]:
    """(init(key) -> params, energy(params, x [n, 1, 8, 8]) -> [n]) for kernels.short_run.jax_training."""
    import jax

    def init_params(key):
        params, inputs = [], (IMAGE[0],) + tuple(out for out, _ in CONVS[:-1])
        shapes = [((out, c, KERNEL, KERNEL), out) for (out, _), c in zip(CONVS, inputs)] + [((1, flat_size()), 1)]
        for weight_shape, out in shapes:
            key, wkey, bkey = jax.random.split(key, 3)
            bound = 1.0 / np.sqrt(np.prod(weight_shape[1:]))
            params.append((jax.random.uniform(wkey, weight_shape, minval=-bound, maxval=bound),
                           jax.random.uniform(bkey, (out,), minval=-bound, maxval=bound)))
        return params

    def convolve(x, w, stride):
        if not channels_last:
            return jax.lax.conv_general_dilated(x, w, (stride, stride), ((1, 1), (1, 1)),
                                                dimension_numbers=("NCHW", "OIHW", "NCHW"))
        out = jax.lax.conv_general_dilated(x.transpose(0, 2, 3, 1), w.transpose(2, 3, 1, 0), (stride, stride),
                                           ((1, 1), (1, 1)), dimension_numbers=("NHWC", "HWIO", "NHWC"))
        return out.transpose(0, 3, 1, 2)

    def energy(params, x):
        for (w, b), (_, stride) in zip(params, CONVS):
            x = jax.nn.silu(convolve(x, w, stride) + b[None, :, None, None])
        w, b = params[-1]
        return (x.reshape(x.shape[0], -1) @ w.T + b)[:, 0]

    return init_params, energy


def jax_params_from_torch(state: Mapping[str, object]) -> list:
    """The JAX kernel's params from an nn.Sequential state_dict (keys `0.weight`, ... or `f.0.weight`, ...)."""
    import jax.numpy as jnp

    values = {key.split(".", 1)[1] if key.startswith("f.") else key: np.asarray(value.detach().cpu())
              if hasattr(value, "detach") else np.asarray(value) for key, value in state.items()}
    layers = sorted({int(key.split(".")[0]) for key in values})
    return [(jnp.asarray(values[f"{i}.weight"]), jnp.asarray(values[f"{i}.bias"])) for i in layers]
