"""Non-finite energies and diverging samplers stop with an error that names the energy
term and its source line (ebmlang.inference.diagnostics.locate_nonfinite), never silently."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import ebmlang as ebm
from ebmlang.errors import EbmError
from ebmlang.inference.summary import ConvergenceWarning

NAN_IN_GIBBS = """
latent s[4] : spin
param a = -1.0
energy coupling[i in 0..3] = -s[i] * s[i+1]
energy broken = sqrt(a) * s[0]
"""

NAN_IN_LANGEVIN = """
latent x[2] : real
param s = -1.0
energy quad = 0.5 * sum(i in 0..2) x[i]^2
energy root = sqrt(s) * x[0]
"""

INF_IN_LANGEVIN = """
latent x[2] : real
param s = 0.0
energy quad = 0.5 * sum(i in 0..2) x[i]^2
energy scaled = x[0]^2 / s
"""

NAN_IN_LEARNING = """
latent v[3] : binary
param b[3] = 0
param s = -1.0
energy bias = -sum(i in 0..3) b[i] * v[i]
energy root = sqrt(s) * v[0]
"""

QUARTIC = """
latent x[3] : real
energy quartic = sum(i in 0..3) x[i]^4
"""


def assert_names_term(error: EbmError, term: str, line: int, source_line: str) -> None:
    assert f"'{term}'" in error.message
    assert error.span is not None and error.span.line == line
    assert f"{line} | {source_line}" in str(error)


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_nan_energy_stops_gibbs_naming_the_term(backend):
    model = ebm.loads(NAN_IN_GIBBS, backend=backend, name="nan.ebm")
    with pytest.raises(EbmError) as caught:
        model.sample(chains=2, steps=5, progress=False)
    assert_names_term(caught.value, "broken", 5, "energy broken = sqrt(a) * s[0]")
    assert "is nan" in caught.value.message


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_nan_energy_stops_langevin_naming_the_term(backend):
    model = ebm.loads(NAN_IN_LANGEVIN, backend=backend, name="nan.ebm")
    with pytest.raises(EbmError) as caught:
        model.sample(chains=2, steps=5, progress=False)
    assert_names_term(caught.value, "root", 5, "energy root = sqrt(s) * x[0]")


def test_infinite_energy_stops_langevin_naming_the_term():
    # Fails today: every chain sits at E = +inf (x^2 / 0), MALA rejects every move and
    # sample() returns an all-inf energy trace without a word.
    model = ebm.loads(INF_IN_LANGEVIN, backend="torch", name="inf.ebm")
    with pytest.raises(EbmError) as caught:
        model.sample(chains=2, steps=5, progress=False)
    assert_names_term(caught.value, "scaled", 5, "energy scaled = x[0]^2 / s")
    assert "inf" in caught.value.message


def test_nan_energy_at_the_argmin_is_an_error():
    # Fails today: argmin returns ArgminResult(energy=nan) as if it had succeeded.
    model = ebm.loads(NAN_IN_LANGEVIN, backend="torch", name="nan.ebm")
    with pytest.raises(EbmError) as caught:
        model.argmin()
    assert_names_term(caught.value, "root", 5, "energy root = sqrt(s) * x[0]")


@pytest.mark.parametrize("method", ["exact", "pcd"])
def test_nan_loss_stops_fit_naming_the_term(method):
    # Fails today: fit raises "training diverged ... the loss is not finite" with no
    # term, no line (fit.py's _update does not call locate_nonfinite).
    model = ebm.loads(NAN_IN_LEARNING, backend="torch", name="learn.ebm")
    data = {"v": np.array([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]])}
    with pytest.raises(EbmError) as caught:
        model.fit(data, method=method, epochs=1, progress=False)
    assert_names_term(caught.value, "root", 6, "energy root = sqrt(s) * v[0]")


@pytest.mark.parametrize("method", ["mala", "ula"])
def test_langevin_divergence_reduces_the_step_size_with_a_warning(method):
    # Fails today: with step 5 on x^4 from x = 3, MALA diverges on every step (800 of
    # 800, acceptance 0, chains frozen) and ULA runs off to |x| ~ 1e9; neither warns nor
    # reduces the step. The divergence must be noticed and the step cut until the
    # chains move again.
    model = ebm.loads(QUARTIC, backend="torch", name="quartic.ebm")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        samples = model.sample(chains=4, steps=200, burn_in=0, method=method, step_size=5.0,
                               init={"x": np.full(3, 3.0)}, progress=False)
    messages = [str(w.message) for w in caught]
    assert any("diverg" in m and "step size" in m for m in messages), messages
    assert samples.info["step_size"] < 5.0
    # Under exp(-x^4) P(|x| > 2) is ~1e-7: a chain still at 3, or far out, did not recover.
    assert np.abs(samples["x"][:, -50:]).max() < 2.0


def test_chains_frozen_by_an_enormous_term_name_it():
    model = ebm.loads("latent x : real\nenergy big = 1e30 * x^2\nenergy small = x\n", backend="torch")
    # MALA's failure (the plan's NUTS finds a step of 1e-13 and samples x ~ N(0, 1e-30)).
    with pytest.raises(EbmError, match="the chains are frozen: energy term 'big'") as caught:
        model.sample(chains=4, steps=300, seed=0, progress=False, method="mala")
    assert caught.value.span.line == 2
    # The same model rescaled samples normally.
    fine = ebm.loads("latent x : real\nenergy big = x^2\nenergy small = x\n", backend="torch")
    assert fine.sample(chains=4, steps=300, seed=0, progress=False, method="mala").acceptance["mala"] > 0.3


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_a_fit_names_the_term_whose_gradient_is_not_finite(backend):
    # The energy is finite everywhere; only d/ds sqrt(s) at s = 0 is not. The innocent term
    # `fit` comes first and must not be blamed.
    model = ebm.loads("""
observed x[2] : real
param mu[2] = 0
param s = 0
energy fit = sum(d in 0..2) (x[d] - mu[d])^2
energy scale = sqrt(s) * (x[0] - x[1])^2
""", backend=backend)
    data = {"x": np.random.default_rng(0).normal(size=(64, 2))}
    with pytest.raises(EbmError, match="gradient of energy term 'scale' with respect to param 's'") as caught:
        model.fit(data, epochs=1, progress=False, method="pcd", chains=16)
    assert caught.value.span.line == 6


def test_a_sampler_that_keeps_diverging_points_at_the_stiff_term():
    model = ebm.loads("latent x[2] : real\nparam a = 1e6\nenergy soft = x[1]^2\nenergy stiff = a * x[0]^4\n",
                      backend="torch")
    # A fixed step (no warm-up to adapt it) far too large for the stiff term: halved ten
    # times, still diverging, then an error that names the term.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)   # the ten step-size halvings on the way
        with pytest.raises(EbmError, match="kept diverging.*the largest term where the chains are is 'stiff'") \
                as caught:
            model.sample(chains=4, steps=300, burn_in=0, step_size=1.0, seed=0, progress=False, method="mala")
    assert caught.value.span.line == 4
    # With warm-up, MALA's first step comes from Hoffman & Gelman's search (2e-4 here) and
    # the run completes; the chains barely move through the quartic well, which the
    # diagnostics say: divergences after warm-up and too few effective draws.
    samples = model.sample(chains=4, steps=300, seed=0, progress=False, method="mala")
    with pytest.warns(ConvergenceWarning) as caught_warnings:
        samples.summary()
    said = " ".join(str(w.message) for w in caught_warnings)
    assert "divergent transitions after warm-up" in said and "too few independent draws" in said
