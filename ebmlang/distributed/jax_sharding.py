"""Many chains on many devices with JAX's own sharding (`jax.sharding`), nothing home-made.

The batch (chain) axis of every state array is split over a 1-D device mesh whose one
axis is named "chains"; inside a device the chains stay one vectorised batch. Params
and the compiled graph's index arrays are replicated on every device of the mesh. The
Gibbs sweep is the ordinary kernel of `ebmlang.inference.gibbs`, wrapped in `jax.jit`
with explicit input and output shardings; the continuous kernels (MALA, HMC, ...) run
through `ContinuousRunner`, whose jitted step follows the sharding of its inputs. Both
are built by `ebmlang.inference.steppers.plan_steppers`, as for `Model.sample`.

Same seed, same samples as `Model.sample` on one device: the driver derives its keys
exactly as `ebmlang.inference.run.sample_model` does (one key per step split from
`key(seed)`, initial values from `numpy.random.default_rng(seed)`), and JAX's
partitionable threefry (`jax_threefry_partitionable`, on by default since JAX 0.5)
makes a batched random draw give the same numbers however its array is sharded. The
chains never interact inside a Gibbs sweep, so sharding them changes no arithmetic;
a continuous sampler whose step size adapts to the *mean* acceptance over chains does
a cross-device mean, which may differ from the one-device mean in the last bit.

Domain decomposition (one huge lattice split over devices) is not implemented: see
docs/scaling.md for the limit and what to do instead.
"""
from __future__ import annotations

import copy
from collections.abc import Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from ebmlang.backends.jax_backend import JaxBackend
from ebmlang.errors import EbmError

CHAIN_AXIS = "chains"


def chain_mesh(devices: Sequence | None = None) -> Mesh:
    """A 1-D mesh named "chains" over `devices` (default: every visible device)."""
    devices = list(jax.devices() if devices is None else devices)
    if not devices:
        raise EbmError("a device mesh needs at least one device")
    return Mesh(np.array(devices), (CHAIN_AXIS,))


class MeshJaxBackend(JaxBackend):
    """The JAX backend with every constant (params, index arrays, domain values) replicated
    over a mesh, so jitted kernels can mix them with chain-sharded states."""

    def __init__(self, mesh: Mesh, dtype: str = "float32"):
        super().__init__(None, dtype)
        if CHAIN_AXIS not in mesh.axis_names:
            raise EbmError(f"the mesh has axes {mesh.axis_names}; chain sharding needs an axis named "
                           f"'{CHAIN_AXIS}'", hint="build it with ebmlang.distributed.chain_mesh(devices)")
        self.mesh = mesh
        self.replicated = NamedSharding(mesh, PartitionSpec())
        self.chain_sharded = NamedSharding(mesh, PartitionSpec(CHAIN_AXIS))
        self.device = f"mesh({mesh.devices.size} x {mesh.devices.flat[0].platform})"

    def asarray(self, x, dtype: str | None = None):
        if isinstance(x, jax.Array):  # already placed (a state shard, or traced): keep it
            return super().asarray(x, dtype)
        # A constant made while a kernel is being traced must stay a concrete array: the
        # compiled graph caches it for later traces.
        with jax.ensure_compile_time_eval():
            return jax.device_put(super().asarray(x, dtype), self.replicated)


def replicate_model(model, mesh: Mesh):
    """A copy of `model` whose compiled graph and params live replicated on every device of
    `mesh` (the original model is left as it was)."""
    if model.externs and model.backend_name != "jax":
        raise EbmError(f"model '{model.name}' registers externs for the {model.backend_name} backend; "
                       "sharded sampling runs on JAX",
                       hint="load the model with backend='jax' and register JAX versions of its externs")
    backend = MeshJaxBackend(mesh, dtype=model.backend.dtype)
    clone = copy.copy(model)
    clone.backend_name = "jax"
    clone.backend = backend
    clone.compiled = backend.compile(model.graph)
    clone.externs = {}
    for name, fn in model.externs.items():
        clone.register_extern(name, fn)
    clone.params = {k: backend.asarray(model.backend.to_numpy(v)) for k, v in model.params.items()}
    return clone


def shard_chains(state: dict, mesh: Mesh) -> dict:
    """Every array of `state` ([chains, *shape]) split along its chain axis over `mesh`."""
    sharding = NamedSharding(mesh, PartitionSpec(CHAIN_AXIS))
    return {k: jax.device_put(v, sharding) for k, v in state.items()}


