"""Variable domains: the set of values a declared variable takes (real, bounded real,
binary, spin, categorical, integer range). The checker resolves a declaration's domain
to a `Domain`; the IR (ebmlang.graph.ir) carries it on every variable group.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Domain:
    """The set of values a variable takes.

    kind: "real" | "bounded" | "binary" | "spin" | "categorical" | "integer"
    low, high: bounds of a bounded real (closed interval).
    num_values: K for discrete domains.
    first_value: smallest value of an `integer in a..b` domain (values a..b-1).
    """

    kind: str
    low: float | None = None
    high: float | None = None
    num_values: int | None = None
    first_value: int = 0

    @property
    def is_discrete(self) -> bool:
        return self.kind in ("binary", "spin", "categorical", "integer")

    @property
    def is_continuous(self) -> bool:
        return not self.is_discrete

    @property
    def value_range(self) -> tuple[float, float]:
        """(smallest, largest) value of a discrete domain, without listing the values."""
        if self.kind == "spin":
            return -1.0, 1.0
        if self.kind == "binary":
            return 0.0, 1.0
        first = self.first_value if self.kind == "integer" else 0
        return float(first), float(first + self.num_values - 1)

    def contains(self, values: np.ndarray) -> np.ndarray:
        """Which entries of `values` belong to this discrete domain (bool, same shape)."""
        values = np.asarray(values, dtype=float)
        if self.kind == "spin":
            return (values == -1.0) | (values == 1.0)
        if self.kind == "binary":  # two comparisons instead of a rounding and two bounds
            return (values == 0.0) | (values == 1.0)
        low, high = self.value_range
        return (values == np.round(values)) & (values >= low) & (values <= high)

    @property
    def values(self) -> np.ndarray:
        """The numeric values of a discrete domain, in label order (label k -> values[k])."""
        if self.kind == "binary":
            return np.array([0.0, 1.0])
        if self.kind == "spin":
            return np.array([-1.0, 1.0])
        if self.kind == "categorical":
            return np.arange(self.num_values, dtype=float)
        if self.kind == "integer":
            return np.arange(self.first_value, self.first_value + self.num_values, dtype=float)
        raise ValueError(f"a {self.kind} domain has no finite value set")

    def __str__(self) -> str:
        if self.kind == "bounded":
            return f"real in [{self.low:g}, {self.high:g}]"
        if self.kind == "categorical":
            return f"categorical({self.num_values})"
        if self.kind == "integer":
            return f"integer in {self.first_value}..{self.first_value + self.num_values}"
        return self.kind


BINARY = Domain("binary", num_values=2)
SPIN = Domain("spin", num_values=2)
REAL = Domain("real")


def categorical(k: int) -> Domain:
    return Domain("categorical", num_values=int(k))


def bounded(low: float, high: float) -> Domain:
    return Domain("bounded", low=float(low), high=float(high))
