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
from ebmlang.inference.exact.passes import decode_max, downward, draw, level_potentials, root_totals, upward
from ebmlang.inference.exact.schedule import LevelSchedule, level_schedule


class ForestPasses:
    """The passes of one schedule as functions of (unary [B, n, K], pairwise [B or 1, E, K, K])."""

    def __init__(self, backend, schedule: LevelSchedule, beta: float):
        self.backend = backend
        self.schedule = schedule
        self.beta = beta
        compile_ = backend.jit if backend.name == "jax" else (lambda fn: fn)
        self.sum_product = compile_(self._sum_product)
        self.log_partition = compile_(self._log_partition)
        self.max_product = compile_(self._max_product)
        self._draws: dict[int, Callable] = {}
        self._compile = compile_

    def _sum_product(self, unary, pairwise):
        backend = self.backend
        potentials = level_potentials(backend, self.schedule, unary, pairwise, self.beta)
        up, messages, _ = upward(backend, self.schedule, potentials)
        outside = downward(backend, self.schedule, potentials, up, messages)
        return root_totals(backend, self.schedule, up), backend.ops.softmax(up + outside, 3)

    def _log_partition(self, unary, pairwise):
        """log sum exp(-beta E) per row [B] (the tables' constant left out): the upward pass only."""
        backend = self.backend
        potentials = level_potentials(backend, self.schedule, unary, pairwise, self.beta)
        up, _, _ = upward(backend, self.schedule, potentials)
        return root_totals(backend, self.schedule, up)

    def _max_product(self, unary, pairwise):
        backend = self.backend
        potentials = level_potentials(backend, self.schedule, unary, pairwise, self.beta)
        up, _, best = upward(backend, self.schedule, potentials, use_max=True)
        return root_totals(backend, self.schedule, up, use_max=True), decode_max(backend, self.schedule, up, best)

    def draws(self, count: int) -> Callable:
        """`(key, unary, pairwise) -> labels per slot [D, B, S, W]` for S = count."""
        if count not in self._draws:
            def sample(key, unary, pairwise):
                backend = self.backend
                potentials = level_potentials(backend, self.schedule, unary, pairwise, self.beta)
                up, _, _ = upward(backend, self.schedule, potentials)
                return draw(backend, key, self.schedule, potentials, up, count)
            self._draws[count] = self._compile(sample)
        return self._draws[count]


class ForestProgram:
    """log Z, marginals, the minimum and exact draws of a batch of models on one forest."""

    def __init__(self, backend, form: ForestForm, beta: float = 1.0, memo: Callable | None = None,
                 schedule: LevelSchedule | None = None):
        self.backend = backend
        self.form = form
        self.beta = float(beta)
        schedule = schedule or level_schedule(form.forest, form.edges)
        build = lambda: ForestPasses(backend, schedule, self.beta)  # noqa: E731
        key = ("forest passes", id(schedule) if form.schedule is schedule else _fingerprint(schedule), self.beta)
        self.passes = memo(key, build) if memo else build()
        self.slots = schedule.slot_of_node()
        self.unary = backend.asarray(form.unary)
        self.pairwise = backend.asarray(form.pairwise)
        self._sums = None

    def _sum_product(self):
        if self._sums is None:
            self._sums = self.passes.sum_product(self.unary, self.pairwise)
        return self._sums

    def log_partition(self) -> np.ndarray:
        """log sum_x exp(-beta E(x)) per row [B] (the model's constant included)."""
        total = self.backend.to_numpy(self._sum_product()[0])
        return total.astype(np.float64) - self.beta * np.asarray(self.form.constant, dtype=np.float64)

    def node_marginals(self) -> np.ndarray:
        """[B, n_nodes, L] probabilities of every node's labels."""
        probabilities = self.backend.to_numpy(self._sum_product()[1])                   # [D, B, W, K]
        depth, rows, width, labels = probabilities.shape
        flat = probabilities.transpose(1, 0, 2, 3).reshape(rows, depth * width, labels)
        return flat[:, self.slots].astype(np.float64)

    def minimum(self) -> tuple[np.ndarray, np.ndarray]:
        """(node labels [B, n_nodes] of the minimum energy, that energy [B]); ties go to the lowest label."""
        top, labels = self.passes.max_product(self.unary, self.pairwise)
        top, labels = self.backend.to_numpy(top), self.backend.to_numpy(labels)        # [B], [D, B, W]
        per_node = labels.transpose(1, 0, 2).reshape(labels.shape[1], -1)[:, self.slots]
        energy = -top.astype(np.float64) / self.beta + np.asarray(self.form.constant, dtype=np.float64)
        return per_node.astype(np.int64), energy

    def sample(self, key, draws: int) -> np.ndarray:
        """Independent exact draws: node labels [B, S, n_nodes]."""
        labels = self.backend.to_numpy(self.passes.draws(int(draws))(key, self.unary, self.pairwise))
        depth, rows, count, width = labels.shape
        flat = labels.transpose(1, 2, 0, 3).reshape(rows, count, depth * width)
        return flat[:, :, self.slots].astype(np.int64)


def _fingerprint(schedule: LevelSchedule) -> str:
    digest = hashlib.sha1()
    for array in (schedule.nodes, schedule.edge, schedule.child_first, schedule.parent_slot):
        digest.update(np.ascontiguousarray(array).tobytes())
        digest.update(str(array.shape).encode())
    return digest.hexdigest()
