"""The user's face in Python: `Model` (load, sample, argmin, fit, compose, save),
its energy for the user's own training loop (`to_torch`, `to_jax`: export.py), file I/O
for arrays (io.py) and plots (plot.py).

    import ebmlang as ebm
    m = ebm.load("examples/ising.ebm", backend="jax")

Builds on every stage before it: language, graph, backends, inference, learning.
"""
from ebmlang.api.model import Model, load, loads

__all__ = ["Model", "load", "loads"]
