"""Run every benchmark workload and print (and optionally write) the tables.

    .venv/bin/python benchmarks/run_all.py                       # full sizes, print only
    .venv/bin/python benchmarks/run_all.py --write docs/benchmarks.md
    .venv/bin/python benchmarks/run_all.py --smoke               # tiny sizes (CI)
    .venv/bin/python benchmarks/run_all.py --only ising --only potts --json out.json
    .venv/bin/python benchmarks/run_all.py --torch-threads 1     # pin torch's thread count

Workloads are the modules of benchmarks/workloads/ that define `run(smoke)`; adding a
workload is adding a module there. Exit status 1 when any contender failed (a bug, as
opposed to a library that is not installed), after all tables are printed and written.
"""
from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import sys
import time
from pathlib import Path
from types import ModuleType

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks import (
    harness,  # noqa: E402
    workloads,  # noqa: E402
)
from benchmarks.harness import Row, describe_error  # noqa: E402
from benchmarks.machine import library_versions, machine_info  # noqa: E402
from benchmarks.report import WorkloadResult, markdown_report, print_console  # noqa: E402


def discover_workloads() -> dict[str, ModuleType]:
    """Every workload module under benchmarks/workloads/, by name, in report order."""
    modules = {}
    for info in pkgutil.iter_modules(workloads.__path__):
        module = importlib.import_module(f"{workloads.__name__}.{info.name}")
        if callable(getattr(module, "run", None)):
            modules[info.name] = module
    return dict(sorted(modules.items(), key=lambda item: (getattr(item[1], "ORDER", 99), item[0])))


def run_workload(name: str, module: ModuleType, smoke: bool) -> WorkloadResult:
    """Run one workload; a crash of the workload itself becomes one failed row."""
    start = time.perf_counter()
    try:
        rows = list(module.run(smoke))
    except Exception as error:
        import traceback

        traceback.print_exc(file=sys.stderr)
        rows = [Row(name, "—", "(workload)", status=f"failed: {describe_error(error)}")]
    try:
        notes = list(module.cross_check(rows)) if hasattr(module, "cross_check") else []
    except Exception as error:
        notes = [f"cross-check failed: {describe_error(error)}"]
        rows.append(Row(name, "—", "(cross-check)", status=f"failed: {describe_error(error)}"))
    return WorkloadResult(name, module, rows, notes, time.perf_counter() - start)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes and step counts (CI)")
    parser.add_argument("--write", metavar="PATH", help="write the markdown report here")
    parser.add_argument("--json", metavar="PATH", help="write machine info and every row as JSON here")
    parser.add_argument("--only", metavar="WORKLOAD", action="append", help="run just this workload (repeatable)")
    parser.add_argument("--device", default="cpu",
                        help="device for the workloads that take one (dense_boltzmann, rbm_large): cpu, cuda, ...")
    parser.add_argument(
        "--torch-threads", metavar="N", type=int,
        help="torch intra-op threads (default: torch's own choice); recorded in the report",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    available = discover_workloads()
    chosen = args.only or list(available)
    unknown = [name for name in chosen if name not in available]
    if unknown:
        print(f"unknown workload(s) {', '.join(unknown)}; available: {', '.join(available)}", file=sys.stderr)
        return 2

    if args.torch_threads is not None:
        # On a busy machine torch's spinning worker threads can cost more than they give.
        import torch

        torch.set_num_threads(args.torch_threads)
    harness.DEVICE = args.device
    machine, versions = machine_info(), library_versions()
    results = []
    for name in chosen:
        result = run_workload(name, available[name], args.smoke)
        print_console(result, args.smoke)
        results.append(result)

    command = "benchmarks/run_all.py " + " ".join(argv if argv is not None else sys.argv[1:])
    if args.write:
        path = Path(args.write)
        path.parent.mkdir(parents=True, exist_ok=True)
        report = markdown_report(results, machine, versions, args.smoke, command.strip())
        # Figures measured by the component scripts (bench_lowering.py, bench_backends.py,
        # bench_scaling.py) are kept by hand in components.md and carried into the report.
        components = Path(__file__).with_name("components.md")
        if components.exists() and not args.smoke:
            report += "\n\n" + components.read_text().strip()
        path.write_text(report + "\n")
        print(f"wrote {path}")
    if args.json:
        payload = {
            "smoke": args.smoke,
            "machine": machine,
            "versions": versions,
            "rows": [row.to_json() for result in results for row in result.rows],
            "notes": {result.name: result.notes for result in results},
        }
        Path(args.json).write_text(json.dumps(payload, indent=2) + "\n")
    failed = [row for result in results for row in result.rows if row.status.startswith("failed")]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
