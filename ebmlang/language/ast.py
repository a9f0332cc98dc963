"""Typed AST of a `.ebm` program.

One node shape for both stages (stanc3 style): the parser builds nodes with a
`span` and `ty=None`; the checker returns the same nodes with `ty` filled in
(via `dataclasses.replace`). Every node keeps the span of the source text it
came from, so any later stage can point at the line that wrote it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ebmlang.errors import UNKNOWN_SPAN, Span  # noqa: F401 -- every node carries a Span

# --------------------------------------------------------------------------
# Types (filled in by the checker)

ValueKind = Literal["index", "real", "discrete", "bool", "vector"]


@dataclass(frozen=True)
class Type:
    """What an expression evaluates to.

    kind:
      index    -- an integer known at compile time per ground factor
                  (index variables, consts, arithmetic on them)
      real     -- a real scalar (depends on real variables, params, ...)
      discrete -- the value of a discrete variable (or arithmetic keeping it discrete)
      bool     -- a condition (inside `[...]` indicators, `where`, constraints)
      vector   -- a fixed-length vector (outputs of `mlp`, whole variable groups)
    depends_on_variables: False for compile-time constants and params-only values.
    size: length of a vector, else None.
    """

    kind: ValueKind
    depends_on_variables: bool = False
    size: int | None = None


# --------------------------------------------------------------------------
# Expressions


@dataclass(frozen=True)
class Expr:
    span: Span


@dataclass(frozen=True)
class Number(Expr):
    value: float
    is_integer: bool = False
    ty: Type | None = None


@dataclass(frozen=True)
class Name(Expr):
    """A bare name: const, scalar param, index variable, scalar variable or a whole group."""

    name: str
    ty: Type | None = None


@dataclass(frozen=True)
class Index(Expr):
    """`base[i, j]` -- a variable, param or const array indexed by index expressions,
    or a vector (e.g. `f(x)[y]`) selected by one expression."""

    base: Expr
    indices: tuple[Expr, ...]
    ty: Type | None = None


@dataclass(frozen=True)
class Keyword:
    """`stride=2` in a call: only network layers take keywords (the checker refuses the rest)."""

    name: str
    value: Expr
    span: Span


@dataclass(frozen=True)
class Call(Expr):
    """`fn(args)`: a builtin elementwise function, an `mlp` param, or an `extern`."""

    func: str
    func_span: Span
    args: tuple[Expr, ...]
    ty: Type | None = None
    keywords: tuple[Keyword, ...] = ()


UnaryOp = Literal["-", "+", "not"]
BinaryOp = Literal["+", "-", "*", "/", "%", "^", "==", "!=", "<", "<=", ">", ">=", "and", "or"]


@dataclass(frozen=True)
class Unary(Expr):
    op: UnaryOp
    operand: Expr
    ty: Type | None = None


@dataclass(frozen=True)
class Binary(Expr):
    op: BinaryOp
    left: Expr
    right: Expr
    ty: Type | None = None


@dataclass(frozen=True)
class Indicator(Expr):
    """`[condition]`: 1.0 where the condition holds, else 0.0 (Iverson bracket)."""

    condition: Expr
    ty: Type | None = None


@dataclass(frozen=True)
class Binding(Expr):
    """`name in start..stop` -- a half-open integer range [start, stop)."""

    name: str
    start: Expr
    stop: Expr


@dataclass(frozen=True)
class IndexSet(Expr):
    """A list of bindings with an optional `where` filter: `i in 0..N, j in 0..N where i < j`."""

    bindings: tuple[Binding, ...]
    where: Expr | None = None


ReduceOp = Literal["sum", "prod", "mean", "logsumexp", "min", "max"]


@dataclass(frozen=True)
class Reduce(Expr):
    """`sum(i in 0..N) body` and friends; the body binds as tightly as a product."""

    op: ReduceOp
    index_set: IndexSet
    body: Expr
    ty: Type | None = None


@dataclass(frozen=True)
class ArrayLiteral(Expr):
    """`[1, 2, 3]` or nested `[[1, 0], [0, 1]]` -- only in `const` and `param` values."""

    items: tuple[Expr, ...]
    ty: Type | None = None


# --------------------------------------------------------------------------
# Declarations


@dataclass(frozen=True)
class Decl:
    span: Span


@dataclass(frozen=True)
class ConstDecl(Decl):
    name: str
    value: Expr


DomainKind = Literal["real", "bounded", "binary", "spin", "categorical", "integer"]


@dataclass(frozen=True)
class DomainSpec:
    """`real`, `real in [lo, hi]`, `binary`, `spin`, `categorical(K)`, `integer in a..b`."""

    kind: DomainKind
    args: tuple[Expr, ...]
    span: Span


@dataclass(frozen=True)
class VarDecl(Decl):
    name: str
    role: Literal["latent", "observed"]
    shape: tuple[Expr, ...]
    domain: DomainSpec


@dataclass(frozen=True)
class ParamValue:
    """`param b[V] = 0` (broadcast) or `= [..]`: a fixed initial value."""

    value: Expr
    span: Span


@dataclass(frozen=True)
class ParamDistribution:
    """`param W[V, H] ~ normal(0, 0.01)`: random initialisation (normal, uniform)."""

    dist: str
    args: tuple[Expr, ...]
    span: Span


@dataclass(frozen=True)
class NeuralSpec:
    """`param f : mlp(D -> 128 -> C)` with optional `, activation`."""

    kind: Literal["mlp"]
    sizes: tuple[Expr, ...]
    activation: str
    span: Span


@dataclass(frozen=True)
class NetworkLayer:
    """One checked layer of a written network, with the shapes it reads and writes (batch
    axis excluded); the fields mean what they mean in `ir.Layer`."""

    kind: Literal["conv", "dense", "avgpool", "maxpool", "flatten", "activation"]
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    span: Span
    size: int = 0
    kernel: int = 0
    stride: int = 1
    padding: int = 0
    activation: str = ""


@dataclass(frozen=True)
class NetworkLayersSpec:
    """`param f : network([1, 8, 8] -> conv(16, 3, padding=1) -> relu -> dense(1), spectral_norm)`:
    a network written in the language. The parser keeps the input shape's entries and each
    layer as written (a Name or a Call); the checker folds the shape into `Number`s and
    replaces every layer with its `NetworkLayer`."""

    input_shape: tuple[Expr, ...]
    layers: tuple[Expr | NetworkLayer, ...]
    spectral_norm: bool
    span: Span


@dataclass(frozen=True)
class ParamDecl(Decl):
    name: str
    shape: tuple[Expr, ...]
    init: ParamValue | ParamDistribution | NeuralSpec | NetworkLayersSpec | None
    bounds: tuple[Expr, Expr] | None = None


@dataclass(frozen=True)
class EnergyDecl(Decl):
    """`energy name[index set] = body`; without an index set it is one factor."""

    name: str
    name_span: Span
    index_set: IndexSet | None
    body: Expr


@dataclass(frozen=True)
class ConstraintDecl(Decl):
    """`constraint name[index set] : condition` -- infinite energy where violated."""

    name: str
    name_span: Span
    index_set: IndexSet | None
    condition: Expr


@dataclass(frozen=True)
class NetworkSpec:
    """`network([1, 8, 8] -> 1)`: the input shape of a network extern (one size or a
    bracketed shape) and its number of outputs."""

    input_shape: tuple[Expr, ...]
    outputs: Expr
    span: Span


@dataclass(frozen=True)
class ExternDecl(Decl):
    """`extern g` -- an elementwise function registered from Python per backend; with
    `: network(IN -> OUT)`, a network (a torch module, a JAX function and its params)
    whose weights are model params."""

    name: str
    network: NetworkSpec | None = None


@dataclass(frozen=True)
class ImportDecl(Decl):
    """`import "prior.ebm" as Prior`; the path is relative to the importing file."""

    path: str
    alias: str


# Model expressions (composition) ------------------------------------------


@dataclass(frozen=True)
class ModelExpr:
    span: Span


@dataclass(frozen=True)
class ModelRef(ModelExpr):
    name: str


@dataclass(frozen=True)
class ModelRename(ModelExpr):
    """`A[x -> y, ...]`: rename variables (or params) of an expert."""

    base: ModelExpr
    renames: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class ModelPower(ModelExpr):
    """`A ^ 2.0` or `A ^ w`: weight (inverse temperature) of an expert."""

    base: ModelExpr
    weight: Expr


@dataclass(frozen=True)
class ModelProduct(ModelExpr):
    """`A * B * ...`: energies add."""

    factors: tuple[ModelExpr, ...]


@dataclass(frozen=True)
class ModelObserve(ModelExpr):
    """`C | y, z`: mark variables observed."""

    base: ModelExpr
    names: tuple[str, ...]


@dataclass(frozen=True)
class ModelDef(Decl):
    """`model C = A * B`."""

    name: str
    expr: ModelExpr


@dataclass(frozen=True)
class ModelBlock(Decl):
    """`model Name { declarations }` -- several models in one file."""

    name: str
    items: tuple[Decl, ...]


@dataclass(frozen=True)
class Program:
    """A parsed file: its top-level declarations, source text and file name."""

    items: tuple[Decl, ...]
    source: str
    file: str
    span: Span = field(default=UNKNOWN_SPAN)


# --------------------------------------------------------------------------
# Checker output: what lowering consumes


@dataclass(frozen=True)
class CheckedModel:
    """One model with its names resolved and its expressions typed.

    consts: every constant evaluated (int, float or numpy array), including
    shape sizes, so lowering never evaluates a declaration twice.
    decls: VarDecl, ParamDecl, EnergyDecl, ConstraintDecl and ExternDecl, in
    source order, with typed expressions (`ty` set on every Expr).
    """

    name: str
    file: str
    source: str
    consts: dict
    decls: tuple[Decl, ...]
    span: Span


@dataclass(frozen=True)
class CheckedComposite:
    """`model C = ...`: a model expression whose `ModelRef`s name keys of
    `CheckedProgram.models` (imported models appear as `Alias` or `Alias.Name`)."""

    name: str
    expr: ModelExpr
    span: Span
    consts: dict = field(default_factory=dict)


@dataclass(frozen=True)
class CheckedProgram:
    file: str
    source: str
    models: dict  # name -> CheckedModel | CheckedComposite
    default: str  # the model `ebm.load(path)` returns
    warnings: tuple[str, ...] = ()
