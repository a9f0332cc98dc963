"""Composition: composite models (`model C = A * B ^ w | y`), imported models' names,
and what a model offers to the outside (`model_interface`).

A composite is checked against its experts' interfaces: variables with one name are
unified and must agree in shape and domain, params and terms take the expert's name
(`A.w`), renames (`A[x -> x2]`) and observes (`| y`) must name what exists, and each
weight is a number, a const expression or one learnable name. An imported file's models
join the importing file under its alias (`Alias`, `Alias.Name`). Loading and checking
the imported file itself is the orchestrator's job (checker.py).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from ebmlang.errors import EbmError, did_you_mean
from ebmlang.language import ast, domains
from ebmlang.language.ast import Span
from ebmlang.language.builtin_names import BUILTIN_CONSTANTS
from ebmlang.language.check_expr import T_REAL, folded_number, walk_expr
from ebmlang.language.consteval import Evaluator, IndexSetTooLarge, to_python


def _model_ref_nodes(expr: ast.ModelExpr) -> list[ast.ModelRef]:
    if isinstance(expr, ast.ModelRef):
        return [expr]
    if isinstance(expr, ast.ModelProduct):
        return [r for f in expr.factors for r in _model_ref_nodes(f)]
    return _model_ref_nodes(expr.base)


def model_refs(expr: ast.ModelExpr) -> set[str]:
    """The names of the models a model expression uses."""
    return {r.name for r in _model_ref_nodes(expr)}


def aliased_models(imported: ast.CheckedProgram, top_key: str | None, alias: str) -> dict:
    """`Alias` for the imported file's default model, `Alias.Name` for its named models."""
    rename = {key: f"{alias}.{key}" for key in imported.models}
    if top_key is not None and top_key == imported.default:
        rename[top_key] = alias
    out = {rename[key]: _rekey(model, rename[key], rename) for key, model in imported.models.items()}
    if rename[imported.default] != alias:
        out[alias] = _rekey(imported.models[imported.default], alias, rename)
    return out


def _rekey(model, new_key: str, rename: dict[str, str]):
    if isinstance(model, ast.CheckedModel):
        return dataclasses.replace(model, name=new_key)
    return dataclasses.replace(model, name=new_key, expr=_rename_refs(model.expr, rename))


def _rename_refs(expr: ast.ModelExpr, rename: dict[str, str]) -> ast.ModelExpr:
    if isinstance(expr, ast.ModelRef):
        return dataclasses.replace(expr, name=rename.get(expr.name, expr.name))
    if isinstance(expr, ast.ModelProduct):
        return dataclasses.replace(expr, factors=tuple(_rename_refs(f, rename) for f in expr.factors))
    return dataclasses.replace(expr, base=_rename_refs(expr.base, rename))


@dataclass(frozen=True)
class VariableInfo:
    """A variable group as a model presents it to the outside."""

    shape: tuple[int, ...]
    domain: domains.Domain
    observed: bool
    span: Span


@dataclass(frozen=True)
class ModelInterface:
    """What a (possibly composite) model offers: its variables, params and terms."""

    variables: dict[str, VariableInfo]
    params: dict[str, Span]
    terms: tuple[str, ...] = ()


def model_interface(program: ast.CheckedProgram, name: str | None = None) -> ModelInterface:
    """The variables (after renames/observes), params and terms of one checked model.

    `name` defaults to the program's default model. A composite names its params and
    terms after the expert they come from (`Prior.beta`, `Prior.right`), as composition
    does; a learnable expert weight (`A ^ w`) is the plain param `w`.
    """
    return _model_signature(program.default if name is None else name, program.models, {})


def _model_signature(key: str, models: dict, memo: dict) -> ModelInterface:
    if key in memo:
        return memo[key]
    model = models[key]
    if isinstance(model, ast.CheckedComposite):
        signature = _top_signature(model.expr, models, memo)
    else:
        variables, params, terms = {}, {}, []
        for decl in model.decls:
            if isinstance(decl, ast.VarDecl):
                variables[decl.name] = VariableInfo(tuple(int(d.value) for d in decl.shape),
                                                _domain_of(decl.domain), decl.role == "observed", decl.span)
            elif isinstance(decl, ast.ParamDecl):
                params[decl.name] = decl.span
            elif isinstance(decl, (ast.EnergyDecl, ast.ConstraintDecl)):
                terms.append(decl.name)
        signature = ModelInterface(variables, params, tuple(terms))
    memo[key] = signature
    return signature


def _domain_of(spec: ast.DomainSpec) -> domains.Domain:
    values = [a.value for a in spec.args]
    if spec.kind == "bounded":
        return domains.bounded(*values)
    if spec.kind == "categorical":
        return domains.categorical(values[0])
    if spec.kind == "integer":
        return domains.Domain("integer", num_values=int(values[1] - values[0]), first_value=int(values[0]))
    return {"real": domains.REAL, "binary": domains.BINARY, "spin": domains.SPIN}[spec.kind]


