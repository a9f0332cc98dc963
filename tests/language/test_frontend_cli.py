"""`ebm check`: summaries on success, located errors and exit status 1 on failure."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ebmlang.cli import entry as cli

ROOT = Path(__file__).parents[2]
EXAMPLES = ROOT / "examples"


def test_check_prints_a_summary_of_the_default_model(capsys):
    assert cli.main(["check", str(EXAMPLES / "rbm.ebm")]) == 0
    out = capsys.readouterr().out
    assert out == (f"OK: {EXAMPLES / 'rbm.ebm'}: model rbm: 2 variable groups (v[64] binary observed, "
                   "h[16] binary latent), 3 params (W[64, 16], b[64], c[16]), 2 terms (interaction, biases)\n")


def test_check_summarises_composites_and_other_models_of_the_file(capsys):
    assert cli.main(["check", str(EXAMPLES / "posterior.ebm")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"OK: {EXAMPLES / 'posterior.ebm'}: model Sharper = Prior ^ 2 * Likelihood: "
                               "2 variable groups (x[64, 64] categorical(2) latent, "
                               "y[64, 64] categorical(2) observed), 2 params (Prior.beta, Likelihood.eta), "
                               "3 terms (Prior.right, Prior.down, Likelihood.data)")
    assert lines[1].startswith("    also model Posterior = Prior * Likelihood:")
    assert len(lines) == 2


def test_check_reports_errors_with_location_and_exit_status_1(tmp_path, capsys):
    bad = tmp_path / "bad.ebm"
    bad.write_text("param sigma = 1\nlatent x : real\nenergy e = x^2 / sigmaa\n")
    good = EXAMPLES / "ising.ebm"
    assert cli.main(["check", str(bad), str(good)]) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith(f"{bad}:3:18: error: unknown name 'sigmaa'\n")
    assert "hint: did you mean 'sigma'?" in captured.err and "Traceback" not in captured.err
    assert captured.out.startswith(f"OK: {good}: model ising:"), "later files are still checked"


def test_check_prints_warnings_to_stderr(tmp_path, capsys):
    path = tmp_path / "w.ebm"
    path.write_text("latent x : real\nlatent y : real\nenergy e = x^2\n")
    assert cli.main(["check", str(path)]) == 0
    assert capsys.readouterr().err == f"{path}:2:1: warning: variable 'y' is not used by any term\n"


def test_missing_file_and_allow_root(tmp_path, capsys):
    assert cli.main(["check", str(tmp_path / "nope.ebm")]) == 1
    assert capsys.readouterr().err == f"error: no such file: {tmp_path / 'nope.ebm'}\n"
    (tmp_path / "shared.ebm").write_text("latent z : real\nenergy e = z^2\n")
    (tmp_path / "sub").mkdir()
    main = tmp_path / "sub" / "main.ebm"
    main.write_text('import "../shared.ebm" as Shared\nmodel M = Shared * Shared\n')
    assert cli.main(["check", str(main)]) == 1
    assert "leaves the allowed directory" in capsys.readouterr().err
    assert cli.main(["check", str(main), "--allow-root", str(tmp_path)]) == 0


def test_a_subcommand_is_one_registered_function(capsys):
    @cli.subcommand("echo-test", "print the argument", cli.argument("word"))
    def echo(args):
        print(args.word.upper())
        return 3

    try:
        assert cli.main(["echo-test", "hi"]) == 3
        assert capsys.readouterr().out == "HI\n"
    finally:
        del cli.SUBCOMMANDS["echo-test"]


def test_usage_errors_exit_with_argparse_status():
    with pytest.raises(SystemExit) as info:
        cli.main([])
    assert info.value.code == 2


def test_the_module_runs_as_a_program_without_traceback(tmp_path):
    bad = tmp_path / "bad.ebm"
    bad.write_text("latent x = real\n")
    result = subprocess.run([sys.executable, "-m", "ebmlang.cli", "check", str(bad)],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 1
    assert result.stderr.startswith(f"{bad}:1:10: error: a variable's domain follows ':'")
    assert "Traceback" not in result.stderr
