"""Training units side by side (distributed.unit_processes): dealing, thread shares, the workers'
report lines, a failed unit, a worker that dies, and the params rule."""

from __future__ import annotations

import sys
import textwrap

import pytest

from conftest import write_params
from xnli_study import sidebyside
from xnli_study.config import load_params
from xnli_study.errors import ParamsError
from xnli_study.progress import StageProgress


def test_units_are_dealt_round_robin_and_cores_shared():
    assert sidebyside.deal(["a", "b", "c", "d", "e"], 2) == [["a", "c", "e"], ["b", "d"]]
    assert sidebyside.deal(["a"], 3) == [["a"]]  # no empty worker
    assert sidebyside.threads_each(2, cores=2) == 1 and sidebyside.threads_each(2, cores=16) == 8
    assert sidebyside.threads_each(4, cores=2) == 1


def test_report_lines_are_read_back():
    assert sidebyside.parse_line(f"{sidebyside.STARTED} sst2-seed0\n") == ("started", "sst2-seed0", None)
    assert sidebyside.parse_line(f"{sidebyside.FINISHED} sst2-seed0 ok\n") == ("finished", "sst2-seed0", None)
    assert sidebyside.parse_line(f"{sidebyside.FINISHED} none-seed1 failed: RuntimeError: boom\n") == (
        "finished", "none-seed1", "RuntimeError: boom")
    assert sidebyside.parse_line("loading weights\n") is None


def fake_workers(monkeypatch, script: str) -> None:
    """Workers that run ``script`` (its argv: the unit names) instead of the study's worker."""
    def command(*, params_path, run_dir, stage, names):
        return [sys.executable, "-c", textwrap.dedent(script), *names]
    monkeypatch.setattr(sidebyside, "worker_command", command)


def run(tmp_path, names, processes=2):
    events = []
    sidebyside.run_side_by_side(
        params_path="p.yaml", run_dir=tmp_path, stage="transfer", names=names, processes=processes,
        log_of=lambda name: tmp_path / name / "launch.log",
        on_start=lambda name: events.append(("start", name)),
        on_finish=lambda name, reason: events.append(("finish", name, reason)))
    return events


def test_each_unit_is_reported_and_its_output_goes_to_its_own_log(tmp_path, monkeypatch):
    fake_workers(monkeypatch, f"""
        import os, sys
        for name in sys.argv[1:]:
            print("{sidebyside.STARTED}", name, flush=True)
            print("training", name, "with", os.environ["{sidebyside.THREADS}"], "threads", flush=True)
            if name == "b":
                print("{sidebyside.FINISHED}", name, "failed: RuntimeError: out of memory", flush=True)
            else:
                print("{sidebyside.FINISHED}", name, "ok", flush=True)
    """)
    events = run(tmp_path, ["a", "b", "c"])
    finishes = {e[1]: e[2] for e in events if e[0] == "finish"}
    assert finishes == {"a": None, "b": "RuntimeError: out of memory", "c": None}
    assert sorted(e[1] for e in events if e[0] == "start") == ["a", "b", "c"]
    for name in ("a", "c"):  # a and c ran one after the other in the same worker
        assert events.index(("finish", "a", None)) < events.index(("start", "c"))
        text = (tmp_path / name / "launch.log").read_text()
        assert f"training {name} with" in text and all(f"training {o} " not in text for o in "abc" if o != name)
    assert f"threads" in (tmp_path / "b" / "launch.log").read_text()


def test_a_worker_that_dies_fails_the_units_it_had_not_finished(tmp_path, monkeypatch):
    fake_workers(monkeypatch, f"""
        import os, sys
        names = sys.argv[1:]
        print("{sidebyside.STARTED}", names[0], flush=True)
        if names[0] == "a":
            os._exit(9)  # killed in the middle of its first unit
        for name in names:
            print("{sidebyside.STARTED}", name, flush=True)
            print("{sidebyside.FINISHED}", name, "ok", flush=True)
    """)
    events = run(tmp_path, ["a", "b", "c", "d"])
    finishes = {e[1]: e[2] for e in events if e[0] == "finish"}
    assert finishes["b"] is None and finishes["d"] is None
    for name in ("a", "c"):
        assert finishes[name].startswith("its worker process exited with code 9 before the unit ended")


def test_progress_numbers_units_as_they_start_while_several_run():
    lines = []
    progress = StageProgress("transfer", 4, emit=lines.append, clock=iter(range(0, 100, 10)).__next__)
    progress.start("none, seed 0")
    progress.start("none, seed 1")
    progress.done("none, seed 1")
    assert "unit 1 of 4 (none, seed 0): started" in lines[0] and "unit 2 of 4 (none, seed 1): started" in lines[1]
    # unit 2 is done, unit 1 half done: 1.5 of 4 in 30 s, so 50 s left
    assert "unit 2 of 4 (none, seed 1) done; about 50 s left for the stage" in lines[2]


def test_units_side_by_side_and_a_data_parallel_launch_are_refused_together(tmp_path, smoke_yaml):
    text = smoke_yaml.read_text().replace("output_dir: ../outputs", f"output_dir: {tmp_path}")
    assert load_params(write_params(tmp_path, text)).distributed.unit_processes == 2
    with pytest.raises(ParamsError, match="unit_processes: 2 with a data-parallel launch"):
        load_params(write_params(tmp_path, text + "\n", "q.yaml"), overrides=["distributed.processes=2"])
