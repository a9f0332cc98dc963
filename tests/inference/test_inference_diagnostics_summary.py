"""Samples.summary(): R-hat and ESS as ArviZ computes them, named ArviZ dims, and the
convergence warnings (Vehtari et al. 2021 thresholds) of the API and of `ebm sample`."""
from __future__ import annotations

import contextlib
import io
import re
import warnings

import arviz as az
import numpy as np
import pytest

import ebmlang as ebm
from ebmlang.inference.results import Samples
from ebmlang.inference.summary import ConvergenceWarning, arviz_dims, declared_axes

SOURCE = """
const L = 3
const K = 2
param J = 0.2
latent s[L, L] : spin
latent a[L, K, 4] : spin
latent t : spin
energy coupling[i in 0..L, j in 0..L] = -J * s[i, j] * (s[(i+1) % L, j] + t)
energy other[i in 0..L, k in 0..K, m in 0..4] = -J * a[i, k, m] * t
"""


def _gaussian_samples(chains=4, draws=500, shift=0.0, seed=0) -> Samples:
    """Independent N(0, 1) draws (well mixed); chain c moved by c * shift (not mixed)."""
    rng = np.random.default_rng(seed)
    offsets = shift * np.arange(chains)
    x = rng.normal(size=(chains, draws, 2, 3)) + offsets[:, None, None, None]
    y = rng.normal(size=(chains, draws)) + offsets[:, None]
    energy = 0.5 * (x ** 2).sum(axis=(2, 3)) + 0.5 * y ** 2
    return Samples({"x": x, "y": y}, energy, None)


