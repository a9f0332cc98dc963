"""Fixtures for the user-experience tests."""
from __future__ import annotations

import pytest


@pytest.fixture
def run_ebm(capsys):
    """Run `ebm ARGS...` in-process; returns (exit status, stdout, stderr)."""
    from ebmlang.cli.commands import main

    def run(*argv: str) -> tuple[int, str, str]:
        status = main([str(a) for a in argv])
        captured = capsys.readouterr()
        return status, captured.out, captured.err

    return run
