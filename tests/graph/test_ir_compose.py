"""Products of experts: a composite's energy is the weighted sum of its experts' energies;
names are namespaced; mismatches, renames and observes are located errors."""
from __future__ import annotations

import numpy as np
import pytest
from ir_testing import EXAMPLES, lower_source

from ebmlang.errors import EbmError
from ebmlang.graph import ir
from ebmlang.graph.compose import compose, latent, observe, rename
from ebmlang.graph.lower import lower_program
from ebmlang.graph.reference import reference_energy, reference_init_params, reference_term_energies
from ebmlang.language.checker import check_source


def _program(name: str):
    path = EXAMPLES / name
    return check_source(path.read_text(), str(path))


def _random_state(g: ir.FactorGraph, rng: np.random.Generator, batch: int = 3) -> dict:
    state = {}
    for name, var in g.variables.items():
        shape = (batch,) + var.shape
        state[name] = rng.choice(var.domain.values, size=shape) if var.domain.is_discrete else rng.normal(size=shape)
    return state


def test_posterior_is_the_sum_and_sharper_weights_the_prior():
    checked = _program("posterior.ebm")
    prior, likelihood = lower_program(checked, "Prior"), lower_program(checked, "Likelihood")
    posterior, sharper = lower_program(checked, "Posterior"), lower_program(checked, "Sharper")
    assert set(posterior.params) == {"Prior.beta", "Likelihood.eta"}
    assert [t.name for t in posterior.templates] == ["Prior.right", "Prior.down", "Likelihood.data"]
    assert posterior.terms == ("Prior.right", "Prior.down", "Likelihood.data")
    assert {t.expert for t in posterior.templates} == {"Prior", "Likelihood"}
    assert [(e.name, e.weight) for e in sharper.experts] == [("Prior", 2.0), ("Likelihood", 1.0)]
    assert posterior.variables["y"].observed and not posterior.variables["x"].observed

    rng = np.random.default_rng(0)
    state = _random_state(posterior, rng)
    beta, eta = np.array(0.8), np.array(1.7)
    e_prior = reference_energy(prior, state, {"beta": beta})
    e_likelihood = reference_energy(likelihood, state, {"eta": eta})
    composite_params = {"Prior.beta": beta, "Likelihood.eta": eta}
    np.testing.assert_allclose(reference_energy(posterior, state, composite_params), e_prior + e_likelihood)
    np.testing.assert_allclose(reference_energy(sharper, state, composite_params), 2 * e_prior + e_likelihood)


def test_composed_denoise_equals_the_single_file_model():
    composed = lower_program(_program("denoise_composed.ebm"))
    single = lower_program(_program("denoise.ebm"))
    assert composed.variables["y"].observed
    state = _random_state(single, np.random.default_rng(1))
    np.testing.assert_allclose(
        reference_energy(composed, state, {"Prior.beta": np.array(1.5), "Likelihood.eta": np.array(2.0)}),
        reference_energy(single, state, {"beta": np.array(1.5), "eta": np.array(2.0)}))


def test_tempered_experts_with_rename_and_a_learnable_weight():
    checked = _program("experts.ebm")
    smooth, data, sparse = (lower_program(checked, n) for n in ("Smooth", "Data", "Sparse"))
    tempered = lower_program(checked, "Tempered")
    assert set(tempered.variables) == {"x", "y"}  # Data's z was renamed to x
    assert set(tempered.params) == {"Smooth.k", "Data.tau", "lam"}  # the learnable weight is shared, not namespaced
    assert tempered.params["lam"].shape == () and float(tempered.params["lam"].init.value) == 1.0
    assert [(e.name, e.weight) for e in tempered.experts] == [("Smooth", 0.5), ("Data", 1.0), ("Sparse", "lam")]
    rng = np.random.default_rng(2)
    state = _random_state(tempered, rng)
    k, tau, lam = np.array(3.0), np.array(0.7), np.array(1.9)
    expected = (0.5 * reference_energy(smooth, state, {"k": k})
                + reference_energy(data, {"z": state["x"], "y": state["y"]}, {"tau": tau})
                + lam * reference_energy(sparse, state, {}))
    energy = reference_energy(tempered, state, {"Smooth.k": k, "Data.tau": tau, "lam": lam})
    np.testing.assert_allclose(energy, expected, rtol=1e-12)


def test_composite_of_composites_nests_the_names():
    text = (EXAMPLES / "posterior.ebm").read_text() + """
const N = 64
const K = 2
model Extra {
    latent x[N, N] : categorical(K)
    param gamma = 0.3
    energy pull[i in 0..N, j in 0..N] = gamma * [x[i, j] == 0]
}
model Both = Posterior * Extra ^ 3.0
"""
    checked = check_source(text, str(EXAMPLES / "both.ebm"))
    both = lower_program(checked, "Both")
    assert {"Posterior.Prior.beta", "Posterior.Likelihood.eta", "Extra.gamma"} == set(both.params)
    assert "Posterior.Prior.right" in both.terms and "Extra.pull" in both.terms
    posterior, extra = lower_program(checked, "Posterior"), lower_program(checked, "Extra")
    state = _random_state(both, np.random.default_rng(3), batch=2)
    p = {"Prior.beta": np.array(1.1), "Likelihood.eta": np.array(0.4)}
    expected = reference_energy(posterior, state, p) + 3.0 * reference_energy(extra, state, {"gamma": np.array(0.3)})
    got = reference_energy(both, state, {"Posterior." + k: v for k, v in p.items()} | {"Extra.gamma": np.array(0.3)})
    np.testing.assert_allclose(got, expected)


