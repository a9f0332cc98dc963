"""Scale-out on the array libraries' own distribution machinery.

* `sample_sharded` (JAX): chains split over the devices of a `jax.sharding.Mesh`;
  same seed, same samples as `Model.sample` on one device.
* `fit_distributed` (torch): data-parallel `fit` over `torch.distributed` processes
  (gloo on CPU, nccl on GPU), gradients all-reduced, each rank with its own persistent
  chains; `fit_data_parallel` is the per-process entry point for `torchrun`.

See docs/scaling.md. The submodules import JAX or torch only when used.
"""
from __future__ import annotations

from importlib import import_module

_EXPORTS = {
    "CHAIN_AXIS": "jax_sharding",
    "MeshJaxBackend": "jax_sharding",
    "chain_mesh": "jax_sharding",
    "replicate_model": "jax_sharding",
    "sample_sharded": "jax_sharding",
    "shard_chains": "jax_sharding",
    "fit_data_parallel": "torch_ddp",
    "fit_distributed": "torch_ddp",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'ebmlang.distributed' has no attribute '{name}'")
    return getattr(import_module(f"ebmlang.distributed.{_EXPORTS[name]}"), name)
