"""Stage 2, the factor graph: a checked AST -> the factor graph IR, and what reads it.

    graph = lower_program(checked)                 # ir.FactorGraph
    graph = lower_source(text, "model.ebm")        # parse, check and lower in one call
    graph = compose([prior, likelihood])           # a product of experts: energies add

ir.py (the IR: variable groups, params, factor templates with index arrays),
lower.py (AST -> IR), compose.py (products of experts, renaming, observing),
structure.py (colourings, Markov blankets, template classes), values.py (user arrays
checked against variable declarations), reference.py (the numpy reference evaluator,
the oracle the backends are tested against) and export.py (DOT, JSON, GraphML).
Imports only ebmlang.errors and the language stage.
"""
from ebmlang.graph.compose import compose
from ebmlang.graph.ir import FactorGraph
from ebmlang.graph.lower import lower_model, lower_program, lower_source

__all__ = ["FactorGraph", "compose", "lower_model", "lower_program", "lower_source"]
