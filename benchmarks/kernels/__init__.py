"""Hand-written reference kernels: what a careful person writes without ebmlang.

They are the baselines of the benchmark tables and double as oracles: each is tested
against exact answers in tests/benchmarks/.
"""
