"""The lark parse tree -> AST nodes: `_AstBuilder`, one method per grammar rule.

Lark finds each method by its rule's name. Domain declarations are shape-checked
here (`_domain`); their values are checked later by the checker. Its own module:
the transformer follows the grammar rule by rule, while parser.py only drives it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from lark import Token, Transformer, v_args

from ebmlang.errors import EbmError, did_you_mean
from ebmlang.language import ast
from ebmlang.language.ast import Span
from ebmlang.language.builtin_names import LAYER_ACTIVATIONS, NETWORK_LAYERS

DOMAIN_NAMES = ("real", "binary", "spin", "categorical", "integer")
_DOMAIN_FORMS = "real, real in [low, high], binary, spin, categorical(K) or integer in a..b"
# Common names from other languages, mapped to the domain meant.
_DOMAIN_ALIASES = {
    "bool": "binary", "boolean": "binary", "bit": "binary", "int": "integer",
    "float": "real", "continuous": "real", "discrete": "categorical", "ising": "spin",
    "categorial": "categorical", "bounded": "real in [low, high]",
}
_COMPARISONS = ("==", "!=", "<", "<=", ">", ">=")


# --------------------------------------------------------------------------
# Parse tree -> AST


@dataclass(frozen=True)
class _Range:
    """`a..b` before it becomes part of a Binding or a domain."""

    start: ast.Expr
    stop: ast.Expr
    span: Span


@v_args(meta=True, inline=True)
class _AstBuilder(Transformer):
    """One method per grammar rule (or alias), each returning an AST node."""

    def __init__(self, source: str, file: str):
        super().__init__(visit_tokens=False)
        self._source = source
        self._file = file

    # -- spans
    def _span(self, meta) -> Span:
        if getattr(meta, "empty", True):
            return Span(self._file, 1, 1, 1, 1)
        return Span(self._file, meta.line, meta.column, meta.end_line, meta.end_column)

    def _token_span(self, tok: Token) -> Span:
        return Span(self._file, tok.line, tok.column, tok.end_line, tok.end_column)

    # -- file
    def start(self, meta, *items):
        lines = self._source.splitlines() or [""]
        whole = Span(self._file, 1, 1, len(lines), len(lines[-1]) + 1)
        return ast.Program(items=tuple(items), source=self._source, file=self._file, span=whole)

    # -- declarations
    def const_decl(self, meta, name, value):
        return ast.ConstDecl(self._span(meta), str(name), value)

    def var_decl(self, meta, role, name, shape, domain):
        return ast.VarDecl(self._span(meta), str(name), role, shape or (), domain)

    def var_role(self, meta, token):
        return str(token)

    def shape(self, meta, dims):
        return dims

    def expr_list(self, meta, *exprs):
        return tuple(exprs)

    def domain_args(self, meta, args):
        return args or ()

    def domain_set(self, meta, value):
        return value

    def range(self, meta, start, stop):
        return _Range(start, stop, self._span(meta))

    def domain(self, meta, name, args, value_set):
        return _domain(str(name), self._token_span(name), args, value_set, self._span(meta))

    def param_decl(self, meta, name, shape, init, bounds):
        return ast.ParamDecl(self._span(meta), str(name), shape or (), init, bounds)

    def param_value(self, meta, value):
        return ast.ParamValue(value, self._span(meta))

    def param_dist(self, meta, dist, args):
        return ast.ParamDistribution(str(dist), args or (), self._span(meta))

    def param_neural(self, meta, kind, sizes, *options):
        if str(kind) == "network":
            return _written_network(sizes, options, self._span(meta))
        if str(kind) != "mlp":
            hint = ("a random initialisation is written `~ normal(mean, std)`"
                    if str(kind) in ("normal", "uniform")
                    else "write `: mlp(IN -> HIDDEN -> OUT)` or `: network([C, H, W] -> LAYER -> ...)`")
            raise EbmError(
                f"unknown network kind '{kind}'", self._token_span(kind),
                expected="mlp(IN -> HIDDEN -> OUT), optionally with `, activation`, or network(...)", hint=hint,
            )
        if len(options) > 1 or (options and not isinstance(options[0], ast.Name)):
            where = options[1].span if len(options) > 1 else options[0].span
            raise EbmError(
                "an mlp takes its layer sizes and at most one activation name", where,
                expected="mlp(IN -> HIDDEN -> OUT) or mlp(IN -> HIDDEN -> OUT, tanh)",
            )
        activation = options[0].name if options else "silu"
        return ast.NeuralSpec("mlp", sizes, activation, self._span(meta))

    def mlp_sizes(self, meta, *sizes):
        return tuple(sizes)

    def param_bounds(self, meta, value):
        if isinstance(value, ast.ArrayLiteral) and len(value.items) == 2:
            return (value.items[0], value.items[1])
        raise EbmError(
            "param bounds must be an interval", value.span,
            expected="`in [low, high]` after the param's value", hint="e.g. `param sigma = 0.5 in [0.01, 10]`",
        )

    def energy_decl(self, meta, name, index_set, body):
        return ast.EnergyDecl(self._span(meta), str(name), self._token_span(name), index_set, body)

    def constraint_decl(self, meta, name, index_set, condition):
        return ast.ConstraintDecl(self._span(meta), str(name), self._token_span(name), index_set, condition)

    def extern_decl(self, meta, name, kind=None, sizes=None):
        if kind is None:
            return ast.ExternDecl(self._span(meta), str(name))
        form = "network(IN -> OUT), e.g. network([1, 8, 8] -> 1) or network(D -> C)"
        if str(kind) != "network":
            raise EbmError(f"unknown extern kind '{kind}'", self._token_span(kind), expected=form,
                           hint="an elementwise extern is declared `extern g`; a network `extern g : network(...)`")
        if len(sizes) != 2:
            where = sizes[2].span if len(sizes) > 2 else sizes[0].span
            raise EbmError("a network takes an input shape and an output size", where, expected=form,
                           hint="hidden layers belong to the module supplied from Python")
        given, outputs = sizes
        shape = given.items if isinstance(given, ast.ArrayLiteral) else (given,)
        if isinstance(outputs, ast.ArrayLiteral):
            if len(outputs.items) != 1:
                raise EbmError("a network's output is one number or a vector", outputs.span,
                               expected="an output size: network(IN -> 1) or network(IN -> C)")
            outputs = outputs.items[0]
        spec = ast.NetworkSpec(tuple(shape), outputs, Span(given.span.file, given.span.line, given.span.column,
                                                           outputs.span.end_line, outputs.span.end_column))
        return ast.ExternDecl(self._span(meta), str(name), spec)

    def import_decl(self, meta, path, alias):
        return ast.ImportDecl(self._span(meta), str(path)[1:-1], str(alias))

    # -- models
    def model_block(self, meta, name, *items):
        return ast.ModelBlock(self._span(meta), str(name), tuple(items))

    def model_def(self, meta, name, expr):
        return ast.ModelDef(self._span(meta), str(name), expr)

    def mobserve(self, meta, base, names):
        return ast.ModelObserve(self._span(meta), base, names)

    def mproduct(self, meta, left, right):
        factors = left.factors if isinstance(left, ast.ModelProduct) else (left,)
        return ast.ModelProduct(self._span(meta), factors + (right,))

    def mpower(self, meta, base, weight):
        return ast.ModelPower(self._span(meta), base, weight)

    def mrename(self, meta, base, *renames):
        return ast.ModelRename(self._span(meta), base, tuple(renames))

    def mref(self, meta, name):
        return ast.ModelRef(self._span(meta), name)

    def dotted_name(self, meta, *parts):
        return ".".join(str(p) for p in parts)

    def rename(self, meta, old, new):
        return (str(old), str(new))

    def name_list(self, meta, *names):
        return tuple(str(n) for n in names)

    # -- index sets and reductions
    def index_set(self, meta, *parts):
        *bindings, where = parts
        return ast.IndexSet(self._span(meta), tuple(bindings), where)

    def binding(self, meta, name, value_range):
        return ast.Binding(self._span(meta), str(name), value_range.start, value_range.stop)

    def reduction(self, meta, op, index_set, body):
        return ast.Reduce(self._span(meta), op, index_set, body)

    def reduce_op(self, meta, token):
        return str(token)

    # -- operators
    def _binary(op):  # noqa: N805 -- builds methods at class creation
        def build(self, meta, left, right):
            return ast.Binary(self._span(meta), op, left, right)
        return build

    or_ = _binary("or")
    and_ = _binary("and")
    eq = _binary("==")
    ne = _binary("!=")
    lt = _binary("<")
    le = _binary("<=")
    gt = _binary(">")
    ge = _binary(">=")
    add = _binary("+")
    sub = _binary("-")
    mul = _binary("*")
    div = _binary("/")
    mod = _binary("%")
    pow = _binary("^")
    del _binary

    def not_(self, meta, operand):
        return ast.Unary(self._span(meta), "not", operand)

    def neg(self, meta, operand):
        return ast.Unary(self._span(meta), "-", operand)

    def pos(self, meta, operand):
        return ast.Unary(self._span(meta), "+", operand)

    # -- postfix and atoms
    def index(self, meta, base, indices):
        return ast.Index(self._span(meta), base, indices)

    def call(self, meta, name, args):
        args = args or ()
        first_keyword = next((i for i, a in enumerate(args) if isinstance(a, ast.Keyword)), len(args))
        late = [a for a in args[first_keyword:] if not isinstance(a, ast.Keyword)]
        if late:
            raise EbmError("a positional argument after a keyword argument", late[0].span,
                           expected="positional arguments first, then keywords: conv(32, 3, stride=2)")
        return ast.Call(self._span(meta), str(name), self._token_span(name), args[:first_keyword],
                        keywords=args[first_keyword:])

    def call_args(self, meta, *args):
        return tuple(args)

    def keyword(self, meta, name, value):
        return ast.Keyword(str(name), value, self._span(meta))

    def integer(self, meta, token):
        # Compile-time integers stay exact in float64 (2^53); longer literals are refused
        # before Python parses them (a 5,000-digit literal exceeds int()'s own limit).
        text = str(token).lstrip("0") or "0"
        if len(text) > 16 or int(text) > 2 ** 53:
            raise EbmError("integer literal too large", self._span(meta), expected="at most 2^53 (9007199254740992)",
                           hint="write a real number such as 1e20 if a large value is meant")
        return ast.Number(self._span(meta), int(text), is_integer=True)

    def real(self, meta, token):
        value = float(token)
        if not math.isfinite(value):
            raise EbmError("real literal too large", self._span(meta), expected="a finite number (below 1.8e308)")
        return ast.Number(self._span(meta), value, is_integer=False)

    def name(self, meta, token):
        return ast.Name(self._span(meta), str(token))

    def bracket(self, meta, items):
        # `[cond]` is an indicator; anything else in brackets is an array literal
        # (the checker only accepts those in const and param values).
        if len(items) == 1 and _is_condition(items[0]):
            return ast.Indicator(self._span(meta), items[0])
        return ast.ArrayLiteral(self._span(meta), items)


def _written_network(chain: tuple[ast.Expr, ...], options: tuple[ast.Expr, ...], span: Span
                     ) -> ast.NetworkLayersSpec:
    """`network(INPUT -> LAYER -> ..., spectral_norm)`: split the input shape from the layers
    and read the options; the layers themselves are checked by check_network.py."""
    form = "network([C, H, W] -> LAYER -> ...), e.g. network([1, 8, 8] -> conv(8, 3) -> relu -> dense(1))"
    given, *layers = chain
    if isinstance(given, (ast.Call, ast.Name)) and _names_layer(given):
        raise EbmError("a network starts with its input shape", given.span, expected=form,
                       hint="write the shape its features are reshaped to first, e.g. `network([1, 8, 8] -> ...`")
    if not layers:
        raise EbmError("a network needs at least one layer after its input shape", span, expected=form)
    spectral_norm = None
    for option in options:
        name = option.name if isinstance(option, ast.Name) else None
        if name != "spectral_norm":
            raise EbmError(f"unknown network option '{name}'" if name else "a network's options are names",
                           option.span, expected="spectral_norm",
                           hint=did_you_mean(name, ("spectral_norm",)) if name else None)
        if spectral_norm is not None:
            raise EbmError("spectral_norm is given twice", option.span,
                           notes=[(spectral_norm.span, "first given here")])
        spectral_norm = option
    shape = given.items if isinstance(given, ast.ArrayLiteral) else (given,)
    return ast.NetworkLayersSpec(tuple(shape), tuple(layers), spectral_norm is not None, span)


def _names_layer(expr: ast.Call | ast.Name) -> bool:
    name = expr.func if isinstance(expr, ast.Call) else expr.name
    return name in NETWORK_LAYERS or name in LAYER_ACTIVATIONS


def _is_condition(expr: ast.Expr) -> bool:
    if isinstance(expr, ast.Binary):
        return expr.op in _COMPARISONS or expr.op in ("and", "or")
    return isinstance(expr, ast.Unary) and expr.op == "not"


def _domain(name: str, name_span: Span, args, value_set, span: Span) -> ast.DomainSpec:
    """Check the shape of a domain declaration; its values are checked later."""

    def fail(message: str, where: Span, hint: str | None = None) -> EbmError:
        return EbmError(message, where, expected=_DOMAIN_FORMS, hint=hint)

    if name not in DOMAIN_NAMES:
        hint = (f"did you mean '{_DOMAIN_ALIASES[name]}'?" if name in _DOMAIN_ALIASES
                else did_you_mean(name, DOMAIN_NAMES))
        raise fail(f"unknown domain '{name}'", name_span, hint)
    if args is not None and name != "categorical":
        raise fail(f"domain '{name}' takes no arguments", span)
    if name == "categorical":
        if args is None or len(args) != 1:
            raise fail("categorical needs one argument, the number of categories", span,
                       "e.g. `categorical(3)` for values 0, 1, 2")
        if value_set is not None:
            raise fail("a categorical domain takes no `in ...` part", span)
        return ast.DomainSpec("categorical", tuple(args), span)
    if name == "real":
        if value_set is None:
            return ast.DomainSpec("real", (), span)
        if isinstance(value_set, ast.ArrayLiteral) and len(value_set.items) == 2:
            return ast.DomainSpec("bounded", tuple(value_set.items), span)
        raise fail("a bounded real is written `real in [low, high]`", span)
    if name == "integer":
        if isinstance(value_set, _Range):
            return ast.DomainSpec("integer", (value_set.start, value_set.stop), span)
        raise fail("an integer domain needs a range", span,
                   "write `integer in a..b` for the values a, a+1, ..., b-1")
    if value_set is not None:
        raise fail(f"domain '{name}' takes no `in ...` part", span)
    return ast.DomainSpec(name, (), span)
