"""The hand-written reference kernels (and peer adapters) against exact answers.

They are the baselines ebmlang is compared with and the oracles of the benchmark's
cross-checks, so each is checked against enumeration or a closed form.
"""
from __future__ import annotations

import itertools
import math
import sys
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks import rbm_exact  # noqa: E402
from benchmarks.kernels import ising, langevin, potts  # noqa: E402


@pytest.fixture
def torch_one_thread():
    """torch with one intra-op thread for the test, restored after: these tensors are small,
    and on a busy 2-core machine a second thread costs far more in waiting than it gains."""
    torch = pytest.importorskip("torch")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield torch
    torch.set_num_threads(threads)


# --------------------------------------------------------------------------
# Ising: 4x4 periodic lattice, 2^16 states enumerated

BETA = 0.44
SIDE = 4
CHAINS = 8000
SWEEPS = 40


@pytest.fixture(scope="module")
def exact_ising() -> dict[str, float]:
    codes = np.arange(2 ** (SIDE * SIDE))
    states = ((codes[:, None] >> np.arange(SIDE * SIDE)) & 1).astype(np.int8) * 2 - 1
    states = states.reshape(-1, SIDE, SIDE)
    energy = ising.energy_per_site(states)
    magnetisation = ising.abs_magnetisation(states)
    log_weights = BETA * SIDE * SIDE * (-energy)
    weights = np.exp(log_weights - log_weights.max())
    weights /= weights.sum()
    return {"E/site": float(weights @ energy), "|m|": float(weights @ magnetisation)}


def assert_matches_exact(spins: np.ndarray, exact: dict[str, float]) -> None:
    # Chains are independent and (after 40 sweeps of a 16-site lattice, whose slowest
    # mode relaxes in a few sweeps) stationary, so the chain mean has standard error
    # sd / sqrt(chains); 4.5 se keeps false alarms below 1e-5 per check while a wrong
    # conditional (e.g. beta off by 10%) moves E/site by > 10 se.
    for name, values in (("E/site", ising.energy_per_site(spins)), ("|m|", ising.abs_magnetisation(spins))):
        standard_error = values.std(ddof=1) / math.sqrt(len(values))
        assert abs(values.mean() - exact[name]) < 4.5 * standard_error, (name, values.mean(), exact[name])


def hot_start() -> np.ndarray:
    return ising.random_spins(CHAINS, SIDE, seed=1)


def test_numpy_checkerboard_gibbs_matches_enumeration(exact_ising) -> None:
    assert_matches_exact(ising.numpy_sweeps(hot_start(), BETA, SWEEPS, seed=2), exact_ising)


def test_torch_checkerboard_gibbs_matches_enumeration(exact_ising, torch_one_thread) -> None:
    torch = torch_one_thread
    out = ising.torch_sweeps(torch.from_numpy(hot_start()), BETA, SWEEPS, seed=2)
    assert_matches_exact(out.numpy(), exact_ising)


def test_jax_checkerboard_gibbs_matches_enumeration(exact_ising) -> None:
    jax = pytest.importorskip("jax")
    out = ising.jax_sweeps_fn()(jax.random.key(2), jax.numpy.asarray(hot_start()), BETA, SWEEPS)
    assert_matches_exact(np.asarray(out), exact_ising)


def test_thrml_adapter_matches_enumeration(exact_ising) -> None:
    jax = pytest.importorskip("jax")
    pytest.importorskip("thrml")
    from benchmarks.peers.thrml_ising import block_states_from_spins, thrml_sampler

    run, block_sites = thrml_sampler(SIDE, BETA)
    blocks = [jax.numpy.asarray(b) for b in block_states_from_spins(hot_start(), block_sites)]
    out = run(jax.random.split(jax.random.key(3), CHAINS), blocks, SWEEPS)
    assert_matches_exact(np.asarray(out), exact_ising)


def test_packing_round_trips_and_neighbour_tables_are_the_lattice() -> None:
    side = 6
    spins = ising.random_spins(3, side, seed=0)
    assert np.array_equal(ising.unpack_numpy(ising.pack(spins, side), side), spins)
    sites, neighbours = ising.neighbour_tables(side)
    rows, cols = np.divmod(sites[:, :, None], side)
    n_rows, n_cols = np.divmod(neighbours, side)
    row_step = np.minimum((rows - n_rows) % side, (n_rows - rows) % side)
    col_step = np.minimum((cols - n_cols) % side, (n_cols - cols) % side)
    assert np.all(row_step + col_step == 1)  # every listed neighbour is one step away
    assert np.all((n_rows + n_cols) % 2 != (rows + cols) % 2)  # and of the other colour
    assert all(len(set(row)) == 4 for row in neighbours.reshape(-1, 4).tolist())


