"""Swendsen-Wang and Wolff cluster updates (ebmlang/inference/cluster.py).

The draws of both moves, on torch and JAX, are compared with exact enumeration of small
lattices (the energies written out in numpy here, not taken from the compiler): a 3 x 3
open Ising lattice with a field, a 3 x 3 binary (0/1) lattice whose couplings are Potts
only after their one-site parts move into the fields, and a 3 x 3 Potts lattice with
K = 3 and a field on one label. Then the plan: Swendsen-Wang chosen by itself for
ferromagnetic couplings, Gibbs otherwise, and a clear error for a request that cannot
be met.
"""
from __future__ import annotations

import itertools

import numpy as np
import pytest

import ebmlang as ebm
from ebmlang.backends import get_backend
from ebmlang.backends.compile import compile_graph
from ebmlang.errors import EbmError
from ebmlang.inference.cluster import ClusterStepper, potts_couplings

CHAINS, STEPS, BURN_IN = 64, 320, 20
# Per bin of the statistic, |frequency - p| must stay below Z_LIMIT standard errors of a
# sample of N / 3 independent draws: on 9 sites a cluster step plus a Gibbs sweep forgets
# its start within a step or two (ArviZ's ESS of the energy is 0.39 N to 0.94 N over these
# cases and moves), so N / 3 is a conservative effective size. With up to ~60 bins a correct sampler
# exceeds 4.5 standard errors in some bin with probability below 1e-3; a sampler that
# ignores the field or uses the wrong bond probability misses by far more (see
# test_the_check_detects_a_wrong_distribution).
Z_LIMIT = 4.5
EFFECTIVE_FRACTION = 1 / 3

ISING = """
const L = 3
param J = 0.5
param h = 0.25
latent s[L, L] : spin
energy down[i in 0..L-1, j in 0..L] = -J * s[i,j] * s[i+1,j]
energy right[i in 0..L, j in 0..L-1] = -J * s[i,j] * s[i,j+1]
energy field[i in 0..L, j in 0..L] = -h * s[i,j]
"""
BINARY = """
const L = 3
param w = 1.2
param b = -0.5
latent x[L, L] : binary
energy pairs[i in 0..L-1, j in 0..L] = -w * x[i,j] * x[i+1,j] - w * x[j,i] * x[j,i+1]
energy bias[i in 0..L, j in 0..L] = -b * x[i,j]
"""
POTTS = """
const L = 3
param beta = 0.8
param h = 0.4
latent z[L, L] : categorical(3)
energy down[i in 0..L-1, j in 0..L] = -beta * [z[i,j] == z[i+1,j]]
energy right[i in 0..L, j in 0..L-1] = -beta * [z[i,j] == z[i,j+1]]
energy field[i in 0..L, j in 0..L] = -h * [z[i,j] == 0]
"""


def open_bonds(states: np.ndarray) -> np.ndarray:
    """[S, 3, 3] -> the 12 nearest-neighbour pairs' (first, second) values [S, 12, 2]."""
    down = np.stack([states[:, :-1, :], states[:, 1:, :]], -1).reshape(len(states), -1, 2)
    right = np.stack([states[:, :, :-1], states[:, :, 1:]], -1).reshape(len(states), -1, 2)
    return np.concatenate([down, right], axis=1)


def ising_statistic(states):   # (magnetisation, aligned pairs): determines the energy
    pairs = open_bonds(states)
    return states.sum((1, 2)) * 100 + (pairs[..., 0] == pairs[..., 1]).sum(1)


def ising_energy(states, J=0.5, h=0.25):
    pairs = open_bonds(states)
    return -J * (pairs[..., 0] * pairs[..., 1]).sum(1) - h * states.sum((1, 2))


def binary_energy(states, w=1.2, b=-0.5):
    pairs = open_bonds(states)
    return -w * (pairs[..., 0] * pairs[..., 1]).sum(1) - b * states.sum((1, 2))


