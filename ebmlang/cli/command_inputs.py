"""What the `ebm` model subcommands read from their arguments.

The flags several subcommands share (`--model`, `--backend`, `--set`, `--observe`,
`--seed`, `--quiet`), the model or factor graph that FILE names, observed arrays and
`--data` training data, and the checks that reject bad values before a deep error does.
The handlers in commands.py use these; each handler's own flags stay next to it.
"""
from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ebmlang.errors import EbmError

BACKENDS = ("torch", "jax", "numpy")


# --------------------------------------------------------------------------
# Shared arguments


def _model_arguments(p: argparse.ArgumentParser, *, backend: bool = True) -> None:
    p.add_argument("file", metavar="FILE", help="a .ebm model file, or a checkpoint saved by `ebm fit`")
    p.add_argument("--model", metavar="NAME", default=None,
                   help="which model of the file (default: the file's default model)")
    _budget_argument(p)
    if backend:
        p.add_argument("--backend", choices=BACKENDS, default="torch", help="array backend (default: torch)")
        p.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                       help="float precision (default: float32)")
        p.add_argument("--compile", action="store_true",
                       help="torch only: run energies and sampler steps under torch.compile "
                            "(seconds more to start, faster steps on long runs)")
        p.add_argument("--set", dest="set_params", action="append", default=[], metavar="PARAM=VALUE",
                       help="set a parameter to a number (broadcast to its shape), e.g. --set J=0.44; "
                            "repeatable")


def _budget_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--budget", metavar="SIZE", default=None,
                   help="the most memory any one structure of the model may take, e.g. 8GiB (default 2GiB)")


def _observe_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--observe", action="append", default=[], metavar="NAME=FILE",
                   help="clamp variable NAME to the array in FILE (.npy, .npz[:key], .safetensors[:key]); "
                        "repeatable")


def whole_number(what: str):
    """An argparse `type` for a whole number >= 0; its errors name `what` (usage errors, exit 2)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} is a whole number, got {text!r}") from None
        if value < 0:
            raise argparse.ArgumentTypeError(f"{what} is a whole number >= 0, got {value}")
        return value
    return parse


_seed = whole_number("a seed")


def _seed_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed", type=_seed, default=0, help="random seed, a whole number >= 0 (default: 0)")


def _quiet_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


# --------------------------------------------------------------------------
# The model, graph and data the arguments name


def _load(args: argparse.Namespace):
    """The model named on the command line, with `--set` parameter values applied."""
    from ebmlang.api.model import load

    path = Path(args.file)
    if path.suffix not in (".ebm", ".safetensors", ".ckpt"):
        raise EbmError(f"cannot load '{args.file}' as a model",
                       expected="a .ebm model file or a .safetensors checkpoint written by `ebm fit`")
    if path.suffix != ".ebm" and args.model is not None:
        raise EbmError("--model selects a model of a .ebm file; a checkpoint holds exactly one model")
    backend, dtype = getattr(args, "backend", "numpy"), getattr(args, "dtype", "float32")
    if getattr(args, "compile", False):
        if backend != "torch":
            raise EbmError(f"--compile uses torch.compile, but the backend is {backend}",
                           hint="use --backend torch, or drop --compile (the jax backend always jits)")
        from ebmlang.backends import get_backend

        model = load(path, backend=get_backend("torch", dtype=dtype, compile=True), model=args.model,
                     budget=args.budget)
    else:
        model = load(path, backend=backend, model=args.model, dtype=dtype, budget=args.budget)
    values = {}
    for item in getattr(args, "set_params", ()) or ():
        name, sep, text = item.partition("=")
        try:
            values[name.strip()] = float(text)
        except ValueError:
            raise EbmError(f"cannot read --set '{item}'", expected="--set PARAM=NUMBER, e.g. --set J=0.44") from None
        if not sep or not name.strip():
            raise EbmError(f"cannot read --set '{item}'", expected="--set PARAM=NUMBER, e.g. --set J=0.44")
    if values:
        model.set_params(**values)
    return model


def _require_gradients(model, args: argparse.Namespace, groups, what: str) -> None:
    """The numpy backend has no gradients; say which flag fixes it before a deep error does."""
    if getattr(args, "backend", None) == "numpy" and groups:
        raise EbmError(f"{what} needs gradients of the energy, which the numpy backend does not have",
                       hint="use --backend torch (the default) or --backend jax")


def _free_continuous(model, observed) -> list[str]:
    return [name for name, var in model.variables.items()
            if not var.observed and name not in observed and not var.domain.is_discrete]


def _observed(args: argparse.Namespace) -> dict[str, np.ndarray]:
    from ebmlang.api.io import read_assignments

    return read_assignments(args.observe, "--observe")


def _positive(name: str, value: int | float) -> None:
    if value <= 0:
        raise EbmError(f"{name} must be positive (got {value})")


def _load_graph(args: argparse.Namespace):
    """The factor graph of FILE through the front end alone (parse, check, lower): no backend."""
    path = Path(args.file)
    if path.suffix != ".ebm":
        return _load(args).graph
    from ebmlang.graph.lower import lower_program
    from ebmlang.language.checker import load_program

    try:
        return lower_program(load_program(path), args.model, budget=args.budget)
    except EbmError as err:
        if err.source is None and err.span is not None and err.span.file == str(path):
            err.with_source(path.read_text(encoding="utf-8"))
        raise


def read_data(items: Sequence[str]) -> dict[str, np.ndarray]:
    """Training data from `--data` items: whole files (`data.npz`) and `NAME=FILE` arrays."""
    from ebmlang.api.io import parse_assignment, read_array, read_arrays

    data: dict[str, np.ndarray] = {}
    for item in items:
        if "=" in item:
            name, spec = parse_assignment(item, "--data")
            found = {name: read_array(spec, name)}
        else:
            found = read_arrays(item)
        for name, value in found.items():
            if name in data:
                raise EbmError(f"training data for '{name}' is given twice with --data")
            data[name] = value
    return data
