"""What a CompiledGraph checks of its inputs (state, params, externs, groups), and where
its errors point: `located` quotes the graph's source line, `extern_span` finds an extern.

`InputChecks` is a mixin of `CompiledGraph` (compiled.py); it reads the graph, backend,
`read_groups`, `param_shapes` and extern lookup that the compiled graph holds.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import contextmanager
from typing import Any

from ebmlang.errors import EbmError, did_you_mean
from ebmlang.graph.ir import Extern, FactorGraph, walk

from .networks import network_span


@contextmanager
def located(graph: FactorGraph):
    """Errors raised inside quote the graph's source line."""
    try:
        yield
    except EbmError as error:
        if graph.source:
            error.with_source(graph.source)
        raise


class InputChecks:
    """Checked and converted inputs of a CompiledGraph; an EbmError on bad input."""

    def inputs(self, state: Mapping[str, Any], params: Mapping[str, Any]) -> tuple[dict, dict]:
        """Checked and converted (state, params); an EbmError on bad input.

        The returned state holds the groups the templates read (or, when they read none,
        whatever was given, to carry the batch size); params hold the graph's params.
        """
        self.check_externs()
        return self.check_state(state, self.convert), self.check_params(params, self.convert)

    def convert(self, value: Any) -> Any:
        """`value` as a backend float array (no copy when it already is one)."""
        return self.backend.asarray(value)

    def check_state(self, state: Mapping[str, Any], convert: Callable) -> dict:
        """Names, shapes and batch sizes of a state dict, converted with `convert`."""
        graph = self.graph
        if not isinstance(state, Mapping):
            raise EbmError("a state must be a dict {group: array [batch, *shape]}")
        converted = {}
        batch = None
        for name, value in state.items():
            group = graph.variables.get(name)
            if group is None:
                raise EbmError(
                    f"state names '{name}', which is not a variable group of model '{graph.name}'",
                    hint=did_you_mean(name, graph.variables)
                    or "groups: " + ", ".join(graph.variables),
                )
            array = convert(value)
            if tuple(array.shape[1:]) != group.shape or len(array.shape) != len(group.shape) + 1:
                raise EbmError(
                    f"state['{name}'] has shape {tuple(array.shape)}; "
                    f"expected {_batched(group.shape)}",
                    group.span,
                    hint="states carry a leading batch axis",
                ).with_source(graph.source)
            if batch not in (None, 1) and array.shape[0] not in (1, batch):
                raise EbmError(
                    f"state['{name}'] has batch {array.shape[0]} but other groups have {batch}",
                    group.span,
                    hint="give every group the same batch size (a batch of 1 broadcasts)",
                ).with_source(graph.source)
            batch = array.shape[0] if batch in (None, 1) else batch
            converted[name] = array
        for name in self.read_groups:
            if name not in converted:
                group = graph.variables[name]
                raise EbmError(
                    f"state has no values for variable group '{name}'",
                    group.span,
                    hint=f"pass state['{name}'] with shape {_batched(group.shape)}",
                ).with_source(graph.source)
        if self.read_groups:
            return {name: converted[name] for name in self.read_groups}
        return converted

    def check_params(self, params: Mapping[str, Any], convert: Callable) -> dict:
        """Every param the graph needs, with its declared shape, converted with `convert`."""
        if not isinstance(params, Mapping):
            raise EbmError("params must be a dict {name: array}")
        ready = {}
        for name, shape in self.param_shapes.items():
            if name not in params:
                raise EbmError(
                    f"params has no entry '{name}'", _declared(self.graph, name).span,
                    hint="compiled.init_params(backend.key(seed)) creates every param",
                ).with_source(self.graph.source)
            array = convert(params[name])
            if tuple(array.shape) != shape:
                raise EbmError(
                    f"params['{name}'] has shape {tuple(array.shape)}; expected {shape}",
                    _declared(self.graph, name).span,
                ).with_source(self.graph.source)
            ready[name] = array
        return ready

    def check_externs(self) -> None:
        """Every extern the graph calls has an implementation, every network a module."""
        for name, group in self.graph.params.items():
            if group.is_network and name not in self.networks:
                bare = name.rsplit(".", 1)[-1]
                raise EbmError(
                    f"network '{name}' has no module registered", network_span(self.graph, name),
                    hint=f"call model.register_network('{bare}', module) with a torch nn.Module "
                         "(torch) or (apply_fn, params) (jax)",
                ).with_source(self.graph.source)
        for name in self.graph.externs:
            if self._lookup_extern(name) is None:
                raise EbmError(
                    f"extern '{name}' has no implementation for the {self.backend.name} backend",
                    extern_span(self.graph, name),
                    hint=f"call register_extern('{name}', fn) on the backend or compiled graph",
                ).with_source(self.graph.source)

    def check_groups(self, groups: str | tuple[str, ...]) -> tuple[str, ...]:
        """The groups to differentiate: names of variable groups of the graph."""
        groups = (groups,) if isinstance(groups, str) else tuple(groups)
        for name in groups:
            if name not in self.graph.variables:
                raise EbmError(
                    f"no variable group '{name}' in model '{self.graph.name}'",
                    hint=did_you_mean(name, self.graph.variables)
                    or "groups: " + ", ".join(self.graph.variables),
                )
        return groups


def _declared(graph: FactorGraph, name: str):
    """The param group of a params entry: itself, or the mlp or network that an entry
    `f.0.weight` / `net.<path>` belongs to (the longest such name, in a composite)."""
    if name in graph.params:
        return graph.params[name]
    owner = None
    for group in graph.params.values():
        if group.is_neural and name.startswith(group.name + ".") and (owner is None or
                                                                      len(group.name) > len(owner.name)):
            owner = group
    return owner


def _batched(shape: tuple[int, ...]) -> str:
    return "[" + ", ".join(["batch", *map(str, shape)]) + "]"


def extern_span(graph: FactorGraph, name: str):
    """Where an extern is first used (or the first template's span)."""
    for template in graph.templates:
        for node in walk(template.body):
            if isinstance(node, Extern) and node.name == name:
                return node.span
    return None
