"""The numpy reference evaluator: the oracle the torch and JAX backends are tested against.

Plain recursive numpy over each template's node tree, in float64, written to be
obviously correct rather than fast. A node evaluated at reduction depth `d`
gives an array of shape [batch, num_ground or 1, *inner_1..d] (plus a trailing
feature axis for vector slots and mlp outputs), exactly the IR's convention with
the batch as the only prefix axis.

States hold values (spin ±1, binary 0/1, categorical labels 0..K-1, integers
a..b-1), shaped [batch, *group shape]; a batch of 1 broadcasts. Params are a
flat dict of arrays; an mlp param `f` owns `f.0.weight` [out, in], `f.0.bias`,
`f.1.weight`, ... (PyTorch layout), activations between layers, none after the last.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
from scipy.special import erf, expit, logsumexp

from ebmlang.errors import EbmError
from ebmlang.graph import ir, reference_layers

Array = np.ndarray


def _softplus(x: Array) -> Array:
    return np.logaddexp(0.0, x)


_UNARY: dict[str, Callable[[Array], Array]] = {
    "neg": np.negative,
    "exp": np.exp,
    "log": np.log,
    "softplus": _softplus,
    "sigmoid": expit,
    "tanh": np.tanh,
    "abs": np.abs,
    "sqrt": np.sqrt,
    "relu": lambda x: np.maximum(x, 0.0),
    "sin": np.sin,
    "cos": np.cos,
    "square": np.square,
    "not": lambda x: (x == 0).astype(float),
    "log1p": np.log1p,
    "expm1": np.expm1,
    "violation": lambda c: np.where(c != 0, 0.0, np.inf),
}

_BINARY: dict[str, Callable[[Array, Array], Array]] = {
    "add": np.add,
    "sub": np.subtract,
    "mul": np.multiply,
    "div": np.true_divide,
    "pow": np.power,
    "mod": np.mod,
    "eq": lambda a, b: (a == b).astype(float),
    "ne": lambda a, b: (a != b).astype(float),
    "lt": lambda a, b: (a < b).astype(float),
    "le": lambda a, b: (a <= b).astype(float),
    "gt": lambda a, b: (a > b).astype(float),
    "ge": lambda a, b: (a >= b).astype(float),
    "and": lambda a, b: ((a != 0) & (b != 0)).astype(float),
    "or": lambda a, b: ((a != 0) | (b != 0)).astype(float),
}

ACTIVATIONS: dict[str, Callable[[Array], Array]] = {
    "silu": lambda x: x * expit(x),
    "swish": lambda x: x * expit(x),
    "relu": lambda x: np.maximum(x, 0.0),
    "tanh": np.tanh,
    "sigmoid": expit,
    "softplus": _softplus,
    "gelu": lambda x: 0.5 * x * (1.0 + erf(x / np.sqrt(2.0))),
    "elu": lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0.0))),
    "identity": lambda x: x,
    "linear": lambda x: x,
}

_REDUCE_FILL = {"sum": 0.0, "mean": 0.0, "prod": 1.0, "logsumexp": -np.inf, "min": np.inf, "max": -np.inf}


# --------------------------------------------------------------------------
# Energies


def reference_energy(
    g: ir.FactorGraph, state: Mapping[str, Array], params: Mapping[str, Array],
    externs: Mapping[str, Callable] | None = None,
) -> Array:
    """Total energy of each state in the batch: [batch], float64."""
    terms = reference_term_energies(g, state, params, externs)
    batch = _batch_size(g, state)
    total = np.zeros(batch)
    for energy in terms.values():
        total = total + energy
    return total


def reference_term_energies(
    g: ir.FactorGraph, state: Mapping[str, Array], params: Mapping[str, Array],
    externs: Mapping[str, Callable] | None = None,
) -> dict[str, Array]:
    """Energy of each term (the sum of its templates' ground factors): term -> [batch]."""
    per_template = reference_template_energies(g, state, params, externs)
    batch = _batch_size(g, state)
    terms = {term: np.zeros(batch) for term in g.terms}
    for t in g.templates:
        terms[t.term] = terms.get(t.term, np.zeros(batch)) + per_template[t.name].sum(axis=1)
    return terms


def reference_template_energies(
    g: ir.FactorGraph, state: Mapping[str, Array], params: Mapping[str, Array],
    externs: Mapping[str, Callable] | None = None,
) -> dict[str, Array]:
    """Energy of every ground factor: template name -> [batch, num_ground]."""
    evaluator = _Evaluator(g, state, params, externs or {})
    batch = _batch_size(g, state)
    out = {}
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for t in g.templates:
            value = evaluator.eval(t.body, 0)
            out[t.name] = np.broadcast_to(value, (batch, t.num_ground)).astype(float)
    return out


def _batch_size(g: ir.FactorGraph, state: Mapping[str, Array]) -> int:
    sizes = {np.shape(state[name])[0] for name in g.variables if name in state and np.ndim(state[name]) > 0}
    sizes.discard(1)
    if len(sizes) > 1:
        raise EbmError(f"state arrays have different batch sizes {sorted(sizes)}",
                       hint="give every group the shape [batch, *shape] (a batch of 1 broadcasts)")
    return sizes.pop() if sizes else 1


class _Evaluator:
    """Evaluates IR node trees; a method `eval_<NodeClass>` per node kind."""

    def __init__(self, g: ir.FactorGraph, state, params, externs):
        self.g = g
        self.params = params
        self.externs = externs
        self.flat_state: dict[str, Array] = {}
        for name, group in g.variables.items():
            if name not in state:
                continue
            value = np.asarray(state[name], dtype=float)
            if value.shape[1:] != group.shape:
                raise EbmError(
                    f"state of '{name}' has shape {list(value.shape)}, expected [batch, "
                    f"{', '.join(str(n) for n in group.shape)}]".replace("[batch, ]", "[batch]"),
                    group.span)
            self.flat_state[name] = value.reshape(value.shape[0], group.size)

    def eval(self, node: ir.Node, depth: int) -> Array:
        handler = getattr(self, f"eval_{type(node).__name__}", None)
        if handler is None:
            raise EbmError(f"the reference evaluator has no rule for {type(node).__name__} nodes", node.span)
        return handler(node, depth)

    def eval_Constant(self, node: ir.Constant, depth: int) -> Array:
        return np.full((1,) * (depth + 2), float(node.value))

    def eval_Data(self, node: ir.Data, depth: int) -> Array:
        return np.asarray(node.array, dtype=float)[None]

    def eval_Slot(self, node: ir.Slot, depth: int) -> Array:
        if node.group not in self.flat_state:
            raise EbmError(f"no state given for variable '{node.group}'", node.span)
        return self.flat_state[node.group][:, node.index]

    def eval_ParamRef(self, node: ir.ParamRef, depth: int) -> Array:
        if node.param not in self.params:
            raise EbmError(f"no value given for param '{node.param}'", node.span)
        value = np.asarray(self.params[node.param], dtype=float)
        if node.index is None:
            return value.reshape((1,) * (depth + 2))
        return value.reshape(-1)[node.index][None]

    def eval_Apply(self, node: ir.Apply, depth: int) -> Array:
        args = [self.eval(a, depth) for a in node.args]
        if node.fn in _UNARY and len(args) == 1:
            return _UNARY[node.fn](args[0])
        if node.fn in _BINARY and len(args) == 2:
            return _BINARY[node.fn](args[0], args[1])
        raise EbmError(f"unknown function '{node.fn}' with {len(args)} arguments", node.span)

    def eval_Reduce(self, node: ir.Reduce, depth: int) -> Array:
        body = self.eval(node.body, depth + 1)
        if node.mask is None:
            masked, count = body, body.shape[-1]
        else:
            mask = np.asarray(node.mask, dtype=bool)[None]
            masked = np.where(mask, body, _REDUCE_FILL[node.op])
            count = np.broadcast_to(mask, np.broadcast_shapes(mask.shape, body.shape)).sum(axis=-1)
        if node.op == "sum":
            return masked.sum(axis=-1)
        if node.op == "prod":
            return masked.prod(axis=-1)
        if node.op == "mean":
            return masked.sum(axis=-1) / count
        if node.op == "min":
            return masked.min(axis=-1)
        if node.op == "max":
            return masked.max(axis=-1)
        if node.op == "logsumexp":
            return logsumexp(masked, axis=-1)
        raise EbmError(f"unknown reduction '{node.op}'", node.span)

    def eval_Neural(self, node: ir.Neural, depth: int) -> Array:
        features = []
        for arg in node.args:
            value = self.eval(arg, depth)
            features.append(value if isinstance(arg, ir.Slot) and arg.vector else value[..., None])
        lead = np.broadcast_shapes(*(f.shape[:-1] for f in features))
        x = np.concatenate([np.broadcast_to(f, lead + f.shape[-1:]) for f in features], axis=-1)
        return mlp_forward(self.g.params[node.param], self.params, x)

    def eval_Select(self, node: ir.Select, depth: int) -> Array:
        vector = self.eval(node.vector, depth)
        index = self.eval(node.index, depth)
        lead = np.broadcast_shapes(vector.shape[:-1], index.shape)
        labels = np.broadcast_to(index, lead).astype(np.int64)
        size = vector.shape[-1]
        if labels.size and (labels.min() < 0 or labels.max() >= size):
            raise EbmError(f"selecting entry {labels.min()}..{labels.max()} of a vector of size {size}", node.span)
        vector = np.broadcast_to(vector, lead + (size,))
        return np.take_along_axis(vector, labels[..., None], axis=-1)[..., 0]

    def eval_Extern(self, node: ir.Extern, depth: int) -> Array:
        if node.name not in self.externs:
            raise EbmError(f"extern '{node.name}' has no numpy implementation registered", node.span,
                           hint=f"pass externs={{'{node.name}': fn}}")
        args = [self.eval(a, depth) for a in node.args]
        lead = np.broadcast_shapes(*(a.shape for a in args)) if args else (1,) * (depth + 2)
        return np.broadcast_to(np.asarray(self.externs[node.name](*args), dtype=float), lead)


def mlp_forward(group: ir.ParamGroup, params: Mapping[str, Array], x: Array) -> Array:
    """An mlp or network param applied to features x [..., in] -> [..., out] (PyTorch layout)."""
    if group.is_network:
        raise EbmError(f"network '{group.name}' is a module from Python; the numpy reference cannot run it",
                       group.span, hint="evaluate models with networks on the torch or jax backend")
    if group.init.kind == "layers":
        lead = x.shape[:-1]
        images = x.reshape((-1,) + tuple(group.init.input_shape))
        return layers_forward(group, params, images).reshape(lead + (-1,))
    sizes = group.init.layer_sizes
    activation = ACTIVATIONS.get(group.init.activation)
    if activation is None:
        raise EbmError(f"unknown activation '{group.init.activation}' of mlp '{group.name}'", group.span,
                       expected="one of " + ", ".join(sorted(ACTIVATIONS)))
    for layer in range(len(sizes) - 1):
        weight = np.asarray(params[f"{group.name}.{layer}.weight"], dtype=float)
        bias = np.asarray(params[f"{group.name}.{layer}.bias"], dtype=float)
        x = x @ weight.T + bias
        if layer < len(sizes) - 2:
            x = activation(x)
    return x


def layers_forward(group: ir.ParamGroup, params: Mapping[str, Array], x: Array) -> Array:
    """A network written in the language on inputs x [n, *input_shape] -> [n, out]."""
    for number, layer in enumerate(group.init.layers):
        if layer.has_weights:
            weight = np.asarray(params[f"{group.name}.{number}.weight"], dtype=float)
            bias = np.asarray(params[f"{group.name}.{number}.bias"], dtype=float)
            if group.init.spectral_norm:
                weight = weight / reference_layers.largest_singular_value(weight.reshape(len(weight), -1))
            if layer.kind == "conv":
                x = reference_layers.conv(x, weight, bias, layer.stride, layer.padding)
            else:
                x = x.reshape(len(x), -1) @ weight.T + bias
        elif layer.kind in ("avgpool", "maxpool"):
            pool = reference_layers.avg_pool if layer.kind == "avgpool" else reference_layers.max_pool
            x = pool(x, layer.kernel, layer.stride)
        elif layer.kind == "activation":
            x = ACTIVATIONS[layer.activation](x)
        x = x.reshape((len(x),) + tuple(layer.out_shape))
    return x.reshape(len(x), -1)


# --------------------------------------------------------------------------
# Params


def reference_init_params(g: ir.FactorGraph, seed: int = 0) -> dict[str, Array]:
    """Initial params from each ParamInit (mlp layers: PyTorch's default U(±1/sqrt(fan_in)))."""
    rng = np.random.default_rng(seed)
    params: dict[str, Array] = {}
    for name, group in g.params.items():
        init = group.init
        if init.kind == "value":
            params[name] = np.broadcast_to(np.asarray(init.value, dtype=float), group.shape).copy()
        elif init.kind == "normal":
            params[name] = rng.normal(init.args[0], init.args[1], size=group.shape)
        elif init.kind == "uniform":
            params[name] = rng.uniform(init.args[0], init.args[1], size=group.shape)
        elif init.kind == "mlp":
            sizes = init.layer_sizes
            for layer, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
                bound = 1.0 / np.sqrt(fan_in)
                params[f"{name}.{layer}.weight"] = rng.uniform(-bound, bound, size=(fan_out, fan_in))
                params[f"{name}.{layer}.bias"] = rng.uniform(-bound, bound, size=(fan_out,))
        elif init.kind == "layers":
            for number, layer in enumerate(init.layers):
                if layer.has_weights:
                    bound = 1.0 / np.sqrt(layer.fan_in())
                    params[f"{name}.{number}.weight"] = rng.uniform(-bound, bound, size=layer.weight_shape())
                    params[f"{name}.{number}.bias"] = rng.uniform(-bound, bound, size=(layer.size,))
        elif init.kind != "network":  # a network's weights come from its module
            raise EbmError(f"unknown initialisation '{init.kind}' of param '{name}'", group.span)
    return params


# --------------------------------------------------------------------------
# Exact enumeration for tiny discrete models


def enumerate_states(
    g: ir.FactorGraph, observed_state: Mapping[str, Array] | None = None, max_states: int = 2**20
) -> dict[str, Array]:
    """Every joint assignment of the latent (discrete) variables, as one batch.

    Returns group -> [S, *shape] values, with observed groups copied from
    `observed_state` (arrays of shape [*shape] or [1, *shape]) into every row.
    Rows run in mixed-radix order: the first latent ground variable changes slowest.
    """
    latent = list(g.latent.values())
    for group in latent:
        if not group.domain.is_discrete:
            raise EbmError(f"cannot enumerate '{group.name}': its domain is {group.domain}", group.span,
                           hint="exact enumeration needs every latent variable discrete")
    radices = np.concatenate([np.full(group.size, group.domain.num_values, dtype=np.int64) for group in latent]
                             ) if latent else np.zeros(0, dtype=np.int64)
    num_states = 1
    for k in radices.tolist():
        num_states *= k
        if num_states > max_states:
            raise EbmError(f"{g.name} has more than {max_states} latent states; too many to enumerate",
                           hint="use a smaller instance (fewer or smaller-domain variables) for exact answers")
    codes = np.arange(num_states, dtype=np.int64)
    labels = np.zeros((num_states, len(radices)), dtype=np.int64)
    for position in range(len(radices) - 1, -1, -1):
        labels[:, position] = codes % radices[position]
        codes //= radices[position]
    states: dict[str, Array] = {}
    offset = 0
    for group in latent:
        block = labels[:, offset:offset + group.size]
        states[group.name] = group.domain.values[block].reshape((num_states,) + group.shape)
        offset += group.size
    observed_state = observed_state or {}
    for name, group in g.observed.items():
        if name not in observed_state:
            raise EbmError(f"no value given for observed variable '{name}'", group.span)
        value = np.asarray(observed_state[name], dtype=float).reshape(group.shape)
        states[name] = np.broadcast_to(value, (num_states,) + group.shape).copy()
    return states


def exact_distribution(
    g: ir.FactorGraph, params: Mapping[str, Array], observed_state: Mapping[str, Array] | None = None,
    externs: Mapping[str, Callable] | None = None, beta: float = 1.0, max_states: int = 2**20,
) -> tuple[dict[str, Array], Array]:
    """All latent states and their Boltzmann probabilities exp(-beta E) / Z, by enumeration."""
    states = enumerate_states(g, observed_state, max_states)
    energy = reference_energy(g, states, params, externs)
    if not np.any(np.isfinite(energy)):
        raise EbmError(f"every state of {g.name} violates a constraint (all energies are +inf)")
    log_weight = -beta * energy
    return states, np.exp(log_weight - logsumexp(log_weight))