def _experts(expr: ast.ModelExpr, weight: ast.Name | None = None):
    """The experts of a model expression with their learnable weight (if any); numeric
    weights and products distribute, as in `(A * B) ^ 2 * C ^ w` -> A, B, C."""
    if isinstance(expr, ast.ModelProduct):
        for factor in expr.factors:
            yield from _experts(factor, weight)
    elif isinstance(expr, ast.ModelPower):
        yield from _experts(expr.base, expr.weight if isinstance(expr.weight, ast.Name) else weight)
    else:
        yield expr, weight


def _expert_label(expr: ast.ModelExpr) -> str:
    if isinstance(expr, ast.ModelRef):
        return expr.name
    if isinstance(expr, ast.ModelProduct):
        return "_".join(_expert_label(f) for f in expr.factors)
    return _expert_label(expr.base)


# A composite's terms are copies of its experts' terms: products of products of a model
# with itself double them at every level, so their number is held to this.
MAX_COMPOSITE_TERMS = 10_000


def _composite_signature(expr: ast.ModelExpr, models: dict, memo: dict) -> ModelInterface:
    """Unify the experts' variables by name; their params and terms keep the expert's name."""
    variables: dict[str, VariableInfo] = {}
    params: dict[str, Span] = {}
    terms: list[str] = []
    used: dict[str, int] = {}
    for leaf, weight in _experts(expr):
        signature = _leaf_signature(leaf, models, memo)
        label = _expert_label(leaf)
        used[label] = used.get(label, 0) + 1
        if used[label] > 1:
            label = f"{label}_{used[label]}"
        for name, info in signature.variables.items():
            other = variables.get(name)
            if other is None:
                variables[name] = info
                continue
            if other.shape != info.shape or other.domain != info.domain:
                raise EbmError(
                    f"experts disagree about shared variable '{name}': "
                    f"{_var_text(name, other)} vs {_var_text(name, info)}", leaf.span,
                    hint="variables with the same name are unified; rename one with A[x -> x2]",
                    notes=[(other.span, f"'{name}' declared here as {_var_text(name, other)}"),
                           (info.span, f"and here as {_var_text(name, info)}")])
            variables[name] = dataclasses.replace(other, observed=other.observed or info.observed)
        params.update({f"{label}.{p}": span for p, span in signature.params.items()})
        if len(terms) + len(signature.terms) > MAX_COMPOSITE_TERMS:
            raise EbmError(f"this product would have {len(terms) + len(signature.terms):,} energy terms, more than "
                           f"{MAX_COMPOSITE_TERMS:,}", leaf.span,
                           hint="a product of a model with itself doubles its terms; nested a few times, "
                                "it grows beyond any machine")
        terms.extend(f"{label}.{t}" for t in signature.terms)
        if weight is not None:  # a learnable weight: one scalar param, shared by name
            if weight.name in signature.variables:
                raise EbmError(f"the weight '{weight.name}' has the name of a variable of {_label(leaf)}",
                               weight.span, hint="name the learnable weight something else",
                               notes=[(signature.variables[weight.name].span, f"'{weight.name}' declared here")])
            params.setdefault(weight.name, weight.span)
    return ModelInterface(variables, params, tuple(terms))


def _top_signature(expr: ast.ModelExpr, models: dict, memo: dict) -> ModelInterface:
    """A composite's own expression: `(A * B) | y` observes y of the product A * B."""
    if isinstance(expr, ast.ModelObserve):
        return _observed(expr, _top_signature(expr.base, models, memo))
    return _composite_signature(expr, models, memo)


def _leaf_signature(expr: ast.ModelExpr, models: dict, memo: dict) -> ModelInterface:
    if isinstance(expr, (ast.ModelProduct, ast.ModelPower)):
        return _composite_signature(expr, models, memo)
    if isinstance(expr, ast.ModelRef):
        if expr.name not in models:
            raise EbmError(
                f"unknown model '{expr.name}'", expr.span,
                expected="a model defined above, an imported alias or Alias.Name",
                hint=did_you_mean(expr.name, models) or (
                    "a model can only use models defined above it" if models else None))
        return _model_signature(expr.name, models, memo)
    base = _leaf_signature(expr.base, models, memo)
    if isinstance(expr, ast.ModelRename):
        return _renamed(expr, base)
    return _observed(expr, base)


