"""Names inside one model: its symbols and scope, and where an expression sits.

`Scope` holds what one model declares (plus the consts and externs its file shares with
it); `ExprContext` says where an expression sits -- what it may refer to, and how an
error names that place. Also the small helpers every checker uses on (typed) expressions:
`walk_expr`, `folded_number`. Its own piece: declarations fill a scope (check_decls.py),
expressions read it (check_expr.py).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from ebmlang.errors import EbmError
from ebmlang.language import ast, domains
from ebmlang.language.ast import Span, Type
from ebmlang.language.builtin_names import BUILTIN_CONSTANTS, BUILTIN_FUNCTIONS

T_INDEX = Type("index")
T_REAL = Type("real")


@dataclass
class Symbol:
    """A declared name inside one model."""

    kind: str  # "const" | "param" | "variable" | "extern" | "builtin"
    name: str
    span: Span
    value: object = None               # consts
    shape: tuple[int, ...] = ()        # variables, params, const arrays
    domain: domains.Domain | None = None    # variables
    layers: tuple[int, ...] = ()       # mlp params; (inputs, outputs) of networks
    broken: bool = False               # its declaration had an error: stay quiet about uses
    written_network: bool = False      # `param f : network(...)`: an mlp-like param with an input shape

    @property
    def is_mlp(self) -> bool:
        return self.kind == "param" and bool(self.layers)

    @property
    def is_network(self) -> bool:
        """`extern net : network(IN -> OUT)`: called like an mlp, implemented in Python."""
        return self.kind == "extern" and bool(self.layers)

    @property
    def has_input_shape(self) -> bool:
        """A network (extern or written) reshapes its features to `shape`."""
        return self.is_network or self.written_network

    def describe(self) -> str:
        if self.kind == "variable":
            return f"variable '{self.name}'"
        if self.is_mlp:
            return f"{'network' if self.written_network else 'mlp'} '{self.name}'"
        if self.is_network:
            return f"network '{self.name}'"
        return f"{self.kind} '{self.name}'"


class AlreadyReported(Exception):
    """A use of a name whose declaration already failed; its error is reported once."""


@dataclass(frozen=True)
class ExprContext:
    """Where an expression sits: what it may refer to and how to say so in errors."""

    purpose: str                      # e.g. "a shape", "an index", "an energy body"
    compile_time: bool                # no params, no variables
    indices: tuple[tuple[str, Span], ...] = ()
    allow_arrays: bool = False        # const/param values may be whole arrays

    def with_index(self, name: str, span: Span) -> "ExprContext":
        return dataclasses.replace(self, indices=self.indices + ((name, span),))

    def index_names(self) -> set[str]:
        return {n for n, _ in self.indices}

    def as_compile_time(self, purpose: str) -> "ExprContext":
        return dataclasses.replace(self, purpose=purpose, compile_time=True, allow_arrays=False)


class Scope:
    """The names visible in one model (plus what its enclosing file shares with it)."""

    def __init__(self, file: str, source: str, inherited: dict[str, Symbol] | None = None,
                 hidden: dict[str, Symbol] | None = None):
        self.file = file
        self.source = source
        self.symbols: dict[str, Symbol] = dict(inherited or {})
        # The file's top-level params and variables, which a model block does not see: named
        # in the error when a block uses one, since the file declares it a few lines up.
        self.hidden: dict[str, Symbol] = dict(hidden or {})
        self.inherited = set(self.symbols)
        self.consts: dict[str, object] = {k: s.value for k, s in self.symbols.items() if s.kind == "const"}
        self.all_index_names: dict[str, Span] = {}   # every binding in the model, for hints
        self.used: set[str] = set()
        self.warnings: list[str] = []

    def declare(self, symbol: Symbol, decl_span: Span) -> None:
        if symbol.name in BUILTIN_CONSTANTS:
            raise EbmError(f"'{symbol.name}' is a built-in constant and cannot be redeclared", decl_span,
                           hint="choose another name")
        if symbol.kind in ("extern",) or symbol.is_mlp:
            if symbol.name in BUILTIN_FUNCTIONS:
                raise EbmError(f"'{symbol.name}' is a built-in function and cannot be redeclared",
                               decl_span, hint="choose another name")
        previous = self.symbols.get(symbol.name)
        if previous is not None:
            raise EbmError(
                f"duplicate name '{symbol.name}': already declared as a {previous.kind}", decl_span,
                hint="every const, variable, param and extern in a model needs its own name",
                notes=[(previous.span, f"'{symbol.name}' first declared here")],
            )
        self.symbols[symbol.name] = symbol
        if symbol.kind == "const":
            self.consts[symbol.name] = symbol.value

    def warn(self, span: Span, message: str) -> None:
        self.warnings.append(f"{span}: warning: {message}")


def walk_expr(expr) -> Iterator[ast.Expr]:
    """Every expression node below (and including) `expr`."""
    yield expr
    for f in dataclasses.fields(expr):
        if f.name in ("span", "ty", "func_span"):
            continue
        value = getattr(expr, f.name)
        children = value if isinstance(value, tuple) else (value,)
        for child in children:
            if isinstance(child, (ast.Expr, ast.IndexSet, ast.Binding)):
                yield from walk_expr(child)


def _mentions(expr: ast.Expr, names: set[str]) -> bool:
    return any(isinstance(node, ast.Name) and node.name in names for node in walk_expr(expr))


def _mentions_kind(expr: ast.Expr, scope: Scope, kinds: tuple[str, ...]) -> bool:
    for node in walk_expr(expr):
        name = node.name if isinstance(node, ast.Name) else node.func if isinstance(node, ast.Call) else None
        symbol = scope.symbols.get(name) if name else None
        if symbol is not None and symbol.kind in kinds:
            return True
    return False


def folded_number(value, span: Span) -> ast.Number:
    """A value computed at check time, as the typed Number that stands for its expression."""
    is_integer = isinstance(value, (int, np.integer))
    return ast.Number(span, int(value) if is_integer else float(value), is_integer=is_integer,
                      ty=T_INDEX if is_integer else T_REAL)


def hidden_note(scope: Scope, name: str, span: Span) -> dict:
    """The hint and note for a name a model block uses that only the file's top level declares."""
    symbol = scope.hidden.get(name)
    if symbol is None:
        return {}
    return {"hint": f"a model block sees only the file's top-level consts and externs: declare "
                    f"{symbol.describe()} inside the block",
            "notes": [(symbol.span, f"'{name}' is declared here, at the top level of the file")]}
