"""`ebm` flags do what they say, and bad input gives a located message and exit status 1."""
from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest

from ebmlang.api.io import read_arrays, write_arrays
from ebmlang.cli.commands import COMMAND_HELP, build_parser

from .helpers import EXAMPLES_DIR, REPO

ISING = EXAMPLES_DIR / "ising.ebm"
DENOISE = EXAMPLES_DIR / "denoise.ebm"
# Independent spins in a field: p(s_i = +1) = sigmoid(2 h / T), so E[s_i] = tanh(h / T) exactly.
FIELD_SOURCE = """\
const n = 2000
latent s[n] : spin
param h = 1.0
energy field[i in 0..n] = -h * s[i]
"""


@pytest.fixture
def field_model(tmp_path):
    path = tmp_path / "field.ebm"
    path.write_text(FIELD_SOURCE)
    return path


def assert_user_error(status: int, err: str, *needles: str) -> None:
    assert status == 1
    assert "Traceback" not in err
    assert "error:" in err
    for needle in needles:
        assert needle in err, f"{needle!r} not in:\n{err}"


# --------------------------------------------------------------------------
# flags


@pytest.mark.parametrize("temperature, h", [(1.0, 1.0), (2.0, 1.0), (1.0, 0.25)])
def test_temperature_and_set_change_the_sampled_distribution(field_model, run_ebm, tmp_path, temperature, h):
    out = tmp_path / "draws.npz"
    status, _, err = run_ebm("sample", field_model, "--backend", "numpy", "--chains", 2, "--steps", 12,
                             "--burn-in", 2, "--temperature", temperature, "--set", f"h={h}", "--quiet",
                             "--out", out)
    assert status == 0, err
    spins = read_arrays(out)["s"]
    # 2 x 10 draws x 2000 spins; successive sweeps of independent spins are independent,
    # so the sd of the mean is sqrt((1 - m^2) / 40000) <= 0.005: 0.03 is 6 sd.
    assert abs(spins.mean() - np.tanh(h / temperature)) < 0.03


def test_seed_makes_runs_repeatable(field_model, run_ebm, tmp_path):
    draws = []
    for seed, name in ((3, "a"), (3, "b"), (4, "c")):
        out = tmp_path / f"{name}.npz"
        status, _, err = run_ebm("sample", field_model, "--backend", "numpy", "--chains", 2, "--steps", 3,
                                 "--seed", seed, "--quiet", "--out", out)
        assert status == 0, err
        draws.append(read_arrays(out)["s"])
    np.testing.assert_array_equal(draws[0], draws[1])
    assert not np.array_equal(draws[0], draws[2])


def test_compile_flag_samples_what_eager_torch_samples(field_model, run_ebm, tmp_path):
    draws = []
    for flags in ((), ("--compile",)):
        out = tmp_path / f"draws{len(flags)}.npz"
        status, stdout, err = run_ebm("sample", field_model, "--backend", "torch", "--dtype", "float64", "--chains",
                                      2, "--steps", 4, "--seed", 5, "--quiet", "--out", out, *flags)
        assert status == 0, err
        # Compiling is timed apart from the sampling rate (tests/ux/test_cli_compile_timing.py).
        assert ("compiled in" in stdout and "chain-steps/s after compilation" in stdout) == bool(flags), stdout
        draws.append(read_arrays(out)["s"])
    np.testing.assert_array_equal(draws[0], draws[1])
    status, _, err = run_ebm("sample", field_model, "--backend", "numpy", "--compile", "--steps", 2)
    assert_user_error(status, err, "--compile uses torch.compile, but the backend is numpy", "--backend torch")


def test_burn_in_and_thin_choose_the_recorded_steps(field_model, run_ebm, tmp_path):
    out = tmp_path / "draws.safetensors"
    status, stdout, err = run_ebm("sample", field_model, "--backend", "numpy", "--chains", 3, "--steps", 10,
                                  "--burn-in", 2, "--thin", 2, "--quiet", "--out", out, "--plot",
                                  tmp_path / "trace.png")
    assert status == 0, err
    assert read_arrays(out)["s"].shape == (3, 4, 2000)  # steps 2, 4, 6, 8
    assert (tmp_path / "trace.png").stat().st_size > 1000


