"""From source to a ready Gibbs sweep on the Ising example at large sizes.

    .venv/bin/python benchmarks/bench_build_scale.py                 # L = 1024, 2048, 4096
    .venv/bin/python benchmarks/bench_build_scale.py --sizes 512     # any sizes

For each side L, in a fresh subprocess: `ebmlang.loads` (parse, check, lower, contraction
planning, compile on the numpy backend) and then the colouring and the compiled Gibbs
blocks of one sweep (`build_gibbs_sweep`): wall seconds of each, and the process's peak
resident memory (ru_maxrss), with the load average beside them. Target (issue 14): L =
4096 (16.8 million spins) in under 20 s and 1.5 GB.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import json, resource, sys, time
L = int(sys.argv[1])
import ebmlang
from ebmlang.graph import structure
from ebmlang.inference.gibbs import build_gibbs_sweep, gibbs_blocks
source = open(sys.argv[2]).read().replace("const L = 32", f"const L = {L}")
start = time.perf_counter()
model = ebmlang.loads(source, backend="numpy")
loaded = time.perf_counter()
colouring = structure.colouring(model.graph)
coloured = time.perf_counter()
sweep = build_gibbs_sweep(model.compiled, gibbs_blocks(model.graph))
built = time.perf_counter()
print(json.dumps({"L": L, "load_s": loaded - start, "colour_s": coloured - loaded, "sweep_s": built - coloured,
                  "total_s": built - start, "peak_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
                  "colouring": colouring.method, "packed": list(sweep.packed_groups)}))
"""


def run_one(side: int) -> dict:
    completed = subprocess.run([sys.executable, "-c", CHILD, str(side), str(REPO_ROOT / "examples" / "ising.ebm")],
                               capture_output=True, text=True, check=True, cwd=REPO_ROOT)
    return json.loads(completed.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048, 4096])
    args = parser.parse_args(argv)
    print(f"load average {' / '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("|    L |      spins | load (lower + compile) | colouring | Gibbs blocks | total | peak RSS | colouring |")
    print("|------|------------|-----------------------|-----------|--------------|-------|----------|-----------|")
    for side in args.sizes:
        row = run_one(side)
        print(f"| {side:4d} | {side * side:10,d} | {row['load_s']:19.1f} s | {row['colour_s']:7.1f} s | "
              f"{row['sweep_s']:10.1f} s | {row['total_s']:3.1f} s | {row['peak_gb']:5.2f} GB | {row['colouring']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
