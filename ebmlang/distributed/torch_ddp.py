"""Data-parallel `fit` on torch.distributed (gloo on CPU, nccl on GPU).

Every rank holds the whole model and the whole data set. Each minibatch of the
ordinary `fit` schedule (same seed -> same example order on every rank) is cut into
`world_size` contiguous slices; rank r computes the gradient of its slice with its own
objective -- its own persistent chains or replay buffer, seeded per rank -- and one
all-reduce sums the slice gradients weighted by slice size. So every rank applies the
gradient of the full minibatch and, starting from rank 0's params (broadcast first),
takes bit-identical optimizer steps.

Where the objective is deterministic (method="exact", contrastive losses) the result
equals a one-process `fit` on the full batch up to float rounding; with MCMC negatives
the ranks' chains together form the negative phase (chains split over the ranks), a
different but equally valid stochastic estimate.

Two entry points:

* `fit_data_parallel(model, data, ...)` inside a process group that is already set up
  (`torchrun --nproc-per-node=4 train.py` calling `dist.init_process_group()`);
* `fit_distributed(model, data, world_size=2, ...)` launches `world_size` local
  processes with `torch.multiprocessing` and returns rank 0's `FitResult`.
"""
from __future__ import annotations

import json
import math
import os
import pickle
import socket
import tempfile
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from ebmlang.errors import EbmError

# Seconds a rank waits in a collective before giving up (a peer that died).
DEFAULT_TIMEOUT = 300.0

_FIT_OPTIONS = ("method", "epochs", "batch_size", "lr", "optimizer", "momentum", "lr_schedule", "k",
                "persistent", "chains", "loss", "margin", "gen_weight", "train", "weight_decay", "grad_clip",
                "energy_reg", "langevin", "seed", "ema")


def rank_seed(seed: int, rank: int) -> int:
    """The seed of rank `rank`'s chains and step keys: `seed` itself on rank 0 (so one
    process reproduces `fit`), an independent stream on the others."""
    if rank == 0:
        return int(seed)
    return int(np.random.SeedSequence([int(seed), int(rank), 0xD15]).generate_state(1)[0] % 2**31)


def slice_rows(size: int, rank: int, world_size: int) -> slice:
    """Rank `rank`'s contiguous share of `size` rows (shares differ by at most one)."""
    base, extra = divmod(size, world_size)
    start = rank * base + min(rank, extra)
    return slice(start, start + base + (rank < extra))


