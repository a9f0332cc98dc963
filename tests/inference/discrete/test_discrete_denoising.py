"""Image denoising grids: graph cut (binary) and alpha-expansion (4 labels)."""
from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

from ebmlang.inference.discrete_map import (
    solve_alpha_expansion,
    solve_enumeration,
    solve_graphcut,
    solve_icm,
    solve_max_product_bp,
)
from ebmlang.inference.tabular import TabularMRF, grid_edges

POTTS_WEIGHT = 0.8
# Data term: cost 1 for disagreeing with the noisy pixel. With 4 neighbours, an isolated
# flipped pixel is corrected (saves 4 * 0.8 > 1) while straight shape borders
# (1 disagreeing neighbour) are kept.


def binary_scene(size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[:size, :size]
    clean = ((rows - size * 0.4) ** 2 + (cols - size * 0.45) ** 2 < (size * 0.25) ** 2).astype(int)
    clean[size * 3 // 4:, size // 8: size // 2] = 1
    flipped = rng.random((size, size)) < 0.15
    return clean, np.where(flipped, 1 - clean, clean)


def denoising_model(noisy: np.ndarray) -> TabularMRF:
    height, width = noisy.shape
    labels = np.arange(2)
    unary = (noisy.reshape(-1, 1) != labels[None, :]).astype(float)
    return TabularMRF.from_dense_potts(unary, grid_edges((height, width)), POTTS_WEIGHT)


def networkx_min_energy(noisy: np.ndarray) -> float:
    """Minimum energy by the textbook Potts construction and networkx's max-flow.

    Source side = label 0. Arc s -> i costs the data term of label 1 (cut when i takes 1),
    i -> t the data term of label 0; neighbours get arcs both ways of the Potts weight.
    """
    graph = nx.DiGraph()
    height, width = noisy.shape
    for r in range(height):
        for c in range(width):
            node = (r, c)
            graph.add_edge("s", node, capacity=float(noisy[r, c] != 1))
            graph.add_edge(node, "t", capacity=float(noisy[r, c] != 0))
            for other in ((r + 1, c), (r, c + 1)):
                if other[0] < height and other[1] < width:
                    graph.add_edge(node, other, capacity=POTTS_WEIGHT)
                    graph.add_edge(other, node, capacity=POTTS_WEIGHT)
    value, _ = nx.minimum_cut(graph, "s", "t")
    return value


def test_graph_cut_on_a_16x16_crop_matches_networkx_min_cut():
    _, noisy = binary_scene(64, seed=0)
    crop = noisy[20:36, 10:26]
    result = solve_graphcut(denoising_model(crop))
    # Energies are multiples of 0.2 summed over ~700 terms: 1e-9 only absorbs rounding.
    assert result.energy == pytest.approx(networkx_min_energy(crop), abs=1e-9)


def test_graph_cut_on_a_4x4_crop_matches_enumeration():
    _, noisy = binary_scene(64, seed=1)
    for top, left in [(0, 0), (24, 24), (40, 8)]:
        mrf = denoising_model(noisy[top:top + 4, left:left + 4])
        assert solve_graphcut(mrf).energy == pytest.approx(solve_enumeration(mrf).energy, abs=1e-12)


def test_graph_cut_denoises_a_64x64_binary_image():
    clean, noisy = binary_scene(64, seed=2)
    assert 0.13 < (noisy != clean).mean() < 0.17
    result = solve_graphcut(denoising_model(noisy))
    recovered = (result.labels.reshape(64, 64) == clean).mean()
    assert recovered >= 0.95
    # The minimum is below the energies of the clean image and of the noisy input.
    mrf = denoising_model(noisy)
    assert result.energy <= mrf.energy(clean.reshape(-1)) and result.energy <= mrf.energy(noisy.reshape(-1))


def four_label_scene(size: int, seed: int):
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[:size, :size]
    clean = (rows >= size // 2).astype(int) * 2 + (cols >= size // 2)
    clean[(rows - size // 2) ** 2 + (cols - size // 2) ** 2 < (size // 5) ** 2] = 3 - clean[
        (rows - size // 2) ** 2 + (cols - size // 2) ** 2 < (size // 5) ** 2]
    levels = np.array([0.0, 1.0, 2.0, 3.0])
    observed = levels[clean] + rng.normal(0.0, 0.8, clean.shape)
    unary = (observed.reshape(-1, 1) - levels[None, :]) ** 2
    return clean, TabularMRF.from_dense_potts(unary, grid_edges((size, size)), 1.0)


def test_alpha_expansion_beats_icm_on_a_4_label_denoising_grid():
    clean, mrf = four_label_scene(40, seed=3)
    init = np.argmin(mrf.unary, axis=1)
    icm = solve_icm(mrf, init=init)
    expansion = solve_alpha_expansion(mrf, init=init)
    assert expansion.energy < icm.energy - 1.0
    assert np.all(np.diff(expansion.info["energy_trace"]) < 0)
    assert (expansion.labels.reshape(clean.shape) == clean).mean() > 0.9
    # Loopy BP with its ICM polish also escapes ICM's local minima (here it even edges out
    # expansion by ~0.2%; neither is exact on a loopy grid).
    bp = solve_max_product_bp(mrf, iters=50)
    assert bp.energy <= icm.energy
