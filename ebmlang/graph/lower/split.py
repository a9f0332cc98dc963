"""Additive splitting: a term's body becomes a list of parts, one template each.

Works on the typed AST before lowering: sums and differences split, products and
scalings distribute over them, a top-level `sum(...)` is promoted to extra ground
indices, and a constraint splits at its `and`s.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from ebmlang.errors import Span
from ebmlang.language import ast

# A body splits into at most this many additive parts; beyond it the term stays whole.
MAX_ADDITIVE_PARTS = 16


@dataclass(frozen=True)
class _Part:
    """One additive part of a body: `expr` summed over the extra index sets `promoted`."""

    expr: ast.Expr
    promoted: tuple[ast.IndexSet, ...] = ()


class _Splitter:
    """Splits a body into additive parts; None when it would exceed the cap."""

    def __init__(self, mentions_variables: Callable[[ast.Expr], bool], cap: int = MAX_ADDITIVE_PARTS):
        self.mentions_variables = mentions_variables
        self.cap = cap
        self.fresh = 0

    def split(self, expr: ast.Expr) -> list[_Part] | None:
        parts = self._split(expr)
        return parts if parts is not None and len(parts) <= self.cap else None

    def _split(self, expr: ast.Expr) -> list[_Part] | None:
        if not self.mentions_variables(expr):
            return [_Part(expr)]  # a compile-time or params-only factor: no reason to split it
        if isinstance(expr, ast.Binary) and expr.op in ("+", "-"):
            left, right = self._split(expr.left), self._split(expr.right)
            if left is None or right is None or len(left) + len(right) > self.cap:
                return None
            if expr.op == "-":
                right = [self._negate(p, expr.span) for p in right]
            return left + right
        if isinstance(expr, ast.Unary) and expr.op in ("-", "+"):
            parts = self._split(expr.operand)
            if parts is None or expr.op == "+":
                return parts
            return [self._negate(p, expr.span) for p in parts]
        if isinstance(expr, ast.Binary) and expr.op == "*":
            left, right = self._split(expr.left), self._split(expr.right)
            if left is None or right is None or len(left) * len(right) > self.cap:
                return None
            return [self._product(lp, rp, expr) for lp in left for rp in right]
        if isinstance(expr, ast.Binary) and expr.op == "/" and not self.mentions_variables(expr.right):
            left = self._split(expr.left)
            if left is None:
                return None
            return [_Part(dataclasses.replace(expr, left=p.expr), p.promoted) for p in left]
        if isinstance(expr, ast.Reduce) and expr.op == "sum" and self.mentions_variables(expr.body):
            body = self._split(expr.body)
            if body is None:
                return None
            return [_Part(p.expr, (expr.index_set,) + p.promoted) for p in body]
        return [_Part(expr)]

    @staticmethod
    def _negate(part: _Part, span: Span) -> _Part:
        if isinstance(part.expr, ast.Unary) and part.expr.op == "-":
            return _Part(part.expr.operand, part.promoted)
        return _Part(ast.Unary(span, "-", part.expr, ty=getattr(part.expr, "ty", None)), part.promoted)

    def _product(self, left: _Part, right: _Part, expr: ast.Binary) -> _Part:
        # Two promoted sums may bind the same index name (`sum(i) a[i] * sum(i) b[i]`):
        # the right one's is renamed to a fresh name that no source program can spell.
        taken = {b.name for s in left.promoted for b in s.bindings}
        right_expr, right_sets = right.expr, right.promoted
        for name in [b.name for s in right.promoted for b in s.bindings if b.name in taken]:
            self.fresh += 1
            fresh = f"{name}#{self.fresh}"
            right_expr = _rename_index(right_expr, name, fresh)
            right_sets = tuple(_rename_index(s, name, fresh) for s in right_sets)
        product = dataclasses.replace(expr, left=left.expr, right=right_expr)
        return _Part(product, left.promoted + right_sets)


def _split_conjunction(condition: ast.Expr, cap: int = MAX_ADDITIVE_PARTS) -> list[_Part]:
    """`a and b` -> [a, b]: a constraint is violated when any conjunct is."""
    parts: list[ast.Expr] = []

    def visit(expr: ast.Expr) -> None:
        if isinstance(expr, ast.Binary) and expr.op == "and":
            visit(expr.left)
            visit(expr.right)
        elif isinstance(expr, ast.Indicator):
            visit(expr.condition)
        else:
            parts.append(expr)

    visit(condition)
    return [_Part(p) for p in parts] if len(parts) <= cap else [_Part(condition)]


def _rename_index(node, old: str, new: str):
    """A copy of an AST subtree with index name `old` renamed to `new`."""
    if isinstance(node, ast.Name):
        return dataclasses.replace(node, name=new) if node.name == old else node
    if isinstance(node, ast.Binding):
        renamed = dataclasses.replace(node, start=_rename_index(node.start, old, new),
                                      stop=_rename_index(node.stop, old, new))
        return dataclasses.replace(renamed, name=new) if node.name == old else renamed
    if not dataclasses.is_dataclass(node) or isinstance(node, (ast.Span, ast.Type)):
        return node
    changes = {}
    for f in dataclasses.fields(node):
        if f.name in ("span", "ty", "func_span"):
            continue
        value = getattr(node, f.name)
        if isinstance(value, tuple):
            changes[f.name] = tuple(_rename_index(v, old, new) for v in value)
        elif dataclasses.is_dataclass(value):
            changes[f.name] = _rename_index(value, old, new)
    return dataclasses.replace(node, **changes) if changes else node
