"""`HigherFactor`: energy tables over three or more variables of a `TabularMRF`.

A group of same-arity factors stored as one flat table per factor; kept apart from
the model because it validates and evaluates itself without the rest of the model.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ebmlang.inference.tabular.validation import TabularModelError, _check_table_values, _readonly


@dataclass(frozen=True, eq=False)
class HigherFactor:
    """`f` factors of the same arity `k`, each a full table over its variables' labels.

    variables: [f, k] variable indices (distinct within a row).
    table:     [f, R**k] energies; entry `sum_r x_r * R**(k-1-r)` is the energy of the
               labels (x_0, ..., x_{k-1}) of the row's variables (first variable most
               significant, as `np.ravel_multi_index` does). R, the radix, is at least the
               label count of every variable the factor touches. A table of shape
               [f, R, ..., R] is accepted and flattened.
    """

    variables: np.ndarray
    table: np.ndarray

    def __post_init__(self) -> None:
        variables = np.asarray(self.variables)
        if variables.ndim != 2 or variables.shape[1] < 1:
            raise TabularModelError(f"a higher-order factor needs variables of shape [f, k], got {variables.shape}")
        if variables.size and not np.issubdtype(variables.dtype, np.integer):
            raise TabularModelError("higher-order factor variables must be integer indices")
        num_factors, arity = variables.shape
        table = np.asarray(self.table, dtype=np.float64)
        table = table.reshape(num_factors, -1) if table.ndim != 2 else table
        if table.shape[0] != num_factors:
            raise TabularModelError(
                f"higher-order factor table has {table.shape[0]} rows for {num_factors} factors")
        radix = int(round(table.shape[1] ** (1.0 / arity))) if table.shape[1] else 0
        candidates = [r for r in (radix - 1, radix, radix + 1) if r >= 1 and r ** arity == table.shape[1]]
        if not candidates:
            raise TabularModelError(
                f"a table over {arity} variables needs R**{arity} columns, got {table.shape[1]}")
        if arity > 1 and num_factors:
            ordered = np.sort(variables, axis=1)
            if (ordered[:, 1:] == ordered[:, :-1]).any():
                raise TabularModelError("a higher-order factor names the same variable twice",
                                        hint="fold repeated variables into a smaller table")
        _check_table_values("a higher-order factor table", table)
        object.__setattr__(self, "variables", _readonly(variables.astype(np.int64)))
        object.__setattr__(self, "table", _readonly(table))

    @property
    def arity(self) -> int:
        return int(self.variables.shape[1])

    @property
    def num_factors(self) -> int:
        return int(self.variables.shape[0])

    @property
    def radix(self) -> int:
        """R: the label count each axis of the table covers."""
        return int(round(self.table.shape[1] ** (1.0 / self.arity))) if self.table.shape[1] else 1

    @property
    def place_values(self) -> np.ndarray:
        """[k] multipliers turning labels into a flat table column."""
        return self.radix ** np.arange(self.arity - 1, -1, -1, dtype=np.int64)

    def energies(self, labels: np.ndarray) -> np.ndarray:
        """[..., f] energy of each factor for labellings `labels` [..., n]."""
        factor_labels = labels[..., self.variables]  # [..., f, k]
        flat = factor_labels @ self.place_values
        return self.table[np.arange(self.num_factors), flat]
