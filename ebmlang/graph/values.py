"""Checking user data against variable declarations.

Observed values, initial states and training data are checked for shape,
dtype and domain here, and rejected with the variable's name and the line
that declared it.
"""
from __future__ import annotations

import numpy as np

from ebmlang.budget import Budget
from ebmlang.errors import EbmError, did_you_mean
from ebmlang.graph.ir import FactorGraph, VariableGroup


def check_values(var: VariableGroup, value, *, source: str | None = None, batched: bool | None = None,
                 what: str = "value", copy: bool = True) -> np.ndarray:
    """`value` as a float64 array [batch, *shape]; accepts [*shape] (batch of 1) or [batch, *shape].
    copy=False returns a float64 input itself (for callers that only read it during the
    call: copying a large training set costs more than checking it)."""
    try:
        arr = np.asarray(value)
    except Exception as exc:  # noqa: BLE001 -- anything numpy cannot read is the user's input
        raise _error(var, f"{what} for '{var.name}' is not an array ({exc})", source) from None
    if np.iscomplexobj(arr):
        raise _error(var, f"{what} for '{var.name}' is complex; only real numbers are allowed", source)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise _error(var, f"{what} for '{var.name}' has dtype {arr.dtype}, not a number", source)
    shape = tuple(var.shape)
    if batched is None:
        batched = arr.shape != shape
    if not batched and arr.shape == shape:
        arr = arr[None]
    if batched and arr.shape == shape:
        raise _error(var, f"{what} for '{var.name}' has shape {tuple(arr.shape)}, one example of '{var.name}', "
                          "but a batch [examples, *shape] is expected here", source,
                     expected=f"an array of shape [examples, {', '.join(map(str, shape))}]",
                     hint=f"add the example axis: {var.name}[None] for a single example")
    if arr.shape[1:] != shape:
        raise _error(var, f"{what} for '{var.name}' has shape {tuple(arr.shape)}, but '{var.name}' is "
                          f"declared with shape {list(shape)}", source,
                     expected=f"an array of shape {list(shape)} or [batch, {', '.join(map(str, shape))}]"
                     if shape else "a scalar or a 1-d batch")
    if arr.shape[0] == 0:
        raise _error(var, f"{what} for '{var.name}' is a batch that has no rows", source,
                     expected=f"at least one row of shape {list(shape)}")
    Budget().check(8.0 * arr.size, f"{what} for '{var.name}', {arr.shape[0]:,} rows as float64,", var.span, source)
    arr = arr.astype(np.float64, copy=copy)
    if not np.all(np.isfinite(arr)):
        raise _error(var, f"{what} for '{var.name}' contains NaN or infinite entries", source)
    dom = var.domain
    if dom.is_discrete:
        bad = ~dom.contains(arr)
        if bad.any():
            first = arr[bad].flat[0]
            listed = dom.values[:8] if dom.num_values <= 8 else np.arange(dom.value_range[0], dom.value_range[0] + 8)
            raise _error(var, f"{what} for '{var.name}' contains {first:g}, outside its domain {dom}", source,
                         expected="values in {" + ", ".join(f"{v:g}" for v in listed)
                         + (", ..." if dom.num_values > 8 else "") + "}")
    elif dom.kind == "bounded":
        if np.any(arr < dom.low) or np.any(arr > dom.high):
            raise _error(var, f"{what} for '{var.name}' leaves its domain {dom}", source)
    return arr


def check_observable(graph: FactorGraph, name: str) -> None:
    """An EbmError unless `name` is a variable group of `graph`."""
    if name not in graph.variables:
        kind = "a parameter" if name in graph.params else "not a variable of this model"
        raise EbmError(f"cannot observe '{name}': it is {kind}",
                       hint=did_you_mean(name, graph.variables) or f"variables: {', '.join(graph.variables)}")


def check_observed(graph: FactorGraph, observed: dict | None, *, source: str | None = None) -> dict:
    """Validate a dict of observed values; unknown names get a did-you-mean hint."""
    if observed is not None and not isinstance(observed, dict):
        raise EbmError(f"observed must be a dict of values by variable name, got {type(observed).__name__}",
                       hint="e.g. observed={'y': array}")
    out = {}
    for name, value in (observed or {}).items():
        check_observable(graph, name)
        out[name] = check_values(graph.variables[name], value, source=source, what="observed value")
    missing = [n for n, v in graph.variables.items() if v.observed and n not in out]
    if missing:
        var = graph.variables[missing[0]]
        raise _error(var, f"'{missing[0]}' is declared observed but no value was given", source,
                     hint=f"pass observed={{'{missing[0]}': array}} (or --observe {missing[0]}=file.npy)")
    return out


def batch_rows(arrays: dict, what: str) -> int:
    """The number of rows of checked arrays [B or 1, *shape]: every batched one must have
    the same B (an array of one row is shared by all)."""
    sizes = {k: v.shape[0] for k, v in arrays.items() if v.shape[0] != 1}
    if len(set(sizes.values())) > 1:
        listed = ", ".join(f"{k}: {b}" for k, b in sizes.items())
        raise EbmError(f"{what} disagree on the number of rows ({listed})",
                       expected="the same number of rows for every variable, or one row to share",
                       hint="pass one array per row for each variable")
    return max(sizes.values(), default=1)


def _error(var: VariableGroup, message: str, source, expected: str | None = None, hint: str | None = None):
    return EbmError(message, var.span, source=source, expected=expected,
                    hint=hint or f"'{var.name}' is declared here as {var.domain} with shape "
                                 f"{list(var.shape)}")
