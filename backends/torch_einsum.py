"""torch.einsum with a faster path for the contractions that are one matrix product."""
from __future__ import annotations

import functools
import math

import torch


def matmul_einsum(subscripts: str, *operands) -> torch.Tensor:
    """torch.einsum, except that a contraction of two operands that is one matrix
    product (an RBM's `...i,ik->...k`) runs as `matmul`: torch.einsum's permuted bmm
    and its backward cost a fifth more than matmul's on the same sizes."""
    if len(operands) > 2:
        return _cached_path_einsum(subscripts, operands)
    plan = _matmul_plan(subscripts, tuple(op.dim() for op in operands)) if len(operands) == 2 else None
    if plan is None:
        return torch.einsum(subscripts, *operands)
    swap, left_order, right_order, free_left, free_right = plan
    left, right = (operands[1], operands[0]) if swap else operands
    if left_order != tuple(range(len(left_order))):
        left = left.permute(*range(left.dim() - len(left_order)), *(left.dim() - len(left_order) + i
                                                                     for i in left_order))
    if right_order != tuple(range(len(right_order))):
        right = right.permute(*right_order)
    lead = tuple(left.shape[: left.dim() - len(left_order)])
    kept_left = tuple(left.shape[len(lead): len(lead) + free_left])
    kept_right = tuple(right.shape[len(right_order) - free_right:])
    summed = int(math.prod(right.shape[: len(right_order) - free_right]))
    product = torch.matmul(_shaped(left, lead + (math.prod(kept_left), summed)),
                           _shaped(right, (summed, math.prod(kept_right))))
    return _shaped(product, lead + kept_left + kept_right)


def _cached_path_einsum(subscripts: str, operands: tuple) -> torch.Tensor:
    """torch.einsum of three or more operands with opt_einsum's contraction path computed
    once per equation and shapes: torch.einsum searches it again on every call (half a
    millisecond for `...i,ij,...j->...`, more than the contraction on small batches).
    The same path goes to the same kernel (`_VF.einsum`), so the numbers are the same.
    Under torch.compile, or for tensor subclasses, plain torch.einsum."""
    einsum = getattr(torch._VF, "einsum", None)
    if (einsum is None or torch.compiler.is_compiling() or torch.overrides.has_torch_function(operands)
            or not torch.backends.opt_einsum.enabled or not torch.backends.opt_einsum.is_available()):
        return torch.einsum(subscripts, *operands)
    path = _contraction_path(subscripts, tuple(tuple(op.shape) for op in operands),
                             torch.backends.opt_einsum.strategy)
    return einsum(subscripts, operands, path=path)


@functools.lru_cache(maxsize=512)
def _contraction_path(subscripts: str, shapes: tuple, strategy: str) -> list[int]:
    """The flattened opt_einsum path torch.einsum would compute for these shapes."""
    import opt_einsum

    pairs = opt_einsum.contract_path(subscripts, *shapes, shapes=True, optimize=strategy)[0]
    return [index for pair in pairs for index in pair]


def _shaped(x: torch.Tensor, shape: tuple) -> torch.Tensor:
    return x if x.shape == shape else x.reshape(shape)


@functools.lru_cache(maxsize=512)
def _matmul_plan(subscripts: str, ranks: tuple[int, int]):
    """How `einsum(subscripts, a, b)` is one matmul, or None: (swap, left_order,
    right_order, free_left, free_right). The left operand is the one with the ellipsis
    (the batch), if either has one; it is permuted to [..., kept, summed] and the right to
    [summed, kept], which must be the output's order: '...' + left's kept + right's kept."""
    if "->" not in subscripts:
        return None
    inputs, output = subscripts.replace(" ", "").split("->")
    terms = inputs.split(",")
    if len(terms) != 2 or "." in terms[1] and "." in terms[0]:
        return None
    swap = "..." in terms[1]
    left, right = (terms[1], terms[0]) if swap else terms
    left_rank, right_rank = (ranks[1], ranks[0]) if swap else ranks
    left_letters = left.replace("...", "")
    batched = left.startswith("...") and output.startswith("...")
    if "..." in left and not batched or "..." in right or "..." in output and not batched:
        return None
    if len(set(left_letters)) != len(left_letters) or len(set(right)) != len(right):
        return None
    if right_rank != len(right) or left_rank < len(left_letters):
        return None
    out_letters = output.replace("...", "")
    summed = [c for c in left_letters if c in right and c not in out_letters]
    kept_left = [c for c in left_letters if c not in right]
    kept_right = [c for c in right if c not in left_letters]
    if not summed or out_letters != "".join(kept_left + kept_right):
        return None
    if any(c not in out_letters for c in kept_left + kept_right):
        return None
    left_order = tuple(left_letters.index(c) for c in kept_left + summed)
    right_order = tuple(right.index(c) for c in summed + kept_right)
    return swap, left_order, right_order, len(kept_left), len(kept_right)
