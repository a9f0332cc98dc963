"""Checker: types, const evaluation, scoping, models, imports and composition."""
from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path

import numpy as np
import pytest

from ebmlang.errors import EbmError
from ebmlang.language import ast, load_program
from ebmlang.language.checker import EbmErrors, check_program, check_source, evaluate_constant, model_interface
from ebmlang.language.parser import parse_expression, parse_source

ROOT = Path(__file__).parents[2]
EXAMPLES = ROOT / "examples"


def model(text: str, name: str | None = None) -> ast.CheckedModel:
    program = check_source(text, "m.ebm")
    return program.models[name or program.default]


def decl(checked: ast.CheckedModel, name: str):
    return next(d for d in checked.decls if getattr(d, "name", None) == name)


def error_of(text: str, **kwargs) -> EbmError:
    with pytest.raises(EbmError) as info:
        check_source(text, "m.ebm", **kwargs)
    return info.value


def typed_nodes(node):
    """Every AST node below `node` that has a `ty` field."""
    if isinstance(node, (list, tuple)):
        for item in node:
            yield from typed_nodes(item)
        return
    if not dataclasses.is_dataclass(node) or isinstance(node, (ast.Span, ast.Type)):
        return
    if any(f.name == "ty" for f in dataclasses.fields(node)):
        yield node
    for f in dataclasses.fields(node):
        if f.name not in ("span", "ty", "func_span", "name_span"):
            yield from typed_nodes(getattr(node, f.name))


# -- types ----------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.ebm")), ids=lambda p: p.name)
def test_every_expression_of_every_example_is_typed(path):
    program = load_program(path)
    count = 0
    for checked in program.models.values():
        if isinstance(checked, ast.CheckedModel):
            for node in typed_nodes(list(checked.decls)):
                assert node.ty is not None, f"untyped {type(node).__name__} at {node.span}"
                count += 1
    assert count > 0 or all(isinstance(m, ast.CheckedComposite) for m in program.models.values())


def test_expression_types_follow_the_rules():
    checked = model(
        "const L = 4\nparam J = 1.0\nlatent s[L] : spin\nlatent r[L] : real\n"
        "observed x[3] : real\nlatent y : categorical(2)\nparam f : mlp(3 -> 2)\n"
        "energy a[i in 0..L-1] = -J * s[i] * s[i + 1]\n"
        "energy b[i in 0..L] = r[i]^2 * [s[i] == 1]\n"
        "energy c = -f(x)[y]\n"
        "energy d[i in 0..L, j in 0..L] = [i == j] * r[i] * r[j]\n")
    a, b, c, d = (decl(checked, n) for n in "abcd")
    product = a.body  # (-J * s[i]) * s[i + 1]
    assert product.ty == ast.Type("real", True)
    assert product.left.left.ty == ast.Type("real", False)          # -J: params do not depend on variables
    assert product.left.right.ty == ast.Type("discrete", True)      # a spin value
    assert product.right.indices[0].ty == ast.Type("index")         # i + 1
    assert b.body.right.ty == ast.Type("discrete", True)            # an indicator of discrete values
    assert b.body.right.condition.ty == ast.Type("bool", True)
    select = c.body.operand
    assert select.base.ty == ast.Type("vector", True, 2) and select.ty == ast.Type("real", True)
    assert select.base.args[0].ty == ast.Type("vector", True, 3)     # a whole group fed to the mlp
    assert d.body.left.left.ty == ast.Type("index")                 # [i == j] is known at compile time


def test_integer_kinds_and_floor_division_on_indices():
    checked = model("latent x[10] : real\nenergy e[i in 0..10] = x[(i / 2) * 2] * x[i % 3] * x[abs(i - 5)]")
    idx = [n for n in typed_nodes(list(checked.decls)) if isinstance(n, ast.Index)]
    assert all(i.indices[0].ty.kind == "index" for i in idx)


def test_mlp_with_one_output_may_be_used_without_index():
    checked = model("observed x[2] : real\nparam g : mlp(2 -> 8 -> 1, tanh)\nenergy e = g(x)")
    assert decl(checked, "e").body.ty == ast.Type("vector", True, 1)
    assert decl(checked, "g").init.activation == "tanh"


def test_extern_calls_take_scalars_and_type_as_real():
    checked = model("extern g\nlatent x[3] : real\nenergy e[i in 0..2] = g(x[i], x[i + 1])")
    assert decl(checked, "e").body.ty == ast.Type("real", True)
    assert any(isinstance(d, ast.ExternDecl) for d in checked.decls)
    err = error_of("extern g\nlatent x[3] : real\nenergy e = sum(i in 0..g(2)) x[i]")
    assert err.message == "extern 'g' cannot be used in a range"


