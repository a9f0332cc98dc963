"""Index bounds of a term, checked over every index tuple before lowering.

A term's index set and each reduction's are enumerated with numpy (consteval.py), so
an out-of-range index such as `x[i + 1]` at the last `i` is reported with the index
values where it happens. Index sets too large to enumerate, or whose bounds cannot be
evaluated here, are left to lowering, which checks every size.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from ebmlang.errors import EbmError
from ebmlang.language import ast
from ebmlang.language.check_expr import Scope
from ebmlang.language.consteval import Evaluator, IndexSetTooLarge, describe_expr


class IndexBounds:
    """Checks that every variable/param/const index a term computes stays in range.

    The term's index set (and each reduction's) is enumerated with numpy, so a
    `where` filter or a modulo is taken exactly into account. Index sets larger than
    `max_ground` tuples are left to lowering.
    """

    def __init__(self, scope: Scope, max_ground: int):
        self.scope = scope
        self.max_ground = max_ground

    def check_term(self, decl) -> None:
        body = decl.body if isinstance(decl, ast.EnergyDecl) else decl.condition
        try:
            with np.errstate(all="ignore"):
                evaluator = Evaluator(self.scope.consts, {}, self.max_ground)
                mask = np.ones((), dtype=bool)
                if decl.index_set is not None:
                    mask = evaluator.bind(decl.index_set, base_ndim=0)
                self.visit(body, evaluator, mask)
        except (IndexSetTooLarge, _Unchecked):
            return

    def visit(self, expr: ast.Expr, evaluator: Evaluator, mask: np.ndarray) -> None:
        if isinstance(expr, ast.Reduce):
            inner = evaluator.nested()
            try:
                bound = inner.bind(expr.index_set, base_ndim=max(evaluator.index_ndim(), mask.ndim))
            except EbmError:
                raise _Unchecked() from None
            # the enclosing mask gains the reduction's trailing axes
            outer = mask.reshape(mask.shape + (1,) * (bound.ndim - mask.ndim))
            self.visit(expr.body, inner, outer & bound)
            return
        for child in _children(expr):
            self.visit(child, evaluator, mask)
        if isinstance(expr, ast.Index) and isinstance(expr.base, ast.Name):
            symbol = self.scope.symbols.get(expr.base.name)
            if symbol is not None and symbol.kind in ("variable", "param", "const"):
                shape = np.shape(symbol.value) if symbol.kind == "const" else symbol.shape
                for axis, index in enumerate(expr.indices):
                    self.check_index(index, shape[axis], axis, symbol, evaluator, mask)
        elif isinstance(expr, ast.Index) and expr.base.ty is not None and expr.base.ty.kind == "vector":
            index = expr.indices[0]
            if index.ty is not None and index.ty.kind == "index":
                self.check_index(index, expr.base.ty.size, 0, None, evaluator, mask, vector=expr.base)

    def check_index(self, index, size, axis, symbol, evaluator, mask, vector=None) -> None:
        try:
            values = np.asarray(evaluator.value_of(index))
        except EbmError:
            raise _Unchecked() from None
        if values.dtype.kind not in "iu":
            return
        shape = np.broadcast_shapes(values.shape, mask.shape)
        values, valid = np.broadcast_to(values, shape), np.broadcast_to(mask, shape)
        bad = valid & ((values < 0) | (values >= size))
        if not np.any(bad):
            return
        position = tuple(int(p[0]) for p in np.nonzero(bad))
        where = []
        for name, array in evaluator.indices.items():
            array = np.broadcast_to(array, shape)
            where.append(f"{name} = {int(array[position])}")
        what = symbol.describe() if symbol is not None else describe_expr(vector)
        value = int(values[position])
        raise EbmError(
            f"index {value} is out of range for dimension {axis + 1} of {what} (size {size})"
            + (f" when {', '.join(where)}" if where else ""), index.span,
            expected=f"indices in 0..{size} for every index tuple of the term",
            hint="narrow the range (e.g. 0..N-1) or wrap around with % N")


class _Unchecked(Exception):
    """An index set the checker cannot enumerate exactly; lowering checks it."""


def _children(expr: ast.Expr) -> list[ast.Expr]:
    found = []
    for f in dataclasses.fields(expr):
        if f.name in ("span", "ty", "func_span", "index_set"):
            continue
        value = getattr(expr, f.name)
        for item in value if isinstance(value, tuple) else (value,):
            if isinstance(item, ast.Expr):
                found.append(item)
    return found
