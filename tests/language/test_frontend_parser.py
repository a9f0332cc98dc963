"""Parser: grammar health, AST shapes, precedence, spans, and located syntax errors."""
from __future__ import annotations

import importlib.resources
import logging
from pathlib import Path

import pytest
from lark import Lark
from lark import logger as lark_logger

from ebmlang.errors import EbmError
from ebmlang.language import ast
from ebmlang.language.parser import parse_expression, parse_source

EXAMPLES = sorted((Path(__file__).parents[2] / "examples").glob("*.ebm"))


def expr(text: str) -> ast.Expr:
    return parse_expression(text)


def shape(node) -> object:
    """A compact, span-free rendering of an expression tree, to compare structure."""
    if isinstance(node, ast.Number):
        return node.value
    if isinstance(node, ast.Name):
        return node.name
    if isinstance(node, ast.Binary):
        return (node.op, shape(node.left), shape(node.right))
    if isinstance(node, ast.Unary):
        return (node.op, shape(node.operand))
    if isinstance(node, ast.Index):
        return ("[]", shape(node.base), *map(shape, node.indices))
    if isinstance(node, ast.Call):
        return ("call", node.func, *map(shape, node.args))
    if isinstance(node, ast.Indicator):
        return ("ind", shape(node.condition))
    if isinstance(node, ast.ArrayLiteral):
        return ("array", *map(shape, node.items))
    if isinstance(node, ast.Reduce):
        bindings = tuple((b.name, shape(b.start), shape(b.stop)) for b in node.index_set.bindings)
        where = shape(node.index_set.where) if node.index_set.where is not None else None
        return (node.op, bindings, where, shape(node.body))
    raise AssertionError(f"unexpected node {node!r}")


# -- grammar ----------------------------------------------------------------


def test_grammar_is_package_data_and_conflict_free(caplog):
    text = importlib.resources.files("ebmlang.grammar").joinpath("ebm.lark").read_text()
    # lark resolves shift/reduce conflicts silently (as shift) unless debug logging is on;
    # a conflict would mean some programs parse differently from what the grammar says.
    lark_logger.setLevel(logging.DEBUG)
    try:
        with caplog.at_level(logging.DEBUG, logger="lark"):
            Lark(text, parser="lalr", lexer="basic", propagate_positions=True, debug=True)
    finally:
        lark_logger.setLevel(logging.WARNING)
    conflicts = [r.getMessage() for r in caplog.records if "conflict" in r.getMessage().lower()]
    assert conflicts == []


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_parses_and_starts_with_a_header_comment(path):
    text = path.read_text()
    program = parse_source(text, str(path))
    assert text.startswith("# "), "each example starts with a short comment header"
    assert program.items and program.file == str(path)


# -- precedence ---------------------------------------------------------------


def test_reduction_body_binds_like_a_product_so_two_sums_stay_separate():
    tree = shape(expr("-sum(i in 0..V) b[i] * v[i] - sum(k in 0..H) c[k] * h[k]"))
    assert tree == (
        "-",
        ("-", ("sum", (("i", 0, "V"),), None, ("*", ("[]", "b", "i"), ("[]", "v", "i")))),
        ("sum", (("k", 0, "H"),), None, ("*", ("[]", "c", "k"), ("[]", "h", "k"))),
    )


def test_reduction_ends_a_product_and_takes_the_rest_of_it():
    assert shape(expr("2 * sum(i in 0..3) x[i] * y[i]")) == (
        "*", 2, ("sum", (("i", 0, 3),), None, ("*", ("[]", "x", "i"), ("[]", "y", "i"))))
    assert shape(expr("sum(i in 0..3) x[i] + 1")) == (
        "+", ("sum", (("i", 0, 3),), None, ("[]", "x", "i")), 1)


def test_nested_reductions_and_where_filter():
    tree = shape(expr("sum(i in 0..N, j in 0..N where i < j) W[i, j] * s[i] * s[j]"))
    assert tree[0] == "sum" and tree[1] == (("i", 0, "N"), ("j", 0, "N"))
    assert tree[2] == ("<", "i", "j")
    assert shape(expr("logsumexp(k in 0..K) -sum(d in 0..2) x[d]^2")) == (
        "logsumexp", (("k", 0, "K"),), None,
        ("-", ("sum", (("d", 0, 2),), None, ("^", ("[]", "x", "d"), 2))))


