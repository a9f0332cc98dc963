"""Random valid programs: torch, JAX and the numpy reference against an oracle.

Each generated program carries its own numpy oracle, computed from the source's
meaning ground factor by ground factor (tests/faults/program_generator.py), so bugs in
lowering -- which the IR-based reference shares with the backends -- are caught too.

60 derandomised examples in `make test` and 200 in `make test-slow` (CI runs both), not
shrunk (a failure prints its program, which is small already). For a longer hunt:

    HYPOTHESIS_PROFILE=long   .venv/bin/pytest -q tests/faults/test_faults_fuzz_backends.py  # 5,000, shrunk
    HYPOTHESIS_PROFILE=random .venv/bin/pytest -q tests/faults/test_faults_fuzz_backends.py  # fresh cases
"""
from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from program_generator import Program, programs

from ebmlang.api.model import Model
from ebmlang.graph.lower import lower_program
from ebmlang.graph.reference import reference_term_energies
from ebmlang.language.checker import check_program
from ebmlang.language.parser import parse_source

BASE = dict(deadline=None, database=None, print_blob=True,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])
settings.register_profile("quick", max_examples=60, derandomize=True,
                          phases=[Phase.explicit, Phase.generate], **BASE)
settings.register_profile("ci", max_examples=200, derandomize=True,
                          phases=[Phase.explicit, Phase.generate], **BASE)
settings.register_profile("long", max_examples=5000, derandomize=True, **BASE)
settings.register_profile("random", max_examples=2000, derandomize=False, **BASE)
PROFILE = settings.get_profile(os.environ.get("HYPOTHESIS_PROFILE", "quick"))

pytestmark = pytest.mark.fuzz
BATCH = 4
# float32 backends against the float64 oracle: the generator keeps every value to a few
# units (bounded functions, divisions by 1 + y^2), so float32 rounding (~1e-7 relative,
# accumulated over < 100 operations) stays far below these tolerances.
RTOL, ATOL = 1e-4, 1e-3


def check_against(name: str, terms: dict, expected: dict, program: Program) -> None:
    assert set(terms) == set(expected), f"{name}: terms {sorted(terms)}\n{program.source}"
    for term, value in terms.items():
        np.testing.assert_allclose(np.asarray(value, dtype=float), expected[term], rtol=RTOL, atol=ATOL,
                                   err_msg=f"{name}, term {term} of\n{program.source}")


@settings(PROFILE)
@given(programs())
def test_backends_match_the_oracle_on_random_programs(program):
    graph = lower_program(check_program(parse_source(program.source, "fuzz.ebm")))
    rng = np.random.default_rng(program.seed)
    state = {v.name: v.values(rng, BATCH) for v in program.variables}
    torch_model = Model(graph, backend="torch")
    params = {k: v.astype(np.float64) for k, v in torch_model.param_values().items()}
    expected = program.term_energies(state, params, BATCH)
    check_against("reference", reference_term_energies(graph, state, params), expected, program)
    jax_model = Model(graph, backend="jax", params=params)
    for model in (torch_model, jax_model):
        check_against(model.backend_name, model.term_energies(state), expected, program)
        total = sum(expected.values())
        np.testing.assert_allclose(model.energy(state), total, rtol=RTOL, atol=ATOL * len(expected),
                                   err_msg=f"{model.backend_name}, total energy of\n{program.source}")
