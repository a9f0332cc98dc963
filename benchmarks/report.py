"""Tables: rich on the console, markdown for docs/benchmarks.md.

Columns per workload: case, contender, setup s, run s, the headline figure, its ratio to
the baseline contender of the same case, then every other figure in order of first
appearance. A row that was not measured shows its status across the figure columns.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import ModuleType

from benchmarks.harness import MAX_REPEATS, REPEAT_BUDGET_S, Headline, Row


@dataclass(frozen=True)
class WorkloadResult:
    name: str  # module name, as given to --only
    module: ModuleType
    rows: list[Row]
    notes: list[str]
    wall_s: float

    @property
    def headline(self) -> Headline:
        return self.module.HEADLINE


def format_number(value: float | None) -> str:
    if value is None:
        return "—"
    if not math.isfinite(value):
        return str(value)
    if value != 0 and (abs(value) >= 1e6 or abs(value) < 1e-4):
        return f"{value:.3e}"
    # Four significant digits, but never an exponent for a number a reader can take in whole.
    return f"{value:.6g}" if abs(value) >= 1000 else f"{value:.4g}"


def ratio_column(headline: Headline) -> str:
    return f"× {headline.baseline}"


TIME_COLUMNS = ("setup s", "run s")


def headline_value(row: Row, headline: Headline) -> float | None:
    """The headline figure of a row; "run s" names the timed run itself."""
    if headline.metric == "run s":
        return row.run_s
    return row.metrics.get(headline.metric)


def ratio(row: Row, rows: Sequence[Row], headline: Headline) -> float | None:
    """The headline figure of `row` relative to the baseline contender's in the same case."""
    baseline = next(
        (r for r in rows if r.case == row.case and r.contender == headline.baseline and r.ok), None
    )
    if baseline is None or not row.ok:
        return None
    value, base = headline_value(row, headline), headline_value(baseline, headline)
    if value is None or base is None or value == 0 or base == 0:
        return None
    return headline.ratio(value, base)


def figure_columns(rows: Sequence[Row], headline: Headline) -> list[str]:
    names: list[str] = []
    for row in rows:
        for name in row.metrics:
            if name not in names and name != headline.metric:
                names.append(name)
    return names


def table_cells(result: WorkloadResult) -> tuple[list[str], list[list[str]]]:
    """Header and body cells of a workload's table (shared by rich and markdown)."""
    headline = result.headline
    others = figure_columns(result.rows, headline)
    headline_columns = [] if headline.metric in TIME_COLUMNS else [headline.metric]
    # One-shot workloads (builds) have no setup / timed-run split: leave those columns out.
    time_columns = [
        name for name, attribute in zip(TIME_COLUMNS, ("setup_s", "run_s"))
        if name == headline.metric or any(getattr(row, attribute) is not None for row in result.rows)
    ]
    header = ["case", "contender", *time_columns, *headline_columns, ratio_column(headline), *others, "note"]
    body = []
    for row in result.rows:
        if not row.ok:
            body.append([row.case, row.contender] + [""] * (len(header) - 3) + [row.status])
            continue
        cells = [row.case, row.contender]
        cells.extend(format_number(row.setup_s if name == "setup s" else row.run_s) for name in time_columns)
        cells.extend(format_number(row.metrics.get(name)) for name in headline_columns)
        row_ratio = ratio(row, result.rows, headline)
        cells.append(f"{row_ratio:.2f}×" if row_ratio is not None else "—")
        cells.extend(format_number(row.metrics.get(name)) for name in others)
        cells.append(row.note)
        body.append(cells)
    return header, body


def print_console(result: WorkloadResult, smoke: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    header, body = table_cells(result)
    suffix = " (smoke sizes)" if smoke else ""
    table = Table(title=f"{result.module.TITLE}{suffix}", title_justify="left")
    for name in header:
        numeric = name not in ("case", "contender", "note")
        table.add_column(name, justify="right" if numeric else "left", overflow="fold")
    for cells in body:
        table.add_row(*cells)
    console = Console(width=max(160, Console().width))
    console.print(table)
    for note in result.notes:
        console.print(f"  {note}", highlight=False)
    console.print(f"  [dim]workload wall time {result.wall_s:.1f} s[/dim]")


def markdown_table(header: Sequence[str], body: Sequence[Sequence[str]]) -> list[str]:
    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"

    return [line(header), line(["---"] * len(header)), *(line(cells) for cells in body)]


def markdown_report(
    results: Sequence[WorkloadResult],
    machine: Mapping[str, str],
    versions: Mapping[str, str],
    smoke: bool,
    command: str,
) -> str:
    """The whole of docs/benchmarks.md."""
    lines = [
        "# Benchmarks",
        "",
        f"Generated by `{command}`" + (" at smoke sizes (not meaningful figures)" if smoke else "") + ".",
        "Do not edit by hand; rerun `make bench` instead.",
        "",
        "## How the figures are measured",
        "",
        "- Every contender of a workload solves the same problem: same sizes, same number of",
        "  chains and steps, same initial state and seed where the workload has one.",
        "- **setup s** is building (graphs, programs), JIT compilation and a short warm-up run",
        "  (for JAX, one that compiles exactly the program then timed); it is *excluded* from **run s**.",
        f"- **run s** is the best of up to {MAX_REPEATS} timed runs (no further run once the next",
        f"  would take the timed total over {REPEAT_BUDGET_S:g} s); outputs are blocked on",
        "  (`block_until_ready`) inside the timed region; converting them to numpy and computing",
        "  the figures is not timed.",
        "- The ratio column is \"times better than the baseline\" for the headline figure",
        "  (higher throughput, or shorter time), against the named baseline in the same case.",
        "- A contender whose library cannot be imported is listed as `not installed: <error>`.",
        "",
        "## Machine",
        "",
        *markdown_table(["", ""], [[key, value] for key, value in machine.items()]),
        "",
        "## Library versions",
        "",
        *markdown_table(["library", "version"], [[key, value] for key, value in versions.items()]),
        "",
    ]
    for result in results:
        header, body = table_cells(result)
        lines += [
            f"## {result.module.TITLE}",
            "",
            result.module.describe(smoke),
            "",
            f"Headline figure: **{result.headline.metric}** "
            f"({'higher' if result.headline.higher_is_better else 'lower'} is better), "
            f"baseline **{result.headline.baseline}**.",
            "",
            *markdown_table(header, body),
            "",
        ]
        lines += [f"- {note}" for note in result.notes]
        if result.notes:
            lines.append("")
        lines += [
            "Reproduce:",
            "",
            "```",
            f".venv/bin/python benchmarks/run_all.py --only {result.name}",
            f".venv/bin/python benchmarks/run_all.py --only {result.name} --smoke   # tiny sizes",
            "```",
            "",
            f"Workload wall time: {result.wall_s:.1f} s.",
            "",
        ]
    return "\n".join(lines)
