"""Parse `.ebm` source text into the untyped AST (`ebmlang.language.ast.Program`).

The grammar lives in `grammar/ebm.lark` (package `ebmlang.grammar`); it is built
once per process (LALR, basic lexer, positions propagated) and reused. A lark
parse tree is turned into AST nodes by `_AstBuilder` (ast_builder.py), one method per
grammar rule (found by name, as lark does). Every failure -- a bad character, an
unexpected token, an unknown domain -- becomes an `EbmError` located in the source
(the grammar's parsers and the syntax-error messages are in syntax.py).
"""
from __future__ import annotations

from lark import Lark
from lark.exceptions import UnexpectedInput, VisitError

from ebmlang.errors import EbmError
from ebmlang.language import ast
from ebmlang.language.ast import Span
from ebmlang.language.ast_builder import DOMAIN_NAMES, _AstBuilder
from ebmlang.language.syntax import KEYWORDS, _expression_lark, _lark, _syntax_error

__all__ = ["parse_source", "parse_expression", "KEYWORDS", "DOMAIN_NAMES"]


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