def fit_data_parallel(model, data, *, method: str = "auto", epochs: int = 10, batch_size: int = 64,
                      lr: float = 1e-2, optimizer: str = "adam", momentum: float = 0.0, lr_schedule=None,
                      k: int = 1, persistent: bool = True, chains: int | None = None, loss: str | None = None,
                      margin: float = 1.0, gen_weight: float = 1.0, train=None, weight_decay: float = 0.0,
                      grad_clip: float | None = None, energy_reg: float = 0.0, langevin=None, seed: int = 0,
                      ema: float | None = None, group=None):
    """`fit` (same options, same meaning) as one rank of a data-parallel run in the
    initialised torch.distributed process group `group` (default: the world).

    `batch_size` and `chains` are totals over all ranks. Returns a `FitResult` whose
    history holds the all-reduced (global) loss and statistics per epoch; the model's
    params are updated in place, identically on every rank.
    """
    from ebmlang.learning.chains import LangevinOptions
    from ebmlang.learning.dataset import epoch_order, minibatches, num_examples, prepare_data, step_seeds
    from ebmlang.learning.fit import FitResult, ParameterAverage, trainable_names
    from ebmlang.learning.objectives import make_objective
    from ebmlang.learning.optim import make_optimizer, scheduled_lr

    if method in ("dsm", "ssm", "nce"):
        # Their schedules (noise, NCE's log Z and its optimiser) are not kept in step across ranks yet.
        raise EbmError(f"method='{method}' does not run data-parallel yet",
                       hint="fit it in one process: model.fit(data, method=...)")
    if not dist.is_available() or not dist.is_initialized():
        raise EbmError("fit_data_parallel runs inside a torch.distributed process group",
                       hint="call torch.distributed.init_process_group(...) first (torchrun sets up the "
                            "environment), or use fit_distributed(...) to launch local processes")
    if model.backend_name != "torch":
        raise EbmError(f"data-parallel fit runs on torch.distributed; the model uses the {model.backend_name} "
                       "backend", hint="load the model with backend='torch'")
    rank, world = dist.get_rank(group), dist.get_world_size(group)
    graph = model.graph
    data = prepare_data(graph, data)
    n = num_examples(data)
    batch_size = min(int(batch_size), n)
    total_chains = int(chains or batch_size)
    if batch_size < world or total_chains < world:
        raise EbmError(f"a minibatch of {batch_size} examples and {total_chains} chains cannot be shared by "
                       f"{world} processes", hint=f"use batch_size and chains of at least {world}")
    names = trainable_names(model.params, train)
    local_seed = rank_seed(seed, rank)
    local_chains = len(range(total_chains)[slice_rows(total_chains, rank, world)])
    langevin = LangevinOptions.from_user(langevin)
    objective = make_objective(model, data, method=method, loss=loss, margin=margin, k=k, persistent=persistent,
                               chains=local_chains, langevin=langevin, energy_reg=energy_reg,
                               gen_weight=gen_weight, seed=local_seed)
    _broadcast_params(model, group)
    optim = make_optimizer(model.backend, optimizer, {name: model.params[name] for name in names}, lr, momentum)
    average = ParameterAverage(ema) if ema is not None else None
    bk = model.backend
    steps_per_epoch = math.ceil(n / batch_size)
    history = []
    for epoch in range(epochs):
        sums: dict[str, float] = {}
        seeds = step_seeds(local_seed, epoch, steps_per_epoch)
        for step, batch in enumerate(minibatches(data, epoch_order(seed, epoch, n), batch_size)):
            rate = scheduled_lr(lr, lr_schedule, epoch, epochs, step / steps_per_epoch)
            key = bk.key(int(seeds[step]))
            stats = _update(model, objective, optim, names, key, batch, rate, weight_decay, grad_clip, group,
                            (epoch, step))
            if average is not None:
                average.update(model, names)
            for name, value in stats.items():
                sums[name] = sums.get(name, 0.0) + value
        history.append({"epoch": epoch + 1, **{k_: v / steps_per_epoch for k_, v in sums.items()},
                        "lr": scheduled_lr(lr, lr_schedule, epoch, epochs)})
    if average is not None:
        average.apply(model, optim)
    description = f"{objective.name}; data-parallel over {world} processes ({dist.get_backend(group)})"
    return FitResult(model.param_values(), history, objective.kind, description)


def _update(model, objective, optim, names, key, batch, rate, weight_decay, grad_clip, group, when) -> dict:
    """One optimizer step on the gradient of the whole minibatch `batch`, of which this rank
    computes its slice; returns the minibatch's statistics (loss, grad_norm, ...)."""
    from ebmlang.learning.fit import clamp_to_bounds, divergence_error
    from ebmlang.learning.optim import clip_by_global_norm
    from ebmlang.learning.weighted import weighted_gradient

    rank, world = dist.get_rank(group), dist.get_world_size(group)
    size = len(next(iter(batch.values())))
    rows = slice_rows(size, rank, world)
    share = (rows.stop - rows.start) / size
    if share == 0:
        # A last minibatch smaller than the world: this rank still takes part in the
        # all-reduce, with one row weighted zero.
        rows = slice(0, 1)
    weighted = objective.step(key, {g: v[rows] for g, v in batch.items()}, model.params)
    grads = weighted_gradient(model, weighted)
    stats = {"loss": float(weighted.loss), **weighted.stats}
    grads, stats = _all_reduce_mean({name: grads[name] for name in names}, stats, share, group)
    if weight_decay:
        grads = {name: g + weight_decay * model.params[name] for name, g in grads.items()}
    grads, stats["grad_norm"] = clip_by_global_norm(model.backend, grads, grad_clip)
    if not (math.isfinite(stats["grad_norm"]) and math.isfinite(stats["loss"])):
        raise divergence_error(model, weighted, loss=stats["loss"], epoch=when[0], step=when[1])
    optim.step(grads, rate)
    clamp_to_bounds(model, optim, names)
    model.params.update(optim.params())
    return stats


