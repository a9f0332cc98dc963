"""Swendsen-Wang and Wolff cluster updates for ferromagnetic Potts and Ising couplings.

A discrete model qualifies when, with its parameters (and observed values) fixed, every
factor reads at most two latent variables and every pairwise table, after the parts that
depend on one endpoint alone are moved into the unary tables, is the Potts coupling

    T_e(a, b) = c_e - J_e [a == b],   J_e >= 0

(a spin or binary Ising coupling -J s s' is this form with J_e = 2 J; for two labels
every submodular table is). The tables come from the compiled energy itself
(`tabulate.py`'s `LocalTable`s), so the form is recognised whatever expression wrote it:
`-J * s[i,j] * (s[i+1,j] + s[i,j+1])` and two separate terms give the same couplings.

Both moves are Gibbs updates of the Edwards-Sokal joint of labels and bonds: each
satisfied edge (a == b) is bonded with probability p_e = 1 - exp(-J_e / T), the bonded
edges' connected components (`scipy.sparse.csgraph.connected_components`, every chain
at once as one block-diagonal graph) are the clusters, and

* Swendsen-Wang relabels every cluster C by heat bath: label l with probability
  proportional to exp(-sum_{i in C} U_i(l) / T), U the unary tables -- exact with fields;
  without one, a uniform relabelling;
* Wolff relabels only the cluster of a uniformly random seed site: a label drawn
  uniformly among the others, accepted by a Metropolis test on the cluster's unary
  energy change (always accepted without a field: the classic Wolff flip). Which cluster
  is updated depends on the bonds alone, so the move keeps the joint. The bonds and
  components are computed for the whole lattice, so a Wolff step costs what a
  Swendsen-Wang step does here and changes less: per unit of work Swendsen-Wang is the
  better of the two in this implementation.

A sampling step is one cluster update, then one chromatic Gibbs sweep (`steppers.py`):
the sweep costs little beside the cluster step, relaxes the short-wavelength modes that
relabelling whole clusters leaves (the energy's autocorrelation), and moves a Wolff chain
whose clusters are small (high temperature). The cluster moves alone are already
ergodic: with every p_e < 1 a step can relabel each site on its own.

The labels travel through numpy (the components come from scipy); keys come from the
backend key of the step, as for every other stepper.

Plan time and run time. The sample plan (`plan.py`) checks the structure (discrete
variables only, no constraint, at most two latent variables per factor) and then the
coupling tables themselves, tabulated on the numpy backend with the model's parameter
values (`Model.plan` and `Model.sample` pass them; `ebm plan` uses the declared initial
values), so an antiferromagnet is planned as Gibbs. It picks Swendsen-Wang by itself only
when the couplings read no observed values (the plan does not see data), and up to
AUTO_CLUSTER_SITES sites. The stepper tabulates again when the run starts, with the
observed values; a model that fails there (only couplings that read data can: a request
for a cluster method lets them through the plan) is an EbmError naming the term -- never
a silent fall-back, so the plan a run reports is the one it used.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

from ebmlang.errors import EbmError
from ebmlang.graph.ir import Extern, Neural, walk
from ebmlang.inference.tabulate import (
    _factor_positions,
    _latent_slots,
    _local_energies,
    _slot_variable_ids,
    latent_index,
    latent_pairs,
    slot_reads,
    tabular_status,
)
from ebmlang.inference.temperature import chain_inverse_temperature

CLUSTER_METHODS = ("swendsen_wang", "wolff")
# The plan picks Swendsen-Wang by itself up to this many latent sites: the bonds and their
# components are found on the CPU every step, which beyond it can cost more than the
# Gibbs sweeps it saves away from a critical point (method='swendsen_wang' still asks).
AUTO_CLUSTER_SITES = 2 ** 16
AUTO_CLUSTER_PAIRS = 2 ** 18
# A table entry may miss the Potts form by this much relative to its largest entry:
# tables come from float32 energies.
TOLERANCE = 1e-5


class NotPotts(Exception):
    """Why a model's couplings are not ferromagnetic Potts ones: `term` and the reason."""

    def __init__(self, term: str | None, reason: str):
        super().__init__(reason)
        self.term = term
        self.reason = reason


@dataclass(frozen=True)
class PottsCouplings:
    """edges [m, 2] (smaller id first), strength J [R, m] >= 0, unary U [R, n, K] (the
    separable parts of the coupling tables folded in; +inf at labels a variable lacks),
    num_labels [n]; R is 1 or one row per chain."""

    edges: np.ndarray
    strength: np.ndarray
    unary: np.ndarray
    num_labels: np.ndarray


