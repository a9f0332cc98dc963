"""Stage 1, the language: `.ebm` source text -> parse tree -> typed, checked AST.

    program = parse_source(text, "model.ebm")     # ast.Program, every node with a Span
    checked = check_program(program)               # ast.CheckedProgram (types, consts, imports)
    checked = load_program("model.ebm")            # both, from a file

parser.py (with the grammar in ebmlang/grammar), ast.py, checker.py and the check_*
modules it runs, consteval.py (compile-time constants and index sets),
builtin_names.py, loader.py (files and imports) and highlight.py (a Pygments lexer).
Imports nothing from a later stage.
"""
__all__ = ["EbmErrors", "check_program", "check_source", "load_program", "parse_source"]


def __getattr__(name: str):
    # The entry points load on first use: the IR reads language.domains, and the backends
    # that import it need neither lark nor the checker.
    if name == "parse_source":
        from ebmlang.language.parser import parse_source

        return parse_source
    if name in __all__:
        from ebmlang.language import checker

        return getattr(checker, name)
    raise AttributeError(f"module 'ebmlang.language' has no attribute '{name}'")
