"""Replica exchange (inference/tempering.py) on two-mode models whose mode weights are known
exactly: single-temperature chains stay in the mode they start in, tempered ones reach
the weights.

Tolerance: draws within a chain are correlated, so a mode weight's standard error is taken
from the spread of the per-chain estimates (the chains are independent): SE = sd / sqrt(C).
An estimate must lie within 4 SE of the exact weight (a false alarm about 6e-5 per check),
and the SE itself must be small (below 0.02), so that a run that never mixed, whose
chains all agree by sitting in one mode, cannot pass by luck. The runs are seeded, so
the checks are deterministic; the tolerances say how far another seed may move them.
"""
from __future__ import annotations

import itertools

import numpy as np
import pytest

import ebmlang as ebm
from ebmlang import EbmError, Tempering
from ebmlang.inference.gibbs import build_gibbs_kernel, gibbs_blocks
from ebmlang.inference.potential import ModelPotential
from ebmlang.inference.temperature import INVERSE_TEMPERATURE
from ebmlang.inference.tempering import adaptation_rounds, as_tempering, equalised_ladder

# A fully connected ferromagnet (Curie-Weiss) with a weak field: modes all-up and all-down,
# a barrier of about 70 between them at T = 1, weights from the field.
CURIE_WEISS = """
const N = 10
param J = 1.0
param h = 0.12
latent s[N] : spin
energy pair[i in 0..N, j in 0..N where i < j] = -J * s[i] * s[j]
energy field[i in 0..N] = -h * s[i]
"""

# Two unit Gaussians at -5 and +5 with weights 0.3 and 0.7: a barrier of 12.5 at x = 0.
MIXTURE = """
const m = 5.0
const w = 0.3
latent x : real
energy mixture = -logsumexp(k in 0..2) (k * log(1 - w) + (1 - k) * log(w) - (x - (2 * k - 1) * m)^2 / 2)
"""
MIXTURE_WEIGHT = 0.7  # of x > 0; the mass of the other Gaussian beyond 0 is Phi(-5) ~ 3e-7

# A spin z pulls x toward 4 z: modes (z, x) = (+1, 4) and (-1, -4), p(z) from the field
# alone (the Gaussian in x integrates to the same for both), so p(z = 1) = sigmoid(2 h).
MIXED = """
const m = 4.0
const h = 0.4
latent z : spin
latent x : real
energy pull = (x - m * z)^2 / 2
energy field = -h * z
"""
MIXED_WEIGHT = 1.0 / (1.0 + np.exp(-0.8))


def curie_weiss_weight() -> float:
    """P(magnetisation > 0) of CURIE_WEISS, by enumerating its 1024 states."""
    s = np.array(list(itertools.product([-1, 1], repeat=10)), dtype=float)
    total = s.sum(1)
    energy = -(total ** 2 - 10) / 2 - 0.12 * total
    p = np.exp(-(energy - energy.min()))
    return float(p[total > 0].sum() / p.sum())


def weight_and_se(mode: np.ndarray) -> tuple[float, float]:
    """The share of draws in a mode (mode: bool [chains, draws]) and its standard error
    from the spread of the chains' shares."""
    per_chain = mode.mean(axis=1)
    return float(mode.mean()), float(per_chain.std(ddof=1) / np.sqrt(len(per_chain)))


def check_weight(mode: np.ndarray, exact: float) -> None:
    estimate, se = weight_and_se(mode)
    assert se < 0.02, f"standard error {se:.3f}: the chains disagree (not mixed)"
    assert abs(estimate - exact) < 4 * se, f"weight {estimate:.4f} vs exact {exact:.4f} (SE {se:.4f})"


def stuck(mode: np.ndarray) -> bool:
    """Every chain stayed in one mode for all its draws."""
    per_chain = mode.mean(axis=1)
    return bool(np.all((per_chain == 0) | (per_chain == 1)))


