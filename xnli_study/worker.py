"""One process of a data-parallel training unit: what ``accelerate launch`` starts N times
(:mod:`xnli_study.launch`). Every process trains; the main one saves and records the unit.

``python -m xnli_study.worker --params P --run-dir R --stage intermediate --unit sst2-seed0``

With ``--report-units`` (and ``--unit`` as often as needed) it is one of the processes that run
units side by side (:mod:`xnli_study.sidebyside`): it runs its units one after the other, printing
a line as each starts and ends, and goes on after a unit that failed. Without ``--stage`` each
``--unit`` is a ``stage/unit`` label, so that one worker can train an intermediate unit and then the
MNLI unit that builds on it (``--unit intermediate/sst2-seed0 --unit transfer/sst2-seed0``).
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import sys
import traceback
from pathlib import Path

from .config import load_params
from .launch import WORKER_ERROR, die_with_parent
from .stages import at_run_dir
from .sidebyside import FINISHED, STARTED, THREADS
from .study import run_listed_units, run_one_unit
from .training import is_main_process


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m xnli_study.worker", description=__doc__)
    parser.add_argument("--params", required=True)
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--stage", choices=["intermediate", "transfer"],
                        help="the stage of the units (without it, each --unit is a stage/unit label)")
    parser.add_argument("--unit", required=True, action="append")
    parser.add_argument("--report-units", action="store_true",
                        help="print a line as each unit starts and ends, and go on after a failed unit")
    args = parser.parse_args(argv)
    die_with_parent()  # the launcher ended (stopped, or killed): so does this process
    logging.basicConfig(level=logging.INFO if is_main_process() else logging.WARNING, format="%(message)s")
    try:
        if os.environ.get(THREADS):
            import torch

            torch.set_num_threads(int(os.environ[THREADS]))
        config = at_run_dir(load_params(args.params), args.run_dir)
        if args.report_units:
            def report(name: str, reason: str | None, *, started: bool = False) -> None:
                line = f"{STARTED} {name}" if started else f"{FINISHED} {name} " + (f"failed: {reason}" if reason else "ok")
                print(line, flush=True)

            run_listed_units(config, Path(args.run_dir), args.stage, args.unit, report=report)
        else:
            if not args.stage:
                parser.error("--stage is needed without --report-units")
            run_one_unit(config, Path(args.run_dir), args.stage, args.unit[-1])
    except Exception as err:  # noqa: BLE001 - the launcher reports this line
        traceback.print_exc()
        print(f"{WORKER_ERROR} {type(err).__name__}: {' '.join(str(err).split())}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    code = main()
    gc.freeze()  # spares the exit's final collection over what torch and transformers loaded (about a second)
    sys.exit(code)