def potts_statistic(states):   # (sites at label 0, aligned pairs)
    pairs = open_bonds(states)
    return (states == 0).sum((1, 2)) * 100 + (pairs[..., 0] == pairs[..., 1]).sum(1)


def potts_energy(states, beta=0.8, h=0.4):
    pairs = open_bonds(states)
    return -beta * (pairs[..., 0] == pairs[..., 1]).sum(1) - h * (states == 0).sum((1, 2))


CASES = {   # source, group, values, statistic, energy, temperature
    "ising": (ISING, "s", (-1, 1), ising_statistic, ising_energy, 1.0),
    "binary": (BINARY, "x", (0, 1), ising_statistic, binary_energy, 1.0),
    "potts": (POTTS, "z", (0, 1, 2), potts_statistic, potts_energy, 0.8),
}


def exact_distribution(values, statistic, energy, temperature) -> dict:
    states = np.array(list(itertools.product(values, repeat=9))).reshape(-1, 3, 3)
    weights = np.exp(-(energy(states) - energy(states).min()) / temperature)
    keys = statistic(states)
    return {int(k): float(weights[keys == k].sum() / weights.sum()) for k in np.unique(keys)}


def largest_z(draws: np.ndarray, statistic, exact: dict) -> float:
    """The largest z-score over the bins; bins expected fewer than 5 times in N / 3 draws
    (where one draw more or less is several standard errors) are tested as one bin."""
    keys = statistic(draws.reshape(-1, 3, 3))
    n_eff = keys.size * EFFECTIVE_FRACTION
    assert set(np.unique(keys)) <= set(exact), "a draw outside the state space"
    rare = [k for k, p in exact.items() if n_eff * p < 5]
    bins = [([k], p) for k, p in exact.items() if k not in rare] + [(rare, sum(exact[k] for k in rare))]
    return max(abs(np.isin(keys, members).mean() - p) / np.sqrt(p * (1 - p) / n_eff)
               for members, p in bins if n_eff * p >= 5 and p < 1)


@pytest.fixture(scope="module")
def draws():
    """Draws per (case, backend, method), made once for the module (one model per case and
    backend: both methods share its compiled Gibbs sweep)."""
    made, models = {}, {}

    def get(case, backend, method):
        if (case, backend, method) not in made:
            source, group, _, _, _, temperature = CASES[case]
            if (case, backend) not in models:
                models[(case, backend)] = ebm.loads(source, backend=backend)
            model = models[(case, backend)]
            samples = model.sample(chains=CHAINS, steps=STEPS, burn_in=BURN_IN, method=method,
                                   temperature=temperature, seed=3, progress=False)
            assert samples.plan.method_of("discrete") == method
            made[(case, backend, method)] = samples[group]
        return made[(case, backend, method)]

    return get


# Every case on torch; on JAX (the same numpy cluster step, another Gibbs sweep and key
# stream) the Ising case with its field, to keep the module fast.
@pytest.mark.parametrize("method", ["swendsen_wang", "wolff"])
@pytest.mark.parametrize("case, backend", [(case, "torch") for case in sorted(CASES)] + [("ising", "jax")])
def test_cluster_draws_match_enumeration(draws, case, backend, method):
    _, _, values, statistic, energy, temperature = CASES[case]
    exact = exact_distribution(values, statistic, energy, temperature)
    assert largest_z(draws(case, backend, method), statistic, exact) < Z_LIMIT


def test_the_check_detects_a_wrong_distribution(draws):
    # The same draws against the Ising distribution without its field, and with J 20% off.
    sample = draws("ising", "torch", "swendsen_wang")
    for wrong in (lambda s: ising_energy(s, h=0.0), lambda s: ising_energy(s, J=0.6)):
        exact = exact_distribution((-1, 1), ising_statistic, wrong, 1.0)
        assert largest_z(sample, ising_statistic, exact) > 2 * Z_LIMIT


