"""Measuring contenders fairly: one `Row` per (case, contender).

A contender is a name and a `prepare(problem)` function that builds whatever it needs
(graphs, programs, jitted functions) and returns `run(steps) -> output`. The harness

1. imports the contender's `requires` modules first; an import failure becomes a row
   with status "not installed: <error>" (never a silently missing row);
2. times `prepare` plus a warm-up `run(warmup_steps)` as *setup* (build, JIT compile,
   first-touch allocations), reported separately from the timed run;
3. times `run(steps)` until its output is ready (JAX arrays are blocked on), best of up
   to `MAX_REPEATS` runs while the total stays under `REPEAT_BUDGET_S`;
4. turns the output into figures with the workload's `summarise(output, seconds)`.

Every `run(steps)` starts again from the problem's initial state and seed, so repeats do
the same work and the output of the best run is as good as any other.
"""
from __future__ import annotations

import gc
import importlib
import math
import resource
import sys
import threading
import time
import traceback
import tracemalloc
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import numpy as np

Problem = TypeVar("Problem")

# Timed runs: best of up to three, but a run that is already long is not repeated; one
# multi-second run is a stable figure on an otherwise idle machine.
MAX_REPEATS = 3
# Where the workloads that take a device put their arrays ("cpu", "cuda", "cuda:1", ...);
# set by run_all.py --device. Workloads that ignore it say so in their description.
DEVICE = "cpu"
REPEAT_BUDGET_S = 3.0

OK = "ok"


@dataclass(frozen=True)
class Headline:
    """The figure a workload's ratio column compares, and against which contender.

    The ratio is always "times better than the baseline": metric / baseline when higher
    is better (throughput), baseline / metric when lower is better (seconds).
    """

    metric: str
    higher_is_better: bool
    baseline: str

    def ratio(self, value: float, baseline_value: float) -> float:
        if self.higher_is_better:
            return value / baseline_value
        return baseline_value / value


class NotApplicable(Exception):
    """Raised by a contender's `prepare` for a case it does not handle; the row says
    "skipped: <message>"."""


@dataclass(frozen=True)
class Row:
    """One measured (case, contender) pair.

    status: "ok", "not installed: <error>", "failed: <error>" or "skipped: <reason>".
    setup_s: build + JIT compile + warm-up run, excluded from run_s.
    run_s: the best timed run.
    metrics: figures named by the workload (throughputs, energies, accuracies ...).
    """

    workload: str
    case: str
    contender: str
    status: str = OK
    setup_s: float | None = None
    run_s: float | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)
    note: str = ""

    @property
    def ok(self) -> bool:
        return self.status == OK

    def to_json(self) -> dict[str, Any]:
        return {
            "workload": self.workload,
            "case": self.case,
            "contender": self.contender,
            "status": self.status,
            "setup_s": self.setup_s,
            "run_s": self.run_s,
            "metrics": dict(self.metrics),
            "note": self.note,
        }


@dataclass(frozen=True)
class Contender(Generic[Problem]):
    """A way of solving a workload's problem.

    prepare(problem) builds and returns `run(steps) -> output`; the output type is the
    workload's (e.g. final spins [chains, L, L]) in any array library.
    requires: modules that must import for this contender to exist at all.
    note: shown beside every row it produces (e.g. a compatibility shim it needed).
    """

    name: str
    prepare: Callable[[Problem], Callable[[int], Any]]
    requires: tuple[str, ...] = ()
    note: str = ""


def missing_requirement(modules: Iterable[str]) -> str | None:
    """The import error of the first module in `modules` that cannot be imported, or None."""
    for module in modules:
        try:
            importlib.import_module(module)
        except Exception as error:  # a broken install counts as not installed too
            return f"{type(error).__name__}: {error}".splitlines()[0]
    return None


def block_until_ready(output: Any) -> Any:
    """Wait until asynchronous computations behind `output` finished (JAX, CUDA torch)."""
    jax = sys.modules.get("jax")
    if jax is not None:
        for leaf in jax.tree_util.tree_leaves(output):
            if hasattr(leaf, "block_until_ready"):
                leaf.block_until_ready()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.synchronize()
    return output


def to_numpy(array: Any) -> np.ndarray:
    """A numpy copy of a numpy, torch or JAX array."""
    if hasattr(array, "detach"):
        array = array.detach().cpu()
    return np.asarray(array)


def describe_error(error: BaseException) -> str:
    """`Type: first line of the message`, short enough for a table cell."""
    text = f"{type(error).__name__}: {error}".splitlines()[0]
    return text if len(text) <= 160 else text[:157] + "..."


