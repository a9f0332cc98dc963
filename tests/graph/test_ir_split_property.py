"""Property: splitting and promotion never change a term's energy.

Random bodies built from sums, differences, negations, products, divisions and sums
over index sets are lowered (split into parts) and evaluated by the reference
evaluator; the same expression is evaluated directly with numpy."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from ir_testing import lower_source

from ebmlang.graph.reference import reference_energy

N = 3
HEADER = f"const N = {N}\nlatent x[N] : real\nlatent y[N] : real\nparam a = 0.7\n"


def _leaf():
    variable = st.tuples(st.sampled_from(["x", "y"]), st.integers(0, N - 1)).map(
        lambda t: (f"{t[0]}[{t[1]}]", lambda s, t=t: s[t[0]][:, t[1]]))
    number = st.sampled_from([0.5, 2.0, 3.0]).map(lambda c: (f"{c}", lambda s, c=c: c))
    param = st.just(("a", lambda s: 0.7))
    # a sum over k reading x[k] and another variable: promoted when it ends up at the top;
    # two of them in one product both bind k, so one is renamed
    summed = st.tuples(st.sampled_from(["x", "y"]), st.integers(0, N - 1)).map(
        lambda t: (f"(sum(k in 0..N) x[k] * {t[0]}[{t[1]}])",
                   lambda s, t=t: s["x"].sum(axis=1) * s[t[0]][:, t[1]]))
    return st.one_of(variable, variable, number, param, summed)


def _extend(children):
    def binary(op, fn):
        return st.tuples(children, children).map(
            lambda p, op=op, fn=fn: (f"({p[0][0]} {op} {p[1][0]})", lambda s, p=p, fn=fn: fn(p[0][1](s), p[1][1](s))))

    negated = children.map(lambda c: (f"(-{c[0]})", lambda s, c=c: -c[1](s)))
    halved = children.map(lambda c: (f"({c[0]} / 2.0)", lambda s, c=c: c[1](s) / 2.0))
    return st.one_of(binary("+", np.add), binary("-", np.subtract), binary("*", np.multiply),
                     negated, halved)


BODIES = st.recursive(_leaf(), _extend, max_leaves=8)


@settings(max_examples=120, deadline=None)
@given(BODIES)
def test_split_energy_equals_direct_evaluation(body):
    text, direct = body
    g = lower_source(HEADER + f"energy e = {text}\n")
    rng = np.random.default_rng(0)
    state = {"x": rng.normal(size=(4, N)), "y": rng.normal(size=(4, N))}
    expected = np.broadcast_to(np.asarray(direct(state), dtype=float), (4,))
    got = reference_energy(g, state, {"a": np.array(0.7)})
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-9)