def _all_reduce_mean(grads: dict, stats: dict, weight: float, group) -> tuple[dict, dict]:
    """The sums over the ranks of `weight` x (gradients, statistics) -- with weight = the
    rank's share of the minibatch, the full minibatch's mean -- in one all-reduce of one
    flat float64 vector (the statistics ride along with the gradients)."""
    device = next(iter(grads.values())).device if grads else torch.device("cpu")
    stat_names = sorted(stats)
    pieces = [g.detach().reshape(-1).to(torch.float64) * weight for g in grads.values()]
    pieces.append(torch.tensor([stats[s] * weight for s in stat_names], dtype=torch.float64, device=device))
    flat = torch.cat(pieces)
    dist.all_reduce(flat, op=dist.ReduceOp.SUM, group=group)
    out, offset = {}, 0
    for name, grad in grads.items():
        out[name] = flat[offset:offset + grad.numel()].reshape(grad.shape).to(grad.dtype)
        offset += grad.numel()
    return out, {name: float(v) for name, v in zip(stat_names, flat[offset:].tolist())}


def _broadcast_params(model, group) -> None:
    """Every rank starts from rank 0's params (as torch DDP does)."""
    for name in sorted(model.params):
        value = model.params[name].detach().clone().contiguous()
        dist.broadcast(value, src=dist.get_global_rank(group, 0) if group is not None else 0, group=group)
        model.params[name] = value


# --------------------------------------------------------------------------
# Launching local processes


def fit_distributed(model, data, *, world_size: int = 2, backend: str | None = None,
                    timeout: float = DEFAULT_TIMEOUT, start_method: str | None = None, **options):
    """Data-parallel `fit` over `world_size` local processes (torch.multiprocessing,
    rendezvous on 127.0.0.1). `backend`: "gloo" (default on CPU) or "nccl" (default on
    CUDA; rank r uses GPU r). `options` are `fit`'s (see `fit_data_parallel`).

    start_method: "forkserver" (the default where available: one clean server process
    imports torch and ebmlang once, and every later launch forks from it in a moment) or
    "spawn" (fresh interpreters, each importing torch: seconds per launch). Either way a
    script calling this needs the `if __name__ == "__main__":` guard.

    Updates `model.params` in place and returns rank 0's `FitResult`; raises an
    `EbmError` if a rank failed or the ranks' final params disagree.
    """
    import torch.multiprocessing as mp

    from ebmlang.learning.dataset import prepare_data
    from ebmlang.learning.fit import FitResult

    unknown = sorted(set(options) - set(_FIT_OPTIONS))
    if unknown:
        raise EbmError(f"fit_distributed does not take {', '.join(unknown)}",
                       expected="options of fit: " + ", ".join(_FIT_OPTIONS),
                       hint="checkpoints, evaluation and callbacks are not supported in a data-parallel run")
    if isinstance(world_size, bool) or not isinstance(world_size, int) or world_size < 1:
        raise EbmError(f"world_size must be a positive integer, got {world_size!r}")
    if model.backend_name != "torch":
        raise EbmError(f"data-parallel fit runs on torch.distributed; the model uses the {model.backend_name} "
                       "backend", hint="load the model with backend='torch'")
    on_gpu = str(model.backend.device).startswith("cuda")
    backend = backend or ("nccl" if on_gpu else "gloo")
    if backend not in ("gloo", "nccl") or not dist.is_backend_available(backend):
        raise EbmError(f"torch.distributed backend '{backend}' is not available here",
                       expected="gloo (CPU) or nccl (CUDA GPUs)")
    if on_gpu and world_size > torch.cuda.device_count():
        raise EbmError(f"{world_size} processes need {world_size} GPUs; {torch.cuda.device_count()} are visible")
    data = prepare_data(model.graph, data)  # bad data fails here, once, not in every rank
    try:
        pickle.dumps(model.externs)
    except Exception:  # noqa: BLE001 -- whatever pickle refuses, the ranks cannot receive
        raise EbmError("the model's externs cannot be sent to other processes",
                       hint="register externs defined with `def` at module level (not lambdas or closures)") from None
    start_method = start_method or ("forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn")
    if start_method not in ("forkserver", "spawn"):
        raise EbmError(f"unknown start_method '{start_method}'", expected="'forkserver' or 'spawn'",
                       hint="'fork' is not offered: forking a process that runs JAX or CUDA threads can deadlock")
    job = _Job(model.graph, model.param_values(), dict(model.externs), model.backend.dtype, on_gpu, data,
               options, backend, world_size, float(timeout))
    outcome, finals = _launch(job, start_method)
    for r, final in enumerate(finals[1:], start=1):
        if any(not np.array_equal(final[k], finals[0][k]) for k in finals[0]):
            raise EbmError(f"after training, rank {r}'s params differ from rank 0's",
                           hint="the ranks' gradients were not identical after the all-reduce; please report this")
    model.params.update({k: model.backend.asarray(v) for k, v in finals[0].items()})
    return FitResult(finals[0], outcome["history"], outcome["method"], outcome["description"])