def sample_sharded(model, chains: int = 4, steps: int = 1000, *, observed: dict | None = None, method=None,
                   temperature: float = 1.0, burn_in: int | None = None, thin: int = 1, seed: int = 0,
                   init: dict | None = None, progress: bool = False, step_size: float | None = None,
                   mesh: Mesh | None = None, devices: Sequence | None = None):
    """`model.sample(...)` with the chains split over the devices of `mesh` (default: a
    "chains" mesh over `devices`, default every visible device); returns the same
    `Samples` as `Model.sample` with the same seed (see the module doc).

    chains must be a multiple of the number of devices (each device runs chains / devices).
    """
    from ebmlang.inference.results import Samples
    from ebmlang.inference.run import _check_finite, check_sample_request, initial_state, record_chains
    from ebmlang.inference.steppers import plan_steppers

    mesh = chain_mesh(devices) if mesh is None else mesh
    num_devices = int(mesh.shape[CHAIN_AXIS]) if CHAIN_AXIS in mesh.shape else 0
    _check_devices(chains, num_devices)
    request = check_sample_request(model, chains=chains, steps=steps, observed=observed, method=method,
                                   temperature=temperature, burn_in=burn_in, thin=thin)
    obs = request.observed

    local = replicate_model(model, mesh)
    start = initial_state(local, chains, obs, init, np.random.default_rng(seed))
    state = shard_chains({k: local.backend.asarray(v) for k, v in start.items()}, mesh)
    steppers = plan_steppers(local, request.plan, state, temperature, burn_in=request.burn_in,
                             step_size=step_size, sweep=sharded_gibbs_sweep)
    state, out, energy = record_chains(local, steppers.steps, state, request.latent_names, seed=seed,
                                       steps=steps, burn_in=request.burn_in, thin=request.thin,
                                       progress=progress, label=f"sampling {local.name} on {local.backend.device}")
    observed_state = {k: v for k, v in state.items() if k in obs}
    _check_finite(local, observed_state, out, energy)
    acceptance = steppers.mean_acceptance(request.burn_in)
    info = request.info(temperature, seed)
    info.update({"devices": num_devices, "chains_per_device": chains // num_devices,
                 "state_sharding": {k: tuple(v.sharding.spec) for k, v in state.items()}})
    info.update(steppers.runner_info())
    return Samples(out, energy, request.plan, acceptance, info)


def sharded_gibbs_sweep(local, blocks, state: dict, temperature: float = 1.0):
    """`sweep(key, state) -> state`: one chromatic Gibbs sweep over `blocks` (the kernel of
    ebmlang.inference.gibbs) for a model made by `replicate_model`, jitted with the
    shardings that `state`'s arrays have, in and out -- chain-sharded from `shard_chains`,
    or any other `NamedSharding` over the mesh (e.g. a lattice split along its rows,
    docs/scaling.md), which XLA's SPMD partitioner then handles."""
    from ebmlang.inference.gibbs import build_gibbs_kernel

    bk = local.backend
    params = local.params
    # Builds every block now, outside the trace (a block first built while tracing would
    # cache tracers), so its arrays are concrete replicated ones.
    kernel = build_gibbs_kernel(local.compiled, blocks, temperature)
    state_shardings = {k: v.sharding for k, v in state.items()}
    sweep = jax.jit(lambda key, state, params: kernel(key, state, params)[0],
                    in_shardings=(bk.replicated, state_shardings, bk.replicated),
                    out_shardings=state_shardings)

    def step(key, state):
        # An earlier stepper (a cluster update, in numpy) may hand back arrays placed otherwise.
        state = {k: jax.device_put(v, state_shardings[k]) if k in state_shardings else v for k, v in state.items()}
        return sweep(key, state, params)

    return step


def _check_devices(chains: int, num_devices: int) -> None:
    if num_devices < 1:
        raise EbmError(f"the mesh has no '{CHAIN_AXIS}' axis",
                       hint="build it with ebmlang.distributed.chain_mesh(devices)")
    if chains >= 1 and chains % num_devices:
        raise EbmError(f"{chains} chains do not split evenly over {num_devices} devices",
                       hint=f"ask for a multiple of {num_devices} chains, e.g. "
                            f"{-(-chains // num_devices) * num_devices}")
