"""Pointing numerical failures back at the `.ebm` source."""
from __future__ import annotations

import numpy as np

from ebmlang.errors import EbmError


def locate_nonfinite(model, state: dict, *, what: str = "energy") -> EbmError:
    """An EbmError naming the first energy term whose value is NaN (or -inf) in `state`,
    located at the line that wrote the term."""
    per_template = model.compiled.template_energies(state, model.params)
    graph = model.graph
    for template in graph.templates:
        values = model.backend.to_numpy(per_template[template.name])
        bad = np.isnan(values) | np.isneginf(values)
        if bad.any():
            chain, ground = np.argwhere(bad)[0][:2] if values.ndim > 1 else (int(np.argwhere(bad)[0][0]), 0)
            where = ""
            if template.index_names:
                idx = template.index_values[int(ground)]
                where = " at " + ", ".join(f"{n}={int(v)}" for n, v in zip(template.index_names, idx))
            return EbmError(f"{what} term '{template.term}' is {values[bad].flat[0]} in chain {int(chain)}{where}",
                            template.span, source=graph.source,
                            hint="check parameter values (e.g. a zero scale) and log/sqrt of values "
                                 "that can be negative; for Langevin try a smaller step_size")
    return EbmError(f"the {what} became NaN but no single term is NaN; the parameters may have diverged",
                    hint="lower the learning rate or step size")
