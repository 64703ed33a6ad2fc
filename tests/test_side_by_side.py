"""Training units side by side (distributed.unit_processes): dealing, thread shares, the workers'
report lines, a failed unit, a worker that dies, and the params rule."""

from __future__ import annotations

import _thread
import json
import os
import signal
import sys
import textwrap
import threading
import time
from types import SimpleNamespace

import pytest

from conftest import ROOT, write_params
from xnli_study import sidebyside, study
from xnli_study.config import load_params
from xnli_study.errors import ParamsError, UnitsFailed
from xnli_study.runfolder import RunFolder
from xnli_study.units import stage_units
from xnli_study.progress import StageProgress


def test_units_are_dealt_round_robin_and_cores_shared():
    assert sidebyside.deal(["a", "b", "c", "d", "e"], 2) == [["a", "c", "e"], ["b", "d"]]
    assert sidebyside.deal(["a"], 3) == [["a"]]  # no empty worker
    assert sidebyside.threads_each(2, cores_here=2) == 1 and sidebyside.threads_each(2, cores_here=16) == 8
    assert sidebyside.threads_each(4, cores_here=2) == 1


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


def test_a_unit_reported_by_another_worker_is_ignored(tmp_path, monkeypatch):
    fake_workers(monkeypatch, f"""
        import sys
        for name in sys.argv[1:]:
            print("{sidebyside.FINISHED}", "x" + name, "ok", flush=True)  # not one of its units
            print("{sidebyside.STARTED}", name, flush=True)
            print("{sidebyside.FINISHED}", name, "ok", flush=True)
    """)
    events = run(tmp_path, ["a", "b"])
    assert sorted(e[1] for e in events if e[0] == "finish") == ["a", "b"]


def test_the_stage_records_units_that_failed_or_left_no_record(tmp_path, monkeypatch, smoke_yaml):
    """run_units with workers: a unit a worker reports failed, and one it reports done without
    writing its record, are both recorded as failed and named by the stage's error."""
    config = load_params(smoke_yaml, overrides=[f"output_dir={tmp_path}"])
    units = stage_units(config, "transfer")[:2]
    fake_workers(monkeypatch, f"""
        import sys
        for name in sys.argv[1:]:
            print("{sidebyside.STARTED}", name, flush=True)
            reason = "ok" if name == "{units[0].name}" else "failed: RuntimeError: out of memory"
            print("{sidebyside.FINISHED}", name, reason, flush=True)
    """)
    run_ = SimpleNamespace(config=config, run_dir=tmp_path / "run", stage=SimpleNamespace(name="transfer"),
                           params_path=str(smoke_yaml))
    with pytest.raises(UnitsFailed) as failure:
        study.run_units(run_, units, units, work=None)
    assert str(failure.value).startswith("2 of 2 units of stage transfer failed")
    folder = RunFolder(run_.run_dir)
    first = folder.unit("transfer", units[0].name, "failed").read_text()
    second = folder.unit("transfer", units[1].name, "failed").read_text()
    assert "reported it done without its record" in first and "RuntimeError: out of memory" in second


def test_an_interrupted_stage_stops_its_workers_and_fails_no_unit(tmp_path, monkeypatch):
    fake_workers(monkeypatch, f"""
        import os, sys, time
        print("{sidebyside.STARTED}", sys.argv[1], flush=True)
        print("pid", os.getpid(), flush=True)
        time.sleep(60)
    """)
    events = []
    # Ctrl-C while both workers train (raised as Python does by default, also where pytest itself
    # was started with SIGINT ignored, as a background job is)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        threading.Timer(2.0, _thread.interrupt_main).start()
        started = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            sidebyside.run_side_by_side(
                params_path="p.yaml", run_dir=tmp_path, stage="transfer", names=["a", "b"], processes=2,
                log_of=lambda name: tmp_path / name / "launch.log",
                on_start=lambda name: events.append(("start", name)),
                on_finish=lambda name, reason: events.append(("finish", name, reason)))
    finally:
        signal.signal(signal.SIGINT, previous)
    assert time.monotonic() - started < 30
    assert sorted(events) == [("start", "a"), ("start", "b")]  # stopped, not failed
    for name in ("a", "b"):
        pid = int((tmp_path / name / "launch.log").read_text().split("pid ")[1].split()[0])
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_a_worker_runs_labelled_units_of_both_stages_and_skips_what_builds_on_a_failure(monkeypatch):
    config = load_params(ROOT / "params" / "smoke.yaml")
    reads, ran = [], []

    def reader(stage):
        def read(config, run_dir, units):
            reads.append((stage, sorted(u.name for u in units)))
            return {"stage": stage}
        return read

    def work(config, run_dir, unit, inputs, progress=None):
        assert inputs == {"stage": unit.stage}
        if unit.label == "intermediate/sst2-seed0":
            raise RuntimeError("out of memory")
        ran.append(unit.label)

    monkeypatch.setattr(study, "UNIT_WORK", {"intermediate": (reader("intermediate"), work),
                                             "transfer": (reader("transfer"), work)})
    events = []
    labels = ["intermediate/sst2-seed0", "intermediate/sst2-seed1", "transfer/none-seed0", "transfer/sst2-seed0",
              "transfer/sst2-seed1"]
    study.run_listed_units(config, ROOT, None, labels,
                           report=lambda name, reason, started=False: events.append((name, started, reason)))
    assert ran == ["intermediate/sst2-seed1", "transfer/none-seed0", "transfer/sst2-seed1"]
    assert ("intermediate/sst2-seed0", False, "RuntimeError: out of memory") in events
    assert ("transfer/sst2-seed0", False, "not run: intermediate/sst2-seed0, which it builds on, failed") in events
    assert ("transfer/sst2-seed0", True, None) not in events  # never started
    # each stage's inputs read once, for its own units
    assert reads == [("intermediate", ["sst2-seed0", "sst2-seed1"]), ("transfer", ["none-seed0", "sst2-seed0", "sst2-seed1"])]
    with pytest.raises(study.DataError, match="stage"):
        study.run_listed_units(config, ROOT, None, ["sst2-seed0"], report=lambda *a, **k: None)


