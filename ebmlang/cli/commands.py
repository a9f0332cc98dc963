"""The `ebm` subcommands that run models: graph, plan, sample, argmin, fit, energy.

`register(subparsers)` adds them to the `ebm` parser (ebmlang/cli/entry.py owns the parser
and `ebm check`); each command is one handler `run_<command>(args) -> exit status`,
set as the `run` default of its subparser. Handlers raise `EbmError` for bad input;
the caller prints it (located, with the source line) and exits with status 1.

Flags mean the same thing everywhere: `--backend`, `--model`, `--seed`, `--observe
NAME=FILE` (repeatable), `--set PARAM=VALUE` (repeatable), `--method`, `--out`, and
for sampling `--chains`, `--steps`, `--temperature`. Data files are .npy, .npz or
.safetensors (ebmlang/api/io.py).

The help texts are in command_help.py; the shared flags, loading of FILE and reading of
data files in command_inputs.py.

    ebm sample examples/ising.ebm --chains 8 --steps 500 --out draws.npz
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ebmlang.cli.command_help import COMMAND_HELP, EXAMPLES
from ebmlang.cli.command_history import training_curve, write_history
from ebmlang.cli.command_inputs import (  # noqa: F401 -- read_data is re-exported
    _free_continuous,
    _load,
    _load_graph,
    _model_arguments,
    _observe_argument,
    _observed,
    _positive,
    _quiet_argument,
    _require_gradients,
    _seed_argument,
    read_data,
)
from ebmlang.cli.command_summary import print_problems, print_sample_summary
from ebmlang.cli.command_timing import compiles, timed_sample
from ebmlang.cli.marginals_command import marginals_arguments, run_marginals
from ebmlang.errors import EbmError

# Arrays with more entries than this are summarised (mean, sd) rather than printed...
PRINT_LIMIT = 16
# ...except integer grids (discrete labels) up to this many entries per axis, printed
# whole: a 9 x 9 sudoku is read as its grid, not as "mean 5".
GRID_LIMIT = 16
# `ebm fit` prints the metrics of at most this many (final) epochs.
HISTORY_LINES = 10


# --------------------------------------------------------------------------
# Registration


def register(subparsers) -> None:
    """Add the graph, plan, sample, argmin, marginals, fit and energy subcommands to `subparsers`
    (the object `ArgumentParser.add_subparsers()` returned); each sets `run`."""
    for name, configure, handler in (("graph", _graph_arguments, run_graph),
                                     ("plan", _plan_arguments, run_plan),
                                     ("sample", _sample_arguments, run_sample),
                                     ("argmin", _argmin_arguments, run_argmin),
                                     ("marginals", marginals_arguments, run_marginals),
                                     ("fit", _fit_arguments, run_fit),
                                     ("energy", _energy_arguments, run_energy)):
        sub = subparsers.add_parser(name, help=COMMAND_HELP[name], description=COMMAND_HELP[name],
                                    epilog=EXAMPLES[name],
                                    formatter_class=argparse.RawDescriptionHelpFormatter)
        configure(sub)
        sub.set_defaults(run=handler)


def build_parser() -> argparse.ArgumentParser:
    """A parser with just these subcommands (ebmlang/cli/entry.py adds them to `ebm`)."""
    parser = argparse.ArgumentParser(prog="ebm", description="ebmlang: declarative energy-based models")
    register(parser.add_subparsers(dest="command", metavar="COMMAND", required=True))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one of these subcommands."""
    return run_command(build_parser().parse_args(argv))


def run_command(args: argparse.Namespace) -> int:
    """Run the parsed command's handler: an EbmError is printed (located, with the source
    line) and gives exit status 1, an interrupt status 130 -- never a traceback."""
    # Library warnings reach a command-line user as one plain line, not as Python source.
    plain, warnings.formatwarning = warnings.formatwarning, lambda message, *rest: f"warning: {message}\n"
    try:
        check_output_paths(args)
        return int(args.run(args) or 0)
    except EbmError as err:
        print(err, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`ebm ... | head`): stop quietly, as cat does. Pointing stdout
        # at devnull keeps the interpreter's final flush from raising again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    finally:
        warnings.formatwarning = plain