@pytest.fixture(scope="module")
def curie_weiss_jax():
    return ebm.loads(CURIE_WEISS, backend="jax")


@pytest.fixture(scope="module")
def mixture_run():
    model = ebm.loads(MIXTURE, backend="jax")
    return model, model.sample(chains=16, steps=1500, method="mala", tempering=4, seed=1, progress=False)


def test_discrete_single_temperature_is_stuck_and_tempering_reaches_the_weights(curie_weiss_jax):
    exact = curie_weiss_weight()
    plain = curie_weiss_jax.sample(chains=16, steps=300, method="gibbs", seed=1, progress=False)
    assert stuck(plain["s"].sum(-1) > 0)
    tempered = curie_weiss_jax.sample(chains=16, steps=1500, method="gibbs", tempering=4, seed=1, progress=False)
    check_weight(tempered["s"].sum(-1) > 0, exact)
    assert tempered["s"].shape == (16, 1125, 10)  # the T = 1 replicas only


def test_discrete_tempering_on_torch_with_a_given_ladder():
    model = ebm.loads(CURIE_WEISS, backend="torch")
    samples = model.sample(chains=12, steps=1200, method="gibbs", tempering=[1.0, 2.5, 5.0, 10.0], seed=2,
                           progress=False)
    check_weight(samples["s"].sum(-1) > 0, curie_weiss_weight())
    info = samples.info["tempering"]
    assert info["temperatures"] == [1.0, 2.5, 5.0, 10.0] and not info["adapted"]  # a given ladder stays


def test_continuous_mala_is_stuck_and_tempering_reaches_the_weights(mixture_run):
    model, tempered = mixture_run
    plain = model.sample(chains=16, steps=300, method="mala", seed=1, progress=False)
    assert stuck(plain["x"] > 0)
    check_weight(tempered["x"] > 0, MIXTURE_WEIGHT)


def test_the_ladder_adapts_toward_equal_swap_acceptance(mixture_run):
    _, samples = mixture_run
    info = samples.info["tempering"]
    temps, swaps = np.array(info["temperatures"]), np.array(info["swap_acceptance"])
    assert info["adapted"] and temps[0] == 1.0 and temps[-1] == pytest.approx(10.0)
    assert np.all(np.diff(temps) > 0)
    assert not np.allclose(temps, info["initial_temperatures"])  # it moved from the geometric start
    # Equal up to the noise of the rounds' estimates (measured: 0.75 to 0.77 at this seed).
    assert swaps.max() - swaps.min() < 0.1 and swaps.min() > 0.3
    assert info["round_trips"] > 100
    # One step size per chain, adapted at its temperature: hotter replicas take longer steps.
    assert np.all(np.diff(info["step_size"]) > 0)
    text = str(samples.summary(warn=False))
    assert "tempering: T = 1, " in text and "swap acceptance" in text and "4 replicas" in text


def test_mixed_model_on_torch_reaches_the_weights():
    model = ebm.loads(MIXED, backend="torch")
    method = {"discrete": "gibbs", "continuous": "mala"}
    plain = model.sample(chains=12, steps=300, method=method, seed=3, progress=False)
    assert stuck(plain["z"] > 0)
    tempered = model.sample(chains=12, steps=1500, method=method, tempering=4, seed=3, progress=False)
    check_weight(tempered["z"] > 0, MIXED_WEIGHT)
    check_weight(tempered["x"] > 0, MIXED_WEIGHT)


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_an_exact_discrete_block_draws_every_replica_at_its_temperature(backend):
    # One exact block for all replicas: each chain's tables scaled by its own inverse
    # temperature inside the compiled passes (a new ladder recompiles nothing).
    model = ebm.loads(MIXED, backend=backend)
    samples = model.sample(chains=12, steps=800, method={"discrete": "exact", "continuous": "mala"},
                           tempering=Tempering(replicas=3, max_temperature=12.0), seed=4, progress=False)
    estimate, se = weight_and_se(samples["z"] > 0)
    assert se < 0.05 and abs(estimate - MIXED_WEIGHT) < 4 * se
    assert len(samples.info["tempering"]["temperatures"]) == 3