# -- consts and folding -------------------------------------------------------------


@pytest.mark.parametrize("text, value", [
    ("7 / 2", 3),                         # integers: floor division
    ("-7 / 2", -4),
    ("-7 % 3", 2),                        # floor modulo, like numpy
    ("7.0 / 2", 3.5),
    ("2 ^ 10", 1024),
    ("2.0 ^ -1", 0.5),
    ("sum(i in 0..4) i", 6),
    ("sum(i in 0..4, j in 0..4 where i < j) 1", 6),
    ("sum(i in 0..4, j in i+1..4) 1", 6),  # a range may use an earlier index
    ("max(i in 0..5) (i - 2)^2", 4),
    ("min(i in 0..5) (i - 2)^2", 0),
    ("prod(i in 1..5) i", 24),
    ("mean(i in 0..4) i", 1.5),
    ("logsumexp(i in 0..2) 0.0", math.log(2)),
    ("[3 > 2] + [1 == 2]", 1),
    ("cos(pi) + log(e)", 0.0),
    ("abs(3 - 5)", 2),
])
def test_const_evaluation(text, value):
    consts = model(f"const v = {text}\nlatent x : real\nenergy t = x^2").consts
    assert consts["v"] == pytest.approx(value)
    assert isinstance(consts["v"], int) == isinstance(value, int)


def test_const_arrays_are_numpy_and_indexable():
    consts = model("const g = [[1, 0], [0, 2]]\nconst h = g[1, 1] * 3\nconst t = sum(i in 0..2) g[i, i]\n"
                   "latent x : real\nenergy q = x^2").consts
    np.testing.assert_array_equal(consts["g"], [[1, 0], [0, 2]])
    assert consts["g"].dtype.kind == "i" and consts["h"] == 6 and consts["t"] == 3
    assert consts["pi"] == math.pi and consts["e"] == math.e


def test_shapes_domains_and_param_arguments_are_folded_to_numbers():
    checked = model(
        "const N = 3\nconst K = N + 1\nlatent x[N, 2*N] : categorical(K)\nlatent z : integer in -1..N\n"
        "latent p : real in [0, N]\nparam W[N] ~ normal(0, 1/10.0)\nparam b[N] = N - 1 in [0, 5]\n"
        "param f : mlp(N -> 2*N -> 1)\nenergy e = f(p, z, p)\nenergy e2 = sum(i in 0..N) W[i] * b[i] * [x[i, 0] == 1]")
    x, z, p = decl(checked, "x"), decl(checked, "z"), decl(checked, "p")
    assert [d.value for d in x.shape] == [3, 6] and all(isinstance(d, ast.Number) for d in x.shape)
    assert [a.value for a in x.domain.args] == [4]
    assert [a.value for a in z.domain.args] == [-1, 3]
    assert [a.value for a in p.domain.args] == [0, 3]
    W, b, f = decl(checked, "W"), decl(checked, "b"), decl(checked, "f")
    assert [a.value for a in W.init.args] == [0, pytest.approx(0.1)]
    assert b.init.value.value == 2 and [v.value for v in b.bounds] == [0, 5]
    assert [s.value for s in f.init.sizes] == [3, 6, 1]


def test_array_param_values_stay_expressions_that_evaluate_to_the_array():
    checked = model("const g = [1.0, 2.0]\nparam a[2] = g\nparam c[2, 2] = [[1, 2], [3, 4]]\n"
                    "latent x[2] : real\nenergy e = sum(i in 0..2) a[i] * c[i, i] * x[i]")
    a, c = decl(checked, "a"), decl(checked, "c")
    np.testing.assert_array_equal(evaluate_constant(a.init.value, checked.consts), [1.0, 2.0])
    np.testing.assert_array_equal(evaluate_constant(c.init.value, checked.consts), [[1, 2], [3, 4]])


def test_evaluate_constant_is_vectorised_over_index_arrays():
    expr = parse_expression("(i + 1) % L + [i < 2] * 10")
    out = evaluate_constant(expr, {"L": 4}, {"i": np.arange(5)})
    np.testing.assert_array_equal(out, [11, 12, 3, 0, 1])


