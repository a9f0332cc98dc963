"""`LocalEnergies`: conditional energies of each colour class of a `TabularMRF`.

The precomputed gathers that let ICM and block Gibbs update a whole colour class
at once; an algorithm over the model, so kept out of the model's own module.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sparse

from ebmlang.inference.tabular.higher_factor import HigherFactor
from ebmlang.inference.tabular.mrf import TabularMRF
from ebmlang.inference.tabular.structure import check_colouring, colour_variables


@dataclass(frozen=True, eq=False)
class _ColourClass:
    """Precomputed gathers for one colour class (an independent set of variables).

    Each "contribution row" is one factor touching one member; `gather` [c, L] sums
    the rows into their members.
    """

    members: np.ndarray          # [c] variable ids
    unary: np.ndarray            # [c, K]
    pair_tables: np.ndarray      # [Lp, K_other, K_own]
    pair_other: np.ndarray       # [Lp] the other variable of each edge row
    higher_parts: tuple          # (factor group, position r, factor ids [Lh])
    gather: sparse.csr_matrix    # [c, Lp + sum Lh]


class LocalEnergies:
    """Energies of every label of every variable of a colour class, given the rest.

    `LocalEnergies(mrf, colouring)` groups the factors by the colour class of the
    variable they update once; `table(k, labels)` then costs one gather per factor
    touching class k, vectorised over chains. Members of a class share no factor,
    so updating them all at once from these tables is exact block coordinate
    descent (ICM) or exact block Gibbs.
    """

    def __init__(self, mrf: TabularMRF, colouring: np.ndarray | None = None, seed: int = 0):
        pairs = mrf.interaction_pairs()
        if colouring is None:
            colouring = colour_variables(mrf.num_variables, pairs, seed=seed)
        self.mrf = mrf
        self.colouring = check_colouring(mrf.num_variables, pairs, colouring)
        self.classes = tuple(self._build_class(np.flatnonzero(self.colouring == c))
                             for c in np.unique(self.colouring))

    @property
    def num_colours(self) -> int:
        return len(self.classes)

    def _build_class(self, members: np.ndarray) -> _ColourClass:
        mrf = self.mrf
        n, kmax = mrf.num_variables, mrf.max_labels
        row_of = np.full(n, -1, dtype=np.int64)
        row_of[members] = np.arange(members.size)
        edges = mrf.edges
        as_first = np.flatnonzero(row_of[edges[:, 0]] >= 0)
        as_second = np.flatnonzero(row_of[edges[:, 1]] >= 0)
        pair_tables = np.concatenate([mrf.pairwise[as_first].transpose(0, 2, 1), mrf.pairwise[as_second]])
        pair_other = np.concatenate([edges[as_first, 1], edges[as_second, 0]])
        rows = [row_of[edges[as_first, 0]], row_of[edges[as_second, 1]]]
        higher_parts = []
        for group, factor in enumerate(mrf.higher):
            for position in range(factor.arity if factor.num_factors else 0):
                ids = np.flatnonzero(row_of[factor.variables[:, position]] >= 0)
                if ids.size:
                    higher_parts.append((group, position, ids))
                    rows.append(row_of[factor.variables[ids, position]])
        rows = np.concatenate(rows)
        gather = sparse.csr_matrix((np.ones(rows.size), (rows, np.arange(rows.size))),
                                   shape=(members.size, rows.size))
        return _ColourClass(members, mrf.unary[members], pair_tables, pair_other,
                            tuple(higher_parts), gather)

    def table(self, colour_index: int, labels: np.ndarray) -> np.ndarray:
        """[C, c, K] local energy of each label for the members of class `colour_index`,
        given labellings `labels` [C, n] of everything else (the members' own labels
        are ignored). Factors not touching the class are left out (they are constant)."""
        block = self.classes[colour_index]
        kmax = self.mrf.max_labels
        chains = labels.shape[0]
        parts = []
        if block.pair_other.size:
            rows = np.arange(block.pair_other.size)
            parts.append(block.pair_tables[rows[None, :], labels[:, block.pair_other]])  # [C, Lp, K]
        for group, position, ids in block.higher_parts:
            parts.append(self._higher_part(self.mrf.higher[group], position, ids, labels, kmax))
        local = np.broadcast_to(block.unary, (chains,) + block.unary.shape)
        if not parts:
            return np.array(local)
        stacked = np.concatenate(parts, axis=1)  # [C, L, K]
        summed = block.gather @ stacked.transpose(1, 0, 2).reshape(stacked.shape[1], -1)
        return local + np.asarray(summed).reshape(block.members.size, chains, kmax).transpose(1, 0, 2)

    @staticmethod
    def _higher_part(factor: HigherFactor, position: int, ids: np.ndarray, labels: np.ndarray,
                     kmax: int) -> np.ndarray:
        place = factor.place_values
        others = np.delete(np.arange(factor.arity), position)
        base = labels[:, factor.variables[ids][:, others]] @ place[others]  # [C, Lh]
        radix = factor.radix
        columns = base[..., None] + np.arange(radix) * place[position]       # [C, Lh, R]
        values = factor.table[ids[None, :, None], columns]
        if radix >= kmax:
            return values[..., :kmax]
        # Labels >= R exceed every member's label count: the unary already forbids them.
        return np.concatenate([values, np.zeros(values.shape[:-1] + (kmax - radix,))], axis=-1)
