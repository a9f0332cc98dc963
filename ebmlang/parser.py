"""Parse `.ebm` source text into the untyped AST (`ebmlang.ast.Program`).

The grammar lives in `grammar/ebm.lark` (package `ebmlang.grammar`); it is built
once per process (LALR, basic lexer, positions propagated) and reused. A lark
parse tree is turned into AST nodes by `_AstBuilder`, one method per grammar rule
(found by name, as lark does). Every failure -- a bad character, an unexpected
token, an unknown domain -- becomes an `EbmError` located in the source.
"""
from __future__ import annotations

import functools
import importlib.resources
from dataclasses import dataclass

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import (
    UnexpectedCharacters,
    UnexpectedEOF,
    UnexpectedInput,
    UnexpectedToken,
    VisitError,
)

from ebmlang import ast
from ebmlang.ast import Span
from ebmlang.errors import EbmError, did_you_mean

__all__ = ["parse_source", "parse_expression", "KEYWORDS", "DOMAIN_NAMES"]

# Words the lexer always reads as keywords; they cannot name anything.
KEYWORDS = (
    "const", "param", "latent", "observed", "energy", "constraint", "extern", "import",
    "as", "model", "in", "where", "and", "or", "not",
    "sum", "prod", "mean", "logsumexp", "min", "max",
)
DOMAIN_NAMES = ("real", "binary", "spin", "categorical", "integer")
_DOMAIN_FORMS = "real, real in [low, high], binary, spin, categorical(K) or integer in a..b"
# Common names from other languages, mapped to the domain meant.
_DOMAIN_ALIASES = {
    "bool": "binary", "boolean": "binary", "bit": "binary", "int": "integer",
    "float": "real", "continuous": "real", "discrete": "categorical", "ising": "spin",
    "categorial": "categorical", "bounded": "real in [low, high]",
}
_COMPARISONS = ("==", "!=", "<", "<=", ">", ">=")


@functools.cache
def _grammar_text() -> str:
    return importlib.resources.files("ebmlang.grammar").joinpath("ebm.lark").read_text("utf-8")


@functools.cache
def _lark() -> Lark:
    """The parser, built once: building the LALR tables is the slow part."""
    return Lark(
        _grammar_text(),
        parser="lalr",
        lexer="basic",
        propagate_positions=True,
        maybe_placeholders=True,
    )


@functools.cache
def _expression_lark() -> Lark:
    return Lark(
        _grammar_text(),
        parser="lalr",
        lexer="basic",
        propagate_positions=True,
        maybe_placeholders=True,
        start="expr",
    )


def parse_source(text: str, file: str = "<string>") -> ast.Program:
    """Parse a whole `.ebm` file into an untyped `Program` (every node has a span).

    Raises `EbmError` (with `source` set, so it quotes the offending line) on any
    syntax error.
    """
    tree = _parse_tree(_lark(), text, file)
    return _build(tree, text, file)


def parse_expression(text: str, file: str = "<string>") -> ast.Expr:
    """Parse a single expression, e.g. `"x[i] * W[i, k]"` (for tools and tests)."""
    tree = _parse_tree(_expression_lark(), text, file)
    return _build(tree, text, file)


def _parse_tree(parser: Lark, text: str, file: str):
    try:
        return parser.parse(text)
    except UnexpectedInput as exc:
        raise _syntax_error(exc, text, file) from None