@pytest.mark.parametrize("text, message", [
    ("const a = 10 ^ 100", "integer constant too large"),
    ("const a = 2 ^ -1", "an integer to a negative power is not an integer"),
    ("const a = exp(1000.0)", "this constant expression is not a finite number"),
    ("const a = log(0)", "this constant expression is not a finite number"),
    ("const a = 5 % 0", "division by zero"),
    ("const a = sum(i in 0..100000000) i", "this reduction is too large to evaluate at compile time"),
    ("const a = mean(i in 0..0) i", "mean over an empty index set"),
    ("const g = [1, 2]\nconst a = g[2]", "index 2 is out of range for dimension 1 of const 'g' (size 2)"),
    ("const a = b + 1\nconst b = 1", "unknown name 'b'"),
    ("const a = 1 < 2", "const 'a' is a condition, not a number"),
])
def test_const_errors(text, message):
    assert error_of(text).message == message


# -- scoping rules -----------------------------------------------------------------


def test_unbound_index_names_where_it_was_bound():
    err = error_of("latent x[3] : real\nenergy e = sum(i in 0..3) x[i] + x[i]")
    assert err.message == "index 'i' is not bound here"
    assert (err.span.line, err.span.column) == (2, 36)
    assert err.notes and err.notes[0][0].column == 16


def test_index_may_not_reuse_a_declared_name():
    err = error_of("latent x[3] : real\nenergy e = sum(x in 0..3) x^2")
    assert err.message == "index 'x' has the same name as variable 'x'"


def test_builtin_constants_cannot_be_redeclared_but_terms_have_their_own_namespace():
    assert error_of("const pi = 3").message == "'pi' is a built-in constant and cannot be redeclared"
    checked = model("latent x : real\nenergy e = x^2 + e\nenergy x2 = x")
    assert [d.name for d in checked.decls if isinstance(d, ast.EnergyDecl)] == ["e", "x2"]
    err = error_of("latent x : real\nenergy t = x\nenergy t = x^2")
    assert err.message == "duplicate term name 't'" and err.span.line == 3


def test_a_failed_declaration_does_not_cascade():
    err = error_of("latent x[Q] : real\nenergy a = x[0]^2\nenergy b = sum(i in 0..3) x[i]")
    assert not isinstance(err, EbmErrors) and err.message == "unknown name 'Q'"


def test_several_independent_errors_are_reported_together():
    err = error_of("latent x[3] : real\nenergy a = x[3]\nenergy b = y\nparam p[2] = [1, 2, 3]")
    assert isinstance(err, EbmErrors) and len(err.errors) == 3
    assert [e.span.line for e in err.errors] == [2, 3, 4], "reported in reading order"
    assert err.message == err.errors[0].message and str(err).endswith("3 errors")


def test_real_comparisons_are_rejected_but_params_may_be_compared():
    assert error_of("latent x : real\nconstraint c : x > 0").message == "'>' compares a real-valued variable"
    checked = model("param beta = 1.0\nlatent s : spin\nenergy e = [beta > 0] * s")
    assert decl(checked, "e").body.left.ty == ast.Type("real", False)


def test_where_filters_and_ranges_must_be_compile_time():
    err = error_of("latent s[3] : spin\nenergy e = sum(i in 0..3 where s[i] > 0) s[i]")
    assert err.message == "variable 's' cannot be used in a where filter"


def test_index_bounds_checked_exactly_over_the_index_set():
    # the `where` filter removes the only out-of-range tuple, so this is fine
    model("latent x[4] : real\nenergy e[i in 0..4 where i < 3] = x[i + 1] - x[i]")
    model("latent x[4] : real\nenergy e[i in 0..4] = sum(j in 0..4 where j > i) x[j - 1]")
    err = error_of("latent x[4] : real\nenergy e[i in 0..4] = sum(j in 0..4 where j >= i) x[j - i - 1]^2")
    assert err.message == ("index -1 is out of range for dimension 1 of variable 'x' (size 4) "
                           "when i = 0, j = 0")


# -- models in one file -----------------------------------------------------------


def test_default_model_is_the_top_level_when_it_has_terms():
    program = check_source("latent x : real\nenergy e = x^2\nmodel B { latent y : real energy f = y^2 }",
                           "two.ebm")
    assert program.default == "two" and set(program.models) == {"two", "B"}


def test_default_model_is_the_last_model_otherwise_and_blocks_see_top_level_consts():
    program = check_source(
        "const N = 3\nextern g\n"
        "model A { latent x[N] : real energy e = sum(i in 0..N) g(x[i]) }\n"
        "model B { latent x[N] : real energy e = sum(i in 0..N) x[i]^2 }\n"
        "model C = A * B\n", "m.ebm")
    assert program.default == "C" and list(program.models) == ["A", "B", "C"]
    a = program.models["A"]
    assert a.consts["N"] == 3 and any(isinstance(d, ast.ExternDecl) for d in a.decls)
    comp = program.models["C"]
    assert isinstance(comp, ast.CheckedComposite) and [f.name for f in comp.expr.factors] == ["A", "B"]


