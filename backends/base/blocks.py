"""Gibbs blocks compiled for local conditionals: a block's plan, its backend arrays and
its jitted table of energies per value, and the reads and writes of its values.

`GibbsBlocks` is a mixin of `CompiledGraph` (compiled.py): it builds and caches a
`CompiledBlock` per (group, indices, packing), using the graph's evaluator and context.
"""
from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ebmlang.errors import EbmError, did_you_mean
from ebmlang.graph.ir import compact_index

from ..evaluator import BlockPlan, linear_form, plan_block, signature
from ..layout import read_through, write_through
from .checks import located
from .interface import Backend


def _digest(indices: np.ndarray) -> tuple:
    """A cache key for an index array: its length and a BLAKE2b digest of its int64 bytes
    (the bytes themselves, kept as keys, were 270 MB for the blocks of a 4096 x 4096 lattice)."""
    indices = np.asarray(indices)
    return len(indices), hashlib.blake2b(indices.astype(np.int64, copy=False).tobytes(), digest_size=32).digest()


@dataclass(frozen=True, eq=False)
class CompiledBlock:
    """One Gibbs block (a group's variables at flat indices) compiled for local updates:
    its conditional table and the reads and writes of its values in a state array.

    The methods take the sampler's own, already checked, backend arrays (no input checks),
    so a sweep can call them inside `jit`. A block with a strided layout (a checkerboard
    colour) reads and writes through slices and selects, the whole group through a
    reshape; any other through a gather and a scatter.
    """

    plan: BlockPlan
    arrays: dict
    kernel: Callable
    backend: "Backend"
    field_kernel: Callable | None = None
    gap_kernel: Callable | None = None

    @property
    def has_field(self) -> bool:
        """Whether `field` is available: the block's energy is linear in its values, finite,
        and holds a contraction (a dense coupling), where an eager backend pays for every
        elementwise op on the [batch, K, n] table. (Lattice blocks keep the table: under
        jax.jit the smaller output ran the 64x64 Ising sweep slower, see
        `GibbsBlocks._conditional_kernel`.)"""
        return self.field_kernel is not None

    def field(self, state: Mapping[str, Any], params: Mapping[str, Any], packed=None) -> Any:
        """The local field f [batch, n] with E(x_i = value) = value * f_i + (terms without
        x_i): `by_value` is `values[:, None] * f[:, None, :]` (only when `has_field`)."""
        return self.field_kernel(self.arrays, state, params, packed or {})

    def gap(self, state: Mapping[str, Any], params: Mapping[str, Any], packed=None) -> Any:
        """E(x_i = first value) - E(x_i = second value) [batch, n] of a two-valued block: its
        field times the values' difference where it has one (the factor joins the field's
        signs and scalars, so it costs no product of its own; no table), else the difference
        of the table's two rows (where +inf - +inf is NaN, which samplers read as stuck)."""
        if self.gap_kernel is not None:
            return self.gap_kernel(self.arrays, state, params, packed or {})
        table = self.by_value(state, params, packed)
        return table[:, 0] - table[:, 1]

    @property
    def group(self) -> str:
        return self.plan.group

    @property
    def whole_group(self) -> bool:
        return self.plan.layout is None and "indices" not in self.arrays

    def conditional(self, state: Mapping[str, Any], params: Mapping[str, Any], packed=None) -> Any:
        """Energy of each value of each block variable given the rest: [batch, n, K].
        packed: class arrays of the groups the block was planned packed (`gibbs_block`)."""
        return self.backend.ops.swapaxes(self.by_value(state, params, packed), -1, -2)

    def by_value(self, state: Mapping[str, Any], params: Mapping[str, Any], packed=None) -> Any:
        """The same energies value-major, [batch, K, n] (each value's row contiguous)."""
        return self.kernel(self.arrays, state, params, packed or {})

    def current(self, values: Any) -> Any:
        """The block's entries of a group array [batch, *shape]: [batch, n]."""
        ops, batch = self.backend.ops, values.shape[0]
        if self.plan.layout is not None:
            return read_through(ops, self.plan.layout, self.arrays, values, (batch,))
        flat = ops.reshape(values, (batch, -1))
        return flat if self.whole_group else ops.take(flat, self.arrays["indices"], 1)

    def replace(self, values: Any, new: Any) -> Any:
        """A copy of the group array `values` with the block's entries set to `new` [batch, n]."""
        ops = self.backend.ops
        if self.plan.layout is not None:
            return write_through(ops, self.plan.layout, self.arrays, values, new)
        if self.whole_group:
            return ops.reshape(ops.as_float(new), tuple(values.shape))
        return self.backend.set_flat(values, self.plan.flat_indices, new)