def _build(tree, text: str, file: str):
    try:
        return _AstBuilder(text, file).transform(tree)
    except VisitError as exc:
        if isinstance(exc.orig_exc, EbmError):
            raise exc.orig_exc.with_source(text) from None
        raise
    except RecursionError:
        raise EbmError(
            "expression nested too deeply", Span(file, 1, 1, 1, 2), source=text,
            hint="split it into several energy terms",
        ) from None


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
        if str(kind) != "mlp":
            hint = ("a random initialisation is written `~ normal(mean, std)`"
                    if str(kind) in ("normal", "uniform") else "write `: mlp(IN -> HIDDEN -> OUT)`")
            raise EbmError(
                f"unknown network kind '{kind}'", self._token_span(kind),
                expected="mlp(IN -> HIDDEN -> OUT), optionally with `, activation`", hint=hint,
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

    def extern_decl(self, meta, name):
        return ast.ExternDecl(self._span(meta), str(name))

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
        return ast.Call(self._span(meta), str(name), self._token_span(name), args or ())

    def integer(self, meta, token):
        return ast.Number(self._span(meta), int(token), is_integer=True)

    def real(self, meta, token):
        return ast.Number(self._span(meta), float(token), is_integer=False)

    def name(self, meta, token):
        return ast.Name(self._span(meta), str(token))

    def bracket(self, meta, items):
        # `[cond]` is an indicator; anything else in brackets is an array literal
        # (the checker only accepts those in const and param values).
        if len(items) == 1 and _is_condition(items[0]):
            return ast.Indicator(self._span(meta), items[0])
        return ast.ArrayLiteral(self._span(meta), items)


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


# --------------------------------------------------------------------------
# Syntax errors -> EbmError

_STATEMENT_KEYWORDS = ("const", "param", "latent", "observed", "energy", "constraint",
                       "extern", "import", "model")
_OPERATORS = ("+", "-", "*", "/", "%", "^", "==", "!=", "<", "<=", ">", ">=", "and", "or")
_EXPRESSION_STARTS = ("NAME", "INT", "FLOAT", "(", "[", "-", "+", "not",
                      "sum", "prod", "mean", "logsumexp", "min", "max")
_NAMED_TERMINALS = {
    "NAME": "a name", "INT": "an integer", "FLOAT": "a number", "STRING": 'a quoted path like "file.ebm"',
    "$END": "end of file",
}
_CLOSERS = {"[": "]", "(": ")", "{": "}"}

# Frequent mistakes, recognised by the parser state and the token they stop at (the
# idea of lark's match_examples, keyed exactly so one mistake never borrows another's
# message). Each entry: message -> (hint, example programs that make that mistake).
_EXAMPLES = {
    "a variable's domain follows ':'": (
        "write e.g. `latent x[3] : real`",
        ["latent x = real", "observed y[3] = binary", "latent z[2, 2] = spin"]),
    "an energy term is defined with '='": (
        "write `energy name = expression`; ':' is for constraints",
        ["energy e : 1", "energy e[i in 0..3] : 1"]),
    "a constraint's condition follows ':'": (
        "write `constraint name : condition`; '=' is for energies",
        ["constraint c = 1", "constraint c[i in 0..3] = 1"]),
    "a variable needs a domain": (
        "add `: real`, `: binary`, `: spin`, `: categorical(K)` or `: integer in a..b`",
        [f"{role} x{shape}{rest}" for role in ("latent", "observed") for shape in ("", "[3]")
         for rest in ("", "\nenergy e = 1", "\nlatent y : real", "\nobserved y : real",
                      "\nparam p = 1", "\nconst c = 1", "\nconstraint c : 1", "\nmodel M = A",
                      "\nextern g", "\nimport \"a.ebm\" as A")]),
    "a shape goes after the name": (
        "write `latent x[3] : real`",
        ["latent x : real[3]", "latent x : binary [3]", "observed x : spin[2]",
         "latent x : categorical(3)[2]"]),
}


def _state_of(exc: UnexpectedToken):
    """The LALR state number (not the stack depth, which grows with every declaration)."""
    return getattr(exc.state, "position", exc.state)


@functools.cache
def _example_table() -> dict[tuple[int, str], str]:
    """(parser state, token type) -> message, from the examples above."""
    table = {}
    for message, (_, examples) in _EXAMPLES.items():
        for example in examples:
            try:
                _lark().parse(example)
            except UnexpectedToken as exc:
                table.setdefault((_state_of(exc), exc.token.type), message)
    return table


@functools.cache
def _literals() -> dict[str, str]:
    """Terminal name -> its text, for terminals that are fixed strings (`RSQB` -> `]`)."""
    return {t.name: t.pattern.value for t in _lark().terminals if t.pattern.type == "str"}


def _literal(terminal_name: str) -> str:
    return _literals().get(terminal_name, terminal_name)


def _terminal_words(names) -> list[str]:
    """Expected terminals in plain words, with big families folded into one phrase."""
    values = {_literal(n) for n in names}
    words: list[str] = []
    if sum(k in values for k in _STATEMENT_KEYWORDS) >= 4:
        values -= set(_STATEMENT_KEYWORDS)
        words.append("a declaration (const, param, latent, observed, energy, constraint, ...)")
    if {"NAME", "INT", "("} <= values:
        values -= set(_EXPRESSION_STARTS)
        words.append("an expression")
    if sum(op in values for op in _OPERATORS) >= 4:
        values -= set(_OPERATORS)
        words.append("an operator")
    for value in sorted(values, key=lambda v: (v not in _NAMED_TERMINALS, v)):
        words.append(_NAMED_TERMINALS.get(value, f"'{value}'"))
    return words


def _join_words(words: list[str]) -> str:
    if len(words) <= 1:
        return "".join(words)
    return ", ".join(words[:-1]) + " or " + words[-1]


def _describe_token(token: Token) -> str:
    if token.type == "$END":
        return "end of file"
    if token.type == "NAME":
        return f"name '{token}'"
    if token.type in ("INT", "FLOAT"):
        return f"number {token}"
    if token.type == "STRING":
        return f"string {token}"
    if str(token) in KEYWORDS:
        return f"keyword '{token}'"
    return f"'{token}'"


def _tokens_before(text: str, line: int, column: int) -> list[Token]:
    """The tokens that end before (line, column); stops quietly at a lexing error."""
    tokens = []
    try:
        for tok in _lark().lex(text):
            if (tok.line, tok.column) >= (line, column):
                break
            tokens.append(tok)
    except UnexpectedInput:
        pass
    return tokens


def _unclosed_bracket(tokens: list[Token]) -> Token | None:
    stack: list[Token] = []
    for tok in tokens:
        if str(tok) in _CLOSERS and tok.type != "STRING":
            stack.append(tok)
        elif stack and str(tok) == _CLOSERS[str(stack[-1])]:
            stack.pop()
    return stack[-1] if stack else None


def _end_of(token: Token, file: str) -> Span:
    """A one-character span just after `token` (where something is missing)."""
    return Span(file, token.end_line, token.end_column, token.end_line, token.end_column + 1)


def _syntax_error(exc: UnexpectedInput, text: str, file: str) -> EbmError:
    lines = text.splitlines() or [""]
    if isinstance(exc, UnexpectedCharacters):
        span = Span(file, exc.line, exc.column, exc.line, exc.column + 1)
        char = text[exc.pos_in_stream] if 0 <= exc.pos_in_stream < len(text) else "?"
        hint = None
        if char == '"':
            hint = 'strings only appear in `import "file.ebm" as Name`; close the quote on the same line'
        elif char in "{}":
            hint = "model blocks are written `model Name { declarations }`"
        elif char == "'":
            hint = 'file paths are written in double quotes: `import "file.ebm" as Name`'
        expected = _accepted_before(text, exc.pos_in_stream)
        return EbmError(
            f"unexpected character {char!r}", span, source=text,
            expected=_join_words(_terminal_words(expected)) or None, hint=hint,
        )
    if isinstance(exc, UnexpectedEOF):  # not raised by LALR, kept for safety
        span = Span(file, len(lines), len(lines[-1]) + 1, len(lines), len(lines[-1]) + 2)
        return EbmError("unexpected end of file", span, source=text,
                        expected=_join_words(_terminal_words(exc.expected)) or None)
    assert isinstance(exc, UnexpectedToken)
    token = exc.token
    at_end = token.type == "$END"
    previous = (_tokens_before(text, len(lines) + 1, 1) if at_end
                else _tokens_before(text, token.line, token.column))
    if at_end:
        span = _end_of(previous[-1], file) if previous else Span(file, 1, 1, 1, 2)
    else:
        span = Span(file, token.line, token.column, token.end_line, token.end_column)
    accepted = _accepted(exc)
    accepted_literals = {_literal(n) for n in accepted}
    expected = _join_words(_terminal_words(accepted)) or None

    opener = _unclosed_bracket(previous)
    closer = _CLOSERS.get(str(opener)) if opener is not None else None
    if closer is not None and closer in accepted_literals and (
        at_end or str(token) in _STATEMENT_KEYWORDS
        or str(token) in _CLOSERS.values() or token.line > previous[-1].end_line
    ):
        return EbmError(
            f"missing '{closer}'", _end_of(previous[-1], file), source=text, expected=expected,
            notes=[(Span(file, opener.line, opener.column, opener.end_line, opener.end_column),
                    f"the '{opener}' opened here is not closed")],
        )

    label = _example_table().get((_state_of(exc), token.type))
    if label is not None:
        return EbmError(label, span, source=text, expected=expected, hint=_EXAMPLES[label][0])

    hint = None
    if str(token) == "=" and "==" in accepted_literals:
        hint = "compare with '==' ('=' only defines things)"
    elif str(token) == ":" and ".." in accepted_literals:
        hint = "ranges are written `start..stop` (half-open)"
    elif token.type == "NAME" and str(token) in _CODE_WORDS:
        hint = "a .ebm file only declares things; there are no statements or code"
    elif str(token) in KEYWORDS and "NAME" in accepted:
        hint = f"'{token}' is a keyword and cannot be used as a name"
    message = "unexpected end of file" if at_end else f"unexpected {_describe_token(token)}"
    return EbmError(message, span, source=text, expected=expected, hint=hint)


_CODE_WORDS = ("if", "for", "while", "def", "lambda", "return", "let", "var", "class", "print")


def _accepted(exc: UnexpectedToken) -> set[str]:
    """Terminals the parser would really take here (LALR's raw sets over-approximate)."""
    try:
        return set(exc.interactive_parser.accepts())
    except Exception:
        return set(exc.expected)


def _accepted_before(text: str, pos: int) -> set[str]:
    """Terminals acceptable at character offset `pos` (where lexing failed)."""
    try:
        parser = _lark().parse_interactive(text[:pos])
        parser.exhaust_lexer()
        return set(parser.accepts())
    except Exception:
        return set()
