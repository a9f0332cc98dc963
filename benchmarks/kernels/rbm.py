"""A hand-written PCD-1 training loop for a binary RBM in torch: the maths of ebmlang's
maximum likelihood with the hidden units summed out exactly (rao_blackwell="hidden").

E(v, h) = -v W h - b.v - c.h, v in {0,1}^V, h in {0,1}^H. Per minibatch of B images:
the positive statistics use p(h | v) = sigmoid(v W + c); the persistent chains take one
block Gibbs sweep (h | v, then v | h) and their statistics use p(h | v_chain) likewise;
plain SGD on the mean log-likelihood gradient

    dW = (v^T p(h|v) - v_c^T p(h|v_c)) / B,  db = mean(v - v_c),  dc = mean(p(h|v) - p(h|v_c)).

The chains start at B random training images, as ebmlang's do.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np


def torch_pcd(images: np.ndarray, weights: np.ndarray, *, batch_size: int, lr: float, seed: int,
              device: str = "cpu") -> Callable[[int], tuple[Any, Any, Any]]:
    """`train(epochs) -> (W [V, H], b, c)`: every call starts again from `weights` and zero biases."""
    import torch

    data = torch.as_tensor(images, dtype=torch.float32, device=device)
    start = torch.as_tensor(weights, dtype=torch.float32, device=device)

    def train(epochs: int):
        generator = torch.Generator(device=device).manual_seed(seed)
        W = start.clone()
        b = torch.zeros(W.shape[0], device=device)
        c = torch.zeros(W.shape[1], device=device)
        rows = torch.randint(0, len(data), (batch_size,), generator=generator, device=device)
        chains = data[rows].clone()
        for _ in range(epochs):
            order = torch.randperm(len(data), generator=generator, device=device)
            for first in range(0, len(data), batch_size):
                v = data[order[first:first + batch_size]]
                positive = torch.sigmoid(v @ W + c)
                hidden = (torch.rand(chains.shape[0], W.shape[1], generator=generator, device=device)
                          < torch.sigmoid(chains @ W + c)).float()
                chains = (torch.rand(chains.shape, generator=generator, device=device)
                          < torch.sigmoid(hidden @ W.T + b)).float()
                negative = torch.sigmoid(chains @ W + c)
                W += lr * (v.T @ positive / len(v) - chains.T @ negative / len(chains))
                b += lr * (v.mean(0) - chains.mean(0))
                c += lr * (positive.mean(0) - negative.mean(0))
        return W, b, c

    return train
