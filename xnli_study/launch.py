"""Data-parallel training of one unit through Accelerate.

With ``distributed.processes`` above 1 (or ``distributed.accelerate_config`` set), each training
unit runs as ``accelerate launch`` with that many processes, each one ``python -m
xnli_study.worker`` on the same unit; the ``Trainer`` splits every optimizer step's batch between
them (``gloo`` on CPUs, ``nccl`` on GPUs), the main process alone writes into the run folder.
The launch's output goes to the unit's ``launch.log``; a failed launch raises one error naming
the worker's error and that file. A launch is stopped (SIGTERM, then SIGKILL after a grace
period) when the run that started it is interrupted, so no worker outlives it.

On one node the launch is given its own Accelerate config (processes, this node's GPUs as
``CUDA_VISIBLE_DEVICES`` shows them, a free port), so that the user's default config
(``accelerate config``) changes nothing. With ``distributed.accelerate_config`` naming several
machines, the run must be inside a Slurm allocation of that many nodes: ``srun`` starts the
launcher once per node, and they meet at this node through the c10d rendezvous, as Accelerate's
own Slurm examples do.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from .errors import ParamsError, StudyError
from .runfolder import RunFolder

log = logging.getLogger("xnli_study")

#: printed by a worker before it exits on an error; the launcher reports the line that follows it
WORKER_ERROR = "xnli-study worker error:"
#: seconds a stopped launch has to end its workers before it is killed
STOP_GRACE_S = 60


class LaunchFailed(StudyError):
    """A launched training ended with an error."""


def accelerate_file(config) -> Path | None:
    """The Accelerate config file the params name, resolved (None when unset)."""
    name = config.distributed.accelerate_config
    return config.path(name) if name else None


def accelerate_settings(config) -> dict:
    """The Accelerate config file the params name, read (``{}`` when none is named)."""
    path = accelerate_file(config)
    if path is None:
        return {}
    if not path.is_file():
        raise ParamsError(f"distributed.accelerate_config: {path} not found; write one with `accelerate config "
                          f"--config_file {path}`, or remove the key to launch distributed.processes "
                          "processes on this node")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise ParamsError(f"distributed.accelerate_config: {path} is not valid YAML ({type(err).__name__}); "
                          "write it with `accelerate config`") from None
    if not isinstance(data, dict):
        raise ParamsError(f"distributed.accelerate_config: {path} holds no settings; write it with `accelerate config`")
    return data


def machines(config) -> int:
    """The nodes one training runs on (the Accelerate config's ``num_machines``; 1 without one)."""
    return int(accelerate_settings(config).get("num_machines") or 1)


def check_distributed(config) -> None:
    """Refuse, with one line each, what would make a launch fail or train with another global
    batch than the params say: a missing or unreadable Accelerate config, a process count that
    disagrees with it, several machines outside a Slurm allocation of as many nodes, more
    processes than GPUs on this node."""
    d = config.distributed
    settings = accelerate_settings(config)
    if settings:
        path = accelerate_file(config)
        count = settings.get("num_processes")
        if count != d.processes:
            raise ParamsError(
                f"distributed.processes is {d.processes} but {path} has num_processes: {count}; set "
                f"distributed.processes to the same number (the global batch and the step counts follow it)")
        nodes = machines(config)
        allocated = int(os.environ.get("SLURM_JOB_NUM_NODES", "0") or 0)
        if nodes > 1 and allocated < nodes:
            raise ParamsError(
                f"distributed.accelerate_config: {path} trains on num_machines: {nodes}, which needs a launcher on "
                f"every node: run inside a Slurm allocation of {nodes} nodes (sbatch --nodes={nodes}; srun starts "
                f"them), or set num_machines: 1" + (f" (this allocation has {allocated})" if allocated else ""))
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
        sock.bind(("", 0))
        return sock.getsockname()[1]


def node_config(config, folder: Path) -> Path:
    """A one-node Accelerate config for one launch, written into ``folder``: the processes, every
    GPU that ``CUDA_VISIBLE_DEVICES`` leaves visible, a free port, nothing from the user's
    default config."""
    path = folder / "accelerate.yaml"
    path.write_text(yaml.safe_dump({
        "compute_environment": "LOCAL_MACHINE", "distributed_type": "MULTI_GPU", "num_machines": 1,
        "machine_rank": 0, "num_processes": config.distributed.processes, "gpu_ids": "all",
        "mixed_precision": "no", "use_cpu": False, "main_process_port": free_port(), "rdzv_backend": "static",
    }))
    return path


def launch_command(config, *, params_path: str | Path, run_dir: str | Path, unit, scratch: Path) -> list[str]:
    """The command line that trains one unit: ``accelerate launch`` on this node (its config
    written into ``scratch``), or ``srun`` starting it on each node of a Slurm allocation."""
    worker = ["-m", "xnli_study.worker", "--params", str(params_path), "--run-dir", str(run_dir),
              "--stage", unit.stage, "--unit", unit.name]
    launcher = [sys.executable, "-m", "accelerate.commands.launch"]
    path = accelerate_file(config)
    if path is None:
        return launcher + ["--config_file", str(node_config(config, scratch))] + worker
    nodes = machines(config)
    if nodes == 1:
        return launcher + ["--config_file", str(path)] + worker
    # one launcher per node; they find each other at this node (c10d rendezvous: ranks are dealt out)
    return (["srun", f"--nodes={nodes}", "--ntasks-per-node=1", "--kill-on-bad-exit=1"] + launcher
            + ["--config_file", str(path), "--num_machines", str(nodes), "--rdzv_backend", "c10d",
               "--main_process_ip", socket.getfqdn(), "--main_process_port", str(free_port())] + worker)


def worker_error(output: str) -> str | None:
    """The error a worker printed before exiting, if any."""
    for line in output.splitlines():
        if line.startswith(WORKER_ERROR):
            return line[len(WORKER_ERROR):].strip()
    return None


def die_with_parent() -> None:
    """Ask Linux to send this process SIGTERM when its parent ends (``PR_SET_PDEATHSIG``), so that
    a launch, and each of its workers, ends with the process that started it, even one killed
    without a word (SIGKILL of a notebook kernel). Elsewhere, nothing."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # 1: PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return


def stop(proc: subprocess.Popen, grace: float = STOP_GRACE_S) -> None:
    """End a launch and its workers: SIGTERM to its process group (the launcher stops the workers
    it started), SIGKILL after ``grace`` seconds."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass


def run_launched(config, *, params_path: str | Path, run_dir: str | Path, unit) -> None:
    """Train ``unit`` with ``accelerate launch``; its output goes to the unit's ``launch.log``.
    Interrupted (Ctrl-C, SIGTERM), the launch is stopped before the interrupt goes on."""
    folder = RunFolder(run_dir)
    output = folder.unit(unit.stage, unit.name, "launch_log")
    output.parent.mkdir(parents=True, exist_ok=True)
    log.info("%s: accelerate launch, %d processes (output: %s)", unit.label, config.distributed.processes,
             folder.relative(output))
    with tempfile.TemporaryDirectory(prefix="xnli-study-launch-") as scratch, \
            open(output, "w", encoding="utf-8") as sink:
        cmd = launch_command(config, params_path=params_path, run_dir=run_dir, unit=unit, scratch=Path(scratch))
        # a group of its own, so that stopping it reaches the launcher's workers too
        proc = subprocess.Popen(cmd, stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, preexec_fn=die_with_parent)
        try:
            code = proc.wait()
        except BaseException:
            stop(proc)
            raise
    if code != 0:
        text = output.read_text(encoding="utf-8", errors="replace")
        error = worker_error(text) or (text.strip().splitlines() or ["no output"])[-1]
        raise LaunchFailed(f"accelerate launch of {unit.label} exited with {code}: {error} (whole output: "
                           f"{folder.relative(output)})")