def test_arithmetic_precedence_and_associativity():
    assert shape(expr("-x^2")) == ("-", ("^", "x", 2))
    assert shape(expr("a^b^c")) == ("^", "a", ("^", "b", "c"))
    assert shape(expr("a - b - c")) == ("-", ("-", "a", "b"), "c")
    assert shape(expr("a / b * c % d")) == ("%", ("*", ("/", "a", "b"), "c"), "d")
    assert shape(expr("2*pi*k/K")) == ("/", ("*", ("*", 2, "pi"), "k"), "K")
    assert shape(expr("x ^ -2")) == ("^", "x", ("-", 2))


def test_boolean_precedence():
    assert shape(expr("not a == b and c < d or e != f")) == (
        "or", ("and", ("not", ("==", "a", "b")), ("<", "c", "d")), ("!=", "e", "f"))


def test_indicator_versus_array_literal():
    assert shape(expr("-beta * [x[i,j] == y[i,j]]")) == (
        "*", ("-", "beta"), ("ind", ("==", ("[]", "x", "i", "j"), ("[]", "y", "i", "j"))))
    assert shape(expr("[a < b and not c >= d]"))[0] == "ind"
    assert shape(expr("[1, 2]")) == ("array", 1, 2)
    assert shape(expr("[[1, 0], [0, 2]]")) == ("array", ("array", 1, 0), ("array", 0, 2))
    assert shape(expr("[3]")) == ("array", 3)  # not a condition: an array of one item


def test_postfix_calls_and_selection():
    assert shape(expr("-f(x)[y]")) == ("-", ("[]", ("call", "f", "x"), "y"))
    assert shape(expr("g(x[i], x[i+1])")) == ("call", "g", ("[]", "x", "i"), ("[]", "x", ("+", "i", 1)))
    assert shape(expr("s[(i+1) % L, j]")) == ("[]", "s", ("%", ("+", "i", 1), "L"), "j")


def test_numbers_and_ranges_lex_correctly():
    program = parse_source("const a = 1e-3\nconst b = 2.50\nconst c = 7\nenergy e = sum(i in 0..N-1) 1")
    a, b, c, e = program.items
    assert (a.value.value, a.value.is_integer) == (1e-3, False)
    assert (b.value.value, b.value.is_integer) == (2.5, False)
    assert (c.value.value, c.value.is_integer) == (7, True)
    binding = e.body.index_set.bindings[0]
    assert shape(binding.start) == 0 and shape(binding.stop) == ("-", "N", 1)


def test_expressions_may_span_lines_and_comments_are_ignored():
    program = parse_source("energy e = x[0]   # first\n  + x[1]  # second\n\n  * 2\n")
    assert shape(program.items[0].body) == ("+", ("[]", "x", 0), ("*", ("[]", "x", 1), 2))


# -- declarations ---------------------------------------------------------------


def test_variable_domains():
    program = parse_source(
        "latent a : real\nlatent b[2] : real in [0, 1]\nobserved c[3, 4] : binary\n"
        "latent d : spin\nlatent e2 : categorical(K)\nlatent f : integer in 1..S+1\n")
    kinds = [(d.name, d.role, d.domain.kind, len(d.shape), len(d.domain.args)) for d in program.items]
    assert kinds == [("a", "latent", "real", 0, 0), ("b", "latent", "bounded", 1, 2),
                     ("c", "observed", "binary", 2, 0), ("d", "latent", "spin", 0, 0),
                     ("e2", "latent", "categorical", 0, 1), ("f", "latent", "integer", 0, 2)]
    assert shape(program.items[-1].domain.args[1]) == ("+", "S", 1)


def test_param_forms():
    program = parse_source(
        "param J = 1.0\nparam W[V, H] ~ normal(0, 0.01)\nparam u ~ uniform(-1, 1)\n"
        "param f : mlp(D -> 128 -> C)\nparam g : mlp(2 -> 64 -> 1, tanh)\n"
        "param sigma = 0.5 in [0.01, 10]\nparam free\n")
    J, W, u, f, g, sigma, free = program.items
    assert isinstance(J.init, ast.ParamValue) and J.init.value.value == 1.0
    assert (W.init.dist, len(W.shape), len(W.init.args)) == ("normal", 2, 2)
    assert u.init.dist == "uniform"
    assert (f.init.kind, f.init.activation, len(f.init.sizes)) == ("mlp", "silu", 3)
    assert g.init.activation == "tanh"
    assert [b.value for b in sigma.bounds] == [0.01, 10]
    assert free.init is None and free.bounds is None


def test_terms_with_and_without_index_sets_and_spans():
    source = "latent s[4] : spin\nenergy pair[i in 0..3] = -s[i] * s[i+1]\nconstraint c : s[0] != s[1]\n"
    _, pair, c = parse_source(source, "m.ebm").items
    assert pair.name == "pair" and [b.name for b in pair.index_set.bindings] == ["i"]
    assert (pair.name_span.line, pair.name_span.column, pair.name_span.end_column) == (2, 8, 12)
    assert pair.span.file == "m.ebm" and (pair.span.line, pair.span.column) == (2, 1)
    assert c.index_set is None and shape(c.condition) == ("!=", ("[]", "s", 0), ("[]", "s", 1))


