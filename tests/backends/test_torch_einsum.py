"""The torch backend's einsum: two-operand contractions that are one matrix product run as
`matmul` (backends/torch_einsum.py); every other one is torch.einsum's. Checked against
torch.einsum itself, values and gradients, in float64."""
from __future__ import annotations

import pytest
import torch

from ebmlang.backends.torch_einsum import _matmul_plan, matmul_einsum

CASES = [
    ("...i,ik->...k", [(5, 3, 4), (4, 6)], True),
    ("ik,...k->...i", [(4, 6), (5, 6)], True),
    ("ab,bc->ac", [(2, 3), (3, 4)], True),
    ("...ij,jik->...k", [(7, 2, 3), (3, 2, 5)], True),
    ("...ij,jk->...ik", [(7, 2, 3), (3, 5)], True),
    ("...i,i->...", [(4, 3), (3,)], True),
    ("i,...i->...", [(3,), (4, 3)], True),
    ("ij,j->i", [(2, 3), (3,)], True),
    ("...ij,ki->...jk", [(2, 3, 4), (5, 3)], True),
    # Not one matmul in this order: left to torch.einsum.
    ("bi,bi->b", [(2, 3), (2, 3)], False),
    ("...i,...i->...", [(2, 3), (2, 3)], False),
    ("...ji,ik->...kj", [(2, 3, 4), (4, 5)], False),
    ("ii->i", [(3, 3)], False),
    ("...i,ik,...k->...", [(2, 3), (3, 4), (2, 4)], False),
]


@pytest.mark.parametrize("subscripts, shapes, as_matmul", CASES)
def test_matmul_path_gives_torch_einsum_values_and_gradients(subscripts, shapes, as_matmul):
    generator = torch.Generator().manual_seed(0)
    operands = [torch.randn(s, dtype=torch.float64, generator=generator, requires_grad=True) for s in shapes]
    planned = _matmul_plan(subscripts, tuple(o.dim() for o in operands)) if len(operands) == 2 else None
    assert (planned is not None) == as_matmul
    ours, theirs = matmul_einsum(subscripts, *operands), torch.einsum(subscripts, *operands)
    assert ours.shape == theirs.shape
    torch.testing.assert_close(ours, theirs)
    weights = torch.randn(theirs.shape, dtype=torch.float64, generator=generator)
    ours_grads = torch.autograd.grad((ours * weights).sum(), operands)
    theirs_grads = torch.autograd.grad((theirs * weights).sum(), operands)
    for a, b in zip(ours_grads, theirs_grads):
        torch.testing.assert_close(a, b)


MANY_OPERANDS = [
    ("...i,ij,...j->...", [(4, 100), (100, 100), (4, 100)]),
    ("i,ij,...j->...", [(30,), (30, 30), (5, 30)]),
    ("ab,bc,cd,d->a", [(5, 6), (6, 7), (7, 8), (8,)]),
    ("...i,ij,j->...", [(3, 2, 10), (10, 10), (10,)]),
]


@pytest.mark.parametrize("subscripts, shapes", MANY_OPERANDS)
def test_cached_contraction_path_gives_torch_einsum_bit_for_bit(subscripts, shapes):
    """Three or more operands: the opt_einsum path is computed once per equation and shapes,
    and the same path runs the same kernel, so values and gradients are identical (float32,
    where a different contraction order would show)."""
    generator = torch.Generator().manual_seed(0)
    operands = [torch.randn(shape, generator=generator).requires_grad_(True) for shape in shapes]
    for _ in range(2):  # the second call takes the cached path
        got, want = matmul_einsum(subscripts, *operands), torch.einsum(subscripts, *operands)
        assert torch.equal(got, want)
        got_grads = torch.autograd.grad(got.sum(), operands)
        want_grads = torch.autograd.grad(want.sum(), operands)
        assert all(torch.equal(g, w) for g, w in zip(got_grads, want_grads))
