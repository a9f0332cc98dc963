"""Compiled energies against hand-written kernels, per backend, in one process.

Two workloads, each energy + gradient w.r.t. the state (as a real array):
  * the 256 x 256 periodic Ising model (examples/ising.ebm with L = 256), batch 64;
  * the 8-component ring mixture (examples/ring.ebm), batch 4096;
plus, for Gibbs sampling, the local conditional table of one checkerboard colour class
of that Ising model (32768 spins x 2 values x 64 chains).
Each backend's compiled graph is timed against a vectorised kernel written by hand for
that backend (torch: rolls/broadcasts + autograd; JAX: the same under jax.jit +
value_and_grad; numpy: energy only, it has no autodiff). Rounds alternate between the
two so machine load hits both alike; the reported times are medians over rounds, of wall
time and of process CPU time (the steadier of the two on a shared machine). Warm-up calls (and JAX compilation) are excluded; JAX results
are waited for with block_until_ready.

    python benchmarks/bench_backends.py [--repeats 15] [--compile] [--device cuda]

Target: compiled / hand-written <= 1.2.
"""
from __future__ import annotations

import argparse
import math
import re
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ebmlang.backends import get_backend
from ebmlang.graph.lower import lower_program
from ebmlang.graph.structure import colouring
from ebmlang.language.checker import check_program
from ebmlang.language.parser import parse_source

ROOT = Path(__file__).resolve().parent.parent
TARGET = 1.2


def load_example(name: str, **consts) -> object:
    """An example's factor graph with some `const` values replaced."""
    path = ROOT / "examples" / name
    source = path.read_text()
    for const, value in consts.items():
        source, count = re.subn(rf"const {const} = [^\n]+", f"const {const} = {value}", source)
        if count != 1:
            raise SystemExit(f"{name} has no `const {const} = ...` line to resize")
    return lower_program(check_program(parse_source(source, str(path))))


# --------------------------------------------------------------------------
# Hand-written kernels: (energy fn, energy-and-grad fn) per backend


def ising_torch(J: float, h: float):
    import torch

    def energy(s):
        neighbours = torch.roll(s, -1, 1) + torch.roll(s, -1, 2)
        return -J * (s * neighbours).sum((1, 2)) - h * s.sum((1, 2))

    def energy_and_grad(s):
        s = s.detach().requires_grad_(True)
        e = energy(s)
        (grad,) = torch.autograd.grad(e.sum(), s)
        return e.detach(), grad

    return energy, energy_and_grad


def ising_jax(J: float, h: float):
    import jax
    import jax.numpy as jnp

    def energy(s):
        neighbours = jnp.roll(s, -1, 1) + jnp.roll(s, -1, 2)
        return -J * (s * neighbours).sum((1, 2)) - h * s.sum((1, 2))

    def total(s):
        e = energy(s)
        return e.sum(), e

    value_and_grad = jax.value_and_grad(total, has_aux=True)
    return jax.jit(energy), jax.jit(lambda s: (lambda r: (r[0][1], r[1]))(value_and_grad(s)))


def ising_numpy(J: float, h: float):
    def energy(s):
        neighbours = np.roll(s, -1, 1) + np.roll(s, -1, 2)
        return -J * (s * neighbours).sum((1, 2)) - h * s.sum((1, 2))

    return energy, None


def ising_conditional(name: str, J: float, h: float, members: np.ndarray, lattice: int, batch: int):
    """The Gibbs table of one checkerboard class: (-J * neighbour sum - h) * value."""
    if name == "torch":
        import torch

        index = torch.as_tensor(members.copy())
        values = torch.tensor([-1.0, 1.0])

        def table(s):
            around = torch.roll(s, 1, 1) + torch.roll(s, -1, 1) + torch.roll(s, 1, 2) + torch.roll(s, -1, 2)
            return (-J * around.reshape(batch, -1)[:, index, None] - h) * values.to(s.dtype)

        return table
    if name == "jax":
        import jax
        import jax.numpy as jnp

        index = jnp.asarray(members)

        @jax.jit
        def table(s):
            around = jnp.roll(s, 1, 1) + jnp.roll(s, -1, 1) + jnp.roll(s, 1, 2) + jnp.roll(s, -1, 2)
            return (-J * around.reshape(batch, -1)[:, index, None] - h) * jnp.array([-1.0, 1.0], s.dtype)

        return table

    def table(s):
        around = np.roll(s, 1, 1) + np.roll(s, -1, 1) + np.roll(s, 1, 2) + np.roll(s, -1, 2)
        return (-J * around.reshape(batch, -1)[:, members, None] - h) * np.array([-1.0, 1.0])

    return table


