"""A discrete group's energy as a quadratic form, for sequential-scan Gibbs on dense models.

In a fully connected Boltzmann machine every unit shares a factor with every other, so a
colouring has one unit per colour and chromatic Gibbs would be hundreds of one-variable
blocks. Given everything but the group g, such an energy is

    E(s) = sum_uw A[u, w] s_u s_w + sum_u e_u(s_u) + const,

with A from the templates that read g twice per ground factor through bare slots and
are otherwise state-free (`sum(i < j) W[i, j] * s[i] * s[j]`), and e_u from the templates
that read at most one variable of g per ground factor (biases, and couplings to other
groups). A sequential scan then needs, per unit, one row of J = A + A^T times the state:
the field of unit i is row i of W times the state.

`quadratic_form` plans this (numpy): the pair parts with the flat (u, w) position of every
point of their contraction, and the templates of e. The compiled side is
backends/base/quadratic.py; the scan itself inference/dense_scan.py.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ebmlang.graph.ir import FactorGraph, Slot, walk

from .contraction import ContractionPlan


@dataclass(frozen=True, eq=False)
class PairPart:
    """A template holding two slots of the group: `contraction` with the factors `slots`
    left out and the indices `keep` kept gives A's entries at the box points of `keep`.
    Arrays (under their keys in QuadraticPlan.arrays): `{key}_off` the positions of J's
    off-diagonal entries each point adds to (u * N + w, then w * N + u), `{key}_offtake` the
    point each comes from; `{key}_diag` / `{key}_diagtake` the same for u == w.
    block: (row offset, rows, column offset, columns) when the slots read two contiguous
    ranges of the group along two different indices (`s[i] * s[j]`): the contraction is
    then a block of A, placed without any scatter. diagonal: False when no ground factor
    of a block part reads one unit twice (`i < j`), so A's diagonal needs no pass."""

    contraction: ContractionPlan
    slots: tuple[int, int]
    keep: tuple[int, ...]
    key: str
    block: tuple[int, int, int, int] | None = None
    diagonal: bool = True


@dataclass(frozen=True, eq=False)
class QuadraticPlan:
    """The group's energy as couplings (`pairs`) plus per-unit terms (templates `unary`)."""

    group: str
    size: int
    pairs: tuple[PairPart, ...]
    unary: tuple[int, ...]
    arrays: dict


def quadratic_form(graph: FactorGraph, group: str,
                   contractions: Sequence[ContractionPlan | None]) -> QuadraticPlan | str:
    """The group's QuadraticPlan, or why its energy is not one (a sentence)."""
    size = graph.variables[group].size
    pairs, unary, arrays = [], [], {}
    for number, template in enumerate(graph.templates):
        slots = [s for s in template.slots if s.group == group]
        if not slots:
            continue
        contraction = contractions[number] if number < len(contractions) else None
        positions = contraction.linear_slots(group) if contraction is not None else None
        if positions is not None and len(positions) == 2 and _state_free_besides(contraction, positions):
            part = PairPart(contraction, positions, _union(contraction, positions), f"q{number}")
            block = _contiguous_block(part)
            if block is None:
                arrays.update(_pair_arrays(part, size))
            diagonal = block is None or _touches_diagonal(contraction, part.keep, block)
            pairs.append(PairPart(part.contraction, part.slots, part.keep, part.key, block, diagonal))
        elif _one_variable_per_factor(template.num_ground, slots):
            unary.append(number)
        else:
            return (f"term '{template.term}' is not a sum of pairwise products of {group} with fixed "
                    f"weights, nor a term of one {group} variable per factor")
    if not pairs:
        return f"no term couples two {group} variables"
    return QuadraticPlan(group, size, tuple(pairs), tuple(unary), arrays)


def _state_free_besides(contraction: ContractionPlan, slots: tuple[int, ...]) -> bool:
    """No factor but the two slots reads a variable (so A does not vary with the chain)."""
    return not any(f.stateful for n, f in enumerate(contraction.factors) if n not in slots) and not any(
        isinstance(node, Slot) for scalar, _ in contraction.scalars for node in walk(scalar)
    )


def _union(contraction: ContractionPlan, slots: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(sorted(set().union(*(contraction.factors[n].dims for n in slots))))


def _pair_arrays(part: PairPart, size: int) -> dict:
    """Where each point of the kept box lands in J (see PairPart)."""
    contraction = part.contraction
    extents = [contraction.sizes[d] for d in part.keep]
    coords = np.indices(extents).reshape(len(extents), -1)
    first, second = (_flat_at(contraction, contraction.factors[n], part.keep, coords) for n in part.slots)
    points = np.arange(coords.shape[1], dtype=np.int64)
    off = first != second
    return {
        f"{part.key}_off": np.concatenate([first[off] * size + second[off], second[off] * size + first[off]]),
        f"{part.key}_offtake": np.concatenate([points[off], points[off]]),
        f"{part.key}_diag": first[~off],
        f"{part.key}_diagtake": points[~off],
    }


def _contiguous_block(part: PairPart) -> tuple[int, int, int, int] | None:
    """(row offset, rows, column offset, columns) of A the part fills, when each slot has
    one index of its own and reads a contiguous range of the group along it."""
    first, second = (part.contraction.factors[n] for n in part.slots)
    if len(first.dims) != 1 or len(second.dims) != 1 or first.dims == second.dims:
        return None
    found = []
    for factor in (first, second):
        extent = part.contraction.sizes[factor.dims[0]]
        start = 0 if factor.flat is None else int(factor.flat[0])
        if factor.flat is not None and not np.array_equal(factor.flat, np.arange(start, start + extent)):
            return None
        found += [start, extent]
    if part.keep != tuple(sorted((first.dims[0], second.dims[0]))) or first.dims[0] > second.dims[0]:
        return None  # kept in (first, second) order only
    return tuple(found)


def _touches_diagonal(contraction: ContractionPlan, keep: tuple[int, ...], block) -> bool:
    """Whether some ground factor of a block part reads the same unit through both slots."""
    top, rows, left, columns = block
    counts = (np.ones(contraction.sizes) if contraction.counts_key is None
              else contraction.arrays[contraction.counts_key])
    summed = counts.sum(axis=tuple(d for d in range(counts.ndim) if d not in keep))
    row, column = np.nonzero(summed)
    return bool(np.any(top + row == left + column))


def _flat_at(contraction: ContractionPlan, factor, keep: tuple[int, ...], coords: np.ndarray) -> np.ndarray:
    """The flat group index a slot factor reads at each point (`coords` over `keep`)."""
    own = [coords[keep.index(d)] for d in factor.dims]
    position = (np.ravel_multi_index(own, [contraction.sizes[d] for d in factor.dims])
                if own else np.zeros(coords.shape[1], dtype=np.int64))
    return (factor.flat[position] if factor.flat is not None else position).astype(np.int64)


def _one_variable_per_factor(ground: int, slots: list[Slot]) -> bool:
    """Whether every ground factor reads at most one distinct variable of the group."""
    columns = []
    for slot in slots:
        index = np.asarray(slot.index)
        index = index.reshape(index.shape[0], -1) if index.ndim else index.reshape(1, 1)
        columns.append(np.broadcast_to(index, (ground, index.shape[1])))
    reads = np.concatenate(columns, axis=1)
    return bool(np.all(reads == reads[:, :1]))