@dataclass
class _Job:
    """What every rank needs (pickled once per process); results come back as files in
    `scratch` (params-<rank>.npz, result.json, error-<rank>.json), never through a pipe
    that a large result could fill while the parent waits in join()."""

    graph: object
    params: dict
    externs: dict
    dtype: str
    on_gpu: bool
    data: dict
    options: dict
    backend: str
    world_size: int
    timeout: float
    scratch: str = ""
    port: int = 0


def _launch(job: _Job, start_method: str) -> tuple[dict, list[dict]]:
    """Run every rank to the end; rank 0's result record and every rank's final params."""
    import torch.multiprocessing as mp

    if start_method == "forkserver":
        # Takes effect when the server starts (the first launch); later launches reuse it.
        mp.get_context("forkserver").set_forkserver_preload(["torch", "torch.distributed", "torch._dynamo",
                                                             "ebmlang.api.model", "ebmlang.learning.fit"])
    with tempfile.TemporaryDirectory(prefix="ebm-ddp-") as scratch:
        job.scratch = scratch
        job.port = _free_port()
        try:
            mp.start_processes(_worker, args=(job,), nprocs=job.world_size, join=True, start_method=start_method)
        except Exception as failure:  # a rank raised: report its error, not the launcher's wrapper
            raise _rank_error(Path(scratch), failure) from None
        outcome = json.loads((Path(scratch) / "result.json").read_text())
        finals = [dict(np.load(Path(scratch) / f"params-{r}.npz", allow_pickle=False))
                  for r in range(job.world_size)]
    return outcome, finals


def _worker(rank: int, job: _Job) -> None:
    from ebmlang.api.model import Model

    scratch = Path(job.scratch)
    try:
        dist.init_process_group(job.backend, init_method=f"tcp://127.0.0.1:{job.port}", rank=rank,
                                world_size=job.world_size, timeout=timedelta(seconds=job.timeout))
        try:
            if not job.on_gpu:
                # One share of the cores per rank: intra-op threads of several ranks
                # competing for the same cores are slower than one process alone.
                torch.set_num_threads(max(1, (os.cpu_count() or 1) // job.world_size))
            device = f"cuda:{rank}" if job.on_gpu else "cpu"
            model = Model(job.graph, backend="torch", device=device, dtype=job.dtype, params=job.params,
                          externs=job.externs)
            result = fit_data_parallel(model, job.data, **job.options)
            np.savez(scratch / f"params-{rank}.npz", **result.params)
            if rank == 0:
                (scratch / "result.json").write_text(json.dumps(
                    {"history": result.history, "method": result.method, "description": result.description}))
        finally:
            dist.destroy_process_group()
    except EbmError as error:
        (scratch / f"error-{rank}.json").write_text(json.dumps(
            {"message": error.message, "span": asdict(error.span) if error.span else None,
             "source": error.source, "expected": error.expected, "hint": error.hint}))
        raise


def _rank_error(scratch: Path, failure: Exception) -> EbmError:
    from ebmlang.language.ast import Span

    reports = [(path.stem.split("-")[1], json.loads(path.read_text())) for path in sorted(scratch.glob("error-*.json"))]
    # Every rank raises when one diverges; the rank that can name the term says more.
    reports.sort(key=lambda report: report[1]["span"] is None)
    for rank, found in reports:
        span = Span(**found["span"]) if found["span"] else None
        return EbmError(f"rank {rank}: {found['message']}", span, source=found["source"],
                        expected=found["expected"], hint=found["hint"])
    return EbmError(f"a data-parallel training process failed: {failure}",
                    hint="see the traceback above from the failing rank")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