def test_energy_of_sampled_draws_matches_the_recorded_energy_trace(run_ebm, tmp_path):
    draws = tmp_path / "draws.npz"
    status, _, err = run_ebm("sample", ISING, "--backend", "numpy", "--chains", 2, "--steps", 5, "--set", "h=0.3",
                             "--quiet", "--out", draws)
    assert status == 0, err
    energies = tmp_path / "energies.npy"
    status, _, err = run_ebm("energy", ISING, "--backend", "numpy", "--set", "h=0.3", "--state", draws,
                             "--out", energies)
    assert status == 0, err
    recorded = read_arrays(draws)["energy"].reshape(-1)  # [chains, draws] -> chains * draws states
    np.testing.assert_allclose(read_arrays(energies)["energies"], recorded, rtol=1e-5)


def test_argmin_respects_set_parameters(run_ebm):
    status, out, err = run_ebm("argmin", ISING, "--backend", "numpy", "--set", "h=-1")
    assert status == 0, err
    # all 1024 spins down: coupling -2 * 1024, field -h * sum(s) = -1024
    assert float(out.split("energy:")[1].split()[0]) == pytest.approx(-3072.0)
    assert "s: shape [32, 32], mean -1" in out


def test_model_flag_selects_a_model_of_the_file(run_ebm):
    for name in ("Posterior", "Sharper"):
        status, out, err = run_ebm("graph", EXAMPLES_DIR / "posterior.ebm", "--model", name)
        assert status == 0, err
        assert f"model {name}" in out


def test_graph_files(run_ebm, tmp_path):
    for name in ("rbm.png", "rbm.json", "rbm.dot"):
        status, out, err = run_ebm("graph", EXAMPLES_DIR / "rbm.ebm", "--out", tmp_path / name)
        assert status == 0, err
        assert (tmp_path / name).stat().st_size > 100
    assert "interaction" in (tmp_path / "rbm.dot").read_text()
    status, _, err = run_ebm("graph", EXAMPLES_DIR / "sudoku.ebm", "--ground", "--out", tmp_path / "g.png")
    assert status == 0, err


def test_fit_history_and_checkpoint(run_ebm, tmp_path):
    field_model = tmp_path / "small_field.ebm"
    field_model.write_text(FIELD_SOURCE.replace("const n = 2000", "const n = 200"))
    rng = np.random.default_rng(0)
    # data with mean spin tanh(0.5) (+- 0.011 over 6400 spins): maximum likelihood moves h
    # from 1.0 towards 0.5
    spins = np.where(rng.random((32, 200)) < (1 + np.tanh(0.5)) / 2, 1, -1)
    data = write_arrays(tmp_path / "spins.npy", {"s": spins})
    status, out, err = run_ebm("fit", field_model, "--backend", "torch", "--data", f"s={data}", "--epochs", 3,
                               "--lr", 0.05, "--batch-size", 16, "--quiet", "--history", tmp_path / "curve.npz",
                               "--out", tmp_path / "fitted.safetensors")
    assert status == 0, err
    curve = read_arrays(tmp_path / "curve.npz")
    assert len(curve["loss"]) == 3
    import ebmlang as ebm

    fitted = ebm.load(tmp_path / "fitted.safetensors", backend="numpy").param_values()["h"]
    assert abs(float(fitted) - 0.5) < abs(1.0 - 0.5)