PERIODIC_ONE_TERM = """
const L = 4
param J = 0.4
param h = 0.1
latent s[L, L] : spin
energy coupling[i in 0..L, j in 0..L] = -J * s[i,j] * (s[(i+1) % L, j] + s[i, (j+1) % L])
energy field[i in 0..L, j in 0..L] = -h * s[i,j]
"""
PERIODIC_TWO_TERMS = """
const L = 4
param J = 0.4
param h = 0.1
latent s[L, L] : spin
energy down[i in 0..L, j in 0..L] = -J * s[i,j] * s[(i+1) % L, j]
energy right[i in 0..L, j in 0..L] = -J * s[i, j] * s[i, (j+1) % L]
energy field[i in 0..L, j in 0..L] = -h * s[i,j]
"""


def test_one_term_and_two_term_couplings_agree():
    found = []
    for source in (PERIODIC_ONE_TERM, PERIODIC_TWO_TERMS):
        model = ebm.loads(source, backend="numpy")
        assert model.plan("sample").method_of("discrete") == "swendsen_wang"
        found.append(potts_couplings(model.compiled, model.params, {}, ()))
        np.testing.assert_allclose(found[-1].strength, 0.8)      # J_e = 2 J for spins
    np.testing.assert_array_equal(found[0].edges, found[1].edges)
    np.testing.assert_allclose(found[0].unary, found[1].unary, atol=1e-6)
    # The same seed gives the same cluster updates.
    state = {"s": np.random.default_rng(0).choice([-1.0, 1.0], size=(5, 4, 4))}
    after = []
    for source in (PERIODIC_ONE_TERM, PERIODIC_TWO_TERMS):
        model = ebm.loads(source, backend="numpy")
        stepper = ClusterStepper(model, ("s",), "swendsen_wang", 1.0, state)
        after.append(stepper(model.backend.key(7), state)["s"])
    np.testing.assert_array_equal(after[0], after[1])


def test_plan_picks_swendsen_wang_for_ferromagnets_only():
    ising = ebm.load("examples/ising.ebm", backend="numpy")
    plan = ising.plan("sample")
    assert plan.method_of("discrete") == "swendsen_wang"
    assert "ferromagnetic" in plan.block("discrete").reason
    # The plan reads the model's parameters: an antiferromagnet is sampled by Gibbs.
    ising.set_params(J=-1.0)
    assert ising.plan("sample").method_of("discrete") == "gibbs"
    anti = ebm.loads(ISING.replace("param J = 0.5", "param J = -0.5"), backend="numpy")
    assert anti.plan("sample").method_of("discrete") == "gibbs"
    # Potts denoising with the noisy image observed: data terms are fields.
    denoise = ebm.load("examples/denoise.ebm", backend="numpy")
    assert denoise.plan("sample", observed=["y"]).method_of("discrete") == "swendsen_wang"
    constrained = ebm.loads(POTTS + "constraint corner : z[0, 0] != z[2, 2]\n", backend="numpy")
    assert constrained.plan("sample").method_of("discrete") == "gibbs"
    three = ebm.loads(ISING + "energy triple[i in 0..L-2] = -J * s[i,0] * s[i+1,0] * s[i+2,0]\n", backend="numpy")
    assert three.plan("sample").method_of("discrete") == "gibbs"
    # Nothing couples the hidden units of an RBM given its visible ones: Gibbs draws them exactly.
    assert ebm.load("examples/rbm.ebm", backend="numpy").plan("sample").method_of("discrete") == "gibbs"
    uncoupled = ebm.loads(ISING.replace("param J = 0.5", "param J = 0.0"), backend="numpy")
    assert uncoupled.plan("sample").method_of("discrete") == "gibbs"


