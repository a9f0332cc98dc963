"""Potts denoising: a synthetic image, its energy, ICM (numpy) and an exact 2-label graph cut.

Energy of a labelling x [H, W] given the noisy image y (4-neighbour grid, no wrap):

    E(x) = eta * sum_i [x_i != y_i] + beta * sum_<ij> [x_i != x_j]
"""
from __future__ import annotations

import numpy as np


def synthetic_image(side: int, labels: int) -> np.ndarray:
    """int [side, side]: background 0 with two rectangles and two discs on top, their
    labels cycling through 1..labels-1 (all 1 for two labels)."""
    rows, cols = np.mgrid[0:side, 0:side] / side
    shapes = [
        (rows >= 0.10) & (rows < 0.45) & (cols >= 0.08) & (cols < 0.50),
        (rows - 0.30) ** 2 + (cols - 0.72) ** 2 < 0.18**2,
        (rows >= 0.55) & (rows < 0.92) & (cols >= 0.55) & (cols < 0.88),
        (rows - 0.74) ** 2 + (cols - 0.28) ** 2 < 0.16**2,
    ]
    image = np.zeros((side, side), dtype=np.int64)
    for number, shape in enumerate(shapes):
        image[shape] = 1 + number % (labels - 1)
    return image


def add_noise(clean: np.ndarray, labels: int, rate: float, seed: int) -> np.ndarray:
    """Each pixel, with probability `rate`, replaced by a uniformly drawn *different* label."""
    rng = np.random.default_rng(seed)
    flip = rng.random(clean.shape) < rate
    other = (clean + rng.integers(1, labels, size=clean.shape)) % labels
    return np.where(flip, other, clean)


def potts_energy(x: np.ndarray, noisy: np.ndarray, eta: float, beta: float) -> float:
    """E(x) above, for one labelling [H, W]."""
    disagreements = np.count_nonzero(x != noisy)
    cuts = np.count_nonzero(x[:, 1:] != x[:, :-1]) + np.count_nonzero(x[1:, :] != x[:-1, :])
    return float(eta * disagreements + beta * cuts)


def neighbour_label_counts(x: np.ndarray, labels: int) -> np.ndarray:
    """int [labels, H, W]: how many of pixel i's (up to 4) neighbours carry label k."""
    one_hot = (x[None, :, :] == np.arange(labels)[:, None, None]).astype(np.int16)
    counts = np.zeros_like(one_hot)
    counts[:, 1:, :] += one_hot[:, :-1, :]
    counts[:, :-1, :] += one_hot[:, 1:, :]
    counts[:, :, 1:] += one_hot[:, :, :-1]
    counts[:, :, :-1] += one_hot[:, :, 1:]
    return counts


def neighbour_counts(shape: tuple[int, int]) -> np.ndarray:
    """int [H, W]: the number of grid neighbours of each pixel (2 in corners, 3 on edges, 4 inside)."""
    return neighbour_label_counts(np.zeros(shape, dtype=np.int64), 1)[0]


def local_costs(x: np.ndarray, noisy: np.ndarray, labels: int, eta: float, beta: float) -> np.ndarray:
    """float [labels, H, W]: the energy terms touching pixel i if it took label k, rest fixed."""
    data = eta * (np.arange(labels)[:, None, None] != noisy[None, :, :])
    disagreeing = neighbour_counts(x.shape)[None, :, :] - neighbour_label_counts(x, labels)
    return data + beta * disagreeing


def icm(noisy: np.ndarray, labels: int, eta: float, beta: float, max_sweeps: int) -> tuple[np.ndarray, int]:
    """Iterated conditional modes from x = y, one checkerboard colour at a time.

    Pixels of one colour share no edge, so all of them move to their best label at once
    and the energy never rises; a pixel keeps its label on ties, so the sweeps stop
    (returning the labelling and the number of sweeps made) at a local minimum with
    respect to single-pixel changes, or after `max_sweeps`.
    """
    x = noisy.copy()
    parity = np.add.outer(np.arange(x.shape[0]), np.arange(x.shape[1])) % 2
    for sweep in range(1, max_sweeps + 1):
        changed = 0
        for colour in (0, 1):
            costs = local_costs(x, noisy, labels, eta, beta)
            current = np.take_along_axis(costs, x[None], axis=0)[0]
            move = (parity == colour) & (costs.min(axis=0) < current)
            x = np.where(move, costs.argmin(axis=0), x)
            changed += int(np.count_nonzero(move))
        if changed == 0:
            return x, sweep
    return x, max_sweeps


def graph_cut_binary(noisy: np.ndarray, eta: float, beta: float) -> np.ndarray:
    """The exact minimiser for two labels (a submodular energy): one s-t min cut (PyMaxflow).

    A pixel on the sink side takes label 1 and pays its source capacity, so the source
    capacity is the data cost of label 1 and the sink capacity that of label 0; every
    grid edge costs beta when cut.
    """
    import maxflow

    graph = maxflow.Graph[float]()
    nodes = graph.add_grid_nodes(noisy.shape)
    graph.add_grid_edges(nodes, weights=beta, symmetric=True)  # 4-neighbourhood
    graph.add_grid_tedges(nodes, eta * (noisy != 1), eta * (noisy != 0))
    graph.maxflow()
    return graph.get_grid_segments(nodes).astype(np.int64)
