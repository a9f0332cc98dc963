"""Programs and composites: lowering models by name, and products of experts.

A composite (`model C = A * B`, `A ^ w`, renames, `| y`) lowers each expert as a
plain model and combines them with `ebmlang.graph.compose`; this piece never sees
a term, only model expressions and their weights.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from ebmlang.budget import Budget
from ebmlang.errors import EbmError, Span, did_you_mean
from ebmlang.graph import ir
from ebmlang.graph.compose import compose, observe, rename
from ebmlang.graph.lower.model import lower_model
from ebmlang.graph.lower.static import evaluate_constant
from ebmlang.language import ast
from ebmlang.language.builtin_names import BUILTIN_CONSTANTS

# Bytes one energy template costs beyond its index arrays (its expression tree and plans).
TEMPLATE_OVERHEAD = 16 * 2 ** 10


class _ProgramLowerer:
    """Lowers models by name, each once; composites recurse into their experts."""

    def __init__(self, checked: ast.CheckedProgram, budget: Budget):
        self.checked = checked
        self.budget = budget
        self.done: dict[str, ir.FactorGraph] = {}
        self.in_progress: list[str] = []

    def lower(self, name: str, span: Span | None) -> ir.FactorGraph:
        if name in self.done:
            return self.done[name]
        models = self.checked.models
        if name not in models:
            raise EbmError(
                f"no model named '{name}'", span, source=self.checked.source,
                expected="one of: " + ", ".join(sorted(models)) if models else "a model",
                hint=did_you_mean(name, models),
            )
        if name in self.in_progress:
            cycle = " -> ".join(self.in_progress + [name])
            raise EbmError(f"model definitions form a cycle: {cycle}", span, source=self.checked.source)
        self.in_progress.append(name)
        try:
            entry = models[name]
            if isinstance(entry, ast.CheckedComposite):
                graph = self._lower_composite(entry)
            else:
                graph = lower_model(entry, self.budget)
        finally:
            self.in_progress.pop()
        self.done[name] = graph
        return graph

    # -- composites
    def _source_of(self, file: str) -> str:
        if file == self.checked.file:
            return self.checked.source
        for entry in self.checked.models.values():
            if isinstance(entry, ast.CheckedModel) and entry.file == file:
                return entry.source
        return ""

    def _lower_composite(self, composite: ast.CheckedComposite) -> ir.FactorGraph:
        source = self._source_of(composite.span.file)
        graph = self._lower_model_expr(composite.expr, composite, source, top_name=composite.name)
        return dataclasses.replace(graph, name=composite.name, file=composite.span.file, source=source)

    def _lower_model_expr(
        self, expr: ast.ModelExpr, composite: ast.CheckedComposite, source: str, top_name: str
    ) -> ir.FactorGraph:
        if isinstance(expr, ast.ModelObserve):
            # `(A * B) | y` observes a variable of the product; no extra expert level
            base = self._lower_model_expr(expr.base, composite, source, top_name)
            return observe(base, expr.names, span=expr.span, source=source)
        experts = _flatten_product(expr, composite, source)
        lowered: list[tuple[str, ir.FactorGraph, float | str]] = []
        used: dict[str, int] = {}
        size = 0.0
        for leaf, label, weight in experts:
            graph = self._lower_leaf(leaf, composite, source)
            used[label] = used.get(label, 0) + 1
            unique = label if used[label] == 1 else f"{label}_{used[label]}"
            lowered.append((unique, graph, weight))
            # A product copies every expert's factors: nested products of products grow
            # exponentially in a few lines of source, so the copies are priced first.
            size += sum(t.index_values.nbytes + TEMPLATE_OVERHEAD for t in graph.templates)
            self.budget.check(size, f"model '{top_name}', a product of {len(lowered)} experts with "
                              f"{sum(len(g.templates) for _, g, _ in lowered):,} energy templates,",
                              expr.span, source)
        return compose(lowered, top_name, span=expr.span, source=source)

    def _lower_leaf(self, leaf: ast.ModelExpr, composite: ast.CheckedComposite, source: str) -> ir.FactorGraph:
        if isinstance(leaf, ast.ModelRef):
            return self.lower(leaf.name, leaf.span)
        if isinstance(leaf, ast.ModelRename):
            base = self._lower_leaf(leaf.base, composite, source)
            return rename(base, dict(leaf.renames), span=leaf.span, source=source)
        if isinstance(leaf, ast.ModelObserve):
            base = self._lower_leaf(leaf.base, composite, source)
            return observe(base, leaf.names, span=leaf.span, source=source)
        # a parenthesised product or power used under a rename/observe
        return self._lower_model_expr(leaf, composite, source, top_name=_model_label(leaf))


def _model_label(expr: ast.ModelExpr) -> str:
    """The expert name of a model expression: the model it refers to, through renames/observes."""
    if isinstance(expr, ast.ModelRef):
        return expr.name
    if isinstance(expr, (ast.ModelRename, ast.ModelObserve, ast.ModelPower)):
        return _model_label(expr.base)
    if isinstance(expr, ast.ModelProduct):
        return "_".join(_model_label(f) for f in expr.factors)
    return "expert"


def _flatten_product(
    expr: ast.ModelExpr, composite: ast.CheckedComposite, source: str
) -> list[tuple[ast.ModelExpr, str, float | str]]:
    """`(A * B) ^ 2 * C ^ w` -> [(A, 2.0), (B, 2.0), (C, "w")]: weights distribute over products."""

    def visit(node: ast.ModelExpr, scale: float, learnable: str | None):
        if isinstance(node, ast.ModelProduct):
            for factor in node.factors:
                yield from visit(factor, scale, learnable)
            return
        if isinstance(node, ast.ModelPower):
            weight = _model_weight(node.weight, composite, source)
            if isinstance(weight, str):
                if learnable is not None or scale != 1.0:
                    raise EbmError(
                        "an expert can carry one weight: a number or a single learnable param",
                        node.span, source=source,
                        hint=f"fold the numbers into the initial value of '{weight}'",
                    )
                yield from visit(node.base, scale, weight)
            else:
                if learnable is not None:
                    raise EbmError(
                        "an expert can carry one weight: a number or a single learnable param",
                        node.span, source=source,
                        hint=f"fold the number into the initial value of '{learnable}'",
                    )
                yield from visit(node.base, scale * weight, learnable)
            return
        yield node, _model_label(node), (learnable if learnable is not None else scale)

    return list(visit(expr, 1.0, None))


def _model_weight(expr: ast.Expr, composite: ast.CheckedComposite, source: str) -> float | str:
    """A number (or const) is a fixed weight; any other name is a learnable weight param."""
    if isinstance(expr, ast.Name) and expr.name not in composite.consts and expr.name not in BUILTIN_CONSTANTS:
        return expr.name
    try:
        value = evaluate_constant(expr, composite.consts)
    except EbmError as err:
        raise err.with_source(source)
    array = np.asarray(value, dtype=float)
    if array.shape != ():
        raise EbmError("an expert's weight must be a scalar", expr.span, source=source)
    return float(array)
