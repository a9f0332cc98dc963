"""Exact inference on the discrete part of a model whose treewidth is small: log Z,
marginals, the minimum and independent joint draws, batched over observations."""
