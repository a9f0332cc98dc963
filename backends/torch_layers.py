"""Convolution, pooling and the largest singular value on torch: the ops a network
written in the language needs (evaluator/layers.py), channels-first, PyTorch's layouts."""
from __future__ import annotations

import torch
import torch.nn.functional as F

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_AVG_POOL = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}
_MAX_POOL = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}


class TorchLayerOps:
    """Mixed into TorchOps."""

    @staticmethod
    def conv(x, weight, bias, stride: int, padding: int):
        return _CONV[x.dim() - 2](x, weight, bias, stride=stride, padding=padding)

    @staticmethod
    def avg_pool(x, kernel: int, stride: int):
        return _AVG_POOL[x.dim() - 2](x, kernel, stride)

    @staticmethod
    def max_pool(x, kernel: int, stride: int):
        return _MAX_POOL[x.dim() - 2](x, kernel, stride)

    @staticmethod
    def largest_singular_value(matrix):
        return torch.linalg.matrix_norm(matrix, ord=2)
