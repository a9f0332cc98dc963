"""What the discrete MAP solvers give back and take in.

`MapResult`, the result of every `solve_*`, and `_initial_labels`, the checked
starting labelling (or unary minimum) of the solvers that start from one. Shared
by every solver module, so it sits below all of them.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ebmlang.inference.tabular import TabularModelError, TabularMRF


class MapResult(NamedTuple):
    """A labelling [n] (int64), its energy under the original model, the solver's name,
    and solver-specific details (iterations, bounds, feasibility, ...)."""

    labels: np.ndarray
    energy: float
    method: str
    info: dict


def _initial_labels(mrf: TabularMRF, init) -> np.ndarray:
    """`init` checked, or the labels minimising each unary (lowest label on ties)."""
    if init is None:
        return np.argmin(mrf.unary, axis=1).astype(np.int64) if mrf.num_variables else np.zeros(0, np.int64)
    labels = np.asarray(init)
    if labels.shape != (mrf.num_variables,) or not np.issubdtype(labels.dtype, np.integer):
        raise TabularModelError(f"init must be integer labels [{mrf.num_variables}], got "
                                f"{labels.dtype} {labels.shape}")
    if labels.size and (labels.min() < 0 or (labels >= mrf.num_labels).any()):
        raise TabularModelError("init gives a variable a label outside its domain")
    return labels.astype(np.int64).copy()
