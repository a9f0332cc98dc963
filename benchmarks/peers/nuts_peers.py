"""NUTS from NumPyro and blackjax on a batch energy E(x) (x [D] per chain), for ESS/s.

Both run Stan-style windowed warm-up (step size by dual averaging toward acceptance 0.8,
diagonal inverse mass) for `warmup` iterations and then keep `draws` draws per chain, as
ebmlang's NUTS does; max tree depth 10 everywhere (all three defaults).

NumPyro: `NUTS(potential_fn=E)` under `MCMC(chain_method="vectorized")`, every chain in one
vmapped program. blackjax: `window_adaptation(nuts)` vmapped over chains (each chain adapts
its own step and mass: blackjax's adaptation is per chain), then `nuts.step` vmapped over
chains in a `lax.scan`.

`run(key_seed) -> draws [chains, draws, D]` (numpy-convertible).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np


def numpyro_nuts_fn(energy: Callable[[Any], Any], x0: np.ndarray, warmup: int, draws: int
                    ) -> Callable[[int], Any]:
    """`energy(x [D]) -> scalar` (jax); x0 [chains, D]: each chain's start.

    `MCMC.run` builds a fresh jitted loop on every call (it would recompile in every timed
    run), so the same kernel steps run here in one jitted `lax.scan` over the vectorized
    chains, as `MCMC(chain_method="vectorized")` does: `NUTS.init` with one key per chain
    vmaps the kernel over chains, and its `sample` adapts while the iteration count is
    below `num_warmup`."""
    import jax
    import jax.numpy as jnp
    from numpyro.infer import NUTS

    kernel = NUTS(potential_fn=energy, target_accept_prob=0.8, max_tree_depth=10)
    start = jnp.asarray(x0)

    @jax.jit
    def sample(state: Any) -> Any:
        def warm(state: Any, _: Any) -> tuple[Any, None]:
            return kernel.sample(state, (), {}), None

        def keep(state: Any, _: Any) -> tuple[Any, Any]:
            state = kernel.sample(state, (), {})
            return state, state.z

        state, _ = jax.lax.scan(warm, state, None, length=warmup)
        _, positions = jax.lax.scan(keep, state, None, length=draws)
        return jnp.swapaxes(positions, 0, 1)

    def run(seed: int) -> Any:
        keys = jax.random.split(jax.random.key(seed), x0.shape[0])
        state = kernel.init(keys, warmup, init_params=start, model_args=(), model_kwargs={})
        return sample(state)

    return run


def blackjax_nuts_fn(energy: Callable[[Any], Any], x0: np.ndarray, warmup: int, draws: int
                     ) -> Callable[[int], Any]:
    import blackjax
    import jax
    import jax.numpy as jnp

    def log_density(x: Any) -> Any:
        return -energy(x)

    chains = x0.shape[0]

    @jax.jit
    def sample(key: Any, start: Any) -> Any:
        adapt_key, draw_key = jax.random.split(key)

        def adapt(k: Any, x: Any) -> Any:
            adaptation = blackjax.window_adaptation(blackjax.nuts, log_density, target_acceptance_rate=0.8)
            (state, parameters), _ = adaptation.run(k, x, num_steps=warmup)
            return state, parameters

        states, parameters = jax.vmap(adapt)(jax.random.split(adapt_key, chains), start)

        def one_step(states: Any, k: Any) -> tuple[Any, Any]:
            def chain_step(k: Any, state: Any, params: Any) -> Any:
                return blackjax.nuts(log_density, **params).step(k, state)[0]

            states = jax.vmap(chain_step)(jax.random.split(k, chains), states, parameters)
            return states, states.position

        _, positions = jax.lax.scan(one_step, states, jax.random.split(draw_key, draws))
        return jnp.swapaxes(positions, 0, 1)

    start = jnp.asarray(x0)
    return lambda seed: sample(jax.random.key(seed), start)