def test_requests_that_cannot_be_met_say_which_term():
    ising = ebm.load("examples/ising.ebm", backend="numpy")
    ising.set_params(J=-1.0)
    with pytest.raises(EbmError, match="term 'coupling' has antiferromagnetic couplings") as err:
        ising.sample(chains=2, steps=4, method="swendsen_wang", progress=False)
    assert "method='gibbs'" in str(err.value) and "ising.ebm:6" in str(err.value)
    constrained = ebm.loads(POTTS + "constraint corner : z[0, 0] != z[2, 2]\n", backend="numpy")
    with pytest.raises(EbmError, match="term 'corner' is a hard constraint"):
        constrained.plan("sample", method="wolff")
    three = ebm.loads(ISING + "energy triple[i in 0..L-2] = -J * s[i,0] * s[i+1,0] * s[i+2,0]\n", backend="numpy")
    with pytest.raises(EbmError, match="term 'triple' couples 3 latent variables"):
        three.plan("sample", method="swendsen_wang")
    mixed = ebm.loads(ISING + "latent u : real\nenergy prior = u^2 + u * s[0, 0]\n", backend="numpy")
    assert mixed.plan("sample").method_of("discrete") in ("gibbs", "exact")
    with pytest.raises(EbmError, match="continuous variables"):
        mixed.plan("sample", method="swendsen_wang")


def test_couplings_that_read_data_are_checked_when_the_run_starts():
    source = """
const L = 3
observed w[L] : real
latent s[L] : spin
energy chain[i in 0..L-1] = -w[i] * s[i] * s[i+1]
"""
    model = ebm.loads(source, backend="numpy")
    # The plan cannot see the data, so it does not pick cluster moves by itself ...
    assert model.plan("sample", observed=["w"]).method_of("discrete") == "gibbs"
    # ... but a request is met when the observed couplings are ferromagnetic, and refused when not.
    good = model.sample(chains=4, steps=20, observed={"w": np.array([1.0, 0.5, 0.0])}, method="wolff",
                        progress=False)
    assert good["s"].shape == (4, 15, 3)
    with pytest.raises(EbmError, match="antiferromagnetic"):
        model.sample(chains=4, steps=20, observed={"w": np.array([1.0, -0.5, 0.0])}, method="wolff",
                     progress=False)


def test_numpy_compile_matches_plan_time_tables():
    # The plan-time check tabulates on the numpy backend with the declared initial values.
    graph = ebm.loads(POTTS, backend="numpy").graph
    compiled = compile_graph(graph, "numpy")
    couplings = potts_couplings(compiled, compiled.init_params(get_backend("numpy").key(0)), {}, ())
    np.testing.assert_allclose(couplings.strength, 0.8)
    np.testing.assert_allclose(couplings.unary[0, 0] - couplings.unary[0, 0].min(), [0.0, 0.4, 0.4])


def test_a_mixed_model_stays_gibbs_and_says_why():
    mixed = ebm.loads(ISING + "latent u : real\nenergy prior = u^2 + u * s[0, 0]\n", backend="numpy")
    block = mixed.plan("sample").block("discrete")
    assert block.method == "gibbs" and "cluster moves need the discrete block alone" in block.reason
    anti = ebm.loads(ISING.replace("param J = 0.5", "param J = -0.5") + "latent u : real\nenergy prior = u^2\n",
                     backend="numpy")
    assert "cluster" not in anti.plan("sample").block("discrete").reason


def test_jax_cluster_steps_do_not_depend_on_float64_being_switched_on():
    # The numpy generator is seeded from backend uniforms: JAX's randint would give other
    # bits once any float64 backend has switched jax_enable_x64 on in the process.
    import jax

    model = ebm.loads(PERIODIC_ONE_TERM, backend="jax")
    state = {"s": model.backend.asarray(np.random.default_rng(1).choice([-1.0, 1.0], size=(3, 4, 4)))}
    stepper = ClusterStepper(model, ("s",), "wolff", 1.0, state)
    was = jax.config.jax_enable_x64
    try:
        steps = []
        for x64 in (False, True):
            jax.config.update("jax_enable_x64", x64)
            steps.append(np.asarray(stepper(model.backend.key(4), state)["s"]))
    finally:
        jax.config.update("jax_enable_x64", was)
    np.testing.assert_array_equal(steps[0], steps[1])
