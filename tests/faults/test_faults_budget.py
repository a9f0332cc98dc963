"""A resource budget before any allocation: hostile but valid programs are refused with a
located error naming the declaration and the figure, having allocated little.

Memory is measured by the test process itself (tracemalloc sees numpy's allocations);
no assertion is about speed.
"""
from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

import ebmlang as ebm
from ebmlang.budget import Budget, as_budget, format_bytes
from ebmlang.errors import EbmError

NESTED = "energy e = " + "".join(f"sum(i{k} in 0..2) " for k in range(24)) + "x[0]"
REFUSED_AT_LOAD = {
    "24 nested sums": ("latent x[2] : real\n" + NESTED + "\n", "up to 16,777,216 index tuples", 2),
    "a 10^4 x 10^4 sum": ("latent x[2] : real\nenergy e = sum(i in 0..10000, j in 0..10000) x[0] * 0.001\n",
                          "up to 100,000,000 index tuples", 2),
    "10^11 latent reals": ("latent x[100000000000] : real\nenergy e = x[0]^2\n",
                           "variable 'x', with 100,000,000,000 elements", 1),
    "10^11 params": ("latent x[2] : real\nparam b[100000000000] = 0\nenergy e = b[0] * x[0]\n",
                     "param 'b', with 100,000,000,000 elements", 2),
    "an mlp with 10^12 weights": ("latent x[64] : real\nparam f : mlp(64 -> 1000000 -> 1000000)\n"
                                  "energy e = f(x)[0]\n", "the network 'f'", 2),
    "param w[10^40]": ("latent x[2] : real\nparam w[10^40] = 0\nenergy e = w[0] * x[0]\n", "too large", 2),
    "latent x[10^40]": ("latent x[10^40] : real\nenergy e = x[0]^2\n", "too large", 1),
}


def refused(run) -> tuple[EbmError, int]:
    """The EbmError `run()` raises and the peak memory traced while it ran."""
    tracemalloc.start()
    try:
        with pytest.raises(EbmError) as caught:
            run()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return caught.value, peak


@pytest.mark.parametrize("case", list(REFUSED_AT_LOAD))
def test_hostile_programs_are_refused_before_they_allocate(case):
    source, figure, line = REFUSED_AT_LOAD[case]
    error, peak = refused(lambda: ebm.loads(source, backend="numpy"))
    assert figure in error.message, error
    assert error.span is not None and error.span.line == line
    assert peak < 200 * 2 ** 20, format_bytes(peak)


def test_the_budget_can_be_raised_and_lowered():
    source = "latent x[2] : real\nenergy e = sum(i in 0..3000, j in 0..3000) x[0] * 1e-6\n"
    ebm.loads(source, backend="numpy")                       # 9e6 tuples: well inside 2 GiB
    with pytest.raises(EbmError, match="more than the budget of 64 MiB"):
        ebm.loads(source, backend="numpy", budget="64MiB")
    huge = "latent x[2] : real\nparam b[300000000] = 0\nenergy e = b[0] * x[0]\n"
    with pytest.raises(EbmError, match="2.24 GiB, more than the budget of 2 GiB"):
        ebm.loads(huge, backend="numpy")
    assert as_budget("3GiB") == Budget(3 * 2 ** 30) and as_budget(1e6) == Budget(10 ** 6)
    for bad in ("lots", "-1GiB", 0, float("nan"), True, [1]):
        with pytest.raises(EbmError):
            as_budget(bad)


def test_sampling_a_huge_categorical_is_refused_at_its_declaration():
    model = ebm.loads("latent y[2] : categorical(1000000000)\nenergy e = [y[0] == y[1]]\n", backend="numpy")
    error, peak = refused(lambda: model.sample(chains=1, steps=2, progress=False))
    assert "sampling 'y'" in error.message and error.span.line == 1
    error, _ = refused(lambda: model.argmin())
    assert "sampling 'y'" in error.message and error.span.line == 1   # annealing: the same draws
    assert peak < 200 * 2 ** 20
    # Observing such a variable costs nothing: its values are checked without listing them.
    observed = ebm.loads("observed y[2] : integer in 0..1000000000\nlatent x : real\n"
                         "energy e = (x - y[0] / 1e9)^2\n", backend="torch", dtype="float64")
    assert observed.argmin(observed={"y": np.array([5e8, 1.0])})["x"] == pytest.approx(0.5, abs=1e-4)
    with pytest.raises(EbmError, match="outside its domain"):
        observed.argmin(observed={"y": np.array([1e9, 1.0])})


def test_a_crafted_checkpoint_gets_the_same_budget(tmp_path):
    from safetensors.numpy import save_file

    from ebmlang.learning.checkpoint import read_checkpoint, source_hash

    model = ebm.loads("latent x[2] : real\nparam b = 0\nenergy e = b * x[0]^2\n", backend="numpy")
    path = tmp_path / "small.safetensors"
    model.save(path)
    arrays, metadata = read_checkpoint(path)
    # A crafted file: the stored source asks for 3^24 index tuples, the hashes are made to match.
    metadata["source"] = "latent x[2] : real\nparam b = 0\n" + NESTED.replace("x[0]", "b * x[0]") + "\n"
    metadata["source_sha256"] = source_hash(metadata["source"])
    crafted = tmp_path / "crafted.safetensors"
    save_file(arrays, str(crafted), metadata=metadata)
    error, peak = refused(lambda: ebm.load(crafted, backend="numpy"))
    assert "index tuples" in error.message and peak < 200 * 2 ** 20


def run_ebm(capsys, *argv) -> tuple[int, str, str]:
    from ebmlang.cli.entry import main

    status = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_check_refuses_what_load_refuses(capsys, tmp_path):
    path = tmp_path / "big.ebm"
    path.write_text(REFUSED_AT_LOAD["a 10^4 x 10^4 sum"][0])
    status, _, err = run_ebm(capsys, "check", path)
    assert status == 1 and "more than the budget" in err and "Traceback" not in err
    medium = tmp_path / "medium.ebm"
    medium.write_text("latent x[2] : real\nenergy e = sum(i in 0..1000, j in 0..1000) x[0] * 1e-6\n")
    status, _, err = run_ebm(capsys, "check", medium, "--budget", "16MiB")
    assert status == 1 and "more than the budget of 16 MiB" in err
    status, out, err = run_ebm(capsys, "check", medium, "--budget", "64MiB")
    assert status == 0 and out.startswith("OK"), err
    status, _, err = run_ebm(capsys, "plan", path)
    assert status == 1 and "more than the budget" in err
    status, _, err = run_ebm(capsys, "check", path, "--budget", "lots")
    assert status == 1 and "cannot read the budget" in err
