"""Bounded reals on R^D: an unconstraining transform with its log-Jacobian, and reflection.

For `real in [a, b]` a sampler runs on z in R with x = a + (b - a) * sigmoid(z). The
density of z is p(x(z)) |dx/dz|, so at temperature T the energy in z is

    E_z(z) = E(x(z)) - T * log|dx/dz|,   log|dx/dz| = log(b - a) + log s + log(1 - s)

(s = sigmoid(z)). Coordinates bounded on one side use x = a + exp(z) or x = b - exp(z)
(log|dx/dz| = z); unbounded ones are left alone. All three kinds mix freely in one
position, chosen per coordinate with `where`, and every gradient is in closed form,
so the transform needs no autodiff and runs on any backend.

`reflect` instead folds a point back into a finite box; a reflected Gaussian random
walk is still a symmetric proposal, so random-walk MH stays exact with it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ebmlang.errors import EbmError
from ebmlang.inference.continuous import Array, ArrayBackend, Potential

# `unconstrain` keeps points this far (relative to the width) inside a two-sided box,
# so that points on the boundary map to large finite z rather than +-inf (the margin
# is representable next to 1.0 in float32).
BOUNDARY_MARGIN = 1e-7
# Smallest distance to a one-sided bound before taking its log.
TINY = 1e-30


def check_bounds(low: Any, high: Any, *, finite: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Bounds as float numpy arrays, or an `EbmError` if some low >= high (or is NaN,
    or, with `finite`, infinite)."""
    low_array, high_array = np.asarray(low, dtype=float), np.asarray(high, dtype=float)
    if np.any(np.isnan(low_array)) or np.any(np.isnan(high_array)) or np.any(low_array >= high_array):
        raise EbmError(
            f"the interval [{low}, {high}] is empty",
            expected="bounds with low < high",
            hint="write a bounded real as `real in [low, high]` with low < high",
        )
    if finite and not (np.all(np.isfinite(low_array)) and np.all(np.isfinite(high_array))):
        raise EbmError(
            f"reflection needs finite bounds, got [{low}, {high}]",
            expected="finite low and high",
            hint="sample a half-bounded real through `bounded_transform` instead",
        )
    return low_array, high_array


def softplus(ops: Any, x: Array) -> Array:
    """log(1 + exp(x)) without overflow."""
    return ops.maximum(x, ops.zeros_like(x)) + ops.log1p(ops.exp(-ops.abs(x)))


def sigmoid(ops: Any, x: Array) -> Array:
    """1 / (1 + exp(-x)) without overflow: exp(-softplus(-x)) only ever exponentiates <= 0."""
    return ops.exp(-softplus(ops, -x))


@dataclass(frozen=True, eq=False)
class BoundedTransform:
    """Per-coordinate map between z in R^D and x in a box (bounds may be infinite).

    Build with `bounded_transform(bk, low, high)`. Arrays broadcast against positions
    [chains, D]; the masks select each coordinate's kind.
    """

    ops: Any
    low: Array
    high: Array
    width: Array
    two_sided: Array
    lower_only: Array
    upper_only: Array

    def _one_sided_exp(self, z: Array) -> Array:
        # exp only where it is used, so large z elsewhere cannot overflow into a NaN.
        one_sided = self.lower_only | self.upper_only
        return self.ops.exp(self.ops.where(one_sided, z, self.ops.zeros_like(z)))

    def constrain(self, z: Array) -> Array:
        """x from unconstrained z."""
        ops = self.ops
        grown = self._one_sided_exp(z)
        x = ops.where(self.two_sided, self.low + self.width * sigmoid(ops, z), z)
        x = ops.where(self.lower_only, self.low + grown, x)
        return ops.where(self.upper_only, self.high - grown, x)

    def unconstrain(self, x: Array) -> Array:
        """z from x; points on (or outside) a bound map to a large finite z."""
        ops = self.ops
        fraction = ops.clip((x - self.low) / self.width, BOUNDARY_MARGIN, 1.0 - BOUNDARY_MARGIN)
        logit = ops.log(fraction) - ops.log1p(-fraction)
        above_low = ops.log(ops.maximum(x - self.low, ops.full_like(x, TINY)))
        below_high = ops.log(ops.maximum(self.high - x, ops.full_like(x, TINY)))
        z = ops.where(self.two_sided, logit, x)
        z = ops.where(self.lower_only, above_low, z)
        return ops.where(self.upper_only, below_high, z)

    def log_det_jacobian_terms(self, z: Array) -> Array:
        """log|dx/dz| per coordinate, same shape as z."""
        ops = self.ops
        two_sided = ops.log(self.width) - softplus(ops, -z) - softplus(ops, z)
        terms = ops.where(self.two_sided, two_sided, ops.zeros_like(z))
        return ops.where(self.lower_only | self.upper_only, z, terms)

    def log_det_jacobian(self, z: Array) -> Array:
        """log|det dx/dz| summed over the last axis: [chains] for z [chains, D]."""
        return self.ops.sum(self.log_det_jacobian_terms(z), axis=-1)

    def jacobian_diagonal(self, z: Array) -> Array:
        """dx/dz per coordinate (the Jacobian is diagonal)."""
        ops = self.ops
        s = sigmoid(ops, z)
        grown = self._one_sided_exp(z)
        slope = ops.where(self.two_sided, self.width * s * (1.0 - s), ops.ones_like(z))
        slope = ops.where(self.lower_only, grown, slope)
        return ops.where(self.upper_only, -grown, slope)

    def grad_log_det_jacobian(self, z: Array) -> Array:
        """d/dz of log|dx/dz| per coordinate: 1 - 2 sigmoid(z), 1 one-sided, 0 unbounded."""
        ops = self.ops
        grad = ops.where(self.two_sided, 1.0 - 2.0 * sigmoid(ops, z), ops.zeros_like(z))
        return ops.where(self.lower_only | self.upper_only, ops.ones_like(z), grad)


