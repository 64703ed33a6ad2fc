"""Data-parallel training of one unit through Accelerate.

With ``distributed.processes`` above 1 (or ``distributed.accelerate_config`` set), each training
unit runs as ``accelerate launch`` with that many processes, each one ``python -m
xnli_study.worker`` on the same unit; the ``Trainer`` splits every optimizer step's batch between
them (``gloo`` on CPUs, ``nccl`` on GPUs), the main process alone writes into the run folder.
The launch's output goes to the unit's ``launch.log``; a failed launch raises one error naming
the worker's error and that file.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
from pathlib import Path

import yaml

from .errors import ParamsError, StudyError
from .runfolder import RunFolder

log = logging.getLogger("xnli_study")

#: printed by a worker before it exits on an error; the launcher reports the line that follows it
WORKER_ERROR = "xnli-study worker error:"


class LaunchFailed(StudyError):
    """A launched training ended with an error."""


def accelerate_file(config) -> Path | None:
    """The Accelerate config file the params name, resolved (None when unset)."""
    name = config.distributed.accelerate_config
    return config.path(name) if name else None


def check_distributed(config) -> None:
    """Refuse, with one line each, what would make a launch fail or train with another global
    batch than the params say: a missing or unreadable Accelerate config, a process count that
    disagrees with it, more processes than GPUs on this node."""
    d = config.distributed
    path = accelerate_file(config)
    if path is not None:
        if not path.is_file():
            raise ParamsError(f"distributed.accelerate_config: {path} not found; write one with `accelerate config "
                              f"--config_file {path}`, or remove the key to launch distributed.processes "
                              "processes on this node")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as err:
            raise ParamsError(f"distributed.accelerate_config: {path} is not valid YAML ({type(err).__name__}); "
                              "write it with `accelerate config`") from None
        count = (data or {}).get("num_processes") if isinstance(data, dict) else None
        if count != d.processes:
            raise ParamsError(
                f"distributed.processes is {d.processes} but {path} has num_processes: {count}; set "
                f"distributed.processes to the same number (the global batch and the step counts follow it)")
        return
    if d.processes > 1 and config.device in ("auto", "cuda"):
        import torch

        gpus = torch.cuda.device_count()
        if gpus and d.processes > gpus:
            raise ParamsError(f"distributed.processes: {d.processes} processes, but this node has {gpus} GPUs "
                              f"(CUDA_VISIBLE_DEVICES); set it to {gpus} at most, or give an "
                              "accelerate_config for several nodes")


def free_port() -> int:
    """A TCP port free on this host, for the launch's rendezvous (shards side by side each need one)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch_command(config, *, params_path: str | Path, run_dir: str | Path, unit) -> list[str]:
    """The ``accelerate launch`` command line of one unit."""
    cmd = [sys.executable, "-m", "accelerate.commands.launch"]
    path = accelerate_file(config)
    if path is not None:  # the file says how many processes, on which nodes, and where they meet
        cmd += ["--config_file", str(path)]
    else:  # processes on this node: torchrun's launcher (accelerate's "multi_gpu" is it, on CPUs too)
        cmd += ["--multi_gpu", "--num_processes", str(config.distributed.processes), "--num_machines", "1",
                "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(free_port())]
    return cmd + ["-m", "xnli_study.worker", "--params", str(params_path), "--run-dir", str(run_dir),
                  "--stage", unit.stage, "--unit", unit.name]


def worker_error(output: str) -> str | None:
    """The error a worker printed before exiting, if any."""
    for line in output.splitlines():
        if line.startswith(WORKER_ERROR):
            return line[len(WORKER_ERROR):].strip()
    return None


def run_launched(config, *, params_path: str | Path, run_dir: str | Path, unit) -> None:
    """Train ``unit`` with ``accelerate launch``; its output goes to the unit's ``launch.log``."""
    folder = RunFolder(run_dir)
    output = folder.unit(unit.stage, unit.name, "launch_log")
    output.parent.mkdir(parents=True, exist_ok=True)
    log.info("%s: accelerate launch, %d processes (output: %s)", unit.label, config.distributed.processes,
             folder.relative(output))
    with open(output, "w", encoding="utf-8") as sink:
        code = subprocess.run(launch_command(config, params_path=params_path, run_dir=run_dir, unit=unit),
                              stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL).returncode
    if code != 0:
        text = output.read_text(encoding="utf-8", errors="replace")
        error = worker_error(text) or (text.strip().splitlines() or ["no output"])[-1]
        raise LaunchFailed(f"accelerate launch of {unit.label} exited with {code}: {error} (whole output: "
                           f"{folder.relative(output)})")
