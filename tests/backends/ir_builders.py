"""Factor graphs built by hand from ir.py nodes, each with a hand-written numpy energy.

The oracles are written the way a person would write the model in numpy (rolls,
matrix products, logsumexp over components), independently of the IR evaluator, so a
backend agreeing with them is evidence that the evaluator is right.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import special

from ebmlang.graph.ir import (
    BINARY,
    REAL,
    SPIN,
    Apply,
    Constant,
    Data,
    FactorGraph,
    FactorTemplate,
    Neural,
    ParamGroup,
    ParamInit,
    ParamRef,
    Reduce,
    Select,
    Slot,
    VariableGroup,
    categorical,
)
from ebmlang.graph.ir import Extern as ExternNode
from ebmlang.language.ast import Span


@dataclass
class HandModel:
    """A graph, its oracle per term, and how to draw valid states."""

    graph: FactorGraph
    terms: dict[str, Callable[[dict, dict], np.ndarray]]  # term -> (state, params) -> [batch]
    sample_state: Callable[[np.random.Generator, int], dict]
    params: Callable[[np.random.Generator], dict]

    def energy(self, state: dict, params: dict) -> np.ndarray:
        return sum(fn(state, params) for fn in self.terms.values())


def span(file: str, line: int) -> Span:
    return Span(file, line, 1, line, 30)


def _source(lines: int) -> str:
    return "\n".join(f"// line {i + 1} of a hand-built model" for i in range(lines))


def apply(fn: str, *args, at: Span) -> Apply:
    return Apply(at, fn, tuple(args))


def _spins(rng, batch, shape):
    return rng.choice([-1.0, 1.0], size=(batch,) + shape)


# --------------------------------------------------------------------------


def ising(size: int = 4, periodic: bool = True) -> HandModel:
    """Spins s[L, L]; E = -J sum_<ij> s_i s_j - h sum_i s_i over right/down neighbours.

    periodic: one coupling template over all sites with rolled neighbour indices;
    open: two templates ("coupling", "coupling#1") over boxes of the grid.
    """
    file = "ising.ebm"
    at = span(file, 4)
    grid = np.arange(size * size).reshape(size, size)
    variables = {"s": VariableGroup("s", (size, size), SPIN, False, span(file, 2))}
    params = {
        "J": ParamGroup("J", (), ParamInit("value", value=np.array(0.4)), span(file, 3)),
        "h": ParamGroup("h", (), ParamInit("value", value=np.array(0.1)), span(file, 3)),
    }
    J, h = ParamRef(at, "J"), ParamRef(at, "h")
    if periodic:
        center = Slot(at, "s", grid.reshape(-1))
        right = Slot(at, "s", np.roll(grid, -1, axis=1).reshape(-1))
        down = Slot(at, "s", np.roll(grid, -1, axis=0).reshape(-1))
        body = apply("mul", apply("neg", J, at=at), apply("mul", center, apply("add", right, down, at=at), at=at), at=at)
        couplings = (FactorTemplate("coupling", "coupling", body, size * size, ("i", "j"), span=at),)
    else:
        pairs = [(grid[:, :-1], grid[:, 1:]), (grid[:-1, :], grid[1:, :])]
        couplings = tuple(
            FactorTemplate(
                "coupling" + ("#1" if n else ""), "coupling",
                apply("mul", apply("neg", J, at=at),
                      apply("mul", Slot(at, "s", a.reshape(-1)), Slot(at, "s", b.reshape(-1)), at=at), at=at),
                a.size, ("i", "j"), span=at,
            )
            for n, (a, b) in enumerate(pairs)
        )
    field_at = span(file, 5)
    field = FactorTemplate(
        "field", "field",
        apply("mul", apply("neg", ParamRef(field_at, "h"), at=field_at), Slot(field_at, "s", grid.reshape(-1)), at=field_at),
        size * size, ("i", "j"), span=field_at,
    )
    graph = FactorGraph("Ising", variables, params, couplings + (field,), ("coupling", "field"),
                        file=file, source=_source(6))

    def coupling(state, p):
        s = state["s"]
        if periodic:
            pairs = s * np.roll(s, -1, axis=2) + s * np.roll(s, -1, axis=1)
            return -p["J"] * pairs.sum(axis=(1, 2))
        pairs = (s[:, :, :-1] * s[:, :, 1:]).sum(axis=(1, 2)) + (s[:, :-1, :] * s[:, 1:, :]).sum(axis=(1, 2))
        return -p["J"] * pairs

    return HandModel(
        graph,
        {"coupling": coupling, "field": lambda state, p: -p["h"] * state["s"].sum(axis=(1, 2))},
        lambda rng, batch: {"s": _spins(rng, batch, (size, size))},
        lambda rng: {"J": np.array(rng.normal()), "h": np.array(rng.normal())},
    )


def rbm(visible: int = 5, hidden: int = 3) -> HandModel:
    """Binary v[V], h[H]; E = -sum_i sum(j) W[i,j] v[i] h[j] - b.v - c.h (inner sum over j)."""
    file = "rbm.ebm"
    at, bias_at = span(file, 6), span(file, 7)
    variables = {
        "v": VariableGroup("v", (visible,), BINARY, True, span(file, 2)),
        "h": VariableGroup("h", (hidden,), BINARY, False, span(file, 3)),
    }
    params = {
        "W": ParamGroup("W", (visible, hidden), ParamInit("normal", args=(0.0, 0.1)), span(file, 4)),
        "b": ParamGroup("b", (visible,), ParamInit("value", value=np.array(0.0)), span(file, 5)),
        "c": ParamGroup("c", (hidden,), ParamInit("uniform", args=(-0.1, 0.1)), span(file, 5)),
    }
    i = np.arange(visible)[:, None]
    j = np.arange(hidden)[None, :]
    interaction = apply("neg", Reduce(at, "sum", apply(
        "mul", apply("mul", ParamRef(at, "W", i * hidden + j), Slot(at, "v", i), at=at), Slot(at, "h", j), at=at)), at=at)
    templates = (
        FactorTemplate("interaction", "interaction", interaction, visible, ("i",), span=at),
        FactorTemplate("visible_bias", "visible_bias", apply("neg", apply(
            "mul", ParamRef(bias_at, "b", np.arange(visible)), Slot(bias_at, "v", np.arange(visible)), at=bias_at), at=bias_at),
            visible, ("i",), span=bias_at),
        FactorTemplate("hidden_bias", "hidden_bias", apply("neg", apply(
            "mul", ParamRef(bias_at, "c", np.arange(hidden)), Slot(bias_at, "h", np.arange(hidden)), at=bias_at), at=bias_at),
            hidden, ("j",), span=bias_at),
    )
    graph = FactorGraph("RBM", variables, params, templates,
                        ("interaction", "visible_bias", "hidden_bias"), file=file, source=_source(8))
    return HandModel(
        graph,
        {
            "interaction": lambda s, p: -np.einsum("bi,ij,bj->b", s["v"], p["W"], s["h"]),
            "visible_bias": lambda s, p: -s["v"] @ p["b"],
            "hidden_bias": lambda s, p: -s["h"] @ p["c"],
        },
        lambda rng, batch: {"v": rng.integers(0, 2, (batch, visible)).astype(float),
                            "h": rng.integers(0, 2, (batch, hidden)).astype(float)},
        lambda rng: {"W": rng.normal(size=(visible, hidden)), "b": rng.normal(size=visible),
                     "c": rng.normal(size=hidden)},
    )


def potts(size: int = 3, states: int = 3) -> HandModel:
    """Categorical x[L, L] in 0..Q-1; E = -J sum_<ij> [x_i == x_j] - sum_i theta[x_i]
    (Select of a param vector by the variable) + a constraint x[0, 0] != 1."""
    file = "potts.ebm"
    at, field_at, rule_at = span(file, 5), span(file, 6), span(file, 7)
    grid = np.arange(size * size).reshape(size, size)
    variables = {"x": VariableGroup("x", (size, size), categorical(states), False, span(file, 2))}
    params = {
        "J": ParamGroup("J", (), ParamInit("value", value=np.array(1.0)), span(file, 3)),
        "theta": ParamGroup("theta", (states,), ParamInit("normal", args=(0.0, 1.0)), span(file, 4)),
    }
    pairs = [(grid[:, :-1], grid[:, 1:]), (grid[:-1, :], grid[1:, :])]
    templates = tuple(
        FactorTemplate(
            "pair" + ("#1" if n else ""), "pair",
            apply("mul", apply("neg", ParamRef(at, "J"), at=at),
                  apply("eq", Slot(at, "x", a.reshape(-1)), Slot(at, "x", b.reshape(-1)), at=at), at=at),
            a.size, ("i", "j"), span=at,
        )
        for n, (a, b) in enumerate(pairs)
    ) + (
        FactorTemplate(
            "field", "field",
            apply("neg", Select(field_at, ParamRef(field_at, "theta", np.arange(states)[None, :]),
                                Slot(field_at, "x", grid.reshape(-1))), at=field_at),
            size * size, ("i", "j"), span=field_at,
        ),
        FactorTemplate(
            "corner", "corner",
            apply("violation", apply("ne", Slot(rule_at, "x", np.array([0])), Constant(rule_at, 1.0), at=rule_at), at=rule_at),
            1, (), is_constraint=True, span=rule_at,
        ),
    )
    graph = FactorGraph("Potts", variables, params, templates, ("pair", "field", "corner"),
                        file=file, source=_source(8))

    def pair(s, p):
        x = s["x"]
        same = (x[:, :, :-1] == x[:, :, 1:]).sum(axis=(1, 2)) + (x[:, :-1, :] == x[:, 1:, :]).sum(axis=(1, 2))
        return -p["J"] * same

    def sample(rng, batch):
        x = rng.integers(0, states, (batch, size, size)).astype(float)
        x[:, 0, 0] = rng.choice([0.0, 2.0], size=batch)  # keep the constraint satisfied
        return {"x": x}

    return HandModel(
        graph,
        {
            "pair": pair,
            "field": lambda s, p: -p["theta"][s["x"].astype(int)].sum(axis=(1, 2)),
            "corner": lambda s, p: np.where(s["x"][:, 0, 0] != 1, 0.0, np.inf),
        },
        sample,
        lambda rng: {"J": np.array(rng.normal()), "theta": rng.normal(size=states)},
    )


def ring_gmm(points: int = 1, components: int = 6, dim: int = 2, radius: float = 3.0) -> HandModel:
    """x[N, D] real; each point's energy is -logsumexp_k (w[k] - sum_d (x[d] - mu[k,d])^2 / (2 s^2)),
    s = exp(log_sigma): an inner sum over d nested in a logsumexp over k."""
    file = "ring_gmm.ebm"
    at = span(file, 6)
    angles = 2 * np.pi * np.arange(components) / components
    mu0 = np.zeros((components, dim))
    mu0[:, 0], mu0[:, 1] = radius * np.cos(angles), radius * np.sin(angles)
    variables = {"x": VariableGroup("x", (points, dim), REAL, False, span(file, 2))}
    params = {
        "mu": ParamGroup("mu", (components, dim), ParamInit("value", value=mu0), span(file, 3)),
        "w": ParamGroup("w", (components,), ParamInit("value", value=np.array(0.0)), span(file, 4)),
        "log_sigma": ParamGroup("log_sigma", (), ParamInit("value", value=np.array(np.log(0.5))), span(file, 5)),
    }
    n = np.arange(points)[:, None, None]
    k = np.arange(components)[None, :, None]
    d = np.arange(dim)[None, None, :]
    variance = apply("exp", apply("mul", Constant(at, 2.0), ParamRef(at, "log_sigma"), at=at), at=at)
    distance = Reduce(at, "sum", apply("pow", apply(
        "sub", Slot(at, "x", n * dim + d), ParamRef(at, "mu", k * dim + d), at=at), Constant(at, 2.0), at=at))
    body = apply("neg", Reduce(at, "logsumexp", apply(
        "sub", ParamRef(at, "w", np.arange(components)[None, :]),
        apply("div", distance, apply("mul", Constant(at, 2.0), variance, at=at), at=at), at=at)), at=at)
    graph = FactorGraph("RingGMM", variables, params,
                        (FactorTemplate("nll", "nll", body, points, ("n",), span=at),), ("nll",),
                        file=file, source=_source(7))

    def nll(s, p):
        x = s["x"][:, :, None, :]  # [b, N, 1, D]
        squared = ((x - p["mu"]) ** 2).sum(-1)  # [b, N, K]
        scores = p["w"] - squared / (2 * np.exp(2 * p["log_sigma"]))
        return -special.logsumexp(scores, axis=-1).sum(-1)

    return HandModel(
        graph, {"nll": nll},
        lambda rng, batch: {"x": rng.normal(scale=2.0, size=(batch, points, dim))},
        lambda rng: {"mu": rng.normal(scale=2.0, size=(components, dim)),
                     "w": rng.normal(size=components), "log_sigma": np.array(rng.normal(scale=0.3))},
    )


def _mlp_numpy(p: dict, name: str, x: np.ndarray, activation: Callable) -> np.ndarray:
    layers = sum(1 for key in p if key.startswith(name + ".") and key.endswith(".weight"))
    for number in range(layers):
        x = x @ p[f"{name}.{number}.weight"].T + p[f"{name}.{number}.bias"]
        if number < layers - 1:
            x = activation(x)
    return x


def _mlp_params(rng, name, sizes):
    out = {}
    for number, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        out[f"{name}.{number}.weight"] = rng.normal(size=(fan_out, fan_in)) / np.sqrt(fan_in)
        out[f"{name}.{number}.bias"] = rng.normal(size=fan_out) * 0.1
    return out


def mlp_classifier(features: int = 3, hidden: int = 5, classes: int = 4) -> HandModel:
    """x[D] real, y categorical(C): E = -f(x)[y] + sum_d g(x[d], y)[0], with
    f: mlp(D -> H -> C, silu) on the whole vector and g: mlp(2 -> 4 -> 1, tanh) per feature."""
    file = "classifier.ebm"
    at, smooth_at = span(file, 5), span(file, 6)
    variables = {
        "x": VariableGroup("x", (features,), REAL, True, span(file, 2)),
        "y": VariableGroup("y", (), categorical(classes), False, span(file, 3)),
    }
    params = {
        "f": ParamGroup("f", (), ParamInit("mlp", layer_sizes=(features, hidden, classes), activation="silu"), span(file, 4)),
        "g": ParamGroup("g", (), ParamInit("mlp", layer_sizes=(2, 4, 1), activation="tanh"), span(file, 4)),
    }
    logit = apply("neg", Select(at, Neural(at, "f", (Slot(at, "x", np.arange(features)[None, :], vector=True),)),
                                Slot(at, "y", np.array([0]))), at=at)
    smooth = Select(smooth_at, Neural(smooth_at, "g", (Slot(smooth_at, "x", np.arange(features)),
                                                       Slot(smooth_at, "y", np.array([0])))),
                    Constant(smooth_at, 0.0))
    graph = FactorGraph(
        "Classifier", variables, params,
        (FactorTemplate("logit", "logit", logit, 1, span=at),
         FactorTemplate("smooth", "smooth", smooth, features, ("d",), span=smooth_at)),
        ("logit", "smooth"), file=file, source=_source(7),
    )

    def silu(v):
        return v * special.expit(v)

    def logit_energy(s, p):
        scores = _mlp_numpy(p, "f", s["x"], silu)
        return -np.take_along_axis(scores, s["y"].astype(int)[:, None], axis=1)[:, 0]

    def smooth_energy(s, p):
        pairs = np.stack([s["x"], np.broadcast_to(s["y"][:, None], s["x"].shape)], axis=-1)
        return _mlp_numpy(p, "g", pairs, np.tanh)[..., 0].sum(-1)

    return HandModel(
        graph, {"logit": logit_energy, "smooth": smooth_energy},
        lambda rng, batch: {"x": rng.normal(size=(batch, features)),
                            "y": rng.integers(0, classes, batch).astype(float)},
        lambda rng: {**_mlp_params(rng, "f", (features, hidden, classes)), **_mlp_params(rng, "g", (2, 4, 1))},
    )


def extern_model(size: int = 4) -> HandModel:
    """x[N] real; E = sum_i bump(x[i] * a) with `extern bump`, bump(t) = t^4 - t^2 + cos(t)."""
    file = "extern.ebm"
    at = span(file, 4)
    variables = {"x": VariableGroup("x", (size,), REAL, False, span(file, 2))}
    params = {"a": ParamGroup("a", (), ParamInit("value", value=np.array(1.5)), span(file, 3))}
    body = ExternNode(at, "bump", (apply("mul", Slot(at, "x", np.arange(size)), ParamRef(at, "a"), at=at),))
    graph = FactorGraph("Extern", variables, params, (FactorTemplate("bump", "bump", body, size, ("i",), span=at),),
                        ("bump",), externs=frozenset({"bump"}), file=file, source=_source(5))

    def bump(s, p):
        t = s["x"] * p["a"]
        return (t**4 - t**2 + np.cos(t)).sum(-1)

    return HandModel(
        graph, {"bump": bump},
        lambda rng, batch: {"x": rng.normal(size=(batch, size))},
        lambda rng: {"a": np.array(rng.normal())},
    )


# Every elementwise function applied to a value inside its domain, and its numpy twin.
UNARY_CASES = {
    "neg": (lambda t: t, np.negative), "exp": (lambda t: t, np.exp),
    "log": (lambda t: ("softplus+", t), None), "softplus": (lambda t: t, lambda v: np.logaddexp(0, v)),
    "sigmoid": (lambda t: t, special.expit), "tanh": (lambda t: t, np.tanh), "abs": (lambda t: t, np.abs),
    "sqrt": (lambda t: ("softplus+", t), None), "relu": (lambda t: t, lambda v: np.maximum(v, 0)),
    "sin": (lambda t: t, np.sin), "cos": (lambda t: t, np.cos), "square": (lambda t: t, np.square),
    "not": (lambda t: t, lambda v: (v == 0).astype(float)), "log1p": (lambda t: ("softplus+", t), None),
    "expm1": (lambda t: t, np.expm1),
}
BINARY_CASES = {
    "add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide, "mod": np.mod,
    "eq": lambda a, b: (a == b).astype(float), "ne": lambda a, b: (a != b).astype(float),
    "lt": lambda a, b: (a < b).astype(float), "le": lambda a, b: (a <= b).astype(float),
    "gt": lambda a, b: (a > b).astype(float), "ge": lambda a, b: (a >= b).astype(float),
    "and": lambda a, b: ((a != 0) & (b != 0)).astype(float),
    "or": lambda a, b: ((a != 0) | (b != 0)).astype(float),
}
POSITIVE_UNARY = {"log": np.log, "sqrt": np.sqrt, "log1p": np.log1p}


def kitchen_sink(size: int = 4) -> HandModel:
    """x[N] real and k[N] in integer 0..3: one template per elementwise function, per
    reduction op (over an inner axis with a triangular `where` mask), a pow with a
    param exponent, and compile-time Data -- each with its numpy oracle."""
    file = "sink.ebm"
    at = span(file, 3)
    variables = {
        "x": VariableGroup("x", (size,), REAL, False, span(file, 1)),
        "k": VariableGroup("k", (size,), categorical(4), False, span(file, 2)),
    }
    params = {
        "p": ParamGroup("p", (), ParamInit("value", value=np.array(1.7)), span(file, 2)),
        "u": ParamGroup("u", (size,), ParamInit("normal", args=(0.0, 1.0)), span(file, 2)),
    }
    ground = np.arange(size)
    x = Slot(at, "x", ground)
    k = Slot(at, "k", ground)
    templates, oracles = [], {}

    def add(name, body, oracle, num_ground=size):
        templates.append(FactorTemplate(name, name, body, num_ground, ("i",), span=at))
        oracles[name] = oracle

    for fn in UNARY_CASES:
        if fn in POSITIVE_UNARY:
            positive = apply("add", apply("softplus", x, at=at), Constant(at, 0.5), at=at)
            add(f"u_{fn}", apply(fn, positive, at=at),
                lambda s, p, f=POSITIVE_UNARY[fn]: f(np.logaddexp(0, s["x"]) + 0.5).sum(-1))
        else:
            arg = k if fn == "not" else x
            add(f"u_{fn}", apply(fn, arg, at=at),
                lambda s, p, f=UNARY_CASES[fn][1], g=("k" if fn == "not" else "x"): f(s[g]).sum(-1))
    for fn, twin in BINARY_CASES.items():
        right = apply("add", k, Constant(at, 1.0), at=at) if fn in ("div", "mod") else k
        add(f"b_{fn}", apply(fn, x if fn not in ("and", "or") else k, right, at=at),
            lambda s, p, f=twin, div=fn in ("div", "mod"), both=fn in ("and", "or"):
                f(s["k"] if both else s["x"], s["k"] + 1.0 if div else s["k"]).sum(-1))
    # pow with a learnable exponent on a positive base; pow with a negative integer exponent
    add("pow_param", apply("pow", apply("add", apply("square", x, at=at), Constant(at, 1.0), at=at), ParamRef(at, "p"), at=at),
        lambda s, p: ((s["x"] ** 2 + 1.0) ** p["p"]).sum(-1))
    add("pow_int", apply("pow", apply("add", apply("square", x, at=at), Constant(at, 1.0), at=at), Constant(at, -3.0), at=at),
        lambda s, p: ((s["x"] ** 2 + 1.0) ** -3.0).sum(-1))
    # Reductions over an inner axis j with a `where` mask, body u[j] * x[j] + x[i]. sum and
    # prod use j < i, so row 0 is empty (0 and 1); the others use j <= i (never empty).
    i_axis, j_axis = ground[:, None], ground[None, :]
    for op in ("sum", "prod", "mean", "logsumexp", "min", "max"):
        mask = (j_axis < i_axis) if op in ("sum", "prod") else (j_axis <= i_axis)
        body = apply("add", apply("mul", ParamRef(at, "u", j_axis), Slot(at, "x", j_axis), at=at),
                     Slot(at, "x", i_axis), at=at)

        def oracle(s, p, op=op, mask=mask):
            values = p["u"][None, None, :] * s["x"][:, None, :] + s["x"][:, :, None]  # [b, i, j]
            fill = {"sum": 0.0, "prod": 1.0, "mean": np.nan, "logsumexp": -np.inf,
                    "min": np.inf, "max": -np.inf}[op]
            masked = np.where(mask, values, fill)
            reduce = {"sum": np.sum, "prod": np.prod, "mean": np.nanmean, "min": np.min,
                      "max": np.max, "logsumexp": special.logsumexp}[op]
            return reduce(masked, axis=-1).sum(-1)

        add(f"r_{op}", Reduce(at, op, body, mask), oracle)
    # Data leaves: E = sum_i c[i] * x[i] with a compile-time array c.
    weights = np.linspace(-1.0, 2.0, size)
    add("data", apply("mul", Data(at, weights), x, at=at), lambda s, p: (weights * s["x"]).sum(-1))
    graph = FactorGraph("Sink", variables, params, tuple(templates), tuple(t.term for t in templates),
                        file=file, source=_source(4))
    return HandModel(
        graph, oracles,
        lambda rng, batch: {"x": rng.normal(size=(batch, size)),
                            "k": rng.integers(0, 4, (batch, size)).astype(float)},
        lambda rng: {"p": np.array(rng.uniform(0.5, 2.5)), "u": rng.normal(size=size)},
    )


def tricky(size: int = 5, labels: int = 3) -> HandModel:
    """Categorical z[N] in 0..K-1, with the shapes that make local conditionals hard:

    square[i]  = a * z[i] * z[i]                       (one variable twice in a factor)
    inner[i]   = logsumexp(j in 0..N where j != i) (b[j] * z[j] - z[i])
                                                        (slots inside an inner reduction)
    global     = mean(j in 0..N) w[j] * z[j]^2         (one factor over every variable)
    pair[i]    = c * z[i] * z[(i + 1) % N]             (neighbours on a ring)
    """
    file = "tricky.ebm"
    at = span(file, 4)
    variables = {"z": VariableGroup("z", (size,), categorical(labels), False, span(file, 1))}
    params = {
        "a": ParamGroup("a", (), ParamInit("value", value=np.array(0.3)), span(file, 2)),
        "c": ParamGroup("c", (), ParamInit("value", value=np.array(-0.7)), span(file, 2)),
        "b": ParamGroup("b", (size,), ParamInit("normal", args=(0.0, 1.0)), span(file, 3)),
        "w": ParamGroup("w", (size,), ParamInit("normal", args=(0.0, 1.0)), span(file, 3)),
    }
    ground = np.arange(size)
    i_axis, j_axis = ground[:, None], ground[None, :]
    templates = (
        FactorTemplate("square", "square", apply("mul", ParamRef(at, "a"), apply(
            "mul", Slot(at, "z", ground), Slot(at, "z", ground), at=at), at=at), size, ("i",), span=at),
        FactorTemplate("inner", "inner", Reduce(at, "logsumexp", apply(
            "sub", apply("mul", ParamRef(at, "b", j_axis), Slot(at, "z", j_axis), at=at), Slot(at, "z", i_axis), at=at),
            j_axis != i_axis), size, ("i",), span=at),
        FactorTemplate("global", "global", Reduce(at, "mean", apply(
            "mul", ParamRef(at, "w", ground[None, :]), apply("square", Slot(at, "z", ground[None, :]), at=at), at=at)),
            1, (), span=at),
        FactorTemplate("pair", "pair", apply("mul", ParamRef(at, "c"), apply(
            "mul", Slot(at, "z", ground), Slot(at, "z", np.roll(ground, -1)), at=at), at=at), size, ("i",), span=at),
    )
    graph = FactorGraph("Tricky", variables, params, templates, ("square", "inner", "global", "pair"),
                        file=file, source=_source(5))

    def inner(s, p):
        z = s["z"]
        scores = p["b"] * z  # [b, j]
        values = scores[:, None, :] - z[:, :, None]  # [b, i, j]
        values = np.where(np.eye(size, dtype=bool), -np.inf, values)
        return special.logsumexp(values, axis=-1).sum(-1)

    return HandModel(
        graph,
        {
            "square": lambda s, p: p["a"] * (s["z"] ** 2).sum(-1),
            "inner": inner,
            "global": lambda s, p: (p["w"] * s["z"] ** 2).mean(-1),
            "pair": lambda s, p: p["c"] * (s["z"] * np.roll(s["z"], -1, axis=1)).sum(-1),
        },
        lambda rng, batch: {"z": rng.integers(0, labels, (batch, size)).astype(float)},
        lambda rng: {"a": np.array(rng.normal()), "c": np.array(rng.normal()),
                     "b": rng.normal(size=size), "w": rng.normal(size=size)},
    )


def hand_models() -> dict[str, Callable[[], HandModel]]:
    """Every builder by name (small sizes for tests)."""
    return {
        "ising": ising,
        "ising_open": lambda: ising(4, periodic=False),
        "rbm": rbm,
        "potts": potts,
        "ring_gmm": lambda: ring_gmm(points=3),
        "classifier": mlp_classifier,
        "extern": extern_model,
        "sink": kitchen_sink,
        "tricky": tricky,
    }