def test_rhat_and_ess_are_arvizs_own_on_the_same_draws():
    rng = np.random.default_rng(3)
    # An AR(1) chain per element: ESS well below the number of draws, R-hat near 1.
    noise = rng.normal(size=(4, 300, 2, 3))
    x = np.zeros_like(noise)
    for t in range(1, 300):
        x[:, t] = 0.9 * x[:, t - 1] + noise[:, t]
    samples = Samples({"x": x}, rng.normal(size=(4, 300)), None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        row = samples.summary().variables["x"]
    idata = samples.to_arviz()
    assert row.rhat == pytest.approx(float(az.rhat(idata)["x"].max()), rel=1e-12)
    assert row.ess_bulk == pytest.approx(float(az.ess(idata, method="bulk")["x"].min()), rel=1e-12)
    assert row.ess_tail == pytest.approx(float(az.ess(idata, method="tail")["x"].min()), rel=1e-12)
    assert row.mean == pytest.approx(float(x.mean())) and row.sd == pytest.approx(float(x.std()))
    energy = samples.summary(warn=False).energy
    assert energy.rhat == pytest.approx(float(az.rhat(idata.sample_stats)["energy"]), rel=1e-12)
    assert samples.summary(warn=False).to_dict()["x"]["ess_bulk"] == row.ess_bulk


def test_dims_are_named_after_the_declaration_for_a_2d_variable_and_a_scalar():
    model = ebm.loads(SOURCE, backend="numpy")
    axes = declared_axes(model.graph)
    assert axes == {"s": ("L", "L"), "a": ("L", "K", None), "t": ()}
    samples = model.sample(chains=2, steps=20, seed=0, progress=False)
    samples.axis_names = axes
    posterior = samples.to_arviz().posterior
    assert posterior["s"].dims == ("chain", "draw", "L", "L_1")
    assert posterior["a"].dims == ("chain", "draw", "L", "K", "a_dim_2")
    assert posterior["t"].dims == ("chain", "draw")
    assert list(posterior["L"].values) == [0, 1, 2] and list(posterior["a_dim_2"].values) == [0, 1, 2, 3]


def test_without_a_declaration_dims_follow_arvizs_convention_with_coords():
    posterior = _gaussian_samples().to_arviz().posterior
    assert posterior["x"].dims == ("chain", "draw", "x_dim_0", "x_dim_1")
    assert list(posterior["x_dim_1"].values) == [0, 1, 2]


def test_a_name_meaning_two_sizes_falls_back_to_the_convention():
    dims, coords = arviz_dims({"u": (3,), "v": (4,)}, {"u": ("N",), "v": ("N",)})
    assert dims == {"u": ["N"], "v": ["v_dim_0"]}
    assert len(coords["N"]) == 3 and len(coords["v_dim_0"]) == 4


def test_chains_in_different_places_warn_once_per_variable():
    samples = _gaussian_samples(shift=3.0)
    with pytest.warns(ConvergenceWarning) as caught:
        summary = samples.summary()
    messages = [str(w.message) for w in caught if w.category is ConvergenceWarning]
    assert summary.variables["x"].rhat > 1.01
    assert sum("'x': R-hat" in m for m in messages) == 1  # one warning for 6 elements
    assert any("'y': R-hat" in m and "more steps" in m for m in messages)


def test_few_draws_warn_about_ess():
    samples = _gaussian_samples(draws=40)  # at most 160 independent draws < 400
    with pytest.warns(ConvergenceWarning) as caught:
        samples.summary()
    assert any(re.match(r"'y': ESS \d+ < 400 .*more chains", str(w.message)) for w in caught)


def test_a_well_mixed_gaussian_does_not_warn():
    samples = _gaussian_samples()
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        summary = samples.summary()
    assert summary.problems == () and summary.divergences is None
    assert "divergences" not in str(summary)


def test_divergences_after_warmup_are_shown_and_warned_about():
    samples = _gaussian_samples()
    # As the continuous runner reports them: in all (warm-up included), per chain, after warm-up.
    samples.info.update(divergences=5, divergences_per_chain=[0, 4, 0, 1], divergences_after_warmup=3)
    with pytest.warns(ConvergenceWarning, match="3 divergent transitions after warm-up"):
        summary = samples.summary()
    assert (summary.divergences, summary.divergences_in_all, summary.divergences_per_chain) == (3, 5, (0, 4, 0, 1))
    assert "  divergences: 3 after warm-up (5 in all)" in str(summary).splitlines()


def test_no_divergence_is_no_line_and_no_warning():
    samples = _gaussian_samples()
    samples.info.update(divergences=0, divergences_per_chain=[0, 0, 0, 0], divergences_after_warmup=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        summary = samples.summary()
    assert summary.divergences == 0 and "divergences" not in str(summary)


def test_ebm_sample_prints_rhat_and_ess_and_warns_on_stderr(tmp_path):
    from ebmlang.cli.entry import main

    path = tmp_path / "small.ebm"
    path.write_text(SOURCE)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        assert main(["sample", str(path), "--backend", "numpy", "--chains", "2", "--steps", "12", "-q"]) == 0
    lines = out.getvalue().splitlines()
    assert any(line.startswith("  s: shape [3, 3], mean ") and ", R-hat max " in line
               and ", ESS bulk min " in line and " / tail min " in line for line in lines)
    assert any(line.startswith("  t: shape [], mean ") and ", R-hat " in line and "ESS bulk " in line
               and " / tail " in line for line in lines)
    assert any(line.startswith("  energy: mean ") and ", R-hat " in line for line in lines)
    # 2 chains x 9 draws: far fewer than 100 independent draws per chain.
    assert "warning: 't': ESS" in err.getvalue() and "more chains" in err.getvalue()


def test_a_large_array_is_diagnosed_on_evenly_spaced_elements(monkeypatch):
    import ebmlang.inference.summary as summary_module

    monkeypatch.setattr(summary_module, "MAX_DIAGNOSED_ELEMENTS", 4)
    summary = _gaussian_samples().summary(warn=False)
    assert (summary.variables["x"].diagnosed, summary.variables["x"].size) == (4, 6)
    assert "(on 4 of 6 elements)" in str(summary) and "<table>" in _gaussian_samples()._repr_html_()


def test_python_samples_carry_the_declared_axis_names_into_arviz():
    import ebmlang

    model = ebmlang.loads("const L = 3\nconst K = 2\nlatent s[L, K] : spin\nlatent t : real\n"
                          "energy e = -sum(i in 0..L, k in 0..K) s[i, k] + 0.5 * t^2\n", backend="torch")
    posterior = model.sample(chains=2, steps=8, progress=False).to_arviz().posterior
    assert posterior["s"].dims == ("chain", "draw", "L", "K")
    assert posterior["t"].dims == ("chain", "draw")
    assert list(posterior["s"].coords["L"].values) == [0, 1, 2]
