"""Reductions whose body does not depend on the reduction's own index.

Found by the program fuzzer: lowering reduces such a body over a broadcast axis of
size 1 instead of the index range, so `sum(i in 0..3) 2` is 2, not 6 -- on every backend
and in the numpy reference alike (they share the IR) -- and JAX fails outright on a
0-d body. Fails until lower.py's reductions span their range (see the report).
"""
from __future__ import annotations

import numpy as np
import pytest

import ebmlang as ebm
from ebmlang.graph.reference import reference_term_energies

CASES = {
    "sum of a constant": ("energy t = sum(i in 0..3) 2", 6.0),
    "sum of a param": ("param w = 0.5\nenergy t = sum(i in 0..3) w", 1.5),
    "prod of a constant": ("energy t = prod(i in 0..3) 2", 8.0),
    "logsumexp of zero": ("energy t = logsumexp(i in 0..3) 0", float(np.log(3.0))),
    "sum over a range of one": ("param w = 0.5\nenergy t = sum(i in 0..1) (i + w)", 0.5),
    "prod of a variable": ("energy t = prod(i in 0..2) (1.0 + x)", 4.0),
    "nested, inner constant": ("energy t = sum(i in 0..2) sum(j in 0..3) x", 6.0),
}


@pytest.mark.parametrize("backend", ["reference", "torch", "jax"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_reductions_span_their_whole_range(case, backend):
    body, expected = CASES[case]
    source = f"latent x : binary\nenergy anchor = 0 * x\n{body}\n"
    model = ebm.loads(source, backend="numpy" if backend == "reference" else backend)
    state = {"x": np.ones(1)}
    if backend == "reference":
        terms = reference_term_energies(model.graph, state, model.param_values())
    else:
        terms = model.term_energies(state)
    assert float(terms["t"][0]) == pytest.approx(expected, rel=1e-6)
