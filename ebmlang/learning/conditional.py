"""Conditional negatives for maximum likelihood: `fit(..., known={"x": mask})`.

A fraction of the negative chains hold the entries under the mask at the batch's data
values and sample the rest, so the model learns p(rest | known) besides p(x). Inpainting
is that conditional: digits_conv.ebm's bottom halves came out class-consistent only
once training drew bottoms given real tops (examples/train_digits_conv.py). The held
entries are pinned as `sample_marginal(known=...)` pins them: each chain starts at the
data there, and the clamp after every SGLD step has low = high = the data value.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ebmlang.errors import EbmError, did_you_mean
from ebmlang.learning.weighted import backend_state


class KnownEntries:
    """The packed mask [D] of held entries and the fraction of chains that hold them."""

    def __init__(self, mask: np.ndarray, fraction: float, groups: tuple[str, ...]):
        self.mask = mask
        self.fraction = fraction
        self.groups = groups

    def held(self, backend, key, potential, positive: Mapping, chains: int):
        """(values, mask) [chains, D] for `replay_langevin`: chain c copies data row c mod B,
        and holds its entries with probability `fraction` (drawn per chain with `key`)."""
        rows = potential.pack(backend_state(backend, {g: positive[g] for g in potential.groups}))
        count = int(rows.shape[0])
        if count != chains:
            rows = backend.asarray(np.asarray(backend.to_numpy(rows))[np.arange(chains) % count])
        chosen = backend.uniform(key, (chains,)) < self.fraction
        return rows, chosen[:, None] & backend.asarray(self.mask[None], dtype="bool")

    def describe(self) -> str:
        return (f"; {100 * self.fraction:.0f}% of the chains hold the known entries of "
                f"{', '.join(self.groups)} ({int(self.mask.sum())} of {self.mask.size}) at the data and "
                "sample the rest (conditional negatives)")


def known_entries(objective, known: Mapping | None, fraction: float) -> KnownEntries | None:
    """Check `known` ({group: bool mask of its shape}) against the model and pack it over
    the negative chains' coordinates; None when no entries are held."""
    if not known:
        return None
    graph = objective.model.graph
    if not objective.use_buffer:
        raise EbmError("known= (conditional negatives) needs short-run Langevin from a replay buffer",
                       expected="a model whose variables are all continuous, fitted with persistent=True",
                       hint="fit(..., method='ml') on a continuous model")
    if not 0.0 < float(fraction) <= 1.0:
        raise EbmError(f"known_fraction must lie in (0, 1], got {fraction!r}",
                       hint="the share of negative chains that hold the known entries")
    from ebmlang.inference.potential import continuous_layout

    layout = continuous_layout(graph, objective.negative_sampler.continuous)
    masks = []
    for group in layout:
        mask = known.get(group.group)
        if mask is None:
            masks.append(np.zeros(group.size, dtype=bool))
            continue
        mask = np.asarray(mask)
        if mask.dtype != np.bool_ or mask.shape != tuple(group.shape):
            raise EbmError(f"known['{group.group}'] must be a boolean mask of shape {list(group.shape)}, "
                           f"got {mask.dtype} of shape {list(mask.shape)}",
                           hint="True where the entry is held at the data, False where it is sampled")
        masks.append(mask.reshape(-1))
    unknown = sorted(set(known) - {g.group for g in layout})
    if unknown:
        raise EbmError(f"known= names '{unknown[0]}', which is not a continuous variable of the model",
                       hint=did_you_mean(unknown[0], [g.group for g in layout]))
    return KnownEntries(np.concatenate(masks), float(fraction), tuple(known))
