"""Benchmarks: ebmlang against hand-written kernels and peer libraries.

`benchmarks/run_all.py` runs every workload module under `benchmarks/workloads/`
and prints (and optionally writes to docs/benchmarks.md) one table per workload.
"""