# --------------------------------------------------------------------------
# Shared output

DATA = (".npy", ".npz", ".safetensors")
FIGURES = (".png", ".svg", ".pdf")
# The files each command may write, by flag: checked before any work, so a typo in an
# output name costs nothing.
OUTPUTS = {
    "sample": {"out": DATA, "plot": FIGURES},
    "argmin": {"out": DATA},
    "marginals": {"out": (".npz", ".safetensors")},
    "energy": {"out": DATA},
    "fit": {"out": (".safetensors",), "history": (".npz",) + FIGURES},
}


def check_output_paths(args: argparse.Namespace) -> None:
    """Refuse, before the command runs, an output file whose suffix it cannot write or
    whose folder is a file."""
    for flag in ("out", "plot", "history", "checkpoint_dir"):
        if getattr(args, flag, None) == "":
            raise EbmError(f"--{flag.replace('_', '-')} needs a file name, got an empty one")
    for flag, suffixes in OUTPUTS.get(getattr(args, "command", ""), {}).items():
        value = getattr(args, flag, None)
        if not value:
            continue
        path = Path(value)
        if path.suffix.lower() not in suffixes:
            raise EbmError(f"--{flag} {value}: cannot write a '{path.suffix or path.name}' file",
                           expected="a " + (", ".join(suffixes[:-1]) + " or " if len(suffixes) > 1 else "")
                           + suffixes[-1] + " file", hint=f"use --{flag} {path.with_suffix(suffixes[0])}")
        parent = next((p for p in path.parents if p.exists()), None)
        if parent is not None and not parent.is_dir():
            raise EbmError(f"--{flag} {value}: {parent} is a file, not a folder")
        if path.is_dir():
            raise EbmError(f"--{flag} {value} is a folder", expected="a file name")


def _show_progress(args: argparse.Namespace) -> bool:
    """Progress bars only for a person watching a terminal: not with --quiet, and not
    when the output goes to a file or a pipe (where a bar would be noise)."""
    return not getattr(args, "quiet", False) and sys.stdout.isatty()


def _describe_array(name: str, value, labels: bool = False) -> str:
    """One array for a person: printed whole when small (or, for the `labels` of a discrete
    variable, a small integer grid), else shape, mean, sd and range."""
    arr = np.asarray(value)
    grid = labels and _small_integer_grid(arr)
    if grid:
        arr = arr.astype(np.int64)
    if arr.size <= PRINT_LIMIT or grid:
        body = np.array2string(arr, precision=4, separator=", ", max_line_width=90, suppress_small=True)
        return f"{name} = {body}" if "\n" not in body else f"{name} =\n  " + body.replace("\n", "\n  ")
    return (f"{name}: shape {list(arr.shape)}, mean {float(np.mean(arr)):.4g}, sd {float(np.std(arr)):.4g}, "
            f"min {float(np.min(arr)):.4g}, max {float(np.max(arr)):.4g}")


def _small_integer_grid(arr: np.ndarray) -> bool:
    """A vector or matrix of whole numbers, at most GRID_LIMIT entries along each axis."""
    return (arr.ndim in (1, 2) and 0 < arr.size and max(arr.shape) <= GRID_LIMIT
            and bool(np.all(np.isfinite(arr))) and bool(np.all(arr == np.round(arr))))


# --------------------------------------------------------------------------
# ebm graph


def _graph_arguments(p: argparse.ArgumentParser) -> None:
    _model_arguments(p, backend=False)
    p.add_argument("--format", choices=("summary", "dot"), default="summary",
                   help="what to print when there is no --out (default: summary)")
    p.add_argument("--ground", action="store_true",
                   help="draw every ground variable and factor (small models; drawings only)")
    p.add_argument("--out", metavar="PATH", default=None,
                   help="write the graph: a drawing (.png/.svg/.pdf), Graphviz DOT (.dot/.gv), "
                        "node-link JSON (.json) or GraphML (.graphml)")


