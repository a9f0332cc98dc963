"""The backend interface: array primitives, explicit-key randomness, `jit`, and `compile`.

A backend is one file: a subclass of `Backend` (arrays, keys, `ops`) and, when it can
differentiate, a subclass of `CompiledGraph` adding the two gradient methods. Everything
else -- walking the IR, local conditionals, parameter initialisation, input checks --
is shared here and in `backends/evaluator/`.

Conventions (docs/architecture.md): states are `{group: [batch, *shape]}` float arrays
(discrete groups hold their values), params a flat `{name: array}` dict, and every
random draw takes an explicit key.

The pieces: `interface` (the `Backend` class and the `ops` names), `keys` (integer keys
for backends without a native key type), `compiled` (`CompiledGraph`: energies and pure
kernels), `blocks` (Gibbs block compilation for local conditionals), `checks` (input
checks and error locations) and `params` (parameter shapes and initialisation).
"""
from __future__ import annotations

from .blocks import CompiledBlock, GibbsBlocks
from .checks import InputChecks, extern_span, located
from .compiled import CompiledGraph
from .interface import FLOAT_DTYPES, OPS_NAMES, Backend, check_dtype
from .keys import seed_key, split_seed_key
from .params import expected_param_shapes, init_params

__all__ = [
    "FLOAT_DTYPES", "OPS_NAMES", "Backend", "CompiledBlock", "CompiledGraph", "GibbsBlocks",
    "InputChecks", "check_dtype", "expected_param_shapes", "extern_span", "init_params",
    "located", "seed_key", "split_seed_key",
]
