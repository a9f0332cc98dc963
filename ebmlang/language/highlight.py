"""Syntax highlighting of `.ebm` files with Pygments.

Registered as the Pygments lexer `ebm` (pyproject entry point `pygments.lexers`), so
`pygmentize -l ebm model.ebm`, Sphinx/MkDocs code blocks marked `ebm` and Jupyter
all colour ebmlang source. The token classes follow the grammar (grammar/ebm.lark):
declaration keywords, domains, builtin functions and reductions, numbers, strings,
comments and operators.
"""
from __future__ import annotations

from pygments.lexer import RegexLexer, bygroups, words
from pygments.token import Comment, Keyword, Name, Number, Operator, Punctuation, String, Whitespace

from ebmlang.language.builtin_names import (
    BUILTIN_CONSTANTS,
    BUILTIN_FUNCTIONS,
    DISTRIBUTIONS,
    LAYER_ACTIVATIONS,
    NETWORK_LAYERS,
)

# Words that start a declaration (every statement starts with one).
DECLARATION_KEYWORDS = ("const", "latent", "observed", "param", "energy", "constraint",
                        "extern", "import", "model")
# Words inside expressions and declarations.
OTHER_KEYWORDS = ("in", "where", "as", "and", "or", "not")
DOMAINS = ("real", "binary", "spin", "categorical", "integer")
REDUCTIONS = ("sum", "prod", "mean", "logsumexp", "min", "max")
# The checker's own lists, so the highlighter marks exactly what the language defines.
FUNCTIONS = BUILTIN_FUNCTIONS + ("mlp", "network") + DISTRIBUTIONS + NETWORK_LAYERS + ("spectral_norm",)
# Every activation an mlp or a network layer may name (mlp's are among the layers').
ACTIVATIONS = tuple(name for name in LAYER_ACTIVATIONS if name not in BUILTIN_FUNCTIONS)
CONSTANTS = tuple(BUILTIN_CONSTANTS)

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"


class EbmLexer(RegexLexer):
    """Pygments lexer for the ebmlang modelling language (`.ebm` files)."""

    name = "ebmlang"
    aliases = ["ebm", "ebmlang"]
    filenames = ["*.ebm"]
    mimetypes = ["text/x-ebmlang"]
    url = "https://github.com/ebmlang/ebmlang"

    tokens = {
        "root": [
            (r"\s+", Whitespace),
            (r"#.*?$", Comment.Single),
            (r'"[^"\n]*"', String.Double),
            # `model Name` / `energy name` / ...: the declared name is a definition.
            (r"(model|energy|constraint)(\s+)(" + _NAME + ")",
             bygroups(Keyword.Declaration, Whitespace, Name.Function)),
            (r"(const|latent|observed|param|extern)(\s+)(" + _NAME + ")",
             bygroups(Keyword.Declaration, Whitespace, Name.Variable)),
            (r"(as)(\s+)(" + _NAME + ")", bygroups(Keyword, Whitespace, Name.Namespace)),
            (words(DECLARATION_KEYWORDS, suffix=r"\b"), Keyword.Declaration),
            (words(OTHER_KEYWORDS, suffix=r"\b"), Keyword),
            (words(DOMAINS, suffix=r"\b"), Keyword.Type),
            (words(REDUCTIONS, suffix=r"\b"), Name.Builtin),
            (words(FUNCTIONS + ACTIVATIONS, suffix=r"\b"), Name.Builtin),
            (words(CONSTANTS, suffix=r"\b"), Name.Builtin.Pseudo),
            (r"[0-9]+\.[0-9]+([eE][+-]?[0-9]+)?", Number.Float),
            (r"[0-9]+[eE][+-]?[0-9]+", Number.Float),
            (r"[0-9]+", Number.Integer),
            (_NAME, Name),
            (r"\.\.|->|==|!=|<=|>=|[-+*/%^<>=~|]", Operator),
            (r"[\[\](){},:.]", Punctuation),
        ],
    }
