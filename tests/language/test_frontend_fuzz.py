"""Fuzzing the front end: mutated and random programs either check or fail with a located
EbmError -- never another exception, never a location outside the text.

2,200 cases in all (derandomised, so CI runs the same cases every time).
"""
from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ebmlang.errors import EbmError
from ebmlang.language.checker import EbmErrors, check_program
from ebmlang.language.parser import parse_source

EXAMPLES = Path(__file__).parents[2] / "examples"
SOURCES = {p.name: p.read_text() for p in sorted(EXAMPLES.glob("*.ebm"))}

VOCABULARY = [
    "const", "param", "latent", "observed", "energy", "constraint", "extern", "import", "as", "model",
    "in", "where", "and", "or", "not", "sum", "prod", "mean", "logsumexp", "min", "max",
    "x", "y", "s", "N", "K", "i", "j", "k", "f", "W", "beta", "pi", "e", "Prior", "Prior.x",
    "real", "binary", "spin", "categorical", "integer", "mlp", "normal", "uniform", "tanh", "exp", "log",
    "0", "1", "2", "-1", "2.5", "1e-3", "64", "100000", "0..N", "..", "->", "|", "~", ":", "=", "==",
    "!=", "<", "<=", ">", ">=", "+", "-", "*", "/", "%", "^", "[", "]", "(", ")", "{", "}", ",", ".",
    "\n", "# note\n", '"prior.ebm"', '"ising.ebm"', '"../up.ebm"', '"', "@", "\t",
]

FUZZ = settings(
    derandomize=True, deadline=None, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)


def load(path: str) -> str:
    return SOURCES[path]


def assert_located(err: EbmError, texts: dict[str, str]) -> None:
    """The error (and each error it carries) points inside the text it names, and renders."""
    rendered = str(err)
    assert rendered and "error:" in rendered
    for one in (err.errors if isinstance(err, EbmErrors) else [err]):
        span = one.span
        assert span is not None, one.message
        assert span.file in texts, span.file
        lines = texts[span.file].splitlines() or [""]
        # a missing token at the very end may sit one line past the last line break
        assert 1 <= span.line <= len(lines) + 1, (span, one.message)
        line_text = lines[span.line - 1] if span.line <= len(lines) else ""
        assert 1 <= span.column <= len(line_text) + 1, (span, one.message)
        assert (span.end_line, span.end_column) >= (span.line, span.column)


def run_front_end(name: str, text: str) -> None:
    texts = dict(SOURCES, **{name: text})
    try:
        checked = check_program(parse_source(text, name), loader=texts.__getitem__)
    except EbmError as err:
        assert_located(err, texts)
        return
    assert checked.default in checked.models


@st.composite
def mutated_programs(draw):
    name = draw(st.sampled_from(sorted(SOURCES)))
    text = SOURCES[name]
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["delete", "insert", "replace", "duplicate", "swap", "digit"]))
        at = draw(st.integers(0, len(text)))
        if kind == "delete":
            text = text[:at] + text[at + draw(st.integers(1, 12)):]
        elif kind == "insert":
            text = text[:at] + " " + draw(st.sampled_from(VOCABULARY)) + " " + text[at:]
        elif kind == "replace":
            end = min(len(text), at + draw(st.integers(1, 6)))
            text = text[:at] + draw(st.sampled_from(VOCABULARY)) + text[end:]
        elif kind == "digit":
            text = text[:at] + str(draw(st.integers(-3, 200))) + text[at + 1:]
        else:
            lines = text.splitlines(keepends=True)
            a = draw(st.integers(0, max(len(lines) - 1, 0)))
            b = draw(st.integers(0, max(len(lines) - 1, 0)))
            if kind == "duplicate":
                lines.insert(b, lines[a] if lines else "")
            else:
                lines[a], lines[b] = lines[b], lines[a]
            text = "".join(lines)
    return name, text


@settings(FUZZ, max_examples=1600)
@given(mutated_programs())
def test_mutated_examples_fail_only_with_located_errors(case):
    name, text = case
    run_front_end(name, text)


@settings(FUZZ, max_examples=600)
@given(st.lists(st.sampled_from(VOCABULARY), min_size=1, max_size=40),
       st.sampled_from(["", "latent x[3] : real\n", "energy t = ", "model M = ", "const c = "]))
def test_random_token_soup_fails_only_with_located_errors(tokens, prefix):
    run_front_end("soup.ebm", prefix + " ".join(tokens))
