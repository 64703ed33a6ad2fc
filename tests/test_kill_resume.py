"""Kill a run anywhere with SIGKILL (the whole process group, kernels included), run it again, and
get exactly the tables and summary of a run that was never interrupted; a new seed trains only
that seed.

The kills land at named points through the test-only fault hook (``xnli_study/faults.py``): just
after a checkpoint of an intermediate training and of an MNLI training (mid-training checkpoints
are on, so the reruns resume inside a training), while a sentence-vector cache is half written,
and while ``report.html`` is half written. A minimal profile keeps it to seconds per run.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import summary, tables
from xnli_study import faults
from xnli_study.config import load_params
from xnli_study.files import PARTIAL
from xnli_study.runfolder import RunFolder
from xnli_study.units import plan_units, read_unit

pytestmark = pytest.mark.slow

KILL_POINTS = ("intermediate-checkpoint", "mnli-checkpoint", "embeddings", "render")
#: at this point only the command's process group is killed: the notebook kernel it started, in a
#: group of its own, must notice and end by itself (no orphaned kernel)
ORPHAN_CHECK = "mnli-checkpoint"


def cli(params: Path, out: Path, log: Path, env: dict | None = None) -> subprocess.Popen:
    """``xnli-study run`` in its own process group, its output going to ``log``."""
    with open(log, "w") as sink:
        return subprocess.Popen([sys.executable, "-m", "xnli_study.cli", "run", "--params", str(params), "--out",
                                 str(out), "--quiet"], env={**os.environ, **(env or {})}, start_new_session=True,
                                stdout=sink, stderr=subprocess.STDOUT, text=True)


def finish(proc: subprocess.Popen, log: Path) -> str:
    proc.wait(timeout=900)
    output = log.read_text()
    assert proc.returncode == 0, output
    return output


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in state


def kill_at(point: str, params: Path, out: Path, tmp: Path) -> None:
    """Run until ``point``, then SIGKILL the command's process group and the group of the process
    (a notebook kernel, or the command itself) that reached it; at :data:`ORPHAN_CHECK` only the
    command's. Either way the process that reached the point must be gone within 30 s."""
    marker, log = tmp / f"{point}.json", tmp / f"{point}.log"
    proc = cli(params, out, log, {faults.ENV: f"{point}:{marker}"})
    deadline = time.monotonic() + 600
    while not marker.exists():
        if proc.poll() is not None:
            pytest.fail(f"the run ended before reaching {point}:\n{log.read_text()}")
        if time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail(f"{point} was not reached in 600 s")
        time.sleep(0.2)
    reached = json.loads(marker.read_text())
    os.killpg(proc.pid, signal.SIGKILL)
    if reached["pgid"] != proc.pid and point != ORPHAN_CHECK:
        os.killpg(reached["pgid"], signal.SIGKILL)
    proc.wait(timeout=30)
    deadline = time.monotonic() + 30
    while alive(reached["pid"]) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not alive(reached["pid"]), f"the process that reached {point} outlived the kill"


def test_killed_anywhere_a_rerun_gives_the_tables_of_an_uninterrupted_run(minimal_run, tmp_path):
    params, clean = minimal_run
    out = tmp_path / "killed"
    folder = RunFolder(out)
    for point in KILL_POINTS:
        kill_at(point, params, out, tmp_path)
        if point in ("embeddings", "render"):  # the kill landed mid-write: a half-written file is there
            assert list(out.rglob(f".*{PARTIAL}*")), point
    manifest = json.loads(folder.manifest.read_text())
    assert manifest["stages"]["render"]["status"] == "running"  # SIGKILL leaves no time to say more
    assert not folder.report_html.exists() and not folder.record("render").exists()

    output = finish(cli(params, out, tmp_path / "rerun.log"), tmp_path / "rerun.log")
    assert "removed a half-written file" in output
    assert not list(out.rglob(f".*{PARTIAL}*"))
    assert not list(out.rglob("checkpoint-*"))  # each unit's checkpoints go once it is done

    # the second run resumed the intermediate training from its checkpoint (the first was killed
    # there), the third the MNLI training; their notebooks show it
    for notebook in ("02_intermediate_training.ipynb", "03_xnli_transfer.ipynb"):
        assert "resuming from checkpoint-" in folder.executed(notebook).read_text(), notebook

    assert summary(out) == summary(clean)
    got, want = tables(out), tables(clean)
    assert list(got) == list(want)
    for name in want:
        pd.testing.assert_frame_equal(got[name], want[name], obj=name)
    assert folder.report_html.read_text().rstrip().endswith("</html>")


def test_a_new_seed_trains_only_that_seed(minimal_run, tmp_path):
    params, clean = minimal_run
    out = tmp_path / "seeds"
    shutil.copytree(clean, out)
    config_before = plan_units_for(params)
    before = {u.label: read_unit(out, u)["finished_at"] for stage in config_before.values() for u in stage}
    data = yaml.safe_load(params.read_text())
    data["seeds"] = [0, 1]
    more = params.with_name("two-seeds.yaml")
    more.write_text(yaml.safe_dump(data, sort_keys=False))
    output = finish(cli(more, out, tmp_path / "seeds.log"), tmp_path / "seeds.log")
    assert "new seed 1: sst2-seed1" in output and "new seed 1: none-seed1, sst2-seed1" in output
    after = plan_units_for(more)
    for stage in after.values():
        for unit in stage:
            record = read_unit(out, unit)
            assert record is not None and record["key"] == unit.key
            if unit.seed == 0 or unit.name == "pretrained":  # reused, not trained or measured again
                assert record["finished_at"] == before[unit.label], unit.label


def plan_units_for(params: Path):
    return plan_units(load_params(params))


def test_a_run_killed_while_units_train_side_by_side_resumes_in_its_workers(minimal_run, tmp_path):
    """With distributed.unit_processes: 2 the trainings run in worker processes: a run killed just
    after an MNLI checkpoint leaves no worker behind (each ends with the process that started it),
    and the rerun resumes that training from its checkpoint inside a worker."""
    params, _ = minimal_run
    data = yaml.safe_load(params.read_text())
    data["distributed"] = {"unit_processes": 2}
    side = params.with_name("side-by-side.yaml")
    side.write_text(yaml.safe_dump(data, sort_keys=False))
    out = tmp_path / "side"
    kill_at("mnli-checkpoint", side, out, tmp_path)
    folder = RunFolder(out)
    assert not folder.record("transfer").exists()
    finish(cli(side, out, tmp_path / "side-rerun.log"), tmp_path / "side-rerun.log")
    logs = [folder.unit("transfer", unit.name, "launch_log").read_text()
            for unit in plan_units(load_params(side))["transfer"]]
    assert any("resuming from checkpoint-" in text for text in logs), logs
    assert folder.report_html.read_text().rstrip().endswith("</html>")
