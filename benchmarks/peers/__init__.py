"""Adapters that solve a workload's problem with a peer library's public API.

Each adapter imports its library inside `prepare`, so a missing library turns into a
"not installed" row rather than an import error of the whole benchmark.
"""
