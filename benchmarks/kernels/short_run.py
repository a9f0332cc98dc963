"""Short-run Langevin training of an MLP energy from a replay buffer, hand-written in
torch and JAX (IGEBM's recipe, Du & Mordatch 2019).

One training iteration: 128 data rows; 128 chains drawn from a FIFO replay buffer of
10,000 (each restarted from uniform noise on [0, 1] with probability 0.05); 60 SGLD
steps x <- clip(x - step * clip(dE/dx, -c, c) + noise * xi, 0, 1); the loss
mean E(data) - mean E(chains) + alpha (mean E(data)^2 + mean E(chains)^2); one Adam
step; the chains pushed to the front of the buffer. `run(iterations)` starts from fresh
parameters, buffer and optimiser every call, as a user's training run does.

The network is the recipe's MLP unless a training function is given another: torch, any
`nn.Module` mapping [n, *shape] to [n, 1]; JAX, an `init(key) -> params` and an
`energy(params, x) -> [n]` (kernels/short_run_conv.py passes a convolutional one). Rows and
chains keep the data's shape [n, *shape].
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Recipe:
    sizes: tuple[int, ...] = (64, 128, 128, 1)
    batch: int = 128
    sgld_steps: int = 60
    step_size: float = 10.0
    noise: float = 0.005
    grad_clip: float = 0.01
    alpha: float = 1.0
    buffer_size: int = 10000
    reinit: float = 0.05
    lr: float = 1e-4


def torch_mlp(recipe: Recipe, seed: int):
    """The recipe's MLP (SiLU between the layers) with torch's default initialisation."""
    import torch

    torch.manual_seed(seed)
    layers = []
    for i, (a, b) in enumerate(zip(recipe.sizes[:-1], recipe.sizes[1:])):
        layers.append(torch.nn.Linear(a, b))
        if i < len(recipe.sizes) - 2:
            layers.append(torch.nn.SiLU())
    return torch.nn.Sequential(*layers)


def torch_sgld(net, chains, recipe: Recipe, generator):
    """The recipe's SGLD steps from `chains` (the net's parameters already frozen)."""
    import torch

    for _ in range(recipe.sgld_steps):
        chains.requires_grad_(True)
        grad, = torch.autograd.grad(net(chains).sum(), chains)
        with torch.no_grad():
            chains = chains - recipe.step_size * grad.clamp(-recipe.grad_clip, recipe.grad_clip)
            chains = (chains + recipe.noise * torch.randn(chains.shape, generator=generator)).clamp(0, 1)
    return chains


def torch_training(data: np.ndarray, recipe: Recipe, seed: int, network: Callable | None = None):
    """run(iterations) -> (final chains [batch, *shape], last loss) for float32 `data` [N, *shape];
    network() -> a fresh nn.Module (default: the recipe's MLP, seeded)."""
    import torch

    rows = torch.from_numpy(data)
    network = network or (lambda: torch_mlp(recipe, seed))
    row_shape = tuple(rows.shape[1:])

    def run(iterations: int):
        net = network()
        optimiser = torch.optim.Adam(net.parameters(), lr=recipe.lr)
        generator = torch.Generator().manual_seed(seed)
        buffer = torch.rand((recipe.buffer_size,) + row_shape, generator=generator)
        loss = torch.zeros(())
        for it in range(iterations):
            start = (it * recipe.batch) % (rows.shape[0] - recipe.batch)
            positive = rows[start:start + recipe.batch]
            picks = torch.randint(0, recipe.buffer_size, (recipe.batch,), generator=generator)
            chains = buffer[picks]
            fresh = torch.rand((recipe.batch,) + (1,) * len(row_shape), generator=generator) < recipe.reinit
            chains = torch.where(fresh, torch.rand(chains.shape, generator=generator), chains)
            for p in net.parameters():
                p.requires_grad_(False)
            chains = torch_sgld(net, chains, recipe, generator)
            for p in net.parameters():
                p.requires_grad_(True)
            e_pos, e_neg = net(positive).squeeze(-1), net(chains).squeeze(-1)
            loss = e_pos.mean() - e_neg.mean() + recipe.alpha * (e_pos.square().mean() + e_neg.square().mean())
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            buffer = torch.cat([chains, buffer])[:recipe.buffer_size]
        return chains, loss.detach()

    return run


def jax_mlp(recipe: Recipe) -> tuple[Callable, Callable]:
    """(init(key) -> params, energy(params, x [n, D]) -> [n]): the recipe's MLP in JAX."""
    import jax

    def init_params(key):
        params = []
        for a, b in zip(recipe.sizes[:-1], recipe.sizes[1:]):
            key, wkey, bkey = jax.random.split(key, 3)
            bound = 1.0 / np.sqrt(a)
            params.append((jax.random.uniform(wkey, (a, b), minval=-bound, maxval=bound),
                           jax.random.uniform(bkey, (b,), minval=-bound, maxval=bound)))
        return params

    def energy(params, x):
        for i, (w, b) in enumerate(params):
            x = x @ w + b
            if i < len(params) - 1:
                x = jax.nn.silu(x)
        return x[..., 0]

    return init_params, energy


def jax_sgld(energy: Callable, recipe: Recipe) -> Callable:
    """sgld(params, chains, key) -> chains after the recipe's SGLD steps (traceable)."""
    import jax
    import jax.numpy as jnp

    grad_x = jax.grad(lambda x, params: energy(params, x).sum())

    def run(params, chains, key):
        def sgld(i, x):
            g = jnp.clip(grad_x(x, params), -recipe.grad_clip, recipe.grad_clip)
            xi = jax.random.normal(jax.random.fold_in(key, i), x.shape)
            return jnp.clip(x - recipe.step_size * g + recipe.noise * xi, 0.0, 1.0)

        return jax.lax.fori_loop(0, recipe.sgld_steps, sgld, chains)

    return run


def jax_training(data: np.ndarray, recipe: Recipe, seed: int, network: tuple[Callable, Callable] | None = None):
    """The same iteration as one jitted function (SGLD in a `lax.fori_loop`), optax Adam;
    network: (init, energy) as `jax_mlp` returns (its default)."""
    import jax
    import jax.numpy as jnp
    import optax

    rows = jnp.asarray(data)
    optimiser = optax.adam(recipe.lr)
    init_params, energy = network or jax_mlp(recipe)
    sgld_chains = jax_sgld(energy, recipe)
    row_shape = tuple(rows.shape[1:])

    @jax.jit
    def iteration(carry, it):
        params, opt_state, buffer, key = carry
        key, pick_key, fresh_key, noise_key, sgld_key = jax.random.split(key, 5)
        start = (it * recipe.batch) % (rows.shape[0] - recipe.batch)
        positive = jax.lax.dynamic_slice_in_dim(rows, start, recipe.batch)
        chains = buffer[jax.random.randint(pick_key, (recipe.batch,), 0, recipe.buffer_size)]
        fresh = jax.random.uniform(fresh_key, (recipe.batch,) + (1,) * len(row_shape)) < recipe.reinit
        chains = jnp.where(fresh, jax.random.uniform(noise_key, chains.shape), chains)
        chains = sgld_chains(params, chains, sgld_key)

        def loss_fn(p):
            e_pos, e_neg = energy(p, positive), energy(p, chains)
            return e_pos.mean() - e_neg.mean() + recipe.alpha * (jnp.square(e_pos).mean() + jnp.square(e_neg).mean())

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = optimiser.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        buffer = jnp.concatenate([chains, buffer])[:recipe.buffer_size]
        return (params, opt_state, buffer, key), (chains, loss)

    def run(iterations: int):
        key = jax.random.key(seed)
        params = init_params(key)
        buffer = jax.random.uniform(jax.random.fold_in(key, 1), (recipe.buffer_size,) + row_shape)
        carry = (params, optimiser.init(params), buffer, key)
        out = None
        for it in range(iterations):
            carry, out = iteration(carry, it)
        return out

    return run


def torchebm_training(data: np.ndarray, recipe: Recipe, seed: int, network: Callable | None = None):
    """torchebm's persistent contrastive divergence with its Langevin sampler (clamped to
    [0, 1]) on the same network (`network()`, default the recipe's MLP); torchebm clips no
    sampler gradients (its update is x - step dE/dx + noise)."""
    import torch
    from torchebm.core import BaseModel
    from torchebm.losses import ContrastiveDivergence
    from torchebm.samplers import LangevinDynamics

    rows = torch.from_numpy(data)
    network = network or (lambda: torch_mlp(recipe, seed))

    class Energy(BaseModel):
        def __init__(self):
            super().__init__()
            self.net = network()

        def forward(self, x):
            return self.net(x).squeeze(-1)

    def run(iterations: int):
        model = Energy()
        # sqrt(2 step) * noise_scale = the recipe's noise sd (torchebm's Euler-Maruyama update).
        sampler = LangevinDynamics(model, step_size=recipe.step_size,
                                   noise_scale=recipe.noise / np.sqrt(2 * recipe.step_size), clamp=(0.0, 1.0))
        loss_fn = ContrastiveDivergence(model=model, sampler=sampler, k_steps=recipe.sgld_steps, persistent=True,
                                        buffer_size=recipe.buffer_size, init_steps=0,
                                        new_sample_ratio=recipe.reinit, energy_reg_weight=recipe.alpha)
        optimiser = torch.optim.Adam(model.parameters(), lr=recipe.lr)
        loss, negatives = torch.zeros(()), None
        for it in range(iterations):
            start = (it * recipe.batch) % (rows.shape[0] - recipe.batch)
            optimiser.zero_grad(set_to_none=True)
            loss, negatives = loss_fn(rows[start:start + recipe.batch])
            loss.backward()
            optimiser.step()
        return negatives, loss.detach()

    return run
