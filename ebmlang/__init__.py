"""ebmlang: a declarative modeling language for energy-based models.

    import ebmlang as ebm
    m = ebm.load("examples/ising.ebm", backend="jax")
    print(m.plan("sample"))
    samples = m.sample(chains=8, steps=500)

The package is the pipeline, one subpackage a stage, each importing only those before
it: errors.py (spans and located errors) -> language/ (source -> checked AST) -> graph/
(factor graph IR) -> backends/ (compiled energy functions) -> inference/ -> learning/
-> api/ (`Model`) -> distributed/ -> cli/ (the `ebm` command, the showcase).
"""
from ebmlang._moved import install_moved_module_aliases
from ebmlang.api.model import Model, load, loads
from ebmlang.backends import get_backend
from ebmlang.errors import EbmError
from ebmlang.inference.tempering import Tempering

__version__ = "0.1.0"
__all__ = ["EbmError", "Model", "Tempering", "get_backend", "load", "loads", "__version__"]

install_moved_module_aliases()