def test_string_programs_name_their_top_model_main():
    assert check_source("latent x : real\nenergy e = x^2").default == "main"


def test_composite_interface_renames_observes_and_weights():
    program = check_source(
        "model A { latent z[2] : real param k = 1.0 energy e = k * z[0]^2 }\n"
        "model B { observed y[2] : real latent x[2] : real energy e = (x[0] - y[0])^2 }\n"
        "model C = A[z -> x] ^ 0.5 * B ^ w\n"
        "model D = C | x\n", "m.ebm")
    interface = model_interface(program, "C")
    assert set(interface.variables) == {"x", "y"}
    assert not interface.variables["x"].observed and interface.variables["x"].shape == (2,)
    assert set(interface.params) == {"A.k", "B.w", "w"} - {"B.w"}
    assert interface.terms == ("A.e", "B.e")
    assert model_interface(program, "D").variables["x"].observed
    power = program.models["C"].expr.factors[0]
    assert isinstance(power.weight, ast.Number) and power.weight.value == 0.5
    swapped = check_source("model A { latent a : real latent b : binary energy e = a^2 * b }\n"
                           "model S = A[a -> b, b -> a]\n")
    assert model_interface(swapped, "S").variables["a"].domain.kind == "binary"


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.ebm")), ids=lambda p: p.name)
def test_interface_agrees_with_lowering(path):
    # The summary `ebm check` prints must name what the compiled model really has.
    from ebmlang.graph.lower import lower_program

    program = load_program(path)
    for name in program.models:
        interface = model_interface(program, name)
        graph = lower_program(program, name)
        assert set(interface.params) == set(graph.params), name
        assert list(interface.terms) == list(graph.terms), name
        assert {k: (v.shape, v.domain, v.observed) for k, v in interface.variables.items()} == \
            {k: (v.shape, v.domain, v.observed) for k, v in graph.variables.items()}, name


def test_composite_errors():
    blocks = "model A { latent z : real param k = 1.0 energy e = k * z^2 }\n"
    assert error_of(blocks + "model C = A[z -> k]").message == \
        "cannot rename 'z' to 'k': model 'A' already has a 'k'"
    assert error_of(blocks + "model C = A ^ -1").message == "an expert's weight must not be negative, got -1"
    assert error_of(blocks + "model C = A ^ z").message == "the weight 'z' has the name of a variable of model 'A'"
    assert error_of(blocks + "model C = A * Q").message == "unknown model 'Q'"
    assert error_of(blocks + "model A = A").message == "duplicate model name 'A'"
    assert error_of(blocks + "model C = A[z -> q, k -> q]").message == "two names are renamed to 'q'"


# -- imports ----------------------------------------------------------------------


FILES = {
    "lib/prior.ebm": "const N = 4\nlatent x[N] : spin\nparam beta = 1.0\n"
                     "energy pair[i in 0..N-1] = -beta * x[i] * x[i + 1]\n",
    "lib/noise.ebm": "const N = 4\nobserved y[N] : spin\nlatent x[N] : spin\n"
                     "energy fit[i in 0..N] = -x[i] * y[i]\n",
    "lib/both.ebm": 'import "prior.ebm" as P\nimport "noise.ebm" as L\n'
                    "model Joint = P * L\nmodel Hot = P ^ 0.5 * L\n",
    "main.ebm": 'import "lib/both.ebm" as Both\nimport "lib/prior.ebm" as Prior\n'
                "model Top = Both.Joint * Prior\n",
}


def in_memory(files: dict[str, str], calls: list | None = None):
    def loader(path: str) -> str:
        if calls is not None:
            calls.append(path)
        return files[path]
    return loader


def test_imports_appear_as_alias_and_alias_dot_name():
    calls: list[str] = []
    program = check_program(parse_source(FILES["main.ebm"], "main.ebm"), loader=in_memory(FILES, calls))
    assert set(program.models) == {
        "Both", "Both.P", "Both.L", "Both.Joint", "Both.Hot", "Prior", "Top"}
    assert program.default == "Top"
    # the imported file's default is its last model, also reachable as plain `Both`
    assert program.models["Both"].expr == program.models["Both.Hot"].expr
    joint = program.models["Both.Joint"]
    assert [f.name for f in joint.expr.factors] == ["Both.P", "Both.L"]
    assert program.models["Both.P"].name == "Both.P" and program.models["Prior"].file == "lib/prior.ebm"
    assert sorted(calls) == ["lib/both.ebm", "lib/noise.ebm", "lib/prior.ebm"], "each file is read once"
    assert set(model_interface(program).variables) == {"x", "y"}


