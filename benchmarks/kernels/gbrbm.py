"""Hand-written torch training loops for a Gaussian-Bernoulli RBM, the maths of
ebmlang's `fit(method="dsm")` and `fit(method="nce")` on examples/gaussian_rbm.ebm.

E(v, h) = 1/2 |v - b|^2 - v W h - c.h, v real, h in {0,1}^H; summing h out,

    F(v) = 1/2 |v - b|^2 - sum_k softplus(c_k + v . W[:, k]).

DSM: each minibatch image perturbed by an antithetic pair v +/- sigma eps, loss
mean 1/2 |grad F(v~) - eps / sigma|^2 (grad F by autograd with create_graph), sigma
falling geometrically over the first half of the run; Adam on W, b, c.
NCE: a Gaussian q fitted to the data (mean, full covariance + ridge), `ratio` noise
samples per image, logistic loss on G = -F - c_z - log(ratio q), c_z = log Z learnt with
the params (one Adam over W, b, c, c_z).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np


def _free_energy(torch, v, W, b, c):
    return 0.5 * ((v - b) ** 2).sum(-1) - torch.nn.functional.softplus(v @ W + c).sum(-1)


def dsm_loss(v, eps, sigma: float, W, b, c):
    """Mean 1/2 |grad F(v + sigma eps) - eps / sigma|^2 over the rows (torch tensors)."""
    import torch

    noisy = (v + sigma * eps).requires_grad_(True)
    (score,) = torch.autograd.grad(_free_energy(torch, noisy, W, b, c).sum(), noisy, create_graph=True)
    return 0.5 * ((score - eps / sigma) ** 2).sum(-1).mean()


def torch_dsm(images: np.ndarray, weights: np.ndarray, *, batch_size: int, lr: float, noise: tuple[float, float],
              seed: int) -> Callable[[int], tuple[Any, Any, Any]]:
    """`train(epochs) -> (W, b, c)`, every call from `weights` and zero biases."""
    import torch

    data = torch.as_tensor(images, dtype=torch.float32)
    start = torch.as_tensor(weights, dtype=torch.float32)
    first, last = noise

    def train(epochs: int):
        generator = torch.Generator().manual_seed(seed)
        W = start.clone().requires_grad_(True)
        b = torch.zeros(W.shape[0], requires_grad=True)
        c = torch.zeros(W.shape[1], requires_grad=True)
        optimiser = torch.optim.Adam([W, b, c], lr=lr)
        steps = epochs * math.ceil(len(data) / batch_size)
        step = 0
        for _ in range(epochs):
            order = torch.randperm(len(data), generator=generator)
            for begin in range(0, len(data), batch_size):
                sigma = first * (last / first) ** min(1.0, step / steps / 0.5)
                v = data[order[begin:begin + batch_size]]
                eps = torch.randn(v.shape, generator=generator)
                loss = dsm_loss(torch.cat([v, v]), torch.cat([eps, -eps]), sigma, W, b, c)
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                step += 1
        return W.detach(), b.detach(), c.detach()

    return train


def torch_nce(images: np.ndarray, weights: np.ndarray, *, batch_size: int, lr: float, ratio: float,
              seed: int) -> Callable[[int], tuple[Any, Any, Any]]:
    """`train(epochs) -> (W, b, c)`, every call from `weights` and zero biases."""
    import torch

    data = torch.as_tensor(images, dtype=torch.float32)
    start = torch.as_tensor(weights, dtype=torch.float32)
    mean = images.mean(0)
    covariance = np.cov(images.T, bias=True)
    covariance += 1e-3 * np.mean(np.diag(covariance)) * np.eye(len(mean))
    cholesky = np.linalg.cholesky(covariance)
    log_det = 2.0 * np.sum(np.log(np.diag(cholesky)))
    mean_t = torch.as_tensor(mean, dtype=torch.float32)
    cholesky_t = torch.as_tensor(cholesky, dtype=torch.float32)
    dims = len(mean)

    def log_q(eps):  # log density of mean + L eps, from eps
        return -0.5 * (eps ** 2).sum(-1) - 0.5 * log_det - 0.5 * dims * math.log(2 * math.pi)

    def train(epochs: int):
        generator = torch.Generator().manual_seed(seed)
        W = start.clone().requires_grad_(True)
        b = torch.zeros(W.shape[0], requires_grad=True)
        c = torch.zeros(W.shape[1], requires_grad=True)
        log_z = torch.zeros((), requires_grad=True)
        optimiser = torch.optim.Adam([W, b, c, log_z], lr=lr)
        for _ in range(epochs):
            order = torch.randperm(len(data), generator=generator)
            for begin in range(0, len(data), batch_size):
                v = data[order[begin:begin + batch_size]]
                count = max(1, round(ratio * len(v)))
                nu = count / len(v)
                eps = torch.randn((count, dims), generator=generator)
                noise = mean_t + eps @ cholesky_t.T
                data_eps = torch.linalg.solve_triangular(cholesky_t, (v - mean_t).T, upper=False).T
                g_data = -_free_energy(torch, v, W, b, c) - log_z - math.log(nu) - log_q(data_eps)
                g_noise = -_free_energy(torch, noise, W, b, c) - log_z - math.log(nu) - log_q(eps)
                softplus = torch.nn.functional.softplus
                loss = softplus(-g_data).mean() + nu * softplus(g_noise).mean()
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
        return W.detach(), b.detach(), c.detach()

    return train