def test_exact_block_tables_scale_per_chain():
    # Half the chains at T = 1 and half at T = 4 in one exact draw of a spin chain with a
    # field: each half's frequency of the all-up state against enumeration at its temperature.
    from ebmlang.inference.exact.block import ExactBlockStepper
    from ebmlang.inference.temperature import INVERSE_TEMPERATURE
    from ebmlang.inference.tempering import _TemperedModel

    source = ("latent s[3] : spin\nenergy pair[i in 0..2] = -0.8 * s[i] * s[i+1]\n"
              "energy field[i in 0..3] = -0.3 * s[i]\n")
    model = ebm.loads(source, backend="numpy")
    bk, chains = model.backend, 400
    beta = np.repeat([1.0, 0.25], chains // 2)
    tempered = _TemperedModel(model, {**model.params, INVERSE_TEMPERATURE: bk.asarray(beta)})
    stepper = ExactBlockStepper(tempered, ("s",), 1.0)
    state = {"s": bk.asarray(np.ones((chains, 3)))}
    up = []
    for key in bk.split(bk.key(1), 25):
        state = stepper(key, state)
        up.append(np.all(np.asarray(bk.to_numpy(state["s"])) > 0, axis=1))
    up = np.stack(up, axis=1)   # [chains, draws]: independent exact draws
    states = np.array(list(itertools.product([-1, 1], repeat=3)), dtype=float)
    energy = -0.8 * (states[:, :-1] * states[:, 1:]).sum(1) - 0.3 * states.sum(1)
    for half, b in ((slice(0, chains // 2), 1.0), (slice(chains // 2, chains), 0.25)):
        p = np.exp(-b * energy)
        exact = p[7] / p.sum()
        seen = up[half].mean()
        assert abs(seen - exact) < 4 * np.sqrt(exact * (1 - exact) / up[half].size), (b, seen, exact)


# Three-valued variables on a chain (two colours: block updates over K values) and a dense
# three-valued group (one unit per colour: the sequential scan).
POTTS_CHAIN = """
const N = 6
latent z[N] : integer in 0..3
energy pair[i in 0..N - 1] = -1.5 * [z[i] == z[i + 1]]
energy bias[i in 0..N] = 0.3 * z[i]
"""
DENSE_THREE = """
const N = 9
latent z[N] : integer in 0..3
energy pair[i in 0..N, j in 0..N where i < j] = 0.2 * z[i] * z[j]
energy bias[i in 0..N] = -0.4 * z[i]
"""


@pytest.mark.parametrize("source", [POTTS_CHAIN, DENSE_THREE, CURIE_WEISS, MIXED])
def test_a_temperature_per_chain_is_the_scalar_sweep_chain_by_chain(source):
    """Chains 0-3 at T = 1 and 4-7 at T = 2.5 in one sweep draw what the sweeps built at
    those temperatures draw, from the same key."""
    model = ebm.loads(source, backend="torch")
    bk, graph = model.backend, model.graph
    rng = np.random.default_rng(0)
    state = {name: bk.asarray(rng.choice(var.domain.values, size=(8,) + var.shape) if var.domain.is_discrete
                              else rng.normal(size=(8,) + var.shape)) for name, var in graph.variables.items()}
    blocks = gibbs_blocks(graph)
    params = {**model.params, INVERSE_TEMPERATURE: bk.asarray([1.0] * 4 + [1 / 2.5] * 4)}
    tempered, _ = build_gibbs_kernel(model.compiled, blocks)(bk.key(5), state, params)
    for temperature, chains in ((1.0, slice(0, 4)), (2.5, slice(4, 8))):
        plain, _ = build_gibbs_kernel(model.compiled, blocks, temperature)(bk.key(5), state, model.params)
        for name in tempered:
            np.testing.assert_array_equal(bk.to_numpy(tempered[name])[chains], bk.to_numpy(plain[name])[chains])


def test_a_temperature_per_chain_scales_the_potential():
    model = ebm.loads(MIXED, backend="torch")
    bk = model.backend
    state = {"z": bk.asarray([1.0, -1.0, 1.0]), "x": bk.asarray([0.5, -2.0, 3.0])}
    params = {**model.params, INVERSE_TEMPERATURE: bk.asarray([1.0, 0.5, 0.25])}
    tempered = ModelPotential(model.compiled, params, {"z": state["z"]}, ("x",))
    energy, grad = (bk.to_numpy(v) for v in tempered.energy_and_grad(tempered.pack(state)))
    for chain, temperature in enumerate((1.0, 2.0, 4.0)):
        plain = ModelPotential(model.compiled, model.params, {"z": state["z"]}, ("x",), temperature)
        e, g = (bk.to_numpy(v) for v in plain.energy_and_grad(plain.pack(state)))
        assert energy[chain] == pytest.approx(e[chain]) and grad[chain] == pytest.approx(g[chain])


def test_same_seed_same_draws(curie_weiss_jax):
    runs = [curie_weiss_jax.sample(chains=4, steps=60, method="gibbs", tempering=3, seed=7, progress=False)
            for _ in range(2)]
    np.testing.assert_array_equal(runs[0]["s"], runs[1]["s"])
    assert runs[0].info["tempering"] == runs[1].info["tempering"]


def test_equalised_ladder_keeps_its_ends_and_evens_the_rejections():
    ladder = np.geomspace(1.0, 10.0, 5)
    rejection = np.array([0.1, 0.1, 0.5, 0.9])  # the hot pairs reject most: move temperatures up there
    new = equalised_ladder(ladder, rejection)
    assert new[0] == 1.0 and new[-1] == pytest.approx(10.0) and np.all(np.diff(new) > 0)
    assert np.all(new[1:-1] > ladder[1:-1])
    # Rejection rates that are already equal leave the ladder where it is.
    np.testing.assert_allclose(equalised_ladder(ladder, np.full(4, 0.3)), ladder)
    assert adaptation_rounds(400) == (9, 18, 37, 75, 150, 300)
    assert adaptation_rounds(5) == ()


@pytest.mark.parametrize("bad, message", [
    (0, "at least 2 replicas"), (1, "at least 2 replicas"), (-3, "at least 2 replicas"),
    (True, "number of replicas or a ladder"), ("4", "number of replicas"),
    ([2.0, 3.0], "starts at 1"), ([1.0, 3.0, 2.0], "increase strictly"), ([1.0, 1.0], "increase strictly"),
    ([1.0], "at least 2 temperatures"), ([1.0, float("inf")], "finite"),
    (Tempering(replicas=4, max_temperature=0.5), "above 1"),
    (Tempering(replicas=3, temperatures=(1.0, 2.0)), "3 replicas but a ladder of 2"),
])
def test_bad_tempering_is_a_clear_error(curie_weiss_jax, bad, message):
    with pytest.raises(EbmError, match=message):
        curie_weiss_jax.sample(chains=2, steps=10, tempering=bad, progress=False)


def test_tempering_settings():
    assert as_tempering(None) is None
    assert as_tempering(3).adapts and as_tempering(3).replicas == 3
    fixed = as_tempering((1, 2, 4))
    assert not fixed.adapts and fixed.temperatures == (1.0, 2.0, 4.0)
    assert as_tempering(Tempering(temperatures=(1, 2), adapt=True)).adapts


def test_the_command_line_flag(tmp_path, capsys):
    from ebmlang.cli.entry import main

    model = tmp_path / "cw.ebm"
    model.write_text(CURIE_WEISS)
    args = ["sample", str(model), "--backend", "numpy", "--method", "gibbs", "--chains", "2", "--steps", "40", "-q"]
    assert main(args + ["--tempering", "1,2,4"]) == 0
    out = capsys.readouterr().out
    assert "  tempering: T = 1, 2, 4; swap acceptance " in out and "3 replicas of each chain" in out
    assert main(args + ["--tempering", "1,4,2"]) == 1
    assert "must increase strictly" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(args + ["--tempering", "many"])
    assert exit_.value.code == 2 and "comma-separated temperatures" in capsys.readouterr().err


def test_a_pair_that_barely_swaps_is_a_problem():
    model = ebm.loads(CURIE_WEISS, backend="numpy")
    samples = model.sample(chains=2, steps=40, method="gibbs", tempering=[1.0, 50.0], seed=0, progress=False)
    assert samples.info["tempering"]["swap_acceptance"][0] < 0.05  # E differs by ~40 between the two
    problems = samples.summary(warn=False).problems
    assert any("swaps between T = 1 and 50 are accepted" in p and "add replicas" in p for p in problems)


def test_cluster_updates_run_every_replica_at_its_own_temperature():
    # One Swendsen-Wang stepper for all replicas: bonds 1 - exp(-J beta_c) and cluster
    # energies beta_c E per chain. Half the chains at T = 1, half at T = 2.5 (weaker
    # couplings, so the magnetisation spreads out); each half's histogram of the total
    # magnetisation against enumeration at its own temperature.
    from ebmlang.inference.cluster import ClusterStepper
    from ebmlang.inference.temperature import INVERSE_TEMPERATURE
    from ebmlang.inference.tempering import _TemperedModel

    model = ebm.loads(CURIE_WEISS, backend="numpy")
    bk, chains = model.backend, 32
    beta = np.repeat([1.0, 1 / 2.5], chains // 2)
    tempered = _TemperedModel(model, {**model.params, INVERSE_TEMPERATURE: bk.asarray(beta)})
    state = {"s": bk.asarray(np.where(np.random.default_rng(0).random((chains, 10)) < 0.5, -1.0, 1.0))}
    stepper = ClusterStepper(tempered, ("s",), "swendsen_wang", 1.0, state)
    totals = []
    for key in bk.split(bk.key(4), 400):
        state = stepper(key, state)
        totals.append(np.asarray(bk.to_numpy(state["s"])).sum(-1))
    totals = np.stack(totals[50:], axis=1)  # [chains, draws]
    s = np.array(list(itertools.product([-1, 1], repeat=10)), dtype=float)
    total = s.sum(1)
    energy = -(total ** 2 - 10) / 2 - 0.12 * total
    for half, temperature in ((slice(0, chains // 2), 1.0), (slice(chains // 2, chains), 2.5)):
        p = np.exp(-(energy - energy.min()) / temperature)
        exact = np.array([p[total == m].sum() for m in range(-10, 11, 2)]) / p.sum()
        draws = totals[half].ravel()
        seen = np.array([np.mean(draws == m) for m in range(-10, 11, 2)])
        # Swendsen-Wang decorrelates this model in a few steps: N / 3 effective draws, 4.5 SE per bin.
        se = np.sqrt(exact * (1 - exact) / (draws.size / 3)) + 1e-3
        assert np.all(np.abs(seen - exact) < 4.5 * se), (temperature, seen.round(3), exact.round(3))


def test_tempered_swendsen_wang_reaches_the_weights():
    model = ebm.loads(CURIE_WEISS, backend="torch")
    samples = model.sample(chains=12, steps=800, method="swendsen_wang", tempering=3, seed=2, progress=False)
    assert [b.method for b in samples.plan.blocks] == ["swendsen_wang"]
    check_weight(samples["s"].sum(-1) > 0, curie_weiss_weight())