def test_imported_errors_point_into_the_imported_file():
    files = dict(FILES, **{"lib/noise.ebm": "latent x[4] : spin\nenergy fit = x[9]\n"})
    with pytest.raises(EbmError) as info:
        check_program(parse_source(FILES["main.ebm"], "main.ebm"), loader=in_memory(files))
    err = info.value
    assert err.span.file == "lib/noise.ebm" and err.span.line == 2
    assert "energy fit = x[9]" in str(err), "the imported file's own line is quoted"


def test_import_root_and_allow_root(tmp_path):
    (tmp_path / "shared.ebm").write_text("latent z : real\nenergy e = z^2\n")
    (tmp_path / "sub").mkdir()
    main = tmp_path / "sub" / "main.ebm"
    main.write_text('import "../shared.ebm" as Shared\nmodel M = Shared\n')
    with pytest.raises(EbmError) as info:
        load_program(main)
    assert info.value.message == 'import "../shared.ebm" leaves the allowed directory'
    program = load_program(main, allow_root=tmp_path)
    assert set(program.models) == {"Shared", "M"}


def test_import_cycle_and_missing_file():
    files = {"a.ebm": 'import "b.ebm" as B\nlatent x : real\nenergy e = x^2\n',
             "b.ebm": 'import "a.ebm" as A\nlatent y : real\nenergy e = y^2\n'}
    with pytest.raises(EbmError) as info:
        check_program(parse_source(files["a.ebm"], "a.ebm"), loader=in_memory(files))
    assert info.value.message == "import cycle: a.ebm -> b.ebm -> a.ebm"
    assert info.value.span.file == "b.ebm"
    with pytest.raises(EbmError) as info:
        check_program(parse_source('import "nope.ebm" as N\n', "a.ebm"), loader=in_memory(files))
    assert info.value.message == "cannot find imported file 'nope.ebm'"


def test_posterior_example_composes_the_same_variables_as_denoise():
    denoise = model_interface(load_program(EXAMPLES / "denoise.ebm"))
    for name in ("posterior.ebm", "denoise_composed.ebm"):
        composed = model_interface(load_program(EXAMPLES / name))
        assert {k: (v.shape, v.domain, v.observed) for k, v in composed.variables.items()} == \
            {k: (v.shape, v.domain, v.observed) for k, v in denoise.variables.items()}
        assert sorted(t.split(".")[-1] for t in composed.terms) == ["data", "down", "right"]


# -- warnings and hygiene ------------------------------------------------------------


def test_warnings_for_unused_declarations_and_constant_energies():
    program = check_source("latent x : real\nlatent unused : real\nparam p = 1.0\nenergy e = x^2\nenergy c = 3",
                           "w.ebm")
    assert program.warnings == (
        "w.ebm:5:8: warning: energy 'c' does not depend on any variable",
        "w.ebm:2:1: warning: variable 'unused' is not used by any term",
        "w.ebm:3:1: warning: param 'p' is not used by any term",
    )


def test_front_end_never_executes_code():
    # Nothing in a .ebm file may run Python: no eval/exec/compile/import hooks in the front end.
    modules = sorted((ROOT / "ebmlang" / "language").glob("*.py")) + [ROOT / "ebmlang" / "cli" / "entry.py"]
    assert len(modules) >= 12
    for module in modules:
        source = module.read_text()
        assert not re.search(r"(?<![\w.])(eval|exec|compile|__import__)\(", source), module


def test_param_bounds_must_hold_for_the_initial_value():
    assert error_of("param s = 20 in [0, 10]").message == \
        "the initial value of param 's' lies outside its bounds [0, 10]"
    assert error_of("param s in [1, 10]").message == "param 's' starts at 0, outside its bounds [1, 10]"
    assert error_of("param s = 1 in [10, 1]").message == "empty interval [10, 1]"


def test_a_block_using_a_top_level_param_or_variable_is_told_why_it_cannot_see_it():
    source = "param f : mlp(2 -> 1)\nlatent x : real\nmodel A {\n    latent y : real\n    energy e = f(y, x)\n}\n"
    with pytest.raises(EbmError) as caught:
        check_source(source, "blocks.ebm")
    text = str(caught.value)
    assert "blocks.ebm:5:16: error: unknown function 'f'" in text
    assert "declare mlp 'f' inside the block" in text and "blocks.ebm:1:1: 'f' is declared here" in text
    with pytest.raises(EbmError, match="declare variable 'x' inside the block"):
        check_source(source.replace("f(y, x)", "(y - x)^2"), "blocks.ebm")
