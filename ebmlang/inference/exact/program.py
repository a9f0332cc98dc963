"""`ForestProgram`: the level passes of one `ForestForm` on one backend.

The passes are pure functions of the energy tables, built once per forest shape (and
compiled once on JAX: `memo` keeps them across queries). Results come back per node of
the form (a variable, or a bag of a junction tree); `ForestForm.variable_labels` /
`variable_marginals` map them to variables.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable

import numpy as np

from ebmlang.inference.exact.junction import ForestForm
from ebmlang.inference.exact.passes import (
    decode_max,
    downward,
    draw,
    level_potentials,
    path_score,
    root_totals,
    upward,
)
from ebmlang.inference.exact.schedule import LevelSchedule, level_schedule
from ebmlang.inference.temperature import along_batch, chain_inverse_temperature


def _quietly(fn: Callable) -> Callable:
    """`fn` with numpy's warnings about -inf - -inf silenced: an infeasible model's messages
    turn NaN on purpose (its log Z is refused), as they do in torch without a warning."""
    def run(*args):
        with np.errstate(invalid="ignore"):
            return fn(*args)
    return run


def _given(unary, pairwise, constant=0.0):
    return unary, pairwise, constant


class ForestPasses:
    """The passes of one schedule as functions of their inputs: by default the tables
    (unary [B, n, K], pairwise [B or 1, E, K, K], constant), or whatever `prepare` turns into
    them -- e.g. (observations, params) through the model's tables, so that on JAX one
    compiled program runs from the observations to the answers."""

    def __init__(self, backend, schedule: LevelSchedule, beta: float, prepare: Callable = _given):
        self.backend = backend
        self.schedule = schedule
        self.beta = beta
        self.prepare = prepare
        compile_ = backend.jit if backend.name == "jax" else _quietly
        self.sum_product = compile_(self._sum_product)
        self.log_partition = compile_(self._log_partition)
        self.max_product = compile_(self._max_product)
        self._draws: dict[int, Callable] = {}
        self._compile = compile_

    def _potentials(self, inputs):
        unary, pairwise, constant = self.prepare(*inputs)
        return level_potentials(self.backend, self.schedule, unary, pairwise, self.beta), constant

    def _sum_product(self, *inputs):
        """(log sum exp(-beta E) without the constant [B], marginals per slot [D, B, W, K], constant)."""
        backend = self.backend
        potentials, constant = self._potentials(inputs)
        up, messages, _, offset = upward(backend, self.schedule, potentials)
        outside = downward(backend, self.schedule, potentials, up, messages)
        return root_totals(backend, self.schedule, up) + offset, backend.ops.softmax(up + outside, 3), constant

    def _log_partition(self, *inputs):
        """log sum exp(-beta E) per row [B] (the tables' constant left out): the upward pass only."""
        potentials, _ = self._potentials(inputs)
        up, _, _, offset = upward(self.backend, self.schedule, potentials)
        return root_totals(self.backend, self.schedule, up) + offset

    def _max_product(self, *inputs):
        """(max of -beta E without the constant [B], maximising labels per slot [D, B, W], constant)."""
        backend = self.backend
        potentials, constant = self._potentials(inputs)
        up, _, best, _ = upward(backend, self.schedule, potentials, use_max=True)
        labels = decode_max(backend, self.schedule, up, best)
        return path_score(backend, self.schedule, potentials, labels), labels, constant

    def draws(self, count: int) -> Callable:
        """`(key, *inputs) -> labels per slot [D, B, S, W]` for S = count."""
        if count not in self._draws:
            def sample(key, *inputs):
                potentials, _ = self._potentials(inputs)
                up, _, _, _ = upward(self.backend, self.schedule, potentials)
                return draw(self.backend, key, self.schedule, potentials, up, count)
            self._draws[count] = self._compile(sample)
        return self._draws[count]


class ForestProgram:
    """log Z, marginals, the minimum and exact draws of a batch of models on one forest.

    A form with `tables` (a forest straight from the model) runs from the observations:
    the tables are built inside the passes' program; otherwise from the form's arrays."""

    def __init__(self, backend, form: ForestForm, beta: float = 1.0, memo: Callable | None = None,
                 schedule: LevelSchedule | None = None, params=None):
        self.backend = backend
        self.form = form
        self.beta = float(beta)
        schedule = schedule or level_schedule(form.forest, form.edges)
        if form.tables is not None:
            tables, rows = form.tables, form.rows
            key = ("observed passes", id(tables), rows, self.beta)
            build = lambda: ForestPasses(backend, schedule, self.beta, from_observations(backend, tables, rows))  # noqa: E731
            self.inputs = (form.context, params)
        else:
            key = ("forest passes", id(schedule) if form.schedule is schedule else _fingerprint(schedule), self.beta)
            build = lambda: ForestPasses(backend, schedule, self.beta)  # noqa: E731
            self.inputs = (backend.asarray(form.unary), backend.asarray(form.pairwise),
                           backend.asarray(np.asarray(form.constant, dtype=np.float64)))
        self.passes = memo(key, build) if memo else build()
        self.slots = schedule.node_slots
        self._sums = None

    def _sum_product(self):
        if self._sums is None:
            self._sums = self.passes.sum_product(*self.inputs)
        return self._sums

    def _constant(self, constant) -> np.ndarray:
        return np.asarray(self.backend.to_numpy(constant), dtype=np.float64)

    def log_partition(self) -> np.ndarray:
        """log sum_x exp(-beta E(x)) per row [B] (the model's constant included)."""
        total, _, constant = self._sum_product()
        return self.backend.to_numpy(total).astype(np.float64) - self.beta * self._constant(constant)

    def node_marginals(self) -> np.ndarray:
        """[B, n_nodes, L] probabilities of every node's labels."""
        probabilities = self.backend.to_numpy(self._sum_product()[1])                   # [D, B, W, K]
        depth, rows, width, labels = probabilities.shape
        flat = probabilities.transpose(1, 0, 2, 3).reshape(rows, depth * width, labels)
        return flat[:, self.slots].astype(np.float64)

    def minimum(self) -> tuple[np.ndarray, np.ndarray]:
        """(node labels [B, n_nodes] of the minimum energy, that energy [B]); ties go to the lowest label."""
        top, labels, constant = self.passes.max_product(*self.inputs)
        top, labels = self.backend.to_numpy(top), self.backend.to_numpy(labels)        # [B], [D, B, W]
        per_node = labels.transpose(1, 0, 2).reshape(labels.shape[1], -1)[:, self.slots]
        energy = -top.astype(np.float64) / self.beta + self._constant(constant)
        return per_node.astype(np.int64), energy

    def sample(self, key, draws: int) -> np.ndarray:
        """Independent exact draws: node labels [B, S, n_nodes]."""
        labels = self.backend.to_numpy(self.passes.draws(int(draws))(key, *self.inputs))
        depth, rows, count, width = labels.shape
        flat = labels.transpose(1, 2, 0, 3).reshape(rows, count, depth * width)
        return flat[:, :, self.slots].astype(np.int64)


def from_observations(backend, tables, rows: int) -> Callable:
    """`(context, params) -> (unary [rows, n, K], pairwise, constant [rows])` from the model's
    tables; under replica exchange, where `params` carry an inverse temperature per row
    (inference/temperature.py), every row's tables are scaled by its own (an argument of
    the compiled passes, so a new ladder does not recompile them)."""
    ops = backend.ops

    def prepare(context, params):
        unary, pairwise, constant = tables.build(context, params, rows)
        unary, constant = ops.broadcast_to(unary, (rows,) + tuple(unary.shape[1:])), ops.broadcast_to(constant, (rows,))
        beta = chain_inverse_temperature(params)
        if beta is not None:
            unary = unary * along_batch(ops, beta, unary)
            pairwise = pairwise * ops.reshape(beta, (rows, 1, 1, 1))   # [1 or rows, E, K, K] -> [rows, ...]
            constant = constant * beta
        return unary, pairwise, constant

    return prepare


def _fingerprint(schedule: LevelSchedule) -> str:
    digest = hashlib.sha1()
    for array in (schedule.nodes, schedule.edge, schedule.child_first, schedule.parent_slot):
        digest.update(np.ascontiguousarray(array).tobytes())
        digest.update(str(array.shape).encode())
    return digest.hexdigest()
