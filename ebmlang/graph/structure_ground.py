"""Ground variables and which ground factors touch them: the base of every structure query.

The global ground numbering (`GroundNumbering`), each template's per-slot incidence
(`template_incidence`), the interaction edges between ground variables, and the
per-graph / per-template caches the other structure modules memoise into. Its own
piece because colouring, blankets and classification all read the same index arrays.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np

from ebmlang.graph import ir

# pairs of slots per ground factor are expanded in chunks of about this many pairs
_PAIR_CHUNK = 4_000_000

_graph_cache: "weakref.WeakKeyDictionary[ir.FactorGraph, dict]" = weakref.WeakKeyDictionary()
_template_cache: "weakref.WeakKeyDictionary[ir.FactorTemplate, dict]" = weakref.WeakKeyDictionary()


def _cached(cache: weakref.WeakKeyDictionary, owner, key, compute):
    """Memoise `compute()` on `owner` (a frozen graph or template, keyed by identity)."""
    entries = cache.setdefault(owner, {})
    if key not in entries:
        entries[key] = compute()
    return entries[key]


def sorted_unique(values: np.ndarray) -> np.ndarray:
    """np.unique by sorting: for large int arrays numpy 2's hash-based unique is several times slower."""
    values = np.sort(values)
    if values.size == 0:
        return values
    keep = np.empty(values.shape, dtype=bool)
    keep[0] = True
    np.not_equal(values[1:], values[:-1], out=keep[1:])
    return values[keep]


def _frozen(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


# --------------------------------------------------------------------------
# Ground variable numbering


@dataclass(frozen=True)
class GroundNumbering:
    """Ground variable ids: group k's flat index f has id offsets[k] + f."""

    groups: tuple[str, ...]
    offsets: np.ndarray  # [len(groups) + 1], offsets[-1] == total

    @property
    def total(self) -> int:
        return int(self.offsets[-1])

    def offset(self, group: str) -> int:
        return int(self.offsets[self.groups.index(group)])

    def to_global(self, group: str, flat_index) -> np.ndarray:
        """Global ids of flat indices of one group."""
        return self.offset(group) + np.asarray(flat_index, dtype=np.int64)

    def to_local(self, ids) -> tuple[np.ndarray, np.ndarray]:
        """(group position in `groups`, flat index) of each global id."""
        ids = np.asarray(ids, dtype=np.int64)
        if ids.size and (ids.min() < 0 or ids.max() >= self.total):
            raise ValueError(f"ground variable ids must lie in 0..{self.total - 1}")
        position = np.searchsorted(self.offsets, ids, side="right") - 1
        return position, ids - self.offsets[position]

    def split(self, ids) -> dict[str, np.ndarray]:
        """Global ids -> {group: sorted unique flat indices} (groups with none are left out)."""
        position, flat = self.to_local(sorted_unique(np.asarray(ids, dtype=np.int64).reshape(-1)))
        return {self.groups[k]: flat[position == k] for k in np.unique(position).tolist()}


def ground_numbering(g: ir.FactorGraph, groups: tuple[str, ...] | None = None) -> GroundNumbering:
    """The numbering over `groups` (default: every variable group, in declaration order)."""
    chosen = tuple(g.variables) if groups is None else tuple(groups)

    def compute() -> GroundNumbering:
        sizes = [g.variables[name].size for name in chosen]
        return GroundNumbering(chosen, _frozen(np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)])))

    return _cached(_graph_cache, g, ("numbering", chosen), compute)


# --------------------------------------------------------------------------
# Which ground variables each ground factor touches


@dataclass(frozen=True)
class SlotIncidence:
    """The variables one slot reads: `flat` [num_ground, n] flat indices into
    `group`, -1 where a ragged inner reduction is padded (masked out)."""

    group: str
    flat: np.ndarray


def template_incidence(t: ir.FactorTemplate) -> tuple[SlotIncidence, ...]:
    """Per slot of the template, the ground variables each ground factor reads."""
    return _cached(_template_cache, t, "incidence", lambda: tuple(_incidence(t)))