def test_lattice_checks_reject_odd_sides() -> None:
    with pytest.raises(ValueError, match="even L"):
        ising.numpy_sweeps(np.ones((1, 5, 5), dtype=np.int8), BETA, 1, seed=0)


# --------------------------------------------------------------------------
# Langevin on the ring: msd to the nearest mode has a closed form

SIGMA, STEP, RING_CHAINS, RING_STEPS = 0.5, 0.05, 8192, 100


def ring_start() -> tuple[np.ndarray, np.ndarray]:
    means = langevin.ring_means(8, 4.0)
    # Start at the modes: the within-mode law relaxes by a factor (1 - eps/sigma^2) = 0.8
    # per step, so 100 steps leave no trace of the start (0.8^100 ~ 2e-10).
    rng = np.random.default_rng(0)
    x0 = means[rng.integers(0, 8, RING_CHAINS)] + SIGMA * rng.standard_normal((RING_CHAINS, 2))
    return x0.astype(np.float32), means


def assert_msd(x: np.ndarray, means: np.ndarray, exact: float) -> None:
    _, squared = langevin.nearest_mode(np.asarray(x, dtype=np.float64), means)
    # Independent chains: se = sd / sqrt(n) ~ 0.006; ULA's bias (0.556 vs 0.5) is ~9 se,
    # so a 4.5 se tolerance separates a correct MALA from an unadjusted one and vice versa.
    standard_error = squared.std(ddof=1) / math.sqrt(len(squared))
    assert abs(squared.mean() - exact) < 4.5 * standard_error, (squared.mean(), exact)


@pytest.mark.parametrize("adjusted", [False, True], ids=["ULA", "MALA"])
def test_torch_langevin_stationary_msd(adjusted: bool, torch_one_thread) -> None:
    torch = torch_one_thread
    x0, means = ring_start()
    x, rate = langevin.torch_langevin(
        torch.from_numpy(x0), torch.from_numpy(means), SIGMA, STEP, RING_STEPS, seed=1, adjusted=adjusted
    )
    exact = 2 * SIGMA**2 if adjusted else langevin.ula_stationary_msd(SIGMA, STEP)
    assert_msd(x.numpy(), means, exact)
    assert (0.9 < rate < 1.0) if adjusted else rate == 1.0


@pytest.mark.parametrize("adjusted", [False, True], ids=["ULA", "MALA"])
def test_jax_langevin_stationary_msd(adjusted: bool) -> None:
    jax = pytest.importorskip("jax")
    x0, means = ring_start()
    run = langevin.jax_langevin_fn(adjusted)
    x, rate = run(jax.random.key(1), jax.numpy.asarray(x0), jax.numpy.asarray(means), SIGMA, STEP, RING_STEPS)
    exact = 2 * SIGMA**2 if adjusted else langevin.ula_stationary_msd(SIGMA, STEP)
    assert_msd(np.asarray(x), means, exact)
    assert (0.9 < float(rate) < 1.0) if adjusted else float(rate) == 1.0


@pytest.mark.parametrize("adjusted", [False, True], ids=["ULA", "MALA"])
def test_blackjax_adapter_stationary_msd(adjusted: bool) -> None:
    jax = pytest.importorskip("jax")
    pytest.importorskip("blackjax")
    from benchmarks.peers.blackjax_langevin import blackjax_langevin_fn

    x0, means = ring_start()
    x, rate = blackjax_langevin_fn(means, SIGMA, STEP, adjusted)(jax.random.key(1), jax.numpy.asarray(x0), RING_STEPS)
    exact = 2 * SIGMA**2 if adjusted else langevin.ula_stationary_msd(SIGMA, STEP)
    assert_msd(np.asarray(x), means, exact)
    assert (0.9 < float(rate) < 1.0) if adjusted else float(rate) == 1.0


# --------------------------------------------------------------------------
# Potts: energies by brute force, graph cut vs enumeration, ICM's local optimality


