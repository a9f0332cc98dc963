"""Dense groups compiled as quadratic forms (backends/evaluator/quadratic.py): the
couplings J (zero diagonal) and diagonal of a group's pairwise terms, and the table of
its per-unit terms, for sequential-scan Gibbs (inference/dense_scan.py).

`QuadraticForms` is a mixin of `CompiledGraph`; `quadratic(group)` builds and caches one
`CompiledQuadratic` per group, or says why the group's energy is not a quadratic form.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..evaluator import plan_block
from ..evaluator.quadratic import QuadraticPlan, quadratic_form
from .blocks import CompiledBlock
from .checks import located


@dataclass(frozen=True, eq=False)
class CompiledQuadratic:
    """One group's energy as sum_uw A[u, w] s_u s_w + sum_u e_u(s_u), compiled.

    couplings(params) -> (J, diag): J = A + A^T with a zero diagonal [N, N], diag = A's
    diagonal [N]. unary_table(state, params) -> e as [batch, K, N] (value-major), or
    None when the group has no per-unit terms."""

    plan: QuadraticPlan
    values: np.ndarray
    unary: CompiledBlock | None
    arrays: dict
    kernel: Callable

    def couplings(self, params: Mapping[str, Any]):
        return self.kernel(self.arrays, params)

    def unary_table(self, state: Mapping[str, Any], params: Mapping[str, Any]):
        return None if self.unary is None else self.unary.by_value(state, params)

    def may_be_infinite(self) -> bool:
        return self.unary is not None and self.unary.plan.may_be_infinite()


class QuadraticForms:
    """`quadratic(group)`: the group's CompiledQuadratic, or the reason it has none."""

    def quadratic(self, group: str) -> CompiledQuadratic | str:
        key = ("quadratic", group)
        if key not in self._memo:
            with located(self.graph):
                plan = quadratic_form(self.graph, group, self.contractions)
            self._memo[key] = plan if isinstance(plan, str) else self._compile_quadratic(plan)
        return self._memo[key]

    def _compile_quadratic(self, plan: QuadraticPlan) -> CompiledQuadratic:
        unary = None
        if plan.unary:
            with located(self.graph):
                block = plan_block(self.graph, plan.group, np.arange(plan.size), None, self.contractions,
                                   only=plan.unary)
            unary = self._compile_block(block)
        arrays = self.backend.convert_arrays(
            {**plan.arrays, **{k: v for part in plan.pairs for k, v in part.contraction.arrays.items()}}
        )
        if any(part.block is not None and part.diagonal for part in plan.pairs):
            arrays["quadratic_eye"] = self.backend.asarray(np.eye(plan.size))
        values = self.graph.variables[plan.group].domain.values
        return CompiledQuadratic(plan, values, unary, arrays, self.backend.jit(self._couplings_kernel(plan)))

    def _couplings_kernel(self, plan: QuadraticPlan) -> Callable:
        ops, evaluator, size = self.ops, self.evaluator, plan.size

        def couplings(arrays, params):
            ctx = self.context(arrays, {}, params)
            coupling, diagonal = ops.zeros((size * size,)), ops.zeros((size,))
            placed = None  # the parts that are blocks of A, summed as an [N, N] array
            diagonal_placed = any(part.block is not None and part.diagonal for part in plan.pairs)
            for part in plan.pairs:
                values = evaluator.contraction_pairs(part.contraction, part.slots, part.keep, ctx)
                if part.block is not None:
                    block = _placed(ops, values, part.block, size)
                    placed = block if placed is None else placed + block
                    continue
                coupling = ops.index_add(coupling, arrays[f"{part.key}_off"],
                                         ops.take(values, arrays[f"{part.key}_offtake"], -1))
                diagonal = ops.index_add(diagonal, arrays[f"{part.key}_diag"],
                                         ops.take(values, arrays[f"{part.key}_diagtake"], -1))
            coupling = ops.reshape(coupling, (size, size))
            if placed is not None and diagonal_placed:
                eye = arrays["quadratic_eye"]
                coupling = coupling + (placed + ops.swapaxes(placed, 0, 1)) * (1.0 - eye)
                diagonal = diagonal + ops.sum(placed * eye, -1)
            elif placed is not None:
                coupling = coupling + placed + ops.swapaxes(placed, 0, 1)
            return coupling, diagonal
        return couplings


def _placed(ops, values, block: tuple[int, int, int, int], size: int):
    """The block [rows, columns] (flattened in `values`) at its offsets in an [N, N] zero array."""
    top, rows, left, columns = block
    value = ops.reshape(values, (rows, columns))
    value = ops.concatenate([ops.zeros((top, columns)), value, ops.zeros((size - top - rows, columns))], 0)
    return ops.concatenate([ops.zeros((size, left)), value, ops.zeros((size, size - left - columns))], 1)
