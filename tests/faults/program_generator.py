"""Hypothesis strategies for random VALID `.ebm` programs, each with its own oracle.

A program has 1-3 variable groups (every domain; scalar, vector or matrix shapes up to
3 x 3), 0-2 params (a value, a normal draw, or a small mlp), and 1-3 energy terms whose
bodies come from a typed expression grammar: numbers, params, variables of numeric
domains, index variables, + - * and safe division, unary functions, integer powers,
reductions with an optional `where` filter, and indicators over comparisons of
discrete values and indices (categorical labels only with == and !=, as the language
requires). Sometimes a term is a constraint. Every index stays in range by
construction, so a program the checker rejects is a generator or checker bug.

Every expression is generated together with a plain numpy function computing it
ground factor by ground factor -- straight from the source's meaning, not through the
IR -- so a lowering bug that the IR-based numpy reference shares with the backends is
still caught.

Magnitudes stay moderate (bounded functions, divisions by 1 + y^2) so that float32
backends can be compared with the float64 oracle at a fixed tolerance.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import product

import numpy as np
from hypothesis import strategies as st
from scipy.special import expit, logsumexp

NUMERIC_KINDS = ("real", "bounded", "binary", "spin", "integer")
BOUNDED_FUNCTIONS = {"tanh": np.tanh, "sigmoid": expit, "sin": np.sin, "cos": np.cos}
GROWING_FUNCTIONS = {"softplus": lambda x: np.logaddexp(0.0, x), "abs": np.abs, "square": np.square,
                     "relu": lambda x: np.maximum(x, 0.0)}
ACTIVATIONS = {"tanh": np.tanh, "silu": lambda x: x * expit(x), "relu": lambda x: np.maximum(x, 0.0),
               "softplus": lambda x: np.logaddexp(0.0, x)}
REDUCTIONS = {"sum": lambda v: np.sum(v, 0), "mean": lambda v: np.mean(v, 0), "prod": lambda v: np.prod(v, 0),
              "min": lambda v: np.min(v, 0), "max": lambda v: np.max(v, 0),
              "logsumexp": lambda v: logsumexp(v, axis=0)}
COMPARISONS = {"==": np.equal, "!=": np.not_equal, "<": np.less, "<=": np.less_equal, ">": np.greater,
               ">=": np.greater_equal}

# Env: {"state": {group: [B, *shape]}, "params": {name: array}, "index": {name: int}, "batch": B}.
Oracle = Callable[[dict], np.ndarray]


@dataclass(frozen=True)
class VarSpec:
    name: str
    shape: tuple[int, ...]
    kind: str
    size: int = 2          # K of categorical / integer domains
    low: int = 0           # first value of an integer domain, low end of a bounded one
    high: int = 1          # high end of a bounded domain
    observed: bool = False

    def declaration(self) -> str:
        role = "observed" if self.observed else "latent"
        shape = f"[{', '.join(map(str, self.shape))}]" if self.shape else ""
        domain = {"real": "real", "binary": "binary", "spin": "spin",
                  "bounded": f"real in [{self.low}, {self.high}]",
                  "categorical": f"categorical({self.size})",
                  "integer": f"integer in {self.low}..{self.low + self.size}"}[self.kind]
        return f"{role} {self.name}{shape} : {domain}"

    def domain_values(self) -> list[int]:
        return {"binary": [0, 1], "spin": [-1, 1], "categorical": list(range(self.size)),
                "integer": list(range(self.low, self.low + self.size))}[self.kind]

    def values(self, rng: np.random.Generator, batch: int) -> np.ndarray:
        """A batch of values inside the domain."""
        shape = (batch,) + self.shape
        if self.kind == "real":
            return rng.normal(0.0, 1.5, size=shape)
        if self.kind == "bounded":
            return rng.uniform(self.low, self.high, size=shape)
        return rng.choice(np.asarray(self.domain_values(), dtype=float), size=shape)


@dataclass(frozen=True)
class ParamSpec:
    name: str
    size: int | None       # None: a scalar
    text: str
    mlp_input: str = ""    # the real vector group an mlp param reads
    activation: str = ""


@dataclass(frozen=True)
class TermSpec:
    name: str
    ranges: dict           # index name -> range size (the term's index set)
    where: Callable | None  # filter on the index environment, or None
    body: Oracle           # energy of one ground factor (a constraint: its condition)
    is_constraint: bool

    def energy(self, state: dict, params: dict, batch: int) -> np.ndarray:
        """The term's energy [batch]: a sum over its ground factors, computed one by one."""
        total = np.zeros(batch)
        names = list(self.ranges)
        for values in product(*(range(self.ranges[n]) for n in names)):
            index = dict(zip(names, values))
            if self.where is not None and not self.where(index):
                continue
            env = {"state": state, "params": params, "index": index, "batch": batch}
            value = np.broadcast_to(np.asarray(self.body(env), dtype=float), (batch,))
            if self.is_constraint:
                value = np.where(value != 0, 0.0, np.inf)
            total = total + value
        return total