def run_graph(args: argparse.Namespace) -> int:
    """Print or write the factor graph of a model (no backend is compiled)."""
    from ebmlang.graph import export as graph_export

    graph = _load_graph(args)
    if args.out is None:
        if args.ground:
            raise EbmError("--ground applies to drawings", hint="add --out graph.png")
        print(graph_export.to_dot(graph) if args.format == "dot" else graph_export.summary(graph))
        return 0
    out = Path(args.out)
    if out.suffix.lower() in (".png", ".svg", ".pdf"):
        # Drawn with matplotlib + networkx, so it works without Graphviz installed.
        from ebmlang.api.plot import plot_factor_graph

        plot_factor_graph(graph, ground=args.ground, path=out)
        written = [out]
    elif args.ground:
        raise EbmError("--ground applies to drawings", hint="write to a .png, .svg or .pdf file")
    else:
        written = graph_export.write_graph(graph, out)
    for path in written:
        print(f"wrote {path}")
    return 0


# --------------------------------------------------------------------------
# ebm plan


def _plan_arguments(p: argparse.ArgumentParser) -> None:
    _model_arguments(p, backend=False)
    p.add_argument("--query", choices=("sample", "argmin", "marginals"), default="sample",
                   help="which query to plan (default: sample)")
    p.add_argument("--observe", action="append", default=[], metavar="NAME[=FILE]",
                   help="treat variable NAME as observed (a file is accepted but not needed); repeatable")
    p.add_argument("--method", default=None, help="ask for a method by name (e.g. gibbs, hmc, graphcut)")


def run_plan(args: argparse.Namespace) -> int:
    """Print the inference plan: method per block of latent variables, with the reason."""
    from ebmlang.inference.plan import plan_query

    graph = _load_graph(args)
    names = []
    for item in args.observe:
        name = item.partition("=")[0].strip()
        if name not in graph.variables:
            from ebmlang.errors import did_you_mean

            raise EbmError(f"cannot observe '{name}': it is not a variable of model {graph.name}",
                           hint=did_you_mean(name, graph.variables) or f"variables: {', '.join(graph.variables)}")
        names.append(name)
    print(plan_query(graph, args.query, tuple(names), args.method, budget=args.budget))
    return 0


# --------------------------------------------------------------------------
# ebm sample


def _sample_arguments(p: argparse.ArgumentParser) -> None:
    _model_arguments(p)
    _observe_argument(p)
    _seed_argument(p)
    p.add_argument("--chains", type=int, default=4, help="independent chains (default: 4)")
    p.add_argument("--steps", type=int, default=1000, help="steps (sweeps) per chain (default: 1000)")
    p.add_argument("--burn-in", type=int, default=None, help="steps dropped at the start (default: steps/4)")
    p.add_argument("--thin", type=int, default=1, help="keep every THIN-th step (default: 1)")
    p.add_argument("--temperature", type=float, default=1.0, help="sample exp(-E / T) (default: 1)")
    p.add_argument("--tempering", type=_tempering, default=None, metavar="R|T1,T2,...",
                   help="replica exchange: R replicas per chain on a ladder from 1 to 10 adapted in burn-in, "
                        "or the ladder itself (comma-separated, starting at 1); draws are kept at T = 1")
    p.add_argument("--method", default=None,
                   help="override the automatic method (e.g. gibbs, swendsen_wang, wolff, mala, hmc, nuts, rwmh)")
    p.add_argument("--step-size", type=float, default=None, help="initial step size of continuous kernels")
    p.add_argument("--init", metavar="FILE", default=None,
                   help="initial states: a .npz/.safetensors file with one array per latent variable")
    p.add_argument("--out", metavar="PATH", default=None,
                   help="write draws (.npz or .safetensors): one array per latent variable, plus `energy`")
    p.add_argument("--plot", metavar="PNG", default=None, help="save a trace plot of energy per chain")
    _quiet_argument(p)


