"""Progress of a showcase section: a rich bar on a terminal, a line every few seconds in a log.

A section reports `update(done, total, note)` at its natural steps (a temperature, an
epoch). What the reader sees depends on the mode:

- "bar": a transient rich progress bar, the display `fit` and `sample` use; it vanishes
  when the section ends, leaving the section's one-line result.
- "log": plain lines such as `[RBM] epoch 4, test log-lik -20.90 (4/16, 12 s)`, at most one
  every `every_s` seconds, so a log of a long run stays short and a short section
  prints nothing.
- "off": nothing.
- "auto": "bar" when stdout is a terminal, else "log".
"""
from __future__ import annotations

import sys
import time
from collections.abc import Callable

PROGRESS_MODES = ("auto", "bar", "log", "off")
# A log line at most this often: enough to see a run is alive, few enough to read.
LOG_EVERY_S = 5.0


def resolve_mode(mode: str) -> str:
    """ "auto" -> "bar" on a terminal, "log" otherwise (a file, a pipe, CI)."""
    if mode not in PROGRESS_MODES:
        raise ValueError(f"progress mode {mode!r} is not one of {', '.join(PROGRESS_MODES)}")
    if mode == "auto":
        return "bar" if sys.stdout.isatty() else "log"
    return mode


class SectionProgress:
    """Progress of one section; a context manager that closes its bar on exit."""

    def __init__(self, name: str, mode: str = "off", *, echo: Callable[[str], None] = print,
                 every_s: float = LOG_EVERY_S, clock: Callable[[], float] = time.perf_counter):
        self.name = name
        self.mode = resolve_mode(mode)
        self.echo = echo
        self.every_s = every_s
        self.clock = clock
        self.started = clock()
        # The first log line comes only after every_s: a section faster than that is silent.
        self.last_line = self.started
        self.bar = None
        self.task = None

    def __enter__(self) -> "SectionProgress":
        return self

    def update(self, done: int, total: int, note: str = "") -> None:
        """`done` of `total` steps finished; `note` says where the section is (e.g. "T = 2.27")."""
        if self.mode == "bar":
            self._update_bar(done, total, note)
        elif self.mode == "log":
            now = self.clock()
            if now - self.last_line >= self.every_s:
                self.last_line = now
                text = f"{note} " if note else ""
                self.echo(f"[{self.name}] {text}({done}/{total}, {now - self.started:.0f} s)")

    def _update_bar(self, done: int, total: int, note: str) -> None:
        if self.bar is None:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TimeElapsedColumn(), transient=True)
            self.bar.start()
            self.task = self.bar.add_task(self.name, total=total)
        description = f"[{self.name}] {note}" if note else f"[{self.name}]"
        self.bar.update(self.task, completed=done, total=total, description=description)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None

    def __exit__(self, *exc) -> bool:
        self.close()
        return False
