"""Located errors: every bad input becomes an `EbmError`, never a traceback.

The foundation every stage imports: `Span` (where in a `.ebm` file something was
written; every AST node and IR template carries one) and `EbmError`.

An error prints as

    model.ebm:4:12: error: unknown name 'sigmaa'
       4 | energy e = x^2 / sigmaa
         |                  ^^^^^^
      expected: a declared const, param, variable or index
      hint: did you mean 'sigma'?
"""
from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Span:
    """A half-open source region; lines and columns are 1-based."""

    file: str
    line: int
    column: int
    end_line: int
    end_column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


UNKNOWN_SPAN = Span("<unknown>", 1, 1, 1, 1)


class EbmError(Exception):
    """An error in a model, its data or its use, located in the `.ebm` source where possible."""

    def __init__(
        self,
        message: str,
        span: Span | None = None,
        *,
        source: str | None = None,
        expected: str | None = None,
        hint: str | None = None,
        notes: Iterable[tuple[Span, str]] = (),
    ):
        self.message = message
        self.span = span
        self.source = source
        self.expected = expected
        self.hint = hint
        self.notes = tuple(notes)
        super().__init__(self.render())

    def with_source(self, source: str) -> "EbmError":
        """The same error, able to quote the offending line from `source`."""
        if self.source is None:
            self.source = source
            self.args = (self.render(),)
        return self

    def render(self) -> str:
        lines = []
        where = f"{self.span}: " if self.span is not None else ""
        lines.append(f"{where}error: {self.message}")
        if self.span is not None and self.source is not None:
            lines.extend(quote_source(self.source, self.span))
        if self.expected:
            lines.append(f"  expected: {self.expected}")
        if self.hint:
            lines.append(f"  hint: {self.hint}")
        for span, text in self.notes:
            lines.append(f"  note: {span}: {text}")
            if self.source is not None and span.file == getattr(self.span, "file", None):
                lines.extend(quote_source(self.source, span))
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.render()


def quote_source(source: str, span: Span) -> list[str]:
    """The source line of `span` with a caret run under the spanned columns."""
    source_lines = source.splitlines()
    if not 1 <= span.line <= len(source_lines):
        return []
    text = source_lines[span.line - 1].rstrip("\n")
    gutter = f"{span.line:>4} | "
    start = max(span.column, 1)
    if span.end_line == span.line and span.end_column > start:
        width = span.end_column - start
    else:
        width = max(len(text) - start + 1, 1)
    width = max(1, min(width, max(len(text) - start + 1, 1)))
    return [gutter + text, " " * (len(gutter) - 2) + "| " + " " * (start - 1) + "^" * width]


def did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    """A 'did you mean' hint for a misspelt name, or None when nothing is close."""
    matches = difflib.get_close_matches(name, sorted(set(candidates)), n=1, cutoff=0.6)
    return f"did you mean '{matches[0]}'?" if matches else None


def check_whole_number(name: str, value, minimum: int = 0, maximum: int = 2 ** 40) -> int:
    """`value` as an int in [minimum, maximum], or an EbmError naming the argument (a bool,
    a float such as 2.5 or NaN, or a string is not a whole number)."""
    import numbers

    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not minimum <= value <= maximum:
        raise EbmError(f"{name} must be a whole number from {minimum:,} to {maximum:,}, got {value!r}")
    return int(value)


def check_real_number(name: str, value, *, positive: bool = False, minimum: float | None = None,
                      finite: bool = True) -> float:
    """`value` as a float (positive / at least `minimum` / finite as asked), or an EbmError."""
    import math
    import numbers

    if isinstance(value, bool) or not isinstance(value, numbers.Real) or math.isnan(value):
        raise EbmError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if (finite and math.isinf(value)) or (positive and not value > 0) or (minimum is not None and value < minimum):
        what = "a positive" if positive else f"a number >= {minimum:g}" if minimum is not None else "a"
        raise EbmError(f"{name} must be {what}{' finite' if finite else ''} number, got {value!r}")
    return value