def _tempering(text: str):
    """--tempering: a number of replicas (8) or a ladder (1,1.5,2.25)."""
    try:
        return int(text) if "," not in text and "." not in text else [float(t) for t in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of replicas or comma-separated temperatures, got "
                                         f"{text!r}") from None


def run_sample(args: argparse.Namespace) -> int:
    """Sample a model and print a summary; optionally write the draws and a trace plot."""
    from ebmlang.api.io import read_arrays, write_arrays

    for flag in ("chains", "steps", "temperature", "thin"):
        _positive("--" + flag, getattr(args, flag))
    model = _load(args)
    observed = _observed(args)
    free = _free_continuous(model, observed)
    _require_gradients(model, args, free, f"sampling the continuous variables {', '.join(free)}")
    init = read_arrays(args.init) if args.init else None
    if compiles(model) and _show_progress(args):
        print("compiling the sampler's kernels (one step)...", file=sys.stderr, flush=True)
    # A compiling backend's first step is timed apart: the rate is the run's alone.
    samples, timing = timed_sample(model, chains=args.chains, steps=args.steps, observed=observed or None,
                                   method=args.method, temperature=args.temperature, burn_in=args.burn_in,
                                   thin=args.thin, seed=args.seed, init=init, progress=_show_progress(args),
                                   step_size=args.step_size, tempering=args.tempering)
    problems = print_sample_summary(samples)
    for name, draws in samples.draws.items():
        if model.graph.variables[name].domain.is_discrete and _small_integer_grid(np.asarray(draws[0, -1])):
            shown = _describe_array(f"{name} (chain 0, last draw)", draws[0, -1], labels=True)
            print("  " + shown.replace("\n", "\n  "))
    print("  " + timing.line(args.chains * args.steps))
    if args.out:
        # `energy` is a keyword of the language, so no variable can take this name.
        print(f"wrote {write_arrays(args.out, {**samples.draws, 'energy': samples.energy})}")
    if args.plot:
        from ebmlang.api.plot import plot_trace

        plot_trace(samples, path=args.plot, title=f"{model.name}: energy per chain")
        print(f"wrote {args.plot}")
    print_problems(problems)
    return 0


# --------------------------------------------------------------------------
# ebm argmin


def _argmin_arguments(p: argparse.ArgumentParser) -> None:
    _model_arguments(p)
    _observe_argument(p)
    _seed_argument(p)
    p.add_argument("--method", default=None,
                   help="override the automatic method (e.g. enumeration, graphcut, ilp, bp, icm, annealing, "
                        "lbfgs)")
    p.add_argument("--time-limit", type=float, default=None, metavar="SECONDS",
                   help="time limit of the exact integer program (ilp); default 60")
    p.add_argument("--out", metavar="PATH", default=None,
                   help="write the minimising state (.npz or .safetensors; .npy for a one-variable model); "
                        "with a batch of observations, one row per observation")


def run_argmin(args: argparse.Namespace) -> int:
    """Minimise the energy and print the state, its energy and the method used."""
    from ebmlang.api.io import write_arrays

    model = _load(args)
    observed = _observed(args)
    free = _free_continuous(model, observed)
    _require_gradients(model, args, free, f"minimising over the continuous variables {', '.join(free)}")
    options = {} if args.time_limit is None else {"time_limit": args.time_limit}
    if args.time_limit is not None and not (args.time_limit > 0 and np.isfinite(args.time_limit)):
        raise EbmError(f"--time-limit must be a positive number of seconds, got {args.time_limit}")
    start = time.perf_counter()
    result = model.argmin(observed=observed or None, method=args.method, seed=args.seed, **options)
    elapsed = time.perf_counter() - start
    if np.ndim(result.energy):
        energies = np.array2string(np.asarray(result.energy, dtype=np.float64), threshold=12,
                                   formatter={"float_kind": lambda v: f"{v:.6g}"})
        print(f"energy per observed row: {energies}")
    else:
        print(f"energy: {result.energy:.6g}")
    print(f"method: {result.method} -- {result.reason}")
    for name, value in result.state.items():
        print(_describe_array(name, value, labels=model.graph.variables[name].domain.is_discrete))
    print(f"time: {elapsed:.2f} s")
    if args.out:
        print(f"wrote {write_arrays(args.out, result.state)}")
    return 0


