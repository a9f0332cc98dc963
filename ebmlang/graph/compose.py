"""Products of experts at the IR level: energies add, variables unify by name.

`compose` is what `model C = A * B` lowers to and what the Python API's `a * b`
calls. Each expert keeps its own parameters and terms under its name
(`Prior.beta`, template `Prior.data`), while a variable of the same name,
shape and domain in several experts is one variable of the product.

Weights: a number `w` multiplies every (non-constraint) template body of its
expert; a learnable weight is a scalar param named as written (`A ^ w` -> param
`w`, NOT namespaced, so experts written with the same name share one weight),
initialised to 1.0. Constraint templates are never weighted: +inf stays +inf.

`rename` and `observe` are the other model operations (`A[x -> y]`, `C | y`).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from ebmlang.errors import EbmError, did_you_mean
from ebmlang.graph import ir
from ebmlang.language.ast import Span

Weight = float | str


def map_nodes(node: ir.Node, fn: Callable[[ir.Node], ir.Node]) -> ir.Node:
    """Rebuild a node tree bottom-up, replacing each node by `fn(node)` (children first)."""
    changes = {}
    for f in dataclasses.fields(node):
        value = getattr(node, f.name)
        if isinstance(value, ir.Node):
            changes[f.name] = map_nodes(value, fn)
        elif isinstance(value, tuple) and value and all(isinstance(v, ir.Node) for v in value):
            changes[f.name] = tuple(map_nodes(v, fn) for v in value)
    rebuilt = dataclasses.replace(node, **changes) if changes else node
    return fn(rebuilt)


def _rename_refs(node: ir.Node, variables: Mapping[str, str], params: Mapping[str, str]) -> ir.Node:
    def rename_one(n: ir.Node) -> ir.Node:
        if isinstance(n, ir.Slot) and n.group in variables:
            return dataclasses.replace(n, group=variables[n.group])
        if isinstance(n, (ir.ParamRef, ir.Neural)) and n.param in params:
            return dataclasses.replace(n, param=params[n.param])
        return n

    if not variables and not params:
        return node
    return map_nodes(node, rename_one)


def _weigh(body: ir.Node, weight: Weight, span: Span) -> ir.Node:
    if isinstance(weight, str):
        return ir.Apply(span, "mul", (ir.ParamRef(span, weight, None), body))
    if weight == 1.0:
        return body
    return ir.Apply(span, "mul", (ir.Constant(span, float(weight)), body))


def _describe(group: ir.VariableGroup) -> str:
    shape = f"[{', '.join(str(n) for n in group.shape)}]" if group.shape else ""
    return f"{group.domain}{shape}"


def compose(
    experts: Sequence[tuple[str, ir.FactorGraph, Weight]],
    name: str,
    *,
    span: Span | None = None,
    source: str | None = None,
) -> ir.FactorGraph:
    """The product of experts: one graph whose energy is sum_k weight_k * E_k.

    experts: (expert name, graph, weight) with weight a float or the name of a
    learnable scalar weight param (shared by experts naming the same param).
    Variables unify by name (same shape and domain required; observed if any
    expert observes it); params, templates and terms are prefixed `Expert.`.
    """
    names = [e[0] for e in experts]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise EbmError(f"two experts are both named '{duplicates[0]}'", span, source=source,
                       hint="give each expert a distinct name")
    variables: dict[str, ir.VariableGroup] = {}
    owner: dict[str, str] = {}
    params: dict[str, ir.ParamGroup] = {}
    templates: list[ir.FactorTemplate] = []
    terms: list[str] = []
    externs: set[str] = set()
    infos: list[ir.ExpertInfo] = []
    for expert, graph, weight in experts:
        for var in graph.variables.values():
            if var.name not in variables:
                variables[var.name] = var
                owner[var.name] = expert
                continue
            first = variables[var.name]
            if first.shape != var.shape or first.domain != var.domain:
                raise EbmError(
                    f"variable '{var.name}' is {_describe(first)} in {owner[var.name]} "
                    f"but {_describe(var)} in {expert}",
                    var.span, source=graph.source if var.span.file == graph.file else source,
                    expected="the same shape and domain in every expert that shares it",
                    hint=f"rename one of them, e.g. {expert}[{var.name} -> {var.name}2]",
                    notes=[(first.span, f"'{var.name}' declared here in {owner[var.name]}")],
                )
            if var.observed and not first.observed:
                variables[var.name] = dataclasses.replace(first, observed=True)
        param_map = {p: f"{expert}.{p}" for p in graph.params}
        for p, group in graph.params.items():
            params[param_map[p]] = dataclasses.replace(group, name=param_map[p])
        if isinstance(weight, str):
            _add_weight_param(params, weight, span)
        for t in graph.templates:
            body = _rename_refs(t.body, {}, param_map)
            if not t.is_constraint:
                body = _weigh(body, weight, t.span)
            templates.append(dataclasses.replace(
                t, name=f"{expert}.{t.name}", term=f"{expert}.{t.term}", body=body,
                expert=f"{expert}.{t.expert}" if t.expert else expert,
            ))
        terms.extend(f"{expert}.{term}" for term in graph.terms)
        externs |= set(graph.externs)
        infos.append(ir.ExpertInfo(expert, weight if isinstance(weight, str) else float(weight), graph.file))
    return ir.FactorGraph(
        name=name, variables=variables, params=params, templates=tuple(templates), terms=tuple(terms),
        externs=frozenset(externs), file=span.file if span is not None else "<composite>",
        source=source or "", experts=tuple(infos),
    )


def _add_weight_param(params: dict[str, ir.ParamGroup], weight: str, span: Span | None) -> None:
    existing = params.get(weight)
    if existing is None:
        params[weight] = ir.ParamGroup(
            weight, (), ir.ParamInit("value", value=np.array(1.0)), span or ir.UNKNOWN_SPAN)
    elif existing.shape != () or existing.is_neural:
        raise EbmError(f"the weight '{weight}' clashes with a param of shape {list(existing.shape)}", span,
                       expected="a scalar weight")


def rename(
    graph: ir.FactorGraph, mapping: Mapping[str, str], *, span: Span | None = None, source: str | None = None
) -> ir.FactorGraph:
    """`A[x -> y]`: rename variables and/or params (all at once, so swaps work)."""
    known = list(graph.variables) + list(graph.params)
    for old in mapping:
        if old not in graph.variables and old not in graph.params:
            raise EbmError(f"cannot rename '{old}': {graph.name} has no variable or param of that name",
                           span, source=source, hint=did_you_mean(old, known))
    var_map = {o: n for o, n in mapping.items() if o in graph.variables}
    param_map = {o: n for o, n in mapping.items() if o in graph.params}
    renamed = [var_map.get(v, v) for v in graph.variables] + [param_map.get(p, p) for p in graph.params]
    clashes = sorted({n for n in renamed if renamed.count(n) > 1})
    if clashes:
        raise EbmError(f"renaming gives two things the name '{clashes[0]}' in {graph.name}", span,
                       source=source, hint="rename to a name the model does not use yet")
    new_vars = {var_map.get(v, v): dataclasses.replace(g, name=var_map.get(v, v)) for v, g in graph.variables.items()}
    new_params = {param_map.get(p, p): dataclasses.replace(g, name=param_map.get(p, p))
                  for p, g in graph.params.items()}
    templates = tuple(dataclasses.replace(t, body=_rename_refs(t.body, var_map, param_map))
                      for t in graph.templates)
    return dataclasses.replace(graph, variables=new_vars, params=new_params, templates=templates)


def observe(
    graph: ir.FactorGraph, names: Sequence[str], *, span: Span | None = None, source: str | None = None
) -> ir.FactorGraph:
    """`C | y, z`: mark variables observed."""
    return _set_observed(graph, names, True, span, source)


def latent(graph: ir.FactorGraph, names: Sequence[str]) -> ir.FactorGraph:
    """The inverse of `observe`: mark variables latent (e.g. an RBM's visible units, to
    sample images instead of conditioning on them)."""
    return _set_observed(graph, names, False, None, None)


def _set_observed(graph: ir.FactorGraph, names: Sequence[str], observed: bool, span: Span | None,
                  source: str | None) -> ir.FactorGraph:
    verb = "observe" if observed else "make latent"
    variables = dict(graph.variables)
    for name in names:
        if name in graph.params:
            raise EbmError(f"'{name}' is a param, not a variable; cannot {verb} it", span,
                           source=source, hint="params are learned, or set from Python")
        if name not in variables:
            raise EbmError(f"cannot {verb} '{name}': {graph.name} has no variable of that name", span,
                           source=source, hint=did_you_mean(name, variables))
        variables[name] = dataclasses.replace(variables[name], observed=observed)
    return dataclasses.replace(graph, variables=variables)
