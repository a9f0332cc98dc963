"""Fixtures for the continuous-kernel tests: every test runs on torch and on JAX."""
from __future__ import annotations

import pytest
from continuous_helpers import JaxAdapter, TorchAdapter


@pytest.fixture(params=["torch", "jax"])
def bk(request):
    return TorchAdapter() if request.param == "torch" else JaxAdapter()


@pytest.fixture(autouse=True)
def single_torch_thread():
    """Run torch single-threaded here: these tensors are small ([chains, D] with D <= 2),
    and on a busy 2-core machine OpenMP's intra-op threads made each op ~1000x slower
    (measured: 7 s vs 0.08 s for 100 MALA steps on 4000 chains)."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
