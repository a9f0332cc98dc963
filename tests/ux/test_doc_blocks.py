"""Every code block of README.md and the docs pages runs, and prints what the page shows.

Pages: README.md and docs/*.md but cli.md and tutorial.md (tested by
test_cli_doc_outputs.py and test_tutorial.py) and benchmarks.md (written by `make bench`).
Blocks without a language are not run: README's two set-up commands (`make demo`,
`make test`, which CI runs) and diagrams. The conventions, the same on every page:

* ```python blocks run in order in one namespace per page, in a scratch folder that sees
  the repository's examples/ (so a block may use what an earlier block defined).
* What a python block prints is shown in the ```text block right after it (nothing but
  blank lines between the two). A python block without one may print anything.
* ```console blocks run their `$ ebm ...` lines in-process, in order, in the same folder;
  the lines under a command, up to the next `$` line, are what it prints (stdout, then
  stderr); lines starting with `#` are comments. In ```bash / ```sh / ```shell blocks
  every line but comments is a command, with nothing shown. Only `ebm` commands run here.
* Shown and printed lines are compared one for one, in order, blank lines left out: a
  line "..." stands for any number of printed lines, a line ending in "..." matches by
  prefix, runs of spaces count as one, integers agree exactly and other numbers to a
  relative 1e-3 (absolute 1e-3 near zero, unless written with an exponent), and
  durations (`1.3 s`, `seconds=1.3`, chain-steps/s) are left out.
* An HTML comment on the line right before a fence says how that block is tested:
    <!-- doc-test: skip (why) -->           not run: compiled and its imports run, and
                                             reported by pytest as skipped, with the why
    <!-- doc-test: rel 0.02 (why) -->       numbers agree to this relative tolerance
    <!-- doc-test: file NAME -->            an ```ebm block, written to NAME in the folder
                                             for the commands after it
    <!-- doc-test: signature MODULE.NAME --> a python block that is a signature: it must
                                             equal inspect.signature of that object
"""
from __future__ import annotations

import ast
import contextlib
import importlib
import inspect
import io
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from .helpers import REPO

DOCS = REPO / "docs"
TESTED_ELSEWHERE = {"cli.md", "tutorial.md", "benchmarks.md"}
PAGES = [REPO / "README.md"] + sorted(path for path in DOCS.glob("*.md") if path.name not in TESTED_ELSEWHERE)
SHELLS = {"console", "bash", "sh", "shell"}
RUNNABLE = {"python"} | SHELLS
# Spellings of code blocks that this test does not run: a page must use the names above.
UNRUN_SPELLINGS = {"py", "python3", "pycon", "ipython", "zsh", "shell-session", "sh-session"}
# Skips are for what one CPU process cannot do (several processes, GPUs, torchrun).
MAX_SKIPPED = 3

RELATIVE_TOLERANCE = 1e-3
ABSOLUTE_TOLERANCE = 1e-3
NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")
DURATION = re.compile(r"\d+(?:\.\d+)?(?= s\b)|\d+(?:\.\d+)?(?= chain-steps/s)|(?<=seconds=)\d+(?:\.\d+)?")
FENCE = re.compile(r"^(\s*)```(\S*)\s*$")
MARKER = re.compile(r"^\s*<!-- doc-test: (.*?) -->\s*$")


@dataclass
class Block:
    """One fenced block of a page: its language, text, the line its fence opens at (1-based),
    the line after its closing fence, and the doc-test marker above it (if any)."""

    language: str
    text: str
    line: int
    end: int
    marker: str = ""

    @property
    def label(self) -> str:
        return f"{self.language} block at line {self.line}"

    def option(self) -> tuple[str, str]:
        """(kind, argument) of the marker: ("skip", why), ("rel", "0.02"), ("file", NAME),
        ("signature", MODULE.NAME), or ("", "")."""
        if not self.marker:
            return "", ""
        kind, _, rest = self.marker.partition(" ")
        if kind == "skip":
            why = re.fullmatch(r"\((.+)\)", rest.strip())
            assert why, f"line {self.line}: a skip says why: <!-- doc-test: skip (why) -->"
            return kind, why.group(1)
        if kind == "rel":
            value = re.fullmatch(r"(\S+) \((.+)\)", rest.strip())
            assert value, f"line {self.line}: a tolerance says why: <!-- doc-test: rel 0.02 (why) -->"
            return kind, value.group(1)
        if kind in ("file", "signature") and rest.strip():
            return kind, rest.strip()
        raise AssertionError(f"line {self.line}: unknown doc-test marker '{self.marker}'")