def _observed(expr: ast.ModelObserve, base: ModelInterface) -> ModelInterface:
    variables = dict(base.variables)
    for name in expr.names:
        # params of experts carry the expert's name (`A.w`) by now
        param = next((p for p in base.params if p == name or p.endswith("." + name)), None)
        if name not in variables and param is not None:
            raise EbmError(f"'{name}' is a param, not a variable; only variables can be observed", expr.span,
                           notes=[(base.params[param], f"'{name}' declared here")])
        if name not in variables:
            raise EbmError(f"cannot observe '{name}': no variable of that name", expr.span,
                           expected="one of: " + ", ".join(sorted(variables)),
                           hint=did_you_mean(name, variables))
        variables[name] = dataclasses.replace(variables[name], observed=True)
    return ModelInterface(variables, base.params, base.terms)


def _renamed(expr: ast.ModelRename, base: ModelInterface) -> ModelInterface:
    names = list(base.variables) + list(base.params)
    seen: set[str] = set()
    for old, new in expr.renames:
        if old in seen:
            raise EbmError(f"'{old}' is renamed twice", expr.span)
        seen.add(old)
        if old not in names:
            raise EbmError(
                f"cannot rename '{old}': {_label(expr.base)} has no variable or param of that name",
                expr.span, expected="one of: " + ", ".join(sorted(names)), hint=did_you_mean(old, names))
        if new != old and new in names and new not in dict(expr.renames):
            raise EbmError(f"cannot rename '{old}' to '{new}': {_label(expr.base)} already has a '{new}'",
                           expr.span, hint="rename to a fresh name (renames apply all at once)")
    targets = [new for _, new in expr.renames]
    for target in targets:
        if targets.count(target) > 1:
            raise EbmError(f"two names are renamed to '{target}'", expr.span,
                           hint="each rename needs its own target name")
    renames = dict(expr.renames)
    variables = {renames.get(k, k): v for k, v in base.variables.items()}
    params = {renames.get(k, k): v for k, v in base.params.items()}
    return ModelInterface(variables, params, base.terms)


def _label(expr: ast.ModelExpr) -> str:
    if isinstance(expr, ast.ModelRef):
        return f"model '{expr.name}'"
    return "the model"


def _var_text(name: str, info: VariableInfo) -> str:
    dims = f"[{', '.join(map(str, info.shape))}]" if info.shape else ""
    return f"{name}{dims} : {info.domain}"


def check_composite(decl: ast.ModelDef, models: dict, consts: dict, file: str, source: str,
                    below: set[str] = frozenset(), *, max_ground: int) -> ast.CheckedComposite:
    """Check `model Name = ...` against the models defined above it (`models`); `below`
    names the models defined after it, for a better error than "unknown model"."""
    for ref in model_refs(decl.expr):
        if ref not in models and ref in below:
            ref_span = next(r.span for r in _model_ref_nodes(decl.expr) if r.name == ref)
            raise EbmError(f"model '{ref}' is used before it is defined", ref_span, source=source,
                           hint="a model can only use models defined above it; move this line down")
    try:
        expr = _check_weights(decl.expr, consts, max_ground)
        _top_signature(expr, models, {})
    except EbmError as err:
        raise err.with_source(source) if err.span is not None and err.span.file == file else err
    return ast.CheckedComposite(decl.name, expr, decl.span, dict(consts))


def _check_weights(expr: ast.ModelExpr, consts: dict, max_ground: int) -> ast.ModelExpr:
    """Type each `A ^ w`: a number, a const expression, or one name (a learnable weight)."""
    if isinstance(expr, ast.ModelRef):
        return expr
    if isinstance(expr, ast.ModelProduct):
        return dataclasses.replace(expr, factors=tuple(_check_weights(f, consts, max_ground) for f in expr.factors))
    base = _check_weights(expr.base, consts, max_ground)
    if not isinstance(expr, ast.ModelPower):
        return dataclasses.replace(expr, base=base)
    weight = expr.weight
    if isinstance(weight, ast.Name) and weight.name not in consts and weight.name not in BUILTIN_CONSTANTS:
        return dataclasses.replace(expr, base=base, weight=dataclasses.replace(weight, ty=T_REAL))
    for node in walk_expr(weight):
        if isinstance(node, ast.Name) and node.name not in consts and node.name not in BUILTIN_CONSTANTS:
            raise EbmError(
                f"'{node.name}' in a weight expression is not a const", node.span,
                expected="a number, a const expression, or a single name for a learnable weight",
                hint=f"write `^ {node.name}` alone for a learnable weight")
    try:
        with np.errstate(all="ignore"):
            value = to_python(Evaluator(consts, {}, max_ground).value_of(weight))
    except IndexSetTooLarge:
        raise EbmError("weight expression too large to evaluate", weight.span) from None
    if np.ndim(value) != 0:
        raise EbmError("an expert's weight must be a single number", weight.span)
    if value < 0:
        raise EbmError(f"an expert's weight must not be negative, got {value:g}", weight.span,
                       hint="a weight is an inverse temperature: 0 switches the expert off, 1 leaves it as is")
    return dataclasses.replace(expr, base=base, weight=folded_number(float(value), weight.span))
