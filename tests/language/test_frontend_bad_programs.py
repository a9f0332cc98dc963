"""Bad programs: each `bad/**/NAME.ebm` with a `NAME.expected` beside it must fail with
exactly that message -- location, quoted line, caret, expected tokens and hint.

Helper files of multi-file cases (imports) have no `.expected` and are not run alone.
To update a message on purpose, rewrite the `.expected` file by hand and review the diff.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from ebmlang.errors import EbmError
from ebmlang.language import load_program

BAD = Path(__file__).parent / "bad"
CASES = sorted(p.relative_to(BAD) for p in BAD.rglob("*.expected"))


def test_there_are_bad_programs():
    assert len(CASES) >= 40


@pytest.mark.parametrize("case", CASES, ids=lambda p: str(p.with_suffix("")))
def test_bad_program_fails_with_the_expected_message(case, monkeypatch):
    # File names in messages are relative to bad/, so run from there.
    monkeypatch.chdir(BAD)
    program = case.with_suffix(".ebm")
    with pytest.raises(EbmError) as info:
        load_program(program)
    expected = (BAD / case).read_text().rstrip("\n")
    assert str(info.value) == expected
    span = info.value.span
    assert span is not None
    lines = (BAD / span.file).read_text().splitlines()
    assert 1 <= span.line <= len(lines) and 1 <= span.column <= len(lines[span.line - 1]) + 1
