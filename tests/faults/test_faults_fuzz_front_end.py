"""Malformed and hostile programs: every failure is a located `EbmError`, never a traceback.

Two sources of programs, both through the whole front end and lowering (and, for the
ones that lower, the numpy backend: compile, plan, energy of a random state):

- the lark grammar itself (hypothesis.extra.lark): syntactically valid text that is
  mostly ill-typed;
- the examples/ files under random mutations: deleted, repeated or swapped spans,
  inserted keywords and operators, numbers replaced by extreme values.

2,000 derandomised programs in `make test-slow` (`HYPOTHESIS_PROFILE=ci`): 100 from the
grammar (hypothesis spends most of the time generating those) and 1,900 mutations;
`make test` runs 40% of that, `HYPOTHESIS_PROFILE=long` ten times as many and `random`
five times as many fresh ones.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.extra.lark import from_lark

from ebmlang.api.model import Model
from ebmlang.errors import EbmError
from ebmlang.graph.lower import lower_source
from ebmlang.language.syntax import _lark

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.ebm"))
SOURCES = [path.read_text(encoding="utf-8") for path in EXAMPLES]
pytestmark = pytest.mark.fuzz
# A small budget keeps the hostile programs that lower cheap to run.
BUDGET = "64MiB"

BASE = dict(deadline=None, database=None, print_blob=True, phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck))
SCALE = {"quick": 0.4, "ci": 1, "long": 10, "random": 5}[os.environ.get("HYPOTHESIS_PROFILE", "quick")]
GRAMMAR = settings(max_examples=round(100 * SCALE), derandomize=os.environ.get("HYPOTHESIS_PROFILE") != "random",
                   **BASE)
MUTATIONS = settings(max_examples=round(1900 * SCALE), derandomize=os.environ.get("HYPOTHESIS_PROFILE") != "random",
                     **BASE)

INSERTS = ["const", "param", "latent", "observed", "energy", "constraint", "model", "import", "extern", "sum",
           "prod", "logsumexp", "min", "max", "mlp", "where", "in", "..", "[", "]", "(", ")", "{", "}", ",", ":",
           "=", "==", "!=", "<", "<=", "->", "^", "*", "/", "%", "+", "-", "&&", "and", "not", "x", "i", "N",
           "K", "categorical(", "integer in", "real in [", "spin", "binary", "\n", "#", '"', "0..0", "3..1",
           "1e308", "-1e308", "1e-320", "nan", "inf", "0", "-1", "9007199254740993", "10^40", "2^62",
           "99999999999999999999", "0.0", "1/0", "0/0", "%0", "exp(1000)", "log(0)", "sqrt(-1)"]
NUMBERS = ["0", "-1", "1", "2", "100000", "10^9", "10^40", "2^53", "1e308", "1e-308", "0.5", "-0.0", "3..3",
           "9007199254740993", "4294967296", "1e400"]


@st.composite
def mutated_examples(draw) -> str:
    text = draw(st.sampled_from(SOURCES))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["delete", "repeat", "insert", "number", "swap", "truncate"]))
        n = len(text)
        at = draw(st.integers(0, max(n - 1, 0)))
        length = draw(st.integers(1, 40))
        if kind == "delete":
            text = text[:at] + text[at + length:]
        elif kind == "repeat":
            text = text[:at] + text[at:at + length] * draw(st.integers(2, 4)) + text[at:]
        elif kind == "insert":
            text = text[:at] + " " + draw(st.sampled_from(INSERTS)) + " " + text[at:]
        elif kind == "number":
            digits = [k for k, c in enumerate(text) if c.isdigit()]
            if digits:
                k = draw(st.sampled_from(digits))
                end = k
                while end < n and (text[end].isdigit() or text[end] == "."):
                    end += 1
                text = text[:k] + draw(st.sampled_from(NUMBERS)) + text[end:]
        elif kind == "swap":
            other = draw(st.integers(0, max(n - 1, 0)))
            a, b = sorted((at, other))
            text = text[:a] + text[b:b + length] + text[a + length:b] + text[a:a + length] + text[b + length:]
        else:
            text = text[:at]
    return text


def run_program(text: str) -> None:
    """Lower `text`; if it lowers, compile it (numpy), plan both queries and score a state.
    Anything but success or an EbmError with a location fails the test."""
    try:
        graph = lower_source(text, "fuzz.ebm", budget=BUDGET)
    except EbmError as err:
        assert err.span is not None, f"unlocated error {err!r} for\n{text}"
        return
    try:
        model = Model(graph, backend="numpy", budget=BUDGET)
        for query in ("sample", "argmin"):
            try:
                model.plan(query)
            except EbmError:
                pass
        rng = np.random.default_rng(0)
        state = {}
        for name, var in graph.variables.items():
            if var.domain.is_discrete:
                low, _ = var.domain.value_range
                draws = rng.integers(0, var.domain.num_values, size=(2,) + var.shape)
                state[name] = 2.0 * draws - 1.0 if var.domain.kind == "spin" else low + draws
            elif var.domain.kind == "bounded":
                state[name] = rng.uniform(var.domain.low, var.domain.high, size=(2,) + var.shape)
            else:
                state[name] = rng.normal(size=(2,) + var.shape)
        model.energy(state)
    except EbmError:
        return


@GRAMMAR
@given(from_lark(_lark()))
def test_programs_from_the_grammar_fail_only_with_located_errors(text):
    run_program(text)


@MUTATIONS
@given(mutated_examples())
def test_mutated_examples_fail_only_with_located_errors(text):
    run_program(text)
