"""Bad data is refused with the variable's name and the line that declared it; exact
enumeration too large for memory is refused with its size and the alternative."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import ebmlang as ebm
from ebmlang.errors import EbmError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
RBM_V_LINE = "4 | observed v[V] : binary"

BAD_VALUES = {
    "wrong shape": (np.zeros(63), r"has shape \((2, )?63,?\), but 'v' is declared with shape \[64\]"),
    "out of domain": (np.full(64, 2.0), "contains 2, outside its domain binary"),
    "half value": (np.full(64, 0.5), r"contains 0\.5, outside its domain binary"),
    "string dtype": (np.array(["1"] * 64), "has dtype <U1, not a number"),
    "NaN": (np.full(64, np.nan), "contains NaN or infinite entries"),
    "ragged": ([[0, 1], [1]], "is not an array"),
    # Fails today: complex numbers pass the dtype check (np.number) and lose their
    # imaginary part in astype(float64) with only a numpy ComplexWarning.
    "complex dtype": (np.full(64, 1 + 1j), "complex"),
}

ENTRY_POINTS = {
    "sample": lambda m, v: m.sample(observed={"v": v}, chains=2, steps=2, progress=False),
    "argmin": lambda m, v: m.argmin(observed={"v": v}),
    "energy": lambda m, v: m.energy(v=v, h=np.zeros(16)),
    "conditional": lambda m, v: m.conditional(observed={"v": v}),
    # Data sets: the bad example twice (a list, so a ragged one stays ragged).
    "fit": lambda m, v: m.fit({"v": [v, v]}, epochs=1, progress=False),
    "log_prob": lambda m, v: m.log_prob({"v": [v, v]}),
}


@pytest.fixture(scope="module")
def rbm():
    return ebm.load(EXAMPLES / "rbm.ebm", backend="torch")


@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
@pytest.mark.parametrize("case", sorted(BAD_VALUES))
def test_bad_values_are_refused_with_name_and_declaration(rbm, entry, case):
    value, expected = BAD_VALUES[case]
    with pytest.raises(EbmError) as caught:
        ENTRY_POINTS[entry](rbm, value)
    error = caught.value
    assert re.search(expected, error.message) and "'v'" in error.message, error.message
    assert error.span is not None and (error.span.file, error.span.line) == (str(EXAMPLES / "rbm.ebm"), 4)
    assert RBM_V_LINE in str(error)


def test_missing_observed_value_names_the_variable(rbm):
    with pytest.raises(EbmError, match="'v' is declared observed but no value was given") as caught:
        rbm.sample(chains=2, steps=2, progress=False)
    assert RBM_V_LINE in str(caught.value)


def test_out_of_domain_initial_state_is_refused():
    model = ebm.load(EXAMPLES / "bounded.ebm", backend="torch")
    with pytest.raises(EbmError, match=r"initial value for 'p' leaves its domain real in \[0, 1\]") as caught:
        model.sample(init={"p": np.full(3, 1.5)}, chains=2, steps=2, progress=False)
    assert "5 | latent p[n] : real in [0, 1]" in str(caught.value)


SPIN_CHAIN = "const N = {n}\nlatent s[N] : spin\nenergy pair[i in 0..N-1] = -s[i] * s[i+1]\n"


def test_exact_conditional_above_the_limit_is_refused_with_size_and_alternative():
    model = ebm.loads(SPIN_CHAIN.format(n=21), backend="torch")
    with pytest.raises(EbmError, match=r"2\.1e\+06 joint states, more than the exact limit 1048576") as caught:
        model.conditional()
    assert "sample(" in caught.value.hint and "argmin(" in caught.value.hint


@pytest.mark.parametrize("query", ["conditional", "rank"])
def test_exact_queries_on_a_huge_lattice_are_refused_not_crashed(query):
    # Fails today: 2^1024 states overflow float in minimize._discrete_only_mrf and a raw
    # OverflowError ("cannot convert float infinity to integer") escapes.
    model = ebm.load(EXAMPLES / "ising.ebm", backend="torch")
    with pytest.raises(EbmError, match="joint states") as caught:
        getattr(model, query)()
    assert "sample(" in caught.value.hint


def test_exact_likelihood_on_a_huge_lattice_is_refused_with_size_and_alternative():
    model = ebm.load(EXAMPLES / "ising.ebm", backend="torch")
    with pytest.raises(EbmError, match=r"2\^1024") as caught:
        model.fit({"s": np.ones((2, 32, 32))}, method="exact", epochs=1, progress=False)
    assert "method='pcd'" in caught.value.hint
    # log Z sums one colour class of the checkerboard exactly: 2^512 states remain.
    with pytest.raises(EbmError, match=r"2\^512") as caught:
        model.log_prob({"s": np.ones((1, 32, 32))})
    assert "ais_log_partition" in caught.value.hint
    with pytest.raises(EbmError, match=r"2\^1024") as caught:
        model.argmin(method="enumeration")
    assert "max-product BP" in caught.value.hint