def _incidence(t: ir.FactorTemplate):
    for slot, valid in _slots_with_validity(t.body, 0, ()):
        index = slot.index
        shape = np.broadcast_shapes(index.shape, valid.shape) if valid is not None else index.shape
        shape = (t.num_ground,) + shape[1:]
        flat = np.broadcast_to(index, shape)
        if valid is not None:
            flat = np.where(np.broadcast_to(valid, shape), flat, -1)
        yield SlotIncidence(slot.group, _frozen(np.ascontiguousarray(flat).reshape(t.num_ground, -1)))


def _slots_with_validity(node: ir.Node, depth: int, masks: tuple[tuple[int, np.ndarray], ...]):
    """Yield (slot, validity mask broadcastable to its index or None) for every slot."""
    if isinstance(node, ir.Slot):
        valid = None
        for mask_depth, mask in masks:
            extra = depth - mask_depth + (1 if node.vector else 0)
            m = np.asarray(mask, dtype=bool).reshape(mask.shape + (1,) * extra)
            valid = m if valid is None else valid & m
        yield node, valid
        return
    if isinstance(node, ir.Reduce):
        inner = masks + (((depth + 1), node.mask),) if node.mask is not None else masks
        yield from _slots_with_validity(node.body, depth + 1, inner)
        return
    for child in node.children():
        yield from _slots_with_validity(child, depth, masks)


def _template_columns(t: ir.FactorTemplate, offsets: dict[str, int]) -> np.ndarray | None:
    """[num_ground, n] ids (group offset + flat index) of the variables of the groups in
    `offsets` that each ground factor reads; -1 at masked padding."""
    columns = []
    for inc in template_incidence(t):
        if inc.group not in offsets:
            continue
        # int64 ids: the flat indices may be int32 (ir.compact_index) and pair keys multiply them.
        columns.append(np.where(inc.flat >= 0, inc.flat.astype(np.int64) + offsets[inc.group], -1))
    if not columns:
        return None
    return np.concatenate(columns, axis=1)


def _pair_keys(columns: np.ndarray, total: int) -> list[np.ndarray]:
    """Keys lo * total + hi of the distinct id pairs sharing a row of `columns` (with repeats)."""
    num_rows, width = columns.shape
    if width < 2 or num_rows == 0:
        return []
    first, second = np.triu_indices(width, 1)
    rows_per_chunk = max(1, _PAIR_CHUNK // len(first))
    keys = []
    for start in range(0, num_rows, rows_per_chunk):
        block = columns[start:start + rows_per_chunk]
        a = block[:, first].reshape(-1)
        b = block[:, second].reshape(-1)
        keep = (a >= 0) & (b >= 0) & (a != b)
        a, b = a[keep], b[keep]
        chunk = np.minimum(a, b) * total + np.maximum(a, b)
        # wide factors repeat pairs a lot: compact them early to bound memory
        keys.append(sorted_unique(chunk) if len(first) > 1 else chunk)
    return keys


def _edges(g: ir.FactorGraph, offsets: dict[str, int], total: int) -> np.ndarray:
    """Unique pairs [m, 2] (lo < hi) of ids sharing a ground factor, among the groups in `offsets`."""
    def compute() -> np.ndarray:
        base = max(total, 1)
        keys = []
        for t in g.templates:
            columns = _template_columns(t, offsets)
            if columns is not None:
                keys.extend(_pair_keys(columns, base))
        keys = sorted_unique(np.concatenate(keys)) if keys else np.zeros(0, dtype=np.int64)
        return _frozen(np.stack([keys // base, keys % base], axis=1).astype(np.int64))

    return _cached(_graph_cache, g, ("edges", tuple(sorted(offsets.items())), total), compute)


def _offsets(numbering: GroundNumbering) -> dict[str, int]:
    return {name: int(numbering.offsets[k]) for k, name in enumerate(numbering.groups)}


def interaction_edges(g: ir.FactorGraph, latent_only: bool = True) -> np.ndarray:
    """Pairs of ground variables sharing a ground factor: [m, 2] global ids, lo < hi, unique.

    latent_only: only pairs of latent variables (observed ones are fixed data).
    Ids are in the global numbering (`ground_numbering(g)`), either way.
    """
    full = ground_numbering(g)
    offsets = _offsets(full)
    if latent_only:
        offsets = {n: o for n, o in offsets.items() if not g.variables[n].observed}
    return _edges(g, offsets, full.total)
