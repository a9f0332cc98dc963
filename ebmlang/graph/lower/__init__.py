"""Lowering: a checked program becomes a factor graph (`ir.FactorGraph`).

Each energy term turns into one or more factor templates. The term's index set
becomes a numpy grid of index tuples (one row per ground factor); every
variable reference becomes a `Slot` whose flat indices are computed over that
grid in one vectorised numpy expression. Nothing here loops over ground factors.

Three ideas carry most of the weight:

* **Static values.** Index arithmetic, consts and `pi` evaluate while lowering:
  an expression lowers either to a numpy array (a compile-time value, shaped
  `[num_ground or 1, *inner]` like an IR leaf) or to an IR `Node`. Where the two
  meet, the array becomes a `Constant` or `Data` leaf.
* **Additive splitting.** A body that is a sum of parts (after distributing
  products and scalings over sums, and promoting a top-level `sum(...)` to extra
  ground indices) becomes one template per part, so `-J*s[i,j]*(s[i+1,j] +
  s[i,j+1])` is two pairwise templates and block Gibbs can colour the lattice.
* **Index sets as flat expansions.** A binding's range may depend on enclosing
  indices; rows are expanded with `np.repeat`, filtered by `where`, and, inside
  a reduction that stays in the factor, padded into an inner axis with a mask.

Composite models (`model C = A * B`) lower each expert and combine them with
`ebmlang.graph.compose`.

The package holds one piece per concern: composite.py (programs and composites),
static.py (compile-time evaluation), scope.py (scopes and the shared value type),
split.py (additive splitting), and the model lowerer model.py, which combines
declarations.py, index_sets.py, expressions.py and calls.py. `lower_model` is
defined in model.py, beside the class it runs, so composite.py calls it without
importing this package back.
"""
from __future__ import annotations

from ebmlang.budget import as_budget
from ebmlang.errors import EbmError
from ebmlang.graph import ir
from ebmlang.graph.lower.composite import _ProgramLowerer
from ebmlang.graph.lower.model import lower_model
from ebmlang.graph.lower.split import MAX_ADDITIVE_PARTS
from ebmlang.graph.lower.static import evaluate_constant
from ebmlang.language import ast
from ebmlang.language.checker import check_program
from ebmlang.language.parser import parse_source

__all__ = ["MAX_ADDITIVE_PARTS", "evaluate_constant", "lower_model", "lower_program", "lower_source"]


def lower_program(checked: ast.CheckedProgram, model: str | None = None, budget=None) -> ir.FactorGraph:
    """Lower one model of a checked program (its default model when `model` is None);
    `budget` (ebmlang.budget) bounds every structure lowering allocates."""
    return _ProgramLowerer(checked, as_budget(budget)).lower(checked.default if model is None else model, None)


def lower_source(text: str, file: str = "<string>", model: str | None = None, *,
                 allow_root=None, loader=None, budget=None) -> ir.FactorGraph:
    """Parse, check and lower source `text` (named `file` in errors): the front end and
    lowering in one call. `loader` reads imported files (path -> text; default: the file
    system, see ebmlang.language.loader); an error from `file` carries its source text.
    `budget` (a size such as "4GiB"; default ebmlang.budget.DEFAULT_BUDGET_BYTES) bounds
    what any one index set, variable or param may take, checked before it is allocated."""
    try:
        program = parse_source(text, file)
        checked = check_program(program, loader=loader, allow_root=allow_root)
        return lower_program(checked, model, budget)
    except EbmError as err:
        if err.source is None and err.span is not None and err.span.file == file:
            err.with_source(text)
        raise