@dataclass(frozen=True)
class Program:
    source: str
    variables: tuple[VarSpec, ...]
    params: tuple[ParamSpec, ...]
    terms: tuple[TermSpec, ...] = field(repr=False)
    seed: int = 0

    def _repr_pretty_(self, printer, cycle) -> None:  # how Hypothesis prints a failing case
        printer.text(f"Program(seed={self.seed}, source={self.source!r})")

    def term_energies(self, state: dict, params: dict, batch: int) -> dict[str, np.ndarray]:
        return {t.name: t.energy(state, params, batch) for t in self.terms}


def _batch(env, value) -> np.ndarray:
    return np.broadcast_to(np.asarray(value, dtype=float), (env["batch"],))


class _Builder:
    """Draws typed expressions as (source text, oracle); `scope` maps the index names
    bound around the expression to their range sizes."""

    def __init__(self, draw, variables, params):
        self.draw = draw
        self.variables = variables
        self.params = params
        self.fresh = 0

    def index_name(self) -> str:
        self.fresh += 1
        return f"i{self.fresh}"

    # -- indices ---------------------------------------------------------------
    def index_into(self, size: int, scope: dict) -> tuple[str, Callable[[dict], int]]:
        usable = [n for n, r in scope.items() if r <= size]
        options = ["const"] + (["bound"] if usable else []) + (["wrapped"] if scope else [])
        how = self.draw(st.sampled_from(options))
        if how == "bound":
            name = self.draw(st.sampled_from(sorted(usable)))
            return name, lambda index: index[name]
        if how == "wrapped":
            name = self.draw(st.sampled_from(sorted(scope)))
            shift = self.draw(st.integers(1, 2))
            return f"({name} + {shift}) % {size}", lambda index: (index[name] + shift) % size
        value = self.draw(st.integers(0, size - 1))
        return str(value), lambda index: value

    def ref(self, var: VarSpec, scope: dict) -> tuple[str, Oracle]:
        if not var.shape:
            return var.name, lambda env: env["state"][var.name]
        parts = [self.index_into(d, scope) for d in var.shape]
        text = f"{var.name}[{', '.join(p[0] for p in parts)}]"
        return text, lambda env: env["state"][var.name][(slice(None),) + tuple(p[1](env["index"]) for p in parts)]

    # -- numbers ---------------------------------------------------------------
    def leaf(self, scope: dict) -> tuple[str, Oracle]:
        numeric = [v for v in self.variables if v.kind in NUMERIC_KINDS]
        plain = [p for p in self.params if not p.mlp_input]
        neural = [p for p in self.params if p.mlp_input]
        options = (["mlp"] if neural else []) + (["variable"] * 2 if numeric else []) + \
            (["index"] if scope else []) + (["param"] if plain else []) + ["number"]
        kind = self.draw(st.sampled_from(options))
        if kind == "variable":
            return self.ref(self.draw(st.sampled_from(numeric)), scope)
        if kind == "param":
            param = self.draw(st.sampled_from(plain))
            if param.size is None:
                return param.name, lambda env: _batch(env, env["params"][param.name])
            text, at = self.index_into(param.size, scope)
            return f"{param.name}[{text}]", lambda env: _batch(env, env["params"][param.name][at(env["index"])])
        if kind == "index":
            name = self.draw(st.sampled_from(sorted(scope)))
            return name, lambda env: _batch(env, env["index"][name])
        if kind == "mlp":
            param = self.draw(st.sampled_from(neural))
            return f"{param.name}({param.mlp_input})", lambda env: _mlp(env, param)
        text = self.draw(st.sampled_from(["0.5", "-1.25", "2", "0.75", "-3", "1.5"]))
        return text, lambda env: _batch(env, float(text))

    def number(self, scope: dict, depth: int) -> tuple[str, Oracle]:
        if depth <= 0:
            return self.leaf(scope)
        # Hypothesis leans toward the first entries; the structures most likely to hide a
        # lowering bug come first (reductions twice).
        kind = self.draw(st.sampled_from(
            ["reduce", "mul", "add", "reduce", "indicator", "div", "growing", "power", "exp", "log", "neg",
             "sub", "bounded", "leaf"]))
        if kind in ("add", "sub", "div"):
            (a, fa), (b, fb) = self.number(scope, depth - 1), self.number(scope, depth - 1)
            if kind == "add":
                return f"({a} + {b})", lambda env: fa(env) + fb(env)
            if kind == "sub":
                return f"({a} - {b})", lambda env: fa(env) - fb(env)
            # 1.0, not 1: `/` between integers (literals, indices) is floor division.
            return f"({a}) / (1.0 + ({b})^2)", lambda env: fa(env) / (1.0 + fb(env) ** 2)
        if kind == "mul":
            (a, fa), (b, fb) = self.bounded(scope, depth - 1), self.number(scope, depth - 1)
            return f"{a} * {b}", lambda env: fa(env) * fb(env)
        if kind == "neg":
            a, fa = self.number(scope, depth - 1)
            return f"-({a})", lambda env: -fa(env)
        if kind == "bounded":
            return self.bounded(scope, depth)
        if kind == "growing":
            name = self.draw(st.sampled_from(sorted(GROWING_FUNCTIONS)))
            a, fa = self.bounded(scope, depth - 1)
            return f"{name}({a})", lambda env: GROWING_FUNCTIONS[name](fa(env))
        if kind == "power":
            a, fa = self.bounded(scope, depth - 1)
            k = self.draw(st.integers(2, 3))
            return f"({a})^{k}", lambda env: fa(env) ** k
        if kind == "reduce":
            return self.reduction(scope, depth)
        if kind == "indicator":
            a, fa = self.condition(scope, depth - 1)
            return f"[{a}]", lambda env: _batch(env, fa(env))
        if kind == "exp":
            a, fa = self.bounded(scope, depth - 1)
            return f"exp({a})", lambda env: np.exp(fa(env))
        if kind == "log":
            a, fa = self.number(scope, depth - 1)
            return f"log(1 + ({a})^2)", lambda env: np.log(1.0 + fa(env) ** 2)
        return self.leaf(scope)

    def bounded(self, scope: dict, depth: int) -> tuple[str, Oracle]:
        """A number of magnitude at most a few: a bounded function or an indicator."""
        if depth > 0 and self.draw(st.booleans()):
            a, fa = self.condition(scope, depth - 1)
            return f"[{a}]", lambda env: _batch(env, fa(env))
        a, fa = self.number(scope, max(depth - 1, 0))
        name = self.draw(st.sampled_from(sorted(BOUNDED_FUNCTIONS)))
        return f"{name}({a})", lambda env: BOUNDED_FUNCTIONS[name](fa(env))

    def reduction(self, scope: dict, depth: int) -> tuple[str, Oracle]:
        op = self.draw(st.sampled_from(["sum", "prod", "logsumexp", "mean", "max", "min"]))
        name = self.index_name()
        size = self.draw(st.integers(1, 3))
        inner = dict(scope, **{name: size})
        where, excluded = "", None
        if size > 1 and self.draw(st.integers(0, 3)) == 0:
            excluded = self.draw(st.integers(0, size - 1))
            where = f" where {name} != {excluded}"
        # prod and logsumexp of growing bodies would leave float32's comfortable range.
        body, fbody = self.bounded(inner, depth - 1) if op in ("prod", "logsumexp") \
            else self.number(inner, depth - 1)

        def value(env):
            rows = [fbody({**env, "index": {**env["index"], name: k}}) for k in range(size) if k != excluded]
            return REDUCTIONS[op](np.stack([_batch(env, r) for r in rows]))

        return f"{op}({name} in 0..{size}{where}) ({body})", value

    # -- conditions (oracles give booleans, [B] or scalar) -----------------------
    def condition(self, scope: dict, depth: int) -> tuple[str, Oracle]:
        discrete = [v for v in self.variables if v.kind in ("binary", "spin", "categorical", "integer")]
        options = (["variable"] * 3 if discrete else []) + (["index"] if scope else []) + \
            (["combine", "negate"] if depth > 0 else [])
        if not options:
            value = self.draw(st.integers(0, 2))
            return f"{value} < 1", lambda env: value < 1
        kind = self.draw(st.sampled_from(options))
        if kind == "combine":
            (a, fa), (b, fb) = self.condition(scope, depth - 1), self.condition(scope, depth - 1)
            if self.draw(st.booleans()):
                return f"({a} and {b})", lambda env: np.logical_and(fa(env), fb(env))
            return f"({a} or {b})", lambda env: np.logical_or(fa(env), fb(env))
        if kind == "negate":
            a, fa = self.condition(scope, depth - 1)
            return f"not ({a})", lambda env: np.logical_not(fa(env))
        if kind == "index":
            name = self.draw(st.sampled_from(sorted(scope)))
            op = self.draw(st.sampled_from(sorted(COMPARISONS)))
            value = self.draw(st.integers(0, 2))
            return f"{name} {op} {value}", lambda env: COMPARISONS[op](env["index"][name], value)
        var = self.draw(st.sampled_from(discrete))
        op = self.draw(st.sampled_from(["==", "!="] if var.kind == "categorical" else sorted(COMPARISONS)))
        left, fleft = self.ref(var, scope)
        if self.draw(st.booleans()):
            value = self.draw(st.sampled_from(var.domain_values()))
            return f"{left} {op} {value}", lambda env: COMPARISONS[op](fleft(env), value)
        right, fright = self.ref(var, scope)
        return f"{left} {op} {right}", lambda env: COMPARISONS[op](fleft(env), fright(env))


