"""Progress of a stage, unit by unit: which unit runs (condition and seed), its epoch and step,
and an estimate of the time the stage has left.

The lines go to the ``xnli_study`` logger with the prefix :data:`PREFIX`: in a notebook's kernel
they appear under the running cell (stderr, which the report leaves out); ``xnli-study run``
passes the kernel's lines that carry the prefix on to its own stderr (:class:`ForwardProgress`),
so the command line shows the same progress as the notebook.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Callable, TextIO

log = logging.getLogger("xnli_study")

PREFIX = "progress:"
#: at most one training line per unit in this many seconds (and one per tenth of its steps)
MIN_INTERVAL = 2.0


def duration(seconds: float) -> str:
    """``seconds`` in words a person reads at a glance.

    >>> duration(42.4), duration(130), duration(7260)
    ('42 s', '2 min 10 s', '2 h 1 min')
    """
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


class StageProgress:
    """Reports the units of one stage as they run. ``start(unit)`` and ``done(unit)`` frame each
    unit; :meth:`step` (handed to the training as its progress callback) reports its epoch and
    step, at most once per tenth of its steps and every :data:`MIN_INTERVAL` seconds. The time
    left for the stage is the time so far scaled by the share of work left, a unit counting as
    one share (its finished steps as a part of it)."""

    def __init__(self, stage: str, total: int, *, emit: Callable[[str], None] | None = None,
                 clock: Callable[[], float] = time.perf_counter, noun: str = "unit"):
        self.stage, self.total, self.noun = stage, total, noun
        self.emit = emit or (lambda line: log.info("%s", line))
        self.clock = clock
        self.started = clock()
        self.finished = 0
        self.begun = 0  # units started (ahead of finished while units run side by side)
        self._number: dict[str, int] = {}  # each started unit's number
        self.current: str | None = None
        self._last_line = 0.0
        self._last_tenth = -1

    def _left(self, done: float) -> str:
        if done <= 0:
            return "time left: estimated once a unit has made progress"
        elapsed = self.clock() - self.started
        return f"about {duration(elapsed * (self.total - done) / done)} left for the stage"

    def _say(self, text: str, done: float) -> None:
        self.emit(f"{PREFIX} stage {self.stage}, {self.noun} {min(max(self.begun, 1), self.total)} of {self.total} "
                  f"({self.current}): {text}; {self._left(done)}")
        self._last_line = self.clock()

    def start(self, unit: str) -> None:
        self.begun += 1
        self._number[unit] = self.begun
        self.current, self._last_tenth = unit, -1
        self._say("started", self.finished)

    def step(self, *, step: int, max_steps: int, epoch: float, epochs: float) -> None:
        """The training of the current unit reached optimizer ``step`` of ``max_steps``."""
        if max_steps <= 0:
            return
        tenth = int(10 * step / max_steps)
        now = self.clock()
        if step < max_steps and (tenth == self._last_tenth or now - self._last_line < MIN_INTERVAL):
            return
        self._last_tenth = tenth
        self._say(f"epoch {epoch:.1f} of {epochs:g}, step {step} of {max_steps}",
                  self.finished + step / max_steps)

    def done(self, unit: str, *, failed: bool = False) -> None:
        self.finished += 1
        self.current = unit
        self.emit(f"{PREFIX} stage {self.stage}, {self.noun} {self._number.get(unit, self.finished)} of {self.total} ({unit}) "
                  f"{'failed' if failed else 'done'}; "
                  # units still running side by side count as half done
                  + (self._left(self.finished + max(0, self.begun - self.finished) / 2) if self.finished < self.total else
                     f"stage {self.noun}s done in {duration(self.clock() - self.started)}"))


class ForwardProgress:
    """A file-like sink for a notebook kernel's stderr (papermill's ``stderr_file``) that writes
    the progress lines, whole, to ``out`` and drops the rest."""

    def __init__(self, out: TextIO | None = None):
        self.out = out if out is not None else sys.stderr
        self._pending = ""

    def write(self, text: str) -> int:
        self._pending += text
        *lines, self._pending = self._pending.split("\n")
        for line in lines:
            line = line.rsplit("\r", 1)[-1]
            if line.startswith(PREFIX):
                self.out.write(line + "\n")
                self.out.flush()
        return len(text)

    def flush(self) -> None:
        self.out.flush()
