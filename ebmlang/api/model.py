"""The user-facing `Model`: a factor graph bound to a backend and its parameters.

    import ebmlang as ebm
    m = ebm.load("examples/ising.ebm", backend="jax")
    print(m.plan("sample"))
    s = m.sample(chains=8, steps=500)
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ebmlang.backends import Backend
from ebmlang.budget import as_budget
from ebmlang.errors import EbmError
from ebmlang.graph.ir import FactorGraph


def load(path: str | Path, backend: str | Backend = "torch", *, model: str | None = None, device: str | None = None,
         dtype: str | None = None, seed: int = 0, allow_root: str | Path | None = None, budget=None,
         networks: dict | None = None) -> "Model":
    """Load a `.ebm` model file (or a checkpoint saved with `Model.save`).

    model: which model of the file (default: the file's default model).
    backend: "torch" (default), "jax" or "numpy", or a configured Backend such as
    `get_backend("torch", compile=True)` (which fixes the device and dtype).
    device: default "cpu"; dtype: default "float32".
    budget: the most any one structure of the model may take ("4GiB", a number of bytes;
    default 2 GiB), checked before it is allocated, at load and in every query.
    networks: {name: module} for the file's `extern name : network(...)` declarations (as
    `Model.register_network`); a checkpoint's stored weights are kept.
    """
    path = Path(path)
    if path.suffix in (".safetensors", ".ckpt"):
        from ebmlang.learning.checkpoint import read_model_checkpoint

        graph, params, metadata = read_model_checkpoint(path, budget=budget)
        return Model(graph, backend=backend or metadata.get("backend", "torch"), device=device, dtype=dtype,
                     params=params, budget=budget, networks=networks)
    from ebmlang.graph.lower import lower_source
    from ebmlang.language.loader import read_top_source

    text = read_top_source(path)
    graph = lower_source(text, str(path), model, allow_root=allow_root, budget=budget)
    return Model(graph, backend=backend, device=device, dtype=dtype, seed=seed, budget=budget, networks=networks)


def loads(source: str, backend: str | Backend = "torch", *, model: str | None = None, name: str = "<string>",
          device: str | None = None, dtype: str | None = None, seed: int = 0, budget=None,
          networks: dict | None = None) -> "Model":
    """Compile a model from source text (see `load` for the arguments)."""
    from ebmlang.graph.lower import lower_source

    graph = lower_source(source, name, model, budget=budget)
    return Model(graph, backend=backend, device=device, dtype=dtype, seed=seed, budget=budget, networks=networks)


def _check_fixed_by(backend: Backend, device: str | None, dtype: str | None) -> None:
    """A Backend object fixes the device and dtype: asking for others is an error, not a
    silent choice between the two."""
    for what, asked, fixed in (("device", device, backend.device), ("dtype", dtype, backend.dtype)):
        # "cpu" names JAX's "cpu:0" too: a device without an index means its first one.
        same = asked is None or str(asked) in (str(fixed), str(fixed).split(":")[0])
        if not same:
            raise EbmError(f"{what}={asked!r} was asked for, but the Backend passed in uses {what}={fixed!r}",
                           hint=f"create the backend with {what}={asked!r}, or leave {what} out")


def _check_bounds_fit(graph: FactorGraph, backend: Backend) -> None:
    """Bounds the backend's floats cannot hold would become inf and then NaN in every
    transform: refuse them at the declaration."""
    largest = float(np.finfo(str(backend.dtype).replace("torch.", "")).max)
    for var in graph.variables.values():
        if var.domain.kind == "bounded" and not var.domain.high - var.domain.low <= largest:
            raise EbmError(f"the bounds of '{var.name}' ({var.domain}) are beyond what {backend.dtype} "
                           f"holds (about {largest:.2g})", var.span, source=graph.source,
                           hint="use dtype='float64' (--dtype float64), or bounds of a sensible size")


class Model:
    """A compiled energy-based model: energy, inference, learning and composition."""

    def __init__(self, graph: FactorGraph, backend: str | Backend = "torch", *, device: str | None = None,
                 dtype: str | None = None, seed: int = 0, params: dict | None = None,
                 externs: dict | None = None, budget=None, networks: dict | None = None):
        """backend: a name ("torch", "jax", "numpy"), built with `device` (default "cpu")
        and `dtype` (default "float32"), or a configured Backend (e.g.
        `get_backend("torch", compile=True)`), which fixes both."""
        from ebmlang.backends.compile import compile_graph

        self.graph = graph
        self.budget = as_budget(budget)
        if isinstance(backend, Backend):
            _check_fixed_by(backend, device, dtype)
            self.compiled = backend.compile(graph)
        else:
            self.compiled = compile_graph(graph, backend=backend, device=device or "cpu", dtype=dtype or "float32")
        self.backend = self.compiled.backend
        self.backend_name = self.backend.name
        _check_bounds_fit(graph, self.backend)
        self.externs: dict = {}
        # This graph compiled for other backends by to_torch() / to_jax(), by backend name.
        self._exports: dict = {}
        self._axes: dict | None = None
        for name, fn in (externs or {}).items():
            self.register_extern(name, fn)
        if params is None:
            params = self.compiled.init_params(self.backend.key(seed))
        self.params = {k: self.backend.asarray(v) for k, v in params.items()}
        self.networks: dict = {}  # network param group -> the module registered for it
        for name, network in (networks or {}).items():
            self.register_network(name, network)

    # -- basics ------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.graph.name

    @property
    def variables(self):
        return self.graph.variables

    @property
    def experts(self):
        return self.graph.experts

    def register_extern(self, name: str, fn) -> None:
        """Provide the function for an `extern name` declaration (backend array in, array out)."""
        if name not in self.graph.externs:
            raise EbmError(f"'{name}' is not declared extern in this model",
                           hint=f"add `extern {name}` to the .ebm file")
        self.externs[name] = fn
        self.compiled.register_extern(name, fn)

    def register_network(self, name: str, network) -> None:
        """Provide the module for an `extern name : network(IN -> OUT)` declaration: a torch
        `nn.Module` (torch backend) or `(apply_fn, params)` (JAX). Its weights become the
        params `name.<path>`, trained by `fit` and saved with the model (ebmlang.api.networks)."""
        from ebmlang.api.networks import register_network

        register_network(self, name, network)

    def network_weights(self, name: str) -> dict:
        """The current values of network `name`'s weights by module path (numpy copies)."""
        from ebmlang.api.networks import network_weights

        return network_weights(self, name)

    def param_values(self) -> dict:
        """Parameters as numpy arrays: copies, which later training (the in-place steps of a
        `to_torch()` module's optimiser included) leaves as they are."""
        return {k: np.array(self.backend.to_numpy(v)) for k, v in self.params.items()}

    def set_params(self, values=None, /, **named) -> "Model":
        """Set parameters by name and return the model: `m.set_params(J=0.4)`, a dict
        `m.set_params({"f.0.weight": w})`, or the module of `to_torch()` / the params of
        `to_jax()` after a training loop of your own (`m.set_params(module)`). Values are
        copied into the model; shapes (broadcasting allowed) and finiteness are checked."""
        from ebmlang.api.export import param_mapping, plain_value, same_memory

        for k, v in {**param_mapping(values), **named}.items():
            if k not in self.params:
                from ebmlang.errors import did_you_mean
                raise EbmError(f"no parameter '{k}'", hint=did_you_mean(k, self.params))
            current = self.backend.to_numpy(self.params[k])
            declared = getattr(self.graph.params.get(k), "span", None)  # None for `f.0.weight`, `net.<path>`
            try:
                value = np.asarray(plain_value(v), dtype=float)
                value = np.broadcast_to(value, current.shape).copy()
            except (TypeError, ValueError, RuntimeError):
                raise EbmError(f"cannot set param '{k}' of shape {list(current.shape)} to {v!r}",
                               expected="a real number or an array of that shape (or one that broadcasts to it)",
                               span=declared, source=self.graph.source) from None
            if not np.isfinite(value).all():
                raise EbmError(f"param '{k}' would hold NaN or infinite values", span=declared,
                               source=self.graph.source)
            if not same_memory(v, self.params[k]):  # a to_torch() module's own tensor is already in
                self.params[k] = self.backend.asarray(value)
        return self

    # -- export to your own code -------------------------------------------
    def to_torch(self):
        """The energy as a torch `nn.Module`, for a training loop of your own:
        `module(state)` takes {variable: tensor [batch, *shape]} and returns the energy of
        each row [batch]; `module.parameters()` are the model's params (nn.Parameters named
        with '.' as '__'; `module.named_params()` by their ebmlang names).

        On a torch model they share memory with the model: optimiser steps on the module are
        at once what `energy`, `sample`, `argmin` and `save` use. On another backend the
        graph is compiled for torch on demand and the module holds copies: bring trained
        values back with `m.set_params(module)` (also needed after `module.to(...)`)."""
        from ebmlang.api.export import to_torch

        return to_torch(self)

    def to_jax(self):
        """The energy as a pure JAX function and its params, `(fn, params)`:
        `fn(state, params)` takes {variable: array [batch, *shape]} and {name: array} and
        returns the energy of each row [batch]; it can be jitted and differentiated (e.g.
        `jax.grad(lambda p: fn(state, p).mean())(params)`). JAX arrays are immutable: bring
        trained params back with `m.set_params(params)`. A model on another backend is
        compiled for JAX on demand."""
        from ebmlang.api.export import to_jax

        return to_jax(self)

    def _merged(self, state, values: dict) -> dict:
        """A state given as a dict and/or keyword arrays."""
        if state is not None and not isinstance(state, dict):
            raise EbmError(f"a state is a dict of arrays by variable name, got {type(state).__name__}",
                           hint=f"e.g. energy({{'{next(iter(self.graph.variables))}': array}}) or energy(name=array)")
        return {**(state or {}), **values}

    def _state(self, values: dict, batched: bool | None = None) -> dict:
        from ebmlang.graph.values import batch_rows, check_values

        if not isinstance(values, dict):
            raise EbmError(f"a state is a dict of arrays by variable name, got {type(values).__name__}",
                           hint=f"e.g. energy({{'{next(iter(self.graph.variables))}': array}})")
        out = {}
        for name, value in values.items():
            if name not in self.graph.variables:
                from ebmlang.errors import did_you_mean
                raise EbmError(f"'{name}' is not a variable of model {self.name}",
                               hint=did_you_mean(name, self.graph.variables))
            arr = check_values(self.graph.variables[name], value, source=self.graph.source, batched=batched)
            out[name] = arr
        missing = [n for n in self.graph.variables if n not in out]
        if missing:
            raise EbmError(f"energy needs a value for every variable; missing: {', '.join(missing)}")
        batch = batch_rows(out, "the state's batches")
        return {k: self.backend.asarray(np.broadcast_to(v, (batch,) + v.shape[1:]).copy()) for k, v in out.items()}

    def energy(self, state: dict | None = None, *, nan_is_error: bool = False, **values) -> np.ndarray:
        """Total energy of a state (or a batch of states) given as arrays per variable.

        nan_is_error: raise an EbmError at the term that gave NaN instead of returning it."""
        state = self._merged(state, values)
        batch = self._state(state)
        e = self.backend.to_numpy(self.compiled.energy(batch, self.params))
        if nan_is_error and np.isnan(e).any():
            from ebmlang.inference.diagnostics import locate_nonfinite

            raise locate_nonfinite(self, batch, what="energy")
        return e

    def term_energies(self, state: dict | None = None, **values) -> dict:
        state = self._merged(state, values)
        terms = self.compiled.term_energies(self._state(state), self.params)
        return {k: self.backend.to_numpy(v) for k, v in terms.items()}

    # -- inference ---------------------------------------------------------
    def plan(self, query: str = "sample", observed=None, method=None):
        """The inference method chosen per block of latent variables, with the reason."""
        from ebmlang.inference.plan import plan_query

        names = observed.keys() if isinstance(observed, dict) else (observed or ())
        return plan_query(self.graph, query, tuple(names), method, budget=self.budget, params=self.param_values())

    def sample(self, chains: int = 4, steps: int = 1000, *, observed: dict | None = None,
               method=None, temperature: float = 1.0, burn_in: int | None = None, thin: int = 1,
               seed: int = 0, init: dict | None = None, progress: bool = True, step_size: float | None = None,
               tempering=None):
        """Draw samples from exp(-E / temperature) with the automatically chosen method.

        `tempering=R` runs each chain as R replicas on a ladder of temperatures from 1 to 10
        (times `temperature`) that swap states, so chains cross between modes that a single
        chain would not leave; a list gives the ladder, `ebmlang.Tempering(...)` the details
        (inference/tempering.py). Only the temperature-1 replicas are kept; the swap
        acceptance per pair of neighbours is in `samples.info["tempering"]`."""
        from ebmlang.inference.run import sample_model
        from ebmlang.inference.summary import declared_axes
        from ebmlang.inference.tempering import sample_tempered

        options = dict(chains=chains, steps=steps, observed=observed, method=method, temperature=temperature,
                       burn_in=burn_in, thin=thin, seed=seed, init=init, progress=progress, step_size=step_size)
        samples = (sample_model(self, **options) if tempering is None
                   else sample_tempered(self, tempering=tempering, **options))
        if self._axes is None:  # the declared axis names, for ArviZ dims (read from the source once)
            self._axes = declared_axes(self.graph)
        samples.axis_names = self._axes
        return samples

    def argmin(self, *, observed: dict | None = None, method=None, seed: int = 0, **options):
        """The minimum-energy state (MAP) with the automatically chosen method.

        `observed` values of the variables' shapes give one answer; a leading batch axis
        gives one answer per row (state arrays [B, *shape], energy [B]). `method` names a
        method (e.g. "ilp", "graphcut", "bp", "annealing", "lbfgs"); options go to it, e.g.
        `time_limit` (seconds) for the exact integer program. `result.info["proven"]` says
        whether a discrete answer is proven optimal."""
        from ebmlang.inference.minimize import argmin_model

        return argmin_model(self, observed=observed, method=method, seed=seed, **options)

    def conditional(self, observed: dict | None = None, beta: float = 1.0):
        """The exact Gibbs distribution of the (small, discrete) latent variables given `observed`
        (a list, one per row, for a batch of observations)."""
        from ebmlang.inference.minimize import exact_conditional

        return exact_conditional(self, observed=observed, beta=beta)

    def marginals(self, observed: dict | None = None, *, beta: float = 1.0, draws: int = 0, seed: int = 0,
                  method: str | None = None, damping: float = 0.5, iters: int = 200, tol: float = 1e-6):
        """Marginals, log Z, mode and (with `draws`) independent joint draws of the latent
        discrete variables given `observed`: exact by sum-product on a tree or a junction tree
        when one fits the budget, else (or with method="bp") loopy sum-product BP's
        approximation (`damping`, `iters`, `tol`; `result.exact` is False and `result.info`
        reports convergence). A leading batch axis on the observations batches every answer."""
        from ebmlang.inference.exact.query import exact_answers

        return exact_answers(self, observed=observed, beta=beta, draws=draws, seed=seed, method=method,
                             damping=damping, iters=iters, tol=tol)

    def log_partition(self, observed: dict | None = None, *, beta: float = 1.0):
        """log sum over the latent discrete states of exp(-beta E), observed values fixed: exact
        where `marginals` is exact, else loopy BP's Bethe estimate (see `marginals`)."""
        return self.marginals(observed, beta=beta).log_z

    def rank(self, observed: dict | None = None, k: int = 5):
        """The k lowest-energy joint values of the latent variables, with their energies
        (a list of such lists, one per row, for a batch of observations)."""
        from ebmlang.inference.minimize import rank_states

        return rank_states(self, observed=observed, k=k)

    # -- learning ----------------------------------------------------------
    def fit(self, data, **options):
        """Fit the parameters to data (see ebmlang.learning.fit for the options)."""
        from ebmlang.learning import fit

        return fit(self, data, **options)

    def log_prob(self, data, *, method: str = "auto", **options) -> np.ndarray:
        """Log-probability of each example of `data`, float64 [N]: exact where it is
        computable (small discrete models, RBMs, discrete data given continuous data), and
        for continuous data (method "auto" or "ais") -log Z - E(data), the other groups summed
        out exactly and log Z by annealed importance sampling. Pass `log_z=self.log_z(...)`
        to reuse one estimate (its stderr is the common error of the values); other options:
        see ebmlang.learning.log_prob and ais_log_z."""
        from ebmlang.learning import log_prob

        return log_prob(self, data, method=method, **options)

    def log_z(self, *, method: str = "auto", **options):
        """log Z of the model as a LogZResult (float() of it is the value): exact by
        enumeration where that fits, else by annealed importance sampling with its standard
        error (result.method says which; options: see ebmlang.learning.log_z and ais_log_z,
        e.g. data= to fit the AIS base, chains=, steps=, seed=)."""
        from ebmlang.learning import log_z

        return log_z(self, method=method, **options)

    def save(self, path: str | Path) -> None:
        from ebmlang.learning.checkpoint import save_checkpoint

        save_checkpoint(self, path)

    # -- composition -------------------------------------------------------
    def _compose(self, experts, name: str) -> "Model":
        from ebmlang.graph.compose import compose

        graph = compose([(n, m.graph, w) for n, m, w in experts], name)
        params, networks = {}, {}
        for expert_name, model, _ in experts:
            prefix = f"{expert_name}." if expert_name else ""
            for k, v in model.param_values().items():
                params[prefix + k] = v
            networks.update({prefix + k: v for k, v in model.networks.items()})
        fresh = Model(graph, backend=self.backend, budget=self.budget, networks=networks)
        for k in fresh.params:
            if k in params:
                fresh.params[k] = fresh.backend.asarray(params[k])
        return fresh

    def __mul__(self, other: "Model") -> "Model":
        if not isinstance(other, (Model, _Weighted)):
            return NotImplemented
        left = self._as_experts()
        right = other._as_experts()
        return self._compose(_unique(left + right), f"{self.name}*{other_name(other)}")

    def __pow__(self, weight) -> "_Weighted":
        return _Weighted(self, weight)

    def _as_experts(self):
        return [(self.name, self, 1.0)]

    def rename(self, **mapping) -> "Model":
        """The same model with variables renamed: `m.rename(x="y")`."""
        from ebmlang.graph.compose import rename

        fresh = Model(rename(self.graph, mapping), backend=self.backend, budget=self.budget,
                      networks={mapping.get(k, k): v for k, v in self.networks.items()})
        # Params may be renamed too (`m.rename(beta="gamma")`): carry values under their new names.
        fresh.params = {mapping.get(k, k) if k in self.graph.params else k: v for k, v in self.params.items()}
        return fresh

    def observe(self, *names: str) -> "Model":
        """The same model and params with `names` observed (given at every query)."""
        from ebmlang.graph.compose import observe

        return self._with_graph(observe(self.graph, names))

    def latent(self, *names: str) -> "Model":
        """The same model and params with `names` latent (sampled or minimised over): e.g.
        an RBM trained with `observed v` made generative by `rbm.latent("v")`."""
        from ebmlang.graph.compose import latent

        return self._with_graph(latent(self.graph, names))

    def _with_graph(self, graph: FactorGraph) -> "Model":
        """Another graph over the same params, on the same backend."""
        fresh = Model(graph, backend=self.backend, budget=self.budget, networks=self.networks)
        fresh.params = dict(self.params)
        return fresh

    # -- display -----------------------------------------------------------
    def __repr__(self) -> str:
        g = self.graph
        vars_ = ", ".join(f"{'observed ' if v.observed else ''}{v.name}{list(v.shape)}: {v.domain}"
                          for v in g.variables.values())
        params = ", ".join(f"{p.name}{list(p.shape) if p.shape else ''}" for p in g.params.values())
        return (f"Model {g.name!r} ({self.backend_name}) from {g.file}\n  variables: {vars_}\n"
                f"  params: {params or '-'}\n  terms: {', '.join(g.terms)}")

    def _repr_html_(self) -> str:
        g = self.graph
        rows = "".join(f"<tr><td>{v.name}</td><td>{list(v.shape)}</td><td>{v.domain}</td>"
                       f"<td>{'observed' if v.observed else 'latent'}</td></tr>" for v in g.variables.values())
        return (f"<p><b>Model {g.name}</b> ({self.backend_name}) &mdash; terms: {', '.join(g.terms)}</p>"
                f"<table><tr><th>variable</th><th>shape</th><th>domain</th><th>role</th></tr>{rows}</table>")


class _Weighted:
    """`model ** w`: an expert with a weight (inverse temperature), for use in a product."""

    def __init__(self, model: Model, weight):
        self.model = model
        self.weight = weight

    @property
    def name(self) -> str:
        return self.model.name

    def _as_experts(self):
        return [(self.model.name, self.model, self.weight)]

    def __mul__(self, other):
        if not isinstance(other, (Model, _Weighted)):
            return NotImplemented
        return self.model._compose(_unique(self._as_experts() + other._as_experts()),
                                   f"{self.name}*{other_name(other)}")


def other_name(m) -> str:
    return m.name


def _unique(experts):
    """Give repeated expert names a suffix so their params stay apart."""
    seen: dict[str, int] = {}
    out = []
    for name, model, weight in experts:
        n = seen.get(name, 0)
        seen[name] = n + 1
        out.append((name if n == 0 else f"{name}{n + 1}", model, weight))
    return out
