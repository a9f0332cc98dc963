"""`benchmarks/run_all.py --smoke` end to end: every workload yields measured rows.

Runs as a subprocess (as CI's `make bench-smoke` does), so JAX / torch thread pools and
caches are the benchmark's own, and the CLI, the JSON dump and the markdown writer are
exercised too.
"""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks.run_all import discover_workloads  # noqa: E402

ALLOWED_UNMEASURED = ("not installed: ", "skipped: ")
# Every workload compiled and run once: about a minute, so `make test-slow` (and CI) runs it.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess, dict, str]:
    out = tmp_path_factory.mktemp("bench")
    json_path, markdown_path = out / "rows.json", out / "benchmarks.md"
    completed = subprocess.run(
        [sys.executable, str(REPO_ROOT / "benchmarks" / "run_all.py"), "--smoke",
         "--json", str(json_path), "--write", str(markdown_path)],
        cwd=REPO_ROOT, capture_output=True, text=True,
        timeout=900,  # a hang guard only; the run takes well under a minute on 2 idle cores
    )
    payload = json.loads(json_path.read_text()) if json_path.exists() else {}
    markdown = markdown_path.read_text() if markdown_path.exists() else ""
    return completed, payload, markdown


def test_smoke_run_succeeds(smoke_run) -> None:
    completed, payload, _ = smoke_run
    assert completed.returncode == 0, completed.stdout[-4000:] + completed.stderr[-4000:]
    assert payload["smoke"] is True


def test_every_workload_produced_rows_with_finite_figures(smoke_run) -> None:
    _, payload, _ = smoke_run
    rows = payload["rows"]
    workloads = {row["workload"] for row in rows}
    assert workloads == set(discover_workloads()), workloads
    for name in workloads:
        measured = [row for row in rows if row["workload"] == name and row["status"] == "ok" and row["metrics"]]
        assert measured, f"workload {name} measured nothing"
    for row in rows:
        if row["status"] != "ok":
            assert row["status"].startswith(ALLOWED_UNMEASURED), row
            continue
        assert row["metrics"], row
        for name, value in row["metrics"].items():
            assert isinstance(value, (int, float)) and math.isfinite(value), (row["contender"], name, value)
        for timing in ("setup_s", "run_s"):
            assert row[timing] is None or (math.isfinite(row[timing]) and row[timing] >= 0), row


def test_hand_written_baselines_are_always_measured(smoke_run) -> None:
    """The hand-written contenders need only the project's own dependencies."""
    _, payload, _ = smoke_run
    measured = {(row["workload"], row["contender"]) for row in payload["rows"] if row["status"] == "ok"}
    for workload, contender in [
        ("ising", "numpy (hand-written)"), ("ising", "torch (hand-written)"), ("ising", "JAX (hand-written)"),
        ("ring_gmm", "torch (hand-written)"), ("ring_gmm", "JAX (hand-written)"),
        ("potts", "ICM numpy (hand-written)"), ("compile_ising", "JAX jit (hand-written kernel)"),
    ]:
        assert (workload, contender) in measured, (workload, contender)


def test_markdown_report_has_machine_versions_and_every_workload(smoke_run) -> None:
    _, payload, markdown = smoke_run
    assert "## Machine" in markdown and "## Library versions" in markdown
    for key in ("CPU", "cores", "RAM", "date (UTC)"):
        assert f"| {key} |" in markdown, key
    for module in discover_workloads().values():
        assert f"## {module.TITLE}" in markdown
    assert markdown.count("Reproduce:") == len(discover_workloads())
    assert payload["versions"]["numpy"] != "not installed"
