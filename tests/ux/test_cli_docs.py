"""docs/cli.md and the --help examples stay in step with the commands' real flags."""
from __future__ import annotations

import shlex

import pytest

from ebmlang.cli.commands import COMMAND_HELP, EXAMPLES, build_parser

from .helpers import REPO

CLI_DOC = (REPO / "docs" / "cli.md").read_text()


def documented_commands(text: str, prefix: str) -> list[list[str]]:
    """Argument lists of the example lines (`$ ebm ...` in the docs, `  ebm ...` in epilogs)."""
    lines = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith(prefix):
            argv = shlex.split(line[len(prefix):], comments=True)
            if argv and argv[0] != "check":  # `ebm check` belongs to ebmlang/cli/entry.py
                lines.append(argv)
    return lines


def test_every_command_is_documented_with_an_example():
    commands = {argv[0] for argv in documented_commands(CLI_DOC, "$ ebm ")}
    assert commands == set(COMMAND_HELP)
    for command in COMMAND_HELP:
        assert f"## ebm {command}" in CLI_DOC


@pytest.mark.parametrize("argv", documented_commands(CLI_DOC, "$ ebm "), ids=" ".join)
def test_documented_examples_use_real_flags(argv):
    args = build_parser().parse_args(argv)
    assert args.command == argv[0]


@pytest.mark.parametrize("command", sorted(EXAMPLES))
def test_help_examples_use_real_flags(command):
    examples = documented_commands(EXAMPLES[command], "ebm ")
    assert command in {argv[0] for argv in examples}
    for argv in examples:
        assert build_parser().parse_args(argv).command == argv[0]
