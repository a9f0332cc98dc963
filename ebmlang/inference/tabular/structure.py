"""Helpers on the structure of a tabular model: grid edges and graph colourings.

A colouring splits the variables into independent sets (no two members share a
factor), which the block updates of ICM and Gibbs need; these functions work on
variable pairs alone, not on the model.
"""
from __future__ import annotations

import numpy as np

from ebmlang.inference.tabular.validation import TabularModelError


def grid_edges(shape: tuple[int, int]) -> np.ndarray:
    """[m, 2] 4-neighbour edges of a row-major `height x width` grid (right, then down)."""
    height, width = shape
    ids = np.arange(height * width).reshape(height, width)
    horizontal = np.stack([ids[:, :-1].reshape(-1), ids[:, 1:].reshape(-1)], axis=1)
    vertical = np.stack([ids[:-1, :].reshape(-1), ids[1:, :].reshape(-1)], axis=1)
    return np.concatenate([horizontal, vertical], axis=0).astype(np.int64)


def colour_variables(num_variables: int, pairs: np.ndarray, seed: int = 0) -> np.ndarray:
    """[n] colour of each variable such that no pair in `pairs` shares a colour.

    Jones-Plassmann greedy colouring, vectorised: in each round every uncoloured
    variable whose higher-priority neighbours are all coloured takes the smallest
    colour none of them uses. Random priorities keep the number of rounds
    logarithmic in expectation; the seed makes it deterministic.
    """
    colour = np.full(num_variables, -1, dtype=np.int64)
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    if pairs.shape[0] == 0:
        colour[:] = 0
        return colour
    priority = np.random.default_rng(seed).permutation(num_variables)
    first_wins = priority[pairs[:, 0]] > priority[pairs[:, 1]]
    high = np.where(first_wins, pairs[:, 0], pairs[:, 1])
    low = np.where(first_wins, pairs[:, 1], pairs[:, 0])
    while (colour < 0).any():
        uncoloured = colour < 0
        blocked = np.zeros(num_variables, dtype=bool)
        blocked[low[uncoloured[high]]] = True
        ready = uncoloured & ~blocked
        # A ready variable's coloured neighbours are exactly its higher-priority ones.
        constraining = ready[low]
        colour[ready] = _smallest_unused(low[constraining], colour[high[constraining]], ready)
    return colour


def _smallest_unused(nodes: np.ndarray, used: np.ndarray, ready: np.ndarray) -> np.ndarray:
    """For each ready node (in index order), the smallest colour >= 0 not in `used` at `nodes`."""
    ready_ids = np.flatnonzero(ready)
    result = np.zeros(ready_ids.size, dtype=np.int64)
    if nodes.size == 0:
        return result
    span = int(used.max()) + 2
    codes = np.unique(nodes * span + used)
    node_of, colour_of = codes // span, codes % span
    group_start = np.flatnonzero(np.r_[True, node_of[1:] != node_of[:-1]])
    group_size = np.diff(np.r_[group_start, codes.size])
    rank = np.arange(codes.size) - np.repeat(group_start, group_size)
    # Colours are sorted and distinct within a node: the first gap is where colour > rank.
    gap = np.where(colour_of > rank, rank, np.iinfo(np.int64).max)
    first_gap = np.minimum(np.minimum.reduceat(gap, group_start), group_size)
    position = np.searchsorted(ready_ids, node_of[group_start])
    result[position] = first_gap
    return result


def check_colouring(num_variables: int, pairs: np.ndarray, colouring: np.ndarray) -> np.ndarray:
    """`colouring` as an int array [n], after checking no interacting pair shares a colour."""
    colouring = np.asarray(colouring)
    if colouring.shape != (num_variables,) or not np.issubdtype(colouring.dtype, np.integer):
        raise TabularModelError(f"a colouring must be an integer array [{num_variables}], got "
                                f"{colouring.dtype} {colouring.shape}")
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    clash = colouring[pairs[:, 0]] == colouring[pairs[:, 1]]
    if clash.any():
        a, b = pairs[np.argmax(clash)]
        raise TabularModelError(
            f"the colouring gives variables {a} and {b}, which share a factor, the same colour "
            f"({int(clash.sum())} such pairs)",
            hint="leave colouring=None to compute one")
    return colouring.astype(np.int64)