# --------------------------------------------------------------------------
# ebm fit


def _fit_arguments(p: argparse.ArgumentParser) -> None:
    _model_arguments(p)
    _seed_argument(p)
    p.add_argument("--data", action="append", default=[], metavar="FILE|NAME=FILE", required=True,
                   help="training data: every array of FILE (keys are variable names), or one array "
                        "for variable NAME; repeatable")
    p.add_argument("--method", default=None,
                   help="learning method / loss (e.g. cd, pcd, exact, nll, hinge); default: automatic")
    p.add_argument("--epochs", type=int, default=None, help="passes over the data")
    p.add_argument("--lr", type=float, default=None, help="learning rate")
    p.add_argument("--batch-size", type=int, default=None, help="examples per step")
    p.add_argument("--noise", type=float, nargs="+", default=None, metavar="SD",
                   help="dsm: the noise sd, or first and last annealed (default 0.5 -> 0.01 data sd)")
    p.add_argument("--projections", type=int, default=None, help="ssm: random directions per example")
    p.add_argument("--noise-ratio", type=float, default=None, help="nce: noise samples per data example")
    p.add_argument("--recipe", choices=("igebm", "jem"), default=None,
                   help="short-run Langevin training as published (docs/learning.md: Recipes)")
    p.add_argument("--data-noise", type=float, default=None, metavar="SD",
                   help="Gaussian noise added to continuous training inputs (jem's recipe: 0.03)")
    p.add_argument("--eval-ais", action="store_true",
                   help="continuous models: record the held-out log-likelihood by AIS every epoch")
    p.add_argument("--out", metavar="PATH", default=None,
                   help="checkpoint to write (.safetensors); load it with ebm.load or any ebm command")
    p.add_argument("--history", metavar="PATH", default=None,
                   help="write the training curve (.npz or .png)")
    p.add_argument("--checkpoint-dir", metavar="DIR", default=None,
                   help="save params, optimizer and chain state there after every epoch (the newest two kept)")
    p.add_argument("--resume", action="store_true",
                   help="continue from the newest checkpoint in --checkpoint-dir (same arguments as the "
                        "interrupted run); without it, a fit starts over")
    _quiet_argument(p)


def run_fit(args: argparse.Namespace) -> int:
    """Fit the parameters to data, print the training curve's ends and save a checkpoint."""
    model = _load(args)
    if not model.params:
        raise EbmError(f"model {model.name} has no parameters to fit",
                       hint="declare learnable parameters with `param`, e.g. `param beta = 1.0`")
    _require_gradients(model, args, list(model.params), "fitting")
    data = read_data(args.data)
    noise = args.noise[0] if args.noise and len(args.noise) == 1 else args.noise
    options = {k: v for k, v in (("method", args.method), ("epochs", args.epochs), ("lr", args.lr),
                                 ("batch_size", args.batch_size), ("noise", noise), ("projections", args.projections),
                                 ("noise_ratio", args.noise_ratio), ("eval_ais", args.eval_ais or None),
                                 ("recipe", args.recipe), ("data_noise", args.data_noise))
               if v is not None}
    _check_fit_options(options)
    if args.resume and args.checkpoint_dir is None:
        raise EbmError("--resume continues from --checkpoint-dir, which is missing",
                       hint="pass the --checkpoint-dir of the interrupted run")
    if args.checkpoint_dir is not None:
        options.update(checkpoint_dir=args.checkpoint_dir, resume=args.resume)
    start = time.perf_counter()
    result = model.fit(data, seed=args.seed, progress=_show_progress(args), **options)
    if getattr(result, "resumed_from", None):
        print(f"resumed after epoch {result.resumed_from} from {args.checkpoint_dir}")
    elapsed = time.perf_counter() - start
    curve = training_curve(result)
    print(f"fitted {model.name} on {len(next(iter(data.values())))} examples in {elapsed:.2f} s")
    if getattr(result, "description", ""):
        print(f"  how: {result.description}")
    epochs = len(next(iter(curve.values()))) if curve else 0
    for k in range(max(0, epochs - HISTORY_LINES), epochs):
        shown = ", ".join(f"{name} {values[k]:.5g}" for name, values in curve.items() if np.isfinite(values[k]))
        print(f"  epoch {k + 1}: {shown}")
    print("params:")
    for name, value in model.param_values().items():
        print("  " + _describe_array(name, value).replace("\n", "\n  "))
    if args.history:
        write_history(args.history, curve, f"{model.name}, {getattr(result, 'method', 'fit')}")
    if args.out:
        # The suffix was checked before fitting (check_output_paths); save makes the folder.
        model.save(args.out)
        print(f"wrote {args.out}")
    return 0