def measure(
    workload: str,
    case: str,
    contender: Contender[Problem],
    problem: Problem,
    *,
    steps: int,
    warmup_steps: int,
    summarise: Callable[[Any, float], Mapping[str, float]],
) -> Row:
    """Set up, warm up and time one contender on one problem; never raises.

    summarise(output, run_seconds) turns the (ready) output of the best run into figures.
    """
    missing = missing_requirement(contender.requires)
    if missing is not None:
        return Row(workload, case, contender.name, status=f"not installed: {missing}")
    try:
        start = time.perf_counter()
        run = contender.prepare(problem)
        if warmup_steps > 0:
            block_until_ready(run(warmup_steps))
        setup_s = time.perf_counter() - start

        best_s, best_output, spent, repeats = math.inf, None, 0.0, 0
        while repeats < MAX_REPEATS and (repeats == 0 or spent + best_s < REPEAT_BUDGET_S):
            start = time.perf_counter()
            output = block_until_ready(run(steps))
            elapsed = time.perf_counter() - start
            spent += elapsed
            repeats += 1
            if elapsed < best_s:
                best_s, best_output = elapsed, output
        metrics = dict(summarise(best_output, best_s))
    except NotApplicable as reason:
        return Row(workload, case, contender.name, status=f"skipped: {reason}")
    except Exception as error:
        traceback.print_exc(file=sys.stderr)
        return Row(workload, case, contender.name, status=f"failed: {describe_error(error)}")
    note = "; ".join(part for part in (f"best of {repeats}" if repeats > 1 else "", contender.note) if part)
    return Row(workload, case, contender.name, setup_s=setup_s, run_s=best_s, metrics=metrics, note=note)


# --------------------------------------------------------------------------
# One-shot builds (compile time and memory)


class PeakRss:
    """Peak resident set size growth while the `with` block runs, sampled every 5 ms.

    ru_maxrss only ever grows over the life of the process, so it says nothing about a
    build that stays below an earlier peak; polling the current RSS does.
    """

    def __init__(self, interval_s: float = 0.005):
        self.interval_s = interval_s
        self.peak_growth_bytes = 0
        self._stop = threading.Event()

    def __enter__(self) -> "PeakRss":
        self._baseline = current_rss_bytes()
        self._peak = self._baseline
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def _poll(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._peak = max(self._peak, current_rss_bytes())

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
        self._peak = max(self._peak, current_rss_bytes())
        self.peak_growth_bytes = self._peak - self._baseline


def current_rss_bytes() -> int:
    """The process's resident set size now (psutil, else /proc, else ru_maxrss)."""
    try:
        import psutil

        return int(psutil.Process().memory_info().rss)
    except ImportError:
        pass
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * resource.getpagesize()
    except OSError:
        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


MIB = 1024.0 * 1024.0
# tracemalloc makes allocation-heavy Python several times slower; builds slower than
# this are measured by RSS only.
TRACE_BUDGET_S = 10.0


def measure_build(workload: str, case: str, contender: Contender[Problem], problem: Problem) -> Row:
    """Time `contender.prepare(problem)` and measure the memory it needs; never raises.

    Two builds: one timed (with peak RSS growth polled alongside, which costs nothing
    measurable), one under tracemalloc for the peak of Python + numpy allocations
    (tracemalloc slows Python code down, so that build is not timed). A timed build over
    `TRACE_BUDGET_S` is not repeated under tracemalloc (it would take several times as
    long); its row says so and keeps the RSS figure. JAX's caches are cleared before each
    build so no contender profits from an earlier one's compile.
    """
    missing = missing_requirement(contender.requires)
    if missing is not None:
        return Row(workload, case, contender.name, status=f"not installed: {missing}")
    try:
        _forget_compiled_programs()
        with PeakRss() as rss:
            start = time.perf_counter()
            built = contender.prepare(problem)
            build_s = time.perf_counter() - start
        del built
        gc.collect()
        traced_peak = None
        if build_s <= TRACE_BUDGET_S:
            _forget_compiled_programs()
            tracemalloc.start()
            try:
                built = contender.prepare(problem)
                _, traced_peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
            del built
            gc.collect()
    except NotApplicable as reason:
        return Row(workload, case, contender.name, status=f"skipped: {reason}")
    except Exception as error:
        traceback.print_exc(file=sys.stderr)
        return Row(workload, case, contender.name, status=f"failed: {describe_error(error)}")
    metrics = {"build s": build_s, "peak RSS growth MiB": rss.peak_growth_bytes / MIB}
    notes = [contender.note] if contender.note else []
    if traced_peak is not None:
        metrics["peak traced MiB"] = traced_peak / MIB
    else:
        notes.append(f"no tracemalloc build: the timed one took over {TRACE_BUDGET_S:g} s")
    return Row(workload, case, contender.name, metrics=metrics, note="; ".join(notes))


def _forget_compiled_programs() -> None:
    gc.collect()
    jax = sys.modules.get("jax")
    if jax is not None:
        jax.clear_caches()
