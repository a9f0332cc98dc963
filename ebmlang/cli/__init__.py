"""The programs a user runs: the `ebm` command line (entry.py: the parser, `ebm
check`; commands.py: graph, plan, sample, argmin, fit, energy) and the showcase
(`python -m ebmlang.cli.showcase`). The last stage: it may import any other.
"""
from ebmlang.cli.entry import build_parser, main

__all__ = ["build_parser", "main"]
