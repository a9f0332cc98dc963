"""`ebm sample` on a compiling backend (torch --compile, JAX) reports the compile time apart
from the sampling rate, whose clock starts after the warm-up (ebmlang/cli/command_timing.py)."""
from __future__ import annotations

import re

import numpy as np

import ebmlang as ebm
from ebmlang.api.io import read_arrays
from ebmlang.cli.command_timing import Timing, timed

RING = """\
latent x[2] : real
param r = 3.0
energy ring = (sqrt(x[0]^2 + x[1]^2) - r)^2
"""
COMPILED_LINE = re.compile(r"time: compiled in \d+\.\d\d s, then \d+\.\d\d s sampling "
                           r"\(\d+ chain-steps/s after compilation\)")
EAGER_LINE = re.compile(r"time: \d+\.\d\d s \(\d+ chain-steps/s\)")


class FakeClock:
    """A clock that only moves when told to: timings without timing-dependent asserts."""

    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def test_the_rate_clock_starts_after_the_warm_up():
    clock, calls = FakeClock(), []

    def warm_up():
        calls.append("warm up")
        clock.advance(7.0)  # compiling
        return "start"

    def run(start):
        calls.append(f"run from {start}")
        clock.advance(2.0)  # sampling
        return "samples"

    result, timing = timed(run, warm_up, clock=clock)
    assert (result, calls) == ("samples", ["warm up", "run from start"])
    assert timing == Timing(seconds=2.0, compile_seconds=7.0)
    # 1000 chain-steps in the 2 s of sampling, not in the 9 s of the whole call.
    assert timing.line(1000) == "time: compiled in 7.00 s, then 2.00 s sampling (500 chain-steps/s after compilation)"


def test_without_a_warm_up_the_line_is_the_plain_rate():
    clock = FakeClock()
    result, timing = timed(lambda: clock.advance(4.0) or "samples", clock=clock)
    assert (result, timing) == ("samples", Timing(seconds=4.0))
    assert timing.line(1000) == "time: 4.00 s (250 chain-steps/s)"


def test_jax_sample_reports_compile_time_apart_and_draws_what_a_plain_run_draws(run_ebm, tmp_path):
    path = tmp_path / "ring.ebm"
    path.write_text(RING)
    out = tmp_path / "draws.npz"
    status, stdout, err = run_ebm("sample", path, "--backend", "jax", "--chains", 3, "--steps", 20, "--seed", 4,
                                  "--quiet", "--out", out)
    assert status == 0, err
    assert COMPILED_LINE.search(stdout), stdout
    # The warm-up step changes nothing: the run starts where a plain run starts, same stream.
    plain = ebm.load(path, backend="jax").sample(chains=3, steps=20, seed=4, progress=False)
    np.testing.assert_array_equal(read_arrays(out)["x"], plain["x"])


def test_an_eager_backend_reports_one_time_and_rate(run_ebm, tmp_path):
    path = tmp_path / "ring.ebm"
    path.write_text(RING)
    status, stdout, err = run_ebm("sample", path, "--backend", "torch", "--chains", 2, "--steps", 5, "--quiet")
    assert status == 0, err
    assert EAGER_LINE.search(stdout) and "compiled" not in stdout, stdout