def _mlp(env, param: ParamSpec) -> np.ndarray:
    """f(x) = W1 act(W0 x + b0) + b1 in PyTorch's layout (weight [out, in])."""
    p = env["params"]
    hidden = env["state"][param.mlp_input] @ p[f"{param.name}.0.weight"].T + p[f"{param.name}.0.bias"]
    out = ACTIVATIONS[param.activation](hidden) @ p[f"{param.name}.1.weight"].T + p[f"{param.name}.1.bias"]
    return out[:, 0]


@st.composite
def variable_specs(draw, name: str) -> VarSpec:
    kind = draw(st.sampled_from(["real", "categorical", "integer", "spin", "binary", "bounded"]))
    shape = tuple(draw(st.lists(st.integers(1, 3), min_size=0, max_size=2)))
    observed = draw(st.integers(0, 3)) == 0
    if kind == "bounded":
        return VarSpec(name, shape, kind, low=draw(st.sampled_from([-1, 0])), high=draw(st.sampled_from([1, 2])),
                       observed=observed)
    if kind in ("categorical", "integer"):
        return VarSpec(name, shape, kind, size=draw(st.integers(2, 4)), low=draw(st.integers(-1, 1))
                       if kind == "integer" else 0, observed=observed)
    return VarSpec(name, shape, kind, observed=observed)