@dataclass
class Report:
    """What running one page did."""

    ran: int = 0
    compared: int = 0
    skipped: list[str] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)


def fenced_blocks(text: str) -> list[Block]:
    """Every fenced block of a markdown page, indented ones (in list items) included."""
    lines = text.splitlines()
    blocks: list[Block] = []
    number = 0
    while number < len(lines):
        opening = FENCE.match(lines[number])
        if not opening:
            number += 1
            continue
        indent, language = opening.groups()
        body, end = [], number + 1
        while end < len(lines) and lines[end].strip() != "```":
            body.append(lines[end][len(indent):] if lines[end].startswith(indent) else lines[end].lstrip())
            end += 1
        assert end < len(lines), f"line {number + 1}: a fence that never closes"
        above = MARKER.match(lines[number - 1]) if number else None
        blocks.append(Block(language, "\n".join(body) + "\n", number + 1, end + 2, above.group(1) if above else ""))
        number = end + 1
    return blocks


def stray_markers(text: str) -> list[int]:
    """Lines of doc-test markers that are not right above a fence."""
    lines = text.splitlines()
    return [n + 1 for n, line in enumerate(lines)
            if MARKER.match(line) and not (n + 1 < len(lines) and FENCE.match(lines[n + 1]))]


def shown_output(blocks: list[Block], index: int, text: str) -> list[str] | None:
    """The ```text block right after blocks[index] (only blank lines between), as lines."""
    if index + 1 >= len(blocks) or blocks[index + 1].language != "text":
        return None
    lines = text.splitlines()
    between = lines[blocks[index].end - 1:blocks[index + 1].line - 1]
    if any(line.strip() for line in between):
        return None
    return blocks[index + 1].text.splitlines()


def same_text(shown: str, printed: str, relative: float = RELATIVE_TOLERANCE,
              absolute: float = ABSOLUTE_TOLERANCE) -> bool:
    """One shown line against one printed line: the same words, numbers within tolerance."""
    shown, printed = " ".join(DURATION.sub("_", shown).split()), " ".join(DURATION.sub("_", printed).split())
    if shown.endswith("..."):
        shown = shown[:-3].rstrip()
        printed = printed[:len(shown) + 20]
        shown_numbers, printed_numbers = NUMBER.findall(shown), NUMBER.findall(printed)[:len(NUMBER.findall(shown))]
        if not NUMBER.sub("#", printed).startswith(NUMBER.sub("#", shown)):
            return False
    else:
        shown_numbers, printed_numbers = NUMBER.findall(shown), NUMBER.findall(printed)
        if NUMBER.sub("#", shown) != NUMBER.sub("#", printed):
            return False
    for s, p in zip(shown_numbers, printed_numbers):
        if s.lstrip("-").isdigit():  # an integer (a count, an index, a shape): exactly
            if s != p:
                return False
        elif abs(float(s) - float(p)) > max(0 if "e" in s.lower() else absolute, relative * abs(float(s))):
            return False
    return True


def same_output(shown: list[str], printed: list[str], relative: float = RELATIVE_TOLERANCE) -> bool:
    """All shown lines against all printed lines, one for one; "..." stands for any number."""
    shown = [line for line in shown if line.strip()]
    printed = [line for line in printed if line.strip()]

    def match(i: int, j: int) -> bool:
        if i == len(shown):
            return j == len(printed)
        if shown[i].strip() == "...":
            return any(match(i + 1, k) for k in range(j, len(printed) + 1))
        return j < len(printed) and same_text(shown[i], printed[j], relative) and match(i + 1, j + 1)

    return match(0, 0)


