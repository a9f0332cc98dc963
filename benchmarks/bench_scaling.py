"""Scaling benchmark: Gibbs sweeps with the chains sharded over 1, 2, 4 JAX devices, and
a data-parallel torch fit over 1 and 2 processes.

    .venv/bin/python benchmarks/bench_scaling.py                    # L = 64, 64 chains
    .venv/bin/python benchmarks/bench_scaling.py --side 128 --chains 128 --devices 1 2 4 8
    .venv/bin/python benchmarks/bench_scaling.py --smoke            # seconds
    .venv/bin/python benchmarks/bench_scaling.py --no-torch         # JAX part only

JAX: each device count runs in a fresh subprocess with
XLA_FLAGS=--xla_force_host_platform_device_count=N (on CPU; on a GPU machine pass
--platform gpu and the real devices are used). The figure is the steady-state time of
one chromatic Gibbs sweep of an L x L Ising lattice (examples/ising.ebm) over all
chains, after a warm-up that compiles; best of a few timed blocks of sweeps. A last
row splits the lattice's rows over the devices instead of the chains.

torch: seconds per epoch of PCD on examples/rbm.ebm with `fit_distributed` for 1 and 2
gloo processes, launch included (the first launch, which starts the process server and
imports torch, is not timed).

Simulated CPU devices are threads of one process sharing this machine's cores: with
C cores the best possible speedup is about min(N, C), and on a machine with as many
cores as devices the figure is an upper bound of what partitioning overhead costs, not
a GPU measurement. See docs/scaling.md.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))


def ising_source(side: int) -> str:
    return (REPO_ROOT / "examples" / "ising.ebm").read_text().replace("const L = 32", f"const L = {side}")


def time_sweeps(side: int, chains: int, sweeps: int, layout: str = "chains", repeats: int = 3) -> dict:
    """In this process: seconds per Gibbs sweep over every visible device, the state split
    by chains (layout "chains") or by lattice rows ("rows": domain decomposition left to
    XLA's SPMD partitioner)."""
    import jax
    import numpy as np
    from jax.sharding import NamedSharding, PartitionSpec

    import ebmlang as ebm
    from ebmlang.distributed import chain_mesh, replicate_model, shard_chains
    from ebmlang.distributed.jax_sharding import sharded_gibbs_sweep
    from ebmlang.inference.gibbs import gibbs_blocks

    model = ebm.loads(ising_source(side), backend="jax", name="ising.ebm")
    mesh = chain_mesh()
    local = replicate_model(model, mesh)
    bk = local.backend
    spins = np.random.default_rng(0).choice([-1.0, 1.0], size=(chains, side, side))
    if layout == "chains":
        state = shard_chains({"s": bk.asarray(spins)}, mesh)
    else:
        state = {"s": jax.device_put(bk.asarray(spins), NamedSharding(mesh, PartitionSpec(None, "chains")))}
    blocks = gibbs_blocks(model.graph)
    sweep = sharded_gibbs_sweep(local, blocks, state)
    keys = jax.random.split(jax.random.key(0), sweeps)
    started = time.perf_counter()
    state = sweep(keys[0], state)
    jax.block_until_ready(state)
    setup = time.perf_counter() - started
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        for key in keys:
            state = sweep(key, state)
        jax.block_until_ready(state)
        best = min(best, (time.perf_counter() - started) / sweeps)
    return {"devices": jax.device_count(), "platform": jax.devices()[0].platform, "side": side,
            "chains": chains, "layout": layout, "sweep_s": best, "setup_s": setup,
            "spin_updates_per_s": chains * side * side / best}


def run_jax(device_counts, side: int, chains: int, sweeps: int, platform: str) -> list[dict]:
    rows = []
    runs = [(count, "chains") for count in device_counts] + [(max(device_counts), "rows")]
    for count, layout in runs:
        env = dict(os.environ)
        if platform == "cpu":
            env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={count}"
            env["JAX_PLATFORMS"] = "cpu"
        else:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(str(i) for i in range(count))
        done = subprocess.run([sys.executable, __file__, "--child", str(side), str(chains), str(sweeps), layout],
                              env=env, capture_output=True, text=True, cwd=REPO_ROOT)
        if done.returncode != 0:
            raise SystemExit(f"{count} devices failed:\n{done.stderr[-3000:]}")
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return rows


def run_torch(world_sizes, epochs: int) -> list[dict]:
    import numpy as np

    import ebmlang as ebm
    from ebmlang.distributed import fit_distributed

    data = {"v": (np.random.default_rng(0).random((1024, 64)) < 0.3).astype(float)}
    options = dict(method="pcd", batch_size=256, lr=0.05, optimizer="sgd", seed=0)
    fit_distributed(ebm.load(REPO_ROOT / "examples" / "rbm.ebm"), data, world_size=max(world_sizes),
                    epochs=1, **options)  # starts the process server; not timed
    rows = []
    for world in world_sizes:
        model = ebm.load(REPO_ROOT / "examples" / "rbm.ebm")
        started = time.perf_counter()
        fit_distributed(model, data, world_size=world, epochs=epochs, **options)
        rows.append({"processes": world, "epoch_s": (time.perf_counter() - started) / epochs})
    return rows


def report(jax_rows: list[dict], torch_rows: list[dict]) -> str:
    lines = []
    if jax_rows:
        base = jax_rows[0]["sweep_s"]
        lines += [f"Gibbs sweep, Ising {jax_rows[0]['side']}x{jax_rows[0]['side']}, {jax_rows[0]['chains']} chains "
                  f"({jax_rows[0]['platform']}, {os.cpu_count()} cores)",
                  "| devices | split by | ms / sweep | spin updates / s | speedup | compile + first sweep (s) |",
                  "|---:|---|---:|---:|---:|---:|"]
        for row in jax_rows:
            lines.append(f"| {row['devices']} | {row['layout']} | {1e3 * row['sweep_s']:.2f} | "
                         f"{row['spin_updates_per_s']:.3g} | {base / row['sweep_s']:.2f}x | {row['setup_s']:.1f} |")
    if torch_rows:
        base = torch_rows[0]["epoch_s"]
        lines += ["", "PCD fit of examples/rbm.ebm, 1024 examples, batch 256 (gloo)",
                  "| processes | s / epoch | speedup |", "|---:|---:|---:|"]
        for row in torch_rows:
            lines.append(f"| {row['processes']} | {row['epoch_s']:.3f} | {base / row['epoch_s']:.2f}x |")
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        side, chains, sweeps = (int(a) for a in sys.argv[2:5])
        print(json.dumps(time_sweeps(side, chains, sweeps, sys.argv[5])))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--side", type=int, default=64)
    parser.add_argument("--chains", type=int, default=64)
    parser.add_argument("--sweeps", type=int, default=50)
    parser.add_argument("--devices", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--platform", choices=["cpu", "gpu"], default="cpu")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, to check the script runs")
    args = parser.parse_args()
    if args.smoke:
        args.side, args.chains, args.sweeps, args.epochs = 8, 8, 3, 1
    jax_rows = run_jax(args.devices, args.side, args.chains, args.sweeps, args.platform)
    torch_rows = [] if args.no_torch else run_torch([1, 2], args.epochs)
    print(report(jax_rows, torch_rows))


if __name__ == "__main__":
    main()
