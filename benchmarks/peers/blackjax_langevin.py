"""The ring of Gaussians sampled with blackjax (JAX).

MALA is `blackjax.mala(logdensity_fn, step_size)`; ULA is `blackjax.sgld` given the exact
gradient (SGLD with a full-data gradient estimator is ULA: the same Euler step of the
overdamped Langevin diffusion, never rejected). The log density is written once per
point, as blackjax expects, its gradient taken by autodiff, and the kernel is vmapped
over chains; the steps run in a `lax.fori_loop` with a runtime trip count inside jit.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np


def blackjax_langevin_fn(
    means: np.ndarray, sigma: float, step_size: float, adjusted: bool
) -> Callable[[Any, Any, Any], tuple[Any, Any]]:
    """A jitted `run(key, x0 [chains, 2], steps) -> (x, acceptance rate)`."""
    import blackjax
    import jax
    import jax.numpy as jnp

    centres = jnp.asarray(means)

    def log_density(x: Any) -> Any:
        return jax.nn.logsumexp(-((x[None, :] - centres) ** 2).sum(-1) / (2.0 * sigma**2))

    if adjusted:
        mala = blackjax.mala(log_density, step_size)

        @jax.jit
        def run(key: Any, x0: Any, steps: Any) -> tuple[Any, Any]:
            def step(_: Any, carry: tuple[Any, Any, Any]) -> tuple[Any, Any, Any]:
                key, state, accepted = carry
                key, subkey = jax.random.split(key)
                state, info = jax.vmap(mala.step)(jax.random.split(subkey, x0.shape[0]), state)
                return key, state, accepted + info.is_accepted.sum(dtype=jnp.int32)

            # Under jax_enable_x64 blackjax computes in float64: start there so loop carries match.
            x0 = jnp.asarray(x0, dtype=jnp.result_type(float))
            state = jax.vmap(mala.init)(x0)
            _, state, accepted = jax.lax.fori_loop(0, steps, step, (key, state, jnp.zeros((), jnp.int32)))
            return state.position, accepted / jnp.maximum(steps * x0.shape[0], 1)

        return run

    grad_log_density = jax.grad(log_density)
    sgld = blackjax.sgld(lambda position, _minibatch: grad_log_density(position))

    @jax.jit
    def run_ula(key: Any, x0: Any, steps: Any) -> tuple[Any, Any]:
        def step(_: Any, carry: tuple[Any, Any]) -> tuple[Any, Any]:
            key, x = carry
            key, subkey = jax.random.split(key)
            keys = jax.random.split(subkey, x0.shape[0])
            x = jax.vmap(lambda k, position: sgld.step(k, position, None, step_size))(keys, x)
            return key, x

        x0 = jnp.asarray(x0, dtype=jnp.result_type(float))
        _, x = jax.lax.fori_loop(0, steps, step, (key, jax.vmap(sgld.init)(x0)))
        return x, jnp.ones(())

    return run_ula
