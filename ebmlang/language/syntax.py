"""The `.ebm` grammar as lark parsers, built once, and syntax errors in plain words.

Grammar loading and the friendly parse-error messages share a module because the
messages are computed by the parser itself: the example table re-parses known
mistakes, and the expected-token lists come from re-lexing and interactive parsing.
`parser.py` calls `_lark()` / `_expression_lark()` and turns every lark
`UnexpectedInput` into an `EbmError` through `_syntax_error`.
"""
from __future__ import annotations

import functools
import importlib.resources

from lark import Lark, Token
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from ebmlang.errors import EbmError
from ebmlang.language.ast import Span

# Words the lexer always reads as keywords; they cannot name anything.
KEYWORDS = (
    "const", "param", "latent", "observed", "energy", "constraint", "extern", "import",
    "as", "model", "in", "where", "and", "or", "not",
    "sum", "prod", "mean", "logsumexp", "min", "max",
)


@functools.cache
def _grammar_text() -> str:
    return importlib.resources.files("ebmlang.grammar").joinpath("ebm.lark").read_text("utf-8")


@functools.cache
def _lark(start: str = "start") -> Lark:
    """The parser for the grammar rule `start`, built once: building the LALR tables is
    the slow part."""
    return Lark(
        _grammar_text(),
        parser="lalr",
        lexer="basic",
        propagate_positions=True,
        maybe_placeholders=True,
        start=start,
    )


def _expression_lark() -> Lark:
    return _lark("expr")


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
