"""Every `ebm` command on every example, at small sizes, with checked outputs."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import ebmlang as ebm
from ebmlang.api.io import read_arrays, write_arrays

from .helpers import EXAMPLES, backend_for, random_values

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def models():
    """Each example loaded once (numpy backend: only its graph is used here)."""
    return {path.stem: ebm.load(path, backend="numpy") for path in EXAMPLES}


def observe_flags(graph, folder: Path, flag: str = "--observe", seed: int = 0) -> list[str]:
    """`--observe name=file.npy` for every observed group, with valid random values."""
    rng = np.random.default_rng(seed)
    flags = []
    for name, var in graph.observed.items():
        path = write_arrays(folder / f"observed_{name}.npy", {name: random_values(var, (), rng)})
        flags += [flag, f"{name}={path}"]
    return flags


def assert_in_domain(var, values: np.ndarray) -> None:
    if var.domain.is_discrete:
        assert np.isin(values, var.domain.values).all(), var.name
    elif var.domain.kind == "bounded":
        assert ((values >= var.domain.low) & (values <= var.domain.high)).all(), var.name
    assert np.isfinite(values).all()


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_graph_and_plan(path, models, run_ebm):
    graph = models[path.stem].graph
    status, out, err = run_ebm("graph", path)
    assert status == 0, err
    assert graph.name in out
    assert all(name in out for name in graph.variables)
    status, out, err = run_ebm("graph", path, "--format", "dot")
    assert status == 0 and out.lstrip().startswith("graph"), err
    observed = [a for name in graph.observed for a in ("--observe", name)]
    status, out, err = run_ebm("plan", path, *observed)
    assert status == 0, err
    assert out.startswith("plan for sample")
    assert all(name in out for name in graph.latent)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_sample_writes_draws_of_every_latent_group_in_their_domains(path, models, run_ebm, tmp_path):
    graph = models[path.stem].graph
    out_file = tmp_path / "draws.npz"
    status, out, err = run_ebm("sample", path, "--backend", backend_for(graph), "--chains", 2, "--steps", 4,
                               "--burn-in", 1, "--quiet", "--out", out_file, *observe_flags(graph, tmp_path))
    assert status == 0, err
    assert "Samples: 2 chains x 3 draws" in out
    draws = read_arrays(out_file)
    assert set(draws) == set(graph.latent) | {"energy"}
    assert draws["energy"].shape == (2, 3)
    for name, var in graph.latent.items():
        assert draws[name].shape == (2, 3) + tuple(var.shape)
        assert_in_domain(var, draws[name])


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_argmin_then_energy_of_the_written_state_agree(path, models, run_ebm, tmp_path):
    """`ebm energy` of the state `ebm argmin` wrote gives the energy argmin reported."""
    graph = models[path.stem].graph
    backend = backend_for(graph)
    state_file = tmp_path / "argmin.safetensors"
    status, out, err = run_ebm("argmin", path, "--backend", backend, "--out", state_file,
                               *observe_flags(graph, tmp_path))
    assert status == 0, err
    reported = float(out.split("energy:")[1].split()[0])
    state = read_arrays(state_file)
    assert set(state) == set(graph.latent)
    for name, var in graph.latent.items():
        assert state[name].shape == tuple(var.shape)
        assert_in_domain(var, state[name])
    energy_file = tmp_path / "energy.npz"
    status, out, err = run_ebm("energy", path, "--backend", backend, "--state", state_file, "--terms",
                               "--out", energy_file, *observe_flags(graph, tmp_path, "--value"))
    assert status == 0, err
    energies = read_arrays(energy_file)
    assert energies["energy"].shape == (1,)
    # float32 backends: the printed argmin energy has 6 significant digits
    np.testing.assert_allclose(energies["energy"][0], reported, rtol=1e-5, atol=1e-4)
    terms = [k for k in energies if k.startswith("term.")]
    assert {k[len("term."):] for k in terms} == set(graph.terms)
    np.testing.assert_allclose(sum(energies[k] for k in terms), energies["energy"], rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_fit_writes_a_checkpoint_every_command_can_load(path, models, run_ebm, tmp_path):
    graph = models[path.stem].graph
    rng = np.random.default_rng(1)
    data = write_arrays(tmp_path / "data.npz", {name: random_values(var, (6,), rng)
                                                for name, var in graph.variables.items()})
    checkpoint = tmp_path / "fitted.safetensors"
    status, out, err = run_ebm("fit", path, "--backend", "torch", "--data", data, "--epochs", 1,
                               "--batch-size", 3, "--quiet", "--out", checkpoint)
    if not graph.params:
        assert status == 1
        assert "has no parameters to fit" in err and "Traceback" not in err
        return
    assert status == 0, err
    assert f"fitted {graph.name} on 6 examples" in out
    fitted = ebm.load(checkpoint, backend="numpy")
    expected = models[path.stem].param_values()
    assert {k: v.shape for k, v in fitted.param_values().items()} == {k: v.shape for k, v in expected.items()}
    status, out, err = run_ebm("plan", checkpoint)
    assert status == 0 and out.startswith("plan for sample"), err