def brute_force_energy(x: np.ndarray, noisy: np.ndarray, eta: float, beta: float) -> float:
    height, width = x.shape
    total = 0.0
    for i, j in itertools.product(range(height), range(width)):
        total += eta * (x[i, j] != noisy[i, j])
        total += beta * (i + 1 < height and x[i, j] != x[i + 1, j])
        total += beta * (j + 1 < width and x[i, j] != x[i, j + 1])
    return total


def test_potts_energy_matches_brute_force() -> None:
    rng = np.random.default_rng(0)
    x, noisy = rng.integers(0, 3, (5, 7)), rng.integers(0, 3, (5, 7))
    assert potts.potts_energy(x, noisy, 2.0, 1.5) == pytest.approx(brute_force_energy(x, noisy, 2.0, 1.5))


def test_local_costs_are_energy_differences() -> None:
    rng = np.random.default_rng(1)
    x, noisy = rng.integers(0, 4, (6, 5)), rng.integers(0, 4, (6, 5))
    costs = potts.local_costs(x, noisy, 4, 2.0, 1.5)
    base = potts.potts_energy(x, noisy, 2.0, 1.5)
    for i, j, k in itertools.product(range(6), range(5), range(4)):
        changed = x.copy()
        changed[i, j] = k
        difference = potts.potts_energy(changed, noisy, 2.0, 1.5) - base
        assert difference == pytest.approx(costs[k, i, j] - costs[x[i, j], i, j])


def test_binary_graph_cut_is_the_exact_minimum() -> None:
    pytest.importorskip("maxflow")
    rng = np.random.default_rng(2)
    noisy = rng.integers(0, 2, (3, 4))
    eta, beta = 1.0, 0.8  # comparable weights, so the optimum is neither y nor constant
    labellings = ((np.arange(2**12)[:, None] >> np.arange(12)) & 1).reshape(-1, 3, 4)
    best = min(potts.potts_energy(x, noisy, eta, beta) for x in labellings)
    cut = potts.graph_cut_binary(noisy, eta, beta)
    assert potts.potts_energy(cut, noisy, eta, beta) == pytest.approx(best)


def test_icm_stops_at_a_single_pixel_local_minimum() -> None:
    clean = potts.synthetic_image(24, 4)
    noisy = potts.add_noise(clean, 4, 0.15, seed=0)
    x, sweeps = potts.icm(noisy, 4, 2.0, 1.5, max_sweeps=100)
    assert sweeps < 100
    costs = potts.local_costs(x, noisy, 4, 2.0, 1.5)
    current = np.take_along_axis(costs, x[None], axis=0)[0]
    assert np.all(costs.min(axis=0) >= current)
    assert potts.potts_energy(x, noisy, 2.0, 1.5) < potts.potts_energy(noisy, noisy, 2.0, 1.5)


def test_noise_flips_the_stated_fraction_to_other_labels() -> None:
    clean = potts.synthetic_image(128, 4)
    assert set(np.unique(clean)) == {0, 1, 2, 3}
    noisy = potts.add_noise(clean, 4, 0.15, seed=0)
    # 16384 Bernoulli(0.15) flips: sd of the fraction is 0.0028; 0.015 is > 5 sd.
    assert abs(np.mean(noisy != clean) - 0.15) < 0.015
    assert noisy.min() >= 0 and noisy.max() <= 3


# --------------------------------------------------------------------------
# RBM: exact log-likelihood against brute-force enumeration of both layers


def brute_force_log_z(weights: np.ndarray, visible_bias: np.ndarray, hidden_bias: np.ndarray) -> float:
    n_hidden, n_visible = weights.shape
    v = rbm_exact.binary_configurations(0, 2**n_visible, n_visible)
    h = rbm_exact.binary_configurations(0, 2**n_hidden, n_hidden)
    negative_energy = (v @ visible_bias)[:, None] + (h @ hidden_bias)[None, :] + v @ weights.T @ h.T
    return float(np.logaddexp.reduce(negative_energy.ravel()))


