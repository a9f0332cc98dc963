"""A linear-chain CRF trained by its exact negative log-likelihood, in torch by hand.

The model is examples/crf.ebm's energy: E(x, y) = -sum_t (W[y_t] . x_t + b[y_t]) -
sum_t A[y_t, y_t+1]; -log p(y | x) = E(x, y) + log Z(x) with log Z by the forward
algorithm in log space, gradients by autograd, Adam. The loop a practitioner writes
(as in the PyTorch CRF tutorial), batched over sentences.
"""
from __future__ import annotations

from collections.abc import Callable


def torch_crf_trainer(tags: int, features: int, lr: float, seed: int) -> tuple[Callable, dict]:
    """(train_epoch(x, y, batch_size) -> mean loss, params {W, b, A}) on float32 tensors."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    params = {"W": (0.1 * torch.randn(tags, features, generator=generator)).requires_grad_(True),
              "b": torch.zeros(tags, requires_grad=True), "A": torch.zeros(tags, tags, requires_grad=True)}
    optimizer = torch.optim.Adam(params.values(), lr=lr)

    def nll(x, y):
        scores = x @ params["W"].T + params["b"]                                   # [B, T, C]: -unary energy
        gold = scores.gather(2, y[..., None])[..., 0].sum(1) + params["A"][y[:, :-1], y[:, 1:]].sum(1)
        alpha = scores[:, 0]
        for t in range(1, x.shape[1]):
            alpha = torch.logsumexp(alpha[:, :, None] + params["A"], 1) + scores[:, t]
        return (torch.logsumexp(alpha, 1) - gold).mean()

    def train_epoch(x, y, batch_size: int) -> float:
        losses = []
        for start in range(0, x.shape[0], batch_size):
            optimizer.zero_grad()
            loss = nll(x[start:start + batch_size], y[start:start + batch_size])
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
        return sum(losses) / len(losses)

    return train_epoch, params
