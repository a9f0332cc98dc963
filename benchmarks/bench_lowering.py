"""Scale benchmark of the front half of the pipeline on the Ising example.

    .venv/bin/python benchmarks/bench_lowering.py                 # L = 64, 256, 1024
    .venv/bin/python benchmarks/bench_lowering.py --sizes 2048    # any sizes
    .venv/bin/python benchmarks/bench_lowering.py --smoke         # L = 16 (seconds)

For each lattice side L: parse + check, `lower_program` and `structure.colouring`
(the chromatic blocks block-Gibbs needs), each timed (wall clock) with its peak
traced memory (tracemalloc, which sees numpy's buffers). The target at L = 1024
(~1M spins, ~2M pairwise ground factors) is lowering < 10 s and < 2 GiB; the
colouring there must find the 2-colour checkerboard.

Each size runs in a fresh subprocess so that one size's caches and freed memory do
not flatter the next; the process's peak RSS is reported too.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

TARGET_SECONDS = 10.0
TARGET_BYTES = 2 * 1024**3


def ising_source(side: int) -> str:
    text = (REPO_ROOT / "examples" / "ising.ebm").read_text()
    return text.replace("const L = 32", f"const L = {side}")


def measure(stage, *args):
    """(result, seconds, peak traced bytes) of one call."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    start = time.perf_counter()
    result = stage(*args)
    seconds = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return result, seconds, peak


def run_one(side: int) -> dict:
    """All stages for one lattice side, in this process."""
    import resource

    from ebmlang.graph import structure
    from ebmlang.graph.lower import lower_program
    from ebmlang.language.checker import check_program
    from ebmlang.language.parser import parse_source

    source = ising_source(side)
    checked, check_s, check_peak = measure(lambda: check_program(parse_source(source, "ising.ebm")))
    graph, lower_s, lower_peak = measure(lower_program, checked)
    colours, colour_s, colour_peak = measure(structure.colouring, graph)
    return {
        "L": side,
        "spins": side * side,
        "ground_factors": sum(t.num_ground for t in graph.templates),
        "templates": len(graph.templates),
        "check_s": check_s, "check_peak": check_peak,
        "lower_s": lower_s, "lower_peak": lower_peak,
        "colour_s": colour_s, "colour_peak": colour_peak,
        "colours": colours.num_colours, "method": colours.method,
        "max_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }


def _mib(n: int) -> str:
    return f"{n / 1024**2:.0f} MiB"


def print_table(rows: list[dict]) -> None:
    header = ["L", "spins", "ground factors", "parse+check", "lower", "lower peak", "colouring",
              "colour peak", "colours", "process RSS", "lowering target"]
    lines = [header]
    for r in rows:
        met = r["lower_s"] < TARGET_SECONDS and r["lower_peak"] < TARGET_BYTES
        lines.append([
            str(r["L"]), f"{r['spins']:,}", f"{r['ground_factors']:,}", f"{r['check_s']:.2f} s",
            f"{r['lower_s']:.2f} s", _mib(r["lower_peak"]), f"{r['colour_s']:.2f} s", _mib(r["colour_peak"]),
            f"{r['colours']} ({r['method']})", _mib(r["max_rss"]), "met" if met else "MISSED",
        ])
    widths = [max(len(line[k]) for line in lines) for k in range(len(header))]
    for k, line in enumerate(lines):
        print("| " + " | ".join(cell.rjust(w) for cell, w in zip(line, widths)) + " |")
        if k == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 256, 1024], help="lattice sides L")
    parser.add_argument("--smoke", action="store_true", help="one tiny size (L = 16)")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # internal: run one size, print JSON
    args = parser.parse_args(argv)
    if args.one is not None:
        print(json.dumps(run_one(args.one)))
        return 0
    sizes = [16] if args.smoke else args.sizes
    rows = []
    for side in sizes:
        out = subprocess.run([sys.executable, __file__, "--one", str(side)], capture_output=True, text=True,
                             check=False)
        if out.returncode != 0:
            print(out.stderr, file=sys.stderr)
            return 1
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print_table(rows)
    largest = rows[-1]
    ok = largest["lower_s"] < TARGET_SECONDS and largest["lower_peak"] < TARGET_BYTES
    if largest["L"] % 2 == 0 and largest["colours"] != 2:
        print(f"expected the 2-colour checkerboard at even L, got {largest['colours']} colours")
        ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