def test_both_training_stages_train_ahead_in_one_set_of_workers_chain_by_chain(tmp_path, monkeypatch):
    config = load_params(ROOT / "params" / "smoke.yaml", [f"output_dir={tmp_path}", "seeds=[0, 1, 2]"])
    calls = []

    def fake(**kwargs):
        calls.append(kwargs)
        for share in kwargs["shares"]:
            for label in share:
                kwargs["on_start"](label)
                kwargs["on_finish"](label, "RuntimeError: boom")

    monkeypatch.setattr(study, "run_side_by_side", fake)
    trained = study.train_ahead(config, tmp_path, "p.yaml", ["intermediate", "transfer"])
    assert trained == {stage: [u.name for u in stage_units(config, stage)] for stage in ("intermediate", "transfer")}
    (call,) = calls
    assert call["stage"] is None and call["processes"] == 2
    for share in call["shares"]:
        # whole chains: a (condition, seed)'s MNLI unit is in the worker that trains its intermediate unit, after it
        for position, label in enumerate(share):
            stage, name = label.split("/")
            if stage == "transfer" and not name.startswith("none-"):
                assert f"intermediate/{name}" in share[:position], (label, share)
    assert [len(share) for share in call["shares"]] == [8, 7]  # chains dealt in turn: 5 and 4 of the 9
    assert sorted(sum(call["shares"], [])) == sorted(u.label for s in ("intermediate", "transfer")
                                                     for u in stage_units(config, s))
    # a rerun that adds seed 1 to a run of seed 0: that seed's chains are shared between both workers
    monkeypatch.setattr(study, "unit_status", lambda run_dir, unit: None if unit.seed == 0 else "new seed 1")
    calls.clear()
    study.train_ahead(load_params(ROOT / "params" / "smoke.yaml", [f"output_dir={tmp_path}"]), tmp_path, "p.yaml",
                      ["intermediate", "transfer"])
    assert sorted(len(share) for share in calls[0]["shares"]) == [2, 3]  # sst2 chain, then the none and pa chains
    assert all(label.endswith("seed1") for share in calls[0]["shares"] for label in share)
    calls.clear()
    # one process: the stage notebooks train their own units
    one = load_params(ROOT / "params" / "smoke.yaml", [f"output_dir={tmp_path}", "distributed.unit_processes=1"])
    assert study.train_ahead(one, tmp_path, "p.yaml", ["intermediate", "transfer"]) == {}
    assert not calls


@pytest.mark.slow
def test_a_run_whose_training_ahead_stops_has_the_notebooks_train_the_rest(tmp_path, shared_cache, monkeypatch):
    """Training ahead is a head start: when it stops with an error, the training notebooks train
    their units themselves (side by side, in the kernel's own workers) and the run completes."""
    from conftest import minimal_params
    from xnli_study import pipeline
    from xnli_study.units import unit_status

    params = minimal_params(ROOT / "params" / "smoke.yaml", tmp_path, shared_cache)
    text = params.read_text().replace("unit_processes: 1", "unit_processes: 2")
    params.write_text(text)

    def broken(*args, **kwargs):
        raise OSError("no process could be started")

    monkeypatch.setattr(pipeline, "train_ahead", broken)
    run_dir = pipeline.run_study(params, stages=["data", "intermediate"], progress=False)
    config = load_params(run_dir / "params.yaml")
    assert all(unit_status(run_dir, u) is None for u in stage_units(config, "intermediate"))
    for unit in stage_units(config, "intermediate"):  # trained by the notebook's workers, named by unit
        assert f"{sidebyside.STARTED} {unit.name}\n" in RunFolder(run_dir).unit("intermediate", unit.name, "launch_log").read_text()
    assert "units_trained_ahead" not in json.loads(RunFolder(run_dir).manifest.read_text())["stages"]["intermediate"]
