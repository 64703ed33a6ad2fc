"""The researcher's workflow: overrides on the command line and in notebooks, a notebook that shows
a complete stage without computing it again (and ``recompute``), progress per unit, and the
Trainer's TensorBoard integration."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pandas as pd
import papermill as pm
import pytest
import yaml

from conftest import ROOT
from xnli_study import cli
from xnli_study.config import apply_overrides, load_params, parse_overrides
from xnli_study.environment import KERNEL_NAME
from xnli_study.errors import ParamsError, StudyError
from xnli_study.progress import PREFIX, ForwardProgress, StageProgress, duration
from xnli_study.runfolder import RunFolder
from xnli_study.stages import StageRun, read_record, stage_fingerprint, stage_status

NOTEBOOKS = ROOT / "notebooks"
# the sst2 unit trains for several seconds, long enough for progress lines within its training
OVERRIDES = ["xnli.max_items=40", "training.report_to=[tensorboard]", "tasks.sst2.max_examples=600",
             "training.intermediate.epochs=12"]


# ---- overrides --------------------------------------------------------------------------------
def test_overrides_set_dotted_keys_to_yaml_values(smoke_yaml, tmp_path):
    data = yaml.safe_load(smoke_yaml.read_text())
    changed = apply_overrides(data, ["training.mnli.learning_rate=2.0e-5", "seeds=[0,1,2]", "stats.resamples=500"])
    assert changed["training"]["mnli"]["learning_rate"] == 2e-5 and changed["seeds"] == [0, 1, 2]
    assert changed["stats"] == {**data.get("stats", {}), "resamples": 500}
    assert data["seeds"] != [0, 1, 2]  # the mapping given is left as it was
    # the same as editing the file
    edited = dict(data, seeds=[0, 1, 2])
    edited["training"] = {**data["training"], "mnli": {**data["training"]["mnli"], "learning_rate": 2e-5}}
    edited["stats"] = changed["stats"]
    (tmp_path / "smoke.yaml").write_text(yaml.safe_dump(edited))
    by_hand = load_params(tmp_path / "smoke.yaml").model_dump(exclude={"base_dir"})
    overridden = load_params(smoke_yaml, ["training.mnli.learning_rate=2e-5", "seeds=[0,1,2]", "stats.resamples=500"])
    assert overridden.model_dump(exclude={"base_dir"}) == by_hand
    assert overridden.fingerprint() != load_params(smoke_yaml).fingerprint()
    # a papermill string: a YAML list, or one KEY=VALUE
    assert parse_overrides('["seeds=[0,1]", "device=cpu"]') == ["seeds=[0,1]", "device=cpu"]
    assert parse_overrides("seeds=[0,1]") == ["seeds=[0,1]"] and parse_overrides("") == []


@pytest.mark.parametrize("command", ["run", "check", "plan"])
@pytest.mark.parametrize("override, message", [
    ("training.mnli.lr=1e-5", "unknown key 'training.mnli.lr'"),
    ("seeds", "expected KEY=VALUE"),
    ("seeds=[0,", "not valid YAML"),
    ("seeds.first=1", "'seeds' is a value"),
    ("training.mnli.epochs=-1", "'training.mnli.epochs'"),
    ("training.report_to=[tensorbored]", "unknown tracker 'tensorbored'"),
])
def test_a_bad_override_is_one_line_and_exit_2(smoke_yaml, capsys, command, override, message):
    code = cli.main([command, "--params", str(smoke_yaml), "--set", override])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_check_and_plan_read_the_overrides(smoke_yaml, capsys):
    assert cli.main(["check", "--params", str(smoke_yaml), "--set", "run_name=sweep-lr"]) == 0
    assert "sweep-lr" in capsys.readouterr().out
    assert cli.main(["plan", "--params", str(smoke_yaml)]) == 0
    plain = capsys.readouterr().out
    assert cli.main(["plan", "--params", str(smoke_yaml), "--set", "seeds=[0,1,2,3]"]) == 0
    more = capsys.readouterr().out
    assert "x 2 seeds" in plain and "x 4 seeds" in more


def test_a_tracker_that_is_not_installed_is_one_line(smoke_yaml, capsys, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    assert cli.main(["run", "--params", str(smoke_yaml), "--set", "training.report_to=[wandb]"]) == 2
    assert "wandb is not installed; pip install wandb" in capsys.readouterr().err


@pytest.fixture(scope="module")
def overridden_run(minimal_run, tmp_path_factory):
    """The data and intermediate stages of the minimal profile run from the command line with
    :data:`OVERRIDES` (progress on): ``(params, run folder, the command's stderr)``."""
    params, _ = minimal_run
    out = tmp_path_factory.mktemp("overridden") / "run"
    args = [sys.executable, "-m", "xnli_study.cli", "run", "--params", str(params), "--out", str(out),
            "--stages", "data", "intermediate"]
    for item in OVERRIDES:
        args += ["--set", item]
    proc = subprocess.run(args, capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return params, out, proc.stderr


@pytest.mark.slow
def test_the_run_folder_records_the_params_with_the_overrides(overridden_run):
    params, out, _ = overridden_run
    recorded = yaml.safe_load(RunFolder(out).params.read_text())
    assert recorded["xnli"]["max_items"] == 40 and recorded["training"]["report_to"] == ["tensorboard"]
    # its fingerprints cover them: the data stage is complete for the overridden params only
    assert stage_status(out, "data", load_params(params, OVERRIDES)) is None
    assert read_record(out, "data")["fingerprint"] == stage_fingerprint(load_params(params, OVERRIDES), "data")
    assert read_record(out, "data")["fingerprint"] != stage_fingerprint(load_params(params), "data")
    counts = pd.read_csv(RunFolder(out).table("xnli_counts"))
    assert set(counts["items"]) == {40}


@pytest.mark.slow
def test_tensorboard_writes_its_events_into_the_run_folder(overridden_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _, out, _ = overridden_run
    logs = RunFolder(out).logs("intermediate", "sst2-seed0")
    assert list(logs.glob("events.out.tfevents.*")), f"no event file in {logs}"
    events = EventAccumulator(str(logs))
    events.Reload()
    losses = events.Scalars("train/loss")
    training = pd.read_csv(RunFolder(out).unit("intermediate", "sst2-seed0", "log"))
    # the same losses the unit's log holds, at the same steps
    logged = training.dropna(subset=["loss"])
    assert [e.step for e in losses] == list(logged["step"])
    assert [round(e.value, 4) for e in losses] == [round(v, 4) for v in logged["loss"]]


@pytest.mark.slow
def test_the_command_line_shows_progress_per_unit(overridden_run):
    _, _, stderr = overridden_run
    lines = [line for line in stderr.splitlines() if line.startswith(PREFIX)]
    assert any("stage intermediate, unit 1 of 1 (sst2, seed 0): epoch" in line and "step" in line
               and "left for the stage" in line for line in lines), "\n".join(lines)
    assert any("unit 1 of 1 (sst2, seed 0) done" in line for line in lines)


@pytest.mark.slow
def test_papermill_overrides_work_as_the_command_line_does(overridden_run, tmp_path):
    """The notebook, given the same overrides as a papermill string, resolves the same settings as
    the command line did: it finds the data stage complete and shows it (other settings would be
    refused, and without the overrides it is)."""
    params, cli_run, _ = overridden_run
    before = {p: p.stat().st_mtime_ns for p in cli_run.rglob("*") if p.is_file()}

    def papermill(*extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "papermill", str(NOTEBOOKS / "01_data_inspection.ipynb"),
                               str(tmp_path / "out.ipynb"), "-k", KERNEL_NAME, "-p", "params_path", str(params),
                               "-p", "run_dir", str(cli_run), *extra],
                              capture_output=True, text=True, cwd=NOTEBOOKS, timeout=600)

    proc = papermill("-p", "overrides", json.dumps(OVERRIDES))
    assert proc.returncode == 0, proc.stderr[-3000:]
    shown = "".join(o.get("text", "") for o in outputs_of(nbformat.read(tmp_path / "out.ipynb", as_version=4))
                    if o.get("name") == "stderr")
    assert "stage data is complete in" in shown and "showing its results from the run folder" in shown
    assert {p: p.stat().st_mtime_ns for p in cli_run.rglob("*") if p.is_file()} == before
    plain = papermill()
    assert plain.returncode != 0 and "was computed with other settings" in plain.stderr
    assert "xnli.max_items changed" in plain.stderr


@pytest.mark.slow
def test_a_notebook_refuses_overrides_that_would_mix_settings(minimal_run):
    _, run = minimal_run
    params = RunFolder(run).params
    with pytest.raises(StudyError, match=r"stage transfer of .* was computed with.*xnli-study run --params .* "
                                         r"--set training.mnli.learning_rate=0.001") as err:
        StageRun("transfer", params_path=str(params), run_dir=str(run), overrides='["training.mnli.learning_rate=0.001"]')
    assert "\n" not in str(err.value)
    # a setting no stage was computed with (where models stay on disk) changes nothing: allowed
    kept = StageRun("transfer", params_path=str(params), run_dir=str(run), overrides=["training.save_models=all"])
    assert kept.reusing



@pytest.mark.slow
def test_a_notebook_does_not_recompute_a_stage_with_other_settings(minimal_run, tmp_path):
    """A user's profile edited since the run (or a sweep's run folder opened with the plain
    profile): the notebook says so instead of training the stage again with the new settings."""
    params, run = minimal_run
    data = yaml.safe_load(params.read_text())
    data["training"]["mnli"]["learning_rate"] = 0.001
    (tmp_path / "edited.yaml").write_text(yaml.safe_dump(data))
    before = read_record(run, "transfer")
    with pytest.raises(StudyError, match=r"stage transfer of .* was computed with other settings .*"
                                         r"training.mnli.learning_rate changed.*To see it: params_path=.*params.yaml"):
        StageRun("transfer", params_path=str(tmp_path / "edited.yaml"), run_dir=str(run))
    assert read_record(run, "transfer") == before


# ---- recompute --------------------------------------------
def outputs_of(nb) -> list[dict]:
    return [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]


@pytest.mark.slow
def test_recompute_computes_again_and_replaces_the_run_copy(minimal_run, tmp_path):
    _, original = minimal_run
    run = tmp_path / "run"
    shutil.copytree(original, run)
    folder = RunFolder(run)
    record = read_record(run, "alignment")
    copy_before = folder.executed("04_alignment.ipynb").read_bytes()
    out = tmp_path / "04.ipynb"
    pm.execute_notebook(str(NOTEBOOKS / "04_alignment.ipynb"), str(out), kernel_name=KERNEL_NAME,
                        cwd=str(NOTEBOOKS), progress_bar=False,
                        parameters={"params_path": str(folder.params), "run_dir": str(run), "recompute": True})
    again = read_record(run, "alignment")
    assert again["finished_at"] > record["finished_at"]
    assert pd.read_csv(folder.table("alignment")).equals(pd.read_csv(RunFolder(original).table("alignment")))
    stderr = "".join(o.get("text", "") for o in outputs_of(nbformat.read(out, as_version=4)) if o.get("name") == "stderr")
    assert "units to run" in stderr  # its units ran again, each reported
    measured = progress_lines(out)
    assert any("stage alignment, unit 1 of 4 (P) done" in line for line in measured), measured
    assert any("stage alignment, unit 3 of 4 (F[none], seed 0) done" in line for line in measured), measured
    # the run's copy of the notebook is new: made after the record, showing the recorded stage
    copy = folder.executed("04_alignment.ipynb")
    assert copy.read_bytes() != copy_before
    copy_stderr = "".join(o.get("text", "") for o in outputs_of(nbformat.read(copy, as_version=4))
                          if o.get("name") == "stderr")
    assert again["finished_at"] in copy_stderr
    # and the report knows it is out of date
    assert stage_status(run, "report", load_params(folder.params)) == "stage alignment ran again"


# ---- progress ---------------------------------------------------------------------------------
class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_stage_progress_names_the_unit_its_step_and_the_time_left():
    clock, lines = Clock(), []
    progress = StageProgress("transfer", 2, emit=lines.append, clock=clock)
    progress.start("sst2, seed 0")
    assert "unit 1 of 2 (sst2, seed 0): started" in lines[-1] and "estimated once" in lines[-1]
    for step in range(1, 11):
        clock.now = 2.0 * step
        progress.step(step=step, max_steps=20, epoch=step / 10, epochs=2)
    # at 20 s, half of the first of two units: 1.5 units left at 40 s a unit
    assert lines[-1] == (f"{PREFIX} stage transfer, unit 1 of 2 (sst2, seed 0): epoch 1.0 of 2, step 10 of 20; "
                         "about 1 min 0 s left for the stage")
    count = len(lines)
    clock.now += 0.5
    progress.step(step=11, max_steps=20, epoch=1.1, epochs=2)  # same tenth, too soon: no line
    assert len(lines) == count
    clock.now = 40.0
    progress.step(step=20, max_steps=20, epoch=2, epochs=2)
    progress.done("sst2, seed 0")
    assert lines[-1].endswith("unit 1 of 2 (sst2, seed 0) done; about 40 s left for the stage")
    progress.start("none, seed 0")
    clock.now = 80.0
    progress.done("none, seed 0")
    assert lines[-1].endswith("stage units done in 1 min 20 s")
    assert duration(3725) == "1 h 2 min"


def test_forward_progress_passes_on_whole_progress_lines_only():
    class Sink(list):
        def write(self, text):
            self.append(text)

        def flush(self):
            pass

    sink = Sink()
    forward = ForwardProgress(sink)
    forward.write("loading data\ntraining:  10%|#   \r")
    forward.write(f"training:  20%\r{PREFIX} stage x, unit 1 of 1 (a): st")
    assert sink == []
    forward.write("arted; about 3 s left\nother line\n")
    assert sink == [f"{PREFIX} stage x, unit 1 of 1 (a): started; about 3 s left\n"]


def test_bad_overrides_from_a_notebook_are_one_line(smoke_yaml):
    with pytest.raises(ParamsError, match="expected a list of KEY=VALUE strings"):
        parse_overrides([1, 2])
    with pytest.raises(ParamsError, match="unknown key 'seed'"):
        StageRun("data", params_path=str(smoke_yaml), overrides=["seed=1"])


def progress_lines(notebook: Path) -> list[str]:
    """The progress lines a notebook's cells printed (stderr)."""
    nb = nbformat.read(notebook, as_version=4)
    text = "".join(o.get("text", "") for o in outputs_of(nb) if o.get("name") == "stderr")
    return [line for line in text.splitlines() if line.startswith(PREFIX)]


@pytest.mark.slow
def test_the_notebooks_show_progress_per_unit_and_per_statistic(overridden_run, smoke_run):
    _, out, _ = overridden_run  # its intermediate unit trained in the notebook the command line ran
    training = progress_lines(RunFolder(out).executed("02_intermediate_training.ipynb"))
    assert any("stage intermediate, unit 1 of 1 (sst2, seed 0): epoch" in line and "left for the stage" in line
               for line in training), training
    assert training[-1].startswith(f"{PREFIX} stage intermediate, unit 1 of 1") and "stage units done in" in training[-1]
    report = progress_lines(RunFolder(smoke_run[0]).executed("05_report.ipynb"))
    assert any("statistic 1 of 3 (accuracy intervals" in line for line in report), report
    assert "stage statistics done in" in report[-1]
