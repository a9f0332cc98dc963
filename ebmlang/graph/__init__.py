"""Stage 2, the factor graph: a checked AST -> the factor graph IR, and what reads it.

    graph = lower_program(checked)                 # ir.FactorGraph
    graph = lower_source(text, "model.ebm")        # parse, check and lower in one call
    graph = compose.compose([prior, likelihood])   # a product of experts: energies add

ir.py (the IR: variable groups, params, factor templates with index arrays),
lower/ (AST -> IR), compose.py (products of experts, renaming, observing),
structure.py (colourings, Markov blankets, template classes), values.py (user arrays
checked against variable declarations), reference.py (the numpy reference evaluator,
the oracle the backends are tested against) and export.py (DOT, JSON, GraphML).
Imports only ebmlang.errors and the language stage.
"""
__all__ = ["FactorGraph", "lower_model", "lower_program", "lower_source"]


def __getattr__(name: str):
    # Lowering loads on first use: the backends import graph.ir alone, and need neither
    # the lowering nor the front end it parses with.
    if name == "FactorGraph":
        from ebmlang.graph.ir import FactorGraph

        return FactorGraph
    if name in __all__:
        from ebmlang.graph import lower

        return getattr(lower, name)
    raise AttributeError(f"module 'ebmlang.graph' has no attribute '{name}'")