def signature_mismatches(block: Block, dotted: str) -> list[str]:
    """Where the signature written in `block` differs from the real one of `dotted`."""
    module, _, name = dotted.rpartition(".")
    real = inspect.signature(getattr(importlib.import_module(module), name))
    shown = ast.parse(f"def {block.text.strip()}:\n    pass").body[0]
    assert isinstance(shown, ast.FunctionDef) and shown.name == name, f"{block.label}: not a signature of {name}"
    args = shown.args
    positional = args.posonlyargs + args.args
    defaults = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
    kinds = ["POSITIONAL_ONLY"] * len(args.posonlyargs) + ["POSITIONAL_OR_KEYWORD"] * len(args.args)
    written = [(a.arg, kind, d) for a, kind, d in zip(positional, kinds, defaults)]
    written += [(args.vararg.arg, "VAR_POSITIONAL", None)] if args.vararg else []
    written += [(a.arg, "KEYWORD_ONLY", d) for a, d in zip(args.kwonlyargs, args.kw_defaults)]
    written += [(args.kwarg.arg, "VAR_KEYWORD", None)] if args.kwarg else []
    actual = [(p.name, p.kind.name, p.default) for p in real.parameters.values()]
    problems = []
    if [w[:2] for w in written] != [a[:2] for a in actual]:
        problems.append(f"{block.label}: shows the parameters {[w[0] for w in written]}, "
                        f"{dotted} has {[a[0] for a in actual]} (or their kinds differ)")
    real_defaults = {name: default for name, _, default in actual}
    for arg, _, default in written:
        if arg not in real_defaults:
            continue
        value = inspect.Parameter.empty if default is None else ast.literal_eval(default)
        real_default = real_defaults[arg]
        if value != real_default or type(value) is not type(real_default):
            problems.append(f"{block.label}: shows {arg}={value!r}, {dotted} has {arg}={real_default!r}")
    returned = real.return_annotation
    returned = getattr(returned, "__name__", returned)
    if shown.returns is not None and ast.unparse(shown.returns) != returned:
        problems.append(f"{block.label}: shows -> {ast.unparse(shown.returns)}, {dotted} returns {returned}")
    return problems


def check_skipped(block: Block) -> None:
    """A skipped block still compiles, and its top-level imports still import."""
    if block.language != "python":
        return
    tree = ast.parse(block.text)
    imports = ast.Module([node for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))], [])
    exec(compile(imports, block.label, "exec"), {})  # noqa: S102


def commands(block: Block) -> list[tuple[str, list[str]]]:
    """(command line, the lines shown under it) of a shell block."""
    runs: list[tuple[str, list[str]]] = []
    for line in block.text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if block.language == "console" and not line.startswith("$ "):
            assert runs, f"{block.label}: output before any `$` command"
            runs[-1][1].append(line)
        else:
            runs.append((line[2:] if line.startswith("$ ") else line, []))
    return runs


def run_command_line(line: str, page: str) -> list[str]:
    """Run one `ebm ...` line in-process; what it printed (stdout, then stderr)."""
    from ebmlang.cli.entry import main

    argv = shlex.split(line, comments=True)
    assert argv[0] == "ebm", (f"{page}: `{line}` is not an `ebm` command; this test runs only those "
                              "(mark the block <!-- doc-test: skip (why) --> if it cannot run here)")
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        main(argv[1:])
    return (out.getvalue() + err.getvalue()).splitlines()


def run_page(text: str, page: str, folder: Path) -> Report:
    """Run every block of a page's `text` in `folder` (the current directory); what was
    run, compared and skipped, and every mismatch between shown and printed output."""
    report = Report()
    blocks = fenced_blocks(text)
    namespace: dict = {"__name__": "__doc_test__"}
    for index, block in enumerate(blocks):
        kind, argument = block.option()
        relative = float(argument) if kind == "rel" else RELATIVE_TOLERANCE
        if kind == "file":
            (folder / argument).write_text(block.text)
            continue
        if block.language not in RUNNABLE:
            continue
        if kind == "skip":
            check_skipped(block)
            report.skipped.append(f"{page} {block.label}: {argument}")
            continue
        report.ran += 1
        if block.language == "python" and kind == "signature":
            report.compared += 1
            report.mismatches += signature_mismatches(block, argument)
        elif block.language == "python":
            buffer = io.StringIO()
            # The blank lines put the block at its own line numbers in a traceback.
            code = compile("\n" * block.line + block.text, page, "exec")
            with contextlib.redirect_stdout(buffer):
                exec(code, namespace)  # noqa: S102
            shown = shown_output(blocks, index, text)
            if shown is not None:
                report.compared += 1
                printed = buffer.getvalue().splitlines()
                if not same_output(shown, printed, relative):
                    report.mismatches.append(f"{page} {block.label} shows\n" + "\n".join(shown)
                                             + "\nbut printed\n" + "\n".join(printed))
        else:
            compared = False
            for line, shown in commands(block):
                printed = run_command_line(line, page)
                if shown:
                    compared = True
                    if not same_output(shown, printed, relative):
                        report.mismatches.append(f"{page} {block.label}: `{line}` shows\n" + "\n".join(shown)
                                                 + "\nbut printed\n" + "\n".join(printed))
            report.compared += compared
    return report


def name(page: Path) -> str:
    """A page as the repository names it: README.md, docs/learning.md."""
    return str(page.relative_to(REPO))