def test_expression_spans_point_at_their_text():
    source = "param sigma = 1\nlatent x : real\nenergy e = x^2 / sigmaa\n"
    body = parse_source(source).items[2].body
    name = body.right
    assert (name.span.line, name.span.column, name.span.end_column) == (3, 18, 24)
    line = source.splitlines()[2]
    assert line[name.span.column - 1:name.span.end_column - 1] == "sigmaa"
    assert line[body.span.column - 1:body.span.end_column - 1] == "x^2 / sigmaa"


def test_models_imports_and_composition():
    program = parse_source(
        'import "prior.ebm" as Prior\n'
        "extern g\n"
        "model A { latent z : real energy e = z^2 }\n"
        "model C = (Prior ^ 2.0 * A[z -> x, w -> v] * Prior.Smooth ^ w) | x, y\n")
    imp, ext, block, comp = program.items
    assert (imp.path, imp.alias) == ("prior.ebm", "Prior")
    assert ext.name == "g" and block.name == "A" and len(block.items) == 2
    observe = comp.expr
    assert isinstance(observe, ast.ModelObserve) and observe.names == ("x", "y")
    product = observe.base
    assert isinstance(product, ast.ModelProduct) and len(product.factors) == 3
    power, rename, weighted = product.factors
    assert power.base.name == "Prior" and power.weight.value == 2.0
    assert rename.base.name == "A" and rename.renames == (("z", "x"), ("w", "v"))
    assert weighted.base.name == "Prior.Smooth" and weighted.weight.name == "w"


# -- syntax errors ----------------------------------------------------------------


@pytest.mark.parametrize("source, line, column, message", [
    ("latent x = real", 1, 10, "a variable's domain follows ':'"),
    ("latent x[3] : real\nenergy e = x[0\nenergy f = 1", 2, 15, "missing ']'"),
    ("energy e = (x + 1", 1, 18, "missing ')'"),
    ("model A { latent x : real", 1, 26, "missing '}'"),
    ("latent x : real\nenergy e = x +", 2, 15, "unexpected end of file"),
    ("energy e = x @ y", 1, 14, "unexpected character '@'"),
    ("latent x[3] : bool", 1, 15, "unknown domain 'bool'"),
    ("latent x : categorical", 1, 12, "categorical needs one argument, the number of categories"),
    ("latent x : integer in [0, 3]", 1, 12, "an integer domain needs a range"),
    ("param W[3] : normal(0, 1)", 1, 14, "unknown network kind 'normal'"),
    ("param s = 1 in 0..2", 1, 17, "unexpected '..'"),
    ("energy e = sum(i in 0:3) x[i]", 1, 22, "unexpected ':'"),
    ("import prior.ebm as P", 1, 8, "unexpected name 'prior'"),
    ("latent x : real\n\n   latent in : real", 3, 11, "unexpected keyword 'in'"),
])
def test_syntax_errors_are_located(source, line, column, message):
    with pytest.raises(EbmError) as info:
        parse_source(source, "t.ebm")
    err = info.value
    assert err.message == message
    assert (err.span.file, err.span.line, err.span.column) == ("t.ebm", line, column)
    assert f"t.ebm:{line}:{column}: error: {message}" in str(err)
    assert "^" in str(err), "the offending line is quoted with a caret"


def test_expected_tokens_are_listed_in_plain_words():
    with pytest.raises(EbmError) as info:
        parse_source("const b")
    assert info.value.expected == "'='"
    with pytest.raises(EbmError) as info:
        parse_source("energy e = x +")
    assert info.value.expected == "an expression"
    with pytest.raises(EbmError) as info:
        parse_source("energy e = [x = y]")
    assert info.value.hint == "compare with '==' ('=' only defines things)"
    assert "an operator" in info.value.expected and "']'" in info.value.expected


def test_code_is_not_part_of_the_language():
    with pytest.raises(EbmError) as info:
        parse_source("latent x : real\ndef f(x): return x")
    assert info.value.hint == "a .ebm file only declares things; there are no statements or code"


def test_every_ebm_snippet_of_the_language_reference_parses():
    text = (Path(__file__).parents[2] / "docs" / "language.md").read_text()
    snippets = [block.split("\n", 1)[1] for block in text.split("```")[1::2] if block.startswith("ebm\n")]
    assert len(snippets) >= 12
    for snippet in snippets:
        parse_source(snippet, "language.md")