A = """latent x[3] : real
param w = 1.0
energy e = w * x[0]^2
"""
B_MISMATCH = """latent x[4] : real
energy f = x[0]
"""


def test_mismatched_shared_variable_names_both_declarations():
    a = lower_source(A, file="a.ebm")
    b = lower_source(B_MISMATCH, file="b.ebm")
    with pytest.raises(EbmError) as info:
        compose([("A", a, 1.0), ("B", b, 1.0)], "C")
    err = info.value
    assert "'x' is real[3] in A but real[4] in B" in err.message
    assert (err.span.file, err.span.line) == ("b.ebm", 1)
    assert [(s.file, s.line) for s, _ in err.notes] == [("a.ebm", 1)]
    assert "A[" not in (err.hint or "") and "B[x -> x2]" in err.hint
    assert "1 | latent x[4] : real" in str(err)  # the offending line is quoted


def test_domain_mismatch_is_an_error_too():
    a = lower_source(A, file="a.ebm")
    b = lower_source("latent x[3] : real in [0, 1]\nenergy f = x[0]\n", file="b.ebm")
    with pytest.raises(EbmError, match=r"'x' is real\[3\] in A but real in \[0, 1\]\[3\] in B"):
        compose([("A", a, 1.0), ("B", b, 1.0)], "C")


def test_constraints_are_not_weighted_and_weights_scale_energies():
    g = lower_source("""latent z[2] : binary
energy e = z[0] + z[1]
constraint c : z[0] != z[1]
""")
    weighted = compose([("G", g, 2.5)], "W")
    *energy_parts, constraint_t = weighted.templates
    assert [t.name for t in energy_parts] == ["G.e#0", "G.e#1"]
    assert all(isinstance(t.body, ir.Apply) and t.body.fn == "mul" for t in energy_parts)
    assert constraint_t.body is g.templates[-1].body  # untouched: +inf stays +inf, 0 stays 0
    state = {"z": np.array([[0.0, 1.0], [1.0, 1.0]])}
    terms = reference_term_energies(weighted, state, {})
    assert terms["G.e"].tolist() == [2.5, 5.0] and terms["G.c"].tolist() == [0.0, np.inf]


def test_learnable_weight_shared_by_name():
    a = lower_source(A)
    b = lower_source("latent x[3] : real\nenergy f = x[1]\n")
    c = compose([("A", a, "t"), ("B", b, "t")], "C")
    assert set(c.params) == {"A.w", "t"}
    state = {"x": np.array([[2.0, 3.0, 0.0]])}
    params = {"A.w": np.array(1.0), "t": np.array(0.5)}
    assert reference_energy(c, state, params).tolist() == [0.5 * 4.0 + 0.5 * 3.0]


def test_rename_variables_and_params_at_once():
    g = lower_source("""latent x : real
latent y : real
param w = 1.0
energy e = w * x - y
""")
    swapped = rename(g, {"x": "y", "y": "x", "w": "v"})
    assert set(swapped.params) == {"v"} and set(swapped.variables) == {"x", "y"}
    state = {"x": np.array([2.0]), "y": np.array([5.0])}
    assert reference_energy(swapped, state, {"v": np.array(3.0)}).tolist() == [3.0 * 5.0 - 2.0]
    with pytest.raises(EbmError, match="cannot rename 'xx'") as info:
        rename(g, {"xx": "z"})
    assert info.value.hint == "did you mean 'x'?"
    with pytest.raises(EbmError, match="two things the name 'y'"):
        rename(g, {"x": "y"})


def test_observe_marks_variables_and_rejects_params():
    g = lower_source("latent x : real\nlatent y : real\nparam w = 1.0\nenergy e = w * x * y\n")
    observed = observe(g, ["y"])
    assert observed.variables["y"].observed and not observed.variables["x"].observed
    assert not g.variables["y"].observed  # the input graph is unchanged
    with pytest.raises(EbmError, match="'w' is a param, not a variable"):
        observe(g, ["w"])
    with pytest.raises(EbmError, match="cannot observe 'z'"):
        observe(g, ["z"])


def test_latent_undoes_observe_and_rejects_params():
    g = lower_source("latent x : real\nobserved y : real\nparam w = 1.0\nenergy e = w * x * y\n")
    freed = latent(g, ["y"])
    assert not freed.variables["y"].observed and not freed.variables["x"].observed
    assert g.variables["y"].observed  # the input graph is unchanged
    assert not latent(observe(freed, ["x"]), ["x"]).variables["x"].observed
    with pytest.raises(EbmError, match="'w' is a param, not a variable; cannot make latent"):
        latent(g, ["w"])
    with pytest.raises(EbmError, match="cannot make latent 'yy'") as info:
        latent(g, ["yy"])
    assert info.value.hint == "did you mean 'y'?"


def test_init_params_of_a_composite_cover_every_namespaced_param():
    both = lower_program(_program("posterior.ebm"), "Sharper")
    assert set(reference_init_params(both)) == {"Prior.beta", "Likelihood.eta"}


def test_unknown_model_name_suggests_a_close_one():
    with pytest.raises(EbmError, match="no model named 'Posterir'") as info:
        lower_program(_program("posterior.ebm"), "Posterir")
    assert info.value.hint == "did you mean 'Posterior'?"