@pytest.mark.parametrize("shape", [(3, 6), (6, 3)], ids=["fewer-hidden", "fewer-visible"])
def test_rbm_log_partition_matches_brute_force(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(0)
    weights = rng.normal(0, 1.5, shape)
    visible_bias, hidden_bias = rng.normal(0, 1, shape[1]), rng.normal(0, 1, shape[0])
    exact = brute_force_log_z(weights, visible_bias, hidden_bias)
    assert rbm_exact.log_partition(weights, visible_bias, hidden_bias, chunk=5) == pytest.approx(exact, rel=1e-12)


def test_rbm_likelihood_is_a_distribution() -> None:
    rng = np.random.default_rng(1)
    weights = rng.normal(0, 1, (4, 7))
    visible_bias, hidden_bias = rng.normal(0, 1, 7), rng.normal(0, 1, 4)
    every_visible = rbm_exact.binary_configurations(0, 2**7, 7)
    log_p = rbm_exact.log_likelihood(every_visible, weights, visible_bias, hidden_bias)
    assert np.exp(log_p).sum() == pytest.approx(1.0, rel=1e-12)


def test_rbm_exact_refuses_huge_enumerations() -> None:
    with pytest.raises(ValueError, match="2\\^40"):
        rbm_exact.log_partition(np.zeros((40, 50)), np.zeros(50), np.zeros(40))


# --------------------------------------------------------------------------
# Fully connected Boltzmann machine: 8 units, 2^8 states enumerated


def exact_boltzmann_means(weights: np.ndarray, bias: np.ndarray) -> np.ndarray:
    from benchmarks.kernels import boltzmann

    states = np.array(list(itertools.product([-1.0, 1.0], repeat=len(bias))))
    coupling = boltzmann.couplings(weights)
    log_weights = 0.5 * np.einsum("si,ij,sj->s", states, coupling, states) + states @ bias
    p = np.exp(log_weights - log_weights.max())
    return (p / p.sum()) @ states


def boltzmann_problem():
    rng = np.random.default_rng(3)
    return rng.normal(0, 0.4, (8, 8)), rng.normal(0, 0.3, 8), rng.choice([-1.0, 1.0], (4000, 8))


def assert_means_match(spins: np.ndarray, exact: np.ndarray) -> None:
    # Independent chains after 30 sweeps of 8 units (mixing in a few sweeps): chain means
    # have standard error sd / sqrt(chains); 4.5 se per unit, 8 units.
    standard_error = spins.std(axis=0, ddof=1) / math.sqrt(len(spins))
    assert np.all(np.abs(spins.mean(axis=0) - exact) < 4.5 * standard_error + 1e-3), (spins.mean(0), exact)


def test_torch_sequential_boltzmann_sweep_matches_enumeration(torch_one_thread) -> None:
    from benchmarks.kernels import boltzmann

    torch = torch_one_thread
    weights, bias, spins = boltzmann_problem()
    run = boltzmann.torch_sweeps(torch.tensor(boltzmann.couplings(weights), dtype=torch.float64),
                                 torch.tensor(bias, dtype=torch.float64))
    out = run(torch.Generator().manual_seed(0), torch.tensor(spins, dtype=torch.float64), 30).numpy()
    assert_means_match(out, exact_boltzmann_means(weights, bias))


def test_jax_sequential_boltzmann_sweep_matches_enumeration() -> None:
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp

    from benchmarks.kernels import boltzmann

    weights, bias, spins = boltzmann_problem()
    run = boltzmann.jax_sweeps(jnp.asarray(boltzmann.couplings(weights), jnp.float32), jnp.asarray(bias, jnp.float32))
    out = np.asarray(run(jax.random.key(0), jnp.asarray(spins, jnp.float32), 30))
    assert_means_match(out, exact_boltzmann_means(weights, bias))


# --------------------------------------------------------------------------
# HMM forward-backward / Viterbi and the CRF likelihood: 3^5 paths enumerated

def hmm_problem():
    rng = np.random.default_rng(8)
    log_start = np.log(rng.dirichlet(np.ones(3)))
    log_A = np.log(rng.dirichlet(np.ones(3), size=3))
    return rng.normal(size=(2, 5)) * 2, log_start, log_A, np.array([-1.5, 0.0, 1.5]), np.array([0.7, 1.0, 1.3])


def enumerated_paths(x, log_start, log_A, mu, sigma):
    """(paths [S, T], energies [B, S]) of every hidden path."""
    from benchmarks.kernels import hmm

    paths = np.array(list(itertools.product(range(3), repeat=x.shape[1])))
    energies = np.stack([hmm.path_energy(paths, np.broadcast_to(row, paths.shape), log_start, log_A, mu, sigma)
                         for row in x])
    return paths, energies


def test_hmm_kernels_match_enumeration(torch_one_thread) -> None:
    import jax.numpy as jnp
    from scipy.special import logsumexp

    from benchmarks.kernels import hmm

    problem = hmm_problem()
    x = problem[0]
    paths, energies = enumerated_paths(*problem)
    log_z = logsumexp(-energies, axis=1)
    weights = np.exp(-energies - log_z[:, None])
    posterior = np.stack([[np.bincount(paths[:, t], weights=w, minlength=3) for t in range(x.shape[1])]
                          for w in weights])
    best = paths[np.argmin(energies, axis=1)]
    numpy_log_z, numpy_posterior = hmm.numpy_forward_backward(*problem)
    np.testing.assert_allclose(numpy_log_z, log_z, atol=1e-10)
    np.testing.assert_allclose(numpy_posterior, posterior, atol=1e-10)
    torch = torch_one_thread
    for forward_backward, viterbi, convert in (
            (*hmm.torch_hmm(*(torch.as_tensor(p) for p in problem[1:])), torch.as_tensor),
            (*hmm.jax_hmm(*(jnp.asarray(p) for p in problem[1:])), jnp.asarray)):
        got_log_z, got_posterior = forward_backward(convert(x))
        np.testing.assert_allclose(np.asarray(got_log_z), log_z, atol=1e-4)
        np.testing.assert_allclose(np.asarray(got_posterior), posterior, atol=1e-4)
        np.testing.assert_array_equal(np.asarray(viterbi(convert(x))), best)


def test_torch_crf_loss_is_the_enumerated_negative_log_likelihood(torch_one_thread) -> None:
    from scipy.special import logsumexp

    from benchmarks.kernels import crf

    torch = torch_one_thread
    train_epoch, params = crf.torch_crf_trainer(3, 2, lr=0.0, seed=1)   # lr 0: the epoch only scores
    rng = np.random.default_rng(3)
    with torch.no_grad():
        params["A"].copy_(torch.as_tensor(rng.normal(size=(3, 3)), dtype=torch.float32))
        params["b"].copy_(torch.as_tensor(rng.normal(size=3), dtype=torch.float32))
    x, y = rng.normal(size=(4, 4, 2)), rng.integers(0, 3, size=(4, 4))
    W, b, A = (params[k].detach().numpy().astype(np.float64) for k in ("W", "b", "A"))
    paths = np.array(list(itertools.product(range(3), repeat=4)))

    def score(xn, path):
        return (xn @ W.T + b)[np.arange(4), path].sum() + A[path[:-1], path[1:]].sum()

    expected = np.mean([logsumexp([score(xn, p) for p in paths]) - score(xn, yn) for xn, yn in zip(x, y)])
    loss = train_epoch(torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y), batch_size=4)
    assert loss == pytest.approx(expected, abs=1e-4)


