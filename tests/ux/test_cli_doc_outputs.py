"""docs/cli.md prints what the commands print.

The data block (the ```python block) runs in a scratch folder that sees the repository's
examples/; then every `$ ebm ...` line of the ```console blocks runs there, in order (later
commands read what earlier ones wrote), in-process. Each line shown under a command must
match one printed line (stdout and stderr), in order, as in test_tutorial: numbers within a
tolerance, "..." alone skips, a line ending in "..." matches by prefix. Timings (`time:`,
`in 1.3 s`, chain-steps/s) differ run to run and are compared with those numbers left out.
"""
from __future__ import annotations

import contextlib
import io
import re
import shlex

import pytest

from .helpers import REPO
from .test_tutorial import same_line

CLI_DOC = REPO / "docs" / "cli.md"
# A duration in seconds, or a rate in chain-steps/s: left out of the comparison.
# The runs are deterministic: numbers agree to the digits printed, up to float noise in
# the last one between platforms (four significant digits: a relative 1e-3).
RELATIVE_TOLERANCE = 1e-3
ABSOLUTE_TOLERANCE = 1e-3
TIMING = re.compile(r"\d+(\.\d+)?(?= s\b)|\d+(\.\d+)?(?= chain-steps/s)")


def data_block(text: str) -> str:
    blocks = re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)
    assert len(blocks) == 1, "docs/cli.md should hold one python block: the data files"
    return blocks[0]


def documented_runs(text: str) -> list[tuple[list[str], list[str]]]:
    """(argv after `ebm`, the output lines shown under it) for every `$ ebm` line."""
    runs: list[tuple[list[str], list[str]]] = []
    for block in re.findall(r"^```console\n(.*?)^```", text, flags=re.S | re.M):
        for line in block.splitlines():
            if line.startswith("$ ebm "):
                runs.append((shlex.split(line[len("$ ebm "):]), []))
            elif runs and line.strip() and line.strip() != "...":
                runs[-1][1].append(line)
    return runs


def shown_line_matches(expected: str, printed: str) -> bool:
    return same_line(TIMING.sub("_", expected), TIMING.sub("_", printed), RELATIVE_TOLERANCE, ABSOLUTE_TOLERANCE)


def test_timings_are_compared_without_their_numbers():
    assert shown_line_matches("  time: 0.41 s (9761 chain-steps/s)", "  time: 2.5 s (100 chain-steps/s)")
    assert shown_line_matches("fitted rbm on 300 examples in 1.31 s", "fitted rbm on 300 examples in 9 s")
    assert not shown_line_matches("fitted rbm on 300 examples in 1.31 s", "fitted rbm on 30 examples in 9 s")
    assert not shown_line_matches("  s: shape [32, 32], mean 0.00887, sd 1", "  s: shape [32, 32], mean 0.4, sd 1")
    assert not shown_line_matches("  interaction  1024 ground", "  interaction  1000 ground")
    assert shown_line_matches("log Z: 18886.5", "log Z: 18886.6")  # the last digit's noise


def test_every_documented_command_prints_what_the_doc_shows(tmp_path, monkeypatch):
    pytest.importorskip("sklearn")
    from ebmlang.cli.entry import main

    text = CLI_DOC.read_text()
    (tmp_path / "examples").symlink_to(REPO / "examples")
    monkeypatch.chdir(tmp_path)
    exec(compile(data_block(text), "docs/cli.md data block", "exec"), {"__name__": "__cli_doc__"})  # noqa: S102
    runs = documented_runs(text)
    assert len(runs) >= 20
    for argv, shown in runs:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main(argv)
        printed = (out.getvalue() + err.getvalue()).splitlines()
        position = 0
        for line in shown:
            while position < len(printed) and not shown_line_matches(line, printed[position]):
                position += 1
            assert position < len(printed), (f"`ebm {' '.join(argv)}`: docs/cli.md shows\n  {line}\n"
                                             "which it did not print; it printed:\n" + "\n".join(printed))
            position += 1