@pytest.mark.parametrize("command", sorted(COMMAND_HELP))
def test_help_has_an_example(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args([command, "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert "examples:" in text and f"ebm {command} examples/" in text


# --------------------------------------------------------------------------
# errors


def test_missing_model_file(run_ebm, tmp_path):
    status, _, err = run_ebm("sample", tmp_path / "nope.ebm")
    assert_user_error(status, err, "no such", "nope.ebm")


def test_syntax_error_is_located_with_a_caret(run_ebm, tmp_path):
    bad = tmp_path / "bad.ebm"
    bad.write_text("latent x : real\nenergy e = x ^^ 2\n")
    for command in ("graph", "plan", "sample", "argmin", "energy"):
        status, _, err = run_ebm(command, bad)
        assert_user_error(status, err, "bad.ebm:2:", "^")


def test_missing_observed_value_names_the_flag(run_ebm):
    status, _, err = run_ebm("argmin", DENOISE, "--backend", "numpy")
    assert_user_error(status, err, "denoise.ebm:4:", "'y' is declared observed", "--observe y=")


def test_observed_data_of_the_wrong_shape_points_at_the_declaration(run_ebm, tmp_path):
    path = write_arrays(tmp_path / "y.npy", {"y": np.zeros((3, 3), dtype=np.int64)})
    status, _, err = run_ebm("argmin", DENOISE, "--backend", "numpy", "--observe", f"y={path}")
    assert_user_error(status, err, "denoise.ebm:4:", "shape (3, 3)", "[64, 64]")


def test_observing_an_unknown_variable_suggests_one(run_ebm, tmp_path):
    path = write_arrays(tmp_path / "y.npy", {"y": np.zeros((64, 64), dtype=np.int64)})
    status, _, err = run_ebm("argmin", DENOISE, "--backend", "numpy", "--observe", f"yy={path}")
    assert_user_error(status, err, "'yy'", "did you mean 'y'")
    status, _, err = run_ebm("plan", DENOISE, "--observe", "yy")
    assert_user_error(status, err, "did you mean 'y'")


def test_malformed_flags(run_ebm):
    status, _, err = run_ebm("sample", ISING, "--observe", "s")
    assert_user_error(status, err, "--observe NAME=FILE")
    status, _, err = run_ebm("sample", ISING, "--set", "J=strong")
    assert_user_error(status, err, "--set PARAM=NUMBER")
    status, _, err = run_ebm("sample", ISING, "--backend", "numpy", "--set", "JJ=1")
    assert_user_error(status, err, "no parameter 'JJ'", "did you mean 'J'")
    status, _, err = run_ebm("sample", ISING, "--chains", 0)
    assert_user_error(status, err, "--chains must be positive")
    status, _, err = run_ebm("sample", ISING, "--backend", "numpy", "--method", "hmc")
    assert_user_error(status, err, "method 'hmc' does not apply", "gibbs")
    status, _, err = run_ebm("graph", ISING, "--ground")
    assert_user_error(status, err, "--ground applies to drawings")
    status, _, err = run_ebm("energy", ISING, "--backend", "numpy")
    assert_user_error(status, err, "no state given")


def test_numpy_backend_without_gradients_names_the_fix(run_ebm, tmp_path):
    status, _, err = run_ebm("sample", EXAMPLES_DIR / "ring.ebm", "--backend", "numpy")
    assert_user_error(status, err, "continuous variables x", "--backend torch")
    status, _, err = run_ebm("argmin", EXAMPLES_DIR / "gaussian.ebm", "--backend", "numpy")
    assert_user_error(status, err, "--backend torch")
    data = write_arrays(tmp_path / "s.npy", {"s": np.ones((2, 32, 32))})
    status, _, err = run_ebm("fit", ISING, "--backend", "numpy", "--data", f"s={data}")
    assert_user_error(status, err, "fitting needs gradients", "--backend torch")
    # a continuous variable that is observed needs no gradients
    point = write_arrays(tmp_path / "x.npy", {"x": np.zeros(64)})
    status, out, err = run_ebm("argmin", EXAMPLES_DIR / "classifier.ebm", "--backend", "numpy",
                               "--observe", f"x={point}")
    assert status == 0, err


def test_unknown_output_format(run_ebm, tmp_path):
    status, _, err = run_ebm("argmin", ISING, "--backend", "numpy", "--out", tmp_path / "state.csv")
    assert_user_error(status, err, ".npy, .npz or .safetensors")


def test_fit_checkpoints_must_be_safetensors(run_ebm, tmp_path):
    data = write_arrays(tmp_path / "s.npy", {"s": np.ones((2, 32, 32))})
    status, _, err = run_ebm("fit", ISING, "--data", f"s={data}", "--epochs", 1, "--quiet",
                             "--out", tmp_path / "ckpt.npz")
    assert_user_error(status, err, "ckpt.safetensors")


def test_unknown_model_name(run_ebm):
    status, _, err = run_ebm("plan", EXAMPLES_DIR / "posterior.ebm", "--model", "Posterio")
    assert_user_error(status, err, "Posterio")


def test_usage_errors_exit_with_status_2(capsys):
    from ebmlang.cli.commands import main

    with pytest.raises(SystemExit) as exit_:
        main(["fit", str(ISING)])  # --data is required
    assert exit_.value.code == 2
    assert "--data" in capsys.readouterr().err


def test_a_real_process_prints_the_located_error_without_a_traceback():
    result = subprocess.run([sys.executable, "-m", "ebmlang.cli.commands", "sample", str(DENOISE),
                             "--backend", "numpy"],
                            capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 1
    assert "denoise.ebm:4:1: error: 'y' is declared observed" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_ebm_entry_point_has_these_commands():
    """ebmlang/cli/entry.py must call `register` (see ebmlang/cli/commands.py) in its build_parser."""
    from ebmlang.cli import build_parser as ebm_parser

    parser = ebm_parser()
    for command in COMMAND_HELP:
        args = parser.parse_args([command, str(ISING)] + (["--data", "x.npz"] if command == "fit" else []))
        assert args.run.__module__ in ("ebmlang.cli.commands", "ebmlang.cli.marginals_command"), command


def test_backends_agree_on_the_energy_of_a_state(run_ebm, tmp_path):
    point = write_arrays(tmp_path / "point.npy", {"x": np.array([0.5, 2.0])})
    # 1/2 (x - mu)^T P (x - mu) with x - mu = (-0.5, 3): 0.5 * (2 * 0.25 + 2 * 1.2 * 1.5 + 9) = 6.55
    for backend in ("numpy", "torch", "jax"):
        status, out, err = run_ebm("energy", EXAMPLES_DIR / "gaussian.ebm", "--backend", backend,
                                   "--value", f"x={point}")
        assert status == 0, err
        assert float(out.split("[")[1].split("]")[0]) == pytest.approx(6.55, rel=1e-5), backend


# --------------------------------------------------------------------------
# argmin on a batch of observations, exact methods and their time limit


def test_argmin_answers_every_observed_row(run_ebm, tmp_path):
    from ebmlang.api.model import load

    rows = np.random.default_rng(2).integers(0, 2, size=(3, 64, 64)).astype(float)
    np.save(tmp_path / "noisy.npy", rows)
    out = tmp_path / "clean.npz"
    status, text, err = run_ebm("argmin", DENOISE, "--backend", "numpy", "--observe",
                                f"y={tmp_path / 'noisy.npy'}", "--out", out)
    assert status == 0, err
    assert "energy per observed row" in text
    clean = read_arrays(out)["x"]
    assert clean.shape == (3, 64, 64)
    model = load(DENOISE, backend="numpy")
    for r in range(3):
        single = model.argmin(observed={"y": rows[r]})
        np.testing.assert_array_equal(clean[r], single["x"])


def test_argmin_time_limit_is_checked_and_heuristic_failures_say_what_to_try(run_ebm, tmp_path):
    queens = EXAMPLES_DIR / "queens.ebm"
    status, _, err = run_ebm("argmin", queens, "--backend", "numpy", "--time-limit", "-1")
    assert_user_error(status, err, "--time-limit must be a positive number")
    status, text, err = run_ebm("argmin", queens, "--backend", "numpy", "--time-limit", "30")
    assert status == 0, err
    assert "method: ilp" in text and "energy: 0" in text
    status, _, err = run_ebm("argmin", queens, "--backend", "numpy", "--method", "icm")
    assert_user_error(status, err, "icm stopped at a labelling that breaks", "method='ilp'")


# --------------------------------------------------------------------------
# hostile command lines: exit status 1 (input) or 2 (usage), never a traceback


def test_bad_files_and_values_on_the_command_line(run_ebm, tmp_path):
    latin = tmp_path / "latin.ebm"
    latin.write_bytes("latent x[2] : real\nenergy e = x[0]^2 # café\n".encode("latin-1"))
    status, _, err = run_ebm("sample", latin, "--backend", "numpy")
    assert_user_error(status, err, "latin.ebm:2:", "not UTF-8")
    folder = tmp_path / "folder.ebm"
    folder.mkdir()
    status, _, err = run_ebm("plan", folder)
    assert_user_error(status, err, "is a directory")
    np.save(tmp_path / "empty.npy", np.zeros((0, 64, 64)))
    status, _, err = run_ebm("argmin", DENOISE, "--backend", "numpy", "--observe", f"y={tmp_path / 'empty.npy'}")
    assert_user_error(status, err, "has no rows")
    status, _, err = run_ebm("energy", DENOISE, "--backend", "numpy", "--value", f"y={tmp_path / 'empty.npy'}",
                             "--value", f"x={tmp_path / 'empty.npy'}")
    assert_user_error(status, err, "has no rows")
    status, _, err = run_ebm("sample", ISING, "--backend", "numpy", "--steps", 2, "--temperature", "nan")
    assert_user_error(status, err, "temperature must be a positive, finite number")
    zero_scale = tmp_path / "scale.ebm"
    zero_scale.write_text("latent x : real\nparam s = 0\nenergy e = (x / s)^2\n")
    np.save(tmp_path / "zero.npy", np.array(0.0))
    status, _, err = run_ebm("energy", zero_scale, "--backend", "numpy", "--value", f"x={tmp_path / 'zero.npy'}")
    assert_user_error(status, err, "scale.ebm:3:", "energy term 'e' is nan")


def test_output_names_are_checked_before_any_work(run_ebm, tmp_path):
    status, out, err = run_ebm("sample", ISING, "--backend", "numpy", "--steps", 2, "--plot", tmp_path / "t.xyz")
    assert_user_error(status, err, "--plot", "cannot write a '.xyz' file")
    assert out == ""                                   # refused before sampling printed anything
    status, out, err = run_ebm("argmin", DENOISE, "--backend", "numpy", "--out", tmp_path / "x.txt")
    assert_user_error(status, err, "cannot write a '.txt' file")
    assert out == ""
    (tmp_path / "file").write_text("")
    status, _, err = run_ebm("argmin", DENOISE, "--backend", "numpy", "--out", tmp_path / "file" / "x.npz")
    assert_user_error(status, err, "is a file, not a folder")
    # A missing folder is created.
    status, _, err = run_ebm("sample", ISING, "--backend", "numpy", "--steps", 2, "--out",
                             tmp_path / "new" / "draws.npz")
    assert status == 0 and (tmp_path / "new" / "draws.npz").exists(), err


def test_a_negative_seed_is_a_usage_error():
    result = subprocess.run([sys.executable, "-m", "ebmlang.cli", "sample", str(ISING), "--seed", "-1"],
                            capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 2
    assert "a seed is a whole number >= 0" in result.stderr and "Traceback" not in result.stderr


def test_a_closed_pipe_ends_the_command_quietly():
    # ~2,000 lines of output into a reader that stops after the first one.
    files = [str(EXAMPLES_DIR / "ising.ebm")] * 2000
    process = subprocess.Popen([sys.executable, "-m", "ebmlang.cli", "check", *files], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, cwd=REPO)
    assert process.stdout.readline().startswith(b"OK")
    process.stdout.close()
    err = process.stderr.read().decode()
    assert process.wait() == 0 and "Traceback" not in err and "BrokenPipe" not in err


# --------------------------------------------------------------------------
# marginals


def test_marginals_writes_exact_answers_per_observed_row(run_ebm, tmp_path, capsys):
    from ebmlang.api.model import load

    hmm = EXAMPLES_DIR / "hmm.ebm"
    series = np.random.default_rng(4).normal(size=(2, 100))
    np.save(tmp_path / "series.npy", series)
    out = tmp_path / "post.npz"
    status, text, err = run_ebm("marginals", hmm, "--backend", "numpy", "--observe", f"x={tmp_path / 'series.npy'}",
                                "--draws", "5", "--out", out)
    assert status == 0, err
    assert "exact: tree sum-product, width 1" in text and "log Z per observed row" in text
    written = read_arrays(out)
    assert written["z"].shape == (2, 100, 3) and written["z_draws"].shape == (2, 5, 100)
    expected = load(hmm, backend="numpy").marginals(observed={"x": series})
    np.testing.assert_allclose(written["z"], expected.probs["z"], atol=1e-6)
    np.testing.assert_allclose(written["log_z"], expected.log_z, rtol=1e-6)
    np.testing.assert_array_equal(written["z_mode"], expected.mode["z"])
    for flag, value, message in (("--beta", "0", "--beta must be a positive number"),
                                 ("--draws", "-1", "--draws is a whole number >= 0")):
        with pytest.raises(SystemExit) as exit_:   # usage errors exit with status 2
            run_ebm("marginals", hmm, "--observe", f"x={tmp_path / 'series.npy'}", flag, value)
        assert exit_.value.code == 2 and message in capsys.readouterr().err
    status, text, _ = run_ebm("plan", hmm, "--query", "marginals", "--observe", "x")
    assert status == 0 and "tree sum-product" in text


SOLVED_9X9 = np.array([
    [5, 3, 4, 6, 7, 8, 9, 1, 2], [6, 7, 2, 1, 9, 5, 3, 4, 8], [1, 9, 8, 3, 4, 2, 5, 6, 7],
    [8, 5, 9, 7, 6, 1, 4, 2, 3], [4, 2, 6, 8, 5, 3, 7, 9, 1], [7, 1, 3, 9, 2, 4, 8, 5, 6],
    [9, 6, 1, 5, 3, 7, 2, 8, 4], [2, 8, 7, 4, 1, 9, 6, 3, 5], [3, 4, 5, 2, 8, 6, 1, 7, 9]])


def test_argmin_and_sample_print_small_integer_grids_as_grids(run_ebm, tmp_path):
    # One blank per row (on the diagonal): the givens fix every blank, so the answer is
    # the solved grid, and it must be printed as the grid, row by row.
    givens = SOLVED_9X9 * (1 - np.eye(9, dtype=int))
    source = (EXAMPLES_DIR / "sudoku.ebm").read_text().replace("const n = 2", "const n = 3")
    source = source.replace("[[1, 0, 0, 0], [0, 0, 3, 0], [0, 4, 0, 0], [0, 0, 0, 2]]",
                            "[" + ", ".join("[" + ", ".join(map(str, row)) + "]" for row in givens) + "]")
    path = tmp_path / "sudoku9.ebm"
    path.write_text(source)
    status, out, err = run_ebm("argmin", path, "--backend", "numpy")
    assert status == 0, err
    assert "mean" not in out.split("x =")[1]
    for row in SOLVED_9X9:
        assert "[" + ", ".join(map(str, row)) + "]" in out, out
    # A sampled grid: the last state of chain 0 beside the summary.
    status, out, err = run_ebm("sample", field_model_source(tmp_path), "--backend", "numpy", "--chains", 2,
                               "--steps", 4, "--quiet")
    assert status == 0, err
    shown = out.split("s (chain 0, last draw) =")[1].split("time:")[0]
    rows = [re.findall(r"-?\d+", line) for line in shown.splitlines() if line.strip()]
    assert len(rows) == 3 and all(len(row) == 3 and set(row) <= {"-1", "1"} for row in rows), out


def field_model_source(tmp_path):
    path = tmp_path / "spins3x3.ebm"
    path.write_text("latent s[3, 3] : spin\nparam h = 0.5\nenergy f[i in 0..3, j in 0..3] = -h * s[i, j]\n")
    return path
