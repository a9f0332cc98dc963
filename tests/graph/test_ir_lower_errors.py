"""Lowering's own errors are located EbmErrors with a caret and a hint.

The checker already rejects out-of-range indices on index sets it can enumerate
(up to `checker.MAX_CHECKED_GROUND` tuples); above that, lowering is the only
check. The tests lower that limit so the checker leaves the check to lowering.
"""
from __future__ import annotations

import pytest
from ir_testing import lower_source

from ebmlang.errors import EbmError
from ebmlang.language import checker


@pytest.fixture
def lowering_checks_bounds(monkeypatch):
    monkeypatch.setattr(checker, "MAX_CHECKED_GROUND", 0)


def test_out_of_range_neighbour_points_at_the_index(lowering_checks_bounds):
    source = """const N = 4
latent x[N, N] : spin
energy e[i in 0..N, j in 0..N] = x[i, j] * x[i+1, j]
"""
    with pytest.raises(EbmError) as info:
        lower_source(source, file="grid.ebm")
    err = info.value
    assert (err.span.file, err.span.line, err.span.column) == ("grid.ebm", 3, 46)
    assert err.message == ("index 1 of 'x' is out of range: over the index set it takes values 1 to 4, "
                           "but dimension 1 of 'x' has size 4; it is 4 at i=3, j=0")
    assert "(i+1) % N" in err.hint and "0..N-1" in err.hint
    text = str(err)
    assert "grid.ebm:3:46: error:" in text
    assert "   3 | energy e[i in 0..N, j in 0..N] = x[i, j] * x[i+1, j]" in text
    assert "     |                                              ^^^" in text


def test_out_of_range_inside_a_ragged_reduction_ignores_padding(lowering_checks_bounds):
    # the inner range 0..j+2 overruns only at j = N-1; padded positions must not be blamed
    source = """const N = 4
latent x[N] : real
energy e[i in 0..N] = sum(j in 0..N where j != i) x[i] * log(sum(k in 0..j+2) exp(x[k]))
"""
    with pytest.raises(EbmError) as info:
        lower_source(source)
    err = info.value
    assert err.span.line == 3 and source.splitlines()[2][err.span.column - 1] == "k"
    assert "takes values 0 to 4" in err.message and "k=4" in err.message


def test_params_and_consts_are_bounds_checked_too(lowering_checks_bounds):
    with pytest.raises(EbmError, match="index 1 of 'w' is out of range"):
        lower_source("""latent x[3] : real
param w[3] = 1.0
energy e[i in 0..3] = w[i + 1] * x[i]
""")
    with pytest.raises(EbmError, match="index 2 of 'g' is out of range"):
        lower_source("""const g = [[1.0, 2.0], [3.0, 4.0]]
latent x[2] : real
energy e[i in 0..2] = g[i, i + 1] * x[i]
""")


def test_periodic_boundaries_lower_fine(lowering_checks_bounds):
    g = lower_source("""const N = 4
latent x[N] : spin
energy e[i in 0..N] = x[i] * x[(i + 1) % N]
""")
    assert g.templates[0].slots[1].index.tolist() == [1, 2, 3, 0]
