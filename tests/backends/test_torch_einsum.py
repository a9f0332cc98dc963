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