# --------------------------------------------------------------------------
# Recognising the form


def structural_obstacle(graph, groups, observed, continuous=(), data_free: bool = True):
    """(term or None, why the model cannot take cluster moves, from its structure alone),
    or None when it may (the coupling tables are checked with the parameters)."""
    if continuous:
        return None, (f"the model also has continuous variables ({', '.join(continuous)}); cluster moves "
                      "need the discrete block alone, so the blocks alternate by Gibbs")
    latent = set(groups)
    for t in graph.templates:
        if t.is_constraint and set(t.groups) & latent:
            return t.term, f"term '{t.term}' is a hard constraint"
    status = tabular_status(graph, observed)
    if not status.tabular:
        return None, status.why_not
    index = latent_index(graph, observed)
    for t in graph.templates:
        slots = _latent_slots(t, latent)
        if not slots:
            continue
        _, count, _ = _factor_positions(_slot_variable_ids(t, slots, index)[0])
        if count.max(initial=0) > 2:
            return t.term, f"term '{t.term}' couples {int(count.max())} latent variables in one factor"
        if count.max(initial=0) < 2:
            continue
        if any(isinstance(node, (Neural, Extern)) for node in walk(t.body)):
            return t.term, f"term '{t.term}' couples latent variables through a network or extern"
        others = sorted(set(t.groups) - latent)
        if data_free and others:
            return t.term, (f"the couplings of term '{t.term}' read {', '.join(others)}, whose values "
                            "are not known when the plan is made")
    return None


def _template_tables(compiled, params, context: dict, observed, rows: int, couplings_only: bool):
    """(template, [n_g, 2] distinct variables, count [n_g], table [R, n_g, K(, K)]) for every
    template reading the latent discrete variables (at most two per factor)."""
    graph = compiled.graph
    index = latent_index(graph, observed)
    latent = set(index.groups)
    kmax = int(index.num_labels.max()) if index.total else 1
    for t in graph.templates:
        slots = _latent_slots(t, latent)
        if not slots:
            continue
        ids, shapes = _slot_variable_ids(t, slots, index)
        distinct, count, position = _factor_positions(ids)
        arity = int(count.max())
        if couplings_only and arity < 2:
            continue
        reads = slot_reads(slots, shapes, position, t.num_ground)
        table = _local_energies(compiled, t, reads, context, params, rows, (kmax,) * arity)
        yield t, distinct, count, table


