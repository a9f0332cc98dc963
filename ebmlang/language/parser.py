"""Parse `.ebm` source text into the untyped AST (`ebmlang.language.ast.Program`).

The grammar lives in `grammar/ebm.lark` (package `ebmlang.grammar`); it is built
once per process (LALR, basic lexer, positions propagated) and reused. A lark
parse tree is turned into AST nodes by `_AstBuilder` (ast_builder.py), one method per
grammar rule (found by name, as lark does). Every failure -- a bad character, an
unexpected token, an unknown domain -- becomes an `EbmError` located in the source
(the grammar's parsers and the syntax-error messages are in syntax.py).
"""
from __future__ import annotations

from lark import Lark, Tree
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
    deepest = _deepest(tree, file)
    if deepest is not None:
        raise EbmError(f"expression nested more than {MAX_NESTING} levels deep", deepest, source=text,
                       hint="split it into several energy terms or consts")
    try:
        return _AstBuilder(text, file).transform(tree)
    except VisitError as exc:
        if isinstance(exc.orig_exc, EbmError):
            raise exc.orig_exc.with_source(text) from None
        if isinstance(exc.orig_exc, RecursionError):
            raise _too_deep(text, file) from None
        raise
    except RecursionError:
        raise _too_deep(text, file) from None


# Later stages walk expressions recursively; real models nest a few dozen levels.
MAX_NESTING = 200


def _deepest(tree, file: str) -> Span | None:
    """The span of a node nested more than MAX_NESTING levels deep in the parse tree, or
    None (an explicit stack: the tree may be deeper than Python's recursion limit)."""
    stack = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        if not isinstance(node, Tree):
            continue
        if depth > MAX_NESTING:
            meta = node.meta
            if getattr(meta, "empty", True):
                return Span(file, 1, 1, 1, 2)
            return Span(file, meta.line, meta.column, meta.line, meta.column + 1)
        stack.extend((child, depth + 1) for child in node.children)
    return None


def _too_deep(text: str, file: str) -> EbmError:
    return EbmError("expression nested too deeply", Span(file, 1, 1, 1, 2), source=text,
                    hint="split it into several energy terms")