def _check_fit_options(options: dict) -> None:
    for key in ("epochs", "batch_size"):
        if key in options:
            _positive("--" + key.replace("_", "-"), options[key])
    if "lr" in options:
        _positive("--lr", options["lr"])


# --------------------------------------------------------------------------
# ebm energy


def _energy_arguments(p: argparse.ArgumentParser) -> None:
    _model_arguments(p)
    p.add_argument("--state", metavar="FILE", default=None,
                   help="states: a .npz/.safetensors file with one array per variable "
                        "(e.g. the output of ebm sample or ebm argmin)")
    p.add_argument("--value", action="append", default=[], metavar="NAME=FILE",
                   help="the value of one variable (.npy, or file.npz:key); repeatable, overrides --state")
    p.add_argument("--terms", action="store_true", help="also print the energy of every term")
    p.add_argument("--out", metavar="PATH", default=None,
                   help="write energies: .npy (total) or .npz/.safetensors (total and per term)")


def run_energy(args: argparse.Namespace) -> int:
    """Evaluate the energy of states read from files."""
    from ebmlang.api.io import read_arrays, read_assignments, write_arrays

    model = _load(args)
    state: dict[str, np.ndarray] = {}
    if args.state:
        arrays = read_arrays(args.state)
        state.update({k: v for k, v in arrays.items() if k in model.variables})
        if not state:
            raise EbmError(f"{args.state} has no array named after a variable of {model.name}",
                           expected=f"arrays named {', '.join(model.variables)}",
                           hint=f"it holds: {', '.join(arrays) or '(nothing)'}")
    state.update(read_assignments(args.value, "--value"))
    if not state:
        raise EbmError("no state given", hint="pass --state FILE or --value NAME=FILE for each variable")
    state = _merge_draw_axes(model, state)
    total = np.asarray(model.energy(state, nan_is_error=True), dtype=float)
    print(_describe_array("energy", total))
    terms = model.term_energies(state) if (args.terms or args.out) else {}
    if args.terms:
        for name, value in terms.items():
            print("  " + _describe_array(name, value))
    if args.out:
        out = Path(args.out)
        arrays = {"energy": total} if out.suffix == ".npy" else {"energy": total, **{
            f"term.{k}": np.asarray(v, dtype=float) for k, v in terms.items()}}
        print(f"wrote {write_arrays(out, arrays)}")
    return 0


def _merge_draw_axes(model, state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Draws written by `ebm sample` ([chains, draws, *shape]) flattened to a batch."""
    out = {}
    for name, value in state.items():
        arr = np.asarray(value)
        shape = tuple(model.variables[name].shape) if name in model.variables else ()
        extra = arr.ndim - len(shape)
        if extra > 1 and tuple(arr.shape[extra:]) == shape:
            arr = arr.reshape((-1,) + shape)
        out[name] = arr
    return out


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
