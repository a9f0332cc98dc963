"""Network experts: `extern net : network(IN -> OUT)` implemented by a module from Python.

A registered network is a `NetworkAdapter`: the names (paths) and shapes of its weights,
their values at registration, and `apply(weights, x)`, a pure call that takes the weights
as arguments, so they are params of the model like any other (`net.<path>` entries of a
params dict) and gradients reach them and the state alike.

    torch  an `nn.Module`; its `named_parameters()` are the weights and
           `torch.func.functional_call` runs it with the model's values (buffers, if
           any, stay in the module and are not params)
    jax    an equinox `Module` (its float arrays are the weights, the module is vmapped
           over the batch; paths such as `layers.0.weight`), or `(apply_fn, params)`:
           `apply_fn(params, x)` with `params` any pytree of float arrays -- flax
           linen's `(module.apply, variables)`; paths name the leaves
           (`params.Dense_0.kernel`)

The module is called on a batch `[n, *input_shape]` and returns `[n]` or `[n, 1]` for
one output, `[n, OUT]` for several; anything else is an `EbmError` at the declaration.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ebmlang.errors import EbmError
from ebmlang.graph.ir import FactorGraph, Neural, ParamGroup, walk

from ..evaluator.calls import check_network_output


@dataclass(frozen=True)
class NetworkAdapter:
    """One registered network: weight paths and shapes, starting values, and the pure call."""

    name: str
    shapes: dict[str, tuple[int, ...]]   # path -> shape, in the module's order
    values: dict[str, np.ndarray]        # path -> value at registration (numpy copies)
    apply: Callable[[Mapping[str, Any], Any], Any]
    source: Any                          # what the user registered

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.shapes)


def adapt_network(backend_name: str, group: ParamGroup, network: Any, name: str | None = None) -> NetworkAdapter:
    """A `NetworkAdapter` for `network` on the backend named `backend_name`, or an
    EbmError at the declaration when it is the wrong kind of object for that backend."""
    name = name or group.name
    build = _ADAPTERS.get(backend_name)
    if build is None:
        raise EbmError(f"network '{name}' cannot run on the {backend_name} backend", group.span,
                       hint="networks run on the torch backend (an nn.Module) or jax ((apply_fn, params))")
    adapter = build(name, group, network)
    _trial_call(adapter, group, backend_name)
    return adapter


def network_span(graph: FactorGraph, name: str):
    """Where a network is first called (or its declaration)."""
    for template in graph.templates:
        for node in walk(template.body):
            if isinstance(node, Neural) and node.param == name:
                return node.span
    return graph.params[name].span if name in graph.params else None


def _trial_call(adapter: NetworkAdapter, group: ParamGroup, backend_name: str) -> None:
    """Call the module once on zeros at registration, so a wrong output shape (or an
    input shape it cannot take) is reported there, at the declaration."""
    shape = (2,) + tuple(group.init.input_shape)
    try:
        if backend_name == "torch":
            import torch

            dtype = next(iter(adapter.values.values())).dtype if adapter.values else np.dtype("float32")
            weights = {k: torch.as_tensor(v) for k, v in adapter.values.items()}
            with torch.no_grad():
                out = adapter.apply(weights, torch.zeros(shape, dtype=getattr(torch, str(dtype))))
        else:
            import jax.numpy as jnp

            out = adapter.apply({k: jnp.asarray(v) for k, v in adapter.values.items()}, jnp.zeros(shape))
    except EbmError:
        raise
    except Exception as error:  # the user's module raised: say where it was declared
        raise EbmError(f"network '{adapter.name}' failed on an input of shape {list(shape)}: "
                       f"{type(error).__name__}: {error}", group.span,
                       hint="the module is called on a batch [n, *input shape] of the declaration") from None
    check_network_output(out, 2, group, adapter.name, shape)


def _torch_adapter(name: str, group: ParamGroup, network: Any) -> NetworkAdapter:
    import torch

    if not isinstance(network, torch.nn.Module):
        raise EbmError(f"network '{name}' on the torch backend must be a torch.nn.Module, got "
                       f"{type(network).__name__}", group.span,
                       hint="register e.g. torch.nn.Sequential(...); (apply_fn, params) pairs are for JAX")
    shapes, values = {}, {}
    for path, weight in network.named_parameters():
        shapes[path] = tuple(int(n) for n in weight.shape)
        values[path] = weight.detach().cpu().numpy().copy()

    def apply(weights: Mapping[str, Any], x: Any) -> Any:
        return torch.func.functional_call(network, dict(weights), (x,))

    return NetworkAdapter(name, shapes, values, apply, network)


def _equinox_pair(module: Any) -> tuple[Callable, Any]:
    """An equinox Module as (apply_fn, params): its float arrays are the params, the rest
    (activations, shapes) stays static; the module maps one example, so it is vmapped."""
    import equinox as eqx
    import jax

    params, static = eqx.partition(module, eqx.is_inexact_array)

    def apply(weights: Any, x: Any) -> Any:
        return jax.vmap(eqx.combine(weights, static))(x)

    return apply, params


def _is_equinox_module(network: Any) -> bool:
    return any(cls.__module__.split(".")[0] == "equinox" for cls in type(network).__mro__[1:])


def _jax_adapter(name: str, group: ParamGroup, network: Any) -> NetworkAdapter:
    import jax

    if _is_equinox_module(network):
        network = _equinox_pair(network)
    if not (isinstance(network, (tuple, list)) and len(network) == 2 and callable(network[0])):
        kind = type(network).__name__
        hint = ("a torch module runs on a torch model: ebm.load(..., backend='torch')"
                if type(network).__module__.startswith("torch") else
                "flax: (module.apply, variables); an equinox Module is accepted as it is")
        raise EbmError(f"network '{name}' on the jax backend must be an equinox Module or a pair "
                       f"(apply_fn, params), got {kind}",
                       group.span, expected="apply_fn(params, x) -> [n] or [n, OUT], params a pytree of arrays",
                       hint=hint)
    apply_fn, tree = network
    leaves, treedef = jax.tree_util.tree_flatten_with_path(tree)
    shapes, values = {}, {}
    for path, leaf in leaves:
        text = ".".join(_key_text(k) for k in path) or "value"
        value = np.asarray(leaf)
        if value.dtype.kind != "f":
            raise EbmError(f"network '{name}': its parameter '{text}' holds {value.dtype} values, not floats",
                           group.span, hint="pass only the trainable float arrays as params")
        if text in shapes:
            raise EbmError(f"network '{name}': two parameters are both named '{text}'", group.span)
        shapes[text], values[text] = tuple(int(n) for n in value.shape), value.copy()
    names = tuple(shapes)

    def apply(weights: Mapping[str, Any], x: Any) -> Any:
        return apply_fn(jax.tree_util.tree_unflatten(treedef, [weights[n] for n in names]), x)

    return NetworkAdapter(name, shapes, values, apply, network)


def _key_text(key: Any) -> str:
    for attr in ("key", "idx", "name"):
        if hasattr(key, attr):
            return str(getattr(key, attr))
    return str(key).strip(".[]'\"")


_ADAPTERS = {"torch": _torch_adapter, "jax": _jax_adapter}