class GibbsBlocks:
    """Compilation of Gibbs blocks: `gibbs_block` and `local_conditional`'s block cache."""

    def gibbs_block(self, group: str, flat_indices: Any, packing: Mapping | None = None) -> CompiledBlock:
        """The compiled block `group[flat_indices]` (checked and cached): build it outside
        any `jit` trace, then call its methods inside. packing: {group: PackedGroup} of
        groups a sampler carries packed (backends/layout.py)."""
        return self._block(group, flat_indices, packing)

    def _block(self, group: str, flat_indices: Any, packing: Mapping | None = None) -> CompiledBlock:
        indices = np.asarray(self.backend.to_numpy(flat_indices))
        packing = dict(packing or {})
        packed_key = tuple(sorted(
            (g, tuple(_digest(layout.flat_indices) for layout in p.layouts)) for g, p in packing.items()
        ))
        cache_key = (group, _digest(indices), packed_key)
        if cache_key not in self._blocks:
            with located(self.graph):
                indices = self._check_block(group, indices)
                plan = plan_block(self.graph, group, indices, packing, self.contractions)
            self._blocks[cache_key] = self._compile_block(plan)
        return self._blocks[cache_key]

    def _compile_block(self, plan: BlockPlan) -> CompiledBlock:
        """A block plan's backend arrays and jitted conditional kernel."""
        indices, group = plan.flat_indices, plan.group
        arrays = dict(self.backend.convert_arrays(
            {k: v for t in plan.templates for k, v in t.arrays.items()}
        ))
        arrays.update(self.backend.convert_arrays(
            {f"target{i}": target.astype(np.int64)
             for i, target in enumerate(plan.targets) if target is not None}
        ))
        arrays["values"] = self.backend.asarray(plan.values)
        arrays.update(self.backend.convert_arrays({k: v for c in plan.fields for k, v in c.arrays.items()}))
        if plan.layout is not None:
            arrays.update(self.backend.convert_arrays(plan.layout.arrays()))
        whole = np.array_equal(indices, np.arange(self.graph.variables[group].size))
        # A layout block reads its values through the layout: indices only for contracted fields.
        if not whole and (plan.layout is None or plan.fields):
            arrays.update(self.backend.convert_arrays({"indices": indices}))
        conditional, scaled_field = self._conditional_kernel(plan)
        if not (plan.fields and not plan.may_be_infinite() and all(
                linear_form(t) is not None and target is None for t, target in zip(plan.templates, plan.targets))):
            return CompiledBlock(plan, arrays, self.backend.jit(conditional), self.backend)
        gap = None
        if len(plan.values) == 2:  # E(v0) - E(v1) = (v0 - v1) * field, the factor folded into the field's signs
            low, high = (float(v) for v in plan.values)
            gap = self.backend.jit(functools.partial(scaled_field, scale=low - high))
        return CompiledBlock(plan, arrays, self.backend.jit(conditional), self.backend,
                             self.backend.jit(functools.partial(scaled_field, scale=1.0)), gap)

    def _conditional_kernel(self, plan: BlockPlan) -> tuple[Callable, Callable]:
        """[batch, K, n] energies of a block's values, and the local field of the templates
        linear in the value (`linear_form`): those are summed per variable first -- one
        local field per group of equal scalar factors -- and spread over the values once
        at the end.

        (A binary block could return only E(v0) - E(v1), one op fewer for eager torch;
        under jax.jit that smaller output let XLA fuse the neighbour rolls into one
        loop and ran the 64x64 Ising sweep 35% slower, so every block returns the table.)"""
        ops, evaluator = self.ops, self.evaluator
        size, num_values = len(plan.flat_indices), len(plan.values)
        forms = [linear_form(t) if target is None else None for t, target in zip(plan.templates, plan.targets)]
        scalar_groups: dict[tuple, list[int]] = {}
        for i, form in enumerate(forms):
            if form is not None:
                signatures = [signature(s, plan.templates[i]) for s in form.scalars]
                # Scalars without a comparable signature keep their template to itself.
                key = (i,) if None in signatures else (form.negate,) + tuple(sorted(map(repr, signatures)))
                scalar_groups.setdefault(key, []).append(i)

        def contracted_field(arrays, state, params, scale=1.0):
            # Fields are linear in the block's values: no value axis, whole group, then the block.
            ctx = self.context(arrays, state, params)
            field = None
            for contraction in plan.fields:
                part = evaluator.contraction_field(contraction, plan.group, ctx, scale)
                field = part if field is None else field + part
            if "indices" in arrays:
                field = ops.take(field, arrays["indices"], -1)
            return ops.reshape(field, (field.shape[0], 1, field.shape[-1]))

        def linear_field(ctx, arrays, state, params, scale=1.0):
            """The field times `scale` (a number), which joins each part's sign and scalars
            so that no full-size product is spent on it."""
            field = None
            for members in scalar_groups.values():
                summed, ones = None, 0
                for i in members:
                    coefficient = evaluator.linear_coefficient(plan.templates[i], forms[i], ctx)
                    if coefficient is None:  # 1 on every row
                        ones += 1
                    else:
                        summed = coefficient if summed is None else summed + coefficient
                if ones:
                    summed = float(ones) if summed is None else summed + float(ones)
                first = forms[members[0]]
                product = evaluator.scalar_product(first.scalars, plan.templates[members[0]], ctx)
                # The sign and `scale` join the (0-d) scalars, not the per-variable sum.
                factor = -scale if first.negate else scale
                group_scale = (None if factor == 1.0 else factor) if product is None else (
                    product if factor == 1.0 else product * factor)
                if group_scale is not None:
                    summed = group_scale if isinstance(summed, float) and summed == 1.0 else summed * group_scale
                field = summed if field is None else field + summed
            if plan.fields:
                contracted = contracted_field(arrays, state, params, scale)
                field = contracted if field is None else field + contracted
            return field

        def scaled_field(arrays, state, params, packed=None, *, scale: float):
            ctx = self.context(arrays, state, params, (num_values,), arrays["values"], packed)
            field = ops.broadcast_to(linear_field(ctx, arrays, state, params, scale), (ctx.prefix[0], 1, size))
            return ops.reshape(field, (ctx.prefix[0], size))

        def conditional(arrays, state, params, packed=None):
            ctx = self.context(arrays, state, params, (num_values,), arrays["values"], packed)
            table = None
            field = linear_field(ctx, arrays, state, params)
            if field is not None:
                table = ops.reshape(arrays["values"], (num_values, 1)) * field
            for i, (template, target) in enumerate(zip(plan.templates, plan.targets)):
                if forms[i] is not None:
                    continue
                rows = evaluator.template_value(template, ctx)
                if target is None:
                    table = rows if table is None else table + rows
                else:  # several rows per variable: scatter-add them (into a full table:
                    # a field of numbers alone is only [K, 1])
                    full = ctx.prefix + (size,)
                    into = ops.zeros(full) if table is None else ops.broadcast_to(table, full)
                    table = ops.index_add(into, arrays[f"target{i}"], rows)
            table = table if table is not None else ops.zeros(ctx.prefix + (size,))
            return ops.broadcast_to(table, ctx.prefix + (size,))
        return conditional, scaled_field

    def _check_block(self, group: str, indices: np.ndarray) -> np.ndarray:
        variables = self.graph.variables.get(group)
        if variables is None:
            raise EbmError(
                f"no variable group '{group}' in model '{self.graph.name}'",
                hint=did_you_mean(group, self.graph.variables),
            )
        if not variables.domain.is_discrete:
            raise EbmError(
                f"local conditionals need a discrete group; '{group}' is {variables.domain}",
                variables.span,
                hint="update continuous groups with energy_and_grad_state (Langevin, HMC)",
            )
        if indices.size == 0:
            raise EbmError(f"empty block of '{group}'")
        if indices.ndim != 1 or not np.issubdtype(indices.dtype, np.integer):
            raise EbmError(f"block indices of '{group}' must be a 1-D integer array")
        if indices.min() < 0 or indices.max() >= variables.size:
            raise EbmError(
                f"block indices of '{group}' must lie in 0..{variables.size - 1}", variables.span
            )
        # Colour classes arrive sorted: a linear check; others are sorted first (np.unique's
        # hashing took a quarter of a second per half-million-unit block).
        ascending = indices if np.all(indices[1:] > indices[:-1]) else np.sort(indices)
        if np.any(ascending[1:] == ascending[:-1]):
            raise EbmError(f"block indices of '{group}' repeat a variable", variables.span)
        return compact_index(indices)
