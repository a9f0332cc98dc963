"""Pointing numerical failures back at the `.ebm` source."""
from __future__ import annotations

import dataclasses

import numpy as np

from ebmlang.errors import EbmError

_NUMERIC_HINT = ("check parameter values (e.g. a zero scale) and log/sqrt of values "
                 "that can be negative; for Langevin try a smaller step_size")
_CONSTRAINT_HINT = ("the constraints may be unsatisfiable (with these observed values), or the "
                    "sampler is stuck in a violating state: pass init=... with a valid state")


def locate_nonfinite(model, state: dict, *, what: str = "energy") -> EbmError:
    """An EbmError naming the first energy term whose value is not finite in `state`,
    located at the line that wrote the term.

    NaN is looked for first (in every term), then infinities: a NaN is the root cause
    more often than an infinity is. A +inf constraint term is reported as a violated
    constraint.
    """
    per_template = model.compiled.template_energies(state, model.params)
    graph = model.graph
    values_of = {t.name: model.backend.to_numpy(per_template[t.name]) for t in graph.templates}
    for is_bad in (np.isnan, lambda v: ~np.isfinite(v)):
        for template in graph.templates:
            values = values_of[template.name]
            bad = is_bad(values)
            if not bad.any():
                continue
            first = np.argwhere(bad)[0]
            chain, ground = (int(first[0]), int(first[1])) if values.ndim > 1 else (int(first[0]), 0)
            where = ""
            if template.index_names:
                idx = template.index_values[ground]
                where = " at " + ", ".join(f"{n}={int(v)}" for n, v in zip(template.index_names, idx))
            value = values[bad].flat[0]
            if template.is_constraint and value == np.inf:
                return EbmError(f"constraint '{template.term}' is violated (its {what} is inf) in chain "
                                f"{chain}{where}", template.span, source=graph.source, hint=_CONSTRAINT_HINT)
            return EbmError(f"{what} term '{template.term}' is {value} in chain {chain}{where}",
                            template.span, source=graph.source, hint=_NUMERIC_HINT)
    return EbmError(f"the {what} is not finite but no single term is; the parameters may have diverged",
                    hint="lower the learning rate or step size")


def locate_nonfinite_gradient(model, state: dict, weights=None) -> EbmError | None:
    """An EbmError naming the first energy term whose gradient with respect to a param is
    not finite in `state` (e.g. `sqrt(s)` at s = 0, where the energy itself is finite), or
    None when every term's gradient is finite. Each term is compiled on its own, so this
    is for the error path only."""
    graph = model.graph
    backend = model.backend
    for term in graph.terms:
        templates = tuple(t for t in graph.templates if t.term == term)
        if not any(t.param_names for t in templates):
            continue
        compiled = backend.compile(dataclasses.replace(graph, templates=templates, terms=(term,)))
        for name, fn in getattr(model.compiled, "externs", {}).items():
            compiled.register_extern(name, fn)
        grads = compiled.grad_params(state, model.params, weights)
        for param, grad in grads.items():
            values = backend.to_numpy(grad)
            if not np.isfinite(values).all():
                return EbmError(f"the gradient of energy term '{term}' with respect to param '{param}' is not "
                                f"finite ({values[~np.isfinite(values)].flat[0]}) although the energy is",
                                templates[0].span, source=graph.source,
                                hint="a function is at a point where its slope is infinite (sqrt(0), log near 0, "
                                     "x^p with p < 1 at 0): keep the param away from it with bounds or a shift, "
                                     "e.g. sqrt(s + 1e-6)")
    return None