def scratch_folder(tmp_path: Path, monkeypatch) -> Path:
    (tmp_path / "examples").symlink_to(REPO / "examples")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def skipped_blocks() -> list[tuple[str, Block, str]]:
    found = []
    for path in PAGES:
        for block in fenced_blocks(path.read_text()):
            kind, why = block.option()
            if kind == "skip":
                found.append((name(path), block, why))
    return found


@pytest.mark.parametrize("page", PAGES, ids=lambda path: path.name)
def test_page_runs_and_prints_what_it_shows(page, tmp_path, monkeypatch):
    text = page.read_text()
    if "sklearn" in text:
        pytest.importorskip("sklearn")
    report = run_page(text, name(page), scratch_folder(tmp_path, monkeypatch))
    assert not report.mismatches, "\n\n".join(report.mismatches)
    print(f"{name(page)}: {report.ran} blocks run, {report.compared} compared with the output shown, "
          f"{len(report.skipped)} skipped")


@pytest.mark.parametrize("page, block, why", skipped_blocks(),
                         ids=[f"{page}:{block.line}" for page, block, _ in skipped_blocks()])
def test_skipped_block_still_compiles_and_imports(page, block, why):
    check_skipped(block)
    pytest.skip(f"{page} {block.label} not run: {why}")


def test_skips_are_rare():
    assert len(skipped_blocks()) <= MAX_SKIPPED, [f"{page} {block.label}" for page, block, _ in skipped_blocks()]


@pytest.mark.parametrize("page", PAGES, ids=lambda path: path.name)
def test_every_code_block_is_seen_and_every_marker_sits_on_one(page):
    text = page.read_text()
    blocks = fenced_blocks(text)
    openings = [line for line in text.splitlines() if line.strip().startswith("```") and line.strip() != "```"]
    assert len(openings) == sum(block.language != "" for block in blocks)
    spelled = {block.language for block in blocks} & UNRUN_SPELLINGS
    assert not spelled, f"{name(page)}: write ```python or ```console, not {spelled}, so the block runs"
    assert not stray_markers(text), f"{name(page)}: doc-test markers not right above a fence"
    for block in blocks:
        kind, _ = block.option()
        assert kind != "file" or block.language == "ebm", f"{name(page)} {block.label}: files are ```ebm"
        assert kind != "signature" or block.language == "python"


def test_lines_compare_numbers_within_tolerance_and_words_exactly():
    assert same_text("[15.875845]", "[15.8759]") and same_text("0.001", "0.0019") and same_text("-1.5", "-1.5014")
    assert not same_text("[15.875845]", "[15.8959]") and not same_text("-1.5", "-1.502")
    assert not same_text("[-2048.    24.]", "[-2048.    25.]")   # integers exactly
    assert not same_text("it is 1500 at i=1499", "it is 1501 at i=1499")
    assert not same_text("(64, 75, 32, 32)", "(64, 75, 32, 32) {'s': ('chains',)}")   # the whole line
    assert same_text("FitResult(pcd: 20 epochs; last: ...", "FitResult(pcd: 20 epochs; last: loss=-0.76")
    assert same_text("test log-likelihood -19.41 nats", "test log-likelihood -19.6 nats", relative=0.02)
    assert not same_text("test log-likelihood -19.41 nats", "test log-likelihood -19.6 nats")
    assert same_text("fitted in 1.31 s (total_seconds=6.0)", "fitted in 9 s (total_seconds=2.5)")
    assert same_text("1.5e-05", "1.5e-05") and not same_text("1.5e-05", "1.5e-06")
    assert same_output(["a", "...", "d 1.0"], ["a", "b", "c", "d 1.0001"])
    assert not same_output(["a", "d"], ["a", "b", "d"])
    assert not same_output(["a", "b"], ["a"])


@pytest.mark.slow  # reruns three whole pages
def test_a_number_changed_in_a_page_makes_it_fail(tmp_path, monkeypatch):
    """The doc test can fail: a shown number edited to a wrong one is reported, for a
    console block (docs/ir.md, README's sudoku grid) and a python block's ```text output
    (docs/backends.md)."""
    folder = scratch_folder(tmp_path, monkeypatch)
    for page, right, wrong in (("docs/ir.md", "it is 1500 at i=1499", "it is 1501 at i=1499"),
                               ("docs/backends.md", "[-2048.    24.]\n[-2048.", "[-2048.    24.]\n[-2049."),
                               ("README.md", "   [2, 4, 1, 3],", "   [2, 4, 3, 1],")):
        text = (REPO / page).read_text()
        assert text.count(right) == 1
        report = run_page(text.replace(right, wrong), page, folder)
        assert len(report.mismatches) == 1, report.mismatches
        assert wrong.splitlines()[-1] in report.mismatches[0]
