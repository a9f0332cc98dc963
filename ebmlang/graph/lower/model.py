"""Plain models: `_ModelLowerer` lowers one checked model to a factor graph.

It combines the mixins that each hold one concern (declarations, index sets,
expressions, calls) and keeps the model's own steps here: collecting the
declarations and turning each energy or constraint into factor templates.
"""
from __future__ import annotations

import numpy as np

from ebmlang.budget import Budget
from ebmlang.errors import EbmError, Span
from ebmlang.graph import ir
from ebmlang.graph.lower.calls import _CallLowerer
from ebmlang.graph.lower.declarations import _DeclarationLowerer
from ebmlang.graph.lower.expressions import _ExpressionLowerer
from ebmlang.graph.lower.index_sets import _IndexSetLowerer
from ebmlang.graph.lower.scope import _ROOT_SCOPE, _walk_ast
from ebmlang.graph.lower.selection import _SelectionLowerer
from ebmlang.graph.lower.split import _Part, _split_conjunction, _Splitter
from ebmlang.language import ast


def lower_model(model: ast.CheckedModel, budget: Budget | None = None) -> ir.FactorGraph:
    """Lower one plain (non-composite) checked model within `budget` (default: the default budget)."""
    return _ModelLowerer(model, budget or Budget()).lower()


class _ModelLowerer(_DeclarationLowerer, _IndexSetLowerer, _ExpressionLowerer, _CallLowerer, _SelectionLowerer):
    """Lowers one CheckedModel. Expression handlers are found by node class name
    (`lower_Binary`, ...); anything else goes to `unsupported`."""

    def __init__(self, model: ast.CheckedModel, budget: Budget):
        self.model = model
        self.budget = budget
        self.index_elements = 0.0  # the index tuples of every term lowered so far
        self.consts = dict(model.consts)
        self.variables: dict[str, ir.VariableGroup] = {}
        self.params: dict[str, ir.ParamGroup] = {}
        self.externs: set[str] = set()

    # -- errors
    def error(self, message: str, span: Span | None, **kwargs) -> EbmError:
        return EbmError(message, span, source=self.model.source, **kwargs)

    def spend(self, elements: float, what: str, span: Span | None, bytes_per_element: int = 8) -> None:
        """Refuse, located at `span`, a structure of `elements` numbers over the budget."""
        self.budget.check(float(elements) * bytes_per_element, what, span, self.model.source)

    # -- the model
    def lower(self) -> ir.FactorGraph:
        terms_decls = []
        for decl in self.model.decls:
            if isinstance(decl, ast.VarDecl):
                self.variables[decl.name] = self.lower_variable(decl)
            elif isinstance(decl, ast.ParamDecl):
                self.params[decl.name] = self.lower_param(decl)
            elif isinstance(decl, ast.ExternDecl) and decl.network is not None:
                self.params[decl.name] = self.lower_network(decl)
            elif isinstance(decl, ast.ExternDecl):
                self.externs.add(decl.name)
            elif isinstance(decl, (ast.EnergyDecl, ast.ConstraintDecl)):
                terms_decls.append(decl)
        templates: list[ir.FactorTemplate] = []
        for decl in terms_decls:
            templates.extend(self.lower_term(decl))
        # A network a model block sees but never calls (declared at the top of the file) is not its param.
        called = {name for t in templates for name in t.param_names}
        params = {k: p for k, p in self.params.items() if not p.is_network or k in called}
        return ir.FactorGraph(
            name=self.model.name,
            variables=dict(self.variables),
            params=params,
            templates=tuple(templates),
            terms=tuple(d.name for d in terms_decls),
            externs=frozenset(self.externs),
            file=self.model.file,
            source=self.model.source,
        )

    # -- terms
    def mentions_variables(self, expr: ast.Expr) -> bool:
        return any(isinstance(n, ast.Name) and n.name in self.variables for n in _walk_ast(expr))

    def lower_term(self, decl: ast.EnergyDecl | ast.ConstraintDecl) -> list[ir.FactorTemplate]:
        is_constraint = isinstance(decl, ast.ConstraintDecl)
        body = decl.condition if is_constraint else decl.body
        if is_constraint:
            parts = _split_conjunction(body)
        else:
            parts = _Splitter(self.mentions_variables).split(body) or [_Part(body)]
        self.check_term_size(decl, body)
        scope, num_ground, names = _ROOT_SCOPE, 1, []
        if decl.index_set is not None:
            scope, num_ground = self.promote(decl.index_set, scope, num_ground)
            names = [b.name for b in decl.index_set.bindings]
        templates = []
        for k, part in enumerate(parts):
            part_scope, part_ground, part_names = scope, num_ground, list(names)
            for index_set in part.promoted:
                part_scope, part_ground = self.promote(index_set, part_scope, part_ground)
                part_names += [b.name for b in index_set.bindings]
            if part_ground == 0:
                continue  # an empty index set: the part contributes nothing
            node = self.as_node(self.lower_expr(part.expr, part_scope), part.expr.span)
            if is_constraint:
                node = ir.Apply(part.expr.span, "violation", (node,))
            index_values = (
                np.stack([np.broadcast_to(part_scope.indices[n], (part_ground,)) for n in part_names], axis=1)
                if part_names else np.zeros((part_ground, 0), dtype=np.int64)
            )
            templates.append(ir.FactorTemplate(
                name=decl.name if len(parts) == 1 else f"{decl.name}#{k}",
                term=decl.name,
                body=node,
                num_ground=int(part_ground),
                index_names=tuple(part_names),
                index_values=ir.compact_index(index_values, smallest=np.int16),
                is_constraint=is_constraint,
                span=decl.span if len(parts) == 1 else part.expr.span,
            ))
        return templates
