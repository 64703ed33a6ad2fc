"""A fault hook for tests: kill a run at a named point, to check that it resumes correctly.

Inert unless the environment variable ``XNLI_STUDY_FAULT`` is set; nothing else reads it. Its value
is ``<point>`` or ``<point>:<marker file>``. When a process of the run (the command line or a
stage notebook's kernel) reaches that point:

* with a marker file, it writes its process id and process group there (JSON) and waits, so that
  the test can kill the whole run with SIGKILL at exactly that point, kernels included;
* without one, it kills its own process group with SIGKILL.

The points: ``intermediate-checkpoint`` and ``mnli-checkpoint`` (just after a training checkpoint
is saved), ``embeddings`` (while a sentence-vector cache is half written) and ``render`` (while
``report.html`` is half written).
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

ENV = "XNLI_STUDY_FAULT"
#: set for the workers that run a stage's units side by side (:mod:`xnli_study.sidebyside`): the
#: process group of the run, which a fault point kills or reports instead of the worker's own
GROUP = "XNLI_STUDY_FAULT_GROUP"
POINTS = ("intermediate-checkpoint", "mnli-checkpoint", "embeddings", "render")


def reached(point: str) -> None:
    """Called at each named point; does nothing unless ``XNLI_STUDY_FAULT`` names ``point``."""
    spec = os.environ.get(ENV)
    if not spec:
        return
    name, _, marker = spec.partition(":")
    if name != point:
        return
    group = int(os.environ.get(GROUP) or os.getpgrp())
    if not marker:
        os.killpg(group, signal.SIGKILL)
    tmp = Path(marker + ".writing")
    tmp.write_text(json.dumps({"point": point, "pid": os.getpid(), "pgid": group}))
    os.replace(tmp, marker)
    while True:  # the test kills this process now
        time.sleep(0.5)
