"""`ebm sample`'s summary: a line per variable with its R-hat and ESS, and the convergence
problems on stderr, one line each (the Python API raises them as ConvergenceWarning)."""
from __future__ import annotations

import sys


def print_sample_summary(samples) -> tuple[str, ...]:
    """Print the summary; return its convergence problems for `print_problems`.
    (`Model.sample` has named the samples' axes after the declaration already.)"""
    result = samples.summary(warn=False)
    print(result)
    return result.problems


def print_problems(problems: tuple[str, ...]) -> None:
    # Last, where the eye is when the run ends, and as plain lines: a CLI user needs no
    # Python warning's file:line of ebmlang's code.
    sys.stdout.flush()
    for problem in problems:
        print(f"warning: {problem}", file=sys.stderr)