def potts_couplings(compiled, params, context: dict, observed, rows: int = 1,
                    couplings_only: bool = False) -> PottsCouplings:
    """The model's couplings in Potts form, merged over parallel terms; NotPotts naming the
    first term whose tables are not ferromagnetic Potts ones. `context`: numpy arrays
    [rows, ...] of the groups that are not latent discrete."""
    graph = compiled.graph
    index = latent_index(graph, observed)
    n = index.total
    kmax = int(index.num_labels.max()) if n else 1
    unary = np.zeros((rows, n, kmax))
    keys, strengths = [np.zeros(0, np.int64)], [np.zeros((rows, 0))]
    for t, distinct, count, table in _template_tables(compiled, params, context, observed, rows, couplings_only):
        arity = table.ndim - 2
        single = count == 1
        if single.any():
            part = table[:, single][(slice(None), slice(None), slice(None)) + (0,) * (arity - 1)]
            np.add.at(unary.transpose(1, 0, 2), distinct[single, 0], part.transpose(1, 0, 2))
        double = count == 2
        if not double.any():
            continue
        first, second = distinct[double, 0], distinct[double, 1]
        strength, row_part, col_part = _potts_form(t.term, table[:, double], index.num_labels[first],
                                                   index.num_labels[second])
        np.add.at(unary.transpose(1, 0, 2), first, row_part.transpose(1, 0, 2))
        np.add.at(unary.transpose(1, 0, 2), second, col_part.transpose(1, 0, 2))
        keys.append(np.minimum(first, second) * max(n, 1) + np.maximum(first, second))
        strengths.append(strength)
    keys_all = np.concatenate(keys)
    unique, inverse = np.unique(keys_all, return_inverse=True)
    merged = np.zeros((rows, unique.size))
    np.add.at(merged.T, inverse, np.concatenate(strengths, axis=1).T)
    edges = np.stack([unique // max(n, 1), unique % max(n, 1)], axis=1).astype(np.int64)
    unary[:, np.arange(kmax)[None, :] >= index.num_labels[:, None]] = np.inf
    return PottsCouplings(edges, merged, unary, index.num_labels)


def _potts_form(term: str, tables: np.ndarray, first_k: np.ndarray, second_k: np.ndarray):
    """tables [R, m, K, K] -> (J [R, m], row part [R, m, K], column part [R, m, K]) with
    T(a, b) = row(a) + col(b) - J [a == b] on each edge's labels; NotPotts otherwise.

    Double centring removes the parts that depend on one endpoint: what is left of a
    Potts table is -J ([a == b] - 1/k)."""
    if (first_k != second_k).any():
        raise NotPotts(term, f"term '{term}' couples variables with different numbers of labels")
    if not np.isfinite(tables).all():
        raise NotPotts(term, f"term '{term}' gives some label pairs infinite energy (a hard constraint)")
    rows, m, kmax = tables.shape[:3]
    strength = np.zeros((rows, m))
    row_part, col_part = np.zeros((rows, m, kmax)), np.zeros((rows, m, kmax))
    for k in np.unique(first_k):
        members = first_k == k
        table = tables[:, members, :k, :k]
        if k < 2:
            row_part[:, members, :k] = table[..., 0]
            continue
        centred = table - table.mean(-1, keepdims=True) - table.mean(-2, keepdims=True) \
            + table.mean((-1, -2), keepdims=True)
        eye = np.eye(k)
        j = -np.einsum("...ii->...", centred) / (k - 1)      # trace of -J (I - 1/k) is -J (k - 1)
        scale = TOLERANCE * (1.0 + np.abs(table).max((-1, -2)))
        misfit = np.abs(centred + j[..., None, None] * (eye - 1.0 / k)).max((-1, -2))
        if (misfit > scale).any():
            raise NotPotts(term, f"the coupling tables of term '{term}' are not of Potts form "
                                 f"c - J [a == b] (off by up to {float(misfit.max()):.3g})"
                           if k > 2 else f"term '{term}' is not pairwise ferromagnetic")
        if (j < -scale).any():
            worst = float(j.min())
            raise NotPotts(term, f"term '{term}' has antiferromagnetic couplings (J = {worst:.3g} < 0 "
                                 "in T(a, b) = c - J [a == b])")
        j = np.maximum(j, 0.0)
        rest = table + j[..., None, None] * eye                # row(a) + col(b) + const
        strength[:, members] = j
        row_part[:, members, :k] = rest.mean(-1)
        col_part[:, members, :k] = rest.mean(-2) - rest.mean((-1, -2))[..., None]
    return strength, row_part, col_part


def plan_cluster_check(graph, groups, observed, continuous, params=None, requested: bool = False):
    """None when the plan may pick Swendsen-Wang for `groups` by itself (or, `requested`,
    may use the cluster method asked for), else (term or None, why not). `params`: numpy
    values (None: the declared initial values). Couplings that read observed values are
    checked when the run starts, with those values: a request passes here, the automatic
    choice does not."""
    from ebmlang.graph.structure import _cached, _graph_cache

    found = structural_obstacle(graph, groups, observed, continuous, data_free=False)
    if found is not None:
        return found
    data_dependent = structural_obstacle(graph, groups, observed, continuous)
    if data_dependent is not None:
        return None if requested else data_dependent
    sites = latent_index(graph, observed).total
    if sites > AUTO_CLUSTER_SITES and not requested:
        return None, (f"{sites:,} sites, more than the {AUTO_CLUSTER_SITES:,} up to which cluster moves are "
                      "chosen by themselves (method='swendsen_wang' asks for them)")
    pairs = latent_pairs(graph, observed).shape[0]
    if pairs > AUTO_CLUSTER_PAIRS and not requested:
        return None, (f"{pairs:,} coupled pairs, more than the {AUTO_CLUSTER_PAIRS:,} up to which cluster moves "
                      "are chosen by themselves (method='swendsen_wang' asks for them)")
    values = params if params is not None else _initial_params(graph)
    digest = hashlib.blake2b(digest_size=16)
    for name, value in sorted(values.items()):
        digest.update(name.encode() + np.ascontiguousarray(value, dtype=np.float64).tobytes())
    digest = digest.hexdigest()
    return _cached(_graph_cache, graph, ("potts couplings", tuple(observed), digest),
                   lambda: _tables_obstacle(graph, observed, values))


def numpy_compiled(graph):
    """The graph compiled once on the float64 numpy backend: the couplings are tabulated there
    (no jit to pay per run) unless a network or extern reads the latent variables."""
    from ebmlang.backends import get_backend
    from ebmlang.graph.structure import _cached, _graph_cache

    return _cached(_graph_cache, graph, "numpy float64 compiled",
                   lambda: get_backend("numpy", dtype="float64").compile(graph))


def _initial_params(graph) -> dict:
    from ebmlang.backends import get_backend

    return numpy_compiled(graph).init_params(get_backend("numpy").key(0))


def _tables_obstacle(graph, observed, params):
    compiled = numpy_compiled(graph)
    numpy_params = {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}
    try:
        couplings = potts_couplings(compiled, numpy_params, {}, observed, couplings_only=True)
    except NotPotts as reason:
        return reason.term, reason.reason
    if not (couplings.strength > 0).any():   # nothing for a cluster to hold together
        return None, "no two latent variables are coupled (every J is 0): Gibbs draws each exactly"
    return None


# --------------------------------------------------------------------------
# The moves


class ClusterStepper:
    """`step(key, state) -> state`: one Swendsen-Wang or Wolff update of the latent
    discrete groups (see the module doc); the couplings are tabulated once, with the
    model's parameters and the observed values of `state`, when the stepper is built."""

    def __init__(self, model, groups, method: str, temperature: float, state: dict):
        if method not in CLUSTER_METHODS:
            raise ValueError(f"unknown cluster method {method!r}")
        graph, backend = model.graph, model.backend
        self.model, self.method, self.temperature = model, method, float(temperature)
        observed = tuple(g for g in graph.variables if g not in groups)
        self.index = latent_index(graph, observed)
        found = structural_obstacle(graph, groups, observed, data_free=False)
        if found is not None:
            raise cluster_error(graph, method, *found)
        context = {g: backend.to_numpy(state[g]) for g in state if g not in self.index.groups}
        if all((v == v[:1]).all() for v in context.values()):   # observed values shared by all chains
            context = {g: v[:1] for g, v in context.items()}
        rows = max((v.shape[0] for v in context.values()), default=1)
        compiled, params = model.compiled, model.params
        latent = set(self.index.groups)
        if not any(isinstance(node, (Neural, Extern)) for t in graph.templates if set(t.groups) & latent
                   for node in walk(t.body)):
            compiled = numpy_compiled(graph)
            params = {k: np.asarray(backend.to_numpy(v), dtype=np.float64) for k, v in params.items()}
        try:
            self.couplings = potts_couplings(compiled, params, context, observed, rows)
        except NotPotts as reason:
            raise cluster_error(graph, method, reason.term, reason.reason) from None
        c = self.couplings
        self.bond = (-np.expm1(-c.strength / self.temperature)).astype(np.float32)   # [R, m]
        self._csr = None
        shifted = c.unary - np.where(np.isfinite(c.unary), c.unary, np.inf).min(-1, keepdims=True)
        self.energy = shifted / self.temperature                              # [R, n, K], 0 at each site's best
        self._scalar_bond, self._scalar_energy = self.bond, self.energy
        # No field, no forbidden label, one label count: every label of every cluster is equally likely.
        self.free = bool(np.all(self.energy == 0))
        self.values = {g: np.asarray(graph.variables[g].domain.values, dtype=np.float64) for g in self.index.groups}

    def _at_chain_temperatures(self) -> None:
        """Under replica exchange the params carry each chain's inverse temperature [B]
        (inference/temperature.py): bonds and cluster energies per chain, so one update
        serves every replica; otherwise the scalar tables of the constructor."""
        beta = chain_inverse_temperature(self.model.params)
        if beta is None:
            self.bond, self.energy = self._scalar_bond, self._scalar_energy
            return
        beta = np.asarray(self.model.backend.to_numpy(beta), dtype=np.float64) / self.temperature
        strength = self.couplings.strength                                   # [R, m]
        self.bond = (-np.expm1(-strength * beta[:, None])).astype(np.float32)  # [B, m]
        self.energy = self._scalar_energy * self.temperature * beta[:, None, None]

    def __call__(self, key, state: dict) -> dict:
        self._at_chain_temperatures()
        backend = self.model.backend
        # The numpy generator's seed from backend uniforms: JAX's randint gives other bits once
        # float64 is switched on anywhere in the process, its float32 uniforms do not.
        seed = np.asarray(backend.to_numpy(backend.uniform(key, (4,))), dtype=np.float64) * 2.0 ** 31
        rng = np.random.default_rng(np.random.SeedSequence([int(s) for s in seed]))
        labels = self.labels(state)
        components = self.clusters(rng, labels)
        move = self.swendsen_wang if self.method == "swendsen_wang" else self.wolff
        return self.with_labels(state, move(rng, labels, *components))

    def labels(self, state: dict) -> np.ndarray:
        """[B, n] labels of the latent groups from their values in `state`."""
        parts = []
        for g in self.index.groups:
            values = np.rint(self.model.backend.to_numpy(state[g]))
            parts.append(np.searchsorted(self.values[g], values.reshape(values.shape[0], -1)))
        labels = np.concatenate(parts, axis=1)
        return labels.astype(np.int8) if labels.size and self.energy.shape[-1] <= 127 else labels

    def with_labels(self, state: dict, labels: np.ndarray) -> dict:
        new = dict(state)
        for g in self.index.groups:
            start, size = self.index.offsets[g], self.index.sizes[g]
            values = self.values[g][labels[:, start:start + size]]
            new[g] = self.model.backend.asarray(values.reshape(state[g].shape))
        return new

    def clusters(self, rng, labels: np.ndarray) -> tuple[int, np.ndarray]:
        """(number of clusters, cluster of each site [B * n]): bonds on satisfied edges with
        p = 1 - exp(-J / T), components of all chains at once (one block-diagonal graph)."""
        chains, n = labels.shape
        first, second = self.couplings.edges.T
        columns, row_starts, ones = self._structure(chains, n)
        bonded = (labels[:, first] == labels[:, second]) & (rng.random((chains, first.size), np.float32) < self.bond)
        bonded = bonded.ravel()
        count = np.zeros(bonded.size + 1, row_starts.dtype)
        np.cumsum(bonded, out=count[1:])
        # The edges are sorted by their first site, chain by chain: the bonds are a CSR matrix as
        # they stand (float64 data and one index dtype, which scipy would otherwise convert to).
        graph = csr_matrix((ones[:int(count[-1])], columns[bonded], count[row_starts]), shape=(chains * n, chains * n))
        return connected_components(graph, directed=True, connection="weak")

    def _structure(self, chains: int, n: int):
        """Every chain's edges as CSR columns [B * m], each site's first edge [B * n + 1], and
        a buffer of ones."""
        if self._csr is None or self._csr[0] != chains:
            first, second = self.couplings.edges.T
            offset = np.arange(chains, dtype=np.int64)[:, None] * n
            rows = (offset + first).ravel()
            index = np.int32 if chains * max(n, first.size) < 2 ** 31 - 1 else np.int64
            self._csr = (chains, (offset + second).ravel().astype(index),
                         np.searchsorted(rows, np.arange(chains * n + 1)).astype(index), np.ones(rows.size))
        return self._csr[1:]

    def _site_energy(self, chains: int) -> np.ndarray:
        """[B, n, K] unary energies / T per chain."""
        return np.broadcast_to(self.energy, (chains,) + self.energy.shape[1:])

    def swendsen_wang(self, rng, labels, count: int, cluster: np.ndarray) -> np.ndarray:
        chains, n = labels.shape
        kmax = self.energy.shape[-1]
        if self.free:     # every cluster takes a uniform label
            return rng.integers(kmax, size=count)[cluster].reshape(chains, n)
        site = self._site_energy(chains).reshape(chains * n, kmax)
        energy = np.stack([np.bincount(cluster, weights=site[:, k], minlength=count) for k in range(kmax)], 1)
        gumbel = -np.log(-np.log(rng.random((count, kmax)) + 1e-300) + 1e-300)
        return np.argmax(gumbel - energy, axis=1)[cluster].reshape(chains, n)

    def wolff(self, rng, labels, count: int, cluster: np.ndarray) -> np.ndarray:
        chains, n = labels.shape
        rows = np.arange(chains)
        seed = rng.integers(n, size=chains)
        member = cluster.reshape(chains, n) == cluster.reshape(chains, n)[rows, seed][:, None]   # [B, n]
        old = labels[rows, seed].astype(np.int64)
        k = self.couplings.num_labels[seed]
        new = np.where(k > 1, (old + 1 + rng.integers(np.maximum(k - 1, 1))) % k, old)
        site = self._site_energy(chains)
        if self.free:
            accept = np.ones(chains, bool)
        else:
            change = site[rows, :, new] - site[rows, :, old]                              # [B, n]
            change = np.where(member, change, 0.0).sum(axis=1)
            accept = np.log(rng.random(chains) + 1e-300) < -change
        return np.where(member & accept[:, None], new[:, None], labels)


def cluster_error(graph, method: str, term: str | None, reason: str) -> EbmError:
    """The EbmError for a request of cluster moves on a model that does not take them."""
    span = graph.term_span(term) if term is not None else None
    return EbmError(f"method '{method}' needs pairwise ferromagnetic Potts or Ising couplings "
                    f"(T(a, b) = c - J [a == b], J >= 0) and no other factors between latent variables: {reason}",
                    span, source=graph.source,
                    hint="method='gibbs' samples any discrete model")
