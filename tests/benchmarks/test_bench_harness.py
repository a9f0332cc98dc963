"""The measuring harness and the report: statuses, warm-up, ratios, markdown."""
from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks.harness import Contender, Headline, NotApplicable, Row, measure, measure_build  # noqa: E402
from benchmarks.report import WorkloadResult, markdown_report, ratio, table_cells  # noqa: E402


def steps_figures(output, seconds):
    return {"steps/s": output / seconds}


def test_missing_library_is_reported_not_dropped() -> None:
    contender = Contender("ghost", lambda problem: (lambda steps: steps), requires=("no_such_module_xyz",))
    row = measure("w", "c", contender, None, steps=3, warmup_steps=1, summarise=steps_figures)
    assert row.status.startswith("not installed: ModuleNotFoundError")
    assert "no_such_module_xyz" in row.status


def test_a_crashing_contender_becomes_a_failed_row() -> None:
    def prepare(problem):
        def run(steps):
            raise ValueError("boom")

        return run

    row = measure("w", "c", Contender("broken", prepare), None, steps=3, warmup_steps=1, summarise=steps_figures)
    assert row.status == "failed: ValueError: boom"
    assert not row.ok


def test_not_applicable_is_skipped() -> None:
    def prepare(problem):
        raise NotApplicable("only for 2 labels")

    row = measure("w", "c", Contender("gc", prepare), None, steps=3, warmup_steps=1, summarise=steps_figures)
    assert row.status == "skipped: only for 2 labels"


def test_warm_up_then_timed_runs_with_the_real_step_count() -> None:
    calls = []

    def prepare(problem):
        calls.append(("prepare", problem))
        return lambda steps: calls.append(("run", steps)) or steps

    row = measure("w", "c", Contender("ok", prepare), "P", steps=5, warmup_steps=2, summarise=steps_figures)
    assert row.ok and row.run_s > 0 and row.setup_s >= 0
    assert calls[0] == ("prepare", "P") and calls[1] == ("run", 2)
    assert all(call == ("run", 5) for call in calls[2:]) and 1 <= len(calls) - 2 <= 3
    assert row.metrics["steps/s"] == 5 / row.run_s


def test_measure_build_reports_time_and_memory() -> None:
    import numpy as np

    row = measure_build("w", "c", Contender("alloc", lambda problem: np.ones(problem)), 1_000_000)
    assert row.ok
    assert row.metrics["build s"] > 0
    # 8 MB of float64 ones, seen by tracemalloc through numpy's allocator hooks.
    assert row.metrics["peak traced MiB"] > 7.0


def test_ratio_is_times_better_than_the_baseline() -> None:
    rows = [
        Row("w", "c", "base", run_s=2.0, metrics={"rate": 10.0}),
        Row("w", "c", "fast", run_s=0.5, metrics={"rate": 40.0}),
        Row("w", "c", "absent", status="not installed: ImportError: x"),
    ]
    higher = Headline("rate", higher_is_better=True, baseline="base")
    lower = Headline("run s", higher_is_better=False, baseline="base")
    assert ratio(rows[1], rows, higher) == 4.0
    assert ratio(rows[1], rows, lower) == 4.0
    assert ratio(rows[2], rows, higher) is None


def test_report_shows_unmeasured_rows_with_their_status() -> None:
    module = SimpleNamespace(
        TITLE="Toy", HEADLINE=Headline("rate", True, "base"), describe=lambda smoke: "A toy workload."
    )
    rows = [
        Row("toy", "c", "base", setup_s=0.1, run_s=2.0, metrics={"rate": 10.0, "energy": -1.5}),
        Row("toy", "c", "absent", status="not installed: ModuleNotFoundError: No module named 'x'"),
    ]
    result = WorkloadResult("toy", module, rows, ["a note"], 1.0)
    header, body = table_cells(result)
    assert header[:4] == ["case", "contender", "setup s", "run s"] and "energy" in header
    assert body[1][-1].startswith("not installed: ")
    text = markdown_report([result], {"CPU": "x"}, {"numpy": "1"}, smoke=True, command="run_all.py --smoke")
    assert "## Toy" in text and "not installed: ModuleNotFoundError" in text and "- a note" in text
    assert "benchmarks/run_all.py --only toy" in text