def ring_means(components: int, radius: float) -> np.ndarray:
    angles = 2 * math.pi * np.arange(components) / components
    return np.stack([radius * np.cos(angles), radius * np.sin(angles)], axis=1)


def ring_torch(means: np.ndarray, sigma: float, dtype, device):
    import torch

    mu = torch.as_tensor(means, dtype=dtype, device=device)

    def energy(x):
        squared = ((x[:, None, :] - mu) ** 2).sum(-1)
        return -torch.logsumexp(-squared / (2 * sigma**2), dim=-1)

    def energy_and_grad(x):
        x = x.detach().requires_grad_(True)
        e = energy(x)
        (grad,) = torch.autograd.grad(e.sum(), x)
        return e.detach(), grad

    return energy, energy_and_grad


def ring_jax(means: np.ndarray, sigma: float, dtype):
    import jax
    import jax.numpy as jnp

    mu = jnp.asarray(means, dtype)

    def energy(x):
        squared = ((x[:, None, :] - mu) ** 2).sum(-1)
        return -jax.nn.logsumexp(-squared / (2 * sigma**2), axis=-1)

    def total(x):
        e = energy(x)
        return e.sum(), e

    value_and_grad = jax.value_and_grad(total, has_aux=True)
    return jax.jit(energy), jax.jit(lambda x: (lambda r: (r[0][1], r[1]))(value_and_grad(x)))


def ring_numpy(means: np.ndarray, sigma: float):
    from scipy.special import logsumexp

    def energy(x):
        squared = ((x[:, None, :] - means) ** 2).sum(-1)
        return -logsumexp(-squared / (2 * sigma**2), axis=-1)

    return energy, None


# --------------------------------------------------------------------------
# Timing


def synchronise(result) -> None:
    """Wait for asynchronous work (JAX dispatch, CUDA kernels) to finish."""
    leaves = result if isinstance(result, (tuple, list)) else [result]
    for leaf in leaves:
        if isinstance(leaf, dict):
            synchronise(list(leaf.values()))
        elif hasattr(leaf, "block_until_ready"):
            leaf.block_until_ready()
        elif hasattr(leaf, "is_cuda") and leaf.is_cuda:
            import torch

            torch.cuda.synchronize(leaf.device)


def race(ours: Callable[[], object], theirs: Callable[[], object], repeats: int) -> dict:
    """Per-call wall and process-CPU seconds of both, in alternating rounds after three
    warm-up calls each. CPU time (all threads) is the steadier measure on a shared
    machine; wall time is what a user waits on an idle one."""
    for _ in range(3):
        synchronise(ours())
        synchronise(theirs())
    times = {("ours", "wall"): [], ("ours", "cpu"): [], ("hand", "wall"): [], ("hand", "cpu"): []}
    for _ in range(repeats):
        for who, fn in (("ours", ours), ("hand", theirs)):
            wall, cpu = time.perf_counter(), time.process_time()
            synchronise(fn())
            times[(who, "cpu")].append(time.process_time() - cpu)
            times[(who, "wall")].append(time.perf_counter() - wall)
    return times


def check_same(ours, theirs, what: str, rtol: float) -> None:
    """The compiled graph and the hand-written kernel must compute the same thing."""
    ours = [np.asarray(to_host(x), dtype=np.float64) for x in ours]
    theirs = [np.asarray(to_host(x), dtype=np.float64) for x in theirs]
    for a, b in zip(ours, theirs):
        scale = max(1.0, float(np.abs(b).max()))
        if np.abs(a.reshape(b.shape) - b).max() > rtol * scale:
            raise SystemExit(f"{what}: compiled and hand-written results differ")


def to_host(x):
    if hasattr(x, "detach"):
        return x.detach().cpu().numpy()
    return np.asarray(x)


# --------------------------------------------------------------------------


