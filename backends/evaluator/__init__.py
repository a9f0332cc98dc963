"""The generic IR evaluator: one walk over a template's node tree, parameterised by a backend's `ops`.

Two halves:

* **Plans** (numpy, built once at compile time). `plan_template` gives every leaf of a
  template an array key and decides how each variable reference is read: a plain gather,
  or -- when the index array is the group's own grid, a cyclic shift of it or a box
  inside it -- a reshape, `roll` or slice, which is cheaper than a gather on a lattice.
  `plan_block` cuts the templates down to the ground factors touching one Gibbs block
  and marks where each block variable sits, for local conditionals.
* **Evaluation** (any backend). `Evaluator` has one method per IR node kind, found by
  name (`eval_Slot`, `eval_Reduce`, ...); a node kind without one goes to
  `unsupported`. A backend is only its `ops` namespace and array conversion.

Shapes follow ebmlang/graph/ir.py: a node evaluates to `[*prefix, num_rows, *inner]`; leaves
without a prefix (params, data) broadcast against it from the right.

The pieces: `plans` (the plan records), `template_plan` (planning one template's reads
and checking its nodes), `totals` (invariant factors and merged energy totals),
`conditionals` (Gibbs block plans and the linear forms of local fields), `vocabulary`
(activations and reductions), `context` (what an evaluation reads), `dispatch` (the
`Evaluator`: entry points, dispatch by node kind, reads of a leaf's source) and the
node handlers `leaves`, `arithmetic` and `calls`.
"""
from __future__ import annotations

from .conditionals import LinearForm, linear_form, plan_block
from .context import EvalContext
from .contraction import ContractionFactor, ContractionPlan, plan_contraction, plan_contractions
from .dispatch import Evaluator
from .plans import Access, BlockPlan, ScaledSum, TemplatePlan
from .template_plan import LayoutRows, NoLayoutRead, classify_index, plan_graph, plan_template
from .totals import TotalGroup, group_totals, is_invariant, scaled_sum, signature
from .vocabulary import ACTIVATIONS, REDUCE_OPS

__all__ = [
    "ACTIVATIONS", "REDUCE_OPS", "Access", "BlockPlan", "ContractionFactor", "ContractionPlan",
    "EvalContext", "Evaluator", "LayoutRows", "LinearForm", "NoLayoutRead", "ScaledSum", "TemplatePlan",
    "TotalGroup", "classify_index", "group_totals", "is_invariant", "linear_form", "plan_block",
    "plan_contraction", "plan_contractions", "plan_graph", "plan_template", "scaled_sum", "signature",
]