def bounded_transform(bk: ArrayBackend, low: Any, high: Any) -> BoundedTransform:
    """The transform for a box [low, high] (numbers or per-coordinate arrays [D];
    -inf / +inf mark an open side)."""
    low_array, high_array = np.broadcast_arrays(*check_bounds(low, high))
    has_low, has_high = np.isfinite(low_array), np.isfinite(high_array)
    two_sided = has_low & has_high
    # Where a bound is missing its value never reaches the result, but it still flows
    # through the unselected branches of `where`: finite stand-ins keep those NaN-free.
    safe_low = np.where(has_low, low_array, 0.0)
    safe_high = np.where(has_high, high_array, 1.0)
    width = np.where(two_sided, safe_high - safe_low, 1.0)

    def mask(flags: np.ndarray) -> Array:
        return bk.asarray(flags.astype(float)) > 0.5

    return BoundedTransform(
        ops=bk.ops,
        low=bk.asarray(safe_low),
        high=bk.asarray(safe_high),
        width=bk.asarray(width),
        two_sided=mask(two_sided),
        lower_only=mask(has_low & ~has_high),
        upper_only=mask(has_high & ~has_low),
    )


class UnconstrainedPotential:
    """`potential` seen through `transform`: E_z(z) = E(x(z)) - T log|dx/dz|.

    `temperature` must be the temperature of the kernel that samples it: the Jacobian
    is a density factor, so at temperature T it enters the energy multiplied by T.
    """

    def __init__(self, potential: Potential, transform: BoundedTransform, temperature: float = 1.0):
        self.potential = potential
        self.transform = transform
        self.temperature = float(temperature)

    def energy(self, z: Array) -> Array:
        x = self.transform.constrain(z)
        return self.potential.energy(x) - self.temperature * self.transform.log_det_jacobian(z)

    def energy_and_grad(self, z: Array) -> tuple[Array, Array]:
        x = self.transform.constrain(z)
        energy, grad = self.potential.energy_and_grad(x)
        energy = energy - self.temperature * self.transform.log_det_jacobian(z)
        grad_log_jacobian = self.transform.grad_log_det_jacobian(z)
        return energy, grad * self.transform.jacobian_diagonal(z) - self.temperature * grad_log_jacobian


def reflect(ops: Any, x: Array, low: Array, high: Array, max_folds: int = 8) -> Array:
    """Fold x back into [low, high] by mirroring at the walls (finite bounds).

    Each fold undoes one wall crossing, so the result is the exact reflection for
    points up to about `max_folds` box widths outside; anything farther (a proposal
    many widths wide, which random-walk MH adapts away from) is clipped to the wall.
    """
    for _ in range(max_folds):
        x = low + ops.abs(x - low)
        x = high - ops.abs(high - x)
    return ops.minimum(ops.maximum(x, low + ops.zeros_like(x)), high + ops.zeros_like(x))
