"""The `ebm` command line.

Each subcommand is one function registered with `@subcommand(name, help, *arguments)`;
it receives the parsed `argparse.Namespace` and returns an exit status. An
`EbmError` escaping a subcommand is printed (located, with the source line) and
turns into exit status 1 -- never a traceback.

    ebm check model.ebm [more.ebm ...] [--allow-root DIR]

To add a subcommand (`ebm sample`, say), write one more decorated function here.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ebmlang.cli.commands import register, run_command
from ebmlang.errors import EbmError
from ebmlang.language import ast
from ebmlang.language.check_network import network_source
from ebmlang.language.checker import load_program

__all__ = ["main", "build_parser", "subcommand", "argument", "SUBCOMMANDS", "describe_model",
           "format_model_expr"]


@dataclass(frozen=True)
class Argument:
    """The arguments of one `ArgumentParser.add_argument` call."""

    flags: tuple[str, ...]
    options: dict


@dataclass(frozen=True)
class Subcommand:
    name: str
    help: str
    run: Callable[[argparse.Namespace], int]
    arguments: tuple[Argument, ...]


SUBCOMMANDS: dict[str, Subcommand] = {}


def argument(*flags: str, **options) -> Argument:
    """One argument of a subcommand, spelled as for `ArgumentParser.add_argument`."""
    return Argument(flags, options)


def subcommand(name: str, help: str, *arguments: Argument):
    """Register `function(args) -> exit status` as `ebm <name>`."""

    def register(function: Callable[[argparse.Namespace], int]):
        SUBCOMMANDS[name] = Subcommand(name, help, function, arguments)
        return function

    return register


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ebm", description="ebmlang: declarative energy-based models")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in SUBCOMMANDS.values():
        sub = commands.add_parser(command.name, help=command.help, description=command.help)
        for arg in command.arguments:
            sub.add_argument(*arg.flags, **arg.options)
        sub.set_defaults(run=command.run)
    register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `ebm` script; returns the exit status."""
    return run_command(build_parser().parse_args(argv))


# --------------------------------------------------------------------------
# ebm check


@subcommand(
    "check", "parse and type-check .ebm files, then summarise their models",
    argument("files", nargs="+", metavar="FILE", help="a .ebm file"),
    argument("--allow-root", metavar="DIR", default=None,
             help="also allow imports from this directory (default: the file's own directory)"),
    argument("--budget", metavar="SIZE", default=None,
             help="the most memory any one structure of a model may take, e.g. 8GiB (default 2GiB); "
                  "check refuses what load would"),
)
def check(args: argparse.Namespace) -> int:
    status = 0
    for path in args.files:
        try:
            program = load_program(path, allow_root=args.allow_root)
            # Lowering sizes every index set, group and network against the budget, so check
            # never says OK to a model that load refuses.
            for name, model in program.models.items():
                if _is_local(program, name, model):
                    _lower_checked(program, name, path, args.budget)
        except EbmError as err:
            print(err, file=sys.stderr)
            status = 1
            continue
        for warning in program.warnings:
            print(warning, file=sys.stderr)
        local = [name for name, model in program.models.items() if _is_local(program, name, model)]
        print(f"OK: {path}: {describe_model(program, program.default)}")
        for name in local:
            if name != program.default:
                print(f"    also {describe_model(program, name)}")
    return status


def _lower_checked(program: ast.CheckedProgram, name: str, path, budget) -> None:
    from ebmlang.graph.lower import lower_program

    try:
        lower_program(program, name, budget=budget)
    except EbmError as err:
        if err.source is None and err.span is not None and err.span.file == str(path):
            err.with_source(Path(path).read_text(encoding="utf-8", errors="replace"))
        raise


def _is_local(program: ast.CheckedProgram, name: str, model) -> bool:
    """Models written in this file (not brought in by an import)."""
    return model.span.file == program.file and "." not in name


def describe_model(program: ast.CheckedProgram, name: str) -> str:
    """One line: `model NAME: N variable groups (...), M params (...), T terms (...)`."""
    from ebmlang.language.checker import model_interface

    model = program.models[name]
    interface = model_interface(program, name)
    head = f"model {name}"
    if isinstance(model, ast.CheckedComposite):
        head += f" = {format_model_expr(model.expr)}"
    groups = [
        f"{v}{_dims(info.shape)} {info.domain} {'observed' if info.observed else 'latent'}"
        for v, info in interface.variables.items()
    ]
    params = list(interface.params)
    if isinstance(model, ast.CheckedModel):
        params = [_param_text(d) for d in model.decls if isinstance(d, ast.ParamDecl)
                  or isinstance(d, ast.ExternDecl) and d.network is not None]
    terms = list(interface.terms)
    return (f"{head}: {_count(groups, 'variable group')}, {_count(params, 'param')}, "
            f"{_count(terms, 'term')}")


def _dims(shape: tuple[int, ...]) -> str:
    return f"[{', '.join(map(str, shape))}]" if shape else ""


def _count(items: list[str], noun: str) -> str:
    text = f"{len(items)} {noun}{'' if len(items) == 1 else 's'}"
    return f"{text} ({', '.join(items)})" if items else text


def _param_text(decl: ast.ParamDecl | ast.ExternDecl) -> str:
    if isinstance(decl, ast.ExternDecl):  # a network from Python: its weights are params
        shape = ", ".join(str(int(d.value)) for d in decl.network.input_shape)
        return f"{decl.name}: network([{shape}] -> {int(decl.network.outputs.value)})"
    if isinstance(decl.init, ast.NetworkLayersSpec):
        shape = tuple(int(d.value) for d in decl.init.input_shape)
        return f"{decl.name}: {network_source(shape, decl.init.layers, decl.init.spectral_norm)}"
    if isinstance(decl.init, ast.NeuralSpec):
        sizes = " -> ".join(str(int(s.value)) for s in decl.init.sizes)
        activation = "" if decl.init.activation == "silu" else f", {decl.init.activation}"  # silu: the default
        return f"{decl.name}: mlp({sizes}{activation})"
    return decl.name + _dims(tuple(int(d.value) for d in decl.shape))


def format_model_expr(expr: ast.ModelExpr) -> str:
    """A model expression written back as source (`Prior ^ 2 * Likelihood | y`)."""
    if isinstance(expr, ast.ModelRef):
        return expr.name
    if isinstance(expr, ast.ModelProduct):
        return " * ".join(_grouped(f, ast.ModelObserve) for f in expr.factors)
    if isinstance(expr, ast.ModelPower):
        weight = expr.weight
        text = f"{weight.value:g}" if isinstance(weight, ast.Number) else getattr(weight, "name", "?")
        return f"{_grouped(expr.base, (ast.ModelProduct, ast.ModelObserve, ast.ModelPower))} ^ {text}"
    if isinstance(expr, ast.ModelRename):
        renames = ", ".join(f"{a} -> {b}" for a, b in expr.renames)
        return f"{_grouped(expr.base, (ast.ModelProduct, ast.ModelObserve, ast.ModelPower))}[{renames}]"
    if isinstance(expr, ast.ModelObserve):
        return f"{format_model_expr(expr.base)} | {', '.join(expr.names)}"
    return "?"


def _grouped(expr: ast.ModelExpr, loose) -> str:
    text = format_model_expr(expr)
    return f"({text})" if isinstance(expr, loose) else text


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