def workloads(args):
    """(workload, backend label, compiled call, hand call, check tolerance) rows."""
    ising_graph = load_example("ising.ebm", L=args.lattice)
    ring_graph = load_example("ring.ebm")
    ring_K = 8
    ring_R, ring_sigma = 4.0, 0.5
    rng = np.random.default_rng(0)
    spins = rng.choice([-1.0, 1.0], size=(args.ising_batch, args.lattice, args.lattice))
    points = rng.normal(scale=3.0, size=(args.ring_batch, 2))
    means = ring_means(ring_K, ring_R)
    backends = [("numpy", {}), ("torch", {}), ("jax", {})]
    if args.compile:
        backends.insert(2, ("torch", {"compile": True}))
    for name, options in backends:
        device = args.device if name == "torch" else None
        chosen = get_backend(name, device=device, dtype=args.dtype, **options)
        label = name + (" (compile)" if options else "") + (f" [{chosen.device}]" if device else "")
        tol = 1e-4 if args.dtype == "float32" else 1e-9

        compiled = chosen.compile(ising_graph)
        params = compiled.init_params(chosen.key(0))
        J = float(chosen.to_numpy(params["J"]))
        h = float(chosen.to_numpy(params["h"]))
        state = {"s": chosen.asarray(spins)}
        if name == "torch":
            energy, energy_and_grad = ising_torch(J, h)
        elif name == "jax":
            energy, energy_and_grad = ising_jax(J, h)
        else:
            energy, energy_and_grad = ising_numpy(J, h)
        s = state["s"]
        yield ("ising energy", label, lambda c=compiled, st=state, p=params: c.energy(st, p),
               lambda f=energy, x=s: f(x), tol)
        if energy_and_grad is not None:
            yield ("ising energy+grad", label,
                   lambda c=compiled, st=state, p=params: _flat(c.energy_and_grad_state(st, p, ("s",))),
                   lambda f=energy_and_grad, x=s: f(x), tol)

        members = colouring(ising_graph).classes[0]["s"]
        table = ising_conditional(name, J, h, members, args.lattice, args.ising_batch)
        yield ("ising conditional", label,
               lambda c=compiled, st=state, p=params, m=members: c.local_conditional("s", m, st, p),
               lambda f=table, x=s: f(x), tol)

        compiled = chosen.compile(ring_graph)
        params = compiled.init_params(chosen.key(0))
        sigma = float(chosen.to_numpy(params["sigma"])) if "sigma" in params else ring_sigma
        state = {"x": chosen.asarray(points)}
        if name == "torch":
            energy, energy_and_grad = ring_torch(means, sigma, chosen.torch_dtype, chosen.torch_device)
        elif name == "jax":
            energy, energy_and_grad = ring_jax(means, sigma, chosen.jax_dtype)
        else:
            energy, energy_and_grad = ring_numpy(means, sigma)
        x = state["x"]
        yield ("ring energy", label, lambda c=compiled, st=state, p=params: c.energy(st, p),
               lambda f=energy, x=x: f(x), tol)
        if energy_and_grad is not None:
            yield ("ring energy+grad", label,
                   lambda c=compiled, st=state, p=params: _flat(c.energy_and_grad_state(st, p, ("x",))),
                   lambda f=energy_and_grad, x=x: f(x), tol)


def _flat(result):
    energy, grads = result
    return energy, next(iter(grads.values()))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--lattice", type=int, default=256)
    parser.add_argument("--ising-batch", type=int, default=64)
    parser.add_argument("--ring-batch", type=int, default=4096)
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--device", default=None, help="torch device, e.g. cuda")
    parser.add_argument("--compile", action="store_true", help="also time torch with compile=True")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads (1 avoids OpenMP spinning on a busy machine)")
    args = parser.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    header = (f"{'workload':<18} {'backend':<16} {'compiled ms':>11} {'hand ms':>9} {'ratio':>6}"
              f"   {'cpu ms: compiled':>16} {'hand':>8} {'ratio':>6}")
    print(header)
    print("-" * len(header))
    worst = 0.0
    for workload, label, ours, theirs, tol in workloads(args):
        check_same(_as_list(ours()), _as_list(theirs()), f"{workload} on {label}", tol)
        times = race(ours, theirs, args.repeats)
        median = {key: statistics.median(value) * 1e3 for key, value in times.items()}
        wall_ratio = median[("ours", "wall")] / median[("hand", "wall")]
        cpu_ratio = median[("ours", "cpu")] / max(median[("hand", "cpu")], 1e-9)
        worst = max(worst, min(wall_ratio, cpu_ratio))
        flag = "" if min(wall_ratio, cpu_ratio) <= TARGET else "  <-- over target"
        print(f"{workload:<18} {label:<16} {median[('ours', 'wall')]:>11.3f} {median[('hand', 'wall')]:>9.3f} "
              f"{wall_ratio:>6.2f}   {median[('ours', 'cpu')]:>16.3f} {median[('hand', 'cpu')]:>8.3f} "
              f"{cpu_ratio:>6.2f}{flag}")
    print(f"\nmedians over {args.repeats} alternating rounds; worst ratio {worst:.2f} (target <= {TARGET})")
    return 0


def _as_list(result):
    return list(result) if isinstance(result, (tuple, list)) else [result]


if __name__ == "__main__":
    raise SystemExit(main())
