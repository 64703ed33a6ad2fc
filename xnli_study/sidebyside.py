"""Training units side by side on one node: ``distributed.unit_processes`` worker processes.

A small model on a CPU cannot keep every core busy: its matrices are too small to share between
threads. With ``unit_processes: N`` the units of a training stage (intermediate, transfer) are
dealt round-robin to N ``python -m xnli_study.worker`` processes, each with an Nth of the cores
as its torch threads, each running its units one after the other (the data read once per
process). Each unit is seeded by itself, so a unit's result does not depend on the process it
runs in. A worker prints a line as each unit starts and ends (:data:`STARTED`, :data:`FINISHED`);
the stage reports those as its progress, and writes each unit's output into that unit's
``launch.log``. A stopped or interrupted stage stops its workers (and a worker dies with the
process that started it).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

from .faults import GROUP as FAULT_GROUP
from .launch import die_with_parent, worker_error

#: a worker printed this as a unit started (followed by the unit's name)
STARTED = "xnli-study unit started:"
#: a worker printed this as a unit ended: the unit's name, then ``ok`` or ``failed: <reason>``
FINISHED = "xnli-study unit finished:"
#: the environment variable that gives a worker its torch thread count
THREADS = "XNLI_STUDY_THREADS"


def deal(names: list[str], processes: int) -> list[list[str]]:
    """The units of each worker, dealt round-robin (empty workers left out)."""
    return [names[i::processes] for i in range(processes) if names[i::processes]]


def cores() -> int:
    """The cores this process may run on (its CPU affinity: a Slurm task's or taskset's share)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def threads_each(processes: int, cores_here: int | None = None) -> int:
    """The torch threads each of ``processes`` workers gets: an equal share of the cores, at least 1."""
    return max(1, (cores_here or cores()) // processes)


def worker_command(*, params_path: str | Path, run_dir: str | Path, stage: str | None, names: list[str]) -> list[str]:
    """The worker that runs ``names``: unit names of ``stage``, or ``stage/unit`` labels (``stage`` None)."""
    command = [sys.executable, "-m", "xnli_study.worker", "--params", str(params_path), "--run-dir", str(run_dir),
               *(["--stage", stage] if stage else []), "--report-units"]
    for name in names:
        command += ["--unit", name]
    return command


def parse_line(line: str) -> tuple[str, str, str | None] | None:
    """``("started", name, None)``, ``("finished", name, None)`` (ok), ``("finished", name, reason)``
    (failed), or None for any other line."""
    if line.startswith(STARTED):
        return "started", line[len(STARTED):].strip(), None
    if line.startswith(FINISHED):
        name, _, outcome = line[len(FINISHED):].strip().partition(" ")
        return "finished", name, (None if outcome == "ok" else outcome.removeprefix("failed:").strip() or "failed")
    return None


def run_side_by_side(*, params_path: str | Path, run_dir: str | Path, stage: str | None, names: list[str],
                     processes: int, log_of: Callable[[str], Path],
                     on_start: Callable[[str], None], on_finish: Callable[[str, str | None], None],
                     shares: list[list[str]] | None = None) -> None:
    """Run the units ``names`` of ``stage`` in ``processes`` workers, dealt round-robin, or as
    ``shares`` says (one list per worker, run in its order; ``stage`` None: the names are
    ``stage/unit`` labels, as :func:`~xnli_study.study.train_ahead` deals them). ``on_start(name)`` and
    ``on_finish(name, reason or None)`` are called (one at a time) as the workers report; a unit
    whose worker ended before reporting it is finished with the worker's exit (and its error line)
    as its reason. ``log_of(name)`` is the file that takes a unit's output. Interrupted (Ctrl-C,
    SIGTERM), or if following a worker fails, every worker is stopped before the error goes on,
    and the units they had not finished are left as they were (neither done nor failed)."""
    lock = threading.Lock()
    stopping = threading.Event()
    problems: list[BaseException] = []
    # the workers' fault points (xnli_study.faults) stop the whole run, as in one process
    env = {**os.environ, THREADS: str(threads_each(processes)), FAULT_GROUP: str(os.getpgrp())}
    env.setdefault("TOKENIZERS_PARALLELISM", "false")  # each worker has its share of the cores already

    def follow(proc: subprocess.Popen, mine: list[str]) -> None:
        current, sinks, open_, error = mine[0], {}, set(mine), None
        try:
            for line in proc.stdout:
                error = worker_error(line) or error
                event = parse_line(line)
                if event and event[1] in open_:  # a unit of this worker's, not yet finished
                    kind, name, reason = event
                    if kind == "started":
                        current = name
                    with lock:
                        if kind == "started":
                            on_start(name)
                        else:
                            open_.discard(name)
                            on_finish(name, reason)
                if current not in sinks:
                    path = log_of(current)
                    path.parent.mkdir(parents=True, exist_ok=True)
                    sinks[current] = open(path, "w", encoding="utf-8")
                sinks[current].write(line)
                sinks[current].flush()
            code = proc.wait()
            if stopping.is_set():
                return
            for name in [n for n in mine if n in open_]:
                with lock:
                    on_finish(name, f"its worker process exited with code {code} before the unit ended"
                                    + (f": {error}" if error else "") + f" (output: {log_of(current)})")
        except BaseException as err:  # noqa: BLE001 - handed to the stage's thread, which stops the workers
            problems.append(err)
        finally:
            for sink in sinks.values():
                sink.close()

    procs: list[subprocess.Popen] = []
    try:
        work = [share for share in shares if share] if shares is not None else deal(names, processes)
        for mine in work:  # every worker started before any thread (a fork with threads running is unsafe)
            procs.append(subprocess.Popen(
                worker_command(params_path=params_path, run_dir=run_dir, stage=stage, names=mine),
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True,
                encoding="utf-8", errors="replace", env=env, bufsize=1, start_new_session=True,
                preexec_fn=die_with_parent))
        threads = [threading.Thread(target=follow, args=(proc, mine), daemon=True) for proc, mine in zip(procs, work)]
        for thread in threads:
            thread.start()
        for thread in threads:
            while thread.is_alive() and not problems:  # in slices, so that Ctrl-C reaches this thread
                thread.join(0.2)
        if problems:
            raise problems[0]
    finally:
        if any(proc.poll() is None for proc in procs):
            stopping.set()
            stop_all(procs)


def stop_all(procs: list[subprocess.Popen], grace: float = 10) -> None:
    """SIGTERM to every worker's process group at once, SIGKILL to those still there after ``grace``
    seconds (a second Ctrl-C while waiting kills them at once)."""
    def signal_all(sig: int) -> None:
        for proc in procs:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, sig)
                except ProcessLookupError:
                    pass

    try:
        signal_all(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc in procs:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
    finally:
        signal_all(signal.SIGKILL)
        for proc in procs:
            proc.wait()
