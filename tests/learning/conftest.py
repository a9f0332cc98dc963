"""Fixtures for the learning tests."""
from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def single_torch_thread():
    """Run torch single-threaded: the batches here are small, and on a busy 2-core machine
    OpenMP's intra-op threads made each step several times slower (measured: 50 RBM PCD
    steps took 6.4 s with one thread and 17.6 s with two)."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
