"""ebmlang: a declarative modeling language for energy-based models.

    import ebmlang as ebm
    m = ebm.load("examples/ising.ebm", backend="jax")
    print(m.plan("sample"))
    samples = m.sample(chains=8, steps=500)
"""
from ebmlang.backends import get_backend
from ebmlang.errors import EbmError
from ebmlang.model import Model, load, loads

__version__ = "0.1.0"
__all__ = ["EbmError", "Model", "get_backend", "load", "loads", "__version__"]
