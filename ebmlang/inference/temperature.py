"""A temperature per chain, for replica exchange (inference/tempering.py).

Kernels are built at one scalar temperature. Under tempering each chain runs at its own
temperature instead: the params a kernel is called with then carry an inverse
temperature per chain, [chains], under `INVERSE_TEMPERATURE` (a name no declared param
can take, and one the compiled graph's input checks ignore). Being an argument, not a
constant of the kernel, it can change (the ladder adapts in warm-up) without rebuilding
or retracing anything. A kernel reads it with `chain_inverse_temperature(params)`;
without it (every run that is not tempered) the kernel's scalar path is unchanged.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

INVERSE_TEMPERATURE = "~inverse temperature"


def chain_inverse_temperature(params: Any) -> Any:
    """The chains' inverse temperatures [chains] that `params` carries, or None."""
    return params.get(INVERSE_TEMPERATURE) if isinstance(params, Mapping) else None


def along_batch(ops: Any, per_chain: Any, like: Any) -> Any:
    """`per_chain` [chains] shaped to broadcast against `like` [chains, ...]."""
    return ops.reshape(per_chain, (per_chain.shape[0],) + (1,) * (len(like.shape) - 1))