def test_the_gaussian_bernoulli_rbm_kernels_dsm_loss_is_its_closed_form(torch_one_thread):
    import torch

    from benchmarks.kernels import gbrbm

    rng = np.random.default_rng(0)
    W, b, c = rng.normal(0, 0.5, (5, 3)), rng.normal(size=5), rng.normal(size=3)
    v, eps, sigma = rng.normal(size=(7, 5)), rng.normal(size=(7, 5)), 0.3
    as_t = lambda x: torch.as_tensor(x, dtype=torch.float64)  # noqa: E731
    loss = gbrbm.dsm_loss(as_t(v), as_t(eps), sigma, as_t(W), as_t(b), as_t(c))
    noisy = v + sigma * eps
    # grad F(v) = (v - b) - W sigmoid(c + W^T v)
    score = (noisy - b) - (1.0 / (1.0 + np.exp(-(noisy @ W + c)))) @ W.T
    assert float(loss.detach()) == pytest.approx(0.5 * np.mean(np.sum((score - eps / sigma) ** 2, axis=1)), rel=1e-12)


def test_the_gaussian_bernoulli_rbm_nce_kernel_learns_a_gaussian_mean(torch_one_thread):
    from benchmarks.kernels import gbrbm

    # Without hidden units the model is N(b, I): NCE against the data's Gaussian must move b
    # to the data's mean (with hidden units, W h could carry part of the mean instead).
    data = np.random.default_rng(1).normal(2.0, 1.0, (1000, 3))
    train = gbrbm.torch_nce(data, np.zeros((3, 0)), batch_size=100, lr=0.05, ratio=4.0, seed=0)
    _, b, _ = train(15)
    np.testing.assert_allclose(b.numpy(), data.mean(0), atol=0.15)
