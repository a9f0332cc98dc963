"""`ebm marginals`: exact (or loopy-BP) marginals, log Z, the mode and joint draws of a
model's latent discrete variables given observed values (Model.marginals)."""
from __future__ import annotations

import argparse
import time

import numpy as np

from ebmlang.cli.command_inputs import (
    _load,
    _model_arguments,
    _observe_argument,
    _observed,
    _seed_argument,
    whole_number,
)

HELP = "exact marginals, log Z, mode and joint draws of the discrete latent variables"
EXAMPLES = """examples:
  ebm marginals examples/hmm.ebm --observe x=series.npy
  ebm marginals examples/crf.ebm --observe x=tokens.npy --draws 100 --out tags.npz
  ebm marginals examples/denoise.ebm --observe y=noisy.npy --method bp   # loopy BP

The output file holds, per latent discrete group G: G (marginals [..., K]), G_values
(the values the last axis stands for), G_mode, and G_draws with --draws; and log_z."""


def marginals_arguments(p: argparse.ArgumentParser) -> None:
    _model_arguments(p)
    _observe_argument(p)
    _seed_argument(p)
    p.add_argument("--method", choices=("exact", "bp"), default=None,
                   help="exact (tree or junction tree) or bp (loopy sum-product); default: exact when it fits")
    p.add_argument("--draws", type=whole_number("--draws"), default=0, metavar="N",
                   help="independent exact joint draws per row")
    p.add_argument("--beta", type=_inverse_temperature, default=1.0, help="inverse temperature (default 1)")
    p.add_argument("--out", metavar="PATH", default=None, help="write the answers (.npz or .safetensors)")


def _inverse_temperature(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--beta is a number, got {text!r}") from None
    if not (np.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"--beta must be a positive number, got {text}")
    return value


def run_marginals(args: argparse.Namespace) -> int:
    from ebmlang.api.io import write_arrays

    model = _load(args)
    observed = _observed(args)
    start = time.perf_counter()
    answer = model.marginals(observed=observed or None, beta=args.beta, draws=args.draws, seed=args.seed,
                             method=args.method)
    elapsed = time.perf_counter() - start
    print(f"method: {answer.method}")
    log_z = np.asarray(answer.log_z, dtype=np.float64)
    print(f"log Z: {log_z:.6g}" if log_z.ndim == 0 else
          f"log Z per observed row: {np.array2string(log_z, threshold=12, formatter={'float_kind': '{:.6g}'.format})}")
    arrays = {"log_z": log_z}
    for group, probs in answer.probs.items():
        mean = answer.mean(group)
        print(f"{group}: marginals {list(probs.shape)}, mean value {float(np.mean(mean)):.4g} "
              f"(from {float(np.min(mean)):.4g} to {float(np.max(mean)):.4g})")
        arrays[group] = probs
        arrays[f"{group}_values"] = answer.values[group]
        arrays[f"{group}_mode"] = answer.mode[group]
        if group in answer.draws:
            arrays[f"{group}_draws"] = answer.draws[group]
    print(f"time: {elapsed:.2f} s")
    if args.out:
        print(f"wrote {write_arrays(args.out, arrays)}")
    return 0
