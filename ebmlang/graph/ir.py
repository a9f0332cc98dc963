"""The factor graph IR: the one contract between the language and everything after it.

A `FactorGraph` is frozen data: variable groups, parameter groups and factor
*templates*. One energy term over an index set is one template (or a few, when
lowering splits a sum into additive parts); its ground factors are never Python
objects but rows of numpy index arrays.

Expressions inside a template are small trees of `Node`s. Every node evaluates,
for a batch of states, to an array of shape

    [*prefix, num_ground, *inner]

where `prefix` is the batch axis (plus, for local conditionals, a value axis),
`num_ground` runs over the template's ground factors, and `inner` are the axes of
reductions that stay inside the factor (e.g. `logsumexp(k in 0..K)`), one axis
per nesting level, innermost last. Index arrays on leaves have shape
`[num_ground or 1, *inner]` with size-1 axes where a leaf does not depend on that
index, so leaves broadcast against each other like numpy arrays.

See docs/ir.md for the full description.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from ebmlang.errors import UNKNOWN_SPAN, Span

# Domains are the language's (a declaration names one); the IR carries them on its groups.
from ebmlang.language.domains import BINARY, REAL, SPIN, Domain, bounded, categorical  # noqa: F401

# --------------------------------------------------------------------------
# Groups


@dataclass(frozen=True)
class VariableGroup:
    name: str
    shape: tuple[int, ...]
    domain: Domain
    observed: bool
    span: Span = UNKNOWN_SPAN

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1


@dataclass(frozen=True)
class ParamInit:
    """How a parameter starts.

    kind "value":   `value` (an array of the param's shape).
    kind "normal":  args = (mean, std); kind "uniform": args = (low, high).
    kind "mlp":     layer_sizes = (in, hidden..., out), activation name; the
                    backend owns the layer weights (PyTorch-default init).
    kind "network": `extern net : network(...)`: layer_sizes = (in, out) with
                    input_shape the shape the features are reshaped to; the module
                    registered from Python owns the architecture and its weights'
                    starting values (`net.<path>` entries of a params dict).
    kind "layers":  `param f : network([C, H, W] -> conv(...) -> ... -> dense(1))`: a
                    network written in the language. layer_sizes = (in, out) features,
                    input_shape the shape the features are reshaped to, `layers` the
                    chain; layer i with weights owns `f.i.weight` and `f.i.bias`
                    (nn.Sequential's names and PyTorch's layouts); spectral_norm divides
                    every weight by its largest singular value.
    """

    kind: str
    value: np.ndarray | None = None
    args: tuple[float, ...] = ()
    layer_sizes: tuple[int, ...] = ()
    activation: str = "silu"
    input_shape: tuple[int, ...] = ()
    layers: tuple["Layer", ...] = ()
    spectral_norm: bool = False


LAYER_KINDS = ("conv", "dense", "avgpool", "maxpool", "flatten", "activation")


@dataclass(frozen=True)
class Layer:
    """One layer of a `network(...)` param, with the shapes (batch axis excluded) it
    reads and writes; a convolution or pooling runs over every axis after the first
    (channels), so [C, L] is 1-d and [C, H, W] is 2-d.

    conv:       `conv(OUT, K, stride=S, padding=P)`; weight [OUT, C_in, K, ...], bias [OUT]
    dense:      `dense(OUT)` on the flattened input; weight [OUT, IN], bias [OUT]
    avgpool / maxpool: `avgpool(K)` or `avgpool(K, stride=S)` (stride defaults to K)
    flatten:    `flatten`, to [C * H * W]
    activation: a bare activation name (`relu`, `swish`, ...), kept in `activation`
    """

    kind: str
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    size: int = 0
    kernel: int = 0
    stride: int = 1
    padding: int = 0
    activation: str = ""
    span: Span = UNKNOWN_SPAN

    @property
    def has_weights(self) -> bool:
        return self.kind in ("conv", "dense")

    def weight_shape(self) -> tuple[int, ...]:
        """PyTorch's layout: conv [OUT, C_in, K, ...], dense [OUT, IN]."""
        if self.kind == "conv":
            return (self.size, self.in_shape[0]) + (self.kernel,) * (len(self.in_shape) - 1)
        if self.kind == "dense":
            return (self.size, int(np.prod(self.in_shape, dtype=np.int64)))
        return ()

    def fan_in(self) -> int:
        return int(np.prod(self.weight_shape()[1:], dtype=np.int64))


@dataclass(frozen=True)
class ParamGroup:
    name: str
    shape: tuple[int, ...]
    init: ParamInit
    span: Span = UNKNOWN_SPAN
    bounds: tuple[float, float] | None = None

    @property
    def is_neural(self) -> bool:
        """Called like a function (`Neural` nodes): an mlp, a network or a network extern."""
        return self.init.kind in ("mlp", "network", "layers")

    @property
    def is_network(self) -> bool:
        return self.init.kind == "network"

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1


# --------------------------------------------------------------------------
# Expression nodes


@dataclass(frozen=True, eq=False)
class Node:
    span: Span

    def children(self) -> tuple["Node", ...]:
        return ()


@dataclass(frozen=True, eq=False)
class Constant(Node):
    value: float


@dataclass(frozen=True, eq=False)
class Data(Node):
    """A compile-time array (index arithmetic, const arrays): shape [num_ground or 1, *inner]
    (plus a last axis of entries when it is the vector of a `Select`: `scale[z[n]]`)."""

    array: np.ndarray


@dataclass(frozen=True, eq=False)
class Slot(Node):
    """A variable reference: `index` holds flat indices into the group's flattened state.

    vector=False: index shape [num_ground or 1, *inner]; evaluates to the values.
    vector=True:  index shape [num_ground or 1, *inner, F]; evaluates to a
                  feature vector (last axis F) -- a whole group passed to an `mlp`.
    """

    group: str
    index: np.ndarray
    vector: bool = False


@dataclass(frozen=True, eq=False)
class ParamRef(Node):
    """A parameter value; `index` = flat indices into the param (None for a scalar param),
    shape [num_ground or 1, *inner] -- plus a last axis of the entries a `Select` picks from
    when discrete variables index the param (`mu[z[n]]`, `A[z[t], z[t+1]]`)."""

    param: str
    index: np.ndarray | None = None


# Elementwise functions an `Apply` may name. Arity 1 unless listed in BINARY_FUNCTIONS.
UNARY_FUNCTIONS = (
    "neg", "exp", "log", "softplus", "sigmoid", "tanh", "abs", "sqrt", "relu",
    "sin", "cos", "square", "not", "log1p", "expm1",
)
BINARY_FUNCTIONS = (
    "add", "sub", "mul", "div", "pow", "mod",
    "eq", "ne", "lt", "le", "gt", "ge", "and", "or",
)
# "violation": 1-ary; 0.0 where its boolean argument holds, +inf where violated (constraints).
SPECIAL_FUNCTIONS = ("violation",)


@dataclass(frozen=True, eq=False)
class Apply(Node):
    fn: str
    args: tuple[Node, ...]

    def children(self) -> tuple[Node, ...]:
        return self.args


@dataclass(frozen=True, eq=False)
class Reduce(Node):
    """Reduce the last axis of `body` with op in sum/prod/mean/logsumexp/min/max.

    mask: boolean array broadcastable to the body's index shape
    ([num_ground or 1, *inner]); False entries are left out (`where` filters).
    Lowering always sets it: its last axis gives the reduced length even when the
    body does not depend on the reduction index (`sum(i in 0..3) 2` is 6).
    """

    op: str
    body: Node
    mask: np.ndarray | None = None

    def children(self) -> tuple[Node, ...]:
        return (self.body,)


@dataclass(frozen=True, eq=False)
class Neural(Node):
    """`f(args)` for an `mlp` param or a network extern: args are scalars (one feature
    each) or vector Slots (F features each), concatenated along a last feature axis.
    Evaluates to [..., C] -- a vector; `Select` picks an entry, or C == 1 is squeezed
    by lowering into `Select(Neural, Constant(0))`."""

    param: str
    args: tuple[Node, ...]

    def children(self) -> tuple[Node, ...]:
        return self.args


@dataclass(frozen=True, eq=False)
class Select(Node):
    """`vector[index]`: entry `index` (an integer-valued node, e.g. a categorical
    variable) of the last axis of `vector` -- an mlp's outputs, or the entries of a
    param or const that discrete variables index (lower/selection.py)."""

    vector: Node
    index: Node

    def children(self) -> tuple[Node, ...]:
        return (self.vector, self.index)


@dataclass(frozen=True, eq=False)
class Extern(Node):
    """`g(args)` for an `extern g`: an elementwise function registered from Python."""

    name: str
    args: tuple[Node, ...]

    def children(self) -> tuple[Node, ...]:
        return self.args


def compact_index(values: np.ndarray, smallest=np.int32) -> np.ndarray:
    """An integer index array in the smallest integer type from `smallest` up to int64
    that holds every entry, and every difference of two entries, with a margin of one:
    the index arrays of a 16-million-site lattice are half the size in int32, and numpy
    indexing and the backends' conversions (to their own index dtype) treat them alike.
    Code that multiplies indices (pair keys, table codes) converts to int64 first, where
    it forms global ids. Smaller types than int32 only where the caller never multiplies
    them (coordinates, colours)."""
    values = np.asarray(values)
    kinds = [np.int8, np.int16, np.int32]
    kinds = kinds[kinds.index(smallest):]
    low, high = (int(values.min()), int(values.max())) if values.size else (0, 0)
    for kind in kinds:
        info = np.iinfo(kind)
        if info.min < low and high < info.max and high - low < info.max:
            return values if values.dtype == kind else values.astype(kind)
    return values.astype(np.int64, copy=False)


def walk(node: Node):
    """Every node of a tree, parents before children."""
    yield node
    for child in node.children():
        yield from walk(child)


# --------------------------------------------------------------------------
# Factor templates and the graph


@dataclass(frozen=True, eq=False)
class FactorTemplate:
    """All ground factors of one (part of an) energy term.

    name:   unique within the graph ("coupling", or "coupling#1" for the 2nd additive part)
    term:   the energy/constraint term it belongs to (per-term energies sum its templates)
    body:   expression tree; evaluates to [*prefix, num_ground] (inner axes reduced)
    index_names / index_values: the ground index tuples, [num_ground, len(index_names)]
    is_constraint: the body is `violation(condition)` (0 or +inf)
    expert: name of the expert it came from in a composite ("" for a plain model)
    """

    name: str
    term: str
    body: Node
    num_ground: int
    index_names: tuple[str, ...] = ()
    index_values: np.ndarray = field(default_factory=lambda: np.zeros((1, 0), dtype=np.int64))
    is_constraint: bool = False
    span: Span = UNKNOWN_SPAN
    expert: str = ""

    @cached_property
    def slots(self) -> tuple[Slot, ...]:
        return tuple(n for n in walk(self.body) if isinstance(n, Slot))

    @cached_property
    def param_names(self) -> tuple[str, ...]:
        names = []
        for n in walk(self.body):
            p = n.param if isinstance(n, (ParamRef, Neural)) else None
            if p is not None and p not in names:
                names.append(p)
        return tuple(names)

    @cached_property
    def groups(self) -> tuple[str, ...]:
        seen: list[str] = []
        for s in self.slots:
            if s.group not in seen:
                seen.append(s.group)
        return tuple(seen)


@dataclass(frozen=True)
class ExpertInfo:
    """Provenance of one expert of a composite model (for `m.experts`)."""

    name: str
    weight: float | str  # a number, or the name of a learnable weight param
    file: str = ""


@dataclass(frozen=True, eq=False)
class FactorGraph:
    name: str
    variables: dict[str, VariableGroup]
    params: dict[str, ParamGroup]
    templates: tuple[FactorTemplate, ...]
    terms: tuple[str, ...]
    externs: frozenset[str] = frozenset()
    file: str = "<string>"
    source: str = ""
    experts: tuple[ExpertInfo, ...] = ()

    @property
    def latent(self) -> dict[str, VariableGroup]:
        return {k: v for k, v in self.variables.items() if not v.observed}

    @property
    def observed(self) -> dict[str, VariableGroup]:
        return {k: v for k, v in self.variables.items() if v.observed}

    def templates_of(self, term: str) -> tuple[FactorTemplate, ...]:
        return tuple(t for t in self.templates if t.term == term)

    def term_span(self, term: str) -> Span:
        for t in self.templates:
            if t.term == term:
                return t.span
        return UNKNOWN_SPAN
