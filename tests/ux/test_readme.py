"""README.md's Python example runs as written and prints what its comments say (the
rules of test_tutorial: "# " lines at column 0 are expected output, in order)."""
from __future__ import annotations

import contextlib
import io

import pytest

from .helpers import REPO
from .test_tutorial import expected_output, python_blocks, same_line


def test_readme_example_runs_and_prints_what_it_says(tmp_path, monkeypatch):
    pytest.importorskip("arviz")
    blocks = python_blocks((REPO / "README.md").read_text())
    assert len(blocks) == 1
    (tmp_path / "examples").symlink_to(REPO / "examples")
    monkeypatch.chdir(tmp_path)
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        exec(compile(blocks[0], "README.md example", "exec"), {"__name__": "__readme__"})  # noqa: S102
    printed, position = buffer.getvalue().splitlines(), 0
    for line in expected_output(blocks[0]):
        while position < len(printed) and not same_line(line, printed[position]):
            position += 1
        assert position < len(printed), f"README shows\n  {line}\nwhich was not printed:\n" + "\n".join(printed)
        position += 1
