"""Every flag of every command with hostile values: exit status 0, 1 or 2, never a traceback.

A grid rather than random draws: each command on a valid model, each of its flags with
each of ~30 values (negative, zero, NaN, infinite, empty, unknown names, files that are
not data, folders, devices, wrong suffixes), run in-process.
"""
from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest

from ebmlang.cli.entry import main

from .helpers import EXAMPLES_DIR

COMMANDS = {
    "sample": ("ising.ebm", ["--steps", "3", "--quiet"],
               ["--chains", "--steps", "--burn-in", "--thin", "--temperature", "--method", "--set", "--out", "--plot",
                "--init", "--step-size", "--budget", "--observe", "--seed"]),
    "argmin": ("denoise.ebm", ["--observe", "y={y}"],
               ["--method", "--observe", "--out", "--time-limit", "--set", "--budget", "--seed"]),
    "fit": ("rbm.ebm", ["--data", "v={v}", "--epochs", "1", "--quiet"],
            ["--epochs", "--lr", "--batch-size", "--method", "--data", "--out", "--history", "--checkpoint-dir"]),
    "energy": ("rbm.ebm", ["--value", "v={v}"], ["--state", "--value", "--out", "--set"]),
    "plan": ("rbm.ebm", [], ["--query", "--method", "--observe", "--budget"]),
    "graph": ("rbm.ebm", [], ["--format", "--out"]),
}
VALUES = ["-1", "0", "nan", "inf", "1e30", "abc", "", "J=nan", "W=1", "zz=1", "v={v}", "v={nan}", "h={v}",
          "{tmp}/o.npz", "{tmp}/o.txt", "/dev/null", "{tmp}", "0.5GiB", "1B", "gibbs", "mala", "ilp", "json",
          "{tmp}/g.json", "{readme}", "v={readme}"]


@pytest.mark.parametrize("command", list(COMMANDS))
def test_hostile_flag_values_never_give_a_traceback(command, tmp_path, monkeypatch):
    # Values such as `zz=1` are valid output names: they are written in the test's folder.
    monkeypatch.chdir(tmp_path)
    np.save(tmp_path / "v.npy", np.zeros((3, 64)))
    np.save(tmp_path / "nan.npy", np.full((3, 64), np.nan))
    np.save(tmp_path / "y.npy", np.zeros((64, 64)))
    names = {"v": tmp_path / "v.npy", "nan": tmp_path / "nan.npy", "y": tmp_path / "y.npy", "tmp": tmp_path,
             "readme": EXAMPLES_DIR.parent / "README.md"}
    file, base, flags = COMMANDS[command]
    backend = ["--backend", "numpy"] if command not in ("plan", "graph") else []
    for flag in flags:
        for value in VALUES:
            argv = [command, str(EXAMPLES_DIR / file), *backend, *(a.format(**names) for a in base),
                    flag, value.format(**names)]
            out, err = io.StringIO(), io.StringIO()
            try:
                with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                    status = main(argv)
            except SystemExit as exit_:      # argparse's usage errors
                status = exit_.code
            assert status in (0, 1, 2), argv
            assert "Traceback" not in err.getvalue(), (argv, err.getvalue())
