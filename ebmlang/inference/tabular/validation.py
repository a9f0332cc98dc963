"""What every table of a tabular model goes through on construction.

`TabularModelError` is the error of the whole tabular layer (malformed tables and
models a solver cannot take); the helpers freeze a table and refuse NaN and -inf.
Their own module so that the factor and model types can share them.
"""
from __future__ import annotations

import numpy as np

from ebmlang.errors import EbmError


class TabularModelError(EbmError, ValueError):
    """A malformed tabular model, or one a solver cannot take (an `EbmError` and a `ValueError`)."""


def _readonly(array: np.ndarray) -> np.ndarray:
    array = np.array(array, copy=True)
    array.setflags(write=False)
    return array


def _check_table_values(name: str, values: np.ndarray) -> None:
    if values.size == 0:
        return
    if np.isnan(values).any():
        raise TabularModelError(f"{name} contains NaN energies",
                                hint="an energy term evaluated to NaN for some label combination")
    if np.isneginf(values).any():
        raise TabularModelError(f"{name} contains -inf energies",
                                hint="an energy must be bounded below; use +inf only for hard constraints")