@st.composite
def param_specs(draw, number: int, variables) -> ParamSpec:
    kind = draw(st.sampled_from(["mlp", "vector", "scalar"]))
    real_vectors = [v for v in variables if v.kind in ("real", "bounded") and len(v.shape) == 1]
    if kind == "mlp" and real_vectors:
        source = draw(st.sampled_from(real_vectors))
        activation = draw(st.sampled_from(sorted(ACTIVATIONS)))
        return ParamSpec(f"f{number}", None, f"param f{number} : mlp({source.shape[0]} -> 3 -> 1, {activation})",
                         mlp_input=source.name, activation=activation)
    if kind == "vector":
        size = draw(st.integers(1, 3))
        return ParamSpec(f"w{number}", size, f"param w{number}[{size}] ~ normal(0, 0.5)")
    value = draw(st.sampled_from(["0.5", "-1.0", "2.0"]))
    return ParamSpec(f"w{number}", None, f"param w{number} = {value}")


@st.composite
def programs(draw) -> Program:
    """A random valid program with its oracle and a seed for the states to test it at."""
    variables = tuple(draw(variable_specs(f"x{k}")) for k in range(draw(st.integers(1, 3))))
    params = tuple(draw(param_specs(k, variables)) for k in range(draw(st.integers(0, 2))))
    builder = _Builder(draw, variables, params)
    lines = [v.declaration() for v in variables] + [p.text for p in params]
    terms = []
    for k in range(draw(st.integers(1, 3))):
        ranges: dict[str, int] = {}
        header, where = "", None
        if draw(st.booleans()):
            names = [builder.index_name() for _ in range(draw(st.integers(1, 2)))]
            ranges = {n: draw(st.integers(1, 3)) for n in names}
            header = "[" + ", ".join(f"{n} in 0..{r}" for n, r in ranges.items())
            if len(names) == 2 and draw(st.booleans()):
                first, second = names
                header += f" where {first} <= {second}"
                where = lambda index, a=first, b=second: index[a] <= index[b]  # noqa: E731
            header += "]"
        if k > 0 and draw(st.integers(0, 5)) == 0:
            text, oracle = builder.condition(ranges, 1)
            lines.append(f"constraint c{k}{header} : {text}")
            terms.append(TermSpec(f"c{k}", ranges, where, oracle, True))
        else:
            text, oracle = builder.number(ranges, draw(st.integers(2, 3)))
            lines.append(f"energy t{k}{header} = {text}")
            terms.append(TermSpec(f"t{k}", ranges, where, oracle, False))
    return Program("\n".join(lines) + "\n", variables, params, tuple(terms), draw(st.integers(0, 2**31 - 1)))
